//! For load balancers and orchestrators: `GET /healthz` (the process
//! answers) and `GET /readyz` (it can do its work now). Both open, as
//! probes are: they say nothing a client could misuse.
//!
//! Invariant: `/readyz` answers 503 while anything a request needs is
//! missing, so a balancer sends work only to nodes that can run it: the
//! node is shutting down, a role is not loaded, or (split roles) the
//! recognition node cannot be reached.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Json;
use axum::extract::State as AxumState;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::http::Api;
use crate::roles::link::RecognizerLink;

/// `/healthz`'s answer.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct Health {
    /// Always `ok`.
    status: &'static str,
    node_id: String,
    version: &'static str,
}

/// `GET /healthz`: the process is up.
#[utoipa::path(get, path = "/healthz", tag = "node", responses((status = 200, body = Health)))]
pub(crate) async fn healthz(AxumState(api): AxumState<Arc<Api>>) -> Json<Health> {
    Json(Health {
        status: "ok",
        node_id: api.state.node_id.clone(),
        version: env!("CARGO_PKG_VERSION"),
    })
}

/// `/readyz`'s answer.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct Ready {
    /// Whether every check passed.
    ready: bool,
    /// Each check: `ok`, or what is wrong.
    checks: BTreeMap<&'static str, String>,
}

/// `GET /readyz`: 200 when the node can take work, else 503 with the
/// failed checks.
#[utoipa::path(get, path = "/readyz", tag = "node", responses((status = 200, body = Ready), (status = 503, body = Ready)))]
pub(crate) async fn readyz(AxumState(api): AxumState<Arc<Api>>) -> Response {
    let state = &api.state;
    let mut checks = BTreeMap::new();
    let ok = || "ok".to_string();
    checks.insert(
        "accepting",
        if state.queue.is_shutting_down() {
            "shutting down".to_string()
        } else {
            ok()
        },
    );
    let roles = &state.roles;
    if state.config.roles.contains(ocellus_protocol::Role::Detect) {
        checks.insert(
            "detection",
            if roles.detection.is_some() {
                ok()
            } else {
                "no cascade loaded".to_string()
            },
        );
    }
    if let Some(service) = &roles.recognition {
        checks.insert(
            "store",
            match service.people() {
                Ok(_) => ok(),
                Err(e) => format!("the face store cannot be read: {e}"),
            },
        );
    }
    if let Some(RecognizerLink::Remote(remote)) = &roles.link {
        checks.insert(
            "recognizer",
            match remote.check().await {
                Ok(()) => ok(),
                Err(e) => e.message,
            },
        );
    }
    let ready = checks.values().all(|v| v == "ok");
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(Ready { ready, checks })).into_response()
}
