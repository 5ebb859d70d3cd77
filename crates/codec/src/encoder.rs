//! Writing framed, CRC-chained records.

use std::io::{self, Write};

use crate::crc::{own_crc, Joins, RollingCrc};
use crate::frame::{encode_frame_size, FRAME_HEADER_BYTES, WAL_PAGE_BYTES};
use crate::pagewriter::PageWriter;
use crate::payload::{entry_head, hard_state_bytes, put_varint, EntryEncoding, MAX_HEAD_BYTES};
use crate::raftpb::{Entry, HardState};
use crate::record::RecordType;

/// Appends records to one segment: frames them, chains the CRC and buffers the bytes
/// in a [`PageWriter`] so the file sees whole 4 KiB pages until [`Encoder::flush`].
///
/// Each record is framed straight into the page writer's buffer (no intermediate
/// copy, no allocation), in the same two writes etcd makes per record (the length
/// field, then the record and its padding), so the file sees exactly etcd's writes.
///
/// Nothing is durable until the caller flushes and then syncs the file.
#[derive(Debug)]
pub struct Encoder<W: Write> {
    pw: PageWriter<W>,
    crc: RollingCrc,
    joins: Joins,
    start: u64,
    encoded: u64,
}

impl<W: Write> Encoder<W> {
    /// Starts encoding into `w`, whose current offset is `offset`, continuing the CRC
    /// chain from `prev_crc`.
    pub fn new(w: W, prev_crc: u32, offset: u64) -> Self {
        Self {
            pw: PageWriter::new(w, WAL_PAGE_BYTES, (offset % WAL_PAGE_BYTES as u64) as usize),
            crc: RollingCrc::new(prev_crc),
            joins: Joins::default(),
            start: offset,
            encoded: 0,
        }
    }

    /// Frames and buffers one record; its `crc` field becomes the running CRC
    /// including `data`. For a `crc` record (no data) that is the chain's value.
    pub fn encode(&mut self, rec_type: i64, data: Option<&[u8]>) -> io::Result<()> {
        match data {
            Some(d) => self.encode_parts(rec_type, Some(&[d])),
            None => self.encode_parts(rec_type, None),
        }
    }

    /// Frames and buffers one entry record: the same bytes as
    /// [`crate::encode_entry`] followed by [`Encoder::encode`] with
    /// [`RecordType::Entry`], without marshaling the entry into a buffer first.
    pub fn encode_entry(&mut self, e: &Entry, form: EntryEncoding) -> io::Result<()> {
        let mut head = [0u8; MAX_HEAD_BYTES];
        let n = entry_head(e, form, &mut head);
        if let Some(d) = e.data.as_deref() {
            let mut crc = self.crc;
            crc.update(&head[..n]);
            let crc = crc.update(d);
            if let Some(done) = self.encode_entry_fast(&head, n, d, crc) {
                return done;
            }
        }
        match &e.data {
            Some(d) => self.encode_parts(RecordType::Entry as i64, Some(&[&head[..n], d])),
            None => self.encode_parts(RecordType::Entry as i64, Some(&[&head[..n]])),
        }
    }

    /// Frames and buffers `ents`: the same bytes and writes as
    /// [`Encoder::encode_entry`] on each, faster for a batch. A group of entries
    /// gets its heads marshaled, then the own CRCs of the entries in runs of one
    /// length (side by side, and reading heads whose stores have landed), then
    /// each frame, its CRC joined to the chain or chained directly
    /// ([`crate::crc`]).
    pub fn encode_entries(&mut self, ents: &[Entry], form: EntryEncoding) -> io::Result<()> {
        const AHEAD: usize = 16;
        let mut heads = [[0u8; MAX_HEAD_BYTES]; AHEAD];
        let mut ns = [0usize; AHEAD];
        let mut own = [0u32; AHEAD];
        for group in ents.chunks(AHEAD) {
            for (i, e) in group.iter().enumerate() {
                ns[i] = entry_head(e, form, &mut heads[i]);
            }
            // A group of one data length (a batch of same-sized entries) gets every
            // own CRC side by side, ahead; in any other, an entry gets its own CRC
            // only when it is joined, as most are then chained directly and the
            // own CRC would double their CRC work.
            let first = group.first().and_then(|e| e.data.as_ref()).map(|d| d.len());
            if first.is_some()
                && group
                    .iter()
                    .all(|e| e.data.as_ref().map(|d| d.len()) == first)
            {
                for (i, e) in group.iter().enumerate() {
                    own[i] = own_crc(&heads[i][..ns[i]], e.data.as_deref().unwrap_or(&[]));
                }
                for (i, e) in group.iter().enumerate() {
                    let d = e.data.as_deref().unwrap_or(&[]);
                    let n = ns[i];
                    let own = own[i];
                    self.frame_entry(e, form, &heads[i], n, d, || own)?;
                }
            } else {
                for (i, e) in group.iter().enumerate() {
                    let Some(d) = e.data.as_deref() else {
                        self.encode_entry(e, form)?;
                        continue;
                    };
                    let n = ns[i];
                    let head = &heads[i][..n];
                    self.frame_entry(e, form, &heads[i], n, d, || own_crc(head, d))?;
                }
            }
        }
        Ok(())
    }

    /// Frames entry `e` (head `head[..n]`, data `d`) with its CRC joined to the
    /// chain from its own CRC (`own()`), or chained directly.
    #[inline]
    fn frame_entry(
        &mut self,
        e: &Entry,
        form: EntryEncoding,
        head: &[u8; MAX_HEAD_BYTES],
        n: usize,
        d: &[u8],
        own: impl FnOnce() -> u32,
    ) -> io::Result<()> {
        let crc = self
            .joins
            .join(self.crc.value(), n + d.len(), own)
            .unwrap_or_else(|| {
                // No shift for this length: chain it directly.
                let mut c = self.crc;
                c.update(&head[..n]);
                c.update(d)
            });
        match self.encode_entry_fast(head, n, d, crc) {
            Some(done) => done,
            None => self.encode_entry(e, form),
        }
    }

    /// The common case of [`Encoder::encode_entry`], an entry with at least a few
    /// dozen bytes of data whose frame fits the page buffer: the frame is written
    /// with one call into the buffer and fixed-size copies, except for the data.
    /// `None` when the case does not apply (nothing has been done then).
    #[inline]
    fn encode_entry_fast(
        &mut self,
        head: &[u8; MAX_HEAD_BYTES],
        n: usize,
        data: &[u8],
        crc: u32,
    ) -> Option<io::Result<()>> {
        // The length field, the record's head and the entry's head, in one array
        // written whole: [len field 8][record head <= 19][entry head <= 48].
        const PREFIX: usize = 80;
        let data_len = n + data.len();
        let mut pre = [0u8; PREFIX];
        pre[8] = 0x08;
        pre[9] = RecordType::Entry as u8;
        pre[10] = 0x10;
        let mut h = 11;
        h += put_varint(u64::from(crc), &mut pre[h..]);
        pre[h] = 0x1a;
        h += 1;
        h += put_varint(data_len as u64, &mut pre[h..]);
        let p = h + n;
        if p + MAX_HEAD_BYTES - n > PREFIX {
            return None;
        }
        pre[h..h + MAX_HEAD_BYTES].copy_from_slice(head);
        let rec_len = h - 8 + data_len;
        let (len_field, pad) = encode_frame_size(rec_len);
        let total = FRAME_HEADER_BYTES + rec_len + pad;
        // The whole-array write must land inside the frame, under the data or the
        // zeroed tail; and etcd's two writes must not make the page writer flush
        // (when they do not, one write of both is the same to the file).
        if p + data.len() < PREFIX || data.len() < 8 || !self.pw.has_room(total) {
            return None;
        }
        pre[..8].copy_from_slice(&len_field.to_le_bytes());
        self.crc = RollingCrc::new(crc);
        let written = self.pw.write_with(total, |out| {
            out[..PREFIX].copy_from_slice(&pre);
            // Padding: the last 8 bytes zeroed, then the data over all but the pad.
            out[total - 8..].copy_from_slice(&[0; 8]);
            out[p..p + data.len()].copy_from_slice(data);
        });
        self.encoded += total as u64;
        Some(written)
    }

    /// Frames and buffers one hard-state record: the same bytes as
    /// [`crate::encode_hard_state`] followed by [`Encoder::encode`] with
    /// [`RecordType::State`], without an allocation.
    pub fn encode_hard_state(&mut self, st: &HardState) -> io::Result<()> {
        let mut buf = [0u8; MAX_HEAD_BYTES];
        let n = hard_state_bytes(st, &mut buf);
        self.encode_parts(RecordType::State as i64, Some(&[&buf[..n]]))
    }

    /// Frames one record whose data is the concatenation of `parts` (`None`: no
    /// data field at all, as for a `crc` record).
    fn encode_parts(&mut self, rec_type: i64, parts: Option<&[&[u8]]>) -> io::Result<()> {
        let mut data_len = 0usize;
        let mut crc = self.crc;
        for p in parts.unwrap_or(&[]) {
            crc.update(p);
            data_len += p.len();
        }
        self.crc = crc;
        // `walpb.Record`: `08 type 10 crc`, then `1a len data` when there is data.
        let mut head = [0u8; 1 + 10 + 1 + 10 + 1 + 10];
        head[0] = 0x08;
        let mut h = 1 + put_varint(rec_type as u64, &mut head[1..]);
        head[h] = 0x10;
        h += 1;
        h += put_varint(u64::from(crc.value()), &mut head[h..]);
        if parts.is_some() {
            head[h] = 0x1a;
            h += 1;
            h += put_varint(data_len as u64, &mut head[h..]);
        }
        let rec_len = h + data_len;
        let (len_field, pad) = encode_frame_size(rec_len);
        // Two writes, like etcd: the length field, then the record and its padding.
        // The split decides where the page writer flushes, which decides segment cuts.
        self.pw.write_all(&len_field.to_le_bytes())?;
        self.pw.write_with(rec_len + pad, |out| {
            out[..h].copy_from_slice(&head[..h]);
            let mut o = h;
            for p in parts.unwrap_or(&[]) {
                out[o..o + p.len()].copy_from_slice(p);
                o += p.len();
            }
            out[o..].fill(0);
        })?;
        self.encoded += (FRAME_HEADER_BYTES + rec_len + pad) as u64;
        Ok(())
    }

    /// Hands everything buffered to the writer (no sync).
    pub fn flush(&mut self) -> io::Result<()> {
        self.pw.flush()
    }

    /// The running CRC after the last encoded record.
    pub fn crc(&self) -> u32 {
        self.crc.value()
    }

    /// The writer's offset: where it started plus what was handed to it. Records
    /// still buffered are not included (etcd judges segment cuts on this value).
    pub fn position(&self) -> u64 {
        self.start + self.pw.written()
    }

    /// Total frame bytes encoded (buffered or not) since this encoder was made.
    pub fn encoded_bytes(&self) -> u64 {
        self.encoded
    }

    /// Gives back the writer. Anything still buffered is dropped: flush first.
    pub fn into_inner(self) -> W {
        self.pw.into_inner()
    }

    /// Bytes encoded but not yet handed to the writer.
    pub fn buffered(&self) -> usize {
        self.pw.buffered()
    }

    /// The underlying writer.
    pub fn get_ref(&self) -> &W {
        self.pw.get_ref()
    }

    /// The underlying writer, mutably (for syncing it after a flush).
    pub fn get_mut(&mut self) -> &mut W {
        self.pw.get_mut()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::encode_frame_size;
    use crate::payload::{encode_entry, encode_hard_state};
    use crate::record::encode_record;
    use bytes::Bytes;

    /// Records every write the file would see: its offset and its bytes.
    #[derive(Default)]
    struct Checker {
        writes: Vec<(u64, Vec<u8>)>,
        pos: u64,
    }
    impl Write for Checker {
        fn write(&mut self, b: &[u8]) -> io::Result<usize> {
            self.writes.push((self.pos, b.to_vec()));
            self.pos += b.len() as u64;
            Ok(b.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    /// The encoder as it was before records were framed in place: marshal into a
    /// buffer, frame it there, then two `write_all`s (etcd's encoder, line by line).
    struct Reference {
        pw: PageWriter<Checker>,
        crc: RollingCrc,
    }
    impl Reference {
        fn encode(&mut self, rec_type: i64, data: Option<&[u8]>) {
            let crc = self.crc.update(data.unwrap_or(&[]));
            let mut buf = Vec::new();
            encode_record(rec_type, crc, data, &mut buf);
            let (len_field, pad) = encode_frame_size(buf.len());
            buf.resize(buf.len() + pad, 0);
            self.pw.write_all(&len_field.to_le_bytes()).unwrap();
            self.pw.write_all(&buf).unwrap();
        }
    }

    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 = self
                .0
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            self.0 >> 17
        }
    }

    fn entry(rng: &mut Rng) -> Entry {
        // Mostly small, sometimes larger than the 128 KiB buffer.
        let len = match rng.next() % 20 {
            0 => (rng.next() % 400_000) as usize,
            1 => 0,
            _ => (rng.next() % 3000) as usize,
        };
        let r#type = match rng.next() % 4 {
            0 => -1 - (rng.next() % 3) as i32,
            1 => 1,
            2 => (rng.next() % 1000) as i32,
            _ => 0,
        };
        Entry {
            r#type,
            term: rng.next() >> (rng.next() % 47),
            index: rng.next() >> (rng.next() % 47),
            data: (rng.next() % 10)
                .ne(&0)
                .then(|| Bytes::from(vec![(len % 251) as u8 | 1; len])),
        }
    }

    /// Framing in place hands the file exactly the writes (offsets and bytes) the
    /// two-buffer encoder did, across flushes, page offsets and records larger
    /// than the buffer: segment cuts, judged on the flushed offset, are unchanged.
    #[test]
    fn same_writes_as_the_buffering_encoder() {
        for seed in 0..40u64 {
            let mut rng = Rng(seed * 7919 + 1);
            let start = (rng.next() % 20_000) / 8 * 8;
            let prev = rng.next() as u32;
            let mut new = Encoder::new(Checker::default(), prev, start);
            new.get_mut().pos = start;
            let mut old = Reference {
                pw: PageWriter::new(
                    Checker {
                        pos: start,
                        ..Checker::default()
                    },
                    WAL_PAGE_BYTES,
                    (start % WAL_PAGE_BYTES as u64) as usize,
                ),
                crc: RollingCrc::new(prev),
            };
            let form = if (seed % 2).eq(&0) {
                EntryEncoding::Etcd36
            } else {
                EntryEncoding::Raft37
            };
            for _ in 0..300 {
                match rng.next() % 10 {
                    0 => {
                        let st = HardState {
                            term: rng.next(),
                            vote: rng.next() % 5,
                            commit: rng.next(),
                        };
                        new.encode_hard_state(&st).unwrap();
                        old.encode(RecordType::State as i64, Some(&encode_hard_state(&st)));
                    }
                    1 => {
                        new.encode(RecordType::Crc as i64, None).unwrap();
                        old.encode(RecordType::Crc as i64, None);
                    }
                    2 => {
                        new.flush().unwrap();
                        old.pw.flush().unwrap();
                    }
                    3 => {
                        let d = vec![7u8; (rng.next() % 200) as usize];
                        new.encode(RecordType::Metadata as i64, Some(&d)).unwrap();
                        old.encode(RecordType::Metadata as i64, Some(&d));
                    }
                    4 => {
                        // A batch, mostly of one data length (the case where each
                        // entry's CRC is joined to the chain), as a save hands it.
                        let len = (rng.next() % 300) as usize;
                        let batch: Vec<Entry> = (0..1 + rng.next() % 40)
                            .map(|_| {
                                let mut e = entry(&mut rng);
                                if !rng.next().is_multiple_of(8) {
                                    e.data = Some(Bytes::from(vec![(len % 7) as u8; len]));
                                }
                                e
                            })
                            .collect();
                        new.encode_entries(&batch, form).unwrap();
                        for e in &batch {
                            let mut buf = Vec::new();
                            encode_entry(e, form, &mut buf);
                            old.encode(RecordType::Entry as i64, Some(&buf));
                        }
                    }
                    _ => {
                        let e = entry(&mut rng);
                        new.encode_entry(&e, form).unwrap();
                        let mut buf = Vec::new();
                        encode_entry(&e, form, &mut buf);
                        old.encode(RecordType::Entry as i64, Some(&buf));
                    }
                }
                assert_eq!(new.crc(), old.crc.value());
                assert_eq!(new.position(), start + old.pw.written(), "seed {seed}");
            }
            new.flush().unwrap();
            old.pw.flush().unwrap();
            let (a, b) = (&new.get_ref().writes, &old.pw.get_ref().writes);
            assert_eq!(a.len(), b.len(), "seed {seed}: number of writes");
            for (i, (x, y)) in a.iter().zip(b).enumerate() {
                assert_eq!(x.0, y.0, "seed {seed}: offset of write {i}");
                assert!(x.1 == y.1, "seed {seed}: bytes of write {i}");
            }
        }
    }

    #[test]
    fn entry_and_hard_state_bytes_match_the_marshalers() {
        let mut rng = Rng(99);
        for _ in 0..2000 {
            let e = entry(&mut rng);
            for form in [EntryEncoding::Etcd36, EntryEncoding::Raft37] {
                let mut want = Vec::new();
                encode_entry(&e, form, &mut want);
                let mut head = [0u8; MAX_HEAD_BYTES];
                let n = entry_head(&e, form, &mut head);
                let mut got = head[..n].to_vec();
                got.extend_from_slice(e.data.as_deref().unwrap_or(&[]));
                assert_eq!(got, want, "{e:?} {form:?}");
            }
            let st = HardState {
                term: rng.next(),
                vote: rng.next() >> (rng.next() % 40),
                commit: u64::MAX - rng.next(),
            };
            let mut buf = [0u8; MAX_HEAD_BYTES];
            let n = hard_state_bytes(&st, &mut buf);
            assert_eq!(&buf[..n], &encode_hard_state(&st)[..]);
        }
    }
}
