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

/// Room for the marshaled entry without its data, or a whole hard state.
pub(crate) const MAX_HEAD_BYTES: usize = 48;

/// Writes `v` as a protobuf varint at the start of `out`; returns its length.
/// `out` must have room (10 bytes always suffice).
pub(crate) fn put_varint(mut v: u64, out: &mut [u8]) -> usize {
    let mut i = 0;
    while v >= 0x80 {
        out[i] = (v as u8) | 0x80;
        v >>= 7;
        i += 1;
    }
    out[i] = v as u8;
    i + 1
}

/// The marshaled entry up to its data (the data's key and length included): what
/// [`encode_entry`] writes before the data bytes. Returns the length written.
pub(crate) fn entry_head(e: &Entry, form: EntryEncoding, out: &mut [u8; MAX_HEAD_BYTES]) -> usize {
    let mut n = 0;
    if form == EntryEncoding::Etcd36 || e.r#type != 0 {
        out[n] = 0x08;
        n += 1;
        // int32: negative values are sign-extended to 10 bytes, as prost and Go do.
        n += put_varint(e.r#type as i64 as u64, &mut out[n..]);
    }
    out[n] = 0x10;
    n += 1;
    n += put_varint(e.term, &mut out[n..]);
    out[n] = 0x18;
    n += 1;
    n += put_varint(e.index, &mut out[n..]);
    if let Some(d) = &e.data {
        out[n] = 0x22;
        n += 1;
        n += put_varint(d.len() as u64, &mut out[n..]);
    }
    n
}

/// The marshaled hard state into `out`; returns its length.
pub(crate) fn hard_state_bytes(s: &HardState, out: &mut [u8; MAX_HEAD_BYTES]) -> usize {
    let mut n = 0;
    for (key, v) in [(0x08, s.term), (0x10, s.vote), (0x18, s.commit)] {
        out[n] = key;
        n += 1;
        n += put_varint(v, &mut out[n..]);
    }
    n
}

/// The marshaled hard state (`term`, `vote`, `commit`, always all three).
pub fn encode_hard_state(s: &HardState) -> Vec<u8> {
    s.encode_to_vec()
}

/// The marshaled snapshot (`index`, `term` always; `conf_state` when set).
pub fn encode_snapshot(s: &Snapshot) -> Vec<u8> {
    s.encode_to_vec()
}

/// Unmarshals a `raftpb.Entry`, the data as a slice of `data` (no copy).
///
/// The forms etcd and raft write (`08 type 10 term 18 index`, then `22 len data`
/// filling the rest; `type` may be omitted) are parsed directly; anything else is
/// left to prost, so the result is always prost's. Takes `data` by value: the
/// entry's data is then `data` itself, advanced past the head, which costs no
/// reference count.
pub fn decode_entry(mut data: bytes::Bytes) -> Result<Entry, prost::DecodeError> {
    use bytes::Buf;
    let Some(head) = parse_entry(&data) else {
        return Entry::decode(data);
    };
    let entry_data = head.data_at.map(|at| {
        data.advance(at);
        data
    });
    Ok(Entry {
        r#type: head.r#type,
        term: head.term,
        index: head.index,
        data: entry_data,
    })
}

/// An entry's fields, parsed in place.
#[derive(Debug, PartialEq)]
struct EntryHead {
    r#type: i32,
    term: u64,
    index: u64,
    /// Where the data starts (`None`: no data field).
    data_at: Option<usize>,
}

#[inline]
fn parse_entry(b: &[u8]) -> Option<EntryHead> {
    use crate::decoder::read_varint;
    let mut i = 0;
    let mut r#type = 0i32;
    if b.first() == Some(&0x08) {
        let (t, n) = read_varint(&b[1..])?;
        // prost's int32: the varint truncated to 32 bits.
        r#type = t as i32;
        i = 1 + n;
    }
    if b.get(i) != Some(&0x10) {
        return None;
    }
    let (term, n) = read_varint(&b[i + 1..])?;
    i += 1 + n;
    if b.get(i) != Some(&0x18) {
        return None;
    }
    let (index, n) = read_varint(&b[i + 1..])?;
    i += 1 + n;
    let data_at = if i == b.len() {
        None
    } else {
        if b[i] != 0x22 {
            return None;
        }
        let (len, n) = read_varint(&b[i + 1..])?;
        i += 1 + n;
        if len != (b.len() - i) as u64 {
            return None;
        }
        Some(i)
    };
    Some(EntryHead {
        r#type,
        term,
        index,
        data_at,
    })
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

    /// The direct parse agrees with prost on every input it accepts, and accepts
    /// every entry the marshalers write.
    #[test]
    fn decode_entry_agrees_with_prost() {
        let mut seed = 7u64;
        let mut next = || {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            seed >> 17
        };
        for i in 0..20_000u64 {
            let len = (next() % 300) as usize;
            let e = Entry {
                r#type: [0, 1, 2, -1, i32::MAX, i32::MIN][(next() % 6) as usize],
                term: next() >> (next() % 47),
                index: next() >> (next() % 47),
                data: (next() % 8).ne(&0).then(|| Bytes::from(vec![i as u8; len])),
            };
            for form in [EntryEncoding::Etcd36, EntryEncoding::Raft37] {
                let mut b = Vec::new();
                encode_entry(&e, form, &mut b);
                let b = Bytes::from(b);
                assert!(parse_entry(&b).is_some(), "{e:?} {form:?}");
                assert_eq!(decode_entry(b.clone()).unwrap(), e);
                // Damage it: whatever the direct parse accepts, prost decodes alike.
                let mut m = b.to_vec();
                if !m.is_empty() {
                    let at = (next() as usize) % m.len();
                    m[at] = next() as u8;
                    if (next() % 3).eq(&0) {
                        m.truncate((next() as usize) % m.len());
                    }
                }
                let m = Bytes::from(m);
                if parse_entry(&m).is_some() {
                    let fast = decode_entry(m.clone()).map_err(|_| ());
                    assert_eq!(fast, Entry::decode(m.clone()).map_err(|_| ()), "{m:?}");
                }
                assert_eq!(
                    decode_entry(m.clone()).map_err(|_| ()),
                    Entry::decode(m.clone()).map_err(|_| ())
                );
            }
        }
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
