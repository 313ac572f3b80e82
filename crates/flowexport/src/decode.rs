//! Decoding export datagrams: NetFlow v5's fixed records, v9's and IPFIX's
//! templates and data sets.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use crate::fields::Element;

/// Templates a decoder keeps at most (over every exporter): past it, new
/// templates are refused, so a flood of made-up templates cannot grow
/// memory without bound.
pub const MOST_TEMPLATES: usize = 65_536;

const MS: i128 = 1_000_000;
const SECOND: i128 = 1_000_000_000;

/// The export protocol of a datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Version {
    /// NetFlow v5.
    V5,
    /// NetFlow v9.
    V9,
    /// IPFIX (version 10).
    Ipfix,
    /// sFlow version 5.
    Sflow,
}

impl Version {
    /// `netflow-v5`, `netflow-v9` or `ipfix`.
    pub fn as_str(self) -> &'static str {
        match self {
            Version::V5 => "netflow-v5",
            Version::V9 => "netflow-v9",
            Version::Ipfix => "ipfix",
            Version::Sflow => "sflow-v5",
        }
    }
}

/// Where an exporter observed a flow (IPFIX `flowDirection`): entering it
/// on its input interface, or leaving it on its output interface. An
/// exporter that observes both (Open vSwitch samples on input and output)
/// reports each packet twice, once each way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Observation {
    /// Observed entering the exporter (`flowDirection` 0).
    Ingress,
    /// Observed leaving it (`flowDirection` 1).
    Egress,
}

/// One flow of an export: what vpcflow needs of it, typed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExportedFlow {
    /// Source address.
    pub src: IpAddr,
    /// Destination address.
    pub dst: IpAddr,
    /// Source port (0 where the protocol has none).
    pub src_port: u16,
    /// Destination port (for ICMP, type × 256 + code, as NetFlow puts it).
    pub dst_port: u16,
    /// IP protocol number.
    pub protocol: u8,
    /// Packets.
    pub packets: u64,
    /// Layer-3 bytes.
    pub bytes: u64,
    /// OR of the TCP flags seen.
    pub tcp_flags: u8,
    /// Its first packet, nanoseconds since the Unix epoch.
    pub first_ns: u64,
    /// Its last packet.
    pub last_ns: u64,
    /// The exporter's input interface index, when exported.
    pub input_interface: Option<u32>,
    /// The exporter's output interface index, when exported.
    pub output_interface: Option<u32>,
    /// 1 if the packets were counted; N if they are an estimate from
    /// sampling 1 packet in N (sFlow), packets and bytes scaled by N.
    pub sampling_rate: u32,
    /// Where the exporter observed it, when the record says.
    pub observation: Option<Observation>,
}

/// What a datagram held.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Datagram {
    /// Its protocol.
    pub version: Version,
    /// Its sequence number: flows before it (v5, IPFIX: data records),
    /// or export packets before it (v9).
    pub sequence: u32,
    /// The observation domain (IPFIX) or source id (v9); v5's engine type
    /// and id; sFlow's sub-agent.
    pub domain: u32,
    /// When the exporter sent it (sFlow: when it was received),
    /// nanoseconds since the Unix epoch.
    pub export_ns: u64,
    /// Flows handed over.
    pub flows: u32,
    /// Data records (all of them, flows or options) — what IPFIX counts in
    /// its sequence numbers; sFlow's samples.
    pub data_records: u32,
    /// Records of data sets whose template is not known (yet): skipped.
    pub unknown_template_sets: u32,
    /// Flow records without both addresses (sFlow: samples of no IP
    /// packet): skipped.
    pub incomplete: u32,
    /// Templates learned, refreshed or withdrawn.
    pub templates: u32,
    /// What the sequence number says went missing since the exporter's
    /// previous datagram: data records (v5, IPFIX) or export packets (v9,
    /// sFlow).
    /// A sequence number that goes back (an exporter restarted, or a
    /// datagram reordered) starts the count again and loses nothing.
    pub lost: u32,
}

impl Datagram {
    pub(crate) fn new(version: Version, sequence: u32, domain: u32, export_ns: u64) -> Datagram {
        Datagram {
            version,
            sequence,
            domain,
            export_ns,
            flows: 0,
            data_records: 0,
            unknown_template_sets: 0,
            incomplete: 0,
            templates: 0,
            lost: 0,
        }
    }
}

/// Why a datagram (or the rest of it) could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExportError {
    /// Shorter than its header.
    #[error("datagram of {len} bytes is shorter than a {what} header")]
    ShortHeader {
        /// The header.
        what: &'static str,
        /// The datagram's length.
        len: usize,
    },
    /// Not NetFlow v5, v9, IPFIX or sFlow v5.
    #[error("version {0} is not NetFlow v5, v9, IPFIX (10) or sFlow v5")]
    Version(u32),
    /// A length field disagrees with the datagram.
    #[error("{what} length {len} disagrees with the {left} bytes left")]
    Length {
        /// Which length.
        what: &'static str,
        /// Its value.
        len: usize,
        /// The bytes there are.
        left: usize,
    },
    /// A template that cannot describe a record.
    #[error("template {id}: {why}")]
    Template {
        /// The template id.
        id: u16,
        /// What is wrong.
        why: &'static str,
    },
}

impl ExportError {
    /// A stable kebab-case name, for counters by reason.
    pub fn name(&self) -> &'static str {
        match self {
            ExportError::ShortHeader { .. } => "short-header",
            ExportError::Version(_) => "unknown-version",
            ExportError::Length { .. } => "bad-length",
            ExportError::Template { .. } => "bad-template",
        }
    }
}

/// Variable-length field (IPFIX).
const VARIABLE: u16 = 0xffff;

#[derive(Debug, Clone, Copy)]
struct Field {
    element: Element,
    len: u16,
}

#[derive(Debug, Clone)]
struct Template {
    fields: Vec<Field>,
    /// The least bytes a record takes (variable fields count 1).
    min_len: usize,
}

/// The scope of a template: exporter, protocol, domain, id.
type TemplateKey = (SocketAddr, Version, u32, u16);

/// Decodes datagrams, keeping each exporter's templates.
#[derive(Debug, Default)]
pub struct Decoder {
    templates: HashMap<TemplateKey, Template>,
    /// Per exporter and domain: when its uptime began (Unix ms), from an
    /// IPFIX options record's `systemInitTimeMilliseconds`.
    system_init: HashMap<(SocketAddr, u32), u64>,
    /// Per exporter, protocol and domain: the next sequence number.
    next_sequence: HashMap<(SocketAddr, Version, u32), u32>,
}

/// A cursor over big-endian bytes; every read checks the bounds.
pub(crate) struct Bytes<'a>(pub(crate) &'a [u8]);

impl<'a> Bytes<'a> {
    pub(crate) fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        Some(a)
    }
    pub(crate) fn u16(&mut self) -> Option<u16> {
        self.take(2).map(|b| u16::from_be_bytes([b[0], b[1]]))
    }
    pub(crate) fn u32(&mut self) -> Option<u32> {
        self.take(4)
            .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }
}

/// An unsigned big-endian number of 1 to 8 bytes (reduced-size encoding);
/// longer values keep their low 8 bytes.
fn uint(b: &[u8]) -> u64 {
    let b = if b.len() > 8 { &b[b.len() - 8..] } else { b };
    b.iter().fold(0u64, |n, &x| (n << 8) | u64::from(x))
}

fn clamp_ns(ns: i128) -> u64 {
    ns.clamp(0, i128::from(u64::MAX)) as u64
}

/// How a record's uptime milliseconds become Unix time.
#[derive(Debug, Clone, Copy)]
enum Uptime {
    /// The header's export time and the exporter's uptime then (NetFlow):
    /// an uptime is that far (as a wrapping 32-bit difference, so a
    /// counter that wrapped after 49.7 days still reads right) from it.
    Header { export_ns: i128, uptime_ms: u32 },
    /// When the uptime began (IPFIX `systemInitTimeMilliseconds`).
    Init { ns: i128 },
}

impl Uptime {
    fn at(self, ms: u64) -> u64 {
        match self {
            Uptime::Header {
                export_ns,
                uptime_ms,
            } => {
                let delta = (ms as u32).wrapping_sub(uptime_ms) as i32;
                clamp_ns(export_ns + i128::from(delta) * MS)
            }
            Uptime::Init { ns } => clamp_ns(ns + i128::from(ms) * MS),
        }
    }
}

/// A flow being read from one record, field by field.
#[derive(Default)]
struct Partial {
    src: Option<IpAddr>,
    dst: Option<IpAddr>,
    src_port: u16,
    dst_port: u16,
    protocol: u8,
    packets: Option<u64>,
    bytes: Option<u64>,
    packet_total: Option<u64>,
    byte_total: Option<u64>,
    tcp_flags: u8,
    icmp: Option<u16>,
    start_uptime: Option<u64>,
    end_uptime: Option<u64>,
    start_ms: Option<u64>,
    end_ms: Option<u64>,
    start_before_export_us: Option<u64>,
    end_before_export_us: Option<u64>,
    system_init_ms: Option<u64>,
    observation: Option<Observation>,
    input: Option<u32>,
    output: Option<u32>,
}

impl Partial {
    fn set(&mut self, e: Element, v: &[u8]) {
        let n = uint(v);
        match e {
            Element::Octets => self.bytes = Some(n),
            Element::Packets => self.packets = Some(n),
            Element::OctetTotal => self.byte_total = Some(n),
            Element::PacketTotal => self.packet_total = Some(n),
            Element::Protocol => self.protocol = n as u8,
            Element::TcpFlags => self.tcp_flags = n as u8,
            Element::SrcPort => self.src_port = n as u16,
            Element::DstPort => self.dst_port = n as u16,
            Element::SrcV4 if v.len() == 4 => {
                self.src = Some(Ipv4Addr::new(v[0], v[1], v[2], v[3]).into());
            }
            Element::DstV4 if v.len() == 4 => {
                self.dst = Some(Ipv4Addr::new(v[0], v[1], v[2], v[3]).into());
            }
            Element::SrcV6 | Element::DstV6 if v.len() == 16 => {
                let mut a = [0u8; 16];
                a.copy_from_slice(v);
                let a = Some(Ipv6Addr::from(a).into());
                if e == Element::SrcV6 {
                    self.src = a;
                } else {
                    self.dst = a;
                }
            }
            Element::IcmpTypeCode | Element::Icmp6TypeCode => self.icmp = Some(n as u16),
            Element::IcmpType => {
                self.icmp = Some(((n as u16) << 8) | (self.icmp.unwrap_or(0) & 0xff));
            }
            Element::IcmpCode => {
                self.icmp = Some((self.icmp.unwrap_or(0) & 0xff00) | (n as u16 & 0xff));
            }
            Element::InputInterface => self.input = Some(n as u32),
            Element::OutputInterface => self.output = Some(n as u32),
            Element::StartUptime => self.start_uptime = Some(n),
            Element::EndUptime => self.end_uptime = Some(n),
            Element::StartSeconds => self.start_ms = Some(n.saturating_mul(1000)),
            Element::EndSeconds => self.end_ms = Some(n.saturating_mul(1000)),
            Element::StartMillis => self.start_ms = Some(n),
            Element::EndMillis => self.end_ms = Some(n),
            Element::StartDeltaMicros => self.start_before_export_us = Some(n),
            Element::EndDeltaMicros => self.end_before_export_us = Some(n),
            Element::SystemInitMillis => self.system_init_ms = Some(n),
            Element::FlowDirection => {
                self.observation = match n {
                    0 => Some(Observation::Ingress),
                    1 => Some(Observation::Egress),
                    _ => None,
                };
            }
            _ => {}
        }
    }

    /// The flow, with times from the record's absolute times, else its
    /// times before the export, else its uptimes read with `uptime`, else
    /// the export time.
    fn flow(self, uptime: Option<Uptime>, export_ns: u64) -> Option<ExportedFlow> {
        let (src, dst) = (self.src?, self.dst?);
        let at = |abs_ms: Option<u64>, before_us: Option<u64>, up: Option<u64>| -> u64 {
            match (abs_ms, before_us, up, uptime) {
                (Some(ms), _, _, _) => clamp_ns(i128::from(ms) * MS),
                (None, Some(us), _, _) => clamp_ns(i128::from(export_ns) - i128::from(us) * 1_000),
                (None, None, Some(up), Some(clock)) => clock.at(up),
                _ => export_ns,
            }
        };
        let first_ns = at(
            self.start_ms,
            self.start_before_export_us,
            self.start_uptime,
        );
        let last_ns = at(self.end_ms, self.end_before_export_us, self.end_uptime).max(first_ns);
        let dst_port = match (self.protocol, self.icmp) {
            (1 | 58, Some(tc)) if self.dst_port == 0 => tc,
            _ => self.dst_port,
        };
        Some(ExportedFlow {
            src,
            dst,
            src_port: self.src_port,
            dst_port,
            protocol: self.protocol,
            packets: self.packets.or(self.packet_total).unwrap_or(0),
            bytes: self.bytes.or(self.byte_total).unwrap_or(0),
            tcp_flags: self.tcp_flags,
            first_ns,
            last_ns,
            input_interface: self.input,
            output_interface: self.output,
            sampling_rate: 1,
            observation: self.observation,
        })
    }
}

impl Decoder {
    /// A decoder with no templates.
    pub fn new() -> Decoder {
        Decoder::default()
    }

    /// Templates known, over every exporter.
    pub fn templates(&self) -> usize {
        self.templates.len()
    }

    /// Forgets what `exporter` said: its templates, start time and
    /// sequence numbers (its TCP session ended; RFC 7011 §8).
    pub fn forget(&mut self, exporter: SocketAddr) {
        self.templates.retain(|k, _| k.0 != exporter);
        self.system_init.retain(|k, _| k.0 != exporter);
        self.next_sequence.retain(|k, _| k.0 != exporter);
    }

    /// Decodes one datagram from `exporter`, received at `received_ns`
    /// (which only sFlow, having no clock of its own, uses), handing each
    /// flow to `out` as it is read. On an error, the flows before the
    /// fault were handed over.
    pub fn decode(
        &mut self,
        exporter: SocketAddr,
        data: &[u8],
        received_ns: u64,
        out: &mut dyn FnMut(&ExportedFlow),
    ) -> Result<Datagram, ExportError> {
        if data.len() < 4 {
            return Err(ExportError::ShortHeader {
                what: "NetFlow/IPFIX/sFlow",
                len: data.len(),
            });
        }
        let mut d = match u16::from_be_bytes([data[0], data[1]]) {
            5 => v5(data, out),
            9 => self.v9(exporter, data, out),
            10 => self.ipfix(exporter, data, out),
            // sFlow's version is 32 bits.
            0 => match u32::from_be_bytes([data[0], data[1], data[2], data[3]]) {
                5 => crate::sflow::sflow(data, received_ns, out),
                v => Err(ExportError::Version(v)),
            },
            v => Err(ExportError::Version(u32::from(v))),
        }?;
        let key = (exporter, d.version, d.domain);
        let advance = match d.version {
            Version::V9 | Version::Sflow => 1,
            Version::V5 | Version::Ipfix => d.data_records,
        };
        match self.next_sequence.get(&key) {
            Some(&expected) => {
                let gap = d.sequence.wrapping_sub(expected);
                // Ahead by less than half the space: lost; else it went back.
                if gap < 1 << 31 {
                    d.lost = gap;
                }
            }
            // The count starts at the first message with data records:
            // some exporters (Open vSwitch) number their template-only
            // messages from 1, not 0, and nothing was lost before.
            None if d.data_records == 0 && d.version == Version::Ipfix => return Ok(d),
            None => {}
        }
        self.next_sequence
            .insert(key, d.sequence.wrapping_add(advance));
        Ok(d)
    }

    fn v9(
        &mut self,
        exporter: SocketAddr,
        data: &[u8],
        out: &mut dyn FnMut(&ExportedFlow),
    ) -> Result<Datagram, ExportError> {
        let mut h = Bytes(data);
        let short = || ExportError::ShortHeader {
            what: "NetFlow v9",
            len: data.len(),
        };
        let _version = h.u16().ok_or_else(short)?;
        let _count = h.u16().ok_or_else(short)?;
        let uptime = h.u32().ok_or_else(short)?;
        let secs = h.u32().ok_or_else(short)?;
        let sequence = h.u32().ok_or_else(short)?;
        let domain = h.u32().ok_or_else(short)?;
        let export = i128::from(secs) * SECOND;
        let clock = Uptime::Header {
            export_ns: export,
            uptime_ms: uptime,
        };
        let mut d = Datagram::new(Version::V9, sequence, domain, clamp_ns(export));
        self.sets(exporter, h.0, &mut d, Some(clock), out)?;
        Ok(d)
    }

    fn ipfix(
        &mut self,
        exporter: SocketAddr,
        data: &[u8],
        out: &mut dyn FnMut(&ExportedFlow),
    ) -> Result<Datagram, ExportError> {
        let mut h = Bytes(data);
        let short = || ExportError::ShortHeader {
            what: "IPFIX",
            len: data.len(),
        };
        let _version = h.u16().ok_or_else(short)?;
        let len = usize::from(h.u16().ok_or_else(short)?);
        let secs = h.u32().ok_or_else(short)?;
        let sequence = h.u32().ok_or_else(short)?;
        let domain = h.u32().ok_or_else(short)?;
        if len < 16 || len > data.len() {
            return Err(ExportError::Length {
                what: "IPFIX message",
                len,
                left: data.len(),
            });
        }
        let mut d = Datagram::new(
            Version::Ipfix,
            sequence,
            domain,
            clamp_ns(i128::from(secs) * SECOND),
        );
        self.sets(exporter, &data[16..len], &mut d, None, out)?;
        Ok(d)
    }

    /// The sets (v9: flowsets) of a datagram after its header.
    fn sets(
        &mut self,
        exporter: SocketAddr,
        mut rest: &[u8],
        d: &mut Datagram,
        uptime: Option<Uptime>,
        out: &mut dyn FnMut(&ExportedFlow),
    ) -> Result<(), ExportError> {
        let ipfix = d.version == Version::Ipfix;
        // v9 may pad the datagram after its last flowset.
        while rest.len() >= 4 {
            let id = u16::from_be_bytes([rest[0], rest[1]]);
            let len = usize::from(u16::from_be_bytes([rest[2], rest[3]]));
            if len < 4 || len > rest.len() {
                return Err(ExportError::Length {
                    what: "set",
                    len,
                    left: rest.len(),
                });
            }
            let body = &rest[4..len];
            rest = &rest[len..];
            match (ipfix, id) {
                (false, 0) | (true, 2) => self.template_set(exporter, d, body, false)?,
                (false, 1) | (true, 3) => self.template_set(exporter, d, body, true)?,
                (_, 256..) => self.data_set(exporter, d, id, body, uptime, out),
                _ => {} // reserved set ids: skipped
            }
        }
        Ok(())
    }

    fn template_set(
        &mut self,
        exporter: SocketAddr,
        d: &mut Datagram,
        body: &[u8],
        options: bool,
    ) -> Result<(), ExportError> {
        let ipfix = d.version == Version::Ipfix;
        let mut b = Bytes(body);
        // A template record has at least its id and field count.
        while b.0.len() >= 4 {
            let id = b.u16().unwrap_or(0);
            let count = b.u16().unwrap_or(0);
            let key = (exporter, d.version, d.domain, id);
            if id < 256 {
                return Err(ExportError::Template {
                    id,
                    why: "ids below 256 are reserved",
                });
            }
            let fields = if options {
                if ipfix {
                    let _scope = b.u16().ok_or(ExportError::Template {
                        id,
                        why: "options template ends before its scope count",
                    })?;
                    usize::from(count)
                } else {
                    // v9: scope and option lengths in bytes, 4 per field.
                    let options_len = b.u16().ok_or(ExportError::Template {
                        id,
                        why: "options template ends before its lengths",
                    })?;
                    (usize::from(count) + usize::from(options_len)) / 4
                }
            } else {
                usize::from(count)
            };
            if ipfix && fields == 0 {
                // Withdrawal (RFC 7011 §8.1).
                if self.templates.remove(&key).is_some() {
                    d.templates += 1;
                }
                continue;
            }
            let mut t = Template {
                fields: Vec::with_capacity(fields),
                min_len: 0,
            };
            for _ in 0..fields {
                let (Some(raw), Some(len)) = (b.u16(), b.u16()) else {
                    return Err(ExportError::Template {
                        id,
                        why: "ends inside its field list",
                    });
                };
                let enterprise = ipfix && raw & 0x8000 != 0;
                if enterprise && b.u32().is_none() {
                    return Err(ExportError::Template {
                        id,
                        why: "ends inside an enterprise number",
                    });
                }
                if len == VARIABLE && !ipfix {
                    return Err(ExportError::Template {
                        id,
                        why: "NetFlow v9 has no variable-length fields",
                    });
                }
                t.min_len += if len == VARIABLE { 1 } else { usize::from(len) };
                t.fields.push(Field {
                    element: Element::of(raw & 0x7fff, enterprise),
                    len,
                });
            }
            if t.min_len == 0 {
                return Err(ExportError::Template {
                    id,
                    why: "its records would take no bytes",
                });
            }
            if self.templates.len() >= MOST_TEMPLATES && !self.templates.contains_key(&key) {
                return Err(ExportError::Template {
                    id,
                    why: "too many templates: refused",
                });
            }
            self.templates.insert(key, t);
            d.templates += 1;
        }
        Ok(())
    }

    fn data_set(
        &mut self,
        exporter: SocketAddr,
        d: &mut Datagram,
        id: u16,
        body: &[u8],
        uptime: Option<Uptime>,
        out: &mut dyn FnMut(&ExportedFlow),
    ) {
        // IPFIX: uptimes count from the exporter's start, which an options
        // record (in this datagram or an earlier one) tells.
        let mut uptime = uptime.or_else(|| {
            self.system_init
                .get(&(exporter, d.domain))
                .map(|&ms| Uptime::Init {
                    ns: i128::from(ms) * MS,
                })
        });
        let Some(t) = self.templates.get(&(exporter, d.version, d.domain, id)) else {
            d.unknown_template_sets += 1;
            return;
        };
        let mut b = Bytes(body);
        // Whatever is left shorter than a record is padding.
        'records: while b.0.len() >= t.min_len {
            let mut p = Partial::default();
            for f in &t.fields {
                let len = if f.len == VARIABLE {
                    match b.take(1).map(|x| x[0]) {
                        Some(255) => match b.u16() {
                            Some(n) => usize::from(n),
                            None => break 'records,
                        },
                        Some(n) => usize::from(n),
                        None => break 'records,
                    }
                } else {
                    usize::from(f.len)
                };
                let Some(v) = b.take(len) else {
                    break 'records;
                };
                p.set(f.element, v);
            }
            d.data_records += 1;
            if let Some(ms) = p.system_init_ms {
                // An options record telling when the exporter started.
                self.system_init.insert((exporter, d.domain), ms);
                uptime = Some(Uptime::Init {
                    ns: i128::from(ms) * MS,
                });
                continue;
            }
            if p.src.is_none() && p.dst.is_none() {
                continue; // an options record (statistics), not a flow
            }
            match p.flow(uptime, d.export_ns) {
                Some(flow) => {
                    d.flows += 1;
                    out(&flow);
                }
                None => d.incomplete += 1,
            }
        }
    }
}

/// NetFlow v5: a 24-byte header and `count` 48-byte records.
fn v5(data: &[u8], out: &mut dyn FnMut(&ExportedFlow)) -> Result<Datagram, ExportError> {
    const HEADER: usize = 24;
    const RECORD: usize = 48;
    if data.len() < HEADER {
        return Err(ExportError::ShortHeader {
            what: "NetFlow v5",
            len: data.len(),
        });
    }
    let u16_at = |i: usize| u16::from_be_bytes([data[i], data[i + 1]]);
    let u32_at = |i: usize| u32::from_be_bytes([data[i], data[i + 1], data[i + 2], data[i + 3]]);
    let count = usize::from(u16_at(2));
    if HEADER + count * RECORD > data.len() {
        return Err(ExportError::Length {
            what: "NetFlow v5 record count",
            len: count,
            left: (data.len() - HEADER) / RECORD,
        });
    }
    let export = i128::from(u32_at(8)) * SECOND + i128::from(u32_at(12));
    let clock = Uptime::Header {
        export_ns: export,
        uptime_ms: u32_at(4),
    };
    let mut d = Datagram::new(
        Version::V5,
        u32_at(16),
        u32::from(u16_at(20)),
        clamp_ns(export),
    );
    for i in 0..count {
        let r = &data[HEADER + i * RECORD..HEADER + (i + 1) * RECORD];
        let v4 = |o: usize| IpAddr::from(Ipv4Addr::new(r[o], r[o + 1], r[o + 2], r[o + 3]));
        let r16 = |o: usize| u16::from_be_bytes([r[o], r[o + 1]]);
        let r32 = |o: usize| u32::from_be_bytes([r[o], r[o + 1], r[o + 2], r[o + 3]]);
        let first_ns = clock.at(u64::from(r32(24)));
        let flow = ExportedFlow {
            src: v4(0),
            dst: v4(4),
            input_interface: Some(u32::from(r16(12))),
            output_interface: Some(u32::from(r16(14))),
            packets: u64::from(r32(16)),
            bytes: u64::from(r32(20)),
            first_ns,
            last_ns: clock.at(u64::from(r32(28))).max(first_ns),
            src_port: r16(32),
            dst_port: r16(34),
            tcp_flags: r[37],
            protocol: r[38],
            sampling_rate: 1,
            observation: None,
        };
        d.flows += 1;
        d.data_records += 1;
        out(&flow);
    }
    Ok(d)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exporter() -> SocketAddr {
        "127.0.0.1:9995".parse().unwrap()
    }

    fn collect(
        dec: &mut Decoder,
        data: &[u8],
    ) -> (Result<Datagram, ExportError>, Vec<ExportedFlow>) {
        let mut flows = Vec::new();
        let r = dec.decode(exporter(), data, 0, &mut |f| flows.push(*f));
        (r, flows)
    }

    /// An IPFIX message of `sets`.
    fn ipfix(sets: &[Vec<u8>]) -> Vec<u8> {
        let body: Vec<u8> = sets.concat();
        let mut m = Vec::new();
        m.extend(10u16.to_be_bytes());
        m.extend(((16 + body.len()) as u16).to_be_bytes());
        m.extend(1_700_000_000u32.to_be_bytes());
        m.extend(7u32.to_be_bytes());
        m.extend(1u32.to_be_bytes());
        m.extend(body);
        m
    }

    fn set(id: u16, body: &[u8]) -> Vec<u8> {
        let mut s = id.to_be_bytes().to_vec();
        s.extend(((4 + body.len()) as u16).to_be_bytes());
        s.extend(body);
        s
    }

    /// Template 256: src, dst (v4), ports, protocol, packets (4 bytes),
    /// octets (8 bytes), start/end milliseconds, and an enterprise
    /// variable-length element.
    fn template() -> Vec<u8> {
        let mut t = Vec::new();
        t.extend(256u16.to_be_bytes());
        t.extend(10u16.to_be_bytes());
        for (id, len) in [
            (8u16, 4u16),
            (12, 4),
            (7, 2),
            (11, 2),
            (4, 1),
            (2, 4),
            (1, 8),
            (152, 8),
            (153, 8),
        ] {
            t.extend(id.to_be_bytes());
            t.extend(len.to_be_bytes());
        }
        t.extend((0x8000u16 | 1).to_be_bytes());
        t.extend(VARIABLE.to_be_bytes());
        t.extend(29_305u32.to_be_bytes());
        t
    }

    fn record(src: [u8; 4], packets: u32, note: &[u8]) -> Vec<u8> {
        let mut r = Vec::new();
        r.extend(src);
        r.extend([10, 0, 0, 1]);
        r.extend(40_000u16.to_be_bytes());
        r.extend(443u16.to_be_bytes());
        r.push(6);
        r.extend(packets.to_be_bytes());
        r.extend((u64::from(packets) * 100).to_be_bytes());
        r.extend(1_700_000_000_000u64.to_be_bytes());
        r.extend(1_700_000_001_500u64.to_be_bytes());
        r.push(note.len() as u8);
        r.extend(note);
        r
    }

    #[test]
    fn ipfix_data_is_decoded_once_its_template_is_known() {
        let mut dec = Decoder::new();
        let data = set(256, &record([192, 0, 2, 1], 3, b"x"));
        // Before the template: skipped, counted.
        let (r, flows) = collect(&mut dec, &ipfix(std::slice::from_ref(&data)));
        assert_eq!(r.unwrap().unknown_template_sets, 1);
        assert!(flows.is_empty());
        // Template and two records (one with a longer variable field) and padding.
        let mut two = record([192, 0, 2, 1], 3, b"x");
        two.extend(record([192, 0, 2, 2], 5, b"longer note"));
        two.extend([0, 0, 0]);
        let (r, flows) = collect(&mut dec, &ipfix(&[set(2, &template()), set(256, &two)]));
        let d = r.unwrap();
        assert_eq!((d.templates, d.flows, d.sequence, d.domain), (1, 2, 7, 1));
        assert_eq!(flows[1].src, IpAddr::from([192, 0, 2, 2]));
        assert_eq!((flows[1].packets, flows[1].bytes), (5, 500));
        assert_eq!((flows[0].dst_port, flows[0].protocol), (443, 6));
        assert_eq!(flows[0].first_ns, 1_700_000_000_000_000_000);
        assert_eq!(flows[0].last_ns, 1_700_000_001_500_000_000);
        // Withdrawn: unknown again.
        let mut withdraw = 256u16.to_be_bytes().to_vec();
        withdraw.extend(0u16.to_be_bytes());
        let (r, _) = collect(&mut dec, &ipfix(&[set(2, &withdraw), data]));
        assert_eq!(r.unwrap().unknown_template_sets, 1);
        assert_eq!(dec.templates(), 0);
    }

    #[test]
    fn open_vswitch_style_records_give_observation_icmp_and_times_before_export() {
        // ICMP type and code apart, where the flow was observed, its times
        // as microseconds before the export; templates numbered from 1.
        let mut t = 300u16.to_be_bytes().to_vec();
        t.extend(10u16.to_be_bytes());
        for (id, len) in [
            (8u16, 4u16),
            (12, 4),
            (4, 1),
            (2, 8),
            (1, 8),
            (61, 1),
            (176, 1),
            (177, 1),
            (158, 4),
            (159, 4),
        ] {
            t.extend(id.to_be_bytes());
            t.extend(len.to_be_bytes());
        }
        let mut r = vec![10, 9, 0, 1, 10, 9, 0, 2, 1];
        r.extend(5u64.to_be_bytes());
        r.extend(420u64.to_be_bytes());
        r.extend([1, 8, 0]);
        r.extend(3_000_000u32.to_be_bytes());
        r.extend(2_000_000u32.to_be_bytes());
        let mut dec = Decoder::new();
        let mut templates = ipfix(&[set(2, &t)]);
        templates[8..12].copy_from_slice(&1u32.to_be_bytes());
        assert_eq!(collect(&mut dec, &templates).0.unwrap().lost, 0);
        let mut data = ipfix(&[set(300, &r)]);
        data[8..12].copy_from_slice(&2u32.to_be_bytes());
        let (d, flows) = collect(&mut dec, &data);
        assert_eq!(d.unwrap().lost, 0, "no data record came before");
        let f = flows[0];
        assert_eq!((f.protocol, f.dst_port, f.packets), (1, 0x0800, 5));
        assert_eq!(f.observation, Some(Observation::Egress));
        assert_eq!(f.first_ns, 1_699_999_997_000_000_000);
        assert_eq!(f.last_ns, 1_699_999_998_000_000_000);
        // The next message should say 3: one that says 5 lost two.
        data[8..12].copy_from_slice(&5u32.to_be_bytes());
        assert_eq!(collect(&mut dec, &data).0.unwrap().lost, 2);
    }

    #[test]
    fn netflow_v5_times_are_the_exporters_uptime_made_absolute() {
        let mut m = vec![0u8; 24 + 48];
        m[0..2].copy_from_slice(&5u16.to_be_bytes());
        m[2..4].copy_from_slice(&1u16.to_be_bytes());
        m[4..8].copy_from_slice(&10_000u32.to_be_bytes()); // uptime 10 s
        m[8..12].copy_from_slice(&1_700_000_100u32.to_be_bytes());
        m[16..20].copy_from_slice(&42u32.to_be_bytes());
        let r = &mut m[24..];
        r[0..4].copy_from_slice(&[192, 0, 2, 9]);
        r[4..8].copy_from_slice(&[10, 0, 0, 1]);
        r[16..20].copy_from_slice(&4u32.to_be_bytes());
        r[20..24].copy_from_slice(&240u32.to_be_bytes());
        r[24..28].copy_from_slice(&4_000u32.to_be_bytes()); // 6 s before export
        r[28..32].copy_from_slice(&9_000u32.to_be_bytes());
        r[34..36].copy_from_slice(&22u16.to_be_bytes());
        r[37] = 0x12;
        r[38] = 6;
        let (d, flows) = collect(&mut Decoder::new(), &m);
        assert_eq!(d.unwrap().sequence, 42);
        let f = flows[0];
        assert_eq!(f.first_ns, 1_700_000_094_000_000_000);
        assert_eq!(f.last_ns, 1_700_000_099_000_000_000);
        assert_eq!(
            (f.packets, f.bytes, f.dst_port, f.tcp_flags),
            (4, 240, 22, 0x12)
        );
        // The next datagram of the exporter should say sequence 43: one
        // that says 45 lost two flows; one that goes back lost nothing.
        let mut dec = Decoder::new();
        assert_eq!(collect(&mut dec, &m).0.unwrap().lost, 0);
        m[16..20].copy_from_slice(&45u32.to_be_bytes());
        assert_eq!(collect(&mut dec, &m).0.unwrap().lost, 2);
        m[16..20].copy_from_slice(&7u32.to_be_bytes());
        assert_eq!(collect(&mut dec, &m).0.unwrap().lost, 0);
        // A count past the datagram is refused, naming it.
        m[2..4].copy_from_slice(&2u16.to_be_bytes());
        let e = collect(&mut Decoder::new(), &m).0.unwrap_err();
        assert_eq!(e.name(), "bad-length");
        assert!(e.to_string().contains("record count"), "{e}");
    }

    #[test]
    fn bad_datagrams_are_named_errors() {
        let mut dec = Decoder::new();
        assert_eq!(
            collect(&mut dec, &[0, 0, 0]).0.unwrap_err().name(),
            "short-header"
        );
        assert_eq!(
            collect(&mut dec, &[0, 7, 0, 0]).0.unwrap_err(),
            ExportError::Version(7)
        );
        let mut m = ipfix(&[set(2, &template())]);
        m.truncate(m.len() - 3);
        assert_eq!(collect(&mut dec, &m).0.unwrap_err().name(), "bad-length");
        let bad = ipfix(&[set(2, &[0, 5, 0, 1, 0, 8, 0, 4])]);
        assert!(
            collect(&mut dec, &bad)
                .0
                .unwrap_err()
                .to_string()
                .contains("reserved")
        );
    }

    proptest::proptest! {
        #[test]
        fn no_input_panics(data in proptest::collection::vec(proptest::num::u8::ANY, 0..600)) {
            let mut dec = Decoder::new();
            let _ = dec.decode(exporter(), &data, 0, &mut |_| {});
            // With a known template, random data sets too.
            let _ = dec.decode(exporter(), &ipfix(&[set(2, &template())]), 0, &mut |_| {});
            let mut m = data.clone();
            m.splice(0..0, ipfix(&[]).into_iter().take(16));
            let len = m.len().min(65_535) as u16;
            m[2..4].copy_from_slice(&len.to_be_bytes());
            let _ = dec.decode(exporter(), &m, 0, &mut |_| {});
            // And as sFlow samples.
            let mut m = crate::sflow::tests::datagram(1, &[]);
            m.extend(&data);
            let _ = dec.decode(exporter(), &m, 0, &mut |_| {});
        }
    }
}
