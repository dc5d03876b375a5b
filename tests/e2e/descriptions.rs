//! The machine-readable descriptions: `/openapi.json` names every method and path the
//! server answers (and nothing it does not), `/asyncapi.json` both socket protocols,
//! and `/docs` is a Swagger UI that needs nothing from another origin.
//!
//! The REST routes are registered only through utoipa-axum's `routes!`, which
//! describes each handler as it registers it, and the pages beside them (the web
//! client, `/ws`) through `adapter_http::pages`, which takes the router it describes;
//! these tests check the result from outside, as a client sees it.

use reqwest::{Method, StatusCode};
use serde_json::Value;
use uuid::Uuid;

use crate::helpers::{TestServer, assert_json, assert_problem};

/// The methods a route may be served with (`HEAD` and `OPTIONS` aside: axum answers
/// `HEAD` wherever it answers `GET`).
const METHODS: &[&str] = &["get", "post", "put", "patch", "delete"];

/// Paths near the documented ones that no route serves.
const UNDOCUMENTED: &[&str] = &[
    "/nope",
    "/auth",
    "/auth/logout",
    "/chats/00000000-0000-0000-0000-000000000001/nope",
    "/chats/00000000-0000-0000-0000-000000000001/members/me/x",
    "/assets/nope.js",
    "/openapi.yaml",
    "/docs/a/b",
    "/users/me",
];

/// `path` with its parameters filled in with values a route accepts the form of.
fn concrete(path: &str) -> String {
    path.replace("{chatId}", &Uuid::new_v4().to_string())
        .replace("{file}", "swagger-ui.css")
}

async fn openapi(app: &TestServer) -> Value {
    assert_json(app.get_anonymous("/openapi.json").await, StatusCode::OK).await
}

/// The documented `(method, path)` pairs.
fn operations(doc: &Value) -> Vec<(String, String)> {
    let paths = doc["paths"].as_object().expect("paths");
    paths
        .iter()
        .flat_map(|(path, item)| {
            METHODS
                .iter()
                .filter(|method| item.get(**method).is_some())
                .map(move |method| ((*method).to_owned(), path.clone()))
        })
        .collect()
}

/// Whether the answer is the router's own "no such route" or "method not allowed".
async fn unrouted(response: reqwest::Response) -> Option<String> {
    let status = response.status();
    let body = response.text().await.unwrap_or_default();
    let no_route = status == StatusCode::NOT_FOUND && body.contains("no such route");
    (no_route || status == StatusCode::METHOD_NOT_ALLOWED).then(|| format!("{status} {body}"))
}

#[tokio::test]
async fn every_documented_operation_is_served() {
    let app = TestServer::spawn().await;
    let doc = openapi(&app).await;
    let operations = operations(&doc);
    assert!(operations.len() > 20, "too few operations: {operations:?}");
    for (method, path) in operations {
        let request = app.request(
            Method::from_bytes(method.to_uppercase().as_bytes()).expect("a method"),
            &concrete(&path),
            None,
        );
        let response = request.send().await.expect("an answer");
        if let Some(answer) = unrouted(response).await {
            panic!("{method} {path} is documented but not served: {answer}");
        }
    }
}

#[tokio::test]
async fn every_other_method_on_a_documented_path_is_405() {
    let app = TestServer::spawn().await;
    let doc = openapi(&app).await;
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for method in METHODS.iter().filter(|m| item.get(**m).is_none()) {
            let request = app.request(
                Method::from_bytes(method.to_uppercase().as_bytes()).expect("a method"),
                &concrete(path),
                None,
            );
            assert_problem(
                request.send().await.expect("an answer"),
                StatusCode::METHOD_NOT_ALLOWED,
            )
            .await;
        }
    }
}

#[tokio::test]
async fn paths_that_are_not_documented_are_not_served() {
    let app = TestServer::spawn().await;
    let doc = openapi(&app).await;
    for path in UNDOCUMENTED {
        assert!(doc["paths"].get(*path).is_none(), "{path} is documented");
        for method in METHODS {
            let request = app.request(
                Method::from_bytes(method.to_uppercase().as_bytes()).expect("a method"),
                path,
                None,
            );
            let problem = assert_problem(
                request.send().await.expect("an answer"),
                StatusCode::NOT_FOUND,
            )
            .await;
            assert_eq!(problem["detail"], "no such route", "{method} {path}");
        }
    }
}

#[tokio::test]
async fn the_openapi_document_describes_auth_errors_and_the_web_client() {
    let app = TestServer::spawn().await;
    let doc = openapi(&app).await;

    assert_eq!(doc["openapi"], "3.1.0");
    assert_eq!(
        doc["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );
    let list_chats = &doc["paths"]["/chats"]["get"];
    assert_eq!(list_chats["security"][0]["bearer"], serde_json::json!([]));
    let unauthorized = &list_chats["responses"]["401"];
    assert_eq!(
        unauthorized["content"]["application/problem+json"]["schema"]["$ref"],
        "#/components/schemas/Problem"
    );
    assert!(unauthorized["headers"].get("WWW-Authenticate").is_some());
    let created = &doc["paths"]["/chats"]["post"]["responses"]["201"];
    assert_eq!(
        created["content"]["application/json"]["schema"]["$ref"],
        "#/components/schemas/Chat"
    );
    for page in ["/", "/assets/app.js", "/ws", "/healthz", "/readyz", "/docs"] {
        assert!(doc["paths"].get(page).is_some(), "{page} is not documented");
    }
    // Without the web client, its pages are neither served nor described.
    let bare = TestServer::spawn_with(&[("WEB_CLIENT", "false")]).await;
    let bare_doc = openapi(&bare).await;
    assert!(bare_doc["paths"].get("/").is_none());
    assert!(bare_doc["paths"].get("/assets/app.js").is_none());
    assert!(bare_doc["paths"].get("/ws").is_some());
}

#[tokio::test]
async fn the_asyncapi_document_describes_both_socket_protocols() {
    let app = TestServer::spawn().await;

    let doc = assert_json(app.get_anonymous("/asyncapi.json").await, StatusCode::OK).await;

    assert_eq!(doc["asyncapi"], "3.0.0");
    assert_eq!(doc["channels"]["socketio"]["address"], "/socket.io/");
    assert_eq!(doc["channels"]["ws"]["address"], "/ws");
    let create = &doc["channels"]["ws"]["messages"]["messages.create"];
    assert_eq!(create["name"], "messages:create");
    let new = &doc["channels"]["socketio"]["messages"]["messages.new"];
    assert_eq!(new["payload"]["$ref"], "#/components/schemas/Message");
}

#[tokio::test]
async fn the_docs_page_is_swagger_ui_served_from_this_origin_only() {
    let app = TestServer::spawn().await;

    let page = app.get_anonymous("/docs").await;
    assert_eq!(page.status(), StatusCode::OK);
    let policy = page.headers()["content-security-policy"]
        .to_str()
        .expect("an ASCII policy")
        .to_owned();
    assert!(policy.contains("script-src 'self';"), "{policy}");
    assert!(!policy.contains("unsafe-eval"), "{policy}");
    let html = page.text().await.expect("the page");
    assert!(
        !html.contains("http://") && !html.contains("https://"),
        "{html}"
    );
    assert!(!html.contains("<script>"), "an inline script: {html}");
    for file in ["/docs/swagger-ui-bundle.js", "/docs/swagger-ui.css"] {
        assert!(html.contains(file), "{file} is not linked: {html}");
        let response = app.get_anonymous(file).await;
        assert_eq!(response.status(), StatusCode::OK, "{file}");
    }
    let initializer = app.get_anonymous("/docs/swagger-initializer.js").await;
    assert_eq!(initializer.status(), StatusCode::OK);
    let script = initializer.text().await.expect("the script");
    assert!(script.contains("\"/openapi.json\""), "{script}");
    assert!(!script.contains("petstore"), "{script}");
}
