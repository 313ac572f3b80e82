//! Compaction: the small files of one hour partition become one file.
//!
//! A capture window writes one file per log topic, so an hour of 10-minute
//! windows holds six files and an hour of 1-minute windows sixty; readers pay
//! per file (a footer each) and small files compress worse. Once an hour can
//! no longer receive windows, its files are merged into one.
//!
//! Crash safety: the merged file is written whole into a staging directory
//! (`.compact/` under the root, which no partition scan enters), then the
//! staging directory and the hour directory swap places in one
//! `renameat2(RENAME_EXCHANGE)`. Before the swap, readers see the old files;
//! after it, the merged file; never both, never neither. Whatever a crash
//! leaves in `.compact/` is a whole, superseded state and is removed when
//! the store is next opened.
//!
//! Concurrency: a window may be written into an hour while it is being
//! compacted (an upload of traffic from an hour already closed, say). The
//! swap happens only if, under the store's hour-directory lock that window
//! writes also take, the hour still holds exactly the files that were
//! merged; otherwise this compaction is dropped and the hour, written
//! again, is compacted later with the new file in it. No file is ever
//! swapped away unmerged.

use std::collections::BTreeSet;
use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, mpsc};

use datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use rustix::fs::{CWD, RenameFlags, renameat_with};

use crate::StoreError;
use crate::writer::{Store, fsync_dir, lock_hour_dirs, write_file};

/// Directory under the root where merged files are staged.
const STAGING: &str = ".compact";

/// An hour partition that was compacted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Compacted {
    /// The hour directory.
    pub dir: PathBuf,
    /// Files merged.
    pub files: usize,
    /// Records in the merged file.
    pub records: usize,
    /// Bytes of the files before and of the merged file after.
    pub bytes: (u64, u64),
}

/// Removes the staging area of an interrupted compaction.
pub(crate) fn clean_staging(root: &Path) -> Result<(), StoreError> {
    let staging = root.join(STAGING);
    match fs::remove_dir_all(&staging) {
        Ok(()) => fsync_dir(root),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(StoreError::io(&staging, e)),
    }
}

/// The store files of an hour directory, oldest window first.
fn parquet_files(dir: &Path) -> Result<Vec<PathBuf>, StoreError> {
    let mut files: Vec<(u64, PathBuf)> = fs::read_dir(dir)
        .map_err(|e| StoreError::io(dir, e))?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "parquet"))
        .map(|p| {
            let start = p
                .file_name()
                .and_then(|n| n.to_str())
                .and_then(|n| n.split('-').next())
                .and_then(|s| s.parse().ok())
                .unwrap_or(0);
            (start, p)
        })
        .collect();
    files.sort();
    Ok(files.into_iter().map(|(_, p)| p).collect())
}

fn file_len(p: &Path) -> u64 {
    fs::metadata(p).map(|m| m.len()).unwrap_or(0)
}

impl Store {
    /// Compacts every hour partition this writer has written to that ends
    /// at or before `before` (Unix seconds): once windows no longer land
    /// there. With [`Store::compact_in_background`], queues them instead.
    pub fn compact_before(&mut self, before: u64) -> Result<Vec<Compacted>, StoreError> {
        let due: Vec<PathBuf> = self
            .touched
            .iter()
            .filter(|&(_, &end)| end <= before)
            .map(|(d, _)| d.clone())
            .collect();
        if let Some(c) = &self.compactor {
            for dir in due {
                self.touched.remove(&dir);
                if let Some(tx) = &c.tx {
                    let _ = tx.send(dir);
                }
            }
            return collect(c.done.try_iter());
        }
        let mut done = Vec::new();
        for dir in due {
            self.touched.remove(&dir);
            if let Some(c) = self.compact_hour(&dir)? {
                done.push(c);
            }
        }
        Ok(done)
    }

    /// Compacts every hour partition of the store (e.g. written by earlier
    /// runs) that ends at or before `before` and holds more than one file.
    pub fn compact_all(&mut self, before: u64) -> Result<Vec<Compacted>, StoreError> {
        let mut done = Vec::new();
        for dir in crate::retention::hour_partitions(&self.root)? {
            if dir.end <= before
                && let Some(c) = self.compact_hour(&dir.path)?
            {
                self.touched.remove(&dir.path);
                done.push(c);
            }
        }
        Ok(done)
    }

    /// Merges the files of one hour directory into one, atomically (see
    /// the module docs). Nothing to do (`None`) for fewer than two files.
    /// An unreadable file stops the compaction of that hour with an error
    /// naming it, and the hour stays as it was.
    pub fn compact_hour(&mut self, dir: &Path) -> Result<Option<Compacted>, StoreError> {
        self.seq += 1;
        compact_dir(
            &self.root,
            dir,
            &format!("{}-{}", std::process::id(), self.seq),
            &self.hour_dirs,
        )
    }

    /// Hands compaction to a thread of its own, so writing windows never
    /// waits for it: [`Store::compact_before`] then queues the hours and
    /// returns the compactions finished so far, and
    /// [`Store::finish_compaction`] waits for the queue to drain.
    pub fn compact_in_background(&mut self) {
        if self.compactor.is_some() {
            return;
        }
        let (tx, rx) = mpsc::channel::<PathBuf>();
        let (done_tx, done) = mpsc::channel();
        let root = self.root.clone();
        let hour_dirs = self.hour_dirs.clone();
        let handle = std::thread::Builder::new()
            .name("vpcflow-compact".into())
            .spawn(move || {
                let mut n = 0u64;
                for dir in rx {
                    n += 1;
                    let tag = format!("{}-bg{n}", std::process::id());
                    if done_tx
                        .send(compact_dir(&root, &dir, &tag, &hour_dirs))
                        .is_err()
                    {
                        break;
                    }
                }
            })
            .ok();
        self.compactor = handle.map(|handle| Compactor {
            tx: Some(tx),
            done,
            handle: Some(handle),
        });
    }

    /// Waits for queued background compactions and returns their results
    /// (the first error, if any). Without a background thread, nothing.
    pub fn finish_compaction(&mut self) -> Result<Vec<Compacted>, StoreError> {
        let Some(mut c) = self.compactor.take() else {
            return Ok(Vec::new());
        };
        drop(c.tx.take());
        if let Some(h) = c.handle.take() {
            let _ = h.join();
        }
        collect(c.done.try_iter())
    }
}

fn collect(
    results: impl Iterator<Item = Result<Option<Compacted>, StoreError>>,
) -> Result<Vec<Compacted>, StoreError> {
    let mut done = Vec::new();
    for r in results {
        if let Some(c) = r? {
            done.push(c);
        }
    }
    Ok(done)
}

/// The background compaction thread of a store.
#[derive(Debug)]
pub(crate) struct Compactor {
    tx: Option<mpsc::Sender<PathBuf>>,
    done: mpsc::Receiver<Result<Option<Compacted>, StoreError>>,
    handle: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Compactor {
    fn drop(&mut self) {
        // Finish what was queued: an hour left half-way is safe, but work lost.
        drop(self.tx.take());
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

/// Every entry of a directory by name (files being written included).
fn entry_names(dir: &Path) -> Result<BTreeSet<std::ffi::OsString>, StoreError> {
    Ok(fs::read_dir(dir)
        .map_err(|e| StoreError::io(dir, e))?
        .flatten()
        .map(|e| e.file_name())
        .collect())
}

/// Compacts `dir` (see [`Store::compact_hour`]); `tag` makes the staging
/// directory and the merged file's name unique; `hour_dirs` is the
/// store's lock that window writes take (see the module docs).
fn compact_dir(
    root: &Path,
    dir: &Path,
    tag: &str,
    hour_dirs: &Mutex<()>,
) -> Result<Option<Compacted>, StoreError> {
    let listed = entry_names(dir)?;
    let files = parquet_files(dir)?;
    if files.len() < 2 {
        return Ok(None);
    }
    let records = std::cell::Cell::new(0usize);
    let batches = files.iter().flat_map(|f| {
        let bad = |e: &dyn std::fmt::Display| StoreError::Encode {
            path: f.display().to_string(),
            message: format!("cannot compact: {e}"),
        };
        let reader = File::open(f)
            .map_err(|e| StoreError::io(f, e))
            .and_then(|r| {
                ParquetRecordBatchReaderBuilder::try_new(r)
                    .map_err(|e| bad(&e))?
                    .with_batch_size(64 * 1024)
                    .build()
                    .map_err(|e| bad(&e))
            });
        let (reader, err) = match reader {
            Ok(r) => (Some(r), None),
            Err(e) => (None, Some(Err(e))),
        };
        err.into_iter()
            .chain(reader.into_iter().flatten().map(move |b| {
                b.map_err(|e| StoreError::Encode {
                    path: f.display().to_string(),
                    message: format!("cannot compact: {e}"),
                })
            }))
    });
    let batches = batches.inspect(|b| {
        if let Ok(b) = b {
            records.set(records.get() + b.num_rows());
        }
    });
    let first = files[0]
        .file_name()
        .and_then(|n| n.to_str())
        .and_then(|n| n.split('-').next())
        .unwrap_or("0")
        .to_string();
    let name = format!("{first}-compact-{tag}.parquet");
    let staging_root = root.join(STAGING);
    let staging = staging_root.join(tag);
    fs::create_dir_all(&staging).map_err(|e| StoreError::io(&staging, e))?;
    // The merged file's summary is its inputs' summaries, one after
    // another; an input without one (written before summaries existed,
    // or unreadable) leaves the merged file without one, and analyses
    // read its records.
    let summaries: Option<Vec<_>> = files
        .iter()
        .map(|f| {
            crate::summary::read::<crate::summary::WindowSummary>(&crate::summary::summary_path(f))
                .ok()
        })
        .collect();
    if let Some(parts) = summaries {
        let merged = crate::summary::SummaryFile {
            windows: parts.into_iter().flat_map(|p| p.windows).collect(),
        };
        if let Err(e) = crate::summary::write(&staging, &name, &merged) {
            let _ = fs::remove_dir_all(&staging);
            return Err(e);
        }
    }
    let merged = match write_file(root, &staging, &name, batches) {
        Ok(p) => p,
        Err(e) => {
            let _ = fs::remove_dir_all(&staging);
            return Err(e);
        }
    };
    let records = records.get();
    let after = file_len(&merged);
    {
        let _hour = lock_hour_dirs(hour_dirs);
        if entry_names(dir)? != listed {
            // Written meanwhile: the writer queues the hour again.
            drop(_hour);
            fs::remove_dir_all(&staging).map_err(|e| StoreError::io(&staging, e))?;
            return Ok(None);
        }
        renameat_with(CWD, &staging, CWD, dir, RenameFlags::EXCHANGE).map_err(|e| {
            StoreError::io(
                dir,
                std::io::Error::other(format!("swapping in the compacted hour: {e}")),
            )
        })?;
        if let Some(parent) = dir.parent() {
            fsync_dir(parent)?;
        }
    }
    fsync_dir(&staging_root)?;
    // `staging` now holds the superseded files.
    let before: u64 = files
        .iter()
        .map(|f| file_len(&staging.join(f.file_name().unwrap_or_default())))
        .sum();
    fs::remove_dir_all(&staging).map_err(|e| StoreError::io(&staging, e))?;
    fsync_dir(&staging_root)?;
    Ok(Some(Compacted {
        dir: dir.to_path_buf(),
        files: files.len(),
        records,
        bytes: (before, after),
    }))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use vpcflow_core::aggregate::ClosedWindow;
    use vpcflow_core::flow::TrafficType;
    use vpcflow_core::record::{FlowRecord, RecordBody};
    use vpcflow_core::topology::{FlowLogInfo, PortInfo, Topology};

    pub(crate) fn topology() -> Topology {
        let mut t = Topology {
            region: "r".into(),
            ..Default::default()
        };
        t.flow_logs.push(FlowLogInfo {
            id: "fl".into(),
            traffic_type: TrafficType::All,
            log_group_id: "g".into(),
            log_topic_id: "t".into(),
        });
        for p in 0..3 {
            t.push_port(PortInfo {
                id: format!("port-{p}"),
                project_id: "p".into(),
                vpc_id: "v".into(),
                subnet_id: "s".into(),
                az_id: "-".into(),
                ips: Vec::new(),
                inventory_index: None,
                flow_logs: vec![0],
                filters: 0,
                first_window: None,
            });
        }
        t
    }

    pub(crate) fn window(start: u64) -> ClosedWindow {
        ClosedWindow {
            start,
            end: start + 60,
            records: (0..3)
                .map(|port| FlowRecord {
                    flow_log: 0,
                    port,
                    start,
                    end: start + 60,
                    body: RecordBody::NoData,
                })
                .collect(),
            rule_hits: Vec::new(),
        }
    }

    fn parquet_under(root: &Path) -> Vec<PathBuf> {
        let mut v = Vec::new();
        let mut stack = vec![root.to_path_buf()];
        while let Some(d) = stack.pop() {
            for e in fs::read_dir(&d).unwrap().flatten() {
                let p = e.path();
                if p.is_dir() {
                    stack.push(p);
                } else if p.extension().is_some_and(|x| x == "parquet") {
                    v.push(p);
                }
            }
        }
        v.sort();
        v
    }

    #[test]
    fn an_hour_becomes_one_file_once_it_is_over() {
        let dir = tempfile::tempdir().unwrap();
        let t = topology();
        let mut s = Store::open(dir.path()).unwrap();
        let hour = 1_700_002_800; // a whole hour
        for m in 0..5 {
            s.write_window(&t, &window(hour + m * 60)).unwrap();
        }
        assert_eq!(parquet_under(dir.path()).len(), 5);
        // The hour is not over yet at its last window's start.
        assert!(s.compact_before(hour + 240).unwrap().is_empty());
        s.write_window(&t, &window(hour + 3600)).unwrap();
        let done = s.compact_before(hour + 3600).unwrap();
        assert_eq!(done.len(), 1);
        assert_eq!((done[0].files, done[0].records), (5, 15));
        let files = parquet_under(dir.path());
        assert_eq!(files.len(), 2, "{files:?}");
        let merged = files
            .iter()
            .find(|f| f.to_string_lossy().contains("-compact-"))
            .unwrap();
        assert_eq!(crate::read_rows(merged).unwrap(), 15);
        assert_eq!(fs::read_dir(dir.path().join(STAGING)).unwrap().count(), 0);
        // Compacting again finds nothing to do; the next hour's single file stays.
        assert!(s.compact_all(u64::MAX).unwrap().is_empty());
    }

    #[test]
    fn an_interrupted_compaction_is_whole_either_side_of_the_swap() {
        let dir = tempfile::tempdir().unwrap();
        let t = topology();
        let hour_dir;
        {
            let mut s = Store::open(dir.path()).unwrap();
            for m in 0..3 {
                s.write_window(&t, &window(1_700_002_800 + m * 60)).unwrap();
            }
            hour_dir = parquet_under(dir.path())[0].parent().unwrap().to_path_buf();
        }
        // A crash before the swap: a staged merged file nobody can see.
        let staged = dir.path().join(STAGING).join("123-1");
        fs::create_dir_all(&staged).unwrap();
        fs::write(staged.join("1700002800-compact-123-1.parquet"), b"half").unwrap();
        // A crash after the swap leaves the superseded files there instead.
        let superseded = dir.path().join(STAGING).join("123-2");
        fs::create_dir_all(&superseded).unwrap();
        fs::copy(
            parquet_under(&hour_dir)[0].clone(),
            superseded.join("old.parquet"),
        )
        .unwrap();
        let mut s = Store::open(dir.path()).unwrap();
        assert!(!dir.path().join(STAGING).exists());
        assert_eq!(parquet_under(dir.path()).len(), 3);
        let done = s.compact_all(u64::MAX).unwrap();
        assert_eq!(done[0].records, 9);
        assert_eq!(parquet_under(dir.path()).len(), 1);
    }

    #[test]
    fn background_compaction_does_the_same_work() {
        let dir = tempfile::tempdir().unwrap();
        let t = topology();
        let mut s = Store::open(dir.path()).unwrap();
        s.compact_in_background();
        let hour = 1_700_002_800;
        let mut done = Vec::new();
        for m in 0..(3 * 60 / 20) {
            let start = hour + m * 1200;
            s.write_window(&t, &window(start)).unwrap();
            done.extend(s.compact_before(start).unwrap());
        }
        done.extend(s.compact_before(u64::MAX).unwrap());
        done.extend(s.finish_compaction().unwrap());
        assert_eq!(done.len(), 3, "{done:?}");
        assert!(done.iter().all(|c| c.files == 3 && c.records == 9));
        assert_eq!(parquet_under(dir.path()).len(), 3);
    }

    /// Uploads write windows into hours already over, which a background
    /// compaction may be merging at that moment: nothing written may be
    /// swapped away, and no write may find its directory gone.
    #[test]
    fn windows_written_into_an_hour_being_compacted_are_kept() {
        let dir = tempfile::tempdir().unwrap();
        let t = topology();
        let mut s = Store::open(dir.path()).unwrap();
        s.compact_in_background();
        let hour = 1_700_002_800;
        let rounds = 40;
        for round in 0..rounds {
            // The same closed hour, again and again (the same capture
            // uploaded twice, say), queued after every batch.
            for m in 0..3 {
                s.write_window(&t, &window(hour + m * 60)).unwrap();
            }
            s.compact_before(u64::MAX).unwrap();
            if round % 8 == 7 {
                std::thread::yield_now();
            }
        }
        s.compact_before(u64::MAX).unwrap();
        s.finish_compaction().unwrap();
        let rows: usize = parquet_under(dir.path())
            .iter()
            .map(|f| crate::read_rows(f).unwrap())
            .sum();
        assert_eq!(rows, rounds * 3 * 3, "every record written is in the store");
    }

    #[test]
    fn a_second_writer_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let _first = Store::open(dir.path()).unwrap();
        let e = Store::open(dir.path()).unwrap_err();
        assert!(matches!(e, StoreError::Locked { .. }), "{e}");
    }
}
