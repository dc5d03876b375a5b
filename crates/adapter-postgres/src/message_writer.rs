//! Group commit of new messages, on PostgreSQL: the store's [`GroupCommit`] task takes
//! the messages waiting in its queue and this writer stores them in one statement, one
//! transaction and one WAL flush (the queue, the order, back-pressure and the answers to
//! each caller are `group-commit`'s).
//!
//! - **One statement.** A multi-row `insert … select from unnest(…)`, as a single
//!   statement its own transaction. Rows go in by their position in the batch, so the
//!   identity `seq` follows the order in which messages were queued. `created_at` is
//!   the transaction's start (`current_timestamp`, the column's default): equal within
//!   a batch, and a batch starts only after the one before committed, so it never
//!   decreases along `seq` (unless the clock steps back).
//! - **Per-message answers without aborting the batch.** In PostgreSQL an error
//!   aborts the whole transaction, so the statement raises none for one message: its
//!   `where` leaves out a message whose chat or sender does not exist, or whose sender
//!   is not a member of the chat (locking the rows it found, `for key share` as the
//!   foreign-key check itself would, so that a chat deleted meanwhile cannot fail the
//!   foreign key later in the statement, and a member removed meanwhile is removed
//!   after the message is stored, not during), and `on conflict do nothing` one that
//!   repeats a client id, also of a message earlier in the same batch. A second query
//!   then explains each message left out: `ChatGone`, `UnknownUser` or `NotMember`,
//!   else the first message with its client id. This `where` is a send's access check:
//!   there is no read per message before it. (The one text PostgreSQL cannot store, a
//!   NUL character, never gets here: the domain's text types refuse it.)
//!   One statement per batch rather than a savepoint per message (two more round
//!   trips each): with 64 messages a batch, pgbench measured 4.2 ms a batch against
//!   19.8 ms on the benchmark machine.
//! - **Failures.** If the statement fails (the connection, the commit), every caller
//!   of that batch gets [`StoreError::Unavailable`] ([`StoreError::Unreachable`] when
//!   the database cannot be reached, or the batch took longer than the store's
//!   timeout): nothing is acknowledged that was not committed. The connection is
//!   discarded, and the next batch gets a fresh one.
//! - **Connection.** The writer keeps one pooled connection while messages keep coming
//!   (no checkout and health check per batch), and gives it back after a second
//!   without work.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use domain::ports::{InsertAnswer, LeftOut, QueuedMessage};
use domain::{ClientMsgId, Message, NewMessage, StoreError};
use group_commit::{BatchWriter, GroupCommit, Limits, NotWritten};
use sqlx::pool::PoolConnection;
use sqlx::{PgConnection, PgPool, Postgres};
use uuid::Uuid;

use crate::error::{Inconsistent, store_error};
use crate::messages::MessageRow;

/// The sizes and times of the store's writer.
const LIMITS: Limits = Limits {
    // Large enough that a busy store commits hundreds per WAL flush; small enough that
    // one batch's parameters (contents of at most 4096 characters) stay a few megabytes.
    max_batch: 512,
    queue: 4 * 512,
    // How long the writer keeps its connection without work before it gives it back
    // to the pool, which checks a connection before handing it out again: so an idle
    // writer never writes on a connection the server closed meanwhile.
    idle_release: Duration::from_secs(1),
};

/// The handle on the store's message writer task; every clone queues to the same task.
pub(crate) type MessageWriter = GroupCommit<Writer>;

/// Starts the writer task of the store behind `pool`, on the current Tokio runtime. A
/// batch that takes longer than `timeout` (a database frozen or cut off while the
/// writer holds a connection) fails with [`StoreError::Unreachable`].
pub(crate) fn start(pool: PgPool, timeout: Duration) -> MessageWriter {
    GroupCommit::start(
        "postgres",
        Writer {
            pool,
            connection: None,
            timeout,
        },
        LIMITS,
    )
}

/// Queues `message` for the writer. The returned [`QueuedMessage`] answers once its
/// batch is committed (or has failed).
///
/// # Errors
/// [`StoreError::Unavailable`] when the writer has stopped; the answer also when the
/// batch failed.
pub(crate) async fn enqueue(
    writer: &MessageWriter,
    message: NewMessage,
) -> Result<QueuedMessage, StoreError> {
    let queued = writer.enqueue(message).await.map_err(not_written)?;
    Ok(QueuedMessage::new(async move {
        queued.await.map_err(not_written)?
    }))
}

/// A message that was not stored with its batch: the store is unreachable when the
/// batch failed for that reason or the writer has stopped, else unavailable.
fn not_written(err: NotWritten<StoreError>) -> StoreError {
    match &err {
        NotWritten::BatchFailed { source, .. }
            if matches!(**source, StoreError::Unreachable(_)) =>
        {
            StoreError::unreachable(err)
        }
        NotWritten::Stopped => StoreError::unreachable(err),
        _ => StoreError::unavailable(err),
    }
}

/// A batch that took longer than the store's timeout. It may still have been stored:
/// a client that retries with the same `clientMsgId` gets the stored message.
#[derive(Debug, thiserror::Error)]
#[error("the database did not store a batch within {0:?}")]
struct BatchTimedOut(Duration);

/// Stores batches of messages on one pooled connection, kept while messages keep
/// coming (no checkout and health check per batch).
pub(crate) struct Writer {
    pool: PgPool,
    connection: Option<PoolConnection<Postgres>>,
    /// The longest a batch may take, connecting included.
    timeout: Duration,
}

impl BatchWriter for Writer {
    type Item = NewMessage;
    type Answer = InsertAnswer;
    type Error = StoreError;

    async fn write_batch(
        &mut self,
        messages: &[&NewMessage],
    ) -> Result<Vec<InsertAnswer>, StoreError> {
        let mut conn = match self.connection.take() {
            Some(conn) => conn,
            None => self.pool.acquire().await.map_err(store_error)?,
        };
        let written = tokio::time::timeout(self.timeout, write_batch(&mut conn, messages))
            .await
            .unwrap_or_else(|_| Err(StoreError::unreachable(BatchTimedOut(self.timeout))));
        if let Ok(written) = &written {
            crate::metrics::stored(&written.answers);
        }
        match written {
            Ok(Written {
                answers,
                connection_failed: false,
            }) => {
                self.connection = Some(conn);
                Ok(answers)
            }
            outcome => {
                // It may be broken; a fresh one serves the next batch.
                conn.close_on_drop();
                outcome.map(|written| written.answers)
            }
        }
    }

    fn holds_idle_resources(&self) -> bool {
        self.connection.is_some()
    }

    fn release_idle_resources(&mut self) {
        self.connection = None;
    }
}

/// What a message left out of the batch's insert finds in the database.
#[derive(sqlx::FromRow)]
struct LeftOutRow {
    /// Its position (from 1) among the left-out messages.
    position: i64,
    chat_exists: bool,
    sender_exists: bool,
    sender_is_member: bool,
    /// The message stored earlier with the same client id, if any.
    #[sqlx(flatten)]
    first: FirstRow,
}

/// The earlier message a left-out one repeats the client id of: all `None` when there
/// is none.
#[derive(sqlx::FromRow)]
struct FirstRow {
    id: Option<Uuid>,
    chat_id: Option<Uuid>,
    sender_id: Option<Uuid>,
    content: Option<String>,
    client_msg_id: Option<String>,
    created_at: Option<time::OffsetDateTime>,
}

impl FirstRow {
    /// The message row, when there is one.
    fn into_row(self) -> Option<MessageRow> {
        Some(MessageRow {
            id: self.id?,
            chat_id: self.chat_id?,
            sender_id: self.sender_id?,
            content: self.content?,
            client_msg_id: self.client_msg_id,
            created_at: self.created_at?,
        })
    }
}

/// A batch that was stored.
struct Written {
    /// Each message's answer, in the batch's order.
    answers: Vec<InsertAnswer>,
    /// Whether a query failed after the commit (the left-out messages are then
    /// `Unavailable`), so that the connection is not to be trusted any more.
    connection_failed: bool,
}

/// Stores `messages` with one statement (one transaction) and answers each of them, in
/// order.
///
/// # Errors
/// [`StoreError::Unavailable`] when the statement fails; nothing of the batch is
/// stored then.
#[tracing::instrument(skip_all, fields(messages = messages.len()))]
async fn write_batch(
    conn: &mut PgConnection,
    messages: &[&NewMessage],
) -> Result<Written, StoreError> {
    let ids: Vec<Uuid> = messages.iter().map(|_| Uuid::now_v7()).collect();
    let chats: Vec<Uuid> = messages.iter().map(|m| m.chat_id.as_uuid()).collect();
    let senders: Vec<Uuid> = messages.iter().map(|m| m.sender_id.as_uuid()).collect();
    let contents: Vec<&str> = messages.iter().map(|m| m.content.as_str()).collect();
    let keys: Vec<Option<&str>> = messages
        .iter()
        .map(|m| m.client_msg_id.as_ref().map(ClientMsgId::as_str))
        .collect();

    // Rows go in by their position in the batch (the function scan yields them so, and
    // `order by` says it), so the identity `seq` follows the queue, and of two messages
    // with one client id the earlier is stored.
    let inserted: Vec<MessageRow> = sqlx::query_as(
        "insert into messages (id, chat_id, sender_id, content, client_msg_id)
         select given.id, given.chat_id, given.sender_id, given.content, given.client_msg_id
         from unnest($1::uuid[], $2::uuid[], $3::uuid[], $4::text[], $5::text[])
              with ordinality as given (id, chat_id, sender_id, content, client_msg_id, position)
         where exists (select 1 from chats where chats.id = given.chat_id for key share)
           and exists (select 1 from users where users.id = given.sender_id for key share)
           and exists (select 1 from chat_members m
                       where m.chat_id = given.chat_id and m.user_id = given.sender_id
                       for key share)
         order by given.position
         on conflict (chat_id, sender_id, client_msg_id) where client_msg_id is not null
         do nothing
         returning id, chat_id, sender_id, content, client_msg_id, created_at",
    )
    .bind(&ids)
    .bind(&chats)
    .bind(&senders)
    .bind(&contents)
    .bind(&keys)
    .fetch_all(&mut *conn)
    .await
    .map_err(store_error)?;

    // Committed: from here on, a failure may only cost the left-out messages their
    // explanation, never the stored ones their acknowledgement.
    let position: HashMap<Uuid, usize> = ids.iter().enumerate().map(|(i, id)| (*id, i)).collect();
    let mut answers: Vec<Option<InsertAnswer>> = messages.iter().map(|_| None).collect();
    for row in inserted {
        if let Some(&i) = position.get(&row.id) {
            answers[i] = Some(Message::try_from(row).map(|message| (message, true)));
        }
    }
    let left_out: Vec<usize> = (0..messages.len())
        .filter(|&i| answers[i].is_none())
        .collect();
    let mut connection_failed = false;
    if !left_out.is_empty() {
        match explain_left_out(conn, messages, &left_out).await {
            Ok(rows) => {
                for row in rows {
                    let Some(&i) = usize::try_from(row.position - 1)
                        .ok()
                        .and_then(|at| left_out.get(at))
                    else {
                        continue;
                    };
                    answers[i] = Some(row.answer());
                }
            }
            Err(err) => {
                connection_failed = true;
                let source = Arc::new(err);
                for &i in &left_out {
                    answers[i] = Some(Err(StoreError::unavailable(NotWritten::BatchFailed {
                        size: left_out.len(),
                        source: Arc::clone(&source),
                    })));
                }
            }
        }
    }
    let answers = answers
        .into_iter()
        .map(|answer| {
            answer.unwrap_or_else(|| {
                Err(StoreError::unavailable(Inconsistent(
                    "a message of a batch was neither stored nor explained",
                )))
            })
        })
        .collect();
    Ok(Written {
        answers,
        connection_failed,
    })
}

/// Why each of the `left_out` messages was not stored: whether its chat and sender
/// exist, whether the sender is a member, and the earlier message with its client id.
/// Runs after the batch committed, so it sees the messages the batch stored; a chat or
/// user found missing cannot have come back since (ids are never reused), but a member
/// may have been added since.
async fn explain_left_out(
    conn: &mut PgConnection,
    messages: &[&NewMessage],
    left_out: &[usize],
) -> Result<Vec<LeftOutRow>, StoreError> {
    let chats: Vec<Uuid> = left_out
        .iter()
        .map(|&i| messages[i].chat_id.as_uuid())
        .collect();
    let senders: Vec<Uuid> = left_out
        .iter()
        .map(|&i| messages[i].sender_id.as_uuid())
        .collect();
    let keys: Vec<Option<&str>> = left_out
        .iter()
        .map(|&i| messages[i].client_msg_id.as_ref().map(ClientMsgId::as_str))
        .collect();
    // Served by the partial unique index on (chat_id, sender_id, client_msg_id); a
    // message without a client id joins nothing (`null = null` is not true).
    sqlx::query_as(
        "select given.position,
                exists (select 1 from chats where chats.id = given.chat_id) as chat_exists,
                exists (select 1 from users where users.id = given.sender_id) as sender_exists,
                exists (select 1 from chat_members cm
                        where cm.chat_id = given.chat_id and cm.user_id = given.sender_id)
                  as sender_is_member,
                m.id, m.chat_id, m.sender_id, m.content, m.client_msg_id, m.created_at
         from unnest($1::uuid[], $2::uuid[], $3::text[])
              with ordinality as given (chat_id, sender_id, client_msg_id, position)
         left join messages m
           on m.chat_id = given.chat_id
          and m.sender_id = given.sender_id
          and m.client_msg_id = given.client_msg_id",
    )
    .bind(&chats)
    .bind(&senders)
    .bind(&keys)
    .fetch_all(&mut *conn)
    .await
    .map_err(store_error)
}

impl LeftOutRow {
    /// What the store answers for this message (the domain's [`LeftOut`]).
    fn answer(self) -> InsertAnswer {
        LeftOut {
            chat_exists: self.chat_exists,
            sender_exists: self.sender_exists,
            sender_is_member: self.sender_is_member,
            first: self.first.into_row().map(Message::try_from),
        }
        .answer()
    }
}
