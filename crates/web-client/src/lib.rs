//! The web client: one page of plain HTML, CSS and JavaScript modules (no build step),
//! embedded in the binary at compile time and served at `/`, its files under `/assets/`.
//! Every response carries a strict Content-Security-Policy: the page runs only its own
//! scripts, loads nothing from another origin and cannot be framed.

use axum::Router;
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

/// The policy of every response: only this origin's scripts, styles and images (no
/// inline script or style), network access only back to this origin (REST and the
/// `/ws` socket: CSP Level 3 `'self'` covers `ws:`/`wss:` to the same host), no
/// framing, no form posted anywhere (a form submitted without its script would put the
/// password in a URL), and Trusted Types with no policy, so any attempt to turn a string
/// into HTML (`innerHTML`, `insertAdjacentHTML`, `document.write`) throws instead.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
style-src 'self'; img-src 'self'; connect-src 'self'; base-uri 'none'; form-action 'none'; \
frame-ancestors 'none'; require-trusted-types-for 'script'; trusted-types 'none'";

/// One embedded file and the path it is served at.
struct Asset {
    path: &'static str,
    /// Its name under `assets/` (read by the test that compares the list with the folder).
    #[cfg_attr(not(test), allow(dead_code))]
    file: &'static str,
    content_type: &'static str,
    body: &'static [u8],
}

macro_rules! asset {
    ($path:literal, $file:literal, $content_type:expr) => {
        Asset {
            path: $path,
            file: $file,
            content_type: $content_type,
            body: include_bytes!(concat!("../assets/", $file)),
        }
    };
}

const HTML: &str = "text/html; charset=utf-8";
const JS: &str = "text/javascript; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";
const SVG: &str = "image/svg+xml";

/// Every file of `assets/` (a test checks that none is missing).
const ASSETS: &[Asset] = &[
    asset!("/", "index.html", HTML),
    asset!("/assets/app.css", "app.css", CSS),
    asset!("/assets/icon.svg", "icon.svg", SVG),
    asset!("/assets/app.js", "app.js", JS),
    asset!("/assets/api.js", "api.js", JS),
    asset!("/assets/socket.js", "socket.js", JS),
    asset!("/assets/dom.js", "dom.js", JS),
    asset!("/assets/session.js", "session.js", JS),
    asset!("/assets/login.js", "login.js", JS),
    asset!("/assets/chats.js", "chats.js", JS),
    asset!("/assets/conversation.js", "conversation.js", JS),
    asset!("/assets/dialogs.js", "dialogs.js", JS),
];

/// Every path the client serves, with its media type (for the API's description).
pub fn files() -> impl Iterator<Item = (&'static str, &'static str)> {
    ASSETS.iter().map(|asset| (asset.path, asset.content_type))
}

/// The client's routes: `GET /` (the page) and `GET /assets/…` (its files), each
/// answering `HEAD` too. A path that names no file is left to the router it is merged
/// into, so it gets that router's `404`.
pub fn router() -> Router {
    ASSETS.iter().fold(Router::new(), |router, asset| {
        let etag = entity_tag(asset.body);
        router.route(
            asset.path,
            get(move |request: HeaderMap| async move { respond(asset, &etag, &request) }),
        )
    })
}

/// Answers with the file, or `304` when the client's copy (`If-None-Match`) is current.
/// The files change only with the binary, so the browser may keep them, but must ask
/// (`no-cache`) each time: their names carry no version, and after an upgrade an old
/// script beside a new page would break the client.
fn respond(asset: &Asset, etag: &HeaderValue, request: &HeaderMap) -> Response {
    let mut response = if is_current(request, etag) {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        let mut response = asset.body.into_response();
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static(asset.content_type),
        );
        response
    };
    let headers = response.headers_mut();
    headers.insert(header::ETAG, etag.clone());
    for (name, value) in [
        (header::CACHE_CONTROL, "no-cache"),
        (header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::REFERRER_POLICY, "no-referrer"),
        (header::X_FRAME_OPTIONS, "DENY"),
        (
            HeaderName::from_static("cross-origin-opener-policy"),
            "same-origin",
        ),
        (
            HeaderName::from_static("cross-origin-resource-policy"),
            "same-origin",
        ),
    ] {
        headers.insert(name, HeaderValue::from_static(value));
    }
    response
}

/// Whether `If-None-Match` names `etag` (weak comparison, as RFC 9110 asks) or is `*`.
fn is_current(request: &HeaderMap, etag: &HeaderValue) -> bool {
    request
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .flat_map(|value| value.as_bytes().split(|byte| *byte == b','))
        .map(<[u8]>::trim_ascii)
        .any(|tag| tag == b"*" || tag.strip_prefix(b"W/").unwrap_or(tag) == etag.as_bytes())
}

/// A strong entity tag from the file's bytes (64-bit FNV-1a), so it changes exactly when
/// the file does, whatever the build.
fn entity_tag(body: &[u8]) -> HeaderValue {
    let hash = body.iter().fold(0xcbf2_9ce4_8422_2325_u64, |hash, byte| {
        (hash ^ u64::from(*byte)).wrapping_mul(0x0100_0000_01b3)
    });
    HeaderValue::from_str(&format!("\"{hash:016x}\"")).unwrap_or(HeaderValue::from_static("\"0\""))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use axum::body::{Body, to_bytes};
    use axum::http::{Method, Request};
    use tower::ServiceExt;

    async fn get_with(path: &str, headers: &[(HeaderName, &str)]) -> Response {
        let mut request = Request::builder().method(Method::GET).uri(path);
        for (name, value) in headers {
            request = request.header(name, *value);
        }
        router()
            .oneshot(request.body(Body::empty()).unwrap())
            .await
            .unwrap()
    }

    async fn text(response: Response) -> String {
        String::from_utf8(
            to_bytes(response.into_body(), 1 << 20)
                .await
                .unwrap()
                .to_vec(),
        )
        .unwrap()
    }

    #[tokio::test]
    async fn the_page_is_html_under_a_policy_that_allows_no_inline_script_and_no_framing() {
        let response = get_with("/", &[]).await;
        assert_eq!(response.status(), StatusCode::OK);
        let headers = response.headers().clone();
        assert_eq!(headers[header::CONTENT_TYPE], "text/html; charset=utf-8");
        let csp = headers[header::CONTENT_SECURITY_POLICY].to_str().unwrap();
        for directive in [
            "default-src 'none'",
            "script-src 'self'",
            "style-src 'self'",
            "connect-src 'self'",
            "frame-ancestors 'none'",
            "require-trusted-types-for 'script'",
        ] {
            assert!(csp.contains(directive), "{directive} missing from {csp}");
        }
        assert!(!csp.contains("unsafe"), "{csp}");
        assert_eq!(headers[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
        let page = text(response).await;
        assert!(page.starts_with("<!doctype html>"));
        assert!(page.contains(r#"<script type="module" src="/assets/app.js"></script>"#));
    }

    #[tokio::test]
    async fn the_page_has_no_inline_script_style_or_event_handler() {
        let page = text(get_with("/", &[]).await).await.to_lowercase();
        assert!(!page.contains("<style"), "inline <style> would be blocked");
        assert!(
            !page.contains(" style="),
            "style attributes would be blocked"
        );
        let handler = page.split(' ').any(|word| {
            word.strip_prefix("on")
                .and_then(|rest| rest.split_once('='))
                .is_some_and(|(name, _)| name.chars().all(|c| c.is_ascii_alphabetic()))
        });
        assert!(!handler, "inline event handlers would be blocked");
        // Every <script> loads a file of its own and holds no code.
        for script in page.split("<script").skip(1) {
            assert!(script.contains("src=\"/assets/"), "inline script: {script}");
            assert!(
                script
                    .trim_start_matches(|c| c != '>')
                    .starts_with("></script>")
            );
        }
    }

    #[tokio::test]
    async fn scripts_and_styles_are_served_with_their_content_types() {
        for (path, content_type) in [
            ("/assets/app.js", JS),
            ("/assets/socket.js", JS),
            ("/assets/app.css", CSS),
            ("/assets/icon.svg", SVG),
        ] {
            let response = get_with(path, &[]).await;
            assert_eq!(response.status(), StatusCode::OK, "{path}");
            assert_eq!(
                response.headers()[header::CONTENT_TYPE],
                content_type,
                "{path}"
            );
            assert_eq!(
                response.headers()[header::CACHE_CONTROL],
                "no-cache",
                "{path}"
            );
        }
    }

    #[tokio::test]
    async fn a_current_copy_is_answered_304_and_a_stale_one_gets_the_file() {
        let etag = get_with("/assets/app.js", &[]).await.headers()[header::ETAG]
            .to_str()
            .unwrap()
            .to_owned();
        let current = get_with("/assets/app.js", &[(header::IF_NONE_MATCH, &etag)]).await;
        assert_eq!(current.status(), StatusCode::NOT_MODIFIED);
        assert!(text(current).await.is_empty());
        let weak = format!("\"stale\", W/{etag}");
        let current = get_with("/assets/app.js", &[(header::IF_NONE_MATCH, &weak)]).await;
        assert_eq!(current.status(), StatusCode::NOT_MODIFIED);
        let stale = get_with("/assets/app.js", &[(header::IF_NONE_MATCH, "\"stale\"")]).await;
        assert_eq!(stale.status(), StatusCode::OK);
        // Another file has another tag.
        let css = get_with("/assets/app.css", &[]).await;
        assert_ne!(css.headers()[header::ETAG], etag.as_str());
    }

    #[tokio::test]
    async fn a_path_that_names_no_file_is_left_to_the_surrounding_router() {
        let response = get_with("/assets/nothing.js", &[]).await;
        assert_eq!(response.status(), StatusCode::NOT_FOUND);
        assert!(response.headers().get(header::CONTENT_TYPE).is_none());
    }

    #[test]
    fn every_file_of_the_assets_directory_is_served() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("assets");
        let mut on_disk: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        let mut served: Vec<String> = ASSETS.iter().map(|a| a.file.to_owned()).collect();
        on_disk.sort();
        served.sort();
        assert_eq!(on_disk, served);
    }
}
