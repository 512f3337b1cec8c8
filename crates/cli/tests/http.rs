//! The HTTP API against a real `ocellus serve` on free ports: every route,
//! its errors and their statuses, the job stream's events in order, trust
//! (Bearer keys, scopes), and results identical to `ocellus filter
//! --local`. The face routes use the people photos of the shared data
//! (skipped without them outside CI).

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::{OCELLUS, PATIENCE, ServerProcess, TempDir};
use reqwest::StatusCode;
use serde_json::Value;

fn base(server: &ServerProcess) -> String {
    format!("http://{}", server.http.expect("the node has HTTP"))
}

/// A small PNG made by the binary itself (no test data needed): a
/// gradient, filtered locally to a known size.
fn png(_dir: &Path, w: u32, h: u32) -> Vec<u8> {
    let mut pixels = Vec::with_capacity((w * h * 3) as usize);
    for y in 0..h {
        for x in 0..w {
            pixels.extend([
                (x * 7 % 256) as u8,
                (y * 5 % 256) as u8,
                ((x + y) % 256) as u8,
            ]);
        }
    }
    flat_png(w, h, pixels)
}

fn flat_png(w: u32, h: u32, rgb: Vec<u8>) -> Vec<u8> {
    let image = ocellus_imaging::Image::from_vec(w, h, ocellus_imaging::PixelLayout::Rgb, rgb)
        .expect("an image");
    ocellus_codec::encode(&image, ocellus_codec::ImageFormat::Png, &Default::default())
        .expect("a PNG")
}

/// What `ocellus filter --local` writes for `input` with `ops`.
fn filter_local(dir: &Path, input: &[u8], ops: &str) -> Vec<u8> {
    let src = dir.join("local-in.png");
    std::fs::write(&src, input).expect("input");
    let out = dir.join("local-out");
    let done = Command::new(OCELLUS)
        .args(["filter", "--local", "--ops", ops, "-o"])
        .arg(&out)
        .arg(&src)
        .output()
        .expect("ocellus filter");
    assert!(
        done.status.success(),
        "{}",
        String::from_utf8_lossy(&done.stderr)
    );
    let file = std::fs::read_dir(&out)
        .expect("out dir")
        .next()
        .expect("one result")
        .expect("entry")
        .path();
    std::fs::read(file).expect("result")
}

async fn error_of(response: reqwest::Response) -> (StatusCode, String, String) {
    let status = response.status();
    let body: Value = response.json().await.expect("a JSON error body");
    let code = body["error"]["code"]
        .as_str()
        .expect("error.code")
        .to_string();
    let message = body["error"]["message"]
        .as_str()
        .expect("error.message")
        .to_string();
    (status, code, message)
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

#[test]
fn filter_answers_the_same_bytes_as_the_local_filter_with_where_and_how_long() {
    let dir = TempDir::new("http-filter");
    let server = ServerProcess::start(&["--roles", "filter"]);
    let url = base(&server);
    let input = png(dir.path(), 64, 48);
    let expected = filter_local(dir.path(), &input, "blur=2,rotate=90");
    runtime().block_on(async {
        let http = reqwest::Client::new();
        let r = http
            .post(format!("{url}/v1/filter?ops=blur=2,rotate=90"))
            .header("content-type", "image/png")
            .body(input.clone())
            .send()
            .await
            .expect("POST /v1/filter");
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(r.headers()["content-type"], "image/png");
        assert_eq!(r.headers()["ocellus-width"], "48");
        assert_eq!(r.headers()["ocellus-height"], "64");
        assert!(!r.headers()["ocellus-node"].is_empty());
        for h in ["ocellus-queue-ms", "ocellus-run-ms"] {
            let v: u64 = r.headers()[h].to_str().unwrap().parse().expect(h);
            assert!(v < 120_000, "{h} = {v}");
        }
        assert_eq!(r.bytes().await.unwrap().as_ref(), expected.as_slice());

        // The same as multipart, with a format.
        let form = reqwest::multipart::Form::new()
            .text("ops", "blur=2,rotate=90")
            .part(
                "image",
                reqwest::multipart::Part::bytes(input.clone()).file_name("in.png"),
            );
        let r = http
            .post(format!("{url}/v1/filter"))
            .multipart(form)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(r.bytes().await.unwrap().as_ref(), expected.as_slice());

        let r = http
            .post(format!("{url}/v1/filter?ops=invert&format=jpeg&quality=80"))
            .body(input.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(r.headers()["content-type"], "image/jpeg");
        assert_eq!(&r.bytes().await.unwrap()[..2], &[0xff, 0xd8]);

        // The ops list the page builds pipelines from.
        let ops: Value = http
            .get(format!("{url}/v1/ops"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let names: Vec<&str> = ops["operations"]
            .as_array()
            .unwrap()
            .iter()
            .map(|o| o["name"].as_str().unwrap())
            .collect();
        assert!(
            names.contains(&"blur") && names.contains(&"resize"),
            "{names:?}"
        );
    });
}

#[test]
fn every_failure_has_its_code_and_status() {
    let dir = TempDir::new("http-errors");
    let server = ServerProcess::start(&["--roles", "filter", "--max-frame", "200000"]);
    let url = base(&server);
    let input = png(dir.path(), 16, 16);
    runtime().block_on(async {
        let http = reqwest::Client::new();
        let post = |path: &str, body: Vec<u8>| http.post(format!("{url}{path}")).body(body).send();
        let cases: Vec<(&str, Vec<u8>, StatusCode, &str)> = vec![
            (
                "/v1/filter?ops=blur=nope",
                input.clone(),
                StatusCode::BAD_REQUEST,
                "bad_ops",
            ),
            (
                "/v1/filter",
                input.clone(),
                StatusCode::BAD_REQUEST,
                "bad_request",
            ),
            (
                "/v1/filter?ops=invert&min_sise=3",
                input.clone(),
                StatusCode::BAD_REQUEST,
                "bad_request",
            ),
            (
                "/v1/filter?ops=invert",
                Vec::new(),
                StatusCode::BAD_REQUEST,
                "bad_request",
            ),
            (
                "/v1/filter?ops=invert&quality=many",
                input.clone(),
                StatusCode::BAD_REQUEST,
                "bad_request",
            ),
            (
                "/v1/filter?ops=invert",
                b"not an image at all".to_vec(),
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "bad_image",
            ),
            (
                "/v1/filter?ops=invert",
                vec![0u8; 300_000],
                StatusCode::PAYLOAD_TOO_LARGE,
                "frame_too_large",
            ),
            (
                "/v1/detect",
                input.clone(),
                StatusCode::SERVICE_UNAVAILABLE,
                "role_unavailable",
            ),
            (
                "/v1/nothing",
                Vec::new(),
                StatusCode::NOT_FOUND,
                "not_found",
            ),
            (
                "/v1/jobs/paint",
                input.clone(),
                StatusCode::NOT_FOUND,
                "not_found",
            ),
            (
                "/v1/jobs/filter?ops=blur=nope",
                input.clone(),
                StatusCode::BAD_REQUEST,
                "bad_ops",
            ),
        ];
        for (path, body, status, code) in cases {
            let r = post(path, body)
                .await
                .unwrap_or_else(|e| panic!("{path}: {e}"));
            let (s, c, m) = error_of(r).await;
            assert_eq!((s, c.as_str()), (status, code), "{path}: {m}");
            assert!(!m.is_empty());
        }
        let r = http
            .delete(format!("{url}/v1/filter"))
            .send()
            .await
            .unwrap();
        let (s, c, _) = error_of(r).await;
        assert_eq!(
            (s, c.as_str()),
            (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed")
        );
        // The node is still there and well.
        let r = post("/v1/filter?ops=invert", input.clone()).await.unwrap();
        assert_eq!(r.status(), StatusCode::OK);
    });
}

/// Reads a Server-Sent Events stream to its end: (event, data) pairs.
async fn read_events(response: reqwest::Response) -> Vec<(String, Value)> {
    let text = tokio::time::timeout(PATIENCE, response.text())
        .await
        .expect("the stream ends")
        .expect("the stream reads");
    let mut events = Vec::new();
    for block in text.split("\n\n") {
        let mut name = String::new();
        let mut data = String::new();
        for line in block.lines() {
            if let Some(v) = line.strip_prefix("event:") {
                name = v.trim().to_string();
            } else if let Some(v) = line.strip_prefix("data:") {
                data.push_str(v.trim());
            }
        }
        if !name.is_empty() {
            events.push((name, serde_json::from_str(&data).expect("JSON data")));
        }
    }
    events
}

#[test]
fn a_job_streams_its_progress_in_order_and_gives_its_result_once() {
    let dir = TempDir::new("http-jobs");
    // One worker: the second job waits behind the first and sees positions.
    let server = ServerProcess::start(&["--roles", "filter", "--workers", "1"]);
    let url = base(&server);
    let big = png(dir.path(), 1600, 1200);
    let small = png(dir.path(), 40, 30);
    let expected = filter_local(dir.path(), &small, "blur=3");
    runtime().block_on(async {
        let http = reqwest::Client::new();
        let submit = |body: Vec<u8>, ops: &str| {
            http.post(format!("{url}/v1/jobs/filter?ops={ops}"))
                .body(body)
                .send()
        };
        // Busy the worker, then submit ours.
        let first = submit(big.clone(), "median=20").await.unwrap();
        assert_eq!(first.status(), StatusCode::ACCEPTED);
        let r = submit(small.clone(), "blur=3").await.unwrap();
        assert_eq!(r.status(), StatusCode::ACCEPTED);
        let location = r.headers()["location"].to_str().unwrap().to_string();
        let job: Value = r.json().await.unwrap();
        let id = job["id"].as_str().unwrap().to_string();
        assert_eq!(location, format!("/v1/jobs/{id}"));
        assert_eq!(job["events"], format!("/v1/jobs/{id}/events"));

        // Before it is done: not ready.
        let early = http
            .get(format!("{url}/v1/jobs/{id}/result"))
            .send()
            .await
            .unwrap();
        if early.status() != StatusCode::OK {
            let (s, c, _) = error_of(early).await;
            assert_eq!((s, c.as_str()), (StatusCode::CONFLICT, "not_ready"));
        }
        let state: Value = http
            .get(format!("{url}{location}"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert!(
            ["queued", "running", "done"].contains(&state["state"].as_str().unwrap()),
            "{state}"
        );

        let stream = http
            .get(format!("{url}/v1/jobs/{id}/events"))
            .send()
            .await
            .unwrap();
        assert_eq!(stream.headers()["content-type"], "text/event-stream");
        let events = read_events(stream).await;
        let names: Vec<&str> = events.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names.first(), Some(&"accepted"), "{names:?}");
        assert_eq!(names.last(), Some(&"result"), "{names:?}");
        assert_eq!(names[names.len() - 2], "started", "{names:?}");
        assert!(
            names[1..names.len() - 2].iter().all(|n| *n == "position"),
            "{names:?}"
        );
        assert!(events[0].1["position"].as_u64().unwrap() >= 1);
        let done = &events.last().unwrap().1;
        assert_eq!(done["content_type"], "image/png");
        assert_eq!(done["bytes"].as_u64(), Some(expected.len() as u64));

        // A late reader gets the same story.
        let again = read_events(
            http.get(format!("{url}/v1/jobs/{id}/events"))
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(again.first().map(|e| e.0.as_str()), Some("accepted"));
        assert_eq!(again.last().map(|e| e.0.as_str()), Some("result"));

        let r = http
            .get(format!("{url}/v1/jobs/{id}/result"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(r.bytes().await.unwrap().as_ref(), expected.as_slice());
        let (s, c, _) = error_of(
            http.get(format!("{url}/v1/jobs/{id}/result"))
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!((s, c.as_str()), (StatusCode::GONE, "gone"));
        let (s, c, _) = error_of(
            http.get(format!("{url}/v1/jobs/nosuchjob/events"))
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!((s, c.as_str()), (StatusCode::NOT_FOUND, "not_found"));

        // A waiting job is withdrawn by DELETE; its stream says so.
        let blocker = submit(big.clone(), "median=20").await.unwrap();
        assert_eq!(blocker.status(), StatusCode::ACCEPTED);
        let victim: Value = submit(small.clone(), "blur=3")
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let vid = victim["id"].as_str().unwrap();
        let stream = http
            .get(format!("{url}/v1/jobs/{vid}/events"))
            .send()
            .await
            .unwrap();
        let gone: Value = http
            .delete(format!("{url}/v1/jobs/{vid}"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(gone["cancelled"], true, "{gone}");
        let events = read_events(stream).await;
        let last = events.last().expect("events");
        assert_eq!(last.0, "error");
        assert_eq!(last.1["error"]["code"], "cancelled");
        let status: Value = http
            .get(format!("{url}/v1/status"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert!(status["jobs_done"].as_u64().unwrap() >= 2, "{status}");
    });
}

#[test]
fn a_full_queue_is_429_with_retry_after() {
    let dir = TempDir::new("http-busy");
    let server = ServerProcess::start(&[
        "--roles",
        "filter",
        "--workers",
        "1",
        "--queue-capacity",
        "1",
    ]);
    let url = base(&server);
    let big = png(dir.path(), 1600, 1200);
    runtime().block_on(async {
        let http = reqwest::Client::new();
        let mut busy = None;
        for _ in 0..8 {
            let r = http
                .post(format!("{url}/v1/jobs/filter?ops=median=20"))
                .body(big.clone())
                .send()
                .await
                .unwrap();
            if r.status() == StatusCode::TOO_MANY_REQUESTS {
                busy = Some(r);
                break;
            }
        }
        let r = busy.expect("a full queue answers 429");
        let retry: u64 = r.headers()["retry-after"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!((1..=60).contains(&retry));
        let (_, c, m) = error_of(r).await;
        assert_eq!(c, "busy", "{m}");
    });
}

#[test]
fn a_client_that_vanishes_mid_upload_costs_nothing_lasting() {
    let dir = TempDir::new("http-vanish");
    let server = ServerProcess::start(&["--roles", "filter"]);
    let addr: SocketAddr = server.http.unwrap();
    for _ in 0..4 {
        let mut s = TcpStream::connect(addr).unwrap();
        s.write_all(
            b"POST /v1/filter?ops=invert HTTP/1.1\r\nHost: x\r\nContent-Length: 10000000\r\n\r\n",
        )
        .unwrap();
        s.write_all(&vec![0u8; 100_000]).unwrap();
        drop(s);
    }
    // A malformed request head gets a 400 and the node goes on.
    let mut s = TcpStream::connect(addr).unwrap();
    s.write_all(b"GARBAGE\r\n\r\n").unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut answer = String::new();
    let _ = s.read_to_string(&mut answer);
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer:?}");
    let input = png(dir.path(), 8, 8);
    runtime().block_on(async {
        let r = reqwest::Client::new()
            .post(format!("http://{addr}/v1/filter?ops=invert"))
            .body(input)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK);
    });
}

/// The value of the sample `name` (with its labels, as written) in a
/// Prometheus exposition.
fn sample(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
}

#[test]
fn metrics_count_what_the_node_did_over_both_ports() {
    let dir = TempDir::new("http-metrics");
    let server = ServerProcess::start(&["--roles", "filter"]);
    let url = base(&server);
    let input = png(dir.path(), 16, 16);
    // One filter over TCP, one over HTTP, one bad image over HTTP.
    filter_via_tcp(&server, dir.path(), &input);
    runtime().block_on(async {
        let http = reqwest::Client::new();
        let r = http
            .post(format!("{url}/v1/filter?ops=invert"))
            .body(input.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        let r = http
            .post(format!("{url}/v1/filter?ops=invert"))
            .body(&b"not an image"[..])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
        let r = http.get(format!("{url}/metrics")).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        assert!(
            r.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with("text/plain; version=0.0.4"),
        );
        let text = r.text().await.unwrap();
        let ok = r#"ocellus_jobs_total{op="filter",outcome="ok"}"#;
        assert_eq!(sample(&text, ok), Some(2.0), "{text}");
        let bad = r#"ocellus_jobs_total{op="filter",outcome="bad_image"}"#;
        assert_eq!(sample(&text, bad), Some(1.0), "{text}");
        let rejected = r#"ocellus_decode_rejections_total{reason="bad_image"}"#;
        assert_eq!(sample(&text, rejected), Some(1.0), "{text}");
        // The bad image ran too (a worker decodes): three runs.
        let runs = r#"ocellus_job_run_seconds_count{op="filter"}"#;
        assert_eq!(sample(&text, runs), Some(3.0), "{text}");
        assert_eq!(sample(&text, "ocellus_queue_length"), Some(0.0), "{text}");
        // This scrape is the one request in flight.
        assert_eq!(
            sample(&text, "ocellus_http_requests_in_flight"),
            Some(1.0),
            "{text}"
        );
    });
}

/// One `ocellus filter` over the node's TCP port.
fn filter_via_tcp(server: &ServerProcess, dir: &Path, input: &[u8]) {
    let src = dir.join("tcp-in.png");
    let out = dir.join("tcp-out");
    std::fs::write(&src, input).unwrap();
    let status = Command::new(OCELLUS)
        .args([
            "filter",
            "--server",
            &server.addr.to_string(),
            "--ops",
            "invert",
        ])
        .arg(&src)
        .arg("-o")
        .arg(&out)
        .status()
        .unwrap();
    assert!(status.success());
}

#[test]
fn probes_the_page_and_the_openapi_document() {
    let server = ServerProcess::start(&["--roles", "filter"]);
    let url = base(&server);
    runtime().block_on(async {
        let http = reqwest::Client::new();
        let h: Value = http
            .get(format!("{url}/healthz"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(h["status"], "ok");
        let r = http.get(format!("{url}/readyz")).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        let page = http.get(format!("{url}/")).send().await.unwrap();
        assert_eq!(page.headers()["content-type"], "text/html; charset=utf-8");
        let tag = page.headers()["etag"].clone();
        assert!(page.text().await.unwrap().contains("<html"));
        let again = http
            .get(format!("{url}/"))
            .header("if-none-match", tag)
            .send()
            .await
            .unwrap();
        assert_eq!(again.status(), StatusCode::NOT_MODIFIED);
        for asset in ["/app.js", "/app.css"] {
            assert_eq!(
                http.get(format!("{url}{asset}"))
                    .send()
                    .await
                    .unwrap()
                    .status(),
                StatusCode::OK
            );
        }

        // Every path of the document is a route of the node.
        let doc: Value = http
            .get(format!("{url}/v1/openapi.json"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"));
        let paths = doc["paths"].as_object().unwrap();
        assert!(paths.len() >= 15, "{}", paths.len());
        for (path, item) in paths {
            let concrete = path
                .replace("{name}", "nobody")
                .replace("{id}", "nosuchjob")
                .replace("{op}", "filter");
            for method in item.as_object().unwrap().keys() {
                let m = reqwest::Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
                let r = http
                    .request(m, format!("{url}{concrete}"))
                    .send()
                    .await
                    .unwrap();
                let status = r.status();
                if status == StatusCode::NOT_FOUND || status == StatusCode::METHOD_NOT_ALLOWED {
                    let (_, c, msg) = error_of(r).await;
                    assert!(
                        c != "not_found" || !msg.starts_with("no route"),
                        "{method} {path}: {msg}"
                    );
                    assert_ne!(c, "method_not_allowed", "{method} {path}");
                }
            }
        }
    });
}

#[test]
fn keys_are_needed_as_bearer_with_the_scope_of_the_route() {
    let dir = TempDir::new("http-keys");
    let keys = dir.path().join("keys.toml");
    let keys_s = keys.to_str().unwrap();
    let add = |name: &str, scopes: &str| {
        let out = Command::new(OCELLUS)
            .args(["keys", "add", name, "--scopes", scopes, "--keys", keys_s])
            .output()
            .unwrap();
        assert!(out.status.success());
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    };
    let filterer = add("filterer", "filter");
    let reader = add("reader", "read");
    let server = ServerProcess::start(&["--roles", "filter", "--keys", keys_s]);
    let url = base(&server);
    let input = png(dir.path(), 8, 8);
    runtime().block_on(async {
        let http = reqwest::Client::new();
        // Open: probes and the page.
        for open in ["/healthz", "/readyz", "/", "/app.js"] {
            assert_eq!(
                http.get(format!("{url}{open}"))
                    .send()
                    .await
                    .unwrap()
                    .status(),
                StatusCode::OK,
                "{open}"
            );
        }
        let r = http
            .post(format!("{url}/v1/filter?ops=invert"))
            .body(input.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(r.headers()["www-authenticate"], "Bearer realm=\"ocellus\"");
        let (s, c, _) = error_of(r).await;
        assert_eq!((s, c.as_str()), (StatusCode::UNAUTHORIZED, "unauthorized"));
        let r = http
            .post(format!("{url}/v1/filter?ops=invert"))
            .bearer_auth("ock_000000000000000000000000000000000000000000000000")
            .body(input.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(error_of(r).await.1, "unauthorized");
        let r = http
            .post(format!("{url}/v1/filter?ops=invert"))
            .bearer_auth(&filterer)
            .body(input.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        let r = http
            .get(format!("{url}/v1/status"))
            .bearer_auth(&filterer)
            .send()
            .await
            .unwrap();
        let (s, c, m) = error_of(r).await;
        assert_eq!((s, c.as_str()), (StatusCode::FORBIDDEN, "forbidden"), "{m}");
        let r = http
            .get(format!("{url}/v1/status"))
            .bearer_auth(&reader)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        // Metrics: the read scope, as STATUS.
        let r = http
            .get(format!("{url}/metrics"))
            .bearer_auth(&filterer)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::FORBIDDEN);
        let r = http
            .get(format!("{url}/metrics"))
            .bearer_auth(&reader)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        for path in ["/v1/ops", "/v1/openapi.json", "/v1/people", "/metrics"] {
            let r = http.get(format!("{url}{path}")).send().await.unwrap();
            assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "{path}");
        }
        // A job belongs to the key that submitted it.
        let job: Value = http
            .post(format!("{url}/v1/jobs/filter?ops=invert"))
            .bearer_auth(&filterer)
            .body(input.clone())
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let id = job["id"].as_str().unwrap();
        let r = http
            .get(format!("{url}/v1/jobs/{id}"))
            .bearer_auth(&reader)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::NOT_FOUND);
        let r = http
            .get(format!("{url}/v1/jobs/{id}"))
            .bearer_auth(&filterer)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK);
    });
}

/// person -> photos, sorted (the people set of the shared data).
fn people(data: &Path) -> Vec<(String, Vec<std::path::PathBuf>)> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(data.join("people")).unwrap() {
        let entry = entry.unwrap();
        if entry.path().is_dir() {
            let mut photos: Vec<_> = std::fs::read_dir(entry.path())
                .unwrap()
                .map(|e| e.unwrap().path())
                .collect();
            photos.sort();
            out.push((entry.file_name().to_string_lossy().into_owned(), photos));
        }
    }
    out.sort();
    out
}

#[test]
fn faces_enroll_recognize_detect_list_and_remove_over_http() {
    let Some(data) = ocellus_testdata::data_dir() else {
        return;
    };
    let server = ServerProcess::start(&["--algorithm", "lbph", "--without-models"]);
    let url = base(&server);
    let everyone = people(&data);
    let (ada, photos) = &everyone[0];
    let (bob, bob_photos) = &everyone[1];
    runtime().block_on(async {
        let http = reqwest::Client::new();
        let mut form = reqwest::multipart::Form::new();
        for p in &photos[..photos.len() - 1] {
            form = form.part(
                "image",
                reqwest::multipart::Part::bytes(std::fs::read(p).unwrap()).file_name("p.jpg"),
            );
        }
        let r = http
            .post(format!("{url}/v1/people/{ada}/faces"))
            .multipart(form)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        let enrolled: Value = r.json().await.unwrap();
        assert_eq!(enrolled["name"], ada.as_str());
        assert_eq!(
            enrolled["images"].as_array().unwrap().len(),
            photos.len() - 1
        );
        assert!(enrolled["faces"].as_u64().unwrap() >= 1, "{enrolled}");
        // A second person, as a job with the name as a field.
        let mut form = reqwest::multipart::Form::new().text("name", bob.clone());
        for p in &bob_photos[..bob_photos.len() - 1] {
            form = form.part(
                "image",
                reqwest::multipart::Part::bytes(std::fs::read(p).unwrap()).file_name("p.jpg"),
            );
        }
        let job: Value = http
            .post(format!("{url}/v1/jobs/enroll"))
            .multipart(form)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let events = read_events(
            http.get(format!(
                "{url}/v1/jobs/{}/events",
                job["id"].as_str().unwrap()
            ))
            .send()
            .await
            .unwrap(),
        )
        .await;
        let (last, body) = events.last().unwrap();
        assert_eq!(last, "result", "{body}");
        assert_eq!(body["name"], bob.as_str());

        let list: Value = http
            .get(format!("{url}/v1/people"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let names: Vec<&str> = list["people"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["name"].as_str().unwrap())
            .collect();
        assert!(
            names.contains(&ada.as_str()) && names.contains(&bob.as_str()),
            "{list}"
        );

        // Detect and recognize the held-out photo.
        let held_out = std::fs::read(photos.last().unwrap()).unwrap();
        let found: Value = http
            .post(format!("{url}/v1/detect?min_neighbors=3"))
            .body(held_out.clone())
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert!(
            !found["results"][0]["faces"].as_array().unwrap().is_empty(),
            "{found}"
        );
        let r = http
            .post(format!("{url}/v1/recognize?algorithm=lbph"))
            .body(held_out.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        let who: Value = r.json().await.unwrap();
        let face = &who["results"][0]["faces"][0];
        // The TCP RESULT's shape: the box and the identity side by side.
        assert!(face["distance"].is_number(), "{who}");
        assert_eq!(face["algorithm"], "lbph", "{who}");
        assert!(face["width"].as_u64().unwrap() > 0, "{who}");

        // A photo without a face says so.
        let noface = flat_png(200, 150, [90u8, 120, 200].repeat(200 * 150));
        let none: Value = http
            .post(format!("{url}/v1/recognize"))
            .body(noface)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(none["results"][0]["message"], "no face found", "{none}");

        let r = http
            .delete(format!("{url}/v1/people/{ada}"))
            .send()
            .await
            .unwrap();
        let removed: Value = r.json().await.unwrap();
        assert_eq!(removed["removed_faces"], enrolled["faces"]);
        let (s, c, _) = error_of(
            http.delete(format!("{url}/v1/people/{ada}"))
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!((s, c.as_str()), (StatusCode::NOT_FOUND, "unknown_person"));
    });
}

#[test]
fn readyz_fails_while_the_recognition_node_is_unreachable() {
    let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead = free.local_addr().unwrap().to_string();
    drop(free);
    let server = ServerProcess::start(&["--roles", "detect", "--recognizer", &dead]);
    let url = base(&server);
    runtime().block_on(async {
        let http = reqwest::Client::new();
        let started = Instant::now();
        let r = http.get(format!("{url}/readyz")).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["ready"], false);
        assert_ne!(body["checks"]["recognizer"], "ok", "{body}");
        assert!(started.elapsed() < PATIENCE);
        assert_eq!(
            http.get(format!("{url}/healthz"))
                .send()
                .await
                .unwrap()
                .status(),
            StatusCode::OK
        );
    });
}

#[test]
fn oversized_images_and_malformed_multipart_are_refused_clearly() {
    let dir = TempDir::new("http-bad-bodies");
    // 64x64 is 4096 pixels: over this node's limit, decided from the header.
    let server = ServerProcess::start(&["--roles", "filter", "--max-pixels", "1000"]);
    let url = base(&server);
    runtime().block_on(async {
        let http = reqwest::Client::new();
        let r = http
            .post(format!("{url}/v1/filter?ops=invert"))
            .body(png(dir.path(), 64, 64))
            .send()
            .await
            .unwrap();
        let (s, c, m) = error_of(r).await;
        assert_eq!(
            (s, c.as_str()),
            (StatusCode::PAYLOAD_TOO_LARGE, "image_too_large"),
            "{m}"
        );
        // A multipart body that ends before its closing boundary.
        let r = http
            .post(format!("{url}/v1/filter?ops=invert"))
            .header("content-type", "multipart/form-data; boundary=XYZ")
            .body("--XYZ\r\nContent-Disposition: form-data; name=\"image\"\r\n\r\nabc")
            .send()
            .await
            .unwrap();
        let (s, c, m) = error_of(r).await;
        assert_eq!(
            (s, c.as_str()),
            (StatusCode::BAD_REQUEST, "bad_request"),
            "{m}"
        );
        // A multipart type without a boundary.
        let r = http
            .post(format!("{url}/v1/filter?ops=invert"))
            .header("content-type", "multipart/form-data")
            .body("whatever")
            .send()
            .await
            .unwrap();
        assert_eq!(error_of(r).await.0, StatusCode::BAD_REQUEST);
        // A small image still goes through.
        let r = http
            .post(format!("{url}/v1/filter?ops=invert"))
            .body(png(dir.path(), 20, 20))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK);
    });
}

#[test]
fn leaving_the_event_stream_does_not_cancel_the_job() {
    let dir = TempDir::new("http-leave");
    let server = ServerProcess::start(&["--roles", "filter", "--workers", "1"]);
    let url = base(&server);
    let input = png(dir.path(), 640, 480);
    let blocker = png(dir.path(), 1600, 1200);
    runtime().block_on(async {
        let http = reqwest::Client::new();
        // The one worker is busy first, so that ours is still waiting when
        // its stream is left.
        let busy = http
            .post(format!("{url}/v1/jobs/filter?ops=blur=15"))
            .body(blocker)
            .send()
            .await
            .unwrap();
        assert_eq!(busy.status(), StatusCode::ACCEPTED);
        let job: Value = http
            .post(format!("{url}/v1/jobs/filter?ops=blur=8"))
            .body(input.clone())
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let id = job["id"].as_str().unwrap().to_string();
        // Open the stream, read its first bytes, and leave.
        let mut stream = http
            .get(format!("{url}/v1/jobs/{id}/events"))
            .send()
            .await
            .unwrap();
        assert_eq!(stream.status(), StatusCode::OK);
        let first = tokio::time::timeout(PATIENCE, stream.chunk())
            .await
            .expect("a first event")
            .unwrap();
        assert!(first.is_some());
        drop(stream);
        // The job still runs to its end, and its result is there.
        let deadline = std::time::Instant::now() + PATIENCE;
        loop {
            let state: Value = http
                .get(format!("{url}/v1/jobs/{id}"))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            match state["state"].as_str() {
                Some("done") => break,
                Some("queued" | "running") => {}
                other => panic!("the job ended {other:?}: {state}"),
            }
            assert!(std::time::Instant::now() < deadline, "{state}");
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        let r = http
            .get(format!("{url}/v1/jobs/{id}/result"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(r.headers()["content-type"], "image/png");
        let bytes = r.bytes().await.unwrap();
        assert_eq!(
            bytes.as_ref(),
            filter_local(dir.path(), &input, "blur=8").as_slice()
        );
    });
}
