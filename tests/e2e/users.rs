//! `GET /users`: every user, ordered by `createdAt` then `id`, paged by `limit` and
//! `after` (the last id of the previous page); out-of-range values are 400, not clamped.

use reqwest::StatusCode;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::helpers::{
    PASSWORD, TestServer, as_array, assert_json, assert_no_content, assert_problem, assert_user,
    id_of, str_of, unknown_id,
};

/// `GET <path>` as `token`, expecting a 200 list of Users.
async fn list(app: &TestServer, token: &str, path: &str) -> Vec<Value> {
    let users = as_array(&assert_json(app.get(path, token).await, StatusCode::OK).await);
    users.iter().for_each(assert_user);
    users
}

/// The ids of a list of Users.
fn ids(users: &[Value]) -> Vec<String> {
    users.iter().map(id_of).collect()
}

#[tokio::test]
async fn list_users_returns_every_user_in_order_of_registration() {
    let app = TestServer::spawn().await;
    let mut registered = Vec::new();
    for name in ["carol", "Alice", "bob"] {
        registered.push(app.register(name, crate::helpers::PASSWORD).await);
    }
    let token = app.login("bob", crate::helpers::PASSWORD).await;

    let users = list(&app, &token, "/users").await;

    // Exactly what registration answered: same ids, names as given, same timestamps.
    assert_eq!(users, registered);
}

#[tokio::test]
async fn list_users_orders_by_created_at_then_id() {
    let app = TestServer::spawn().await;
    let (me, token) = app.user_with_token("alice").await;
    let first = "ffffffff-ffff-4fff-bfff-ffffffffffff";
    let second = "00000000-0000-4000-8000-000000000001";
    let mut tied: Vec<String> = (0..6).map(|_| unknown_id()).collect();
    // Creation order and id order disagree for `first` and `second`; the `tied` users
    // share one instant, so only their ids order them.
    let rows: Vec<Uuid> = [first, second]
        .into_iter()
        .chain(tied.iter().map(String::as_str))
        .map(|id| Uuid::parse_str(id).unwrap())
        .collect();
    app.insert_user_rows(&rows, &[vec![3, 2], vec![1; tied.len()]].concat())
        .await;
    tied.sort();

    let users = list(&app, &token, "/users").await;

    let mut expected = vec![first.to_owned(), second.to_owned()];
    expected.extend(tied);
    expected.push(me);
    assert_eq!(ids(&users), expected);
}

#[tokio::test]
async fn list_users_pages_with_limit_and_after() {
    let app = TestServer::spawn().await;
    let (_, token) = app.user_with_token("alice").await;
    app.insert_users(249).await;
    let everyone = ids(&list(&app, &token, "/users?limit=1000").await);
    assert_eq!(everyone.len(), 250);

    let mut paged = Vec::new();
    let mut path = "/users?limit=100".to_owned();
    loop {
        let page = ids(&list(&app, &token, &path).await);
        assert!(page.len() <= 100);
        let Some(last) = page.last().cloned() else {
            break;
        };
        paged.extend(page);
        path = format!("/users?limit=100&after={last}");
    }

    assert_eq!(paged, everyone, "pages concatenated are the whole listing");
    let after_second = format!("/users?after={}&limit=3", everyone[1]);
    assert_eq!(
        ids(&list(&app, &token, &after_second).await),
        everyone[2..5]
    );
    let after_last = format!("/users?after={}", everyone[249]);
    assert!(list(&app, &token, &after_last).await.is_empty());
}

#[tokio::test]
async fn list_users_returns_100_by_default_and_up_to_1000_on_request() {
    let app = TestServer::spawn().await;
    let (_, token) = app.user_with_token("alice").await;
    app.insert_users(1100).await;

    assert_eq!(list(&app, &token, "/users").await.len(), 100);
    assert_eq!(list(&app, &token, "/users?limit=1").await.len(), 1);
    assert_eq!(list(&app, &token, "/users?limit=1000").await.len(), 1000);
}

#[tokio::test]
async fn list_users_never_shows_a_password_or_its_hash() {
    let app = TestServer::spawn().await;
    let (_, token) = app.user_with_token("alice").await;

    let response = app.get("/users", &token).await;
    let text = response.text().await.unwrap();

    assert!(!text.contains("argon2"), "a hash is listed: {text}");
    assert!(
        !text.contains(crate::helpers::PASSWORD),
        "a password is listed: {text}"
    );
    // `list` checks each entry is exactly {id, username, createdAt}.
    assert_eq!(list(&app, &token, "/users").await.len(), 1);
}

#[tokio::test]
async fn list_users_returns_400_for_a_limit_out_of_range() {
    let app = TestServer::spawn().await;
    let (_, token) = app.user_with_token("alice").await;

    for limit in ["0", "1001", "5000", "-1", "abc", "1.5", "10abc"] {
        let response = app.get(&format!("/users?limit={limit}"), &token).await;
        assert_problem(response, StatusCode::BAD_REQUEST).await;
    }
}

#[tokio::test]
async fn list_users_returns_400_for_a_malformed_after() {
    let app = TestServer::spawn().await;
    let (me, token) = app.user_with_token("alice").await;

    for after in ["nope", "123", &format!("{me}x"), &me[..35]] {
        let response = app.get(&format!("/users?after={after}"), &token).await;
        assert_problem(response, StatusCode::BAD_REQUEST).await;
    }
}

#[tokio::test]
async fn list_users_returns_400_for_an_after_that_names_no_user() {
    let app = TestServer::spawn().await;
    let (_, token) = app.user_with_token("alice").await;
    let chat = app.create_chat(&token, "not a user", &[]).await;

    // Interpretation: `after` is "the last id of the previous page"; an id that names no
    // user cannot be one, and silently answering from the start would repeat users.
    for after in [unknown_id(), str_of(&chat, "id")] {
        let response = app.get(&format!("/users?after={after}"), &token).await;
        assert_problem(response, StatusCode::BAD_REQUEST).await;
    }
}

#[tokio::test]
async fn a_trailing_slash_does_not_change_any_route() {
    let app = TestServer::spawn().await;
    let alice = app.register("alice", PASSWORD).await;
    let bob = app.register("bob", PASSWORD).await;
    let (alice_id, bob_id) = (id_of(&alice), id_of(&bob));

    // Unauthenticated routes, and the token they give.
    let body = json!({"username": "carol", "password": PASSWORD});
    let carol = assert_json(
        app.post("/auth/register/", None, &body).await,
        StatusCode::CREATED,
    )
    .await;
    assert_eq!(carol["username"], "carol");
    let login = json!({"username": "alice", "password": PASSWORD});
    let answer = assert_json(app.post("/auth/login/", None, &login).await, StatusCode::OK).await;
    let token = str_of(&answer, "access_token");
    for path in ["/healthz/", "/readyz/"] {
        assert_json(app.get_anonymous(path).await, StatusCode::OK).await;
    }

    // `GET /users/` is `GET /users`, query string included.
    assert_eq!(
        ids(&list(&app, &token, "/users/").await),
        ids(&list(&app, &token, "/users").await)
    );
    assert_eq!(list(&app, &token, "/users/?limit=1").await.len(), 1);

    // Every chat route.
    let chat = assert_json(
        app.post("/chats/", Some(&token), &json!({"name": "team"}))
            .await,
        StatusCode::CREATED,
    )
    .await;
    let chat = id_of(&chat);
    let chats = assert_json(app.get("/chats/", &token).await, StatusCode::OK).await;
    assert_eq!(chats[0]["id"], chat.as_str());
    let members = format!("/chats/{chat}/members/");
    let added = json!({"members": [bob_id]});
    assert_json(
        app.post(&members, Some(&token), &added).await,
        StatusCode::CREATED,
    )
    .await;
    let listed = assert_json(app.get(&members, &token).await, StatusCode::OK).await;
    assert_eq!(listed[1]["userId"], bob_id.as_str());
    let history = format!("/chats/{chat}/messages/");
    assert_eq!(
        assert_json(app.get(&history, &token).await, StatusCode::OK).await,
        json!([])
    );
    assert_no_content(app.delete_with(&members, &token, &added).await).await;
    let bob_token = app.login("bob", PASSWORD).await;
    assert_json(
        app.post(&members, Some(&token), &added).await,
        StatusCode::CREATED,
    )
    .await;
    assert_no_content(
        app.delete(&format!("/chats/{chat}/members/me/"), &bob_token)
            .await,
    )
    .await;
    assert_no_content(app.delete(&format!("/chats/{chat}/"), &token).await).await;
    assert_problem(app.get(&members, &token).await, StatusCode::NOT_FOUND).await;
    assert_eq!(alice_id, answer_user(&app, &token).await);

    // An unknown route stays unknown, with or without the slash.
    for path in ["/nope/", "/users/x/"] {
        assert_problem(app.get(path, &token).await, StatusCode::NOT_FOUND).await;
    }
}

/// The id of the user `token` belongs to, found by creating a chat it owns.
async fn answer_user(app: &TestServer, token: &str) -> String {
    let chat = app.create_chat(token, "whoami", &[]).await;
    str_of(&chat, "ownerId")
}
