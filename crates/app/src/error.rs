//! The application's one error type. Adapters map it to a status code or a socket
//! `exception` in exactly one place each.

use std::error::Error as StdError;

use domain::ports::{HashError, TokenError};
use domain::{InvalidInput, StoreError, UserId};

/// A user id in a request that names no user, with its position in the request's list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownMember {
    /// Index in the list as the client sent it.
    pub index: usize,
    /// The id that names no user.
    pub id: UserId,
}

/// Why a use case failed.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// The input broke a validation rule (HTTP 400).
    #[error(transparent)]
    Invalid(#[from] InvalidInput),
    /// Some listed members name no user (HTTP 400, naming them).
    #[error("members must be existing users")]
    UnknownUsers(Vec<UnknownMember>),
    /// The username is already registered, without regard to case (HTTP 409).
    #[error("username is already taken")]
    UsernameTaken,
    /// Login failed; deliberately says nothing of why (HTTP 401).
    #[error("invalid username or password")]
    InvalidCredentials,
    /// No valid token, or its user no longer exists (HTTP 401).
    #[error("a valid access token is required")]
    Unauthenticated,
    /// No chat has this id (HTTP 404).
    #[error("chat not found")]
    ChatNotFound,
    /// The caller is not a member of the chat, or of one of the chats named (HTTP 403).
    #[error("you are not a member of this chat")]
    NotMember,
    /// Only the chat's owner may do this (HTTP 403).
    #[error("only the chat's owner may do this")]
    NotOwner,
    /// Something on our side failed; the source is logged, never shown (HTTP 500).
    #[error("internal error")]
    Internal(#[source] Box<dyn StdError + Send + Sync>),
    /// The database cannot be reached right now; retrying later may succeed. The
    /// source is logged, never shown (HTTP 503 with `Retry-After`).
    #[error("service unavailable")]
    Unavailable(#[source] Box<dyn StdError + Send + Sync>),
}

impl AppError {
    /// Wraps an unexpected failure.
    pub fn internal(source: impl StdError + Send + Sync + 'static) -> Self {
        Self::Internal(Box::new(source))
    }
}

impl From<StoreError> for AppError {
    /// The mapping that holds wherever a use case does not give a store error a more
    /// specific meaning.
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::UsernameTaken => Self::UsernameTaken,
            StoreError::ChatGone => Self::ChatNotFound,
            StoreError::NotMember => Self::NotMember,
            StoreError::UnknownUser => Self::UnknownUsers(Vec::new()),
            StoreError::UnknownCursor => {
                Self::Invalid(InvalidInput::new("cursor", "names no item of this listing"))
            }
            StoreError::Unavailable(source) => Self::Internal(source),
            StoreError::Unreachable(source) => Self::Unavailable(source),
        }
    }
}

impl From<HashError> for AppError {
    fn from(err: HashError) -> Self {
        Self::internal(err)
    }
}

impl From<TokenError> for AppError {
    fn from(err: TokenError) -> Self {
        match err {
            TokenError::Invalid => Self::Unauthenticated,
            signing @ TokenError::Signing(_) => Self::internal(signing),
        }
    }
}
