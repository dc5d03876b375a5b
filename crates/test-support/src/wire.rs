//! The frames of the server's two socket protocols, as a client sees them: Socket.IO
//! (engine.io v4 / socket.io v5) spoken over a WebSocket, and the plain `/ws` protocol
//! (JSON frames `{"event", "data", "ack"}`).
//!
//! The Socket.IO exchange: connect `ws://…/socket.io/?EIO=4&transport=websocket`, read
//! the engine.io open packet `0{…}`, send `40{"token":…}` to connect the default
//! namespace, expect `40{"sid":…}` (or `44{…}`, refused). Afterwards the server pings
//! (`2`) and is answered (`3`); events are `42["name",payload]`, with an ack id
//! `42<id>["name",payload]`, and acks come back as `43<id>[payload]`. `/ws` takes the
//! token in its URL and needs no handshake.
//!
//! [`parse`] only splits a frame (no copy, no JSON parse on Socket.IO), so that the
//! benchmark's load clients can afford it; [`event_of`] and [`ack_of`] decode the JSON
//! for clients that want values.

use serde_json::{Value, json};

/// Which of the server's real-time protocols a connection speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// Socket.IO on `/socket.io/`.
    SocketIo,
    /// The plain WebSocket protocol on `/ws`.
    Ws,
}

/// The engine.io pong, the answer to [`Packet::Ping`].
pub const PONG: &str = "3";

/// The URL a client of `protocol` opens on the server at `address` (`host:port`) as the
/// holder of `token` (Socket.IO sends it later, in [`connect_packet`]).
pub fn url(address: &str, protocol: Protocol, token: &str) -> String {
    match protocol {
        Protocol::SocketIo => format!("ws://{address}/socket.io/?EIO=4&transport=websocket"),
        Protocol::Ws => format!("ws://{address}/ws?token={token}"),
    }
}

/// The Socket.IO packet that connects the default namespace as the holder of `token`.
pub fn connect_packet(token: &str) -> String {
    format!("40{}", json!({ "token": token }))
}

/// The frame that sends `event` with `data` and asks for ack `ack`.
pub fn event_frame(protocol: Protocol, event: &str, data: &Value, ack: u64) -> String {
    match protocol {
        Protocol::SocketIo => format!("42{ack}{}", json!([event, data])),
        Protocol::Ws => json!({ "event": event, "data": data, "ack": ack }).to_string(),
    }
}

/// One frame of the server, split but not decoded.
#[derive(Debug, PartialEq, Eq)]
pub enum Packet<'a> {
    /// The engine.io open packet (`0{…}`).
    Open,
    /// engine.io ping: answer with [`PONG`].
    Ping,
    /// The namespace is connected (`40{…}`).
    Connected,
    /// The connection was refused (`44{…}`), with the server's payload.
    Refused(&'a str),
    /// An event; the text is its `["name",payload]` array (on `/ws`, the whole frame).
    Event(&'a str),
    /// The answer to an ack id; the text is its argument array (on `/ws`, the whole
    /// frame).
    Ack(u64, &'a str),
    /// The server closed the namespace (`41`) or the engine.io session (`1`).
    Closed,
    /// Anything else (pong, noop, …).
    Other,
    /// Not a packet this protocol has.
    Malformed,
}

/// Splits one text frame of `protocol` into a [`Packet`].
pub fn parse(protocol: Protocol, text: &str) -> Packet<'_> {
    match protocol {
        Protocol::SocketIo => parse_socket_io(text),
        Protocol::Ws => parse_ws(text),
    }
}

/// A `/ws` frame: an ack `{"event":"ack","ack":N,…}`, else an event.
fn parse_ws(text: &str) -> Packet<'_> {
    let Ok(frame) = serde_json::from_str::<Value>(text) else {
        return Packet::Malformed;
    };
    match (frame["event"].as_str(), frame["ack"].as_u64()) {
        (Some("ack"), Some(id)) => Packet::Ack(id, text),
        (Some(_), _) => Packet::Event(text),
        (None, _) => Packet::Malformed,
    }
}

/// Splits one engine.io / Socket.IO text frame.
fn parse_socket_io(text: &str) -> Packet<'_> {
    match text.as_bytes().first() {
        Some(b'0') => Packet::Open,
        Some(b'2') => Packet::Ping,
        Some(b'1') => Packet::Closed,
        Some(b'3' | b'6') => Packet::Other,
        Some(b'4') => {
            let rest = &text[1..];
            match rest.as_bytes().first() {
                Some(b'0') => Packet::Connected,
                Some(b'1') => Packet::Closed,
                Some(b'2') => {
                    let body = &rest[1..];
                    match body.find('[') {
                        Some(start) if body[..start].bytes().all(|b| b.is_ascii_digit()) => {
                            Packet::Event(&body[start..])
                        }
                        _ => Packet::Malformed,
                    }
                }
                Some(b'3') => {
                    let body = &rest[1..];
                    let Some(start) = body.find('[') else {
                        return Packet::Malformed;
                    };
                    match body[..start].parse() {
                        Ok(id) => Packet::Ack(id, &body[start..]),
                        Err(_) => Packet::Malformed,
                    }
                }
                Some(b'4') => Packet::Refused(&rest[1..]),
                _ => Packet::Malformed,
            }
        }
        _ => Packet::Malformed,
    }
}

/// The name and data of a [`Packet::Event`]'s text; `None` when it is not JSON of that
/// shape.
pub fn event_of(protocol: Protocol, text: &str) -> Option<(String, Value)> {
    let mut value: Value = serde_json::from_str(text).ok()?;
    match protocol {
        Protocol::SocketIo => {
            let name = value.get(0)?.as_str()?.to_owned();
            Some((
                name,
                value.get_mut(1).map(Value::take).unwrap_or(Value::Null),
            ))
        }
        Protocol::Ws => {
            let name = value.get("event")?.as_str()?.to_owned();
            Some((
                name,
                value
                    .get_mut("data")
                    .map(Value::take)
                    .unwrap_or(Value::Null),
            ))
        }
    }
}

/// The data of a [`Packet::Ack`]'s text; `None` when it is not JSON of that shape.
pub fn ack_of(protocol: Protocol, text: &str) -> Option<Value> {
    let mut value: Value = serde_json::from_str(text).ok()?;
    let data = match protocol {
        Protocol::SocketIo => value.get_mut(0),
        Protocol::Ws => value.get_mut("data"),
    };
    Some(data.map(Value::take).unwrap_or(Value::Null))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn socket_io_packets_are_recognised() {
        let parse = parse_socket_io;
        assert_eq!(parse(r#"0{"sid":"x"}"#), Packet::Open);
        assert_eq!(parse("2"), Packet::Ping);
        assert_eq!(parse("3"), Packet::Other);
        assert_eq!(parse(r#"40{"sid":"x"}"#), Packet::Connected);
        assert_eq!(
            parse(r#"44{"message":"Unauthorized"}"#),
            Packet::Refused(r#"{"message":"Unauthorized"}"#)
        );
        assert_eq!(
            parse(r#"42["messages:new",{"id":"1"}]"#),
            Packet::Event(r#"["messages:new",{"id":"1"}]"#)
        );
        assert_eq!(
            parse(r#"4312[{"id":"1"}]"#),
            Packet::Ack(12, r#"[{"id":"1"}]"#)
        );
        assert_eq!(parse("41"), Packet::Closed);
        assert_eq!(parse("43x[]"), Packet::Malformed);
        assert_eq!(parse(""), Packet::Malformed);
        assert_eq!(parse("4"), Packet::Malformed);
    }

    #[test]
    fn ws_frames_are_recognised() {
        let ack = r#"{"event":"ack","ack":3,"data":{"chatIds":["x"]}}"#;
        assert_eq!(parse(Protocol::Ws, ack), Packet::Ack(3, ack));
        let event = r#"{"event":"messages:new","data":{"id":"1"}}"#;
        assert_eq!(parse(Protocol::Ws, event), Packet::Event(event));
        assert_eq!(parse(Protocol::Ws, r#"{"data":1}"#), Packet::Malformed);
        assert_eq!(parse(Protocol::Ws, "2"), Packet::Malformed);
        assert_eq!(parse(Protocol::Ws, "not json"), Packet::Malformed);
    }

    #[test]
    fn events_and_acks_decode_the_same_on_both_protocols() {
        let data = json!({"chatIds": ["x"]});
        for (protocol, event, ack) in [
            (
                Protocol::SocketIo,
                r#"["chats:connect:success",{"chatIds":["x"]}]"#,
                r#"[{"chatIds":["x"]}]"#,
            ),
            (
                Protocol::Ws,
                r#"{"event":"chats:connect:success","data":{"chatIds":["x"]}}"#,
                r#"{"event":"ack","ack":1,"data":{"chatIds":["x"]}}"#,
            ),
        ] {
            assert_eq!(
                event_of(protocol, event),
                Some(("chats:connect:success".to_owned(), data.clone()))
            );
            assert_eq!(ack_of(protocol, ack), Some(data.clone()));
        }
    }

    #[test]
    fn an_event_frame_is_what_the_server_parses() {
        let data = json!({"chatId": "c"});
        assert_eq!(
            event_frame(Protocol::SocketIo, "messages:create", &data, 7),
            r#"427["messages:create",{"chatId":"c"}]"#
        );
        let ws: Value =
            serde_json::from_str(&event_frame(Protocol::Ws, "messages:create", &data, 7)).unwrap();
        assert_eq!(
            ws,
            json!({"event": "messages:create", "data": data, "ack": 7})
        );
    }
}
