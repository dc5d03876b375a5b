//! The server under test: its database (a fresh SQLite data directory or a fresh
//! PostgreSQL database, removed afterwards), its process (started on a free loopback
//! port, restarted between scenarios so each one measures a fresh process), and what
//! `/proc` says about that process's CPU time and memory.

use std::fmt;
use std::fs::{self, File};
use std::net::{Ipv4Addr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use sqlx::{AssertSqlSafe, Connection, PgConnection};
use tokio::process::{Child, Command};
use uuid::Uuid;

/// The PostgreSQL server databases are created in when `DATABASE_URL` is unset.
const DEFAULT_ADMIN_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// How long a fresh server may take to answer `GET /healthz`.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(30);

/// The kernel's clock ticks per second in `/proc/<pid>/stat` (`USER_HZ`, 100 on every
/// Linux architecture this runs on).
const TICKS_PER_SECOND: f64 = 100.0;

/// Which database the server stores into.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreKind {
    /// The embedded default: SQLite in `DATA_DIR`.
    Sqlite,
    /// PostgreSQL, a database of its own on the local server.
    Postgres,
}

impl fmt::Display for StoreKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Sqlite => "sqlite",
            Self::Postgres => "postgres",
        })
    }
}

/// A database made for one benchmark run; [`Database::destroy`] removes it.
pub enum Database {
    /// A fresh data directory; the server makes `messenger.db` in it.
    Sqlite {
        /// The directory.
        dir: PathBuf,
    },
    /// A fresh PostgreSQL database.
    Postgres {
        /// The administrative database it was created from.
        admin_url: String,
        /// The URL the server connects to.
        url: String,
        /// Its name.
        name: String,
    },
}

impl Database {
    /// Creates an empty database of the given kind. PostgreSQL's administrative
    /// database is `DATABASE_URL`, else the local server with trust authentication.
    pub async fn create(kind: StoreKind) -> Result<Self> {
        let tag = Uuid::new_v4().simple().to_string();
        match kind {
            StoreKind::Sqlite => {
                let dir = std::env::temp_dir().join(format!("messenger-bench-{tag}"));
                fs::create_dir_all(&dir)
                    .with_context(|| format!("creating the data directory {}", dir.display()))?;
                Ok(Self::Sqlite { dir })
            }
            StoreKind::Postgres => {
                let admin_url =
                    std::env::var("DATABASE_URL").unwrap_or_else(|_| DEFAULT_ADMIN_URL.to_owned());
                let name = format!("bench_{tag}");
                let url = with_database(&admin_url, &name);
                let mut admin = PgConnection::connect(&admin_url).await.with_context(|| {
                    format!("connecting to PostgreSQL at {admin_url} (set DATABASE_URL)")
                })?;
                sqlx::raw_sql(AssertSqlSafe(format!(r#"create database "{name}""#)))
                    .execute(&mut admin)
                    .await
                    .with_context(|| format!("creating the database {name}"))?;
                admin.close().await.ok();
                Ok(Self::Postgres {
                    admin_url,
                    url,
                    name,
                })
            }
        }
    }

    /// Which kind of store this is.
    pub fn kind(&self) -> StoreKind {
        match self {
            Self::Sqlite { .. } => StoreKind::Sqlite,
            Self::Postgres { .. } => StoreKind::Postgres,
        }
    }

    /// Removes the database and everything in it.
    pub async fn destroy(self) -> Result<()> {
        match self {
            Self::Sqlite { dir } => {
                fs::remove_dir_all(&dir).with_context(|| format!("removing {}", dir.display()))
            }
            Self::Postgres {
                admin_url, name, ..
            } => {
                let mut admin = PgConnection::connect(&admin_url).await?;
                sqlx::raw_sql(AssertSqlSafe(format!(
                    r#"drop database if exists "{name}" with (force)"#
                )))
                .execute(&mut admin)
                .await
                .with_context(|| format!("dropping the database {name}"))?;
                admin.close().await.ok();
                Ok(())
            }
        }
    }
}

/// `url` with its database name replaced by `name` (query parameters kept).
fn with_database(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, format!("?{query}")),
        None => (url, String::new()),
    };
    let authority = base.find("://").map_or(0, |i| i + 3);
    let path = base[authority..]
        .find('/')
        .map_or(base.len(), |i| authority + i);
    format!("{}/{name}{query}", &base[..path])
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

/// How to start the server: the binary, the database, the signing key and where its
/// log goes.
pub struct Launch<'a> {
    /// The `server` binary (a release build).
    pub binary: &'a Path,
    /// The database to use.
    pub database: &'a Database,
    /// `JWT_SECRET`, the same across restarts so tokens stay valid.
    pub jwt_secret: &'a str,
    /// File the server's stdout and stderr are appended to.
    pub log: &'a Path,
}

impl Server {
    /// Starts the server on a free loopback port and waits until `GET /healthz` answers.
    pub async fn start(launch: &Launch<'_>, http: &reqwest::Client) -> Result<Self> {
        let port = free_port()?;
        let log = File::options()
            .create(true)
            .append(true)
            .open(launch.log)
            .with_context(|| format!("opening the server log {}", launch.log.display()))?;
        let log_err = log.try_clone()?;
        let mut command = Command::new(launch.binary);
        command
            .env_remove("REDIS_URL")
            .env_remove("PASSWORD_MIN_LENGTH")
            .env("HOST", "127.0.0.1")
            .env("PORT", port.to_string())
            .env("JWT_SECRET", launch.jwt_secret)
            // Long enough for the slowest full run; tokens are made once per store.
            .env("JWT_TTL", "6h")
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err)
            .kill_on_drop(true);
        match launch.database {
            Database::Sqlite { dir } => {
                command.env_remove("DATABASE_URL").env("DATA_DIR", dir);
            }
            Database::Postgres { url, .. } => {
                command.env("DATABASE_URL", url).env_remove("DATA_DIR");
            }
        }
        let child = command
            .spawn()
            .with_context(|| format!("starting {}", launch.binary.display()))?;
        let pid = child.id().context("the server exited at once")?;
        let mut server = Self {
            port,
            base_url: format!("http://127.0.0.1:{port}"),
            child,
            pid,
        };
        server.wait_until_healthy(http, launch.log).await?;
        Ok(server)
    }

    /// Polls `/healthz` until it answers 200.
    async fn wait_until_healthy(&mut self, http: &reqwest::Client, log: &Path) -> Result<()> {
        let started = Instant::now();
        let url = format!("{}/healthz", self.base_url);
        loop {
            if let Some(status) = self.child.try_wait()? {
                bail!(
                    "the server exited ({status}) before answering GET /healthz; see {}",
                    log.display()
                );
            }
            let answer = http.get(&url).timeout(Duration::from_secs(1)).send().await;
            if answer.is_ok_and(|r| r.status().is_success()) {
                return Ok(());
            }
            if started.elapsed() > STARTUP_TIMEOUT {
                bail!(
                    "the server did not answer GET /healthz within {STARTUP_TIMEOUT:?}; see {}",
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

/// A free TCP port on the loopback interface (free when asked; the server binds it
/// right after).
fn free_port() -> Result<u16> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).context("finding a free port")?;
    Ok(listener.local_addr()?.port())
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
    fn the_database_name_is_replaced_and_the_query_kept() {
        assert_eq!(
            with_database("postgres://u@h:5432/postgres?sslmode=disable", "b"),
            "postgres://u@h:5432/b?sslmode=disable"
        );
        assert_eq!(with_database("postgres://u@h", "b"), "postgres://u@h/b");
    }

    #[test]
    fn this_process_has_cpu_time_and_memory() {
        let sample = ProcSample::own().unwrap();
        assert!(sample.rss_kib > 0);
        assert!(sample.peak_rss_kib >= sample.rss_kib);
        assert!(sample.cpu_seconds >= 0.0);
    }
}
