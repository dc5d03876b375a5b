//! What one rig connection does: a sender's loop for a phase, and the handler that
//! counts what a connection hears and what its sends were answered.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::mpsc;

use super::ledger::{SenderBook, Tracker, slot};
use super::{CONTENT, lock};
use crate::sio::Handler;
use crate::stats::{MAX_SEQ, now_ns};

/// One sender's loop for one phase.
pub(super) struct SendJob {
    pub(super) phase: u32,
    pub(super) number: u32,
    pub(super) chat: String,
    pub(super) out: mpsc::Sender<String>,
    pub(super) book: Arc<SenderBook>,
    pub(super) start: Instant,
    pub(super) deadline: Instant,
    /// Interval between sends and this sender's offset; `None` for flat out.
    pub(super) pace: Option<(Duration, Duration)>,
}

impl SendJob {
    /// Sends until the deadline; returns how many were sent.
    pub(super) async fn run(self) -> u64 {
        let mut seq = 0u64;
        while seq < MAX_SEQ {
            if let Some((interval, offset)) = self.pace {
                let at = self.start + offset + interval.mul_f64(seq as f64);
                if at >= self.deadline {
                    break;
                }
                tokio::time::sleep_until(at.into()).await;
            }
            match tokio::time::timeout_at(self.deadline.into(), self.book.window.acquire()).await {
                Ok(Ok(permit)) => permit.forget(),
                Ok(Err(_)) | Err(_) => break,
            }
            if Instant::now() >= self.deadline {
                self.book.window.add_permits(1);
                break;
            }
            let sent_ns = now_ns();
            let ack = lock(&self.book.ledger).record_send(seq, sent_ns);
            let packet = format!(
                "42{ack}[\"messages:create\",{{\"chatId\":\"{chat}\",\"content\":\"{CONTENT}\",\"clientMsgId\":\"{phase}.{number}.{seq}.{sent_ns}\"}}]",
                chat = self.chat,
                phase = self.phase,
                number = self.number,
            );
            if self.out.send(packet).await.is_err() {
                // The connection is gone; its unanswered sends count as unacked.
                lock(&self.book.ledger).forget(ack);
                break;
            }
            seq += 1;
        }
        seq
    }
}

/// The handler of a rig connection: a receiver (when it joined), a sender (when it
/// sends), or both.
pub(super) struct Member {
    pub(super) tracker: Option<Arc<Mutex<Tracker>>>,
    pub(super) book: Option<Arc<SenderBook>>,
    pub(super) delivered: Arc<AtomicU64>,
}

impl Handler for Member {
    fn event(&mut self, array: &str) {
        if !array.starts_with("[\"messages:new\"") {
            return;
        }
        let now = now_ns();
        if let Some(tracker) = &self.tracker
            && lock(tracker).record(array, now)
        {
            self.delivered.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn ack(&mut self, id: u64, args: &str) {
        let Some(book) = &self.book else {
            return;
        };
        let now = now_ns();
        let mut ledger = lock(&book.ledger);
        let Some((ack, seq, sent_ns)) = ledger.ring[slot(id)] else {
            return;
        };
        if ack != id {
            return;
        }
        ledger.ring[slot(id)] = None;
        if args.contains("\"status\":\"error\"") {
            ledger.errors += 1;
            if ledger.first_error.is_none() {
                ledger.first_error = Some(args.chars().take(200).collect());
            }
        } else {
            ledger.acked.insert(seq);
        }
        ledger.ack_latency.record_ns(now.saturating_sub(sent_ns));
        ledger.last_ack_ns = now;
        drop(ledger);
        book.window.add_permits(1);
    }
}
