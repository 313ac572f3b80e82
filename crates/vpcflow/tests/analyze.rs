//! `vpcflow analyze attacks` on the example VPC's crafted capture
//! (`vpcflow_tools::attacks`): ordinary traffic and one of each attack, each
//! from its own source, ingested with one-minute windows into a store.
//! Every attack must be found with its port, source and service, nothing
//! ordinary blamed, thresholds respected, and ordinary traffic alone must
//! give no finding.

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::Value;
use vpcflow_tools::attacks::{START, expect, write_capture};

mod common;
use common::{examples, vpcflow};

/// Runs `vpcflow` with `args`, which must succeed; its stdout.
fn run_ok<S: AsRef<std::ffi::OsStr>>(args: impl IntoIterator<Item = S>) -> String {
    let o = vpcflow().args(args).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8(o.stdout).unwrap()
}

/// `ingest --config CONFIG --store STORE [EXTRA] CAPTURE`.
fn ingest_into(config: &Path, store: &Path, extra: &[&str], capture: &Path) {
    let mut args = vec![
        "ingest".as_ref(),
        "--config".as_ref(),
        config.as_os_str(),
        "--store".as_ref(),
        store.as_os_str(),
    ];
    args.extend(extra.iter().map(std::ffi::OsStr::new));
    args.push(capture.as_os_str());
    run_ok(args);
}

/// `analyze KIND --format json [--config CONFIG] --store STORE [EXTRA]`:
/// its findings. Attacks and rules are read from the store's window
/// summaries; each is asked again with `--from-records`, which must give
/// the same findings.
fn analyze(kind: &str, config: Option<&Path>, store: &Path, extra: &[&str]) -> Vec<Value> {
    let mut args: Vec<&std::ffi::OsStr> = ["analyze", kind, "--format", "json"]
        .map(std::ffi::OsStr::new)
        .to_vec();
    if let Some(c) = config {
        args.extend(["--config".as_ref(), c.as_os_str()]);
    }
    args.extend(["--store".as_ref(), store.as_os_str()]);
    args.extend(extra.iter().map(std::ffi::OsStr::new));
    let out = run_ok(&args);
    if kind != "traffic" && !extra.contains(&"--suggest") {
        args.push("--from-records".as_ref());
        assert_eq!(
            out,
            run_ok(&args),
            "analyze {kind} {extra:?}: the summaries and the records disagree"
        );
    }
    out.lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// The example's VPC-wide flow log (traffic type all).
const VPC_FLOW_LOG: &str = "f49f2c7a-1d3e-4b5c-9a8b-7c6d5e4f3a21";

fn store_of(dir: &Path, with_attacks: bool) -> std::path::PathBuf {
    let capture = dir.join("capture.pcap");
    write_capture(&capture, with_attacks).unwrap();
    let store = dir.join("store");
    ingest_into(
        &examples().join("vpc.toml"),
        &store,
        &["--window", "60"],
        &capture,
    );
    store
}

fn findings(store: &Path, extra: &[&str]) -> Vec<Value> {
    analyze("attacks", None, store, extra)
}

/// (kind, interface-id, srcaddr, srcport, dstport) of each finding of the
/// VPC-wide flow log.
fn keys(found: &[Value]) -> Vec<(String, String, String, String, String)> {
    let s = |v: &Value| match v {
        Value::Null => "-".to_string(),
        Value::String(s) => s.clone(),
        v => v.to_string(),
    };
    let mut k: Vec<_> = found
        .iter()
        .filter(|f| f["flow-log-id"] == VPC_FLOW_LOG)
        .map(|f| {
            (
                s(&f["kind"]),
                s(&f["interface-id"]),
                s(&f["srcaddr"]),
                s(&f["srcport"]),
                s(&f["dstport"]),
            )
        })
        .collect();
    k.sort();
    k
}

fn find<'a>(found: &'a [Value], kind: &str) -> &'a Value {
    found
        .iter()
        .find(|f| f["kind"] == kind && f["flow-log-id"] == VPC_FLOW_LOG)
        .unwrap_or_else(|| panic!("no {kind}: {found:#?}"))
}

#[test]
fn every_attack_is_found_with_its_port_source_and_service_and_nothing_ordinary_is_blamed() {
    let dir = tempfile::tempdir().unwrap();
    let store = store_of(dir.path(), true);
    let found = findings(&store, &[]);
    let k = |kind: &str, port: &str, src: &str, sport: &str, dport: &str| {
        (
            kind.to_string(),
            port.to_string(),
            src.to_string(),
            sport.to_string(),
            dport.to_string(),
        )
    };
    let mut want = vec![
        k(
            "brute-force",
            expect::WEB_1,
            expect::BRUTE_FORCER,
            "-",
            "22",
        ),
        k("denied-burst", expect::WEB_2, "-", "-", "-"),
        k("host-sweep", "-", expect::SWEEPER, "-", "-"),
        k("port-scan", expect::WEB_2, expect::SCANNER, "-", "-"),
        k("syn-flood", expect::WEB_2, "-", "-", "443"),
        k("udp-flood", expect::DB, "-", "-", "53"),
        k("udp-reflection", expect::WEB_2, "-", "123", "-"),
    ];
    want.sort();
    assert_eq!(keys(&found), want, "{found:#?}");
    for f in &found {
        assert_eq!(
            f["start"], START,
            "every attack is in the first window: {f}"
        );
        assert_eq!(f["end"], START + 60);
    }

    let scan = find(&found, "port-scan");
    assert_eq!(scan["dstports"], expect::SCANNED_PORTS);
    // 80 and 443 were open to it: some of it got in.
    assert_eq!(scan["actions"], "ACCEPT,REJECT");
    let sweep = find(&found, "host-sweep");
    assert_eq!(sweep["dstaddrs"], 3, "the three ports it reached");
    // The brute force came from the office range SSH is allowed from: the
    // allow rule is the one to tighten.
    let brute = find(&found, "brute-force");
    assert_eq!(brute["connections"], expect::BRUTE_FORCE_CONNECTIONS);
    assert_eq!(brute["actions"], "ACCEPT");
    assert_eq!(brute["policy-id"], "6c5b4a39-8e7f-4d21-b0a9-c8d7e6f5a4b3");
    assert_eq!(brute["rule-id"], "6c5b4a39-8e7f-4d21-b0a9-c8d7e6f5a4b3/2");
    let syn = find(&found, "syn-flood");
    assert_eq!(syn["sources"], expect::SYN_FLOOD_SOURCES);
    assert_eq!(syn["connections"], expect::SYN_FLOOD_SOURCES);
    assert_eq!(syn["rule-id"], "6c5b4a39-8e7f-4d21-b0a9-c8d7e6f5a4b3/1");
    let flood = find(&found, "udp-flood");
    // The flood and the web tier's own five DNS queries.
    assert_eq!(flood["packets"], expect::FLOOD_PACKETS + 5);
    assert_eq!(flood["rule-id"], "default-deny", "most of it was rejected");
    let reflection = find(&found, "udp-reflection");
    assert_eq!(reflection["sources"], expect::REFLECTORS);

    // The db port's REJECT-only flow log sees the flood too, and only that.
    let db_log: Vec<&Value> = found
        .iter()
        .filter(|f| f["flow-log-id"] != VPC_FLOW_LOG)
        .collect();
    assert_eq!(db_log.len(), 1, "{db_log:#?}");
    assert_eq!(db_log[0]["kind"], "udp-flood");
    assert_eq!(db_log[0]["packets"], expect::FLOOD_PACKETS);

    // Ordinary sources are never named.
    for f in &found {
        let src = f["srcaddr"].as_str().unwrap_or("");
        assert!(
            !src.starts_with("198.18.") && src != "203.0.113.7" && src != "192.0.2.123",
            "an ordinary client blamed: {f}"
        );
    }

    // Thresholds: one past what the traffic reaches silences a detector,
    // exactly at it keeps it.
    let without = |found: &[Value], kind: &str| {
        !found
            .iter()
            .any(|f| f["kind"] == kind && f["flow-log-id"] == VPC_FLOW_LOG)
    };
    let over = findings(
        &store,
        &[
            "--threshold",
            "port-scan-dstports=101",
            "--threshold",
            "brute-force-connections=31",
            "--threshold",
            "syn-flood-sources=301",
            "--threshold",
            "udp-reflection-sources=13",
        ],
    );
    for kind in ["port-scan", "brute-force", "syn-flood", "udp-reflection"] {
        assert!(without(&over, kind), "{kind} past its threshold: {over:#?}");
    }
    assert!(!without(&over, "udp-flood"));
    let at = findings(
        &store,
        &[
            "--threshold",
            "port-scan-dstports=100",
            "--threshold",
            "brute-force-connections=30",
        ],
    );
    assert!(!without(&at, "port-scan") && !without(&at, "brute-force"));
    // The time range narrows what is analyzed.
    let later = findings(&store, &["--since", &(START + 60).to_string()]);
    assert!(later.is_empty(), "{later:#?}");
}

#[test]
fn ordinary_traffic_alone_yields_no_attack() {
    let dir = tempfile::tempdir().unwrap();
    let store = store_of(dir.path(), false);
    assert_eq!(findings(&store, &[]), Vec::<Value>::new());
    let table = vpcflow()
        .args(["analyze", "attacks", "--store"])
        .arg(&store)
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&table.stdout), "(no findings)\n");
}

#[test]
fn a_bad_threshold_is_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let o = vpcflow()
        .args(["analyze", "attacks", "--store"])
        .arg(dir.path())
        .args(["--threshold", "port-scan=5"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("'port-scan' is not one") && err.contains("port-scan-dstports"),
        "{err}"
    );
}

/// `analyze rules --format json` over `store`.
fn rule_findings(store: &Path) -> Vec<Value> {
    analyze("rules", Some(&examples().join("vpc.toml")), store, &[])
}

#[test]
fn unused_rules_over_two_runs_in_the_store_are_those_rule_stats_of_one_run_of_both_never_matched() {
    let dir = tempfile::tempdir().unwrap();
    let crafted = dir.path().join("crafted.pcap");
    write_capture(&crafted, true).unwrap();
    let demo = examples().join("vpc-demo.pcap");
    let store = dir.path().join("store");
    // Two runs into one store.
    for capture in [&demo, &crafted] {
        ingest_into(&examples().join("vpc.toml"), &store, &[], capture);
    }
    // One run of both, with rule totals.
    let stats = dir.path().join("stats.jsonl");
    let o = vpcflow()
        .args(["ingest", "--config"])
        .arg(examples().join("vpc.toml"))
        .arg("--rule-stats")
        .arg(&stats)
        .args(["-o", "/dev/null"])
        .arg(&demo)
        .arg(&crafted)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let specials = [
        "default-deny",
        "implicit-allow",
        "stateful-return",
        "tracked-connection",
    ];
    let mut never: Vec<(String, String, String)> = std::fs::read_to_string(&stats)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|r| r["matched"] == false)
        .filter(|r| !specials.contains(&r["rule-id"].as_str().unwrap()))
        .map(|r| {
            (
                r["decided-by"].as_str().unwrap().to_string(),
                r["policy-id"].as_str().unwrap().to_string(),
                r["rule-id"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    never.sort();
    assert!(
        !never.is_empty(),
        "the example has rules the traffic never meets"
    );

    let found = rule_findings(&store);
    let mut unused: Vec<(String, String, String)> = found
        .iter()
        .filter(|f| f["kind"] == "unused-rule")
        .map(|f| {
            (
                f["decided-by"].as_str().unwrap().to_string(),
                f["policy-id"].as_str().unwrap().to_string(),
                f["rule-id"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    unused.sort();
    assert_eq!(unused, never, "{found:#?}");

    // What the deny rules rejected, with the top source: the scanner's
    // telnet probe met the ACL's no-telnet rule.
    let telnet = found
        .iter()
        .find(|f| {
            f["kind"] == "denied-hits"
                && f["rule-id"] == "no-telnet"
                && f["flow-log-id"] == VPC_FLOW_LOG
        })
        .unwrap_or_else(|| panic!("no denied-hits of no-telnet: {found:#?}"));
    assert_eq!(telnet["decided-by"], "acl-ingress");
    let default_deny = found
        .iter()
        .find(|f| {
            f["kind"] == "denied-hits"
                && f["decided-by"] == "sg-ingress"
                && f["rule-id"] == "default-deny"
                && f["flow-log-id"] == VPC_FLOW_LOG
        })
        .unwrap_or_else(|| panic!("no default-deny hits: {found:#?}"));
    assert_eq!(default_deny["srcaddr"], expect::SCANNER, "{default_deny}");
    assert!(
        default_deny["detail"]
            .as_str()
            .unwrap()
            .starts_with(&format!("top sources: {} (", expect::SCANNER)),
        "{default_deny}"
    );
    // The example's rules shadow none of each other.
    assert!(
        !found.iter().any(|f| f["kind"] == "shadowed-rule"),
        "{found:#?}"
    );
}

fn traffic(store: &Path, extra: &[&str]) -> Vec<Value> {
    analyze("traffic", Some(&examples().join("vpc.toml")), store, extra)
}

#[test]
fn direction_talkers_and_conversations_add_up_to_the_records() {
    let dir = tempfile::tempdir().unwrap();
    let store = store_of(dir.path(), true);
    let rows = traffic(&store, &["--bucket", "1h", "--top", "3"]);
    let of = |kind: &str, port: &str| -> Vec<&Value> {
        rows.iter()
            .filter(|r| {
                r["kind"] == kind && r["interface-id"] == port && r["flow-log-id"] == VPC_FLOW_LOG
            })
            .collect()
    };
    // The direction rows of each port add up to its records, and the
    // east-west ones to the traffic whose other end is in the VPC
    // (192.168.0.0/16), counted here by a query of our own.
    let sums = vpcflow()
        .args(["query", "--format", "csv", "--store"])
        .arg(&store)
        .args([
            "--sql",
            &format!(
                "SELECT interface_id, SUM(bytes), \
                   SUM(CASE WHEN (CASE WHEN direction = 'ingress' THEN srcaddr ELSE dstaddr END) \
                     LIKE '192.168.%' THEN bytes ELSE 0 END) \
                 FROM records WHERE log_status = 'OK' AND flow_log_id = '{VPC_FLOW_LOG}' \
                 GROUP BY interface_id"
            ),
        ])
        .output()
        .unwrap();
    let sums = String::from_utf8(sums.stdout).unwrap();
    let mut ports = 0;
    for line in sums.lines().skip(1) {
        let f: Vec<&str> = line.split(',').collect();
        let (total, east_west): (u64, u64) = (f[1].parse().unwrap(), f[2].parse().unwrap());
        let d = of("direction", f[0]);
        let sum = |pick: &dyn Fn(&&&Value) -> bool| -> u64 {
            d.iter()
                .filter(pick)
                .map(|r| r["bytes"].as_u64().unwrap())
                .sum()
        };
        assert_eq!(sum(&|_| true), total, "{}: {d:#?}", f[0]);
        assert_eq!(
            sum(&|r| r["scope"] == "east-west"),
            east_west,
            "{}: {d:#?}",
            f[0]
        );
        assert!(
            d.iter()
                .all(|r| r["start"] == 1_699_999_200 && r["end"] == 1_700_002_800)
        );
        ports += 1;
    }
    assert_eq!(ports, 3, "{sums}");
    // The db port's top talker is the flooder; web-1's top conversation is
    // the brute force (30 connections to 22 from one source).
    let talkers = of("top-talker", expect::DB);
    assert_eq!(talkers[0]["remote"], expect::FLOODER, "{talkers:#?}");
    assert_eq!(talkers[0]["packets"], expect::FLOOD_PACKETS);
    assert!(talkers.len() <= 3);
    let conversations = of("top-conversation", expect::WEB_1);
    assert_eq!(
        conversations[0]["srcaddr"],
        expect::BRUTE_FORCER,
        "{conversations:#?}"
    );
    assert_eq!(conversations[0]["dstport"], 22);
    assert_eq!(
        conversations[0]["connections"],
        expect::BRUTE_FORCE_CONNECTIONS
    );
    // Per subnet too: the web subnet's rows add up to its two ports'.
    let subnet: u64 = rows
        .iter()
        .filter(|r| {
            r["kind"] == "direction"
                && r["network-id"] == "93f4cb2d-0e0e-4e2d-a705-e3817bd7ca45"
                && r["flow-log-id"] == VPC_FLOW_LOG
        })
        .map(|r| r["bytes"].as_u64().unwrap())
        .sum();
    let web: u64 = [expect::WEB_1, expect::WEB_2]
        .iter()
        .flat_map(|p| of("direction", p))
        .map(|r| r["bytes"].as_u64().unwrap())
        .sum();
    assert_eq!(subnet, web);
    // One-minute buckets split the two minutes; ranking by packets puts the
    // reflectors' 600-datagram flows first at web-2.
    let minutes = traffic(&store, &["--bucket", "60s", "--by", "packets"]);
    let starts: std::collections::BTreeSet<u64> = minutes
        .iter()
        .map(|r| r["start"].as_u64().unwrap())
        .collect();
    assert_eq!(starts.into_iter().collect::<Vec<_>>(), [START, START + 60]);
    let first = minutes
        .iter()
        .find(|r| r["kind"] == "top-conversation" && r["interface-id"] == expect::WEB_2)
        .unwrap();
    assert_eq!(first["srcport"], Value::Null);
    assert_eq!(first["packets"], 600, "{first}");
}

/// `ingest --format json` of `captures` with `config`: action by flow and
/// window.
fn actions(config: &Path, captures: &[&Path]) -> BTreeMap<String, String> {
    let o = vpcflow()
        .args(["ingest", "--format", "json", "--config"])
        .arg(config)
        .args(captures)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8(o.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|r| r["log-status"] == "OK" && r["flow-log-id"] == VPC_FLOW_LOG)
        .map(|r| {
            let key = [
                "start",
                "interface-id",
                "direction",
                "srcaddr",
                "dstaddr",
                "srcport",
                "dstport",
                "protocol",
            ]
            .map(|k| r[k].to_string())
            .join(" ");
            (key, r["action"].as_str().unwrap().to_string())
        })
        .collect()
}

#[test]
fn a_suggested_least_privilege_inventory_still_accepts_everything_the_traffic_needed() {
    let dir = tempfile::tempdir().unwrap();
    let crafted = dir.path().join("crafted.pcap");
    write_capture(&crafted, true).unwrap();
    let demo = examples().join("vpc-demo.pcap");
    let config = examples().join("vpc.toml");
    let store = dir.path().join("store");
    for capture in [&demo, &crafted] {
        ingest_into(&config, &store, &[], capture);
    }
    let suggested = dir.path().join("suggested.toml");
    let o = vpcflow()
        .args(["analyze", "rules", "--format", "json", "--config"])
        .arg(&config)
        .arg("--store")
        .arg(&store)
        .arg("--suggest")
        .arg(&suggested)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    assert!(err.contains("are all accepted by the suggestion"), "{err}");
    let changes: Vec<Value> = String::from_utf8(o.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(
        changes.iter().all(|c| c["kind"] == "suggested-change"),
        "{changes:#?}"
    );
    let text = std::fs::read_to_string(&suggested).unwrap();
    // Narrower: the web tier's all-egress rule is one rule per address it
    // reached; the unused db egress rule is gone; the rest of the file,
    // comments included, is as written.
    let web_egress = changes
        .iter()
        .find(|c| c["rule-id"] == "6c5b4a39-8e7f-4d21-b0a9-c8d7e6f5a4b3/4")
        .unwrap_or_else(|| panic!("{changes:#?}"));
    assert!(
        web_egress["detail"]
            .as_str()
            .unwrap()
            .contains("one per address"),
        "{web_egress}"
    );
    assert!(
        text.contains("remote_ip_prefix = \"192.0.2.123\""),
        "{text}"
    );
    assert!(
        !text.contains("0.0.0.0/0\"\naction = \"allow\"\npriority = 100"),
        "{text}"
    );
    assert!(text.contains("# Web tier: SSH from the office"), "{text}");
    let original = std::fs::read_to_string(&config).unwrap();
    assert!(text.len() != original.len());

    // Replayed for real: every flow the original accepted, the suggestion
    // accepts.
    let before = actions(&config, &[&demo, &crafted]);
    let after = actions(&suggested, &[&demo, &crafted]);
    let mut accepted = 0;
    for (flow, action) in &before {
        if action == "ACCEPT" {
            accepted += 1;
            assert_eq!(
                after.get(flow).map(String::as_str),
                Some("ACCEPT"),
                "{flow}"
            );
        }
    }
    assert!(accepted > 100, "{accepted}");
}

#[test]
fn rule_hits_over_the_store_equal_rule_stats_of_one_run() {
    let dir = tempfile::tempdir().unwrap();
    let demo = examples().join("vpc-demo.pcap");
    let config = examples().join("vpc.toml");
    let store = dir.path().join("store");
    ingest_into(&config, &store, &[], &demo);
    let stats = dir.path().join("stats.jsonl");
    let o = vpcflow()
        .args(["ingest", "--config"])
        .arg(&config)
        .arg("--rule-stats")
        .arg(&stats)
        .args(["-o", "/dev/null"])
        .arg(&demo)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    // The topic of the VPC flow log, which keeps every flow of the demo
    // (the db port's reject-only flow log writes a second topic).
    let o = vpcflow()
        .args(["analyze", "rules", "--hits", "--format", "json", "--config"])
        .arg(&config)
        .arg("--store")
        .arg(&store)
        .args(["--topic", "a1b2c3d4-0000-4000-8000-000000000002"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let hits: Vec<Value> = String::from_utf8(o.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let key = |v: &Value, flows: &str| {
        format!(
            "{} {} {} {} {} {}",
            v["decided-by"], v["policy-id"], v["rule-id"], v[flows], v["packets"], v["bytes"]
        )
    };
    // Every rule, in the same order, with the same counts.
    let stats: Vec<String> = std::fs::read_to_string(&stats)
        .unwrap()
        .lines()
        .map(|l| key(&serde_json::from_str(l).unwrap(), "flows"))
        .collect();
    let hits: Vec<String> = hits.iter().map(|h| key(h, "connections")).collect();
    assert_eq!(hits, stats);
    assert!(hits.iter().any(|h| !h.ends_with(" 0 0 0")), "{hits:#?}");
}
