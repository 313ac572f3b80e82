//! Cost of the policy engine.
//!
//! - `evaluate/*`: one evaluation of a new flow against a security group of
//!   50 rules and a network ACL of 100 rules, the matching rule last (the
//!   worst case), and the same through `decide` (with connection tracking).
//! - `pipeline/*`: the whole pipeline on a real capture held in memory
//!   (`echo-connections.pcap.gz`), every address a port of a generated
//!   inventory, with the engine and with accept-all: the ratio is the
//!   engine's share of the per-packet cost.
//!
//! `cargo bench -p vpcflow-policy`

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::net::IpAddr;
use std::path::Path;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use vpcflow_capture::CaptureFile;
use vpcflow_core::aggregate::AggregatorConfig;
use vpcflow_core::attribute::Attributor;
use vpcflow_core::flow::FiveTuple;
use vpcflow_core::inventory::Inventory;
use vpcflow_core::policy::FlowQuery;
use vpcflow_core::{AcceptAll, Direction, Pipeline, Policy, Timestamp, Topology, WindowLength};
use vpcflow_policy::PolicyEngine;
use vpcflow_wire::{Frame, IpProtocol, LinkType, parse_frame};

/// An inventory whose ports are `ips`, each in a group of 50 rules, in
/// subnets with an ACL of 100 rules; in both the last rule matches port 9.
fn inventory(ips: &[IpAddr]) -> String {
    let mut t = String::from(
        "[[project]]\nid = \"p\"\n[[vpc]]\nid = \"v\"\nproject = \"p\"\ncidr = \"0.0.0.0/0\"\n",
    );
    for (i, half) in ["0.0.0.0/1", "128.0.0.0/1"].iter().enumerate() {
        writeln!(
            t,
            "[[subnet]]\nid = \"s{i}\"\nvpc = \"v\"\ncidr = \"{half}\"\nnetwork_acl = \"acl\""
        )
        .unwrap();
    }
    for (i, ip) in ips.iter().enumerate() {
        let s = u8::from(matches!(ip, IpAddr::V4(v) if v.octets()[0] >= 128));
        writeln!(t, "[[port]]\nid = \"p{i}\"\nsubnet = \"s{s}\"\nips = [\"{ip}\"]\nsecurity_groups = [\"g\"]").unwrap();
    }
    t.push_str("[[log_group]]\nid = \"lg\"\nproject = \"p\"\n[[log_topic]]\nid = \"lt\"\nlog_group = \"lg\"\n");
    t.push_str("[[flow_log]]\nid = \"fl\"\nproject = \"p\"\nname = \"all\"\nresource_type = \"vpc\"\nresource_id = \"v\"\n");
    t.push_str("traffic_type = \"all\"\nlog_group_id = \"lg\"\nlog_topic_id = \"lt\"\n");
    t.push_str("[[security_group]]\nid = \"g\"\nproject = \"p\"\n");
    for r in 0..50 {
        let (dir, port) = if r % 2 == 0 {
            ("ingress", 10_000 + r)
        } else {
            ("egress", 20_000 + r)
        };
        writeln!(t, "[[security_group.rule]]\ndirection = \"{dir}\"\nprotocol = \"tcp\"\nmultiport = \"{port}\"\nremote_ip_prefix = \"10.{r}.0.0/16\"").unwrap();
    }
    t.push_str("[[security_group.rule]]\ndirection = \"ingress\"\nremote_ip_prefix = \"0.0.0.0/0\"\npriority = 100\n");
    t.push_str("[[security_group.rule]]\ndirection = \"egress\"\nremote_ip_prefix = \"0.0.0.0/0\"\npriority = 100\n");
    t.push_str("[[network_acl]]\nid = \"acl\"\nproject = \"p\"\n");
    for dir in ["ingress", "egress"] {
        for r in 0..99 {
            writeln!(t, "[[network_acl.{dir}_rule]]\nname = \"r{r}\"\naction = \"deny\"\nprotocol = \"udp\"\ndestination_port = \"{}\"\nsource_ip_address = \"10.{r}.0.0/16\"", 30_000 + r).unwrap();
        }
        writeln!(
            t,
            "[[network_acl.{dir}_rule]]\nname = \"all\"\naction = \"allow\""
        )
        .unwrap();
    }
    t
}

fn frames() -> Vec<vpcflow_capture::OwnedFrame> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/data/zeek/traces/echo-connections.pcap.gz");
    CaptureFile::read_all(&path).expect("benchmark capture")
}

fn bench(c: &mut Criterion) {
    // evaluate: one port, the worst-case rule walk.
    let ips: Vec<IpAddr> = vec!["192.168.1.1".parse().unwrap()];
    let inv = Inventory::from_toml("bench", &inventory(&ips)).unwrap();
    let topology = Topology::from_inventory(&inv);
    let mut engine = PolicyEngine::new(&inv, &topology, 1 << 20);
    let port = &topology.ports[0];
    let tuple = |i: u32| FiveTuple {
        src: IpAddr::from([172, 16, (i >> 8) as u8, i as u8]),
        dst: ips[0],
        src_port: (i % 50_000) as u16 + 1024,
        dst_port: 9,
        protocol: IpProtocol::TCP,
        infrastructure: false,
    };
    let mut g = c.benchmark_group("evaluate");
    g.bench_function("rules_only_sg50_acl100", |b| {
        let q = FlowQuery {
            port,
            port_index: 0,
            direction: Direction::Ingress,
            tuple: tuple(1),
            tcp_flags: 2,
        };
        b.iter(|| engine.evaluate(0, Direction::Ingress, &q))
    });
    let mut i = 0u32;
    g.bench_function("decide_new_flow_sg50_acl100", |b| {
        b.iter(|| {
            i = i.wrapping_add(1);
            let q = FlowQuery {
                port,
                port_index: 0,
                direction: Direction::Ingress,
                tuple: tuple(i),
                tcp_flags: 2,
            };
            engine.decide(Timestamp::from_secs(u64::from(i / 1000)), &q)
        })
    });
    g.finish();

    // pipeline: engine on and off over the same topology.
    let frames = frames();
    let mut addrs = BTreeSet::new();
    for (_, link, data, wire) in &frames {
        if let Ok(s) = parse_frame(*link, data, *wire)
            && s.src.is_ipv4()
        {
            addrs.insert(s.src);
            addrs.insert(s.dst);
        }
    }
    let ips: Vec<IpAddr> = addrs.into_iter().collect();
    let text = inventory(&ips);
    let inv = Inventory::from_toml("bench", &text).unwrap();
    let config = AggregatorConfig {
        window: WindowLength::DEFAULT,
        max_records: 400_000,
        grace_ns: 2_000_000_000,
    };
    let mut g = c.benchmark_group("pipeline");
    g.throughput(Throughput::Elements(frames.len() as u64));
    fn run<P: Policy>(mut p: Pipeline<P>, frames: &[(u64, LinkType, Vec<u8>, u32)]) -> u64 {
        for (ts, link, data, wire) in frames {
            p.observe(&Frame {
                timestamp_ns: *ts,
                link: *link,
                data,
                wire_len: *wire,
            });
            p.closed().clear();
        }
        p.finish();
        p.stats().records[0]
    }
    g.bench_function("engine_off", |b| {
        b.iter(|| {
            let t = Topology::from_inventory(&inv);
            run(
                Pipeline::new(t.clone(), Attributor::new(&t), config, AcceptAll),
                &frames,
            )
        })
    });
    g.bench_function("engine_on", |b| {
        b.iter(|| {
            let t = Topology::from_inventory(&inv);
            let e = PolicyEngine::new(&inv, &t, 1 << 20);
            run(
                Pipeline::new(t.clone(), Attributor::new(&t), config, e),
                &frames,
            )
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
