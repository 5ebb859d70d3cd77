//! The rolling CRC32C that chains every record of a WAL.
//!
//! Every record's `crc` is the CRC of all record data since the log began, so the
//! value of record n waits for the value of record n - 1: for the short records of
//! a Raft log (100 B entries) the CRC is latency-bound, one `crc32` instruction
//! after another. Short inputs therefore take a path with as few of them as
//! possible; long ones go to the `crc32c` crate.

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

#[cfg(target_arch = "x86_64")]
mod sse42 {
    use std::arch::x86_64::{_mm_crc32_u16, _mm_crc32_u32, _mm_crc32_u64, _mm_crc32_u8};

    /// [`super::update_reg`] for short inputs: unaligned 8-byte steps, then at most
    /// one 4-, 2- and 1-byte step (the crate steps byte by byte up to alignment and
    /// after the last full word, which for a 100-byte record doubles the chain).
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
}
