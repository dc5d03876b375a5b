//! Repository tests against real SQLite database files: each test gets a fresh, migrated
//! database in a temporary directory of its own (see `support`), removed afterwards.
//!
//! The behaviour every store shares is the storage contract (`storage-contract`), run
//! here once per case; `store` holds what only SQLite has (files, paths, the single
//! writer).
#![allow(clippy::unwrap_used)]

mod store;
mod support;

storage_contract::contract_tests!(crate::support::with_db);
