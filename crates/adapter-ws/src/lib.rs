//! The real-time adapter. Until the Socket.IO and `/ws` endpoints land (the real-time
//! issue), it offers only [`NoSockets`], the notifier of a server that has no sockets to
//! notify, so that the use cases can already announce every change.

use async_trait::async_trait;
use domain::ports::Notifier;
use domain::{ChatId, Message, UserId};

/// The notifier of a server with no real-time endpoint: there is nobody to tell, so each
/// announcement is dropped. Clients read changes over REST.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoSockets;

#[async_trait]
impl Notifier for NoSockets {
    async fn members_added(&self, _chat: ChatId, _users: &[UserId]) {}
    async fn members_removed(&self, _chat: ChatId, _users: &[UserId]) {}
    async fn chat_deleted(&self, _chat: ChatId) {}
    async fn message_created(&self, _message: &Message) {}
}
