//! `vpcflow`: the binary. It only parses the command line and wires the
//! crates together; every decision about packets and records lives in them.
//!
//! Features: `store` (the log store: `ingest --store`, `query`, `store`,
//! `agent`) and `server` (`serve`, `token`, the API client commands), both
//! on by default. Without them (`--no-default-features`) the binary is
//! `ingest` to text alone, and builds in minutes instead of half an hour.

#[cfg(feature = "store")]
mod agent;
#[cfg(feature = "store")]
mod analyze;
#[cfg(feature = "server")]
mod client;
#[cfg(feature = "store")]
mod collect;
mod ingest;
#[cfg(feature = "store")]
mod query;
#[cfg(feature = "server")]
mod serve;
#[cfg(feature = "store")]
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
    #[cfg(feature = "store")]
    /// Search the log store: field search, time range, SQL.
    Query(query::QueryArgs),
    #[cfg(feature = "store")]
    /// Analyze the records in the log store: rules to tune, attacks, the
    /// direction of traffic.
    Analyze(analyze::AnalyzeArgs),
    #[cfg(feature = "store")]
    /// Maintain the log store (retention).
    Store(store_cmd::StoreArgs),
    #[cfg(feature = "store")]
    /// Capture live on the monitored ports' interfaces into the log store.
    Agent(agent::AgentArgs),
    #[cfg(feature = "store")]
    /// Receive NetFlow v5/v9 and IPFIX exports and turn them into flow
    /// records.
    Collect(collect::CollectArgs),
    #[cfg(feature = "server")]
    /// Run the control plane: the REST API on its database.
    Serve(serve::ServeArgs),
    #[cfg(feature = "server")]
    /// Manage API tokens (local admin command).
    Token(serve::TokenArgs),
    #[cfg(feature = "server")]
    /// Flow logs through the API: create, list, show, update, delete.
    FlowLog(client::FlowLogArgs),
    #[cfg(feature = "server")]
    /// VPCs, subnets, ports, security groups, network ACLs, log groups and
    /// topics through the API.
    Resource(client::ResourceArgs),
    #[cfg(feature = "server")]
    /// Upload a capture to be ingested as a project's traffic (API).
    Capture(client::CaptureArgs),
    #[cfg(feature = "server")]
    /// A log topic's records through the API (search, time range, SQL).
    Records(client::RecordsArgs),
    #[cfg(feature = "server")]
    /// Analyze a log topic's records through the API (rules, attacks,
    /// traffic).
    Analysis(client::AnalysisArgs),
    #[cfg(feature = "store")]
    /// One records query of `vpcflow serve`, isolated (internal).
    #[command(name = vpcflow_store::worker::WORKER_COMMAND, hide = true)]
    QueryWorker,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Ingest(args) => ingest::run(args),
        #[cfg(feature = "store")]
        Command::Query(args) => query::run(args),
        #[cfg(feature = "store")]
        Command::Analyze(args) => analyze::run(args),
        #[cfg(feature = "store")]
        Command::Store(args) => store_cmd::run(args),
        #[cfg(feature = "store")]
        Command::Agent(args) => agent::run(args),
        #[cfg(feature = "store")]
        Command::Collect(args) => collect::run(args),
        #[cfg(feature = "server")]
        Command::Serve(args) => serve::run(args),
        #[cfg(feature = "server")]
        Command::Token(args) => serve::run_token(args),
        #[cfg(feature = "server")]
        Command::FlowLog(args) => client::run_flow_log(args),
        #[cfg(feature = "server")]
        Command::Resource(args) => client::run_resource(args),
        #[cfg(feature = "server")]
        Command::Capture(args) => client::run_capture(args),
        #[cfg(feature = "server")]
        Command::Records(args) => client::run_records(args),
        #[cfg(feature = "server")]
        Command::Analysis(args) => client::run_analysis(args),
        #[cfg(feature = "store")]
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

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    /// Every flag's conflicts and requirements name flags that exist, in
    /// this build's features (clap checks them only when the command line
    /// is parsed, so a broken one would panic at the user's first run).
    #[test]
    fn the_command_line_is_consistent() {
        super::Cli::command().debug_assert();
    }
}
