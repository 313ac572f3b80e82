//! The seam between the live source's logic and the kernel: what it asks of
//! the host (an interface's index, a capture ring on an interface, a wait
//! for packets) behind [`CaptureSystem`], so that logic (interfaces that
//! appear, go away and come back; drops that become SKIPDATA) is tested
//! with a fake host, without root and without interfaces. [`Linux`] is the
//! real one.

use std::io;

use crate::ring::{PacketRing, RingConfig, RingPacket, RingStats, wait_readable};
use crate::{LiveError, interface_index};

/// A capture ring on one interface.
pub trait CaptureRing {
    /// Hands every packet waiting to `f`; how many there were.
    fn drain(&mut self, f: impl FnMut(&RingPacket<'_>)) -> usize;
    /// Packets passed and dropped since the last call.
    fn take_stats(&mut self) -> Result<RingStats, LiveError>;
}

/// The host's capture facilities.
pub trait CaptureSystem {
    /// Its rings.
    type Ring: CaptureRing;
    /// The index of interface `name`, if it exists now (an interface
    /// deleted and created again has a new one).
    fn interface_index(&self, name: &str) -> Option<u32>;
    /// Whether interface `name` is a tap (or tun) device, whose traffic a
    /// hypervisor sees from the host side (SPEC §1).
    fn is_tap(&self, name: &str) -> bool {
        let _ = name;
        false
    }
    /// Opens a ring on interface `name`.
    fn open_ring(&mut self, name: &str, config: RingConfig) -> Result<Self::Ring, LiveError>;
    /// Waits until one of `rings` has packets, or `timeout_ms` passes.
    fn wait<'a>(
        &mut self,
        rings: impl Iterator<Item = &'a Self::Ring>,
        timeout_ms: i32,
    ) -> io::Result<()>
    where
        Self::Ring: 'a;
}

/// Whether interface `name` is run by the `tun` driver (a tap or tun
/// device): only those have `tun_flags` in sysfs. A name with a `/` (or
/// `..`) is no interface.
pub fn is_tap(name: &str) -> bool {
    !name.is_empty()
        && !name.contains('/')
        && name != ".."
        && std::path::Path::new("/sys/class/net")
            .join(name)
            .join("tun_flags")
            .exists()
}

/// This host's kernel: sysfs, AF_PACKET rings, `poll`.
#[derive(Debug, Default)]
pub struct Linux {
    /// Scratch space of `poll`, reused between waits.
    fds: Vec<libc::pollfd>,
}

impl CaptureRing for PacketRing {
    fn drain(&mut self, f: impl FnMut(&RingPacket<'_>)) -> usize {
        PacketRing::drain(self, f)
    }
    fn take_stats(&mut self) -> Result<RingStats, LiveError> {
        PacketRing::take_stats(self)
    }
}

impl CaptureSystem for Linux {
    type Ring = PacketRing;

    fn interface_index(&self, name: &str) -> Option<u32> {
        interface_index(name).ok().map(|i| i as u32)
    }

    fn is_tap(&self, name: &str) -> bool {
        is_tap(name)
    }

    fn open_ring(&mut self, name: &str, config: RingConfig) -> Result<PacketRing, LiveError> {
        PacketRing::open(name, config)
    }

    fn wait<'a>(
        &mut self,
        rings: impl Iterator<Item = &'a PacketRing>,
        timeout_ms: i32,
    ) -> io::Result<()> {
        wait_readable(rings, &mut self.fds, timeout_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    #[test]
    fn names_that_are_no_interface_are_no_tap() {
        for name in ["", "..", "../lo", "a/b", "no-such-interface-x"] {
            assert!(!is_tap(name), "{name:?}");
        }
    }

    /// A tap device (created down, in this namespace, and removed again: it
    /// carries no traffic) is recognised by its driver; loopback is not.
    #[test]
    #[ignore = "needs root (ip tuntap): scripts/test.sh runs it as root"]
    fn a_tap_device_is_recognised_by_its_driver() {
        let name = format!("vftap{}", std::process::id() % 100_000);
        let ip = |args: &[&str]| {
            let s = Command::new("ip").args(args).status().unwrap();
            assert!(s.success(), "ip {args:?}");
        };
        ip(&["tuntap", "add", "dev", &name, "mode", "tap"]);
        let seen = is_tap(&name);
        ip(&["tuntap", "del", "dev", &name, "mode", "tap"]);
        assert!(seen, "{name} is a tap");
        assert!(!is_tap("lo"));
        assert!(!is_tap(&name), "{name} is gone");
    }
}
