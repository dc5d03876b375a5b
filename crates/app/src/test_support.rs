//! Small builders shared by the use-case tests.

use domain::{Chat, ChatId, ChatName, User, UserId, Username};
use time::OffsetDateTime;
use uuid::Uuid;

/// A user id made from a small number, for readable tests.
pub fn user_id(n: u128) -> UserId {
    UserId::from_uuid(Uuid::from_u128(n))
}

/// A chat id made from a small number.
pub fn chat_id(n: u128) -> ChatId {
    ChatId::from_uuid(Uuid::from_u128(1000 + n))
}

/// A user named `name` with id `n`.
pub fn user(n: u128, name: &str) -> User {
    User {
        id: user_id(n),
        username: Username::parse(name).unwrap(),
        created_at: OffsetDateTime::UNIX_EPOCH,
    }
}

/// Chat `n` owned by user `owner`.
pub fn chat(n: u128, owner: u128) -> Chat {
    Chat {
        id: chat_id(n),
        name: ChatName::parse("general").unwrap(),
        owner_id: user_id(owner),
        created_at: OffsetDateTime::UNIX_EPOCH,
    }
}
