//! What an HTTP request carries, read into the same typed request headers
//! a TCP client sends: the images (the raw body, or every file part of a
//! `multipart/form-data` body) and the fields (query parameters, and the
//! text parts of a multipart body).
//!
//! Invariant: a field is either one this operation knows, parsed into its
//! type, or the request is refused `bad_request` naming it (a misspelt
//! `min_sise` must not silently run with the default); the body is never
//! larger than `--max-frame` (the router's limit), it is counted against
//! the memory budget as it arrives ([`body`]), and its images are shared
//! slices of it, never copied.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::{FromRequest, Multipart, Query, Request};
use axum::http::StatusCode;
use bytes::Bytes;
use ocellus_protocol::ErrorCode;
use ocellus_protocol::face::{DetectOverrides, DetectRequest, EnrollRequest, RecognizeRequest};
use ocellus_protocol::message::{FilterRequest, to_header};
use serde_json::{Map, Value};

use super::body;
use super::error::ApiError;
use crate::budget::{Charge, MemoryBudget};

/// The images and fields of a request.
#[derive(Debug, Default)]
pub(crate) struct Input {
    pub images: Vec<Bytes>,
    pub fields: BTreeMap<String, String>,
    /// The body's bytes, held against the memory budget ([`body`]).
    pub held: Option<Charge>,
}

/// A body over the limit, or one that could not be read.
fn body_error(status: StatusCode, what: impl std::fmt::Display) -> ApiError {
    if status == StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::protocol(
            ErrorCode::FrameTooLarge,
            format!("the body is larger than this node accepts (--max-frame): {what}"),
        )
    } else {
        ApiError::bad_request(format!("the body could not be read: {what}"))
    }
}

/// The query parameters of `request` (no body read).
pub(crate) fn query(request: &Request) -> Result<BTreeMap<String, String>, ApiError> {
    Query::<BTreeMap<String, String>>::try_from_uri(request.uri())
        .map(|q| q.0)
        .map_err(|e| ApiError::bad_request(format!("the query string: {e}")))
}

/// Reads the images and fields of `request`, its body counted against
/// `budget` as it arrives.
pub(crate) async fn read(request: Request, budget: &Arc<MemoryBudget>) -> Result<Input, ApiError> {
    let mut fields = query(&request)?;
    let (request, counted) = body::count(request, budget)?;
    let multipart = request
        .headers()
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("multipart/form-data"));
    let mut images = Vec::new();
    if multipart {
        let mut form = Multipart::from_request(request, &())
            .await
            .map_err(|e| ApiError::bad_request(e.body_text()))?;
        loop {
            let field = match form.next_field().await {
                Ok(Some(f)) => f,
                Ok(None) => break,
                Err(e) => return Err(body_error(e.status(), e.body_text())),
            };
            let name = field.name().unwrap_or("").to_string();
            let is_file = field.file_name().is_some() || name == "image" || name == "images";
            let data = field
                .bytes()
                .await
                .map_err(|e| body_error(e.status(), e.body_text()))?;
            if is_file {
                images.push(data);
            } else {
                let text = String::from_utf8(data.to_vec()).map_err(|_| {
                    ApiError::bad_request(format!("the form field {name:?} is not UTF-8 text"))
                })?;
                fields.insert(name, text);
            }
        }
    } else {
        let body = Bytes::from_request(request, &())
            .await
            .map_err(|e| body_error(e.status(), e.body_text()))?;
        if !body.is_empty() {
            images.push(body);
        }
    }
    let held = Some(counted.finish().await);
    Ok(Input {
        images,
        fields,
        held,
    })
}

impl Input {
    /// Refuses fields other than `known`.
    pub fn only(&self, known: &[&str]) -> Result<(), ApiError> {
        match self.fields.keys().find(|k| !known.contains(&k.as_str())) {
            Some(k) => Err(ApiError::bad_request(format!(
                "unknown field {k:?}: this operation takes {}",
                if known.is_empty() {
                    "none".to_string()
                } else {
                    known.join(", ")
                }
            ))),
            None => Ok(()),
        }
    }

    /// A field parsed as `T`, if given.
    pub fn get<T: std::str::FromStr>(&self, name: &str) -> Result<Option<T>, ApiError> {
        match self.fields.get(name) {
            None => Ok(None),
            Some(text) => text.trim().parse().map(Some).map_err(|_| {
                ApiError::bad_request(format!("the field {name} has an invalid value {text:?}"))
            }),
        }
    }

    /// At least one image.
    pub fn need_images(&self) -> Result<(), ApiError> {
        if self.images.is_empty() {
            return Err(ApiError::bad_request(
                "no image: send it as the body, or as `image` parts of a multipart/form-data body",
            ));
        }
        Ok(())
    }

    fn overrides(&self) -> Result<DetectOverrides, ApiError> {
        Ok(DetectOverrides {
            scale_factor: self.get("scale_factor")?,
            min_neighbors: self.get("min_neighbors")?,
            min_size: self.get("min_size")?,
        })
    }
}

/// Fields of the face operations' detection.
const DETECT_FIELDS: [&str; 3] = ["scale_factor", "min_neighbors", "min_size"];

/// The FILTER header: `ops` (required), `format`, `quality`.
pub(crate) fn filter(input: &Input) -> Result<Map<String, Value>, ApiError> {
    input.only(&["ops", "format", "quality"])?;
    let ops = input.fields.get("ops").cloned().ok_or_else(|| {
        ApiError::bad_request("the field ops is required, for example ?ops=blur=5,resize=800x")
    })?;
    let request = FilterRequest {
        ops,
        format: input.fields.get("format").cloned(),
        quality: input.get("quality")?,
    };
    Ok(to_header(&request))
}

/// The DETECT header.
pub(crate) fn detect(input: &Input) -> Result<Map<String, Value>, ApiError> {
    input.only(&DETECT_FIELDS)?;
    Ok(to_header(&DetectRequest {
        overrides: input.overrides()?,
    }))
}

/// The RECOGNIZE header.
pub(crate) fn recognize(input: &Input) -> Result<Map<String, Value>, ApiError> {
    let mut known = DETECT_FIELDS.to_vec();
    known.extend(["algorithm", "tolerance"]);
    input.only(&known)?;
    Ok(to_header(&RecognizeRequest {
        algorithm: input.fields.get("algorithm").cloned(),
        tolerance: input.get("tolerance")?,
        overrides: input.overrides()?,
        crops: None,
    }))
}

/// The ENROLL header for `name` (from the path, or the `name` field of a
/// job).
pub(crate) fn enroll(input: &Input, name: Option<&str>) -> Result<Map<String, Value>, ApiError> {
    let mut known = DETECT_FIELDS.to_vec();
    known.push("largest_face");
    if name.is_none() {
        known.push("name");
    }
    input.only(&known)?;
    let name = match name {
        Some(n) => n.to_string(),
        None => input.fields.get("name").cloned().ok_or_else(|| {
            ApiError::bad_request("the field name is required: whom the photos show")
        })?,
    };
    Ok(to_header(&EnrollRequest {
        name,
        largest_face: input.get("largest_face")?.unwrap_or(false),
        overrides: input.overrides()?,
        crops: None,
    }))
}
