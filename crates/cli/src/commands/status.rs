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
        if report.jobs_forwarded > 0 {
            println!("jobs handed to peers: {}", report.jobs_forwarded);
        }
        println!("peers: {}", report.peers.len());
        for p in &report.peers {
            let text = |k: &str| p.get(k).and_then(|v| v.as_str()).unwrap_or("?").to_string();
            let num = |k: &str| p.get(k).and_then(|v| v.as_u64()).unwrap_or(0);
            let flag = |k: &str| p.get(k).and_then(|v| v.as_bool()).unwrap_or(false);
            let state = match (flag("alive"), flag("leaving")) {
                (true, false) => "alive",
                (true, true) => "leaving",
                (false, _) => "dead",
            };
            let roles: Vec<&str> = p
                .get("roles")
                .and_then(|v| v.as_array())
                .map(|a| a.iter().filter_map(|r| r.as_str()).collect())
                .unwrap_or_default();
            println!(
                "  {} at {} ({state}): roles {}; queue {}, {} busy of {} workers; {} jobs done",
                text("node_id"),
                text("addr"),
                roles.join(", "),
                num("queue_length"),
                num("busy"),
                num("workers"),
                num("jobs_done")
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}
