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
    ServerProcess::start_in_mesh(&args)
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

/// A chitchat transport that is chitchat's own clear UDP, recording what
/// goes through it: what an attacker with the chitchat crate runs.
mod forger {
    use std::net::SocketAddr;
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    use async_trait::async_trait;
    use chitchat::transport::{RecvOutcome, SendOutcome, Socket, Transport, UdpTransport};
    use chitchat::{
        ChitchatConfig, ChitchatEnvelope, ChitchatHandle, ChitchatId, ChitchatMessage,
        FailureDetectorConfig, ProtocolVersion,
    };

    /// Every message received (from, kind).
    #[derive(Default)]
    pub struct Log {
        pub received: Vec<(SocketAddr, &'static str)>,
    }

    fn kind(m: &ChitchatMessage) -> &'static str {
        match m {
            ChitchatMessage::Syn { .. } => "syn",
            ChitchatMessage::SynAck { .. } => "synack",
            ChitchatMessage::Ack { .. } => "ack",
            ChitchatMessage::BadCluster => "badcluster",
        }
    }

    pub struct Recording(pub Arc<Mutex<Log>>);

    struct RecordingSocket(Box<dyn Socket>, Arc<Mutex<Log>>);

    #[async_trait]
    impl Transport for Recording {
        async fn open(&self, addr: SocketAddr) -> anyhow::Result<Box<dyn Socket>> {
            Ok(Box::new(RecordingSocket(
                UdpTransport.open(addr).await?,
                self.0.clone(),
            )))
        }
    }

    #[async_trait]
    impl Socket for RecordingSocket {
        fn local_addr(&self) -> anyhow::Result<SocketAddr> {
            self.0.local_addr()
        }
        async fn send(
            &mut self,
            to: SocketAddr,
            envelope: ChitchatEnvelope,
        ) -> anyhow::Result<SendOutcome> {
            self.0.send(to, envelope).await
        }
        async fn recv(&mut self) -> anyhow::Result<RecvOutcome> {
            let got = self.0.recv().await?;
            if let Ok(mut log) = self.1.lock() {
                log.received
                    .push((got.from_addr, kind(&got.envelope.message)));
            }
            Ok(got)
        }
    }

    /// A chitchat node of cluster `ocellus` on `gossip` advertising a
    /// protocol listener at `addr` with 64 idle, fast workers.
    pub async fn spawn(
        gossip: SocketAddr,
        seeds: Vec<String>,
        addr: SocketAddr,
        log: Arc<Mutex<Log>>,
    ) -> ChitchatHandle {
        let config = ChitchatConfig {
            chitchat_id: ChitchatId::new(format!("forger-{}", gossip.port()), 1, gossip),
            cluster_id: "ocellus".to_string(),
            gossip_interval: Duration::from_millis(100),
            listen_addr: gossip,
            seed_nodes: seeds,
            failure_detector_config: FailureDetectorConfig::default(),
            marked_for_deletion_grace_period: Duration::from_secs(3600),
            catchup_callback: None,
            extra_liveness_predicate: None,
            protocol_version: ProtocolVersion::V0,
        };
        let state = [
            ("addr", addr.to_string()),
            ("roles", "filter,detect,recognize".to_string()),
            ("workers", "64".to_string()),
            ("queue_length", "0".to_string()),
            ("busy", "0".to_string()),
            ("jobs_done", "0".to_string()),
            ("mean_job_s", "0.001".to_string()),
            ("leaving", "false".to_string()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        chitchat::spawn_chitchat(config, state, &Recording(log))
            .await
            .expect("the forger's chitchat starts")
    }
}

fn free_udp() -> std::net::SocketAddr {
    std::net::UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .expect("a free UDP port")
}

fn gossip_rejected(n: &ServerProcess) -> u64 {
    n.status()["gossip_rejected"]
        .as_u64()
        .expect("gossip_rejected")
}

#[test]
fn a_forged_peer_and_a_node_with_another_secret_never_become_members() {
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    let data = ocellus_testdata::require_data!();
    let image = photo(&data, IMAGE);
    // Every job a live peer can run goes to a peer: a forger that became
    // one would get them all.
    let victim = node(None, &["--forwarding", "always"]);
    let victim_gossip = victim.addr;
    let victim_id = node_id(&victim);

    // The attacker's protocol listener, where forwarded jobs would land.
    let trap = std::net::TcpListener::bind("127.0.0.1:0").expect("a TCP listener");
    trap.set_nonblocking(true).expect("non-blocking");
    let trap_addr = trap.local_addr().expect("its address");

    // The attacker's chitchat node gossips at the victim and at a tap, a
    // plain socket that keeps its real SYN; a second chitchat node's SYN,
    // sent to the first from the tap, has it answer a real SYN-ACK that
    // carries the forged state. Both are then replayed at the victim from
    // a plain socket.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("a runtime");
    let tap = std::net::UdpSocket::bind("127.0.0.1:0").expect("a UDP socket");
    tap.set_read_timeout(Some(PATIENCE)).expect("a timeout");
    let tap_addr = tap.local_addr().expect("its address");
    let log = Arc::new(Mutex::new(forger::Log::default()));
    let (forger_gossip, helper_gossip) = (free_udp(), free_udp());
    let handles = runtime.block_on(async {
        let f = forger::spawn(
            forger_gossip,
            vec![victim_gossip.to_string(), tap_addr.to_string()],
            trap_addr,
            log.clone(),
        )
        .await;
        let h = forger::spawn(
            helper_gossip,
            vec![tap_addr.to_string()],
            trap_addr,
            Arc::new(Mutex::new(forger::Log::default())),
        )
        .await;
        (f, h)
    });
    // chitchat's header: magic (2), version (1), message type (1: 0 SYN, 1 SYN-ACK).
    let from_tap = |sender: std::net::SocketAddr, kind: u8| -> Vec<u8> {
        let mut buf = vec![0u8; 65_536];
        loop {
            let (len, from) = tap.recv_from(&mut buf).expect("the forger's gossip");
            if from == sender && len > 3 && buf[3] == kind {
                return buf[..len].to_vec();
            }
        }
    };
    let syn = from_tap(forger_gossip, 0);
    let helper_syn = from_tap(helper_gossip, 0);
    tap.send_to(&helper_syn, forger_gossip).expect("sent");
    let syn_ack = from_tap(forger_gossip, 1);

    // A real node with a different secret that joins the victim.
    let other_secret = ocellus_auth::ClusterSecret::generate().to_text();
    let mut other_args = vec!["--roles", "filter", "--workers", "4"];
    other_args.extend_from_slice(GOSSIP);
    let seed = victim.address();
    other_args.extend(["--join", seed.as_str()]);
    let stranger =
        ServerProcess::start_with_secret("127.0.0.1:0", Some(&other_secret), &other_args);

    let plain = std::net::UdpSocket::bind("127.0.0.1:0").expect("a UDP socket");
    plain
        .set_read_timeout(Some(Duration::from_secs(1)))
        .expect("a timeout");
    let before = gossip_rejected(&victim);
    for _ in 0..10 {
        for bytes in [&syn, &syn_ack] {
            plain.send_to(bytes, victim_gossip).expect("sent");
        }
    }
    let mut buf = [0u8; 65_536];
    let answer = plain.recv_from(&mut buf);
    assert!(
        answer.is_err(),
        "the victim answered the forger: {answer:?}"
    );
    assert!(
        wait_until(PATIENCE, || gossip_rejected(&victim) >= before + 20),
        "the replayed datagrams were counted: {:#?}",
        victim.status()
    );

    // Meanwhile both chitchat nodes and the stranger keep gossiping; jobs
    // sent now would go to any of them that were a member.
    std::thread::sleep(Duration::from_secs(2));
    let batch = run_batch(&mut victim.connect(), &image, OPS, 40, |_| {});
    let ran_on = batch.ran_on(&image, OPS);
    assert_eq!(ran_on.len(), 40);
    assert!(
        ran_on.values().all(|n| *n == victim_id),
        "every job ran on the victim: {:?}",
        count_by_node(&ran_on)
    );
    let status = victim.status();
    assert_eq!(peers(&status), Vec::<Value>::new(), "{status:#?}");
    assert_eq!(status["jobs_forwarded"], 0, "{status:#?}");
    assert!(
        status["gossip_rejected"].as_u64().unwrap_or(0) > before + 20,
        "the stranger's and the forger's gossip is counted: {status:#?}"
    );
    match trap.accept() {
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
        other => panic!("the victim connected to the attacker: {other:?}"),
    }
    assert_eq!(peers(&stranger.status()), Vec::<Value>::new());
    // The forger never heard from the victim, though it heard its helper.
    {
        let log = log.lock().expect("log");
        assert!(
            !log.received.iter().any(|(from, _)| *from == victim_gossip),
            "the victim answered chitchat: {:?}",
            log.received
        );
        assert!(!log.received.is_empty(), "the forger's chitchat works");
    }
    let out = std::process::Command::new(common::OCELLUS)
        .args(["status", "--server", &victim.address()])
        .output()
        .expect("ocellus status");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("gossip datagrams rejected: "), "{text}");
    assert!(text.contains("peers: 0"), "{text}");

    // A node with the right secret joins and takes work.
    let friend = node(Some(&victim), &[]);
    wait_for_mesh(&victim, &[&friend]);
    let friend_id = node_id(&friend);
    let batch = run_batch(&mut victim.connect(), &image, OPS, 20, |_| {});
    let counts = count_by_node(&batch.ran_on(&image, OPS));
    assert!(counts.get(&friend_id).is_some_and(|n| *n > 0), "{counts:?}");
    assert!(counts.keys().all(|n| *n == friend_id || *n == victim_id));
    let listed: Vec<String> = peers(&victim.status())
        .iter()
        .map(|p| p["node_id"].as_str().unwrap_or_default().to_string())
        .collect();
    assert_eq!(listed, vec![friend_id]);
    match trap.accept() {
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
        other => panic!("the victim connected to the attacker: {other:?}"),
    }
    runtime.block_on(async {
        let _ = handles.0.shutdown().await;
        let _ = handles.1.shutdown().await;
    });
}

#[test]
fn join_without_a_secret_exits_with_how_to_make_one() {
    let out = std::process::Command::new(common::OCELLUS)
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--roles",
            "filter",
            "--join",
            "127.0.0.1:9",
        ])
        .output()
        .expect("ocellus serve");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--cluster-secret-file"), "{err}");
    assert!(err.contains("ocellus mesh secret"), "{err}");
}

#[test]
fn a_malformed_or_missing_secret_file_stops_the_node_and_mesh_secret_makes_one() {
    let dir = common::TempDir::new("secret");
    let run = |args: &[&str]| {
        std::process::Command::new(common::OCELLUS)
            .args(args)
            .output()
            .expect("ocellus")
    };
    let missing = dir.path().join("missing");
    let bad = dir.path().join("bad");
    common::write_private(&bad, "not a secret\n");
    for (file, says) in [
        (&missing, "reading the cluster secret file"),
        (&bad, "not a cluster secret"),
    ] {
        let out = run(&[
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--roles",
            "filter",
            "--cluster-secret-file",
            file.to_str().expect("utf-8"),
        ]);
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(says), "{err}");
    }

    // Printed: one new secret a line.
    let printed = run(&["mesh", "secret"]);
    assert!(printed.status.success());
    let text = String::from_utf8_lossy(&printed.stdout).trim().to_string();
    assert!(ocellus_auth::ClusterSecret::parse(&text).is_ok(), "{text}");
    assert_ne!(
        text,
        String::from_utf8_lossy(&run(&["mesh", "secret"]).stdout).trim()
    );

    // Written: mode 0600, never over an existing file.
    let file = dir.path().join("cluster.secret");
    let path = file.to_str().expect("utf-8");
    assert!(run(&["mesh", "secret", "--out", path]).status.success());
    let written = std::fs::read_to_string(&file).expect("the secret file");
    assert!(ocellus_auth::ClusterSecret::parse(&written).is_ok());
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&file)
            .expect("metadata")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let again = run(&["mesh", "secret", "--out", path]);
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("not overwriting"));
    assert_eq!(std::fs::read_to_string(&file).expect("unchanged"), written);

    // A node given it gossips; one without is standalone and says so.
    let mut with = ServerProcess::start(&["--roles", "filter", "--cluster-secret-file", path]);
    assert!(
        wait_until(PATIENCE, || with.log().contains("gossip started")),
        "{}",
        with.log()
    );
    let without = ServerProcess::start(&["--roles", "filter"]);
    assert!(
        wait_until(PATIENCE, || without.log().contains("not in a mesh")),
        "{}",
        without.log()
    );
    assert!(!without.log().contains("gossip started"));
    with.terminate();
    with.wait_exit(PATIENCE);
}
