//! The node's Prometheus metrics, served by `GET /metrics` (the families
//! are listed in `docs/metrics.md`): what the node has done, as counters
//! and histograms recorded where it happens, and what it holds now, as
//! gauges read from its state when scraped.
//!
//! Where each is recorded:
//! - jobs by op and outcome, decode rejections, jobs received from peers:
//!   [`Metered`], the one wrapper [`crate::request::handle`] puts around
//!   every request's answer, whatever brought the request (TCP, HTTP, a
//!   peer); a request refused before the handler (bad frame, AUTH,
//!   permissions) is no job, though a frame the decoder rejects is a
//!   decode rejection (counted by the connection);
//! - queue wait and run time: the worker ([`crate::exec::worker`]);
//! - open TCP connections and HTTP requests in flight: [`GaugeGuard`]s
//!   held by the listener and the HTTP layer for as long as each lasts;
//! - queue, workers, peers, jobs forwarded, people, faces and model
//!   generation: read at scrape time from the queue, the mesh and the
//!   recognition role (the numbers STATUS reports) by
//!   [`crate::state::State::gauges`], never counted twice. This module
//!   does not see the state, so every part of the node may record here
//!   without an import cycle.
//!
//! Invariants: counters only increase, from zero at start; every label
//! value is one of a fixed set of `&'static str` (op names, this
//! version's error codes, peer states), never a string that a client or
//! peer sent, so the number of series is bounded by the code; gauges read
//! at scrape time are as fresh as the scrape.
//!
//! The format: prometheus-client writes OpenMetrics text, where a counter
//! family `x` has the sample `x_total`. `promtool check metrics`
//! (Prometheus 2.42, Debian 12) reads only the classic text format 0.0.4,
//! where the family is the sample's name, and so fails on that output
//! ("no help text" for every counter). [`Metrics::render`] therefore
//! writes the classic format (counter families named with `_total`, no
//! `# EOF`), which promtool accepts and every Prometheus scrapes; the
//! [`Metrics::CONTENT_TYPE`] says so.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use ocellus_protocol::{ErrorCode, Op};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::text::encode_registry;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use serde_json::{Map, Value};
use tracing::warn;

use crate::call::{Answer, Incoming, Responder};

/// Upper bounds of the queue-wait and run-time buckets, seconds: a small
/// filter takes a millisecond, a large photo's detection seconds, and a
/// job behind a long queue waits minutes.
const BUCKETS: [f64; 17] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
    120.0, 300.0,
];

/// The error codes that are decode rejections: an image that does not
/// decode or is too large, and a frame the protocol decoder refuses.
const DECODE_REJECTIONS: [ErrorCode; 5] = [
    ErrorCode::BadImage,
    ErrorCode::ImageTooLarge,
    ErrorCode::MalformedFrame,
    ErrorCode::FrameTooLarge,
    ErrorCode::HeaderTooLarge,
];

/// Labels of `ocellus_jobs_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct JobLabels {
    op: &'static str,
    outcome: &'static str,
}

/// Labels of the per-op families.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OpLabel {
    op: &'static str,
}

/// Labels of `ocellus_decode_rejections_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabel {
    reason: &'static str,
}

/// Labels of `ocellus_peers`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabel {
    state: &'static str,
}

/// A histogram with [`BUCKETS`].
fn histogram() -> Histogram {
    Histogram::new(BUCKETS)
}

type Histograms = Family<OpLabel, Histogram, fn() -> Histogram>;

/// The metrics of one node: the registry of what is recorded as it
/// happens, and handles to record it.
pub(crate) struct Metrics {
    /// What is recorded as it happens (the scrape-time values are a
    /// registry of their own, made at each render).
    registry: Registry,
    jobs: Family<JobLabels, Counter>,
    received: Family<OpLabel, Counter>,
    decode_rejections: Family<ReasonLabel, Counter>,
    queue_wait: Histograms,
    run_time: Histograms,
    tcp_connections: Gauge,
    http_in_flight: Gauge,
    connections_refused: Counter,
    too_costly: Counter,
    cancelled: Counter,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    /// The Content-Type of [`render`](Self::render)'s output: the classic
    /// Prometheus text format (see the module doc for why not OpenMetrics).
    pub const CONTENT_TYPE: &'static str = "text/plain; version=0.0.4; charset=utf-8";

    /// Every family registered, every counter at zero.
    pub fn new() -> Metrics {
        let mut m = Metrics {
            registry: Registry::default(),
            jobs: Family::default(),
            received: Family::default(),
            decode_rejections: Family::default(),
            queue_wait: Family::new_with_constructor(histogram as fn() -> Histogram),
            run_time: Family::new_with_constructor(histogram as fn() -> Histogram),
            tcp_connections: Gauge::default(),
            http_in_flight: Gauge::default(),
            connections_refused: Counter::default(),
            too_costly: Counter::default(),
            cancelled: Counter::default(),
        };
        // Every reason at zero from the start, so that rate() sees the
        // first rejection.
        for code in DECODE_REJECTIONS {
            drop(m.decode_rejections.get_or_create(&ReasonLabel {
                reason: code.as_str(),
            }));
        }
        // prometheus-client adds `_total` to counter names.
        m.registry.register(
            "ocellus_jobs",
            "Requests answered by the handler, by op and outcome (ok, busy or the error code); a job forwarded to a peer counts on both nodes",
            m.jobs.clone(),
        );
        m.registry.register(
            "ocellus_jobs_received",
            "Requests that peers forwarded to this node, by op",
            m.received.clone(),
        );
        m.registry.register(
            "ocellus_decode_rejections",
            "Images and frames refused because they do not decode or are too large, by reason (the error code)",
            m.decode_rejections.clone(),
        );
        m.registry.register(
            "ocellus_job_queue_wait_seconds",
            "Time jobs waited in the queue before a worker took them, by op",
            m.queue_wait.clone(),
        );
        m.registry.register(
            "ocellus_job_run_seconds",
            "Time from a worker taking a job to its result, by op (with the wait on a recognition node for jobs that send faces there)",
            m.run_time.clone(),
        );
        m.registry.register(
            "ocellus_tcp_connections",
            "Open connections on the protocol port (TCP, TLS included)",
            m.tcp_connections.clone(),
        );
        m.registry.register(
            "ocellus_http_requests_in_flight",
            "HTTP requests being served",
            m.http_in_flight.clone(),
        );
        m.registry.register(
            "ocellus_connections_refused",
            "Connections (TCP and HTTP) refused because the node or the client address had as many open as allowed",
            m.connections_refused.clone(),
        );
        m.registry.register(
            "ocellus_requests_too_costly",
            "Requests refused before any work because their estimated cost was over a limit (too_costly)",
            m.too_costly.clone(),
        );
        m.registry.register(
            "ocellus_jobs_cancelled",
            "Running jobs stopped at a checkpoint because their client had gone or withdrew them",
            m.cancelled.clone(),
        );
        m
    }

    /// Counts a connection refused over the caps.
    pub(crate) fn connection_refused(&self) {
        self.connections_refused.inc();
    }

    /// Counts a request refused as too costly.
    pub(crate) fn request_too_costly(&self) {
        self.too_costly.inc();
    }

    /// Counts a running job stopped because its client went.
    pub(crate) fn job_cancelled(&self) {
        self.cancelled.inc();
    }

    /// The Prometheus text exposition: what was recorded, and `now`, the
    /// gauges read from the state at this scrape.
    pub fn render(&self, now: Gauges) -> String {
        let mut scraped = Registry::default();
        scraped.register_collector(Box::new(now));
        let mut open = String::with_capacity(8 * 1024);
        let encoded = encode_registry(&mut open, &self.registry)
            .and_then(|()| encode_registry(&mut open, &scraped));
        if encoded.is_err() {
            // Writing to a String does not fail; the encoder itself would
            // have to. Serve what was written rather than nothing.
            warn!("metrics: encoding failed part-way");
        }
        classic_text(&open)
    }

    /// Counts one HTTP request in flight until the guard drops.
    pub fn http_request(&self) -> GaugeGuard {
        GaugeGuard::hold(&self.http_in_flight)
    }

    /// Counts one open protocol connection until the guard drops.
    pub(crate) fn tcp_connection(&self) -> GaugeGuard {
        GaugeGuard::hold(&self.tcp_connections)
    }

    /// The responder of `request`, metered: its answer is counted by op
    /// and outcome as it goes out. A request forwarded by a peer counts as
    /// received here.
    pub(crate) fn meter(self: &Arc<Self>, request: &Incoming, responder: Responder) -> Responder {
        let op = op_name(request.op);
        if request.is_forwarded() {
            self.received.get_or_create(&OpLabel { op }).inc();
        }
        let metrics = self.clone();
        responder.wrap(move |inner| Box::new(Metered { inner, op, metrics }))
    }

    /// Counts a decode rejection, if `code` is one (others are ignored).
    pub(crate) fn decode_rejected(&self, code: ErrorCode) {
        if DECODE_REJECTIONS.contains(&code) {
            self.decode_rejections
                .get_or_create(&ReasonLabel {
                    reason: code.as_str(),
                })
                .inc();
        }
    }

    /// Records that a worker took an `op` job after it `waited` in the queue.
    pub(crate) fn job_started(&self, op: Op, waited: Duration) {
        self.queue_wait
            .get_or_create(&OpLabel { op: op_name(op) })
            .observe(waited.as_secs_f64());
    }

    /// Records that an `op` job had its result `took` after it started.
    pub(crate) fn job_ran(&self, op: Op, took: Duration) {
        self.run_time
            .get_or_create(&OpLabel { op: op_name(op) })
            .observe(took.as_secs_f64());
    }
}

/// An op's label value.
fn op_name(op: Op) -> &'static str {
    match op {
        Op::Filter => "filter",
        Op::Detect => "detect",
        Op::Enroll => "enroll",
        Op::Recognize => "recognize",
        Op::People => "people",
        Op::RemovePerson => "remove_person",
        Op::Status => "status",
        Op::Auth => "auth",
        // Events are not requests: the handler never sees one.
        _ => "other",
    }
}

/// A terminal event's outcome label (`ok`, `busy` or the error code) and,
/// for an ERROR, its code. A code this version does not know (a newer
/// peer's) is `unknown`: label values come from this version's list only.
fn outcome(op: Op, header: &Map<String, Value>) -> (&'static str, Option<ErrorCode>) {
    match op {
        Op::Result => ("ok", None),
        Op::Busy => ("busy", None),
        _ => {
            let code = match header.get("code").and_then(Value::as_str) {
                Some(sent) => ErrorCode::ALL
                    .into_iter()
                    .find(|c| c.as_str() == sent)
                    .unwrap_or(ErrorCode::Unknown),
                None => ErrorCode::Internal,
            };
            (code.as_str(), Some(code))
        }
    }
}

/// An answer that counts itself as it goes out (after the wrapping pattern
/// of [`crate::access::audit::Audited`]).
struct Metered {
    inner: Box<dyn Answer>,
    op: &'static str,
    metrics: Arc<Metrics>,
}

impl Answer for Metered {
    fn answer(
        self: Box<Self>,
        request_id: u64,
        op: Op,
        header: Map<String, Value>,
        payload: Bytes,
    ) {
        let (outcome, code) = outcome(op, &header);
        self.metrics
            .jobs
            .get_or_create(&JobLabels {
                op: self.op,
                outcome,
            })
            .inc();
        if let Some(code) = code {
            self.metrics.decode_rejected(code);
        }
        self.inner.answer(request_id, op, header, payload);
    }
}

/// Holds one unit of a gauge (a connection, a request) until dropped.
#[must_use = "the gauge goes down again when the guard drops"]
#[derive(Debug)]
pub(crate) struct GaugeGuard(Gauge);

impl GaugeGuard {
    fn hold(gauge: &Gauge) -> GaugeGuard {
        gauge.inc();
        GaugeGuard(gauge.clone())
    }
}

impl Drop for GaugeGuard {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// The values the node's state holds at one scrape
/// ([`crate::state::State::gauges`] reads them; this module never sees the
/// state, so that everything the node is made of may record here).
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Gauges {
    pub queue_length: u64,
    pub queue_capacity: u64,
    pub workers: u64,
    pub busy: u64,
    pub jobs_forwarded: u64,
    /// Peers alive, leaving and dead (all zero without a mesh).
    pub peers: Peers,
    /// `None` on a node without the recognition role (or whose store
    /// could not be read: logged).
    pub enrolled: Option<Enrolled>,
    /// Bytes held for clients, and the budget.
    pub memory_held: u64,
    pub memory_budget: u64,
}

/// Other nodes of the mesh, by state.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Peers {
    pub alive: u64,
    pub leaving: u64,
    pub dead: u64,
}

/// What the face store holds.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Enrolled {
    pub people: u64,
    pub faces: u64,
    pub generation: u64,
}

/// Writes a gauge family of one sample.
fn gauge(e: &mut DescriptorEncoder, name: &str, help: &str, v: u64) -> std::fmt::Result {
    e.encode_descriptor(name, help, None, MetricType::Gauge)?
        .encode_gauge(&v)
}

impl Collector for Gauges {
    fn encode(&self, mut e: DescriptorEncoder) -> std::fmt::Result {
        gauge(
            &mut e,
            "ocellus_queue_length",
            "Jobs waiting in the queue.",
            self.queue_length,
        )?;
        gauge(
            &mut e,
            "ocellus_queue_capacity",
            "Jobs the queue holds at most (more are answered BUSY).",
            self.queue_capacity,
        )?;
        gauge(&mut e, "ocellus_workers", "Worker threads.", self.workers)?;
        gauge(
            &mut e,
            "ocellus_memory_held_bytes",
            "Bytes held for clients: frames being received, queued requests, results not yet written.",
            self.memory_held,
        )?;
        gauge(
            &mut e,
            "ocellus_memory_budget_bytes",
            "The memory budget (--memory-budget): when held bytes reach it, the node stops reading.",
            self.memory_budget,
        )?;
        gauge(
            &mut e,
            "ocellus_workers_busy",
            "Worker threads running a job.",
            self.busy,
        )?;
        ConstCounter::new(self.jobs_forwarded).encode(e.encode_descriptor(
            "ocellus_jobs_forwarded",
            "Jobs handed to peers to run (attempts: a job retried on another peer counts again; STATUS jobs_forwarded).",
            None,
            MetricType::Counter,
        )?)?;
        {
            let mut family = e.encode_descriptor(
                "ocellus_peers",
                "Other nodes of the mesh by state (alive, leaving, dead).",
                None,
                MetricType::Gauge,
            )?;
            let peers = self.peers;
            for (state, n) in [
                ("alive", peers.alive),
                ("leaving", peers.leaving),
                ("dead", peers.dead),
            ] {
                family
                    .encode_family(&StateLabel { state })?
                    .encode_gauge(&n)?;
            }
        }
        if let Some(c) = self.enrolled {
            gauge(
                &mut e,
                "ocellus_people_enrolled",
                "People enrolled in this node's face store.",
                c.people,
            )?;
            gauge(
                &mut e,
                "ocellus_faces_enrolled",
                "Faces stored for the people enrolled.",
                c.faces,
            )?;
            gauge(
                &mut e,
                "ocellus_model_generation",
                "Generation of the face set (grows with every enrolment or removal; RECOGNIZE's model_version once models are trained on it).",
                c.generation,
            )?;
        }
        Ok(())
    }
}

/// prometheus-client's OpenMetrics text in the classic text format 0.0.4:
/// a counter family takes its samples' name (`x_total`: OpenMetrics names
/// it `x`), `unknown` becomes `untyped`, and the `# UNIT` and `# EOF` lines,
/// which the classic format has not, are left out. Nothing else differs
/// for the metrics written here (no exemplars, no created timestamps).
fn classic_text(open: &str) -> String {
    let mut out = String::with_capacity(open.len() + 512);
    let mut push = |line: &str| {
        out.push_str(line);
        out.push('\n');
    };
    // A HELP line waits for its TYPE line (the next one), which says
    // whether the family is renamed.
    let mut help: Option<&str> = None;
    for line in open.lines() {
        if line.starts_with("# HELP ") {
            if let Some(h) = help.replace(line) {
                push(h);
            }
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap_or((rest, "untyped"));
            let (suffix, kind) = match kind {
                "counter" => ("_total", kind),
                "unknown" => ("", "untyped"),
                _ => ("", kind),
            };
            if let Some(h) = help.take() {
                match h
                    .strip_prefix("# HELP ")
                    .and_then(|r| r.strip_prefix(name))
                    .filter(|text| text.starts_with(' '))
                {
                    Some(text) => push(&format!("# HELP {name}{suffix}{text}")),
                    None => push(h),
                }
            }
            push(&format!("# TYPE {name}{suffix} {kind}"));
            continue;
        }
        if let Some(h) = help.take() {
            push(h);
        }
        if line == "# EOF" || line.starts_with("# UNIT ") {
            continue;
        }
        push(line);
    }
    if let Some(h) = help {
        push(h);
    }
    out
}

#[cfg(test)]
pub(crate) mod tests {
    use std::io::Write;
    use std::process::{Command, Stdio};

    use super::*;

    /// The value of the sample `series` (name and labels, as written).
    pub(crate) fn value(text: &str, series: &str) -> Option<f64> {
        text.lines()
            .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
            .map(|v| v.parse().expect("a number"))
    }

    #[test]
    fn connection_and_request_gauges_follow_their_guards() {
        let m = Metrics::new();
        let (tcp, http) = ("ocellus_tcp_connections", "ocellus_http_requests_in_flight");
        let request = m.http_request();
        let connections = [m.tcp_connection(), m.tcp_connection()];
        let text = m.render(Gauges::default());
        assert_eq!(
            (value(&text, tcp), value(&text, http)),
            (Some(2.0), Some(1.0))
        );
        drop(request);
        drop(connections);
        let text = m.render(Gauges::default());
        assert_eq!(
            (value(&text, tcp), value(&text, http)),
            (Some(0.0), Some(0.0))
        );
    }

    #[test]
    fn outcomes_are_this_versions_codes_only() {
        let header = |code: &str| {
            let mut h = Map::new();
            h.insert("code".into(), code.into());
            h
        };
        assert_eq!(
            outcome(Op::Error, &header("image_too_large")),
            ("image_too_large", Some(ErrorCode::ImageTooLarge))
        );
        // A newer peer's code, or anything else it sends, is no new label.
        assert_eq!(
            outcome(Op::Error, &header("made_up_by_a_peer")),
            ("unknown", Some(ErrorCode::Unknown))
        );
        assert_eq!(
            outcome(Op::Error, &Map::new()),
            ("internal", Some(ErrorCode::Internal))
        );
        assert_eq!(outcome(Op::Busy, &Map::new()), ("busy", None));
        assert_eq!(outcome(Op::Result, &header("bad_image")), ("ok", None));
    }

    #[test]
    fn openmetrics_counters_become_classic_families() {
        let open = "# HELP a_b Things.\n# TYPE a_b counter\na_b_total{x=\"1\"} 2\n\
                    # HELP g A gauge.\n# TYPE g gauge\n# UNIT g seconds\ng 1.5\n# EOF\n";
        assert_eq!(
            classic_text(open),
            "# HELP a_b_total Things.\n# TYPE a_b_total counter\na_b_total{x=\"1\"} 2\n\
             # HELP g A gauge.\n# TYPE g gauge\ng 1.5\n"
        );
    }

    /// Pipes `text` into `promtool check metrics`; without promtool the
    /// check is skipped, except under CI.
    pub(crate) fn promtool_check(text: &str) {
        let spawned = Command::new("promtool")
            .args(["check", "metrics"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn();
        let mut child = match spawned {
            Ok(child) => child,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                if std::env::var("CI").is_ok_and(|v| v == "true") {
                    panic!("promtool is not installed (scripts/setup --tests installs it)");
                }
                eprintln!("skipped: promtool is not installed (apt-get install prometheus)");
                return;
            }
            Err(e) => panic!("cannot run promtool: {e}"),
        };
        let mut stdin = child.stdin.take().expect("stdin");
        stdin.write_all(text.as_bytes()).expect("write to promtool");
        drop(stdin);
        let out = child.wait_with_output().expect("promtool");
        assert!(
            out.status.success(),
            "promtool check metrics failed ({}):\n{}{}\non:\n{text}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
        );
    }

    #[test]
    fn promtool_accepts_the_exposition() {
        let m = Metrics::new();
        m.job_started(Op::Filter, Duration::from_millis(3));
        m.job_ran(Op::Filter, Duration::from_millis(40));
        m.decode_rejected(ErrorCode::BadImage);
        let _request = m.http_request();
        let now = Gauges {
            queue_length: 2,
            queue_capacity: 256,
            workers: 2,
            busy: 1,
            jobs_forwarded: 5,
            peers: Peers {
                alive: 2,
                leaving: 0,
                dead: 1,
            },
            enrolled: Some(Enrolled {
                people: 3,
                faces: 9,
                generation: 12,
            }),
            memory_held: 1 << 20,
            memory_budget: 1 << 30,
        };
        let text = m.render(now);
        assert_eq!(value(&text, "ocellus_people_enrolled"), Some(3.0));
        assert_eq!(value(&text, "ocellus_faces_enrolled"), Some(9.0));
        assert_eq!(value(&text, "ocellus_model_generation"), Some(12.0));
        assert_eq!(value(&text, r#"ocellus_peers{state="dead"}"#), Some(1.0));
        assert_eq!(value(&text, "ocellus_jobs_forwarded_total"), Some(5.0));
        promtool_check(&text);
    }
}
