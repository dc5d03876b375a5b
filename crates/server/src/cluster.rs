//! Whether this node runs alone or as one node of a cluster (`REDIS_URL`), and what
//! each means for the wiring: who delivers room events, who orders senders, and what
//! `/readyz` says of the link to the other nodes.

use std::sync::Arc;

use adapter_redis::RedisDelivery;
use adapter_ws::Rooms;
use anyhow::Context;
use domain::ports::{SendOrder, SingleProcess};

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
