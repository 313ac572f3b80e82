//! `vpcflow agent`: flags to the runtime's [`vpcflow_runtime::Agent`], an
//! inventory file as its inventory, closed windows into the log store. The
//! capture itself (eBPF or AF_PACKET, taps reopened when their interface
//! comes back, losses as SKIPDATA) is [`vpcflow_runtime::LiveSource`];
//! inventory generations and windows are [`vpcflow_runtime::Driver`]'s.
//!
//! The inventory (a file, or the control plane's database under `vpcflow
//! serve --live`) is re-read when it changes; the new one applies from the
//! next capture window. SIGINT/SIGTERM flush the open window as a partial
//! one: its records keep the window's `end`, and its store file names carry
//! `-partial`.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, SystemTime};

use anyhow::{Context, Result};
use clap::{Args, ValueEnum};
use vpcflow_core::Inventory;
use vpcflow_core::time::WindowLength;
use vpcflow_runtime::{
    Agent, AgentSettings, CaptureKind, InventorySource, LiveConfig, SharedStore, SourceError,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum CaptureArg {
    /// In-kernel aggregation by a TC eBPF program.
    Ebpf,
    /// A TPACKET_V3 AF_PACKET ring per interface.
    #[value(alias = "af_packet")]
    AfPacket,
}

/// Flags of `vpcflow agent`.
#[derive(Debug, Args)]
pub struct AgentArgs {
    /// The inventory (re-read when it changes).
    #[arg(long, value_name = "FILE")]
    config: PathBuf,
    /// The log store.
    #[arg(long, value_name = "DIR", default_value = "vpcflow-store")]
    store: PathBuf,
    #[command(flatten)]
    capture: CaptureOptions,
}

/// How to capture (shared by `vpcflow agent` and `vpcflow serve --live`).
#[derive(Debug, Clone, Args)]
pub struct CaptureOptions {
    /// Capture window in seconds, 60 to 600 (default: the inventory's).
    #[arg(long, value_name = "SECONDS")]
    window: Option<u32>,
    /// How to capture: ebpf (the default in a build with `--features
    /// ebpf`; without the flag, a program that cannot load falls back to
    /// af-packet with a warning) or af-packet.
    #[arg(long, value_enum)]
    capture: Option<CaptureArg>,
    /// af-packet: bytes kept of each packet (enough for its headers).
    #[arg(long, default_value_t = 256)]
    snaplen: u32,
    /// ebpf: flows the kernel table holds between two collections; more
    /// become SKIPDATA.
    #[arg(long, value_name = "FLOWS", default_value_t = 65_536)]
    flow_table: u32,
    /// Stop after this many seconds (as on SIGTERM).
    #[arg(long, value_name = "SECONDS", hide = true)]
    duration: Option<u64>,
}

impl CaptureOptions {
    /// The runtime's agent settings.
    pub fn settings(&self) -> Result<AgentSettings> {
        let window = self
            .window
            .map(|s| {
                WindowLength::configured(s).with_context(|| {
                    format!("--window {s}: the capture window must be 60 to 600 seconds")
                })
            })
            .transpose()?;
        Ok(AgentSettings {
            live: LiveConfig {
                capture: self.capture.map(|c| match c {
                    CaptureArg::Ebpf => CaptureKind::Ebpf,
                    CaptureArg::AfPacket => CaptureKind::AfPacket,
                }),
                snaplen: self.snaplen,
                flow_table: self.flow_table,
            },
            window,
            duration: self.duration.map(Duration::from_secs),
        })
    }
}

/// An inventory file, re-read when its modification time changes.
struct FileInventory {
    path: PathBuf,
    mtime: Option<SystemTime>,
}

fn modified(path: &PathBuf) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

impl InventorySource for FileInventory {
    fn describe(&self) -> String {
        self.path.display().to_string()
    }
    fn load(&mut self) -> Result<Inventory, SourceError> {
        self.mtime = modified(&self.path);
        Ok(Inventory::read(&self.path)?)
    }
    fn changed(&mut self) -> bool {
        modified(&self.path) != self.mtime
    }
}

/// Runs `vpcflow agent`.
pub fn run(args: AgentArgs) -> Result<ExitCode> {
    let settings = args.capture.settings()?;
    let store = Arc::new(SharedStore::open(&args.store)?);
    store.store().compact_in_background();
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, Arc::clone(&stop))
            .context("installing signal handlers")?;
    }
    let inventory = FileInventory {
        path: args.config,
        mtime: None,
    };
    let out: Box<dyn std::io::Write + Send> = Box::new(std::io::stdout());
    let agent = Agent::start(settings, Box::new(inventory), store, Some(out))?;
    eprintln!("vpcflow: {}", agent.describe());
    let report = agent.run(&stop)?;
    eprintln!("vpcflow: {report}");
    Ok(ExitCode::SUCCESS)
}
