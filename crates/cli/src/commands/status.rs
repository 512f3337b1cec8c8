//! `ocellus status`: what a node is doing.

use std::process::ExitCode;

use super::remote::{ServerArg, connect, runtime};

/// Arguments of `ocellus status`.
#[derive(clap::Args)]
pub struct StatusArgs {
    #[command(flatten)]
    pub node: ServerArg,
    /// Print the report as one JSON object.
    #[arg(long)]
    pub json: bool,
}

/// Runs the command.
pub fn run(args: StatusArgs) -> anyhow::Result<ExitCode> {
    let report = runtime()?.block_on(async {
        let client = connect(&args.node.server).await?;
        anyhow::Ok(client.status().await?)
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
