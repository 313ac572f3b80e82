//! The core's currency: [`FlowDelta`], a unidirectional flow on one port with
//! counters, and the small enums of the seed's vocabulary.

use std::fmt;
use std::net::IpAddr;

use vpcflow_wire::IpProtocol;

use crate::time::Timestamp;

/// Direction of traffic on a port: `ingress` is to it, `egress` from it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Direction {
    /// Traffic to the port.
    Ingress = 0,
    /// Traffic from the port.
    Egress = 1,
}

impl Direction {
    /// The seed's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Ingress => "ingress",
            Direction::Egress => "egress",
        }
    }
}

/// ACCEPT or REJECT, as security groups and network ACLs decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Action {
    /// Allowed by every check.
    Accept = 0,
    /// Denied by a security group or a network ACL.
    Reject = 1,
}

impl Action {
    /// The seed's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Accept => "ACCEPT",
            Action::Reject => "REJECT",
        }
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A flow log's traffic filter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TrafficType {
    /// Every record.
    All,
    /// ACCEPT records only.
    Accept,
    /// REJECT records only.
    Reject,
}

impl TrafficType {
    /// Parses the API/inventory spelling (`all`, `accept`, `reject`).
    pub fn parse(s: &str) -> Option<TrafficType> {
        match s {
            "all" => Some(TrafficType::All),
            "accept" => Some(TrafficType::Accept),
            "reject" => Some(TrafficType::Reject),
            _ => None,
        }
    }
    /// The API spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            TrafficType::All => "all",
            TrafficType::Accept => "accept",
            TrafficType::Reject => "reject",
        }
    }
    /// Index 0..3, for per-filter counters.
    pub fn index(self) -> usize {
        self as usize
    }
    /// Whether a record with `action` passes this filter.
    pub fn admits(self, action: Action) -> bool {
        match self {
            TrafficType::All => true,
            TrafficType::Accept => action == Action::Accept,
            TrafficType::Reject => action == Action::Reject,
        }
    }
    /// Every filter, in index order.
    pub const ALL: [TrafficType; 3] = [TrafficType::All, TrafficType::Accept, TrafficType::Reject];
}

/// The unidirectional 5-tuple.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FiveTuple {
    /// Source address.
    pub src: IpAddr,
    /// Destination address.
    pub dst: IpAddr,
    /// Source port (0 for protocols without ports).
    pub src_port: u16,
    /// Destination port.
    pub dst_port: u16,
    /// IANA protocol number.
    pub protocol: IpProtocol,
}

/// Some traffic of one unidirectional flow on one port: one packet for the
/// file and AF_PACKET sources, a kernel-side sum for the eBPF source.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlowDelta {
    /// Index of the port in the [`Topology`](crate::Topology).
    pub port: u32,
    /// Direction on that port.
    pub direction: Direction,
    /// The flow.
    pub tuple: FiveTuple,
    /// Packets.
    pub packets: u64,
    /// Layer-3 bytes.
    pub bytes: u64,
    /// OR of the TCP flags of every packet.
    pub flags_any: u8,
    /// AND of the TCP flags of every packet.
    pub flags_all: u8,
    /// When the first packet was seen.
    pub first: Timestamp,
}
