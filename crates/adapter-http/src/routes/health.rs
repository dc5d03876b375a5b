//! `GET /healthz` (the process runs) and `GET /readyz` (its database answers; in a
//! cluster, also whether it hears the other nodes).

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde_json::{Value, json};

use crate::HttpState;

/// `200` while the process runs.
pub(crate) async fn healthz() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

/// `200` when the database answers, else `503`. A node of a cluster adds `cluster`:
/// `connected`, or `disconnected` with `status` `degraded` (still `200`).
pub(crate) async fn readyz(State(state): State<HttpState>) -> (StatusCode, Json<Value>) {
    let readiness = state.readiness.check().await;
    let (code, mut status) = match &readiness.database {
        Ok(()) => (StatusCode::OK, "ok"),
        Err(reason) => {
            tracing::warn!(%reason, "not ready: the database does not answer");
            (StatusCode::SERVICE_UNAVAILABLE, "unavailable")
        }
    };
    let mut body = json!({});
    if let Some(cluster) = &readiness.cluster {
        body["cluster"] = match cluster {
            Ok(()) => "connected".into(),
            Err(reason) => {
                tracing::warn!(%reason, "degraded: not connected to the other nodes");
                if code == StatusCode::OK {
                    status = "degraded";
                }
                "disconnected".into()
            }
        };
    }
    body["status"] = status.into();
    (code, Json(body))
}
