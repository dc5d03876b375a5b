//! The REST adapter through `Router::oneshot`, over mocked ports: status codes, check
//! order, problem bodies and middleware, with no network and no database.

#![allow(clippy::unwrap_used)] // a failed unwrap is the clearest test failure

use std::sync::Arc;

use adapter_http::{HttpState, Readiness, ReadinessProbe, router, router_with};
use app::ports::{MockMessageQueue, SingleProcess};
use app::{App, Ports};
use async_trait::async_trait;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use domain::ports::{
    MockChatRepository, MockMessageRepository, MockPasswordHasher, MockRoomEvents,
    MockTokenService, MockUserRepository, TokenError, VerifiedToken,
};
use domain::{Chat, ChatId, ChatName, PasswordPolicy, StoreError, UserId};
use serde_json::{Value, json};
use time::OffsetDateTime;
use tower::ServiceExt;
use uuid::Uuid;

const CHAT: u128 = 0xc;

fn user_id(n: u128) -> UserId {
    UserId::from_uuid(Uuid::from_u128(n))
}

struct Ready(Readiness);

#[async_trait]
impl ReadinessProbe for Ready {
    async fn check(&self) -> Readiness {
        self.0.clone()
    }
}

/// A lone node whose database answers (or not).
fn alone(database_up: bool) -> Readiness {
    Readiness {
        database: if database_up {
            Ok(())
        } else {
            Err("database down".into())
        },
        cluster: None,
    }
}

/// Token "owner" is user 1 (who owns chat C), "member" is user 2, "stranger" user 3 (not
/// in chat C); anything else is invalid.
fn tokens() -> MockTokenService {
    let mut tokens = MockTokenService::new();
    tokens.expect_verify().returning(|token| {
        let user = match token {
            "owner" => user_id(1),
            "member" => user_id(2),
            "stranger" => user_id(3),
            _ => return Err(TokenError::Invalid),
        };
        Ok(VerifiedToken {
            user,
            expires_at: time::OffsetDateTime::now_utc() + time::Duration::hours(1),
        })
    });
    tokens
}

fn chats() -> MockChatRepository {
    let mut chats = MockChatRepository::new();
    chats.expect_find().returning(|id| {
        Ok(
            (id == ChatId::from_uuid(Uuid::from_u128(CHAT))).then(|| Chat {
                id,
                name: ChatName::parse("general").unwrap(),
                owner_id: user_id(1),
                created_at: OffsetDateTime::UNIX_EPOCH,
            }),
        )
    });
    chats.expect_find_with_member().returning(|id, user| {
        Ok((id == ChatId::from_uuid(Uuid::from_u128(CHAT))).then(|| {
            let chat = Chat {
                id,
                name: ChatName::parse("general").unwrap(),
                owner_id: user_id(1),
                created_at: OffsetDateTime::UNIX_EPOCH,
            };
            (chat, user == user_id(1) || user == user_id(2))
        }))
    });
    chats
}

fn app_with(
    users: MockUserRepository,
    chats: MockChatRepository,
    ready: Readiness,
) -> axum::Router {
    router(state(users, chats, ready))
}

fn state(users: MockUserRepository, chats: MockChatRepository, ready: Readiness) -> HttpState {
    let ports = Ports {
        users: Arc::new(users),
        chats: Arc::new(chats),
        messages: Arc::new(MockMessageRepository::new()),
        message_queue: Arc::new(MockMessageQueue::new()),
        hasher: Arc::new(MockPasswordHasher::new()),
        tokens: Arc::new(tokens()),
        rooms: Arc::new(MockRoomEvents::new()),
        send_order: Arc::new(SingleProcess),
    };
    HttpState {
        app: App::new(ports, PasswordPolicy::default()),
        readiness: Arc::new(Ready(ready)),
    }
}

fn existing_users() -> MockUserRepository {
    let mut users = MockUserRepository::new();
    users.expect_exists().returning(|_| Ok(true));
    users
}

fn app() -> axum::Router {
    app_with(existing_users(), chats(), alone(true))
}

fn request(method: &str, uri: &str, token: Option<&str>, body: Option<&str>) -> Request<Body> {
    let mut builder = Request::builder().method(method).uri(uri);
    if let Some(token) = token {
        builder = builder.header(header::AUTHORIZATION, format!("Bearer {token}"));
    }
    if body.is_some() {
        builder = builder.header(header::CONTENT_TYPE, "application/json");
    }
    builder
        .body(body.map_or_else(Body::empty, |b| Body::from(b.to_owned())))
        .unwrap()
}

async fn send(
    router: axum::Router,
    request: Request<Body>,
) -> (StatusCode, axum::http::HeaderMap, Value) {
    let response = router.oneshot(request).await.unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap();
    let body = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes).unwrap()
    };
    (status, headers, body)
}

fn assert_problem(
    status: StatusCode,
    headers: &axum::http::HeaderMap,
    body: &Value,
    expected: StatusCode,
) {
    assert_eq!(status, expected, "body: {body}");
    assert_eq!(headers[header::CONTENT_TYPE], "application/problem+json");
    assert_eq!(body["type"], "about:blank");
    assert_eq!(body["status"], expected.as_u16());
    assert_eq!(body["title"], expected.canonical_reason().unwrap());
    assert!(body["detail"].is_string());
}

fn chat_uri(suffix: &str) -> String {
    format!("/chats/{}{suffix}", Uuid::from_u128(CHAT))
}

#[tokio::test]
async fn a_request_without_a_token_is_401_before_a_malformed_path_id_is_judged() {
    let (status, headers, body) = send(
        app(),
        request("GET", "/chats/not-a-uuid/members", None, None),
    )
    .await;
    assert_problem(status, &headers, &body, StatusCode::UNAUTHORIZED);
    assert_eq!(headers[header::WWW_AUTHENTICATE], "Bearer");
}

#[tokio::test]
async fn a_malformed_path_id_is_400_for_an_authenticated_caller() {
    let (status, headers, body) = send(
        app(),
        request("GET", "/chats/not-a-uuid/members", Some("member"), None),
    )
    .await;
    assert_problem(status, &headers, &body, StatusCode::BAD_REQUEST);
    assert_eq!(body["errors"][0]["field"], "chatId");
}

#[tokio::test]
async fn an_invalid_token_or_header_is_401() {
    for auth in ["Bearer nonsense", "Basic b3duZXI=", "Bearer", "owner"] {
        let req = Request::get("/chats")
            .header(header::AUTHORIZATION, auth)
            .body(Body::empty())
            .unwrap();
        let (status, headers, body) = send(app(), req).await;
        assert_problem(status, &headers, &body, StatusCode::UNAUTHORIZED);
    }
}

#[tokio::test]
async fn a_non_owner_with_an_invalid_body_is_403_not_400() {
    let req = request(
        "POST",
        &chat_uri("/members"),
        Some("member"),
        Some(r#"{"members": "oops"}"#),
    );
    let (status, headers, body) = send(app(), req).await;
    assert_problem(status, &headers, &body, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn an_unknown_chat_with_an_invalid_body_is_404() {
    let uri = format!("/chats/{}/members", Uuid::from_u128(0xdead));
    let (status, headers, body) =
        send(app(), request("POST", &uri, Some("owner"), Some("{"))).await;
    assert_problem(status, &headers, &body, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn the_owner_with_an_unknown_field_gets_400() {
    let req = request(
        "POST",
        &chat_uri("/members"),
        Some("owner"),
        Some(r#"{"members": [], "extra": 1}"#),
    );
    let (status, headers, body) = send(app(), req).await;
    assert_problem(status, &headers, &body, StatusCode::BAD_REQUEST);
    assert!(
        body["detail"].as_str().unwrap().contains("unknown field"),
        "{body}"
    );
}

#[tokio::test]
async fn unknown_member_ids_are_named_by_their_position() {
    let mut users = existing_users();
    let ghost = user_id(99);
    users.expect_missing().returning(move |_| Ok(vec![ghost]));
    let members = json!({ "members": [user_id(2).to_string(), ghost.to_string()] }).to_string();
    let req = request("POST", &chat_uri("/members"), Some("owner"), Some(&members));
    let (status, headers, body) = send(app_with(users, chats(), alone(true)), req).await;
    assert_problem(status, &headers, &body, StatusCode::BAD_REQUEST);
    assert_eq!(
        body["errors"],
        json!([{ "field": "members", "message": format!("no such user: {ghost}") }])
    );
}

#[tokio::test]
async fn a_body_over_64_kib_is_413_with_a_problem_body() {
    let big = format!(
        r#"{{"username": "{}", "password": "password1"}}"#,
        "a".repeat(70 * 1024)
    );
    let (status, headers, body) =
        send(app(), request("POST", "/auth/register", None, Some(&big))).await;
    assert_problem(status, &headers, &body, StatusCode::PAYLOAD_TOO_LARGE);
}

#[tokio::test]
async fn a_body_declared_as_something_other_than_json_is_415() {
    let req = Request::post("/auth/register")
        .header(header::CONTENT_TYPE, "text/plain")
        .body(Body::from(r#"{"username":"alice","password":"password1"}"#))
        .unwrap();
    let (status, headers, body) = send(app(), req).await;
    assert_problem(status, &headers, &body, StatusCode::UNSUPPORTED_MEDIA_TYPE);
}

#[tokio::test]
async fn login_with_malformed_json_is_400_but_with_a_wrong_shape_is_401() {
    let (status, headers, body) =
        send(app(), request("POST", "/auth/login", None, Some("{oops"))).await;
    assert_problem(status, &headers, &body, StatusCode::BAD_REQUEST);
    let (status, headers, body) = send(
        app(),
        request("POST", "/auth/login", None, Some(r#"{"username": 5}"#)),
    )
    .await;
    assert_problem(status, &headers, &body, StatusCode::UNAUTHORIZED);
    let (status, headers, body) =
        send(app(), request("POST", "/auth/login", None, Some("{}"))).await;
    assert_problem(status, &headers, &body, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn a_storage_failure_is_a_generic_500_that_leaks_nothing() {
    let mut users = existing_users();
    users.expect_list().returning(|_| {
        Err(StoreError::unavailable(std::io::Error::other(
            "relation users: secret sql",
        )))
    });
    let (status, headers, body) = send(
        app_with(users, chats(), alone(true)),
        request("GET", "/users", Some("owner"), None),
    )
    .await;
    assert_problem(status, &headers, &body, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(body["detail"], "internal error");
    assert!(!body.to_string().contains("secret"));
}

#[tokio::test]
async fn out_of_range_paging_is_400_never_clamped() {
    for query in ["limit=0", "limit=1001", "limit=abc", "after=nope"] {
        let (status, headers, body) = send(
            app(),
            request("GET", &format!("/users?{query}"), Some("owner"), None),
        )
        .await;
        assert_problem(status, &headers, &body, StatusCode::BAD_REQUEST);
    }
}

#[tokio::test]
async fn history_paging_is_judged_after_membership() {
    let (status, headers, body) = send(
        app(),
        request(
            "GET",
            &chat_uri("/messages?limit=0"),
            Some("stranger"),
            None,
        ),
    )
    .await;
    assert_problem(status, &headers, &body, StatusCode::FORBIDDEN);
    let (status, headers, body) = send(
        app(),
        request(
            "GET",
            &chat_uri("/messages?limit=101"),
            Some("member"),
            None,
        ),
    )
    .await;
    assert_problem(status, &headers, &body, StatusCode::BAD_REQUEST);
    assert_eq!(body["errors"][0]["field"], "limit");
}

#[tokio::test]
async fn every_response_carries_a_request_id_and_keeps_a_given_one() {
    let (_, headers, _) = send(app(), request("GET", "/healthz", None, None)).await;
    assert!(!headers["x-request-id"].is_empty());
    let req = Request::get("/healthz")
        .header("x-request-id", "abc-123")
        .body(Body::empty())
        .unwrap();
    let (_, headers, body) = send(app(), req).await;
    assert_eq!(headers["x-request-id"], "abc-123");
    assert_eq!(body, json!({ "status": "ok" }));
}

#[tokio::test]
async fn readyz_is_503_when_the_database_does_not_answer() {
    let (status, _, _) = send(
        app_with(existing_users(), chats(), alone(false)),
        request("GET", "/readyz", None, None),
    )
    .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    let (status, _, _) = send(app(), request("GET", "/readyz", None, None)).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn readyz_of_a_cluster_node_says_whether_it_hears_the_other_nodes() {
    let readyz = |database: Result<(), String>, cluster: Result<(), String>| async move {
        let app = app_with(
            existing_users(),
            chats(),
            Readiness {
                database,
                cluster: Some(cluster),
            },
        );
        let (status, _, body) = send(app, request("GET", "/readyz", None, None)).await;
        (status, body)
    };
    assert_eq!(
        readyz(Ok(()), Ok(())).await,
        (
            StatusCode::OK,
            json!({"status": "ok", "cluster": "connected"})
        )
    );
    // The broker away: still serving this node's sockets, so still ready.
    assert_eq!(
        readyz(Ok(()), Err("redis down".into())).await,
        (
            StatusCode::OK,
            json!({"status": "degraded", "cluster": "disconnected"})
        )
    );
    assert_eq!(
        readyz(Err("db down".into()), Err("redis down".into())).await,
        (
            StatusCode::SERVICE_UNAVAILABLE,
            json!({"status": "unavailable", "cluster": "disconnected"})
        )
    );
}

#[tokio::test]
async fn an_unknown_route_is_a_404_problem() {
    let (status, headers, body) = send(app(), request("GET", "/nowhere", None, None)).await;
    assert_problem(status, &headers, &body, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn a_json_array_is_not_a_body_even_in_field_order() {
    let (status, headers, body) = send(
        app(),
        request(
            "POST",
            "/auth/register",
            None,
            Some(r#"["alice", "password1"]"#),
        ),
    )
    .await;
    assert_problem(status, &headers, &body, StatusCode::BAD_REQUEST);
    assert!(
        body["detail"].as_str().unwrap().contains("JSON object"),
        "{body}"
    );
    // Well-formed JSON of the wrong shape is a failed login, not a 400.
    let (status, headers, body) = send(
        app(),
        request(
            "POST",
            "/auth/login",
            None,
            Some(r#"["alice", "password1"]"#),
        ),
    )
    .await;
    assert_problem(status, &headers, &body, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn a_known_path_with_an_unsupported_method_is_a_405_problem() {
    let (status, headers, body) = send(app(), request("PUT", "/chats", Some("owner"), None)).await;
    assert_problem(status, &headers, &body, StatusCode::METHOD_NOT_ALLOWED);
}

#[tokio::test]
async fn pages_served_beside_the_api_get_its_request_ids_and_leave_its_404_alone() {
    let pages = axum::Router::new().route("/", axum::routing::get(|| async { "the page" }));
    let app = router_with(
        state(existing_users(), chats(), alone(true)),
        adapter_http::pages::static_files(pages, [("/", "text/plain")]),
        adapter_http::RequestLimits::default(),
    );

    let response = app
        .clone()
        .oneshot(request("GET", "/", None, None))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert!(!response.headers()["x-request-id"].is_empty());
    let (status, headers, body) = send(app.clone(), request("GET", "/nothing", None, None)).await;
    assert_problem(status, &headers, &body, StatusCode::NOT_FOUND);
    let (status, _, _) = send(app.clone(), request("GET", "/healthz", None, None)).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _, body) = send(app, request("GET", "/openapi.json", None, None)).await;
    assert_eq!(status, StatusCode::OK);
    let page = &body["paths"]["/"]["get"]["responses"]["200"]["content"];
    assert!(
        page.get("text/plain").is_some(),
        "the page is not described: {body}"
    );
}
