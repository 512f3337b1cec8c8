//! One client connection: a reader that turns frames into jobs, and a
//! writer that sends events back.
//!
//! All events of a connection go through one FIFO channel to the writer, so
//! a client sees them in the order they happened (ACCEPTED, POSITION...,
//! STARTED, then RESULT).
//!
//! Backpressure: every request takes one of `max_in_flight` permits and
//! reserves a slot in that channel for its terminal event before it is
//! handled; the permit comes back only when the terminal event has been
//! written to the socket. A client that sends without reading therefore
//! stops being read from; nothing is buffered without bound. Progress
//! events use the channel's spare room and are dropped when it is full
//! (the next POSITION supersedes them).

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ocellus_codec::ImageFormat;
use ocellus_imaging::pipeline::Pipeline;
use ocellus_protocol::face::{
    CropInfo, DetectRequest, EnrollRequest, PeopleResult, RecognizeRequest, RemovePersonRequest,
    RemovePersonResult,
};
use ocellus_protocol::message::{Busy, ErrorEvent, FilterRequest, Started, from_header, to_header};
use ocellus_protocol::{Decoded, Frame, Op, PROTOCOL_VERSION, decode_frame};
use serde_json::{Map, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::net::tcp::OwnedWriteHalf;
use tokio::sync::mpsc::OwnedPermit;
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore, mpsc};
use tracing::{debug, warn};

use crate::faces::{RecognizerLink, parse_algorithm, parse_hash};
use crate::forward;
use crate::job::{Images, Work, error};
use crate::queue::{JobSink, Progress, Rejected};
use crate::server::Shared;

/// A job as the queue holds it: the work and whom to answer.
pub(crate) struct Task {
    pub work: Work,
    pub responder: Responder,
    /// The request as it came, less its payload (which is in `work`): to
    /// hand the job to a peer when this node leaves.
    pub request: Option<(Op, Map<String, Value>)>,
}

/// An encoded frame on its way to the socket.
struct Outgoing {
    bytes: Vec<u8>,
    /// Released once the frame is written: the request is over.
    permit: Option<OwnedSemaphorePermit>,
    /// Close the connection after writing this frame.
    close: bool,
}

/// Sends the one terminal event of a request. Dropped without answering
/// (a bug, or a worker that died), it answers ERROR `internal`.
pub(crate) struct Responder {
    request_id: u64,
    /// The channel slot reserved for the terminal event.
    slot: Option<OwnedPermit<Outgoing>>,
    permit: Option<OwnedSemaphorePermit>,
    in_flight: Option<Arc<Mutex<HashSet<u64>>>>,
    answered: bool,
}

impl Responder {
    /// Sends `op` (RESULT, ERROR or BUSY) with this header and payload.
    pub(crate) fn send(
        mut self,
        op: Op,
        header: serde_json::Map<String, serde_json::Value>,
        payload: Vec<u8>,
    ) {
        self.answer(op, header, payload);
    }

    /// Sends an ERROR.
    pub(crate) fn error(self, e: ErrorEvent) {
        self.send(Op::Error, to_header(&e), Vec::new());
    }

    fn answer(
        &mut self,
        op: Op,
        header: serde_json::Map<String, serde_json::Value>,
        payload: Vec<u8>,
    ) {
        self.answered = true;
        if let Some(set) = &self.in_flight {
            set.lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(&self.request_id);
        }
        let bytes = Frame::new(op, self.request_id, header, payload).to_bytes();
        if let Some(slot) = self.slot.take() {
            // The slot was reserved when the request arrived: this never
            // blocks, and is a no-op when the writer is gone.
            slot.send(Outgoing {
                bytes,
                permit: self.permit.take(),
                close: false,
            });
        }
    }
}

impl Drop for Responder {
    fn drop(&mut self) {
        if !self.answered {
            let e = error("internal", "the job ended without a result");
            self.answer(Op::Error, to_header(&e), Vec::new());
        }
    }
}

/// Where the queue sends a connection's progress events.
struct ProgressSink {
    tx: mpsc::Sender<Outgoing>,
}

impl JobSink for ProgressSink {
    fn progress(&self, request_id: u64, progress: Progress) {
        let (op, header) = match progress {
            Progress::Accepted(a) => (Op::Accepted, to_header(&a)),
            Progress::Position(p) => (Op::Position, to_header(&p)),
            Progress::Started { job } => (Op::Started, to_header(&Started { job })),
            Progress::Relayed { op, header } => (op, header),
        };
        let bytes = Frame::new(op, request_id, header, Vec::new()).to_bytes();
        // A slow reader loses progress events, never results.
        let _ = self.tx.try_send(Outgoing {
            bytes,
            permit: None,
            close: false,
        });
    }
}

/// Progress events that may wait for a slow reader before new ones are dropped.
const PROGRESS_ROOM: usize = 64;

/// Serves one connection until the client leaves or is closed.
pub(crate) async fn serve(stream: TcpStream, shared: Arc<Shared>) {
    let peer = stream.peer_addr().ok();
    let _ = stream.set_nodelay(true);
    let (mut reader, writer) = stream.into_split();
    let cfg = &shared.config;
    let permits = Arc::new(Semaphore::new(cfg.max_in_flight));
    shared.register(&permits);
    // Room for every in-flight request's terminal event, one closing
    // ERROR, and progress events.
    let (tx, rx) = mpsc::channel(cfg.max_in_flight + 1 + PROGRESS_ROOM);
    let answered = Arc::new(Notify::new());
    let write_timeout = cfg.idle_timeout;
    let writer_task = tokio::spawn(write_loop(writer, rx, write_timeout, answered.clone()));

    let conn = Conn {
        shared: shared.clone(),
        permits: permits.clone(),
        out: tx.clone(),
        answered,
        sink: Arc::new(ProgressSink { tx }),
        cancelled: Arc::new(AtomicBool::new(false)),
        in_flight: Arc::new(Mutex::new(HashSet::new())),
    };
    let reason = conn.read_loop(&mut reader).await;
    debug!(?peer, reason, "connection ends");
    // The client is gone (or we closed on it): drop its waiting jobs and
    // discard the results of running ones.
    conn.cancelled.store(true, Ordering::Release);
    shared.queue.purge_cancelled();
    drop(conn);
    let _ = writer_task.await;
}

/// A connection's state, shared by its reader and the tasks running its
/// requests on peers.
#[derive(Clone)]
pub(crate) struct Conn {
    shared: Arc<Shared>,
    permits: Arc<Semaphore>,
    out: mpsc::Sender<Outgoing>,
    /// Signalled by the writer each time a request's last event is written.
    answered: Arc<Notify>,
    sink: Arc<ProgressSink>,
    cancelled: Arc<AtomicBool>,
    in_flight: Arc<Mutex<HashSet<u64>>>,
}

impl Conn {
    /// Reads and handles frames; returns why it stopped: "eof" (client
    /// left), "closed" (we closed after an ERROR), or a read error.
    ///
    /// Two clocks: a frame whose first byte has arrived must be complete
    /// within `frame_timeout` (however slowly the bytes trickle in), and a
    /// connection with nothing in flight must not stay silent longer than
    /// `idle_timeout` after its last request was answered.
    async fn read_loop(&self, reader: &mut tokio::net::tcp::OwnedReadHalf) -> &'static str {
        let cfg = &self.shared.config;
        let mut buf: Vec<u8> = Vec::with_capacity(64 * 1024);
        let mut frame_deadline: Option<tokio::time::Instant> = None;
        let mut idle_since = tokio::time::Instant::now();
        loop {
            match decode_frame(&buf, &cfg.frame_limits) {
                Ok(Decoded::Frame(frame, used)) => {
                    buf.drain(..used);
                    frame_deadline = None;
                    self.handle(frame).await;
                    continue;
                }
                Ok(Decoded::NeedMore(_)) => {}
                Err(e) => {
                    warn!(error = %e, "closing connection");
                    self.close_with(error(e.code(), e.to_string())).await;
                    return "closed";
                }
            }
            if !buf.is_empty() && frame_deadline.is_none() {
                frame_deadline = Some(tokio::time::Instant::now() + cfg.frame_timeout);
            }
            let in_flight = self.permits.available_permits() < cfg.max_in_flight;
            if in_flight {
                idle_since = tokio::time::Instant::now();
            }
            let deadline = match frame_deadline {
                Some(d) => d,
                None if in_flight => tokio::time::Instant::now() + cfg.idle_timeout,
                None => idle_since + cfg.idle_timeout,
            };
            let n = tokio::select! {
                read = reader.read_buf(&mut buf) => read,
                // A request was answered: re-evaluate the idle clock.
                _ = self.answered.notified(), if in_flight => continue,
                _ = tokio::time::sleep_until(deadline) => {
                    if frame_deadline.is_some() {
                        self.close_with(error("timeout", format!(
                            "incomplete frame: not received within {} s", cfg.frame_timeout.as_secs()
                        ))).await;
                        return "closed";
                    }
                    if self.permits.available_permits() < cfg.max_in_flight {
                        continue; // work in flight: not idle
                    }
                    self.close_with(error("timeout", format!(
                        "idle connection: nothing received for {} s", cfg.idle_timeout.as_secs()
                    ))).await;
                    return "closed";
                }
            };
            match n {
                Ok(0) => return "eof",
                Ok(_) => idle_since = tokio::time::Instant::now(),
                Err(_) => return "read error",
            }
        }
    }

    /// Sends a connection-level ERROR (request id 0) and closes.
    async fn close_with(&self, e: ErrorEvent) {
        let bytes = Frame::new(Op::Error, 0, to_header(&e), Vec::new()).to_bytes();
        let _ = self
            .out
            .send(Outgoing {
                bytes,
                permit: None,
                close: true,
            })
            .await;
    }

    async fn handle(&self, frame: Frame) {
        // Backpressure: wait for a free slot before taking on more work.
        let Ok(permit) = self.permits.clone().acquire_owned().await else {
            return;
        };
        let Ok(slot) = self.out.clone().reserve_owned().await else {
            return; // the writer is gone
        };
        let mut responder = Responder {
            request_id: frame.request_id,
            slot: Some(slot),
            permit: Some(permit),
            in_flight: None,
            answered: false,
        };
        if frame.version != PROTOCOL_VERSION {
            return responder.error(error(
                "unsupported_version",
                format!(
                    "protocol version {} is not supported (this node speaks {PROTOCOL_VERSION})",
                    frame.version
                ),
            ));
        }
        let op = match Op::from_code(frame.op) {
            Some(op) if op.is_request() => op,
            _ => {
                return responder.error(error(
                    "unknown_op",
                    format!("unknown operation code {}", frame.op),
                ));
            }
        };
        {
            let mut set = self.in_flight.lock().unwrap_or_else(|p| p.into_inner());
            if !set.insert(frame.request_id) {
                return responder.error(error(
                    "duplicate_request_id",
                    format!(
                        "request id {} is already in flight on this connection",
                        frame.request_id
                    ),
                ));
            }
        }
        responder.in_flight = Some(self.in_flight.clone());
        if op == Op::Status {
            let report = self.shared.status_report();
            return responder.send(Op::Result, to_header(&report), Vec::new());
        }
        if let Some(mesh) = &self.shared.mesh {
            if frame.header.contains_key(forward::VIA) {
                // From a peer: run here (never forwarded twice), unless
                // this node would be slower than the peer expected.
                if forward::should_refuse(&self.shared, &frame.header) {
                    let stats = self.shared.queue.stats();
                    let busy = Busy {
                        queue_length: stats.queue_length,
                        capacity: self.shared.config.queue_capacity as u64,
                    };
                    return responder.send(Op::Busy, to_header(&busy), Vec::new());
                }
            } else {
                let here = forward::runs_here(&self.shared, op, &frame.header);
                if let forward::Route::Peer { peer, max_wait_s } =
                    forward::route(&self.shared, mesh, op, &frame.header, here, &[])
                {
                    let job = forward::Handover {
                        op,
                        request_id: frame.request_id,
                        header: frame.header,
                        payload: frame.payload,
                        sink: self.sink.clone(),
                        cancelled: self.cancelled.clone(),
                    };
                    let here = here.then(|| self.clone());
                    tokio::spawn(forward::hand_over(
                        self.shared.clone(),
                        job,
                        responder,
                        peer,
                        max_wait_s,
                        here,
                    ));
                    return;
                }
            }
        }
        self.run_here(op, frame, responder);
    }

    /// Runs a request on this node.
    pub(crate) fn run_here(&self, op: Op, frame: Frame, responder: Responder) {
        let request = Some((op, frame.header.clone()));
        match op {
            Op::Filter if !self.shared.config.roles.filter => {
                responder.error(error("role_unavailable", "this node has no filter role"))
            }
            Op::Filter => self.filter(frame, responder, request),
            Op::Detect | Op::Enroll | Op::Recognize => match self.face_work(op, frame) {
                Ok(work) => self.enqueue(work, responder, request),
                Err(e) => responder.error(e),
            },
            Op::People | Op::RemovePerson => self.people(op, frame, responder),
            _ => responder.error(error("unknown_op", format!("{op:?} is not a request"))),
        }
    }

    /// The images of a request, checked against the limit.
    fn images(&self, frame: Frame) -> Result<Images, ErrorEvent> {
        let lengths: Vec<usize> = frame
            .images()
            .map_err(|e| error("bad_request", e.to_string()))?
            .iter()
            .map(|i| i.len())
            .collect();
        let max = self.shared.config.max_images;
        if lengths.len() > max {
            return Err(error(
                "too_many_images",
                format!("{} images; the limit is {max}", lengths.len()),
            ));
        }
        if lengths.is_empty() {
            return Err(error("bad_request", "the request carries no image"));
        }
        Ok(Images {
            payload: frame.payload,
            lengths,
        })
    }

    /// Turns a DETECT, ENROLL or RECOGNIZE request into a job, if this
    /// node has the role it needs.
    fn face_work(&self, op: Op, frame: Frame) -> Result<Work, ErrorEvent> {
        let ctx = &self.shared.context;
        let bad = |e: serde_json::Error| error("bad_request", format!("{op:?} header: {e}"));
        let detection = || {
            ctx.detection
                .as_ref()
                .ok_or_else(|| error("role_unavailable", "this node has no detection role"))
        };
        let with_crops = |crops: &Option<Vec<CropInfo>>, images: usize| match crops {
            None => Ok(false),
            Some(_) if ctx.recognition.is_none() => Err(error(
                "role_unavailable",
                "this node has no recognition role (face crops sent to it)",
            )),
            Some(c) if c.len() != images => Err(error(
                "bad_request",
                format!("{} crop entries for {images} images", c.len()),
            )),
            Some(_) => Ok(true),
        };
        match op {
            Op::Detect => {
                let request: DetectRequest = from_header(&frame.header).map_err(bad)?;
                let params = detection()?.resolve(&request.overrides)?;
                let images = self.images(frame)?;
                Ok(Work::Detect { images, params })
            }
            Op::Enroll => {
                let request: EnrollRequest = from_header(&frame.header).map_err(bad)?;
                ocellus_store::validate_name(&request.name)
                    .map_err(|e| error("bad_name", e.to_string()))?;
                let images = self.images(frame)?;
                if with_crops(&request.crops, images.lengths.len())? {
                    let hashes = request
                        .crops
                        .unwrap_or_default()
                        .iter()
                        .map(|c| c.source_hash.as_deref().and_then(parse_hash))
                        .collect();
                    return Ok(Work::EnrollCrops {
                        name: request.name,
                        crops: images,
                        hashes,
                    });
                }
                Ok(Work::Enroll {
                    name: request.name,
                    params: detection()?.resolve(&request.overrides)?,
                    images,
                    largest_face: request.largest_face,
                })
            }
            _ => {
                let request: RecognizeRequest = from_header(&frame.header).map_err(bad)?;
                let algorithm = parse_algorithm(request.algorithm.as_deref())?;
                let images = self.images(frame)?;
                if with_crops(&request.crops, images.lengths.len())? {
                    return Ok(Work::RecognizeCrops {
                        crops: images,
                        algorithm,
                    });
                }
                Ok(Work::Recognize {
                    params: detection()?.resolve(&request.overrides)?,
                    images,
                    algorithm,
                })
            }
        }
    }

    /// PEOPLE and REMOVE_PERSON: answered by the recognition role, here or
    /// on the recognition node this node forwards to.
    fn people(&self, op: Op, frame: Frame, responder: Responder) {
        let ctx = &self.shared.context;
        let link = match (&ctx.recognition, &ctx.link) {
            (Some(service), _) => RecognizerLink::Local(service.clone()),
            (None, Some(link)) => link.clone(),
            (None, None) => {
                return responder.error(error(
                    "role_unavailable",
                    "this node has no recognition role",
                ));
            }
        };
        let removal = if op == Op::RemovePerson {
            match from_header::<RemovePersonRequest>(&frame.header) {
                Ok(r) => Some(r.name),
                Err(e) => {
                    return responder
                        .error(error("bad_request", format!("REMOVE_PERSON header: {e}")));
                }
            }
        } else {
            None
        };
        tokio::spawn(async move {
            let answer = match removal {
                None => link
                    .people()
                    .await
                    .map(|people| to_header(&PeopleResult { people })),
                Some(name) => link.remove(name.clone()).await.map(|removed_faces| {
                    to_header(&RemovePersonResult {
                        name,
                        removed_faces,
                    })
                }),
            };
            match answer {
                Ok(header) => responder.send(Op::Result, header, Vec::new()),
                Err(e) => responder.error(e),
            }
        });
    }

    fn filter(&self, frame: Frame, responder: Responder, replay: Option<(Op, Map<String, Value>)>) {
        let cfg = &self.shared.config;
        let request: FilterRequest = match from_header(&frame.header) {
            Ok(r) => r,
            Err(e) => return responder.error(error("bad_request", format!("FILTER header: {e}"))),
        };
        let pipeline: Pipeline = match request.ops.parse() {
            Ok(p) => p,
            Err(e) => return responder.error(error("bad_ops", e.to_string())),
        };
        let format = match request.format.as_deref().map(ImageFormat::from_name) {
            None => None,
            Some(Some(f)) if f.can_encode() => Some(f),
            Some(_) => {
                return responder.error(error("bad_request", "format must be jpeg, png or webp"));
            }
        };
        let images = match frame.images() {
            Ok(images) => images.len(),
            Err(e) => return responder.error(error("bad_request", e.to_string())),
        };
        if images > cfg.max_images {
            return responder.error(error(
                "too_many_images",
                format!("{images} images; the limit is {}", cfg.max_images),
            ));
        }
        if images != 1 {
            return responder.error(error(
                "bad_request",
                format!("FILTER takes one image, got {images}"),
            ));
        }
        let work = Work::Filter {
            pipeline,
            format,
            quality: request.quality.unwrap_or(90).clamp(1, 100),
            image: frame.payload,
        };
        self.enqueue(work, responder, replay);
    }

    /// Puts a job in the queue, or answers BUSY / `shutting_down`.
    fn enqueue(&self, work: Work, responder: Responder, request: Option<(Op, Map<String, Value>)>) {
        let request_id = responder.request_id;
        let task = Task {
            work,
            responder,
            request,
        };
        if let Err((rejected, task)) = self.shared.queue.push(
            request_id,
            self.cancelled.clone(),
            self.sink.clone() as Arc<dyn JobSink>,
            task,
        ) {
            match rejected {
                Rejected::Full {
                    queue_length,
                    capacity,
                } => task.responder.send(
                    Op::Busy,
                    to_header(&Busy {
                        queue_length,
                        capacity,
                    }),
                    Vec::new(),
                ),
                Rejected::ShuttingDown => task
                    .responder
                    .error(error("shutting_down", "server shutting down")),
            }
        }
    }
}

async fn write_loop(
    mut writer: OwnedWriteHalf,
    mut rx: mpsc::Receiver<Outgoing>,
    write_timeout: Duration,
    answered: Arc<Notify>,
) {
    while let Some(out) = rx.recv().await {
        match tokio::time::timeout(write_timeout, writer.write_all(&out.bytes)).await {
            Ok(Ok(())) => {}
            // The client stopped reading or left: give up on it.
            _ => break,
        }
        if out.permit.is_some() {
            drop(out.permit);
            answered.notify_one();
        }
        if out.close {
            break;
        }
    }
    let _ = writer.shutdown().await;
}
