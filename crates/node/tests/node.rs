//! A node in this process, on port 0: the connection's guarantees
//! (ordering, backpressure, timeouts, BUSY, duplicate ids) and the mesh's
//! (forwarding and the hand-over at shutdown, over an in-memory gossip
//! transport), with no process spawned.

use std::net::SocketAddr;
use std::time::Duration;

use chitchat::transport::ChannelTransport;
use ocellus_client::{Client, Event};
use ocellus_codec::{EncodeOptions, ImageFormat, encode};
use ocellus_imaging::{Image, PixelLayout};
use ocellus_node::{Forwarding, GossipTransport, MeshSettings, Node, NodeConfig, NodeHandle};
use ocellus_protocol::message::{Busy, FilterRequest, from_header, to_header};
use ocellus_protocol::{ErrorCode, Frame, Op, Role, RoleSet, StatusReport, field};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Longest any step of these tests may take before it counts as hung.
const DEADLINE: Duration = Duration::from_secs(60);

fn filter_config() -> NodeConfig {
    let mut config = NodeConfig::new(
        SocketAddr::from(([127, 0, 0, 1], 0)),
        RoleSet::of(&[Role::Filter]),
    );
    config.workers = 1;
    config
}

/// Starts a node; its address and a handle to stop it.
async fn start(config: NodeConfig) -> (String, NodeHandle, tokio::task::JoinHandle<()>) {
    let node = Node::bind(config).await.expect("node starts");
    let addr = node.local_addr().expect("bound").to_string();
    let (handle, running) = node.into_running();
    let task = tokio::spawn(async move {
        running.await.expect("node runs");
    });
    (addr, handle, task)
}

/// A noise PNG of `side` x `side` pixels (incompressible: its results are
/// as large as it is).
fn png(side: u32, seed: u64) -> Vec<u8> {
    let data = ocellus_testdata::noise_bytes(seed, (side * side * 3) as usize);
    let image = Image::from_vec(side, side, PixelLayout::Rgb, data).expect("image");
    encode(&image, ImageFormat::Png, &EncodeOptions::default()).expect("png")
}

fn filter_header(ops: &str, image_len: usize) -> serde_json::Map<String, Value> {
    let mut h = to_header(&FilterRequest {
        ops: ops.into(),
        format: None,
        quality: None,
    });
    h.insert(field::IMAGES.into(), Value::from(vec![image_len as u64]));
    h
}

/// Every event of one request, until its terminal one.
async fn events(mut request: ocellus_client::Request) -> Vec<Event> {
    let mut all = Vec::new();
    while let Some(e) = tokio::time::timeout(DEADLINE, request.next())
        .await
        .expect("no hang")
    {
        let last = e.is_terminal();
        all.push(e);
        if last {
            break;
        }
    }
    all
}

async fn status(addr: &str) -> StatusReport {
    Client::connect(addr)
        .await
        .expect("connect")
        .status()
        .await
        .expect("status")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_of_each_request_come_in_order_with_one_terminal() {
    let (addr, handle, task) = start(filter_config()).await;
    let client = Client::connect(&addr).await.unwrap();
    let image = png(64, 1);
    let mut pending = Vec::new();
    for _ in 0..12 {
        let h = filter_header("blur=2", image.len());
        pending.push(client.request(Op::Filter, h, image.clone()).await.unwrap());
    }
    for request in pending {
        let ops: Vec<Op> = events(request).await.iter().map(|e| e.op).collect();
        assert_eq!(ops.first(), Some(&Op::Accepted), "{ops:?}");
        assert_eq!(ops.last(), Some(&Op::Result), "{ops:?}");
        let started = ops.iter().position(|o| *o == Op::Started).expect("STARTED");
        assert!(
            ops[1..started].iter().all(|o| *o == Op::Position),
            "{ops:?}"
        );
        assert_eq!(started, ops.len() - 2, "{ops:?}");
    }
    // No late duplicate: the connection still answers, and nothing else
    // arrived for those requests (their routes are gone).
    assert_eq!(client.status().await.unwrap().jobs_done, 12);
    handle.shut_down();
    task.await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_does_not_read_stops_being_read_from() {
    let mut config = filter_config();
    config.max_in_flight = 2;
    let (addr, handle, task) = start(config).await;
    // 1500 x 1500 noise: each result (about 6.7 MB) overflows the socket
    // buffers, so the node's writer blocks on the first one.
    let image = png(1500, 2);
    let mut raw = TcpStream::connect(&addr).await.unwrap();
    let mut bytes = Vec::new();
    for id in 1..=8u64 {
        Frame::new(
            Op::Filter,
            id,
            filter_header("invert", image.len()),
            image.clone(),
        )
        .encode(&mut bytes);
    }
    // Written in the background: the node stops reading, so this blocks.
    let writer = tokio::spawn(async move {
        let _ = raw.write_all(&bytes).await;
        raw
    });
    // Wait until the node has taken what it will take.
    let deadline = tokio::time::Instant::now() + DEADLINE;
    loop {
        let s = status(&addr).await;
        if s.jobs_done >= 1 && s.busy == 0 && s.queue_length == 0 {
            // Never more than max_in_flight of this connection's requests
            // were taken on.
            assert!(s.jobs_done <= 2, "{s:?}");
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "no progress: {s:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(status(&addr).await.jobs_done <= 2);
    assert!(!writer.is_finished(), "the node read every request");
    writer.abort();
    handle.shut_down();
    task.await.unwrap();
}

/// Reads frames from a raw socket until one with `request_id` 0 (the
/// connection's own ERROR) or EOF; returns the frames.
async fn read_frames(stream: &mut TcpStream) -> Vec<Frame> {
    let mut buf = Vec::new();
    let mut frames = Vec::new();
    let limits = ocellus_protocol::FrameLimits::default();
    loop {
        while let Ok(ocellus_protocol::Decoded::Frame(f, used)) =
            ocellus_protocol::decode_frame(&buf, &limits)
        {
            buf.drain(..used);
            frames.push(f);
        }
        let n = tokio::time::timeout(DEADLINE, stream.read_buf(&mut buf))
            .await
            .expect("no hang")
            .unwrap_or(0);
        if n == 0 {
            return frames;
        }
    }
}

fn error_code(frame: &Frame) -> ErrorCode {
    assert_eq!(frame.op, Op::Error.code());
    from_header::<ocellus_protocol::ErrorEvent>(&frame.header)
        .expect("error header")
        .code
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_and_incomplete_frames_time_out() {
    let mut config = filter_config();
    config.idle_timeout = Duration::from_secs(1);
    config.frame_timeout = Duration::from_secs(1);
    let (addr, handle, task) = start(config).await;

    let mut idle = TcpStream::connect(&addr).await.unwrap();
    let frames = read_frames(&mut idle).await;
    assert_eq!(frames.len(), 1);
    assert_eq!(frames[0].request_id, 0);
    assert_eq!(error_code(&frames[0]), ErrorCode::Timeout);

    // Half a frame, then silence (a slow-loris client).
    let mut slow = TcpStream::connect(&addr).await.unwrap();
    let image = png(16, 3);
    let bytes = Frame::new(Op::Filter, 1, filter_header("invert", image.len()), image).to_bytes();
    slow.write_all(&bytes[..bytes.len() / 2]).await.unwrap();
    let frames = read_frames(&mut slow).await;
    assert_eq!(frames.len(), 1);
    assert_eq!(error_code(&frames[0]), ErrorCode::Timeout);
    let message = frames[0].header["message"].as_str().unwrap().to_string();
    assert!(message.contains("incomplete frame"), "{message}");
    handle.shut_down();
    task.await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_queue_answers_busy_and_keeps_serving() {
    let mut config = filter_config();
    config.queue_capacity = 1;
    let (addr, handle, task) = start(config).await;
    let client = Client::connect(&addr).await.unwrap();
    // A job that runs for a second or more even on a fast machine, so the
    // requests below arrive while it runs.
    let image = png(700, 4);
    let ops = "median=12";
    // The first job must be running (out of the queue) before the others
    // come: otherwise it still holds the queue's one place and how many
    // fit depends on the worker's timing.
    let mut first = client
        .request(Op::Filter, filter_header(ops, image.len()), image.clone())
        .await
        .unwrap();
    loop {
        let e = tokio::time::timeout(DEADLINE, first.next())
            .await
            .expect("no hang")
            .expect("an event");
        assert!(!e.is_terminal(), "first job ended early: {e:?}");
        if e.op == Op::Started {
            break;
        }
    }
    let mut pending = Vec::new();
    for _ in 0..5 {
        let h = filter_header(ops, image.len());
        pending.push(client.request(Op::Filter, h, image.clone()).await.unwrap());
    }
    let mut results = 0;
    let mut busy = 0;
    let first_last = events(first).await.pop().expect("terminal event");
    assert_eq!(first_last.op, Op::Result);
    results += 1;
    for request in pending {
        let last = events(request).await.pop().expect("terminal event");
        match last.op {
            Op::Result => results += 1,
            Op::Busy => {
                let b: Busy = from_header(&last.header).unwrap();
                assert_eq!(b.capacity, 1);
                busy += 1;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    // One running and one waiting fit; the others are refused, not lost.
    assert!(results >= 2 && busy >= 1, "results {results}, busy {busy}");
    assert_eq!(results + busy, 6);
    // The node still serves.
    let again = client
        .request(
            Op::Filter,
            filter_header("invert", image.len()),
            image.clone(),
        )
        .await
        .unwrap();
    assert_eq!(events(again).await.last().unwrap().op, Op::Result);
    handle.shut_down();
    task.await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_duplicate_request_id_is_refused_and_the_original_goes_on() {
    let (addr, handle, task) = start(filter_config()).await;
    let image = png(600, 5);
    let mut raw = TcpStream::connect(&addr).await.unwrap();
    let mut bytes = Vec::new();
    Frame::new(
        Op::Filter,
        7,
        filter_header("median=6", image.len()),
        image.clone(),
    )
    .encode(&mut bytes);
    Frame::new(
        Op::Filter,
        7,
        filter_header("invert", image.len()),
        image.clone(),
    )
    .encode(&mut bytes);
    // Once the first has answered, id 7 may be used again.
    raw.write_all(&bytes).await.unwrap();
    let mut buf = Vec::new();
    let limits = ocellus_protocol::FrameLimits {
        max_frame: 1 << 30,
        max_header: 1 << 20,
    };
    let mut terminal = Vec::new();
    while terminal.len() < 2 {
        while let Ok(ocellus_protocol::Decoded::Frame(f, used)) =
            ocellus_protocol::decode_frame(&buf, &limits)
        {
            buf.drain(..used);
            if Op::from_code(f.op).is_some_and(Op::is_terminal) {
                terminal.push(f);
            }
        }
        if terminal.len() >= 2 {
            break;
        }
        let n = tokio::time::timeout(DEADLINE, raw.read_buf(&mut buf))
            .await
            .expect("no hang")
            .unwrap();
        assert!(n > 0, "connection closed");
    }
    assert_eq!(error_code(&terminal[0]), ErrorCode::DuplicateRequestId);
    assert_eq!(terminal[0].request_id, 7);
    assert_eq!(terminal[1].op, Op::Result.code());
    assert_eq!(terminal[1].request_id, 7);
    handle.shut_down();
    task.await.unwrap();
}

/// A mesh node on the shared in-memory transport.
fn mesh_config(
    transport: &ChannelTransport,
    seeds: Vec<String>,
    forwarding: Forwarding,
) -> NodeConfig {
    let mut config = filter_config();
    config.mesh = Some(MeshSettings {
        seeds,
        gossip_interval: Duration::from_millis(50),
        forwarding,
        transport: GossipTransport::Custom(std::sync::Arc::new(transport.clone())),
        ..MeshSettings::default()
    });
    config
}

/// Waits until `addr` lists `n` live peers.
async fn wait_for_peers(addr: &str, n: usize) {
    let deadline = tokio::time::Instant::now() + DEADLINE;
    loop {
        let s = status(addr).await;
        if s.peers.iter().filter(|p| p.usable()).count() >= n {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "peers never joined: {s:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mesh_in_memory_forwards_and_hands_over_at_shutdown() {
    let transport = ChannelTransport::default();
    let (a, a_handle, a_task) = start(mesh_config(&transport, vec![], Forwarding::Always)).await;
    let (b, b_handle, b_task) =
        start(mesh_config(&transport, vec![a.clone()], Forwarding::Never)).await;
    wait_for_peers(&a, 1).await;
    wait_for_peers(&b, 1).await;
    let b_id = status(&b).await.node_id;

    // Forwarding: every job sent to A runs on B, and B's events reach the
    // client with B's address.
    let client = Client::connect(&a).await.unwrap();
    let image = png(64, 6);
    for _ in 0..4 {
        let h = filter_header("invert", image.len());
        let all = events(client.request(Op::Filter, h, image.clone()).await.unwrap()).await;
        let result = all.last().unwrap();
        assert_eq!(result.op, Op::Result);
        assert_eq!(result.header[field::NODE_ID], Value::from(b_id.as_str()));
        assert!(
            all.iter()
                .filter(|e| !e.is_terminal())
                .all(|e| e.header.get(field::NODE_ADDR) == Some(&Value::from(b.as_str())))
        );
    }

    // Hand-over: B keeps its jobs (forwarding never); stopped while they
    // wait, it hands them to A, and every client still gets one result.
    let client = Client::connect(&b).await.unwrap();
    let slow = png(500, 7);
    let mut pending = Vec::new();
    for _ in 0..6 {
        let h = filter_header("median=8", slow.len());
        pending.push(client.request(Op::Filter, h, slow.clone()).await.unwrap());
    }
    // Wait until B has them queued, then stop it.
    let deadline = tokio::time::Instant::now() + DEADLINE;
    while status(&b).await.queue_length < 3 {
        assert!(tokio::time::Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    b_handle.shut_down();
    let a_id = status(&a).await.node_id;
    let mut ran_on_a = 0;
    for request in pending {
        let last = events(request).await.pop().unwrap();
        assert_eq!(last.op, Op::Result, "{:?}", last.header);
        if last.header[field::NODE_ID] == a_id.as_str() {
            ran_on_a += 1;
        }
    }
    assert!(ran_on_a >= 1, "no waiting job was handed over");
    b_task.await.unwrap();
    a_handle.shut_down();
    a_task.await.unwrap();
}
