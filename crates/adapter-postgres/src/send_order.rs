//! [`SendOrder`] for a cluster: a chat's turn is a PostgreSQL session advisory lock, so
//! every server process sharing the database waits for the same turn.
//!
//! The lock must outlive the insert's transaction (it is held until the message has been
//! published), so it is a *session* lock, held on a connection of its own, from a pool of
//! its own: if the turns drew from the repositories' pool, senders holding turns could
//! take every connection and wait forever for one to store their message.

use std::time::Duration;

use app::ports::{ChatTurn, SendOrder};
use async_trait::async_trait;
use domain::{ChatId, StoreError};
use sqlx::pool::PoolConnection;
use sqlx::postgres::{PgPool, PgPoolOptions};
use sqlx::{Connection, Postgres};

use crate::error::store_error;

/// The first key of every turn lock: keeps them apart from other advisory locks on the
/// same database (sqlx's migrator uses its own key). "msg!" in ASCII.
const LOCK_CLASS: i32 = 0x6d73_6721;

/// Connections that can hold turns at once, i.e. chats sending at the same moment on this
/// node; more senders wait for a connection.
const TURN_CONNECTIONS: u32 = 16;

/// How long a sender waits for a chat's turn before giving up. A holder only keeps it
/// for one insert and one publish (each bounded), so this is only reached when something
/// is badly wrong; the sender then gets an error instead of hanging.
const SET_LOCK_TIMEOUT: &str = "set lock_timeout = '10s'";

/// How long to wait for a connection of the turn pool.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(10);

/// Chat turns as PostgreSQL advisory locks.
pub(crate) struct AdvisoryLockSendOrder {
    pool: PgPool,
}

impl AdvisoryLockSendOrder {
    /// Turns taken on connections made like `like`'s, in a pool of their own (opened
    /// lazily, so building this never waits for the database).
    pub(crate) fn new(like: &PgPool) -> Self {
        let options = like.connect_options().as_ref().clone();
        let pool = PgPoolOptions::new()
            .max_connections(TURN_CONNECTIONS)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .after_connect(|conn, _| {
                Box::pin(async move { sqlx::query(SET_LOCK_TIMEOUT).execute(conn).await.map(drop) })
            })
            .connect_lazy_with(options);
        Self { pool }
    }
}

/// The second lock key: the chat id folded to 32 bits. Two chats that fold alike share
/// a turn, which costs some waiting and never correctness.
fn chat_key(chat: ChatId) -> i32 {
    let bits = chat.as_uuid().as_u128();
    let folded = (bits ^ (bits >> 64)) as u64;
    // Truncation is the point: any 32 bits of a well-mixed id will do.
    #[allow(clippy::cast_possible_truncation)]
    let key = (folded ^ (folded >> 32)) as u32;
    i32::from_ne_bytes(key.to_ne_bytes())
}

#[async_trait]
impl SendOrder for AdvisoryLockSendOrder {
    #[tracing::instrument(skip_all, fields(chat_id = %chat))]
    async fn turn(&self, chat: ChatId) -> Result<ChatTurn, StoreError> {
        let key = chat_key(chat);
        let mut conn = self.pool.acquire().await.map_err(store_error)?;
        sqlx::query("select pg_advisory_lock($1, $2)")
            .bind(LOCK_CLASS)
            .bind(key)
            .execute(&mut *conn)
            .await
            .map_err(store_error)?;
        Ok(ChatTurn::held_by(HeldLock {
            conn: Some(conn),
            key,
        }))
    }
}

/// A held advisory lock; released when dropped.
struct HeldLock {
    conn: Option<PoolConnection<Postgres>>,
    key: i32,
}

impl Drop for HeldLock {
    fn drop(&mut self) {
        let Some(mut conn) = self.conn.take() else {
            return;
        };
        let key = self.key;
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            // No runtime to unlock on: end the session, which releases its locks.
            drop(conn.detach());
            return;
        };
        // Unlocking is a round trip, and drop cannot wait for one.
        runtime.spawn(async move {
            let unlocked = sqlx::query_scalar::<_, bool>("select pg_advisory_unlock($1, $2)")
                .bind(LOCK_CLASS)
                .bind(key)
                .fetch_one(&mut *conn)
                .await;
            if !matches!(unlocked, Ok(true)) {
                // A connection whose lock state is unknown must not go back to the
                // pool: closing the session releases whatever it still holds.
                tracing::warn!(
                    ?unlocked,
                    "could not release a chat turn; closing its connection"
                );
                conn.detach().close().await.ok();
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use uuid::Uuid;

    #[test]
    fn a_chat_key_depends_on_the_whole_id_and_is_stable() {
        let id = |bits: u128| ChatId::from_uuid(Uuid::from_u128(bits));
        assert_eq!(chat_key(id(1)), chat_key(id(1)));
        assert_ne!(chat_key(id(1)), chat_key(id(2)), "low bits count");
        assert_ne!(
            chat_key(id(1)),
            chat_key(id(1 | (1 << 100))),
            "high bits count"
        );
    }
}
