//! `vpcflow serve` (flags to [`vpcflow_server::serve`]: the control plane's
//! REST API on its database, with the pipeline and the log store behind
//! it) and `vpcflow token create` (a local admin command).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use vpcflow_runtime::EXPORT_GRACE;
use vpcflow_server::{CollectSettings, ServerSettings};
use vpcflow_store::QueryLimits;

use crate::agent::CaptureOptions;

/// Flags of `vpcflow serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on (loopback only by default; port 0 picks one).
    #[arg(long, default_value = "127.0.0.1:9696")]
    listen: SocketAddr,
    /// Data directory: the log store (`store/`), uploads, and the
    /// control-plane database (`control.db`) unless `--database` puts it
    /// elsewhere.
    #[arg(long, value_name = "DIR", default_value = "vpcflow-data")]
    data: PathBuf,
    #[command(flatten)]
    database: DatabaseArg,
    /// The log store in ClickHouse
    /// (`clickhouse://HOST:PORT[,HOST:PORT...]/DATABASE[?cluster=NAME]`)
    /// instead of `DIR/store`: uploads, live capture, collected exports
    /// and agents' windows wait in `DIR/spool` until ClickHouse has them;
    /// the API's records and analyses read ClickHouse.
    #[arg(long, value_name = "URL", value_parser = clickhouse_url)]
    store: Option<vpcflow_store::clickhouse::ClickHouseUrl>,
    /// With a ClickHouse --store: the most the spool holds (bytes, or with
    /// KiB, MiB or GiB); past it the newest windows are lost, each reduced
    /// to SKIPDATA records with its totals.
    #[arg(long, value_name = "SIZE", default_value = "1GiB", requires = "store",
          value_parser = crate::agent::parse_size)]
    spool_limit: u64,
    /// An inventory imported at the database's first start.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Also capture live on the monitored ports' interfaces (root), with
    /// the flow logs of the control plane: changes apply from the next
    /// capture window, without a restart.
    #[arg(long)]
    live: bool,
    #[command(flatten)]
    capture: CaptureOptions,
    /// Also receive flow exports (NetFlow v5, v9, IPFIX, sFlow v5) on this
    /// UDP address, into the log store under the control plane's flow
    /// logs (ports by address), as `vpcflow collect` does.
    #[arg(long, value_name = "ADDR:PORT")]
    collect: Option<SocketAddr>,
    /// Also receive IPFIX over TCP on this address (with --collect).
    #[arg(long, value_name = "ADDR:PORT", requires = "collect")]
    collect_tcp: Option<SocketAddr>,
    /// Seconds a collected window stays open past its end on the
    /// exporters' clock.
    #[arg(long, value_name = "SECONDS", default_value_t = EXPORT_GRACE.as_secs(), requires = "collect")]
    collect_grace: u64,
    /// A records query through the API is cancelled after this many
    /// seconds (or as soon as its client goes away).
    #[arg(long, value_name = "SECONDS", default_value_t = QueryLimits::SERVER.deadline.as_secs(),
          value_parser = clap::value_parser!(u64).range(1..=3600))]
    query_timeout: u64,
    /// Memory one records query may take, in MiB (past it, it fails naming
    /// the limit; sorts and aggregations spill first).
    #[arg(long, value_name = "MIB", default_value_t = QueryLimits::SERVER.memory_bytes as u64 >> 20,
          value_parser = clap::value_parser!(u64).range(16..=65536))]
    query_memory: u64,
    /// Largest capture upload taken, in MiB (a larger body is refused with
    /// 413 as soon as it passes the limit).
    #[arg(long, value_name = "MIB", default_value_t = vpcflow_control::api::MAX_UPLOAD_BYTES >> 20,
          value_parser = clap::value_parser!(u64).range(1..=1_048_576))]
    max_upload: u64,
    /// Unknown tokens one client address may send within a minute; past
    /// them its `/v1/` calls get 429 until the minute is over (0: no limit).
    #[arg(long, value_name = "N", default_value_t = vpcflow_control::api::FAILED_AUTH_LIMIT)]
    auth_failures: u32,
}

/// Flags of `vpcflow token`.
#[derive(Debug, Args)]
pub struct TokenArgs {
    #[command(subcommand)]
    command: TokenCommand,
}

#[derive(Debug, Subcommand)]
enum TokenCommand {
    /// Print a new API token for a project (created if new), or with
    /// --access-key an access key and its secret key (shown only now) for
    /// the seed cloud's SDKs, which sign requests with them, or with
    /// --agent HOST a token for the fleet's agent on that host.
    Create {
        /// The project.
        #[arg(long, required_unless_present = "agent", conflicts_with = "agent")]
        project: Option<String>,
        /// A token for the agent on this host: it may fetch only the model
        /// of the ports bound to the host, and opens no project's API.
        #[arg(long, value_name = "HOST", conflicts_with = "access_key")]
        agent: Option<String>,
        /// An access key and secret key (AK/SK) instead of a token.
        #[arg(long)]
        access_key: bool,
        /// Data directory of the `vpcflow serve` it is for.
        #[arg(long, value_name = "DIR", default_value = "vpcflow-data")]
        data: PathBuf,
        #[command(flatten)]
        database: DatabaseArg,
    },
}

/// `--database`, shared by `serve` and `token create`.
#[derive(Debug, Args)]
struct DatabaseArg {
    /// The control-plane database: `postgres://USER[:PASSWORD]@HOST[:PORT]/NAME`
    /// (created if missing; several `serve` processes may share it) or
    /// `sqlite://FILE`. Default: `DIR/control.db`.
    #[arg(long = "database", value_name = "URL", env = "VPCFLOW_DATABASE")]
    url: Option<String>,
}

/// `serve --store`: only ClickHouse (the directory store is `DIR/store`).
fn clickhouse_url(text: &str) -> Result<vpcflow_store::clickhouse::ClickHouseUrl, String> {
    vpcflow_store::clickhouse::ClickHouseUrl::parse(text).map_err(|e| match e {
        vpcflow_store::StoreError::Query(m) => m,
        e => e.to_string(),
    })
}

/// Runs `vpcflow serve`.
pub fn run(args: ServeArgs) -> Result<ExitCode> {
    let import = args
        .config
        .as_ref()
        .map(|p| {
            std::fs::read_to_string(p)
                .map(|text| (p.display().to_string(), text))
                .with_context(|| format!("cannot read inventory {}", p.display()))
        })
        .transpose()?;
    let settings = ServerSettings {
        listen: args.listen,
        data: args.data,
        clickhouse: args.store,
        spool_limit: args.spool_limit,
        database: args.database.url,
        import,
        live: args.live.then(|| args.capture.settings()).transpose()?,
        collect: args.collect.map(|udp| CollectSettings {
            udp,
            tcp: args.collect_tcp,
            grace: Duration::from_secs(args.collect_grace),
        }),
        query_limits: QueryLimits {
            deadline: Duration::from_secs(args.query_timeout),
            memory_bytes: usize::try_from(args.query_memory << 20).unwrap_or(usize::MAX),
            ..QueryLimits::SERVER
        },
        max_upload: args.max_upload << 20,
        auth_failures: args.auth_failures,
    };
    vpcflow_server::serve(settings)?;
    Ok(ExitCode::SUCCESS)
}

/// Runs `vpcflow token ...`.
pub fn run_token(args: TokenArgs) -> Result<ExitCode> {
    let TokenCommand::Create {
        project,
        agent,
        access_key,
        data,
        database,
    } = args.command;
    if let Some(host) = agent {
        println!(
            "{}",
            vpcflow_server::create_agent_token(database.url.as_deref(), &data, &host)?
        );
        return Ok(ExitCode::SUCCESS);
    }
    let project = project.unwrap_or_default();
    if access_key {
        let (ak, sk) = vpcflow_server::create_access_key(database.url.as_deref(), &data, &project)?;
        println!("access_key {ak}\nsecret_key {sk}");
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "{}",
        vpcflow_server::create_token(database.url.as_deref(), &data, &project)?
    );
    Ok(ExitCode::SUCCESS)
}
