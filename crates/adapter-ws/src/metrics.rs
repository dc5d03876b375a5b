//! The sockets' metrics (README.md, "Metrics"), each call site one line. The handles
//! are looked up once and kept: counting a broadcast is one atomic add, whatever the
//! size of the room, and takes no lock.
//!
//! A handle is bound to the recorder installed when it is first used, so the server
//! installs its recorder before it builds the sockets; without one (unit tests) they
//! count nothing.

use std::sync::{Arc, LazyLock};

use metrics::{Counter, Gauge};

use crate::hub::{CloseReason, Hub};

/// Frames handed to sockets by the rooms (`messages:new` and the membership events):
/// one per socket reached.
static DELIVERIES: LazyLock<Counter> =
    LazyLock::new(|| metrics::counter!("messenger_deliveries_total"));

static CUT_OFF_SLOW: LazyLock<Counter> = LazyLock::new(|| cut_off_counter("slow_consumer"));
static CUT_OFF_EXPIRED: LazyLock<Counter> = LazyLock::new(|| cut_off_counter("token_expired"));
static CUT_OFF_CATCH_UP: LazyLock<Counter> = LazyLock::new(|| cut_off_counter("catch_up"));

static LIVE_SOCKET_IO: LazyLock<Gauge> = LazyLock::new(|| live_gauge("socket.io"));
static LIVE_WS: LazyLock<Gauge> = LazyLock::new(|| live_gauge("ws"));

fn cut_off_counter(reason: &'static str) -> Counter {
    metrics::counter!("messenger_connections_cut_off_total", "reason" => reason)
}

fn live_gauge(protocol: &'static str) -> Gauge {
    metrics::gauge!("messenger_connections", "protocol" => protocol)
}

/// Describes this crate's metrics to the installed recorder (the `# HELP` lines).
pub fn describe() {
    metrics::describe_counter!(
        "messenger_deliveries_total",
        "Room events handed to sockets, one per socket reached."
    );
    metrics::describe_counter!(
        "messenger_connections_cut_off_total",
        "Sockets the server closed: slow consumer, token expired, or catch up."
    );
    metrics::describe_gauge!("messenger_connections", "Live authenticated sockets.");
    metrics::describe_gauge!(
        "messenger_rooms",
        "Chat rooms with at least one socket in them on this node."
    );
}

/// Counts the frames of one broadcast: `offered` sockets, of which `failed` could not
/// take it.
pub(crate) fn delivered(offered: usize, failed: usize) {
    DELIVERIES.increment(offered.saturating_sub(failed) as u64);
}

/// Counts `count` connections the server closed for `why`. Closing at shutdown is not
/// a cut-off and is not counted.
pub(crate) fn cut_off(why: CloseReason, count: usize) {
    let counter = match why {
        CloseReason::Slow => &CUT_OFF_SLOW,
        CloseReason::TokenExpired => &CUT_OFF_EXPIRED,
        CloseReason::CatchUp => &CUT_OFF_CATCH_UP,
        CloseReason::Shutdown => return,
    };
    counter.increment(count as u64);
}

/// Which protocol a connection speaks (the `protocol` label).
#[derive(Debug, Clone, Copy)]
pub(crate) enum Protocol {
    /// Socket.IO on `/socket.io/`.
    SocketIo,
    /// The plain WebSocket protocol on `/ws`.
    Ws,
}

/// One live connection in `messenger_connections`, for as long as it is held.
pub(crate) struct Live(&'static LazyLock<Gauge>);

impl Live {
    /// Counts a connection of `protocol` until the returned guard is dropped.
    pub(crate) fn connection(protocol: Protocol) -> Self {
        let gauge = match protocol {
            Protocol::SocketIo => &LIVE_SOCKET_IO,
            Protocol::Ws => &LIVE_WS,
        };
        gauge.increment(1.0);
        Self(gauge)
    }
}

impl Drop for Live {
    fn drop(&mut self) {
        self.0.decrement(1.0);
    }
}

/// Samples the rooms of this process into `messenger_rooms` (rooms with at least one
/// connection), when `/metrics` is scraped: a room count kept up to date on every join
/// and leave would cost the sockets, one read of the registry per scrape costs nothing.
#[derive(Clone)]
pub struct RoomGauge {
    hub: Arc<Hub>,
    rooms: Gauge,
}

impl RoomGauge {
    pub(crate) fn new(hub: Arc<Hub>) -> Self {
        Self {
            hub,
            rooms: metrics::gauge!("messenger_rooms"),
        }
    }

    /// Sets the gauge to the number of rooms now.
    #[allow(clippy::cast_precision_loss)] // far fewer rooms than 2^52
    pub fn record(&self) {
        self.rooms.set(self.hub.room_count() as f64);
    }
}
