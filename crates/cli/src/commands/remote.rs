//! What every networked command does with a request: follow its queue
//! events, retry on BUSY, and return its RESULT.

use std::time::Duration;

use anyhow::Context;
use ocellus_node::client::{Client, ClientError, Event, Request};
use ocellus_protocol::Op;
use ocellus_protocol::message::{Accepted, Busy, ErrorEvent, Position, from_header};

/// How often a BUSY answer is retried before the request counts as failed.
const BUSY_RETRIES: u32 = 30;

/// Connects to a node, saying which one in the error.
pub(crate) async fn connect(addr: &str) -> anyhow::Result<Client> {
    Client::connect(addr)
        .await
        .with_context(|| format!("cannot reach the node at {addr}"))
}

/// Sends a request (again after BUSY, with a growing delay) until it ends;
/// `progress` gets the queue news as lines a person reads. An ERROR
/// becomes `Err(ClientError::Server)`.
pub(crate) async fn await_result<F, Fut>(
    mut send: F,
    progress: &(dyn Fn(String) + Sync),
) -> anyhow::Result<Event>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<Request, ClientError>>,
{
    let mut delay = Duration::from_millis(200);
    for _ in 0..BUSY_RETRIES {
        let mut request = send().await?;
        let mut job = 0;
        let mut busy = false;
        while let Some(event) = request.next().await {
            // A job the entry node handed to a peer: its events say which.
            let there = event
                .header
                .get("node_addr")
                .and_then(|v| v.as_str())
                .map(|addr| format!("forwarded to node {addr}; "))
                .unwrap_or_default();
            match event.op {
                Op::Accepted => {
                    if let Ok(a) = from_header::<Accepted>(&event.header) {
                        job = a.job;
                        let (place, of) = if there.is_empty() {
                            ("queued as", "")
                        } else {
                            ("queued there as", " there")
                        };
                        progress(format!(
                            "{there}{place} #{}; position{of} {} of {}",
                            a.job, a.position, a.queue_length
                        ));
                    }
                }
                Op::Position => {
                    if let Ok(p) = from_header::<Position>(&event.header) {
                        progress(format!("{there}{}", position_line(job, &p)));
                    }
                }
                Op::Started => progress(format!("{there}now processing #{job} (yours)")),
                Op::Result => return Ok(event),
                Op::Busy => {
                    let b: Option<Busy> = from_header(&event.header).ok();
                    progress(format!(
                        "server busy ({} queued); retrying in {} ms",
                        b.map_or(0, |b| b.queue_length),
                        delay.as_millis()
                    ));
                    busy = true;
                    break;
                }
                Op::Error => {
                    let e = event
                        .as_error()
                        .unwrap_or_else(|| unreachable!("an ERROR event"));
                    return Err(ClientError::Server(e).into());
                }
                _ => {}
            }
        }
        if !busy {
            // The events ended without a RESULT, ERROR or BUSY.
            return Err(ClientError::Closed.into());
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_secs(2));
    }
    anyhow::bail!("server still busy after {BUSY_RETRIES} tries")
}

/// "Now processing #3; yours is #5 (about 2 s)", as the original system said.
pub(crate) fn position_line(job: u64, p: &Position) -> String {
    let now = p
        .processing
        .iter()
        .min()
        .map_or_else(|| "nothing".to_string(), |j| format!("#{j}"));
    format!(
        "Now processing {now}; yours is #{job} (about {:.0} s)",
        p.eta_s.max(0.0).ceil()
    )
}

/// A single-threaded runtime for a client command.
pub(crate) fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")
}

/// Runs `work` on every file, at most `in_flight` at once, and hands each
/// outcome to `report` in the files' order as soon as it and those before
/// it are done; `report` says whether the file succeeded. Returns how many
/// failed.
pub(crate) async fn per_file<T, F, Fut>(
    files: &[std::path::PathBuf],
    in_flight: usize,
    work: F,
    mut report: impl FnMut(&std::path::Path, anyhow::Result<T>) -> bool,
) -> usize
where
    F: Fn(std::path::PathBuf) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<T>> + Send + 'static,
    T: Send + 'static,
{
    let slots = std::sync::Arc::new(tokio::sync::Semaphore::new(in_flight.max(1)));
    let handles: Vec<_> = files
        .iter()
        .map(|file| {
            let slots = slots.clone();
            let job = work(file.clone());
            tokio::spawn(async move {
                let _permit = slots.acquire_owned().await;
                job.await
            })
        })
        .collect();
    let mut failed = 0;
    for (file, handle) in files.iter().zip(handles) {
        let outcome = handle
            .await
            .unwrap_or_else(|e| Err(anyhow::anyhow!("internal error: {e}")));
        failed += usize::from(!report(file, outcome));
    }
    failed
}

/// The `--server` option of the client commands.
#[derive(clap::Args)]
pub struct ServerArg {
    /// The node (host:port).
    #[arg(
        long,
        env = "OCELLUS_SERVER",
        default_value = "127.0.0.1:7070",
        value_name = "ADDR"
    )]
    pub server: String,
}

/// A RESULT that answers per image (DETECT, RECOGNIZE).
#[derive(serde::Deserialize)]
struct PerImage<T> {
    results: Vec<T>,
}

/// Sends every file to the node at `addr` as its own one-image `op`
/// request (a few at once), and hands each file's answer, with its bytes,
/// to `show` in the files' order; an error from the request or from `show`
/// is printed and counts as a failure. `progress` gets the queue news.
/// Returns the exit code: failure if any file failed.
pub(crate) fn each_file<T, S>(
    addr: &str,
    files: &[std::path::PathBuf],
    op: Op,
    header: serde_json::Map<String, serde_json::Value>,
    progress: fn(String),
    mut show: S,
) -> anyhow::Result<std::process::ExitCode>
where
    T: serde::de::DeserializeOwned + Send + 'static,
    S: FnMut(&std::path::Path, T, &[u8]) -> anyhow::Result<()>,
{
    let failed = runtime()?.block_on(async {
        let client = std::sync::Arc::new(connect(addr).await?);
        let failed = per_file(
            files,
            4,
            |file| {
                let (client, header) = (client.clone(), header.clone());
                async move {
                    let bytes = tokio::fs::read(&file).await.context("cannot read file")?;
                    let event = await_result(
                        || client.request_images(op, header.clone(), std::slice::from_ref(&bytes)),
                        &progress,
                    )
                    .await?;
                    let mut answer: PerImage<T> =
                        from_header(&event.header).context("unexpected answer from the node")?;
                    let found = answer
                        .results
                        .pop()
                        .context("the node answered for no image")?;
                    Ok((found, bytes))
                }
            },
            |file, outcome| match outcome.and_then(|(found, bytes)| show(file, found, &bytes)) {
                Ok(()) => true,
                Err(e) => {
                    eprintln!("error: {}: {e:#}", file.display());
                    false
                }
            },
        )
        .await;
        anyhow::Ok(failed)
    })?;
    Ok(if failed == 0 {
        std::process::ExitCode::SUCCESS
    } else {
        std::process::ExitCode::FAILURE
    })
}

/// The error of an image the node could not process (its `error` code and
/// message), as the server's ERROR would read.
pub(crate) fn image_error(code: String, message: String) -> anyhow::Error {
    ClientError::Server(ErrorEvent { code, message }).into()
}
