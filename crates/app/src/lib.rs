//! The messenger's use cases, one per operation of the contract. Each orchestrates the
//! domain's ports and enforces the contract's order of checks; none knows HTTP, SQL or
//! sockets. Adapters call [`App`]; the server builds it from [`Ports`].

mod access;
pub mod auth;
pub mod chats;
mod error;
pub mod messages;
mod ordering;
pub mod ports;

use std::sync::Arc;

pub use error::{AppError, UnknownMember};
pub use messages::QueuedSend;

use domain::PasswordPolicy;
use domain::ports::{
    ChatRepository, MessageRepository, PasswordHasher, RoomEvents, TokenService, UserRepository,
};

use crate::ports::{MessageQueue, SendOrder};

/// A request body (or other input) as the adapter parsed it, or why it could not be
/// parsed. Use cases that check access take their input in this form and report a
/// parse failure only after the access checks, as the contract orders them
/// (`404` → `403` → `400` body).
pub type Input<T> = Result<T, domain::InvalidInput>;

/// Everything the use cases need from the outside world.
#[derive(Clone)]
pub struct Ports {
    /// User storage.
    pub users: Arc<dyn UserRepository>,
    /// Chat and membership storage.
    pub chats: Arc<dyn ChatRepository>,
    /// Message storage (history).
    pub messages: Arc<dyn MessageRepository>,
    /// New messages, queued for storing (several in flight).
    pub message_queue: Arc<dyn MessageQueue>,
    /// Password hashing.
    pub hasher: Arc<dyn PasswordHasher>,
    /// Access tokens.
    pub tokens: Arc<dyn TokenService>,
    /// Live delivery to connected sockets.
    pub rooms: Arc<dyn RoomEvents>,
    /// The order of senders between server processes (a cluster), or
    /// [`ports::SingleProcess`].
    pub send_order: Arc<dyn SendOrder>,
}

/// The application: every use case, grouped by area. Cheap to clone.
#[derive(Clone)]
pub struct App {
    /// Registration, login, token checks and the user list.
    pub auth: auth::AuthService,
    /// Chats and membership.
    pub chats: chats::ChatService,
    /// Sending and reading messages.
    pub messages: messages::MessageService,
}

impl App {
    /// Builds the use cases over `ports`.
    pub fn new(ports: Ports, password_policy: PasswordPolicy) -> Self {
        Self {
            auth: auth::AuthService::new(
                ports.users.clone(),
                ports.hasher,
                ports.tokens,
                password_policy,
            ),
            chats: chats::ChatService::new(ports.chats.clone(), ports.users, ports.rooms.clone()),
            messages: messages::MessageService::new(
                ports.chats,
                ports.messages,
                ports.message_queue,
                ports.rooms,
                ports.send_order,
            ),
        }
    }
}

#[cfg(test)]
mod test_support;
