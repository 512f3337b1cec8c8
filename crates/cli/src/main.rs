//! `ocellus`: one binary for every Ocellus role and client command.

mod commands;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Ocellus: distributed image filters and face recognition.
#[derive(Parser)]
#[command(name = "ocellus", version, about, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Apply a pipeline of filters to images.
    Filter(commands::filter::FilterArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Filter(args) => commands::filter::run(args),
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}
