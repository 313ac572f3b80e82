//! `vpcflow store`: maintenance of the log store.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use clap::{Args, Subcommand};

use crate::ingest::load_inventory;
use crate::query::instant;

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
        /// The log store.
        #[arg(long, value_name = "DIR", default_value = "vpcflow-store")]
        store: PathBuf,
        /// The inventory that gives each log group's retention.
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
        /// Collect as of this instant instead of now (RFC 3339 or Unix seconds).
        #[arg(long, value_name = "T")]
        now: Option<String>,
    },
}

/// Runs `vpcflow store`.
pub fn run(args: StoreArgs) -> Result<ExitCode> {
    match args.command {
        StoreCommand::Gc { store, config, now } => {
            let inv = load_inventory(&config)?;
            let now = match now {
                Some(t) => instant(&t)?,
                None => std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_secs())
                    .unwrap_or(0),
            };
            let ttl = |group: &str| {
                inv.log_groups
                    .iter()
                    .find(|g| g.id == group)
                    .map(|g| u32::from(g.ttl_in_days))
            };
            let report = vpcflow_store::gc(&store, ttl, now)?;
            for p in &report.partitions {
                println!("removed {}", p.display());
            }
            for g in &report.unknown_groups {
                eprintln!(
                    "vpcflow: warning: log group '{g}' is not in {}; its records are kept",
                    config.display()
                );
            }
            eprintln!(
                "vpcflow: removed {} expired hour partitions",
                report.partitions.len()
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}
