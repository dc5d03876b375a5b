//! Tests about PostgreSQL itself, run only in the PostgreSQL pass of the suite
//! (`cargo xtask test` skips this module when `E2E_STORE=sqlite`): the embedded
//! database lives inside the server process and cannot be cut off from it the way a
//! database server can.

use std::time::Duration;

use reqwest::header::CONTENT_TYPE;
use reqwest::{Method, StatusCode};
use sqlx::AssertSqlSafe;

use serde_json::json;

use crate::helpers::{TestServer, assert_json, assert_problem, assert_request_id};

#[tokio::test]
async fn readyz_answers_503_when_the_database_stops_answering_and_200_again_after() {
    let app = TestServer::spawn().await;
    let name = app.db_name().to_owned();
    let mut admin = app.admin_db().await;

    // Cut the server off its database: no new connections, existing ones terminated.
    sqlx::raw_sql(AssertSqlSafe(format!(
        r#"alter database "{name}" allow_connections false;
           select pg_terminate_backend(pid) from pg_stat_activity where datname = '{name}';"#
    )))
    .execute(&mut admin)
    .await
    .unwrap();

    // A readiness probe must answer promptly, hence the short timeout.
    let response = app
        .request(Method::GET, "/readyz", None)
        .timeout(Duration::from_secs(10))
        .send()
        .await
        .expect("GET /readyz answers within 10 s while the database is unreachable");
    // Interpretation: the contract names only the status. A problem document is one
    // fitting answer, a status report like /healthz's (`{"status": …}`) another; if the
    // server chooses a problem document, it must be a valid one.
    let is_problem = response
        .headers()
        .get(CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/problem+json"));
    if is_problem {
        assert_problem(response, StatusCode::SERVICE_UNAVAILABLE).await;
    } else {
        assert_request_id(&response);
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    }
    // The process itself still runs.
    let body = assert_json(app.get_anonymous("/healthz").await, StatusCode::OK).await;
    assert_eq!(body, json!({"status": "ok"}));

    sqlx::raw_sql(AssertSqlSafe(format!(
        r#"alter database "{name}" allow_connections true"#
    )))
    .execute(&mut admin)
    .await
    .unwrap();

    let response = app.get_anonymous("/readyz").await;
    assert_request_id(&response);
    assert_eq!(response.status(), StatusCode::OK, "readyz after recovery");
}
