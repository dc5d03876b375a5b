//! Rate limits on the routes a password guesser hammers: logins and registrations per
//! client address, and failed logins per username (guessing one account's password from
//! many addresses). A refused request is `429` with `Retry-After` (see `error.rs`).
//!
//! The limiters are governor's keyed GCRA limiters; a sweep every [`SWEEP_EVERY`]
//! forgets the keys whose limit has fully recovered, so memory stays bounded by the
//! addresses and usernames seen within one period.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderName};
use governor::clock::{Clock, DefaultClock};

use governor::middleware::StateInformationMiddleware;
use governor::state::keyed::DefaultKeyedStateStore;
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use crate::error::ApiError;

/// How often the limiters forget the keys that have fully recovered.
const SWEEP_EVERY: Duration = Duration::from_secs(60);

/// A rate: `count` requests per `period`, `count` of them at once at most (a burst).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    /// Requests allowed per period, and the largest burst.
    pub count: NonZeroU32,
    /// The period.
    pub period: Duration,
}

impl Rate {
    /// Governor's quota for this rate; `None` for a zero period.
    fn quota(self) -> Option<Quota> {
        Quota::with_period(self.period / self.count.get())
            .map(|quota| quota.allow_burst(self.count))
    }
}

/// Where a request's client address is read from.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum ClientAddressSource {
    /// The TCP peer: right when clients connect to the server directly.
    #[default]
    Peer,
    /// The last address in this header (what the proxy in front appended, as in
    /// `X-Forwarded-For`), falling back to the TCP peer when the header is absent or
    /// unparseable. Only for a server that every client reaches through that proxy:
    /// otherwise a client writes the header itself and picks its own key.
    TrustedHeader(HeaderName),
}

/// The rate limits of the REST routes; `None` turns a limit off.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RateLimits {
    /// Where the client address comes from.
    pub client_address: ClientAddressSource,
    /// `POST /auth/login` per client address.
    pub login_per_address: Option<Rate>,
    /// `POST /auth/register` per client address.
    pub register_per_address: Option<Rate>,
    /// Failed logins per username, whatever the address; once used up, every login
    /// to that username is refused until the rate allows one more.
    pub failed_logins_per_username: Option<Rate>,
}

type AddressLimiter = DefaultKeyedRateLimiter<IpAddr>;

/// Failed logins per username: the limiter counts failures; its state after each one
/// says whether the next would be over the limit, and then the username is locked
/// (checked before a password is verified, so a locked account cannot be guessed).
struct FailedLogins {
    limiter: RateLimiter<
        String,
        DefaultKeyedStateStore<String>,
        DefaultClock,
        StateInformationMiddleware,
    >,
    /// How long a lock lasts: until the limiter allows one more failure.
    lock_for: Duration,
    locked_until: Mutex<HashMap<String, Instant>>,
}

/// The live limiters of one server process.
pub struct Throttle {
    source: ClientAddressSource,
    login: Option<AddressLimiter>,
    register: Option<AddressLimiter>,
    failed_logins: Option<FailedLogins>,
}

impl Throttle {
    /// The limiters for `limits`, with their sweep running (when inside a runtime).
    pub fn new(limits: RateLimits) -> Arc<Self> {
        let address_limiter =
            |rate: Option<Rate>| rate.and_then(Rate::quota).map(RateLimiter::dashmap);
        let failed_logins = limits.failed_logins_per_username.and_then(|rate| {
            let quota = rate.quota()?;
            Some(FailedLogins {
                limiter: RateLimiter::dashmap(quota).with_middleware(),
                lock_for: quota.replenish_interval(),
                locked_until: Mutex::default(),
            })
        });
        let throttle = Arc::new(Self {
            source: limits.client_address,
            login: address_limiter(limits.login_per_address),
            register: address_limiter(limits.register_per_address),
            failed_logins,
        });
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(sweep(Arc::downgrade(&throttle)));
        }
        throttle
    }

    /// The client address of a request: see [`ClientAddressSource`].
    fn client_of(&self, headers: &HeaderMap, peer: Option<IpAddr>) -> Option<IpAddr> {
        let from_header = match &self.source {
            ClientAddressSource::Peer => None,
            ClientAddressSource::TrustedHeader(name) => last_address_in(headers, name),
        };
        from_header.or(peer).map(rate_key)
    }

    /// Forgets what has fully recovered (see the module docs).
    fn sweep(&self) {
        for limiter in [&self.login, &self.register].into_iter().flatten() {
            limiter.retain_recent();
            limiter.shrink_to_fit();
        }
        if let Some(failed) = &self.failed_logins {
            failed.limiter.retain_recent();
            failed.limiter.shrink_to_fit();
            let now = Instant::now();
            failed
                .locked_until
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .retain(|_, until| *until > now);
        }
    }
}

/// The last address in the comma-separated `header`, the one the nearest proxy added
/// (an address with a port, `1.2.3.4:5678` or `[::1]:80`, counts as its address).
fn last_address_in(headers: &HeaderMap, header: &HeaderName) -> Option<IpAddr> {
    let last = headers.get_all(header).iter().next_back()?.to_str().ok()?;
    let entry = last.rsplit(',').next()?.trim();
    entry
        .parse::<IpAddr>()
        .ok()
        .or_else(|| entry.parse::<SocketAddr>().ok().map(|a| a.ip()))
}

/// The key an address is limited under: an IPv6 address by its /64 network, which one
/// client usually holds whole (so it cannot dodge the limit by changing addresses).
fn rate_key(address: IpAddr) -> IpAddr {
    match address {
        IpAddr::V4(_) => address,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(Ipv6Addr::from(v6.to_bits() & !((1u128 << 64) - 1))),
        },
    }
}

async fn sweep(throttle: Weak<Throttle>) {
    let mut every = tokio::time::interval(SWEEP_EVERY);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        every.tick().await;
        let Some(throttle) = throttle.upgrade() else {
            return;
        };
        throttle.sweep();
    }
}

/// The limits as one request meets them: the extractor the auth handlers take.
pub(crate) struct Guard {
    throttle: Option<Arc<Throttle>>,
    client: Option<IpAddr>,
}

impl<S: Send + Sync> FromRequestParts<S> for Guard {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let throttle = parts.extensions.get::<Arc<Throttle>>().cloned();
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|ConnectInfo(peer)| peer.ip());
        let client = throttle
            .as_ref()
            .and_then(|throttle| throttle.client_of(&parts.headers, peer));
        Ok(Self { throttle, client })
    }
}

/// What a refusal says it refused, for the problem's `detail`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limited {
    /// Logins from one address.
    LoginsFromAddress,
    /// Registrations from one address.
    RegistrationsFromAddress,
    /// Failed logins to one username.
    FailedLoginsForUsername,
}

impl Guard {
    fn check_address(
        &self,
        limiter: impl Fn(&Throttle) -> Option<&AddressLimiter>,
        limited: Limited,
    ) -> Result<(), ApiError> {
        let (Some(throttle), Some(client)) = (&self.throttle, self.client) else {
            return Ok(());
        };
        let Some(limiter) = limiter(throttle) else {
            return Ok(());
        };
        limiter
            .check_key(&client)
            .map_err(|not_until| ApiError::TooManyRequests {
                limited,
                retry_after: not_until.wait_time_from(limiter.clock().now()),
            })
    }

    /// A registration from this client, if its address has one left.
    pub(crate) fn admit_registration(&self) -> Result<(), ApiError> {
        self.check_address(|t| t.register.as_ref(), Limited::RegistrationsFromAddress)
    }

    /// A login attempt from this client, if its address has one left.
    pub(crate) fn admit_login(&self) -> Result<(), ApiError> {
        self.check_address(|t| t.login.as_ref(), Limited::LoginsFromAddress)
    }

    /// Whether `username` (its login key) may be tried: refused while it is locked
    /// after too many failures.
    pub(crate) fn admit_username(&self, username: &str) -> Result<(), ApiError> {
        let Some(failed) = self
            .throttle
            .as_ref()
            .and_then(|t| t.failed_logins.as_ref())
        else {
            return Ok(());
        };
        let locks = failed
            .locked_until
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match locks.get(username) {
            Some(until) if *until > Instant::now() => Err(ApiError::TooManyRequests {
                limited: Limited::FailedLoginsForUsername,
                retry_after: until.saturating_duration_since(Instant::now()),
            }),
            _ => Ok(()),
        }
    }

    /// Counts a failed login to `username` (its login key); the failure that uses up
    /// the limit locks the username.
    pub(crate) fn failed_login(&self, username: &str) {
        let Some(failed) = self
            .throttle
            .as_ref()
            .and_then(|t| t.failed_logins.as_ref())
        else {
            return;
        };
        let key = username.to_owned();
        let used_up = match failed.limiter.check_key(&key) {
            Ok(state) => state.remaining_burst_capacity() == 0,
            // Only when two failures raced past the lock check: lock all the same.
            Err(_) => true,
        };
        if used_up {
            // The name is not logged: a guesser's target is nobody's business in a log.
            tracing::warn!("a username is locked after too many failed logins");
            failed
                .locked_until
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .insert(key, Instant::now() + failed.lock_for);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rate(count: u32, period: Duration) -> Option<Rate> {
        Some(Rate {
            count: NonZeroU32::new(count).expect("positive"),
            period,
        })
    }

    fn guard(throttle: &Arc<Throttle>, client: [u8; 4]) -> Guard {
        Guard {
            throttle: Some(Arc::clone(throttle)),
            client: Some(IpAddr::from(client)),
        }
    }

    #[tokio::test]
    async fn an_address_gets_its_burst_then_429_while_another_address_is_untouched() {
        let throttle = Throttle::new(RateLimits {
            login_per_address: rate(3, Duration::from_secs(60)),
            ..RateLimits::default()
        });
        for _ in 0..3 {
            guard(&throttle, [10, 0, 0, 1])
                .admit_login()
                .expect("within the burst");
        }
        match guard(&throttle, [10, 0, 0, 1]).admit_login() {
            Err(ApiError::TooManyRequests { retry_after, .. }) => {
                assert!(retry_after > Duration::from_secs(15), "{retry_after:?}");
                assert!(retry_after <= Duration::from_secs(20), "{retry_after:?}");
            }
            other => panic!("expected a refusal, got {other:?}"),
        }
        guard(&throttle, [10, 0, 0, 2])
            .admit_login()
            .expect("another address");
        // Registrations have no limit here.
        guard(&throttle, [10, 0, 0, 1])
            .admit_registration()
            .expect("unlimited");
    }

    #[tokio::test]
    async fn a_username_is_locked_after_its_failures_and_not_before() {
        let throttle = Throttle::new(RateLimits {
            failed_logins_per_username: rate(3, Duration::from_secs(900)),
            ..RateLimits::default()
        });
        for attempt in 0..3 {
            let g = guard(&throttle, [10, 0, 0, attempt]);
            g.admit_username("alice").expect("not yet locked");
            g.failed_login("alice");
        }
        let refused = guard(&throttle, [10, 0, 0, 9]).admit_username("alice");
        assert!(
            matches!(&refused, Err(ApiError::TooManyRequests { retry_after, .. })
                if *retry_after > Duration::from_secs(290) && *retry_after <= Duration::from_secs(300)),
            "{refused:?}"
        );
        guard(&throttle, [10, 0, 0, 9])
            .admit_username("bob")
            .expect("another username");
    }

    #[test]
    fn the_trusted_header_gives_its_last_address_and_ipv6_is_keyed_by_its_network() {
        let mut headers = HeaderMap::new();
        headers.insert(
            "x-forwarded-for",
            "203.0.113.9, 198.51.100.7".parse().expect("header"),
        );
        let name = HeaderName::from_static("x-forwarded-for");
        assert_eq!(
            last_address_in(&headers, &name),
            Some(IpAddr::from([198, 51, 100, 7]))
        );
        headers.insert(
            "x-forwarded-for",
            "[2001:db8::1]:443".parse().expect("header"),
        );
        assert_eq!(
            last_address_in(&headers, &name),
            Some("2001:db8::1".parse().expect("address"))
        );
        headers.insert("x-forwarded-for", "unknown".parse().expect("header"));
        assert_eq!(last_address_in(&headers, &name), None);
        assert_eq!(
            rate_key("2001:db8:1:2:3:4:5:6".parse().expect("address")),
            "2001:db8:1:2::".parse::<IpAddr>().expect("address")
        );
        assert_eq!(
            rate_key("::ffff:10.1.2.3".parse().expect("address")),
            IpAddr::from([10, 1, 2, 3])
        );
    }
}
