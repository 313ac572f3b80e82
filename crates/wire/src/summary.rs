//! A whole frame, link layer to transport ports, reduced to an [`IpSummary`].

use std::net::IpAddr;

use crate::Skip;
use crate::ipv4::Ipv4Packet;
use crate::ipv6::{self, Ipv6Packet};
use crate::link::{self, IpVersionHint, LinkType};
use crate::transport::{IpProtocol, TcpFlags, TransportFields, transport_fields};

/// IP fragmentation fields of a fragment (IPv4 with MF or an offset, or
/// IPv6 with a fragment header).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Fragment {
    /// Identification (16 bits for IPv4, 32 for IPv6).
    pub id: u32,
    /// Offset in 8-byte units; 0 for the first fragment.
    pub offset: u16,
    /// More fragments follow.
    pub more: bool,
}

/// What a flow record needs from one packet: typed, validated, copied out of
/// the frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpSummary {
    /// Source address (outer header for tunnels).
    pub src: IpAddr,
    /// Destination address.
    pub dst: IpAddr,
    /// Upper-layer protocol (after IPv6 extension headers).
    pub protocol: IpProtocol,
    /// Layer-3 bytes per SPEC §2.
    pub ip_bytes: u32,
    /// Source port; 0 for protocols without ports and for non-first fragments.
    pub src_port: u16,
    /// Destination port; 0 likewise.
    pub dst_port: u16,
    /// TCP flags; empty for other protocols.
    pub tcp_flags: TcpFlags,
    /// ICMP or ICMPv6 message type; `None` for other protocols, non-first
    /// fragments and a cut header.
    pub icmp_type: Option<u8>,
    /// Fragmentation fields, when the packet is a fragment.
    pub fragment: Option<Fragment>,
    /// The capture cut the transport header before its ports or flags.
    pub transport_truncated: bool,
}

impl IpSummary {
    fn new(
        src: IpAddr,
        dst: IpAddr,
        protocol: IpProtocol,
        ip_bytes: usize,
        t: TransportFields,
        fragment: Option<Fragment>,
    ) -> IpSummary {
        IpSummary {
            src,
            dst,
            protocol,
            // Bounded by a 16-bit length field or by the frame's u32 wire length.
            ip_bytes: u32::try_from(ip_bytes).unwrap_or(u32::MAX),
            src_port: t.src_port,
            dst_port: t.dst_port,
            tcp_flags: t.tcp_flags,
            icmp_type: t.icmp_type,
            fragment,
            transport_truncated: t.truncated,
        }
    }

    /// A fragment other than the first: its ports are not in this packet.
    pub fn is_later_fragment(&self) -> bool {
        self.fragment.is_some_and(|f| f.offset != 0)
    }
}

/// Parses a captured frame.
///
/// `wire_len` is the frame's length on the wire (pcap `orig_len`); it can be
/// larger than `frame.len()` when a snap length cut the capture.
pub fn parse_frame(link: LinkType, frame: &[u8], wire_len: u32) -> Result<IpSummary, Skip> {
    let (offset, hint) = link::network_layer(link, frame)?;
    let ip = frame.get(offset..).ok_or(Skip::TruncatedIpHeader)?;
    // IP bytes that were on the wire, whatever the capture kept of them.
    let on_wire = (wire_len as usize).max(frame.len()).saturating_sub(offset);
    let version = ip.first().ok_or(Skip::TruncatedIpHeader)? >> 4;
    match (hint, version) {
        (IpVersionHint::V4 | IpVersionHint::Either, 4) => parse_ipv4(ip, on_wire),
        (IpVersionHint::V6 | IpVersionHint::Either, 6) => parse_ipv6(ip, on_wire),
        _ => Err(Skip::BadIpVersion),
    }
}

fn parse_ipv4(ip: &[u8], on_wire: usize) -> Result<IpSummary, Skip> {
    let p = Ipv4Packet::new_checked(ip)?;
    let header_len = p.header_len();
    let total = usize::from(p.total_len());
    let ip_bytes = match total {
        0 => on_wire,
        t if t < header_len || t > on_wire => return Err(Skip::BadIpLength),
        t => t,
    };
    let protocol = IpProtocol(p.protocol());
    let fragment = (p.more_fragments() || p.frag_offset() != 0).then(|| Fragment {
        id: u32::from(p.ident()),
        offset: p.frag_offset(),
        more: p.more_fragments(),
    });
    let payload = &ip[header_len..ip_bytes.min(ip.len()).max(header_len)];
    let t = if fragment.is_some_and(|f| f.offset != 0) {
        Default::default()
    } else {
        transport_fields(protocol, payload)
    };
    Ok(IpSummary::new(
        p.src().into(),
        p.dst().into(),
        protocol,
        ip_bytes,
        t,
        fragment,
    ))
}

fn parse_ipv6(ip: &[u8], on_wire: usize) -> Result<IpSummary, Skip> {
    let p = Ipv6Packet::new_checked(ip)?;
    let ip_bytes = match usize::from(p.payload_len()) {
        0 => on_wire,
        n if ipv6::HEADER_LEN + n > on_wire => return Err(Skip::BadIpLength),
        n => ipv6::HEADER_LEN + n,
    };
    let up = p.upper_layer(ip_bytes)?;
    let protocol = IpProtocol(up.protocol);
    let mut t = if up.fragment.is_some_and(|f| f.offset != 0) {
        Default::default()
    } else {
        let end = ip_bytes.min(ip.len());
        transport_fields(protocol, ip.get(up.offset..end).unwrap_or(&[]))
    };
    t.truncated |= up.cut;
    Ok(IpSummary::new(
        p.src().into(),
        p.dst().into(),
        protocol,
        ip_bytes,
        t,
        up.fragment,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ipv4_udp(total_len: u16, frag: u16) -> Vec<u8> {
        let mut f = vec![0u8; 12];
        f.extend_from_slice(&[0x08, 0x00]);
        f.extend_from_slice(&[0x45, 0]);
        f.extend_from_slice(&total_len.to_be_bytes());
        f.extend_from_slice(&[0xab, 0xcd]);
        f.extend_from_slice(&frag.to_be_bytes());
        f.extend_from_slice(&[64, 17, 0, 0, 192, 168, 0, 154, 192, 168, 3, 25]);
        f.extend_from_slice(&[0x98, 0x11, 0x00, 0x35, 0, 76, 0, 0]);
        f.resize(14 + 96, 0);
        f
    }

    #[test]
    fn seed_example_udp_dns_packet() {
        let f = ipv4_udp(96, 0);
        let s = parse_frame(LinkType::Ethernet, &f, f.len() as u32).unwrap();
        assert_eq!(s.src.to_string(), "192.168.0.154");
        assert_eq!(s.dst.to_string(), "192.168.3.25");
        assert_eq!((s.src_port, s.dst_port), (38929, 53));
        assert_eq!(s.protocol, IpProtocol::UDP);
        assert_eq!(s.ip_bytes, 96);
        assert_eq!(s.fragment, None);
    }

    #[test]
    fn snap_length_cut_still_counts_the_ip_length() {
        let f = ipv4_udp(96, 0);
        let s = parse_frame(LinkType::Ethernet, &f[..42], f.len() as u32).unwrap();
        assert_eq!(s.ip_bytes, 96);
        assert_eq!(s.dst_port, 53);
    }

    #[test]
    fn ethernet_padding_is_not_counted() {
        let mut f = ipv4_udp(28, 0);
        f.truncate(14 + 28);
        f.resize(60, 0);
        let s = parse_frame(LinkType::Ethernet, &f, 60).unwrap();
        assert_eq!(s.ip_bytes, 28);
    }

    #[test]
    fn zero_total_length_counts_bytes_carried() {
        let f = ipv4_udp(0, 0);
        let s = parse_frame(LinkType::Ethernet, &f, 14 + 9000).unwrap();
        assert_eq!(s.ip_bytes, 9000);
    }

    #[test]
    fn bad_lengths_are_named() {
        let f = ipv4_udp(10, 0);
        assert_eq!(
            parse_frame(LinkType::Ethernet, &f, f.len() as u32),
            Err(Skip::BadIpLength)
        );
        let f = ipv4_udp(2000, 0);
        assert_eq!(
            parse_frame(LinkType::Ethernet, &f, f.len() as u32),
            Err(Skip::BadIpLength)
        );
    }

    #[test]
    fn later_fragment_has_no_ports() {
        let f = ipv4_udp(96, 0x0010);
        let s = parse_frame(LinkType::Ethernet, &f, f.len() as u32).unwrap();
        assert_eq!((s.src_port, s.dst_port), (0, 0));
        assert!(s.is_later_fragment());
        assert_eq!(s.fragment.unwrap().id, 0xabcd);
        let first = ipv4_udp(96, 0x2000);
        let s = parse_frame(LinkType::Ethernet, &first, first.len() as u32).unwrap();
        assert_eq!(s.dst_port, 53);
        assert!(!s.is_later_fragment());
        assert!(s.fragment.unwrap().more);
    }

    #[test]
    fn version_must_match_the_link_layer() {
        let mut f = ipv4_udp(96, 0);
        f[14] = 0x65;
        assert_eq!(
            parse_frame(LinkType::Ethernet, &f, f.len() as u32),
            Err(Skip::BadIpVersion)
        );
        assert_eq!(
            parse_frame(LinkType::Raw, &[0x15; 30], 30),
            Err(Skip::BadIpVersion)
        );
    }

    #[test]
    fn raw_ipv6_tcp_syn() {
        let mut p = vec![0x60, 0, 0, 0, 0, 20, 6, 64];
        p.extend_from_slice(&[
            0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0x20,
        ]);
        p.extend_from_slice(&[
            0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0x01,
        ]);
        p.extend_from_slice(&[0xc0, 0x00, 0x00, 0x16, 0, 0, 0, 0, 0, 0, 0, 0, 0x50, 0x02]);
        p.extend_from_slice(&[0; 6]);
        let s = parse_frame(LinkType::Raw, &p, p.len() as u32).unwrap();
        assert_eq!(s.src.to_string(), "2001:db8:0:1::20");
        assert_eq!(s.ip_bytes, 60);
        assert_eq!((s.src_port, s.dst_port), (49152, 22));
        assert!(s.tcp_flags.contains(TcpFlags::SYN));
    }

    proptest! {
        #[test]
        fn never_panics(link in 0u32..300, data in proptest::collection::vec(any::<u8>(), 0..200), extra in 0u32..3000) {
            let _ = parse_frame(LinkType::from_number(link), &data, data.len() as u32 + extra);
        }

        #[test]
        fn ip_bytes_never_exceed_the_wire(data in proptest::collection::vec(any::<u8>(), 0..200)) {
            let mut frame = vec![0u8; 12];
            frame.extend_from_slice(&[0x08, 0x00]);
            frame.extend_from_slice(&data);
            if let Ok(s) = parse_frame(LinkType::Ethernet, &frame, frame.len() as u32) {
                prop_assert!(s.ip_bytes as usize <= frame.len() - 14);
            }
        }
    }
}
