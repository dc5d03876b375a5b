//! Opening, migrating, pinging and closing the store, and what only SQLite has: files,
//! paths, URLs, the single writer.

use std::time::Duration;

use adapter_sqlite::{SqliteError, SqliteStore};
use domain::{ChatName, PasswordHash, StoreError, UserId, Username};
use storage_contract::{chat, join_in_order, new_message, page, send, unknown_user, user};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::support::{TempDir, with_db};

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
async fn connecting_creates_the_file_and_its_directories_and_the_data_outlives_the_store() {
    let dir = TempDir::new();
    let path = dir.path().join("nested/deeper/messenger.db");
    let store = SqliteStore::connect(path.to_str().unwrap()).await.unwrap();
    assert!(path.is_file());
    assert_eq!(store.path(), path);
    let alice = store
        .users()
        .create(&Username::parse("alice").unwrap(), &PasswordHash::new("h"))
        .await
        .unwrap();
    store.close().await;

    // Reopened as a `sqlite://` URL: the same file, the migrations already applied.
    let reopened = SqliteStore::connect(&format!("sqlite://{}", path.display()))
        .await
        .unwrap();
    assert!(reopened.users().exists(alice.id).await.unwrap());
    let found = reopened
        .users()
        .find_credentials(&Username::parse("ALICE").unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found.user, alice);
    reopened.close().await;
}

/// The file holds password hashes: other local users must not read it, nor its WAL.
#[cfg(unix)]
#[tokio::test]
async fn a_new_database_and_its_directories_are_private_to_the_owner() {
    use std::os::unix::fs::PermissionsExt;

    let mode = |path: &std::path::Path| {
        std::fs::metadata(path)
            .unwrap_or_else(|err| panic!("{}: {err}", path.display()))
            .permissions()
            .mode()
            & 0o777
    };
    let dir = TempDir::new();
    let path = dir.path().join("data/inner/messenger.db");
    let store = SqliteStore::connect(path.to_str().unwrap()).await.unwrap();
    store
        .users()
        .create(&Username::parse("alice").unwrap(), &PasswordHash::new("h"))
        .await
        .unwrap();
    assert_eq!(mode(&dir.path().join("data")), 0o700);
    assert_eq!(mode(&dir.path().join("data/inner")), 0o700);
    for file in ["messenger.db", "messenger.db-wal", "messenger.db-shm"] {
        assert_eq!(
            mode(&dir.path().join("data/inner").join(file)),
            0o600,
            "{file}"
        );
    }
    store.close().await;
}

#[tokio::test]
async fn the_database_is_in_wal_mode() {
    with_db(|db| async move {
        let mode: String = sqlx::query_scalar("pragma journal_mode")
            .fetch_one(&db.raw)
            .await
            .unwrap();
        assert_eq!(mode, "wal");
    })
    .await;
}

#[tokio::test]
async fn a_malformed_url_is_invalid_url() {
    let dir = TempDir::new();
    let url = format!("sqlite://{}/x.db?mode=sideways", dir.path().display());
    let err = SqliteStore::connect(&url).await.unwrap_err();
    assert!(matches!(err, SqliteError::InvalidUrl(_)), "{err:?}");
}

#[tokio::test]
async fn an_in_memory_database_is_refused() {
    for url in [
        "sqlite::memory:",
        "sqlite://:memory:",
        "sqlite://?mode=memory",
        ":memory:",
    ] {
        let err = SqliteStore::connect(url).await.unwrap_err();
        assert!(matches!(err, SqliteError::InMemory), "{url}: {err:?}");
    }
}

#[tokio::test]
async fn a_directory_that_cannot_be_created_is_reported_with_its_path() {
    let dir = TempDir::new();
    let file = dir.path().join("a-file");
    std::fs::write(&file, b"not a directory").unwrap();
    let err = SqliteStore::connect(file.join("sub/messenger.db").to_str().unwrap())
        .await
        .unwrap_err();
    assert!(
        matches!(&err, SqliteError::CreateDirectory { path, .. } if *path == file.join("sub")),
        "{err:?}"
    );
    assert!(err.to_string().contains("a-file"), "{err}");
}

#[tokio::test]
async fn a_file_that_is_not_a_database_cannot_be_opened() {
    let dir = TempDir::new();
    let path = dir.path().join("messenger.db");
    std::fs::write(&path, [0x42_u8; 8192]).unwrap();
    let err = SqliteStore::connect(path.to_str().unwrap())
        .await
        .unwrap_err();
    assert!(matches!(err, SqliteError::Open { .. }), "{err:?}");
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
        let err = db
            .users
            .create(&Username::parse("alice").unwrap(), &PasswordHash::new("h"))
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::Unreachable(_)), "{err:?}");
        // The message writer has stopped with the store: refused at once, not hung.
        let err = db
            .messages
            .insert(&new_message(
                domain::ChatId::from_uuid(Uuid::now_v7()),
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

// On a single-threaded runtime the message writer cannot run while the test begins its
// inserts, so all of them wait in the queue and make one batch: a deterministic check
// of group commit and of answers within one batch.
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

#[tokio::test]
async fn texts_are_stored_byte_for_byte_with_quotes_escapes_and_control_characters() {
    with_db(|db| async move {
        let alice = user(&db, "alice").await;
        let c = chat(&db, "c", alice.id, &[]).await;
        let text = "a\u{1}b \"q\" \\ ü 🦀 \u{7f}\n";
        let (message, _) = db
            .messages
            .insert(&new_message(c.id, alice.id, text, Some(text)))
            .await
            .unwrap();
        assert_eq!(message.content.as_str(), text);
        let listed = db.messages.history(c.id, page(1, 0, None)).await.unwrap();
        assert_eq!(listed, vec![message]);
        let (stored, kind): (Vec<u8>, String) =
            sqlx::query_as("select cast(content as blob), typeof(content) from messages")
                .fetch_one(&db.raw)
                .await
                .unwrap();
        assert_eq!(stored, text.as_bytes());
        assert_eq!(kind, "text");
    })
    .await;
}

#[tokio::test]
async fn usernames_are_keyed_by_their_unicode_lowercase_and_times_by_integer_microseconds() {
    with_db(|db| async move {
        let before = OffsetDateTime::now_utc();
        let emile = user(&db, "ÉmILE").await;
        let after = OffsetDateTime::now_utc();
        let (key, kind, micros): (String, String, i64) =
            sqlx::query_as("select username_key, typeof(created_at), created_at from users")
                .fetch_one(&db.raw)
                .await
                .unwrap();
        assert_eq!(key, "émile");
        assert_eq!(kind, "integer");
        assert_eq!(
            i128::from(micros) * 1000,
            emile.created_at.unix_timestamp_nanos()
        );
        let micro = Duration::from_micros(1);
        assert!(before - micro <= emile.created_at && emile.created_at <= after + micro);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 8)]
async fn many_concurrent_writers_and_readers_never_find_the_database_locked() {
    with_db(|db| async move {
        let owner = user(&db, "owner").await;
        let room = chat(&db, "room", owner.id, &[]).await;
        let tasks: Vec<_> = (0..64)
            .map(|i| {
                let (users, chats, messages) =
                    (db.users.clone(), db.chats.clone(), db.messages.clone());
                tokio::spawn(async move {
                    let me = users
                        .create(
                            &Username::parse(format!("writer{i}")).unwrap(),
                            &PasswordHash::new("h"),
                        )
                        .await?;
                    chats.add_members(room.id, &[me.id]).await?;
                    let mine = chats
                        .create(
                            &ChatName::parse(&format!("mine{i}")).unwrap(),
                            me.id,
                            &[owner.id],
                        )
                        .await?;
                    for n in 0..5 {
                        let text = format!("{i}/{n}");
                        messages
                            .insert(&new_message(room.id, me.id, &text, None))
                            .await?;
                        messages
                            .insert(&new_message(mine.id, me.id, &text, Some(&text)))
                            .await?;
                        chats.find_with_member(room.id, me.id).await?;
                    }
                    chats.remove_members(mine.id, &[owner.id]).await?;
                    Ok::<_, StoreError>(())
                })
            })
            .collect();
        for task in tasks {
            task.await.unwrap().unwrap();
        }
        assert_eq!(db.chats.members(room.id).await.unwrap().len(), 65);
        assert_eq!(crate::support::count_messages(&db).await, 640);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_stores_on_one_file_write_at_once_without_failing() {
    // As two processes on the same file would: each has its own writer, so they meet
    // at SQLite's lock, where `begin immediate` and the busy timeout make one wait.
    with_db(|db| async move {
        let other = SqliteStore::connect(db.store.path().to_str().unwrap())
            .await
            .unwrap();
        let owner = user(&db, "owner").await;
        let room = chat(&db, "room", owner.id, &[]).await;
        let tasks: Vec<_> = (0..40)
            .map(|i| {
                let messages = if i % 2 == 0 {
                    db.messages.clone()
                } else {
                    other.messages()
                };
                tokio::spawn(async move {
                    messages
                        .insert(&new_message(room.id, owner.id, &format!("m{i}"), None))
                        .await
                })
            })
            .collect();
        for task in tasks {
            task.await.unwrap().unwrap();
        }
        send(&db, room.id, owner.id, "last").await;
        assert_eq!(crate::support::count_messages(&db).await, 41);
        other.close().await;
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
                    "select username_skeleton from users where username = ?1",
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
