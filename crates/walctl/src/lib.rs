//! `walctl`: inspect, verify and repair etcd write-ahead logs.
//!
//! The binary (`src/main.rs`) is a thin clap front end; everything it prints is built
//! here so tests can call it:
//!
//! - [`locate`](mod@locate) finds the WAL directory in a path (a WAL dir, an etcd data dir with
//!   `member/wal`, or a dir holding `wal/`);
//! - [`dump`] is what etcd's `OpenForRead` + `ReadAll`, `Verify` and
//!   `ValidSnapshotEntries` return, as text or as the corpus' JSON layout;
//! - [`frames`] walks the raw frames of every segment (`dump --raw`);
//! - [`stat`] summarises the segments;
//! - [`demo`] runs the append / crash / repair / reopen cycle;
//! - [`bench`](mod@bench) is the performance suite (`walctl bench`).
//!
//! Nothing here takes a lock or writes, except [`demo`] and [`bench`](mod@bench) (on their own
//! directories).

pub mod bench;
pub mod demo;
pub mod dump;
pub mod frames;
pub mod locate;
pub mod progress;
pub mod report;
pub mod stat;

pub use crate::locate::{locate, Located};
pub use crate::report::ErrorInfo;
