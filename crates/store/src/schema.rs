//! The columns of a stored record, and records turned into Arrow batches.

use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, RecordBatch, StringBuilder, UInt64Builder};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use vpcflow_core::Topology;
use vpcflow_core::record::FlowRecord;
use vpcflow_core::schema::{Value, value};
pub use vpcflow_querylang::columns::{Column, PARTITIONS, RECORD_INDEX, columns};

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
