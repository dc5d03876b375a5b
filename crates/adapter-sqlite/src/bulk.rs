//! Bulk moves on SQLite: the store as a move's [`Sink`] (each batch one write
//! transaction on the writer, rows inserted in order with `on conflict do nothing` on
//! the kept keys) and as its [`Source`] (for moving to PostgreSQL).

use async_trait::async_trait;
use domain::{Chat, Message, StoreError, UserCredentials, UserId};
use futures_util::StreamExt;
use futures_util::stream::BoxStream;
use import::{
    Membership, Sink, Source, SourceChat, SourceCounts, SourceError, SourceMember, SourceMessage,
    SourceUser,
};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::error::store_error;
use crate::{Pools, from_micros};

/// The store's tables, read and written in bulk.
pub(crate) struct SqliteBulk {
    pools: Pools,
}

impl SqliteBulk {
    /// Bulk access through `pools`.
    pub(crate) fn new(pools: Pools) -> Self {
        Self { pools }
    }
}

/// A timestamp as stored: microseconds since the Unix epoch.
fn micros(at: OffsetDateTime) -> i64 {
    i64::try_from(at.unix_timestamp_nanos() / 1000).unwrap_or(i64::MAX)
}

/// A stored timestamp, for a source row.
fn read_micros(value: i64) -> Result<OffsetDateTime, SourceError> {
    from_micros(value).map_err(|err| SourceError::Malformed {
        row: "a SQLite row".to_owned(),
        why: err.to_string(),
    })
}

#[async_trait]
impl Sink for SqliteBulk {
    async fn username_owners(&self, keys: &[String]) -> Result<Vec<(String, UserId)>, StoreError> {
        let mut owners = Vec::new();
        let mut db = self.pools.read().acquire().await.map_err(store_error)?;
        for key in keys {
            let owner: Option<Uuid> =
                sqlx::query_scalar("select id from users where username_key = ?")
                    .bind(key)
                    .fetch_optional(&mut *db)
                    .await
                    .map_err(store_error)?;
            if let Some(owner) = owner {
                owners.push((key.clone(), UserId::from_uuid(owner)));
            }
        }
        Ok(owners)
    }

    async fn load_users(&self, users: &[UserCredentials]) -> Result<u64, StoreError> {
        let mut tx = self.pools.write().await?;
        let mut stored = 0;
        for u in users {
            stored += sqlx::query(
                "insert into users (id, username, username_key, password_hash, created_at)
                 values (?, ?, ?, ?, ?) on conflict (id) do nothing",
            )
            .bind(u.user.id.as_uuid())
            .bind(u.user.username.as_str())
            .bind(u.user.username.folded())
            .bind(u.password_hash.as_str())
            .bind(micros(u.user.created_at))
            .execute(&mut *tx)
            .await
            .map_err(store_error)?
            .rows_affected();
        }
        tx.commit().await.map_err(store_error)?;
        Ok(stored)
    }

    async fn load_chats(&self, chats: &[Chat]) -> Result<u64, StoreError> {
        let mut tx = self.pools.write().await?;
        let mut stored = 0;
        for c in chats {
            stored += sqlx::query(
                "insert into chats (id, name, owner_id, created_at) values (?, ?, ?, ?)
                 on conflict (id) do nothing",
            )
            .bind(c.id.as_uuid())
            .bind(c.name.as_str())
            .bind(c.owner_id.as_uuid())
            .bind(micros(c.created_at))
            .execute(&mut *tx)
            .await
            .map_err(store_error)?
            .rows_affected();
        }
        tx.commit().await.map_err(store_error)?;
        Ok(stored)
    }

    async fn load_members(&self, members: &[Membership]) -> Result<u64, StoreError> {
        let mut tx = self.pools.write().await?;
        let mut stored = 0;
        for m in members {
            stored += sqlx::query(
                "insert into chat_members (chat_id, user_id, joined_at) values (?, ?, ?)
                 on conflict (chat_id, user_id) do nothing",
            )
            .bind(m.chat_id.as_uuid())
            .bind(m.user_id.as_uuid())
            .bind(micros(m.joined_at))
            .execute(&mut *tx)
            .await
            .map_err(store_error)?
            .rows_affected();
        }
        tx.commit().await.map_err(store_error)?;
        Ok(stored)
    }

    async fn load_messages(&self, messages: &[Message]) -> Result<u64, StoreError> {
        // The whole batch is one statement over one JSON array of rows (SQLite has no
        // arrays to bind), stored in the order given, so that `seq` follows it: a
        // statement per row cost more in sqlx than SQLite's work for the row.
        let rows: Vec<serde_json::Value> = messages
            .iter()
            .map(|m| {
                serde_json::json!([
                    m.id.as_uuid().simple().to_string(),
                    m.chat_id.as_uuid().simple().to_string(),
                    m.sender_id.as_uuid().simple().to_string(),
                    m.content.as_str(),
                    m.client_msg_id.as_ref().map(|c| c.as_str()),
                    micros(m.created_at),
                ])
            })
            .collect();
        let rows = serde_json::Value::Array(rows).to_string();
        let mut tx = self.pools.write().await?;
        let stored = sqlx::query(
            "insert into messages (id, chat_id, sender_id, content, client_msg_id, created_at)
             select unhex(r.value ->> 0), unhex(r.value ->> 1), unhex(r.value ->> 2),
                    r.value ->> 3, r.value ->> 4, r.value ->> 5
             from json_each(?) as r
             where true
             order by r.key
             on conflict (id) do nothing",
        )
        .bind(rows)
        .execute(&mut *tx)
        .await
        .map_err(store_error)?
        .rows_affected();
        tx.commit().await.map_err(store_error)?;
        Ok(stored)
    }
}

/// A `messages` row, read in the order it was stored.
#[derive(sqlx::FromRow)]
struct MessageRow {
    id: Uuid,
    chat_id: Uuid,
    sender_id: Uuid,
    content: String,
    client_msg_id: Option<String>,
    created_at: i64,
}

#[async_trait]
impl Source for SqliteBulk {
    async fn counts(&self) -> Result<SourceCounts, SourceError> {
        let (users, chats, members, messages): (i64, i64, i64, i64) = sqlx::query_as(
            "select (select count(*) from users), (select count(*) from chats),
                    (select count(*) from chat_members), (select count(*) from messages)",
        )
        .fetch_one(self.pools.read())
        .await
        .map_err(SourceError::unavailable)?;
        let count = |n: i64| u64::try_from(n).unwrap_or_default();
        Ok(SourceCounts {
            users: count(users),
            chats: count(chats),
            members: count(members),
            messages: count(messages),
        })
    }

    async fn users(&self) -> Result<Vec<SourceUser>, SourceError> {
        let rows: Vec<(Uuid, String, String, i64)> = sqlx::query_as(
            "select id, username, password_hash, created_at from users order by created_at, id",
        )
        .fetch_all(self.pools.read())
        .await
        .map_err(SourceError::unavailable)?;
        rows.into_iter()
            .map(|(id, username, password_hash, created_at)| {
                Ok(SourceUser {
                    id,
                    username,
                    password_hash,
                    created_at: read_micros(created_at)?,
                })
            })
            .collect()
    }

    async fn chats(&self) -> Result<Vec<SourceChat>, SourceError> {
        let rows: Vec<(Uuid, Uuid, String, i64)> = sqlx::query_as(
            "select id, owner_id, name, created_at from chats order by created_at, id",
        )
        .fetch_all(self.pools.read())
        .await
        .map_err(SourceError::unavailable)?;
        rows.into_iter()
            .map(|(id, owner_id, name, created_at)| {
                Ok(SourceChat {
                    id,
                    owner_id,
                    name,
                    created_at: read_micros(created_at)?,
                })
            })
            .collect()
    }

    async fn members(&self) -> Result<Vec<SourceMember>, SourceError> {
        let rows: Vec<(Uuid, Uuid, i64)> = sqlx::query_as(
            "select chat_id, user_id, joined_at from chat_members order by chat_id, seq",
        )
        .fetch_all(self.pools.read())
        .await
        .map_err(SourceError::unavailable)?;
        rows.into_iter()
            .map(|(chat_id, user_id, joined_at)| {
                Ok(SourceMember {
                    chat_id,
                    user_id,
                    joined_at: read_micros(joined_at)?,
                })
            })
            .collect()
    }

    fn messages(&self) -> BoxStream<'_, Result<SourceMessage, SourceError>> {
        sqlx::query_as::<_, MessageRow>(
            "select id, chat_id, sender_id, content, client_msg_id, created_at
             from messages order by seq",
        )
        .fetch(self.pools.read())
        .map(|row| {
            let row = row.map_err(SourceError::unavailable)?;
            Ok(SourceMessage {
                id: row.id,
                chat_id: row.chat_id,
                sender_id: row.sender_id,
                content: row.content,
                client_msg_id: row.client_msg_id,
                created_at: read_micros(row.created_at)?,
            })
        })
        .boxed()
    }

    fn ties_ordered_by_id(&self) -> bool {
        // `seq` is the order messages were stored in: ties have an order of their own.
        false
    }
}
