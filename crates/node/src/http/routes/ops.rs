//! The synchronous operations: one HTTP request, one node request, the
//! answer when it is done (`/v1/filter`, `/v1/detect`, `/v1/recognize`,
//! `/v1/people...`, `/v1/status`).
//!
//! Invariant: each route is the same three steps: [`authorize`] for the
//! operation (before the body is read), build the TCP request header from
//! the fields ([`input`]), and [`bridge::dispatch`] it; a client that goes
//! away before the answer withdraws its job ([`CancelOnDrop`]).

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, Request, State as AxumState};
use axum::response::{IntoResponse, Response};
use ocellus_protocol::Op;
use ocellus_protocol::face::RemovePersonRequest;
use ocellus_protocol::message::to_header;
use serde_json::{Map, Value};

use crate::http::auth::authorize;
use crate::http::bridge::{self, Built, CancelOnDrop};
use crate::http::error::ApiError;
use crate::http::input::{self, Input};
use crate::http::reply::respond;
use crate::http::{Api, ClientAddr};

/// Runs `op` with the images and fields of `request` and answers its
/// result.
pub(crate) async fn run(
    api: Arc<Api>,
    client: ClientAddr,
    request: Request,
    op: Op,
    build: impl FnOnce(&Input) -> Result<Map<String, Value>, ApiError>,
) -> Result<Response, ApiError> {
    let session = authorize(&api.state, request.headers(), Some(op), client.0).await?;
    let mut input = input::read(request, &api.state.budget).await?;
    input.need_images()?;
    let header = build(&input)?;
    let built = Built {
        op,
        header,
        images: input.images,
        held: input.held.take(),
    };
    Ok(dispatch_and_wait(&api, built, &session, client).await)
}

/// Dispatches `built` and waits for its answer.
async fn dispatch_and_wait(
    api: &Arc<Api>,
    built: Built,
    session: &crate::access::Session,
    client: ClientAddr,
) -> Response {
    let op = built.op;
    let log = bridge::dispatch(&api.state, built, session, client.0);
    let mut guard = CancelOnDrop {
        state: api.state.clone(),
        log: log.clone(),
        armed: true,
    };
    let reply = log.reply().await;
    guard.armed = false;
    respond(&api.state, op, reply, log.timing())
}

/// `POST /v1/filter`: the filtered image.
#[utoipa::path(post, path = "/v1/filter", tag = "filters",
    params(
        ("ops" = String, Query, description = "The pipeline, e.g. blur=5,resize=800x (GET /v1/ops lists the operations)"),
        ("format" = Option<String>, Query, description = "png, jpeg or webp (default: the input's format when it can be written, else png)"),
        ("quality" = Option<u8>, Query, description = "JPEG quality, 1-100"),
    ),
    request_body(content_type = "image/*", description = "The image as the body, or one `image` part (or multipart/form-data)"),
    responses(
        (status = 200, description = "The filtered image, with Ocellus-Node, Ocellus-Queue-Ms, Ocellus-Run-Ms, Ocellus-Width, Ocellus-Height", content_type = "image/*"),
        (status = "4XX", body = crate::http::error::ErrorBody),
        (status = "5XX", body = crate::http::error::ErrorBody),
    ))]
pub(crate) async fn filter(
    AxumState(api): AxumState<Arc<Api>>,
    client: ClientAddr,
    request: Request,
) -> Result<Response, ApiError> {
    run(api, client, request, Op::Filter, input::filter).await
}

/// `POST /v1/detect`: the faces of each image.
#[utoipa::path(post, path = "/v1/detect", tag = "faces",
    params(
        ("scale_factor" = Option<f64>, Query, description = "Ratio between window sizes (the node enforces a minimum)"),
        ("min_neighbors" = Option<u32>, Query, description = "Raw detections needed to keep a face, minus one"),
        ("min_size" = Option<u32>, Query, description = "Smallest face, in pixels"),
    ),
    request_body(content_type = "image/*", description = "One image as the body, or `image` parts (or multipart/form-data)"),
    responses(
        (status = 200, description = "One entry per image", body = ocellus_protocol::face::DetectResult),
        (status = "4XX", body = crate::http::error::ErrorBody),
        (status = "5XX", body = crate::http::error::ErrorBody),
    ))]
pub(crate) async fn detect(
    AxumState(api): AxumState<Arc<Api>>,
    client: ClientAddr,
    request: Request,
) -> Result<Response, ApiError> {
    run(api, client, request, Op::Detect, input::detect).await
}

/// `POST /v1/recognize`: who is in each image.
#[utoipa::path(post, path = "/v1/recognize", tag = "faces",
    params(
        ("algorithm" = Option<String>, Query, description = "eigen, fisher, lbph or resnet (default: the node's)"),
        ("tolerance" = Option<f64>, Query, description = "resnet: largest distance at which a face is named"),
        ("scale_factor" = Option<f64>, Query, description = "Detection: ratio between window sizes"),
        ("min_neighbors" = Option<u32>, Query, description = "Detection: raw detections needed, minus one"),
        ("min_size" = Option<u32>, Query, description = "Detection: smallest face, in pixels"),
    ),
    request_body(content_type = "image/*", description = "One image as the body, or `image` parts (or multipart/form-data)"),
    responses(
        (status = 200, description = "One entry per image; a face nobody matches has name null (not identified)", body = ocellus_protocol::face::RecognizeResult),
        (status = "4XX", body = crate::http::error::ErrorBody),
        (status = "5XX", body = crate::http::error::ErrorBody),
    ))]
pub(crate) async fn recognize(
    AxumState(api): AxumState<Arc<Api>>,
    client: ClientAddr,
    request: Request,
) -> Result<Response, ApiError> {
    run(api, client, request, Op::Recognize, input::recognize).await
}

/// `POST /v1/people/{name}/faces`: enrolls the photos.
#[utoipa::path(post, path = "/v1/people/{name}/faces", tag = "people",
    params(
        ("name" = String, Path, description = "The person"),
        ("largest_face" = Option<bool>, Query, description = "With several faces in a photo, enroll the largest"),
    ),
    request_body(content_type = "image/*", description = "`image` parts (one per photo), or one photo as the body (or multipart/form-data)"),
    responses(
        (status = 200, description = "Per photo: accepted or why not", body = ocellus_protocol::face::EnrollResult),
        (status = "4XX", body = crate::http::error::ErrorBody),
        (status = "5XX", body = crate::http::error::ErrorBody),
    ))]
pub(crate) async fn enroll(
    AxumState(api): AxumState<Arc<Api>>,
    client: ClientAddr,
    Path(name): Path<String>,
    request: Request,
) -> Result<Response, ApiError> {
    run(api, client, request, Op::Enroll, |i| {
        input::enroll(i, Some(&name))
    })
    .await
}

/// Runs an operation that carries no image.
async fn bare(
    api: Arc<Api>,
    client: ClientAddr,
    request: Request,
    op: Op,
    header: Map<String, Value>,
) -> Result<Response, ApiError> {
    let session = authorize(&api.state, request.headers(), Some(op), client.0).await?;
    let fields = input::query(&request)?;
    if let Some(k) = fields.keys().next() {
        return Err(ApiError::bad_request(format!(
            "unknown field {k:?}: this route takes none"
        )));
    }
    Ok(dispatch_and_wait(&api, Built::bare(op, header), &session, client).await)
}

/// `GET /v1/people`: who is enrolled.
#[utoipa::path(get, path = "/v1/people", tag = "people",
    responses(
        (status = 200, body = ocellus_protocol::face::PeopleResult),
        (status = "4XX", body = crate::http::error::ErrorBody),
        (status = "5XX", body = crate::http::error::ErrorBody),
    ))]
pub(crate) async fn people(
    AxumState(api): AxumState<Arc<Api>>,
    client: ClientAddr,
    request: Request,
) -> Result<Response, ApiError> {
    bare(api, client, request, Op::People, Map::new()).await
}

/// `DELETE /v1/people/{name}`: removes a person and every face of theirs.
#[utoipa::path(delete, path = "/v1/people/{name}", tag = "people",
    params(("name" = String, Path, description = "The person")),
    responses(
        (status = 200, body = ocellus_protocol::face::RemovePersonResult),
        (status = 404, description = "Nobody of that name (unknown_person)", body = crate::http::error::ErrorBody),
        (status = "4XX", body = crate::http::error::ErrorBody),
        (status = "5XX", body = crate::http::error::ErrorBody),
    ))]
pub(crate) async fn remove_person(
    AxumState(api): AxumState<Arc<Api>>,
    client: ClientAddr,
    Path(name): Path<String>,
    request: Request,
) -> Result<Response, ApiError> {
    let header = to_header(&RemovePersonRequest { name });
    bare(api, client, request, Op::RemovePerson, header).await
}

/// `GET /v1/status`: the node's STATUS report, peers included.
#[utoipa::path(get, path = "/v1/status", tag = "node",
    responses(
        (status = 200, body = ocellus_protocol::StatusReport),
        (status = "4XX", body = crate::http::error::ErrorBody),
    ))]
pub(crate) async fn status(
    AxumState(api): AxumState<Arc<Api>>,
    client: ClientAddr,
    request: Request,
) -> Result<Response, ApiError> {
    bare(api, client, request, Op::Status, Map::new()).await
}

/// One filter operation: its name and syntax.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub(crate) struct Operation {
    name: String,
    syntax: String,
}

/// The filter operations.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub(crate) struct Operations {
    operations: Vec<Operation>,
    /// Images one request may carry.
    max_images: usize,
}

/// `GET /v1/ops`: the filter operations and their syntax.
#[utoipa::path(get, path = "/v1/ops", tag = "filters",
    responses((status = 200, body = Operations), (status = 401, body = crate::http::error::ErrorBody)))]
pub(crate) async fn ops(
    AxumState(api): AxumState<Arc<Api>>,
    client: ClientAddr,
    headers: axum::http::HeaderMap,
) -> Result<Response, ApiError> {
    authorize(&api.state, &headers, None, client.0).await?;
    let operations = ocellus_imaging::pipeline::OPERATIONS
        .iter()
        .map(|syntax| Operation {
            name: syntax
                .split(['=', ' '])
                .next()
                .unwrap_or(syntax)
                .to_string(),
            syntax: syntax.to_string(),
        })
        .collect();
    Ok(Json(Operations {
        operations,
        max_images: api.state.config.max_images,
    })
    .into_response())
}
