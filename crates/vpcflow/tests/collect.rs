//! `vpcflow collect` against a real exporter: softflowd (Debian) replays
//! the example VPC's capture as NetFlow v5, v9 and IPFIX, and the records
//! vpcflow makes of the exports must be those `vpcflow ingest` makes of
//! the capture itself.
//!
//! The comparison, precisely: per (port, direction, action, five-tuple),
//! summed over windows (softflowd `-r` stamps flows with its wall clock
//! relative to the capture, wrapped at 2^32 ms, so an export's windows are
//! not the capture's), the packets are equal, and the bytes are at least
//! vpcflow's (the IP length, SPEC §2) and at most 6 more per packet
//! (softflowd counts a short frame's Ethernet padding). NetFlow v5 carries
//! IPv4 only, so its comparison leaves IPv6 out. Needs softflowd
//! (`scripts/setup.sh test` installs it).

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

mod common;
use common::{examples, vpcflow};

const FIELDS: &str = "custom:interface-id,direction,action,srcaddr,dstaddr,srcport,dstport,protocol,packets,bytes,log-status";

type Totals = BTreeMap<String, (u64, u64)>;

/// Packets and bytes per (port, direction, action, five-tuple) of OK records.
fn totals(records: &str) -> Totals {
    let mut t = Totals::new();
    for line in records.lines() {
        let f: Vec<&str> = line.split(' ').collect();
        assert_eq!(f.len(), 11, "{line}");
        if f[10] != "OK" {
            continue;
        }
        let e = t.entry(f[..8].join(" ")).or_default();
        e.0 += f[8].parse::<u64>().unwrap();
        e.1 += f[9].parse::<u64>().unwrap();
    }
    t
}

/// The records `vpcflow collect` makes of softflowd's export of
/// `capture` as NetFlow `version`, and what it said on stderr.
fn collected(capture: &Path, version: u8) -> (String, String) {
    let mut child = vpcflow()
        .args(["collect", "--listen", "127.0.0.1:0", "--config"])
        .arg(examples().join("vpc.toml"))
        .args(["--format", FIELDS])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut err = BufReader::new(child.stderr.take().unwrap());
    let mut first = String::new();
    err.read_line(&mut first).unwrap();
    let addr = first
        .split_whitespace()
        .find(|w| w.starts_with("127.0.0.1:"))
        .unwrap_or_else(|| panic!("no address in {first:?}"))
        .to_string();
    // softflowd cuts the -r path to 15 characters, and keeps a control
    // socket: run it in a directory of its own with short names.
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(capture, dir.path().join("c.pcap")).unwrap();
    let sf = Command::new("softflowd")
        .current_dir(dir.path())
        .args(["-r", "c.pcap", "-n", &addr, "-v", &version.to_string()])
        .args(["-d", "-c", "sf.ctl", "-p", "sf.pid"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("softflowd (scripts/setup.sh test installs it)");
    assert!(sf.success(), "softflowd -v {version}: {sf}");
    // The export is a few datagrams on loopback; then the collector stops
    // on SIGTERM and writes what it holds.
    std::thread::sleep(Duration::from_millis(500));
    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let out = child.wait_with_output().unwrap();
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut err, &mut rest).unwrap();
    assert!(out.status.success(), "collect -v {version}: {rest}");
    (String::from_utf8(out.stdout).unwrap(), rest)
}

#[test]
fn softflowd_exports_give_the_records_of_the_capture_itself() {
    let capture = examples().join("vpc-demo.pcap");
    let o = vpcflow()
        .args(["ingest", "--config"])
        .arg(examples().join("vpc.toml"))
        .args(["--format", FIELDS])
        .arg(&capture)
        .output()
        .unwrap();
    assert!(o.status.success());
    let ingested = totals(&String::from_utf8(o.stdout).unwrap());
    assert!(ingested.len() > 10, "{ingested:#?}");
    for version in [5u8, 9, 10] {
        let (records, said) = collected(&capture, version);
        assert!(
            said.contains("malformed datagrams: none") && said.contains(" 0 data sets before"),
            "v{version}: {said}"
        );
        let got = totals(&records);
        let want: Totals = ingested
            .iter()
            .filter(|(k, _)| version != 5 || !k.contains(':'))
            .map(|(k, v)| (k.clone(), *v))
            .collect();
        assert_eq!(
            got.keys().collect::<Vec<_>>(),
            want.keys().collect::<Vec<_>>(),
            "v{version}: the flows differ"
        );
        for (k, &(packets, bytes)) in &want {
            let (p, b) = got[k];
            assert_eq!(p, packets, "v{version} {k}: packets");
            assert!(
                b >= bytes && b <= bytes + 6 * packets,
                "v{version} {k}: {b} bytes exported, {bytes} in the capture"
            );
        }
    }
}
