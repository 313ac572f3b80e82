//! `vpcflow analyze`: what the records in the log store say.

use std::io::{self, BufWriter, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Args, Subcommand, ValueEnum};
use vpcflow_analysis::attacks::{self, Thresholds};
use vpcflow_analysis::{Records, write_json, write_table};

use crate::query::RangeArgs;

/// Flags of `vpcflow analyze`.
#[derive(Debug, Args)]
pub struct AnalyzeArgs {
    #[command(subcommand)]
    what: What,
}

#[derive(Debug, Subcommand)]
enum What {
    /// Port scans, host sweeps, brute force, SYN and UDP floods, UDP
    /// reflection and bursts of denied traffic, per capture window.
    Attacks(AttacksArgs),
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum FormatArg {
    Table,
    Json,
}

/// The records an analysis reads, and how it prints.
#[derive(Debug, Args)]
struct Common {
    /// The log store.
    #[arg(long, value_name = "DIR", default_value = "vpcflow-store")]
    store: PathBuf,
    /// Only this log group (id or name).
    #[arg(long, value_name = "ID|NAME")]
    group: Option<String>,
    /// Only this log topic (id or name).
    #[arg(long, value_name = "ID|NAME")]
    topic: Option<String>,
    #[command(flatten)]
    range: RangeArgs,
    /// Output format: a table, or one JSON object per line.
    #[arg(long, value_enum, default_value = "table")]
    format: FormatArg,
}

#[derive(Debug, Args)]
struct AttacksArgs {
    #[command(flatten)]
    common: Common,
    /// Change a detector's threshold, NAME=VALUE (repeatable). Names and
    /// defaults: port-scan-dstports 20, host-sweep-dstaddrs 3,
    /// host-sweep-packets-per-flow 3, brute-force-connections 20,
    /// brute-force-packets-per-connection 30, syn-flood-flows 200,
    /// syn-flood-sources 20, udp-flood-pps 1000,
    /// udp-reflection-bytes-per-second 100000, udp-reflection-sources 3,
    /// denied-burst-flows 50, denied-burst-factor 5.
    #[arg(long, value_name = "NAME=VALUE")]
    threshold: Vec<String>,
}

/// Runs `vpcflow analyze`.
pub fn run(args: AnalyzeArgs) -> Result<ExitCode> {
    match args.what {
        What::Attacks(a) => {
            let mut t = Thresholds::default();
            for s in &a.threshold {
                t.set(s)?;
            }
            let c = &a.common;
            let records = Records {
                store: &c.store,
                group: c.group.clone(),
                topic: c.topic.clone(),
                time: c.range.range()?,
            };
            let findings = attacks::find(&records, &t).context("analyze attacks")?;
            let mut out = BufWriter::new(io::stdout().lock());
            match c.format {
                FormatArg::Table => write_table(&findings, &mut out)?,
                FormatArg::Json => write_json(&findings, &mut out)?,
            }
            out.flush()?;
            Ok(ExitCode::SUCCESS)
        }
    }
}
