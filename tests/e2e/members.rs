//! A chat's membership: `GET`, `POST` and `DELETE /chats/{chatId}/members`, and
//! `DELETE /chats/{chatId}/members/me`, including the contract's order of checks
//! (401 → 400 path → 404 → 403 → 400 body).

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{
    TestServer, assert_json, assert_no_content, assert_problem, id_of, unknown_id,
};

/// Alice owns a chat with Bob; Carol is in no chat. Dave is a fourth user, also in no
/// chat. Tokens and ids of each.
struct Cast {
    app: TestServer,
    chat: String,
    alice: (String, String),
    bob: (String, String),
    carol: (String, String),
    dave: (String, String),
}

async fn cast() -> Cast {
    let app = TestServer::spawn().await;
    let alice = app.user_with_token("alice").await;
    let bob = app.user_with_token("bob").await;
    let carol = app.user_with_token("carol").await;
    let dave = app.user_with_token("dave").await;
    let chat = id_of(&app.create_chat(&alice.1, "team", &[&bob.0]).await);
    Cast {
        app,
        chat,
        alice,
        bob,
        carol,
        dave,
    }
}

/// Bodies that fail validation of a `{members}` request (sent as JSON values); `known`
/// is an existing user's id.
fn invalid_member_bodies(known: &str) -> Vec<Value> {
    vec![
        json!({}),
        json!({"members": null}),
        json!({"members": []}),
        json!({"members": known}),
        json!({"members": ["not-a-uuid"]}),
        json!({"members": [known, 7]}),
        json!({"members": [known], "extra": true}),
        // Interpretation: the rule bounds the array as sent, duplicates included.
        json!({"members": vec![known; 1001]}),
        // An array is not an object, even one whose first element would fit `members`.
        json!([[known]]),
    ]
}

/// Bodies that are not JSON at all.
const MALFORMED_BODIES: [&str; 3] = ["{", "", r#"{"members": ["#];

impl Cast {
    fn members_path(&self) -> String {
        format!("/chats/{}/members", self.chat)
    }

    async fn add(&self, token: &str, members: &[&str]) -> reqwest::Response {
        self.app
            .post(
                &self.members_path(),
                Some(token),
                &json!({"members": members}),
            )
            .await
    }

    async fn remove(&self, token: &str, members: &[&str]) -> reqwest::Response {
        self.app
            .delete_with(&self.members_path(), token, &json!({"members": members}))
            .await
    }

    /// Asserts the member ids, in order, as the owner sees them.
    async fn assert_members(&self, expected: &[&String]) {
        let got = self.app.member_ids(&self.alice.1, &self.chat).await;
        let expected: Vec<String> = expected.iter().map(|id| (*id).clone()).collect();
        assert_eq!(got, expected, "members of the chat");
    }

    /// Sends each invalid and malformed `{members}` body with `method` to `path` as
    /// `token`, expecting `status` every time.
    async fn assert_every_bad_body_gets(
        &self,
        method: Method,
        path: &str,
        token: &str,
        status: StatusCode,
    ) {
        for body in invalid_member_bodies(&self.dave.0) {
            let response = self
                .app
                .request(method.clone(), path, Some(token))
                .json(&body)
                .send()
                .await
                .expect("sending the request");
            assert_problem(response, status).await;
        }
        for body in MALFORMED_BODIES {
            let response = self
                .app
                .send_raw(method.clone(), path, Some(token), body)
                .await;
            assert_problem(response, status).await;
        }
    }
}

#[tokio::test]
async fn list_members_returns_members_in_order_of_joining() {
    let c = cast().await;
    let (alice, bob, carol, dave) = (&c.alice.0, &c.bob.0, &c.carol.0, &c.dave.0);
    assert_json(c.add(&c.alice.1, &[dave, carol]).await, StatusCode::CREATED).await;

    // `members` checks the exact shape {userId, username, joinedAt} of each.
    let members = c.app.members(&c.bob.1, &c.chat).await;

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
            (bob.as_str(), "bob"),
            (dave.as_str(), "dave"),
            (carol.as_str(), "carol"),
        ]
    );
    let joined: Vec<&str> = members
        .iter()
        .map(|m| m["joinedAt"].as_str().unwrap())
        .collect();
    assert!(joined.is_sorted(), "joinedAt out of order: {joined:?}");
}

#[tokio::test]
async fn list_members_returns_403_for_a_non_member() {
    let c = cast().await;

    let response = c.app.get(&c.members_path(), &c.carol.1).await;

    assert_problem(response, StatusCode::FORBIDDEN).await;
}

#[tokio::test]
async fn list_members_returns_404_for_an_unknown_chat() {
    let c = cast().await;

    let response = c
        .app
        .get(&format!("/chats/{}/members", unknown_id()), &c.alice.1)
        .await;

    assert_problem(response, StatusCode::NOT_FOUND).await;
}

#[tokio::test]
async fn list_members_returns_400_for_a_malformed_chat_id() {
    let c = cast().await;

    for id in ["not-a-uuid", "123", &c.chat[..35], &format!("{}0", c.chat)] {
        let response = c.app.get(&format!("/chats/{id}/members"), &c.alice.1).await;
        assert_problem(response, StatusCode::BAD_REQUEST).await;
    }
}

#[tokio::test]
async fn add_members_returns_201_counting_only_the_newly_added() {
    let c = cast().await;
    let (alice, bob, carol, dave) = (&c.alice.0, &c.bob.0, &c.carol.0, &c.dave.0);

    // Bob and Alice are members already, Carol is listed twice: one new member, Carol…
    let response = c.add(&c.alice.1, &[bob, carol, carol, alice]).await;
    assert_eq!(
        assert_json(response, StatusCode::CREATED).await,
        json!({"count": 1})
    );
    // …then nobody new at all…
    let response = c.add(&c.alice.1, &[carol, bob]).await;
    assert_eq!(
        assert_json(response, StatusCode::CREATED).await,
        json!({"count": 0})
    );
    // …then Dave.
    let response = c.add(&c.alice.1, &[dave]).await;
    assert_eq!(
        assert_json(response, StatusCode::CREATED).await,
        json!({"count": 1})
    );

    c.assert_members(&[alice, bob, carol, dave]).await;
    // The new members see the chat and its members.
    assert_eq!(
        c.app.chat_ids(&c.carol.1).await,
        std::slice::from_ref(&c.chat)
    );
    assert_eq!(c.app.member_ids(&c.dave.1, &c.chat).await.len(), 4);
}

#[tokio::test]
async fn add_members_returns_400_for_an_invalid_body() {
    let c = cast().await;

    c.assert_every_bad_body_gets(
        Method::POST,
        &c.members_path(),
        &c.alice.1,
        StatusCode::BAD_REQUEST,
    )
    .await;
    c.assert_members(&[&c.alice.0, &c.bob.0]).await;
}

#[tokio::test]
async fn add_members_accepts_1000_ids_and_returns_400_for_1001() {
    let c = cast().await;
    let users = c.app.insert_users(1001).await;

    // 1001 distinct existing users: only the count is wrong.
    let response = c
        .app
        .post(
            &c.members_path(),
            Some(&c.alice.1),
            &json!({"members": users}),
        )
        .await;
    assert_problem(response, StatusCode::BAD_REQUEST).await;
    c.assert_members(&[&c.alice.0, &c.bob.0]).await;

    // 1000 ids, one of them (Bob) already a member.
    let mut thousand = users[..999].to_vec();
    thousand.push(c.bob.0.clone());
    let response = c
        .app
        .post(
            &c.members_path(),
            Some(&c.alice.1),
            &json!({"members": thousand}),
        )
        .await;
    assert_eq!(
        assert_json(response, StatusCode::CREATED).await,
        json!({"count": 999})
    );
    assert_eq!(c.app.member_ids(&c.alice.1, &c.chat).await.len(), 1001);
}

#[tokio::test]
async fn add_members_returns_400_naming_unknown_users_and_adds_nothing() {
    let c = cast().await;
    let ghost = unknown_id();

    let response = c.add(&c.alice.1, &[&c.carol.0, &ghost, &c.dave.0]).await;

    let problem = assert_problem(response, StatusCode::BAD_REQUEST).await;
    assert_eq!(unknown_ids_named(&problem), [ghost.as_str()]);
    c.assert_members(&[&c.alice.0, &c.bob.0]).await;
}

#[tokio::test]
async fn add_members_returns_403_for_a_member_who_is_not_the_owner_and_for_a_non_member() {
    let c = cast().await;

    for token in [&c.bob.1, &c.carol.1] {
        let response = c.add(token, &[&c.dave.0]).await;
        assert_problem(response, StatusCode::FORBIDDEN).await;
    }
    c.assert_members(&[&c.alice.0, &c.bob.0]).await;
}

#[tokio::test]
async fn add_members_returns_404_for_an_unknown_chat_and_400_for_a_malformed_id() {
    let c = cast().await;
    let body = json!({"members": [c.dave.0]});

    let path = format!("/chats/{}/members", unknown_id());
    let response = c.app.post(&path, Some(&c.alice.1), &body).await;
    assert_problem(response, StatusCode::NOT_FOUND).await;

    let response = c
        .app
        .post("/chats/not-a-uuid/members", Some(&c.alice.1), &body)
        .await;
    assert_problem(response, StatusCode::BAD_REQUEST).await;
}

#[tokio::test]
async fn add_members_checks_the_callers_role_before_the_body() {
    let c = cast().await;

    // Bob is a member but not the owner, Carol is not even a member: 403 whatever the
    // body, malformed JSON included (the body is validated last).
    for token in [&c.bob.1, &c.carol.1] {
        c.assert_every_bad_body_gets(
            Method::POST,
            &c.members_path(),
            token,
            StatusCode::FORBIDDEN,
        )
        .await;
    }
}

#[tokio::test]
async fn add_members_checks_the_chat_before_the_body() {
    let c = cast().await;
    let unknown = format!("/chats/{}/members", unknown_id());

    c.assert_every_bad_body_gets(Method::POST, &unknown, &c.alice.1, StatusCode::NOT_FOUND)
        .await;
    // And the path before the body.
    c.assert_every_bad_body_gets(
        Method::POST,
        "/chats/not-a-uuid/members",
        &c.alice.1,
        StatusCode::BAD_REQUEST,
    )
    .await;
}

#[tokio::test]
async fn remove_members_returns_204_and_the_removed_lose_access_at_once() {
    let c = cast().await;
    assert_json(c.add(&c.alice.1, &[&c.carol.0]).await, StatusCode::CREATED).await;

    assert_no_content(c.remove(&c.alice.1, &[&c.bob.0]).await).await;

    c.assert_members(&[&c.alice.0, &c.carol.0]).await;
    assert!(c.app.chat_ids(&c.bob.1).await.is_empty());
    let response = c.app.get(&c.members_path(), &c.bob.1).await;
    assert_problem(response, StatusCode::FORBIDDEN).await;
    let response = c
        .app
        .get(&format!("/chats/{}/messages", c.chat), &c.bob.1)
        .await;
    assert_problem(response, StatusCode::FORBIDDEN).await;
}

#[tokio::test]
async fn remove_members_tolerates_duplicates_and_users_not_in_the_chat() {
    let c = cast().await;
    assert_json(c.add(&c.alice.1, &[&c.carol.0]).await, StatusCode::CREATED).await;

    // Carol twice, Dave who is no member.
    assert_no_content(
        c.remove(&c.alice.1, &[&c.carol.0, &c.dave.0, &c.carol.0])
            .await,
    )
    .await;
    c.assert_members(&[&c.alice.0, &c.bob.0]).await;

    // Nobody in the list is a member: nothing to do, still a success.
    assert_no_content(c.remove(&c.alice.1, &[&c.dave.0]).await).await;
    c.assert_members(&[&c.alice.0, &c.bob.0]).await;
}

#[tokio::test]
async fn remove_members_including_the_owner_deletes_the_chat() {
    let c = cast().await;

    assert_no_content(c.remove(&c.alice.1, &[&c.alice.0]).await).await;

    for token in [&c.alice.1, &c.bob.1] {
        let response = c.app.get(&c.members_path(), token).await;
        assert_problem(response, StatusCode::NOT_FOUND).await;
        assert!(c.app.chat_ids(token).await.is_empty());
    }
}

#[tokio::test]
async fn remove_members_returns_400_naming_unknown_users_and_removes_nothing() {
    let c = cast().await;
    let ghost = unknown_id();

    let response = c.remove(&c.alice.1, &[&c.bob.0, &ghost]).await;

    let problem = assert_problem(response, StatusCode::BAD_REQUEST).await;
    assert_eq!(unknown_ids_named(&problem), [ghost.as_str()]);
    c.assert_members(&[&c.alice.0, &c.bob.0]).await;
    // Not even the owner's id deletes the chat when another id is unknown.
    let response = c.remove(&c.alice.1, &[&ghost, &c.alice.0]).await;
    let problem = assert_problem(response, StatusCode::BAD_REQUEST).await;
    assert_eq!(unknown_ids_named(&problem), [ghost.as_str()]);
    c.assert_members(&[&c.alice.0, &c.bob.0]).await;
}

#[tokio::test]
async fn remove_members_returns_400_for_an_invalid_body() {
    let c = cast().await;

    c.assert_every_bad_body_gets(
        Method::DELETE,
        &c.members_path(),
        &c.alice.1,
        StatusCode::BAD_REQUEST,
    )
    .await;
    c.assert_members(&[&c.alice.0, &c.bob.0]).await;
}

#[tokio::test]
async fn remove_members_returns_403_for_anyone_but_the_owner_whatever_the_body() {
    let c = cast().await;

    for token in [&c.bob.1, &c.carol.1] {
        let response = c.remove(token, &[&c.bob.0]).await;
        assert_problem(response, StatusCode::FORBIDDEN).await;
        c.assert_every_bad_body_gets(
            Method::DELETE,
            &c.members_path(),
            token,
            StatusCode::FORBIDDEN,
        )
        .await;
    }
    c.assert_members(&[&c.alice.0, &c.bob.0]).await;
}

#[tokio::test]
async fn remove_members_returns_404_for_an_unknown_chat_and_400_for_a_malformed_id() {
    let c = cast().await;
    let unknown = format!("/chats/{}/members", unknown_id());

    let body = json!({"members": [c.bob.0]});
    let response = c.app.delete_with(&unknown, &c.alice.1, &body).await;
    assert_problem(response, StatusCode::NOT_FOUND).await;
    c.assert_every_bad_body_gets(Method::DELETE, &unknown, &c.alice.1, StatusCode::NOT_FOUND)
        .await;

    let response = c
        .app
        .delete_with("/chats/not-a-uuid/members", &c.alice.1, &body)
        .await;
    assert_problem(response, StatusCode::BAD_REQUEST).await;
}

#[tokio::test]
async fn leave_chat_returns_204_and_the_member_loses_access() {
    let c = cast().await;
    let leave = format!("/chats/{}/members/me", c.chat);

    assert_no_content(c.app.delete(&leave, &c.bob.1).await).await;

    c.assert_members(&[&c.alice.0]).await;
    assert!(c.app.chat_ids(&c.bob.1).await.is_empty());
    let response = c.app.get(&c.members_path(), &c.bob.1).await;
    assert_problem(response, StatusCode::FORBIDDEN).await;
    // Leaving twice: Bob is no longer a member.
    let response = c.app.delete(&leave, &c.bob.1).await;
    assert_problem(response, StatusCode::FORBIDDEN).await;
}

#[tokio::test]
async fn leave_chat_by_the_owner_deletes_the_chat() {
    let c = cast().await;

    let leave = format!("/chats/{}/members/me", c.chat);
    assert_no_content(c.app.delete(&leave, &c.alice.1).await).await;

    for token in [&c.alice.1, &c.bob.1] {
        let response = c.app.get(&c.members_path(), token).await;
        assert_problem(response, StatusCode::NOT_FOUND).await;
        assert!(c.app.chat_ids(token).await.is_empty());
    }
}

#[tokio::test]
async fn leave_chat_returns_403_for_a_non_member() {
    let c = cast().await;

    let response = c
        .app
        .delete(&format!("/chats/{}/members/me", c.chat), &c.carol.1)
        .await;

    assert_problem(response, StatusCode::FORBIDDEN).await;
    c.assert_members(&[&c.alice.0, &c.bob.0]).await;
}

#[tokio::test]
async fn leave_chat_returns_404_for_an_unknown_chat_and_400_for_a_malformed_id() {
    let c = cast().await;

    let response = c
        .app
        .delete(&format!("/chats/{}/members/me", unknown_id()), &c.bob.1)
        .await;
    assert_problem(response, StatusCode::NOT_FOUND).await;
    for id in ["not-a-uuid", "me", &c.chat[..35]] {
        let response = c
            .app
            .delete(&format!("/chats/{id}/members/me"), &c.bob.1)
            .await;
        assert_problem(response, StatusCode::BAD_REQUEST).await;
    }
}

/// The ids a `400` for unknown members names, from its `errors` list (each entry
/// `{"field": "members", "message": "no such user: <id>"}`), in the order listed; each
/// must also appear in `detail`.
pub fn unknown_ids_named(problem: &Value) -> Vec<String> {
    let errors = problem["errors"]
        .as_array()
        .unwrap_or_else(|| panic!("the problem has no `errors` list: {problem}"));
    let detail = problem["detail"].as_str().unwrap_or_default();
    errors
        .iter()
        .map(|error| {
            assert_eq!(error["field"], "members", "{problem}");
            let message = error["message"].as_str().unwrap_or_default();
            let id = message
                .strip_prefix("no such user: ")
                .unwrap_or_else(|| panic!("an unknown member not named by id: {problem}"));
            assert!(
                detail.contains(id),
                "the detail does not name {id}: {problem}"
            );
            id.to_owned()
        })
        .collect()
}

#[tokio::test]
async fn an_unknown_id_given_twice_is_named_once_and_known_ids_not_at_all() {
    let c = cast().await;
    let (ghost, ghost2) = (unknown_id(), unknown_id());

    let response = c
        .add(&c.alice.1, &[&ghost2, &c.carol.0, &ghost, &ghost2])
        .await;

    let problem = assert_problem(response, StatusCode::BAD_REQUEST).await;
    assert_eq!(unknown_ids_named(&problem), [ghost2, ghost]);
    c.assert_members(&[&c.alice.0, &c.bob.0]).await;
}
