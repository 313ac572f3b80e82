//! The loop every long-running data plane runs: poll the source, apply
//! inventory changes, keep the source's interfaces open, close windows on
//! the clock; at a stop, flush the source and write the open window as a
//! partial one.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use vpcflow_core::Timestamp;

use crate::clock::Clock;
use crate::driver::{Driver, Sink, SinkError};
use crate::source::{InventorySource, Source, SourceError};

const SECOND: u64 = 1_000_000_000;

/// How often interfaces are checked and the inventory re-read.
pub const HOUSEKEEPING_EVERY: Duration = Duration::from_millis(500);

/// How often the sink's upkeep (retention) runs.
pub const UPKEEP_EVERY: Duration = Duration::from_secs(3600);

/// How long a poll waits at most, so the clock is looked at often enough to
/// close windows on time.
pub const POLL_AT_MOST: Duration = Duration::from_millis(100);

/// Why a run stopped early.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The source failed.
    #[error("{source_name} source: {error}")]
    Source {
        /// The source's name.
        source_name: &'static str,
        /// Its error.
        error: SourceError,
    },
    /// A closed window could not be written.
    #[error("writing a closed window: {0}")]
    Sink(SinkError),
}

/// When to stop besides `stop`.
#[derive(Debug, Clone, Copy, Default)]
pub struct RunLimits {
    /// Stop after this long (as on a stop signal).
    pub duration: Option<Duration>,
}

/// Runs `driver` with `source` until `stop` is set (or the limit is
/// reached), then writes the open window as a partial one.
pub fn run(
    driver: &mut Driver,
    source: &mut dyn Source,
    inventory: &mut dyn InventorySource,
    clock: &dyn Clock,
    sink: &mut dyn Sink,
    stop: &AtomicBool,
    limits: RunLimits,
) -> Result<(), RunError> {
    let started = clock.now();
    let until = limits
        .duration
        .map(|d| Timestamp(started.0.saturating_add(d.as_nanos() as u64)));
    let mut next_housekeeping = started;
    let mut next_upkeep = started;
    let name = source.name();
    while !stop.load(Ordering::Relaxed) && until.is_none_or(|u| clock.now() < u) {
        source
            .poll(driver, clock, POLL_AT_MOST)
            .map_err(|error| RunError::Source {
                source_name: name,
                error,
            })?;
        let now = clock.now();
        if now >= next_housekeeping {
            next_housekeeping = Timestamp(now.0 + HOUSEKEEPING_EVERY.as_nanos() as u64);
            if inventory.changed() {
                reload(driver, inventory, sink, now);
            }
            source.maintain(driver, now);
            if now >= next_upkeep {
                next_upkeep = Timestamp(now.0 + UPKEEP_EVERY.as_secs() * SECOND);
                sink.upkeep(now);
            }
        }
        driver.tick(now, sink).map_err(RunError::Sink)?;
    }
    let now = clock.now();
    source.flush(driver, now);
    driver.finish(now, sink).map_err(RunError::Sink)
}

/// The inventory changed: the new one applies from the next window (a bad
/// one is reported and the running one kept).
pub(crate) fn reload(
    driver: &mut Driver,
    inventory: &mut dyn InventorySource,
    sink: &mut dyn Sink,
    now: Timestamp,
) {
    let inv = match inventory.load() {
        Ok(inv) => inv,
        Err(e) => {
            eprintln!("vpcflow: warning: keeping the running inventory: {e}");
            return;
        }
    };
    if let Err(e) = sink.register(&inv) {
        eprintln!("vpcflow: warning: {e}");
    }
    let boundary = driver.apply(&inv, now);
    eprintln!(
        "vpcflow: inventory reloaded; it applies from the window starting at {}",
        boundary.secs()
    );
}
