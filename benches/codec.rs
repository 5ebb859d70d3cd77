//! Codec throughput: encode and decode of entry records (100 B and 1000 B of data),
//! beside raw CRC32C over the same bytes, the ceiling for both.
//!
//! `cargo bench --bench codec`

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
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

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("codec");
    for size in [100usize, 1000] {
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
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20).measurement_time(std::time::Duration::from_secs(3));
    targets = bench
}
criterion_main!(benches);
