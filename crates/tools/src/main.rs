//! `vpcflow-tools`: the testbed and the benchmarks' helpers, from the
//! command line (`bench/*.sh` call it).

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use std::path::PathBuf;

use vpcflow_tools::{attacks, bench, testbed};

/// Developer tooling of vpcflow.
#[derive(Debug, Parser)]
#[command(name = "vpcflow-tools", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Build an inventory as network namespaces, veths and bridges (root).
    Testbed(testbed::TestbedArgs),
    /// Benchmark helpers (see bench/run.sh).
    Bench(bench::BenchArgs),
    /// Write the example VPC's crafted capture: ordinary traffic and one of
    /// each attack `vpcflow analyze attacks` finds.
    AttackCapture {
        /// The pcap to write.
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
        /// Ordinary traffic only.
        #[arg(long)]
        ordinary_only: bool,
    },
}

fn main() -> ExitCode {
    let result = match Cli::parse().command {
        Command::Testbed(args) => testbed::run(args),
        Command::Bench(args) => bench::run(args).map(|()| ExitCode::SUCCESS),
        Command::AttackCapture { out, ordinary_only } => {
            attacks::write_capture(&out, !ordinary_only)
                .map(|n| {
                    eprintln!("wrote {n} packets to {}", out.display());
                    ExitCode::SUCCESS
                })
                .map_err(|e| anyhow::anyhow!("{}: {e}", out.display()))
        }
    };
    result.unwrap_or_else(|e| {
        eprintln!("vpcflow-tools: error: {e:#}");
        ExitCode::from(2)
    })
}
