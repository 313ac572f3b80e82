//! `vpcflow collect`: NetFlow v5, v9, IPFIX and sFlow v5 exports in, flow
//! records out (flags to [`vpcflow_runtime::Collector`], which says how).
//! SIGTERM or SIGINT writes what is open, as the end of a capture does.

use std::io::{self, BufWriter, Write};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use anyhow::{Context, Result};
use clap::Args;
use vpcflow_core::format::Format;
use vpcflow_runtime::{Collector, Driver, EXPORT_GRACE, FormatSink, IpfixSink, Sink, SystemClock};

use crate::ingest::{PortsArgs, into_store, sink_error};

/// Flags of `vpcflow collect`.
#[derive(Debug, Args)]
pub struct CollectArgs {
    /// Address and UDP port to receive exports on: NetFlow v5, v9, IPFIX,
    /// sFlow v5 (port 0: any free one; the address is printed once
    /// listening).
    #[arg(long, value_name = "ADDR:PORT")]
    listen: SocketAddr,
    /// Also receive IPFIX over TCP on this address and port.
    #[arg(long, value_name = "ADDR:PORT")]
    listen_tcp: Option<SocketAddr>,
    #[command(flatten)]
    ports: PortsArgs,
    /// Seconds a window stays open past its end on the exporters' clock,
    /// for flows exported late (an exporter's active timeout should fit).
    #[arg(long, value_name = "SECONDS", default_value_t = EXPORT_GRACE.as_secs())]
    grace: u64,
    /// Output format: v1, v2, json, custom:FIELD,FIELD,..., aws or
    /// aws:FIELD,... (as for ingest).
    #[arg(long, value_name = "FORMAT", default_value = "v2")]
    format: String,
    /// Print the field names first.
    #[arg(long)]
    header: bool,
    /// Write each flow log's records into its log topic in the log store
    /// at DIR instead of printing them.
    #[arg(long, value_name = "DIR")]
    store: Option<PathBuf>,
    /// Export each window's records as IPFIX, over UDP
    /// (`ipfix://HOST:PORT`) or TCP (`ipfix+tcp://HOST:PORT`), instead of
    /// printing them.
    #[arg(long, value_name = "URL", conflicts_with = "store")]
    export: Option<String>,
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
    if let Some(inv) = &inventory {
        driver = driver.with_exporter_interfaces(inv);
    }
    let collector =
        Collector::bind(args.listen, args.listen_tcp).with_context(|| match args.listen_tcp {
            Some(tcp) => format!("--listen {} / --listen-tcp {tcp}: cannot bind", args.listen),
            None => format!("--listen {}: cannot bind", args.listen),
        })?;
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
    eprintln!("vpcflow: collecting on {} (udp)", collector.udp_addr()?);
    if let Some(tcp) = collector.tcp_addr() {
        eprintln!("vpcflow: collecting IPFIX on {} (tcp)", tcp?);
    }
    let report = collector
        .run(&mut driver, sink.as_mut(), None, &SystemClock, &stop)
        .map_err(sink_error)?;
    drop(sink);
    eprintln!("vpcflow: {report}");
    Ok(ExitCode::SUCCESS)
}
