//! `ocellus serve`: run a node.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use ocellus_node::{NodeConfig, Server};

/// Arguments of `ocellus serve`.
#[derive(clap::Args)]
pub struct ServeArgs {
    /// TCP address to listen on (port 0 picks a free port; the address is
    /// printed on the first line of standard output).
    #[arg(long, default_value = "127.0.0.1:7070", value_name = "ADDR")]
    pub listen: SocketAddr,
    /// Worker threads running jobs (default: the number of CPUs).
    #[arg(long, value_name = "N")]
    pub workers: Option<usize>,
    /// Jobs that may wait; beyond, clients get BUSY.
    #[arg(long, default_value_t = 256, value_name = "N")]
    pub queue_capacity: usize,
    /// Folder for the node's data (the face store, in a later release).
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Largest frame accepted, in bytes.
    #[arg(long, default_value_t = 64 << 20, value_name = "BYTES")]
    pub max_frame: usize,
    /// Largest image accepted, in pixels (checked from its header).
    #[arg(long, default_value_t = 100_000_000, value_name = "N")]
    pub max_pixels: u64,
    /// Seconds a connection with nothing in flight may stay silent.
    #[arg(long, default_value_t = 120, value_name = "S")]
    pub idle_timeout: u64,
    /// Seconds within which a frame, once started, must be complete.
    #[arg(long, default_value_t = 30, value_name = "S")]
    pub frame_timeout: u64,
}

/// Runs the node until SIGINT or SIGTERM.
pub fn run(args: ServeArgs) -> anyhow::Result<ExitCode> {
    let mut config = NodeConfig {
        listen: args.listen,
        queue_capacity: args.queue_capacity.max(1),
        data_dir: args.data_dir,
        idle_timeout: Duration::from_secs(args.idle_timeout.max(1)),
        frame_timeout: Duration::from_secs(args.frame_timeout.max(1)),
        ..NodeConfig::default()
    };
    if let Some(w) = args.workers {
        config.workers = w.max(1);
    }
    config.frame_limits.max_frame = args.max_frame;
    config.decode_limits.max_pixels = args.max_pixels;
    if let Some(dir) = &config.data_dir {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async move {
        let workers = config.workers;
        let server = Server::bind(config.clone())
            .await
            .with_context(|| format!("listening on {}", config.listen))?;
        let addr = server.local_addr()?;
        println!("listening on {addr}");
        tracing::info!(%addr, workers, queue_capacity = config.queue_capacity, "ocellus node started");
        server.run(shutdown_signal()).await?;
        Ok(ExitCode::SUCCESS)
    })
}

/// Resolves on SIGINT (Ctrl-C) or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = ctrl_c => {},
                    _ = term.recv() => {},
                }
            }
            Err(_) => {
                let _ = ctrl_c.await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}
