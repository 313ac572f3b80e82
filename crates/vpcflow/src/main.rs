//! `vpcflow`: the binary. It only parses the command line and wires the
//! crates together; every decision about packets and records lives in them.

mod agent;
mod client;
mod ingest;
mod query;
mod serve;
mod store_cmd;

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
    /// Search the log store: field search, time range, SQL.
    Query(query::QueryArgs),
    /// Maintain the log store (retention).
    Store(store_cmd::StoreArgs),
    /// Capture live on the monitored ports' interfaces into the log store.
    Agent(agent::AgentArgs),
    /// Run the control plane: the REST API on its database.
    Serve(serve::ServeArgs),
    /// Manage API tokens (local admin command).
    Token(serve::TokenArgs),
    /// Flow logs through the API: create, list, show, update, delete.
    FlowLog(client::FlowLogArgs),
    /// VPCs, subnets, ports, security groups, network ACLs, log groups and
    /// topics through the API.
    Resource(client::ResourceArgs),
    /// Upload a capture to be ingested as a project's traffic (API).
    Capture(client::CaptureArgs),
    /// A log topic's records through the API (search, time range, SQL).
    Records(client::RecordsArgs),
    /// One records query of `vpcflow serve`, isolated (internal).
    #[command(name = vpcflow_store::worker::WORKER_COMMAND, hide = true)]
    QueryWorker,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Ingest(args) => ingest::run(args),
        Command::Query(args) => query::run(args),
        Command::Store(args) => store_cmd::run(args),
        Command::Agent(args) => agent::run(args),
        Command::Serve(args) => serve::run(args),
        Command::Token(args) => serve::run_token(args),
        Command::FlowLog(args) => client::run_flow_log(args),
        Command::Resource(args) => client::run_resource(args),
        Command::Capture(args) => client::run_capture(args),
        Command::Records(args) => client::run_records(args),
        Command::QueryWorker => Ok(vpcflow_store::worker::worker_main()),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("vpcflow: error: {e:#}");
            ExitCode::from(2)
        }
    }
}
