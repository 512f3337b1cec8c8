//! One module per subcommand.

pub mod detect;
pub mod eval;
pub mod filter;
mod filter_remote;
pub mod serve;
pub mod status;
