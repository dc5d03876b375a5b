//! The REST calls the benchmark needs to arrange its scenarios (register, log in,
//! create a chat), and the pool of users made once per store: argon2 makes every
//! registration and login expensive, so users are made concurrently and reused.

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use futures_util::{StreamExt, TryStreamExt, stream};
use reqwest::StatusCode;
use serde_json::{Value, json};

/// The password of every benchmark user.
pub const PASSWORD: &str = "benchmark password 1234";

/// Registrations and logins in flight at once while making the pool: enough to keep
/// the server's hashing threads busy.
const SETUP_CONCURRENCY: usize = 8;

/// A REST client for one server.
#[derive(Clone)]
pub struct Api {
    /// The HTTP client (no proxy; keeps connections alive).
    pub http: reqwest::Client,
    /// `http://127.0.0.1:<port>`.
    pub base_url: String,
}

/// A registered user with a valid access token.
#[derive(Debug, Clone)]
pub struct User {
    /// The user's id.
    pub id: String,
    /// The username (to log in again).
    pub username: String,
    /// A bearer token.
    pub token: String,
}

impl Api {
    /// A client of the server at `base_url`.
    pub fn new(http: reqwest::Client, base_url: &str) -> Self {
        Self {
            http,
            base_url: base_url.to_owned(),
        }
    }

    /// The absolute URL of `path`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base_url)
    }

    /// `POST /auth/register`: the new user's id.
    pub async fn register(&self, username: &str) -> Result<String> {
        let body = json!({"username": username, "password": PASSWORD});
        let user = expect_json(
            self.http.post(self.url("/auth/register")).json(&body),
            StatusCode::CREATED,
            "POST /auth/register",
        )
        .await?;
        string_field(&user, "id")
    }

    /// `POST /auth/login`: an access token.
    pub async fn login(&self, username: &str) -> Result<String> {
        let body = json!({"username": username, "password": PASSWORD});
        let answer = expect_json(
            self.http.post(self.url("/auth/login")).json(&body),
            StatusCode::OK,
            "POST /auth/login",
        )
        .await?;
        string_field(&answer, "access_token")
    }

    /// `POST /chats` as `owner` with `members` (besides the owner): the chat's id.
    pub async fn create_chat(&self, owner: &User, name: &str, members: &[&User]) -> Result<String> {
        let ids: Vec<&str> = members.iter().map(|m| m.id.as_str()).collect();
        let body = if ids.is_empty() {
            json!({"name": name})
        } else {
            json!({"name": name, "members": ids})
        };
        let chat = expect_json(
            self.http
                .post(self.url("/chats"))
                .bearer_auth(&owner.token)
                .json(&body),
            StatusCode::CREATED,
            "POST /chats",
        )
        .await?;
        string_field(&chat, "id")
    }

    /// Registers `count` users named `bench-<i>` and logs each in, concurrently.
    pub async fn make_users(&self, count: usize) -> Result<Vec<User>> {
        let started = Instant::now();
        let users: Vec<User> = stream::iter(0..count)
            .map(|i| async move {
                let username = format!("bench-{i}");
                let id = self
                    .register(&username)
                    .await
                    .with_context(|| format!("registering {username}"))?;
                let token = self
                    .login(&username)
                    .await
                    .with_context(|| format!("logging in as {username}"))?;
                Ok::<_, anyhow::Error>(User {
                    id,
                    username,
                    token,
                })
            })
            .buffered(SETUP_CONCURRENCY)
            .try_collect()
            .await?;
        eprintln!(
            "    made {count} users (register + login) in {:.1} s",
            started.elapsed().as_secs_f64()
        );
        Ok(users)
    }
}

/// Sends a request and returns its JSON body, failing unless the status is `expected`.
async fn expect_json(
    request: reqwest::RequestBuilder,
    expected: StatusCode,
    what: &str,
) -> Result<Value> {
    let response = request
        .timeout(Duration::from_secs(60))
        .send()
        .await
        .with_context(|| format!("{what}: no answer"))?;
    let status = response.status();
    let text = response.text().await.unwrap_or_default();
    if status != expected {
        bail!("{what}: expected {expected}, got {status}: {text}");
    }
    serde_json::from_str(&text).with_context(|| format!("{what}: the body is not JSON: {text}"))
}

/// A string field of a JSON object, or an error naming it.
fn string_field(value: &Value, field: &str) -> Result<String> {
    value
        .get(field)
        .and_then(Value::as_str)
        .map(str::to_owned)
        .with_context(|| format!("no string `{field}` in {value}"))
}
