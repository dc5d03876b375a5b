//! The HTTP metrics (README.md, "Metrics"): every request's latency by route template,
//! method and status, and failed logins. Labels come from the matched route, never
//! the raw path, and from a fixed list of methods, so a client cannot grow the number
//! of series (a path with ids, or a made-up method, would make one per request).

use std::time::Instant;

use axum::body::Body;
use axum::extract::{MatchedPath, Request};
use axum::http::{Method, StatusCode};
use axum::middleware::Next;
use axum::response::Response;

/// The route label of a request that matched no route (a `404`).
const UNMATCHED: &str = "unmatched";

/// Describes this crate's metrics to the installed recorder (the `# HELP` lines).
pub fn describe() {
    metrics::describe_histogram!(
        "messenger_http_request_duration_seconds",
        "HTTP requests and their latency in seconds, by method, route template and status."
    );
    metrics::describe_counter!(
        "messenger_login_failures_total",
        "POST /auth/login answered 401."
    );
}

/// Times `request` and records it under its route, method and status.
pub(crate) async fn record(request: Request<Body>, next: Next) -> Response {
    let started = Instant::now();
    let method = method_label(request.method());
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| UNMATCHED.to_owned(), |path| path.as_str().to_owned());
    let response = next.run(request).await;
    let status = response.status();
    if route == "/auth/login" && status == StatusCode::UNAUTHORIZED {
        metrics::counter!("messenger_login_failures_total").increment(1);
    }
    metrics::histogram!(
        "messenger_http_request_duration_seconds",
        "method" => method,
        "route" => route,
        "status" => status.as_str().to_owned(),
    )
    .record(started.elapsed());
    response
}

/// The method as a label: the standard methods by name, any other as `other`.
fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        Method::CONNECT => "CONNECT",
        Method::TRACE => "TRACE",
        _ => "other",
    }
}

#[cfg(test)]
mod tests {
    use axum::Router;
    use axum::routing::get;
    use metrics_util::debugging::{DebugValue, DebuggingRecorder};
    use tower::ServiceExt;

    use super::*;

    /// The request counts of `recorder`'s latency histogram, by (method, route, status).
    fn requests(recorder: &DebuggingRecorder) -> Vec<(String, String, String, usize)> {
        let mut seen: Vec<_> = recorder
            .snapshotter()
            .snapshot()
            .into_vec()
            .into_iter()
            .filter(|(key, ..)| key.key().name() == "messenger_http_request_duration_seconds")
            .map(|(key, _, _, value)| {
                let label = |name: &str| {
                    key.key()
                        .labels()
                        .find(|label| label.key() == name)
                        .map(|label| label.value().to_owned())
                        .unwrap_or_default()
                };
                let DebugValue::Histogram(samples) = value else {
                    panic!("a histogram");
                };
                (
                    label("method"),
                    label("route"),
                    label("status"),
                    samples.len(),
                )
            })
            .collect();
        seen.sort();
        seen
    }

    #[tokio::test]
    async fn requests_are_counted_by_route_template_and_never_by_raw_path_or_made_up_method() {
        let recorder = DebuggingRecorder::new();
        let router = Router::new()
            .route("/chats/{id}", get(|| async { "chat" }))
            .layer(axum::middleware::from_fn(record));
        let send = |method: &str, uri: &str| {
            let request = Request::builder()
                .method(method)
                .uri(uri)
                .body(Body::empty())
                .unwrap();
            router.clone().oneshot(request)
        };
        // The facade's local recorder holds for one thread; this runtime has one.
        let _guard = metrics::set_default_local_recorder(&recorder);
        send("GET", "/chats/1").await.unwrap();
        send("GET", "/chats/2").await.unwrap();
        send("BREW", "/chats/3").await.unwrap();
        send("GET", "/nowhere/4").await.unwrap();
        assert_eq!(
            requests(&recorder),
            [
                ("GET".into(), "/chats/{id}".into(), "200".into(), 2),
                ("GET".into(), "unmatched".into(), "404".into(), 1),
                ("other".into(), "/chats/{id}".into(), "405".into(), 1),
            ]
        );
    }
}
