//! Writing closed windows, durably.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use datafusion::arrow::array::RecordBatch;
use datafusion::parquet::arrow::ArrowWriter;
use datafusion::parquet::basic::{Compression, ZstdLevel};
use datafusion::parquet::file::properties::WriterProperties;
use vpcflow_core::Topology;
use vpcflow_core::aggregate::ClosedWindow;
use vpcflow_core::record::FlowRecord;

use crate::StoreError;
use crate::catalog::{Catalog, CatalogGroup};
use crate::layout::partition;
use crate::schema::{batch, schema};

/// Suffix of files being written; never read, removed by [`Store::open`].
pub(crate) const TMP: &str = ".tmp";

/// Records per Arrow batch handed to the Parquet writer: a window's
/// records are encoded a slice at a time, so the columns being built and
/// the records they are read from stay in cache, and the buffers are
/// reused rather than faulted in afresh for every window.
const BATCH_ROWS: usize = 4096;

/// The lock file that makes a store single-writer.
const LOCK: &str = ".lock";

/// A store directory opened for writing. One process at a time holds a
/// store open (an advisory lock on `.lock`, released when the process
/// exits, however it exits).
#[derive(Debug)]
pub struct Store {
    pub(crate) root: PathBuf,
    /// The last number a file name took (`START-END-PID-SEQ`): from the
    /// microsecond the store was opened, so that a later process with the
    /// same id (a container's agent is often PID 1 at every start) names
    /// no window as an earlier one did. A spool's next hop knows a window
    /// by its name, and takes a name it has seen as a retry.
    pub(crate) seq: u64,
    /// Hour partitions written by this writer and not compacted since,
    /// with the instant each hour ends.
    pub(crate) touched: BTreeMap<PathBuf, u64>,
    pub(crate) compactor: Option<crate::compact::Compactor>,
    /// Held while a window's file is written into an hour directory and
    /// while a compaction checks and swaps one, so a compaction never
    /// swaps away a file (or a file being written) it did not merge.
    pub(crate) hour_dirs: Arc<Mutex<()>>,
    _lock: File,
}

/// Takes [`Store::hour_dirs`]; a panic elsewhere leaves nothing to repair.
pub(crate) fn lock_hour_dirs(m: &Mutex<()>) -> MutexGuard<'_, ()> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The files of one hour being written by [`Store::append_window`], one
/// per log topic, until [`Store::close_hour`].
#[derive(Default)]
pub struct HourFiles {
    hour: Option<u64>,
    files: BTreeMap<(String, String), OpenFile>,
}

impl HourFiles {
    /// The hour (its start, Unix seconds) these files hold, if any window
    /// was appended.
    pub fn hour_start(&self) -> Option<u64> {
        self.hour.map(|h| h * 3600)
    }
}

impl std::fmt::Debug for HourFiles {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HourFiles")
            .field("hour", &self.hour)
            .field("files", &self.files.len())
            .finish()
    }
}

struct OpenFile {
    dir: PathBuf,
    tmp: PathBuf,
    seq: u64,
    writer: ArrowWriter<File>,
    first_start: u64,
    last_end: u64,
    summaries: Vec<crate::summary::WindowSummary>,
    records: usize,
}

/// A file a window was written to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WrittenFile {
    /// Its path.
    pub path: PathBuf,
    /// Records in it.
    pub records: usize,
}

pub(crate) fn fsync_dir(dir: &Path) -> Result<(), StoreError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| StoreError::io(dir, e))
}

pub(crate) fn properties() -> WriterProperties {
    use datafusion::parquet::basic::Encoding;
    use datafusion::parquet::schema::types::ColumnPath;
    let mut b = WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::try_new(3).unwrap_or_default()))
        .set_dictionary_enabled(true);
    // Counters and positions are near-sequential or wide: deltas, not dictionaries.
    for col in ["record_index", "start", "end", "bytes", "packets"] {
        let c = ColumnPath::from(col);
        b = b
            .set_column_dictionary_enabled(c.clone(), false)
            .set_column_encoding(c, Encoding::DELTA_BINARY_PACKED);
    }
    b.build()
}

impl Store {
    /// Opens (creating) a store and removes what a crashed writer left:
    /// temporary files, and an interrupted compaction (either side of its
    /// atomic swap is a whole state, see [`Store::compact_hour`]). A store
    /// of an earlier layout is moved to this one first (the catalog's and
    /// the summaries' names, the partitions' directories), each step a
    /// rename, so a crash mid-way is finished by the next open.
    pub fn open(root: &Path) -> Result<Store, StoreError> {
        fs::create_dir_all(root).map_err(|e| StoreError::io(root, e))?;
        let lock_path = root.join(LOCK);
        let lock = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(|e| StoreError::io(&lock_path, e))?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(fs::TryLockError::WouldBlock) => {
                return Err(StoreError::Locked {
                    dir: root.display().to_string(),
                });
            }
            Err(fs::TryLockError::Error(e)) => return Err(StoreError::io(&lock_path, e)),
        }
        crate::compact::clean_staging(root)?;
        crate::catalog::migrate_legacy_name(root)?;
        crate::layout::migrate_legacy_partitions(root)?;
        let mut stack = vec![root.to_path_buf()];
        while let Some(dir) = stack.pop() {
            for entry in fs::read_dir(&dir).map_err(|e| StoreError::io(&dir, e))? {
                let entry = entry.map_err(|e| StoreError::io(&dir, e))?;
                let path = entry.path();
                if path.is_dir() {
                    stack.push(path);
                    continue;
                }
                let path = match crate::summary::renamed_legacy(&path) {
                    Some(to) => {
                        fs::rename(&path, &to).map_err(|e| StoreError::io(&path, e))?;
                        to
                    }
                    None => path,
                };
                if path.to_string_lossy().ends_with(TMP)
                    || crate::summary::records_file_of(&path).is_some_and(|r| !r.exists())
                {
                    // Leftovers: a temporary file, or the summary of a
                    // window whose records a crash kept from being written.
                    fs::remove_file(&path).map_err(|e| StoreError::io(&path, e))?;
                }
            }
        }
        Ok(Store {
            root: root.to_path_buf(),
            seq: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_micros() as u64),
            touched: BTreeMap::new(),
            compactor: None,
            hour_dirs: Arc::new(Mutex::new(())),
            _lock: lock,
        })
    }

    /// The store's directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Records log groups and topics (names, retention) in the store's
    /// catalog, so queries can name them and retention runs without the
    /// inventory. Rewrites the catalog only when something changed.
    pub fn register(&mut self, groups: &[CatalogGroup]) -> Result<(), StoreError> {
        let mut catalog = Catalog::load(&self.root)?;
        if catalog.merge(groups) {
            catalog.save(&self.root)?;
        }
        Ok(())
    }

    /// Removes the hour partitions past their log group's retention at
    /// `now`: `ttl_days` where it knows the group, else the catalog's.
    pub fn gc(
        &mut self,
        ttl_days: impl Fn(&str) -> Option<u32>,
        now: u64,
    ) -> Result<crate::GcReport, StoreError> {
        let catalog = Catalog::load(&self.root)?;
        let report = crate::retention::gc(
            &self.root,
            |g| ttl_days(g).or_else(|| catalog.ttl_in_days(g)),
            now,
        )?;
        for p in &report.partitions {
            self.touched.remove(p);
        }
        Ok(report)
    }

    /// Writes a closed window: one file per log topic that has records in it.
    /// When it returns, the files are durable.
    pub fn write_window(
        &mut self,
        topology: &Topology,
        w: &ClosedWindow,
    ) -> Result<Vec<WrittenFile>, StoreError> {
        self.write_window_named(topology, w, "")
    }

    /// Writes a window cut short (the agent stopped before its end): as
    /// [`Store::write_window`], with `-partial` in the file names, until
    /// the hour is compacted.
    pub fn write_partial_window(
        &mut self,
        topology: &Topology,
        w: &ClosedWindow,
    ) -> Result<Vec<WrittenFile>, StoreError> {
        self.write_window_named(topology, w, "-partial")
    }

    /// Appends a closed window to `hour`'s files, one per log topic: its
    /// records encoded into the topic's file, its summary beside.
    /// Windows go in time order; a window of another hour than the one
    /// `hour` holds is an error (close that one first). Nothing is durable
    /// or visible until [`Store::close_hour`].
    pub fn append_window(
        &mut self,
        hour: &mut HourFiles,
        topology: &Topology,
        w: &ClosedWindow,
    ) -> Result<(), StoreError> {
        let this = w.start / 3600;
        match hour.hour {
            Some(h) if h != this => {
                return Err(StoreError::Encode {
                    path: self.root.display().to_string(),
                    message: format!("window {} is not of hour {}", w.start, h * 3600),
                });
            }
            _ => hour.hour = Some(this),
        }
        let by_topic = records_by_topic(topology, w);
        for ((group, topic), records) in by_topic {
            let key = (group.to_string(), topic.to_string());
            if !hour.files.contains_key(&key) {
                let dir = partition(&self.root, group, topic, w.start);
                self.seq += 1;
                let tmp_name = format!("{}-{}-hour", std::process::id(), self.seq);
                let (writer, tmp) = open_tmp(&dir, &tmp_name)?;
                hour.files.insert(
                    key.clone(),
                    OpenFile {
                        dir,
                        tmp,
                        seq: self.seq,
                        writer,
                        first_start: w.start,
                        last_end: w.end,
                        summaries: Vec::new(),
                        records: 0,
                    },
                );
            }
            let Some(f) = hour.files.get_mut(&key) else {
                continue;
            };
            let encode = |message: String| StoreError::Encode {
                path: f.tmp.display().to_string(),
                message,
            };
            // Encoded into the open row group now (the batch's memory goes);
            // row groups are cut at the writer's row-group size, not per
            // window: a sparse hour's windows of a few records each would
            // otherwise be row groups of a few rows.
            for chunk in records.chunks(BATCH_ROWS) {
                let b = batch(topology, chunk).map_err(encode)?;
                f.writer.write(&b).map_err(|e| encode(e.to_string()))?;
            }
            f.summaries.push(crate::summary::summarize(
                topology, w.start, w.end, &records,
            ));
            f.last_end = w.end;
            f.records += records.len();
        }
        Ok(())
    }

    /// Finishes `hour`'s files and makes them durable and visible: their
    /// summaries written, one `syncfs` for the files, the renames (each
    /// summary before its records file), one `syncfs` for the names. When
    /// it returns, every file it reports is durable; a crash before leaves
    /// temporary files, which [`Store::open`] removes.
    pub fn close_hour(&mut self, hour: HourFiles) -> Result<Vec<WrittenFile>, StoreError> {
        let mut pending = Vec::with_capacity(hour.files.len());
        for f in hour.files.into_values() {
            let name = format!(
                "{}-{}-{}-{}.parquet",
                f.first_start,
                f.last_end,
                std::process::id(),
                f.seq
            );
            f.writer.close().map_err(|e| StoreError::Encode {
                path: f.tmp.display().to_string(),
                message: e.to_string(),
            })?;
            let summary = crate::summary::SummaryFile {
                windows: f.summaries,
            };
            let (_, summary_tmp, summary_path) =
                crate::summary::write_tmp(&f.dir, &name, &summary)?;
            let path = f.dir.join(&name);
            let hour_end = (f.first_start / 3600 + 1) * 3600;
            pending.push((
                f.dir,
                hour_end,
                [(summary_tmp, summary_path), (f.tmp, path)],
                f.records,
            ));
        }
        if pending.is_empty() {
            return Ok(Vec::new());
        }
        sync_file_system(&self.root)?;
        {
            let _hour = lock_hour_dirs(&self.hour_dirs);
            for (_, _, renames, _) in &pending {
                for (from, to) in renames {
                    fs::rename(from, to).map_err(|e| StoreError::io(to, e))?;
                }
            }
        }
        sync_file_system(&self.root)?;
        let mut written = Vec::with_capacity(pending.len());
        for (dir, hour_end, [_, (_, path)], records) in pending {
            self.touched.insert(dir, hour_end);
            written.push(WrittenFile { path, records });
        }
        Ok(written)
    }

    fn write_window_named(
        &mut self,
        topology: &Topology,
        w: &ClosedWindow,
        suffix: &str,
    ) -> Result<Vec<WrittenFile>, StoreError> {
        let by_topic = records_by_topic(topology, w);
        let mut written = Vec::new();
        for ((group, topic), records) in by_topic {
            let dir = partition(&self.root, group, topic, w.start);
            self.seq += 1;
            let name = format!(
                "{}-{}-{}-{}{suffix}.parquet",
                w.start,
                w.end,
                std::process::id(),
                self.seq
            );
            let batches = records.chunks(BATCH_ROWS).map(|chunk| {
                batch(topology, chunk).map_err(|message| StoreError::Encode {
                    path: dir.join(&name).display().to_string(),
                    message,
                })
            });
            let summary = crate::summary::SummaryFile {
                windows: vec![crate::summary::summarize(
                    topology, w.start, w.end, &records,
                )],
            };
            let path = {
                let _hour = lock_hour_dirs(&self.hour_dirs);
                // The summary first: a records file without one is then
                // always one written before summaries existed.
                crate::summary::write(&dir, &name, &summary)?;
                write_file(&self.root, &dir, &name, batches)?
            };
            self.touched.insert(dir, (w.start / 3600 + 1) * 3600);
            written.push(WrittenFile {
                path,
                records: records.len(),
            });
        }
        Ok(written)
    }
}

/// Writes `batches` durably as `dir/name`: a temporary name, fsync, rename,
/// then fsync of `dir` and its parents up to `root`.
pub(crate) fn write_file(
    root: &Path,
    dir: &Path,
    name: &str,
    batches: impl IntoIterator<Item = Result<RecordBatch, StoreError>>,
) -> Result<PathBuf, StoreError> {
    let (mut w, tmp) = open_tmp(dir, name)?;
    let path = dir.join(name);
    let encode = |e: &dyn std::fmt::Display| StoreError::Encode {
        path: path.display().to_string(),
        message: e.to_string(),
    };
    for b in batches {
        w.write(&b?).map_err(|e| encode(&e))?;
    }
    let file = w.into_inner().map_err(|e| encode(&e))?;
    file.sync_all().map_err(|e| StoreError::io(&tmp, e))?;
    fs::rename(&tmp, &path).map_err(|e| StoreError::io(&path, e))?;
    // The rename, and any directory created for it, must survive a crash too.
    let mut d = Some(dir);
    while let Some(p) = d {
        fsync_dir(p)?;
        if p == root {
            break;
        }
        d = p.parent();
    }
    Ok(path)
}

/// A window's records by log topic (group and topic ids), each with its
/// index in the window's output order. A record's topic is found by its
/// flow log's number, each flow log's looked up once per window.
fn records_by_topic<'a>(
    topology: &'a Topology,
    w: &'a ClosedWindow,
) -> BTreeMap<(&'a str, &'a str), Vec<(usize, &'a FlowRecord)>> {
    type Topic<'a> = ((&'a str, &'a str), Vec<(usize, &'a FlowRecord)>);
    let mut topics: Vec<Topic<'a>> = Vec::new();
    let mut topic_of_flow_log: Vec<Option<usize>> = vec![None; topology.flow_logs.len()];
    for (i, r) in w.records.iter().enumerate() {
        let fl = r.flow_log as usize;
        let t = match topic_of_flow_log.get(fl).copied().flatten() {
            Some(t) => t,
            None => {
                let info = &topology.flow_logs[fl];
                let key = (info.log_group_id.as_str(), info.log_topic_id.as_str());
                let t = topics
                    .iter()
                    .position(|(k, _)| *k == key)
                    .unwrap_or_else(|| {
                        topics.push((key, Vec::new()));
                        topics.len() - 1
                    });
                topic_of_flow_log[fl] = Some(t);
                t
            }
        };
        topics[t].1.push((i, r));
    }
    topics.into_iter().collect()
}

/// A Parquet writer on a new temporary file `dir/.<name>.tmp`.
fn open_tmp(dir: &Path, name: &str) -> Result<(ArrowWriter<File>, PathBuf), StoreError> {
    fs::create_dir_all(dir).map_err(|e| StoreError::io(dir, e))?;
    let tmp = dir.join(format!(".{name}{TMP}"));
    let file = File::create(&tmp).map_err(|e| StoreError::io(&tmp, e))?;
    let w = ArrowWriter::try_new(file, schema(), Some(properties())).map_err(|e| {
        StoreError::Encode {
            path: tmp.display().to_string(),
            message: e.to_string(),
        }
    })?;
    Ok((w, tmp))
}

/// Makes everything written to the file system that holds `root` durable
/// (`syncfs(2)`): one flush for many files, where an fsync each costs a
/// journal commit each.
fn sync_file_system(root: &Path) -> Result<(), StoreError> {
    let dir = File::open(root).map_err(|e| StoreError::io(root, e))?;
    rustix::fs::syncfs(&dir).map_err(|e| StoreError::io(root, e.into()))
}

/// Reads a store file whole and returns its number of rows: a check that
/// the file is complete (the footer is written last).
pub fn read_rows(path: &Path) -> Result<usize, StoreError> {
    use datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
    let file = File::open(path).map_err(|e| StoreError::io(path, e))?;
    let bad = |e: &dyn std::fmt::Display| StoreError::Encode {
        path: path.display().to_string(),
        message: e.to_string(),
    };
    let reader = ParquetRecordBatchReaderBuilder::try_new(file)
        .map_err(|e| bad(&e))?
        .build()
        .map_err(|e| bad(&e))?;
    let mut rows = 0;
    for b in reader {
        rows += b.map_err(|e| bad(&e))?.num_rows();
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use datafusion::arrow::array::{Array, AsArray};
    use datafusion::arrow::datatypes::UInt64Type;
    use datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
    use vpcflow_core::Action;
    use vpcflow_core::record::RecordBody;

    use super::*;
    use crate::compact::tests::topology;
    use crate::summary::tests::{START, flow};

    /// Every row's record index and source address, in file order.
    fn index_and_srcaddr(path: &Path) -> Vec<(u64, Option<String>)> {
        let reader = ParquetRecordBatchReaderBuilder::try_new(File::open(path).unwrap())
            .unwrap()
            .build()
            .unwrap();
        let mut rows = Vec::new();
        for b in reader {
            let b = b.unwrap();
            let index = b
                .column_by_name("record_index")
                .unwrap()
                .as_primitive::<UInt64Type>();
            let src = b.column_by_name("srcaddr").unwrap().as_string::<i32>();
            for i in 0..b.num_rows() {
                let s = (!src.is_null(i)).then(|| src.value(i).to_string());
                rows.push((index.value(i), s));
            }
        }
        rows
    }

    /// A window of more records than one Arrow batch holds, with runs of
    /// one source address broken by records that have none (NODATA).
    fn big_window() -> ClosedWindow {
        let records = (0..BATCH_ROWS as u32 * 2 + 500)
            .map(|i| {
                if i % 7 == 6 {
                    FlowRecord {
                        body: RecordBody::NoData,
                        ..flow(i % 3, 0, 0, Action::Accept, 0)
                    }
                } else {
                    flow(i % 3, 0x0a00_0000 + i / 3, 443, Action::Accept, 1)
                }
            })
            .collect();
        ClosedWindow {
            start: START,
            end: START + 60,
            records,
            rule_hits: Vec::new(),
        }
    }

    fn expected(w: &ClosedWindow) -> Vec<(u64, Option<String>)> {
        w.records
            .iter()
            .enumerate()
            .map(|(i, r)| {
                let src = match &r.body {
                    RecordBody::Flow(f) => Some(f.tuple.src.to_string()),
                    _ => None,
                };
                (i as u64, src)
            })
            .collect()
    }

    #[test]
    fn a_window_larger_than_a_batch_is_stored_whole_and_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let t = topology();
        let w = big_window();
        let want = expected(&w);
        assert!(want.len() > 2 * BATCH_ROWS);
        assert_eq!(
            want[1].1.as_deref(),
            Some(&*Ipv4Addr::new(10, 0, 0, 0).to_string())
        );
        let mut s = Store::open(dir.path()).unwrap();
        let written = s.write_window(&t, &w).unwrap();
        assert_eq!(written.len(), 1);
        assert_eq!(written[0].records, want.len());
        assert_eq!(index_and_srcaddr(&written[0].path), want);

        // The same through an hour's open file.
        let dir = tempfile::tempdir().unwrap();
        let mut s = Store::open(dir.path()).unwrap();
        let mut hour = HourFiles::default();
        s.append_window(&mut hour, &t, &w).unwrap();
        let written = s.close_hour(hour).unwrap();
        assert_eq!(index_and_srcaddr(&written[0].path), want);
    }
}
