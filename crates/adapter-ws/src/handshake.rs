//! The one front door of both socket protocols: where a handshake's access token may
//! be, and what checking it answers. Each protocol only turns a refusal into its own
//! form (Socket.IO's `connect_error`, `/ws`'s problem response).

use app::{App, AppError};
use axum::http::HeaderMap;
use domain::ports::VerifiedToken;

/// The handshake's token, looked for in this order: the protocol's own field (Socket.IO's
/// `auth.token`), an `Authorization: Bearer` header, then a `?token=` query parameter
/// (for browsers, which cannot set headers on a WebSocket).
pub(crate) fn token(
    own: Option<String>,
    headers: &HeaderMap,
    query: Option<&str>,
) -> Option<String> {
    own.or_else(|| adapter_http::bearer_token(headers).map(str::to_owned))
        .or_else(|| token_from_query(query))
}

/// Checks a handshake's token: whose socket it opens, and until when.
///
/// # Errors
/// [`AppError::Unauthenticated`] without a valid token; [`AppError::Unavailable`] or
/// [`AppError::Internal`] when it cannot be checked.
pub(crate) async fn admit(app: &App, token: Option<String>) -> Result<VerifiedToken, AppError> {
    let token = token.ok_or(AppError::Unauthenticated)?;
    app.auth.authenticate_until(&token).await
}

/// The `token` query parameter, percent-decoded.
fn token_from_query(query: Option<&str>) -> Option<String> {
    form_urlencoded::parse(query?.as_bytes())
        .find(|(name, _)| name == "token")
        .map(|(_, value)| value.into_owned())
        .filter(|token| !token.is_empty())
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;
    use axum::http::header::AUTHORIZATION;

    use super::*;

    #[test]
    fn the_token_query_parameter_is_found_and_decoded() {
        assert_eq!(
            token_from_query(Some("EIO=4&token=a%2Eb.c&transport=websocket")).as_deref(),
            Some("a.b.c")
        );
        assert_eq!(token_from_query(Some("EIO=4&token=")), None);
        assert_eq!(token_from_query(Some("EIO=4")), None);
        assert_eq!(token_from_query(None), None);
    }

    #[test]
    fn the_protocol_s_own_token_comes_first_then_the_header_then_the_query() {
        let mut headers = HeaderMap::new();
        let query = Some("token=from-query");
        assert_eq!(token(None, &headers, query).as_deref(), Some("from-query"));
        headers.insert(
            AUTHORIZATION,
            HeaderValue::from_static("bearer from-header"),
        );
        assert_eq!(token(None, &headers, query).as_deref(), Some("from-header"));
        assert_eq!(
            token(Some("own".into()), &headers, query).as_deref(),
            Some("own")
        );
        assert_eq!(token(None, &HeaderMap::new(), None), None);
    }
}
