//! `GET /chats/{chatId}/messages`: member-only history with bounded `limit` and a keyset
//! `before`. Messages are created over sockets (a later issue), so the REST side is
//! checked on chats without messages.

use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{TestServer, assert_json, assert_problem, id_of, unknown_id};

/// A server where Alice owns a chat with Bob and Carol is in no chat:
/// `(app, chat, alice token, bob token, carol token)`.
async fn chat_with_members() -> (TestServer, String, String, String, String) {
    let app = TestServer::spawn().await;
    let (_, alice) = app.user_with_token("alice").await;
    let (bob_id, bob) = app.user_with_token("bob").await;
    let (_, carol) = app.user_with_token("carol").await;
    let chat = id_of(&app.create_chat(&alice, "team", &[&bob_id]).await);
    (app, chat, alice, bob, carol)
}

#[tokio::test]
async fn list_messages_of_a_new_chat_is_an_empty_array_for_every_member() {
    let (app, chat, alice, bob, _) = chat_with_members().await;

    for token in [&alice, &bob] {
        for query in ["", "?limit=1", "?limit=100", "?limit=50"] {
            let path = format!("/chats/{chat}/messages{query}");
            let body = assert_json(app.get(&path, token).await, StatusCode::OK).await;
            assert_eq!(body, json!([]), "{path}");
        }
    }
}

#[tokio::test]
async fn list_messages_returns_403_for_a_non_member() {
    let (app, chat, _, _, carol) = chat_with_members().await;

    let response = app.get(&format!("/chats/{chat}/messages"), &carol).await;

    assert_problem(response, StatusCode::FORBIDDEN).await;
}

#[tokio::test]
async fn list_messages_returns_404_for_an_unknown_chat() {
    let (app, _, alice, _, _) = chat_with_members().await;

    let response = app
        .get(&format!("/chats/{}/messages", unknown_id()), &alice)
        .await;

    assert_problem(response, StatusCode::NOT_FOUND).await;
}

#[tokio::test]
async fn list_messages_returns_400_for_a_malformed_chat_id() {
    let (app, chat, alice, _, _) = chat_with_members().await;

    for id in ["not-a-uuid", "123", &chat[..35]] {
        let response = app.get(&format!("/chats/{id}/messages"), &alice).await;
        assert_problem(response, StatusCode::BAD_REQUEST).await;
    }
}

#[tokio::test]
async fn list_messages_returns_400_for_a_limit_out_of_range() {
    let (app, chat, alice, _, _) = chat_with_members().await;

    for limit in ["0", "101", "5000", "-1", "abc", "2.5"] {
        let path = format!("/chats/{chat}/messages?limit={limit}");
        assert_problem(app.get(&path, &alice).await, StatusCode::BAD_REQUEST).await;
    }
}

#[tokio::test]
async fn list_messages_returns_400_for_a_malformed_before() {
    let (app, chat, alice, _, _) = chat_with_members().await;

    for before in ["nope", "123", &chat[..35], &format!("{chat}0")] {
        let path = format!("/chats/{chat}/messages?before={before}");
        assert_problem(app.get(&path, &alice).await, StatusCode::BAD_REQUEST).await;
    }
}

#[tokio::test]
async fn list_messages_returns_400_for_a_before_that_names_no_message_of_the_chat() {
    let (app, chat, alice, _, _) = chat_with_members().await;

    // Interpretation: `before` is a message id of this chat; one that names no message
    // (here: a random id, and the chat's own id) cannot place a page, so it is a 400
    // rather than an empty or a first page.
    for before in [unknown_id(), chat.clone()] {
        let path = format!("/chats/{chat}/messages?before={before}");
        assert_problem(app.get(&path, &alice).await, StatusCode::BAD_REQUEST).await;
    }
}
