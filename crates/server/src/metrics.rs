//! Prometheus metrics: the process's recorder (installed once, before anything counts),
//! and `GET /metrics`, which samples the gauges read on demand (rooms, database pools)
//! and renders every metric in the Prometheus text format. The metrics themselves are
//! defined by the crates that count them; README.md, "Metrics", lists them all.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use adapter_ws::RoomGauge;
use anyhow::Context;
use axum::Router;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use crate::store::Store;

/// Bucket bounds of the latency histograms (every metric in seconds): from well under a
/// millisecond (a cached read) to the request timeout's order.
const SECONDS: &[f64] = &[
    0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// Bucket bounds of the group-commit batch sizes (items; at most 512 a batch).
const BATCH_SIZES: &[f64] = &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0];

/// How often histograms are drained into their buckets between scrapes, which keeps
/// their memory bounded however rarely the server is scraped.
const UPKEEP_EVERY: Duration = Duration::from_secs(5);

/// The installed recorder's handle, once installed.
static HANDLE: Mutex<Option<PrometheusHandle>> = Mutex::new(None);

/// Installs this process's Prometheus recorder, the first time, and returns its handle.
/// Later calls (several applications in one test process) share it.
///
/// # Errors
/// When another recorder was installed first.
pub fn install() -> anyhow::Result<PrometheusHandle> {
    let mut installed = HANDLE.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(handle) = &*installed {
        return Ok(handle.clone());
    }
    let recorder = PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Suffix("_seconds".to_owned()), SECONDS)
        .and_then(|builder| {
            builder.set_buckets_for_metric(
                Matcher::Full("messenger_group_commit_batch_size".to_owned()),
                BATCH_SIZES,
            )
        })
        .context("cannot set up the metrics' histograms")?
        .build_recorder();
    let handle = recorder.handle();
    metrics::set_global_recorder(recorder)
        .context("another metrics recorder is installed in this process")?;
    adapter_http::describe_metrics();
    adapter_ws::describe_metrics();
    adapter_redis::describe_metrics();
    adapter_postgres::describe_metrics();
    adapter_sqlite::describe_metrics();
    let upkeep = handle.clone();
    // A thread, not a task: it outlives any one runtime (tests start several).
    std::thread::Builder::new()
        .name("metrics-upkeep".to_owned())
        .spawn(move || {
            loop {
                std::thread::sleep(UPKEEP_EVERY);
                upkeep.run_upkeep();
            }
        })
        .context("cannot start the metrics upkeep thread")?;
    *installed = Some(handle.clone());
    Ok(handle)
}

/// What a scrape reads.
struct Scrape {
    handle: PrometheusHandle,
    rooms: RoomGauge,
    store: Store,
}

/// `GET /metrics` over `handle`, sampling `rooms` and `store`'s pools at each scrape.
pub fn router(handle: PrometheusHandle, rooms: RoomGauge, store: Store) -> Router {
    Router::new()
        .route("/metrics", get(render))
        .with_state(Arc::new(Scrape {
            handle,
            rooms,
            store,
        }))
}

async fn render(State(scrape): State<Arc<Scrape>>) -> impl IntoResponse {
    scrape.rooms.record();
    scrape.store.record_pool_usage();
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        scrape.handle.render(),
    )
}
