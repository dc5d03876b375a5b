//! The scenarios, their sizes, and what each needs from a run: the server (or the
//! cluster's nodes) under test, a REST client of it and the pool of users.

pub mod burst;
pub mod fanout;
pub mod idle;
pub mod ingest;
pub mod rest;

use std::time::Duration;

use crate::api::{Api, User};
use crate::server::{Nodes, Server, StoreKind};

/// A scenario of the benchmark.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Scenario {
    /// Messages into rooms of connected members: deliveries/s, latency, loss.
    Fanout,
    /// Authenticated idle Socket.IO connections: server memory per connection.
    Idle,
    /// The same over the plain `/ws` protocol.
    IdleWs,
    /// Persisted, acknowledged messages/s with nobody listening.
    Ingest,
    /// `GET /chats`, `POST /auth/login`, and message latency under a login storm.
    Rest,
    /// A burst of messages into a room of slow and stalled readers: delivered of
    /// expected, cut-offs, peak memory, CPU per delivery.
    Burst,
}

impl Scenario {
    /// Every scenario, in the order `all` runs them.
    pub const ALL: [Self; 6] = [
        Self::Fanout,
        Self::Idle,
        Self::IdleWs,
        Self::Ingest,
        Self::Rest,
        Self::Burst,
    ];

    /// Its name in reports.
    pub fn name(self) -> &'static str {
        match self {
            Self::Fanout => "fanout",
            Self::Idle => "idle",
            Self::IdleWs => "idle-ws",
            Self::Ingest => "ingest",
            Self::Rest => "rest",
            Self::Burst => "burst",
        }
    }

    /// Whether it can run against a cluster (`--nodes` 2 or more). Fan-out and
    /// ingest spread their connections over the nodes; idle and rest measure one
    /// process (its memory per connection, its REST paths), which a cluster would
    /// only blur.
    pub fn runs_on_a_cluster(self) -> bool {
        matches!(self, Self::Fanout | Self::Ingest)
    }

    /// How many users of the pool it uses.
    pub fn users(self, sizes: &Sizes) -> usize {
        match self {
            Self::Fanout => sizes.rooms * sizes.members,
            Self::Idle | Self::IdleWs => sizes.idle_users,
            Self::Ingest => sizes.ingest_chats * sizes.ingest_senders,
            Self::Rest => sizes
                .rest_clients
                .max(sizes.login_clients)
                .max(sizes.storm_members),
            Self::Burst => sizes.burst_members,
        }
    }
}

/// The sizes of every scenario (from the options, or the defaults of a full or a
/// `--quick` run).
#[derive(Debug, Clone)]
pub struct Sizes {
    /// Fan-out: chats.
    pub rooms: usize,
    /// Fan-out: members (connections) per chat.
    pub members: usize,
    /// Fan-out: sending members per chat.
    pub senders: usize,
    /// Fan-out and ingest: unacknowledged sends per sender.
    pub window: usize,
    /// Fan-out: the paced phase's total rate in messages/s (0: no paced phase).
    pub rate: f64,
    /// How long each measured phase sends.
    pub duration: Duration,
    /// Idle: connections.
    pub connections: usize,
    /// Idle: users the connections are spread over.
    pub idle_users: usize,
    /// Idle: how long the connections are held before the memory is read again.
    pub idle_hold: Duration,
    /// Ingest: chats.
    pub ingest_chats: usize,
    /// Ingest: senders per chat.
    pub ingest_senders: usize,
    /// REST: concurrent `GET /chats` clients.
    pub rest_clients: usize,
    /// REST: concurrent `POST /auth/login` clients (also the storm's).
    pub login_clients: usize,
    /// REST: chats each `GET /chats` caller is in.
    pub rest_chats: usize,
    /// REST storm: members of the room whose latency is measured.
    pub storm_members: usize,
    /// REST storm: that room's rate in messages/s.
    pub storm_rate: f64,
    /// Burst: members of the room (the sender, readers and stalled readers).
    pub burst_members: usize,
    /// Burst: messages sent without waiting.
    pub burst_messages: usize,
}

impl Sizes {
    /// A full run's defaults.
    pub fn full() -> Self {
        Self {
            rooms: 1,
            members: 200,
            senders: 4,
            window: 32,
            rate: 1_000.0,
            duration: Duration::from_secs(10),
            connections: 10_000,
            idle_users: 50,
            idle_hold: Duration::from_secs(5),
            ingest_chats: 8,
            ingest_senders: 4,
            rest_clients: 16,
            login_clients: 8,
            rest_chats: 10,
            storm_members: 50,
            storm_rate: 200.0,
            burst_members: 100,
            burst_messages: 5000,
        }
    }

    /// `--quick`: tiny sizes and short phases, to check that the harness works.
    pub fn quick() -> Self {
        Self {
            rooms: 2,
            members: 5,
            senders: 2,
            window: 8,
            rate: 100.0,
            duration: Duration::from_secs(2),
            connections: 200,
            idle_users: 4,
            idle_hold: Duration::from_millis(500),
            ingest_chats: 2,
            ingest_senders: 2,
            rest_clients: 4,
            login_clients: 2,
            rest_chats: 3,
            storm_members: 5,
            storm_rate: 50.0,
            burst_members: 8,
            burst_messages: 300,
        }
    }
}

impl Sizes {
    /// The sizes as JSON, for the report's header.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "rooms": self.rooms,
            "members": self.members,
            "senders": self.senders,
            "window": self.window,
            "rate_per_s": self.rate,
            "duration_s": self.duration.as_secs_f64(),
            "connections": self.connections,
            "idle_users": self.idle_users,
            "idle_hold_s": self.idle_hold.as_secs_f64(),
            "ingest_chats": self.ingest_chats,
            "ingest_senders_per_chat": self.ingest_senders,
            "rest_clients": self.rest_clients,
            "login_clients": self.login_clients,
            "rest_chats": self.rest_chats,
            "storm_members": self.storm_members,
            "storm_rate_per_s": self.storm_rate,
            "burst_members": self.burst_members,
            "burst_messages": self.burst_messages,
        })
    }
}

/// What a scenario runs against.
pub struct Ctx<'a> {
    /// The servers, freshly started for this scenario: one, or a cluster's nodes.
    pub nodes: &'a Nodes,
    /// The first of them (the only one outside a cluster).
    pub server: &'a Server,
    /// A REST client of the first server.
    pub api: &'a Api,
    /// The users made for this store.
    pub users: &'a [User],
    /// The sizes.
    pub sizes: &'a Sizes,
    /// The store it runs on.
    pub store: StoreKind,
}
