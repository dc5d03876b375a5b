//! Errors the domain itself can produce: invalid input, and what a storage port may report.

use std::error::Error as StdError;
use std::fmt;

/// A value from outside failed its validation rule. `field` names where it came from
/// (`username`, `members[2]`), `message` says what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidInput {
    field: String,
    message: String,
}

impl InvalidInput {
    /// Builds the error for `field`.
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }

    /// Refuses text holding the NUL character: no store can keep it (PostgreSQL text
    /// cannot hold it at all), so it is the client's mistake, said at the edge.
    ///
    /// # Errors
    /// When `text` contains `\0`.
    pub fn reject_nul(field: &str, text: &str) -> Result<(), Self> {
        if text.contains('\0') {
            Err(Self::new(field, "must not contain the NUL character"))
        } else {
            Ok(())
        }
    }

    /// Where the invalid value came from.
    pub fn field(&self) -> &str {
        &self.field
    }

    /// What is wrong with it.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for InvalidInput {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.field.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{} {}", self.field, self.message)
        }
    }
}

impl StdError for InvalidInput {}

/// What a repository port may fail with. The business variants are named in the
/// `# Errors` section of each port method that may return them; anything else is
/// [`StoreError::Unavailable`].
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Another user already holds this username, compared without regard to case.
    #[error("username is taken")]
    UsernameTaken,
    /// A referenced user does not exist (it vanished between the check and the write).
    #[error("a referenced user does not exist")]
    UnknownUser,
    /// The chat was deleted while the operation ran.
    #[error("the chat no longer exists")]
    ChatGone,
    /// The user is not (or no longer) a member of the chat the operation needs them in.
    #[error("the user is not a member of the chat")]
    NotMember,
    /// A paging cursor names no row of the listing it pages through.
    #[error("the cursor names no row of this listing")]
    UnknownCursor,
    /// The store failed; the source says why. Never shown to clients.
    #[error("storage failed")]
    Unavailable(#[source] Box<dyn StdError + Send + Sync>),
    /// The store could not be reached in time: no connection within the configured
    /// timeout, a connection lost, the database refusing connections or not answering.
    /// Transient, so worth retrying later; the source says why, never to clients.
    #[error("storage is unreachable")]
    Unreachable(#[source] Box<dyn StdError + Send + Sync>),
}

impl StoreError {
    /// Wraps any adapter failure as [`StoreError::Unavailable`].
    pub fn unavailable(source: impl StdError + Send + Sync + 'static) -> Self {
        Self::Unavailable(Box::new(source))
    }

    /// Wraps a failure to reach the store in time as [`StoreError::Unreachable`].
    pub fn unreachable(source: impl StdError + Send + Sync + 'static) -> Self {
        Self::Unreachable(Box::new(source))
    }
}
