//! The log store end to end: records written by `ingest --store` and read
//! back by `vpcflow query` equal the records `ingest` prints; a writer killed
//! at any moment leaves every reported file whole and nothing partial.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

mod common;
use common::{examples, ip_frame, shared_data, vpcflow, write_pcap};

fn out(cmd: &mut Command) -> String {
    let o = cmd.output().unwrap();
    assert!(
        o.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout).unwrap()
}

fn round_trip(ingest_args: &[&str], capture: &Path) {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let store = store.to_str().unwrap();
    for format in ["v1", "v2"] {
        let printed = out(vpcflow()
            .arg("ingest")
            .args(ingest_args)
            .args(["--format", format])
            .arg(capture));
        let _ = std::fs::remove_dir_all(store);
        out(vpcflow()
            .arg("ingest")
            .args(ingest_args)
            .args(["--store", store])
            .arg(capture));
        let queried = out(vpcflow().args(["query", "--store", store, "--format", format]));
        assert!(!printed.is_empty());
        assert_eq!(queried, printed, "{format} of {}", capture.display());
    }
}

#[test]
fn stored_records_read_back_equal_the_printed_ones() {
    let inv = examples().join("vpc.toml");
    round_trip(
        &["--config", inv.to_str().unwrap()],
        &examples().join("vpc-demo.pcap"),
    );
    let all = common::EVERY_ADDRESS;
    for trace in [
        "zeek/traces/wikipedia.pcap",
        "zeek/traces/ftp_ipv6.pcap",
        "zeek/traces/tcp_ctu-64702-888.pcap",
        // Sparse: 1,122 days, 1,058 windows.
        "zeek/traces/ssh_ssh.pcap",
    ] {
        round_trip(&all, &shared_data().join(trace));
    }
}

#[test]
fn an_offline_ingest_writes_one_file_per_topic_and_hour() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("s");
    let said = out(vpcflow()
        .arg("ingest")
        .args(common::EVERY_ADDRESS)
        .arg("--store")
        .arg(&store)
        .arg(shared_data().join("zeek/traces/ssh_ssh.pcap")));
    // Every file it said is there, durable and whole, with the records it said.
    let mut said_records = 0;
    for line in said.lines() {
        let (path, records) = line.rsplit_once(' ').unwrap();
        let records: usize = records.parse().unwrap();
        assert_eq!(
            vpcflow_store::read_rows(Path::new(path)).unwrap(),
            records,
            "{path}"
        );
        said_records += records;
    }
    let files: Vec<String> = walk(&store)
        .into_iter()
        .filter(|f| f.ends_with(".parquet"))
        .collect();
    assert_eq!(files.len(), said.lines().count());
    // One file per hour partition: windows held back and written together,
    // not a file per window (1,058 windows here) merged afterwards.
    let mut hours: Vec<&str> = files
        .iter()
        .map(|f| f.rsplit_once('/').unwrap().0)
        .collect();
    hours.sort_unstable();
    hours.dedup();
    assert_eq!(hours.len(), files.len());
    assert!(files.len() > 100 && files.len() < 1058, "{}", files.len());
    for f in &files {
        let name = f.rsplit_once('/').unwrap().1;
        assert!(
            !name.contains("compact"),
            "{f} was merged, not written whole"
        );
        assert!(
            vpcflow_store::summary::summary_path(Path::new(f)).exists(),
            "{f}"
        );
    }
    let count = out(vpcflow().args(["query", "--store"]).arg(&store).args([
        "--format",
        "csv",
        "--sql",
        "SELECT count(*) AS n FROM records",
    ]));
    assert_eq!(count, format!("n\n{said_records}\n"));
}

#[test]
fn search_sql_and_time_range() {
    let (_dir, store) = demo_store();
    let store = store.to_str().unwrap();
    let q = |args: &[&str]| out(vpcflow().args(["query", "--store", store]).args(args));
    let rejected = q(&[
        "--format",
        "csv",
        "--sql",
        "SELECT rule_id FROM records ORDER BY record_index",
        "action:REJECT",
        "AND",
        "dstport:22",
    ]);
    assert_eq!(
        rejected,
        "rule_id\n6c5b4a39-8e7f-4d21-b0a9-c8d7e6f5a4b3/3\n"
    );
    let outside = q(&[
        "--format",
        "csv",
        "--sql",
        "SELECT DISTINCT srcaddr FROM records ORDER BY srcaddr",
        "srcaddr:198.51.100.0/24",
    ]);
    assert_eq!(
        outside,
        "srcaddr\n198.51.100.23\n198.51.100.80\n198.51.100.9\n"
    );
    // The second window only.
    let late = q(&["--format", "v1", "--since", "2019-01-29T09:00:30Z"]);
    assert_eq!(late.lines().count(), 4, "{late}");
    assert!(late.lines().all(|l| l.contains(" 1548752400 1548753000 ")));
    let topic = q(&[
        "--format",
        "v1",
        "--topic",
        "a1b2c3d4-0000-4000-8000-000000000003",
    ]);
    assert!(
        topic
            .lines()
            .all(|l| l.contains("e3f1b2c4-d5a6-4b7c-8d9e-0f1a2b3c4d5e")),
        "{topic}"
    );
    let o = vpcflow()
        .args(["query", "--store", store, "--group", "nope"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("no log group 'nope' in the store"));
    let o = vpcflow()
        .args(["query", "--store", store, "dstport:ssh"])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&o.stderr).contains("dstport takes a whole number"));
}

/// `ingest` of the long capture below into a store: 60-second windows,
/// every address of 10.0.0.0/16 a port.
const INGEST_LONG: [&str; 6] = [
    "ingest",
    "--ports-from",
    "10.0.0.0/16",
    "--window",
    "60",
    "--store",
];

#[test]
fn a_writer_killed_at_random_moments_leaves_only_whole_files() {
    // A capture of many 60-second windows, so the writer is killed mid-stream.
    let dir = tempfile::tempdir().unwrap();
    let cap = dir.path().join("long.pcap");
    let mut frames = Vec::new();
    for i in 0..40_000u64 {
        let t = 1_700_000_000_000_000 + i * 9_000_000; // every 9 s: ~100 hours
        // 50 ports: a window holds at most 50 records (flows or NODATA).
        let src = format!("10.0.0.{}", i % 50);
        frames.push((
            t,
            ip_frame(&src, "10.9.9.9", 17, (i % 60_000) as u16, 53, 0, 20),
        ));
    }
    write_pcap(&cap, &frames);
    let store = dir.path().join("store");
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let mut reported: Vec<(String, usize)> = Vec::new();
    for _ in 0..12 {
        let mut child = vpcflow()
            .args(INGEST_LONG)
            .arg(&store)
            .arg(&cap)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        std::thread::sleep(Duration::from_millis(50 + seed % 1000));
        let _ = child.kill(); // SIGKILL
        let o = child.wait_with_output().unwrap();
        for line in String::from_utf8_lossy(&o.stdout).lines() {
            let (path, n) = line.rsplit_once(' ').unwrap();
            reported.push((path.to_string(), n.parse().unwrap()));
        }
    }
    assert!(
        reported.len() > 10,
        "the writer reported only {} files",
        reported.len()
    );
    // Every record reported durable is still there: in its file, or in the
    // compacted file of its hour that replaced it. Nothing is doubled: each
    // run adds at most one unreported hour (its renames were done, its lines
    // not yet written) of at most 60 windows of 50 records.
    let hour_of = |p: &str| Path::new(p).parent().unwrap().to_path_buf();
    let mut reported_by_hour: std::collections::BTreeMap<std::path::PathBuf, usize> =
        Default::default();
    for (path, n) in &reported {
        *reported_by_hour.entry(hour_of(path)).or_default() += n;
    }
    // Every visible file is whole; temporary files are never visible.
    let files = walk(&store);
    let mut visible_rows = 0;
    let mut visible_by_hour: std::collections::BTreeMap<std::path::PathBuf, usize> =
        Default::default();
    for f in files.iter().filter(|f| f.ends_with(".parquet")) {
        let n = vpcflow_store::read_rows(Path::new(f))
            .unwrap_or_else(|e| panic!("partial file visible: {e}"));
        visible_rows += n;
        *visible_by_hour.entry(hour_of(f)).or_default() += n;
    }
    for (hour, n) in &reported_by_hour {
        let have = visible_by_hour.get(hour).copied().unwrap_or(0);
        assert!(have >= *n, "{}: {have} rows, {n} reported", hour.display());
    }
    let total: usize = reported.iter().map(|r| r.1).sum();
    assert!(visible_rows >= total);
    assert!(
        visible_rows <= total + 12 * 60 * 50,
        "{visible_rows} rows visible, {total} reported"
    );
    // The store reads as a whole, and opening it for writing clears leftovers.
    let count = out(vpcflow().args(["query", "--store"]).arg(&store).args([
        "--format",
        "csv",
        "--sql",
        "SELECT count(*) AS n FROM records",
    ]));
    assert_eq!(count, format!("n\n{visible_rows}\n"));
    // Every records file has its window summary (written before it).
    for f in files.iter().filter(|f| f.ends_with(".parquet")) {
        let summary = vpcflow_store::summary::summary_path(Path::new(f));
        assert!(summary.exists(), "{f} has no summary");
    }
    vpcflow_store::Store::open(&store).unwrap();
    let left = walk(&store);
    assert!(left.iter().all(|f| !f.ends_with(".tmp")));
    // A summary whose records file a kill kept from being written is gone.
    for f in &left {
        if let Some(records) = vpcflow_store::summary::records_file_of(Path::new(f)) {
            assert!(records.exists(), "{f} outlived its records file");
        }
    }
    // A run to the end merges each hour it wrote with what the killed runs
    // left there (one file per hour and run, until then).
    out(vpcflow().args(INGEST_LONG).arg(&store).arg(&cap));
    let files = walk(&store);
    assert!(
        files.iter().any(|f| f.contains("-compact-")),
        "no hour was compacted"
    );
    let mut per_hour: std::collections::BTreeMap<std::path::PathBuf, usize> = Default::default();
    for f in files.iter().filter(|f| f.ends_with(".parquet")) {
        *per_hour.entry(hour_of(f)).or_default() += 1;
    }
    assert!(per_hour.values().all(|n| *n == 1), "{per_hour:?}");
}

/// A store holding the demo capture's records under the example inventory.
fn demo_store() -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("s");
    let inv = examples().join("vpc.toml");
    out(vpcflow()
        .args(["ingest", "--config", inv.to_str().unwrap(), "--store"])
        .arg(&store)
        .arg(examples().join("vpc-demo.pcap")));
    (dir, store)
}

fn walk(root: &Path) -> Vec<String> {
    if !root.exists() {
        return Vec::new();
    }
    let mut v = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                v.push(p.display().to_string());
            }
        }
    }
    v
}

#[test]
fn retention_removes_what_is_older_than_the_groups_ttl() {
    let (_dir, store) = demo_store();
    let inv = examples().join("vpc.toml");
    let count = |s: &Path| -> usize {
        let o = out(vpcflow().args(["query", "--store"]).arg(s).args([
            "--format",
            "csv",
            "--sql",
            "SELECT count(*) AS n FROM records",
        ]));
        o.lines().nth(1).unwrap().parse().unwrap()
    };
    let before = count(&store);
    // The demo's windows end at 09:00 and 09:10 on 2019-01-29; lg-vpc keeps 7 days.
    let gc = |now: &str| {
        out(vpcflow()
            .args(["store", "gc", "--config", inv.to_str().unwrap(), "--store"])
            .arg(&store)
            .args(["--now", now]))
    };
    assert_eq!(gc("2019-02-05T08:59:59Z"), "", "nothing is 7 days old yet");
    assert_eq!(count(&store), before);
    let removed = gc("2019-02-05T09:00:00Z");
    assert_eq!(
        removed.lines().count(),
        2,
        "hour 08 of both topics: {removed}"
    );
    assert!(removed.lines().all(|l| l.contains("hour=8")));
    let after = count(&store);
    assert!(0 < after && after < before, "{before} -> {after}");
    gc("2019-02-06T00:00:00Z");
    assert_eq!(count(&store), 0);
}

/// What one engine saw of a store (a line of tests/interop/engines.py).
#[derive(Debug)]
struct EngineView {
    engine: String,
    rows: u64,
    columns: Vec<String>,
    digest: String,
    top_talkers: Vec<(String, u64, u64)>,
    types: std::collections::BTreeMap<String, String>,
    dashes: Vec<String>,
}

impl EngineView {
    fn parse(line: &str) -> EngineView {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        let text = |v: &serde_json::Value| v.as_str().unwrap().to_string();
        let texts = |v: &serde_json::Value| v.as_array().unwrap().iter().map(text).collect();
        EngineView {
            engine: text(&v["engine"]),
            rows: v["rows"].as_u64().unwrap(),
            columns: texts(&v["columns"]),
            digest: text(&v["digest"]),
            top_talkers: v["top_talkers"]
                .as_array()
                .unwrap()
                .iter()
                .map(|t| (text(&t[0]), t[1].as_u64().unwrap(), t[2].as_u64().unwrap()))
                .collect(),
            types: v["types"]
                .as_object()
                .unwrap()
                .iter()
                .map(|(k, t)| (k.clone(), text(t)))
                .collect(),
            dashes: texts(&v["dashes"]),
        }
    }
}

#[test]
fn every_engine_reads_the_store_alike() {
    // One store of two log groups: every address a port (no zone, no
    // rule owner: NULLs) and the example VPC (rules, NODATA records).
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("s");
    for trace in ["zeek/traces/wikipedia.pcap", "zeek/traces/ftp_ipv4.pcap"] {
        out(vpcflow()
            .arg("ingest")
            .args(common::EVERY_ADDRESS)
            .arg("--store")
            .arg(&store)
            .arg(shared_data().join(trace)));
    }
    out(vpcflow()
        .args(["ingest", "--config"])
        .arg(examples().join("vpc.toml"))
        .arg("--store")
        .arg(&store)
        .arg(examples().join("vpc-demo.pcap")));
    let ours = dir.path().join("ours.json");
    let all = out(vpcflow().args(["query", "--store"]).arg(&store).args([
        "--format",
        "json",
        "--sql",
        "SELECT * FROM records",
    ]));
    std::fs::write(&ours, &all).unwrap();
    let sql = "SELECT srcaddr, sum(bytes) AS bytes, count(*) AS flows FROM records \
               WHERE log_status = 'OK' GROUP BY srcaddr ORDER BY bytes DESC, srcaddr LIMIT 10";
    let top: Vec<(String, u64, u64)> = out(vpcflow()
        .args(["query", "--store"])
        .arg(&store)
        .args(["--format", "csv", "--sql", sql]))
    .lines()
    .skip(1)
    .map(|l| {
        let f: Vec<&str> = l.split(',').collect();
        (
            f[0].to_string(),
            f[1].parse().unwrap(),
            f[2].parse().unwrap(),
        )
    })
    .collect();
    assert_eq!(top.len(), 10);
    let script =
        std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/interop/engines.py");
    let o = Command::new(common::test_python())
        .arg(script)
        .arg(&store)
        .arg(&ours)
        .env("SPARK_LOCAL_IP", "127.0.0.1")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let views: Vec<EngineView> = String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(EngineView::parse)
        .collect();
    let names: Vec<&str> = views.iter().map(|v| v.engine.as_str()).collect();
    assert_eq!(
        names,
        ["vpcflow", "duckdb", "polars", "pyarrow", "chdb", "spark"]
    );
    let (mine, engines) = views.split_first().unwrap();
    assert_eq!(mine.rows, all.lines().count() as u64);
    assert!(mine.rows > 150, "{}", mine.rows);
    for must in [
        "version",
        "start_time",
        "end_time",
        "date",
        "hour",
        "log_group",
    ] {
        assert!(
            mine.columns.iter().any(|c| c == must),
            "{must}: {:?}",
            mine.columns
        );
    }
    for v in engines {
        let e = &v.engine;
        // The same rows, every column and partition, value for value.
        assert_eq!(v.columns, mine.columns, "{e}");
        assert_eq!((v.rows, &v.digest), (mine.rows, &mine.digest), "{e}");
        assert_eq!(v.top_talkers, top, "{e}");
        // One null convention: nothing absent reads as `-`.
        assert!(v.dashes.is_empty(), "{e}: `-` in {:?}", v.dashes);
        // The partitions are integers to every engine; the bounds instants.
        for p in ["date", "hour"] {
            let t = v.types[p].to_ascii_lowercase();
            assert!(t.contains("int"), "{e} types {p} as {t}");
        }
        let t = v.types["start_time"].to_ascii_lowercase();
        assert!(t.contains("time"), "{e} types start_time as {t}");
    }
}

#[test]
fn a_store_of_the_earlier_layout_moves_when_a_writer_opens_it() {
    let (_dir, store) = demo_store();
    let csv = |sql: &str| {
        out(vpcflow()
            .args(["query", "--store"])
            .arg(&store)
            .args(["--format", "csv", "--sql", sql]))
    };
    let by_hour = "SELECT date, hour, count(*) AS n FROM records GROUP BY 1, 2 ORDER BY 1, 2";
    let before = csv(by_hour);
    assert_eq!(before.lines().next(), Some("date,hour,n"));
    assert!(
        before.contains("\n20190129,8,") && before.contains("\n20190129,9,"),
        "{before}"
    );
    // Back to the earlier names: catalog.json, `<file>.summary.json.zst`,
    // date=YYYY-MM-DD/hour=HH.
    std::fs::rename(store.join("_catalog.json"), store.join("catalog.json")).unwrap();
    for f in walk(&store) {
        let p = Path::new(&f);
        if let Some(records) = vpcflow_store::summary::records_file_of(p) {
            let name = records.file_name().unwrap().to_str().unwrap();
            std::fs::rename(p, p.with_file_name(format!("{name}.summary.json.zst"))).unwrap();
        }
    }
    for topic in std::fs::read_dir(store.join("log_group=a1b2c3d4-0000-4000-8000-000000000001"))
        .unwrap()
        .flatten()
    {
        let date = topic.path().join("date=20190129");
        for (new, old) in [("hour=8", "hour=08"), ("hour=9", "hour=09")] {
            std::fs::rename(date.join(new), date.join(old)).unwrap();
        }
        std::fs::rename(&date, topic.path().join("date=2019-01-29")).unwrap();
    }
    // A query names what it found; it does not write.
    let o = vpcflow()
        .args(["query", "--store"])
        .arg(&store)
        .args(["--sql", by_hour])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        !o.status.success() && err.contains("earlier vpcflow") && err.contains("hour=08"),
        "{err}"
    );
    // The catalog under its earlier name is still read.
    let catalog = vpcflow_store::Catalog::load(&store).unwrap();
    assert_eq!(catalog.log_groups.len(), 1);
    // A writer opening the store moves it, and the summaries are read again.
    vpcflow_store::Store::open(&store).unwrap();
    assert_eq!(csv(by_hour), before);
    let files = walk(&store);
    assert!(
        files.iter().any(|f| f.ends_with("/_catalog.json")),
        "{files:?}"
    );
    for f in files.iter().filter(|f| f.ends_with(".parquet")) {
        assert!(f.contains("/date=20190129/hour="), "{f}");
        assert!(
            vpcflow_store::summary::summary_path(Path::new(f)).exists(),
            "{f}"
        );
    }
}

#[test]
fn an_unreadable_file_is_skipped_with_a_warning_naming_it() {
    let (_dir, store) = demo_store();
    let q = || {
        vpcflow()
            .args(["query", "--store"])
            .arg(&store)
            .args(["--format", "v1"])
            .output()
            .unwrap()
    };
    let whole = q();
    assert!(whole.status.success());
    let files: Vec<String> = walk(&store)
        .into_iter()
        .filter(|f| f.ends_with(".parquet"))
        .collect();
    assert_eq!(files.len(), 4, "two topics, two hours: {files:?}");
    let rows_in_first = vpcflow_store::read_rows(Path::new(&files[0])).unwrap();
    // A stray file that is not Parquet, and a real file cut in half.
    let stray = Path::new(&files[0]).with_file_name("broken.parquet");
    std::fs::write(&stray, "not parquet").unwrap();
    let bytes = std::fs::read(&files[0]).unwrap();
    std::fs::write(&files[0], &bytes[..bytes.len() / 2]).unwrap();
    let o = q();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("skipped an unreadable store file")
            && err.contains("broken.parquet")
            && err.contains(files[0].as_str()),
        "{err}"
    );
    // Every record of the other file is still answered.
    let before = String::from_utf8_lossy(&whole.stdout).lines().count();
    let after = String::from_utf8_lossy(&o.stdout).lines().count();
    assert_eq!(after, before - rows_in_first, "{err}");
    // A bad SQL is still an error of its own, not a file's.
    let o = vpcflow()
        .args(["query", "--store"])
        .arg(&store)
        .args(["--sql", "SELECT nope FROM records"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("nope"));
}

#[test]
fn groups_and_topics_by_name_and_a_second_writer_is_refused() {
    let (_dir, store) = demo_store();
    let q = |args: &[&str]| {
        out(vpcflow()
            .args(["query", "--store"])
            .arg(&store)
            .args(["--format", "v1"])
            .args(args))
    };
    let by_id = q(&["--topic", "a1b2c3d4-0000-4000-8000-000000000003"]);
    assert!(!by_id.is_empty());
    assert_eq!(q(&["--topic", "lt-rejected"]), by_id);
    assert_eq!(q(&["--group", "lg-vpc", "--topic", "lt-rejected"]), by_id);
    assert_eq!(
        q(&["--group", "lg-vpc"]),
        q(&["--group", "a1b2c3d4-0000-4000-8000-000000000001"])
    );
    let o = vpcflow()
        .args(["query", "--store"])
        .arg(&store)
        .args(["--topic", "lt-nope"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("no log topic 'lt-nope'"));
    // The catalog also carries the retention: gc works without the inventory.
    let o = out(vpcflow()
        .args(["store", "gc", "--store"])
        .arg(&store)
        .args(["--now", "2019-02-06T00:00:00Z"]));
    assert_eq!(o.lines().count(), 4, "{o}");
    assert_eq!(q(&[]), "");
    // One writer at a time.
    let _held = vpcflow_store::Store::open(&store).unwrap();
    let o = vpcflow()
        .args(["store", "compact", "--store"])
        .arg(&store)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("open for writing by another process"));
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &to.join(e.file_name()));
        } else {
            std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
        }
    }
}

#[test]
fn a_store_written_before_a_field_existed_is_read_and_written_on() {
    // Copied: a store takes a lock file and is written to below.
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let fixture =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/store-before-passed");
    copy_dir(&fixture, &store);
    // New records beside the old ones.
    let o = vpcflow()
        .args(["ingest", "--config"])
        .arg(examples().join("vpc.toml"))
        .arg("--store")
        .arg(&store)
        .args(["--window", "60"])
        .arg(examples().join("vpc-demo.pcap"))
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    // The old files' records have no passed-* values, the new ones do.
    let csv = out(vpcflow().args(["query", "--store"]).arg(&store).args([
        "--format",
        "csv",
        "--sql",
        "SELECT \"end\" - start AS length, COUNT(*) AS records, COUNT(passed_rule_id) AS passed \
         FROM records GROUP BY 1 ORDER BY 1",
    ]));
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines[0], "length,records,passed");
    let old: Vec<&str> = lines[2].split(',').collect();
    let new: Vec<&str> = lines[1].split(',').collect();
    assert_eq!((old[0], old[2]), ("600", "0"), "{csv}");
    assert_eq!(new[0], "60", "{csv}");
    assert!(new[2].parse::<u64>().unwrap() > 0, "{csv}");
    // The analyses read both.
    let o = vpcflow()
        .args(["analyze", "rules", "--format", "json", "--config"])
        .arg(examples().join("vpc.toml"))
        .arg("--store")
        .arg(&store)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}
