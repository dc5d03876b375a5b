//! Connections that hold the server without using it: silent ones, headers or a body
//! dripped slowly, idle keep-alive, a body declared too large, and more connections
//! than the process has file descriptors for. Each is ended (or answered) in bounded
//! time, and the server stays available to everyone else.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::process::Command;

use crate::helpers::TestServer;

/// What the tests give the server, so that they end fast.
const SHORT: &[(&str, &str)] = &[("HTTP_IDLE_TIMEOUT", "1s"), ("HTTP_REQUEST_TIMEOUT", "1s")];

/// Far more than the short limits, far less than the defaults (30 s): a connection
/// still open after this was not ended by the limits.
const BOUND: Duration = Duration::from_secs(8);

/// Reads until the server closes the connection; returns what it sent, or fails after
/// [`BOUND`].
async fn read_until_closed(tcp: &mut TcpStream) -> String {
    let mut got = Vec::new();
    let read = tokio::time::timeout(BOUND, async {
        let mut buf = [0_u8; 4096];
        loop {
            match tcp.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    assert!(
        read.is_ok(),
        "the server kept the connection open for {BOUND:?}"
    );
    String::from_utf8_lossy(&got).into_owned()
}

/// The status code and the JSON body of a raw HTTP/1.1 response.
fn status_and_body(response: &str) -> (u16, Value) {
    let status = response
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP response: {response:?}"));
    let body = response.split_once("\r\n\r\n").map_or("", |(_, body)| body);
    (status, serde_json::from_str(body).unwrap_or(Value::Null))
}

#[tokio::test]
async fn a_connection_that_sends_nothing_is_closed_after_the_idle_timeout() {
    let app = TestServer::spawn_with(SHORT).await;
    let mut tcp = TcpStream::connect(app.socket_address()).await.unwrap();
    read_until_closed(&mut tcp).await;
}

#[tokio::test]
async fn headers_that_never_end_are_not_waited_on() {
    let app = TestServer::spawn_with(SHORT).await;
    let mut tcp = TcpStream::connect(app.socket_address()).await.unwrap();
    tcp.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        .await
        .unwrap();
    read_until_closed(&mut tcp).await;
}

#[tokio::test]
async fn an_idle_keep_alive_connection_is_closed_after_its_answer() {
    let app = TestServer::spawn_with(SHORT).await;
    let mut tcp = TcpStream::connect(app.socket_address()).await.unwrap();
    tcp.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let response = read_until_closed(&mut tcp).await;
    assert_eq!(status_and_body(&response).0, 200, "{response}");
}

#[tokio::test]
async fn a_body_dripped_slowly_is_answered_408_with_a_problem() {
    let app = TestServer::spawn_with(SHORT).await;
    let mut tcp = TcpStream::connect(app.socket_address()).await.unwrap();
    tcp.write_all(
        b"POST /auth/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{",
    )
    .await
    .unwrap();
    let response = read_until_closed(&mut tcp).await;
    let (status, problem) = status_and_body(&response);
    assert_eq!(status, 408, "{response}");
    assert_eq!(problem["status"], 408);
    assert_eq!(problem["title"], "Request Timeout");
}

#[tokio::test]
async fn a_body_declared_over_the_limit_is_413_at_once() {
    // The default request timeout (30 s): only the declared length can answer in time.
    let app = TestServer::spawn().await;
    let mut tcp = TcpStream::connect(app.socket_address()).await.unwrap();
    let started = Instant::now();
    tcp.write_all(
        b"POST /auth/register HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 104857600\r\n\r\n",
    )
    .await
    .unwrap();
    let mut buf = vec![0_u8; 4096];
    let n = tokio::time::timeout(BOUND, tcp.read(&mut buf))
        .await
        .expect("an answer without waiting for the body")
        .unwrap();
    let response = String::from_utf8_lossy(&buf[..n]).into_owned();
    let (status, problem) = status_and_body(&response);
    assert_eq!(status, 413, "{response}");
    assert_eq!(problem["status"], 413);
    assert!(started.elapsed() < BOUND);
}

#[tokio::test]
async fn out_of_file_descriptors_new_connections_are_shed_with_one_log_line_and_service_resumes() {
    let app = TestServer::spawn_logged(SHORT).await;
    let pid = app.pid();
    let open = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .count();
    // Room for a handful more connections than the server has now, no more.
    let limit = open + 8;
    let status = Command::new("prlimit")
        .args([format!("--pid={pid}"), format!("--nofile={limit}:{limit}")])
        .status()
        .await
        .expect("running prlimit (util-linux)");
    assert!(status.success(), "prlimit failed");

    // Far more silent connections than it has descriptors for.
    let mut held = Vec::new();
    for _ in 0..60 {
        held.push(TcpStream::connect(app.socket_address()).await.unwrap());
    }
    // Every one of them is ended in bounded time: the first by the idle timeout, the
    // rest shed at once instead of hanging in the backlog.
    for tcp in &mut held {
        read_until_closed(tcp).await;
    }
    drop(held);
    let health = app.get_anonymous("/healthz").await;
    assert_eq!(health.status(), StatusCode::OK);

    let log = app.log();
    let shedding = log
        .lines()
        .filter(|line| line.contains("out of file descriptors"))
        .count();
    assert!(
        (1..=3).contains(&shedding),
        "running out of descriptors is said, not repeated per connection ({shedding} lines):\n{log}"
    );
    assert!(
        !log.contains("Too many open files"),
        "no accept error per connection:\n{log}"
    );
}
