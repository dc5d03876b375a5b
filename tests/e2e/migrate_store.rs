//! `server migrate-store`: everything moves from the store under test to the other kind
//! of store and back, keeping ids, order, times and passwords, and a second move
//! changes nothing.

use reqwest::StatusCode;
use serde_json::Value;

use crate::helpers::{PASSWORD, TestServer, as_array, assert_json};
use crate::scratch::Scratch;

/// What a client sees of a store: users, Alice's chats, their members and histories.
async fn everything(app: &TestServer) -> Value {
    let token = app.login("alice", PASSWORD).await;
    let get = |path: String| {
        let token = token.clone();
        async move { assert_json(app.get(&path, &token).await, StatusCode::OK).await }
    };
    let users = get("/users?limit=1000".to_owned()).await;
    let chats = get("/chats".to_owned()).await;
    let mut per_chat = Vec::new();
    for chat in as_array(&chats) {
        let id = chat["id"].as_str().unwrap_or_default().to_owned();
        per_chat.push(serde_json::json!({
            "members": get(format!("/chats/{id}/members")).await,
            "history": get(format!("/chats/{id}/messages?limit=100")).await,
        }));
    }
    serde_json::json!({"users": users, "chats": chats, "perChat": per_chat})
}

/// `server migrate-store --from <from> --to <to>`: its stdout, after checking it ran.
async fn migrate(app: &TestServer, from: &str, to: &str) -> String {
    let output = app
        .run_binary(&["migrate-store", "--from", from, "--to", to])
        .await;
    let (out, err) = (
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    );
    assert!(
        output.status.success(),
        "migrate-store {from} → {to} failed: {err}\n{out}"
    );
    out
}

#[tokio::test]
async fn a_store_moves_to_the_other_kind_and_back_with_nothing_lost_or_doubled() {
    let app = TestServer::spawn().await;
    let (alice, alice_token) = app.user_with_token("alice").await;
    let (bob, _) = app.user_with_token("bob").await;
    let (carol, _) = app.user_with_token("carol").await;
    let team = app.create_chat(&alice_token, "team", &[&bob, &carol]).await;
    let team = team["id"].as_str().unwrap_or_default().to_owned();
    app.create_chat(&alice_token, "just me", &[]).await;
    for sender in [&alice, &bob, &carol, &bob, &alice] {
        app.insert_message(&team, sender).await;
    }
    // Carol leaves; her message stays in history.
    crate::helpers::assert_no_content(
        app.delete(
            &format!("/chats/{team}/members/me"),
            &app.login("carol", PASSWORD).await,
        )
        .await,
    )
    .await;
    let before = everything(&app).await;
    let origin = app.database_url();

    let other = Scratch::other_than(&origin).await;
    let out = migrate(&app, &origin, &other.url()).await;
    assert!(
        out.contains("messages: 5 read, 5 stored, 0 already there"),
        "{out}"
    );
    assert!(out.contains("users: 3 read, 3 stored"), "{out}");
    assert!(out.contains("0 problem(s)"), "{out}");
    let again = migrate(&app, &origin, &other.url()).await;
    for kind in [
        "users: 3 read, 0 stored, 3",
        "chats: 2 read, 0 stored, 2",
        "members: 3 read, 0 stored, 3",
        "messages: 5 read, 0 stored, 5",
    ] {
        assert!(again.contains(kind), "{again}");
    }
    let moved = TestServer::spawn_with(&[("DATABASE_URL", &other.url())]).await;
    assert_eq!(everything(&moved).await, before);
    drop(moved);

    let back = Scratch::same_as(&origin).await;
    let out = migrate(&app, &other.url(), &back.url()).await;
    assert!(out.contains("messages: 5 read, 5 stored"), "{out}");
    let returned = TestServer::spawn_with(&[("DATABASE_URL", &back.url())]).await;
    assert_eq!(everything(&returned).await, before);
}

#[tokio::test]
async fn moving_from_a_sqlite_file_that_does_not_exist_is_refused() {
    let app = TestServer::spawn().await;
    let missing = Scratch::sqlite().await;

    let output = app
        .run_binary(&[
            "migrate-store",
            "--from",
            &missing.url(),
            "--to",
            &app.database_url(),
        ])
        .await;

    assert!(!output.status.success());
    let err = String::from_utf8_lossy(&output.stderr);
    assert!(err.contains("does not exist"), "{err}");
}
