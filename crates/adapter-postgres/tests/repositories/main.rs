//! Repository tests against a real PostgreSQL server: each test gets a fresh, migrated
//! database (see `support`), so no test depends on what another left behind.
//!
//! The behaviour every store shares is the storage contract (`storage-contract`), run
//! here once per case; `store` holds what only PostgreSQL has (URLs, an unreachable
//! server).
//!
//! The server is `DATABASE_URL` (default `postgres://postgres@127.0.0.1:5432/postgres`);
//! its user must be allowed to create and drop databases.
#![allow(clippy::unwrap_used)]

mod store;
mod support;

storage_contract::contract_tests!(crate::support::with_db);
