//! The Socket.IO endpoint (protocol v5, `socket.io-client` 4.x) on socketioxide. The
//! protocol is socketioxide's; the rooms are ours ([`Hub`]), shared with `/ws`, so that
//! a full socket is known by name and cut off rather than silently skipped.

use std::future::{Ready, ready};
use std::sync::Arc;

use axum::extract::Request;
use axum::http::{HeaderMap, HeaderValue, Uri, header};
use futures_util::StreamExt;
use serde::Deserialize;
use serde_json::Value;
use socketioxide::extract::{AckSender, Event, SocketRef, State, TryData};
use socketioxide::handler::ConnectHandler;
use socketioxide::layer::SocketIoLayer;
use socketioxide::socket::DisconnectReason;
use socketioxide::{SendError, SocketError, SocketIo};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::events::{self, ClientEvent};
use crate::frame::Frame;
use crate::hub::{Connection, Undeliverable};
use crate::session::{Exception, Session};
use crate::{
    INBOUND_QUEUE, MAX_INCOMING_MESSAGE, OUTBOUND_QUEUE, Realtime, WS_READ_BUFFER, token_from_query,
};

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
        .max_buffer_size(OUTBOUND_QUEUE)
        .ws_read_buffer_size(WS_READ_BUFFER)
        .ws_max_message_size(MAX_INCOMING_MESSAGE)
        .ws_max_frame_size(MAX_INCOMING_MESSAGE)
        .with_state(realtime)
        .build_layer();
    io.ns("/", on_connect.with(authenticate));
    (layer, io)
}

/// Gives a Socket.IO request a head of its own, so that hyper's read buffer is freed.
///
/// hyper parses a request without copying: its URI and header values point into the
/// connection's read buffer (16 KiB), and socketioxide keeps the request's head for
/// the whole session (`Socket::req_parts`), so every idle socket would keep that
/// buffer. Copying the few hundred bytes of the head lets it go. Other requests pass
/// untouched.
pub(crate) fn detach_request_head(request: Request) -> Request {
    if !request.uri().path().starts_with(SOCKETIO_PATH) {
        return request;
    }
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

/// Connect middleware: a valid token from `auth.token`, `Authorization: Bearer` or
/// `?token=`, else `connect_error` "Unauthorized"; then [`attach`].
async fn authenticate(
    socket: SocketRef,
    TryData(auth): TryData<HandshakeAuth>,
    State(realtime): State<Realtime>,
) -> Result<(), Refusal> {
    let parts = socket.req_parts();
    let token = auth
        .ok()
        .and_then(|auth| auth.token)
        .or_else(|| bearer(&parts.headers).map(str::to_owned))
        .or_else(|| token_from_query(parts.uri.query()))
        .ok_or(Refusal::Unauthorized)?;
    match realtime.app.auth.authenticate(&token).await {
        Ok(user) => {
            attach(&socket, &realtime, user);
            Ok(())
        }
        Err(app::AppError::Internal(source) | app::AppError::Unavailable(source)) => {
            tracing::error!(error = %source, "socket handshake failed on our side");
            Err(Refusal::Internal)
        }
        Err(_) => Err(Refusal::Unauthorized),
    }
}

pub(crate) fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

/// A client event waiting for its socket's worker.
struct Inbound {
    event: String,
    data: Value,
    ack: AckSender,
}

/// Registers an authenticated socket and installs its event handlers.
///
/// This runs in the connect middleware, not in the connect handler, on purpose:
/// socketioxide sends the connect packet and only then calls the handler, so a client
/// that emits the moment it is connected could have its first events dispatched to a
/// socket with no handler yet (and dropped) whenever this thread is preempted in between.
/// Here the handlers exist before the connect packet does.
fn attach(socket: &SocketRef, realtime: &Realtime, user: domain::UserId) {
    let conn = realtime
        .hub
        .register(user, Arc::new(SocketIoConnection(socket.clone())));
    let session = Session::new(realtime.app.clone(), Arc::clone(&realtime.hub), conn, user);
    // Boxed: the channel's first block of 32 slots lives as long as the socket, and a
    // box is 8 bytes where an `Inbound` is 80 (2.5 KiB of each idle socket).
    let (queue, inbound) = mpsc::channel::<Box<Inbound>>(INBOUND_QUEUE);
    let stop = CancellationToken::new();
    tokio::spawn(work(session, socket.clone(), inbound, stop.clone()));

    // socketioxide calls this synchronously, in the order events arrive; enqueueing
    // here (not in a spawned future) keeps one socket's events in order.
    socket.on_fallback(
        move |s: SocketRef,
              Event(event): Event,
              ack: AckSender,
              TryData(data): TryData<Value>|
              -> Ready<()> {
            let data = data.unwrap_or(Value::Null);
            if let Err(mpsc::error::TrySendError::Full(inbound)) =
                queue.try_send(Box::new(Inbound { event, data, ack }))
            {
                let refusal = Exception {
                    event: inbound.event,
                    message: "too many requests in flight".to_owned(),
                };
                reply_failure(&s, inbound.ack, &refusal);
            }
            ready(())
        },
    );
    socket.on_disconnect(
        move |State(realtime): State<Realtime>, _reason: DisconnectReason| {
            stop.cancel();
            realtime.hub.unregister(conn);
            ready(())
        },
    );
}

/// Everything happens in [`attach`]; the namespace needs a handler all the same.
fn on_connect() -> Ready<()> {
    ready(())
}

/// Handles one socket's events in arrival order (see [`events::serve`]) until it is
/// disconnected or cut off.
async fn work(
    session: Session,
    socket: SocketRef,
    mut inbound: mpsc::Receiver<Box<Inbound>>,
    stop: CancellationToken,
) {
    let events = futures_util::stream::poll_fn(move |cx| inbound.poll_recv(cx))
        .map(|inbound| {
            let Inbound { event, data, ack } = *inbound;
            Ok(ClientEvent {
                event,
                data,
                reply_to: ack,
            })
        })
        .take_until(stop.cancelled_owned());
    events::serve(&session, events, |answer, ack: AckSender| match answer {
        Ok(success) => {
            if let Some(event) = success.event {
                emit_or_cut(&socket, event, &*success.payload);
            }
            if ack.send(&*success.payload).is_err() {
                cut_off(&socket);
            }
        }
        Err(exception) => reply_failure(&socket, ack, &exception),
    })
    .await;
}

fn reply_failure(socket: &SocketRef, ack: AckSender, exception: &Exception) {
    emit_or_cut(socket, "exception", &exception.payload());
    if ack.send(&exception.ack()).is_err() {
        cut_off(socket);
    }
}

fn emit_or_cut<T: serde::Serialize + ?Sized>(socket: &SocketRef, event: &str, data: &T) {
    if let Err(SendError::Socket(SocketError::InternalChannelFull)) = socket.emit(event, data) {
        cut_off(socket);
    }
}

fn cut_off(socket: &SocketRef) {
    tracing::warn!(sid = %socket.id, "disconnecting a Socket.IO client whose outgoing queue is full");
    let _ = socket.clone().disconnect();
}

/// A Socket.IO socket in the hub. Its outgoing queue is socketioxide's, bounded by
/// `max_buffer_size`.
struct SocketIoConnection(SocketRef);

impl Connection for SocketIoConnection {
    fn deliver(&self, frame: &Arc<Frame>) -> Result<(), Undeliverable> {
        match self.0.emit(frame.event(), frame.payload()) {
            Ok(()) => Ok(()),
            Err(SendError::Socket(SocketError::InternalChannelFull)) => Err(Undeliverable::Full),
            Err(SendError::Socket(SocketError::Closed)) => Err(Undeliverable::Closed),
            // A serialisation failure of an already-serialised payload: not the socket's fault.
            Err(err) => {
                tracing::error!(%err, "cannot frame a payload for Socket.IO");
                Ok(())
            }
        }
    }

    fn close(&self) {
        let _ = self.0.clone().disconnect();
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

        let detached = detach_request_head(request);
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
    fn other_requests_pass_untouched() {
        let line = "/chats?limit=5";
        let buffer = Bytes::from(format!("{line} Bearer abc"));
        let passed = detach_request_head(parsed_from(&buffer, line.len()));
        assert!(points_into(&buffer, passed.uri().path().as_bytes()));
        assert!(points_into(
            &buffer,
            passed.headers()[AUTHORIZATION].as_bytes()
        ));
    }
}
