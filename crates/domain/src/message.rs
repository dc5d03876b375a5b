//! Messages: validated content and client ids, and the message entity.

use time::OffsetDateTime;

use crate::error::InvalidInput;
use crate::ids::{ChatId, MessageId, UserId};

/// A message's text: 1–4096 Unicode scalar values, not blank. Stored as given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageContent(String);

impl MessageContent {
    /// Longest accepted content, in Unicode scalar values.
    pub const MAX_CHARS: usize = 4096;

    /// Validates message content.
    ///
    /// # Errors
    /// [`InvalidInput`] on field `content` when it is blank or too long.
    pub fn parse(raw: impl Into<String>) -> Result<Self, InvalidInput> {
        let raw = raw.into();
        if raw.trim().is_empty() {
            return Err(InvalidInput::new("content", "must not be blank"));
        }
        InvalidInput::reject_nul("content", &raw)?;
        if raw.chars().count() > Self::MAX_CHARS {
            return Err(InvalidInput::new(
                "content",
                "must be at most 4096 characters long",
            ));
        }
        Ok(Self(raw))
    }

    /// The text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A sender-chosen id that makes a send idempotent: 1–64 characters.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ClientMsgId(String);

impl ClientMsgId {
    /// Longest accepted id, in characters.
    pub const MAX_CHARS: usize = 64;

    /// Validates a client message id.
    ///
    /// # Errors
    /// [`InvalidInput`] on field `clientMsgId` when it is empty or too long.
    pub fn parse(raw: impl Into<String>) -> Result<Self, InvalidInput> {
        let raw = raw.into();
        let chars = raw.chars().count();
        if chars == 0 || chars > Self::MAX_CHARS {
            return Err(InvalidInput::new(
                "clientMsgId",
                "must be 1 to 64 characters long",
            ));
        }
        InvalidInput::reject_nul("clientMsgId", &raw)?;
        Ok(Self(raw))
    }

    /// The id.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A message to be stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewMessage {
    /// The chat it is sent to.
    pub chat_id: ChatId,
    /// Who sends it.
    pub sender_id: UserId,
    /// Its text.
    pub content: MessageContent,
    /// The sender's idempotency key, when given.
    pub client_msg_id: Option<ClientMsgId>,
}

/// A stored message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// Server-generated id.
    pub id: MessageId,
    /// The chat it belongs to.
    pub chat_id: ChatId,
    /// Who sent it.
    pub sender_id: UserId,
    /// Its text.
    pub content: MessageContent,
    /// The sender's idempotency key, when given.
    pub client_msg_id: Option<ClientMsgId>,
    /// When it was stored.
    pub created_at: OffsetDateTime,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_is_1_to_4096_scalars_and_not_blank() {
        assert!(MessageContent::parse("hi").is_ok());
        assert!(MessageContent::parse(" \n\t").is_err());
        assert!(MessageContent::parse("").is_err());
        assert!(MessageContent::parse("😀".repeat(4096)).is_ok());
        assert!(MessageContent::parse("😀".repeat(4097)).is_err());
        assert_eq!(MessageContent::parse("  hi ").unwrap().as_str(), "  hi ");
    }

    #[test]
    fn client_msg_id_is_1_to_64_characters() {
        assert!(ClientMsgId::parse("").is_err());
        assert!(ClientMsgId::parse("a".repeat(64)).is_ok());
        assert!(ClientMsgId::parse("a".repeat(65)).is_err());
    }

    #[test]
    fn text_with_a_nul_character_is_refused_on_its_field() {
        let err = MessageContent::parse("a\0b").unwrap_err();
        assert_eq!(
            (err.field(), err.message()),
            ("content", "must not contain the NUL character")
        );
        assert_eq!(
            ClientMsgId::parse("c\0").unwrap_err().field(),
            "clientMsgId"
        );
        assert_eq!(
            crate::ChatName::parse("team\0").unwrap_err().field(),
            "name"
        );
        // Other control characters are text like any other.
        assert!(MessageContent::parse("line\nbreak\ttab").is_ok());
    }
}
