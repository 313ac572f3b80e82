//! Time as an argument: the driver and its sources ask a [`Clock`], the
//! system's in production, a [`ManualClock`] in tests (which moves only
//! when told, so a test of a 60-second window takes microseconds).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use vpcflow_core::Timestamp;

/// Where "now" comes from.
pub trait Clock: Send + Sync {
    /// The current instant.
    fn now(&self) -> Timestamp;
}

/// The system's wall clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        // A clock before 1970 reads as 1970: windows are Unix seconds.
        let ns = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        Timestamp(ns)
    }
}

/// A clock that moves only when set or advanced; clones share the time.
#[derive(Debug, Clone, Default)]
pub struct ManualClock(Arc<AtomicU64>);

impl ManualClock {
    /// A clock reading `at`.
    pub fn at(at: Timestamp) -> ManualClock {
        ManualClock(Arc::new(AtomicU64::new(at.0)))
    }

    /// Sets the time (it may only move forward; an earlier time is ignored).
    pub fn set(&self, at: Timestamp) {
        self.0.fetch_max(at.0, Ordering::Relaxed);
    }

    /// Moves the time forward by `ns`.
    pub fn advance(&self, ns: u64) {
        self.0.fetch_add(ns, Ordering::Relaxed);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Timestamp {
        Timestamp(self.0.load(Ordering::Relaxed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_manual_clock_moves_forward_only() {
        let c = ManualClock::at(Timestamp::from_secs(100));
        let shared = c.clone();
        c.advance(500);
        assert_eq!(shared.now(), Timestamp(100_000_000_500));
        c.set(Timestamp::from_secs(50));
        assert_eq!(shared.now(), Timestamp(100_000_000_500));
        c.set(Timestamp::from_secs(160));
        assert_eq!(shared.now(), Timestamp::from_secs(160));
    }

    #[test]
    fn the_system_clock_is_after_2020() {
        assert!(SystemClock.now() > Timestamp::from_secs(1_577_836_800));
    }
}
