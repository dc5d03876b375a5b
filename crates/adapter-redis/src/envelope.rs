//! The form of a room event on the Redis channel: JSON, versioned, and read back through
//! the domain's parsers, because another process wrote it.

use domain::{ChatId, ClientMsgId, Message, MessageContent, MessageId, RoomEvent, UserId};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use uuid::Uuid;

/// Bumped on any change a node of the previous version could not read; a node skips
/// (and logs) envelopes of another version instead of misreading them.
const VERSION: u32 = 1;

/// One published event and where it came from.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Envelope {
    /// The format version.
    pub(crate) v: u32,
    /// The node that published it.
    pub(crate) node: Uuid,
    /// That node's sequence number for it.
    pub(crate) seq: u64,
    /// What happened.
    pub(crate) event: EventRecord,
}

/// A [`RoomEvent`] in plain fields.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "camelCase")]
pub(crate) enum EventRecord {
    /// [`RoomEvent::MessageCreated`].
    MessageCreated(MessageRecord),
    /// [`RoomEvent::MembersAdded`].
    MembersAdded { chat: Uuid, users: Vec<Uuid> },
    /// [`RoomEvent::MembersRemoved`].
    MembersRemoved { chat: Uuid, users: Vec<Uuid> },
    /// [`RoomEvent::ChatDeleted`].
    ChatDeleted { chat: Uuid },
}

/// A stored message in plain fields.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct MessageRecord {
    id: Uuid,
    chat: Uuid,
    sender: Uuid,
    content: String,
    client_msg_id: Option<String>,
    /// The stored time, unrounded: whole seconds since the Unix epoch…
    created_at_s: i64,
    /// …and the nanoseconds within that second.
    created_at_ns: u32,
}

/// Why a received envelope was not applied.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Unreadable {
    /// Not JSON of the envelope's shape.
    #[error("not an envelope: {0}")]
    Json(#[from] serde_json::Error),
    /// Written by a node speaking another version of the format.
    #[error("envelope version {0}, this node reads {VERSION}")]
    Version(u32),
    /// A field the domain refuses.
    #[error("invalid {0}")]
    Invalid(&'static str),
}

impl Envelope {
    /// Wraps `event`, published by `node` as its `seq`-th.
    pub(crate) fn new(node: Uuid, seq: u64, event: &RoomEvent) -> Self {
        Self {
            v: VERSION,
            node,
            seq,
            event: EventRecord::from(event),
        }
    }

    /// Reads an envelope from the channel.
    pub(crate) fn decode(payload: &[u8]) -> Result<Self, Unreadable> {
        let envelope: Self = serde_json::from_slice(payload)?;
        if envelope.v != VERSION {
            return Err(Unreadable::Version(envelope.v));
        }
        Ok(envelope)
    }
}

impl From<&RoomEvent> for EventRecord {
    fn from(event: &RoomEvent) -> Self {
        let uuids = |users: &[UserId]| users.iter().map(|u| u.as_uuid()).collect();
        match event {
            RoomEvent::MessageCreated(message) => Self::MessageCreated(MessageRecord {
                id: message.id.as_uuid(),
                chat: message.chat_id.as_uuid(),
                sender: message.sender_id.as_uuid(),
                content: message.content.as_str().to_owned(),
                client_msg_id: message
                    .client_msg_id
                    .as_ref()
                    .map(|id| id.as_str().to_owned()),
                created_at_s: message.created_at.unix_timestamp(),
                created_at_ns: message.created_at.nanosecond(),
            }),
            RoomEvent::MembersAdded { chat, users } => Self::MembersAdded {
                chat: chat.as_uuid(),
                users: uuids(users),
            },
            RoomEvent::MembersRemoved { chat, users } => Self::MembersRemoved {
                chat: chat.as_uuid(),
                users: uuids(users),
            },
            RoomEvent::ChatDeleted { chat } => Self::ChatDeleted {
                chat: chat.as_uuid(),
            },
        }
    }
}

impl TryFrom<EventRecord> for RoomEvent {
    type Error = Unreadable;

    fn try_from(record: EventRecord) -> Result<Self, Unreadable> {
        let users = |ids: Vec<Uuid>| ids.into_iter().map(UserId::from_uuid).collect();
        Ok(match record {
            EventRecord::MessageCreated(m) => Self::MessageCreated(Message {
                id: MessageId::from_uuid(m.id),
                chat_id: ChatId::from_uuid(m.chat),
                sender_id: UserId::from_uuid(m.sender),
                content: MessageContent::parse(m.content)
                    .map_err(|_| Unreadable::Invalid("content"))?,
                client_msg_id: m
                    .client_msg_id
                    .map(ClientMsgId::parse)
                    .transpose()
                    .map_err(|_| Unreadable::Invalid("clientMsgId"))?,
                created_at: OffsetDateTime::from_unix_timestamp(m.created_at_s)
                    .and_then(|at| at.replace_nanosecond(m.created_at_ns))
                    .map_err(|_| Unreadable::Invalid("createdAt"))?,
            }),
            EventRecord::MembersAdded { chat, users: ids } => Self::MembersAdded {
                chat: ChatId::from_uuid(chat),
                users: users(ids),
            },
            EventRecord::MembersRemoved { chat, users: ids } => Self::MembersRemoved {
                chat: ChatId::from_uuid(chat),
                users: users(ids),
            },
            EventRecord::ChatDeleted { chat } => Self::ChatDeleted {
                chat: ChatId::from_uuid(chat),
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message() -> Message {
        Message {
            id: MessageId::from_uuid(Uuid::now_v7()),
            chat_id: ChatId::from_uuid(Uuid::new_v4()),
            sender_id: UserId::from_uuid(Uuid::new_v4()),
            content: MessageContent::parse("héllo ✓").unwrap(),
            client_msg_id: Some(ClientMsgId::parse("c-1").unwrap()),
            created_at: OffsetDateTime::from_unix_timestamp_nanos(1_764_000_000_123_456_000)
                .unwrap(),
        }
    }

    fn round_trip(event: &RoomEvent) -> RoomEvent {
        let node = Uuid::new_v4();
        let bytes = serde_json::to_vec(&Envelope::new(node, 7, event)).unwrap();
        let envelope = Envelope::decode(&bytes).unwrap();
        assert_eq!((envelope.node, envelope.seq), (node, 7));
        RoomEvent::try_from(envelope.event).unwrap()
    }

    #[test]
    fn every_event_reads_back_as_written() {
        let chat = ChatId::from_uuid(Uuid::new_v4());
        let users = vec![
            UserId::from_uuid(Uuid::new_v4()),
            UserId::from_uuid(Uuid::new_v4()),
        ];
        for event in [
            RoomEvent::MessageCreated(message()),
            RoomEvent::MembersAdded {
                chat,
                users: users.clone(),
            },
            RoomEvent::MembersRemoved { chat, users },
            RoomEvent::ChatDeleted { chat },
        ] {
            assert_eq!(round_trip(&event), event);
        }
    }

    #[test]
    fn another_version_or_an_invalid_field_is_refused() {
        let mut envelope = Envelope::new(Uuid::new_v4(), 1, &RoomEvent::MessageCreated(message()));
        envelope.v = VERSION + 1;
        let bytes = serde_json::to_vec(&envelope).unwrap();
        assert!(matches!(
            Envelope::decode(&bytes),
            Err(Unreadable::Version(v)) if v == VERSION + 1
        ));

        let mut json: serde_json::Value = serde_json::to_value(Envelope::new(
            Uuid::new_v4(),
            1,
            &RoomEvent::MessageCreated(message()),
        ))
        .unwrap();
        json["event"]["content"] = "   ".into();
        let envelope = Envelope::decode(json.to_string().as_bytes()).unwrap();
        assert!(matches!(
            RoomEvent::try_from(envelope.event),
            Err(Unreadable::Invalid("content"))
        ));
        assert!(matches!(
            Envelope::decode(b"{\"v\":1}"),
            Err(Unreadable::Json(_))
        ));
    }
}
