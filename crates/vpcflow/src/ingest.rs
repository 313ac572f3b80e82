//! `vpcflow ingest`: capture files in, flow records out.
//!
//! Flags are parsed (and only checked) by clap; [`Settings::resolve`] reads
//! the inventories and opens the captures, so every error about input is
//! reported before a single record is written; [`run`] then streams.

use std::fs::File;
use std::io::{self, BufWriter, IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use clap::{Args, ValueEnum};
use ipnet::IpNet;
use vpcflow_capture::{CaptureFile, MergedCaptures};
use vpcflow_core::aggregate::AggregatorConfig;
use vpcflow_core::attribute::{Attributor, AutoPorts};
use vpcflow_core::format::Format;
use vpcflow_core::{AcceptAll, Inventory, Pipeline, TrafficType, WindowLength};
use vpcflow_policy::DEFAULT_CONNECTIONS;
use vpcflow_runtime::capture;
use vpcflow_runtime::rule_stats::{RuleStats, Tallied};
use vpcflow_runtime::{
    Driver, FormatSink, ShardTotals, Verdicts, inventory_pipeline, replay_sharded, whatif,
};

/// Captures larger than this get a progress bar (when stderr is a terminal).
const PROGRESS_BYTES: u64 = 64 << 20;

/// A traffic filter on the command line (`all`, `accept`, `reject`).
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum TrafficArg {
    /// Both actions.
    All,
    /// ACCEPT only.
    Accept,
    /// REJECT only.
    Reject,
}

/// Which addresses are ports, and how their windows are kept: the flags
/// `ingest` and `collect` share.
#[derive(Debug, Args)]
pub struct PortsArgs {
    /// Inventory file (TOML): VPCs, subnets, ports, security groups, ACLs, flow logs.
    #[arg(long, value_name = "FILE", conflicts_with = "ports_from")]
    pub config: Option<PathBuf>,
    /// Without an inventory: every address in CIDR seen in the traffic becomes a port
    /// (`auto-<address>`) under one flow log, all traffic accepted. Repeatable.
    #[arg(long, value_name = "CIDR")]
    pub ports_from: Vec<IpNet>,
    /// Capture window length in seconds (60..=600; default: the inventory's, else 600).
    #[arg(long, value_name = "SECONDS")]
    pub window: Option<u32>,
    /// Traffic filter of the automatic flow log; with --config, replaces every flow log's.
    #[arg(long, value_enum)]
    pub traffic_type: Option<TrafficArg>,
    /// Records kept per port, flow log and window (default: the inventory's, else 400000).
    #[arg(long, value_name = "N")]
    pub max_records: Option<u32>,
    /// Connections the security groups and ACLs track at once.
    #[arg(long, value_name = "N", default_value_t = DEFAULT_CONNECTIONS)]
    pub max_connections: usize,
    /// Region printed in v2 records of automatic ports.
    #[arg(long, value_name = "NAME", default_value = "-")]
    pub region: String,
    /// With --config: only the ports bound to this host (`host` of a
    /// port), as the fleet's agent on it monitors them.
    #[arg(long, value_name = "NAME", requires = "config")]
    pub host: Option<String>,
}

impl PortsArgs {
    /// The inventory, if given, and the aggregator's settings (`grace_ns`:
    /// how long a window stays open past its end).
    pub fn resolve(&self, grace_ns: u64) -> Result<(Option<Inventory>, AggregatorConfig)> {
        let inventory = self
            .config
            .as_deref()
            .map(Inventory::read)
            .transpose()?
            .map(|inv| match &self.host {
                Some(h) => inv.on_host(h),
                None => inv,
            });
        if inventory.is_none() && self.ports_from.is_empty() {
            bail!(
                "say which addresses are ports: --config FILE (an inventory) or --ports-from CIDR"
            );
        }
        let window = match self.window {
            Some(s) => WindowLength::configured(s).with_context(|| {
                format!("--window {s}: the capture window must be 60 to 600 seconds")
            })?,
            None => inventory
                .as_ref()
                .map_or(WindowLength::DEFAULT, |i| i.window),
        };
        let max_records = match self.max_records {
            Some(0) => bail!("--max-records 0: at least one record per window must be kept"),
            Some(n) => n,
            None => inventory
                .as_ref()
                .map_or(vpcflow_core::inventory::DEFAULT_MAX_RECORDS, |i| {
                    i.max_records_per_window
                }),
        };
        Ok((
            inventory,
            AggregatorConfig {
                window,
                max_records,
                grace_ns,
            },
        ))
    }

    /// The traffic filter, if one replaces the flow logs'.
    pub fn traffic_type(&self) -> Option<TrafficType> {
        self.traffic_type.map(|t| match t {
            TrafficArg::All => TrafficType::All,
            TrafficArg::Accept => TrafficType::Accept,
            TrafficArg::Reject => TrafficType::Reject,
        })
    }

    /// The pipeline of `inventory`, or of automatic ports.
    pub fn pipeline(
        &self,
        inventory: Option<&Inventory>,
        config: AggregatorConfig,
    ) -> Pipeline<Verdicts> {
        let p = self.pipeline_quietly(inventory, config);
        if inventory.is_some() && p.topology().ports.is_empty() {
            eprintln!(
                "vpcflow: warning: the inventory has no port under an enabled flow log, so no records will be written"
            );
        }
        p
    }

    /// [`Self::pipeline`], without warnings (another shard's).
    fn pipeline_quietly(
        &self,
        inventory: Option<&Inventory>,
        config: AggregatorConfig,
    ) -> Pipeline<Verdicts> {
        match inventory {
            Some(inv) => inventory_pipeline(inv, config, self.traffic_type(), self.max_connections),
            None => {
                let (attributor, topology) = Attributor::automatic(&AutoPorts {
                    cidrs: self.ports_from.clone(),
                    traffic_type: self.traffic_type().unwrap_or(TrafficType::All),
                    region: self.region.clone(),
                });
                Pipeline::new(topology, attributor, config, Verdicts::AcceptAll(AcceptAll))
            }
        }
    }
}

/// Flags of `vpcflow ingest`.
#[derive(Debug, Args)]
pub struct IngestArgs {
    #[command(flatten)]
    ports: PortsArgs,
    /// Output format: v1, v2, json, custom:FIELD,FIELD,... (seed fields and
    /// the extension fields: decided-by, policy-id, rule-id, passed-*,
    /// sampling-rate, tcp-flags, flow-log-id, log-group-id, log-topic-id),
    /// or aws / aws:FIELD,... (the other big cloud's lines).
    #[arg(long, value_name = "FORMAT", default_value = "v2")]
    format: String,
    /// Print the field names first.
    #[arg(long)]
    header: bool,
    /// Write records to FILE instead of standard output (`-`: standard output).
    #[arg(short = 'o', long = "output", value_name = "FILE")]
    output: Option<PathBuf>,
    /// Write, for every security-group and ACL rule, the flows, packets and bytes
    /// it decided and when it last did (JSON lines), unmatched rules included.
    #[arg(long, value_name = "FILE", requires = "config")]
    rule_stats: Option<PathBuf>,
    /// What-if: instead of records, report the flows whose action would change
    /// under this inventory, grouped by the rule that changes them.
    #[arg(long, value_name = "PROPOSED", requires = "config")]
    compare: Option<PathBuf>,
    #[cfg(feature = "store")]
    /// Write each flow log's records into its log topic in the log store at DIR
    /// (Parquet, see `vpcflow query`) instead of printing them; prints each
    /// file once it is durable, with its record count. Or into ClickHouse:
    /// `clickhouse://HOST:PORT[,HOST:PORT...]/DATABASE[?cluster=NAME]`, each
    /// closed window one insert, through the spool (--spool).
    #[arg(long, value_name = "DIR|URL", conflicts_with_all = ["compare", "output", "export"])]
    store: Option<vpcflow_store::StoreLocation>,
    #[cfg(feature = "store")]
    /// With a ClickHouse --store: the directory closed windows wait in until
    /// ClickHouse has them (an outage included: what is still there at the
    /// end goes with the next run that names this spool).
    #[arg(long, value_name = "DIR", default_value = "vpcflow-spool")]
    spool: PathBuf,
    #[cfg(feature = "store")]
    /// With a ClickHouse --store: the most the spool holds (bytes, or with
    /// KiB, MiB or GiB); past it the newest windows are lost, each reduced
    /// to SKIPDATA records with its totals.
    #[arg(long, value_name = "SIZE", default_value = "1GiB", value_parser = crate::agent::parse_size)]
    spool_limit: u64,
    /// Export each window's records as IPFIX to a collector, over UDP
    /// (`ipfix://HOST:PORT`: nfcapd, goflow2, Akvorado...) or TCP
    /// (`ipfix+tcp://HOST:PORT`), instead of printing them.
    // (`store` names this one: it exists only with the store feature.)
    #[arg(long, value_name = "URL", conflicts_with_all = ["compare", "output"])]
    export: Option<String>,
    /// Aggregate on N threads, each keeping the flows of its share of the
    /// ports (the records are the same for any N); default: one per core.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=64))]
    threads: Option<u32>,
    /// Capture files (pcap or pcapng, optionally gzip-compressed), read as one timeline.
    #[arg(required = true, value_name = "CAPTURE")]
    captures: Vec<PathBuf>,
}

/// Everything `run` needs, checked.
struct Settings {
    pipeline: Pipeline<Verdicts>,
    /// With more than one thread: the other shards' pipelines, built alike.
    shards: Vec<Pipeline<Verdicts>>,
    /// `--compare`: the proposed inventory's pipeline.
    proposed: Option<Pipeline<Verdicts>>,
    format: Format,
    captures: Vec<CaptureFile>,
    /// The inventory (its log groups and topics go in the store's catalog).
    #[cfg(feature = "store")]
    inventory: Option<Inventory>,
}

impl Settings {
    fn resolve(args: &IngestArgs) -> Result<Settings> {
        let format =
            Format::parse(&args.format).with_context(|| format!("--format {}", args.format))?;
        let (inventory, config) = args
            .ports
            .resolve(vpcflow_core::aggregate::CLOSE_GRACE_NS)?;
        let (pipeline, proposed) = match (&inventory, &args.compare) {
            (Some(inv), Some(proposed)) => {
                // Every flow of both must be visible to compare them.
                let all = Some(TrafficType::All);
                let other = Inventory::read(proposed)?;
                let connections = args.ports.max_connections;
                (
                    inventory_pipeline(inv, config, all, connections),
                    Some(inventory_pipeline(&other, config, all, connections)),
                )
            }
            _ => (args.ports.pipeline(inventory.as_ref(), config), None),
        };
        let threads = args.threads.map_or_else(
            || std::thread::available_parallelism().map_or(1, |n| n.get()),
            |n| n as usize,
        );
        // What-if runs both inventories side by side on one thread.
        let shards = if proposed.is_none() {
            (1..threads)
                .map(|_| args.ports.pipeline_quietly(inventory.as_ref(), config))
                .collect()
        } else {
            Vec::new()
        };
        let mut captures = Vec::new();
        for path in &args.captures {
            captures.push(CaptureFile::open(path)?);
        }
        Ok(Settings {
            pipeline,
            shards,
            proposed,
            format,
            captures,
            #[cfg(feature = "store")]
            inventory,
        })
    }
}

/// Runs `vpcflow ingest`.
pub fn run(args: IngestArgs) -> Result<ExitCode> {
    let settings = Settings::resolve(&args)?;
    let out: Box<dyn Write + Send> = match &args.output {
        Some(p) if p.as_os_str() != "-" => {
            Box::new(File::create(p).with_context(|| format!("cannot create {}", p.display()))?)
        }
        _ => Box::new(io::stdout()),
    };
    match stream(settings, &args, BufWriter::with_capacity(1 << 16, out)) {
        Err(e) if is_broken_pipe(&e) => Ok(ExitCode::SUCCESS),
        other => other,
    }
}

fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|e| {
        e.downcast_ref::<io::Error>()
            .is_some_and(|e| e.kind() == io::ErrorKind::BrokenPipe)
    })
}

/// A sink's error, for anyhow (which wants it sized).
pub(crate) fn sink_error(e: vpcflow_runtime::SinkError) -> anyhow::Error {
    anyhow::Error::from_boxed(e)
}

fn stream(
    settings: Settings,
    args: &IngestArgs,
    mut out: BufWriter<Box<dyn Write + Send>>,
) -> Result<ExitCode> {
    let Settings {
        pipeline,
        shards,
        proposed,
        format,
        captures,
        #[cfg(feature = "store")]
        inventory,
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
    let mut progress = |c: &MergedCaptures| {
        if let Some(b) = &bar {
            b.set_position(c.files().iter().map(|f| f.progress().0).sum());
        }
    };
    let mut captures = MergedCaptures::new(captures);
    let started = Instant::now();
    let mut rule_totals = None;
    let mut pipelines = vec![pipeline];
    pipelines.extend(shards);
    // The threads the shards run on also format the lines.
    let threads = pipelines.len();
    let (driver, totals) = if let Some(proposed) = proposed {
        let mut driver = Driver::from_pipeline(pipelines.swap_remove(0));
        let mut theirs = Driver::from_pipeline(proposed);
        let comparison = whatif::compare(&mut driver, &mut theirs, &mut captures);
        comparison.report(
            driver.pipeline().topology(),
            theirs.pipeline().topology(),
            &mut out,
        )?;
        out.flush()?;
        let totals = ShardTotals::of(driver.pipeline());
        (driver, totals)
    } else {
        #[cfg(feature = "store")]
        let stored = args.store.as_ref();
        #[cfg(not(feature = "store"))]
        let stored: Option<&std::path::Path> = None;
        let stats = RuleStats::default();
        let mut replay = |sink: &mut dyn vpcflow_runtime::Sink| {
            replay_sharded(
                std::mem::take(&mut pipelines),
                &mut captures,
                sink,
                &mut progress,
            )
            .map_err(sink_error)
        };
        let (replayed, stats) = if let Some(url) = &args.export {
            let ipfix = vpcflow_runtime::IpfixSink::connect(url)
                .with_context(|| format!("--export {url}"))?;
            let mut sink = Tallied { sink: ipfix, stats };
            let replayed = replay(&mut sink)?;
            eprintln!("vpcflow: exported {} records to {url}", sink.sink.records);
            (replayed, sink.stats)
        } else {
            match stored {
                #[cfg(feature = "store")]
                Some(vpcflow_store::StoreLocation::ClickHouse(url)) => {
                    use vpcflow_runtime::{ClickHouseHop, Compaction, SharedStore, StoreSink};
                    let spool = std::sync::Arc::new(SharedStore::open_spool(&args.spool)?);
                    // Names and retention: in the spool's catalog, which
                    // goes to ClickHouse with the windows.
                    if let Some(inv) = inventory.as_ref() {
                        spool.register(inv)?;
                    }
                    let hop = ClickHouseHop::new(url, &args.spool)?;
                    let shipper =
                        vpcflow_runtime::Shipper::start_on(&spool, Box::new(hop), args.spool_limit);
                    let mut sink = Tallied {
                        sink: StoreSink::new(spool, None, Compaction::Spool),
                        stats,
                    };
                    let replayed = replay(&mut sink)?;
                    let waiting = shipper.finish(CLICKHOUSE_GRACE);
                    eprintln!(
                        "vpcflow: {} records of {} windows closed for {url}{}",
                        sink.sink.records,
                        sink.sink.windows,
                        if waiting == 0 { ", all taken" } else { "" }
                    );
                    if waiting > 0 {
                        eprintln!(
                            "vpcflow: warning: {waiting} window files wait in the spool {} \
                             (ClickHouse did not take them yet); the next run with this spool sends them",
                            args.spool.display()
                        );
                    }
                    (replayed, sink.stats)
                }
                #[cfg(feature = "store")]
                Some(vpcflow_store::StoreLocation::Dir(dir)) => {
                    let files = into_store(dir, inventory.as_ref(), out)?;
                    let mut sink = Tallied { sink: files, stats };
                    let replayed = replay(&mut sink)?;
                    let s = &sink.sink;
                    eprintln!(
                        "vpcflow: stored {} records in {} files under {} ({} hours compacted)",
                        s.records,
                        s.files,
                        dir.display(),
                        s.compacted
                    );
                    (replayed, sink.stats)
                }
                _ => {
                    let mut sink = Tallied {
                        sink: FormatSink::new(format, args.header, out)?.with_threads(threads),
                        stats,
                    };
                    let replayed = replay(&mut sink)?;
                    sink.sink.into_inner()?;
                    (replayed, sink.stats)
                }
            }
        };
        rule_totals = Some(stats);
        (replayed.driver, replayed.totals)
    };
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    let elapsed = started.elapsed().as_secs_f64();
    let pipeline = driver.pipeline();
    if let (Some(path), Some(rule_totals), Verdicts::Engine(_)) =
        (&args.rule_stats, &rule_totals, pipeline.policy())
    {
        let mut f = BufWriter::new(
            File::create(path).with_context(|| format!("cannot create {}", path.display()))?,
        );
        rule_totals.write(pipeline.topology(), |r| totals.last_decided(r), &mut f)?;
        f.flush()?;
    }
    let clean =
        capture::write_summary(&mut io::stderr().lock(), &totals, captures.files(), elapsed)?;
    Ok(if clean {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// How long the windows of an `ingest` into ClickHouse may take to be
/// taken after the last one closed, before they are left in the spool
/// (at once when ClickHouse does not answer).
#[cfg(feature = "store")]
const CLICKHOUSE_GRACE: std::time::Duration = std::time::Duration::from_secs(3600);

/// The log store at `dir` as the records' sink, each durable file said on
/// `out` once it is durable.
#[cfg(feature = "store")]
pub(crate) fn into_store(
    dir: &std::path::Path,
    inventory: Option<&Inventory>,
    out: BufWriter<Box<dyn Write + Send>>,
) -> Result<vpcflow_runtime::StoreSink> {
    use vpcflow_runtime::{Compaction, SharedStore, StoreSink};
    let store = std::sync::Arc::new(SharedStore::open(dir)?);
    if let Some(inv) = inventory {
        store.register(inv)?;
    }
    store.store().compact_in_background();
    Ok(StoreSink::new(store, Some(Box::new(out)), Compaction::AsWritten).hourly())
}
