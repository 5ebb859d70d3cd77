//! A three-node raft-rs cluster on wal-raft survives nodes dropped at random
//! moments (once while a segment is being cut) and torn WAL tails.

mod sim;

use sim::{Sim, SimConfig};

#[test]
fn cluster_survives_crashes_and_mid_cut_crash() {
    let rep = Sim::new(SimConfig::default()).run();
    println!("cluster: {rep}");
    assert!(rep.acknowledged >= 100, "{rep}");
    assert!(rep.restarts >= 6, "{rep}");
    assert_eq!(rep.cut_crashes, 1, "{rep}");
    assert!(rep.snapshots > 0 && rep.purged > 0, "{rep}");
    assert!(
        rep.snapshots_received > 0,
        "a restarted node caught up from a snapshot: {rep}"
    );
    assert!(rep.entries_compared >= 2 * rep.acknowledged, "{rep}");
}

#[test]
fn cluster_survives_torn_wal_tails() {
    let rep = Sim::new(SimConfig {
        seed: 21,
        tear: true,
        ..SimConfig::default()
    })
    .run();
    println!("torn tails: {rep}");
    assert!(rep.acknowledged >= 100, "{rep}");
    assert!(rep.tears >= 6, "{rep}");
    assert_eq!(rep.repairs, rep.tears, "every torn tail is repaired: {rep}");
    assert!(rep.entries_compared >= 2 * rep.acknowledged, "{rep}");
}
