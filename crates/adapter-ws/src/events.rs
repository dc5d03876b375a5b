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
                    Handled::Done(answer) => reply(answer, reply_to),
                    Handled::InFlight(send) => in_flight.push(send, reply_to),
                }
            }
        }
    }
}
