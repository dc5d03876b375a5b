//! `GET /metrics`: the Prometheus text the server exposes moves as the server works —
//! messages stored, deliveries to sockets, HTTP requests by route template, failed
//! logins, live connections by protocol and rooms — and, with `METRICS_ADDR`, it is
//! served on that address alone.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use reqwest::header::CONTENT_TYPE;
use serde_json::json;

use crate::helpers::{TestServer, assert_json, assert_problem, one_chat};
use crate::sockets::{Kind, in_room};

/// How long a gauge may take to follow a socket that opened or closed.
const SETTLE: Duration = Duration::from_secs(10);

/// One scrape: every sample, by metric name, with its labels.
pub struct Scrape {
    /// The text as served.
    text: String,
    samples: Vec<(String, HashMap<String, String>, f64)>,
}

impl Scrape {
    /// Reads the Prometheus text format (comments skipped; label values hold no
    /// commas or quotes in this server's metrics).
    fn parse(text: &str) -> Self {
        let samples = text
            .lines()
            .filter(|line| !line.starts_with('#') && !line.trim().is_empty())
            .map(|line| {
                let (series, value) = line.rsplit_once(' ').expect("`series value` lines");
                let value: f64 = value.parse().expect("a numeric sample");
                let (name, labels) = match series.split_once('{') {
                    Some((name, labels)) => (name, labels.trim_end_matches('}')),
                    None => (series, ""),
                };
                let labels = labels
                    .split(',')
                    .filter(|pair| !pair.is_empty())
                    .map(|pair| {
                        let (key, value) = pair.split_once('=').expect("label=\"value\"");
                        (key.to_owned(), value.trim_matches('"').to_owned())
                    })
                    .collect();
                (name.to_owned(), labels, value)
            })
            .collect();
        Self {
            text: text.to_owned(),
            samples,
        }
    }

    /// The sum of `name`'s samples whose labels include every pair of `labels`; 0 when
    /// there is none yet (a counter not yet moved is not rendered).
    pub fn sum(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.samples
            .iter()
            .filter(|(sample, sample_labels, _)| {
                sample == name
                    && labels.iter().all(|(key, value)| {
                        sample_labels.get(*key).map(String::as_str) == Some(value)
                    })
            })
            .map(|(.., value)| value)
            .sum()
    }
}

/// Scrapes `url` (a full URL), asserting a `200` in the Prometheus text format.
async fn scrape_at(server: &TestServer, url: &str) -> Scrape {
    let response = server
        .client
        .get(url)
        .send()
        .await
        .expect("a scrape answer");
    assert_eq!(response.status(), StatusCode::OK);
    let content_type = response.headers()[CONTENT_TYPE]
        .to_str()
        .expect("a visible-ASCII content type")
        .to_owned();
    assert!(
        content_type.starts_with("text/plain; version=0.0.4"),
        "{content_type}"
    );
    Scrape::parse(&response.text().await.expect("a scrape body"))
}

/// Scrapes `server`'s public port.
pub async fn scrape(server: &TestServer) -> Scrape {
    scrape_at(server, &server.url("/metrics")).await
}

/// Scrapes until `check` holds, failing after [`SETTLE`]; returns that scrape.
pub async fn scrape_until(
    server: &TestServer,
    what: &str,
    check: impl Fn(&Scrape) -> bool,
) -> Scrape {
    let deadline = Instant::now() + SETTLE;
    loop {
        let scrape = scrape(server).await;
        if check(&scrape) {
            return scrape;
        }
        assert!(Instant::now() < deadline, "{what} within {SETTLE:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

const CONNECTIONS: &str = "messenger_connections";
const HISTORY_REQUESTS: [(&str, &str); 3] = [
    ("method", "GET"),
    ("route", "/chats/{chatId}/messages"),
    ("status", "200"),
];

#[tokio::test]
async fn a_scrape_shows_messages_deliveries_requests_logins_and_connections_moving() {
    let server = TestServer::spawn().await;
    let (chat, users) = one_chat(&server, &["metrics_alice", "metrics_bob"]).await;
    let before = scrape(&server).await;
    let connections =
        |scrape: &Scrape, protocol: &str| scrape.sum(CONNECTIONS, &[("protocol", protocol)]);

    // Two sockets in the room, one of each protocol: each is counted while open.
    let mut alice = in_room(&server, Kind::SocketIo, &users[0].1, &chat).await;
    let mut bob = in_room(&server, Kind::Ws, &users[1].1, &chat).await;
    let open = scrape_until(&server, "both sockets counted", |scrape| {
        connections(scrape, "socket.io") == connections(&before, "socket.io") + 1.0
            && connections(scrape, "ws") == connections(&before, "ws") + 1.0
    })
    .await;
    assert_eq!(open.sum("messenger_rooms", &[]), 1.0, "one room in use");

    // One message over each protocol; each reaches both sockets of the room.
    alice.send_message(&chat, "over socket.io").await;
    bob.send_message(&chat, "over ws").await;
    for socket in [&mut alice, &mut bob] {
        for _ in 0..2 {
            socket.expect_event("messages:new").await;
        }
    }
    // Three REST reads of the history, and a failed login.
    for _ in 0..3 {
        server
            .get(&format!("/chats/{chat}/messages"), &users[0].1)
            .await;
    }
    let login = json!({"username": "metrics_alice", "password": "not the password"});
    assert_problem(
        server.post("/auth/login", None, &login).await,
        StatusCode::UNAUTHORIZED,
    )
    .await;

    let after = scrape(&server).await;
    let moved =
        |name: &str, labels: &[(&str, &str)]| after.sum(name, labels) - before.sum(name, labels);
    assert_eq!(moved("messenger_messages_stored_total", &[]), 2.0);
    assert_eq!(moved("messenger_deliveries_total", &[]), 4.0);
    assert_eq!(
        moved(
            "messenger_http_request_duration_seconds_count",
            &HISTORY_REQUESTS
        ),
        3.0
    );
    assert_eq!(moved("messenger_login_failures_total", &[]), 1.0);
    let batches = moved("messenger_group_commit_batch_size_count", &[]);
    assert!(
        (1.0..=2.0).contains(&batches),
        "{batches} group commits for 2 messages"
    );
    assert_eq!(
        moved("messenger_group_commit_batch_size_sum", &[]),
        2.0,
        "the batches held the 2 messages"
    );
    // Labels name route templates, never a request's own path.
    assert!(
        !after.text.contains(&chat),
        "a chat id in a label:\n{}",
        after.text
    );
    assert!(after.sum("messenger_db_pool_max_connections", &[]) >= 1.0);

    // Closed sockets are no longer counted, and the room is gone.
    drop(alice);
    drop(bob);
    scrape_until(
        &server,
        "both sockets uncounted and the room gone",
        |scrape| {
            connections(scrape, "socket.io") == connections(&before, "socket.io")
                && connections(scrape, "ws") == connections(&before, "ws")
                && scrape.sum("messenger_rooms", &[]) == 0.0
        },
    )
    .await;
}

#[tokio::test]
async fn with_metrics_addr_metrics_are_served_there_and_not_on_the_public_port() {
    // Port 0: the server binds a free port and says which in its log, so no other
    // process can take the port between our choosing it and the server binding it.
    let server = TestServer::spawn_logged(&[("METRICS_ADDR", "127.0.0.1:0")]).await;
    let address = metrics_address_in(&server).await;
    // A request on the public port, so that there is something to see.
    assert_json(server.get_anonymous("/healthz").await, StatusCode::OK).await;

    let scrape = scrape_at(&server, &format!("http://{address}/metrics")).await;
    assert!(
        scrape.sum(
            "messenger_http_request_duration_seconds_count",
            &[("route", "/healthz")]
        ) >= 1.0
    );
    assert_problem(
        server.get_anonymous("/metrics").await,
        StatusCode::NOT_FOUND,
    )
    .await;
}

/// The address the server's log says `/metrics` is served on.
async fn metrics_address_in(server: &TestServer) -> String {
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let log = server.log();
        let found = log
            .lines()
            .filter(|line| line.contains("serving /metrics"))
            .find_map(|line| line.split("address=").nth(1))
            .and_then(|rest| rest.split_whitespace().next())
            .map(str::to_owned);
        if let Some(address) = found {
            return address;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the server never said where it serves /metrics:\n{log}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}
