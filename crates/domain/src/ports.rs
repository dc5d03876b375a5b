//! The ports: what the application needs from the outside world. Adapters implement
//! them; the application holds them as `Arc<dyn Port>`.
//!
//! Each method's `# Errors` section is part of the contract an adapter must keep.

use std::pin::Pin;
use std::task::{Context, Poll};

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
    /// Queues a message for storing and returns once its place is fixed: it will be
    /// stored after every message queued before it and before every message queued
    /// after, whatever order their [`QueuedMessage`]s are awaited in. Awaiting the
    /// returned [`QueuedMessage`] stores it (as [`Self::insert`] describes) and answers
    /// once it is committed; dropping it unawaited may withdraw the message.
    ///
    /// This lets a caller keep one chat's order while several of its messages are
    /// being committed at once.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] when the message cannot be queued; the store's
    /// answers about the message itself come from the [`QueuedMessage`].
    async fn enqueue(&self, message: &NewMessage) -> Result<QueuedMessage, StoreError>;

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
    async fn insert(&self, message: &NewMessage) -> InsertAnswer {
        self.enqueue(message).await?.await
    }

    /// One page of a chat's history, newest first.
    ///
    /// # Errors
    /// MUST return [`StoreError::UnknownCursor`] when `page.before` names no message of
    /// this chat.
    async fn history(&self, chat: ChatId, page: HistoryPage) -> Result<Vec<Message>, StoreError>;
}

/// A message queued by [`MessageRepository::enqueue`]: its place among its chat's
/// messages is fixed, and awaiting it gives what [`MessageRepository::insert`] gives once
/// the message is committed.
#[must_use = "a queued message whose answer nobody awaits may be withdrawn"]
pub struct QueuedMessage {
    committed: Pin<Box<dyn Future<Output = InsertAnswer> + Send>>,
}

/// What storing a message answers: the message, and whether it is new.
pub type InsertAnswer = Result<(Message, bool), StoreError>;

impl QueuedMessage {
    /// A queued message whose answer `committed` gives.
    pub fn new(committed: impl Future<Output = InsertAnswer> + Send + 'static) -> Self {
        Self {
            committed: Box::pin(committed),
        }
    }

    /// A message whose answer is known already (a store that commits as it queues).
    pub fn answered(answer: InsertAnswer) -> Self {
        Self::new(std::future::ready(answer))
    }
}

impl Future for QueuedMessage {
    type Output = InsertAnswer;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.committed.as_mut().poll(cx)
    }
}

impl std::fmt::Debug for QueuedMessage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QueuedMessage").finish_non_exhaustive()
    }
}

/// What a store found, after its insert, about a message the insert left out; for the
/// stores that check a batch of messages in one statement and then explain each one
/// refused. [`LeftOut::answer`] is what [`MessageRepository::insert`] answers for it,
/// in the order its contract gives.
#[derive(Debug)]
pub struct LeftOut {
    /// Whether the chat exists.
    pub chat_exists: bool,
    /// Whether the sender exists.
    pub sender_exists: bool,
    /// Whether the sender is a member of the chat.
    pub sender_is_member: bool,
    /// The message the sender stored earlier with the same client id, if any (or why
    /// it could not be read).
    pub first: Option<Result<Message, StoreError>>,
}

impl LeftOut {
    /// `ChatGone`, `UnknownUser` or `NotMember`, in this order; else the first message
    /// with the same client id, with `false`.
    pub fn answer(self) -> InsertAnswer {
        if !self.chat_exists {
            return Err(StoreError::ChatGone);
        }
        if !self.sender_exists {
            return Err(StoreError::UnknownUser);
        }
        match self.first {
            Some(first) if self.sender_is_member => first.map(|message| (message, false)),
            // Not a member when the insert ran. One found a member without a repeated
            // client id was added after the insert (a store that explains after its
            // commit): a repeat is the only other reason to be left out, and stored
            // messages go only with their chat or sender.
            _ => Err(StoreError::NotMember),
        }
    }
}

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

/// Orders the sending of a chat's messages across every server process that shares the
/// store. A sender holds the chat's turn from storing a message until it has been handed
/// to delivery, so that every socket, on whichever node, hears a chat's messages in the
/// order they were stored. A single process orders its own senders by itself; this port
/// adds the order between processes (a cluster).
#[cfg_attr(feature = "mocks", mockall::automock)]
#[async_trait]
pub trait SendOrder: Send + Sync {
    /// Waits for `chat`'s turn among all processes. The turn is held until the returned
    /// [`ChatTurn`] is dropped.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] when the shared lock cannot be taken.
    async fn turn(&self, chat: ChatId) -> Result<ChatTurn, StoreError>;
}

/// A chat's turn to send, taken from a [`SendOrder`]; dropping it lets the next sender
/// (on any node) go.
pub struct ChatTurn {
    _held: Option<Box<dyn Send + Sync>>,
}

impl ChatTurn {
    /// A turn held by `guard`, which releases it when dropped.
    pub fn held_by(guard: impl Send + Sync + 'static) -> Self {
        Self {
            _held: Some(Box::new(guard)),
        }
    }

    /// A turn that holds nothing: the order of a single process needs no more.
    #[must_use]
    pub fn unshared() -> Self {
        Self { _held: None }
    }
}

impl std::fmt::Debug for ChatTurn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChatTurn").finish_non_exhaustive()
    }
}

/// The [`SendOrder`] of a server that runs alone: there is no other process to wait for.
#[derive(Debug, Default, Clone, Copy)]
pub struct SingleProcess;

#[async_trait]
impl SendOrder for SingleProcess {
    async fn turn(&self, _chat: ChatId) -> Result<ChatTurn, StoreError> {
        Ok(ChatTurn::unshared())
    }
}

#[cfg(test)]
mod tests {
    use time::OffsetDateTime;
    use uuid::Uuid;

    use super::*;
    use crate::ids::MessageId;
    use crate::message::MessageContent;

    fn first() -> Message {
        Message {
            id: MessageId::from_uuid(Uuid::from_u128(1)),
            chat_id: ChatId::from_uuid(Uuid::from_u128(2)),
            sender_id: UserId::from_uuid(Uuid::from_u128(3)),
            content: MessageContent::parse("hi").unwrap(),
            client_msg_id: None,
            created_at: OffsetDateTime::UNIX_EPOCH,
        }
    }

    fn left_out(chat: bool, sender: bool, member: bool, repeat: bool) -> InsertAnswer {
        LeftOut {
            chat_exists: chat,
            sender_exists: sender,
            sender_is_member: member,
            first: repeat.then(|| Ok(first())),
        }
        .answer()
    }

    #[test]
    fn a_left_out_message_is_answered_in_the_contract_s_order() {
        for (member, repeat) in [(false, false), (false, true), (true, false), (true, true)] {
            assert!(matches!(
                left_out(false, false, member, repeat),
                Err(StoreError::ChatGone)
            ));
            assert!(matches!(
                left_out(true, false, member, repeat),
                Err(StoreError::UnknownUser)
            ));
        }
        assert!(matches!(
            left_out(true, true, false, true),
            Err(StoreError::NotMember)
        ));
        assert!(matches!(
            left_out(true, true, false, false),
            Err(StoreError::NotMember)
        ));
        assert!(matches!(
            left_out(true, true, true, false),
            Err(StoreError::NotMember)
        ));
        assert_eq!(left_out(true, true, true, true).unwrap(), (first(), false));
    }

    #[test]
    fn an_unreadable_first_message_is_the_member_s_answer() {
        let answer = LeftOut {
            chat_exists: true,
            sender_exists: true,
            sender_is_member: true,
            first: Some(Err(StoreError::unavailable(std::io::Error::other(
                "bad row",
            )))),
        }
        .answer();
        assert!(matches!(answer, Err(StoreError::Unavailable(_))));
    }
}
