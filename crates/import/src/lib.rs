//! Bulk moves into this server's store, keeping every id and timestamp: from the
//! database of a Nest.js deployment (the API this server replaces), or from one of our
//! stores into the other.
//!
//! The use case ([`run`]) holds the rules: what our validation refuses that the old API
//! allowed, and what is done about each such row ([`Problem`]), the order rows are
//! stored in, and the batching that makes a move resumable. Reading and writing are
//! ports ([`Source`], [`Sink`]) that the database adapters implement; the progress
//! display is a port too ([`Progress`]). See `docs/IMPORT.md` for the rules.

pub mod ports;
pub mod problems;
pub mod rules;
mod run;

pub use ports::{
    Membership, Progress, Silent, Sink, Source, SourceChat, SourceCounts, SourceError,
    SourceMember, SourceMessage, SourceUser, Stage,
};
pub use problems::{Problem, ProblemKind, Row};
pub use run::{ImportError, Options, Report, Tally, run};

#[cfg(test)]
mod tests;
