//! Per-packet cost of the pipeline against its own parsing, on a real
//! capture held in memory (`../shared/data/zeek/traces/echo-connections.pcap.gz`,
//! 82,582 packets), so the ratio of the two lines is the cost of
//! fragments + attribution + aggregation over the bare parse.
//!
//! `cargo bench -p vpcflow-core`

use std::path::Path;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use vpcflow_capture::CaptureFile;
use vpcflow_core::aggregate::AggregatorConfig;
use vpcflow_core::attribute::{Attributor, AutoPorts};
use vpcflow_core::{AcceptAll, Pipeline, TrafficType, WindowLength};
use vpcflow_wire::{Frame, parse_frame};

fn frames() -> Vec<vpcflow_capture::OwnedFrame> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/data/zeek/traces/echo-connections.pcap.gz");
    CaptureFile::read_all(&path).expect("benchmark capture")
}

fn bench(c: &mut Criterion) {
    let frames = frames();
    let mut g = c.benchmark_group("per_packet");
    g.throughput(Throughput::Elements(frames.len() as u64));
    g.bench_function("baseline_parse_only", |b| {
        b.iter(|| {
            let mut bytes = 0u64;
            for (_, link, data, wire) in &frames {
                if let Ok(s) = parse_frame(*link, data, *wire) {
                    bytes += u64::from(s.ip_bytes);
                }
            }
            bytes
        })
    });
    g.bench_function("pipeline_every_address_a_port", |b| {
        b.iter(|| {
            let (attributor, topology) = Attributor::automatic(&AutoPorts {
                cidrs: vec!["0.0.0.0/0".parse().unwrap(), "::/0".parse().unwrap()],
                traffic_type: TrafficType::All,
                region: "-".into(),
            });
            let config = AggregatorConfig {
                window: WindowLength::DEFAULT,
                max_records: 400_000,
                grace_ns: 2_000_000_000,
            };
            let mut p = Pipeline::new(topology, attributor, config, AcceptAll);
            for (ts, link, data, wire) in &frames {
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
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
