//! Paging parameters: bounded limits and keyset cursors. Out-of-range values are
//! errors, never silently clamped.

use crate::error::InvalidInput;
use crate::ids::{MessageId, UserId};

/// A page size checked against a listing's bounds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limit(u32);

impl Limit {
    /// Validates `requested` against `1..=max`, using `default` when absent. `field`
    /// names the parameter in the error (`limit`, `take`).
    ///
    /// # Errors
    /// [`InvalidInput`] when `requested` is outside `1..=max`.
    pub fn parse(
        requested: Option<i64>,
        default: u32,
        max: u32,
        field: &str,
    ) -> Result<Self, InvalidInput> {
        match requested {
            None => Ok(Self(default)),
            Some(n) if n >= 1 && n <= i64::from(max) => Ok(Self(n as u32)),
            Some(_) => Err(InvalidInput::new(
                field,
                format!("must be between 1 and {max}"),
            )),
        }
    }

    /// The page size.
    pub fn get(self) -> u32 {
        self.0
    }
}

/// One page of the user listing, ordered by registration time then id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UserPage {
    /// At most this many users.
    pub limit: Limit,
    /// Start after this user (the last of the previous page).
    pub after: Option<UserId>,
}

impl UserPage {
    /// Default page size of `GET /users`.
    pub const DEFAULT_LIMIT: u32 = 100;
    /// Largest page size of `GET /users`.
    pub const MAX_LIMIT: u32 = 1000;
}

/// One page of a chat's history, newest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HistoryPage {
    /// At most this many messages.
    pub limit: Limit,
    /// Skip this many messages first (the old offset paging of `messages:get`).
    pub skip: u32,
    /// Only messages stored before this one (keyset paging).
    pub before: Option<MessageId>,
}

impl HistoryPage {
    /// Default page size of history.
    pub const DEFAULT_LIMIT: u32 = 50;
    /// Largest page size of history.
    pub const MAX_LIMIT: u32 = 100;

    /// Parses a client's request for a page: its size (the field `size_field`, named
    /// `limit` over REST and `take` on sockets), an offset and a cursor, checked in
    /// this order.
    ///
    /// # Errors
    /// [`InvalidInput`] on the first field that is out of range or malformed.
    pub fn parse(
        size: Option<i64>,
        size_field: &str,
        skip: Option<i64>,
        before: Option<&str>,
    ) -> Result<Self, InvalidInput> {
        Ok(Self {
            limit: Limit::parse(size, Self::DEFAULT_LIMIT, Self::MAX_LIMIT, size_field)?,
            skip: Self::parse_skip(skip)?,
            before: before
                .map(|raw| MessageId::parse(raw, "before"))
                .transpose()?,
        })
    }

    /// Validates a `skip` offset.
    ///
    /// # Errors
    /// [`InvalidInput`] on field `skip` when it is negative or absurdly large.
    pub fn parse_skip(requested: Option<i64>) -> Result<u32, InvalidInput> {
        match requested {
            None => Ok(0),
            Some(n) => u32::try_from(n).map_err(|_| InvalidInput::new("skip", "must be 0 or more")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limit_defaults_and_rejects_out_of_range_values() {
        assert_eq!(Limit::parse(None, 50, 100, "take").unwrap().get(), 50);
        assert_eq!(Limit::parse(Some(100), 50, 100, "take").unwrap().get(), 100);
        assert!(Limit::parse(Some(0), 50, 100, "take").is_err());
        assert!(Limit::parse(Some(101), 50, 100, "take").is_err());
        assert!(Limit::parse(Some(-1), 50, 100, "take").is_err());
    }

    #[test]
    fn a_page_request_is_checked_size_then_skip_then_cursor() {
        let page = HistoryPage::parse(None, "limit", None, None).unwrap();
        assert_eq!(page.limit.get(), HistoryPage::DEFAULT_LIMIT);
        assert_eq!((page.skip, page.before), (0, None));
        let bad_all = HistoryPage::parse(Some(0), "take", Some(-1), Some("x"));
        assert_eq!(bad_all.unwrap_err().field(), "take");
        let bad_rest = HistoryPage::parse(Some(5), "take", Some(-1), Some("x"));
        assert_eq!(bad_rest.unwrap_err().field(), "skip");
        let bad_cursor = HistoryPage::parse(Some(5), "take", Some(2), Some("x"));
        assert_eq!(bad_cursor.unwrap_err().field(), "before");
    }

    #[test]
    fn skip_must_not_be_negative() {
        assert_eq!(HistoryPage::parse_skip(None).unwrap(), 0);
        assert_eq!(HistoryPage::parse_skip(Some(7)).unwrap(), 7);
        assert!(HistoryPage::parse_skip(Some(-1)).is_err());
    }
}
