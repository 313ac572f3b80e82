//! `vpcflow ingest`: capture files in, flow records out.
//!
//! Flags are parsed (and only checked) by clap; [`Settings::resolve`] reads the
//! inventory and opens the captures, so every error about input is reported
//! before a single record is written; [`run`] then streams.

use std::fs::File;
use std::io::{self, BufWriter, IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use clap::{Args, ValueEnum};
use ipnet::IpNet;
use vpcflow_capture::{CaptureFile, Ending, MergedCaptures};
use vpcflow_core::aggregate::AggregatorConfig;
use vpcflow_core::attribute::{Attributor, AutoPorts};
use vpcflow_core::format::{self, Format};
use vpcflow_core::pipeline::status_counts;
use vpcflow_core::{AcceptAll, Inventory, Pipeline, Topology, TrafficType, WindowLength};

/// Captures larger than this get a progress bar (when stderr is a terminal).
const PROGRESS_BYTES: u64 = 64 << 20;

#[derive(Debug, Clone, Copy, ValueEnum)]
enum FormatArg {
    V1,
    V2,
    Json,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum TrafficArg {
    All,
    Accept,
    Reject,
}

/// Flags of `vpcflow ingest`.
#[derive(Debug, Args)]
pub struct IngestArgs {
    /// Inventory file (TOML): VPCs, subnets, ports, security groups, ACLs, flow logs.
    #[arg(long, value_name = "FILE", conflicts_with = "ports_from")]
    config: Option<PathBuf>,
    /// Without an inventory: every address in CIDR seen in the captures becomes a port
    /// (`auto-<address>`) under one flow log. Repeatable.
    #[arg(long, value_name = "CIDR")]
    ports_from: Vec<IpNet>,
    /// Capture window length in seconds (60..=600; default: the inventory's, else 600).
    #[arg(long, value_name = "SECONDS")]
    window: Option<u32>,
    /// Output format.
    #[arg(long, value_enum, default_value = "v2")]
    format: FormatArg,
    /// Traffic filter of the automatic flow log; with --config, replaces every flow log's.
    #[arg(long, value_enum)]
    traffic_type: Option<TrafficArg>,
    /// Records kept per port, flow log and window (default: the inventory's, else 400000).
    #[arg(long, value_name = "N")]
    max_records: Option<u32>,
    /// Region printed in v2 records of automatic ports.
    #[arg(long, value_name = "NAME", default_value = "-")]
    region: String,
    /// Print the field names first.
    #[arg(long)]
    header: bool,
    /// Write records to FILE instead of standard output.
    #[arg(short = 'o', long = "output", value_name = "FILE")]
    output: Option<PathBuf>,
    /// Capture files (pcap or pcapng, optionally gzip-compressed), read as one timeline.
    #[arg(required = true, value_name = "CAPTURE")]
    captures: Vec<PathBuf>,
}

/// Everything `run` needs, checked.
struct Settings {
    topology: Topology,
    attributor: Attributor,
    config: AggregatorConfig,
    format: Format,
    captures: Vec<CaptureFile>,
}

impl Settings {
    fn resolve(args: &IngestArgs) -> Result<Settings> {
        let traffic_type = args.traffic_type.map(|t| match t {
            TrafficArg::All => TrafficType::All,
            TrafficArg::Accept => TrafficType::Accept,
            TrafficArg::Reject => TrafficType::Reject,
        });
        let (mut topology, attributor, window, cap) = if let Some(path) = &args.config {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read inventory {}", path.display()))?;
            let inv = Inventory::from_toml(&path.display().to_string(), &text)?;
            let topology = Topology::from_inventory(&inv);
            if topology.ports.is_empty() {
                eprintln!(
                    "vpcflow: warning: {} has no port under an enabled flow log, so no records will be written",
                    path.display()
                );
            }
            let attributor = Attributor::new(&topology);
            (topology, attributor, inv.window, inv.max_records_per_window)
        } else if !args.ports_from.is_empty() {
            let (attributor, topology) = Attributor::automatic(&AutoPorts {
                cidrs: args.ports_from.clone(),
                traffic_type: traffic_type.unwrap_or(TrafficType::All),
                region: args.region.clone(),
            });
            (topology, attributor, WindowLength::DEFAULT, 400_000)
        } else {
            bail!(
                "say which addresses are ports: --config FILE (an inventory) or --ports-from CIDR"
            );
        };
        if let Some(t) = traffic_type {
            for fl in &mut topology.flow_logs {
                fl.traffic_type = t;
            }
            let ports = std::mem::take(&mut topology.ports);
            for p in ports {
                topology.push_port(p);
            }
        }
        let window = match args.window {
            None => window,
            Some(s) => WindowLength::configured(s).with_context(|| {
                format!("--window {s}: the capture window must be 60 to 600 seconds")
            })?,
        };
        let max_records = match args.max_records {
            None => cap,
            Some(0) => bail!("--max-records 0: at least one record per window must be kept"),
            Some(n) => n,
        };
        let mut captures = Vec::new();
        for path in &args.captures {
            captures.push(CaptureFile::open(path)?);
        }
        Ok(Settings {
            topology,
            attributor,
            config: AggregatorConfig {
                window,
                max_records,
                grace_ns: 2_000_000_000,
            },
            format: match args.format {
                FormatArg::V1 => Format::V1,
                FormatArg::V2 => Format::V2,
                FormatArg::Json => Format::Json,
            },
            captures,
        })
    }
}

/// Runs `vpcflow ingest`.
pub fn run(args: IngestArgs) -> Result<ExitCode> {
    let settings = Settings::resolve(&args)?;
    let out: Box<dyn Write> = match &args.output {
        Some(p) => {
            Box::new(File::create(p).with_context(|| format!("cannot create {}", p.display()))?)
        }
        None => Box::new(io::stdout().lock()),
    };
    match stream(settings, &args, BufWriter::with_capacity(1 << 16, out)) {
        Err(e) if is_broken_pipe(&e) => Ok(ExitCode::SUCCESS),
        other => other,
    }
}

fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.downcast_ref::<io::Error>()
        .is_some_and(|e| e.kind() == io::ErrorKind::BrokenPipe)
}

fn stream(settings: Settings, args: &IngestArgs, mut out: impl Write) -> Result<ExitCode> {
    let Settings {
        topology,
        attributor,
        config,
        format,
        captures,
    } = settings;
    let total_bytes: u64 = captures.iter().filter_map(|c| c.progress().1).sum();
    let bar = (io::stderr().is_terminal() && total_bytes > PROGRESS_BYTES).then(|| {
        let b = indicatif::ProgressBar::new(total_bytes);
        b.set_style(
            indicatif::ProgressStyle::with_template(
                "{bar:40} {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        b
    });
    let mut sources = MergedCaptures::new(captures);
    let mut pipeline = Pipeline::new(topology, attributor, config, AcceptAll);
    if args.header {
        format::write_header(format, &mut out)?;
    }
    let started = Instant::now();
    let mut n: u64 = 0;
    while let Some(frame) = sources.next_frame() {
        pipeline.observe(&frame);
        n += 1;
        if !pipeline.closed().is_empty() {
            write_closed(&mut pipeline, format, &mut out)?;
        }
        if n.is_multiple_of(65_536)
            && let Some(b) = &bar
        {
            b.set_position(sources.files().iter().map(|f| f.progress().0).sum());
        }
    }
    pipeline.finish();
    write_closed(&mut pipeline, format, &mut out)?;
    out.flush()?;
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    let elapsed = started.elapsed().as_secs_f64();

    let stats = pipeline.stats();
    let mut err = io::stderr().lock();
    writeln!(
        err,
        "vpcflow: read {} packets from {} capture(s) in {:.3} s ({:.0} packets/s)",
        stats.packets,
        sources.files().len(),
        elapsed,
        stats.packets as f64 / elapsed.max(1e-9)
    )?;
    writeln!(err, "  attributed to monitored ports: {}", stats.attributed)?;
    let skipped = stats.skipped();
    if !skipped.is_empty() {
        let list: Vec<String> = skipped
            .iter()
            .map(|(r, n)| format!("{} {n}", r.name()))
            .collect();
        writeln!(err, "  skipped: {}", list.join(", "))?;
    }
    if stats.transport_truncated > 0 || stats.unmatched_fragments > 0 {
        writeln!(
            err,
            "  recorded with ports 0: transport header cut by the capture {}, fragments without their first {}",
            stats.transport_truncated, stats.unmatched_fragments
        )?;
    }
    let counts: Vec<String> = status_counts(stats)
        .iter()
        .map(|(s, n)| format!("{} {n}", s.as_str()))
        .collect();
    writeln!(
        err,
        "  records: {} (windows: {})",
        counts.join(", "),
        stats.windows
    )?;
    let (flows, bytes) = stats.peak_flows;
    if flows > 0 {
        // Tables grow in chunks of thousands of flows, so a per-flow figure
        // only means something for large inputs.
        let per_flow = if flows >= 10_000 {
            format!(" ({:.1} bytes/flow)", bytes as f64 / flows as f64)
        } else {
            String::new()
        };
        writeln!(
            err,
            "  flow table: peak {flows} flows in open windows, {bytes} bytes{per_flow}"
        )?;
    }
    let mut code = ExitCode::SUCCESS;
    for f in sources.files() {
        match f.ending() {
            Ending::Truncated => writeln!(
                err,
                "vpcflow: warning: {}: the capture ends in the middle of a packet; records cover the {} packets before the cut",
                f.name(),
                f.frames()
            )?,
            Ending::Corrupt(why) => {
                writeln!(
                    err,
                    "vpcflow: error: {}: {why}; records cover the {} packets before it",
                    f.name(),
                    f.frames()
                )?;
                code = ExitCode::from(1);
            }
            _ => {}
        }
    }
    Ok(code)
}

fn write_closed(
    pipeline: &mut Pipeline<AcceptAll>,
    format: Format,
    out: &mut impl Write,
) -> Result<()> {
    let closed = std::mem::take(pipeline.closed());
    for w in &closed {
        for r in &w.records {
            format::write_record(format, pipeline.topology(), r, out)?;
        }
    }
    Ok(())
}
