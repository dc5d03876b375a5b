//! This store's metrics (README.md, "Metrics"): the use of its connection pool, sampled
//! when `/metrics` is scraped (messages stored are counted by `sql-batch`).

use sqlx::PgPool;

/// The `store` label of every metric of this crate.
const STORE: &str = "postgres";

/// Describes this store's metrics, its group commit's included, to the installed
/// recorder (the `# HELP` lines).
pub fn describe() {
    sql_batch::describe_metrics();
    ::metrics::describe_gauge!(
        "messenger_db_pool_connections",
        "Database connections open, in use or idle, read at each scrape."
    );
    ::metrics::describe_gauge!(
        "messenger_db_pool_max_connections",
        "The most connections each database pool opens."
    );
}

/// Sets the pool gauges from `pool` as it is now.
pub(crate) fn record_pool(pool: &PgPool, name: &'static str) {
    let size = pool.size();
    let idle = u32::try_from(pool.num_idle()).unwrap_or(u32::MAX);
    let labels = |state: &'static str| [("store", STORE), ("pool", name), ("state", state)];
    ::metrics::gauge!("messenger_db_pool_connections", &labels("in_use"))
        .set(size.saturating_sub(idle));
    ::metrics::gauge!("messenger_db_pool_connections", &labels("idle")).set(idle);
    ::metrics::gauge!("messenger_db_pool_max_connections", "store" => STORE, "pool" => name)
        .set(pool.options().get_max_connections());
}
