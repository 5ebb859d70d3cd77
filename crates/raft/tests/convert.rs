//! Round trips between raft-rs's `eraftpb` types and the WAL's `raftpb`/`walpb`
//! types, and through the WAL's bytes.

use proptest::prelude::*;
use raft::eraftpb;
use wal::{raftpb, walpb};
use wal_raft::convert::*;

fn bytes() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        Just(Vec::new()),
        proptest::collection::vec(any::<u8>(), 0..64)
    ]
}

fn ids() -> impl Strategy<Value = Vec<u64>> {
    proptest::collection::vec(any::<u64>(), 0..6)
}

prop_compose! {
    fn eraft_entry()(t in 0i32..3, term in any::<u64>(), index in any::<u64>(), data in bytes())
        -> eraftpb::Entry {
        let entry_type = match t {
            0 => eraftpb::EntryType::EntryNormal,
            1 => eraftpb::EntryType::EntryConfChange,
            _ => eraftpb::EntryType::EntryConfChangeV2,
        };
        eraftpb::Entry { entry_type, term, index, data: data.into(), ..Default::default() }
    }
}

prop_compose! {
    fn wal_entry()(t in 0i32..3, term in any::<u64>(), index in any::<u64>(),
                   data in proptest::option::of(bytes())) -> raftpb::Entry {
        raftpb::Entry { r#type: t, term, index, data: data.map(Into::into) }
    }
}

prop_compose! {
    fn wal_conf_state()(voters in ids(), learners in ids(), voters_outgoing in ids(),
                        learners_next in ids(), auto_leave in any::<bool>()) -> raftpb::ConfState {
        raftpb::ConfState { voters, learners, voters_outgoing, learners_next, auto_leave }
    }
}

prop_compose! {
    fn wal_snapshot()(index in any::<u64>(), term in any::<u64>(),
                      conf_state in proptest::option::of(wal_conf_state())) -> walpb::Snapshot {
        walpb::Snapshot { index, term, conf_state }
    }
}

proptest! {
    #[test]
    fn entry_round_trips(e in eraft_entry()) {
        let w = entry_to_wal(&e).unwrap();
        prop_assert_eq!(entry_from_wal(&w).unwrap(), e.clone());
    }

    #[test]
    fn wal_entry_round_trips(w in wal_entry()) {
        let e = entry_from_wal(&w).unwrap();
        let back = entry_to_wal(&e).unwrap();
        // Every stored field survives; only an empty `data` comes back absent.
        let mut want = w.clone();
        if want.data.as_ref().is_some_and(|d| d.is_empty()) {
            want.data = None;
        }
        prop_assert_eq!(back, want);
    }

    #[test]
    fn hard_state_round_trips(term in any::<u64>(), vote in any::<u64>(), commit in any::<u64>()) {
        let w = raftpb::HardState { term, vote, commit };
        let e = hard_state_from_wal(&w);
        prop_assert_eq!(hard_state_to_wal(&e), w);
        prop_assert_eq!(hard_state_from_wal(&hard_state_to_wal(&e)), e);
    }

    #[test]
    fn conf_state_round_trips(w in wal_conf_state()) {
        let e = conf_state_from_wal(&w);
        prop_assert_eq!(conf_state_to_wal(&e), w);
        prop_assert_eq!(conf_state_from_wal(&conf_state_to_wal(&e)), e);
    }

    #[test]
    fn snapshot_metadata_round_trips(w in wal_snapshot()) {
        let e = snapshot_from_wal(&w);
        prop_assert_eq!(e.has_conf_state(), w.conf_state.is_some());
        prop_assert_eq!(snapshot_to_wal(&e), w);
        prop_assert_eq!(snapshot_from_wal(&snapshot_to_wal(&e)), e);
    }

    #[test]
    fn unknown_entry_type_is_an_error(t in 3i32.., index in any::<u64>()) {
        let w = raftpb::Entry { r#type: t, term: 1, index, data: None };
        let is_type_error = matches!(entry_from_wal(&w), Err(wal_raft::Error::EntryType { .. }));
        prop_assert!(is_type_error);
    }
}

#[test]
fn context_is_refused_not_dropped() {
    let e = eraftpb::Entry {
        index: 7,
        context: b"ctx".to_vec().into(),
        ..Default::default()
    };
    assert!(matches!(
        entry_to_wal(&e),
        Err(wal_raft::Error::EntryContext { index: 7, len: 3 })
    ));
}

/// Entries survive the WAL itself: save converted entries, read them back.
#[test]
fn entries_survive_the_wal() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("wal");
    let w = wal::Options::new()
        .segment_size(4096)
        .create(&path, None)
        .unwrap();
    let mut want = Vec::new();
    for i in 1..=50u64 {
        let e = eraftpb::Entry {
            entry_type: if i % 7 == 0 {
                eraftpb::EntryType::EntryConfChangeV2
            } else {
                eraftpb::EntryType::EntryNormal
            },
            term: 1 + i / 10,
            index: i,
            data: if i % 5 == 0 {
                Default::default()
            } else {
                vec![i as u8; i as usize].into()
            },
            ..Default::default()
        };
        want.push(e);
    }
    let ents: Vec<_> = want.iter().map(|e| entry_to_wal(e).unwrap()).collect();
    let hs = eraftpb::HardState {
        term: 6,
        vote: 2,
        commit: 40,
        ..Default::default()
    };
    w.save(&hard_state_to_wal(&hs), &ents).unwrap();
    w.close().unwrap();
    let w = wal::open_for_read(&path, &walpb::Snapshot::default()).unwrap();
    let all = w.read_all().unwrap();
    let got: Vec<_> = all
        .entries
        .iter()
        .map(|e| entry_from_wal(e).unwrap())
        .collect();
    assert_eq!(got, want);
    assert_eq!(hard_state_from_wal(&all.hard_state), hs);
}
