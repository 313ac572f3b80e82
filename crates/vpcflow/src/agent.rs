//! `vpcflow agent`: live capture on every monitored port's interface,
//! windows closed on the wall clock, records into the log store.
//!
//! Each port with an `interface` in the inventory gets its own capture
//! (an AF_PACKET TPACKET_V3 ring today), so a packet is counted for the port
//! whose interface carried it, in the direction the capture saw it
//! (inverted on the host side of a tap/veth, SPEC §1). Packets the kernel
//! dropped from a ring become that port's SKIPDATA. Interfaces that do not
//! exist yet are retried every few seconds. The inventory file is re-read
//! when it changes; the new one applies from the next capture window (two
//! pipelines run side by side until the old window closes).
//!
//! SIGINT/SIGTERM flush the open window as a partial one: its records keep
//! the window's `end`, and its store file names carry `-partial`.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context, Result, bail};
use clap::{Args, ValueEnum};
use vpcflow_core::Inventory;
use vpcflow_core::aggregate::{AggregatorConfig, ClosedWindow};
use vpcflow_core::flow::Direction;
use vpcflow_core::pipeline::Pipeline;
use vpcflow_core::time::{Timestamp, WindowLength};
use vpcflow_live::{PacketRing, RingConfig, wait_readable};
use vpcflow_store::Store;
use vpcflow_wire::{Frame, LinkType};

use crate::ingest::{Verdicts, inventory_pipeline, load_inventory};
use crate::store_cmd::catalog_groups;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum CaptureArg {
    /// In-kernel aggregation by a TC eBPF program.
    Ebpf,
    /// A TPACKET_V3 AF_PACKET ring per interface.
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
    /// Capture window in seconds, 60 to 600 (default: the inventory's).
    #[arg(long, value_name = "SECONDS")]
    window: Option<u32>,
    /// How to capture.
    #[arg(long, value_enum, default_value = "af-packet")]
    capture: CaptureArg,
    /// Bytes kept of each packet (enough for its headers).
    #[arg(long, default_value_t = 256)]
    snaplen: u32,
    /// Stop after this many seconds (as on SIGTERM).
    #[arg(long, value_name = "SECONDS", hide = true)]
    duration: Option<u64>,
}

/// One port's capture.
struct Tap {
    ring: PacketRing,
    host_side: bool,
}

/// A pipeline and, per tap, the port it counts for in that pipeline.
struct Generation {
    pipeline: Pipeline<Verdicts>,
    /// Index into the taps -> port index in this pipeline's topology.
    ports: Vec<Option<u32>>,
    /// Packets at or after this instant go to the next generation.
    until: Option<Timestamp>,
}

fn wall_clock() -> Timestamp {
    Timestamp(crate::query::wall_clock_ns())
}

fn modified(path: &PathBuf) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

struct Agent {
    args: AgentArgs,
    config: AggregatorConfig,
    store: Store,
    taps: Vec<Tap>,
    /// Interfaces in the taps' order.
    interfaces: Vec<String>,
    generations: Vec<Generation>,
    inventory: Inventory,
    files: u64,
    records: u64,
}

impl Agent {
    fn aggregator_config(args: &AgentArgs, inv: &Inventory) -> Result<AggregatorConfig> {
        let window = match args.window {
            Some(s) => WindowLength::configured(s).with_context(|| {
                format!("--window {s}: the capture window must be 60 to 600 seconds")
            })?,
            None => inv.window,
        };
        Ok(AggregatorConfig {
            window,
            max_records: inv.max_records_per_window,
            grace_ns: 2_000_000_000,
        })
    }

    /// A pipeline for `inv`, and the taps it needs opened.
    fn generation(&mut self, inv: &Inventory) -> Generation {
        let pipeline = inventory_pipeline(inv, self.config, None, 1 << 20);
        let mut ports = vec![None; self.taps.len()];
        for (pi, port) in pipeline.topology().ports.iter().enumerate() {
            let Some(ifname) = port
                .inventory_index
                .and_then(|i| inv.ports[i].interface.as_ref())
            else {
                continue;
            };
            if let Some(t) = self.interfaces.iter().position(|i| i == ifname) {
                ports[t] = Some(pi as u32);
            }
        }
        Generation {
            pipeline,
            ports,
            until: None,
        }
    }

    /// Opens the rings of monitored interfaces not yet open.
    fn open_taps(&mut self) {
        let inv = &self.inventory;
        let topology_ports: Vec<usize> = self
            .generations
            .last()
            .map(|g| {
                g.pipeline
                    .topology()
                    .ports
                    .iter()
                    .filter_map(|p| p.inventory_index)
                    .collect()
            })
            .unwrap_or_default();
        for i in topology_ports {
            let p = &inv.ports[i];
            let Some(ifname) = &p.interface else { continue };
            if self.interfaces.contains(ifname) {
                continue;
            }
            let config = RingConfig {
                snaplen: self.args.snaplen,
                ..RingConfig::default()
            };
            match PacketRing::open(ifname, config) {
                Ok(ring) => {
                    eprintln!("vpcflow: capturing port {} on {ifname}", p.id);
                    self.taps.push(Tap {
                        ring,
                        host_side: p.host_side,
                    });
                    self.interfaces.push(ifname.clone());
                    let t = self.taps.len() - 1;
                    for g in &mut self.generations {
                        let port = g
                            .pipeline
                            .topology()
                            .ports
                            .iter()
                            .position(|tp| tp.inventory_index == Some(i));
                        g.ports.push(port.map(|x| x as u32));
                        debug_assert_eq!(g.ports.len(), t + 1);
                    }
                }
                Err(e) => eprintln!("vpcflow: warning: port {}: {e} (retrying)", p.id),
            }
        }
    }

    /// Reads every ring into the pipelines.
    fn drain(&mut self) {
        let generations = &mut self.generations;
        for (t, tap) in self.taps.iter_mut().enumerate() {
            let host_side = tap.host_side;
            tap.ring.drain(|p| {
                let ts = Timestamp(p.timestamp_ns);
                let Some(g) = generations
                    .iter_mut()
                    .find(|g| g.until.is_none_or(|u| ts < u))
                else {
                    return;
                };
                let Some(port) = g.ports[t] else { return };
                let direction = if p.outgoing != host_side {
                    Direction::Egress
                } else {
                    Direction::Ingress
                };
                g.pipeline.observe_on_port(
                    &Frame {
                        timestamp_ns: p.timestamp_ns,
                        link: LinkType::Ethernet,
                        data: p.data,
                        wire_len: p.wire_len,
                    },
                    port,
                    direction,
                );
            });
        }
    }

    /// Kernel drops since the last call become SKIPDATA of their port.
    fn note_drops(&mut self, now: Timestamp) {
        for (t, tap) in self.taps.iter_mut().enumerate() {
            match tap.ring.take_stats() {
                Ok(s) if s.drops > 0 => {
                    if let Some(g) = self.generations.last_mut()
                        && let Some(port) = g.ports[t]
                    {
                        g.pipeline.note_lost(port, now, s.drops);
                    }
                }
                Ok(_) => {}
                Err(e) => eprintln!("vpcflow: warning: {e}"),
            }
        }
    }

    /// Writes closed windows of generation `gi`; `partial_after`: windows
    /// ending after this instant (Unix seconds) were cut short.
    fn write(&mut self, gi: usize, windows: Vec<ClosedWindow>, partial_after: u64) -> Result<()> {
        for w in &windows {
            let topology = self.generations[gi].pipeline.topology();
            let files = if w.end > partial_after {
                self.store.write_partial_window(topology, w)?
            } else {
                self.store.write_window(topology, w)?
            };
            for f in &files {
                println!("{} {}", f.path.display(), f.records);
                self.files += 1;
                self.records += f.records as u64;
            }
            if let Err(e) = self.store.compact_before(w.start) {
                eprintln!("vpcflow: warning: compaction: {e}");
            }
        }
        Ok(())
    }

    /// Advances the clock: closes due windows and writes them.
    fn tick(&mut self, now: Timestamp) -> Result<()> {
        for gi in 0..self.generations.len() {
            let g = &mut self.generations[gi];
            match g.until {
                // A retiring generation only closes what it has.
                Some(_) => g.pipeline.tick(now),
                None => g.pipeline.note_clock(now),
            }
            let closed = std::mem::take(g.pipeline.closed());
            self.write(gi, closed, u64::MAX)?;
        }
        // A retired generation is done once its last window has closed.
        while self.generations.len() > 1
            && self.generations[0]
                .until
                .is_some_and(|u| now.0 >= u.0 + self.config.grace_ns)
        {
            self.generations[0].pipeline.finish();
            let closed = std::mem::take(self.generations[0].pipeline.closed());
            self.write(0, closed, u64::MAX)?;
            self.generations.remove(0);
        }
        Ok(())
    }

    /// The inventory changed: the new one applies from the next window.
    fn reload(&mut self, now: Timestamp) {
        let inv = match load_inventory(&self.args.config) {
            Ok(inv) => inv,
            Err(e) => {
                eprintln!("vpcflow: warning: keeping the running inventory: {e:#}");
                return;
            }
        };
        let next_start = self.config.window.start_of(now) + self.config.window.secs();
        let boundary = Timestamp::from_secs(next_start);
        if let Some(g) = self.generations.last_mut() {
            g.until = Some(boundary);
        }
        if let Err(e) = self.store.register(&catalog_groups(&inv)) {
            eprintln!("vpcflow: warning: {e}");
        }
        let mut next = self.generation(&inv);
        // Nothing before the boundary belongs to the new inventory.
        next.pipeline.note_clock(boundary);
        self.generations.push(next);
        self.inventory = inv;
        eprintln!(
            "vpcflow: inventory reloaded; it applies from the window starting at {next_start}"
        );
        self.open_taps();
    }
}

/// Runs `vpcflow agent`.
pub fn run(args: AgentArgs) -> Result<ExitCode> {
    if args.capture == CaptureArg::Ebpf {
        bail!(
            "--capture ebpf: this build has no eBPF source yet; use --capture af-packet \
             (the default)"
        );
    }
    let inventory = load_inventory(&args.config)?;
    let config = Agent::aggregator_config(&args, &inventory)?;
    let mut store = Store::open(&args.store)?;
    store.register(&catalog_groups(&inventory))?;
    store.compact_in_background();
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, Arc::clone(&stop))
            .context("installing signal handlers")?;
    }
    let mut agent = Agent {
        args,
        config,
        store,
        taps: Vec::new(),
        interfaces: Vec::new(),
        generations: Vec::new(),
        inventory: inventory.clone(),
        files: 0,
        records: 0,
    };
    let first = agent.generation(&inventory);
    agent.generations.push(first);
    agent.open_taps();
    if agent.taps.is_empty() {
        eprintln!("vpcflow: warning: no monitored port's interface is here yet; waiting for them");
    }
    let started = Instant::now();
    let mut mtime = modified(&agent.args.config);
    let mut last_housekeeping = Instant::now();
    let mut last_gc = None::<Instant>;
    let mut fds = Vec::new();
    eprintln!(
        "vpcflow: agent running: {}-second windows into {}",
        agent.config.window.secs(),
        agent.store.root().display()
    );
    while !stop.load(Ordering::Relaxed)
        && agent
            .args
            .duration
            .is_none_or(|d| started.elapsed() < Duration::from_secs(d))
    {
        wait_readable(agent.taps.iter().map(|t| &t.ring), &mut fds, 100)
            .context("waiting for packets")?;
        agent.drain();
        let now = wall_clock();
        if last_housekeeping.elapsed() >= Duration::from_millis(500) {
            last_housekeeping = Instant::now();
            agent.note_drops(now);
            let m = modified(&agent.args.config);
            if m != mtime {
                mtime = m;
                agent.reload(now);
            }
            agent.open_taps();
            if last_gc.is_none_or(|t| t.elapsed() >= Duration::from_secs(3600)) {
                last_gc = Some(Instant::now());
                match agent.store.gc(|_| None, now.0 / 1_000_000_000) {
                    Ok(r) => {
                        for p in &r.partitions {
                            eprintln!("vpcflow: retention removed {}", p.display());
                        }
                    }
                    Err(e) => eprintln!("vpcflow: warning: retention: {e}"),
                }
            }
        }
        agent.tick(now)?;
    }
    // Flush: everything the rings still hold, then the open window, partial.
    agent.drain();
    let now = wall_clock();
    agent.note_drops(now);
    agent.tick(now)?;
    for gi in 0..agent.generations.len() {
        let g = &mut agent.generations[gi];
        g.pipeline.note_clock(now);
        g.pipeline.finish();
        let closed = std::mem::take(g.pipeline.closed());
        agent.write(gi, closed, now.0 / 1_000_000_000)?;
    }
    let mut compacted = agent.store.compact_before(u64::MAX).unwrap_or_default();
    compacted.extend(agent.store.finish_compaction().unwrap_or_default());
    eprintln!(
        "vpcflow: agent stopped: {} records in {} files ({} hours compacted)",
        agent.records,
        agent.files,
        compacted.len()
    );
    Ok(ExitCode::SUCCESS)
}
