//! Record formats: the seed's v1 and v2 text lines and JSON lines.
//!
//! Text: fields separated by single spaces in the seed's table order, `-` for
//! a missing value, IPv6 in RFC 5952 form (SPEC §2). JSON: one object per
//! line with the seed's field names, numbers as numbers, missing values as
//! `null`, plus the extension field `flow-log-id`.

use std::io::{self, Write};

use serde::Serialize;

use crate::record::{FlowRecord, RecordBody};
use crate::topology::Topology;

/// An output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Version 1 text, 14 fields.
    V1,
    /// Version 2 text, 20 fields.
    V2,
    /// JSON lines with every v2 field.
    Json,
}

impl Format {
    /// Parses `v1`, `v2` or `json`.
    pub fn parse(s: &str) -> Option<Format> {
        match s {
            "v1" => Some(Format::V1),
            "v2" => Some(Format::V2),
            "json" => Some(Format::Json),
            _ => None,
        }
    }
}

/// Field names of version 1, in order.
pub const V1_FIELDS: [&str; 14] = [
    "version",
    "project-id",
    "interface-id",
    "srcaddr",
    "dstaddr",
    "srcport",
    "dstport",
    "protocol",
    "packets",
    "bytes",
    "start",
    "end",
    "action",
    "log-status",
];

/// Field names version 2 adds after version 1's.
pub const V2_EXTRA_FIELDS: [&str; 6] = [
    "direction",
    "tcp-flag",
    "region-id",
    "az-id",
    "vpc-id",
    "network-id",
];

/// Writes the field-name line (`--header`); JSON has none.
pub fn write_header(format: Format, out: &mut impl Write) -> io::Result<()> {
    match format {
        Format::V1 => writeln!(out, "{}", V1_FIELDS.join(" ")),
        Format::V2 => writeln!(out, "{} {}", V1_FIELDS.join(" "), V2_EXTRA_FIELDS.join(" ")),
        Format::Json => Ok(()),
    }
}

#[derive(Serialize)]
struct JsonRecord<'a> {
    version: u8,
    #[serde(rename = "project-id")]
    project_id: &'a str,
    #[serde(rename = "interface-id")]
    interface_id: &'a str,
    srcaddr: Option<std::net::IpAddr>,
    dstaddr: Option<std::net::IpAddr>,
    srcport: Option<u16>,
    dstport: Option<u16>,
    protocol: Option<u8>,
    packets: Option<u64>,
    bytes: Option<u64>,
    start: u64,
    end: u64,
    action: Option<&'static str>,
    #[serde(rename = "log-status")]
    log_status: &'static str,
    direction: Option<&'static str>,
    #[serde(rename = "tcp-flag")]
    tcp_flag: Option<&'static str>,
    #[serde(rename = "region-id")]
    region_id: &'a str,
    #[serde(rename = "az-id")]
    az_id: &'a str,
    #[serde(rename = "vpc-id")]
    vpc_id: &'a str,
    #[serde(rename = "network-id")]
    network_id: &'a str,
    #[serde(rename = "flow-log-id")]
    flow_log_id: &'a str,
}

/// Writes one record as one line.
pub fn write_record(
    format: Format,
    topology: &Topology,
    r: &FlowRecord,
    out: &mut impl Write,
) -> io::Result<()> {
    let port = &topology.ports[r.port as usize];
    if format == Format::Json {
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
            flow_log_id: &topology.flow_logs[r.flow_log as usize].id,
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
            }
            RecordBody::SkipData { packets, bytes } => {
                j.packets = Some(*packets);
                j.bytes = Some(*bytes);
            }
            RecordBody::NoData => {}
        }
        serde_json::to_writer(&mut *out, &j).map_err(io::Error::other)?;
        return out.write_all(b"\n");
    }
    let mut n = itoa::Buffer::new();
    out.write_all(if format == Format::V1 { b"1 " } else { b"2 " })?;
    out.write_all(port.project_id.as_bytes())?;
    out.write_all(b" ")?;
    out.write_all(port.id.as_bytes())?;
    match &r.body {
        RecordBody::Flow(f) => {
            out.write_all(b" ")?;
            write_ip(out, f.tuple.src, &mut n)?;
            out.write_all(b" ")?;
            write_ip(out, f.tuple.dst, &mut n)?;
            for v in [
                u64::from(f.tuple.src_port),
                u64::from(f.tuple.dst_port),
                u64::from(f.tuple.protocol.0),
                f.packets,
                f.bytes,
                r.start,
                r.end,
            ] {
                out.write_all(b" ")?;
                out.write_all(n.format(v).as_bytes())?;
            }
            out.write_all(b" ")?;
            out.write_all(f.action.as_str().as_bytes())?;
            out.write_all(b" OK")?;
        }
        RecordBody::NoData => {
            out.write_all(b" - - - - - - - ")?;
            out.write_all(n.format(r.start).as_bytes())?;
            out.write_all(b" ")?;
            out.write_all(n.format(r.end).as_bytes())?;
            out.write_all(b" - NODATA")?;
        }
        RecordBody::SkipData { packets, bytes } => {
            out.write_all(b" - - - - - ")?;
            for v in [*packets, *bytes, r.start, r.end] {
                out.write_all(n.format(v).as_bytes())?;
                out.write_all(b" ")?;
            }
            out.write_all(b"- SKIPDATA")?;
        }
    }
    if format == Format::V2 {
        let (direction, tcp_flag) = match &r.body {
            RecordBody::Flow(f) => (f.direction.as_str(), f.tcp_flag.map_or("-", |t| t.as_str())),
            _ => ("-", "-"),
        };
        for field in [
            direction,
            tcp_flag,
            &topology.region,
            &port.az_id,
            &port.vpc_id,
            &port.subnet_id,
        ] {
            out.write_all(b" ")?;
            out.write_all(field.as_bytes())?;
        }
    }
    out.write_all(b"\n")
}

/// Writes an address: IPv4 dotted quad without going through `fmt`, IPv6
/// in its RFC 5952 form (std's `Display`).
fn write_ip(out: &mut impl Write, a: std::net::IpAddr, n: &mut itoa::Buffer) -> io::Result<()> {
    match a {
        std::net::IpAddr::V4(v4) => {
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
