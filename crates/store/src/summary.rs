//! Window summaries: what the analyses need of a closed window, computed
//! when the window is written and kept beside its records, so an analysis
//! of months reads a small fraction of what the records hold.
//!
//! A summary is a zstd-compressed JSON file next to the Parquet file it
//! summarizes (`_<file>.summary.json.zst`, which no `*.parquet` glob picks
//! up and directory scans skip as metadata). It holds,
//! per window in the file:
//! - **groups**: the attack shapes' groups ([`Shape`]) that meet the
//!   [`FLOORS`], each with its exact measures over the window;
//! - **ports**: every port that has records in the window, with the
//!   measures of its REJECT flows;
//! - **rules**: what each rule (both checks: the one that decided and the
//!   one a flow passed) did, with up to [`KEPT_VALUES`] of the remote
//!   addresses and destination ports that used it;
//! - **denied**: per deny rule (and default deny), every source with its
//!   flows and every destination port.
//!
//! Guarantees:
//! - a summary is written (temporary name, fsync, rename) *before* its
//!   records file, so a records file with no summary is one written before
//!   summaries existed, never one a crash cut short; a summary whose
//!   records file is missing is ignored (and removed by [`crate::Store::open`]);
//! - counts, sums and first/last merge by adding across windows and files;
//!   a group's distinct counts are exact for its window in its file, so a
//!   window that is in more than one file (a partial window completed
//!   later, two writers) is analyzed from its records;
//! - compaction concatenates the summaries of the files it merges.

use std::collections::{BTreeMap, BTreeSet};

use foldhash::{HashMap, HashMapExt, HashSet};
use std::fs;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use vpcflow_core::Topology;
use vpcflow_core::record::{FlowFields, FlowRecord, RecordBody, TcpFlag};
use vpcflow_core::{Action, Direction, RuleRef};

use crate::StoreError;
use crate::writer::TMP;

/// What a records file's summary is named after it:
/// `<SUMMARY_PREFIX><records file name><SUMMARY_SUFFIX>`.
pub const SUMMARY_SUFFIX: &str = ".summary.json.zst";
/// The summary's name starts with it, so the Hive-style readers that scan
/// a directory (pyarrow datasets, Spark) skip summaries as metadata, and
/// nothing under the partition tree reads as records but Parquet.
pub const SUMMARY_PREFIX: &str = "_";

/// How many distinct remote addresses and destination ports a rule's use
/// keeps per window; past it, the rule's use is only known to be wider.
pub const KEPT_VALUES: usize = 64;

/// Services whose logins are guessed: FTP, SSH, Telnet, SMTP, POP3, IMAP,
/// SMB, MS SQL, MySQL, RDP, PostgreSQL, VNC, Redis, MongoDB.
pub const BRUTE_FORCE_SERVICES: [u16; 14] = [
    21, 22, 23, 25, 110, 143, 445, 1433, 3306, 3389, 5432, 5900, 6379, 27017,
];

/// UDP services abused as amplifiers: QOTD, chargen, DNS, portmap, NTP,
/// NetBIOS, SNMP, CLDAP, SSDP, WS-Discovery, mDNS, memcached.
pub const REFLECTION_SERVICES: [u16; 12] =
    [17, 19, 53, 111, 123, 137, 161, 389, 1900, 3702, 5353, 11211];

/// The least each attack threshold may be for a summary to answer it: a
/// summary keeps the groups that meet these, so an analysis with
/// thresholds at or above them reads summaries, and one below them reads
/// the records. They are the analyses' documented defaults.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Floors {
    /// `port-scan-dstports`.
    pub port_scan_dstports: u64,
    /// `host-sweep-dstaddrs`.
    pub host_sweep_dstaddrs: u64,
    /// `brute-force-connections`.
    pub brute_force_connections: u64,
    /// `syn-flood-flows`.
    pub syn_flood_flows: u64,
    /// `syn-flood-sources`.
    pub syn_flood_sources: u64,
    /// `udp-flood-pps`.
    pub udp_flood_pps: u64,
    /// `udp-reflection-bytes-per-second`.
    pub udp_reflection_bytes_per_second: u64,
    /// `udp-reflection-sources`.
    pub udp_reflection_sources: u64,
}

/// The floors summaries are written with.
pub const FLOORS: Floors = Floors {
    port_scan_dstports: 20,
    host_sweep_dstaddrs: 3,
    brute_force_connections: 20,
    syn_flood_flows: 200,
    syn_flood_sources: 20,
    udp_flood_pps: 1_000,
    udp_reflection_bytes_per_second: 100_000,
    udp_reflection_sources: 3,
};

/// The attack shapes: which ingress OK records a group counts, and what
/// it is grouped by besides the window and flow log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Shape {
    /// TCP/UDP, by port and source.
    PortScan,
    /// Everything, by source (across the flow log's ports).
    HostSweep,
    /// TCP to a [`BRUTE_FORCE_SERVICES`] port, by port, source and service.
    BruteForce,
    /// TCP `syn_sent`, by port and service.
    SynFlood,
    /// UDP, by port and service.
    UdpFlood,
    /// UDP from a [`REFLECTION_SERVICES`] port, by port and that port.
    UdpReflection,
}

impl Shape {
    /// Every shape.
    pub const ALL: [Shape; 6] = [
        Shape::PortScan,
        Shape::HostSweep,
        Shape::BruteForce,
        Shape::SynFlood,
        Shape::UdpFlood,
        Shape::UdpReflection,
    ];
}

/// A group's measures over its window.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct Measures {
    /// Distinct source addresses.
    pub sources: u64,
    /// Distinct destination addresses.
    pub dstaddrs: u64,
    /// Distinct destination ports.
    pub dstports: u64,
    /// Records (flows).
    pub connections: u64,
    /// Packets.
    pub packets: u64,
    /// Bytes.
    pub bytes: u64,
    /// The least and greatest `action` seen (text order).
    pub actions: (String, String),
    /// The rule that decided most of the group's packets (then most
    /// flows, then the least policy and rule id).
    pub policy_id: Option<String>,
    /// Its rule id.
    pub rule_id: Option<String>,
}

/// One attack shape's group in a window.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct Group {
    /// The shape.
    pub shape: Shape,
    /// The flow log.
    pub flow_log_id: String,
    /// The port, where the shape groups by it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interface_id: Option<String>,
    /// The source, where the shape groups by it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub srcaddr: Option<String>,
    /// The source port, where the shape groups by it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub srcport: Option<u16>,
    /// The destination (service) port, where the shape groups by it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dstport: Option<u16>,
    /// Its measures.
    pub measures: Measures,
}

/// A port that has records in a window.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct PortWindow {
    /// The flow log.
    pub flow_log_id: String,
    /// The port.
    pub interface_id: String,
    /// Its OK REJECT flows, when it has any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rejects: Option<Measures>,
}

/// What one rule decided or let pass in a window (one check of each OK
/// record).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct RuleUse {
    /// `decided-by` or `passed-by`.
    pub stage: String,
    /// The security group or network ACL.
    pub policy_id: String,
    /// The rule.
    pub rule_id: String,
    /// Flows.
    pub flows: u64,
    /// Packets.
    pub packets: u64,
    /// Bytes.
    pub bytes: u64,
    /// Remote addresses (the source of ingress, the destination of
    /// egress), at most [`KEPT_VALUES`].
    pub remotes: BTreeSet<String>,
    /// Whether there were more.
    pub more_remotes: bool,
    /// Destination ports, at most [`KEPT_VALUES`].
    pub dstports: BTreeSet<u16>,
    /// Whether there were more.
    pub more_dstports: bool,
}

/// What one deny rule (or default deny) of one flow log rejected in a
/// window: every OK REJECT record, by the rule that decided.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct Denied {
    /// The flow log.
    pub flow_log_id: String,
    /// The check that decided.
    pub decided_by: Option<String>,
    /// Its security group or network ACL.
    pub policy_id: Option<String>,
    /// Its rule.
    pub rule_id: Option<String>,
    /// Flows.
    pub flows: u64,
    /// Packets.
    pub packets: u64,
    /// Bytes.
    pub bytes: u64,
    /// Every source, with its flows.
    pub sources: Vec<(String, u64)>,
    /// Every destination port.
    pub dstports: BTreeSet<u16>,
}

/// The summary of one window's records of one log topic.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct WindowSummary {
    /// The window's start.
    pub start: u64,
    /// Its end.
    pub end: u64,
    /// Attack groups meeting the floors.
    pub groups: Vec<Group>,
    /// Ports with records.
    pub ports: Vec<PortWindow>,
    /// Rules used.
    pub rules: Vec<RuleUse>,
    /// Deny rules hit.
    pub denied: Vec<Denied>,
}

/// A summary file: the windows of one records file (`W`: the whole
/// [`WindowSummary`], or a [`SummaryView`] of part of it).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) struct SummaryFile<W = WindowSummary> {
    pub(crate) windows: Vec<W>,
}

/// What a reader decodes of each window summary: the whole of it, or only
/// the parts it reads (the rest is skipped, not built).
pub trait SummaryView: serde::de::DeserializeOwned {
    /// The window's start and end.
    fn window(&self) -> (u64, u64);
}

impl SummaryView for WindowSummary {
    fn window(&self) -> (u64, u64) {
        (self.start, self.end)
    }
}

/// The parts of a window summary that attacks read.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct AttackView {
    /// The window's start.
    pub start: u64,
    /// Its end.
    pub end: u64,
    /// See [`WindowSummary::groups`].
    pub groups: Vec<Group>,
    /// See [`WindowSummary::ports`].
    pub ports: Vec<PortWindow>,
}

impl SummaryView for AttackView {
    fn window(&self) -> (u64, u64) {
        (self.start, self.end)
    }
}

/// The parts of a window summary that rules read.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct RuleView {
    /// The window's start.
    pub start: u64,
    /// Its end.
    pub end: u64,
    /// See [`WindowSummary::rules`].
    pub rules: Vec<RuleUse>,
    /// See [`WindowSummary::denied`].
    pub denied: Vec<Denied>,
}

impl SummaryView for RuleView {
    fn window(&self) -> (u64, u64) {
        (self.start, self.end)
    }
}

/// A window summary (or a view of it) and the log topic whose records it
/// summarizes.
#[derive(Debug, Clone)]
pub struct TopicWindow<W = WindowSummary> {
    /// The log group's id.
    pub log_group: String,
    /// The log topic's id.
    pub log_topic: String,
    /// The summary.
    pub summary: W,
}

fn summary_name(records_name: &str) -> String {
    format!("{SUMMARY_PREFIX}{records_name}{SUMMARY_SUFFIX}")
}

/// The summary file of a records file.
pub fn summary_path(records_file: &Path) -> PathBuf {
    let name = records_file
        .file_name()
        .unwrap_or_default()
        .to_string_lossy();
    records_file.with_file_name(summary_name(&name))
}

/// The records file a summary file summarizes, if `p` names a summary.
pub fn records_file_of(p: &Path) -> Option<PathBuf> {
    let name = p.file_name()?.to_str()?;
    let records = name
        .strip_prefix(SUMMARY_PREFIX)?
        .strip_suffix(SUMMARY_SUFFIX)?;
    Some(p.with_file_name(records))
}

/// The name now of a summary named as earlier versions named it (the
/// records file's name and [`SUMMARY_SUFFIX`], no prefix), if `p` is one.
pub(crate) fn renamed_legacy(p: &Path) -> Option<PathBuf> {
    let name = p.file_name()?.to_str()?;
    let records = name.strip_suffix(SUMMARY_SUFFIX)?;
    (!name.starts_with(SUMMARY_PREFIX) && !name.starts_with('.'))
        .then(|| p.with_file_name(summary_name(records)))
}

pub(crate) fn read<W: SummaryView>(path: &Path) -> Result<SummaryFile<W>, StoreError> {
    let packed = fs::read(path).map_err(|e| StoreError::io(path, e))?;
    decode(&packed).map_err(|message| StoreError::Encode {
        path: path.display().to_string(),
        message,
    })
}

/// A summary file's bytes, decoded; the error says what is wrong.
pub(crate) fn decode<W: SummaryView>(packed: &[u8]) -> Result<SummaryFile<W>, String> {
    let text = zstd::decode_all(packed).map_err(|e| format!("not a window summary: {e}"))?;
    serde_json::from_slice(&text).map_err(|e| format!("not a window summary: {e}"))
}

/// Writes `s` durably as the summary of `dir/records_name` (a temporary
/// name, fsync, rename; the caller fsyncs `dir`).
pub(crate) fn write(dir: &Path, records_name: &str, s: &SummaryFile) -> Result<(), StoreError> {
    let (f, tmp, path) = write_tmp(dir, records_name, s)?;
    f.sync_all().map_err(|e| StoreError::io(&tmp, e))?;
    fs::rename(&tmp, &path).map_err(|e| StoreError::io(&path, e))
}

/// Writes `s` under a temporary name in `dir`, not synced: the file, its
/// temporary path and the path it is to have.
pub(crate) fn write_tmp(
    dir: &Path,
    records_name: &str,
    s: &SummaryFile,
) -> Result<(fs::File, PathBuf, PathBuf), StoreError> {
    use std::io::Write;
    fs::create_dir_all(dir).map_err(|e| StoreError::io(dir, e))?;
    let path = dir.join(summary_name(records_name));
    let tmp = dir.join(format!(".{records_name}{SUMMARY_SUFFIX}{TMP}"));
    let encode = |e: &dyn std::fmt::Display| StoreError::Encode {
        path: path.display().to_string(),
        message: e.to_string(),
    };
    let body = serde_json::to_vec(s).map_err(|e| encode(&e))?;
    let body = zstd::encode_all(body.as_slice(), 3).map_err(|e| encode(&e))?;
    let mut f = fs::File::create(&tmp).map_err(|e| StoreError::io(&tmp, e))?;
    f.write_all(&body).map_err(|e| StoreError::io(&tmp, e))?;
    Ok((f, tmp, path))
}

/// A group's key within a window: indexes into the topology, so the
/// per-record work hashes integers; names are looked up per group.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct Key {
    shape: Shape,
    flow_log: u32,
    port: Option<u32>,
    src: Option<IpAddr>,
    srcport: Option<u16>,
    dstport: Option<u16>,
}

/// The shapes a flow counts in, with its key in each.
fn keys(r: &FlowRecord, f: &FlowFields, out: &mut Vec<Key>) {
    out.clear();
    if f.direction != Direction::Ingress {
        return;
    }
    let proto = f.tuple.protocol.0;
    let key = |shape, port: bool, src: bool, srcport: Option<u16>, dstport: Option<u16>| Key {
        shape,
        flow_log: r.flow_log,
        port: port.then_some(r.port),
        src: src.then_some(f.tuple.src),
        srcport,
        dstport,
    };
    let (sp, dp) = (f.tuple.src_port, f.tuple.dst_port);
    if proto == 6 || proto == 17 {
        out.push(key(Shape::PortScan, true, true, None, None));
    }
    out.push(key(Shape::HostSweep, false, true, None, None));
    if proto == 6 && BRUTE_FORCE_SERVICES.contains(&dp) {
        out.push(key(Shape::BruteForce, true, true, None, Some(dp)));
    }
    if proto == 6 && f.tcp_flag == Some(TcpFlag::SynSent) {
        out.push(key(Shape::SynFlood, true, false, None, Some(dp)));
    }
    if proto == 17 {
        out.push(key(Shape::UdpFlood, true, false, None, Some(dp)));
        if REFLECTION_SERVICES.contains(&sp) {
            out.push(key(Shape::UdpReflection, true, false, Some(sp), None));
        }
    }
}

/// Counts and sums: whether a group may meet its floor.
#[derive(Debug, Clone, Copy, Default)]
struct Tally {
    flows: u64,
    packets: u64,
    bytes: u64,
}

impl Tally {
    fn add(&mut self, f: &FlowFields) {
        self.flows += 1;
        // Counts from an exporter may be anything: never wrap.
        self.packets = self.packets.saturating_add(f.packets);
        self.bytes = self.bytes.saturating_add(f.bytes);
    }
}

/// Everything [`Measures`] needs, for the few groups that may meet their
/// floor.
#[derive(Debug, Default)]
struct Full {
    tally: Tally,
    sources: HashSet<IpAddr>,
    dstaddrs: HashSet<IpAddr>,
    dstports: HashSet<u16>,
    actions: BTreeSet<&'static str>,
    /// Deciding rule -> (packets, flows).
    rules: HashMap<RuleRef, (u64, u64)>,
}

impl Full {
    fn add(&mut self, f: &FlowFields) {
        self.tally.add(f);
        self.sources.insert(f.tuple.src);
        self.dstaddrs.insert(f.tuple.dst);
        self.dstports.insert(f.tuple.dst_port);
        self.actions.insert(f.action.as_str());
        let r = self.rules.entry(f.rule).or_default();
        r.0 = r.0.saturating_add(f.packets);
        r.1 += 1;
    }

    fn measures(&self, topology: &Topology) -> Measures {
        // By policy and rule id (two table entries may share them).
        let mut by_id: BTreeMap<PolicyRule<'_>, (u64, u64)> = BTreeMap::new();
        for (&rule, &(packets, flows)) in &self.rules {
            let info = topology.rules.get(rule);
            let t = by_id
                .entry((
                    info.and_then(|i| i.policy_id()),
                    info.map(|i| i.id.as_str()),
                ))
                .or_default();
            t.0 += packets;
            t.1 += flows;
        }
        // Most packets, then most flows, then the least ids (absent last).
        let top = by_id.iter().min_by(|(ka, va), (kb, vb)| {
            vb.0.cmp(&va.0)
                .then(vb.1.cmp(&va.1))
                .then(absent_last(**ka).cmp(&absent_last(**kb)))
        });
        Measures {
            sources: self.sources.len() as u64,
            dstaddrs: self.dstaddrs.len() as u64,
            dstports: self.dstports.len() as u64,
            connections: self.tally.flows,
            packets: self.tally.packets,
            bytes: self.tally.bytes,
            actions: (
                self.actions
                    .first()
                    .copied()
                    .unwrap_or_default()
                    .to_string(),
                self.actions.last().copied().unwrap_or_default().to_string(),
            ),
            policy_id: top.and_then(|(k, _)| k.0.map(str::to_string)),
            rule_id: top.and_then(|(k, _)| k.1.map(str::to_string)),
        }
    }
}

/// A policy id and rule id, either absent.
type PolicyRule<'a> = (Option<&'a str>, Option<&'a str>);

/// A rule key ordered as SQL orders ascending: absent values last.
fn absent_last(k: PolicyRule<'_>) -> (bool, Option<&str>, bool, Option<&str>) {
    (k.0.is_none(), k.0, k.1.is_none(), k.1)
}

/// Whether a group's counts and sums may meet its floor (what its
/// distinct counts are not needed for).
fn may_meet(shape: Shape, t: &Tally, seconds: u64) -> bool {
    let f = &FLOORS;
    match shape {
        Shape::PortScan => t.flows >= f.port_scan_dstports,
        Shape::HostSweep => t.flows >= f.host_sweep_dstaddrs,
        Shape::BruteForce => t.flows >= f.brute_force_connections,
        Shape::SynFlood => t.flows >= f.syn_flood_flows.max(f.syn_flood_sources),
        Shape::UdpFlood => t.packets >= f.udp_flood_pps.saturating_mul(seconds),
        Shape::UdpReflection => {
            t.bytes >= f.udp_reflection_bytes_per_second.saturating_mul(seconds)
                && t.flows >= f.udp_reflection_sources
        }
    }
}

/// Whether a group's measures meet its floor.
fn meets(shape: Shape, m: &Measures) -> bool {
    let f = &FLOORS;
    match shape {
        Shape::PortScan => m.dstports >= f.port_scan_dstports,
        Shape::HostSweep => m.dstaddrs >= f.host_sweep_dstaddrs,
        Shape::SynFlood => m.sources >= f.syn_flood_sources,
        Shape::UdpReflection => m.sources >= f.udp_reflection_sources,
        Shape::BruteForce | Shape::UdpFlood => true,
    }
}

#[derive(Default)]
struct DenyAcc {
    tally: Tally,
    sources: HashMap<IpAddr, u64>,
    dstports: BTreeSet<u16>,
}

#[derive(Default)]
struct RuleAcc {
    tally: Tally,
    /// The first [`KEPT_VALUES`] seen: a set hashed into, not ordered,
    /// as every flow of the rule asks it (they are sorted when written).
    remotes: HashSet<IpAddr>,
    more_remotes: bool,
    dstports: HashSet<u16>,
    more_dstports: bool,
}

impl RuleAcc {
    fn add(&mut self, f: &FlowFields) {
        self.tally.add(f);
        let remote = if f.direction == Direction::Ingress {
            f.tuple.src
        } else {
            f.tuple.dst
        };
        if !self.remotes.contains(&remote) {
            if self.remotes.len() < KEPT_VALUES {
                self.remotes.insert(remote);
            } else {
                self.more_remotes = true;
            }
        }
        if !self.dstports.contains(&f.tuple.dst_port) {
            if self.dstports.len() < KEPT_VALUES {
                self.dstports.insert(f.tuple.dst_port);
            } else {
                self.more_dstports = true;
            }
        }
    }
}

/// Summarizes one window's records of one log topic (`records` as the
/// writer lists them).
pub fn summarize(
    topology: &Topology,
    start: u64,
    end: u64,
    records: &[(usize, &FlowRecord)],
) -> WindowSummary {
    let seconds = end.saturating_sub(start);
    let flow_log_id = |i: u32| topology.flow_logs[i as usize].id.as_str();
    let port_id = |i: u32| topology.ports[i as usize].id.as_str();
    let flows = || {
        records.iter().filter_map(|&(_, r)| match &r.body {
            RecordBody::Flow(f) => Some((r, f)),
            _ => None,
        })
    };
    // Ports with records (any log status), in the order written.
    let mut ports: Vec<PortWindow> = Vec::new();
    let mut port_index: HashMap<(u32, u32), usize> = HashMap::new();
    for &(_, r) in records {
        port_index.entry((r.flow_log, r.port)).or_insert_with(|| {
            ports.push(PortWindow {
                flow_log_id: flow_log_id(r.flow_log).to_string(),
                interface_id: port_id(r.port).to_string(),
                rejects: None,
            });
            ports.len() - 1
        });
    }
    // First pass: counts and sums of every group; rule use; denies.
    let mut tallies: HashMap<Key, Tally> = HashMap::new();
    let mut rules: HashMap<RuleRef, RuleAcc> = HashMap::new();
    let mut denied: HashMap<(u32, RuleRef), DenyAcc> = HashMap::new();
    let mut port_rejects: HashMap<(u32, u32), Full> = HashMap::new();
    let mut ks = Vec::with_capacity(Shape::ALL.len());
    for (r, f) in flows() {
        keys(r, f, &mut ks);
        for k in &ks {
            tallies.entry(*k).or_default().add(f);
        }
        rules.entry(f.rule).or_default().add(f);
        if f.passed != f.rule {
            rules.entry(f.passed).or_default().add(f);
        } else if topology.rules.get(f.passed).is_some() {
            // The same rule decided and passed: it counts twice, as each
            // check's row does.
            rules.entry(f.passed).or_default().tally.add(f);
        }
        if f.action == Action::Reject {
            let d = denied.entry((r.flow_log, f.rule)).or_default();
            d.tally.add(f);
            *d.sources.entry(f.tuple.src).or_default() += 1;
            d.dstports.insert(f.tuple.dst_port);
            port_rejects.entry((r.flow_log, r.port)).or_default().add(f);
        }
    }
    // Second pass: the full measures of the groups that may meet a floor.
    let mut full: HashMap<Key, Full> = tallies
        .iter()
        .filter(|(k, t)| may_meet(k.shape, t, seconds))
        .map(|(k, _)| (*k, Full::default()))
        .collect();
    if !full.is_empty() {
        for (r, f) in flows() {
            keys(r, f, &mut ks);
            for k in &ks {
                if let Some(acc) = full.get_mut(k) {
                    acc.add(f);
                }
            }
        }
    }
    let mut groups: Vec<Group> = full
        .iter()
        .filter_map(|(k, acc)| {
            let m = acc.measures(topology);
            meets(k.shape, &m).then(|| Group {
                shape: k.shape,
                flow_log_id: flow_log_id(k.flow_log).to_string(),
                interface_id: k.port.map(|p| port_id(p).to_string()),
                srcaddr: k.src.map(|a| a.to_string()),
                srcport: k.srcport,
                dstport: k.dstport,
                measures: m,
            })
        })
        .collect();
    groups.sort_by(|a, b| {
        (
            a.shape,
            &a.flow_log_id,
            &a.interface_id,
            &a.srcaddr,
            a.srcport,
            a.dstport,
        )
            .cmp(&(
                b.shape,
                &b.flow_log_id,
                &b.interface_id,
                &b.srcaddr,
                b.srcport,
                b.dstport,
            ))
    });
    for (key, acc) in &port_rejects {
        if let Some(&i) = port_index.get(key) {
            ports[i].rejects = Some(acc.measures(topology));
        }
    }
    // Rule use by (stage, policy, rule), as the records name them.
    let mut by_name: BTreeMap<(&str, &str, &str), RuleUse> = BTreeMap::new();
    for (rule, u) in rules {
        let Some(info) = topology.rules.get(rule) else {
            continue;
        };
        let (stage, policy, id) = (info.stage.as_str(), info.owner.as_str(), info.id.as_str());
        let e = by_name
            .entry((stage, policy, id))
            .or_insert_with(|| RuleUse {
                stage: stage.to_string(),
                policy_id: policy.to_string(),
                rule_id: id.to_string(),
                flows: 0,
                packets: 0,
                bytes: 0,
                remotes: BTreeSet::new(),
                more_remotes: false,
                dstports: BTreeSet::new(),
                more_dstports: false,
            });
        e.flows += u.tally.flows;
        e.packets = e.packets.saturating_add(u.tally.packets);
        e.bytes = e.bytes.saturating_add(u.tally.bytes);
        e.remotes.extend(u.remotes.iter().map(IpAddr::to_string));
        e.more_remotes |= u.more_remotes || e.remotes.len() > KEPT_VALUES;
        e.dstports.extend(u.dstports);
        e.more_dstports |= u.more_dstports || e.dstports.len() > KEPT_VALUES;
        while e.remotes.len() > KEPT_VALUES {
            e.remotes.pop_last();
        }
        while e.dstports.len() > KEPT_VALUES {
            e.dstports.pop_last();
        }
    }
    // Denies by (flow log, stage, policy, rule), as the records name them.
    type Names<'a> = (&'a str, Option<&'a str>, Option<&'a str>, Option<&'a str>);
    let mut merged: BTreeMap<Names<'_>, DenyAcc> = BTreeMap::new();
    for ((flow_log, rule), d) in denied {
        let info = topology.rules.get(rule);
        let e = merged
            .entry((
                flow_log_id(flow_log),
                info.map(|i| i.stage.as_str()),
                info.and_then(|i| i.policy_id()),
                info.map(|i| i.id.as_str()),
            ))
            .or_default();
        e.tally.flows += d.tally.flows;
        e.tally.packets = e.tally.packets.saturating_add(d.tally.packets);
        e.tally.bytes = e.tally.bytes.saturating_add(d.tally.bytes);
        for (a, n) in d.sources {
            *e.sources.entry(a).or_default() += n;
        }
        e.dstports.extend(d.dstports);
    }
    let denied: Vec<Denied> = merged
        .into_iter()
        .map(|((flow_log, stage, policy, rule), d)| {
            let mut sources: Vec<(String, u64)> = d
                .sources
                .into_iter()
                .map(|(a, n)| (a.to_string(), n))
                .collect();
            sources.sort();
            Denied {
                flow_log_id: flow_log.to_string(),
                decided_by: stage.map(str::to_string),
                policy_id: policy.map(str::to_string),
                rule_id: rule.map(str::to_string),
                flows: d.tally.flows,
                packets: d.tally.packets,
                bytes: d.tally.bytes,
                sources,
                dstports: d.dstports,
            }
        })
        .collect();
    WindowSummary {
        start,
        end,
        groups,
        ports,
        rules: by_name.into_values().collect(),
        denied,
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use std::net::Ipv4Addr;

    use vpcflow_core::aggregate::ClosedWindow;
    use vpcflow_core::flow::FiveTuple;
    use vpcflow_core::record::{FlowFields, FlowRecord, RecordBody};
    use vpcflow_core::{Action, Direction, RuleRef};
    use vpcflow_wire::IpProtocol;

    use super::*;
    use crate::compact::tests::topology;
    use crate::{Query, Store};

    pub(crate) const START: u64 = 1_700_002_800;

    pub(crate) fn flow(
        port: u32,
        src: u32,
        dport: u16,
        action: Action,
        packets: u64,
    ) -> FlowRecord {
        FlowRecord {
            flow_log: 0,
            port,
            start: START,
            end: START + 60,
            body: RecordBody::Flow(FlowFields {
                tuple: FiveTuple {
                    src: Ipv4Addr::from(src).into(),
                    dst: Ipv4Addr::new(10, 0, 0, port as u8 + 1).into(),
                    src_port: 40_000,
                    dst_port: dport,
                    protocol: IpProtocol::TCP,
                    infrastructure: false,
                },
                packets,
                bytes: packets * 60,
                action,
                direction: Direction::Ingress,
                tcp_flag: None,
                rule: RuleRef(0),
                passed: RuleRef(0),
                sampling_rate: 1,
                tcp_flags: 0,
            }),
        }
    }

    /// One scanner (30 ports of port 0), 100 distinct clients of port 1's
    /// port 443 (ACCEPT) and a few REJECTs on port 2.
    pub(crate) fn window() -> ClosedWindow {
        let mut records: Vec<FlowRecord> = (0..30)
            .map(|i| flow(0, 0xcb00_7101, 1000 + i, Action::Accept, 1))
            .collect();
        records.extend((0..100).map(|i| flow(1, 0xc633_6400 + i, 443, Action::Accept, 10)));
        records.extend((0..4).map(|i| flow(2, 0xc633_6400 + i % 2, 22, Action::Reject, 2)));
        ClosedWindow {
            start: START,
            end: START + 60,
            records,
            rule_hits: Vec::new(),
        }
    }

    fn summary_of(w: &ClosedWindow) -> WindowSummary {
        let t = topology();
        let listed: Vec<(usize, &FlowRecord)> = w.records.iter().enumerate().collect();
        summarize(&t, w.start, w.end, &listed)
    }

    #[test]
    fn a_window_keeps_the_groups_past_their_floors_with_exact_measures() {
        let s = summary_of(&window());
        let scans: Vec<&Group> = s
            .groups
            .iter()
            .filter(|g| g.shape == Shape::PortScan)
            .collect();
        // The scanner, not the 100 one-flow clients.
        assert_eq!(scans.len(), 1, "{scans:#?}");
        let g = scans[0];
        assert_eq!(g.interface_id.as_deref(), Some("port-0"));
        assert_eq!(g.srcaddr.as_deref(), Some("203.0.113.1"));
        let m = &g.measures;
        assert_eq!(
            (m.dstports, m.connections, m.packets, m.sources),
            (30, 30, 30, 1)
        );
        assert_eq!(m.actions, ("ACCEPT".to_string(), "ACCEPT".to_string()));
        // Every port with records is listed; only port 2 has rejects.
        let ports: Vec<(&str, Option<u64>)> = s
            .ports
            .iter()
            .map(|p| {
                (
                    p.interface_id.as_str(),
                    p.rejects.as_ref().map(|m| m.connections),
                )
            })
            .collect();
        assert_eq!(
            ports,
            [("port-0", None), ("port-1", None), ("port-2", Some(4))]
        );
        let r = s.ports[2].rejects.as_ref().unwrap();
        assert_eq!((r.sources, r.dstports, r.packets), (2, 1, 8));
        // No rules in this topology: no rule use, and the denies are by
        // no rule, each source with its flows.
        assert!(s.rules.is_empty());
        assert_eq!(s.denied.len(), 1);
        assert_eq!(
            s.denied[0].sources,
            [
                ("198.51.100.0".to_string(), 2),
                ("198.51.100.1".to_string(), 2)
            ]
        );
    }

    #[test]
    fn a_rule_keeps_a_bounded_sample_of_its_remotes_and_says_there_were_more() {
        let mut t = topology();
        let inv = vpcflow_core::Inventory::from_toml(
            "vpc.toml",
            include_str!("../../../examples/vpc.toml"),
        )
        .unwrap();
        t.rules = vpcflow_core::rules::RuleTable::from_inventory(&inv);
        let mut w = window();
        for r in &mut w.records {
            if let RecordBody::Flow(f) = &mut r.body {
                f.rule = RuleRef(1);
            }
        }
        let listed: Vec<(usize, &FlowRecord)> = w.records.iter().enumerate().collect();
        let s = summarize(&t, w.start, w.end, &listed);
        assert_eq!(s.rules.len(), 1, "{:#?}", s.rules);
        let u = &s.rules[0];
        assert_eq!(u.flows, 134);
        // 102 distinct remotes, 32 destination ports.
        assert_eq!((u.remotes.len(), u.more_remotes), (KEPT_VALUES, true));
        assert_eq!((u.dstports.len(), u.more_dstports), (32, false));
    }

    #[test]
    fn summaries_are_written_beside_the_records_merged_by_compaction_and_read_in_range() {
        let dir = tempfile::tempdir().unwrap();
        let t = topology();
        let mut store = Store::open(dir.path()).unwrap();
        let mut w = window();
        store.write_window(&t, &w).unwrap();
        for r in &mut w.records {
            r.start += 600;
            r.end += 600;
        }
        w.start += 600;
        w.end += 600;
        store.write_window(&t, &w).unwrap();
        let q = |since: Option<u64>| Query {
            time: crate::TimeRange { since, until: None },
            ..Query::default()
        };
        let all = |q: Query| {
            q.fold_summaries(dir.path(), Vec::new, |v, w: TopicWindow| v.push(w))
                .unwrap()
        };
        let s = all(q(None)).unwrap();
        assert_eq!(s.len(), 2);
        assert_eq!(s[0].log_topic, "t");
        assert_eq!(s[0].summary, summary_of(&window()));
        let later = all(q(Some(START + 60))).unwrap();
        assert_eq!(later.len(), 1);
        assert_eq!(later[0].summary.start, START + 600);
        // Compacted: one records file, its summary both windows.
        assert_eq!(store.compact_before(u64::MAX).unwrap().len(), 1);
        let merged = all(q(None)).unwrap();
        assert_eq!(merged.len(), 2);
        assert_eq!(merged[0].summary, s[0].summary);
        assert_eq!(merged[1].summary, s[1].summary);
        drop(store);
        // A records file without a summary: the summaries are not the
        // whole store; a summary without its records file is removed when
        // the store is opened.
        let files = crate::query::store_files(&[dir.path().to_path_buf()]).unwrap();
        assert_eq!(files.len(), 1);
        let summary = summary_path(&files[0]);
        let orphan = dir
            .path()
            .join("log_group=g/log_topic=t/_x.parquet.summary.json.zst");
        fs::copy(&summary, &orphan).unwrap();
        fs::remove_file(&summary).unwrap();
        assert!(all(q(None)).is_none());
        drop(Store::open(dir.path()).unwrap());
        assert!(!orphan.exists());
    }
}
