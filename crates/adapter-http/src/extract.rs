//! Extractors that turn the parts of a request into domain values, rejecting with
//! [`ApiError`] so that every failure has the contract's problem body. Bodies and query
//! strings are only *read* here; handlers parse them after the access checks, in the
//! contract's order.

use std::collections::HashMap;

use app::AppError;
use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Path, Query, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};
use domain::{ChatId, InvalidInput, UserId};
use serde::de::DeserializeOwned;

use crate::{ApiError, HttpState};

/// The authenticated caller, from `Authorization: Bearer <token>`. Any problem with the
/// header, the token or its user is `401`.
pub(crate) struct Caller(pub UserId);

impl FromRequestParts<HttpState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &HttpState,
    ) -> Result<Self, Self::Rejection> {
        let token = bearer_token(&parts.headers).ok_or(AppError::Unauthenticated)?;
        Ok(Self(state.app.auth.authenticate(token).await?))
    }
}

/// The token of an `Authorization: Bearer` header; the scheme is case-insensitive (RFC
/// 9110). The one parser of bearer credentials, for REST and the socket handshakes.
pub fn bearer_token(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// The `{chatId}` path segment; malformed is `400`.
pub(crate) struct ChatPath(pub ChatId);

/// How [`ChatPath`] appears in the OpenAPI document.
#[derive(utoipa::IntoParams)]
#[into_params(names("chatId"), parameter_in = Path)]
#[allow(dead_code)] // Only described, never built: the handler reads a `ChatPath`.
pub(crate) struct ChatIdParam(
    /// The chat's id: a lowercase, hyphenated UUID.
    uuid::Uuid,
);

impl<S: Send + Sync> FromRequestParts<S> for ChatPath {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let Path(raw) = Path::<String>::from_request_parts(parts, state)
            .await
            .map_err(|_| {
                AppError::Invalid(InvalidInput::new(
                    "chatId",
                    "must be a valid chat id (a lowercase, hyphenated UUID)",
                ))
            })?;
        Ok(Self(
            ChatId::parse(&raw, "chatId").map_err(AppError::Invalid)?,
        ))
    }
}

/// A request body of at most [`crate::BODY_LIMIT_BYTES`], read but not yet parsed.
pub(crate) struct JsonBody(Bytes);

impl<S: Send + Sync> FromRequest<S> for JsonBody {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        // JSON in another charset than UTF-8 would be misread: refused like any other
        // media type.
        let content_type = request.headers().get(header::CONTENT_TYPE);
        if content_type.is_some_and(|ct| !is_utf8_json(ct.as_bytes())) {
            return Err(ApiError::UnsupportedMediaType);
        }
        Ok(Self(read_body(request, state).await?))
    }
}

/// What a request's `Content-Type` declares its body to be.
enum MediaType {
    /// `application/json` or `…+json`.
    Json,
    /// `application/x-www-form-urlencoded`.
    Form,
    /// Anything else.
    Other,
}

/// The declared media type of the body, if any.
fn media_type(request: &Request) -> Option<MediaType> {
    let declared = request.headers().get(header::CONTENT_TYPE)?;
    let essence = declared
        .to_str()
        .unwrap_or_default()
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    Some(
        if essence == "application/json" || essence.ends_with("+json") {
            MediaType::Json
        } else if essence == "application/x-www-form-urlencoded" {
            MediaType::Form
        } else {
            MediaType::Other
        },
    )
}

/// Reads the whole body, within the body limit.
async fn read_body<S: Send + Sync>(request: Request, state: &S) -> Result<Bytes, ApiError> {
    Bytes::from_request(request, state)
        .await
        .map_err(|rejection| {
            if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::PayloadTooLarge
            } else {
                ApiError::UnreadableBody
            }
        })
}

/// The body of `/auth/register` and `/auth/login`: JSON, or an HTML form
/// (`application/x-www-form-urlencoded`), which the old API accepted there too.
pub(crate) enum FormOrJsonBody {
    /// A JSON body (or one without a `Content-Type`).
    Json(JsonBody),
    /// A form body.
    Form(Bytes),
}

impl<S: Send + Sync> FromRequest<S> for FormOrJsonBody {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        match media_type(&request) {
            Some(MediaType::Form) => Ok(Self::Form(read_body(request, state).await?)),
            _ => Ok(Self::Json(JsonBody::from_request(request, state).await?)),
        }
    }
}

impl FormOrJsonBody {
    /// Parses the body into `T`, as strictly as `T`'s serde attributes say.
    pub(crate) fn parse<T: DeserializeOwned>(&self) -> Result<T, InvalidInput> {
        match self {
            Self::Json(body) => body.parse(),
            Self::Form(bytes) => serde_urlencoded::from_bytes(bytes)
                .map_err(|err| InvalidInput::new("", format!("invalid request body: {err}"))),
        }
    }

    /// Checks only that the body is well-formed (any form is).
    pub(crate) fn check_well_formed(&self) -> Result<(), InvalidInput> {
        match self {
            Self::Json(body) => body.check_well_formed(),
            Self::Form(_) => Ok(()),
        }
    }
}

/// Whether a `Content-Type` declares JSON (`application/json` or `…+json`) in UTF-8:
/// without a `charset` parameter (JSON is UTF-8, RFC 8259) or with `charset=utf-8`.
/// Another charset (`utf-16`, `latin1`) would be misread as UTF-8, so it is refused.
fn is_utf8_json(content_type: &[u8]) -> bool {
    let Ok(content_type) = std::str::from_utf8(content_type) else {
        return false;
    };
    let mut parts = content_type.split(';');
    let essence = parts.next().unwrap_or_default().trim().to_ascii_lowercase();
    if essence != "application/json" && !essence.ends_with("+json") {
        return false;
    }
    parts.all(|parameter| match parameter.split_once('=') {
        Some((name, value)) if name.trim().eq_ignore_ascii_case("charset") => {
            let value = value.trim().trim_matches('"');
            value.eq_ignore_ascii_case("utf-8") || value.eq_ignore_ascii_case("utf8")
        }
        _ => true,
    })
}

impl JsonBody {
    /// Parses the body strictly into `T` (whose serde attributes deny unknown fields).
    /// The body must be a JSON object: serde would otherwise accept an array of the
    /// fields' values in order.
    pub(crate) fn parse<T: DeserializeOwned>(&self) -> Result<T, InvalidInput> {
        let invalid =
            |err: serde_json::Error| InvalidInput::new("", format!("invalid request body: {err}"));
        let first = self.0.iter().find(|b| !b.is_ascii_whitespace());
        if first != Some(&b'{') {
            // Say why precisely: malformed JSON, or well-formed but not an object.
            serde_json::from_slice::<serde::de::IgnoredAny>(&self.0).map_err(invalid)?;
            return Err(InvalidInput::new(
                "",
                "the request body must be a JSON object",
            ));
        }
        serde_json::from_slice(&self.0).map_err(invalid)
    }

    /// Checks only that the body is well-formed JSON, of any shape. Every string is
    /// read, not skipped, so that invalid UTF-8 and a lone surrogate escape (`"\ud800"`)
    /// are malformed too (serde skips unread strings without checking them).
    pub(crate) fn check_well_formed(&self) -> Result<(), InvalidInput> {
        serde_json::from_slice::<serde_json::Value>(&self.0)
            .map(drop)
            .map_err(|err| InvalidInput::new("", format!("invalid request body: {err}")))
    }
}

/// The query string as name → value, read but not yet validated. Unknown parameters
/// are ignored (proxies and clients add cache-busters); an empty value counts as absent.
pub(crate) struct QueryParams(HashMap<String, String>);

impl<S: Send + Sync> FromRequestParts<S> for QueryParams {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let Query(map) = Query::<HashMap<String, String>>::from_request_parts(parts, state)
            .await
            .map_err(|_| AppError::Invalid(InvalidInput::new("", "malformed query string")))?;
        Ok(Self(map))
    }
}

impl QueryParams {
    /// The value of `name`, if given and not empty.
    pub(crate) fn get(&self, name: &str) -> Option<&str> {
        self.0
            .get(name)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }

    /// `name` as an integer, if given.
    pub(crate) fn integer(&self, name: &str) -> Result<Option<i64>, InvalidInput> {
        self.get(name)
            .map(|raw| {
                raw.parse::<i64>()
                    .map_err(|_| InvalidInput::new(name, "must be an integer"))
            })
            .transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::{bearer_token, is_utf8_json};

    #[test]
    fn json_is_accepted_in_utf8_only() {
        for fine in [
            "application/json",
            "Application/JSON; charset=UTF-8",
            "application/json;charset=\"utf-8\"",
            "application/problem+json; charset=utf8",
            "application/json; boundary=x",
        ] {
            assert!(is_utf8_json(fine.as_bytes()), "{fine}");
        }
        for refused in [
            "application/json; charset=utf-16",
            "application/json; charset=latin1",
            "application/json; charset=",
            "text/plain",
            "application/x-www-form-urlencoded",
        ] {
            assert!(!is_utf8_json(refused.as_bytes()), "{refused}");
        }
    }

    fn token_of(authorization: &str) -> Option<String> {
        let mut headers = axum::http::HeaderMap::new();
        headers.insert(
            axum::http::header::AUTHORIZATION,
            axum::http::HeaderValue::from_str(authorization).unwrap(),
        );
        bearer_token(&headers).map(str::to_owned)
    }

    #[test]
    fn bearer_scheme_is_case_insensitive_and_token_required() {
        assert_eq!(token_of("Bearer abc").as_deref(), Some("abc"));
        assert_eq!(token_of("bearer abc").as_deref(), Some("abc"));
        assert_eq!(token_of("Basic abc"), None);
        assert_eq!(token_of("Bearer "), None);
        assert_eq!(token_of("Bearer"), None);
        assert_eq!(bearer_token(&axum::http::HeaderMap::new()), None);
    }
}
