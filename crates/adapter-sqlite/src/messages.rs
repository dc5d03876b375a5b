//! [`MessageRepository`] on SQLite: the `messages` table.

use async_trait::async_trait;
use domain::ports::{InsertAnswer, MessageRepository};
use domain::{ChatId, HistoryPage, Message, NewMessage, StoreError};
use sql_batch::MessageRow;

use crate::error::store_error;
use crate::message_writer::MessageWriter;
use crate::{Micros, Pools};

/// Messages as stored in SQLite.
pub(crate) struct SqliteMessageRepository {
    pools: Pools,
    writer: MessageWriter,
}

impl SqliteMessageRepository {
    /// A repository reading with `pools` and storing through `writer`.
    pub(crate) fn new(pools: Pools, writer: MessageWriter) -> Self {
        Self { pools, writer }
    }
}

#[async_trait]
impl MessageRepository for SqliteMessageRepository {
    async fn insert(&self, message: &NewMessage) -> InsertAnswer {
        // Stored by the store's writer together with whatever else is waiting, in one
        // transaction (group commit, see `message_writer`); answered after the commit.
        self.writer.insert(message).await
    }

    #[tracing::instrument(
        skip_all,
        fields(chat_id = %chat, limit = page.limit.get(), skip = page.skip, before = ?page.before)
    )]
    async fn history(&self, chat: ChatId, page: HistoryPage) -> Result<Vec<Message>, StoreError> {
        // The cursor's position and the page before it, read from one snapshot (a read
        // transaction sees the database as of its first read).
        let mut tx = self.pools.read().begin().await.map_err(store_error)?;
        let before_seq: i64 = match page.before {
            // Every stored seq is below the largest integer.
            None => i64::MAX,
            Some(before) => {
                sqlx::query_scalar("select seq from messages where chat_id = ?1 and id = ?2")
                    .bind(chat.as_uuid())
                    .bind(before.as_uuid())
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(store_error)?
                    .ok_or(StoreError::UnknownCursor)?
            }
        };
        // Served by the index on (chat_id, seq desc).
        let rows: Vec<MessageRow<Micros>> = sqlx::query_as(
            "select id, chat_id, sender_id, content, client_msg_id, created_at
             from messages
             where chat_id = ?1 and seq < ?2
             order by seq desc
             limit ?3 offset ?4",
        )
        .bind(chat.as_uuid())
        .bind(before_seq)
        .bind(i64::from(page.limit.get()))
        .bind(i64::from(page.skip))
        .fetch_all(&mut *tx)
        .await
        .map_err(store_error)?;
        tx.commit().await.map_err(store_error)?;
        rows.into_iter().map(MessageRow::into_message).collect()
    }
}
