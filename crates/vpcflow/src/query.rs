//! `vpcflow query`: search the log store.

use std::io::{self, BufWriter, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::{Args, ValueEnum};
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
    /// The log store.
    #[arg(long, value_name = "DIR", default_value = "vpcflow-store")]
    store: PathBuf,
    /// Only this log group (id or name).
    #[arg(long, value_name = "ID|NAME")]
    group: Option<String>,
    /// Only this log topic (id or name).
    #[arg(long, value_name = "ID|NAME")]
    topic: Option<String>,
    /// Only windows that end after this long ago (e.g. 90s, 15m, 1h, 7d).
    #[arg(long, value_name = "DURATION", conflicts_with_all = ["since", "until"])]
    last: Option<String>,
    /// Only windows that end after T (RFC 3339 or Unix seconds).
    #[arg(long, value_name = "T")]
    since: Option<String>,
    /// Only windows that start before T (RFC 3339 or Unix seconds).
    #[arg(long, value_name = "T")]
    until: Option<String>,
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

/// Parses `90s`, `15m`, `1h`, `7d`.
pub fn duration_secs(s: &str) -> Result<u64> {
    let (n, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let n: u64 = n
        .parse()
        .with_context(|| format!("`{s}` is not a duration like 90s, 15m, 1h, 7d"))?;
    let mult = match unit {
        "s" | "" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => bail!("`{s}`: the unit must be s, m, h or d"),
    };
    Ok(n * mult)
}

/// The wall clock, nanoseconds since the Unix epoch (0 before it).
pub fn wall_clock_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

/// Parses Unix seconds or RFC 3339 (`2026-11-24T10:00:00Z`, offsets allowed).
pub fn instant(s: &str) -> Result<u64> {
    if let Ok(n) = s.parse::<u64>() {
        return Ok(n);
    }
    let bad = || {
        anyhow::anyhow!(
            "`{s}` is neither Unix seconds nor an RFC 3339 time like 2026-11-24T10:00:00Z"
        )
    };
    let b = s.as_bytes();
    if b.len() < 20
        || b[4] != b'-'
        || b[7] != b'-'
        || !matches!(b[10], b'T' | b't' | b' ')
        || b[13] != b':'
        || b[16] != b':'
    {
        return Err(bad());
    }
    let num =
        |r: std::ops::Range<usize>| s.get(r).and_then(|x| x.parse::<i64>().ok()).ok_or_else(bad);
    let (y, mo, d, h, mi, se) = (
        num(0..4)?,
        num(5..7)?,
        num(8..10)?,
        num(11..13)?,
        num(14..16)?,
        num(17..19)?,
    );
    let mut rest = &s[19..];
    if let Some(r) = rest.strip_prefix('.') {
        rest = r.trim_start_matches(|c: char| c.is_ascii_digit());
    }
    let offset = match rest {
        "Z" | "z" => 0,
        r if r.len() == 6 && (r.starts_with('+') || r.starts_with('-')) => {
            let sign = if r.starts_with('-') { -1 } else { 1 };
            let hh: i64 = r[1..3].parse().map_err(|_| bad())?;
            let mm: i64 = r[4..6].parse().map_err(|_| bad())?;
            sign * (hh * 3600 + mm * 60)
        }
        _ => return Err(bad()),
    };
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || se > 60 {
        return Err(bad());
    }
    // Days from civil (Howard Hinnant).
    let yy = if mo <= 2 { y - 1 } else { y };
    let era = yy.div_euclid(400);
    let yoe = yy - era * 400;
    let mp = (mo + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let t = days * 86_400 + h * 3600 + mi * 60 + se - offset;
    u64::try_from(t).map_err(|_| bad())
}

/// Runs `vpcflow query`.
pub fn run(args: QueryArgs) -> Result<ExitCode> {
    let time = match &args.last {
        Some(d) => {
            let now = wall_clock_ns() / 1_000_000_000;
            TimeRange {
                since: Some(now.saturating_sub(duration_secs(d)?)),
                until: None,
            }
        }
        None => TimeRange {
            since: args.since.as_deref().map(instant).transpose()?,
            until: args.until.as_deref().map(instant).transpose()?,
        },
    };
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
        group: args.group.clone(),
        topic: args.topic.clone(),
        time,
        filter,
        sql,
        limit: args.limit,
        ..Query::default()
    };
    let result = q.run(&args.store)?;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instants_and_durations() {
        assert_eq!(instant("1548752136").unwrap(), 1_548_752_136);
        assert_eq!(instant("2019-01-29T09:35:36Z").unwrap(), 1_548_754_536);
        assert_eq!(instant("2019-01-29T10:35:36+01:00").unwrap(), 1_548_754_536);
        assert_eq!(instant("2000-02-29T00:00:00.5Z").unwrap(), 951_782_400);
        assert!(instant("yesterday").is_err());
        assert!(instant("2019-13-01T00:00:00Z").is_err());
        assert_eq!(duration_secs("15m").unwrap(), 900);
        assert_eq!(duration_secs("7d").unwrap(), 604_800);
        assert!(duration_secs("1w").is_err());
    }
}
