//! Pacing of each user's messages: past a burst, a user's `messages:create` events wait
//! for their turn at a steady rate instead of being refused, so nothing a client sends
//! is lost, and one user cannot flood the rooms (Rocket.Chat allows 5 a second). The
//! rate is shared by all of a user's sockets on this node, of either protocol. While a
//! socket's send waits, its next events wait too (they are handled in order), and its
//! queue of unread events stays bounded by the incoming byte budget.

use std::num::NonZeroU32;
use std::sync::{Arc, Weak};
use std::time::Duration;

use domain::UserId;
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

/// How often the users whose pace has fully recovered are forgotten.
const SWEEP_EVERY: Duration = Duration::from_secs(60);

/// A user's message rate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pacing {
    /// Messages a second, once the burst is used.
    pub per_second: NonZeroU32,
    /// Messages sent at once before pacing starts.
    pub burst: NonZeroU32,
}

/// The pace of every user on this node.
pub(crate) struct Pacer {
    limiter: Option<DefaultKeyedRateLimiter<UserId>>,
}

impl Pacer {
    /// Paces at `pacing`, or not at all; its sweep runs while the pacer lives.
    pub(crate) fn new(pacing: Option<Pacing>) -> Arc<Self> {
        let limiter = pacing.map(|pacing| {
            RateLimiter::dashmap(Quota::per_second(pacing.per_second).allow_burst(pacing.burst))
        });
        let pacer = Arc::new(Self { limiter });
        if pacer.limiter.is_some() {
            tokio::spawn(sweep(Arc::downgrade(&pacer)));
        }
        pacer
    }

    /// Waits until `user` may send one more message.
    pub(crate) async fn wait_turn(&self, user: UserId) {
        if let Some(limiter) = &self.limiter {
            limiter.until_key_ready(&user).await;
        }
    }
}

async fn sweep(pacer: Weak<Pacer>) {
    let mut every = tokio::time::interval(SWEEP_EVERY);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        every.tick().await;
        let Some(pacer) = pacer.upgrade() else {
            return;
        };
        if let Some(limiter) = &pacer.limiter {
            limiter.retain_recent();
            limiter.shrink_to_fit();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn past_its_burst_a_user_waits_for_the_rate_and_others_do_not() {
        let rate = |n| NonZeroU32::new(n).expect("positive");
        let pacer = Pacer::new(Some(Pacing {
            per_second: rate(20),
            burst: rate(5),
        }));
        let alice = UserId::from_uuid(uuid::Uuid::now_v7());
        let bob = UserId::from_uuid(uuid::Uuid::now_v7());
        let started = std::time::Instant::now();
        for _ in 0..10 {
            pacer.wait_turn(alice).await;
        }
        // The burst of five at once, then five more at 20 a second: 250 ms at least.
        assert!(
            started.elapsed() >= Duration::from_millis(245),
            "{:?}",
            started.elapsed()
        );
        let limiter = pacer.limiter.as_ref().expect("pacing is on");
        assert!(limiter.check_key(&bob).is_ok(), "bob has his own burst");
    }
}
