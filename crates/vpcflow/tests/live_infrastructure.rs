//! Infrastructure traffic on the live testbed, IPv6 on: `tests/live/testbed-v6.toml`
//! built as namespaces (nftables from the inventory), `vpcflow agent` on the
//! ports' host-side interfaces. Every port's neighbour discovery, router
//! solicitations and multicast listener reports (which no rule of the
//! inventory mentions) must be recorded ACCEPT `implicit-allow`, as the
//! kernel passed them; an echo request the kernel dropped between the same
//! two addresses must still be its own REJECT record with exactly its
//! packets; and every record's action must be the kernel's verdict.
//!
//! Needs root, iproute2, nftables, ping and python3: `#[ignore]`d so a plain
//! `cargo test` says it did not run; `scripts/test.sh` (and CI, as root) runs
//! it with `--include-ignored`. The eBPF run needs a build with the `ebpf`
//! feature (scripts/test.sh builds with it).

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

mod common;
use common::testbed::{BOUND, Testbed, now, ok};
use common::vpcflow;

const A: &str = "33333333-0000-4000-8000-00000000000a";
const B: &str = "33333333-0000-4000-8000-00000000000b";
const A6: &str = "2001:db8:78:1::10";
const B6: &str = "2001:db8:78:2::20";
const DATAGRAMS: u64 = 10;
const PINGS: u64 = 4;

fn inventory() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/live/testbed-v6.toml")
}

#[test]
#[ignore = "needs root, network namespaces, nftables, ping and a build with --features ebpf: scripts/test.sh runs it as root"]
fn the_ebpf_agent_records_infrastructure_traffic_as_the_kernel_passed_it() {
    infrastructure_traffic_is_recorded_as_the_kernel_passed_it("ebpf");
}

#[test]
#[ignore = "needs root, network namespaces, nftables and ping: scripts/test.sh runs it as root"]
fn the_af_packet_agent_records_infrastructure_traffic_as_the_kernel_passed_it() {
    infrastructure_traffic_is_recorded_as_the_kernel_passed_it("af-packet");
}

/// One record row of the query below.
#[derive(Debug)]
struct Row {
    port: String,
    direction: String,
    src: String,
    dst: String,
    dstport: String,
    protocol: String,
    packets: u64,
    action: String,
    rule: String,
}

fn infrastructure_traffic_is_recorded_as_the_kernel_passed_it(capture: &str) {
    assert_eq!(
        ok(Command::new("id").arg("-u")).trim(),
        "0",
        "the live infrastructure test needs root"
    );
    // A prefix of at most 8 characters: "vl", this letter, a process id.
    let tag = if capture == "ebpf" { "i" } else { "j" };
    let bed = Testbed::up_with(tag, inventory());
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let started = now();
    let mut agent = bed
        .in_host(env!("CARGO_BIN_EXE_vpcflow"))
        .args(["agent", "--capture", capture, "--window", "60", "--config"])
        .arg(inventory())
        .arg("--store")
        .arg(&store)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (tx, rx) = mpsc::channel::<String>();
    let stderr = agent.stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut log = Vec::new();
    while !log.iter().any(|l: &String| l.contains("agent running")) {
        assert!(
            Instant::now() < deadline,
            "the agent did not start: {log:?}"
        );
        if let Ok(l) = rx.recv_timeout(Duration::from_millis(100)) {
            log.push(l);
        }
    }

    // A new address on every port: duplicate address detection (a neighbour
    // solicitation from ::) and a multicast listener report for its
    // solicited-node group.
    for (port, address) in [(A, "2001:db8:78:1::99/64"), (B, "2001:db8:78:2::99/64")] {
        bed.exec(port, &["ip", "-6", "addr", "add", address, "dev", "eth0"]);
    }
    // UDP over IPv6 from A to B:5000, which B's group allows; its first
    // packets need neighbour discovery with both gateways.
    let listener = bed.serve_on_b(&format!("import socket\ns=socket.socket(socket.AF_INET6,socket.SOCK_DGRAM)\ns.bind(('::',5000))\n{BOUND}\ns.settimeout(8)\nn=0\ntry:\n  while n<{DATAGRAMS}:\n    s.recv(2000); n+=1\nexcept Exception: pass\nprint(n)"));
    bed.exec(
        A,
        &[
            "python3",
            "-c",
            &format!("import socket\ns=socket.socket(socket.AF_INET6,socket.SOCK_DGRAM)\ns.bind(('{A6}',0))\nfor i in range({DATAGRAMS}): s.sendto(b'x'*100,('{B6}',5000))"),
        ],
    );
    let received = listener.wait_with_output().unwrap();
    assert_eq!(
        String::from_utf8_lossy(&received.stdout).trim(),
        DATAGRAMS.to_string(),
        "the kernel delivers what B's group allows"
    );
    // Echo requests between the same two addresses: no rule allows ICMPv6,
    // so B's nftables drop them (ping gets no reply and says so).
    let ns_a = vpcflow_tools::testbed::namespace(&bed.0, &inventory(), A).unwrap();
    let ping = Command::new("ip")
        .args(["netns", "exec", &ns_a, "ping", "-6", "-c"])
        .arg(PINGS.to_string())
        .args(["-i", "0.2", "-W", "1", "-I", A6, B6])
        .output()
        .unwrap();
    assert!(
        !ping.status.success(),
        "the kernel must drop the echo requests: {}",
        String::from_utf8_lossy(&ping.stdout)
    );
    // Let duplicate address detection and the reports run their course.
    std::thread::sleep(Duration::from_secs(2));
    ok(Command::new("kill").args(["-TERM", &agent.id().to_string()]));
    let status = agent.wait().unwrap();
    assert!(status.success(), "the agent exited with {status}");

    let since = (started / 60.0).floor() as u64 * 60;
    let rows = ok(vpcflow().args(["query", "--store"]).arg(&store).args([
        "--format",
        "csv",
        "--since",
        &since.to_string(),
        "--until",
        &(since + 600).to_string(),
        "--sql",
        "SELECT interface_id, direction, srcaddr, dstaddr, dstport, protocol, \
             packets, action, log_status, rule_id FROM records WHERE log_status = 'OK'",
    ]));
    let records: Vec<Row> = rows
        .lines()
        .skip(1)
        .map(|line| {
            let f: Vec<&str> = line.split(',').collect();
            Row {
                port: f[0].to_string(),
                direction: f[1].to_string(),
                src: f[2].to_string(),
                dst: f[3].to_string(),
                dstport: f[4].to_string(),
                protocol: f[5].to_string(),
                packets: f[6].parse().unwrap(),
                action: f[7].to_string(),
                rule: f[9].to_string(),
            }
        })
        .collect();
    let echo = |r: &&Row| r.protocol == "58" && r.src == A6 && r.dst == B6;

    // Every port's neighbour discovery and listener reports: ACCEPT
    // implicit-allow, both ways for discovery.
    for port in [A, B] {
        let infrastructure: Vec<&Row> = records
            .iter()
            .filter(|r| r.port == port && r.protocol == "58" && r.rule == "implicit-allow")
            .collect();
        let has = |what: &str, f: &dyn Fn(&Row) -> bool| {
            assert!(
                infrastructure.iter().any(|r| f(r)),
                "{port}: no {what} recorded implicit-allow; records:\n{rows}"
            );
        };
        has("listener report (to ff02::16)", &|r| {
            r.direction == "egress" && r.dst == "ff02::16"
        });
        has("solicitation (to a solicited-node group)", &|r| {
            r.direction == "egress" && r.dst.starts_with("ff02::1:ff")
        });
        has("advertisement or solicitation received", &|r| {
            r.direction == "ingress"
        });
        assert!(
            infrastructure.iter().all(|r| r.action == "ACCEPT"),
            "{rows}"
        );
    }
    // The kernel passed every ICMPv6 message but the echo requests at B.
    for r in records.iter().filter(|r| r.protocol == "58") {
        if echo(&r) {
            continue;
        }
        assert_eq!(
            (r.action.as_str(), r.rule.as_str()),
            ("ACCEPT", "implicit-allow"),
            "{r:?}: all records:\n{rows}"
        );
    }
    // The echo requests: their own records, exactly their packets, whatever
    // discovery ran between the same addresses.
    let mut echoes: BTreeMap<(String, String, String), u64> = BTreeMap::new();
    for r in records.iter().filter(echo) {
        *echoes
            .entry((r.port.clone(), r.direction.clone(), r.action.clone()))
            .or_default() += r.packets;
    }
    let key = |p: &str, d: &str, a: &str| (p.to_string(), d.to_string(), a.to_string());
    assert_eq!(
        echoes,
        BTreeMap::from([
            (key(A, "egress", "ACCEPT"), PINGS),
            (key(B, "ingress", "REJECT"), PINGS),
        ]),
        "{rows}"
    );
    let dropped: Vec<&Row> = records.iter().filter(|r| echo(r) && r.port == B).collect();
    assert!(dropped.iter().all(|r| r.rule == "default-deny"), "{rows}");
    // The datagrams, accepted at both ends by the rules that allow them.
    for (port, direction, rule) in [
        (A, "egress", "allow-v6-out"),
        (B, "ingress", "44444444-0000-4000-8000-000000000001/1"),
    ] {
        let udp: Vec<&Row> = records
            .iter()
            .filter(|r| r.port == port && r.direction == direction)
            .filter(|r| r.protocol == "17" && r.dstport == "5000")
            .collect();
        assert_eq!(
            udp.iter().map(|r| r.packets).sum::<u64>(),
            DATAGRAMS,
            "{rows}"
        );
        assert!(
            udp.iter().all(|r| r.action == "ACCEPT" && r.rule == rule),
            "{port} {direction}: {rows}"
        );
    }
    // Nothing else was dropped, so nothing else may say REJECT, but for the
    // IGMP reports of the host's bridges (IPv4 multicast, not SPEC §1's
    // infrastructure): no group allows them, and the ports' nftables drop
    // them too.
    let rejects: Vec<&Row> = records
        .iter()
        .filter(|r| r.action == "REJECT" && !echo(r))
        .filter(|r| !(r.protocol == "2" && r.dst.starts_with("224.0.0.")))
        .collect();
    assert!(rejects.is_empty(), "{rejects:?}: all records:\n{rows}");
}
