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

/// What the policy decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    /// ACCEPT or REJECT.
    pub action: Action,
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
        Decision {
            action: Action::Accept,
        }
    }
}

impl<P: Policy + ?Sized> Policy for &mut P {
    fn decide(&mut self, now: Timestamp, flow: &FlowQuery<'_>) -> Decision {
        (**self).decide(now, flow)
    }
}
