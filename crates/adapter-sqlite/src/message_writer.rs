//! Group commit of new messages, on SQLite: the store's [`GroupCommit`] task takes the
//! messages waiting in its queue and this writer stores them in one write transaction
//! and one `fsync` (the queue, the order, back-pressure and the answers to each caller
//! are `group-commit`'s).
//!
//! - **One transaction.** A `begin immediate` transaction on the single writing
//!   connection, with one statement reading the batch as a JSON array; an `order by`
//!   on the batch's position makes `seq` follow the order in which messages were
//!   queued.
//! - **Per-message answers.** A message to a chat that does not exist, from a sender
//!   who does not, or from a sender who is not a member of the chat, is left out by
//!   the insert's own `where` (the transaction holds the write lock, so the check stays
//!   true until commit) and answered `ChatGone`, `UnknownUser` or `NotMember`; a
//!   repeated client id (of an earlier message, or of one earlier in the same batch) is
//!   left out by `on conflict do nothing` and answered with the first message. The
//!   rest of the batch is stored regardless. This `where` is a send's access check:
//!   there is no read per message before it.
//! - **Failures.** If the transaction fails as a whole (the lock, the disk, the
//!   commit), every caller of that batch gets [`StoreError::Unavailable`]: nothing is
//!   acknowledged that was not committed.
//! - **Fairness.** The writer takes the one writing connection per batch, queuing for
//!   it like every other write (users, chats), so it cannot starve them.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::time::Duration;

use domain::ports::{InsertAnswer, LeftOut, QueuedMessage};
use domain::{ClientMsgId, Message, NewMessage, StoreError};
use group_commit::{BatchWriter, GroupCommit, Limits, NotWritten};
use sqlx::{Sqlite, Transaction};
use uuid::Uuid;

use crate::error::{Inconsistent, store_error};
use crate::messages::MessageRow;
use crate::{Pools, now_micros};

/// The sizes of the store's writer.
const LIMITS: Limits = Limits {
    // Large enough that a busy store commits hundreds per `fsync`; small enough that
    // one batch's statement (each message's content hex-encoded, at most 4096
    // characters) stays a few megabytes.
    max_batch: 512,
    queue: 4 * 512,
    // Unused: the writer holds nothing between batches.
    idle_release: Duration::from_secs(1),
};

/// The handle on the store's message writer task; every clone queues to the same task.
pub(crate) type MessageWriter = GroupCommit<Writer>;

/// Starts the writer task of the store behind `pools`, on the current Tokio runtime.
pub(crate) fn start(pools: Pools) -> MessageWriter {
    GroupCommit::start("sqlite", Writer { pools }, LIMITS)
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

/// Stores batches of messages, each in one transaction on the writing connection.
pub(crate) struct Writer {
    pools: Pools,
}

impl BatchWriter for Writer {
    type Item = NewMessage;
    type Answer = InsertAnswer;
    type Error = StoreError;

    async fn write_batch(
        &mut self,
        messages: &[&NewMessage],
    ) -> Result<Vec<InsertAnswer>, StoreError> {
        let written = write_batch(&self.pools, messages).await;
        if let Ok(answers) = &written {
            crate::metrics::stored(answers);
        }
        written
    }
}

/// A message as the batch statement reads it: `[id, chat, sender, content, client id]`
/// in a JSON array, each a hex string (ids as 32 digits, texts as their UTF-8 bytes) or
/// `null`. Hex needs no escaping, and `unhex` gives back every byte of a text.
fn push_json_row(json: &mut String, id: Uuid, message: &NewMessage) {
    let client_msg_id = message.client_msg_id.as_ref().map(ClientMsgId::as_str);
    // Writing to a String cannot fail.
    let _ = write!(
        json,
        r#"["{}","{}","{}","{}","#,
        id.simple(),
        message.chat_id.as_uuid().simple(),
        message.sender_id.as_uuid().simple(),
        hex(message.content.as_str()),
    );
    match client_msg_id {
        Some(key) => {
            let _ = write!(json, r#""{}"]"#, hex(key));
        }
        None => json.push_str("null]"),
    }
}

/// `text`'s UTF-8 bytes as lowercase hex digits.
fn hex(text: &str) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(text.len() * 2);
    for byte in text.bytes() {
        out.push(char::from(DIGITS[usize::from(byte >> 4)]));
        out.push(char::from(DIGITS[usize::from(byte & 0xf)]));
    }
    out
}

/// What a message left out of the batch's insert finds in the database.
#[derive(sqlx::FromRow)]
struct LeftOutRow {
    /// Its position in the JSON array of left-out messages.
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
    created_at: Option<i64>,
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

/// Stores `messages` in one write transaction and answers each of them, in order.
///
/// # Errors
/// [`StoreError::Unavailable`] when the transaction fails as a whole; nothing of the
/// batch is stored then.
#[tracing::instrument(skip_all, fields(messages = messages.len()))]
async fn write_batch(
    pools: &Pools,
    messages: &[&NewMessage],
) -> Result<Vec<InsertAnswer>, StoreError> {
    let mut tx = pools.write().await?;
    // Read once the lock is held: the batch's messages share the transaction's time,
    // and later batches cannot commit earlier, so time grows with `seq` (unless the
    // clock steps back).
    let now = now_micros();
    let ids: Vec<Uuid> = messages.iter().map(|_| Uuid::now_v7()).collect();
    let mut json = String::from("[");
    for (i, (id, message)) in ids.iter().zip(messages).enumerate() {
        if i > 0 {
            json.push(',');
        }
        push_json_row(&mut json, *id, message);
    }
    json.push(']');

    // One statement for the batch. The `where` leaves out a message whose chat or
    // sender does not exist (rather than fail the batch on the foreign key) or whose
    // sender is not a member of the chat, `on
    // conflict do nothing` one that repeats a client id, also of a message earlier in
    // this very statement; `order by` makes the autoincrement `seq` follow the queue.
    // `where` before `on conflict` keeps SQLite from reading it as a join's `on`.
    let inserted: Vec<MessageRow> = sqlx::query_as(
        "insert into messages (id, chat_id, sender_id, content, client_msg_id, created_at)
         select unhex(given.value ->> 0), unhex(given.value ->> 1), unhex(given.value ->> 2),
                cast(unhex(given.value ->> 3) as text), cast(unhex(given.value ->> 4) as text),
                ?2
         from json_each(?1) as given
         where exists (select 1 from chats where id = unhex(given.value ->> 1))
           and exists (select 1 from users where id = unhex(given.value ->> 2))
           and exists (select 1 from chat_members
                       where chat_id = unhex(given.value ->> 1)
                         and user_id = unhex(given.value ->> 2))
         order by given.key
         on conflict (chat_id, sender_id, client_msg_id) where client_msg_id is not null
         do nothing
         returning id, chat_id, sender_id, content, client_msg_id, created_at",
    )
    .bind(&json)
    .bind(now)
    .fetch_all(&mut *tx)
    .await
    .map_err(store_error)?;

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
    if !left_out.is_empty() {
        for row in explain_left_out(&mut tx, messages, &left_out).await? {
            let Some(&i) = usize::try_from(row.position)
                .ok()
                .and_then(|at| left_out.get(at))
            else {
                continue;
            };
            answers[i] = Some(row.answer());
        }
    }
    tx.commit().await.map_err(store_error)?;
    Ok(answers
        .into_iter()
        .map(|answer| {
            answer.unwrap_or_else(|| {
                Err(StoreError::unavailable(Inconsistent(
                    "a message of a batch was neither stored nor explained",
                )))
            })
        })
        .collect())
}

/// Why each of the `left_out` messages was not stored: whether its chat and sender
/// exist, whether the sender is a member, and the earlier message with its client id.
/// Inside the batch's transaction, so it sees the messages the batch stored.
async fn explain_left_out(
    tx: &mut Transaction<'static, Sqlite>,
    messages: &[&NewMessage],
    left_out: &[usize],
) -> Result<Vec<LeftOutRow>, StoreError> {
    let mut json = String::from("[");
    for (n, &i) in left_out.iter().enumerate() {
        if n > 0 {
            json.push(',');
        }
        // The id is unused here; the row keeps the same shape as the insert's.
        push_json_row(&mut json, Uuid::nil(), messages[i]);
    }
    json.push(']');
    // Served by the partial unique index on (chat_id, sender_id, client_msg_id); a
    // message without a client id joins nothing (`null = null` is not true).
    sqlx::query_as(
        "select given.key as position,
                exists (select 1 from chats where id = unhex(given.value ->> 1)) as chat_exists,
                exists (select 1 from users where id = unhex(given.value ->> 2)) as sender_exists,
                exists (select 1 from chat_members
                        where chat_id = unhex(given.value ->> 1)
                          and user_id = unhex(given.value ->> 2)) as sender_is_member,
                m.id, m.chat_id, m.sender_id, m.content, m.client_msg_id, m.created_at
         from json_each(?1) as given
         left join messages m
           on m.chat_id = unhex(given.value ->> 1)
          and m.sender_id = unhex(given.value ->> 2)
          and m.client_msg_id = cast(unhex(given.value ->> 4) as text)",
    )
    .bind(&json)
    .fetch_all(&mut **tx)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn texts_become_hex_of_their_utf8_bytes() {
        assert_eq!(hex(""), "");
        assert_eq!(hex("a\0\"ü"), "610022c3bc");
    }
}
