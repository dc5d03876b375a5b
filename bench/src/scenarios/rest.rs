//! REST: requests/s and latency of `GET /chats` (a read every client makes) and of
//! `POST /auth/login` (argon2-bound by design), then the message latency of a room at
//! a steady rate without and with a login storm running beside it: does password
//! hashing starve the real-time path?

use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use reqwest::StatusCode;
use serde_json::json;

use super::{Ctx, Scenario};
use crate::api::{Api, PASSWORD, User};
use crate::report::{Cells, Outcome, cpu, mib, phase_outcome, thousands};
use crate::rig::{Rig, RigSpec, per_second};
use crate::server::ProcSample;
use crate::stats::Histogram;

/// Most requests one client makes in one phase.
const MAX_REQUESTS_PER_CLIENT: u64 = 10_000_000;

/// Runs the four phases.
pub async fn run(ctx: &Ctx<'_>) -> Result<Vec<Outcome>> {
    let sizes = ctx.sizes;
    let readers = ctx
        .users
        .get(..sizes.rest_clients.max(1))
        .context("the REST scenario needs users")?;
    let others: Vec<&User> = readers.iter().skip(1).collect();
    for i in 0..sizes.rest_chats {
        ctx.api
            .create_chat(&readers[0], &format!("bench rest {i}"), &others)
            .await?;
    }
    let mut outcomes = Vec::new();

    eprintln!(
        "    GET /chats, {} clients, {:?}",
        readers.len(),
        sizes.duration
    );
    let reads = hammer(
        ctx.api.clone(),
        Some(ctx.server.pid()),
        readers.to_vec(),
        Request::Chats,
        sizes.duration,
    )
    .await?;
    outcomes.push(reads.outcome(ctx, "GET /chats", readers.len()));

    let loggers = ctx
        .users
        .get(..sizes.login_clients.max(1))
        .context("the REST scenario needs users")?;
    eprintln!(
        "    POST /auth/login, {} clients, {:?}",
        loggers.len(),
        sizes.duration
    );
    let logins = hammer(
        ctx.api.clone(),
        Some(ctx.server.pid()),
        loggers.to_vec(),
        Request::Login,
        sizes.duration,
    )
    .await?;
    outcomes.push(logins.outcome(ctx, "POST /auth/login", loggers.len()));

    let spec = RigSpec {
        rooms: 1,
        members: sizes.storm_members,
        senders: 2.min(sizes.storm_members),
        window: 32,
        join: true,
    };
    let mut rig = Rig::setup(ctx.api, &ctx.nodes.ports(), ctx.users, spec).await?;
    let setup = json!({
        "members": spec.members,
        "senders": spec.senders,
        "rate_per_s": sizes.storm_rate,
        "login_clients": loggers.len(),
    });
    eprintln!(
        "    a {}-member room at {} msg/s, without and with a login storm",
        spec.members, sizes.storm_rate
    );
    let calm = rig
        .run_phase(Some(sizes.storm_rate), sizes.duration, ctx.nodes)
        .await?;
    outcomes.push(phase_outcome(
        Scenario::Rest.name(),
        ctx.store,
        format!(
            "msg latency, 1×{} at {} msg/s, no storm",
            spec.members, sizes.storm_rate
        ),
        &calm,
        setup.clone(),
        true,
    ));
    let storm = tokio::spawn(hammer(
        ctx.api.clone(),
        None,
        loggers.to_vec(),
        Request::Login,
        sizes.duration,
    ));
    let stormy = rig
        .run_phase(Some(sizes.storm_rate), sizes.duration, ctx.nodes)
        .await?;
    let storm = storm.await.context("the login storm failed")??;
    rig.close();
    let mut stormy_outcome = phase_outcome(
        Scenario::Rest.name(),
        ctx.store,
        format!(
            "msg latency, 1×{} at {} msg/s, login storm",
            spec.members, sizes.storm_rate
        ),
        &stormy,
        setup,
        true,
    );
    if let Some(figures) = stormy_outcome.figures.as_object_mut() {
        figures.insert("storm_logins_per_s".to_owned(), json!(storm.per_s()));
        figures.insert("storm_login_latency".to_owned(), storm.latency.summary());
    }
    stormy_outcome
        .problems
        .extend(storm.problems("storm login"));
    outcomes.push(stormy_outcome);
    Ok(outcomes)
}

/// The request a REST client repeats.
#[derive(Debug, Clone, Copy)]
enum Request {
    /// `GET /chats` with the client's token.
    Chats,
    /// `POST /auth/login` with the client's username and password.
    Login,
}

/// What a group of REST clients measured.
struct Hammered {
    ok: u64,
    failed: u64,
    first_failure: Option<String>,
    latency: Histogram,
    span_s: f64,
    server_cpu_s: f64,
    server_peak_kib: u64,
}

impl Hammered {
    fn per_s(&self) -> f64 {
        per_second(self.ok, self.span_s)
    }

    fn problems(&self, what: &str) -> Vec<String> {
        let mut problems = Vec::new();
        if self.ok == 0 {
            problems.push(format!("no {what} request succeeded"));
        }
        if self.failed > 0 {
            problems.push(format!(
                "{} {what} requests failed (first: {})",
                self.failed,
                self.first_failure.as_deref().unwrap_or("?")
            ));
        }
        problems
    }

    fn outcome(&self, ctx: &Ctx<'_>, phase: &str, clients: usize) -> Outcome {
        Outcome {
            scenario: Scenario::Rest.name(),
            store: ctx.store,
            phase: phase.to_owned(),
            cells: Cells {
                throughput: format!("{} req/s", thousands(self.per_s())),
                loss: format!("{} failed", self.failed),
                cpu: cpu(self.server_cpu_s, self.span_s),
                rss: format!("{} peak", mib(self.server_peak_kib)),
                ..Cells::default()
            }
            .with_latency(&self.latency),
            figures: json!({
                "clients": clients,
                "requests_ok": self.ok,
                "requests_failed": self.failed,
                "requests_per_s": self.per_s(),
                "latency": self.latency.summary(),
                "span_s": self.span_s,
                "server_cpu_s": self.server_cpu_s,
                "server_peak_rss_kib": self.server_peak_kib,
            }),
            problems: self.problems(phase),
        }
    }
}

/// One client per user repeats `request` back to back for `duration`.
/// With `server_pid`, the server's CPU time and peak memory are measured too.
async fn hammer(
    api: Api,
    server_pid: Option<u32>,
    users: Vec<User>,
    request: Request,
    duration: Duration,
) -> Result<Hammered> {
    let sample = || server_pid.and_then(|pid| ProcSample::of(pid).ok());
    let before = sample();
    let started = Instant::now();
    let deadline = started + duration;
    let clients = users.iter().map(|user| {
        let api = api.clone();
        let user = user.clone();
        tokio::spawn(async move {
            let mut latency = Histogram::default();
            let (mut ok, mut failed, mut first_failure) = (0u64, 0u64, None);
            for _ in 0..MAX_REQUESTS_PER_CLIENT {
                if Instant::now() >= deadline {
                    break;
                }
                let builder = match request {
                    Request::Chats => api.http.get(api.url("/chats")).bearer_auth(&user.token),
                    Request::Login => api
                        .http
                        .post(api.url("/auth/login"))
                        .json(&json!({"username": user.username, "password": PASSWORD})),
                };
                let begun = Instant::now();
                let answer = builder.timeout(Duration::from_secs(30)).send().await;
                let outcome = match answer {
                    Ok(response) if response.status() == StatusCode::OK => {
                        response.bytes().await.map(drop).map_err(|e| e.to_string())
                    }
                    Ok(response) => Err(format!("status {}", response.status())),
                    Err(err) => Err(err.to_string()),
                };
                match outcome {
                    Ok(()) => {
                        latency.record(begun.elapsed());
                        ok += 1;
                    }
                    Err(why) => {
                        failed += 1;
                        first_failure.get_or_insert(why);
                    }
                }
            }
            (latency, ok, failed, first_failure)
        })
    });
    let clients: Vec<_> = clients.collect();
    let mut total = Hammered {
        ok: 0,
        failed: 0,
        first_failure: None,
        latency: Histogram::default(),
        span_s: 0.0,
        server_cpu_s: 0.0,
        server_peak_kib: 0,
    };
    for client in clients {
        let (latency, ok, failed, first_failure) = client.await.context("a REST client failed")?;
        total.latency.merge(&latency);
        total.ok += ok;
        total.failed += failed;
        if total.first_failure.is_none() {
            total.first_failure = first_failure;
        }
    }
    total.span_s = started.elapsed().as_secs_f64();
    if let (Some(before), Some(after)) = (before, sample()) {
        total.server_cpu_s = after.cpu_seconds - before.cpu_seconds;
        total.server_peak_kib = after.peak_rss_kib;
    }
    Ok(total)
}
