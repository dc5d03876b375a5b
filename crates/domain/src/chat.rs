//! Chats, their members, and the membership rules.

use time::OffsetDateTime;

use crate::error::InvalidInput;
use crate::ids::{ChatId, UserId};

/// A chat's name: 1–100 characters after trimming, stored trimmed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChatName(String);

impl ChatName {
    /// Longest accepted name, in characters, after trimming.
    pub const MAX_CHARS: usize = 100;

    /// Trims and validates a chat name.
    ///
    /// # Errors
    /// [`InvalidInput`] on field `name` when it is blank or too long.
    pub fn parse(raw: &str) -> Result<Self, InvalidInput> {
        let trimmed = raw.trim();
        if trimmed.is_empty() {
            return Err(InvalidInput::new("name", "must not be blank"));
        }
        if trimmed.chars().count() > Self::MAX_CHARS {
            return Err(InvalidInput::new(
                "name",
                "must be at most 100 characters long",
            ));
        }
        InvalidInput::reject_nul("name", trimmed)?;
        Ok(Self(trimmed.to_owned()))
    }

    /// The trimmed name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A chat room.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chat {
    /// Server-generated id.
    pub id: ChatId,
    /// Its name.
    pub name: ChatName,
    /// The user who created it; only they may add, remove or delete.
    pub owner_id: UserId,
    /// When it was created.
    pub created_at: OffsetDateTime,
}

impl Chat {
    /// Whether `user` owns this chat.
    pub fn is_owned_by(&self, user: UserId) -> bool {
        self.owner_id == user
    }

    /// What removing `users` from this chat amounts to: removing the owner (directly,
    /// or by the owner leaving) deletes the whole chat, since a chat cannot outlive its
    /// owner.
    pub fn removal_of(&self, users: &[UserId]) -> Removal {
        if users.contains(&self.owner_id) {
            Removal::DeleteChat
        } else {
            Removal::RemoveMembers
        }
    }
}

/// The outcome of a removal, decided by [`Chat::removal_of`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Removal {
    /// Only the named members go.
    RemoveMembers,
    /// The owner is among them: the chat, its members and its messages go.
    DeleteChat,
}

/// A member of a chat, as listed to other members.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChatMember {
    /// The member.
    pub user_id: UserId,
    /// Their username.
    pub username: crate::user::Username,
    /// When they joined the chat.
    pub joined_at: OffsetDateTime,
}

/// A socket client's list of chats to join or leave (`chats:connect`,
/// `chats:disconnect`): 1–1000 ids.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChatIds(Vec<ChatId>);

impl ChatIds {
    /// Most chats one request may name.
    pub const MAX: usize = 1000;

    /// Parses client-supplied id strings, naming a bad one by its index (`chatIds[2]`).
    ///
    /// # Errors
    /// [`InvalidInput`] on field `chatIds` when the list is empty or too long, or on
    /// `chatIds[i]` for a malformed id.
    pub fn parse<S: AsRef<str>>(raw: &[S]) -> Result<Self, InvalidInput> {
        if raw.is_empty() || raw.len() > Self::MAX {
            return Err(InvalidInput::new("chatIds", "must name 1 to 1000 chats"));
        }
        Self::parse_to_leave(raw)
    }

    /// Parses the chats to leave: any number, none included, since leaving a room
    /// one is not in is not an error (the message size bounds the list).
    ///
    /// # Errors
    /// [`InvalidInput`] on `chatIds[i]` for a malformed id.
    pub fn parse_to_leave<S: AsRef<str>>(raw: &[S]) -> Result<Self, InvalidInput> {
        raw.iter()
            .enumerate()
            .map(|(i, s)| ChatId::parse(s.as_ref(), &format!("chatIds[{i}]")))
            .collect::<Result<Vec<_>, _>>()
            .map(Self)
    }

    /// The ids as the client gave them.
    pub fn as_slice(&self) -> &[ChatId] {
        &self.0
    }
}

/// A client's list of user ids for adding or removing members: 1–1000 ids. Duplicates
/// are tolerated; [`MemberIds::unique`] gives each id once, in first-seen order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberIds(Vec<UserId>);

impl MemberIds {
    /// Most ids one request may name.
    pub const MAX: usize = 1000;

    /// Validates a list of already-parsed ids.
    ///
    /// # Errors
    /// [`InvalidInput`] on field `members` when the list is empty or too long.
    pub fn new(ids: Vec<UserId>) -> Result<Self, InvalidInput> {
        if ids.is_empty() {
            return Err(InvalidInput::new("members", "must not be empty"));
        }
        if ids.len() > Self::MAX {
            return Err(InvalidInput::new("members", "must name at most 1000 users"));
        }
        Ok(Self(ids))
    }

    /// Parses client-supplied id strings, naming a bad one by its index (`members[2]`).
    ///
    /// # Errors
    /// [`InvalidInput`] when the list is empty, too long, or holds a malformed id.
    pub fn parse<S: AsRef<str>>(raw: &[S]) -> Result<Self, InvalidInput> {
        if raw.len() > Self::MAX {
            return Err(InvalidInput::new("members", "must name at most 1000 users"));
        }
        let ids = raw
            .iter()
            .enumerate()
            .map(|(i, s)| UserId::parse(s.as_ref(), &format!("members[{i}]")))
            .collect::<Result<Vec<_>, _>>()?;
        Self::new(ids)
    }

    /// The ids as the client gave them, duplicates included.
    pub fn as_given(&self) -> &[UserId] {
        &self.0
    }

    /// Each id once, in the order first given.
    pub fn unique(&self) -> Vec<UserId> {
        let mut seen = std::collections::HashSet::with_capacity(self.0.len());
        self.0
            .iter()
            .copied()
            .filter(|id| seen.insert(*id))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use uuid::Uuid;

    fn user(n: u128) -> UserId {
        UserId::from_uuid(Uuid::from_u128(n))
    }

    #[test]
    fn chat_name_is_trimmed_and_bounded() {
        assert_eq!(ChatName::parse("  general ").unwrap().as_str(), "general");
        assert!(ChatName::parse("   ").is_err());
        assert!(ChatName::parse("").is_err());
        assert!(ChatName::parse(&format!(" {} ", "n".repeat(100))).is_ok());
        assert!(ChatName::parse(&"n".repeat(101)).is_err());
    }

    #[test]
    fn removing_the_owner_deletes_the_chat() {
        let chat = Chat {
            id: ChatId::from_uuid(Uuid::from_u128(9)),
            name: ChatName::parse("c").unwrap(),
            owner_id: user(1),
            created_at: OffsetDateTime::UNIX_EPOCH,
        };
        assert_eq!(chat.removal_of(&[user(2), user(3)]), Removal::RemoveMembers);
        assert_eq!(chat.removal_of(&[user(2), user(1)]), Removal::DeleteChat);
        assert!(chat.is_owned_by(user(1)));
        assert!(!chat.is_owned_by(user(2)));
    }

    #[test]
    fn member_ids_must_be_1_to_1000() {
        assert_eq!(
            MemberIds::new(vec![]).unwrap_err().message(),
            "must not be empty"
        );
        assert!(MemberIds::new(vec![user(1); 1000]).is_ok());
        assert!(MemberIds::new(vec![user(1); 1001]).is_err());
    }

    #[test]
    fn member_ids_name_the_malformed_entry() {
        let ok = Uuid::from_u128(1).to_string();
        let err = MemberIds::parse(&[ok.as_str(), "nope"]).unwrap_err();
        assert_eq!(err.field(), "members[1]");
    }

    #[test]
    fn chat_ids_are_1_to_1000_well_formed_ids() {
        let ok = Uuid::from_u128(1).to_string();
        assert_eq!(ChatIds::parse(&[ok.as_str()]).unwrap().as_slice().len(), 1);
        assert_eq!(ChatIds::parse::<&str>(&[]).unwrap_err().field(), "chatIds");
        assert_eq!(
            ChatIds::parse(&vec![ok.as_str(); 1001])
                .unwrap_err()
                .field(),
            "chatIds"
        );
        assert!(ChatIds::parse(&vec![ok.as_str(); 1000]).is_ok());
        assert_eq!(
            ChatIds::parse(&[ok.as_str(), "nope"]).unwrap_err().field(),
            "chatIds[1]"
        );
        // Leaving nothing is not an error.
        assert!(ChatIds::parse_to_leave::<&str>(&[]).is_ok());
        assert_eq!(
            ChatIds::parse_to_leave(&["nope"]).unwrap_err().field(),
            "chatIds[0]"
        );
    }

    #[test]
    fn unique_keeps_first_seen_order() {
        let ids = MemberIds::new(vec![user(2), user(1), user(2), user(3), user(1)]).unwrap();
        assert_eq!(ids.unique(), vec![user(2), user(1), user(3)]);
        assert_eq!(ids.as_given().len(), 5);
    }
}
