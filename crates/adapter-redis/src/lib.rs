//! Cluster delivery over Redis pub/sub: [`RedisDelivery`] is the [`RoomEvents`] port of
//! a node in a cluster. It publishes every room event of this node on one Redis channel, and
//! applies every event it hears on that channel (its own included) to this node's rooms.
//! Because Redis hands a channel's messages to every subscriber in the order it received
//! them, every node applies one and the same order; with the senders' shared turn
//! (`app::ports::SendOrder`) held until the publish is acknowledged, that order is
//! the order the messages were stored.
//!
//! When Redis is away the node keeps serving its own sockets: it applies its own events
//! directly (other nodes miss them; their clients recover them from history), reports
//! [`RedisDelivery::is_connected`] false (shown by `/readyz`), and resubscribes by itself
//! with backoff.

mod envelope;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use domain::RoomEvent;
use domain::ports::RoomEvents;
use futures_util::StreamExt;
use redis::AsyncCommands;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use uuid::Uuid;

use crate::envelope::Envelope;

/// The channel every node of a cluster publishes on and listens to. Redis pub/sub
/// channels ignore the database number of the URL: one cluster per Redis server.
pub const CHANNEL: &str = "messenger:room-events";

/// How long a publish may take before the event is applied here directly instead. It is
/// waited for while the chat's send turn is held, so it bounds how long one slow Redis
/// round trip can hold up a chat.
const PUBLISH_TIMEOUT: Duration = Duration::from_secs(1);

/// How long a connection attempt to Redis may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// The first and the longest pause between attempts to resubscribe.
const RETRY_MIN: Duration = Duration::from_millis(100);
const RETRY_MAX: Duration = Duration::from_secs(5);

/// How many of this node's events, applied here directly after a failed publish, are
/// remembered in case Redis delivers them after all.
const REMEMBERED_FALLBACKS: u64 = 10_000;

/// Why Redis delivery cannot be set up.
#[derive(Debug, thiserror::Error)]
#[error("REDIS_URL is not a usable Redis URL: {0}")]
pub struct InvalidRedisUrl(#[source] redis::RedisError);

/// The [`RoomEvents`] port of a cluster node. Dropping it stops listening.
pub struct RedisDelivery {
    shared: Arc<Shared>,
    publisher: ConnectionManager,
    next_seq: AtomicU64,
    listener: JoinHandle<()>,
}

/// What the publishing side and the listening task share.
struct Shared {
    node: Uuid,
    /// This node's own rooms.
    local: Arc<dyn RoomEvents>,
    /// Whether the listener is subscribed; receivers see each change.
    link: watch::Sender<bool>,
    own: Mutex<HashMap<u64, OwnEvent>>,
}

/// Where one of this node's own events stands, so that it is applied here exactly once
/// whichever of "Redis echoed it" and "the publish failed" comes first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum OwnEvent {
    /// Published, no answer yet.
    InFlight,
    /// Heard back from the channel (and applied) before the publish answered.
    Echoed,
    /// The publish failed or timed out, so it was applied here directly.
    AppliedHere,
}

impl RedisDelivery {
    /// Starts delivering through the Redis server at `url` (`redis://host:port`), into
    /// `local` for this node's sockets. Returns at once: connecting and subscribing
    /// happen in the background, and until they succeed events are applied to this node
    /// only (see the crate docs).
    ///
    /// # Errors
    /// [`InvalidRedisUrl`] when `url` is not a Redis URL.
    pub fn start(url: &str, local: Arc<dyn RoomEvents>) -> Result<Self, InvalidRedisUrl> {
        let client = redis::Client::open(url).map_err(InvalidRedisUrl)?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(CONNECT_TIMEOUT))
            .set_response_timeout(Some(PUBLISH_TIMEOUT))
            // Fail a publish fast while Redis is away; the manager reconnects on the
            // next command.
            .set_number_of_retries(1)
            .set_max_delay(RETRY_MAX);
        let publisher = ConnectionManager::new_lazy_with_config(client.clone(), config)
            .map_err(InvalidRedisUrl)?;
        let shared = Arc::new(Shared {
            node: Uuid::new_v4(),
            local,
            link: watch::Sender::new(false),
            own: Mutex::new(HashMap::new()),
        });
        let listener = tokio::spawn(listen(client, publisher.clone(), Arc::clone(&shared)));
        Ok(Self {
            shared,
            publisher,
            next_seq: AtomicU64::new(0),
            listener,
        })
    }

    /// Whether this node is subscribed to the cluster's channel right now, i.e. hears
    /// the other nodes.
    pub fn is_connected(&self) -> bool {
        *self.shared.link.borrow()
    }

    /// Follows [`RedisDelivery::is_connected`]: a receiver that sees each change.
    pub fn link_changes(&self) -> watch::Receiver<bool> {
        self.shared.link.subscribe()
    }

    /// This node's id on the channel.
    pub fn node_id(&self) -> Uuid {
        self.shared.node
    }
}

impl Drop for RedisDelivery {
    fn drop(&mut self) {
        self.listener.abort();
    }
}

#[async_trait]
impl RoomEvents for RedisDelivery {
    async fn publish(&self, event: RoomEvent) {
        if !self.is_connected() {
            // Publishing would only wait for a Redis that is away, holding the chat's
            // turn meanwhile; this node's own sockets are served directly.
            self.shared.local.publish(event).await;
            return;
        }
        let seq = self.next_seq.fetch_add(1, Ordering::Relaxed);
        let payload = match serde_json::to_vec(&Envelope::new(self.shared.node, seq, &event)) {
            Ok(payload) => payload,
            Err(err) => {
                tracing::error!(%err, "cannot encode a room event; delivering it on this node only");
                self.shared.local.publish(event).await;
                return;
            }
        };
        self.shared.own().insert(seq, OwnEvent::InFlight);
        let mut publisher = self.publisher.clone();
        let published = tokio::time::timeout(
            PUBLISH_TIMEOUT,
            publisher.publish::<_, _, usize>(CHANNEL, payload),
        )
        .await;
        let failure = match published {
            Ok(Ok(_listeners)) => None,
            Ok(Err(err)) => Some(err.to_string()),
            Err(_elapsed) => Some(format!("no answer within {PUBLISH_TIMEOUT:?}")),
        };
        self.shared.settle(seq, failure, event).await;
    }
}

impl Shared {
    fn set_subscribed(&self, subscribed: bool) {
        self.link.send_replace(subscribed);
    }

    fn own(&self) -> std::sync::MutexGuard<'_, HashMap<u64, OwnEvent>> {
        self.own.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Records how the publish of this node's event `seq` ended, applying `event` here
    /// directly when the publish failed and Redis has not echoed it.
    async fn settle(&self, seq: u64, failure: Option<String>, event: RoomEvent) {
        if self.applies_here(seq, failure) {
            self.local.publish(event).await;
        }
    }

    /// Whether this node's event `seq`, whose publish ended with `failure` (if any),
    /// must be applied here directly: its publish failed and Redis has not echoed it.
    fn applies_here(&self, seq: u64, failure: Option<String>) -> bool {
        let mut own = self.own();
        let state = own.remove(&seq);
        let Some(reason) = failure else {
            return false;
        };
        if state == Some(OwnEvent::Echoed) {
            return false;
        }
        tracing::warn!(%reason, "publishing to Redis failed; delivering on this node only");
        own.insert(seq, OwnEvent::AppliedHere);
        own.retain(|s, _| s + REMEMBERED_FALLBACKS > seq);
        true
    }

    /// Notes that Redis echoed this node's own event `seq`; whether it is still to be
    /// applied (it is not when a failed publish applied it here already).
    fn first_echo(&self, seq: u64) -> bool {
        let mut own = self.own();
        match own.get(&seq) {
            Some(OwnEvent::AppliedHere) => {
                own.remove(&seq);
                false
            }
            Some(OwnEvent::InFlight) => {
                own.insert(seq, OwnEvent::Echoed);
                true
            }
            Some(OwnEvent::Echoed) | None => true,
        }
    }

    /// Applies one message heard on the channel.
    async fn receive(&self, payload: &[u8]) {
        let envelope = match Envelope::decode(payload) {
            Ok(envelope) => envelope,
            Err(err) => {
                tracing::warn!(%err, "skipping an unreadable event from Redis");
                return;
            }
        };
        if envelope.node == self.node && !self.first_echo(envelope.seq) {
            return;
        }
        match RoomEvent::try_from(envelope.event) {
            Ok(event) => self.local.publish(event).await,
            Err(err) => tracing::warn!(%err, "skipping an invalid event from Redis"),
        }
    }
}

/// Subscribes to the channel and applies what arrives, for as long as the node runs:
/// when the connection is lost, it says so and tries again, with backoff.
async fn listen(client: redis::Client, publisher: ConnectionManager, shared: Arc<Shared>) {
    let mut pause = RETRY_MIN;
    let mut was_connected = true;
    loop {
        let subscribed = match subscribe(&client).await {
            Ok(messages) => ready_to_publish(publisher.clone()).await.map(|()| messages),
            Err(err) => Err(err),
        };
        match subscribed {
            Ok(mut messages) => {
                shared.set_subscribed(true);
                tracing::info!(node = %shared.node, "subscribed to the cluster's Redis channel");
                pause = RETRY_MIN;
                was_connected = true;
                while let Some(message) = messages.next().await {
                    shared.receive(message.get_payload_bytes()).await;
                }
                shared.set_subscribed(false);
                tracing::error!(
                    "lost the connection to Redis: this node's sockets no longer hear other \
                     nodes (and vice versa) until it is back; reconnecting"
                );
            }
            Err(err) => {
                // Loud once per outage, then quiet while retrying.
                if was_connected {
                    tracing::error!(%err, "cannot subscribe to Redis; retrying with backoff");
                    was_connected = false;
                } else {
                    tracing::debug!(%err, ?pause, "still cannot subscribe to Redis");
                }
            }
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(RETRY_MAX);
    }
}

/// Makes sure the publishing connection works before the node counts as connected: after
/// Redis restarted, the publisher still holds a connection to the old process, and its
/// first command would fail (and the event reach this node only). A failed PING makes
/// the manager reconnect; PING is harmless to repeat.
async fn ready_to_publish(mut publisher: ConnectionManager) -> Result<(), String> {
    let mut last = String::new();
    for _ in 0..3 {
        let ping = tokio::time::timeout(PUBLISH_TIMEOUT, async {
            redis::cmd("PING")
                .query_async::<String>(&mut publisher)
                .await
        })
        .await;
        match ping {
            Ok(Ok(_pong)) => return Ok(()),
            Ok(Err(err)) => last = err.to_string(),
            Err(_) => last = format!("no answer within {PUBLISH_TIMEOUT:?}"),
        }
        tokio::time::sleep(RETRY_MIN).await;
    }
    Err(format!("the publishing connection does not answer: {last}"))
}

async fn subscribe(client: &redis::Client) -> Result<redis::aio::PubSubStream, String> {
    let connect = async {
        let mut pubsub = client.get_async_pubsub().await?;
        pubsub.subscribe(CHANNEL).await?;
        Ok::<_, redis::RedisError>(pubsub.into_on_message())
    };
    match tokio::time::timeout(CONNECT_TIMEOUT, connect).await {
        Ok(Ok(stream)) => Ok(stream),
        Ok(Err(err)) => Err(err.to_string()),
        Err(_) => Err(format!("no answer within {CONNECT_TIMEOUT:?}")),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use domain::{ChatId, UserId};

    use super::*;

    /// This node's rooms, recording what they are given.
    #[derive(Default)]
    struct Probe(Mutex<Vec<RoomEvent>>);

    #[async_trait]
    impl RoomEvents for Probe {
        async fn publish(&self, event: RoomEvent) {
            self.0.lock().unwrap().push(event);
        }
    }

    /// A node's shared state over rooms that record what they hear.
    fn node() -> (Shared, Arc<Probe>, RoomEvent) {
        let probe = Arc::new(Probe::default());
        let shared = Shared {
            node: Uuid::new_v4(),
            local: probe.clone(),
            link: watch::Sender::new(true),
            own: Mutex::new(HashMap::new()),
        };
        let event = RoomEvent::MembersAdded {
            chat: ChatId::from_uuid(Uuid::new_v4()),
            users: vec![UserId::from_uuid(Uuid::new_v4())],
        };
        (shared, probe, event)
    }

    async fn echo(shared: &Shared, seq: u64, event: &RoomEvent) {
        let bytes = serde_json::to_vec(&Envelope::new(shared.node, seq, event)).unwrap();
        shared.receive(&bytes).await;
    }

    fn heard(probe: &Probe) -> Vec<RoomEvent> {
        probe.0.lock().unwrap().clone()
    }

    #[tokio::test]
    async fn a_published_event_is_applied_once_when_its_echo_arrives() {
        let (shared, probe, event) = node();
        shared.own().insert(0, OwnEvent::InFlight);
        shared.settle(0, None, event.clone()).await;
        assert!(
            heard(&probe).is_empty(),
            "applied before Redis gave it its place"
        );
        echo(&shared, 0, &event).await;
        assert_eq!(heard(&probe), [event]);
        assert!(shared.own().is_empty());
    }

    #[tokio::test]
    async fn an_echo_before_the_publish_answers_is_applied_once() {
        let (shared, probe, event) = node();
        shared.own().insert(0, OwnEvent::InFlight);
        echo(&shared, 0, &event).await;
        // The answer then times out: Redis did take it, so nothing more.
        shared
            .settle(0, Some("timed out".into()), event.clone())
            .await;
        assert_eq!(heard(&probe), [event]);
        assert!(shared.own().is_empty());
    }

    #[tokio::test]
    async fn a_failed_publish_is_applied_here_and_a_late_echo_is_skipped() {
        let (shared, probe, event) = node();
        shared.own().insert(0, OwnEvent::InFlight);
        shared
            .settle(0, Some("broken pipe".into()), event.clone())
            .await;
        assert_eq!(
            heard(&probe).len(),
            1,
            "a failed publish must still reach this node"
        );
        echo(&shared, 0, &event).await;
        assert_eq!(heard(&probe), [event], "applied twice");
        assert!(shared.own().is_empty());
    }

    #[tokio::test]
    async fn other_nodes_events_and_garbage_are_told_apart() {
        let (shared, probe, event) = node();
        let other = Envelope::new(Uuid::new_v4(), 0, &event);
        shared.receive(&serde_json::to_vec(&other).unwrap()).await;
        shared.receive(b"not json").await;
        assert_eq!(heard(&probe), [event]);
    }
}
