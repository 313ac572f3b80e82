//! `vpcflow serve` (the control plane's REST API on its database, with the
//! pipeline and the log store behind it) and `vpcflow token create` (a
//! local admin command).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use vpcflow_capture::{CaptureFile, Ending, MergedCaptures};
use vpcflow_control::api::AppState;
use vpcflow_control::data::{
    DataError, DataPlane, IngestReport, RecordsPage, RecordsQuery, TailWindow,
};
use vpcflow_control::db::{ControlDb, DatabaseLocation};
use vpcflow_core::aggregate::{AggregatorConfig, ClosedWindow};
use vpcflow_core::format::{self, Format};
use vpcflow_core::{Inventory, PlausibleTimes, Topology};
use vpcflow_policy::DEFAULT_CONNECTIONS;
use vpcflow_store::{QueryLimits, StoreError, TimeRange};

use crate::agent::CaptureOptions;
use vpcflow_core::time::{parse_duration_secs, parse_instant};
use vpcflow_runtime::capture::replay;
use vpcflow_runtime::{
    Clock, Compaction, Driver, InventorySource, SharedStore, Sink, SourceError, StoreSink,
    SystemClock, WindowListener, inventory_pipeline,
};

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

impl DatabaseArg {
    async fn open(&self, data: &Path) -> Result<(ControlDb, DatabaseLocation)> {
        let location = DatabaseLocation::parse(self.url.as_deref(), data)?;
        let db = ControlDb::open(&location)
            .await
            .with_context(|| format!("control-plane database ({location})"))?;
        Ok((db, location))
    }
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the async runtime")
}

/// Windows a slow tail listener may fall behind before it misses some.
const TAIL_BACKLOG: usize = 256;

/// The live tail: every window the store takes, per log topic, as JSON
/// records, to whoever listens.
struct Tail(tokio::sync::broadcast::Sender<Arc<TailWindow>>);

impl WindowListener for Tail {
    fn window(&self, topology: &Topology, w: &ClosedWindow) {
        if self.0.receiver_count() == 0 {
            return;
        }
        let mut by_topic: std::collections::BTreeMap<usize, Vec<serde_json::Value>> =
            Default::default();
        let mut line = Vec::new();
        for r in &w.records {
            line.clear();
            // The tail shows what `--format json` writes, from its writer.
            if format::write_record(&Format::Json, topology, r, &mut line).is_err() {
                return;
            }
            if let Ok(v) = serde_json::from_slice(&line) {
                by_topic.entry(r.flow_log as usize).or_default().push(v);
            }
        }
        for (fl, records) in by_topic {
            let f = &topology.flow_logs[fl];
            // Nobody listening between the check and now is fine.
            let _ = self.0.send(Arc::new(TailWindow {
                log_group_id: f.log_group_id.clone(),
                log_topic_id: f.log_topic_id.clone(),
                flow_log_id: f.id.clone(),
                start: w.start,
                end: w.end,
                records,
            }));
        }
    }
}

/// The pipeline and log store behind the API: uploads are ingested here,
/// and `--live` capture writes into the same store.
struct ServeData {
    sink: Arc<SharedStore>,
    tail: tokio::sync::broadcast::Sender<Arc<TailWindow>>,
    captures: AtomicU64,
    query_limits: QueryLimits,
}

impl DataPlane for ServeData {
    fn check_capture_head(&self, head: &[u8]) -> Result<(), DataError> {
        vpcflow_capture::check_head("the uploaded capture", head)
            .map_err(|e| DataError::Invalid(e.to_string()))
    }

    fn ingest(&self, inventory: &Inventory, path: &Path) -> Result<IngestReport, DataError> {
        let failed = |e: &dyn std::fmt::Display| DataError::Failed(e.to_string());
        let file = std::fs::File::open(path).map_err(|e| failed(&e))?;
        let capture = CaptureFile::from_reader("the uploaded capture", file)
            .map_err(|e| DataError::Invalid(e.to_string()))?;
        let config = AggregatorConfig {
            window: inventory.window,
            max_records: inventory.max_records_per_window,
            grace_ns: vpcflow_core::aggregate::CLOSE_GRACE_NS,
        };
        let now = SystemClock.now();
        let pipeline = inventory_pipeline(inventory, config, None, DEFAULT_CONNECTIONS)
            .with_plausible_times(PlausibleTimes::around(now));
        let mut driver = Driver::from_pipeline(pipeline);
        let mut sink = StoreSink::new(self.sink.clone(), None, Compaction::ByCaller);
        sink.register(inventory).map_err(|e| failed(&e))?;
        let mut captures = MergedCaptures::new(vec![capture]);
        let frames =
            replay(&mut driver, &mut captures, &mut sink, &mut |_| {}).map_err(|e| failed(&e))?;
        // Hours before the current one get no more live windows; an upload
        // adding to an old hour has it merged again.
        let hour_now = SystemClock.now().0 / 1_000_000_000 / 3600 * 3600;
        if let Err(e) = self.sink.store().compact_before(hour_now) {
            eprintln!("vpcflow: warning: compaction: {e}");
        }
        let stats = driver.pipeline_stats();
        let report = IngestReport {
            frames,
            windows: sink.windows,
            records: sink.records,
            files: sink.files,
            skipped: stats
                .skipped()
                .into_iter()
                .map(|(reason, n)| (reason.name().to_string(), n))
                .collect(),
            gap_windows_not_reported: stats.gap_windows_not_reported,
            ending: match captures.files()[0].ending() {
                Ending::Clean | Ending::Reading => "complete".to_string(),
                Ending::Truncated => "truncated: the capture was cut inside a block".to_string(),
                Ending::Corrupt(why) => format!("corrupt: {why}"),
            },
        };
        self.captures.fetch_add(1, Ordering::Relaxed);
        self.sink.frames.fetch_add(report.frames, Ordering::Relaxed);
        Ok(report)
    }

    fn query(&self, q: &RecordsQuery) -> Result<RecordsPage, DataError> {
        let invalid = |field: &str, e: anyhow::Error| DataError::Invalid(format!("{field}: {e:#}"));
        let now = SystemClock.now().0 / 1_000_000_000;
        let mut time = TimeRange {
            since: q
                .since
                .as_deref()
                .map(parse_instant)
                .transpose()
                .map_err(|e| invalid("since", e.into()))?,
            until: q
                .until
                .as_deref()
                .map(parse_instant)
                .transpose()
                .map_err(|e| invalid("until", e.into()))?,
        };
        if let Some(last) = &q.last {
            let secs = parse_duration_secs(last).map_err(|e| invalid("last", e.into()))?;
            time.since = Some(now.saturating_sub(secs));
        }
        let filter = q
            .search
            .as_deref()
            .map(vpcflow_store::search::to_sql)
            .transpose()
            .map_err(|e| invalid("search", e.into()))?;
        let query = vpcflow_store::Query {
            group: Some(q.log_group_id.clone()),
            topic: Some(q.log_topic_id.clone()),
            time,
            filter,
            sql: q.sql.clone(),
            // One more than the page, to know whether there is a next.
            limit: Some(q.limit + 1),
            offset: q.offset,
            confined: true,
            limits: self.query_limits,
            cancel: Some(q.cancel.clone()),
        };
        // In a child process: no query can take the server down.
        let lines = match vpcflow_store::worker::run_isolated(&query, self.sink.root()) {
            Ok(lines) => lines,
            // A topic nothing was written to yet.
            Err(StoreError::NotFound { .. }) => return Ok(RecordsPage::default()),
            Err(StoreError::Query(m)) => {
                let what = if q.sql.is_some() { "sql" } else { "query" };
                return Err(DataError::Invalid(format!("{what}: {m}")));
            }
            Err(e @ StoreError::Limit(_)) => return Err(DataError::Invalid(e.to_string())),
            Err(e) => return Err(DataError::Failed(e.to_string())),
        };
        let mut records = Vec::new();
        for line in lines.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
            records
                .push(serde_json::from_slice(line).map_err(|e| DataError::Failed(e.to_string()))?);
        }
        let next_offset = (records.len() > q.limit).then(|| q.offset + q.limit);
        records.truncate(q.limit);
        Ok(RecordsPage {
            records,
            next_offset,
        })
    }

    fn metrics(&self) -> String {
        format!(
            "# HELP vpcflow_captures_ingested_total Uploaded captures ingested.\n\
             # TYPE vpcflow_captures_ingested_total counter\nvpcflow_captures_ingested_total {}\n{}",
            self.captures.load(Ordering::Relaxed),
            self.sink.metrics()
        )
    }

    fn tail(&self) -> tokio::sync::broadcast::Receiver<Arc<TailWindow>> {
        self.tail.subscribe()
    }
}

/// The control plane's flow logs and model, followed by `--live` capture:
/// every project's, rebuilt whenever the database was written.
struct DbSource {
    db: Arc<ControlDb>,
    runtime: tokio::runtime::Handle,
    seen: u64,
}

impl InventorySource for DbSource {
    fn describe(&self) -> String {
        "the control plane's flow logs".to_string()
    }
    fn load(&mut self) -> Result<Inventory, SourceError> {
        self.seen = self.db.generation();
        let live = self.runtime.block_on(self.db.live_inventory())?;
        // Said on every reload while it lasts: the project's owner must
        // fix it, and the others' capture goes on meanwhile.
        for (project, why) in &live.skipped {
            eprintln!(
                "vpcflow: warning: live capture leaves out project {project} until its model is fixed: {why}"
            );
        }
        Ok(live.inventory)
    }
    fn changed(&mut self) -> bool {
        self.db.generation() != self.seen
    }
}

/// Reads the database's change counter twice a second, so the live
/// capture follows writes made through other `serve` processes sharing the
/// database too (its own are counted as they commit). A database that
/// cannot be read is said once per outage; the capture keeps its
/// inventory meanwhile.
async fn follow_database(db: Arc<ControlDb>) {
    let mut failing = false;
    loop {
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        match db.refresh_generation().await {
            Ok(_) if failing => {
                failing = false;
                eprintln!("vpcflow: control-plane database readable again");
            }
            Ok(_) => {}
            Err(e) if !failing => {
                failing = true;
                eprintln!("vpcflow: warning: cannot follow the control-plane database: {e}");
            }
            Err(_) => {}
        }
    }
}

/// Runs `vpcflow serve`.
pub fn run(args: ServeArgs) -> Result<ExitCode> {
    // Tenants' records, tokens and uploads: files 0600, directories 0700.
    rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o077));
    // Every connection is a file descriptor: take all the hard limit
    // allows, so the connection caps, not the file limit, decide.
    let files = rustix::process::getrlimit(rustix::process::Resource::Nofile);
    if files.current < files.maximum {
        let raised = rustix::process::Rlimit {
            current: files.maximum,
            maximum: files.maximum,
        };
        let _ = rustix::process::setrlimit(rustix::process::Resource::Nofile, raised);
    }
    let inventory = args
        .config
        .as_ref()
        .map(|p| {
            std::fs::read_to_string(p)
                .map(|text| (p.display().to_string(), text))
                .with_context(|| format!("cannot read inventory {}", p.display()))
        })
        .transpose()?;
    let sink = Arc::new(SharedStore::open(&args.data.join("store"))?);
    sink.store().compact_in_background();
    let tail = tokio::sync::broadcast::channel(TAIL_BACKLOG).0;
    if sink.listen(Box::new(Tail(tail.clone()))).is_err() {
        unreachable!("a new store has no listener");
    }
    let data = ServeData {
        sink: sink.clone(),
        tail,
        captures: AtomicU64::new(0),
        query_limits: QueryLimits {
            deadline: std::time::Duration::from_secs(args.query_timeout),
            memory_bytes: usize::try_from(args.query_memory << 20).unwrap_or(usize::MAX),
            ..QueryLimits::SERVER
        },
    };
    let runtime = runtime()?;
    let served = runtime.block_on(async {
        let (db, location) = args.database.open(&args.data).await?;
        let db = Arc::new(db);
        if let Some((name, text)) = &inventory
            && db.import_inventory(name, text).await?
        {
            eprintln!("vpcflow: imported the inventory into {location}");
        }
        let uploads = args.data.join("uploads");
        let swept = vpcflow_control::api::sweep_uploads(&uploads);
        if swept > 0 {
            eprintln!("vpcflow: removed {swept} upload spool files an earlier run left");
        }
        let listener = tokio::net::TcpListener::bind(args.listen)
            .await
            .with_context(|| format!("--listen {}", args.listen))?;
        let stop = Arc::new(AtomicBool::new(false));
        let live = if args.live {
            tokio::spawn(follow_database(db.clone()));
            let source = DbSource {
                db: db.clone(),
                runtime: tokio::runtime::Handle::current(),
                seen: 0,
            };
            let (options, sink, stop) = (args.capture.clone(), sink.clone(), stop.clone());
            Some(
                std::thread::Builder::new()
                    .name("live capture".into())
                    .spawn(move || {
                        let r = crate::agent::run_with(options, Box::new(source), sink, &stop);
                        // Said now, not at shutdown: the API keeps serving.
                        if let Err(e) = &r {
                            eprintln!("vpcflow: error: live capture stopped: {e:#}");
                        }
                        r
                    })
                    .context("starting live capture")?,
            )
        } else {
            None
        };
        eprintln!(
            "vpcflow: serving the API on http://{}",
            listener.local_addr()?
        );
        let state =
            AppState::new(db, Arc::new(data), uploads).with_upload_limit(args.max_upload << 20);
        let served = vpcflow_control::api::serve(listener, state).await;
        // The live capture flushes its open window as a partial one.
        stop.store(true, Ordering::Relaxed);
        if let Some(t) = live {
            let joined = tokio::task::spawn_blocking(move || t.join()).await;
            if !matches!(joined, Ok(Ok(_))) {
                eprintln!("vpcflow: live capture panicked");
            }
        }
        served?;
        Ok(ExitCode::SUCCESS)
    });
    // A query still running on a blocking thread has been cancelled (its
    // request is gone); dropping the runtime would wait for it.
    runtime.shutdown_timeout(std::time::Duration::from_secs(2));
    if served.is_ok() {
        eprintln!("vpcflow: stopped");
    }
    served
}

/// Runs `vpcflow token ...`.
pub fn run_token(args: TokenArgs) -> Result<ExitCode> {
    let TokenCommand::Create {
        project,
        data,
        database,
    } = args.command;
    runtime()?.block_on(async {
        let (db, _) = database.open(&data).await?;
        println!("{}", db.create_token(&project).await?);
        Ok(ExitCode::SUCCESS)
    })
}
