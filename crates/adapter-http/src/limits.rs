//! Limits every REST request meets before its handler: a body declared larger than the
//! limit is `413` at once (not after waiting for it), and a request that takes longer
//! than the request timeout to arrive and be answered (a body dripped byte by byte) is
//! `408`, so no client holds a connection and a handler open for as long as it likes.

use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::BODY_LIMIT_BYTES;
use crate::error::ApiError;
use crate::throttle::RateLimits;

/// How long one REST request may take, from its head to its answer, and how often a
/// client may try to log in or register.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestLimits {
    /// Past it, the answer is `408`.
    pub timeout: Duration,
    /// The rate limits of the auth routes (all off by default).
    pub rates: RateLimits,
}

impl Default for RequestLimits {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(30),
            rates: RateLimits::default(),
        }
    }
}

/// How much of a body declared too large is read (and thrown away) before answering, so
/// that a client still sending it reads the `413` instead of a connection reset.
const DRAIN_BYTES: usize = 1024 * 1024;

/// How long that reading may take: a client that declared a body and sends none is
/// answered after this, not after the request timeout.
const DRAIN_WAIT: Duration = Duration::from_millis(200);

/// `413` for a body declared over the limit. What arrives within [`DRAIN_WAIT`] (up to
/// [`DRAIN_BYTES`]) is read first; when that is not the whole body, the connection is
/// closed after the answer instead of being kept for another request.
async fn too_large(request: Request) -> Response {
    let body = request.into_body();
    let drained = tokio::time::timeout(DRAIN_WAIT, axum::body::to_bytes(body, DRAIN_BYTES))
        .await
        .is_ok_and(|read| read.is_ok());
    let mut response = ApiError::PayloadTooLarge.into_response();
    if !drained {
        response.headers_mut().insert(
            header::CONNECTION,
            header::HeaderValue::from_static("close"),
        );
    }
    response
}

/// The middleware: see the module docs.
pub(crate) async fn enforce(
    State(timeout): State<Duration>,
    request: Request,
    next: Next,
) -> Response {
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.trim().parse::<u64>().ok());
    if declared.is_some_and(|length| length > BODY_LIMIT_BYTES as u64) {
        return too_large(request).await;
    }
    match tokio::time::timeout(timeout, next.run(request)).await {
        Ok(response) => response,
        Err(_) => ApiError::RequestTimeout.into_response(),
    }
}
