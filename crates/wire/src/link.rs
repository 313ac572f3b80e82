//! Link layers: from the start of a captured frame to the start of its IP header.
//!
//! Handles Ethernet II (with any stack of 802.1Q / 802.1ad / QinQ tags, MPLS
//! label stacks and PPPoE session frames), Linux cooked capture v1 and v2,
//! BSD loopback (`NULL`, either byte order, and `LOOP`), and raw IP link
//! types. Guarantees: never reads past the frame; returns where the IP
//! header starts and which IP version the link layer announced.

use crate::Skip;

/// The link type of a capture (pcap `LINKTYPE_*` / pcapng interface link type).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LinkType {
    /// `LINKTYPE_NULL` (0): BSD loopback, 4-byte address family in the capturing host's byte order.
    Null,
    /// `LINKTYPE_ETHERNET` (1).
    Ethernet,
    /// `LINKTYPE_RAW` (101, also 12 and 14 on some systems): the frame is an IP packet.
    Raw,
    /// `LINKTYPE_LOOP` (108): like `Null` but in network byte order.
    Loop,
    /// `LINKTYPE_LINUX_SLL` (113): Linux cooked capture v1.
    LinuxSll,
    /// `LINKTYPE_IPV4` (228).
    Ipv4,
    /// `LINKTYPE_IPV6` (229).
    Ipv6,
    /// `LINKTYPE_NFLOG` (239): Linux netfilter log messages.
    Nflog,
    /// `LINKTYPE_LINUX_SLL2` (276): Linux cooked capture v2.
    LinuxSll2,
    /// Any other link type, kept so it can be reported by number.
    Unknown(u32),
}

impl LinkType {
    /// Maps a pcap/pcapng link-type number.
    pub fn from_number(n: u32) -> LinkType {
        match n {
            0 => LinkType::Null,
            1 => LinkType::Ethernet,
            12 | 14 | 101 => LinkType::Raw,
            108 => LinkType::Loop,
            113 => LinkType::LinuxSll,
            228 => LinkType::Ipv4,
            229 => LinkType::Ipv6,
            239 => LinkType::Nflog,
            276 => LinkType::LinuxSll2,
            other => LinkType::Unknown(other),
        }
    }
}

/// Which IP version the link layer says follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IpVersionHint {
    /// The link layer said IPv4 (EtherType 0x0800, PPP 0x0021, AF_INET...).
    V4,
    /// The link layer said IPv6.
    V6,
    /// The link layer says "IP" without a version (raw IP, MPLS payload).
    Either,
}

/// EtherTypes vpcflow follows through.
pub mod ethertype {
    /// IPv4.
    pub const IPV4: u16 = 0x0800;
    /// IPv6.
    pub const IPV6: u16 = 0x86DD;
    /// 802.1Q VLAN tag.
    pub const VLAN: u16 = 0x8100;
    /// 802.1ad service tag (QinQ).
    pub const QINQ: u16 = 0x88A8;
    /// Pre-standard QinQ tags still seen in the wild.
    pub const QINQ_9100: u16 = 0x9100;
    /// Pre-standard QinQ tags still seen in the wild.
    pub const QINQ_9200: u16 = 0x9200;
    /// MPLS unicast.
    pub const MPLS: u16 = 0x8847;
    /// MPLS multicast.
    pub const MPLS_MULTICAST: u16 = 0x8848;
    /// PPPoE session stage.
    pub const PPPOE_SESSION: u16 = 0x8864;
    /// Cisco FabricPath: 2 bytes of FTag/TTL, then an inner Ethernet header.
    pub const FABRIC_PATH: u16 = 0x8903;
}

#[inline]
fn be16(data: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*data.get(at)?, *data.get(at + 1)?]))
}

/// Finds the IP header in `frame`: returns its offset and the announced version.
pub fn network_layer(link: LinkType, frame: &[u8]) -> Result<(usize, IpVersionHint), Skip> {
    match link {
        LinkType::Ethernet => {
            let ty = be16(frame, 12).ok_or(Skip::TruncatedLinkHeader)?;
            after_ethertype(frame, 14, ty)
        }
        LinkType::LinuxSll => {
            let ty = be16(frame, 14).ok_or(Skip::TruncatedLinkHeader)?;
            if frame.len() < 16 {
                return Err(Skip::TruncatedLinkHeader);
            }
            after_ethertype(frame, 16, ty)
        }
        LinkType::LinuxSll2 => {
            if frame.len() < 20 {
                return Err(Skip::TruncatedLinkHeader);
            }
            let ty = be16(frame, 0).ok_or(Skip::TruncatedLinkHeader)?;
            after_ethertype(frame, 20, ty)
        }
        LinkType::Null | LinkType::Loop => {
            let bytes: [u8; 4] = frame
                .get(..4)
                .and_then(|b| b.try_into().ok())
                .ok_or(Skip::TruncatedLinkHeader)?;
            // NULL is in the capturing host's byte order, which the file does not
            // record; the family values are small, so whichever order gives one is it.
            let be = u32::from_be_bytes(bytes);
            let le = u32::from_le_bytes(bytes);
            let family = if link == LinkType::Loop || be < 256 {
                be
            } else {
                le
            };
            match family {
                2 => Ok((4, IpVersionHint::V4)),
                // AF_INET6 on BSD/Darwin (24, 28, 30) and Linux (10).
                10 | 24 | 28 | 30 => Ok((4, IpVersionHint::V6)),
                _ => Err(Skip::NotIp),
            }
        }
        LinkType::Nflog => nflog_payload(frame),
        LinkType::Raw => Ok((0, IpVersionHint::Either)),
        LinkType::Ipv4 => Ok((0, IpVersionHint::V4)),
        LinkType::Ipv6 => Ok((0, IpVersionHint::V6)),
        LinkType::Unknown(_) => Err(Skip::UnsupportedLinkType),
    }
}

/// NFLOG: a 4-byte header (address family first), then TLVs whose length
/// and type are in the logging host's byte order; type 9 carries the packet.
fn nflog_payload(frame: &[u8]) -> Result<(usize, IpVersionHint), Skip> {
    const PAYLOAD: u16 = 9;
    let hint = match frame.first() {
        Some(2) => IpVersionHint::V4,
        Some(10) => IpVersionHint::V6,
        Some(_) => return Err(Skip::NotIp),
        None => return Err(Skip::TruncatedLinkHeader),
    };
    let mut off = 4;
    loop {
        let tlv = frame.get(off..off + 4).ok_or(Skip::TruncatedLinkHeader)?;
        // TLV types are small numbers, so the byte holding zero tells the order.
        let (len, ty) = if tlv[3] == 0 {
            (
                u16::from_le_bytes([tlv[0], tlv[1]]),
                u16::from_le_bytes([tlv[2], tlv[3]]),
            )
        } else {
            (
                u16::from_be_bytes([tlv[0], tlv[1]]),
                u16::from_be_bytes([tlv[2], tlv[3]]),
            )
        };
        if ty == PAYLOAD {
            return Ok((off + 4, hint));
        }
        if len < 4 {
            return Err(Skip::TruncatedLinkHeader);
        }
        off += usize::from(len).div_ceil(4) * 4;
    }
}

/// Follows VLAN tags, MPLS labels and PPPoE to the IP header.
fn after_ethertype(
    frame: &[u8],
    mut offset: usize,
    mut ty: u16,
) -> Result<(usize, IpVersionHint), Skip> {
    loop {
        match ty {
            ethertype::IPV4 => return Ok((offset, IpVersionHint::V4)),
            ethertype::IPV6 => return Ok((offset, IpVersionHint::V6)),
            ethertype::VLAN | ethertype::QINQ | ethertype::QINQ_9100 | ethertype::QINQ_9200 => {
                ty = be16(frame, offset + 2).ok_or(Skip::TruncatedLinkHeader)?;
                offset += 4;
            }
            ethertype::MPLS | ethertype::MPLS_MULTICAST => {
                loop {
                    let label = frame
                        .get(offset..offset + 4)
                        .ok_or(Skip::TruncatedLinkHeader)?;
                    offset += 4;
                    if label[2] & 1 == 1 {
                        break;
                    }
                }
                // MPLS does not say what it carries; IP is recognised by its version nibble.
                return match frame.get(offset).map(|b| b >> 4) {
                    Some(4) => Ok((offset, IpVersionHint::V4)),
                    Some(6) => Ok((offset, IpVersionHint::V6)),
                    Some(_) => Err(Skip::NotIp),
                    None => Err(Skip::TruncatedLinkHeader),
                };
            }
            ethertype::FABRIC_PATH => {
                ty = be16(frame, offset + 14).ok_or(Skip::TruncatedLinkHeader)?;
                offset += 16;
            }
            ethertype::PPPOE_SESSION => {
                let ppp = be16(frame, offset + 6).ok_or(Skip::TruncatedLinkHeader)?;
                offset += 8;
                return match ppp {
                    0x0021 => Ok((offset, IpVersionHint::V4)),
                    0x0057 => Ok((offset, IpVersionHint::V6)),
                    _ => Err(Skip::NotIp),
                };
            }
            _ => return Err(Skip::NotIp),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn eth(ty: u16, rest: &[u8]) -> Vec<u8> {
        let mut f = vec![0u8; 12];
        f.extend_from_slice(&ty.to_be_bytes());
        f.extend_from_slice(rest);
        f
    }

    #[test]
    fn ethernet_ipv4_and_ipv6() {
        assert_eq!(
            network_layer(LinkType::Ethernet, &eth(0x0800, &[0x45])),
            Ok((14, IpVersionHint::V4))
        );
        assert_eq!(
            network_layer(LinkType::Ethernet, &eth(0x86dd, &[0x60])),
            Ok((14, IpVersionHint::V6))
        );
    }

    #[test]
    fn arp_is_not_ip_and_short_frames_are_truncated() {
        assert_eq!(
            network_layer(LinkType::Ethernet, &eth(0x0806, &[0; 28])),
            Err(Skip::NotIp)
        );
        assert_eq!(
            network_layer(LinkType::Ethernet, &[0; 13]),
            Err(Skip::TruncatedLinkHeader)
        );
        // 802.3 length field instead of an EtherType.
        assert_eq!(
            network_layer(LinkType::Ethernet, &eth(0x0040, &[0; 10])),
            Err(Skip::NotIp)
        );
    }

    #[test]
    fn vlan_stacks_are_followed() {
        // 802.1ad outer tag, 802.1Q inner tag, then IPv4.
        let f = eth(0x88a8, &[0, 10, 0x81, 0x00, 0, 20, 0x08, 0x00, 0x45]);
        assert_eq!(
            network_layer(LinkType::Ethernet, &f),
            Ok((22, IpVersionHint::V4))
        );
        let cut = eth(0x8100, &[0, 10]);
        assert_eq!(
            network_layer(LinkType::Ethernet, &cut),
            Err(Skip::TruncatedLinkHeader)
        );
    }

    #[test]
    fn mpls_stack_ends_at_bottom_of_stack() {
        let f = eth(0x8847, &[0, 0x10, 0x00, 64, 0, 0x20, 0x01, 64, 0x60]);
        assert_eq!(
            network_layer(LinkType::Ethernet, &f),
            Ok((22, IpVersionHint::V6))
        );
        let no_ip = eth(0x8847, &[0, 0x10, 0x01, 64, 0x00]);
        assert_eq!(network_layer(LinkType::Ethernet, &no_ip), Err(Skip::NotIp));
    }

    #[test]
    fn pppoe_session_ipv4() {
        let f = eth(0x8864, &[0x11, 0, 0, 1, 0, 20, 0x00, 0x21, 0x45]);
        assert_eq!(
            network_layer(LinkType::Ethernet, &f),
            Ok((22, IpVersionHint::V4))
        );
        let lcp = eth(0x8864, &[0x11, 0, 0, 1, 0, 20, 0xc0, 0x21]);
        assert_eq!(network_layer(LinkType::Ethernet, &lcp), Err(Skip::NotIp));
    }

    #[test]
    fn cooked_and_loopback() {
        let mut sll = vec![0u8; 14];
        sll.extend_from_slice(&[0x08, 0x00, 0x45]);
        assert_eq!(
            network_layer(LinkType::LinuxSll, &sll),
            Ok((16, IpVersionHint::V4))
        );
        let mut sll2 = vec![0x86, 0xdd];
        sll2.extend_from_slice(&[0u8; 18]);
        assert_eq!(
            network_layer(LinkType::LinuxSll2, &sll2),
            Ok((20, IpVersionHint::V6))
        );
        assert_eq!(
            network_layer(LinkType::Null, &[2, 0, 0, 0, 0x45]),
            Ok((4, IpVersionHint::V4))
        );
        assert_eq!(
            network_layer(LinkType::Null, &[0, 0, 0, 30, 0x60]),
            Ok((4, IpVersionHint::V6))
        );
        assert_eq!(
            network_layer(LinkType::Loop, &[0, 0, 0, 2]),
            Ok((4, IpVersionHint::V4))
        );
        let mut nflog = vec![2, 0, 0, 0];
        nflog.extend_from_slice(&[8, 0, 1, 0, 0, 0, 0, 0]); // a TLV of type 1
        nflog.extend_from_slice(&[24, 0, 9, 0, 0x45]); // the payload TLV
        assert_eq!(
            network_layer(LinkType::Nflog, &nflog),
            Ok((16, IpVersionHint::V4))
        );
        let mut fp = vec![0u8; 12];
        fp.extend_from_slice(&[0x89, 0x03, 0, 0]);
        fp.extend_from_slice(&[0u8; 12]);
        fp.extend_from_slice(&[0x08, 0x00, 0x45]);
        assert_eq!(
            network_layer(LinkType::Ethernet, &fp),
            Ok((30, IpVersionHint::V4))
        );
        assert_eq!(
            network_layer(LinkType::Unknown(147), &[0; 40]),
            Err(Skip::UnsupportedLinkType)
        );
    }
}
