//! Why a frame yields no flow data.

/// The reason a frame was not turned into an [`crate::IpSummary`].
///
/// Every variant has a stable kebab-case name ([`Skip::name`]) used in the
/// ingest statistics; [`Skip::ALL`] lists them so counters can live in a
/// fixed array indexed by [`Skip::index`] (no allocation per packet).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
pub enum Skip {
    /// ARP, LLDP, STP and every other frame that carries no IPv4 or IPv6.
    #[error("not an IP packet")]
    NotIp,
    /// The capture's link type is not one vpcflow decodes.
    #[error("unsupported link type")]
    UnsupportedLinkType,
    /// The frame ends inside a link-layer header (Ethernet, VLAN, MPLS, PPPoE, cooked).
    #[error("frame ends inside the link-layer header")]
    TruncatedLinkHeader,
    /// The frame ends inside the fixed IPv4 or IPv6 header.
    #[error("frame ends inside the IP header")]
    TruncatedIpHeader,
    /// The IP version nibble is not what the link layer announced.
    #[error("bad IP version")]
    BadIpVersion,
    /// IPv4 header length below 20 bytes or beyond the total length.
    #[error("bad IPv4 header length")]
    BadIpHeaderLength,
    /// The IP length field is shorter than the header or longer than the frame on the wire.
    #[error("IP length field disagrees with the frame")]
    BadIpLength,
    /// An IPv6 extension header runs past the packet or the capture.
    #[error("bad or truncated IPv6 extension header")]
    BadExtensionHeader,
}

impl Skip {
    /// Every reason, in index order.
    pub const ALL: [Skip; 8] = [
        Skip::NotIp,
        Skip::UnsupportedLinkType,
        Skip::TruncatedLinkHeader,
        Skip::TruncatedIpHeader,
        Skip::BadIpVersion,
        Skip::BadIpHeaderLength,
        Skip::BadIpLength,
        Skip::BadExtensionHeader,
    ];

    /// Position in [`Skip::ALL`].
    pub fn index(self) -> usize {
        self as usize
    }

    /// Stable name used in statistics and metrics.
    pub fn name(self) -> &'static str {
        match self {
            Skip::NotIp => "not-ip",
            Skip::UnsupportedLinkType => "unsupported-link-type",
            Skip::TruncatedLinkHeader => "truncated-link-header",
            Skip::TruncatedIpHeader => "truncated-ip-header",
            Skip::BadIpVersion => "bad-ip-version",
            Skip::BadIpHeaderLength => "bad-ip-header-length",
            Skip::BadIpLength => "bad-ip-length",
            Skip::BadExtensionHeader => "bad-ipv6-extension-header",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn indices_match_positions_and_names_are_unique() {
        for (i, s) in Skip::ALL.iter().enumerate() {
            assert_eq!(s.index(), i);
        }
        let mut names: Vec<_> = Skip::ALL.iter().map(|s| s.name()).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), Skip::ALL.len());
    }
}
