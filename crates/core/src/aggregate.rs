//! Windowed aggregation: flow deltas in, closed capture windows of records out.
//!
//! Guarantees (SPEC §2):
//! - windows are aligned to multiples of the window length since the epoch
//!   and close, in order, once `now` passes their end plus a grace period;
//!   every window from the first to the last one seen is closed, empty ones
//!   included (they yield NODATA records);
//! - one record per (flow log, port, window, direction, 5-tuple, action);
//!   the policy is asked once per new flow per window;
//! - per (flow log, port, window) at most `max_records` OK records are kept,
//!   in first-seen order; packets of kept records keep counting; everything
//!   else is summed into one SKIPDATA record; a flow log with no OK record
//!   gets one NODATA record;
//! - memory is bounded by the caps: a flow that no flow log keeps is stored
//!   only while the port has fewer than `max_records` such flows;
//! - no allocation per packet once the tables have grown: flows live in
//!   fixed-size chunks in first-seen order, indexed by an open-addressing
//!   array of hash tags and entry numbers, presized from the latest
//!   window's flows; a closed window's tables are freed once its records
//!   are out (one window's tables at a time beside them, not two).

use std::hash::BuildHasher;
use std::net::IpAddr;

use crate::flow::{Action, Direction, FiveTuple, FlowDelta, TrafficType};
use crate::policy::{Decision, FlowQuery, Policy, RuleRef};
use crate::record::{FlowFields, FlowRecord, RecordBody, TcpFlag};
use crate::time::{Timestamp, WindowLength};
use crate::topology::{Topology, filter_bit};
use vpcflow_wire::{IpProtocol, TcpFlags};

/// Flows per storage chunk: large enough to amortise, small enough that the
/// unused tail of the last chunk is negligible per flow.
const CHUNK: usize = 4096;

/// How long after its end a window stays open for packets still on their
/// way (capture rings and kernel counters hand them over late), in ns.
pub const CLOSE_GRACE_NS: u64 = 2_000_000_000;

/// Aggregation settings.
#[derive(Debug, Clone, Copy)]
pub struct AggregatorConfig {
    /// Capture window length.
    pub window: WindowLength,
    /// OK records kept per flow log, port and window.
    pub max_records: u32,
    /// How long after its end a window stays open for late packets, in ns.
    pub grace_ns: u64,
}

impl AggregatorConfig {
    /// What a data plane running `inventory` aggregates with: its window
    /// (or `window` when given), its record cap, and the close grace.
    pub fn of(inventory: &crate::Inventory, window: Option<WindowLength>) -> AggregatorConfig {
        AggregatorConfig {
            window: window.unwrap_or(inventory.window),
            max_records: inventory.max_records_per_window,
            grace_ns: CLOSE_GRACE_NS,
        }
    }
}

/// A window whose records are final.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClosedWindow {
    /// Start, Unix seconds.
    pub start: u64,
    /// End, Unix seconds.
    pub end: u64,
    /// Records, ordered by interface-id, then flow log, then first packet.
    pub records: Vec<FlowRecord>,
    /// What each rule decided in this window, over the flows the window
    /// kept (both stages' rules of an accepted flow count it).
    pub rule_hits: Vec<RuleHits>,
}

/// Traffic a rule decided in one window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RuleHits {
    /// The rule.
    pub rule: RuleRef,
    /// Flows (per port and direction).
    pub flows: u64,
    /// Their packets.
    pub packets: u64,
    /// Their bytes.
    pub bytes: u64,
}

/// Packet counts the aggregator refused.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AggregatorStats {
    /// Packets older than the last closed window.
    pub late_packets: u64,
    /// Flows evaluated by the policy.
    pub policy_evaluations: u64,
    /// Most flows held at once (measured when windows close).
    pub peak_flows: usize,
    /// Bytes held by the flow tables at that moment.
    pub peak_memory_bytes: usize,
    /// Windows of long gaps without traffic that were not reported (past
    /// [`MAX_GAP_NODATA_SECS`] of NODATA in one step).
    pub gap_windows_not_reported: u64,
}

/// The most NODATA one step of closing reports over a gap in the input:
/// a day. Past it the gap's windows are not reported (and counted), so two
/// packets years apart in a capture cost a day of windows, not millions.
/// A live source closes one window per tick and is never cut.
pub const MAX_GAP_NODATA_SECS: u64 = 86_400;

trait Addr: Copy + Ord + std::hash::Hash {
    fn to_ip(self) -> IpAddr;
    /// The address in 64 bits for the flow hash: the same address, the
    /// same value (an IPv4 address is itself).
    fn fold(self) -> u64;
}
impl Addr for [u8; 4] {
    fn to_ip(self) -> IpAddr {
        IpAddr::from(self)
    }
    fn fold(self) -> u64 {
        u64::from(u32::from_be_bytes(self))
    }
}
impl Addr for [u8; 16] {
    fn to_ip(self) -> IpAddr {
        IpAddr::from(self)
    }
    fn fold(self) -> u64 {
        let v = u128::from_be_bytes(self);
        // Constants keep an all-zero half from zeroing the product.
        folded_multiply(
            (v as u64) ^ 0x243F_6A88_85A3_08D3,
            ((v >> 64) as u64) ^ 0x1319_8A2E_0370_7344,
        )
    }
}

/// The 128-bit product's halves XORed: one multiplication that mixes every
/// bit of both operands into both halves (foldhash's and wyhash's core).
fn folded_multiply(a: u64, b: u64) -> u64 {
    let p = u128::from(a) * u128::from(b);
    (p as u64) ^ ((p >> 64) as u64)
}

/// The flow hash's random seeds, drawn per process so that traffic
/// crafted to collide in one run's index does not in another's.
#[derive(Debug, Clone, Copy)]
struct FlowSeeds([u64; 2]);

impl FlowSeeds {
    fn random() -> FlowSeeds {
        let s = foldhash::fast::RandomState::default();
        FlowSeeds([s.hash_one(0u64), s.hash_one(1u64)])
    }
}

/// One flow of one window. Flat and packed (direction, action and the kept
/// bits share a byte) so that an IPv4 flow takes 40 bytes.
#[derive(Debug, Clone, Copy)]
struct Entry<A> {
    src: A,
    dst: A,
    port: u32,
    src_port: u16,
    dst_port: u16,
    /// The deciding rule and the other stage's allowing rule.
    rule: RuleRef,
    also: RuleRef,
    protocol: u8,
    /// Bit 0: egress; bit 1: REJECT; bits 2..4: filter bits of the flow
    /// logs that keep this flow; bit 5: infrastructure traffic; bit 6:
    /// estimated from samples (at its port window's sampling rate); bit 7:
    /// a packet had SYN and ACK both (`tcp-flags`' SYN-ACK).
    meta: u8,
    flags_any: u8,
    flags_all: u8,
    packets: u64,
    bytes: u64,
}

const META_EGRESS: u8 = 1;
const META_REJECT: u8 = 2;
const META_KEPT_SHIFT: u8 = 2;
const META_KEPT_MASK: u8 = 0b111;
const META_INFRASTRUCTURE: u8 = 1 << 5;
const META_SAMPLED: u8 = 1 << 6;
const META_SYN_ACK: u8 = 1 << 7;

/// [`META_SYN_ACK`] if some packet of `d` surely had SYN and ACK: all of
/// them had both.
fn syn_ack_bit(d: &FlowDelta) -> u8 {
    let syn_ack = TcpFlags::SYN | TcpFlags::ACK;
    if d.flags_all & syn_ack == syn_ack {
        META_SYN_ACK
    } else {
        0
    }
}

type Key<A> = (A, A, u32, u16, u16, u8, u8);

impl<A: Addr> Entry<A> {
    fn key(&self) -> Key<A> {
        (
            self.src,
            self.dst,
            self.port,
            self.src_port,
            self.dst_port,
            self.protocol,
            self.meta & (META_EGRESS | META_INFRASTRUCTURE),
        )
    }
    fn direction(&self) -> Direction {
        if self.meta & META_EGRESS != 0 {
            Direction::Egress
        } else {
            Direction::Ingress
        }
    }
    fn action(&self) -> Action {
        if self.meta & META_REJECT != 0 {
            Action::Reject
        } else {
            Action::Accept
        }
    }
    fn kept(&self) -> u8 {
        (self.meta >> META_KEPT_SHIFT) & META_KEPT_MASK
    }
}

/// The meta bits that, with the addresses, ports and protocol, make a flow.
fn identity_bits(d: &FlowDelta) -> u8 {
    let egress = match d.direction {
        Direction::Egress => META_EGRESS,
        Direction::Ingress => 0,
    };
    egress
        | if d.tuple.infrastructure {
            META_INFRASTRUCTURE
        } else {
            0
        }
}

/// A window's flows of one address family: entries in first-seen order,
/// found through an open-addressing index.
///
/// The index is one array of slots, each a flow's hash tag (the hash's
/// high 32 bits) beside its entry's number plus one, probed linearly from the
/// hash's low bits ([`flow_hash`]): finding a flow reads one slot's cache
/// line, then the entry only when the tag matches (a hashbrown table reads its control
/// bytes, then a bucket elsewhere, then the entry). At most 3/4 full, so
/// probes stay short; memory is 8 bytes per slot. An empty slot is 0, so
/// a new index is zeroed memory the system hands over untouched: a window
/// opened beside a large one (presized like it) costs resident memory only
/// as its flows arrive.
#[derive(Debug)]
struct FlowTable<A> {
    slots: Vec<u64>,
    chunks: Vec<Vec<Entry<A>>>,
    len: usize,
}

/// How many of a port's entries ahead emitting a window fetches.
const EMIT_AHEAD: usize = 8;

/// Slots of a window's indexes below which packets are not prefetched
/// for: 256 KiB of index (at most 24,576 flows, about a megabyte of
/// entries) stays in the cache, and hashing a packet ahead would only
/// double its hashing.
const PREFETCH_FROM_SLOTS: usize = 1 << 15;

/// A slot no flow uses (a used one holds its entry's number plus one).
const EMPTY_SLOT: u64 = 0;

/// A flow's place in the index: the low 32 bits (where probing starts)
/// hash its conversation, the same for both directions and for every port
/// that sees it, so that the flows of one packet between two monitored
/// ports (egress at one, ingress at the other), stored one after the other
/// when it was first seen, are found in one cache line of slots and one
/// or two of entries, and so that the line can be fetched ahead of a
/// packet before its ports are known ([`FlowTable::prefetch`]); the high
/// 32 bits (the tag) also mix in the port and direction, so that probing
/// reads only the entry it is after.
fn flow_hash<A: Addr>(seeds: FlowSeeds, key: &Key<A>) -> u64 {
    let &(src, dst, port, src_port, dst_port, protocol, bits) = key;
    tagged(
        conversation_hash(seeds, src, dst, src_port, dst_port, protocol),
        port,
        bits,
    )
}

/// [`flow_hash`] from its conversation's hash.
fn tagged(conversation: u64, port: u32, bits: u8) -> u64 {
    let tag = (conversation ^ ((u64::from(port) << 8) | u64::from(bits)))
        .wrapping_mul(0x9E37_79B9_7F4A_7C15);
    (tag & !0xffff_ffff) | (conversation & 0xffff_ffff)
}

/// The hash of a conversation: both ends (address and port, in 64 bits
/// each) in a fixed order, so that either direction hashes alike, and the
/// protocol; one multiplication.
fn conversation_hash<A: Addr>(
    seeds: FlowSeeds,
    src: A,
    dst: A,
    src_port: u16,
    dst_port: u16,
    protocol: u8,
) -> u64 {
    let a = src.fold().rotate_left(16) ^ u64::from(src_port);
    let b = dst.fold().rotate_left(16) ^ u64::from(dst_port);
    let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
    folded_multiply(
        lo ^ seeds.0[0],
        hi ^ seeds.0[1] ^ u64::from(protocol).rotate_right(8),
    )
}

/// Entry `entry`'s slot (a window holds fewer than `u32::MAX` flows, so
/// the number plus one fits the low half and is never 0).
fn slot_of(hash: u64, entry: u32) -> u64 {
    (hash & !0xffff_ffff) | (u64::from(entry) + 1)
}

impl<A: Addr> FlowTable<A> {
    fn new() -> Self {
        FlowTable {
            slots: Vec::new(),
            chunks: Vec::new(),
            len: 0,
        }
    }

    fn get(chunks: &[Vec<Entry<A>>], i: u32) -> &Entry<A> {
        let i = i as usize;
        &chunks[i / CHUNK][i % CHUNK]
    }

    /// The number of `key`'s entry, if stored.
    fn find(&self, hash: u64, key: &Key<A>) -> Option<u32> {
        if self.slots.is_empty() {
            return None;
        }
        let mask = self.slots.len() - 1;
        let tag = hash & !0xffff_ffff;
        let mut at = hash as usize & mask;
        loop {
            let slot = self.slots[at];
            if slot == EMPTY_SLOT {
                return None;
            }
            let entry = (slot as u32).wrapping_sub(1);
            if slot & !0xffff_ffff == tag && Self::get(&self.chunks, entry).key() == *key {
                return Some(entry);
            }
            at = (at + 1) & mask;
        }
    }

    /// Fetches the line of slots where the flows of the conversation
    /// hashed `conversation` are probed for (see [`flow_hash`]).
    fn prefetch(&self, conversation: u64) {
        if !self.slots.is_empty() {
            crate::hint::prefetch(&self.slots, conversation as usize & (self.slots.len() - 1));
        }
    }

    /// Fetches entry `i`'s line, if there is one.
    fn prefetch_entry(&self, i: Option<&u32>) {
        if let Some(&i) = i
            && let Some(chunk) = self.chunks.get(i as usize / CHUNK)
        {
            crate::hint::prefetch(chunk, i as usize % CHUNK);
        }
    }

    /// Stores `e` (not yet in the table, with this `hash`); returns its number.
    fn insert(&mut self, hash: u64, e: Entry<A>, seeds: FlowSeeds) -> u32 {
        self.reserve(self.len + 1, seeds);
        let c = self.len / CHUNK;
        if c == self.chunks.len() {
            self.chunks.push(Vec::with_capacity(CHUNK));
        }
        self.chunks[c].push(e);
        let entry = self.len as u32;
        self.len += 1;
        Self::place(&mut self.slots, slot_of(hash, entry), hash);
        entry
    }

    fn place(slots: &mut [u64], slot: u64, hash: u64) {
        let mask = slots.len() - 1;
        let mut at = hash as usize & mask;
        while slots[at] != EMPTY_SLOT {
            at = (at + 1) & mask;
        }
        slots[at] = slot;
    }

    /// Room for `flows` flows without growing the index.
    fn reserve(&mut self, flows: usize, seeds: FlowSeeds) {
        if flows * 4 <= self.slots.len() * 3 {
            return;
        }
        let size = (flows * 4 / 3 + 1).next_power_of_two().max(16);
        // Fresh zeroed memory (not the old index cleared): see the type.
        self.slots = vec![EMPTY_SLOT; size];
        for (entry, e) in self.chunks.iter().flatten().enumerate() {
            let hash = flow_hash(seeds, &e.key());
            Self::place(&mut self.slots, slot_of(hash, entry as u32), hash);
        }
    }

    /// Frees the index; the entries stay, in order, and nothing can be
    /// found or stored any more.
    fn drop_index(&mut self) {
        self.slots = Vec::new();
    }

    fn iter(&self) -> impl Iterator<Item = &Entry<A>> {
        self.chunks.iter().flatten()
    }

    fn memory_bytes(&self) -> usize {
        self.slots.capacity() * size_of::<u64>() + self.chunks.len() * CHUNK * size_of::<Entry<A>>()
    }
}

#[derive(Debug, Clone, Copy, Default)]
struct PortWindow {
    kept: [u32; 3],
    skipped_packets: [u64; 3],
    skipped_bytes: [u64; 3],
    /// Flows stored only to remember their verdict.
    unkept: u32,
    /// The largest sampling rate of the port's sampled flows (0: none).
    /// Kept per port rather than per flow, so that entries stay 40 bytes:
    /// a port's samples come from one agent at one rate, and where rates
    /// mix, a record says the largest.
    sampling_rate: u32,
    /// Traffic of an unknown size was lost (an exporter's sequence numbers
    /// said so): a SKIPDATA record even if no packet is known lost.
    lost_unknown: bool,
}

impl PortWindow {
    fn skip(&mut self, bits: u8, d: &FlowDelta) {
        for t in 0..3 {
            if bits & (1 << t) != 0 {
                self.skipped_packets[t] = self.skipped_packets[t].saturating_add(d.packets);
                self.skipped_bytes[t] = self.skipped_bytes[t].saturating_add(d.bytes);
            }
        }
    }
}

#[derive(Debug)]
struct Window {
    start: u64,
    v4: FlowTable<[u8; 4]>,
    v6: FlowTable<[u8; 16]>,
    /// For each IPv6 flow: how many IPv4 flows were stored before it.
    v6_order: Vec<u32>,
    ports: Vec<PortWindow>,
}

impl Window {
    fn new(start: u64) -> Window {
        Window {
            start,
            v4: FlowTable::new(),
            v6: FlowTable::new(),
            v6_order: Vec::new(),
            ports: Vec::new(),
        }
    }
}

/// A packet's addresses as its family's table keeps them, and its
/// conversation's hash: `Ok` for IPv4, `Err` for IPv6 (IPv4 mapped where
/// the families mix).
type Conversation = Result<([u8; 4], [u8; 4], u64), ([u8; 16], [u8; 16], u64)>;

/// The [`Conversation`] from `src` to `dst` (`ports`, the source's first).
fn conversation(
    seeds: FlowSeeds,
    src: &IpAddr,
    dst: &IpAddr,
    [sp, dp]: [u16; 2],
    protocol: u8,
) -> Conversation {
    match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(t)) => {
            let (s, t) = (s.octets(), t.octets());
            Ok((s, t, conversation_hash(seeds, s, t, sp, dp, protocol)))
        }
        (s, t) => {
            let (s, t) = (v6_octets(*s), v6_octets(*t));
            Err((s, t, conversation_hash(seeds, s, t, sp, dp, protocol)))
        }
    }
}

/// An address as the IPv6 table keeps it (IPv4 mapped).
fn v6_octets(a: IpAddr) -> [u8; 16] {
    match a {
        IpAddr::V4(v) => v.to_ipv6_mapped().octets(),
        IpAddr::V6(v) => v.octets(),
    }
}

/// Filter bits of the flow logs that would keep a record with `action`.
fn relevant(mask: u8, action: Action) -> u8 {
    let own = match action {
        Action::Accept => filter_bit(TrafficType::Accept),
        Action::Reject => filter_bit(TrafficType::Reject),
    };
    mask & (filter_bit(TrafficType::All) | own)
}

/// Folds flow deltas into capture windows.
#[derive(Debug)]
pub struct Aggregator {
    config: AggregatorConfig,
    /// Open windows, ascending by start.
    open: Vec<Window>,
    /// Start of the next window to close; all before it are closed.
    next_close: Option<u64>,
    closed_any: bool,
    last_start: Option<u64>,
    seeds: FlowSeeds,
    buckets: Vec<(Vec<u32>, Vec<u32>)>,
    port_order: Vec<u32>,
    /// The records buffer of a window already written, emptied, for the
    /// next window to close: its pages are already the process's, where a
    /// fresh one page-faults its way to a million records (a fifth of a
    /// replay's time on a VM).
    spare_records: Vec<FlowRecord>,
    stats: AggregatorStats,
    /// The window of the last timestamp seen, as [start ns, end ns) and start
    /// seconds: most packets fall in it, and this spares a division.
    cached: (u64, u64, u64),
    shard: Shard,
}

/// Which ports an aggregator keeps flows of: a port belongs to one of
/// [`Shard::SLOTS`] slots (its number hashed, so that a few ports spread
/// too), and a shard owns a range of slots. Every shard sees every
/// packet's time, so all open and close the same windows; each emits the
/// records of its own ports only.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    /// The first slot owned.
    pub from: u32,
    /// The slot after the last owned.
    pub to: u32,
}

impl Shard {
    /// Slots the ports are spread over.
    pub const SLOTS: u32 = 64;

    /// The one shard that owns every port.
    pub const ALL: Shard = Shard {
        from: 0,
        to: Shard::SLOTS,
    };

    /// `count` shards owning every port between them, the first with
    /// `first_weight` of another's share (the thread that also reads the
    /// input takes less; with a weight of 0, none).
    pub fn split(count: u32, first_weight: f64) -> Vec<Shard> {
        let count = count.max(1);
        let total = first_weight + f64::from(count - 1);
        let mut bounds = vec![0u32];
        for i in 1..count {
            let at = (first_weight + f64::from(i - 1)) / total * f64::from(Shard::SLOTS);
            let least = bounds[bounds.len() - 1] + u32::from(i > 1 || first_weight > 0.0);
            let at = (at.round() as u32).max(least).min(Shard::SLOTS);
            bounds.push(at);
        }
        bounds.push(Shard::SLOTS);
        bounds
            .windows(2)
            .map(|b| Shard {
                from: b[0],
                to: b[1].max(b[0]),
            })
            .collect()
    }

    /// Whether this shard keeps no port's flows.
    pub fn is_empty(self) -> bool {
        self.from >= self.to
    }

    /// Whether this shard keeps `port`'s flows.
    pub fn owns(self, port: u32) -> bool {
        if self == Shard::ALL {
            return true;
        }
        // Fibonacci hashing: the top bits of the product.
        let slot = port.wrapping_mul(0x9E37_79B9) >> (32 - Shard::SLOTS.trailing_zeros());
        self.from <= slot && slot < self.to
    }
}

impl Aggregator {
    /// An aggregator with no windows open.
    pub fn new(config: AggregatorConfig) -> Aggregator {
        Aggregator {
            config,
            open: Vec::new(),
            next_close: None,
            closed_any: false,
            last_start: None,
            seeds: FlowSeeds::random(),
            buckets: Vec::new(),
            port_order: Vec::new(),
            spare_records: Vec::new(),
            stats: AggregatorStats::default(),
            cached: (1, 0, 0),
            shard: Shard::ALL,
        }
    }

    /// Keeps only the flows of `shard`'s ports (see [`Shard`]).
    pub fn set_shard(&mut self, shard: Shard) {
        self.shard = shard;
    }

    /// The settings.
    pub fn config(&self) -> &AggregatorConfig {
        &self.config
    }

    /// Counters.
    pub fn stats(&self) -> AggregatorStats {
        self.stats
    }

    /// Flows currently held in open windows.
    pub fn active_flows(&self) -> usize {
        self.open.iter().map(|w| w.v4.len + w.v6.len).sum()
    }

    /// Bytes held by the open windows' flow tables, by capacity.
    pub fn memory_bytes(&self) -> usize {
        self.open
            .iter()
            .map(|w| {
                w.v4.memory_bytes()
                    + w.v6.memory_bytes()
                    + w.v6_order.capacity() * 4
                    + w.ports.capacity() * size_of::<PortWindow>()
            })
            .sum()
    }

    fn window_index(&mut self, start: u64) -> usize {
        if let Some(i) = self.open.iter().rposition(|w| w.start == start) {
            return i;
        }
        // A new window will likely see as many flows as the latest one: size it
        // up front rather than rehash a million flows on the way there.
        let hint4 = self.open.iter().map(|o| o.v4.len).max().unwrap_or(0);
        let hint6 = self.open.iter().map(|o| o.v6.len).max().unwrap_or(0);
        let mut w = Window::new(start);
        w.v4.reserve(hint4, self.seeds);
        w.v6.reserve(hint6, self.seeds);
        let at = self.open.partition_point(|o| o.start < start);
        self.open.insert(at, w);
        at
    }

    /// Extends the span of windows to report to the one holding `t`, even
    /// if no monitored port has traffic in it (so NODATA covers every window
    /// the input spans). Returns that window's start, or `None` if it has
    /// already been closed.
    pub fn note_time(&mut self, t: Timestamp) -> Option<u64> {
        let (lo, hi, cached) = self.cached;
        let start = if lo <= t.0 && t.0 < hi {
            cached
        } else {
            let s = self.config.window.start_of(t);
            let len = self.config.window.secs();
            self.cached = (
                s * 1_000_000_000,
                (s + len).saturating_mul(1_000_000_000),
                s,
            );
            s
        };
        match self.next_close {
            Some(nc) if start < nc => {
                if self.closed_any {
                    return None;
                }
                self.next_close = Some(start);
            }
            None => self.next_close = Some(start),
            _ => {}
        }
        self.last_start = Some(self.last_start.map_or(start, |l| l.max(start)));
        Some(start)
    }

    /// Fetches ahead where a packet from `src` to `dst` (`ports`, source's
    /// first) seen at `at` will be looked up, if its window is the latest
    /// one open (almost every packet's):
    /// called some packets before [`Aggregator::observe`] is for it, so
    /// that the cache miss overlaps other work. Changes nothing.
    pub fn prefetch(
        &self,
        at: Timestamp,
        src: &IpAddr,
        dst: &IpAddr,
        ports: [u16; 2],
        protocol: u8,
    ) {
        let (lo, hi, start) = self.cached;
        let Some(w) = self.open.last().filter(|w| {
            !self.shard.is_empty() && w.v4.slots.len() + w.v6.slots.len() > PREFETCH_FROM_SLOTS
        }) else {
            return;
        };
        if !(lo <= at.0 && at.0 < hi && w.start == start) {
            return;
        }
        match conversation(self.seeds, src, dst, ports, protocol) {
            Ok((_, _, h)) => w.v4.prefetch(h),
            Err((_, _, h)) => w.v6.prefetch(h),
        }
    }

    /// Whether this aggregator keeps no port's flows (the reading thread's
    /// of a sharded run: see [`Shard::split`]).
    pub fn keeps_no_port(&self) -> bool {
        self.shard.is_empty()
    }

    /// What [`Aggregator::observe_packet`] does with the `packets` of a
    /// packet at `at` when this aggregator keeps no port: notes the time
    /// and opens its window (as every shard does, so that all close the
    /// same windows, gaps included). Returns `false` (and counts them)
    /// when their window is already closed.
    pub fn observe_time(&mut self, at: Timestamp, packets: u64) -> bool {
        let Some(start) = self.note_time(at) else {
            self.stats.late_packets = self.stats.late_packets.saturating_add(packets);
            return false;
        };
        self.open_window(start);
        true
    }

    /// The index of the open window starting at `start`, opened if need
    /// be; most packets fall in the latest one.
    fn open_window(&mut self, start: u64) -> usize {
        match self.open.last() {
            Some(w) if w.start == start => self.open.len() - 1,
            _ => self.window_index(start),
        }
    }

    /// Adds a delta. Returns `false` (and counts it) when its window is
    /// already closed.
    pub fn observe<P: Policy>(
        &mut self,
        topology: &Topology,
        policy: &mut P,
        d: &FlowDelta,
    ) -> bool {
        self.observe_packet(topology, policy, std::slice::from_ref(d))
    }

    /// Adds the deltas of one packet (or exported flow), one per port it
    /// counts for, in that order (the egress port's first: the policy
    /// sees them so): the same tuple and time in each, so its window,
    /// address family and conversation hash are found once. Returns
    /// `false` (and counts them) when their window is already closed.
    pub fn observe_packet<P: Policy>(
        &mut self,
        topology: &Topology,
        policy: &mut P,
        deltas: &[FlowDelta],
    ) -> bool {
        let Some(first) = deltas.first() else {
            return false;
        };
        debug_assert!(
            deltas
                .iter()
                .all(|d| d.tuple == first.tuple && d.first == first.first)
        );
        let Some(start) = self.note_time(first.first) else {
            for d in deltas {
                self.stats.late_packets = self.stats.late_packets.saturating_add(d.packets);
            }
            return false;
        };
        let wi = self.open_window(start);
        let (cap, seeds, shard) = (self.config.max_records, self.seeds, self.shard);
        if !deltas.iter().any(|d| shard.owns(d.port)) {
            // Other shards' ports only: the window is open here too (so
            // that every shard reports the same windows), the flows are
            // theirs, and so is the work of hashing them.
            return true;
        }
        let w = &mut self.open[wi];
        let stats = &mut self.stats;
        let t = &first.tuple;
        let family = conversation(
            seeds,
            &t.src,
            &t.dst,
            [t.src_port, t.dst_port],
            t.protocol.0,
        );
        for d in deltas {
            // Another shard's port: the flow is the other's.
            if !shard.owns(d.port) {
                continue;
            }
            let p = d.port as usize;
            if w.ports.len() <= p {
                w.ports
                    .resize(topology.ports.len().max(p + 1), PortWindow::default());
            }
            let port = &topology.ports[p];
            let pw = &mut w.ports[p];
            let mut decide = || {
                stats.policy_evaluations += 1;
                policy.decide(
                    d.first,
                    &FlowQuery {
                        port,
                        port_index: d.port,
                        direction: d.direction,
                        tuple: d.tuple,
                        tcp_flags: d.flags_any,
                    },
                )
            };
            match family {
                Ok((s, t, conversation)) => {
                    observe_in(
                        &mut w.v4,
                        seeds,
                        conversation,
                        pw,
                        cap,
                        port.filters,
                        (s, t),
                        d,
                        &mut decide,
                    );
                }
                Err((s, t, conversation)) => {
                    let before = w.v4.len as u32;
                    if observe_in(
                        &mut w.v6,
                        seeds,
                        conversation,
                        pw,
                        cap,
                        port.filters,
                        (s, t),
                        d,
                        &mut decide,
                    ) {
                        w.v6_order.push(before);
                    }
                }
            }
        }
        true
    }

    /// Counts `packets` (of `bytes`, if known) that the capture lost on
    /// `port` at `at`: they become the port's SKIPDATA record of that
    /// window under each of its flow logs (SPEC §2). Returns `false` when
    /// that window is already closed.
    pub fn note_lost(
        &mut self,
        topology: &Topology,
        port: u32,
        at: Timestamp,
        packets: u64,
        bytes: u64,
    ) -> bool {
        let bits = topology.ports.get(port as usize).map_or(0, |pi| pi.filters);
        let Some(pw) = self.port_window(topology, port, at) else {
            // Late, or another shard's port (counted there, in time here).
            return !self.shard.owns(port) && self.note_time(at).is_some();
        };
        for t in 0..3 {
            if bits & (1 << t) != 0 {
                pw.skipped_packets[t] += packets;
                pw.skipped_bytes[t] += bytes;
            }
        }
        true
    }

    /// `port`'s counters in the open window of `at`; `None` when that
    /// window is already closed.
    fn port_window(
        &mut self,
        topology: &Topology,
        port: u32,
        at: Timestamp,
    ) -> Option<&mut PortWindow> {
        let start = self.note_time(at)?;
        let wi = self.window_index(start);
        if !self.shard.owns(port) {
            return None;
        }
        let w = &mut self.open[wi];
        let p = port as usize;
        if w.ports.len() <= p {
            w.ports
                .resize(topology.ports.len().max(p + 1), PortWindow::default());
        }
        Some(&mut w.ports[p])
    }

    /// Notes that traffic of `port` of an unknown size was lost around
    /// `at` (an exporter's sequence numbers skipped): the port's window
    /// gets a SKIPDATA record under each flow log, with the packets and
    /// bytes known lost (0 if none are). Returns `false` when that window
    /// is already closed.
    pub fn note_unknown_loss(&mut self, topology: &Topology, port: u32, at: Timestamp) -> bool {
        match self.port_window(topology, port, at) {
            Some(pw) => {
                pw.lost_unknown = true;
                true
            }
            None => !self.shard.owns(port) && self.note_time(at).is_some(),
        }
    }

    /// Closes every window that ended at least the grace period before `now`.
    pub fn close_until(
        &mut self,
        topology: &Topology,
        now: Timestamp,
        out: &mut Vec<ClosedWindow>,
    ) {
        let Some(next) = self.next_close else { return };
        let len = self.config.window.secs();
        // Called for every packet: decide with a multiplication, not a division.
        if (next + len)
            .saturating_mul(1_000_000_000)
            .saturating_add(self.config.grace_ns)
            > now.0
        {
            return;
        }
        let horizon = now.0.saturating_sub(self.config.grace_ns) / 1_000_000_000;
        let last = horizon - len;
        let last = last - last % len;
        self.close_through(topology, last, out);
    }

    /// Closes every window up to the last one that saw traffic (end of input).
    pub fn finish(&mut self, topology: &Topology, out: &mut Vec<ClosedWindow>) {
        if let Some(last) = self.last_start {
            self.close_through(topology, last, out);
        }
    }

    /// Takes back windows whose records are written: the largest records
    /// buffer is kept (emptied) for the next window to close.
    pub fn recycle(&mut self, windows: Vec<ClosedWindow>) {
        if let Some(mut records) = windows
            .into_iter()
            .map(|w| w.records)
            .max_by_key(Vec::capacity)
            .filter(|r| r.capacity() > self.spare_records.capacity())
        {
            records.clear();
            self.spare_records = records;
        }
    }

    fn close_through(&mut self, topology: &Topology, last: u64, out: &mut Vec<ClosedWindow>) {
        let Some(mut s) = self.next_close else { return };
        let flows = self.active_flows();
        if flows > self.stats.peak_flows {
            self.stats.peak_flows = flows;
            self.stats.peak_memory_bytes = self.memory_bytes();
        }
        let len = self.config.window.secs();
        let max_gap = (MAX_GAP_NODATA_SECS / len).max(1);
        let mut empty_run = 0;
        while s <= last {
            let mut w = match self.open.first() {
                Some(w) if w.start == s => Some(self.open.remove(0)),
                _ => None,
            };
            if w.is_none() {
                if empty_run == max_gap {
                    // The rest of this gap: up to the next window with
                    // traffic, or past `last`.
                    let resume = self.open.first().map_or(last.saturating_add(len), |o| {
                        o.start.min(last.saturating_add(len))
                    });
                    let resume = resume.max(s + len);
                    self.stats.gap_windows_not_reported += (resume - s) / len;
                    s = resume;
                    empty_run = 0;
                    continue;
                }
                empty_run += 1;
            } else {
                empty_run = 0;
            }
            if let Some(w) = &mut w {
                // Nothing is looked up in a closed window: its index goes
                // before its records are made, not after.
                w.v4.drop_index();
                w.v6.drop_index();
            }
            out.push(self.emit(topology, s, w.as_ref()));
            // A closed window's tables are freed, not kept for the next
            // one: that one is already open (the close grace) with tables
            // of its own, so keeping them would hold two windows' worth
            // of flows beside the records being emitted. Allocating a
            // window's tables again costs once per window, not per packet.
            drop(w);
            s += len;
        }
        self.closed_any = true;
        self.next_close = Some(s);
    }

    fn emit(&mut self, topology: &Topology, start: u64, w: Option<&Window>) -> ClosedWindow {
        let end = start + self.config.window.secs();
        let mut records = std::mem::take(&mut self.spare_records);
        let mut hits: Vec<RuleHits> = Vec::new();
        if let Some(w) = w {
            let mut add = |rule: RuleRef, packets: u64, bytes: u64| {
                if rule == RuleRef::NONE {
                    return;
                }
                let i = usize::from(rule.0);
                if hits.len() <= i {
                    hits.resize(i + 1, RuleHits::default());
                }
                let h = &mut hits[i];
                h.rule = rule;
                h.flows += 1;
                h.packets = h.packets.saturating_add(packets);
                h.bytes = h.bytes.saturating_add(bytes);
            };
            for e in w.v4.iter() {
                add(e.rule, e.packets, e.bytes);
                add(e.also, e.packets, e.bytes);
            }
            for e in w.v6.iter() {
                add(e.rule, e.packets, e.bytes);
                add(e.also, e.packets, e.bytes);
            }
        }
        hits.retain(|h| h.flows > 0);
        let n = topology.ports.len();
        if self.port_order.len() != n {
            self.port_order = (0..n as u32).collect();
            self.port_order.sort_by(|&a, &b| {
                topology.ports[a as usize]
                    .id
                    .cmp(&topology.ports[b as usize].id)
            });
        }
        if self.buckets.len() < n {
            self.buckets.resize_with(n, Default::default);
        }
        for b in &mut self.buckets {
            b.0.clear();
            b.1.clear();
        }
        if let Some(w) = w {
            for (i, e) in w.v4.iter().enumerate() {
                self.buckets[e.port as usize].0.push(i as u32);
            }
            for (i, e) in w.v6.iter().enumerate() {
                self.buckets[e.port as usize].1.push(i as u32);
            }
        }
        for &p in &self.port_order {
            let port = &topology.ports[p as usize];
            if port.first_window.is_some_and(|f| start < f) || !self.shard.owns(p) {
                continue;
            }
            let pw = w.and_then(|w| w.ports.get(p as usize));
            let (b4, b6) = &self.buckets[p as usize];
            for &fl in &port.flow_logs {
                let t = topology.flow_logs[fl as usize].traffic_type;
                let bit = filter_bit(t);
                let before = records.len();
                let mut push = |f: FlowFields| {
                    records.push(FlowRecord {
                        flow_log: fl,
                        port: p,
                        start,
                        end,
                        body: RecordBody::Flow(f),
                    });
                };
                if let Some(w) = w {
                    let (mut i, mut j) = (0, 0);
                    while i < b4.len() || j < b6.len() {
                        let take_v6 =
                            j < b6.len() && (i >= b4.len() || w.v6_order[b6[j] as usize] <= b4[i]);
                        // A port's entries are scattered over the window's
                        // first-seen order: fetch a few ahead.
                        if take_v6 {
                            w.v6.prefetch_entry(b6.get(j + EMIT_AHEAD));
                            let e = FlowTable::get(&w.v6.chunks, b6[j]);
                            j += 1;
                            if e.kept() & bit != 0 {
                                push(fields(e, pw));
                            }
                        } else {
                            w.v4.prefetch_entry(b4.get(i + EMIT_AHEAD));
                            let e = FlowTable::get(&w.v4.chunks, b4[i]);
                            i += 1;
                            if e.kept() & bit != 0 {
                                push(fields(e, pw));
                            }
                        }
                    }
                }
                let rec = |body| FlowRecord {
                    flow_log: fl,
                    port: p,
                    start,
                    end,
                    body,
                };
                if records.len() == before {
                    records.push(rec(RecordBody::NoData));
                }
                if let Some(pw) = pw
                    && (pw.skipped_packets[t.index()] > 0 || pw.lost_unknown)
                {
                    records.push(rec(RecordBody::SkipData {
                        packets: pw.skipped_packets[t.index()],
                        bytes: pw.skipped_bytes[t.index()],
                    }));
                }
            }
        }
        ClosedWindow {
            start,
            end,
            records,
            rule_hits: hits,
        }
    }
}

fn fields<A: Addr>(e: &Entry<A>, pw: Option<&PortWindow>) -> FlowFields {
    let sampling_rate = if e.meta & META_SAMPLED != 0 {
        pw.map_or(1, |pw| pw.sampling_rate.max(1))
    } else {
        1
    };
    let protocol = IpProtocol(e.protocol);
    FlowFields {
        tuple: FiveTuple {
            src: e.src.to_ip(),
            dst: e.dst.to_ip(),
            src_port: e.src_port,
            dst_port: e.dst_port,
            protocol,
            infrastructure: e.meta & META_INFRASTRUCTURE != 0,
        },
        packets: e.packets,
        bytes: e.bytes,
        action: e.action(),
        direction: e.direction(),
        tcp_flag: (protocol == IpProtocol::TCP)
            .then(|| TcpFlag::from_flags(e.flags_any, e.flags_all)),
        rule: e.rule,
        passed: e.also,
        sampling_rate,
        tcp_flags: if protocol == IpProtocol::TCP {
            // The other cloud's bitmask: FIN, SYN, RST, and ACK only as
            // part of a SYN-ACK (18).
            e.flags_any & (TcpFlags::FIN | TcpFlags::SYN | TcpFlags::RST)
                | if e.meta & META_SYN_ACK != 0 {
                    TcpFlags::ACK
                } else {
                    0
                }
        } else {
            0
        },
    }
}

/// Adds `d` to its flow in `table`; returns whether a new entry was stored.
#[allow(
    clippy::too_many_arguments,
    reason = "the v4 or v6 table and the port's window are borrowed apart from the window holding both"
)]
fn observe_in<A: Addr>(
    table: &mut FlowTable<A>,
    seeds: FlowSeeds,
    conversation: u64,
    pw: &mut PortWindow,
    cap: u32,
    mask: u8,
    (src, dst): (A, A),
    d: &FlowDelta,
    decide: &mut impl FnMut() -> Decision,
) -> bool {
    let key: Key<A> = (
        src,
        dst,
        d.port,
        d.tuple.src_port,
        d.tuple.dst_port,
        d.tuple.protocol.0,
        identity_bits(d),
    );
    let hash = tagged(conversation, d.port, identity_bits(d));
    debug_assert_eq!(hash, flow_hash(seeds, &key));
    if let Some(i) = table.find(hash, &key) {
        let i = i as usize;
        let e = &mut table.chunks[i / CHUNK][i % CHUNK];
        // Counts from outside (an exporter's) may be anything: never wrap.
        e.packets = e.packets.saturating_add(d.packets);
        e.bytes = e.bytes.saturating_add(d.bytes);
        e.flags_any |= d.flags_any;
        e.flags_all &= d.flags_all;
        e.meta |= syn_ack_bit(d);
        if d.sampling_rate > 1 {
            e.meta |= META_SAMPLED;
            pw.sampling_rate = pw.sampling_rate.max(d.sampling_rate);
        }
        let missed = relevant(mask, e.action()) & !e.kept();
        if missed != 0 {
            pw.skip(missed, d);
        }
        return false;
    }
    let decision = decide();
    let bits = relevant(mask, decision.action);
    let mut kept = 0u8;
    for t in 0..3 {
        let bit = 1u8 << t;
        if bits & bit != 0 {
            if pw.kept[t] < cap {
                pw.kept[t] += 1;
                kept |= bit;
            } else {
                pw.skip(bit, d);
            }
        }
    }
    if kept == 0 {
        if pw.unkept >= cap {
            return false;
        }
        pw.unkept += 1;
    }
    let sampled = if d.sampling_rate > 1 {
        pw.sampling_rate = pw.sampling_rate.max(d.sampling_rate);
        META_SAMPLED
    } else {
        0
    };
    table.insert(
        hash,
        Entry {
            src,
            dst,
            port: d.port,
            src_port: d.tuple.src_port,
            dst_port: d.tuple.dst_port,
            rule: decision.rule,
            also: decision.also,
            protocol: d.tuple.protocol.0,
            meta: identity_bits(d)
                | if decision.action == Action::Reject {
                    META_REJECT
                } else {
                    0
                }
                | kept << META_KEPT_SHIFT
                | sampled
                | syn_ack_bit(d),
            flags_any: d.flags_any,
            flags_all: d.flags_all,
            packets: d.packets,
            bytes: d.bytes,
        },
        seeds,
    );
    true
}

#[cfg(test)]
mod tests;
