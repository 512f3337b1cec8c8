//! One module per subcommand; a subcommand with two modes (`--local`,
//! `--server`) is a folder whose `mod.rs` holds its arguments and picks
//! the mode.
//!
//! Invariant: a command module depends on `crate::remote` (the network)
//! and `crate::output` (what several commands print), never on another
//! command.

pub mod detect;
pub mod enroll;
pub mod eval;
pub mod filter;
pub mod keys;
pub mod mesh;
pub mod people;
pub mod recognize;
pub mod serve;
pub mod status;
