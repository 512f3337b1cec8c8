//! One module per subcommand.

pub mod detect;
mod detect_remote;
pub mod enroll;
pub mod eval;
pub mod filter;
mod filter_remote;
pub mod people;
pub mod recognize;
mod remote;
pub mod serve;
pub mod status;
