//! The ports of a bulk move: where the rows come from ([`Source`]), where they go
//! ([`Sink`]) and who watches it happen ([`Progress`]), with the rows that cross them.

use async_trait::async_trait;
use domain::{Chat, ChatId, Message, StoreError, UserCredentials, UserId};
use futures_util::stream::BoxStream;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::problems::Problem;

/// A user as the source keeps it: nothing is validated yet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceUser {
    /// Its id, kept.
    pub id: Uuid,
    /// Its username, as the source allowed it.
    pub username: String,
    /// Its password hash, a PHC string, copied as it is.
    pub password_hash: String,
    /// When it registered.
    pub created_at: OffsetDateTime,
}

/// A chat as the source keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceChat {
    /// Its id, kept.
    pub id: Uuid,
    /// Its owner.
    pub owner_id: Uuid,
    /// Its name, as the source allowed it.
    pub name: String,
    /// When it was made.
    pub created_at: OffsetDateTime,
}

/// A member of a chat as the source keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceMember {
    /// The chat.
    pub chat_id: Uuid,
    /// The member.
    pub user_id: Uuid,
    /// When they joined.
    pub joined_at: OffsetDateTime,
}

/// A message as the source keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceMessage {
    /// Its id, kept.
    pub id: Uuid,
    /// Its chat.
    pub chat_id: Uuid,
    /// Its sender.
    pub sender_id: Uuid,
    /// Its text, as the source allowed it.
    pub content: String,
    /// The sender's idempotency key (our stores only).
    pub client_msg_id: Option<String>,
    /// When it was stored.
    pub created_at: OffsetDateTime,
}

/// How many rows of each kind a source holds, for the progress display.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SourceCounts {
    /// Users.
    pub users: u64,
    /// Chats.
    pub chats: u64,
    /// Memberships.
    pub members: u64,
    /// Messages.
    pub messages: u64,
}

/// Why a source could not be read.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// The source is not a database of the expected shape (a missing table or column);
    /// the text says what is missing and what to do.
    #[error("{0}")]
    Unsupported(String),
    /// A row cannot be read as the expected kind (an id that is no UUID): the import
    /// refuses, naming the row.
    #[error("{row}: {why}")]
    Malformed {
        /// The row, e.g. `User 42` (its table and id).
        row: String,
        /// What is wrong with it.
        why: String,
    },
    /// The database could not be reached or failed.
    #[error("reading the source failed")]
    Unavailable(#[source] Box<dyn std::error::Error + Send + Sync>),
}

impl SourceError {
    /// Wraps any failure of the source as [`SourceError::Unavailable`].
    pub fn unavailable(source: impl std::error::Error + Send + Sync + 'static) -> Self {
        Self::Unavailable(Box::new(source))
    }
}

/// A database to move from: the old Nest.js deployment's, or one of our stores.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait]
pub trait Source: Send + Sync {
    /// How many rows of each kind it holds.
    ///
    /// # Errors
    /// [`SourceError`] when it cannot be read.
    async fn counts(&self) -> Result<SourceCounts, SourceError>;

    /// Every user, ordered by registration time, then id.
    ///
    /// # Errors
    /// [`SourceError`] when it cannot be read, or a row is malformed.
    async fn users(&self) -> Result<Vec<SourceUser>, SourceError>;

    /// Every chat, ordered by creation time, then id.
    ///
    /// # Errors
    /// [`SourceError`] when it cannot be read, or a row is malformed.
    async fn chats(&self) -> Result<Vec<SourceChat>, SourceError>;

    /// Every membership, each chat's in order of joining (chats in any order).
    ///
    /// # Errors
    /// [`SourceError`] when it cannot be read, or a row is malformed.
    async fn members(&self) -> Result<Vec<SourceMember>, SourceError>;

    /// Every message, oldest first: within a chat, the order its history has. Streamed,
    /// since there may be millions.
    fn messages(&self) -> BoxStream<'_, Result<SourceMessage, SourceError>>;

    /// Whether the order of messages that share a timestamp is only their id's (the
    /// old database keeps no order of its own), rather than the order they were stored.
    fn ties_ordered_by_id(&self) -> bool;
}

/// A membership to store, in the order of joining.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Membership {
    /// The chat.
    pub chat_id: ChatId,
    /// The member.
    pub user_id: UserId,
    /// When they joined.
    pub joined_at: OffsetDateTime,
}

/// A store to move into, in bulk. Every `load_*` stores the rows given whose key is
/// not stored yet (an id; a chat and user for a membership), in the order given, after
/// every row stored before, and leaves the others as they are, so that loading the
/// same rows twice stores them once. Each call is one transaction: all of it or none.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait]
pub trait Sink: Send + Sync {
    /// Of these username keys ([`domain::Username::folded`]), those a stored user
    /// holds, with that user's id.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] only.
    async fn username_owners(&self, keys: &[String]) -> Result<Vec<(String, UserId)>, StoreError>;

    /// Stores users (id, username, hash and time kept); returns how many were new.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] when the store fails, also when a username is held
    /// by another stored user (nothing of the call is stored then).
    async fn load_users(&self, users: &[UserCredentials]) -> Result<u64, StoreError>;

    /// Stores chats; returns how many were new.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] when the store fails or an owner is not stored.
    async fn load_chats(&self, chats: &[Chat]) -> Result<u64, StoreError>;

    /// Stores memberships; returns how many were new.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] when the store fails or a chat or user is not stored.
    async fn load_members(&self, members: &[Membership]) -> Result<u64, StoreError>;

    /// Stores messages (ids, client ids and times kept), each chat's after those it
    /// holds already; returns how many were new.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] when the store fails or a chat or sender is not
    /// stored.
    async fn load_messages(&self, messages: &[Message]) -> Result<u64, StoreError>;
}

/// The kinds of rows, in the order they are moved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// Users.
    Users,
    /// Chats.
    Chats,
    /// Memberships.
    Members,
    /// Messages.
    Messages,
}

impl Stage {
    /// The stage's name, plural, for a display.
    pub fn name(self) -> &'static str {
        match self {
            Self::Users => "users",
            Self::Chats => "chats",
            Self::Members => "members",
            Self::Messages => "messages",
        }
    }
}

/// Watches a move: a progress bar on a terminal, plain lines elsewhere, nothing in tests.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
pub trait Progress: Send + Sync {
    /// `stage` begins, with about `total` source rows to go through.
    fn start(&self, stage: Stage, total: u64);
    /// `rows` more source rows of the current stage were gone through.
    fn advance(&self, rows: u64);
    /// The current stage is done.
    fn finish(&self);
    /// A row breaks one of our rules; `problem` says which and what was done.
    fn problem(&self, problem: &Problem);
}

/// A [`Progress`] that shows nothing.
#[derive(Debug, Default, Clone, Copy)]
pub struct Silent;

impl Progress for Silent {
    fn start(&self, _stage: Stage, _total: u64) {}
    fn advance(&self, _rows: u64) {}
    fn finish(&self) {}
    fn problem(&self, _problem: &Problem) {}
}
