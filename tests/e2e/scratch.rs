//! Databases a test makes beside its server's: a fresh PostgreSQL database or a fresh
//! SQLite file in a temporary directory, removed when dropped (also when the test fails).

use test_support::StoreKind;

/// A database of its own, removed on drop.
pub struct Scratch(test_support::database::Scratch);

impl Scratch {
    async fn create(kind: StoreKind) -> Self {
        let scratch = test_support::database::Scratch::create(kind, "e2e_scratch")
            .await
            .unwrap_or_else(|e| panic!("cannot make a scratch database: {e:#}"));
        Self(scratch)
    }

    /// A fresh, empty PostgreSQL database.
    pub async fn postgres() -> Self {
        Self::create(StoreKind::Postgres).await
    }

    /// A place for a SQLite database file, which the server creates on first use.
    pub async fn sqlite() -> Self {
        Self::create(StoreKind::Sqlite).await
    }

    /// A store of the other kind than `url`'s.
    pub async fn other_than(url: &str) -> Self {
        if url.starts_with("sqlite:") {
            Self::postgres().await
        } else {
            Self::sqlite().await
        }
    }

    /// A fresh store of the same kind as `url`'s.
    pub async fn same_as(url: &str) -> Self {
        if url.starts_with("sqlite:") {
            Self::sqlite().await
        } else {
            Self::postgres().await
        }
    }

    /// The URL a server or a move is given.
    pub fn url(&self) -> String {
        self.0.url()
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if let Err(e) = self.0.destroy_blocking() {
            eprintln!("e2e: could not drop a scratch database: {e:#}");
        }
    }
}
