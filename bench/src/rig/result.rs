//! What one phase measured, and the arithmetic of its figures (rates, CPU spent).

use crate::server::{NodesSample, ProcSample};
use crate::stats::Histogram;

/// What one phase measured.
#[derive(Default)]
pub struct PhaseResult {
    /// Target rate in messages/s, or `None` for flat out.
    pub rate: Option<f64>,
    /// Seconds from the first send to the last delivery or ack.
    pub span_s: f64,
    /// `messages:create` sent.
    pub sent: u64,
    /// Sends the server acknowledged with a stored message.
    pub acked: u64,
    /// Sends acknowledged with an error.
    pub ack_errors: u64,
    /// The first such error.
    pub first_ack_error: Option<String>,
    /// Sends never answered.
    pub unacked: u64,
    /// Distinct deliveries (receiver, message).
    pub deliveries: u64,
    /// Deliveries due: acknowledged messages × connections in their room.
    pub expected: u64,
    /// Due deliveries that did not arrive.
    pub lost: u64,
    /// Deliveries that arrived twice or more.
    pub duplicates: u64,
    /// Deliveries that came after a later message of the same sender.
    pub reordered: u64,
    /// Deliveries of messages that were not acknowledged.
    pub unexpected: u64,
    /// Send → receive, over all deliveries.
    pub latency: Histogram,
    /// In a cluster, send → receive split by where the receiver is: on the sender's
    /// node, or on another one.
    pub by_node: Option<NodeSplit>,
    /// Send → ack.
    pub ack_latency: Histogram,
    /// Server processes the load was spread over (1 outside a cluster).
    pub nodes: usize,
    /// Server CPU seconds (user + system) during the phase, all servers together.
    pub server_cpu_s: f64,
    /// The same, server by server.
    pub node_cpu_s: Vec<f64>,
    /// The Redis server's CPU seconds during the phase, in a cluster.
    pub redis_cpu_s: Option<f64>,
    /// This process's CPU seconds during the phase.
    pub client_cpu_s: f64,
    /// Server memory at the end of the phase, summed over the servers.
    pub server_after: ProcSample,
    /// Connections that ended before the rig closed them.
    pub dropped: u64,
    /// Why the first of them ended.
    pub first_drop: Option<String>,
    /// Frames that were not Socket.IO packets.
    pub malformed: u64,
}

impl PhaseResult {
    /// Deliveries per second.
    pub fn deliveries_per_s(&self) -> f64 {
        per_second(self.deliveries, self.span_s)
    }

    /// Acknowledged messages per second.
    pub fn messages_per_s(&self) -> f64 {
        per_second(self.acked, self.span_s)
    }

    /// What went wrong, if anything: losses, duplicates, errors, dropped connections.
    pub fn problems(&self, expect_deliveries: bool) -> Vec<String> {
        let mut problems = Vec::new();
        let mut check = |bad: bool, what: String| {
            if bad {
                problems.push(what);
            }
        };
        check(self.acked == 0, "no message was acknowledged".to_owned());
        check(
            expect_deliveries && self.deliveries == 0,
            "no message was delivered".to_owned(),
        );
        check(self.lost > 0, format!("{} deliveries lost", self.lost));
        check(
            self.duplicates > 0,
            format!("{} deliveries duplicated", self.duplicates),
        );
        check(
            self.reordered > 0,
            format!("{} deliveries out of order", self.reordered),
        );
        check(
            self.unexpected > 0,
            format!("{} deliveries of unacknowledged messages", self.unexpected),
        );
        check(
            self.ack_errors > 0,
            format!(
                "{} sends answered with an error (first: {})",
                self.ack_errors,
                self.first_ack_error.as_deref().unwrap_or("?")
            ),
        );
        check(
            self.unacked > 0,
            format!("{} sends never answered", self.unacked),
        );
        check(
            self.dropped > 0,
            format!(
                "{} connections dropped (first: {})",
                self.dropped,
                self.first_drop.as_deref().unwrap_or("?")
            ),
        );
        check(
            self.malformed > 0,
            format!("{} malformed frames", self.malformed),
        );
        problems
    }

    /// The phase as JSON.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "rate_target_per_s": self.rate,
            "span_s": self.span_s,
            "messages_sent": self.sent,
            "messages_acked": self.acked,
            "messages_per_s": self.messages_per_s(),
            "ack_errors": self.ack_errors,
            "unacked": self.unacked,
            "deliveries": self.deliveries,
            "deliveries_expected": self.expected,
            "deliveries_per_s": self.deliveries_per_s(),
            "lost": self.lost,
            "duplicated": self.duplicates,
            "reordered": self.reordered,
            "unexpected": self.unexpected,
            "latency": self.latency.summary(),
            "latency_receiver_on_senders_node": self.by_node.as_ref().map(|s| s.same.summary()),
            "latency_receiver_on_other_node": self.by_node.as_ref().map(|s| s.other.summary()),
            "ack_latency": self.ack_latency.summary(),
            "nodes": self.nodes,
            "server_cpu_s": self.server_cpu_s,
            "server_cpu_s_per_node": self.node_cpu_s,
            // What carries over to other machines: the cost per unit of work.
            "server_cpu_us_per_delivery": micros_per(self.server_cpu_s, self.deliveries),
            "server_cpu_us_per_message": micros_per(self.server_cpu_s, self.acked),
            "redis_cpu_s": self.redis_cpu_s,
            "redis_cpu_us_per_delivery": self.redis_cpu_s.and_then(|s| micros_per(s, self.deliveries)),
            "client_cpu_s": self.client_cpu_s,
            "server_rss_kib": self.server_after.rss_kib,
            "server_peak_rss_kib": self.server_after.peak_rss_kib,
            "dropped_connections": self.dropped,
            "malformed_frames": self.malformed,
        })
    }
}

/// Send → receive latencies in a cluster, by where the receiver is.
#[derive(Default)]
pub struct NodeSplit {
    /// Receivers on the sender's node.
    pub same: Histogram,
    /// Receivers on another node.
    pub other: Histogram,
}

/// `seconds` in microseconds per one of `count`; `None` for none.
fn micros_per(seconds: f64, count: u64) -> Option<f64> {
    (count > 0).then(|| seconds * 1e6 / count as f64)
}

/// `count` per `seconds`, 0 for an empty span.
pub fn per_second(count: u64, seconds: f64) -> f64 {
    if seconds > 0.0 {
        count as f64 / seconds
    } else {
        0.0
    }
}

/// CPU seconds spent between two samples of the same servers.
pub(super) struct CpuSpent {
    /// All servers together.
    pub(super) servers: f64,
    /// Server by server.
    pub(super) nodes: Vec<f64>,
    /// The Redis server, in a cluster.
    pub(super) redis: Option<f64>,
}

/// What the servers (and Redis) spent between `before` and `after`.
pub(super) fn cpu_between(before: &NodesSample, after: &NodesSample) -> CpuSpent {
    let nodes: Vec<f64> = after
        .nodes
        .iter()
        .zip(&before.nodes)
        .map(|(a, b)| a.cpu_seconds - b.cpu_seconds)
        .collect();
    CpuSpent {
        servers: nodes.iter().sum(),
        nodes,
        redis: after
            .redis
            .zip(before.redis)
            .map(|(a, b)| a.cpu_seconds - b.cpu_seconds),
    }
}
