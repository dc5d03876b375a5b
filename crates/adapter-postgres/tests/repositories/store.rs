//! Opening, migrating, pinging and closing the store: what only PostgreSQL has.

use std::sync::Arc;
use std::time::{Duration, Instant};

use adapter_postgres::{PostgresError, PostgresStore};
use domain::{ChatId, StoreError, UserId};
use uuid::Uuid;

use crate::support::with_db;

#[tokio::test]
async fn a_migrated_store_answers_pings_and_migrating_again_is_harmless() {
    with_db(|db| async move {
        db.store.ping().await.unwrap();
        db.store.migrate().await.unwrap();
        db.store.ping().await.unwrap();
    })
    .await;
}

#[tokio::test]
async fn connecting_to_an_unreachable_server_fails_within_seconds() {
    let started = Instant::now();
    // Port 1 on loopback: nothing listens there, so every attempt is refused.
    let err = PostgresStore::connect("postgres://postgres@127.0.0.1:1/postgres")
        .await
        .unwrap_err();
    assert!(matches!(err, PostgresError::Connect(_)), "{err:?}");
    assert!(started.elapsed() < Duration::from_secs(10));
}

#[tokio::test]
async fn a_malformed_url_is_invalid_url() {
    let err = PostgresStore::connect("postgres://127.0.0.1:notaport/postgres")
        .await
        .unwrap_err();
    assert!(matches!(err, PostgresError::InvalidUrl(_)), "{err:?}");
}

#[tokio::test]
async fn a_closed_store_is_unavailable() {
    with_db(|db| async move {
        db.store.close().await;
        assert!(db.store.ping().await.is_err());
        let err = db
            .users
            .exists(UserId::from_uuid(Uuid::now_v7()))
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::Unavailable(_)), "{err:?}");
    })
    .await;
}

#[tokio::test]
async fn the_username_key_column_holds_the_unicode_lowercase_of_the_name() {
    with_db(|db| async move {
        storage_contract::user(&db, "ÉmILE").await;
        let key: String = sqlx::query_scalar("select username_key from users")
            .fetch_one(&db.raw)
            .await
            .unwrap();
        assert_eq!(key, "émile");
    })
    .await;
}

/// Two send orders on one database behave like two server processes of a cluster.
#[tokio::test]
async fn a_chat_s_turn_is_shared_between_processes_and_other_chats_do_not_wait() {
    with_db(|db| async move {
        let node_a = db.store.send_order();
        let node_b = db.store.send_order();
        let chat = ChatId::from_uuid(Uuid::new_v4());
        let other_chat = ChatId::from_uuid(Uuid::new_v4());

        let held = node_a.turn(chat).await.unwrap();
        let waiting = tokio::spawn({
            let node_b = Arc::clone(&node_b);
            async move { node_b.turn(chat).await.map(drop) }
        });
        // Another chat's turn is free meanwhile, on either node.
        let other = tokio::time::timeout(Duration::from_secs(5), node_b.turn(other_chat))
            .await
            .expect("another chat's turn waited")
            .unwrap();
        drop(other);
        assert!(
            tokio::time::timeout(Duration::from_millis(300), async {
                while !waiting.is_finished() {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            })
            .await
            .is_err(),
            "node B got the chat's turn while node A held it"
        );

        drop(held);
        tokio::time::timeout(Duration::from_secs(5), waiting)
            .await
            .expect("node B never got the turn after node A released it")
            .unwrap()
            .unwrap();
        // Released on node B too (the drop above unlocks in the background): node A
        // can take it again.
        tokio::time::timeout(Duration::from_secs(5), node_a.turn(chat))
            .await
            .expect("the turn was not released")
            .unwrap();
    })
    .await;
}
