//! Live capture on Linux: packets from the kernel to the pipeline without a
//! copy per packet and without allocating per packet.
//!
//! [`PacketRing`] is the AF_PACKET source: a TPACKET_V3 ring mapped into
//! the process, bound to one interface, with a classic BPF filter that cuts
//! every packet to a snap length just large enough for its headers. The
//! kernel fills blocks of packets; the reader walks a block in place and
//! hands it back. Packets the kernel could not queue are counted by the
//! kernel and reported by [`PacketRing::take_stats`], so they can become
//! SKIPDATA.
//!
//! [`CaptureSystem`] is the seam between a live source's logic and the
//! kernel ([`Linux`]), so that logic can be tested with a fake host.
//!
//! This is the workspace's only crate with `unsafe` code (the ring is
//! memory shared with the kernel); it is confined to `ring.rs`.

#[cfg(feature = "ebpf")]
mod ebpf;
mod ring;
mod system;

#[cfg(feature = "ebpf")]
pub use ebpf::{EbpfConfig, FlowCounter, Hook, KernelFlow, KernelLoss};
pub use ring::{PacketRing, RingConfig, RingPacket, RingStats, setsockopt, wait_readable};
pub use system::{CaptureRing, CaptureSystem, Linux};

/// What went wrong opening or reading a live source.
#[derive(Debug, thiserror::Error)]
pub enum LiveError {
    /// The interface does not exist (in this network namespace).
    #[error("interface '{0}' does not exist here")]
    NoSuchInterface(String),
    /// A system call failed.
    #[error("{what} on '{interface}': {source}")]
    Sys {
        /// The interface.
        interface: String,
        /// The step that failed.
        what: &'static str,
        /// The error.
        source: std::io::Error,
    },
    /// The ring's geometry is invalid.
    #[error("ring configuration: {0}")]
    Config(String),
}

/// The index of interface `name`, read from sysfs.
pub fn interface_index(name: &str) -> Result<i32, LiveError> {
    if name.is_empty() || name.len() > 15 || name.contains('/') || name.contains('\0') {
        return Err(LiveError::NoSuchInterface(name.to_string()));
    }
    std::fs::read_to_string(format!("/sys/class/net/{name}/ifindex"))
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .ok_or_else(|| LiveError::NoSuchInterface(name.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_has_an_index_and_nonsense_does_not() {
        assert!(interface_index("lo").unwrap() > 0);
        assert!(matches!(
            interface_index("no-such-if0"),
            Err(LiveError::NoSuchInterface(_))
        ));
        assert!(interface_index("../../etc").is_err());
    }
}
