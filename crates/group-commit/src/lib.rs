//! Group commit, whatever the store: one task takes every item waiting in a queue,
//! writes them as one batch (one transaction, one flush to disk), and answers each
//! caller only once the batch is durable.
//!
//! A durable commit waits for its flush however little it holds, so one commit per item
//! caps a store at about one item per flush. Here a caller queues its item with a
//! one-shot channel for the answer; the task takes whatever is queued (up to
//! [`Limits::max_batch`]), hands it to the store's [`BatchWriter`], and sends each
//! caller its answer. Nothing is held back to wait for more: a lone item is written at
//! once, and batches grow by themselves while a write is under way (natural batching).
//!
//! What the task guarantees, for every store:
//! - **Order.** One task, a FIFO queue, one batch at a time: items reach the writer in
//!   the order they were queued. An item is queued when [`GroupCommit::enqueue`]
//!   returns.
//! - **Nothing acknowledged that was not written.** A batch that fails as a whole
//!   answers every one of its callers [`NotWritten::BatchFailed`].
//! - **Abandoned items are not written.** A caller that stopped waiting before its
//!   batch was taken cannot be told the outcome; like a transaction cancelled before
//!   its commit, its item is dropped.
//! - **Back-pressure.** A caller that finds the queue full waits for room; it is never
//!   refused or dropped.
//! - **A clean stop.** [`GroupCommit::stop`] writes what was queued, refuses what comes
//!   later, and returns when the task has finished.
//!
//! What stays with the store: how a batch is written, and the answer of each item in it
//! (an item may fail on its own without failing its batch mates).
//!
//! Each task reports, under the name it was started with (the `store` label), the size
//! of every batch (`messenger_group_commit_batch_size`, items) and how long its write
//! took (`messenger_group_commit_duration_seconds`), through the `metrics` facade: a
//! process without a recorder pays nothing for them.

use std::error::Error;
use std::fmt;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use tokio::sync::{Notify, mpsc, oneshot, watch};

/// A store's way of writing one batch.
pub trait BatchWriter: Send + 'static {
    /// What a caller asks to write.
    type Item: Send + Sync + 'static;
    /// What a caller is told once its batch is written.
    type Answer: Send + 'static;
    /// Why a batch as a whole was not written.
    type Error: Error + Send + Sync + 'static;

    /// Writes `items` as one batch, durably, and answers each of them, in order (one
    /// answer per item).
    ///
    /// # Errors
    /// When the batch as a whole failed: nothing of it may have been written then.
    fn write_batch(
        &mut self,
        items: &[&Self::Item],
    ) -> impl Future<Output = Result<Vec<Self::Answer>, Self::Error>> + Send;

    /// Whether the writer holds something between batches (a pooled connection) that
    /// it should give back when there is no work.
    fn holds_idle_resources(&self) -> bool {
        false
    }

    /// Gives back what [`Self::holds_idle_resources`] reported: called after
    /// [`Limits::idle_release`] without work.
    fn release_idle_resources(&mut self) {}
}

/// The sizes and times of a group-commit task.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Most items written in one batch.
    pub max_batch: usize,
    /// Most items waiting for the task; a caller beyond it waits for room.
    pub queue: usize,
    /// How long the task waits without work before it tells the writer to release its
    /// idle resources.
    pub idle_release: Duration,
}

/// Why an item was not written (beyond the answer the store gives the item itself).
#[derive(Debug, thiserror::Error)]
pub enum NotWritten<E: Error + 'static> {
    /// The task has stopped (the store was closed), so the item was not written.
    #[error("the writer has stopped (the store is closed)")]
    Stopped,
    /// The item's batch failed as a whole.
    #[error("writing a batch of {size} failed")]
    BatchFailed {
        /// How many items the batch held.
        size: usize,
        /// Why; shared by every item of the batch.
        #[source]
        source: Arc<E>,
    },
    /// The writer answered fewer items than its batch held: a bug in the store, told to
    /// the caller rather than left waiting.
    #[error("the writer gave this item of a batch no answer")]
    Unanswered,
}

/// What a caller is told.
type Outcome<W> = Result<<W as BatchWriter>::Answer, NotWritten<<W as BatchWriter>::Error>>;

/// One queued item and where its answer goes.
struct Job<W: BatchWriter> {
    item: W::Item,
    reply: oneshot::Sender<Outcome<W>>,
}

/// The handle on a group-commit task. Cheap to clone; every clone queues to the same
/// task.
pub struct GroupCommit<W: BatchWriter> {
    queue: mpsc::Sender<Job<W>>,
    /// Tells the task to stop taking new items.
    stop: Arc<Notify>,
    /// Never sent on: it closes when the task has finished.
    finished: watch::Receiver<()>,
}

impl<W: BatchWriter> Clone for GroupCommit<W> {
    fn clone(&self) -> Self {
        Self {
            queue: self.queue.clone(),
            stop: Arc::clone(&self.stop),
            finished: self.finished.clone(),
        }
    }
}

impl<W: BatchWriter> fmt::Debug for GroupCommit<W> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GroupCommit")
            .field(
                "queued",
                &(self.queue.max_capacity() - self.queue.capacity()),
            )
            .finish_non_exhaustive()
    }
}

/// An item in the queue; resolves to its answer once its batch is written (or failed).
/// Dropping it before the task takes the item's batch withdraws the item.
#[must_use = "an item whose answer nobody awaits is withdrawn"]
pub struct Queued<W: BatchWriter> {
    answer: oneshot::Receiver<Outcome<W>>,
}

impl<W: BatchWriter> fmt::Debug for Queued<W> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Queued").finish_non_exhaustive()
    }
}

impl<W: BatchWriter> Future for Queued<W> {
    type Output = Outcome<W>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        // The task drops a reply unanswered only when it stops.
        Pin::new(&mut self.answer)
            .poll(cx)
            .map(|answer| answer.unwrap_or(Err(NotWritten::Stopped)))
    }
}

impl<W: BatchWriter> GroupCommit<W> {
    /// Starts the task that writes with `writer`, on the current Tokio runtime. `name`
    /// labels its metrics (the store's name, e.g. `postgres`).
    ///
    /// # Panics
    /// Outside a Tokio runtime, or when `limits` allow no item in a batch or the queue.
    pub fn start(name: &'static str, writer: W, limits: Limits) -> Self {
        assert!(
            limits.max_batch > 0 && limits.queue > 0,
            "a group commit needs room for at least one item"
        );
        let (queue, jobs) = mpsc::channel(limits.queue);
        let stop = Arc::new(Notify::new());
        let (finished_tx, finished) = watch::channel(());
        let metrics = BatchMetrics::named(name);
        tokio::spawn(run(
            writer,
            limits,
            metrics,
            jobs,
            Arc::clone(&stop),
            finished_tx,
        ));
        Self {
            queue,
            stop,
            finished,
        }
    }

    /// Queues `item` (waiting for room when the queue is full) and returns once it is
    /// queued: its place in the order of writes is then fixed. Await the [`Queued`] for
    /// its answer.
    ///
    /// # Errors
    /// [`NotWritten::Stopped`] when the task has stopped.
    pub async fn enqueue(&self, item: W::Item) -> Result<Queued<W>, NotWritten<W::Error>> {
        let (reply, answer) = oneshot::channel();
        self.queue
            .send(Job { item, reply })
            .await
            .map_err(|_| NotWritten::Stopped)?;
        Ok(Queued { answer })
    }

    /// Queues `item` and waits until its batch is written (or has failed).
    ///
    /// # Errors
    /// As [`Self::enqueue`] and [`Queued`].
    pub async fn write(&self, item: W::Item) -> Outcome<W> {
        self.enqueue(item).await?.await
    }

    /// Stops the task: items queued already are still written, later ones are refused
    /// ([`NotWritten::Stopped`]). Returns when the task has finished and dropped its
    /// writer.
    pub async fn stop(&self) {
        self.stop.notify_one();
        let mut finished = self.finished.clone();
        // Errs once the task has dropped its sender, that is, finished.
        while finished.changed().await.is_ok() {}
    }
}

/// The task: takes what is queued, writes it as one batch, answers, repeats; until
/// stopped (then it writes what was queued before) or every handle is dropped.
async fn run<W: BatchWriter>(
    mut writer: W,
    limits: Limits,
    metrics: BatchMetrics,
    mut queue: mpsc::Receiver<Job<W>>,
    stop: Arc<Notify>,
    _finished: watch::Sender<()>,
) {
    let mut jobs = Vec::with_capacity(limits.max_batch);
    let mut stopping = false;
    loop {
        tokio::select! {
            biased;
            () = stop.notified(), if !stopping => {
                // Refuses new items; those already queued are still received.
                queue.close();
                stopping = true;
                continue;
            }
            received = queue.recv_many(&mut jobs, limits.max_batch) => {
                if received == 0 {
                    return;
                }
            }
            () = tokio::time::sleep(limits.idle_release), if writer.holds_idle_resources() => {
                writer.release_idle_resources();
                continue;
            }
        }
        jobs.retain(|job: &Job<W>| !job.reply.is_closed());
        if jobs.is_empty() {
            continue;
        }
        let items: Vec<&W::Item> = jobs.iter().map(|job| &job.item).collect();
        let started = Instant::now();
        let written = writer.write_batch(&items).await;
        metrics.batch(items.len(), started.elapsed());
        drop(items);
        answer(jobs.drain(..), written);
    }
}

/// Describes the group commit's metrics to the installed recorder (the `# HELP` lines).
pub fn describe_metrics() {
    metrics::describe_histogram!(
        "messenger_group_commit_batch_size",
        "Items per group commit, by store."
    );
    metrics::describe_histogram!(
        "messenger_group_commit_duration_seconds",
        "Seconds each group commit took to write, by store."
    );
}

/// The metrics of one task, looked up once when it starts.
struct BatchMetrics {
    size: metrics::Histogram,
    duration: metrics::Histogram,
}

impl BatchMetrics {
    fn named(name: &'static str) -> Self {
        Self {
            size: metrics::histogram!("messenger_group_commit_batch_size", "store" => name),
            duration: metrics::histogram!(
                "messenger_group_commit_duration_seconds",
                "store" => name
            ),
        }
    }

    /// Records one batch of `items`, written (or failed) in `took`.
    #[allow(clippy::cast_precision_loss)] // a batch holds at most a few thousand items
    fn batch(&self, items: usize, took: Duration) {
        self.size.record(items as f64);
        self.duration.record(took);
    }
}

/// Sends each job of a batch its answer, or the batch's failure.
fn answer<W: BatchWriter>(
    jobs: std::vec::Drain<'_, Job<W>>,
    written: Result<Vec<W::Answer>, W::Error>,
) {
    match written {
        Ok(answers) => {
            let mut answers = answers.into_iter();
            for job in jobs {
                let outcome = answers.next().ok_or(NotWritten::Unanswered);
                // The caller may have given up meanwhile; nobody to tell then.
                let _ = job.reply.send(outcome);
            }
        }
        Err(err) => {
            let size = jobs.len();
            let source = Arc::new(err);
            for job in jobs {
                let failed = NotWritten::BatchFailed {
                    size,
                    source: Arc::clone(&source),
                };
                let _ = job.reply.send(Err(failed));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;

    /// A store that records the batches it is given, answers each item with itself
    /// doubled, fails a batch holding 0, and can be held in the middle of a write.
    #[derive(Clone, Default)]
    struct Recorder {
        batches: Arc<Mutex<Vec<Vec<u32>>>>,
        /// While set, a write waits for a permit before it finishes.
        gate: Option<Arc<tokio::sync::Semaphore>>,
        holding: bool,
        released: Arc<Mutex<usize>>,
    }

    #[derive(Debug, thiserror::Error)]
    #[error("the disk is full")]
    struct DiskFull;

    impl BatchWriter for Recorder {
        type Item = u32;
        type Answer = u32;
        type Error = DiskFull;

        async fn write_batch(&mut self, items: &[&u32]) -> Result<Vec<u32>, DiskFull> {
            let batch: Vec<u32> = items.iter().map(|item| **item).collect();
            self.batches.lock().unwrap().push(batch.clone());
            if let Some(gate) = &self.gate {
                gate.acquire().await.unwrap().forget();
            }
            self.holding = true;
            if batch.contains(&0) {
                return Err(DiskFull);
            }
            Ok(batch.iter().map(|item| item * 2).collect())
        }

        fn holds_idle_resources(&self) -> bool {
            self.holding
        }

        fn release_idle_resources(&mut self) {
            self.holding = false;
            *self.released.lock().unwrap() += 1;
        }
    }

    const LIMITS: Limits = Limits {
        max_batch: 4,
        queue: 16,
        idle_release: Duration::from_secs(1),
    };

    /// A group commit whose first batch, holding `first` alone, is being written and
    /// waits for a permit of `gate`.
    struct Held {
        recorder: Recorder,
        gate: Arc<tokio::sync::Semaphore>,
        commit: GroupCommit<Recorder>,
        first: Queued<Recorder>,
    }

    async fn holding_a_write(first: u32) -> Held {
        let gate = Arc::new(tokio::sync::Semaphore::new(0));
        let recorder = Recorder {
            gate: Some(Arc::clone(&gate)),
            ..Recorder::default()
        };
        let commit = GroupCommit::start("test", recorder.clone(), LIMITS);
        let first = commit.enqueue(first).await.unwrap();
        while recorder.batches.lock().unwrap().is_empty() {
            tokio::task::yield_now().await;
        }
        Held {
            recorder,
            gate,
            commit,
            first,
        }
    }

    #[tokio::test]
    async fn each_caller_gets_its_own_answer() {
        let recorder = Recorder::default();
        let commit = GroupCommit::start("test", recorder.clone(), LIMITS);
        assert_eq!(commit.write(3).await.unwrap(), 6);
        assert_eq!(commit.write(5).await.unwrap(), 10);
        assert_eq!(*recorder.batches.lock().unwrap(), vec![vec![3], vec![5]]);
        commit.stop().await;
    }

    #[tokio::test]
    async fn items_queued_during_a_write_go_together_in_order_up_to_the_limit() {
        let held = holding_a_write(1).await;
        let (gate, commit, first) = (held.gate, held.commit, held.first);
        // The first batch is being written while six more are queued.
        let mut queued = Vec::new();
        for item in 2..=7 {
            queued.push(commit.enqueue(item).await.unwrap());
        }
        gate.add_permits(3);
        assert_eq!(first.await.unwrap(), 2);
        for (queued, item) in queued.into_iter().zip(2..=7) {
            assert_eq!(queued.await.unwrap(), item * 2);
        }
        assert_eq!(
            *held.recorder.batches.lock().unwrap(),
            vec![vec![1], vec![2, 3, 4, 5], vec![6, 7]]
        );
        commit.stop().await;
    }

    #[tokio::test]
    async fn a_failed_batch_fails_every_caller_in_it_and_the_next_batch_goes_on() {
        let held = holding_a_write(9).await;
        let (gate, commit, blocker) = (held.gate, held.commit, held.first);
        let doomed = [
            commit.enqueue(0).await.unwrap(),
            commit.enqueue(4).await.unwrap(),
        ];
        gate.add_permits(3);
        assert_eq!(blocker.await.unwrap(), 18);
        for queued in doomed {
            match queued.await {
                Err(NotWritten::BatchFailed { size, source }) => {
                    assert_eq!(size, 2);
                    assert_eq!(source.to_string(), "the disk is full");
                }
                other => panic!("expected the batch's failure, got {other:?}"),
            }
        }
        assert_eq!(commit.write(8).await.unwrap(), 16);
        commit.stop().await;
    }

    #[tokio::test]
    async fn an_item_withdrawn_before_its_batch_is_taken_is_not_written() {
        let held = holding_a_write(1).await;
        let (gate, commit, blocker) = (held.gate, held.commit, held.first);
        drop(commit.enqueue(2).await.unwrap());
        let kept = commit.enqueue(3).await.unwrap();
        gate.add_permits(2);
        assert_eq!(blocker.await.unwrap(), 2);
        assert_eq!(kept.await.unwrap(), 6);
        assert_eq!(
            *held.recorder.batches.lock().unwrap(),
            vec![vec![1], vec![3]]
        );
        commit.stop().await;
    }

    #[tokio::test]
    async fn stopping_writes_what_was_queued_and_refuses_the_rest() {
        let held = holding_a_write(1).await;
        let (gate, commit, blocker) = (held.gate, held.commit, held.first);
        let queued = commit.enqueue(2).await.unwrap();
        let stopping = tokio::spawn({
            let commit = commit.clone();
            async move { commit.stop().await }
        });
        gate.add_permits(2);
        assert_eq!(blocker.await.unwrap(), 2);
        assert_eq!(queued.await.unwrap(), 4);
        stopping.await.unwrap();
        assert!(matches!(commit.write(4).await, Err(NotWritten::Stopped)));
    }

    #[tokio::test]
    async fn idle_resources_are_released_after_a_quiet_spell() {
        let limits = Limits {
            idle_release: Duration::from_millis(20),
            ..LIMITS
        };
        let recorder = Recorder::default();
        let commit = GroupCommit::start("test", recorder.clone(), limits);
        commit.write(1).await.unwrap();
        let released = || *recorder.released.lock().unwrap();
        tokio::time::timeout(Duration::from_secs(10), async {
            while released() == 0 {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
        .await
        .expect("the idle writer was never told to release");
        // Nothing held any more, so nothing more to release.
        tokio::time::sleep(limits.idle_release * 5).await;
        assert_eq!(released(), 1);
        commit.stop().await;
    }

    #[tokio::test]
    async fn a_writer_that_answers_too_few_items_is_reported_not_hung() {
        struct Forgetful;
        impl BatchWriter for Forgetful {
            type Item = u32;
            type Answer = u32;
            type Error = DiskFull;
            async fn write_batch(&mut self, _items: &[&u32]) -> Result<Vec<u32>, DiskFull> {
                Ok(Vec::new())
            }
        }
        let commit = GroupCommit::start("test", Forgetful, LIMITS);
        assert!(matches!(commit.write(1).await, Err(NotWritten::Unanswered)));
        commit.stop().await;
    }
}
