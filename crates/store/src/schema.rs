//! The columns of a stored record, and records turned into Arrow batches.

use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, RecordBatch, StringBuilder, UInt64Builder};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use vpcflow_core::Topology;
use vpcflow_core::record::{FlowRecord, RecordBody};

/// Stored columns, in order: the seed's fields (without `version`, which is
/// a property of the text format asked for), `-` turned into `_`, then the
/// extension fields.
pub const COLUMNS: [(&str, bool); 24] = [
    ("project_id", false),
    ("interface_id", false),
    ("srcaddr", true),
    ("dstaddr", true),
    ("srcport", true),
    ("dstport", true),
    ("protocol", true),
    ("packets", true),
    ("bytes", true),
    ("start", false),
    ("end", false),
    ("action", true),
    ("log_status", false),
    ("direction", true),
    ("tcp_flag", true),
    ("region_id", false),
    ("az_id", false),
    ("vpc_id", false),
    ("network_id", false),
    ("decided_by", true),
    ("policy_id", true),
    ("rule_id", true),
    ("flow_log_id", false),
    // Position of the record in its window's output order (ingest's order).
    ("record_index", false),
];

/// Numeric columns (UInt64); the rest are strings.
fn is_number(name: &str) -> bool {
    matches!(
        name,
        "srcport" | "dstport" | "protocol" | "packets" | "bytes" | "start" | "end" | "record_index"
    )
}

/// The stored schema (partition columns excluded).
pub fn schema() -> SchemaRef {
    Arc::new(Schema::new(
        COLUMNS
            .iter()
            .map(|(name, nullable)| {
                let ty = if is_number(name) {
                    DataType::UInt64
                } else {
                    DataType::Utf8
                };
                Field::new(*name, ty, *nullable)
            })
            .collect::<Vec<_>>(),
    ))
}

/// One batch of records (all of one log topic).
pub fn batch(topology: &Topology, records: &[(usize, &FlowRecord)]) -> Result<RecordBatch, String> {
    let n = records.len();
    let mut strings: Vec<StringBuilder> = Vec::new();
    let mut numbers: Vec<UInt64Builder> = Vec::new();
    for (name, _) in COLUMNS {
        if is_number(name) {
            numbers.push(UInt64Builder::with_capacity(n));
        } else {
            strings.push(StringBuilder::with_capacity(n, n * 16));
        }
    }
    let mut ip = String::new();
    for &(index, r) in records {
        let port = &topology.ports[r.port as usize];
        let flow = match &r.body {
            RecordBody::Flow(f) => Some(f),
            _ => None,
        };
        let rule = flow.and_then(|f| topology.rules.get(f.rule));
        let (packets, bytes) = match &r.body {
            RecordBody::Flow(f) => (Some(f.packets), Some(f.bytes)),
            RecordBody::SkipData { packets, bytes } => (Some(*packets), Some(*bytes)),
            RecordBody::NoData => (None, None),
        };
        let (mut s, mut u) = (0, 0);
        for (name, _) in COLUMNS {
            if is_number(name) {
                let v = match name {
                    "srcport" => flow.map(|f| u64::from(f.tuple.src_port)),
                    "dstport" => flow.map(|f| u64::from(f.tuple.dst_port)),
                    "protocol" => flow.map(|f| u64::from(f.tuple.protocol.0)),
                    "packets" => packets,
                    "bytes" => bytes,
                    "start" => Some(r.start),
                    "end" => Some(r.end),
                    _ => Some(index as u64),
                };
                numbers[u].append_option(v);
                u += 1;
                continue;
            }
            let b = &mut strings[s];
            s += 1;
            let v: Option<&str> = match name {
                "project_id" => Some(&port.project_id),
                "interface_id" => Some(&port.id),
                "srcaddr" | "dstaddr" => match flow {
                    Some(f) => {
                        use std::fmt::Write;
                        ip.clear();
                        let a = if name == "srcaddr" {
                            f.tuple.src
                        } else {
                            f.tuple.dst
                        };
                        let _ = write!(ip, "{a}");
                        Some(ip.as_str())
                    }
                    None => None,
                },
                "action" => flow.map(|f| f.action.as_str()),
                "log_status" => Some(r.status().as_str()),
                "direction" => flow.map(|f| f.direction.as_str()),
                "tcp_flag" => flow.and_then(|f| f.tcp_flag).map(|t| t.as_str()),
                "region_id" => Some(&topology.region),
                "az_id" => Some(&port.az_id),
                "vpc_id" => Some(&port.vpc_id),
                "network_id" => Some(&port.subnet_id),
                "decided_by" => rule.map(|r| r.stage.as_str()),
                "policy_id" => rule.map(|r| r.owner.as_str()),
                "rule_id" => rule.map(|r| r.id.as_str()),
                _ => Some(&topology.flow_logs[r.flow_log as usize].id),
            };
            b.append_option(v);
        }
    }
    let (mut s, mut u) = (strings.into_iter(), numbers.into_iter());
    let columns: Vec<ArrayRef> = COLUMNS
        .iter()
        .map(|(name, _)| -> ArrayRef {
            if is_number(name) {
                Arc::new(u.next().expect("one builder per column").finish())
            } else {
                Arc::new(s.next().expect("one builder per column").finish())
            }
        })
        .collect();
    RecordBatch::try_new(schema(), columns).map_err(|e| e.to_string())
}
