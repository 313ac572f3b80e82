//! Encoding flow records as IPFIX (RFC 7011) messages for the collectors
//! people run (nfdump, goflow2, Akvorado, ElastiFlow, ntopng).
//!
//! Two templates, one for IPv4 and one for IPv6 flows, with IANA's
//! elements for what IANA has (addresses, ports, protocol, TCP flags,
//! `packetDeltaCount`, `octetDeltaCount`, `flowStartMilliseconds`,
//! `flowEndMilliseconds` (the record's window), `flowDirection`,
//! `forwardingStatus`) and enterprise
//! elements ([`ENTERPRISE`]) for the rest: the port (`interface-id`), the
//! flow log, `log-status`, and the check and rule that decided.

use std::net::IpAddr;

/// The private enterprise number of vpcflow's own elements: 32473, the one
/// RFC 5612 sets aside for documentation, until vpcflow has its own.
pub const ENTERPRISE: u32 = 32_473;

/// vpcflow's enterprise elements, by number.
pub const ENTERPRISE_ELEMENTS: [(u16, &str); 6] = [
    (1, "interface-id"),
    (2, "flow-log-id"),
    (3, "log-status"),
    (4, "decided-by"),
    (5, "policy-id"),
    (6, "rule-id"),
];

/// The template ids of IPv4 and IPv6 flows.
pub const TEMPLATE_V4: u16 = 256;
/// See [`TEMPLATE_V4`].
pub const TEMPLATE_V6: u16 = 257;

const HEADER: usize = 16;
const VARIABLE: u16 = 0xffff;

/// One flow record as IPFIX carries it.
#[derive(Debug, Clone, Copy)]
pub struct IpfixRecord<'a> {
    /// Source address.
    pub src: IpAddr,
    /// Destination address (the same family as `src`).
    pub dst: IpAddr,
    /// Source port.
    pub src_port: u16,
    /// Destination port.
    pub dst_port: u16,
    /// IP protocol.
    pub protocol: u8,
    /// TCP flags (`tcpControlBits`).
    pub tcp_flags: u8,
    /// Packets.
    pub packets: u64,
    /// Bytes.
    pub bytes: u64,
    /// Window start (Unix seconds).
    pub start: u64,
    /// Window end.
    pub end: u64,
    /// Whether the flow came in at its port (else left it).
    pub ingress: bool,
    /// ACCEPT (forwarded) or REJECT (dropped by an ACL deny).
    pub accepted: bool,
    /// The port.
    pub interface_id: &'a str,
    /// The flow log.
    pub flow_log_id: &'a str,
    /// `OK`, `NODATA` or `SKIPDATA`.
    pub log_status: &'a str,
    /// The check that decided.
    pub decided_by: &'a str,
    /// Its security group or network ACL.
    pub policy_id: &'a str,
    /// Its rule.
    pub rule_id: &'a str,
}

/// The IANA fields of a template, then the enterprise ones.
fn template_fields(v6: bool) -> [(u16, u16); 12] {
    let (src, dst, len) = if v6 { (27, 28, 16) } else { (8, 12, 4) };
    [
        (src, len),
        (dst, len),
        (7, 2),   // sourceTransportPort
        (11, 2),  // destinationTransportPort
        (4, 1),   // protocolIdentifier
        (6, 1),   // tcpControlBits (reduced size)
        (2, 8),   // packetDeltaCount
        (1, 8),   // octetDeltaCount
        (152, 8), // flowStartMilliseconds
        (153, 8), // flowEndMilliseconds
        (61, 1),  // flowDirection
        (89, 1),  // forwardingStatus
    ]
}

/// `forwardingStatus` (RFC 7270): forwarded (unknown reason), or dropped
/// by an ACL deny.
const FORWARDED: u8 = 0b0100_0000;
const DROPPED_ACL_DENY: u8 = 0b1000_0010;

/// Builds IPFIX messages of at most an MTU's bytes.
#[derive(Debug)]
pub struct IpfixEncoder {
    domain: u32,
    mtu: usize,
    /// Data records sent so far (the next message's sequence number).
    sequence: u32,
    buf: Vec<u8>,
    /// Over a session (TCP), templates are sent once, at its start.
    session: bool,
    templates_sent: bool,
}

impl IpfixEncoder {
    /// An encoder for observation domain `domain`, whose messages are at
    /// most `mtu` bytes (at least 512).
    pub fn new(domain: u32, mtu: usize) -> IpfixEncoder {
        IpfixEncoder {
            domain,
            mtu: mtu.max(512),
            sequence: 0,
            buf: Vec::with_capacity(mtu.max(512)),
            session: false,
            templates_sent: false,
        }
    }

    /// An encoder for a session (IPFIX over TCP): templates go with the
    /// first batch only, until [`IpfixEncoder::new_session`] (RFC 7011
    /// §8: templates are not refreshed over reliable transports).
    pub fn for_session(domain: u32, mtu: usize) -> IpfixEncoder {
        IpfixEncoder {
            session: true,
            ..IpfixEncoder::new(domain, mtu)
        }
    }

    /// A new session begins: the next batch starts with the templates.
    pub fn new_session(&mut self) {
        self.templates_sent = false;
    }

    /// Encodes `records` as messages exported at `export_secs`, handing
    /// each to `send`; the first message starts with the templates (sent
    /// again with every batch, as UDP asks: a collector that starts late
    /// learns them from the next; over a session, with its first batch).
    pub fn encode<E>(
        &mut self,
        export_secs: u32,
        records: &[IpfixRecord<'_>],
        send: &mut dyn FnMut(&[u8]) -> Result<(), E>,
    ) -> Result<(), E> {
        self.start(export_secs);
        if !(self.session && self.templates_sent) {
            self.templates();
            self.templates_sent = true;
        }
        let mut set: Option<(u16, usize)> = None;
        let mut in_message = 0u32;
        for r in records {
            let template = if r.src.is_ipv6() {
                TEMPLATE_V6
            } else {
                TEMPLATE_V4
            };
            let before = self.buf.len();
            let mut grew = 0;
            if set.is_none_or(|(t, _)| t != template) {
                grew += 4;
            }
            let record_len = record_len(r);
            if before + grew + record_len > self.mtu && in_message > 0 {
                self.close_set(&mut set);
                self.finish(in_message, send)?;
                in_message = 0;
                self.start(export_secs);
            }
            if set.is_none_or(|(t, _)| t != template) {
                self.close_set(&mut set);
                set = Some((template, self.buf.len()));
                self.buf.extend(template.to_be_bytes());
                self.buf.extend([0, 0]);
            }
            self.record(r);
            in_message += 1;
        }
        self.close_set(&mut set);
        self.finish(in_message, send)
    }

    fn start(&mut self, export_secs: u32) {
        self.buf.clear();
        self.buf.extend(10u16.to_be_bytes());
        self.buf.extend([0, 0]); // length, at the end
        self.buf.extend(export_secs.to_be_bytes());
        self.buf.extend(self.sequence.to_be_bytes());
        self.buf.extend(self.domain.to_be_bytes());
    }

    fn templates(&mut self) {
        let at = self.buf.len();
        self.buf.extend(2u16.to_be_bytes());
        self.buf.extend([0, 0]);
        for (id, v6) in [(TEMPLATE_V4, false), (TEMPLATE_V6, true)] {
            let iana = template_fields(v6);
            let count = (iana.len() + ENTERPRISE_ELEMENTS.len()) as u16;
            self.buf.extend(id.to_be_bytes());
            self.buf.extend(count.to_be_bytes());
            for (ie, len) in iana {
                self.buf.extend(ie.to_be_bytes());
                self.buf.extend(len.to_be_bytes());
            }
            for (ie, _) in ENTERPRISE_ELEMENTS {
                self.buf.extend((0x8000 | ie).to_be_bytes());
                self.buf.extend(VARIABLE.to_be_bytes());
                self.buf.extend(ENTERPRISE.to_be_bytes());
            }
        }
        let len = (self.buf.len() - at) as u16;
        self.buf[at + 2..at + 4].copy_from_slice(&len.to_be_bytes());
    }

    fn close_set(&mut self, set: &mut Option<(u16, usize)>) {
        if let Some((_, at)) = set.take() {
            let len = (self.buf.len() - at) as u16;
            self.buf[at + 2..at + 4].copy_from_slice(&len.to_be_bytes());
        }
    }

    fn finish<E>(
        &mut self,
        records: u32,
        send: &mut dyn FnMut(&[u8]) -> Result<(), E>,
    ) -> Result<(), E> {
        if self.buf.len() <= HEADER {
            return Ok(());
        }
        let len = self.buf.len() as u16;
        self.buf[2..4].copy_from_slice(&len.to_be_bytes());
        send(&self.buf)?;
        self.sequence = self.sequence.wrapping_add(records);
        Ok(())
    }

    fn record(&mut self, r: &IpfixRecord<'_>) {
        let b = &mut self.buf;
        for a in [r.src, r.dst] {
            match a {
                IpAddr::V4(a) => b.extend(a.octets()),
                IpAddr::V6(a) => b.extend(a.octets()),
            }
        }
        b.extend(r.src_port.to_be_bytes());
        b.extend(r.dst_port.to_be_bytes());
        b.push(r.protocol);
        b.push(r.tcp_flags);
        b.extend(r.packets.to_be_bytes());
        b.extend(r.bytes.to_be_bytes());
        b.extend(r.start.saturating_mul(1000).to_be_bytes());
        b.extend(r.end.saturating_mul(1000).to_be_bytes());
        b.push(u8::from(!r.ingress));
        b.push(if r.accepted {
            FORWARDED
        } else {
            DROPPED_ACL_DENY
        });
        for s in strings(r) {
            let s = &s.as_bytes()[..s.len().min(usize::from(u16::MAX))];
            if s.len() < 255 {
                b.push(s.len() as u8);
            } else {
                b.push(255);
                b.extend((s.len() as u16).to_be_bytes());
            }
            b.extend(s);
        }
    }
}

fn strings<'a>(r: &IpfixRecord<'a>) -> [&'a str; 6] {
    [
        r.interface_id,
        r.flow_log_id,
        r.log_status,
        r.decided_by,
        r.policy_id,
        r.rule_id,
    ]
}

fn record_len(r: &IpfixRecord<'_>) -> usize {
    let addresses = if r.src.is_ipv6() { 32 } else { 8 };
    let strings: usize = strings(r)
        .iter()
        .map(|s| {
            let n = s.len().min(usize::from(u16::MAX));
            n + if n < 255 { 1 } else { 3 }
        })
        .sum();
    addresses + 2 + 2 + 1 + 1 + 8 + 8 + 8 + 8 + 1 + 1 + strings
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;

    use super::*;
    use crate::Decoder;

    fn record(i: u32, v6: bool) -> IpfixRecord<'static> {
        let src: IpAddr = if v6 {
            "2001:db8::1".parse().unwrap()
        } else {
            std::net::Ipv4Addr::from(0xc000_0200 + i).into()
        };
        let dst: IpAddr = if v6 {
            "2001:db8::2".parse().unwrap()
        } else {
            "10.0.0.1".parse().unwrap()
        };
        IpfixRecord {
            src,
            dst,
            src_port: 40_000,
            dst_port: 443,
            protocol: 6,
            tcp_flags: 0x10,
            packets: u64::from(i) + 1,
            bytes: (u64::from(i) + 1) * 100,
            start: 1_700_000_400,
            end: 1_700_001_000,
            ingress: true,
            accepted: i.is_multiple_of(2),
            interface_id: "port-a",
            flow_log_id: "fl",
            log_status: "OK",
            decided_by: "sg-ingress",
            policy_id: "sg-web",
            rule_id: "https",
        }
    }

    #[test]
    fn records_round_trip_through_the_decoder_in_messages_within_the_mtu() {
        let records: Vec<IpfixRecord<'_>> = (0..100).map(|i| record(i, i % 7 == 3)).collect();
        let mut enc = IpfixEncoder::new(3, 1_400);
        let mut messages: Vec<Vec<u8>> = Vec::new();
        enc.encode::<()>(1_700_001_010, &records, &mut |m| {
            messages.push(m.to_vec());
            Ok(())
        })
        .unwrap();
        assert!(messages.len() > 3, "{} messages", messages.len());
        assert!(messages.iter().all(|m| m.len() <= 1_400));
        let mut dec = Decoder::new();
        let from: SocketAddr = "127.0.0.1:4739".parse().unwrap();
        let mut flows = Vec::new();
        let mut sequences = Vec::new();
        for m in &messages {
            let d = dec.decode(from, m, 0, &mut |f| flows.push(*f)).unwrap();
            assert_eq!((d.domain, d.unknown_template_sets), (3, 0));
            sequences.push((d.sequence, d.data_records));
        }
        // Each message's sequence number counts the data records before it.
        let mut expected = 0;
        for (seq, n) in sequences {
            assert_eq!(seq, expected);
            expected += n;
        }
        assert_eq!(flows.len(), 100);
        for (f, r) in flows.iter().zip(&records) {
            assert_eq!(
                (f.src, f.dst, f.packets, f.bytes),
                (r.src, r.dst, r.packets, r.bytes)
            );
            assert_eq!(f.first_ns, 1_700_000_400_000_000_000);
            assert_eq!(f.tcp_flags, 0x10);
        }
    }
}
