//! The domain's [`RoomEvents`] port, delivered to this process's own sockets: each
//! event becomes one [`Frame`] (serialised once, shared by every receiver) applied to
//! the [`Hub`]. A cluster's delivery (adapter-redis) applies what it hears through this
//! too.

use std::sync::Arc;

use async_trait::async_trait;
use domain::RoomEvent;
use domain::ports::RoomEvents;

use crate::frame::Frame;
use crate::hub::Hub;

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
        let (name, payload) = wire::events::room_event(event);
        let frame = match Frame::new(name, &payload) {
            Ok(frame) => frame,
            Err(err) => {
                tracing::error!(%err, event = %name, "cannot serialise a room event");
                return;
            }
        };
        match event {
            RoomEvent::MembersRemoved { chat, users } => {
                self.hub.remove_users(*chat, users, &frame);
            }
            RoomEvent::ChatDeleted { chat } => self.hub.close_room(*chat, &frame),
            RoomEvent::MessageCreated(_) | RoomEvent::MembersAdded { .. } => {
                self.hub.broadcast(event.chat(), &frame, event.left_out());
            }
        }
    }
}

#[async_trait]
impl RoomEvents for LocalDelivery {
    async fn publish(&self, event: RoomEvent) {
        self.apply(&event);
    }
}
