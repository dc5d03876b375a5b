//! The server under test: its database (a fresh SQLite data directory or a fresh
//! PostgreSQL database, removed afterwards), its processes (one, or the nodes of a
//! cluster, each started on a loopback port it picks itself and restarted between
//! scenarios so each one measures fresh processes), and what `/proc` says about their
//! CPU time and memory. Scratch databases and reading the bound port come from
//! `test-support`, shared with the end-to-end suite.

use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde_json::Value;
use test_support::listening::{bound_address, report_address};
use tokio::process::{Child, Command};

use crate::redis::Redis;

/// How long a fresh server may take to listen (and, as a cluster node, to report
/// itself connected on `GET /readyz`).
const STARTUP_TIMEOUT: Duration = Duration::from_secs(30);

/// The kernel's clock ticks per second in `/proc/<pid>/stat` (`USER_HZ`, 100 on every
/// Linux architecture this runs on).
const TICKS_PER_SECOND: f64 = 100.0;

/// Which database the server stores into.
pub use test_support::StoreKind;
/// A database made for one benchmark run (a fresh SQLite data directory or PostgreSQL
/// database); [`Database::destroy`] removes it.
pub use test_support::database::Scratch as Database;

/// A fresh, empty database of `kind` for one run. PostgreSQL's administrative database
/// is `DATABASE_URL`, else the local server with trust authentication.
pub async fn fresh_database(kind: StoreKind) -> Result<Database> {
    Database::create(kind, "bench").await
}

/// A running server process. Dropping it kills the process.
pub struct Server {
    /// The port it listens on, on 127.0.0.1.
    pub port: u16,
    /// `http://127.0.0.1:<port>`.
    pub base_url: String,
    child: Child,
    pid: u32,
}

/// How to start the server: the binary, the database, the signing key, the cluster
/// (if any) and where the logs go.
pub struct Launch<'a> {
    /// The `server` binary (a release build).
    pub binary: &'a Path,
    /// The database to use (shared by every node).
    pub database: &'a Database,
    /// `JWT_SECRET`, the same across restarts and nodes so tokens stay valid everywhere.
    pub jwt_secret: &'a str,
    /// The folder the logs go to.
    pub log_dir: &'a Path,
    /// Server processes per start: 1, or the nodes of a cluster.
    pub nodes: usize,
    /// The Redis server the nodes meet on (`REDIS_URL`); `None` for a lone server.
    pub redis: Option<&'a Redis>,
}

impl Launch<'_> {
    /// The file node `node`'s stdout and stderr are appended to: `server-<store>.log`
    /// for a lone server, `server-<store>-node<n>.log` (from 1) in a cluster.
    pub fn log(&self, node: usize) -> PathBuf {
        let store = self.database.kind();
        if self.nodes > 1 {
            self.log_dir
                .join(format!("server-{store}-node{}.log", node + 1))
        } else {
            self.log_dir.join(format!("server-{store}.log"))
        }
    }
}

impl Server {
    /// Starts server `node` of the launch on a loopback port it picks and waits until
    /// it listens and `GET /healthz` answers (and, in a cluster, until `GET /readyz` says the node
    /// hears the others).
    pub async fn start(launch: &Launch<'_>, node: usize, http: &reqwest::Client) -> Result<Self> {
        let log_path = launch.log(node);
        let log = File::options()
            .create(true)
            .append(true)
            .open(&log_path)
            .with_context(|| format!("opening the server log {}", log_path.display()))?;
        let mut command = Command::new(launch.binary);
        command
            .env_remove("PASSWORD_MIN_LENGTH")
            .env("HOST", "127.0.0.1")
            .env("JWT_SECRET", launch.jwt_secret)
            // Long enough for the slowest full run; tokens are made once per store.
            .env("JWT_TTL", "6h")
            .env("RUST_LOG", "warn")
            // Every simulated user registers and logs in from 127.0.0.1 and sends as
            // fast as the scenario asks: the limits a deployment keeps would measure
            // themselves, not the server.
            .env("RATE_LIMIT_LOGIN", "off")
            .env("RATE_LIMIT_REGISTER", "off")
            .env("RATE_LIMIT_FAILED_LOGINS", "off")
            .env("SOCKET_MESSAGE_RATE", "off")
            .env_remove("TRUSTED_PROXY_HEADER")
            .env_remove("LOG_FORMAT")
            .stdin(Stdio::null())
            .stderr(log)
            .kill_on_drop(true);
        // It logs to stderr; its stdout says where it listens.
        report_address(&mut command, None);
        match launch.database {
            Database::Sqlite { dir } => {
                command.env_remove("DATABASE_URL").env("DATA_DIR", dir);
            }
            Database::Postgres { url, .. } => {
                command.env("DATABASE_URL", url).env_remove("DATA_DIR");
            }
        }
        match launch.redis {
            Some(redis) => command.env("REDIS_URL", redis.url()),
            None => command.env_remove("REDIS_URL"),
        };
        let mut child = command
            .spawn()
            .with_context(|| format!("starting {}", launch.binary.display()))?;
        let pid = child.id().context("the server exited at once")?;
        let address = bound_address(&mut child, STARTUP_TIMEOUT)
            .await
            .with_context(|| format!("see {}", log_path.display()))?;
        let mut server = Self {
            port: address.port(),
            base_url: format!("http://{address}"),
            child,
            pid,
        };
        server.check_health(http, &log_path).await?;
        if launch.redis.is_some() {
            server.wait_until_in_cluster(http, &log_path).await?;
        }
        Ok(server)
    }

    /// Asks `/healthz` of the listening server once: it must answer 200.
    async fn check_health(&self, http: &reqwest::Client, log: &Path) -> Result<()> {
        let url = format!("{}/healthz", self.base_url);
        let answer = http
            .get(&url)
            .timeout(STARTUP_TIMEOUT)
            .send()
            .await
            .with_context(|| format!("GET /healthz; see {}", log.display()))?;
        if !answer.status().is_success() {
            bail!(
                "GET /healthz answered {}; see {}",
                answer.status(),
                log.display()
            );
        }
        Ok(())
    }

    /// Polls `/readyz` until it says `"cluster":"connected"`: the node is subscribed
    /// to the cluster's channel, so no event published from now on can miss it.
    async fn wait_until_in_cluster(&mut self, http: &reqwest::Client, log: &Path) -> Result<()> {
        let started = Instant::now();
        let url = format!("{}/readyz", self.base_url);
        loop {
            if let Some(status) = self.child.try_wait()? {
                bail!(
                    "the server exited ({status}) before joining the cluster; see {}",
                    log.display()
                );
            }
            let answer = http.get(&url).timeout(Duration::from_secs(1)).send().await;
            if let Ok(answer) = answer
                && let Ok(body) = answer.json::<Value>().await
                && body.get("cluster").and_then(Value::as_str) == Some("connected")
            {
                return Ok(());
            }
            if started.elapsed() > STARTUP_TIMEOUT {
                bail!(
                    "GET /readyz did not say \"cluster\":\"connected\" within {STARTUP_TIMEOUT:?}; see {}",
                    log.display()
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The process's CPU time and memory now.
    pub fn sample(&self) -> Result<ProcSample> {
        ProcSample::of(self.pid)
    }

    /// The process id (for profilers).
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Kills the process (SIGKILL: both stores survive it by design) and waits for it.
    pub async fn stop(mut self) -> Result<()> {
        self.child.start_kill().ok();
        self.child.wait().await.context("reaping the server")?;
        Ok(())
    }
}

/// The server processes of one start: a lone server, or the nodes of a cluster (all
/// on one database, one JWT secret and one Redis). Dropping it kills them.
pub struct Nodes {
    servers: Vec<Server>,
    redis_pid: Option<u32>,
}

impl Nodes {
    /// Starts `launch.nodes` servers one after the other (so that only the first one
    /// can have migrations to run), each ready before the next starts.
    pub async fn start(launch: &Launch<'_>, http: &reqwest::Client) -> Result<Self> {
        let mut servers = Vec::with_capacity(launch.nodes);
        for node in 0..launch.nodes.max(1) {
            let server = Server::start(launch, node, http)
                .await
                .with_context(|| format!("starting node {} of {}", node + 1, launch.nodes))?;
            servers.push(server);
        }
        Ok(Self {
            servers,
            redis_pid: launch.redis.map(Redis::pid),
        })
    }

    /// The first server: the one the REST client talks to, and the only one outside a
    /// cluster.
    pub fn first(&self) -> &Server {
        // `start` makes at least one.
        &self.servers[0]
    }

    /// How many servers run.
    pub fn count(&self) -> usize {
        self.servers.len()
    }

    /// Every server's port, node by node.
    pub fn ports(&self) -> Vec<u16> {
        self.servers.iter().map(|s| s.port).collect()
    }

    /// Every server's process id, node by node.
    pub fn pids(&self) -> Vec<u32> {
        self.servers.iter().map(Server::pid).collect()
    }

    /// Each server's CPU time and memory now, and the Redis server's.
    pub fn sample(&self) -> Result<NodesSample> {
        Ok(NodesSample {
            nodes: self
                .servers
                .iter()
                .map(Server::sample)
                .collect::<Result<_>>()?,
            redis: self.redis_pid.map(ProcSample::of).transpose()?,
        })
    }

    /// Kills every server and waits for each.
    pub async fn stop(self) -> Result<()> {
        let mut first_error = None;
        for server in self.servers {
            if let Err(err) = server.stop().await {
                first_error.get_or_insert(err);
            }
        }
        first_error.map_or(Ok(()), Err)
    }
}

/// What `/proc` says about the servers of a start and their Redis at one moment.
#[derive(Debug, Clone, Default)]
pub struct NodesSample {
    /// Each server's, node by node.
    pub nodes: Vec<ProcSample>,
    /// The Redis server's, in a cluster.
    pub redis: Option<ProcSample>,
}

impl NodesSample {
    /// The servers together: CPU time, resident and peak memory summed (peaks that
    /// need not have been reached at the same moment, so an upper bound of the
    /// cluster's peak).
    pub fn servers(&self) -> ProcSample {
        self.nodes
            .iter()
            .fold(ProcSample::default(), |sum, s| ProcSample {
                cpu_seconds: sum.cpu_seconds + s.cpu_seconds,
                rss_kib: sum.rss_kib + s.rss_kib,
                peak_rss_kib: sum.peak_rss_kib + s.peak_rss_kib,
            })
    }
}

/// What `/proc` reports about a process at one moment.
#[derive(Debug, Clone, Copy, Default)]
pub struct ProcSample {
    /// User plus system CPU time so far, all threads, in seconds.
    pub cpu_seconds: f64,
    /// Resident memory now, in KiB (`VmRSS`).
    pub rss_kib: u64,
    /// Peak resident memory since the start, in KiB (`VmHWM`).
    pub peak_rss_kib: u64,
}

impl ProcSample {
    /// Reads `/proc/<pid>/stat` and `/proc/<pid>/status`.
    pub fn of(pid: u32) -> Result<Self> {
        Self::at(&format!("/proc/{pid}"))
    }

    /// The bench process itself.
    pub fn own() -> Result<Self> {
        Self::at("/proc/self")
    }

    fn at(dir: &str) -> Result<Self> {
        let stat = fs::read_to_string(format!("{dir}/stat"))
            .with_context(|| format!("reading {dir}/stat"))?;
        // The command name may hold spaces and parentheses: count fields after the last `)`.
        let after_name = stat
            .rsplit_once(')')
            .map(|(_, rest)| rest)
            .context("unexpected /proc stat format")?;
        let fields: Vec<&str> = after_name.split_whitespace().collect();
        // Fields 14 and 15 of stat (utime, stime) are 12 and 13 after the name.
        let ticks = |i: usize| -> Result<f64> {
            let value: u64 = fields
                .get(i)
                .context("short /proc stat")?
                .parse()
                .context("a non-numeric CPU time in /proc stat")?;
            Ok(value as f64)
        };
        let cpu_seconds = (ticks(11)? + ticks(12)?) / TICKS_PER_SECOND;
        let status = fs::read_to_string(format!("{dir}/status"))
            .with_context(|| format!("reading {dir}/status"))?;
        let kib = |key: &str| -> u64 {
            status
                .lines()
                .find_map(|line| line.strip_prefix(key))
                .and_then(|rest| rest.split_whitespace().next())
                .and_then(|n| n.parse().ok())
                .unwrap_or(0)
        };
        Ok(Self {
            cpu_seconds,
            rss_kib: kib("VmRSS:"),
            peak_rss_kib: kib("VmHWM:"),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_has_cpu_time_and_memory() {
        let sample = ProcSample::own().unwrap();
        assert!(sample.rss_kib > 0);
        assert!(sample.peak_rss_kib >= sample.rss_kib);
        assert!(sample.cpu_seconds >= 0.0);
    }
}
