//! IPv6 header view and extension-header walk.
//!
//! [`Ipv6Packet::new_checked`] guarantees the 40-byte fixed header was
//! captured. [`Ipv6Packet::upper_layer`] walks the extension headers to the
//! upper-layer protocol, reading the fragment header on the way, and never
//! reads past the captured bytes or the packet's own length.

use std::net::Ipv6Addr;

use crate::{Fragment, Skip};

/// Fixed IPv6 header length.
pub const HEADER_LEN: usize = 40;

/// A read-only view of an IPv6 header over borrowed bytes.
#[derive(Debug, Clone, Copy)]
pub struct Ipv6Packet<T: AsRef<[u8]>> {
    buffer: T,
}

/// Where the extension headers end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UpperLayer {
    /// The upper-layer protocol (the last Next Header value).
    pub protocol: u8,
    /// Offset of the upper-layer header from the start of the IPv6 header.
    pub offset: usize,
    /// The fragment header, if one was present.
    pub fragment: Option<Fragment>,
    /// The capture ended inside the extension headers: `protocol` is the
    /// type of the header that was cut, and no ports can be read.
    pub cut: bool,
}

/// Next Header values that are extension headers with the generic
/// (next header, length in 8-octet units minus one) layout.
fn is_generic_extension(nh: u8) -> bool {
    matches!(nh, 0 | 43 | 60 | 135 | 139 | 140)
}

const FRAGMENT: u8 = 44;

impl<T: AsRef<[u8]>> Ipv6Packet<T> {
    /// Checks that the fixed header was captured (version not checked).
    pub fn new_checked(buffer: T) -> Result<Self, Skip> {
        if buffer.as_ref().len() < HEADER_LEN {
            return Err(Skip::TruncatedIpHeader);
        }
        Ok(Ipv6Packet { buffer })
    }

    /// The version nibble.
    pub fn version(&self) -> u8 {
        self.buffer.as_ref()[0] >> 4
    }
    /// The payload length field (0 for jumbograms and offload captures).
    pub fn payload_len(&self) -> u16 {
        let b = self.buffer.as_ref();
        u16::from_be_bytes([b[4], b[5]])
    }
    /// The first Next Header value.
    pub fn next_header(&self) -> u8 {
        self.buffer.as_ref()[6]
    }
    /// Source address.
    pub fn src(&self) -> Ipv6Addr {
        let b: [u8; 16] = self.buffer.as_ref()[8..24].try_into().unwrap_or([0; 16]);
        Ipv6Addr::from(b)
    }
    /// Destination address.
    pub fn dst(&self) -> Ipv6Addr {
        let b: [u8; 16] = self.buffer.as_ref()[24..40].try_into().unwrap_or([0; 16]);
        Ipv6Addr::from(b)
    }

    /// Walks the extension headers within the first `packet_len` bytes.
    ///
    /// Stops at a non-first fragment (its payload is not an upper-layer
    /// header) and at AH, which is reported as protocol 51 just as IPv4 does.
    /// A header that runs past `packet_len` is malformed; one that only runs
    /// past the captured bytes ends the walk with `cut` set, its own type as
    /// the protocol.
    pub fn upper_layer(&self, packet_len: usize) -> Result<UpperLayer, Skip> {
        let b = self.buffer.as_ref();
        let mut nh = self.next_header();
        let mut off = HEADER_LEN;
        let mut fragment = None;
        let done = |protocol, offset, fragment, cut| {
            Ok(UpperLayer {
                protocol,
                offset,
                fragment,
                cut,
            })
        };
        loop {
            if is_generic_extension(nh) {
                if off + 2 > packet_len {
                    return Err(Skip::BadExtensionHeader);
                }
                let Some(&[next, len]) = b.get(off..off + 2) else {
                    return done(nh, off, fragment, true);
                };
                let len = (usize::from(len) + 1) * 8;
                if off + len > packet_len {
                    return Err(Skip::BadExtensionHeader);
                }
                nh = next;
                off += len;
            } else if nh == FRAGMENT {
                if off + 8 > packet_len {
                    return Err(Skip::BadExtensionHeader);
                }
                let Some(h) = b.get(off..off + 8) else {
                    return done(nh, off, fragment, true);
                };
                let off_field = u16::from_be_bytes([h[2], h[3]]);
                let f = Fragment {
                    id: u32::from_be_bytes([h[4], h[5], h[6], h[7]]),
                    offset: off_field >> 3,
                    more: off_field & 1 == 1,
                };
                fragment = Some(f);
                nh = h[0];
                off += 8;
                if f.offset != 0 {
                    return done(nh, off, fragment, false);
                }
            } else {
                return done(nh, off, fragment, false);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(next: u8, payload_len: u16) -> Vec<u8> {
        let mut h = vec![0x60, 0, 0, 0];
        h.extend_from_slice(&payload_len.to_be_bytes());
        h.push(next);
        h.push(64);
        h.extend_from_slice(&Ipv6Addr::LOCALHOST.octets());
        h.extend_from_slice(&"2001:db8::1".parse::<Ipv6Addr>().unwrap().octets());
        h
    }

    #[test]
    fn fixed_fields() {
        let h = header(17, 8);
        let p = Ipv6Packet::new_checked(&h[..]).unwrap();
        assert_eq!(p.version(), 6);
        assert_eq!(p.payload_len(), 8);
        assert_eq!(p.src(), Ipv6Addr::LOCALHOST);
        assert_eq!(p.dst().to_string(), "2001:db8::1");
        assert_eq!(
            Ipv6Packet::new_checked(&h[..39]).unwrap_err(),
            Skip::TruncatedIpHeader
        );
    }

    #[test]
    fn walks_hop_by_hop_and_fragment() {
        let mut h = header(0, 24);
        h.extend_from_slice(&[44, 0, 1, 4, 0, 0, 0, 0]); // HBH -> fragment
        h.extend_from_slice(&[6, 0, 0, 1, 0, 0, 0, 9]); // first fragment, more, id 9
        h.extend_from_slice(&[0; 8]);
        let p = Ipv6Packet::new_checked(&h[..]).unwrap();
        let up = p.upper_layer(h.len()).unwrap();
        assert_eq!(up.protocol, 6);
        assert_eq!(up.offset, 56);
        assert_eq!(
            up.fragment,
            Some(Fragment {
                id: 9,
                offset: 0,
                more: true
            })
        );
        assert!(!up.cut);
    }

    #[test]
    fn a_header_cut_by_the_capture_ends_the_walk_without_error() {
        let mut h = header(0, 16);
        h.extend_from_slice(&[6, 0, 1, 4]); // half a hop-by-hop header captured
        let p = Ipv6Packet::new_checked(&h[..]).unwrap();
        let up = p.upper_layer(56).unwrap();
        assert_eq!((up.protocol, up.cut), (6, false));
        let short = &h[..41];
        let p = Ipv6Packet::new_checked(short).unwrap();
        let up = p.upper_layer(56).unwrap();
        assert_eq!((up.protocol, up.offset, up.cut), (0, 40, true));
    }

    #[test]
    fn ah_is_the_protocol_as_in_ipv4() {
        let mut h = header(51, 24);
        h.extend_from_slice(&[58, 4, 0, 0, 0, 0, 0, 1]);
        h.extend_from_slice(&[0; 16]);
        let p = Ipv6Packet::new_checked(&h[..]).unwrap();
        assert_eq!(p.upper_layer(h.len()).unwrap().protocol, 51);
    }

    #[test]
    fn extension_past_the_packet_is_rejected() {
        let mut h = header(60, 8);
        h.extend_from_slice(&[17, 3, 0, 0, 0, 0, 0, 0]); // claims 32 bytes
        let p = Ipv6Packet::new_checked(&h[..]).unwrap();
        assert_eq!(p.upper_layer(h.len()), Err(Skip::BadExtensionHeader));
    }
}
