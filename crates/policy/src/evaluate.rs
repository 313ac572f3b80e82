//! Rule matching: pure functions of the engine's compiled inventory.

use std::net::{IpAddr, Ipv4Addr};

use vpcflow_core::RuleRef;
use vpcflow_core::flow::FiveTuple;
use vpcflow_core::inventory::rules::{
    AclRule, IpVersion, ProtocolMatch, Remote, RuleAction, RuleDirection, SecurityGroupRule,
};

use crate::{PolicyEngine, dir_index};

fn version(a: &IpAddr) -> IpVersion {
    if a.is_ipv4() {
        IpVersion::V4
    } else {
        IpVersion::V6
    }
}

fn protocol_matches(p: ProtocolMatch, flow: &FiveTuple) -> bool {
    match p {
        ProtocolMatch::Any => true,
        ProtocolMatch::Number(n) => n == flow.protocol.0,
    }
}

fn sg_rule_matches(
    e: &PolicyEngine,
    r: &SecurityGroupRule,
    flow: &FiveTuple,
    remote: &IpAddr,
) -> bool {
    if r.ethertype.is_some_and(|v| v != version(remote)) || !protocol_matches(r.protocol, flow) {
        return false;
    }
    // A rule restricted to ports matches only protocols that have ports.
    let ports_match =
        r.ports.0.is_empty() || (flow.protocol.has_ports() && r.ports.contains(flow.dst_port));
    if !ports_match {
        return false;
    }
    match &r.remote {
        Remote::Prefix(net) => net.contains(remote),
        Remote::Group(g) => e.members[*g].contains(remote),
    }
}

/// The port's groups in attach order; within a group by priority, deny
/// first; the first match decides; no match denies.
pub(crate) fn security_groups(
    e: &PolicyEngine,
    groups: &[usize],
    dir: RuleDirection,
    flow: &FiveTuple,
) -> (bool, RuleRef) {
    if flow.infrastructure {
        return (true, e.rules.sg_implicit_allow(dir));
    }
    let remote = match dir {
        RuleDirection::Ingress => flow.src,
        RuleDirection::Egress => flow.dst,
    };
    for &g in groups {
        let rules = &e.inv.security_groups[g].rules;
        for &i in &e.order[g][dir_index(dir)] {
            if sg_rule_matches(e, &rules[i], flow, &remote) {
                return (rules[i].action == RuleAction::Allow, e.rules.sg_rule(g, i));
            }
        }
    }
    (false, e.rules.sg_default_deny(dir))
}

fn in_range(range: Option<(u16, u16)>, port: u16, has_ports: bool) -> bool {
    match range {
        None => true,
        Some((lo, hi)) => has_ports && lo <= port && port <= hi,
    }
}

fn acl_rule_matches(r: &AclRule, flow: &FiveTuple) -> bool {
    let has_ports = flow.protocol.has_ports();
    protocol_matches(r.protocol, flow)
        && r.ip_version.is_none_or(|v| v == version(&flow.src))
        && r.source.is_none_or(|n| n.contains(&flow.src))
        && r.destination.is_none_or(|n| n.contains(&flow.dst))
        && in_range(r.source_ports, flow.src_port, has_ports)
        && in_range(r.destination_ports, flow.dst_port, has_ports)
}

const METADATA: IpAddr = IpAddr::V4(Ipv4Addr::new(169, 254, 169, 254));

/// Traffic SPEC §1 lets through every network ACL.
fn always_allowed(e: &PolicyEngine, subnet: usize, dir: RuleDirection, flow: &FiveTuple) -> bool {
    if flow.infrastructure {
        return true;
    }
    let same_subnet = |a: &IpAddr| e.subnet_of.get(a) == Some(&subnet);
    if same_subnet(&flow.src) && same_subnet(&flow.dst) {
        return true;
    }
    let (remote, remote_port) = match dir {
        RuleDirection::Ingress => (flow.src, flow.src_port),
        RuleDirection::Egress => (flow.dst, flow.dst_port),
    };
    let special = match remote {
        // 224.0.0.0/24 (local network control) and 100.125.0.0/16 (cloud services).
        IpAddr::V4(v) => matches!(v.octets(), [224, 0, 0, _] | [100, 125, _, _]),
        IpAddr::V6(_) => false,
    };
    special || (remote == METADATA && remote_port == 80 && flow.protocol.0 == 6)
}

/// Ordered rules, the first enabled match decides, then an implicit deny.
pub(crate) fn network_acl(
    e: &PolicyEngine,
    acl: usize,
    subnet: usize,
    dir: RuleDirection,
    flow: &FiveTuple,
) -> (bool, RuleRef) {
    if always_allowed(e, subnet, dir, flow) {
        return (true, e.rules.acl_implicit_allow(acl, dir));
    }
    let a = &e.inv.network_acls[acl];
    let rules = match dir {
        RuleDirection::Ingress => &a.ingress,
        RuleDirection::Egress => &a.egress,
    };
    for (i, r) in rules.iter().enumerate() {
        if r.enabled && acl_rule_matches(r, flow) {
            return (r.action == RuleAction::Allow, e.rules.acl_rule(acl, dir, i));
        }
    }
    (false, e.rules.acl_default_deny(acl, dir))
}
