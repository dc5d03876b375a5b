//! Tests about PostgreSQL itself, run only in the PostgreSQL pass of the suite
//! (`cargo xtask test` skips this module when `E2E_STORE=sqlite`): the embedded
//! database lives inside the server process and cannot be cut off from it the way a
//! database server can.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use reqwest::header::CONTENT_TYPE;
use reqwest::{Method, StatusCode};
use sqlx::AssertSqlSafe;

use serde_json::json;

use crate::helpers::{TestServer, assert_json, assert_problem, assert_request_id, id_of};
use crate::sockets::{Kind, Socket};

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

/// A generous bound on "fast" for a noisy machine: the server's own timeout is 1 s.
const FAST: Duration = Duration::from_secs(3);

/// With PostgreSQL frozen (it accepts connections and requests but answers nothing, as a
/// stopped process or a network partition does) and then down (connections refused),
/// REST answers `503` with a problem body and `Retry-After`, `/readyz` `503`, and a
/// socket's send an `exception` `service unavailable`, each within a few seconds rather
/// than holding the client; and all recover once the database is back.
#[tokio::test]
async fn a_frozen_or_stopped_database_is_answered_503_fast_and_recovered_from() {
    let mut app = TestServer::spawn().await;
    let proxy = Proxy::start(postgres_address(app.db_url())).await;
    let proxied = app.db_url().replacen(
        &postgres_address(app.db_url()).to_string(),
        &proxy.address.to_string(),
        1,
    );
    app.restart_with("DATABASE_URL", &proxied).await;
    let (_, alice) = app.user_with_token("alice").await;
    let chat = id_of(&app.create_chat(&alice, "team", &[]).await);
    let mut socket = Socket::connect(&app, Kind::Ws, &alice).await;
    let sent = socket
        .request(
            "messages:create",
            json!({"chatId": chat, "content": "before"}),
        )
        .await;
    assert_eq!(sent["content"], "before", "{sent}");

    for (state, what) in [(Line::Frozen, "frozen"), (Line::Down, "down")] {
        proxy.set(state);

        // First the send: the message writer still holds the connection it stored
        // "before" with (for a second), so in the frozen case its batch is what hangs.
        let started = Instant::now();
        let refused = socket
            .request("messages:create", json!({"chatId": chat, "content": what}))
            .await;
        let elapsed = started.elapsed();
        assert_eq!(refused["status"], "error", "{what}: {refused}");
        assert_eq!(
            refused["message"], "service unavailable",
            "{what}: {refused}"
        );
        let exception = socket.expect_event("exception").await;
        assert_eq!(
            exception["message"], "service unavailable",
            "{what}: {exception}"
        );
        assert!(elapsed < FAST, "{what}: the send took {elapsed:?}");

        let started = Instant::now();
        let response = app.get("/chats", &alice).await;
        let elapsed = started.elapsed();
        assert!(
            response.headers().contains_key("retry-after"),
            "{what}: {:?}",
            response.headers()
        );
        assert_problem(response, StatusCode::SERVICE_UNAVAILABLE).await;
        assert!(elapsed < FAST, "{what}: GET /chats took {elapsed:?}");

        // A `/ws` handshake checks its token against the database first: unavailable,
        // not "internal error", so that a client retries instead of giving up.
        let response = app.get("/ws", &alice).await;
        assert!(
            response.headers().contains_key("retry-after"),
            "{what}: /ws {:?}",
            response.headers()
        );
        assert_problem(response, StatusCode::SERVICE_UNAVAILABLE).await;

        let started = Instant::now();
        let response = app.get_anonymous("/readyz").await;
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE, "{what}");
        assert!(
            started.elapsed() < FAST,
            "{what}: /readyz took {:?}",
            started.elapsed()
        );
    }

    proxy.set(Line::Open);
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let response = app.get_anonymous("/readyz").await;
        if response.status() == StatusCode::OK {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "/readyz stayed {}",
            response.status()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let sent = socket
        .request(
            "messages:create",
            json!({"chatId": chat, "content": "after"}),
        )
        .await;
    assert_eq!(sent["content"], "after", "{sent}");
    assert_eq!(app.chats(&alice).await.len(), 1);
}

/// The host and port of a `postgres://user@host:port/db` URL.
fn postgres_address(url: &str) -> SocketAddr {
    let authority = url
        .split_once("://")
        .and_then(|(_, rest)| rest.split('/').next())
        .expect("a postgres:// URL");
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, hp)| hp);
    let host_port = if host_port.contains(':') {
        host_port.to_owned()
    } else {
        format!("{host_port}:5432")
    };
    let host_port = host_port.replace("localhost", "127.0.0.1");
    host_port.parse().expect("a host:port of digits")
}

/// The state of the line between the server and its database.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Line {
    /// Bytes pass.
    Open,
    /// Connections are accepted and kept, but nothing passes either way: a database
    /// frozen, or a partition.
    Frozen,
    /// Every connection is closed and new ones are closed at once: a database down.
    Down,
}

/// A TCP proxy from the server to PostgreSQL that the test can freeze or cut.
struct Proxy {
    address: SocketAddr,
    line: tokio::sync::watch::Sender<Line>,
    accepting: tokio::task::JoinHandle<()>,
}

impl Proxy {
    async fn start(target: SocketAddr) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("binding the proxy");
        let address = listener.local_addr().expect("the proxy's address");
        let (line, watching) = tokio::sync::watch::channel(Line::Open);
        let accepting = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                if *watching.borrow() == Line::Down {
                    continue; // dropped: closed at once
                }
                let Ok(server) = tokio::net::TcpStream::connect(target).await else {
                    continue;
                };
                let (client_read, client_write) = client.into_split();
                let (server_read, server_write) = server.into_split();
                tokio::spawn(pump(client_read, server_write, watching.clone()));
                tokio::spawn(pump(server_read, client_write, watching.clone()));
            }
        });
        Self {
            address,
            line,
            accepting,
        }
    }

    fn set(&self, state: Line) {
        self.line.send_replace(state);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.accepting.abort();
        self.set(Line::Down);
    }
}

/// Copies `from` to `to` while the line is open; holds the bytes while it is frozen;
/// closes both when it goes down.
async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    mut line: tokio::sync::watch::Receiver<Line>,
) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let mut buffer = vec![0_u8; 16 * 1024];
    loop {
        // Wait for an open line; a line that goes down ends the copy.
        if open(&mut line).await.is_none() {
            return;
        }
        let read = tokio::select! {
            read = from.read(&mut buffer) => read,
            changed = line.changed() => {
                if changed.is_err() { return; }
                continue;
            }
        };
        let Ok(n @ 1..) = read else {
            return;
        };
        if open(&mut line).await.is_none() || to.write_all(&buffer[..n]).await.is_err() {
            return;
        }
    }
}

/// Waits while the line is frozen: `Some` once it is open, `None` once it is down.
async fn open(line: &mut tokio::sync::watch::Receiver<Line>) -> Option<()> {
    let state = *line.wait_for(|state| *state != Line::Frozen).await.ok()?;
    (state == Line::Open).then_some(())
}
