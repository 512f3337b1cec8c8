//! Request handling, independent of the transport: a TCP connection (and
//! next, an HTTP route) hands each request here as an [`Incoming`] with
//! its [`Caller`] and [`Responder`], and it is answered through them.
//!
//! One module per operation, each with the same shape (after mini-redis'
//! `cmd/`): `parse` turns the request into a job (checking everything a
//! client controls before any work starts), the job's `run` does the work
//! on a worker, and the answer goes back through the responder. [`handle`]
//! decides where a request runs: here, or (in a mesh) on a peer.
//!
//! Invariants: every request gets exactly one terminal event; a request is
//! parsed once, on the node that runs it (routing reads only the op and
//! whether it carries crops); a request that came from a peer is never
//! forwarded again.

mod cost;
mod detect;
mod enroll;
mod filter;
mod people;
mod recognize;
mod status;

use std::sync::Arc;

use bytes::Bytes;
use ocellus_protocol::{ErrorCode, ErrorEvent, Op};
use ocellus_recognize::Algorithm;
use tracing::info;

use crate::call::{Caller, Incoming, Responder, error};
use crate::exec::{Rejected, Task, Work};
use crate::mesh::handover::{self, Unplaced};
use crate::mesh::route::{self, Route};
use crate::mesh::rule::Load;
use crate::state::State;

/// What a photo without a face is told (the original system's words).
const NO_FACE: &str = "no face found";

/// Handles one request: STATUS at once, others here or on a peer.
pub(crate) fn handle(state: &Arc<State>, request: Incoming, caller: &Caller, responder: Responder) {
    // Counted by op and outcome when answered, wherever it runs.
    let responder = state.metrics.meter(&request, responder);
    if request.op == Op::Status {
        return status::answer(state, responder);
    }
    if let Some(mesh) = &state.mesh {
        if request.is_forwarded() {
            // From a peer: run here (never forwarded twice), unless this
            // node would be slower than the peer expected.
            if route::should_refuse(local_load(state), &request.header) {
                let stats = state.queue.stats();
                return responder.busy(stats.queue_length, state.config.queue_capacity as u64);
            }
        } else {
            let here = runs_here(state, &request);
            if let Route::Peer { peer, max_wait_s } = route::route(
                mesh,
                local_load(state),
                request.op,
                request.has_crops(),
                here,
                &[],
            ) {
                let state = state.clone();
                let caller = caller.clone();
                tokio::spawn(async move {
                    let Some(mesh) = state.mesh.clone() else {
                        return;
                    };
                    let outcome = handover::hand_over(
                        &mesh,
                        &state.node_id,
                        || local_load(&state),
                        || here && !state.queue.is_shutting_down(),
                        request,
                        &caller,
                        responder,
                        peer,
                        max_wait_s,
                    )
                    .await;
                    if let Err(unplaced) = outcome {
                        run_after_forwarding(&state, unplaced, &caller, here);
                    }
                });
                return;
            }
        }
    }
    run_here(&state.clone(), request, caller, responder);
}

/// A request no peer ran: here if this node can, or an error.
fn run_after_forwarding(state: &Arc<State>, unplaced: Unplaced, caller: &Caller, here: bool) {
    let Unplaced {
        request,
        responder,
        tried,
    } = unplaced;
    if here && !state.queue.is_shutting_down() {
        info!(
            request = request.request_id,
            "running here after forwarding failed"
        );
        return run_here(state, request, caller, responder);
    }
    let code = if state.queue.is_shutting_down() {
        ErrorCode::ShuttingDown
    } else {
        ErrorCode::PeerUnavailable
    };
    responder.error(error(
        code,
        format!("no node could run the request: {tried} peer(s) tried and this node cannot run it"),
    ));
}

/// Whether this node can run the request itself (it has the roles).
pub(crate) fn runs_here(state: &State, request: &Incoming) -> bool {
    let roles = &state.roles;
    match request.op {
        Op::Filter => roles.filter,
        Op::Detect => roles.detection.is_some(),
        Op::Enroll | Op::Recognize if request.has_crops() => roles.recognition.is_some(),
        Op::Enroll | Op::Recognize => roles.detection.is_some() && roles.link.is_some(),
        Op::People | Op::RemovePerson => roles.recognition.is_some() || roles.link.is_some(),
        _ => true,
    }
}

/// This node's load as the forwarding rule sees it.
pub(crate) fn local_load(state: &State) -> Load {
    let stats = state.queue.stats();
    Load {
        queue_length: stats.queue_length,
        busy: stats.busy,
        workers: state.config.workers as u64,
        mean_job_s: stats.mean_job_s,
    }
}

/// Runs a request on this node: parses it into a job and queues it, or
/// answers it directly (PEOPLE, REMOVE_PERSON).
pub(crate) fn run_here(
    state: &Arc<State>,
    request: Incoming,
    caller: &Caller,
    responder: Responder,
) {
    let parsed: Result<Box<dyn Work>, ErrorEvent> = match request.op {
        Op::Filter => filter::parse(state, &request).map(|j| Box::new(j) as Box<dyn Work>),
        Op::Detect => detect::parse(state, &request).map(|j| Box::new(j) as Box<dyn Work>),
        Op::Enroll => enroll::parse(state, &request),
        Op::Recognize => recognize::parse(state, &request),
        Op::People | Op::RemovePerson => return people::handle(state, &request, responder),
        op => Err(error(
            ErrorCode::UnknownOp,
            format!("{op:?} is not a request"),
        )),
    };
    match parsed {
        Ok(work) => enqueue(state, work, request, caller, responder),
        Err(e) => responder.error(e),
    }
}

/// Puts a job in the queue, or answers BUSY / `shutting_down`.
fn enqueue(
    state: &State,
    work: Box<dyn Work>,
    request: Incoming,
    caller: &Caller,
    responder: Responder,
) {
    let request_id = responder.request_id();
    let task = Task {
        work,
        request,
        responder,
    };
    if let Err((rejected, task)) = state.queue.push(
        &caller.client,
        request_id,
        caller.cancelled.clone(),
        caller.sink.clone(),
        task,
    ) {
        match rejected {
            Rejected::Full {
                queue_length,
                capacity,
            } => task.responder.busy(queue_length, capacity),
            Rejected::ClientFull { queued, per_client } => {
                task.responder.busy_client(queued, per_client)
            }
            Rejected::ShuttingDown => task
                .responder
                .error(error(ErrorCode::ShuttingDown, "server shutting down")),
        }
    }
}

/// The images of a request (shared slices of its payload), checked
/// against the limit; at least one.
fn images(state: &State, request: &Incoming) -> Result<Vec<Bytes>, ErrorEvent> {
    let images = frame_images(request)?;
    let max = state.config.max_images;
    if images.len() > max {
        return Err(error(
            ErrorCode::TooManyImages,
            format!("{} images; the limit is {max}", images.len()),
        ));
    }
    if images.is_empty() {
        return Err(error(ErrorCode::BadRequest, "the request carries no image"));
    }
    Ok(images)
}

/// The payload cut as the header's `images` lists (shared, not copied).
fn frame_images(request: &Incoming) -> Result<Vec<Bytes>, ErrorEvent> {
    let ranges = ocellus_protocol::image_ranges(&request.header, request.payload.len())
        .map_err(|e| error(ErrorCode::BadRequest, e.to_string()))?;
    Ok(ranges
        .into_iter()
        .map(|r| request.payload.slice(r))
        .collect())
}

/// The node-to-node form (face crops): this node must have the
/// recognition role, and the crop entries must match the images (`expected`
/// of them: one per crop, plus its chip if it has one).
fn check_crops(state: &State, expected: usize, images: usize) -> Result<(), ErrorEvent> {
    if state.roles.recognition.is_none() {
        return Err(error(
            ErrorCode::RoleUnavailable,
            "this node has no recognition role (face crops sent to it)",
        ));
    }
    if expected != images {
        return Err(error(
            ErrorCode::BadRequest,
            format!("the crop entries describe {expected} images, the request has {images}"),
        ));
    }
    Ok(())
}

/// A request's `resnet` tolerance, if valid.
fn check_tolerance(tolerance: Option<f64>) -> Result<Option<f64>, ErrorEvent> {
    use ocellus_recognize::resnet::MAX_TOLERANCE;
    match tolerance {
        Some(t) if !(0.0..=MAX_TOLERANCE).contains(&t) => Err(error(
            ErrorCode::BadRequest,
            format!("tolerance must be between 0 and {MAX_TOLERANCE} (got {t})"),
        )),
        t => Ok(t),
    }
}

/// A header that does not parse (`what`: how the message names the op).
fn bad_header(what: &str, e: serde_json::Error) -> ErrorEvent {
    error(ErrorCode::BadRequest, format!("{what} header: {e}"))
}

/// The algorithm a request names, if valid.
fn parse_algorithm(name: Option<&str>) -> Result<Option<Algorithm>, ErrorEvent> {
    match name {
        None => Ok(None),
        Some(n) => Algorithm::from_name(n).map(Some).ok_or_else(|| {
            error(
                ErrorCode::BadRequest,
                format!("unknown algorithm {n:?}: use eigen, fisher, lbph or resnet"),
            )
        }),
    }
}

#[cfg(test)]
mod metered_tests;

#[cfg(test)]
pub(crate) mod tests {
    //! A request driven through the handler with no socket: the caller and
    //! responder record what they are sent. The state and request makers
    //! serve other modules' tests too (`crate::metrics`).

    use std::net::SocketAddr;
    use std::time::Instant;

    use ocellus_codec::{EncodeOptions, ImageFormat, encode};
    use ocellus_imaging::{Image, PixelLayout};
    use ocellus_protocol::message::{FilterRequest, FilterResult, from_header, to_header};
    use ocellus_protocol::{RoleSet, StatusReport};
    use serde_json::Value;

    use super::*;
    use crate::call::Outstanding;
    use crate::call::testing::{Recorder, caller, responder};
    use crate::config::NodeConfig;
    use crate::exec::JobQueue;
    use crate::exec::worker::{self, Workers};
    use crate::roles::Roles;

    /// A node with the filter role and one worker (not started).
    pub(crate) fn filter_state() -> Arc<State> {
        filter_state_with(None)
    }

    /// The same, with this recognition role too.
    pub(crate) fn filter_state_with(
        recognition: Option<Arc<crate::roles::recognition::RecognitionService>>,
    ) -> Arc<State> {
        let mut config = NodeConfig::new(SocketAddr::from(([127, 0, 0, 1], 0)), RoleSet::ALL);
        config.roles = RoleSet::of(&[ocellus_protocol::Role::Filter]);
        config.mesh = None;
        config.workers = 1;
        let roles = Roles {
            decode_limits: config.decode_limits,
            filter: true,
            detection: None,
            link: None,
            recognition,
            models: None,
            default_algorithm: ocellus_recognize::Algorithm::Lbph,
        };
        Arc::new(State {
            queue: Arc::new(JobQueue::new(config.queue_capacity, 1)),
            roles: Arc::new(roles),
            config,
            node_id: "test-node".into(),
            mesh: None,
            started: Instant::now(),
            outstanding: Arc::new(Outstanding::default()),
            access: Arc::new(crate::access::Access::new(None, None)),
            metrics: Arc::new(crate::metrics::Metrics::new()),
            budget: crate::budget::MemoryBudget::new(1 << 30),
            connections: crate::admission::Connections::new(16, 16),
        })
    }

    /// The state's workers, started.
    pub(crate) fn start_workers(state: &State) -> Vec<std::thread::JoinHandle<()>> {
        worker::spawn(
            state.config.workers,
            Arc::new(Workers {
                queue: state.queue.clone(),
                roles: state.roles.clone(),
                node_id: state.node_id.clone(),
                runtime: tokio::runtime::Handle::current(),
                metrics: state.metrics.clone(),
            }),
        )
        .unwrap()
    }

    /// A FILTER request of `ops` on `images` (PNG out).
    pub(crate) fn filter_request(id: u64, ops: &str, images: &[Vec<u8>]) -> Incoming {
        let mut header = to_header(&FilterRequest {
            ops: ops.into(),
            format: Some("png".into()),
            quality: None,
        });
        let lengths: Vec<u64> = images.iter().map(|i| i.len() as u64).collect();
        header.insert(ocellus_protocol::field::IMAGES.into(), Value::from(lengths));
        Incoming {
            op: Op::Filter,
            request_id: id,
            header,
            payload: images.concat().into(),
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn requests_run_and_fail_through_the_handler_without_a_socket() {
        let state = filter_state();
        let threads = start_workers(&state);
        let recorder = Arc::new(Recorder::default());
        let who = caller(&recorder);
        let image = Image::from_vec(8, 6, PixelLayout::Gray, vec![100; 48]).unwrap();
        let png = encode(&image, ImageFormat::Png, &EncodeOptions::default()).unwrap();

        handle(
            &state,
            filter_request(1, "invert,rotate=90", std::slice::from_ref(&png)),
            &who,
            responder(&recorder, 1),
        );
        let result = recorder.terminal(1).await;
        assert_eq!(result.op, Op::Result);
        let header: FilterResult = from_header(&result.header).unwrap();
        assert_eq!((header.width, header.height), (6, 8));
        assert_eq!(header.images, vec![result.payload.len() as u64]);
        assert_eq!(result.header["node_id"], "test-node");
        let (decoded, _) = ocellus_codec::decode(&result.payload, &Default::default()).unwrap();
        assert!(decoded.as_bytes().iter().all(|&v| v == 155));
        // Its progress came first, in order.
        let ops: Vec<Op> = recorder
            .events()
            .iter()
            .filter(|e| e.request_id == 1)
            .map(|e| e.op)
            .collect();
        assert_eq!(ops.first(), Some(&Op::Accepted));
        assert_eq!(ops[ops.len() - 2], Op::Started);

        let cases: [(u64, Incoming, ErrorCode); 4] = [
            (
                2,
                filter_request(2, "blur=nope", std::slice::from_ref(&png)),
                ErrorCode::BadOps,
            ),
            (
                3,
                filter_request(3, "invert", &[png.clone(), png.clone()]),
                ErrorCode::BadRequest,
            ),
            (
                4,
                filter_request(4, "invert", &[b"not an image".to_vec()]),
                ErrorCode::BadImage,
            ),
            (
                5,
                Incoming {
                    op: Op::Detect,
                    ..filter_request(5, "invert", std::slice::from_ref(&png))
                },
                ErrorCode::RoleUnavailable,
            ),
        ];
        for (id, request, code) in cases {
            handle(&state, request, &who, responder(&recorder, id));
            let answer = recorder.terminal(id).await;
            assert_eq!(answer.op, Op::Error);
            let e: ErrorEvent = from_header(&answer.header).unwrap();
            assert_eq!(e.code, code, "request {id}: {}", e.message);
        }

        let status = Incoming {
            op: Op::Status,
            request_id: 6,
            header: Default::default(),
            payload: Bytes::new(),
        };
        handle(&state, status, &who, responder(&recorder, 6));
        let report: StatusReport = from_header(&recorder.terminal(6).await.header).unwrap();
        assert_eq!((report.jobs_done, report.jobs_failed), (1, 1));
        assert_eq!(report.node_id, "test-node");

        state.queue.shut_down();
        for t in threads {
            t.join().unwrap();
        }
    }
}
