//! `vpcflow store`: maintenance of the log store.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use clap::{Args, Subcommand};

use vpcflow_core::time::parse_instant;
use vpcflow_runtime::{Clock, SystemClock};
use vpcflow_store::Store;

/// `vpcflow store` subcommands.
#[derive(Debug, Args)]
pub struct StoreArgs {
    #[command(subcommand)]
    command: StoreCommand,
}

#[derive(Debug, Subcommand)]
enum StoreCommand {
    /// Delete the hour partitions older than their log group's ttl_in_days.
    Gc {
        /// The log store: a directory, or ClickHouse (`clickhouse://...`;
        /// there, --config gives the retention).
        #[arg(long, value_name = "DIR|URL", default_value = "vpcflow-store")]
        store: vpcflow_store::StoreLocation,
        /// An inventory that gives each log group's retention (default: the
        /// retention the store's catalog recorded when the records were written).
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
        /// Collect as of this instant instead of now (RFC 3339 or Unix seconds).
        #[arg(long, value_name = "T")]
        now: Option<String>,
    },
    /// Send the windows waiting in a spool (an `ingest --store clickhouse://`
    /// cut short, or left while ClickHouse was down) to the store, each once.
    Flush {
        /// The ClickHouse store (`clickhouse://HOST:PORT[,...]/DATABASE[?cluster=NAME]`).
        #[arg(long, value_name = "URL")]
        store: vpcflow_store::StoreLocation,
        /// The spool.
        #[arg(long, value_name = "DIR", default_value = "vpcflow-spool")]
        spool: PathBuf,
        /// Give up after this many seconds in all (at once when ClickHouse
        /// does not answer).
        #[arg(long, value_name = "SECONDS", default_value_t = 3600)]
        timeout: u64,
    },
    /// Merge the files of each finished hour partition into one.
    Compact {
        /// The log store.
        #[arg(long, value_name = "DIR", default_value = "vpcflow-store")]
        store: PathBuf,
        /// Only hours that ended before this instant (default: now).
        #[arg(long, value_name = "T")]
        now: Option<String>,
    },
}

fn now_or(t: Option<String>) -> Result<u64> {
    Ok(match t {
        Some(t) => parse_instant(&t)?,
        None => SystemClock.now().0 / 1_000_000_000,
    })
}

/// Runs `vpcflow store`.
pub fn run(args: StoreArgs) -> Result<ExitCode> {
    match args.command {
        StoreCommand::Gc { store, config, now } => {
            let inv = config
                .as_deref()
                .map(vpcflow_core::Inventory::read)
                .transpose()?;
            let now = now_or(now)?;
            let ttl = |group: &str| {
                inv.as_ref()?
                    .log_groups
                    .iter()
                    .find(|g| g.id == group)
                    .map(|g| u32::from(g.ttl_in_days))
            };
            let report = match &store {
                vpcflow_store::StoreLocation::Dir(dir) => Store::open(dir)?.gc(ttl, now)?,
                vpcflow_store::StoreLocation::ClickHouse(url) => {
                    vpcflow_store::clickhouse::ClickHouse::shared(url)?.gc(ttl, now)?
                }
            };
            for p in &report.partitions {
                println!("removed {}", p.display());
            }
            for g in &report.unknown_groups {
                eprintln!(
                    "vpcflow: warning: log group '{g}' has no retention in {}; its records are kept",
                    config.as_ref().map_or_else(
                        || "the store's catalog".to_string(),
                        |c| format!("{} or the store's catalog", c.display())
                    )
                );
            }
            eprintln!(
                "vpcflow: removed {} expired hour partitions",
                report.partitions.len()
            );
            Ok(ExitCode::SUCCESS)
        }
        StoreCommand::Flush {
            store,
            spool,
            timeout,
        } => {
            let vpcflow_store::StoreLocation::ClickHouse(url) = &store else {
                anyhow::bail!(
                    "--store {store}: a spool is flushed into ClickHouse (clickhouse://...)"
                );
            };
            anyhow::ensure!(
                spool.is_dir(),
                "--spool {}: no spool there",
                spool.display()
            );
            let before = vpcflow_store::shipped::spooled(&spool)?.len();
            let hop = vpcflow_runtime::ClickHouseHop::new(url, &spool)?;
            let shipper = vpcflow_runtime::Shipper::start(Box::new(hop), spool.clone(), u64::MAX);
            let waiting = shipper.finish(std::time::Duration::from_secs(timeout));
            eprintln!(
                "vpcflow: sent {} window files to {url}; {waiting} wait in {}",
                before.saturating_sub(waiting),
                spool.display()
            );
            Ok(if waiting == 0 {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            })
        }
        StoreCommand::Compact { store, now } => {
            let now = now_or(now)?;
            let done = Store::open(&store)?.compact_all(now)?;
            for c in &done {
                println!(
                    "compacted {}: {} files, {} records, {} -> {} bytes",
                    c.dir.display(),
                    c.files,
                    c.records,
                    c.bytes.0,
                    c.bytes.1
                );
            }
            eprintln!("vpcflow: compacted {} hour partitions", done.len());
            Ok(ExitCode::SUCCESS)
        }
    }
}
