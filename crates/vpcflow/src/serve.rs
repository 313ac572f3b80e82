//! `vpcflow serve` (the control plane's REST API on its database) and
//! `vpcflow token create` (a local admin command).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use vpcflow_control::db::ControlDb;

use crate::ingest::load_inventory;

/// Flags of `vpcflow serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on (loopback only by default; port 0 picks one).
    #[arg(long, default_value = "127.0.0.1:9696")]
    listen: SocketAddr,
    /// Data directory: the control-plane database (`control.db`).
    #[arg(long, value_name = "DIR", default_value = "vpcflow-data")]
    data: PathBuf,
    /// An inventory imported at the database's first start.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
}

/// Flags of `vpcflow token`.
#[derive(Debug, Args)]
pub struct TokenArgs {
    #[command(subcommand)]
    command: TokenCommand,
}

#[derive(Debug, Subcommand)]
enum TokenCommand {
    /// Print a new API token for a project (created if new).
    Create {
        /// The project.
        #[arg(long)]
        project: String,
        /// Data directory of the `vpcflow serve` it is for.
        #[arg(long, value_name = "DIR", default_value = "vpcflow-data")]
        data: PathBuf,
    },
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the async runtime")
}

/// Runs `vpcflow serve`.
pub fn run(args: ServeArgs) -> Result<ExitCode> {
    let inventory = args.config.as_ref().map(load_inventory).transpose()?;
    runtime()?.block_on(async {
        let db = ControlDb::open(&args.data).await?;
        if let Some(inv) = &inventory
            && db.import_inventory(inv).await?
        {
            eprintln!(
                "vpcflow: imported the inventory into {}",
                args.data.display()
            );
        }
        let listener = tokio::net::TcpListener::bind(args.listen)
            .await
            .with_context(|| format!("--listen {}", args.listen))?;
        eprintln!(
            "vpcflow: serving the API on http://{}",
            listener.local_addr()?
        );
        vpcflow_control::api::serve(listener, Arc::new(db)).await?;
        eprintln!("vpcflow: stopped");
        Ok(ExitCode::SUCCESS)
    })
}

/// Runs `vpcflow token ...`.
pub fn run_token(args: TokenArgs) -> Result<ExitCode> {
    let TokenCommand::Create { project, data } = args.command;
    runtime()?.block_on(async {
        let db = ControlDb::open(&data).await?;
        println!("{}", db.create_token(&project).await?);
        Ok(ExitCode::SUCCESS)
    })
}
