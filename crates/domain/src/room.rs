//! What the people in a chat's room hear, live: every event a room can hear, stored or
//! not, in one type. The application raises them through
//! [`RoomEvents`](crate::ports::RoomEvents); adapters carry them to sockets, on this
//! process or every process of a cluster.

use crate::ids::{ChatId, UserId};
use crate::message::Message;

/// An event for the sockets in one chat's room.
///
/// Adding an event a room can hear is one variant here, its payload and name in the
/// wire crate, and the use case that raises it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RoomEvent {
    /// A message was stored.
    MessageCreated(Message),
    /// Users joined the chat.
    MembersAdded {
        /// The chat.
        chat: ChatId,
        /// Who joined.
        users: Vec<UserId>,
    },
    /// Users were removed or left: their sockets leave the room at once, after hearing
    /// it.
    MembersRemoved {
        /// The chat.
        chat: ChatId,
        /// Who went.
        users: Vec<UserId>,
    },
    /// The chat was deleted: its room is told, then emptied.
    ChatDeleted {
        /// The chat.
        chat: ChatId,
    },
}

impl RoomEvent {
    /// The chat whose room hears it.
    #[must_use]
    pub fn chat(&self) -> ChatId {
        match self {
            Self::MessageCreated(message) => message.chat_id,
            Self::MembersAdded { chat, .. }
            | Self::MembersRemoved { chat, .. }
            | Self::ChatDeleted { chat } => *chat,
        }
    }

    /// The user whose own sockets must not hear it: someone is not told what they did
    /// themselves when their other devices need not know (a typing indicator will be;
    /// a stored message is not, since every device of its sender shows it).
    #[must_use]
    pub fn left_out(&self) -> Option<UserId> {
        match self {
            Self::MessageCreated(_)
            | Self::MembersAdded { .. }
            | Self::MembersRemoved { .. }
            | Self::ChatDeleted { .. } => None,
        }
    }
}
