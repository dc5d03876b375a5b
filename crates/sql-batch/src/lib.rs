//! What both SQL stores share in storing messages by group commit, so that only their
//! dialect differs: each store's [`WriteBatch`] keeps its SQL text and its transaction
//! style; this crate keeps the rest.
//!
//! - [`MessageWriter`]: the store's group-commit task ([`GroupCommit`]) as the app's
//!   [`MessageQueue`], with [`MessageWriter::insert`] for the domain's
//!   `MessageRepository::insert`, and the one mapping of a batch failure to a
//!   [`StoreError`].
//! - [`Batch`]: one batch being answered. A store's statement leaves out (rather than
//!   fails on) a message whose chat or sender does not exist, whose sender is not a
//!   member, or whose client id repeats one; the store hands the rows it stored to
//!   [`Batch::stored`], then its explanation of each message left out to
//!   [`Batch::explained`], by the message's index (from 0) in [`Batch::left_out`]. The
//!   answers come out in the batch's order, in the order of checks the port promises.
//! - [`MessageRow`], [`LeftOutRow`]: the rows those statements return, generic over the
//!   one thing in them that differs between the stores, how a time is kept
//!   ([`StoredTime`]), and the row → [`Message`] conversion.
//!
//! Knows no SQL and no driver: sqlx only for its `FromRow` derive.

use std::collections::HashMap;
use std::marker::PhantomData;
use std::sync::Arc;
use std::time::Duration;

use app::ports::{MessageQueue, QueuedMessage};
use async_trait::async_trait;
use domain::ports::InsertAnswer;
use domain::{
    ChatId, ClientMsgId, InvalidInput, Message, MessageContent, MessageId, NewMessage, StoreError,
    UserId,
};
use group_commit::{BatchWriter, GroupCommit, Limits, NotWritten};
use time::OffsetDateTime;
use uuid::Uuid;

/// How a store keeps a message's creation time: the one thing that differs between the
/// stores' rows of messages.
pub trait StoredTime: Send + 'static {
    /// The time as the domain's.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] when it is out of range.
    fn into_time(self) -> Result<OffsetDateTime, StoreError>;
}

/// A store that keeps times as they are (PostgreSQL's `timestamptz`).
impl StoredTime for OffsetDateTime {
    fn into_time(self) -> Result<OffsetDateTime, StoreError> {
        Ok(self)
    }
}

/// A store's way of storing one [`Batch`] of messages: its SQL and its transaction.
pub trait WriteBatch: Send + 'static {
    /// How the store keeps a message's creation time.
    type Time: StoredTime;

    /// Stores `batch` (one transaction, one flush), telling the batch what was stored
    /// ([`Batch::stored`]) and why each message left out was ([`Batch::explained`], or
    /// [`Batch::unexplained`]).
    ///
    /// # Errors
    /// When the batch as a whole failed: nothing of it may have been stored then.
    fn write(
        &mut self,
        batch: &mut Batch<'_, Self::Time>,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Whether the writer holds something between batches (a pooled connection).
    fn holds_idle_resources(&self) -> bool {
        false
    }

    /// Gives back what [`Self::holds_idle_resources`] reported, after a while without
    /// work.
    fn release_idle_resources(&mut self) {}
}

/// The sizes and times of a store's writer. Large enough that a busy store commits
/// hundreds of messages per flush; small enough that one batch's parameters (contents
/// of at most 4096 characters) stay a few megabytes.
const LIMITS: Limits = Limits {
    max_batch: 512,
    queue: 4 * 512,
    // How long a writer keeps its connection without work before it gives it back to
    // the pool, which checks a connection before handing it out again: so an idle
    // writer never writes on a connection the server closed meanwhile.
    idle_release: Duration::from_secs(1),
};

/// A store's message writer: one group-commit task, storing with `W`. Cheap to clone;
/// every clone queues to the same task.
pub struct MessageWriter<W: WriteBatch> {
    commit: GroupCommit<Writer<W>>,
}

impl<W: WriteBatch> Clone for MessageWriter<W> {
    fn clone(&self) -> Self {
        Self {
            commit: self.commit.clone(),
        }
    }
}

impl<W: WriteBatch> std::fmt::Debug for MessageWriter<W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.commit.fmt(f)
    }
}

impl<W: WriteBatch> MessageWriter<W> {
    /// Starts the writer task of the store named `store` (its metrics' label), storing
    /// with `writer`, on the current Tokio runtime.
    ///
    /// # Panics
    /// Outside a Tokio runtime.
    pub fn start(store: &'static str, writer: W) -> Self {
        Self {
            commit: GroupCommit::start(
                store,
                Writer {
                    inner: writer,
                    store,
                },
                LIMITS,
            ),
        }
    }

    /// Stores `message` and answers once it is committed: what the domain's
    /// `MessageRepository::insert` answers.
    ///
    /// # Errors
    /// As `MessageRepository::insert`; [`StoreError::Unavailable`] (or
    /// [`StoreError::Unreachable`]) when its batch failed or the writer has stopped.
    pub async fn insert(&self, message: &NewMessage) -> InsertAnswer {
        self.enqueue(message).await?.await
    }

    /// Stops the task after it has stored the messages already queued; later messages
    /// are refused.
    pub async fn stop(&self) {
        self.commit.stop().await;
    }
}

#[async_trait]
impl<W: WriteBatch> MessageQueue for MessageWriter<W> {
    #[tracing::instrument(
        skip_all,
        fields(chat_id = %message.chat_id, sender_id = %message.sender_id)
    )]
    async fn enqueue(&self, message: &NewMessage) -> Result<QueuedMessage, StoreError> {
        let queued = self
            .commit
            .enqueue(message.clone())
            .await
            .map_err(not_written)?;
        Ok(Box::pin(async move { queued.await.map_err(not_written)? }))
    }
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

/// A store's [`WriteBatch`] as the group-commit task's [`BatchWriter`].
struct Writer<W> {
    inner: W,
    /// The store's name, the `store` label of its metrics.
    store: &'static str,
}

impl<W: WriteBatch> BatchWriter for Writer<W> {
    type Item = NewMessage;
    type Answer = InsertAnswer;
    type Error = StoreError;

    #[tracing::instrument(skip_all, fields(messages = messages.len()))]
    async fn write_batch(
        &mut self,
        messages: &[&NewMessage],
    ) -> Result<Vec<InsertAnswer>, StoreError> {
        let mut batch = Batch::new(messages);
        self.inner.write(&mut batch).await?;
        let answers = batch.answers();
        count_stored(self.store, &answers);
        Ok(answers)
    }

    fn holds_idle_resources(&self) -> bool {
        self.inner.holds_idle_resources()
    }

    fn release_idle_resources(&mut self) {
        self.inner.release_idle_resources();
    }
}

/// Describes the metrics the SQL stores share, their group commit's included, to the
/// installed recorder (the `# HELP` lines).
pub fn describe_metrics() {
    group_commit::describe_metrics();
    metrics::describe_counter!(
        "messenger_messages_stored_total",
        "New messages committed (a repeated clientMsgId is not counted)."
    );
    metrics::describe_gauge!(
        "messenger_db_pool_connections",
        "Database connections open, in use or idle, read at each scrape."
    );
    metrics::describe_gauge!(
        "messenger_db_pool_max_connections",
        "The most connections each database pool opens."
    );
}

/// Sets the pool gauges of the pool `name` of the store `store` from `pool` as it is
/// now (called when `/metrics` is scraped).
pub fn record_pool<DB: sqlx::Database>(
    store: &'static str,
    name: &'static str,
    pool: &sqlx::Pool<DB>,
) {
    let size = pool.size();
    let idle = u32::try_from(pool.num_idle()).unwrap_or(u32::MAX);
    let labels = |state: &'static str| [("store", store), ("pool", name), ("state", state)];
    metrics::gauge!("messenger_db_pool_connections", &labels("in_use"))
        .set(size.saturating_sub(idle));
    metrics::gauge!("messenger_db_pool_connections", &labels("idle")).set(idle);
    metrics::gauge!("messenger_db_pool_max_connections", "store" => store, "pool" => name)
        .set(pool.options().get_max_connections());
}

/// Counts the new messages among a committed batch's answers (a repeated `clientMsgId`
/// answers the message stored before, which is not stored again).
fn count_stored(store: &'static str, answers: &[InsertAnswer]) {
    let new = answers
        .iter()
        .filter(|answer| matches!(answer, Ok((_, true))))
        .count();
    metrics::counter!("messenger_messages_stored_total", "store" => store).increment(new as u64);
}

/// One batch of messages being stored, and each one's answer as the store finds it.
pub struct Batch<'a, T> {
    messages: &'a [&'a NewMessage],
    /// Each message's fresh id, in the batch's order.
    ids: Vec<Uuid>,
    answers: Vec<Option<InsertAnswer>>,
    time: PhantomData<fn() -> T>,
}

impl<'a, T: StoredTime> Batch<'a, T> {
    /// A batch of `messages`, each given a fresh id, none answered yet.
    fn new(messages: &'a [&'a NewMessage]) -> Self {
        Self {
            messages,
            ids: messages.iter().map(|_| Uuid::now_v7()).collect(),
            answers: messages.iter().map(|_| None).collect(),
            time: PhantomData,
        }
    }

    /// Each message with the fresh id to store it under, in the batch's order (the
    /// order in which they were queued, which their `seq` must follow).
    pub fn messages(&self) -> impl Iterator<Item = (Uuid, &'a NewMessage)> + '_ {
        self.ids.iter().copied().zip(self.messages.iter().copied())
    }

    /// Takes the rows the insert stored: each is its message's answer, new.
    pub fn stored(&mut self, rows: Vec<MessageRow<T>>) {
        let index: HashMap<Uuid, usize> = self
            .ids
            .iter()
            .enumerate()
            .map(|(i, id)| (*id, i))
            .collect();
        for row in rows {
            if let Some(&i) = index.get(&row.id) {
                self.answers[i] = Some(row.into_message().map(|message| (message, true)));
            }
        }
    }

    /// The messages not answered yet (after [`Self::stored`]: those the insert left
    /// out), in the batch's order. A [`LeftOutRow`]'s `position` is an index in it.
    pub fn left_out(&self) -> Vec<&'a NewMessage> {
        self.unanswered().map(|i| self.messages[i]).collect()
    }

    /// Takes the explanation of each message left out: a row's `position` is the
    /// message's index (from 0) in [`Self::left_out`].
    pub fn explained(&mut self, rows: Vec<LeftOutRow<T>>) {
        let left_out: Vec<usize> = self.unanswered().collect();
        for row in rows {
            let Some(&i) = usize::try_from(row.position)
                .ok()
                .and_then(|at| left_out.get(at))
            else {
                continue;
            };
            self.answers[i] = Some(row.answer());
        }
    }

    /// The messages left out could not be explained (a query failed after the commit):
    /// each is [`StoreError::Unavailable`] for `err`.
    pub fn unexplained(&mut self, err: StoreError) {
        let left_out: Vec<usize> = self.unanswered().collect();
        let source = Arc::new(err);
        for &i in &left_out {
            self.answers[i] = Some(Err(StoreError::unavailable(NotWritten::BatchFailed {
                size: left_out.len(),
                source: Arc::clone(&source),
            })));
        }
    }

    /// The indexes of the messages without an answer yet.
    fn unanswered(&self) -> impl Iterator<Item = usize> + '_ {
        (0..self.answers.len()).filter(|&i| self.answers[i].is_none())
    }

    /// Every message's answer, in the batch's order; one neither stored nor explained
    /// (which the store's schema rules out) is unavailable.
    fn answers(self) -> Vec<InsertAnswer> {
        self.answers
            .into_iter()
            .map(|answer| {
                answer.unwrap_or_else(|| {
                    Err(StoreError::unavailable(Inconsistent(
                        "a message of a batch was neither stored nor explained",
                    )))
                })
            })
            .collect()
    }
}

/// The store answered something that its own schema rules out.
#[derive(Debug, thiserror::Error)]
#[error("the database answered inconsistently: {0}")]
struct Inconsistent(&'static str);

/// A stored message that no longer passes the domain's validation (a rule was
/// tightened, or the row was written by hand). Reported as [`StoreError::Unavailable`],
/// never a panic.
#[derive(Debug, thiserror::Error)]
#[error("a stored message fails validation")]
struct InvalidMessage(#[source] InvalidInput);

/// A `messages` row.
#[derive(sqlx::FromRow)]
pub struct MessageRow<T: StoredTime> {
    id: Uuid,
    chat_id: Uuid,
    sender_id: Uuid,
    content: String,
    client_msg_id: Option<String>,
    created_at: T,
}

impl<T: StoredTime> MessageRow<T> {
    /// The message, validated.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] when the row breaks the domain's rules.
    pub fn into_message(self) -> Result<Message, StoreError> {
        let invalid = |err| StoreError::unavailable(InvalidMessage(err));
        Ok(Message {
            id: MessageId::from_uuid(self.id),
            chat_id: ChatId::from_uuid(self.chat_id),
            sender_id: UserId::from_uuid(self.sender_id),
            content: MessageContent::parse(self.content).map_err(invalid)?,
            client_msg_id: self
                .client_msg_id
                .map(ClientMsgId::parse)
                .transpose()
                .map_err(invalid)?,
            created_at: self.created_at.into_time()?,
        })
    }
}

/// What a message left out of a batch's insert finds in the database: the columns
/// `position, chat_exists, sender_exists, sender_is_member`, then the earlier message
/// with its client id (`id, chat_id, sender_id, content, client_msg_id, created_at`, all
/// null when there is none).
#[derive(sqlx::FromRow)]
pub struct LeftOutRow<T: StoredTime> {
    /// Its index (from 0) among the messages left out, as [`Batch::left_out`] lists them.
    position: i64,
    chat_exists: bool,
    sender_exists: bool,
    sender_is_member: bool,
    #[sqlx(flatten)]
    first: FirstRow<T>,
}

/// The earlier message a left-out one repeats the client id of: all `None` when there
/// is none.
#[derive(sqlx::FromRow)]
struct FirstRow<T: StoredTime> {
    id: Option<Uuid>,
    chat_id: Option<Uuid>,
    sender_id: Option<Uuid>,
    content: Option<String>,
    client_msg_id: Option<String>,
    created_at: Option<T>,
}

impl<T: StoredTime> LeftOutRow<T> {
    /// What the store answers for this message: `ChatGone`, `UnknownUser` or
    /// `NotMember`, in this order; else the first message with the same client id, with
    /// `false`.
    fn answer(self) -> InsertAnswer {
        if !self.chat_exists {
            return Err(StoreError::ChatGone);
        }
        if !self.sender_exists {
            return Err(StoreError::UnknownUser);
        }
        match self.first.into_row() {
            Some(first) if self.sender_is_member => first.into_message().map(|m| (m, false)),
            // Not a member when the insert ran. One found a member without a repeated
            // client id was added after the insert (a store that explains after its
            // commit): a repeat is the only other reason to be left out, and stored
            // messages go only with their chat or sender.
            _ => Err(StoreError::NotMember),
        }
    }
}

impl<T: StoredTime> FirstRow<T> {
    /// The message row, when there is one.
    fn into_row(self) -> Option<MessageRow<T>> {
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

#[cfg(test)]
mod tests;
