//! Captures whose timestamps are far apart or absurd (issue 13's finding
//! 3): a 148-byte pcap whose two packets are 3,000,000 windows apart took
//! 1.28 GB; a 220-byte pcapng with a packet at 2^40 s aborted `ingest`
//! and, uploaded, `serve`; a 2,000-window upload wrote 4,002 files. Each
//! is ingested here in bounded memory and files, and an upload skips and
//! counts timestamps before 1990 or more than a day ahead.
//!
//! Memory is bounded by running `ingest` under `prlimit --as` (util-linux):
//! past the limit an allocation fails and the process aborts.

use std::time::{SystemTime, UNIX_EPOCH};

mod common;
use common::server::{Server, token};
use common::{ip_frame, vpcflow, write_pcap};

const PROJECT: &str = "5f67944957444bd6bb4fe3b367de8f3d";
/// The example inventory's web port and db port.
const WEB: &str = "192.168.0.154";
const DB: &str = "192.168.3.25";
/// Address space `ingest` runs in here (the findings took 1.28 GB or
/// aborted on a failed allocation).
const ADDRESS_SPACE_BYTES: u64 = 512 * 1024 * 1024;

/// Windows of a two-packet capture with a long gap: the first, a day of
/// NODATA (144 windows of 600 s), at most one more before the last, the
/// last.
fn within_a_day(windows: u64) -> bool {
    let day = 86_400 / 600;
    (1 + day + 1..=1 + day + 2).contains(&windows)
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// A pcapng of two UDP frames from the web port to the db port, in an
/// interface whose `if_tsresol` is 1 s, at `first` and `second` seconds.
fn pcapng_seconds(first: u64, second: u64) -> Vec<u8> {
    fn block(kind: u32, body: &[u8]) -> Vec<u8> {
        let mut padded = body.to_vec();
        padded.resize(body.len().div_ceil(4) * 4, 0);
        let len = (12 + padded.len()) as u32;
        let mut b = Vec::new();
        b.extend(kind.to_le_bytes());
        b.extend(len.to_le_bytes());
        b.extend(padded);
        b.extend(len.to_le_bytes());
        b
    }
    let mut shb = Vec::new();
    shb.extend(0x1A2B_3C4Du32.to_le_bytes());
    shb.extend(1u16.to_le_bytes());
    shb.extend(0u16.to_le_bytes());
    shb.extend((-1i64).to_le_bytes());
    let mut idb = Vec::new();
    idb.extend(1u16.to_le_bytes()); // Ethernet
    idb.extend(0u16.to_le_bytes());
    idb.extend(65535u32.to_le_bytes());
    // if_tsresol = 10^0: timestamps in seconds; then opt_endofopt.
    idb.extend([9, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    let mut out = block(0x0A0D_0D0A, &shb);
    out.extend(block(1, &idb));
    for ts in [first, second] {
        let frame = ip_frame(WEB, DB, 17, 40000, 53, 0, 10);
        let mut epb = Vec::new();
        epb.extend(0u32.to_le_bytes());
        epb.extend(((ts >> 32) as u32).to_le_bytes());
        epb.extend((ts as u32).to_le_bytes());
        epb.extend((frame.len() as u32).to_le_bytes());
        epb.extend((frame.len() as u32).to_le_bytes());
        epb.extend(&frame);
        out.extend(block(6, &epb));
    }
    out
}

/// Two frames `gap` capture windows of 600 s apart, starting at `t0`.
fn gap_pcap(dir: &std::path::Path, t0: u64, gap: u64) -> std::path::PathBuf {
    let p = dir.join(format!("gap-{gap}.pcap"));
    let frame = ip_frame(WEB, DB, 17, 40000, 53, 0, 10);
    write_pcap(
        &p,
        &[
            (t0 * 1_000_000, frame.clone()),
            ((t0 + gap * 600) * 1_000_000, frame),
        ],
    );
    p
}

fn ingest(capture: &std::path::Path) -> (i32, Vec<serde_json::Value>, String) {
    let out = std::process::Command::new("prlimit")
        .arg(format!("--as={ADDRESS_SPACE_BYTES}"))
        .arg("--")
        .arg(vpcflow().get_program())
        .args([
            "ingest",
            "--ports-from",
            "192.168.0.0/16",
            "--format",
            "json",
        ])
        .arg(capture)
        .env_remove("VPCFLOW_DATABASE")
        .output()
        .expect("prlimit (util-linux) runs");
    let records = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    (
        out.status.code().unwrap_or(-1),
        records,
        String::from_utf8(out.stderr).unwrap(),
    )
}

#[test]
fn two_packets_three_million_windows_apart_ingest_in_bounded_memory() {
    let dir = tempfile::tempdir().unwrap();
    let gap = 3_000_000;
    let capture = gap_pcap(dir.path(), 1_700_000_400, gap);
    assert!(std::fs::metadata(&capture).unwrap().len() < 200);
    let (code, records, err) = ingest(&capture);
    assert_eq!(code, 0, "{err}");
    // Two ports (web, db); the first window, a day of NODATA, the last
    // (and the one before it, which the close grace leaves to the end).
    let windows: std::collections::BTreeSet<u64> = records
        .iter()
        .map(|r| r["start"].as_u64().unwrap())
        .collect();
    let n = windows.len() as u64;
    assert!(within_a_day(n), "{n} windows: {err}");
    assert_eq!(records.len() as u64, 2 * n, "{err}");
    // Every window of the span is either reported or counted.
    assert!(
        err.contains(&format!(
            "warning: {} capture windows of gaps without traffic were not reported",
            gap + 1 - n
        )),
        "{err}"
    );
}

#[test]
fn a_pcapng_packet_at_two_to_the_fortieth_second_is_ingested_without_aborting() {
    let dir = tempfile::tempdir().unwrap();
    let capture = dir.path().join("far.pcapng");
    std::fs::write(&capture, pcapng_seconds(1_700_000_400, 1 << 40)).unwrap();
    let (code, records, err) = ingest(&capture);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("read 2 packets"), "{err}");
    let ok = records.iter().filter(|r| r["log-status"] == "OK").count();
    assert_eq!(ok, 4, "both packets, at both ports: {err}");
    assert!(records.len() < 2 * 200, "{} records", records.len());
    assert!(err.contains("were not reported"), "{err}");
}

/// Uploaded, the far packets are skipped as implausible (the server's
/// clock bounds them) and a gap of 2,000 windows in the past writes a
/// day of windows, not 2,000; the server keeps serving.
#[test]
fn uploads_skip_implausible_timestamps_and_bound_a_gaps_windows() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let t = token(dir.path(), PROJECT);
    let upload = |bytes: &[u8]| server.upload(&format!("/v1/{PROJECT}/captures"), Some(&t), bytes);
    let recent = (now_secs() - 3600) / 600 * 600;

    let far = pcapng_seconds(recent, 1 << 40);
    let (s, v) = upload(&far);
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["capture"]["frames"], 2, "{v}");
    assert_eq!(v["capture"]["skipped"]["implausible-timestamp"], 1, "{v}");
    assert_eq!(v["capture"]["gap_windows_not_reported"], 0, "{v}");

    let old = pcapng_seconds(1000, recent);
    let (s, v) = upload(&old);
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["capture"]["skipped"]["implausible-timestamp"], 1, "{v}");
    assert_eq!(v["capture"]["windows"], 1, "{v}");

    let gap = 2_000;
    let long = std::fs::read(gap_pcap(dir.path(), recent - gap * 600, gap)).unwrap();
    let (s, v) = upload(&long);
    assert_eq!(s, 200, "{v}");
    let n = v["capture"]["windows"].as_u64().unwrap();
    assert!(within_a_day(n), "{v}");
    assert_eq!(v["capture"]["gap_windows_not_reported"], gap + 1 - n, "{v}");
    assert!(v["capture"]["files"].as_u64().unwrap() <= 2 * n, "{v}");
    assert!(common::server::raw_get(&server.addr, "/health").starts_with("HTTP/1.1 200"));
}
