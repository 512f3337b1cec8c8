//! Bounded cost, against a real `ocellus serve`: each of the ways a
//! careless or hostile client could take the node from everyone else
//! (docs/limits.md), with the node's answer, another client still served
//! within a stated time, and the node's memory within its budget.

mod common;

use std::io::Write;
use std::net::Shutdown;
use std::time::{Duration, Instant};

use common::{
    Raw, ReadEnd, ServerProcess, describe, error_code, filter_frame, png_declaring_as, wait_until,
};
use ocellus_codec::{EncodeOptions, ImageFormat, encode};
use ocellus_imaging::{Image, PixelLayout};
use ocellus_protocol::{Frame, Op};
use serde_json::Value;

/// Another client, as far as the node can tell: a second loopback address.
const OTHER: [u8; 4] = [127, 0, 0, 2];

/// A `w` x `h` RGB PNG of noise (large when encoded).
fn noise_png(w: u32, h: u32, seed: u64) -> Vec<u8> {
    let pixels = ocellus_testdata::noise_bytes(seed, (w * h * 3) as usize);
    let image = Image::from_vec(w, h, PixelLayout::Rgb, pixels).unwrap();
    encode(&image, ImageFormat::Png, &EncodeOptions::default()).unwrap()
}

/// A small grey PNG.
fn tiny_png() -> Vec<u8> {
    let image = Image::from_vec(8, 8, PixelLayout::Gray, vec![90; 64]).unwrap();
    encode(&image, ImageFormat::Png, &EncodeOptions::default()).unwrap()
}

fn op_of(f: &Frame) -> Option<Op> {
    Op::from_code(f.op)
}

fn message(f: &Frame) -> String {
    f.header
        .get("message")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}

/// A field of /proc/PID/status, in KiB.
fn proc_kib(pid: u32, field: &str) -> u64 {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    text.lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// Sends a FILTER of `tiny_png` from another address and returns how long
/// its answer took; panics unless it is a RESULT.
fn other_client_is_served(server: &ServerProcess) -> Duration {
    let started = Instant::now();
    let mut other = Raw::connect_from(OTHER, server.addr);
    other.send_filter(1, "invert", &tiny_png());
    let events = other.events_until_terminal(1);
    let last = events.last().unwrap();
    assert_eq!(op_of(last), Some(Op::Result), "got {}", describe(last));
    started.elapsed()
}

/// A pipeline of `n` medians of radius `r` (a job of many seconds on a
/// large image, with a checkpoint between every two).
fn medians(n: usize, r: u32) -> String {
    vec![format!("median={r}"); n].join(",")
}

#[test]
fn costly_requests_are_refused_before_any_work_naming_the_limit() {
    let server = ServerProcess::start(&[
        "--workers",
        "1",
        "--roles",
        "filter",
        "--max-decode-bytes",
        "256MiB",
    ]);
    let pid = server.pid();
    let before = proc_kib(pid, "VmRSS:");
    let mut conn = server.connect();
    // The attack: a 1x1 image blown up, then medians.
    let one = encode(
        &Image::from_vec(1, 1, PixelLayout::Gray, vec![7]).unwrap(),
        ImageFormat::Png,
        &EncodeOptions::default(),
    )
    .unwrap();
    let started = Instant::now();
    let attack = format!("resize=4000x4000,{}", medians(31, 50));
    conn.send_filter(1, &attack, &one);
    let answer = conn.events_until_terminal(1).pop().unwrap();
    assert_eq!(
        error_code(&answer).as_deref(),
        Some("too_costly"),
        "{}",
        describe(&answer)
    );
    assert!(
        message(&answer).contains("--max-request-cost"),
        "{}",
        message(&answer)
    );
    // More operations than a pipeline may have.
    conn.send_filter(2, &vec!["invert"; 33].join(","), &one);
    let answer = conn.events_until_terminal(2).pop().unwrap();
    assert_eq!(error_code(&answer).as_deref(), Some("bad_ops"));
    assert!(message(&answer).contains("32"), "{}", message(&answer));
    // An output over the pixel limit, in the middle of a pipeline.
    conn.send_filter(3, "invert,resize=20000x20000,resize=10x10", &one);
    let answer = conn.events_until_terminal(3).pop().unwrap();
    assert_eq!(error_code(&answer).as_deref(), Some("too_costly"));
    assert!(
        message(&answer).contains("--max-pixels"),
        "{}",
        message(&answer)
    );
    // A small file whose decode would take 9000 x 9000 x 8 bytes (16-bit
    // RGBA): refused from its header.
    conn.send_filter(4, "invert", &png_declaring_as(9000, 9000, 16, 6));
    let answer = conn.events_until_terminal(4).pop().unwrap();
    assert_eq!(
        error_code(&answer).as_deref(),
        Some("too_costly"),
        "{}",
        describe(&answer)
    );
    assert!(
        message(&answer).contains("--max-decode-bytes"),
        "{}",
        message(&answer)
    );
    // All refused at once, not after the work, and without the memory the
    // work would have taken (the 16-bit PNG alone: 648 MB).
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    let grew_mib = proc_kib(pid, "VmHWM:").saturating_sub(before) / 1024;
    eprintln!("refused costly requests: the node grew by {grew_mib} MiB");
    assert!(grew_mib <= 16, "the node grew by {grew_mib} MiB");
    // What is within the limits still runs.
    server.assert_serves(&tiny_png(), "resize=400x400,median=3");
    let status = server.status();
    assert_eq!(status["jobs_done"], 1, "{status:?}");
}

#[test]
fn one_client_flooding_the_queue_does_not_starve_another() {
    let server = ServerProcess::start(&[
        "--workers",
        "1",
        "--roles",
        "filter",
        "--max-queued-per-client",
        "8",
    ]);
    let big = std::sync::Arc::new(noise_png(1200, 900, 1));
    // Client A: 3 connections x 6 requests of a fraction of a second each;
    // each connection records its requests' first and last events, and
    // when each result came.
    let flood: Vec<_> = (0..3)
        .map(|c| {
            let mut conn = server.connect();
            let big = big.clone();
            std::thread::spawn(move || {
                let ids: Vec<u64> = (1..=6).map(|i| c * 100 + i).collect();
                for &id in &ids {
                    conn.send_filter(id, "median=4", &big);
                }
                let mut first = std::collections::HashMap::new();
                let mut last = std::collections::HashMap::new();
                while last.len() < ids.len() {
                    let f = conn.next_frame();
                    first.entry(f.request_id).or_insert_with(|| f.clone());
                    if op_of(&f).is_some_and(Op::is_terminal) {
                        last.insert(f.request_id, (f, Instant::now()));
                    }
                }
                (first, last)
            })
        })
        .collect();
    // Client B comes while A has many jobs waiting (A's 18 requests are
    // sent at once; 9 fit: 1 running and 8 waiting).
    assert!(
        wait_until(Duration::from_secs(20), || server.status()["queue_length"]
            .as_u64()
            .is_some_and(|n| n >= 6)),
        "A's jobs never queued: {:?}",
        server.status()
    );
    // Client B is told it runs next-but-one, and does.
    let mut other = Raw::connect_from(OTHER, server.addr);
    let b_sent = Instant::now();
    other.send_filter(1, "invert", &tiny_png());
    let accepted = other.next_frame();
    assert_eq!(
        op_of(&accepted),
        Some(Op::Accepted),
        "{}",
        describe(&accepted)
    );
    let position = accepted.header["position"].as_u64().unwrap();
    assert!(position <= 2, "B told position {position}");
    let events = other.events_until_terminal(1);
    assert_eq!(op_of(events.last().unwrap()), Some(Op::Result));
    let b_done = Instant::now();

    let (mut busy, mut results, mut between, mut after_b) = (0, 0, 0, 0);
    for t in flood {
        let (first, last) = t.join().unwrap();
        for (id, f) in &first {
            if op_of(f) == Some(Op::Busy) {
                busy += 1;
                assert_eq!(
                    f.header["reason"],
                    "client",
                    "request {id}: {}",
                    describe(f)
                );
            }
        }
        for (f, at) in last.values() {
            if op_of(f) == Some(Op::Result) {
                results += 1;
                if *at > b_done {
                    after_b += 1;
                } else if *at > b_sent {
                    between += 1;
                }
            }
        }
    }
    // A's jobs beyond 8 waiting (plus the one running) were refused to A
    // alone; of A's jobs unfinished when B came, at most the running one
    // and the next ended before B's, and the others ran after it.
    assert!(busy >= 18 - 9, "busy {busy}, results {results}");
    assert_eq!(busy + results, 18);
    assert!(
        between <= 2 && after_b >= 4,
        "of A's {results} jobs, {between} ended while B waited and {after_b} after B"
    );
}

#[test]
fn connections_over_the_caps_are_told_busy_and_closed_never_left_hanging() {
    let server = ServerProcess::start(&["--roles", "filter", "--max-connections-per-client", "3"]);
    let held: Vec<Raw> = (0..3).map(|_| server.connect()).collect();
    // The fourth from this address: told why, then closed.
    let mut fourth = server.connect();
    let (frames, end) = fourth.frames_until_closed();
    assert!(matches!(end, ReadEnd::Eof | ReadEnd::Error(_)));
    assert_eq!(
        frames.len(),
        1,
        "{:?}",
        frames.iter().map(describe).collect::<Vec<_>>()
    );
    assert_eq!(error_code(&frames[0]).as_deref(), Some("busy"));
    assert!(message(&frames[0]).contains("--max-connections-per-client"));
    // Another address is still served, and so are the three.
    let took = other_client_is_served(&server);
    assert!(took < Duration::from_secs(5), "{took:?}");
    for mut conn in held {
        conn.send_filter(9, "invert", &tiny_png());
        let last = conn.events_until_terminal(9).pop().unwrap();
        assert_eq!(op_of(&last), Some(Op::Result));
    }
    // The node says what descriptor limit it runs with.
    assert!(
        server.log().contains("file-descriptor limit raised"),
        "{}",
        server.log()
    );
}

#[test]
fn a_client_that_half_closes_still_gets_every_result() {
    let server = ServerProcess::start(&["--workers", "1", "--roles", "filter"]);
    let mut conn = server.connect();
    let image = noise_png(300, 200, 2);
    for id in 1..=3 {
        conn.send_filter(id, "blur=2", &image);
    }
    conn.stream.shutdown(Shutdown::Write).unwrap();
    let (frames, _) = conn.frames_until_closed();
    let results: Vec<u64> = frames
        .iter()
        .filter(|f| op_of(f) == Some(Op::Result))
        .map(|f| f.request_id)
        .collect();
    assert_eq!(
        results,
        vec![1, 2, 3],
        "{:?}",
        frames.iter().map(describe).collect::<Vec<_>>()
    );
}

#[test]
fn a_vanished_clients_running_job_stops_and_sigterm_waits_at_most_the_drain_timeout() {
    let mut server = ServerProcess::start(&[
        "--workers",
        "1",
        "--roles",
        "filter",
        "--max-request-cost",
        "600",
        "--drain-timeout",
        "2",
    ]);
    let big = noise_png(1600, 1200, 3);
    // A job of tens of seconds; the client dies once it has started.
    let long = medians(30, 12);
    let mut conn = server.connect();
    conn.send_filter(1, &long, &big);
    loop {
        let f = conn.next_frame();
        if op_of(&f) == Some(Op::Started) {
            break;
        }
    }
    std::thread::sleep(Duration::from_millis(300));
    conn.reset();
    // The one worker is free again within a checkpoint or two.
    let took = other_client_is_served(&server);
    assert!(took < Duration::from_secs(15), "the job went on: {took:?}");
    assert!(
        wait_until(Duration::from_secs(5), || server
            .log()
            .contains("client gone")),
        "{}",
        server.log()
    );

    // A job still running at SIGTERM: the node exits after the drain timeout.
    let mut conn = server.connect();
    conn.send_filter(2, &long, &big);
    loop {
        if op_of(&conn.next_frame()) == Some(Op::Started) {
            break;
        }
    }
    let stopping = Instant::now();
    server.terminate();
    let status = server.wait_exit(Duration::from_secs(20));
    assert!(status.is_some(), "still running 20 s after SIGTERM");
    assert!(
        stopping.elapsed() < Duration::from_secs(12),
        "{:?}",
        stopping.elapsed()
    );
    assert!(server.log().contains("drain timeout"), "{}", server.log());
}

/// A filter node with a memory budget of `budget_mib` MiB, frames of up
/// to 200 MB and a frame (body) timeout of `frame_timeout_s` seconds, and
/// its resident memory at start, KiB.
fn budgeted_node(budget_mib: u64, frame_timeout_s: u32) -> (ServerProcess, u64) {
    let budget = format!("{budget_mib}MiB");
    let timeout = frame_timeout_s.to_string();
    let server = ServerProcess::start(&[
        "--roles",
        "filter",
        "--memory-budget",
        &budget,
        "--max-frame",
        "200000000",
        "--frame-timeout",
        &timeout,
    ]);
    let before = proc_kib(server.pid(), "VmRSS:");
    (server, before)
}

#[test]
fn uploads_wait_within_the_memory_budget_and_small_requests_still_pass() {
    const BUDGET_MIB: u64 = 64;
    let (server, before) = budgeted_node(BUDGET_MIB, 6);
    let pid = server.pid();
    // A frame larger than the whole budget: refused at once.
    let mut conn = server.connect();
    conn.send_bytes(&150_000_000u32.to_be_bytes()).unwrap();
    let (frames, _) = conn.frames_until_closed();
    assert_eq!(error_code(&frames[0]).as_deref(), Some("frame_too_large"));
    assert!(
        message(&frames[0]).contains("--memory-budget"),
        "{}",
        message(&frames[0])
    );

    // Eight uploads of 60 MB frames, 40 MB sent of each (320 MB if held).
    let head = filter_frame(1, "invert", &vec![0u8; 60_000_000]).to_bytes();
    let senders: Vec<_> = (0..8)
        .map(|_| {
            let mut raw = server.connect();
            let part = head[..40_000_000].to_vec();
            std::thread::spawn(move || {
                let _ = raw.stream.set_write_timeout(Some(Duration::from_secs(10)));
                let _ = raw.stream.write_all(&part);
                std::thread::sleep(Duration::from_secs(8));
                drop(raw);
            })
        })
        .collect();
    std::thread::sleep(Duration::from_secs(2));
    // Small requests are still read and answered.
    let took = other_client_is_served(&server);
    assert!(took < Duration::from_secs(3), "{took:?}");
    let peak = proc_kib(pid, "VmHWM:");
    let grew_mib = peak.saturating_sub(before) / 1024;
    assert!(
        grew_mib <= BUDGET_MIB + 48,
        "the node grew by {grew_mib} MiB with a budget of {BUDGET_MIB} MiB"
    );
    for s in senders {
        let _ = s.join();
    }
    // Once the uploads are gone (frame timeout), everything is given back.
    assert!(
        wait_until(Duration::from_secs(10), || {
            server.status()["jobs_done"].as_u64() == Some(1)
        }),
        "{:?}",
        server.status()
    );
    server.assert_serves(&tiny_png(), "invert");
}

#[test]
fn a_client_that_never_reads_is_closed_after_the_write_timeout() {
    let server = ServerProcess::start(&[
        "--workers",
        "2",
        "--roles",
        "filter",
        "--write-timeout",
        "2",
        "--memory-budget",
        "32MiB",
    ]);
    let pid = server.pid();
    let before = proc_kib(pid, "VmRSS:");
    // Requests whose results (about 6 MB each) it never reads.
    let image = noise_png(1400, 1400, 4);
    let mut conn = server.connect();
    let _ = conn.stream.set_write_timeout(Some(Duration::from_secs(20)));
    for id in 1..=12 {
        if conn
            .stream
            .write_all(&filter_frame(id, "invert", &image).to_bytes())
            .is_err()
        {
            break;
        }
    }
    // Others are served meanwhile.
    let took = other_client_is_served(&server);
    assert!(took < Duration::from_secs(10), "{took:?}");
    // The node closes it: reading now finds the end within a few seconds.
    std::thread::sleep(Duration::from_secs(6));
    let _ = conn.stream.set_read_timeout(Some(Duration::from_secs(20)));
    let (frames, end) = conn.frames_until_closed();
    let results = frames
        .iter()
        .filter(|f| op_of(f) == Some(Op::Result))
        .count();
    assert!(
        results < 12,
        "all {results} results were kept for it ({end:?})"
    );
    // What it held meanwhile stayed within the budget (requests and
    // unwritten results: 32 MiB), plus what the budget does not count, the
    // running jobs' working memory (2 workers x a decoded image, its
    // result and the result's PNG, 6 MB each: 36 MB), plus 32 MiB of
    // allocator slack: 86-88 MiB measured here. With a budget too large to
    // matter (4 GiB) the node grew by 171 MiB.
    let grew_mib = proc_kib(pid, "VmHWM:").saturating_sub(before) / 1024;
    eprintln!("never-read results: the node grew by {grew_mib} MiB");
    assert!(
        grew_mib <= 32 + 36 + 32,
        "the node grew by {grew_mib} MiB with a budget of 32 MiB"
    );
    server.assert_serves(&tiny_png(), "invert");
}

/// Sends one HTTP/1.1 request on a fresh connection and returns the status
/// line of its answer.
fn http_status_line(addr: std::net::SocketAddr, path: &str, body: &[u8]) -> String {
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: ocellus\r\nContent-Type: application/octet-stream\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).unwrap();
    stream.write_all(body).unwrap();
    let mut answer = Vec::new();
    let _ = std::io::Read::read_to_end(&mut stream, &mut answer);
    String::from_utf8_lossy(&answer)
        .lines()
        .next()
        .unwrap_or_default()
        .to_string()
}

#[test]
fn http_uploads_wait_within_the_memory_budget_too() {
    const BUDGET_MIB: u64 = 32;
    let (server, before) = budgeted_node(BUDGET_MIB, 3);
    let http = server.http.expect("the node serves HTTP");
    let pid = server.pid();
    // A body declaring more than the whole budget: refused unread.
    let mut conn = std::net::TcpStream::connect(http).unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    conn.write_all(
        b"POST /v1/filter?ops=invert HTTP/1.1\r\nHost: ocellus\r\nContent-Length: 150000000\r\n\r\n",
    )
    .unwrap();
    let mut answer = vec![0u8; 4096];
    let n = std::io::Read::read(&mut conn, &mut answer).unwrap_or(0);
    let answer = String::from_utf8_lossy(&answer[..n]).to_string();
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(answer.contains("--memory-budget"), "{answer}");
    drop(conn);

    // Eight uploads declaring 60 MB, 40 MB sent of each (320 MB if held).
    let head =
        b"POST /v1/filter?ops=invert HTTP/1.1\r\nHost: ocellus\r\nContent-Length: 60000000\r\n\r\n";
    let senders: Vec<_> = (0..8)
        .map(|_| {
            let mut raw = std::net::TcpStream::connect(http).unwrap();
            std::thread::spawn(move || {
                let _ = raw.set_write_timeout(Some(Duration::from_secs(10)));
                let _ = raw.write_all(head);
                let _ = raw.write_all(&vec![0u8; 20_000_000]);
                std::thread::sleep(Duration::from_secs(4));
                drop(raw);
            })
        })
        .collect();
    std::thread::sleep(Duration::from_secs(2));
    // Small requests are still read and answered, on both ports.
    let started = Instant::now();
    let status = http_status_line(http, "/v1/filter?ops=invert", &tiny_png());
    assert!(status.starts_with("HTTP/1.1 200"), "{status}");
    let took = other_client_is_served(&server);
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "{:?} ({took:?} on TCP)",
        started.elapsed()
    );
    let peak = proc_kib(pid, "VmHWM:");
    let grew_mib = peak.saturating_sub(before) / 1024;
    assert!(
        grew_mib <= BUDGET_MIB + 48,
        "the node grew by {grew_mib} MiB with a budget of {BUDGET_MIB} MiB"
    );
    for s in senders {
        let _ = s.join();
    }
    // The stalled uploads hold the budget in turn, each until the body
    // timeout (3 s) cuts it off; then an upload larger than 64 KiB is read
    // and answered again.
    let image = noise_png(400, 300, 9);
    assert!(image.len() > 64 * 1024);
    let started = Instant::now();
    let status = http_status_line(http, "/v1/filter?ops=invert", &image);
    assert!(
        status.starts_with("HTTP/1.1 200"),
        "{status} after {:?}",
        started.elapsed()
    );
}
