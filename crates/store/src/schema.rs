//! The columns of a stored record, and records turned into Arrow batches.

use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, RecordBatch, StringBuilder, UInt64Builder};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use vpcflow_core::Topology;
use vpcflow_core::record::FlowRecord;
use vpcflow_core::schema::{FIELDS, FieldSpec, Kind, Value, value};

/// The partition columns a query sees beside the stored ones (text): the
/// directories a record's file sits in.
pub const PARTITIONS: [&str; 4] = ["log_group", "log_topic", "date", "hour"];

/// The column after the record's stored fields: the record's position in
/// its window's output order (ingest's order).
pub const RECORD_INDEX: &str = "record_index";

/// A stored column: a record field, or the record's index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Column {
    /// A field of the record ([`FieldSpec::stored`]).
    Field(&'static FieldSpec),
    /// [`RECORD_INDEX`].
    RecordIndex,
}

impl Column {
    /// The column's name.
    pub fn name(self) -> &'static str {
        match self {
            Column::Field(f) => f.column,
            Column::RecordIndex => RECORD_INDEX,
        }
    }

    /// Whether it holds numbers (UInt64); the rest are strings.
    pub fn is_number(self) -> bool {
        match self {
            Column::Field(f) => f.kind == Kind::Number,
            Column::RecordIndex => true,
        }
    }

    fn nullable(self) -> bool {
        match self {
            Column::Field(f) => f.nullable,
            Column::RecordIndex => false,
        }
    }
}

/// Stored columns, in order: the record's fields the store keeps (all but
/// `version`, which belongs to the text format asked for, and the log group
/// and topic, which are partitions), then [`RECORD_INDEX`]. Derived from
/// the record's one field table, [`FIELDS`].
pub fn columns() -> impl Iterator<Item = Column> {
    FIELDS
        .iter()
        .filter(|f| f.stored)
        .map(Column::Field)
        .chain([Column::RecordIndex])
}

/// The stored schema (partition columns excluded).
pub fn schema() -> SchemaRef {
    Arc::new(Schema::new(
        columns()
            .map(|c| {
                let ty = if c.is_number() {
                    DataType::UInt64
                } else {
                    DataType::Utf8
                };
                Field::new(c.name(), ty, c.nullable())
            })
            .collect::<Vec<_>>(),
    ))
}

/// One batch of records (all of one log topic).
pub fn batch(topology: &Topology, records: &[(usize, &FlowRecord)]) -> Result<RecordBatch, String> {
    let n = records.len();
    let mut strings: Vec<StringBuilder> = Vec::new();
    let mut numbers: Vec<UInt64Builder> = Vec::new();
    for c in columns() {
        if c.is_number() {
            numbers.push(UInt64Builder::with_capacity(n));
        } else {
            strings.push(StringBuilder::with_capacity(n, n * 16));
        }
    }
    let mut ip = String::new();
    for &(index, r) in records {
        let (mut s, mut u) = (0, 0);
        for c in columns() {
            let v = match c {
                Column::Field(f) => value(f.field, topology, r),
                Column::RecordIndex => Value::Number(index as u64),
            };
            if c.is_number() {
                numbers[u].append_option(match v {
                    Value::Number(n) => Some(n),
                    _ => None,
                });
                u += 1;
                continue;
            }
            let text = match v {
                Value::Text(t) => Some(t),
                Value::Address(a) => {
                    use std::fmt::Write;
                    ip.clear();
                    let _ = write!(ip, "{a}");
                    Some(ip.as_str())
                }
                Value::Number(_) | Value::Absent => None,
            };
            strings[s].append_option(text);
            s += 1;
        }
    }
    let (mut s, mut u) = (strings.into_iter(), numbers.into_iter());
    let arrays: Vec<ArrayRef> = columns()
        .map(|c| -> ArrayRef {
            if c.is_number() {
                Arc::new(u.next().expect("one builder per column").finish())
            } else {
                Arc::new(s.next().expect("one builder per column").finish())
            }
        })
        .collect();
    RecordBatch::try_new(schema(), arrays).map_err(|e| e.to_string())
}
