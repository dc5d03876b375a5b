//! Catching up with the database after missed room events. A cluster node that could
//! not hear the other nodes for a while (its broker was away) may have missed removals
//! and deletions made there, and so still hold removed users' sockets in rooms they
//! must not hear. [`RoomAudit::run`] asks the database who is still in each room of this
//! node and applies what was missed, with the same events a live change would send.

use std::collections::HashSet;
use std::sync::Arc;

use app::App;
use domain::{ChatId, RoomEvent, UserId};

use crate::delivery::LocalDelivery;
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
            let event = match self.app.chats.member_ids(chat).await {
                Ok(members) => match correction(chat, present, members.as_ref()) {
                    Some(event) => event,
                    None => continue,
                },
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

/// What a room of `chat` that holds `present` missed, given the chat's `members` now
/// (`None`: the chat is gone): the event a live change would have sent, if any.
fn correction(
    chat: ChatId,
    present: Vec<UserId>,
    members: Option<&HashSet<UserId>>,
) -> Option<RoomEvent> {
    let Some(members) = members else {
        return Some(RoomEvent::ChatDeleted { chat });
    };
    let users: Vec<UserId> = present
        .into_iter()
        .filter(|user| !members.contains(user))
        .collect();
    (!users.is_empty()).then_some(RoomEvent::MembersRemoved { chat, users })
}

#[cfg(test)]
mod tests {
    use uuid::Uuid;

    use super::*;

    fn user(n: u128) -> UserId {
        UserId::from_uuid(Uuid::from_u128(n))
    }

    #[test]
    fn those_in_a_room_but_no_longer_in_the_chat_are_removed_from_it() {
        let chat = ChatId::from_uuid(Uuid::from_u128(9));
        let members: HashSet<UserId> = [user(1), user(2)].into_iter().collect();
        assert_eq!(
            correction(
                chat,
                vec![user(1), user(3), user(2), user(4)],
                Some(&members)
            ),
            Some(RoomEvent::MembersRemoved {
                chat,
                users: vec![user(3), user(4)]
            })
        );
        assert_eq!(correction(chat, vec![user(2)], Some(&members)), None);
        // A deleted chat: the whole room goes.
        assert_eq!(
            correction(chat, vec![user(1)], None),
            Some(RoomEvent::ChatDeleted { chat })
        );
    }
}
