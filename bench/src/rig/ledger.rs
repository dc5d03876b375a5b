//! The bookkeeping behind a phase's figures: each sender's window and ledger of sends
//! and acks, and each receiver's tracker of what it heard (by the `clientMsgId`
//! `<phase>.<sender>.<seq>.<sent-ns>` the senders write).

use std::sync::{Arc, Mutex};

use tokio::sync::Semaphore;

use super::NodeSplit;
use crate::stats::{Histogram, SeqSet};

/// Slots of a sender's ledger of unacknowledged sends; above the largest window, so
/// a slot is never reused while its send is unanswered.
pub(super) const RING: usize = 1024;

/// Most senders a receiver tracks; a larger number in a message is garbage.
pub(super) const MAX_SENDERS: usize = 100_000;

/// A sender's window and its ledger of sends and acks.
pub(super) struct SenderBook {
    pub(super) window: Semaphore,
    pub(super) ledger: Mutex<Ledger>,
}

impl SenderBook {
    pub(super) fn new(window: usize, first_ack: u64) -> Self {
        Self {
            window: Semaphore::new(window),
            ledger: Mutex::new(Ledger {
                ring: vec![None; RING],
                next_ack: first_ack,
                ..Ledger::default()
            }),
        }
    }
}

/// What one sender sent and what came back, for the current phase.
#[derive(Default)]
pub(super) struct Ledger {
    /// `(ack id, seq, sent ns)` of unanswered sends, at `ack id % RING`.
    pub(super) ring: Vec<Option<(u64, u64, u64)>>,
    pub(super) next_ack: u64,
    pub(super) acked: SeqSet,
    pub(super) errors: u64,
    pub(super) first_error: Option<String>,
    pub(super) ack_latency: Histogram,
    pub(super) last_ack_ns: u64,
}

impl Ledger {
    /// Starts a new phase (nothing is in flight between phases).
    pub(super) fn reset(&mut self) {
        self.acked = SeqSet::default();
        self.errors = 0;
        self.first_error = None;
        self.ack_latency = Histogram::default();
        self.last_ack_ns = 0;
    }

    /// Notes a send; returns its ack id.
    pub(super) fn record_send(&mut self, seq: u64, sent_ns: u64) -> u64 {
        let ack = self.next_ack;
        self.next_ack += 1;
        self.ring[slot(ack)] = Some((ack, seq, sent_ns));
        ack
    }

    /// Forgets a send that never left.
    pub(super) fn forget(&mut self, ack: u64) {
        self.ring[slot(ack)] = None;
    }
}

/// The ring slot of an ack id.
pub(super) fn slot(ack: u64) -> usize {
    usize::try_from(ack % RING as u64).unwrap_or(0)
}

/// What one receiving connection got in the current phase.
#[derive(Default)]
pub(super) struct Tracker {
    pub(super) phase: u32,
    /// Sequence numbers received, per sender number.
    pub(super) per_sender: Vec<SeqSet>,
    /// The largest sequence number received, per sender number.
    pub(super) highest: Vec<Option<u64>>,
    pub(super) distinct: u64,
    pub(super) duplicates: u64,
    pub(super) reordered: u64,
    pub(super) unreadable: u64,
    pub(super) latency: Histogram,
    /// In a cluster: the latencies again, by whether the sender was on this
    /// receiver's node (boxed: two more histograms only when there are nodes).
    pub(super) split: Option<Box<TrackerSplit>>,
    pub(super) last_ns: u64,
}

/// What a receiver in a cluster needs to split its latencies by node.
pub(super) struct TrackerSplit {
    /// The receiver's node.
    pub(super) node: usize,
    /// Each sender's node, by sender number.
    pub(super) sender_nodes: Arc<[usize]>,
    pub(super) latency: NodeSplit,
}

impl Tracker {
    /// Counts one `messages:new` (its event array), received at `now`.
    pub(super) fn record(&mut self, array: &str, now: u64) -> bool {
        let Some(id) = string_field(array, "\"clientMsgId\":\"") else {
            self.unreadable += 1;
            return false;
        };
        let mut parts = id.split('.').map(str::parse::<u64>);
        let (Some(Ok(phase)), Some(Ok(sender)), Some(Ok(seq)), Some(Ok(sent_ns)), None) = (
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
        ) else {
            self.unreadable += 1;
            return false;
        };
        if phase != u64::from(self.phase) {
            // A straggler of an earlier phase: not this phase's business.
            return false;
        }
        let Ok(sender) = usize::try_from(sender) else {
            self.unreadable += 1;
            return false;
        };
        if sender >= MAX_SENDERS {
            self.unreadable += 1;
            return false;
        }
        if sender >= self.per_sender.len() {
            self.per_sender.resize_with(sender + 1, SeqSet::default);
            self.highest.resize(sender + 1, None);
        }
        if !self.per_sender[sender].insert(seq) {
            self.duplicates += 1;
            return false;
        }
        self.distinct += 1;
        match self.highest[sender] {
            Some(highest) if seq < highest => self.reordered += 1,
            _ => self.highest[sender] = Some(seq),
        }
        let latency = now.saturating_sub(sent_ns);
        self.latency.record_ns(latency);
        if let Some(split) = &mut self.split {
            if split.sender_nodes.get(sender) == Some(&split.node) {
                split.latency.same.record_ns(latency);
            } else {
                split.latency.other.record_ns(latency);
            }
        }
        self.last_ns = now;
        true
    }
}

/// The string value that follows `key` (which ends with the opening quote), up to the
/// next quote. Enough for the values the benchmark itself wrote (no escapes in them).
fn string_field<'a>(json: &'a str, key: &str) -> Option<&'a str> {
    let start = json.find(key)? + key.len();
    let len = json[start..].find('"')?;
    Some(&json[start..start + len])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rig::CONTENT;
    use crate::stats::MAX_SEQ;

    fn delivery(phase: u32, sender: u32, seq: u64) -> String {
        format!(
            r#"["messages:new",{{"id":"x","chatId":"c","senderId":"s","content":"{CONTENT}","clientMsgId":"{phase}.{sender}.{seq}.5","createdAt":"t"}}]"#
        )
    }

    #[test]
    fn a_tracker_counts_deliveries_duplicates_and_disorder() {
        let mut tracker = Tracker {
            phase: 2,
            ..Tracker::default()
        };
        assert!(tracker.record(&delivery(2, 1, 0), 1_000_005));
        assert!(tracker.record(&delivery(2, 1, 2), 2_000_005));
        assert!(tracker.record(&delivery(2, 1, 1), 3_000_005));
        assert!(!tracker.record(&delivery(2, 1, 1), 4_000_005));
        assert!(!tracker.record(&delivery(1, 1, 9), 4_000_005));
        assert!(!tracker.record(r#"["messages:new",{"id":"x"}]"#, 5));
        assert_eq!(tracker.distinct, 3);
        assert_eq!(tracker.duplicates, 1);
        assert_eq!(tracker.reordered, 1);
        assert_eq!(tracker.unreadable, 1);
        assert_eq!(tracker.latency.count(), 3);
        assert_eq!(tracker.latency.max_ms(), Some(3.0));
    }

    #[test]
    fn the_client_msg_id_fits_the_contracts_limit() {
        let id = format!("{}.{}.{}.{}", 999, MAX_SENDERS, MAX_SEQ, u64::MAX);
        assert!(id.len() <= 64, "{id}");
    }
}
