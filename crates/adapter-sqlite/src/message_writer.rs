//! Group commit of new messages, on SQLite: the store's [`MessageWriter`] task takes the
//! messages waiting in its queue and this writer stores them in one write transaction
//! and one `fsync` (the queue, the order, back-pressure and the answers to each caller
//! are `group-commit`'s; the assembly of the answers is `sql-batch`'s: only the SQL and
//! the transaction are here).
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

use std::fmt::Write as _;

use domain::{ClientMsgId, NewMessage, StoreError};
use sql_batch::{Batch, LeftOutRow, MessageRow, WriteBatch};
use sqlx::{Sqlite, Transaction};
use uuid::Uuid;

use crate::error::store_error;
use crate::{Micros, Pools, now_micros};

/// The handle on the store's message writer task; every clone queues to the same task.
pub(crate) type MessageWriter = sql_batch::MessageWriter<Writer>;

/// Starts the writer task of the store behind `pools`, on the current Tokio runtime.
pub(crate) fn start(pools: Pools) -> MessageWriter {
    MessageWriter::start(Writer { pools })
}

/// Stores batches of messages, each in one transaction on the writing connection.
pub(crate) struct Writer {
    pools: Pools,
}

impl WriteBatch for Writer {
    type Time = Micros;

    /// Stores `batch` in one write transaction, explaining each message it left out
    /// inside it.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] when the transaction fails as a whole; nothing of the
    /// batch is stored then.
    async fn write(&mut self, batch: &mut Batch<'_, Micros>) -> Result<(), StoreError> {
        let mut tx = self.pools.write().await?;
        // Read once the lock is held: the batch's messages share the transaction's
        // time, and later batches cannot commit earlier, so time grows with `seq`
        // (unless the clock steps back).
        let now = now_micros();
        let json = json_rows(batch.messages());

        // One statement for the batch. The `where` leaves out a message whose chat or
        // sender does not exist (rather than fail the batch on the foreign key) or whose
        // sender is not a member of the chat, `on conflict do nothing` one that repeats
        // a client id, also of a message earlier in this very statement; `order by`
        // makes the autoincrement `seq` follow the queue. `where` before `on conflict`
        // keeps SQLite from reading it as a join's `on`.
        let inserted: Vec<MessageRow<Micros>> = sqlx::query_as(
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

        batch.stored(inserted);
        let left_out = batch.left_out();
        if !left_out.is_empty() {
            batch.explained(explain_left_out(&mut tx, &left_out).await?);
        }
        tx.commit().await.map_err(store_error)
    }
}

/// `messages` as the JSON array the statements read (see [`push_json_row`]).
fn json_rows<'a>(messages: impl Iterator<Item = (Uuid, &'a NewMessage)>) -> String {
    let mut json = String::from("[");
    for (i, (id, message)) in messages.enumerate() {
        if i > 0 {
            json.push(',');
        }
        push_json_row(&mut json, id, message);
    }
    json.push(']');
    json
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

/// Why each of the `left_out` messages was not stored: whether its chat and sender
/// exist, whether the sender is a member, and the earlier message with its client id.
/// Inside the batch's transaction, so it sees the messages the batch stored.
async fn explain_left_out(
    tx: &mut Transaction<'static, Sqlite>,
    left_out: &[&NewMessage],
) -> Result<Vec<LeftOutRow<Micros>>, StoreError> {
    // The id is unused here; the rows keep the same shape as the insert's.
    let json = json_rows(left_out.iter().map(|message| (Uuid::nil(), *message)));
    // Served by the partial unique index on (chat_id, sender_id, client_msg_id); a
    // message without a client id joins nothing (`null = null` is not true). An array's
    // keys count from 0, as a row's position does.
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn texts_become_hex_of_their_utf8_bytes() {
        assert_eq!(hex(""), "");
        assert_eq!(hex("a\0\"ü"), "610022c3bc");
    }
}
