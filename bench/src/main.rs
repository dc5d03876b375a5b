//! `bench`: the messenger server's load generator. It starts the release server
//! itself on a free loopback port, on a fresh SQLite data directory and/or a fresh
//! PostgreSQL database, drives it over REST and over the Socket.IO wire format on raw
//! WebSockets, and reports JSON plus a table. `cargo xtask bench` builds and runs it;
//! BENCHMARKS.md has the figures and how to read them.
//!
//! With `--nodes N` (N ≥ 2, PostgreSQL only) it runs a cluster instead: its own
//! `redis-server`, and N server processes sharing the database, the JWT secret and
//! `REDIS_URL`, with the fan-out's members spread over the nodes.
//!
//! It exits with 1 when a correctness check fails (a message lost, duplicated or out
//! of order, an error answer, a failed connection) and never because of a timing.

mod api;
mod redis;
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
use crate::redis::Redis;
use crate::report::Outcome;
use crate::scenarios::{Ctx, Scenario, Sizes};
use crate::server::{Launch, Nodes, StoreKind, fresh_database};
use crate::sio::Protocol;

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

    /// Server processes: 1, or 2 and more for a cluster over a `redis-server` the
    /// benchmark starts itself (needs `--store postgres`; runs fanout and ingest).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=16))]
    nodes: u16,

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
    /// messages are queued for the store one at a time [default: 8; quick: 2].
    #[arg(long)]
    chats: Option<usize>,

    /// Idle and idle-ws: connections to hold [default: 10000; quick: 200].
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
    IdleWs,
    Ingest,
    Rest,
    Burst,
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
    let scenarios = planned(&args)?;
    let nodes = usize::from(args.nodes);
    let stores = match args.store {
        StoreArg::Sqlite => vec![StoreKind::Sqlite],
        StoreArg::Postgres => vec![StoreKind::Postgres],
        StoreArg::Both => vec![StoreKind::Sqlite, StoreKind::Postgres],
    };
    let binary = server_binary(args.server.as_deref())?;
    if scenarios.contains(&Scenario::Idle) || scenarios.contains(&Scenario::IdleWs) {
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
        "nodes": nodes,
        "machine": report::machine(),
        "git_commit": git_commit(),
        "sizes": sizes.to_json(),
    });

    let mut outcomes: Vec<Outcome> = Vec::new();
    let mut failure = None;
    for store in stores {
        eprintln!("\n==> store: {store}");
        let database = fresh_database(store).await?;
        let result = async {
            let redis = if nodes > 1 {
                let log = log_dir.join(format!("redis-{store}.log"));
                std::fs::write(&log, "").with_context(|| format!("creating {}", log.display()))?;
                let redis = Redis::start(&log).await?;
                eprintln!("    redis-server pid {} at {}", redis.pid(), redis.url());
                Some(redis)
            } else {
                None
            };
            let launch = Launch {
                binary: &binary,
                database: &database,
                jwt_secret: &format!("bench-{}-{}", Uuid::new_v4(), Uuid::new_v4()),
                log_dir: &log_dir,
                nodes,
                redis: redis.as_ref(),
            };
            let result = run_store(&launch, &scenarios, &sizes, &http).await;
            if let Some(redis) = redis
                && let Err(err) = redis.stop().await
            {
                eprintln!("bench: warning: could not stop redis-server: {err:#}");
            }
            result
        }
        .await;
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

/// Makes the users once, then runs each scenario on freshly started servers over
/// the same database (so each measures fresh processes' CPU time and memory).
async fn run_store(
    launch: &Launch<'_>,
    scenarios: &[Scenario],
    sizes: &Sizes,
    http: &reqwest::Client,
) -> Result<Vec<Outcome>> {
    let store = launch.database.kind();
    for node in 0..launch.nodes {
        let log = launch.log(node);
        std::fs::write(&log, "").with_context(|| format!("creating {}", log.display()))?;
    }

    let pool = scenarios.iter().map(|s| s.users(sizes)).max().unwrap_or(0);
    let servers = Nodes::start(launch, http).await?;
    eprintln!("    registering {pool} users");
    let users = Api::new(http.clone(), &servers.first().base_url)
        .make_users(pool)
        .await;
    servers.stop().await?;
    let users = users?;

    let mut outcomes = Vec::new();
    for &scenario in scenarios {
        let servers = Nodes::start(launch, http).await?;
        let server = servers.first();
        if servers.count() > 1 {
            eprintln!(
                "==> {} on {store}, {} nodes (server pids {:?}, ports {:?})",
                scenario.name(),
                servers.count(),
                servers.pids(),
                servers.ports()
            );
        } else {
            eprintln!(
                "==> {} on {store} (server pid {}, port {})",
                scenario.name(),
                server.pid(),
                server.port
            );
        }
        let api = Api::new(http.clone(), &server.base_url);
        let ctx = Ctx {
            nodes: &servers,
            server,
            api: &api,
            users: &users,
            sizes,
            store,
        };
        let result = match scenario {
            Scenario::Fanout => scenarios::fanout::run(&ctx).await,
            Scenario::Idle => scenarios::idle::run(&ctx, Protocol::SocketIo).await,
            Scenario::IdleWs => scenarios::idle::run(&ctx, Protocol::Ws).await,
            Scenario::Ingest => scenarios::ingest::run(&ctx).await,
            Scenario::Rest => scenarios::rest::run(&ctx).await,
            Scenario::Burst => scenarios::burst::run(&ctx).await,
        };
        servers.stop().await?;
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

/// The scenarios to run, checked against `--nodes`: a cluster needs PostgreSQL, and
/// runs only the scenarios that spread over nodes (`all` narrows to them; naming
/// another one is refused).
fn planned(args: &Args) -> Result<Vec<Scenario>> {
    let scenarios = selected(&args.scenario);
    if args.nodes <= 1 {
        return Ok(scenarios);
    }
    if args.store != StoreArg::Postgres {
        bail!(
            "--nodes {} runs a cluster, whose nodes share one PostgreSQL database (the \
             server refuses REDIS_URL on SQLite): add --store postgres",
            args.nodes
        );
    }
    let (clustered, single): (Vec<Scenario>, Vec<Scenario>) =
        scenarios.into_iter().partition(|s| s.runs_on_a_cluster());
    if single.is_empty() {
        return Ok(clustered);
    }
    let names = |list: &[Scenario]| list.iter().map(|s| s.name()).collect::<Vec<_>>().join(", ");
    let named_one = args.scenario.iter().any(|a| {
        *a != ScenarioArg::All
            && single
                .iter()
                .any(|s| selected(std::slice::from_ref(a)).contains(s))
    });
    if named_one || clustered.is_empty() {
        bail!(
            "--nodes {} runs a cluster, where only fanout and ingest run (they spread \
             their connections over the nodes; idle and rest measure one process): run \
             {} with --nodes 1",
            args.nodes,
            names(&single)
        );
    }
    eprintln!(
        "bench: --nodes {}: running {} on the cluster, not {} (they measure one process)",
        args.nodes,
        names(&clustered),
        names(&single)
    );
    Ok(clustered)
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
                            | (ScenarioArg::IdleWs, Scenario::IdleWs)
                            | (ScenarioArg::Ingest, Scenario::Ingest)
                            | (ScenarioArg::Rest, Scenario::Rest)
                            | (ScenarioArg::Burst, Scenario::Burst)
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
    fn a_cluster_needs_postgres_and_runs_what_spreads_over_nodes() {
        let plan = |args: &[&str]| planned(&Args::parse_from(args));
        assert!(plan(&["bench", "--nodes", "2"]).is_err());
        assert!(plan(&["bench", "--nodes", "2", "--store", "both"]).is_err());
        assert_eq!(
            plan(&["bench", "--nodes", "2", "--store", "postgres"]).ok(),
            Some(vec![Scenario::Fanout, Scenario::Ingest])
        );
        assert!(
            plan(&[
                "bench",
                "--nodes",
                "2",
                "--store",
                "postgres",
                "--scenario",
                "idle"
            ])
            .is_err()
        );
        assert_eq!(
            plan(&["bench", "--scenario", "idle"]).ok(),
            Some(vec![Scenario::Idle])
        );
        assert_eq!(
            plan(&["bench", "--scenario", "idle-ws", "--scenario", "idle"]).ok(),
            Some(vec![Scenario::Idle, Scenario::IdleWs])
        );
        assert!(Args::try_parse_from(["bench", "--nodes", "0"]).is_err());
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
