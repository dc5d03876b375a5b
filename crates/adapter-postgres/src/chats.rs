//! [`ChatRepository`] on PostgreSQL: the `chats` and `chat_members` tables.

use std::collections::HashSet;

use async_trait::async_trait;
use domain::ports::ChatRepository;
use domain::{Chat, ChatId, ChatMember, ChatName, StoreError, UserId, Username};
use sqlx::{PgExecutor, PgPool};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::error::{invalid_row, store_error};
use crate::unique_except;

/// Chats and their membership as stored in PostgreSQL.
pub(crate) struct PgChatRepository {
    pool: PgPool,
}

impl PgChatRepository {
    /// A repository using `pool`.
    pub(crate) fn new(pool: PgPool) -> Self {
        Self { pool }
    }
}

/// A `chats` row.
#[derive(sqlx::FromRow)]
struct ChatRow {
    id: Uuid,
    name: String,
    owner_id: Uuid,
    created_at: OffsetDateTime,
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
            created_at: row.created_at,
        })
    }
}

/// A `chat_members` row joined with its user's name.
#[derive(sqlx::FromRow)]
struct MemberRow {
    user_id: Uuid,
    username: String,
    joined_at: OffsetDateTime,
}

impl TryFrom<MemberRow> for ChatMember {
    type Error = StoreError;

    fn try_from(row: MemberRow) -> Result<Self, StoreError> {
        Ok(ChatMember {
            user_id: UserId::from_uuid(row.user_id),
            username: Username::parse_existing(row.username).map_err(invalid_row("user"))?,
            joined_at: row.joined_at,
        })
    }
}

/// Adds `users` (each given once) to `chat` in the given order, skipping those already
/// in it, in one statement; returns those newly added, in the given order.
///
/// `order by` makes the identity `seq` (the order of joining) follow the given order. A
/// concurrent add of the same user waits on the primary key and then does nothing, so
/// exactly one of them reports the user as added.
async fn insert_members(
    executor: impl PgExecutor<'_>,
    chat: ChatId,
    users: &[UserId],
) -> Result<Vec<UserId>, StoreError> {
    if users.is_empty() {
        return Ok(Vec::new());
    }
    let ids: Vec<Uuid> = users.iter().map(UserId::as_uuid).collect();
    let added: HashSet<Uuid> = sqlx::query_scalar(
        "insert into chat_members (chat_id, user_id)
         select $1, given.id
         from unnest($2::uuid[]) with ordinality as given (id, position)
         order by given.position
         on conflict (chat_id, user_id) do nothing
         returning user_id",
    )
    .bind(chat.as_uuid())
    .bind(&ids)
    .fetch_all(executor)
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
impl ChatRepository for PgChatRepository {
    #[tracing::instrument(skip_all, fields(owner_id = %owner, members = members.len(), chat_id = tracing::field::Empty))]
    async fn create(
        &self,
        name: &ChatName,
        owner: UserId,
        members: &[UserId],
    ) -> Result<Chat, StoreError> {
        // One transaction: an unknown owner or member (a foreign-key violation, mapped to
        // `UnknownUser`) rolls everything back when `tx` is dropped unfinished.
        let mut tx = self.pool.begin().await.map_err(store_error)?;
        let row: ChatRow = sqlx::query_as(
            "insert into chats (id, name, owner_id)
             values ($1, $2, $3)
             returning id, name, owner_id, created_at",
        )
        .bind(Uuid::now_v7())
        .bind(name.as_str())
        .bind(owner.as_uuid())
        .fetch_one(&mut *tx)
        .await
        .map_err(store_error)?;
        let chat = Chat::try_from(row)?;
        tracing::Span::current().record("chat_id", tracing::field::display(chat.id));
        // The owner joins first, then the members in the order given.
        sqlx::query("insert into chat_members (chat_id, user_id) values ($1, $2)")
            .bind(chat.id.as_uuid())
            .bind(owner.as_uuid())
            .execute(&mut *tx)
            .await
            .map_err(store_error)?;
        insert_members(&mut *tx, chat.id, &unique_except(members, Some(owner))).await?;
        tx.commit().await.map_err(store_error)?;
        Ok(chat)
    }

    #[tracing::instrument(skip_all, fields(chat_id = %id))]
    async fn find(&self, id: ChatId) -> Result<Option<Chat>, StoreError> {
        let row: Option<ChatRow> =
            sqlx::query_as("select id, name, owner_id, created_at from chats where id = $1")
                .bind(id.as_uuid())
                .fetch_optional(&self.pool)
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
                            where m.chat_id = c.id and m.user_id = $2) as is_member
             from chats c where c.id = $1",
        )
        .bind(id.as_uuid())
        .bind(user.as_uuid())
        .fetch_optional(&self.pool)
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
             where m.user_id = $1
             order by c.created_at desc, c.id desc",
        )
        .bind(user.as_uuid())
        .fetch_all(&self.pool)
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
        let ids: Vec<Uuid> = chats.iter().map(ChatId::as_uuid).collect();
        let outside: Vec<Uuid> = sqlx::query_scalar(
            "select given.id
             from unnest($2::uuid[]) with ordinality as given (id, position)
             where not exists (
                 select 1 from chat_members m where m.chat_id = given.id and m.user_id = $1
             )
             order by given.position",
        )
        .bind(user.as_uuid())
        .bind(ids)
        .fetch_all(&self.pool)
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
             where m.chat_id = $1
             order by m.seq",
        )
        .bind(chat.as_uuid())
        .fetch_all(&self.pool)
        .await
        .map_err(store_error)?;
        rows.into_iter().map(ChatMember::try_from).collect()
    }

    #[tracing::instrument(skip_all, fields(chat_id = %chat, users = users.len()))]
    async fn add_members(&self, chat: ChatId, users: &[UserId]) -> Result<Vec<UserId>, StoreError> {
        // A single statement, so an unknown user or a vanished chat (foreign-key
        // violations, mapped to `UnknownUser` / `ChatGone`) adds nobody.
        insert_members(&self.pool, chat, &unique_except(users, None)).await
    }

    #[tracing::instrument(skip_all, fields(chat_id = %chat, users = users.len()))]
    async fn remove_members(
        &self,
        chat: ChatId,
        users: &[UserId],
    ) -> Result<Vec<UserId>, StoreError> {
        let ids: Vec<Uuid> = users.iter().map(UserId::as_uuid).collect();
        let removed: HashSet<Uuid> = sqlx::query_scalar(
            "delete from chat_members
             where chat_id = $1 and user_id = any($2::uuid[])
             returning user_id",
        )
        .bind(chat.as_uuid())
        .bind(ids)
        .fetch_all(&self.pool)
        .await
        .map_err(store_error)?
        .into_iter()
        .collect();
        Ok(unique_except(users, None)
            .into_iter()
            .filter(|user| removed.contains(&user.as_uuid()))
            .collect())
    }

    #[tracing::instrument(skip_all, fields(chat_id = %chat))]
    async fn delete(&self, chat: ChatId) -> Result<bool, StoreError> {
        // One statement is one transaction: `on delete cascade` removes the members and
        // the messages with the chat.
        let deleted = sqlx::query("delete from chats where id = $1")
            .bind(chat.as_uuid())
            .execute(&self.pool)
            .await
            .map_err(store_error)?;
        Ok(deleted.rows_affected() > 0)
    }
}
