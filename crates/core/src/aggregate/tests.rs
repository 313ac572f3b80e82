use std::collections::BTreeMap;
use std::net::IpAddr;

use proptest::prelude::*;

use super::*;
use crate::policy::Decision;
use crate::topology::{FlowLogInfo, PortInfo};

/// Rejects flows to `reject_port`; counts how often it was asked.
struct ScriptedPolicy {
    reject_port: u16,
    asked: u32,
}

impl Policy for ScriptedPolicy {
    fn decide(&mut self, _now: Timestamp, flow: &FlowQuery<'_>) -> Decision {
        self.asked += 1;
        let action = if flow.tuple.dst_port == self.reject_port {
            Action::Reject
        } else {
            Action::Accept
        };
        Decision {
            action,
            rule: RuleRef::NONE,
            also: RuleRef::NONE,
        }
    }
}

fn topology(ports: usize, filters: &[TrafficType]) -> Topology {
    let mut t = Topology {
        region: "ab-cdef-3".into(),
        flow_logs: filters
            .iter()
            .enumerate()
            .map(|(i, f)| FlowLogInfo {
                id: format!("fl{i}"),
                traffic_type: *f,
                log_group_id: "lg".into(),
                log_topic_id: "lt".into(),
            })
            .collect(),
        ..Default::default()
    };
    for p in 0..ports {
        t.push_port(PortInfo {
            id: format!("port-{p}"),
            project_id: "proj".into(),
            vpc_id: "vpc".into(),
            subnet_id: "subnet".into(),
            az_id: "az".into(),
            ips: vec![],
            inventory_index: None,
            flow_logs: (0..filters.len() as u32).collect(),
            filters: 0,
            first_window: None,
        });
    }
    t
}

fn delta(port: u32, src: &str, dst_port: u16, t_secs: u64, bytes: u64) -> FlowDelta {
    FlowDelta {
        port,
        direction: Direction::Egress,
        tuple: FiveTuple {
            src: src.parse().unwrap(),
            dst: "192.168.3.25".parse().unwrap(),
            src_port: 40000,
            dst_port,
            protocol: IpProtocol::UDP,
            infrastructure: false,
        },
        packets: 1,
        bytes,
        flags_any: 0,
        flags_all: 0,
        first: Timestamp::from_secs(t_secs),
        sampling_rate: 1,
    }
}

fn config(cap: u32) -> AggregatorConfig {
    AggregatorConfig {
        window: WindowLength::DEFAULT,
        max_records: cap,
        grace_ns: 0,
    }
}

fn run(
    topo: &Topology,
    policy: &mut ScriptedPolicy,
    cap: u32,
    deltas: &[FlowDelta],
) -> (Vec<ClosedWindow>, Aggregator) {
    let mut agg = Aggregator::new(config(cap));
    let mut out = Vec::new();
    for d in deltas {
        agg.observe(topo, policy, d);
        agg.close_until(topo, d.first, &mut out);
    }
    agg.finish(topo, &mut out);
    (out, agg)
}

#[test]
fn cap_of_three_with_five_flows_gives_three_ok_and_one_skipdata() {
    let topo = topology(1, &[TrafficType::All]);
    let mut policy = ScriptedPolicy {
        reject_port: 0,
        asked: 0,
    };
    let mut deltas = Vec::new();
    for port in [1000, 1001, 1002, 1003, 1004] {
        deltas.push(delta(0, "192.168.0.154", port, 1_548_752_136, 100));
    }
    // More packets of a kept flow and of a discarded one.
    deltas.push(delta(0, "192.168.0.154", 1000, 1_548_752_137, 50));
    deltas.push(delta(0, "192.168.0.154", 1004, 1_548_752_138, 70));
    let (out, _) = run(&topo, &mut policy, 3, &deltas);
    assert_eq!(out.len(), 1);
    let recs = &out[0].records;
    assert_eq!(recs.len(), 4);
    let ok: Vec<_> = recs
        .iter()
        .filter_map(|r| match r.body {
            RecordBody::Flow(f) => Some((f.tuple.dst_port, f.packets, f.bytes)),
            _ => None,
        })
        .collect();
    assert_eq!(ok, vec![(1000, 2, 150), (1001, 1, 100), (1002, 1, 100)]);
    assert_eq!(
        recs[3].body,
        RecordBody::SkipData {
            packets: 3,
            bytes: 270
        }
    );
    assert_eq!((out[0].start, out[0].end), (1_548_751_800, 1_548_752_400));
}

#[test]
fn a_recycled_records_buffer_holds_the_next_window_alone() {
    let topo = topology(2, &[TrafficType::All]);
    let mut policy = ScriptedPolicy {
        reject_port: 0,
        asked: 0,
    };
    let t = 1_548_751_800;
    let mut deltas = Vec::new();
    for port in 1000..1100 {
        deltas.push(delta(0, "192.168.0.154", port, t + 1, 100));
    }
    for port in 2000..2003 {
        deltas.push(delta(1, "192.168.0.9", port, t + 601, 60));
    }
    // The windows one at a time, each given back once taken.
    let mut agg = Aggregator::new(config(1000));
    let mut taken = Vec::new();
    let mut out = Vec::new();
    let mut first_capacity = 0;
    for d in &deltas {
        agg.observe(&topo, &mut policy, d);
        agg.close_until(&topo, d.first, &mut out);
        if !out.is_empty() {
            first_capacity = out[0].records.capacity();
            taken.extend(out.iter().cloned());
            agg.recycle(std::mem::take(&mut out));
        }
    }
    agg.finish(&topo, &mut out);
    assert!(first_capacity >= 101, "the first window's records");
    assert!(
        out[0].records.capacity() >= first_capacity,
        "the second window's records reuse the first's buffer"
    );
    taken.extend(out);
    let (whole, _) = run(&topo, &mut policy, 1000, &deltas);
    assert_eq!(taken, whole, "the same windows as without recycling");
    assert_eq!(taken[1].records.len(), 4, "3 flows and port 0's NODATA");
}

#[test]
fn accepted_filter_with_only_rejected_traffic_is_nodata() {
    // The seed's example, with a reject-filter flow log on the same port.
    let topo = topology(1, &[TrafficType::Accept, TrafficType::Reject]);
    let mut policy = ScriptedPolicy {
        reject_port: 23,
        asked: 0,
    };
    let deltas = [
        delta(0, "192.168.0.154", 23, 1000, 60),
        delta(0, "192.168.0.154", 23, 1001, 60),
    ];
    let (out, _) = run(&topo, &mut policy, 10, &deltas);
    let recs = &out[0].records;
    assert_eq!(recs.len(), 2);
    assert_eq!((recs[0].flow_log, recs[0].body), (0, RecordBody::NoData));
    assert_eq!(recs[1].flow_log, 1);
    match recs[1].body {
        RecordBody::Flow(f) => {
            assert_eq!(f.action, Action::Reject);
            assert_eq!((f.packets, f.bytes), (2, 120));
        }
        other => panic!("expected a REJECT record, got {other:?}"),
    }
    assert_eq!(policy.asked, 1, "one evaluation per new flow per window");
}

#[test]
fn every_window_between_first_and_last_is_closed_with_nodata() {
    let topo = topology(2, &[TrafficType::All]);
    let mut policy = ScriptedPolicy {
        reject_port: 0,
        asked: 0,
    };
    let deltas = [
        delta(0, "10.0.0.1", 53, 600, 10),
        delta(0, "10.0.0.1", 53, 2400, 10),
    ];
    let (out, _) = run(&topo, &mut policy, 10, &deltas);
    let starts: Vec<u64> = out.iter().map(|w| w.start).collect();
    assert_eq!(starts, vec![600, 1200, 1800, 2400]);
    // Port 0 has traffic in the first and last; port 1 never.
    assert!(matches!(out[0].records[0].body, RecordBody::Flow(_)));
    assert_eq!(out[0].records[1].body, RecordBody::NoData);
    assert_eq!(out[1].records.len(), 2);
    assert!(out[1].records.iter().all(|r| r.body == RecordBody::NoData));
    // The policy is asked again in a new window.
    assert_eq!(policy.asked, 2);
}

/// Hardening finding: two packets 3,000,000 windows apart closed every
/// window between them in one step (1.28 GB). A day of NODATA follows the
/// first; the rest of the gap is counted, not reported.
#[test]
fn a_gap_of_millions_of_windows_reports_a_day_of_nodata() {
    let topo = topology(2, &[TrafficType::All]);
    let mut policy = ScriptedPolicy {
        reject_port: 0,
        asked: 0,
    };
    let gap = 3_000_000;
    let deltas = [
        delta(0, "10.0.0.1", 53, 600, 10),
        delta(0, "10.0.0.1", 53, 600 + gap * 600, 10),
    ];
    let (out, agg) = run(&topo, &mut policy, 10, &deltas);
    let day = MAX_GAP_NODATA_SECS / 600;
    assert_eq!(out.len() as u64, 1 + day + 1);
    assert_eq!(out[day as usize].start, 600 + day * 600);
    assert_eq!(out.last().unwrap().start, 600 + gap * 600);
    assert!(matches!(
        out.last().unwrap().records[0].body,
        RecordBody::Flow(_)
    ));
    assert_eq!(agg.stats().gap_windows_not_reported, gap - 1 - day);
    // Windows just past the first traffic are NODATA for both ports.
    assert!(out[1].records.iter().all(|r| r.body == RecordBody::NoData));
}

/// A live source closes one window per tick: a silent day and more keeps
/// getting its NODATA windows, none cut.
#[test]
fn a_clock_ticking_through_a_long_silence_reports_every_window() {
    let topo = topology(1, &[TrafficType::All]);
    let mut policy = ScriptedPolicy {
        reject_port: 0,
        asked: 0,
    };
    let mut agg = Aggregator::new(config(10));
    let mut out = Vec::new();
    agg.observe(&topo, &mut policy, &delta(0, "10.0.0.1", 53, 600, 10));
    let windows = 2 * MAX_GAP_NODATA_SECS / 600;
    for i in 1..=windows + 1 {
        let now = Timestamp::from_secs(600 + i * 600);
        agg.note_time(now);
        agg.close_until(&topo, now, &mut out);
    }
    assert_eq!(out.len() as u64, windows + 1);
    assert_eq!(agg.stats().gap_windows_not_reported, 0);
}

#[test]
fn packets_for_a_closed_window_are_counted_as_late() {
    let topo = topology(1, &[TrafficType::All]);
    let mut policy = ScriptedPolicy {
        reject_port: 0,
        asked: 0,
    };
    let mut agg = Aggregator::new(config(10));
    let mut out = Vec::new();
    assert!(agg.observe(&topo, &mut policy, &delta(0, "10.0.0.1", 53, 1000, 1)));
    agg.close_until(&topo, Timestamp::from_secs(1300), &mut out);
    assert_eq!(out.len(), 1);
    assert!(!agg.observe(&topo, &mut policy, &delta(0, "10.0.0.1", 53, 1100, 1)));
    assert_eq!(agg.stats().late_packets, 1);
    // Before anything closed, an earlier packet just opens an earlier window.
    let mut agg = Aggregator::new(config(10));
    assert!(agg.observe(&topo, &mut policy, &delta(0, "10.0.0.1", 53, 1300, 1)));
    assert!(agg.observe(&topo, &mut policy, &delta(0, "10.0.0.1", 53, 1000, 1)));
    let mut out = Vec::new();
    agg.finish(&topo, &mut out);
    assert_eq!(
        out.iter().map(|w| w.start).collect::<Vec<_>>(),
        vec![600, 1200]
    );
}

#[test]
fn ipv4_and_ipv6_records_keep_first_seen_order() {
    let topo = topology(1, &[TrafficType::All]);
    let mut policy = ScriptedPolicy {
        reject_port: 0,
        asked: 0,
    };
    let deltas = [
        delta(0, "2001:db8::1", 1, 10, 1),
        delta(0, "10.0.0.1", 2, 11, 1),
        delta(0, "2001:db8::2", 3, 12, 1),
        delta(0, "2001:db8::3", 4, 13, 1),
        delta(0, "10.0.0.2", 5, 14, 1),
    ];
    let (out, _) = run(&topo, &mut policy, 10, &deltas);
    let order: Vec<u16> = out[0]
        .records
        .iter()
        .filter_map(|r| match r.body {
            RecordBody::Flow(f) => Some(f.tuple.dst_port),
            _ => None,
        })
        .collect();
    assert_eq!(order, vec![1, 2, 3, 4, 5]);
}

#[test]
fn memory_stays_bounded_under_a_flood_of_unkept_flows() {
    // An accept-only flow log sees a flood of rejected flows: none is kept,
    // and at most `cap` are remembered.
    let topo = topology(1, &[TrafficType::Accept]);
    let mut policy = ScriptedPolicy {
        reject_port: 9,
        asked: 0,
    };
    let mut agg = Aggregator::new(config(100));
    for i in 0..10_000u32 {
        let mut d = delta(0, "10.0.0.1", 9, 100, 1);
        d.tuple.src_port = (i % 60_000) as u16;
        d.tuple.src = IpAddr::from((0x0a00_0000u32 + i).to_be_bytes());
        agg.observe(&topo, &mut policy, &d);
    }
    assert_eq!(agg.active_flows(), 100);
    let mut out = Vec::new();
    agg.finish(&topo, &mut out);
    assert_eq!(out[0].records.len(), 1);
    assert_eq!(out[0].records[0].body, RecordBody::NoData);
}

#[test]
fn tcp_flag_is_derived_per_record() {
    use vpcflow_wire::TcpFlags as F;
    let topo = topology(1, &[TrafficType::All]);
    let mut policy = ScriptedPolicy {
        reject_port: 0,
        asked: 0,
    };
    let mut syn = delta(0, "10.0.0.1", 22, 100, 60);
    syn.tuple.protocol = IpProtocol::TCP;
    syn.flags_any = F::SYN;
    syn.flags_all = F::SYN;
    let mut ack = syn;
    ack.tuple.dst_port = 23;
    let mut ack2 = ack;
    ack2.flags_any = F::ACK;
    ack2.flags_all = F::ACK;
    let (out, _) = run(&topo, &mut policy, 10, &[syn, ack, ack2]);
    let flags: Vec<_> = out[0]
        .records
        .iter()
        .filter_map(|r| match r.body {
            RecordBody::Flow(f) => f.tcp_flag,
            _ => None,
        })
        .collect();
    assert_eq!(flags, vec![TcpFlag::SynSent, TcpFlag::Established]);
}

/// The naive model: every flow in a `BTreeMap`, kept-ness decided at the end
/// by first-seen rank among the flows a filter admits.
fn naive(
    topo: &Topology,
    reject_port: u16,
    cap: u32,
    deltas: &[FlowDelta],
) -> Vec<(u64, u32, u32, RecordBody)> {
    type K = (u32, IpAddr, IpAddr, u16, u16, u8, Direction);
    let len = WindowLength::DEFAULT;
    type Window = (BTreeMap<K, usize>, Vec<(K, u64, u64)>);
    let mut windows: BTreeMap<u64, Window> = BTreeMap::new();
    for d in deltas {
        let w = windows.entry(len.start_of(d.first)).or_default();
        let k = (
            d.port,
            d.tuple.src,
            d.tuple.dst,
            d.tuple.src_port,
            d.tuple.dst_port,
            d.tuple.protocol.0,
            d.direction,
        );
        let i = *w.0.entry(k).or_insert_with(|| {
            w.1.push((k, 0, 0));
            w.1.len() - 1
        });
        w.1[i].1 += d.packets;
        w.1[i].2 += d.bytes;
    }
    let (first, last) = match (windows.keys().next(), windows.keys().last()) {
        (Some(f), Some(l)) => (*f, *l),
        _ => return vec![],
    };
    let mut order: Vec<u32> = (0..topo.ports.len() as u32).collect();
    order.sort_by(|a, b| topo.ports[*a as usize].id.cmp(&topo.ports[*b as usize].id));
    let mut out = Vec::new();
    let mut start = first;
    while start <= last {
        let empty = Default::default();
        let flows = &windows.get(&start).unwrap_or(&empty).1;
        for &p in &order {
            for &fl in &topo.ports[p as usize].flow_logs {
                let t = topo.flow_logs[fl as usize].traffic_type;
                let mut kept = 0;
                let (mut sp, mut sb) = (0, 0);
                for (k, packets, bytes) in flows.iter().filter(|f| f.0.0 == p) {
                    let action = if k.4 == reject_port {
                        Action::Reject
                    } else {
                        Action::Accept
                    };
                    if !t.admits(action) {
                        continue;
                    }
                    if kept < cap {
                        kept += 1;
                        out.push((
                            start,
                            p,
                            fl,
                            RecordBody::Flow(FlowFields {
                                tuple: FiveTuple {
                                    src: k.1,
                                    dst: k.2,
                                    src_port: k.3,
                                    dst_port: k.4,
                                    protocol: IpProtocol(k.5),
                                    infrastructure: false,
                                },
                                packets: *packets,
                                bytes: *bytes,
                                action,
                                direction: k.6,
                                tcp_flag: None,
                                rule: RuleRef::NONE,
                                passed: RuleRef::NONE,
                                sampling_rate: 1,
                                tcp_flags: 0,
                            }),
                        ));
                    } else {
                        sp += packets;
                        sb += bytes;
                    }
                }
                if kept == 0 {
                    out.push((start, p, fl, RecordBody::NoData));
                }
                if sp > 0 {
                    out.push((
                        start,
                        p,
                        fl,
                        RecordBody::SkipData {
                            packets: sp,
                            bytes: sb,
                        },
                    ));
                }
            }
        }
        start += len.secs();
    }
    out
}

fn arb_delta() -> impl Strategy<Value = (u32, u8, u16, u16, bool, u64, u64)> {
    (
        0u32..3,
        0u8..6,
        0u16..4,
        0u16..5,
        any::<bool>(),
        0u64..2000,
        1u64..1500,
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]
    #[test]
    fn aggregator_matches_the_naive_model(
        raw in proptest::collection::vec(arb_delta(), 0..300),
        cap in 1u32..6,
        filters in proptest::sample::subsequence(vec![TrafficType::All, TrafficType::Accept, TrafficType::Reject], 1..=3),
    ) {
        let topo = topology(3, &filters);
        let mut t = 0u64;
        let deltas: Vec<FlowDelta> = raw.iter().map(|&(port, host, sport, dport, egress, dt, bytes)| {
            t += dt;
            let (src, dst): (IpAddr, IpAddr) = if host % 2 == 0 {
                (IpAddr::from([10, 0, 0, host]), "10.9.9.9".parse().unwrap())
            } else {
                (format!("2001:db8::{host}").parse().unwrap(), "2001:db8::99".parse().unwrap())
            };
            FlowDelta {
                port,
                direction: if egress { Direction::Egress } else { Direction::Ingress },
                tuple: FiveTuple { src, dst, src_port: sport, dst_port: dport, protocol: IpProtocol::UDP , infrastructure: false},
                packets: 1,
                bytes,
                flags_any: 0,
                flags_all: 0,
                first: Timestamp::from_secs(t),
                sampling_rate: 1,
            }
        }).collect();
        let mut policy = ScriptedPolicy { reject_port: 3, asked: 0 };
        let (out, _) = run(&topo, &mut policy, cap, &deltas);
        let got: Vec<_> = out.iter().flat_map(|w| w.records.iter().map(|r| (r.start, r.port, r.flow_log, r.body))).collect();
        prop_assert_eq!(got, naive(&topo, 3, cap, &deltas));
    }
}

#[test]
fn an_ipv4_flow_entry_takes_forty_bytes() {
    // The memory budget of the benchmark (<= 64 bytes per active IPv4 flow,
    // index included) depends on it.
    assert_eq!(size_of::<Entry<[u8; 4]>>(), 40);
}

#[test]
fn infrastructure_and_other_icmpv6_between_the_same_addresses_are_two_flows() {
    let topo = topology(1, &[TrafficType::All]);
    let mut policy = ScriptedPolicy {
        reject_port: 1,
        asked: 0,
    };
    let icmp = |t: u8, secs: u64| FlowDelta {
        tuple: FiveTuple::new(
            "fe80::1".parse().unwrap(),
            "fe80::2".parse().unwrap(),
            0,
            0,
            IpProtocol::ICMPV6,
            Some(t),
        ),
        ..delta(0, "10.0.0.1", 0, secs, 72)
    };
    // A solicitation, an echo request, then one more of each.
    let deltas = [
        icmp(135, 100),
        icmp(128, 101),
        icmp(135, 102),
        icmp(128, 103),
    ];
    let (out, _) = run(&topo, &mut policy, 10, &deltas);
    assert_eq!(policy.asked, 2, "one question per flow");
    let flows: Vec<(bool, u64)> = out[0]
        .records
        .iter()
        .filter_map(|r| match r.body {
            RecordBody::Flow(f) => Some((f.tuple.infrastructure, f.packets)),
            _ => None,
        })
        .collect();
    assert_eq!(flows, [(true, 2), (false, 2)]);
}

#[test]
fn records_of_sampled_flows_say_their_sampling_rate_and_counted_ones_do_not() {
    let topo = topology(2, &[TrafficType::All]);
    let mut policy = ScriptedPolicy {
        reject_port: 0,
        asked: 0,
    };
    let sampled = |port, src, rate| FlowDelta {
        packets: u64::from(rate),
        sampling_rate: rate,
        ..delta(port, src, 53, 10, 100)
    };
    let deltas = [
        sampled(0, "10.0.0.1", 512),
        delta(0, "10.0.0.2", 53, 11, 100),
        // A later sample of the first flow, at another rate: the largest.
        sampled(0, "10.0.0.1", 1024),
        sampled(1, "10.0.0.3", 64),
    ];
    let (out, _) = run(&topo, &mut policy, 100, &deltas);
    let rates: Vec<(u32, String, u64, u32)> = out
        .iter()
        .flat_map(|w| &w.records)
        .filter_map(|r| match r.body {
            RecordBody::Flow(f) => {
                Some((r.port, f.tuple.src.to_string(), f.packets, f.sampling_rate))
            }
            _ => None,
        })
        .collect();
    assert_eq!(
        rates,
        [
            (0, "10.0.0.1".to_string(), 1536, 1024),
            (0, "10.0.0.2".to_string(), 1, 1),
            (1, "10.0.0.3".to_string(), 64, 64),
        ]
    );
}

#[test]
fn shards_split_every_slot_once_the_first_lighter() {
    for weight in [0.0, 0.6, 1.0] {
        for count in 1..=70 {
            let shards = Shard::split(count, weight);
            assert_eq!(shards.len(), count as usize);
            for port in 0..10_000u32 {
                let owners = shards.iter().filter(|s| s.owns(port)).count();
                assert_eq!(owners, 1, "port {port} with {count} shards: {shards:?}");
            }
        }
    }
    // The reading thread's shard may keep nothing.
    assert!(Shard::split(2, 0.0)[0].is_empty());
    assert!((0..10_000).all(|p| !Shard::split(2, 0.0)[0].owns(p)));
    assert!(!Shard::split(2, 0.6)[0].is_empty() && !Shard::ALL.is_empty());
    let two = Shard::split(2, 0.6);
    assert_eq!(two[0].to - two[0].from, 24, "{two:?}");
    // A few ports spread over the shards too.
    assert!((0..8).any(|p| two[0].owns(p)) && (0..8).any(|p| two[1].owns(p)));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(100))]
    /// Shards fed the same deltas close the same windows, and their pieces
    /// merged by interface-id are the one aggregator's records.
    #[test]
    fn shards_together_write_what_one_aggregator_writes(
        raw in proptest::collection::vec((0u32..8, 0u8..4, 0u16..3, 0u64..1500, any::<bool>()), 0..200),
        count in 2u32..4,
        cap in 1u32..4,
    ) {
        let topo = topology(8, &[TrafficType::All, TrafficType::Reject]);
        let mut t = 0u64;
        let deltas: Vec<FlowDelta> = raw.iter().map(|&(port, host, dport, dt, egress)| {
            t += dt;
            let mut d = delta(port, &format!("10.0.0.{host}"), dport, t, 100);
            d.direction = if egress { Direction::Egress } else { Direction::Ingress };
            d
        }).collect();
        let mut policy = ScriptedPolicy { reject_port: 3, asked: 0 };
        let (whole, _) = run(&topo, &mut policy, cap, &deltas);
        let mut rank: Vec<usize> = (0..topo.ports.len()).collect();
        rank.sort_by(|&a, &b| topo.ports[a].id.cmp(&topo.ports[b].id));
        let mut place = vec![0; rank.len()];
        for (r, p) in rank.into_iter().enumerate() {
            place[p] = r;
        }
        let mut pieces = Vec::new();
        for shard in Shard::split(count, 0.6) {
            let mut agg = Aggregator::new(config(cap));
            agg.set_shard(shard);
            let mut policy = ScriptedPolicy { reject_port: 3, asked: 0 };
            let mut out = Vec::new();
            for d in &deltas {
                agg.observe(&topo, &mut policy, d);
                agg.close_until(&topo, d.first, &mut out);
            }
            agg.finish(&topo, &mut out);
            pieces.push(out);
        }
        for p in &pieces {
            prop_assert_eq!(
                p.iter().map(|w| w.start).collect::<Vec<_>>(),
                whole.iter().map(|w| w.start).collect::<Vec<_>>()
            );
        }
        for (i, w) in whole.iter().enumerate() {
            let mut merged: Vec<_> = pieces.iter().flat_map(|p| p[i].records.iter().copied()).collect();
            merged.sort_by_key(|r| place[r.port as usize]);
            prop_assert_eq!(&merged, &w.records);
            let hits: u64 = pieces.iter().flat_map(|p| &p[i].rule_hits).map(|h| h.flows).sum();
            prop_assert_eq!(hits, w.rule_hits.iter().map(|h| h.flows).sum::<u64>());
        }
    }
}

/// The reading thread's aggregator keeps no port and only notes packets'
/// times: it still closes the windows the others close, across a gap
/// longer than the NODATA a step reports (it opens the windows the
/// packets fall in, as they do).
#[test]
fn an_aggregator_keeping_no_port_closes_the_windows_the_others_close() {
    let topo = topology(2, &[TrafficType::All]);
    let mut policy = ScriptedPolicy {
        reject_port: 9,
        asked: 0,
    };
    let day = MAX_GAP_NODATA_SECS;
    let deltas = [
        delta(0, "10.0.0.1", 53, 600, 10),
        delta(1, "10.0.0.2", 53, 700 + 3 * day, 10),
        delta(0, "10.0.0.1", 53, 1300 + 3 * day, 10),
    ];
    let (whole, _) = run(&topo, &mut policy, 10, &deltas);
    let mut reader = Aggregator::new(config(10));
    reader.set_shard(Shard::split(2, 0.0)[0]);
    assert!(reader.keeps_no_port());
    let mut out = Vec::new();
    for d in &deltas {
        assert!(reader.observe_time(d.first, d.packets));
        reader.close_until(&topo, d.first, &mut out);
    }
    reader.finish(&topo, &mut out);
    let windows = |ws: &[ClosedWindow]| ws.iter().map(|w| (w.start, w.end)).collect::<Vec<_>>();
    assert_eq!(windows(&out), windows(&whole));
    assert!(out.iter().all(|w| w.records.is_empty()));
    assert!(whole.iter().any(|w| !w.records.is_empty()));
}
