//! The API from the command line: `vpcflow flow-log`, `vpcflow resource`,
//! `vpcflow capture upload` and `vpcflow records` call a running `vpcflow
//! serve`, so a user never needs curl. Answers print as JSON; an error
//! answer prints its `code: message` and exits with 1.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand, ValueEnum};
use serde_json::{Map, Value, json};
use vpcflow_control::api::collection_path;
use vpcflow_control::client::{Body, Client};
use vpcflow_control::resources::Kind;

use crate::ingest::TrafficArg;

/// Where the API is and who calls it.
#[derive(Debug, Args)]
pub struct Endpoint {
    /// The API's base URL.
    #[arg(
        long,
        env = "VPCFLOW_API",
        default_value = "http://127.0.0.1:9696",
        global = true
    )]
    api: String,
    /// The project's token (`vpcflow token create`).
    #[arg(long, env = "VPCFLOW_TOKEN", hide_env_values = true, global = true)]
    token: Option<String>,
    /// The project.
    #[arg(long, env = "VPCFLOW_PROJECT", global = true)]
    project: Option<String>,
}

impl Endpoint {
    /// Calls the API; prints the answer (JSON, pretty) and returns the exit
    /// code.
    fn call(
        &self,
        method: &str,
        path: &str,
        query: &[(&str, String)],
        body: Option<Body>,
    ) -> Result<ExitCode> {
        let Some(project) = &self.project else {
            bail!("say which project: --project ID (or VPCFLOW_PROJECT)")
        };
        let token = self.token.as_deref().context(
            "say whose call this is: --token TOKEN (or VPCFLOW_TOKEN; `vpcflow token create` prints one)",
        )?;
        let answer = Client::new(&self.api, token, project).call(method, path, query, body)?;
        if answer.is_success() {
            if let Some(v) = &answer.json {
                let mut out = std::io::stdout().lock();
                serde_json::to_writer_pretty(&mut out, v)?;
                writeln!(out)?;
            }
            return Ok(ExitCode::SUCCESS);
        }
        match answer.error() {
            Some((code, message)) => eprintln!("vpcflow: {} {code}: {message}", answer.status),
            None => eprintln!("vpcflow: {} {}", answer.status, answer.text.trim()),
        }
        Ok(ExitCode::from(1))
    }
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum ResourceTypeArg {
    Port,
    Network,
    Vpc,
}

/// `vpcflow flow-log ...`
#[derive(Debug, Args)]
pub struct FlowLogArgs {
    #[command(flatten)]
    endpoint: Endpoint,
    #[command(subcommand)]
    command: FlowLogCommand,
}

#[derive(Debug, Subcommand)]
enum FlowLogCommand {
    /// Create a flow log.
    Create {
        /// Name (1-64 letters, digits, `_`, `-`, `.`).
        #[arg(long)]
        name: String,
        /// What it monitors.
        #[arg(long, value_enum)]
        resource_type: ResourceTypeArg,
        /// The port, subnet or VPC.
        #[arg(long)]
        resource_id: String,
        /// Which records it keeps.
        #[arg(long, value_enum, default_value = "all")]
        traffic_type: TrafficArg,
        /// Destination log group.
        #[arg(long)]
        log_group_id: String,
        /// Destination log topic.
        #[arg(long)]
        log_topic_id: String,
        /// Description.
        #[arg(long)]
        description: Option<String>,
        /// Create it disabled.
        #[arg(long)]
        disabled: bool,
    },
    /// List flow logs (filters: any field).
    List {
        /// `FIELD=VALUE` filters (`status=ACTIVE`, `resource_type=vpc`,
        /// `limit=10`, `marker=ID`, ...).
        #[arg(value_name = "FIELD=VALUE")]
        filters: Vec<String>,
    },
    /// Show one flow log.
    Show {
        /// Its id.
        id: String,
    },
    /// Change a flow log's name, description, or state.
    Update {
        /// Its id.
        id: String,
        /// New name.
        #[arg(long)]
        name: Option<String>,
        /// New description.
        #[arg(long)]
        description: Option<String>,
        /// Enable it.
        #[arg(long, conflicts_with = "disable")]
        enable: bool,
        /// Disable it (no records from the next window on).
        #[arg(long)]
        disable: bool,
    },
    /// Delete a flow log.
    Delete {
        /// Its id.
        id: String,
    },
}

fn filters(list: &[String]) -> Result<Vec<(&str, String)>> {
    list.iter()
        .map(|f| {
            f.split_once('=')
                .map(|(k, v)| (k, v.to_string()))
                .with_context(|| format!("filter {f:?}: expected FIELD=VALUE"))
        })
        .collect()
}

/// Runs `vpcflow flow-log ...`.
pub fn run_flow_log(args: FlowLogArgs) -> Result<ExitCode> {
    let e = &args.endpoint;
    match args.command {
        FlowLogCommand::Create {
            name,
            resource_type,
            resource_id,
            traffic_type,
            log_group_id,
            log_topic_id,
            description,
            disabled,
        } => {
            let mut f = json!({
                "name": name,
                "resource_type": format!("{resource_type:?}").to_lowercase(),
                "resource_id": resource_id,
                "traffic_type": format!("{traffic_type:?}").to_lowercase(),
                "log_group_id": log_group_id,
                "log_topic_id": log_topic_id,
                "admin_state": !disabled,
            });
            if let Some(d) = description {
                f["description"] = Value::from(d);
            }
            e.call(
                "POST",
                "fl/flow_logs",
                &[],
                Some(Body::Json(json!({ "flow_log": f }))),
            )
        }
        FlowLogCommand::List { filters: f } => e.call("GET", "fl/flow_logs", &filters(&f)?, None),
        FlowLogCommand::Show { id } => e.call("GET", &format!("fl/flow_logs/{id}"), &[], None),
        FlowLogCommand::Update {
            id,
            name,
            description,
            enable,
            disable,
        } => {
            let mut f = Map::new();
            if let Some(n) = name {
                f.insert("name".into(), Value::from(n));
            }
            if let Some(d) = description {
                f.insert("description".into(), Value::from(d));
            }
            if enable || disable {
                f.insert("admin_state".into(), Value::from(enable));
            }
            if f.is_empty() {
                bail!("nothing to change: --name, --description, --enable or --disable");
            }
            e.call(
                "PUT",
                &format!("fl/flow_logs/{id}"),
                &[],
                Some(Body::Json(json!({ "flow_log": f }))),
            )
        }
        FlowLogCommand::Delete { id } => e.call("DELETE", &format!("fl/flow_logs/{id}"), &[], None),
    }
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum KindArg {
    Vpc,
    Subnet,
    Port,
    SecurityGroup,
    NetworkAcl,
    LogGroup,
    LogTopic,
}

impl KindArg {
    /// Collection path (under the project) and body key.
    fn names(self, log_group: Option<&str>) -> Result<(String, &'static str)> {
        let kind = match self {
            KindArg::Vpc => Kind::Vpc,
            KindArg::Subnet => Kind::Subnet,
            KindArg::Port => Kind::Port,
            KindArg::SecurityGroup => Kind::SecurityGroup,
            KindArg::NetworkAcl => Kind::NetworkAcl,
            KindArg::LogGroup => Kind::LogGroup,
            KindArg::LogTopic => Kind::LogTopic,
        };
        let path = if kind == Kind::LogTopic {
            format!(
                "log-groups/{}/{}",
                log_group.context("log topics live in a log group: --log-group-id ID")?,
                collection_path(kind)
            )
        } else {
            collection_path(kind).to_string()
        };
        Ok((path, kind.file_key()))
    }
}

/// `vpcflow resource ...`
#[derive(Debug, Args)]
pub struct ResourceArgs {
    #[command(flatten)]
    endpoint: Endpoint,
    /// What kind of resource.
    #[arg(value_enum)]
    kind: KindArg,
    /// The log group of a log topic.
    #[arg(long, global = true)]
    log_group_id: Option<String>,
    #[command(subcommand)]
    command: ResourceCommand,
}

#[derive(Debug, Subcommand)]
enum ResourceCommand {
    /// List them (`limit=N`, `marker=ID`).
    List {
        /// `limit=N` or `marker=ID`.
        #[arg(value_name = "FIELD=VALUE")]
        filters: Vec<String>,
    },
    /// Show one.
    Show {
        /// Its id.
        id: String,
    },
    /// Create one from its fields, as JSON (`'{"cidr": "10.0.0.0/16"}'`).
    Create {
        /// The fields (JSON object).
        fields: String,
    },
    /// Change fields (JSON object; null removes an optional field).
    Update {
        /// Its id.
        id: String,
        /// The fields (JSON object).
        fields: String,
    },
    /// Delete one (refused while others use it).
    Delete {
        /// Its id.
        id: String,
    },
}

fn fields_json(key: &str, text: &str) -> Result<Body> {
    let v: Value =
        serde_json::from_str(text).with_context(|| format!("fields: not JSON: {text}"))?;
    if !v.is_object() {
        bail!("fields: expected a JSON object like '{{\"name\": \"web\"}}'");
    }
    Ok(Body::Json(json!({ key: v })))
}

/// Runs `vpcflow resource ...`.
pub fn run_resource(args: ResourceArgs) -> Result<ExitCode> {
    let e = &args.endpoint;
    let (path, key) = args.kind.names(args.log_group_id.as_deref())?;
    match args.command {
        ResourceCommand::List { filters: f } => e.call("GET", &path, &filters(&f)?, None),
        ResourceCommand::Show { id } => e.call("GET", &format!("{path}/{id}"), &[], None),
        ResourceCommand::Create { fields } => {
            e.call("POST", &path, &[], Some(fields_json(key, &fields)?))
        }
        ResourceCommand::Update { id, fields } => e.call(
            "PUT",
            &format!("{path}/{id}"),
            &[],
            Some(fields_json(key, &fields)?),
        ),
        ResourceCommand::Delete { id } => e.call("DELETE", &format!("{path}/{id}"), &[], None),
    }
}

/// `vpcflow capture upload FILE`
#[derive(Debug, Args)]
pub struct CaptureArgs {
    #[command(flatten)]
    endpoint: Endpoint,
    #[command(subcommand)]
    command: CaptureCommand,
}

#[derive(Debug, Subcommand)]
enum CaptureCommand {
    /// Ingest a pcap/pcapng file (optionally gzipped) as the project's traffic.
    Upload {
        /// The capture.
        file: PathBuf,
    },
}

/// Runs `vpcflow capture ...`.
pub fn run_capture(args: CaptureArgs) -> Result<ExitCode> {
    let CaptureCommand::Upload { file } = args.command;
    args.endpoint
        .call("POST", "captures", &[], Some(Body::File(file)))
}

/// `vpcflow records`: a log topic's records through the API.
#[derive(Debug, Args)]
pub struct RecordsArgs {
    #[command(flatten)]
    endpoint: Endpoint,
    /// The log group.
    #[arg(long)]
    log_group_id: String,
    /// The log topic.
    #[arg(long)]
    log_topic_id: String,
    /// Field search (as `vpcflow query`).
    #[arg(long)]
    search: Option<String>,
    /// Windows ending after (RFC 3339 or Unix seconds).
    #[arg(long)]
    since: Option<String>,
    /// Windows starting before.
    #[arg(long)]
    until: Option<String>,
    /// The last duration (`15m`, `2h`, `7d`).
    #[arg(long)]
    last: Option<String>,
    /// SQL over the table `records`.
    #[arg(long)]
    sql: Option<String>,
    /// Rows per page.
    #[arg(long)]
    limit: Option<usize>,
    /// Rows to skip.
    #[arg(long)]
    offset: Option<usize>,
}

/// Flags of `vpcflow analysis`.
#[derive(Debug, Args)]
pub struct AnalysisArgs {
    #[command(flatten)]
    endpoint: Endpoint,
    /// `rules`, `attacks`, `traffic` (as `vpcflow analyze`) or `suggest`
    /// (as `analyze rules --suggest`, the model the server holds).
    #[arg(value_parser = clap::builder::PossibleValuesParser::new(
        vpcflow_control::data::AnalysisKind::NAMES
    ))]
    kind: String,
    /// The log group.
    #[arg(long)]
    log_group_id: String,
    /// The log topic.
    #[arg(long)]
    log_topic_id: String,
    /// Windows ending after (RFC 3339 or Unix seconds).
    #[arg(long)]
    since: Option<String>,
    /// Windows starting before.
    #[arg(long)]
    until: Option<String>,
    /// The last duration (`15m`, `2h`, `7d`).
    #[arg(long)]
    last: Option<String>,
    /// Attacks: thresholds, `NAME=VALUE,NAME=VALUE`.
    #[arg(long)]
    thresholds: Option<String>,
    /// Traffic: the time bucket (`1h`).
    #[arg(long)]
    bucket: Option<String>,
    /// Traffic: rows per top list.
    #[arg(long)]
    top: Option<u64>,
    /// Traffic: rank by `bytes` or `packets`.
    #[arg(long)]
    by: Option<String>,
    /// Rules: every rule's hit counters instead of the findings.
    #[arg(long)]
    hits: bool,
}

/// Runs `vpcflow analysis`.
pub fn run_analysis(args: AnalysisArgs) -> Result<ExitCode> {
    let mut q: Vec<(&str, String)> = Vec::new();
    for (k, v) in [
        ("since", args.since),
        ("until", args.until),
        ("last", args.last),
        ("thresholds", args.thresholds),
        ("bucket", args.bucket),
        ("top", args.top.map(|n| n.to_string())),
        ("by", args.by),
        ("hits", args.hits.then(|| "true".to_string())),
    ] {
        if let Some(v) = v {
            q.push((k, v));
        }
    }
    args.endpoint.call(
        "GET",
        &format!(
            "log-groups/{}/log-topics/{}/analysis/{}",
            args.log_group_id, args.log_topic_id, args.kind
        ),
        &q,
        None,
    )
}

/// Runs `vpcflow records`.
pub fn run_records(args: RecordsArgs) -> Result<ExitCode> {
    let mut q: Vec<(&str, String)> = Vec::new();
    for (k, v) in [
        ("search", args.search),
        ("since", args.since),
        ("until", args.until),
        ("last", args.last),
        ("sql", args.sql),
        ("limit", args.limit.map(|n| n.to_string())),
        ("offset", args.offset.map(|n| n.to_string())),
    ] {
        if let Some(v) = v {
            q.push((k, v));
        }
    }
    args.endpoint.call(
        "GET",
        &format!(
            "log-groups/{}/log-topics/{}/records",
            args.log_group_id, args.log_topic_id
        ),
        &q,
        None,
    )
}
