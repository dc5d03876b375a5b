//! `POST /chats`, `GET /chats` and `DELETE /chats/{chatId}`: creating a chat with its
//! members (all or nothing), listing the caller's chats newest first, deleting one.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{
    TestServer, assert_json, assert_no_content, assert_problem, id_of, unknown_id,
};

/// `POST /chats` with `body` as `token`, expecting a 400 problem, which it returns.
async fn assert_create_rejected(app: &TestServer, token: &str, body: &Value) -> Value {
    let response = app.post("/chats", Some(token), body).await;
    assert_problem(response, StatusCode::BAD_REQUEST).await
}

#[tokio::test]
async fn create_chat_returns_201_with_the_trimmed_name_and_the_caller_as_owner() {
    let app = TestServer::spawn().await;
    let (alice, token) = app.user_with_token("alice").await;

    // `create_chat` checks the exact shape {id, name, ownerId, createdAt}.
    let chat = app.create_chat(&token, "  Weekend plans \t", &[]).await;

    assert_eq!(chat["name"], "Weekend plans");
    assert_eq!(chat["ownerId"], json!(alice));
}

#[tokio::test]
async fn create_chat_makes_the_caller_the_first_member_then_the_members_in_the_order_given() {
    let app = TestServer::spawn().await;
    let (alice, token) = app.user_with_token("alice").await;
    let (bob, _) = app.user_with_token("bob").await;
    let (carol, _) = app.user_with_token("Carol").await;

    let chat = id_of(&app.create_chat(&token, "team", &[&carol, &bob]).await);

    // Interpretation: members added by one request join in the order they are listed.
    let members = app.members(&token, &chat).await;
    let listed: Vec<(&str, &str)> = members
        .iter()
        .map(|m| {
            (
                m["userId"].as_str().unwrap(),
                m["username"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        listed,
        [
            (alice.as_str(), "alice"),
            (carol.as_str(), "Carol"),
            (bob.as_str(), "bob")
        ]
    );
}

#[tokio::test]
async fn create_chat_without_members_has_the_owner_alone() {
    let app = TestServer::spawn().await;
    let (alice, token) = app.user_with_token("alice").await;

    let response = app
        .post("/chats", Some(&token), &json!({"name": "notes"}))
        .await;
    let chat = id_of(&assert_json(response, StatusCode::CREATED).await);

    assert_eq!(app.member_ids(&token, &chat).await, [alice]);
}

#[tokio::test]
async fn create_chat_tolerates_duplicate_members_and_the_caller_among_them() {
    let app = TestServer::spawn().await;
    let (alice, token) = app.user_with_token("alice").await;
    let (bob, _) = app.user_with_token("bob").await;

    // Interpretation: duplicates are tolerated, and the caller, already the first member,
    // is one.
    let chat = id_of(&app.create_chat(&token, "team", &[&bob, &alice, &bob]).await);

    assert_eq!(app.member_ids(&token, &chat).await, [alice, bob]);
}

#[tokio::test]
async fn create_chat_accepts_a_name_of_100_characters_after_trimming() {
    let app = TestServer::spawn().await;
    let (_, token) = app.user_with_token("alice").await;
    let name = "é".repeat(100);

    let chat = app.create_chat(&token, &format!("   {name}   "), &[]).await;
    assert_eq!(chat["name"], json!(name));
    let chat = app.create_chat(&token, "x", &[]).await;
    assert_eq!(chat["name"], "x");
}

#[tokio::test]
async fn create_chat_returns_400_for_a_blank_or_too_long_name() {
    let app = TestServer::spawn().await;
    let (_, token) = app.user_with_token("alice").await;

    for name in [
        String::new(),
        "   ".to_owned(),
        "\t\n ".to_owned(),
        "a".repeat(101),
        "é".repeat(101),
        format!(" {} ", "a".repeat(101)),
    ] {
        assert_create_rejected(&app, &token, &json!({"name": name})).await;
    }
    assert!(app.chats(&token).await.is_empty());
}

#[tokio::test]
async fn create_chat_returns_400_for_a_missing_or_mistyped_name_or_an_unknown_field() {
    let app = TestServer::spawn().await;
    let (bob, token) = app.user_with_token("bob").await;

    for body in [
        json!({}),
        json!({"members": [bob]}),
        json!({"name": null}),
        json!({"name": 42}),
        json!({"name": ["team"]}),
        json!({"name": "team", "topic": "unknown field"}),
        json!({"name": "team", "ownerId": bob}),
        json!(["team"]),
    ] {
        assert_create_rejected(&app, &token, &body).await;
    }
    for body in ["{", "", r#"{"name": "team",}"#] {
        let response = app
            .send_raw(Method::POST, "/chats", Some(&token), body)
            .await;
        assert_problem(response, StatusCode::BAD_REQUEST).await;
    }
    assert!(app.chats(&token).await.is_empty());
}

#[tokio::test]
async fn create_chat_returns_400_for_members_that_are_not_an_array_of_ids() {
    let app = TestServer::spawn().await;
    let (_, token) = app.user_with_token("alice").await;
    let (bob, _) = app.user_with_token("bob").await;

    for members in [
        json!(bob),
        json!({"id": bob}),
        json!(5),
        json!("not-a-uuid"),
        json!([bob, 5]),
        json!([bob, null]),
        json!([bob, "not-a-uuid"]),
        json!([[bob]]),
    ] {
        assert_create_rejected(&app, &token, &json!({"name": "team", "members": members})).await;
    }
    assert!(app.chats(&token).await.is_empty());
}

#[tokio::test]
async fn create_chat_accepts_1000_members_and_returns_400_for_1001() {
    let app = TestServer::spawn().await;
    let (alice, token) = app.user_with_token("alice").await;
    let users = app.insert_users(1001).await;

    // 1001 distinct existing users: only the count is wrong.
    assert_create_rejected(&app, &token, &json!({"name": "crowd", "members": users})).await;
    assert!(app.chats(&token).await.is_empty());

    let chat = id_of(
        &app.create_chat(&token, "crowd", &users_ref(&users[..1000]))
            .await,
    );
    let members = app.member_ids(&token, &chat).await;
    assert_eq!(members.len(), 1001);
    assert_eq!(members[0], alice);
    assert_eq!(members[1..], users[..1000]);
}

#[tokio::test]
async fn create_chat_returns_400_naming_unknown_members_and_creates_nothing() {
    let app = TestServer::spawn().await;
    let (_, alice) = app.user_with_token("alice").await;
    let (bob, bob_token) = app.user_with_token("bob").await;
    let (carol, _) = app.user_with_token("carol").await;
    let (ghost, ghost2) = (unknown_id(), unknown_id());

    let problem = assert_create_rejected(
        &app,
        &alice,
        &json!({"name": "team", "members": [bob, ghost, carol, ghost2]}),
    )
    .await;

    // Every unknown id is named, by the id itself; known ones are not.
    assert_eq!(
        crate::members::unknown_ids_named(&problem),
        [ghost.clone(), ghost2.clone()]
    );
    // All or nothing: no chat for the caller nor for the known members.
    assert!(app.chats(&alice).await.is_empty());
    assert!(app.chats(&bob_token).await.is_empty());
}

#[tokio::test]
async fn create_chat_returns_413_for_a_body_over_64_kib() {
    let app = TestServer::spawn().await;
    let (_, token) = app.user_with_token("alice").await;
    let members: Vec<String> = (0..2000).map(|_| unknown_id()).collect();
    let body = json!({"name": "huge", "members": members}).to_string();
    assert!(body.len() > 64 * 1024);

    let response = app
        .send_raw(Method::POST, "/chats", Some(&token), body)
        .await;

    assert_problem(response, StatusCode::PAYLOAD_TOO_LARGE).await;
    assert!(app.chats(&token).await.is_empty());
}

#[tokio::test]
async fn list_chats_returns_the_callers_chats_newest_first() {
    let app = TestServer::spawn().await;
    let (alice, alice_token) = app.user_with_token("alice").await;
    let (bob, bob_token) = app.user_with_token("bob").await;
    let (_, carol_token) = app.user_with_token("carol").await;

    let first = app.create_chat(&alice_token, "first", &[]).await;
    let with_bob = app.create_chat(&alice_token, "with bob", &[&bob]).await;
    let bobs = app.create_chat(&bob_token, "bob's", &[&alice]).await;
    let not_alices = app.create_chat(&carol_token, "carol's", &[&bob]).await;
    let last = app.create_chat(&alice_token, "last", &[]).await;

    assert_eq!(
        app.chats(&alice_token).await,
        [last, bobs.clone(), with_bob.clone(), first]
    );
    assert_eq!(
        app.chats(&bob_token).await,
        [not_alices.clone(), bobs, with_bob]
    );
    assert_eq!(app.chats(&carol_token).await, [not_alices]);
}

#[tokio::test]
async fn list_chats_is_empty_for_a_user_in_no_chat() {
    let app = TestServer::spawn().await;
    let (_, alice) = app.user_with_token("alice").await;
    let (_, bob) = app.user_with_token("bob").await;
    app.create_chat(&alice, "alice's", &[]).await;

    let body = assert_json(app.get("/chats", &bob).await, StatusCode::OK).await;

    assert_eq!(body, json!([]));
}

#[tokio::test]
async fn delete_chat_returns_204_and_the_chat_is_gone_for_everyone() {
    let app = TestServer::spawn().await;
    let (_, alice) = app.user_with_token("alice").await;
    let (bob, bob_token) = app.user_with_token("bob").await;
    let chat = id_of(&app.create_chat(&alice, "team", &[&bob]).await);
    let kept = id_of(&app.create_chat(&alice, "kept", &[&bob]).await);

    assert_no_content(app.delete(&format!("/chats/{chat}"), &alice).await).await;

    assert_eq!(app.chat_ids(&alice).await, std::slice::from_ref(&kept));
    assert_eq!(app.chat_ids(&bob_token).await, [kept]);
    for token in [&alice, &bob_token] {
        for path in [
            format!("/chats/{chat}/members"),
            format!("/chats/{chat}/messages"),
        ] {
            assert_problem(app.get(&path, token).await, StatusCode::NOT_FOUND).await;
        }
    }
    // Deleting it again: there is no such chat any more.
    let response = app.delete(&format!("/chats/{chat}"), &alice).await;
    assert_problem(response, StatusCode::NOT_FOUND).await;
}

#[tokio::test]
async fn delete_chat_deletes_its_members_and_its_messages() {
    let app = TestServer::spawn().await;
    let (alice, token) = app.user_with_token("alice").await;
    let (bob, _) = app.user_with_token("bob").await;
    let chat = id_of(&app.create_chat(&token, "team", &[&bob]).await);
    // Messages are only sent over sockets; store one directly, as a send would. (The old
    // API failed with a 500 when deleting a chat that had messages.)
    app.insert_message(&chat, &alice).await;

    assert_no_content(app.delete(&format!("/chats/{chat}"), &token).await).await;

    for table in ["messages", "chat_members"] {
        assert_eq!(
            app.rows_of_chat(table, &chat).await,
            0,
            "rows left in {table}"
        );
    }
}

#[tokio::test]
async fn delete_chat_returns_403_for_anyone_but_the_owner() {
    let app = TestServer::spawn().await;
    let (_, alice) = app.user_with_token("alice").await;
    let (bob, bob_token) = app.user_with_token("bob").await;
    let (_, carol_token) = app.user_with_token("carol").await;
    let chat = id_of(&app.create_chat(&alice, "team", &[&bob]).await);

    for token in [&bob_token, &carol_token] {
        let response = app.delete(&format!("/chats/{chat}"), token).await;
        assert_problem(response, StatusCode::FORBIDDEN).await;
    }
    assert_eq!(app.member_ids(&alice, &chat).await.len(), 2);
}

#[tokio::test]
async fn delete_chat_returns_404_for_an_unknown_chat_and_400_for_a_malformed_id() {
    let app = TestServer::spawn().await;
    let (_, token) = app.user_with_token("alice").await;
    let chat = id_of(&app.create_chat(&token, "team", &[]).await);

    let response = app
        .delete(&format!("/chats/{}", unknown_id()), &token)
        .await;
    assert_problem(response, StatusCode::NOT_FOUND).await;
    for id in ["not-a-uuid", "123", &chat[..35]] {
        let response = app.delete(&format!("/chats/{id}"), &token).await;
        assert_problem(response, StatusCode::BAD_REQUEST).await;
    }
    assert_eq!(app.chat_ids(&token).await, [chat]);
}

/// `&str` views of owned ids, for `create_chat`.
fn users_ref(ids: &[String]) -> Vec<&str> {
    ids.iter().map(String::as_str).collect()
}
