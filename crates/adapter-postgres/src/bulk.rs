//! Bulk moves on PostgreSQL: the store as a move's [`Sink`] (rows in batches, one
//! statement per batch from arrays, `on conflict do nothing` on the kept keys) and as
//! its [`Source`] (for moving to the other store).

use async_trait::async_trait;
use domain::{Chat, Message, StoreError, UserCredentials, UserId};
use futures_util::StreamExt;
use futures_util::stream::BoxStream;
use import::{
    Membership, Sink, Source, SourceChat, SourceCounts, SourceError, SourceMember, SourceMessage,
    SourceUser,
};
use sqlx::PgPool;
use time::OffsetDateTime;
use uuid::Uuid;

/// The store's tables, read and written in bulk.
pub(crate) struct PgBulk {
    pool: PgPool,
}

impl PgBulk {
    /// Bulk access through `pool`.
    pub(crate) fn new(pool: PgPool) -> Self {
        Self { pool }
    }
}

#[async_trait]
impl Sink for PgBulk {
    async fn username_owners(&self, keys: &[String]) -> Result<Vec<(String, UserId)>, StoreError> {
        let rows: Vec<(String, Uuid)> = sqlx::query_as(
            "select username_key, id from users where username_key = any($1::text[])",
        )
        .bind(keys)
        .fetch_all(&self.pool)
        .await
        .map_err(StoreError::unavailable)?;
        Ok(rows
            .into_iter()
            .map(|(key, id)| (key, UserId::from_uuid(id)))
            .collect())
    }

    async fn load_users(&self, users: &[UserCredentials]) -> Result<u64, StoreError> {
        let ids: Vec<Uuid> = users.iter().map(|u| u.user.id.as_uuid()).collect();
        let names: Vec<&str> = users.iter().map(|u| u.user.username.as_str()).collect();
        let keys: Vec<String> = users.iter().map(|u| u.user.username.folded()).collect();
        let hashes: Vec<&str> = users.iter().map(|u| u.password_hash.as_str()).collect();
        let times: Vec<OffsetDateTime> = users.iter().map(|u| u.user.created_at).collect();
        // `on conflict (id)`: a user stored by an earlier run is left as it is, while a
        // name held by another user still fails the whole batch.
        let done = sqlx::query(
            "insert into users (id, username, username_key, password_hash, created_at)
             select * from unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::timestamptz[])
             on conflict (id) do nothing",
        )
        .bind(ids)
        .bind(names)
        .bind(keys)
        .bind(hashes)
        .bind(times)
        .execute(&self.pool)
        .await
        .map_err(StoreError::unavailable)?;
        Ok(done.rows_affected())
    }

    async fn load_chats(&self, chats: &[Chat]) -> Result<u64, StoreError> {
        let ids: Vec<Uuid> = chats.iter().map(|c| c.id.as_uuid()).collect();
        let names: Vec<&str> = chats.iter().map(|c| c.name.as_str()).collect();
        let owners: Vec<Uuid> = chats.iter().map(|c| c.owner_id.as_uuid()).collect();
        let times: Vec<OffsetDateTime> = chats.iter().map(|c| c.created_at).collect();
        let done = sqlx::query(
            "insert into chats (id, name, owner_id, created_at)
             select * from unnest($1::uuid[], $2::text[], $3::uuid[], $4::timestamptz[])
             on conflict (id) do nothing",
        )
        .bind(ids)
        .bind(names)
        .bind(owners)
        .bind(times)
        .execute(&self.pool)
        .await
        .map_err(StoreError::unavailable)?;
        Ok(done.rows_affected())
    }

    async fn load_members(&self, members: &[Membership]) -> Result<u64, StoreError> {
        let chats: Vec<Uuid> = members.iter().map(|m| m.chat_id.as_uuid()).collect();
        let users: Vec<Uuid> = members.iter().map(|m| m.user_id.as_uuid()).collect();
        let times: Vec<OffsetDateTime> = members.iter().map(|m| m.joined_at).collect();
        // In the order given (`with ordinality`), so that `seq` keeps the order of joining.
        let done = sqlx::query(
            "insert into chat_members (chat_id, user_id, joined_at)
             select c, u, j from unnest($1::uuid[], $2::uuid[], $3::timestamptz[])
                  with ordinality as t(c, u, j, n)
             order by n
             on conflict (chat_id, user_id) do nothing",
        )
        .bind(chats)
        .bind(users)
        .bind(times)
        .execute(&self.pool)
        .await
        .map_err(StoreError::unavailable)?;
        Ok(done.rows_affected())
    }

    async fn load_messages(&self, messages: &[Message]) -> Result<u64, StoreError> {
        let ids: Vec<Uuid> = messages.iter().map(|m| m.id.as_uuid()).collect();
        let chats: Vec<Uuid> = messages.iter().map(|m| m.chat_id.as_uuid()).collect();
        let senders: Vec<Uuid> = messages.iter().map(|m| m.sender_id.as_uuid()).collect();
        let contents: Vec<&str> = messages.iter().map(|m| m.content.as_str()).collect();
        let client_ids: Vec<Option<&str>> = messages
            .iter()
            .map(|m| m.client_msg_id.as_ref().map(|c| c.as_str()))
            .collect();
        let times: Vec<OffsetDateTime> = messages.iter().map(|m| m.created_at).collect();
        // A batch need not wait for its WAL to reach the disk: if the machine crashes,
        // the last batches are lost and the next run stores them again.
        let mut tx = self.pool.begin().await.map_err(StoreError::unavailable)?;
        sqlx::query("set local synchronous_commit = off")
            .execute(&mut *tx)
            .await
            .map_err(StoreError::unavailable)?;
        // In the order given, so that `seq` (the history's order) follows it.
        let done = sqlx::query(
            "insert into messages (id, chat_id, sender_id, content, client_msg_id, created_at)
             select i, c, s, t, k, a
             from unnest($1::uuid[], $2::uuid[], $3::uuid[], $4::text[], $5::text[], $6::timestamptz[])
                  with ordinality as r(i, c, s, t, k, a, n)
             order by n
             on conflict (id) do nothing",
        )
        .bind(ids)
        .bind(chats)
        .bind(senders)
        .bind(contents)
        .bind(client_ids)
        .bind(times)
        .execute(&mut *tx)
        .await
        .map_err(StoreError::unavailable)?;
        tx.commit().await.map_err(StoreError::unavailable)?;
        Ok(done.rows_affected())
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
    created_at: OffsetDateTime,
}

#[async_trait]
impl Source for PgBulk {
    async fn counts(&self) -> Result<SourceCounts, SourceError> {
        let (users, chats, members, messages): (i64, i64, i64, i64) = sqlx::query_as(
            "select (select count(*) from users), (select count(*) from chats),
                    (select count(*) from chat_members), (select count(*) from messages)",
        )
        .fetch_one(&self.pool)
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
        let rows: Vec<(Uuid, String, String, OffsetDateTime)> = sqlx::query_as(
            "select id, username, password_hash, created_at from users order by created_at, id",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(SourceError::unavailable)?;
        Ok(rows
            .into_iter()
            .map(|(id, username, password_hash, created_at)| SourceUser {
                id,
                username,
                password_hash,
                created_at,
            })
            .collect())
    }

    async fn chats(&self) -> Result<Vec<SourceChat>, SourceError> {
        let rows: Vec<(Uuid, Uuid, String, OffsetDateTime)> = sqlx::query_as(
            "select id, owner_id, name, created_at from chats order by created_at, id",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(SourceError::unavailable)?;
        Ok(rows
            .into_iter()
            .map(|(id, owner_id, name, created_at)| SourceChat {
                id,
                owner_id,
                name,
                created_at,
            })
            .collect())
    }

    async fn members(&self) -> Result<Vec<SourceMember>, SourceError> {
        let rows: Vec<(Uuid, Uuid, OffsetDateTime)> = sqlx::query_as(
            "select chat_id, user_id, joined_at from chat_members order by chat_id, seq",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(SourceError::unavailable)?;
        Ok(rows
            .into_iter()
            .map(|(chat_id, user_id, joined_at)| SourceMember {
                chat_id,
                user_id,
                joined_at,
            })
            .collect())
    }

    fn messages(&self) -> BoxStream<'_, Result<SourceMessage, SourceError>> {
        sqlx::query_as::<_, MessageRow>(
            "select id, chat_id, sender_id, content, client_msg_id, created_at
             from messages order by seq",
        )
        .fetch(&self.pool)
        .map(|row| {
            let row = row.map_err(SourceError::unavailable)?;
            Ok(SourceMessage {
                id: row.id,
                chat_id: row.chat_id,
                sender_id: row.sender_id,
                content: row.content,
                client_msg_id: row.client_msg_id,
                created_at: row.created_at,
            })
        })
        .boxed()
    }

    fn ties_ordered_by_id(&self) -> bool {
        // `seq` is the order messages were stored in: ties have an order of their own.
        false
    }
}
