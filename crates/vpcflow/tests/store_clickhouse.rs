//! The log store on ClickHouse against the store on a directory: the same
//! captures ingested into both, then every query (each output format,
//! searches, SQL, time ranges, names), every analysis and retention must
//! answer byte for byte alike. Then outages: windows closed while
//! ClickHouse is down wait in the spool and arrive once it is back, and a
//! writer killed mid-send neither loses nor doubles a window.
//!
//! ClickHouse: a two-shard cluster of Debian's server (18.16), started by
//! scripts/test.sh (`VPCFLOW_TEST_CLICKHOUSE`, each test a database of its
//! own), and for the outage tests one of their own (scripts/clickhouse.sh).

use std::path::{Path, PathBuf};
use std::process::Command;

mod common;
use common::{EVERY_ADDRESS, examples, shared_data, vpcflow};

const NEEDS: &str =
    "needs a ClickHouse cluster (VPCFLOW_TEST_CLICKHOUSE): scripts/test.sh starts one";

/// The test cluster's URL with a database of the caller's.
fn clickhouse(database: &str) -> String {
    let url = std::env::var("VPCFLOW_TEST_CLICKHOUSE").expect(
        "this test needs a ClickHouse cluster: set VPCFLOW_TEST_CLICKHOUSE to the URL \
         `scripts/clickhouse.sh start DIR` prints (scripts/test.sh does)",
    );
    with_database(&url, &format!("{database}_{}", std::process::id()))
}

fn with_database(url: &str, database: &str) -> String {
    let (hosts, rest) = url
        .strip_prefix("clickhouse://")
        .and_then(|u| u.split_once('/'))
        .expect("a clickhouse:// URL");
    let query = rest
        .split_once('?')
        .map_or(String::new(), |(_, q)| format!("?{q}"));
    format!("clickhouse://{hosts}/{database}{query}")
}

/// Runs `vpcflow` with `args`: its stdout, or its stderr as the error.
fn run<S: AsRef<std::ffi::OsStr>>(args: impl IntoIterator<Item = S>) -> Result<String, String> {
    let o = vpcflow().args(args).output().unwrap();
    if o.status.success() {
        Ok(String::from_utf8(o.stdout).unwrap())
    } else {
        Err(String::from_utf8_lossy(&o.stderr).into_owned())
    }
}

fn run_ok<S: AsRef<std::ffi::OsStr>>(args: impl IntoIterator<Item = S>) -> String {
    run(args).unwrap_or_else(|e| panic!("{e}"))
}

/// Ingests `capture` with `extra` flags into the directory `dir` and into
/// ClickHouse at `url` (through the spool `spool`).
fn ingest_both(dir: &Path, url: &str, spool: &Path, extra: &[&str], capture: &Path) {
    let mut args: Vec<&std::ffi::OsStr> = vec!["ingest".as_ref()];
    args.extend(extra.iter().map(std::ffi::OsStr::new));
    args.push(capture.as_os_str());
    let mut to_dir = args.clone();
    to_dir.extend(["--store".as_ref(), dir.as_os_str()]);
    run_ok(&to_dir);
    let mut to_ch = args;
    to_ch.extend([
        "--store".as_ref(),
        url.as_ref(),
        "--spool".as_ref(),
        spool.as_os_str(),
    ]);
    let o = vpcflow().args(&to_ch).output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    assert!(err.contains(", all taken"), "{err}");
}

/// `vpcflow ARGS --store STORE` on both stores must answer alike (the
/// answer, or the error less the store's name).
fn same(dir: &Path, url: &str, args: &[&str]) -> String {
    let ask = |store: &str| {
        let mut a: Vec<&str> = args.to_vec();
        a.extend(["--store", store]);
        run(&a).map_err(|e| e.replace(store, "STORE"))
    };
    let on_dir = ask(dir.to_str().unwrap());
    let on_ch = ask(url);
    assert_eq!(on_ch, on_dir, "{args:?}");
    on_dir.unwrap_or_default()
}

#[test]
#[ignore = "needs a ClickHouse cluster (VPCFLOW_TEST_CLICKHOUSE): scripts/test.sh starts one"]
fn every_query_and_analysis_answers_alike_on_a_directory_and_on_clickhouse() {
    let _ = NEEDS;
    let tmp = tempfile::tempdir().unwrap();
    let (dir, spool) = (tmp.path().join("store"), tmp.path().join("spool"));
    let url = clickhouse("alike");
    let config = examples().join("vpc.toml");
    let config = config.to_str().unwrap();
    let attacks = tmp.path().join("attacks.pcap");
    vpcflow_tools::attacks::write_capture(&attacks, true).unwrap();
    ingest_both(
        &dir,
        &url,
        &spool,
        &["--config", config],
        &examples().join("vpc-demo.pcap"),
    );
    ingest_both(
        &dir,
        &url,
        &spool,
        &["--config", config, "--window", "60"],
        &attacks,
    );
    // The spool is empty once ClickHouse has every window.
    assert_eq!(vpcflow_store::shipped::spooled(&spool).unwrap(), []);
    // vpcflow inserts each shard's rows into its own table: each port's
    // on the one shard the Distributed table's key says (the URL lists
    // the shards in order, as scripts/clickhouse.sh prints them).
    let store = vpcflow_store::clickhouse::ClickHouse::open(
        &vpcflow_store::clickhouse::ClickHouseUrl::parse(&url).unwrap(),
    )
    .unwrap();
    let placed = store.ports_on_each_host().unwrap();
    assert_eq!(placed.len(), 2);
    for (shard, ports) in placed.iter().enumerate() {
        let sql = format!(
            "SELECT DISTINCT interface_id FROM records \
             WHERE cityHash64(interface_id) % 2 = {shard} ORDER BY interface_id"
        );
        let by_key = run_ok(["query", "--store", &url, "--format", "csv", "--sql", &sql]);
        let by_key: Vec<&str> = by_key.lines().skip(1).collect();
        assert!(!ports.is_empty(), "{placed:?}");
        assert_eq!(ports, &by_key, "shard {}", shard + 1);
    }

    let mut answered = 0;
    for format in ["v1", "v2", "json", "csv", "table"] {
        for search in [
            &[][..],
            &["action:REJECT"],
            &["srcaddr:198.51.100.0/24"],
            &["dstport:22", "OR", "dstport:3389"],
            &["interface_id:1d5*", "AND", "NOT", "protocol:17"],
            &["bytes>1000"],
        ] {
            let mut args = vec!["query", "--format", format];
            args.extend(search);
            answered += same(&dir, &url, &args).lines().count();
        }
    }
    assert!(
        answered > 1000,
        "{answered} lines: the queries must find records"
    );
    for scope in [
        &["--group", "lg-vpc"][..],
        &["--topic", "lt-rejected"],
        &["--group", "a1b2c3d4-0000-4000-8000-000000000001"],
        &["--since", "2019-01-29T09:00:30Z"],
        &["--until", "2019-01-29T09:00:00Z"],
        &["--group", "nope"],
        &["--limit", "5"],
    ] {
        let mut args = vec!["query", "--format", "csv"];
        args.extend(scope);
        same(&dir, &url, &args);
    }
    for sql in [
        "SELECT action, count(*) AS n, sum(bytes) AS b FROM records GROUP BY action ORDER BY action",
        "SELECT srcaddr, sum(bytes) AS b FROM records GROUP BY srcaddr ORDER BY b DESC, srcaddr LIMIT 10",
        "SELECT log_topic, direction, count(*) AS n FROM records GROUP BY log_topic, direction \
         ORDER BY log_topic, direction",
        "SELECT start_time, end_time, date, hour FROM records ORDER BY start, record_index LIMIT 3",
        "SELECT r.interface_id, count(*) AS n FROM records r WHERE r.log_status = 'OK' \
         GROUP BY r.interface_id ORDER BY n DESC, r.interface_id",
    ] {
        let answer = same(&dir, &url, &["query", "--format", "csv", "--sql", sql]);
        assert!(answer.lines().count() > 1, "{sql}: {answer}");
    }
    // What SQL may read: only the records.
    for sql in [
        "SELECT * FROM system.tables",
        "SELECT * FROM records_local",
        "SELECT count(*) FROM records WHERE srcaddr IN (SELECT name FROM system.users)",
    ] {
        let e = run(["query", "--store", &url, "--sql", sql]).unwrap_err();
        assert!(e.contains("only the table `records`"), "{sql}: {e}");
    }

    for (kind, extra) in [
        ("attacks", &[][..]),
        ("rules", &["--config", config][..]),
        ("rules", &["--config", config, "--hits"][..]),
        ("traffic", &["--config", config][..]),
    ] {
        let mut args = vec!["analyze", kind, "--format", "json"];
        args.extend(extra);
        let found = same(&dir, &url, &args);
        assert!(!found.is_empty(), "analyze {kind} {extra:?} found nothing");
    }
}

#[test]
#[ignore = "needs a ClickHouse cluster (VPCFLOW_TEST_CLICKHOUSE): scripts/test.sh starts one"]
fn captures_of_every_kind_read_back_alike_and_equal_the_printed_records() {
    let tmp = tempfile::tempdir().unwrap();
    let (dir, spool) = (tmp.path().join("store"), tmp.path().join("spool"));
    let url = clickhouse("captures");
    for trace in [
        "zeek/traces/wikipedia.pcap",
        "zeek/traces/ftp_ipv6.pcap",
        // Sparse: 1,122 days, 1,058 windows, each one insert.
        "zeek/traces/ssh_ssh.pcap",
    ] {
        ingest_both(
            &dir,
            &url,
            &spool,
            &EVERY_ADDRESS,
            &shared_data().join(trace),
        );
    }
    let printed: usize = [
        "zeek/traces/wikipedia.pcap",
        "zeek/traces/ftp_ipv6.pcap",
        "zeek/traces/ssh_ssh.pcap",
    ]
    .iter()
    .map(|t| {
        let mut a: Vec<std::ffi::OsString> = vec!["ingest".into(), "--format".into(), "v2".into()];
        a.extend(EVERY_ADDRESS.iter().map(Into::into));
        a.push(shared_data().join(t).into());
        run_ok(a).lines().count()
    })
    .sum();
    let v2 = same(&dir, &url, &["query", "--format", "v2"]);
    assert_eq!(v2.lines().count(), printed);
    same(
        &dir,
        &url,
        &["query", "--format", "json", "srcaddr:2001:470:1f11::/48"],
    );
    let v6 = same(
        &dir,
        &url,
        &["query", "--format", "csv", "dstaddr:2001::/16"],
    );
    assert!(v6.lines().count() > 1, "{v6}");
}

#[test]
#[ignore = "needs a ClickHouse cluster (VPCFLOW_TEST_CLICKHOUSE): scripts/test.sh starts one"]
fn retention_removes_the_same_hours_from_both() {
    let tmp = tempfile::tempdir().unwrap();
    let (dir, spool) = (tmp.path().join("store"), tmp.path().join("spool"));
    let url = clickhouse("retention");
    let config = examples().join("vpc.toml");
    let config = config.to_str().unwrap();
    ingest_both(
        &dir,
        &url,
        &spool,
        &["--config", config],
        &examples().join("vpc-demo.pcap"),
    );
    let count = |store: &str| {
        run_ok([
            "query",
            "--store",
            store,
            "--format",
            "csv",
            "--sql",
            "SELECT count(*) AS n FROM records",
        ])
    };
    // The demo's windows end at 09:00 and 09:10 on 2019-01-29; lg-vpc
    // keeps 7 days: instants that remove nothing, hour 8, and all.
    let mut seen = Vec::new();
    for at in [
        "2019-02-05T08:59:59Z",
        "2019-02-05T09:00:00Z",
        "2019-02-06T00:00:00Z",
    ] {
        for store in [dir.to_str().unwrap(), url.as_str()] {
            // The catalog's retention (no --config): ClickHouse keeps one too.
            run_ok(["store", "gc", "--store", store, "--now", at]);
        }
        let n = count(dir.to_str().unwrap());
        // A removal in ClickHouse may be a mutation: wait for it.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        while count(&url) != n && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(200));
        }
        assert_eq!(count(&url), n, "after gc at {at}");
        seen.push(n);
    }
    let n = |s: &str| s.lines().nth(1).unwrap().parse::<u64>().unwrap();
    assert_eq!(n(&seen[0]), 21, "{seen:?}");
    assert!(n(&seen[0]) > n(&seen[1]) && n(&seen[1]) > 0, "{seen:?}");
    assert_eq!(n(&seen[2]), 0, "{seen:?}");
}

/// A cluster of this test's own, stopped and started by it.
struct OwnCluster {
    dir: tempfile::TempDir,
    url: String,
}

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/clickhouse.sh")
}

impl OwnCluster {
    fn start() -> OwnCluster {
        let dir = tempfile::tempdir().unwrap();
        let url = Self::up(dir.path());
        OwnCluster { dir, url }
    }
    fn up(dir: &Path) -> String {
        let o = Command::new("bash")
            .arg(script())
            .arg("start")
            .arg(dir)
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let url = String::from_utf8(o.stdout)
            .unwrap()
            .lines()
            .last()
            .unwrap()
            .to_string();
        with_database(&url, "outage")
    }
    fn stop(&self) {
        let o = Command::new("bash")
            .arg(script())
            .arg("stop")
            .arg(self.dir.path())
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
    fn restart(&self) {
        assert_eq!(
            Self::up(self.dir.path()),
            self.url,
            "the same servers again"
        );
    }
}

impl Drop for OwnCluster {
    fn drop(&mut self) {
        let _ = Command::new("bash")
            .arg(script())
            .arg("stop")
            .arg(self.dir.path())
            .output();
    }
}

#[test]
#[ignore = "needs Debian's clickhouse-server (scripts/setup.sh clickhouse): scripts/test.sh installs it"]
fn windows_closed_while_clickhouse_is_down_arrive_once_it_is_back() {
    let cluster = OwnCluster::start();
    let tmp = tempfile::tempdir().unwrap();
    let (dir, spool) = (tmp.path().join("store"), tmp.path().join("spool"));
    let capture = shared_data().join("zeek/traces/ssh_ssh.pcap");
    let mut args: Vec<std::ffi::OsString> = vec!["ingest".into()];
    args.extend(EVERY_ADDRESS.iter().map(Into::into));
    args.push(capture.clone().into());
    let mut to_dir = args.clone();
    to_dir.extend(["--store".into(), dir.clone().into()]);
    run_ok(to_dir);

    cluster.stop();
    let mut to_ch = args.clone();
    to_ch.extend([
        "--store".into(),
        cluster.url.clone().into(),
        "--spool".into(),
        spool.clone().into(),
    ]);
    let o = vpcflow().args(&to_ch).output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    assert!(err.contains("wait in the spool"), "{err}");
    let waiting = vpcflow_store::shipped::spooled(&spool).unwrap().len();
    assert!(waiting > 1000, "{waiting} windows should wait");
    let flush = || {
        vpcflow()
            .args(["store", "flush", "--store", &cluster.url, "--spool"])
            .arg(&spool)
            .output()
            .unwrap()
    };
    // Still down: nothing leaves the spool, and the flush says so.
    let o = flush();
    assert_eq!(
        o.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert_eq!(
        vpcflow_store::shipped::spooled(&spool).unwrap().len(),
        waiting
    );

    cluster.restart();
    // A flush killed mid-way, then one to the end: every window once.
    let mut child = vpcflow()
        .args(["store", "flush", "--store", &cluster.url, "--spool"])
        .arg(&spool)
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while vpcflow_store::shipped::spooled(&spool).unwrap().len() > waiting / 2
        && std::time::Instant::now() < deadline
    {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let left = vpcflow_store::shipped::spooled(&spool).unwrap().len();
    assert!(
        left > 0 && left < waiting,
        "killed with {left} of {waiting} left"
    );
    let o = flush();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(vpcflow_store::shipped::spooled(&spool).unwrap(), []);
    same(&dir, &cluster.url, &["query", "--format", "v2"]);
    let dup = run_ok([
        "query",
        "--store",
        &cluster.url,
        "--format",
        "csv",
        "--sql",
        "SELECT log_topic, start, record_index, count(*) AS n FROM records \
         GROUP BY log_topic, start, record_index HAVING count(*) > 1",
    ]);
    assert_eq!(dup, "", "no record twice");
}

#[test]
#[ignore = "needs a ClickHouse cluster (VPCFLOW_TEST_CLICKHOUSE): scripts/test.sh starts one"]
fn the_agent_writes_its_windows_into_clickhouse_through_its_spool() {
    let tmp = tempfile::tempdir().unwrap();
    let spool = tmp.path().join("spool");
    let url = clickhouse("agent");
    // No monitored port's interface is here: each port's window is NODATA,
    // cut short by the stop, and goes to ClickHouse before the agent exits.
    let o = vpcflow()
        .args([
            "agent",
            "--capture",
            "af-packet",
            "--duration",
            "2",
            "--config",
        ])
        .arg(examples().join("vpc.toml"))
        .args(["--store", &url, "--spool"])
        .arg(&spool)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(vpcflow_store::shipped::spooled(&spool).unwrap(), []);
    // By the log group's name: the agent's catalog went with its windows.
    let rows = run_ok([
        "query",
        "--store",
        &url,
        "--group",
        "lg-vpc",
        "--format",
        "csv",
        "--sql",
        "SELECT log_status, count(*) AS n FROM records GROUP BY log_status",
    ]);
    assert_eq!(rows, "log_status,n\nNODATA,4\n");
}

/// The DDL, inserts and queries vpcflow sends ClickHouse, made for a
/// current release, run in chDB (a current ClickHouse, in process): they
/// must be accepted and answer as the Parquet store does. The windows are
/// those an `ingest` into an unreachable ClickHouse leaves in its spool.
#[test]
fn the_tables_inserts_and_queries_work_on_a_current_clickhouse_release() {
    use vpcflow_store::clickhouse::offline;
    let tmp = tempfile::tempdir().unwrap();
    let (dir, spool) = (tmp.path().join("store"), tmp.path().join("spool"));
    let config = examples().join("vpc.toml");
    let demo = examples().join("vpc-demo.pcap");
    run_ok([
        "ingest".as_ref(),
        "--config".as_ref(),
        config.as_os_str(),
        "--store".as_ref(),
        dir.as_os_str(),
        demo.as_os_str(),
    ]);
    // Port 9 (discard) answers no one: every window stays in the spool.
    let o = vpcflow()
        .args(["ingest", "--config"])
        .arg(&config)
        .args(["--store", "clickhouse://127.0.0.1:9/current", "--spool"])
        .arg(&spool)
        .arg(&demo)
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&o.stderr).contains("wait in the spool"));
    let mut inserts = Vec::new();
    for (i, w) in vpcflow_store::shipped::spooled(&spool)
        .unwrap()
        .iter()
        .enumerate()
    {
        let summary = std::fs::read(&w.summary).unwrap();
        let window = vpcflow_store::shipped::ShippedWindow::parse(
            &w.group,
            &w.topic,
            &w.name,
            std::fs::read(&w.path).unwrap().into(),
            &summary,
            vpcflow_store::shipped::WindowNames::Own,
        )
        .unwrap();
        // The records, then the ledger row: reads see a window once its
        // ledger row is in.
        let mut statements =
            offline::insert("current", &format!("w{i}"), &window, &summary).unwrap();
        if i == 0 {
            // The same window again, cut off before its ledger row (the
            // writer killed mid-write): its rows are never read, so every
            // answer below stays the Parquet store's.
            let cut_off = offline::insert("current", "cut-off", &window, &summary).unwrap();
            statements.push(cut_off[0].clone());
        }
        for (j, (sql, data)) in statements.into_iter().enumerate() {
            let file = tmp.path().join(format!("w{i}-{j}.data"));
            std::fs::write(&file, data).unwrap();
            inserts.push(serde_json::json!({"sql": sql, "file": file}));
        }
    }
    assert_eq!(
        inserts.len(),
        9,
        "two windows of two topics, records and ledger row, and a cut-off write"
    );
    let queries: Vec<(Option<&str>, Option<&str>, Option<u64>)> = vec![
        (
            None,
            Some(
                "SELECT interface_id, srcaddr, dstaddr, srcport, dstport, protocol, packets, \
                 bytes, action, log_status, direction, rule_id, record_index FROM records \
                 ORDER BY start, record_index, log_group, log_topic",
            ),
            None,
        ),
        (
            None,
            Some(
                "SELECT action, count(*) AS n, sum(bytes) AS b FROM records GROUP BY action ORDER BY action",
            ),
            None,
        ),
        (
            Some("srcaddr:192.168.0.0/22 AND NOT dstport:53"),
            Some(
                "SELECT srcaddr, dstaddr, bytes FROM records ORDER BY start, record_index, log_topic",
            ),
            None,
        ),
        // A prefix of the other family over every record: no match, and
        // no address that is not one of its family makes it throw.
        (
            Some("dstaddr:2001:db8::/32 OR srcaddr:2001:db8::/32"),
            Some("SELECT count(*) AS n FROM records"),
            None,
        ),
        (
            None,
            Some(
                "SELECT srcaddr, sum(bytes) AS b FROM records GROUP BY srcaddr ORDER BY b DESC, srcaddr",
            ),
            Some(1_548_752_430),
        ),
    ];
    let mut sqls = Vec::new();
    let mut expected = Vec::new();
    for (search, sql, since) in &queries {
        let q = vpcflow_store::Query {
            filter: search.map(|s| vpcflow_store::search::to_sql(s).unwrap()),
            sql: sql.map(str::to_string),
            time: vpcflow_store::TimeRange {
                since: *since,
                until: None,
            },
            ..Default::default()
        };
        sqls.push(offline::query("current", &q, (26, 9)).unwrap());
        let rows = q.run(&dir).unwrap().text_rows().unwrap();
        let tsv: String = rows
            .iter()
            .map(|r| {
                let cells: Vec<&str> = r.iter().map(|c| c.as_deref().unwrap_or("\\N")).collect();
                format!("{}\n", cells.join("\t"))
            })
            .collect();
        expected.push(tsv);
    }
    let spec = serde_json::json!({
        "statements": offline::tables("current"),
        "inserts": inserts,
        "queries": sqls,
    });
    let mut child = Command::new(common::test_python())
        .arg(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/interop/clickhouse_current.py"),
        )
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(spec.to_string().as_bytes())
        .unwrap();
    let o = child.wait_with_output().unwrap();
    assert!(
        o.status.success(),
        "chDB: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let answer: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let version = answer["version"].as_str().unwrap();
    assert!(
        version.split('.').next().unwrap().parse::<u32>().unwrap() >= 24,
        "chDB is a current release: {version}"
    );
    for (i, want) in expected.iter().enumerate() {
        assert_eq!(answer["answers"][i].as_str().unwrap(), want, "{}", sqls[i]);
    }
    assert!(expected[0].lines().count() == 21 && expected[2].lines().count() > 0);
}

const PROJECT: &str = "5f67944957444bd6bb4fe3b367de8f3d";
const GROUP: &str = "a1b2c3d4-0000-4000-8000-000000000001";
/// The topic of the example's VPC flow log.
const TOPIC: &str = "a1b2c3d4-0000-4000-8000-000000000002";
/// The example's web port, bound to the host hv-1 below.
const WEB: &str = "1d515d18-1b36-47dc-a983-bd6512aed4bd";

/// A window file of a spool: (group, topic, name, summary, records).
type WindowFile = (String, String, String, Vec<u8>, Vec<u8>);

/// What the agent on hv-1 has in its spool after the demo capture: the
/// windows of hv-1's port.
fn agent_windows(dir: &Path) -> Vec<WindowFile> {
    let inventory = dir.join("vpc-hv1.toml");
    let text = std::fs::read_to_string(examples().join("vpc.toml"))
        .unwrap()
        .replacen(
            "interface = \"tap1d515d18-1b\"",
            "host = \"hv-1\"\ninterface = \"tap1d515d18-1b\"",
            1,
        );
    std::fs::write(&inventory, text).unwrap();
    let store = dir.join("hv-1");
    run_ok([
        "ingest".as_ref(),
        "--host".as_ref(),
        "hv-1".as_ref(),
        "--config".as_ref(),
        inventory.as_os_str(),
        "--store".as_ref(),
        store.as_os_str(),
        examples().join("vpc-demo.pcap").as_os_str(),
    ]);
    vpcflow_store::shipped::spooled(&store)
        .unwrap()
        .into_iter()
        .map(|w| {
            let summary = std::fs::read(&w.summary).unwrap();
            let records = std::fs::read(&w.path).unwrap();
            (w.group, w.topic, w.name, summary, records)
        })
        .collect()
}

/// Two answers of the API must be equal; where they are not, the first
/// record or finding that differs is said (a whole page is too long).
fn same_answer(what: &str, on_dir: &(u16, serde_json::Value), on_ch: &(u16, serde_json::Value)) {
    if on_dir == on_ch {
        return;
    }
    // A refusal: the engines word it each their own way.
    if on_dir.0 != 200 && on_dir.0 == on_ch.0 && on_dir.1["code"] == on_ch.1["code"] {
        return;
    }
    let items = |v: &serde_json::Value| {
        ["records", "findings"]
            .iter()
            .find_map(|k| v[*k].as_array().cloned())
            .unwrap_or_default()
    };
    let (d, c) = (items(&on_dir.1), items(&on_ch.1));
    if d.len() != c.len() {
        let starts = |v: &[serde_json::Value]| {
            let mut m = std::collections::BTreeMap::<u64, usize>::new();
            for r in v {
                *m.entry(r["start"].as_u64().unwrap_or(0)).or_default() += 1;
            }
            m
        };
        panic!(
            "{what}: {} items on the directory, {} on ClickHouse; per window start:\n directory:  {:?}\n ClickHouse: {:?}",
            d.len(),
            c.len(),
            starts(&d),
            starts(&c)
        );
    }
    if let Some(i) = (0..d.len().min(c.len())).find(|&i| d[i] != c[i]) {
        panic!(
            "{what}: item {i} differs:\n directory:  {}\n ClickHouse: {}",
            d[i], c[i]
        );
    }
    let brief = |(s, v): &(u16, serde_json::Value)| {
        let text = v.to_string();
        format!("{s} {}", &text[..text.len().min(600)])
    };
    panic!(
        "{what}: {} items on the directory, {} on ClickHouse:\n directory:  {}\n ClickHouse: {}",
        d.len(),
        c.len(),
        brief(on_dir),
        brief(on_ch)
    );
}

/// `vpcflow serve --store URL` against `vpcflow serve` on a directory: the
/// same uploads, then every records query (pages, search, SQL) and every
/// analysis of the API answers alike; the server's spool is empty once an
/// upload is answered; an agent's windows reach ClickHouse once, under
/// the agent's host, and a window sent again is a duplicate.
#[test]
#[ignore = "needs a ClickHouse cluster (VPCFLOW_TEST_CLICKHOUSE): scripts/test.sh starts one"]
fn serve_on_clickhouse_answers_as_serve_on_a_directory() {
    use common::server::{Server, agent_token, database_args, token};
    let tmp = tempfile::tempdir().unwrap();
    let url = clickhouse("serve");
    let (dir_data, ch_data) = (tmp.path().join("dir"), tmp.path().join("ch"));
    let on_dir = Server::start(&dir_data);
    let mut flags = database_args(&ch_data);
    flags.extend(["--store".to_string(), url.clone()]);
    let on_ch = Server::start_on(&ch_data, &flags);
    let servers = [
        (&on_dir, token(&dir_data, PROJECT)),
        (&on_ch, token(&ch_data, PROJECT)),
    ];

    let attacks = tmp.path().join("attacks.pcap");
    vpcflow_tools::attacks::write_capture(&attacks, true).unwrap();
    for capture in [examples().join("vpc-demo.pcap"), attacks] {
        let bytes = std::fs::read(&capture).unwrap();
        let uploaded: Vec<_> = servers
            .iter()
            .map(|(s, t)| s.upload(&format!("/v1/{PROJECT}/captures"), Some(t), &bytes))
            .collect();
        assert_eq!(uploaded[0].0, 200, "{}", uploaded[0].1);
        same_answer("upload", &uploaded[0], &uploaded[1]);
        // Answered once ClickHouse has the windows: none waits.
        assert_eq!(
            vpcflow_store::shipped::spooled(&ch_data.join("spool")).unwrap(),
            []
        );
    }

    let records = format!("/v1/{PROJECT}/log-groups/{GROUP}/log-topics/{TOPIC}/records");
    let analysis = format!("/v1/{PROJECT}/log-groups/{GROUP}/log-topics/{TOPIC}/analysis");
    let ask = |path: &str| -> Vec<(u16, serde_json::Value)> {
        servers
            .iter()
            .map(|(s, t)| s.request("GET", path, Some(t), None))
            .collect()
    };
    let mut asked = 0;
    for path in [
        format!("{records}?limit=10000"),
        format!("{records}?limit=7&offset=5"),
        format!("{records}?search=action:REJECT&limit=1000"),
        format!("{records}?search=srcaddr:192.168.0.0/16%20AND%20NOT%20dstport:53&limit=1000"),
        format!(
            "{records}?sql=SELECT%20srcaddr,%20sum(packets)%20AS%20p%20FROM%20records%20GROUP%20BY%20srcaddr%20ORDER%20BY%20p%20DESC,%20srcaddr"
        ),
        format!("{records}?since=1970-01-01T00:00:00Z&until=2000-01-01T00:00:00Z"),
        format!("{records}?sql=SELECT%20*%20FROM%20system.tables"),
        format!("{analysis}/attacks"),
        format!("{analysis}/rules"),
        format!("{analysis}/rules?hits=true"),
        format!("{analysis}/traffic?bucket=1h&top=2&by=packets"),
    ] {
        let answers = ask(&path);
        same_answer(&path, &answers[0], &answers[1]);
        if answers[0].0 == 200 {
            asked += 1;
            let v = &answers[0].1;
            let n = v["records"]
                .as_array()
                .or(v["findings"].as_array())
                .map_or(0, Vec::len);
            assert!(n > 0 || path.contains("until="), "{path}: {v}");
        }
    }
    assert_eq!(asked, 10, "every query but the refused one answers");

    // An agent's windows: into ClickHouse under its host, once.
    let (server, project) = (&servers[1].0, &servers[1].1);
    let (s, v) = server.request(
        "PUT",
        &format!("/v1/{PROJECT}/ports/{WEB}"),
        Some(project),
        Some(&serde_json::json!({"port": {"host": "hv-1"}})),
    );
    assert_eq!(s, 200, "{v}");
    let hv1 = agent_token(&ch_data, "hv-1");
    let windows = agent_windows(tmp.path());
    assert!(!windows.is_empty());
    let count = || -> u64 {
        let n = run_ok([
            "query",
            "--store",
            &url,
            "--format",
            "csv",
            "--sql",
            "SELECT count(*) AS n FROM records",
        ]);
        n.lines().nth(1).unwrap().parse().unwrap()
    };
    let before = count();
    let mut sent = 0;
    for round in 0..2 {
        for (group, topic, name, summary, records) in &windows {
            let path =
                format!("/v1/agent/windows?log_group_id={group}&log_topic_id={topic}&name={name}");
            let body = vpcflow_control::agents::window_body(summary, records);
            let (s, raw) = common::server::send(
                &server.addr,
                "POST",
                &path,
                &[("X-Auth-Token", hv1.as_str())],
                &body,
            );
            assert_eq!(s, 200, "{raw}");
            assert_eq!(raw.contains("\"duplicate\":true"), round == 1, "{raw}");
            if round == 0 {
                sent += raw
                    .split("\"records\":")
                    .nth(1)
                    .and_then(|r| r.split(|c: char| !c.is_ascii_digit()).next())
                    .and_then(|n| n.parse::<u64>().ok())
                    .unwrap_or_else(|| panic!("{raw}"));
            }
        }
    }
    assert!(sent > 0);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !vpcflow_store::shipped::spooled(&ch_data.join("spool"))
        .unwrap()
        .is_empty()
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the spool never emptied"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert_eq!(count(), before + sent);
    // In ClickHouse's ledger under the server's spool and the agent's
    // host, as the server looks windows up when it settles them.
    let store = vpcflow_store::clickhouse::ClickHouse::open(
        &vpcflow_store::clickhouse::ClickHouseUrl::parse(&url).unwrap(),
    )
    .unwrap();
    let ids = vpcflow_runtime::SpoolIds::of(&ch_data.join("spool")).unwrap();
    for (_, topic, name, ..) in &windows {
        for (host, there) in [("hv-1", true), ("hv-2", false)] {
            let (start, stored) = vpcflow_store::shipped::shipped_name(host, name).unwrap();
            let found = store.has_window(topic, start, &ids.window(&stored));
            assert_eq!(found.unwrap(), there, "{host} {name}");
        }
    }
}
