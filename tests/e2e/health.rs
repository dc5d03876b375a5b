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

#[tokio::test]
async fn the_server_refuses_to_start_as_a_lone_node_when_given_redis_url() {
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_server"))
        .env("REDIS_URL", "redis://127.0.0.1:6379")
        .env("PORT", "0")
        .env(
            "DATA_DIR",
            std::env::temp_dir().join(format!(
                "messenger-redis-refusal-{}",
                uuid::Uuid::new_v4().simple()
            )),
        )
        .env_remove("DATABASE_URL")
        .output()
        .await
        .expect("running the server binary");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("REDIS_URL"), "{stderr}");
    assert_eq!(
        stderr
            .trim()
            .lines()
            .filter(|l| l.starts_with("error:"))
            .count(),
        1,
        "{stderr}"
    );
}
