//! The store the server runs on, chosen by the configuration: PostgreSQL or SQLite
//! behind the same repository ports.
//!
//! - `DATABASE_URL` unset (or empty): the embedded default, a SQLite file
//!   `messenger.db` in `DATA_DIR` (`./data`), created on first start and kept across
//!   restarts;
//! - `sqlite://…` (or `sqlite:…`): SQLite, at that file;
//! - `postgres://…` or `postgresql://…`: PostgreSQL;
//! - anything else: a one-line error naming the accepted forms.

use std::path::Path;
use std::sync::Arc;

use adapter_postgres::PostgresStore;
use adapter_sqlite::SqliteStore;
use anyhow::Context;
use app::ports::{MessageQueue, SendOrder};
use domain::ports::{ChatRepository, MessageRepository, UserRepository};

use crate::config::{self, Config};

/// The embedded database's file name inside the data directory.
pub const DEFAULT_DATABASE_FILE: &str = "messenger.db";

/// An open store, whichever the configuration chose. Cheap to clone. (No `Debug`: a
/// PostgreSQL pool's options hold the password.)
#[derive(Clone)]
pub enum Store {
    /// A PostgreSQL database.
    Postgres(PostgresStore),
    /// A SQLite database file (the embedded default, or an explicit `sqlite:` URL).
    Sqlite(SqliteStore),
}

/// What `DATABASE_URL` and `DATA_DIR` select, before anything is opened.
#[derive(PartialEq, Eq)]
enum Selection<'a> {
    /// A `postgres://` or `postgresql://` URL (which may hold a password: never log it
    /// unredacted).
    Postgres(&'a str),
    /// A `sqlite:` URL.
    SqliteUrl(&'a str),
    /// No `DATABASE_URL`: the embedded database, this file in the data directory.
    Embedded(String),
}

/// Reads the configuration's choice of store.
fn select(config: &Config) -> anyhow::Result<Selection<'_>> {
    let url = config
        .database_url
        .as_deref()
        .map(str::trim)
        .filter(|url| !url.is_empty());
    match url {
        None => {
            let path = config.data_dir.join(DEFAULT_DATABASE_FILE);
            let path = path.to_str().with_context(|| {
                format!(
                    "DATA_DIR must be a UTF-8 path, not {}",
                    config.data_dir.display()
                )
            })?;
            Ok(Selection::Embedded(path.to_owned()))
        }
        Some(url) if url.starts_with("sqlite:") => Ok(Selection::SqliteUrl(url)),
        Some(url) if url.starts_with("postgres://") || url.starts_with("postgresql://") => {
            Ok(Selection::Postgres(url))
        }
        Some(url) => {
            // Name the scheme only: the rest may hold a password.
            let scheme = url.split_once("://").map(|(scheme, _)| scheme).filter(|s| {
                s.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c))
            });
            let given = scheme.map_or_else(
                || "it is not a URL".to_owned(),
                |scheme| format!("not {scheme}://"),
            );
            anyhow::bail!(
                "DATABASE_URL must be a postgres://, postgresql:// or sqlite:// URL ({given}); leave it unset to use the embedded database in DATA_DIR"
            )
        }
    }
}

impl Store {
    /// Opens (and migrates) the store the configuration selects, and logs which one it
    /// is and where.
    ///
    /// # Errors
    /// When `DATABASE_URL` has an unknown scheme, or the database cannot be opened,
    /// reached or migrated; each error is one readable sentence, without passwords.
    pub async fn open(config: &Config) -> anyhow::Result<Self> {
        match select(config)? {
            Selection::Postgres(url) => {
                let store = PostgresStore::connect_with_timeout(url, config.database_timeout)
                    .await
                    .with_context(|| {
                        format!("cannot start on the database at {}", config::redacted(url))
                    })?;
                tracing::info!(database = %config::redacted(url), "using PostgreSQL");
                Ok(Self::Postgres(store))
            }
            Selection::SqliteUrl(url) => {
                let store = SqliteStore::connect(url)
                    .await
                    .with_context(|| format!("cannot start on the SQLite database {url}"))?;
                tracing::info!(path = %shown(store.path()), "using SQLite");
                Ok(Self::Sqlite(store))
            }
            Selection::Embedded(path) => {
                let store = SqliteStore::connect(&path)
                    .await
                    .with_context(|| format!("cannot start on the embedded database {path}"))?;
                tracing::info!(
                    path = %shown(store.path()),
                    "using SQLite, the embedded default database (set DATABASE_URL to use another)"
                );
                Ok(Self::Sqlite(store))
            }
        }
    }

    /// The user repository.
    pub fn users(&self) -> Arc<dyn UserRepository> {
        match self {
            Self::Postgres(store) => store.users(),
            Self::Sqlite(store) => store.users(),
        }
    }

    /// The chat repository.
    pub fn chats(&self) -> Arc<dyn ChatRepository> {
        match self {
            Self::Postgres(store) => store.chats(),
            Self::Sqlite(store) => store.chats(),
        }
    }

    /// The message repository.
    pub fn messages(&self) -> Arc<dyn MessageRepository> {
        match self {
            Self::Postgres(store) => store.messages(),
            Self::Sqlite(store) => store.messages(),
        }
    }

    /// New messages, queued for the store's writer.
    pub fn message_queue(&self) -> Arc<dyn MessageQueue> {
        match self {
            Self::Postgres(store) => store.message_queue(),
            Self::Sqlite(store) => store.message_queue(),
        }
    }

    /// The store as the target of a bulk move.
    pub fn bulk_sink(&self) -> Arc<dyn import::Sink> {
        match self {
            Self::Postgres(store) => store.bulk_sink(),
            Self::Sqlite(store) => store.bulk_sink(),
        }
    }

    /// The store as the source of a bulk move.
    pub fn bulk_source(&self) -> Arc<dyn import::Source> {
        match self {
            Self::Postgres(store) => store.bulk_source(),
            Self::Sqlite(store) => store.bulk_source(),
        }
    }

    /// The order of senders shared by every node of a cluster on this store.
    ///
    /// # Errors
    /// On SQLite: a cluster shares one database, which an embedded file cannot be.
    pub fn cluster_send_order(&self) -> anyhow::Result<Arc<dyn SendOrder>> {
        match self {
            Self::Postgres(store) => Ok(store.send_order()),
            Self::Sqlite(_) => anyhow::bail!(
                "REDIS_URL is set, but a cluster needs every node on one PostgreSQL database: \
                 set DATABASE_URL to a postgres:// URL, or unset REDIS_URL to run one node on \
                 the embedded database"
            ),
        }
    }

    /// Checks that the database answers (for `/readyz`).
    ///
    /// # Errors
    /// When it does not; the error says which store failed.
    pub async fn ping(&self) -> anyhow::Result<()> {
        match self {
            Self::Postgres(store) => store.ping().await?,
            Self::Sqlite(store) => store.ping().await?,
        }
        Ok(())
    }

    /// Closes every connection, waiting for those in use to be returned.
    pub async fn close(&self) {
        match self {
            Self::Postgres(store) => store.close().await,
            Self::Sqlite(store) => store.close().await,
        }
    }
}

/// A database file as the log shows it: absolute when it can be made so.
fn shown(path: &Path) -> String {
    std::fs::canonicalize(path)
        .unwrap_or_else(|_| path.to_owned())
        .display()
        .to_string()
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;

    fn config(database_url: Option<&str>, data_dir: &str) -> Config {
        let mut config = Config::for_tests("unused");
        config.database_url = database_url.map(str::to_owned);
        config.data_dir = PathBuf::from(data_dir);
        config
    }

    #[test]
    fn no_database_url_selects_the_embedded_file_in_the_data_directory() {
        for unset in [None, Some(""), Some("  ")] {
            let config = config(unset, "/var/lib/messenger");
            assert!(
                select(&config).unwrap()
                    == Selection::Embedded("/var/lib/messenger/messenger.db".to_owned())
            );
        }
    }

    #[test]
    fn the_scheme_selects_the_store() {
        let url = "sqlite://elsewhere/m.db";
        assert!(select(&config(Some(url), "data")).unwrap() == Selection::SqliteUrl(url));
        for url in ["postgres://u:pw@h/db", "postgresql://h/db"] {
            assert!(select(&config(Some(url), "data")).unwrap() == Selection::Postgres(url));
        }
    }

    #[test]
    fn an_unknown_scheme_is_one_line_without_the_rest_of_the_url() {
        for (url, named) in [
            ("mysql://root:hunter2@h/db", "not mysql://"),
            ("hunter2", "it is not a URL"),
        ] {
            let Err(err) = select(&config(Some(url), "data")) else {
                panic!("{url} was accepted");
            };
            let message = format!("{err:#}");
            assert!(message.contains(named), "{message}");
            assert!(message.contains("postgres://"), "{message}");
            assert!(!message.contains("hunter2"), "{message}");
            assert!(!message.contains('\n'), "{message}");
        }
    }

    #[tokio::test]
    async fn the_embedded_database_is_created_on_first_start_and_kept() {
        let dir = std::env::temp_dir().join(format!("server-store-{}", uuid::Uuid::new_v4()));
        let config = config(None, dir.join("data").to_str().unwrap());
        let store = Store::open(&config).await.unwrap();
        assert!(matches!(store, Store::Sqlite(_)));
        store.ping().await.unwrap();
        let file = dir.join("data").join(DEFAULT_DATABASE_FILE);
        assert!(file.is_file());
        let alice = store
            .users()
            .create(
                &domain::Username::parse("alice").unwrap(),
                &domain::PasswordHash::new("h"),
            )
            .await
            .unwrap();
        store.close().await;

        let again = Store::open(&config).await.unwrap();
        assert!(again.users().exists(alice.id).await.unwrap());
        again.close().await;
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[tokio::test]
    async fn a_cluster_on_the_embedded_database_is_refused_with_the_way_out() {
        let dir = std::env::temp_dir().join(format!("server-store-{}", uuid::Uuid::new_v4()));
        let mut config = config(None, dir.to_str().unwrap());
        config.redis_url = Some("redis://127.0.0.1:6379".to_owned());
        let store = Store::open(&config).await.unwrap();
        let err = crate::cluster::Topology::from_config(&config, &store)
            .err()
            .expect("a cluster on SQLite must be refused")
            .to_string();
        assert!(
            err.contains("PostgreSQL") && err.contains("unset REDIS_URL"),
            "{err}"
        );
        store.close().await;
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
