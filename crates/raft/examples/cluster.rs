//! A three-node raft-rs cluster in one process, each node on its own etcd WAL
//! (wal-raft), with nodes dropped at random moments and restarted from disk.
//!
//! ```sh
//! cargo run -p wal-raft --example cluster [seed]
//! ```

#[path = "../tests/sim/mod.rs"]
mod sim;

fn main() {
    let seed = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(9);
    let rep = sim::Sim::new(sim::SimConfig {
        seed,
        ..Default::default()
    })
    .run();
    println!("crashes:     {rep}");
    let rep = sim::Sim::new(sim::SimConfig {
        seed: seed + 1,
        tear: true,
        ..Default::default()
    })
    .run();
    println!("torn tails:  {rep}");
}
