//! The HTTP accept loop: each TCP connection wrapped in its [`Link`](adapter_ws::link::Link)
//! and served by hyper with the time limits axum's own `serve` cannot set, so that
//! connections that hold the server without using it (silent, dripping headers, idle
//! keep-alive) are closed, and running out of file descriptors sheds new connections
//! with one log line instead of spinning on accept errors.

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::time::{Duration, Instant};

use adapter_http::ProblemIo;
use adapter_ws::link::{ConnLink, LinkedStream};
use axum::extract::ConnectInfo;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tower::ServiceExt;

/// How long the connections in flight get to finish at shutdown.
const DRAIN: Duration = Duration::from_secs(10);

/// How often, at most, running out of file descriptors is logged.
const SHEDDING_LOG_EVERY: Duration = Duration::from_secs(10);

/// Serves `router` on `listener` until `shutdown` resolves, then lets the connections
/// in flight finish (up to [`DRAIN`]). `idle` bounds how long a connection may wait for
/// a request's head: silent connections, slow headers and idle keep-alive alike.
///
/// # Errors
/// Never for a client's doing; only when the listener itself fails for good.
pub async fn serve<S>(
    listener: TcpListener,
    router: S,
    idle: Duration,
    shutdown: impl Future<Output = ()>,
) -> io::Result<()>
where
    S: tower::Service<
            hyper::Request<hyper::body::Incoming>,
            Response = axum::response::Response,
            Error = Infallible,
        > + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
{
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(idle)
        .keep_alive(true);
    // Told to finish: each connection ends after its request in flight. Each holds a
    // receiver of `open`, so `open_tx.closed()` says when the last one is gone.
    let (finish_tx, finish) = watch::channel(());
    let (open_tx, open) = watch::channel(());
    let mut reserve = FdReserve::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = &mut shutdown => break,
        };
        let (tcp, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(err) => {
                reserve.on_accept_error(&listener, &err).await;
                continue;
            }
        };
        // Small frames (acks, chat messages) must leave at once, not wait for Nagle's
        // algorithm to meet the peer's delayed ACK (tens of milliseconds a round trip).
        if let Err(err) = tcp.set_nodelay(true) {
            tracing::debug!(%err, "cannot set TCP_NODELAY");
        }
        let stream = LinkedStream::new(tcp);
        let link = ConnLink(stream.link());
        let service = router
            .clone()
            .map_request(move |mut request: hyper::Request<hyper::body::Incoming>| {
                request.extensions_mut().insert(ConnectInfo(link.clone()));
                // The client's address, for the rate limits.
                request.extensions_mut().insert(ConnectInfo(peer));
                request
            })
            .map_err(|never: Infallible| match never {});
        let connection = builder
            // hyper's own answers to requests it cannot parse get a problem body too.
            .serve_connection(
                TokioIo::new(ProblemIo::new(stream)),
                TowerToHyperService::new(service),
            )
            .with_upgrades();
        let mut finish = finish.clone();
        let open = open.clone();
        tokio::spawn(async move {
            let mut connection = std::pin::pin!(connection);
            let ended = tokio::select! {
                ended = connection.as_mut() => ended,
                _ = finish.changed() => {
                    connection.as_mut().graceful_shutdown();
                    connection.await
                }
            };
            // A client that goes away mid-request is its own business, not an error.
            if let Err(err) = ended {
                tracing::debug!(%err, "connection ended with an error");
            }
            drop(open);
        });
    }
    drop(listener);
    let _ = finish_tx.send(());
    drop(open);
    if tokio::time::timeout(DRAIN, open_tx.closed()).await.is_err() {
        tracing::warn!("connections still open after {DRAIN:?}; stopping anyway");
    }
    Ok(())
}

/// One file descriptor kept in reserve: when the process runs out, it is freed to
/// accept the waiting connection and close it at once (the client hears "no" instead
/// of hanging in the backlog), then taken again. Logged at most every
/// [`SHEDDING_LOG_EVERY`], with how many were shed.
struct FdReserve {
    file: Option<std::fs::File>,
    shed: u64,
    logged_at: Option<Instant>,
}

impl FdReserve {
    fn new() -> Self {
        Self {
            file: std::fs::File::open("/dev/null").ok(),
            shed: 0,
            logged_at: None,
        }
    }

    async fn on_accept_error(&mut self, listener: &TcpListener, err: &io::Error) {
        if is_per_connection(err) {
            return;
        }
        if !is_out_of_descriptors(err) {
            tracing::error!(%err, "cannot accept connections; retrying");
            tokio::time::sleep(Duration::from_millis(100)).await;
            return;
        }
        self.file = None;
        // Only a connection already waiting: one that comes later must find the
        // descriptors the held ones free by then, not be shed.
        if let Ok(Ok((tcp, _))) = tokio::time::timeout(Duration::ZERO, listener.accept()).await {
            drop(tcp);
            self.shed += 1;
        }
        self.file = std::fs::File::open("/dev/null").ok();
        if self.file.is_none() {
            // Nothing to shed with: let the held connections time out first.
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        if self
            .logged_at
            .is_none_or(|at| at.elapsed() >= SHEDDING_LOG_EVERY)
        {
            tracing::warn!(
                shed = self.shed,
                "out of file descriptors: closing new connections at once until some end (raise the open-files limit, or see HTTP_IDLE_TIMEOUT)"
            );
            self.logged_at = Some(Instant::now());
            self.shed = 0;
        }
    }
}

/// Errors of one connection that failed while being accepted; the listener is fine.
fn is_per_connection(err: &io::Error) -> bool {
    matches!(
        err.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    )
}

/// `EMFILE` or `ENFILE`: the process or the system has no file descriptor left.
fn is_out_of_descriptors(err: &io::Error) -> bool {
    matches!(err.raw_os_error(), Some(24 | 23))
}
