//! Queries over the store: DataFusion SQL on a `records` table, narrowed to
//! a log group, topic and time range, written as a table, text, JSON or CSV.

use std::collections::HashSet;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use datafusion::arrow::array::{Array, RecordBatch};
use datafusion::arrow::datatypes::DataType;
use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::listing::ListingOptions;
use datafusion::execution::context::SQLOptions;
use datafusion::execution::object_store::ObjectStoreUrl;
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use datafusion::execution::session_state::SessionStateBuilder;
use datafusion::object_store::local::LocalFileSystem;
use datafusion::object_store::path::Path as ObjectPath;
use datafusion::physical_optimizer::PhysicalOptimizerRule;
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::coop::CooperativeExec;
use datafusion::prelude::SessionConfig;
use datafusion::prelude::SessionContext;
use futures::StreamExt;
use vpcflow_core::format::{Field, V1_FIELDS, V2_FIELDS};

use crate::StoreError;
use crate::catalog::Catalog;
use crate::limits::{QueryLimits, check_sql};
use crate::schema::{PARTITIONS, Partition, partition_type, schema};
use crate::skipping::Skipping;

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
    /// Only this log group (id, or name in the store's catalog).
    pub group: Option<String>,
    /// Only this log topic (id, or name in the store's catalog).
    pub topic: Option<String>,
    /// Only these windows.
    pub time: TimeRange,
    /// An SQL condition on the records (a translated search).
    pub filter: Option<String>,
    /// SQL over the table `records`; without it, the records themselves.
    pub sql: Option<String>,
    /// At most this many rows.
    pub limit: Option<usize>,
    /// Skip this many rows first (pages).
    pub offset: usize,
    /// For a tenant: the SQL sees only the one log topic's records (no
    /// table of the whole store is registered), and may only read (no DDL,
    /// DML such as `COPY`, or `SET`). Needs `group` and `topic` as ids.
    pub confined: bool,
    /// What running it may take (memory, time, result size).
    pub limits: QueryLimits,
    /// Set by the caller when the answer is no longer wanted (the client
    /// went away): the query is cancelled within 50 ms.
    pub cancel: Option<Arc<AtomicBool>>,
}

/// Stack of the thread a query is planned and run on: deep (but
/// admitted, see [`crate::limits`]) expressions recurse through the
/// planner and optimizer, and a default 2 MiB thread would not hold them.
/// Only the pages touched are ever committed.
const QUERY_STACK_BYTES: usize = 256 * 1024 * 1024;

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
    /// Store files that could not be read and were left out, each with why.
    pub skipped: Vec<String>,
}

fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// The log groups and topics a query reads, by id (`None`: all).
struct Scope {
    group: Option<String>,
    topics: Option<Vec<String>>,
    /// Directories whose files the query may read.
    dirs: Vec<PathBuf>,
}

fn subdirs_named(dir: &Path, prefix: &str) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.is_dir()
                && p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with(prefix))
        })
        .collect();
    v.sort();
    v
}

impl Query {
    /// Resolves the group and topic (id, or name through the catalog).
    fn scope(&self, root: &Path) -> Result<Scope, StoreError> {
        let not_found = |kind, name: &str| StoreError::NotFound {
            kind,
            name: name.to_string(),
            dir: root.display().to_string(),
        };
        if self.confined {
            // Ids only: a name in the catalog could be anyone's.
            let (Some(g), Some(t)) = (&self.group, &self.topic) else {
                return Err(StoreError::Query(
                    "a confined query names its log group and log topic".into(),
                ));
            };
            let dir = root.join(format!("log_group={g}/log_topic={t}"));
            if !root.join(format!("log_group={g}")).is_dir() {
                return Err(not_found("log group", g));
            }
            if !dir.is_dir() {
                return Err(not_found("log topic", t));
            }
            return Ok(Scope {
                group: Some(g.clone()),
                topics: Some(vec![t.clone()]),
                dirs: vec![dir],
            });
        }
        let catalog = Catalog::load(root)?;
        let group = match &self.group {
            None => None,
            Some(key) if root.join(format!("log_group={key}")).is_dir() => Some(key.clone()),
            Some(key) => match catalog.group(key).map_err(StoreError::Query)? {
                Some(g) if root.join(format!("log_group={}", g.id)).is_dir() => Some(g.id.clone()),
                _ => return Err(not_found("log group", key)),
            },
        };
        let group_dirs = match &group {
            Some(g) => vec![root.join(format!("log_group={g}"))],
            None => subdirs_named(root, "log_group="),
        };
        let topics = match &self.topic {
            None => None,
            Some(key) => {
                let mut ids: Vec<String> = catalog.topic_ids(
                    group
                        .as_deref()
                        .and_then(|g| catalog.group(g).ok().flatten()),
                    key,
                );
                ids.push(key.clone());
                ids.retain(|t| {
                    group_dirs
                        .iter()
                        .any(|g| g.join(format!("log_topic={t}")).is_dir())
                });
                ids.sort();
                ids.dedup();
                if ids.is_empty() {
                    return Err(not_found("log topic", key));
                }
                Some(ids)
            }
        };
        let dirs = match &topics {
            None => group_dirs,
            Some(ids) => group_dirs
                .iter()
                .flat_map(|g| ids.iter().map(move |t| g.join(format!("log_topic={t}"))))
                .filter(|d| d.is_dir())
                .collect(),
        };
        Ok(Scope {
            group,
            topics,
            dirs,
        })
    }

    /// Folds `f` over the window summaries of the records this query would
    /// read (its log group, log topic and time range; its SQL and filter
    /// aside), one window at a time, so memory holds what `f` keeps rather
    /// than the range. `None` when a records file in scope has no readable
    /// summary (one written before summaries existed): the summaries are
    /// then not the whole of the records. A compaction or retention that
    /// swaps files away under the fold starts it again from `init`.
    pub fn fold_summaries<W: crate::summary::SummaryView, T>(
        &self,
        root: &Path,
        init: impl Fn() -> T,
        mut f: impl FnMut(&mut T, crate::summary::TopicWindow<W>),
    ) -> Result<Option<T>, StoreError> {
        use crate::summary::{TopicWindow, read, summary_path};
        let scope = self.scope(root)?;
        let partition = |p: &Path, key: &str| {
            p.ancestors()
                .filter_map(|a| a.file_name()?.to_str()?.strip_prefix(key))
                .next()
                .unwrap_or_default()
                .to_string()
        };
        let mut retries = 0;
        'listing: loop {
            let files = store_files(&scope.dirs)?;
            if files.iter().any(|f| !summary_path(f).exists()) {
                return Ok(None);
            }
            let mut acc = init();
            for file in files {
                let summary = match read::<W>(&summary_path(&file)) {
                    Ok(s) => s,
                    Err(_) if !file.exists() && retries < 5 => {
                        retries += 1;
                        continue 'listing;
                    }
                    Err(_) => return Ok(None),
                };
                let (log_group, log_topic) = (
                    partition(&file, "log_group="),
                    partition(&file, "log_topic="),
                );
                for w in summary.windows {
                    let (start, end) = w.window();
                    if self.time.since.is_some_and(|s| end <= s)
                        || self.time.until.is_some_and(|u| start >= u)
                    {
                        continue;
                    }
                    f(
                        &mut acc,
                        TopicWindow {
                            log_group: log_group.clone(),
                            log_topic: log_topic.clone(),
                            summary: w,
                        },
                    );
                }
            }
            return Ok(Some(acc));
        }
    }

    /// Runs the query over the store at `at`: [`Query::run`] on a
    /// directory, in ClickHouse on a ClickHouse store.
    pub fn run_at<'a>(
        &self,
        at: impl Into<crate::StoreRef<'a>>,
    ) -> Result<QueryResult, StoreError> {
        match at.into() {
            crate::StoreRef::Dir(root) => self.run(root),
            crate::StoreRef::ClickHouse(url) => {
                crate::clickhouse::ClickHouse::shared(url)?.run(self)
            }
        }
    }

    /// [`Query::fold_summaries`] on a directory, or over the window
    /// summaries a ClickHouse store keeps beside its records.
    pub fn fold_summaries_at<'a, W: crate::summary::SummaryView, T>(
        &self,
        at: impl Into<crate::StoreRef<'a>>,
        init: impl Fn() -> T,
        f: impl FnMut(&mut T, crate::summary::TopicWindow<W>),
    ) -> Result<Option<T>, StoreError> {
        match at.into() {
            crate::StoreRef::Dir(root) => self.fold_summaries(root, init, f),
            crate::StoreRef::ClickHouse(url) => {
                crate::clickhouse::ClickHouse::shared(url)?.fold_summaries(self, init, f)
            }
        }
    }

    /// Runs the query over the store at `root`. A store file that cannot be
    /// read is skipped and named in [`QueryResult::skipped`]; the rest of
    /// the store is still answered from.
    ///
    /// SQL over the text limits of [`crate::limits`] is refused before it
    /// is parsed; the query runs on a thread of its own with a deep stack,
    /// a memory pool of `limits.memory_bytes`, no recursive CTEs, and is
    /// cancelled at `limits.deadline`.
    pub fn run(&self, root: &Path) -> Result<QueryResult, StoreError> {
        for text in [&self.sql, &self.filter].into_iter().flatten() {
            check_sql(text)?;
        }
        std::thread::scope(|s| {
            std::thread::Builder::new()
                .name("query".into())
                .stack_size(QUERY_STACK_BYTES)
                .spawn_scoped(s, || self.run_here(root))
                .map_err(|e| StoreError::Query(format!("starting the query thread: {e}")))?
                .join()
                .unwrap_or_else(|_| Err(StoreError::Query("the query failed unexpectedly".into())))
        })
    }

    fn run_here(&self, root: &Path) -> Result<QueryResult, StoreError> {
        if !root.is_dir() {
            return Err(StoreError::io(
                root,
                io::Error::new(io::ErrorKind::NotFound, "no store here"),
            ));
        }
        let scope = self.scope(root)?;
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| StoreError::Query(e.to_string()))?;
        // A compaction or retention that swaps files between DataFusion's
        // listing and its reads makes the query fail on a file that is no
        // longer there; the store is whole on either side of a swap, so
        // the query is asked again when the files changed under it.
        let deadline = tokio::time::Instant::now() + self.limits.deadline;
        let mut retries = 0;
        let first = loop {
            let listed = store_files(&scope.dirs)?;
            let r = rt.block_on(self.execute_by(deadline, root, &scope, &HashSet::new()));
            if r.is_err() && retries < 5 && store_files(&scope.dirs)? != listed {
                retries += 1;
                continue;
            }
            break r;
        };
        if first.is_err()
            && let Some(old) = crate::layout::legacy_partition_under(&scope.dirs)
        {
            return Err(StoreError::Query(format!(
                "{} is in the partition layout of an earlier vpcflow \
                 (date=YYYY-MM-DD/hour=HH); open the store for writing once \
                 (vpcflow ingest --store, agent or serve) to move it to this one",
                old.display()
            )));
        }
        match first {
            Ok(batches) => Ok(QueryResult {
                batches,
                skipped: Vec::new(),
            }),
            // Planning failed (bad SQL, unknown column): no file is to blame.
            Err(Failure::Plan(e)) => Err(e),
            Err(Failure::Run(e)) => {
                let bad = unreadable_files(&scope.dirs)?;
                if bad.is_empty() {
                    return Err(e);
                }
                let skip: HashSet<ObjectPath> = bad
                    .iter()
                    .filter_map(|(p, _)| ObjectPath::from_filesystem_path(p).ok())
                    .collect();
                let batches = rt
                    .block_on(self.execute_by(deadline, root, &scope, &skip))
                    .map_err(Failure::into_inner)?;
                Ok(QueryResult {
                    batches,
                    skipped: bad
                        .into_iter()
                        .map(|(p, why)| format!("{}: {why}", p.display()))
                        .collect(),
                })
            }
        }
    }

    /// [`Query::execute`], cancelled (its plan and streams dropped) at
    /// `deadline`.
    async fn execute_by(
        &self,
        deadline: tokio::time::Instant,
        root: &Path,
        scope: &Scope,
        skip: &HashSet<ObjectPath>,
    ) -> Result<Vec<RecordBatch>, Failure> {
        let cancelled = async {
            match &self.cancel {
                Some(flag) => {
                    while !flag.load(Ordering::Relaxed) {
                        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    }
                }
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            r = tokio::time::timeout_at(deadline, self.execute(root, scope, skip)) => match r {
                Ok(r) => r,
                Err(_) => Err(Failure::Plan(self.limits.past_deadline())),
            },
            () = cancelled => Err(Failure::Plan(crate::limits::cancelled())),
        }
    }

    async fn execute(
        &self,
        root: &Path,
        scope: &Scope,
        skip: &HashSet<ObjectPath>,
    ) -> Result<Vec<RecordBatch>, Failure> {
        let plan = |e: datafusion::error::DataFusionError| Failure::Plan(self.failure(e));
        let mut config = SessionConfig::new();
        config.options_mut().execution.enable_recursive_ctes = false;
        let runtime = RuntimeEnvBuilder::new()
            .with_memory_limit(self.limits.memory_bytes, 1.0)
            // Sorts and aggregations over the pool spill; the spill is
            // bounded too (as much disk as memory, four times over).
            .with_max_temp_directory_size(self.limits.memory_bytes as u64 * 4)
            .build_arc()
            .map_err(plan)?;
        let state = SessionStateBuilder::new()
            .with_config(config)
            .with_runtime_env(runtime)
            .with_default_features()
            .with_physical_optimizer_rule(Arc::new(EveryOperatorYields))
            .build();
        let ctx = SessionContext::new_with_state(state);
        ctx.register_udf(cidr_contains_udf());
        if !skip.is_empty() {
            let local = ObjectStoreUrl::local_filesystem();
            ctx.register_object_store(
                local.as_ref(),
                Arc::new(Skipping {
                    inner: Arc::new(LocalFileSystem::new()),
                    skip: Arc::new(skip.clone()),
                }),
            );
        }
        let opts =
            ListingOptions::new(Arc::new(ParquetFormat::default())).with_file_extension(".parquet");
        let canonical = |dir: &Path| {
            dir.canonicalize()
                .map(|d| format!("{}/", d.display()))
                .map_err(|e| Failure::Plan(StoreError::io(dir, e)))
        };
        let partitions = |parts: &[Partition]| {
            opts.clone().with_table_partition_cols(
                parts
                    .iter()
                    .map(|p| (p.name.to_string(), partition_type(p)))
                    .collect(),
            )
        };
        let mut conds = Vec::new();
        let from = if self.confined {
            let (Some(group), Some([topic]), [dir]) =
                (&scope.group, scope.topics.as_deref(), scope.dirs.as_slice())
            else {
                return Err(Failure::Plan(StoreError::Query(
                    "a confined query reads exactly one log group and log topic".into(),
                )));
            };
            ctx.register_listing_table(
                "topic_records",
                &canonical(dir)?,
                partitions(&PARTITIONS[2..]),
                Some(schema()),
                None,
            )
            .await
            .map_err(plan)?;
            let columns: Vec<String> = schema()
                .fields()
                .iter()
                .map(|f| format!("\"{}\"", f.name()))
                .collect();
            format!(
                "SELECT {}, {} AS log_group, {} AS log_topic, date, hour FROM topic_records",
                columns.join(", "),
                quote(group),
                quote(topic)
            )
        } else {
            ctx.register_listing_table(
                "all_records",
                &canonical(root)?,
                partitions(&PARTITIONS),
                Some(schema()),
                None,
            )
            .await
            .map_err(plan)?;
            if let Some(g) = &scope.group {
                conds.push(format!("log_group = {}", quote(g)));
            }
            if let Some(ts) = &scope.topics {
                let list: Vec<String> = ts.iter().map(|t| quote(t)).collect();
                conds.push(format!("log_topic IN ({})", list.join(", ")));
            }
            "SELECT * FROM all_records".to_string()
        };
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
        ctx.sql(&format!("CREATE VIEW records AS {from}{where_}"))
            .await
            .map_err(plan)?;
        let sql = match &self.sql {
            Some(s) => s.clone(),
            None => "SELECT * FROM records ORDER BY start, record_index, log_group, log_topic"
                .to_string(),
        };
        // Queries read: no tables made, files written or settings changed.
        let read_only = SQLOptions::new()
            .with_allow_ddl(false)
            .with_allow_dml(false)
            .with_allow_statements(false);
        let mut df = ctx.sql_with_options(&sql, read_only).await.map_err(plan)?;
        if self.limit.is_some() || self.offset > 0 {
            df = df.limit(self.offset, self.limit).map_err(plan)?;
        }
        let run = |e| Failure::Run(self.failure(e));
        let mut stream = df.execute_stream().await.map_err(run)?;
        let (mut batches, mut bytes) = (Vec::new(), 0usize);
        while let Some(b) = stream.next().await {
            let b = b.map_err(run)?;
            bytes += b.get_array_memory_size();
            if bytes > self.limits.result_bytes {
                return Err(Failure::Plan(self.limits.result_too_large()));
            }
            batches.push(b);
        }
        Ok(batches)
    }

    /// A DataFusion error as the store's: running out of the query's
    /// memory pool is a limit of the query, not a fault of the store.
    fn failure(&self, e: datafusion::error::DataFusionError) -> StoreError {
        let text = e.to_string();
        if text.contains("Resources exhausted") {
            self.limits.out_of_memory(&text)
        } else {
            StoreError::Query(text)
        }
    }
}

/// Wraps every operator of a physical plan in DataFusion's
/// [`CooperativeExec`], so each batch any operator emits spends the tokio
/// task's budget. DataFusion makes only leaves and exchanges cooperative;
/// an operator that makes many batches out of few (a cross join under an
/// aggregate) would otherwise keep the query's task busy without ever
/// returning to the runtime, and neither the deadline nor a cancellation
/// could stop it.
#[derive(Debug)]
struct EveryOperatorYields;

impl PhysicalOptimizerRule for EveryOperatorYields {
    fn name(&self) -> &str {
        "EveryOperatorYields"
    }

    fn optimize(
        &self,
        plan: Arc<dyn ExecutionPlan>,
        _config: &datafusion::config::ConfigOptions,
    ) -> datafusion::error::Result<Arc<dyn ExecutionPlan>> {
        use datafusion::common::tree_node::{Transformed, TreeNode};
        plan.transform_up(|node| {
            if node.is::<CooperativeExec>() {
                return Ok(Transformed::no(node));
            }
            Ok(Transformed::yes(
                Arc::new(CooperativeExec::new(node)) as Arc<dyn ExecutionPlan>
            ))
        })
        .map(|t| t.data)
    }

    fn schema_check(&self) -> bool {
        true
    }
}

/// Why a query failed: while planning, or while reading files.
enum Failure {
    Plan(StoreError),
    Run(StoreError),
}

impl Failure {
    fn into_inner(self) -> StoreError {
        match self {
            Failure::Plan(e) | Failure::Run(e) => e,
        }
    }
}

/// The store files under `dirs`, sorted.
pub(crate) fn store_files(dirs: &[PathBuf]) -> Result<Vec<PathBuf>, StoreError> {
    let mut files = Vec::new();
    let mut stack: Vec<PathBuf> = dirs.iter().filter(|d| d.is_dir()).cloned().collect();
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d)
            .map_err(|e| StoreError::io(&d, e))?
            .flatten()
        {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "parquet") {
                files.push(p);
            }
        }
    }
    files.sort();
    Ok(files)
}

/// Store files under `dirs` that cannot be read whole, with why: a footer
/// check first, and when every footer reads, a full read of each file.
fn unreadable_files(dirs: &[PathBuf]) -> Result<Vec<(PathBuf, String)>, StoreError> {
    use datafusion::parquet::file::reader::SerializedFileReader;
    let files = store_files(dirs)?;
    let footer = |p: &Path| {
        std::fs::File::open(p)
            .map_err(|e| e.to_string())
            .and_then(|f| {
                SerializedFileReader::new(f)
                    .map(|_| ())
                    .map_err(|e| e.to_string())
            })
    };
    let mut bad: Vec<(PathBuf, String)> = files
        .iter()
        .filter_map(|p| footer(p).err().map(|why| (p.clone(), why)))
        .collect();
    if bad.is_empty() {
        bad = files
            .iter()
            .filter_map(|p| {
                crate::read_rows(p)
                    .err()
                    .map(|e| (p.clone(), e.to_string()))
            })
            .collect();
    }
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

    /// The rows as text, a column's null as `None`: for callers that read
    /// a small aggregated answer without depending on Arrow themselves.
    pub fn text_rows(&self) -> Result<Vec<Vec<Option<String>>>, StoreError> {
        let opts = FormatOptions::default();
        let mut rows = Vec::with_capacity(self.rows());
        for b in &self.batches {
            let f = formatters(b, &opts)?;
            for row in 0..b.num_rows() {
                rows.push(
                    (0..b.num_columns())
                        .map(|c| (!b.column(c).is_null(row)).then(|| f[c].value(row).to_string()))
                        .collect(),
                );
            }
        }
        Ok(rows)
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
                let (fields, version) = if format == OutputFormat::V1 {
                    (V1_FIELDS, "1")
                } else {
                    (V2_FIELDS, "2")
                };
                for b in &self.batches {
                    let schema = b.schema();
                    let idx: Vec<Option<usize>> = fields
                        .iter()
                        .map(|f| match f {
                            Field::Version => Ok(None),
                            f => {
                                let name = f.spec().column;
                                schema.index_of(name).map(Some).map_err(|_| {
                                StoreError::Query(format!(
                                    "--format v1/v2 needs the record columns; the result has no `{name}`"
                                ))
                            })
                            }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Store;
    use crate::compact::tests::{topology, window};

    /// Queries while the hour they read is written and compacted again and
    /// again (uploads of one closed hour): every query answers, and with at
    /// least every record written before it began.
    #[test]
    fn queries_answer_while_their_hour_is_compacted_under_them() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().to_path_buf();
        let mut s = Store::open(&root).unwrap();
        s.compact_in_background();
        let t = topology();
        let hour = 1_700_002_800;
        for m in 0..3 {
            s.write_window(&t, &window(hour + m * 60)).unwrap();
        }
        let written = Arc::new(std::sync::atomic::AtomicUsize::new(9));
        let stop = Arc::new(AtomicBool::new(false));
        let reader = {
            let (root, written, stop) = (root.clone(), written.clone(), stop.clone());
            std::thread::spawn(move || {
                let q = Query {
                    group: Some("g".into()),
                    topic: Some("t".into()),
                    sql: Some("SELECT count(*) AS n FROM records".into()),
                    confined: true,
                    ..Query::default()
                };
                let mut answered = 0;
                while !stop.load(Ordering::Acquire) {
                    let at_least = written.load(Ordering::Acquire);
                    let r = q
                        .run(&root)
                        .unwrap_or_else(|e| panic!("query {answered}: {e}"));
                    assert!(r.skipped.is_empty(), "{:?}", r.skipped);
                    let mut out = Vec::new();
                    r.write(OutputFormat::Csv, &mut out).unwrap();
                    let n: usize = String::from_utf8(out).unwrap()[2..].trim().parse().unwrap();
                    assert!(n >= at_least, "query {answered}: {n} < {at_least}");
                    answered += 1;
                }
                answered
            })
        };
        for _ in 0..60 {
            for m in 0..3 {
                s.write_window(&t, &window(hour + m * 60)).unwrap();
            }
            written.fetch_add(9, Ordering::Release);
            s.compact_before(u64::MAX).unwrap();
        }
        s.finish_compaction().unwrap();
        stop.store(true, Ordering::Release);
        let answered = reader.join().unwrap();
        assert!(answered > 0);
    }

    #[test]
    fn a_confined_query_sees_one_topic_and_only_reads() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Store::open(dir.path()).unwrap();
        let t = topology();
        let mut other = topology();
        other.flow_logs[0].log_group_id = "g2".into();
        other.flow_logs[0].log_topic_id = "t2".into();
        for m in 0..4 {
            s.write_window(&t, &window(1_700_002_800 + m * 60)).unwrap();
        }
        s.write_window(&other, &window(1_700_002_800)).unwrap();
        let q = |sql: &str, limit, offset| Query {
            group: Some("g".into()),
            topic: Some("t".into()),
            sql: Some(sql.into()),
            limit,
            offset,
            confined: true,
            ..Query::default()
        };
        let count = |r: QueryResult| {
            let mut out = Vec::new();
            r.write(OutputFormat::Csv, &mut out).unwrap();
            String::from_utf8(out).unwrap()
        };
        let all = q(
            "SELECT log_group, log_topic, count(*) AS n FROM records GROUP BY 1, 2",
            None,
            0,
        );
        assert_eq!(
            count(all.run(dir.path()).unwrap()),
            "log_group,log_topic,n\ng,t,12\n"
        );
        let page = q(
            "SELECT start FROM records ORDER BY start, record_index",
            Some(5),
            10,
        );
        assert_eq!(page.run(dir.path()).unwrap().rows(), 2);
        for escape in [
            "SELECT * FROM all_records",
            "CREATE EXTERNAL TABLE x STORED AS PARQUET LOCATION '/'",
            "COPY (SELECT 1) TO '/tmp/vpcflow-copy-test.parquet'",
            "SET datafusion.execution.batch_size = 1",
        ] {
            let e = q(escape, None, 0).run(dir.path()).unwrap_err().to_string();
            assert!(e.starts_with("query:"), "{escape}: {e}");
        }
        assert!(!Path::new("/tmp/vpcflow-copy-test.parquet").exists());
        // Unconfined (the local CLI), the same SQL reads both topics.
        let wide = Query {
            sql: Some("SELECT count(*) FROM records".into()),
            ..Query::default()
        };
        assert_eq!(count(wide.run(dir.path()).unwrap()), "count(*)\n15\n");
    }
}

#[cfg(test)]
mod limit_tests {
    use super::*;
    use crate::Store;
    use crate::compact::tests::{topology, window};
    use std::time::{Duration, Instant};

    fn store() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Store::open(dir.path()).unwrap();
        s.write_window(&topology(), &window(1_700_002_800)).unwrap();
        dir
    }

    fn sql(sql: &str, limits: QueryLimits) -> Query {
        Query {
            group: Some("g".into()),
            topic: Some("t".into()),
            sql: Some(sql.into()),
            confined: true,
            limits,
            ..Query::default()
        }
    }

    const TIGHT: QueryLimits = QueryLimits {
        memory_bytes: 64 * 1024 * 1024,
        deadline: Duration::from_secs(2),
        result_bytes: 1024 * 1024,
    };

    fn limit_error(r: Result<QueryResult, StoreError>) -> String {
        match r {
            Err(StoreError::Limit(m)) => m,
            other => panic!("expected a limit, got {other:?}"),
        }
    }

    /// The hardening findings that kept a core busy for minutes (or for
    /// good) end within their deadline, naming it.
    #[test]
    fn endless_queries_end_at_their_deadline() {
        let dir = store();
        for endless in [
            "SELECT count(*) FROM generate_series(1, 100000000000)",
            "SELECT sum(a.value * b.value) FROM generate_series(1, 1000000) a, generate_series(1, 1000000) b",
        ] {
            let t = Instant::now();
            let e = limit_error(sql(endless, TIGHT).run(dir.path()));
            assert!(e.contains("deadline of 2 s"), "{endless}: {e}");
            assert!(
                t.elapsed() < Duration::from_secs(6),
                "{endless}: {:?}",
                t.elapsed()
            );
        }
    }

    #[test]
    fn recursive_ctes_are_off() {
        let dir = store();
        let e = sql(
            "WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r) SELECT count(*) FROM r",
            TIGHT,
        )
        .run(dir.path())
        .unwrap_err()
        .to_string();
        assert!(e.to_lowercase().contains("recursive"), "{e}");
    }

    #[test]
    fn memory_and_result_size_are_bounded() {
        let dir = store();
        // A hash join's build side of 1e7 rows needs more than 64 MiB
        // (and cannot spill).
        let e = limit_error(
            sql(
                "SELECT count(*) FROM generate_series(1, 10000000) a JOIN generate_series(1, 10000000) b ON a.value = b.value",
                QueryLimits {
                    deadline: Duration::from_secs(60),
                    ..TIGHT
                },
            )
            .run(dir.path()),
        );
        assert!(e.contains("more than its 67108864 bytes of memory"), "{e}");
        let e = limit_error(sql("SELECT repeat('x', 2000000) AS s", TIGHT).run(dir.path()));
        assert!(e.contains("result is over 1048576 bytes"), "{e}");
    }

    #[test]
    fn a_cancelled_query_stops() {
        let dir = store();
        let flag = Arc::new(AtomicBool::new(false));
        let mut q = sql(
            "SELECT count(*) FROM generate_series(1, 100000000000)",
            QueryLimits::LOCAL,
        );
        q.cancel = Some(flag.clone());
        let setter = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(300));
            flag.store(true, Ordering::Relaxed);
        });
        let t = Instant::now();
        let e = q.run(dir.path()).unwrap_err().to_string();
        setter.join().unwrap();
        assert!(e.contains("cancelled by its caller"), "{e}");
        assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());
    }

    #[test]
    fn over_deep_sql_is_refused_before_parsing() {
        let dir = store();
        let parens = format!("SELECT {}1{}", "(".repeat(30_000), ")".repeat(30_000));
        assert!(limit_error(sql(&parens, TIGHT).run(dir.path())).contains("bytes"));
        let nots = format!(
            "SELECT count(*) FROM records WHERE {}true",
            "NOT ".repeat(40)
        );
        let t = Instant::now();
        assert!(limit_error(sql(&nots, TIGHT).run(dir.path())).contains("NOTs"));
        assert!(t.elapsed() < Duration::from_secs(1));
        // Just under the limits, a deep query runs (on the query thread's
        // deep stack) and answers.
        let deep = format!("SELECT {}1{} AS one", "(".repeat(32), ")".repeat(32));
        assert_eq!(sql(&deep, TIGHT).run(dir.path()).unwrap().rows(), 1);
        let sum = format!("SELECT 1{} AS n", "+1".repeat(497));
        assert_eq!(sql(&sum, TIGHT).run(dir.path()).unwrap().rows(), 1);
        let nots = format!(
            "SELECT count(*) FROM records WHERE {}true",
            "NOT ".repeat(16)
        );
        let t = Instant::now();
        sql(&nots, TIGHT).run(dir.path()).unwrap();
        assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
    }
}
