//! `vpcflow serve` (the control plane's REST API on its database, with the
//! pipeline and the log store behind it) and `vpcflow token create` (a
//! local admin command).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use vpcflow_capture::{CaptureFile, Ending};
use vpcflow_control::api::AppState;
use vpcflow_control::data::{DataError, DataPlane, IngestReport, RecordsPage, RecordsQuery};
use vpcflow_control::db::ControlDb;
use vpcflow_core::aggregate::AggregatorConfig;
use vpcflow_core::record::RecordBody;
use vpcflow_core::{Inventory, Pipeline};
use vpcflow_policy::DEFAULT_CONNECTIONS;
use vpcflow_store::{OutputFormat, Store, StoreError, TimeRange};

use crate::ingest::{Verdicts, inventory_pipeline};
use crate::store_cmd::catalog_groups;

/// Flags of `vpcflow serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on (loopback only by default; port 0 picks one).
    #[arg(long, default_value = "127.0.0.1:9696")]
    listen: SocketAddr,
    /// Data directory: the control-plane database (`control.db`) and the
    /// log store (`store/`).
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

/// The pipeline and log store behind the API, with counters for
/// `/metrics`.
struct ServeData {
    store: Mutex<Store>,
    root: PathBuf,
    captures: AtomicU64,
    frames: AtomicU64,
    windows: AtomicU64,
    /// OK, NODATA, SKIPDATA.
    records: [AtomicU64; 3],
    files: AtomicU64,
}

impl ServeData {
    fn open(root: &Path) -> Result<ServeData> {
        Ok(ServeData {
            store: Mutex::new(Store::open(root)?),
            root: root.to_path_buf(),
            captures: AtomicU64::new(0),
            frames: AtomicU64::new(0),
            windows: AtomicU64::new(0),
            records: Default::default(),
            files: AtomicU64::new(0),
        })
    }

    /// Writes the pipeline's closed windows.
    fn write_closed(
        &self,
        store: &mut Store,
        pipeline: &mut Pipeline<Verdicts>,
        report: &mut IngestReport,
    ) -> Result<(), DataError> {
        for w in std::mem::take(pipeline.closed()) {
            for f in store
                .write_window(pipeline.topology(), &w)
                .map_err(|e| DataError::Failed(e.to_string()))?
            {
                report.files += 1;
                report.records += f.records as u64;
            }
            report.windows += 1;
            for r in &w.records {
                let status = match r.body {
                    RecordBody::Flow(_) => 0,
                    RecordBody::NoData => 1,
                    RecordBody::SkipData { .. } => 2,
                };
                self.records[status].fetch_add(1, Ordering::Relaxed);
            }
        }
        Ok(())
    }
}

fn store_bytes(dir: &Path) -> u64 {
    let mut total = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            match e.metadata() {
                Ok(m) if m.is_dir() => stack.push(e.path()),
                Ok(m) => total += m.len(),
                Err(_) => {}
            }
        }
    }
    total
}

impl DataPlane for ServeData {
    fn ingest(&self, inventory: &Inventory, path: &Path) -> Result<IngestReport, DataError> {
        let file = std::fs::File::open(path).map_err(|e| DataError::Failed(e.to_string()))?;
        let mut capture = CaptureFile::from_reader("the uploaded capture", file)
            .map_err(|e| DataError::Invalid(e.to_string()))?;
        let config = AggregatorConfig {
            window: inventory.window,
            max_records: inventory.max_records_per_window,
            grace_ns: 2_000_000_000,
        };
        let mut pipeline = inventory_pipeline(inventory, config, None, DEFAULT_CONNECTIONS);
        let mut store = self.store.lock().unwrap_or_else(|e| e.into_inner());
        store
            .register(&catalog_groups(inventory))
            .map_err(|e| DataError::Failed(e.to_string()))?;
        let mut report = IngestReport::default();
        while let Some(frame) = capture.next_frame() {
            pipeline.observe(&frame);
            if !pipeline.closed().is_empty() {
                self.write_closed(&mut store, &mut pipeline, &mut report)?;
            }
        }
        pipeline.finish();
        self.write_closed(&mut store, &mut pipeline, &mut report)?;
        if let Err(e) = store.compact_before(u64::MAX) {
            eprintln!("vpcflow: warning: compaction: {e}");
        }
        report.frames = capture.frames();
        report.ending = match capture.ending() {
            Ending::Clean | Ending::Reading => "complete".to_string(),
            Ending::Truncated => "truncated: the capture was cut inside a block".to_string(),
            Ending::Corrupt(why) => format!("corrupt: {why}"),
        };
        self.captures.fetch_add(1, Ordering::Relaxed);
        self.frames.fetch_add(report.frames, Ordering::Relaxed);
        self.windows.fetch_add(report.windows, Ordering::Relaxed);
        self.files.fetch_add(report.files, Ordering::Relaxed);
        Ok(report)
    }

    fn query(&self, q: &RecordsQuery) -> Result<RecordsPage, DataError> {
        let invalid = |field: &str, e: anyhow::Error| DataError::Invalid(format!("{field}: {e:#}"));
        let now = crate::query::wall_clock_ns() / 1_000_000_000;
        let mut time = TimeRange {
            since: q
                .since
                .as_deref()
                .map(crate::query::instant)
                .transpose()
                .map_err(|e| invalid("since", e))?,
            until: q
                .until
                .as_deref()
                .map(crate::query::instant)
                .transpose()
                .map_err(|e| invalid("until", e))?,
        };
        if let Some(last) = &q.last {
            let secs = crate::query::duration_secs(last).map_err(|e| invalid("last", e))?;
            time.since = Some(now.saturating_sub(secs));
        }
        let filter = q
            .search
            .as_deref()
            .map(crate::search::to_sql)
            .transpose()
            .map_err(|e| invalid("search", e))?;
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
        };
        let result = match query.run(&self.root) {
            Ok(r) => r,
            // A topic nothing was written to yet.
            Err(StoreError::NotFound { .. }) => return Ok(RecordsPage::default()),
            Err(StoreError::Query(m)) => {
                let what = if q.sql.is_some() { "sql" } else { "query" };
                return Err(DataError::Invalid(format!("{what}: {m}")));
            }
            Err(e) => return Err(DataError::Failed(e.to_string())),
        };
        let mut lines = Vec::new();
        result
            .write(OutputFormat::Json, &mut lines)
            .map_err(|e| DataError::Failed(e.to_string()))?;
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
        let n = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let [ok, nodata, skipdata] = &self.records;
        format!(
            "# HELP vpcflow_captures_ingested_total Uploaded captures ingested.\n\
             # TYPE vpcflow_captures_ingested_total counter\nvpcflow_captures_ingested_total {}\n\
             # HELP vpcflow_frames_total Frames (packets) read by the pipeline.\n\
             # TYPE vpcflow_frames_total counter\nvpcflow_frames_total {}\n\
             # HELP vpcflow_windows_closed_total Capture windows closed and written.\n\
             # TYPE vpcflow_windows_closed_total counter\nvpcflow_windows_closed_total {}\n\
             # HELP vpcflow_records_total Flow records written, by log-status.\n\
             # TYPE vpcflow_records_total counter\n\
             vpcflow_records_total{{log_status=\"OK\"}} {}\n\
             vpcflow_records_total{{log_status=\"NODATA\"}} {}\n\
             vpcflow_records_total{{log_status=\"SKIPDATA\"}} {}\n\
             # HELP vpcflow_store_files_written_total Log-store files written.\n\
             # TYPE vpcflow_store_files_written_total counter\nvpcflow_store_files_written_total {}\n\
             # HELP vpcflow_store_bytes Bytes of the log store on disk.\n\
             # TYPE vpcflow_store_bytes gauge\nvpcflow_store_bytes {}\n",
            n(&self.captures),
            n(&self.frames),
            n(&self.windows),
            n(ok),
            n(nodata),
            n(skipdata),
            n(&self.files),
            store_bytes(&self.root),
        )
    }
}

/// Runs `vpcflow serve`.
pub fn run(args: ServeArgs) -> Result<ExitCode> {
    let inventory = args
        .config
        .as_ref()
        .map(|p| {
            std::fs::read_to_string(p)
                .map(|text| (p.display().to_string(), text))
                .with_context(|| format!("cannot read inventory {}", p.display()))
        })
        .transpose()?;
    let data = ServeData::open(&args.data.join("store"))?;
    runtime()?.block_on(async {
        let db = ControlDb::open(&args.data).await?;
        if let Some((name, text)) = &inventory
            && db.import_inventory(name, text).await?
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
        let state = AppState::new(Arc::new(db), Arc::new(data), args.data.join("uploads"));
        vpcflow_control::api::serve(listener, state).await?;
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
