//! The columns of a stored record, and records turned into Arrow batches.

use std::sync::Arc;

use datafusion::arrow::array::{
    ArrayRef, RecordBatch, StringBuilder, TimestampMillisecondBuilder, UInt64Builder,
};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use vpcflow_core::Topology;
use vpcflow_core::record::FlowRecord;
use vpcflow_core::schema::{Value, value};
pub use vpcflow_querylang::columns::{
    Column, ColumnType, END_TIME, PARTITIONS, Partition, RECORD_INDEX, START_TIME, columns,
};

/// The Arrow type of a stored column. Timestamps are UTC milliseconds,
/// which Parquet keeps as `TIMESTAMP(MILLIS, isAdjustedToUTC)`: every
/// engine reads that as an instant.
pub fn data_type(c: Column) -> DataType {
    match c.ty() {
        ColumnType::Number => DataType::UInt64,
        ColumnType::Text => DataType::Utf8,
        ColumnType::Timestamp => DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into())),
    }
}

/// The Arrow type of a partition column.
pub fn partition_type(p: &Partition) -> DataType {
    if p.number {
        DataType::Int32
    } else {
        DataType::Utf8
    }
}

/// The stored schema (partition columns excluded).
pub fn schema() -> SchemaRef {
    Arc::new(Schema::new(
        columns()
            .map(|c| Field::new(c.name(), data_type(c), c.nullable()))
            .collect::<Vec<_>>(),
    ))
}

/// A column's values as they are gathered.
enum Builder {
    Number(UInt64Builder),
    Text(StringBuilder),
    Timestamp(TimestampMillisecondBuilder),
}

/// One batch of records (all of one log topic).
pub fn batch(topology: &Topology, records: &[(usize, &FlowRecord)]) -> Result<RecordBatch, String> {
    let n = records.len();
    let mut builders: Vec<Builder> = columns()
        .map(|c| match c.ty() {
            ColumnType::Number => Builder::Number(UInt64Builder::with_capacity(n)),
            ColumnType::Text => Builder::Text(StringBuilder::with_capacity(n, n * 16)),
            ColumnType::Timestamp => Builder::Timestamp(
                TimestampMillisecondBuilder::with_capacity(n).with_timezone("UTC"),
            ),
        })
        .collect();
    let mut ip = String::new();
    for &(index, r) in records {
        for (c, b) in columns().zip(builders.iter_mut()) {
            let v = match c {
                Column::Field(f) | Column::Time(f) => value(f.field, topology, r),
                Column::RecordIndex => Value::Number(index as u64),
            };
            match b {
                Builder::Number(b) => b.append_option(match v {
                    Value::Number(n) => Some(n),
                    _ => None,
                }),
                Builder::Timestamp(b) => b.append_option(match v {
                    Value::Number(secs) => i64::try_from(secs).ok().map(|s| s * 1000),
                    _ => None,
                }),
                Builder::Text(b) => b.append_option(match v {
                    Value::Text(t) => Some(t),
                    Value::Address(a) => {
                        use std::fmt::Write;
                        ip.clear();
                        let _ = write!(ip, "{a}");
                        Some(ip.as_str())
                    }
                    Value::Number(_) | Value::Absent => None,
                }),
            }
        }
    }
    let arrays: Vec<ArrayRef> = builders
        .into_iter()
        .map(|b| -> ArrayRef {
            match b {
                Builder::Number(mut b) => Arc::new(b.finish()),
                Builder::Text(mut b) => Arc::new(b.finish()),
                Builder::Timestamp(mut b) => Arc::new(b.finish()),
            }
        })
        .collect();
    RecordBatch::try_new(schema(), arrays).map_err(|e| e.to_string())
}
