//! Queries run in ClickHouse: the query's scope (log group, topic, time
//! range, search) becomes a subquery named `records`, the user's SQL is
//! parsed and every `records` in it replaced by that subquery, and the
//! answer comes back as text with its types, turned into the Arrow
//! batches the Parquet store's queries give (so every output format
//! prints both alike).
//!
//! What the SQL may read is only `records`: any other table, table
//! function or dictionary is refused before the server sees it, and the
//! server runs it read-only, within the query's limits of time, memory
//! and answer size.

use std::ops::ControlFlow;
use std::sync::Arc;

use datafusion::arrow::array::{
    ArrayRef, Float64Builder, Int64Builder, RecordBatch, StringBuilder,
    TimestampMillisecondBuilder, UInt64Builder,
};
use datafusion::arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use datafusion::sql::sqlparser::ast::{
    Expr, FunctionArg, FunctionArgExpr, FunctionArguments, SetExpr, Statement, TableFactor, Value,
    VisitMut, VisitorMut,
};
use datafusion::sql::sqlparser::dialect::ClickHouseDialect;
use datafusion::sql::sqlparser::parser::Parser;

use super::{ClickHouse, Features, Target, literal};
use crate::StoreError;
use crate::limits::check_sql;
use crate::query::{Query, QueryResult};
use crate::schema::{PARTITIONS, columns};

/// Functions that read something other than the records (dictionaries,
/// other tables, files, the network), refused in a query's SQL.
const READS_ELSEWHERE: [&str; 14] = [
    "dictget",
    "dicthas",
    "dictisin",
    "dictgethierarchy",
    "joinget",
    "file",
    "url",
    "remote",
    "remotesecure",
    "cluster",
    "mysql",
    "jdbc",
    "odbc",
    "hdfs",
];

fn refused(why: impl std::fmt::Display) -> StoreError {
    StoreError::Query(why.to_string())
}

/// `cidr_contains(address, 'prefix')` (the search's `srcaddr:10.0.0.0/8`)
/// in the functions ClickHouse 18.16 has: the address text as a number
/// between the prefix's first and last.
fn cidr_condition(address: &str, prefix: &str, f: Features) -> Result<String, StoreError> {
    let bad = || {
        refused(format!(
            "cidr_contains: `{prefix}` is not an address or prefix"
        ))
    };
    let (addr, len) = match prefix.split_once('/') {
        Some((a, l)) => (
            a.parse::<std::net::IpAddr>().map_err(|_| bad())?,
            l.parse::<u32>().map_err(|_| bad())?,
        ),
        None => {
            let a = prefix.parse::<std::net::IpAddr>().map_err(|_| bad())?;
            (a, if a.is_ipv4() { 32 } else { 128 })
        }
    };
    let max = if addr.is_ipv4() { 32 } else { 128 };
    if len > max {
        return Err(bad());
    }
    if f.ip_ranges {
        // A current release: its own test, which takes NULL and either
        // family, and throws on no valid address (IPv4StringToNum does).
        return Ok(format!(
            "isIPAddressInRange({address}, {})",
            literal(prefix)
        ));
    }
    Ok(match addr {
        std::net::IpAddr::V4(a) if len <= 32 => {
            let mask = if len == 0 { 0 } else { u32::MAX << (32 - len) };
            let first = u32::from(a) & mask;
            let last = first | !mask;
            format!(
                "(position({address}, ':') = 0 AND IPv4StringToNum(ifNull({address}, '')) BETWEEN {first} AND {last} AND {address} != '')"
            )
        }
        std::net::IpAddr::V6(a) if len <= 128 => {
            let mask = if len == 0 {
                0
            } else {
                u128::MAX << (128 - len)
            };
            let first = u128::from(a) & mask;
            let last = first | !mask;
            format!(
                "(position({address}, ':') > 0 AND IPv6StringToNum(ifNull({address}, '')) BETWEEN unhex('{first:032x}') AND unhex('{last:032x}'))"
            )
        }
        _ => return Err(bad()),
    })
}

/// What the rewrite of a query's SQL does to its parts.
struct Rewrite {
    /// `(scope) AS records`, put where the SQL names `records`.
    records: TableFactor,
    features: Features,
    error: Option<StoreError>,
}

impl Rewrite {
    fn fail(&mut self, e: StoreError) -> ControlFlow<()> {
        self.error = Some(e);
        ControlFlow::Break(())
    }
}

/// Whether `factor` is the table `records` (a name, not a function).
fn is_records(factor: &TableFactor) -> bool {
    matches!(factor, TableFactor::Table { name, args: None, .. }
        if name.0.len() == 1 && name.to_string().trim_matches('"').eq_ignore_ascii_case("records"))
}

impl VisitorMut for Rewrite {
    type Break = ();

    /// NULLs sort as the Parquet store's engine sorts them (DataFusion:
    /// as the largest value), not as ClickHouse does (last either way),
    /// where the SQL does not say.
    fn pre_visit_query(
        &mut self,
        query: &mut datafusion::sql::sqlparser::ast::Query,
    ) -> ControlFlow<()> {
        use datafusion::sql::sqlparser::ast::OrderByKind;
        if let Some(order) = &mut query.order_by
            && let OrderByKind::Expressions(exprs) = &mut order.kind
        {
            for e in exprs {
                if e.options.nulls_first.is_none() {
                    e.options.nulls_first = Some(e.options.asc == Some(false));
                }
            }
        }
        ControlFlow::Continue(())
    }

    fn pre_visit_table_factor(&mut self, factor: &mut TableFactor) -> ControlFlow<()> {
        match factor {
            TableFactor::Table { .. } if is_records(factor) => ControlFlow::Continue(()),
            TableFactor::Derived { .. } | TableFactor::NestedJoin { .. } => {
                ControlFlow::Continue(())
            }
            _ => self.fail(refused(format!(
                "{factor}: a query reads only the table `records`"
            ))),
        }
    }

    /// After the checks, so the scope put in is not visited.
    fn post_visit_table_factor(&mut self, factor: &mut TableFactor) -> ControlFlow<()> {
        if !is_records(factor) {
            return ControlFlow::Continue(());
        }
        if let TableFactor::Table { alias, .. } = factor {
            let alias = alias.take();
            let mut with = self.records.clone();
            if let (Some(a), TableFactor::Derived { alias: d, .. }) = (alias, &mut with) {
                *d = Some(a);
            }
            *factor = with;
        }
        ControlFlow::Continue(())
    }

    fn post_visit_expr(&mut self, expr: &mut Expr) -> ControlFlow<()> {
        // TRUE and FALSE: ClickHouse before 21 knows them as 1 and 0.
        if let Expr::Value(v) = expr
            && let Value::Boolean(b) = v.value
        {
            v.value = Value::Number(if b { "1" } else { "0" }.into(), false);
            return ControlFlow::Continue(());
        }
        let Expr::Function(f) = expr else {
            return ControlFlow::Continue(());
        };
        let name = f.name.to_string().to_ascii_lowercase();
        if READS_ELSEWHERE
            .iter()
            .any(|r| name == *r || (r.starts_with("dict") && name.starts_with(r)))
        {
            return self.fail(refused(format!(
                "{name}: a query reads only the table `records`"
            )));
        }
        if name != "cidr_contains" {
            return ControlFlow::Continue(());
        }
        let args = match &f.args {
            FunctionArguments::List(l) => &l.args,
            _ => return self.fail(refused("cidr_contains(address, 'prefix') takes two values")),
        };
        let (
            [
                FunctionArg::Unnamed(FunctionArgExpr::Expr(address)),
                FunctionArg::Unnamed(FunctionArgExpr::Expr(Expr::Value(prefix))),
            ],
        ) = (args.as_slice(),)
        else {
            return self.fail(refused("cidr_contains(address, 'prefix') takes two values"));
        };
        let Value::SingleQuotedString(prefix) = &prefix.value else {
            return self.fail(refused("cidr_contains: the prefix is a quoted text"));
        };
        let replaced =
            cidr_condition(&address.to_string(), prefix, self.features).and_then(|text| {
                Parser::new(&ClickHouseDialect {})
                    .try_with_sql(&text)
                    .and_then(|mut p| p.parse_expr())
                    .map_err(refused)
            });
        match replaced {
            Ok(e) => {
                *expr = Expr::Nested(Box::new(e));
                ControlFlow::Continue(())
            }
            Err(e) => self.fail(e),
        }
    }
}

/// Parses `sql` (one `SELECT`) and rewrites it over `scope`, the SQL of
/// the records it may read.
pub(super) fn rewrite(sql: &str, scope: &str, features: Features) -> Result<String, StoreError> {
    let dialect = ClickHouseDialect {};
    let parse =
        |text: &str| Parser::parse_sql(&dialect, text).map_err(|e| refused(format!("SQL: {e}")));
    let mut wrapper = parse(&format!("SELECT * FROM ({scope}) AS records"))?;
    let records = match wrapper.pop() {
        Some(Statement::Query(q)) => match *q.body {
            SetExpr::Select(s) => s.from.into_iter().next().map(|t| t.relation),
            _ => None,
        },
        _ => None,
    }
    .ok_or_else(|| refused("the records' scope is not a query"))?;
    let mut statements = parse(sql)?;
    let [Statement::Query(_)] = statements.as_slice() else {
        return Err(refused("SQL: one SELECT (a query only reads)"));
    };
    let mut visitor = Rewrite {
        records,
        features,
        error: None,
    };
    let _ = statements.visit(&mut visitor);
    if let Some(e) = visitor.error {
        return Err(e);
    }
    Ok(statements[0].to_string())
}

/// A column of an answer, by its ClickHouse type.
enum Builder {
    UInt(UInt64Builder),
    Int(Int64Builder),
    Float(Float64Builder),
    Time(TimestampMillisecondBuilder),
    Text(StringBuilder),
}

impl Builder {
    fn of(ty: &str) -> (Builder, DataType, bool) {
        let (inner, nullable) = match ty
            .strip_prefix("Nullable(")
            .and_then(|t| t.strip_suffix(')'))
        {
            Some(t) => (t, true),
            None => (ty, false),
        };
        let inner = inner
            .strip_prefix("LowCardinality(")
            .and_then(|t| t.strip_suffix(')'))
            .unwrap_or(inner);
        let (b, dt) = match inner {
            "UInt8" | "UInt16" | "UInt32" | "UInt64" => {
                (Builder::UInt(UInt64Builder::new()), DataType::UInt64)
            }
            "Int8" | "Int16" | "Int32" | "Int64" => {
                (Builder::Int(Int64Builder::new()), DataType::Int64)
            }
            "Float32" | "Float64" => (Builder::Float(Float64Builder::new()), DataType::Float64),
            t if t == "DateTime" || t.starts_with("DateTime(") => (
                Builder::Time(TimestampMillisecondBuilder::new().with_timezone("UTC")),
                DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into())),
            ),
            _ => (Builder::Text(StringBuilder::new()), DataType::Utf8),
        };
        (b, dt, nullable)
    }

    fn push(&mut self, v: Option<&str>) -> Result<(), String> {
        let bad = |v: &str| format!("`{v}` is not a value of its column's type");
        match (self, v) {
            (Builder::UInt(b), None) => b.append_null(),
            (Builder::Int(b), None) => b.append_null(),
            (Builder::Float(b), None) => b.append_null(),
            (Builder::Time(b), None) => b.append_null(),
            (Builder::Text(b), None) => b.append_null(),
            (Builder::UInt(b), Some(v)) => b.append_value(v.parse().map_err(|_| bad(v))?),
            (Builder::Int(b), Some(v)) => b.append_value(v.parse().map_err(|_| bad(v))?),
            (Builder::Float(b), Some(v)) => b.append_value(match v {
                "inf" => f64::INFINITY,
                "-inf" => f64::NEG_INFINITY,
                "nan" | "-nan" => f64::NAN,
                v => v.parse().map_err(|_| bad(v))?,
            }),
            (Builder::Time(b), Some(v)) => {
                b.append_value(date_time_secs(v).ok_or_else(|| bad(v))? * 1000)
            }
            (Builder::Text(b), Some(v)) => b.append_value(v),
        }
        Ok(())
    }

    fn finish(self) -> ArrayRef {
        match self {
            Builder::UInt(mut b) => Arc::new(b.finish()),
            Builder::Int(mut b) => Arc::new(b.finish()),
            Builder::Float(mut b) => Arc::new(b.finish()),
            Builder::Time(mut b) => Arc::new(b.finish()),
            Builder::Text(mut b) => Arc::new(b.finish()),
        }
    }
}

/// `YYYY-MM-DD hh:mm:ss` (UTC) as Unix seconds.
fn date_time_secs(v: &str) -> Option<i64> {
    let b = v.as_bytes();
    if b.len() != 19
        || b[4] != b'-'
        || b[7] != b'-'
        || b[10] != b' '
        || b[13] != b':'
        || b[16] != b':'
    {
        return None;
    }
    let n = |r: std::ops::Range<usize>| v.get(r)?.parse::<i64>().ok();
    let (y, m, d) = (n(0..4)?, n(5..7)?, n(8..10)?);
    let (hh, mm, ss) = (n(11..13)?, n(14..16)?, n(17..19)?);
    let days = vpcflow_core::time::days_from_civil(y, m, d);
    Some(days * 86_400 + hh * 3600 + mm * 60 + ss)
}

/// A value of TabSeparated text unescaped (`None`: `\N`, NULL).
fn unescape(field: &str) -> Option<std::borrow::Cow<'_, str>> {
    if field == "\\N" {
        return None;
    }
    if !field.contains('\\') {
        return Some(field.into());
    }
    let mut out = String::with_capacity(field.len());
    let mut chars = field.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('n') => out.push('\n'),
            Some('t') => out.push('\t'),
            Some('r') => out.push('\r'),
            Some('b') => out.push('\u{8}'),
            Some('f') => out.push('\u{c}'),
            Some('0') => out.push('\0'),
            Some(c) => out.push(c),
            None => out.push('\\'),
        }
    }
    Some(out.into())
}

/// An answer in `TabSeparatedWithNamesAndTypes` as one Arrow batch.
pub(super) fn batch_of(text: &str) -> Result<Vec<RecordBatch>, StoreError> {
    let bad = |why: String| refused(format!("the server's answer: {why}"));
    let mut lines = text.split_terminator('\n');
    let (Some(names), Some(types)) = (lines.next(), lines.next()) else {
        return Err(bad("no header".into()));
    };
    let names: Vec<String> = names
        .split('\t')
        .map(|n| unescape(n).unwrap_or_default().into_owned())
        .collect();
    let mut fields = Vec::new();
    let mut builders = Vec::new();
    for (name, ty) in names.iter().zip(types.split('\t')) {
        let (b, dt, nullable) = Builder::of(ty);
        fields.push(Field::new(name, dt, nullable));
        builders.push(b);
    }
    if fields.len() != names.len() {
        return Err(bad("a column without its type".into()));
    }
    for line in lines {
        let mut n = 0;
        for (field, b) in line.split('\t').zip(builders.iter_mut()) {
            b.push(unescape(field).as_deref()).map_err(bad)?;
            n += 1;
        }
        if n != fields.len() {
            return Err(bad(format!("a row of {n} values, not {}", fields.len())));
        }
    }
    let arrays: Vec<ArrayRef> = builders.into_iter().map(Builder::finish).collect();
    let batch = RecordBatch::try_new(Arc::new(Schema::new(fields)), arrays)
        .map_err(|e| bad(e.to_string()))?;
    // As DataFusion answers: no rows, no batch.
    Ok(if batch.num_rows() == 0 {
        Vec::new()
    } else {
        vec![batch]
    })
}

impl ClickHouse {
    /// The SQL of the records `q` may read: its log group, topic, time
    /// range and search, with the Parquet store's columns in its order.
    fn scope(&self, q: &Query) -> Result<String, StoreError> {
        let topics = self.topics(q)?;
        let mut conds = topics.clone();
        let mut ledger = topics;
        if let Some(s) = q.time.since {
            conds.push(format!("\"end\" > {s}"));
            // A window is at most ten minutes long.
            ledger.push(format!("start + 3600 > {s}"));
        }
        if let Some(u) = q.time.until {
            conds.push(format!("start < {u}"));
            ledger.push(format!("start < {u}"));
        }
        // Only windows written whole: a window's ledger row goes in after
        // its records, so rows of a write cut off (until its retry
        // replaces them) are never read.
        // (On a cluster, the subquery runs once and goes to every shard:
        // `distributed_product_mode` in [`ClickHouse::run`].)
        conds.push(format!(
            "window_id IN (SELECT id FROM {}{})",
            self.table("windows"),
            if ledger.is_empty() {
                String::new()
            } else {
                format!(" WHERE {}", ledger.join(" AND "))
            }
        ));
        if let Some(f) = &q.filter {
            // The search's SQL, rewritten as any other (cidr_contains).
            let probe = rewrite(
                &format!("SELECT 1 FROM records WHERE {f}"),
                "SELECT 1",
                self.features,
            )?;
            let cond = probe
                .split_once(" WHERE ")
                .map(|(_, c)| c.to_string())
                .ok_or_else(|| refused("the search is not a condition"))?;
            conds.push(format!("({cond})"));
        }
        let mut cols: Vec<String> = columns().map(|c| format!("\"{}\"", c.name())).collect();
        cols.extend(PARTITIONS.iter().map(|p| format!("\"{}\"", p.name)));
        let where_ = if conds.is_empty() {
            String::new()
        } else {
            format!(" WHERE {}", conds.join(" AND "))
        };
        Ok(format!(
            "SELECT {} FROM {}{where_}",
            cols.join(", "),
            self.table("records")
        ))
    }

    /// Conditions on `log_group` and `log_topic` for the ones `q` names
    /// (ids, or names through the catalog); a name the store has no
    /// records of is [`StoreError::NotFound`].
    fn topics(&self, q: &Query) -> Result<Vec<String>, StoreError> {
        if q.confined && (q.group.is_none() || q.topic.is_none()) {
            return Err(refused(
                "a confined query names its log group and log topic",
            ));
        }
        let not_found = |kind, name: &str| StoreError::NotFound {
            kind,
            name: name.to_string(),
            dir: self.url.to_string(),
        };
        let has = |cond: &str| -> Result<bool, StoreError> {
            Ok(self.count(
                Target::Any,
                &format!(
                    "SELECT count() FROM (SELECT 1 FROM {} WHERE {cond} LIMIT 1)",
                    self.table("records")
                ),
            )? > 0)
        };
        // Ids, or names through the catalog (not for a tenant: a name in
        // the catalog could be anyone's).
        let catalog = if q.confined || (q.group.is_none() && q.topic.is_none()) {
            crate::Catalog::default()
        } else {
            self.catalog()?
        };
        let mut conds = Vec::new();
        let group = match &q.group {
            None => None,
            Some(key) if has(&format!("log_group = {}", literal(key)))? => Some(key.clone()),
            Some(key) if q.confined => return Err(not_found("log group", key)),
            Some(key) => match catalog.group(key).map_err(StoreError::Query)? {
                Some(g) if has(&format!("log_group = {}", literal(&g.id)))? => Some(g.id.clone()),
                _ => return Err(not_found("log group", key)),
            },
        };
        if let Some(g) = &group {
            conds.push(format!("log_group = {}", literal(g)));
        }
        if let Some(key) = &q.topic {
            let mut ids = if q.confined {
                Vec::new()
            } else {
                catalog.topic_ids(
                    group
                        .as_deref()
                        .and_then(|g| catalog.group(g).ok().flatten()),
                    key,
                )
            };
            ids.push(key.clone());
            ids.sort();
            ids.dedup();
            let mut found = Vec::new();
            for id in ids {
                let mut c = conds.clone();
                c.push(format!("log_topic = {}", literal(&id)));
                if has(&c.join(" AND "))? {
                    found.push(literal(&id));
                }
            }
            if found.is_empty() {
                return Err(not_found("log topic", key));
            }
            conds.push(format!("log_topic IN ({})", found.join(", ")));
        }
        Ok(conds)
    }

    /// Folds `f` over the window summaries of the records `q` would read
    /// (its log group, topic and time range), as
    /// [`Query::fold_summaries`] does over a directory's; `None` when a
    /// window in scope has no summary.
    pub fn fold_summaries<W: crate::summary::SummaryView, T>(
        &self,
        q: &Query,
        init: impl Fn() -> T,
        mut f: impl FnMut(&mut T, crate::summary::TopicWindow<W>),
    ) -> Result<Option<T>, StoreError> {
        let mut conds = self.topics(q)?;
        // A window file holds one window, of at most ten minutes.
        if let Some(s) = q.time.since {
            conds.push(format!("start + 3600 > {s}"));
        }
        if let Some(u) = q.time.until {
            conds.push(format!("start < {u}"));
        }
        let where_ = if conds.is_empty() {
            String::new()
        } else {
            format!(" WHERE {}", conds.join(" AND "))
        };
        let (host, bytes) = self.statement_bytes(
            Target::Any,
            &format!(
                "SELECT log_group, log_topic, summary FROM {}{where_} \
                 ORDER BY log_group, log_topic, start, id FORMAT RowBinary",
                self.table("windows")
            ),
            None,
            &[("readonly", "2".to_string())],
        )?;
        let cut = || self.failed(&host, "a window summary cut short in the answer");
        let mut acc = init();
        let mut rest = &bytes[..];
        while !rest.is_empty() {
            let (group, r) = super::insert::take_bytes(rest).ok_or_else(cut)?;
            let (topic, r) = super::insert::take_bytes(r).ok_or_else(cut)?;
            let (packed, r) = super::insert::take_bytes(r).ok_or_else(cut)?;
            rest = r;
            if packed.is_empty() {
                return Ok(None);
            }
            let summary = crate::summary::decode::<W>(packed).map_err(|e| self.failed(&host, e))?;
            for w in summary.windows {
                let (start, end) = w.window();
                if q.time.since.is_some_and(|s| end <= s)
                    || q.time.until.is_some_and(|u| start >= u)
                {
                    continue;
                }
                f(
                    &mut acc,
                    crate::summary::TopicWindow {
                        log_group: String::from_utf8_lossy(group).into_owned(),
                        log_topic: String::from_utf8_lossy(topic).into_owned(),
                        summary: w,
                    },
                );
            }
        }
        Ok(Some(acc))
    }

    /// The SQL `q` runs in ClickHouse (without its `FORMAT`).
    pub(super) fn sql_of(&self, q: &Query) -> Result<String, StoreError> {
        for text in [&q.sql, &q.filter].into_iter().flatten() {
            check_sql(text)?;
        }
        let scope = self.scope(q)?;
        let sql = q
            .sql
            .as_deref()
            .unwrap_or("SELECT * FROM records ORDER BY start, record_index, log_group, log_topic");
        let mut sql = rewrite(sql, &scope, self.features)?;
        if q.limit.is_some() || q.offset > 0 {
            sql = format!(
                "SELECT * FROM ({sql}) LIMIT {}, {}",
                q.offset,
                q.limit.unwrap_or(usize::MAX >> 1)
            );
        }
        Ok(sql)
    }

    /// Runs `q` in ClickHouse.
    pub fn run(&self, q: &Query) -> Result<QueryResult, StoreError> {
        let sql = self.sql_of(q)?;
        let limits = &q.limits;
        let settings = [
            ("readonly", "2".to_string()),
            (
                "max_execution_time",
                limits.deadline.as_secs().max(1).to_string(),
            ),
            ("max_memory_usage", limits.memory_bytes.to_string()),
            ("max_result_bytes", limits.result_bytes.to_string()),
            ("result_overflow_mode", "throw".to_string()),
            // The scope's `IN` over the ledger, a `Distributed` table
            // too: run once, its answer sent to the shards.
            ("distributed_product_mode", "global".to_string()),
        ];
        let text = self
            .statement(
                Target::Any,
                &format!("{sql} FORMAT TabSeparatedWithNamesAndTypes"),
                None,
                &settings,
            )
            .map_err(|e| match e {
                StoreError::ClickHouse { message, .. } if message.contains("Timeout exceeded") => {
                    limits.past_deadline()
                }
                StoreError::ClickHouse { message, .. } if message.contains("Memory limit") => {
                    limits.out_of_memory(&message)
                }
                StoreError::ClickHouse { message, .. } if message.contains("Limit for result") => {
                    limits.result_too_large()
                }
                e => e,
            })?;
        let batches = batch_of(&text)?;
        Ok(QueryResult {
            batches,
            skipped: Vec::new(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Debian 12's release.
    const OLD: Features = Features { ip_ranges: false };

    #[test]
    fn records_become_the_scope_and_nothing_else_is_read() {
        let scope = "SELECT a FROM \"db\".\"records\" WHERE log_topic = 't'";
        let sql = rewrite("SELECT count(*) FROM records r WHERE r.a > 1", scope, OLD).unwrap();
        assert!(
            sql.contains("FROM (SELECT a FROM \"db\".\"records\" WHERE log_topic = 't') r WHERE"),
            "{sql}"
        );
        let plain = rewrite("SELECT * FROM records", scope, OLD).unwrap();
        assert!(plain.ends_with(") AS records"), "{plain}");
        for bad in [
            "SELECT * FROM system.tables",
            "SELECT * FROM other",
            "SELECT * FROM records JOIN db.records_local USING (a)",
            "SELECT * FROM remote('h', system.one)",
            "SELECT * FROM records WHERE a IN (SELECT a FROM system.users)",
            "SELECT dictGetString('d', 'a', 1) FROM records",
        ] {
            let e = rewrite(bad, scope, OLD).unwrap_err().to_string();
            assert!(e.contains("only the table `records`"), "{bad}: {e}");
        }
        let e = rewrite("DROP TABLE records", scope, OLD)
            .unwrap_err()
            .to_string();
        assert!(e.contains("one SELECT"), "{e}");
    }

    #[test]
    fn a_cidr_search_becomes_a_range_of_numbers() {
        let sql = rewrite(
            "SELECT 1 FROM records WHERE cidr_contains(\"srcaddr\", '10.0.0.0/8')",
            "SELECT 1",
            OLD,
        )
        .unwrap();
        assert!(sql.contains("BETWEEN 167772160 AND 184549375"), "{sql}");
        let v6 = cidr_condition("a", "2001:db8::/32", OLD).unwrap();
        assert!(
            v6.contains("unhex('20010db8000000000000000000000000')"),
            "{v6}"
        );
        assert!(
            v6.contains("unhex('20010db8ffffffffffffffffffffffff')"),
            "{v6}"
        );
        assert!(cidr_condition("a", "10.0.0.0/33", OLD).is_err());
        let new = Features::of((26, 9));
        assert_eq!(
            cidr_condition("a", "10.0.0.0/8", new).unwrap(),
            "isIPAddressInRange(a, '10.0.0.0/8')"
        );
        assert!(cidr_condition("a", "2001::/129", new).is_err());
    }

    #[test]
    fn answers_become_typed_batches() {
        let text = "n\ts\tt\tx\nUInt64\tNullable(String)\tDateTime('UTC')\tInt32\n\
                    1\ta\\tb\t2024-01-02 03:04:05\t-1\n2\t\\N\t1970-01-01 00:00:00\t7\n";
        let b = &batch_of(text).unwrap()[0];
        assert_eq!(b.num_rows(), 2);
        assert_eq!(b.schema().field(0).data_type(), &DataType::UInt64);
        assert_eq!(b.schema().field(3).data_type(), &DataType::Int64);
        let t = b
            .column(2)
            .as_any()
            .downcast_ref::<datafusion::arrow::array::TimestampMillisecondArray>()
            .unwrap();
        assert_eq!(t.value(0), 1_704_164_645_000);
        let s = b
            .column(1)
            .as_any()
            .downcast_ref::<datafusion::arrow::array::StringArray>()
            .unwrap();
        assert_eq!(s.value(0), "a\tb");
        assert!(datafusion::arrow::array::Array::is_null(s, 1));
        let e = batch_of("n\nUInt64\nx\n").unwrap_err().to_string();
        assert!(e.contains("`x` is not a value"), "{e}");
    }
}
