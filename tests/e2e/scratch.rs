//! Databases a test makes beside its server's: a fresh PostgreSQL database or a fresh
//! SQLite file in a temporary directory, removed when dropped (also when the test fails).

use std::path::PathBuf;

use sqlx::{AssertSqlSafe, Connection, PgConnection};
use uuid::Uuid;

use crate::helpers::{admin_database_url, with_database};

/// A database of its own, removed on drop.
pub enum Scratch {
    /// A fresh PostgreSQL database.
    Postgres {
        /// Its URL.
        url: String,
        /// Its name.
        name: String,
    },
    /// A SQLite file (not yet made) in a fresh directory.
    Sqlite {
        /// The directory.
        dir: PathBuf,
    },
}

impl Scratch {
    /// A fresh, empty PostgreSQL database.
    pub async fn postgres() -> Self {
        let admin = admin_database_url();
        let name = format!("e2e_scratch_{}", Uuid::new_v4().simple());
        let mut db = PgConnection::connect(&admin)
            .await
            .expect("connecting to PostgreSQL");
        sqlx::raw_sql(AssertSqlSafe(format!(r#"create database "{name}""#)))
            .execute(&mut db)
            .await
            .expect("creating a scratch database");
        db.close().await.ok();
        Self::Postgres {
            url: with_database(&admin, &name),
            name,
        }
    }

    /// A place for a SQLite database file, which the server creates on first use.
    pub fn sqlite() -> Self {
        let dir =
            std::env::temp_dir().join(format!("messenger-scratch-{}", Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).expect("creating a scratch directory");
        Self::Sqlite { dir }
    }

    /// A store of the other kind than `url`'s.
    pub async fn other_than(url: &str) -> Self {
        if url.starts_with("sqlite:") {
            Self::postgres().await
        } else {
            Self::sqlite()
        }
    }

    /// A fresh store of the same kind as `url`'s.
    pub async fn same_as(url: &str) -> Self {
        if url.starts_with("sqlite:") {
            Self::sqlite()
        } else {
            Self::postgres().await
        }
    }

    /// The URL a server or a move is given.
    pub fn url(&self) -> String {
        match self {
            Self::Postgres { url, .. } => url.clone(),
            Self::Sqlite { dir } => format!("sqlite://{}", dir.join("messenger.db").display()),
        }
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        match self {
            Self::Sqlite { dir } => {
                std::fs::remove_dir_all(dir).ok();
            }
            Self::Postgres { name, .. } => {
                let name = name.clone();
                // Drop runs inside the test's runtime: do the async work on a thread.
                let dropped = std::thread::spawn(move || {
                    let runtime = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()?;
                    runtime.block_on(async {
                        let mut admin = PgConnection::connect(&admin_database_url()).await?;
                        sqlx::raw_sql(AssertSqlSafe(format!(
                            r#"drop database if exists "{name}" with (force)"#
                        )))
                        .execute(&mut admin)
                        .await?;
                        admin.close().await?;
                        Ok::<(), Box<dyn std::error::Error + Send + Sync>>(())
                    })
                })
                .join();
                if !matches!(dropped, Ok(Ok(()))) {
                    eprintln!("e2e: could not drop a scratch database");
                }
            }
        }
    }
}
