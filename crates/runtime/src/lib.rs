//! The data plane's runtime: sources in, inventory generations, capture
//! windows closed on a clock, closed windows out to sinks.
//!
//! - [`Source`]: what produces traffic (the [`LiveSource`] of this host's
//!   interfaces; capture files and flow exporters are others), named by
//!   tap, handed to the driver.
//! - [`Driver`]: inventory generations applied at window boundaries (their
//!   rules' engines linked, so tracked connections outlive a change),
//!   windows closed with their grace, partial windows at a stop.
//! - [`Sink`]: receives whole closed windows (the log store, the live
//!   tail, metrics, text output).
//! - [`Clock`]: the system's, or a [`ManualClock`] that tests move.
//! - [`run`]: the loop that ties them together, the same for every
//!   long-running mode.
//!
//! Guarantees: nothing here reads the wall clock but [`SystemClock`];
//! a window is handed to the sink once, by the generation whose inventory
//! held at its start.

pub mod clock;
pub mod driver;
pub mod live;
pub mod run;
pub mod source;
pub mod verdicts;

pub use clock::{Clock, ManualClock, SystemClock};
pub use driver::{Driver, DriverStats, Interface, Sink, SinkError, TapFlow};
pub use live::{CaptureKind, LiveConfig, LiveSource, LiveSourceError};
pub use run::{RunError, RunLimits, run};
pub use source::{InventorySource, Source, SourceError};
pub use verdicts::{Verdicts, inventory_pipeline};
