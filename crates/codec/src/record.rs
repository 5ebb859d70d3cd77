//! `walpb.Record` types and their exact byte encoding.

use bytes::Bytes;
use prost::encoding::{encode_varint, encoded_len_varint};

pub use crate::walpb::Record;

/// The kind of a WAL record (the `type` field of `walpb.Record`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(i64)]
pub enum RecordType {
    /// Opaque metadata given to `create`, repeated at the head of every segment.
    Metadata = 1,
    /// One marshaled `raftpb.Entry`.
    Entry = 2,
    /// One marshaled `raftpb.HardState`.
    State = 3,
    /// The running CRC at the start of a segment (its data is empty).
    Crc = 4,
    /// One marshaled `walpb.Snapshot` (index, term, optional conf state).
    Snapshot = 5,
}

impl RecordType {
    /// Maps the stored `type` value back to a known type.
    pub fn from_i64(v: i64) -> Option<Self> {
        Some(match v {
            1 => Self::Metadata,
            2 => Self::Entry,
            3 => Self::State,
            4 => Self::Crc,
            5 => Self::Snapshot,
            _ => return None,
        })
    }

    /// Lower-case name, as tools print it.
    pub fn name(self) -> &'static str {
        match self {
            Self::Metadata => "metadata",
            Self::Entry => "entry",
            Self::State => "state",
            Self::Crc => "crc",
            Self::Snapshot => "snapshot",
        }
    }
}

/// Appends the protobuf bytes of `Record { type, crc, data }` to `out`, exactly as
/// etcd's marshaler writes them: `type` and `crc` always, `data` only when present.
pub fn encode_record(rec_type: i64, crc: u32, data: Option<&[u8]>, out: &mut Vec<u8>) {
    out.reserve(record_len(rec_type, crc, data));
    out.push(0x08);
    encode_varint(rec_type as u64, out);
    out.push(0x10);
    encode_varint(u64::from(crc), out);
    if let Some(d) = data {
        out.push(0x1a);
        encode_varint(d.len() as u64, out);
        out.extend_from_slice(d);
    }
}

/// Length of the bytes [`encode_record`] produces.
pub fn record_len(rec_type: i64, crc: u32, data: Option<&[u8]>) -> usize {
    let mut n = 2 + encoded_len_varint(rec_type as u64) + encoded_len_varint(u64::from(crc));
    if let Some(d) = data {
        n += 1 + encoded_len_varint(d.len() as u64) + d.len();
    }
    n
}

impl Record {
    /// The record's type, if it is one etcd defines.
    pub fn record_type(&self) -> Option<RecordType> {
        RecordType::from_i64(self.r#type)
    }

    /// The data, empty when absent.
    pub fn data_or_empty(&self) -> Bytes {
        self.data.clone().unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message;

    #[test]
    fn hand_encoding_matches_prost() {
        for (t, crc, data) in [
            (4i64, 0u32, None),
            (1, 0x829a_c799, Some(&b"etcd"[..])),
            (2, u32::MAX, Some(&[][..])),
            (-1, 7, Some(&[0u8; 300][..])),
        ] {
            let mut ours = Vec::new();
            encode_record(t, crc, data, &mut ours);
            let theirs = Record {
                r#type: t,
                crc,
                data: data.map(Bytes::copy_from_slice),
            }
            .encode_to_vec();
            assert_eq!(ours, theirs);
            assert_eq!(record_len(t, crc, data), ours.len());
        }
    }
}
