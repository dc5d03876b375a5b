//! Whether this node runs alone or as one node of a cluster (`REDIS_URL`), and what
//! each means for the wiring: who delivers room events, who orders senders, and what
//! `/readyz` says of the link to the other nodes.

use std::sync::Arc;
use std::time::Duration;

use adapter_redis::RedisDelivery;
use adapter_ws::{RoomAudit, Rooms};
use anyhow::Context;
use app::ports::{SendOrder, SingleProcess};

use crate::config::{Config, redacted};
use crate::store::Store;

/// The parts that differ between a lone node and a cluster node.
pub struct Topology {
    /// The rooms, delivering through the cluster when there is one.
    pub rooms: Rooms,
    /// The order of senders (between processes, in a cluster).
    pub send_order: Arc<dyn SendOrder>,
    /// The cluster link, for `/readyz`; `None` for a lone node.
    pub link: Option<Arc<RedisDelivery>>,
}

impl Topology {
    /// Wires a lone node, or a cluster node when `REDIS_URL` is set.
    ///
    /// # Errors
    /// When `REDIS_URL` is not a Redis URL, or the store cannot be shared (SQLite).
    pub fn from_config(config: &Config, store: &Store) -> anyhow::Result<Self> {
        let rooms = Rooms::local();
        let Some(url) = config.redis_url.as_deref().filter(|u| !u.trim().is_empty()) else {
            return Ok(Self {
                rooms,
                send_order: Arc::new(SingleProcess),
                link: None,
            });
        };
        let send_order = store.cluster_send_order()?;
        let link = Arc::new(
            RedisDelivery::start(url.trim(), rooms.local_delivery())
                .with_context(|| format!("cannot use REDIS_URL {}", redacted(url)))?,
        );
        tracing::info!(
            redis = %redacted(url),
            node = %link.node_id(),
            "running as a cluster node: room events go through Redis"
        );
        Ok(Self {
            rooms: rooms.delivering_through(link.clone()),
            send_order,
            link: Some(link),
        })
    }
}

/// How often a node that cannot hear the other nodes checks its rooms against the
/// database: a removal made on another node meanwhile reaches this node's sockets
/// within this time.
const AUDIT_WHILE_DISCONNECTED: Duration = Duration::from_secs(2);

/// Keeps this node's rooms true to the database while it cannot hear the other nodes
/// (every [`AUDIT_WHILE_DISCONNECTED`]), and as soon as it hears them again after an
/// outage, closes its sockets so that their clients catch up: events published while
/// it was away are never delivered to it. Runs until the link is dropped.
pub fn spawn_room_audits(link: &RedisDelivery, audit: RoomAudit) -> tokio::task::JoinHandle<()> {
    let mut changes = link.link_changes();
    tokio::spawn(async move {
        // Before its first subscription a node has missed nothing.
        let mut ever_connected = false;
        loop {
            let connected = *changes.borrow_and_update();
            if connected {
                ever_connected = true;
                if changes.changed().await.is_err() {
                    return;
                }
                continue;
            }
            tokio::select! {
                changed = changes.changed() => {
                    if changed.is_err() {
                        return;
                    }
                    if *changes.borrow() && ever_connected {
                        audit.ask_everyone_to_catch_up();
                    }
                }
                () = tokio::time::sleep(AUDIT_WHILE_DISCONNECTED) => {
                    audit.run().await;
                }
            }
        }
    })
}
