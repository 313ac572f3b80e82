//! IPv4 header view.
//!
//! [`Ipv4Packet::new_checked`] guarantees the whole header, options included,
//! was captured and that the header length field is at least 20, so every
//! accessor is infallible.

use std::net::Ipv4Addr;

use crate::Skip;

mod field {
    use std::ops::Range;
    pub const VER_IHL: usize = 0;
    pub const TOTAL_LEN: Range<usize> = 2..4;
    pub const IDENT: Range<usize> = 4..6;
    pub const FLAGS_FRAG: Range<usize> = 6..8;
    pub const PROTOCOL: usize = 9;
    pub const SRC: Range<usize> = 12..16;
    pub const DST: Range<usize> = 16..20;
}

/// Minimum IPv4 header length.
pub const HEADER_LEN: usize = 20;

/// A read-only view of an IPv4 header over borrowed bytes.
#[derive(Debug, Clone, Copy)]
pub struct Ipv4Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Ipv4Packet<T> {
    /// Checks that the buffer holds a complete IPv4 header (version not checked).
    pub fn new_checked(buffer: T) -> Result<Self, Skip> {
        let b = buffer.as_ref();
        if b.len() < HEADER_LEN {
            return Err(Skip::TruncatedIpHeader);
        }
        let header_len = usize::from(b[field::VER_IHL] & 0x0f) * 4;
        if header_len < HEADER_LEN {
            return Err(Skip::BadIpHeaderLength);
        }
        if b.len() < header_len {
            return Err(Skip::TruncatedIpHeader);
        }
        Ok(Ipv4Packet { buffer })
    }

    fn be16(&self, r: std::ops::Range<usize>) -> u16 {
        let b = &self.buffer.as_ref()[r];
        u16::from_be_bytes([b[0], b[1]])
    }

    /// The version nibble.
    pub fn version(&self) -> u8 {
        self.buffer.as_ref()[field::VER_IHL] >> 4
    }
    /// Header length in bytes, options included (>= 20).
    pub fn header_len(&self) -> usize {
        usize::from(self.buffer.as_ref()[field::VER_IHL] & 0x0f) * 4
    }
    /// The total length field (0 in segmentation-offload captures).
    pub fn total_len(&self) -> u16 {
        self.be16(field::TOTAL_LEN)
    }
    /// Identification.
    pub fn ident(&self) -> u16 {
        self.be16(field::IDENT)
    }
    /// The more-fragments flag.
    pub fn more_fragments(&self) -> bool {
        self.be16(field::FLAGS_FRAG) & 0x2000 != 0
    }
    /// Fragment offset in 8-byte units.
    pub fn frag_offset(&self) -> u16 {
        self.be16(field::FLAGS_FRAG) & 0x1fff
    }
    /// The protocol field.
    pub fn protocol(&self) -> u8 {
        self.buffer.as_ref()[field::PROTOCOL]
    }
    /// Source address.
    pub fn src(&self) -> Ipv4Addr {
        let b: [u8; 4] = self.buffer.as_ref()[field::SRC]
            .try_into()
            .unwrap_or([0; 4]);
        Ipv4Addr::from(b)
    }
    /// Destination address.
    pub fn dst(&self) -> Ipv4Addr {
        let b: [u8; 4] = self.buffer.as_ref()[field::DST]
            .try_into()
            .unwrap_or([0; 4]);
        Ipv4Addr::from(b)
    }
    /// The captured bytes after the header (may be cut by the snap length).
    pub fn captured_payload(&self) -> &[u8] {
        &self.buffer.as_ref()[self.header_len()..]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HDR: [u8; 24] = [
        0x46, 0, 0, 48, 0x12, 0x34, 0x20, 0x05, 64, 17, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2, 1, 1, 1, 1,
    ];

    #[test]
    fn fields_with_options() {
        let p = Ipv4Packet::new_checked(&HDR[..]).unwrap();
        assert_eq!(p.version(), 4);
        assert_eq!(p.header_len(), 24);
        assert_eq!(p.total_len(), 48);
        assert_eq!(p.ident(), 0x1234);
        assert!(p.more_fragments());
        assert_eq!(p.frag_offset(), 5);
        assert_eq!(p.protocol(), 17);
        assert_eq!(p.src(), Ipv4Addr::new(10, 0, 0, 1));
        assert_eq!(p.dst(), Ipv4Addr::new(10, 0, 0, 2));
        assert!(p.captured_payload().is_empty());
    }

    #[test]
    fn rejects_short_and_bad_ihl() {
        assert_eq!(
            Ipv4Packet::new_checked(&HDR[..19]).unwrap_err(),
            Skip::TruncatedIpHeader
        );
        // Options announced but not captured.
        assert_eq!(
            Ipv4Packet::new_checked(&HDR[..22]).unwrap_err(),
            Skip::TruncatedIpHeader
        );
        let mut bad = HDR;
        bad[0] = 0x44;
        assert_eq!(
            Ipv4Packet::new_checked(&bad[..]).unwrap_err(),
            Skip::BadIpHeaderLength
        );
    }
}
