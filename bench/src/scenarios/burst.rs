//! Burst into slow readers: one Socket.IO sender emits a burst of `messages:create`
//! without waiting into a room whose members read at different speeds: half read as
//! fast as they can, half are paced like phones on a poor link, and a couple stop
//! reading altogether. Reports what was delivered of what was expected (readers that
//! keep reading must get everything, in order), how many stalled readers the server
//! cut off at their byte budget, the server's peak memory during the burst and its CPU
//! per delivery.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use serde_json::json;
use tokio::sync::mpsc;

use super::{Ctx, Scenario};
use crate::report::{Cells, Outcome, cpu, mib, thousands};
use crate::sio::{Connect, Handler, Liveness, Protocol, Socket};

/// Characters of each message's content (about 1 KB on the wire).
const CONTENT: usize = 1000;

/// What a paced reader reads, in frames per second (about 1.2 MB/s).
const PACE: f64 = 1000.0;

/// Members that stop reading once they have joined.
const STALLED: usize = 2;

/// The read buffer of a reading member.
const READ_BUFFER: usize = 64 * 1024;

/// How often the server's memory is sampled during the burst.
const SAMPLE_EVERY: Duration = Duration::from_millis(20);

/// What one reader heard.
#[derive(Default)]
struct Tally {
    received: AtomicU64,
    out_of_order: AtomicU64,
}

/// Counts `messages:new` and checks that each is the next of the burst.
struct Reader(Arc<Tally>);

impl Handler for Reader {
    fn event(&mut self, array: &str) {
        if !array.contains("\"messages:new\"") {
            return;
        }
        let expected = self.0.received.fetch_add(1, Ordering::Relaxed);
        if index_of(array) != Some(expected) {
            self.0.out_of_order.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// The sender's answers.
#[derive(Default)]
struct Sends {
    acked: AtomicU64,
    errors: AtomicU64,
}

struct Sender(Arc<Sends>);

impl Handler for Sender {
    fn event(&mut self, array: &str) {
        if array.starts_with("[\"exception\"") {
            self.0.errors.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn ack(&mut self, _id: u64, args: &str) {
        if args.contains("\"status\":\"error\"") {
            self.0.errors.fetch_add(1, Ordering::Relaxed);
        } else {
            self.0.acked.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// The burst index a message's content starts with (`"content":"<i> xxx…"`).
fn index_of(array: &str) -> Option<u64> {
    let start = array.find("\"content\":\"")? + "\"content\":\"".len();
    let digits: String = array[start..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().ok()
}

/// Sets the room up, sends the burst, waits for the readers, reports.
pub async fn run(ctx: &Ctx<'_>) -> Result<Vec<Outcome>> {
    let sizes = ctx.sizes;
    let burst = sizes.burst_messages;
    let members = sizes.burst_members.max(STALLED + 3);
    let users = ctx
        .users
        .get(..members)
        .context("the burst scenario needs users")?;
    let others: Vec<_> = users.iter().skip(1).collect();
    let chat = ctx
        .api
        .create_chat(&users[0], "bench burst", &others)
        .await?;
    let port = ctx.server.port;
    let connect = |token| Connect {
        protocol: Protocol::SocketIo,
        port,
        token,
        local: None,
        read_buffer: READ_BUFFER,
    };

    let liveness = Arc::new(Liveness::default());
    let readers = members - 1 - STALLED;
    let paced = readers / 2;
    let mut tallies = Vec::with_capacity(readers);
    let mut tasks = Vec::new();
    let mut stalled = Vec::new();
    for (i, user) in users.iter().enumerate().skip(1) {
        let mut socket = Socket::connect(&connect(&user.token)).await?;
        socket.join(&[&chat]).await?;
        if i > readers {
            stalled.push(socket.stall());
            continue;
        }
        let tally = Arc::new(Tally::default());
        let reader = Reader(Arc::clone(&tally));
        tasks.push(if i <= paced {
            socket.spawn_paced(reader, PACE, Arc::clone(&liveness))
        } else {
            socket.spawn(reader, None, Arc::clone(&liveness))
        });
        tallies.push(tally);
    }
    let sender_socket = Socket::connect(&connect(&users[0].token)).await?;
    let first_ack = sender_socket.next_ack_id();
    let sends = Arc::new(Sends::default());
    let (outgoing, queue) = mpsc::channel(burst.max(1));
    tasks.push(sender_socket.spawn(
        Sender(Arc::clone(&sends)),
        Some(queue),
        Arc::clone(&liveness),
    ));
    eprintln!(
        "    {members} members ({} reading flat out, {paced} at {PACE} frames/s, {STALLED} stalled), {burst} messages of {CONTENT} characters",
        readers - paced
    );

    let padding = "x".repeat(CONTENT.saturating_sub(8));
    let before = ctx.server.sample()?;
    let started = Instant::now();
    for i in 0..burst {
        let data = json!({ "chatId": chat, "content": format!("{i} {padding}") });
        let frame = format!("42{}[\"messages:create\",{data}]", first_ack + i as u64);
        outgoing.send(frame).await.context("the sender stopped")?;
    }
    // The readers' task, not the burst's, is the deadline: paced ones need time.
    let deadline = started
        + Duration::from_secs_f64(burst as f64 / PACE * 3.0)
        + sizes.duration.max(Duration::from_secs(10));
    let mut peak_rss = before.rss_kib;
    let expected = burst as u64;
    loop {
        let sample = ctx.server.sample()?;
        peak_rss = peak_rss.max(sample.rss_kib);
        let reading_done = tallies
            .iter()
            .all(|t| t.received.load(Ordering::Relaxed) >= expected);
        let sends_done =
            sends.acked.load(Ordering::Relaxed) + sends.errors.load(Ordering::Relaxed) >= expected;
        let cut = liveness.dropped.load(Ordering::Relaxed) > 0;
        if (reading_done && sends_done) || cut || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(SAMPLE_EVERY).await;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let after = ctx.server.sample()?;
    let mut stalled_cut = 0;
    for socket in stalled {
        if socket.closed_by_server(Duration::from_secs(5)).await {
            stalled_cut += 1;
        }
    }
    liveness.stopping.store(true, Ordering::Relaxed);
    let dropped = liveness.dropped.load(Ordering::Relaxed);
    for task in &tasks {
        task.abort();
    }

    let delivered: u64 = tallies
        .iter()
        .map(|t| t.received.load(Ordering::Relaxed))
        .sum();
    let out_of_order: u64 = tallies
        .iter()
        .map(|t| t.out_of_order.load(Ordering::Relaxed))
        .sum();
    let expected_deliveries = expected * readers as u64;
    let acked = sends.acked.load(Ordering::Relaxed);
    let errors = sends.errors.load(Ordering::Relaxed);
    let cpu_s = after.cpu_seconds - before.cpu_seconds;
    let cpu_us_per_delivery = if delivered > 0 {
        cpu_s * 1e6 / delivered as f64
    } else {
        0.0
    };

    let mut problems = Vec::new();
    if delivered != expected_deliveries {
        problems.push(format!(
            "readers got {delivered} of {expected_deliveries} messages"
        ));
    }
    if out_of_order > 0 {
        problems.push(format!("{out_of_order} messages out of order or repeated"));
    }
    if acked != expected || errors > 0 {
        problems.push(format!(
            "the sender got {acked} acks and {errors} errors for {expected} messages"
        ));
    }
    if dropped > 0 {
        problems.push(format!(
            "{dropped} reading connections were closed (first: {})",
            liveness.first_drop().as_deref().unwrap_or("?")
        ));
    }
    let cells = Cells {
        throughput: format!(
            "{} of {} delivered",
            thousands(delivered as f64),
            thousands(expected_deliveries as f64)
        ),
        loss: format!("{stalled_cut}/{STALLED} stalled cut"),
        cpu: format!(
            "{} ({cpu_us_per_delivery:.2} µs/delivery)",
            cpu(cpu_s, elapsed)
        ),
        rss: format!("{} → peak {}", mib(before.rss_kib), mib(peak_rss)),
        ..Cells::default()
    };
    let figures = json!({
        "members": members,
        "readers_flat_out": readers - paced,
        "readers_paced": paced,
        "pace_frames_per_s": PACE,
        "stalled": STALLED,
        "burst_messages": burst,
        "content_chars": CONTENT,
        "delivered": delivered,
        "expected": expected_deliveries,
        "delivered_ratio": if expected_deliveries > 0 { delivered as f64 / expected_deliveries as f64 } else { 1.0 },
        "out_of_order": out_of_order,
        "acked": acked,
        "sender_errors": errors,
        "stalled_cut_off": stalled_cut,
        "elapsed_s": elapsed,
        "server_rss_before_kib": before.rss_kib,
        "server_peak_rss_kib": peak_rss,
        "server_cpu_s": cpu_s,
        "server_cpu_us_per_delivery": cpu_us_per_delivery,
    });
    Ok(vec![Outcome {
        scenario: Scenario::Burst.name(),
        store: ctx.store,
        phase: format!("{burst} × {members} members"),
        cells,
        figures,
        problems,
    }])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_burst_index_is_read_from_the_content() {
        assert_eq!(
            index_of(r#"["messages:new",{"chatId":"c","content":"42 xxx","id":"i"}]"#),
            Some(42)
        );
        assert_eq!(index_of(r#"["messages:new",{"content":"x"}]"#), None);
    }
}
