//! The plain WebSocket endpoint `GET /ws`: JSON text frames `{"event", "data", "ack"?}`,
//! the same events and rooms as Socket.IO.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use adapter_http::ApiError;
use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::extract::{RawQuery, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use futures_util::stream::SplitSink;
use futures_util::{SinkExt, StreamExt};
use serde::Deserialize;
use serde_json::Value;
use serde_json::value::RawValue;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use wire::events::{AckFrame, ToClient};

use domain::ports::VerifiedToken;

use crate::events::{self, ClientEvent, Incoming};
use crate::frame::Frame;
use crate::hub::{CloseReason, Connection, Undeliverable};
use crate::reply::{self, Outbox};
use crate::session::Exception;
use crate::{MAX_INCOMING_MESSAGE, Realtime, WS_READ_BUFFER, handshake};

/// How long a closing socket may take to accept its close frame.
const CLOSE_GRACE: std::time::Duration = std::time::Duration::from_secs(1);

/// How long a slow consumer may take to read what it was already sent and then its
/// close frame, before the connection is dropped without one (the client sees 1006).
const SLOW_CLOSE_GRACE: std::time::Duration = std::time::Duration::from_secs(30);

/// What a text frame costs in the queue beyond its text.
const FRAME_OVERHEAD: u64 = 32;

/// Most frames written to a socket between two flushes.
const WRITE_BATCH: usize = 64;

/// A client frame.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ClientFrame {
    event: String,
    #[serde(default)]
    data: Value,
    #[serde(default)]
    ack: Option<i64>,
}

/// Authenticates (see [`handshake::token`]; a refusal is the REST API's problem
/// response, `401` before any upgrade), then upgrades.
pub(crate) async fn upgrade(
    State(realtime): State<Realtime>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
    upgrade: Result<WebSocketUpgrade, axum::extract::ws::rejection::WebSocketUpgradeRejection>,
) -> Response {
    let token = handshake::token(None, &headers, query.as_deref());
    let verified = match handshake::admit(&realtime.app, token).await {
        Ok(verified) => verified,
        Err(refused) => return ApiError::from(refused).into_response(),
    };
    match upgrade {
        Ok(upgrade) => upgrade
            .max_message_size(MAX_INCOMING_MESSAGE)
            .max_frame_size(MAX_INCOMING_MESSAGE)
            // tungstenite's default is 128 KiB, all of it kept by every idle socket.
            .read_buffer_size(WS_READ_BUFFER)
            .on_upgrade(move |socket| run(socket, realtime, verified)),
        // Not a WebSocket handshake: a problem body, like every refusal.
        Err(rejection) => ApiError::NotWebSocketHandshake {
            status: rejection.status(),
            detail: rejection.body_text(),
        }
        .into_response(),
    }
}

/// A `/ws` socket in the hub: a queue bounded in bytes, drained by the socket's writer.
struct WsConnection {
    outgoing: mpsc::UnboundedSender<Utf8Bytes>,
    /// Bytes in `outgoing`.
    queued: AtomicU64,
    budget: u64,
    stop: CancellationToken,
    /// Why the server closes it; unset when the client or the network did.
    reason: OnceLock<CloseReason>,
}

impl WsConnection {
    fn send(&self, text: Utf8Bytes) -> Result<(), Undeliverable> {
        if self.stop.is_cancelled() {
            return Err(Undeliverable::Closed);
        }
        let size = cost(&text);
        if self.queued.load(Ordering::Acquire) + size > self.budget {
            return Err(Undeliverable::OverBudget);
        }
        self.queued.fetch_add(size, Ordering::AcqRel);
        self.outgoing.send(text).map_err(|_| Undeliverable::Closed)
    }

    fn taken(&self, text: &Utf8Bytes) {
        self.queued.fetch_sub(cost(text), Ordering::AcqRel);
    }
}

fn cost(text: &Utf8Bytes) -> u64 {
    text.len() as u64 + FRAME_OVERHEAD
}

impl Connection for WsConnection {
    fn deliver(&self, frame: &Arc<Frame>) -> Result<(), Undeliverable> {
        self.send(frame.ws_text())
    }

    fn queued_bytes(&self) -> u64 {
        self.queued.load(Ordering::Acquire)
    }

    fn close(&self, why: CloseReason) {
        let _ = self.reason.set(why);
        self.stop.cancel();
    }
}

async fn run(socket: WebSocket, realtime: Realtime, token: VerifiedToken) {
    let _live = crate::metrics::Live::connection(crate::metrics::Protocol::Ws);
    let user = token.user;
    let (mut sink, stream) = socket.split();
    let (outgoing, mut queue) = mpsc::unbounded_channel::<Utf8Bytes>();
    let stop = CancellationToken::new();
    let conn = Arc::new(WsConnection {
        outgoing,
        queued: AtomicU64::new(0),
        budget: realtime.budgets.outgoing,
        stop: stop.clone(),
        reason: OnceLock::new(),
    });
    let id = realtime
        .hub
        .register_until(user, conn.clone(), token.expires_at.unix_timestamp());
    let session = realtime.session(id, user);

    let writer = async {
        loop {
            let text = tokio::select! {
                () = stop.cancelled() => break,
                text = queue.recv() => text,
            };
            let Some(text) = text else { break };
            // Everything queued meanwhile goes out with it, in one write: a busy room
            // costs a socket one system call per wake-up, not one per frame. A client
            // that stopped reading blocks this on a full TCP window; being told to stop
            // must still end it.
            let sent = tokio::select! {
                () = stop.cancelled() => break,
                sent = write_queued(&mut sink, text, &mut queue, &conn) => sent,
            };
            if sent.is_err() {
                break;
            }
        }
        match conn.reason.get() {
            // The server closes it, with the reason in the close frame. What is still
            // queued is dropped: it would only hold the reason back, and a client
            // catches up from history once it reconnects.
            Some(why) => {
                let frame = CloseFrame {
                    code: why.ws_code(),
                    reason: why.text().into(),
                };
                let grace = if *why == CloseReason::Slow {
                    SLOW_CLOSE_GRACE
                } else {
                    CLOSE_GRACE
                };
                let _ = tokio::time::timeout(grace, sink.send(Message::Close(Some(frame)))).await;
            }
            // The client closed (its close frame is answered here) or went away.
            None => {
                let _ = tokio::time::timeout(CLOSE_GRACE, sink.close()).await;
            }
        }
    };
    let reader = async {
        // Frames are read as they are handled (a client that floods us is slowed by
        // TCP rather than queued in memory), up to a few sends in flight.
        let events = stream
            .take_while(|message| {
                std::future::ready(matches!(message, Ok(m) if !matches!(m, Message::Close(_))))
            })
            .filter_map(|message| {
                std::future::ready(match message {
                    Ok(Message::Text(text)) => Some(client_event(text.as_str())),
                    Ok(Message::Binary(_)) => Some(Err((
                        Exception {
                            event: String::new(),
                            message: "frames must be JSON text".to_owned(),
                        },
                        None,
                    ))),
                    _ => None,
                })
            });
        events::serve(&session, events, |answer, ack| {
            reply::answer(&realtime.hub, id, &*conn, answer.as_ref(), ack);
        })
        .await;
    };
    let mut writer = std::pin::pin!(writer);
    tokio::select! {
        () = &mut writer => {},
        () = reader => {
            // The client closed or the connection ended: let the writer answer the
            // close frame before the socket goes.
            stop.cancel();
            writer.await;
        },
    }
    realtime.hub.unregister(id);
}

/// A text frame as a client event, or the exception that answers it.
fn client_event(text: &str) -> Incoming<Option<i64>> {
    match serde_json::from_str::<ClientFrame>(text) {
        Ok(frame) => Ok(ClientEvent {
            event: frame.event,
            data: frame.data,
            reply_to: frame.ack,
        }),
        Err(err) => Err((
            Exception {
                event: String::new(),
                message: format!("invalid frame: {err}"),
            },
            None,
        )),
    }
}

/// Writes `first` and every frame already queued after it, then flushes once.
async fn write_queued(
    sink: &mut SplitSink<WebSocket, Message>,
    first: Utf8Bytes,
    queue: &mut mpsc::UnboundedReceiver<Utf8Bytes>,
    conn: &WsConnection,
) -> Result<(), axum::Error> {
    conn.taken(&first);
    sink.feed(Message::Text(first)).await?;
    for _ in 1..WRITE_BATCH {
        match queue.try_recv() {
            Ok(text) => {
                conn.taken(&text);
                sink.feed(Message::Text(text)).await?;
            }
            Err(_) => break,
        }
    }
    sink.flush().await
}

impl Outbox for WsConnection {
    type AckTo = Option<i64>;

    fn emit(&self, event: ToClient, payload: &RawValue) -> Result<(), Undeliverable> {
        match Frame::new(event, payload) {
            Ok(frame) => self.send(frame.ws_text()),
            Err(err) => {
                tracing::error!(%err, %event, "cannot frame an answer");
                Ok(())
            }
        }
    }

    fn ack(&self, to: Option<i64>, payload: &RawValue) -> Result<(), Undeliverable> {
        let Some(ack) = to else { return Ok(()) };
        match serde_json::to_string(&AckFrame::new(ack, payload)) {
            Ok(text) => self.send(text.into()),
            Err(err) => {
                tracing::error!(%err, "cannot serialise an ack");
                Ok(())
            }
        }
    }
}
