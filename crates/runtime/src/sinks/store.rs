//! The log store as a sink: [`SharedStore`] (the process's one writer,
//! shared by live capture and uploads, with its `/metrics` counters and a
//! [`WindowListener`]) and [`StoreSink`], the driver's sink into it.
//!
//! Guarantees: a window is counted once it is durable; a listener sees a
//! window only after the store has it.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, OnceLock};

use vpcflow_core::aggregate::ClosedWindow;
use vpcflow_core::record::RecordBody;
use vpcflow_core::{Inventory, Timestamp, Topology};
use vpcflow_store::{CatalogGroup, CatalogTopic, PreparedWindow, Store, StoreError, WrittenFile};

use crate::driver::{Sink, SinkError};

/// Told of every window the store took.
pub trait WindowListener: Send + Sync {
    /// `window` of `topology` is in the store.
    fn window(&self, topology: &Topology, window: &ClosedWindow);
}

/// The log store of a process and what watches it.
pub struct SharedStore {
    store: Mutex<Store>,
    root: PathBuf,
    /// Frames (packets or kernel flow updates) the pipelines took.
    pub frames: AtomicU64,
    windows: AtomicU64,
    /// OK, NODATA, SKIPDATA.
    records: [AtomicU64; 3],
    files: AtomicU64,
    listener: OnceLock<Box<dyn WindowListener>>,
}

impl SharedStore {
    /// Opens the store at `root` (its single-writer lock is this process's
    /// from now on).
    pub fn open(root: &Path) -> Result<SharedStore, StoreError> {
        Ok(SharedStore {
            store: Mutex::new(Store::open(root)?),
            root: root.to_path_buf(),
            frames: AtomicU64::new(0),
            windows: AtomicU64::new(0),
            records: Default::default(),
            files: AtomicU64::new(0),
            listener: OnceLock::new(),
        })
    }

    /// Sets the listener told of every window from now on (once; a second
    /// one is handed back).
    pub fn listen(&self, l: Box<dyn WindowListener>) -> Result<(), Box<dyn WindowListener>> {
        self.listener.set(l)
    }

    /// The store, for maintenance (registration, compaction, retention).
    pub fn store(&self) -> MutexGuard<'_, Store> {
        self.store.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The store's directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Records the inventory's log groups and topics in the store's catalog.
    pub fn register(&self, inventory: &Inventory) -> Result<(), StoreError> {
        self.store().register(&catalog_groups(inventory))
    }

    /// Writes a closed window (`partial`: cut short by a stop), counts it,
    /// and tells the listener.
    pub fn write(
        &self,
        topology: &Topology,
        w: &ClosedWindow,
        partial: bool,
    ) -> Result<Vec<WrittenFile>, StoreError> {
        let files = {
            let mut store = self.store();
            if partial {
                store.write_partial_window(topology, w)?
            } else {
                store.write_window(topology, w)?
            }
        };
        self.files.fetch_add(files.len() as u64, Ordering::Relaxed);
        self.counted(topology, w);
        Ok(files)
    }

    /// Writes prepared windows (in time order) in one go, one file per
    /// log topic and hour ([`vpcflow_store::Store::write_prepared`]).
    pub fn write_prepared(
        &self,
        windows: Vec<PreparedWindow>,
    ) -> Result<Vec<WrittenFile>, StoreError> {
        let files = self.store().write_prepared(windows)?;
        self.files.fetch_add(files.len() as u64, Ordering::Relaxed);
        Ok(files)
    }

    /// Counts a window taken for writing and tells the listener.
    fn counted(&self, topology: &Topology, w: &ClosedWindow) {
        self.windows.fetch_add(1, Ordering::Relaxed);
        for r in &w.records {
            let status = match r.body {
                RecordBody::Flow(_) => 0,
                RecordBody::NoData => 1,
                RecordBody::SkipData { .. } => 2,
            };
            self.records[status].fetch_add(1, Ordering::Relaxed);
        }
        if let Some(l) = self.listener.get() {
            l.window(topology, w);
        }
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

/// The inventory's log groups and topics as the store's catalog records them.
pub fn catalog_groups(inv: &Inventory) -> Vec<CatalogGroup> {
    inv.log_groups
        .iter()
        .enumerate()
        .map(|(i, g)| CatalogGroup {
            id: g.id.clone(),
            name: g.name.clone(),
            ttl_in_days: u32::from(g.ttl_in_days),
            log_topics: inv
                .log_topics
                .iter()
                .filter(|t| t.log_group == i)
                .map(|t| CatalogTopic {
                    id: t.id.clone(),
                    name: t.name.clone(),
                })
                .collect(),
        })
        .collect()
}

/// When a [`StoreSink`] merges hours.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compaction {
    /// As windows close in time order: the hours before each window are
    /// complete, and at the end every hour is.
    AsWritten,
    /// Never (the caller compacts: uploads, whose windows may fall in hours
    /// the live capture still writes).
    ByCaller,
}

/// Closed windows held back, encoded, to be written together
/// ([`StoreSink::batched`]).
struct Held {
    windows: Vec<PreparedWindow>,
    /// Closed windows in `windows`, and the last one's start.
    closed: u64,
    last_start: u64,
    records: usize,
    max_records: usize,
}

/// The driver's sink into a [`SharedStore`].
pub struct StoreSink {
    store: Arc<SharedStore>,
    held: Option<Held>,
    /// Each durable file, `PATH RECORDS` per line (for scripts).
    files_out: Option<Box<dyn Write + Send>>,
    compaction: Compaction,
    /// Files written.
    pub files: u64,
    /// Records written.
    pub records: u64,
    /// Windows written.
    pub windows: u64,
    /// Hours compacted at the end.
    pub compacted: usize,
}

impl StoreSink {
    /// Writes into `store`; each durable file said on `files_out`.
    pub fn new(
        store: Arc<SharedStore>,
        files_out: Option<Box<dyn Write + Send>>,
        compaction: Compaction,
    ) -> StoreSink {
        StoreSink {
            store,
            held: None,
            files_out,
            compaction,
            files: 0,
            records: 0,
            windows: 0,
            compacted: 0,
        }
    }

    /// The store.
    pub fn store(&self) -> &SharedStore {
        &self.store
    }

    /// Holds closed windows back and writes them together, one file per
    /// log topic and hour: when a window of a later hour comes, when
    /// `max_records` records are held, and at the end. For offline ingest,
    /// where a file and an fsync per window cost more than the records. A
    /// file is said on `files_out` once it is durable, as before; what is
    /// held is not written yet.
    pub fn batched(mut self, max_records: usize) -> StoreSink {
        self.held = Some(Held {
            windows: Vec::new(),
            closed: 0,
            last_start: 0,
            records: 0,
            max_records: max_records.max(1),
        });
        self
    }

    /// Writes what is held.
    fn flush(&mut self) -> Result<(), SinkError> {
        let Some(held) = &mut self.held else {
            return Ok(());
        };
        if held.closed == 0 {
            return Ok(());
        }
        let windows = std::mem::take(&mut held.windows);
        let (closed, last_start) = (held.closed, held.last_start);
        (held.closed, held.records) = (0, 0);
        let files = self.store.write_prepared(windows)?;
        self.said(&files)?;
        self.windows += closed;
        self.compact_before(last_start);
        Ok(())
    }

    /// Says durable files on `files_out` and counts them.
    fn said(&mut self, files: &[WrittenFile]) -> Result<(), SinkError> {
        for f in files {
            if let Some(out) = &mut self.files_out {
                writeln!(out, "{} {}", f.path.display(), f.records)?;
                out.flush()?;
            }
            self.files += 1;
            self.records += f.records as u64;
        }
        Ok(())
    }

    /// Merges the hours before `start`, when this sink compacts.
    fn compact_before(&mut self, start: u64) {
        // A failed compaction leaves the hour as it was: whole, just not merged.
        if self.compaction == Compaction::AsWritten
            && let Err(e) = self.store.store().compact_before(start)
        {
            eprintln!("vpcflow: warning: compaction: {e}");
        }
    }
}

impl Sink for StoreSink {
    fn write(
        &mut self,
        topology: &Topology,
        window: &ClosedWindow,
        partial: bool,
    ) -> Result<(), SinkError> {
        // A window of a later hour: the held hour is complete, write it.
        if self
            .held
            .as_ref()
            .is_some_and(|h| h.closed > 0 && h.last_start / 3600 != window.start / 3600)
        {
            self.flush()?;
        }
        if let Some(held) = &mut self.held
            && !partial
        {
            held.windows
                .extend(Store::prepare_window(topology, window)?);
            self.store.counted(topology, window);
            held.records += window.records.len();
            held.closed += 1;
            held.last_start = window.start;
            if held.records >= held.max_records {
                self.flush()?;
            }
            return Ok(());
        }
        self.flush()?;
        let files = self.store.write(topology, window, partial)?;
        self.said(&files)?;
        self.windows += 1;
        self.compact_before(window.start);
        Ok(())
    }

    fn register(&mut self, inventory: &Inventory) -> Result<(), SinkError> {
        Ok(self.store.register(inventory)?)
    }

    fn upkeep(&mut self, now: Timestamp) {
        match self.store.store().gc(|_| None, now.secs()) {
            Ok(r) => {
                for p in &r.partitions {
                    eprintln!("vpcflow: retention removed {}", p.display());
                }
            }
            Err(e) => eprintln!("vpcflow: warning: retention: {e}"),
        }
    }

    fn finish(&mut self) -> Result<(), SinkError> {
        self.flush()?;
        if self.compaction == Compaction::ByCaller {
            return Ok(());
        }
        // The run is over: no window can land in its hours any more.
        let mut store = self.store.store();
        let compacted = store.compact_before(u64::MAX).and_then(|mut c| {
            c.extend(store.finish_compaction()?);
            Ok(c)
        });
        match compacted {
            Ok(c) => self.compacted = c.len(),
            Err(e) => eprintln!("vpcflow: warning: compaction: {e}"),
        }
        Ok(())
    }
}
