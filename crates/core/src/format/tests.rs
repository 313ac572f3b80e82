use super::*;
use crate::flow::{Action, Direction, FiveTuple};
use crate::inventory::Inventory;
use crate::record::{FlowFields, FlowRecord, RecordBody, TcpFlag};
use vpcflow_wire::IpProtocol;

fn topology() -> Topology {
    let inv =
        Inventory::from_toml("vpc.toml", include_str!("../../../../examples/vpc.toml")).unwrap();
    Topology::from_inventory(&inv)
}

/// Compares with `tests/golden/NAME`; `VPCFLOW_BLESS=1` rewrites it.
fn golden(name: &str, got: &str) {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/golden")
        .join(name);
    if std::env::var_os("VPCFLOW_BLESS").is_some() {
        std::fs::write(&path, got).unwrap();
    }
    assert_eq!(
        got,
        std::fs::read_to_string(&path).unwrap(),
        "golden file {name}"
    );
}

fn line(format: Format, t: &Topology, r: &FlowRecord) -> String {
    let mut v = Vec::new();
    write_record(&format, t, r, &mut v).unwrap();
    String::from_utf8(v).unwrap()
}

fn seed_record(body: RecordBody, start: u64, end: u64) -> FlowRecord {
    FlowRecord {
        flow_log: 0,
        port: 0,
        start,
        end,
        body,
    }
}

fn dns() -> RecordBody {
    RecordBody::Flow(FlowFields {
        tuple: FiveTuple {
            src: "192.168.0.154".parse().unwrap(),
            dst: "192.168.3.25".parse().unwrap(),
            src_port: 38929,
            dst_port: 53,
            protocol: IpProtocol::UDP,
            infrastructure: false,
        },
        packets: 1,
        bytes: 96,
        action: Action::Accept,
        direction: Direction::Egress,
        tcp_flag: None,
        rule: crate::policy::RuleRef::NONE,
        passed: crate::policy::RuleRef::NONE,
        sampling_rate: 1,
        tcp_flags: 0,
    })
}

/// The seed cloud's own v1 sample lines (shared/data/flowlog-samples/otc-huawei).
const OTC_SAMPLES: &str = include_str!("../../../../tests/fixtures/otc_v1_samples.log");

#[test]
fn v1_ok_and_nodata_lines_are_byte_identical_to_the_seed_clouds_samples() {
    let t = topology();
    let samples: Vec<&str> = OTC_SAMPLES.lines().collect();
    assert_eq!(
        samples[0],
        V1_FIELDS
            .iter()
            .map(|f| f.name())
            .collect::<Vec<_>>()
            .join(" ")
    );
    let ok = line(Format::V1, &t, &seed_record(dns(), 1548752136, 1548752736));
    assert_eq!(ok.trim_end(), samples[1]);
    let nodata = line(
        Format::V1,
        &t,
        &seed_record(RecordBody::NoData, 1431280876, 1431280934),
    );
    assert_eq!(nodata.trim_end(), samples[2]);
    assert!(ok.ends_with('\n') && !ok.ends_with("\n\n"));
}

#[test]
fn skipdata_carries_the_discarded_totals() {
    let t = topology();
    let r = seed_record(
        RecordBody::SkipData {
            packets: 7,
            bytes: 700,
        },
        1431280876,
        1431280934,
    );
    assert_eq!(
        line(Format::V1, &t, &r),
        "1 5f67944957444bd6bb4fe3b367de8f3d 1d515d18-1b36-47dc-a983-bd6512aed4bd - - - - - 7 700 1431280876 1431280934 - SKIPDATA\n"
    );
}

#[test]
fn v2_golden() {
    let t = topology();
    let mut out = Vec::new();
    write_header(&Format::V2, &mut out).unwrap();
    let mut tcp = dns();
    if let RecordBody::Flow(f) = &mut tcp {
        f.tuple.protocol = IpProtocol::TCP;
        f.tuple.src = "2001:db8:0:1::20".parse().unwrap();
        f.tuple.dst = "2001:0db8:0000:0000:0000:0000:0000:0001".parse().unwrap();
        f.direction = Direction::Ingress;
        f.tcp_flag = Some(TcpFlag::SynSent);
        f.action = Action::Reject;
    }
    for body in [dns(), tcp, RecordBody::NoData] {
        write_record(
            &Format::V2,
            &t,
            &seed_record(body, 1548751800, 1548752400),
            &mut out,
        )
        .unwrap();
    }
    let got = String::from_utf8(out).unwrap();
    golden("v2.txt", &got);
    let expected = got;
    for l in expected.lines() {
        assert_eq!(l.split(' ').count(), 20, "{l}");
    }
}

#[test]
fn json_golden() {
    let t = topology();
    let mut out = Vec::new();
    write_header(&Format::Json, &mut out).unwrap();
    let mut decided = dns();
    if let RecordBody::Flow(f) = &mut decided {
        f.rule = t
            .rules
            .acl_rule(0, crate::inventory::rules::RuleDirection::Egress, 0);
    }
    for body in [
        decided,
        RecordBody::NoData,
        RecordBody::SkipData {
            packets: 2,
            bytes: 80,
        },
    ] {
        write_record(
            &Format::Json,
            &t,
            &seed_record(body, 1548751800, 1548752400),
            &mut out,
        )
        .unwrap();
    }
    let got = String::from_utf8(out).unwrap();
    golden("records.jsonl", &got);
    for l in got.lines() {
        let v: serde_json::Value = serde_json::from_str(l).unwrap();
        assert_eq!(v["version"], 2);
        assert_eq!(v["region-id"], "ab-cdef-3");
    }
}

#[test]
fn custom_formats_take_any_field_in_any_order() {
    let t = topology();
    let f = Format::parse("custom:rule-id,action,srcaddr,dstport,flow-log-id,log-status").unwrap();
    let mut out = Vec::new();
    write_header(&f, &mut out).unwrap();
    write_record(&f, &t, &seed_record(dns(), 1, 2), &mut out).unwrap();
    write_record(&f, &t, &seed_record(RecordBody::NoData, 1, 2), &mut out).unwrap();
    assert_eq!(
        String::from_utf8(out).unwrap(),
        "rule-id action srcaddr dstport flow-log-id log-status\n\
         - ACCEPT 192.168.0.154 53 f49f2c7a-1d3e-4b5c-9a8b-7c6d5e4f3a21 OK\n\
         - - - - f49f2c7a-1d3e-4b5c-9a8b-7c6d5e4f3a21 NODATA\n"
    );
    assert_eq!(
        Format::parse("custom:version,v2")
            .unwrap_err()
            .to_string()
            .split(';')
            .next()
            .unwrap(),
        "`v2` is not a field"
    );
    assert!(Format::parse("v3").is_err());
    // v1 and v2 are the first 14 and 20 fields of the full list.
    assert_eq!(V1_FIELDS.last(), Some(&Field::LogStatus));
    assert_eq!(V2_FIELDS.last(), Some(&Field::NetworkId));
}

/// The digits written straight into the line are what `Display` writes,
/// at every length and at the edges of each.
#[test]
fn numbers_and_addresses_are_written_as_display_writes_them() {
    let mut samples = vec![0u64, 9, 10, 99, 100, 101, u64::MAX, u64::MAX - 1];
    let mut p = 1u64;
    while let Some(next) = p.checked_mul(10) {
        samples.extend([p - 1, p, p + 1, next - 1]);
        p = next;
    }
    for v in samples {
        let mut buf = b"x".to_vec();
        push_number(&mut buf, v);
        assert_eq!(buf, format!("x{v}").into_bytes(), "{v}");
    }
    for a in [
        "0.0.0.0",
        "255.255.255.255",
        "10.0.100.9",
        "2001:db8::1",
        "::ffff:1.2.3.4",
    ] {
        let ip: IpAddr = a.parse().unwrap();
        let mut buf = Vec::new();
        push_ip(&mut buf, ip);
        assert_eq!(buf, ip.to_string().into_bytes());
    }
}

#[test]
fn the_line_writer_writes_what_append_record_writes_as_context_changes() {
    let t = topology();
    let formats = [
        Format::V1,
        Format::V2,
        Format::Json,
        Format::parse("aws").unwrap(),
        // Context and own fields interleaved, a context field first and last.
        Format::parse("custom:end,srcaddr,interface-id,vpc-id,packets,log-group-id,start").unwrap(),
        Format::parse("custom:packets,log-status").unwrap(),
    ];
    let bodies = [
        dns(),
        RecordBody::NoData,
        RecordBody::SkipData {
            packets: 7,
            bytes: 9000,
        },
    ];
    // Runs of one port, flow log and window, and changes of each.
    let mut records = Vec::new();
    for (port, flow_log, start) in [
        (0, 0, 600),
        (0, 0, 600),
        (1, 0, 600),
        (1, 1, 600),
        (1, 1, 1200),
        (0, 0, 1200),
    ] {
        for body in bodies {
            records.push(FlowRecord {
                flow_log,
                port,
                start,
                end: start + 600,
                body,
            });
        }
    }
    assert!(t.ports.len() >= 2 && t.flow_logs.len() >= 2);
    for format in formats {
        let mut writer = LineWriter::new(format.clone());
        let (mut got, mut want) = (Vec::new(), Vec::new());
        for (i, r) in records.iter().enumerate() {
            if i == records.len() / 2 {
                writer.new_window();
            }
            writer.append(&t, r, &mut got);
            append_record(&format, &t, r, &mut want);
        }
        assert_eq!(
            String::from_utf8(got).unwrap(),
            String::from_utf8(want).unwrap(),
            "{format:?}"
        );
    }
}
