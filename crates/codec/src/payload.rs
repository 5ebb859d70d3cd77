//! Marshaling of the record payloads (`raftpb.Entry`, `raftpb.HardState`,
//! `walpb.Snapshot`) in the byte forms etcd writes.

use prost::encoding::{encode_key, encode_varint, WireType};
use prost::Message;

use crate::raftpb::{Entry, HardState};
use crate::walpb::Snapshot;

/// Which marshaler's bytes to produce for `raftpb.Entry`.
///
/// Readers accept both; only writers choose.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum EntryEncoding {
    /// etcd up to 3.6 (gogoproto): `type`, `term` and `index` are always written,
    /// zeros included. This is what the etcd packaged here writes.
    #[default]
    Etcd36,
    /// raft 3.7 (`go.etcd.io/raft/v3` with standard protobuf): an unset `type`
    /// (`EntryNormal`) is omitted; everything else as in [`EntryEncoding::Etcd36`].
    Raft37,
}

/// Appends the marshaled entry to `out`.
pub fn encode_entry(e: &Entry, form: EntryEncoding, out: &mut Vec<u8>) {
    match form {
        // `required` fields make prost write exactly gogoproto's bytes.
        EntryEncoding::Etcd36 => e.encode_raw(out),
        EntryEncoding::Raft37 => {
            if e.r#type != 0 {
                encode_key(1, WireType::Varint, out);
                encode_varint(e.r#type as i64 as u64, out);
            }
            encode_key(2, WireType::Varint, out);
            encode_varint(e.term, out);
            encode_key(3, WireType::Varint, out);
            encode_varint(e.index, out);
            if let Some(d) = &e.data {
                encode_key(4, WireType::LengthDelimited, out);
                encode_varint(d.len() as u64, out);
                out.extend_from_slice(d);
            }
        }
    }
}

/// The marshaled hard state (`term`, `vote`, `commit`, always all three).
pub fn encode_hard_state(s: &HardState) -> Vec<u8> {
    s.encode_to_vec()
}

/// The marshaled snapshot (`index`, `term` always; `conf_state` when set).
pub fn encode_snapshot(s: &Snapshot) -> Vec<u8> {
    s.encode_to_vec()
}

impl HardState {
    /// Whether this is the empty hard state, which etcd never writes.
    pub fn is_empty(&self) -> bool {
        *self == HardState::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    #[test]
    fn entry_forms() {
        let e = Entry {
            r#type: 0,
            term: 1,
            index: 2,
            data: Some(Bytes::from_static(b"x")),
        };
        let mut a = Vec::new();
        encode_entry(&e, EntryEncoding::Etcd36, &mut a);
        assert_eq!(a, [0x08, 0, 0x10, 1, 0x18, 2, 0x22, 1, b'x']);
        let mut b = Vec::new();
        encode_entry(&e, EntryEncoding::Raft37, &mut b);
        assert_eq!(b, [0x10, 1, 0x18, 2, 0x22, 1, b'x']);
        // Both decode to the same entry.
        assert_eq!(Entry::decode(&a[..]).unwrap(), e);
        assert_eq!(Entry::decode(&b[..]).unwrap(), e);
        // A non-zero type is written by both forms, identically.
        let c = Entry {
            r#type: 1,
            data: None,
            ..e
        };
        let (mut x, mut y) = (Vec::new(), Vec::new());
        encode_entry(&c, EntryEncoding::Etcd36, &mut x);
        encode_entry(&c, EntryEncoding::Raft37, &mut y);
        assert_eq!(x, y);
        assert_eq!(x, [0x08, 1, 0x10, 1, 0x18, 2]);
    }

    #[test]
    fn zero_fields_are_written() {
        assert_eq!(
            encode_hard_state(&HardState::default()),
            [0x08, 0, 0x10, 0, 0x18, 0]
        );
        assert_eq!(encode_snapshot(&Snapshot::default()), [0x08, 0, 0x10, 0]);
    }
}
