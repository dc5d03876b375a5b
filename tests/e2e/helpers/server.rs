//! The server process: the real `server` binary started on a port it picks itself,
//! against a fresh store, with the environment a test asks for; restarted, killed, or
//! joined by peers (a cluster); stopped, and its store removed, when dropped.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use reqwest::{Client, StatusCode};
use test_support::database::Scratch;
use test_support::listening::{bound_address, report_address};
use tokio::process::{Child, Command};
use uuid::Uuid;

/// How long a server may take to listen after it is started (it migrates a fresh
/// database first, and CI machines are slow).
const STARTUP_TIMEOUT: Duration = Duration::from_secs(30);

/// A running server binary with its own database. Dropping it kills the process and
/// drops the database, also when the test panics.
pub struct TestServer {
    /// `http://127.0.0.1:<port>`.
    pub address: String,
    /// A client without proxies or cookies, with a generous timeout.
    pub client: Client,
    /// The secret the server signs tokens with.
    pub jwt_secret: String,
    /// Where this server keeps its data.
    pub(super) store: Scratch,
    /// The port the server listens on (0 until it first listens), kept across
    /// restarts.
    port: u16,
    /// Environment the test asked for, kept across restarts.
    extra_env: Vec<(String, String)>,
    /// Whether dropping this server drops its database (false for a cluster's peers).
    owns_store: bool,
    /// Where the server's log goes (at `RUST_LOG=info`), when the test reads it.
    log: Option<PathBuf>,
    child: Option<Child>,
}

impl TestServer {
    /// Starts a server with the default configuration.
    pub async fn spawn() -> Self {
        Self::spawn_with(&[]).await
    }

    /// Starts a server with extra environment variables (`JWT_TTL`,
    /// `PASSWORD_MIN_LENGTH`, …) on top of the harness's own.
    pub async fn spawn_with(extra_env: &[(&str, &str)]) -> Self {
        Self::spawn_configured(extra_env, None).await
    }

    /// Starts a server whose log (at `RUST_LOG=info`, also without `TEST_LOG`) the test
    /// reads with [`TestServer::log`].
    pub async fn spawn_logged(extra_env: &[(&str, &str)]) -> Self {
        let path = std::env::temp_dir().join(format!("e2e-server-{}.log", Uuid::new_v4()));
        Self::spawn_configured(extra_env, Some(path)).await
    }

    /// The server process's id.
    pub fn pid(&self) -> u32 {
        self.child
            .as_ref()
            .and_then(Child::id)
            .expect("a running server process")
    }

    /// `host:port` of the server, for raw TCP.
    pub fn socket_address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// What the server has logged so far (see [`TestServer::spawn_logged`]).
    pub fn log(&self) -> String {
        let path = self
            .log
            .as_ref()
            .expect("a server started with spawn_logged");
        std::fs::read_to_string(path).expect("reading the server's log")
    }

    async fn spawn_configured(extra_env: &[(&str, &str)], log: Option<PathBuf>) -> Self {
        let store = super::store::fresh_store().await;
        // From here on, Drop cleans up even if the server never comes up.
        let mut server = Self {
            address: String::new(),
            client: Client::builder()
                .no_proxy()
                .timeout(Duration::from_secs(30))
                .build()
                .expect("building the HTTP client"),
            jwt_secret: format!("e2e-{}-{}", Uuid::new_v4(), Uuid::new_v4()),
            store,
            port: 0,
            extra_env: Vec::new(),
            owns_store: true,
            log,
            child: None,
        };

        server.extra_env = extra_env
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        server.start().await;
        server
    }

    /// Starts another server process on this one's database, with its secret and
    /// environment: a second node of a cluster when that environment holds `REDIS_URL`.
    /// The database stays this server's: dropping the peer only stops its process, so
    /// declare peers after the server they were made from (they are dropped first).
    pub async fn spawn_peer(&self) -> Self {
        assert!(
            matches!(self.store, Scratch::Postgres { .. }),
            "several server processes share a PostgreSQL database, never a SQLite file"
        );
        let mut peer = Self {
            address: String::new(),
            client: self.client.clone(),
            jwt_secret: self.jwt_secret.clone(),
            store: self.store.clone(),
            port: 0,
            extra_env: self.extra_env.clone(),
            owns_store: false,
            log: None,
            child: None,
        };
        peer.start().await;
        peer
    }

    /// Starts the server process on this server's port (a free one it picks, the first
    /// time) and database, and waits until it answers.
    async fn start(&mut self) {
        let test_log = std::env::var_os("TEST_LOG").is_some();
        let mut command = Command::new(env!("CARGO_BIN_EXE_server"));
        command
            .env_remove("JWT_TTL")
            .env_remove("PASSWORD_MIN_LENGTH")
            .env_remove("REDIS_URL")
            .env("HOST", "127.0.0.1")
            .env("JWT_SECRET", &self.jwt_secret)
            // The suite registers and logs in many users from 127.0.0.1 and sends
            // bursts of messages: the limits a deployment keeps are off unless a test
            // sets them (see `protection.rs`), and so is what only a test of it wants.
            .env("RATE_LIMIT_LOGIN", "off")
            .env("RATE_LIMIT_REGISTER", "off")
            .env("RATE_LIMIT_FAILED_LOGINS", "off")
            .env("SOCKET_MESSAGE_RATE", "off")
            .env_remove("TRUSTED_PROXY_HEADER")
            .env_remove("CORS_ALLOWED_ORIGINS")
            .env_remove("HSTS_MAX_AGE")
            .env_remove("LOG_FORMAT")
            .stdin(Stdio::null())
            .kill_on_drop(true);
        if let Some(path) = self.log.as_ref().filter(|_| !test_log) {
            let file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .expect("opening the server's log file");
            command.env("RUST_LOG", "info").stderr(Stdio::from(file));
        } else if test_log {
            let filter = std::env::var("RUST_LOG").unwrap_or_else(|_| "info".to_owned());
            command.env("RUST_LOG", filter).stderr(Stdio::inherit());
        } else {
            command.env("RUST_LOG", "warn").stderr(Stdio::null());
        }
        // The server logs to stderr; its stdout says where it listens.
        report_address(&mut command, (self.port != 0).then_some(self.port));
        match &self.store {
            Scratch::Postgres { url, .. } => {
                command.env("DATABASE_URL", url).env_remove("DATA_DIR");
            }
            // No DATABASE_URL at all: the server's own default, the embedded database.
            Scratch::Sqlite { dir } => {
                command.env_remove("DATABASE_URL").env("DATA_DIR", dir);
            }
        }
        for (key, value) in &self.extra_env {
            command.env(key, value);
        }
        self.child = Some(command.spawn().expect("starting the server binary"));
        self.wait_until_listening().await;
    }

    /// Stops the server and starts it again with `key=value` added to its environment
    /// (a `DATABASE_URL` through a proxy, say).
    pub async fn restart_with(&mut self, key: &str, value: &str) {
        self.extra_env.push((key.to_owned(), value.to_owned()));
        self.kill_and_restart().await;
    }

    /// Kills the server with SIGKILL — no graceful shutdown, nothing flushed — and
    /// starts it again on the same port and database.
    pub async fn kill_and_restart(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.start_kill().expect("sending SIGKILL to the server");
            child.wait().await.expect("reaping the killed server");
        }
        self.start().await;
    }

    /// Waits until the server says where it listens, then asks `/healthz` once: it
    /// must answer 200. Panics with the reason when the process exits first or the
    /// time runs out.
    async fn wait_until_listening(&mut self) {
        let child = self.child.as_mut().expect("a started server");
        let address = bound_address(child, STARTUP_TIMEOUT)
            .await
            .unwrap_or_else(|e| panic!("{e:#}; rerun with TEST_LOG=1 to see its log"));
        self.port = address.port();
        self.address = format!("http://{address}");
        let health = self
            .client
            .get(self.url("/healthz"))
            .send()
            .await
            .unwrap_or_else(|e| panic!("GET /healthz of a listening server failed: {e:?}"));
        assert_eq!(
            health.status(),
            StatusCode::OK,
            "GET /healthz once listening"
        );
    }

    /// The URL of this server's database, as `DATABASE_URL` would name it.
    pub fn database_url(&self) -> String {
        self.store.url()
    }

    /// Runs the server binary with `args` (a subcommand) on this server's database, and
    /// waits for it to exit.
    pub async fn run_binary(&self, args: &[&str]) -> std::process::Output {
        Command::new(env!("CARGO_BIN_EXE_server"))
            .args(args)
            .env("DATABASE_URL", self.database_url())
            .env("RUST_LOG", "warn")
            .env_remove("DATA_DIR")
            .stdin(Stdio::null())
            .kill_on_drop(true)
            .output()
            .await
            .expect("running the server binary")
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            // SIGKILL: the database is dropped next, whatever the server was doing.
            child.start_kill().ok();
        }
        if let Some(log) = &self.log {
            std::fs::remove_file(log).ok();
        }
        if !self.owns_store {
            return;
        }
        // Never panic here: a panic while a failed test unwinds would abort the run.
        if let Err(e) = self.store.destroy_blocking() {
            eprintln!("e2e: could not remove the test database: {e:#}");
        }
    }
}
