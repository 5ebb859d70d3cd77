//! Segment pipeline (in progress).
