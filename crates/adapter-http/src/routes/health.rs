//! `GET /healthz` (the process runs) and `GET /readyz` (its database answers).

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde_json::{Value, json};

use crate::HttpState;

/// `200` while the process runs.
pub(crate) async fn healthz() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

/// `200` when the database answers, else `503`.
pub(crate) async fn readyz(State(state): State<HttpState>) -> (StatusCode, Json<Value>) {
    match state.readiness.check().await {
        Ok(()) => (StatusCode::OK, Json(json!({ "status": "ok" }))),
        Err(reason) => {
            tracing::warn!(%reason, "not ready");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(json!({ "status": "unavailable" })),
            )
        }
    }
}
