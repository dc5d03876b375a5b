//! Repository tests against a real PostgreSQL server: each test gets a fresh, migrated
//! database (see `support`), so no test depends on what another left behind.
//!
//! The server is `DATABASE_URL` (default `postgres://postgres@127.0.0.1:5432/postgres`);
//! its user must be allowed to create and drop databases.
#![allow(clippy::unwrap_used)]

mod chats;
mod messages;
mod store;
mod support;
mod users;
