//! Queries over the store: DataFusion SQL on a `records` table, narrowed to
//! a log group, topic and time range, written as a table, text, JSON or CSV.

use std::io::{self, Write};
use std::path::Path;
use std::sync::Arc;

use datafusion::arrow::array::{Array, RecordBatch};
use datafusion::arrow::datatypes::DataType;
use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::listing::ListingOptions;
use datafusion::prelude::SessionContext;

use crate::StoreError;
use crate::schema::schema;

/// Records whose capture window overlaps `[since, until)` (Unix seconds).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TimeRange {
    /// Earliest instant, if any.
    pub since: Option<u64>,
    /// Latest instant (exclusive), if any.
    pub until: Option<u64>,
}

/// A query.
#[derive(Debug, Clone, Default)]
pub struct Query {
    /// Only this log group (id).
    pub group: Option<String>,
    /// Only this log topic (id).
    pub topic: Option<String>,
    /// Only these windows.
    pub time: TimeRange,
    /// An SQL condition on the records (a translated search).
    pub filter: Option<String>,
    /// SQL over the table `records`; without it, the records themselves.
    pub sql: Option<String>,
    /// At most this many rows.
    pub limit: Option<usize>,
}

/// How to print a result.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputFormat {
    /// An aligned table.
    Table,
    /// The seed's v1 lines (records only).
    V1,
    /// The seed's v2 lines (records only).
    V2,
    /// JSON lines, keys as the result's column names.
    Json,
    /// CSV with a header line.
    Csv,
}

/// What a query returned.
#[derive(Debug)]
pub struct QueryResult {
    /// The rows, in order.
    pub batches: Vec<RecordBatch>,
}

fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// The seed's fields of a v2 line, as stored columns (`None`: the version).
const V2_COLUMNS: [Option<&str>; 20] = [
    None,
    Some("project_id"),
    Some("interface_id"),
    Some("srcaddr"),
    Some("dstaddr"),
    Some("srcport"),
    Some("dstport"),
    Some("protocol"),
    Some("packets"),
    Some("bytes"),
    Some("start"),
    Some("end"),
    Some("action"),
    Some("log_status"),
    Some("direction"),
    Some("tcp_flag"),
    Some("region_id"),
    Some("az_id"),
    Some("vpc_id"),
    Some("network_id"),
];

impl Query {
    /// Runs the query over the store at `root`.
    pub fn run(&self, root: &Path) -> Result<QueryResult, StoreError> {
        if !root.is_dir() {
            return Err(StoreError::io(
                root,
                io::Error::new(io::ErrorKind::NotFound, "no store here"),
            ));
        }
        let groups: Vec<std::path::PathBuf> = match &self.group {
            Some(g) => vec![root.join(format!("log_group={g}"))],
            None => std::fs::read_dir(root)
                .map_err(|e| StoreError::io(root, e))?
                .flatten()
                .map(|e| e.path())
                .collect(),
        };
        if let Some(g) = &self.group
            && !groups[0].is_dir()
        {
            return Err(StoreError::NotFound {
                kind: "log group",
                name: g.clone(),
                dir: root.display().to_string(),
            });
        }
        if let Some(t) = &self.topic
            && !groups
                .iter()
                .any(|g| g.join(format!("log_topic={t}")).is_dir())
        {
            return Err(StoreError::NotFound {
                kind: "log topic",
                name: t.clone(),
                dir: root.display().to_string(),
            });
        }
        let bad = unreadable_files(&groups)?;
        if !bad.is_empty() {
            return Err(StoreError::Query(format!(
                "unreadable store files (move them out of the store to query the rest): {}",
                bad.join("; ")
            )));
        }
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| StoreError::Query(e.to_string()))?;
        let q = |e: datafusion::error::DataFusionError| StoreError::Query(e.to_string());
        rt.block_on(async {
            let ctx = SessionContext::new();
            ctx.register_udf(cidr_contains_udf());
            let opts = ListingOptions::new(Arc::new(ParquetFormat::default()))
                .with_file_extension(".parquet")
                .with_table_partition_cols(
                    ["log_group", "log_topic", "date", "hour"]
                        .iter()
                        .map(|c| (c.to_string(), DataType::Utf8))
                        .collect(),
                );
            let url = format!(
                "{}/",
                root.canonicalize()
                    .map_err(|e| StoreError::io(root, e))?
                    .display()
            );
            ctx.register_listing_table("all_records", &url, opts, Some(schema()), None)
                .await
                .map_err(q)?;
            let mut conds = Vec::new();
            if let Some(g) = &self.group {
                conds.push(format!("log_group = {}", quote(g)));
            }
            if let Some(t) = &self.topic {
                conds.push(format!("log_topic = {}", quote(t)));
            }
            if let Some(s) = self.time.since {
                conds.push(format!("\"end\" > {s}"));
            }
            if let Some(u) = self.time.until {
                conds.push(format!("start < {u}"));
            }
            if let Some(f) = &self.filter {
                conds.push(format!("({f})"));
            }
            let where_ = if conds.is_empty() {
                String::new()
            } else {
                format!(" WHERE {}", conds.join(" AND "))
            };
            ctx.sql(&format!(
                "CREATE VIEW records AS SELECT * FROM all_records{where_}"
            ))
            .await
            .map_err(q)?;
            let sql = match &self.sql {
                Some(s) => s.clone(),
                None => "SELECT * FROM records ORDER BY start, record_index, log_group, log_topic"
                    .to_string(),
            };
            let mut df = ctx.sql(&sql).await.map_err(q)?;
            if let Some(n) = self.limit {
                df = df.limit(0, Some(n)).map_err(q)?;
            }
            let batches = df.collect().await.map_err(q)?;
            Ok(QueryResult { batches })
        })
    }
}

/// Store files under `dirs` whose Parquet footer cannot be read, with why.
fn unreadable_files(dirs: &[std::path::PathBuf]) -> Result<Vec<String>, StoreError> {
    use datafusion::parquet::file::reader::SerializedFileReader;
    let mut bad = Vec::new();
    let mut stack: Vec<std::path::PathBuf> = dirs.iter().filter(|d| d.is_dir()).cloned().collect();
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d)
            .map_err(|e| StoreError::io(&d, e))?
            .flatten()
        {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "parquet") {
                let ok = std::fs::File::open(&p)
                    .map_err(|e| e.to_string())
                    .and_then(|f| {
                        SerializedFileReader::new(f)
                            .map(|_| ())
                            .map_err(|e| e.to_string())
                    });
                if let Err(why) = ok {
                    bad.push(format!("{}: {why}", p.display()));
                }
            }
        }
    }
    bad.sort();
    Ok(bad)
}

/// `a.b.c.d/n` or `x::y/n` (a bare address is a host prefix).
fn parse_cidr(s: &str) -> Option<(std::net::IpAddr, u32)> {
    let (addr, len) = match s.split_once('/') {
        Some((a, l)) => (a.parse::<std::net::IpAddr>().ok()?, l.parse::<u32>().ok()?),
        None => {
            let a = s.parse::<std::net::IpAddr>().ok()?;
            (a, if a.is_ipv4() { 32 } else { 128 })
        }
    };
    let max = if addr.is_ipv4() { 32 } else { 128 };
    (len <= max).then_some((addr, len))
}

fn in_cidr(a: &std::net::IpAddr, (net, len): (std::net::IpAddr, u32)) -> bool {
    use std::net::IpAddr::{V4, V6};
    match (a, net) {
        (V4(a), V4(n)) => {
            let mask = if len == 0 { 0 } else { u32::MAX << (32 - len) };
            u32::from(*a) & mask == u32::from(n) & mask
        }
        (V6(a), V6(n)) => {
            let mask = if len == 0 {
                0
            } else {
                u128::MAX << (128 - len)
            };
            u128::from(*a) & mask == u128::from(n) & mask
        }
        _ => false,
    }
}

/// `cidr_contains(address, 'cidr')`: the search's `srcaddr:10.0.0.0/8`.
fn cidr_contains_udf() -> datafusion::logical_expr::ScalarUDF {
    use datafusion::arrow::array::{BooleanArray, StringArray};
    use datafusion::logical_expr::{ColumnarValue, Volatility, create_udf};
    create_udf(
        "cidr_contains",
        vec![DataType::Utf8, DataType::Utf8],
        DataType::Boolean,
        Volatility::Immutable,
        Arc::new(|args: &[ColumnarValue]| {
            let arrays = ColumnarValue::values_to_arrays(args)?;
            let err = |m: String| datafusion::error::DataFusionError::Execution(m);
            let addrs = arrays[0]
                .as_any()
                .downcast_ref::<StringArray>()
                .ok_or_else(|| err("cidr_contains: the address must be text".into()))?;
            let nets = arrays[1]
                .as_any()
                .downcast_ref::<StringArray>()
                .ok_or_else(|| err("cidr_contains: the prefix must be text".into()))?;
            let mut out = Vec::with_capacity(addrs.len());
            for i in 0..addrs.len() {
                if addrs.is_null(i) || nets.is_null(i) {
                    out.push(None);
                    continue;
                }
                let net = parse_cidr(nets.value(i))
                    .ok_or_else(|| err(format!("`{}` is not an address prefix", nets.value(i))))?;
                out.push(Some(
                    addrs
                        .value(i)
                        .parse::<std::net::IpAddr>()
                        .is_ok_and(|a| in_cidr(&a, net)),
                ));
            }
            Ok(ColumnarValue::Array(Arc::new(BooleanArray::from(out))))
        }),
    )
}

fn formatters<'a>(
    b: &'a RecordBatch,
    opts: &'a FormatOptions<'a>,
) -> Result<Vec<ArrayFormatter<'a>>, StoreError> {
    b.columns()
        .iter()
        .map(|c| {
            ArrayFormatter::try_new(c.as_ref(), opts).map_err(|e| StoreError::Query(e.to_string()))
        })
        .collect()
}

fn json_string(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
}

impl QueryResult {
    /// Rows returned.
    pub fn rows(&self) -> usize {
        self.batches.iter().map(|b| b.num_rows()).sum()
    }

    /// Writes the result.
    pub fn write(&self, format: OutputFormat, out: &mut impl Write) -> Result<(), StoreError> {
        let w = |e: io::Error| StoreError::Query(format!("writing the result: {e}"));
        let opts = FormatOptions::default().with_null("-");
        match format {
            OutputFormat::Table if self.rows() == 0 => {
                writeln!(out, "(no rows)").map_err(w)?;
            }
            OutputFormat::Table => {
                let t = datafusion::arrow::util::pretty::pretty_format_batches(&self.batches)
                    .map_err(|e| StoreError::Query(e.to_string()))?;
                writeln!(out, "{t}").map_err(w)?;
            }
            OutputFormat::V1 | OutputFormat::V2 => {
                let n = if format == OutputFormat::V1 { 14 } else { 20 };
                let version = if format == OutputFormat::V1 { "1" } else { "2" };
                for b in &self.batches {
                    let schema = b.schema();
                    let idx: Vec<Option<usize>> = V2_COLUMNS[..n]
                        .iter()
                        .map(|c| match c {
                            None => Ok(None),
                            Some(name) => schema.index_of(name).map(Some).map_err(|_| {
                                StoreError::Query(format!(
                                    "--format v1/v2 needs the record columns; the result has no `{name}`"
                                ))
                            }),
                        })
                        .collect::<Result<_, _>>()?;
                    let f = formatters(b, &opts)?;
                    let mut line = String::new();
                    for row in 0..b.num_rows() {
                        line.clear();
                        for (k, i) in idx.iter().enumerate() {
                            if k > 0 {
                                line.push(' ');
                            }
                            match i {
                                None => line.push_str(version),
                                Some(i) => line.push_str(&f[*i].value(row).to_string()),
                            }
                        }
                        line.push('\n');
                        out.write_all(line.as_bytes()).map_err(w)?;
                    }
                }
            }
            OutputFormat::Json => {
                for b in &self.batches {
                    let schema = b.schema();
                    let f = formatters(b, &opts)?;
                    let mut line = String::new();
                    for row in 0..b.num_rows() {
                        line.clear();
                        line.push('{');
                        for (i, field) in schema.fields().iter().enumerate() {
                            if i > 0 {
                                line.push(',');
                            }
                            json_string(field.name(), &mut line);
                            line.push(':');
                            let col = b.column(i);
                            if col.is_null(row) {
                                line.push_str("null");
                            } else if field.data_type().is_numeric() {
                                line.push_str(&f[i].value(row).to_string());
                            } else {
                                json_string(&f[i].value(row).to_string(), &mut line);
                            }
                        }
                        line.push_str("}\n");
                        out.write_all(line.as_bytes()).map_err(w)?;
                    }
                }
            }
            OutputFormat::Csv => {
                let csv = |s: &str| {
                    if s.contains([',', '"', '\n']) {
                        format!("\"{}\"", s.replace('"', "\"\""))
                    } else {
                        s.to_string()
                    }
                };
                let opts = FormatOptions::default().with_null("");
                let mut header_done = false;
                for b in &self.batches {
                    let schema = b.schema();
                    if !header_done {
                        let names: Vec<String> =
                            schema.fields().iter().map(|f| csv(f.name())).collect();
                        writeln!(out, "{}", names.join(",")).map_err(w)?;
                        header_done = true;
                    }
                    let f = formatters(b, &opts)?;
                    for row in 0..b.num_rows() {
                        let cells: Vec<String> =
                            f.iter().map(|f| csv(&f.value(row).to_string())).collect();
                        writeln!(out, "{}", cells.join(",")).map_err(w)?;
                    }
                }
            }
        }
        Ok(())
    }
}
