//! The live agent on the testbed: `vpcflow testbed up` builds
//! `tests/live/testbed.toml` as namespaces, `vpcflow agent` captures on the
//! ports' host-side interfaces (AF_PACKET) into a store, real traffic runs
//! between the ports, and the records must count it exactly: N datagrams of
//! known size, pings, a flow the kernel's nftables drop (REJECT by the
//! deciding rule), NODATA for the silent port; the window's records are in
//! the store within 5 s of its end; SIGTERM flushes a partial window.
//!
//! Needs root, iproute2, nftables, ping and python3: `#[ignore]`d so a plain
//! `cargo test` says it did not run; `scripts/test.sh` (and CI, as root) runs
//! it with `--include-ignored`.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime};

mod common;
use common::vpcflow;

const A: &str = "33333333-0000-4000-8000-00000000000a";
const B: &str = "33333333-0000-4000-8000-00000000000b";
const C: &str = "33333333-0000-4000-8000-00000000000c";

fn inventory() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/live/testbed.toml")
}

fn ok(cmd: &mut Command) -> String {
    let o = cmd.output().unwrap();
    assert!(
        o.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// The testbed of one test run, taken down when dropped (even on failure).
struct Testbed(String);

impl Testbed {
    fn up() -> Testbed {
        let prefix = format!("vl{}", std::process::id() % 100_000);
        ok(vpcflow()
            .args(["testbed", "--prefix", &prefix, "up", "--config"])
            .arg(inventory()));
        Testbed(prefix)
    }
    fn exec(&self, port: &str, args: &[&str]) -> String {
        ok(vpcflow()
            .args(["testbed", "--prefix", &self.0, "exec", "--config"])
            .arg(inventory())
            .arg(port)
            .arg("--")
            .args(args))
    }
}

impl Drop for Testbed {
    fn drop(&mut self) {
        let _ = vpcflow()
            .args(["testbed", "--prefix", &self.0, "down"])
            .status();
    }
}

fn now() -> f64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

#[test]
#[ignore = "needs root, network namespaces, nftables and ping: scripts/test.sh runs it as root"]
fn the_agent_counts_live_traffic_exactly() {
    assert_eq!(
        ok(Command::new("id").arg("-u")).trim(),
        "0",
        "the live agent test needs root"
    );
    let bed = Testbed::up();
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
    let mut agent = Command::new("ip")
        .args(["netns", "exec", &format!("{}-host", bed.0)])
        .arg(env!("CARGO_BIN_EXE_vpcflow"))
        .args([
            "agent",
            "--capture",
            "af-packet",
            "--window",
            "60",
            "--config",
        ])
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
    while !log.iter().any(|l: &String| l.contains("agent running")) {
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
    let listener = Command::new("ip")
        .args(["netns", "exec", &format!("{}-p1", bed.0), "python3", "-c"])
        .arg("import socket,time\ns=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\ns.bind(('0.0.0.0',5000))\ns.settimeout(8)\nn=0\ntry:\n  while n<25:\n    s.recv(2000); n+=1\nexcept Exception: pass\nprint(n)")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
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
    for line in rows.lines().skip(1) {
        let f: Vec<&str> = line.split(',').collect();
        let key = format!(
            "{} {} {}>{} {} {}",
            &f[0][34..],
            f[1],
            f[2],
            f[3],
            f[5],
            f[6]
        );
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
    // C was silent.
    want("0c  >  ", "   NODATA ");
    assert_eq!(rows.lines().filter(|l| l.contains(C)).count(), 1, "{rows}");
    // Nothing else: A's and B's records are exactly the ones above.
    assert_eq!(rows.lines().filter(|l| l.contains(A)).count(), 4, "{rows}");
    assert_eq!(rows.lines().filter(|l| l.contains(B)).count(), 4, "{rows}");
}
