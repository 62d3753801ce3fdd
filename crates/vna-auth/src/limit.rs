//! Failed authentication, limited per source address: after `max_failures` within `window`,
//! the source is refused for `lockout` without its credentials being looked at, so guessing
//! keys or replaying stolen tokens costs the attacker time and the archive nothing. The table
//! is bounded: when full, the oldest entries go first.

use crate::AuthError;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FailureLimit {
    /// 0: no limit.
    pub max_failures: u32,
    pub window: Duration,
    pub lockout: Duration,
}

impl Default for FailureLimit {
    fn default() -> Self {
        FailureLimit { max_failures: 20, window: Duration::from_secs(60), lockout: Duration::from_secs(300) }
    }
}

const MAX_SOURCES: usize = 10_000;

struct Entry {
    since: Instant,
    count: u32,
    locked_until: Option<Instant>,
}

pub(crate) struct Failures {
    limit: FailureLimit,
    table: Mutex<HashMap<IpAddr, Entry>>,
}

impl Failures {
    pub(crate) fn new(limit: FailureLimit) -> Self {
        Failures { limit, table: Mutex::new(HashMap::new()) }
    }

    fn table(&self) -> std::sync::MutexGuard<'_, HashMap<IpAddr, Entry>> {
        // A panic elsewhere while holding it leaves counters, nothing to protect.
        self.table.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn check(&self, peer: IpAddr) -> Result<(), AuthError> {
        self.check_at(peer, Instant::now())
    }

    fn check_at(&self, peer: IpAddr, now: Instant) -> Result<(), AuthError> {
        if self.limit.max_failures == 0 {
            return Ok(());
        }
        match self.table().get(&peer).and_then(|e| e.locked_until) {
            Some(until) if until > now => Err(AuthError::RateLimited { retry_after: until - now }),
            _ => Ok(()),
        }
    }

    pub(crate) fn record(&self, peer: IpAddr) {
        self.record_at(peer, Instant::now());
    }

    fn record_at(&self, peer: IpAddr, now: Instant) {
        if self.limit.max_failures == 0 {
            return;
        }
        let mut table = self.table();
        if table.len() >= MAX_SOURCES && !table.contains_key(&peer) {
            table.retain(|_, e| now.duration_since(e.since) < self.limit.window || e.locked_until.is_some_and(|u| u > now));
            if table.len() >= MAX_SOURCES {
                if let Some(oldest) = table.iter().min_by_key(|(_, e)| e.since).map(|(ip, _)| *ip) {
                    table.remove(&oldest);
                }
            }
        }
        let e = table.entry(peer).or_insert(Entry { since: now, count: 0, locked_until: None });
        if now.duration_since(e.since) >= self.limit.window {
            *e = Entry { since: now, count: 0, locked_until: None };
        }
        e.count += 1;
        if e.count >= self.limit.max_failures {
            e.locked_until = Some(now + self.limit.lockout);
            tracing::warn!(%peer, failures = e.count, "authentication failures over the limit: source locked out");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locks_out_after_the_budget_then_forgives() {
        let limit = FailureLimit { max_failures: 3, window: Duration::from_secs(10), lockout: Duration::from_secs(30) };
        let f = Failures::new(limit);
        let (a, b): (IpAddr, IpAddr) = ("10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap());
        let t0 = Instant::now();
        f.record_at(a, t0);
        f.record_at(a, t0 + Duration::from_secs(1));
        assert!(f.check_at(a, t0 + Duration::from_secs(2)).is_ok(), "two failures are within budget");
        f.record_at(a, t0 + Duration::from_secs(2));
        assert_eq!(f.check_at(a, t0 + Duration::from_secs(3)), Err(AuthError::RateLimited { retry_after: Duration::from_secs(29) }));
        assert!(f.check_at(b, t0 + Duration::from_secs(3)).is_ok(), "per source");
        assert!(f.check_at(a, t0 + Duration::from_secs(33)).is_ok(), "the lockout ends");
        // Failures spread wider than the window never add up.
        for s in [40, 51, 62, 73] {
            f.record_at(b, t0 + Duration::from_secs(s));
        }
        assert!(f.check_at(b, t0 + Duration::from_secs(74)).is_ok());
        let off = Failures::new(FailureLimit { max_failures: 0, ..limit });
        for _ in 0..100 {
            off.record_at(a, t0);
        }
        assert!(off.check_at(a, t0).is_ok(), "0 disables the limit");
    }
}
