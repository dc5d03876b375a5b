//! The server's configuration: the contract's environment variables, each also a
//! command-line flag (`--port 8080` or `PORT=8080`).

use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU32;
use std::path::PathBuf;
use std::time::Duration;

use axum::http::{HeaderName, HeaderValue};
use clap::Parser;

/// Configuration of one server process.
#[derive(Debug, Clone, Parser)]
#[command(
    name = "server",
    version,
    about = "The messenger API server: REST, Socket.IO and WebSocket on one port."
)]
pub struct Config {
    /// Address to listen on.
    #[arg(long, env = "HOST", default_value = "127.0.0.1")]
    pub host: IpAddr,

    /// Port for REST, Socket.IO and /ws (0 picks a free one).
    #[arg(long, env = "PORT", default_value_t = 3000)]
    pub port: u16,

    /// Once listening, write the address bound (`127.0.0.1:43127`, one line) to this
    /// file, in one write: how a supervisor or a test learns the port `PORT=0` picked.
    /// `/dev/stdout` prints it instead.
    #[arg(long, env = "ADDRESS_FILE")]
    pub address_file: Option<PathBuf>,

    /// Database to use: `postgres://user@host:port/db` (or `postgresql://…`) for
    /// PostgreSQL, `sqlite://path/to/file.db` for SQLite. When unset, the embedded
    /// SQLite database `messenger.db` in the data directory.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,

    /// How long a request waits for PostgreSQL (a connection, and the message writer
    /// for a batch) before it is answered `503` with `Retry-After`, e.g. `1s`, `500ms`.
    #[arg(long, env = "DATABASE_TIMEOUT", default_value = "1s", value_parser = humantime::parse_duration)]
    pub database_timeout: Duration,

    /// Directory of the embedded database (`messenger.db`), used when DATABASE_URL is
    /// unset; created on first start and kept across restarts.
    #[arg(long, env = "DATA_DIR", default_value = "./data")]
    pub data_dir: PathBuf,

    /// Signing key for access tokens, at least 32 bytes; when unset, a random one is made
    /// at start (tokens then die with the process, and several nodes cannot share them).
    /// Set but shorter (empty included) refuses to start: such a key can be guessed.
    #[arg(long, env = "JWT_SECRET", hide_env_values = true)]
    pub jwt_secret: Option<String>,

    /// Access-token lifetime, e.g. `15m`, `1h`, `90s`.
    #[arg(long, env = "JWT_TTL", default_value = "15m", value_parser = humantime::parse_duration)]
    pub jwt_ttl: Duration,

    /// Shortest password accepted at registration (1 or more).
    #[arg(long, env = "PASSWORD_MIN_LENGTH", default_value_t = 8, value_parser = clap::value_parser!(u16).range(1..=1024))]
    pub password_min_length: u16,

    /// Log filter, in `tracing` env-filter syntax.
    #[arg(long, env = "RUST_LOG", default_value = "info")]
    pub rust_log: String,

    /// Redis for running several nodes as one cluster: every node started with the
    /// same `REDIS_URL` and `DATABASE_URL` (PostgreSQL) delivers to the sockets of all.
    #[arg(long, env = "REDIS_URL", hide_env_values = true)]
    pub redis_url: Option<String>,

    /// How long a connection may take to send a request's head, and stay idle between
    /// requests (keep-alive), before it is closed.
    #[arg(long, env = "HTTP_IDLE_TIMEOUT", default_value = "30s", value_parser = humantime::parse_duration)]
    pub http_idle_timeout: Duration,

    /// How long one REST request may take, its body included; past it, `408`.
    #[arg(long, env = "HTTP_REQUEST_TIMEOUT", default_value = "30s", value_parser = humantime::parse_duration)]
    pub http_request_timeout: Duration,

    /// Bytes one socket may have waiting to be sent (e.g. `1MiB`, `256KiB`); a socket
    /// that would go over it has stopped reading and is closed as a slow consumer.
    #[arg(long, env = "SOCKET_OUTGOING_BUDGET", default_value = "1MiB", value_parser = parse_bytes)]
    pub socket_outgoing_budget: u64,

    /// Bytes of one Socket.IO socket's events that may wait to be handled; beyond it an
    /// event gets `exception` "too many requests in flight".
    #[arg(long, env = "SOCKET_INCOMING_BUDGET", default_value = "1MiB", value_parser = parse_bytes)]
    pub socket_incoming_budget: u64,

    /// Where to serve `GET /metrics` (Prometheus), e.g. `127.0.0.1:9090` or
    /// `10.0.0.5:9090`: a private address for the scraper alone. When set, the public
    /// port does not serve `/metrics`; when unset, the public port does.
    #[arg(long, env = "METRICS_ADDR")]
    pub metrics_addr: Option<SocketAddr>,

    /// Serve the web client at `/` (`true` or `false`).
    #[arg(long, env = "WEB_CLIENT", default_value_t = true, action = clap::ArgAction::Set,
          value_parser = clap::builder::BoolishValueParser::new())]
    pub web_client: bool,

    /// Log lines as human-readable `text`, or as one JSON object a line (`json`) for
    /// log shippers.
    #[arg(long, env = "LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,

    /// `POST /auth/login` per client address: `COUNT/PERIOD` (that many at once, then
    /// evenly over the period), or `off`.
    #[arg(long, env = "RATE_LIMIT_LOGIN", default_value = "10/1m", value_parser = parse_rate)]
    pub rate_limit_login: RateSetting,

    /// `POST /auth/register` per client address: `COUNT/PERIOD`, or `off`.
    #[arg(long, env = "RATE_LIMIT_REGISTER", default_value = "10/1h", value_parser = parse_rate)]
    pub rate_limit_register: RateSetting,

    /// Failed logins per username, from any address: `COUNT/PERIOD`, or `off`. Once used
    /// up, logins to that username are refused (`429`) until the rate allows one more.
    #[arg(long, env = "RATE_LIMIT_FAILED_LOGINS", default_value = "5/15m", value_parser = parse_rate)]
    pub rate_limit_failed_logins: RateSetting,

    /// The header that holds the client's address, set by the proxy in front
    /// (`x-forwarded-for`; its last address counts). Only when every client comes
    /// through that proxy; unset, the TCP peer's address counts and no header is trusted.
    #[arg(long, env = "TRUSTED_PROXY_HEADER", value_parser = parse_header_name)]
    pub trusted_proxy_header: Option<HeaderName>,

    /// Origins whose pages may call the API from the browser (CORS), comma-separated:
    /// `https://app.example.com,https://admin.example.com`. Unset: same origin only.
    #[arg(long, env = "CORS_ALLOWED_ORIGINS", value_delimiter = ',', value_parser = parse_origin)]
    pub cors_allowed_origins: Vec<HeaderValue>,

    /// `Strict-Transport-Security` max-age (e.g. `365d`) for a server reached only over
    /// HTTPS; unset sends no HSTS.
    #[arg(long, env = "HSTS_MAX_AGE", value_parser = humantime::parse_duration)]
    pub hsts_max_age: Option<Duration>,

    /// Each user's `messages:create` a second on sockets, past the burst, or `off`:
    /// sends beyond it wait their turn (paced, never refused).
    #[arg(long, env = "SOCKET_MESSAGE_RATE", default_value = "5", value_parser = parse_per_second)]
    pub socket_message_rate: MessageRate,

    /// Messages a user may send at once before pacing starts.
    #[arg(long, env = "SOCKET_MESSAGE_BURST", default_value = "10")]
    pub socket_message_burst: NonZeroU32,
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// For a person reading a terminal.
    Text,
    /// One JSON object a line, span fields (the request id) included.
    Json,
}

/// A rate limit as configured: a rate, or `off`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateSetting(pub Option<adapter_http::Rate>);

/// `COUNT/PERIOD` (`10/1m`, `5/15m`), or `off`.
fn parse_rate(text: &str) -> Result<RateSetting, String> {
    let text = text.trim();
    if text.eq_ignore_ascii_case("off") {
        return Ok(RateSetting(None));
    }
    let (count, period) = text
        .split_once('/')
        .ok_or_else(|| format!("`{text}` is not a rate like 10/1m, 5/15m or off"))?;
    let count = count
        .trim()
        .parse::<NonZeroU32>()
        .map_err(|_| format!("`{count}` is not a positive whole number of requests"))?;
    let period = humantime::parse_duration(period.trim())
        .map_err(|err| format!("`{period}` is not a period like 1m or 15m: {err}"))?;
    if period < Duration::from_millis(1) {
        return Err(format!("the period of `{text}` is too short"));
    }
    Ok(RateSetting(Some(adapter_http::Rate { count, period })))
}

/// Messages a second as configured, or `off` (`None`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MessageRate(pub Option<NonZeroU32>);

/// A whole number a second, or `off`.
fn parse_per_second(text: &str) -> Result<MessageRate, String> {
    let text = text.trim();
    if text.eq_ignore_ascii_case("off") {
        return Ok(MessageRate(None));
    }
    text.parse::<NonZeroU32>()
        .map(|rate| MessageRate(Some(rate)))
        .map_err(|_| format!("`{text}` is not a positive whole number a second, or off"))
}

fn parse_header_name(text: &str) -> Result<HeaderName, String> {
    HeaderName::try_from(text.trim()).map_err(|_| format!("`{text}` is not a header name"))
}

/// An origin as browsers send it: `scheme://host[:port]`, nothing after.
fn parse_origin(text: &str) -> Result<HeaderValue, String> {
    let text = text.trim();
    let url = url::Url::parse(text)
        .map_err(|_| format!("`{text}` is not an origin like https://app.example.com"))?;
    let origin = url.origin();
    if !origin.is_tuple()
        || !matches!(url.scheme(), "http" | "https")
        || url.path() != "/" && !url.path().is_empty()
        || url.query().is_some()
    {
        return Err(format!(
            "`{text}` is not an origin like https://app.example.com (scheme, host and port only)"
        ));
    }
    HeaderValue::from_str(&origin.ascii_serialization())
        .map_err(|_| format!("`{text}` is not an origin"))
}

impl Config {
    /// A configuration for tests: loopback, a free port, the given database.
    pub fn for_tests(database_url: &str) -> Self {
        Self {
            host: IpAddr::from([127, 0, 0, 1]),
            port: 0,
            address_file: None,
            database_url: Some(database_url.to_owned()),
            database_timeout: Duration::from_secs(1),
            data_dir: PathBuf::from("./data"),
            jwt_secret: Some("test-secret-test-secret-test-secret".to_owned()),
            jwt_ttl: Duration::from_secs(900),
            password_min_length: 8,
            rust_log: "warn".to_owned(),
            redis_url: None,
            http_idle_timeout: Duration::from_secs(30),
            http_request_timeout: Duration::from_secs(30),
            socket_outgoing_budget: adapter_ws::Budgets::default().outgoing,
            socket_incoming_budget: adapter_ws::Budgets::default().incoming,
            web_client: true,
            metrics_addr: None,
            log_format: LogFormat::Text,
            rate_limit_login: RateSetting(None),
            rate_limit_register: RateSetting(None),
            rate_limit_failed_logins: RateSetting(None),
            trusted_proxy_header: None,
            cors_allowed_origins: Vec::new(),
            hsts_max_age: None,
            socket_message_rate: MessageRate(None),
            socket_message_burst: NonZeroU32::MIN,
        }
    }

    /// The byte budgets of each socket's queues.
    pub fn socket_budgets(&self) -> adapter_ws::Budgets {
        adapter_ws::Budgets {
            outgoing: self.socket_outgoing_budget,
            incoming: self.socket_incoming_budget,
            message_pacing: self
                .socket_message_rate
                .0
                .map(|per_second| adapter_ws::Pacing {
                    per_second,
                    burst: self.socket_message_burst,
                }),
        }
    }

    /// The rate limits of the auth routes, and where the client address comes from.
    pub fn rate_limits(&self) -> adapter_http::RateLimits {
        adapter_http::RateLimits {
            client_address: match &self.trusted_proxy_header {
                Some(header) => adapter_http::ClientAddressSource::TrustedHeader(header.clone()),
                None => adapter_http::ClientAddressSource::Peer,
            },
            login_per_address: self.rate_limit_login.0,
            register_per_address: self.rate_limit_register.0,
            failed_logins_per_username: self.rate_limit_failed_logins.0,
        }
    }

    /// Security headers and CORS.
    pub fn browser_policy(&self) -> adapter_http::BrowserPolicy {
        adapter_http::BrowserPolicy {
            cors_allowed_origins: self.cors_allowed_origins.clone(),
            hsts_max_age: self.hsts_max_age,
        }
    }
}

/// A size in bytes: a whole number, optionally followed by `B`, `KiB` or `MiB` (at least
/// 1 KiB, so that any valid event fits).
fn parse_bytes(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: u64 = number
        .parse()
        .map_err(|_| format!("`{text}` is not a size like 1MiB, 512KiB or 65536"))?;
    let unit = match unit.trim() {
        "" | "B" => 1,
        "KiB" | "K" | "KB" | "kB" => 1024,
        "MiB" | "M" | "MB" => 1024 * 1024,
        other => return Err(format!("unknown size unit `{other}` (use B, KiB or MiB)")),
    };
    let bytes = number
        .checked_mul(unit)
        .ok_or_else(|| format!("`{text}` is too large"))?;
    if bytes < 1024 {
        return Err(format!("`{text}` is below the smallest budget, 1KiB"));
    }
    Ok(bytes)
}

/// Shortest `JWT_SECRET` accepted, in bytes: HS256's key should be as long as its
/// 256-bit hash, and a shorter one can be guessed or brute-forced offline from one token.
pub const JWT_SECRET_MIN_BYTES: usize = 32;

impl Config {
    /// The configured token signing key, `None` when `JWT_SECRET` is unset (the server
    /// then makes a random one).
    ///
    /// # Errors
    /// When `JWT_SECRET` is set but shorter than [`JWT_SECRET_MIN_BYTES`], an empty value
    /// included (what an unset variable in a compose file gives): a one-line message
    /// naming the variable, never its value.
    pub fn jwt_secret_bytes(&self) -> anyhow::Result<Option<&[u8]>> {
        match self.jwt_secret.as_deref() {
            None => Ok(None),
            Some(secret) if secret.len() < JWT_SECRET_MIN_BYTES => anyhow::bail!(
                "JWT_SECRET is set but {} bytes long; it must be at least {JWT_SECRET_MIN_BYTES} \
                 random bytes (or unset, for a random secret that dies with the process)",
                secret.len()
            ),
            Some(secret) => Ok(Some(secret.as_bytes())),
        }
    }
}

/// `url` with any password replaced, fit for a log line or an error message: the one in
/// its user info (`user:pass@`) and any query parameter whose name ends in `password`
/// (`?password=…`, `&sslpassword=…`), which PostgreSQL URLs also accept. A URL that
/// does not parse is shown as its scheme alone.
pub fn redacted(raw: &str) -> String {
    let Ok(mut url) = url::Url::parse(raw) else {
        return match raw.split_once("://") {
            Some((scheme, _)) => format!("{scheme}://(unparseable, not shown)"),
            None => "(not a URL, not shown)".to_owned(),
        };
    };
    if url.password().is_some() {
        // Fails only for URLs that cannot have a user (no host): then there is none.
        let _ = url.set_password(Some("***"));
    }
    if let Some(query) = url.query() {
        let query: Vec<String> = query
            .split('&')
            .map(|parameter| match parameter.split_once('=') {
                Some((name, _)) if name.to_ascii_lowercase().ends_with("password") => {
                    format!("{name}=***")
                }
                _ => parameter.to_owned(),
            })
            .collect();
        url.set_query(Some(&query.join("&")));
    }
    url.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_and_defaults_follow_the_contract() {
        let config =
            Config::try_parse_from(["server", "--port", "8080", "--jwt-ttl", "1h"]).unwrap();
        assert_eq!(config.port, 8080);
        assert_eq!(config.jwt_ttl, Duration::from_secs(3600));
        assert_eq!(config.password_min_length, 8);
        assert_eq!(config.data_dir, PathBuf::from("./data"));
        assert_eq!(config.database_timeout, Duration::from_secs(1));
        let config = Config::try_parse_from(["server", "--data-dir", "/var/lib/m"]).unwrap();
        assert_eq!(config.data_dir, PathBuf::from("/var/lib/m"));
        assert!(Config::try_parse_from(["server", "--password-min-length", "0"]).is_err());
        assert!(Config::try_parse_from(["server", "--jwt-ttl", "soon"]).is_err());
        let budgets = config.socket_budgets();
        assert_eq!(budgets.outgoing, adapter_ws::Budgets::default().outgoing);
        assert_eq!(budgets.incoming, adapter_ws::Budgets::default().incoming);
    }

    #[test]
    fn protections_are_on_by_default_and_each_can_be_set_or_turned_off() {
        let config = Config::try_parse_from(["server"]).unwrap();
        let minute = |n| adapter_http::Rate {
            count: NonZeroU32::new(n).unwrap(),
            period: Duration::from_secs(60),
        };
        let limits = config.rate_limits();
        assert_eq!(limits.login_per_address, Some(minute(10)));
        assert_eq!(
            limits.failed_logins_per_username,
            Some(adapter_http::Rate {
                count: NonZeroU32::new(5).unwrap(),
                period: Duration::from_secs(900)
            })
        );
        assert_eq!(
            limits.client_address,
            adapter_http::ClientAddressSource::Peer
        );
        assert_eq!(
            config.browser_policy(),
            adapter_http::BrowserPolicy::default()
        );
        assert_eq!(config.log_format, LogFormat::Text);
        let pacing = config.socket_budgets().message_pacing.unwrap();
        assert_eq!((pacing.per_second.get(), pacing.burst.get()), (5, 10));

        let config = Config::try_parse_from([
            "server",
            "--rate-limit-login",
            "off",
            "--rate-limit-register",
            "3/1m",
            "--trusted-proxy-header",
            "X-Forwarded-For",
            "--cors-allowed-origins",
            "https://app.example.com, http://localhost:5173/",
            "--hsts-max-age",
            "365d",
            "--log-format",
            "json",
            "--socket-message-rate",
            "off",
        ])
        .unwrap();
        let limits = config.rate_limits();
        assert_eq!(limits.login_per_address, None);
        assert_eq!(limits.register_per_address, Some(minute(3)));
        assert_eq!(
            limits.client_address,
            adapter_http::ClientAddressSource::TrustedHeader(HeaderName::from_static(
                "x-forwarded-for"
            ))
        );
        assert_eq!(
            config.browser_policy().cors_allowed_origins,
            ["https://app.example.com", "http://localhost:5173"]
        );
        assert_eq!(config.hsts_max_age, Some(Duration::from_secs(365 * 86400)));
        assert_eq!(config.log_format, LogFormat::Json);
        assert_eq!(config.socket_budgets().message_pacing, None);

        for (flag, bad) in [
            ("--rate-limit-login", "10"),
            ("--rate-limit-login", "0/1m"),
            ("--rate-limit-login", "10/soon"),
            ("--cors-allowed-origins", "*"),
            ("--cors-allowed-origins", "https://app.example.com/path"),
            ("--trusted-proxy-header", "not a header"),
            ("--socket-message-rate", "0"),
            ("--log-format", "xml"),
        ] {
            assert!(
                Config::try_parse_from(["server", flag, bad]).is_err(),
                "{flag} {bad} must be refused"
            );
        }
    }

    #[test]
    fn socket_budgets_are_sizes_in_bytes() {
        let config = Config::try_parse_from([
            "server",
            "--socket-outgoing-budget",
            "256KiB",
            "--socket-incoming-budget",
            "65536",
        ])
        .unwrap();
        assert_eq!(config.socket_outgoing_budget, 256 * 1024);
        assert_eq!(config.socket_incoming_budget, 65536);
        assert_eq!(parse_bytes("2MiB"), Ok(2 * 1024 * 1024));
        for bad in [
            "",
            "MiB",
            "12 parsecs",
            "100",
            "-1KiB",
            "99999999999999999MiB",
        ] {
            assert!(parse_bytes(bad).is_err(), "{bad} must be refused");
        }
    }

    #[test]
    fn metrics_stay_on_the_public_port_unless_given_an_address_of_their_own() {
        assert_eq!(
            Config::try_parse_from(["server"]).unwrap().metrics_addr,
            None
        );
        let config = Config::try_parse_from(["server", "--metrics-addr", "10.0.0.5:9090"]).unwrap();
        assert_eq!(config.metrics_addr, Some("10.0.0.5:9090".parse().unwrap()));
        for bad in ["9090", "localhost", "10.0.0.5"] {
            assert!(
                Config::try_parse_from(["server", "--metrics-addr", bad]).is_err(),
                "{bad} must be refused"
            );
        }
    }

    #[test]
    fn the_web_client_is_served_unless_turned_off() {
        assert!(Config::try_parse_from(["server"]).unwrap().web_client);
        for off in ["false", "no", "0"] {
            let config = Config::try_parse_from(["server", "--web-client", off]).unwrap();
            assert!(!config.web_client, "--web-client {off}");
        }
        assert!(Config::try_parse_from(["server", "--web-client", "maybe"]).is_err());
    }

    #[test]
    fn a_jwt_secret_shorter_than_32_bytes_is_refused_and_an_empty_one_too() {
        let secret = |given: Option<&str>| {
            let mut config = Config::for_tests("unused");
            config.jwt_secret = given.map(str::to_owned);
            config.jwt_secret_bytes().map(|s| s.map(<[u8]>::len))
        };
        assert_eq!(secret(None).unwrap(), None);
        assert_eq!(secret(Some(&"k".repeat(32))).unwrap(), Some(32));
        for short in ["", "a", &"k".repeat(31)] {
            let message = format!("{:#}", secret(Some(short)).unwrap_err());
            assert!(message.starts_with("JWT_SECRET "), "{message}");
            assert!(!message.contains('\n'), "{message}");
        }
        // Set but empty on the command line is set, not unset.
        let config = Config::try_parse_from(["server", "--jwt-secret", ""]).unwrap();
        assert!(config.jwt_secret_bytes().is_err());
    }

    #[test]
    fn redaction_hides_only_the_password() {
        assert_eq!(
            redacted("postgres://u:secret@h:5432/db"),
            "postgres://u:***@h:5432/db"
        );
        assert_eq!(redacted("postgres://u@h/db"), "postgres://u@h/db");
        assert_eq!(redacted("sqlite://data/x.db"), "sqlite://data/x.db");
        assert_eq!(
            redacted("postgres://u@h/db?sslmode=disable&password=secret&PassWord=x"),
            "postgres://u@h/db?sslmode=disable&password=***&PassWord=***"
        );
        assert_eq!(
            redacted("postgres://u:p%40ss@h/db?sslpassword=secret"),
            "postgres://u:***@h/db?sslpassword=***"
        );
        assert!(!redacted("postgres://u:pw@[::1/db").contains("pw"));
        assert_eq!(
            redacted("postgres:///db?host=/run/pg&password"),
            "postgres:///db?host=/run/pg&password"
        );
    }
}
