//! The node proven with real processes and sockets: `ocellus serve` is
//! started as a child process on a free loopback port and driven byte by
//! byte, by the project's async client, and by `ocellus filter --server` /
//! `ocellus status`.
//!
//! Nothing here sleeps to synchronise: the tests wait for the server's
//! events (ACCEPTED, STARTED) or poll STATUS with a deadline. Where a
//! timeout is the feature under test (slow-loris, idle connections) the
//! margins are several times the configured limit.

mod common;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::Read;
use std::net::Shutdown;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::{
    OCELLUS, PATIENCE, Raw, ReadEnd, ServerProcess, TempDir, describe, error_code, filter_frame,
    local_filter, photo, png_declaring, wait_until,
};
use ocellus_protocol::{Frame, Op};
use serde_json::{Value, json};

/// Small real photos (JPEG, PNG, greyscale PNG, RGBA PNG).
const SMALL: &[&str] = &[
    "blazeface_1face.png",
    "faceapi_angry.jpg",
    "fr_obama_small.jpg",
    "mtcnn_no-faces.jpg",
    "skimage_camera.png",
    "fr_alex-lacamoire.png",
    "libfd_android_test.jpg",
    "faceapi_angry_cropped.jpg",
];

/// Larger photos (1080p and 3.6 megapixels).
const LARGE: &[&str] = &["fr_obama-1080p.jpg", "deepface_couple.jpg"];

/// Pipelines that exercise different code paths (and layouts).
const OPS: &[&str] = &[
    "blur=2",
    "grayscale,resize=64x",
    "sharpen=1:0.5",
    "median=1",
    "edges",
    "sepia,flip=h",
    "rotate=90,invert",
    "box=3,brightness=10",
    "contrast=1.2,crop=50x40+3+5",
    "resize=100x80:bilinear",
];

/// A job that keeps one worker busy for a few seconds.
const SLOW_OPS: &str = "median=7";
const SLOW_IMAGE: &str = "deepface_couple.jpg";

fn header_u64(f: &Frame, key: &str) -> u64 {
    f.header
        .get(key)
        .and_then(Value::as_u64)
        .unwrap_or_else(|| panic!("{key} missing in {}", describe(f)))
}

fn is_op(f: &Frame, op: Op) -> bool {
    f.op == op.code()
}

/// What is wrong with the order of one request's events, if anything:
/// ACCEPTED first, positions never increase, one STARTED (same job) after
/// it, and the terminal RESULT last, with nothing after it.
fn order_problem(events: &[Frame]) -> Option<String> {
    let trace = || format!("{:#?}", events.iter().map(describe).collect::<Vec<_>>());
    let first = events.first()?;
    if !is_op(first, Op::Accepted) {
        return Some(format!("first event is not ACCEPTED: {}", trace()));
    }
    let job = header_u64(first, "job");
    let mut position = header_u64(first, "position");
    let mut started = 0;
    for (i, e) in events.iter().enumerate().skip(1) {
        let last = i == events.len() - 1;
        let problem = match Op::from_code(e.op) {
            Some(Op::Position) => {
                let p = header_u64(e, "position");
                let rose = p > position || p == 0;
                position = p;
                if started > 0 {
                    Some("POSITION after STARTED")
                } else {
                    rose.then_some("position rose (or is 0)")
                }
            }
            Some(Op::Started) => {
                started += 1;
                (header_u64(e, "job") != job).then_some("STARTED names another job")
            }
            Some(Op::Result) if last => None,
            Some(Op::Result) => Some("events after RESULT"),
            _ => Some("unexpected event"),
        };
        if let Some(problem) = problem {
            return Some(format!("{problem} (event {i}): {}", trace()));
        }
    }
    if started != 1 {
        return Some(format!("{started} STARTED before RESULT: {}", trace()));
    }
    None
}

/// The single terminal event of a request, which must be a RESULT equal to
/// `expected`, byte for byte.
fn check_result(events: &[Frame], expected: &[u8], what: &str) {
    let trace: Vec<String> = events.iter().map(describe).collect();
    let terminal: Vec<&Frame> = events
        .iter()
        .filter(|f| Op::from_code(f.op).is_some_and(Op::is_terminal))
        .collect();
    assert_eq!(terminal.len(), 1, "{what}: {trace:#?}");
    let result = terminal[0];
    assert!(is_op(result, Op::Result), "{what}: {trace:#?}");
    assert_eq!(
        result.header.get("images"),
        Some(&json!([result.payload.len()])),
        "{what}"
    );
    assert!(
        result.payload == expected,
        "{what}: RESULT differs from the local output ({} vs {} bytes)",
        result.payload.len(),
        expected.len()
    );
}

/// [`check_result`] and [`order_problem`]; returns the job number.
fn check_job_events(events: &[Frame], expected: &[u8], what: &str) -> u64 {
    check_result(events, expected, what);
    if let Some(problem) = order_problem(events) {
        panic!("{what}: {problem}");
    }
    header_u64(&events[0], "job")
}

#[test]
fn thirty_two_clients_get_exact_results_with_ordered_events() {
    let data = ocellus_testdata::require_data!();
    const CLIENTS: usize = 32;
    const PER_CLIENT: usize = 4;
    // Thirty-two clients from one address are one client to the node's
    // per-client cap; this test is about ordered events, not fairness.
    let server = ServerProcess::start(&["--workers", "2", "--max-queued-per-client", "256"]);

    // Which (image, ops) each client sends; two clients also send a large one.
    let plan: Vec<Vec<(&str, &str)>> = (0..CLIENTS)
        .map(|c| {
            (0..PER_CLIENT)
                .map(|k| {
                    if k == PER_CLIENT - 1 && c < LARGE.len() {
                        (LARGE[c], "blur=3,resize=640x")
                    } else {
                        (SMALL[(c + k) % SMALL.len()], OPS[(c * 3 + k) % OPS.len()])
                    }
                })
                .collect()
        })
        .collect();
    let mut inputs: HashMap<&str, Vec<u8>> = HashMap::new();
    let mut expected: HashMap<(&str, &str), Vec<u8>> = HashMap::new();
    for &(name, ops) in plan.iter().flatten() {
        let bytes = inputs
            .entry(name)
            .or_insert_with(|| photo(&data, name))
            .clone();
        expected
            .entry((name, ops))
            .or_insert_with(|| local_filter(&bytes, ops));
    }

    let addr = server.addr;
    let all: Vec<Vec<(u64, Vec<Frame>)>> = std::thread::scope(|s| {
        let handles: Vec<_> = plan
            .iter()
            .map(|jobs| {
                let inputs = &inputs;
                s.spawn(move || {
                    let mut conn = Raw::connect(addr);
                    // All of a client's requests go out at once (pipelined).
                    for (k, &(name, ops)) in jobs.iter().enumerate() {
                        conn.send_filter(k as u64 + 1, ops, &inputs[name]);
                    }
                    let mut events: BTreeMap<u64, Vec<Frame>> = BTreeMap::new();
                    let mut open: HashSet<u64> = (1..=jobs.len() as u64).collect();
                    let record = |events: &mut BTreeMap<u64, Vec<Frame>>, f: Frame| {
                        assert!(
                            (1..=jobs.len() as u64).contains(&f.request_id),
                            "frame for an unknown request: {}",
                            describe(&f)
                        );
                        events.entry(f.request_id).or_default().push(f);
                    };
                    while !open.is_empty() {
                        let f = conn.next_frame();
                        if Op::from_code(f.op).is_some_and(Op::is_terminal) {
                            open.remove(&f.request_id);
                        }
                        record(&mut events, f);
                    }
                    // Anything still on its way about these requests comes
                    // before the answer to a later STATUS.
                    let probe = 1000;
                    conn.send(Op::Status, probe, json!({}), Vec::new());
                    loop {
                        let f = conn.next_frame();
                        if f.request_id == probe {
                            break;
                        }
                        record(&mut events, f);
                    }
                    events.into_iter().collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("client thread"))
            .collect()
    });

    // Every job ran once, with the right bytes; then the order of events.
    let mut jobs_seen = HashSet::new();
    let mut disorder = Vec::new();
    for (c, (events, jobs)) in all.iter().zip(&plan).enumerate() {
        assert_eq!(events.len(), PER_CLIENT, "client {c}");
        for (id, evs) in events {
            let (name, ops) = jobs[*id as usize - 1];
            let what = format!("client {c} request {id} ({name}, {ops})");
            check_result(evs, &expected[&(name, ops)], &what);
            let job = evs
                .iter()
                .find(|f| is_op(f, Op::Accepted) || is_op(f, Op::Started))
                .map(|f| header_u64(f, "job"))
                .unwrap_or_else(|| panic!("{what}: neither ACCEPTED nor STARTED"));
            assert!(jobs_seen.insert(job), "{what}: job number {job} reused");
            if let Some(problem) = order_problem(evs) {
                disorder.push(format!("{what}: {problem}"));
            }
        }
    }
    assert!(
        disorder.is_empty(),
        "{} of {} requests got their events out of order; first ones:\n{}",
        disorder.len(),
        CLIENTS * PER_CLIENT,
        disorder[..disorder.len().min(3)].join("\n")
    );
    assert_eq!(jobs_seen.len(), CLIENTS * PER_CLIENT);
    let status = server.status();
    assert_eq!(status["jobs_done"], json!(CLIENTS * PER_CLIENT));
    assert_eq!(status["jobs_failed"], json!(0));
}

#[test]
fn the_async_client_shares_one_connection_between_requests() {
    let data = ocellus_testdata::require_data!();
    let server = ServerProcess::start(&["--workers", "2"]);
    let inputs: Vec<(Vec<u8>, &str)> = SMALL
        .iter()
        .zip(OPS)
        .map(|(name, ops)| (photo(&data, name), *ops))
        .collect();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let addr = server.address();
    let results = runtime.block_on(async {
        let client = std::sync::Arc::new(
            ocellus_client::Client::connect(&addr)
                .await
                .expect("connect"),
        );
        let mut tasks = tokio::task::JoinSet::new();
        for (i, (image, ops)) in inputs.iter().cloned().enumerate() {
            let client = client.clone();
            tasks.spawn(async move {
                let request = client.filter(image, ops, None, None).await.expect("send");
                (i, request.finish().await.expect("a RESULT"))
            });
        }
        let mut results = Vec::new();
        while let Some(done) = tasks.join_next().await {
            results.push(done.expect("task"));
        }
        let status = client.status().await.expect("status");
        (results, status)
    });
    let (results, status) = results;
    assert_eq!(results.len(), inputs.len());
    for (i, event) in results {
        assert_eq!(event.op, Op::Result);
        assert!(
            event.payload == local_filter(&inputs[i].0, inputs[i].1),
            "request {i} ({}) differs from the local output",
            inputs[i].1
        );
    }
    assert_eq!(status.jobs_done, inputs.len() as u64);
    assert_eq!(status.workers, 2);
}

/// The one ERROR a connection-level failure produces, then the close.
fn expect_error_then_close(conn: &mut Raw, code: &str) -> Frame {
    let (frames, end) = conn.frames_until_closed();
    let trace: Vec<String> = frames.iter().map(describe).collect();
    assert_eq!(frames.len(), 1, "expected one ERROR {code}: {trace:#?}");
    assert_eq!(error_code(&frames[0]).as_deref(), Some(code), "{trace:#?}");
    assert_eq!(frames[0].request_id, 0, "connection-level errors use id 0");
    // Orderly close, or a reset because unread bytes were discarded.
    assert!(
        matches!(
            end,
            ReadEnd::Eof | ReadEnd::Error(std::io::ErrorKind::ConnectionReset)
        ),
        "{end:?}"
    );
    frames.into_iter().next().expect("one frame")
}

/// Sends a STATUS on an existing connection and checks the answer.
fn status_still_works(conn: &mut Raw, id: u64) {
    conn.send(Op::Status, id, json!({}), Vec::new());
    let events = conn.events_until_terminal(id);
    assert_eq!(events.len(), 1);
    assert!(is_op(&events[0], Op::Result), "{}", describe(&events[0]));
    assert!(events[0].header.contains_key("node_id"));
}

#[test]
fn stream_errors_close_the_connection_after_one_error() {
    let data = ocellus_testdata::require_data!();
    let small = photo(&data, "blazeface_1face.png");
    let server = ServerProcess::start(&["--workers", "1", "--max-frame", "1000000"]);

    // Oversize length: refused from the 4 length bytes alone (the body is
    // never sent, so an answer proves it was not waited for).
    let mut conn = server.connect();
    conn.send_bytes(&2_000_000u32.to_be_bytes()).unwrap();
    let e = expect_error_then_close(&mut conn, "frame_too_large");
    let message = e.header["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("2000000") && message.contains("1000000"),
        "{message}"
    );
    server.assert_serves(&small, "invert");

    // Oversize length with part of the body following: the same.
    let mut conn = server.connect();
    let mut bytes = u32::MAX.to_be_bytes().to_vec();
    bytes.extend_from_slice(&[1, 4, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0]);
    bytes.extend(std::iter::repeat_n(0u8, 64 * 1024));
    conn.send_bytes(&bytes).unwrap();
    expect_error_then_close(&mut conn, "frame_too_large");
    server.assert_serves(&small, "invert");

    // Header that is not JSON.
    let mut conn = server.connect();
    let header = b"{definitely not json";
    let mut bytes = ((14 + header.len()) as u32).to_be_bytes().to_vec();
    bytes.extend_from_slice(&[1, 4, 0, 0, 0, 0, 0, 0, 0, 9]);
    bytes.extend_from_slice(&(header.len() as u32).to_be_bytes());
    bytes.extend_from_slice(header);
    conn.send_bytes(&bytes).unwrap();
    expect_error_then_close(&mut conn, "malformed_frame");
    server.assert_serves(&small, "invert");

    // A JSON header that is not an object, then a length below the fixed part.
    let mut conn = server.connect();
    let header = b"[1,2,3]";
    let mut bytes = ((14 + header.len()) as u32).to_be_bytes().to_vec();
    bytes.extend_from_slice(&[1, 5, 0, 0, 0, 0, 0, 0, 0, 9]);
    bytes.extend_from_slice(&(header.len() as u32).to_be_bytes());
    bytes.extend_from_slice(header);
    conn.send_bytes(&bytes).unwrap();
    expect_error_then_close(&mut conn, "malformed_frame");
    let mut conn = server.connect();
    conn.send_bytes(&[0, 0, 0, 3, 1, 5, 0]).unwrap();
    expect_error_then_close(&mut conn, "malformed_frame");

    // Header over 64 KiB.
    let mut conn = server.connect();
    let mut bytes = 200_000u32.to_be_bytes().to_vec();
    bytes.extend_from_slice(&[1, 5, 0, 0, 0, 0, 0, 0, 0, 9]);
    bytes.extend_from_slice(&100_000u32.to_be_bytes());
    conn.send_bytes(&bytes).unwrap();
    expect_error_then_close(&mut conn, "header_too_large");

    server.assert_serves(&small, "grayscale");
    assert!(server.status()["jobs_failed"] == json!(0));
}

#[test]
fn image_lengths_that_do_not_add_up_are_a_bad_request_on_a_usable_connection() {
    let data = ocellus_testdata::require_data!();
    let small = photo(&data, "blazeface_1face.png");
    let server = ServerProcess::start(&["--workers", "1"]);
    let mut conn = server.connect();
    // PROTOCOL.md: the frame parses (its length is known), only its content
    // is wrong, so the request gets ERROR bad_request and the connection
    // stays usable.
    conn.send(
        Op::Filter,
        3,
        json!({"ops": "invert", "images": [small.len() + 10]}),
        small.clone(),
    );
    let first = conn.next_frame();
    assert_eq!(
        (error_code(&first).as_deref(), first.request_id),
        (Some("bad_request"), 3),
        "got {}",
        describe(&first)
    );
    conn.send(Op::Status, 4, json!({}), Vec::new());
    let status = conn.next_frame();
    assert_eq!(
        (status.op, status.request_id),
        (Op::Result.code(), 4),
        "got {}",
        describe(&status)
    );
    server.assert_serves(&small, "grayscale");
}

#[test]
fn truncated_frames_and_clients_vanishing_mid_upload_leave_no_trace() {
    let data = ocellus_testdata::require_data!();
    let small = photo(&data, "blazeface_1face.png");
    let big = photo(&data, SLOW_IMAGE);
    let server = ServerProcess::start(&["--workers", "1"]);

    // Half a frame, then the client closes its side and waits for the end.
    let bytes = filter_frame(1, "invert", &small).to_bytes();
    let mut conn = server.connect();
    conn.send_bytes(&bytes[..bytes.len() / 2]).unwrap();
    conn.stream.shutdown(Shutdown::Write).unwrap();
    let (frames, _) = conn.frames_until_closed();
    assert!(
        frames.iter().all(|f| !is_op(f, Op::Result)),
        "a truncated frame was run: {:?}",
        frames.iter().map(describe).collect::<Vec<_>>()
    );

    // Mid-upload of a large image: the client vanishes (both directions).
    let bytes = filter_frame(1, SLOW_OPS, &big).to_bytes();
    let mut conn = server.connect();
    conn.send_bytes(&bytes[..bytes.len() / 3]).unwrap();
    conn.close();
    // Only the 18 fixed bytes of a frame.
    let mut conn = server.connect();
    conn.send_bytes(&bytes[..18]).unwrap();
    drop(conn);

    server.assert_serves(&small, "invert");
    let status = server.status();
    assert_eq!(status["jobs_done"], json!(1), "{status:?}");
    assert_eq!(status["jobs_failed"], json!(0), "{status:?}");
    assert_eq!(status["queue_length"], json!(0), "{status:?}");
}

#[test]
fn request_errors_leave_the_connection_usable() {
    let data = ocellus_testdata::require_data!();
    let small = photo(&data, "faceapi_angry.jpg");
    let server = ServerProcess::start(&["--workers", "2"]);
    let mut conn = server.connect();
    let mut id = 10;
    let mut next_id = || {
        id += 1;
        id
    };

    // Unknown op codes (a reserved request code, an event code, a stray
    // byte) are named in the error.
    for op in [42u8, 64, 200] {
        let rid = next_id();
        let mut f = filter_frame(rid, "invert", &small);
        f.op = op;
        conn.send_frame(&f);
        let events = conn.events_until_terminal(rid);
        assert_eq!(events.len(), 1);
        assert_eq!(error_code(&events[0]).as_deref(), Some("unknown_op"));
        let message = events[0].header["message"].as_str().unwrap_or_default();
        assert!(message.contains(&op.to_string()), "{message}");
        status_still_works(&mut conn, next_id());
    }

    // Unknown version.
    let rid = next_id();
    let mut f = filter_frame(rid, "invert", &small);
    f.version = 7;
    conn.send_frame(&f);
    let events = conn.events_until_terminal(rid);
    assert_eq!(
        error_code(&events[0]).as_deref(),
        Some("unsupported_version")
    );
    assert!(
        events[0].header["message"]
            .as_str()
            .is_some_and(|m| m.contains('7'))
    );
    status_still_works(&mut conn, next_id());

    // Bad requests: unparsable ops, missing ops, bad format, no image, two images.
    let cases: Vec<(Value, Vec<u8>, &str)> = vec![
        (
            json!({"ops": "blurry=5", "images": [small.len()]}),
            small.clone(),
            "bad_ops",
        ),
        (
            json!({"images": [small.len()]}),
            small.clone(),
            "bad_request",
        ),
        (
            json!({"ops": "invert", "format": "gif", "images": [small.len()]}),
            small.clone(),
            "bad_request",
        ),
        (json!({"ops": "invert"}), Vec::new(), "bad_request"),
        (
            json!({"ops": "invert", "images": [small.len(), small.len()]}),
            [small.clone(), small.clone()].concat(),
            "bad_request",
        ),
        (
            json!({"ops": "invert", "images": vec![0; 65]}),
            Vec::new(),
            "too_many_images",
        ),
    ];
    for (header, payload, code) in cases {
        let rid = next_id();
        conn.send(Op::Filter, rid, header.clone(), payload);
        let events = conn.events_until_terminal(rid);
        assert_eq!(
            error_code(events.last().unwrap()).as_deref(),
            Some(code),
            "{header}: {:?}",
            events.iter().map(describe).collect::<Vec<_>>()
        );
    }
    let bad_ops = {
        let rid = next_id();
        conn.send(
            Op::Filter,
            rid,
            json!({"ops": "blurry=5", "images": [small.len()]}),
            small.clone(),
        );
        conn.events_until_terminal(rid).pop().unwrap()
    };
    assert!(
        bad_ops.header["message"]
            .as_str()
            .is_some_and(|m| m.contains("blur=SIGMA")),
        "bad_ops lists the valid operations: {}",
        describe(&bad_ops)
    );

    // Corrupt and truncated images; a crop outside the image.
    let mut truncated_png = photo(&data, "blazeface_1face.png");
    truncated_png.truncate(truncated_png.len() / 2);
    for (image, ops, code) in [
        (
            b"this is not an image at all".to_vec(),
            "invert",
            "bad_image",
        ),
        (
            [&[0xffu8, 0xd8, 0xff, 0xe0][..], &[0u8; 40][..]].concat(),
            "invert",
            "bad_image",
        ),
        (truncated_png, "invert", "bad_image"),
        (small.clone(), "crop=5000x10+0+0", "filter_failed"),
    ] {
        let rid = next_id();
        conn.send_filter(rid, ops, &image);
        let events = conn.events_until_terminal(rid);
        assert_eq!(
            error_code(events.last().unwrap()).as_deref(),
            Some(code),
            "{:?}",
            events.iter().map(describe).collect::<Vec<_>>()
        );
    }

    // Decompression bombs: refused from the header.
    for (w, h) in [(100_000, 100_000), (20_000, 20_000)] {
        let rid = next_id();
        conn.send_filter(rid, "invert", &png_declaring(w, h));
        let events = conn.events_until_terminal(rid);
        assert_eq!(
            error_code(events.last().unwrap()).as_deref(),
            Some("image_too_large"),
            "{w}x{h}: {:?}",
            events.iter().map(describe).collect::<Vec<_>>()
        );
    }

    // The same connection still filters.
    let rid = next_id();
    conn.send_filter(rid, "blur=1", &small);
    let events = conn.events_until_terminal(rid);
    check_job_events(&events, &local_filter(&small, "blur=1"), "after errors");
    server.assert_serves(&small, "sepia");
}

#[test]
fn max_pixels_flag_is_enforced() {
    let data = ocellus_testdata::require_data!();
    let small = photo(&data, "blazeface_1face.png"); // 128x128
    let server = ServerProcess::start(&["--workers", "1", "--max-pixels", "10000"]);
    let mut conn = server.connect();
    conn.send_filter(1, "invert", &small);
    let events = conn.events_until_terminal(1);
    assert_eq!(
        error_code(events.last().unwrap()).as_deref(),
        Some("image_too_large")
    );
    let tiny = photo(&data, "faceapi_white.png"); // 150x150 > 10000 too
    conn.send_filter(2, "resize=10x10", &tiny);
    let events = conn.events_until_terminal(2);
    assert_eq!(
        error_code(events.last().unwrap()).as_deref(),
        Some("image_too_large")
    );
}

#[test]
fn duplicate_request_ids_are_refused_while_in_flight() {
    let data = ocellus_testdata::require_data!();
    let slow = photo(&data, SLOW_IMAGE);
    let small = photo(&data, "blazeface_1face.png");
    let server = ServerProcess::start(&["--workers", "1"]);
    let mut conn = server.connect();
    conn.send_filter(7, SLOW_OPS, &slow);
    let first = conn.next_frame();
    assert!(is_op(&first, Op::Accepted), "{}", describe(&first));
    conn.send_filter(7, "invert", &small);
    // Both answers carry id 7: the refusal, then the slow job's events.
    let mut frames = vec![first];
    for _ in 0..10_000 {
        let f = conn.next_frame();
        let done = is_op(&f, Op::Result);
        frames.push(f);
        if done {
            break;
        }
    }
    let trace: Vec<String> = frames.iter().map(describe).collect();
    let duplicates: Vec<_> = frames
        .iter()
        .filter(|f| error_code(f).as_deref() == Some("duplicate_request_id"))
        .collect();
    assert_eq!(duplicates.len(), 1, "{trace:#?}");
    assert_eq!(duplicates[0].request_id, 7);
    let result = frames.last().unwrap();
    assert!(
        result.payload == local_filter(&slow, SLOW_OPS),
        "the first request 7 got someone else's result: {trace:#?}"
    );
    assert_eq!(
        frames.iter().filter(|f| is_op(f, Op::Result)).count(),
        1,
        "{trace:#?}"
    );
    // Once answered, the id may be used again.
    conn.send_filter(7, "invert", &small);
    let events = conn.events_until_terminal(7);
    check_job_events(&events, &local_filter(&small, "invert"), "reused id");
}

/// Sends a slow job and waits until it runs; then queues `queued` more
/// slow jobs and waits for their ACCEPTED. Returns every frame read.
fn fill_queue(conn: &mut Raw, slow: &[u8], queued: u64) -> Vec<Frame> {
    let mut frames = Vec::new();
    conn.send_filter(1, SLOW_OPS, slow);
    loop {
        let f = conn.next_frame();
        let started = f.request_id == 1 && is_op(&f, Op::Started);
        assert!(
            !is_op(&f, Op::Result) && !is_op(&f, Op::Error),
            "{}",
            describe(&f)
        );
        frames.push(f);
        if started {
            break;
        }
    }
    for id in 2..2 + queued {
        conn.send_filter(id, SLOW_OPS, slow);
    }
    let mut accepted = HashSet::new();
    while accepted.len() < queued as usize {
        let f = conn.next_frame();
        if is_op(&f, Op::Accepted) {
            accepted.insert(f.request_id);
        }
        frames.push(f);
    }
    frames
}

#[test]
fn a_client_leaving_with_queued_jobs_removes_them() {
    let data = ocellus_testdata::require_data!();
    let slow = photo(&data, SLOW_IMAGE);
    let small = photo(&data, "blazeface_1face.png");
    let server = ServerProcess::start(&["--workers", "1"]);
    let mut conn = server.connect();
    fill_queue(&mut conn, &slow, 4);
    let status = server.status();
    assert_eq!(status["queue_length"], json!(4), "{status:?}");
    assert_eq!(status["busy"], json!(1), "{status:?}");
    conn.close();

    // The queued jobs disappear; the running one ends; nothing else runs
    // to its end. (A worker may pop the next job in the instant before the
    // node sees the close: that job is stopped at its first checkpoint and
    // counted as cancelled.)
    let mut last = serde_json::Map::new();
    let settled = wait_until(PATIENCE, || {
        last = server.status();
        last["queue_length"] == json!(0) && last["busy"] == json!(0)
    });
    assert!(settled, "queue never drained: {last:?}");
    let count = |k: &str| last[k].as_u64().unwrap_or(u64::MAX);
    assert!(
        count("jobs_done") <= 1
            && count("jobs_failed") == 0
            && count("jobs_done") + count("jobs_cancelled") <= 2,
        "jobs of a client that left were run: {last:?}\n{}",
        server.log()
    );
    server.assert_serves(&small, "invert");
    let after = server.status();
    assert_eq!(
        after["jobs_done"].as_u64().unwrap(),
        last["jobs_done"].as_u64().unwrap() + 1
    );
}

#[test]
fn a_full_queue_answers_busy() {
    let data = ocellus_testdata::require_data!();
    let slow = photo(&data, SLOW_IMAGE);
    let small = photo(&data, "blazeface_1face.png");
    let server = ServerProcess::start(&["--workers", "1", "--queue-capacity", "1"]);
    let mut conn = server.connect();
    let mut frames = fill_queue(&mut conn, &slow, 1);
    // The queue (capacity 1) now holds job 2: job 3 is refused.
    conn.send_filter(3, "invert", &small);
    let mut ended = HashSet::new();
    while ended.len() < 3 {
        let f = conn.next_frame();
        if Op::from_code(f.op).is_some_and(Op::is_terminal) {
            assert!(ended.insert(f.request_id), "two ends: {}", describe(&f));
        }
        frames.push(f);
    }
    let trace: Vec<String> = frames.iter().map(describe).collect();
    let end = |id: u64| frames.iter().rfind(|f| f.request_id == id).expect("an end");
    let busy = end(3);
    assert!(is_op(busy, Op::Busy), "{trace:#?}");
    assert_eq!(busy.header["capacity"], json!(1));
    assert_eq!(busy.header["queue_length"], json!(1));
    assert!(
        frames
            .iter()
            .filter(|f| f.request_id == 3)
            .all(|f| is_op(f, Op::Busy)),
        "a refused request is not ACCEPTED: {trace:#?}"
    );
    for id in [1, 2] {
        assert!(is_op(end(id), Op::Result), "{trace:#?}");
    }
    // Once there is room the same request goes through.
    conn.send_filter(4, "invert", &small);
    let events = conn.events_until_terminal(4);
    check_job_events(&events, &local_filter(&small, "invert"), "after BUSY");
}

#[test]
fn sigterm_runs_the_current_job_and_refuses_the_queued_ones() {
    let data = ocellus_testdata::require_data!();
    let slow = photo(&data, SLOW_IMAGE);
    let mut server = ServerProcess::start(&["--workers", "1"]);
    let mut conn = server.connect();
    let mut frames = fill_queue(&mut conn, &slow, 3);
    server.terminate();
    let (rest, _end) = conn.frames_until_closed();
    frames.extend(rest);
    let status = server.wait_exit(PATIENCE);
    let trace: Vec<String> = frames.iter().map(describe).collect();
    let mut refused = 0;
    let mut completed = 0;
    for id in 1..=4u64 {
        let events: Vec<&Frame> = frames.iter().filter(|f| f.request_id == id).collect();
        let started = events.iter().any(|f| is_op(f, Op::Started));
        let terminal: Vec<&&Frame> = events
            .iter()
            .filter(|f| Op::from_code(f.op).is_some_and(Op::is_terminal))
            .collect();
        assert_eq!(terminal.len(), 1, "request {id}: {trace:#?}");
        if started {
            assert!(is_op(terminal[0], Op::Result), "request {id}: {trace:#?}");
            assert!(terminal[0].payload == local_filter(&slow, SLOW_OPS));
            completed += 1;
        } else {
            assert_eq!(
                error_code(terminal[0]).as_deref(),
                Some("shutting_down"),
                "request {id}: {trace:#?}"
            );
            refused += 1;
        }
    }
    assert!(completed >= 1 && refused >= 1, "{trace:#?}");
    let status = status.unwrap_or_else(|| panic!("still running; log:\n{}", server.log()));
    assert!(status.success(), "exit {status:?}; log:\n{}", server.log());
    assert!(
        std::net::TcpStream::connect(server.addr).is_err(),
        "still accepting after exit"
    );
}

#[test]
fn sigterm_on_an_idle_server_exits_zero() {
    let mut server = ServerProcess::start(&["--workers", "1"]);
    let mut conn = server.connect();
    status_still_works(&mut conn, 1);
    server.terminate();
    let status = server.wait_exit(PATIENCE).expect("exits");
    assert!(status.success(), "{status:?}");
}

#[test]
fn slow_loris_is_cut_off_by_the_frame_timeout() {
    let data = ocellus_testdata::require_data!();
    let small = photo(&data, "blazeface_1face.png");
    let server = ServerProcess::start(&["--workers", "1", "--frame-timeout", "2"]);
    let mut conn = server.connect();
    // A frame that announces 1000 bytes, then arrives one byte per second.
    let mut bytes = 1000u32.to_be_bytes().to_vec();
    bytes.extend_from_slice(&[1, 5, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0]);
    bytes.extend(std::iter::repeat_n(b' ', 1000));
    conn.stream
        .set_read_timeout(Some(Duration::from_secs(1)))
        .unwrap();
    // 2 s allowed; give up after 12 bytes (12 s, six times the limit).
    const TRICKLE: usize = 12;
    let mut answer = Vec::new();
    let mut sent = 0;
    while sent < TRICKLE {
        if conn.send_bytes(&bytes[sent..sent + 1]).is_err() {
            break;
        }
        sent += 1;
        let mut chunk = [0u8; 4096];
        match conn.stream.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => {
                answer.extend_from_slice(&chunk[..n]);
                break;
            }
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => break,
        }
    }
    assert!(
        sent < TRICKLE,
        "the server was still reading a frame after {sent} s of one byte per second \
         (--frame-timeout 2): the timeout applies per read, not per frame"
    );
    conn.stream.set_read_timeout(Some(PATIENCE)).unwrap();
    let mut rest = Vec::new();
    let _ = conn.stream.read_to_end(&mut rest);
    answer.extend(rest);
    let frame = match ocellus_protocol::decode_frame(&answer, &Default::default()) {
        Ok(ocellus_protocol::Decoded::Frame(f, _)) => f,
        other => panic!("no ERROR frame before the close: {other:?}"),
    };
    assert_eq!(error_code(&frame).as_deref(), Some("timeout"));
    server.assert_serves(&small, "invert");
}

#[test]
fn idle_connections_are_closed_with_a_timeout_error() {
    let server = ServerProcess::start(&["--workers", "1", "--idle-timeout", "1"]);
    let mut conn = server.connect();
    expect_error_then_close(&mut conn, "timeout");
    // A connection that works and then idles is closed too (15 s allowed
    // for a 1 s limit).
    let mut conn = server.connect();
    status_still_works(&mut conn, 5);
    conn.stream
        .set_read_timeout(Some(Duration::from_secs(15)))
        .unwrap();
    expect_error_then_close(&mut conn, "timeout");
}

#[test]
fn status_json_reports_the_node() {
    let server = ServerProcess::start(&["--workers", "3", "--queue-capacity", "17"]);
    let out = Command::new(OCELLUS)
        .args(["status", "--json", "--server", &server.address()])
        .output()
        .expect("running ocellus status");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).expect("UTF-8");
    let report: Value = serde_json::from_str(stdout.trim()).expect("one JSON object");
    let obj = report.as_object().expect("an object");
    assert_eq!(obj["version"], json!(env!("CARGO_PKG_VERSION")));
    assert!(obj["node_id"].as_str().is_some_and(|s| !s.is_empty()));
    assert!(
        obj["roles"]
            .as_array()
            .is_some_and(|r| r.contains(&json!("filter")))
    );
    assert_eq!(obj["queue_length"], json!(0));
    assert_eq!(obj["queue_capacity"], json!(17));
    assert_eq!(obj["workers"], json!(3));
    assert_eq!(obj["busy"], json!(0));
    assert_eq!(obj["jobs_done"], json!(0));
    assert_eq!(obj["jobs_failed"], json!(0));
    assert!(obj["uptime_s"].as_f64().is_some_and(|u| u >= 0.0));
    assert_eq!(obj["peers"], json!([]));
    // The same node answers the same id; the text form names it.
    let text = Command::new(OCELLUS)
        .args(["status", "--server", &server.address()])
        .output()
        .expect("running ocellus status");
    assert!(text.status.success());
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(text.contains(obj["node_id"].as_str().unwrap()), "{text}");

    // No node there: a clear error, non-zero exit.
    drop(server);
    let out = Command::new(OCELLUS)
        .args(["status", "--json", "--server", "127.0.0.1:1"])
        .output()
        .expect("running ocellus status");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("127.0.0.1:1"));
}

fn files_in(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    std::fs::read_dir(dir)
        .expect("output folder")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.is_file())
        .map(|p| {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            (name, std::fs::read(&p).expect("read"))
        })
        .collect()
}

fn run_filter(
    mode: &[&str],
    ops: &str,
    extra: &[&str],
    out: &Path,
    files: &[PathBuf],
) -> std::process::Output {
    Command::new(OCELLUS)
        .arg("filter")
        .args(mode)
        .args(["--ops", ops, "-o"])
        .arg(out)
        .args(extra)
        .args(files)
        .output()
        .expect("running ocellus filter")
}

#[test]
fn filter_server_writes_what_filter_local_writes() {
    let data = ocellus_testdata::require_data!();
    let server = ServerProcess::start(&["--workers", "2"]);
    let addr = server.address();
    let files: Vec<PathBuf> = [
        "fr_obama_small.jpg",
        "skimage_camera.png",
        "fr_alex-lacamoire.png",
        "blazeface_4faces.png",
        "darknet_dog.jpg",
        "faceapi_white.png",
    ]
    .iter()
    .map(|n| data.join("photos").join(n))
    .collect();
    for (ops, extra) in [
        ("blur=2,resize=200x", &[][..]),
        ("sharpen=1:1,grayscale", &["--format", "png"][..]),
        ("sepia", &["--format", "jpeg", "--quality", "70"][..]),
    ] {
        let (local, remote) = (TempDir::new("local"), TempDir::new("remote"));
        let l = run_filter(&["--local"], ops, extra, local.path(), &files);
        assert!(l.status.success(), "{}", String::from_utf8_lossy(&l.stderr));
        let r = run_filter(&["--server", &addr], ops, extra, remote.path(), &files);
        assert!(
            r.status.success(),
            "{}\n{}",
            String::from_utf8_lossy(&r.stderr),
            server.log()
        );
        let (lf, rf) = (files_in(local.path()), files_in(remote.path()));
        assert_eq!(lf.len(), files.len());
        assert_eq!(
            lf.keys().collect::<Vec<_>>(),
            rf.keys().collect::<Vec<_>>(),
            "{ops}"
        );
        for (name, bytes) in &lf {
            assert!(rf[name] == *bytes, "{ops} {extra:?}: {name} differs");
        }
    }

    // One corrupt file among good ones: the others are written, the exit
    // is non-zero and the server's message is shown.
    let inputs = TempDir::new("inputs");
    let mut mixed = files[..3].to_vec();
    let broken = inputs.path().join("broken.jpg");
    std::fs::write(&broken, b"\xff\xd8\xff\xe0 this is not really a JPEG").unwrap();
    mixed.insert(1, broken);
    let (local, remote) = (TempDir::new("local"), TempDir::new("remote"));
    let l = run_filter(&["--local"], "invert", &[], local.path(), &files[..3]);
    assert!(l.status.success());
    let r = run_filter(&["--server", &addr], "invert", &[], remote.path(), &mixed);
    let stderr = String::from_utf8_lossy(&r.stderr);
    assert!(!r.status.success(), "a corrupt file must fail the run");
    assert!(
        stderr.contains("broken.jpg") && stderr.contains("bad_image"),
        "{stderr}"
    );
    let (lf, rf) = (files_in(local.path()), files_in(remote.path()));
    assert_eq!(lf, rf, "the good files are still written, identically");
}

/// A "node" that reads one request and closes the connection without a
/// word, as a crashed node would. Returns its address.
fn vanishing_node() -> std::net::SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    std::thread::spawn(move || {
        for stream in listener.incoming().take(16) {
            let Ok(mut stream) = stream else { continue };
            let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
            let mut buf = [0u8; 64 * 1024];
            let _ = stream.read(&mut buf);
            drop(stream);
        }
    });
    addr
}

#[test]
fn the_async_client_reports_a_closed_connection_instead_of_waiting() {
    let data = ocellus_testdata::require_data!();
    let small = photo(&data, "blazeface_1face.png");
    let addr = vanishing_node().to_string();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let client = ocellus_client::Client::connect(&addr)
            .await
            .expect("connect");
        let first = client.filter(small.clone(), "invert", None, None).await;
        let first = tokio::time::timeout(PATIENCE, first.expect("sent").finish()).await;
        assert!(
            matches!(first, Ok(Err(ocellus_client::ClientError::Closed))),
            "{first:?}"
        );
        // The connection is gone: a new request must fail, not wait forever.
        let second = async {
            match client.filter(small.clone(), "invert", None, None).await {
                Ok(request) => request.finish().await.map(|_| ()),
                Err(e) => Err(e),
            }
        };
        let second = tokio::time::timeout(Duration::from_secs(30), second).await;
        assert!(
            matches!(second, Ok(Err(_))),
            "a request on a closed connection never ended ({second:?}): \
             Client::request registers a route although the reader task has exited"
        );
    });
}

#[test]
fn filter_server_fails_instead_of_hanging_when_the_node_vanishes() {
    let data = ocellus_testdata::require_data!();
    let addr = vanishing_node().to_string();
    let out = TempDir::new("vanish");
    let mut child = Command::new(OCELLUS)
        .args(["filter", "--server", &addr, "--ops", "invert", "-o"])
        .arg(out.path())
        .arg(data.join("photos").join("blazeface_1face.png"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("running ocellus filter");
    let mut status = None;
    wait_until(Duration::from_secs(60), || {
        status = child.try_wait().ok().flatten();
        status.is_some()
    });
    if status.is_none() {
        let _ = child.kill();
        let _ = child.wait();
        panic!(
            "`ocellus filter --server` still waits 60 s after the node closed the connection \
             (filter_remote::request_closed is a stub returning false, so a closed connection \
             is retried like BUSY, and the retry waits forever on a dead client)"
        );
    }
    assert!(!status.unwrap().success());
    let mut stderr = String::new();
    let _ = child.stderr.take().unwrap().read_to_string(&mut stderr);
    assert!(stderr.contains("blazeface_1face.png"), "{stderr}");
}
