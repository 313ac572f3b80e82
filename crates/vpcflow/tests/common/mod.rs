//! Helpers shared by the end-to-end tests.
#![allow(dead_code)]

use std::path::PathBuf;
use std::process::Command;

/// `../shared/data` (from the workspace root).
pub fn shared_data() -> PathBuf {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data");
    assert!(p.is_dir(), "shared test data missing at {}", p.display());
    p
}

/// The workspace's test fixtures.
pub fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures")
}

/// The `vpcflow` binary under test.
pub fn vpcflow() -> Command {
    Command::new(env!("CARGO_BIN_EXE_vpcflow"))
}

/// Writes a little-endian microsecond pcap of Ethernet frames.
pub fn write_pcap(path: &std::path::Path, frames: &[(u64, Vec<u8>)]) {
    let mut f = Vec::new();
    for v in [0xa1b2c3d4u32] {
        f.extend_from_slice(&v.to_le_bytes());
    }
    f.extend_from_slice(&2u16.to_le_bytes());
    f.extend_from_slice(&4u16.to_le_bytes());
    f.extend_from_slice(&[0; 8]);
    f.extend_from_slice(&65535u32.to_le_bytes());
    f.extend_from_slice(&1u32.to_le_bytes());
    for (ts_us, data) in frames {
        f.extend_from_slice(&((ts_us / 1_000_000) as u32).to_le_bytes());
        f.extend_from_slice(&((ts_us % 1_000_000) as u32).to_le_bytes());
        f.extend_from_slice(&(data.len() as u32).to_le_bytes());
        f.extend_from_slice(&(data.len() as u32).to_le_bytes());
        f.extend_from_slice(data);
    }
    std::fs::write(path, f).unwrap();
}

/// An Ethernet + IPv4 + TCP/UDP frame with `payload` bytes of payload.
pub fn ipv4_frame(src: &str, dst: &str, proto: u8, sport: u16, dport: u16, tcp_flags: u8, payload: usize) -> Vec<u8> {
    let src: std::net::Ipv4Addr = src.parse().unwrap();
    let dst: std::net::Ipv4Addr = dst.parse().unwrap();
    let l4 = if proto == 6 { 20 } else { 8 };
    let total = 20 + l4 + payload;
    let mut f = vec![0x02, 0, 0, 0, 0, 1, 0x02, 0, 0, 0, 0, 2, 0x08, 0x00];
    f.extend_from_slice(&[0x45, 0]);
    f.extend_from_slice(&(total as u16).to_be_bytes());
    f.extend_from_slice(&[0, 1, 0x40, 0, 64, proto, 0, 0]);
    f.extend_from_slice(&src.octets());
    f.extend_from_slice(&dst.octets());
    f.extend_from_slice(&sport.to_be_bytes());
    f.extend_from_slice(&dport.to_be_bytes());
    if proto == 6 {
        f.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 0, 0x50, tcp_flags, 0xff, 0xff, 0, 0, 0, 0]);
    } else {
        f.extend_from_slice(&((8 + payload) as u16).to_be_bytes());
        f.extend_from_slice(&[0, 0]);
    }
    f.resize(14 + total, 0xab);
    if f.len() < 60 {
        f.resize(60, 0);
    }
    f
}
