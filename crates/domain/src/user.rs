//! Users: the validated username and password, and the user entity.

use std::fmt;

use time::OffsetDateTime;
use unicode_normalization::UnicodeNormalization;

use crate::error::InvalidInput;
use crate::ids::UserId;

/// A username: 3–254 characters (an e-mail address fits), stored and echoed as given.
///
/// Two names are one user when their [`Username::folded`] keys are equal (case and
/// Unicode compatibility forms ignored: `Alice`, `alice`, `Ａlice`, and `é` composed or
/// decomposed), and a new name is refused as taken when its [`Username::skeleton`]
/// equals an existing user's (look-alikes across scripts: `vіctim` with a Cyrillic `і`
/// is `victim`). New names may not hold characters that cannot be seen (format
/// characters, default-ignorable code points, blank-looking letters), nor start with a
/// combining mark. See `docs/API.md`, "Usernames".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Username(String);

impl Username {
    /// Shortest accepted username, in characters (Unicode scalar values).
    pub const MIN_CHARS: usize = 3;
    /// Longest accepted username, in characters (Unicode scalar values).
    pub const MAX_CHARS: usize = 254;
    /// Longest comparison key ([`Self::folded`], [`Self::skeleton`]), in bytes of UTF-8.
    /// Compatibility normalisation can make a key many times longer than its name (one
    /// Arabic ligature becomes 18 letters); the stores index the keys, and PostgreSQL
    /// refuses index entries over about 2,700 bytes.
    pub const MAX_KEY_BYTES: usize = 1024;

    /// Validates a new username, at registration.
    ///
    /// # Errors
    /// [`InvalidInput`] on field `username` when a rule is broken: the length, a
    /// whitespace or control character, an invisible or formatting character, a first
    /// character that is a combining mark, or a comparison key that normalisation made
    /// longer than [`Self::MAX_KEY_BYTES`].
    pub fn parse(raw: impl Into<String>) -> Result<Self, InvalidInput> {
        let name = Self::parse_existing(raw)?;
        let raw = name.as_str();
        if raw.chars().count() < Self::MIN_CHARS {
            return Err(Self::wrong_length());
        }
        if raw.chars().any(unicode::is_invisible) {
            return Err(InvalidInput::new(
                "username",
                "must not contain invisible or formatting characters \
                 (zero-width or blank characters, direction marks, tags)",
            ));
        }
        if raw.chars().next().is_some_and(unicode::is_mark) {
            return Err(InvalidInput::new(
                "username",
                "must not start with a combining mark",
            ));
        }
        if name.folded().len() > Self::MAX_KEY_BYTES || name.skeleton().len() > Self::MAX_KEY_BYTES
        {
            return Err(InvalidInput::new("username", "is too long once normalised"));
        }
        Ok(name)
    }

    /// Accepts a username that met the rules of its time: one offered at login, or
    /// read back from a store. Names registered before a rule was tightened must keep
    /// working, so only the rules every stored name has always met apply: 1 to
    /// [`Self::MAX_CHARS`] characters, no whitespace or control characters (which also
    /// keeps NUL, which no store can hold, out of queries).
    ///
    /// # Errors
    /// [`InvalidInput`] on field `username` when one of those rules is broken.
    pub fn parse_existing(raw: impl Into<String>) -> Result<Self, InvalidInput> {
        let raw = raw.into();
        if !(1..=Self::MAX_CHARS).contains(&raw.chars().count()) {
            return Err(Self::wrong_length());
        }
        if raw.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(InvalidInput::new(
                "username",
                "must not contain whitespace or control characters",
            ));
        }
        Ok(Self(raw))
    }

    fn wrong_length() -> InvalidInput {
        InvalidInput::new("username", "must be 3 to 254 characters long")
    }

    /// The username as given at registration.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The key under which a username is one user, by which login finds it: the name
    /// in Unicode compatibility form (NFKC), in lowercase, so that `Alice`, `ALICE`,
    /// `Ａlice` (fullwidth) and `Émile` composed or decomposed find one user. Every
    /// store keeps and compares this key rather than folding case itself, since
    /// databases disagree (SQLite's `lower()` folds only ASCII).
    pub fn folded(&self) -> String {
        let lowered = self.0.nfkc().collect::<String>().to_lowercase();
        // Lowercasing can leave a string that is not in NFKC (rarely); normalise again.
        lowered.nfkc().collect()
    }

    /// The key rows registered before usernames were normalised hold: the name in
    /// Unicode lowercase only. Login looks a name up under both keys (see
    /// [`crate::ports::UserRepository::find_credentials`]); for most names they agree.
    pub fn folded_before_normalisation(&self) -> String {
        self.0.to_lowercase()
    }

    /// The confusable skeleton of [`Self::folded`] (Unicode TR 39): two names with one
    /// skeleton look alike (`victim`, `vіctim` with a Cyrillic `і`), so a new
    /// name whose skeleton an existing user holds is refused as taken.
    pub fn skeleton(&self) -> String {
        unicode_security::skeleton(&self.folded()).collect()
    }
}

/// The character classes the username rules use.
mod unicode {
    use unicode_properties::{GeneralCategory, GeneralCategoryGroup, UnicodeGeneralCategory};

    /// Default_Ignorable_Code_Point (DerivedCoreProperties.txt, Unicode 18): code points
    /// a renderer shows as nothing when it does not support them, such as U+200B ZERO
    /// WIDTH SPACE, U+2060 WORD JOINER, U+3164 HANGUL FILLER, variation selectors and
    /// tags.
    const DEFAULT_IGNORABLE: &[(char, char)] = &[
        ('\u{ad}', '\u{ad}'),
        ('\u{34f}', '\u{34f}'),
        ('\u{61c}', '\u{61c}'),
        ('\u{115f}', '\u{1160}'),
        ('\u{17b4}', '\u{17b5}'),
        ('\u{180b}', '\u{180f}'),
        ('\u{200b}', '\u{200f}'),
        ('\u{202a}', '\u{202e}'),
        ('\u{2060}', '\u{206f}'),
        ('\u{3164}', '\u{3164}'),
        ('\u{fe00}', '\u{fe0f}'),
        ('\u{feff}', '\u{feff}'),
        ('\u{ffa0}', '\u{ffa0}'),
        ('\u{fff0}', '\u{fff8}'),
        ('\u{1bca0}', '\u{1bca3}'),
        ('\u{1d173}', '\u{1d17a}'),
        ('\u{e0000}', '\u{e0fff}'),
    ];

    /// Characters that draw as blank although they are neither whitespace nor
    /// default-ignorable.
    const BLANK_LOOKING: &[char] = &[
        '\u{2800}',  // BRAILLE PATTERN BLANK
        '\u{1d159}', // MUSICAL SYMBOL NULL NOTEHEAD
        '\u{fffc}',  // OBJECT REPLACEMENT CHARACTER
    ];

    /// Whether `c` cannot be seen, or changes how its neighbours are shown, or has no
    /// agreed glyph: format characters (Cf: zero-width joiners, direction marks and
    /// overrides, the soft hyphen, tags), default-ignorable code points, blank-looking
    /// characters, private-use and unassigned code points.
    pub(super) fn is_invisible(c: char) -> bool {
        matches!(
            c.general_category(),
            GeneralCategory::Format
                | GeneralCategory::PrivateUse
                | GeneralCategory::Unassigned
                | GeneralCategory::Surrogate
        ) || DEFAULT_IGNORABLE
            .iter()
            .any(|&(first, last)| (first..=last).contains(&c))
            || BLANK_LOOKING.contains(&c)
    }

    /// Whether `c` is a combining mark (Mn, Mc, Me), which draws on the character
    /// before it.
    pub(super) fn is_mark(c: char) -> bool {
        c.general_category_group() == GeneralCategoryGroup::Mark
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
    fn username_accepts_3_to_254_characters_counting_unicode_scalars() {
        assert!(Username::parse("abc").is_ok());
        assert!(Username::parse("ab").is_err());
        assert!(Username::parse("é".repeat(254)).is_ok());
        assert!(Username::parse("é".repeat(255)).is_err());
        let email = format!("{}@example.com", "a".repeat(242));
        assert_eq!(Username::parse(email).unwrap().as_str().len(), 254);
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
        let decomposed = "Cafe\u{301}";
        assert_eq!(Username::parse(decomposed).unwrap().as_str(), decomposed);
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
    fn folding_normalises_compatibility_and_canonical_forms() {
        let folded = |raw: &str| Username::parse(raw).unwrap().folded();
        assert_eq!(folded("\u{ff21}lice"), "alice"); // fullwidth A
        assert_eq!(folded("caf\u{e9}s"), folded("cafe\u{301}s")); // NFC and NFD é
        assert_eq!(folded("\u{fb01}ve"), "five"); // the fi ligature
    }

    /// Every look-alike of `victim` found by the hostile-client probe (issue 13) is
    /// either refused or has `victim`'s skeleton, so it is taken once `victim` is.
    #[test]
    fn every_look_alike_of_a_name_is_refused_or_collides_with_it() {
        let victim = Username::parse("victim").unwrap().skeleton();
        let refused = [
            "victim\u{200b}",           // ZERO WIDTH SPACE
            "victim\u{200d}",           // ZERO WIDTH JOINER
            "victim\u{2060}",           // WORD JOINER
            "victim\u{200e}",           // LEFT-TO-RIGHT MARK
            "victim\u{3164}",           // HANGUL FILLER
            "victim\u{2800}",           // BRAILLE PATTERN BLANK
            "victim\u{e0041}",          // TAG LATIN CAPITAL LETTER A
            "vic\u{ad}tim",             // SOFT HYPHEN inside
            "\u{202e}mitciv",           // RIGHT-TO-LEFT OVERRIDE
            "\u{200b}\u{200b}\u{200b}", // three zero-width spaces
            "\u{301}\u{301}\u{301}",    // combining marks only
            "\u{300}victim",            // starting with a combining mark
            "victim\u{feff}",           // ZERO WIDTH NO-BREAK SPACE
            "victim\u{fe0f}",           // VARIATION SELECTOR-16
            "victim\u{e000}",           // private use
            "victim\u{61c}",            // ARABIC LETTER MARK
        ];
        for name in refused {
            assert!(Username::parse(name).is_err(), "{name:?} was accepted");
        }
        let colliding = [
            "v\u{456}ctim", // CYRILLIC SMALL LETTER BYELORUSSIAN-UKRAINIAN I
            "VICTIM",
            "\u{ff36}ictim",  // FULLWIDTH LATIN CAPITAL LETTER V
            "v\u{131}ctim",   // LATIN SMALL LETTER DOTLESS I
            "vict\u{1d456}m", // MATHEMATICAL ITALIC SMALL I
            "v\u{2170}ctim",  // SMALL ROMAN NUMERAL ONE
        ];
        for name in colliding {
            let parsed = Username::parse(name).unwrap_or_else(|err| panic!("{name:?}: {err}"));
            assert_eq!(parsed.skeleton(), victim, "{name:?}");
        }
        let e_nfc = Username::parse("caf\u{e9}").unwrap();
        let e_nfd = Username::parse("cafe\u{301}").unwrap();
        assert_eq!(e_nfc.folded(), e_nfd.folded());
        assert_eq!(e_nfc.skeleton(), e_nfd.skeleton());
        let full = Username::parse("\u{ff21}bc").unwrap();
        assert_eq!(full.folded(), Username::parse("Abc").unwrap().folded());
    }

    #[test]
    fn names_that_only_look_different_stay_different() {
        let skeleton = |raw: &str| Username::parse(raw).unwrap().skeleton();
        assert_ne!(skeleton("alice"), skeleton("alicia"));
        assert_ne!(skeleton("émile"), skeleton("emile"));
        assert_ne!(skeleton("名前です"), skeleton("名前だ"));
        // Scripts of their own are welcome, mixed too.
        assert!(Username::parse("Иван_Ivanov").is_ok());
        assert!(Username::parse("日本語のなまえ").is_ok());
        assert!(Username::parse("a-b.c@d").is_ok());
        assert!(Username::parse("😀😀😀").is_ok());
    }

    #[test]
    fn a_name_whose_normal_form_explodes_is_refused() {
        // U+FDFA is one character whose compatibility form is 18 letters.
        assert!(Username::parse("\u{fdfa}".repeat(60)).is_err());
        assert!(Username::parse("\u{fdfa}".repeat(3)).is_ok());
    }

    #[test]
    fn an_existing_name_is_accepted_under_the_rules_of_its_time() {
        // Registered before invisible characters were refused: it must still log in.
        let legacy = Username::parse_existing("victim\u{200b}").unwrap();
        assert_eq!(legacy.as_str(), "victim\u{200b}");
        assert!(Username::parse_existing("al ice").is_err());
        assert!(Username::parse_existing("a\0b").is_err());
        assert!(Username::parse_existing("").is_err());
        assert!(Username::parse_existing("x".repeat(255)).is_err());
        assert_eq!(legacy.folded_before_normalisation(), "victim\u{200b}");
        let fullwidth = Username::parse_existing("\u{ff21}lice").unwrap();
        assert_eq!(fullwidth.folded_before_normalisation(), "\u{ff41}lice");
        assert_eq!(fullwidth.folded(), "alice");
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
