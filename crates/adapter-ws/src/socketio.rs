//! The Socket.IO endpoint (protocol v5, `socket.io-client` 4.x) on socketioxide. The
//! protocol is socketioxide's; the rooms are ours ([`Hub`]), shared with `/ws`, and so
//! are the byte budgets of each socket's queues: what socketioxide has queued for a
//! client is measured against what left over its TCP [`Link`], and a socket over its
//! budget is cut at the TCP level, which closes it whatever its queues hold.

use std::collections::HashMap;
use std::future::{Ready, ready};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError, Weak};

use axum::extract::{ConnectInfo, Request};
use axum::http::{HeaderValue, Uri};
use futures_util::StreamExt;
use serde::Deserialize;
use serde_json::Value;
use serde_json::value::RawValue;
use socketioxide::extract::{AckSender, Event, SocketRef, State, TryData};
use socketioxide::handler::ConnectHandler;
use socketioxide::layer::SocketIoLayer;
use socketioxide::socket::DisconnectReason;
use socketioxide::{SendError, SocketError, SocketIo, TransportType};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use wire::events::ToClient;

use domain::ports::VerifiedToken;

use crate::events::{self, ClientEvent, Incoming};
use crate::frame::Frame;
use crate::hub::{CloseReason, ConnId, Connection, Hub, Undeliverable};
use crate::link::{ConnLink, Link};
use crate::reply::{self, Outbox};
use crate::session::{Exception, Session};
use crate::{MAX_INCOMING_MESSAGE, OUTGOING_FRAMES, Realtime, WS_READ_BUFFER, handshake};

/// Where socketioxide answers (its default path).
const SOCKETIO_PATH: &str = "/socket.io";

/// `auth` of the handshake; other fields are ignored.
#[derive(Deserialize)]
struct HandshakeAuth {
    token: Option<String>,
}

/// Why a handshake was refused; its text is the `connect_error` message.
#[derive(Debug)]
enum Refusal {
    Unauthorized,
    Internal,
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Unauthorized => "Unauthorized",
            Self::Internal => "internal error",
        })
    }
}

/// The Socket.IO layer (to wrap the whole router) and its handle.
pub(crate) fn layer(realtime: Realtime) -> (SocketIoLayer, SocketIo) {
    let (layer, io) = SocketIo::builder()
        .max_buffer_size(OUTGOING_FRAMES)
        .ws_read_buffer_size(WS_READ_BUFFER)
        .ws_max_message_size(MAX_INCOMING_MESSAGE)
        .ws_max_frame_size(MAX_INCOMING_MESSAGE)
        .with_state(realtime)
        .build_layer();
    io.ns("/", on_connect.with(authenticate));
    (layer, io)
}

/// The TCP link of each Socket.IO session's latest request, by session id.
///
/// A session that starts on HTTP long-polling and upgrades reaches us on a new TCP
/// connection, which socketioxide does not tell us about; the request that upgrades
/// names its session (`sid=`), so it is noted here on its way in. Entries are weak: a
/// closed connection's entry is pruned, so a client naming made-up sessions grows
/// nothing.
#[derive(Default)]
pub(crate) struct Transports {
    by_session: Mutex<HashMap<String, Weak<Link>>>,
    prune_at: AtomicU64,
}

impl Transports {
    const PRUNE_MIN: u64 = 1024;

    fn note(&self, session: &str, link: &Arc<Link>) {
        let mut map = self
            .by_session
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        map.insert(session.to_owned(), Arc::downgrade(link));
        let len = map.len() as u64;
        if len >= self.prune_at.load(Ordering::Relaxed).max(Self::PRUNE_MIN) {
            map.retain(|_, link| link.strong_count() > 0);
            self.prune_at.store(
                (map.len() as u64 * 2).max(Self::PRUNE_MIN),
                Ordering::Relaxed,
            );
        }
    }

    fn latest(&self, session: &str) -> Option<Arc<Link>> {
        self.by_session
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(session)
            .and_then(Weak::upgrade)
    }

    fn forget(&self, session: &str) {
        self.by_session
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(session);
    }
}

/// Prepares a request for socketioxide: notes which TCP link serves which session (see
/// [`Transports`]) and gives the request a head of its own, so that hyper's read
/// buffer is freed.
///
/// hyper parses a request without copying: its URI and header values point into the
/// connection's read buffer (16 KiB), and socketioxide keeps the request's head for
/// the whole session (`Socket::req_parts`), so every idle socket would keep that
/// buffer. Copying the few hundred bytes of the head lets it go. Other requests pass
/// untouched.
pub(crate) fn prepare_request(transports: &Transports, request: Request) -> Request {
    if !request.uri().path().starts_with(SOCKETIO_PATH) {
        return request;
    }
    if let (Some(session), Some(ConnectInfo(ConnLink(link)))) = (
        query_value(request.uri().query(), "sid"),
        request.extensions().get::<ConnectInfo<ConnLink>>(),
    ) {
        transports.note(&session, link);
    }
    detach_request_head(request)
}

fn query_value(query: Option<&str>, name: &str) -> Option<String> {
    form_urlencoded::parse(query?.as_bytes())
        .find(|(key, _)| key == name)
        .map(|(_, value)| value.into_owned())
}

/// See [`prepare_request`].
fn detach_request_head(request: Request) -> Request {
    let (mut head, body) = request.into_parts();
    // Parsing what was a valid URI again cannot fail; if it did, the request would
    // only keep the buffer.
    if let Ok(uri) = Uri::try_from(head.uri.to_string()) {
        head.uri = uri;
    }
    for value in head.headers.values_mut() {
        if let Ok(copy) = HeaderValue::from_bytes(value.as_bytes()) {
            *value = copy;
        }
    }
    Request::from_parts(head, body)
}

/// Connect middleware: a valid token (see [`handshake::token`]), else `connect_error`
/// "Unauthorized"; then [`attach`].
async fn authenticate(
    socket: SocketRef,
    TryData(auth): TryData<HandshakeAuth>,
    State(realtime): State<Realtime>,
) -> Result<(), Refusal> {
    let parts = socket.req_parts();
    let own = auth.ok().and_then(|auth| auth.token);
    let token = handshake::token(own, &parts.headers, parts.uri.query());
    match handshake::admit(&realtime.app, token).await {
        Ok(verified) => {
            attach(&socket, &realtime, verified);
            Ok(())
        }
        Err(app::AppError::Internal(source) | app::AppError::Unavailable(source)) => {
            tracing::error!(error = %source, "socket handshake failed on our side");
            Err(Refusal::Internal)
        }
        Err(_) => Err(Refusal::Unauthorized),
    }
}

/// A client event waiting for its socket's worker.
struct Inbound {
    event: String,
    /// The data, or why it could not be read.
    data: Result<Value, String>,
    ack: AckSender,
    /// What it counts against the incoming budget.
    size: u64,
}

/// Registers an authenticated socket and installs its event handlers.
///
/// This runs in the connect middleware, not in the connect handler, on purpose:
/// socketioxide sends the connect packet and only then calls the handler, so a client
/// that emits the moment it is connected could have its first events dispatched to a
/// socket with no handler yet (and dropped) whenever this thread is preempted in between.
/// Here the handlers exist before the connect packet does.
fn attach(socket: &SocketRef, realtime: &Realtime, token: VerifiedToken) {
    let user = token.user;
    let conn = Arc::new(SocketIoConnection::new(socket.clone(), realtime));
    let id = realtime
        .hub
        .register_until(user, conn.clone(), token.expires_at.unix_timestamp());
    let session = realtime.session(id, user);
    // Unbounded as a channel, bounded in bytes by `waiting`: socketioxide hands us each
    // event synchronously and cannot be made to wait. Boxed: the channel's first block
    // of 32 slots lives as long as the socket, and a box is 8 bytes.
    let (queue, inbound) = mpsc::unbounded_channel::<Box<Inbound>>();
    let stop = CancellationToken::new();
    tokio::spawn(work(
        session,
        Arc::clone(&conn),
        id,
        Arc::clone(&realtime.hub),
        inbound,
        stop.clone(),
    ));

    // socketioxide calls this synchronously, in the order events arrive; enqueueing
    // here (not in a spawned future) keeps one socket's events in order.
    let receiver = Arc::clone(&conn);
    let hub = Arc::clone(&realtime.hub);
    socket.on_fallback(
        move |Event(event): Event, ack: AckSender, TryData(data): TryData<Value>| -> Ready<()> {
            let data = data.map_err(|err| format!("invalid payload: {err}"));
            let size = incoming_size(&event, data.as_ref().ok());
            if receiver.incoming.admit(size) {
                let inbound = Box::new(Inbound {
                    event,
                    data,
                    ack,
                    size,
                });
                if queue.send(inbound).is_ok() && receiver.incoming.should_pause() {
                    // Real back-pressure where the transport allows it: the client's
                    // further events wait in TCP until this socket catches up.
                    if let Some(link) = receiver.websocket_link() {
                        link.pause_reads();
                    }
                }
            } else {
                let refusal = Exception {
                    event,
                    message: "too many requests in flight".to_owned(),
                };
                reply::answer(&hub, id, &*receiver, Err(&refusal), ack);
            }
            ready(())
        },
    );
    let transports = Arc::clone(&realtime.transports);
    socket.on_disconnect(
        move |s: SocketRef, State(realtime): State<Realtime>, _reason: DisconnectReason| {
            stop.cancel();
            realtime.hub.unregister(id);
            transports.forget(&s.id.to_string());
            ready(())
        },
    );
}

/// Everything happens in [`attach`]; the namespace needs a handler all the same.
fn on_connect() -> Ready<()> {
    ready(())
}

/// Bytes of a socket's events waiting to be handled, against its budget.
struct IncomingBudget {
    waiting: AtomicU64,
    budget: u64,
}

impl IncomingBudget {
    fn new(budget: u64) -> Self {
        Self {
            waiting: AtomicU64::new(0),
            budget,
        }
    }

    /// Counts an event of `size` bytes in, unless it would go over the budget (one
    /// event alone is always admitted, so that no valid event is refused outright).
    fn admit(&self, size: u64) -> bool {
        let waiting = self.waiting.load(Ordering::Acquire);
        if waiting > 0 && waiting + size > self.budget {
            return false;
        }
        self.waiting.fetch_add(size, Ordering::AcqRel);
        true
    }

    /// Whether so much waits that the client should be read no more for now.
    fn should_pause(&self) -> bool {
        self.waiting.load(Ordering::Acquire) > self.budget / 4
    }

    /// Counts an event out; returns whether reading may resume.
    fn release(&self, size: u64) -> bool {
        let before = self.waiting.fetch_sub(size, Ordering::AcqRel);
        before.saturating_sub(size) <= self.budget / 16
    }
}

/// What an event counts against the incoming budget: about its size on the wire.
fn incoming_size(event: &str, data: Option<&Value>) -> u64 {
    (event.len() + data.map_or(0, json_size) + 16) as u64
}

/// About the length of `value` as JSON text, without writing it.
fn json_size(value: &Value) -> usize {
    match value {
        Value::Null | Value::Bool(_) => 5,
        Value::Number(_) => 12,
        Value::String(s) => s.len() + 2,
        Value::Array(items) => items.iter().map(|v| json_size(v) + 1).sum::<usize>() + 2,
        Value::Object(fields) => {
            fields
                .iter()
                .map(|(k, v)| k.len() + 4 + json_size(v))
                .sum::<usize>()
                + 2
        }
    }
}

/// Handles one socket's events in arrival order (see [`events::serve`]) until it is
/// disconnected or cut off.
async fn work(
    session: Session,
    conn: Arc<SocketIoConnection>,
    id: ConnId,
    hub: Arc<Hub>,
    mut inbound: mpsc::UnboundedReceiver<Box<Inbound>>,
    stop: CancellationToken,
) {
    let _live = crate::metrics::Live::connection(crate::metrics::Protocol::SocketIo);
    let reader = Arc::clone(&conn);
    let events = futures_util::stream::poll_fn(move |cx| inbound.poll_recv(cx))
        .map(move |inbound| -> Incoming<AckSender> {
            let Inbound {
                event,
                data,
                ack,
                size,
            } = *inbound;
            if reader.incoming.release(size)
                && let Some(link) = reader.websocket_link()
            {
                link.resume_reads();
            }
            match data {
                Ok(data) => Ok(ClientEvent {
                    event,
                    data,
                    reply_to: ack,
                }),
                Err(message) => Err((Exception { event, message }, ack)),
            }
        })
        .take_until(stop.cancelled_owned());
    events::serve(&session, events, |answer, ack: AckSender| {
        reply::answer(&hub, id, &*conn, answer.as_ref(), ack);
    })
    .await;
}

/// A Socket.IO socket in the hub. Its outgoing queue is socketioxide's; what it holds
/// is measured as the bytes handed to it less those written to the socket's TCP link.
pub(crate) struct SocketIoConnection {
    socket: SocketRef,
    transports: Arc<Transports>,
    /// The WebSocket's link, once the socket is on that transport, with the counts
    /// when it became known.
    measured: OnceLock<Measured>,
    /// Bytes handed to socketioxide so far.
    handed: AtomicU64,
    budget: u64,
    closed: AtomicBool,
    /// Its events waiting to be handled.
    incoming: IncomingBudget,
}

/// The link, and the counts from which the queue is measured: bytes handed since
/// `handed_from` less bytes written since `written_from`.
struct Measured {
    link: Arc<Link>,
    handed_from: AtomicU64,
    written_from: AtomicU64,
}

/// The bytes an event packet `42["<event>",<payload>]` takes on the wire.
fn event_size(event: &str, payload: usize) -> usize {
    wire_size(event.len() + payload + 7)
}

/// The bytes an ack packet `43<id>[<payload>]` takes on the wire, at least (its id has
/// one digit or more).
fn ack_size(payload: usize) -> usize {
    wire_size(payload + 5)
}

/// A Socket.IO text packet of `text` bytes in its WebSocket frame (a server's frames
/// are unmasked: a 2-, 4- or 10-byte header).
fn wire_size(text: usize) -> usize {
    let header = match text {
        0..=125 => 2,
        126..=65_535 => 4,
        _ => 10,
    };
    text + header
}

impl SocketIoConnection {
    fn new(socket: SocketRef, realtime: &Realtime) -> Self {
        let this = Self {
            socket,
            transports: Arc::clone(&realtime.transports),
            measured: OnceLock::new(),
            handed: AtomicU64::new(0),
            budget: realtime.budgets.outgoing,
            closed: AtomicBool::new(false),
            incoming: IncomingBudget::new(realtime.budgets.incoming),
        };
        // A session that started on the WebSocket transport came on this link.
        if this.socket.transport_type() == TransportType::Websocket
            && let Some(ConnectInfo(ConnLink(link))) = this
                .socket
                .req_parts()
                .extensions
                .get::<ConnectInfo<ConnLink>>()
        {
            this.measure(Arc::clone(link));
        }
        this
    }

    fn measure(&self, link: Arc<Link>) -> Option<&Measured> {
        let written_from = AtomicU64::new(link.written());
        Some(self.measured.get_or_init(|| Measured {
            link,
            handed_from: AtomicU64::new(self.handed.load(Ordering::Acquire)),
            written_from,
        }))
    }

    /// The WebSocket transport's link, once the socket is on it.
    fn websocket_link(&self) -> Option<&Arc<Link>> {
        self.measured().map(|m| &m.link)
    }

    fn measured(&self) -> Option<&Measured> {
        if let Some(measured) = self.measured.get() {
            return Some(measured);
        }
        if self.socket.transport_type() != TransportType::Websocket {
            return None;
        }
        let link = self.transports.latest(&self.socket.id.to_string())?;
        self.measure(link)
    }

    /// Hands a packet of about `size` bytes to socketioxide with `emit`, within budget.
    fn send(
        &self,
        size: usize,
        emit: impl FnOnce() -> Result<(), SendError>,
    ) -> Result<(), Undeliverable> {
        if self.closed.load(Ordering::Acquire) {
            return Err(Undeliverable::Closed);
        }
        let size = size as u64;
        if self.queued_bytes() + size > self.budget {
            return Err(Undeliverable::OverBudget);
        }
        match emit() {
            Ok(()) => {
                self.handed.fetch_add(size, Ordering::AcqRel);
                Ok(())
            }
            // socketioxide's own bound, in frames: only many tiny frames reach it first.
            Err(SendError::Socket(SocketError::InternalChannelFull)) => {
                Err(Undeliverable::OverBudget)
            }
            Err(SendError::Socket(SocketError::Closed)) => Err(Undeliverable::Closed),
            // A serialisation failure of an already-serialised payload: not the client's doing.
            Err(err) => {
                tracing::error!(%err, "cannot frame a payload for Socket.IO");
                Ok(())
            }
        }
    }
}

impl Outbox for SocketIoConnection {
    type AckTo = AckSender;

    fn emit(&self, event: ToClient, payload: &RawValue) -> Result<(), Undeliverable> {
        let event = event.name();
        self.send(event_size(event, payload.get().len()), || {
            self.socket.emit(event, payload)
        })
    }

    fn ack(&self, to: AckSender, payload: &RawValue) -> Result<(), Undeliverable> {
        self.send(ack_size(payload.get().len()), || to.send(payload))
    }
}

impl Connection for SocketIoConnection {
    fn deliver(&self, frame: &Arc<Frame>) -> Result<(), Undeliverable> {
        self.send(
            event_size(frame.event(), frame.payload().get().len()),
            || self.socket.emit(frame.event(), frame.payload()),
        )
    }

    fn queued_bytes(&self) -> u64 {
        // Before the link is known (long-polling), socketioxide's bound in frames is
        // the only one.
        self.measured().map_or(0, |m| {
            let handed_now = self.handed.load(Ordering::Acquire);
            let written_now = m.link.written();
            let handed = handed_now.saturating_sub(m.handed_from.load(Ordering::Acquire));
            let written = written_now.saturating_sub(m.written_from.load(Ordering::Acquire));
            if written >= handed {
                // Everything handed has left (and then some: pings, and ack ids longer
                // than counted). Measuring from here on keeps those few uncounted
                // bytes from adding up over a long-lived socket.
                m.handed_from.store(handed_now, Ordering::Release);
                m.written_from.store(written_now, Ordering::Release);
                return 0;
            }
            handed - written
        })
    }

    fn close(&self, why: CloseReason) {
        if self.closed.swap(true, Ordering::AcqRel) {
            return;
        }
        match why {
            CloseReason::TokenExpired => {
                // The client must come back with a new token, so this is the socket's
                // own disconnect ("io server disconnect"), after the reason.
                let exception = Exception {
                    event: String::new(),
                    message: why.text().to_owned(),
                };
                let told = self
                    .socket
                    .emit(ToClient::Exception.name(), &exception.payload())
                    .is_ok();
                if !told || self.socket.clone().disconnect().is_err() {
                    self.cut();
                }
            }
            // socket.io-client reconnects by itself after a transport close.
            CloseReason::Slow | CloseReason::CatchUp | CloseReason::Shutdown => self.cut(),
        }
    }
}

impl SocketIoConnection {
    /// Cuts the socket's TCP link, which closes it whatever its queues hold; a
    /// long-polling session loses its current request, and socketioxide's heartbeat,
    /// which cannot go through a full queue, ends it.
    fn cut(&self) {
        let link = self
            .websocket_link()
            .cloned()
            .or_else(|| self.transports.latest(&self.socket.id.to_string()));
        match link {
            Some(link) => link.cut(),
            None => {
                let _ = self.socket.clone().disconnect();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use axum::body::{Body, Bytes};
    use axum::http::header::AUTHORIZATION;

    use super::*;

    /// What hyper hands on: a request whose path and header value are slices of the
    /// connection's read buffer, `buffer` (`path` bytes, a space, then the value).
    fn parsed_from(buffer: &Bytes, path: usize) -> Request {
        let uri = Uri::from_maybe_shared(buffer.slice(..path)).unwrap();
        let token = HeaderValue::from_maybe_shared(buffer.slice(path + 1..)).unwrap();
        let mut request = Request::new(Body::empty());
        *request.uri_mut() = uri;
        request.headers_mut().insert(AUTHORIZATION, token);
        request.extensions_mut().insert(7_u32);
        request
    }

    /// Whether `bytes` lies in `buffer`'s memory.
    fn points_into(buffer: &Bytes, bytes: &[u8]) -> bool {
        buffer.as_ptr_range().contains(&bytes.as_ptr())
    }

    #[test]
    fn a_socket_io_request_s_head_no_longer_points_into_the_read_buffer() {
        let line = "/socket.io/?EIO=4&transport=websocket";
        let buffer = Bytes::from(format!("{line} Bearer abc"));
        let request = parsed_from(&buffer, line.len());
        assert!(points_into(&buffer, request.uri().path().as_bytes()));
        assert!(points_into(
            &buffer,
            request.headers()[AUTHORIZATION].as_bytes()
        ));

        let detached = prepare_request(&Transports::default(), request);
        assert_eq!(detached.uri(), line);
        assert_eq!(detached.headers()[AUTHORIZATION], "Bearer abc");
        assert_eq!(detached.extensions().get::<u32>(), Some(&7));
        assert!(!points_into(&buffer, detached.uri().path().as_bytes()));
        assert!(!points_into(
            &buffer,
            detached.uri().query().unwrap().as_bytes()
        ));
        assert!(!points_into(
            &buffer,
            detached.headers()[AUTHORIZATION].as_bytes()
        ));
    }

    #[test]
    fn packet_sizes_are_counted_as_they_go_on_the_wire() {
        let payload = r#"{"chatId":"c"}"#;
        let packet = format!(r#"42["chats:deleted",{payload}]"#);
        assert_eq!(event_size("chats:deleted", payload.len()), packet.len() + 2);
        let ack = format!("431[{payload}]");
        assert_eq!(ack_size(payload.len()), ack.len() + 2);
        // Longer packets take a longer frame header.
        assert_eq!(wire_size(125), 127);
        assert_eq!(wire_size(126), 130);
        assert_eq!(wire_size(70_000), 70_010);
    }

    #[test]
    fn other_requests_pass_untouched() {
        let line = "/chats?limit=5";
        let buffer = Bytes::from(format!("{line} Bearer abc"));
        let passed = prepare_request(&Transports::default(), parsed_from(&buffer, line.len()));
        assert!(points_into(&buffer, passed.uri().path().as_bytes()));
        assert!(points_into(
            &buffer,
            passed.headers()[AUTHORIZATION].as_bytes()
        ));
    }
}
