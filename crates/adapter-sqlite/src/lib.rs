//! SQLite storage, the embedded default database: the sqlx implementation of the
//! domain's repository ports over one database file, and the migrations
//! (`migrations/sqlite/`) that create its schema.
//!
//! The same ports, errors and behaviour as `adapter-postgres` (the `storage-contract`
//! crate runs one suite against both); what differs is how SQLite is driven:
//!
//! - **One writer.** SQLite lets one connection write at a time; a second one waits for
//!   the lock and may give up with "database is locked". So every write goes through a
//!   pool of exactly one connection, where writers queue in turn (fairly, for up to
//!   [`WRITE_QUEUE_TIMEOUT`]), and begins `immediate`, taking the write lock before its
//!   first read, so that a check inside it (does the chat still exist?) stays true until
//!   commit, and so that another process on the same file makes it wait for the
//!   [`BUSY_TIMEOUT`] rather than fail. Reads use a separate pool of read-only
//!   connections, which WAL lets run beside the writer.
//! - **Group commit of messages.** A durable commit costs an `fsync` however few rows
//!   it holds, so new messages are not stored one transaction each: the store's
//!   message writer (`message_writer.rs`) takes every message waiting in its queue and
//!   stores them in one transaction on the writer, answering each caller after the
//!   commit. It queues for the writer per batch, like any other write.
//! - **WAL journal, `synchronous = FULL`.** A commit is acknowledged only after the
//!   write-ahead log is synced to disk, so an acknowledged message survives a process
//!   kill *and* a power loss. (`NORMAL` would also survive `kill -9`, since the WAL is
//!   in the operating system's cache by then, but may lose the last commits on power
//!   loss; a messenger's write rate does not need that trade.)
//! - **Foreign keys on**, per connection (SQLite's default is off).
//! - **Types.** Ids are 16-byte blobs; timestamps are integer microseconds since the
//!   Unix epoch, UTC (PostgreSQL's precision), read once the write transaction holds the
//!   lock, so they grow with the insertion order `seq` unless the clock steps back.
//! - **Case-insensitive usernames** by the `username_key` column, filled from
//!   [`domain::Username::folded`], since SQLite's `lower()` folds only ASCII; and
//!   look-alikes by `username_skeleton` ([`domain::Username::skeleton`]).
//! - **Lists of ids** are bound as one JSON array of hex strings and read with
//!   `json_each`, SQLite having no array type: the SQL stays static.
//!
//! Queries are checked at run time (`sqlx::query` with static SQL), so building needs no
//! database. Rows are read into private row structs and validated into domain types.

mod bulk;
mod chats;
mod error;
mod message_writer;
mod messages;
mod users;

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use app::ports::MessageQueue;
use domain::StoreError;
use domain::ports::{ChatRepository, MessageRepository, UserRepository};
use sqlx::migrate::Migrator;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{Sqlite, Transaction};
use time::OffsetDateTime;
use uuid::Uuid;

pub use error::SqliteError;
pub use sql_batch::describe_metrics;

use crate::error::{InvalidTimestamp, store_error};
use crate::message_writer::MessageWriter;

/// The schema's migrations, embedded at compile time (`build.rs` rebuilds on a change).
static MIGRATOR: Migrator = sqlx::migrate!("../../migrations/sqlite");

/// How long a connection waits for a lock held by another connection (in practice:
/// another process on the same file, or a checkpoint) before failing.
pub const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// How long a write may wait for its turn on the one writing connection before it fails.
/// Writes are short, so only a badly overloaded server gets near it.
pub const WRITE_QUEUE_TIMEOUT: Duration = Duration::from_secs(30);

/// How long a read may wait for a free reading connection.
const READ_ACQUIRE_TIMEOUT: Duration = Duration::from_secs(30);

/// How many reads may run at once.
const READERS: u32 = 8;

/// Applies the migrations not yet applied, then gives the usernames of older rows
/// their skeletons (see `users::backfill_skeletons`).
async fn migrate(pools: &Pools) -> Result<(), SqliteError> {
    MIGRATOR
        .run(&pools.writer)
        .await
        .map_err(SqliteError::Migrate)?;
    users::backfill_skeletons(pools)
        .await
        .map_err(SqliteError::Backfill)
}

/// Creates `dir` and its missing parents, readable by the owner only (`0700` on Unix):
/// the database holds password hashes. An existing directory keeps its mode.
fn private_directory(dir: &Path) -> std::io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir)
}

/// Creates the database file, empty, readable and writable by the owner only (`0600` on
/// Unix), unless it exists (it then keeps its mode). SQLite gives the `-wal` and `-shm`
/// files it makes beside it the database file's mode; left to itself it would make all
/// three `0644`.
fn private_file(path: &Path) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    match options.open(path) {
        Ok(_) => Ok(()),
        Err(err) if err.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(err) => Err(err),
    }
}

/// The two pools over one database file: the single writer and the readers.
#[derive(Debug, Clone)]
pub(crate) struct Pools {
    /// Exactly one read-write connection, kept open for the store's lifetime.
    writer: SqlitePool,
    /// Read-only connections.
    readers: SqlitePool,
}

impl Pools {
    /// Begins a write transaction on the writer, holding the database's write lock from
    /// its start (`begin immediate`).
    pub(crate) async fn write(&self) -> Result<Transaction<'static, Sqlite>, StoreError> {
        self.writer
            .begin_with("begin immediate")
            .await
            .map_err(store_error)
    }

    /// The pool to read with.
    pub(crate) fn read(&self) -> &SqlitePool {
        &self.readers
    }
}

/// One SQLite database file, handing out the repositories that share it. Cheap to clone.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    pools: Pools,
    /// Stores new messages in batches, one transaction each (see `message_writer`).
    writer: MessageWriter,
    path: PathBuf,
}

impl SqliteStore {
    /// Opens the database at `url_or_path`, either a `sqlite:` URL
    /// (`sqlite://data/messenger.db`, `sqlite:///var/lib/messenger.db`) or a plain file
    /// path, creating the file (`0600`) and its parent directories (`0700`) when missing,
    /// and applies any pending migrations.
    ///
    /// # Errors
    /// [`SqliteError::InvalidUrl`] when the URL cannot be parsed, [`SqliteError::InMemory`]
    /// when it names an in-memory database, [`SqliteError::CreateDirectory`],
    /// [`SqliteError::CreateFile`] and [`SqliteError::Open`] when the file cannot be
    /// created or opened (or is not a SQLite database), [`SqliteError::Migrate`] when a migration fails.
    #[tracing::instrument(skip_all)]
    pub async fn connect(url_or_path: &str) -> Result<Self, SqliteError> {
        let options = if url_or_path.starts_with("sqlite:") {
            SqliteConnectOptions::from_str(url_or_path).map_err(SqliteError::InvalidUrl)?
        } else {
            SqliteConnectOptions::new().filename(url_or_path)
        };
        let path = options.get_filename().to_owned();
        if names_no_file(url_or_path) {
            return Err(SqliteError::InMemory);
        }
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            // Once, at start, before any request: blocking the executor briefly is fine.
            private_directory(parent).map_err(|source| SqliteError::CreateDirectory {
                path: parent.to_owned(),
                source,
            })?;
        }
        private_file(&path).map_err(|source| SqliteError::CreateFile {
            path: path.clone(),
            source,
        })?;
        let open_error = |source| SqliteError::Open {
            path: path.clone(),
            source,
        };
        let options = options
            .foreign_keys(true)
            .busy_timeout(BUSY_TIMEOUT)
            .shared_cache(false);

        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .min_connections(1)
            .idle_timeout(None)
            .max_lifetime(None)
            .acquire_timeout(WRITE_QUEUE_TIMEOUT)
            .connect_with(
                options
                    .clone()
                    .read_only(false)
                    .create_if_missing(true)
                    .journal_mode(SqliteJournalMode::Wal)
                    .synchronous(SqliteSynchronous::Full),
            )
            .await
            .map_err(open_error)?;
        // Opened after the writer has switched the file to WAL (a setting kept in the
        // file), so the readers find it in WAL mode.
        let readers = SqlitePoolOptions::new()
            .max_connections(READERS)
            .acquire_timeout(READ_ACQUIRE_TIMEOUT)
            .connect_with(options.read_only(true).create_if_missing(false))
            .await
            .map_err(open_error)?;
        tracing::debug!(path = %path.display(), "opened the SQLite database");
        let pools = Pools { writer, readers };
        migrate(&pools).await?;
        Ok(Self {
            writer: message_writer::start(pools.clone()),
            pools,
            path,
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Applies the migrations not yet applied (`connect` already did), then fills what
    /// SQL cannot compute in rows written before a migration (usernames' skeletons).
    ///
    /// # Errors
    /// [`SqliteError::Migrate`] when a migration fails, or an applied one was edited;
    /// [`SqliteError::Backfill`] when filling fails.
    #[tracing::instrument(skip_all)]
    pub async fn migrate(&self) -> Result<(), SqliteError> {
        migrate(&self.pools).await
    }

    /// Checks that the database answers a read (for `/readyz`). It does not queue for
    /// the writer, so a burst of writes does not make the server look unready.
    ///
    /// # Errors
    /// [`SqliteError::Ping`] when it does not.
    pub async fn ping(&self) -> Result<(), SqliteError> {
        sqlx::query("select 1")
            .execute(self.pools.read())
            .await
            .map(drop)
            .map_err(SqliteError::Ping)
    }

    /// The user repository backed by this store.
    pub fn users(&self) -> Arc<dyn UserRepository> {
        Arc::new(users::SqliteUserRepository::new(self.pools.clone()))
    }

    /// The chat repository backed by this store.
    pub fn chats(&self) -> Arc<dyn ChatRepository> {
        Arc::new(chats::SqliteChatRepository::new(self.pools.clone()))
    }

    /// The message repository backed by this store.
    pub fn messages(&self) -> Arc<dyn MessageRepository> {
        Arc::new(messages::SqliteMessageRepository::new(
            self.pools.clone(),
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
        Arc::new(bulk::SqliteBulk::new(self.pools.clone()))
    }

    /// The store as the source of a bulk move to another store.
    pub fn bulk_source(&self) -> Arc<dyn import::Source> {
        Arc::new(bulk::SqliteBulk::new(self.pools.clone()))
    }

    /// Stops the message writer (after it has stored the messages already queued),
    /// then closes every connection, waiting for those in use to be returned; the last
    /// one to close checkpoints the WAL into the database file. Repositories handed out
    /// earlier fail with [`domain::StoreError::Unavailable`] afterwards.
    pub async fn close(&self) {
        self.writer.stop().await;
        self.pools.readers.close().await;
        self.pools.writer.close().await;
    }

    /// Sets the gauges of the pools' use (connections in use, idle, and the most each
    /// opens) to what they are now: called when `/metrics` is scraped.
    pub fn record_pool_usage(&self) {
        sql_batch::record_pool("sqlite", "writer", &self.pools.writer);
        sql_batch::record_pool("sqlite", "readers", &self.pools.readers);
    }
}

/// Whether `url_or_path` names an in-memory (`:memory:`, `mode=memory`) or temporary
/// (empty name) database rather than a file.
fn names_no_file(url_or_path: &str) -> bool {
    let rest = url_or_path
        .strip_prefix("sqlite://")
        .or_else(|| url_or_path.strip_prefix("sqlite:"))
        .unwrap_or(url_or_path);
    let (database, params) = rest.split_once('?').unwrap_or((rest, ""));
    database.is_empty()
        || database == ":memory:"
        || params.split('&').any(|pair| pair == "mode=memory")
}

/// Now, in microseconds since the Unix epoch: the stored form of a timestamp.
pub(crate) fn now_micros() -> i64 {
    // Fits in an i64 until the year 294247.
    i64::try_from(OffsetDateTime::now_utc().unix_timestamp_nanos() / 1000).unwrap_or(i64::MAX)
}

/// A stored timestamp (microseconds since the Unix epoch) as a UTC date and time.
pub(crate) fn from_micros(micros: i64) -> Result<OffsetDateTime, StoreError> {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(micros) * 1000)
        .map_err(|_| StoreError::unavailable(InvalidTimestamp(micros)))
}

/// A stored timestamp, as a row holds it: microseconds since the Unix epoch.
#[derive(sqlx::Type)]
#[sqlx(transparent)]
pub(crate) struct Micros(i64);

impl sql_batch::StoredTime for Micros {
    fn into_time(self) -> Result<OffsetDateTime, StoreError> {
        from_micros(self.0)
    }
}

/// `ids` as the JSON array of 32-digit hex strings that the queries take apart with
/// `json_each` and `unhex` (hex digits need no escaping).
pub(crate) fn json_ids(ids: impl IntoIterator<Item = Uuid>) -> String {
    let quoted: Vec<String> = ids
        .into_iter()
        .map(|id| format!("\"{}\"", id.simple()))
        .collect();
    format!("[{}]", quoted.join(","))
}

/// Each id once, in the order first given, leaving out `except`.
fn unique_except<T: Copy + Eq + std::hash::Hash>(ids: &[T], except: Option<T>) -> Vec<T> {
    let mut seen: std::collections::HashSet<T> = except.into_iter().collect();
    ids.iter().copied().filter(|id| seen.insert(*id)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_round_trip_through_microseconds() {
        let at = time::macros::datetime!(2026-03-04 05:06:07.123_456 UTC);
        let micros = i64::try_from(at.unix_timestamp_nanos() / 1000).unwrap();
        assert_eq!(from_micros(micros).unwrap(), at);
        assert!(from_micros(i64::MAX).is_err());
        let now = now_micros();
        assert!(now > 1_700_000_000_000_000, "{now}");
    }

    #[test]
    fn memory_and_temporary_databases_are_told_from_files() {
        for url in [
            "sqlite::memory:",
            "sqlite://:memory:",
            "sqlite://?mode=memory",
            "sqlite://x.db?cache=shared&mode=memory",
            ":memory:",
            "sqlite://",
            "",
        ] {
            assert!(names_no_file(url), "{url}");
        }
        for url in [
            "sqlite://data/messenger.db",
            "sqlite:///var/lib/m.db?mode=rwc",
            "data/messenger.db",
            "/tmp/memory.db",
        ] {
            assert!(!names_no_file(url), "{url}");
        }
    }

    #[test]
    fn ids_become_a_json_array_of_hex_strings() {
        let a = Uuid::from_u128(0x0190_0000_0000_7000_8000_0000_0000_00ab);
        let b = Uuid::from_u128(1);
        assert_eq!(json_ids([]), "[]");
        assert_eq!(
            json_ids([a, b]),
            r#"["019000000000700080000000000000ab","00000000000000000000000000000001"]"#
        );
    }
}
