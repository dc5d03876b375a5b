//! The AsyncAPI 3 document of both socket protocols (Socket.IO at `/socket.io/`, the
//! plain WebSocket at `/ws`): every event of [`FromClient`] and [`ToClient`] with its
//! payload, the acks and the `/ws` frames. There is no mature Rust generator, so the
//! document is built here: the events come from the lists in [`crate::events`], each
//! described by an exhaustive `match` (an event added there and not described here does
//! not compile), and the payloads' schemas from the very types that serialise them.
//! `adapter-ws`'s test `asyncapi` checks the served document against the lists and
//! against the event names in the socket adapter's code.

use serde_json::{Map, Value, json};
use utoipa::PartialSchema;

use crate::MessageView;
use crate::events::{
    AckError, ChatIds, ChatRef, CreateMessage, ExceptionPayload, FromClient, GetMessages,
    MembersChanged, ToClient,
};

/// How the document describes one event.
struct Described {
    /// Its payload's schema: a name in [`schemas`].
    payload: &'static str,
    /// What it does, in a sentence or two.
    summary: &'static str,
}

/// What `event` carries, and what it does.
fn client_event(event: FromClient) -> Described {
    let (payload, summary) = match event {
        FromClient::ChatsConnect => (
            "ChatIds",
            "Join the rooms of these chats (1–1000; the caller must be a member of every \
             one, else nothing is joined and an `exception` is sent). Answered by \
             `chats:connect:success`.",
        ),
        FromClient::ChatsDisconnect => (
            "ChatIds",
            "Leave the rooms of these chats; leaving a room one is not in is not an \
             error. Answered by `chats:disconnect:success`.",
        ),
        FromClient::MessagesCreate => (
            "CreateMessage",
            "Send a message (members only; joining the room is not needed). It is stored \
             before anyone is told; the room hears `messages:new` and the ack receives \
             the message. A repeated `clientMsgId` from the same sender in the same chat \
             stores nothing new and acks the first message.",
        ),
        FromClient::MessagesGet => (
            "GetMessages",
            "A page of a chat's history, newest first (members only). Answered by \
             `messages:get:success`.",
        ),
    };
    Described { payload, summary }
}

/// What the ack of `event` receives on success (on failure: `AckError`).
fn ack_payload(event: FromClient) -> &'static str {
    match event {
        FromClient::ChatsConnect | FromClient::ChatsDisconnect => "ChatIds",
        FromClient::MessagesCreate => "Message",
        FromClient::MessagesGet => "Messages",
    }
}

/// What `event` carries, and when it is sent.
fn server_event(event: ToClient) -> Described {
    let (payload, summary) = match event {
        ToClient::ChatsConnectSuccess => ("ChatIds", "The rooms joined by `chats:connect`."),
        ToClient::ChatsDisconnectSuccess => ("ChatIds", "The rooms left by `chats:disconnect`."),
        ToClient::MessagesGetSuccess => (
            "Messages",
            "The page asked for by `messages:get`, newest first.",
        ),
        ToClient::MessagesNew => (
            "Message",
            "A message stored in a chat, to every socket in its room (the sender's \
             included), in the order stored.",
        ),
        ToClient::ChatsMemberAdded => ("MembersChanged", "Users added to a chat, to its room."),
        ToClient::ChatsMemberRemoved => (
            "MembersChanged",
            "Users removed from a chat (or who left), to its room and to the removed \
             users' sockets, which leave the room at once and hear nothing more from it.",
        ),
        ToClient::ChatsDeleted => (
            "ChatRef",
            "The chat is gone, to its room, which is then emptied.",
        ),
        ToClient::Exception => (
            "Exception",
            "A client event failed (to the caller alone; the socket stays open), or the \
             server closes the socket for a reason the client must know.",
        ),
        ToClient::Ack => (
            "AckFrame",
            "`/ws` only: the answer to a client frame that carried `ack: n`, with the \
             same payload as the event's success, or `AckError`. (Socket.IO acks are the \
             protocol's own.)",
        ),
    };
    Described { payload, summary }
}

/// Whether `event` exists on the Socket.IO protocol (the `/ws` protocol has them all).
fn on_socketio(event: ToClient) -> bool {
    event != ToClient::Ack
}

/// The schema of a payload type, as JSON.
fn schema_of<T: PartialSchema>() -> Value {
    serde_json::to_value(T::schema()).unwrap_or(Value::Null)
}

/// The schemas of the payloads, by name.
fn schemas() -> Map<String, Value> {
    let mut schemas = Map::new();
    for (name, schema) in [
        ("Message", schema_of::<MessageView>()),
        ("ChatIds", schema_of::<ChatIds>()),
        ("CreateMessage", schema_of::<CreateMessage>()),
        ("GetMessages", schema_of::<GetMessages>()),
        ("MembersChanged", schema_of::<MembersChanged>()),
        ("ChatRef", schema_of::<ChatRef>()),
        ("Exception", schema_of::<ExceptionPayload<'static>>()),
        ("AckError", schema_of::<AckError<'static>>()),
    ] {
        schemas.insert(name.to_owned(), schema);
    }
    schemas.insert(
        "Messages".to_owned(),
        json!({"type": "array", "items": {"$ref": "#/components/schemas/Message"}}),
    );
    schemas.insert(
        "AckFrame".to_owned(),
        json!({
            "type": "object",
            "required": ["event", "ack", "data"],
            "properties": {
                "event": {"const": ToClient::Ack.name()},
                "ack": {"type": "integer", "description": "The client frame's `ack`"},
                "data": {"oneOf": [
                    {"$ref": "#/components/schemas/ChatIds"},
                    {"$ref": "#/components/schemas/Message"},
                    {"$ref": "#/components/schemas/Messages"},
                    {"$ref": "#/components/schemas/AckError"}
                ]}
            }
        }),
    );
    schemas
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
        "additionalProperties": false,
        "properties": properties
    })
}

/// One event in the document: its message in its channels and its operation.
struct Entry {
    name: &'static str,
    described: Described,
    /// `receive` (the server handles it) or `send`.
    action: &'static str,
    /// For a client event: the ack's success payload.
    ack: Option<&'static str>,
    channels: &'static [&'static str],
}

fn entries() -> Vec<Entry> {
    let client = FromClient::ALL.iter().map(|&event| Entry {
        name: event.name(),
        described: client_event(event),
        action: "receive",
        ack: Some(ack_payload(event)),
        channels: &["socketio", "ws"],
    });
    let server = ToClient::ALL.iter().map(|&event| Entry {
        name: event.name(),
        described: server_event(event),
        action: "send",
        ack: None,
        channels: if on_socketio(event) {
            &["socketio", "ws"]
        } else {
            &["ws"]
        },
    });
    client.chain(server).collect()
}

/// The AsyncAPI 3.0 document.
pub fn document() -> Value {
    let mut messages: Map<String, Value> = Map::new();
    let mut operations = Map::new();
    for entry in entries() {
        let key = key(entry.name);
        let Described { payload, summary } = entry.described;
        for &channel in entry.channels {
            // A `/ws` frame wraps the payload: `{"event", "data", "ack"?}` (the `ack`
            // frame is its own shape).
            let body = if channel == "ws" && entry.name != ToClient::Ack.name() {
                ws_frame(entry.name, schema_ref(payload), entry.action == "receive")
            } else {
                schema_ref(payload)
            };
            let channel_messages = messages
                .entry(channel)
                .or_insert_with(|| Value::Object(Map::new()));
            channel_messages[&key] = json!({
                "name": entry.name,
                "title": entry.name,
                "summary": summary,
                "payload": body,
            });
            let mut operation = json!({
                "action": entry.action,
                "channel": {"$ref": format!("#/channels/{channel}")},
                "summary": summary,
                "messages": [{"$ref": format!("#/channels/{channel}/messages/{key}")}],
            });
            if let Some(ack) = entry.ack {
                let reply = if channel == "ws" {
                    format!("#/channels/ws/messages/{}", self::key(ToClient::Ack.name()))
                } else {
                    "#/components/messages/socketio.ack".to_owned()
                };
                operation["reply"] = json!({
                    "channel": {"$ref": format!("#/channels/{channel}")},
                    "messages": [{"$ref": reply}],
                });
                operation["description"] = json!(format!(
                    "When the client asks for an ack, it receives `{ack}` on success, \
                     `AckError` on failure."
                ));
            }
            operations.insert(format!("{channel}.{}.{key}", entry.action), operation);
        }
    }
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
                "messages": messages.remove("socketio").unwrap_or_default(),
            },
            "ws": {
                "address": "/ws",
                "title": "/ws frames",
                "servers": [{"$ref": "#/servers/ws"}],
                "messages": messages.remove("ws").unwrap_or_default(),
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
                }
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

/// The event names `document` lists in `channel` (`socketio` or `ws`) for `action`
/// (`receive`: the server handles them; `send`: the server emits them), read from the
/// document itself.
pub fn listed(document: &Value, channel: &str, action: &str) -> Vec<String> {
    let mut names: Vec<String> = document["operations"]
        .as_object()
        .into_iter()
        .flatten()
        .filter(|(_, operation)| {
            operation["action"] == action
                && operation["channel"]["$ref"] == format!("#/channels/{channel}")
        })
        .flat_map(|(_, operation)| {
            operation["messages"]
                .as_array()
                .cloned()
                .unwrap_or_default()
        })
        .filter_map(|message| {
            let pointer = message["$ref"].as_str()?.trim_start_matches('#').to_owned();
            document.pointer(&pointer)?["name"]
                .as_str()
                .map(str::to_owned)
        })
        .collect();
    names.sort();
    names
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
        assert!(found.len() > 20);
        for target in found {
            let pointer = target.trim_start_matches('#');
            assert!(doc.pointer(pointer).is_some(), "dangling $ref {target}");
        }
    }

    #[test]
    fn the_payload_schemas_are_those_of_the_types_that_serialise_them() {
        let doc = document();
        let schemas = &doc["components"]["schemas"];
        for field in [
            "id",
            "chatId",
            "senderId",
            "content",
            "createdAt",
            "clientMsgId",
        ] {
            assert!(
                schemas["Message"]["properties"].get(field).is_some(),
                "Message lacks {field}"
            );
        }
        assert_eq!(schemas["ChatIds"]["required"], json!(["chatIds"]));
        assert_eq!(
            schemas["CreateMessage"]["properties"]["content"]["maxLength"],
            4096
        );
        assert_eq!(schemas["CreateMessage"]["additionalProperties"], false);
    }

    #[test]
    fn the_ws_frames_wrap_the_payload_with_the_event_name() {
        let doc = document();
        let frame = &doc["channels"]["ws"]["messages"]["messages.create"]["payload"];
        assert_eq!(frame["properties"]["event"]["const"], "messages:create");
        assert_eq!(
            frame["properties"]["data"]["$ref"],
            "#/components/schemas/CreateMessage"
        );
        assert!(frame["properties"].get("ack").is_some());
    }
}
