//! This adapter's errors, and the one place where a sqlx error becomes a [`StoreError`].

use domain::{InvalidInput, StoreError};
use sqlx::error::ErrorKind;

/// Why the store could not be opened, migrated or reached. Messages never contain the
/// connection URL, which may hold a password.
#[derive(Debug, thiserror::Error)]
pub enum PostgresError {
    /// The connection URL could not be parsed.
    #[error("the PostgreSQL connection URL is invalid")]
    InvalidUrl(#[source] sqlx::Error),
    /// No connection could be opened: the server is unreachable (within the connect
    /// timeout), refused the credentials, or has no such database.
    #[error("could not connect to PostgreSQL (is it running, and is the URL right?)")]
    Connect(#[source] sqlx::Error),
    /// Applying the migrations failed.
    #[error("could not apply the PostgreSQL migrations")]
    Migrate(#[source] sqlx::migrate::MigrateError),
    /// Filling the usernames' skeletons of rows from before migration 0002 failed.
    #[error("could not give existing usernames their skeletons")]
    Backfill(#[source] sqlx::Error),
    /// The server did not answer a trivial query.
    #[error("PostgreSQL did not answer")]
    Ping(#[source] sqlx::Error),
}

/// The unique indexes that make usernames unique: on the folded username (without
/// regard to case, `0001_init.sql`) and on its confusable skeleton (look-alikes,
/// `0002_username_skeleton.sql`).
const USERNAME_INDEXES: &[&str] = &["users_username_key_key", "users_username_skeleton_key"];

/// Foreign keys that reference `users`: violating one means a user does not exist.
const USER_FOREIGN_KEYS: &[&str] = &[
    "chats_owner_id_fkey",
    "chat_members_user_id_fkey",
    "messages_sender_id_fkey",
];

/// Foreign keys that reference `chats`: violating one means the chat is gone.
const CHAT_FOREIGN_KEYS: &[&str] = &["chat_members_chat_id_fkey", "messages_chat_id_fkey"];

/// Maps a failed query to the port's error: the constraints that encode business rules
/// become their business variants; a database that cannot be reached in time is
/// [`StoreError::Unreachable`] (see [`is_unreachable`]); everything else is
/// [`StoreError::Unavailable`].
pub(crate) fn store_error(err: sqlx::Error) -> StoreError {
    if is_unreachable(&err) {
        return StoreError::unreachable(err);
    }
    if let Some(db) = err.as_database_error() {
        let constraint = db.constraint().unwrap_or_default();
        match db.kind() {
            ErrorKind::UniqueViolation if USERNAME_INDEXES.contains(&constraint) => {
                return StoreError::UsernameTaken;
            }
            ErrorKind::ForeignKeyViolation if USER_FOREIGN_KEYS.contains(&constraint) => {
                return StoreError::UnknownUser;
            }
            ErrorKind::ForeignKeyViolation if CHAT_FOREIGN_KEYS.contains(&constraint) => {
                return StoreError::ChatGone;
            }
            _ => {}
        }
    }
    StoreError::unavailable(err)
}

/// Whether `err` says the database cannot be reached right now, rather than that a
/// query is wrong: no connection within the timeout (a server down, frozen or cut
/// off), a connection lost, or the server refusing connections or shutting down.
pub(crate) fn is_unreachable(err: &sqlx::Error) -> bool {
    match err {
        sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Database(db) => db.code().is_some_and(|code| {
            // Class 08: connection exceptions; 57P01–57P03: the server is shutting
            // down, crashed or starting; 53300: too many connections; 55000: the
            // database does not accept connections (`allow_connections false`).
            code.starts_with("08")
                || matches!(
                    code.as_ref(),
                    "57P01" | "57P02" | "57P03" | "53300" | "55000"
                )
        }),
        _ => false,
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
