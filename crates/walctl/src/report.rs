//! Errors as `walctl` reports them: etcd's error kind, the message, file and offset.

use std::path::Path;

use serde::Serialize;

/// One error as printed by `walctl` (`{"kind", "message", "file", "offset"}` in JSON).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ErrorInfo {
    /// etcd's sentinel, as [`wal::ErrorKind::as_str`] names it (`crc_mismatch`, ...).
    pub kind: String,
    /// The full message.
    pub message: String,
    /// The file (or directory) the error is about, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
    /// The offset in `file`, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub offset: Option<u64>,
}

impl ErrorInfo {
    /// An error of `kind` with `message`, about `file` at `offset`.
    pub fn new(
        kind: &str,
        message: impl Into<String>,
        file: Option<&Path>,
        offset: Option<u64>,
    ) -> Self {
        Self {
            kind: kind.to_string(),
            message: message.into(),
            file: file.map(|p| p.display().to_string()),
            offset,
        }
    }

    /// One line for stderr: kind, message, and file/offset when the message lacks them.
    pub fn line(&self) -> String {
        let mut s = format!("{}: {}", self.kind, self.message);
        if let Some(f) = &self.file {
            if !self.message.contains(f.as_str()) {
                s.push_str(&format!(" (file {f}"));
                if let Some(o) = self.offset {
                    s.push_str(&format!(", offset {o}"));
                }
                s.push(')');
            }
        }
        s
    }
}

impl From<&wal::Error> for ErrorInfo {
    fn from(e: &wal::Error) -> Self {
        Self::new(e.kind().as_str(), e.to_string(), e.file(), e.offset())
    }
}

impl From<wal::Error> for ErrorInfo {
    fn from(e: wal::Error) -> Self {
        Self::from(&e)
    }
}

impl From<wal_codec::DecodeError> for ErrorInfo {
    fn from(e: wal_codec::DecodeError) -> Self {
        Self::from(wal::Error::from(e))
    }
}

impl std::fmt::Display for ErrorInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.line())
    }
}

impl std::error::Error for ErrorInfo {}
