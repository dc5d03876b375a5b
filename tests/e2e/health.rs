//! `GET /healthz` (the process runs) and `GET /readyz` (the database answers).

use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{TestServer, assert_json, assert_request_id};

#[tokio::test]
async fn healthz_answers_200_with_status_ok() {
    let app = TestServer::spawn().await;

    let body = assert_json(app.get_anonymous("/healthz").await, StatusCode::OK).await;

    assert_eq!(body, json!({"status": "ok"}));
}

#[tokio::test]
async fn readyz_answers_200_while_the_database_answers() {
    let app = TestServer::spawn().await;

    let response = app.get_anonymous("/readyz").await;

    assert_request_id(&response);
    assert_eq!(response.status(), StatusCode::OK);
}
