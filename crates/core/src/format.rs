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

/// Writes one record as one line (see [`append_record`]).
pub fn write_record(
    format: &Format,
    topology: &Topology,
    r: &FlowRecord,
    out: &mut impl Write,
) -> io::Result<()> {
    let mut line = Vec::with_capacity(256);
    append_record(format, topology, r, &mut line);
    out.write_all(&line)
}

/// Appends one record as one line to `buf`: the writers' common core, into
/// memory (which cannot fail), so that a sink hands its output many lines
/// at a time rather than a field at a time.
pub fn append_record(format: &Format, topology: &Topology, r: &FlowRecord, buf: &mut Vec<u8>) {
    if let Format::Aws(fields) = format {
        return append_aws(fields, topology, r, buf);
    }
    let Some(fields) = format.fields() else {
        return append_json(topology, r, buf);
    };
    let version: &[u8] = if *format == Format::V1 { b"1" } else { b"2" };
    for (i, field) in fields.iter().enumerate() {
        if i > 0 {
            buf.push(b' ');
        }
        append_field(*field, version, topology, r, buf);
    }
    buf.push(b'\n');
}

/// Writes records as lines of one format, byte for byte as
/// [`append_record`] does, faster for a window's records: those come port
/// by port, so the fields of a record's port, flow log and window
/// ([`Field::of_context`]: the interface, project, VPC, times...) are
/// rendered once per run of records that share them and copied after.
///
/// What it remembers is one window's: call [`LineWriter::new_window`]
/// before each window's records (the topology may have changed since).
#[derive(Debug, Clone)]
pub struct LineWriter {
    format: Format,
    /// The format's fields as runs: adjacent context fields rendered as one
    /// text (separators included), or one field of the record's own.
    plan: Vec<Run>,
    /// The (port, flow log, start, end) whose context `context` holds.
    context_of: Option<(u32, u32, u64, u64)>,
    /// The context runs' texts, one after another, and where each ends.
    context: Vec<u8>,
    context_ends: Vec<usize>,
}

#[derive(Debug, Clone, Copy)]
enum Run {
    /// Fields `from..to` of the format, all of the context.
    Context(usize, usize),
    /// A field of the record's own.
    Own(Field),
}

impl LineWriter {
    /// A writer of `format`'s lines.
    pub fn new(format: Format) -> LineWriter {
        let mut plan = Vec::new();
        for (i, f) in format.fields().unwrap_or_default().iter().enumerate() {
            match plan.last_mut() {
                Some(Run::Context(_, to)) if f.of_context() => *to = i + 1,
                _ if f.of_context() => plan.push(Run::Context(i, i + 1)),
                _ => plan.push(Run::Own(*f)),
            }
        }
        LineWriter {
            format,
            plan,
            context_of: None,
            context: Vec::new(),
            context_ends: Vec::new(),
        }
    }

    /// Forgets the last window's context: the next records are another's.
    pub fn new_window(&mut self) {
        self.context_of = None;
    }

    /// Appends `r` as one line to `buf` (see [`append_record`]).
    pub fn append(&mut self, topology: &Topology, r: &FlowRecord, buf: &mut Vec<u8>) {
        let Some(fields) = self.format.fields() else {
            return append_record(&self.format, topology, r, buf);
        };
        let version: &[u8] = if self.format == Format::V1 {
            b"1"
        } else {
            b"2"
        };
        let key = (r.port, r.flow_log, r.start, r.end);
        if self.context_of != Some(key) {
            self.context.clear();
            self.context_ends.clear();
            for run in &self.plan {
                if let Run::Context(from, to) = *run {
                    for (i, f) in fields[from..to].iter().enumerate() {
                        if i > 0 {
                            self.context.push(b' ');
                        }
                        append_field(*f, version, topology, r, &mut self.context);
                    }
                    self.context_ends.push(self.context.len());
                }
            }
            self.context_of = Some(key);
        }
        let (mut begin, mut ends) = (0, self.context_ends.iter());
        for (i, run) in self.plan.iter().enumerate() {
            if i > 0 {
                buf.push(b' ');
            }
            match *run {
                Run::Context(..) => {
                    let end = ends.next().copied().unwrap_or(begin);
                    buf.extend_from_slice(&self.context[begin..end]);
                    begin = end;
                }
                Run::Own(f) => append_field(f, version, topology, r, buf),
            }
        }
        buf.push(b'\n');
    }
}

fn append_field(
    field: Field,
    version: &[u8],
    topology: &Topology,
    r: &FlowRecord,
    buf: &mut Vec<u8>,
) {
    if field == Field::Version {
        return buf.extend_from_slice(version);
    }
    match value(field, topology, r) {
        Value::Absent => buf.push(b'-'),
        Value::Number(v) => push_number(buf, v),
        Value::Text(t) => buf.extend_from_slice(t.as_bytes()),
        Value::Address(a) => push_ip(buf, a),
    }
}

/// One AWS line.
fn append_aws(fields: &[AwsField], topology: &Topology, r: &FlowRecord, buf: &mut Vec<u8>) {
    let version = fields.iter().map(|f| f.version).max().unwrap_or(2);
    let version = [b'0' + version];
    for (i, f) in fields.iter().enumerate() {
        if i > 0 {
            buf.push(b' ');
        }
        match f.value {
            AwsValue::Version => buf.extend_from_slice(&version),
            AwsValue::Field(field) => append_field(field, &version, topology, r, buf),
            AwsValue::Type => buf.extend_from_slice(match &r.body {
                RecordBody::Flow(flow) if flow.tuple.src.is_ipv6() => b"IPv6",
                RecordBody::Flow(_) => b"IPv4",
                _ => b"-",
            }),
            AwsValue::Absent => buf.push(b'-'),
        }
    }
    buf.push(b'\n');
}

/// One JSON object: every field under its seed name, numbers as numbers,
/// absent values as `null`.
fn append_json(topology: &Topology, r: &FlowRecord, buf: &mut Vec<u8>) {
    for (i, spec) in FIELDS.iter().enumerate() {
        buf.extend_from_slice(if i == 0 { b"{\"" } else { b",\"" });
        buf.extend_from_slice(spec.name.as_bytes());
        buf.extend_from_slice(b"\":");
        match value(spec.field, topology, r) {
            Value::Absent => buf.extend_from_slice(b"null"),
            Value::Number(v) => push_number(buf, v),
            Value::Text(t) => {
                // A string always serialises, into memory.
                let _ = serde_json::to_writer(&mut *buf, t);
            }
            Value::Address(a) => {
                buf.push(b'"');
                push_ip(buf, a);
                buf.push(b'"');
            }
        }
    }
    buf.extend_from_slice(b"}\n");
}

/// Two decimal digits of every number below 100, in order.
const DIGIT_PAIRS: &[u8; 200] = b"\
    0001020304050607080910111213141516171819\
    2021222324252627282930313233343536373839\
    4041424344454647484950515253545556575859\
    6061626364656667686970717273747576777879\
    8081828384858687888990919293949596979899";

/// Appends `v` in decimal, two digits at a time (itoa's method), with
/// no formatter and the common small numbers (ports, protocols, packet
/// counts) in one or two stores.
pub fn push_number(buf: &mut Vec<u8>, v: u64) {
    if v < 10 {
        return buf.push(b'0' + v as u8);
    }
    if v < 100 {
        let i = v as usize * 2;
        return buf.extend_from_slice(&DIGIT_PAIRS[i..i + 2]);
    }
    let mut digits = [0u8; 20];
    let at = decimal_into(&mut digits, v);
    buf.extend_from_slice(&digits[at..]);
}

/// Writes `v` at the end of `out`, returning where its digits start.
fn decimal_into(out: &mut [u8; 20], mut v: u64) -> usize {
    let mut at = out.len();
    while v >= 100 && at >= 2 {
        let i = (v % 100) as usize * 2;
        v /= 100;
        at -= 2;
        out[at..at + 2].copy_from_slice(&DIGIT_PAIRS[i..i + 2]);
    }
    if v >= 10 && at >= 2 {
        let i = v as usize * 2;
        at -= 2;
        out[at..at + 2].copy_from_slice(&DIGIT_PAIRS[i..i + 2]);
    } else if at >= 1 {
        at -= 1;
        out[at] = b'0' + v as u8;
    }
    at
}

/// Appends an address: IPv4 as a dotted quad, IPv6 in its RFC 5952 form
/// (std's `Display`). The one text form of an address, for the text
/// formats, JSON and the log store's columns.
pub fn push_ip(buf: &mut Vec<u8>, a: IpAddr) {
    match a {
        IpAddr::V4(v4) => {
            // Built backwards in one buffer, appended in one copy.
            let mut quad = [0u8; 15];
            let mut at = quad.len();
            for (i, o) in v4.octets().into_iter().rev().enumerate() {
                if i > 0 {
                    at -= 1;
                    quad[at] = b'.';
                }
                let mut o = o;
                loop {
                    at -= 1;
                    quad[at] = b'0' + o % 10;
                    o /= 10;
                    if o == 0 {
                        break;
                    }
                }
            }
            buf.extend_from_slice(&quad[at..]);
        }
        // Writing into memory cannot fail.
        v6 => {
            let _ = write!(buf, "{v6}");
        }
    }
}

#[cfg(test)]
mod tests;
