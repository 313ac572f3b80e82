//! Where closed windows go in a long-running process: the log store (one
//! writer per process, shared by the live agent and uploads), counters for
//! `/metrics`, and the live tail (every window's records, per log topic, to
//! whoever listens).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use anyhow::Result;
use vpcflow_control::data::TailWindow;
use vpcflow_core::Topology;
use vpcflow_core::aggregate::ClosedWindow;
use vpcflow_core::format::{self, Format};
use vpcflow_core::record::RecordBody;
use vpcflow_store::{CatalogGroup, Store, WrittenFile};

/// Windows a slow tail listener may fall behind before it misses some.
const TAIL_BACKLOG: usize = 256;

/// The store and what watches it.
pub struct RecordSink {
    store: Mutex<Store>,
    root: PathBuf,
    /// Frames (packets or kernel flow updates) the pipelines took.
    pub frames: AtomicU64,
    windows: AtomicU64,
    /// OK, NODATA, SKIPDATA.
    records: [AtomicU64; 3],
    files: AtomicU64,
    tail: tokio::sync::broadcast::Sender<Arc<TailWindow>>,
}

impl RecordSink {
    /// Opens the store at `root` (its single-writer lock is this process's
    /// from now on).
    pub fn open(root: &Path) -> Result<RecordSink> {
        Ok(RecordSink {
            store: Mutex::new(Store::open(root)?),
            root: root.to_path_buf(),
            frames: AtomicU64::new(0),
            windows: AtomicU64::new(0),
            records: Default::default(),
            files: AtomicU64::new(0),
            tail: tokio::sync::broadcast::channel(TAIL_BACKLOG).0,
        })
    }

    /// The store, for maintenance (registration, compaction, retention).
    pub fn store(&self) -> MutexGuard<'_, Store> {
        self.store.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The store's directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Records log groups and topics in the store's catalog.
    pub fn register(&self, groups: &[CatalogGroup]) -> Result<()> {
        Ok(self.store().register(groups)?)
    }

    /// Writes a closed window (`partial`: cut short by a stop), counts it,
    /// and hands its records to tail listeners, per log topic.
    pub fn write(
        &self,
        topology: &Topology,
        w: &ClosedWindow,
        partial: bool,
    ) -> Result<Vec<WrittenFile>> {
        let files = {
            let mut store = self.store();
            if partial {
                store.write_partial_window(topology, w)?
            } else {
                store.write_window(topology, w)?
            }
        };
        self.windows.fetch_add(1, Ordering::Relaxed);
        self.files.fetch_add(files.len() as u64, Ordering::Relaxed);
        for r in &w.records {
            let status = match r.body {
                RecordBody::Flow(_) => 0,
                RecordBody::NoData => 1,
                RecordBody::SkipData { .. } => 2,
            };
            self.records[status].fetch_add(1, Ordering::Relaxed);
        }
        if self.tail.receiver_count() > 0 {
            self.publish(topology, w);
        }
        Ok(files)
    }

    fn publish(&self, topology: &Topology, w: &ClosedWindow) {
        let mut by_topic: std::collections::BTreeMap<usize, Vec<u8>> = Default::default();
        for r in &w.records {
            let fl = r.flow_log as usize;
            let out = by_topic.entry(fl).or_default();
            if format::write_record(&Format::Json, topology, r, out).is_err() {
                return;
            }
        }
        for (fl, lines) in by_topic {
            let f = &topology.flow_logs[fl];
            let records = lines
                .split(|&b| b == b'\n')
                .filter(|l| !l.is_empty())
                .filter_map(|l| serde_json::from_slice(l).ok())
                .collect();
            // Nobody listening between the check and now is fine.
            let _ = self.tail.send(Arc::new(TailWindow {
                log_group_id: f.log_group_id.clone(),
                log_topic_id: f.log_topic_id.clone(),
                flow_log_id: f.id.clone(),
                start: w.start,
                end: w.end,
                records,
            }));
        }
    }

    /// A new tail listener.
    pub fn subscribe(&self) -> tokio::sync::broadcast::Receiver<Arc<TailWindow>> {
        self.tail.subscribe()
    }

    /// Prometheus text of the counters.
    pub fn metrics(&self) -> String {
        let n = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let [ok, nodata, skipdata] = &self.records;
        format!(
            "# HELP vpcflow_frames_total Frames (packets, or kernel flow counters) the pipelines took.\n\
             # TYPE vpcflow_frames_total counter\nvpcflow_frames_total {}\n\
             # HELP vpcflow_windows_closed_total Capture windows closed and written (per pipeline).\n\
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
