//! `bench`: the messenger server's load generator. It starts the release server
//! itself on a free loopback port, on a fresh SQLite data directory and/or a fresh
//! PostgreSQL database, drives it over REST and over the Socket.IO wire format on raw
//! WebSockets, and reports JSON plus a table. `cargo xtask bench` builds and runs it;
//! BENCHMARKS.md has the figures and how to read them.
//!
//! It exits with 1 when a correctness check fails (a message lost, duplicated or out
//! of order, an error answer, a failed connection) and never because of a timing.

mod api;
mod report;
mod rig;
mod scenarios;
mod server;
mod sio;
mod stats;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::{Parser, ValueEnum};
use serde_json::json;
use uuid::Uuid;

use crate::api::Api;
use crate::report::Outcome;
use crate::scenarios::{Ctx, Scenario, Sizes};
use crate::server::{Database, Launch, Server, StoreKind};

/// Command-line options; sizes left out take the full run's defaults, or with
/// `--quick` the smoke test's.
#[derive(Debug, Parser)]
#[command(
    name = "bench",
    about = "Load generator for the messenger server (run it with `cargo xtask bench`)."
)]
struct Args {
    /// Scenarios to run, comma-separated.
    #[arg(long, value_enum, value_delimiter = ',', default_value = "all")]
    scenario: Vec<ScenarioArg>,

    /// The store the server runs on.
    #[arg(long, value_enum, default_value_t = StoreArg::Sqlite)]
    store: StoreArg,

    /// Tiny sizes and a few seconds per phase: checks that the harness works
    /// (messages flowed, none lost or duplicated), measures nothing worth keeping.
    #[arg(long)]
    quick: bool,

    /// Fan-out: members (connections) per room [default: 200; quick: 5].
    #[arg(long)]
    members: Option<usize>,

    /// Fan-out: rooms [default: 1; quick: 2].
    #[arg(long)]
    rooms: Option<usize>,

    /// Fan-out: sending members per room [default: 4; quick: 2].
    #[arg(long)]
    senders: Option<usize>,

    /// Fan-out and ingest: unacknowledged messages each sender keeps in flight when
    /// flat out, 1–512 [default: 32; quick: 8].
    #[arg(long)]
    window: Option<usize>,

    /// Fan-out: total messages/s of the paced phase, after the flat-out one; 0 skips
    /// it [default: 1000; quick: 100].
    #[arg(long)]
    rate: Option<f64>,

    /// Ingest: chats the senders write to (4 senders each; 2 with --quick); a chat's
    /// messages are stored one at a time, so this bounds the concurrency the store
    /// sees [default: 8; quick: 2].
    #[arg(long)]
    chats: Option<usize>,

    /// Idle: connections to hold [default: 10000; quick: 200].
    #[arg(long)]
    connections: Option<usize>,

    /// How long each measured phase runs: `10`, `10s`, `500ms`, `2m`
    /// [default: 10s; quick: 2s].
    #[arg(long, value_parser = parse_duration)]
    duration: Option<Duration>,

    /// Where the JSON report goes (the servers' logs go beside it).
    #[arg(long, default_value = "target/bench/results.json")]
    out: PathBuf,

    /// The release `server` binary [default: `server` beside this binary].
    #[arg(long, env = "BENCH_SERVER")]
    server: Option<PathBuf>,
}

/// `--scenario`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum ScenarioArg {
    Fanout,
    Idle,
    Ingest,
    Rest,
    All,
}

/// `--store`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum StoreArg {
    Sqlite,
    Postgres,
    Both,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("bench: error: starting the runtime: {err}");
            return ExitCode::from(2);
        }
    };
    match runtime.block_on(run(args)) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => {
            eprintln!("bench: correctness checks failed (see PROBLEM lines above)");
            ExitCode::from(1)
        }
        Err(err) => {
            eprintln!("bench: error: {err:#}");
            ExitCode::from(2)
        }
    }
}

/// Runs the selected scenarios on the selected stores; `Ok(false)` when a
/// correctness check failed.
async fn run(args: Args) -> Result<bool> {
    let sizes = sizes(&args);
    let scenarios = selected(&args.scenario);
    let stores = match args.store {
        StoreArg::Sqlite => vec![StoreKind::Sqlite],
        StoreArg::Postgres => vec![StoreKind::Postgres],
        StoreArg::Both => vec![StoreKind::Sqlite, StoreKind::Postgres],
    };
    let binary = server_binary(args.server.as_deref())?;
    if scenarios.contains(&Scenario::Idle) {
        raise_open_files(sizes.connections as u64 + 512)?;
    }
    let log_dir = args
        .out
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
        .to_path_buf();
    std::fs::create_dir_all(&log_dir).with_context(|| format!("creating {}", log_dir.display()))?;
    let http = reqwest::Client::builder()
        .no_proxy()
        .pool_max_idle_per_host(256)
        .build()
        .context("building the HTTP client")?;

    let header = json!({
        "started_at": time::OffsetDateTime::now_utc()
            .format(&time::format_description::well_known::Rfc3339)
            .ok(),
        "command": std::env::args().collect::<Vec<_>>(),
        "quick": args.quick,
        "machine": report::machine(),
        "git_commit": git_commit(),
        "sizes": sizes.to_json(),
    });

    let mut outcomes: Vec<Outcome> = Vec::new();
    let mut failure = None;
    for store in stores {
        eprintln!("\n==> store: {store}");
        let database = Database::create(store).await?;
        let result = run_store(&database, &scenarios, &sizes, &binary, &http, &log_dir).await;
        if let Err(err) = database.destroy().await {
            eprintln!("bench: warning: could not remove the {store} database: {err:#}");
        }
        match result {
            Ok(more) => outcomes.extend(more),
            Err(err) => {
                failure = Some(err.context(format!("on {store}")));
                break;
            }
        }
    }

    report::write_json(&args.out, header, &outcomes)?;
    println!("\n{}", report::table(&outcomes));
    println!("results: {}", args.out.display());
    if let Some(err) = failure {
        return Err(err);
    }
    Ok(outcomes.iter().all(|o| o.problems.is_empty()))
}

/// Makes the users once, then runs each scenario on a freshly started server over
/// the same database (so each measures a fresh process's CPU time and memory).
async fn run_store(
    database: &Database,
    scenarios: &[Scenario],
    sizes: &Sizes,
    binary: &Path,
    http: &reqwest::Client,
    log_dir: &Path,
) -> Result<Vec<Outcome>> {
    let store = database.kind();
    let log = log_dir.join(format!("server-{store}.log"));
    std::fs::write(&log, "").with_context(|| format!("creating {}", log.display()))?;
    let secret = format!("bench-{}-{}", Uuid::new_v4(), Uuid::new_v4());
    let launch = Launch {
        binary,
        database,
        jwt_secret: &secret,
        log: &log,
    };

    let pool = scenarios.iter().map(|s| s.users(sizes)).max().unwrap_or(0);
    let server = Server::start(&launch, http).await?;
    eprintln!("    registering {pool} users");
    let users = Api::new(http.clone(), &server.base_url)
        .make_users(pool)
        .await;
    server.stop().await?;
    let users = users?;

    let mut outcomes = Vec::new();
    for &scenario in scenarios {
        let server = Server::start(&launch, http).await?;
        eprintln!(
            "==> {} on {store} (server pid {}, port {})",
            scenario.name(),
            server.pid(),
            server.port
        );
        let api = Api::new(http.clone(), &server.base_url);
        let ctx = Ctx {
            server: &server,
            api: &api,
            users: &users,
            sizes,
            store,
        };
        let result = match scenario {
            Scenario::Fanout => scenarios::fanout::run(&ctx).await,
            Scenario::Idle => scenarios::idle::run(&ctx).await,
            Scenario::Ingest => scenarios::ingest::run(&ctx).await,
            Scenario::Rest => scenarios::rest::run(&ctx).await,
        };
        server.stop().await?;
        let result = result.with_context(|| format!("the {} scenario", scenario.name()))?;
        for outcome in &result {
            for problem in &outcome.problems {
                eprintln!("    PROBLEM: {}: {problem}", outcome.phase);
            }
        }
        outcomes.extend(result);
    }
    Ok(outcomes)
}

/// The sizes: options first, then the quick or full defaults.
fn sizes(args: &Args) -> Sizes {
    let defaults = if args.quick {
        Sizes::quick()
    } else {
        Sizes::full()
    };
    Sizes {
        rooms: args.rooms.unwrap_or(defaults.rooms).max(1),
        members: args.members.unwrap_or(defaults.members).max(1),
        senders: args.senders.unwrap_or(defaults.senders).max(1),
        window: args
            .window
            .unwrap_or(defaults.window)
            .clamp(1, rig::MAX_WINDOW),
        rate: args.rate.unwrap_or(defaults.rate).max(0.0),
        duration: args.duration.unwrap_or(defaults.duration),
        connections: args.connections.unwrap_or(defaults.connections).max(1),
        ingest_chats: args.chats.unwrap_or(defaults.ingest_chats).max(1),
        ..defaults
    }
}

/// The scenarios named, in the canonical order, each once.
fn selected(args: &[ScenarioArg]) -> Vec<Scenario> {
    Scenario::ALL
        .into_iter()
        .filter(|s| {
            args.iter().any(|a| {
                *a == ScenarioArg::All
                    || matches!(
                        (a, s),
                        (ScenarioArg::Fanout, Scenario::Fanout)
                            | (ScenarioArg::Idle, Scenario::Idle)
                            | (ScenarioArg::Ingest, Scenario::Ingest)
                            | (ScenarioArg::Rest, Scenario::Rest)
                    )
            })
        })
        .collect()
}

/// The server binary: the option, else `server` beside this binary.
fn server_binary(given: Option<&Path>) -> Result<PathBuf> {
    let path = match given {
        Some(path) => path.to_path_buf(),
        None => std::env::current_exe()
            .context("locating this binary")?
            .with_file_name("server"),
    };
    if !path.is_file() {
        bail!(
            "no server binary at {}; build it with `cargo build --release -p server` \
             (`cargo xtask bench` does) or pass --server",
            path.display()
        );
    }
    Ok(path)
}

/// Raises this process's open-files limit to `need` (the server inherits it). Above
/// the hard limit that takes root (or CAP_SYS_RESOURCE); otherwise it says what to do.
fn raise_open_files(need: u64) -> Result<()> {
    use rlimit::Resource;
    let (soft, hard) =
        rlimit::getrlimit(Resource::NOFILE).context("reading the open-files limit")?;
    if soft >= need {
        return Ok(());
    }
    if rlimit::setrlimit(Resource::NOFILE, need, hard.max(need)).is_ok() {
        return Ok(());
    }
    bail!(
        "the idle scenario needs {need} open files in this process and in the server, \
         the limit is {soft} (hard {hard}); raise it (`ulimit -n {need}`; above the hard \
         limit that takes root with CAP_SYS_RESOURCE) or pass a smaller --connections"
    )
}

/// `10`, `10s`, `500ms` or `2m`.
fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let (number, unit) = match text.find(|c: char| c.is_ascii_alphabetic()) {
        Some(i) => text.split_at(i),
        None => (text, "s"),
    };
    let value: f64 = number
        .trim()
        .parse()
        .map_err(|_| format!("`{text}` is not a duration like 10s, 500ms or 2m"))?;
    let seconds = match unit {
        "ms" => value / 1_000.0,
        "s" => value,
        "m" => value * 60.0,
        _ => return Err(format!("unknown unit in `{text}`: use ms, s or m")),
    };
    Duration::try_from_secs_f64(seconds).map_err(|e| format!("`{text}`: {e}"))
}

/// The checked-out commit, when this runs in a git work tree.
fn git_commit() -> Option<String> {
    let output = std::process::Command::new("git")
        .args(["rev-parse", "HEAD"])
        .output()
        .ok()?;
    output
        .status
        .success()
        .then(|| String::from_utf8_lossy(&output.stdout).trim().to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_take_a_unit_or_mean_seconds() {
        assert_eq!(parse_duration("10"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert!(parse_duration("soon").is_err());
        assert!(parse_duration("3h").is_err());
    }

    #[test]
    fn all_selects_every_scenario_once_in_order() {
        assert_eq!(
            selected(&[ScenarioArg::Ingest, ScenarioArg::All]),
            Scenario::ALL
        );
        assert_eq!(
            selected(&[ScenarioArg::Rest, ScenarioArg::Fanout]),
            [Scenario::Fanout, Scenario::Rest]
        );
    }

    #[test]
    fn options_override_the_quick_sizes() {
        let args = Args::parse_from(["bench", "--quick", "--members", "7", "--duration", "1s"]);
        let sizes = sizes(&args);
        assert_eq!(sizes.members, 7);
        assert_eq!(sizes.duration, Duration::from_secs(1));
        assert_eq!(sizes.rooms, Sizes::quick().rooms);
    }
}
