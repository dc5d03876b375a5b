//! The server's store as the tests reach it behind the API: which kind a test server
//! gets (`E2E_STORE`), and direct connections that arrange what the API cannot (a
//! vanished user, a thousand users, a stored message). The SQL is written per store:
//! the two schemas store ids and times differently.

use std::time::Duration;

use sqlx::{AssertSqlSafe, Connection, PgConnection, SqliteConnection};
use test_support::StoreKind;
use test_support::database::Scratch;
use time::OffsetDateTime;
use uuid::Uuid;

use super::TestServer;

/// A fresh store for a test server: PostgreSQL (the default) or, with
/// `E2E_STORE=sqlite`, a data directory for the embedded SQLite database.
pub(super) async fn fresh_store() -> Scratch {
    let kind = match std::env::var("E2E_STORE").as_deref() {
        Ok("sqlite") => StoreKind::Sqlite,
        Ok("postgres") | Err(_) => StoreKind::Postgres,
        Ok(other) => panic!("E2E_STORE must be `postgres` or `sqlite`, not `{other}`"),
    };
    Scratch::create(kind, "e2e")
        .await
        .unwrap_or_else(|e| panic!("cannot make the test's store: {e:#}"))
}

impl TestServer {
    /// The PostgreSQL backend's URLs and name; for the tests that are about PostgreSQL
    /// itself (`postgres_only`).
    fn postgres(&self) -> (&str, &str, &str) {
        match &self.store {
            Scratch::Postgres {
                admin_url,
                url,
                name,
            } => (admin_url, url, name),
            Scratch::Sqlite { .. } => {
                panic!("a PostgreSQL-only helper was used with E2E_STORE=sqlite")
            }
        }
    }

    /// A connection to the administrative database this server's PostgreSQL database
    /// was created from, for what only a superuser can do to it (cut it off, for instance).
    pub async fn admin_db(&self) -> PgConnection {
        PgConnection::connect(self.postgres().0)
            .await
            .expect("connecting to the administrative database")
    }

    /// The name of this server's PostgreSQL database.
    pub fn db_name(&self) -> &str {
        self.postgres().2
    }

    /// The URL of this server's PostgreSQL database.
    pub fn db_url(&self) -> &str {
        self.postgres().1
    }

    /// Runs `f` with a direct connection to this server's database, for arranging what
    /// the API cannot (a vanished user, a thousand users, a stored message). The SQL is
    /// written per store: the two schemas store ids and times differently.
    async fn with_db<R>(
        &self,
        postgres: impl AsyncFnOnce(&mut PgConnection) -> R,
        sqlite: impl AsyncFnOnce(&mut SqliteConnection) -> R,
    ) -> R {
        match &self.store {
            Scratch::Postgres { url, .. } => {
                let mut db = PgConnection::connect(url)
                    .await
                    .expect("connecting to the test database");
                postgres(&mut db).await
            }
            Scratch::Sqlite { .. } => {
                let mut db = SqliteConnection::connect(&self.store.url())
                    .await
                    .expect("opening the test database");
                sqlite(&mut db).await
            }
        }
    }

    /// Deletes a user row behind the server's back (the API has no such route).
    pub async fn delete_user(&self, id: &str) {
        let id = Uuid::parse_str(id).expect("a user id");
        self.with_db(
            async |db| {
                sqlx::query("delete from users where id = $1")
                    .bind(id)
                    .execute(db)
                    .await
                    .map(drop)
            },
            async |db| {
                sqlx::query("delete from users where id = ?")
                    .bind(id.as_bytes().as_slice())
                    .execute(db)
                    .await
                    .map(drop)
            },
        )
        .await
        .expect("deleting a user");
    }

    /// Stores a message from `sender` in `chat` directly, as a send would.
    pub async fn insert_message(&self, chat: &str, sender: &str) {
        let (id, chat, sender) = (
            Uuid::new_v4(),
            Uuid::parse_str(chat).expect("a chat id"),
            Uuid::parse_str(sender).expect("a user id"),
        );
        self.with_db(
            async |db| {
                sqlx::query("insert into messages (id, chat_id, sender_id, content) values ($1, $2, $3, 'hello')")
                    .bind(id).bind(chat).bind(sender).execute(db).await.map(drop)
            },
            async |db| {
                sqlx::query("insert into messages (id, chat_id, sender_id, content) values (?, ?, ?, 'hello')")
                    .bind(id.as_bytes().as_slice()).bind(chat.as_bytes().as_slice()).bind(sender.as_bytes().as_slice())
                    .execute(db).await.map(drop)
            },
        )
        .await
        .expect("inserting a message");
    }

    /// How many rows of `table` (`messages`, `chat_members`) belong to `chat`.
    pub async fn rows_of_chat(&self, table: &str, chat: &str) -> i64 {
        let chat = Uuid::parse_str(chat).expect("a chat id");
        let sql = format!("select count(*) from {table} where chat_id = $1");
        self.with_db(
            async |db| {
                sqlx::query_scalar(AssertSqlSafe(sql.clone()))
                    .bind(chat)
                    .fetch_one(db)
                    .await
            },
            async |db| {
                sqlx::query_scalar(AssertSqlSafe(sql.replace("$1", "?")))
                    .bind(chat.as_bytes().as_slice())
                    .fetch_one(db)
                    .await
            },
        )
        .await
        .expect("counting rows")
    }

    /// Inserts users straight into the database (the API would hash a password for
    /// each, which is too slow for a thousand): `created_minutes_ago[i]` is how long
    /// before now `ids[i]` registered (rows with equal values share one instant). Their
    /// usernames are `u<id without hyphens>`; they cannot log in.
    ///
    /// This is the one place the suite writes the `users` table; it follows the schemas
    /// in `migrations/`.
    pub async fn insert_user_rows(&self, ids: &[Uuid], created_minutes_ago: &[i32]) {
        assert_eq!(ids.len(), created_minutes_ago.len());
        let now = OffsetDateTime::now_utc();
        self.with_db(
            async |db| {
                sqlx::query(
                    "insert into users (id, username, username_key, password_hash, created_at)
                     select id, name, name, 'not-a-hash', $3 - make_interval(mins => ago)
                     from unnest($1::uuid[], $2::int[]) as t(id, ago),
                          lateral (select 'u' || replace(id::text, '-', '') as name) as n",
                )
                .bind(ids)
                .bind(created_minutes_ago)
                .bind(now)
                .execute(db)
                .await
                .map(drop)
            },
            async |db| {
                let mut tx = db.begin().await?;
                for (id, ago) in ids.iter().zip(created_minutes_ago) {
                    let name = format!("u{}", id.simple());
                    let at = now - Duration::from_secs(60 * u64::try_from(*ago).expect("minutes ago"));
                    let micros = i64::try_from(at.unix_timestamp_nanos() / 1000).expect("a timestamp");
                    sqlx::query("insert into users (id, username, username_key, password_hash, created_at) values (?, ?, ?, 'not-a-hash', ?)")
                        .bind(id.as_bytes().as_slice()).bind(&name).bind(&name).bind(micros)
                        .execute(&mut *tx).await?;
                }
                tx.commit().await
            },
        )
        .await
        .expect("inserting users");
    }

    /// Inserts `count` users created at the same instant (see [`Self::insert_user_rows`])
    /// and returns their ids in insertion order.
    pub async fn insert_users(&self, count: usize) -> Vec<String> {
        let ids: Vec<Uuid> = (0..count).map(|_| Uuid::new_v4()).collect();
        self.insert_user_rows(&ids, &vec![0; count]).await;
        ids.iter().map(|id| id.hyphenated().to_string()).collect()
    }
}
