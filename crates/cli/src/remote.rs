//! The network side of the client commands: the `--server` option, the
//! connection and the runtime, one request followed to its answer with its
//! queue news as lines, and the one loop that sends many files.
//!
//! The protocol part (following the events, retrying BUSY, the ERROR as a
//! typed error) is [`Client::call`]; this module adds what the command
//! line needs around it: files, errors with context for people, and the
//! wording of the news (`output::progress`).
//!
//! Invariant: [`per_file`] runs at most `in_flight` files at once, keeps at
//! most twice that many started but not yet reported (so memory stays
//! bounded however many files there are), and reports every file exactly
//! once, in the files' order.

use std::collections::VecDeque;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use bytes::Bytes;
use ocellus_client::{Call, Client, ClientError, ConnectOptions, Event, Retry, TlsOptions};
use ocellus_protocol::message::from_header;
use ocellus_protocol::{ErrorCode, ErrorEvent, Op};
use serde_json::{Map, Value};
use tokio::sync::Semaphore;

use crate::output::{progress, report};

/// The `--server` option of the client commands, with how to connect.
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
    #[command(flatten)]
    pub connect: ConnectArgs,
}

/// How a client command connects to its node: TLS, and a key to present.
/// Beside `--server` in every client command.
#[derive(clap::Args, Clone, Default)]
pub struct ConnectArgs {
    /// Speak TLS to the node, verifying its certificate (against the
    /// system roots, or --ca).
    #[arg(long)]
    pub tls: bool,
    /// Trust only this CA (PEM) for the node's certificate (implies --tls).
    #[arg(long, value_name = "FILE")]
    pub ca: Option<PathBuf>,
    /// The name the node's certificate must carry, when it differs from
    /// the host of --server (implies --tls).
    #[arg(long, value_name = "NAME")]
    pub tls_server_name: Option<String>,
    /// API key to present (AUTH) before any request.
    #[arg(long, env = "OCELLUS_KEY", hide_env_values = true, value_name = "KEY")]
    pub key: Option<String>,
}

impl std::fmt::Debug for ConnectArgs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnectArgs")
            .field("tls", &self.tls)
            .field("ca", &self.ca)
            .field("tls_server_name", &self.tls_server_name)
            .field("key", &self.key.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

impl ConnectArgs {
    /// Whether any option was given (they need a node to connect to).
    pub fn any(&self) -> bool {
        self.tls || self.ca.is_some() || self.tls_server_name.is_some() || self.key.is_some()
    }

    /// The client's options: TLS if asked for, the key if any.
    fn options(&self) -> anyhow::Result<ConnectOptions> {
        let tls = if self.tls || self.ca.is_some() || self.tls_server_name.is_some() {
            let tls = match &self.ca {
                Some(ca) => TlsOptions::ca_file(ca).context("--ca")?,
                None => TlsOptions::system().context("--tls without --ca")?,
            };
            Some(match &self.tls_server_name {
                Some(name) => tls.with_server_name(name),
                None => tls,
            })
        } else {
            None
        };
        Ok(ConnectOptions {
            tls,
            key: self.key.clone(),
        })
    }
}

/// Connects to the node at `addr` as `how` says, saying which node in
/// the error.
pub(crate) async fn connect(addr: &str, how: &ConnectArgs) -> anyhow::Result<Client> {
    let options = how.options()?;
    Client::connect_with(addr, &options)
        .await
        .with_context(|| format!("cannot reach the node at {addr}"))
}

/// Refuses connection options in a command's local mode.
pub(crate) fn refuse_local(how: &ConnectArgs) -> anyhow::Result<()> {
    if how.any() {
        anyhow::bail!("--tls, --ca, --tls-server-name and --key work with --server only");
    }
    Ok(())
}

/// A single-threaded runtime for a client command.
pub(crate) fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")
}

/// Sends `call` until it has its answer (again after BUSY, with a growing
/// delay: [`Retry::default`]); `news` gets the queue news as lines a
/// person reads. Returns the RESULT; an ERROR becomes
/// `Err(ClientError::Server)`.
pub(crate) async fn call(
    client: &Client,
    call: &Call,
    news: impl Fn(String),
) -> Result<Event, ClientError> {
    client
        .call(call, &Retry::default(), |p| news(progress::line(&p)))
        .await
}

/// Runs `work` on every file, at most `in_flight` at once, and hands each
/// outcome to `report` in the files' order as soon as it and those before
/// it are done; `report` says whether the file succeeded. Returns how many
/// failed.
pub(crate) async fn per_file<T, F, Fut>(
    files: &[PathBuf],
    in_flight: usize,
    work: F,
    mut report: impl FnMut(&Path, anyhow::Result<T>) -> bool,
) -> usize
where
    F: Fn(PathBuf) -> Fut,
    Fut: Future<Output = anyhow::Result<T>> + Send + 'static,
    T: Send + 'static,
{
    let in_flight = in_flight.clamp(1, Semaphore::MAX_PERMITS);
    let window = in_flight.saturating_mul(2);
    let slots = Arc::new(Semaphore::new(in_flight));
    let mut started = VecDeque::new();
    let mut files = files.iter();
    let mut failed = 0;
    loop {
        while started.len() < window
            && let Some(file) = files.next()
        {
            let slots = slots.clone();
            let job = work(file.clone());
            let handle = tokio::spawn(async move {
                let _permit = slots.acquire_owned().await;
                job.await
            });
            started.push_back((file, handle));
        }
        let Some((file, handle)) = started.pop_front() else {
            break;
        };
        let outcome = handle
            .await
            .unwrap_or_else(|e| Err(anyhow::anyhow!("internal error: {e}")));
        failed += usize::from(!report(file, outcome));
    }
    failed
}

/// Many files, each sent to a node as its own one-image request.
pub(crate) struct Batch<'a> {
    /// The files.
    pub files: &'a [PathBuf],
    /// Files in flight at once.
    pub in_flight: usize,
    /// The operation.
    pub op: Op,
    /// The request header (the `images` field is added).
    pub header: Map<String, Value>,
    /// The context of the error of a file that cannot be read.
    pub unreadable: &'static str,
}

impl Batch<'_> {
    /// Sends the files through `client` (see [`per_file`]); `news(file,
    /// line)` gets each file's queue news, and `report` each file's RESULT
    /// event with the file's bytes, in the files' order; `report` says
    /// whether the file succeeded. Returns how many failed.
    pub(crate) async fn send<N>(
        self,
        client: Arc<Client>,
        news: Arc<N>,
        report: impl FnMut(&Path, anyhow::Result<(Event, Bytes)>) -> bool,
    ) -> usize
    where
        N: Fn(&Path, String) + Send + Sync + 'static,
    {
        let Batch {
            files,
            in_flight,
            op,
            header,
            unreadable,
        } = self;
        let work = |file: PathBuf| {
            let (client, header, news) = (client.clone(), header.clone(), news.clone());
            async move {
                let bytes = tokio::fs::read(&file).await.context(unreadable)?;
                let request = Call::with_image(op, header, bytes);
                let event = call(&client, &request, |line| news(&file, line)).await?;
                Ok((event, request.payload))
            }
        };
        per_file(files, in_flight, work, report).await
    }
}

/// A RESULT that answers per image (DETECT, RECOGNIZE).
#[derive(serde::Deserialize)]
struct PerImage<T> {
    results: Vec<T>,
}

/// A RESULT's header as `T`.
pub(crate) fn answer<T: serde::de::DeserializeOwned>(event: &Event) -> anyhow::Result<T> {
    from_header(&event.header).context("unexpected answer from the node")
}

/// The answer for the one image of a DETECT or RECOGNIZE request.
fn only_answer<T: serde::de::DeserializeOwned>(event: &Event) -> anyhow::Result<T> {
    let mut all: PerImage<T> = answer(event)?;
    all.results.pop().context("the node answered for no image")
}

/// Sends every file to the node at `addr` as its own one-image `op`
/// request (a few at once), and hands each file's answer, with its bytes,
/// to `show` in the files' order; an error from the request or from `show`
/// is printed and counts as a failure. `news` gets the queue news.
/// Returns the exit code: failure if any file failed.
pub(crate) fn each_file<T, S>(
    addr: &str,
    how: &ConnectArgs,
    files: &[PathBuf],
    op: Op,
    header: Map<String, Value>,
    news: fn(String),
    mut show: S,
) -> anyhow::Result<ExitCode>
where
    T: serde::de::DeserializeOwned,
    S: FnMut(&Path, T, &[u8]) -> anyhow::Result<()>,
{
    let failed = runtime()?.block_on(async {
        let client = Arc::new(connect(addr, how).await?);
        let batch = Batch {
            files,
            in_flight: 4,
            op,
            header,
            unreadable: "cannot read file",
        };
        let failed = batch
            .send(
                client,
                Arc::new(move |_: &Path, line| news(line)),
                |file, outcome| {
                    let shown =
                        outcome.and_then(|(event, bytes)| show(file, only_answer(&event)?, &bytes));
                    match shown {
                        Ok(()) => true,
                        Err(e) => {
                            report::print_error(file, &e);
                            false
                        }
                    }
                },
            )
            .await;
        anyhow::Ok(failed)
    })?;
    Ok(report::exit_code(failed))
}

/// The error of an image the node could not process (its `error` code and
/// message), as the node's ERROR would read.
pub(crate) fn image_error(code: ErrorCode, message: String) -> anyhow::Error {
    ClientError::Server(ErrorEvent::new(code, message)).into()
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn reports_in_order_with_bounded_work() {
        let files: Vec<PathBuf> = (0..20).map(|i| PathBuf::from(format!("{i}"))).collect();
        let running = Arc::new(AtomicUsize::new(0));
        let most = Arc::new(AtomicUsize::new(0));
        let work = |file: PathBuf| {
            let (running, most) = (running.clone(), most.clone());
            async move {
                let n: u64 = file.to_string_lossy().parse()?;
                let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                most.fetch_max(now, Ordering::SeqCst);
                // Later files finish first.
                tokio::time::sleep(Duration::from_millis(20 - n)).await;
                running.fetch_sub(1, Ordering::SeqCst);
                anyhow::ensure!(!n.is_multiple_of(5), "file {n} fails");
                Ok(n)
            }
        };
        let mut seen = Vec::new();
        let failed = per_file(&files, 3, work, |file, outcome| {
            seen.push(file.to_path_buf());
            outcome.is_ok()
        })
        .await;
        assert_eq!(seen, files);
        assert_eq!(failed, 4);
        assert!(most.load(Ordering::SeqCst) <= 3, "{most:?}");
    }
}
