//! Real-time clients for the Rust tests: one interface over both socket kinds — the
//! plain WebSocket protocol (`/ws`) and Socket.IO spoken on its wire format (engine.io
//! v4 / socket.io v5 over a WebSocket: `0{…}` open, `40{auth}` connect, `42[name,data]`
//! events, `42<id>[…]` with an ack that returns as `43<id>[data]`, `2`/`3` ping/pong).
//! The wire compatibility of Socket.IO itself is shown by the reference client suite
//! (`realtime::the_reference_socket_io_client_suite_passes`); this is for tests that
//! need Rust around the sockets (several server processes, a broker restarted…).

use std::collections::VecDeque;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::helpers::TestServer;

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// How long something that must arrive may take.
pub const ARRIVAL: Duration = Duration::from_secs(10);

/// Which protocol a [`Socket`] speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// The plain WebSocket protocol on `/ws`.
    Ws,
    /// Socket.IO on `/socket.io/`.
    SocketIo,
}

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
        let url = match kind {
            Kind::Ws => format!("ws://{address}/ws?token={token}"),
            Kind::SocketIo => format!("ws://{address}/socket.io/?EIO=4&transport=websocket"),
        };
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
            assert!(open.starts_with('0'), "engine.io open packet, got {open}");
            socket
                .write_text(format!("40{}", json!({ "token": token })))
                .await;
            let connected = loop {
                let packet = socket.read_text().await;
                if packet == "2" {
                    socket.write_text("3".to_owned()).await;
                } else {
                    break packet;
                }
            };
            assert!(
                connected.starts_with("40{"),
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
        let frame = match self.kind {
            Kind::Ws => json!({ "event": event, "data": data, "ack": id }).to_string(),
            Kind::SocketIo => format!("42{id}{}", json!([event, data])),
        };
        self.write_text(frame).await;
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

    /// Asserts that no event arrives within `window`.
    pub async fn expect_silence(&mut self, window: Duration) {
        if let Some((name, data)) = self.inbox.pop_front() {
            panic!("expected silence, got {name} {data}");
        }
        let quiet = tokio::time::timeout(window, async {
            loop {
                if let Incoming::Event(name, data) = self.read().await {
                    return (name, data);
                }
            }
        })
        .await;
        if let Ok((name, data)) = quiet {
            panic!("expected silence, got {name} {data}");
        }
    }

    /// Sends `event` with `data` as one message of exactly `len` bytes on the wire,
    /// padding `data` with a `pad` field; returns the ack's id. (The server refuses
    /// unknown fields, so a padded event that is read gets an error ack.)
    pub async fn emit_padded(&mut self, event: &str, mut data: Value, len: usize) -> u64 {
        let id = self.next_ack;
        self.next_ack += 1;
        data["pad"] = json!("");
        let frame = |data: &Value| match self.kind {
            Kind::Ws => json!({ "event": event, "data": data, "ack": id }).to_string(),
            Kind::SocketIo => format!("42{id}{}", json!([event, data])),
        };
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
                Some(Ok(Message::Text(text))) if self.kind == Kind::SocketIo && text == "2" => {
                    self.write_text("3".to_owned()).await;
                }
                // The server's disconnect of the namespace: closed.
                Some(Ok(Message::Text(text))) if self.kind == Kind::SocketIo && text == "41" => {
                    return None;
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
        match self.kind {
            Kind::Ws => {
                let frame: Value = serde_json::from_str(&text).expect("JSON frames on /ws");
                let event = frame["event"].as_str().unwrap_or_default().to_owned();
                if event == "ack" {
                    Incoming::Ack(frame["ack"].as_u64().unwrap_or(0), frame["data"].clone())
                } else {
                    Incoming::Event(event, frame["data"].clone())
                }
            }
            Kind::SocketIo => self.decode_socket_io(&text).await,
        }
    }

    async fn decode_socket_io(&mut self, text: &str) -> Incoming {
        if text == "2" {
            self.write_text("3".to_owned()).await;
            return Incoming::Other;
        }
        if let Some(rest) = text.strip_prefix("42") {
            let array: Value = serde_json::from_str(rest).expect("a JSON event array");
            let name = array[0].as_str().unwrap_or_default().to_owned();
            return Incoming::Event(name, array[1].clone());
        }
        if let Some(rest) = text.strip_prefix("43") {
            let digits = rest.find('[').unwrap_or(rest.len());
            let id = rest[..digits].parse().expect("an ack id");
            let array: Value = serde_json::from_str(&rest[digits..]).expect("a JSON ack array");
            return Incoming::Ack(id, array[0].clone());
        }
        Incoming::Other
    }
}

/// A socket of `kind` on `node` for the holder of `token`, in `chat`'s room.
pub async fn in_room(node: &TestServer, kind: Kind, token: &str, chat: &str) -> Socket {
    let mut socket = Socket::connect(node, kind, token).await;
    socket.join(&[chat]).await;
    socket
}
