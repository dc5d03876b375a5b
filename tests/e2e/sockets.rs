//! Real-time clients for the Rust tests: one interface over both socket kinds — the
//! plain WebSocket protocol (`/ws`) and Socket.IO spoken on its wire format, whose
//! frames `test_support::wire` splits (the benchmark's client shares it).
//! The wire compatibility of Socket.IO itself is shown by the reference client suite
//! (`realtime::the_reference_socket_io_client_suite_passes`); this is for tests that
//! need Rust around the sockets (several server processes, a broker restarted…).
//!
//! It is not the benchmark's client (`bench/src/sio.rs`): a test wants each frame
//! decoded into values, kept in order while it waits for something else, and a panic
//! that says what was expected; a load generator wants thousands of connections on
//! their own tasks, frames handed on undecoded, and errors counted, not raised.

use std::collections::VecDeque;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use test_support::wire::{self, Packet};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::helpers::TestServer;

/// Which protocol a [`Socket`] speaks: `Kind::Ws` (`/ws`) or `Kind::SocketIo`.
pub use test_support::wire::Protocol as Kind;

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// How long something that must arrive may take.
pub const ARRIVAL: Duration = Duration::from_secs(10);

/// A connected, authenticated socket of either kind. Events that arrive while the test
/// waits for an ack are kept, in order, for [`Socket::next_event`].
pub struct Socket {
    kind: Kind,
    ws: Ws,
    next_ack: u64,
    inbox: VecDeque<(String, Value)>,
}

/// One frame from the server, decoded.
enum Incoming {
    Event(String, Value),
    Ack(u64, Value),
    /// Handshake packets, pings (already answered) and the like.
    Other,
}

impl Socket {
    /// Connects to `server` as the holder of `token`.
    pub async fn connect(server: &TestServer, kind: Kind, token: &str) -> Self {
        let address = server.address.trim_start_matches("http://");
        let url = wire::url(address, kind, token);
        let (ws, _) = tokio::time::timeout(ARRIVAL, tokio_tungstenite::connect_async(url))
            .await
            .expect("the WebSocket upgrade within 10 s")
            .expect("upgrading to a WebSocket");
        let mut socket = Self {
            kind,
            ws,
            next_ack: 1,
            inbox: VecDeque::new(),
        };
        if kind == Kind::SocketIo {
            let open = socket.read_text().await;
            assert_eq!(
                wire::parse(kind, &open),
                Packet::Open,
                "engine.io open packet, got {open}"
            );
            socket.write_text(wire::connect_packet(token)).await;
            let connected = loop {
                let packet = socket.read_text().await;
                if wire::parse(kind, &packet) == Packet::Ping {
                    socket.write_text(wire::PONG.to_owned()).await;
                } else {
                    break packet;
                }
            };
            assert_eq!(
                wire::parse(kind, &connected),
                Packet::Connected,
                "the namespace connect to be accepted, got {connected}"
            );
        }
        socket
    }

    /// Sends `event` with `data` and returns the ack's data.
    pub async fn request(&mut self, event: &str, data: Value) -> Value {
        let id = self.emit(event, data).await;
        let (acked, data) = self.next_ack().await;
        assert_eq!(acked, id, "the ack of another request");
        data
    }

    /// Sends `event` with `data`, asking for an ack, without waiting for it; returns the
    /// ack's id.
    pub async fn emit(&mut self, event: &str, data: Value) -> u64 {
        let id = self.next_ack;
        self.next_ack += 1;
        self.write_text(wire::event_frame(self.kind, event, &data, id))
            .await;
        id
    }

    /// The next ack (its id and data); events that arrive before it are kept for
    /// [`Socket::next_event`].
    pub async fn next_ack(&mut self) -> (u64, Value) {
        loop {
            match self.read().await {
                Incoming::Ack(id, data) => return (id, data),
                Incoming::Event(name, data) => self.inbox.push_back((name, data)),
                Incoming::Other => {}
            }
        }
    }

    /// Joins the rooms of `chats`, asserting that all were joined (the ack and the
    /// `chats:connect:success` event).
    pub async fn join(&mut self, chats: &[&str]) {
        let expected = json!({ "chatIds": chats });
        let joined = self.request("chats:connect", expected.clone()).await;
        assert_eq!(joined, expected, "joining {chats:?}");
        assert_eq!(self.expect_event("chats:connect:success").await, expected);
    }

    /// Sends a message to `chat` and returns the stored message (the ack).
    pub async fn send_message(&mut self, chat: &str, content: &str) -> Value {
        let sent = self
            .request(
                "messages:create",
                json!({ "chatId": chat, "content": content }),
            )
            .await;
        assert!(sent["id"].is_string(), "a stored message, got {sent}");
        sent
    }

    /// The next event the server pushed (not an ack), within [`ARRIVAL`].
    pub async fn next_event(&mut self) -> (String, Value) {
        if let Some(event) = self.inbox.pop_front() {
            return event;
        }
        loop {
            if let Incoming::Event(name, data) = self.read().await {
                return (name, data);
            }
        }
    }

    /// The next event, which must be `name`; returns its data.
    pub async fn expect_event(&mut self, name: &str) -> Value {
        let (got, data) = self.next_event().await;
        assert_eq!(got, name, "expected {name}, got {got} {data}");
        data
    }

    /// Sends `event` with `data` as one message of exactly `len` bytes on the wire,
    /// padding `data` with a `pad` field; returns the ack's id. (The server refuses
    /// unknown fields, so a padded event that is read gets an error ack.)
    pub async fn emit_padded(&mut self, event: &str, mut data: Value, len: usize) -> u64 {
        let id = self.next_ack;
        self.next_ack += 1;
        data["pad"] = json!("");
        let frame = |data: &Value| wire::event_frame(self.kind, event, data, id);
        let bare = frame(&data).len();
        assert!(bare <= len, "{event} alone takes {bare} bytes");
        data["pad"] = json!("x".repeat(len - bare));
        let text = frame(&data);
        assert_eq!(text.len(), len);
        self.write_text(text).await;
        id
    }

    /// Waits until the server closes the socket (a close frame, or the connection
    /// ends), answering pings meanwhile; fails on any event or ack first. Returns the
    /// close frame's code and reason, if the server sent one.
    pub async fn expect_closed(&mut self) -> Option<(u16, String)> {
        loop {
            let message = tokio::time::timeout(ARRIVAL, self.ws.next())
                .await
                .expect("the server to close the socket within 10 s");
            match message {
                None | Some(Err(_) | Ok(Message::Close(None))) => return None,
                Some(Ok(Message::Close(Some(frame)))) => {
                    return Some((frame.code.into(), frame.reason.as_str().to_owned()));
                }
                Some(Ok(Message::Text(text))) if self.kind == Kind::SocketIo => {
                    match wire::parse(self.kind, &text) {
                        Packet::Ping => self.write_text(wire::PONG.to_owned()).await,
                        // The server's disconnect of the namespace: closed.
                        Packet::Closed => return None,
                        _ => panic!("expected the socket closed, got {text}"),
                    }
                }
                Some(Ok(Message::Text(text))) => panic!("expected the socket closed, got {text}"),
                Some(Ok(_)) => {}
            }
        }
    }

    async fn write_text(&mut self, text: String) {
        self.ws
            .send(Message::text(text))
            .await
            .expect("sending a frame");
    }

    async fn read_text(&mut self) -> String {
        loop {
            let message = tokio::time::timeout(ARRIVAL, self.ws.next())
                .await
                .expect("a frame within 10 s")
                .expect("the socket to stay open")
                .expect("a readable frame");
            match message {
                Message::Text(text) => return text.as_str().to_owned(),
                Message::Close(frame) => panic!("the server closed the socket: {frame:?}"),
                _ => {}
            }
        }
    }

    async fn read(&mut self) -> Incoming {
        let text = self.read_text().await;
        match wire::parse(self.kind, &text) {
            Packet::Event(event) => {
                let (name, data) = wire::event_of(self.kind, event)
                    .unwrap_or_else(|| panic!("a JSON event, got {text}"));
                Incoming::Event(name, data)
            }
            Packet::Ack(id, args) => {
                let data = wire::ack_of(self.kind, args)
                    .unwrap_or_else(|| panic!("a JSON ack, got {text}"));
                Incoming::Ack(id, data)
            }
            Packet::Ping => {
                self.write_text(wire::PONG.to_owned()).await;
                Incoming::Other
            }
            Packet::Malformed if self.kind == Kind::Ws => panic!("JSON frames on /ws, got {text}"),
            _ => Incoming::Other,
        }
    }
}

/// A socket of `kind` on `node` for the holder of `token`, in `chat`'s room.
pub async fn in_room(node: &TestServer, kind: Kind, token: &str, chat: &str) -> Socket {
    let mut socket = Socket::connect(node, kind, token).await;
    socket.join(&[chat]).await;
    socket
}
