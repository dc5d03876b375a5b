//! The database of a Nest.js messenger deployment (Prisma 6, the API this server
//! replaces) as the [`Source`] of an import: its `"User"`, `"Chat"`, `"ChatMember"`
//! and `"Message"` tables, read in one read-only transaction per table and never written.
//! Ids are text there (UUID v4 strings) and timestamps `timestamp(3)` in UTC; both are
//! read into our types here, and a row that cannot be is named in the error.

use std::str::FromStr;

use async_trait::async_trait;
use futures_util::StreamExt;
use futures_util::stream::BoxStream;
use import::{
    Source, SourceChat, SourceCounts, SourceError, SourceMember, SourceMessage, SourceUser,
};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{ConnectOptions, PgPool};
use time::{OffsetDateTime, PrimitiveDateTime};
use uuid::Uuid;

/// Why the old database cannot be opened.
#[derive(Debug, thiserror::Error)]
pub enum NestError {
    /// The URL cannot be parsed.
    #[error("the Nest.js database URL is invalid")]
    InvalidUrl(#[source] sqlx::Error),
    /// No connection opens.
    #[error("could not connect to the Nest.js database (is it running, and is the URL right?)")]
    Connect(#[source] sqlx::Error),
    /// It is not the database of a Nest.js messenger this importer knows.
    #[error(transparent)]
    Unsupported(SourceError),
}

/// The old deployment's database.
#[derive(Debug, Clone)]
pub struct NestDatabase {
    pool: PgPool,
}

/// The tables and columns an import reads; a database without one of them is not a
/// deployment this importer knows.
const EXPECTED: &[(&str, &[&str])] = &[
    ("User", &["id", "username", "password", "createdAt"]),
    ("Chat", &["id", "ownerId", "name", "createdAt"]),
    ("ChatMember", &["chatId", "userId", "joinedAt"]),
    (
        "Message",
        &["id", "chatId", "senderId", "content", "createdAt"],
    ),
];

impl NestDatabase {
    /// Connects to the old database at `url` and checks that it has the tables and
    /// columns an import reads.
    ///
    /// # Errors
    /// [`NestError`] when the URL is invalid, the database cannot be reached, or it is
    /// not a Nest.js messenger database of a known version (an older deployment whose
    /// `"Message"` table has no `"createdAt"`, say).
    pub async fn connect(url: &str) -> Result<Self, NestError> {
        // The whole history is one long query: not a "slow statement" worth a warning.
        let options = PgConnectOptions::from_str(url)
            .map_err(NestError::InvalidUrl)?
            .disable_statement_logging();
        let pool = PgPoolOptions::new()
            .max_connections(2)
            .connect_with(options)
            .await
            .map_err(NestError::Connect)?;
        let database = Self { pool };
        database
            .check_shape()
            .await
            .map_err(NestError::Unsupported)?;
        Ok(database)
    }

    /// Fails with [`SourceError::Unsupported`] naming the first missing table or column.
    async fn check_shape(&self) -> Result<(), SourceError> {
        let columns: Vec<(String, String)> = sqlx::query_as(
            "select table_name::text, column_name::text from information_schema.columns
             where table_schema = current_schema()",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(SourceError::unavailable)?;
        let has =
            |table: &str, column: &str| columns.iter().any(|(t, c)| t == table && c == column);
        for (table, wanted) in EXPECTED {
            if !columns.iter().any(|(t, _)| t == table) {
                return Err(SourceError::Unsupported(format!(
                    "the database has no \"{table}\" table: it is not a Nest.js messenger database"
                )));
            }
            if let Some(column) = wanted.iter().find(|column| !has(table, column)) {
                let hint = if *table == "Message" && *column == "createdAt" {
                    " (an older deployment: apply the Nest.js project's migrations to it first)"
                } else {
                    ""
                };
                return Err(SourceError::Unsupported(format!(
                    "the \"{table}\" table has no \"{column}\" column{hint}"
                )));
            }
        }
        Ok(())
    }

    /// Closes the connections.
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// `raw` as a UUID, or the error naming the row.
fn id(table: &str, raw: &str, column: &str) -> Result<Uuid, SourceError> {
    Uuid::parse_str(raw).map_err(|_| SourceError::Malformed {
        row: format!("\"{table}\" row with {column} {raw:?}"),
        why: format!("{column} is not a UUID"),
    })
}

/// A `timestamp(3) without time zone`, which the old API wrote in UTC.
fn utc(at: PrimitiveDateTime) -> OffsetDateTime {
    at.assume_utc()
}

#[async_trait]
impl Source for NestDatabase {
    async fn counts(&self) -> Result<SourceCounts, SourceError> {
        let (users, chats, members, messages): (i64, i64, i64, i64) = sqlx::query_as(
            r#"select (select count(*) from "User"), (select count(*) from "Chat"),
                      (select count(*) from "ChatMember"), (select count(*) from "Message")"#,
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
        let rows: Vec<(String, String, String, PrimitiveDateTime)> = sqlx::query_as(
            r#"select id, username, password, "createdAt" from "User"
               order by "createdAt", id collate "C""#,
        )
        .fetch_all(&self.pool)
        .await
        .map_err(SourceError::unavailable)?;
        rows.into_iter()
            .map(|(raw_id, username, password_hash, created_at)| {
                Ok(SourceUser {
                    id: id("User", &raw_id, "id")?,
                    username,
                    password_hash,
                    created_at: utc(created_at),
                })
            })
            .collect()
    }

    async fn chats(&self) -> Result<Vec<SourceChat>, SourceError> {
        let rows: Vec<(String, String, String, PrimitiveDateTime)> = sqlx::query_as(
            r#"select id, "ownerId", name, "createdAt" from "Chat"
               order by "createdAt", id collate "C""#,
        )
        .fetch_all(&self.pool)
        .await
        .map_err(SourceError::unavailable)?;
        rows.into_iter()
            .map(|(raw_id, owner, name, created_at)| {
                Ok(SourceChat {
                    id: id("Chat", &raw_id, "id")?,
                    owner_id: id("Chat", &owner, "ownerId")?,
                    name,
                    created_at: utc(created_at),
                })
            })
            .collect()
    }

    async fn members(&self) -> Result<Vec<SourceMember>, SourceError> {
        let rows: Vec<(String, String, PrimitiveDateTime)> = sqlx::query_as(
            r#"select "chatId", "userId", "joinedAt" from "ChatMember"
               order by "chatId", "joinedAt", "userId" collate "C""#,
        )
        .fetch_all(&self.pool)
        .await
        .map_err(SourceError::unavailable)?;
        rows.into_iter()
            .map(|(chat, user, joined_at)| {
                Ok(SourceMember {
                    chat_id: id("ChatMember", &chat, "chatId")?,
                    user_id: id("ChatMember", &user, "userId")?,
                    joined_at: utc(joined_at),
                })
            })
            .collect()
    }

    fn messages(&self) -> BoxStream<'_, Result<SourceMessage, SourceError>> {
        // Oldest first; messages of one instant by id (text order of lowercase UUIDs
        // is their byte order): the old database keeps no other order.
        sqlx::query_as::<_, (String, String, String, String, PrimitiveDateTime)>(
            r#"select id, "chatId", "senderId", content, "createdAt" from "Message"
               order by "createdAt", id collate "C""#,
        )
        .fetch(&self.pool)
        .map(|row| {
            let (raw_id, chat, sender, content, created_at) =
                row.map_err(SourceError::unavailable)?;
            Ok(SourceMessage {
                id: id("Message", &raw_id, "id")?,
                chat_id: id("Message", &chat, "chatId")?,
                sender_id: id("Message", &sender, "senderId")?,
                content,
                client_msg_id: None,
                created_at: utc(created_at),
            })
        })
        .boxed()
    }

    fn ties_ordered_by_id(&self) -> bool {
        true
    }
}
