//! The data plane behind the API: uploads replayed through the runtime's
//! driver into the log store, records queries in an isolated worker
//! process, `/metrics`, and the live tail of every window the store takes.
//!
//! With a ClickHouse store, the server's own store is the spool in front
//! of it: uploads, live capture, collected exports and agents' windows
//! are written there and a [`vpcflow_runtime::Shipper`] sends them on;
//! queries and analyses read ClickHouse.
//!
//! Guarantees: an upload's windows are in the store before its answer
//! (with ClickHouse: durable in the spool, and in ClickHouse unless it is
//! failing or slower than [`UPLOAD_SENT_WAIT`]); a records query never
//! runs in the server's own process, so no query can take the server
//! down; the tail shows a window only once it is durable; an agent's
//! window is settled against the store that has it (the spool, or
//! ClickHouse's ledger).

use std::collections::BTreeMap;
use std::fmt::Display;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::sync::broadcast;
use vpcflow_capture::{CaptureFile, Ending, MergedCaptures};
use vpcflow_control::data::{
    AnalysisKind, AnalysisQuery, AnalysisReport, DataError, DataPlane, IngestReport, PendingWindow,
    RecordsPage, RecordsQuery, ShippedInfo, SuggestionReport, TailWindow,
};
use vpcflow_core::aggregate::{AggregatorConfig, ClosedWindow};
use vpcflow_core::format::{self, Format};
use vpcflow_core::time::{parse_duration_secs, parse_instant};
use vpcflow_core::{Inventory, PlausibleTimes, Topology};
use vpcflow_policy::DEFAULT_CONNECTIONS;
use vpcflow_runtime::capture::replay;
use vpcflow_runtime::{
    Clock, Compaction, Driver, SharedStore, Sink, StoreSink, SystemClock, WindowListener,
    inventory_pipeline,
};
use vpcflow_runtime::{SentWaiter, SpoolIds};
use vpcflow_store::clickhouse::{ClickHouse, ClickHouseUrl};
use vpcflow_store::shipped::ShippedWindow;
use vpcflow_store::{QueryLimits, StoreError, StoreRef, TimeRange};

/// Windows a slow tail listener may fall behind before it misses some.
pub const TAIL_BACKLOG: usize = 256;

/// How long an upload's answer waits for its windows to reach ClickHouse
/// (they are durable in the spool already, and go on after it).
pub const UPLOAD_SENT_WAIT: std::time::Duration = std::time::Duration::from_secs(30);

/// The ClickHouse store behind a server whose own store is its spool.
pub struct ClickHouseStore {
    /// Where it is.
    pub url: ClickHouseUrl,
    /// The ids the spool's windows go by there.
    pub ids: SpoolIds,
    /// Waits for the spool to be sent.
    pub sent: SentWaiter,
}

/// The live tail: every window the store takes, per log topic, as JSON
/// records, to whoever listens.
pub struct Tail(pub broadcast::Sender<Arc<TailWindow>>);

impl WindowListener for Tail {
    fn window(&self, topology: &Topology, w: &ClosedWindow) {
        if self.0.receiver_count() == 0 {
            return;
        }
        let mut by_topic: BTreeMap<usize, Vec<serde_json::Value>> = BTreeMap::new();
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
pub struct StoreDataPlane {
    store: Arc<SharedStore>,
    /// With ClickHouse: `store` is its spool.
    clickhouse: Option<ClickHouseStore>,
    tail: broadcast::Sender<Arc<TailWindow>>,
    captures: AtomicU64,
    query_limits: QueryLimits,
}

impl StoreDataPlane {
    /// Serves `store` (whose listener becomes the tail), each records query
    /// under `query_limits`.
    pub fn new(store: Arc<SharedStore>, query_limits: QueryLimits) -> StoreDataPlane {
        let tail = broadcast::channel(TAIL_BACKLOG).0;
        if store.listen(Box::new(Tail(tail.clone()))).is_err() {
            eprintln!("vpcflow: warning: the store has a listener already; the live tail is off");
        }
        StoreDataPlane {
            store,
            clickhouse: None,
            tail,
            captures: AtomicU64::new(0),
            query_limits,
        }
    }

    /// Reads and settles windows in ClickHouse, `store` being its spool.
    pub fn with_clickhouse(mut self, clickhouse: ClickHouseStore) -> StoreDataPlane {
        self.clickhouse = Some(clickhouse);
        self
    }

    /// The store queries and analyses read.
    fn reads(&self) -> StoreRef<'_> {
        match &self.clickhouse {
            Some(c) => StoreRef::ClickHouse(&c.url),
            None => StoreRef::Dir(self.store.root()),
        }
    }

    /// Whether ClickHouse's ledger has the window stored as `stored` in
    /// the spool (false when ClickHouse cannot say: the agent sends it
    /// again, and the ledger takes that as the duplicate it is).
    fn in_clickhouse(&self, topic: &str, start: u64, stored: &str) -> bool {
        let Some(c) = &self.clickhouse else {
            return false;
        };
        let found = ClickHouse::shared(&c.url)
            .and_then(|ch| ch.has_window(topic, start, &c.ids.window(stored)));
        found.unwrap_or_else(|e| {
            eprintln!("vpcflow: warning: cannot look up window {stored} in ClickHouse: {e}");
            false
        })
    }
}

fn failed(e: &dyn Display) -> DataError {
    DataError::Failed(e.to_string())
}

fn invalid(field: &str, e: &dyn Display) -> DataError {
    DataError::Invalid(format!("{field}: {e}"))
}

/// The range of an API query's `since`, `until` and `last` (which counts
/// back from now and replaces `since`).
fn time_range(
    since: Option<&str>,
    until: Option<&str>,
    last: Option<&str>,
) -> Result<TimeRange, DataError> {
    let mut time = TimeRange {
        since: since
            .map(parse_instant)
            .transpose()
            .map_err(|e| invalid("since", &e))?,
        until: until
            .map(parse_instant)
            .transpose()
            .map_err(|e| invalid("until", &e))?,
    };
    if let Some(last) = last {
        let secs = parse_duration_secs(last).map_err(|e| invalid("last", &e))?;
        time.since = Some(SystemClock.now().secs().saturating_sub(secs));
    }
    Ok(time)
}

/// A shipped window checked by [`StoreDataPlane::check_window`].
struct Pending {
    store: Arc<SharedStore>,
    window: ShippedWindow,
    info: ShippedInfo,
}

impl PendingWindow for Pending {
    fn info(&self) -> &ShippedInfo {
        &self.info
    }

    fn write(self: Box<Self>, host: &str) -> Result<(), DataError> {
        self.store
            .store()
            .write_shipped(host, &self.window)
            .map_err(|e| failed(&e))?;
        self.store.written();
        Ok(())
    }
}

impl DataPlane for StoreDataPlane {
    fn check_window(
        &self,
        inventory: &Inventory,
        log_group_id: &str,
        log_topic_id: &str,
        name: &str,
        records: Vec<u8>,
        summary: &[u8],
    ) -> Result<Box<dyn PendingWindow>, DataError> {
        let window = ShippedWindow::parse(
            log_group_id,
            log_topic_id,
            name,
            bytes::Bytes::from(records),
            summary,
            vpcflow_store::shipped::WindowNames::Own,
        )
        .map_err(|e| DataError::Invalid(e.to_string()))?;
        // Its log group and topic in the store's catalog, as an upload's.
        self.store.register(inventory).map_err(|e| failed(&e))?;
        let info = ShippedInfo {
            log_group_id: window.group.clone(),
            log_topic_id: window.topic.clone(),
            name: window.name.clone(),
            interface_ids: window.interface_ids.iter().cloned().collect(),
            records: window.records as u64,
        };
        Ok(Box::new(Pending {
            store: self.store.clone(),
            window,
            info,
        }))
    }

    fn has_window(&self, host: &str, log_group_id: &str, log_topic_id: &str, name: &str) -> bool {
        let in_store = self
            .store
            .store()
            .shipped_path(host, log_group_id, log_topic_id, name)
            .is_some_and(|p| p.exists());
        in_store
            || vpcflow_store::shipped::shipped_name(host, name)
                .is_some_and(|(start, stored)| self.in_clickhouse(log_topic_id, start, &stored))
    }

    fn check_capture_head(&self, head: &[u8]) -> Result<(), DataError> {
        vpcflow_capture::check_head("the uploaded capture", head)
            .map_err(|e| DataError::Invalid(e.to_string()))
    }

    fn ingest(&self, inventory: &Inventory, path: &Path) -> Result<IngestReport, DataError> {
        let file = std::fs::File::open(path).map_err(|e| failed(&e))?;
        let capture = CaptureFile::from_reader("the uploaded capture", file)
            .map_err(|e| DataError::Invalid(e.to_string()))?;
        let config = AggregatorConfig::of(inventory, None);
        let now = SystemClock.now();
        let pipeline = inventory_pipeline(inventory, config, None, DEFAULT_CONNECTIONS)
            .with_plausible_times(PlausibleTimes::around(now));
        let mut driver = Driver::from_pipeline(pipeline);
        let mut sink = StoreSink::new(self.store.clone(), None, Compaction::ByCaller);
        sink.register(inventory).map_err(|e| failed(&e))?;
        let mut captures = MergedCaptures::new(vec![capture]);
        let frames =
            replay(&mut driver, &mut captures, &mut sink, &mut |_| {}).map_err(|e| failed(&e))?;
        if let Some(c) = &self.clickhouse {
            if !c.sent.wait(UPLOAD_SENT_WAIT) {
                eprintln!(
                    "vpcflow: warning: an upload's windows wait in the spool: {} has not taken them yet",
                    c.url
                );
            }
        } else {
            // Hours before the current one get no more live windows; an
            // upload adding to an old hour has it merged again.
            let hour_now = SystemClock.now().secs() / 3600 * 3600;
            if let Err(e) = self.store.store().compact_before(hour_now) {
                eprintln!("vpcflow: warning: compaction: {e}");
            }
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
        self.store
            .frames
            .fetch_add(report.frames, Ordering::Relaxed);
        Ok(report)
    }

    fn analyze(
        &self,
        kind: AnalysisKind,
        inventory: &Inventory,
        q: &AnalysisQuery,
    ) -> Result<AnalysisReport, DataError> {
        use vpcflow_analysis::{AnalysisError, Records, attacks, rules, suggest, traffic};
        let records = Records {
            group: Some(q.log_group_id.clone()),
            topic: Some(q.log_topic_id.clone()),
            time: time_range(q.since.as_deref(), q.until.as_deref(), q.last.as_deref())?,
            confined: true,
            limits: self.query_limits,
            cancel: Some(q.cancel.clone()),
            ..Records::of(self.reads())
        };
        let mut suggestion = None;
        let found = match kind {
            AnalysisKind::Rules if q.hits => rules::hits(&records, inventory),
            AnalysisKind::Rules => rules::find(&records, inventory, &Default::default()),
            AnalysisKind::Attacks => {
                let mut t = attacks::Thresholds::default();
                for s in q.thresholds.iter().flat_map(|s| s.split(',')) {
                    t.set(s).map_err(|e| invalid("thresholds", &e))?;
                }
                attacks::find(&records, &t)
            }
            AnalysisKind::Traffic => {
                let mut o = traffic::TrafficOptions::default();
                if let Some(b) = &q.bucket {
                    o.bucket_secs = parse_duration_secs(b).map_err(|e| invalid("bucket", &e))?;
                }
                if let Some(top) = q.top {
                    o.top = top;
                }
                o.by_packets = match q.by.as_deref() {
                    None | Some("bytes") => false,
                    Some("packets") => true,
                    Some(other) => {
                        return Err(invalid("by", &format!("'{other}' is not bytes or packets")));
                    }
                };
                traffic::find(&records, inventory, &o)
            }
            AnalysisKind::Suggest => {
                let text = q.inventory_toml.as_deref().unwrap_or_default();
                suggest::suggest(&records, "the project's model", text, &Default::default()).map(
                    |s| {
                        suggestion = Some(SuggestionReport {
                            inventory: s.toml,
                            checked: s.checked,
                            newly_rejected: s.newly_rejected.len() as u64,
                        });
                        s.changes.into_iter().chain(s.newly_rejected).collect()
                    },
                )
            }
        };
        let findings = match found {
            Ok(f) => f,
            // A topic nothing was written to yet.
            Err(AnalysisError::Store(StoreError::NotFound { .. })) => Vec::new(),
            Err(AnalysisError::Store(e @ StoreError::Limit(_))) => {
                return Err(DataError::Invalid(e.to_string()));
            }
            Err(e @ AnalysisError::Threshold(_)) => return Err(DataError::Invalid(e.to_string())),
            Err(e) => return Err(failed(&e)),
        };
        Ok(AnalysisReport {
            findings: findings
                .iter()
                .map(serde_json::to_value)
                .collect::<Result<_, _>>()
                .map_err(|e| failed(&e))?,
            suggestion,
        })
    }

    fn query(&self, q: &RecordsQuery) -> Result<RecordsPage, DataError> {
        let time = time_range(q.since.as_deref(), q.until.as_deref(), q.last.as_deref())?;
        let filter = q
            .search
            .as_deref()
            .map(vpcflow_store::search::to_sql)
            .transpose()
            .map_err(|e| invalid("search", &e))?;
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
        let lines = match vpcflow_store::worker::run_isolated(&query, self.reads()) {
            Ok(lines) => lines,
            // A topic nothing was written to yet.
            Err(StoreError::NotFound { .. }) => return Ok(RecordsPage::default()),
            Err(StoreError::Query(m)) => {
                let what = if q.sql.is_some() { "sql" } else { "query" };
                return Err(DataError::Invalid(format!("{what}: {m}")));
            }
            Err(e @ StoreError::Limit(_)) => return Err(DataError::Invalid(e.to_string())),
            Err(e) => return Err(failed(&e)),
        };
        let mut records = Vec::new();
        for line in lines.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
            records.push(serde_json::from_slice(line).map_err(|e| failed(&e))?);
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
            self.store.metrics()
        )
    }

    fn tail(&self) -> broadcast::Receiver<Arc<TailWindow>> {
        self.tail.subscribe()
    }
}
