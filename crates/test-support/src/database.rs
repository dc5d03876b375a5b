//! Which PostgreSQL server the tests and the benchmark use, and scratch stores: a fresh
//! PostgreSQL database or a fresh SQLite data directory, removed when done.

use std::fmt;
use std::path::{Path, PathBuf};

use anyhow::Context;
use sqlx::{AssertSqlSafe, Connection, PgConnection};
use uuid::Uuid;

/// The PostgreSQL server used when `DATABASE_URL` is not set (trust authentication).
pub const DEFAULT_DATABASE_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// The PostgreSQL database scratch databases are created from: `DATABASE_URL`, or the
/// local server's `postgres`.
pub fn admin_database_url() -> String {
    std::env::var("DATABASE_URL").unwrap_or_else(|_| DEFAULT_DATABASE_URL.to_owned())
}

/// `url` with its database name replaced by `name` (query parameters kept).
pub fn with_database(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, format!("?{query}")),
        None => (url, String::new()),
    };
    let authority = base.find("://").map_or(0, |i| i + 3);
    let path = base[authority..]
        .find('/')
        .map_or(base.len(), |i| authority + i);
    format!("{}/{name}{query}", &base[..path])
}

/// Which database a server stores into.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreKind {
    /// The embedded default: SQLite in `DATA_DIR`.
    Sqlite,
    /// PostgreSQL, a database of its own on the server [`admin_database_url`] names.
    Postgres,
}

impl fmt::Display for StoreKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Sqlite => "sqlite",
            Self::Postgres => "postgres",
        })
    }
}

/// A store made for one test or run. [`Scratch::destroy`] (or, from a `Drop`,
/// [`Scratch::destroy_blocking`]) removes it; nothing removes it by itself, so that a
/// scratch store can be shared (several server processes on one database).
#[derive(Debug, Clone)]
pub enum Scratch {
    /// A fresh PostgreSQL database.
    Postgres {
        /// The administrative database it was created from.
        admin_url: String,
        /// Its URL.
        url: String,
        /// Its name.
        name: String,
    },
    /// A fresh directory; the server makes `messenger.db` in it on first use.
    Sqlite {
        /// The directory.
        dir: PathBuf,
    },
}

impl Scratch {
    /// An empty store of `kind`, named `<prefix>_<random>` (PostgreSQL) or
    /// `messenger-<prefix>-<random>` in the temporary directory (SQLite).
    ///
    /// # Errors
    /// When PostgreSQL cannot be reached or refuses the database, or the directory
    /// cannot be made; the message names `DATABASE_URL`.
    pub async fn create(kind: StoreKind, prefix: &str) -> anyhow::Result<Self> {
        let tag = Uuid::new_v4().simple();
        match kind {
            StoreKind::Sqlite => {
                let dir = std::env::temp_dir().join(format!("messenger-{prefix}-{tag}"));
                std::fs::create_dir_all(&dir)
                    .with_context(|| format!("creating the data directory {}", dir.display()))?;
                Ok(Self::Sqlite { dir })
            }
            StoreKind::Postgres => {
                let admin_url = admin_database_url();
                let name = format!("{prefix}_{tag}");
                let mut admin = PgConnection::connect(&admin_url).await.with_context(|| {
                    format!("cannot connect to PostgreSQL at {admin_url} (set DATABASE_URL)")
                })?;
                // A generated name, so building the statement from a string is safe.
                sqlx::raw_sql(AssertSqlSafe(format!(r#"create database "{name}""#)))
                    .execute(&mut admin)
                    .await
                    .with_context(|| format!("creating the database {name}"))?;
                admin.close().await.ok();
                Ok(Self::Postgres {
                    url: with_database(&admin_url, &name),
                    admin_url,
                    name,
                })
            }
        }
    }

    /// Which kind of store this is.
    pub fn kind(&self) -> StoreKind {
        match self {
            Self::Postgres { .. } => StoreKind::Postgres,
            Self::Sqlite { .. } => StoreKind::Sqlite,
        }
    }

    /// The URL `DATABASE_URL` names it by (for SQLite, its `messenger.db`).
    pub fn url(&self) -> String {
        match self {
            Self::Postgres { url, .. } => url.clone(),
            Self::Sqlite { dir } => format!("sqlite://{}", dir.join("messenger.db").display()),
        }
    }

    /// The SQLite data directory (`DATA_DIR`); `None` for PostgreSQL.
    pub fn data_dir(&self) -> Option<&Path> {
        match self {
            Self::Sqlite { dir } => Some(dir),
            Self::Postgres { .. } => None,
        }
    }

    /// Removes the store and everything in it, even while servers still use it.
    ///
    /// # Errors
    /// When the directory cannot be removed or PostgreSQL refuses the drop.
    pub async fn destroy(&self) -> anyhow::Result<()> {
        match self {
            Self::Sqlite { dir } => {
                std::fs::remove_dir_all(dir).with_context(|| format!("removing {}", dir.display()))
            }
            Self::Postgres {
                admin_url, name, ..
            } => {
                let mut admin = PgConnection::connect(admin_url).await?;
                sqlx::raw_sql(AssertSqlSafe(format!(
                    r#"drop database if exists "{name}" with (force)"#
                )))
                .execute(&mut admin)
                .await
                .with_context(|| format!("dropping the database {name}"))?;
                admin.close().await.ok();
                Ok(())
            }
        }
    }

    /// [`Scratch::destroy`] for a `Drop`, which runs inside a runtime that cannot be
    /// blocked on: the work is done on a thread with a small runtime of its own.
    ///
    /// # Errors
    /// As [`Scratch::destroy`], or when that thread fails.
    pub fn destroy_blocking(&self) -> anyhow::Result<()> {
        let scratch = self.clone();
        std::thread::spawn(move || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?
                .block_on(scratch.destroy())
        })
        .join()
        .map_err(|_| anyhow::anyhow!("removing a scratch store panicked"))?
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_database_name_is_replaced() {
        assert_eq!(
            with_database("postgres://postgres@127.0.0.1:5432/postgres", "t1"),
            "postgres://postgres@127.0.0.1:5432/t1"
        );
        assert_eq!(
            with_database("postgres://u:p@h/db?sslmode=disable", "t1"),
            "postgres://u:p@h/t1?sslmode=disable"
        );
        assert_eq!(
            with_database("postgres://h:5432", "t1"),
            "postgres://h:5432/t1"
        );
        assert_eq!(with_database("postgres://u@h", "b"), "postgres://u@h/b");
    }
}
