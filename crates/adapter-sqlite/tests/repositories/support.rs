//! The harness: a fresh database file per test, in a temporary directory that is
//! removed afterwards, also when the test panics.

use std::future::Future;
use std::panic::resume_unwind;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use adapter_sqlite::SqliteStore;
use app::ports::MessageQueue;
use async_trait::async_trait;
use domain::MessageId;
use domain::ports::{ChatRepository, MessageRepository, UserRepository};
use sqlx::AssertSqlSafe;
use sqlx::sqlite::{SqliteConnectOptions, SqlitePool, SqlitePoolOptions};
use storage_contract::{FAILING_CONTENT, Fixture, Table};
use time::OffsetDateTime;
use uuid::Uuid;

/// A directory of its own under the system's temporary directory, removed (with
/// everything in it) when dropped.
pub struct TempDir(PathBuf);

impl TempDir {
    /// Makes a fresh, uniquely named, empty directory.
    pub fn new() -> Self {
        let path = std::env::temp_dir().join(format!("adapter-sqlite-{}", Uuid::new_v4().simple()));
        std::fs::create_dir_all(&path).unwrap();
        Self(path)
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        // Best effort: a leftover directory in /tmp is no reason to fail a test.
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// What a test gets: the store under test, and a separate read-write pool on the same
/// file for arranging and checking rows behind the repositories' backs.
pub struct TestDb {
    pub store: SqliteStore,
    pub raw: SqlitePool,
    pub users: Arc<dyn UserRepository>,
    pub chats: Arc<dyn ChatRepository>,
    pub messages: Arc<dyn MessageRepository>,
}

/// A pool of one connection on the database file at `path`, bypassing the store.
pub async fn raw_pool(path: &Path) -> SqlitePool {
    SqlitePoolOptions::new()
        .max_connections(1)
        .connect_with(SqliteConnectOptions::new().filename(path))
        .await
        .unwrap()
}

/// Runs `test` against a fresh, migrated database file, and removes it afterwards. The
/// test runs in its own task so that a panic in it is caught, the pools closed and the
/// directory removed, and the panic then resumed.
pub async fn with_db<F, Fut>(test: F)
where
    F: FnOnce(TestDb) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let dir = TempDir::new();
    let path = dir.path().join("messenger.db");
    let store = SqliteStore::connect(path.to_str().unwrap()).await.unwrap();
    let raw = raw_pool(&path).await;
    let db = TestDb {
        users: store.users(),
        chats: store.chats(),
        messages: store.messages(),
        store: store.clone(),
        raw: raw.clone(),
    };
    let outcome = tokio::spawn(test(db)).await;
    store.close().await;
    raw.close().await;
    drop(dir);
    if let Err(err) = outcome {
        resume_unwind(err.into_panic());
    }
}

/// How many messages are stored.
pub async fn count_messages(db: &TestDb) -> i64 {
    storage_contract::Fixture::count(db, Table::Messages).await
}

/// `at` as stored: microseconds since the Unix epoch.
fn micros(at: OffsetDateTime) -> i64 {
    i64::try_from(at.unix_timestamp_nanos() / 1000).unwrap()
}

#[async_trait]
impl Fixture for TestDb {
    fn users(&self) -> Arc<dyn UserRepository> {
        self.users.clone()
    }

    fn chats(&self) -> Arc<dyn ChatRepository> {
        self.chats.clone()
    }

    fn messages(&self) -> Arc<dyn MessageRepository> {
        self.messages.clone()
    }

    fn message_queue(&self) -> Arc<dyn MessageQueue> {
        self.store.message_queue()
    }

    async fn count(&self, table: Table) -> i64 {
        // A fixed table name, never client input.
        sqlx::query_scalar(AssertSqlSafe(format!(
            "select count(*) from {}",
            table.name()
        )))
        .fetch_one(&self.raw)
        .await
        .unwrap()
    }

    async fn set_registered_at(&self, usernames: &[&str], at: OffsetDateTime) {
        for username in usernames {
            sqlx::query("update users set created_at = ?1 where username = ?2")
                .bind(micros(at))
                .bind(*username)
                .execute(&self.raw)
                .await
                .unwrap();
        }
    }

    async fn scramble_messages(&self, at: OffsetDateTime) {
        sqlx::query("update messages set created_at = ?1, id = randomblob(16)")
            .bind(micros(at))
            .execute(&self.raw)
            .await
            .unwrap();
    }

    async fn message_ids_in_insertion_order(&self) -> Vec<MessageId> {
        let ids: Vec<Uuid> = sqlx::query_scalar("select id from messages order by seq")
            .fetch_all(&self.raw)
            .await
            .unwrap();
        ids.into_iter().map(MessageId::from_uuid).collect()
    }

    async fn insert_unvalidated_user(&self, username: &str) {
        sqlx::query(
            "insert into users (id, username, username_key, password_hash)
             values (?1, ?2, ?3, 'h')",
        )
        .bind(Uuid::now_v7())
        .bind(username)
        .bind(username.to_lowercase())
        .execute(&self.raw)
        .await
        .unwrap();
    }

    async fn fail_inserts_of_failing_content(&self) {
        // A fixed text, never client input.
        sqlx::query(AssertSqlSafe(format!(
            "create trigger fail_inserts before insert on messages
             when new.content = '{FAILING_CONTENT}'
             begin select raise(abort, 'an injected failure'); end"
        )))
        .execute(&self.raw)
        .await
        .unwrap();
    }
}

#[test]
fn a_temporary_directory_is_removed_when_dropped() {
    let dir = TempDir::new();
    let path = dir.path().to_owned();
    std::fs::write(path.join("file"), b"x").unwrap();
    assert!(path.is_dir());
    drop(dir);
    assert!(!path.exists());
}
