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

/// The unidirectional 5-tuple, and whether the flow is infrastructure
/// traffic.
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
    /// SPEC §1 infrastructure traffic ([`is_infrastructure`]). Part of the
    /// flow's identity: a neighbour solicitation and an echo request between
    /// the same two addresses print the same 5-tuple (ICMPv6 has no ports),
    /// yet one is always allowed and the other meets the rules, so they are
    /// two flows and two records.
    pub infrastructure: bool,
}

impl FiveTuple {
    /// The flow of a packet whose ICMP/ICMPv6 message type (if any) is
    /// `icmp_type`.
    pub fn new(
        src: IpAddr,
        dst: IpAddr,
        src_port: u16,
        dst_port: u16,
        protocol: IpProtocol,
        icmp_type: Option<u8>,
    ) -> FiveTuple {
        FiveTuple {
            src,
            dst,
            src_port,
            dst_port,
            protocol,
            infrastructure: is_infrastructure(protocol, src_port, dst_port, icmp_type),
        }
    }
}

/// ICMPv6 message types SPEC §1 always allows: multicast listener query,
/// report and done (130-132), router solicitation and advertisement,
/// neighbour solicitation and advertisement, redirect (133-137), and
/// multicast listener report v2 (143).
pub const INFRASTRUCTURE_ICMPV6_TYPES: [u8; 9] = [130, 131, 132, 133, 134, 135, 136, 137, 143];

/// UDP port pairs of DHCP (client 68, server and relay 67) and DHCPv6
/// (client 546, server and relay 547): both ends must be one of the pair,
/// so a flow merely sourced from port 68 is not waved through.
pub const INFRASTRUCTURE_UDP_PORTS: [[u16; 2]; 2] = [[67, 68], [546, 547]];

/// Whether a packet is traffic a cloud's network needs to work (SPEC §1):
/// IPv6 neighbour discovery, router discovery and multicast listener
/// messages, DHCP and DHCPv6. Security groups and network ACLs always allow
/// it; its records say ACCEPT `implicit-allow`.
pub fn is_infrastructure(
    protocol: IpProtocol,
    src_port: u16,
    dst_port: u16,
    icmp_type: Option<u8>,
) -> bool {
    match protocol {
        IpProtocol::ICMPV6 => icmp_type.is_some_and(|t| INFRASTRUCTURE_ICMPV6_TYPES.contains(&t)),
        IpProtocol::UDP => INFRASTRUCTURE_UDP_PORTS
            .iter()
            .any(|pair| pair.contains(&src_port) && pair.contains(&dst_port)),
        _ => false,
    }
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
    /// 1 when the packets were counted; N when they are estimates from
    /// sampling 1 packet in N.
    pub sampling_rate: u32,
}

/// A flow an exporter counted (NetFlow, IPFIX, sFlow), as
/// [`Pipeline::observe_exported`](crate::Pipeline::observe_exported) takes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExportedDelta {
    /// The flow.
    pub tuple: FiveTuple,
    /// Packets (estimated, when sampled).
    pub packets: u64,
    /// Layer-3 bytes (likewise).
    pub bytes: u64,
    /// OR of the TCP flags seen.
    pub tcp_flags: u8,
    /// Its first packet, on the exporter's clock.
    pub first: Timestamp,
    /// 1 when counted; N when estimated from 1-in-N samples.
    pub sampling_rate: u32,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn infrastructure_is_neighbour_discovery_mld_and_dhcp_only() {
        let v6 = IpProtocol::ICMPV6;
        for t in [130, 131, 132, 133, 134, 135, 136, 137, 143] {
            assert!(is_infrastructure(v6, 0, 0, Some(t)), "icmpv6 type {t}");
        }
        for t in [1, 2, 3, 4, 128, 129, 138, 139, 142, 144] {
            assert!(!is_infrastructure(v6, 0, 0, Some(t)), "icmpv6 type {t}");
        }
        assert!(
            !is_infrastructure(v6, 0, 0, None),
            "a cut header proves nothing"
        );
        // ICMP (v4) type 133 is not neighbour discovery.
        assert!(!is_infrastructure(IpProtocol::ICMP, 0, 0, Some(133)));
        let udp = IpProtocol::UDP;
        assert!(is_infrastructure(udp, 68, 67, None));
        assert!(is_infrastructure(udp, 67, 68, None));
        assert!(is_infrastructure(udp, 67, 67, None), "a relay");
        assert!(is_infrastructure(udp, 546, 547, None));
        assert!(is_infrastructure(udp, 547, 547, None));
        assert!(
            !is_infrastructure(udp, 68, 53, None),
            "only the source port is DHCP's"
        );
        assert!(!is_infrastructure(udp, 40000, 67, None));
        assert!(!is_infrastructure(udp, 68, 547, None));
        assert!(!is_infrastructure(IpProtocol::TCP, 68, 67, None));
    }

    #[test]
    fn the_class_is_part_of_the_flow() {
        let a: IpAddr = "2001:db8::1".parse().unwrap();
        let b: IpAddr = "2001:db8::2".parse().unwrap();
        let ns = FiveTuple::new(a, b, 0, 0, IpProtocol::ICMPV6, Some(135));
        let echo = FiveTuple::new(a, b, 0, 0, IpProtocol::ICMPV6, Some(128));
        assert!(ns.infrastructure && !echo.infrastructure);
        assert_ne!(ns, echo);
    }
}
