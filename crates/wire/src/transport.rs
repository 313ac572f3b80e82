//! Transport-layer values a flow record keeps: ports and TCP flags.

use std::fmt;

/// An IANA protocol number. Unknown numbers are kept as they are, so an odd
/// protocol still reaches the record instead of vanishing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct IpProtocol(pub u8);

impl IpProtocol {
    /// ICMP.
    pub const ICMP: IpProtocol = IpProtocol(1);
    /// TCP.
    pub const TCP: IpProtocol = IpProtocol(6);
    /// UDP.
    pub const UDP: IpProtocol = IpProtocol(17);
    /// DCCP.
    pub const DCCP: IpProtocol = IpProtocol(33);
    /// GRE.
    pub const GRE: IpProtocol = IpProtocol(47);
    /// ESP.
    pub const ESP: IpProtocol = IpProtocol(50);
    /// ICMPv6.
    pub const ICMPV6: IpProtocol = IpProtocol(58);
    /// SCTP.
    pub const SCTP: IpProtocol = IpProtocol(132);
    /// UDP-Lite.
    pub const UDPLITE: IpProtocol = IpProtocol(136);

    /// Whether the first byte of this protocol's header is a message type
    /// (ICMP, ICMPv6).
    pub fn has_message_type(self) -> bool {
        matches!(self, IpProtocol::ICMP | IpProtocol::ICMPV6)
    }

    /// Whether the first four bytes of this protocol's header are source and
    /// destination ports. ICMP, ICMPv6 and the rest have none (ports are 0).
    pub fn has_ports(self) -> bool {
        matches!(
            self,
            IpProtocol::TCP
                | IpProtocol::UDP
                | IpProtocol::DCCP
                | IpProtocol::SCTP
                | IpProtocol::UDPLITE
        )
    }
}

impl fmt::Display for IpProtocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// The TCP flags byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct TcpFlags(pub u8);

impl TcpFlags {
    /// FIN.
    pub const FIN: u8 = 0x01;
    /// SYN.
    pub const SYN: u8 = 0x02;
    /// RST.
    pub const RST: u8 = 0x04;
    /// PSH.
    pub const PSH: u8 = 0x08;
    /// ACK.
    pub const ACK: u8 = 0x10;

    /// Whether every bit of `mask` is set.
    pub fn contains(self, mask: u8) -> bool {
        self.0 & mask == mask
    }
    /// Whether any bit of `mask` is set.
    pub fn intersects(self, mask: u8) -> bool {
        self.0 & mask != 0
    }
}

/// Ports and flags read from the start of an upper-layer header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TransportFields {
    /// Source port (0 when the protocol has none).
    pub src_port: u16,
    /// Destination port (0 when the protocol has none).
    pub dst_port: u16,
    /// TCP flags (empty for other protocols).
    pub tcp_flags: TcpFlags,
    /// The ICMP or ICMPv6 message type (`None` for other protocols and when
    /// the capture cut it).
    pub icmp_type: Option<u8>,
    /// The capture cut the header before the ports (or, for TCP, the flags).
    pub truncated: bool,
}

/// Reads ports and TCP flags from `header`, the captured upper-layer bytes.
pub fn transport_fields(protocol: IpProtocol, header: &[u8]) -> TransportFields {
    if protocol.has_message_type() {
        return TransportFields {
            icmp_type: header.first().copied(),
            ..TransportFields::default()
        };
    }
    if !protocol.has_ports() {
        return TransportFields::default();
    }
    let mut t = TransportFields::default();
    match header.get(..4) {
        Some(p) => {
            t.src_port = u16::from_be_bytes([p[0], p[1]]);
            t.dst_port = u16::from_be_bytes([p[2], p[3]]);
        }
        None => {
            t.truncated = true;
            return t;
        }
    }
    if protocol == IpProtocol::TCP {
        match header.get(13) {
            Some(&f) => t.tcp_flags = TcpFlags(f),
            None => t.truncated = true,
        }
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tcp_ports_and_flags() {
        let mut h = [0u8; 20];
        h[..4].copy_from_slice(&[0x98, 0x11, 0x00, 0x50]);
        h[13] = TcpFlags::SYN | TcpFlags::ACK;
        let t = transport_fields(IpProtocol::TCP, &h);
        assert_eq!((t.src_port, t.dst_port), (38929, 80));
        assert!(t.tcp_flags.contains(TcpFlags::SYN | TcpFlags::ACK));
        assert!(!t.tcp_flags.intersects(TcpFlags::FIN | TcpFlags::RST));
        assert!(!t.truncated);
    }

    #[test]
    fn portless_protocols_and_truncation() {
        assert_eq!(
            transport_fields(IpProtocol::ICMP, &[8, 0, 1, 2, 3, 4]),
            TransportFields {
                icmp_type: Some(8),
                ..TransportFields::default()
            }
        );
        assert_eq!(
            transport_fields(IpProtocol::ICMPV6, &[135]).icmp_type,
            Some(135)
        );
        let t = transport_fields(IpProtocol::ICMPV6, &[]);
        assert!(t.icmp_type.is_none());
        assert_eq!(
            transport_fields(IpProtocol::GRE, &[8, 0]),
            TransportFields::default()
        );
        let t = transport_fields(IpProtocol::UDP, &[0, 53]);
        assert!(t.truncated);
        assert_eq!((t.src_port, t.dst_port), (0, 0));
        let t = transport_fields(IpProtocol::TCP, &[0, 1, 0, 2, 0, 0]);
        assert!(t.truncated);
        assert_eq!((t.src_port, t.dst_port), (1, 2));
        assert_eq!(t.tcp_flags, TcpFlags(0));
    }
}
