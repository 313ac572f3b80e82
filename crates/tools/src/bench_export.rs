//! `vpcflow-tools bench ipfix-stream` and `bench replay`: the collector
//! benchmark's exporter (`bench/collect.sh`). The stream is IPFIX written
//! by vpcflow's own encoder, as length-prefixed messages in a file, so the
//! same datagrams can be sent to `vpcflow collect` and to nfcapd.

use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket};
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use vpcflow_flowexport::{IpfixEncoder, IpfixRecord};

/// Writes `flows` flows (2,000 ports of 10.0.0.0/16 talking to 50,000
/// remote addresses, in ten-minute windows of 100,000 flows) as IPFIX
/// messages of at most 1,400 bytes, each after its 4-byte length.
pub fn write_stream(out: &Path, flows: u64) -> Result<()> {
    let mut w = BufWriter::new(File::create(out).with_context(|| out.display().to_string())?);
    let mut enc = IpfixEncoder::new(1, 1_400);
    let mut next = crate::bench::xorshift(0x2545_f491_4f6c_dd1d);
    let t0 = 1_700_000_400u64;
    let mut written = 0u64;
    let mut messages = 0u64;
    while written < flows {
        let n = (flows - written).min(100_000);
        let window = t0 + written / 100_000 * 600;
        let records: Vec<IpfixRecord<'_>> = (0..n)
            .map(|_| {
                let r = next();
                let local = IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + (r % 2_000) as u32));
                let remote = IpAddr::V4(Ipv4Addr::from(0xc633_6400 + ((r >> 11) % 50_000) as u32));
                let ingress = r & (1 << 40) != 0;
                let (src, dst) = if ingress {
                    (remote, local)
                } else {
                    (local, remote)
                };
                let packets = 1 + (r >> 50) % 200;
                IpfixRecord {
                    src,
                    dst,
                    src_port: 32_768 + ((r >> 20) % 28_000) as u16,
                    dst_port: [22u16, 53, 80, 443][((r >> 42) % 4) as usize],
                    protocol: if r & (1 << 41) != 0 { 17 } else { 6 },
                    tcp_flags: 0x18,
                    packets,
                    bytes: packets * (40 + (r >> 30) % 1400),
                    start: window + (r >> 8) % 600,
                    end: window + 599,
                    ingress,
                    accepted: true,
                    interface_id: "-",
                    flow_log_id: "-",
                    log_status: "OK",
                    decided_by: "-",
                    policy_id: "-",
                    rule_id: "-",
                }
            })
            .collect();
        enc.encode(
            u32::try_from(window + 600).unwrap_or(u32::MAX),
            &records,
            &mut |m: &[u8]| {
                messages += 1;
                w.write_all(&(m.len() as u32).to_be_bytes())?;
                w.write_all(m)
            },
        )?;
        written += n;
    }
    w.flush()?;
    println!("ipfix stream: {written} flows in {messages} messages");
    Ok(())
}

/// Sends the stream's messages to `to` as UDP datagrams, at most `rate`
/// a second (so that the receiver's socket buffer is not what is
/// measured).
pub fn replay(stream: &Path, to: SocketAddr, rate: u64) -> Result<()> {
    let mut r = BufReader::new(File::open(stream).with_context(|| stream.display().to_string())?);
    let socket = UdpSocket::bind("127.0.0.1:0")?;
    let started = Instant::now();
    let mut sent = 0u64;
    let mut len = [0u8; 4];
    let mut buf = vec![0u8; 65_535];
    while r.read_exact(&mut len).is_ok() {
        let n = (u32::from_be_bytes(len) as usize).min(buf.len());
        r.read_exact(&mut buf[..n])?;
        socket.send_to(&buf[..n], to)?;
        sent += 1;
        // Paced in steps of a millisecond's share.
        let due = Duration::from_secs_f64(sent as f64 / rate.max(1) as f64);
        let elapsed = started.elapsed();
        if due > elapsed {
            std::thread::sleep(due - elapsed);
        }
    }
    println!(
        "replay: {sent} datagrams in {:.3} s",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
