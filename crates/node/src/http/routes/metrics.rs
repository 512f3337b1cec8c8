//! `GET /metrics`: the node's Prometheus metrics ([`crate::metrics`] owns
//! them and their format; `docs/metrics.md` lists the families).
//!
//! Invariant: on a node with keys a scrape needs a key with the read
//! scope (the one STATUS needs), since the metrics say how busy the node
//! is and how many people it knows.

use std::sync::Arc;

use axum::extract::State as AxumState;
use axum::http::HeaderMap;
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use axum::response::{IntoResponse, Response};
use ocellus_protocol::Op;

use crate::http::error::ApiError;
use crate::http::{Api, ClientAddr, auth};
use crate::metrics::Metrics;

/// `GET /metrics`: the Prometheus text exposition.
#[utoipa::path(get, path = "/metrics", tag = "node",
    responses(
        (status = 200, description = "The Prometheus text format 0.0.4 (docs/metrics.md); needs the read scope on a node with keys", content_type = "text/plain"),
        (status = 401, body = crate::http::error::ErrorBody),
        (status = 403, body = crate::http::error::ErrorBody)))]
pub(crate) async fn metrics(
    AxumState(api): AxumState<Arc<Api>>,
    client: ClientAddr,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    auth::authorize(&api.state, &headers, Some(Op::Status), client.0).await?;
    let state = api.state.clone();
    // The scrape reads the face store under its lock: off the async
    // threads, like every store access.
    let text = tokio::task::spawn_blocking(move || state.metrics.render(state.gauges()))
        .await
        .map_err(|e| {
            ApiError::protocol(
                ocellus_protocol::ErrorCode::Internal,
                format!("metrics: {e}"),
            )
        })?;
    Ok((
        [
            (CONTENT_TYPE, Metrics::CONTENT_TYPE),
            (CACHE_CONTROL, "no-store"),
        ],
        text,
    )
        .into_response())
}
