//! The collector on loopback: IPFIX over TCP framed across reads, a
//! session that sends what is not IPFIX closed, malformed datagrams
//! counted by reason, and what was received before a stop written.

mod common;

use std::io::Write;
use std::net::{TcpStream, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use vpcflow_core::aggregate::AggregatorConfig;
use vpcflow_core::{Inventory, WindowLength};
use vpcflow_flowexport::{IpfixEncoder, IpfixRecord};
use vpcflow_runtime::{Collector, Driver, EXPORT_GRACE, SystemClock};

use common::{Collected, INVENTORY};

fn record(packets: u64) -> IpfixRecord<'static> {
    IpfixRecord {
        src: [192, 0, 2, 7].into(),
        dst: [10, 0, 1, 10].into(),
        src_port: 40_000,
        dst_port: 443,
        protocol: 6,
        tcp_flags: 0x10,
        packets,
        bytes: packets * 100,
        start: 1_800_000_000,
        end: 1_800_000_600,
        ingress: true,
        accepted: true,
        interface_id: "pa",
        flow_log_id: "fl",
        log_status: "OK",
        decided_by: "-",
        policy_id: "-",
        rule_id: "-",
    }
}

#[test]
fn tcp_sessions_are_framed_by_message_and_bad_input_is_counted_not_fatal() {
    let inv = Inventory::from_toml("t.toml", INVENTORY).unwrap();
    let config = AggregatorConfig {
        window: WindowLength::DEFAULT,
        max_records: 400_000,
        grace_ns: EXPORT_GRACE.as_nanos() as u64,
    };
    let collector = Collector::bind(
        "127.0.0.1:0".parse().unwrap(),
        Some("127.0.0.1:0".parse().unwrap()),
    )
    .unwrap();
    let udp = collector.udp_addr().unwrap();
    let tcp = collector.tcp_addr().unwrap().unwrap();
    let stop = AtomicBool::new(false);
    let (report, sink) = std::thread::scope(|s| {
        let running = s.spawn(|| {
            let mut driver = Driver::new(&inv, config);
            let mut sink = Collected::new("custom:interface-id,srcaddr,packets,bytes,log-status");
            let report = collector
                .run(&mut driver, &mut sink, None, &SystemClock, &stop)
                .unwrap();
            (report, sink)
        });
        // Two messages (templates, then data), written a few bytes at a
        // time: the collector must frame them by their lengths.
        let mut encoder = IpfixEncoder::for_session(1, 60_000);
        let mut stream = Vec::new();
        encoder
            .encode(1_800_000_600, &[record(3)], &mut |m| {
                stream.extend_from_slice(m);
                Ok::<(), ()>(())
            })
            .unwrap();
        encoder
            .encode(1_800_000_600, &[record(4)], &mut |m| {
                stream.extend_from_slice(m);
                Ok::<(), ()>(())
            })
            .unwrap();
        let mut session = TcpStream::connect(tcp).unwrap();
        for chunk in stream.chunks(7) {
            session.write_all(chunk).unwrap();
            session.flush().unwrap();
        }
        drop(session);
        // A session that is not IPFIX: closed, counted.
        let mut bad = TcpStream::connect(tcp).unwrap();
        bad.write_all(b"GET / HTTP/1.1\r\n\r\n").unwrap();
        drop(bad);
        // UDP datagrams that are no export.
        let sender = UdpSocket::bind("127.0.0.1:0").unwrap();
        sender.send_to(&[0, 9, 0], udp).unwrap();
        sender.send_to(&[0, 77, 0, 0, 1, 2], udp).unwrap();
        std::thread::sleep(Duration::from_millis(600));
        stop.store(true, Ordering::Relaxed);
        running.join().unwrap()
    });
    assert_eq!(report.flows, 2, "{report}");
    assert_eq!(report.sessions, 2, "{report}");
    assert_eq!(
        report
            .malformed
            .iter()
            .map(|(k, n)| (*k, *n))
            .collect::<Vec<_>>(),
        [("short-header", 1), ("unknown-version", 2)],
        "{report}"
    );
    let records: Vec<String> = sink.windows.into_iter().flat_map(|w| w.2).collect();
    assert_eq!(records, ["pa 192.0.2.7 7 700 OK"]);
}
