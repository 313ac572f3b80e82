//! Attacks in the records: patterns of ingress traffic per capture window,
//! each a grouping with thresholds a user can change. The groupings come
//! from the store's window summaries (which keep every group at or above
//! the default thresholds, with exact measures) when those answer, else
//! the store computes them in SQL over the records; both give the same
//! findings.
//!
//! | kind | grouped by | found when |
//! |---|---|---|
//! | `port-scan` | port, source | TCP/UDP to `port-scan-dstports` or more destination ports |
//! | `host-sweep` | source | `host-sweep-dstaddrs` or more destination addresses, at most `host-sweep-packets-per-flow` packets a flow (probes, not use) |
//! | `brute-force` | port, source, service | `brute-force-connections` or more TCP connections to a login service ([`BRUTE_FORCE_SERVICES`]), at most `brute-force-packets-per-connection` packets each |
//! | `syn-flood` | port, service | `syn-flood-flows` or more `syn_sent` flows from `syn-flood-sources` or more sources |
//! | `udp-flood` | port, service | UDP at `udp-flood-pps` packets a second or more (averaged over the window) |
//! | `udp-reflection` | port, reflected service | UDP from a reflection service port ([`REFLECTION_SERVICES`]) at `udp-reflection-bytes-per-second` or more, from `udp-reflection-sources` or more reflectors |
//! | `denied-burst` | port | `denied-burst-flows` or more REJECT flows, and `denied-burst-factor` times the port's average over the range's other windows |
//!
//! Every grouping is per flow log too: a port under two flow logs has its
//! records in each, and each flow log's view is analyzed on its own (a
//! finding names its `flow-log-id`). Each finding names the rule that
//! decided most of its packets: for an attack that got in, the allow rule
//! to tighten.

use std::collections::{HashMap, HashSet};

use crate::{AnalysisError, Finding, Records, Row, quote};

/// Past this many windows in more than one file, an attack analysis reads
/// all the records rather than list those windows in its SQL.
pub const MOST_REPEATED_WINDOWS: usize = 200;

use vpcflow_store::summary::{AttackView, FLOORS, Measures, Shape, TopicWindow};
pub use vpcflow_store::summary::{BRUTE_FORCE_SERVICES, REFLECTION_SERVICES};

/// The detectors' thresholds. [`Thresholds::default`] is the documented
/// default; [`Thresholds::set`] changes one by its name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Thresholds {
    /// `port-scan-dstports`.
    pub port_scan_dstports: u64,
    /// `host-sweep-dstaddrs`.
    pub host_sweep_dstaddrs: u64,
    /// `host-sweep-packets-per-flow`.
    pub host_sweep_packets_per_flow: u64,
    /// `brute-force-connections`.
    pub brute_force_connections: u64,
    /// `brute-force-packets-per-connection`.
    pub brute_force_packets_per_connection: u64,
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
    /// `denied-burst-flows`.
    pub denied_burst_flows: u64,
    /// `denied-burst-factor`.
    pub denied_burst_factor: u64,
}

impl Default for Thresholds {
    fn default() -> Self {
        // The store's summaries keep what these find (and more).
        let f = FLOORS;
        Thresholds {
            port_scan_dstports: f.port_scan_dstports,
            host_sweep_dstaddrs: f.host_sweep_dstaddrs,
            host_sweep_packets_per_flow: 3,
            brute_force_connections: f.brute_force_connections,
            brute_force_packets_per_connection: 30,
            syn_flood_flows: f.syn_flood_flows,
            syn_flood_sources: f.syn_flood_sources,
            udp_flood_pps: f.udp_flood_pps,
            udp_reflection_bytes_per_second: f.udp_reflection_bytes_per_second,
            udp_reflection_sources: f.udp_reflection_sources,
            denied_burst_flows: 50,
            denied_burst_factor: 5,
        }
    }
}

impl Thresholds {
    /// Every threshold's name, in the table's order.
    pub const NAMES: [&'static str; 12] = [
        "port-scan-dstports",
        "host-sweep-dstaddrs",
        "host-sweep-packets-per-flow",
        "brute-force-connections",
        "brute-force-packets-per-connection",
        "syn-flood-flows",
        "syn-flood-sources",
        "udp-flood-pps",
        "udp-reflection-bytes-per-second",
        "udp-reflection-sources",
        "denied-burst-flows",
        "denied-burst-factor",
    ];

    fn slot(&mut self, name: &str) -> Option<&mut u64> {
        Some(match name {
            "port-scan-dstports" => &mut self.port_scan_dstports,
            "host-sweep-dstaddrs" => &mut self.host_sweep_dstaddrs,
            "host-sweep-packets-per-flow" => &mut self.host_sweep_packets_per_flow,
            "brute-force-connections" => &mut self.brute_force_connections,
            "brute-force-packets-per-connection" => &mut self.brute_force_packets_per_connection,
            "syn-flood-flows" => &mut self.syn_flood_flows,
            "syn-flood-sources" => &mut self.syn_flood_sources,
            "udp-flood-pps" => &mut self.udp_flood_pps,
            "udp-reflection-bytes-per-second" => &mut self.udp_reflection_bytes_per_second,
            "udp-reflection-sources" => &mut self.udp_reflection_sources,
            "denied-burst-flows" => &mut self.denied_burst_flows,
            "denied-burst-factor" => &mut self.denied_burst_factor,
            _ => return None,
        })
    }

    /// Whether the store's window summaries hold every group these find
    /// (each threshold at or above its floor).
    pub fn summarized(&self) -> bool {
        let f = FLOORS;
        self.port_scan_dstports >= f.port_scan_dstports
            && self.host_sweep_dstaddrs >= f.host_sweep_dstaddrs
            && self.brute_force_connections >= f.brute_force_connections
            && self.syn_flood_flows >= f.syn_flood_flows
            && self.syn_flood_sources >= f.syn_flood_sources
            && self.udp_flood_pps >= f.udp_flood_pps
            && self.udp_reflection_bytes_per_second >= f.udp_reflection_bytes_per_second
            && self.udp_reflection_sources >= f.udp_reflection_sources
    }

    /// Sets one threshold from `NAME=VALUE` (a positive integer).
    pub fn set(&mut self, assignment: &str) -> Result<(), AnalysisError> {
        let (name, value) = assignment.split_once('=').ok_or_else(|| {
            AnalysisError::Threshold(format!("'{assignment}': expected NAME=VALUE"))
        })?;
        let value: u64 = value
            .trim()
            .parse()
            .ok()
            .filter(|&v| v > 0)
            .ok_or_else(|| {
                AnalysisError::Threshold(format!("{name}: '{value}' is not a positive integer"))
            })?;
        let slot = self.slot(name.trim()).ok_or_else(|| {
            AnalysisError::Threshold(format!(
                "'{name}' is not one (thresholds: {})",
                Self::NAMES.join(", ")
            ))
        })?;
        *slot = value;
        Ok(())
    }
}

/// What a detector groups by, besides the window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Key {
    FlowLog,
    Port,
    Source,
    SourcePort,
    ServicePort,
}

impl Key {
    fn column(self) -> &'static str {
        match self {
            Key::FlowLog => "flow_log_id",
            Key::Port => "interface_id",
            Key::Source => "srcaddr",
            Key::SourcePort => "srcport",
            Key::ServicePort => "dstport",
        }
    }
}

struct Detector {
    kind: &'static str,
    shape: Shape,
    keys: &'static [Key],
    /// A condition on ingress OK records.
    filter: String,
    /// A cheap condition on the group that `having` implies (counts and
    /// sums only): the groups that meet it are few, and only their records
    /// are grouped again with the distinct counts, which cost a hash set
    /// per group (10 million groups of one record each took 9 GB).
    candidates: String,
    /// A condition on the group.
    having: String,
}

fn list(ports: &[u16]) -> String {
    ports
        .iter()
        .map(u16::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

fn detectors(t: &Thresholds) -> Vec<Detector> {
    vec![
        Detector {
            kind: "port-scan",
            shape: Shape::PortScan,
            keys: &[Key::FlowLog, Key::Port, Key::Source],
            filter: "protocol IN (6, 17)".into(),
            candidates: format!("COUNT(*) >= {}", t.port_scan_dstports),
            having: format!("COUNT(DISTINCT dstport) >= {}", t.port_scan_dstports),
        },
        Detector {
            kind: "host-sweep",
            shape: Shape::HostSweep,
            keys: &[Key::FlowLog, Key::Source],
            filter: "TRUE".into(),
            candidates: format!(
                "COUNT(*) >= {} AND SUM(packets) <= {} * COUNT(*)",
                t.host_sweep_dstaddrs, t.host_sweep_packets_per_flow
            ),
            having: format!(
                "COUNT(DISTINCT dstaddr) >= {} AND SUM(packets) <= {} * COUNT(*)",
                t.host_sweep_dstaddrs, t.host_sweep_packets_per_flow
            ),
        },
        Detector {
            kind: "brute-force",
            shape: Shape::BruteForce,
            keys: &[Key::FlowLog, Key::Port, Key::Source, Key::ServicePort],
            filter: format!(
                "protocol = 6 AND dstport IN ({})",
                list(&BRUTE_FORCE_SERVICES)
            ),
            candidates: format!(
                "COUNT(*) >= {} AND SUM(packets) <= {} * COUNT(*)",
                t.brute_force_connections, t.brute_force_packets_per_connection
            ),
            having: "TRUE".into(),
        },
        Detector {
            kind: "syn-flood",
            shape: Shape::SynFlood,
            keys: &[Key::FlowLog, Key::Port, Key::ServicePort],
            filter: "protocol = 6 AND tcp_flag = 'syn_sent'".into(),
            candidates: format!("COUNT(*) >= {}", t.syn_flood_flows.max(t.syn_flood_sources)),
            having: format!(
                "COUNT(*) >= {} AND COUNT(DISTINCT srcaddr) >= {}",
                t.syn_flood_flows, t.syn_flood_sources
            ),
        },
        Detector {
            kind: "udp-flood",
            shape: Shape::UdpFlood,
            keys: &[Key::FlowLog, Key::Port, Key::ServicePort],
            filter: "protocol = 17".into(),
            candidates: format!("SUM(packets) >= {} * MAX(\"end\" - start)", t.udp_flood_pps),
            having: "TRUE".into(),
        },
        Detector {
            kind: "udp-reflection",
            shape: Shape::UdpReflection,
            keys: &[Key::FlowLog, Key::Port, Key::SourcePort],
            filter: format!(
                "protocol = 17 AND srcport IN ({})",
                list(&REFLECTION_SERVICES)
            ),
            candidates: format!(
                "SUM(bytes) >= {} * MAX(\"end\" - start) AND COUNT(*) >= {}",
                t.udp_reflection_bytes_per_second, t.udp_reflection_sources
            ),
            having: format!("COUNT(DISTINCT srcaddr) >= {}", t.udp_reflection_sources),
        },
    ]
}

/// Whether a summarized group's measures meet its detector (the
/// `candidates` and `having` of [`detectors`], on the measures).
fn holds(shape: Shape, t: &Thresholds, m: &Measures, seconds: u64) -> bool {
    let per = |rate: u64| rate.saturating_mul(seconds);
    match shape {
        Shape::PortScan => m.dstports >= t.port_scan_dstports,
        Shape::HostSweep => {
            m.dstaddrs >= t.host_sweep_dstaddrs
                && m.packets <= t.host_sweep_packets_per_flow.saturating_mul(m.connections)
        }
        Shape::BruteForce => {
            m.connections >= t.brute_force_connections
                && m.packets
                    <= t.brute_force_packets_per_connection
                        .saturating_mul(m.connections)
        }
        Shape::SynFlood => m.connections >= t.syn_flood_flows && m.sources >= t.syn_flood_sources,
        Shape::UdpFlood => m.packets >= per(t.udp_flood_pps),
        Shape::UdpReflection => {
            m.bytes >= per(t.udp_reflection_bytes_per_second)
                && m.connections >= t.udp_reflection_sources
                && m.sources >= t.udp_reflection_sources
        }
    }
}

/// A finding's measures and rule from a summary's.
fn measured(mut f: Finding, m: &Measures) -> Finding {
    f.sources = Some(m.sources);
    f.dstaddrs = Some(m.dstaddrs);
    f.dstports = Some(m.dstports);
    f.connections = Some(m.connections);
    f.packets = Some(m.packets);
    f.bytes = Some(m.bytes);
    f.actions = Some(actions(&m.actions.0, &m.actions.1));
    f.policy_id = Some(m.policy_id.clone().unwrap_or_else(|| "-".into()));
    f.rule_id = Some(m.rule_id.clone().unwrap_or_else(|| "-".into()));
    f
}

/// A window of a log topic: (log group, log topic, start).
type WindowKey = (String, String, u64);

/// What an attack analysis keeps of the window summaries, folded one
/// window at a time: the findings and the few port windows that may be
/// bursts, not the summaries.
#[derive(Default)]
struct Folded {
    /// Each detector's findings, with their window.
    findings: Vec<(WindowKey, Finding)>,
    /// How many summaries each window has.
    seen: HashMap<WindowKey, u32>,
    /// Per port: the windows it has records in, and its REJECT flows.
    ports: HashMap<(String, String), (u64, u64)>,
    /// Port windows with enough REJECT flows to be a burst.
    bursts: Vec<Finding>,
}

fn fold(acc: &mut Folded, w: TopicWindow<AttackView>, detectors: &[Detector], t: &Thresholds) {
    let (start, end) = (w.summary.start, w.summary.end);
    let key = (w.log_group, w.log_topic, start);
    *acc.seen.entry(key.clone()).or_default() += 1;
    for g in w.summary.groups {
        let Some(d) = detectors.iter().find(|d| d.shape == g.shape) else {
            continue;
        };
        if !holds(d.shape, t, &g.measures, end.saturating_sub(start)) {
            continue;
        }
        let f = Finding {
            kind: d.kind,
            start,
            end,
            flow_log_id: g.flow_log_id,
            interface_id: g.interface_id,
            srcaddr: g.srcaddr,
            srcport: g.srcport.map(u64::from),
            dstport: g.dstport.map(u64::from),
            ..Finding::default()
        };
        acc.findings.push((key.clone(), measured(f, &g.measures)));
    }
    for p in w.summary.ports {
        let flows = p.rejects.as_ref().map_or(0, |m| m.connections);
        let port = acc
            .ports
            .entry((p.flow_log_id.clone(), p.interface_id.clone()))
            .or_default();
        port.0 += 1;
        port.1 = port.1.saturating_add(flows);
        if let Some(m) = p.rejects.filter(|_| flows >= t.denied_burst_flows) {
            let f = Finding {
                kind: "denied-burst",
                flow_log_id: p.flow_log_id,
                interface_id: Some(p.interface_id),
                start,
                end,
                ..Finding::default()
            };
            acc.bursts.push(measured(f, &m));
        }
    }
}

impl Folded {
    /// Windows in more than one file: their groups' distinct counts are
    /// per file, so they are read from their records.
    fn repeated(&self) -> Vec<&WindowKey> {
        let mut v: Vec<&WindowKey> = self
            .seen
            .iter()
            .filter(|&(_, &n)| n > 1)
            .map(|(k, _)| k)
            .collect();
        v.sort();
        v
    }

    /// The bursts against each port's other windows (no window repeated,
    /// so each port's windows are counted once).
    fn denied_bursts(&mut self, t: &Thresholds) -> Vec<Finding> {
        let bursts = std::mem::take(&mut self.bursts);
        bursts
            .into_iter()
            .filter(|f| {
                let key = (
                    f.flow_log_id.clone(),
                    f.interface_id.clone().unwrap_or_default(),
                );
                let flows = f.connections.unwrap_or_default();
                let (windows, total) = self.ports.get(&key).copied().unwrap_or((1, flows));
                is_burst(
                    t,
                    flows,
                    windows.saturating_sub(1),
                    total.saturating_sub(flows),
                )
            })
            .collect()
    }
}

/// Whether a window's `flows` REJECT flows are a burst against the
/// port's `rest` REJECT flows in its `others` other windows.
fn is_burst(t: &Thresholds, flows: u64, others: u64, rest: u64) -> bool {
    // flows >= factor x (rest / others), kept in integers.
    let spike =
        others == 0 || flows.saturating_mul(others) >= t.denied_burst_factor.saturating_mul(rest);
    flows >= t.denied_burst_flows && spike
}

const MEASURES: &str = "COUNT(DISTINCT srcaddr), COUNT(DISTINCT dstaddr), COUNT(DISTINCT dstport), \
                        COUNT(*), SUM(packets), SUM(bytes), MIN(action), MAX(action)";

fn actions(min: &str, max: &str) -> String {
    if min == max {
        min.to_string()
    } else {
        format!("{min},{max}")
    }
}

/// The window and key columns of a row, as one map key.
fn group_key(row: &Row, columns: usize) -> String {
    (0..columns)
        .map(|i| row.opt_text(i).unwrap_or_default())
        .collect::<Vec<_>>()
        .join("\u{1f}")
}

/// The OK records meeting `condition` whose group (window and `keys`)
/// meets `candidates`, as a relation to select from.
fn scoped(keys: &[&str], condition: &str, candidates: &str) -> String {
    let mut on = vec!["records.start = c.k_start".to_string()];
    let mut picked = vec!["start AS k_start".to_string()];
    for k in keys {
        picked.push(format!("{k} AS k_{k}"));
        on.push(format!("records.{k} = c.k_{k}"));
    }
    let by = keys.join(", ");
    format!(
        "(SELECT records.* FROM records JOIN (\
           SELECT {} FROM records WHERE log_status = 'OK' AND {condition} \
           GROUP BY start, {by} HAVING {candidates}) AS c ON {} \
         WHERE log_status = 'OK' AND {condition}) AS scoped",
        picked.join(", "),
        on.join(" AND ")
    )
}

/// Per group (window and `keys`) of the records of `from`: the rule that
/// decided most of its packets (for an attack that got in, the allow rule
/// to tighten).
fn top_rules(
    records: &Records<'_>,
    keys: &str,
    from: &str,
    columns: usize,
) -> Result<HashMap<String, (String, String)>, AnalysisError> {
    let rows = records.sql(format!(
        "SELECT start, \"end\", {keys}, policy_id, rule_id FROM (\
           SELECT start, \"end\", {keys}, policy_id, rule_id, ROW_NUMBER() OVER (\
             PARTITION BY start, \"end\", {keys} \
             ORDER BY SUM(packets) DESC, COUNT(*) DESC, policy_id, rule_id) AS rank \
           FROM {from} \
           GROUP BY start, \"end\", {keys}, policy_id, rule_id) WHERE rank = 1"
    ))?;
    Ok(rows
        .iter()
        .map(|r| {
            (
                group_key(r, columns),
                (
                    r.opt_text(columns).unwrap_or_else(|| "-".into()),
                    r.opt_text(columns + 1).unwrap_or_else(|| "-".into()),
                ),
            )
        })
        .collect())
}

/// A detector's findings from the records (`only`: of these windows).
fn run_detector(
    records: &Records<'_>,
    d: &Detector,
    only: Option<&str>,
) -> Result<Vec<Finding>, AnalysisError> {
    let columns: Vec<&str> = d.keys.iter().map(|k| k.column()).collect();
    let keys = columns.join(", ");
    let from = scoped(
        &columns,
        &format!(
            "direction = 'ingress' AND ({}) AND ({})",
            d.filter,
            only.unwrap_or("TRUE")
        ),
        &d.candidates,
    );
    let rows = records.sql(format!(
        "SELECT start, \"end\", {keys}, {MEASURES} FROM {from} \
         GROUP BY start, \"end\", {keys} HAVING {}",
        d.having
    ))?;
    if rows.is_empty() {
        return Ok(Vec::new());
    }
    let columns = 2 + d.keys.len();
    let rules = top_rules(records, &keys, &from, columns)?;
    let mut out = Vec::with_capacity(rows.len());
    for r in &rows {
        let mut f = Finding {
            kind: d.kind,
            start: r.u64(0)?,
            end: r.u64(1)?,
            ..Finding::default()
        };
        for (i, k) in d.keys.iter().enumerate() {
            let c = 2 + i;
            match k {
                Key::FlowLog => f.flow_log_id = r.text(c)?.to_string(),
                Key::Port => f.interface_id = Some(r.text(c)?.to_string()),
                Key::Source => f.srcaddr = Some(r.text(c)?.to_string()),
                Key::SourcePort => f.srcport = Some(r.u64(c)?),
                Key::ServicePort => f.dstport = Some(r.u64(c)?),
            }
        }
        let m = columns;
        f.sources = Some(r.u64(m)?);
        f.dstaddrs = Some(r.u64(m + 1)?);
        f.dstports = Some(r.u64(m + 2)?);
        f.connections = Some(r.u64(m + 3)?);
        f.packets = Some(r.u64(m + 4)?);
        f.bytes = Some(r.u64(m + 5)?);
        f.actions = Some(actions(r.text(m + 6)?, r.text(m + 7)?));
        if let Some((policy, rule)) = rules.get(&group_key(r, columns)) {
            f.policy_id = Some(policy.clone());
            f.rule_id = Some(rule.clone());
        }
        out.push(f);
    }
    Ok(out)
}

/// REJECT spikes: per port and window, against the port's other windows.
fn denied_bursts(records: &Records<'_>, t: &Thresholds) -> Result<Vec<Finding>, AnalysisError> {
    let windows: HashMap<String, u64> = records
        .sql(
            "SELECT flow_log_id, interface_id, COUNT(DISTINCT start) FROM records \
             GROUP BY flow_log_id, interface_id"
                .into(),
        )?
        .iter()
        .map(|r| Ok((group_key(r, 2), r.u64(2)?)))
        .collect::<Result<_, AnalysisError>>()?;
    let filter = "action = 'REJECT'";
    let keys = "flow_log_id, interface_id";
    // Every port's REJECT flows over the range (its baseline), then the
    // measures of the windows that reach the threshold.
    let mut total: HashMap<String, u64> = HashMap::new();
    for r in &records.sql(format!(
        "SELECT {keys}, COUNT(*) FROM records WHERE log_status = 'OK' AND {filter} GROUP BY {keys}"
    ))? {
        total.insert(group_key(r, 2), r.u64(2)?);
    }
    let from = scoped(
        &["flow_log_id", "interface_id"],
        filter,
        &format!("COUNT(*) >= {}", t.denied_burst_flows),
    );
    let rows = records.sql(format!(
        "SELECT {keys}, start, \"end\", {MEASURES} FROM {from} GROUP BY start, \"end\", {keys}"
    ))?;
    let mut out = Vec::new();
    let mut rules = None;
    for r in &rows {
        let port = group_key(r, 2);
        let flows = r.u64(7)?;
        let others = windows.get(&port).copied().unwrap_or(1).saturating_sub(1);
        let rest = total
            .get(&port)
            .copied()
            .unwrap_or(flows)
            .saturating_sub(flows);
        if !is_burst(t, flows, others, rest) {
            continue;
        }
        let rules = match &mut rules {
            Some(r) => r,
            None => rules.insert(top_rules(records, keys, &from, 4)?),
        };
        let start = r.u64(2)?;
        let end = r.u64(3)?;
        let (policy, rule) = rules
            .get(&format!("{start}\u{1f}{end}\u{1f}{port}"))
            .cloned()
            .unwrap_or_else(|| ("-".into(), "-".into()));
        out.push(Finding {
            kind: "denied-burst",
            flow_log_id: r.text(0)?.to_string(),
            interface_id: Some(r.text(1)?.to_string()),
            start,
            end,
            sources: Some(r.u64(4)?),
            dstaddrs: Some(r.u64(5)?),
            dstports: Some(r.u64(6)?),
            connections: Some(flows),
            packets: Some(r.u64(8)?),
            bytes: Some(r.u64(9)?),
            actions: Some(actions(r.text(10)?, r.text(11)?)),
            policy_id: Some(policy),
            rule_id: Some(rule),
            ..Finding::default()
        });
    }
    Ok(out)
}

/// Every attack in `records`, ordered by window, kind, port, source and
/// service.
///
/// Read from the store's window summaries when every file has one and the
/// thresholds are at or above their floors; a window in more than one
/// file is read from its records (all of them, past
/// [`MOST_REPEATED_WINDOWS`] such windows).
pub fn find(records: &Records<'_>, t: &Thresholds) -> Result<Vec<Finding>, AnalysisError> {
    let detectors = detectors(t);
    let folded = if t.summarized() {
        records.fold_summaries(Folded::default, |acc, w| fold(acc, w, &detectors, t))?
    } else {
        None
    };
    let mut out = Vec::new();
    match folded {
        Some(mut s) if s.repeated().len() <= MOST_REPEATED_WINDOWS => {
            let repeated: HashSet<WindowKey> = s.repeated().into_iter().cloned().collect();
            let only = (!repeated.is_empty()).then(|| {
                s.repeated()
                    .iter()
                    .map(|(g, tp, start)| {
                        format!(
                            "(log_group = {} AND log_topic = {} AND start = {start})",
                            quote(g),
                            quote(tp)
                        )
                    })
                    .collect::<Vec<_>>()
                    .join(" OR ")
            });
            let findings = std::mem::take(&mut s.findings);
            out.extend(
                findings
                    .into_iter()
                    .filter(|(k, _)| !repeated.contains(k))
                    .map(|(_, f)| f),
            );
            match &only {
                None => out.extend(s.denied_bursts(t)),
                Some(only) => {
                    for d in &detectors {
                        out.extend(run_detector(records, d, Some(only))?);
                    }
                    out.extend(denied_bursts(records, t)?);
                }
            }
        }
        _ => {
            for d in &detectors {
                out.extend(run_detector(records, d, None)?);
            }
            out.extend(denied_bursts(records, t)?);
        }
    }
    out.sort_by(|a, b| {
        (
            a.start,
            &a.flow_log_id,
            a.kind,
            &a.interface_id,
            &a.srcaddr,
            a.srcport,
            a.dstport,
        )
            .cmp(&(
                b.start,
                &b.flow_log_id,
                b.kind,
                &b.interface_id,
                &b.srcaddr,
                b.srcport,
                b.dstport,
            ))
    });
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thresholds_are_set_by_name_and_refused_otherwise() {
        let mut t = Thresholds::default();
        t.set("port-scan-dstports=50").unwrap();
        assert_eq!(t.port_scan_dstports, 50);
        t.set(" udp-flood-pps = 7 ").unwrap();
        assert_eq!(t.udp_flood_pps, 7);
        let e = t.set("port-scan=5").unwrap_err().to_string();
        assert!(
            e.contains("'port-scan' is not one") && e.contains("syn-flood-flows"),
            "{e}"
        );
        let e = t.set("syn-flood-flows=0").unwrap_err().to_string();
        assert!(e.contains("not a positive integer"), "{e}");
        assert!(t.set("syn-flood-flows").is_err());
        // Every name has a slot.
        for name in Thresholds::NAMES {
            t.set(&format!("{name}=3")).unwrap();
        }
        assert_eq!(t.denied_burst_factor, 3);
    }
}

#[cfg(test)]
mod summary_tests {
    use std::net::Ipv4Addr;

    use vpcflow_core::aggregate::ClosedWindow;
    use vpcflow_core::flow::{FiveTuple, TrafficType};
    use vpcflow_core::record::{FlowFields, FlowRecord, RecordBody};
    use vpcflow_core::topology::{FlowLogInfo, PortInfo, Topology};
    use vpcflow_core::{Action, Direction, RuleRef};
    use vpcflow_store::Store;
    use vpcflow_wire::IpProtocol;

    use super::*;

    fn topology() -> Topology {
        let mut t = Topology {
            region: "r".into(),
            ..Default::default()
        };
        t.flow_logs.push(FlowLogInfo {
            id: "fl".into(),
            traffic_type: TrafficType::All,
            log_group_id: "g".into(),
            log_topic_id: "t".into(),
        });
        t.push_port(PortInfo {
            id: "port-0".into(),
            project_id: "p".into(),
            vpc_id: "v".into(),
            subnet_id: "s".into(),
            az_id: "-".into(),
            ips: Vec::new(),
            inventory_index: None,
            flow_logs: vec![0],
            filters: 0,
            first_window: None,
        });
        t
    }

    /// A window in which 203.0.113.1 probes 25 ports of port-0, and 60
    /// of those probes are rejected from 198.51.100.x.
    fn scan(start: u64) -> ClosedWindow {
        let flow = |src: Ipv4Addr, dport: u16, action| FlowRecord {
            flow_log: 0,
            port: 0,
            start,
            end: start + 60,
            body: RecordBody::Flow(FlowFields {
                tuple: FiveTuple {
                    src: src.into(),
                    dst: Ipv4Addr::new(10, 0, 0, 1).into(),
                    src_port: 40_000,
                    dst_port: dport,
                    protocol: IpProtocol::TCP,
                    infrastructure: false,
                },
                packets: 1,
                bytes: 60,
                action,
                direction: Direction::Ingress,
                tcp_flag: None,
                rule: RuleRef(0),
                passed: RuleRef(0),
                sampling_rate: 1,
                tcp_flags: 0,
            }),
        };
        let mut records: Vec<FlowRecord> = (0..25)
            .map(|p| flow(Ipv4Addr::new(203, 0, 113, 1), 1000 + p, Action::Accept))
            .collect();
        records.extend(
            (0..60).map(|i| flow(Ipv4Addr::new(198, 51, 100, i as u8), 22, Action::Reject)),
        );
        ClosedWindow {
            start,
            end: start + 60,
            records,
            rule_hits: Vec::new(),
        }
    }

    #[test]
    fn a_window_in_two_files_is_read_from_its_records_and_the_rest_from_summaries() {
        let dir = tempfile::tempdir().unwrap();
        let t = topology();
        let mut store = Store::open(dir.path()).unwrap();
        let start = 1_700_002_800;
        store.write_window(&t, &scan(start)).unwrap();
        // The second window arrives twice (two writers of one topic, or a
        // partial window completed later): its distinct counts are per
        // file, so it is read from its records.
        store.write_window(&t, &scan(start + 60)).unwrap();
        store.write_partial_window(&t, &scan(start + 60)).unwrap();
        drop(store);
        let th = Thresholds::default();
        let records = Records::of(dir.path());
        let from_summaries = find(&records, &th).unwrap();
        let from_records = find(
            &Records {
                from_records: true,
                ..Records::of(dir.path())
            },
            &th,
        )
        .unwrap();
        assert_eq!(from_summaries, from_records);
        let scans: Vec<(u64, Option<u64>, Option<u64>)> = from_summaries
            .iter()
            .filter(|f| f.kind == "port-scan")
            .map(|f| (f.start, f.dstports, f.connections))
            .collect();
        assert_eq!(
            scans,
            [
                (start, Some(25), Some(25)),
                (start + 60, Some(25), Some(50))
            ]
        );
        // Each window's 60 REJECTs (120 in the doubled one) are a burst
        // only against nothing: two windows, neither 5 times the other.
        assert!(from_summaries.iter().all(|f| f.kind != "denied-burst"));
        // Thresholds below the floors read the records.
        let mut low = th;
        low.set("port-scan-dstports=10").unwrap();
        assert!(!low.summarized());
        assert_eq!(find(&records, &low).unwrap(), from_records);
    }
}
