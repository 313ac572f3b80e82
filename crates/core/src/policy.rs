//! The verdict interface: the one narrow door through which security groups
//! and network ACLs decide a flow's `action`.
//!
//! The aggregator asks once per new flow per window, in first-seen order, and
//! stores the answer; a policy keeps whatever connection state it needs.

use crate::flow::{Action, Direction, FiveTuple};
use crate::time::Timestamp;
use crate::topology::PortInfo;

/// A new flow, as the policy sees it.
#[derive(Debug, Clone, Copy)]
pub struct FlowQuery<'a> {
    /// The port the record belongs to.
    pub port: &'a PortInfo,
    /// Index of that port in the topology.
    pub port_index: u32,
    /// Its direction on the port.
    pub direction: Direction,
    /// The flow.
    pub tuple: FiveTuple,
    /// TCP flags of the first packet (or OR of a kernel delta).
    pub tcp_flags: u8,
}

/// A rule of the topology's rule table ([`crate::Topology::rules`]), or
/// [`RuleRef::NONE`]. 16 bits keep a flow entry at 40 bytes; a deployment
/// may have up to 65,535 rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct RuleRef(pub u16);

impl RuleRef {
    /// No rule: the flow was not evaluated by security groups or ACLs.
    pub const NONE: RuleRef = RuleRef(0);
}

/// What the policy decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    /// ACCEPT or REJECT.
    pub action: Action,
    /// The rule that decided: for REJECT the one that denied; for ACCEPT the
    /// last check on the packet's way (the ACL on egress, the security group
    /// on ingress), `stateful-return`, or none.
    pub rule: RuleRef,
    /// For ACCEPT, the other stage's allowing rule (counted in rule hits).
    pub also: RuleRef,
}

impl Decision {
    /// ACCEPT with no rule attribution.
    pub const ACCEPT: Decision = Decision {
        action: Action::Accept,
        rule: RuleRef::NONE,
        also: RuleRef::NONE,
    };
}

/// Decides ACCEPT/REJECT for new flows.
pub trait Policy {
    /// Decides `flow`, first seen at `now`.
    fn decide(&mut self, now: Timestamp, flow: &FlowQuery<'_>) -> Decision;
}

/// Accepts everything: the policy of `--ports-from` ports, and of every port
/// until security groups and ACLs are evaluated.
#[derive(Debug, Clone, Copy, Default)]
pub struct AcceptAll;

impl Policy for AcceptAll {
    fn decide(&mut self, _now: Timestamp, _flow: &FlowQuery<'_>) -> Decision {
        Decision::ACCEPT
    }
}

impl<P: Policy + ?Sized> Policy for Box<P> {
    fn decide(&mut self, now: Timestamp, flow: &FlowQuery<'_>) -> Decision {
        (**self).decide(now, flow)
    }
}

impl<P: Policy + ?Sized> Policy for &mut P {
    fn decide(&mut self, now: Timestamp, flow: &FlowQuery<'_>) -> Decision {
        (**self).decide(now, flow)
    }
}
