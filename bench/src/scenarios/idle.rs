//! Idle connections: N authenticated connections, each in one chat's room, doing
//! nothing but answering pings; Socket.IO (`idle`) or the plain `/ws` protocol
//! (`idle-ws`). Measures the server's resident memory per connection,
//! ((RSS after) − (RSS before)) / N.
//!
//! One source address has about 28,000 ephemeral ports towards one server port, so the
//! connections come from several loopback addresses (127.0.0.2, 127.0.0.3, …; all of
//! 127/8 is the loopback interface on Linux).

use std::net::Ipv4Addr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use futures_util::{StreamExt, stream};
use serde_json::json;

use super::{Ctx, Scenario};
use crate::report::{Cells, Outcome, cpu, mib, thousands};
use crate::server::ProcSample;
use crate::sio::{Connect, Idle, Liveness, Protocol, Socket};
use crate::stats::Histogram;

/// Connections from one source address (well under its ~28,000 ephemeral ports).
const PER_SOURCE_ADDRESS: usize = 20_000;

/// Source addresses used at least, so that even a small run goes through the
/// multi-address path.
const MIN_SOURCE_ADDRESSES: usize = 2;

/// Handshakes in flight at once.
const CONNECT_CONCURRENCY: usize = 256;

/// How long the server is given to settle after the last connection.
const SETTLE: Duration = Duration::from_secs(2);

/// The read buffer of an idle connection (its packets are pings).
const READ_BUFFER: usize = 4 * 1024;

/// Connects, measures, holds, measures again, closes.
pub async fn run(ctx: &Ctx<'_>, protocol: Protocol) -> Result<Vec<Outcome>> {
    let scenario = match protocol {
        Protocol::SocketIo => Scenario::Idle,
        Protocol::Ws => Scenario::IdleWs,
    };
    let sizes = ctx.sizes;
    let n = sizes.connections;
    let users = ctx
        .users
        .get(..sizes.idle_users.max(1))
        .context("the idle scenario needs users")?;
    let rest: Vec<_> = users.iter().skip(1).collect();
    let chat = ctx.api.create_chat(&users[0], "bench idle", &rest).await?;
    let port = ctx.server.port;
    let liveness = Arc::new(Liveness::default());

    // One connection first, so that what every process pays once (pools, buffers,
    // lazily made tables) is in the "before".
    let mut warm = Socket::connect(&Connect {
        protocol,
        port,
        token: &users[0].token,
        local: None,
        read_buffer: READ_BUFFER,
    })
    .await?;
    warm.join(&[&chat]).await?;
    let mut tasks = vec![warm.spawn(Idle, None, Arc::clone(&liveness))];
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = ctx.server.sample()?;
    let client_before = ProcSample::own()?;

    let sources = n
        .div_ceil(PER_SOURCE_ADDRESS)
        .clamp(MIN_SOURCE_ADDRESSES, 253);
    eprintln!("    opening {n} connections from {sources} loopback address(es)");
    let started = Instant::now();
    let mut handshakes = Histogram::default();
    let mut failed = 0u64;
    let mut first_failure = None;
    let mut results = stream::iter(0..n)
        .map(|i| {
            let token = &users[i % users.len()].token;
            let chat = &chat;
            let source = u8::try_from(2 + i % sources).unwrap_or(2);
            async move {
                let begun = Instant::now();
                let mut socket = Socket::connect(&Connect {
                    protocol,
                    port,
                    token,
                    local: Some(Ipv4Addr::new(127, 0, 0, source)),
                    read_buffer: READ_BUFFER,
                })
                .await?;
                socket.join(&[chat]).await?;
                Ok::<_, anyhow::Error>((socket, begun.elapsed()))
            }
        })
        .buffer_unordered(CONNECT_CONCURRENCY);
    while let Some(result) = results.next().await {
        match result {
            Ok((socket, took)) => {
                handshakes.record(took);
                tasks.push(socket.spawn(Idle, None, Arc::clone(&liveness)));
            }
            Err(err) => {
                failed += 1;
                first_failure.get_or_insert_with(|| format!("{err:#}"));
            }
        }
    }
    drop(results);
    let connect_s = started.elapsed().as_secs_f64();
    let connected = handshakes.count();

    tokio::time::sleep(SETTLE).await;
    let after = ctx.server.sample()?;
    let client_after = ProcSample::own()?;
    tokio::time::sleep(sizes.idle_hold).await;
    let held = ctx.server.sample()?;
    let dropped = liveness.dropped.load(Ordering::Relaxed);

    liveness.stopping.store(true, Ordering::Relaxed);
    for task in &tasks {
        task.abort();
    }

    let per_connection = |a: u64, b: u64| -> f64 {
        if connected == 0 {
            0.0
        } else {
            a.saturating_sub(b) as f64 / connected as f64
        }
    };
    let server_kib = per_connection(after.rss_kib, before.rss_kib);
    let client_kib = per_connection(client_after.rss_kib, client_before.rss_kib);
    let hold_s = sizes.idle_hold.as_secs_f64();

    let mut problems = Vec::new();
    if failed > 0 {
        problems.push(format!(
            "{failed} of {n} connections failed (first: {})",
            first_failure.as_deref().unwrap_or("?")
        ));
    }
    if dropped > 0 {
        problems.push(format!(
            "{dropped} connections dropped (first: {})",
            liveness.first_drop().as_deref().unwrap_or("?")
        ));
    }
    let cells = Cells {
        throughput: format!(
            "{} held; {server_kib:.1} KiB/conn",
            thousands(connected as f64)
        ),
        loss: format!("{failed} failed"),
        cpu: cpu(held.cpu_seconds - after.cpu_seconds, hold_s),
        rss: format!("{} → {}", mib(before.rss_kib), mib(after.rss_kib)),
        ..Cells::default()
    }
    .with_latency(&handshakes);
    let figures = json!({
        "connections_requested": n,
        "connections_held": connected,
        "connections_failed": failed,
        "source_addresses": sources,
        "users": users.len(),
        "connect_s": connect_s,
        "connects_per_s": if connect_s > 0.0 { connected as f64 / connect_s } else { 0.0 },
        "handshake_and_join_latency": handshakes.summary(),
        "server_rss_before_kib": before.rss_kib,
        "server_rss_after_kib": after.rss_kib,
        "server_rss_per_connection_kib": server_kib,
        "server_peak_rss_kib": held.peak_rss_kib,
        "server_cpu_while_idle_s": held.cpu_seconds - after.cpu_seconds,
        "idle_hold_s": hold_s,
        "client_rss_per_connection_kib": client_kib,
        "dropped_connections": dropped,
    });
    Ok(vec![Outcome {
        scenario: scenario.name(),
        store: ctx.store,
        phase: format!("{} connections", thousands(n as f64)),
        cells,
        figures,
        problems,
    }])
}
