//! Per-chat ordering of "store, then announce", without storing one message at a time.
//!
//! Two messages sent to one chat at once could otherwise commit in one order and be
//! announced in the other. A sender therefore goes through its chat's lane in two
//! steps:
//! 1. **Queue**: [`ChatLanes::join`] waits for the chat's queueing turn, held only
//!    while the message is queued for storing (its place in the store's order is fixed
//!    then); [`Place::queued`] releases it and hands out a [`Ticket`] for that place.
//! 2. **Announce**: once its message is committed, the sender waits with
//!    [`Ticket::wait_for_predecessor`] until the message queued before has been
//!    announced (or given up), announces, and drops the ticket to let the next one go.
//!
//! So the messages of one chat are committed together (the store's group commit takes
//! them as one batch) and still reach every receiver in exactly the order they were
//! stored, the order history lists (reversed).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use domain::ChatId;
use tokio::sync::{Mutex as AsyncMutex, OwnedMutexGuard, oneshot};

/// A chat's lane: its queueing turn, guarding the signal the last ticket handed out
/// will give once it has announced.
type Lane = AsyncMutex<Option<oneshot::Receiver<()>>>;

/// The lanes of the chats being sent to. Chats nobody is sending to hold no memory.
#[derive(Default)]
pub(crate) struct ChatLanes {
    lanes: Mutex<HashMap<ChatId, Arc<Lane>>>,
}

/// Keeps a chat's lane alive while a sender is anywhere in it, and forgets the lane
/// when the last one leaves.
struct InLane {
    lane: Arc<Lane>,
    chat: ChatId,
    owner: Arc<ChatLanes>,
}

/// The chat's queueing turn: the next sender waits until it is released.
pub(crate) struct Place {
    turn: OwnedMutexGuard<Option<oneshot::Receiver<()>>>,
    in_lane: InLane,
}

/// A queued message's place in the order of announcements. Dropping it (announced or
/// not) lets the next message of the chat be announced.
pub(crate) struct Ticket {
    /// Closes when the message queued before has been announced or given up.
    predecessor: Option<oneshot::Receiver<()>>,
    /// Dropped with the ticket: tells the successor.
    _done: oneshot::Sender<()>,
    _in_lane: InLane,
}

impl ChatLanes {
    /// Waits for `chat`'s queueing turn.
    pub(crate) async fn join(self: &Arc<Self>, chat: ChatId) -> Place {
        let lane = {
            let mut lanes = self.lanes.lock().unwrap_or_else(PoisonError::into_inner);
            Arc::clone(lanes.entry(chat).or_default())
        };
        let in_lane = InLane {
            lane: Arc::clone(&lane),
            chat,
            owner: Arc::clone(self),
        };
        Place {
            turn: lane.lock_owned().await,
            in_lane,
        }
    }

    #[cfg(test)]
    fn tracked(&self) -> usize {
        self.lanes
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }
}

impl Place {
    /// The message is queued: releases the queueing turn to the next sender, and returns
    /// the message's ticket to be announced after the one queued before.
    pub(crate) fn queued(mut self) -> Ticket {
        let (done, announced) = oneshot::channel();
        let predecessor = self.turn.replace(announced);
        drop(self.turn);
        Ticket {
            predecessor,
            _done: done,
            _in_lane: self.in_lane,
        }
    }
}

impl Ticket {
    /// Waits until the message queued before this one has been announced or given up.
    pub(crate) async fn wait_for_predecessor(&mut self) {
        if let Some(predecessor) = self.predecessor.take() {
            // Either way (announced, or dropped unannounced) it is this one's turn.
            let _ = predecessor.await;
        }
    }
}

impl Drop for InLane {
    fn drop(&mut self) {
        let mut lanes = self
            .owner
            .lanes
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        // Only the map and this sender hold the lane: nobody else is in it, so forget
        // the chat. (A lane forgotten while a ticket were still out would let a new
        // sender announce before it; holding `InLane` in every ticket prevents that.)
        if Arc::strong_count(&self.lane) == 2
            && lanes
                .get(&self.chat)
                .is_some_and(|lane| Arc::ptr_eq(lane, &self.lane))
        {
            lanes.remove(&self.chat);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::test_support::chat_id;

    /// Whether `future` is still pending after the runtime had plenty of chances to
    /// finish it.
    async fn stays_pending<T>(future: &mut tokio::task::JoinHandle<T>) -> bool {
        tokio::time::timeout(Duration::from_millis(50), async {
            while !future.is_finished() {
                tokio::task::yield_now().await;
            }
        })
        .await
        .is_err()
    }

    #[tokio::test]
    async fn a_second_sender_queues_only_after_the_first_has_queued() {
        let lanes = Arc::new(ChatLanes::default());
        let first = lanes.join(chat_id(1)).await;
        let mut second = tokio::spawn({
            let lanes = Arc::clone(&lanes);
            async move { lanes.join(chat_id(1)).await.queued() }
        });
        assert!(
            stays_pending(&mut second).await,
            "two senders queued at once"
        );
        let _first = first.queued();
        assert!(second.await.is_ok());
    }

    #[tokio::test]
    async fn a_message_is_announced_only_after_the_one_queued_before() {
        let lanes = Arc::new(ChatLanes::default());
        let first = lanes.join(chat_id(1)).await.queued();
        let mut second = lanes.join(chat_id(1)).await.queued();
        let mut third = lanes.join(chat_id(1)).await.queued();
        // The second is committed first, but waits for the first's announcement.
        let mut waiting = tokio::spawn(async move {
            second.wait_for_predecessor().await;
            second
        });
        assert!(stays_pending(&mut waiting).await, "announced out of order");
        drop(first);
        let second = waiting.await.unwrap();
        // A message given up (dropped unannounced) lets the next go all the same.
        drop(second);
        tokio::time::timeout(Duration::from_secs(5), third.wait_for_predecessor())
            .await
            .expect("the third waited for a predecessor that gave up");
    }

    #[tokio::test]
    async fn other_chats_do_not_wait() {
        let lanes = Arc::new(ChatLanes::default());
        // Chat 1 has a message waiting to be announced and a sender queueing.
        let _unannounced = lanes.join(chat_id(1)).await.queued();
        let _queueing = lanes.join(chat_id(1)).await;
        let place = tokio::time::timeout(Duration::from_secs(5), lanes.join(chat_id(2)))
            .await
            .expect("another chat waited to queue");
        let mut ticket = place.queued();
        tokio::time::timeout(Duration::from_secs(5), ticket.wait_for_predecessor())
            .await
            .expect("another chat waited to announce");
    }

    #[tokio::test]
    async fn a_chat_is_forgotten_once_nobody_is_in_its_lane() {
        let lanes = Arc::new(ChatLanes::default());
        let first = lanes.join(chat_id(1)).await.queued();
        let second = lanes.join(chat_id(1)).await.queued();
        drop(first);
        assert_eq!(lanes.tracked(), 1, "forgotten while a ticket was out");
        drop(second);
        assert_eq!(lanes.tracked(), 0);
        drop(lanes.join(chat_id(1)).await);
        assert_eq!(lanes.tracked(), 0);
    }
}
