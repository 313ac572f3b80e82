//! The source seam: what produces traffic for the [`Driver`] (frames, flow
//! counters and losses, named by tap), and where the inventory comes from.

use std::time::Duration;

use vpcflow_core::{Inventory, Timestamp};

use crate::clock::Clock;
use crate::driver::Driver;

/// An error of a source, boxed: each source has its own.
pub type SourceError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Produces the traffic of the driver's interfaces.
pub trait Source {
    /// What it is, for messages (`AF_PACKET`, `eBPF`).
    fn name(&self) -> &'static str;

    /// Opens the driver's interfaces not open yet, and reopens those that
    /// went away and came back; reports losses. Called every half second.
    fn maintain(&mut self, driver: &mut Driver, now: Timestamp);

    /// How many of the driver's interfaces are open.
    fn open(&self) -> usize;

    /// Waits at most `timeout` for traffic and hands what came to `driver`.
    fn poll(
        &mut self,
        driver: &mut Driver,
        clock: &dyn Clock,
        timeout: Duration,
    ) -> Result<(), SourceError>;

    /// Hands everything the source still holds to `driver` (at a stop).
    fn flush(&mut self, driver: &mut Driver, now: Timestamp);
}

/// Where the inventory comes from, and tells when it changed.
pub trait InventorySource: Send {
    /// What it is, for messages.
    fn describe(&self) -> String;
    /// The inventory now.
    fn load(&mut self) -> Result<Inventory, SourceError>;
    /// Whether it may have changed since the last `load`.
    fn changed(&mut self) -> bool;
}
