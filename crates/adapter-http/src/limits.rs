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

/// How long one REST request may take, from its head to its answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestLimits {
    /// Past it, the answer is `408`.
    pub timeout: Duration,
}

impl Default for RequestLimits {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(30),
        }
    }
}

/// The middleware: see the module docs.
pub(crate) async fn enforce(
    State(limits): State<RequestLimits>,
    request: Request,
    next: Next,
) -> Response {
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.trim().parse::<u64>().ok());
    if declared.is_some_and(|length| length > BODY_LIMIT_BYTES as u64) {
        return ApiError::PayloadTooLarge.into_response();
    }
    match tokio::time::timeout(limits.timeout, next.run(request)).await {
        Ok(response) => response,
        Err(_) => ApiError::RequestTimeout.into_response(),
    }
}
