//! Fan-out: rooms of connected members, a few of them sending, flat out and then at a
//! fixed rate. Measures deliveries/s, send → receive latency, loss and duplication,
//! and the server's CPU time and peak memory. Against a cluster the members are spread
//! over the nodes, and the latency is also reported by where the receiver is (on the
//! sender's node or another one).

use anyhow::Result;
use serde_json::json;

use super::{Ctx, Scenario};
use crate::report::{Cells, Outcome, phase_outcome, thousands};
use crate::rig::{PhaseResult, Rig, RigSpec};

/// Runs the flat-out phase and, unless the rate is 0, the paced phase.
pub async fn run(ctx: &Ctx<'_>) -> Result<Vec<Outcome>> {
    let sizes = ctx.sizes;
    let spec = RigSpec {
        rooms: sizes.rooms,
        members: sizes.members,
        senders: sizes.senders.min(sizes.members),
        window: sizes.window,
        join: true,
    };
    eprintln!(
        "    connecting {} rooms × {} members ({} senders each)",
        spec.rooms, spec.members, spec.senders
    );
    let mut rig = Rig::setup(ctx.api, &ctx.nodes.ports(), ctx.users, spec).await?;
    let setup = json!({
        "nodes": ctx.nodes.count(),
        "rooms": spec.rooms,
        "members": spec.members,
        "senders_per_room": spec.senders,
        "window": spec.window,
        "duration_s": sizes.duration.as_secs_f64(),
    });
    let mut outcomes = Vec::new();

    eprintln!("    flat out for {:?}", sizes.duration);
    let flat = rig.run_phase(None, sizes.duration, ctx.nodes).await?;
    let phase = format!("{}×{}, flat out", spec.rooms, spec.members);
    outcomes.push(phase_outcome(
        Scenario::Fanout.name(),
        ctx.store,
        phase.clone(),
        &flat,
        setup.clone(),
        true,
    ));
    outcomes.extend(by_node(ctx, &phase, &flat));

    if sizes.rate > 0.0 {
        eprintln!("    {} msg/s for {:?}", sizes.rate, sizes.duration);
        let paced = rig
            .run_phase(Some(sizes.rate), sizes.duration, ctx.nodes)
            .await?;
        let phase = format!("{}×{}, {} msg/s", spec.rooms, spec.members, sizes.rate);
        outcomes.push(phase_outcome(
            Scenario::Fanout.name(),
            ctx.store,
            phase.clone(),
            &paced,
            setup,
            true,
        ));
        outcomes.extend(by_node(ctx, &phase, &paced));
    }
    rig.close();
    Ok(outcomes)
}

/// In a cluster, two more rows for a phase: the latency of the receivers on the
/// sender's node and of those on another node. Every delivery already counts in the
/// phase's own row (and its correctness checks); these only split its latency, so
/// that the cost of the hop between nodes shows.
fn by_node(ctx: &Ctx<'_>, phase: &str, result: &PhaseResult) -> Vec<Outcome> {
    let Some(split) = &result.by_node else {
        return Vec::new();
    };
    [
        ("receivers on the sender's node", &split.same),
        ("receivers on another node", &split.other),
    ]
    .into_iter()
    .map(|(which, latency)| Outcome {
        scenario: Scenario::Fanout.name(),
        store: ctx.store,
        phase: format!("{phase}: {which}"),
        cells: Cells {
            throughput: format!("{} deliveries", thousands(latency.count() as f64)),
            ..Cells::default()
        }
        .with_latency(latency),
        figures: json!({
            "nodes": result.nodes,
            "of_phase": phase,
            "receivers": which,
            "latency": latency.summary(),
        }),
        problems: Vec::new(),
    })
    .collect()
}
