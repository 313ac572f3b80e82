//! A least-privilege inventory from the traffic of a range (`vpcflow
//! analyze rules --suggest FILE`), checked against that traffic before it
//! is offered.
//!
//! From the original inventory file (edited in place with `toml_edit`, so
//! everything else in it stays as written):
//! - an allow rule that decided nothing and let nothing pass is removed
//!   (an unused deny rule stays: removing it would widen what passes);
//! - a broad allow rule ([`crate::rules::BroadRule`]) is narrowed to its
//!   observed use: one rule per remote address that used it, and (for a
//!   security group) the ports used as its `multiport`, or (for an ACL) the
//!   range from the lowest to the highest port used.
//!
//! Every flow the range accepted by a rule (not as return traffic, not as
//! infrastructure) is then replayed through the policy engine of the
//! suggested inventory: a flow it would reject is reported
//! (`newly-rejected`), and a suggestion with any is not to be written.
//! Rules without an id in a changed group or ACL list get one (their
//! position-derived id, written out) so that removing a rule renumbers
//! nothing.

use std::collections::HashMap;
use std::net::IpAddr;

use toml_edit::{ArrayOfTables, DocumentMut, Item, Table, value};
use vpcflow_core::flow::FiveTuple;
use vpcflow_core::inventory::rules::RuleAction;
use vpcflow_core::{Action, Direction, Inventory, Topology};
use vpcflow_policy::PolicyEngine;
use vpcflow_wire::IpProtocol;

use crate::rules::{BroadRule, RuleThresholds, usage};
use crate::{AnalysisError, Finding, Records};

/// A suggested inventory and what backs it.
#[derive(Debug, Clone)]
pub struct Suggestion {
    /// The suggested inventory file.
    pub toml: String,
    /// What changed (kind `suggested-change`).
    pub changes: Vec<Finding>,
    /// Accepted flows of the range the suggestion would reject (kind
    /// `newly-rejected`); the suggestion is only sound when this is empty.
    pub newly_rejected: Vec<Finding>,
    /// Accepted flows replayed.
    pub checked: u64,
}

/// What to do with one rule.
#[derive(Debug, Clone)]
enum Change {
    Remove,
    Narrow(BroadRule),
}

/// Changes by (policy-id, rule-id).
type Plan = HashMap<(String, String), Change>;

/// How one list of rules names and narrows its rules.
struct RuleList<'a> {
    /// The security group or ACL.
    policy: &'a str,
    /// A rule's id as the inventory gives it (from its position if it has
    /// none).
    id_of: &'a dyn Fn(usize, &Table) -> String,
    /// The id written out for a rule that has none, from its position.
    positional: &'a dyn Fn(usize) -> String,
    /// Whether a rule already has an id of its own.
    named: &'a dyn Fn(&Table) -> bool,
    /// The key of the remote prefix.
    remote: &'a str,
    /// Writes a rule's used ports.
    narrow_ports: &'a dyn Fn(&mut Table, &[u16]),
}

/// Applies `plan` to one list of rules.
fn apply(
    rules: &ArrayOfTables,
    list: &RuleList<'_>,
    plan: &Plan,
    changes: &mut Vec<Finding>,
) -> ArrayOfTables {
    let policy = list.policy;
    let mut out = ArrayOfTables::new();
    for (n, original) in rules.iter().enumerate() {
        let id = (list.id_of)(n, original);
        let mut r = original.clone();
        if !(list.named)(&r) {
            // Written out, so that a removal before it renumbers nothing.
            r.insert("id", value((list.positional)(n)));
        }
        let r = &r;
        let finding = |detail: String| Finding {
            kind: "suggested-change",
            policy_id: Some(policy.to_string()),
            rule_id: Some(id.clone()),
            detail: Some(detail),
            ..Finding::default()
        };
        match plan.get(&(policy.to_string(), id.clone())) {
            None => out.push(r.clone()),
            Some(Change::Remove) => {
                changes.push(finding("removed: an allow rule nothing used".into()));
            }
            Some(Change::Narrow(b)) => {
                let mut base = r.clone();
                let mut said = Vec::new();
                if b.port_span.is_some() && !b.used_ports.is_empty() {
                    (list.narrow_ports)(&mut base, &b.used_ports);
                    said.push(format!("ports narrowed to the {} used", b.used_ports.len()));
                }
                if b.net.is_some() && !b.used_addresses.is_empty() {
                    let stem = r
                        .get("id")
                        .and_then(Item::as_str)
                        .map_or(id.clone(), str::to_string);
                    let ids: Vec<String> = (1..=b.used_addresses.len())
                        .map(|k| format!("{stem}.{k}"))
                        .collect();
                    for (a, new_id) in b.used_addresses.iter().zip(&ids) {
                        let mut copy = base.clone();
                        copy.insert(list.remote, value(a.to_string()));
                        copy.insert("id", value(new_id.clone()));
                        out.push(copy);
                    }
                    said.push(format!(
                        "split into {} rule(s), one per address that used it: {}",
                        ids.len(),
                        ids.join(", ")
                    ));
                } else {
                    out.push(base);
                }
                changes.push(finding(said.join("; ")));
            }
        }
    }
    out
}

fn tables_mut<'a>(t: &'a mut Table, key: &str) -> Option<&'a mut ArrayOfTables> {
    t.get_mut(key).and_then(Item::as_array_of_tables_mut)
}

/// The suggestion for `records` from the inventory file `text` (named
/// `name` in errors).
pub fn suggest(
    records: &Records<'_>,
    name: &str,
    text: &str,
    t: &RuleThresholds,
) -> Result<Suggestion, AnalysisError> {
    let inv =
        Inventory::from_toml(name, text).map_err(|e| AnalysisError::Inventory(e.to_string()))?;
    let u = usage(records, &inv, t)?;
    let is_allow = |policy: &str, rule: &str| {
        inv.security_groups
            .iter()
            .filter(|g| g.id == policy)
            .flat_map(|g| g.rules.iter().map(|r| (&r.id, r.action)))
            .chain(
                inv.network_acls
                    .iter()
                    .filter(|a| a.id == policy)
                    .flat_map(|a| a.ingress.iter().chain(&a.egress).map(|r| (&r.id, r.action))),
            )
            .any(|(id, action)| id == rule && action == RuleAction::Allow)
    };
    let mut plan = Plan::new();
    for (_, policy, rule) in &u.unused {
        if is_allow(policy, rule) {
            plan.insert((policy.clone(), rule.clone()), Change::Remove);
        }
    }
    for b in &u.broad {
        plan.insert(
            (b.key.1.clone(), b.key.2.clone()),
            Change::Narrow(b.clone()),
        );
    }
    let touched = |policy: &str| plan.keys().any(|(p, _)| p == policy);

    let mut doc: DocumentMut = text
        .parse()
        .map_err(|e| AnalysisError::Inventory(format!("{name}: {e}")))?;
    let mut changes = Vec::new();
    if let Some(groups) = doc
        .get_mut("security_group")
        .and_then(Item::as_array_of_tables_mut)
    {
        for g in groups.iter_mut() {
            let Some(gid) = g.get("id").and_then(Item::as_str).map(str::to_string) else {
                continue;
            };
            if !touched(&gid) {
                continue;
            }
            let Some(rules) = tables_mut(g, "rule") else {
                continue;
            };
            let positional = |n: usize| format!("{gid}.{}", n + 1);
            let id_of = |n: usize, r: &Table| {
                r.get("id")
                    .and_then(Item::as_str)
                    .map_or_else(|| format!("{gid}/{}", n + 1), str::to_string)
            };
            let list = RuleList {
                policy: &gid,
                id_of: &id_of,
                positional: &positional,
                named: &|r: &Table| r.contains_key("id"),
                remote: "remote_ip_prefix",
                narrow_ports: &|r: &mut Table, ports: &[u16]| {
                    let list: Vec<String> = ports.iter().map(u16::to_string).collect();
                    r.insert("multiport", value(list.join(",")));
                },
            };
            let planned = apply(rules, &list, &plan, &mut changes);
            *rules = planned;
        }
    }
    if let Some(acls) = doc
        .get_mut("network_acl")
        .and_then(Item::as_array_of_tables_mut)
    {
        for a in acls.iter_mut() {
            let Some(aid) = a.get("id").and_then(Item::as_str).map(str::to_string) else {
                continue;
            };
            if !touched(&aid) {
                continue;
            }
            for (key, dir, remote) in [
                ("ingress_rule", "ingress", "source_ip_address"),
                ("egress_rule", "egress", "destination_ip_address"),
            ] {
                let Some(rules) = tables_mut(a, key) else {
                    continue;
                };
                let id_of = |n: usize, r: &Table| {
                    r.get("id")
                        .or_else(|| r.get("name"))
                        .and_then(Item::as_str)
                        .map_or_else(|| format!("{dir}-{}", n + 1), str::to_string)
                };
                let positional = |n: usize| format!("{dir}-{}", n + 1);
                let list = RuleList {
                    policy: &aid,
                    id_of: &id_of,
                    positional: &positional,
                    named: &|r: &Table| r.contains_key("id") || r.contains_key("name"),
                    remote,
                    narrow_ports: &|r: &mut Table, ports: &[u16]| {
                        let (lo, hi) = (ports[0], ports[ports.len() - 1]);
                        let range = if lo == hi {
                            lo.to_string()
                        } else {
                            format!("{lo}-{hi}")
                        };
                        r.insert("destination_port", value(range));
                    },
                };
                let planned = apply(rules, &list, &plan, &mut changes);
                *rules = planned;
            }
        }
    }
    let toml = doc.to_string();

    // The check: every flow the range's rules accepted, through the
    // suggested inventory's rules.
    let suggested = Inventory::from_toml("the suggested inventory", &toml)
        .map_err(|e| AnalysisError::Inventory(e.to_string()))?;
    let topology = Topology::from_inventory(&suggested);
    let engine = PolicyEngine::new(&suggested, &topology, 1);
    let flows = records.sql(
        "SELECT DISTINCT interface_id, direction, srcaddr, dstaddr, srcport, dstport, protocol \
         FROM records WHERE log_status = 'OK' AND action = 'ACCEPT' \
           AND rule_id NOT IN ('stateful-return', 'tracked-connection') \
           AND NOT (rule_id = 'implicit-allow' AND decided_by IN ('sg-ingress', 'sg-egress')) \
           AND NOT (passed_rule_id IS NOT NULL AND passed_rule_id = 'implicit-allow' \
                    AND passed_by IN ('sg-ingress', 'sg-egress'))"
            .into(),
    )?;
    let ports: HashMap<&str, usize> = suggested
        .ports
        .iter()
        .enumerate()
        .map(|(i, p)| (p.id.as_str(), i))
        .collect();
    let mut newly_rejected = Vec::new();
    let mut checked = 0;
    for r in &flows {
        let port_id = r.text(0)?;
        let Some(&port) = ports.get(port_id) else {
            continue;
        };
        let direction = if r.text(1)? == "ingress" {
            Direction::Ingress
        } else {
            Direction::Egress
        };
        let address = |i: usize| -> Result<IpAddr, AnalysisError> {
            let t = r.text(i)?;
            t.parse()
                .map_err(|_| AnalysisError::Answer(format!("{t:?} is not an address")))
        };
        let protocol = u8::try_from(r.u64(6)?)
            .map_err(|_| AnalysisError::Answer("a protocol past 255".into()))?;
        let port_number = |i: usize| -> Result<u16, AnalysisError> {
            u16::try_from(r.u64(i)?).map_err(|_| AnalysisError::Answer("a port past 65535".into()))
        };
        let tuple = FiveTuple::new(
            address(2)?,
            address(3)?,
            port_number(4)?,
            port_number(5)?,
            IpProtocol(protocol),
            None,
        );
        checked += 1;
        let d = engine.evaluate_tuple(port, direction, &tuple);
        if d.action == Action::Reject {
            let rule = topology.rules.get(d.rule);
            newly_rejected.push(Finding {
                kind: "newly-rejected",
                interface_id: Some(port_id.to_string()),
                direction: Some(direction.as_str().to_string()),
                srcaddr: Some(tuple.src.to_string()),
                dstaddr: Some(tuple.dst.to_string()),
                srcport: Some(u64::from(tuple.src_port)),
                dstport: Some(u64::from(tuple.dst_port)),
                protocol: Some(u64::from(protocol)),
                decided_by: rule.map(|i| i.stage.as_str().to_string()),
                policy_id: rule.map(|i| i.owner.clone()),
                rule_id: rule.map(|i| i.id.clone()),
                ..Finding::default()
            });
        }
    }
    for f in changes.iter_mut().chain(&mut newly_rejected) {
        f.start = u.start;
        f.end = u.end;
    }
    Ok(Suggestion {
        toml,
        changes,
        newly_rejected,
        checked,
    })
}
