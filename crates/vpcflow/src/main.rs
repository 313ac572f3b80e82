//! `vpcflow`: the binary. It only parses the command line and wires the
//! crates together; every decision about packets and records lives in them.

mod ingest;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// VPC flow logs for networks you run yourself.
#[derive(Debug, Parser)]
#[command(name = "vpcflow", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Turn packet captures into flow records.
    Ingest(ingest::IngestArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Ingest(args) => ingest::run(args),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("vpcflow: error: {e:#}");
            ExitCode::from(2)
        }
    }
}
