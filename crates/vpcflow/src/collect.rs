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
use std::time::Duration;

use anyhow::{Context, Result};
use clap::Args;
use vpcflow_core::format::Format;
use vpcflow_flowexport::Decoder;
use vpcflow_runtime::{Driver, FormatSink, IpfixSink, Sink};

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
    let mut decoder = Decoder::new();
    let mut counts = Counts::default();
    let mut buf = vec![0u8; 65_535];
    while !stop.load(Ordering::Relaxed) {
        match socket.recv_from(&mut buf) {
            Ok((n, from)) => {
                counts.datagrams += 1;
                let result = decoder.decode(from, &buf[..n], &mut |f| driver.exported(f));
                match result {
                    Ok(d) => {
                        counts.flows += u64::from(d.flows);
                        counts.unknown_template_sets += u64::from(d.unknown_template_sets);
                        counts.incomplete += u64::from(d.incomplete);
                        if d.lost > 0 {
                            *counts.lost.entry(d.version.as_str()).or_default() +=
                                u64::from(d.lost);
                        }
                    }
                    Err(e) => *counts.malformed.entry(e.name()).or_default() += 1,
                }
            }
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock
                        | io::ErrorKind::TimedOut
                        | io::ErrorKind::Interrupted
                ) => {}
            Err(e) => return Err(e).context("receiving exports"),
        }
        driver.drain(sink.as_mut()).map_err(sink_error)?;
    }
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
