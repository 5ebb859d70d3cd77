//! Property tests of the framing layer: round trips, corruption detection, and no
//! panics on any input.

use proptest::prelude::*;
use wal_codec::{Decoder, Encoder, Record, RecordType, SegmentReader};
use wal_suite::simfs::Rng;
use wal_suite::{corpus_cases, wal_files};

fn records() -> impl Strategy<Value = Vec<(i64, Option<Vec<u8>>)>> {
    let data = prop_oneof![
        1 => Just(None),
        6 => proptest::collection::vec(any::<u8>(), 0..600).prop_map(Some),
        1 => proptest::collection::vec(any::<u8>(), 4000..9000).prop_map(Some),
    ];
    proptest::collection::vec(
        (prop_oneof![1i64..=3, Just(5i64), any::<i64>()], data),
        1..40,
    )
    .prop_map(|v| {
        v.into_iter()
            .filter(|(t, _)| *t != RecordType::Crc as i64)
            .collect()
    })
}

fn encode_all(recs: &[(i64, Option<Vec<u8>>)]) -> Vec<u8> {
    let mut enc = Encoder::new(Vec::new(), 0, 0);
    for (t, d) in recs {
        enc.encode(*t, d.as_deref()).unwrap();
    }
    enc.flush().unwrap();
    enc.get_ref().clone()
}

fn drain(mut dec: Decoder) -> (Vec<Record>, Option<wal_codec::DecodeError>) {
    let mut out = Vec::new();
    loop {
        match dec.decode() {
            Ok(Some(r)) => out.push(r),
            Ok(None) => return (out, None),
            Err(e) => return (out, Some(e)),
        }
    }
}

/// A segment read through `Read` (as files are) or held in memory (as mapped
/// files are).
fn segment(name: &str, bytes: Vec<u8>, in_memory: bool) -> SegmentReader {
    if in_memory {
        SegmentReader::from_bytes(name, bytes)
    } else {
        SegmentReader::new(
            name,
            bytes.len() as u64,
            Box::new(std::io::Cursor::new(bytes)),
        )
    }
}

/// Decodes `bytes` as one segment, both read and in memory; the two must agree on
/// every record and on the error.
fn decode_all(bytes: Vec<u8>) -> (Vec<Record>, Option<wal_codec::DecodeError>) {
    let read = drain(Decoder::new(vec![segment("0.wal", bytes.clone(), false)]));
    let mem = drain(Decoder::new(vec![segment("0.wal", bytes, true)]));
    assert_eq!(
        read.0, mem.0,
        "records differ between read and in-memory segments"
    );
    assert_eq!(
        read.1.as_ref().map(|e| e.to_string()),
        mem.1.as_ref().map(|e| e.to_string()),
        "errors differ between read and in-memory segments"
    );
    mem
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    #[test]
    fn round_trip(recs in records(), prealloc_words in 0usize..400) {
        let mut bytes = encode_all(&recs);
        // Preallocated zeros after the records are the end of the file (files are
        // preallocated in whole words; a 1..7-byte tail is a cut-short length field).
        bytes.resize(bytes.len() + 8 * prealloc_words, 0);
        let (got, err) = decode_all(bytes);
        prop_assert!(err.is_none(), "{:?}", err);
        prop_assert_eq!(got.len(), recs.len());
        for (g, (t, d)) in got.iter().zip(&recs) {
            prop_assert_eq!(g.r#type, *t);
            prop_assert_eq!(g.data.as_deref(), d.as_deref());
        }
    }

    #[test]
    fn any_corrupted_data_byte_is_detected(recs in records(), pick in any::<prop::sample::Index>(), flip in 1u8..=255) {
        let bytes = encode_all(&recs);
        // Locate every data byte: walk the frames as the decoder does.
        let (decoded, _) = decode_all(bytes.clone());
        let mut data_positions = Vec::new();
        let mut off = 0usize;
        for rec in &decoded {
            let len_field = u64::from_le_bytes(bytes[off..off + 8].try_into().unwrap());
            let (rec_len, pad) = wal_codec::frame::decode_frame_size(len_field);
            let body_end = off + 8 + rec_len as usize;
            if let Some(d) = &rec.data {
                for i in body_end - d.len()..body_end {
                    data_positions.push(i);
                }
            }
            off = body_end + pad as usize;
        }
        prop_assume!(!data_positions.is_empty());
        let pos = data_positions[pick.index(data_positions.len())];
        let mut bad = bytes;
        bad[pos] ^= flip;
        let (_, err) = decode_all(bad);
        prop_assert!(err.is_some(), "corruption at {} went unnoticed", pos);
    }

    #[test]
    fn segments_in_memory_decode_like_segments_read(
        recs in records(),
        cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..3),
        kinds in proptest::collection::vec(any::<bool>(), 3),
        damage in proptest::option::of((any::<prop::sample::Index>(), 1u8..=255)),
    ) {
        // The records split into up to three segments at frame boundaries or not,
        // each read or in memory, maybe with one byte damaged.
        let mut bytes = encode_all(&recs);
        if let Some((at, flip)) = damage {
            if !bytes.is_empty() {
                let i = at.index(bytes.len());
                bytes[i] ^= flip;
            }
        }
        let mut points: Vec<usize> = cuts.iter().map(|c| c.index(bytes.len() + 1)).collect();
        points.sort_unstable();
        let mut parts = Vec::new();
        let mut last = 0;
        for p in points.into_iter().chain([bytes.len()]) {
            parts.push(bytes[last..p].to_vec());
            last = p;
        }
        let make = |mixed: bool| {
            let segs = parts
                .iter()
                .enumerate()
                .map(|(i, b)| segment(&format!("{i}.wal"), b.clone(), mixed && kinds[i % 3]))
                .collect();
            drain(Decoder::new(segs))
        };
        let (read, mixed) = (make(false), make(true));
        prop_assert_eq!(read.0, mixed.0);
        prop_assert_eq!(read.1.map(|e| e.to_string()), mixed.1.map(|e| e.to_string()));
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..4096)) {
        let _ = decode_all(bytes);
    }

    #[test]
    fn arbitrary_length_fields_never_panic(len_field in any::<u64>(), tail in proptest::collection::vec(any::<u8>(), 0..64)) {
        let mut bytes = len_field.to_le_bytes().to_vec();
        bytes.extend(tail);
        let _ = decode_all(bytes);
    }
}

/// Truncating a real segment anywhere yields a prefix of its records, then either a
/// clean end or an unexpected EOF; never a panic, never a record that was not there.
#[test]
fn truncations_of_real_segments() {
    for (case, dir) in corpus_cases() {
        let files = wal_files(&dir);
        let Some(path) = files.first() else { continue };
        let full = std::fs::read(path).unwrap();
        let (all, err) = decode_all(full.clone());
        assert!(err.is_none(), "{case}: {err:?}");
        let end = full.iter().rposition(|&b| b != 0).map_or(0, |p| p + 1);
        let step = (end / 700).max(1);
        let mut cut = 0;
        while cut <= end + 8 {
            let (got, err) = decode_all(full[..cut.min(full.len())].to_vec());
            assert!(got.len() <= all.len());
            assert_eq!(&all[..got.len()], &got[..], "{case} cut {cut}");
            if let Some(e) = err {
                assert!(e.is_unexpected_eof(), "{case} cut {cut}: {e}");
            }
            cut += step;
        }
    }
}

/// A reader that returns at most `max` bytes per call, varying, as a file may.
struct Trickle {
    inner: std::io::Cursor<Vec<u8>>,
    max: u64,
    rng: Rng,
}

impl std::io::Read for Trickle {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        let n = out.len().min(self.rng.range(1, self.max) as usize);
        self.inner.read(&mut out[..n])
    }
}

/// Records read from several MiB of segments (records crossing the decoder's read
/// chunks, reads cut short at random) keep their bytes whether the caller holds
/// them or drops them at once: the decoder reads into a chunk's memory again only
/// when no record of it is held, and carries a record split between chunks over
/// whole.
#[test]
fn records_across_read_chunks_stay_intact() {
    for seed in 1..=4u64 {
        let mut rng = Rng::new(seed);
        let mut next = || rng.next_u64();
        let mut segs = Vec::new();
        let mut want: Vec<Vec<u8>> = Vec::new();
        let mut crc = 0;
        for s in 0..3 {
            let mut recs = Vec::new();
            let mut total = 0;
            while total < (2 << 20) + s * 300_000 {
                let len = match next() % 10 {
                    0 => 200_000 + (next() % 900_000) as usize,
                    1 => 0,
                    _ => 1 + (next() % 3000) as usize,
                };
                let fill = next() as u8;
                let data: Vec<u8> = (0..len).map(|i| fill.wrapping_add(i as u8)).collect();
                total += len + 16;
                recs.push((RecordType::Entry as i64, Some(data.clone())));
                want.push(data);
            }
            // One CRC chain across the segments, as a WAL writes them.
            let mut enc = Encoder::new(Vec::new(), crc, 0);
            for (t, d) in &recs {
                enc.encode(*t, d.as_deref()).unwrap();
            }
            enc.flush().unwrap();
            crc = enc.crc();
            let bytes = enc.into_inner();
            let max = [1 << 20, 70_000, 4096][s % 3];
            segs.push(SegmentReader::new(
                format!("{s}.wal"),
                bytes.len() as u64,
                Box::new(Trickle {
                    inner: std::io::Cursor::new(bytes),
                    max,
                    rng: Rng::new(next()),
                }),
            ));
        }
        let mut dec = Decoder::new(segs);
        let hold_every = 2 + (next() % 5) as usize;
        let mut held = Vec::new();
        let mut i = 0;
        while let Some(rec) = dec.decode().unwrap() {
            let data = rec.data.unwrap_or_default();
            assert_eq!(&data[..], &want[i][..], "seed {seed} record {i}");
            // Holding a run of records now and then pins their chunks.
            if (i / 50) % hold_every == 0 {
                held.push((i, data));
            }
            i += 1;
        }
        assert_eq!(i, want.len(), "seed {seed}");
        for (i, data) in held {
            assert_eq!(
                &data[..],
                &want[i][..],
                "seed {seed}: held record {i} changed"
            );
        }
    }
}
