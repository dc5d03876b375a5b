//! The real-time adapter: the Socket.IO endpoint (`/socket.io/`) and the plain
//! WebSocket endpoint (`/ws`), sharing one set of chat rooms, and the domain's
//! [`RoomEvents`] port delivered into them.
//!
//! Build order: [`Rooms::local`] first (optionally
//! [`Rooms::delivering_through`] a cluster's delivery), its [`Rooms::events`] into the
//! use cases, then [`Rooms::endpoints`] with the built `App`.

mod audit;
mod delivery;
mod events;
mod frame;
mod handshake;
mod hub;
pub mod link;
mod metrics;
mod pacing;
mod reply;
mod session;
mod socketio;
mod ws;

use std::sync::Arc;

use app::App;
use axum::Router;
use axum::routing::get;
use domain::ports::RoomEvents;
use socketioxide::SocketIo;
use socketioxide::layer::SocketIoLayer;

pub use self::metrics::{RoomGauge, describe as describe_metrics};
pub use audit::RoomAudit;
pub use delivery::LocalDelivery;
pub use frame::Frame;
pub use hub::{CloseReason, ConnId, Connection, Hub, Undeliverable};
pub use pacing::Pacing;

/// Byte budgets of each connection's queues (docs/API.md, "Flow control").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budgets {
    /// Bytes one connection may have waiting to be sent; a connection that would go
    /// over it has stopped reading and is closed as a slow consumer.
    pub outgoing: u64,
    /// Bytes of one Socket.IO socket's events that may wait to be handled; beyond it
    /// an event is refused with `exception` "too many requests in flight". (`/ws` is
    /// read only as fast as it is handled, so TCP holds its client back instead.)
    pub incoming: u64,
    /// Each user's `messages:create` rate on this node, past which sends wait their
    /// turn (see `pacing.rs`); `None` does not pace.
    pub message_pacing: Option<Pacing>,
}

impl Default for Budgets {
    fn default() -> Self {
        Self {
            outgoing: 1024 * 1024,
            incoming: 1024 * 1024,
            message_pacing: None,
        }
    }
}

/// Frames one Socket.IO socket may have queued, whatever their size: socketioxide's
/// own bound, which only a flood of tiny frames reaches before the byte budget, and
/// the only bound of a long-polling session, whose drain cannot be measured.
pub(crate) const OUTGOING_FRAMES: usize = 8192;

/// Largest WebSocket message a client may send, on either protocol: the REST body
/// limit. The largest valid event (a `chats:connect` of 1000 ids, a 4096-character
/// message of escaped characters) is under half of it; a larger message closes the
/// connection.
pub(crate) const MAX_INCOMING_MESSAGE: usize = 64 * 1024;

/// What each WebSocket reads from its TCP socket at once, on either protocol; its read
/// buffer starts at this size and is kept while the connection lives (it grows only
/// to hold a larger message). Small, because an idle connection pays for it: events
/// are mostly far smaller, and a larger one takes a few more reads.
const WS_READ_BUFFER: usize = 1024;

/// What the socket handlers share.
#[derive(Clone)]
pub(crate) struct Realtime {
    app: App,
    hub: Arc<Hub>,
    budgets: Budgets,
    transports: Arc<socketio::Transports>,
    pacer: Arc<pacing::Pacer>,
}

impl Realtime {
    /// The session of connection `id` of `user`, once it is registered in the hub.
    pub(crate) fn session(&self, id: ConnId, user: domain::UserId) -> session::Session {
        session::Session::new(
            self.app.clone(),
            Arc::clone(&self.hub),
            id,
            user,
            Arc::clone(&self.pacer),
        )
    }
}

/// This process's rooms and the path that delivers into them.
pub struct Rooms {
    hub: Arc<Hub>,
    local: Arc<LocalDelivery>,
    delivery: Arc<dyn RoomEvents>,
}

impl Rooms {
    /// Rooms of a single server process: stored changes are delivered straight to its
    /// own sockets.
    pub fn local() -> Self {
        let hub = Arc::new(Hub::default());
        let local = Arc::new(LocalDelivery::new(Arc::clone(&hub)));
        Self {
            hub,
            delivery: local.clone(),
            local,
        }
    }

    /// Delivery straight into this process's rooms: what a cluster's delivery applies
    /// the events it receives to.
    pub fn local_delivery(&self) -> Arc<LocalDelivery> {
        Arc::clone(&self.local)
    }

    /// The same rooms, with room events published through `delivery` instead (for
    /// example to every node of a cluster, which applies them here through
    /// [`Rooms::local_delivery`]). Call before [`Rooms::events`].
    #[must_use]
    pub fn delivering_through(self, delivery: Arc<dyn RoomEvents>) -> Self {
        Self { delivery, ..self }
    }

    /// The room-event port to give the use cases.
    pub fn events(&self) -> Arc<dyn RoomEvents> {
        Arc::clone(&self.delivery)
    }

    /// The check of this node's rooms against the database over `app` (for a cluster
    /// node back from a broker outage).
    pub fn audit(&self, app: App) -> RoomAudit {
        RoomAudit::new(app, Arc::clone(&self.hub), Arc::clone(&self.local))
    }

    /// The socket endpoints over `app`, each connection's queues within `budgets`.
    /// Starts the sweep that closes sockets whose token expired (so call it inside the
    /// runtime).
    pub fn endpoints(&self, app: App, budgets: Budgets) -> Endpoints {
        tokio::spawn(close_expired_sockets(Arc::downgrade(&self.hub)));
        let realtime = Realtime {
            app,
            hub: Arc::clone(&self.hub),
            budgets,
            transports: Arc::default(),
            pacer: pacing::Pacer::new(budgets.message_pacing),
        };
        let transports = Arc::clone(&realtime.transports);
        let (layer, io) = socketio::layer(realtime.clone());
        let router = Router::new()
            .route("/ws", get(ws::upgrade))
            .with_state(realtime);
        Endpoints {
            router,
            layer,
            io,
            hub: Arc::clone(&self.hub),
            transports,
        }
    }
}

/// The socket endpoints, to serve around the REST routes with [`Endpoints::around`].
pub struct Endpoints {
    /// `GET /ws`.
    router: Router,
    /// The Socket.IO layer.
    layer: SocketIoLayer,
    io: SocketIo,
    hub: Arc<Hub>,
    transports: Arc<socketio::Transports>,
}

impl Endpoints {
    /// The whole service: `rest` (which should hold [`Endpoints::ws_routes`]) behind
    /// Socket.IO, which answers on `/socket.io/` and passes every other request through. Serve it over
    /// [`link::LinkedStream`]s with `ConnectInfo<`[`link::ConnLink`]`>` in each
    /// request, so that each socket knows its TCP link (without, Socket.IO's outgoing
    /// budget falls back to counting frames).
    pub fn around(&self, rest: Router) -> Router {
        // The layer must wrap the router exactly once: each `layer()` call makes a
        // separate engine with its own sessions, and `Router::layer` would call it once
        // per route, so a long-polling handshake and its next request could meet
        // different engines.
        let socketio = tower::Layer::layer(&self.layer, rest);
        let transports = Arc::clone(&self.transports);
        Router::new().fallback_service(tower::ServiceExt::map_request(socketio, move |request| {
            socketio::prepare_request(&transports, request)
        }))
    }

    /// `GET /ws`, to serve beside the REST routes under their middleware (request ids,
    /// tracing), so that its refusals look like every other answer.
    pub fn ws_routes(&self) -> Router {
        self.router.clone()
    }

    /// The gauge of this process's rooms, to sample when metrics are scraped.
    pub fn room_gauge(&self) -> RoomGauge {
        RoomGauge::new(Arc::clone(&self.hub))
    }

    /// A handle that closes every socket at shutdown.
    pub fn closer(&self) -> SocketCloser {
        SocketCloser {
            io: self.io.clone(),
            hub: Arc::clone(&self.hub),
        }
    }
}

/// Closes every live socket, so that a graceful shutdown does not wait on them.
#[derive(Clone)]
pub struct SocketCloser {
    io: SocketIo,
    hub: Arc<Hub>,
}

impl SocketCloser {
    /// Disconnects every Socket.IO and `/ws` client.
    pub async fn close_all(&self) {
        self.hub.close_all(CloseReason::Shutdown);
        self.io.close().await;
    }
}

/// How often sockets whose token expired are looked for: a socket outlives its token
/// by less than this.
const EXPIRY_SWEEP: std::time::Duration = std::time::Duration::from_secs(1);

/// Closes the sockets whose token expired, every [`EXPIRY_SWEEP`], until the hub goes.
async fn close_expired_sockets(hub: std::sync::Weak<Hub>) {
    let mut every = tokio::time::interval(EXPIRY_SWEEP);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        every.tick().await;
        let Some(hub) = hub.upgrade() else { return };
        let closed = hub.close_expired(time::OffsetDateTime::now_utc().unix_timestamp());
        if closed > 0 {
            tracing::info!(closed, "closed sockets whose access token expired");
        }
    }
}
