//! `ocellus filter`: apply a filter pipeline to image files.

use std::process::ExitCode;

/// Arguments of `ocellus filter`.
#[derive(clap::Args)]
pub struct FilterArgs {}

/// Runs the command.
pub fn run(_args: FilterArgs) -> anyhow::Result<ExitCode> {
    Ok(ExitCode::SUCCESS)
}
