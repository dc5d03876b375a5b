//! Rooms of connected members with senders among them, and timed phases of sending:
//! the machinery of the fan-out, ingest and storm measurements.
//!
//! Every `messages:create` carries `clientMsgId = "<phase>.<sender>.<seq>.<sent-ns>"`:
//! the phase it belongs to, the sender's number, a per-sender sequence number and the
//! send time on this process's clock. Each receiver keeps, per sender, the set of
//! sequence numbers it got; each sender keeps the set the server acknowledged. After a
//! phase, a number acknowledged but not received is lost, one received twice is a
//! duplicate, one received after a larger one of the same sender is out of order.
//!
//! Against a cluster, the members of each room are spread round-robin over the nodes
//! (senders too, as they are members), so that most deliveries cross from the sender's
//! node to another one; each receiver then also splits its latencies by whether the
//! sender was on its own node.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use futures_util::{StreamExt, TryStreamExt, stream};
use tokio::sync::{Semaphore, mpsc};
use tokio::task::JoinHandle;

use crate::api::{Api, User};
use crate::server::{Nodes, NodesSample, ProcSample};
use crate::sio::{Connect, Handler, Liveness, Protocol, Socket};
use crate::stats::{Histogram, MAX_SEQ, SeqSet, now_ns};

/// The text of every benchmark message (about the length of a typical chat line).
const CONTENT: &str = "The quick brown fox jumps over the lazy dog, again and again.";

/// The WebSocket read buffer of a rig connection. tungstenite zero-fills the free
/// part of its buffer before every read, so a large one costs a large `memset` per
/// frame; a message frame is a few hundred bytes.
const READ_BUFFER: usize = 4 * 1024;

/// Connections opened at once while setting up.
const CONNECT_CONCURRENCY: usize = 64;

/// Slots of a sender's ledger of unacknowledged sends; above the largest window, so
/// a slot is never reused while its send is unanswered.
const RING: usize = 1024;

/// The largest window: the server refuses a socket's events beyond 512 waiting.
pub const MAX_WINDOW: usize = 512;

/// Most senders a receiver tracks; a larger number in a message is garbage.
const MAX_SENDERS: usize = 100_000;

/// How long a phase waits for the last acks, then for the last deliveries.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(30);

/// What to set up.
#[derive(Debug, Clone, Copy)]
pub struct RigSpec {
    /// Chats.
    pub rooms: usize,
    /// Members per chat (its owner included), each with one connection.
    pub members: usize,
    /// Members per chat that send.
    pub senders: usize,
    /// Unacknowledged sends each sender keeps in flight.
    pub window: usize,
    /// Whether the members join the chat's room (and so receive its messages).
    pub join: bool,
}

/// One chat of the rig.
struct Room {
    chat: String,
    /// Connections in the room (0 when members do not join).
    receivers: u64,
    /// Indices into [`Rig::senders`].
    senders: Vec<usize>,
    /// Indices into [`Rig::trackers`].
    trackers: Vec<usize>,
}

/// A sending member.
struct SenderSlot {
    /// Its number in the `clientMsgId`.
    number: u32,
    /// The node (index into the ports) its connection is on.
    node: usize,
    chat: String,
    out: mpsc::Sender<String>,
    book: Arc<SenderBook>,
}

/// The rooms, connections and the state shared with their tasks.
pub struct Rig {
    spec: RigSpec,
    rooms: Vec<Room>,
    senders: Vec<SenderSlot>,
    trackers: Vec<Arc<Mutex<Tracker>>>,
    /// The node of each tracker's connection, by tracker index.
    tracker_nodes: Vec<usize>,
    /// How many nodes the connections are spread over.
    nodes: usize,
    delivered: Arc<AtomicU64>,
    liveness: Arc<Liveness>,
    tasks: Vec<JoinHandle<()>>,
    phase: u32,
}

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

impl Rig {
    /// Creates `spec.rooms` chats from `users` (`spec.members` each, the first one the
    /// owner), connects every member, joins the rooms when asked, and starts the
    /// connections' tasks. With several `ports` (the nodes of a cluster), member `m` of
    /// room `r` connects to node `(r × members + m) mod nodes`: round-robin within each
    /// room, senders (the first members) included.
    pub async fn setup(api: &Api, ports: &[u16], users: &[User], spec: RigSpec) -> Result<Self> {
        if ports.is_empty() {
            anyhow::bail!("the rig needs at least one server port");
        }
        let node_of = |r: usize, m: usize| (r * spec.members + m) % ports.len();
        let needed = spec.rooms * spec.members;
        let users = users.get(..needed).with_context(|| {
            format!("the rig needs {needed} users, the pool has {}", users.len())
        })?;
        let window = spec.window.clamp(1, MAX_WINDOW);
        let mut chats = Vec::with_capacity(spec.rooms);
        for (r, members) in users.chunks(spec.members).enumerate() {
            let rest: Vec<&User> = members.iter().skip(1).collect();
            let chat = api
                .create_chat(&members[0], &format!("bench room {r}"), &rest)
                .await?;
            chats.push(chat);
        }

        let sockets: Vec<(usize, usize, Socket)> =
            stream::iter((0..spec.rooms).flat_map(|r| (0..spec.members).map(move |m| (r, m))))
                .map(|(r, m)| {
                    let chat = &chats[r];
                    let user = &users[r * spec.members + m];
                    let port = ports[node_of(r, m)];
                    async move {
                        let mut socket = Socket::connect(&Connect {
                            protocol: Protocol::SocketIo,
                            port,
                            token: &user.token,
                            local: None,
                            read_buffer: READ_BUFFER,
                        })
                        .await
                        .with_context(|| format!("connecting {}", user.username))?;
                        if spec.join {
                            socket.join(&[chat]).await?;
                        }
                        Ok::<_, anyhow::Error>((r, m, socket))
                    }
                })
                .buffer_unordered(CONNECT_CONCURRENCY)
                .try_collect()
                .await?;

        let mut rig = Self {
            spec: RigSpec { window, ..spec },
            rooms: chats
                .into_iter()
                .map(|chat| Room {
                    chat,
                    receivers: 0,
                    senders: Vec::new(),
                    trackers: Vec::new(),
                })
                .collect(),
            senders: Vec::new(),
            trackers: Vec::new(),
            tracker_nodes: Vec::new(),
            nodes: ports.len(),
            delivered: Arc::new(AtomicU64::new(0)),
            liveness: Arc::new(Liveness::default()),
            tasks: Vec::new(),
            phase: 0,
        };
        for (r, m, socket) in sockets {
            let node = node_of(r, m);
            let tracker = spec.join.then(|| {
                let tracker = Arc::new(Mutex::new(Tracker::default()));
                rig.rooms[r].trackers.push(rig.trackers.len());
                rig.rooms[r].receivers += 1;
                rig.trackers.push(Arc::clone(&tracker));
                rig.tracker_nodes.push(node);
                tracker
            });
            let (book, outgoing) = if m < spec.senders {
                let book = Arc::new(SenderBook::new(window, socket.next_ack_id()));
                let (out, outgoing) = mpsc::channel(window * 2);
                rig.rooms[r].senders.push(rig.senders.len());
                rig.senders.push(SenderSlot {
                    number: u32::try_from(rig.senders.len()).unwrap_or(u32::MAX),
                    node,
                    chat: rig.rooms[r].chat.clone(),
                    out,
                    book: Arc::clone(&book),
                });
                (Some(book), Some(outgoing))
            } else {
                (None, None)
            };
            let handler = Member {
                tracker,
                book,
                delivered: Arc::clone(&rig.delivered),
            };
            rig.tasks
                .push(socket.spawn(handler, outgoing, Arc::clone(&rig.liveness)));
        }
        Ok(rig)
    }

    /// Runs one phase: every sender sends for `duration`, flat out (a full window in
    /// flight) or paced so that all together send `rate` messages/s; then the last
    /// acks and deliveries are awaited and everything is counted. `servers` are the
    /// processes whose CPU time and memory are measured (the ones the rig's ports
    /// belong to).
    pub async fn run_phase(
        &mut self,
        rate: Option<f64>,
        duration: Duration,
        servers: &Nodes,
    ) -> Result<PhaseResult> {
        self.phase += 1;
        let phase = self.phase;
        // Senders are numbered in the order their connections came up, so which node
        // each is on is only known once all are: handed to the trackers here.
        let sender_nodes: Arc<[usize]> = self.senders.iter().map(|s| s.node).collect();
        for (tracker, &node) in self.trackers.iter().zip(&self.tracker_nodes) {
            *lock(tracker) = Tracker {
                phase,
                split: (self.nodes > 1).then(|| {
                    Box::new(TrackerSplit {
                        node,
                        sender_nodes: Arc::clone(&sender_nodes),
                        latency: NodeSplit::default(),
                    })
                }),
                ..Tracker::default()
            };
        }
        for slot in &self.senders {
            lock(&slot.book.ledger).reset();
        }
        self.delivered.store(0, Ordering::Relaxed);
        let dropped_before = self.liveness.dropped.load(Ordering::Relaxed);
        let malformed_before = self.liveness.malformed.load(Ordering::Relaxed);

        let server_before = servers.sample()?;
        let client_before = ProcSample::own()?;
        let start = Instant::now();
        let start_ns = now_ns();
        let deadline = start + duration;
        let senders = self.senders.len().max(1);
        let pace = rate
            .filter(|r| *r > 0.0)
            .map(|rate| Duration::from_secs_f64(senders as f64 / rate));

        let loops: Vec<JoinHandle<u64>> = self
            .senders
            .iter()
            .enumerate()
            .map(|(i, slot)| {
                let job = SendJob {
                    phase,
                    number: slot.number,
                    chat: slot.chat.clone(),
                    out: slot.out.clone(),
                    book: Arc::clone(&slot.book),
                    start,
                    deadline,
                    // Spread paced senders evenly over one interval.
                    pace: pace.map(|p| (p, p.mul_f64(fraction(i, senders)))),
                };
                tokio::spawn(job.run())
            })
            .collect();
        let mut sent = 0;
        for job in loops {
            sent += job.await.context("a send loop failed")?;
        }

        // The last acks…
        let drain_until = Instant::now() + DRAIN_TIMEOUT;
        while Instant::now() < drain_until
            && self
                .senders
                .iter()
                .any(|s| s.book.window.available_permits() < self.spec.window)
            && !self.all_senders_dropped()
        {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        // …then the last deliveries.
        let acked_per_room: Vec<u64> = self
            .rooms
            .iter()
            .map(|room| {
                room.senders
                    .iter()
                    .map(|&s| lock(&self.senders[s].book.ledger).acked.len())
                    .sum()
            })
            .collect();
        let expected: u64 = self
            .rooms
            .iter()
            .zip(&acked_per_room)
            .map(|(room, acked)| acked * room.receivers)
            .sum();
        while Instant::now() < drain_until && self.delivered.load(Ordering::Relaxed) < expected {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let server_after = servers.sample()?;
        let client_after = ProcSample::own()?;
        let cpu = cpu_between(&server_before, &server_after);

        let mut result = PhaseResult {
            rate,
            sent,
            expected,
            nodes: self.nodes,
            server_cpu_s: cpu.servers,
            node_cpu_s: cpu.nodes,
            redis_cpu_s: cpu.redis,
            client_cpu_s: client_after.cpu_seconds - client_before.cpu_seconds,
            server_after: server_after.servers(),
            by_node: (self.nodes > 1).then(NodeSplit::default),
            dropped: self.liveness.dropped.load(Ordering::Relaxed) - dropped_before,
            first_drop: self.liveness.first_drop(),
            malformed: self.liveness.malformed.load(Ordering::Relaxed) - malformed_before,
            ..PhaseResult::default()
        };
        let mut last_ns = start_ns;
        for slot in &self.senders {
            let ledger = lock(&slot.book.ledger);
            result.acked += ledger.acked.len();
            result.ack_errors += ledger.errors;
            if result.first_ack_error.is_none() {
                result.first_ack_error.clone_from(&ledger.first_error);
            }
            result.ack_latency.merge(&ledger.ack_latency);
            last_ns = last_ns.max(ledger.last_ack_ns);
        }
        result.unacked = result.sent.saturating_sub(result.acked + result.ack_errors);
        for room in &self.rooms {
            for &t in &room.trackers {
                let tracker = lock(&self.trackers[t]);
                result.deliveries += tracker.distinct;
                result.duplicates += tracker.duplicates;
                result.reordered += tracker.reordered;
                result.malformed += tracker.unreadable;
                result.latency.merge(&tracker.latency);
                if let (Some(sum), Some(split)) = (&mut result.by_node, &tracker.split) {
                    sum.same.merge(&split.latency.same);
                    sum.other.merge(&split.latency.other);
                }
                last_ns = last_ns.max(tracker.last_ns);
                for &s in &room.senders {
                    let sender = &self.senders[s];
                    let ledger = lock(&sender.book.ledger);
                    let acked = &ledger.acked;
                    let got = tracker
                        .per_sender
                        .get(sender.number as usize)
                        .cloned()
                        .unwrap_or_default();
                    result.lost += acked.missing_from(&got);
                    result.unexpected += got.missing_from(acked);
                }
            }
        }
        result.span_s = last_ns.saturating_sub(start_ns) as f64 / 1e9;
        Ok(result)
    }

    /// Whether every sender's connection is gone (then no ack can come).
    fn all_senders_dropped(&self) -> bool {
        self.senders.iter().all(|s| s.out.is_closed())
    }

    /// Closes every connection.
    pub fn close(self) {
        self.liveness.stopping.store(true, Ordering::Relaxed);
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// CPU seconds spent between two samples of the same servers.
struct CpuSpent {
    /// All servers together.
    servers: f64,
    /// Server by server.
    nodes: Vec<f64>,
    /// The Redis server, in a cluster.
    redis: Option<f64>,
}

/// What the servers (and Redis) spent between `before` and `after`.
fn cpu_between(before: &NodesSample, after: &NodesSample) -> CpuSpent {
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

/// `i / n` as a fraction.
fn fraction(i: usize, n: usize) -> f64 {
    i as f64 / n as f64
}

/// Locks a mutex, ignoring poisoning (the data are counters).
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// One sender's loop for one phase.
struct SendJob {
    phase: u32,
    number: u32,
    chat: String,
    out: mpsc::Sender<String>,
    book: Arc<SenderBook>,
    start: Instant,
    deadline: Instant,
    /// Interval between sends and this sender's offset; `None` for flat out.
    pace: Option<(Duration, Duration)>,
}

impl SendJob {
    /// Sends until the deadline; returns how many were sent.
    async fn run(self) -> u64 {
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

/// A sender's window and its ledger of sends and acks.
struct SenderBook {
    window: Semaphore,
    ledger: Mutex<Ledger>,
}

impl SenderBook {
    fn new(window: usize, first_ack: u64) -> Self {
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
struct Ledger {
    /// `(ack id, seq, sent ns)` of unanswered sends, at `ack id % RING`.
    ring: Vec<Option<(u64, u64, u64)>>,
    next_ack: u64,
    acked: SeqSet,
    errors: u64,
    first_error: Option<String>,
    ack_latency: Histogram,
    last_ack_ns: u64,
}

impl Ledger {
    /// Starts a new phase (nothing is in flight between phases).
    fn reset(&mut self) {
        self.acked = SeqSet::default();
        self.errors = 0;
        self.first_error = None;
        self.ack_latency = Histogram::default();
        self.last_ack_ns = 0;
    }

    /// Notes a send; returns its ack id.
    fn record_send(&mut self, seq: u64, sent_ns: u64) -> u64 {
        let ack = self.next_ack;
        self.next_ack += 1;
        self.ring[slot(ack)] = Some((ack, seq, sent_ns));
        ack
    }

    /// Forgets a send that never left.
    fn forget(&mut self, ack: u64) {
        self.ring[slot(ack)] = None;
    }
}

/// The ring slot of an ack id.
fn slot(ack: u64) -> usize {
    usize::try_from(ack % RING as u64).unwrap_or(0)
}

/// What one receiving connection got in the current phase.
#[derive(Default)]
struct Tracker {
    phase: u32,
    /// Sequence numbers received, per sender number.
    per_sender: Vec<SeqSet>,
    /// The largest sequence number received, per sender number.
    highest: Vec<Option<u64>>,
    distinct: u64,
    duplicates: u64,
    reordered: u64,
    unreadable: u64,
    latency: Histogram,
    /// In a cluster: the latencies again, by whether the sender was on this
    /// receiver's node (boxed: two more histograms only when there are nodes).
    split: Option<Box<TrackerSplit>>,
    last_ns: u64,
}

/// What a receiver in a cluster needs to split its latencies by node.
struct TrackerSplit {
    /// The receiver's node.
    node: usize,
    /// Each sender's node, by sender number.
    sender_nodes: Arc<[usize]>,
    latency: NodeSplit,
}

impl Tracker {
    /// Counts one `messages:new` (its event array), received at `now`.
    fn record(&mut self, array: &str, now: u64) -> bool {
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

/// The handler of a rig connection: a receiver (when it joined), a sender (when it
/// sends), or both.
struct Member {
    tracker: Option<Arc<Mutex<Tracker>>>,
    book: Option<Arc<SenderBook>>,
    delivered: Arc<AtomicU64>,
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

#[cfg(test)]
mod tests {
    use super::*;

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
