//! How a connection answers its client's events, whatever the protocol: a success
//! event (if the event has one) then the ack, or an `exception` then the ack's error,
//! in that order, within the connection's outgoing budget. Each protocol only says how
//! it puts an event or an ack on the wire ([`Outbox`]).

use serde::Serialize;
use serde_json::value::RawValue;
use wire::events::ToClient;

use crate::hub::{ConnId, Hub, Undeliverable};
use crate::session::{Exception, Success};

/// One protocol's way of sending its client an event or an ack.
pub(crate) trait Outbox {
    /// Where an event's ack goes: Socket.IO's ack sender, or the number of the `/ws`
    /// frame's `ack` field (none when the frame asked for no ack).
    type AckTo;

    /// Queues `event` with `payload` for the client.
    fn emit(&self, event: ToClient, payload: &RawValue) -> Result<(), Undeliverable>;

    /// Queues the ack `to` with `payload`, if the client asked for one.
    fn ack(&self, to: Self::AckTo, payload: &RawValue) -> Result<(), Undeliverable>;
}

/// Answers one event on `outbox`, and closes the connection `id` as a slow consumer
/// when the answer would take its queue over its budget.
pub(crate) fn answer<O: Outbox>(
    hub: &Hub,
    id: ConnId,
    outbox: &O,
    answer: Result<&Success, &Exception>,
    to: O::AckTo,
) {
    if send(outbox, answer, to) == Err(Undeliverable::OverBudget) {
        hub.close_slow(id);
    }
}

fn send<O: Outbox>(
    outbox: &O,
    answer: Result<&Success, &Exception>,
    to: O::AckTo,
) -> Result<(), Undeliverable> {
    match answer {
        Ok(success) => {
            if let Some(event) = success.event {
                outbox.emit(event, &success.payload)?;
            }
            outbox.ack(to, &success.payload)
        }
        Err(exception) => {
            if let Some(payload) = raw(&exception.payload()) {
                outbox.emit(ToClient::Exception, &payload)?;
            }
            match raw(&exception.ack()) {
                Some(payload) => outbox.ack(to, &payload),
                None => Ok(()),
            }
        }
    }
}

/// `value` as JSON; the failure payloads always serialise, but a failure is logged
/// rather than unwrapped.
fn raw<T: Serialize>(value: &T) -> Option<Box<RawValue>> {
    serde_json::value::to_raw_value(value)
        .map_err(|err| tracing::error!(%err, "cannot serialise a failure's payload"))
        .ok()
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;

    use super::*;

    /// Records what would go out, with room for `capacity` packets.
    struct Recorder {
        sent: RefCell<Vec<String>>,
        capacity: usize,
    }

    impl Recorder {
        fn new(capacity: usize) -> Self {
            Self {
                sent: RefCell::default(),
                capacity,
            }
        }

        fn push(&self, packet: String) -> Result<(), Undeliverable> {
            let mut sent = self.sent.borrow_mut();
            if sent.len() == self.capacity {
                return Err(Undeliverable::OverBudget);
            }
            sent.push(packet);
            Ok(())
        }
    }

    impl Outbox for Recorder {
        type AckTo = Option<u8>;

        fn emit(&self, event: ToClient, payload: &RawValue) -> Result<(), Undeliverable> {
            self.push(format!("{event} {}", payload.get()))
        }

        fn ack(&self, to: Option<u8>, payload: &RawValue) -> Result<(), Undeliverable> {
            to.map_or(Ok(()), |n| self.push(format!("ack{n} {}", payload.get())))
        }
    }

    fn success(event: Option<ToClient>) -> Success {
        Success {
            event,
            payload: serde_json::value::to_raw_value(&serde_json::json!({"chatIds": []})).unwrap(),
        }
    }

    #[test]
    fn a_success_sends_its_event_then_the_ack() {
        let out = Recorder::new(10);
        send(
            &out,
            Ok(&success(Some(ToClient::ChatsConnectSuccess))),
            Some(1),
        )
        .unwrap();
        send(&out, Ok(&success(None)), Some(2)).unwrap();
        send(&out, Ok(&success(None)), None).unwrap();
        assert_eq!(
            *out.sent.borrow(),
            [
                r#"chats:connect:success {"chatIds":[]}"#,
                r#"ack1 {"chatIds":[]}"#,
                r#"ack2 {"chatIds":[]}"#,
            ]
        );
    }

    #[test]
    fn a_failure_sends_the_exception_then_the_ack_s_error() {
        let out = Recorder::new(10);
        let failed = Exception {
            event: "messages:get".into(),
            message: "chat not found".into(),
        };
        send(&out, Err(&failed), Some(7)).unwrap();
        assert_eq!(
            *out.sent.borrow(),
            [
                r#"exception {"status":"error","message":"chat not found","event":"messages:get"}"#,
                r#"ack7 {"status":"error","message":"chat not found"}"#,
            ]
        );
    }

    #[test]
    fn an_answer_over_budget_stops_at_the_first_packet_that_does_not_fit() {
        let out = Recorder::new(1);
        assert_eq!(
            send(
                &out,
                Ok(&success(Some(ToClient::MessagesGetSuccess))),
                Some(1)
            ),
            Err(Undeliverable::OverBudget)
        );
        assert_eq!(out.sent.borrow().len(), 1);
    }
}
