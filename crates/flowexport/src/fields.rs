//! The information elements vpcflow reads (IANA's IPFIX registry; NetFlow
//! v9's field types share the numbers below 128).

/// An information element a flow record is made of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Element {
    /// `octetDeltaCount` (1).
    Octets,
    /// `packetDeltaCount` (2).
    Packets,
    /// `protocolIdentifier` (4).
    Protocol,
    /// `tcpControlBits` (6).
    TcpFlags,
    /// `sourceTransportPort` (7).
    SrcPort,
    /// `sourceIPv4Address` (8).
    SrcV4,
    /// `ingressInterface` (10).
    InputInterface,
    /// `destinationTransportPort` (11).
    DstPort,
    /// `destinationIPv4Address` (12).
    DstV4,
    /// `egressInterface` (14).
    OutputInterface,
    /// `flowEndSysUpTime` (21), milliseconds of the exporter's uptime.
    EndUptime,
    /// `flowStartSysUpTime` (22).
    StartUptime,
    /// `sourceIPv6Address` (27).
    SrcV6,
    /// `destinationIPv6Address` (28).
    DstV6,
    /// `icmpTypeCodeIPv4` (32).
    IcmpTypeCode,
    /// `flowDirection` (61): 0 ingress, 1 egress.
    FlowDirection,
    /// `octetTotalCount` (85), used when there is no delta count.
    OctetTotal,
    /// `packetTotalCount` (86).
    PacketTotal,
    /// `icmpTypeCodeIPv6` (139).
    Icmp6TypeCode,
    /// `flowStartSeconds` (150).
    StartSeconds,
    /// `flowEndSeconds` (151).
    EndSeconds,
    /// `flowStartMilliseconds` (152).
    StartMillis,
    /// `flowEndMilliseconds` (153).
    EndMillis,
    /// `flowStartDeltaMicroseconds` (158): microseconds before the export.
    StartDeltaMicros,
    /// `flowEndDeltaMicroseconds` (159).
    EndDeltaMicros,
    /// `systemInitTimeMilliseconds` (160): when the exporter's uptime began.
    SystemInitMillis,
    /// `icmpTypeIPv4` (176) or `icmpTypeIPv6` (178), as Open vSwitch
    /// exports them.
    IcmpType,
    /// `icmpCodeIPv4` (177) or `icmpCodeIPv6` (179).
    IcmpCode,
    /// Anything else (skipped).
    Other,
}

impl Element {
    /// The element of IANA number `id` (enterprise elements are
    /// [`Element::Other`]).
    pub fn of(id: u16, enterprise: bool) -> Element {
        if enterprise {
            return Element::Other;
        }
        match id {
            1 => Element::Octets,
            2 => Element::Packets,
            4 => Element::Protocol,
            6 => Element::TcpFlags,
            7 => Element::SrcPort,
            8 => Element::SrcV4,
            10 => Element::InputInterface,
            11 => Element::DstPort,
            12 => Element::DstV4,
            14 => Element::OutputInterface,
            21 => Element::EndUptime,
            22 => Element::StartUptime,
            27 => Element::SrcV6,
            28 => Element::DstV6,
            32 => Element::IcmpTypeCode,
            61 => Element::FlowDirection,
            85 => Element::OctetTotal,
            86 => Element::PacketTotal,
            139 => Element::Icmp6TypeCode,
            150 => Element::StartSeconds,
            151 => Element::EndSeconds,
            152 => Element::StartMillis,
            153 => Element::EndMillis,
            158 => Element::StartDeltaMicros,
            159 => Element::EndDeltaMicros,
            160 => Element::SystemInitMillis,
            176 | 178 => Element::IcmpType,
            177 | 179 => Element::IcmpCode,
            _ => Element::Other,
        }
    }
}
