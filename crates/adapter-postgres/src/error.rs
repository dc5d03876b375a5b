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
    /// The server did not answer a trivial query.
    #[error("PostgreSQL did not answer")]
    Ping(#[source] sqlx::Error),
}

/// The unique index on the folded username that makes usernames unique without regard
/// to case (see the migration `0001_init.sql`).
const USERNAME_INDEX: &str = "users_username_key_key";

/// Foreign keys that reference `users`: violating one means a user does not exist.
const USER_FOREIGN_KEYS: &[&str] = &[
    "chats_owner_id_fkey",
    "chat_members_user_id_fkey",
    "messages_sender_id_fkey",
];

/// Foreign keys that reference `chats`: violating one means the chat is gone.
const CHAT_FOREIGN_KEYS: &[&str] = &["chat_members_chat_id_fkey", "messages_chat_id_fkey"];

/// Maps a failed query to the port's error: the constraints that encode business rules
/// become their business variants, everything else is [`StoreError::Unavailable`].
pub(crate) fn store_error(err: sqlx::Error) -> StoreError {
    if let Some(db) = err.as_database_error() {
        let constraint = db.constraint().unwrap_or_default();
        match db.kind() {
            ErrorKind::UniqueViolation if constraint == USERNAME_INDEX => {
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

/// The store answered something that its own schema rules out.
#[derive(Debug, thiserror::Error)]
#[error("PostgreSQL answered inconsistently: {0}")]
pub(crate) struct Inconsistent(pub(crate) &'static str);
