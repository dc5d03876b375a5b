//! This adapter's errors, and the one place where a sqlx error becomes a [`StoreError`].

use std::path::PathBuf;

use domain::{InvalidInput, StoreError};

/// Why the store could not be opened, migrated or reached.
#[derive(Debug, thiserror::Error)]
pub enum SqliteError {
    /// The `sqlite:` URL could not be parsed (an unknown query parameter, say).
    #[error("the SQLite database URL is invalid")]
    InvalidUrl(#[source] sqlx::Error),
    /// The URL names an in-memory or temporary database, which would vanish with its
    /// connections and cannot be shared by the writer and the readers.
    #[error("an in-memory or temporary SQLite database is not supported: give a file path")]
    InMemory,
    /// The directory that should hold the database file could not be created.
    #[error("could not create the directory {} for the SQLite database", path.display())]
    CreateDirectory {
        /// The directory.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The database file could not be created.
    #[error("could not create the SQLite database file {}", path.display())]
    CreateFile {
        /// The database file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The database file could not be opened or created, or is not a SQLite database.
    #[error("could not open the SQLite database {}", path.display())]
    Open {
        /// The database file.
        path: PathBuf,
        /// Why.
        #[source]
        source: sqlx::Error,
    },
    /// Applying the migrations failed.
    #[error("could not apply the SQLite migrations")]
    Migrate(#[source] sqlx::migrate::MigrateError),
    /// Filling the usernames' skeletons of rows from before migration 0002 failed.
    #[error("could not give existing usernames their skeletons")]
    Backfill(#[source] sqlx::Error),
    /// The database did not answer a trivial query.
    #[error("SQLite did not answer")]
    Ping(#[source] sqlx::Error),
}

/// Maps a failed query to the port's error: always [`StoreError::Unavailable`].
///
/// SQLite names no constraint in its errors (a foreign-key violation does not even say
/// which key), so the business rules are not read from errors here, as they are for
/// PostgreSQL: each write checks them inside its write transaction, which holds the
/// database's write lock, so nothing can change between the check and the write (see
/// `chats.rs` and `messages.rs`), and a taken username is an `on conflict do nothing`
/// that inserts nothing (`users.rs`). A constraint violation that still reaches this
/// point is a bug, reported as unavailable. No connection in time (the writer's queue
/// too long, a store closing) is [`StoreError::Unreachable`]: retrying may succeed.
pub(crate) fn store_error(err: sqlx::Error) -> StoreError {
    match err {
        sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed => StoreError::unreachable(err),
        err => StoreError::unavailable(err),
    }
}

/// A stored row that no longer passes the domain's validation (a rule was tightened, or
/// the row was written by hand). Reported as [`StoreError::Unavailable`], never a panic.
#[derive(Debug, thiserror::Error)]
#[error("a stored {what} fails validation")]
pub(crate) struct InvalidRow {
    /// Which kind of row it was.
    what: &'static str,
    /// The rule it breaks.
    #[source]
    source: InvalidInput,
}

/// Wraps a validation failure of a stored `what` as [`StoreError::Unavailable`].
pub(crate) fn invalid_row(what: &'static str) -> impl FnOnce(InvalidInput) -> StoreError {
    move |source| StoreError::unavailable(InvalidRow { what, source })
}

/// A stored timestamp (in microseconds) outside the range of [`time::OffsetDateTime`].
#[derive(Debug, thiserror::Error)]
#[error("a stored timestamp ({0} µs since the epoch) is out of range")]
pub(crate) struct InvalidTimestamp(pub(crate) i64);
