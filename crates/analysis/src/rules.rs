//! Security-group and network-ACL rules against the traffic they saw, for
//! tuning them:
//!
//! - `unused-rule`: a rule of the inventory that decided nothing, and let
//!   nothing pass, in the range (a record's `rule-id` and its `passed-rule-id`
//!   both count: a security group's egress rule never decides where an ACL
//!   checks after it, yet it let the traffic out);
//! - `shadowed-rule`: a rule that can never match because one tried before
//!   it matches everything it does (from the rules alone);
//! - `broad-rule`: an allow rule whose observed use is much narrower than
//!   what it allows (a prefix of [`RuleThresholds::broad_prefix_v4`] bits or
//!   fewer used by a handful of addresses; every port, or a range of
//!   [`RuleThresholds::broad_port_count`] ports or more, where a few were
//!   used), with the observed use;
//! - `denied-hits`: deny rules and default denies that rejected traffic,
//!   with their top sources.
//!
//! What the store cannot show it does not claim: a flow a flow log did not
//! keep (its traffic filter, or past the record cap) left no record.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::net::IpAddr;

use ipnet::IpNet;
use vpcflow_core::Inventory;
use vpcflow_core::inventory::rules::{
    AclRule, IpVersion, ProtocolMatch, Remote, RuleAction, RuleDirection, SecurityGroupRule,
};
use vpcflow_core::rules::{RuleTable, Stage};
use vpcflow_policy::evaluation_order;

use vpcflow_store::summary::{KEPT_VALUES, RuleView, TopicWindow};

use crate::{AnalysisError, Finding, Records, quote};

/// When an allow rule counts as broad.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RuleThresholds {
    /// An IPv4 remote prefix this short or shorter is broad (`0.0.0.0/0`,
    /// a /8, a /16).
    pub broad_prefix_v4: u8,
    /// An IPv6 remote prefix this short or shorter is broad.
    pub broad_prefix_v6: u8,
    /// ... when at most this many remote addresses used it.
    pub broad_used_addresses: u64,
    /// Every port, or a range of this many or more, is broad ...
    pub broad_port_count: u64,
    /// ... when at most this many destination ports were used.
    pub broad_used_ports: u64,
    /// Top sources listed for a deny rule.
    pub denied_top_sources: u64,
}

impl Default for RuleThresholds {
    fn default() -> Self {
        RuleThresholds {
            broad_prefix_v4: 16,
            broad_prefix_v6: 48,
            broad_used_addresses: 16,
            broad_port_count: 100,
            broad_used_ports: 3,
            denied_top_sources: 5,
        }
    }
}

/// The records' rule columns, both checks: one row per (flow, check).
const BOTH_CHECKS: &str = "SELECT decided_by AS stage, policy_id AS policy, rule_id AS rule, \
       flow_log_id, direction, srcaddr, dstaddr, dstport, packets, bytes, start, \"end\" \
     FROM records WHERE log_status = 'OK' \
     UNION ALL \
     SELECT passed_by, passed_policy_id, passed_rule_id, \
       flow_log_id, direction, srcaddr, dstaddr, dstport, packets, bytes, start, \"end\" \
     FROM records WHERE log_status = 'OK' AND passed_rule_id IS NOT NULL";

type RuleKey = (String, String, String);

/// What one rule did over the range (both checks).
#[derive(Debug, Clone, Copy, Default)]
struct Hits {
    flows: u64,
    packets: u64,
    bytes: u64,
    first: u64,
    last: u64,
    /// Distinct remote addresses (the source of ingress, the destination
    /// of egress).
    remotes: u64,
    /// Distinct destination ports.
    ports: u64,
}

fn stage_of(d: RuleDirection, sg: bool) -> Stage {
    match (d, sg) {
        (RuleDirection::Ingress, true) => Stage::SgIngress,
        (RuleDirection::Egress, true) => Stage::SgEgress,
        (RuleDirection::Ingress, false) => Stage::AclIngress,
        (RuleDirection::Egress, false) => Stage::AclEgress,
    }
}

fn net_version(n: &IpNet) -> IpVersion {
    match n {
        IpNet::V4(_) => IpVersion::V4,
        IpNet::V6(_) => IpVersion::V6,
    }
}

fn protocol_covers(e: ProtocolMatch, r: ProtocolMatch) -> bool {
    e == ProtocolMatch::Any || e == r
}

fn ranges_cover(e: &[(u16, u16)], r: &[(u16, u16)]) -> bool {
    // Empty is every port; a rule with ports matches only protocols that
    // have them, so it never covers one without.
    e.is_empty()
        || (!r.is_empty()
            && r.iter()
                .all(|&(lo, hi)| e.iter().any(|&(a, b)| a <= lo && hi <= b)))
}

fn net_covers(e: Option<&IpNet>, r: Option<&IpNet>) -> bool {
    match (e, r) {
        (None, _) => true,
        (Some(_), None) => false,
        (Some(e), Some(r)) => e.contains(r),
    }
}

/// Whether security-group rule `e` matches every packet `r` matches.
fn sg_covers(e: &SecurityGroupRule, r: &SecurityGroupRule) -> bool {
    let r_version = r.ethertype.or(match &r.remote {
        Remote::Prefix(n) => Some(net_version(n)),
        Remote::Group(_) => None,
    });
    let version = e.ethertype.is_none() || e.ethertype == r_version;
    let remote = match (&e.remote, &r.remote) {
        (Remote::Prefix(a), Remote::Prefix(b)) => a.contains(b),
        (Remote::Group(a), Remote::Group(b)) => a == b,
        _ => false,
    };
    version
        && protocol_covers(e.protocol, r.protocol)
        && ranges_cover(&e.ports.0, &r.ports.0)
        && remote
}

/// Whether ACL rule `e` matches every packet `r` matches.
fn acl_covers(e: &AclRule, r: &AclRule) -> bool {
    let range = |x: Option<(u16, u16)>| x.map_or_else(Vec::new, |r| vec![r]);
    protocol_covers(e.protocol, r.protocol)
        && (e.ip_version.is_none() || e.ip_version == r.ip_version)
        && net_covers(e.source.as_ref(), r.source.as_ref())
        && net_covers(e.destination.as_ref(), r.destination.as_ref())
        && ranges_cover(&range(e.source_ports), &range(r.source_ports))
        && ranges_cover(&range(e.destination_ports), &range(r.destination_ports))
}

fn shadow_detail(by: &str, same_action: bool) -> String {
    if same_action {
        format!(
            "shadowed by {by}, which matches everything it does with the same action: redundant"
        )
    } else {
        format!("shadowed by {by}, which matches everything it does first: it never takes effect")
    }
}

/// Rules that can never match, from the rules alone: within a security
/// group and direction in evaluation order, and within an ACL's ordered
/// enabled rules. `start`/`end` are the range the report covers.
pub fn shadowed(inv: &Inventory, start: u64, end: u64) -> Vec<Finding> {
    let mut out = Vec::new();
    let finding = |stage: Stage, policy: &str, rule: &str, detail: String| Finding {
        kind: "shadowed-rule",
        start,
        end,
        decided_by: Some(stage.as_str().to_string()),
        policy_id: Some(policy.to_string()),
        rule_id: Some(rule.to_string()),
        detail: Some(detail),
        ..Finding::default()
    };
    for g in &inv.security_groups {
        for d in [RuleDirection::Ingress, RuleDirection::Egress] {
            let order = evaluation_order(g, d);
            for (k, &i) in order.iter().enumerate() {
                let r = &g.rules[i];
                if let Some(&e) = order[..k].iter().find(|&&e| sg_covers(&g.rules[e], r)) {
                    let e = &g.rules[e];
                    out.push(finding(
                        stage_of(d, true),
                        &g.id,
                        &r.id,
                        shadow_detail(&e.id, e.action == r.action),
                    ));
                }
            }
        }
    }
    for a in &inv.network_acls {
        for (d, rules) in [
            (RuleDirection::Ingress, &a.ingress),
            (RuleDirection::Egress, &a.egress),
        ] {
            for (k, r) in rules.iter().enumerate() {
                if !r.enabled {
                    continue;
                }
                if let Some(e) = rules[..k].iter().find(|e| e.enabled && acl_covers(e, r)) {
                    out.push(finding(
                        stage_of(d, false),
                        &a.id,
                        &r.id,
                        shadow_detail(&e.id, e.action == r.action),
                    ));
                }
            }
        }
    }
    out
}

/// What an allow rule allows that may be broad: its remote prefix (when
/// short enough) and its port span (when wide enough).
fn breadth(
    inv: &Inventory,
    t: &RuleThresholds,
    key: &RuleKey,
) -> Option<(Option<IpNet>, Option<u64>)> {
    let broad_net = |n: Option<IpNet>| match n {
        None => Some("0.0.0.0/0".parse().ok()?),
        Some(n @ IpNet::V4(v)) if v.prefix_len() <= t.broad_prefix_v4 => Some(n),
        Some(n @ IpNet::V6(v)) if v.prefix_len() <= t.broad_prefix_v6 => Some(n),
        Some(_) => None,
    };
    let span = |ranges: &[(u16, u16)], protocol: ProtocolMatch| -> Option<u64> {
        let has_ports = matches!(
            protocol,
            ProtocolMatch::Any | ProtocolMatch::Number(6 | 17 | 33 | 132 | 136)
        );
        if !has_ports {
            return None;
        }
        let n: u64 = if ranges.is_empty() {
            65_536
        } else {
            ranges.iter().map(|&(lo, hi)| u64::from(hi - lo) + 1).sum()
        };
        (n >= t.broad_port_count).then_some(n)
    };
    let (stage, policy, rule) = key;
    if let Some(g) = inv.security_groups.iter().find(|g| &g.id == policy) {
        let r = g.rules.iter().find(|r| &r.id == rule)?;
        if r.action != RuleAction::Allow || stage_of(r.direction, true).as_str() != stage {
            return None;
        }
        let net = match &r.remote {
            Remote::Prefix(n) => broad_net(Some(*n)),
            Remote::Group(_) => None,
        };
        return Some((net, span(&r.ports.0, r.protocol)));
    }
    let a = inv.network_acls.iter().find(|a| &a.id == policy)?;
    for (d, rules) in [
        (RuleDirection::Ingress, &a.ingress),
        (RuleDirection::Egress, &a.egress),
    ] {
        if stage_of(d, false).as_str() != stage {
            continue;
        }
        let r = rules.iter().find(|r| &r.id == rule)?;
        if r.action != RuleAction::Allow {
            return None;
        }
        let remote = if d == RuleDirection::Ingress {
            r.source
        } else {
            r.destination
        };
        let ports: Vec<(u16, u16)> = r.destination_ports.into_iter().collect();
        return Some((broad_net(remote), span(&ports, r.protocol)));
    }
    None
}

/// An allow rule whose use was narrower than what it allows.
#[derive(Debug, Clone)]
pub struct BroadRule {
    /// (decided-by, policy-id, rule-id).
    pub key: (String, String, String),
    /// Flows, packets and bytes it decided or passed, and its first and
    /// last window.
    pub hits: (u64, u64, u64, u64, u64),
    /// The remote prefix it allows, when that is broad and few used it.
    pub net: Option<IpNet>,
    /// The remote addresses that used it (set when `net` is).
    pub used_addresses: Vec<IpAddr>,
    /// How many ports it allows, when that is broad and few were used.
    pub port_span: Option<u64>,
    /// The destination ports used (set when `port_span` is).
    pub used_ports: Vec<u16>,
}

/// How the inventory's rules were used over the records.
#[derive(Debug, Clone, Default)]
pub struct Usage {
    /// The range the records cover (first window start, last window end).
    pub start: u64,
    /// Its end.
    pub end: u64,
    /// Rules of the inventory that decided nothing and let nothing pass:
    /// (decided-by, policy-id, rule-id).
    pub unused: Vec<(String, String, String)>,
    /// Allow rules used much more narrowly than they allow.
    pub broad: Vec<BroadRule>,
    /// What every rule that was hit did.
    hits: HashMap<RuleKey, Hits>,
}

/// How the rules of `inv` were used in `records`.
pub fn usage(
    records: &Records<'_>,
    inv: &Inventory,
    t: &RuleThresholds,
) -> Result<Usage, AnalysisError> {
    Ok(usage_and_denied(records, inv, t, false)?.0)
}

/// [`usage`] and, with `denied` and from the window summaries in the same
/// pass, what the deny rules rejected (`None`: ask the records).
fn usage_and_denied(
    records: &Records<'_>,
    inv: &Inventory,
    t: &RuleThresholds,
    denied: bool,
) -> Result<(Usage, Option<Vec<DeniedRule>>), AnalysisError> {
    let summarized =
        t.broad_used_addresses <= KEPT_VALUES as u64 && t.broad_used_ports <= KEPT_VALUES as u64;
    let folded = if summarized {
        records.fold_summaries(
            <(UsesFold, DeniedFold)>::default,
            |(uses, deny), w: TopicWindow<RuleView>| {
                uses.add(&w);
                if denied {
                    deny.add(w);
                }
            },
        )?
    } else {
        None
    };
    let mut denied_rules = None;
    let (span, hit, mut used) = match folded {
        Some((f, deny)) => {
            let (span, hit, used) = f.finish();
            if denied {
                denied_rules = Some(deny.finish(t));
            }
            (span, hit, Some(used))
        }
        None => {
            let span = records.sql("SELECT MIN(start), MAX(\"end\") FROM records".into())?;
            let span = match span.first() {
                Some(r) if r.opt_text(0).is_some() => Some((r.u64(0)?, r.u64(1)?)),
                _ => None,
            };
            (span, recorded_hits(records)?, None)
        }
    };
    let (start, end) = span.unwrap_or((
        records.time.since.unwrap_or(0),
        records.time.until.unwrap_or(0),
    ));
    let table = RuleTable::from_inventory(inv);
    let specials = [
        "default-deny",
        "implicit-allow",
        "stateful-return",
        "tracked-connection",
    ];
    let mut u = Usage {
        start,
        end,
        ..Usage::default()
    };
    for (_, info) in table.iter() {
        if specials.contains(&info.id.as_str()) {
            continue;
        }
        let key = (
            info.stage.as_str().to_string(),
            info.owner.clone(),
            info.id.clone(),
        );
        match hit.get(&key) {
            None => u.unused.push(key),
            Some(&h) => {
                let Some((net, port_span)) = breadth(inv, t, &key) else {
                    continue;
                };
                let net = net.filter(|_| h.remotes <= t.broad_used_addresses);
                let port_span = port_span.filter(|_| h.ports <= t.broad_used_ports);
                if net.is_some() || port_span.is_some() {
                    u.broad.push(BroadRule {
                        key,
                        hits: (h.flows, h.packets, h.bytes, h.first, h.last),
                        net,
                        used_addresses: Vec::new(),
                        port_span,
                        used_ports: Vec::new(),
                    });
                }
            }
        }
    }
    // The observed use of the broad rules (few values each, by the test
    // above).
    if !u.broad.is_empty() {
        let used = match used.take() {
            Some(used) => used,
            None => recorded_uses(records, &u.broad)?,
        };
        for b in &mut u.broad {
            let (addresses, ports) = used.get(&b.key).cloned().unwrap_or_default();
            if b.net.is_some() {
                b.used_addresses = addresses.into_iter().collect();
            }
            if b.port_span.is_some() {
                b.used_ports = ports.into_iter().collect();
            }
        }
    }
    u.hits = hit;
    Ok((u, denied_rules))
}

/// The remote addresses and destination ports that used each rule.
type Used = HashMap<RuleKey, (BTreeSet<IpAddr>, BTreeSet<u16>)>;

/// Hits of every rule, both checks, over every flow log, from the records.
fn recorded_hits(records: &Records<'_>) -> Result<HashMap<RuleKey, Hits>, AnalysisError> {
    let hits = records.sql(format!(
        "SELECT stage, policy, rule, COUNT(*), SUM(packets), SUM(bytes), MIN(start), MAX(\"end\"), \
           COUNT(DISTINCT CASE WHEN direction = 'ingress' THEN srcaddr ELSE dstaddr END), \
           COUNT(DISTINCT dstport) \
         FROM ({BOTH_CHECKS}) GROUP BY stage, policy, rule"
    ))?;
    let mut hit: HashMap<RuleKey, Hits> = HashMap::new();
    for r in &hits {
        let (Some(stage), Some(policy), Some(rule)) = (r.opt_text(0), r.opt_text(1), r.opt_text(2))
        else {
            continue;
        };
        hit.insert(
            (stage, policy, rule),
            Hits {
                flows: r.u64(3)?,
                packets: r.u64(4)?,
                bytes: r.u64(5)?,
                first: r.u64(6)?,
                last: r.u64(7)?,
                remotes: r.u64(8)?,
                ports: r.u64(9)?,
            },
        );
    }
    Ok(hit)
}

/// The use of the `broad` rules, from the records.
fn recorded_uses(records: &Records<'_>, broad: &[BroadRule]) -> Result<Used, AnalysisError> {
    let wanted: Vec<String> = broad
        .iter()
        .map(|b| {
            format!(
                "(stage = {} AND policy = {} AND rule = {})",
                quote(&b.key.0),
                quote(&b.key.1),
                quote(&b.key.2)
            )
        })
        .collect();
    let rows = records.sql(format!(
        "SELECT DISTINCT stage, policy, rule, \
           CASE WHEN direction = 'ingress' THEN srcaddr ELSE dstaddr END, dstport \
         FROM ({BOTH_CHECKS}) WHERE {}",
        wanted.join(" OR ")
    ))?;
    let mut used = Used::new();
    for r in &rows {
        let key = (
            r.text(0)?.to_string(),
            r.text(1)?.to_string(),
            r.text(2)?.to_string(),
        );
        let (addresses, ports) = used.entry(key).or_default();
        if let Some(a) = r.opt_text(3).and_then(|a| a.parse().ok()) {
            addresses.insert(a);
        }
        if let Some(p) = r.opt_text(4).and_then(|p| p.parse().ok()) {
            ports.insert(p);
        }
    }
    Ok(used)
}

/// Hits and use of every rule from the window summaries, folded one
/// window at a time. A rule's distinct remotes and ports are exact up to
/// [`KEPT_VALUES`], and only known to be more past it.
#[derive(Default)]
struct UsesFold {
    span: Option<(u64, u64)>,
    hits: HashMap<RuleKey, Hits>,
    used: Used,
    /// (rule, remotes or ports) with more than [`KEPT_VALUES`].
    more: HashSet<(RuleKey, bool)>,
}

impl UsesFold {
    fn add(&mut self, w: &TopicWindow<RuleView>) {
        let (start, end) = (w.summary.start, w.summary.end);
        self.span = Some(
            self.span
                .map_or((start, end), |(a, b)| (a.min(start), b.max(end))),
        );
        for r in &w.summary.rules {
            let key = (r.stage.clone(), r.policy_id.clone(), r.rule_id.clone());
            let h = self.hits.entry(key.clone()).or_insert(Hits {
                first: start,
                last: end,
                ..Hits::default()
            });
            h.flows = h.flows.saturating_add(r.flows);
            h.packets = h.packets.saturating_add(r.packets);
            h.bytes = h.bytes.saturating_add(r.bytes);
            h.first = h.first.min(start);
            h.last = h.last.max(end);
            let (addresses, ports) = self.used.entry(key.clone()).or_default();
            addresses.extend(r.remotes.iter().filter_map(|a| a.parse::<IpAddr>().ok()));
            ports.extend(r.dstports.iter().copied());
            // Past the kept values only "more" matters: keep the sets small.
            let more_remotes = r.more_remotes || addresses.len() > KEPT_VALUES;
            let more_ports = r.more_dstports || ports.len() > KEPT_VALUES;
            while addresses.len() > KEPT_VALUES {
                addresses.pop_last();
            }
            while ports.len() > KEPT_VALUES {
                ports.pop_last();
            }
            if more_remotes {
                self.more.insert((key.clone(), true));
            }
            if more_ports {
                self.more.insert((key, false));
            }
        }
    }

    fn finish(mut self) -> (Option<(u64, u64)>, HashMap<RuleKey, Hits>, Used) {
        let past = KEPT_VALUES as u64 + 1;
        for (key, h) in &mut self.hits {
            let (addresses, ports) = &self.used[key];
            let count = |n: usize, remotes: bool| {
                let n = n as u64;
                if self.more.contains(&(key.clone(), remotes)) {
                    n.max(past)
                } else {
                    n
                }
            };
            h.remotes = count(addresses.len(), true);
            h.ports = count(ports.len(), false);
        }
        (self.span, self.hits, self.used)
    }
}

/// What every rule of `inv` (and every implicit decision) decided or let
/// pass over `records`, in rule-table order: `--rule-stats` over the
/// store's range instead of one run.
pub fn hits(records: &Records<'_>, inv: &Inventory) -> Result<Vec<Finding>, AnalysisError> {
    let u = usage(records, inv, &RuleThresholds::default())?;
    let table = RuleTable::from_inventory(inv);
    Ok(table
        .iter()
        .map(|(_, info)| {
            let key = (
                info.stage.as_str().to_string(),
                info.owner.clone(),
                info.id.clone(),
            );
            let h = u.hits.get(&key).copied();
            let c = h.unwrap_or_default();
            Finding {
                kind: "rule-hits",
                start: h.map_or(u.start, |h| h.first),
                end: h.map_or(u.end, |h| h.last),
                decided_by: Some(key.0),
                policy_id: Some(key.1),
                rule_id: Some(key.2),
                connections: Some(c.flows),
                packets: Some(c.packets),
                bytes: Some(c.bytes),
                ..Finding::default()
            }
        })
        .collect())
}

fn join<T: ToString>(v: &[T]) -> String {
    v.iter().map(T::to_string).collect::<Vec<_>>().join(", ")
}

/// Every rule finding over `records`, for the rules of `inv`.
pub fn find(
    records: &Records<'_>,
    inv: &Inventory,
    t: &RuleThresholds,
) -> Result<Vec<Finding>, AnalysisError> {
    let (u, denied_rules) = usage_and_denied(records, inv, t, true)?;
    let mut out = shadowed(inv, u.start, u.end);
    for key in &u.unused {
        out.push(Finding {
            kind: "unused-rule",
            start: u.start,
            end: u.end,
            decided_by: Some(key.0.clone()),
            policy_id: Some(key.1.clone()),
            rule_id: Some(key.2.clone()),
            connections: Some(0),
            packets: Some(0),
            bytes: Some(0),
            detail: Some("decided nothing and let nothing pass in the range".into()),
            ..Finding::default()
        });
    }
    for b in &u.broad {
        let mut said = Vec::new();
        if let Some(net) = b.net {
            said.push(format!(
                "allows {net}, used by {} address(es): {}",
                b.used_addresses.len(),
                join(&b.used_addresses)
            ));
        }
        if let Some(span) = b.port_span {
            said.push(format!(
                "allows {span} ports, used: {}",
                join(&b.used_ports)
            ));
        }
        let (flows, packets, bytes, first, last) = b.hits;
        out.push(Finding {
            kind: "broad-rule",
            start: first,
            end: last,
            decided_by: Some(b.key.0.clone()),
            policy_id: Some(b.key.1.clone()),
            rule_id: Some(b.key.2.clone()),
            connections: Some(flows),
            packets: Some(packets),
            bytes: Some(bytes),
            detail: Some(said.join("; ")),
            ..Finding::default()
        });
    }
    let denied_rules = match denied_rules {
        Some(d) => d,
        None => recorded_denied(records, t)?,
    };
    out.extend(denied(denied_rules));
    out.sort_by(|a, b| {
        (
            a.kind,
            &a.flow_log_id,
            &a.decided_by,
            &a.policy_id,
            &a.rule_id,
        )
            .cmp(&(
                b.kind,
                &b.flow_log_id,
                &b.decided_by,
                &b.policy_id,
                &b.rule_id,
            ))
    });
    Ok(out)
}

/// Deny rules and default denies that rejected traffic, per flow log, with
/// their top sources.
fn denied(rules: Vec<DeniedRule>) -> Vec<Finding> {
    rules
        .into_iter()
        .map(|d| {
            let [flow_log_id, decided_by, policy_id, rule_id] = d.key;
            Finding {
                kind: "denied-hits",
                flow_log_id: flow_log_id.unwrap_or_default(),
                start: d.first,
                end: d.last,
                srcaddr: d.top.first().map(|(a, _)| a.clone()),
                decided_by,
                policy_id,
                rule_id,
                connections: Some(d.flows),
                packets: Some(d.packets),
                bytes: Some(d.bytes),
                sources: Some(d.sources),
                dstports: Some(d.dstports),
                actions: Some("REJECT".into()),
                detail: Some(format!(
                    "top sources: {}",
                    d.top
                        .iter()
                        .map(|(a, n)| format!("{a} ({n} flows)"))
                        .collect::<Vec<_>>()
                        .join(", ")
                )),
                ..Finding::default()
            }
        })
        .collect()
}

/// What one deny rule of one flow log rejected over the range.
#[derive(Debug, Default)]
struct DeniedRule {
    /// Flow log, decided-by, policy, rule.
    key: [Option<String>; 4],
    flows: u64,
    packets: u64,
    bytes: u64,
    sources: u64,
    dstports: u64,
    first: u64,
    last: u64,
    /// The top sources, most flows first (then the least address text).
    top: Vec<(String, u64)>,
}

fn recorded_denied(
    records: &Records<'_>,
    t: &RuleThresholds,
) -> Result<Vec<DeniedRule>, AnalysisError> {
    let keys = "flow_log_id, decided_by, policy_id, rule_id";
    let condition = "log_status = 'OK' AND action = 'REJECT'";
    let rows = records.sql(format!(
        "SELECT {keys}, COUNT(*), SUM(packets), SUM(bytes), COUNT(DISTINCT srcaddr), \
           COUNT(DISTINCT dstport), MIN(start), MAX(\"end\") \
         FROM records WHERE {condition} GROUP BY {keys}"
    ))?;
    if rows.is_empty() {
        return Ok(Vec::new());
    }
    let top = records.sql(format!(
        "SELECT {keys}, srcaddr, n FROM (\
           SELECT {keys}, srcaddr, COUNT(*) AS n, ROW_NUMBER() OVER (\
             PARTITION BY {keys} ORDER BY COUNT(*) DESC, srcaddr) AS rank \
           FROM records WHERE {condition} GROUP BY {keys}, srcaddr) \
         WHERE rank <= {} ORDER BY {keys}, rank",
        t.denied_top_sources
    ))?;
    let key = |r: &crate::Row| -> [Option<String>; 4] { std::array::from_fn(|i| r.opt_text(i)) };
    let mut sources: HashMap<[Option<String>; 4], Vec<(String, u64)>> = HashMap::new();
    for r in &top {
        sources
            .entry(key(r))
            .or_default()
            .push((r.opt_text(4).unwrap_or_default(), r.u64(5)?));
    }
    rows.iter()
        .map(|r| {
            Ok(DeniedRule {
                key: key(r),
                flows: r.u64(4)?,
                packets: r.u64(5)?,
                bytes: r.u64(6)?,
                sources: r.u64(7)?,
                dstports: r.u64(8)?,
                first: r.u64(9)?,
                last: r.u64(10)?,
                top: sources.get(&key(r)).cloned().unwrap_or_default(),
            })
        })
        .collect()
}

/// What deny rules rejected, from the window summaries, folded one window
/// at a time.
#[derive(Default)]
struct DeniedFold(BTreeMap<[Option<String>; 4], DeniedSoFar>);

/// A deny rule's totals so far, every source with its flows, and every
/// destination port.
type DeniedSoFar = (DeniedRule, HashMap<String, u64>, BTreeSet<u16>);

impl DeniedFold {
    fn add(&mut self, w: TopicWindow<RuleView>) {
        let (start, end) = (w.summary.start, w.summary.end);
        for d in w.summary.denied {
            let key = [Some(d.flow_log_id), d.decided_by, d.policy_id, d.rule_id];
            let (m, sources, ports) = self.0.entry(key.clone()).or_insert_with(|| {
                let rule = DeniedRule {
                    key,
                    first: start,
                    last: end,
                    ..DeniedRule::default()
                };
                (rule, HashMap::new(), BTreeSet::new())
            });
            m.flows = m.flows.saturating_add(d.flows);
            m.packets = m.packets.saturating_add(d.packets);
            m.bytes = m.bytes.saturating_add(d.bytes);
            m.first = m.first.min(start);
            m.last = m.last.max(end);
            for (a, n) in d.sources {
                let s = sources.entry(a).or_default();
                *s = s.saturating_add(n);
            }
            ports.extend(d.dstports);
        }
    }

    fn finish(self, t: &RuleThresholds) -> Vec<DeniedRule> {
        self.0
            .into_values()
            .map(|(mut m, sources, ports)| {
                m.sources = sources.len() as u64;
                m.dstports = ports.len() as u64;
                let mut top: Vec<(String, u64)> = sources.into_iter().collect();
                top.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
                top.truncate(t.denied_top_sources as usize);
                m.top = top;
                m
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const INVENTORY: &str = r#"
region = "r"
[[project]]
id = "p"
[[vpc]]
id = "v"
project = "p"
cidr = "10.0.0.0/16"
[[subnet]]
id = "s"
vpc = "v"
cidr = "10.0.1.0/24"
network_acl = "acl"
[[port]]
id = "port"
subnet = "s"
ips = ["10.0.1.10"]
security_groups = ["g"]
[[security_group]]
id = "g"
project = "p"
[[security_group.rule]]
id = "web"
direction = "ingress"
protocol = "tcp"
multiport = "80,443"
remote_ip_prefix = "0.0.0.0/0"
[[security_group.rule]]
id = "https-office"
direction = "ingress"
protocol = "tcp"
multiport = "443"
remote_ip_prefix = "203.0.113.0/24"
priority = 2
[[security_group.rule]]
id = "deny-one"
direction = "ingress"
protocol = "tcp"
multiport = "80"
remote_ip_prefix = "198.51.100.7"
action = "deny"
priority = 3
[[security_group.rule]]
id = "ssh"
direction = "ingress"
protocol = "tcp"
multiport = "22"
remote_ip_prefix = "203.0.113.0/24"
[[security_group.rule]]
id = "any-icmp"
direction = "ingress"
remote_ip_prefix = "10.0.0.0/8"
[[security_group.rule]]
id = "ping"
direction = "ingress"
protocol = "icmp"
remote_ip_prefix = "10.0.1.0/24"
priority = 5
[[network_acl]]
id = "acl"
project = "p"
[[network_acl.ingress_rule]]
name = "all-in"
action = "allow"
source_ip_address = "0.0.0.0/0"
[[network_acl.ingress_rule]]
name = "no-telnet"
action = "deny"
protocol = "tcp"
source_ip_address = "198.51.100.0/24"
destination_port = "23"
[[network_acl.ingress_rule]]
name = "no-telnet-anywhere"
action = "deny"
protocol = "tcp"
destination_port = "23"
"#;

    #[test]
    fn shadowed_rules_from_the_rules_alone() {
        let inv = Inventory::from_toml("t.toml", INVENTORY).unwrap();
        let found: Vec<(String, String)> = shadowed(&inv, 0, 0)
            .into_iter()
            .map(|f| (f.rule_id.unwrap(), f.detail.unwrap()))
            .collect();
        let rules: Vec<&str> = found.iter().map(|(r, _)| r.as_str()).collect();
        // https-office (priority 2) is inside web's 0.0.0.0/0 on 443: redundant;
        // deny-one (priority 3) comes after web allows all of port 80: never
        // takes effect; ping is inside any-icmp (all protocols, 10/8);
        // no-telnet (IPv4 sources) comes after all-in (0.0.0.0/0), but
        // no-telnet-anywhere also matches IPv6, which all-in does not.
        assert_eq!(
            rules,
            ["https-office", "deny-one", "ping", "no-telnet"],
            "{found:?}"
        );
        assert!(found[0].1.contains("by web") && found[0].1.contains("redundant"));
        assert!(found[1].1.contains("never takes effect"));
        assert!(found[3].1.contains("by all-in"));
    }

    #[test]
    fn coverage_of_ports_prefixes_and_protocols() {
        assert!(ranges_cover(&[], &[(1, 2)]));
        assert!(ranges_cover(&[], &[]));
        assert!(
            !ranges_cover(&[(1, 100)], &[]),
            "ports do not cover portless protocols"
        );
        assert!(ranges_cover(&[(1, 100)], &[(5, 6), (100, 100)]));
        assert!(!ranges_cover(&[(1, 100)], &[(99, 101)]));
        let n = |s: &str| s.parse::<IpNet>().unwrap();
        assert!(net_covers(None, Some(&n("10.0.0.0/8"))));
        assert!(!net_covers(Some(&n("10.0.0.0/8")), None));
        assert!(net_covers(Some(&n("10.0.0.0/8")), Some(&n("10.1.0.0/16"))));
        assert!(!net_covers(Some(&n("10.1.0.0/16")), Some(&n("10.0.0.0/8"))));
        assert!(protocol_covers(
            ProtocolMatch::Any,
            ProtocolMatch::Number(6)
        ));
        assert!(!protocol_covers(
            ProtocolMatch::Number(6),
            ProtocolMatch::Any
        ));
    }
}
