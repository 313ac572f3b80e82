//! sFlow version 5 (sflow.org, `sflow_version_5.txt`): flow samples in,
//! one estimated flow per sample out.
//!
//! An sFlow agent samples 1 packet in N and sends the sampled packet's
//! header (or its decoded IPv4/IPv6 fields); each sample therefore stands
//! for N packets of its five-tuple, and its bytes for N times the sampled
//! packet's layer-3 length. The flows carry N as
//! [`ExportedFlow::sampling_rate`], so that their records say they are
//! estimates. Counter samples are skipped. sFlow has no per-sample time:
//! a sample counts at the moment the collector received it.
//!
//! A sampled header is parsed by `vpcflow_wire`, the parser every captured
//! frame goes through, so a sample yields the addresses, ports, flags and
//! layer-3 length a capture of the same packet would.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use vpcflow_wire::{LinkType, parse_frame};

use crate::decode::{Bytes, Datagram, ExportError, ExportedFlow, Version};

/// `enterprise << 12 | format` of what vpcflow reads (enterprise 0).
const FLOW_SAMPLE: u32 = 1;
const EXPANDED_FLOW_SAMPLE: u32 = 3;
const SAMPLED_HEADER: u32 = 1;
const SAMPLED_IPV4: u32 = 3;
const SAMPLED_IPV6: u32 = 4;

/// `header_protocol` values of a sampled header vpcflow parses.
const HEADER_ETHERNET: u32 = 1;
const HEADER_IPV4: u32 = 11;
const HEADER_IPV6: u32 = 12;

fn length_error(what: &'static str, len: usize, left: usize) -> ExportError {
    ExportError::Length { what, len, left }
}

/// XDR opaque data: a length, then that many bytes padded to 4.
fn opaque<'a>(b: &mut Bytes<'a>, what: &'static str) -> Result<&'a [u8], ExportError> {
    let len = b.u32().ok_or(length_error(what, 4, b.0.len()))? as usize;
    let padded = len.checked_add(3).map(|n| n & !3).unwrap_or(usize::MAX);
    let left = b.0.len();
    let data = b.take(padded).ok_or(length_error(what, len, left))?;
    Ok(&data[..len])
}

/// Decodes an sFlow v5 datagram received at `received_ns`.
pub(crate) fn sflow(
    data: &[u8],
    received_ns: u64,
    out: &mut dyn FnMut(&ExportedFlow),
) -> Result<Datagram, ExportError> {
    let short = || ExportError::ShortHeader {
        what: "sFlow v5",
        len: data.len(),
    };
    let mut h = Bytes(data);
    let _version = h.u32().ok_or_else(short)?;
    let address_len = match h.u32().ok_or_else(short)? {
        1 => 4,
        2 => 16,
        _ => 0,
    };
    h.take(address_len).ok_or_else(short)?;
    let sub_agent = h.u32().ok_or_else(short)?;
    let sequence = h.u32().ok_or_else(short)?;
    let _uptime_ms = h.u32().ok_or_else(short)?;
    let samples = h.u32().ok_or_else(short)?;
    let mut d = Datagram::new(Version::Sflow, sequence, sub_agent, received_ns);
    for _ in 0..samples {
        let format = h.u32().ok_or(length_error("sample", 8, h.0.len()))?;
        let body = opaque(&mut h, "sample")?;
        d.data_records += 1;
        let expanded = match format {
            FLOW_SAMPLE => false,
            EXPANDED_FLOW_SAMPLE => true,
            _ => continue, // counter samples, other enterprises' samples
        };
        match flow_sample(body, expanded, received_ns)? {
            Some(flow) => {
                d.flows += 1;
                out(&flow);
            }
            None => d.incomplete += 1,
        }
    }
    Ok(d)
}

/// A flow sample's flow, if one of its records is a packet vpcflow reads.
fn flow_sample(
    body: &[u8],
    expanded: bool,
    received_ns: u64,
) -> Result<Option<ExportedFlow>, ExportError> {
    let mut b = Bytes(body);
    let short = || length_error("flow sample", body.len(), body.len());
    let _sequence = b.u32().ok_or_else(short)?;
    b.take(if expanded { 8 } else { 4 }).ok_or_else(short)?; // source id
    let rate = b.u32().ok_or_else(short)?.max(1);
    let _pool = b.u32().ok_or_else(short)?;
    let _drops = b.u32().ok_or_else(short)?;
    // An interface is `format << 30 | value` (compact) or format, value
    // (expanded); format 0 is an ifIndex.
    let mut interface = || -> Option<Option<u32>> {
        if expanded {
            let format = b.u32()?;
            let value = b.u32()?;
            Some((format == 0).then_some(value))
        } else {
            let v = b.u32()?;
            Some((v >> 30 == 0).then_some(v & 0x3fff_ffff))
        }
    };
    let input = interface().ok_or_else(short)?;
    let output = interface().ok_or_else(short)?;
    let records = b.u32().ok_or_else(short)?;
    let mut flow = None;
    for _ in 0..records {
        let format = b.u32().ok_or_else(short)?;
        let data = opaque(&mut b, "flow record")?;
        if flow.is_none() {
            flow = packet(format, data);
        }
    }
    Ok(flow.map(|mut f: ExportedFlow| {
        f.packets = u64::from(rate);
        f.bytes = f.bytes.saturating_mul(u64::from(rate));
        f.sampling_rate = rate;
        f.first_ns = received_ns;
        f.last_ns = received_ns;
        f.input_interface = input;
        f.output_interface = output;
        f
    }))
}

/// One sampled packet (packets 1, its layer-3 bytes), from a flow record
/// of a kind vpcflow reads.
fn packet(format: u32, data: &[u8]) -> Option<ExportedFlow> {
    let mut b = Bytes(data);
    let flow = |src, dst, protocol: u8, ports: (u16, u16), bytes, flags| ExportedFlow {
        src,
        dst,
        src_port: ports.0,
        dst_port: ports.1,
        protocol,
        packets: 1,
        bytes,
        tcp_flags: flags,
        first_ns: 0,
        last_ns: 0,
        input_interface: None,
        output_interface: None,
        sampling_rate: 1,
        observation: None,
    };
    match format {
        SAMPLED_HEADER => {
            let link = match b.u32()? {
                HEADER_ETHERNET => LinkType::Ethernet,
                HEADER_IPV4 => LinkType::Ipv4,
                HEADER_IPV6 => LinkType::Ipv6,
                _ => return None,
            };
            let frame_length = b.u32()?;
            let stripped = b.u32()?;
            let header = opaque(&mut b, "sampled header").ok()?;
            let wire_len = frame_length.saturating_sub(stripped);
            let s = parse_frame(link, header, wire_len).ok()?;
            let dst_port = match s.icmp_type {
                Some(t) => u16::from(t) << 8,
                None => s.dst_port,
            };
            Some(flow(
                s.src,
                s.dst,
                s.protocol.0,
                (s.src_port, dst_port),
                u64::from(s.ip_bytes),
                s.tcp_flags.0,
            ))
        }
        SAMPLED_IPV4 | SAMPLED_IPV6 => {
            let length = b.u32()?;
            let protocol = b.u32()? as u8;
            let (src, dst): (IpAddr, IpAddr) = if format == SAMPLED_IPV4 {
                let s: [u8; 4] = b.take(4)?.try_into().ok()?;
                let d: [u8; 4] = b.take(4)?.try_into().ok()?;
                (Ipv4Addr::from(s).into(), Ipv4Addr::from(d).into())
            } else {
                let s: [u8; 16] = b.take(16)?.try_into().ok()?;
                let d: [u8; 16] = b.take(16)?.try_into().ok()?;
                (Ipv6Addr::from(s).into(), Ipv6Addr::from(d).into())
            };
            let mut ports = (b.u32()? as u16, b.u32()? as u16);
            if matches!(protocol, 1 | 58) {
                // ICMP's type and code, in NetFlow's type × 256 + code.
                ports = (0, ports.0 << 8 | (ports.1 & 0xff));
            }
            let flags = b.u32()? as u8;
            Some(flow(src, dst, protocol, ports, u64::from(length), flags))
        }
        _ => None,
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::Decoder;

    fn u32s(v: &[u32]) -> Vec<u8> {
        v.iter().flat_map(|n| n.to_be_bytes()).collect()
    }

    /// XDR opaque: length, bytes, padding.
    fn opaque(data: &[u8]) -> Vec<u8> {
        let mut v = u32s(&[data.len() as u32]);
        v.extend(data);
        v.resize(v.len().next_multiple_of(4), 0);
        v
    }

    /// An Ethernet frame of a TCP SYN 10.0.0.5:40000 -> 10.0.1.9:443
    /// whose IP packet is 60 bytes, cut after the TCP header.
    fn syn_frame() -> Vec<u8> {
        let mut f = vec![0u8; 12];
        f.extend([0x08, 0x00]);
        f.extend([0x45, 0, 0, 60, 0, 1, 0x40, 0, 64, 6, 0, 0]);
        f.extend([10, 0, 0, 5, 10, 0, 1, 9]);
        f.extend(40_000u16.to_be_bytes());
        f.extend(443u16.to_be_bytes());
        f.extend([0; 8]);
        f.extend([0x50, 0x02, 0xff, 0xff, 0, 0, 0, 0]);
        f
    }

    pub(crate) fn datagram(sequence: u32, samples: &[(u32, Vec<u8>)]) -> Vec<u8> {
        let mut d = u32s(&[5, 1]);
        d.extend([192, 0, 2, 1]);
        d.extend(u32s(&[0, sequence, 1_000, samples.len() as u32]));
        for (format, body) in samples {
            d.extend(u32s(&[*format]));
            d.extend(opaque(body));
        }
        d
    }

    /// A compact flow sample of 1 in `rate`, in on ifIndex 3, with `records`.
    fn flow_sample(rate: u32, records: &[(u32, Vec<u8>)]) -> Vec<u8> {
        let mut s = u32s(&[1, 3, rate, 1_000, 0, 3, 0x4000_0000, records.len() as u32]);
        for (format, data) in records {
            s.extend(u32s(&[*format]));
            s.extend(opaque(data));
        }
        s
    }

    fn decode(data: &[u8]) -> (Result<Datagram, ExportError>, Vec<ExportedFlow>) {
        let mut flows = Vec::new();
        let r = Decoder::new().decode("127.0.0.1:6343".parse().unwrap(), data, 7_000, &mut |f| {
            flows.push(*f)
        });
        (r, flows)
    }

    #[test]
    fn a_sample_stands_for_its_sampling_rate_in_packets_and_bytes() {
        let mut header = u32s(&[HEADER_ETHERNET, 78, 4]);
        header.extend(opaque(&syn_frame()));
        let mut icmp = u32s(&[84, 1]);
        icmp.extend([10, 0, 1, 9, 10, 0, 0, 5]);
        icmp.extend(u32s(&[3, 3, 0, 0]));
        let mut expanded = u32s(&[2, 0, 7, 100, 1_000, 0, 0, 4, 0, 5, 1]);
        expanded.extend(u32s(&[SAMPLED_IPV4]));
        expanded.extend(opaque(&icmp));
        let counters = u32s(&[1, 2, 0]);
        let arp = {
            let mut f = vec![0u8; 12];
            f.extend([0x08, 0x06, 0, 1]);
            let mut r = u32s(&[HEADER_ETHERNET, 64, 4]);
            r.extend(opaque(&f));
            r
        };
        let d = datagram(
            9,
            &[
                (FLOW_SAMPLE, flow_sample(512, &[(SAMPLED_HEADER, header)])),
                (2, counters),
                (EXPANDED_FLOW_SAMPLE, expanded),
                (FLOW_SAMPLE, flow_sample(512, &[(SAMPLED_HEADER, arp)])),
            ],
        );
        let (r, flows) = decode(&d);
        let r = r.unwrap();
        assert_eq!(
            (r.version, r.sequence, r.flows, r.data_records, r.incomplete),
            (Version::Sflow, 9, 2, 4, 1)
        );
        let syn = flows[0];
        assert_eq!(syn.src, IpAddr::from([10, 0, 0, 5]));
        assert_eq!((syn.src_port, syn.dst_port, syn.protocol), (40_000, 443, 6));
        assert_eq!(
            (syn.packets, syn.bytes, syn.sampling_rate),
            (512, 60 * 512, 512)
        );
        assert_eq!(
            (syn.tcp_flags, syn.first_ns, syn.last_ns),
            (0x02, 7_000, 7_000)
        );
        assert_eq!((syn.input_interface, syn.output_interface), (Some(3), None));
        let unreachable = flows[1];
        assert_eq!((unreachable.dst_port, unreachable.protocol), (0x0303, 1));
        assert_eq!((unreachable.packets, unreachable.bytes), (100, 8_400));
        assert_eq!(unreachable.output_interface, Some(5));
    }

    #[test]
    fn a_cut_sample_is_a_named_error_after_the_samples_before_it() {
        let mut ipv6 = u32s(&[120, 17]);
        ipv6.extend([0x20, 1, 0x0d, 0xb8].iter().chain(&[0; 12]));
        ipv6.extend([0x20, 1, 0x0d, 0xb8].iter().chain(&[0; 11]).chain(&[1]));
        ipv6.extend(u32s(&[5_353, 53, 0, 0]));
        let mut d = datagram(1, &[(FLOW_SAMPLE, flow_sample(1, &[(SAMPLED_IPV6, ipv6)]))]);
        let (r, flows) = decode(&d);
        assert_eq!(r.unwrap().flows, 1);
        assert_eq!(
            (flows[0].packets, flows[0].bytes, flows[0].dst_port),
            (1, 120, 53)
        );
        assert_eq!(flows[0].dst, "2001:db8::1".parse::<IpAddr>().unwrap());
        // One more sample announced than there is.
        d[24..28].copy_from_slice(&2u32.to_be_bytes()); // the sample count
        let (r, flows) = decode(&d);
        assert_eq!(r.unwrap_err().name(), "bad-length");
        assert_eq!(flows.len(), 1, "the first sample was handed over");
        // sFlow v4 is named as a version.
        let (r, _) = decode(&u32s(&[4, 1, 0, 0, 0, 0, 0]));
        assert_eq!(r.unwrap_err(), ExportError::Version(4));
    }
}
