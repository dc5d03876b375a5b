//! What keeps attackers out and makes the server fit to run in production: rate limits
//! on the auth routes (`429`, `Retry-After`, a problem body), the client address from a
//! proxy's header only when configured, security headers on every answer, CORS for
//! configured origins (REST and Socket.IO long-polling), JSON logs carrying the request
//! id, and the pacing of each user's socket messages.
//!
//! The suite's servers run with every limit off (see `TestServer::start`); each test
//! here sets the small limits it shows.

use std::time::{Duration, Instant};

use futures_util::future::join_all;
use reqwest::header::{HeaderMap, RETRY_AFTER};
use reqwest::{Method, Response, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{PASSWORD, TestServer, assert_json, assert_problem, one_chat};
use crate::sockets::{Kind, Socket};

/// A login from `address` (put in `X-Forwarded-For`), answered as it comes.
async fn login_from(
    server: &TestServer,
    address: &str,
    username: &str,
    password: &str,
) -> Response {
    server
        .request(Method::POST, "/auth/login", None)
        .header("x-forwarded-for", address)
        .json(&json!({ "username": username, "password": password }))
        .send()
        .await
        .expect("sending the login")
}

/// Asserts a `429` problem whose `Retry-After` is a whole number of seconds within
/// `range`; returns the problem's detail.
async fn assert_too_many(response: Response, range: std::ops::RangeInclusive<u64>) -> String {
    let retry_after: u64 = response
        .headers()
        .get(RETRY_AFTER)
        .expect("a 429 says when to retry")
        .to_str()
        .expect("ASCII")
        .parse()
        .expect("Retry-After in whole seconds");
    assert!(
        range.contains(&retry_after),
        "Retry-After {retry_after}, expected {range:?}"
    );
    let problem = assert_problem(response, StatusCode::TOO_MANY_REQUESTS).await;
    problem["detail"].as_str().expect("a detail").to_owned()
}

#[tokio::test]
async fn logins_from_one_address_beyond_the_limit_get_429_with_retry_after_and_a_problem() {
    let server = TestServer::spawn_with(&[("RATE_LIMIT_LOGIN", "3/1m")]).await;
    server.register("alice", PASSWORD).await;
    for _ in 0..2 {
        server.login("alice", PASSWORD).await;
    }
    // A wrong password uses an attempt too.
    let wrong = login_from(&server, "192.0.2.1", "alice", "not the password").await;
    assert_problem(wrong, StatusCode::UNAUTHORIZED).await;

    let refused = login_from(&server, "192.0.2.1", "alice", PASSWORD).await;
    // Three a minute: the next one in at most 20 seconds.
    let detail = assert_too_many(refused, 1..=20).await;
    assert!(detail.contains("login"), "{detail}");
    // The X-Forwarded-For header is not trusted by default: every attempt counted
    // under the TCP peer, 127.0.0.1, whatever the header said.
    let refused = login_from(&server, "198.51.100.7", "alice", PASSWORD).await;
    assert_too_many(refused, 1..=20).await;
    // Registration has its own limit (off here).
    server.register("bob", PASSWORD).await;
}

#[tokio::test]
async fn registrations_from_one_address_beyond_the_limit_get_429() {
    let server = TestServer::spawn_with(&[("RATE_LIMIT_REGISTER", "2/1h")]).await;
    server.register("alice", PASSWORD).await;
    server.register("bob", PASSWORD).await;
    let refused = server
        .post(
            "/auth/register",
            None,
            &json!({ "username": "carol", "password": PASSWORD }),
        )
        .await;
    let detail = assert_too_many(refused, 1_000..=1_800).await;
    assert!(detail.contains("registrations"), "{detail}");
    // Logging in is another limit (off here).
    server.login("alice", PASSWORD).await;
}

#[tokio::test]
async fn failed_logins_for_one_username_from_many_addresses_lock_it_even_for_the_right_password() {
    let server = TestServer::spawn_with(&[
        ("RATE_LIMIT_FAILED_LOGINS", "3/15m"),
        ("TRUSTED_PROXY_HEADER", "x-forwarded-for"),
    ])
    .await;
    server.register("alice", PASSWORD).await;
    server.register("bob", PASSWORD).await;
    for (n, address) in ["192.0.2.1", "192.0.2.2", "192.0.2.3"].iter().enumerate() {
        let wrong = login_from(&server, address, "alice", &format!("guess number {n}")).await;
        assert_problem(wrong, StatusCode::UNAUTHORIZED).await;
    }
    // The right password from yet another address: refused, so guessing learns nothing.
    // Three failures per 15 minutes: the next try in at most 5 minutes.
    let refused = login_from(&server, "192.0.2.4", "alice", PASSWORD).await;
    let detail = assert_too_many(refused, 290..=300).await;
    assert!(detail.contains("username"), "{detail}");
    // The same account under another spelling is the same account.
    let refused = login_from(&server, "192.0.2.5", "ALICE", PASSWORD).await;
    assert_too_many(refused, 1..=300).await;
    // Other accounts are untouched, from the same addresses.
    let bob = login_from(&server, "192.0.2.1", "bob", PASSWORD).await;
    assert_json(bob, StatusCode::OK).await;
    // Successful logins never count: bob logs in as often as he likes.
    for _ in 0..5 {
        server.login("bob", PASSWORD).await;
    }
}

#[tokio::test]
async fn the_proxy_header_names_the_client_only_when_configured_and_only_its_last_address() {
    let server = TestServer::spawn_with(&[
        ("RATE_LIMIT_LOGIN", "2/1m"),
        ("TRUSTED_PROXY_HEADER", "x-forwarded-for"),
    ])
    .await;
    server.register("alice", PASSWORD).await;
    for _ in 0..2 {
        let ok = login_from(&server, "192.0.2.1", "alice", PASSWORD).await;
        assert_json(ok, StatusCode::OK).await;
    }
    let refused = login_from(&server, "192.0.2.1", "alice", PASSWORD).await;
    assert_too_many(refused, 1..=30).await;
    // A client that writes its own header gets its address appended by the proxy: the
    // last address is the one that counts, so a forged first one changes nothing.
    let forged = login_from(&server, "203.0.113.50, 192.0.2.1", "alice", PASSWORD).await;
    assert_too_many(forged, 1..=30).await;
    // Another client behind the same proxy (the same TCP peer) has its own limit.
    let other = login_from(&server, "192.0.2.2", "alice", PASSWORD).await;
    assert_json(other, StatusCode::OK).await;
}

/// The headers every answer carries, whatever answered it.
fn assert_security_headers(headers: &HeaderMap, what: &str) {
    let header = |name: &str| {
        headers
            .get(name)
            .unwrap_or_else(|| panic!("{what}: no {name} in {headers:?}"))
            .to_str()
            .expect("ASCII")
            .to_owned()
    };
    assert_eq!(header("x-content-type-options"), "nosniff", "{what}");
    assert_eq!(header("x-frame-options"), "DENY", "{what}");
    assert_eq!(header("referrer-policy"), "no-referrer", "{what}");
    assert!(
        header("content-security-policy").contains("frame-ancestors 'none'"),
        "{what}"
    );
}

#[tokio::test]
async fn every_answer_carries_the_security_headers_and_hsts_only_when_configured() {
    let server = TestServer::spawn().await;
    let health = server.get_anonymous("/healthz").await;
    assert_security_headers(health.headers(), "GET /healthz");
    assert_eq!(
        health.headers()["content-security-policy"],
        "default-src 'none'; frame-ancestors 'none'"
    );
    assert!(health.headers().get("strict-transport-security").is_none());
    let problem = server.get_anonymous("/no-such-route").await;
    assert_security_headers(problem.headers(), "a 404 problem");

    // The web client's page: its own strict policy, and the common headers.
    let page = server.get_anonymous("/").await;
    assert_eq!(page.status(), StatusCode::OK);
    assert_security_headers(page.headers(), "GET /");
    let policy = page.headers()["content-security-policy"]
        .to_str()
        .expect("ASCII");
    assert!(policy.contains("script-src 'self'"), "{policy}");

    // Socket.IO answers from outside the REST router: the headers are there too.
    let handshake = server
        .get_anonymous("/socket.io/?EIO=4&transport=polling")
        .await;
    assert_eq!(handshake.status(), StatusCode::OK);
    assert_security_headers(handshake.headers(), "a Socket.IO polling handshake");

    let hsts = TestServer::spawn_with(&[("HSTS_MAX_AGE", "365d")]).await;
    let health = hsts.get_anonymous("/healthz").await;
    assert_eq!(
        health.headers()["strict-transport-security"],
        "max-age=31536000"
    );
}

/// A CORS preflight from `origin` for `path`, as a browser sends it before a `POST`
/// with a bearer token and a JSON body.
async fn preflight(server: &TestServer, path: &str, origin: &str) -> Response {
    server
        .request(Method::OPTIONS, path, None)
        .header("origin", origin)
        .header("access-control-request-method", "POST")
        .header(
            "access-control-request-headers",
            "authorization,content-type",
        )
        .send()
        .await
        .expect("sending the preflight")
}

#[tokio::test]
async fn a_preflight_from_an_allowed_origin_is_answered_and_other_origins_get_no_cors() {
    let app = "https://app.example.com";
    let server = TestServer::spawn_with(&[(
        "CORS_ALLOWED_ORIGINS",
        "https://app.example.com,https://admin.example.com",
    )])
    .await;
    for path in [
        "/chats",
        "/auth/login",
        "/socket.io/?EIO=4&transport=polling",
    ] {
        let allowed = preflight(&server, path, app).await;
        assert!(
            allowed.status().is_success(),
            "{path}: {}",
            allowed.status()
        );
        let headers = allowed.headers();
        assert_eq!(headers["access-control-allow-origin"], app, "{path}");
        let allowed_headers = headers["access-control-allow-headers"]
            .to_str()
            .expect("ASCII")
            .to_ascii_lowercase();
        assert!(
            allowed_headers.contains("authorization"),
            "{path}: {allowed_headers}"
        );
        assert!(
            allowed_headers.contains("content-type"),
            "{path}: {allowed_headers}"
        );
        assert!(
            headers["access-control-allow-methods"]
                .to_str()
                .expect("ASCII")
                .contains("POST"),
            "{path}"
        );

        let refused = preflight(&server, path, "https://evil.example.net").await;
        assert!(
            refused
                .headers()
                .get("access-control-allow-origin")
                .is_none(),
            "{path}: {:?}",
            refused.headers()
        );
    }
    // The actual requests carry it too: a REST answer and a long-polling handshake.
    for path in ["/healthz", "/socket.io/?EIO=4&transport=polling"] {
        let answer = server
            .request(Method::GET, path, None)
            .header("origin", app)
            .send()
            .await
            .expect("sending");
        assert_eq!(answer.status(), StatusCode::OK, "{path}");
        assert_eq!(
            answer.headers()["access-control-allow-origin"],
            app,
            "{path}"
        );
    }

    // Unconfigured, no origin is allowed: same origin only.
    let plain = TestServer::spawn().await;
    let refused = preflight(&plain, "/chats", app).await;
    assert!(
        refused
            .headers()
            .get("access-control-allow-origin")
            .is_none()
    );
}

#[tokio::test]
async fn json_logs_are_one_object_a_line_carrying_the_request_id_into_the_use_cases() {
    let server = TestServer::spawn_logged(&[("LOG_FORMAT", "json")]).await;
    let request_id = "e2e-json-logs-7f3a";
    let response = server
        .request(Method::POST, "/auth/register", None)
        .header("x-request-id", request_id)
        .json(&json!({ "username": "alice", "password": PASSWORD }))
        .send()
        .await
        .expect("registering");
    assert_json(response, StatusCode::CREATED).await;
    let token = server.login("alice", PASSWORD).await;
    assert_json(server.get("/users", &token).await, StatusCode::OK).await;

    let log = server.log();
    let lines: Vec<Value> = log
        .lines()
        .filter(|line| !line.trim().is_empty())
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}")))
        .collect();
    let of_request: Vec<&Value> = lines
        .iter()
        .filter(|line| {
            line["spans"]
                .as_array()
                .is_some_and(|spans| spans.iter().any(|span| span["request_id"] == request_id))
        })
        .collect();
    let message = |line: &Value| line["fields"]["message"].as_str().unwrap_or("").to_owned();
    let messages: Vec<String> = of_request.iter().map(|line| message(line)).collect();
    // Logged inside the use case (`AuthService::register`'s span, under the request's).
    let registered = of_request
        .iter()
        .find(|line| message(line) == "user registered")
        .unwrap_or_else(|| panic!("no use-case line with the request id: {messages:?}\n{log}"));
    assert_eq!(registered["span"]["name"], "register", "{registered}");
    assert!(messages.iter().any(|m| m == "response"), "{messages:?}");
    assert!(!log.contains(PASSWORD), "a password was logged");
    assert!(!log.contains(&token), "a token was logged");
}

#[tokio::test]
async fn a_burst_of_messages_above_the_rate_is_all_delivered_and_acked_but_paced() {
    // 20 a second past a burst of 5, shared by all of a user's sockets: 45 messages
    // take (45 - 5) / 20 = 2 s at least. Two sockets paced apart would take 1 s.
    let server =
        TestServer::spawn_with(&[("SOCKET_MESSAGE_RATE", "20"), ("SOCKET_MESSAGE_BURST", "5")])
            .await;
    let (chat, users) = one_chat(&server, &["alice", "bob"]).await;
    let alice = &users[0].1;
    let mut listener = Socket::connect(&server, Kind::Ws, &users[1].1).await;
    listener.join(&[&chat]).await;
    let mut senders = [
        Socket::connect(&server, Kind::SocketIo, alice).await,
        Socket::connect(&server, Kind::Ws, alice).await,
    ];

    let started = Instant::now();
    let mut sent = [Vec::new(), Vec::new()];
    for n in 0..45 {
        let which = n % 2;
        let content = format!("paced {n}");
        let ack = senders[which]
            .emit(
                "messages:create",
                json!({ "chatId": chat, "content": content }),
            )
            .await;
        sent[which].push((ack, content));
    }
    let acked = join_all(
        senders
            .iter_mut()
            .zip(&sent)
            .map(|(socket, sent)| async move {
                let mut acked = Vec::new();
                for (expected, content) in sent {
                    let (id, data) = socket.next_ack().await;
                    assert_eq!(id, *expected, "acks come in the order asked");
                    assert_eq!(
                        data["content"],
                        content.as_str(),
                        "the ack of {content}: {data}"
                    );
                    acked.push(data["id"].as_str().expect("a stored message").to_owned());
                }
                acked
            }),
    )
    .await;
    let elapsed = started.elapsed();
    assert_eq!(acked.iter().map(Vec::len).sum::<usize>(), 45);

    let mut heard = Vec::new();
    while heard.len() < 45 {
        let message = listener.expect_event("messages:new").await;
        heard.push(message["content"].as_str().expect("content").to_owned());
    }
    for (which, sent) in sent.iter().enumerate() {
        let from_socket: Vec<&String> = heard
            .iter()
            .filter(|content| sent.iter().any(|(_, c)| c == *content))
            .collect();
        let in_order: Vec<&String> = sent.iter().map(|(_, c)| c).collect();
        assert_eq!(
            from_socket, in_order,
            "socket {which}'s messages, in its order"
        );
    }
    assert!(
        elapsed >= Duration::from_millis(1500),
        "45 messages at 20/s past a burst of 5 took only {elapsed:?}: not paced"
    );
}
