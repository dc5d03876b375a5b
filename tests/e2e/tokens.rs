//! Bearer authentication: every authenticated route refuses a missing, malformed, forged,
//! expired or orphaned token with a 401 problem, before looking at anything else.

use std::time::Duration;

use jsonwebtoken::{EncodingKey, Header, encode};
use reqwest::header::AUTHORIZATION;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{
    PASSWORD, TestServer, assert_json, assert_problem, id_of, one_chat, str_of, unknown_id,
};
use crate::sockets::{Kind, in_room};

/// One request to every authenticated route, naming `chat` (a real chat, or a malformed
/// id) and `user` (a real user) where the route needs them, with valid bodies.
fn authenticated_routes(chat: &str, user: &str) -> Vec<(Method, String, Option<Value>)> {
    let members = json!({"members": [user]});
    vec![
        (Method::GET, "/users".to_owned(), None),
        (
            Method::POST,
            "/chats".to_owned(),
            Some(json!({"name": "new chat", "members": [user]})),
        ),
        (Method::GET, "/chats".to_owned(), None),
        (Method::GET, format!("/chats/{chat}/members"), None),
        (
            Method::POST,
            format!("/chats/{chat}/members"),
            Some(members.clone()),
        ),
        (Method::DELETE, format!("/chats/{chat}"), None),
        (
            Method::DELETE,
            format!("/chats/{chat}/members"),
            Some(members),
        ),
        (Method::DELETE, format!("/chats/{chat}/members/me"), None),
        (Method::GET, format!("/chats/{chat}/messages"), None),
    ]
}

/// Sends every authenticated route with this `Authorization` header (or none) and
/// expects a 401 problem from each.
async fn assert_every_route_refuses(
    app: &TestServer,
    chat: &str,
    user: &str,
    authorization: Option<&str>,
) {
    for (method, path, body) in authenticated_routes(chat, user) {
        let mut request = app.request(method.clone(), &path, None);
        if let Some(value) = authorization {
            request = request.header(AUTHORIZATION, value);
        }
        if let Some(body) = &body {
            request = request.json(body);
        }
        let response = request.send().await.expect("sending the request");
        let status = response.status();
        if status != StatusCode::UNAUTHORIZED {
            let body = response.text().await.unwrap_or_default();
            panic!(
                "{method} {path} with Authorization {authorization:?}: {status}, not 401: {body}"
            );
        }
        assert_problem(response, StatusCode::UNAUTHORIZED).await;
    }
}

/// A server with a user who owns a chat with a second member:
/// `(app, owner token, chat id, member id)`.
async fn app_with_a_chat() -> (TestServer, String, String, String) {
    let app = TestServer::spawn().await;
    let (_, token) = app.user_with_token("alice").await;
    let (bob, _) = app.user_with_token("bob").await;
    let chat = app.create_chat(&token, "team", &[&bob]).await;
    (app, token, id_of(&chat), bob)
}

/// Asserts that the chat still exists with both members: a refused request changed
/// nothing.
async fn assert_chat_untouched(app: &TestServer, token: &str, chat: &str) {
    assert_eq!(app.member_ids(token, chat).await.len(), 2);
}

#[tokio::test]
async fn every_authenticated_route_returns_401_without_an_authorization_header() {
    let (app, token, chat, bob) = app_with_a_chat().await;

    assert_every_route_refuses(&app, &chat, &bob, None).await;

    assert_chat_untouched(&app, &token, &chat).await;
}

#[tokio::test]
async fn a_malformed_chat_id_without_a_token_is_401_not_400() {
    let (app, _, _, bob) = app_with_a_chat().await;

    // Order of checks: authentication comes before the path.
    assert_every_route_refuses(&app, "not-a-uuid", &bob, None).await;
    assert_every_route_refuses(&app, "not-a-uuid", &bob, Some("Bearer garbage")).await;
}

#[tokio::test]
async fn an_unknown_chat_without_a_token_is_401_not_404() {
    let (app, _, _, bob) = app_with_a_chat().await;

    assert_every_route_refuses(&app, &unknown_id(), &bob, None).await;
}

#[tokio::test]
async fn a_malformed_authorization_header_is_401() {
    let (app, token, chat, bob) = app_with_a_chat().await;

    // A valid token in a malformed header is still refused.
    for header in [
        token.clone(),
        format!("Token {token}"),
        format!("Basic {token}"),
        format!("Bearer{token}"),
        format!("Bearer {token} extra"),
        "Bearer".to_owned(),
        "Bearer ".to_owned(),
        "Basic YWxpY2U6Y29ycmVjdCBob3JzZSBiYXR0ZXJ5IHN0YXBsZQ==".to_owned(),
    ] {
        assert_every_route_refuses(&app, &chat, &bob, Some(&header)).await;
    }
    assert_chat_untouched(&app, &token, &chat).await;
}

#[tokio::test]
async fn a_garbage_or_tampered_token_is_401() {
    let (app, token, chat, bob) = app_with_a_chat().await;

    let (header, rest) = token.split_once('.').unwrap();
    let (payload, signature) = rest.split_once('.').unwrap();
    // Change the signature's first character: every bit of it counts (the last
    // character's low bits are base64 padding, which a lenient decoder ignores).
    let flipped = if signature.starts_with('A') { 'B' } else { 'A' };
    let tampered_signature = format!("{header}.{payload}.{flipped}{}", &signature[1..]);
    // Bob's id in place of Alice's, with Alice's signature.
    let claims: Value = jsonwebtoken::dangerous::insecure_decode_claims(&token).unwrap();
    let mut forged = claims.clone();
    forged["sub"] = json!(bob);
    let forged_payload = encode_segment(&forged);

    for bad in [
        "garbage".to_owned(),
        "a.b.c".to_owned(),
        "..".to_owned(),
        tampered_signature,
        format!("{header}.{forged_payload}.{signature}"),
    ] {
        assert_every_route_refuses(&app, &chat, &bob, Some(&format!("Bearer {bad}"))).await;
    }
    assert_chat_untouched(&app, &token, &chat).await;
}

#[tokio::test]
async fn a_token_signed_with_another_key_is_401() {
    let (app, token, chat, bob) = app_with_a_chat().await;
    let header = jsonwebtoken::decode_header(&token).unwrap();
    let claims: Value = jsonwebtoken::dangerous::insecure_decode_claims(&token).unwrap();

    // Control: the same claims signed with the server's own key are accepted, so the
    // refusal below is about the key alone.
    let resigned = encode(
        &Header::new(header.alg),
        &claims,
        &EncodingKey::from_secret(app.jwt_secret.as_bytes()),
    )
    .unwrap();
    assert_json(app.get("/users", &resigned).await, StatusCode::OK).await;

    let forged = encode(
        &Header::new(jsonwebtoken::Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(b"not the server's secret, but a long one all the same"),
    )
    .unwrap();
    assert_every_route_refuses(&app, &chat, &bob, Some(&format!("Bearer {forged}"))).await;
    assert_chat_untouched(&app, &token, &chat).await;
}

#[tokio::test]
async fn an_alg_none_token_is_401() {
    let (app, token, chat, bob) = app_with_a_chat().await;
    let (_, rest) = token.split_once('.').unwrap();
    let (payload, signature) = rest.split_once('.').unwrap();

    for alg in ["none", "None", "NONE"] {
        let header = encode_segment(&json!({"alg": alg, "typ": "JWT"}));
        for unsigned in [
            format!("{header}.{payload}."),
            format!("{header}.{payload}.{signature}"),
        ] {
            assert_every_route_refuses(&app, &chat, &bob, Some(&format!("Bearer {unsigned}")))
                .await;
        }
    }
    assert_chat_untouched(&app, &token, &chat).await;
}

#[tokio::test]
async fn an_expired_token_is_401() {
    let app = TestServer::spawn_with(&[("JWT_TTL", "1s")]).await;
    let (alice, _) = app.user_with_token("alice").await;
    let response = app
        .post(
            "/auth/login",
            None,
            &json!({"username": "alice", "password": PASSWORD}),
        )
        .await;
    let login = assert_json(response, StatusCode::OK).await;
    assert_eq!(login["expires_in"], 1);
    let token = str_of(&login, "access_token");
    assert_json(app.get("/users", &token).await, StatusCode::OK).await;

    // The token expires JWT_TTL after it was issued. Rather than wait that out on the
    // clock, the same claims are signed again with the server's key and moved into the
    // past: what the server checks is the same signature and the same `exp`.
    let header = jsonwebtoken::decode_header(&token).unwrap();
    let claims: Value = jsonwebtoken::dangerous::insecure_decode_claims(&token).unwrap();
    let (iat, exp) = (
        claims["iat"].as_i64().unwrap(),
        claims["exp"].as_i64().unwrap(),
    );
    assert_eq!(exp - iat, 1, "the token lives JWT_TTL: {claims}");
    let resigned = |shift: i64| {
        let mut claims = claims.clone();
        claims["iat"] = json!(iat + shift);
        claims["exp"] = json!(exp + shift);
        encode(
            &Header::new(header.alg),
            &claims,
            &EncodingKey::from_secret(app.jwt_secret.as_bytes()),
        )
        .unwrap()
    };
    // Control: moved a minute ahead it is still accepted, so the refusal below is
    // about its age alone.
    assert_json(app.get("/users", &resigned(60)).await, StatusCode::OK).await;

    let expired = resigned(-60);
    assert_every_route_refuses(
        &app,
        &unknown_id(),
        &alice,
        Some(&format!("Bearer {expired}")),
    )
    .await;
}

#[tokio::test]
async fn a_token_whose_user_was_deleted_is_401() {
    let (app, token, chat, bob) = app_with_a_chat().await;
    let (carol, carol_token) = app.user_with_token("carol").await;
    assert_json(app.get("/users", &carol_token).await, StatusCode::OK).await;

    app.delete_user(&carol).await;

    assert_every_route_refuses(&app, &chat, &bob, Some(&format!("Bearer {carol_token}"))).await;
    assert_chat_untouched(&app, &token, &chat).await;
}

/// Base64url (no padding) of a JSON value: one segment of a hand-made JWT.
fn encode_segment(value: &Value) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let bytes = value.to_string().into_bytes();
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | (u32::from(*b) << (16 - 8 * i)));
        for i in 0..=chunk.len() {
            out.push(char::from(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize]));
        }
    }
    out
}

#[tokio::test]
async fn sockets_are_closed_when_their_token_expires_with_the_reason() {
    // Long enough to set the sockets up on a slow machine, short for the test.
    let app = TestServer::spawn_with(&[("JWT_TTL", "5s")]).await;
    let (chat, users) = one_chat(&app, &["alice", "bob"]).await;
    let [(_, alice), (_, bob)] = &users[..] else {
        unreachable!("two users were made")
    };
    let mut on_ws = in_room(&app, Kind::Ws, alice, &chat).await;
    let mut on_sio = in_room(&app, Kind::SocketIo, bob, &chat).await;
    on_ws.send_message(&chat, "while the token is good").await;

    // Each is closed at its token's expiry (within the suite's arrival time), with the
    // reason: `/ws` in its close frame, Socket.IO as an `exception` before the
    // server's disconnect.
    assert_eq!(
        on_ws.expect_closed().await,
        Some((4001, "token expired".to_owned()))
    );
    loop {
        let (event, data) = on_sio.next_event().await;
        if event == "exception" {
            assert_eq!(data["message"], "token expired");
            break;
        }
    }
    assert_eq!(on_sio.expect_closed().await, None);
}

/// A server started with `JWT_SECRET=` (what an unset variable in a compose file gives)
/// or a short secret would sign tokens anyone can forge: it refuses to start, with one
/// line naming the variable, before it opens anything.
#[tokio::test]
async fn the_server_refuses_to_start_with_an_empty_or_short_jwt_secret() {
    let data_dir = std::env::temp_dir().join(format!("messenger-e2e-{}", uuid::Uuid::new_v4()));
    for secret in ["", "a", "31-bytes-31-bytes-31-bytes-31-b"] {
        let server = tokio::process::Command::new(env!("CARGO_BIN_EXE_server"))
            .env("JWT_SECRET", secret)
            .env("HOST", "127.0.0.1")
            .env("PORT", "0")
            .env("DATA_DIR", &data_dir)
            .env("RUST_LOG", "warn")
            .env_remove("DATABASE_URL")
            .env_remove("REDIS_URL")
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("starting the server binary");
        let output = tokio::time::timeout(Duration::from_secs(20), server.wait_with_output())
            .await
            .unwrap_or_else(|_| panic!("JWT_SECRET={secret:?}: the server kept running"))
            .expect("waiting for the server");
        assert!(
            !output.status.success(),
            "JWT_SECRET={secret:?}: {output:?}"
        );
        let stderr = String::from_utf8_lossy(&output.stderr);
        let lines: Vec<&str> = stderr.lines().collect();
        assert_eq!(lines.len(), 1, "JWT_SECRET={secret:?}: {stderr}");
        assert!(
            lines[0].starts_with("error: JWT_SECRET ") && lines[0].contains("32"),
            "JWT_SECRET={secret:?}: {stderr}"
        );
    }
    // Refused before the store was opened: no database file was made.
    assert!(!data_dir.exists(), "{}", data_dir.display());
}
