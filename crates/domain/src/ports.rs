//! The ports: what the application needs from the outside world. Adapters implement
//! them; the application holds them as `Arc<dyn Port>`.
//!
//! Each method's `# Errors` section is part of the contract an adapter must keep.

use async_trait::async_trait;

use crate::chat::{Chat, ChatMember, ChatName};
use crate::error::StoreError;
use crate::ids::{ChatId, UserId};
use crate::message::{Message, NewMessage};
use crate::paging::{HistoryPage, UserPage};
use crate::room::RoomEvent;
use crate::user::{Password, PasswordHash, User, UserCredentials, Username};

/// Storage of users.
#[cfg_attr(feature = "mocks", mockall::automock)]
#[async_trait]
pub trait UserRepository: Send + Sync {
    /// Stores a new user with a fresh id, keeping [`Username::folded`] and
    /// [`Username::skeleton`] beside the name.
    ///
    /// # Errors
    /// MUST return [`StoreError::UsernameTaken`] when a user with the same
    /// [`Username::folded`] key exists (the name without regard to case or Unicode
    /// compatibility form), or with the same [`Username::skeleton`] (a look-alike).
    async fn create(
        &self,
        username: &Username,
        password_hash: &PasswordHash,
    ) -> Result<User, StoreError>;

    /// Finds a user and their password hash by username, without regard to case: the
    /// user whose stored key is `username`'s [`Username::folded_before_normalisation`]
    /// (a user registered before usernames were normalised, whose key is that), else
    /// the one whose key is its [`Username::folded`].
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] only.
    async fn find_credentials(
        &self,
        username: &Username,
    ) -> Result<Option<UserCredentials>, StoreError>;

    /// Whether a user with this id exists.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] only.
    async fn exists(&self, id: UserId) -> Result<bool, StoreError>;

    /// Of `ids`, those that name no user, in the order given.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] only.
    async fn missing(&self, ids: &[UserId]) -> Result<Vec<UserId>, StoreError>;

    /// One page of all users, ordered by registration time, then id.
    ///
    /// # Errors
    /// MUST return [`StoreError::UnknownCursor`] when `page.after` names no user.
    async fn list(&self, page: UserPage) -> Result<Vec<User>, StoreError>;
}

/// Storage of chats and their membership.
#[cfg_attr(feature = "mocks", mockall::automock)]
#[async_trait]
pub trait ChatRepository: Send + Sync {
    /// Creates a chat owned by `owner`, with the owner as first member and then each of
    /// `members` (duplicates and the owner's own id ignored), all in one transaction.
    ///
    /// # Errors
    /// MUST return [`StoreError::UnknownUser`] when the owner or a member does not exist;
    /// nothing is stored then.
    async fn create(
        &self,
        name: &ChatName,
        owner: UserId,
        members: &[UserId],
    ) -> Result<Chat, StoreError>;

    /// The chat with this id.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] only.
    async fn find(&self, id: ChatId) -> Result<Option<Chat>, StoreError>;

    /// The chat with this id and whether `user` is one of its members, in one look-up:
    /// the access check most chat operations start with.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] only.
    async fn find_with_member(
        &self,
        id: ChatId,
        user: UserId,
    ) -> Result<Option<(Chat, bool)>, StoreError>;

    /// The chats `user` is a member of, newest first.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] only.
    async fn list_for_member(&self, user: UserId) -> Result<Vec<Chat>, StoreError>;

    /// Of `chats`, those `user` is not a member of (or that do not exist), in the order given.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] only.
    async fn not_member_of(
        &self,
        user: UserId,
        chats: &[ChatId],
    ) -> Result<Vec<ChatId>, StoreError>;

    /// The members of `chat`, in order of joining.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] only.
    async fn members(&self, chat: ChatId) -> Result<Vec<ChatMember>, StoreError>;

    /// Adds `users` to `chat`, ignoring those already in it; returns those newly added.
    ///
    /// # Errors
    /// MUST return [`StoreError::UnknownUser`] when a user does not exist and
    /// [`StoreError::ChatGone`] when the chat does not; nothing is added then.
    async fn add_members(&self, chat: ChatId, users: &[UserId]) -> Result<Vec<UserId>, StoreError>;

    /// Removes `users` from `chat`, ignoring those not in it; returns those removed.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] only.
    async fn remove_members(
        &self,
        chat: ChatId,
        users: &[UserId],
    ) -> Result<Vec<UserId>, StoreError>;

    /// Deletes the chat with its members and messages, in one transaction. Returns
    /// whether it existed.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] only.
    async fn delete(&self, chat: ChatId) -> Result<bool, StoreError>;
}

/// Storage of messages.
#[cfg_attr(feature = "mocks", mockall::automock)]
#[async_trait]
pub trait MessageRepository: Send + Sync {
    /// Stores a message with a fresh id, after every message already stored in its chat,
    /// if its sender is a member of the chat when it is stored: the store's own check is
    /// the access check of a send. When the sender already stored a message with the
    /// same `client_msg_id` in that chat, stores nothing and returns that first message
    /// with `false`.
    ///
    /// # Errors
    /// MUST return, checked in this order, [`StoreError::ChatGone`] when the chat does
    /// not exist, [`StoreError::UnknownUser`] when the sender does not, and
    /// [`StoreError::NotMember`] when the sender is not a member of the chat (also for a
    /// repeated `client_msg_id`).
    async fn insert(&self, message: &NewMessage) -> InsertAnswer;

    /// One page of a chat's history, newest first.
    ///
    /// # Errors
    /// MUST return [`StoreError::UnknownCursor`] when `page.before` names no message of
    /// this chat.
    async fn history(&self, chat: ChatId, page: HistoryPage) -> Result<Vec<Message>, StoreError>;
}

/// What storing a message answers: the message, and whether it is new.
pub type InsertAnswer = Result<(Message, bool), StoreError>;

/// Why hashing or verifying a password failed (never because it did not match).
#[derive(Debug, thiserror::Error)]
#[error("password hashing failed: {0}")]
pub struct HashError(pub String);

/// Password hashing, slow by design.
#[cfg_attr(feature = "mocks", mockall::automock)]
#[async_trait]
pub trait PasswordHasher: Send + Sync {
    /// Hashes a new password with a fresh salt.
    ///
    /// # Errors
    /// [`HashError`] when the hasher itself fails.
    async fn hash(&self, password: &Password) -> Result<PasswordHash, HashError>;

    /// Whether `password` matches `hash`. With no hash (an unknown user) it MUST spend
    /// about as long as a real check and answer `false`, so that timing does not tell
    /// whether a username exists.
    ///
    /// # Errors
    /// [`HashError`] when the hasher itself fails (a malformed stored hash).
    async fn verify(
        &self,
        password: &Password,
        hash: Option<PasswordHash>,
    ) -> Result<bool, HashError>;
}

/// What a valid access token says: whose it is, and until when it is good. A socket
/// opened with it is closed at `expires_at`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VerifiedToken {
    /// Its user.
    pub user: UserId,
    /// When it expires.
    pub expires_at: time::OffsetDateTime,
}

/// A signed access token and its lifetime.
#[derive(Clone, PartialEq, Eq)]
pub struct AccessToken {
    /// The encoded token.
    pub token: String,
    /// Seconds until it expires.
    pub expires_in: u64,
}

impl std::fmt::Debug for AccessToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccessToken")
            .field("expires_in", &self.expires_in)
            .finish_non_exhaustive()
    }
}

/// Why a token was refused or could not be issued.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// Expired, wrongly signed, malformed or otherwise not acceptable.
    #[error("invalid token")]
    Invalid,
    /// Signing failed.
    #[error("token signing failed: {0}")]
    Signing(String),
}

/// Issues and verifies access tokens.
#[cfg_attr(feature = "mocks", mockall::automock)]
pub trait TokenService: Send + Sync {
    /// Issues a token for `user`.
    ///
    /// # Errors
    /// [`TokenError::Signing`] when signing fails.
    fn issue(&self, user: UserId) -> Result<AccessToken, TokenError>;

    /// Verifies a token and returns whose it is and until when it is good. Says
    /// nothing of whether that user still exists.
    ///
    /// # Errors
    /// [`TokenError::Invalid`] for any token that is not acceptable (expired included).
    fn verify(&self, token: &str) -> Result<VerifiedToken, TokenError>;
}

/// Live delivery of [`RoomEvent`]s to the sockets in each chat's room, on every server
/// process. Called by the use cases after the change is stored (or, for an event that
/// is not stored, once it is allowed); delivery is best effort and never fails the use
/// case (a client that missed something recovers it from history).
#[cfg_attr(feature = "mocks", mockall::automock)]
#[async_trait]
pub trait RoomEvents: Send + Sync {
    /// Has `event` heard in its chat's room, except by the sockets of
    /// [`RoomEvent::left_out`]. Events of one chat published by one caller, one after
    /// the other, are heard in that order.
    async fn publish(&self, event: RoomEvent);
}
