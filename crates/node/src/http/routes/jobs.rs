//! The job routes (see [`crate::http::jobs`] for the table they share):
//! submit, follow (Server-Sent Events), fetch the result once, cancel.
//!
//! Invariant: a request the node refuses outright (it does not parse, or
//! the queue is full) is answered at submission with its error, never
//! turned into a job that can only fail; every stream ends with exactly
//! one `result` or `error` event.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::extract::{Path, Request, State as AxumState};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures_util::Stream;
use ocellus_protocol::Op;
use ocellus_protocol::message::{FilterResult, from_header};
use serde::Serialize;
use serde_json::{Value, json};

use crate::call::Progress;
use crate::http::auth::authorize;
use crate::http::bridge::{self, Built, JobLog, Reply};
use crate::http::error::{ApiError, ErrorBody, ErrorDetail, code};
use crate::http::input;
use crate::http::jobs::{Job, Missing};
use crate::http::reply::{content_type, error_of, respond, result_json};
use crate::http::{Api, ClientAddr};

/// How often an idle event stream gets a comment (keeps proxies from
/// closing it).
const KEEP_ALIVE: Duration = Duration::from_secs(15);

/// The op a job route names.
fn op_named(name: &str) -> Result<Op, ApiError> {
    Ok(match name {
        "filter" => Op::Filter,
        "detect" => Op::Detect,
        "recognize" => Op::Recognize,
        "enroll" => Op::Enroll,
        other => {
            return Err(ApiError::not_found(format!(
                "no job kind {other:?}: use filter, detect, recognize or enroll"
            )));
        }
    })
}

fn op_name(op: Op) -> &'static str {
    match op {
        Op::Filter => "filter",
        Op::Detect => "detect",
        Op::Recognize => "recognize",
        Op::Enroll => "enroll",
        _ => "other",
    }
}

/// A submitted job's addresses.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct Submitted {
    /// The job id.
    id: String,
    /// filter, detect, recognize or enroll.
    op: String,
    /// The job.
    location: String,
    /// Its Server-Sent Events.
    events: String,
    /// Its result, once.
    result: String,
}

/// `POST /v1/jobs/{op}`: submits a job; `202` with its id at once.
#[utoipa::path(post, path = "/v1/jobs/{op}", tag = "jobs",
    params(("op" = String, Path, description = "filter, detect, recognize or enroll; the query fields are those of the synchronous route (enroll: `name`)")),
    request_body(content_type = "image/*", description = "As for the synchronous route (or multipart/form-data)"),
    responses(
        (status = 202, description = "Accepted: follow `events`, fetch `result`", body = Submitted),
        (status = "4XX", body = ErrorBody),
        (status = "5XX", body = ErrorBody),
    ))]
pub(crate) async fn submit(
    AxumState(api): AxumState<Arc<Api>>,
    client: ClientAddr,
    Path(kind): Path<String>,
    request: Request,
) -> Result<Response, ApiError> {
    let op = op_named(&kind)?;
    let session = authorize(&api.state, request.headers(), Some(op), client.0).await?;
    let mut input = input::read(request, &api.state.budget).await?;
    input.need_images()?;
    let header = match op {
        Op::Filter => input::filter(&input)?,
        Op::Detect => input::detect(&input)?,
        Op::Recognize => input::recognize(&input)?,
        _ => input::enroll(&input, None)?,
    };
    let built = Built {
        op,
        header,
        images: input.images,
        held: input.held.take(),
    };
    let log = bridge::dispatch(&api.state, built, &session, client.0);
    if let Some(reply) = log.finished()
        && !log.was_accepted()
    {
        // Refused outright (bad request, BUSY): say so now.
        return Ok(respond(&api.state, op, reply, log.timing()));
    }
    let Some(job) = api.jobs.insert(op, session.principal(), log.clone()) else {
        bridge::cancel(&api.state, &log);
        return Err(ApiError::busy(
            crate::http::jobs::MAX_JOBS as u64,
            crate::http::jobs::MAX_JOBS as u64,
            crate::http::reply::retry_after(&api.state, api.state.queue.stats().queue_length),
        ));
    };
    let location = format!("/v1/jobs/{}", job.id);
    let body = Submitted {
        id: job.id.clone(),
        op: op_name(op).to_string(),
        events: format!("{location}/events"),
        result: format!("{location}/result"),
        location: location.clone(),
    };
    let mut response = (StatusCode::ACCEPTED, Json(body)).into_response();
    if let Ok(v) = HeaderValue::from_str(&location) {
        response.headers_mut().insert(header::LOCATION, v);
    }
    Ok(response)
}

/// The job `id` as the requester may see it.
async fn find(
    api: &Api,
    headers: &HeaderMap,
    client: ClientAddr,
    id: &str,
) -> Result<Arc<Job>, ApiError> {
    let session = authorize(&api.state, headers, None, client.0).await?;
    api.jobs.get(id, &session.principal()).map_err(|m| match m {
        Missing::Unknown => ApiError::not_found(format!("no job {id:?} here")),
        Missing::Gone => ApiError::new(
            StatusCode::GONE,
            code::GONE,
            format!("job {id:?} is gone: its result was fetched, or kept past its time (results are kept 10 minutes)"),
        ),
    })
}

/// Where a job stands.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct JobState {
    id: String,
    op: String,
    /// queued, running, done, failed or cancelled.
    state: String,
    /// The latest position event (while queued).
    #[schema(value_type = Option<Object>)]
    position: Option<Value>,
    /// Milliseconds in the queue and running so far.
    queue_ms: u64,
    run_ms: u64,
}

fn state_of(log: &JobLog) -> &'static str {
    match log.finished() {
        Some(r) if r.op == Op::Result => "done",
        Some(r) if r.header.get("code").and_then(Value::as_str) == Some(code::CANCELLED) => {
            "cancelled"
        }
        Some(_) => "failed",
        None => {
            let snap = log.snapshot(0);
            let started = snap.progress.iter().any(|p| match p {
                Progress::Started { .. } => true,
                Progress::Relayed { op, .. } => *op == Op::Started,
                _ => false,
            });
            if started { "running" } else { "queued" }
        }
    }
}

/// `GET /v1/jobs/{id}`: where the job stands.
#[utoipa::path(get, path = "/v1/jobs/{id}", tag = "jobs",
    params(("id" = String, Path)),
    responses((status = 200, body = JobState), (status = 404, body = ErrorBody), (status = 410, body = ErrorBody)))]
pub(crate) async fn show(
    AxumState(api): AxumState<Arc<Api>>,
    client: ClientAddr,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let job = find(&api, &headers, client, &id).await?;
    let snap = job.log.snapshot(0);
    let position = snap.progress.iter().rev().find_map(|p| match p {
        Progress::Accepted(_) | Progress::Position(_) => {
            Some(Value::Object(p.clone().into_event().1))
        }
        _ => None,
    });
    let timing = job.log.timing();
    Ok(Json(JobState {
        id: job.id.clone(),
        op: op_name(job.op).to_string(),
        state: state_of(&job.log).to_string(),
        position,
        queue_ms: timing.queue_ms,
        run_ms: timing.run_ms,
    })
    .into_response())
}

/// A progress event as SSE.
fn progress_event(p: Progress) -> Event {
    let (op, header) = p.into_event();
    let name = match op {
        Op::Accepted => "accepted",
        Op::Position => "position",
        _ => "started",
    };
    Event::default()
        .event(name)
        .data(Value::Object(header).to_string())
}

/// The terminal event as SSE.
fn terminal_event(api: &Api, job: &Job, reply: &Reply) -> Event {
    if reply.op != Op::Result {
        let e = error_of(&api.state, reply);
        let body = ErrorBody {
            error: ErrorDetail {
                code: e.code,
                message: e.message,
            },
        };
        let data = serde_json::to_string(&body).unwrap_or_default();
        return Event::default().event("error").data(data);
    }
    let timing = job.log.timing();
    let data = if job.op == Op::Filter {
        let result: Option<FilterResult> = from_header(&reply.header).ok();
        json!({
            "content_type": result.as_ref().map_or("application/octet-stream", content_type),
            "width": result.as_ref().map_or(0, |r| r.width),
            "height": result.as_ref().map_or(0, |r| r.height),
            "bytes": reply.payload.len(),
            "node_id": reply.header.get(ocellus_protocol::field::NODE_ID),
            "queue_ms": timing.queue_ms,
            "run_ms": timing.run_ms,
            "result": format!("/v1/jobs/{}/result", job.id),
        })
    } else {
        Value::Object(result_json(reply))
    };
    Event::default().event("result").data(data.to_string())
}

/// `GET /v1/jobs/{id}/events`: the job's progress as Server-Sent Events.
#[utoipa::path(get, path = "/v1/jobs/{id}/events", tag = "jobs",
    params(("id" = String, Path)),
    responses(
        (status = 200, description = "text/event-stream: accepted {job, position, queue_length}; position {position, queue_length, processing, eta_s}; started {job}; then result (filter: {content_type, width, height, bytes, node_id, queue_ms, run_ms, result}; others: the JSON result) or error {error: {code, message}}. A late reader gets what happened so far first.", content_type = "text/event-stream"),
        (status = 404, body = ErrorBody), (status = 410, body = ErrorBody)))]
pub(crate) async fn events(
    AxumState(api): AxumState<Arc<Api>>,
    client: ClientAddr,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let job = find(&api, &headers, client, &id).await?;
    // State: the next progress index, and whether the terminal event went.
    let stream = futures_util::stream::unfold(
        (api, job, 0usize, false),
        |(api, job, next, ended)| async move {
            if ended {
                return None;
            }
            job.log.changed_after(next).await;
            let snap = job.log.snapshot(next);
            if let Some(p) = snap.progress.into_iter().next() {
                return Some((Ok(progress_event(p)), (api, job, next + 1, false)));
            }
            let reply = snap.reply?;
            let event = terminal_event(&api, &job, &reply);
            Some((Ok(event), (api, job, snap.next, true)))
        },
    );
    Ok(Sse::new(stream).keep_alive(KeepAlive::new().interval(KEEP_ALIVE)))
}

/// `GET /v1/jobs/{id}/result`: the result, once (then `410`).
#[utoipa::path(get, path = "/v1/jobs/{id}/result", tag = "jobs",
    params(("id" = String, Path)),
    responses(
        (status = 200, description = "As the synchronous route answers: the image (filter) or the JSON result"),
        (status = 409, description = "Not finished yet (not_ready)", body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 410, body = ErrorBody)))]
pub(crate) async fn result(
    AxumState(api): AxumState<Arc<Api>>,
    client: ClientAddr,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let job = find(&api, &headers, client, &id).await?;
    let Some(reply) = job.log.finished() else {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            code::NOT_READY,
            format!("job {id:?} has not finished: follow /v1/jobs/{id}/events"),
        ));
    };
    {
        let mut taken = job.taken.lock().unwrap_or_else(|p| p.into_inner());
        if *taken {
            return Err(ApiError::new(
                StatusCode::GONE,
                code::GONE,
                format!("job {id:?}'s result was already fetched"),
            ));
        }
        *taken = true;
    }
    api.jobs.remove(&id);
    Ok(respond(&api.state, job.op, reply, job.log.timing()))
}

/// `DELETE /v1/jobs/{id}`: withdraws the job (a finished one is just
/// forgotten).
#[utoipa::path(delete, path = "/v1/jobs/{id}", tag = "jobs",
    params(("id" = String, Path)),
    responses((status = 200, description = "{id, cancelled}: whether it was still waiting or running"), (status = 404, body = ErrorBody), (status = 410, body = ErrorBody)))]
pub(crate) async fn cancel(
    AxumState(api): AxumState<Arc<Api>>,
    client: ClientAddr,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let job = find(&api, &headers, client, &id).await?;
    let cancelled = job.log.finished().is_none();
    if cancelled {
        // The log says `cancelled` first: the answer the queue gives a
        // purged job (its dropped responder) comes after, and is ignored.
        let e = json!({"code": code::CANCELLED, "message": "the job was cancelled (DELETE)"});
        job.log.finish(Reply {
            op: Op::Error,
            header: match e {
                Value::Object(m) => m,
                _ => Default::default(),
            },
            payload: Default::default(),
        });
        bridge::cancel(&api.state, &job.log);
    }
    api.jobs.remove(&id);
    Ok(Json(json!({"id": id, "cancelled": cancelled})).into_response())
}
