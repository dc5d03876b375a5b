//! The ports the use cases add to the domain's: how sending is pipelined and ordered.
//! They are the application's, not the business's: the domain's
//! [`MessageRepository`](domain::ports::MessageRepository) says what storing a message
//! means, these say how a server keeps several sends in flight and in order. Stores
//! implement them ([`MessageQueue`] on every store, [`SendOrder`] on the one a cluster
//! shares).

use std::pin::Pin;

use async_trait::async_trait;
use domain::ports::InsertAnswer;
use domain::{ChatId, NewMessage, StoreError};

/// A message queued by [`MessageQueue::enqueue`]: its place among its chat's messages is
/// fixed, and awaiting it gives what
/// [`MessageRepository::insert`](domain::ports::MessageRepository::insert) gives once the
/// message is committed. Dropping it unawaited may withdraw the message.
pub type QueuedMessage = Pin<Box<dyn Future<Output = InsertAnswer> + Send>>;

/// Storing messages with several of them in flight.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait]
pub trait MessageQueue: Send + Sync {
    /// Queues a message for storing and returns once its place is fixed: it will be
    /// stored after every message queued before it and before every message queued
    /// after, whatever order their [`QueuedMessage`]s are awaited in. Awaiting the
    /// returned [`QueuedMessage`] stores it (as
    /// [`MessageRepository::insert`](domain::ports::MessageRepository::insert) describes,
    /// errors included) and answers once it is committed.
    ///
    /// This lets a caller keep one chat's order while several of its messages are
    /// being committed at once.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] when the message cannot be queued; the store's
    /// answers about the message itself come from the [`QueuedMessage`].
    async fn enqueue(&self, message: &NewMessage) -> Result<QueuedMessage, StoreError>;
}

/// Orders the sending of a chat's messages across every server process that shares the
/// store. A sender holds the chat's turn from storing a message until it has been handed
/// to delivery, so that every socket, on whichever node, hears a chat's messages in the
/// order they were stored. A single process orders its own senders by itself; this port
/// adds the order between processes (a cluster).
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
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
