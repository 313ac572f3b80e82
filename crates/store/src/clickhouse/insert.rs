//! A closed window's records of one log topic written to ClickHouse, once.
//!
//! One `INSERT ... FORMAT RowBinary` a window (ClickHouse wants few, large
//! inserts), synchronous through a `Distributed` table, so the answer
//! means every shard has its rows. Then the window's id goes into the
//! ledger. A retry (the answer lost, the process killed) finds the id in
//! the ledger and writes nothing; an attempt cut off before its ledger
//! entry left either every row, which the retry keeps and enters in the
//! ledger, or some, which it removes before writing the window again.

use std::time::{Duration, Instant};

use datafusion::arrow::array::{
    Array, RecordBatch, StringArray, TimestampMillisecondArray, UInt64Array,
};

use super::ddl::record_columns;
use super::{ClickHouse, Shards, Target, literal};
use crate::StoreError;
use crate::layout::civil_date;
use crate::schema::{ColumnType, columns};
use crate::shipped::ShippedWindow;

/// What writing a window did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Inserted {
    /// Its records are in the store now.
    Written {
        /// How many.
        records: usize,
    },
    /// It was already there (a retry of a window written before).
    Duplicate,
}

/// How long a removal of a cut-off attempt's rows may take.
const MUTATION_WAIT: Duration = Duration::from_secs(120);

fn put_str(out: &mut Vec<u8>, s: &str) {
    put_bytes(out, s.as_bytes());
}

/// A LEB128 varint (lengths and counts in RowBinary and Native).
fn put_varint(out: &mut Vec<u8>, mut n: u64) {
    loop {
        let byte = (n & 0x7f) as u8;
        n >>= 7;
        if n == 0 {
            out.push(byte);
            break;
        }
        out.push(byte | 0x80);
    }
}

/// A RowBinary (and Native) `String`: its length as a varint, then its
/// bytes.
pub(super) fn put_bytes(out: &mut Vec<u8>, s: &[u8]) {
    put_varint(out, s.len() as u64);
    out.extend_from_slice(s);
}

/// A RowBinary `String` at the front of `input`, and what follows it.
pub(super) fn take_bytes(input: &[u8]) -> Option<(&[u8], &[u8])> {
    let (mut n, mut shift, mut i) = (0u64, 0, 0);
    loop {
        let b = *input.get(i)?;
        i += 1;
        n |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            break;
        }
        shift += 7;
        if shift > 63 {
            return None;
        }
    }
    let n = usize::try_from(n).ok()?;
    let end = i.checked_add(n)?;
    Some((input.get(i..end)?, &input[end..]))
}

/// A column of a batch, typed once per batch.
enum Values<'a> {
    Number(&'a UInt64Array),
    Text(&'a StringArray),
    Time(&'a TimestampMillisecondArray),
}

impl Values<'_> {
    fn is_null(&self, row: usize) -> bool {
        match self {
            Values::Number(a) => a.is_null(row),
            Values::Text(a) => a.is_null(row),
            Values::Time(a) => a.is_null(row),
        }
    }

    /// The value at `row` in Native (the type's default where NULL, as a
    /// `Nullable` column's nested values have one for every row).
    fn put(&self, row: usize, out: &mut Vec<u8>) {
        let null = self.is_null(row);
        match self {
            Values::Number(a) => {
                let v = if null { 0 } else { a.value(row) };
                out.extend_from_slice(&v.to_le_bytes());
            }
            Values::Text(a) => put_str(out, if null { "" } else { a.value(row) }),
            Values::Time(a) => {
                let ms = if null { 0 } else { a.value(row) };
                let secs = u32::try_from(ms.div_euclid(1000)).unwrap_or(0);
                out.extend_from_slice(&secs.to_le_bytes());
            }
        }
    }
}

/// A row of a window: (batch, row in it).
pub(super) type RowAt = (usize, usize);

/// Every row of `batches`, in order.
pub(super) fn every_row(batches: &[RecordBatch]) -> Vec<RowAt> {
    batches
        .iter()
        .enumerate()
        .flat_map(|(b, batch)| (0..batch.num_rows()).map(move |r| (b, r)))
        .collect()
}

/// The `rows` of `batches` as one block of ClickHouse's Native format
/// (columnar: what its own client sends, and what it parses fastest), in
/// the columns of `records`: the stored ones, then the partitions and the
/// window's id, which are the same on every row.
pub(super) fn native_block(
    batches: &[RecordBatch],
    rows: &[RowAt],
    group: &str,
    topic: &str,
    start: u64,
    window_id: &str,
) -> Result<Vec<u8>, StoreError> {
    let wrong = |message: String| StoreError::Encode {
        path: window_id.to_string(),
        message,
    };
    let (y, m, d, hour) = civil_date(start);
    let date = (y * 10_000 + i64::from(m) * 100 + i64::from(d)) as i32;
    let table = record_columns();
    let mut out = Vec::with_capacity(rows.len() * 200 + 4096);
    put_varint(&mut out, table.len() as u64);
    put_varint(&mut out, rows.len() as u64);
    let stored: Vec<_> = columns().collect();
    for (i, (name, ty)) in table.iter().enumerate() {
        put_str(&mut out, name);
        put_str(&mut out, ty);
        let Some(c) = stored.get(i) else {
            // The same value on every row.
            let mut one = Vec::new();
            match name.as_str() {
                "log_group" => put_str(&mut one, group),
                "log_topic" => put_str(&mut one, topic),
                "window_id" => put_str(&mut one, window_id),
                "date" => one.extend_from_slice(&date.to_le_bytes()),
                "hour" => one.extend_from_slice(&(hour as i32).to_le_bytes()),
                other => return Err(wrong(format!("no value for column {other}"))),
            }
            for _ in rows {
                out.extend_from_slice(&one);
            }
            continue;
        };
        let typed = batches
            .iter()
            .map(|b| {
                let a = b.column(i).as_any();
                match c.ty() {
                    ColumnType::Number => a.downcast_ref().map(Values::Number),
                    ColumnType::Text => a.downcast_ref().map(Values::Text),
                    ColumnType::Timestamp => a.downcast_ref().map(Values::Time),
                }
                .ok_or_else(|| wrong(format!("column {name} is not of the store's type")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        if c.nullable() {
            // The null map, then a value for every row.
            out.extend(rows.iter().map(|&(b, r)| u8::from(typed[b].is_null(r))));
        } else if rows.iter().any(|&(b, r)| typed[b].is_null(r)) {
            return Err(wrong(format!(
                "a value missing from column {name}, which always has one"
            )));
        }
        for &(b, r) in rows {
            typed[b].put(r, &mut out);
        }
    }
    Ok(out)
}

/// The ledger's row of window `w` (`windows`, RowBinary): its id, log
/// group and topic, start, records, when, and its summary file's bytes.
pub(super) fn ledger_row(window_id: &str, w: &ShippedWindow, summary: &[u8]) -> Vec<u8> {
    let mut entry = Vec::with_capacity(summary.len() + 128);
    for s in [window_id, &w.group, &w.topic] {
        put_str(&mut entry, s);
    }
    entry.extend_from_slice(&w.start.to_le_bytes());
    entry.extend_from_slice(&(w.records as u64).to_le_bytes());
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as u32);
    entry.extend_from_slice(&now.to_le_bytes());
    put_bytes(&mut entry, summary);
    entry
}

impl ClickHouse {
    /// Writes the window `w` under `window_id` (unique to the window: the
    /// same id again is a retry, answered [`Inserted::Duplicate`]).
    /// `summary` is the window's summary file as the spool keeps it.
    pub fn insert_window(
        &self,
        window_id: &str,
        w: &ShippedWindow,
        summary: &[u8],
    ) -> Result<Inserted, StoreError> {
        if self.has_window(&w.topic, w.start, window_id)? {
            return Ok(Inserted::Duplicate);
        }
        let (topic, id) = (literal(&w.topic), literal(window_id));
        let there = format!(
            "FROM {} WHERE log_topic = {topic} AND start = {} AND window_id = {id}",
            self.table("records"),
            w.start
        );
        let before = self.count(Target::Any, &format!("SELECT count() {there}"))?;
        if before > 0 && before != w.records as u64 {
            self.remove_window(window_id, &there)?;
        }
        if before != w.records as u64 && w.records > 0 {
            self.insert_records(w, window_id)?;
        }
        self.statement(
            Target::Any,
            &format!("INSERT INTO {} FORMAT RowBinary", self.table("windows")),
            Some(&ledger_row(window_id, w, summary)),
            &[("insert_distributed_sync", "1".into())],
        )?;
        Ok(Inserted::Written { records: w.records })
    }

    /// Whether the window of log topic `topic` starting at `start` under
    /// `window_id` is written whole (its ledger row goes in last).
    pub fn has_window(&self, topic: &str, start: u64, window_id: &str) -> Result<bool, StoreError> {
        let in_ledger = self.count(
            Target::Any,
            &format!(
                "SELECT count() FROM {} WHERE log_topic = {} AND start = {start} AND id = {}",
                self.table("windows"),
                literal(topic),
                literal(window_id),
            ),
        )?;
        Ok(in_ledger > 0)
    }

    /// The window's rows in `records`: with every shard of the cluster in
    /// the URL, each shard's rows (by the `Distributed` table's own key
    /// and weights, so one port's records stay on one shard) straight
    /// into its local table, all shards at once; else one insert through
    /// the `Distributed` table, synchronous. Native format either way.
    fn insert_records(&self, w: &ShippedWindow, window_id: &str) -> Result<(), StoreError> {
        let rows = every_row(&w.batches);
        let block =
            |rows: &[RowAt]| native_block(&w.batches, rows, &w.group, &w.topic, w.start, window_id);
        let Some(shards) = self.shards()? else {
            return self
                .statement(
                    Target::Any,
                    &format!("INSERT INTO {} FORMAT Native", self.table("records")),
                    Some(&block(&rows)?),
                    &[("insert_distributed_sync", "1".into())],
                )
                .map(drop);
        };
        let by_host = self.split_by_shard(&shards, w, &rows)?;
        let local = format!("INSERT INTO {} FORMAT Native", self.local_table("records"));
        std::thread::scope(|scope| {
            let sent: Vec<_> = by_host
                .iter()
                .enumerate()
                .filter(|(_, rows)| !rows.is_empty())
                .map(|(host, rows)| {
                    let (local, block) = (&local, &block);
                    scope.spawn(move || {
                        self.statement(Target::Host(host), local, Some(&block(rows)?), &[])
                    })
                })
                .collect();
            for s in sent {
                s.join()
                    .map_err(|_| self.failed("", "an insert thread panicked"))??;
            }
            Ok(())
        })
    }

    /// The rows of `w` for each host of the URL, by the shard the
    /// `Distributed` table would send them to.
    fn split_by_shard(
        &self,
        shards: &Shards,
        w: &ShippedWindow,
        rows: &[RowAt],
    ) -> Result<Vec<Vec<RowAt>>, StoreError> {
        let hashes = self.port_hashes(shards, &w.interface_ids)?;
        let port = columns()
            .position(|c| c.name() == "interface_id")
            .expect("records have interface_id");
        let ids: Vec<&StringArray> = w
            .batches
            .iter()
            .map(|b| b.column(port).as_any().downcast_ref::<StringArray>())
            .collect::<Option<_>>()
            .ok_or_else(|| StoreError::Encode {
                path: w.name.clone(),
                message: "interface_id is not text".into(),
            })?;
        let mut by_host = vec![Vec::new(); self.url.hosts.len()];
        for &(b, r) in rows {
            let hash = hashes.get(ids[b].value(r)).copied().unwrap_or(0);
            by_host[shards.slots[(hash % shards.slots.len() as u64) as usize]].push((b, r));
        }
        Ok(by_host)
    }

    /// Removes the rows an attempt cut off left of a window, from every
    /// host the URL lists, and waits for the removal.
    fn remove_window(&self, window_id: &str, there: &str) -> Result<(), StoreError> {
        let local = self.local_table("records");
        for i in 0..self.url.hosts.len() {
            self.statement(
                Target::Host(i),
                &format!(
                    "ALTER TABLE {local} DELETE WHERE window_id = {}",
                    literal(window_id)
                ),
                None,
                &[],
            )?;
        }
        let deadline = Instant::now() + MUTATION_WAIT;
        loop {
            let left = self.count(Target::Any, &format!("SELECT count() {there}"))?;
            if left == 0 {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(self.failed(
                    &self.url.hosts[0],
                    format!(
                        "{left} rows of a cut-off write of window {window_id} are still there \
                         (every shard's address must be in the URL to remove them)"
                    ),
                ));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_carry_their_length_as_a_varint() {
        let mut out = Vec::new();
        put_str(&mut out, "ab");
        assert_eq!(out, [2, b'a', b'b']);
        out.clear();
        put_str(&mut out, &"x".repeat(300));
        assert_eq!(out[..2], [0xac, 0x02]);
        assert_eq!(out.len(), 302);
        out.push(7);
        let (s, rest) = take_bytes(&out).unwrap();
        assert_eq!((s.len(), rest), (300, &[7u8][..]));
        assert_eq!(take_bytes(&out[..100]), None, "cut short");
    }
}
