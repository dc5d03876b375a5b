//! The harness, one module per reason to change: [`server`] starts the real `server`
//! binary (on a port it picks, against a fresh store: PostgreSQL, or with
//! `E2E_STORE=sqlite` the embedded SQLite default) and stops it; [`store`] arranges rows
//! behind the API's back; [`api`] talks to the server as an HTTP client would;
//! [`assertions`] holds the shape assertions every test shares. The sockets' client is
//! `crate::sockets`; scratch databases, the database URL and reading the bound port come from
//! `test-support`.

mod api;
mod assertions;
mod server;
mod store;

pub use api::{PASSWORD, history_ids, one_chat};
pub use assertions::*;
pub use server::TestServer;
