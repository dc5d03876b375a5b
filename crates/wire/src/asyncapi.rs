//! The AsyncAPI 3 document of both socket protocols (Socket.IO at `/socket.io/`, the
//! plain WebSocket at `/ws`): every event in both directions with its payload, the acks
//! and the `/ws` frames. There is no mature Rust generator, so the document is built
//! here from [`EVENTS`], one entry per event, with the resources' schemas taken from
//! the same types that serialise them ([`crate::MessageView`]). A test in `adapter-ws`
//! fails when the server handles or emits an event that [`EVENTS`] lacks, or the other
//! way round.

use serde_json::{Map, Value, json};
use utoipa::PartialSchema;

use crate::MessageView;

/// Who sends an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// The client sends it; the server handles it.
    ClientToServer,
    /// The server sends it.
    ServerToClient,
}

/// One socket event as the document describes it.
#[derive(Debug, Clone, Copy)]
pub struct Event {
    /// Its name on the wire (`messages:create`).
    pub name: &'static str,
    /// Who sends it.
    pub direction: Direction,
    /// What it does, in a sentence or two.
    pub description: &'static str,
    /// Its payload's schema (a name in [`schemas`]).
    pub payload: &'static str,
    /// For a client event: the schema of what its ack receives on success (an ack
    /// receives an [`AckError`](schemas) on failure).
    pub ack: Option<&'static str>,
}

const fn client(
    name: &'static str,
    payload: &'static str,
    ack: &'static str,
    description: &'static str,
) -> Event {
    Event {
        name,
        direction: Direction::ClientToServer,
        description,
        payload,
        ack: Some(ack),
    }
}

const fn server(name: &'static str, payload: &'static str, description: &'static str) -> Event {
    Event {
        name,
        direction: Direction::ServerToClient,
        description,
        payload,
        ack: None,
    }
}

/// Every event of both protocols, except the `/ws` protocol's own `ack` frame (see
/// [`document`]).
pub const EVENTS: &[Event] = &[
    client(
        "chats:connect",
        "ChatIds",
        "ChatIds",
        "Join the rooms of these chats (1–1000; the caller must be a member of every one, \
         else nothing is joined and an `exception` is sent). Answered by \
         `chats:connect:success`.",
    ),
    client(
        "chats:disconnect",
        "ChatIds",
        "ChatIds",
        "Leave the rooms of these chats; leaving a room one is not in is not an error. \
         Answered by `chats:disconnect:success`.",
    ),
    client(
        "messages:create",
        "CreateMessage",
        "Message",
        "Send a message (members only; joining the room is not needed). It is stored \
         before anyone is told; the room hears `messages:new`. A repeated `clientMsgId` \
         from the same sender in the same chat stores nothing new and acks the first \
         message.",
    ),
    client(
        "messages:get",
        "GetMessages",
        "Messages",
        "A page of a chat's history, newest first (members only). Answered by \
         `messages:get:success`.",
    ),
    server(
        "chats:connect:success",
        "ChatIds",
        "The rooms joined by `chats:connect`.",
    ),
    server(
        "chats:disconnect:success",
        "ChatIds",
        "The rooms left by `chats:disconnect`.",
    ),
    server(
        "messages:get:success",
        "Messages",
        "The page asked for by `messages:get`, newest first.",
    ),
    server(
        "messages:new",
        "Message",
        "A message stored in a chat, to every socket in its room (the sender's \
         included), in the order stored.",
    ),
    server(
        "chats:member:added",
        "MembersChanged",
        "Users added to a chat, to its room.",
    ),
    server(
        "chats:member:removed",
        "MembersChanged",
        "Users removed from a chat (or who left), to its room and to the removed users' \
         sockets, which leave the room at once and hear nothing more from it.",
    ),
    server(
        "chats:deleted",
        "ChatRef",
        "The chat is gone, to its room, which is then emptied.",
    ),
    server(
        "exception",
        "Exception",
        "A client event failed, to the caller alone; the socket stays open.",
    ),
];

/// The schemas of the payloads, by name.
pub fn schemas() -> Map<String, Value> {
    let uuid = json!({"type": "string", "format": "uuid"});
    let chat_ids = json!({
        "type": "array", "items": uuid, "minItems": 1, "maxItems": 1000
    });
    let message = serde_json::to_value(MessageView::schema()).unwrap_or(Value::Null);
    let schemas = json!({
        "Message": message,
        "Messages": {"type": "array", "items": {"$ref": "#/components/schemas/Message"}},
        "ChatIds": {
            "type": "object",
            "required": ["chatIds"],
            "additionalProperties": false,
            "properties": {"chatIds": chat_ids}
        },
        "CreateMessage": {
            "type": "object",
            "required": ["chatId", "content"],
            "additionalProperties": false,
            "properties": {
                "chatId": uuid,
                "content": {"type": "string", "minLength": 1, "maxLength": 4096,
                    "description": "1–4096 characters, not blank"},
                "clientMsgId": {"type": "string", "minLength": 1, "maxLength": 64,
                    "description": "The sender's idempotency key"}
            }
        },
        "GetMessages": {
            "type": "object",
            "required": ["chatId"],
            "additionalProperties": false,
            "properties": {
                "chatId": uuid,
                "take": {"type": "integer", "minimum": 1, "maximum": 100, "default": 50},
                "skip": {"type": "integer", "minimum": 0, "default": 0},
                "before": {"type": "string", "format": "uuid",
                    "description": "A message id: only older messages (keyset page)"}
            }
        },
        "MembersChanged": {
            "type": "object",
            "required": ["chatId", "userIds"],
            "properties": {"chatId": uuid, "userIds": {"type": "array", "items": uuid}}
        },
        "ChatRef": {
            "type": "object",
            "required": ["chatId"],
            "properties": {"chatId": uuid}
        },
        "Exception": {
            "type": "object",
            "required": ["status", "message", "event"],
            "properties": {
                "status": {"const": "error"},
                "message": {"type": "string", "description": "Why, fit for the client"},
                "event": {"type": "string",
                    "description": "The event that failed (empty for a `/ws` frame that \
                        was not an event)"}
            }
        },
        "AckError": {
            "type": "object",
            "required": ["status", "message"],
            "properties": {
                "status": {"const": "error"},
                "message": {"type": "string"}
            }
        }
    });
    match schemas {
        Value::Object(map) => map,
        _ => Map::new(),
    }
}

/// The key of an event in the document's maps, which allow no `:` (`chats.connect`).
fn key(name: &str) -> String {
    name.replace(':', ".")
}

fn schema_ref(name: &str) -> Value {
    json!({"$ref": format!("#/components/schemas/{name}")})
}

/// The `/ws` frame of `event` carrying `payload` (a schema), with `ack` when the client
/// may ask for one.
fn ws_frame(event: &str, payload: Value, client_ack: bool) -> Value {
    let mut properties = json!({"event": {"const": event}, "data": payload});
    if client_ack {
        properties["ack"] = json!({"type": "integer",
            "description": "Asks for an `ack` frame carrying this number"});
    }
    json!({
        "type": "object",
        "required": ["event", "data"],
        "additionalProperties": !client_ack,
        "properties": properties
    })
}

/// The AsyncAPI 3.0 document.
pub fn document() -> Value {
    let mut socketio_messages = Map::new();
    let mut ws_messages = Map::new();
    let mut operations = Map::new();
    for event in EVENTS {
        let key = key(event.name);
        let client_sends = event.direction == Direction::ClientToServer;
        socketio_messages.insert(
            key.clone(),
            json!({
                "name": event.name,
                "title": event.name,
                "summary": event.description,
                "payload": schema_ref(event.payload),
            }),
        );
        ws_messages.insert(
            key.clone(),
            json!({
                "name": event.name,
                "title": event.name,
                "summary": event.description,
                "payload": ws_frame(event.name, schema_ref(event.payload), client_sends),
            }),
        );
        let action = if client_sends { "receive" } else { "send" };
        for (channel, ack_message) in [("socketio", "socketio.ack"), ("ws", "ws.ack")] {
            let mut operation = json!({
                "action": action,
                "channel": {"$ref": format!("#/channels/{channel}")},
                "summary": event.description,
                "messages": [{"$ref": format!("#/channels/{channel}/messages/{key}")}],
            });
            if let Some(ack) = event.ack {
                operation["reply"] = json!({
                    "channel": {"$ref": format!("#/channels/{channel}")},
                    "messages": [{"$ref": format!("#/components/messages/{ack_message}")}],
                });
                operation["description"] = json!(format!(
                    "When the client asks for an ack, it receives `{ack}` on success, \
                     `AckError` on failure"
                ));
            }
            operations.insert(format!("{channel}.{action}.{key}"), operation);
        }
    }
    // The `/ws` protocol's answer to a frame that carried `ack`.
    ws_messages.insert(
        "ack".to_owned(),
        json!({
            "name": "ack",
            "title": "ack",
            "summary": "The answer to a client frame that carried `ack: n`: the same \
                payload as the success event, or `AckError`",
            "payload": {
                "type": "object",
                "required": ["event", "ack", "data"],
                "properties": {
                    "event": {"const": "ack"},
                    "ack": {"type": "integer"},
                    "data": {}
                }
            }
        }),
    );
    operations.insert(
        "ws.send.ack".to_owned(),
        json!({
            "action": "send",
            "channel": {"$ref": "#/channels/ws"},
            "messages": [{"$ref": "#/channels/ws/messages/ack"}]
        }),
    );
    let security = json!([{"$ref": "#/components/securitySchemes/bearer"}]);
    json!({
        "asyncapi": "3.0.0",
        "info": {
            "title": "Messenger real-time API",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Both socket protocols carry the same events and share the \
                rooms: a message sent on one reaches the other. Socket.IO v5 \
                (`socket.io-client` 4.x), namespace `/`, on the REST port; the plain \
                WebSocket at `/ws` exchanges JSON text frames `{\"event\", \"data\", \
                \"ack\"?}`. A socket hears a chat's room only after its own \
                `chats:connect`. REST: `/openapi.json`."
        },
        "servers": {
            "socketio": {
                "host": "localhost:3000",
                "protocol": "ws",
                "pathname": "/socket.io/",
                "description": "Socket.IO v5. Handshake `auth: {token}` (or an \
                    `Authorization: Bearer` header, or `?token=`); a bad token is a \
                    `connect_error` with the message `Unauthorized`. Client events may \
                    carry an ack callback.",
                "security": security,
            },
            "ws": {
                "host": "localhost:3000",
                "protocol": "ws",
                "pathname": "/ws",
                "description": "A plain WebSocket (RFC 6455). Token in an \
                    `Authorization: Bearer` header or `?token=`; a bad token is `401` \
                    before the upgrade.",
                "security": security,
            }
        },
        "channels": {
            "socketio": {
                "address": "/socket.io/",
                "title": "Socket.IO events",
                "servers": [{"$ref": "#/servers/socketio"}],
                "messages": socketio_messages,
            },
            "ws": {
                "address": "/ws",
                "title": "/ws frames",
                "servers": [{"$ref": "#/servers/ws"}],
                "messages": ws_messages,
            }
        },
        "operations": operations,
        "components": {
            "schemas": schemas(),
            "messages": {
                "socketio.ack": {
                    "name": "ack",
                    "summary": "What a client event's ack callback receives",
                    "payload": {"oneOf": [
                        {"$ref": "#/components/schemas/ChatIds"},
                        {"$ref": "#/components/schemas/Message"},
                        {"$ref": "#/components/schemas/Messages"},
                        {"$ref": "#/components/schemas/AckError"}
                    ]}
                },
                "ws.ack": {"$ref": "#/channels/ws/messages/ack"}
            },
            "securitySchemes": {
                "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "bearerFormat": "JWT",
                    "description": "The `access_token` of `POST /auth/login`"
                }
            }
        }
    })
}

/// The names of the events that go `direction`, as the document lists them (the
/// `/ws` protocol's `ack` frame aside).
pub fn documented(direction: Direction) -> Vec<&'static str> {
    EVENTS
        .iter()
        .filter(|event| event.direction == direction)
        .map(|event| event.name)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every `$ref` in `value`.
    fn refs(value: &Value, found: &mut Vec<String>) {
        match value {
            Value::Object(map) => {
                for (k, v) in map {
                    match (k.as_str(), v) {
                        ("$ref", Value::String(target)) => found.push(target.clone()),
                        _ => refs(v, found),
                    }
                }
            }
            Value::Array(items) => items.iter().for_each(|v| refs(v, found)),
            _ => {}
        }
    }

    #[test]
    fn every_reference_in_the_document_resolves() {
        let doc = document();
        let mut found = Vec::new();
        refs(&doc, &mut found);
        assert!(!found.is_empty());
        for target in found {
            let pointer = target.trim_start_matches('#');
            assert!(doc.pointer(pointer).is_some(), "dangling $ref {target}");
        }
    }

    #[test]
    fn every_event_is_a_message_of_both_channels_with_its_name() {
        let doc = document();
        for event in EVENTS {
            for channel in ["socketio", "ws"] {
                let message = &doc["channels"][channel]["messages"][key(event.name)];
                assert_eq!(message["name"], event.name, "{channel}: {}", event.name);
            }
        }
        let names: std::collections::HashSet<_> = EVENTS.iter().map(|e| e.name).collect();
        assert_eq!(names.len(), EVENTS.len(), "an event is listed twice");
    }

    #[test]
    fn the_message_schema_is_the_one_that_serialises_messages() {
        let doc = document();
        let message = &doc["components"]["schemas"]["Message"];
        for field in [
            "id",
            "chatId",
            "senderId",
            "content",
            "createdAt",
            "clientMsgId",
        ] {
            assert!(
                message["properties"].get(field).is_some(),
                "Message lacks {field}: {message}"
            );
        }
    }
}
