//! The web page: `crates/node/web/` embedded in the binary at build time
//! (no CDN, nothing fetched: it works offline and cannot drift from the
//! node it is served by).
//!
//! Invariant: the files are served as built, with an `ETag` of their
//! content, so a browser revalidates cheaply and never keeps a page older
//! than the node.

use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};

/// One embedded file.
struct Asset {
    bytes: &'static [u8],
    content_type: &'static str,
}

const INDEX: Asset = Asset {
    bytes: include_bytes!("../../../web/index.html"),
    content_type: "text/html; charset=utf-8",
};
const SCRIPT: Asset = Asset {
    bytes: include_bytes!("../../../web/app.js"),
    content_type: "text/javascript; charset=utf-8",
};
const STYLE: Asset = Asset {
    bytes: include_bytes!("../../../web/app.css"),
    content_type: "text/css; charset=utf-8",
};

fn etag(bytes: &[u8]) -> String {
    let digest = Sha256::digest(bytes);
    let hex: String = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
    format!("\"{hex}\"")
}

fn serve(asset: &Asset, headers: &HeaderMap) -> Response {
    let tag = etag(asset.bytes);
    let fresh = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == tag));
    let mut response = if fresh {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        ([(header::CONTENT_TYPE, asset.content_type)], asset.bytes).into_response()
    };
    let h = response.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&tag) {
        h.insert(header::ETAG, v);
    }
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'self'; img-src 'self' blob: data:; connect-src 'self' blob:; \
             style-src 'self'; script-src 'self'; base-uri 'none'; form-action 'self'; \
             frame-ancestors 'none'",
        ),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    response
}

/// `GET /`: the page.
pub(crate) async fn index(headers: HeaderMap) -> Response {
    serve(&INDEX, &headers)
}

/// `GET /app.js`.
pub(crate) async fn script(headers: HeaderMap) -> Response {
    serve(&SCRIPT, &headers)
}

/// `GET /app.css`.
pub(crate) async fn style(headers: HeaderMap) -> Response {
    serve(&STYLE, &headers)
}
