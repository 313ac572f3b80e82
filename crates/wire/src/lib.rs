//! Zero-copy views of the headers a flow record is made of.
//!
//! Each header has its own module with a `Packet`-style view over borrowed
//! bytes (`new_checked` proves the fixed part is present, so the accessors
//! after it never fail) and the parsing of a whole frame, link layer to
//! transport ports, is [`parse_frame`]. It produces an [`IpSummary`]: the few
//! typed values the flow pipeline needs, copied out of the frame, so nothing
//! downstream holds on to packet memory or sees a malformed value.
//!
//! Guarantees:
//! - no allocation, no panic on any input (fuzzed and property-tested);
//! - a frame that cannot be turned into an [`IpSummary`] yields a [`Skip`]
//!   naming why, so callers can count skipped packets by reason;
//! - lengths follow SPEC §2: the IP total length (IPv4) or 40 + payload
//!   length (IPv6), the bytes actually carried when that field is 0, and the
//!   header's length (not the captured length) when a snap length cut the frame.

mod error;
pub mod ipv4;
pub mod ipv6;
pub mod link;
mod summary;
pub mod transport;

pub use error::Skip;
pub use link::LinkType;
pub use summary::{Fragment, IpSummary, parse_frame};
pub use transport::{IpProtocol, TcpFlags};

/// A captured frame as a source hands it over: borrowed bytes plus what the
/// capture says about them.
#[derive(Debug, Clone, Copy)]
pub struct Frame<'a> {
    /// Capture time, nanoseconds since the Unix epoch.
    pub timestamp_ns: u64,
    /// How to read the first bytes.
    pub link: LinkType,
    /// The captured bytes (possibly cut by a snap length).
    pub data: &'a [u8],
    /// The frame's length on the wire.
    pub wire_len: u32,
}
