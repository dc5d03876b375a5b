//! Per-chat ordering of "store, then announce". Two messages sent to one chat at once
//! could otherwise commit in one order and be announced in the other; holding the
//! chat's turn across both steps makes every receiver see a chat's messages in exactly
//! the order they were stored (the order history lists, reversed).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use domain::ChatId;
use tokio::sync::{Mutex as AsyncMutex, OwnedMutexGuard};

/// Hands out one turn at a time per chat. Chats nobody is sending to hold no memory.
#[derive(Default)]
pub(crate) struct ChatTurns {
    turns: Mutex<HashMap<ChatId, Arc<AsyncMutex<()>>>>,
}

/// The right to store and announce one message of a chat; the next sender waits.
pub(crate) struct Turn {
    guard: Option<OwnedMutexGuard<()>>,
    chat: ChatId,
    owner: Arc<ChatTurns>,
}

impl ChatTurns {
    /// Waits for `chat`'s turn.
    pub(crate) async fn take(self: &Arc<Self>, chat: ChatId) -> Turn {
        let lock = {
            let mut turns = self.turns.lock().unwrap_or_else(PoisonError::into_inner);
            turns.entry(chat).or_default().clone()
        };
        let guard = lock.lock_owned().await;
        Turn {
            guard: Some(guard),
            chat,
            owner: Arc::clone(self),
        }
    }

    #[cfg(test)]
    fn tracked(&self) -> usize {
        self.turns
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }
}

impl Drop for Turn {
    fn drop(&mut self) {
        drop(self.guard.take());
        let mut turns = self
            .owner
            .turns
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        // Only the map still holds the lock: nobody waits, so forget the chat.
        if turns
            .get(&self.chat)
            .is_some_and(|lock| Arc::strong_count(lock) == 1)
        {
            turns.remove(&self.chat);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::test_support::chat_id;

    #[tokio::test]
    async fn a_second_sender_to_the_same_chat_waits_for_the_first() {
        let turns = Arc::new(ChatTurns::default());
        let first = turns.take(chat_id(1)).await;
        let waiting = tokio::spawn({
            let turns = Arc::clone(&turns);
            async move { turns.take(chat_id(1)).await.chat }
        });
        // The second turn cannot be had while the first is held...
        let blocked = tokio::time::timeout(Duration::from_millis(50), async {
            while !waiting.is_finished() {
                tokio::task::yield_now().await;
            }
        })
        .await;
        assert!(
            blocked.is_err(),
            "second turn granted while the first was held"
        );
        // ...and is granted once it is released.
        drop(first);
        assert_eq!(waiting.await.unwrap(), chat_id(1));
    }

    #[tokio::test]
    async fn other_chats_do_not_wait() {
        let turns = Arc::new(ChatTurns::default());
        let _first = turns.take(chat_id(1)).await;
        let other = tokio::time::timeout(Duration::from_secs(5), turns.take(chat_id(2))).await;
        assert!(other.is_ok());
    }

    #[tokio::test]
    async fn idle_chats_are_forgotten() {
        let turns = Arc::new(ChatTurns::default());
        drop(turns.take(chat_id(1)).await);
        assert_eq!(turns.tracked(), 0);
    }
}
