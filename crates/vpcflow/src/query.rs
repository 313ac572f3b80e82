//! `vpcflow query`: search the log store.

use std::io::{self, BufWriter, Write};
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Args, ValueEnum};
use vpcflow_core::time::{parse_duration_secs, parse_instant};
use vpcflow_runtime::{Clock, SystemClock};
use vpcflow_store::{OutputFormat, Query, TimeRange};

#[derive(Debug, Clone, Copy, ValueEnum)]
enum FormatArg {
    Table,
    V1,
    V2,
    Json,
    Csv,
}

/// Flags of `vpcflow query`.
#[derive(Debug, Args)]
pub struct QueryArgs {
    #[command(flatten)]
    scope: RecordsScope,
    /// SQL over the table `records` (the search and the options above narrow it first).
    #[arg(long, value_name = "SQL")]
    sql: Option<String>,
    /// Output format.
    #[arg(long, value_enum, default_value = "table")]
    format: FormatArg,
    /// At most N rows.
    #[arg(long, value_name = "N")]
    limit: Option<usize>,
    /// A field search, e.g. `action:REJECT AND dstport:22`, `srcaddr:10.0.0.0/8`,
    /// `NOT protocol:17`, `bytes>1000000`.
    #[arg(value_name = "SEARCH", num_args = 0..)]
    search: Vec<String>,
}

/// Which records a command that reads the store reads.
#[derive(Debug, Args)]
pub struct RecordsScope {
    /// The log store: a directory, or ClickHouse
    /// (`clickhouse://HOST:PORT[,HOST:PORT...]/DATABASE[?cluster=NAME]`).
    #[arg(long, value_name = "DIR|URL", default_value = "vpcflow-store")]
    pub store: vpcflow_store::StoreLocation,
    /// Only this log group (id or name).
    #[arg(long, value_name = "ID|NAME")]
    pub group: Option<String>,
    /// Only this log topic (id or name).
    #[arg(long, value_name = "ID|NAME")]
    pub topic: Option<String>,
    #[command(flatten)]
    pub range: RangeArgs,
}

/// The time range flags of the commands that read the store.
#[derive(Debug, Args)]
pub struct RangeArgs {
    /// Only windows that end after this long ago (e.g. 90s, 15m, 1h, 7d).
    #[arg(long, value_name = "DURATION", conflicts_with_all = ["since", "until"])]
    last: Option<String>,
    /// Only windows that end after T (RFC 3339 or Unix seconds).
    #[arg(long, value_name = "T")]
    since: Option<String>,
    /// Only windows that start before T (RFC 3339 or Unix seconds).
    #[arg(long, value_name = "T")]
    until: Option<String>,
}

impl RangeArgs {
    /// The range the flags name (`--last` counts back from now).
    pub fn range(&self) -> Result<TimeRange> {
        Ok(match &self.last {
            Some(d) => {
                let now = SystemClock.now().0 / 1_000_000_000;
                TimeRange {
                    since: Some(now.saturating_sub(parse_duration_secs(d)?)),
                    until: None,
                }
            }
            None => TimeRange {
                since: self.since.as_deref().map(parse_instant).transpose()?,
                until: self.until.as_deref().map(parse_instant).transpose()?,
            },
        })
    }
}

/// Runs `vpcflow query`.
pub fn run(args: QueryArgs) -> Result<ExitCode> {
    let time = args.scope.range.range()?;
    let filter = if args.search.is_empty() {
        None
    } else {
        Some(vpcflow_store::search::to_sql(&args.search.join(" ")).context("search")?)
    };
    // A terminal table of every stored column is too wide to read: without
    // SQL it shows the columns people scan records by.
    let sql = match (&args.sql, args.format) {
        (Some(sql), _) => Some(sql.clone()),
        (None, FormatArg::Table) => Some(
            "SELECT start, interface_id, direction, srcaddr, srcport, dstaddr, dstport, protocol, \
             packets, bytes, action, log_status, decided_by, rule_id FROM records \
             ORDER BY start, record_index, log_group, log_topic"
                .to_string(),
        ),
        (None, _) => None,
    };
    let q = Query {
        group: args.scope.group.clone(),
        topic: args.scope.topic.clone(),
        time,
        filter,
        sql,
        limit: args.limit,
        ..Query::default()
    };
    let result = q.run_at(&args.scope.store)?;
    for s in &result.skipped {
        eprintln!("vpcflow: warning: skipped an unreadable store file: {s}");
    }
    let format = match args.format {
        FormatArg::Table => OutputFormat::Table,
        FormatArg::V1 => OutputFormat::V1,
        FormatArg::V2 => OutputFormat::V2,
        FormatArg::Json => OutputFormat::Json,
        FormatArg::Csv => OutputFormat::Csv,
    };
    let mut out = BufWriter::new(io::stdout().lock());
    match result.write(format, &mut out) {
        Ok(()) => {}
        Err(e) if e.to_string().contains("Broken pipe") => return Ok(ExitCode::SUCCESS),
        Err(e) => return Err(e.into()),
    }
    out.flush().ok();
    Ok(ExitCode::SUCCESS)
}
