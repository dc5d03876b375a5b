//! What a move found that our rules do not allow as it is, row by row, and the rule it
//! applied. Nothing is dropped silently: every problem is reported, in a dry run and in
//! the real one.

use std::fmt;

use time::OffsetDateTime;
use uuid::Uuid;

/// A row of the source.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Row {
    /// A user, by id.
    User(Uuid),
    /// A chat, by id.
    Chat(Uuid),
    /// A message, by id.
    Message(Uuid),
}

impl fmt::Display for Row {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::User(id) => write!(f, "user {id}"),
            Self::Chat(id) => write!(f, "chat {id}"),
            Self::Message(id) => write!(f, "message {id}"),
        }
    }
}

/// One row that breaks one of our rules, and what the move does about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The source row.
    pub row: Row,
    /// What is wrong and what is done.
    pub kind: ProblemKind,
}

/// The rules the old API was looser about, each with the rule the move applies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProblemKind {
    /// The username equals an older user's but for case; ours are unique without
    /// regard to case. The user is kept under a new name.
    UsernameCaseTwin {
        /// The username as the source has it.
        username: String,
        /// The older user holding it.
        twin: Uuid,
        /// The name the user is stored under.
        renamed: String,
    },
    /// The username breaks our username rule (length, whitespace, control characters).
    /// The user is kept under a name made from it.
    UsernameInvalid {
        /// The username as the source has it.
        username: String,
        /// The rule it breaks.
        why: String,
        /// The name the user is stored under.
        renamed: String,
    },
    /// Another user of the target store (not from this source) holds the username.
    UsernameTaken {
        /// The username as the move would have stored it.
        username: String,
        /// The name the user is stored under.
        renamed: String,
    },
    /// The password hash is not an argon2 PHC string, so no login can match it. It is
    /// stored as it is (nothing is lost); the user cannot log in until it is replaced.
    PasswordHashNotArgon2,
    /// The chat name has spaces around it; ours are stored trimmed.
    ChatNameTrimmed {
        /// The name as the source has it.
        name: String,
    },
    /// The chat name is blank; ours may not be.
    ChatNameBlank {
        /// The name as the source has it.
        name: String,
        /// The name the chat is stored under.
        renamed: String,
    },
    /// The chat name is longer than ours may be. The only rule that loses text: it
    /// needs the operator's consent (`--accept-lossy`).
    ChatNameTooLong {
        /// The name as the source has it.
        name: String,
        /// The name the chat is stored under.
        renamed: String,
    },
    /// The chat's owner has no membership row (rows written by older versions); ours
    /// is always its first member.
    OwnerNotMember {
        /// The owner.
        owner: Uuid,
    },
    /// The content is empty or only whitespace; ours may not be.
    ContentBlank {
        /// The text the message is stored with.
        replaced: String,
    },
    /// The content is longer than ours may be: it is stored as several consecutive
    /// messages, with nothing cut.
    ContentTooLong {
        /// Its length in characters.
        chars: usize,
        /// The messages it is stored as: the first keeps the id.
        parts: Vec<Uuid>,
        /// Parts that were only whitespace, left out (nothing visible is lost).
        blank_parts_left_out: usize,
    },
    /// The message shares its chat and timestamp with the one before it, and the old
    /// database keeps no other order: it is stored after it, ordered by id.
    SharedTimestamp {
        /// The message it is stored after.
        after: Uuid,
        /// The timestamp they share.
        at: OffsetDateTime,
    },
}

impl ProblemKind {
    /// Whether the rule applied loses text a user wrote; such a move needs the
    /// operator's consent.
    pub fn is_lossy(&self) -> bool {
        matches!(self, Self::ChatNameTooLong { .. })
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: ", self.row)?;
        match &self.kind {
            ProblemKind::UsernameCaseTwin {
                username,
                twin,
                renamed,
            } => write!(
                f,
                "username {username:?} differs only in case from that of the older user {twin}; stored as {renamed:?}"
            ),
            ProblemKind::UsernameInvalid {
                username,
                why,
                renamed,
            } => write!(f, "username {username:?} {why}; stored as {renamed:?}"),
            ProblemKind::UsernameTaken { username, renamed } => write!(
                f,
                "username {username:?} is held by another user of the target store; stored as {renamed:?}"
            ),
            ProblemKind::PasswordHashNotArgon2 => write!(
                f,
                "password hash is not an argon2 PHC string; stored as it is, but this user cannot log in until it is replaced"
            ),
            ProblemKind::ChatNameTrimmed { name } => {
                write!(f, "name {name:?} has spaces around it; stored trimmed")
            }
            ProblemKind::ChatNameBlank { name, renamed } => {
                write!(f, "name {name:?} is blank; stored as {renamed:?}")
            }
            ProblemKind::ChatNameTooLong { name, renamed } => write!(
                f,
                "name {name:?} is over {} characters; stored cut, as {renamed:?} (loses text: needs --accept-lossy)",
                domain::ChatName::MAX_CHARS
            ),
            ProblemKind::OwnerNotMember { owner } => write!(
                f,
                "its owner {owner} is not a member; added as its first member, joined when the chat was made"
            ),
            ProblemKind::ContentBlank { replaced } => {
                write!(f, "content is blank; stored as {replaced:?}")
            }
            ProblemKind::ContentTooLong {
                chars,
                parts,
                blank_parts_left_out,
            } => {
                let ids: Vec<String> = parts.iter().map(Uuid::to_string).collect();
                write!(
                    f,
                    "content is {chars} characters, over {}; stored as {} consecutive messages {}",
                    domain::MessageContent::MAX_CHARS,
                    parts.len(),
                    ids.join(", ")
                )?;
                if *blank_parts_left_out > 0 {
                    write!(
                        f,
                        " ({blank_parts_left_out} part(s) of only whitespace left out)"
                    )?;
                }
                Ok(())
            }
            ProblemKind::SharedTimestamp { after, at } => write!(
                f,
                "shares its timestamp {at} with message {after} of the same chat; stored after it (ordered by id)"
            ),
        }
    }
}
