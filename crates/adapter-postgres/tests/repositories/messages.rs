//! `MessageRepository` against PostgreSQL.

use std::collections::HashSet;

use domain::{HistoryPage, MessageId, StoreError};
use uuid::Uuid;

use crate::support::{
    TestDb, chat, count, limit, new_message, send, unknown_chat, unknown_user, user, with_db,
};

/// History page with `limit`, `skip` and `before`.
fn page(n: u32, skip: u32, before: Option<MessageId>) -> HistoryPage {
    HistoryPage {
        limit: limit(n),
        skip,
        before,
    }
}

/// The contents of a history page, in the order listed.
async fn history(db: &TestDb, chat: domain::ChatId, page: HistoryPage) -> Vec<String> {
    db.messages
        .history(chat, page)
        .await
        .unwrap()
        .into_iter()
        .map(|m| m.content.as_str().to_owned())
        .collect()
}

#[tokio::test]
async fn inserting_a_message_stores_it() {
    with_db(|db| async move {
        let alice = user(&db, "alice").await;
        let c = chat(&db, "c", alice.id, &[]).await;
        let (message, stored) = db
            .messages
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
        let listed = db.messages.history(c.id, page(10, 0, None)).await.unwrap();
        assert_eq!(listed, vec![message]);
    })
    .await;
}

#[tokio::test]
async fn repeating_a_client_msg_id_returns_the_first_message_with_false() {
    with_db(|db| async move {
        let alice = user(&db, "alice").await;
        let bob = user(&db, "bob").await;
        let c = chat(&db, "c", alice.id, &[bob.id]).await;
        let other = chat(&db, "other", alice.id, &[]).await;

        let (first, stored) = db
            .messages
            .insert(&new_message(c.id, alice.id, "first", Some("k")))
            .await
            .unwrap();
        assert!(stored);
        let (again, stored) = db
            .messages
            .insert(&new_message(c.id, alice.id, "retry", Some("k")))
            .await
            .unwrap();
        assert!(!stored);
        assert_eq!(again, first);

        // The key is per sender and per chat; messages without one never collide.
        assert!(
            db.messages
                .insert(&new_message(c.id, bob.id, "b", Some("k")))
                .await
                .unwrap()
                .1
        );
        assert!(
            db.messages
                .insert(&new_message(other.id, alice.id, "o", Some("k")))
                .await
                .unwrap()
                .1
        );
        send(&db, c.id, alice.id, "plain").await;
        send(&db, c.id, alice.id, "plain").await;
        assert_eq!(count(&db, "messages").await, 5);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_sends_with_the_same_client_msg_id_store_one_message() {
    with_db(|db| async move {
        let alice = user(&db, "alice").await;
        let c = chat(&db, "c", alice.id, &[]).await;
        for round in 0..20 {
            let key = format!("key{round}");
            let tasks: Vec<_> = (0..2)
                .map(|_| {
                    let messages = db.messages.clone();
                    let message = new_message(c.id, alice.id, "hi", Some(&key));
                    tokio::spawn(async move { messages.insert(&message).await })
                })
                .collect();
            let mut results = Vec::new();
            for task in tasks {
                results.push(task.await.unwrap().unwrap());
            }
            assert_eq!(results.iter().filter(|(_, stored)| *stored).count(), 1);
            assert_eq!(results[0].0, results[1].0);
        }
        assert_eq!(count(&db, "messages").await, 20);
    })
    .await;
}

#[tokio::test]
async fn inserting_into_an_unknown_chat_is_chat_gone() {
    with_db(|db| async move {
        let alice = user(&db, "alice").await;
        let err = db
            .messages
            .insert(&new_message(unknown_chat(), alice.id, "x", Some("k")))
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::ChatGone), "{err:?}");
    })
    .await;
}

#[tokio::test]
async fn inserting_from_an_unknown_sender_is_unknown_user() {
    with_db(|db| async move {
        let alice = user(&db, "alice").await;
        let c = chat(&db, "c", alice.id, &[]).await;
        let err = db
            .messages
            .insert(&new_message(c.id, unknown_user(), "x", None))
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::UnknownUser), "{err:?}");
    })
    .await;
}

#[tokio::test]
async fn history_lists_newest_first_and_pages_with_skip_limit_and_before() {
    with_db(|db| async move {
        let alice = user(&db, "alice").await;
        let c = chat(&db, "c", alice.id, &[]).await;
        let elsewhere = chat(&db, "elsewhere", alice.id, &[]).await;
        let mut sent = Vec::new();
        for i in 1..=6 {
            sent.push(send(&db, c.id, alice.id, &format!("m{i}")).await);
            send(&db, elsewhere.id, alice.id, &format!("e{i}")).await;
        }

        assert_eq!(
            history(&db, c.id, page(10, 0, None)).await,
            ["m6", "m5", "m4", "m3", "m2", "m1"]
        );
        assert_eq!(history(&db, c.id, page(2, 0, None)).await, ["m6", "m5"]);
        assert_eq!(history(&db, c.id, page(2, 3, None)).await, ["m3", "m2"]);
        assert!(history(&db, c.id, page(2, 6, None)).await.is_empty());

        let m4 = sent[3].id;
        assert_eq!(
            history(&db, c.id, page(10, 0, Some(m4))).await,
            ["m3", "m2", "m1"]
        );
        assert_eq!(history(&db, c.id, page(1, 1, Some(m4))).await, ["m2"]);
        assert!(
            history(&db, c.id, page(10, 0, Some(sent[0].id)))
                .await
                .is_empty()
        );
        assert!(
            history(&db, unknown_chat(), page(10, 0, None))
                .await
                .is_empty()
        );
    })
    .await;
}

#[tokio::test]
async fn history_before_a_message_not_in_the_chat_is_unknown_cursor() {
    with_db(|db| async move {
        let alice = user(&db, "alice").await;
        let c = chat(&db, "c", alice.id, &[]).await;
        let elsewhere = chat(&db, "elsewhere", alice.id, &[]).await;
        send(&db, c.id, alice.id, "here").await;
        let foreign = send(&db, elsewhere.id, alice.id, "there").await;

        for before in [MessageId::from_uuid(Uuid::now_v7()), foreign.id] {
            let err = db
                .messages
                .history(c.id, page(10, 0, Some(before)))
                .await
                .unwrap_err();
            assert!(matches!(err, StoreError::UnknownCursor), "{err:?}");
        }
    })
    .await;
}

#[tokio::test]
async fn messages_stored_at_the_same_instant_keep_their_insertion_order() {
    with_db(|db| async move {
        let alice = user(&db, "alice").await;
        let c = chat(&db, "c", alice.id, &[]).await;
        let mut sent = Vec::new();
        for i in 0..200 {
            sent.push(send(&db, c.id, alice.id, &format!("m{i}")).await.id);
        }
        // Many of these share a millisecond anyway; make them all share one instant, and
        // give the ids an order unrelated to insertion, so only `seq` can order them.
        sqlx::query(
            "update messages set created_at = '2026-01-01T00:00:00Z', id = gen_random_uuid()",
        )
        .execute(&db.raw)
        .await
        .unwrap();
        let ids: Vec<Uuid> = sqlx::query_scalar("select id from messages order by seq")
            .fetch_all(&db.raw)
            .await
            .unwrap();
        assert_eq!(ids.iter().collect::<HashSet<_>>().len(), 200);

        let mut listed = Vec::new();
        let mut before = None;
        loop {
            let page = db
                .messages
                .history(c.id, page(30, 0, before))
                .await
                .unwrap();
            let Some(last) = page.last() else { break };
            before = Some(last.id);
            listed.extend(page.into_iter().map(|m| m.id.as_uuid()));
        }
        listed.reverse();
        assert_eq!(listed, ids);
        assert_eq!(sent.len(), 200);
    })
    .await;
}
