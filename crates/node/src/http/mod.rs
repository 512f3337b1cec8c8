//! The HTTP API (`docs/http.md`): a thin adapter onto the same request
//! handling as the TCP port. A route reads what the request carries into
//! the TCP request header and images ([`input`]), checks the key with the
//! TCP port's rules ([`auth`]), hands the request to
//! [`crate::request::handle`] through [`bridge`], and turns its terminal
//! event into a response ([`reply`], [`error`]). Jobs with live progress
//! ([`jobs`], Server-Sent Events), probes, metrics, the OpenAPI document
//! ([`openapi`]) and the embedded web page complete it.
//!
//! Invariant: nothing here filters, detects or recognizes, queues, routes
//! to peers or decides who may do what: every operation runs through the
//! same code as on TCP, so the two ports cannot disagree.

mod auth;
mod body;
mod bridge;
mod error;
mod input;
mod jobs;
mod openapi;
mod reply;
mod routes;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{DefaultBodyLimit, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tower::ServiceExt;
use tracing::{debug, info, warn};

use self::error::{ApiError, code};
use self::jobs::JobTable;
use self::routes::{jobs as job_routes, metrics, ops, probe, web};
use crate::state::State;

/// How long to wait after a failed accept before the next.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// What the handlers share: the node, and the HTTP jobs.
pub(crate) struct Api {
    pub state: Arc<State>,
    pub jobs: JobTable,
}

/// The client's address (put on each request by the accept loop).
#[derive(Clone, Copy, Debug)]
pub(crate) struct ClientAddr(pub Option<SocketAddr>);

impl<S: Send + Sync> FromRequestParts<S> for ClientAddr {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(parts
            .extensions
            .get::<ClientAddr>()
            .copied()
            .unwrap_or(ClientAddr(None)))
    }
}

async fn no_route(request: Request) -> Response {
    ApiError::not_found(format!(
        "no route {} {} (GET /v1/openapi.json lists them)",
        request.method(),
        request.uri().path()
    ))
    .into_response()
}

async fn wrong_method(request: Request) -> Response {
    ApiError::new(
        axum::http::StatusCode::METHOD_NOT_ALLOWED,
        code::METHOD_NOT_ALLOWED,
        format!(
            "{} is not a method of {}",
            request.method(),
            request.uri().path()
        ),
    )
    .into_response()
}

/// Counts the request in `ocellus_http_requests_in_flight` until its
/// response is ready (a Server-Sent Events stream counts until it starts).
async fn in_flight(
    axum::extract::State(api): axum::extract::State<Arc<Api>>,
    request: Request,
    next: axum::middleware::Next,
) -> Response {
    let _serving = api.state.metrics.http_request();
    next.run(request).await
}

/// The router of a node's HTTP API.
pub(crate) fn router(state: Arc<State>) -> Router {
    let max_body = state.config.frame_limits.max_frame;
    let body_timeout = state.config.frame_timeout;
    let api = Arc::new(Api {
        state,
        jobs: JobTable::default(),
    });
    Router::new()
        .route("/", get(web::index))
        .route("/app.js", get(web::script))
        .route("/app.css", get(web::style))
        .route("/healthz", get(probe::healthz))
        .route("/readyz", get(probe::readyz))
        .route("/metrics", get(metrics::metrics))
        .route("/v1/openapi.json", get(openapi::document))
        .route("/v1/ops", get(ops::ops))
        .route("/v1/filter", post(ops::filter))
        .route("/v1/detect", post(ops::detect))
        .route("/v1/recognize", post(ops::recognize))
        .route("/v1/people", get(ops::people))
        .route("/v1/people/{name}", delete(ops::remove_person))
        .route("/v1/people/{name}/faces", post(ops::enroll))
        .route("/v1/status", get(ops::status))
        // One pattern: POST names the op, GET and DELETE the job id.
        .route(
            "/v1/jobs/{key}",
            post(job_routes::submit)
                .get(job_routes::show)
                .delete(job_routes::cancel),
        )
        .route("/v1/jobs/{id}/events", get(job_routes::events))
        .route("/v1/jobs/{id}/result", get(job_routes::result))
        .fallback(no_route)
        .method_not_allowed_fallback(wrong_method)
        .layer(DefaultBodyLimit::max(max_body))
        .layer(tower_http::timeout::RequestBodyTimeoutLayer::new(
            body_timeout,
        ))
        .layer(tower_http::compression::CompressionLayer::new())
        .layer(tower_http::catch_panic::CatchPanicLayer::new())
        .layer(tower_http::trace::TraceLayer::new_for_http())
        .layer(axum::middleware::from_fn_with_state(api.clone(), in_flight))
        .with_state(api)
}

/// Serves HTTP on `listener` until `stop` resolves (TLS when the node has
/// it, as on the protocol port).
pub(crate) async fn serve(
    listener: TcpListener,
    state: Arc<State>,
    stop: impl std::future::Future<Output = ()>,
) {
    let tls = state.config.tls.as_ref().map(|t| t.acceptor());
    let handshake_timeout = state.config.frame_timeout;
    let connections = state.connections.clone();
    let metrics = state.metrics.clone();
    let app = router(state);
    tokio::pin!(stop);
    loop {
        let (stream, peer) = tokio::select! {
            _ = &mut stop => break,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    warn!(error = %e, "HTTP accept failed");
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        // Over the connection caps: told so in one response, then closed.
        let slot = match connections.open(peer.ip()) {
            Ok(slot) => slot,
            Err(refused) => {
                metrics.connection_refused();
                info!(%peer, reason = %refused.message(), "HTTP connection refused");
                tokio::spawn(refuse(stream, tls.clone(), refused, handshake_timeout));
                continue;
            }
        };
        let app = app.clone();
        let tls = tls.clone();
        tokio::spawn(async move {
            let _slot = slot;
            let service =
                app.map_request(move |mut r: axum::http::Request<hyper::body::Incoming>| {
                    r.extensions_mut().insert(ClientAddr(Some(peer)));
                    r
                });
            let service = TowerToHyperService::new(service);
            let mut http = hyper::server::conn::http1::Builder::new();
            // Slow-loris: the request head must arrive within the frame
            // timeout too.
            http.timer(TokioTimer::new())
                .header_read_timeout(handshake_timeout);
            let served = match tls {
                None => {
                    http.serve_connection(TokioIo::new(stream), service)
                        .with_upgrades()
                        .await
                }
                Some(acceptor) => {
                    match tokio::time::timeout(handshake_timeout, acceptor.accept(stream)).await {
                        Ok(Ok(stream)) => {
                            http.serve_connection(TokioIo::new(stream), service)
                                .with_upgrades()
                                .await
                        }
                        Ok(Err(e)) => {
                            info!(%peer, error = %e, "HTTPS handshake failed");
                            return;
                        }
                        Err(_) => {
                            info!(%peer, "HTTPS handshake not completed in time");
                            return;
                        }
                    }
                }
            };
            if let Err(e) = served {
                debug!(%peer, error = %e, "HTTP connection ended");
            }
        });
    }
}

/// Answers a connection over the caps with 429 and the reason (after the
/// TLS handshake on an HTTPS node), then closes it.
async fn refuse(
    stream: tokio::net::TcpStream,
    tls: Option<tokio_rustls::TlsAcceptor>,
    refused: crate::admission::Refused,
    timeout: std::time::Duration,
) {
    use tokio::io::{AsyncWrite, AsyncWriteExt};
    let body =
        serde_json::json!({"error": {"code": "busy", "message": refused.message()}}).to_string();
    let response = format!(
        "HTTP/1.1 429 Too Many Requests\r\ncontent-type: application/json\r\nretry-after: 1\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    async fn send(mut w: impl AsyncWrite + Unpin, bytes: &[u8]) -> std::io::Result<()> {
        w.write_all(bytes).await?;
        w.shutdown().await
    }
    let _ = tokio::time::timeout(timeout, async {
        match tls {
            None => send(stream, response.as_bytes()).await,
            Some(acceptor) => send(acceptor.accept(stream).await?, response.as_bytes()).await,
        }
    })
    .await;
}
