//! The web client as the server binary serves it: at `/` under a strict
//! Content-Security-Policy, and gone with `WEB_CLIENT=false`. (How it behaves in a
//! browser: `browser`.)

use reqwest::StatusCode;
use reqwest::header::{CONTENT_SECURITY_POLICY, CONTENT_TYPE};

use crate::helpers::{TestServer, assert_json, assert_problem, assert_request_id};

#[tokio::test]
async fn the_root_serves_the_web_client_under_a_policy_that_allows_only_its_own_scripts() {
    let app = TestServer::spawn().await;
    let page = app.get_anonymous("/").await;
    assert_eq!(page.status(), StatusCode::OK);
    assert_request_id(&page);
    assert_eq!(page.headers()[CONTENT_TYPE], "text/html; charset=utf-8");
    let csp = page.headers()[CONTENT_SECURITY_POLICY]
        .to_str()
        .expect("a readable policy")
        .to_owned();
    assert!(csp.contains("script-src 'self'"), "{csp}");
    assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
    assert!(!csp.contains("unsafe-inline"), "{csp}");
    let html = page.text().await.expect("the page");
    assert!(html.contains("/assets/app.js"), "{html}");

    let script = app.get_anonymous("/assets/app.js").await;
    assert_eq!(script.status(), StatusCode::OK);
    assert_eq!(
        script.headers()[CONTENT_TYPE],
        "text/javascript; charset=utf-8"
    );
    // A file the client does not have is the API's own 404.
    assert_problem(
        app.get_anonymous("/assets/missing.js").await,
        StatusCode::NOT_FOUND,
    )
    .await;
}

#[tokio::test]
async fn web_client_false_turns_the_client_off_and_leaves_the_api_alone() {
    let app = TestServer::spawn_with(&[("WEB_CLIENT", "false")]).await;
    assert_problem(app.get_anonymous("/").await, StatusCode::NOT_FOUND).await;
    assert_problem(
        app.get_anonymous("/assets/app.js").await,
        StatusCode::NOT_FOUND,
    )
    .await;
    assert_json(app.get_anonymous("/healthz").await, StatusCode::OK).await;
}
