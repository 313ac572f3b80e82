//! Record formats: the seed's v1 and v2 text lines, custom field lists,
//! JSON lines, and the other big cloud's lines ([`AWS_FIELDS`]).
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

mod aws;

pub use aws::{AWS_DEFAULT, AWS_FIELDS, AwsField, AwsValue, aws_field};

use crate::record::{FlowRecord, RecordBody};
use crate::schema::{FIELDS, Value, value};
pub use crate::schema::{Field, V1_FIELDS, V2_FIELDS};
use crate::topology::Topology;

/// An output format.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Format {
    /// Version 1 text, 14 fields.
    V1,
    /// Version 2 text, 20 fields.
    V2,
    /// Text with the fields given, in their order.
    Custom(Vec<Field>),
    /// The other big cloud's lines: its field names, in the order given
    /// (`aws`: its default format), version the highest among them.
    Aws(Vec<AwsField>),
    /// JSON lines with every field.
    Json,
}

/// A format string that names no format or an unknown field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FormatError {
    /// Not v1, v2, json, custom:... or aws[:...]
    #[error("`{0}` is not a format: use v1, v2, json, custom:FIELD,FIELD,... or aws[:FIELD,...]")]
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
    /// Parses `v1`, `v2`, `json`, `custom:FIELD,FIELD,...`, `aws` or
    /// `aws:FIELD,FIELD,...` (AWS names).
    pub fn parse(s: &str) -> Result<Format, FormatError> {
        let aws_list = |names: &mut dyn Iterator<Item = &str>| {
            names
                .map(|f| {
                    aws_field(f.trim()).ok_or_else(|| FormatError::UnknownField {
                        field: f.trim().to_string(),
                        known: AWS_FIELDS
                            .iter()
                            .map(|a| a.name)
                            .collect::<Vec<_>>()
                            .join(","),
                    })
                })
                .collect::<Result<Vec<_>, _>>()
                .map(Format::Aws)
        };
        match s {
            "v1" => Ok(Format::V1),
            "v2" => Ok(Format::V2),
            "json" => Ok(Format::Json),
            "aws" => aws_list(&mut AWS_DEFAULT.iter().copied()),
            _ if s.starts_with("aws:") => aws_list(&mut s["aws:".len()..].split(',')),
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

    /// The text fields of this format; `None` for JSON and AWS lines.
    pub fn fields(&self) -> Option<&[Field]> {
        match self {
            Format::V1 => Some(V1_FIELDS),
            Format::V2 => Some(V2_FIELDS),
            Format::Custom(f) => Some(f),
            Format::Json | Format::Aws(_) => None,
        }
    }
}

/// Writes the field-name line (`--header`); JSON has none.
pub fn write_header(format: &Format, out: &mut impl Write) -> io::Result<()> {
    if let Format::Aws(fields) = format {
        let names: Vec<&str> = fields.iter().map(|f| f.name).collect();
        return writeln!(out, "{}", names.join(" "));
    }
    match format.fields() {
        Some(fields) => {
            let names: Vec<&str> = fields.iter().map(|f| f.name()).collect();
            writeln!(out, "{}", names.join(" "))
        }
        None => Ok(()),
    }
}

/// Writes one record as one line.
pub fn write_record(
    format: &Format,
    topology: &Topology,
    r: &FlowRecord,
    out: &mut impl Write,
) -> io::Result<()> {
    if let Format::Aws(fields) = format {
        return write_aws(fields, topology, r, out);
    }
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
    if field == Field::Version {
        return out.write_all(version);
    }
    match value(field, topology, r) {
        Value::Absent => out.write_all(b"-"),
        Value::Number(v) => out.write_all(n.format(v).as_bytes()),
        Value::Text(t) => out.write_all(t.as_bytes()),
        Value::Address(a) => write_ip(out, a, n),
    }
}

/// One AWS line.
fn write_aws(
    fields: &[AwsField],
    topology: &Topology,
    r: &FlowRecord,
    out: &mut impl Write,
) -> io::Result<()> {
    let mut n = itoa::Buffer::new();
    let version = fields.iter().map(|f| f.version).max().unwrap_or(2);
    let version = [b'0' + version];
    for (i, f) in fields.iter().enumerate() {
        if i > 0 {
            out.write_all(b" ")?;
        }
        match f.value {
            AwsValue::Version => out.write_all(&version)?,
            AwsValue::Field(field) => write_field(field, &version, topology, r, out, &mut n)?,
            AwsValue::Type => out.write_all(match &r.body {
                RecordBody::Flow(flow) if flow.tuple.src.is_ipv6() => b"IPv6",
                RecordBody::Flow(_) => b"IPv4",
                _ => b"-",
            })?,
            AwsValue::Absent => out.write_all(b"-")?,
        }
    }
    out.write_all(b"\n")
}

/// One JSON object: every field under its seed name, numbers as numbers,
/// absent values as `null`.
fn write_json(topology: &Topology, r: &FlowRecord, out: &mut impl Write) -> io::Result<()> {
    let mut n = itoa::Buffer::new();
    for (i, spec) in FIELDS.iter().enumerate() {
        out.write_all(if i == 0 { b"{\"" } else { b",\"" })?;
        out.write_all(spec.name.as_bytes())?;
        out.write_all(b"\":")?;
        match value(spec.field, topology, r) {
            Value::Absent => out.write_all(b"null")?,
            Value::Number(v) => out.write_all(n.format(v).as_bytes())?,
            Value::Text(t) => serde_json::to_writer(&mut *out, t).map_err(io::Error::other)?,
            Value::Address(a) => {
                out.write_all(b"\"")?;
                write_ip(out, a, &mut n)?;
                out.write_all(b"\"")?;
            }
        }
    }
    out.write_all(b"}\n")
}

/// Writes an address: IPv4 dotted quad without going through `fmt`, IPv6
/// in its RFC 5952 form (std's `Display`). The one text form of an address,
/// for the text formats, JSON and the log store's columns.
pub fn write_ip(
    out: &mut (impl Write + ?Sized),
    a: IpAddr,
    n: &mut itoa::Buffer,
) -> io::Result<()> {
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
