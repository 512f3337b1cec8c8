//! `ocellus status`: what a node is doing.
//!
//! Invariant: `--json` prints the node's STATUS report as it is typed in
//! the protocol (`StatusReport`); the human form shows each peer's state
//! as alive, leaving or dead from the failure detector's two flags.

use std::process::ExitCode;

use crate::remote::{ServerArg, connect, runtime};

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
        let client = connect(&args.node.server, &args.node.connect).await?;
        anyhow::Ok(client.status().await?)
    })?;
    if args.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        let transport = if report.tls { "TLS" } else { "plain TCP" };
        println!(
            "node {} (ocellus {}); {transport}",
            report.node_id, report.version
        );
        println!("roles: {}", report.roles.names().join(", "));
        println!(
            "queue: {} waiting (capacity {}); workers: {} busy of {}",
            report.queue_length, report.queue_capacity, report.busy, report.workers
        );
        println!(
            "jobs: {} done, {} failed, {} cancelled; mean job {:.0} ms; up {:.0} s",
            report.jobs_done,
            report.jobs_failed,
            report.jobs_cancelled,
            report.mean_job_s * 1e3,
            report.uptime_s
        );
        if report.jobs_forwarded > 0 {
            println!("jobs handed to peers: {}", report.jobs_forwarded);
        }
        println!(
            "gossip datagrams rejected: {} (not sealed under this mesh's secret, stale, replayed or malformed)",
            report.gossip_rejected
        );
        println!(
            "access: {}; {} refused keys, {} failed peer proofs",
            if report.keys_required {
                "clients need a key"
            } else {
                "open (no keys file)"
            },
            report.key_auth_failures,
            report.peer_auth_failures
        );
        println!("peers: {}", report.peers.len());
        for p in &report.peers {
            let state = match (p.alive, p.leaving) {
                (true, false) => "alive",
                (true, true) => "leaving",
                (false, _) => "dead",
            };
            println!(
                "  {} at {} ({state}): roles {}; queue {}, {} busy of {} workers; {} jobs done",
                p.node_id,
                p.addr,
                p.roles.names().join(", "),
                p.queue_length,
                p.busy,
                p.workers,
                p.jobs_done
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}
