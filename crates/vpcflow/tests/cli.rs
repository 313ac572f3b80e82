//! `vpcflow ingest` end to end: real captures and the example inventory in,
//! records and clear errors out.

use std::path::PathBuf;

mod common;
use common::{demo_frames, examples, ip_frame, shared_data, shared_files, vpcflow, write_pcap};

fn run(args: &[&str]) -> (i32, String, String) {
    let out = vpcflow().args(args).output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

fn inventory() -> String {
    examples().join("vpc.toml").display().to_string()
}

#[test]
fn the_fixture_is_the_shared_example_byte_for_byte() {
    let shared =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/examples/vpc.toml");
    assert_eq!(
        std::fs::read(shared).unwrap(),
        std::fs::read(examples().join("vpc.toml")).unwrap()
    );
}

#[test]
fn every_shared_capture_is_ingested_without_a_panic() {
    let mut n = 0;
    for p in shared_files() {
        let s = p.display().to_string();
        let (code, _, err) = run(&[
            "ingest",
            "--ports-from",
            "0.0.0.0/0",
            "--ports-from",
            "::/0",
            &s,
        ]);
        // 0: fine; 1: a corrupt block after some packets; 2: not a capture at all.
        assert!((0..=2).contains(&code), "{s}: exit {code}\n{err}");
        if code == 2 {
            assert!(err.contains(&s), "{s}: error does not name the file: {err}");
            assert!(
                !(s.ends_with(".pcap") || s.ends_with(".pcapng")),
                "{s}: {err}"
            );
        } else {
            assert!(err.contains("vpcflow: read "), "{s}: no statistics: {err}");
        }
        n += 1;
    }
    assert!(n > 200, "only {n} files");
}

/// The summary without what depends on the machine (time, table memory).
fn summary_facts(stderr: &str) -> String {
    stderr
        .lines()
        .filter(|l| !l.starts_with("vpcflow: read ") && !l.contains("flow table: peak"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// `--threads`: records, their order and the summary are the same on one
/// thread and on three, for every shared capture (automatic ports) and for
/// the example inventory's rules (verdicts, conntrack, rule statistics).
#[test]
fn every_shared_capture_gives_the_same_records_on_one_thread_and_on_three() {
    let mut compared = 0;
    for p in shared_files() {
        let s = p.display().to_string();
        if !(s.contains(".pcap") || s.ends_with(".cap")) {
            continue;
        }
        let on = |threads: &str| {
            run(&[
                "ingest",
                "--threads",
                threads,
                "--ports-from",
                "0.0.0.0/0",
                "--ports-from",
                "::/0",
                "--format",
                "custom:version,interface-id,srcaddr,dstaddr,srcport,dstport,protocol,packets,bytes,start,end,action,log-status,direction,tcp-flags,decided-by",
                &s,
            ])
        };
        let (one, three) = (on("1"), on("3"));
        assert_eq!(one.0, three.0, "{s}: exit codes");
        assert_eq!(one.1, three.1, "{s}: records");
        assert_eq!(
            summary_facts(&one.2),
            summary_facts(&three.2),
            "{s}: summary"
        );
        compared += usize::from(!one.1.is_empty());
    }
    assert!(compared > 100, "only {compared} captures with records");

    let dir = tempfile::tempdir().unwrap();
    let cap = example_capture(dir.path());
    let inv = inventory();
    let on = |threads: &str| {
        let stats = dir.path().join(format!("rules-{threads}.jsonl"));
        let out = run(&[
            "ingest",
            "--threads",
            threads,
            "--config",
            &inv,
            "--format",
            "custom:interface-id,srcaddr,dstaddr,srcport,dstport,protocol,packets,action,log-status,decided-by,rule-id",
            "--rule-stats",
            &stats.display().to_string(),
            &cap,
        ]);
        (out, std::fs::read_to_string(stats).unwrap())
    };
    let ((one, rules_one), (three, rules_three)) = (on("1"), on("3"));
    assert_eq!(one.0, 0, "{}", one.2);
    assert!(
        one.1.contains("sg-ingress") && one.1.contains("stateful-return"),
        "{}",
        one.1
    );
    assert_eq!(one.1, three.1);
    assert_eq!(summary_facts(&one.2), summary_facts(&three.2));
    assert_eq!(rules_one, rules_three);
}

/// Traffic between the example VPC's ports and the outside.
fn example_capture(dir: &std::path::Path) -> String {
    let t0 = 1_548_752_136_000_000u64; // the seed's example time
    let frames = vec![
        // DNS from the web port to the db port: egress at one, ingress at the other.
        (
            t0,
            ip_frame("192.168.0.154", "192.168.3.25", 17, 38929, 53, 0, 68),
        ),
        (
            t0 + 1000,
            ip_frame("192.168.3.25", "192.168.0.154", 17, 53, 38929, 0, 100),
        ),
        // SSH from the office into the web port: SYN, then more.
        (
            t0 + 2000,
            ip_frame("203.0.113.7", "192.168.0.20", 6, 50000, 22, 0x02, 0),
        ),
        (
            t0 + 3000,
            ip_frame("203.0.113.7", "192.168.0.20", 6, 50000, 22, 0x10, 10),
        ),
        // Traffic of no port of the inventory.
        (t0 + 4000, ip_frame("10.1.1.1", "10.2.2.2", 17, 1, 2, 0, 10)),
    ];
    let p = dir.join("example.pcap");
    write_pcap(&p, &frames);
    p.display().to_string()
}

#[test]
fn example_inventory_gives_the_expected_v1_records() {
    let dir = tempfile::tempdir().unwrap();
    let cap = example_capture(dir.path());
    let (code, out, err) = run(&[
        "ingest",
        "--config",
        &inventory(),
        "--format",
        "v1",
        "--header",
        &cap,
    ]);
    assert_eq!(code, 0, "{err}");
    let p = "5f67944957444bd6bb4fe3b367de8f3d";
    let w = "1548751800 1548752400";
    let expected = format!(
        "version project-id interface-id srcaddr dstaddr srcport dstport protocol packets bytes start end action log-status
1 {p} 1d515d18-1b36-47dc-a983-bd6512aed4bd 192.168.0.154 192.168.3.25 38929 53 17 1 96 {w} ACCEPT OK
1 {p} 1d515d18-1b36-47dc-a983-bd6512aed4bd 192.168.3.25 192.168.0.154 53 38929 17 1 128 {w} ACCEPT OK
1 {p} 7a2c9e41-5b3d-4f60-8e1a-2c4b6d8f0a13 203.0.113.7 192.168.0.20 50000 22 6 2 90 {w} ACCEPT OK
1 {p} e3f1b2c4-d5a6-4b7c-8d9e-0f1a2b3c4d5e 192.168.0.154 192.168.3.25 38929 53 17 1 96 {w} ACCEPT OK
1 {p} e3f1b2c4-d5a6-4b7c-8d9e-0f1a2b3c4d5e 192.168.3.25 192.168.0.154 53 38929 17 1 128 {w} ACCEPT OK
1 {p} e3f1b2c4-d5a6-4b7c-8d9e-0f1a2b3c4d5e - - - - - - - {w} - NODATA
"
    );
    assert_eq!(out, expected);
    assert!(err.contains("read 5 packets"), "{err}");
    assert!(err.contains("attributed to monitored ports: 4"), "{err}");
    assert!(err.contains("no-monitored-port 1"), "{err}");
    assert!(
        err.contains("records: OK 5, NODATA 1, SKIPDATA 0 (windows: 1)"),
        "{err}"
    );
}

#[test]
fn v2_and_json_carry_direction_tcp_flag_and_placement() {
    let dir = tempfile::tempdir().unwrap();
    let cap = example_capture(dir.path());
    let (code, out, _) = run(&["ingest", "--config", &inventory(), "--format", "v2", &cap]);
    assert_eq!(code, 0);
    let ssh = out.lines().find(|l| l.contains(" 22 6 ")).unwrap();
    assert!(
        ssh.ends_with("ACCEPT OK ingress established ab-cdef-3 ab-cdef-3a 80ee2ed7-605d-49b4-ac6b-6e581acd35a3 93f4cb2d-0e0e-4e2d-a705-e3817bd7ca45"),
        "{ssh}"
    );
    let out_path = dir.path().join("records.jsonl");
    let (code, stdout, _) = run(&[
        "ingest",
        "--config",
        &inventory(),
        "--format",
        "json",
        "-o",
        out_path.to_str().unwrap(),
        &cap,
    ]);
    assert_eq!(code, 0);
    assert!(stdout.is_empty());
    let text = std::fs::read_to_string(out_path).unwrap();
    let recs: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(recs.len(), 6);
    let nodata = recs.iter().find(|r| r["log-status"] == "NODATA").unwrap();
    assert_eq!(
        nodata["flow-log-id"],
        "0c1d2e3f-4a5b-4c6d-8e7f-9a0b1c2d3e4f"
    );
    assert_eq!(nodata["az-id"], "ab-cdef-3b");
    assert!(nodata["srcaddr"].is_null());
}

/// `-o -` is standard output, as `-` is for most tools, not a file
/// named `-` in the working directory.
#[test]
fn output_dash_is_standard_output() {
    let dir = tempfile::tempdir().unwrap();
    let cap = example_capture(dir.path());
    let (code, to_stdout, _) = run(&["ingest", "--config", &inventory(), &cap]);
    assert_eq!(code, 0);
    let out = vpcflow()
        .current_dir(dir.path())
        .args(["ingest", "--config", &inventory(), "-o", "-", &cap])
        .output()
        .unwrap();
    assert!(out.status.success());
    assert_eq!(String::from_utf8(out.stdout).unwrap(), to_stdout);
    assert!(!to_stdout.is_empty());
    assert!(!dir.path().join("-").exists());
}

#[test]
fn cap_from_the_command_line_gives_skipdata_with_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let frames: Vec<(u64, Vec<u8>)> = (0..5)
        .map(|i| {
            (
                1_000_000_000_000_000 + i,
                ip_frame("10.0.0.1", "10.9.9.9", 17, 1000 + i as u16, 53, 0, 12),
            )
        })
        .collect();
    let p = dir.path().join("five.pcap");
    write_pcap(&p, &frames);
    let (code, out, _) = run(&[
        "ingest",
        "--ports-from",
        "10.0.0.1/32",
        "--max-records",
        "3",
        "--format",
        "v1",
        p.to_str().unwrap(),
    ]);
    assert_eq!(code, 0);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 4, "{out}");
    assert!(lines[..3].iter().all(|l| l.ends_with("ACCEPT OK")));
    assert_eq!(
        lines[3],
        "1 auto auto-10.0.0.1 - - - - - 2 80 999999600 1000000200 - SKIPDATA"
    );
}

#[test]
fn window_option_changes_the_capture_window() {
    let dir = tempfile::tempdir().unwrap();
    let frames = vec![
        (
            1_000_000_000_000_000u64,
            ip_frame("10.0.0.1", "10.9.9.9", 17, 1, 2, 0, 0),
        ),
        (
            1_000_000_130_000_000,
            ip_frame("10.0.0.1", "10.9.9.9", 17, 1, 2, 0, 0),
        ),
    ];
    let p = dir.path().join("two.pcap");
    write_pcap(&p, &frames);
    let (_, out, _) = run(&[
        "ingest",
        "--ports-from",
        "10.0.0.1/32",
        "--window",
        "60",
        "--format",
        "v1",
        p.to_str().unwrap(),
    ]);
    let windows: Vec<String> = out
        .lines()
        .map(|l| l.split(' ').skip(10).take(3).collect::<Vec<_>>().join(" "))
        .collect();
    assert_eq!(
        windows,
        vec![
            "999999960 1000000020 ACCEPT",
            "1000000020 1000000080 -",
            "1000000080 1000000140 ACCEPT"
        ]
    );
    let (code, _, err) = run(&[
        "ingest",
        "--ports-from",
        "10.0.0.1/32",
        "--window",
        "30",
        p.to_str().unwrap(),
    ]);
    assert_eq!(code, 2);
    assert!(
        err.contains("--window 30: the capture window must be 60 to 600 seconds"),
        "{err}"
    );
}

#[test]
fn several_captures_are_one_timeline() {
    // Split a real capture into odd and even packets: ingesting both halves
    // together must equal ingesting the original.
    let src = shared_data().join("zeek/traces/ftp_ipv4.pcap");
    let mut c = vpcflow_capture::CaptureFile::open(&src).unwrap();
    let (mut odd, mut even) = (Vec::new(), Vec::new());
    let mut i = 0;
    while let Some(f) = c.next_frame() {
        let v = (f.timestamp_ns / 1000, f.data.to_vec());
        if i % 2 == 0 {
            even.push(v)
        } else {
            odd.push(v)
        }
        i += 1;
    }
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("even.pcap"), dir.path().join("odd.pcap"));
    write_pcap(&a, &even);
    write_pcap(&b, &odd);
    let all = ["ingest", "--ports-from", "0.0.0.0/0", "--format", "v2"];
    let (_, whole, _) = run(&[&all[..], &[src.to_str().unwrap()]].concat());
    let (code, merged, err) =
        run(&[&all[..], &[b.to_str().unwrap(), a.to_str().unwrap()]].concat());
    assert_eq!(code, 0, "{err}");
    assert!(!whole.is_empty());
    assert_eq!(merged, whole);
}

#[test]
fn truncated_capture_keeps_the_records_before_the_cut() {
    let dir = tempfile::tempdir().unwrap();
    let frames: Vec<(u64, Vec<u8>)> = (0..3)
        .map(|i| {
            (
                1_000_000_000 + i,
                ip_frame("10.0.0.1", "10.9.9.9", 17, 1000 + i as u16, 53, 0, 12),
            )
        })
        .collect();
    let p = dir.path().join("cut.pcap");
    write_pcap(&p, &frames);
    let mut bytes = std::fs::read(&p).unwrap();
    bytes.truncate(bytes.len() - 20);
    std::fs::write(&p, bytes).unwrap();
    let (code, out, err) = run(&[
        "ingest",
        "--ports-from",
        "10.0.0.1/32",
        "--format",
        "v1",
        p.to_str().unwrap(),
    ]);
    assert_eq!(code, 0);
    assert_eq!(out.lines().count(), 2, "{out}");
    assert!(
        err.contains("ends in the middle of a packet; records cover the 2 packets before the cut"),
        "{err}"
    );
}

#[test]
fn bad_input_gets_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let junk = dir.path().join("junk.pcap");
    std::fs::write(&junk, "this is text").unwrap();
    let (code, out, err) = run(&[
        "ingest",
        "--ports-from",
        "10.0.0.0/8",
        junk.to_str().unwrap(),
    ]);
    assert_eq!(code, 2);
    assert!(out.is_empty());
    assert!(
        err.contains("junk.pcap: not a pcap or pcapng capture (starts with 74 68 69 73)"),
        "{err}"
    );

    let (code, _, err) = run(&["ingest", "--ports-from", "10.0.0.0/8", "/nonexistent.pcap"]);
    assert_eq!(code, 2);
    assert!(err.contains("/nonexistent.pcap"), "{err}");

    let bad = dir.path().join("bad.toml");
    std::fs::write(
        &bad,
        "[[vpc]]\nid = \"v\"\nproject = \"nobody\"\ncidr = \"10.0.0.0/8\"\n",
    )
    .unwrap();
    let cap = shared_data().join("zeek/traces/icmp_5-pings.pcap");
    let (code, _, err) = run(&[
        "ingest",
        "--config",
        bad.to_str().unwrap(),
        cap.to_str().unwrap(),
    ]);
    assert_eq!(code, 2);
    assert!(
        err.contains("bad.toml: vpc 'v': field `project`: no project with id 'nobody'"),
        "{err}"
    );

    let (code, _, err) = run(&["ingest", cap.to_str().unwrap()]);
    assert_eq!(code, 2);
    assert!(
        err.contains("--config FILE (an inventory) or --ports-from CIDR"),
        "{err}"
    );
}

#[test]
fn demo_capture_is_what_the_generator_makes() {
    // examples/vpc-demo.pcap is the README's first command's input. Regenerate
    // it with VPCFLOW_BLESS=1 after changing `demo_frames`.
    let dir = tempfile::tempdir().unwrap();
    let fresh = dir.path().join("demo.pcap");
    write_pcap(&fresh, &demo_frames());
    let committed = examples().join("vpc-demo.pcap");
    if std::env::var_os("VPCFLOW_BLESS").is_some() {
        std::fs::copy(&fresh, &committed).unwrap();
    }
    assert_eq!(
        std::fs::read(&fresh).unwrap(),
        std::fs::read(&committed).unwrap()
    );
}

#[test]
fn demo_records_golden() {
    let demo = examples().join("vpc-demo.pcap");
    let (code, out, err) = run(&[
        "ingest",
        "--config",
        &inventory(),
        "--format",
        "v2",
        demo.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}");
    let golden = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/golden/demo-v2.txt");
    if std::env::var_os("VPCFLOW_BLESS").is_some() {
        std::fs::write(&golden, &out).unwrap();
    }
    assert_eq!(out, std::fs::read_to_string(golden).unwrap());
    assert!(err.contains("read 23 packets"), "{err}");
}

fn golden(name: &str, got: &str) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/golden")
        .join(name);
    if std::env::var_os("VPCFLOW_BLESS").is_some() {
        std::fs::write(&path, got).unwrap();
    }
    assert_eq!(
        got,
        std::fs::read_to_string(&path).unwrap(),
        "golden file {name}"
    );
}

#[test]
fn demo_records_name_the_deciding_rule() {
    // Every rule of the example is exercised: SSH from the office (allowed)
    // and from its denied address, HTTPS from anywhere, telnet denied by the
    // ACL, PostgreSQL and DNS from the web tier to the db tier (remote group)
    // and PostgreSQL from elsewhere (default deny), return traffic
    // (stateful-return) and IPv6 without an IPv6 rule.
    let demo = examples().join("vpc-demo.pcap");
    let fields = "custom:interface-id,srcaddr,dstaddr,srcport,dstport,protocol,direction,action,log-status,decided-by,policy-id,rule-id,flow-log-id";
    let (code, out, err) = run(&[
        "ingest",
        "--config",
        &inventory(),
        "--format",
        fields,
        "--header",
        demo.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}");
    golden("demo-rules.txt", &out);
    let find = |needle: &str| {
        out.lines()
            .find(|l| l.contains(needle))
            .unwrap_or_else(|| panic!("{needle}"))
    };
    assert!(find(" 203.0.113.66 ").contains(" REJECT OK sg-ingress 6c5b4a39-8e7f-4d21-b0a9-c8d7e6f5a4b3 6c5b4a39-8e7f-4d21-b0a9-c8d7e6f5a4b3/3 "));
    assert!(
        find(" 40023 23 ")
            .contains(" REJECT OK acl-ingress 0b9a7c3e-4f6d-4c7a-9a51-2d8f3e1c6b70 no-telnet ")
    );
    assert!(find(" 198.51.100.9 ").contains(" REJECT OK sg-ingress - default-deny "));
    assert!(find(" 5432 51000 6 ingress ").contains(" ACCEPT OK conntrack - stateful-return "));
    assert!(
        err.contains("policy: 12 flows evaluated, 6 return traffic of accepted connections"),
        "{err}"
    );
}

#[test]
fn rule_stats_list_every_rule_matched_or_not() {
    let dir = tempfile::tempdir().unwrap();
    let stats = dir.path().join("rules.jsonl");
    let demo = examples().join("vpc-demo.pcap");
    let (code, _, err) = run(&[
        "ingest",
        "--config",
        &inventory(),
        "--rule-stats",
        stats.to_str().unwrap(),
        "-o",
        "/dev/null",
        demo.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}");
    let text = std::fs::read_to_string(&stats).unwrap();
    golden("demo-rule-stats.jsonl", &text);
    let rules: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    // 7 security-group rules, 3 ACL rules, 4 ACL specials, 6 globals.
    assert_eq!(rules.len(), 20);
    let db_egress = rules
        .iter()
        .find(|r| r["rule-id"] == "f0e1d2c3-b4a5-4968-8776-5a4b3c2d1e0f/3")
        .unwrap();
    assert_eq!(
        db_egress["matched"], false,
        "sg-db's egress rule is never needed: replies are stateful"
    );
    let telnet = rules.iter().find(|r| r["rule-id"] == "no-telnet").unwrap();
    assert_eq!(
        (telnet["flows"].as_u64(), telnet["packets"].as_u64()),
        (Some(1), Some(1))
    );
    assert_eq!(telnet["last-decided"], 1548752137);
}

#[test]
fn what_if_reports_the_flows_a_proposed_change_would_flip() {
    let dir = tempfile::tempdir().unwrap();
    // Proposed: the ACL lets telnet in (the web group still rejects it, so its
    // action does not change), the office's denied address may use SSH, and
    // PostgreSQL is open to everyone.
    let current = std::fs::read_to_string(examples().join("vpc.toml")).unwrap();
    let proposed = current
        .replace(
            "name = \"no-telnet\"\naction = \"deny\"",
            "name = \"no-telnet\"\naction = \"allow\"",
        )
        .replace(
            "remote_ip_prefix = \"203.0.113.66\"\naction = \"deny\"",
            "remote_ip_prefix = \"203.0.113.66\"\naction = \"allow\"",
        )
        .replace(
            "multiport = \"5432\"\nremote_group_id = \"6c5b4a39-8e7f-4d21-b0a9-c8d7e6f5a4b3\"",
            "multiport = \"5432\"\nremote_ip_prefix = \"0.0.0.0/0\"",
        );
    assert_ne!(proposed, current);
    let p = dir.path().join("proposed.toml");
    std::fs::write(&p, proposed).unwrap();
    let demo = examples().join("vpc-demo.pcap");
    let (code, out, err) = run(&[
        "ingest",
        "--config",
        &inventory(),
        "--compare",
        p.to_str().unwrap(),
        demo.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}");
    golden("demo-what-if.txt", &out);
    assert!(
        out.starts_with("what-if: 2 of 18 flows would change action\n"),
        "{out}"
    );
    assert!(out.contains("REJECT -> ACCEPT by sg-ingress f0e1d2c3-b4a5-4968-8776-5a4b3c2d1e0f f0e1d2c3-b4a5-4968-8776-5a4b3c2d1e0f/1: 1 flows, 2 packets, 80 bytes (was decided by sg-ingress - default-deny)"), "{out}");
    assert!(out.contains("REJECT -> ACCEPT by sg-ingress 6c5b4a39-8e7f-4d21-b0a9-c8d7e6f5a4b3 6c5b4a39-8e7f-4d21-b0a9-c8d7e6f5a4b3/"), "{out}");
}
