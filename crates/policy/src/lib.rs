//! The policy engine: security groups and network ACLs as SPEC §1 and §2
//! define them, behind the core's [`Policy`] interface.
//!
//! For a new flow on a port it answers ACCEPT or REJECT and which rule
//! decided ([`Decision`]). Egress traffic passes the port's security groups,
//! then its subnet's network ACL; ingress traffic the ACL, then the groups.
//! Both are stateful: [`conntrack`] remembers every decided connection per
//! port, so return traffic of an accepted connection is accepted
//! (`stateful-return`) and every packet of a rejected one stays rejected.
//!
//! Guarantees: no I/O, no clock (time is the `now` of each question); the
//! connection table is bounded (evictions are counted); verdicts of one port
//! never depend on another port's questions, so the order in which two
//! ports' records are computed cannot change them.

pub mod conntrack;
mod evaluate;
pub mod nft;

use std::net::IpAddr;

use hashbrown::{HashMap, HashSet};
use vpcflow_core::inventory::rules::{RuleAction, RuleDirection};
use vpcflow_core::inventory::{Inventory, SecurityGroup};
use vpcflow_core::policy::FlowQuery;
use vpcflow_core::rules::RuleTable;
use vpcflow_core::{Action, Decision, Direction, Policy, RuleRef, Timestamp, Topology};

use conntrack::{Conntrack, Lookup};

/// Counters of the engine.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EngineStats {
    /// Flows evaluated against the rules.
    pub evaluated: u64,
    /// Flows accepted as return traffic of an accepted connection.
    pub stateful_returns: u64,
    /// Flows that belong to a connection already decided (same verdict).
    pub tracked: u64,
}

/// Security groups and network ACLs of one inventory.
#[derive(Debug)]
pub struct PolicyEngine {
    inv: Inventory,
    rules: RuleTable,
    /// Per security group: the IPs of the ports that are its members.
    members: Vec<HashSet<IpAddr, foldhash::fast::RandomState>>,
    /// Per security group and direction: rule indices in evaluation order.
    order: Vec<[Vec<usize>; 2]>,
    /// Subnet of every port IP of the inventory (monitored or not).
    subnet_of: HashMap<IpAddr, usize, foldhash::fast::RandomState>,
    conntrack: Conntrack,
    last_decided: Vec<Option<Timestamp>>,
    stats: EngineStats,
}

/// Connections remembered at once by default.
pub const DEFAULT_CONNECTIONS: usize = 1 << 20;

/// The rules of a security group for one direction, in the order they are
/// tried: priority 1 first, deny before allow at equal priority, file order
/// otherwise.
pub fn evaluation_order(g: &SecurityGroup, d: RuleDirection) -> Vec<usize> {
    let mut v: Vec<usize> = (0..g.rules.len())
        .filter(|&i| g.rules[i].direction == d)
        .collect();
    // The sort is stable, so file order breaks the remaining ties.
    v.sort_by_key(|&i| {
        let r = &g.rules[i];
        (r.priority, r.action != RuleAction::Deny)
    });
    v
}

fn dir_index(d: RuleDirection) -> usize {
    match d {
        RuleDirection::Ingress => 0,
        RuleDirection::Egress => 1,
    }
}

impl PolicyEngine {
    /// An engine for `inv`, numbering rules as `topology.rules` does.
    pub fn new(inv: &Inventory, topology: &Topology, max_connections: usize) -> PolicyEngine {
        let mut members = vec![HashSet::default(); inv.security_groups.len()];
        let mut subnet_of = HashMap::default();
        for port in &inv.ports {
            for &g in &port.security_groups {
                members[g].extend(port.ips.iter().copied());
            }
            for ip in &port.ips {
                subnet_of.insert(*ip, port.subnet);
            }
        }
        let order = inv
            .security_groups
            .iter()
            .map(|g| {
                [RuleDirection::Ingress, RuleDirection::Egress].map(|d| {
                    let mut v: Vec<usize> = (0..g.rules.len())
                        .filter(|&i| g.rules[i].direction == d)
                        .collect();
                    // Priority 1 first; deny before allow at equal priority;
                    // file order otherwise (the sort is stable).
                    v.sort_by_key(|&i| {
                        let r = &g.rules[i];
                        (
                            r.priority,
                            r.action != vpcflow_core::inventory::rules::RuleAction::Deny,
                        )
                    });
                    v
                })
            })
            .collect();
        PolicyEngine {
            inv: inv.clone(),
            rules: topology.rules.clone(),
            members,
            order,
            subnet_of,
            conntrack: Conntrack::new(max_connections),
            last_decided: vec![None; topology.rules.len()],
            stats: EngineStats::default(),
        }
    }

    /// Counters.
    pub fn stats(&self) -> EngineStats {
        self.stats
    }

    /// The connection table (for its counters).
    pub fn conntrack(&self) -> &Conntrack {
        &self.conntrack
    }

    /// When each rule last decided a flow (indexed by [`RuleRef`]).
    pub fn last_decided(&self, r: RuleRef) -> Option<Timestamp> {
        self.last_decided.get(usize::from(r.0)).copied().flatten()
    }

    /// Evaluates the rules for a flow of inventory port `port`, ignoring
    /// connection state.
    pub fn evaluate(&self, port: usize, direction: Direction, flow: &FlowQuery<'_>) -> Decision {
        let p = &self.inv.ports[port];
        let dir = match direction {
            Direction::Ingress => RuleDirection::Ingress,
            Direction::Egress => RuleDirection::Egress,
        };
        let sg = || evaluate::security_groups(self, &p.security_groups, dir, &flow.tuple);
        let acl = || {
            self.inv.subnets[p.subnet]
                .network_acl
                .map(|a| evaluate::network_acl(self, a, p.subnet, dir, &flow.tuple))
        };
        // SPEC §2: egress meets the groups first, ingress the ACL first.
        let (first, second) = match dir {
            RuleDirection::Egress => (Some(sg()), acl()),
            RuleDirection::Ingress => (acl(), Some(sg())),
        };
        let checks: Vec<(bool, RuleRef)> = [first, second].into_iter().flatten().collect();
        if let Some(&(_, rule)) = checks.iter().find(|(allow, _)| !allow) {
            return Decision {
                action: Action::Reject,
                rule,
                also: RuleRef::NONE,
            };
        }
        let (rule, also) = match checks.as_slice() {
            [(_, a), (_, b)] => (*b, *a),
            [(_, a)] => (*a, RuleRef::NONE),
            _ => (RuleRef::NONE, RuleRef::NONE),
        };
        Decision {
            action: Action::Accept,
            rule,
            also,
        }
    }
}

impl Policy for PolicyEngine {
    fn decide(&mut self, now: Timestamp, flow: &FlowQuery<'_>) -> Decision {
        let Some(port) = flow.port.inventory_index else {
            return Decision::ACCEPT;
        };
        let decision =
            match self
                .conntrack
                .lookup(now, flow.port_index, &flow.tuple, flow.tcp_flags)
            {
                Lookup::Same(d) => {
                    self.stats.tracked += 1;
                    d
                }
                Lookup::Return(d) if d.action == Action::Accept => {
                    self.stats.stateful_returns += 1;
                    Decision {
                        action: Action::Accept,
                        rule: self.rules.stateful_return(),
                        also: RuleRef::NONE,
                    }
                }
                Lookup::Return(d) => {
                    self.stats.tracked += 1;
                    d
                }
                Lookup::New => {
                    self.stats.evaluated += 1;
                    let d = self.evaluate(port, flow.direction, flow);
                    self.conntrack
                        .insert(now, flow.port_index, &flow.tuple, flow.tcp_flags, d);
                    d
                }
            };
        for r in [decision.rule, decision.also] {
            if let Some(slot) = self.last_decided.get_mut(usize::from(r.0))
                && r != RuleRef::NONE
            {
                *slot = Some(now);
            }
        }
        decision
    }
}

#[cfg(test)]
mod tests;
