//! Peer-to-peer mode proven with real processes on loopback: nodes that
//! join one another with `--join`, share filter jobs sent to one of them,
//! and lose none when a peer is killed, joins late or leaves.
//!
//! Gossip runs every 100 ms here so that a mesh forms in well under a
//! second. Nothing sleeps to synchronise: the tests poll STATUS (with a
//! deadline) until the mesh or a queue is in the state they need.

mod common;

use std::collections::{BTreeMap, BTreeSet};

use common::{PATIENCE, Raw, ServerProcess, describe, error_code, local_filter, photo, wait_until};
use ocellus_protocol::{Frame, Op};
use serde_json::{Map, Value, json};

const GOSSIP: &[&str] = &["--gossip-interval", "100"];

/// A moderately slow job (tens of milliseconds): queues build up.
const OPS: &str = "blur=3";
const IMAGE: &str = "fr_obama_small.jpg";
/// A job that keeps a worker busy for a second or more.
const SLOW_OPS: &str = "median=7";
const SLOW_IMAGE: &str = "deepface_couple.jpg";

/// Requests a connection may have in flight (the node's default limit).
const WINDOW: usize = 16;

/// A filter node with one worker, joined to `join` when given.
fn node(join: Option<&ServerProcess>, extra: &[&str]) -> ServerProcess {
    let mut args = vec!["--roles", "filter", "--workers", "1"];
    args.extend_from_slice(GOSSIP);
    let seed;
    if let Some(j) = join {
        seed = j.address();
        args.extend(["--join", seed.as_str()]);
    }
    args.extend_from_slice(extra);
    ServerProcess::start(&args)
}

fn peers(status: &Map<String, Value>) -> Vec<Value> {
    status["peers"].as_array().cloned().unwrap_or_default()
}

fn is_alive_peer(status: &Map<String, Value>, node_id: &str) -> bool {
    peers(status)
        .iter()
        .any(|p| p["node_id"] == node_id && p["alive"] == true && p["leaving"] == false)
}

fn node_id(n: &ServerProcess) -> String {
    n.status()["node_id"].as_str().expect("node_id").to_string()
}

/// Waits until `observer` sees every node of `others` alive.
fn wait_for_mesh(observer: &ServerProcess, others: &[&ServerProcess]) {
    let ids: Vec<String> = others.iter().map(|n| node_id(n)).collect();
    let formed = wait_until(PATIENCE, || {
        let status = observer.status();
        ids.iter().all(|id| is_alive_peer(&status, id))
    });
    assert!(
        formed,
        "the mesh did not form; status: {:#?}; log:\n{}",
        observer.status(),
        observer.log()
    );
}

/// Every event of a batch, by request id.
struct Batch {
    events: BTreeMap<u64, Vec<Frame>>,
}

impl Batch {
    /// The one terminal event of each request (asserting there is one).
    fn results(&self) -> BTreeMap<u64, &Frame> {
        self.events
            .iter()
            .map(|(id, events)| {
                let terminal: Vec<&Frame> = events
                    .iter()
                    .filter(|f| Op::from_code(f.op).is_some_and(Op::is_terminal))
                    .collect();
                assert_eq!(
                    terminal.len(),
                    1,
                    "request {id}: {:?}",
                    events.iter().map(describe).collect::<Vec<_>>()
                );
                (*id, terminal[0])
            })
            .collect()
    }

    /// The node that ran each request (the RESULT's `node_id`), checking
    /// every result against a local run of the same pipeline.
    fn ran_on(&self, image: &[u8], ops: &str) -> BTreeMap<u64, String> {
        let expected = local_filter(image, ops);
        self.results()
            .into_iter()
            .map(|(id, f)| {
                assert_eq!(
                    f.op,
                    Op::Result.code(),
                    "request {id} ended with {}",
                    describe(f)
                );
                assert!(f.payload == expected, "request {id}: wrong image");
                let node = f.header["node_id"].as_str().expect("RESULT node_id");
                (id, node.to_string())
            })
            .collect()
    }
}

/// Sends `count` FILTER requests on one connection, at most [`WINDOW`] in
/// flight, and reads every event until each has ended; then asks STATUS on
/// the same connection, so that any second terminal event sent before it
/// is caught too. `on_event` sees events as they come.
fn run_batch(
    conn: &mut Raw,
    image: &[u8],
    ops: &str,
    count: u64,
    mut on_event: impl FnMut(&Frame),
) -> Batch {
    let mut events: BTreeMap<u64, Vec<Frame>> = BTreeMap::new();
    let mut next = 1;
    let mut open = 0;
    let mut ended = 0;
    while ended < count {
        while open < WINDOW && next <= count {
            conn.send_filter(next, ops, image);
            next += 1;
            open += 1;
        }
        let f = conn.next_frame();
        assert_ne!(f.request_id, 0, "connection-level event: {}", describe(&f));
        on_event(&f);
        if Op::from_code(f.op).is_some_and(Op::is_terminal) {
            ended += 1;
            open -= 1;
        }
        events.entry(f.request_id).or_default().push(f);
    }
    let status_id = count + 1;
    conn.send(Op::Status, status_id, json!({}), Vec::new());
    loop {
        let f = conn.next_frame();
        if f.request_id == status_id {
            break;
        }
        events.entry(f.request_id).or_default().push(f);
    }
    Batch { events }
}

/// Whether `f` is the relayed ACCEPTED of a job handed to node `id`.
fn accepted_on(f: &Frame, id: &str) -> bool {
    f.op == Op::Accepted.code() && f.header.get("node_id").is_some_and(|n| n == id)
}

fn count_by_node(ran_on: &BTreeMap<u64, String>) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for node in ran_on.values() {
        *counts.entry(node.clone()).or_insert(0) += 1;
    }
    counts
}

fn jobs_done(n: &ServerProcess) -> u64 {
    n.status()["jobs_done"].as_u64().expect("jobs_done")
}

#[test]
fn three_nodes_share_a_batch_sent_to_one() {
    let data = ocellus_testdata::require_data!();
    let image = photo(&data, IMAGE);
    let a = node(None, &[]);
    let b = node(Some(&a), &[]);
    let c = node(Some(&a), &[]);
    wait_for_mesh(&a, &[&b, &c]);

    let mut relayed = 0;
    let batch = run_batch(&mut a.connect(), &image, OPS, 60, |f| {
        if f.op == Op::Accepted.code() && f.header.contains_key("node_addr") {
            relayed += 1;
        }
    });
    let ran_on = batch.ran_on(&image, OPS);
    assert_eq!(ran_on.len(), 60, "every request answered");
    let counts = count_by_node(&ran_on);
    let ids: BTreeSet<String> = [&a, &b, &c].iter().map(|n| node_id(n)).collect();
    assert_eq!(
        counts.keys().cloned().collect::<BTreeSet<_>>(),
        ids,
        "jobs ran on every node: {counts:?}"
    );
    // The STATUS counters agree with the results: each node counts the
    // jobs it ran itself, and nothing ran twice.
    for n in [&a, &b, &c] {
        assert_eq!(jobs_done(n) as usize, counts[&node_id(n)], "{}", n.log());
    }
    assert!(relayed > 0, "the client heard the peers' ACCEPTED events");
    // A forwarded job's progress names the peer that holds it.
    for events in batch.events.values() {
        let result = events.last().expect("events");
        let ran = result.header["node_id"].as_str().expect("node_id");
        for f in events.iter().filter(|f| f.header.contains_key("node_addr")) {
            assert_eq!(f.header["node_id"], ran, "{}", describe(f));
        }
    }
    // `status --json` lists the peers with the documented fields.
    let status = a.status();
    let listed = peers(&status);
    assert_eq!(listed.len(), 2, "{status:#?}");
    for p in &listed {
        for key in [
            "node_id",
            "addr",
            "roles",
            "queue_length",
            "workers",
            "jobs_done",
            "alive",
        ] {
            assert!(p.get(key).is_some(), "peer without {key}: {p}");
        }
        assert_eq!(p["roles"], json!(["filter"]));
        assert_eq!(p["workers"], 1);
    }
    assert!(status["jobs_forwarded"].as_u64().unwrap_or(0) > 0);
}

#[test]
fn killing_a_peer_that_holds_forwarded_jobs_loses_none() {
    let data = ocellus_testdata::require_data!();
    let image = photo(&data, SLOW_IMAGE);
    let a = node(None, &[]);
    let mut b = node(Some(&a), &[]);
    let c = node(Some(&a), &[]);
    wait_for_mesh(&a, &[&b, &c]);
    let b_id = node_id(&b);

    // Once a job has been handed to B and waits there, kill B.
    let mut killed = false;
    let batch = run_batch(&mut a.connect(), &image, SLOW_OPS, 12, |f| {
        if !killed && accepted_on(f, &b_id) {
            // Its first forwarded job runs; wait until a second waits there.
            wait_until(PATIENCE, || b.status()["queue_length"].as_u64() >= Some(1));
            b.kill_hard();
            killed = true;
        }
    });
    assert!(killed, "no job was forwarded to B");
    let ran_on = batch.ran_on(&image, SLOW_OPS);
    assert_eq!(ran_on.len(), 12);
    assert!(
        a.log().contains("running it again"),
        "A reran B's jobs; log:\n{}",
        a.log()
    );
    // The failure detector then declares B dead.
    let noticed = wait_until(PATIENCE, || {
        peers(&a.status())
            .iter()
            .any(|p| p["node_id"] == b_id.as_str() && p["alive"] == false)
    });
    assert!(noticed, "B still listed alive: {:#?}", a.status());
}

#[test]
fn a_late_joiner_receives_work() {
    let data = ocellus_testdata::require_data!();
    let image = photo(&data, IMAGE);
    let a = node(None, &[]);
    let b = node(Some(&a), &[]);
    wait_for_mesh(&a, &[&b]);
    let first = run_batch(&mut a.connect(), &image, OPS, 24, |_| {});
    first.ran_on(&image, OPS);

    // C joins through B, not through the entry node: gossip tells A.
    let c = node(Some(&b), &[]);
    wait_for_mesh(&a, &[&b, &c]);
    let second = run_batch(&mut a.connect(), &image, OPS, 48, |_| {});
    let counts = count_by_node(&second.ran_on(&image, OPS));
    let c_id = node_id(&c);
    assert!(counts.get(&c_id).is_some_and(|&n| n > 0), "{counts:?}");
    assert_eq!(jobs_done(&c) as usize, counts[&c_id]);
}

#[test]
fn a_node_that_leaves_hands_its_queue_to_a_peer_and_tells_the_mesh() {
    let data = ocellus_testdata::require_data!();
    let image = photo(&data, SLOW_IMAGE);
    let a = node(None, &[]);
    // B keeps what it is sent (no forwarding for load), so its queue fills.
    let mut b = node(Some(&a), &["--forwarding", "never"]);
    wait_for_mesh(&a, &[&b]);
    wait_for_mesh(&b, &[&a]);
    let a_id = node_id(&a);
    let b_id = node_id(&b);

    let mut terminated = false;
    let batch = run_batch(&mut b.connect(), &image, SLOW_OPS, 8, |f| {
        if !terminated && f.op == Op::Started.code() {
            // One job runs and seven wait: leave now.
            wait_until(PATIENCE, || b.status()["queue_length"].as_u64() >= Some(7));
            b.terminate();
            terminated = true;
        }
    });
    let ran_on = batch.ran_on(&image, SLOW_OPS);
    let counts = count_by_node(&ran_on);
    assert_eq!(ran_on.len(), 8, "every job finished: {counts:?}");
    assert!(
        counts.get(&a_id).is_some_and(|&n| n >= 1) && counts.get(&b_id).is_some_and(|&n| n >= 1),
        "B finished its running job and handed the waiting ones to A: {counts:?}"
    );
    let status = b.wait_exit(PATIENCE);
    assert!(
        status.is_some_and(|s| s.success()),
        "B did not exit cleanly: {status:?}; log:\n{}",
        b.log()
    );
    // A learns that B left, and sends it nothing more.
    let gone = wait_until(PATIENCE, || !is_alive_peer(&a.status(), &b_id));
    assert!(gone, "{:#?}", a.status());
    let after = run_batch(&mut a.connect(), &image, OPS, 4, |_| {});
    assert!(after.ran_on(&image, OPS).values().all(|n| *n == a_id));
}

#[test]
fn a_busy_answer_or_an_error_from_a_peer_reaches_the_client_once() {
    let data = ocellus_testdata::require_data!();
    let image = photo(&data, IMAGE);
    let a = node(None, &["--forwarding", "always"]);
    let b = node(Some(&a), &[]);
    wait_for_mesh(&a, &[&b]);
    let b_id = node_id(&b);
    // Every job goes to B; errors made there come back as they were.
    let mut conn = a.connect();
    conn.send_filter(1, "crop=5000x5000+0+0", &image);
    let events = conn.events_until_terminal(1);
    let last = events.last().expect("events");
    assert_eq!(error_code(last).as_deref(), Some("filter_failed"));
    let batch = run_batch(&mut conn, &image, OPS, 8, |_| {});
    assert!(batch.ran_on(&image, OPS).values().all(|n| *n == b_id));
    assert_eq!(jobs_done(&a), 0);
}

/// Sends a signal to a process (through `kill`).
fn signal(n: &ServerProcess, sig: &str) {
    let ok = std::process::Command::new("kill")
        .args([sig, &n.pid().to_string()])
        .status()
        .is_ok_and(|s| s.success());
    assert!(ok, "kill {sig} failed");
}

#[test]
fn a_peer_cut_off_behind_an_open_connection_is_caught_by_the_failure_detector() {
    let data = ocellus_testdata::require_data!();
    let image = photo(&data, SLOW_IMAGE);
    let a = node(None, &[]);
    let b = node(Some(&a), &[]);
    wait_for_mesh(&a, &[&b]);
    let b_id = node_id(&b);

    // SIGSTOP freezes B: its connections stay open but say nothing, and it
    // stops gossiping. Only the failure detector can tell.
    let mut frozen = false;
    let mut conn = a.connect();
    let batch = run_batch(&mut conn, &image, SLOW_OPS, 6, |f| {
        if !frozen && accepted_on(f, &b_id) {
            signal(&b, "-STOP");
            frozen = true;
        }
    });
    assert!(frozen, "no job was forwarded to B");
    let ran_on = batch.ran_on(&image, SLOW_OPS);
    assert_eq!(ran_on.len(), 6);
    assert!(
        a.log().contains("failure detector declared it dead"),
        "{}",
        a.log()
    );

    // B wakes up and finishes what it held: its late results go nowhere.
    signal(&b, "-CONT");
    let drained = wait_until(PATIENCE, || {
        let s = b.status();
        s["queue_length"] == 0 && s["busy"] == 0
    });
    assert!(drained);
    conn.send(Op::Status, 100, json!({}), Vec::new());
    let f = conn.next_frame();
    assert_eq!(
        f.request_id,
        100,
        "a second answer arrived: {}",
        describe(&f)
    );
}
