//! Opening, migrating, pinging and closing the store: what only PostgreSQL has.

use std::time::{Duration, Instant};

use adapter_postgres::{PostgresError, PostgresStore};
use domain::{StoreError, UserId};
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
