//! Live check against the kernel: the example VPC built from real network
//! namespaces, veth pairs and bridges, its security groups and network ACL
//! enforced by nftables rulesets generated from the inventory
//! (`vpcflow_policy::nft`), real traffic, captures taken with tcpdump on the
//! ports and on the outside host, then `vpcflow ingest`: every flow the
//! kernel let through must be ACCEPT and every flow it dropped REJECT.
//!
//! Needs root, iproute2, nftables, tcpdump and python3. It is `#[ignore]`d so
//! that `cargo test` as a normal user says it did not run; `scripts/test.sh`
//! (and so CI, which is root) runs it with `--include-ignored`.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

mod common;
use common::{examples, vpcflow};

fn sh(args: &[&str]) -> String {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .unwrap_or_else(|e| panic!("{args:?}: {e}"));
    assert!(
        out.status.success(),
        "{args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Namespaces of one run, removed when dropped (even on failure).
struct Bed {
    prefix: String,
    names: Vec<String>,
    children: Vec<Child>,
}

impl Bed {
    fn ns(&self, short: &str) -> String {
        format!("{}{short}", self.prefix)
    }
    fn add(&mut self, short: &str) -> String {
        let n = self.ns(short);
        sh(&["ip", "netns", "add", &n]);
        sh(&["ip", "-n", &n, "link", "set", "lo", "up"]);
        self.names.push(n.clone());
        n
    }
    fn exec(&self, ns: &str, args: &[&str]) -> String {
        let mut v = vec!["ip", "netns", "exec", ns];
        v.extend_from_slice(args);
        sh(&v)
    }
    /// Starts a long-running command in `ns` and waits for `ready` on stdout
    /// or stderr.
    fn spawn(&mut self, ns: &str, args: &[&str], ready: &str, on_stderr: bool) {
        let mut c = Command::new("ip")
            .args(["netns", "exec", ns])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stream: Box<dyn std::io::Read + Send> = if on_stderr {
            Box::new(c.stderr.take().unwrap())
        } else {
            Box::new(c.stdout.take().unwrap())
        };
        let (tx, rx) = std::sync::mpsc::channel();
        let want = ready.to_string();
        std::thread::spawn(move || {
            for line in BufReader::new(stream).lines().map_while(Result::ok) {
                if line.contains(&want) {
                    let _ = tx.send(());
                }
            }
        });
        rx.recv_timeout(Duration::from_secs(10))
            .unwrap_or_else(|_| panic!("{args:?} in {ns} never said {ready:?}"));
        self.children.push(c);
    }
}

impl Drop for Bed {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
        for n in &self.names {
            let _ = Command::new("ip").args(["netns", "del", n]).status();
        }
    }
}

fn veth(bed: &Bed, a_ns: &str, a: &str, b_ns: &str, b: &str) {
    sh(&[
        "ip", "link", "add", a, "netns", a_ns, "type", "veth", "peer", "name", b, "netns", b_ns,
    ]);
    sh(&["ip", "-n", a_ns, "link", "set", a, "up"]);
    sh(&["ip", "-n", b_ns, "link", "set", b, "up"]);
    let _ = bed;
}

fn nft(bed: &Bed, ns: &str, ruleset: &str, dir: &Path, name: &str) {
    let f = dir.join(format!("{name}.nft"));
    std::fs::File::create(&f)
        .unwrap()
        .write_all(ruleset.as_bytes())
        .unwrap();
    bed.exec(ns, &["nft", "-f", f.to_str().unwrap()]);
}

fn require(tool: &str) {
    assert!(
        Command::new("sh")
            .args(["-c", &format!("command -v {tool}")])
            .output()
            .is_ok_and(|o| o.status.success()),
        "the live kernel test needs {tool} (scripts/setup.sh test installs it)"
    );
}

#[test]
#[ignore = "needs root, network namespaces, nftables and tcpdump: scripts/test.sh runs it as root"]
fn kernel_verdicts_match_the_records() {
    let uid = sh(&["id", "-u"]);
    assert_eq!(uid.trim(), "0", "the live kernel test needs root");
    for t in ["ip", "nft", "tcpdump", "python3"] {
        require(t);
    }
    let inv_path = examples().join("vpc.toml");
    let inv = vpcflow_core::Inventory::from_toml(
        "vpc.toml",
        &std::fs::read_to_string(&inv_path).unwrap(),
    )
    .unwrap();
    let agent = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/live/agent.py");
    let agent = agent.to_str().unwrap().to_string();
    let dir = tempfile::tempdir().unwrap();
    let mut bed = Bed {
        prefix: format!("vft{}", std::process::id() % 100_000),
        names: Vec::new(),
        children: Vec::new(),
    };

    // Router with one bridge per subnet; a namespace per port; an outside host.
    let r = bed.add("r");
    let (w1, w2, db, out) = (bed.add("w1"), bed.add("w2"), bed.add("db"), bed.add("o"));
    bed.exec(&r, &["sysctl", "-qw", "net.ipv4.ip_forward=1"]);
    for (br, addr) in [("bweb", "192.168.0.1/24"), ("bdb", "192.168.3.1/24")] {
        sh(&["ip", "-n", &r, "link", "add", br, "type", "bridge"]);
        sh(&["ip", "-n", &r, "addr", "add", addr, "dev", br]);
        sh(&["ip", "-n", &r, "link", "set", br, "up"]);
    }
    for (ns, ip, gw, br, side) in [
        (&w1, "192.168.0.154/24", "192.168.0.1", "bweb", "rw1"),
        (&w2, "192.168.0.20/24", "192.168.0.1", "bweb", "rw2"),
        (&db, "192.168.3.25/24", "192.168.3.1", "bdb", "rdb"),
    ] {
        veth(&bed, ns, "eth0", &r, side);
        sh(&["ip", "-n", &r, "link", "set", side, "master", br]);
        sh(&["ip", "-n", ns, "addr", "add", ip, "dev", "eth0"]);
        sh(&["ip", "-n", ns, "route", "add", "default", "via", gw]);
    }
    veth(&bed, &out, "eth0", &r, "rout");
    for a in ["203.0.113.1/24", "198.51.100.1/24"] {
        sh(&["ip", "-n", &r, "addr", "add", a, "dev", "rout"]);
    }
    for a in [
        "203.0.113.7/24",
        "203.0.113.66/24",
        "198.51.100.9/24",
        "198.51.100.23/24",
        "198.51.100.80/24",
    ] {
        sh(&["ip", "-n", &out, "addr", "add", a, "dev", "eth0"]);
    }
    sh(&[
        "ip",
        "-n",
        &out,
        "route",
        "add",
        "192.168.0.0/16",
        "via",
        "203.0.113.1",
    ]);

    // The inventory's rules, enforced by the kernel.
    for (ns, port) in [(&w1, 0), (&w2, 1), (&db, 2)] {
        nft(
            &bed,
            ns,
            &vpcflow_policy::nft::port_ruleset(&inv, port),
            dir.path(),
            &format!("port{port}"),
        );
    }
    let acl = vpcflow_policy::nft::acl_ruleset(&inv, &[(0, "bweb".into()), (1, "bdb".into())]);
    nft(&bed, &r, &acl, dir.path(), "acl");

    // Servers on every port, captures on every port and on the outside host.
    bed.spawn(
        &w1,
        &["python3", &agent, "serve", "--tcp", "22,80"],
        "ready",
        false,
    );
    bed.spawn(
        &w2,
        &["python3", &agent, "serve", "--tcp", "23,80,443,9000"],
        "ready",
        false,
    );
    bed.spawn(
        &db,
        &[
            "python3", &agent, "serve", "--tcp", "5432,22", "--udp", "53",
        ],
        "ready",
        false,
    );
    let mut captures = Vec::new();
    for ns in [&w1, &w2, &db, &out] {
        let f = dir.path().join(format!("{ns}.pcap"));
        bed.spawn(
            ns,
            &[
                "tcpdump",
                "-i",
                "eth0",
                "-n",
                "-U",
                "-s",
                "256",
                "-w",
                f.to_str().unwrap(),
                "ip",
            ],
            "listening on",
            true,
        );
        captures.push(f);
    }

    // (from namespace, source, destination, protocol, port, allowed by the inventory)
    let attempts = [
        (&w1, "192.168.0.154", "192.168.3.25", "udp", 53, true),
        (&w2, "192.168.0.20", "192.168.3.25", "tcp", 5432, true),
        (&out, "198.51.100.9", "192.168.3.25", "tcp", 5432, false),
        (&out, "203.0.113.7", "192.168.0.154", "tcp", 22, true),
        (&out, "203.0.113.66", "192.168.0.154", "tcp", 22, false),
        (&out, "198.51.100.23", "192.168.0.20", "tcp", 23, false),
        (&out, "198.51.100.80", "192.168.0.20", "tcp", 443, true),
        (&w1, "192.168.0.154", "192.168.0.20", "tcp", 9000, false),
        (&w1, "192.168.0.154", "192.168.0.20", "tcp", 80, true),
        (&db, "192.168.3.25", "192.168.0.154", "tcp", 22, false),
    ];
    let mut results = Vec::new();
    for (ns, src, dst, proto, port, allowed) in attempts {
        let line = bed.exec(
            ns,
            &[
                "python3",
                &agent,
                "connect",
                src,
                dst,
                proto,
                &port.to_string(),
            ],
        );
        let v: serde_json::Value = serde_json::from_str(line.trim()).unwrap();
        // The bed itself must work: the kernel does what the inventory says.
        assert_eq!(
            v["ok"].as_bool(),
            Some(allowed),
            "kernel outcome of {src} -> {dst}:{port}/{proto}"
        );
        results.push(v);
    }
    // Let tcpdump write the last packets, then stop the captures.
    std::thread::sleep(Duration::from_millis(500));
    for c in &mut bed.children {
        let _ = Command::new("kill")
            .args(["-INT", &c.id().to_string()])
            .status();
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    for c in &mut bed.children {
        while c.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    let mut cmd = vpcflow();
    cmd.args([
        "ingest",
        "--config",
        inv_path.to_str().unwrap(),
        "--format",
        "json",
    ]);
    cmd.args(&captures);
    let o = cmd.output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let records: Vec<serde_json::Value> = String::from_utf8(o.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .filter(|r: &serde_json::Value| r["log-status"] == "OK")
        .collect();
    for v in &results {
        let forward = |r: &&serde_json::Value| {
            r["srcaddr"] == v["src"]
                && r["srcport"] == v["sport"]
                && r["dstaddr"] == v["dst"]
                && r["dstport"] == v["dport"]
                && r["protocol"] == v["proto"]
        };
        let reverse = |r: &&serde_json::Value| {
            r["srcaddr"] == v["dst"]
                && r["srcport"] == v["dport"]
                && r["dstaddr"] == v["src"]
                && r["dstport"] == v["sport"]
                && r["protocol"] == v["proto"]
        };
        let at_destination: Vec<&serde_json::Value> = records
            .iter()
            .filter(forward)
            .filter(|r| r["direction"] == "ingress")
            .collect();
        assert!(!at_destination.is_empty(), "no ingress record of {v}");
        let ok = v["ok"].as_bool().unwrap();
        let want = if ok { "ACCEPT" } else { "REJECT" };
        for r in &at_destination {
            assert_eq!(
                r["action"],
                want,
                "kernel {} {v}, record {r}",
                if ok { "passed" } else { "dropped" }
            );
        }
        if ok {
            for r in records.iter().filter(|r| forward(r) || reverse(r)) {
                assert_eq!(r["action"], "ACCEPT", "{v}: {r}");
            }
            assert!(
                records.iter().any(|r| reverse(&r)),
                "no reply recorded for {v}"
            );
        }
    }
}
