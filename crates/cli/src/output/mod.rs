//! What the commands print and write besides their own results, shared by
//! several of them: annotated copies (`annotate`), the progress bar and the
//! queue news (`progress`), per-file lines and JSON reports (`report`).
//!
//! Invariant: the wording here is the user interface (tests and scripts
//! read it): a change of a string is a change of behaviour. Nothing here
//! talks to the network or decides what a command does.

pub(crate) mod annotate;
pub(crate) mod progress;
pub(crate) mod report;
