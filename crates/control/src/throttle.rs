//! Throttling of failed authentication: a client address that sent
//! [`FAILED_AUTH_LIMIT`] unknown tokens (or the server's
//! `--auth-failures` of them) within [`FAILED_AUTH_WINDOW`] is
//! answered 429 (`APIGW.0429`, with `Retry-After`) on every `/v1/` call
//! until the window that began with its first failure has passed, before
//! its token is looked up: guessing tokens costs the guesser time, not the
//! database work. Other clients are not affected.
//!
//! Guarantees: memory is bounded ([`TRACKED_CLIENTS`] addresses; past it
//! the stalest entries are dropped first); a client with a good token from
//! an address that is not throttled is never refused here.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Unknown tokens one client address may send within
/// [`FAILED_AUTH_WINDOW`] before it is throttled.
pub const FAILED_AUTH_LIMIT: u32 = 20;
/// The window failures are counted in, and how long a throttled address
/// waits from its first failure.
pub const FAILED_AUTH_WINDOW: Duration = Duration::from_secs(60);
/// Client addresses whose failures are remembered at once.
pub const TRACKED_CLIENTS: usize = 65_536;

/// The address a request came from, set by the server's accept loop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientAddr(pub IpAddr);

#[derive(Debug, Clone, Copy)]
struct Failures {
    count: u32,
    since: Instant,
}

/// Failed authentications per client address.
#[derive(Debug)]
pub struct AuthThrottle {
    failures: Mutex<HashMap<IpAddr, Failures>>,
    limit: u32,
}

impl Default for AuthThrottle {
    fn default() -> Self {
        AuthThrottle::new(FAILED_AUTH_LIMIT)
    }
}

impl AuthThrottle {
    /// Throttles an address after `limit` unknown tokens in a window (0:
    /// never).
    pub fn new(limit: u32) -> AuthThrottle {
        AuthThrottle {
            failures: Mutex::default(),
            limit,
        }
    }

    /// Unknown tokens an address may send in a window (0: no limit).
    pub fn limit(&self) -> u32 {
        self.limit
    }

    /// How long `client` must still wait, if it is throttled at `now`.
    pub fn wait(&self, client: IpAddr, now: Instant) -> Option<Duration> {
        if self.limit == 0 {
            return None;
        }
        let f = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        let entry = f.get(&client)?;
        let left = FAILED_AUTH_WINDOW.saturating_sub(now.duration_since(entry.since));
        (entry.count >= self.limit && !left.is_zero()).then_some(left)
    }

    /// Counts a failed authentication of `client` at `now`.
    pub fn failed(&self, client: IpAddr, now: Instant) {
        if self.limit == 0 {
            return;
        }
        let mut f = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        if f.len() >= TRACKED_CLIENTS && !f.contains_key(&client) {
            // Forget what has expired; if every entry is fresh, the oldest.
            f.retain(|_, e| now.duration_since(e.since) < FAILED_AUTH_WINDOW);
            if f.len() >= TRACKED_CLIENTS
                && let Some(oldest) = f.iter().min_by_key(|(_, e)| e.since).map(|(a, _)| *a)
            {
                f.remove(&oldest);
            }
        }
        let entry = f.entry(client).or_insert(Failures {
            count: 0,
            since: now,
        });
        if now.duration_since(entry.since) >= FAILED_AUTH_WINDOW {
            *entry = Failures {
                count: 0,
                since: now,
            };
        }
        entry.count = entry.count.saturating_add(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_is_throttled_after_the_limit_until_its_window_passes() {
        let t = AuthThrottle::default();
        let (a, b): (IpAddr, IpAddr) = ("127.0.0.2".parse().unwrap(), "127.0.0.1".parse().unwrap());
        let start = Instant::now();
        for i in 0..FAILED_AUTH_LIMIT {
            assert_eq!(t.wait(a, start), None, "throttled after {i} failures");
            t.failed(a, start);
        }
        let later = start + Duration::from_secs(10);
        assert_eq!(
            t.wait(a, later),
            Some(FAILED_AUTH_WINDOW - Duration::from_secs(10))
        );
        assert_eq!(t.wait(b, later), None, "another address is not throttled");
        assert_eq!(t.wait(a, start + FAILED_AUTH_WINDOW), None);
        // A new window counts from zero.
        t.failed(a, start + FAILED_AUTH_WINDOW);
        assert_eq!(t.wait(a, start + FAILED_AUTH_WINDOW), None);
    }

    #[test]
    fn a_limit_of_zero_never_throttles() {
        let t = AuthThrottle::new(0);
        let (a, now): (IpAddr, _) = ("127.0.0.2".parse().unwrap(), Instant::now());
        for _ in 0..1000 {
            t.failed(a, now);
        }
        assert_eq!(t.wait(a, now), None);
    }

    #[test]
    fn the_table_stays_bounded() {
        let t = AuthThrottle::default();
        let now = Instant::now();
        for i in 0..(TRACKED_CLIENTS as u32 + 10) {
            t.failed(IpAddr::from(i.to_be_bytes()), now);
        }
        let n = t.failures.lock().unwrap().len();
        assert!(n <= TRACKED_CLIENTS, "{n}");
    }
}
