//! `vpcflow-tools`: the testbed and the benchmarks' helpers, from the
//! command line (`bench/*.sh` call it).

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use vpcflow_tools::{bench, testbed};

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
}

fn main() -> ExitCode {
    let result = match Cli::parse().command {
        Command::Testbed(args) => testbed::run(args),
        Command::Bench(args) => bench::run(args).map(|()| ExitCode::SUCCESS),
    };
    result.unwrap_or_else(|e| {
        eprintln!("vpcflow-tools: error: {e:#}");
        ExitCode::from(2)
    })
}
