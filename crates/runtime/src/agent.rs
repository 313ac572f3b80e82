//! The agent: this host's monitored ports captured live into the log store,
//! under an inventory that is followed as it changes. `vpcflow agent` (an
//! inventory file) and `vpcflow serve --live` (the control plane's flow
//! logs) are this one loop with a different [`InventorySource`].
//!
//! Guarantees: a changed inventory applies from the next capture window;
//! a stop (the `stop` flag, or the run's duration) writes the open window
//! as a partial one before [`Agent::run`] returns.

use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use vpcflow_core::aggregate::AggregatorConfig;
use vpcflow_core::time::WindowLength;

use crate::clock::{Clock, SystemClock};
use crate::driver::{Driver, DriverStats, Sink, SinkError};
use crate::live::{LiveConfig, LiveSource, LiveSourceError};
use crate::run::{RunError, RunLimits, run};
use crate::sinks::{Compaction, SharedStore, StoreSink};
use crate::source::{InventorySource, Source, SourceError};

/// How an agent captures.
#[derive(Debug, Clone, Copy)]
pub struct AgentSettings {
    /// The live source's settings.
    pub live: LiveConfig,
    /// The capture window, when not the inventory's.
    pub window: Option<WindowLength>,
    /// Stop after this long, as on a stop signal.
    pub duration: Option<Duration>,
    /// The store is a spool that windows leave as they are sent to the
    /// fleet's server: never merged, no retention ([`Compaction::Spool`]).
    pub spool: bool,
}

/// Why an agent could not start or stopped early.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// No live source could be opened.
    #[error(transparent)]
    Source(#[from] LiveSourceError),
    /// The first inventory could not be read.
    #[error("{what}: {error}")]
    Inventory {
        /// The inventory source, described.
        what: String,
        /// What went wrong.
        error: SourceError,
    },
    /// The log store refused the inventory's log groups and topics.
    #[error("the log store: {0}")]
    Register(SinkError),
    /// The run failed.
    #[error(transparent)]
    Run(#[from] RunError),
}

/// A started agent: its source open, its first inventory read.
pub struct Agent {
    clock: SystemClock,
    source: LiveSource,
    inventory: Box<dyn InventorySource>,
    driver: Driver,
    sink: StoreSink,
    window: WindowLength,
    duration: Option<Duration>,
}

impl Agent {
    /// Opens the live source and reads the first inventory; closed windows
    /// go into `store`, each durable file said on `files_out`.
    pub fn start(
        settings: AgentSettings,
        mut inventory: Box<dyn InventorySource>,
        store: Arc<SharedStore>,
        files_out: Option<Box<dyn Write + Send>>,
    ) -> Result<Agent, AgentError> {
        let clock = SystemClock;
        let mut source = LiveSource::new(settings.live, clock.now())?;
        let inv = inventory.load().map_err(|error| AgentError::Inventory {
            what: inventory.describe(),
            error,
        })?;
        let config = AggregatorConfig::of(&inv, settings.window);
        let compaction = if settings.spool {
            Compaction::Spool
        } else {
            Compaction::AsWritten
        };
        let mut sink = StoreSink::new(store, files_out, compaction);
        sink.register(&inv).map_err(AgentError::Register)?;
        let mut driver = Driver::new(&inv, config);
        source.maintain(&mut driver, clock.now());
        Ok(Agent {
            clock,
            source,
            inventory,
            driver,
            sink,
            window: config.window,
            duration: settings.duration,
        })
    }

    /// One line saying what runs: the source, the window, the inventory
    /// and the store (and that no interface is here yet, if none is).
    pub fn describe(&self) -> String {
        let waiting = if self.source.open() == 0 {
            "; no monitored port's interface is here yet, waiting for them"
        } else {
            ""
        };
        format!(
            "agent running ({}): {}-second windows of {} into {}{waiting}",
            self.source.name(),
            self.window.secs(),
            self.inventory.describe(),
            self.sink.store().root().display()
        )
    }

    /// Captures until `stop` is set or the duration has passed, then
    /// writes the open window as a partial one and compacts what it wrote.
    pub fn run(mut self, stop: &AtomicBool) -> Result<AgentReport, AgentError> {
        let limits = RunLimits {
            duration: self.duration,
        };
        run(
            &mut self.driver,
            &mut self.source,
            &mut *self.inventory,
            &self.clock,
            &mut self.sink,
            stop,
            limits,
        )?;
        Ok(AgentReport {
            driver: self.driver.stats(),
            files: self.sink.files,
            hours_compacted: self.sink.compacted,
        })
    }
}

/// What an agent did; displayed as one line.
#[derive(Debug, Clone, Copy)]
pub struct AgentReport {
    /// The driver's counts (packets, late packets, records).
    pub driver: DriverStats,
    /// Store files written.
    pub files: u64,
    /// Hours compacted at the end.
    pub hours_compacted: usize,
}

impl std::fmt::Display for AgentReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "agent stopped: {} packets ({} too late for their window), {} records in {} files ({} hours compacted)",
            self.driver.packets,
            self.driver.late,
            self.driver.records,
            self.files,
            self.hours_compacted
        )
    }
}
