//! Rate limits at the edge, with `governor` (GCRA, one state per key): requests and WebSocket
//! operations per principal (`--rate-limit-per-second`, `--rate-limit-burst`), and failed
//! authentications per peer address (`--auth-failures-per-minute`), so guessing keys is slow.
//! Each limiter's key table is pruned of keys back at full capacity once it grows past
//! `PRUNE_AT` (then past twice what was left), so a flood of new principals or addresses costs
//! bounded memory.

use governor::clock::Clock;
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use std::collections::HashMap;
use std::hash::Hash;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A key table this long is pruned of keys back at full capacity.
const PRUNE_AT: usize = 10_000;

/// One keyed limiter, and the table length at which it is pruned next (doubling what is left
/// after each pruning, so a table of keys that are all recent is not scanned at every call).
struct Keyed<K: Hash + Eq + Clone> {
    limiter: DefaultKeyedRateLimiter<K>,
    prune_at: AtomicUsize,
}

impl<K: Hash + Eq + Clone> Keyed<K> {
    fn new(quota: Quota) -> Self {
        Self {
            limiter: RateLimiter::keyed(quota),
            prune_at: AtomicUsize::new(PRUNE_AT),
        }
    }

    /// Takes one cell for `key`; `Err(wait)` when none is left until `wait` has passed.
    fn take(&self, key: &K) -> Result<(), Duration> {
        if self.limiter.len() > self.prune_at.load(Ordering::Relaxed) {
            self.limiter.retain_recent();
            let left = self.limiter.len();
            self.prune_at
                .store(left.saturating_mul(2).max(PRUNE_AT), Ordering::Relaxed);
        }
        self.limiter
            .check_key(key)
            .map_err(|not_until| not_until.wait_time_from(self.limiter.clock().now()))
    }
}

/// How many requests a principal may make, and how many failed authentications an address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RateSettings {
    /// Requests (and WebSocket operations) per second for one principal; 0: no limit.
    pub per_second: u32,
    /// How many may come at once after a quiet spell; 0: the same as `per_second`.
    pub burst: u32,
    /// Failed authentications per minute for one peer address; 0: no limit.
    pub auth_failures_per_minute: u32,
}

impl RateSettings {
    /// No limits (tests, and the default `Edge`).
    pub const OFF: Self = Self {
        per_second: 0,
        burst: 0,
        auth_failures_per_minute: 0,
    };
}

/// The edge's limiters, shared by every request and socket.
#[derive(Clone, Default)]
pub struct RateLimits {
    principals: Option<Arc<Keyed<String>>>,
    failures: Option<Arc<Failures>>,
}

impl std::fmt::Debug for RateLimits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RateLimits")
            .field("principals", &self.principals.is_some())
            .field("failures", &self.failures.is_some())
            .finish()
    }
}

impl RateLimits {
    pub fn new(settings: RateSettings) -> Self {
        let principals = NonZeroU32::new(settings.per_second).map(|rate| {
            let burst = NonZeroU32::new(settings.burst).unwrap_or(rate);
            Arc::new(Keyed::new(Quota::per_second(rate).allow_burst(burst)))
        });
        let failures = NonZeroU32::new(settings.auth_failures_per_minute)
            .map(|rate| Arc::new(Failures::new(Quota::per_minute(rate))));
        Self {
            principals,
            failures,
        }
    }

    /// Counts one request of `principal`; `Err(wait)` when it is over its limit.
    pub fn request(&self, principal: &str) -> Result<(), Duration> {
        match &self.principals {
            Some(limiter) => limiter.take(&principal.to_owned()),
            None => Ok(()),
        }
    }

    /// `Err(wait)` while `peer` may not try credentials (too many failed lately).
    pub fn may_authenticate(&self, peer: Option<IpAddr>) -> Result<(), Duration> {
        match (&self.failures, peer) {
            (Some(failures), Some(peer)) => failures.blocked(peer),
            _ => Ok(()),
        }
    }

    /// Counts a failed authentication from `peer`; `Err(wait)` when that was one too many.
    pub fn failed_authentication(&self, peer: Option<IpAddr>) -> Result<(), Duration> {
        match (&self.failures, peer) {
            (Some(failures), Some(peer)) => failures.failed(peer),
            _ => Ok(()),
        }
    }
}

/// Failed authentications per address. governor can only take a cell, not look whether one
/// is left, and only failures should take one (a good client's requests never count); so an
/// address whose failure found the bucket empty is remembered as blocked until the bucket has
/// a cell again, and its credentials are not even looked at meanwhile.
struct Failures {
    limiter: Keyed<IpAddr>,
    blocked: Mutex<HashMap<IpAddr, Instant>>,
}

impl Failures {
    fn new(quota: Quota) -> Self {
        Self {
            limiter: Keyed::new(quota),
            blocked: Mutex::new(HashMap::new()),
        }
    }

    fn blocked(&self, peer: IpAddr) -> Result<(), Duration> {
        let blocked = crate::sync::lock(&self.blocked);
        match blocked.get(&peer) {
            Some(until) => match until.checked_duration_since(Instant::now()) {
                Some(wait) if !wait.is_zero() => Err(wait),
                _ => Ok(()),
            },
            None => Ok(()),
        }
    }

    fn failed(&self, peer: IpAddr) -> Result<(), Duration> {
        let wait = match self.limiter.take(&peer) {
            Ok(()) => return Ok(()),
            Err(wait) => wait,
        };
        let mut blocked = crate::sync::lock(&self.blocked);
        let now = Instant::now();
        if blocked.len() >= PRUNE_AT {
            blocked.retain(|_, until| *until > now);
        }
        // Past the bound even so: the limiter alone still answers each failure.
        if blocked.len() < PRUNE_AT {
            blocked.insert(peer, now + wait);
        }
        Err(wait)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_principal_over_its_limit_waits_and_others_do_not() {
        let limits = RateLimits::new(RateSettings {
            per_second: 2,
            burst: 3,
            auth_failures_per_minute: 0,
        });
        for _ in 0..3 {
            assert!(limits.request("alice").is_ok());
        }
        let wait = limits.request("alice").expect_err("over the burst");
        assert!(wait <= Duration::from_millis(500), "{wait:?}");
        assert!(limits.request("bob").is_ok());
        assert!(RateLimits::new(RateSettings::OFF).request("alice").is_ok());
    }

    #[test]
    fn an_address_that_fails_too_often_may_not_try_again_for_a_while() {
        let limits = RateLimits::new(RateSettings {
            per_second: 0,
            burst: 0,
            auth_failures_per_minute: 2,
        });
        let peer: IpAddr = [127, 0, 0, 1].into();
        let other: IpAddr = [127, 0, 0, 2].into();
        assert!(limits.may_authenticate(Some(peer)).is_ok());
        assert!(limits.failed_authentication(Some(peer)).is_ok());
        assert!(limits.failed_authentication(Some(peer)).is_ok());
        let wait = limits.failed_authentication(Some(peer)).expect_err("third");
        assert!(wait > Duration::from_secs(1), "{wait:?}");
        assert!(limits.may_authenticate(Some(peer)).is_err());
        assert!(limits.may_authenticate(Some(other)).is_ok());
        assert!(limits.may_authenticate(None).is_ok());
    }
}
