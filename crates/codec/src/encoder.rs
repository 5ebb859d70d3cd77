//! Writing framed, CRC-chained records.

use std::io::{self, Write};

use crate::crc::RollingCrc;
use crate::frame::{encode_frame_size, WAL_PAGE_BYTES};
use crate::pagewriter::PageWriter;
use crate::record::encode_record;

/// Appends records to one segment: frames them, chains the CRC and buffers the bytes
/// in a [`PageWriter`] so the file sees whole 4 KiB pages until [`Encoder::flush`].
///
/// Nothing is durable until the caller flushes and then syncs the file.
#[derive(Debug)]
pub struct Encoder<W: Write> {
    pw: PageWriter<W>,
    crc: RollingCrc,
    buf: Vec<u8>,
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
            buf: Vec::with_capacity(64 * 1024),
            start: offset,
            encoded: 0,
        }
    }

    /// Frames and buffers one record; its `crc` field becomes the running CRC
    /// including `data`. For a `crc` record (no data) that is the chain's value.
    pub fn encode(&mut self, rec_type: i64, data: Option<&[u8]>) -> io::Result<()> {
        let crc = self.crc.update(data.unwrap_or(&[]));
        self.buf.clear();
        encode_record(rec_type, crc, data, &mut self.buf);
        let (len_field, pad) = encode_frame_size(self.buf.len());
        self.buf.resize(self.buf.len() + pad, 0);
        // Two writes, like etcd: the length field, then the record and its padding.
        // The split decides where the page writer flushes, which decides segment cuts.
        self.pw.write_all(&len_field.to_le_bytes())?;
        self.pw.write_all(&self.buf)?;
        self.encoded += (8 + self.buf.len()) as u64;
        if self.buf.capacity() > 1024 * 1024 {
            // Do not keep a huge buffer around after one large record.
            self.buf = Vec::with_capacity(64 * 1024);
        }
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
