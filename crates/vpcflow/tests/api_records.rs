//! End to end through the API of a real `vpcflow serve`: a VPC flow log
//! created through the API, the demo capture uploaded, its records queried
//! back page by page and equal to what `vpcflow ingest` makes of the same
//! capture; a port created later is picked up; a disabled flow log writes
//! nothing more; bad captures, searches and SQL are 400s naming the
//! problem; another project reaches none of it.

use std::collections::BTreeMap;

use serde_json::{Value, json};

mod common;
use common::server::{Server, raw_get, token};
use common::{examples, vpcflow};

const PROJECT: &str = "5f67944957444bd6bb4fe3b367de8f3d";
const OTHER: &str = "another-project";
const VPC: &str = "80ee2ed7-605d-49b4-ac6b-6e581acd35a3";
const REPLACED_PORT: &str = "7a2c9e41-5b3d-4f60-8e1a-2c4b6d8f0a13";
const GROUP: &str = "a1b2c3d4-0000-4000-8000-000000000001";
/// The inventory's VPC flow log (all traffic), which the API's copies.
const VPC_ALL: &str = "f49f2c7a-1d3e-4b5c-9a8b-7c6d5e4f3a21";

const COLUMNS: [&str; 13] = [
    "interface_id",
    "srcaddr",
    "dstaddr",
    "srcport",
    "dstport",
    "protocol",
    "packets",
    "bytes",
    "start",
    "end",
    "action",
    "log_status",
    "direction",
];

/// The VPC flow log's records as `vpcflow ingest` writes them, one line
/// each (the fields of [`COLUMNS`]), and the frames it read.
fn ingest_reference() -> (Vec<String>, u64) {
    let out = vpcflow()
        .arg("ingest")
        .arg("--config")
        .arg(examples().join("vpc.toml"))
        .arg(examples().join("vpc-demo.pcap"))
        .arg(format!(
            "--format=custom:flow-log-id,{}",
            COLUMNS.join(",").replace('_', "-")
        ))
        .output()
        .unwrap();
    assert!(out.status.success());
    let mut lines: Vec<String> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .filter_map(|l| l.strip_prefix(&format!("{VPC_ALL} ")).map(str::to_string))
        .collect();
    lines.sort();
    let stderr = String::from_utf8(out.stderr).unwrap();
    let frames = stderr
        .split("read ")
        .nth(1)
        .and_then(|r| r.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no frame count in {stderr}"));
    (lines, frames)
}

/// A stored record as a reference line.
fn line(r: &Value) -> String {
    COLUMNS
        .iter()
        .map(|c| match &r[*c] {
            Value::Null => "-".to_string(),
            Value::String(s) => s.clone(),
            other => other.to_string(),
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// Connects to a tail (server-sent events) and, once the server answered,
/// returns a thread that collects the data of `n` `window` events.
fn tail_windows(
    addr: &str,
    path: &str,
    token: &str,
    n: usize,
) -> std::thread::JoinHandle<Vec<Value>> {
    use std::io::{BufRead, BufReader, Write};
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: x\r\nX-Auth-Token: {token}\r\n\r\n"
    )
    .unwrap();
    s.set_read_timeout(Some(std::time::Duration::from_secs(30)))
        .unwrap();
    let mut lines = BufReader::new(s).lines();
    let status = lines.next().unwrap().unwrap();
    assert!(status.starts_with("HTTP/1.1 200"), "{status}");
    std::thread::spawn(move || {
        let mut got = Vec::new();
        let mut window = false;
        for line in lines {
            let line = line.unwrap();
            if line == "event: window" {
                window = true;
            } else if let Some(data) = line.strip_prefix("data: ").filter(|_| window) {
                got.push(serde_json::from_str(data).unwrap());
                window = false;
                if got.len() == n {
                    break;
                }
            }
        }
        got
    })
}

fn code(v: &Value) -> &str {
    v["code"]
        .as_str()
        .unwrap_or_else(|| panic!("no error code in {v}"))
}

#[test]
fn records_of_an_uploaded_capture_come_back_through_the_api() {
    let (mut reference, reference_frames) = ingest_reference();
    assert!(reference.len() > 10, "{reference:?}");
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let token_text = token(dir.path(), PROJECT);
    let t = Some(token_text.as_str());
    let call = |method: &str, path: &str, body: Option<Value>| {
        server.request(method, &format!("/v1/{PROJECT}/{path}"), t, body.as_ref())
    };
    let capture = std::fs::read(examples().join("vpc-demo.pcap")).unwrap();
    let upload = |bytes: &[u8]| server.upload(&format!("/v1/{PROJECT}/captures"), t, bytes);

    // A topic of our own, and one of the VPC's ports replaced by a new one
    // (same addresses): the VPC flow log must pick the new port up.
    let (s, v) = call(
        "POST",
        &format!("log-groups/{GROUP}/log-topics"),
        Some(json!({"log_topic": {"name": "from-the-api"}})),
    );
    assert_eq!(s, 200, "{v}");
    let topic = v["log_topic"]["id"].as_str().unwrap().to_string();
    let (_, old) = call("GET", &format!("ports/{REPLACED_PORT}"), None);
    let (s, _) = call("DELETE", &format!("ports/{REPLACED_PORT}"), None);
    assert_eq!(s, 204);
    let mut fields = old["port"].as_object().unwrap().clone();
    for server_set in ["id", "project_id", "created_at", "updated_at"] {
        fields.remove(server_set);
    }
    let (s, v) = call("POST", "ports", Some(json!({ "port": fields })));
    assert_eq!(s, 200, "{v}");
    let new_port = v["port"]["id"].as_str().unwrap().to_string();
    for l in &mut reference {
        *l = l.replace(REPLACED_PORT, &new_port);
    }
    reference.sort();

    let (s, v) = call(
        "POST",
        "fl/flow_logs",
        Some(
            json!({"flow_log": {"name": "api-vpc", "resource_type": "vpc", "resource_id": VPC,
            "traffic_type": "all", "log_group_id": GROUP, "log_topic_id": topic}}),
        ),
    );
    assert_eq!(s, 200, "{v}");
    let flow_log = v["flow_log"]["id"].as_str().unwrap().to_string();

    // The live tail of the topic, listening before the upload.
    let windows: std::collections::BTreeSet<&str> = reference
        .iter()
        .map(|l| l.split(' ').nth(8).unwrap())
        .collect();
    let tail = tail_windows(
        &server.addr,
        &format!("/v1/{PROJECT}/log-groups/{GROUP}/log-topics/{topic}/tail"),
        &token_text,
        windows.len(),
    );

    // Upload, then read every page back.
    let (s, v) = upload(&capture);
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["capture"]["frames"], reference_frames);
    assert_eq!(v["capture"]["ending"], "complete");
    let records = format!("log-groups/{GROUP}/log-topics/{topic}/records");
    let sql = format!(
        "SELECT {} FROM records ORDER BY start, record_index",
        COLUMNS.map(|c| format!("\"{c}\"")).join(", ")
    );
    let sql = sql
        .replace(' ', "%20")
        .replace('"', "%22")
        .replace(',', "%2C");
    let mut got = Vec::new();
    let mut offset = 0;
    let mut pages = 0;
    loop {
        let (s, v) = call(
            "GET",
            &format!("{records}?sql={sql}&limit=5&offset={offset}"),
            None,
        );
        assert_eq!(s, 200, "{v}");
        let page = v["records"].as_array().unwrap();
        assert!(page.len() <= 5);
        got.extend(page.iter().map(line));
        pages += 1;
        match v["next_offset"].as_u64() {
            Some(n) => offset = n,
            None => break,
        }
    }
    assert_eq!(pages, reference.len().div_ceil(5));
    got.sort();
    assert_eq!(got, reference);
    assert!(got.iter().any(|l| l.starts_with(&new_port)));

    // The tail had each window as it was written, with its records.
    let tailed = tail.join().unwrap();
    assert_eq!(tailed.len(), windows.len());
    assert!(tailed.iter().all(|w| w["flow_log_id"] == flow_log.as_str()));
    let tailed_records: usize = tailed
        .iter()
        .map(|w| w["records"].as_array().unwrap().len())
        .sum();
    assert_eq!(tailed_records, reference.len());

    // The search of `vpcflow query`, and a time range with nothing in it.
    let (s, v) = call(
        "GET",
        &format!("{records}?search=action:REJECT&limit=1000"),
        None,
    );
    assert_eq!(s, 200, "{v}");
    let rejects = v["records"].as_array().unwrap();
    assert!(!rejects.is_empty());
    assert!(rejects.iter().all(|r| r["action"] == "REJECT"));
    assert_eq!(
        rejects.len(),
        reference.iter().filter(|l| l.contains(" REJECT ")).count()
    );
    let (s, v) = call(
        "GET",
        &format!("{records}?since=2100-01-01T00:00:00Z"),
        None,
    );
    assert_eq!((s, v["records"].as_array().map(Vec::len)), (200, Some(0)));

    // Bad queries name what is wrong.
    for (query, names) in [
        ("sql=SELECT%20*%20FROM%20all_records", "all_records"),
        ("sql=COPY%20(SELECT%201)%20TO%20'/tmp/x.csv'", "sql: "),
        ("search=port:%3A%3A", "search"),
        ("since=yesterday", "since"),
        ("last=forever", "last"),
        ("limit=0", "limit"),
        ("colour=red", "colour"),
    ] {
        let (s, v) = call("GET", &format!("{records}?{query}"), None);
        assert_eq!((s, code(&v)), (400, "VPC.3001"), "{query}: {v}");
        assert!(
            v["message"].as_str().unwrap().contains(names),
            "{query}: {v}"
        );
    }

    // Disabled: the next upload writes nothing to the topic.
    let count = || {
        let (s, v) = call(
            "GET",
            &format!("{records}?sql=SELECT%20count(*)%20AS%20n%20FROM%20records"),
            None,
        );
        assert_eq!(s, 200, "{v}");
        v["records"][0]["n"].as_u64().unwrap()
    };
    let before = count();
    assert_eq!(before, reference.len() as u64);
    let (s, v) = call(
        "PUT",
        &format!("fl/flow_logs/{flow_log}"),
        Some(json!({"flow_log": {"admin_state": false}})),
    );
    assert_eq!((s, v["flow_log"]["status"].as_str()), (200, Some("DOWN")));
    let (s, _) = upload(&capture);
    assert_eq!(s, 200);
    assert_eq!(count(), before, "a disabled flow log wrote records");
    // Enabled again, it does (so it was the switch that stopped it).
    call(
        "PUT",
        &format!("fl/flow_logs/{flow_log}"),
        Some(json!({"flow_log": {"admin_state": true}})),
    );
    upload(&capture);
    assert_eq!(count(), 2 * before);

    // Bad captures: refused with why; a cut one keeps what came before.
    let (s, v) = upload(b"");
    assert_eq!((s, code(&v)), (400, "VPC.3001"), "{v}");
    let (s, v) = upload(b"this is not a capture at all, just some text");
    assert_eq!((s, code(&v)), (400, "VPC.3001"), "{v}");
    assert!(
        v["message"].as_str().unwrap().contains("uploaded capture"),
        "{v}"
    );
    let (s, v) = upload(&capture[..capture.len() * 2 / 3]);
    assert_eq!(s, 200, "{v}");
    assert!(
        v["capture"]["ending"]
            .as_str()
            .unwrap()
            .starts_with("truncated"),
        "{v}"
    );
    let cut_frames = v["capture"]["frames"].as_u64().unwrap();
    assert!((1..reference_frames).contains(&cut_frames), "{v}");

    // Another project: refused on our paths, nothing under its own.
    let other = token(dir.path(), OTHER);
    let other = Some(other.as_str());
    for (method, path) in [
        ("GET", format!("/v1/{PROJECT}/{records}")),
        ("POST", format!("/v1/{PROJECT}/captures")),
    ] {
        let (s, v) = server.request(method, &path, other, None);
        assert_eq!((s, code(&v)), (403, "APIGW.0302"), "{path}");
    }
    let (s, v) = server.request("GET", &format!("/v1/{OTHER}/{records}"), other, None);
    assert_eq!((s, code(&v)), (404, "VPC.0404"), "{v}");
    let (s, v) = server.upload(&format!("/v1/{PROJECT}/captures"), None, &capture);
    assert_eq!((s, code(&v)), (401, "APIGW.0301"), "{v}");

    // The pipeline's counters: every frame of the four good uploads.
    let metrics = raw_get(&server.addr, "/metrics");
    let value = |name: &str| -> u64 {
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(name)?.trim().parse().ok())
            .unwrap_or_else(|| panic!("no {name} in {metrics}"))
    };
    assert_eq!(
        value("vpcflow_frames_total "),
        3 * reference_frames + cut_frames
    );
    assert_eq!(value("vpcflow_captures_ingested_total "), 4);
    assert!(value("vpcflow_store_bytes ") > 0);
    let by_status: BTreeMap<&str, u64> = ["OK", "NODATA", "SKIPDATA"]
        .into_iter()
        .map(|s| {
            (
                s,
                value(&format!("vpcflow_records_total{{log_status=\"{s}\"}} ")),
            )
        })
        .collect();
    assert!(
        by_status["OK"] > 0 && by_status["NODATA"] > 0,
        "{by_status:?}"
    );
}

/// Every `.parquet` file under `dir`.
fn parquet_files(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "parquet") {
                found.push(p);
            }
        }
    }
    found
}

#[test]
fn the_server_applies_its_store_retention_without_a_live_capture() {
    // Records of 2019 in the server's store, their log group keeping 7
    // days (the example inventory's lg-vpc), written by an ingest before
    // the server starts: only the server's own retention can remove them.
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let ingest = vpcflow()
        .args(["ingest", "--config"])
        .arg(examples().join("vpc.toml"))
        .arg("--store")
        .arg(&store)
        .arg(examples().join("vpc-demo.pcap"))
        .output()
        .unwrap();
    assert!(ingest.status.success(), "{ingest:?}");
    assert!(!parquet_files(&store).is_empty());
    let server = Server::start(dir.path());
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !parquet_files(&store).is_empty() {
        assert!(
            std::time::Instant::now() < deadline,
            "still stored: {:?}",
            parquet_files(&store)
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    // Still serving.
    assert!(raw_get(&server.addr, "/health").starts_with("HTTP/1.1 200"));
}
