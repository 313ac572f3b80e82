//! Helpers shared by the end-to-end tests.
#![allow(dead_code, reason = "each test binary uses a part of the helpers")]

pub mod collect;
pub mod server;
pub mod testbed;

use std::path::PathBuf;
use std::process::Command;

/// `../shared/data` (from the workspace root).
pub fn shared_data() -> PathBuf {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data");
    assert!(p.is_dir(), "shared test data missing at {}", p.display());
    p
}

/// Every file under `../shared/data`, sorted.
pub fn shared_files() -> Vec<PathBuf> {
    let mut stack = vec![shared_data()];
    let mut out = Vec::new();
    while let Some(p) = stack.pop() {
        if p.is_dir() {
            stack.extend(std::fs::read_dir(&p).unwrap().flatten().map(|e| e.path()));
        } else {
            out.push(p);
        }
    }
    out.sort();
    out
}

/// The workspace's test fixtures.
pub fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures")
}

/// The workspace's `examples/` (the demo inventory and capture).
pub fn examples() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../examples")
}

/// The `vpcflow` binary under test (never on a control-plane database the
/// caller's environment names: the tests choose theirs).
pub fn vpcflow() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_vpcflow"));
    c.env_remove("VPCFLOW_DATABASE");
    c
}

/// Writes a pcap of Ethernet frames; timestamps in microseconds.
pub fn write_pcap(path: &std::path::Path, frames: &[(u64, Vec<u8>)]) {
    let file = std::fs::File::create(path).unwrap();
    let mut w = vpcflow_capture::PcapWriter::new(file, 1, 65535).unwrap();
    for (ts_us, data) in frames {
        w.write(ts_us * 1000, data, data.len() as u32).unwrap();
    }
    w.finish().unwrap();
}

/// A process a test started, killed if the test ends without stopping it
/// (a failed assertion must not leave a server or collector behind).
pub struct Running(pub Option<std::process::Child>);

impl Running {
    /// The process, to stop it the way the test means to.
    pub fn take(&mut self) -> std::process::Child {
        self.0.take().expect("a running process")
    }

    /// The process, still guarded.
    pub fn child(&mut self) -> &mut std::process::Child {
        self.0.as_mut().expect("a running process")
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(c) = &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// The flags that make every address a port.
pub const EVERY_ADDRESS: [&str; 4] = ["--ports-from", "0.0.0.0/0", "--ports-from", "::/0"];

/// `vpcflow ingest` with every address a port: the OK egress records of a
/// capture as JSON values (one per unidirectional flow and window).
pub fn egress_records(capture: &std::path::Path) -> Vec<serde_json::Value> {
    let out = vpcflow()
        .arg("ingest")
        .args(EVERY_ADDRESS)
        .args(["--format", "json"])
        .arg(capture)
        .output()
        .unwrap();
    assert!(
        out.status.code().is_some_and(|c| c <= 1),
        "{}: {}",
        capture.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|v| v["log-status"] == "OK" && v["direction"] == "egress")
        .collect()
}

/// An Ethernet frame carrying IPv4 or IPv6 (by the addresses' family) and
/// a TCP (6), UDP (17), ICMP (1) or ICMPv6 (58) header, then `payload` bytes.
pub fn ip_frame(
    src: &str,
    dst: &str,
    proto: u8,
    sport: u16,
    dport: u16,
    tcp_flags: u8,
    payload: usize,
) -> Vec<u8> {
    let src: std::net::IpAddr = src.parse().unwrap();
    let dst: std::net::IpAddr = dst.parse().unwrap();
    let mut l4 = Vec::new();
    match proto {
        6 => {
            l4.extend_from_slice(&sport.to_be_bytes());
            l4.extend_from_slice(&dport.to_be_bytes());
            l4.extend_from_slice(&[
                0, 0, 0, 1, 0, 0, 0, 0, 0x50, tcp_flags, 0xff, 0xff, 0, 0, 0, 0,
            ]);
        }
        17 => {
            l4.extend_from_slice(&sport.to_be_bytes());
            l4.extend_from_slice(&dport.to_be_bytes());
            l4.extend_from_slice(&((8 + payload) as u16).to_be_bytes());
            l4.extend_from_slice(&[0, 0]);
        }
        _ => l4.extend_from_slice(&[if proto == 58 { 128 } else { 8 }, 0, 0, 0, 0, 1, 0, 1]),
    }
    l4.resize(l4.len() + payload, 0xab);
    let mut f = vec![0x02, 0, 0, 0, 0, 1, 0x02, 0, 0, 0, 0, 2];
    match (src, dst) {
        (std::net::IpAddr::V4(s), std::net::IpAddr::V4(d)) => {
            f.extend_from_slice(&[0x08, 0x00, 0x45, 0]);
            f.extend_from_slice(&((20 + l4.len()) as u16).to_be_bytes());
            f.extend_from_slice(&[0, 1, 0x40, 0, 64, proto, 0, 0]);
            f.extend_from_slice(&s.octets());
            f.extend_from_slice(&d.octets());
        }
        (std::net::IpAddr::V6(s), std::net::IpAddr::V6(d)) => {
            f.extend_from_slice(&[0x86, 0xdd, 0x60, 0, 0, 0]);
            f.extend_from_slice(&(l4.len() as u16).to_be_bytes());
            f.extend_from_slice(&[proto, 64]);
            f.extend_from_slice(&s.octets());
            f.extend_from_slice(&d.octets());
        }
        _ => panic!("mixed address families"),
    }
    f.extend_from_slice(&l4);
    if f.len() < 60 {
        f.resize(60, 0);
    }
    f
}

/// The demo capture of `examples/`: traffic of the example VPC that
/// exercises each of its rules, in two capture windows.
pub fn demo_frames() -> Vec<(u64, Vec<u8>)> {
    const SYN: u8 = 0x02;
    const ACK: u8 = 0x10;
    const SYN_ACK: u8 = 0x12;
    const FIN_ACK: u8 = 0x11;
    const RST: u8 = 0x04;
    let (web1, web2, db) = ("192.168.0.154", "192.168.0.20", "192.168.3.25");
    let t0 = 1_548_752_136_000_000u64; // the seed's example, in microseconds
    let mut t = t0;
    let mut v = Vec::new();
    let mut at = |dt: u64, f: Vec<u8>| {
        t += dt;
        v.push((t, f));
    };
    // DNS from the web tier to the db tier (allowed by sg-db for sg-web members).
    at(0, ip_frame(web1, db, 17, 38929, 53, 0, 68));
    at(800, ip_frame(db, web1, 17, 53, 38929, 0, 120));
    // PostgreSQL web -> db: a whole TCP connection.
    at(1_000, ip_frame(web2, db, 6, 51000, 5432, SYN, 0));
    at(300, ip_frame(db, web2, 6, 5432, 51000, SYN_ACK, 0));
    at(300, ip_frame(web2, db, 6, 51000, 5432, ACK, 0));
    at(300, ip_frame(web2, db, 6, 51000, 5432, ACK, 120));
    at(300, ip_frame(db, web2, 6, 5432, 51000, ACK, 900));
    at(300, ip_frame(web2, db, 6, 51000, 5432, FIN_ACK, 0));
    at(300, ip_frame(db, web2, 6, 5432, 51000, FIN_ACK, 0));
    // PostgreSQL from the internet straight to the db port: never answered.
    at(5_000, ip_frame("198.51.100.9", db, 6, 40001, 5432, SYN, 0));
    at(
        1_000_000,
        ip_frame("198.51.100.9", db, 6, 40001, 5432, SYN, 0),
    );
    // SSH from the office (allowed) and from its denied address.
    at(2_000, ip_frame("203.0.113.7", web1, 6, 50022, 22, SYN, 0));
    at(300, ip_frame(web1, "203.0.113.7", 6, 22, 50022, SYN_ACK, 0));
    at(300, ip_frame("203.0.113.7", web1, 6, 50022, 22, ACK, 40));
    at(2_000, ip_frame("203.0.113.66", web1, 6, 50066, 22, SYN, 0));
    // Telnet to the web tier (denied by the ACL) and HTTPS from anywhere.
    at(2_000, ip_frame("198.51.100.23", web2, 6, 40023, 23, SYN, 0));
    at(
        2_000,
        ip_frame("198.51.100.80", web2, 6, 40443, 443, SYN, 0),
    );
    at(
        300,
        ip_frame(web2, "198.51.100.80", 6, 443, 40443, SYN_ACK, 0),
    );
    at(300, ip_frame("198.51.100.80", web2, 6, 40443, 443, RST, 0));
    // IPv6 ping from the dual-stack web port.
    at(
        2_000,
        ip_frame("2001:db8:0:1::20", "2001:db8:ffff::1", 58, 0, 0, 0, 56),
    );
    // ARP-like noise that is not IP, and traffic of no port.
    at(1_000, {
        let mut f = ip_frame("10.0.0.1", "10.0.0.2", 17, 1, 2, 0, 0);
        f[12] = 0x08;
        f[13] = 0x06;
        f
    });
    at(1_000, ip_frame("10.1.1.1", "10.2.2.2", 17, 1, 2, 0, 10));
    // Next window: DNS again, so the second window has data and NODATA both.
    at(600_000_000, ip_frame(web1, db, 17, 38930, 53, 0, 70));
    v
}

/// The Python of the tests' venv, with `tests/python-requirements.txt`
/// (`scripts/setup.sh test` makes it; `VPCFLOW_TEST_VENV` moves it).
pub fn test_python() -> PathBuf {
    let venv = std::env::var_os("VPCFLOW_TEST_VENV").map_or_else(
        || PathBuf::from("/var/tmp/vpcflow-test-venv"),
        PathBuf::from,
    );
    let python = venv.join("bin/python");
    assert!(
        python.exists(),
        "{}: no venv with tests/python-requirements.txt; scripts/setup.sh test makes it",
        python.display()
    );
    python
}
