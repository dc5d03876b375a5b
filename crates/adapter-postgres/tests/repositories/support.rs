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
use sqlx::{AssertSqlSafe, PgPool};
use storage_contract::{FAILING_CONTENT, Fixture, Table};
use test_support::StoreKind;
use test_support::database::Scratch;
use time::OffsetDateTime;
use uuid::Uuid;

/// What a test gets: the store under test, and a separate pool on the same database for
/// arranging and checking rows behind the repositories' backs.
pub struct TestDb {
    pub store: PostgresStore,
    pub raw: PgPool,
    pub users: Arc<dyn UserRepository>,
    pub chats: Arc<dyn ChatRepository>,
    pub messages: Arc<dyn MessageRepository>,
}

/// Runs `test` against a fresh, migrated database, and drops that database afterwards.
/// The test runs in its own task so that a panic in it is caught, the database dropped,
/// and the panic then resumed.
pub async fn with_db<F, Fut>(test: F)
where
    F: FnOnce(TestDb) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let scratch = Scratch::create(StoreKind::Postgres, "test")
        .await
        .expect("cannot make a test database (set DATABASE_URL)");
    let url = scratch.url();
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

    scratch.destroy().await.expect("dropping the test database");

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
