//! The data plane's runtime: sources in, inventory generations, capture
//! windows closed on a clock, closed windows out to sinks.
//!
//! - [`Source`]: what produces traffic (the [`LiveSource`] of this host's
//!   interfaces), named by tap, handed to the driver; capture files are
//!   [`capture::replay`]ed, their frames' timestamps the clock; flow
//!   exports are received by the [`Collector`], their flows' own times
//!   the clock.
//! - [`Driver`]: inventory generations applied at window boundaries (their
//!   rules' engines linked, so tracked connections outlive a change),
//!   windows closed with their grace, partial windows at a stop.
//! - [`Sink`]: receives whole closed windows ([`sinks`]: text output, and
//!   with the `store` feature the log store with its metrics and the live
//!   tail; [`rule_stats`] totals; [`whatif`] compares two inventories'
//!   windows).
//! - [`Clock`]: the system's, or a [`ManualClock`] that tests move.
//! - [`run`]: the loop that ties them together, the same for every
//!   long-running mode; [`capture::replay`] its counterpart for files
//!   (`ingest`, uploads, the benchmarks); `agent` (with the `store`
//!   feature) is the live loop into the log store that `vpcflow agent` and
//!   `vpcflow serve --live` run; [`shards::replay_sharded`] replays on
//!   every core.
//!
//! Guarantees: nothing here reads the wall clock but [`SystemClock`];
//! a window is handed to the sink once, by the generation whose inventory
//! held at its start.

#[cfg(feature = "store")]
pub mod agent;
pub mod capture;
pub mod clock;
pub mod collector;
pub mod driver;
pub mod live;
pub mod rule_stats;
pub mod run;
pub mod shards;
pub mod sinks;
pub mod source;
pub mod verdicts;
pub mod whatif;

#[cfg(feature = "store")]
pub use agent::{Agent, AgentError, AgentReport, AgentSettings};
pub use clock::{Clock, ManualClock, SystemClock};
pub use collector::{CollectReport, Collector, EXPORT_GRACE};
pub use driver::{Driver, DriverStats, Interface, Sink, SinkError, TapConflict, TapFlow};
pub use live::{CaptureKind, LiveConfig, LiveSource, LiveSourceError};
pub use run::{RunError, RunLimits, run};
pub use shards::{Replayed, ShardTotals, replay_sharded};
#[cfg(feature = "store")]
pub use sinks::{
    Backlog, ClickHouseHop, Compaction, Delivery, NextHop, Nudge, SentWaiter, SharedStore, Shipper,
    SpoolIds, StoreSink, WindowListener,
};
pub use sinks::{FormatSink, IPFIX_MTU, IpfixSink};
pub use source::{InventorySource, Source, SourceError};
pub use verdicts::{Verdicts, inventory_pipeline};
