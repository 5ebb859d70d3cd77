//! etcd's `ioutil.PageWriter`: a write buffer that hands the file whole pages only.

use std::io::{self, Write};

/// Default buffer size before a flush is forced (etcd's `defaultBufferBytes`).
pub const DEFAULT_BUFFER_BYTES: usize = 128 * 1024;

/// Buffers writes and passes them on in whole pages, relative to the file offset the
/// writer started at, unless [`PageWriter::flush`] is called.
///
/// Whole-page writes keep a torn write from ever damaging a page that was already
/// complete, and they decide when bytes reach the file: the WAL judges segment cuts
/// on the file's offset, so this type reproduces etcd's flushing points exactly.
#[derive(Debug)]
pub struct PageWriter<W: Write> {
    inner: W,
    page_offset: usize,
    page_bytes: usize,
    buffered: usize,
    buf: Vec<u8>,
    watermark: usize,
    written: u64,
    /// Reused by [`PageWriter::write_with`] when the bytes do not fit the buffer.
    scratch: Vec<u8>,
}

impl<W: Write> PageWriter<W> {
    /// Wraps `inner`, whose current offset modulo `page_bytes` is `page_offset`.
    ///
    /// A `page_bytes` of zero is treated as 1 (no alignment).
    pub fn new(inner: W, page_bytes: usize, page_offset: usize) -> Self {
        Self::with_buffer(inner, page_bytes, page_offset, DEFAULT_BUFFER_BYTES)
    }

    /// Like [`PageWriter::new`] with a buffer watermark other than 128 KiB.
    pub fn with_buffer(
        inner: W,
        page_bytes: usize,
        page_offset: usize,
        buffer_bytes: usize,
    ) -> Self {
        let page_bytes = page_bytes.max(1);
        Self {
            inner,
            page_offset: page_offset % page_bytes,
            page_bytes,
            buffered: 0,
            buf: vec![0; buffer_bytes + page_bytes],
            watermark: buffer_bytes,
            written: 0,
            scratch: Vec::new(),
        }
    }

    /// Appends `p`, handing the inner writer only whole pages (unless the caller
    /// flushes). Either all of `p` is accepted or an error is returned.
    pub fn write_all(&mut self, mut p: &[u8]) -> io::Result<()> {
        loop {
            if p.len() + self.buffered <= self.watermark {
                self.buf[self.buffered..self.buffered + p.len()].copy_from_slice(p);
                self.buffered += p.len();
                return Ok(());
            }
            // Complete the partial page at the end of the buffer first.
            let slack = self.page_bytes - (self.page_offset + self.buffered) % self.page_bytes;
            if slack != self.page_bytes {
                let take = slack.min(p.len());
                self.buf[self.buffered..self.buffered + take].copy_from_slice(&p[..take]);
                self.buffered += take;
                p = &p[take..];
                if take < slack {
                    // Not enough data to complete the page: avoid an unaligned flush.
                    return Ok(());
                }
            }
            // The buffer is page-aligned now: clear it out.
            self.flush_buffer()?;
            // Write the complete pages of `p` directly, without copying.
            if p.len() > self.page_bytes {
                let whole = p.len() / self.page_bytes * self.page_bytes;
                self.inner.write_all(&p[..whole])?;
                self.written += whole as u64;
                p = &p[whole..];
            }
            // The tail goes back through the buffer.
        }
    }

    /// Appends `len` bytes that `fill` writes into the slice it is given (all of
    /// it), exactly as [`PageWriter::write_all`] of those bytes would: the inner
    /// writer sees the same writes at the same points. When they fit under the
    /// watermark (nearly always) `fill` writes straight into the page buffer, so
    /// the caller needs no buffer of its own and the bytes are copied once.
    pub fn write_with(&mut self, len: usize, fill: impl FnOnce(&mut [u8])) -> io::Result<()> {
        if len + self.buffered <= self.watermark {
            fill(&mut self.buf[self.buffered..self.buffered + len]);
            self.buffered += len;
            return Ok(());
        }
        // Rare (about once per buffer): materialise the bytes and take the
        // general path.
        let mut tmp = std::mem::take(&mut self.scratch);
        tmp.clear();
        tmp.resize(len, 0);
        fill(&mut tmp);
        let r = self.write_all(&tmp);
        if tmp.capacity() <= 1 << 20 {
            // Keep a moderate scratch buffer; drop one grown by a huge record.
            self.scratch = tmp;
        }
        r
    }

    /// Whether `len` more bytes would stay in the buffer without reaching the inner
    /// writer (so splitting them into several writes makes no difference).
    pub fn has_room(&self, len: usize) -> bool {
        len + self.buffered <= self.watermark
    }

    /// Writes out everything buffered, aligned or not. Does not sync.
    pub fn flush(&mut self) -> io::Result<()> {
        self.flush_buffer()?;
        self.inner.flush()
    }

    fn flush_buffer(&mut self) -> io::Result<()> {
        if self.buffered == 0 {
            return Ok(());
        }
        let n = self.buffered;
        // Like etcd, the buffer is considered consumed even if the write fails: the
        // caller must treat the file as broken (the WAL poisons itself).
        self.page_offset = (self.page_offset + n) % self.page_bytes;
        self.buffered = 0;
        self.inner.write_all(&self.buf[..n])?;
        self.written += n as u64;
        Ok(())
    }

    /// Bytes handed to the inner writer so far.
    pub fn written(&self) -> u64 {
        self.written
    }

    /// Gives back the inner writer. Anything still buffered is dropped: flush first.
    pub fn into_inner(self) -> W {
        self.inner
    }

    /// Bytes accepted but not yet handed to the inner writer.
    pub fn buffered(&self) -> usize {
        self.buffered
    }

    /// The inner writer.
    pub fn get_ref(&self) -> &W {
        &self.inner
    }

    /// The inner writer, mutably. Writing to it directly breaks page alignment.
    pub fn get_mut(&mut self) -> &mut W {
        &mut self.inner
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Records the size of every write that reaches the inner writer.
    #[derive(Default)]
    struct Checker {
        writes: Vec<usize>,
        data: Vec<u8>,
    }
    impl Write for Checker {
        fn write(&mut self, b: &[u8]) -> io::Result<usize> {
            self.writes.push(b.len());
            self.data.extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    // etcd: TestPageWriterRandom
    #[test]
    fn page_writer_random() {
        let (page, buffer) = (128, 8 * 1024);
        let mut pw = PageWriter::with_buffer(Checker::default(), page, 0, buffer);
        let mut want = Vec::new();
        let mut seed = 12345u64;
        for _ in 0..4096 {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let n = (seed >> 33) as usize % (4 * buffer);
            let chunk: Vec<u8> = (0..n).map(|i| (i as u8).wrapping_add(seed as u8)).collect();
            pw.write_all(&chunk).unwrap();
            want.extend_from_slice(&chunk);
        }
        let written = pw.get_ref().data.len();
        assert!(
            want.len() - written <= page + buffer,
            "pending bytes bounded"
        );
        assert!(
            pw.get_ref().writes.iter().all(|w| w % page == 0),
            "only whole pages before an explicit flush"
        );
        pw.flush().unwrap();
        assert_eq!(pw.get_ref().data, want);
    }

    // etcd: TestPageWriterPartialSlack
    #[test]
    fn page_writer_partial_slack() {
        let mut pw = PageWriter::with_buffer(Checker::default(), 128, 0, 1024);
        // Put the writer at a non-zero page offset.
        pw.write_all(&[0; 64]).unwrap();
        pw.flush().unwrap();
        assert_eq!(pw.get_ref().writes.len(), 1);
        // Nearly fill the buffer.
        pw.write_all(&[0; 1022]).unwrap();
        // Overflow it, without enough to write as aligned.
        pw.write_all(&[0; 8]).unwrap();
        assert_eq!(pw.get_ref().writes.len(), 1);
        // Finish writing the slack space.
        pw.write_all(&[0; 128]).unwrap();
        assert_eq!(pw.get_ref().writes.len(), 2);
        assert!(pw.get_ref().writes[1] % 64 == 0);
    }

    // etcd: TestPageWriterOffset
    #[test]
    fn page_writer_offset() {
        let mut pw = PageWriter::with_buffer(Checker::default(), 128, 0, 1024);
        pw.write_all(&[0; 64]).unwrap();
        pw.flush().unwrap();
        assert_eq!(pw.page_offset, 64);
        let mut pw = PageWriter::with_buffer(Checker::default(), 128, 64, 1024);
        pw.write_all(&[0; 64]).unwrap();
        pw.flush().unwrap();
        assert_eq!(pw.page_offset, 0);
    }

    #[test]
    fn direct_write_of_whole_pages() {
        let mut pw = PageWriter::with_buffer(Checker::default(), 64, 0, 128);
        pw.write_all(&[5; 1000]).unwrap();
        // Aligned and empty: 960 bytes go straight through, 40 stay buffered.
        assert_eq!(pw.get_ref().writes, vec![960]);
        assert_eq!(pw.buffered(), 40);
        // Starting unaligned, the first write completes the page the file is in.
        let mut pw = PageWriter::with_buffer(Checker::default(), 64, 60, 128);
        pw.write_all(&[9; 130]).unwrap();
        assert_eq!(pw.get_ref().writes, vec![4, 64]);
        assert_eq!(pw.buffered(), 62);
    }
}
