//! `vpcflow collect`: NetFlow v5, v9 and IPFIX exports in, flow records out.
//!
//! A UDP collector: each exported flow is attributed to ports by its
//! addresses and counted, as a captured frame is, in the window of its
//! first packet on the exporter's clock; windows close when the exports'
//! times pass their end plus `--grace`. SIGTERM or SIGINT writes what is
//! open, as the end of a capture does.

use std::collections::BTreeMap;
use std::io::{self, BufWriter, Write};
use std::net::{SocketAddr, UdpSocket};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::Args;
use vpcflow_core::Timestamp;
use vpcflow_core::format::Format;
use vpcflow_flowexport::Decoder;
use vpcflow_runtime::{Clock, Driver, FormatSink, IpfixSink, Sink, SystemClock};

use crate::ingest::{PortsArgs, into_store, sink_error};

/// Flags of `vpcflow collect`.
#[derive(Debug, Args)]
pub struct CollectArgs {
    /// Address and UDP port to receive exports on (port 0: any free one;
    /// the address is printed once listening).
    #[arg(long, value_name = "ADDR:PORT")]
    listen: SocketAddr,
    #[command(flatten)]
    ports: PortsArgs,
    /// Seconds a window stays open past its end on the exporters' clock,
    /// for flows exported late (an exporter's active timeout should fit).
    #[arg(long, value_name = "SECONDS", default_value_t = 600)]
    grace: u64,
    /// Output format: v1, v2, json, or custom:FIELD,FIELD,...
    #[arg(long, value_name = "FORMAT", default_value = "v2")]
    format: String,
    /// Print the field names first.
    #[arg(long)]
    header: bool,
    /// Write each flow log's records into its log topic in the log store
    /// at DIR instead of printing them.
    #[arg(long, value_name = "DIR")]
    store: Option<PathBuf>,
    /// Export each window's records as IPFIX over UDP
    /// (`ipfix://HOST:PORT`) instead of printing them.
    #[arg(long, value_name = "URL", conflicts_with = "store")]
    export: Option<String>,
}

/// Datagrams received and waiting to be decoded, at most.
const QUEUED_DATAGRAMS: usize = 4_096;

/// A datagram: its exporter, when it came (sFlow counts its samples
/// then), its bytes.
type Received = (SocketAddr, u64, Vec<u8>);

/// Receives datagrams into buffers given back by the decoder (no
/// allocation once enough are in circulation) until `stop`.
fn receive(
    socket: &UdpSocket,
    stop: &AtomicBool,
    queue: &mpsc::SyncSender<Received>,
    free: &mpsc::Receiver<Vec<u8>>,
) -> io::Result<()> {
    let mut buf = vec![0u8; 65_535];
    while !stop.load(Ordering::Relaxed) {
        match socket.recv_from(&mut buf) {
            Ok((n, from)) => {
                let mut datagram = free.try_recv().unwrap_or_default();
                datagram.clear();
                datagram.extend_from_slice(&buf[..n]);
                if queue.send((from, SystemClock.now().0, datagram)).is_err() {
                    break;
                }
            }
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock
                        | io::ErrorKind::TimedOut
                        | io::ErrorKind::Interrupted
                ) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// What the collector received.
#[derive(Debug, Default)]
struct Counts {
    datagrams: u64,
    flows: u64,
    unknown_template_sets: u64,
    incomplete: u64,
    lost: BTreeMap<&'static str, u64>,
    malformed: BTreeMap<&'static str, u64>,
}

pub fn run(args: CollectArgs) -> Result<ExitCode> {
    let format =
        Format::parse(&args.format).with_context(|| format!("--format {}", args.format))?;
    let grace_ns = args
        .grace
        .checked_mul(1_000_000_000)
        .context("--grace: too many seconds")?;
    let (inventory, config) = args.ports.resolve(grace_ns)?;
    let pipeline = args.ports.pipeline(inventory.as_ref(), config);
    let mut driver = Driver::from_pipeline(pipeline);
    let socket = UdpSocket::bind(args.listen)
        .with_context(|| format!("--listen {}: cannot bind", args.listen))?;
    socket.set_read_timeout(Some(Duration::from_millis(100)))?;
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, Arc::clone(&stop))
            .context("installing signal handlers")?;
    }
    let out: Box<dyn Write + Send> = Box::new(io::stdout());
    let out = BufWriter::with_capacity(1 << 16, out);
    let mut sink: Box<dyn Sink> = match (&args.store, &args.export) {
        (Some(dir), _) => Box::new(into_store(dir, inventory.as_ref(), out)?),
        (None, Some(url)) => {
            Box::new(IpfixSink::connect(url).with_context(|| format!("--export {url}"))?)
        }
        (None, None) => Box::new(FormatSink::new(format, args.header, out)?),
    };
    eprintln!("vpcflow: collecting on {} (udp)", socket.local_addr()?);
    // A thread of its own receives, so that a window being written never
    // leaves the socket unread (its kernel buffer holds a few hundred
    // datagrams: a fraction of a second at an exporter's pace).
    let (queue, received) = mpsc::sync_channel::<Received>(QUEUED_DATAGRAMS);
    let (give_back, free) = mpsc::channel::<Vec<u8>>();
    let receiver = {
        let stop = Arc::clone(&stop);
        std::thread::Builder::new()
            .name("collect-recv".into())
            .spawn(move || receive(&socket, &stop, &queue, &free))
            .context("starting the receiving thread")?
    };
    let mut decoder = Decoder::new();
    let mut counts = Counts::default();
    loop {
        match received.recv_timeout(Duration::from_millis(100)) {
            Ok((from, received_ns, datagram)) => {
                counts.datagrams += 1;
                let result = decoder.decode(from, &datagram, received_ns, &mut |f| {
                    driver.exported(from, f);
                });
                // Its buffer goes back to be received into again.
                let _ = give_back.send(datagram);
                match result {
                    Ok(d) => {
                        counts.flows += u64::from(d.flows);
                        counts.unknown_template_sets += u64::from(d.unknown_template_sets);
                        counts.incomplete += u64::from(d.incomplete);
                        if d.lost > 0 {
                            *counts.lost.entry(d.version.as_str()).or_default() +=
                                u64::from(d.lost);
                            driver.exported_lost(from, Timestamp(d.export_ns));
                        }
                    }
                    Err(e) => *counts.malformed.entry(e.name()).or_default() += 1,
                }
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            // Stopped, and every datagram received is decoded.
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        }
        driver.drain(sink.as_mut()).map_err(sink_error)?;
    }
    receiver
        .join()
        .map_err(|_| anyhow::anyhow!("the receiving thread failed"))?
        .context("receiving exports")?;
    driver.end_of_input(sink.as_mut()).map_err(sink_error)?;
    drop(sink);
    let stats = driver.pipeline_stats();
    let lost: Vec<String> = counts
        .lost
        .iter()
        .map(|(v, n)| {
            let what = if *v == "netflow-v9" {
                "export packets"
            } else {
                "flows"
            };
            format!("{n} {what} ({v})")
        })
        .collect();
    let malformed: Vec<String> = counts
        .malformed
        .iter()
        .map(|(k, v)| format!("{k} {v}"))
        .collect();
    eprintln!(
        "vpcflow: collected {} flows ({} packets, {} attributed to ports, {} late for their window) \
         from {} datagrams; {} data sets before their template, {} flows without addresses, \
         malformed datagrams: {}; lost by sequence numbers: {}",
        counts.flows,
        stats.packets,
        stats.attributed,
        stats.late_for_window,
        counts.datagrams,
        counts.unknown_template_sets,
        counts.incomplete,
        if malformed.is_empty() {
            "none".to_string()
        } else {
            malformed.join(", ")
        },
        if lost.is_empty() {
            "none".to_string()
        } else {
            lost.join(", ")
        }
    );
    Ok(ExitCode::SUCCESS)
}
