//! The live source: every monitored interface captured on this host, by a
//! TC eBPF program that counts flows in the kernel (the default in builds
//! with the `ebpf` feature) or by a TPACKET_V3 AF_PACKET ring per
//! interface.
//!
//! - eBPF: the counters are collected every few seconds and at every window
//!   boundary, and handed over in first-seen order (so stateful verdicts
//!   see requests first). Packets that found the kernel table full become
//!   SKIPDATA.
//! - AF_PACKET: each ring is cut to a snap length; packets the kernel
//!   dropped from a ring become SKIPDATA.
//!
//! Interfaces that do not exist yet, or that were deleted and created
//! again, are (re)opened at every [`Source::maintain`].

use std::time::Duration;

use vpcflow_core::Timestamp;
use vpcflow_live::{CaptureRing, CaptureSystem, Linux, LiveError, RingConfig};
use vpcflow_wire::{Frame, LinkType};

use crate::clock::Clock;
use crate::driver::Driver;
use crate::source::{Source, SourceError};

/// How often the eBPF source's kernel counters are collected (besides
/// every window boundary): keeps the kernel table to a few seconds of flows.
#[cfg(feature = "ebpf")]
pub const COLLECT_EVERY: Duration = Duration::from_secs(5);

/// How often losses are reported on stderr.
const REPORT_EVERY_NS: u64 = 10_000_000_000;

/// How to capture.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CaptureKind {
    /// In-kernel aggregation by a TC eBPF program.
    Ebpf,
    /// A TPACKET_V3 AF_PACKET ring per interface.
    AfPacket,
}

/// Settings of the live source.
#[derive(Debug, Clone, Copy)]
pub struct LiveConfig {
    /// The capture asked for; `None`: eBPF where the build has it, falling
    /// back to AF_PACKET with a warning if it cannot load.
    pub capture: Option<CaptureKind>,
    /// AF_PACKET: bytes kept of each packet.
    pub snaplen: u32,
    /// eBPF: flows the kernel table holds between two collections.
    pub flow_table: u32,
}

/// Why the live source could not start.
#[derive(Debug, thiserror::Error)]
pub enum LiveSourceError {
    /// eBPF was asked for in a build without it.
    #[error(
        "--capture ebpf: this build has no eBPF source; build with `--features ebpf` \
         (after `scripts/setup.sh build` installs clang and libelf-dev) or use \
         --capture af-packet"
    )]
    NoEbpf,
    /// The kernel flow table must hold a flow.
    #[error("--flow-table 0: the kernel flow table needs at least one entry")]
    EmptyFlowTable,
    /// The eBPF program asked for could not load.
    #[error("--capture ebpf: {0}")]
    Ebpf(#[source] LiveError),
}

/// One monitored interface's capture.
struct Tap<R> {
    /// The interface index the capture is bound to; `None` while closed.
    ifindex: Option<u32>,
    /// The af-packet source's ring.
    ring: Option<R>,
    /// Packets lost (ring or kernel table full) not yet reported.
    lost_unreported: u64,
    /// Not opened: the inventory contradicts what the interface is (said
    /// once, retried after the next inventory change).
    refused: bool,
}

#[cfg(feature = "ebpf")]
struct Kernel {
    counter: vpcflow_live::FlowCounter,
    flows: Vec<vpcflow_live::KernelFlow>,
    losses: Vec<vpcflow_live::KernelLoss>,
    /// When the counters were last collected (losses since are dated then).
    last_collect: Timestamp,
    next_collect: Timestamp,
}

impl<R> Default for Tap<R> {
    fn default() -> Self {
        Tap {
            ifindex: None,
            ring: None,
            lost_unreported: 0,
            refused: false,
        }
    }
}

/// The live source, on this host's kernel ([`Linux`]) or another
/// [`CaptureSystem`].
pub struct LiveSource<S: CaptureSystem = Linux> {
    system: S,
    snaplen: u32,
    taps: Vec<Tap<S::Ring>>,
    #[cfg(feature = "ebpf")]
    kernel: Option<Kernel>,
    next_report: Timestamp,
}

impl LiveSource<Linux> {
    /// The source `config` asks for, on this host, at `now`.
    pub fn new(config: LiveConfig, now: Timestamp) -> Result<LiveSource, LiveSourceError> {
        #[cfg(not(feature = "ebpf"))]
        if config.capture == Some(CaptureKind::Ebpf) {
            return Err(LiveSourceError::NoEbpf);
        }
        #[allow(unused_mut, reason = "only the eBPF source is loaded after")]
        let mut source = LiveSource::with_system(Linux::default(), config, now)?;
        #[cfg(feature = "ebpf")]
        {
            source.kernel = load_kernel(config, now)?;
        }
        Ok(source)
    }
}

impl<S: CaptureSystem> LiveSource<S> {
    /// The AF_PACKET source on `system`'s rings (the kernel's eBPF counters
    /// are [`LiveSource::new`]'s alone), at `now`.
    pub fn with_system(
        system: S,
        config: LiveConfig,
        now: Timestamp,
    ) -> Result<LiveSource<S>, LiveSourceError> {
        if config.flow_table == 0 {
            return Err(LiveSourceError::EmptyFlowTable);
        }
        Ok(LiveSource {
            system,
            snaplen: config.snaplen,
            taps: Vec::new(),
            #[cfg(feature = "ebpf")]
            kernel: None,
            next_report: now,
        })
    }

    fn close(&mut self, t: usize, _name: &str) {
        let tap = &mut self.taps[t];
        tap.ifindex = None;
        tap.ring = None;
        #[cfg(feature = "ebpf")]
        if let Some(k) = &mut self.kernel {
            k.counter.detach(_name);
        }
    }

    fn open_tap(&mut self, t: usize, name: &str) {
        #[cfg(feature = "ebpf")]
        if let Some(k) = &mut self.kernel {
            match k.counter.attach(name) {
                Ok(ifindex) => {
                    eprintln!("vpcflow: counting {name} in the kernel (eBPF)");
                    self.taps[t].ifindex = Some(ifindex);
                }
                Err(e) => eprintln!("vpcflow: warning: {e} (retrying)"),
            }
            return;
        }
        let config = RingConfig {
            snaplen: self.snaplen,
            ..RingConfig::default()
        };
        match self.system.open_ring(name, config) {
            Ok(ring) => {
                eprintln!("vpcflow: capturing {name} (AF_PACKET)");
                self.taps[t].ifindex = self.system.interface_index(name);
                self.taps[t].ring = Some(ring);
            }
            Err(e) => eprintln!("vpcflow: warning: {e} (retrying)"),
        }
    }

    /// Every ring's packets into the driver.
    fn drain(&mut self, driver: &mut Driver) {
        for (t, tap) in self.taps.iter_mut().enumerate() {
            let Some(ring) = &mut tap.ring else { continue };
            ring.drain(|p| {
                driver.frame(
                    t,
                    &Frame {
                        timestamp_ns: p.timestamp_ns,
                        link: LinkType::Ethernet,
                        data: p.data,
                        wire_len: p.wire_len,
                    },
                    p.outgoing,
                );
            });
        }
    }

    /// Kernel drops from the rings since the last call become SKIPDATA.
    fn note_drops(&mut self, driver: &mut Driver, now: Timestamp) {
        for (t, tap) in self.taps.iter_mut().enumerate() {
            let Some(ring) = &mut tap.ring else { continue };
            match ring.take_stats() {
                Ok(s) if s.drops > 0 => {
                    tap.lost_unreported += s.drops;
                    driver.lost(t, now, s.drops, 0);
                }
                Ok(_) => {}
                Err(e) => eprintln!("vpcflow: warning: {e}"),
            }
        }
    }

    fn report_losses(&mut self, driver: &Driver) {
        let source = self.name();
        for (tap, interface) in self.taps.iter_mut().zip(driver.interfaces()) {
            if tap.lost_unreported > 0 {
                eprintln!(
                    "vpcflow: warning: {}: {} packets could not be counted ({source} source \
                     full); they are in the port's SKIPDATA records",
                    interface.name, tap.lost_unreported
                );
                tap.lost_unreported = 0;
            }
        }
    }

    /// The kernel's counters into the driver.
    #[cfg(feature = "ebpf")]
    fn collect(&mut self, driver: &mut Driver, now: Timestamp) {
        use crate::driver::TapFlow;
        use vpcflow_core::flow::FiveTuple;
        use vpcflow_wire::IpProtocol;

        let Some(k) = &mut self.kernel else { return };
        k.flows.clear();
        k.losses.clear();
        if let Err(e) = k.counter.collect(&mut k.flows, &mut k.losses) {
            eprintln!("vpcflow: warning: {e}");
            return;
        }
        // First-seen order, so stateful verdicts see requests first.
        k.flows.sort_unstable_by_key(|f| f.first_ns);
        for f in &k.flows {
            let Some(t) = self.taps.iter().position(|t| t.ifindex == Some(f.ifindex)) else {
                continue;
            };
            driver.flow(
                t,
                &TapFlow {
                    outgoing: f.egress,
                    tuple: FiveTuple::new(
                        f.src,
                        f.dst,
                        f.src_port,
                        f.dst_port,
                        IpProtocol(f.protocol),
                        f.icmp_type,
                    ),
                    packets: f.packets,
                    bytes: f.bytes,
                    flags_any: f.flags_any,
                    flags_all: f.flags_all,
                    first: Timestamp(f.first_ns),
                },
            );
        }
        // Losses happened since the last collection, inside its window.
        let at = k.last_collect;
        for l in &k.losses {
            let Some(t) = self.taps.iter().position(|t| t.ifindex == Some(l.ifindex)) else {
                continue;
            };
            self.taps[t].lost_unreported += l.packets;
            driver.lost(t, at, l.packets, l.bytes);
        }
        k.last_collect = now;
        let boundary = driver.next_boundary(now);
        k.next_collect = Timestamp(boundary.0.min(now.0 + COLLECT_EVERY.as_nanos() as u64));
    }
}

#[cfg(feature = "ebpf")]
fn load_kernel(config: LiveConfig, now: Timestamp) -> Result<Option<Kernel>, LiveSourceError> {
    // eBPF is the default where the build has it.
    if config.capture.unwrap_or(CaptureKind::Ebpf) != CaptureKind::Ebpf {
        return Ok(None);
    }
    match vpcflow_live::FlowCounter::load(vpcflow_live::EbpfConfig {
        max_flows: config.flow_table,
    }) {
        Ok(counter) => Ok(Some(Kernel {
            counter,
            flows: Vec::new(),
            losses: Vec::new(),
            last_collect: now,
            next_collect: now,
        })),
        Err(e) if config.capture.is_none() => {
            eprintln!("vpcflow: warning: {e}; falling back to --capture af-packet");
            Ok(None)
        }
        Err(e) => Err(LiveSourceError::Ebpf(e)),
    }
}

impl<S: CaptureSystem> Source for LiveSource<S> {
    fn name(&self) -> &'static str {
        #[cfg(feature = "ebpf")]
        if self.kernel.is_some() {
            return "eBPF";
        }
        "AF_PACKET"
    }

    fn maintain(&mut self, driver: &mut Driver, now: Timestamp) {
        self.note_drops(driver, now);
        self.taps
            .resize_with(driver.interfaces().len(), Tap::default);
        // Taps first: whether an interface is the host side must be
        // settled before its packets are read.
        for t in 0..self.taps.len() {
            let i = &driver.interfaces()[t];
            if i.host_side {
                continue;
            }
            if !self.system.is_tap(&i.name) {
                // No longer (or never) a tap: nothing to refuse.
                self.taps[t].refused = false;
                continue;
            }
            match driver.interface_is_tap(t) {
                Ok(()) => {
                    self.taps[t].refused = false;
                    let name = &driver.interfaces()[t].name;
                    eprintln!("vpcflow: {name} is a tap device: captured as its port's host side");
                }
                Err(e) => {
                    if !self.taps[t].refused {
                        eprintln!("vpcflow: error: {e}");
                        self.taps[t].refused = true;
                    }
                    if self.taps[t].ifindex.is_some() {
                        self.close(t, &driver.interfaces()[t].name);
                    }
                }
            }
        }
        for (t, interface) in driver.interfaces().iter().enumerate() {
            let name = &interface.name;
            if self.taps[t].refused {
                continue;
            }
            let now_index = self.system.interface_index(name);
            if now_index.is_some() && now_index == self.taps[t].ifindex {
                continue;
            }
            if self.taps[t].ifindex.is_some() {
                eprintln!("vpcflow: interface {name} went away; reopening it when it is back");
                self.close(t, name);
            }
            if now_index.is_some() {
                self.open_tap(t, name);
            }
        }
        if now >= self.next_report {
            self.next_report = Timestamp(now.0 + REPORT_EVERY_NS);
            self.report_losses(driver);
        }
    }

    fn open(&self) -> usize {
        self.taps.iter().filter(|t| t.ifindex.is_some()).count()
    }

    fn poll(
        &mut self,
        driver: &mut Driver,
        clock: &dyn Clock,
        timeout: Duration,
    ) -> Result<(), SourceError> {
        #[allow(unused_mut, reason = "only the eBPF source shortens the wait")]
        let mut timeout_ms = timeout.as_millis() as i32;
        #[cfg(feature = "ebpf")]
        if let Some(k) = &self.kernel {
            // Wake at the collection due (a window boundary, to the ms).
            let wait = k.next_collect.0.saturating_sub(clock.now().0) / 1_000_000;
            timeout_ms = timeout_ms.min(wait as i32);
        }
        self.system
            .wait(self.taps.iter().filter_map(|t| t.ring.as_ref()), timeout_ms)?;
        self.drain(driver);
        #[cfg(feature = "ebpf")]
        {
            let now = clock.now();
            if self.kernel.as_ref().is_some_and(|k| now >= k.next_collect) {
                self.collect(driver, now);
            }
        }
        #[cfg(not(feature = "ebpf"))]
        let _ = clock;
        Ok(())
    }

    fn flush(&mut self, driver: &mut Driver, now: Timestamp) {
        self.drain(driver);
        #[cfg(feature = "ebpf")]
        self.collect(driver, now);
        self.note_drops(driver, now);
        self.report_losses(driver);
    }
}
