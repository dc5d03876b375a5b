//! The REST adapter: every route of the contract on axum, with strict JSON bodies,
//! RFC 9457 problem details for every error, a request id and a tracing span on every
//! request. Handlers translate HTTP into use-case calls and nothing more.

mod browser;
mod docs;
mod error;
mod extract;
mod limits;
mod metrics;
mod openapi;
pub mod pages;
mod parse_errors;
mod routes;
mod throttle;

use std::sync::Arc;
use std::time::Duration;

use app::App;
use async_trait::async_trait;
use axum::Router;
use axum::body::Body;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderName, Request};
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;

pub use self::metrics::describe as describe_metrics;
pub use browser::{
    API_CONTENT_SECURITY_POLICY, BrowserPolicy, HTML_CONTENT_SECURITY_POLICY, protect,
};
pub use docs::DOCS_CONTENT_SECURITY_POLICY;
pub use error::ApiError;
pub use extract::bearer_token;
pub use limits::RequestLimits;
pub use parse_errors::ProblemIo;
pub use throttle::{ClientAddressSource, Limited, Rate, RateLimits, Throttle};
pub use utoipa_axum::router::OpenApiRouter;

/// Largest request body accepted; a larger one is `413`.
pub const BODY_LIMIT_BYTES: usize = 64 * 1024;

/// Answers `/readyz`: whether the service's dependencies answer.
#[async_trait]
pub trait ReadinessProbe: Send + Sync {
    /// The state of each dependency right now.
    async fn check(&self) -> Readiness;
}

/// What `/readyz` reports. Each `Err` holds a short reason, logged but not shown to the
/// client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Readiness {
    /// The database answers. Without it the node is not ready (`503`).
    pub database: Result<(), String>,
    /// The link to the other nodes, for a node of a cluster (`None` when it runs alone).
    /// Without it the node still serves its own sockets, so it stays ready (`200`), and
    /// says it is degraded: taking every node out of a load balancer because the
    /// broker is away would turn a partial outage into a full one.
    pub cluster: Option<Result<(), String>>,
}

/// What every handler can reach.
#[derive(Clone)]
pub struct HttpState {
    /// The use cases.
    pub app: App,
    /// The readiness check behind `/readyz`.
    pub readiness: Arc<dyn ReadinessProbe>,
}

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Longest request id kept from a client, in bytes; a longer one is replaced.
pub const REQUEST_ID_MAX_BYTES: usize = 64;

/// Whether a client's request id is fit to keep, echo and log: 1 to
/// [`REQUEST_ID_MAX_BYTES`] visible ASCII characters (no spaces, no control characters,
/// nothing a terminal or a log parser could misread).
fn fit_request_id(id: &[u8]) -> bool {
    (1..=REQUEST_ID_MAX_BYTES).contains(&id.len()) && id.iter().all(u8::is_ascii_graphic)
}

/// Removes a client's `x-request-id` that is unfit (or given more than once), so that
/// [`SetRequestIdLayer`] makes a fresh one: a 90 KB id would otherwise be echoed and fill
/// a log line, and raw bytes in it would be echoed back.
async fn drop_unfit_request_id(mut request: Request<Body>) -> Request<Body> {
    let mut given = request.headers().get_all(&REQUEST_ID).iter();
    let fit = match (given.next(), given.next()) {
        (Some(id), None) => fit_request_id(id.as_bytes()),
        _ => false,
    };
    if !fit {
        request.headers_mut().remove(&REQUEST_ID);
    }
    request
}

/// The REST router with its middleware and the default [`RequestLimits`].
pub fn router(state: HttpState) -> Router {
    router_with(state, OpenApiRouter::new(), RequestLimits::default())
}

/// [`router`] with `pages` (routes that are not the API, such as the web client, each
/// described: see [`pages`]) served under the same middleware, so they too carry request
/// ids and are traced, and with `limits`: request ids, tracing, body limit, request
/// timeout, rate limits, panic containment. Serves the descriptions too:
/// `/openapi.json` (every route of this router, the pages included), `/asyncapi.json`
/// and `/docs`.
/// Other adapters (the sockets) merge their routes beside it, untouched by these limits
/// (a socket lives longer than any request).
pub fn router_with(state: HttpState, pages: OpenApiRouter, limits: RequestLimits) -> Router {
    let (rest, mut described) = routes::routes().split_for_parts();
    let (pages, pages_described) = pages.split_for_parts();
    let (docs, docs_described) = docs::routes().split_for_parts();
    described.merge(pages_described);
    described.merge(docs_described);
    let descriptions = Arc::new(docs::Descriptions::new(&openapi::document(described)));
    rest.with_state(state)
        .merge(pages)
        .merge(docs.with_state(descriptions))
        .fallback(error::route_not_found)
        .method_not_allowed_fallback(error::method_not_allowed)
        .layer(DefaultBodyLimit::max(BODY_LIMIT_BYTES))
        .layer(axum::Extension(Throttle::new(limits.rates)))
        .layer(axum::middleware::from_fn_with_state(
            limits.timeout,
            limits::enforce,
        ))
        .layer(CatchPanicLayer::custom(error::panic_response))
        // Outside the limits and the panic guard, so that their answers are counted too.
        .layer(axum::middleware::from_fn(crate::metrics::record))
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(|request: &Request<_>| {
                    // The matched route, never the raw URI: query strings may carry tokens.
                    let route = request
                        .extensions()
                        .get::<axum::extract::MatchedPath>()
                        .map_or("unmatched", |p| p.as_str())
                        .to_owned();
                    let request_id = request
                        .headers()
                        .get(&REQUEST_ID)
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or_default()
                        .to_owned();
                    tracing::info_span!("request", method = %request.method(), route, request_id)
                })
                .on_response(
                    |response: &axum::http::Response<_>,
                     latency: Duration,
                     _span: &tracing::Span| {
                        tracing::info!(
                            status = response.status().as_u16(),
                            latency_ms = latency.as_millis() as u64,
                            "response"
                        );
                    },
                )
                .on_failure(()),
        )
        .layer(PropagateRequestIdLayer::new(REQUEST_ID))
        .layer(SetRequestIdLayer::new(REQUEST_ID, MakeRequestUuid))
        .layer(axum::middleware::map_request(drop_unfit_request_id))
}

#[cfg(test)]
mod tests {
    use super::fit_request_id;

    #[test]
    fn a_request_id_is_kept_only_when_short_and_visible_ascii() {
        assert!(fit_request_id(b"abc-123_XYZ.1"));
        assert!(fit_request_id(&[b'a'; 64]));
        assert!(!fit_request_id(&[b'a'; 65]));
        assert!(!fit_request_id(b""));
        assert!(!fit_request_id(b"two words"));
        assert!(!fit_request_id(b"tab\there"));
        assert!(!fit_request_id("caf\u{e9}".as_bytes()));
        assert!(!fit_request_id(&[0xff, 0xfe]));
    }
}
