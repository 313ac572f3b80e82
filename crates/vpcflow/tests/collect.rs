//! NetFlow and IPFIX in and out, against real peers from Debian.
//!
//! In: `vpcflow collect` and softflowd, which replays the example VPC's
//! capture as NetFlow v5, v9 and IPFIX; the records vpcflow makes of the
//! exports must be those `vpcflow ingest` makes of the capture itself.
//!
//! The comparison, precisely: per (port, direction, action, five-tuple),
//! summed over windows (softflowd `-r` stamps flows with its wall clock
//! relative to the capture, wrapped at 2^32 ms, so an export's windows are
//! not the capture's), the packets are equal, and the bytes are at least
//! vpcflow's (the IP length, SPEC §2) and at most 6 more per packet
//! (softflowd counts a short frame's Ethernet padding). NetFlow v5 carries
//! IPv4 only, so its comparison leaves IPv6 out.
//!
//! sFlow: pmacct's `pmacctd` replays the capture through its sfprobe
//! plugin as sFlow v5 samples of each packet's header. Sampling 1 in 1,
//! the records are the capture's, bytes exact (the sample's IP header
//! says the length); sampling 1 in 2, every record says `sampling-rate` 2
//! and its packets are a multiple of 2 (each sample stands for two).
//!
//! Out: `vpcflow ingest --export ipfix://` to nfcapd; `nfdump` must read
//! back every OK record: addresses, ports, protocol, packets, bytes, and
//! the window as the flow's start and end. (nfdump 1.7 keeps no
//! `forwardingStatus`, so ACCEPT and REJECT are not compared there.)
//!
//! Needs softflowd, pmacct and nfdump (`scripts/setup.sh test` installs
//! them).

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

mod common;
use common::collect::collect_with;
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

/// The records `vpcflow collect` makes (in `format`) of what `export`
/// sends to the address it is given, and what it said on stderr.
fn collected_from(format: &str, export: impl FnOnce(&str)) -> (String, String) {
    let mut config = vec!["--config".to_string()];
    config.push(examples().join("vpc.toml").display().to_string());
    collect_with(&config, format, |addrs| export(&addrs[0]))
}

/// The records `vpcflow collect` makes of softflowd's export of
/// `capture` as NetFlow `version`, and what it said on stderr.
fn collected(capture: &Path, version: u8) -> (String, String) {
    collected_from(FIELDS, |addr| {
        // softflowd cuts the -r path to 15 characters, and keeps a control
        // socket: run it in a directory of its own with short names.
        let dir = tempfile::tempdir().unwrap();
        std::fs::copy(capture, dir.path().join("c.pcap")).unwrap();
        let sf = Command::new("softflowd")
            .current_dir(dir.path())
            .args(["-r", "c.pcap", "-n", addr, "-v", &version.to_string()])
            .args(["-d", "-c", "sf.ctl", "-p", "sf.pid"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("softflowd (scripts/setup.sh test installs it)");
        assert!(sf.success(), "softflowd -v {version}: {sf}");
    })
}

/// The records `vpcflow collect` makes (in `format`) of pmacctd's sFlow
/// samples of `capture`, 1 packet in `rate`, and what it said.
fn sflow_collected(capture: &Path, rate: u32, format: &str) -> (String, String) {
    collected_from(format, |addr| {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("pmacctd.conf");
        std::fs::write(
            &config,
            format!(
                "daemonize: false\npcap_savefile: {}\npcap_savefile_wait: false\n\
                 plugins: sfprobe\nsfprobe_receiver: {addr}\nsampling_rate: {rate}\n",
                capture.display()
            ),
        )
        .unwrap();
        let pm = Command::new("pmacctd")
            .arg("-f")
            .arg(&config)
            .output()
            .expect("pmacctd (scripts/setup.sh test installs pmacct)");
        // Its exit status is not asked: pmacctd 1.7.7 at the end of a
        // savefile exits 1 when its plugin stops before its core does
        // (a race of its own); the records say whether it exported.
        let said = String::from_utf8_lossy(&pm.stderr);
        assert!(said.contains("Exporting flows to"), "pmacctd: {said}");
    })
}

/// Runs `vpcflow ingest` of `capture` in `format`.
fn ingested(capture: &Path, format: &str) -> String {
    let o = vpcflow()
        .args(["ingest", "--config"])
        .arg(examples().join("vpc.toml"))
        .args(["--format", format])
        .arg(capture)
        .output()
        .unwrap();
    assert!(o.status.success());
    String::from_utf8(o.stdout).unwrap()
}

#[test]
fn sflow_samples_from_pmacct_give_the_records_of_the_capture_itself() {
    let capture = examples().join("vpc-demo.pcap");
    let want = totals(&ingested(&capture, FIELDS));
    let (records, said) = sflow_collected(&capture, 1, FIELDS);
    assert!(
        said.contains("malformed datagrams: none")
            && said.contains("lost by sequence numbers: none"),
        "{said}"
    );
    assert_eq!(totals(&records), want, "1 in 1: the capture's records");
    // 1 in 2: estimates, and the records say so.
    let (records, _) = sflow_collected(&capture, 2, &format!("{FIELDS},sampling-rate"));
    let ok: Vec<Vec<&str>> = records
        .lines()
        .map(|l| l.split(' ').collect::<Vec<_>>())
        .filter(|f| f[10] == "OK")
        .collect();
    assert!(!ok.is_empty(), "{records}");
    for f in ok {
        assert_eq!(f[11], "2", "{f:?}");
        assert_eq!(f[8].parse::<u64>().unwrap() % 2, 0, "{f:?}");
    }
}

#[test]
fn softflowd_exports_give_the_records_of_the_capture_itself() {
    let capture = examples().join("vpc-demo.pcap");
    let ingested = totals(&ingested(&capture, FIELDS));
    assert!(ingested.len() > 10, "{ingested:#?}");
    for version in [5u8, 9, 10] {
        let (records, said) = collected(&capture, version);
        assert!(
            said.contains("malformed datagrams: none")
                && said.contains(" 0 data sets before")
                && said.contains("lost by sequence numbers: none"),
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

#[test]
fn records_exported_as_ipfix_over_udp_and_tcp_are_collected_back_unchanged() {
    // Ports by address only, on one side of every flow: each exported
    // record is one port's, and collected back to that port alone (under
    // an inventory, a flow between two monitored ports is exported once
    // per port, and a collector attributing by address counts it on both).
    let fields = "custom:interface-id,direction,action,srcaddr,dstaddr,srcport,dstport,protocol,packets,bytes,log-status,start,end,tcp-flag";
    let capture = examples().join("vpc-demo.pcap");
    let ports = ["--ports-from".to_string(), "192.168.0.0/24".to_string()];
    let o = vpcflow()
        .args(["ingest", "--format", fields])
        .args(&ports)
        .arg(&capture)
        .output()
        .unwrap();
    assert!(o.status.success());
    let mut want: Vec<String> = String::from_utf8(o.stdout)
        .unwrap()
        .lines()
        .map(String::from)
        .collect();
    want.sort();
    assert!(
        want.iter().filter(|l| l.contains(" OK ")).count() > 5,
        "{want:?}"
    );
    for tcp in [false, true] {
        let mut args = ports.to_vec();
        if tcp {
            args.extend(["--listen-tcp".to_string(), "127.0.0.1:0".to_string()]);
        }
        let (records, said) = collect_with(&args, fields, |addrs| {
            let url = if tcp {
                format!("ipfix+tcp://{}", addrs[1])
            } else {
                format!("ipfix://{}", addrs[0])
            };
            let o = vpcflow()
                .args(["ingest", "--export", &url])
                .args(&ports)
                .arg(&capture)
                .output()
                .unwrap();
            assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        });
        let mut got: Vec<String> = records.lines().map(String::from).collect();
        got.sort();
        assert_eq!(got, want, "tcp: {tcp}; {said}");
        let sessions = if tcp {
            "(1 TCP sessions)"
        } else {
            "(0 TCP sessions)"
        };
        assert!(
            said.contains(sessions) && said.contains("malformed datagrams: none"),
            "{said}"
        );
    }
}

#[test]
fn nfcapd_reads_back_every_record_exported_as_ipfix() {
    let capture = examples().join("vpc-demo.pcap");
    let dir = tempfile::tempdir().unwrap();
    let flows = dir.path().join("flows");
    std::fs::create_dir(&flows).unwrap();
    // A free UDP port for nfcapd (nothing else binds loopback ports here).
    let port = std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut nfcapd = Command::new("nfcapd")
        .arg("-w")
        .arg(&flows)
        .args(["-b", "127.0.0.1", "-p", &port.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("nfcapd (scripts/setup.sh test installs nfdump)");
    std::thread::sleep(Duration::from_millis(700));
    let o = vpcflow()
        .args(["ingest", "--config"])
        .arg(examples().join("vpc.toml"))
        .args(["--export", &format!("ipfix://127.0.0.1:{port}")])
        .arg(&capture)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    std::thread::sleep(Duration::from_millis(700));
    let killed = Command::new("kill")
        .args(["-TERM", &nfcapd.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    nfcapd.wait().unwrap();
    let dump = Command::new("nfdump")
        .env("TZ", "UTC")
        .arg("-R")
        .arg(&flows)
        .args(["-q", "-o", "fmt:%ts,%te,%sa,%da,%sp,%dp,%pr,%pkt,%byt"])
        .output()
        .unwrap();
    assert!(
        dump.status.success(),
        "{}",
        String::from_utf8_lossy(&dump.stderr)
    );
    let mut got: Vec<String> = String::from_utf8(dump.stdout)
        .unwrap()
        .lines()
        .map(|l| l.split(',').map(str::trim).collect::<Vec<_>>().join(" "))
        .collect();
    got.sort();
    // The same records, as ingest prints them, in nfdump's terms.
    let o = vpcflow()
        .args(["ingest", "--config"])
        .arg(examples().join("vpc.toml"))
        .args(["--format", "custom:start,end,srcaddr,dstaddr,srcport,dstport,protocol,packets,bytes,action,log-status"])
        .arg(&capture)
        .output()
        .unwrap();
    let name = |p: &str| match p {
        "6" => "TCP".to_string(),
        "17" => "UDP".to_string(),
        "58" => "ICMP6".to_string(),
        p => p.to_string(),
    };
    let time = |t: &str| {
        let o = Command::new("date")
            .env("TZ", "UTC")
            .args(["-d", &format!("@{t}"), "+%Y-%m-%d %H:%M:%S.000"])
            .output()
            .unwrap();
        String::from_utf8(o.stdout).unwrap().trim().to_string()
    };
    let mut want: Vec<String> = String::from_utf8(o.stdout)
        .unwrap()
        .lines()
        .map(|l| l.split(' ').collect::<Vec<_>>())
        .filter(|f| f[10] == "OK")
        .map(|f| {
            // nfdump prints an ICMP flow's destination port as type.code.
            let dport = if name(f[6]).starts_with("ICMP") {
                "0.0"
            } else {
                f[5]
            };
            format!(
                "{} {} {} {} {} {dport} {} {} {}",
                time(f[0]),
                time(f[1]),
                f[2],
                f[3],
                f[4],
                name(f[6]),
                f[7],
                f[8]
            )
        })
        .collect();
    want.sort();
    assert!(want.len() > 10, "{want:#?}");
    assert_eq!(got, want);
}

#[test]
fn serve_collects_exports_into_its_store_under_the_control_planes_flow_logs() {
    let capture = examples().join("vpc-demo.pcap");
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let port = std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut extra = common::server::database_args(&data);
    extra.extend(["--collect".to_string(), format!("127.0.0.1:{port}")]);
    let server = common::server::Server::start_on(&data, &extra);
    // softflowd's IPFIX of the capture, as in the collect test.
    let sf_dir = tempfile::tempdir().unwrap();
    std::fs::copy(&capture, sf_dir.path().join("c.pcap")).unwrap();
    let sf = Command::new("softflowd")
        .current_dir(sf_dir.path())
        .args([
            "-r",
            "c.pcap",
            "-n",
            &format!("127.0.0.1:{port}"),
            "-v",
            "10",
        ])
        .args(["-d", "-c", "sf.ctl", "-p", "sf.pid"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("softflowd (scripts/setup.sh test installs it)");
    assert!(sf.success());
    std::thread::sleep(Duration::from_millis(500));
    // SIGTERM: the collector writes its open windows into the store.
    let mut server = server;
    let killed = Command::new("kill")
        .args(["-TERM", &server.child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    assert!(server.child.wait().unwrap().success());
    let o = vpcflow()
        .args(["query", "--format", "json", "--store"])
        .arg(data.join("store"))
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let fields = FIELDS
        .trim_start_matches("custom:")
        .split(',')
        .collect::<Vec<_>>();
    let stored: String = String::from_utf8(o.stdout)
        .unwrap()
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            let line: Vec<String> = fields
                .iter()
                // The store's JSON names fields by column.
                .map(|f| match &v[f.replace('-', "_")] {
                    serde_json::Value::Null => "-".to_string(),
                    serde_json::Value::String(s) => s.clone(),
                    n => n.to_string(),
                })
                .collect();
            line.join(" ") + "\n"
        })
        .collect();
    let got = totals(&stored);
    let want = totals(&ingested(&capture, FIELDS));
    assert_eq!(
        got.keys().collect::<Vec<_>>(),
        want.keys().collect::<Vec<_>>(),
        "the flows differ"
    );
    for (k, &(packets, bytes)) in &want {
        let (p, b) = got[k];
        assert_eq!(p, packets, "{k}: packets");
        assert!(
            b >= bytes && b <= bytes + 6 * packets,
            "{k}: {b} bytes, {bytes} in the capture"
        );
    }
}
