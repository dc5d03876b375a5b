//! Ingest: many senders across several chats, each with a window of unacknowledged
//! `messages:create` in flight, nobody in the rooms. Measures stored and acknowledged
//! messages/s and the send → ack latency. Against a cluster the senders of each chat
//! are spread over the nodes, so they take their turns across processes.

use anyhow::Result;
use serde_json::json;

use super::{Ctx, Scenario};
use crate::report::{Outcome, phase_outcome};
use crate::rig::{Rig, RigSpec};

/// Runs one flat-out phase.
pub async fn run(ctx: &Ctx<'_>) -> Result<Vec<Outcome>> {
    let sizes = ctx.sizes;
    let spec = RigSpec {
        rooms: sizes.ingest_chats,
        members: sizes.ingest_senders,
        senders: sizes.ingest_senders,
        window: sizes.window,
        join: false,
    };
    eprintln!(
        "    {} chats × {} senders, window {}, for {:?}",
        spec.rooms, spec.senders, spec.window, sizes.duration
    );
    let mut rig = Rig::setup(ctx.api, &ctx.nodes.ports(), ctx.users, spec).await?;
    let result = rig.run_phase(None, sizes.duration, ctx.nodes).await?;
    rig.close();
    let setup = json!({
        "nodes": ctx.nodes.count(),
        "chats": spec.rooms,
        "senders_per_chat": spec.senders,
        "window": spec.window,
        "duration_s": sizes.duration.as_secs_f64(),
    });
    Ok(vec![phase_outcome(
        Scenario::Ingest.name(),
        ctx.store,
        format!(
            "{}×{} senders, window {}",
            spec.rooms, spec.senders, spec.window
        ),
        &result,
        setup,
        false,
    )])
}
