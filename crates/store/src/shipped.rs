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

use std::collections::BTreeSet;
use std::path::PathBuf;

use bytes::Bytes;
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
    batches: Vec<RecordBatch>,
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
/// (`START-END-PID-SEQ[-partial].parquet`; `rest` is `PID-SEQ[-partial]`).
fn parse_name(name: &str) -> Option<(u64, u64, &str)> {
    let stem = name.strip_suffix(".parquet")?;
    let mut parts = stem.splitn(3, '-');
    let start: u64 = parts.next()?.parse().ok()?;
    let end: u64 = parts.next()?.parse().ok()?;
    let rest = parts.next()?;
    let (pid, seq) = rest
        .strip_suffix("-partial")
        .unwrap_or(rest)
        .split_once('-')?;
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    (digits(pid) && digits(seq) && start < end).then_some((start, end, rest))
}

impl ShippedWindow {
    /// Checks what an agent sent: the log group and topic, the name its
    /// store gave the window's file, the file (Parquet) and its summary
    /// (the store's compressed JSON). The error names what is wrong.
    pub fn parse(
        group: &str,
        topic: &str,
        name: &str,
        records: Bytes,
        summary: &[u8],
    ) -> Result<ShippedWindow, StoreError> {
        for (what, id) in [("log group", group), ("log topic", topic)] {
            if !valid_id(id) {
                return Err(refused(what, format!("`{id}` is not an id")));
            }
        }
        let (start, end, _) = parse_name(name).ok_or_else(|| {
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
        let (start, end, rest) = parse_name(&self.name).unwrap_or((self.start, self.end, ""));
        format!("{start}-{end}-{host}-{rest}.parquet")
    }
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
        let (start, end, rest) = parse_name(name)?;
        (valid_id(group) && valid_id(topic)).then(|| {
            partition(&self.root, group, topic, start)
                .join(format!("{start}-{end}-{host}-{rest}.parquet"))
        })
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

/// The window files under `root` (an agent's store), oldest window first;
/// files being written and anything else are left out.
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
                        let Some((start, _, _)) = parse_name(&name) else {
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
    /// Removes it (summary, then records), once the server has it.
    pub fn remove(&self) -> Result<(), StoreError> {
        for p in [&self.summary, &self.path] {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_names_are_parsed_and_others_refused() {
        assert_eq!(
            parse_name("1700000400-1700001000-4242-7.parquet"),
            Some((1_700_000_400, 1_700_001_000, "4242-7"))
        );
        assert_eq!(
            parse_name("60-120-1-2-partial.parquet"),
            Some((60, 120, "1-2-partial"))
        );
        for bad in [
            "60-120-1-2.csv",
            "60-120-1.parquet",
            "120-60-1-2.parquet",
            "../60-120-1-2.parquet",
            "60-120-1-x.parquet",
            "60-120-1-2-extra.parquet",
        ] {
            assert_eq!(parse_name(bad), None, "{bad}");
        }
        assert!(valid_id("a1b2c3d4-0000-4000-8000-000000000001"));
        for bad in ["", "..", "a/b", "a b"] {
            assert!(!valid_id(bad), "{bad}");
        }
    }
}
