//! End-to-end tests of the wire contract (shared/contract/API.md): the real `server`
//! binary, started on a port it picks itself against a fresh database per test, driven exactly as a
//! client would drive it (REST over HTTP; sockets in `realtime`).
//!
//! `E2E_STORE` picks the store: `postgres` (the default) or `sqlite` (the embedded
//! default database, in a fresh data directory); `cargo xtask test` runs both passes.
//! PostgreSQL: `DATABASE_URL` names a database to create the test databases from
//! (default `postgres://postgres@127.0.0.1:5432/postgres`, trust authentication). Set
//! `TEST_LOG=1` to see the servers' logs.
//!
//! Every status assertion goes through `helpers::assert_json`, `assert_problem` or
//! `assert_no_content`, which name the exact status expected: a client error answered
//! with a 500 fails the test that provoked it.

mod auth;
mod browser;
mod chats;
mod cluster;
mod connections;
mod descriptions;
mod errors;
mod health;
mod helpers;
mod import;
mod members;
mod messages;
mod metrics;
mod migrate_store;
mod postgres_only;
mod protection;
mod realtime;
mod scratch;
mod sockets;
mod tokens;
mod users;
mod web_client;
