//! The server binary's bulk-move subcommands: `import nest` (from a Nest.js
//! deployment's database into the configured store) and `migrate-store` (from one of
//! our stores to the other). Parses the arguments, opens the source and the target,
//! and hands them to the `import` use case; prints the problems and the summary.

use std::path::Path;
use std::time::Instant;

use adapter_nest::NestDatabase;
use anyhow::Context;
use clap::{Args, Subcommand};
use import::{Options, Report, Tally};

use crate::config::{self, Config};
use crate::progress::Display;
use crate::store::Store;

/// What the binary does besides serving.
#[derive(Debug, Clone, Subcommand)]
pub enum Command {
    /// Import the users, chats, members and messages of another messenger into this
    /// server's store (DATABASE_URL, or the embedded database in DATA_DIR).
    #[command(subcommand)]
    Import(ImportFrom),
    /// Move everything from one of our stores to the other (SQLite to PostgreSQL, or
    /// back), keeping ids and timestamps.
    MigrateStore(MigrateStoreArgs),
}

/// Where an import comes from.
#[derive(Debug, Clone, Subcommand)]
pub enum ImportFrom {
    /// From the PostgreSQL database of the Nest.js messenger API this server replaces.
    Nest(NestArgs),
}

/// `import nest`.
#[derive(Debug, Clone, Args)]
pub struct NestArgs {
    /// The old deployment's database, `postgres://…`; only read, never written.
    #[arg(long, value_name = "URL")]
    pub from: String,
    /// How to run it.
    #[command(flatten)]
    pub run: RunArgs,
}

/// `migrate-store`.
#[derive(Debug, Clone, Args)]
pub struct MigrateStoreArgs {
    /// The store to move from: `sqlite://path/to/messenger.db` or `postgres://…`.
    #[arg(long, value_name = "URL")]
    pub from: String,
    /// The store to move into (created and migrated if needed).
    #[arg(long, value_name = "URL")]
    pub to: String,
    /// How to run it.
    #[command(flatten)]
    pub run: RunArgs,
}

/// Options of every move.
#[derive(Debug, Clone, Args)]
pub struct RunArgs {
    /// Read and check everything and print what would be stored and every problem,
    /// storing nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Apply the rules that lose text (a chat name cut to 100 characters) instead of
    /// refusing the move.
    #[arg(long)]
    pub accept_lossy: bool,
    /// Messages stored per transaction.
    #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub batch_size: u32,
    /// Message batches stored at once, on as many connections (a chat's messages are
    /// always stored in order, by the same one).
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u8).range(1..=16))]
    pub writers: u8,
}

impl RunArgs {
    fn options(&self) -> Options {
        Options {
            dry_run: self.dry_run,
            accept_lossy: self.accept_lossy,
            batch_size: self.batch_size as usize,
            writers: usize::from(self.writers),
        }
    }
}

/// Runs `command` with the server's configuration (the target store of an import).
///
/// # Errors
/// When a store cannot be opened, the source cannot be read, the target fails, or the
/// move is refused; each error is one readable sentence.
pub async fn run(command: Command, config: &Config) -> anyhow::Result<()> {
    match command {
        Command::Import(ImportFrom::Nest(args)) => {
            let source = NestDatabase::connect(&args.from).await.with_context(|| {
                format!(
                    "cannot read the Nest.js database at {}",
                    config::redacted(&args.from)
                )
            })?;
            let target = Store::open(config).await?;
            let outcome = run_move(&source, &target, &args.run).await;
            source.close().await;
            target.close().await;
            outcome
        }
        Command::MigrateStore(args) => {
            if args.from.trim() == args.to.trim() {
                anyhow::bail!("--from and --to name the same store");
            }
            ensure_sqlite_file_exists(&args.from)?;
            let source = Store::open(&with_database(config, &args.from))
                .await
                .context("cannot open the store to move from (--from)")?;
            let target = Store::open(&with_database(config, &args.to))
                .await
                .context("cannot open the store to move into (--to)")?;
            let outcome = run_move(source.bulk_source().as_ref(), &target, &args.run).await;
            source.close().await;
            target.close().await;
            outcome
        }
    }
}

/// `config` with `url` as its database.
fn with_database(config: &Config, url: &str) -> Config {
    let mut config = config.clone();
    config.database_url = Some(url.to_owned());
    config
}

/// A SQLite source must exist: opening a missing file would make an empty database
/// and move nothing, silently.
fn ensure_sqlite_file_exists(url: &str) -> anyhow::Result<()> {
    let Some(rest) = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
    else {
        return Ok(());
    };
    let path = rest.split_once('?').map_or(rest, |(path, _)| path);
    if Path::new(path).is_file() {
        Ok(())
    } else {
        anyhow::bail!("the SQLite database to move from, {path}, does not exist")
    }
}

/// Moves `source` into `target` with a progress display, then prints the summary.
async fn run_move(
    source: &dyn import::Source,
    target: &Store,
    args: &RunArgs,
) -> anyhow::Result<()> {
    let display = Display::for_stderr();
    let started = Instant::now();
    let sink = target.bulk_sink();
    let report = import::run(source, sink.as_ref(), &display, args.options()).await;
    let elapsed = started.elapsed().as_secs_f64();
    match report {
        Ok(report) => {
            for line in summary(&report, elapsed) {
                display.println(&line);
            }
            Ok(())
        }
        Err(err) => Err(err).context(if args.dry_run {
            "the dry run stopped"
        } else {
            "the move stopped (what was stored stays; run it again to go on)"
        }),
    }
}

/// The closing lines: per kind of row, how many were read, to store, stored and there
/// already; the problems; the rate of messages.
fn summary(report: &Report, seconds: f64) -> Vec<String> {
    let line = |name: &str, tally: &Tally| {
        if report.dry_run {
            format!(
                "{name}: {} read, {} would be stored (nothing stored: dry run)",
                tally.read, tally.planned
            )
        } else {
            format!(
                "{name}: {} read, {} stored, {} already there",
                tally.read,
                tally.stored,
                tally.already_there()
            )
        }
    };
    let mut lines = vec![
        line("users", &report.users),
        line("chats", &report.chats),
        line("members", &report.members),
        line("messages", &report.messages),
        format!(
            "{} problem(s), each listed above with the rule applied{}",
            report.problems,
            if report.lossy > 0 {
                format!(
                    "; {} lose text and need --accept-lossy in a real run",
                    report.lossy
                )
            } else {
                String::new()
            }
        ),
    ];
    if report.from_former_members > 0 {
        lines.push(format!(
            "{} message(s) from senders no longer in their chat: kept in its history",
            report.from_former_members
        ));
    }
    lines.push(format!(
        "{:.1} s, {} messages/s",
        seconds,
        if seconds > 0.0 {
            (report.messages.read as f64 / seconds) as u64
        } else {
            report.messages.read
        }
    ));
    lines
}
