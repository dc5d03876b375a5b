//! [`MessageRepository`] on SQLite: the `messages` table.

use async_trait::async_trait;
use domain::ports::MessageRepository;
use domain::{
    ChatId, ClientMsgId, HistoryPage, Message, MessageContent, MessageId, NewMessage, StoreError,
    UserId,
};
use uuid::Uuid;

use crate::error::{Inconsistent, invalid_row, store_error};
use crate::{Pools, from_micros, now_micros};

/// Messages as stored in SQLite.
pub(crate) struct SqliteMessageRepository {
    pools: Pools,
}

impl SqliteMessageRepository {
    /// A repository using `pools`.
    pub(crate) fn new(pools: Pools) -> Self {
        Self { pools }
    }
}

/// A `messages` row.
#[derive(sqlx::FromRow)]
struct MessageRow {
    id: Uuid,
    chat_id: Uuid,
    sender_id: Uuid,
    content: String,
    client_msg_id: Option<String>,
    created_at: i64,
}

impl TryFrom<MessageRow> for Message {
    type Error = StoreError;

    fn try_from(row: MessageRow) -> Result<Self, StoreError> {
        Ok(Message {
            id: MessageId::from_uuid(row.id),
            chat_id: ChatId::from_uuid(row.chat_id),
            sender_id: UserId::from_uuid(row.sender_id),
            content: MessageContent::parse(row.content).map_err(invalid_row("message"))?,
            client_msg_id: row
                .client_msg_id
                .map(ClientMsgId::parse)
                .transpose()
                .map_err(invalid_row("message"))?,
            created_at: from_micros(row.created_at)?,
        })
    }
}

#[async_trait]
impl MessageRepository for SqliteMessageRepository {
    #[tracing::instrument(
        skip_all,
        fields(chat_id = %message.chat_id, sender_id = %message.sender_id, message_id = tracing::field::Empty)
    )]
    async fn insert(&self, message: &NewMessage) -> Result<(Message, bool), StoreError> {
        let client_msg_id = message.client_msg_id.as_ref().map(ClientMsgId::as_str);
        // The checks, the insert and the look-up of an earlier message share one write
        // transaction, which holds the lock: what they find stays true until commit.
        let mut tx = self.pools.write().await?;
        let (chat_exists, sender_exists): (bool, bool) = sqlx::query_as(
            "select exists (select 1 from chats where id = ?1),
                    exists (select 1 from users where id = ?2)",
        )
        .bind(message.chat_id.as_uuid())
        .bind(message.sender_id.as_uuid())
        .fetch_one(&mut *tx)
        .await
        .map_err(store_error)?;
        if !chat_exists {
            return Err(StoreError::ChatGone);
        }
        if !sender_exists {
            return Err(StoreError::UnknownUser);
        }
        // The autoincrement `seq` puts the message after every message already stored. A
        // repeated client id hits the partial unique index and stores nothing.
        let inserted: Option<MessageRow> = sqlx::query_as(
            "insert into messages (id, chat_id, sender_id, content, client_msg_id, created_at)
             values (?1, ?2, ?3, ?4, ?5, ?6)
             on conflict (chat_id, sender_id, client_msg_id) where client_msg_id is not null
             do nothing
             returning id, chat_id, sender_id, content, client_msg_id, created_at",
        )
        .bind(Uuid::now_v7())
        .bind(message.chat_id.as_uuid())
        .bind(message.sender_id.as_uuid())
        .bind(message.content.as_str())
        .bind(client_msg_id)
        .bind(now_micros())
        .fetch_optional(&mut *tx)
        .await
        .map_err(store_error)?;

        let (row, stored) = match (inserted, client_msg_id) {
            (Some(row), _) => (row, true),
            (None, Some(client_msg_id)) => {
                let first: MessageRow = sqlx::query_as(
                    "select id, chat_id, sender_id, content, client_msg_id, created_at
                     from messages
                     where chat_id = ?1 and sender_id = ?2 and client_msg_id = ?3",
                )
                .bind(message.chat_id.as_uuid())
                .bind(message.sender_id.as_uuid())
                .bind(client_msg_id)
                .fetch_optional(&mut *tx)
                .await
                .map_err(store_error)?
                .ok_or_else(|| {
                    StoreError::unavailable(Inconsistent(
                        "an insert hit the client id index, but no message holds that id",
                    ))
                })?;
                (first, false)
            }
            (None, None) => {
                return Err(StoreError::unavailable(Inconsistent(
                    "an insert without a client id stored nothing",
                )));
            }
        };
        tx.commit().await.map_err(store_error)?;
        let message = Message::try_from(row)?;
        tracing::Span::current().record("message_id", tracing::field::display(message.id));
        Ok((message, stored))
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
        let rows: Vec<MessageRow> = sqlx::query_as(
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
        rows.into_iter().map(Message::try_from).collect()
    }
}
