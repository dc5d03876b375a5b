//! The messenger server: reads [`Config`], connects the store, builds the use cases over
//! the adapters and serves them. `main` and the tests start the very same
//! [`Application`].

pub mod cli;
pub mod cluster;
pub mod config;
pub mod metrics;
pub mod moves;
mod progress;
mod serve;
pub mod store;

use std::net::SocketAddr;
use std::sync::Arc;

use adapter_auth::{Argon2Hasher, JwtTokens};
use adapter_http::{HttpState, Readiness, ReadinessProbe};
use adapter_redis::RedisDelivery;
use adapter_ws::SocketCloser;
use anyhow::Context;
use app::{App, Ports};
use async_trait::async_trait;
use domain::PasswordPolicy;
use tokio::net::TcpListener;
use tower_http::normalize_path::NormalizePath;

pub use config::{Config, LogFormat};

/// A built, listening server, not yet serving.
pub struct Application {
    listener: TcpListener,
    router: axum::Router,
    store: store::Store,
    sockets_closer: SocketCloser,
    idle_timeout: std::time::Duration,
    /// `/metrics` on its own address (`METRICS_ADDR`), when configured.
    metrics: Option<(TcpListener, axum::Router)>,
}

impl Application {
    /// Connects to the database (applying pending migrations), builds the adapters and binds
    /// the listener.
    ///
    /// # Errors
    /// When the configuration is incomplete, the database cannot be reached or
    /// migrated, or the address cannot be bound; each error is one readable sentence.
    pub async fn build(config: Config) -> anyhow::Result<Self> {
        // Checked before anything is opened: a forgeable key must stop the start at once.
        let jwt_secret = jwt_secret(&config)?;
        // Before anything counts: the sockets keep the handles they first look up.
        let metrics_handle = metrics::install()?;
        let store = store::Store::open(&config).await?;
        let topology = cluster::Topology::from_config(&config, &store)?;

        let password_policy =
            PasswordPolicy::with_min_chars(usize::from(config.password_min_length))
                .context("PASSWORD_MIN_LENGTH must be between 1 and 1024")?;
        let rooms = topology.rooms;
        let ports = Ports {
            users: store.users(),
            chats: store.chats(),
            messages: store.messages(),
            message_queue: store.message_queue(),
            hasher: Arc::new(Argon2Hasher::new().context("cannot set up password hashing")?),
            tokens: Arc::new(JwtTokens::new(&jwt_secret, config.jwt_ttl)),
            rooms: rooms.events(),
            send_order: topology.send_order,
        };
        let app = App::new(ports, password_policy);
        if let Some(link) = &topology.link {
            cluster::spawn_room_audits(link, rooms.audit(app.clone()));
        }
        let sockets = rooms.endpoints(app.clone(), config.socket_budgets());
        let sockets_closer = sockets.closer();
        let metrics_router = metrics::router(metrics_handle, sockets.room_gauge(), store.clone());
        // Pages beside the API, under its middleware and in its description: `/ws`, the
        // web client, and `/metrics` unless it has an address of its own.
        let mut pages = adapter_http::pages::ws_handshake(sockets.ws_routes());
        if config.web_client {
            pages = pages.merge(adapter_http::pages::static_files(
                web_client::router(),
                web_client::files(),
            ));
        }
        let metrics = match config.metrics_addr {
            Some(address) => {
                let listener = TcpListener::bind(address)
                    .await
                    .with_context(|| format!("cannot listen on METRICS_ADDR {address}"))?;
                Some((listener, metrics_router))
            }
            None => {
                pages = pages.merge(adapter_http::pages::metrics(metrics_router));
                None
            }
        };
        // Security headers and CORS around everything, Socket.IO's answers included.
        let router = adapter_http::protect(
            sockets.around(adapter_http::router_with(
                HttpState {
                    app,
                    readiness: Arc::new(Dependencies {
                        store: store.clone(),
                        cluster: topology.link,
                    }),
                },
                pages,
                adapter_http::RequestLimits {
                    timeout: config.http_request_timeout,
                    rates: config.rate_limits(),
                },
            )),
            &config.browser_policy(),
        );

        let address = SocketAddr::new(config.host, config.port);
        let listener = TcpListener::bind(address)
            .await
            .with_context(|| format!("cannot listen on {address}"))?;
        Ok(Self {
            listener,
            router,
            store,
            sockets_closer,
            idle_timeout: config.http_idle_timeout,
            metrics,
        })
    }

    /// The address actually bound (useful with port 0).
    ///
    /// # Errors
    /// When the socket cannot report its address.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// The address `/metrics` is served on when `METRICS_ADDR` gave it one (useful with
    /// port 0); `None` when it is served on the public port.
    ///
    /// # Errors
    /// When the socket cannot report its address.
    pub fn metrics_addr(&self) -> std::io::Result<Option<SocketAddr>> {
        self.metrics
            .as_ref()
            .map(|(listener, _)| listener.local_addr())
            .transpose()
    }

    /// Serves until SIGINT or SIGTERM, then stops accepting, disconnects the sockets,
    /// lets in-flight requests finish and closes the database pool.
    ///
    /// # Errors
    /// When serving fails.
    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        tracing::info!(address = %self.listener.local_addr()?, "listening");
        // Plain axum serving: the scraper is trusted, and gets none of the public
        // port's defences. Stopped with the server.
        let metrics = match self.metrics {
            Some((listener, router)) => {
                tracing::info!(address = %listener.local_addr()?, "serving /metrics");
                Some(tokio::spawn(async move {
                    if let Err(err) = axum::serve(listener, router).await {
                        tracing::error!(%err, "serving /metrics failed");
                    }
                }))
            }
            None => None,
        };
        let closer = self.sockets_closer;
        let stopping = async move {
            shutdown_signal().await;
            // Live sockets would hold the graceful shutdown open forever.
            closer.close_all().await;
        };
        // Each connection's TCP link goes with its requests: the sockets measure and,
        // when a client stops reading, cut their own. A trailing slash does not change
        // a route (`/users/` is `/users`): the path is trimmed before the router sees
        // it, since a layer on the router itself would only run once a route matched.
        serve::serve(
            self.listener,
            NormalizePath::trim_trailing_slash(self.router),
            self.idle_timeout,
            stopping,
        )
        .await?;
        if let Some(metrics) = metrics {
            metrics.abort();
        }
        self.store.close().await;
        tracing::info!("stopped");
        Ok(())
    }
}

/// The configured signing key, or a fresh random one (with a warning).
///
/// # Errors
/// When `JWT_SECRET` is set but too short (see [`Config::jwt_secret_bytes`]).
fn jwt_secret(config: &Config) -> anyhow::Result<Vec<u8>> {
    if let Some(secret) = config.jwt_secret_bytes()? {
        return Ok(secret.to_vec());
    }
    tracing::warn!(
        "JWT_SECRET is not set: using a random secret, so tokens die with this process and are not shared across nodes"
    );
    // Two v4 UUIDs: 244 bits from the operating system's random source.
    Ok([uuid::Uuid::new_v4(), uuid::Uuid::new_v4()]
        .iter()
        .flat_map(|u| u.into_bytes())
        .collect())
}

/// `/readyz`: the database answers; in a cluster, the link to the other nodes is up.
struct Dependencies {
    store: store::Store,
    cluster: Option<Arc<RedisDelivery>>,
}

#[async_trait]
impl ReadinessProbe for Dependencies {
    async fn check(&self) -> Readiness {
        Readiness {
            database: self.store.ping().await.map_err(|err| err.to_string()),
            cluster: self.cluster.as_ref().map(|link| {
                if link.is_connected() {
                    Ok(())
                } else {
                    Err("not subscribed to the cluster's Redis channel".to_owned())
                }
            }),
        }
    }
}

async fn shutdown_signal() {
    let interrupt = async {
        if let Err(err) = tokio::signal::ctrl_c().await {
            tracing::error!(%err, "cannot listen for SIGINT");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(err) => {
                tracing::error!(%err, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = interrupt => {},
        () = terminate => {},
    }
    tracing::info!("shutting down: finishing in-flight requests");
}
