//! [`ChatRepository`] on SQLite: the `chats` and `chat_members` tables.

use std::collections::HashSet;

use async_trait::async_trait;
use domain::ports::ChatRepository;
use domain::{Chat, ChatId, ChatMember, ChatName, StoreError, UserId, Username};
use sqlx::{Sqlite, Transaction};
use uuid::Uuid;

use crate::error::{invalid_row, store_error};
use crate::users::missing_users;
use crate::{Pools, from_micros, json_ids, now_micros, unique_except};

/// Chats and their membership as stored in SQLite.
pub(crate) struct SqliteChatRepository {
    pools: Pools,
}

impl SqliteChatRepository {
    /// A repository using `pools`.
    pub(crate) fn new(pools: Pools) -> Self {
        Self { pools }
    }
}

/// A `chats` row.
#[derive(sqlx::FromRow)]
struct ChatRow {
    id: Uuid,
    name: String,
    owner_id: Uuid,
    created_at: i64,
}

/// A `chats` row with whether a given user is a member.
#[derive(sqlx::FromRow)]
struct ChatAccessRow {
    #[sqlx(flatten)]
    chat: ChatRow,
    is_member: bool,
}

impl TryFrom<ChatRow> for Chat {
    type Error = StoreError;

    fn try_from(row: ChatRow) -> Result<Self, StoreError> {
        Ok(Chat {
            id: ChatId::from_uuid(row.id),
            name: ChatName::parse(&row.name).map_err(invalid_row("chat"))?,
            owner_id: UserId::from_uuid(row.owner_id),
            created_at: from_micros(row.created_at)?,
        })
    }
}

/// A `chat_members` row joined with its user's name.
#[derive(sqlx::FromRow)]
struct MemberRow {
    user_id: Uuid,
    username: String,
    joined_at: i64,
}

impl TryFrom<MemberRow> for ChatMember {
    type Error = StoreError;

    fn try_from(row: MemberRow) -> Result<Self, StoreError> {
        Ok(ChatMember {
            user_id: UserId::from_uuid(row.user_id),
            username: Username::parse_existing(row.username).map_err(invalid_row("user"))?,
            joined_at: from_micros(row.joined_at)?,
        })
    }
}

/// Fails with [`StoreError::UnknownUser`] unless every one of `users` exists. Inside the
/// write transaction `tx`, the answer holds until it commits.
async fn require_users(
    tx: &mut Transaction<'static, Sqlite>,
    users: &[UserId],
) -> Result<(), StoreError> {
    if missing_users(&mut **tx, users).await?.is_empty() {
        Ok(())
    } else {
        Err(StoreError::UnknownUser)
    }
}

/// Adds `users` (each given once, all known to exist) to `chat` at `now`, in the given
/// order, skipping those already in it, in one statement; returns those newly added, in
/// the given order.
///
/// `order by` makes the autoincrement `seq` (the order of joining) follow the given
/// order. The caller's write transaction holds the lock, so a concurrent add of the
/// same user runs after this one commits, finds the member and adds nothing: exactly
/// one of them reports the user as added.
async fn insert_members(
    tx: &mut Transaction<'static, Sqlite>,
    chat: ChatId,
    users: &[UserId],
    now: i64,
) -> Result<Vec<UserId>, StoreError> {
    if users.is_empty() {
        return Ok(Vec::new());
    }
    // `where true` keeps SQLite from reading `on conflict` as a join's `on`.
    let added: HashSet<Uuid> = sqlx::query_scalar(
        "insert into chat_members (chat_id, user_id, joined_at)
         select ?1, unhex(given.value), ?3
         from json_each(?2) as given
         where true
         order by given.key
         on conflict (chat_id, user_id) do nothing
         returning user_id",
    )
    .bind(chat.as_uuid())
    .bind(json_ids(users.iter().map(UserId::as_uuid)))
    .bind(now)
    .fetch_all(&mut **tx)
    .await
    .map_err(store_error)?
    .into_iter()
    .collect();
    // `returning` promises no order, so restore the given one.
    Ok(users
        .iter()
        .copied()
        .filter(|user| added.contains(&user.as_uuid()))
        .collect())
}

#[async_trait]
impl ChatRepository for SqliteChatRepository {
    #[tracing::instrument(skip_all, fields(owner_id = %owner, members = members.len(), chat_id = tracing::field::Empty))]
    async fn create(
        &self,
        name: &ChatName,
        owner: UserId,
        members: &[UserId],
    ) -> Result<Chat, StoreError> {
        // One write transaction: an unknown owner or member fails it before anything is
        // written, and nothing is stored unless it commits.
        let mut tx = self.pools.write().await?;
        let members = unique_except(members, Some(owner));
        require_users(&mut tx, &[vec![owner], members.clone()].concat()).await?;
        let now = now_micros();
        let row: ChatRow = sqlx::query_as(
            "insert into chats (id, name, owner_id, created_at)
             values (?1, ?2, ?3, ?4)
             returning id, name, owner_id, created_at",
        )
        .bind(Uuid::now_v7())
        .bind(name.as_str())
        .bind(owner.as_uuid())
        .bind(now)
        .fetch_one(&mut *tx)
        .await
        .map_err(store_error)?;
        let chat = Chat::try_from(row)?;
        tracing::Span::current().record("chat_id", tracing::field::display(chat.id));
        // The owner joins first, then the members in the order given.
        insert_members(&mut tx, chat.id, &[vec![owner], members].concat(), now).await?;
        tx.commit().await.map_err(store_error)?;
        Ok(chat)
    }

    #[tracing::instrument(skip_all, fields(chat_id = %id))]
    async fn find(&self, id: ChatId) -> Result<Option<Chat>, StoreError> {
        let row: Option<ChatRow> =
            sqlx::query_as("select id, name, owner_id, created_at from chats where id = ?1")
                .bind(id.as_uuid())
                .fetch_optional(self.pools.read())
                .await
                .map_err(store_error)?;
        row.map(Chat::try_from).transpose()
    }

    #[tracing::instrument(skip_all, fields(chat_id = %id, user_id = %user))]
    async fn find_with_member(
        &self,
        id: ChatId,
        user: UserId,
    ) -> Result<Option<(Chat, bool)>, StoreError> {
        let row: Option<ChatAccessRow> = sqlx::query_as(
            "select c.id, c.name, c.owner_id, c.created_at,
                    exists (select 1 from chat_members m
                            where m.chat_id = c.id and m.user_id = ?2) as is_member
             from chats c where c.id = ?1",
        )
        .bind(id.as_uuid())
        .bind(user.as_uuid())
        .fetch_optional(self.pools.read())
        .await
        .map_err(store_error)?;
        row.map(|row| Ok((Chat::try_from(row.chat)?, row.is_member)))
            .transpose()
    }

    #[tracing::instrument(skip_all, fields(user_id = %user))]
    async fn list_for_member(&self, user: UserId) -> Result<Vec<Chat>, StoreError> {
        // Ids are uuid v7, so they break ties between chats created at the same instant.
        let rows: Vec<ChatRow> = sqlx::query_as(
            "select c.id, c.name, c.owner_id, c.created_at
             from chats c
             join chat_members m on m.chat_id = c.id
             where m.user_id = ?1
             order by c.created_at desc, c.id desc",
        )
        .bind(user.as_uuid())
        .fetch_all(self.pools.read())
        .await
        .map_err(store_error)?;
        rows.into_iter().map(Chat::try_from).collect()
    }

    #[tracing::instrument(skip_all, fields(user_id = %user, chats = chats.len()))]
    async fn not_member_of(
        &self,
        user: UserId,
        chats: &[ChatId],
    ) -> Result<Vec<ChatId>, StoreError> {
        if chats.is_empty() {
            return Ok(Vec::new());
        }
        let outside: Vec<Uuid> = sqlx::query_scalar(
            "select unhex(given.value)
             from json_each(?2) as given
             where not exists (
                 select 1 from chat_members m
                 where m.chat_id = unhex(given.value) and m.user_id = ?1
             )
             order by given.key",
        )
        .bind(user.as_uuid())
        .bind(json_ids(chats.iter().map(ChatId::as_uuid)))
        .fetch_all(self.pools.read())
        .await
        .map_err(store_error)?;
        Ok(outside.into_iter().map(ChatId::from_uuid).collect())
    }

    #[tracing::instrument(skip_all, fields(chat_id = %chat))]
    async fn members(&self, chat: ChatId) -> Result<Vec<ChatMember>, StoreError> {
        let rows: Vec<MemberRow> = sqlx::query_as(
            "select m.user_id, u.username, m.joined_at
             from chat_members m
             join users u on u.id = m.user_id
             where m.chat_id = ?1
             order by m.seq",
        )
        .bind(chat.as_uuid())
        .fetch_all(self.pools.read())
        .await
        .map_err(store_error)?;
        rows.into_iter().map(ChatMember::try_from).collect()
    }

    #[tracing::instrument(skip_all, fields(chat_id = %chat, users = users.len()))]
    async fn add_members(&self, chat: ChatId, users: &[UserId]) -> Result<Vec<UserId>, StoreError> {
        let users = unique_except(users, None);
        if users.is_empty() {
            return Ok(Vec::new());
        }
        // The checks and the insert share one write transaction, so a vanished chat or
        // an unknown user adds nobody, and neither can change in between.
        let mut tx = self.pools.write().await?;
        let chat_exists: bool =
            sqlx::query_scalar("select exists (select 1 from chats where id = ?1)")
                .bind(chat.as_uuid())
                .fetch_one(&mut *tx)
                .await
                .map_err(store_error)?;
        if !chat_exists {
            return Err(StoreError::ChatGone);
        }
        require_users(&mut tx, &users).await?;
        let added = insert_members(&mut tx, chat, &users, now_micros()).await?;
        tx.commit().await.map_err(store_error)?;
        Ok(added)
    }

    #[tracing::instrument(skip_all, fields(chat_id = %chat, users = users.len()))]
    async fn remove_members(
        &self,
        chat: ChatId,
        users: &[UserId],
    ) -> Result<Vec<UserId>, StoreError> {
        let users = unique_except(users, None);
        if users.is_empty() {
            return Ok(Vec::new());
        }
        let mut tx = self.pools.write().await?;
        let removed: HashSet<Uuid> = sqlx::query_scalar(
            "delete from chat_members
             where chat_id = ?1 and user_id in (select unhex(value) from json_each(?2))
             returning user_id",
        )
        .bind(chat.as_uuid())
        .bind(json_ids(users.iter().map(UserId::as_uuid)))
        .fetch_all(&mut *tx)
        .await
        .map_err(store_error)?
        .into_iter()
        .collect();
        tx.commit().await.map_err(store_error)?;
        Ok(users
            .into_iter()
            .filter(|user| removed.contains(&user.as_uuid()))
            .collect())
    }

    #[tracing::instrument(skip_all, fields(chat_id = %chat))]
    async fn delete(&self, chat: ChatId) -> Result<bool, StoreError> {
        // `on delete cascade` (foreign keys are on for every connection) removes the
        // members and the messages with the chat, in the same transaction.
        let mut tx = self.pools.write().await?;
        let deleted = sqlx::query("delete from chats where id = ?1")
            .bind(chat.as_uuid())
            .execute(&mut *tx)
            .await
            .map_err(store_error)?;
        tx.commit().await.map_err(store_error)?;
        Ok(deleted.rows_affected() > 0)
    }
}
