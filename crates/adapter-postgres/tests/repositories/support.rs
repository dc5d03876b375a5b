//! The harness: a fresh database per test, created, migrated, handed to the test, and
//! dropped afterwards, also when the test panics.

use std::future::Future;
use std::panic::resume_unwind;
use std::sync::Arc;

use adapter_postgres::PostgresStore;
use app::ports::MessageQueue;
use async_trait::async_trait;
use domain::MessageId;
use domain::ports::{ChatRepository, MessageRepository, UserRepository};
use sqlx::{AssertSqlSafe, Connection, PgConnection, PgPool};
use storage_contract::{FAILING_CONTENT, Fixture, Table};
use time::OffsetDateTime;
use uuid::Uuid;

/// The server tests create their databases on when `DATABASE_URL` is not set.
const DEFAULT_SERVER_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// What a test gets: the store under test, and a separate pool on the same database for
/// arranging and checking rows behind the repositories' backs.
pub struct TestDb {
    pub store: PostgresStore,
    pub raw: PgPool,
    pub users: Arc<dyn UserRepository>,
    pub chats: Arc<dyn ChatRepository>,
    pub messages: Arc<dyn MessageRepository>,
}

/// The URL of the server tests create databases on.
pub fn server_url() -> String {
    std::env::var("DATABASE_URL").unwrap_or_else(|_| DEFAULT_SERVER_URL.to_owned())
}

/// `url` with its database name replaced by `database`, query parameters kept.
pub fn with_database(url: &str, database: &str) -> String {
    let (base, query) = url
        .split_once('?')
        .map_or((url, None), |(b, q)| (b, Some(q)));
    let authority = base.find("://").map_or(0, |i| i + 3);
    let path = base[authority..]
        .find('/')
        .map_or(base.len(), |i| authority + i);
    let query = query.map(|q| format!("?{q}")).unwrap_or_default();
    format!("{}/{database}{query}", &base[..path])
}

/// Runs `test` against a fresh, migrated database, and drops that database afterwards.
/// The test runs in its own task so that a panic in it is caught, the database dropped,
/// and the panic then resumed.
pub async fn with_db<F, Fut>(test: F)
where
    F: FnOnce(TestDb) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let server = server_url();
    // A generated name, so building the statement from a string is safe.
    let name = format!("test_{}", Uuid::new_v4().simple());
    let mut admin = PgConnection::connect(&server)
        .await
        .expect("cannot connect to the test PostgreSQL server (set DATABASE_URL)");
    sqlx::query(AssertSqlSafe(format!("create database {name}")))
        .execute(&mut admin)
        .await
        .unwrap();

    let url = with_database(&server, &name);
    let outcome = match PostgresStore::connect(&url).await {
        Ok(store) => match PgPool::connect(&url).await {
            Ok(raw) => {
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
                outcome.map_err(|e| e.into_panic())
            }
            Err(e) => Err(Box::new(format!("cannot open the raw pool: {e}")) as _),
        },
        Err(e) => Err(Box::new(format!("PostgresStore::connect failed: {e:?}")) as _),
    };

    sqlx::query(AssertSqlSafe(format!(
        "drop database if exists {name} with (force)"
    )))
    .execute(&mut admin)
    .await
    .unwrap();
    admin.close().await.unwrap();

    if let Err(panic) = outcome {
        resume_unwind(panic);
    }
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
        sqlx::query("update users set created_at = $1 where username = any($2)")
            .bind(at)
            .bind(usernames)
            .execute(&self.raw)
            .await
            .unwrap();
    }

    async fn scramble_messages(&self, at: OffsetDateTime) {
        sqlx::query("update messages set created_at = $1, id = gen_random_uuid()")
            .bind(at)
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
             values ($1, $2, $3, 'h')",
        )
        .bind(Uuid::now_v7())
        .bind(username)
        .bind(username.to_lowercase())
        .execute(&self.raw)
        .await
        .unwrap();
    }

    async fn fail_inserts_of_failing_content(&self) {
        sqlx::query(
            "create function fail_insert() returns trigger language plpgsql
             as $$ begin raise exception 'an injected failure'; end $$",
        )
        .execute(&self.raw)
        .await
        .unwrap();
        // A fixed text, never client input.
        sqlx::query(AssertSqlSafe(format!(
            "create trigger fail_inserts before insert on messages for each row
             when (new.content = '{FAILING_CONTENT}')
             execute function fail_insert()"
        )))
        .execute(&self.raw)
        .await
        .unwrap();
    }
}

#[test]
fn with_database_replaces_only_the_database_name() {
    assert_eq!(
        with_database("postgres://postgres@127.0.0.1:5432/postgres", "t1"),
        "postgres://postgres@127.0.0.1:5432/t1"
    );
    assert_eq!(
        with_database("postgres://u:p@h/db?sslmode=disable", "t1"),
        "postgres://u:p@h/t1?sslmode=disable"
    );
    assert_eq!(
        with_database("postgres://h:5432", "t1"),
        "postgres://h:5432/t1"
    );
}
