//! The contract's JSON shapes of the resources (`User`, `Chat`, `ChatMember`,
//! `Message`) and its timestamp format. Both the REST and the socket adapters answer
//! with these, so a resource looks the same on every transport.

pub mod asyncapi;
pub mod events;

use domain::{Chat, ChatMember, Message, User};
use serde::Serialize;
use time::OffsetDateTime;
use time::format_description::well_known::iso8601::{
    Config, EncodedConfig, Iso8601, TimePrecision,
};
use utoipa::ToSchema;

/// RFC 3339 in UTC with exactly three fractional digits: `2026-11-24T14:37:00.123Z`.
const TIMESTAMP: EncodedConfig = Config::DEFAULT
    .set_time_precision(TimePrecision::Second {
        decimal_digits: std::num::NonZeroU8::new(3),
    })
    .encode();

/// Formats a timestamp as the contract requires (UTC, millisecond precision, `Z`).
pub fn timestamp(at: OffsetDateTime) -> String {
    // Formatting a UTC date-time in this fixed format cannot fail for years 0..=9999,
    // which is all a database timestamp can hold; fall back to RFC 3339 otherwise.
    let utc = at.to_offset(time::UtcOffset::UTC);
    utc.format(&Iso8601::<TIMESTAMP>)
        .unwrap_or_else(|_| utc.to_string())
}

/// A user as clients see it: never the password or its hash.
#[derive(Debug, Clone, Serialize, PartialEq, Eq, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = User)]
pub struct UserView {
    /// Lowercase hyphenated UUID.
    #[schema(format = Uuid)]
    pub id: String,
    /// As given at registration.
    pub username: String,
    /// When the user registered.
    #[schema(format = DateTime, example = "2026-11-24T14:37:00.123Z")]
    pub created_at: String,
}

impl From<&User> for UserView {
    fn from(user: &User) -> Self {
        Self {
            id: user.id.to_string(),
            username: user.username.to_string(),
            created_at: timestamp(user.created_at),
        }
    }
}

/// A chat.
#[derive(Debug, Clone, Serialize, PartialEq, Eq, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = Chat)]
pub struct ChatView {
    /// Lowercase hyphenated UUID.
    #[schema(format = Uuid)]
    pub id: String,
    /// The trimmed name.
    pub name: String,
    /// The owner's user id.
    #[schema(format = Uuid)]
    pub owner_id: String,
    /// When it was created.
    #[schema(format = DateTime, example = "2026-11-24T14:37:00.123Z")]
    pub created_at: String,
}

impl From<&Chat> for ChatView {
    fn from(chat: &Chat) -> Self {
        Self {
            id: chat.id.to_string(),
            name: chat.name.as_str().to_owned(),
            owner_id: chat.owner_id.to_string(),
            created_at: timestamp(chat.created_at),
        }
    }
}

/// A member of a chat.
#[derive(Debug, Clone, Serialize, PartialEq, Eq, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = ChatMember)]
pub struct ChatMemberView {
    /// The member's user id.
    #[schema(format = Uuid)]
    pub user_id: String,
    /// Their username.
    pub username: String,
    /// When they joined.
    #[schema(format = DateTime, example = "2026-11-24T14:37:00.123Z")]
    pub joined_at: String,
}

impl From<&ChatMember> for ChatMemberView {
    fn from(member: &ChatMember) -> Self {
        Self {
            user_id: member.user_id.to_string(),
            username: member.username.to_string(),
            joined_at: timestamp(member.joined_at),
        }
    }
}

/// A message; `clientMsgId` only when the sender gave one.
#[derive(Debug, Clone, Serialize, PartialEq, Eq, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = Message)]
pub struct MessageView {
    /// Lowercase hyphenated UUID.
    #[schema(format = Uuid)]
    pub id: String,
    /// The chat it belongs to.
    #[schema(format = Uuid)]
    pub chat_id: String,
    /// Who sent it.
    #[schema(format = Uuid)]
    pub sender_id: String,
    /// The text.
    pub content: String,
    /// The sender's idempotency key.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_msg_id: Option<String>,
    /// When it was stored.
    #[schema(format = DateTime, example = "2026-11-24T14:37:00.123Z")]
    pub created_at: String,
}

impl From<&Message> for MessageView {
    fn from(message: &Message) -> Self {
        Self {
            id: message.id.to_string(),
            chat_id: message.chat_id.to_string(),
            sender_id: message.sender_id.to_string(),
            content: message.content.as_str().to_owned(),
            client_msg_id: message
                .client_msg_id
                .as_ref()
                .map(|c| c.as_str().to_owned()),
            created_at: timestamp(message.created_at),
        }
    }
}

/// Converts a slice of domain values into their views.
pub fn views<'a, T: 'a, V: From<&'a T>>(items: &'a [T]) -> Vec<V> {
    items.iter().map(V::from).collect()
}

#[cfg(test)]
mod tests {
    use domain::{ClientMsgId, MessageContent, MessageId, UserId, Username};
    use time::macros::datetime;
    use uuid::Uuid;

    use super::*;

    #[test]
    fn timestamps_are_utc_with_exactly_three_fractional_digits() {
        assert_eq!(
            timestamp(datetime!(2026-11-24 14:37:00.123456 UTC)),
            "2026-11-24T14:37:00.123Z"
        );
        assert_eq!(
            timestamp(datetime!(2026-11-24 14:37:00 UTC)),
            "2026-11-24T14:37:00.000Z"
        );
        assert_eq!(
            timestamp(datetime!(2026-11-24 16:37:00.5 +2)),
            "2026-11-24T14:37:00.500Z"
        );
    }

    #[test]
    fn a_user_serialises_without_any_secret() {
        let user = User {
            id: UserId::from_uuid(Uuid::from_u128(1)),
            username: Username::parse("Alice").unwrap(),
            created_at: datetime!(2026-01-01 0:00 UTC),
        };
        let json = serde_json::to_value(UserView::from(&user)).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "id": "00000000-0000-0000-0000-000000000001",
                "username": "Alice",
                "createdAt": "2026-01-01T00:00:00.000Z"
            })
        );
    }

    #[test]
    fn a_message_carries_client_msg_id_only_when_given() {
        let mut message = Message {
            id: MessageId::from_uuid(Uuid::from_u128(3)),
            chat_id: domain::ChatId::from_uuid(Uuid::from_u128(2)),
            sender_id: UserId::from_uuid(Uuid::from_u128(1)),
            content: MessageContent::parse("hi").unwrap(),
            client_msg_id: None,
            created_at: datetime!(2026-01-01 0:00 UTC),
        };
        let json = serde_json::to_value(MessageView::from(&message)).unwrap();
        assert!(json.get("clientMsgId").is_none());
        assert_eq!(json["chatId"], "00000000-0000-0000-0000-000000000002");
        message.client_msg_id = Some(ClientMsgId::parse("c1").unwrap());
        let json = serde_json::to_value(MessageView::from(&message)).unwrap();
        assert_eq!(json["clientMsgId"], "c1");
    }
}
