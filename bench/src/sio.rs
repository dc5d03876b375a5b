//! The benchmark's socket client: a minimal one over a raw WebSocket, just what a load
//! generator needs, so one client costs little more than its TCP connection. It speaks
//! Socket.IO (engine.io v4, socket.io v5) and the plain `/ws` protocol, whose frames
//! `test_support::wire` builds and splits (the exchange is described there).
//!
//! It is not the end-to-end suite's client (`tests/e2e/sockets.rs`), though both share
//! that wire module: a load generator wants thousands of connections on tasks of their
//! own, frames handed to a [`Handler`] undecoded, writes batched, and failures counted
//! in [`Liveness`] rather than raised; a test wants each frame decoded and a panic
//! that says what it expected.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use futures_util::{SinkExt, StreamExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

use test_support::wire::{self, Packet, parse};

/// How long one step of the handshake (or of a join) may take.
const STEP_TIMEOUT: Duration = Duration::from_secs(30);

/// Packets read while waiting for one answer before giving up on it (pings and other
/// events may come first; a server that never answers must not hold us for ever).
const MAX_PACKETS_PER_ANSWER: usize = 10_000;

/// Outgoing packets written before one flush.
const WRITE_BATCH: usize = 64;

/// Which of the server's real-time protocols a connection speaks.
pub use test_support::wire::Protocol;

/// How to open one connection.
pub struct Connect<'a> {
    /// The protocol to speak.
    pub protocol: Protocol,
    /// The server's port on 127.0.0.1.
    pub port: u16,
    /// The bearer token sent in the handshake's `auth`.
    pub token: &'a str,
    /// The loopback address to connect from (each source address has its own
    /// ephemeral ports), or the kernel's choice.
    pub local: Option<Ipv4Addr>,
    /// The WebSocket read buffer: small for idle connections, larger for busy ones.
    pub read_buffer: usize,
}

/// A connected, authenticated socket before its I/O task starts.
pub struct Socket {
    protocol: Protocol,
    ws: WebSocketStream<TcpStream>,
    next_ack: u64,
}

impl Socket {
    /// Opens a WebSocket with the token: for Socket.IO, then the engine.io and
    /// Socket.IO handshakes; `/ws` takes the token in its URL.
    pub async fn connect(options: &Connect<'_>) -> Result<Self> {
        let server = SocketAddr::from((Ipv4Addr::LOCALHOST, options.port));
        let tcp = TcpSocket::new_v4().context("creating a socket")?;
        if let Some(local) = options.local {
            tcp.bind(SocketAddr::from((local, 0)))
                .with_context(|| format!("binding to {local}"))?;
        }
        let stream = tokio::time::timeout(STEP_TIMEOUT, tcp.connect(server))
            .await
            .context("TCP connect timed out")?
            .context("TCP connect")?;
        stream.set_nodelay(true)?;
        let url = wire::url(
            &format!("127.0.0.1:{}", options.port),
            options.protocol,
            options.token,
        );
        let config = WebSocketConfig::default().read_buffer_size(options.read_buffer);
        let (ws, _) = tokio::time::timeout(
            STEP_TIMEOUT,
            tokio_tungstenite::client_async_with_config(url, stream, Some(config)),
        )
        .await
        .context("WebSocket upgrade timed out")?
        .context("WebSocket upgrade")?;
        let mut socket = Self {
            protocol: options.protocol,
            ws,
            next_ack: 1,
        };
        if options.protocol == Protocol::Ws {
            return Ok(socket);
        }

        let open = socket.next_text().await?;
        if parse(Protocol::SocketIo, &open) != Packet::Open {
            bail!("expected the engine.io open packet, got {open:?}");
        }
        socket.send(wire::connect_packet(options.token)).await?;
        for _ in 0..MAX_PACKETS_PER_ANSWER {
            let text = socket.next_text().await?;
            match parse(Protocol::SocketIo, &text) {
                Packet::Connected => return Ok(socket),
                Packet::Refused(why) => bail!("the server refused the connection: {why}"),
                Packet::Closed => bail!("the server closed the connection in the handshake"),
                _ => {}
            }
        }
        bail!("no answer to the namespace connect")
    }

    /// Joins chat rooms (`chats:connect` with an ack) and waits for the ack.
    pub async fn join(&mut self, chat_ids: &[&str]) -> Result<()> {
        let id = self.next_ack;
        self.next_ack += 1;
        let data = serde_json::json!({ "chatIds": chat_ids });
        self.send(wire::event_frame(self.protocol, "chats:connect", &data, id))
            .await?;
        for _ in 0..MAX_PACKETS_PER_ANSWER {
            let text = self.next_text().await?;
            match parse(self.protocol, &text) {
                Packet::Ack(got, payload) if got == id => {
                    if payload.contains("\"status\":\"error\"") {
                        bail!("chats:connect failed: {payload}");
                    }
                    return Ok(());
                }
                Packet::Closed => bail!("the server closed the connection while joining"),
                _ => {}
            }
        }
        bail!("no ack to chats:connect")
    }

    /// The first ack id the I/O task's user may use (the handshake used smaller ones).
    pub fn next_ack_id(&self) -> u64 {
        self.next_ack
    }

    /// Sends one text frame.
    async fn send(&mut self, text: String) -> Result<()> {
        tokio::time::timeout(STEP_TIMEOUT, self.ws.send(Message::text(text)))
            .await
            .context("sending timed out")?
            .context("sending")
    }

    /// The next text frame, answering pings on the way.
    async fn next_text(&mut self) -> Result<String> {
        for _ in 0..MAX_PACKETS_PER_ANSWER {
            let frame = tokio::time::timeout(STEP_TIMEOUT, self.ws.next())
                .await
                .context("the server did not answer in time")?;
            match frame {
                Some(Ok(Message::Text(text))) => {
                    if self.protocol == Protocol::SocketIo && text.as_str() == "2" {
                        self.send(wire::PONG.to_owned()).await?;
                        continue;
                    }
                    return Ok(text.as_str().to_owned());
                }
                Some(Ok(Message::Close(_))) | None => bail!("the server closed the connection"),
                Some(Ok(_)) => {}
                Some(Err(err)) => return Err(err).context("reading from the server"),
            }
        }
        bail!("only control frames from the server")
    }

    /// Hands the socket to a task of its own: it answers pings, gives events and acks
    /// to `handler`, and writes what arrives on `outgoing` (if any) in batches.
    pub fn spawn<H: Handler>(
        self,
        handler: H,
        outgoing: Option<mpsc::Receiver<String>>,
        liveness: Arc<Liveness>,
    ) -> JoinHandle<()> {
        tokio::spawn(run(
            self.protocol,
            self.ws,
            handler,
            outgoing,
            None,
            liveness,
        ))
    }

    /// Like [`Socket::spawn`] with nothing to send, but reading at most `per_second`
    /// frames a second: a client on a slow link.
    pub fn spawn_paced<H: Handler>(
        self,
        handler: H,
        per_second: f64,
        liveness: Arc<Liveness>,
    ) -> JoinHandle<()> {
        tokio::spawn(run(
            self.protocol,
            self.ws,
            handler,
            None,
            Some(per_second),
            liveness,
        ))
    }

    /// Stops reading the socket altogether (a client that hangs), until
    /// [`Stalled::closed_by_server`].
    pub fn stall(self) -> Stalled {
        Stalled { ws: self.ws }
    }
}

/// A connection whose client reads nothing.
pub struct Stalled {
    ws: WebSocketStream<TcpStream>,
}

impl Stalled {
    /// Reads again, through whatever was already sent, and says whether the server
    /// closed the connection (within `within`, or when the data stops coming).
    pub async fn closed_by_server(mut self, within: Duration) -> bool {
        loop {
            match tokio::time::timeout(within, self.ws.next()).await {
                Err(_) => return false,
                Ok(None | Some(Err(_) | Ok(Message::Close(_)))) => return true,
                Ok(Some(Ok(_))) => {}
            }
        }
    }
}

/// What a connection does with the server's events and acks. Called on the
/// connection's task, one packet at a time.
pub trait Handler: Send + 'static {
    /// An event; `array` is its `["name",payload]` text (on `/ws`, the whole frame).
    fn event(&mut self, array: &str) {
        let _ = array;
    }

    /// The answer to ack id `id`; `args` is its argument array (on `/ws`, the whole
    /// frame).
    fn ack(&mut self, id: u64, args: &str) {
        let _ = (id, args);
    }
}

/// A connection that only keeps itself alive.
pub struct Idle;

impl Handler for Idle {}

/// Shared by a group of connections: whether the benchmark is closing them, and how
/// many the server closed (or broke) before that.
#[derive(Default)]
pub struct Liveness {
    /// Set before the benchmark closes its connections on purpose.
    pub stopping: AtomicBool,
    /// Connections that ended while not stopping.
    pub dropped: AtomicU64,
    /// Frames that were not Socket.IO packets.
    pub malformed: AtomicU64,
    /// Why the first dropped connection ended.
    first_drop: Mutex<Option<String>>,
}

impl Liveness {
    /// Why the first dropped connection ended, if one did.
    pub fn first_drop(&self) -> Option<String> {
        self.first_drop
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn dropped(&self, why: String) {
        if self.stopping.load(Ordering::Relaxed) {
            return;
        }
        self.dropped.fetch_add(1, Ordering::Relaxed);
        self.first_drop
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get_or_insert(why);
    }
}

/// The connection's task.
async fn run<H: Handler>(
    protocol: Protocol,
    mut ws: WebSocketStream<TcpStream>,
    mut handler: H,
    mut outgoing: Option<mpsc::Receiver<String>>,
    pace: Option<f64>,
    liveness: Arc<Liveness>,
) {
    let started = tokio::time::Instant::now();
    let mut frames = 0_u64;
    let why = loop {
        if let Some(per_second) = pace {
            // The next frame is read no sooner than its turn at this rate.
            frames += 1;
            let turn = started + Duration::from_secs_f64(frames as f64 / per_second);
            tokio::time::sleep_until(turn).await;
        }
        tokio::select! {
            incoming = ws.next() => {
                let text = match incoming {
                    Some(Ok(Message::Text(text))) => text,
                    Some(Ok(Message::Close(frame))) => break format!("closed by the server: {frame:?}"),
                    None => break "the connection ended".to_owned(),
                    Some(Ok(_)) => continue,
                    Some(Err(err)) => break format!("read error: {err}"),
                };
                match parse(protocol, text.as_str()) {
                    Packet::Ping => {
                        if let Err(err) = ws.send(Message::text(wire::PONG)).await {
                            break format!("write error: {err}");
                        }
                    }
                    Packet::Event(array) => handler.event(array),
                    Packet::Ack(id, args) => handler.ack(id, args),
                    Packet::Closed => break "disconnected by the server".to_owned(),
                    Packet::Refused(why) => break format!("refused: {why}"),
                    Packet::Open | Packet::Connected | Packet::Other => {}
                    Packet::Malformed => {
                        liveness.malformed.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
            next = next_outgoing(&mut outgoing) => {
                let Some(first) = next else {
                    outgoing = None;
                    continue;
                };
                if let Err(err) = write_batch(&mut ws, first, outgoing.as_mut()).await {
                    break format!("write error: {err}");
                }
            }
        }
    };
    liveness.dropped(why);
}

/// The next packet to send; never ready when there is no channel.
async fn next_outgoing(outgoing: &mut Option<mpsc::Receiver<String>>) -> Option<String> {
    match outgoing {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

/// Writes `first` and whatever else is already waiting (up to a batch), then flushes.
async fn write_batch(
    ws: &mut WebSocketStream<TcpStream>,
    first: String,
    rx: Option<&mut mpsc::Receiver<String>>,
) -> Result<(), tokio_tungstenite::tungstenite::Error> {
    ws.feed(Message::text(first)).await?;
    if let Some(rx) = rx {
        for _ in 1..WRITE_BATCH {
            match rx.try_recv() {
                Ok(next) => ws.feed(Message::text(next)).await?,
                Err(_) => break,
            }
        }
    }
    ws.flush().await
}
