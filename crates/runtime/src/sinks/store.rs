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
use vpcflow_store::{CatalogGroup, CatalogTopic, HourFiles, Store, StoreError, WrittenFile};

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
    /// A spool: every sink into it writes as [`Compaction::Spool`].
    spool: bool,
    /// Called after each window written (a spool's shipper's nudge).
    on_write: OnceLock<Box<dyn Fn() + Send + Sync>>,
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
            spool: false,
            on_write: OnceLock::new(),
        })
    }

    /// Opens the store at `root` as a spool, whose windows a [`crate::Shipper`]
    /// sends on: every sink into it writes as [`Compaction::Spool`] (one
    /// file per window, never merged, no retention), whatever it asks for.
    pub fn open_spool(root: &Path) -> Result<SharedStore, StoreError> {
        Ok(SharedStore {
            spool: true,
            ..SharedStore::open(root)?
        })
    }

    /// Sets what is called after each window written (once): a spool's
    /// [`crate::Shipper::nudge`], so windows leave as they come.
    pub fn on_write(&self, f: Box<dyn Fn() + Send + Sync>) {
        if self.on_write.set(f).is_err() {
            eprintln!("vpcflow: warning: the store has a write hook already");
        }
    }

    /// Says a window was written (by [`SharedStore::write`] and
    /// [`SharedStore::close_hour`], or by whoever wrote into
    /// [`SharedStore::store`] directly).
    pub fn written(&self) {
        if let Some(f) = self.on_write.get() {
            f();
        }
    }

    /// Whether it is a spool ([`SharedStore::open_spool`]).
    pub fn is_spool(&self) -> bool {
        self.spool
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

    /// Removes the hours past their log group's retention at `now` (Unix
    /// seconds; the catalog's retention), saying each on stderr; a failure
    /// is a warning, and the next pass tries again.
    pub fn apply_retention(&self, now: u64) {
        match self.store().gc(|_| None, now) {
            Ok(r) => {
                for p in &r.partitions {
                    eprintln!("vpcflow: retention removed {}", p.display());
                }
            }
            Err(e) => eprintln!("vpcflow: warning: retention: {e}"),
        }
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
        self.written();
        Ok(files)
    }

    /// Appends a closed window to an hour's files
    /// ([`vpcflow_store::Store::append_window`]) and counts it.
    pub fn append(
        &self,
        hour: &mut HourFiles,
        topology: &Topology,
        w: &ClosedWindow,
    ) -> Result<(), StoreError> {
        self.store().append_window(hour, topology, w)?;
        self.counted(topology, w);
        Ok(())
    }

    /// Makes an hour's files durable and visible
    /// ([`vpcflow_store::Store::close_hour`]).
    pub fn close_hour(&self, hour: HourFiles) -> Result<Vec<WrittenFile>, StoreError> {
        let files = self.store().close_hour(hour)?;
        self.files.fetch_add(files.len() as u64, Ordering::Relaxed);
        self.written();
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
    /// Never, and no retention either: the store is a fleet agent's spool,
    /// whose files leave as they are sent. Merging would give windows the
    /// server may have already a new name, so it would take them twice;
    /// retention is the server's.
    Spool,
}

/// The hour an hourly [`StoreSink`] is writing ([`StoreSink::hourly`]).
struct Hourly {
    files: HourFiles,
    /// Windows appended to `files`.
    windows: u64,
}

/// The driver's sink into a [`SharedStore`].
pub struct StoreSink {
    store: Arc<SharedStore>,
    hourly: Option<Hourly>,
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
        let compaction = if store.is_spool() {
            Compaction::Spool
        } else {
            compaction
        };
        StoreSink {
            store,
            hourly: None,
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

    /// Writes each log topic's hour as one file, encoded as windows come,
    /// made visible and durable when the hour is over (a window of a later
    /// hour comes, or the run ends): for offline ingest, where a file and
    /// an fsync per window cost more than the records, and merging them
    /// afterwards costs their encoding twice. A file is said on
    /// `files_out` once it is durable, as before.
    /// Not into a spool, whose files are one window each.
    pub fn hourly(mut self) -> StoreSink {
        if self.compaction == Compaction::Spool {
            return self;
        }
        self.hourly = Some(Hourly {
            files: HourFiles::default(),
            windows: 0,
        });
        self
    }

    /// Closes the hour being written, if any.
    fn close_hour(&mut self) -> Result<(), SinkError> {
        let Some(h) = &mut self.hourly else {
            return Ok(());
        };
        let Some(start) = h.files.hour_start() else {
            return Ok(());
        };
        let files = std::mem::take(&mut h.files);
        let windows = std::mem::take(&mut h.windows);
        let written = self.store.close_hour(files)?;
        self.said(&written)?;
        self.windows += windows;
        self.compact_before(start + 3600);
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
        // A window of a later hour: the one being written is complete.
        if self
            .hourly
            .as_ref()
            .and_then(|h| h.files.hour_start())
            .is_some_and(|s| s / 3600 != window.start / 3600)
        {
            self.close_hour()?;
        }
        if let Some(h) = &mut self.hourly
            && !partial
        {
            self.store.append(&mut h.files, topology, window)?;
            h.windows += 1;
            return Ok(());
        }
        self.close_hour()?;
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
        if self.compaction == Compaction::Spool {
            return;
        }
        self.store.apply_retention(now.secs());
    }

    fn finish(&mut self) -> Result<(), SinkError> {
        self.close_hour()?;
        if self.compaction != Compaction::AsWritten {
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
