//! PostgreSQL storage: the sqlx implementation of the domain's repository ports, and the
//! migrations (`migrations/postgres/`) that create its schema.
//!
//! Queries are checked at run time (`sqlx::query` with static SQL), so building needs no
//! database. Rows are read into private row structs and validated into domain types; a
//! database constraint that encodes a business rule is mapped to its [`StoreError`]
//! variant in `error.rs`, and nowhere else.
//!
//! New messages are stored by group commit: the store's message writer
//! (`message_writer.rs`) takes every message waiting in its queue and stores them with
//! one statement, one transaction and one WAL flush, answering each caller after the
//! commit.
//!
//! [`StoreError`]: domain::StoreError

mod bulk;
mod chats;
mod error;
mod message_writer;
mod messages;
mod send_order;
mod users;

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use app::ports::{MessageQueue, SendOrder};
use domain::ports::{ChatRepository, MessageRepository, UserRepository};
use sqlx::PgPool;
use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

pub use error::PostgresError;
pub use sql_batch::describe_metrics;

use crate::message_writer::MessageWriter;

/// The schema's migrations, embedded at compile time (`build.rs` rebuilds on a change).
static MIGRATOR: Migrator = sqlx::migrate!("../../migrations/postgres");

/// How long a query waits for a connection (opening one included), and the message
/// writer for a batch, unless [`PostgresStore::connect_with_timeout`] says otherwise.
/// Short, so that an unreachable database is told to clients (`503`) and to `/readyz`
/// within about a second instead of holding every request.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(1);

/// How long the start waits for its first connection: a database starting beside the
/// server (a compose file) may take a few seconds.
const START_TIMEOUT: Duration = Duration::from_secs(5);

/// A pool of connections to one PostgreSQL database, handing out the repositories that
/// share it. Cheap to clone.
#[derive(Debug, Clone)]
pub struct PostgresStore {
    pool: PgPool,
    /// Stores new messages in batches, one statement each (see `message_writer`).
    writer: MessageWriter,
}

impl PostgresStore {
    /// Connects to the database at `url` (a `postgres://` URL) and applies any pending
    /// migrations.
    ///
    /// # Errors
    /// [`PostgresError::InvalidUrl`] when `url` cannot be parsed,
    /// [`PostgresError::Connect`] when no connection opens within about five seconds,
    /// [`PostgresError::Migrate`] when a migration fails.
    pub async fn connect(url: &str) -> Result<Self, PostgresError> {
        Self::connect_with_timeout(url, DEFAULT_TIMEOUT).await
    }

    /// As [`Self::connect`], with the time a query may wait for a connection, and the
    /// message writer for a batch, before the store answers
    /// [`domain::StoreError::Unreachable`] (see [`DEFAULT_TIMEOUT`]).
    ///
    /// # Errors
    /// As [`Self::connect`].
    #[tracing::instrument(skip_all)]
    pub async fn connect_with_timeout(url: &str, timeout: Duration) -> Result<Self, PostgresError> {
        let options = PgConnectOptions::from_str(url).map_err(PostgresError::InvalidUrl)?;
        let pool = PgPoolOptions::new()
            .acquire_timeout(timeout)
            .connect_lazy_with(options);
        // The first connection, with the start's own patience.
        let first = tokio::time::timeout(START_TIMEOUT.max(timeout), async {
            loop {
                match pool.acquire().await {
                    Err(sqlx::Error::PoolTimedOut) => continue,
                    other => return other,
                }
            }
        })
        .await
        .unwrap_or(Err(sqlx::Error::PoolTimedOut))
        .map_err(PostgresError::Connect)?;
        drop(first);
        let store = Self {
            writer: message_writer::start(pool.clone(), timeout),
            pool,
        };
        store.migrate().await?;
        Ok(store)
    }

    /// Applies the migrations not yet applied, then fills what SQL cannot compute in
    /// rows written before a migration (usernames' skeletons). Safe to run from several
    /// processes at once: sqlx serialises the migrations with an advisory lock, and the
    /// fill only writes rows that still lack their value.
    ///
    /// # Errors
    /// [`PostgresError::Migrate`] when a migration fails, or an applied one was edited;
    /// [`PostgresError::Backfill`] when filling fails.
    #[tracing::instrument(skip_all)]
    pub async fn migrate(&self) -> Result<(), PostgresError> {
        MIGRATOR
            .run(&self.pool)
            .await
            .map_err(PostgresError::Migrate)?;
        users::backfill_skeletons(&self.pool)
            .await
            .map_err(PostgresError::Backfill)
    }

    /// Checks that the database answers (for `/readyz`).
    ///
    /// # Errors
    /// [`PostgresError::Ping`] when it does not.
    pub async fn ping(&self) -> Result<(), PostgresError> {
        sqlx::query("select 1")
            .execute(&self.pool)
            .await
            .map(drop)
            .map_err(PostgresError::Ping)
    }

    /// The user repository backed by this store.
    pub fn users(&self) -> Arc<dyn UserRepository> {
        Arc::new(users::PgUserRepository::new(self.pool.clone()))
    }

    /// The chat repository backed by this store.
    pub fn chats(&self) -> Arc<dyn ChatRepository> {
        Arc::new(chats::PgChatRepository::new(self.pool.clone()))
    }

    /// The message repository backed by this store.
    pub fn messages(&self) -> Arc<dyn MessageRepository> {
        Arc::new(messages::PgMessageRepository::new(
            self.pool.clone(),
            self.writer.clone(),
        ))
    }

    /// New messages queued for this store's writer (several in flight at once).
    pub fn message_queue(&self) -> Arc<dyn MessageQueue> {
        Arc::new(self.writer.clone())
    }

    /// The store as the target of a bulk move (an import, or a move from the other
    /// store).
    pub fn bulk_sink(&self) -> Arc<dyn import::Sink> {
        Arc::new(bulk::PgBulk::new(self.pool.clone()))
    }

    /// The store as the source of a bulk move to another store.
    pub fn bulk_source(&self) -> Arc<dyn import::Source> {
        Arc::new(bulk::PgBulk::new(self.pool.clone()))
    }

    /// The order of senders between every server process sharing this database (a
    /// cluster): a chat's turn is a PostgreSQL advisory lock, held on a small pool of
    /// connections of its own.
    pub fn send_order(&self) -> Arc<dyn SendOrder> {
        Arc::new(send_order::AdvisoryLockSendOrder::new(&self.pool))
    }

    /// Stops the message writer (after it has stored the messages already queued),
    /// then closes every connection, waiting for those in use to be returned.
    /// Repositories handed out earlier fail with [`domain::StoreError::Unavailable`]
    /// afterwards.
    pub async fn close(&self) {
        self.writer.stop().await;
        self.pool.close().await;
    }

    /// Sets the gauges of the pool's use (connections in use, idle, and the most it
    /// opens) to what they are now: called when `/metrics` is scraped.
    pub fn record_pool_usage(&self) {
        sql_batch::record_pool("postgres", "main", &self.pool);
    }
}

/// Each id once, in the order first given, leaving out `except`.
fn unique_except<T: Copy + Eq + std::hash::Hash>(ids: &[T], except: Option<T>) -> Vec<T> {
    let mut seen: std::collections::HashSet<T> = except.into_iter().collect();
    ids.iter().copied().filter(|id| seen.insert(*id)).collect()
}
