//! `vpcflow bench`: tooling for `bench/run.sh` (hidden from `--help`).
//!
//! - `make-capture`: a large capture built from real traces, with addresses
//!   shifted per copy so it holds many concurrent flows;
//! - `read` and `parse`: the baselines (reading frames; reading and parsing
//!   them) that `vpcflow ingest` is compared with in the same run.

use std::collections::HashSet;
use std::fs::File;
use std::io::BufWriter;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use vpcflow_capture::{CaptureFile, PcapWriter};
use vpcflow_wire::link::network_layer;
use vpcflow_wire::{LinkType, parse_frame};

/// Benchmark tooling.
#[derive(Debug, Args)]
pub struct BenchArgs {
    #[command(subcommand)]
    command: BenchCommand,
}

#[derive(Debug, Subcommand)]
enum BenchCommand {
    /// Build a large Ethernet/IPv4 capture from real traces.
    MakeCapture {
        /// Output pcap.
        #[arg(long)]
        out: PathBuf,
        /// Packets to write.
        #[arg(long, default_value_t = 5_000_000)]
        packets: u64,
        /// Distinct unidirectional flows wanted in each of the two capture windows.
        #[arg(long, default_value_t = 500_000)]
        flows: u64,
        /// Bytes of each frame kept (the wire length is preserved).
        #[arg(long, default_value_t = 128)]
        snap_len: u32,
        /// Real captures to take packets from.
        #[arg(required = true)]
        sources: Vec<PathBuf>,
    },
    /// Read every frame (baseline 1).
    Read {
        /// Capture.
        capture: PathBuf,
    },
    /// Read and parse every frame (baseline 2).
    Parse {
        /// Capture.
        capture: PathBuf,
    },
}

struct Template {
    data: Vec<u8>,
    wire_len: u32,
    ip_offset: usize,
}

/// Runs `vpcflow bench`.
pub fn run(args: BenchArgs) -> Result<()> {
    match args.command {
        BenchCommand::MakeCapture {
            out,
            packets,
            flows,
            snap_len,
            sources,
        } => make_capture(&out, packets, flows, snap_len, &sources),
        BenchCommand::Read { capture } => {
            let mut c = CaptureFile::open(&capture)?;
            let t = Instant::now();
            let mut bytes = 0u64;
            while let Some(f) = c.next_frame() {
                bytes += f.data.len() as u64;
            }
            report("read", c.frames(), t, bytes);
            Ok(())
        }
        BenchCommand::Parse { capture } => {
            let mut c = CaptureFile::open(&capture)?;
            let t = Instant::now();
            let mut ok = 0u64;
            while let Some(f) = c.next_frame() {
                if let Ok(s) = parse_frame(f.link, f.data, f.wire_len) {
                    ok += u64::from(s.ip_bytes > 0);
                }
            }
            report("parse", c.frames(), t, ok);
            Ok(())
        }
    }
}

fn report(what: &str, frames: u64, t: Instant, check: u64) {
    let secs = t.elapsed().as_secs_f64();
    println!(
        "{what}: {frames} packets in {secs:.3} s = {:.0} packets/s (check {check})",
        frames as f64 / secs
    );
}

fn make_capture(
    out: &PathBuf,
    packets: u64,
    flows: u64,
    snap_len: u32,
    sources: &[PathBuf],
) -> Result<()> {
    let mut templates = Vec::new();
    for s in sources {
        let mut c = CaptureFile::open(s)?;
        while let Some(f) = c.next_frame() {
            if f.link != LinkType::Ethernet {
                break;
            }
            let Ok(sum) = parse_frame(f.link, f.data, f.wire_len) else {
                continue;
            };
            if !sum.src.is_ipv4() || sum.fragment.is_some() {
                continue;
            }
            let Ok((ip_offset, _)) = network_layer(f.link, f.data) else {
                continue;
            };
            let keep = f.data.len().min(snap_len as usize).max(ip_offset + 20);
            templates.push(Template {
                data: f.data[..keep.min(f.data.len())].to_vec(),
                wire_len: f.wire_len,
                ip_offset,
            });
        }
    }
    if templates.is_empty() {
        bail!("no Ethernet IPv4 packets in the sources");
    }
    // distinct[m]: distinct flows among the first m templates.
    let mut seen = HashSet::new();
    let mut distinct = Vec::with_capacity(templates.len() + 1);
    distinct.push(0u64);
    for t in &templates {
        let s = parse_frame(LinkType::Ethernet, &t.data, t.wire_len).context("template")?;
        seen.insert((s.src, s.dst, s.src_port, s.dst_port, s.protocol));
        distinct.push(seen.len() as u64);
    }
    // Packet i is copy i % K of template (i / K) % T; each half of the
    // capture is one window, so each must hold `flows` distinct flows.
    let half = packets / 2;
    let t_count = templates.len() as u64;
    let copies = (1..=65_535u64)
        .find(|k| k * distinct[(half / k).min(t_count) as usize] >= flows)
        .context("cannot reach that many flows with these sources")?;
    let mut w = PcapWriter::new(
        BufWriter::with_capacity(1 << 20, File::create(out)?),
        1,
        snap_len,
    )?;
    let t0: u64 = 1_700_000_400 * 1_000_000_000; // a window boundary
    let step = 1_200_000_000_000 / packets.max(1); // two 600 s windows
    let mut frame = Vec::with_capacity(snap_len as usize);
    for i in 0..packets {
        let k = i % copies;
        let j = if i < half {
            (i / copies) % t_count
        } else {
            ((i - half) / copies + t_count / 2) % t_count
        };
        let t = &templates[j as usize];
        frame.clear();
        frame.extend_from_slice(&t.data);
        let shift = (k as u16).to_be_bytes();
        for addr in [t.ip_offset + 12, t.ip_offset + 16] {
            frame[addr + 1] ^= shift[0];
            frame[addr + 2] ^= shift[1];
        }
        w.write(t0 + i * step, &frame, t.wire_len)?;
    }
    w.finish()?;
    eprintln!(
        "wrote {packets} packets to {}: {} templates x {copies} address copies",
        out.display(),
        templates.len()
    );
    Ok(())
}
