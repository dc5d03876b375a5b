//! The contract of [`MessageRepository`](domain::ports::MessageRepository).

use std::collections::HashSet;

use domain::{ChatId, HistoryPage, MessageId, StoreError};
use time::macros::datetime;
use uuid::Uuid;

use crate::{Fixture, Table, chat, new_message, page, send, unknown_chat, unknown_user, user};

/// The contents of a history page, in the order listed.
async fn history(db: &dyn Fixture, chat: ChatId, page: HistoryPage) -> Vec<String> {
    db.messages()
        .history(chat, page)
        .await
        .unwrap()
        .into_iter()
        .map(|m| m.content.as_str().to_owned())
        .collect()
}

/// An inserted message comes back as stored, content untouched, and history lists it
/// exactly so.
pub async fn inserting_a_message_stores_it(db: &dyn Fixture) {
    let alice = user(db, "alice").await;
    let c = chat(db, "c", alice.id, &[]).await;
    let (message, stored) = db
        .messages()
        .insert(&new_message(c.id, alice.id, " hello ", Some("k1")))
        .await
        .unwrap();
    assert!(stored);
    assert_eq!(message.chat_id, c.id);
    assert_eq!(message.sender_id, alice.id);
    assert_eq!(message.content.as_str(), " hello ");
    assert_eq!(
        message.client_msg_id.as_ref().map(|k| k.as_str()),
        Some("k1")
    );
    let listed = db
        .messages()
        .history(c.id, page(10, 0, None))
        .await
        .unwrap();
    assert_eq!(listed, vec![message]);
}

/// A sender's repeated client id in the same chat stores nothing and answers with the
/// first message; the key is per sender and per chat.
pub async fn repeating_a_client_msg_id_returns_the_first_message_with_false(db: &dyn Fixture) {
    let alice = user(db, "alice").await;
    let bob = user(db, "bob").await;
    let c = chat(db, "c", alice.id, &[bob.id]).await;
    let other = chat(db, "other", alice.id, &[]).await;
    let messages = db.messages();

    let (first, stored) = messages
        .insert(&new_message(c.id, alice.id, "first", Some("k")))
        .await
        .unwrap();
    assert!(stored);
    let (again, stored) = messages
        .insert(&new_message(c.id, alice.id, "retry", Some("k")))
        .await
        .unwrap();
    assert!(!stored);
    assert_eq!(again, first);

    // The key is per sender and per chat; messages without one never collide.
    let (bobs, stored) = messages
        .insert(&new_message(c.id, bob.id, "b", Some("k")))
        .await
        .unwrap();
    assert!(stored);
    assert_ne!(bobs.id, first.id);
    let (elsewhere, stored) = messages
        .insert(&new_message(other.id, alice.id, "o", Some("k")))
        .await
        .unwrap();
    assert!(stored);
    assert_ne!(elsewhere.id, first.id);
    send(db, c.id, alice.id, "plain").await;
    send(db, c.id, alice.id, "plain").await;
    assert_eq!(db.count(Table::Messages).await, 5);
    assert_eq!(
        history(db, c.id, page(10, 0, None)).await,
        ["plain", "plain", "b", "first"]
    );
}

/// Two sends with the same client id racing: one is stored, both get that message.
pub async fn concurrent_sends_with_the_same_client_msg_id_store_one_message(db: &dyn Fixture) {
    let alice = user(db, "alice").await;
    let c = chat(db, "c", alice.id, &[]).await;
    for round in 0..20 {
        let key = format!("key{round}");
        let tasks: Vec<_> = (0..2)
            .map(|_| {
                let messages = db.messages();
                let message = new_message(c.id, alice.id, "hi", Some(&key));
                tokio::spawn(async move { messages.insert(&message).await })
            })
            .collect();
        let mut results = Vec::new();
        for task in tasks {
            results.push(task.await.unwrap().unwrap());
        }
        assert_eq!(
            results.iter().filter(|(_, stored)| *stored).count(),
            1,
            "round {round}"
        );
        assert_eq!(results[0].0, results[1].0);
    }
    assert_eq!(db.count(Table::Messages).await, 20);
}

/// A chat that never existed cannot receive messages.
pub async fn inserting_into_an_unknown_chat_is_chat_gone(db: &dyn Fixture) {
    let alice = user(db, "alice").await;
    for client_msg_id in [Some("k"), None] {
        let err = db
            .messages()
            .insert(&new_message(unknown_chat(), alice.id, "x", client_msg_id))
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::ChatGone), "{err:?}");
    }
    assert_eq!(db.count(Table::Messages).await, 0);
}

/// A chat deleted since the sender checked cannot receive messages.
pub async fn inserting_into_a_deleted_chat_is_chat_gone(db: &dyn Fixture) {
    let alice = user(db, "alice").await;
    let c = chat(db, "c", alice.id, &[]).await;
    send(db, c.id, alice.id, "before").await;
    assert!(db.chats().delete(c.id).await.unwrap());
    let err = db
        .messages()
        .insert(&new_message(c.id, alice.id, "after", Some("k")))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::ChatGone), "{err:?}");
    assert_eq!(db.count(Table::Messages).await, 0);
}

/// A sender who does not exist cannot send.
pub async fn inserting_from_an_unknown_sender_is_unknown_user(db: &dyn Fixture) {
    let alice = user(db, "alice").await;
    let c = chat(db, "c", alice.id, &[]).await;
    let err = db
        .messages()
        .insert(&new_message(c.id, unknown_user(), "x", None))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::UnknownUser), "{err:?}");
    assert_eq!(db.count(Table::Messages).await, 0);
}

/// History is newest first, of one chat only, and pages with `skip`, `limit` and
/// `before`.
pub async fn history_lists_newest_first_and_pages_with_skip_limit_and_before(db: &dyn Fixture) {
    let alice = user(db, "alice").await;
    let c = chat(db, "c", alice.id, &[]).await;
    let elsewhere = chat(db, "elsewhere", alice.id, &[]).await;
    let mut sent = Vec::new();
    for i in 1..=6 {
        sent.push(send(db, c.id, alice.id, &format!("m{i}")).await);
        send(db, elsewhere.id, alice.id, &format!("e{i}")).await;
    }

    assert_eq!(
        history(db, c.id, page(10, 0, None)).await,
        ["m6", "m5", "m4", "m3", "m2", "m1"]
    );
    assert_eq!(history(db, c.id, page(2, 0, None)).await, ["m6", "m5"]);
    assert_eq!(history(db, c.id, page(2, 3, None)).await, ["m3", "m2"]);
    assert!(history(db, c.id, page(2, 6, None)).await.is_empty());

    let m4 = sent[3].id;
    assert_eq!(
        history(db, c.id, page(10, 0, Some(m4))).await,
        ["m3", "m2", "m1"]
    );
    assert_eq!(history(db, c.id, page(1, 1, Some(m4))).await, ["m2"]);
    assert!(
        history(db, c.id, page(10, 0, Some(sent[0].id)))
            .await
            .is_empty()
    );
    assert!(
        history(db, unknown_chat(), page(10, 0, None))
            .await
            .is_empty()
    );
}

/// A cursor that names no message of this chat (none at all, or one of another chat) is
/// `UnknownCursor`.
pub async fn history_before_a_message_not_in_the_chat_is_unknown_cursor(db: &dyn Fixture) {
    let alice = user(db, "alice").await;
    let c = chat(db, "c", alice.id, &[]).await;
    let elsewhere = chat(db, "elsewhere", alice.id, &[]).await;
    send(db, c.id, alice.id, "here").await;
    let foreign = send(db, elsewhere.id, alice.id, "there").await;

    for before in [MessageId::from_uuid(Uuid::now_v7()), foreign.id] {
        let err = db
            .messages()
            .history(c.id, page(10, 0, Some(before)))
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::UnknownCursor), "{err:?}");
    }
}

/// Messages that share a timestamp (many do, within one millisecond) still list in the
/// order they were stored, page after page.
pub async fn messages_stored_at_the_same_instant_keep_their_insertion_order(db: &dyn Fixture) {
    let alice = user(db, "alice").await;
    let c = chat(db, "c", alice.id, &[]).await;
    for i in 0..200 {
        send(db, c.id, alice.id, &format!("m{i}")).await;
    }
    // Many of these share a millisecond anyway; make them all share one instant, and
    // give the ids an order unrelated to insertion, so only the insertion order can
    // order them.
    db.scramble_messages(datetime!(2026-01-01 00:00:00 UTC))
        .await;
    let stored = db.message_ids_in_insertion_order().await;
    assert_eq!(stored.len(), 200);
    assert_eq!(stored.iter().collect::<HashSet<_>>().len(), 200);

    let mut listed = Vec::new();
    let mut before = None;
    loop {
        let page = db
            .messages()
            .history(c.id, page(30, 0, before))
            .await
            .unwrap();
        let Some(last) = page.last() else { break };
        before = Some(last.id);
        assert!(
            page.iter()
                .all(|m| m.created_at == datetime!(2026-01-01 00:00:00 UTC))
        );
        listed.extend(page.into_iter().map(|m| m.id));
    }
    listed.reverse();
    assert_eq!(listed, stored);
    // The contents confirm it: m0 was stored first.
    assert_eq!(history(db, c.id, page(1, 199, None)).await, ["m0"]);
}
