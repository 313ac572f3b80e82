//! The driver: one inventory generation after another, traffic routed to
//! the generation whose inventory held when it was seen, windows closed on
//! the clock and handed to a [`Sink`].
//!
//! Sources name the interface (a *tap*) that carried each frame, flow or
//! loss by its index in [`Driver::interfaces`]; every generation maps taps
//! to its own topology's ports. An inventory change ([`Driver::apply`])
//! takes effect at the next window boundary: the running generation closes
//! the window it has (taking late traffic of it for the close grace), the
//! new one takes traffic from the boundary on, and its rules' engine
//! succeeds the old one's, so tracked connections outlive the change.
//!
//! Guarantees: a window is written by exactly one generation, once; a
//! generation that never took traffic before being replaced writes
//! nothing; [`Driver::finish`] writes the open window as a partial one.

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, SocketAddr};

use vpcflow_core::aggregate::{AggregatorConfig, ClosedWindow};
use vpcflow_core::flow::{Direction, ExportedDelta, FiveTuple, FlowDelta};
use vpcflow_core::pipeline::PipelineStats;
use vpcflow_core::{Inventory, Pipeline, PreparedFrame, SharedFrame, Timestamp, Topology};
use vpcflow_flowexport::{ExportedFlow, Observation};
use vpcflow_policy::DEFAULT_CONNECTIONS;
use vpcflow_wire::{Frame, IpProtocol};

use crate::verdicts::{Verdicts, inventory_pipeline};

/// An error of a sink, boxed: each sink has its own.
pub type SinkError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Where closed windows go.
pub trait Sink {
    /// Takes a closed window of `topology` (`partial`: cut short by a
    /// stop). Once this returns `Ok`, the window is the sink's to keep.
    fn write(
        &mut self,
        topology: &Topology,
        window: &ClosedWindow,
        partial: bool,
    ) -> Result<(), SinkError>;

    /// An inventory is about to be used (its log groups and topics).
    fn register(&mut self, _inventory: &Inventory) -> Result<(), SinkError> {
        Ok(())
    }

    /// Hourly upkeep (retention), at `now`.
    fn upkeep(&mut self, _now: Timestamp) {}

    /// The run is over: everything taken is written and final (a sink
    /// that holds windows back writes them now).
    fn finish(&mut self) -> Result<(), SinkError> {
        Ok(())
    }
}

macro_rules! forward_sink {
    ($t:ty) => {
        impl<S: Sink + ?Sized> Sink for $t {
            fn write(
                &mut self,
                topology: &Topology,
                window: &ClosedWindow,
                partial: bool,
            ) -> Result<(), SinkError> {
                (**self).write(topology, window, partial)
            }
            fn register(&mut self, inventory: &Inventory) -> Result<(), SinkError> {
                (**self).register(inventory)
            }
            fn upkeep(&mut self, now: Timestamp) {
                (**self).upkeep(now);
            }
            fn finish(&mut self) -> Result<(), SinkError> {
                (**self).finish()
            }
        }
    };
}
forward_sink!(&mut S);
forward_sink!(Box<S>);

/// The rest of [`Sink`] for a sink that wraps another in `self.$inner`
/// and changes only what is written.
macro_rules! forward_sink_upkeep {
    ($inner:ident) => {
        fn register(&mut self, inventory: &Inventory) -> Result<(), SinkError> {
            self.$inner.register(inventory)
        }
        fn upkeep(&mut self, now: Timestamp) {
            self.$inner.upkeep(now);
        }
        fn finish(&mut self) -> Result<(), SinkError> {
            self.$inner.finish()
        }
    };
}
pub(crate) use forward_sink_upkeep;

/// A monitored interface: the port's capture point.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Interface {
    /// The interface name.
    pub name: String,
    /// Whether it is the host side of the port's tap or veth (directions
    /// are inverted there, SPEC §1).
    pub host_side: bool,
    /// What the inventory says of it (`None`: nothing); a tap is the host
    /// side whatever it says, and saying otherwise is refused.
    pub declared_host_side: Option<bool>,
}

impl Interface {
    /// The port's direction of traffic that left through this interface
    /// (`outgoing`) or came in through it.
    pub fn direction(&self, outgoing: bool) -> Direction {
        if outgoing != self.host_side {
            Direction::Egress
        } else {
            Direction::Ingress
        }
    }
}

/// An inventory that says a tap device is not the host side of its port.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "interface {interface} is a tap device, always the host side of its port (SPEC §1), but the inventory says host_side = false for port {port}: it is not captured until the inventory is fixed"
)]
pub struct TapConflict {
    /// The interface.
    pub interface: String,
    /// Its port's id.
    pub port: String,
}

/// A flow counted on an interface (by the kernel, or a flow exporter).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TapFlow {
    /// It left through the interface (else came in).
    pub outgoing: bool,
    /// The flow.
    pub tuple: FiveTuple,
    /// Packets.
    pub packets: u64,
    /// Layer-3 bytes.
    pub bytes: u64,
    /// OR of the TCP flags.
    pub flags_any: u8,
    /// AND of the TCP flags.
    pub flags_all: u8,
    /// When its first packet was seen.
    pub first: Timestamp,
}

/// The five-tuple of an exported flow. ICMP has no ports in a record (as
/// a captured packet's); its type, from NetFlow's `type × 256 + code`
/// destination port, only tells infrastructure traffic (SPEC §1).
fn exported_tuple(f: &ExportedFlow) -> FiveTuple {
    let icmp = matches!(f.protocol, 1 | 58);
    let (src_port, dst_port) = if icmp {
        (0, 0)
    } else {
        (f.src_port, f.dst_port)
    };
    FiveTuple::new(
        f.src,
        f.dst,
        src_port,
        dst_port,
        IpProtocol(f.protocol),
        icmp.then_some((f.dst_port >> 8) as u8),
    )
}

/// A pipeline and, per tap, the port it counts for in that pipeline.
struct Generation {
    pipeline: Pipeline<Verdicts>,
    /// Tap index -> port index in this pipeline's topology.
    ports: Vec<Option<u32>>,
    /// Traffic from this instant on is this generation's (0: the first).
    from: Timestamp,
    /// Traffic at or after this instant goes to the next generation.
    until: Option<Timestamp>,
    /// Per exporter, the ports its flows were attributed to (a bit per
    /// port index): where a loss its sequence numbers tell is reported.
    exporter_ports: HashMap<SocketAddr, Vec<u64>>,
    /// (exporter address, interface index) -> port index, from the
    /// inventory: the flows of these exporters are attributed by interface.
    exporter_interfaces: HashMap<(IpAddr, u32), u32>,
    /// The exporters with interfaces in `exporter_interfaces`.
    mapped_exporters: HashSet<IpAddr>,
}

/// Counters of a run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DriverStats {
    /// Frames and flow counters taken.
    pub frames: u64,
    /// Packets counted, over every generation.
    pub packets: u64,
    /// Packets that came after their window was closed.
    pub late: u64,
    /// Windows written.
    pub windows: u64,
    /// Records written.
    pub records: u64,
}

/// The data plane of a long-running process.
pub struct Driver {
    config: AggregatorConfig,
    interfaces: Vec<Interface>,
    generations: Vec<Generation>,
    /// Packets and late packets of generations already retired.
    retired: (u64, u64),
    stats: DriverStats,
}

impl Driver {
    /// A driver for `inventory`, its first generation taking traffic of any
    /// time.
    pub fn new(inventory: &Inventory, config: AggregatorConfig) -> Driver {
        let mut d = Driver {
            config,
            interfaces: Vec::new(),
            generations: Vec::new(),
            retired: (0, 0),
            stats: DriverStats::default(),
        };
        let first = d.generation(inventory, Timestamp(0));
        d.generations.push(first);
        d.add_interfaces(inventory);
        d
    }

    /// A driver whose first generation is `pipeline` (built by the caller:
    /// automatic ports, plausible times), for traffic attributed by address
    /// ([`Driver::observe`]).
    pub fn from_pipeline(pipeline: Pipeline<Verdicts>) -> Driver {
        Driver {
            config: *pipeline.aggregator().config(),
            interfaces: Vec::new(),
            generations: vec![Generation {
                pipeline,
                ports: Vec::new(),
                from: Timestamp(0),
                until: None,
                exporter_ports: HashMap::new(),
                exporter_interfaces: HashMap::new(),
                mapped_exporters: HashSet::new(),
            }],
            retired: (0, 0),
            stats: DriverStats::default(),
        }
    }

    /// The windows' settings.
    pub fn config(&self) -> AggregatorConfig {
        self.config
    }

    /// Every interface an inventory so far monitored (taps are never
    /// removed: a source reopens one whose interface comes back).
    pub fn interfaces(&self) -> &[Interface] {
        &self.interfaces
    }

    /// The source found interface `t` to be a tap device: always the host
    /// side of its port (SPEC §1). Refused, naming the interface and its
    /// port, if the inventory says `host_side = false`.
    pub fn interface_is_tap(&mut self, t: usize) -> Result<(), TapConflict> {
        let Some(i) = self.interfaces.get(t) else {
            return Ok(());
        };
        if i.declared_host_side == Some(false) {
            let newest = self.newest();
            let port = newest
                .ports
                .get(t)
                .copied()
                .flatten()
                .and_then(|p| newest.pipeline.topology().ports.get(p as usize))
                .map_or_else(|| "-".to_string(), |p| p.id.clone());
            return Err(TapConflict {
                interface: i.name.clone(),
                port,
            });
        }
        self.interfaces[t].host_side = true;
        Ok(())
    }

    /// Counters.
    pub fn stats(&self) -> DriverStats {
        let (mut packets, mut late) = self.retired;
        for g in &self.generations {
            packets = packets.saturating_add(g.pipeline.stats().packets);
            late += g.pipeline.stats().late_for_window;
        }
        DriverStats {
            packets,
            late,
            ..self.stats
        }
    }

    /// The newest generation's pipeline counters.
    pub fn pipeline_stats(&self) -> &PipelineStats {
        self.newest().pipeline.stats()
    }

    /// The newest generation's pipeline (its topology, its rules' engine).
    pub fn pipeline(&self) -> &Pipeline<Verdicts> {
        &self.newest().pipeline
    }

    fn newest(&self) -> &Generation {
        self.generations.last().expect("a driver has a generation")
    }

    /// The start of the window after the one `now` is in.
    pub fn next_boundary(&self, now: Timestamp) -> Timestamp {
        Timestamp::from_secs(self.config.window.start_of(now) + self.config.window.secs())
    }

    /// Attributes the flows of exporters whose interfaces `inv` (the
    /// inventory the pipeline of [`Driver::from_pipeline`] was built
    /// from) maps to ports by interface (see [`Driver::exported`]).
    pub fn with_exporter_interfaces(mut self, inv: &Inventory) -> Driver {
        if let Some(g) = self.generations.last_mut() {
            (g.exporter_interfaces, g.mapped_exporters) = exporter_interfaces(&g.pipeline, inv);
        }
        self
    }

    fn generation(&self, inv: &Inventory, from: Timestamp) -> Generation {
        let pipeline = inventory_pipeline(inv, self.config, None, DEFAULT_CONNECTIONS);
        let ports = self
            .interfaces
            .iter()
            .map(|i| port_of(&pipeline, inv, &i.name))
            .collect();
        let (exporter_interfaces, mapped_exporters) = exporter_interfaces(&pipeline, inv);
        Generation {
            pipeline,
            ports,
            from,
            until: None,
            exporter_ports: HashMap::new(),
            exporter_interfaces,
            mapped_exporters,
        }
    }

    /// Adds a tap for every interface of `inv`'s monitored ports not yet
    /// known, and maps it in every generation.
    fn add_interfaces(&mut self, inv: &Inventory) {
        let topology = self.newest().pipeline.topology();
        let wanted: Vec<Interface> = topology
            .ports
            .iter()
            .filter_map(|p| p.inventory_index)
            .filter_map(|i| {
                let p = &inv.ports[i];
                Some(Interface {
                    name: p.interface.clone()?,
                    host_side: p.host_side.unwrap_or(false),
                    declared_host_side: p.host_side,
                })
            })
            .collect();
        for i in wanted {
            if let Some(known) = self.interfaces.iter_mut().find(|t| t.name == i.name) {
                // What the inventory says may have changed; a tap is marked
                // the host side again by its source.
                if known.declared_host_side != i.declared_host_side {
                    *known = i;
                }
                continue;
            }
            self.interfaces.push(i);
        }
        let n = self.interfaces.len();
        let last = self.generations.len() - 1;
        for (gi, g) in self.generations.iter_mut().enumerate() {
            while g.ports.len() < n {
                let name = &self.interfaces[g.ports.len()].name;
                // Older generations' inventories did not monitor a new
                // interface: the newest one's mapping is what counts.
                let port = if gi == last {
                    port_of(&g.pipeline, inv, name)
                } else {
                    None
                };
                g.ports.push(port);
            }
        }
    }

    /// The inventory changed at `now`: the new one applies from the next
    /// window boundary, which is returned.
    pub fn apply(&mut self, inv: &Inventory, now: Timestamp) -> Timestamp {
        let boundary = self.next_boundary(now);
        // A change before the boundary that a previous change already waits
        // for replaces that one: it has taken no traffic yet, and closing it
        // would add a second set of records for the window.
        if self.generations.len() > 1 && self.newest().from == boundary {
            self.generations.pop();
        }
        if let Some(g) = self.generations.last_mut() {
            g.until = Some(boundary);
        }
        let mut next = self.generation(inv, boundary);
        // Connections open now stay tracked (SPEC §2): only new ones meet
        // the new rules.
        if let (Some(prev), Verdicts::Engine(e)) = (
            self.newest().pipeline.policy().engine(),
            next.pipeline.policy_mut(),
        ) {
            e.succeed(prev);
        }
        // Nothing before the boundary belongs to the new inventory.
        next.pipeline.note_clock(boundary);
        self.generations.push(next);
        self.add_interfaces(inv);
        boundary
    }

    /// The pipeline that takes traffic of tap `tap` seen at `at`, and the
    /// tap's port in it.
    fn route(&mut self, tap: usize, at: Timestamp) -> Option<(&mut Pipeline<Verdicts>, u32)> {
        let g = self.generation_at(at)?;
        let port = (*g.ports.get(tap)?)?;
        Some((&mut g.pipeline, port))
    }

    /// A frame of a capture, attributed to ports by its addresses (a
    /// capture file holds no tap). The frame's time is the capture's clock:
    /// windows it passes are closed, to be written by [`Driver::drain`].
    pub fn observe(&mut self, frame: &Frame<'_>) {
        self.observe_prepared(&PreparedFrame::of(frame));
    }

    /// [`Driver::observe`] of a frame prepared ahead (see
    /// [`Driver::prefetch`]).
    pub fn observe_prepared(&mut self, frame: &PreparedFrame) {
        self.stats.frames += 1;
        if let Some(g) = self.generation_at(frame.now) {
            g.pipeline.observe_prepared(frame);
        }
    }

    /// [`Driver::observe_prepared`], also telling `out` what the pipeline
    /// read of the frame, for the other shards of a run to apply
    /// ([`vpcflow_core::Pipeline::observe_sharing`]).
    pub fn observe_sharing(&mut self, frame: &PreparedFrame, out: &mut Vec<SharedFrame>) {
        self.stats.frames += 1;
        if let Some(g) = self.generation_at(frame.now) {
            g.pipeline.observe_sharing(frame, out);
        }
    }

    /// Fetches ahead what observing `frame` will look up, a few frames
    /// before it is observed ([`vpcflow_core::Pipeline::prefetch`]).
    pub fn prefetch(&self, frame: &PreparedFrame) {
        if let Some(g) = self
            .generations
            .iter()
            .find(|g| g.until.is_none_or(|u| frame.now < u))
        {
            g.pipeline.prefetch(frame);
        }
    }

    /// The generation that takes traffic seen at `at`.
    fn generation_at(&mut self, at: Timestamp) -> Option<&mut Generation> {
        self.generations
            .iter_mut()
            .find(|g| g.until.is_none_or(|u| at < u))
    }

    /// A flow `exporter` exported (NetFlow, IPFIX, sFlow); its first
    /// packet's time is the exporter's clock, as a frame's is the
    /// capture's (see [`Pipeline::observe_exported`]). An exporter whose
    /// interfaces the inventory maps to ports (by its address) has its
    /// flows attributed by interface: in on a port's interface is the
    /// port's egress, out on one its ingress, other interfaces no port's;
    /// a record observed entering (leaving) the exporter counts on its
    /// input (output) interface only. Any other exporter's flows are
    /// attributed by their addresses.
    pub fn exported(&mut self, exporter: SocketAddr, f: &ExportedFlow) {
        let first = Timestamp(f.first_ns);
        self.stats.frames += 1;
        if let Some(g) = self.generation_at(first) {
            let on = g.mapped_exporters.contains(&exporter.ip()).then(|| {
                let port = |index: Option<u32>, direction| {
                    let p = g.exporter_interfaces.get(&(exporter.ip(), index?))?;
                    Some((*p, direction))
                };
                // An observation where the flow entered (or left) the
                // exporter counts on that interface's port only: the
                // other way's observation of the same packets counts on
                // the other.
                let input = f.observation != Some(Observation::Egress);
                let output = f.observation != Some(Observation::Ingress);
                [
                    port(f.input_interface.filter(|_| input), Direction::Egress),
                    port(f.output_interface.filter(|_| output), Direction::Ingress),
                ]
            });
            let delta = ExportedDelta {
                tuple: exported_tuple(f),
                packets: f.packets,
                bytes: f.bytes,
                tcp_flags: f.tcp_flags,
                first,
                sampling_rate: f.sampling_rate,
            };
            let ports = g.pipeline.observe_exported(&delta, on);
            for port in ports.into_iter().flatten() {
                let bits = g.exporter_ports.entry(exporter).or_default();
                let (word, bit) = (port as usize / 64, port % 64);
                if bits.len() <= word {
                    bits.resize(word + 1, 0);
                }
                bits[word] |= 1 << bit;
            }
        }
    }

    /// `exporter`'s sequence numbers say that flows of an unknown size
    /// went missing before `at` (its clock): every port its flows have
    /// reached gets a SKIPDATA record in the window of `at`.
    pub fn exported_lost(&mut self, exporter: SocketAddr, at: Timestamp) {
        if let Some(g) = self.generation_at(at)
            && let Some(bits) = g.exporter_ports.get(&exporter)
        {
            for (word, &w) in bits.iter().enumerate() {
                for bit in 0..64 {
                    if w & (1 << bit) != 0 {
                        g.pipeline.note_unknown_loss((word * 64 + bit) as u32, at);
                    }
                }
            }
        }
    }

    /// Whether closed windows wait to be written.
    pub fn has_closed(&mut self) -> bool {
        self.generations
            .iter_mut()
            .any(|g| !g.pipeline.closed().is_empty())
    }

    /// Writes the windows closed so far, without moving the clock.
    pub fn drain(&mut self, sink: &mut dyn Sink) -> Result<(), SinkError> {
        for gi in 0..self.generations.len() {
            self.write(gi, u64::MAX, sink)?;
        }
        Ok(())
    }

    /// The input is over (a capture's end): every window is closed and
    /// written whole, none partial, and no clock moves past the last frame.
    pub fn end_of_input(&mut self, sink: &mut dyn Sink) -> Result<(), SinkError> {
        self.close_all();
        self.drain(sink)?;
        sink.finish()
    }

    /// Closes every open window (whole), to be taken or drained.
    pub fn close_all(&mut self) {
        for g in &mut self.generations {
            g.pipeline.finish();
        }
    }

    /// Takes the windows closed so far, oldest generation first, instead of
    /// writing them (for a consumer that needs them side by side).
    pub fn take_closed(&mut self) -> Vec<ClosedWindow> {
        let mut all = Vec::new();
        for g in &mut self.generations {
            let closed = std::mem::take(g.pipeline.closed());
            self.stats.windows += closed.len() as u64;
            self.stats.records += closed.iter().map(|w| w.records.len() as u64).sum::<u64>();
            all.extend(closed);
        }
        all
    }

    /// A frame captured on tap `tap`.
    pub fn frame(&mut self, tap: usize, frame: &Frame<'_>, outgoing: bool) {
        let Some(interface) = self.interfaces.get(tap) else {
            return;
        };
        let direction = interface.direction(outgoing);
        self.stats.frames += 1;
        if let Some((pipeline, port)) = self.route(tap, Timestamp(frame.timestamp_ns)) {
            pipeline.observe_on_port(frame, port, direction);
        }
    }

    /// A flow counted on tap `tap`.
    pub fn flow(&mut self, tap: usize, flow: &TapFlow) {
        let Some(interface) = self.interfaces.get(tap) else {
            return;
        };
        let direction = interface.direction(flow.outgoing);
        self.stats.frames += 1;
        if let Some((pipeline, port)) = self.route(tap, flow.first) {
            pipeline.observe_flow(&FlowDelta {
                port,
                direction,
                tuple: flow.tuple,
                packets: flow.packets,
                bytes: flow.bytes,
                flags_any: flow.flags_any,
                flags_all: flow.flags_all,
                first: flow.first,
                sampling_rate: 1,
            });
        }
    }

    /// Traffic of tap `tap` the source lost around `at`: SKIPDATA.
    pub fn lost(&mut self, tap: usize, at: Timestamp, packets: u64, bytes: u64) {
        if let Some((pipeline, port)) = self.route(tap, at) {
            pipeline.note_lost(port, at, packets, bytes);
        }
    }

    /// Advances the clock to `now`: closes due windows into `sink`, and
    /// retires a replaced generation once its last window is closed.
    pub fn tick(&mut self, now: Timestamp, sink: &mut dyn Sink) -> Result<(), SinkError> {
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
            self.write(gi, u64::MAX, sink)?;
        }
        while self.generations.len() > 1
            && self.generations[0]
                .until
                .is_some_and(|u| now.0 >= u.0 + self.config.grace_ns)
        {
            self.generations[0].pipeline.finish();
            self.write(0, u64::MAX, sink)?;
            // What the old rules' engine still tracks moves to its successor.
            if let Some(e) = self.generations[1].pipeline.policy().engine() {
                e.retire_predecessor(now);
            }
            let old = self.generations.remove(0);
            self.retired.0 += old.pipeline.stats().packets;
            self.retired.1 += old.pipeline.stats().late_for_window;
        }
        Ok(())
    }

    /// Stops at `now`: closes every window, the open one as partial.
    pub fn finish(&mut self, now: Timestamp, sink: &mut dyn Sink) -> Result<(), SinkError> {
        self.tick(now, sink)?;
        // A generation still waiting for its boundary never took traffic.
        while self.generations.len() > 1 && self.newest().from > now {
            self.generations.pop();
        }
        for gi in 0..self.generations.len() {
            let g = &mut self.generations[gi];
            // A generation replaced at a boundary already passed (its
            // close grace not over yet) has no window from there on: the
            // clock would open one, a second set of records for a window
            // its successor writes.
            if g.until.is_none_or(|until| now < until) {
                g.pipeline.note_clock(now);
            }
            g.pipeline.finish();
            self.write(gi, now.secs(), sink)?;
        }
        sink.finish()
    }

    /// Writes generation `gi`'s closed windows; those ending after
    /// `partial_after` (Unix seconds) were cut short.
    fn write(
        &mut self,
        gi: usize,
        partial_after: u64,
        sink: &mut dyn Sink,
    ) -> Result<(), SinkError> {
        let g = &mut self.generations[gi];
        let mut closed = std::mem::take(g.pipeline.closed());
        for (i, w) in closed.iter().enumerate() {
            if let Err(e) = sink.write(g.pipeline.topology(), w, w.end > partial_after) {
                // The windows not taken stay first in line, in order, for
                // the next write (a retry, or the end of the run) to take:
                // a sink's outage loses none, and skips none.
                closed.drain(..i);
                closed.append(g.pipeline.closed());
                *g.pipeline.closed() = closed;
                return Err(e);
            }
            self.stats.windows += 1;
            self.stats.records += w.records.len() as u64;
        }
        g.pipeline.recycle(closed);
        Ok(())
    }
}

/// The port of `pipeline`'s topology captured on interface `name`.
/// The ports `inv` puts on exporters' interfaces, as indexes into
/// `pipeline`'s topology, and those exporters.
fn exporter_interfaces(
    pipeline: &Pipeline<Verdicts>,
    inv: &Inventory,
) -> (HashMap<(IpAddr, u32), u32>, HashSet<IpAddr>) {
    let on: HashMap<(IpAddr, u32), u32> = pipeline
        .topology()
        .ports
        .iter()
        .enumerate()
        .filter_map(|(p, port)| {
            let on = inv.ports.get(port.inventory_index?)?.exporter_interface?;
            Some((on, p as u32))
        })
        .collect();
    let exporters = on.keys().map(|(e, _)| *e).collect();
    (on, exporters)
}

fn port_of(pipeline: &Pipeline<Verdicts>, inv: &Inventory, name: &str) -> Option<u32> {
    pipeline
        .topology()
        .ports
        .iter()
        .position(|p| {
            p.inventory_index
                .and_then(|i| inv.ports[i].interface.as_deref())
                == Some(name)
        })
        .map(|p| p as u32)
}
