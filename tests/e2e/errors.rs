//! What holds for every answer: a request id, RFC 9457 problem documents for errors, and
//! no 5xx for anything a client can send.

use std::time::Duration;

use reqwest::header::CONTENT_TYPE;
use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::helpers::{
    PASSWORD, TestServer, assert_json, assert_no_content, assert_problem, assert_request_id,
    error_fields, id_of, unknown_id,
};
use crate::sockets::{Kind, Socket};

#[tokio::test]
async fn a_response_of_every_kind_carries_its_own_x_request_id() {
    let app = TestServer::spawn().await;
    let (_, alice) = app.user_with_token("alice").await;
    let (_, bob) = app.user_with_token("bob").await;
    let chat = id_of(&app.create_chat(&alice, "team", &[]).await);
    let register = |name: &str| json!({"username": name, "password": PASSWORD});

    let responses = vec![
        app.get_anonymous("/healthz").await,
        app.get_anonymous("/readyz").await,
        app.post("/auth/register", None, &register("carol")).await, // 201
        app.post("/auth/register", None, &register("Carol")).await, // 409
        app.get("/users", &alice).await,                            // 200
        app.get_anonymous("/users").await,                          // 401
        app.get("/chats/nope/members", &alice).await,               // 400
        app.get(&format!("/chats/{chat}/members"), &bob).await,     // 403
        app.get(&format!("/chats/{}/members", unknown_id()), &alice)
            .await, // 404
        app.send_raw(Method::POST, "/auth/register", None, "x".repeat(70 * 1024))
            .await, // 413
        app.delete(&format!("/chats/{chat}"), &alice).await,        // 204
    ];

    let mut ids: Vec<String> = responses
        .iter()
        .map(|r| {
            assert!(
                r.status().as_u16() < 500,
                "{} answered {}",
                r.url(),
                r.status()
            );
            assert_request_id(r)
        })
        .collect();
    let count = ids.len();
    ids.sort();
    ids.dedup();
    // Interpretation: a request id identifies one request, so no two share one.
    assert_eq!(ids.len(), count, "request ids repeat: {ids:?}");
}

#[tokio::test]
async fn an_unknown_route_is_a_404_problem() {
    let app = TestServer::spawn().await;
    let (_, token) = app.user_with_token("alice").await;

    // Interpretation: "errors are RFC 9457 problem details" covers routes that do not
    // exist too, with or without a token.
    for path in ["/nope", "/chats/x/y/z", "/auth", "/users/me/friends"] {
        assert_problem(app.get_anonymous(path).await, StatusCode::NOT_FOUND).await;
        assert_problem(app.get(path, &token).await, StatusCode::NOT_FOUND).await;
    }
}

#[tokio::test]
async fn an_unsupported_method_on_a_known_path_is_a_405_problem() {
    let app = TestServer::spawn().await;
    let (_, token) = app.user_with_token("alice").await;
    let chat = id_of(&app.create_chat(&token, "team", &[]).await);

    // Interpretation: as for unknown routes, the error is a problem document; its status
    // is the one HTTP defines for a method the resource does not support.
    for (method, path) in [
        (Method::PUT, "/chats".to_owned()),
        (Method::GET, "/auth/register".to_owned()),
        (Method::PATCH, format!("/chats/{chat}")),
        (Method::POST, "/healthz".to_owned()),
    ] {
        let response = app
            .request(method, &path, Some(&token))
            .send()
            .await
            .unwrap();
        assert_problem(response, StatusCode::METHOD_NOT_ALLOWED).await;
    }
    // The chat survived the PATCH.
    assert_eq!(app.member_ids(&token, &chat).await.len(), 1);
}

#[tokio::test]
async fn a_body_not_declared_as_json_is_a_4xx_problem() {
    let app = TestServer::spawn().await;
    let body = json!({"username": "alice", "password": PASSWORD}).to_string();

    // Interpretation: the contract says nothing of the Content-Type of requests; a
    // careful server refuses a body declared as something other than JSON (what an HTML
    // form on another site can send) with 400 or 415, never 5xx, and stores nothing. A
    // body with no Content-Type at all may be read either way, so it is not tested.
    for content_type in ["text/plain", "application/x-www-form-urlencoded"] {
        let response = app
            .request(Method::POST, "/auth/register", None)
            .header(CONTENT_TYPE, content_type)
            .body(body.clone())
            .send()
            .await
            .unwrap();
        let status = response.status();
        assert!(
            status == StatusCode::BAD_REQUEST || status == StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "Content-Type {content_type:?} answered {status}"
        );
        assert_problem(response, status).await;
    }
    app.register("alice", PASSWORD).await;
}

#[tokio::test]
async fn absurd_query_and_path_values_are_400_problems() {
    let app = TestServer::spawn().await;
    let (_, token) = app.user_with_token("alice").await;
    let chat = id_of(&app.create_chat(&token, "team", &[]).await);

    for path in [
        "/users?limit=99999999999999999999999".to_owned(),
        "/users?limit=1e3".to_owned(),
        "/users?limit=%00".to_owned(),
        format!("/chats/{chat}/messages?limit=-99999999999999999999"),
        format!("/chats/{chat}/messages?before=%F0%9F%98%80"),
        format!("/chats/{}/members", "a".repeat(5000)),
        "/chats/%F0%9F%98%80/members".to_owned(),
        "/chats/00000000-0000-0000-0000-00000000000g/members".to_owned(),
    ] {
        assert_problem(app.get(&path, &token).await, StatusCode::BAD_REQUEST).await;
    }
}

#[tokio::test]
async fn a_request_that_failed_validation_changes_nothing() {
    let app = TestServer::spawn().await;
    let (_, alice) = app.user_with_token("alice").await;
    let (bob, _) = app.user_with_token("bob").await;
    let chat = id_of(&app.create_chat(&alice, "team", &[&bob]).await);
    let before = app.member_ids(&alice, &chat).await;

    let bad = json!({"members": [bob, "not-a-uuid"]});
    let response = app
        .delete_with(&format!("/chats/{chat}/members"), &alice, &bad)
        .await;
    assert_problem(response, StatusCode::BAD_REQUEST).await;
    let response = app
        .post(&format!("/chats/{chat}/members"), Some(&alice), &bad)
        .await;
    assert_problem(response, StatusCode::BAD_REQUEST).await;

    assert_eq!(app.member_ids(&alice, &chat).await, before);
    // And the chat is intact enough to be deleted normally.
    assert_no_content(app.delete(&format!("/chats/{chat}"), &alice).await).await;
    assert_json(app.get("/chats", &alice).await, StatusCode::OK).await;
}

/// No store can keep a NUL character (PostgreSQL text cannot hold one at all): it is
/// refused as the client's mistake, never a 500, and nothing is stored.
#[tokio::test]
async fn text_with_a_nul_character_is_a_400_on_its_field_and_stores_nothing() {
    let app = TestServer::spawn().await;
    let (_, alice) = app.user_with_token("alice").await;
    let problem = assert_problem(
        app.post(
            "/chats",
            Some(&alice),
            &json!({"name": "a\0b", "members": []}),
        )
        .await,
        StatusCode::BAD_REQUEST,
    )
    .await;
    assert!(
        error_fields(&problem).contains(&"name".to_owned()),
        "{problem}"
    );
    assert!(app.chats(&alice).await.is_empty());

    let (bob_id, _) = app.user_with_token("bob").await;
    let chat = id_of(&app.create_chat(&alice, "general", &[&bob_id]).await);
    let mut socket = Socket::connect(&app, Kind::Ws, &alice).await;
    for draft in [
        json!({"chatId": chat, "content": "a\0b"}),
        json!({"chatId": chat, "content": "fine", "clientMsgId": "c\0"}),
    ] {
        let refused = socket.request("messages:create", draft).await;
        assert_eq!(refused["status"], "error", "{refused}");
        let exception = socket.expect_event("exception").await;
        assert_eq!(exception["event"], "messages:create", "{exception}");
        assert!(
            exception["message"]
                .as_str()
                .is_some_and(|m| m.contains("NUL")),
            "{exception}"
        );
    }
    let history = assert_json(
        app.get(&format!("/chats/{chat}/messages"), &alice).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(history, json!([]));
}

/// A client's `x-request-id` is echoed and logged, so only a short, plain one is kept:
/// one that is too long, holds spaces, control characters or bytes beyond ASCII, or is
/// sent twice is replaced by a fresh id.
#[tokio::test]
async fn a_client_request_id_is_kept_only_when_short_and_plain() {
    let app = TestServer::spawn().await;
    let with_id = |ids: &[&[u8]]| {
        let mut request = app.request(Method::GET, "/healthz", None);
        for id in ids {
            request = request.header(
                "x-request-id",
                reqwest::header::HeaderValue::from_bytes(id).expect("a header value"),
            );
        }
        request.send()
    };

    let kept = "client-id_0123.abc";
    let response = with_id(&[kept.as_bytes()]).await.unwrap();
    assert_eq!(assert_request_id(&response), kept);
    let longest = "k".repeat(64);
    let response = with_id(&[longest.as_bytes()]).await.unwrap();
    assert_eq!(assert_request_id(&response), longest);

    let huge = "x".repeat(90 * 1024);
    let too_long = "k".repeat(65);
    let unfit: [&[&[u8]]; 6] = [
        &[huge.as_bytes()],
        &[too_long.as_bytes()],
        &[b"two words"],
        &[b"caf\xc3\xa9"],
        &[b"\xff\xfe\x80"],
        &[b"first", b"second"],
    ];
    for ids in unfit {
        let response = with_id(ids).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        let id = assert_request_id(&response);
        assert!(
            uuid::Uuid::parse_str(&id).is_ok(),
            "{:?} was answered with the request id {id:?}, not a fresh one",
            ids.iter()
                .map(|id| String::from_utf8_lossy(id))
                .collect::<Vec<_>>()
        );
    }
}

/// JSON is UTF-8 (RFC 8259): a body declared in another charset would be misread, so it
/// is refused with `415`, and nothing is stored.
#[tokio::test]
async fn a_json_body_declared_in_a_charset_other_than_utf8_is_a_415_problem() {
    let app = TestServer::spawn().await;
    let body = json!({"username": "alice", "password": PASSWORD}).to_string();
    for content_type in [
        "application/json; charset=utf-16",
        "application/json; charset=UTF-16LE",
        "application/json; charset=iso-8859-1",
    ] {
        let response = app
            .request(Method::POST, "/auth/register", None)
            .header(CONTENT_TYPE, content_type)
            .body(body.clone())
            .send()
            .await
            .unwrap();
        assert_problem(response, StatusCode::UNSUPPORTED_MEDIA_TYPE).await;
    }
    let response = app
        .request(Method::POST, "/auth/register", None)
        .header(CONTENT_TYPE, "application/json; charset=UTF-8")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_json(response, StatusCode::CREATED).await;
}

/// The contract's ids are lowercase and hyphenated. Other spellings of the same UUID
/// (upper case, no hyphens, braces, `urn:uuid:`) are refused everywhere, in paths,
/// bodies, queries and socket events, so that one id has one spelling.
#[tokio::test]
async fn an_id_not_in_lowercase_hyphenated_form_is_refused_everywhere() {
    let app = TestServer::spawn().await;
    let (_, alice) = app.user_with_token("alice").await;
    let (bob, _) = app.user_with_token("bob").await;
    let chat = id_of(&app.create_chat(&alice, "team", &[]).await);
    let spellings = |id: &str| {
        vec![
            id.to_uppercase(),
            id.replace('-', ""),
            format!("{{{id}}}"),
            format!("urn:uuid:{id}"),
        ]
    };

    for other in spellings(&chat) {
        let path = format!("/chats/{other}/members");
        assert_problem(app.get(&path, &alice).await, StatusCode::BAD_REQUEST).await;
        let path = format!("/chats/{other}/messages");
        assert_problem(app.get(&path, &alice).await, StatusCode::BAD_REQUEST).await;
    }
    for other in spellings(&bob) {
        let members = json!({"members": [other]});
        let path = format!("/chats/{chat}/members");
        let response = app.post(&path, Some(&alice), &members).await;
        assert_problem(response, StatusCode::BAD_REQUEST).await;
        let response = app
            .post(
                "/chats",
                Some(&alice),
                &json!({"name": "x", "members": [other]}),
            )
            .await;
        assert_problem(response, StatusCode::BAD_REQUEST).await;
        let path = format!("/users?after={}", urlencode(&other));
        assert_problem(app.get(&path, &alice).await, StatusCode::BAD_REQUEST).await;
    }
    assert_eq!(app.member_ids(&alice, &chat).await.len(), 1);
    assert_eq!(app.chats(&alice).await.len(), 1);

    let mut socket = Socket::connect(&app, Kind::Ws, &alice).await;
    for other in spellings(&chat) {
        let refused = socket
            .request("chats:connect", json!({"chatIds": [other]}))
            .await;
        assert_eq!(refused["status"], "error", "{refused}");
        socket.expect_event("exception").await;
        let refused = socket
            .request("messages:create", json!({"chatId": other, "content": "hi"}))
            .await;
        assert_eq!(refused["status"], "error", "{refused}");
        socket.expect_event("exception").await;
    }
    let history = assert_json(
        app.get(&format!("/chats/{chat}/messages"), &alice).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(history, json!([]));
}

/// Percent-encodes what a query value cannot hold as is.
fn urlencode(raw: &str) -> String {
    raw.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'.' | b'_' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// A request hyper cannot parse never reaches the routes, and hyper answers it with an
/// empty body: a 100 KB path (`414`), headers of half a megabyte (`431`) and a
/// malformed header line (`400`) are problem documents with a request id like every
/// other error.
#[tokio::test]
async fn a_request_too_long_or_malformed_for_http_is_a_problem_document() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let app = TestServer::spawn().await;
    let address = app.address.trim_start_matches("http://").to_owned();
    let long_path = format!(
        "GET /{} HTTP/1.1\r\nHost: x\r\n\r\n",
        "a".repeat(100 * 1024)
    );
    let long_header = format!(
        "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n",
        "b".repeat(500 * 1024)
    );
    let malformed = "GET /healthz HTTP/1.1\r\nHost: x\r\nNo colon here\r\n\r\n".to_owned();
    for (request, status) in [(long_path, 414), (long_header, 431), (malformed, 400)] {
        let mut tcp = tokio::net::TcpStream::connect(&address).await.unwrap();
        // The server may answer and close before it has read all of a huge request.
        let _ = tcp.write_all(request.as_bytes()).await;
        let mut answer = Vec::new();
        tokio::time::timeout(Duration::from_secs(10), tcp.read_to_end(&mut answer))
            .await
            .expect("the server answers and closes")
            .ok();
        let answer = String::from_utf8_lossy(&answer);
        let (head, body) = answer.split_once("\r\n\r\n").unwrap_or((&answer, ""));
        assert!(head.starts_with(&format!("HTTP/1.1 {status} ")), "{head}");
        let head = head.to_ascii_lowercase();
        assert!(
            head.contains("\r\ncontent-type: application/problem+json\r\n"),
            "{head}"
        );
        assert!(head.contains("\r\nx-request-id: "), "{head}");
        let problem: serde_json::Value = serde_json::from_str(body).expect(body);
        assert_eq!(problem["status"], status, "{problem}");
        assert_eq!(problem["type"], "about:blank", "{problem}");
        assert!(problem["detail"].is_string(), "{problem}");
    }
}
