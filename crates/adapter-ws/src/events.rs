//! One connection's client events, whatever the protocol: handled in arrival order,
//! with its sends pipelined.
//!
//! A send is answered in two steps (see [`Handled::InFlight`]): once its message is
//! queued (its place in the chat fixed), the connection goes on with its next event
//! while the message is committed and announced. So a client that sends several
//! messages without waiting for each ack has them committed together, not one commit
//! each. Answers still go out in the order the events came, and any event other than a
//! send first waits for the sends before it.

use std::future::Future;
use std::pin::Pin;

use futures_util::stream::{FuturesOrdered, Stream, StreamExt};
use serde_json::Value;

use crate::session::{Exception, Handled, Session, Success};

/// Most sends one connection may have in flight; beyond it, the connection's next event
/// waits (its queue fills, or TCP pushes back) until the oldest is answered.
pub(crate) const MAX_SENDS_IN_FLIGHT: usize = 64;

/// One client event and where its answer goes (an ack, or none).
pub(crate) struct ClientEvent<R> {
    /// The event's name.
    pub event: String,
    /// Its data.
    pub data: Value,
    /// Where the answer goes.
    pub reply_to: R,
}

/// What a connection's event stream yields: an event, or a frame that was not one,
/// answered with its exception at once.
pub(crate) type Incoming<R> = Result<ClientEvent<R>, (Exception, R)>;

/// A send in flight, with where its answer goes.
type Pending<R> = Pin<Box<dyn Future<Output = (Result<Success, Exception>, R)> + Send>>;

/// A connection's sends in flight, answered in the order they were sent.
///
/// They are polled by the connection's own task, also while it handles its next event
/// (see [`serve`]): in a cluster a send holds its chat's shared turn until it is
/// announced, and the connection's next send to that chat waits for that turn. Polling
/// them in one task is also what makes them cheap: the sends that one commit answered
/// are announced back to back, so each receiver's writer finds them together and
/// writes them with one flush (a task per send measured 3× slower in fan-out).
struct SendsInFlight<R: Send + 'static> {
    pending: FuturesOrdered<Pending<R>>,
}

impl<R: Send + 'static> SendsInFlight<R> {
    fn new() -> Self {
        Self {
            pending: FuturesOrdered::new(),
        }
    }

    fn push(
        &mut self,
        send: Pin<Box<dyn Future<Output = Result<Success, Exception>> + Send>>,
        reply_to: R,
    ) {
        self.pending
            .push_back(Box::pin(async move { (send.await, reply_to) }));
    }

    fn len(&self) -> usize {
        self.pending.len()
    }
}

impl<R: Send + 'static> Drop for SendsInFlight<R> {
    /// A connection that goes away does not withdraw what it has sent: messages already
    /// queued are still stored and announced to the room (nobody is left to ack).
    fn drop(&mut self) {
        if self.pending.is_empty() {
            return;
        }
        let pending = std::mem::take(&mut self.pending);
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(pending.for_each(|_| std::future::ready(())));
        }
    }
}

/// Handles `events` until the stream ends, sending each answer to `reply` in the order
/// the events came.
pub(crate) async fn serve<R, S>(
    session: &Session,
    events: S,
    mut reply: impl FnMut(Result<Success, Exception>, R),
) where
    R: Send + 'static,
    S: Stream<Item = Incoming<R>>,
{
    let mut events = std::pin::pin!(events);
    let mut in_flight = SendsInFlight::new();
    let mut ended = false;
    while !ended || in_flight.len() > 0 {
        tokio::select! {
            biased;
            Some((answer, reply_to)) = in_flight.pending.next(), if in_flight.len() > 0 => {
                reply(answer, reply_to);
            }
            incoming = events.next(), if !ended && in_flight.len() < MAX_SENDS_IN_FLIGHT => {
                let Some(incoming) = incoming else {
                    ended = true;
                    continue;
                };
                let ClientEvent { event, data, reply_to } = match incoming {
                    Ok(event) => event,
                    Err((exception, reply_to)) => {
                        reply(Err(exception), reply_to);
                        continue;
                    }
                };
                if !Session::overtakes_sends_in_flight(&event) {
                    while let Some((answer, earlier)) = in_flight.pending.next().await {
                        reply(answer, earlier);
                    }
                }
                // Boxed: pinned in place, the handler's future would make this task
                // (which every idle socket keeps) larger by its whole size.
                let mut handling = Box::pin(session.handle(&event, data));
                // The sends in flight go on meanwhile: this one may wait for a turn
                // that only they can release.
                let handled = loop {
                    tokio::select! {
                        biased;
                        handled = &mut handling => break handled,
                        Some((answer, earlier)) = in_flight.pending.next(), if in_flight.len() > 0 => {
                            reply(answer, earlier);
                        }
                    }
                };
                match handled {
                    // A send refused before it was queued (an invalid draft) waits
                    // behind the sends before it, so answers keep the events' order.
                    Handled::Done(answer) if in_flight.len() > 0 => {
                        in_flight.push(Box::pin(std::future::ready(answer)), reply_to);
                    }
                    Handled::Done(answer) => reply(answer, reply_to),
                    Handled::InFlight(send) => in_flight.push(send, reply_to),
                }
            }
        }
    }
}

/// [`serve`] driven with channels: events go in through a channel, answers come out
/// through another, and each message's commit waits until the test releases it.
///
/// The clock is paused in these tests, so `tokio` moves time forward only when every
/// task is waiting: [`settle`] returns exactly when `serve` can do nothing more until
/// the test acts, which is what lets them say "not yet" without a real sleep.
#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use app::ports::{MockMessageQueue, SingleProcess};
    use app::{App, Ports};
    use domain::ports::{
        InsertAnswer, MockChatRepository, MockMessageRepository, MockPasswordHasher,
        MockRoomEvents, MockTokenService, MockUserRepository,
    };
    use domain::{
        ChatId, Message, MessageId, NewMessage, PasswordPolicy, RoomEvent, StoreError, UserId,
    };
    use futures_util::stream;
    use serde_json::json;
    use time::OffsetDateTime;
    use tokio::sync::{mpsc, oneshot};
    use tokio::task::JoinHandle;
    use uuid::Uuid;

    use super::*;
    use crate::hub::Hub;

    /// The content of a send that the store refuses to queue.
    const UNQUEUEABLE: &str = "refused at queueing";

    /// A message queued by the store, waiting for the test to say how its commit ends.
    struct Queued {
        message: Message,
        commit: oneshot::Sender<InsertAnswer>,
    }

    impl Queued {
        /// Commits it as a new message.
        fn store(self) {
            let message = self.message;
            self.commit.send(Ok((message, true))).ok();
        }

        /// Ends its commit with `err`.
        fn fail(self, err: StoreError) {
            self.commit.send(Err(err)).ok();
        }
    }

    /// One connection's `serve`, run on its own task.
    struct Connection {
        /// Where the test sends the connection's events (dropping it ends the stream).
        events: Option<mpsc::UnboundedSender<Incoming<u32>>>,
        /// Each answer with the number of the event it answers, in the order sent.
        answers: mpsc::UnboundedReceiver<(u32, Result<String, Exception>)>,
        /// Each message the store queued, in the order queued.
        queued: mpsc::UnboundedReceiver<Queued>,
        /// Each message announced to its room.
        announced: mpsc::UnboundedReceiver<String>,
        serving: JoinHandle<()>,
    }

    fn chat(n: u32) -> ChatId {
        ChatId::from_uuid(Uuid::from_u128(1000 + u128::from(n)))
    }

    const USER: u128 = 1;

    /// A message as the store would keep it.
    fn stored(new: &NewMessage) -> Message {
        Message {
            id: MessageId::from_uuid(Uuid::new_v4()),
            chat_id: new.chat_id,
            sender_id: new.sender_id,
            content: new.content.clone(),
            client_msg_id: new.client_msg_id.clone(),
            created_at: OffsetDateTime::UNIX_EPOCH,
        }
    }

    /// Starts `serve` for one connection over an application whose store hands each
    /// queued message to the test, and whose notifier reports each announcement.
    fn connect() -> Connection {
        let (queued_tx, queued) = mpsc::unbounded_channel();
        let mut queue = MockMessageQueue::new();
        queue.expect_enqueue().returning(move |new| {
            if new.content.as_str() == UNQUEUEABLE {
                return Err(StoreError::Unavailable("the queue is gone".into()));
            }
            let (commit, committed) = oneshot::channel();
            queued_tx
                .send(Queued {
                    message: stored(new),
                    commit,
                })
                .ok();
            Ok(Box::pin(async move {
                committed
                    .await
                    .unwrap_or_else(|_| Err(StoreError::Unavailable("the test let go".into())))
            }))
        });
        let (announced_tx, announced) = mpsc::unbounded_channel();
        let mut rooms = MockRoomEvents::new();
        rooms.expect_publish().returning(move |event| {
            if let RoomEvent::MessageCreated(message) = event {
                announced_tx.send(message.content.as_str().to_owned()).ok();
            }
        });
        let app = App::new(
            Ports {
                users: Arc::new(MockUserRepository::new()),
                chats: Arc::new(MockChatRepository::new()),
                messages: Arc::new(MockMessageRepository::new()),
                message_queue: Arc::new(queue),
                hasher: Arc::new(MockPasswordHasher::new()),
                tokens: Arc::new(MockTokenService::new()),
                rooms: Arc::new(rooms),
                send_order: Arc::new(SingleProcess),
            },
            PasswordPolicy::default(),
        );
        let hub = Arc::new(Hub::default());
        let user = UserId::from_uuid(Uuid::from_u128(USER));
        let conn = hub.register(user, Arc::new(Nowhere));
        let session = Session::new(app, hub, conn, user, crate::pacing::Pacer::new(None));

        let (events_tx, events) = mpsc::unbounded_channel();
        let events = stream::unfold(events, |mut events| async move {
            events.recv().await.map(|event| (event, events))
        });
        let (answers_tx, answers) = mpsc::unbounded_channel();
        let serving = tokio::spawn(async move {
            serve(&session, events, |answer, number| {
                let answer = answer.map(|success| success.payload.get().to_owned());
                answers_tx.send((number, answer)).ok();
            })
            .await;
        });
        Connection {
            events: Some(events_tx),
            answers,
            queued,
            announced,
            serving,
        }
    }

    /// A connection that is never sent anything (these tests join no room).
    struct Nowhere;

    impl crate::hub::Connection for Nowhere {
        fn deliver(
            &self,
            _frame: &Arc<crate::frame::Frame>,
        ) -> Result<(), crate::hub::Undeliverable> {
            Ok(())
        }
        fn queued_bytes(&self) -> u64 {
            0
        }
        fn close(&self, _why: crate::hub::CloseReason) {}
    }

    /// Returns once every task waits for the test (see the module's doc).
    async fn settle() {
        tokio::time::sleep(Duration::from_secs(1)).await;
    }

    impl Connection {
        fn emit(&self, number: u32, event: &str, data: Value) {
            let event = ClientEvent {
                event: event.to_owned(),
                data,
                reply_to: number,
            };
            self.incoming(Ok(event));
        }

        fn incoming(&self, incoming: Incoming<u32>) {
            self.events
                .as_ref()
                .expect("the stream is still open")
                .send(incoming)
                .expect("serve is still reading");
        }

        /// Sends message `number` to chat `number`, with `content`.
        fn send_message(&self, number: u32, content: &str) {
            let data = json!({"chatId": chat(number).to_string(), "content": content});
            self.emit(number, "messages:create", data);
        }

        /// Ends the event stream, as a closed socket does.
        fn hang_up(&mut self) {
            self.events = None;
        }

        /// Everything answered so far, after letting `serve` run.
        async fn answered(&mut self) -> Vec<(u32, Result<String, Exception>)> {
            settle().await;
            std::iter::from_fn(|| self.answers.try_recv().ok()).collect()
        }

        /// The numbers of everything answered so far.
        async fn answered_numbers(&mut self) -> Vec<u32> {
            self.answered().await.into_iter().map(|(n, _)| n).collect()
        }

        /// Every message queued so far and not yet taken, after letting `serve` run.
        async fn queued(&mut self) -> Vec<Queued> {
            settle().await;
            std::iter::from_fn(|| self.queued.try_recv().ok()).collect()
        }
    }

    /// The `content` of a successful send's answer.
    fn content(answer: &Result<String, Exception>) -> String {
        let view: Value = serde_json::from_str(answer.as_ref().expect("a success")).unwrap();
        view["content"].as_str().unwrap().to_owned()
    }

    #[tokio::test(start_paused = true)]
    async fn sends_are_pipelined_and_answered_in_the_order_they_came() {
        let mut conn = connect();
        for n in 0..3 {
            conn.send_message(n, &format!("message {n}"));
        }
        // All three are queued before any is committed: the connection did not wait for
        // each send's answer before taking the next.
        let queued = conn.queued().await;
        assert_eq!(queued.len(), 3);
        assert_eq!(conn.answered().await, []);

        // Committed last to first, they are still answered first to last.
        let mut queued = queued.into_iter().rev();
        let (last, middle, first) = (queued.next(), queued.next(), queued.next());
        last.unwrap().store();
        middle.unwrap().store();
        assert_eq!(conn.answered().await, []);
        first.unwrap().store();
        let answers = conn.answered().await;
        let numbers: Vec<u32> = answers.iter().map(|(n, _)| *n).collect();
        assert_eq!(numbers, [0, 1, 2]);
        for (n, answer) in &answers {
            assert_eq!(content(answer), format!("message {n}"));
        }
    }

    #[tokio::test(start_paused = true)]
    async fn another_event_waits_for_the_sends_before_it() {
        let mut conn = connect();
        conn.send_message(0, "first");
        let leave = json!({"chatIds": [chat(0).to_string()]});
        conn.emit(1, "chats:disconnect", leave);
        conn.emit(2, "no:such:event", json!({}));
        let mut queued = conn.queued().await;
        assert_eq!(queued.len(), 1);
        assert_eq!(conn.answered().await, [], "nothing overtakes the send");

        queued.remove(0).store();
        let answers = conn.answered().await;
        assert_eq!(answers.len(), 3);
        assert_eq!(answers[0].0, 0);
        assert_eq!(content(&answers[0].1), "first");
        assert_eq!(answers[1].0, 1);
        let left: Value = serde_json::from_str(answers[1].1.as_ref().unwrap()).unwrap();
        assert_eq!(left, json!({"chatIds": [chat(0).to_string()]}));
        assert_eq!(
            answers[2],
            (
                2,
                Err(Exception {
                    event: "no:such:event".to_owned(),
                    message: "unknown event".to_owned(),
                })
            )
        );
    }

    #[tokio::test(start_paused = true)]
    async fn at_most_64_sends_are_in_flight_and_the_next_event_waits_for_the_oldest() {
        let mut conn = connect();
        let sent = u32::try_from(MAX_SENDS_IN_FLIGHT).unwrap() + 2;
        for n in 0..sent {
            conn.send_message(n, &format!("message {n}"));
        }
        let mut queued = conn.queued().await;
        assert_eq!(queued.len(), MAX_SENDS_IN_FLIGHT, "the rest wait unread");

        // Committing a later send frees no place: the oldest is still unanswered.
        queued.pop().unwrap().store();
        assert_eq!(conn.answered().await, []);
        assert!(conn.queued().await.is_empty());

        // Answering the oldest lets exactly one more event in.
        queued.remove(0).store();
        assert_eq!(conn.answered_numbers().await, [0]);
        let next = conn.queued().await;
        assert_eq!(next.len(), 1);
        assert_eq!(
            next[0].message.content.as_str(),
            format!("message {}", MAX_SENDS_IN_FLIGHT)
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_failing_send_is_answered_in_its_place() {
        let mut conn = connect();
        conn.send_message(0, "first");
        conn.send_message(1, "second");
        conn.send_message(2, "third");
        let mut queued = conn.queued().await.into_iter();
        let (first, second, third) = (
            queued.next().unwrap(),
            queued.next().unwrap(),
            queued.next().unwrap(),
        );
        // The middle one fails first; its answer still waits for the one before it.
        second.fail(StoreError::ChatGone);
        third.store();
        assert_eq!(conn.answered().await, []);
        first.store();

        let answers = conn.answered().await;
        assert_eq!(answers.len(), 3);
        assert_eq!(content(&answers[0].1), "first");
        assert_eq!(
            answers[1],
            (
                1,
                Err(Exception {
                    event: "messages:create".to_owned(),
                    message: "chat not found".to_owned(),
                })
            )
        );
        assert_eq!(content(&answers[2].1), "third");
    }

    #[tokio::test(start_paused = true)]
    async fn a_send_refused_before_it_is_queued_is_answered_after_the_sends_before_it() {
        let mut conn = connect();
        conn.send_message(0, "first");
        conn.send_message(1, UNQUEUEABLE);
        let mut queued = conn.queued().await;
        assert_eq!(queued.len(), 1);
        assert_eq!(conn.answered().await, [], "the refusal does not overtake");

        queued.remove(0).store();
        let answers = conn.answered().await;
        assert_eq!(answers.len(), 2);
        assert_eq!(content(&answers[0].1), "first");
        assert_eq!(answers[1].0, 1);
        assert!(answers[1].1.is_err());
    }

    #[tokio::test(start_paused = true)]
    async fn a_frame_that_is_no_event_is_answered_at_once() {
        let mut conn = connect();
        conn.send_message(0, "first");
        let malformed = Exception {
            event: String::new(),
            message: "not JSON".to_owned(),
        };
        conn.incoming(Err((malformed.clone(), 1)));
        let mut queued = conn.queued().await;
        assert_eq!(conn.answered().await, [(1, Err(malformed))]);

        queued.remove(0).store();
        assert_eq!(conn.answered_numbers().await, [0]);
    }

    #[tokio::test(start_paused = true)]
    async fn the_end_of_the_stream_waits_for_the_sends_in_flight() {
        let mut conn = connect();
        conn.send_message(0, "first");
        conn.send_message(1, "second");
        let queued = conn.queued().await;
        conn.hang_up();
        settle().await;
        assert!(
            !conn.serving.is_finished(),
            "serve goes on while sends are in flight"
        );

        for queued in queued {
            queued.store();
        }
        assert_eq!(conn.answered_numbers().await, [0, 1]);
        assert!(conn.serving.is_finished());
    }

    #[tokio::test(start_paused = true)]
    async fn a_connection_that_goes_away_still_has_its_queued_sends_announced() {
        let mut conn = connect();
        conn.send_message(0, "first");
        conn.send_message(1, "second");
        let queued = conn.queued().await;
        conn.serving.abort();
        settle().await;
        assert!(conn.serving.is_finished());

        for queued in queued {
            queued.store();
        }
        settle().await;
        let announced: Vec<String> =
            std::iter::from_fn(|| conn.announced.try_recv().ok()).collect();
        assert_eq!(announced, ["first", "second"]);
        assert_eq!(conn.answered().await, [], "nobody is left to answer");
    }
}
