//! Opening, migrating, pinging and closing the store: what only PostgreSQL has.

use std::sync::Arc;
use std::time::{Duration, Instant};

use adapter_postgres::{PostgresError, PostgresStore};
use domain::{ChatId, PasswordHash, StoreError, UserId, Username};
use storage_contract::{chat, join_in_order, new_message, page, unknown_user, user};
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

/// Closed (the server is stopping), the store answers at once that it cannot be
/// reached: the client is told to retry (`503`), perhaps on another node.
#[tokio::test]
async fn a_closed_store_is_unreachable() {
    with_db(|db| async move {
        db.store.close().await;
        assert!(db.store.ping().await.is_err());
        let err = db
            .users
            .exists(UserId::from_uuid(Uuid::now_v7()))
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::Unreachable(_)), "{err:?}");
        // The message writer has stopped with the store: refused at once, not hung.
        let err = db
            .messages
            .insert(&new_message(
                ChatId::from_uuid(Uuid::now_v7()),
                UserId::from_uuid(Uuid::now_v7()),
                "x",
                None,
            ))
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::Unreachable(_)), "{err:?}");
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

// On a single-threaded runtime the message writer cannot run while the test begins its
// inserts, so all of them wait in the queue and make one batch: a deterministic check
// of group commit and of answers within one statement.
#[tokio::test(flavor = "current_thread")]
async fn messages_begun_together_are_committed_in_one_transaction_each_answered_on_its_own() {
    with_db(|db| async move {
        let alice = user(&db, "alice").await;
        let c = chat(&db, "c", alice.id, &[]).await;
        let gone = chat(&db, "gone", alice.id, &[]).await;
        assert!(db.chats.delete(gone.id).await.unwrap());
        let requests = [
            new_message(c.id, alice.id, "one", Some("k")),
            new_message(gone.id, alice.id, "to the deleted chat", None),
            new_message(c.id, alice.id, "one again", Some("k")),
            new_message(c.id, unknown_user(), "from nobody", None),
            new_message(c.id, alice.id, "two", None),
        ];
        let mut answers =
            join_in_order(requests.iter().map(|r| db.messages.insert(r)).collect()).await;
        let (two, new_two) = answers.pop().unwrap().unwrap();
        assert!(matches!(
            answers.pop().unwrap(),
            Err(StoreError::UnknownUser)
        ));
        let again = answers.pop().unwrap().unwrap();
        assert!(matches!(answers.pop().unwrap(), Err(StoreError::ChatGone)));
        let (one, new_one) = answers.pop().unwrap().unwrap();
        assert!(new_one && new_two);
        assert_eq!(again, (one.clone(), false));
        // One transaction: the batch's messages share its time.
        assert_eq!(one.created_at, two.created_at);
        let mut history = db.messages.history(c.id, page(10, 0, None)).await.unwrap();
        history.reverse();
        assert_eq!(history, vec![one, two]);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn creation_times_never_decrease_along_the_storage_order() {
    with_db(|db| async move {
        let alice = user(&db, "alice").await;
        let mut chats = Vec::new();
        for i in 0..3 {
            chats.push(chat(&db, &format!("c{i}"), alice.id, &[]).await);
        }
        let tasks: Vec<_> = (0..300)
            .map(|i| {
                let messages = db.messages.clone();
                let request = new_message(chats[i % 3].id, alice.id, &format!("m{i}"), None);
                tokio::spawn(async move { messages.insert(&request).await })
            })
            .collect();
        for task in tasks {
            task.await.unwrap().unwrap();
        }
        let decreasing: i64 = sqlx::query_scalar(
            "select count(*) from (
                 select created_at < lag(created_at) over (order by seq) as earlier
                 from messages
             ) as steps
             where earlier",
        )
        .fetch_one(&db.raw)
        .await
        .unwrap();
        assert_eq!(decreasing, 0);
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
        // Wait for the event itself: PostgreSQL shows node B's lock request queued
        // behind node A's (not granted). Only then is "not finished" a proof.
        tokio::time::timeout(Duration::from_secs(5), async {
            loop {
                let queued: i64 = sqlx::query_scalar(
                    "select count(*) from pg_locks
                     where locktype = 'advisory' and not granted
                       and database = (select oid from pg_database
                                       where datname = current_database())",
                )
                .fetch_one(&db.raw)
                .await
                .unwrap();
                if queued > 0 || waiting.is_finished() {
                    break;
                }
                tokio::task::yield_now().await;
            }
        })
        .await
        .expect("node B's request for the turn never reached PostgreSQL");
        assert!(
            !waiting.is_finished(),
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

/// Users stored before migration 0002 get their skeletons at start, the older of two
/// look-alikes first; the younger keeps its name and login, and the look is taken.
#[tokio::test]
async fn existing_usernames_get_their_skeletons_and_the_older_look_alike_wins() {
    use storage_contract::Fixture as _;

    with_db(|db| async move {
        // As rows from before the migration: the key in lowercase, no skeleton.
        db.insert_unvalidated_user("victim").await;
        db.insert_unvalidated_user("v\u{456}ctim").await;
        db.store.migrate().await.unwrap();

        let skeleton = |name: &'static str| {
            let raw = db.raw.clone();
            async move {
                sqlx::query_scalar::<_, Option<String>>(
                    "select username_skeleton from users where username = $1",
                )
                .bind(name)
                .fetch_one(&raw)
                .await
                .unwrap()
            }
        };
        let victim = Username::parse("victim").unwrap().skeleton();
        assert_eq!(skeleton("victim").await, Some(victim));
        assert_eq!(skeleton("v\u{456}ctim").await, None);

        let users = db.store.users();
        let err = users
            .create(
                &Username::parse("v\u{131}ctim").unwrap(),
                &PasswordHash::new("h"),
            )
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::UsernameTaken), "{err:?}");
        for name in ["victim", "v\u{456}ctim"] {
            let found = users
                .find_credentials(&Username::parse_existing(name).unwrap())
                .await
                .unwrap()
                .unwrap_or_else(|| panic!("{name} no longer logs in"));
            assert_eq!(found.user.username.as_str(), name);
        }
        db.store.migrate().await.unwrap();
        assert_eq!(skeleton("v\u{456}ctim").await, None);
    })
    .await;
}
