//! The harness: starts the real `server` binary against a fresh database — PostgreSQL, or
//! with `E2E_STORE=sqlite` the embedded SQLite default — and talks to it as a client
//! would (plus a few shape assertions every test shares).

use std::net::TcpListener;
use std::process::Stdio;
use std::time::{Duration, Instant};

use reqwest::header::CONTENT_TYPE;
use reqwest::{Client, Method, RequestBuilder, Response, StatusCode};
use serde_json::{Value, json};
use std::path::PathBuf;

use sqlx::{AssertSqlSafe, Connection, PgConnection, SqliteConnection};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use tokio::process::{Child, Command};
use uuid::Uuid;

/// A password every helper-made user has; long enough for the default policy.
pub const PASSWORD: &str = "correct horse battery staple";

/// The PostgreSQL server used when `DATABASE_URL` is not set (trust authentication).
const DEFAULT_DATABASE_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// The PostgreSQL database test databases are created from (`DATABASE_URL`, or the
/// local server's `postgres`).
pub fn admin_database_url() -> String {
    std::env::var("DATABASE_URL").unwrap_or_else(|_| DEFAULT_DATABASE_URL.to_owned())
}

/// How long a server may take to answer `/healthz` after it is started (it migrates a
/// fresh database first, and CI machines are slow).
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
    backend: Backend,
    /// The port the server listens on, kept across restarts.
    port: u16,
    /// Environment the test asked for, kept across restarts.
    extra_env: Vec<(String, String)>,
    /// Whether dropping this server drops its database (false for a cluster's peers).
    owns_backend: bool,
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
        let backend = Backend::create().await;
        // From here on, Drop cleans up even if the server never comes up.
        let mut server = Self {
            address: String::new(),
            client: Client::builder()
                .no_proxy()
                .timeout(Duration::from_secs(30))
                .build()
                .expect("building the HTTP client"),
            jwt_secret: format!("e2e-{}-{}", Uuid::new_v4(), Uuid::new_v4()),
            backend,
            port: 0,
            extra_env: Vec::new(),
            owns_backend: true,
            log,
            child: None,
        };

        server.port = free_port();
        server.address = format!("http://127.0.0.1:{}", server.port);
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
            matches!(self.backend, Backend::Postgres { .. }),
            "several server processes share a PostgreSQL database, never a SQLite file"
        );
        let port = free_port();
        let mut peer = Self {
            address: format!("http://127.0.0.1:{port}"),
            client: self.client.clone(),
            jwt_secret: self.jwt_secret.clone(),
            backend: self.backend.clone(),
            port,
            extra_env: self.extra_env.clone(),
            owns_backend: false,
            log: None,
            child: None,
        };
        peer.start().await;
        peer
    }

    /// Starts the server process on this server's port and database and waits until it
    /// answers.
    async fn start(&mut self) {
        let test_log = std::env::var_os("TEST_LOG").is_some();
        let mut command = Command::new(env!("CARGO_BIN_EXE_server"));
        command
            .env_remove("JWT_TTL")
            .env_remove("PASSWORD_MIN_LENGTH")
            .env_remove("REDIS_URL")
            .env("HOST", "127.0.0.1")
            .env("PORT", self.port.to_string())
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
            let copy = file.try_clone().expect("sharing the server's log file");
            command
                .env("RUST_LOG", "info")
                .stdout(Stdio::from(file))
                .stderr(Stdio::from(copy));
        } else if test_log {
            let filter = std::env::var("RUST_LOG").unwrap_or_else(|_| "info".to_owned());
            command
                .env("RUST_LOG", filter)
                .stdout(Stdio::inherit())
                .stderr(Stdio::inherit());
        } else {
            command
                .env("RUST_LOG", "warn")
                .stdout(Stdio::null())
                .stderr(Stdio::null());
        }
        match &self.backend {
            Backend::Postgres { db_url, .. } => {
                command.env("DATABASE_URL", db_url).env_remove("DATA_DIR");
            }
            // No DATABASE_URL at all: the server's own default, the embedded database.
            Backend::Sqlite { dir } => {
                command.env_remove("DATABASE_URL").env("DATA_DIR", dir);
            }
        }
        for (key, value) in &self.extra_env {
            command.env(key, value);
        }
        self.child = Some(command.spawn().expect("starting the server binary"));
        self.wait_until_healthy().await;
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

    /// Polls `/healthz` until it answers 200; panics with the reason when the process
    /// exits or the time runs out.
    async fn wait_until_healthy(&mut self) {
        let started = Instant::now();
        let url = self.url("/healthz");
        loop {
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                panic!(
                    "the server exited ({status}) before answering GET /healthz; \
                     rerun with TEST_LOG=1 to see its log"
                );
            }
            let answer = self
                .client
                .get(&url)
                .timeout(Duration::from_secs(1))
                .send()
                .await;
            if let Ok(response) = &answer
                && response.status() == StatusCode::OK
            {
                return;
            }
            assert!(
                started.elapsed() < STARTUP_TIMEOUT,
                "the server did not answer GET /healthz with 200 within {STARTUP_TIMEOUT:?} \
                 (last answer: {answer:?}); it is still running; rerun with TEST_LOG=1"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The URL of this server's database, as `DATABASE_URL` would name it.
    pub fn database_url(&self) -> String {
        match &self.backend {
            Backend::Postgres { db_url, .. } => db_url.clone(),
            Backend::Sqlite { dir } => format!("sqlite://{}", dir.join("messenger.db").display()),
        }
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

    /// The absolute URL of `path`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.address)
    }

    /// A request to `path`, with the bearer token when one is given.
    pub fn request(&self, method: Method, path: &str, token: Option<&str>) -> RequestBuilder {
        let request = self.client.request(method, self.url(path));
        match token {
            Some(token) => request.bearer_auth(token),
            None => request,
        }
    }

    /// `GET path` with a bearer token.
    pub async fn get(&self, path: &str, token: &str) -> Response {
        send(self.request(Method::GET, path, Some(token))).await
    }

    /// `GET path` without credentials.
    pub async fn get_anonymous(&self, path: &str) -> Response {
        send(self.request(Method::GET, path, None)).await
    }

    /// `POST path` with a JSON body.
    pub async fn post(&self, path: &str, token: Option<&str>, body: &Value) -> Response {
        send(self.request(Method::POST, path, token).json(body)).await
    }

    /// `DELETE path` without a body.
    pub async fn delete(&self, path: &str, token: &str) -> Response {
        send(self.request(Method::DELETE, path, Some(token))).await
    }

    /// `DELETE path` with a JSON body.
    pub async fn delete_with(&self, path: &str, token: &str, body: &Value) -> Response {
        send(self.request(Method::DELETE, path, Some(token)).json(body)).await
    }

    /// Sends `body` verbatim as `application/json` (for malformed and oversized bodies).
    pub async fn send_raw(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: impl Into<String>,
    ) -> Response {
        let body: String = body.into();
        send(
            self.request(method, path, token)
                .header(CONTENT_TYPE, "application/json")
                .body(body),
        )
        .await
    }

    /// Registers a user and returns the User the server answered, checking its shape.
    pub async fn register(&self, username: &str, password: &str) -> Value {
        let response = self
            .post(
                "/auth/register",
                None,
                &json!({"username": username, "password": password}),
            )
            .await;
        let user = assert_json(response, StatusCode::CREATED).await;
        assert_user(&user);
        user
    }

    /// Logs in and returns the access token.
    pub async fn login(&self, username: &str, password: &str) -> String {
        let response = self
            .post(
                "/auth/login",
                None,
                &json!({"username": username, "password": password}),
            )
            .await;
        let body = assert_json(response, StatusCode::OK).await;
        body["access_token"]
            .as_str()
            .unwrap_or_else(|| panic!("no access_token in {body}"))
            .to_owned()
    }

    /// Registers `username` with [`PASSWORD`] and logs in: `(user id, access token)`.
    pub async fn user_with_token(&self, username: &str) -> (String, String) {
        let user = self.register(username, PASSWORD).await;
        let token = self.login(username, PASSWORD).await;
        (id_of(&user), token)
    }

    /// Creates a chat, checks the answer's shape and returns the Chat. With no
    /// `members`, the field is left out (an empty list is a 400).
    pub async fn create_chat(&self, token: &str, name: &str, members: &[&str]) -> Value {
        let body = if members.is_empty() {
            json!({"name": name})
        } else {
            json!({"name": name, "members": members})
        };
        let response = self.post("/chats", Some(token), &body).await;
        let chat = assert_json(response, StatusCode::CREATED).await;
        assert_chat(&chat);
        chat
    }

    /// `GET /chats` as the token's user.
    pub async fn chats(&self, token: &str) -> Vec<Value> {
        let chats = assert_json(self.get("/chats", token).await, StatusCode::OK).await;
        let chats = as_array(&chats);
        chats.iter().for_each(assert_chat);
        chats
    }

    /// The ids of the chats `GET /chats` lists for the token's user, in its order.
    pub async fn chat_ids(&self, token: &str) -> Vec<String> {
        self.chats(token).await.iter().map(id_of).collect()
    }

    /// `GET /chats/{chat}/members` as a member, checked and returned.
    pub async fn members(&self, token: &str, chat: &str) -> Vec<Value> {
        let response = self.get(&format!("/chats/{chat}/members"), token).await;
        let members = as_array(&assert_json(response, StatusCode::OK).await);
        members.iter().for_each(assert_member);
        members
    }

    /// The user ids of a chat's members, in the order the server lists them.
    pub async fn member_ids(&self, token: &str, chat: &str) -> Vec<String> {
        self.members(token, chat)
            .await
            .iter()
            .map(|m| str_of(m, "userId"))
            .collect()
    }

    /// The PostgreSQL backend's URLs and name; for the tests that are about PostgreSQL
    /// itself (`postgres_only`).
    fn postgres(&self) -> (&str, &str, &str) {
        match &self.backend {
            Backend::Postgres {
                admin_url,
                db_url,
                db_name,
            } => (admin_url, db_url, db_name),
            Backend::Sqlite { .. } => {
                panic!("a PostgreSQL-only helper was used with E2E_STORE=sqlite")
            }
        }
    }

    /// A connection to the administrative database this server's PostgreSQL database
    /// was created from, for what only a superuser can do to it (cut it off, for instance).
    pub async fn admin_db(&self) -> PgConnection {
        PgConnection::connect(self.postgres().0)
            .await
            .expect("connecting to the administrative database")
    }

    /// The name of this server's PostgreSQL database.
    pub fn db_name(&self) -> &str {
        self.postgres().2
    }

    /// The URL of this server's PostgreSQL database.
    pub fn db_url(&self) -> &str {
        self.postgres().1
    }

    /// Runs `f` with a direct connection to this server's database, for arranging what
    /// the API cannot (a vanished user, a thousand users, a stored message). The SQL is
    /// written per store: the two schemas store ids and times differently.
    async fn with_db<R>(
        &self,
        postgres: impl AsyncFnOnce(&mut PgConnection) -> R,
        sqlite: impl AsyncFnOnce(&mut SqliteConnection) -> R,
    ) -> R {
        match &self.backend {
            Backend::Postgres { db_url, .. } => {
                let mut db = PgConnection::connect(db_url)
                    .await
                    .expect("connecting to the test database");
                postgres(&mut db).await
            }
            Backend::Sqlite { dir } => {
                let url = format!("sqlite://{}", dir.join("messenger.db").display());
                let mut db = SqliteConnection::connect(&url)
                    .await
                    .expect("opening the test database");
                sqlite(&mut db).await
            }
        }
    }

    /// Deletes a user row behind the server's back (the API has no such route).
    pub async fn delete_user(&self, id: &str) {
        let id = Uuid::parse_str(id).expect("a user id");
        self.with_db(
            async |db| {
                sqlx::query("delete from users where id = $1")
                    .bind(id)
                    .execute(db)
                    .await
                    .map(drop)
            },
            async |db| {
                sqlx::query("delete from users where id = ?")
                    .bind(id.as_bytes().as_slice())
                    .execute(db)
                    .await
                    .map(drop)
            },
        )
        .await
        .expect("deleting a user");
    }

    /// Stores a message from `sender` in `chat` directly, as a send would.
    pub async fn insert_message(&self, chat: &str, sender: &str) {
        let (id, chat, sender) = (
            Uuid::new_v4(),
            Uuid::parse_str(chat).expect("a chat id"),
            Uuid::parse_str(sender).expect("a user id"),
        );
        self.with_db(
            async |db| {
                sqlx::query("insert into messages (id, chat_id, sender_id, content) values ($1, $2, $3, 'hello')")
                    .bind(id).bind(chat).bind(sender).execute(db).await.map(drop)
            },
            async |db| {
                sqlx::query("insert into messages (id, chat_id, sender_id, content) values (?, ?, ?, 'hello')")
                    .bind(id.as_bytes().as_slice()).bind(chat.as_bytes().as_slice()).bind(sender.as_bytes().as_slice())
                    .execute(db).await.map(drop)
            },
        )
        .await
        .expect("inserting a message");
    }

    /// How many rows of `table` (`messages`, `chat_members`) belong to `chat`.
    pub async fn rows_of_chat(&self, table: &str, chat: &str) -> i64 {
        let chat = Uuid::parse_str(chat).expect("a chat id");
        let sql = format!("select count(*) from {table} where chat_id = $1");
        self.with_db(
            async |db| {
                sqlx::query_scalar(AssertSqlSafe(sql.clone()))
                    .bind(chat)
                    .fetch_one(db)
                    .await
            },
            async |db| {
                sqlx::query_scalar(AssertSqlSafe(sql.replace("$1", "?")))
                    .bind(chat.as_bytes().as_slice())
                    .fetch_one(db)
                    .await
            },
        )
        .await
        .expect("counting rows")
    }

    /// Inserts users straight into the database (the API would hash a password for
    /// each, which is too slow for a thousand): `created_minutes_ago[i]` is how long
    /// before now `ids[i]` registered (rows with equal values share one instant). Their
    /// usernames are `u<id without hyphens>`; they cannot log in.
    ///
    /// This is the one place the suite writes the `users` table; it follows the schemas
    /// in `migrations/`.
    pub async fn insert_user_rows(&self, ids: &[Uuid], created_minutes_ago: &[i32]) {
        assert_eq!(ids.len(), created_minutes_ago.len());
        let now = OffsetDateTime::now_utc();
        self.with_db(
            async |db| {
                sqlx::query(
                    "insert into users (id, username, username_key, password_hash, created_at)
                     select id, name, name, 'not-a-hash', $3 - make_interval(mins => ago)
                     from unnest($1::uuid[], $2::int[]) as t(id, ago),
                          lateral (select 'u' || replace(id::text, '-', '') as name) as n",
                )
                .bind(ids)
                .bind(created_minutes_ago)
                .bind(now)
                .execute(db)
                .await
                .map(drop)
            },
            async |db| {
                let mut tx = db.begin().await?;
                for (id, ago) in ids.iter().zip(created_minutes_ago) {
                    let name = format!("u{}", id.simple());
                    let at = now - Duration::from_secs(60 * u64::try_from(*ago).expect("minutes ago"));
                    let micros = i64::try_from(at.unix_timestamp_nanos() / 1000).expect("a timestamp");
                    sqlx::query("insert into users (id, username, username_key, password_hash, created_at) values (?, ?, ?, 'not-a-hash', ?)")
                        .bind(id.as_bytes().as_slice()).bind(&name).bind(&name).bind(micros)
                        .execute(&mut *tx).await?;
                }
                tx.commit().await
            },
        )
        .await
        .expect("inserting users");
    }

    /// Inserts `count` users created at the same instant (see [`Self::insert_user_rows`])
    /// and returns their ids in insertion order.
    pub async fn insert_users(&self, count: usize) -> Vec<String> {
        let ids: Vec<Uuid> = (0..count).map(|_| Uuid::new_v4()).collect();
        self.insert_user_rows(&ids, &vec![0; count]).await;
        ids.iter().map(|id| id.hyphenated().to_string()).collect()
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
        if !self.owns_backend {
            return;
        }
        // Drop runs inside the test's runtime, which cannot be blocked on: do the async
        // cleanup on a thread with its own small runtime, and wait for it.
        let backend = self.backend.clone();
        let cleanup = std::thread::spawn(move || backend.destroy());
        // Never panic here: a panic while a failed test unwinds would abort the run.
        match cleanup.join() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => eprintln!("e2e: could not remove the test database: {e}"),
            Err(_) => eprintln!("e2e: removing the test database panicked"),
        }
    }
}

/// Where a test server keeps its data: a fresh PostgreSQL database, or a fresh data
/// directory for the embedded SQLite database. `E2E_STORE` (`postgres`, the default, or
/// `sqlite`) chooses.
#[derive(Clone)]
enum Backend {
    Postgres {
        admin_url: String,
        db_url: String,
        db_name: String,
    },
    Sqlite {
        dir: PathBuf,
    },
}

impl Backend {
    async fn create() -> Self {
        match std::env::var("E2E_STORE").as_deref() {
            Ok("sqlite") => {
                let dir =
                    std::env::temp_dir().join(format!("messenger-e2e-{}", Uuid::new_v4().simple()));
                std::fs::create_dir_all(&dir).expect("creating the test data directory");
                Self::Sqlite { dir }
            }
            Ok("postgres") | Err(_) => {
                let admin_url = admin_database_url();
                let db_name = format!("e2e_{}", Uuid::new_v4().simple());
                let db_url = with_database(&admin_url, &db_name);
                let mut admin = PgConnection::connect(&admin_url).await.unwrap_or_else(|e| {
                    panic!("cannot connect to PostgreSQL at {admin_url} (set DATABASE_URL): {e}")
                });
                sqlx::raw_sql(AssertSqlSafe(format!(r#"create database "{db_name}""#)))
                    .execute(&mut admin)
                    .await
                    .expect("creating the test database");
                admin.close().await.ok();
                Self::Postgres {
                    admin_url,
                    db_url,
                    db_name,
                }
            }
            Ok(other) => panic!("E2E_STORE must be `postgres` or `sqlite`, not `{other}`"),
        }
    }

    /// Removes the database (blocking; called from `Drop` on a thread of its own).
    fn destroy(self) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
        match self {
            Self::Sqlite { dir } => Ok(std::fs::remove_dir_all(dir)?),
            Self::Postgres {
                admin_url, db_name, ..
            } => {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()?;
                runtime.block_on(async {
                    let mut admin = PgConnection::connect(&admin_url).await?;
                    sqlx::raw_sql(AssertSqlSafe(format!(
                        r#"drop database if exists "{db_name}" with (force)"#
                    )))
                    .execute(&mut admin)
                    .await?;
                    admin.close().await?;
                    Ok(())
                })
            }
        }
    }
}

/// `url` with its database name replaced by `name` (query parameters kept).
pub fn with_database(url: &str, name: &str) -> String {
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

/// A loopback port nobody listens on right now. (Another process could take it before
/// the server binds it; on a test machine that race is rare enough.)
fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("binding a free port");
    listener
        .local_addr()
        .expect("reading the bound port")
        .port()
}

/// Sends a request, panicking with the reason if there is no HTTP answer at all.
async fn send(request: RequestBuilder) -> Response {
    request
        .send()
        .await
        .unwrap_or_else(|e| panic!("request failed: {e:?}"))
}

/// The media type of a response, without parameters.
fn media_type(response: &Response) -> String {
    response
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase()
}

/// Asserts that the response carries a non-empty `x-request-id` header and returns it.
pub fn assert_request_id(response: &Response) -> String {
    let id = response
        .headers()
        .get("x-request-id")
        .unwrap_or_else(|| {
            panic!(
                "{} {} has no x-request-id header",
                response.status(),
                response.url()
            )
        })
        .to_str()
        .expect("x-request-id is ASCII")
        .to_owned();
    assert!(!id.is_empty(), "x-request-id is empty");
    id
}

/// Asserts the status and an `application/json` body, and returns the body.
pub async fn assert_json(response: Response, status: StatusCode) -> Value {
    assert_request_id(&response);
    let got = response.status();
    let url = response.url().clone();
    let media = media_type(&response);
    let text = response.text().await.expect("reading the body");
    assert_eq!(got, status, "{url}: unexpected status; body: {text}");
    assert_eq!(
        media, "application/json",
        "{url}: content type; body: {text}"
    );
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{url}: body is not JSON ({e}): {text}"))
}

/// Asserts a `204 No Content` answer with an empty body.
pub async fn assert_no_content(response: Response) {
    assert_request_id(&response);
    let got = response.status();
    let url = response.url().clone();
    let text = response.text().await.expect("reading the body");
    assert_eq!(
        got,
        StatusCode::NO_CONTENT,
        "{url}: unexpected status; body: {text}"
    );
    assert!(text.is_empty(), "{url}: a 204 has a body: {text}");
}

/// Asserts an RFC 9457 problem document with this status: `application/problem+json`,
/// `type`, `title`, `status` (equal to the HTTP status), `detail`, and, when present, an
/// `errors` list of `{field, message}`. Also that the body leaks nothing internal.
/// Returns the body.
pub async fn assert_problem(response: Response, status: StatusCode) -> Value {
    assert_request_id(&response);
    let got = response.status();
    let url = response.url().clone();
    let media = media_type(&response);
    let text = response.text().await.expect("reading the body");
    assert_eq!(got, status, "{url}: unexpected status; body: {text}");
    assert_eq!(
        media, "application/problem+json",
        "{url}: a {got} must be a problem document; body: {text}"
    );
    let problem: Value = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("{url}: problem is not JSON ({e}): {text}"));
    let kind = problem["type"]
        .as_str()
        .unwrap_or_else(|| panic!("{url}: problem without a string `type`: {text}"));
    assert!(!kind.is_empty(), "{url}: empty `type`: {text}");
    let title = problem["title"]
        .as_str()
        .unwrap_or_else(|| panic!("{url}: problem without a string `title`: {text}"));
    // RFC 9457 §4.2.1: with `about:blank`, the title is the status's reason phrase.
    if kind == "about:blank" {
        assert_eq!(
            Some(title),
            status.canonical_reason(),
            "{url}: title of an about:blank problem: {text}"
        );
    }
    assert_eq!(
        problem["status"].as_u64(),
        Some(u64::from(status.as_u16())),
        "{url}: `status` member: {text}"
    );
    let detail = problem["detail"]
        .as_str()
        .unwrap_or_else(|| panic!("{url}: problem without a string `detail`: {text}"));
    assert!(!detail.trim().is_empty(), "{url}: empty `detail`: {text}");
    if let Some(errors) = problem.get("errors") {
        let errors = errors
            .as_array()
            .unwrap_or_else(|| panic!("{url}: `errors` is not an array: {text}"));
        for error in errors {
            assert!(
                error["field"].is_string() && error["message"].is_string(),
                "{url}: an `errors` entry must be {{field, message}}: {text}"
            );
        }
    }
    for secret in [
        "$argon2",
        "panicked",
        "backtrace",
        "SQLSTATE",
        "sqlx",
        "password_hash",
    ] {
        assert!(
            !text.contains(secret),
            "{url}: the problem leaks internals ({secret}): {text}"
        );
    }
    problem
}

/// The `field` names of a problem's `errors` list, sorted.
pub fn error_fields(problem: &Value) -> Vec<String> {
    let mut fields: Vec<String> = problem["errors"]
        .as_array()
        .unwrap_or_else(|| panic!("the problem has no `errors` list: {problem}"))
        .iter()
        .map(|e| str_of(e, "field"))
        .collect();
    fields.sort();
    fields
}

/// Asserts that `value` is an object with exactly these keys.
pub fn assert_keys(value: &Value, keys: &[&str]) {
    let object = value
        .as_object()
        .unwrap_or_else(|| panic!("expected an object, got {value}"));
    let mut got: Vec<&str> = object.keys().map(String::as_str).collect();
    got.sort_unstable();
    let mut want = keys.to_vec();
    want.sort_unstable();
    assert_eq!(got, want, "keys of {value}");
}

/// Asserts a lowercase, hyphenated UUID and returns it.
pub fn assert_uuid(value: &Value) -> String {
    let text = value
        .as_str()
        .unwrap_or_else(|| panic!("an id must be a string, got {value}"));
    let parsed = Uuid::parse_str(text).unwrap_or_else(|e| panic!("{text} is not a UUID: {e}"));
    assert_eq!(
        text,
        parsed.hyphenated().to_string(),
        "ids are lowercase and hyphenated"
    );
    text.to_owned()
}

/// Asserts an RFC 3339 UTC timestamp with exactly three fractional digits and a `Z`
/// (`2026-11-24T14:37:00.123Z`), no further than a few minutes from now (server and tests
/// share a clock), and returns it.
pub fn assert_timestamp(value: &Value) -> OffsetDateTime {
    let text = value
        .as_str()
        .unwrap_or_else(|| panic!("a timestamp must be a string, got {value}"));
    let shape_ok = text.len() == 24
        && text.char_indices().all(|(i, c)| match i {
            4 | 7 => c == '-',
            10 => c == 'T',
            13 | 16 => c == ':',
            19 => c == '.',
            23 => c == 'Z',
            _ => c.is_ascii_digit(),
        });
    assert!(
        shape_ok,
        "{text} is not RFC 3339 UTC with milliseconds (YYYY-MM-DDTHH:MM:SS.mmmZ)"
    );
    let parsed = OffsetDateTime::parse(text, &Rfc3339)
        .unwrap_or_else(|e| panic!("{text} is not RFC 3339: {e}"));
    let skew = (OffsetDateTime::now_utc() - parsed).abs();
    assert!(
        skew < time::Duration::minutes(5),
        "{text} is {skew} away from now: not UTC?"
    );
    parsed
}

/// Asserts the User shape `{id, username, createdAt}`: never a password or its hash.
pub fn assert_user(user: &Value) {
    assert_keys(user, &["id", "username", "createdAt"]);
    assert_uuid(&user["id"]);
    assert!(user["username"].is_string(), "username of {user}");
    assert_timestamp(&user["createdAt"]);
}

/// Asserts the Chat shape `{id, name, ownerId, createdAt}`.
pub fn assert_chat(chat: &Value) {
    assert_keys(chat, &["id", "name", "ownerId", "createdAt"]);
    assert_uuid(&chat["id"]);
    assert!(chat["name"].is_string(), "name of {chat}");
    assert_uuid(&chat["ownerId"]);
    assert_timestamp(&chat["createdAt"]);
}

/// Asserts the ChatMember shape `{userId, username, joinedAt}`.
pub fn assert_member(member: &Value) {
    assert_keys(member, &["userId", "username", "joinedAt"]);
    assert_uuid(&member["userId"]);
    assert!(member["username"].is_string(), "username of {member}");
    assert_timestamp(&member["joinedAt"]);
}

/// The elements of a JSON array (panics on anything else).
pub fn as_array(value: &Value) -> Vec<Value> {
    value
        .as_array()
        .unwrap_or_else(|| panic!("expected an array, got {value}"))
        .clone()
}

/// The string member `key` of `value`.
pub fn str_of(value: &Value, key: &str) -> String {
    value[key]
        .as_str()
        .unwrap_or_else(|| panic!("no string `{key}` in {value}"))
        .to_owned()
}

/// The `id` of a User or Chat.
pub fn id_of(value: &Value) -> String {
    str_of(value, "id")
}

/// A well-formed id that names nothing.
pub fn unknown_id() -> String {
    Uuid::new_v4().hyphenated().to_string()
}

/// Users named `names`, registered on `node`, all in one new chat the first one owns:
/// the chat's id and each user's (id, token).
pub async fn one_chat(node: &TestServer, names: &[&str]) -> (String, Vec<(String, String)>) {
    let mut users = Vec::with_capacity(names.len());
    for name in names {
        users.push(node.user_with_token(name).await);
    }
    let others: Vec<&str> = users[1..].iter().map(|(id, _)| id.as_str()).collect();
    let chat = id_of(&node.create_chat(&users[0].1, "room", &others).await);
    (chat, users)
}

/// A chat's whole history, oldest first, as message ids.
pub async fn history_ids(node: &TestServer, token: &str, chat: &str) -> Vec<String> {
    let page = assert_json(
        node.get(&format!("/chats/{chat}/messages?limit=100"), token)
            .await,
        StatusCode::OK,
    )
    .await;
    let mut ids: Vec<String> = as_array(&page).iter().map(id_of).collect();
    ids.reverse();
    ids
}
