//! The OpenAPI 3.1 document of the HTTP API, generated from the handlers'
//! annotations and the message types (`GET /v1/openapi.json`).
//!
//! Invariant: every route of [`super::router`] is in [`PATHS`] and in the
//! document, and nothing else is (a test checks both against each other).

use axum::Json;
use utoipa::OpenApi;

use super::routes::{jobs, metrics, ops, probe};

/// The document.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "Ocellus",
        description = "Image filters and face recognition on a node of Ocellus. The same operations, queue, roles and trust rules as the TCP protocol (docs/PROTOCOL.md); errors are {\"error\": {\"code\", \"message\"}} with the protocol's codes. On a node with keys, send `Authorization: Bearer KEY` (docs/security.md).",
        license(name = "MIT OR Apache-2.0"),
    ),
    paths(
        ops::filter, ops::detect, ops::recognize, ops::enroll, ops::people,
        ops::remove_person, ops::status, ops::ops,
        jobs::submit, jobs::show, jobs::events, jobs::result, jobs::cancel,
        probe::healthz, probe::readyz, metrics::metrics, document,
    ),
    components(schemas(crate::http::error::ErrorBody, crate::http::error::ErrorDetail)),
    modifiers(&Bearer),
    tags(
        (name = "filters", description = "Image filters and pipelines"),
        (name = "faces", description = "Detection and recognition"),
        (name = "people", description = "Enrolled people"),
        (name = "jobs", description = "Submit, follow (SSE) and fetch jobs"),
        (name = "node", description = "Status and probes"),
    ),
)]
pub(crate) struct ApiDoc;

/// Adds the Bearer key scheme.
struct Bearer;

impl utoipa::Modify for Bearer {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "key",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "An Ocellus key (`ocellus keys add`), needed on a node with keys",
                    ))
                    .build(),
            ),
        );
        openapi.security = Some(vec![utoipa::openapi::security::SecurityRequirement::new(
            "key",
            Vec::<String>::new(),
        )]);
    }
}

/// Every route of the API, as (method, path): what [`super::router`]
/// registers, and what the document must list.
#[cfg_attr(not(test), allow(dead_code))]
pub(crate) const PATHS: &[(&str, &str)] = &[
    ("post", "/v1/filter"),
    ("post", "/v1/detect"),
    ("post", "/v1/recognize"),
    ("get", "/v1/people"),
    ("delete", "/v1/people/{name}"),
    ("post", "/v1/people/{name}/faces"),
    ("get", "/v1/status"),
    ("get", "/v1/ops"),
    ("post", "/v1/jobs/{op}"),
    ("get", "/v1/jobs/{id}"),
    ("delete", "/v1/jobs/{id}"),
    ("get", "/v1/jobs/{id}/events"),
    ("get", "/v1/jobs/{id}/result"),
    ("get", "/healthz"),
    ("get", "/readyz"),
    ("get", "/metrics"),
    ("get", "/v1/openapi.json"),
];

/// `GET /v1/openapi.json`: this document.
#[utoipa::path(get, path = "/v1/openapi.json", tag = "node", responses((status = 200, description = "The OpenAPI 3.1 document")))]
pub(crate) async fn document(
    axum::extract::State(api): axum::extract::State<std::sync::Arc<super::Api>>,
    client: super::ClientAddr,
    headers: axum::http::HeaderMap,
) -> Result<Json<utoipa::openapi::OpenApi>, super::error::ApiError> {
    super::auth::authorize(&api.state, &headers, None, client.0).await?;
    Ok(Json(ApiDoc::openapi()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_document_lists_exactly_the_routes() {
        let doc = ApiDoc::openapi();
        let json = serde_json::to_value(&doc).unwrap();
        assert_eq!(
            json["openapi"].as_str().map(|v| v.starts_with("3.1")),
            Some(true)
        );
        let mut listed: Vec<(String, String)> = Vec::new();
        for (path, item) in json["paths"].as_object().unwrap() {
            for method in item.as_object().unwrap().keys() {
                listed.push((method.clone(), path.clone()));
            }
        }
        listed.sort();
        let mut expected: Vec<(String, String)> = PATHS
            .iter()
            .map(|(m, p)| (m.to_string(), p.to_string()))
            .collect();
        expected.sort();
        assert_eq!(listed, expected);
    }
}
