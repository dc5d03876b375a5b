//! The path from "a change was stored" to "the sockets in the room hear of it". Every
//! announcement goes through the [`Delivery`] interface, so a later adapter can carry
//! it between server processes (over a broker) without the use cases noticing.

use std::sync::Arc;

use async_trait::async_trait;
use domain::ports::Notifier;
use domain::{ChatId, Message, UserId};
use serde::Serialize;
use wire::MessageView;
use wire::events::{ChatRef, MembersChanged, ToClient};

use crate::frame::Frame;
use crate::hub::Hub;

/// A change that the sockets of a chat's room must hear of.
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
    /// Users were removed or left: their sockets leave the room at once.
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

/// Carries room events to the sockets that must hear them.
#[async_trait]
pub trait Delivery: Send + Sync {
    /// Delivers `event`. Events of one chat are delivered in the order given.
    async fn deliver(&self, event: RoomEvent);
}

/// Delivery within this process: applies each event to the local [`Hub`].
pub struct LocalDelivery {
    hub: Arc<Hub>,
}

impl LocalDelivery {
    /// Delivers into `hub`.
    pub fn new(hub: Arc<Hub>) -> Self {
        Self { hub }
    }

    /// Applies `event` to the hub now (synchronously).
    pub fn apply(&self, event: &RoomEvent) {
        match event {
            RoomEvent::MessageCreated(message) => {
                if let Some(frame) = frame(ToClient::MessagesNew, &MessageView::from(message)) {
                    self.hub.broadcast(message.chat_id, &frame);
                }
            }
            RoomEvent::MembersAdded { chat, users } => {
                if let Some(frame) =
                    frame(ToClient::ChatsMemberAdded, &members_payload(*chat, users))
                {
                    self.hub.broadcast(*chat, &frame);
                }
            }
            RoomEvent::MembersRemoved { chat, users } => {
                if let Some(frame) =
                    frame(ToClient::ChatsMemberRemoved, &members_payload(*chat, users))
                {
                    self.hub.remove_users(*chat, users, &frame);
                }
            }
            RoomEvent::ChatDeleted { chat } => {
                if let Some(frame) = frame(
                    ToClient::ChatsDeleted,
                    &ChatRef {
                        chat_id: chat.to_string(),
                    },
                ) {
                    self.hub.close_room(*chat, &frame);
                }
            }
        }
    }
}

#[async_trait]
impl Delivery for LocalDelivery {
    async fn deliver(&self, event: RoomEvent) {
        self.apply(&event);
    }
}

fn members_payload(chat: ChatId, users: &[UserId]) -> MembersChanged {
    MembersChanged {
        chat_id: chat.to_string(),
        user_ids: users.iter().map(ToString::to_string).collect(),
    }
}

fn frame<T: Serialize>(event: ToClient, data: &T) -> Option<Arc<Frame>> {
    Frame::new(event.name(), data)
        .map_err(|err| tracing::error!(%err, %event, "cannot serialise a room event"))
        .ok()
}

/// The domain's [`Notifier`], implemented by handing each change to a [`Delivery`].
pub struct RealtimeNotifier {
    delivery: Arc<dyn Delivery>,
}

impl RealtimeNotifier {
    /// Announces through `delivery`.
    pub fn new(delivery: Arc<dyn Delivery>) -> Self {
        Self { delivery }
    }
}

#[async_trait]
impl Notifier for RealtimeNotifier {
    async fn members_added(&self, chat: ChatId, users: &[UserId]) {
        self.delivery
            .deliver(RoomEvent::MembersAdded {
                chat,
                users: users.to_vec(),
            })
            .await;
    }

    async fn members_removed(&self, chat: ChatId, users: &[UserId]) {
        self.delivery
            .deliver(RoomEvent::MembersRemoved {
                chat,
                users: users.to_vec(),
            })
            .await;
    }

    async fn chat_deleted(&self, chat: ChatId) {
        self.delivery.deliver(RoomEvent::ChatDeleted { chat }).await;
    }

    async fn message_created(&self, message: &Message) {
        self.delivery
            .deliver(RoomEvent::MessageCreated(message.clone()))
            .await;
    }
}
