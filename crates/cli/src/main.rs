//! `ocellus`: one binary for every Ocellus role and client command.
//!
//! Structure, dependencies running one way: `commands/` (one module per
//! subcommand) uses `remote` (the network side of the client commands,
//! over `ocellus-client`) and `output` (what several commands print and
//! write); `cascades` finds the detector's cascade files.
//!
//! Invariant: a command's error reaches the user as one `error: …` line on
//! stderr, with its causes, and exit status 1.

mod cascades;
mod commands;
mod models;
mod output;
mod paths;
mod remote;

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
    /// Apply a pipeline of filters to images, locally or on a node.
    Filter(commands::filter::FilterArgs),
    /// Run a node: the server with the job queue.
    Serve(Box<commands::serve::ServeArgs>),
    /// Show a node's queue, counters and peers.
    Status(commands::status::StatusArgs),
    /// Detect faces with an OpenCV cascade (OpenCV-exact boxes).
    Detect(commands::detect::DetectArgs),
    /// Evaluate a face recognizer (eigen, fisher, lbph) on labelled face folders.
    Eval(commands::eval::EvalArgs),
    /// Enroll a person on a node from photos of them (operation 1).
    Enroll(commands::enroll::EnrollArgs),
    /// Name the people in photos (operation 2).
    Recognize(commands::recognize::RecognizeArgs),
    /// List or remove the people enrolled on a node.
    People(commands::people::PeopleArgs),
    /// Manage the API keys a node accepts (add, list, revoke).
    Keys(commands::keys::KeysArgs),
    /// Make what a closed mesh needs: `mesh secret` prints a new cluster secret.
    Mesh(commands::mesh::MeshArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("OCELLUS_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let result = match cli.command {
        Command::Filter(args) => commands::filter::run(args),
        Command::Serve(args) => commands::serve::run(*args),
        Command::Status(args) => commands::status::run(args),
        Command::Detect(args) => commands::detect::run(args),
        Command::Eval(args) => commands::eval::run(args),
        Command::Enroll(args) => commands::enroll::run(args),
        Command::Recognize(args) => commands::recognize::run(args),
        Command::People(args) => commands::people::run(args),
        Command::Keys(args) => commands::keys::run(args),
        Command::Mesh(args) => commands::mesh::run(args),
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}
