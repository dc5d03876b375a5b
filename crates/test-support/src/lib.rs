//! Dev-only helpers shared by everything that drives the server from outside: the
//! end-to-end suite (`tests/e2e`), the benchmark (`bench`) and the PostgreSQL
//! repository tests. Never a dependency of the server itself.
//!
//! - [`database`]: which PostgreSQL server to use, and scratch databases (PostgreSQL or
//!   SQLite) made for one run and removed afterwards.
//! - [`listening`]: starting the server binary on a port of its own choosing (`PORT=0`)
//!   and learning which one it bound.
//! - [`wire`]: the two socket protocols' frames (Socket.IO over a WebSocket, and `/ws`),
//!   parsed without copying, for the suite's client and the benchmark's.

pub mod database;
pub mod listening;
pub mod wire;

pub use database::{StoreKind, admin_database_url, with_database};
