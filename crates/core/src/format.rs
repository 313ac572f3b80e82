//! Record formats: the seed's v1 and v2 text lines, custom field lists, and
//! JSON lines.
//!
//! Text: fields separated by single spaces, `-` for a missing value, IPv6 in
//! RFC 5952 form (SPEC §2); v1 and v2 are the seed's field lists, byte for
//! byte. `custom:` takes any seed field and the extension fields
//! (`decided-by`, `policy-id`, `rule-id`, `flow-log-id`, `log-group-id`,
//! `log-topic-id`) in any order. JSON: one object per line with the seed's
//! field names, numbers as numbers, missing values as `null`, plus every
//! extension field.

use std::io::{self, Write};
use std::net::IpAddr;

use serde::Serialize;

use crate::record::{FlowRecord, RecordBody};
use crate::topology::Topology;

/// A field a record can print.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    /// `version`.
    Version,
    /// `project-id`.
    ProjectId,
    /// `interface-id`.
    InterfaceId,
    /// `srcaddr`.
    SrcAddr,
    /// `dstaddr`.
    DstAddr,
    /// `srcport`.
    SrcPort,
    /// `dstport`.
    DstPort,
    /// `protocol`.
    Protocol,
    /// `packets`.
    Packets,
    /// `bytes`.
    Bytes,
    /// `start`.
    Start,
    /// `end`.
    End,
    /// `action`.
    Action,
    /// `log-status`.
    LogStatus,
    /// `direction`.
    Direction,
    /// `tcp-flag`.
    TcpFlag,
    /// `region-id`.
    RegionId,
    /// `az-id`.
    AzId,
    /// `vpc-id`.
    VpcId,
    /// `network-id`.
    NetworkId,
    /// Extension: which check decided (`sg-ingress`, `acl-egress`, `conntrack`...).
    DecidedBy,
    /// Extension: the security group or network ACL whose rule decided.
    PolicyId,
    /// Extension: the deciding rule, `default-deny`, `implicit-allow` or `stateful-return`.
    RuleId,
    /// Extension: the flow log the record belongs to.
    FlowLogId,
    /// Extension: its log group.
    LogGroupId,
    /// Extension: its log topic.
    LogTopicId,
}

impl Field {
    /// Every field: the seed's v2 list, then the extensions.
    pub const ALL: [Field; 26] = [
        Field::Version,
        Field::ProjectId,
        Field::InterfaceId,
        Field::SrcAddr,
        Field::DstAddr,
        Field::SrcPort,
        Field::DstPort,
        Field::Protocol,
        Field::Packets,
        Field::Bytes,
        Field::Start,
        Field::End,
        Field::Action,
        Field::LogStatus,
        Field::Direction,
        Field::TcpFlag,
        Field::RegionId,
        Field::AzId,
        Field::VpcId,
        Field::NetworkId,
        Field::DecidedBy,
        Field::PolicyId,
        Field::RuleId,
        Field::FlowLogId,
        Field::LogGroupId,
        Field::LogTopicId,
    ];

    /// The field's name.
    pub fn name(self) -> &'static str {
        match self {
            Field::Version => "version",
            Field::ProjectId => "project-id",
            Field::InterfaceId => "interface-id",
            Field::SrcAddr => "srcaddr",
            Field::DstAddr => "dstaddr",
            Field::SrcPort => "srcport",
            Field::DstPort => "dstport",
            Field::Protocol => "protocol",
            Field::Packets => "packets",
            Field::Bytes => "bytes",
            Field::Start => "start",
            Field::End => "end",
            Field::Action => "action",
            Field::LogStatus => "log-status",
            Field::Direction => "direction",
            Field::TcpFlag => "tcp-flag",
            Field::RegionId => "region-id",
            Field::AzId => "az-id",
            Field::VpcId => "vpc-id",
            Field::NetworkId => "network-id",
            Field::DecidedBy => "decided-by",
            Field::PolicyId => "policy-id",
            Field::RuleId => "rule-id",
            Field::FlowLogId => "flow-log-id",
            Field::LogGroupId => "log-group-id",
            Field::LogTopicId => "log-topic-id",
        }
    }

    /// The field called `name`.
    pub fn parse(name: &str) -> Option<Field> {
        Field::ALL.iter().copied().find(|f| f.name() == name)
    }
}

/// The seed's version 1 fields.
pub const V1_FIELDS: &[Field] = Field::ALL.split_at(14).0;
/// The seed's version 2 fields.
pub const V2_FIELDS: &[Field] = Field::ALL.split_at(20).0;

/// An output format.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Format {
    /// Version 1 text, 14 fields.
    V1,
    /// Version 2 text, 20 fields.
    V2,
    /// Text with the fields given, in their order.
    Custom(Vec<Field>),
    /// JSON lines with every field.
    Json,
}

/// A format string that names no format or an unknown field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FormatError {
    /// Not v1, v2, json or custom:...
    #[error("`{0}` is not a format: use v1, v2, json or custom:FIELD,FIELD,...")]
    Unknown(String),
    /// A custom field list names an unknown field.
    #[error("`{field}` is not a field; fields are: {known}")]
    UnknownField {
        /// The name given.
        field: String,
        /// Every field name.
        known: String,
    },
}

impl Format {
    /// Parses `v1`, `v2`, `json` or `custom:FIELD,FIELD,...`.
    pub fn parse(s: &str) -> Result<Format, FormatError> {
        match s {
            "v1" => Ok(Format::V1),
            "v2" => Ok(Format::V2),
            "json" => Ok(Format::Json),
            _ => {
                let Some(list) = s.strip_prefix("custom:") else {
                    return Err(FormatError::Unknown(s.to_string()));
                };
                let fields = list
                    .split(',')
                    .map(|f| {
                        Field::parse(f.trim()).ok_or_else(|| FormatError::UnknownField {
                            field: f.trim().to_string(),
                            known: Field::ALL.map(Field::name).join(","),
                        })
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                Ok(Format::Custom(fields))
            }
        }
    }

    /// The text fields of this format; `None` for JSON.
    pub fn fields(&self) -> Option<&[Field]> {
        match self {
            Format::V1 => Some(V1_FIELDS),
            Format::V2 => Some(V2_FIELDS),
            Format::Custom(f) => Some(f),
            Format::Json => None,
        }
    }
}

/// Writes the field-name line (`--header`); JSON has none.
pub fn write_header(format: &Format, out: &mut impl Write) -> io::Result<()> {
    match format.fields() {
        Some(fields) => {
            let names: Vec<&str> = fields.iter().map(|f| f.name()).collect();
            writeln!(out, "{}", names.join(" "))
        }
        None => Ok(()),
    }
}

#[derive(Serialize)]
#[serde(rename_all = "kebab-case")]
struct JsonRecord<'a> {
    version: u8,
    project_id: &'a str,
    interface_id: &'a str,
    srcaddr: Option<IpAddr>,
    dstaddr: Option<IpAddr>,
    srcport: Option<u16>,
    dstport: Option<u16>,
    protocol: Option<u8>,
    packets: Option<u64>,
    bytes: Option<u64>,
    start: u64,
    end: u64,
    action: Option<&'static str>,
    log_status: &'static str,
    direction: Option<&'static str>,
    tcp_flag: Option<&'static str>,
    region_id: &'a str,
    az_id: &'a str,
    vpc_id: &'a str,
    network_id: &'a str,
    decided_by: Option<&'static str>,
    policy_id: Option<&'a str>,
    rule_id: Option<&'a str>,
    flow_log_id: &'a str,
    log_group_id: &'a str,
    log_topic_id: &'a str,
}

/// Writes one record as one line.
pub fn write_record(
    format: &Format,
    topology: &Topology,
    r: &FlowRecord,
    out: &mut impl Write,
) -> io::Result<()> {
    let Some(fields) = format.fields() else {
        return write_json(topology, r, out);
    };
    let mut n = itoa::Buffer::new();
    let version: &[u8] = if *format == Format::V1 { b"1" } else { b"2" };
    for (i, field) in fields.iter().enumerate() {
        if i > 0 {
            out.write_all(b" ")?;
        }
        write_field(*field, version, topology, r, out, &mut n)?;
    }
    out.write_all(b"\n")
}

fn write_field(
    field: Field,
    version: &[u8],
    topology: &Topology,
    r: &FlowRecord,
    out: &mut impl Write,
    n: &mut itoa::Buffer,
) -> io::Result<()> {
    let port = &topology.ports[r.port as usize];
    let flow = match &r.body {
        RecordBody::Flow(f) => Some(f),
        _ => None,
    };
    let flow_log = &topology.flow_logs[r.flow_log as usize];
    let rule = flow.and_then(|f| topology.rules.get(f.rule));
    let dash = b"-";
    match field {
        Field::Version => out.write_all(version),
        Field::ProjectId => out.write_all(port.project_id.as_bytes()),
        Field::InterfaceId => out.write_all(port.id.as_bytes()),
        Field::SrcAddr => match flow {
            Some(f) => write_ip(out, f.tuple.src, n),
            None => out.write_all(dash),
        },
        Field::DstAddr => match flow {
            Some(f) => write_ip(out, f.tuple.dst, n),
            None => out.write_all(dash),
        },
        Field::SrcPort => num(out, n, flow.map(|f| u64::from(f.tuple.src_port))),
        Field::DstPort => num(out, n, flow.map(|f| u64::from(f.tuple.dst_port))),
        Field::Protocol => num(out, n, flow.map(|f| u64::from(f.tuple.protocol.0))),
        Field::Packets | Field::Bytes => {
            let (p, b) = match &r.body {
                RecordBody::Flow(f) => (Some(f.packets), Some(f.bytes)),
                RecordBody::SkipData { packets, bytes } => (Some(*packets), Some(*bytes)),
                RecordBody::NoData => (None, None),
            };
            num(out, n, if field == Field::Packets { p } else { b })
        }
        Field::Start => num(out, n, Some(r.start)),
        Field::End => num(out, n, Some(r.end)),
        Field::Action => out.write_all(flow.map_or(&dash[..], |f| f.action.as_str().as_bytes())),
        Field::LogStatus => out.write_all(r.status().as_str().as_bytes()),
        Field::Direction => {
            out.write_all(flow.map_or(&dash[..], |f| f.direction.as_str().as_bytes()))
        }
        Field::TcpFlag => out.write_all(
            flow.and_then(|f| f.tcp_flag)
                .map_or(&dash[..], |t| t.as_str().as_bytes()),
        ),
        Field::RegionId => out.write_all(topology.region.as_bytes()),
        Field::AzId => out.write_all(port.az_id.as_bytes()),
        Field::VpcId => out.write_all(port.vpc_id.as_bytes()),
        Field::NetworkId => out.write_all(port.subnet_id.as_bytes()),
        Field::DecidedBy => out.write_all(rule.map_or(&dash[..], |r| r.stage.as_str().as_bytes())),
        Field::PolicyId => out.write_all(rule.map_or(&dash[..], |r| r.owner.as_bytes())),
        Field::RuleId => out.write_all(rule.map_or(&dash[..], |r| r.id.as_bytes())),
        Field::FlowLogId => out.write_all(flow_log.id.as_bytes()),
        Field::LogGroupId => out.write_all(flow_log.log_group_id.as_bytes()),
        Field::LogTopicId => out.write_all(flow_log.log_topic_id.as_bytes()),
    }
}

fn num(out: &mut impl Write, n: &mut itoa::Buffer, v: Option<u64>) -> io::Result<()> {
    match v {
        Some(v) => out.write_all(n.format(v).as_bytes()),
        None => out.write_all(b"-"),
    }
}

fn write_json(topology: &Topology, r: &FlowRecord, out: &mut impl Write) -> io::Result<()> {
    let port = &topology.ports[r.port as usize];
    let flow_log = &topology.flow_logs[r.flow_log as usize];
    let mut j = JsonRecord {
        version: 2,
        project_id: &port.project_id,
        interface_id: &port.id,
        srcaddr: None,
        dstaddr: None,
        srcport: None,
        dstport: None,
        protocol: None,
        packets: None,
        bytes: None,
        start: r.start,
        end: r.end,
        action: None,
        log_status: r.status().as_str(),
        direction: None,
        tcp_flag: None,
        region_id: &topology.region,
        az_id: &port.az_id,
        vpc_id: &port.vpc_id,
        network_id: &port.subnet_id,
        decided_by: None,
        policy_id: None,
        rule_id: None,
        flow_log_id: &flow_log.id,
        log_group_id: &flow_log.log_group_id,
        log_topic_id: &flow_log.log_topic_id,
    };
    match &r.body {
        RecordBody::Flow(f) => {
            j.srcaddr = Some(f.tuple.src);
            j.dstaddr = Some(f.tuple.dst);
            j.srcport = Some(f.tuple.src_port);
            j.dstport = Some(f.tuple.dst_port);
            j.protocol = Some(f.tuple.protocol.0);
            j.packets = Some(f.packets);
            j.bytes = Some(f.bytes);
            j.action = Some(f.action.as_str());
            j.direction = Some(f.direction.as_str());
            j.tcp_flag = f.tcp_flag.map(|t| t.as_str());
            if let Some(rule) = topology.rules.get(f.rule) {
                j.decided_by = Some(rule.stage.as_str());
                j.policy_id = Some(&rule.owner);
                j.rule_id = Some(&rule.id);
            }
        }
        RecordBody::SkipData { packets, bytes } => {
            j.packets = Some(*packets);
            j.bytes = Some(*bytes);
        }
        RecordBody::NoData => {}
    }
    serde_json::to_writer(&mut *out, &j).map_err(io::Error::other)?;
    out.write_all(b"\n")
}

/// Writes an address: IPv4 dotted quad without going through `fmt`, IPv6
/// in its RFC 5952 form (std's `Display`).
fn write_ip(out: &mut (impl Write + ?Sized), a: IpAddr, n: &mut itoa::Buffer) -> io::Result<()> {
    match a {
        IpAddr::V4(v4) => {
            let [a, b, c, d] = v4.octets();
            out.write_all(n.format(a).as_bytes())?;
            for o in [b, c, d] {
                out.write_all(b".")?;
                out.write_all(n.format(o).as_bytes())?;
            }
            Ok(())
        }
        v6 => write!(out, "{v6}"),
    }
}

#[cfg(test)]
mod tests;
