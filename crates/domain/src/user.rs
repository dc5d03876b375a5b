//! Users: the validated username and password, and the user entity.

use std::fmt;

use time::OffsetDateTime;

use crate::error::InvalidInput;
use crate::ids::UserId;

/// A username: 3–64 characters, no whitespace or control characters. Stored and echoed
/// as given; uniqueness ignores case: stores compare [`Username::folded`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Username(String);

impl Username {
    /// Shortest accepted username, in characters.
    pub const MIN_CHARS: usize = 3;
    /// Longest accepted username, in characters.
    pub const MAX_CHARS: usize = 64;

    /// Validates a username.
    ///
    /// # Errors
    /// [`InvalidInput`] on field `username` when a rule is broken.
    pub fn parse(raw: impl Into<String>) -> Result<Self, InvalidInput> {
        let raw = raw.into();
        let chars = raw.chars().count();
        if !(Self::MIN_CHARS..=Self::MAX_CHARS).contains(&chars) {
            return Err(InvalidInput::new(
                "username",
                "must be 3 to 64 characters long",
            ));
        }
        if raw.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(InvalidInput::new(
                "username",
                "must not contain whitespace or control characters",
            ));
        }
        Ok(Self(raw))
    }

    /// The username as given at registration.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The key under which the username is unique and by which login finds it: the
    /// username in Unicode lowercase (`str::to_lowercase`), so that `Émile` and `émile`
    /// are one user. Every store keeps and compares this key rather than folding case
    /// itself, since databases disagree (SQLite's `lower()` folds only ASCII).
    pub fn folded(&self) -> String {
        self.0.to_lowercase()
    }
}

impl fmt::Display for Username {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// How long a new password must be. The minimum is configurable; the maximum bounds
/// the cost of hashing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PasswordPolicy {
    min_chars: usize,
}

impl PasswordPolicy {
    /// Longest accepted password, in characters.
    pub const MAX_CHARS: usize = 1024;
    /// The contract's default minimum.
    pub const DEFAULT_MIN_CHARS: usize = 8;

    /// A policy with the given minimum length.
    ///
    /// # Errors
    /// [`InvalidInput`] when `min_chars` is 0 or above [`Self::MAX_CHARS`].
    pub fn with_min_chars(min_chars: usize) -> Result<Self, InvalidInput> {
        if (1..=Self::MAX_CHARS).contains(&min_chars) {
            Ok(Self { min_chars })
        } else {
            Err(InvalidInput::new(
                "PASSWORD_MIN_LENGTH",
                "must be between 1 and 1024",
            ))
        }
    }

    /// The shortest accepted password, in characters.
    pub fn min_chars(&self) -> usize {
        self.min_chars
    }
}

impl Default for PasswordPolicy {
    fn default() -> Self {
        Self {
            min_chars: Self::DEFAULT_MIN_CHARS,
        }
    }
}

/// A plain-text password on its way to the hasher. Its `Debug` never shows the text, so
/// it cannot leak into a log line by accident.
#[derive(Clone, PartialEq, Eq)]
pub struct Password(String);

impl Password {
    /// Validates a new password (at registration) against `policy`.
    ///
    /// # Errors
    /// [`InvalidInput`] on field `password` when it is too short or too long.
    pub fn parse_new(raw: impl Into<String>, policy: PasswordPolicy) -> Result<Self, InvalidInput> {
        let raw = raw.into();
        let chars = raw.chars().count();
        if chars < policy.min_chars || chars > PasswordPolicy::MAX_CHARS {
            return Err(InvalidInput::new(
                "password",
                format!(
                    "must be {} to {} characters long",
                    policy.min_chars,
                    PasswordPolicy::MAX_CHARS
                ),
            ));
        }
        Ok(Self(raw))
    }

    /// Accepts a password offered at login. The minimum may have changed since the
    /// account was made, so only the maximum (which bounds hashing cost) applies.
    ///
    /// # Errors
    /// [`InvalidInput`] when it is empty or longer than [`PasswordPolicy::MAX_CHARS`].
    pub fn parse_offered(raw: impl Into<String>) -> Result<Self, InvalidInput> {
        let raw = raw.into();
        if raw.is_empty() || raw.chars().count() > PasswordPolicy::MAX_CHARS {
            return Err(InvalidInput::new("password", "is not a possible password"));
        }
        Ok(Self(raw))
    }

    /// The plain text, for the hasher only.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(<redacted>)")
    }
}

/// A password hash in PHC string format, as produced by the password hasher port.
#[derive(Clone, PartialEq, Eq)]
pub struct PasswordHash(String);

impl PasswordHash {
    /// Wraps a PHC string produced by a hasher or read from storage.
    pub fn new(phc: impl Into<String>) -> Self {
        Self(phc.into())
    }

    /// The PHC string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for PasswordHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PasswordHash(<redacted>)")
    }
}

/// A registered user, as clients may see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// Server-generated id.
    pub id: UserId,
    /// The username as given at registration.
    pub username: Username,
    /// When the user registered.
    pub created_at: OffsetDateTime,
}

/// A user together with the stored password hash; only the login use case sees this.
#[derive(Debug, Clone)]
pub struct UserCredentials {
    /// The user.
    pub user: User,
    /// Their stored password hash.
    pub password_hash: PasswordHash,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn username_accepts_3_to_64_characters_counting_unicode_scalars() {
        assert!(Username::parse("abc").is_ok());
        assert!(Username::parse("ab").is_err());
        assert!(Username::parse("é".repeat(64)).is_ok());
        assert!(Username::parse("é".repeat(65)).is_err());
    }

    #[test]
    fn username_rejects_whitespace_and_control_characters() {
        assert!(Username::parse("al ice").is_err());
        assert!(Username::parse("al\tice").is_err());
        assert!(Username::parse("al\u{7}ice").is_err());
        assert!(Username::parse("al\u{a0}ice").is_err());
    }

    #[test]
    fn username_is_kept_as_given() {
        assert_eq!(Username::parse("AlIcE").unwrap().as_str(), "AlIcE");
    }

    #[test]
    fn folding_lowercases_beyond_ascii() {
        let folded = |raw: &str| Username::parse(raw).unwrap().folded();
        assert_eq!(folded("AlIcE"), "alice");
        assert_eq!(folded("Émile"), "émile");
        assert_eq!(folded("ÉMILE"), folded("émile"));
        assert_eq!(folded("ΟΔΥΣΣΕΥΣ"), "οδυσσευς");
        // Different letters stay different: folding is not accent stripping.
        assert_ne!(folded("émile"), folded("emile"));
    }

    #[test]
    fn new_password_follows_the_policy() {
        let policy = PasswordPolicy::default();
        assert!(Password::parse_new("1234567", policy).is_err());
        assert!(Password::parse_new("12345678", policy).is_ok());
        assert!(Password::parse_new("x".repeat(1024), policy).is_ok());
        assert!(Password::parse_new("x".repeat(1025), policy).is_err());
        let lax = PasswordPolicy::with_min_chars(1).unwrap();
        assert!(Password::parse_new("x", lax).is_ok());
        assert!(PasswordPolicy::with_min_chars(0).is_err());
    }

    #[test]
    fn offered_password_ignores_the_minimum_but_not_the_maximum() {
        assert!(Password::parse_offered("short").is_ok());
        assert!(Password::parse_offered("").is_err());
        assert!(Password::parse_offered("x".repeat(1025)).is_err());
    }

    #[test]
    fn secrets_never_show_in_debug_output() {
        let pw = Password::parse_offered("hunter22").unwrap();
        assert!(!format!("{pw:?}").contains("hunter22"));
        let hash = PasswordHash::new("$argon2id$secret");
        assert!(!format!("{hash:?}").contains("secret"));
    }
}
