//! Windows a fleet's agent shipped: one window's records of one log topic,
//! as the agent's own store wrote them (the records file and its summary),
//! checked and written into this store under a name of the agent's host.
//!
//! Guarantees: nothing is written unless the records file is whole Parquet
//! with exactly this store's columns, its summary decodes, and the name is
//! one a store gives a window (`START-END-PID-SEQ[-partial].parquet`); the
//! file lands in the partition its window start says, named
//! `START-END-HOST-PID-SEQ[-partial].parquet`, so the same window shipped
//! twice is the same file (written again, it replaces itself), and windows
//! of different hosts never collide.
//!
//! On the agent's side, [`spooled`] lists the windows waiting to be sent,
//! and a window the spool has no room for is reduced in place to what a
//! lost window leaves, SKIPDATA records with its totals
//! ([`Spooled::reduce_to_skipdata`]), under the same name: a server that
//! already has the window keeps the whole one and takes the reduced one
//! as the duplicate it is.

use std::collections::BTreeSet;
use std::path::PathBuf;

pub use bytes::Bytes;
use datafusion::arrow::array::{Array, RecordBatch, StringArray};
use datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

use crate::StoreError;
use crate::layout::partition;
use crate::schema::schema;
use crate::summary::{self, SummaryFile};
use crate::writer::{Store, lock_hour_dirs, write_file};

/// A shipped window, checked.
#[derive(Debug)]
pub struct ShippedWindow {
    /// Log group id.
    pub group: String,
    /// Log topic id.
    pub topic: String,
    /// Window start (Unix seconds), from the name.
    pub start: u64,
    /// Window end.
    pub end: u64,
    /// The name the agent's store gave it.
    pub name: String,
    /// The ports (`interface_id`) its records are of.
    pub interface_ids: BTreeSet<String>,
    /// Its records.
    pub records: usize,
    pub(crate) batches: Vec<RecordBatch>,
    summary: SummaryFile,
}

fn refused(what: &str, message: impl std::fmt::Display) -> StoreError {
    StoreError::Encode {
        path: what.to_string(),
        message: message.to_string(),
    }
}

/// An id as a partition directory may hold it.
fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 255
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        && id != "."
        && id != ".."
}

/// `(start, end, rest)` of a store's window file name
/// (`START-END-PID-SEQ[-partial].parquet`; `rest` is `PID-SEQ[-partial]`);
/// with `hosts`, also of a shipped window's name in a server's store
/// (`START-END-HOST-PID-SEQ[-partial].parquet`; `rest` is
/// `HOST-PID-SEQ[-partial]`).
fn parse_name(name: &str, hosts: bool) -> Option<(u64, u64, &str)> {
    let stem = name.strip_suffix(".parquet")?;
    let mut parts = stem.splitn(3, '-');
    let start: u64 = parts.next()?.parse().ok()?;
    let end: u64 = parts.next()?.parse().ok()?;
    let rest = parts.next()?;
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    let unmarked = rest.strip_suffix("-partial").unwrap_or(rest);
    let own = unmarked
        .split_once('-')
        .is_some_and(|(pid, seq)| digits(pid) && digits(seq));
    let shipped = || {
        let mut back = unmarked.rsplitn(3, '-');
        let (seq, pid, host) = (back.next(), back.next(), back.next());
        matches!((seq, pid, host), (Some(seq), Some(pid), Some(host))
            if digits(seq) && digits(pid) && valid_id(host))
    };
    ((own || (hosts && shipped())) && start < end).then_some((start, end, rest))
}

/// Which window file names [`ShippedWindow::parse`] takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WindowNames {
    /// A store's own (`START-END-PID-SEQ[-partial].parquet`): what an
    /// agent sends.
    Own,
    /// Those, and a shipped window's in a server's store
    /// (`START-END-HOST-PID-SEQ[-partial].parquet`): what a spool in front
    /// of ClickHouse holds ([`spooled`]).
    OwnOrShipped,
}

impl ShippedWindow {
    /// Checks what an agent sent, or what a spool holds: the log group
    /// and topic, the name the window's file has (`names` says which are
    /// taken), the file (Parquet) and its summary (the store's compressed
    /// JSON). The error names what is wrong.
    pub fn parse(
        group: &str,
        topic: &str,
        name: &str,
        records: Bytes,
        summary: &[u8],
        names: WindowNames,
    ) -> Result<ShippedWindow, StoreError> {
        for (what, id) in [("log group", group), ("log topic", topic)] {
            if !valid_id(id) {
                return Err(refused(what, format!("`{id}` is not an id")));
            }
        }
        let hosts = names == WindowNames::OwnOrShipped;
        let (start, end, _) = parse_name(name, hosts).ok_or_else(|| {
            refused(
                "name",
                format!(
                    "`{name}` is not a window file's name (START-END-PID-SEQ[-partial].parquet)"
                ),
            )
        })?;
        let reader = ParquetRecordBatchReaderBuilder::try_new(records)
            .map_err(|e| refused(name, format!("not Parquet: {e}")))?
            .build()
            .map_err(|e| refused(name, e))?;
        let want = schema();
        let mut batches = Vec::new();
        let mut interface_ids = BTreeSet::new();
        let mut count = 0;
        for b in reader {
            let b = b.map_err(|e| refused(name, format!("cut or corrupt: {e}")))?;
            let got = b.schema();
            let same = got.fields().len() == want.fields().len()
                && got
                    .fields()
                    .iter()
                    .zip(want.fields())
                    .all(|(g, w)| g.name() == w.name() && g.data_type() == w.data_type());
            if !same {
                return Err(refused(name, "its columns are not this store's"));
            }
            let ids = b
                .column_by_name("interface_id")
                .and_then(|c| c.as_any().downcast_ref::<StringArray>())
                .ok_or_else(|| refused(name, "no interface_id column"))?;
            for i in 0..ids.len() {
                if ids.is_null(i) {
                    return Err(refused(name, "a record without its port"));
                }
                interface_ids.insert(ids.value(i).to_string());
            }
            count += b.num_rows();
            batches.push(b);
        }
        let summary = summary::decode(summary).map_err(|e| refused("summary", e))?;
        Ok(ShippedWindow {
            group: group.to_string(),
            topic: topic.to_string(),
            start,
            end,
            name: name.to_string(),
            interface_ids,
            records: count,
            batches,
            summary,
        })
    }

    /// Its file's name in this store, for the agent on `host`.
    fn stored_name(&self, host: &str) -> String {
        shipped_name(host, &self.name).map_or_else(
            || format!("{}-{}-{host}-.parquet", self.start, self.end),
            |(_, name)| name,
        )
    }
}

/// The window start and the name a server's store gives the window
/// named `name` (its name in the agent's store) from the agent on `host`;
/// `None` if `name` is not a window's.
pub fn shipped_name(host: &str, name: &str) -> Option<(u64, String)> {
    let (start, end, rest) = parse_name(name, false)?;
    Some((start, format!("{start}-{end}-{host}-{rest}.parquet")))
}

impl Store {
    /// Where the window named `name` (its name in the agent's store) of
    /// log topic `group`/`topic` from the agent on `host` is (or would be)
    /// kept; `None` if those are not a window's.
    pub fn shipped_path(
        &self,
        host: &str,
        group: &str,
        topic: &str,
        name: &str,
    ) -> Option<PathBuf> {
        let (start, stored) = shipped_name(host, name)?;
        (valid_id(group) && valid_id(topic))
            .then(|| partition(&self.root, group, topic, start).join(stored))
    }

    /// Writes the window `w` of the agent on `host` durably (its summary
    /// first, as every window's), and returns its path.
    pub fn write_shipped(&mut self, host: &str, w: &ShippedWindow) -> Result<PathBuf, StoreError> {
        let dir = partition(&self.root, &w.group, &w.topic, w.start);
        let name = w.stored_name(host);
        let path = {
            let _hour = lock_hour_dirs(&self.hour_dirs);
            summary::write(&dir, &name, &w.summary)?;
            write_file(&self.root, &dir, &name, w.batches.iter().cloned().map(Ok))?
        };
        self.touched.insert(dir, (w.start / 3600 + 1) * 3600);
        Ok(path)
    }
}

/// A window file waiting in an agent's store, to be shipped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Spooled {
    /// Log group id (its partition).
    pub group: String,
    /// Log topic id.
    pub topic: String,
    /// The file's name.
    pub name: String,
    /// The records file.
    pub path: PathBuf,
    /// Its summary.
    pub summary: PathBuf,
    /// Their bytes together.
    pub bytes: u64,
    start: u64,
}

/// The window files under `root` (a spool: an agent's store, or a
/// server's before ClickHouse, which holds its agents' windows too),
/// oldest window first; files being written and anything else are left
/// out.
pub fn spooled(root: &std::path::Path) -> Result<Vec<Spooled>, StoreError> {
    use crate::layout::{name as file_name, subdirs};
    let mut found = Vec::new();
    if !root.exists() {
        return Ok(found);
    }
    for group in subdirs(root)? {
        let Some(g) = file_name(&group)
            .strip_prefix("log_group=")
            .map(str::to_string)
        else {
            continue;
        };
        for topic in subdirs(&group)? {
            let Some(t) = file_name(&topic)
                .strip_prefix("log_topic=")
                .map(str::to_string)
            else {
                continue;
            };
            for date in subdirs(&topic)? {
                for hour in subdirs(&date)? {
                    for e in std::fs::read_dir(&hour).map_err(|e| StoreError::io(&hour, e))? {
                        let e = e.map_err(|e| StoreError::io(&hour, e))?;
                        let name = e.file_name().to_string_lossy().into_owned();
                        let Some((start, _, _)) = parse_name(&name, true) else {
                            continue;
                        };
                        let path = e.path();
                        let summary = summary::summary_path(&path);
                        let size =
                            |p: &std::path::Path| std::fs::metadata(p).map_or(0, |m| m.len());
                        found.push(Spooled {
                            group: g.clone(),
                            topic: t.clone(),
                            bytes: size(&path) + size(&summary),
                            name,
                            path,
                            summary,
                            start,
                        });
                    }
                }
            }
        }
    }
    found.sort_by(|a, b| (a.start, &a.name, &a.path).cmp(&(b.start, &b.name, &b.path)));
    Ok(found)
}

impl Spooled {
    /// Removes it once the server has it: records, then summary, so that
    /// a crash in between leaves a summary without records, which no
    /// listing sees (and [`Store::open`] removes), never records without
    /// their summary, which could not be sent.
    pub fn remove(&self) -> Result<(), StoreError> {
        for p in [&self.path, &self.summary] {
            match std::fs::remove_file(p) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(StoreError::io(p, e)),
            }
        }
        if let Some(dir) = self.path.parent() {
            crate::writer::fsync_dir(dir)?;
        }
        Ok(())
    }
}

/// What [`Spooled::reduce_to_skipdata`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reduction {
    /// Its OK records (this many) became SKIPDATA: the window is lost.
    Reduced {
        /// The OK records dropped.
        dropped: usize,
    },
    /// Reduced before (SKIPDATA and NODATA only): left as it is.
    WasReduced,
    /// NODATA only: nothing to drop, left as it is.
    NoData,
}

/// One window, port and flow log of a window file being reduced: its
/// first row, and the packets and bytes of its OK and SKIPDATA records
/// (`None`: NODATA only).
struct Reduced {
    first: u32,
    totals: Option<(u64, u64)>,
}

impl Spooled {
    /// Makes the window what a lost window leaves behind: its records
    /// replaced by one SKIPDATA record per window, port and flow log,
    /// whose packets and bytes are the totals of that port's records (a
    /// port with only NODATA keeps it); its summary keeps each window's
    /// ports and nothing else. Written as the store writes (summary
    /// first, each under a temporary name, synced, renamed). A window
    /// without OK records (reduced before, or NODATA only) is left as it
    /// is: an original window has SKIPDATA only beside OK records (the cap
    /// discards past the records it keeps), so the two are told apart.
    pub fn reduce_to_skipdata(&mut self) -> Result<Reduction, StoreError> {
        use datafusion::arrow::array::{ArrayRef, UInt32Array, UInt64Array, new_null_array};
        use datafusion::arrow::compute::{concat_batches, take};
        use foldhash::{HashMap, HashMapExt};
        use std::sync::Arc;
        use vpcflow_core::record::LogStatus;
        use vpcflow_core::schema::Field;

        use crate::schema::{Column, columns, data_type};

        let bad = |e: &dyn std::fmt::Display| refused(&self.path.display().to_string(), e);
        let file = std::fs::File::open(&self.path).map_err(|e| StoreError::io(&self.path, e))?;
        let batches = ParquetRecordBatchReaderBuilder::try_new(file)
            .and_then(|b| b.build())
            .map_err(|e| bad(&e))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| bad(&e))?;
        let all = concat_batches(&schema(), &batches).map_err(|e| bad(&e))?;
        let numbers = |name: &str| {
            all.column_by_name(name)
                .and_then(|c| c.as_any().downcast_ref::<UInt64Array>())
                .ok_or_else(|| bad(&format!("no {name} column")))
        };
        let texts = |name: &str| {
            all.column_by_name(name)
                .and_then(|c| c.as_any().downcast_ref::<StringArray>())
                .ok_or_else(|| bad(&format!("no {name} column")))
        };
        let column = |f: Field| f.spec().column;
        let (starts, ends) = (numbers(column(Field::Start))?, numbers(column(Field::End))?);
        let (packets, bytes) = (
            numbers(column(Field::Packets))?,
            numbers(column(Field::Bytes))?,
        );
        let (ports, flow_logs, status) = (
            texts(column(Field::InterfaceId))?,
            texts(column(Field::FlowLogId))?,
            texts(column(Field::LogStatus))?,
        );
        let (mut dropped, mut skipped) = (0, false);
        let mut reduced: Vec<Reduced> = Vec::new();
        let mut seen = HashMap::new();
        for i in 0..all.num_rows() {
            let key = (
                starts.value(i),
                ends.value(i),
                ports.value(i),
                flow_logs.value(i),
            );
            let this = match status.value(i) {
                s if s == LogStatus::NoData.as_str() => None,
                s => {
                    if s == LogStatus::Ok.as_str() {
                        dropped += 1;
                    } else {
                        skipped = true;
                    }
                    Some((packets.value(i), bytes.value(i)))
                }
            };
            let at = *seen.entry(key).or_insert_with(|| {
                reduced.push(Reduced {
                    first: i as u32,
                    totals: None,
                });
                reduced.len() - 1
            });
            let r = &mut reduced[at];
            r.totals = match (r.totals, this) {
                (Some((p, b)), Some((q, c))) => Some((p + q, b + c)),
                (t, None) | (None, t) => t,
            };
        }
        if dropped == 0 {
            return Ok(if skipped {
                Reduction::WasReduced
            } else {
                Reduction::NoData
            });
        }
        let rows = UInt32Array::from_iter_values(reduced.iter().map(|r| r.first));
        let mut in_window: HashMap<(u64, u64), u64> = HashMap::new();
        let mut arrays: Vec<ArrayRef> = Vec::new();
        for (c, original) in columns().zip(all.columns()) {
            let array: ArrayRef = match c {
                Column::Field(f) if f.field.of_one_flow() => {
                    new_null_array(&data_type(c), reduced.len())
                }
                Column::Field(f) if matches!(f.field, Field::Packets | Field::Bytes) => {
                    let packets = f.field == Field::Packets;
                    Arc::new(UInt64Array::from_iter(
                        reduced
                            .iter()
                            .map(|r| r.totals.map(|(p, b)| if packets { p } else { b })),
                    ))
                }
                Column::Field(f) if f.field == Field::LogStatus => Arc::new(
                    StringArray::from_iter_values(reduced.iter().map(|r| match r.totals {
                        Some(_) => LogStatus::SkipData.as_str(),
                        None => LogStatus::NoData.as_str(),
                    })),
                ),
                Column::RecordIndex => {
                    Arc::new(UInt64Array::from_iter_values(reduced.iter().map(|r| {
                        let i = r.first as usize;
                        let n = in_window
                            .entry((starts.value(i), ends.value(i)))
                            .or_insert(0);
                        *n += 1;
                        *n - 1
                    })))
                }
                _ => take(original, &rows, None).map_err(|e| bad(&e))?,
            };
            arrays.push(array);
        }
        let batch = RecordBatch::try_new(schema(), arrays).map_err(|e| bad(&e))?;
        let mut summary: SummaryFile = summary::read(&self.summary)?;
        for w in &mut summary.windows {
            w.groups.clear();
            w.rules.clear();
            w.denied.clear();
            for p in &mut w.ports {
                p.rejects = None;
            }
        }
        let dir = self
            .path
            .parent()
            .ok_or_else(|| bad(&"a window file outside a partition"))?;
        summary::write(dir, &self.name, &summary)?;
        write_file(dir, dir, &self.name, [Ok(batch)])?;
        let size = |p: &std::path::Path| std::fs::metadata(p).map_or(0, |m| m.len());
        self.bytes = size(&self.path) + size(&self.summary);
        Ok(Reduction::Reduced { dropped })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_window_written_again_by_a_later_writer_of_the_same_process_id_has_a_name_of_its_own() {
        // A container's agent is the same process id at every start; the
        // spool's next hop would take a window named as an earlier one
        // for a retry of it, and drop it.
        let dir = tempfile::tempdir().unwrap();
        let t = crate::compact::tests::topology();
        let w = crate::compact::tests::window(1_700_000_400);
        for _ in 0..2 {
            let mut store = Store::open(dir.path()).unwrap();
            store.write_window(&t, &w).unwrap();
        }
        let names: BTreeSet<String> = spooled(dir.path())
            .unwrap()
            .into_iter()
            .map(|w| w.name)
            .collect();
        assert_eq!(names.len(), 2, "{names:?}");
    }

    #[test]
    fn a_lost_window_leaves_one_skipdata_record_per_port_with_its_totals() {
        use datafusion::arrow::array::UInt64Array;

        let dir = tempfile::tempdir().unwrap();
        let t = crate::compact::tests::topology();
        let mut store = Store::open(dir.path()).unwrap();
        let busy = summary::tests::window();
        store.write_window(&t, &busy).unwrap();
        store
            .write_window(&t, &crate::compact::tests::window(busy.end))
            .unwrap();
        let mut files = spooled(dir.path()).unwrap();
        assert_eq!(files.len(), 2);
        let before = files[0].bytes;
        assert_eq!(
            files[0].reduce_to_skipdata().unwrap(),
            Reduction::Reduced {
                dropped: busy.records.len()
            }
        );
        assert!(files[0].bytes < before, "{} !< {before}", files[0].bytes);
        // NODATA only, or reduced before: nothing to drop, left alone.
        let reduced = std::fs::read(&files[0].path).unwrap();
        assert_eq!(files[1].reduce_to_skipdata().unwrap(), Reduction::NoData);
        assert_eq!(
            files[0].reduce_to_skipdata().unwrap(),
            Reduction::WasReduced
        );
        assert_eq!(std::fs::read(&files[0].path).unwrap(), reduced);

        let file = std::fs::File::open(&files[0].path).unwrap();
        let rows: Vec<RecordBatch> = ParquetRecordBatchReaderBuilder::try_new(file)
            .unwrap()
            .build()
            .unwrap()
            .map(Result::unwrap)
            .collect();
        let b = &rows[0];
        assert_eq!((rows.len(), b.num_rows()), (1, 3));
        let text = |c: &str, i: usize| {
            let a = b.column_by_name(c).unwrap();
            let a = a.as_any().downcast_ref::<StringArray>().unwrap();
            a.is_valid(i).then(|| a.value(i).to_string())
        };
        let number = |c: &str, i: usize| {
            let a = b.column_by_name(c).unwrap();
            let a = a.as_any().downcast_ref::<UInt64Array>().unwrap();
            a.is_valid(i).then(|| a.value(i))
        };
        // Port 0: 30 one-packet flows; port 1: 100 of 10; port 2: 4 of 2.
        for (i, (port, packets)) in [("port-0", 30), ("port-1", 1000), ("port-2", 8)]
            .into_iter()
            .enumerate()
        {
            assert_eq!(text("interface_id", i).as_deref(), Some(port));
            assert_eq!(text("log_status", i).as_deref(), Some("SKIPDATA"));
            assert_eq!(number("packets", i), Some(packets));
            assert_eq!(number("bytes", i), Some(packets * 60));
            assert_eq!(number("start", i), Some(busy.start));
            assert_eq!(number("record_index", i), Some(i as u64));
            assert_eq!(text("flow_log_id", i).as_deref(), Some("fl"));
            for gone in ["srcaddr", "action", "direction", "rule_id"] {
                assert_eq!(text(gone, i), None, "{gone}");
            }
            assert_eq!(number("dstport", i), None);
        }
        let summary: SummaryFile = summary::read(&files[0].summary).unwrap();
        let w = &summary.windows[0];
        assert_eq!(w.ports.len(), 3);
        assert!(w.groups.is_empty() && w.rules.is_empty() && w.denied.is_empty());
        assert!(w.ports.iter().all(|p| p.rejects.is_none()));
    }

    #[test]
    fn window_names_are_parsed_and_others_refused() {
        assert_eq!(
            parse_name("1700000400-1700001000-4242-7.parquet", false),
            Some((1_700_000_400, 1_700_001_000, "4242-7"))
        );
        assert_eq!(
            parse_name("60-120-1-2-partial.parquet", false),
            Some((60, 120, "1-2-partial"))
        );
        // A shipped window's name in a server's store (a host may have
        // dashes and digits), only where hosts are taken.
        for (name, rest) in [
            ("60-120-web-1-7-2.parquet", "web-1-7-2"),
            ("60-120-5-7-2-partial.parquet", "5-7-2-partial"),
        ] {
            assert_eq!(parse_name(name, true), Some((60, 120, rest)), "{name}");
            assert_eq!(parse_name(name, false), None, "{name}");
        }
        assert_eq!(
            parse_name("60-120-1-2.parquet", true),
            Some((60, 120, "1-2"))
        );
        for bad in [
            "60-120-1-2.csv",
            "60-120-1.parquet",
            "120-60-1-2.parquet",
            "../60-120-1-2.parquet",
            "60-120-1-x.parquet",
            "60-120-1-2-extra.parquet",
            "60-120-a b-1-2.parquet",
            "60-120--1-2.parquet",
        ] {
            assert_eq!(parse_name(bad, false), None, "{bad}");
            assert_eq!(parse_name(bad, true), None, "{bad}");
        }
        assert!(valid_id("a1b2c3d4-0000-4000-8000-000000000001"));
        for bad in ["", "..", "a/b", "a b"] {
            assert!(!valid_id(bad), "{bad}");
        }
    }
}
