//! Codec throughput: encode and decode of entry records (100 B and 1000 B of data),
//! beside raw CRC32C over the same bytes, the ceiling for both; framing (the length
//! field and padding); and `Encoder::encode_entry`, which frames an entry straight
//! into the page buffer (what `Wal::save` does), against marshaling it first, with
//! one data length throughout and with lengths that change from entry to entry.
//!
//! `cargo bench --bench codec`

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use wal_codec::frame::{decode_frame_size, encode_frame_size};
use wal_codec::raftpb::Entry;
use wal_codec::{encode_entry, Decoder, Encoder, EntryEncoding, RecordType, SegmentReader};

const BATCH_BYTES: usize = 4 << 20;

fn entries(size: usize) -> Vec<Vec<u8>> {
    let n = BATCH_BYTES / size;
    (0..n)
        .map(|i| {
            let e = Entry {
                r#type: 0,
                term: 1,
                index: i as u64 + 1,
                data: Some(Bytes::from(vec![(i % 251) as u8; size])),
            };
            let mut out = Vec::new();
            encode_entry(&e, EntryEncoding::Etcd36, &mut out);
            out
        })
        .collect()
}

fn encode(payloads: &[Vec<u8>]) -> Vec<u8> {
    let mut enc = Encoder::new(Vec::with_capacity(BATCH_BYTES * 2), 0, 0);
    for p in payloads {
        enc.encode(RecordType::Entry as i64, Some(p)).unwrap();
    }
    enc.flush().unwrap();
    let mut v = Vec::new();
    std::mem::swap(&mut v, enc.get_mut());
    v
}

fn entry_structs(size: usize) -> Vec<Entry> {
    let n = BATCH_BYTES / size;
    let data = Bytes::from(vec![7u8; size]);
    (0..n)
        .map(|i| Entry {
            r#type: 0,
            term: 1,
            index: i as u64 + 1,
            data: Some(data.clone()),
        })
        .collect()
}

/// Like [`entry_structs`], but every entry's data length differs from the one
/// before it (between half and one and a half `size`), as in real traffic.
fn varied_structs(size: usize) -> Vec<Entry> {
    let n = BATCH_BYTES / size;
    let data = Bytes::from(vec![7u8; size * 2]);
    (0..n)
        .map(|i| Entry {
            r#type: 0,
            term: 1,
            index: i as u64 + 1,
            data: Some(data.slice(..size / 2 + (i * 37) % size)),
        })
        .collect()
}

/// What `Wal::save` did before: marshal each entry into a buffer, then frame it.
fn encode_marshaled(ents: &[Entry], out: Vec<u8>) -> Vec<u8> {
    let mut enc = Encoder::new(out, 0, 0);
    let mut buf = Vec::new();
    for e in ents {
        buf.clear();
        encode_entry(e, EntryEncoding::Etcd36, &mut buf);
        enc.encode(RecordType::Entry as i64, Some(&buf)).unwrap();
    }
    enc.flush().unwrap();
    enc.into_inner()
}

/// What `Wal::save` does: frame each entry straight into the page buffer.
fn encode_in_place(ents: &[Entry], out: Vec<u8>) -> Vec<u8> {
    let mut enc = Encoder::new(out, 0, 0);
    enc.encode_entries(ents, EntryEncoding::Etcd36).unwrap();
    enc.flush().unwrap();
    enc.into_inner()
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("codec");
    for size in [100usize, 1000] {
        let structs = entry_structs(size);
        let sink = Vec::with_capacity(BATCH_BYTES * 2);
        let framed = encode_in_place(&structs, Vec::new()).len() as u64;
        g.throughput(Throughput::Bytes(framed));
        g.bench_with_input(
            BenchmarkId::new("encode_entry_marshaled", size),
            &structs,
            |b, e| {
                let mut out = sink.clone();
                b.iter(|| {
                    out.clear();
                    out = encode_marshaled(e, std::mem::take(&mut out));
                })
            },
        );
        for (name, ents) in [
            ("encode_entry_in_place", structs),
            ("encode_entry_in_place_varied", varied_structs(size)),
        ] {
            g.throughput(Throughput::Bytes(
                encode_in_place(&ents, Vec::new()).len() as u64
            ));
            g.bench_with_input(BenchmarkId::new(name, size), &ents, |b, e| {
                let mut out = sink.clone();
                b.iter(|| {
                    out.clear();
                    out = encode_in_place(e, std::mem::take(&mut out));
                })
            });
        }
        let payloads = entries(size);
        let encoded = encode(&payloads);
        g.throughput(Throughput::Bytes(encoded.len() as u64));
        g.bench_with_input(BenchmarkId::new("encode", size), &payloads, |b, p| {
            b.iter(|| encode(p))
        });
        let bytes = Bytes::from(encoded.clone());
        g.bench_with_input(BenchmarkId::new("decode", size), &bytes, |b, bytes| {
            b.iter(|| {
                let mut dec = Decoder::new(vec![SegmentReader::from_bytes("0.wal", bytes.clone())]);
                let mut n = 0usize;
                while let Some(rec) = dec.decode().unwrap() {
                    n += rec.data.map_or(0, |d| d.len());
                }
                n
            })
        });
        g.bench_with_input(BenchmarkId::new("crc32c", size), &encoded, |b, e| {
            b.iter(|| crc32c::crc32c(e))
        });
        // The per-record CRC calls the decoder makes, one record's data at a time.
        let datas: Vec<Vec<u8>> = payloads.clone();
        g.bench_with_input(
            BenchmarkId::new("crc32c_per_record", size),
            &datas,
            |b, d| {
                b.iter(|| {
                    let mut crc = 0u32;
                    for x in d {
                        crc = crc32c::crc32c_append(crc, x);
                    }
                    crc
                })
            },
        );
    }
    g.finish();

    let mut g = c.benchmark_group("frame");
    let sizes: Vec<usize> = (0..4096).map(|i| i * 37 % 5000).collect();
    g.throughput(Throughput::Elements(sizes.len() as u64));
    g.bench_function("encode_decode_frame_size", |b| {
        b.iter(|| {
            let mut acc = 0u64;
            for &n in &sizes {
                let (field, pad) = encode_frame_size(std::hint::black_box(n));
                let (rec, p) = decode_frame_size(field);
                acc = acc.wrapping_add(rec + p + pad as u64);
            }
            acc
        })
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20).measurement_time(std::time::Duration::from_secs(3));
    targets = bench
}
criterion_main!(benches);
