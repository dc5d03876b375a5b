//! The cluster link's metrics (README.md, "Metrics"), each call site one line.

use std::sync::LazyLock;

use metrics::{Counter, Gauge};

/// 1 while this node is subscribed to the cluster's channel (hears the other nodes).
static LINK_UP: LazyLock<Gauge> = LazyLock::new(|| metrics::gauge!("messenger_cluster_link_up"));

/// Room events whose publish failed or timed out (each then delivered on this node only).
static PUBLISH_FAILURES: LazyLock<Counter> =
    LazyLock::new(|| metrics::counter!("messenger_redis_publish_failures_total"));

/// Describes this crate's metrics to the installed recorder (the `# HELP` lines).
pub fn describe() {
    metrics::describe_gauge!(
        "messenger_cluster_link_up",
        "1 while this node is subscribed to the cluster's Redis channel, else 0."
    );
    metrics::describe_counter!(
        "messenger_redis_publish_failures_total",
        "Room events whose publish to Redis failed or timed out."
    );
}

/// Records whether the link is up.
pub(crate) fn link_up(up: bool) {
    LINK_UP.set(if up { 1.0 } else { 0.0 });
}

/// Counts one failed publish.
pub(crate) fn publish_failed() {
    PUBLISH_FAILURES.increment(1);
}
