//! Fan-out: rooms of connected members, a few of them sending, flat out and then at a
//! fixed rate. Measures deliveries/s, send → receive latency, loss and duplication,
//! and the server's CPU time and peak memory.

use anyhow::Result;
use serde_json::json;

use super::{Ctx, Scenario};
use crate::report::{Outcome, phase_outcome};
use crate::rig::{Rig, RigSpec};

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
    let mut rig = Rig::setup(ctx.api, ctx.server.port, ctx.users, spec).await?;
    let setup = json!({
        "rooms": spec.rooms,
        "members": spec.members,
        "senders_per_room": spec.senders,
        "window": spec.window,
        "duration_s": sizes.duration.as_secs_f64(),
    });
    let mut outcomes = Vec::new();

    eprintln!("    flat out for {:?}", sizes.duration);
    let flat = rig.run_phase(None, sizes.duration, ctx.server).await?;
    outcomes.push(phase_outcome(
        Scenario::Fanout.name(),
        ctx.store,
        format!("{}×{}, flat out", spec.rooms, spec.members),
        &flat,
        setup.clone(),
        true,
    ));

    if sizes.rate > 0.0 {
        eprintln!("    {} msg/s for {:?}", sizes.rate, sizes.duration);
        let paced = rig
            .run_phase(Some(sizes.rate), sizes.duration, ctx.server)
            .await?;
        outcomes.push(phase_outcome(
            Scenario::Fanout.name(),
            ctx.store,
            format!("{}×{}, {} msg/s", spec.rooms, spec.members, sizes.rate),
            &paced,
            setup,
            true,
        ));
    }
    rig.close();
    Ok(outcomes)
}
