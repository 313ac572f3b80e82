//! `vpcflow agent`: live capture on every monitored port's interface,
//! windows closed on the wall clock, records into the log store.
//!
//! Each port with an `interface` in the inventory is captured on that
//! interface, so a packet is counted for the port whose interface carried
//! it, in the direction the capture saw it (inverted on the host side of a
//! tap/veth, SPEC §1). Two sources:
//! - `ebpf` (the default in builds with the `ebpf` feature): a TC program
//!   counts flows in the kernel; the agent collects the counters every few
//!   seconds and at every window boundary and feeds them to the pipeline in
//!   first-seen order. Packets that found the kernel table full become
//!   SKIPDATA.
//! - `af-packet`: a TPACKET_V3 ring per interface, cut to a snap length;
//!   packets the kernel dropped from a ring become SKIPDATA.
//!
//! Interfaces that do not exist yet, or that were deleted and created
//! again, are (re)opened every half second. The inventory (a file, or the
//! control plane's database under `vpcflow serve --live`) is re-read when
//! it changes; the new one applies from the next capture window (two
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
#[cfg(feature = "ebpf")]
use vpcflow_core::flow::{FiveTuple, FlowDelta};
use vpcflow_core::pipeline::Pipeline;
use vpcflow_core::time::{Timestamp, WindowLength};
use vpcflow_live::{PacketRing, RingConfig, wait_readable};
#[cfg(feature = "ebpf")]
use vpcflow_wire::IpProtocol;
use vpcflow_wire::{Frame, LinkType};

use crate::ingest::{Verdicts, inventory_pipeline, load_inventory};
use crate::sink::RecordSink;
use crate::store_cmd::catalog_groups;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum CaptureArg {
    /// In-kernel aggregation by a TC eBPF program.
    Ebpf,
    /// A TPACKET_V3 AF_PACKET ring per interface.
    #[value(alias = "af_packet")]
    AfPacket,
}

/// How often the eBPF source's kernel counters are collected (besides
/// every window boundary): keeps the kernel table to a few seconds of flows.
#[cfg(feature = "ebpf")]
const COLLECT_EVERY: Duration = Duration::from_secs(5);

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

/// Where the agent's inventory comes from, and tells when it changed.
pub trait InventorySource: Send {
    /// What it is, for messages.
    fn describe(&self) -> String;
    /// The inventory now.
    fn load(&mut self) -> Result<Inventory>;
    /// Whether it may have changed since the last `load`.
    fn changed(&mut self) -> bool;
}

/// An inventory file, re-read when its modification time changes.
struct FileSource {
    path: PathBuf,
    mtime: Option<SystemTime>,
}

impl InventorySource for FileSource {
    fn describe(&self) -> String {
        self.path.display().to_string()
    }
    fn load(&mut self) -> Result<Inventory> {
        self.mtime = modified(&self.path);
        load_inventory(&self.path)
    }
    fn changed(&mut self) -> bool {
        modified(&self.path) != self.mtime
    }
}

/// One monitored interface. Taps are never removed (pipelines refer to
/// them by index); one whose interface vanished is closed and reopened
/// when the interface comes back.
struct Tap {
    interface: String,
    host_side: bool,
    /// The interface index the capture is bound to; `None` while closed.
    ifindex: Option<u32>,
    /// The af-packet source's ring.
    ring: Option<PacketRing>,
    /// Packets the capture lost (ring or kernel table full) not yet
    /// reported on stderr.
    lost_unreported: u64,
}

/// The port's direction of a packet that crossed its interface's egress
/// (`outgoing`) or ingress: inverted on the host side of a tap (SPEC §1).
fn direction(outgoing: bool, host_side: bool) -> Direction {
    if outgoing != host_side {
        Direction::Egress
    } else {
        Direction::Ingress
    }
}

/// The eBPF source: one program for every interface.
#[cfg(feature = "ebpf")]
struct Kernel {
    counter: vpcflow_live::FlowCounter,
    flows: Vec<vpcflow_live::KernelFlow>,
    losses: Vec<vpcflow_live::KernelLoss>,
    /// When the counters were last collected (losses since are dated then).
    last_collect: Timestamp,
}

/// A pipeline and, per tap, the port it counts for in that pipeline.
struct Generation {
    pipeline: Pipeline<Verdicts>,
    /// Index into the taps -> port index in this pipeline's topology.
    ports: Vec<Option<u32>>,
    /// Packets from this instant on are this generation's (0: the first).
    from: Timestamp,
    /// Packets at or after this instant go to the next generation.
    until: Option<Timestamp>,
}

/// The pipeline that takes traffic of tap `t` seen at `at` (the generation
/// whose inventory holds at that instant), and the tap's port in it.
fn route(
    generations: &mut [Generation],
    t: usize,
    at: Timestamp,
) -> Option<(&mut Pipeline<Verdicts>, u32)> {
    let g = generations
        .iter_mut()
        .find(|g| g.until.is_none_or(|u| at < u))?;
    let port = g.ports[t]?;
    Some((&mut g.pipeline, port))
}

fn wall_clock() -> Timestamp {
    Timestamp(crate::query::wall_clock_ns())
}

fn modified(path: &PathBuf) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

struct Agent {
    args: CaptureOptions,
    config: AggregatorConfig,
    sink: Arc<RecordSink>,
    source: Box<dyn InventorySource>,
    taps: Vec<Tap>,
    #[cfg(feature = "ebpf")]
    kernel: Option<Kernel>,
    generations: Vec<Generation>,
    inventory: Inventory,
    files: u64,
    records: u64,
}

impl Agent {
    fn aggregator_config(args: &CaptureOptions, inv: &Inventory) -> Result<AggregatorConfig> {
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
            if let Some(t) = self.taps.iter().position(|tap| &tap.interface == ifname) {
                ports[t] = Some(pi as u32);
            }
        }
        Generation {
            pipeline,
            ports,
            until: None,
            from: Timestamp(0),
        }
    }

    /// Opens the captures of monitored interfaces not yet open, and
    /// reopens those whose interface was deleted or recreated.
    fn open_taps(&mut self) {
        let inv = &self.inventory;
        let monitored: Vec<usize> = self
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
        for i in monitored {
            let p = &inv.ports[i];
            let Some(ifname) = &p.interface else { continue };
            if self.taps.iter().any(|t| &t.interface == ifname) {
                continue;
            }
            self.taps.push(Tap {
                interface: ifname.clone(),
                host_side: p.host_side,
                ifindex: None,
                ring: None,
                lost_unreported: 0,
            });
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
        for t in 0..self.taps.len() {
            let now_index = vpcflow_live::interface_index(&self.taps[t].interface)
                .ok()
                .map(|i| i as u32);
            if now_index.is_some() && now_index == self.taps[t].ifindex {
                continue;
            }
            if self.taps[t].ifindex.is_some() {
                eprintln!(
                    "vpcflow: interface {} went away; reopening it when it is back",
                    self.taps[t].interface
                );
                self.close_tap(t);
            }
            if now_index.is_some() {
                self.open_tap(t);
            }
        }
    }

    fn close_tap(&mut self, t: usize) {
        let tap = &mut self.taps[t];
        tap.ifindex = None;
        tap.ring = None;
        #[cfg(feature = "ebpf")]
        if let Some(k) = &mut self.kernel {
            k.counter.detach(&tap.interface);
        }
    }

    fn open_tap(&mut self, t: usize) {
        let ifname = self.taps[t].interface.clone();
        #[cfg(feature = "ebpf")]
        if let Some(k) = &mut self.kernel {
            match k.counter.attach(&ifname) {
                Ok(ifindex) => {
                    eprintln!("vpcflow: counting {ifname} in the kernel (eBPF)");
                    self.taps[t].ifindex = Some(ifindex);
                }
                Err(e) => eprintln!("vpcflow: warning: {e} (retrying)"),
            }
            return;
        }
        let config = RingConfig {
            snaplen: self.args.snaplen,
            ..RingConfig::default()
        };
        match PacketRing::open(&ifname, config) {
            Ok(ring) => {
                eprintln!("vpcflow: capturing {ifname} (AF_PACKET)");
                self.taps[t].ifindex = vpcflow_live::interface_index(&ifname)
                    .ok()
                    .map(|i| i as u32);
                self.taps[t].ring = Some(ring);
            }
            Err(e) => eprintln!("vpcflow: warning: {e} (retrying)"),
        }
    }

    /// The eBPF source: takes the kernel's counters into the pipelines.
    #[cfg(feature = "ebpf")]
    fn collect(&mut self, now: Timestamp) {
        let Some(k) = &mut self.kernel else { return };
        k.flows.clear();
        k.losses.clear();
        if let Err(e) = k.counter.collect(&mut k.flows, &mut k.losses) {
            eprintln!("vpcflow: warning: {e}");
            return;
        }
        // First-seen order, so stateful verdicts see requests first.
        k.flows.sort_unstable_by_key(|f| f.first_ns);
        let generations = &mut self.generations;
        for f in &k.flows {
            let Some(t) = self.taps.iter().position(|t| t.ifindex == Some(f.ifindex)) else {
                continue;
            };
            let first = Timestamp(f.first_ns);
            let Some((pipeline, port)) = route(generations, t, first) else {
                continue;
            };
            pipeline.observe_flow(&FlowDelta {
                port,
                direction: direction(f.egress, self.taps[t].host_side),
                tuple: FiveTuple {
                    src: f.src,
                    dst: f.dst,
                    src_port: f.src_port,
                    dst_port: f.dst_port,
                    protocol: IpProtocol(f.protocol),
                },
                packets: f.packets,
                bytes: f.bytes,
                flags_any: f.flags_any,
                flags_all: f.flags_all,
                first,
            });
        }
        // Losses happened since the last collection, inside its window.
        let at = k.last_collect;
        for l in &k.losses {
            let Some(t) = self.taps.iter().position(|t| t.ifindex == Some(l.ifindex)) else {
                continue;
            };
            self.taps[t].lost_unreported += l.packets;
            if let Some((pipeline, port)) = route(generations, t, at) {
                pipeline.note_lost(port, at, l.packets, l.bytes);
            }
        }
        k.last_collect = now;
    }

    /// Reads every ring into the pipelines.
    fn drain(&mut self) {
        let generations = &mut self.generations;
        for (t, tap) in self.taps.iter_mut().enumerate() {
            let Tap {
                ring: Some(ring),
                host_side,
                ..
            } = tap
            else {
                continue;
            };
            let host_side = *host_side;
            ring.drain(|p| {
                let Some((pipeline, port)) = route(generations, t, Timestamp(p.timestamp_ns))
                else {
                    return;
                };
                let direction = direction(p.outgoing, host_side);
                pipeline.observe_on_port(
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
            let Some(ring) = &mut tap.ring else { continue };
            match ring.take_stats() {
                Ok(s) if s.drops > 0 => {
                    tap.lost_unreported += s.drops;
                    if let Some(g) = self.generations.last_mut()
                        && let Some(port) = g.ports[t]
                    {
                        g.pipeline.note_lost(port, now, s.drops, 0);
                    }
                }
                Ok(_) => {}
                Err(e) => eprintln!("vpcflow: warning: {e}"),
            }
        }
    }

    /// Says which interfaces lost packets since the last report.
    fn report_losses(&mut self) {
        let source = self.source_name();
        for tap in &mut self.taps {
            if tap.lost_unreported > 0 {
                eprintln!(
                    "vpcflow: warning: {}: {} packets could not be counted ({source} source \
                     full); they are in the port's SKIPDATA records",
                    tap.interface, tap.lost_unreported
                );
                tap.lost_unreported = 0;
            }
        }
    }

    /// Writes closed windows of generation `gi`; `partial_after`: windows
    /// ending after this instant (Unix seconds) were cut short.
    fn write(&mut self, gi: usize, windows: Vec<ClosedWindow>, partial_after: u64) -> Result<()> {
        for w in &windows {
            let topology = self.generations[gi].pipeline.topology();
            for f in &self.sink.write(topology, w, w.end > partial_after)? {
                println!("{} {}", f.path.display(), f.records);
                self.files += 1;
                self.records += f.records as u64;
            }
            if let Err(e) = self.sink.store().compact_before(w.start) {
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
                // One waiting for its first window has no window before it
                // (the clock would open one: a NODATA the inventory of that
                // window never asked for).
                None if now < g.from => {}
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
            // What the old rules' engine still tracks moves to its successor.
            if let Some(e) = self.generations[1].pipeline.policy().engine() {
                e.retire_predecessor(now);
            }
            self.generations.remove(0);
        }
        Ok(())
    }

    fn source_name(&self) -> &'static str {
        #[cfg(feature = "ebpf")]
        if self.kernel.is_some() {
            return "eBPF";
        }
        "AF_PACKET"
    }

    /// The inventory changed: the new one applies from the next window.
    fn reload(&mut self, now: Timestamp) {
        let inv = match self.source.load() {
            Ok(inv) => inv,
            Err(e) => {
                eprintln!("vpcflow: warning: keeping the running inventory: {e:#}");
                return;
            }
        };
        let next_start = self.config.window.start_of(now) + self.config.window.secs();
        let boundary = Timestamp::from_secs(next_start);
        // A change before the boundary that a previous change already waits
        // for replaces that one: it has taken no packet yet, and closing it
        // would add a second set of records for the window.
        if self.generations.len() > 1 && self.generations.last().is_some_and(|g| g.from == boundary)
        {
            self.generations.pop();
        }
        if let Some(g) = self.generations.last_mut() {
            g.until = Some(boundary);
        }
        if let Err(e) = self.sink.register(&catalog_groups(&inv)) {
            eprintln!("vpcflow: warning: {e}");
        }
        let mut next = self.generation(&inv);
        next.from = boundary;
        // Connections open now stay tracked (SPEC §2): only new ones meet
        // the new rules.
        if let (Some(prev), Verdicts::Engine(e)) = (
            self.generations
                .last()
                .and_then(|g| g.pipeline.policy().engine()),
            next.pipeline.policy_mut(),
        ) {
            e.succeed(prev);
        }
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

/// The eBPF source, loaded; `None` for af-packet (or when a default
/// eBPF could not load, with a warning).
#[cfg(feature = "ebpf")]
fn load_kernel(args: &CaptureOptions) -> Result<Option<Kernel>> {
    // eBPF is the default where the build has it.
    if args.capture.unwrap_or(CaptureArg::Ebpf) != CaptureArg::Ebpf {
        return Ok(None);
    }
    let explicit = args.capture.is_some();
    match vpcflow_live::FlowCounter::load(vpcflow_live::EbpfConfig {
        max_flows: args.flow_table,
    }) {
        Ok(counter) => Ok(Some(Kernel {
            counter,
            flows: Vec::new(),
            losses: Vec::new(),
            last_collect: wall_clock(),
        })),
        Err(e) if !explicit => {
            eprintln!("vpcflow: warning: {e}; falling back to --capture af-packet");
            Ok(None)
        }
        Err(e) => Err(e).context("--capture ebpf"),
    }
}

/// Runs `vpcflow agent`.
pub fn run(args: AgentArgs) -> Result<ExitCode> {
    let sink = Arc::new(RecordSink::open(&args.store)?);
    sink.store().compact_in_background();
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, Arc::clone(&stop))
            .context("installing signal handlers")?;
    }
    let source = FileSource {
        path: args.config,
        mtime: None,
    };
    run_with(args.capture, Box::new(source), sink, &stop)?;
    Ok(ExitCode::SUCCESS)
}

/// Captures until `stop` is set: the inventory from `source` (followed as
/// it changes, from the next window on), closed windows into `sink`.
pub fn run_with(
    args: CaptureOptions,
    mut source: Box<dyn InventorySource>,
    sink: Arc<RecordSink>,
    stop: &AtomicBool,
) -> Result<()> {
    #[cfg(not(feature = "ebpf"))]
    if args.capture == Some(CaptureArg::Ebpf) {
        bail!(
            "--capture ebpf: this build has no eBPF source; build with `--features ebpf` \
             (after `scripts/setup.sh build` installs clang and libelf-dev) or use \
             --capture af-packet"
        );
    }
    if args.flow_table == 0 {
        bail!("--flow-table 0: the kernel flow table needs at least one entry");
    }
    let inventory = source.load()?;
    let config = Agent::aggregator_config(&args, &inventory)?;
    #[cfg(feature = "ebpf")]
    let kernel = load_kernel(&args)?;
    sink.register(&catalog_groups(&inventory))?;
    let mut agent = Agent {
        args,
        config,
        sink,
        source,
        taps: Vec::new(),
        #[cfg(feature = "ebpf")]
        kernel,
        generations: Vec::new(),
        inventory: inventory.clone(),
        files: 0,
        records: 0,
    };
    let first = agent.generation(&inventory);
    agent.generations.push(first);
    agent.open_taps();
    if agent.taps.iter().all(|t| t.ifindex.is_none()) {
        eprintln!("vpcflow: warning: no monitored port's interface is here yet; waiting for them");
    }
    let started = Instant::now();
    let mut last_housekeeping = Instant::now();
    let mut last_gc = None::<Instant>;
    let mut last_report = Instant::now();
    #[cfg(feature = "ebpf")]
    let mut next_collect = wall_clock();
    let mut fds = Vec::new();
    eprintln!(
        "vpcflow: agent running ({}): {}-second windows of {} into {}",
        agent.source_name(),
        agent.config.window.secs(),
        agent.source.describe(),
        agent.sink.root().display()
    );
    while !stop.load(Ordering::Relaxed)
        && agent
            .args
            .duration
            .is_none_or(|d| started.elapsed() < Duration::from_secs(d))
    {
        #[allow(unused_mut)]
        let mut timeout_ms = 100;
        #[cfg(feature = "ebpf")]
        if agent.kernel.is_some() {
            // Wake at the collection due (a window boundary, to the ms).
            let wait = next_collect.0.saturating_sub(wall_clock().0) / 1_000_000;
            timeout_ms = wait.min(100) as i32;
        }
        wait_readable(
            agent.taps.iter().filter_map(|t| t.ring.as_ref()),
            &mut fds,
            timeout_ms,
        )
        .context("waiting for packets")?;
        agent.drain();
        let now = wall_clock();
        #[cfg(feature = "ebpf")]
        if agent.kernel.is_some() && now >= next_collect {
            agent.collect(now);
            let boundary = Timestamp::from_secs(
                agent.config.window.start_of(now) + agent.config.window.secs(),
            );
            next_collect = Timestamp(boundary.0.min(now.0 + COLLECT_EVERY.as_nanos() as u64));
        }
        if last_housekeeping.elapsed() >= Duration::from_millis(500) {
            last_housekeeping = Instant::now();
            agent.note_drops(now);
            if agent.source.changed() {
                agent.reload(now);
            }
            agent.open_taps();
            if last_report.elapsed() >= Duration::from_secs(10) {
                last_report = Instant::now();
                agent.report_losses();
            }
            if last_gc.is_none_or(|t| t.elapsed() >= Duration::from_secs(3600)) {
                last_gc = Some(Instant::now());
                match agent.sink.store().gc(|_| None, now.0 / 1_000_000_000) {
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
    // Flush: everything the capture still holds, then the open window, partial.
    agent.drain();
    let now = wall_clock();
    #[cfg(feature = "ebpf")]
    agent.collect(now);
    agent.note_drops(now);
    agent.report_losses();
    agent.tick(now)?;
    agent.generations.retain(|g| g.from <= now);
    for gi in 0..agent.generations.len() {
        let g = &mut agent.generations[gi];
        g.pipeline.note_clock(now);
        g.pipeline.finish();
        let closed = std::mem::take(g.pipeline.closed());
        agent.write(gi, closed, now.0 / 1_000_000_000)?;
    }
    let compacted = {
        let mut store = agent.sink.store();
        let mut c = store.compact_before(u64::MAX).unwrap_or_default();
        c.extend(store.finish_compaction().unwrap_or_default());
        c
    };
    let (mut packets, mut lost) = (0, 0);
    for g in &agent.generations {
        packets += g.pipeline.stats().packets;
        lost += g.pipeline.stats().late_for_window;
    }
    eprintln!(
        "vpcflow: agent stopped: {packets} packets ({lost} too late for their window), {} records in {} files ({} hours compacted)",
        agent.records,
        agent.files,
        compacted.len()
    );
    Ok(())
}
