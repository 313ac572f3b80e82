//! The pipeline: frames in, closed windows of records out.
//!
//! `frame -> wire::parse_frame -> fragments -> attribute -> aggregate`. The
//! caller passes every frame to [`Pipeline::observe`], drains
//! [`Pipeline::closed`] when it likes, and calls [`Pipeline::finish`] at the
//! end of input. Windows close on the frames' own timestamps (or, for a live
//! source, on the clock the caller passes to [`Pipeline::tick`]).

use vpcflow_wire::{Frame, IpProtocol, IpSummary, Skip, TcpFlags, parse_frame};

use crate::aggregate::{Aggregator, AggregatorConfig, ClosedWindow, Shard};
use crate::attribute::Attributor;
use crate::flow::{Direction, ExportedDelta, FiveTuple, FlowDelta};
use crate::fragments::FragmentTracker;
use crate::policy::Policy;
use crate::record::LogStatus;
use crate::time::Timestamp;
use crate::topology::{PortInfo, Topology};

/// Why a packet did not reach any record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SkipReason {
    /// The frame could not be decoded.
    Wire(Skip),
    /// Neither address is a monitored port.
    NoMonitoredPort,
    /// Its capture window had already been closed (timestamps out of order).
    LateForWindow,
    /// Its timestamp is outside the [`PlausibleTimes`] the pipeline takes.
    ImplausibleTimestamp,
}

impl SkipReason {
    /// Stable name for statistics.
    pub fn name(self) -> &'static str {
        match self {
            SkipReason::Wire(s) => s.name(),
            SkipReason::NoMonitoredPort => "no-monitored-port",
            SkipReason::LateForWindow => "late-for-window",
            SkipReason::ImplausibleTimestamp => "implausible-timestamp",
        }
    }
}

/// What the pipeline has seen.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PipelineStats {
    /// Frames observed.
    pub packets: u64,
    /// Packets counted in at least one record of a monitored port.
    pub attributed: u64,
    /// Frames that could not be decoded, by [`Skip::index`].
    pub skipped_wire: [u64; Skip::ALL.len()],
    /// Packets between addresses that are no monitored port.
    pub no_monitored_port: u64,
    /// Packets whose window had closed.
    pub late_for_window: u64,
    /// Frames whose timestamp was outside the pipeline's [`PlausibleTimes`].
    pub implausible_timestamp: u64,
    /// Windows of long gaps not reported (see [`crate::aggregate::MAX_GAP_NODATA_SECS`]).
    pub gap_windows_not_reported: u64,
    /// Packets recorded with ports 0 because the capture cut the transport header.
    pub transport_truncated: u64,
    /// Later fragments whose first fragment was not seen (ports 0).
    pub unmatched_fragments: u64,
    /// Records emitted, by [`LogStatus`].
    pub records: [u64; 3],
    /// Windows closed.
    pub windows: u64,
    /// Most flows the aggregator held at once, and the bytes its tables took then.
    pub peak_flows: (usize, usize),
}

impl PipelineStats {
    /// Skipped packets by reason, non-zero ones only.
    pub fn skipped(&self) -> Vec<(SkipReason, u64)> {
        let mut v: Vec<(SkipReason, u64)> = Skip::ALL
            .iter()
            .map(|s| (SkipReason::Wire(*s), self.skipped_wire[s.index()]))
            .collect();
        v.push((SkipReason::NoMonitoredPort, self.no_monitored_port));
        v.push((SkipReason::LateForWindow, self.late_for_window));
        v.push((SkipReason::ImplausibleTimestamp, self.implausible_timestamp));
        v.retain(|(_, n)| *n > 0);
        v
    }
}

/// What a pipeline read of one frame, for another to count
/// ([`Pipeline::observe_sharing`], [`Pipeline::apply`]).
#[derive(Debug, Clone)]
pub enum SharedFrame {
    /// A frame that counts for no port; its time if that was plausible
    /// (it still moves the clock).
    Uncounted(Option<Timestamp>),
    /// A port the reading pipeline's attribution added, before the packet
    /// that made it.
    NewPort(Box<PortInfo>),
    /// A packet, and the ports it counts for.
    Packet {
        /// What the frame said.
        summary: IpSummary,
        /// Its time.
        now: Timestamp,
        /// Its ports and directions.
        targets: [Option<(u32, Direction)>; 2],
    },
}

/// What a frame says by itself, before any state is consulted: its time
/// and its parsed headers (or why they could not be parsed). Made apart
/// from [`Pipeline::observe_prepared`] so that a reader can prepare frames
/// some way ahead and [`Pipeline::prefetch`] what they will look up.
#[derive(Debug, Clone)]
pub struct PreparedFrame {
    /// The frame's timestamp.
    pub now: Timestamp,
    /// Its headers.
    pub parsed: Result<IpSummary, Skip>,
}

impl PreparedFrame {
    /// Parses `frame`.
    pub fn of(frame: &Frame<'_>) -> PreparedFrame {
        PreparedFrame {
            now: Timestamp(frame.timestamp_ns),
            parsed: parse_frame(frame.link, frame.data, frame.wire_len),
        }
    }
}

/// Frames in, closed windows out.
#[derive(Debug)]
pub struct Pipeline<P> {
    topology: Topology,
    attributor: Attributor,
    fragments: FragmentTracker,
    aggregator: Aggregator,
    policy: P,
    closed: Vec<ClosedWindow>,
    stats: PipelineStats,
    plausible: PlausibleTimes,
}

/// The timestamps a pipeline takes frames at; frames outside are skipped
/// and counted as `implausible-timestamp`. A server taking other people's
/// captures uses [`PlausibleTimes::around`]; the default takes any time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PlausibleTimes {
    /// The earliest timestamp taken.
    pub earliest: Timestamp,
    /// The latest timestamp taken.
    pub latest: Timestamp,
}

impl PlausibleTimes {
    /// Every timestamp.
    pub const ANY: PlausibleTimes = PlausibleTimes {
        earliest: Timestamp(0),
        latest: Timestamp(u64::MAX),
    };
    /// 1990-01-01T00:00:00Z: no capture of a flow-logged network is older.
    pub const EARLIEST_SECS: u64 = 631_152_000;
    /// How far past the current time a capture's clock may run: a day.
    pub const AHEAD_SECS: u64 = 86_400;

    /// From 1990 to a day after `now`.
    pub fn around(now: Timestamp) -> PlausibleTimes {
        PlausibleTimes {
            earliest: Timestamp::from_secs(Self::EARLIEST_SECS),
            latest: Timestamp(now.0.saturating_add(Self::AHEAD_SECS * 1_000_000_000)),
        }
    }

    fn contains(self, t: Timestamp) -> bool {
        self.earliest <= t && t <= self.latest
    }
}

impl Default for PlausibleTimes {
    fn default() -> Self {
        PlausibleTimes::ANY
    }
}

/// First fragments remembered at once.
const FRAGMENT_CAPACITY: usize = 65_536;

impl<P: Policy> Pipeline<P> {
    /// A pipeline over `topology`, attributing with `attributor`.
    pub fn new(
        topology: Topology,
        attributor: Attributor,
        config: AggregatorConfig,
        policy: P,
    ) -> Pipeline<P> {
        Pipeline {
            topology,
            attributor,
            fragments: FragmentTracker::new(FRAGMENT_CAPACITY),
            aggregator: Aggregator::new(config),
            policy,
            closed: Vec::new(),
            stats: PipelineStats::default(),
            plausible: PlausibleTimes::ANY,
        }
    }

    /// Takes frames only at `times` (see [`PlausibleTimes`]).
    pub fn with_plausible_times(mut self, times: PlausibleTimes) -> Pipeline<P> {
        self.plausible = times;
        self
    }

    /// Keeps only the flows of `shard`'s ports: every shard of a run sees
    /// every packet and port (one reads them, the others
    /// [`apply`](Pipeline::apply) what it read), so all close the same
    /// windows, and each writes its own ports' records (see [`Shard`]).
    pub fn into_shard(mut self, shard: Shard) -> Pipeline<P> {
        self.aggregator.set_shard(shard);
        self
    }

    /// The ports and flow logs (grows in `--ports-from` mode).
    pub fn topology(&self) -> &Topology {
        &self.topology
    }

    /// Counters so far.
    pub fn stats(&self) -> &PipelineStats {
        &self.stats
    }

    /// The aggregator (for memory and flow counts).
    pub fn aggregator(&self) -> &Aggregator {
        &self.aggregator
    }

    /// The policy.
    pub fn policy(&self) -> &P {
        &self.policy
    }

    /// The policy, to link it with another (e.g. an inventory change's).
    pub fn policy_mut(&mut self) -> &mut P {
        &mut self.policy
    }

    /// Closed windows not yet taken; drain it.
    pub fn closed(&mut self) -> &mut Vec<ClosedWindow> {
        &mut self.closed
    }

    /// Gives back closed windows once written, so that the next window to
    /// close reuses their records' memory.
    pub fn recycle(&mut self, windows: Vec<ClosedWindow>) {
        self.aggregator.recycle(windows);
    }

    /// Processes one frame, attributed to ports by its addresses (a capture
    /// that sees many ports' traffic, e.g. on a bridge or a trunk).
    pub fn observe(&mut self, frame: &Frame<'_>) {
        self.observe_prepared(&PreparedFrame::of(frame));
    }

    /// [`Pipeline::observe`] of a frame prepared beforehand.
    pub fn observe_prepared(&mut self, frame: &PreparedFrame) {
        self.observe_telling(frame, None);
    }

    /// [`Pipeline::observe_prepared`], also telling `out` what it read, for
    /// the other shards of the run to [`apply`](Pipeline::apply) without
    /// parsing or attributing the frame again.
    pub fn observe_sharing(&mut self, frame: &PreparedFrame, out: &mut Vec<SharedFrame>) {
        self.observe_telling(frame, Some(out));
    }

    /// Fetches ahead what observing `frame` will look up in the flow
    /// tables, when it comes in a few frames' time: only a hint, nothing
    /// changes (see [`Aggregator::prefetch`]).
    pub fn prefetch(&self, frame: &PreparedFrame) {
        if let Ok(s) = &frame.parsed {
            self.prefetch_packet(s, frame.now);
        }
    }

    /// [`Pipeline::prefetch`] for a packet another shard read.
    pub fn prefetch_shared(&self, shared: &SharedFrame) {
        if let SharedFrame::Packet { summary, now, .. } = shared {
            self.prefetch_packet(summary, *now);
        }
    }

    fn prefetch_packet(&self, s: &IpSummary, now: Timestamp) {
        self.aggregator
            .prefetch(now, &s.src, &s.dst, [s.src_port, s.dst_port], s.protocol.0);
    }

    fn tuple(s: &IpSummary) -> FiveTuple {
        FiveTuple::new(
            s.src,
            s.dst,
            s.src_port,
            s.dst_port,
            s.protocol,
            s.icmp_type,
        )
    }

    fn observe_telling(&mut self, frame: &PreparedFrame, out: Option<&mut Vec<SharedFrame>>) {
        let (s, now) = match self.parse(frame) {
            Ok(p) => p,
            Err(time) => {
                if let Some(out) = out {
                    out.push(SharedFrame::Uncounted(time));
                }
                return;
            }
        };
        let window = self.aggregator.config().window;
        let ports = self.topology.ports.len();
        let targets = self
            .attributor
            .attribute(&s.src, &s.dst, now, window, &mut self.topology);
        if let Some(out) = out {
            for p in &self.topology.ports[ports..] {
                out.push(SharedFrame::NewPort(Box::new(p.clone())));
            }
            out.push(SharedFrame::Packet {
                summary: s,
                now,
                targets,
            });
        }
        self.count_packet(&s, now, targets);
    }

    /// Counts what another pipeline of the same run (same inventory or
    /// automatic ports) read of a frame: the same windows open and close
    /// here, and ports are added at the same point.
    pub fn apply(&mut self, shared: &SharedFrame) {
        match shared {
            SharedFrame::Uncounted(time) => {
                self.stats.packets += 1;
                match time {
                    Some(t) => {
                        self.aggregator.note_time(*t);
                    }
                    None => self.stats.implausible_timestamp += 1,
                }
            }
            SharedFrame::NewPort(port) => {
                let p = self.topology.push_port(PortInfo::clone(port));
                self.attributor.adopt(&self.topology.ports[p as usize], p);
            }
            SharedFrame::Packet {
                summary,
                now,
                targets,
            } => {
                self.stats.packets += 1;
                self.aggregator.note_time(*now);
                self.count_packet(summary, *now, *targets);
            }
        }
    }

    /// Processes one frame captured on a port's own interface: it counts
    /// for that port only, in `direction` (the capture knows which way it
    /// went), so traffic between two monitored ports, seen on both their
    /// interfaces, is counted once for each.
    pub fn observe_on_port(&mut self, frame: &Frame<'_>, port: u32, direction: Direction) {
        let Ok((s, now)) = self.parse(&PreparedFrame::of(frame)) else {
            return;
        };
        let target = ((port as usize) < self.topology.ports.len()).then_some((port, direction));
        self.count_packet(&s, now, [target, None]);
    }

    /// Adds traffic counted elsewhere, many packets of one flow at once
    /// (the eBPF source's kernel tables): like [`Pipeline::observe_on_port`]
    /// for `delta.port` in `delta.direction`. The caller passes a window's
    /// deltas in first-seen order, so that stateful verdicts see requests
    /// before their replies, and closes windows with
    /// [`Pipeline::note_clock`].
    pub fn observe_flow(&mut self, delta: &FlowDelta) {
        self.stats.packets = self.stats.packets.saturating_add(delta.packets);
        if delta.port as usize >= self.topology.ports.len() {
            self.stats.no_monitored_port =
                self.stats.no_monitored_port.saturating_add(delta.packets);
        } else if self
            .aggregator
            .observe(&self.topology, &mut self.policy, delta)
        {
            self.stats.attributed = self.stats.attributed.saturating_add(delta.packets);
        } else {
            self.stats.late_for_window = self.stats.late_for_window.saturating_add(delta.packets);
        }
    }

    /// Adds a flow the network exported (NetFlow, IPFIX, sFlow), counted
    /// in the window of its first packet, and returns the ports it was
    /// attributed to: `on` them if given (an exporter whose interfaces are
    /// mapped to ports), else by its addresses as a frame of
    /// [`Pipeline::observe`] is. Windows close as the exported flows' times
    /// pass them (plus the grace), as frames' times do. A sampling rate
    /// above 1 says the counts are estimates from 1-in-N samples; the
    /// records say so (`sampling-rate`).
    pub fn observe_exported(
        &mut self,
        delta: &ExportedDelta,
        on: Option<[Option<(u32, Direction)>; 2]>,
    ) -> [Option<u32>; 2] {
        let ExportedDelta {
            tuple,
            packets,
            bytes,
            tcp_flags,
            first,
            sampling_rate,
        } = *delta;
        self.stats.packets = self.stats.packets.saturating_add(packets);
        if !self.plausible.contains(first) {
            self.stats.implausible_timestamp =
                self.stats.implausible_timestamp.saturating_add(packets);
            return [None; 2];
        }
        self.aggregator.note_time(first);
        let window = self.aggregator.config().window;
        let targets = match on {
            Some(targets) => targets,
            None => {
                self.attributor
                    .attribute(&tuple.src, &tuple.dst, first, window, &mut self.topology)
            }
        };
        let ports = targets.map(|t| t.map(|(port, _)| port));
        if targets.iter().all(Option::is_none) {
            self.stats.no_monitored_port = self.stats.no_monitored_port.saturating_add(packets);
        } else {
            let flags = if tuple.protocol == IpProtocol::TCP {
                tcp_flags
            } else {
                0
            };
            let counted = self.count_on(
                targets,
                FlowDelta {
                    port: 0,
                    direction: Direction::Egress,
                    tuple,
                    packets,
                    bytes,
                    // An export gives the OR of the flags only: for one
                    // packet that is all of them; otherwise only a flow
                    // without ACK can have had SYN in every packet.
                    flags_any: flags,
                    flags_all: if packets > 1 && flags & TcpFlags::ACK != 0 {
                        flags & !TcpFlags::SYN
                    } else {
                        flags
                    },
                    first,
                    sampling_rate,
                },
            );
            if counted {
                self.stats.attributed = self.stats.attributed.saturating_add(packets);
            } else {
                self.stats.late_for_window = self.stats.late_for_window.saturating_add(packets);
            }
        }
        self.tick(first);
        ports
    }

    /// Notes that traffic of `port` of an unknown size was lost around
    /// `at` (an exporter's sequence numbers skipped): SKIPDATA in that
    /// window, with what is known lost (see [`Aggregator::note_unknown_loss`]).
    pub fn note_unknown_loss(&mut self, port: u32, at: Timestamp) {
        self.aggregator.note_unknown_loss(&self.topology, port, at);
    }

    /// Counts packets (and their bytes, 0 if unknown) the capture lost on
    /// `port` at `now` (SKIPDATA).
    pub fn note_lost(&mut self, port: u32, now: Timestamp, packets: u64, bytes: u64) {
        if !self
            .aggregator
            .note_lost(&self.topology, port, now, packets, bytes)
        {
            self.stats.late_for_window += packets;
        }
    }

    /// The frame's packet and time; or, when it counts for nothing, its
    /// time if that was plausible (it still moved the clock).
    fn parse(
        &mut self,
        frame: &PreparedFrame,
    ) -> Result<(IpSummary, Timestamp), Option<Timestamp>> {
        self.stats.packets += 1;
        let now = frame.now;
        if !self.plausible.contains(now) {
            self.stats.implausible_timestamp += 1;
            return Err(None);
        }
        // Every frame, decodable or not, extends the span of reported windows.
        self.aggregator.note_time(now);
        let mut s = match frame.parsed {
            Ok(s) => s,
            Err(skip) => {
                self.stats.skipped_wire[skip.index()] += 1;
                return Err(Some(now));
            }
        };
        if s.transport_truncated {
            self.stats.transport_truncated += 1;
        }
        if s.fragment.is_some() {
            self.fragments.resolve(now, &mut s);
            self.stats.unmatched_fragments = self.fragments.unmatched;
        }
        Ok((s, now))
    }

    fn count_packet(
        &mut self,
        s: &IpSummary,
        now: Timestamp,
        targets: [Option<(u32, Direction)>; 2],
    ) {
        if targets.iter().all(Option::is_none) {
            self.stats.no_monitored_port += 1;
        } else if self.aggregator.keeps_no_port() {
            // The reading thread of a sharded run: the flows are the other
            // shards', the packet's time opens and closes windows here too.
            if self.aggregator.observe_time(now, 1) {
                self.stats.attributed += 1;
            } else {
                self.stats.late_for_window += 1;
            }
        } else {
            let flags = if s.protocol == IpProtocol::TCP {
                s.tcp_flags.0
            } else {
                0
            };
            let tuple = Self::tuple(s);
            let counted = self.count_on(
                targets,
                FlowDelta {
                    port: 0,
                    direction: Direction::Egress,
                    tuple,
                    packets: 1,
                    bytes: u64::from(s.ip_bytes),
                    flags_any: flags,
                    flags_all: flags,
                    first: now,
                    sampling_rate: 1,
                },
            );
            if counted {
                self.stats.attributed += 1;
            } else {
                self.stats.late_for_window += 1;
            }
        }
        self.tick(now);
    }

    /// Counts `traffic` (its port and direction aside) on each of
    /// `targets`, in order: the overflow port's as lost (SKIPDATA), the
    /// others' as one packet's deltas. Whether it counted anywhere (else
    /// its window was closed).
    fn count_on(&mut self, targets: [Option<(u32, Direction)>; 2], traffic: FlowDelta) -> bool {
        let mut counted = false;
        let mut deltas = [traffic; 2];
        let mut n = 0;
        for (port, direction) in targets.into_iter().flatten() {
            if Some(port) == self.attributor.overflow_port() {
                // An address past the bound on automatic ports.
                counted |= self.aggregator.note_lost(
                    &self.topology,
                    port,
                    traffic.first,
                    traffic.packets,
                    traffic.bytes,
                );
                continue;
            }
            deltas[n].port = port;
            deltas[n].direction = direction;
            n += 1;
        }
        counted
            | self
                .aggregator
                .observe_packet(&self.topology, &mut self.policy, &deltas[..n])
    }

    /// A live source's wall clock: the window holding `now` is one to report
    /// (silent ports get NODATA in it), and the windows `now` has left
    /// behind close.
    pub fn note_clock(&mut self, now: Timestamp) {
        self.aggregator.note_time(now);
        self.tick(now);
    }

    /// Closes the windows that `now` has left behind.
    pub fn tick(&mut self, now: Timestamp) {
        let before = self.closed.len();
        self.aggregator
            .close_until(&self.topology, now, &mut self.closed);
        self.count(before);
    }

    /// End of input: closes every window up to the last one with traffic.
    pub fn finish(&mut self) {
        let before = self.closed.len();
        self.aggregator.finish(&self.topology, &mut self.closed);
        self.count(before);
    }

    fn count(&mut self, from: usize) {
        let a = self.aggregator.stats();
        self.stats.peak_flows = (a.peak_flows, a.peak_memory_bytes);
        self.stats.gap_windows_not_reported = a.gap_windows_not_reported;
        for w in &self.closed[from..] {
            self.stats.windows += 1;
            for r in &w.records {
                self.stats.records[r.status() as usize] += 1;
            }
        }
    }
}

/// Records by status, named.
pub fn status_counts(stats: &PipelineStats) -> [(LogStatus, u64); 3] {
    LogStatus::ALL.map(|s| (s, stats.records[s as usize]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::attribute::AutoPorts;
    use crate::flow::TrafficType;
    use crate::policy::AcceptAll;
    use crate::record::RecordBody;
    use crate::time::WindowLength;
    use vpcflow_wire::LinkType;

    /// Ethernet + IPv4 + UDP, `payload` bytes of payload.
    fn udp(src: [u8; 4], dst: [u8; 4], payload: usize) -> Vec<u8> {
        let mut f = vec![0u8; 14 + 20 + 8 + payload];
        f[12..14].copy_from_slice(&[0x08, 0x00]);
        let ip = &mut f[14..];
        ip[0] = 0x45;
        ip[2..4].copy_from_slice(&((28 + payload) as u16).to_be_bytes());
        ip[8] = 64;
        ip[9] = 17;
        ip[12..16].copy_from_slice(&src);
        ip[16..20].copy_from_slice(&dst);
        ip[20..22].copy_from_slice(&4000u16.to_be_bytes());
        ip[22..24].copy_from_slice(&53u16.to_be_bytes());
        ip[24..26].copy_from_slice(&((8 + payload) as u16).to_be_bytes());
        f
    }

    fn pipeline() -> Pipeline<AcceptAll> {
        let (attributor, mut topology) = Attributor::automatic(&AutoPorts {
            cidrs: vec!["10.0.0.0/8".parse().unwrap()],
            traffic_type: TrafficType::All,
            region: "-".into(),
        });
        // Two ports known up front: 10.0.0.1 and 10.0.0.2.
        let mut a = attributor;
        for ip in ["10.0.0.1", "10.0.0.2"] {
            a.attribute(
                &ip.parse().unwrap(),
                &"192.0.2.1".parse().unwrap(),
                Timestamp::from_secs(600),
                WindowLength::DEFAULT,
                &mut topology,
            );
        }
        Pipeline::new(
            topology,
            a,
            AggregatorConfig {
                window: WindowLength::DEFAULT,
                max_records: 100,
                grace_ns: 0,
            },
            AcceptAll,
        )
    }

    /// Hardening finding: a capture's absurd timestamps (1970, or far in
    /// the future) are skipped and counted where the pipeline is told what
    /// is plausible, and open no window.
    #[test]
    fn implausible_timestamps_are_skipped_and_counted() {
        let now = Timestamp::from_secs(1_796_000_000);
        let mut p = pipeline().with_plausible_times(PlausibleTimes::around(now));
        let data = udp([10, 0, 0, 1], [10, 0, 0, 2], 10);
        for t in [
            Timestamp::from_secs(1000),
            now,
            Timestamp(now.0 + 86_401 * 1_000_000_000),
            Timestamp(u64::MAX),
        ] {
            p.observe(&Frame {
                timestamp_ns: t.0,
                link: LinkType::Ethernet,
                data: &data,
                wire_len: data.len() as u32,
            });
        }
        p.finish();
        assert_eq!(p.stats().implausible_timestamp, 3);
        assert_eq!(p.stats().packets, 4);
        assert_eq!(p.stats().attributed, 1);
        assert_eq!(
            p.stats().skipped(),
            vec![(SkipReason::ImplausibleTimestamp, 3)]
        );
        let windows: Vec<u64> = p.closed().iter().map(|w| w.start).collect();
        assert_eq!(windows, vec![WindowLength::DEFAULT.start_of(now)]);
        // By default every time is taken.
        let mut any = pipeline();
        any.observe(&Frame {
            timestamp_ns: 1_000_000_000_000,
            link: LinkType::Ethernet,
            data: &data,
            wire_len: data.len() as u32,
        });
        assert_eq!(any.stats().attributed, 1);
    }

    /// Hardening finding 5: past the bound on automatic ports, packets were
    /// counted as `no-monitored-port` with no record saying so. They are
    /// the overflow port's SKIPDATA now: their packets and bytes reported,
    /// no flow remembered.
    #[test]
    fn addresses_past_the_automatic_port_bound_are_reported_as_skipdata() {
        let mut p = pipeline();
        p.attributor.limit_auto_ports(2);
        let mut send = |src: [u8; 4], dst: [u8; 4], payload: usize| {
            let data = udp(src, dst, payload);
            p.observe(&Frame {
                timestamp_ns: 601_000_000_000,
                link: LinkType::Ethernet,
                data: &data,
                wire_len: data.len() as u32,
            });
        };
        send([10, 0, 0, 1], [10, 0, 0, 2], 10);
        send([10, 0, 0, 3], [192, 0, 2, 1], 100);
        send([192, 0, 2, 1], [10, 0, 0, 4], 200);
        send([10, 0, 0, 3], [10, 0, 0, 1], 0);
        p.finish();
        assert_eq!(p.stats().no_monitored_port, 0);
        assert_eq!(p.stats().attributed, 4);
        assert_eq!(p.attributor.auto_ports_refused, 3);
        let overflow = p.attributor.overflow_port().expect("an overflow port");
        assert_eq!(p.topology().ports[overflow as usize].id, "auto-overflow");
        assert_eq!(p.topology().ports.len(), 3);
        let w = &p.closed()[0];
        let skipped: Vec<&RecordBody> = w
            .records
            .iter()
            .filter(|r| r.port == overflow)
            .map(|r| &r.body)
            .collect();
        // 10.0.0.3 (twice) and 10.0.0.4: 128 + 228 + 28 IP bytes.
        assert_eq!(
            skipped,
            vec![
                &RecordBody::NoData,
                &RecordBody::SkipData {
                    packets: 3,
                    bytes: 128 + 228 + 28
                }
            ]
        );
        // 10.0.0.3 -> 10.0.0.1 still counts as port 0's ingress.
        let port0_flows = w
            .records
            .iter()
            .filter(|r| r.port == 0 && matches!(r.body, RecordBody::Flow(_)))
            .count();
        assert_eq!(port0_flows, 2);
    }

    #[test]
    fn a_frame_on_a_ports_interface_counts_for_that_port_only() {
        let mut p = pipeline();
        let data = udp([10, 0, 0, 1], [10, 0, 0, 2], 100);
        for _ in 0..3 {
            p.observe_on_port(
                &Frame {
                    timestamp_ns: 601_000_000_000,
                    link: LinkType::Ethernet,
                    data: &data,
                    wire_len: data.len() as u32,
                },
                1,
                Direction::Ingress,
            );
        }
        p.note_lost(0, Timestamp::from_secs(602), 7, 0);
        p.finish();
        let w = &p.closed()[0];
        let mut ok = w
            .records
            .iter()
            .filter(|r| matches!(r.body, RecordBody::Flow(_)));
        let r = ok.next().unwrap();
        assert_eq!(r.port, 1);
        let RecordBody::Flow(f) = &r.body else {
            unreachable!()
        };
        assert_eq!(
            (f.packets, f.bytes, f.direction),
            (3, 3 * 128, Direction::Ingress)
        );
        assert!(ok.next().is_none(), "counted once, for port 1 only");
        // Port 0 saw nothing but lost 7 packets: NODATA and SKIPDATA.
        let port0: Vec<&RecordBody> = w
            .records
            .iter()
            .filter(|r| r.port == 0)
            .map(|r| &r.body)
            .collect();
        assert_eq!(
            port0,
            vec![
                &RecordBody::NoData,
                &RecordBody::SkipData {
                    packets: 7,
                    bytes: 0
                }
            ]
        );
    }

    #[test]
    fn kernel_counted_flows_add_up_and_late_or_unknown_ones_are_counted_as_such() {
        let mut p = pipeline();
        let delta = |packets, bytes, first_s, flags| FlowDelta {
            port: 0,
            direction: Direction::Egress,
            tuple: FiveTuple {
                src: "10.0.0.1".parse().unwrap(),
                dst: "192.0.2.9".parse().unwrap(),
                src_port: 40000,
                dst_port: 443,
                protocol: IpProtocol::TCP,
                infrastructure: false,
            },
            packets,
            bytes,
            flags_any: flags,
            flags_all: flags,
            first: Timestamp::from_secs(first_s),
            sampling_rate: 1,
        };
        // Two collections of one window: one record with their sums.
        p.observe_flow(&delta(3, 180, 601, 0x02));
        p.observe_flow(&delta(5, 7000, 650, 0x10));
        p.observe_flow(&FlowDelta {
            port: 9,
            ..delta(2, 80, 651, 0)
        });
        p.note_lost(1, Timestamp::from_secs(660), 4, 400);
        p.note_clock(Timestamp::from_secs(1300));
        p.observe_flow(&delta(1, 60, 1100, 0x11));
        assert_eq!(p.stats().packets, 11);
        assert_eq!(p.stats().attributed, 8);
        assert_eq!(p.stats().no_monitored_port, 2);
        assert_eq!(p.stats().late_for_window, 1);
        let w = &p.closed()[0];
        let flows: Vec<_> = w
            .records
            .iter()
            .filter_map(|r| match &r.body {
                RecordBody::Flow(f) => Some((r.port, f.packets, f.bytes, f.tcp_flag)),
                _ => None,
            })
            .collect();
        assert_eq!(
            flows,
            [(0, 8, 7180, Some(crate::record::TcpFlag::Established))]
        );
        assert!(w.records.iter().any(|r| r.port == 1
            && r.body
                == RecordBody::SkipData {
                    packets: 4,
                    bytes: 400
                }));
    }
}
