//! The policy engine: security groups and network ACLs as SPEC §1 and §2
//! define them, behind the core's [`Policy`] interface.
//!
//! For a new flow on a port it answers ACCEPT or REJECT and which rule
//! decided ([`Decision`]). Egress traffic passes the port's security groups,
//! then its subnet's network ACL; ingress traffic the ACL, then the groups.
//! SPEC §1's infrastructure traffic (neighbour discovery, MLD, DHCP) is
//! allowed by both, as `implicit-allow`, and never tracked.
//! Both are stateful: [`conntrack`] remembers every decided connection per
//! port, so return traffic of an accepted connection is accepted
//! (`stateful-return`) and every packet of a rejected one stays rejected.
//!
//! Tracked connections outlive inventory changes: the engine of a new
//! inventory [`succeeds`](PolicyEngine::succeed) the old one and takes over
//! its accepted connections on the ports both monitor, so only new
//! connections meet the new rules. A connection whose deciding rule is gone
//! is attributed to `tracked-connection`. Rejected connections are not
//! carried: the new rules judge them afresh (a rule added to let them in
//! takes effect at once).
//!
//! Guarantees: no I/O, no clock (time is the `now` of each question); the
//! connection table is bounded (evictions are counted); verdicts of one port
//! never depend on another port's questions, so the order in which two
//! ports' records are computed cannot change them.

pub mod conntrack;
mod evaluate;
pub mod nft;

use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use hashbrown::{HashMap, HashSet};
use vpcflow_core::flow::FiveTuple;
use vpcflow_core::inventory::rules::{RuleAction, RuleDirection};
use vpcflow_core::inventory::{Inventory, SecurityGroup};
use vpcflow_core::policy::FlowQuery;
use vpcflow_core::rules::{RuleTable, Stage};
use vpcflow_core::{Action, Decision, Direction, Policy, RuleRef, Timestamp, Topology};

use conntrack::{Conn, Conntrack, Key, Lookup};

/// Counters of the engine.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EngineStats {
    /// Flows evaluated against the rules.
    pub evaluated: u64,
    /// Flows accepted as return traffic of an accepted connection.
    pub stateful_returns: u64,
    /// Flows that belong to a connection already decided (same verdict).
    pub tracked: u64,
    /// Connections taken over from the engine of the inventory before.
    pub inherited: u64,
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
    /// `interface-id` of every topology port (the conntrack's port numbers).
    port_ids: Vec<String>,
    /// Shared with the engine that succeeds this one, until it retires.
    tracked: Arc<Mutex<Tracked>>,
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
                        (r.priority, r.action != RuleAction::Deny)
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
            port_ids: topology.ports.iter().map(|p| p.id.clone()).collect(),
            tracked: Arc::new(Mutex::new(Tracked {
                table: Conntrack::new(max_connections),
                predecessor: None,
            })),
            last_decided: vec![None; topology.rules.len()],
            stats: EngineStats::default(),
        }
    }

    /// Counters.
    pub fn stats(&self) -> EngineStats {
        self.stats
    }

    /// Connections tracked now.
    pub fn connections(&self) -> usize {
        lock(&self.tracked).table.len()
    }

    /// Connections dropped to make room while still live.
    pub fn evicted(&self) -> u64 {
        lock(&self.tracked).table.evicted
    }

    /// Makes this engine (of a new inventory) the successor of `previous`:
    /// a connection `previous` accepted on a port both monitor keeps its
    /// verdict here, with its rule renumbered (or `tracked-connection` if
    /// the rule is gone). Until [`retire_predecessor`](Self::retire_predecessor),
    /// both engines may take questions (the old one for the window it
    /// still closes).
    pub fn succeed(&mut self, previous: &PolicyEngine) {
        let ours: HashMap<&str, u32, foldhash::fast::RandomState> = self
            .port_ids
            .iter()
            .enumerate()
            .map(|(i, id)| (id.as_str(), i as u32))
            .collect();
        let theirs: HashMap<&str, u32, foldhash::fast::RandomState> = previous
            .port_ids
            .iter()
            .enumerate()
            .map(|(i, id)| (id.as_str(), i as u32))
            .collect();
        let rules: HashMap<(Stage, &str, &str), RuleRef, foldhash::fast::RandomState> = self
            .rules
            .iter()
            .map(|(r, i)| ((i.stage, i.owner.as_str(), i.id.as_str()), r))
            .collect();
        let mut rule_map = vec![None; previous.rules.len()];
        for (r, i) in previous.rules.iter() {
            rule_map[usize::from(r.0)] = rules
                .get(&(i.stage, i.owner.as_str(), i.id.as_str()))
                .copied();
        }
        let predecessor = Predecessor {
            tracked: Arc::clone(&previous.tracked),
            ports: self
                .port_ids
                .iter()
                .map(|id| theirs.get(id.as_str()).copied())
                .collect(),
            ports_back: previous
                .port_ids
                .iter()
                .map(|id| ours.get(id.as_str()).copied())
                .collect(),
            rules: rule_map,
            tracked_connection: self.rules.tracked_connection(),
        };
        lock(&self.tracked).predecessor = Some(predecessor);
    }

    /// The engine this one succeeded is done: its accepted connections
    /// that are still live move here, and the link to it is dropped.
    pub fn retire_predecessor(&self, now: Timestamp) {
        lock(&self.tracked).absorb(now);
    }

    /// When each rule last decided a flow (indexed by [`RuleRef`]).
    pub fn last_decided(&self, r: RuleRef) -> Option<Timestamp> {
        self.last_decided.get(usize::from(r.0)).copied().flatten()
    }

    /// Evaluates the rules for a flow of inventory port `port`, ignoring
    /// connection state.
    pub fn evaluate(&self, port: usize, direction: Direction, flow: &FlowQuery<'_>) -> Decision {
        self.evaluate_tuple(port, direction, &flow.tuple)
    }

    /// [`evaluate`](Self::evaluate) of a bare 5-tuple (a stored record's,
    /// replayed against proposed rules).
    pub fn evaluate_tuple(&self, port: usize, direction: Direction, tuple: &FiveTuple) -> Decision {
        let p = &self.inv.ports[port];
        let dir = match direction {
            Direction::Ingress => RuleDirection::Ingress,
            Direction::Egress => RuleDirection::Egress,
        };
        let sg = || evaluate::security_groups(self, &p.security_groups, dir, tuple);
        let acl = || {
            self.inv.subnets[p.subnet]
                .network_acl
                .map(|a| evaluate::network_acl(self, a, p.subnet, dir, tuple))
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
        if flow.tuple.infrastructure {
            // Always allowed, and never a connection: the kernel leaves
            // neighbour discovery and MLD untracked, and were it tracked, an
            // echo request answering a neighbour solicitation would pass as
            // its return traffic (ICMPv6 tracking ignores the message type).
            self.stats.evaluated += 1;
            let d = self.evaluate(port, flow.direction, flow);
            self.note_decided(now, d);
            return d;
        }
        let mut tracked = lock(&self.tracked);
        let mut lookup = tracked
            .table
            .lookup(now, flow.port_index, &flow.tuple, flow.tcp_flags);
        if lookup == Lookup::New
            && let Some((key, conn)) = tracked.inherited(now, flow.port_index, &flow.tuple)
        {
            self.stats.inherited += 1;
            tracked.table.adopt(now, key, conn);
            lookup = tracked
                .table
                .lookup(now, flow.port_index, &flow.tuple, flow.tcp_flags);
        }
        let decision = match lookup {
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
                tracked
                    .table
                    .insert(now, flow.port_index, &flow.tuple, flow.tcp_flags, d);
                d
            }
        };
        drop(tracked);
        self.note_decided(now, decision);
        decision
    }
}

impl PolicyEngine {
    fn note_decided(&mut self, now: Timestamp, decision: Decision) {
        for r in [decision.rule, decision.also] {
            if let Some(slot) = self.last_decided.get_mut(usize::from(r.0))
                && r != RuleRef::NONE
            {
                *slot = Some(now);
            }
        }
    }
}

fn lock(m: &Mutex<Tracked>) -> MutexGuard<'_, Tracked> {
    // The table stays consistent whatever panicked while holding it: every
    // change to it is a single map operation.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// An engine's connection table and, until it retires, the engine it
/// succeeded.
#[derive(Debug)]
struct Tracked {
    table: Conntrack,
    predecessor: Option<Predecessor>,
}

/// The engine of the inventory before a change, and how its numbering of
/// ports and rules maps to its successor's.
#[derive(Debug)]
struct Predecessor {
    tracked: Arc<Mutex<Tracked>>,
    /// Successor's topology port -> predecessor's.
    ports: Vec<Option<u32>>,
    /// Predecessor's topology port -> successor's.
    ports_back: Vec<Option<u32>>,
    /// Predecessor's rule refs -> successor's (`None`: the rule is gone).
    rules: Vec<Option<RuleRef>>,
    /// The successor's ref for a decision whose rule is gone.
    tracked_connection: RuleRef,
}

impl Predecessor {
    fn translate(&self, d: Decision) -> Decision {
        let map = |r: RuleRef| {
            if r == RuleRef::NONE {
                Some(RuleRef::NONE)
            } else {
                self.rules.get(usize::from(r.0)).copied().flatten()
            }
        };
        Decision {
            action: d.action,
            rule: map(d.rule).unwrap_or(self.tracked_connection),
            also: map(d.also).unwrap_or(RuleRef::NONE),
        }
    }
}

impl Tracked {
    /// The accepted connection `t` belongs to on `port`, as the engines
    /// before this one track it, in this engine's numbering.
    fn inherited(&self, now: Timestamp, port: u32, t: &FiveTuple) -> Option<(Key, Conn)> {
        let p = self.predecessor.as_ref()?;
        let their_port = (*p.ports.get(port as usize)?)?;
        let (key, conn) = lock(&p.tracked).find(now, their_port, t)?;
        Some((
            key.on_port(port),
            conn.with_decision(p.translate(conn.decision)),
        ))
    }

    /// The accepted connection `t` belongs to on `port`: this table's, or
    /// if it knows none, its predecessors'. A connection this table
    /// rejected stops the search.
    fn find(&mut self, now: Timestamp, port: u32, t: &FiveTuple) -> Option<(Key, Conn)> {
        match self.table.find_accepted(now, port, t) {
            Ok(Some(found)) => Some(found),
            Ok(None) => self.inherited(now, port, t),
            Err(()) => None,
        }
    }

    /// Adopts every live accepted connection of the predecessors on a port
    /// this engine monitors, and drops the link.
    fn absorb(&mut self, now: Timestamp) {
        let Some(p) = self.predecessor.take() else {
            return;
        };
        let mut theirs = lock(&p.tracked);
        theirs.absorb(now);
        for (key, conn) in theirs.table.accepted(now) {
            if let Some(&Some(port)) = p.ports_back.get(key.port as usize) {
                let conn = conn.with_decision(p.translate(conn.decision));
                self.table.adopt(now, key.on_port(port), conn);
            }
        }
    }
}

#[cfg(test)]
mod tests;
