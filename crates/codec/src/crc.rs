//! The rolling CRC32C that chains every record of a WAL.

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
        self.0 = crc32c::crc32c_append(self.0, data);
        self.0
    }

    /// The current value.
    pub fn value(&self) -> u32 {
        self.0
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
}
