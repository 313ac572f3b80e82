//! The live agent on the testbed: `vpcflow_tools::testbed` builds
//! `tests/live/testbed.toml` as namespaces, `vpcflow agent` captures on the
//! ports' host-side interfaces into a store, real traffic runs between the
//! ports, and the records must count it exactly: N datagrams of known size,
//! pings, a flow the kernel's nftables drop (REJECT by the deciding rule), a
//! TCP transfer whose packets and bytes equal what the kernel counted on the
//! veth, a flood of distinct 5-tuples past the record cap (SKIPDATA with the
//! exact remainder), NODATA for the silent port; the window's records are in
//! the store within 5 s of its end; SIGTERM flushes a partial window. The
//! same scenario runs once per capture source (eBPF, AF_PACKET), each on a
//! testbed of its own.
//!
//! Needs root, iproute2, nftables, ping and python3: `#[ignore]`d so a plain
//! `cargo test` says it did not run; `scripts/test.sh` (and CI, as root) runs
//! it with `--include-ignored`. The eBPF run needs a build with the `ebpf`
//! feature (scripts/test.sh builds with it).

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

mod common;
use common::testbed::{BOUND, Testbed, inventory, now, ok};
use common::vpcflow;

const A: &str = "33333333-0000-4000-8000-00000000000a";

#[test]
#[ignore = "needs root, network namespaces, nftables, ping and a build with --features ebpf: scripts/test.sh runs it as root"]
fn the_ebpf_agent_counts_live_traffic_exactly() {
    the_agent_counts_live_traffic_exactly("ebpf");
}

#[test]
#[ignore = "needs root, network namespaces, nftables and ping: scripts/test.sh runs it as root"]
fn the_af_packet_agent_counts_live_traffic_exactly() {
    the_agent_counts_live_traffic_exactly("af-packet");
}

/// Flood datagrams from A to B, one per source port.
const FLOOD: u64 = 500;
/// The testbed's `max_records_per_window`.
const RECORD_CAP: usize = 50;

fn the_agent_counts_live_traffic_exactly(capture: &str) {
    assert_eq!(
        ok(Command::new("id").arg("-u")).trim(),
        "0",
        "the live agent test needs root"
    );
    let bed = Testbed::up(&capture[..1]);
    // The host's bridges announce their multicast groups (IGMP) a few times
    // after they come up; let that pass, so port C is silent.
    std::thread::sleep(Duration::from_secs(4));
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    // Start early in a 60 s window, so the traffic lands in one window and
    // its close comes soon.
    while now() % 60.0 > 40.0 {
        std::thread::sleep(Duration::from_millis(200));
    }
    let mut agent = bed
        .in_host(env!("CARGO_BIN_EXE_vpcflow"))
        .args(["agent", "--capture", capture, "--window", "60", "--config"])
        .arg(inventory())
        .arg("--store")
        .arg(&store)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Each line on stdout is a durable store file; note when it came.
    let (tx, rx) = mpsc::channel::<(f64, String)>();
    let stdout = agent.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send((now(), line));
        }
    });
    let (etx, erx) = mpsc::channel::<String>();
    let stderr = agent.stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = etx.send(line);
        }
    });
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut log = Vec::new();
    let running = if capture == "ebpf" {
        "agent running (eBPF)"
    } else {
        "agent running (AF_PACKET)"
    };
    while !log.iter().any(|l: &String| l.contains(running)) {
        assert!(
            Instant::now() < deadline,
            "the agent did not start: {log:?}"
        );
        if let Ok(l) = erx.recv_timeout(Duration::from_millis(100)) {
            log.push(l);
        }
    }
    let traffic_start = now();
    // B listens on 5000 (allowed) so no ICMP unreachable comes back; 6000 is
    // not allowed by B's security group, so B's nftables drop it.
    let listener = bed.serve_on_b(&format!("import socket,time\ns=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\ns.bind(('0.0.0.0',5000))\n{BOUND}\ns.settimeout(8)\nn=0\ntry:\n  while n<25:\n    s.recv(2000); n+=1\nexcept Exception: pass\nprint(n)"));
    bed.exec(
        A,
        &[
            "python3",
            "-c",
            "import socket\ns=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\ns.bind(('0.0.0.0',40000))\n\
             for i in range(25): s.sendto(b'x'*100,('10.77.2.20',5000))\n\
             for i in range(7): s.sendto(b'y'*50,('10.77.2.20',6000))",
        ],
    );
    let received = listener.wait_with_output().unwrap();
    assert_eq!(String::from_utf8_lossy(&received.stdout).trim(), "25");
    bed.exec(
        A,
        &["ping", "-c", "4", "-i", "0.2", "-s", "56", "10.77.2.20"],
    );
    // A TCP transfer of 300 kB from A to B:5201, with the kernel's own
    // count on A's veth around it (every frame on it is this transfer's).
    let server = bed.serve_on_b(&format!("import socket\ns=socket.socket()\ns.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1)\ns.bind(('0.0.0.0',5201))\ns.listen(1)\n{BOUND}\ns.settimeout(8)\nc,_=s.accept()\nn=0\nwhile True:\n  d=c.recv(65536)\n  if not d: break\n  n+=len(d)\nc.close()\nprint(n)"));
    let (veth_packets, veth_bytes) = bed.veth_l3("vfbtap-a");
    bed.exec(
        A,
        &[
            "python3",
            "-c",
            "import socket\ns=socket.create_connection(('10.77.2.20',5201))\ns.sendall(b't'*300000)\ns.close()",
        ],
    );
    let received = server.wait_with_output().unwrap();
    assert_eq!(String::from_utf8_lossy(&received.stdout).trim(), "300000");
    std::thread::sleep(Duration::from_millis(200));
    let (after_packets, after_bytes) = bed.veth_l3("vfbtap-a");
    let tcp_on_veth = (after_packets - veth_packets, after_bytes - veth_bytes);
    // A flood of distinct 5-tuples (a listener on B reads them, so no ICMP
    // comes back): past the record cap, the rest is SKIPDATA.
    // Its receive buffer is forced large (SO_RCVBUFFORCE) and the sender
    // paced a little: on a loaded machine the listener fell behind and the
    // kernel dropped datagrams at its socket, before the count began.
    let sink = bed.serve_on_b(&format!("import socket\ns=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\ns.setsockopt(socket.SOL_SOCKET,33,1<<23)\ns.bind(('0.0.0.0',5201))\n{BOUND}\ns.settimeout(3)\nn=0\ntry:\n  while True:\n    s.recv(2000); n+=1\nexcept Exception: pass\nprint(n)"));
    bed.exec(
        A,
        &[
            "python3",
            "-c",
            &format!(
                "import socket,random,time\nports=list(range(20000,20000+{FLOOD}))\nrandom.shuffle(ports)\n\
                 for p in ports:\n  s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\n  \
                 s.bind(('0.0.0.0',p))\n  s.sendto(b'f'*20,('10.77.2.20',5201))\n  s.close()\n  time.sleep(0.0005)"
            ),
        ],
    );
    let sunk = sink.wait_with_output().unwrap();
    assert_eq!(
        String::from_utf8_lossy(&sunk.stdout).trim(),
        FLOOD.to_string()
    );
    let traffic_end = now();

    let window_start = (traffic_start / 60.0).floor() * 60.0;
    assert!(
        traffic_end < window_start + 60.0,
        "the traffic crossed a window boundary; the test waits for the start of a window to avoid that"
    );
    let window_end = window_start + 60.0;
    // The window closes at its end (plus the 2 s grace): its file must be in
    // the store within 5 s of the end.
    let mut files = Vec::new();
    let wait_until = Instant::now() + Duration::from_secs_f64(window_end - now() + 15.0);
    while files.is_empty() && Instant::now() < wait_until {
        if let Ok((at, line)) = rx.recv_timeout(Duration::from_millis(200)) {
            let delay = at - window_end;
            assert!(
                delay <= 5.0,
                "{line} was written {delay:.1} s after its window's end"
            );
            files.push(line);
        }
    }
    assert!(!files.is_empty(), "no window was written");
    // SIGTERM: the open window is flushed as a partial one.
    ok(Command::new("kill").args(["-TERM", &agent.id().to_string()]));
    let status = agent.wait().unwrap();
    assert!(status.success(), "the agent exited with {status}");
    let mut partial = Vec::new();
    while let Ok((_, line)) = rx.recv_timeout(Duration::from_secs(2)) {
        partial.push(line);
    }
    assert!(
        partial.iter().any(|l| l.contains("-partial")),
        "no partial window on SIGTERM: {partial:?}"
    );

    // The records of the traffic's window.
    let rows = ok(vpcflow().args(["query", "--store"]).arg(&store).args([
        "--format",
        "csv",
        "--since",
        &format!("{}", window_start as u64),
        "--until",
        &format!("{}", window_end as u64),
        "--sql",
        "SELECT interface_id, direction, srcaddr, dstaddr, srcport, dstport, protocol, \
             packets, bytes, action, log_status, rule_id FROM records",
    ]));
    let mut by_key: BTreeMap<String, String> = BTreeMap::new();
    let mut flood: BTreeMap<String, (usize, u64, u64)> = BTreeMap::new();
    let mut skipped: BTreeMap<String, (u64, u64)> = BTreeMap::new();
    let mut records: BTreeMap<String, usize> = BTreeMap::new();
    for line in rows.lines().skip(1) {
        let f: Vec<&str> = line.split(',').collect();
        let port = f[0][34..].to_string();
        *records.entry(port.clone()).or_default() += 1;
        let (packets, bytes) = (f[7].parse().unwrap_or(0), f[8].parse().unwrap_or(0));
        if f[10] == "SKIPDATA" {
            skipped.insert(port, (packets, bytes));
            continue;
        }
        if f[5] == "5201" && f[6] == "17" {
            let e = flood.entry(port).or_default();
            *e = (e.0 + 1, e.1 + packets, e.2 + bytes);
            continue;
        }
        let key = format!("{port} {} {}>{} {} {}", f[1], f[2], f[3], f[5], f[6]);
        by_key.insert(
            key,
            format!("{} {} {} {} {}", f[7], f[8], f[9], f[10], f[11]),
        );
    }
    let want = |k: &str, v: &str| {
        assert_eq!(
            by_key.get(k).map(String::as_str),
            Some(v),
            "{k}: all records:\n{rows}"
        );
    };
    // 25 datagrams of 100 bytes: 25 x (100 + 8 + 20) bytes, both ends.
    want(
        "0a egress 10.77.1.10>10.77.2.20 5000 17",
        "25 3200 ACCEPT OK allow-all-out",
    );
    want(
        "0b ingress 10.77.1.10>10.77.2.20 5000 17",
        "25 3200 ACCEPT OK 44444444-0000-4000-8000-000000000001/2",
    );
    // 7 datagrams the kernel dropped at B: REJECT by the default deny.
    want(
        "0a egress 10.77.1.10>10.77.2.20 6000 17",
        "7 546 ACCEPT OK allow-all-out",
    );
    want(
        "0b ingress 10.77.1.10>10.77.2.20 6000 17",
        "7 546 REJECT OK default-deny",
    );
    // 4 pings of 56 bytes: 84 bytes each way, echo and reply.
    want(
        "0a egress 10.77.1.10>10.77.2.20 0 1",
        "4 336 ACCEPT OK allow-all-out",
    );
    want(
        "0b ingress 10.77.1.10>10.77.2.20 0 1",
        "4 336 ACCEPT OK 44444444-0000-4000-8000-000000000001/1",
    );
    want(
        "0b egress 10.77.2.20>10.77.1.10 0 1",
        "4 336 ACCEPT OK stateful-return",
    );
    want(
        "0a ingress 10.77.2.20>10.77.1.10 0 1",
        "4 336 ACCEPT OK stateful-return",
    );
    // The TCP transfer, both directions at A, is what the veth carried.
    let tcp_at_a: Vec<(u64, u64)> = by_key
        .iter()
        .filter(|(k, _)| k.starts_with("0a ") && k.ends_with(" 6"))
        .map(|(_, v)| {
            let f: Vec<&str> = v.split(' ').collect();
            (f[0].parse().unwrap(), f[1].parse().unwrap())
        })
        .collect();
    assert_eq!(tcp_at_a.len(), 2, "a record each way: {rows}");
    assert_eq!(
        (
            tcp_at_a.iter().map(|t| t.0).sum::<u64>(),
            tcp_at_a.iter().map(|t| t.1).sum::<u64>()
        ),
        tcp_on_veth,
        "TCP packets and layer-3 bytes at A vs the veth's counters: {rows}"
    );
    want(
        "0b ingress 10.77.1.10>10.77.2.20 5201 6",
        &by_key["0a egress 10.77.1.10>10.77.2.20 5201 6"]
            .replace("allow-all-out", "44444444-0000-4000-8000-000000000001/4"),
    );
    // The flood: the cap holds at both ends and SKIPDATA has the rest,
    // exactly (20 bytes of payload: 48 bytes a datagram).
    for port in ["0a", "0b"] {
        assert_eq!(records[port], RECORD_CAP + 1, "{port}: {rows}");
        let (kept, kept_packets, kept_bytes) = flood[port];
        let (skip_packets, skip_bytes) = skipped[port];
        assert_eq!(kept_packets, kept as u64, "one datagram a flow");
        assert_eq!(kept_bytes, 48 * kept as u64);
        assert_eq!(kept_packets + skip_packets, FLOOD, "{port}: {rows}");
        assert_eq!(skip_bytes, 48 * skip_packets);
    }
    // C was silent.
    want("0c  >  ", "   NODATA ");
    assert_eq!(records["0c"], 1, "{rows}");
}
