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
//!
//! One module per reason to change: this one sets the rooms up and runs the phases;
//! [`ledger`] keeps what each sender sent and each receiver heard (the `clientMsgId`
//! scheme above); [`member`] is what one connection does (send, or count what
//! arrives); [`result`] is what a phase reports.

mod ledger;
mod member;
mod result;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use futures_util::{StreamExt, TryStreamExt, stream};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::api::{Api, User};
use crate::server::{Nodes, ProcSample};
use crate::sio::{Connect, Liveness, Protocol, Socket};
use crate::stats::now_ns;
use ledger::{SenderBook, Tracker, TrackerSplit};
use member::{Member, SendJob};
use result::cpu_between;
pub use result::{NodeSplit, PhaseResult, per_second};

/// The text of every benchmark message (about the length of a typical chat line).
const CONTENT: &str = "The quick brown fox jumps over the lazy dog, again and again.";

/// The WebSocket read buffer of a rig connection. tungstenite zero-fills the free
/// part of its buffer before every read, so a large one costs a large `memset` per
/// frame; a message frame is a few hundred bytes.
const READ_BUFFER: usize = 4 * 1024;

/// Connections opened at once while setting up.
const CONNECT_CONCURRENCY: usize = 64;

/// The largest window: the server refuses a socket's events beyond 512 waiting.
pub const MAX_WINDOW: usize = 512;

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
/// `i / n` as a fraction.
fn fraction(i: usize, n: usize) -> f64 {
    i as f64 / n as f64
}

/// Locks a mutex, ignoring poisoning (the data are counters).
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}
