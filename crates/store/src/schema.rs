//! The columns of a stored record, and records turned into Arrow batches.

use std::net::IpAddr;
use std::sync::Arc;

use datafusion::arrow::array::{
    ArrayRef, RecordBatch, StringBuilder, TimestampMillisecondBuilder, UInt64Builder,
};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use vpcflow_core::Topology;
use vpcflow_core::format::push_ip;
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

/// One batch of records (all of one log topic), built a column at a time:
/// one pass over the records per column keeps each pass's branch the same
/// for every row, and an address repeated from the row before (records are
/// ordered by port) is not formatted again.
pub fn batch(topology: &Topology, records: &[(usize, &FlowRecord)]) -> Result<RecordBatch, String> {
    let n = records.len();
    let mut ip = Vec::with_capacity(40);
    let mut ip_text = String::with_capacity(40);
    let mut last_ip: Option<IpAddr> = None;
    let arrays: Vec<ArrayRef> = columns()
        .map(|c| -> ArrayRef {
            let cell = |index: usize, r| match c {
                Column::Field(f) | Column::Time(f) => value(f.field, topology, r),
                Column::RecordIndex => Value::Number(index as u64),
            };
            match c.ty() {
                ColumnType::Number => {
                    let mut b = UInt64Builder::with_capacity(n);
                    for &(index, r) in records {
                        b.append_option(match cell(index, r) {
                            Value::Number(n) => Some(n),
                            _ => None,
                        });
                    }
                    Arc::new(b.finish())
                }
                ColumnType::Timestamp => {
                    let mut b = TimestampMillisecondBuilder::with_capacity(n).with_timezone("UTC");
                    for &(index, r) in records {
                        b.append_option(match cell(index, r) {
                            Value::Number(secs) => i64::try_from(secs).ok().map(|s| s * 1000),
                            _ => None,
                        });
                    }
                    Arc::new(b.finish())
                }
                ColumnType::Text => {
                    let mut b = StringBuilder::with_capacity(n, n * 16);
                    last_ip = None;
                    for &(index, r) in records {
                        match cell(index, r) {
                            Value::Text(t) => b.append_value(t),
                            Value::Address(a) => {
                                if last_ip != Some(a) {
                                    ip.clear();
                                    push_ip(&mut ip, a);
                                    ip_text.clear();
                                    // ASCII digits, dots, colons and hex.
                                    ip_text.push_str(std::str::from_utf8(&ip).unwrap_or_default());
                                    last_ip = Some(a);
                                }
                                b.append_value(&ip_text);
                            }
                            Value::Number(_) | Value::Absent => b.append_null(),
                        }
                    }
                    Arc::new(b.finish())
                }
            }
        })
        .collect();
    RecordBatch::try_new(schema(), arrays).map_err(|e| e.to_string())
}
