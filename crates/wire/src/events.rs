//! The socket events of the contract, both protocols (Socket.IO and `/ws`): every
//! event name, defined once, and the payload of each.
//!
//! [`FromClient`] lists what a client may emit and [`ToClient`] what the server emits;
//! each has `ALL`, so a document of the protocol (AsyncAPI) can be checked against
//! what the server really handles and sends. A handler matches on [`FromClient`], so
//! an event added here and not handled does not compile.

use domain::RoomEvent;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::MessageView;

/// Declares an event-name enum with its wire names and the list of all its variants.
macro_rules! event_names {
    ($(#[$meta:meta])* $name:ident { $($(#[$doc:meta])* $variant:ident = $wire:literal,)+ }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name {
            $($(#[$doc])* $variant,)+
        }

        impl $name {
            /// Every event, in the order the contract lists them.
            pub const ALL: &'static [Self] = &[$(Self::$variant,)+];

            /// The event's name on the wire.
            #[must_use]
            pub const fn name(self) -> &'static str {
                match self {
                    $(Self::$variant => $wire,)+
                }
            }

            /// The event named `name` on the wire, if there is one.
            #[must_use]
            pub fn from_name(name: &str) -> Option<Self> {
                match name {
                    $($wire => Some(Self::$variant),)+
                    _ => None,
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.name())
            }
        }
    };
}

event_names! {
    /// An event a client emits.
    FromClient {
        /// Joins chats' rooms: [`ChatIds`], answered [`ToClient::ChatsConnectSuccess`].
        ChatsConnect = "chats:connect",
        /// Leaves chats' rooms: [`ChatIds`], answered [`ToClient::ChatsDisconnectSuccess`].
        ChatsDisconnect = "chats:disconnect",
        /// Sends a message: [`CreateMessage`]; its success is the room's
        /// [`ToClient::MessagesNew`] (and the ack, with the message).
        MessagesCreate = "messages:create",
        /// Reads a page of history: [`GetMessages`], answered
        /// [`ToClient::MessagesGetSuccess`].
        MessagesGet = "messages:get",
    }
}

event_names! {
    /// An event the server emits.
    ToClient {
        /// The rooms joined: [`ChatIds`].
        ChatsConnectSuccess = "chats:connect:success",
        /// The rooms left: [`ChatIds`].
        ChatsDisconnectSuccess = "chats:disconnect:success",
        /// A page of history: an array of [`crate::MessageView`], newest first.
        MessagesGetSuccess = "messages:get:success",
        /// A message stored in a joined chat: [`crate::MessageView`].
        MessagesNew = "messages:new",
        /// Users added to a joined chat: [`MembersChanged`].
        ChatsMemberAdded = "chats:member:added",
        /// Users removed from (or who left) a joined chat: [`MembersChanged`].
        ChatsMemberRemoved = "chats:member:removed",
        /// A joined chat was deleted: [`ChatRef`].
        ChatsDeleted = "chats:deleted",
        /// An event failed, or the server closes the socket for a reason the client
        /// must know: [`ExceptionPayload`].
        Exception = "exception",
        /// `/ws` only: the answer to a frame that carried `ack` ([`AckFrame`]).
        /// Socket.IO acks are the protocol's own.
        Ack = "ack",
    }
}

impl FromClient {
    /// The event that answers this one on success, sent to the caller alone (none
    /// for a send, whose success is the room's [`ToClient::MessagesNew`]).
    #[must_use]
    pub const fn success(self) -> Option<ToClient> {
        match self {
            Self::ChatsConnect => Some(ToClient::ChatsConnectSuccess),
            Self::ChatsDisconnect => Some(ToClient::ChatsDisconnectSuccess),
            Self::MessagesGet => Some(ToClient::MessagesGetSuccess),
            Self::MessagesCreate => None,
        }
    }
}

/// `{"chatIds": [...]}`: the payload of `chats:connect`, `chats:disconnect` and their
/// success events.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ChatIds {
    /// Chat ids (1 to 1000 of them in a request).
    #[schema(min_items = 1, max_items = 1000)]
    pub chat_ids: Vec<String>,
}

/// The payload of `messages:create`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct CreateMessage {
    /// The chat to send to.
    pub chat_id: String,
    /// The text.
    #[schema(min_length = 1, max_length = 4096)]
    pub content: String,
    /// The sender's idempotency key.
    #[serde(default)]
    #[schema(min_length = 1, max_length = 64)]
    pub client_msg_id: Option<String>,
}

/// The payload of `messages:get`: the REST history query's fields.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct GetMessages {
    /// The chat to read.
    pub chat_id: String,
    /// Page size.
    #[serde(default)]
    #[schema(minimum = 1, maximum = 100)]
    pub take: Option<i64>,
    /// Messages to skip.
    #[serde(default)]
    #[schema(minimum = 0)]
    pub skip: Option<i64>,
    /// Only messages older than this message id.
    #[serde(default)]
    pub before: Option<String>,
}

/// `{"chatId", "userIds"}`: who joined or left a chat.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MembersChanged {
    /// The chat.
    pub chat_id: String,
    /// The users added or removed.
    pub user_ids: Vec<String>,
}

/// `{"chatId"}`: the chat an event is about.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ChatRef {
    /// The chat.
    pub chat_id: String,
}

/// `{"status": "error", "message", "event"}`: the `exception` payload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct ExceptionPayload<'a> {
    /// Always `"error"`.
    pub status: &'static str,
    /// Why, fit for the client.
    pub message: &'a str,
    /// The event that failed (empty when the server closes the socket).
    pub event: &'a str,
}

/// `{"status": "error", "message"}`: what an ack receives on failure.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct AckError<'a> {
    /// Always `"error"`.
    pub status: &'static str,
    /// Why, fit for the client.
    pub message: &'a str,
}

/// `{"event": "ack", "ack", "data"}`: `/ws`'s answer to a frame that carried `ack`.
#[derive(Debug, Serialize)]
pub struct AckFrame<'a, T: Serialize + ?Sized> {
    /// Always [`ToClient::Ack`]'s name.
    pub event: &'static str,
    /// The client's `ack` number.
    pub ack: i64,
    /// The answer: the success payload or an [`AckError`].
    pub data: &'a T,
}

impl<'a, T: Serialize + ?Sized> AckFrame<'a, T> {
    /// The answer `data` to the frame that carried `ack`.
    pub fn new(ack: i64, data: &'a T) -> Self {
        Self {
            event: ToClient::Ack.name(),
            ack,
            data,
        }
    }
}

/// The payload of an event a room hears.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum RoomPayload {
    /// `messages:new`.
    Message(MessageView),
    /// `chats:member:added`, `chats:member:removed`.
    Members(MembersChanged),
    /// `chats:deleted`.
    Chat(ChatRef),
}

/// What a room hears for `event`: the event's name and its payload.
#[must_use]
pub fn room_event(event: &RoomEvent) -> (ToClient, RoomPayload) {
    let members = |chat: &domain::ChatId, users: &[domain::UserId]| {
        RoomPayload::Members(MembersChanged {
            chat_id: chat.to_string(),
            user_ids: users.iter().map(ToString::to_string).collect(),
        })
    };
    match event {
        RoomEvent::MessageCreated(message) => (
            ToClient::MessagesNew,
            RoomPayload::Message(MessageView::from(message)),
        ),
        RoomEvent::MembersAdded { chat, users } => {
            (ToClient::ChatsMemberAdded, members(chat, users))
        }
        RoomEvent::MembersRemoved { chat, users } => {
            (ToClient::ChatsMemberRemoved, members(chat, users))
        }
        RoomEvent::ChatDeleted { chat } => (
            ToClient::ChatsDeleted,
            RoomPayload::Chat(ChatRef {
                chat_id: chat.to_string(),
            }),
        ),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    #[test]
    fn every_event_has_one_distinct_name_that_reads_back() {
        let client: HashSet<_> = FromClient::ALL.iter().map(|e| e.name()).collect();
        let server: HashSet<_> = ToClient::ALL.iter().map(|e| e.name()).collect();
        assert_eq!(client.len(), FromClient::ALL.len());
        assert_eq!(server.len(), ToClient::ALL.len());
        for event in FromClient::ALL {
            assert_eq!(FromClient::from_name(event.name()), Some(*event));
        }
        for event in ToClient::ALL {
            assert_eq!(ToClient::from_name(event.name()), Some(*event));
        }
        assert_eq!(FromClient::from_name("messages:delete"), None);
    }

    #[test]
    fn a_room_hears_each_event_under_its_contract_name() {
        use domain::{ChatId, UserId};
        let chat = ChatId::from_uuid(uuid::Uuid::from_u128(2));
        let user = UserId::from_uuid(uuid::Uuid::from_u128(3));
        let (name, payload) = room_event(&RoomEvent::MembersRemoved {
            chat,
            users: vec![user],
        });
        assert_eq!(name, ToClient::ChatsMemberRemoved);
        assert_eq!(
            serde_json::to_value(payload).unwrap(),
            serde_json::json!({"chatId": chat.to_string(), "userIds": [user.to_string()]})
        );
        let (name, payload) = room_event(&RoomEvent::ChatDeleted { chat });
        assert_eq!(name, ToClient::ChatsDeleted);
        assert_eq!(
            serde_json::to_value(payload).unwrap(),
            serde_json::json!({"chatId": chat.to_string()})
        );
        let (name, _) = room_event(&RoomEvent::MembersAdded {
            chat,
            users: vec![user],
        });
        assert_eq!(name, ToClient::ChatsMemberAdded);
    }

    #[test]
    fn the_payloads_have_the_contract_s_field_names() {
        let ids: ChatIds = serde_json::from_str(r#"{"chatIds":["a"]}"#).unwrap();
        assert_eq!(ids.chat_ids, ["a"]);
        assert!(serde_json::from_str::<ChatIds>(r#"{"chatIds":[],"x":1}"#).is_err());
        let create: CreateMessage =
            serde_json::from_str(r#"{"chatId":"c","content":"hi","clientMsgId":"k"}"#).unwrap();
        assert_eq!(create.client_msg_id.as_deref(), Some("k"));
        let changed = MembersChanged {
            chat_id: "c".into(),
            user_ids: vec!["u".into()],
        };
        assert_eq!(
            serde_json::to_value(&changed).unwrap(),
            serde_json::json!({"chatId": "c", "userIds": ["u"]})
        );
        let ack = AckFrame::new(
            3,
            &AckError {
                status: "error",
                message: "no",
            },
        );
        assert_eq!(
            serde_json::to_value(&ack).unwrap(),
            serde_json::json!({"event": "ack", "ack": 3, "data": {"status": "error", "message": "no"}})
        );
    }
}
