//! `GET /healthz` (the process runs) and `GET /readyz` (its database answers; in a
//! cluster, also whether it hears the other nodes).

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Serialize;
use utoipa::ToSchema;

use crate::HttpState;

/// The answer of `/healthz`.
#[derive(Serialize, ToSchema)]
pub(crate) struct Health {
    /// Always `ok`.
    #[schema(value_type = String, pattern = "^ok$")]
    status: &'static str,
}

/// The answer of `/readyz`.
#[derive(Serialize, ToSchema)]
pub(crate) struct Ready {
    /// `ok`; `degraded` for a node of a cluster that does not hear the others;
    /// `unavailable` when the database does not answer (with `503`).
    status: ReadyStatus,
    /// For a node of a cluster only: whether it hears the other nodes.
    #[serde(skip_serializing_if = "Option::is_none")]
    cluster: Option<ClusterLink>,
}

/// How ready the node is.
#[derive(Serialize, ToSchema, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub(crate) enum ReadyStatus {
    /// Everything answers.
    Ok,
    /// The database answers; the other nodes are not heard.
    Degraded,
    /// The database does not answer.
    Unavailable,
}

/// The state of a cluster node's link to the others.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub(crate) enum ClusterLink {
    /// It hears the other nodes.
    Connected,
    /// It does not.
    Disconnected,
}

/// `200` while the process runs.
#[utoipa::path(
    get,
    path = "/healthz",
    tag = "health",
    responses((status = 200, description = "The process runs", body = Health)),
)]
pub(crate) async fn healthz() -> Json<Health> {
    Json(Health { status: "ok" })
}

/// `200` when the database answers, else `503`. A node of a cluster adds `cluster`:
/// `connected`, or `disconnected` with `status` `degraded` (still `200`).
#[utoipa::path(
    get,
    path = "/readyz",
    tag = "health",
    responses(
        (status = 200, description = "The database answers (`status` `degraded`: a cluster node that does not hear the others)", body = Ready),
        (status = 503, description = "The database does not answer", body = Ready),
    ),
)]
pub(crate) async fn readyz(State(state): State<HttpState>) -> (StatusCode, Json<Ready>) {
    let readiness = state.readiness.check().await;
    let (code, mut status) = match &readiness.database {
        Ok(()) => (StatusCode::OK, ReadyStatus::Ok),
        Err(reason) => {
            tracing::warn!(%reason, "not ready: the database does not answer");
            (StatusCode::SERVICE_UNAVAILABLE, ReadyStatus::Unavailable)
        }
    };
    let cluster = readiness.cluster.as_ref().map(|cluster| match cluster {
        Ok(()) => ClusterLink::Connected,
        Err(reason) => {
            tracing::warn!(%reason, "degraded: not connected to the other nodes");
            if status == ReadyStatus::Ok {
                status = ReadyStatus::Degraded;
            }
            ClusterLink::Disconnected
        }
    });
    (code, Json(Ready { status, cluster }))
}
