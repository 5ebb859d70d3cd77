//! File layer (in progress).
