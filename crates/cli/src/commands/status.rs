//! `ocellus status`: what a node is doing.

use std::process::ExitCode;

use anyhow::Context;
use ocellus_node::client::Client;

/// Arguments of `ocellus status`.
#[derive(clap::Args)]
pub struct StatusArgs {
    /// The node (host:port).
    #[arg(
        long,
        env = "OCELLUS_SERVER",
        default_value = "127.0.0.1:7070",
        value_name = "ADDR"
    )]
    pub server: String,
    /// Print the report as one JSON object.
    #[arg(long)]
    pub json: bool,
}

/// Runs the command.
pub fn run(args: StatusArgs) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let report = runtime.block_on(async {
        let client = Client::connect(&args.server).await?;
        client.status().await
    })?;
    if args.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        println!("node {} (ocellus {})", report.node_id, report.version);
        println!("roles: {}", report.roles.join(", "));
        println!(
            "queue: {} waiting (capacity {}); workers: {} busy of {}",
            report.queue_length, report.queue_capacity, report.busy, report.workers
        );
        println!(
            "jobs: {} done, {} failed; mean job {:.0} ms; up {:.0} s",
            report.jobs_done,
            report.jobs_failed,
            report.mean_job_s * 1e3,
            report.uptime_s
        );
        println!("peers: {}", report.peers.len());
    }
    Ok(ExitCode::SUCCESS)
}
