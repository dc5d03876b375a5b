//! What browsers are told on every response, whatever answered it (REST, the web client,
//! Socket.IO, `/ws`): the security headers helmet sets for the old deployment, HSTS
//! when configured, and CORS for the configured origins. Wrapped around the whole
//! service, outside Socket.IO, so that its long-polling answers get them too.

use std::time::Duration;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderName, HeaderValue, Method, header};
use axum::middleware::Next;
use axum::response::Response;
use tower_http::cors::{AllowOrigin, CorsLayer};

/// The policy of an HTML page that sets none itself (the web client sets its own,
/// stricter one): scripts, styles, images, fonts and network access from this origin
/// only; inline `style` attributes and `data:` images allowed, which documentation pages
/// such as Swagger UI need; no plugins, no `<base>`, forms posted only here, no framing.
pub const HTML_CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; \
style-src 'self' 'unsafe-inline'; img-src 'self' data:; font-src 'self' data:; \
connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; \
frame-ancestors 'none'";

/// The policy of every other answer (JSON, problem bodies): it is no page, so it may
/// load nothing and be framed by nobody, should a browser ever render it.
pub const API_CONTENT_SECURITY_POLICY: &str = "default-src 'none'; frame-ancestors 'none'";

/// Headers every response carries, unless the handler set its own.
const ALWAYS: [(HeaderName, &str); 5] = [
    (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
    (header::X_FRAME_OPTIONS, "DENY"),
    (header::REFERRER_POLICY, "no-referrer"),
    (
        HeaderName::from_static("cross-origin-opener-policy"),
        "same-origin",
    ),
    (
        HeaderName::from_static("x-permitted-cross-domain-policies"),
        "none",
    ),
];

/// What the browser-facing layers need from the configuration.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BrowserPolicy {
    /// Origins (`https://app.example.com`) whose pages may call this API; empty means
    /// no CORS headers at all, so only pages of this origin can.
    pub cors_allowed_origins: Vec<HeaderValue>,
    /// `Strict-Transport-Security: max-age=…`, only for a server reached over HTTPS
    /// (behind a TLS-terminating proxy); `None` sends none.
    pub hsts_max_age: Option<Duration>,
}

/// Precomputed header values, shared by every response.
#[derive(Clone)]
struct Computed {
    hsts: Option<HeaderValue>,
}

/// `service` with the security headers on every response and, when origins are
/// configured, CORS (preflights answered before anything else sees them).
pub fn protect(service: Router, policy: &BrowserPolicy) -> Router {
    let computed = Computed {
        hsts: policy
            .hsts_max_age
            .and_then(|age| HeaderValue::from_str(&format!("max-age={}", age.as_secs())).ok()),
    };
    let service = if policy.cors_allowed_origins.is_empty() {
        service
    } else {
        service.layer(cors(&policy.cors_allowed_origins))
    };
    service.layer(axum::middleware::from_fn_with_state(computed, add_headers))
}

/// CORS for `origins`: the methods and headers the API uses (bearer tokens, JSON
/// bodies, request ids); no cookies, since the API authenticates with bearer tokens.
fn cors(origins: &[HeaderValue]) -> CorsLayer {
    CorsLayer::new()
        .allow_origin(AllowOrigin::list(origins.iter().cloned()))
        .allow_methods([Method::GET, Method::POST, Method::DELETE, Method::OPTIONS])
        .allow_headers([
            header::AUTHORIZATION,
            header::CONTENT_TYPE,
            HeaderName::from_static("x-request-id"),
        ])
        .expose_headers([
            HeaderName::from_static("x-request-id"),
            header::RETRY_AFTER,
            header::WWW_AUTHENTICATE,
        ])
        .max_age(Duration::from_secs(600))
}

async fn add_headers(State(computed): State<Computed>, request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    let is_html = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.trim_start().starts_with("text/html"));
    let headers = response.headers_mut();
    for (name, value) in ALWAYS {
        if !headers.contains_key(&name) {
            headers.insert(name, HeaderValue::from_static(value));
        }
    }
    if !headers.contains_key(header::CONTENT_SECURITY_POLICY) {
        let policy = if is_html {
            HTML_CONTENT_SECURITY_POLICY
        } else {
            API_CONTENT_SECURITY_POLICY
        };
        headers.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(policy),
        );
    }
    if let Some(hsts) = &computed.hsts {
        headers.insert(header::STRICT_TRANSPORT_SECURITY, hsts.clone());
    }
    response
}

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use axum::http::{Request, StatusCode};
    use axum::response::Html;
    use axum::routing::get;
    use tower::ServiceExt;

    use super::*;

    async fn answer(router: &Router, path: &str) -> axum::http::HeaderMap {
        let request = Request::get(path).body(Body::empty()).expect("a request");
        let response = router.clone().oneshot(request).await.expect("infallible");
        assert_eq!(response.status(), StatusCode::OK);
        response.headers().clone()
    }

    #[tokio::test]
    async fn an_html_page_without_a_policy_gets_the_page_policy_and_keeps_its_own_if_set() {
        let router = protect(
            Router::new()
                .route("/docs", get(|| async { Html("<p>docs</p>") }))
                .route(
                    "/own",
                    get(|| async {
                        (
                            [(header::CONTENT_SECURITY_POLICY, "default-src 'none'")],
                            Html("<p>strict</p>"),
                        )
                    }),
                )
                .route("/json", get(|| async { axum::Json(1) })),
            &BrowserPolicy::default(),
        );
        let docs = answer(&router, "/docs").await;
        assert_eq!(
            docs[header::CONTENT_SECURITY_POLICY],
            HTML_CONTENT_SECURITY_POLICY
        );
        assert_eq!(docs[header::X_FRAME_OPTIONS], "DENY");
        assert!(docs.get(header::STRICT_TRANSPORT_SECURITY).is_none());
        let own = answer(&router, "/own").await;
        assert_eq!(own[header::CONTENT_SECURITY_POLICY], "default-src 'none'");
        let json = answer(&router, "/json").await;
        assert_eq!(
            json[header::CONTENT_SECURITY_POLICY],
            API_CONTENT_SECURITY_POLICY
        );
        assert_eq!(json[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
    }
}
