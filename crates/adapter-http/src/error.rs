//! The one place where failures become HTTP responses: RFC 9457 problem details with
//! the status the contract gives each failure. Internal errors are logged here, once,
//! inside the request's span (so with its request id), and the client only learns that
//! something failed on our side.

use std::any::Any;
use std::time::Duration;

use app::{AppError, UnknownMember};
use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

use crate::throttle::Limited;

/// The `Retry-After` of a `503`: an unreachable database is usually back within
/// seconds (a restart, a failover), and a sooner retry would only add load.
const RETRY_AFTER_SECONDS: u16 = 2;

/// Why a request failed, as the HTTP adapter sees it.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// A use case failed.
    #[error(transparent)]
    App(#[from] AppError),
    /// The body is larger than [`crate::BODY_LIMIT_BYTES`].
    #[error("the request body is larger than 64 KiB")]
    PayloadTooLarge,
    /// The body is declared as something other than JSON.
    #[error("the request body must be JSON in UTF-8 (application/json)")]
    UnsupportedMediaType,
    /// The body could not be read from the connection.
    #[error("the request body could not be read")]
    UnreadableBody,
    /// The request (its body included) took longer than the server allows.
    #[error("the request took too long to arrive")]
    RequestTimeout,
    /// No route has this path.
    #[error("no such route")]
    RouteNotFound,
    /// The path exists, but not with this method.
    #[error("this method is not allowed on this path")]
    MethodNotAllowed,
    /// A rate limit refused the request (see `throttle.rs`).
    #[error("{}", too_many_requests_detail(*.limited))]
    TooManyRequests {
        /// Which limit.
        limited: Limited,
        /// When the limit allows the next request.
        retry_after: Duration,
    },
    /// A WebSocket endpoint was asked for without a WebSocket handshake; `status` is
    /// the one axum's upgrade extractor gives (`400`, `405` or `426`).
    #[error("not a WebSocket handshake: {detail}")]
    NotWebSocketHandshake {
        /// The status to answer.
        status: StatusCode,
        /// What is missing from the handshake.
        detail: String,
    },
}

fn too_many_requests_detail(limited: Limited) -> &'static str {
    match limited {
        Limited::LoginsFromAddress => "too many login attempts from this address",
        Limited::RegistrationsFromAddress => "too many registrations from this address",
        Limited::FailedLoginsForUsername => {
            "too many failed logins for this username; try again later"
        }
    }
}

/// An RFC 9457 problem document.
#[derive(Serialize, ToSchema)]
pub(crate) struct Problem {
    /// Always `about:blank`: the status says what kind of problem it is.
    #[serde(rename = "type")]
    #[schema(value_type = String, example = "about:blank")]
    kind: &'static str,
    /// The status's reason phrase.
    #[schema(value_type = String, example = "Bad Request")]
    title: &'static str,
    /// The HTTP status code.
    #[schema(minimum = 400, maximum = 599, example = 400)]
    status: u16,
    /// What went wrong, in one sentence; never a stack trace, SQL or another user's data.
    #[schema(example = "members must not be empty")]
    detail: String,
    /// The invalid fields, when a body or query failed validation.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    #[schema(required = false)]
    errors: Vec<FieldProblem>,
}

/// One invalid field, in a problem's `errors` list.
#[derive(Serialize, ToSchema)]
pub(crate) struct FieldProblem {
    /// The field, as named in the request (`members[1]`), or `members` for unknown users.
    field: String,
    /// What is wrong with it.
    message: String,
}

impl ApiError {
    fn status(&self) -> StatusCode {
        match self {
            Self::App(err) => match err {
                AppError::Invalid(_) | AppError::UnknownUsers(_) => StatusCode::BAD_REQUEST,
                AppError::UsernameTaken => StatusCode::CONFLICT,
                AppError::InvalidCredentials | AppError::Unauthenticated => {
                    StatusCode::UNAUTHORIZED
                }
                AppError::ChatNotFound => StatusCode::NOT_FOUND,
                AppError::NotMember | AppError::NotOwner => StatusCode::FORBIDDEN,
                AppError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
                AppError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            },
            Self::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Self::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::UnreadableBody => StatusCode::BAD_REQUEST,
            Self::RequestTimeout => StatusCode::REQUEST_TIMEOUT,
            Self::RouteNotFound => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Self::TooManyRequests { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::NotWebSocketHandshake { status, .. } => *status,
        }
    }

    fn field_errors(&self) -> Vec<FieldProblem> {
        match self {
            Self::App(AppError::Invalid(invalid)) if !invalid.field().is_empty() => {
                vec![FieldProblem {
                    field: invalid.field().to_owned(),
                    message: invalid.message().to_owned(),
                }]
            }
            // Each unknown id once, by the id itself (the contract: "naming the unknown
            // ids"), in the order the request gave them.
            Self::App(AppError::UnknownUsers(unknown)) => unknown_ids(unknown)
                .map(|id| FieldProblem {
                    field: "members".to_owned(),
                    message: format!("no such user: {id}"),
                })
                .collect(),
            _ => Vec::new(),
        }
    }

    /// The problem's `detail`: the error's own sentence, naming the unknown ids when
    /// there are some.
    fn detail(&self) -> String {
        match self {
            Self::App(AppError::UnknownUsers(unknown)) if !unknown.is_empty() => {
                let ids: Vec<String> = unknown_ids(unknown).map(|id| id.to_string()).collect();
                format!("no such user: {}", ids.join(", "))
            }
            _ => self.to_string(),
        }
    }
}

/// The distinct ids of `unknown`, in the order first given.
fn unknown_ids(unknown: &[UnknownMember]) -> impl Iterator<Item = domain::UserId> + '_ {
    let mut seen = std::collections::HashSet::new();
    unknown
        .iter()
        .map(|u| u.id)
        .filter(move |id| seen.insert(*id))
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        match &self {
            Self::App(AppError::Internal(source)) => {
                tracing::error!(error = %source, source = ?source, "request failed on our side");
            }
            Self::App(AppError::Unavailable(source)) => {
                tracing::warn!(error = %source, source = ?source, "the database is unreachable");
            }
            _ => {}
        }
        let status = self.status();
        let mut response = problem(status, self.detail(), self.field_errors());
        if status == StatusCode::UNAUTHORIZED {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        if let Self::TooManyRequests { retry_after, .. } = &self {
            // Whole seconds, rounded up (and at least 1): a client that waits exactly
            // this long finds the limit open again.
            let seconds = retry_after.as_secs() + u64::from(retry_after.subsec_nanos() > 0);
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(seconds.max(1)));
        }
        if status == StatusCode::SERVICE_UNAVAILABLE {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(RETRY_AFTER_SECONDS));
        }
        response
    }
}

fn problem(status: StatusCode, detail: String, errors: Vec<FieldProblem>) -> Response {
    let body = Problem {
        kind: "about:blank",
        title: status.canonical_reason().unwrap_or("Error"),
        status: status.as_u16(),
        detail,
        errors,
    };
    let mut response = (status, Json(body)).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/problem+json"),
    );
    response
}

/// The bytes of a problem document, for an answer written outside axum (see
/// `parse_errors.rs`).
pub(crate) fn problem_document(status: StatusCode, detail: &str) -> Vec<u8> {
    let body = Problem {
        kind: "about:blank",
        title: status.canonical_reason().unwrap_or("Error"),
        status: status.as_u16(),
        detail: detail.to_owned(),
        errors: Vec::new(),
    };
    serde_json::to_vec(&body).unwrap_or_default()
}

/// The fallback for paths no route matches.
pub(crate) async fn route_not_found() -> ApiError {
    ApiError::RouteNotFound
}

/// The fallback for a known path with a method it does not serve.
pub(crate) async fn method_not_allowed() -> ApiError {
    ApiError::MethodNotAllowed
}

/// Turns a panic in a handler into a plain 500 problem; the panic itself is logged.
pub(crate) fn panic_response(panic: Box<dyn Any + Send + 'static>) -> Response {
    let what = panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_default();
    tracing::error!(panic = %what, "handler panicked");
    problem(
        StatusCode::INTERNAL_SERVER_ERROR,
        "internal error".to_owned(),
        Vec::new(),
    )
}
