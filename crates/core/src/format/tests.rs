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

fn line(format: Format, t: &Topology, r: &FlowRecord) -> String {
    let mut v = Vec::new();
    write_record(format, t, r, &mut v).unwrap();
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
        },
        packets: 1,
        bytes: 96,
        action: Action::Accept,
        direction: Direction::Egress,
        tcp_flag: None,
        rule: crate::policy::RuleRef::NONE,
    })
}

/// The seed cloud's own v1 sample lines (shared/data/flowlog-samples/otc-huawei).
const OTC_SAMPLES: &str = include_str!("../../../../tests/fixtures/otc_v1_samples.log");

#[test]
fn v1_ok_and_nodata_lines_are_byte_identical_to_the_seed_clouds_samples() {
    let t = topology();
    let samples: Vec<&str> = OTC_SAMPLES.lines().collect();
    assert_eq!(samples[0], V1_FIELDS.join(" "));
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
    write_header(Format::V2, &mut out).unwrap();
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
            Format::V2,
            &t,
            &seed_record(body, 1548751800, 1548752400),
            &mut out,
        )
        .unwrap();
    }
    let expected = include_str!("../../../../tests/golden/v2.txt");
    assert_eq!(String::from_utf8(out).unwrap(), expected);
    for l in expected.lines() {
        assert_eq!(l.split(' ').count(), 20, "{l}");
    }
}

#[test]
fn json_golden() {
    let t = topology();
    let mut out = Vec::new();
    write_header(Format::Json, &mut out).unwrap();
    for body in [
        dns(),
        RecordBody::NoData,
        RecordBody::SkipData {
            packets: 2,
            bytes: 80,
        },
    ] {
        write_record(
            Format::Json,
            &t,
            &seed_record(body, 1548751800, 1548752400),
            &mut out,
        )
        .unwrap();
    }
    let got = String::from_utf8(out).unwrap();
    assert_eq!(got, include_str!("../../../../tests/golden/records.jsonl"));
    for l in got.lines() {
        let v: serde_json::Value = serde_json::from_str(l).unwrap();
        assert_eq!(v["version"], 2);
        assert_eq!(v["region-id"], "ab-cdef-3");
    }
}
