//! Catching up with the database after missed room events. A cluster node that could
//! not hear the other nodes for a while (its broker was away) may have missed removals
//! and deletions made there, and so still hold removed users' sockets in rooms they
//! must not hear. [`RoomAudit::run`] asks the database who is still in each room of this
//! node and applies what was missed, with the same events a live change would send.

use std::sync::Arc;

use app::App;
use app::chats::Departed;

use crate::delivery::{LocalDelivery, RoomEvent};
use crate::hub::{CloseReason, Hub};

/// Re-checks this node's rooms against the database.
#[derive(Clone)]
pub struct RoomAudit {
    app: App,
    hub: Arc<Hub>,
    local: Arc<LocalDelivery>,
}

impl RoomAudit {
    pub(crate) fn new(app: App, hub: Arc<Hub>, local: Arc<LocalDelivery>) -> Self {
        Self { app, hub, local }
    }

    /// Checks every occupied room once; returns how many needed a correction. A room
    /// whose check fails (the database is away too) is left as it is until next time.
    pub async fn run(&self) -> usize {
        let mut corrected = 0;
        for (chat, present) in self.hub.occupancy() {
            let event = match self.app.chats.departed_from_room(chat, &present).await {
                Ok(Departed::ChatGone) => RoomEvent::ChatDeleted { chat },
                Ok(Departed::Users(users)) if !users.is_empty() => {
                    RoomEvent::MembersRemoved { chat, users }
                }
                Ok(Departed::Users(_)) => continue,
                Err(err) => {
                    tracing::warn!(%err, chat_id = %chat, "cannot check a room against the database");
                    continue;
                }
            };
            self.local.apply(&event);
            corrected += 1;
        }
        if corrected > 0 {
            tracing::info!(corrected, "applied room changes this node had missed");
        }
        corrected
    }

    /// Closes every socket of this node with [`CloseReason::CatchUp`], once the node
    /// hears the other nodes again after missing their events: each client reconnects
    /// and fetches what it missed (history, or the resume of `chats:connect`), which
    /// no check of the rooms could give it.
    pub fn ask_everyone_to_catch_up(&self) {
        let sockets = self.hub.connections();
        if sockets > 0 {
            tracing::info!(
                sockets,
                "closing every socket so that its client catches up on the events this node missed"
            );
        }
        self.hub.close_all(CloseReason::CatchUp);
    }
}
