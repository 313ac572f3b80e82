//! Zeek's `conn.log` baselines (an independent per-connection count of
//! packets and IP bytes in each direction) agree with our records where the
//! semantics match: TCP and UDP connections that are not inside a tunnel and
//! whose 5-tuple Zeek logged once (Zeek splits a reused 5-tuple into several
//! connections; our records sum per window). Our records for the
//! originator's egress and the responder's egress, summed over the windows,
//! must equal `orig_pkts`/`orig_ip_bytes` and `resp_pkts`/`resp_ip_bytes`.

use std::collections::HashMap;
use std::path::Path;

mod common;
use common::{egress_records, shared_data};

/// Baseline -> the trace it was made from.
const PAIRS: &[(&str, &str)] = &[
    ("core.cisco-fabric-path__conn.log", "cisco-fabric-path.pcap"),
    (
        "core.pcapng-pktsrc__conn.log",
        "pcapng-multi-interface.pcapng",
    ),
    ("core.pppoe__conn.log", "pppoe.pcap"),
    ("core.q-in-q__conn.log", "q-in-q.pcap"),
    ("core.vlan-mpls__conn.log", "mixed-vlan-mpls.pcap"),
    ("core.tcp.miss-end-data__conn.log", "tcp_miss_end_data.pcap"),
    ("core.tcp.missing-syn__conn.log", "tcp_missing-syn.pcap"),
    (
        "core.conn-size-flip__conn.log.ctu",
        "tcp_ctu-64702-888.pcap",
    ),
    (
        "core.conn-size-flip__conn.log.one-sided",
        "tcp_one-sided-2745.pcap",
    ),
    ("core.tunnels.vxlan__conn.log", "tunnels_vxlan.pcap"),
    ("core.tunnels.geneve__conn.log", "tunnels_geneve.pcap"),
    ("core.tunnels.teredo__conn.log", "tunnels_Teredo.pcap"),
    ("opt.basic__conn.log", "wikipedia.pcap"),
    (
        "scripts.base.protocols.ftp.ftp-ipv4__conn.log",
        "ftp_ipv4.pcap",
    ),
    (
        "scripts.base.protocols.ftp.ftp-ipv6__conn.log",
        "ftp_ipv6.pcap",
    ),
    (
        "scripts.base.protocols.pop3.basic__conn.log",
        "pop3_pop3.pcap",
    ),
    ("scripts.base.protocols.ssh.basic__conn.log", "ssh_ssh.pcap"),
];

type Tuple = (String, String, u16, u16, u8);

/// Our egress records, summed over windows, per unidirectional 5-tuple.
fn ours(trace: &Path) -> HashMap<Tuple, (u64, u64)> {
    let mut m: HashMap<Tuple, (u64, u64)> = HashMap::new();
    for v in egress_records(trace) {
        let k = (
            v["srcaddr"].as_str().unwrap().to_string(),
            v["dstaddr"].as_str().unwrap().to_string(),
            v["srcport"].as_u64().unwrap() as u16,
            v["dstport"].as_u64().unwrap() as u16,
            v["protocol"].as_u64().unwrap() as u8,
        );
        let e = m.entry(k).or_default();
        e.0 += v["packets"].as_u64().unwrap();
        e.1 += v["bytes"].as_u64().unwrap();
    }
    m
}

struct Conn {
    tuple: Tuple,
    orig: (u64, u64),
    resp: (u64, u64),
}

fn conns(baseline: &Path) -> Vec<Conn> {
    let text = std::fs::read_to_string(baseline).unwrap();
    // Full logs name their columns in `#fields`; cut ones in their first line.
    let header = text
        .lines()
        .find_map(|l| l.strip_prefix("#fields\t"))
        .or_else(|| text.lines().find(|l| !l.starts_with('#')))
        .expect("no header line");
    let fields: Vec<&str> = header.split('\t').collect();
    let col = |row: &[&str], name: &str| -> Option<String> {
        let i = fields.iter().position(|f| *f == name)?;
        row.get(i).map(|s| s.to_string())
    };
    let mut v = Vec::new();
    for line in text.lines().filter(|l| !l.starts_with('#') && *l != header) {
        let row: Vec<&str> = line.split('\t').collect();
        let proto = match col(&row, "proto").as_deref() {
            Some("tcp") => 6,
            Some("udp") => 17,
            // The cut conn-size-flip logs dropped the column; their traces are TCP.
            None if baseline.to_string_lossy().contains("conn-size-flip") => 6,
            _ => continue,
        };
        if col(&row, "tunnel_parents").is_some_and(|t| t != "-" && t != "(empty)") {
            continue;
        }
        let n = |name: &str| col(&row, name).and_then(|s| s.parse::<u64>().ok());
        let (Some(op), Some(ob), Some(rp), Some(rb)) = (
            n("orig_pkts"),
            n("orig_ip_bytes"),
            n("resp_pkts"),
            n("resp_ip_bytes"),
        ) else {
            continue;
        };
        v.push(Conn {
            tuple: (
                col(&row, "id.orig_h").unwrap(),
                col(&row, "id.resp_h").unwrap(),
                n("id.orig_p").unwrap() as u16,
                n("id.resp_p").unwrap() as u16,
                proto,
            ),
            orig: (op, ob),
            resp: (rp, rb),
        });
    }
    v
}

#[test]
fn zeek_conn_log_baselines_agree() {
    let data = shared_data();
    let mut compared = 0;
    let mut failures = Vec::new();
    for (baseline, trace) in PAIRS {
        let cs = conns(&data.join("zeek/baselines").join(baseline));
        let mut seen: HashMap<&Tuple, usize> = HashMap::new();
        for c in &cs {
            *seen.entry(&c.tuple).or_default() += 1;
        }
        let flows = ours(&data.join("zeek/traces").join(trace));
        let mut here = 0;
        for c in cs.iter().filter(|c| seen[&c.tuple] == 1) {
            let (a, b, p, q, proto) = c.tuple.clone();
            let reverse = (b, a, q, p, proto);
            let got_orig = flows.get(&c.tuple).copied().unwrap_or_default();
            let got_resp = flows.get(&reverse).copied().unwrap_or_default();
            here += 1;
            if (got_orig, got_resp) != (c.orig, c.resp) {
                failures.push(format!(
                    "{trace} {:?}: zeek orig {:?} resp {:?}, ours {:?} {:?}",
                    c.tuple, c.orig, c.resp, got_orig, got_resp
                ));
            }
        }
        if here == 0 {
            failures.push(format!("{baseline}: no connection compared"));
        }
        compared += here;
    }
    assert!(compared > 60, "only {compared} connections compared");
    assert!(
        failures.is_empty(),
        "{} of {compared} connections differ:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
