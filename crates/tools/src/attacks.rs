//! A crafted capture of the example VPC (`examples/vpc.toml`): two minutes
//! of ordinary traffic (web clients, the web tier's queries to the database
//! tier, an administrator's SSH, DNS and NTP lookups) and, in the first
//! minute, one of each attack `vpcflow analyze attacks` looks for, each
//! from its own source. The analysis tests ingest it with one-minute
//! windows and check every attack is found and nothing ordinary is blamed.
//!
//! Raw IPv4 (link type 101), headers only on disk (snap length 64): the
//! wire lengths carry the sizes, so a 70,000-packet flood stays small.

use std::fs::File;
use std::io::{self, BufWriter};
use std::net::Ipv4Addr;
use std::path::Path;

use vpcflow_capture::PcapWriter;

/// The first window's start (a multiple of 600 s, so windows of 60 s and of
/// the example's length both begin here).
pub const START: u64 = 1_700_000_400;

/// What each attack of [`write_capture`] is, for the tests to expect.
pub mod expect {
    /// web-1, the brute-forced SSH server.
    pub const WEB_1: &str = "1d515d18-1b36-47dc-a983-bd6512aed4bd";
    /// web-2: port-scanned, SYN-flooded, reflected at.
    pub const WEB_2: &str = "7a2c9e41-5b3d-4f60-8e1a-2c4b6d8f0a13";
    /// db: UDP-flooded on 53.
    pub const DB: &str = "e3f1b2c4-d5a6-4b7c-8d9e-0f1a2b3c4d5e";
    /// The port scanner (ports 1..=100 of web-2).
    pub const SCANNER: &str = "198.51.100.200";
    /// Ports the scanner probes.
    pub const SCANNED_PORTS: u64 = 100;
    /// The host sweeper (ICMP echo to 508 addresses, 3 of them ports).
    pub const SWEEPER: &str = "198.51.100.201";
    /// The SSH brute-forcer, inside the office range SSH is allowed from.
    pub const BRUTE_FORCER: &str = "203.0.113.50";
    /// Its connections.
    pub const BRUTE_FORCE_CONNECTIONS: u64 = 30;
    /// Spoofed SYN-flood sources (to web-2:443).
    pub const SYN_FLOOD_SOURCES: u64 = 300;
    /// The UDP flooder (to db:53).
    pub const FLOODER: &str = "198.51.100.204";
    /// Its datagrams.
    pub const FLOOD_PACKETS: u64 = 70_000;
    /// NTP reflectors (from port 123 to web-2).
    pub const REFLECTORS: u64 = 12;
}

const WEB_1: Ipv4Addr = Ipv4Addr::new(192, 168, 0, 154);
const WEB_2: Ipv4Addr = Ipv4Addr::new(192, 168, 0, 20);
const DB: Ipv4Addr = Ipv4Addr::new(192, 168, 3, 25);

const TCP: u8 = 6;
const UDP: u8 = 17;
const ICMP: u8 = 1;
const SYN: u8 = 0x02;
const ACK: u8 = 0x10;
const PSH_ACK: u8 = 0x18;
const FIN_ACK: u8 = 0x11;
const SYN_ACK: u8 = 0x12;

/// Packets in time order.
struct Traffic {
    packets: Vec<(u64, Vec<u8>, u32)>,
}

impl Traffic {
    /// One IPv4 packet at `t` ns of `payload` bytes after its transport header.
    #[allow(
        clippy::too_many_arguments,
        reason = "a packet's header fields, named at each call"
    )]
    fn packet(
        &mut self,
        t: u64,
        src: Ipv4Addr,
        dst: Ipv4Addr,
        protocol: u8,
        sport: u16,
        dport: u16,
        flags: u8,
        payload: u32,
    ) {
        let l4 = match protocol {
            TCP => 20,
            _ => 8,
        };
        let total = 20 + l4 + payload;
        let mut p = Vec::with_capacity(20 + l4 as usize);
        p.extend_from_slice(&[0x45, 0]);
        p.extend_from_slice(&(total.min(65_535) as u16).to_be_bytes());
        p.extend_from_slice(&[0, 0, 0x40, 0, 64, protocol, 0, 0]);
        p.extend_from_slice(&src.octets());
        p.extend_from_slice(&dst.octets());
        match protocol {
            TCP => {
                p.extend_from_slice(&sport.to_be_bytes());
                p.extend_from_slice(&dport.to_be_bytes());
                p.extend_from_slice(&[0; 8]);
                p.extend_from_slice(&[0x50, flags, 0xff, 0xff, 0, 0, 0, 0]);
            }
            UDP => {
                p.extend_from_slice(&sport.to_be_bytes());
                p.extend_from_slice(&dport.to_be_bytes());
                p.extend_from_slice(&((8 + payload).min(65_535) as u16).to_be_bytes());
                p.extend_from_slice(&[0, 0]);
            }
            _ => p.extend_from_slice(&[8, 0, 0, 0, 0, 1, 0, 1]),
        }
        self.packets.push((t, p, total));
    }

    /// A TCP connection at `t` ns: handshake, `exchanges` request/response
    /// pairs of `size` bytes, close.
    #[allow(
        clippy::too_many_arguments,
        reason = "a connection's endpoints and shape, named at each call"
    )]
    fn connection(
        &mut self,
        t: u64,
        client: Ipv4Addr,
        sport: u16,
        server: Ipv4Addr,
        dport: u16,
        exchanges: u32,
        size: u32,
    ) {
        let ms = 1_000_000;
        let mut at = t;
        let mut next = |step: u64| {
            at += step * ms;
            at
        };
        self.packet(next(0), client, server, TCP, sport, dport, SYN, 0);
        self.packet(next(1), server, client, TCP, dport, sport, SYN_ACK, 0);
        self.packet(next(1), client, server, TCP, sport, dport, ACK, 0);
        for _ in 0..exchanges {
            self.packet(next(2), client, server, TCP, sport, dport, PSH_ACK, 100);
            self.packet(next(2), server, client, TCP, dport, sport, PSH_ACK, size);
        }
        self.packet(next(2), client, server, TCP, sport, dport, FIN_ACK, 0);
        self.packet(next(1), server, client, TCP, dport, sport, FIN_ACK, 0);
        self.packet(next(1), client, server, TCP, sport, dport, ACK, 0);
    }

    /// A UDP request and its response.
    #[allow(
        clippy::too_many_arguments,
        reason = "an exchange's endpoints and sizes, named at each call"
    )]
    fn exchange(
        &mut self,
        t: u64,
        client: Ipv4Addr,
        sport: u16,
        server: Ipv4Addr,
        dport: u16,
        request: u32,
        response: u32,
    ) {
        self.packet(t, client, server, UDP, sport, dport, 0, request);
        self.packet(
            t + 2_000_000,
            server,
            client,
            UDP,
            dport,
            sport,
            0,
            response,
        );
    }
}

fn ns(secs: u64) -> u64 {
    secs * 1_000_000_000
}

/// Two minutes of what the example VPC does every day.
fn ordinary(t: &mut Traffic) {
    for minute in 0..2u64 {
        let base = ns(START + 60 * minute);
        // 20 web clients, one HTTPS connection each.
        for i in 0..20u64 {
            let client = Ipv4Addr::new(198, 18, minute as u8, 10 + i as u8);
            t.connection(
                base + ns(1 + 2 * i),
                client,
                50_000 + i as u16,
                WEB_1,
                443,
                4,
                1400,
            );
        }
        // The web tier's database connections and DNS queries.
        for i in 0..3u64 {
            t.connection(
                base + ns(5 + 10 * i),
                WEB_2,
                41_000 + i as u16,
                DB,
                5432,
                8,
                800,
            );
        }
        for i in 0..5u64 {
            t.exchange(
                base + ns(3 + 9 * i),
                WEB_1,
                33_000 + i as u16,
                DB,
                53,
                40,
                120,
            );
        }
        // An administrator's SSH session from the office.
        t.connection(
            base + ns(10),
            Ipv4Addr::new(203, 0, 113, 7),
            52_222,
            WEB_1,
            22,
            20,
            300,
        );
        // Time from a public NTP server.
        t.exchange(
            base + ns(30),
            WEB_1,
            123,
            Ipv4Addr::new(192, 0, 2, 123),
            123,
            48,
            48,
        );
    }
}

/// One of each attack, all in the first minute.
fn attacks(t: &mut Traffic) {
    use expect::{
        BRUTE_FORCE_CONNECTIONS, BRUTE_FORCER, FLOOD_PACKETS, FLOODER, REFLECTORS, SCANNED_PORTS,
        SCANNER, SWEEPER, SYN_FLOOD_SOURCES,
    };
    let base = ns(START);
    let ms = 1_000_000;
    // Port scan: a SYN to each of web-2's ports 1..=100.
    let scanner: Ipv4Addr = SCANNER.parse().unwrap_or(Ipv4Addr::UNSPECIFIED);
    for p in 1..=SCANNED_PORTS {
        t.packet(
            base + ns(2) + p * 10 * ms,
            scanner,
            WEB_2,
            TCP,
            61_000,
            p as u16,
            SYN,
            0,
        );
    }
    // Host sweep: one echo request to every address of both subnets.
    let sweeper: Ipv4Addr = SWEEPER.parse().unwrap_or(Ipv4Addr::UNSPECIFIED);
    for (k, subnet) in [0u8, 3].into_iter().enumerate() {
        for host in 1..=254u8 {
            let at = base + ns(4) + (k as u64 * 254 + u64::from(host)) * 5 * ms;
            t.packet(
                at,
                sweeper,
                Ipv4Addr::new(192, 168, subnet, host),
                ICMP,
                0,
                0,
                0,
                56,
            );
        }
    }
    // SSH brute force from inside the allowed office range: short
    // connections, a few login attempts each.
    let forcer: Ipv4Addr = BRUTE_FORCER.parse().unwrap_or(Ipv4Addr::UNSPECIFIED);
    for i in 0..BRUTE_FORCE_CONNECTIONS {
        t.connection(
            base + ns(6) + i * 500 * ms,
            forcer,
            40_000 + i as u16,
            WEB_1,
            22,
            3,
            80,
        );
    }
    // SYN flood on web-2:443 from spoofed sources, each SYN sent twice.
    for i in 0..SYN_FLOOD_SOURCES {
        let src = Ipv4Addr::new(100, 64, (i / 250) as u8, (i % 250) as u8 + 1);
        for k in 0..2 {
            t.packet(
                base + ns(20) + i * 20 * ms + k * 3 * ms,
                src,
                WEB_2,
                TCP,
                30_000,
                443,
                SYN,
                0,
            );
        }
    }
    // UDP flood on db:53.
    let flooder: Ipv4Addr = FLOODER.parse().unwrap_or(Ipv4Addr::UNSPECIFIED);
    for i in 0..FLOOD_PACKETS {
        t.packet(
            base + ns(25) + i * 400_000,
            flooder,
            DB,
            UDP,
            4_444,
            53,
            0,
            512,
        );
    }
    // NTP reflection at web-2: large responses from many servers' port 123.
    for r in 0..REFLECTORS {
        let reflector = Ipv4Addr::new(192, 0, 2, 1 + r as u8);
        for i in 0..600u64 {
            let at = base + ns(30) + i * 40 * ms + r * ms;
            t.packet(at, reflector, WEB_2, UDP, 123, 40_000 + r as u16, 0, 972);
        }
    }
}

/// Writes the capture to `path`: ordinary traffic, and the attacks too
/// when `with_attacks`. Returns the packets written.
pub fn write_capture(path: &Path, with_attacks: bool) -> io::Result<u64> {
    let mut t = Traffic {
        packets: Vec::new(),
    };
    ordinary(&mut t);
    if with_attacks {
        attacks(&mut t);
    }
    // Stable: packets at the same instant keep the order they were made in.
    t.packets.sort_by_key(|p| p.0);
    let mut w = PcapWriter::new(BufWriter::new(File::create(path)?), 101, 64)?;
    for (at, data, wire_len) in &t.packets {
        w.write(*at, data, *wire_len)?;
    }
    w.finish()?;
    Ok(t.packets.len() as u64)
}
