//! The metrics as the handler and the workers record them: jobs run
//! through [`super::handle`] move the counters and histograms of
//! [`crate::metrics`], and a scrape reads the face store.

use std::sync::Arc;

use bytes::Bytes;
use ocellus_codec::{EncodeOptions, ImageFormat, encode};
use ocellus_imaging::{Image, PixelLayout};
use ocellus_protocol::{Op, field};
use serde_json::Map;

use super::handle;
use super::tests::{filter_request, filter_state, filter_state_with, start_workers};
use crate::call::Incoming;
use crate::call::testing::{Recorder, caller, responder};
use crate::metrics::tests::{promtool_check, value};
use crate::roles::recognition::{FaceCrop, RecognitionService, RecognitionSettings};
use crate::state::State;

fn png() -> Vec<u8> {
    let image = Image::from_vec(8, 6, PixelLayout::Gray, vec![100; 48]).unwrap();
    encode(&image, ImageFormat::Png, &EncodeOptions::default()).unwrap()
}

/// Runs FILTER jobs through the handler: one ok, one bad image, one
/// forwarded by a peer; then STATUS.
async fn run_jobs(state: &Arc<State>) {
    let recorder = Arc::new(Recorder::default());
    let who = caller(&recorder);
    let png = png();
    let mut from_peer = filter_request(3, "invert", std::slice::from_ref(&png));
    from_peer
        .header
        .insert(field::VIA.into(), "peer-node".into());
    let requests = [
        filter_request(1, "invert", std::slice::from_ref(&png)),
        filter_request(2, "invert", &[b"not an image".to_vec()]),
        from_peer,
        Incoming {
            op: Op::Status,
            request_id: 4,
            header: Map::new(),
            payload: Bytes::new(),
        },
    ];
    for request in requests {
        let id = request.request_id;
        handle(state, request, &who, responder(&recorder, id));
        recorder.terminal(id).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counters_and_histograms_move_as_jobs_run() {
    let state = filter_state();
    let before = state.metrics.render(state.gauges());
    let ok = r#"ocellus_jobs_total{op="filter",outcome="ok"}"#;
    let bad = r#"ocellus_decode_rejections_total{reason="bad_image"}"#;
    assert_eq!(value(&before, ok), None);
    assert_eq!(value(&before, bad), Some(0.0));
    for family in [
        "ocellus_jobs_total counter",
        "ocellus_jobs_received_total counter",
        "ocellus_jobs_forwarded_total counter",
        "ocellus_decode_rejections_total counter",
        "ocellus_job_queue_wait_seconds histogram",
        "ocellus_job_run_seconds histogram",
        "ocellus_tcp_connections gauge",
        "ocellus_http_requests_in_flight gauge",
        "ocellus_queue_length gauge",
        "ocellus_queue_capacity gauge",
        "ocellus_workers gauge",
        "ocellus_workers_busy gauge",
        "ocellus_peers gauge",
    ] {
        assert!(
            before.contains(&format!("# TYPE {family}\n")),
            "{family} missing:\n{before}"
        );
    }
    // No recognition role here: nothing enrolled to report.
    assert!(!before.contains("ocellus_people_enrolled"));

    let threads = start_workers(&state);
    run_jobs(&state).await;
    let after = state.metrics.render(state.gauges());
    assert_eq!(value(&after, ok), Some(2.0), "{after}");
    let failed = r#"ocellus_jobs_total{op="filter",outcome="bad_image"}"#;
    assert_eq!(value(&after, failed), Some(1.0));
    assert_eq!(value(&after, bad), Some(1.0));
    let status = r#"ocellus_jobs_total{op="status",outcome="ok"}"#;
    assert_eq!(value(&after, status), Some(1.0));
    let received = r#"ocellus_jobs_received_total{op="filter"}"#;
    assert_eq!(value(&after, received), Some(1.0));
    // Every FILTER job went through the queue (the bad image fails on
    // the worker, where it is decoded).
    for histogram in ["ocellus_job_queue_wait_seconds", "ocellus_job_run_seconds"] {
        let count = format!(r#"{histogram}_count{{op="filter"}}"#);
        assert_eq!(value(&after, &count), Some(3.0), "{after}");
        let inf = format!(r#"{histogram}_bucket{{le="+Inf",op="filter"}}"#);
        assert_eq!(value(&after, &inf), Some(3.0), "{after}");
    }
    let capacity = state.config.queue_capacity as f64;
    assert_eq!(value(&after, "ocellus_queue_capacity"), Some(capacity));
    assert_eq!(value(&after, "ocellus_workers"), Some(1.0));
    assert_eq!(value(&after, "ocellus_workers_busy"), Some(0.0));
    assert_eq!(value(&after, "ocellus_queue_length"), Some(0.0));
    assert_eq!(value(&after, r#"ocellus_peers{state="alive"}"#), Some(0.0));
    assert_eq!(value(&after, "ocellus_jobs_forwarded_total"), Some(0.0));

    state.queue.shut_down();
    for t in threads {
        t.join().unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_face_store_is_read_at_scrape_time() {
    let store = ocellus_store::Store::open_in_memory().unwrap();
    let service = RecognitionService::with_store(store, RecognitionSettings::default()).unwrap();
    let (w, h) = (60, 70);
    let gray = Image::from_vec(
        w,
        h,
        PixelLayout::Gray,
        ocellus_testdata::noise_bytes(7, (w * h) as usize),
    )
    .unwrap();
    let crop = FaceCrop {
        gray,
        source_hash: [7; 32],
        embedding: None,
    };
    service.enroll("ada", &[crop]).unwrap();
    let state = filter_state_with(Some(service.clone()));
    let threads = start_workers(&state);
    run_jobs(&state).await;
    let _request = state.metrics.http_request();
    let text = state.metrics.render(state.gauges());
    assert_eq!(value(&text, "ocellus_people_enrolled"), Some(1.0));
    assert_eq!(value(&text, "ocellus_faces_enrolled"), Some(1.0));
    assert!(value(&text, "ocellus_model_generation").is_some_and(|g| g >= 1.0));
    promtool_check(&text);

    state.queue.shut_down();
    for t in threads {
        t.join().unwrap();
    }
    service.stop();
}
