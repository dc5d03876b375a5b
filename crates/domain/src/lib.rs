//! The messenger's domain: users, chats, membership and messages as validated types,
//! the rules that govern them, and the ports through which the application reaches
//! storage, password hashing, tokens and live delivery.
//!
//! This crate is pure: it performs no I/O and knows nothing of HTTP, SQL, sockets or
//! serialisation formats. Every value that crosses into it is parsed into a type that
//! cannot hold an invalid value (`Username::parse`, `ChatName::parse`, …).

pub mod chat;
pub mod error;
pub mod ids;
pub mod message;
pub mod paging;
pub mod ports;
pub mod room;
pub mod user;

pub use chat::{Chat, ChatIds, ChatMember, ChatName, MemberIds, Removal};
pub use error::{InvalidInput, StoreError};
pub use ids::{ChatId, MessageId, UserId};
pub use message::{ClientMsgId, Message, MessageContent, NewMessage};
pub use paging::{HistoryPage, Limit, UserPage};
pub use room::RoomEvent;
pub use user::{Password, PasswordHash, PasswordPolicy, User, UserCredentials, Username};
