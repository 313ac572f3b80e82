//! `--format aws` against the tools built around the other big cloud's
//! flow logs: the lines `vpcflow ingest` writes of every shared capture
//! (every address a port) and of the example VPC, in its default format
//! and in one with every field vpcflow fills, must read back as written
//! with Vector's VRL `parse_aws_vpc_flow_log` and flowlogs-reader
//! (`tests/interop/aws_lines.py`, in the venv `scripts/setup.sh test`
//! makes).

use std::path::{Path, PathBuf};
use std::process::Command;

mod common;
use common::{examples, shared_files, test_python, vpcflow};

/// Every AWS field vpcflow has a value for, and some it has not.
const EVERY: &str = "version account-id interface-id srcaddr dstaddr srcport dstport protocol \
    packets bytes start end action log-status vpc-id subnet-id instance-id tcp-flags type \
    pkt-srcaddr pkt-dstaddr region az-id flow-direction";

/// Lines of `vpcflow ingest ARGS --format FORMAT` (without a header).
fn aws_lines(args: &[&str], capture: &Path, format: &str) -> String {
    let o = vpcflow()
        .arg("ingest")
        .args(args)
        .args(["--format", format])
        .arg(capture)
        .output()
        .unwrap();
    // 0, or 1 for a capture cut after some packets (its lines stand).
    assert!(
        matches!(o.status.code(), Some(0 | 1)),
        "{}",
        capture.display()
    );
    String::from_utf8(o.stdout).unwrap()
}

/// What the checker says of `lines` under `fields`.
fn read_back(fields: &str, lines: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("lines");
    std::fs::write(&file, format!("{fields}\n{lines}")).unwrap();
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/interop/aws_lines.py");
    let o = Command::new(test_python())
        .arg(script)
        .arg(&file)
        .arg(fields)
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout).unwrap()
}

fn captures() -> Vec<PathBuf> {
    shared_files()
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "pcap" || e == "pcapng"))
        .collect()
}

#[test]
fn vector_and_flowlogs_reader_read_every_line_back_as_written() {
    let every = format!(
        "aws:{}",
        EVERY
            .split(' ')
            .filter(|f| !f.is_empty())
            .collect::<Vec<_>>()
            .join(",")
    );
    let everything = ["--ports-from", "0.0.0.0/0", "--ports-from", "::/0"];
    let mut default_lines = String::new();
    let mut every_lines = String::new();
    let all = captures();
    assert!(all.len() > 20, "{} captures", all.len());
    for capture in &all {
        default_lines.push_str(&aws_lines(&everything, capture, "aws"));
        every_lines.push_str(&aws_lines(&everything, capture, &every));
    }
    // The example VPC: rules, NODATA, ports of an inventory.
    let inventory = examples().join("vpc.toml");
    let config = ["--config", inventory.to_str().unwrap()];
    let demo = examples().join("vpc-demo.pcap");
    default_lines.push_str(&aws_lines(&config, &demo, "aws"));
    every_lines.push_str(&aws_lines(&config, &demo, &every));
    assert!(every_lines.contains(" NODATA ") && every_lines.contains(" REJECT "));
    assert!(
        every_lines.contains(" IPv6 ") && every_lines.contains(" 18 "),
        "no IPv6 or SYN-ACK"
    );
    let default_fields = "version account-id interface-id srcaddr dstaddr srcport dstport protocol packets bytes start end action log-status";
    for (fields, lines) in [(default_fields, &default_lines), (EVERY, &every_lines)] {
        let fields = fields.split_whitespace().collect::<Vec<_>>().join(" ");
        let said = read_back(&fields, lines);
        assert_eq!(said.trim(), format!("read {} lines", lines.lines().count()));
    }
    // The default format is the other cloud's version 2; with its later
    // fields, version 5.
    assert!(default_lines.lines().all(|l| l.starts_with("2 ")));
    assert!(every_lines.lines().all(|l| l.starts_with("5 ")));
}
