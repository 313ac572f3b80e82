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

use super::{ClickHouse, Target, literal};
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

/// A RowBinary `String`: its length as a LEB128 varint, then its bytes.
pub(super) fn put_bytes(out: &mut Vec<u8>, s: &[u8]) {
    let mut n = s.len() as u64;
    loop {
        let byte = (n & 0x7f) as u8;
        n >>= 7;
        if n == 0 {
            out.push(byte);
            break;
        }
        out.push(byte | 0x80);
    }
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

/// The rows of `batches` in RowBinary, in the columns of `records`
/// (the stored ones, then the partitions and the window's id).
pub(super) fn row_binary(
    batches: &[RecordBatch],
    group: &str,
    topic: &str,
    start: u64,
    window_id: &str,
) -> Result<Vec<u8>, StoreError> {
    let (y, m, d, hour) = civil_date(start);
    let date = (y * 10_000 + i64::from(m) * 100 + i64::from(d)) as i32;
    let hour = hour as i32;
    let mut tail = Vec::with_capacity(64);
    put_str(&mut tail, group);
    put_str(&mut tail, topic);
    tail.extend_from_slice(&date.to_le_bytes());
    tail.extend_from_slice(&hour.to_le_bytes());
    put_str(&mut tail, window_id);
    let wrong = |name: &str| StoreError::Encode {
        path: window_id.to_string(),
        message: format!("column {name} is not of the store's type"),
    };
    let rows: usize = batches.iter().map(RecordBatch::num_rows).sum();
    let mut out = Vec::with_capacity(rows * 160);
    for b in batches {
        let mut cols = Vec::new();
        for (i, c) in columns().enumerate() {
            let a = b.column(i).as_any();
            let v = match c.ty() {
                ColumnType::Number => a.downcast_ref().map(Values::Number),
                ColumnType::Text => a.downcast_ref().map(Values::Text),
                ColumnType::Timestamp => a.downcast_ref().map(Values::Time),
            };
            cols.push((c.nullable(), v.ok_or_else(|| wrong(c.name()))?));
        }
        for row in 0..b.num_rows() {
            for (nullable, v) in &cols {
                let null = match v {
                    Values::Number(a) => a.is_null(row),
                    Values::Text(a) => a.is_null(row),
                    Values::Time(a) => a.is_null(row),
                };
                if *nullable {
                    out.push(u8::from(null));
                    if null {
                        continue;
                    }
                } else if null {
                    return Err(StoreError::Encode {
                        path: window_id.to_string(),
                        message: "a value missing from a column that always has one".into(),
                    });
                }
                match v {
                    Values::Number(a) => out.extend_from_slice(&a.value(row).to_le_bytes()),
                    Values::Text(a) => put_str(&mut out, a.value(row)),
                    Values::Time(a) => {
                        let secs = u32::try_from(a.value(row).div_euclid(1000)).unwrap_or(0);
                        out.extend_from_slice(&secs.to_le_bytes());
                    }
                }
            }
            out.extend_from_slice(&tail);
        }
    }
    Ok(out)
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
            let body = row_binary(&w.batches, &w.group, &w.topic, w.start, window_id)?;
            self.statement(
                Target::Any,
                &format!("INSERT INTO {} FORMAT RowBinary", self.table("records")),
                Some(&body),
                &[("insert_distributed_sync", "1".into())],
            )?;
        }
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
        self.statement(
            Target::Any,
            &format!("INSERT INTO {} FORMAT RowBinary", self.table("windows")),
            Some(&entry),
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
