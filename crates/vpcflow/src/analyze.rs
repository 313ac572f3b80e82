//! `vpcflow analyze`: what the records in the log store say.

use std::io::{self, BufWriter, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Args, Subcommand, ValueEnum};
use vpcflow_analysis::attacks::{self, Thresholds};
use vpcflow_analysis::rules::{self, RuleThresholds};
use vpcflow_analysis::traffic::{self, TrafficOptions};
use vpcflow_analysis::{Finding, Records, write_json, write_table};
use vpcflow_core::Inventory;
use vpcflow_core::time::parse_duration_secs;

use crate::query::RecordsScope;

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
    /// Security-group and ACL rules against the traffic they saw: unused,
    /// shadowed and broad rules, and what deny rules rejected.
    Rules(RulesArgs),
    /// The direction of traffic (ingress/egress, east-west/north-south),
    /// top talkers and top conversations, per port and subnet, over time
    /// buckets.
    Traffic(TrafficArgs),
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum RankArg {
    Bytes,
    Packets,
}

#[derive(Debug, Args)]
struct TrafficArgs {
    #[command(flatten)]
    common: Common,
    /// The inventory whose VPCs tell east-west from north-south (TOML).
    #[arg(long, value_name = "FILE")]
    config: PathBuf,
    /// Time bucket (e.g. 10m, 1h, 1d); whole windows, by their start.
    #[arg(long, value_name = "DURATION", default_value = "1h")]
    bucket: String,
    /// Talkers and conversations listed per port, subnet and bucket.
    #[arg(long, value_name = "N", default_value_t = 5)]
    top: u64,
    /// Rank talkers and conversations by bytes or by packets.
    #[arg(long, value_enum, default_value = "bytes")]
    by: RankArg,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum FormatArg {
    Table,
    Json,
}

/// The records an analysis reads, and how it prints.
#[derive(Debug, Args)]
struct Common {
    #[command(flatten)]
    scope: RecordsScope,
    /// Output format: a table, or one JSON object per line.
    #[arg(long, value_enum, default_value = "table")]
    format: FormatArg,
    /// Read the records even where the store's window summaries answer
    /// (slower; the same findings: a check of the summaries).
    #[arg(long)]
    from_records: bool,
}

#[derive(Debug, Args)]
struct AttacksArgs {
    #[command(flatten)]
    common: Common,
    /// Change a detector's threshold, NAME=VALUE (repeatable). Names and
    /// defaults (also the least that the store's window summaries answer;
    /// lower ones read the records): port-scan-dstports 20, host-sweep-dstaddrs 3,
    /// host-sweep-packets-per-flow 3, brute-force-connections 20,
    /// brute-force-packets-per-connection 30, syn-flood-flows 200,
    /// syn-flood-sources 20, udp-flood-pps 1000,
    /// udp-reflection-bytes-per-second 100000, udp-reflection-sources 3,
    /// denied-burst-flows 50, denied-burst-factor 5.
    #[arg(long, value_name = "NAME=VALUE")]
    threshold: Vec<String>,
}

#[derive(Debug, Args)]
struct RulesArgs {
    #[command(flatten)]
    common: Common,
    /// The inventory whose rules are analyzed (TOML).
    #[arg(long, value_name = "FILE")]
    config: PathBuf,
    /// Write a least-privilege inventory derived from the range's accepted
    /// traffic to FILE (unused allow rules removed, broad ones narrowed to
    /// their use), once replaying the range's accepted flows through it
    /// rejects none of them; prints the changes instead of the findings.
    #[arg(long, value_name = "FILE", conflicts_with = "hits")]
    suggest: Option<PathBuf>,
    /// Instead of findings: what every rule decided or let pass over the
    /// range (flows, packets, bytes, first and last window), as
    /// `ingest --rule-stats` does for one run.
    #[arg(long)]
    hits: bool,
}

impl Common {
    fn records(&self) -> Result<Records<'_>> {
        Ok(Records {
            group: self.scope.group.clone(),
            topic: self.scope.topic.clone(),
            time: self.scope.range.range()?,
            from_records: self.from_records,
            ..Records::of(&self.scope.store)
        })
    }

    fn write(&self, findings: &[Finding]) -> Result<ExitCode> {
        let mut out = BufWriter::new(io::stdout().lock());
        match self.format {
            FormatArg::Table => write_table(findings, &mut out)?,
            FormatArg::Json => write_json(findings, &mut out)?,
        }
        out.flush()?;
        Ok(ExitCode::SUCCESS)
    }
}

/// Runs `vpcflow analyze`.
pub fn run(args: AnalyzeArgs) -> Result<ExitCode> {
    match args.what {
        What::Attacks(a) => {
            let mut t = Thresholds::default();
            for s in &a.threshold {
                t.set(s)?;
            }
            let findings = attacks::find(&a.common.records()?, &t).context("analyze attacks")?;
            a.common.write(&findings)
        }
        What::Traffic(a) => {
            let inv = Inventory::read(&a.config)?;
            let o = TrafficOptions {
                bucket_secs: parse_duration_secs(&a.bucket)?,
                top: a.top,
                by_packets: matches!(a.by, RankArg::Packets),
            };
            let findings =
                traffic::find(&a.common.records()?, &inv, &o).context("analyze traffic")?;
            a.common.write(&findings)
        }
        What::Rules(a) if a.suggest.is_some() => {
            let out = a.suggest.as_deref().unwrap_or(std::path::Path::new("-"));
            let text = std::fs::read_to_string(&a.config)
                .with_context(|| format!("reading {}", a.config.display()))?;
            let s = vpcflow_analysis::suggest::suggest(
                &a.common.records()?,
                &a.config.display().to_string(),
                &text,
                &RuleThresholds::default(),
            )
            .context("analyze rules --suggest")?;
            let mut shown = s.changes.clone();
            shown.extend(s.newly_rejected.iter().cloned());
            a.common.write(&shown)?;
            if !s.newly_rejected.is_empty() {
                anyhow::bail!(
                    "the suggestion would reject {} of the {} flows the range accepted (listed above): not written",
                    s.newly_rejected.len(),
                    s.checked
                );
            }
            // Whole or not at all: a temporary file renamed over the target.
            let tmp = out.with_extension("toml.tmp");
            std::fs::write(&tmp, &s.toml)
                .and_then(|()| std::fs::rename(&tmp, out))
                .with_context(|| format!("writing {}", out.display()))?;
            eprintln!(
                "vpcflow: {} change(s); the {} flow(s) the range accepted by a rule are all accepted by the suggestion; written to {}",
                s.changes.len(),
                s.checked,
                out.display()
            );
            Ok(ExitCode::SUCCESS)
        }
        What::Rules(a) if a.hits => {
            let inv = Inventory::read(&a.config)?;
            let found = rules::hits(&a.common.records()?, &inv).context("analyze rules --hits")?;
            a.common.write(&found)
        }
        What::Rules(a) => {
            let inv = Inventory::read(&a.config)?;
            let findings = rules::find(&a.common.records()?, &inv, &RuleThresholds::default())
                .context("analyze rules")?;
            a.common.write(&findings)
        }
    }
}
