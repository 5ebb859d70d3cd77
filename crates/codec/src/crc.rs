//! The rolling CRC32C that chains every record of a WAL.
//!
//! Every record's `crc` is the CRC of all record data since the log began, so the
//! value of record n waits for the value of record n - 1: for the short records of
//! a Raft log (100 B entries) the CRC is latency-bound, one `crc32` instruction
//! after another. Two things shorten that chain without changing a value:
//! - short inputs take a path with as few instructions as possible (8-byte steps,
//!   then at most one 4-, 2- and 1-byte step);
//! - `Joins`: a record's CRC from zero (`own_crc`) does not depend on the chain,
//!   so the encoder computes those for several records side by side, and joins each
//!   to the chain with one linear map of 32 bits (the effect of the record's length
//!   in zero bytes on the previous value), the same for every record of that length.
//!   Only batches of one data length get their own CRCs ahead; where lengths vary,
//!   most records are chained directly and the own CRC is made only for one joined.

/// A running CRC32C (Castagnoli), continued record after record and file after file.
///
/// This is Go's `crc32.Update(prev, castagnoli, data)`: the value is always in its
/// final (post-inverted) form, so it can be stored in a `crc` record and resumed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RollingCrc(u32);

impl RollingCrc {
    /// Starts a chain from `prev` (0 for a brand-new WAL).
    pub fn new(prev: u32) -> Self {
        Self(prev)
    }

    /// Extends the chain with `data` and returns the new value.
    pub fn update(&mut self, data: &[u8]) -> u32 {
        self.0 = !update_reg(!self.0, data);
        self.0
    }

    /// The current value.
    pub fn value(&self) -> u32 {
        self.0
    }
}

/// Below this length the CRC runs one `crc32` instruction per 8 bytes here; from it
/// on, through the `crc32c` crate, whose three interleaved streams win on long data.
const SHORT_BYTES: usize = 256;

/// The CRC32C register after `data`, from `reg` (no inversion before or after).
#[inline]
fn update_reg(reg: u32, data: &[u8]) -> u32 {
    #[cfg(target_arch = "x86_64")]
    if data.len() < SHORT_BYTES && std::arch::is_x86_feature_detected!("sse4.2") {
        // SAFETY: the CPU has SSE4.2, checked just above.
        return unsafe { sse42::update_reg(reg, data) };
    }
    !crc32c::crc32c_append(!reg, data)
}

/// The CRC32C register of `head` then `data` from zero: what they add to any
/// chain once the chain is shifted past them ([`Joins::join`]).
#[inline]
pub(crate) fn own_crc(head: &[u8], data: &[u8]) -> u32 {
    #[cfg(target_arch = "x86_64")]
    if head.len() < SHORT_BYTES
        && data.len() < SHORT_BYTES
        && std::arch::is_x86_feature_detected!("sse4.2")
    {
        // SAFETY: the CPU has SSE4.2, checked just above.
        return unsafe { sse42::update_reg2(head, data) };
    }
    update_reg(update_reg(0, head), data)
}

/// The longest record whose length gets a [`Shift`].
const MAX_SHIFT_BYTES: usize = 4096;

/// The CRC32C polynomial, bit-reflected.
const POLY: u32 = 0x82f6_3b78;

/// The effect of `len` zero bytes on a CRC32C register: a linear map of 32 bits,
/// applied with eight 16-entry tables (one per 4 bits of the register).
struct Shift {
    len: usize,
    tables: [[u32; 16]; 8],
}

impl Shift {
    fn new(len: usize) -> Self {
        const ZEROS: [u8; MAX_SHIFT_BYTES] = [0; MAX_SHIFT_BYTES];
        // Column 31 (the register holding x^0) by running the CRC over the zeros;
        // each lower column is the one above it times x, which commutes with the map.
        let mut cols = [0u32; 32];
        let zeros = ZEROS.get(..len).unwrap_or(&ZEROS);
        cols[31] = update_reg(1 << 31, zeros);
        for i in (0..31).rev() {
            let v = cols[i + 1];
            cols[i] = (v >> 1) ^ if v & 1 == 1 { POLY } else { 0 };
        }
        let mut tables = [[0u32; 16]; 8];
        for (k, table) in tables.iter_mut().enumerate() {
            for nib in 1..16usize {
                let low = nib.trailing_zeros() as usize;
                table[nib] = table[nib & (nib - 1)] ^ cols[4 * k + low];
            }
        }
        Self { len, tables }
    }

    #[inline]
    fn apply(&self, reg: u32) -> u32 {
        let mut out = 0;
        for (k, table) in self.tables.iter().enumerate() {
            out ^= table[((reg >> (4 * k)) & 0xf) as usize];
        }
        out
    }
}

/// Joins records' own CRCs to a chain, for runs of records of one length.
#[derive(Default)]
pub(crate) struct Joins {
    shift: Option<Box<Shift>>,
    last_miss: usize,
}

impl std::fmt::Debug for Joins {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Joins")
            .field("len", &self.shift.as_ref().map(|s| s.len))
            .finish()
    }
}

impl Joins {
    /// The chain value after a record of `len` bytes whose own CRC is `own()`,
    /// from `prev`; `None` when no shift is at hand for `len` (chain it
    /// directly). `own` is called only when the record is joined.
    #[inline]
    pub fn join(&mut self, prev: u32, len: usize, own: impl FnOnce() -> u32) -> Option<u32> {
        match &self.shift {
            Some(s) if s.len == len => return Some(!(s.apply(!prev) ^ own())),
            _ => {}
        }
        if len == self.last_miss && len > 0 && len <= MAX_SHIFT_BYTES {
            let s = self.shift.insert(Box::new(Shift::new(len)));
            return Some(!(s.apply(!prev) ^ own()));
        }
        self.last_miss = len;
        None
    }
}

#[cfg(target_arch = "x86_64")]
mod sse42 {
    use std::arch::x86_64::{_mm_crc32_u16, _mm_crc32_u32, _mm_crc32_u64, _mm_crc32_u8};

    /// The register after `a` then `b`, from zero, in one call.
    #[target_feature(enable = "sse4.2")]
    pub(super) fn update_reg2(a: &[u8], b: &[u8]) -> u32 {
        update_reg(update_reg(0, a), b)
    }

    /// [`super::update_reg`] for short inputs: unaligned 8-byte steps, then at most
    /// one 4-, 2- and 1-byte step (the crate steps byte by byte up to alignment and
    /// after the last full word, which for a 100-byte record doubles the chain).
    #[inline]
    #[target_feature(enable = "sse4.2")]
    pub(super) fn update_reg(reg: u32, data: &[u8]) -> u32 {
        let mut words = data.chunks_exact(8);
        let mut c = u64::from(reg);
        for w in &mut words {
            let mut b = [0u8; 8];
            b.copy_from_slice(w);
            c = _mm_crc32_u64(c, u64::from_le_bytes(b));
        }
        // The low 32 bits of the 64-bit form are the register.
        let mut c = c as u32;
        let mut rest = words.remainder();
        if let Some((w, tail)) = rest.split_first_chunk::<4>() {
            c = _mm_crc32_u32(c, u32::from_le_bytes(*w));
            rest = tail;
        }
        if let Some((w, tail)) = rest.split_first_chunk::<2>() {
            c = _mm_crc32_u16(c, u16::from_le_bytes(*w));
            rest = tail;
        }
        if let Some(&b) = rest.first() {
            c = _mm_crc32_u8(c, b);
        }
        c
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chaining_equals_one_pass() {
        let mut c = RollingCrc::new(0);
        c.update(b"hello ");
        c.update(b"world");
        assert_eq!(c.value(), crc32c::crc32c(b"hello world"));
        // Castagnoli check value.
        assert_eq!(crc32c::crc32c(b"123456789"), 0xe306_9283);
    }

    fn bytes(seed: u64, n: usize) -> Vec<u8> {
        let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
        (0..n)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect()
    }

    /// Every length and alignment of the short path against the crate.
    #[test]
    fn short_inputs_match_the_crate() {
        let buf = bytes(1, 2 * SHORT_BYTES + 16);
        for start in 0..8 {
            for len in 0..SHORT_BYTES + 20 {
                let d = &buf[start..start + len];
                for prev in [0, 0xffff_ffff, 0x1234_5678] {
                    assert_eq!(
                        RollingCrc::new(prev).update(d),
                        crc32c::crc32c_append(prev, d),
                        "start {start} len {len}"
                    );
                }
            }
        }
    }

    /// A shift is the effect of zeros: applying it equals running the CRC over them.
    #[test]
    fn shift_is_the_effect_of_zero_bytes() {
        for len in [1, 8, 100, 109, 1000, MAX_SHIFT_BYTES] {
            let s = Shift::new(len);
            let zeros = vec![0u8; len];
            for reg in [1, 0x8000_0000, 0xffff_ffff, 0x0bad_f00d] {
                assert_eq!(
                    s.apply(reg),
                    !crc32c::crc32c_append(!reg, &zeros),
                    "len {len}"
                );
            }
        }
    }

    /// Joining own CRCs gives the direct chain's values, through runs of one
    /// length, changes of length and lengths too long for a shift.
    #[test]
    fn joins_match_the_direct_chain() {
        let lens: Vec<usize> = [
            vec![109; 20],
            vec![0, 0, 1, 1, 1],
            (1..40).collect(),
            vec![1009; 5],
            vec![MAX_SHIFT_BYTES + 1; 3],
            vec![7, 109, 7, 109, 7, 7, 7],
        ]
        .concat();
        let mut joins = Joins::default();
        let mut chain = 0xdead_beef;
        let mut joined = 0;
        for (i, &len) in lens.iter().enumerate() {
            let d = bytes(i as u64 + 7, len);
            let cut = (i * 5) % (len + 1);
            let want = crc32c::crc32c_append(chain, &d);
            let mut owned = false;
            let got = joins.join(chain, len, || {
                owned = true;
                own_crc(&d[..cut], &d[cut..])
            });
            // The own CRC is asked for only when the record is joined.
            assert_eq!(owned, got.is_some(), "record {i} of length {len}");
            if let Some(got) = got {
                assert_eq!(got, want, "record {i} of length {len}");
                joined += 1;
            }
            chain = want;
        }
        // Each record of a length seen just before (or cached) was joined: 19 of the
        // 109s, two 1s (and the 1 that opens the next run), four 1009s, two 7s.
        assert_eq!(joined, 19 + 2 + 1 + 4 + 2);
    }
}
