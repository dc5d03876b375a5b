//! The Socket.IO endpoint (protocol v5, `socket.io-client` 4.x) on socketioxide. The
//! protocol is socketioxide's; the rooms are ours ([`Hub`]), shared with `/ws`, so that
//! a full socket is known by name and cut off rather than silently skipped.

use std::future::{Ready, ready};
use std::sync::Arc;

use axum::http::{HeaderMap, header};
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
use crate::{INBOUND_QUEUE, OUTBOUND_QUEUE, Realtime, token_from_query};

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
        .with_state(realtime)
        .build_layer();
    io.ns("/", on_connect.with(authenticate));
    (layer, io)
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
        Err(app::AppError::Internal(source)) => {
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
    let (queue, inbound) = mpsc::channel::<Inbound>(INBOUND_QUEUE);
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
                queue.try_send(Inbound { event, data, ack })
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
    mut inbound: mpsc::Receiver<Inbound>,
    stop: CancellationToken,
) {
    let events = futures_util::stream::poll_fn(move |cx| inbound.poll_recv(cx))
        .map(|Inbound { event, data, ack }| {
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
