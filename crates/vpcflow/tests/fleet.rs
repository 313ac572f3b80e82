//! The fleet's control plane, on a real `vpcflow serve`: ports bound to
//! hosts through the API, agent tokens bound to a host, the model an agent
//! fetches (its host's projects only) and its long poll answering a change
//! at once, the agents' list and metrics, and every refusal between agent
//! and project tokens.

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

mod common;
use common::server::{Server, agent_token, database_args, token};
use common::vpcflow;

const PROJECT: &str = "5f67944957444bd6bb4fe3b367de8f3d";
const WEB: &str = "1d515d18-1b36-47dc-a983-bd6512aed4bd";
const DB: &str = "e3f1b2c4-d5a6-4b7c-8d9e-0f1a2b3c4d5e";
const VPC_ALL: &str = "f49f2c7a-1d3e-4b5c-9a8b-7c6d5e4f3a21";

/// A request with extra headers and a body; status and JSON answer (Null
/// if none).
fn send(
    addr: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> (u16, Value) {
    let (status, raw) = common::server::send(addr, method, path, headers, body);
    let answer = raw.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    (status, serde_json::from_str(answer).unwrap_or(Value::Null))
}

/// A `GET` with extra headers.
fn get_with(addr: &str, path: &str, headers: &[(&str, &str)]) -> (u16, Value) {
    send(addr, "GET", path, headers, b"")
}

fn hosts_of(model: &Value) -> Vec<(String, Option<String>)> {
    model["inventory"]["port"]
        .as_array()
        .map(|ports| {
            ports
                .iter()
                .map(|p| {
                    (
                        p["id"].as_str().unwrap().to_string(),
                        p["host"].as_str().map(str::to_string),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

/// A server of the example VPC, a project token, and the web port bound
/// to hv-1 and the db port to hv-2 through the API, as Neutron binds them.
fn server_with_hosts(dir: &Path) -> (Server, String) {
    let server = Server::start(dir);
    let project_token = token(dir, PROJECT);
    for (port, host) in [(WEB, "hv-1"), (DB, "hv-2")] {
        let (s, v) = server.request(
            "PUT",
            &format!("/v1/{PROJECT}/ports/{port}"),
            Some(&project_token),
            Some(&json!({"port": {"host": host}})),
        );
        assert_eq!(s, 200, "{v}");
        assert_eq!(v["port"]["host"], host, "{v}");
    }
    (server, project_token)
}

#[test]
fn agents_fetch_their_hosts_model_and_follow_its_changes() {
    let dir = tempfile::tempdir().unwrap();
    let (server, project_token) = server_with_hosts(dir.path());
    let t = Some(project_token.as_str());
    let (s, v) = server.request(
        "PUT",
        &format!("/v1/{PROJECT}/ports/{WEB}"),
        t,
        Some(&json!({"port": {"host": "hv 1"}})),
    );
    assert_eq!(s, 400, "{v}");
    assert!(
        v["message"].as_str().unwrap().contains("not a host name"),
        "{v}"
    );

    let hv1 = agent_token(dir.path(), "hv-1");
    let idle = agent_token(dir.path(), "hv-9");
    let agent = |token: &str, path: &str| {
        get_with(
            &server.addr,
            path,
            &[("X-Auth-Token", token), ("X-Agent-Version", "test-1.2")],
        )
    };

    // The model of hv-1: the project (it has a port there), with every
    // port of it (for the rules), hv-1's bound to it.
    let (s, model) = agent(&hv1, "/v1/agent/model");
    assert_eq!(s, 200, "{model}");
    assert_eq!(model["host"], "hv-1");
    let hosts = hosts_of(&model);
    assert_eq!(hosts.len(), 3, "{hosts:?}");
    assert!(hosts.contains(&(WEB.to_string(), Some("hv-1".to_string()))));
    assert!(hosts.contains(&(DB.to_string(), Some("hv-2".to_string()))));
    assert_eq!(model["inventory"]["project"][0]["id"], PROJECT);
    let generation = model["generation"].as_u64().unwrap();
    assert!(generation >= 2, "{model}");
    // A host without ports sees no project at all.
    let (s, empty) = agent(&idle, "/v1/agent/model");
    assert_eq!(s, 200, "{empty}");
    assert!(hosts_of(&empty).is_empty(), "{empty}");
    assert!(empty["inventory"].get("project").is_none(), "{empty}");

    // Unchanged: the long poll answers after its wait, same generation.
    let started = Instant::now();
    let (s, same) = agent(&hv1, &format!("/v1/agent/model?after={generation}&wait=1"));
    assert_eq!((s, same["generation"].as_u64()), (200, Some(generation)));
    assert!(started.elapsed() >= Duration::from_millis(900));
    // A change answers a waiting poll at once, with the new model.
    let addr = server.addr.clone();
    let token = hv1.clone();
    let waiting = std::thread::spawn(move || {
        let (s, v) = get_with(
            &addr,
            &format!("/v1/agent/model?after={generation}&wait=30"),
            &[("X-Auth-Token", &token)],
        );
        (s, v, Instant::now())
    });
    std::thread::sleep(Duration::from_millis(500));
    let (s, v) = server.request(
        "PUT",
        &format!("/v1/{PROJECT}/fl/flow_logs/{VPC_ALL}"),
        t,
        Some(&json!({"flow_log": {"admin_state": false}})),
    );
    assert_eq!(s, 200, "{v}");
    let changed_at = Instant::now();
    let (s, newer, answered_at) = waiting.join().unwrap();
    assert_eq!(s, 200, "{newer}");
    assert!(
        newer["generation"].as_u64().unwrap() > generation,
        "{newer}"
    );
    assert!(
        answered_at.duration_since(changed_at) < Duration::from_secs(1),
        "the poll answered {:?} after the change",
        answered_at.duration_since(changed_at)
    );
    let flow_log = newer["inventory"]["flow_log"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["id"] == VPC_ALL)
        .unwrap();
    assert_eq!(flow_log["admin_state"], false, "{flow_log}");

    // The agents of the project's hosts: hv-1 heard from, hv-2 never.
    let (s, v) = server.request("GET", "/v1/agents", t, None);
    assert_eq!(s, 200, "{v}");
    let agents = v["agents"].as_array().unwrap();
    let names: Vec<&str> = agents.iter().map(|a| a["host"].as_str().unwrap()).collect();
    assert_eq!(names, ["hv-1", "hv-2"], "{v}");
    assert_eq!(agents[0]["version"], "test-1.2");
    assert_eq!(agents[0]["silent"], false);
    assert!(agents[0]["last_seen"].as_u64().is_some());
    assert_eq!(agents[1]["silent"], true);
    assert!(agents[1]["last_seen"].is_null());
    let metrics = common::server::raw_get(&server.addr, "/metrics");
    assert!(
        metrics.contains("vpcflow_agent_last_seen_seconds{host=\"hv-1\"}"),
        "{metrics}"
    );

    // Each token on its own paths only.
    let (s, v) = server.request("GET", "/v1/agent/model", t, None);
    assert_eq!((s, v["code"].as_str()), (403, Some("APIGW.0302")), "{v}");
    let (s, v) = agent(&hv1, &format!("/v1/{PROJECT}/ports"));
    assert_eq!((s, v["code"].as_str()), (403, Some("APIGW.0302")), "{v}");
    let (s, v) = agent("vfa_nonsense", "/v1/agent/model");
    assert_eq!((s, v["code"].as_str()), (401, Some("APIGW.0301")), "{v}");
    let (s, v) = get_with(&server.addr, "/v1/agent/model", &[]);
    assert_eq!((s, v["code"].as_str()), (401, Some("APIGW.0301")), "{v}");
    let (s, v) = agent(&hv1, "/v1/agent/model?wait=61");
    assert_eq!(s, 400, "{v}");
    assert!(v["message"].as_str().unwrap().contains("wait"), "{v}");

    // The agent refuses to start on a project token, or as another host.
    let agent_run = |token: &str, extra: &[&str]| {
        let out = vpcflow()
            .args(["agent", "--server"])
            .arg(format!("http://{}", server.addr))
            .args(["--token", token, "--store"])
            .arg(dir.path().join("agent-store"))
            .args(extra)
            .output()
            .unwrap();
        assert!(!out.status.success());
        String::from_utf8_lossy(&out.stderr).to_string()
    };
    let said = agent_run(&project_token, &[]);
    assert!(
        said.contains("a project token cannot act as an agent"),
        "{said}"
    );
    let said = agent_run(&hv1, &["--host", "hv-2"]);
    assert!(
        said.contains("--host hv-2: the agent token is for host hv-1"),
        "{said}"
    );

    // A host name that is not one is refused when the token is made.
    let out = vpcflow()
        .args(["token", "create", "--agent", "hv/1", "--data"])
        .arg(dir.path())
        .args(database_args(dir.path()))
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("not a host name"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `POST /v1/agent/windows` with `token`.
fn post_window(addr: &str, token: &str, query: &str, body: &[u8]) -> (u16, Value) {
    let path = format!("/v1/agent/windows?{query}");
    send(addr, "POST", &path, &[("X-Auth-Token", token)], body)
}

/// A window file of a store: (group, topic, name, summary, records).
type WindowFile = (String, String, String, Vec<u8>, Vec<u8>);

/// Every window file of a store, as an agent's spool sends them.
fn window_files(store: &Path) -> Vec<WindowFile> {
    vpcflow_store::shipped::spooled(store)
        .unwrap()
        .into_iter()
        .map(|w| {
            (
                w.group,
                w.topic,
                w.name,
                std::fs::read(&w.summary).unwrap(),
                std::fs::read(&w.path).unwrap(),
            )
        })
        .collect()
}

/// Fills `spool` as the agent on hv-1 would have during an outage: the
/// demo capture's windows of hv-1's port (two per copy), each copy an hour
/// after the one before, so that every window has a start of its own.
fn spool_windows(dir: &Path, spool: &Path, copies: u32) {
    let inventory = dir.join("vpc-hv1.toml");
    let text = std::fs::read_to_string(common::examples().join("vpc.toml"))
        .unwrap()
        .replacen(
            "interface = \"tap1d515d18-1b\"",
            "host = \"hv-1\"\ninterface = \"tap1d515d18-1b\"",
            1,
        );
    std::fs::write(&inventory, text).unwrap();
    let capture = std::fs::read(common::examples().join("vpc-demo.pcap")).unwrap();
    for copy in 0..copies {
        // A classic little-endian pcap: each packet header's seconds moved.
        let mut shifted = capture.clone();
        let mut at = 24;
        while at + 16 <= shifted.len() {
            let field = |i: usize| u32::from_le_bytes(shifted[i..i + 4].try_into().unwrap());
            let (seconds, length) = (field(at), field(at + 8) as usize);
            shifted[at..at + 4].copy_from_slice(&(seconds + copy * 3600).to_le_bytes());
            at += 16 + length;
        }
        let path = dir.join(format!("demo-{copy}.pcap"));
        std::fs::write(&path, shifted).unwrap();
        // Each copy in a store of its own, its window files then moved
        // into the spool: `ingest` merges the hours of one store, which
        // an agent's spool never does.
        let store = dir.join(format!("demo-{copy}"));
        common::testbed::ok(
            vpcflow()
                .args(["ingest", "--host", "hv-1", "--config"])
                .arg(&inventory)
                .arg("--store")
                .arg(&store)
                .arg(&path),
        );
        for w in vpcflow_store::shipped::spooled(&store).unwrap() {
            for file in [&w.summary, &w.path] {
                let to = spool.join(file.strip_prefix(&store).unwrap());
                std::fs::create_dir_all(to.parent().unwrap()).unwrap();
                std::fs::rename(file, to).unwrap();
            }
        }
    }
}

/// Per window start: (OK records, SKIPDATA records, packets of both).
type Windows = std::collections::BTreeMap<u64, (u64, u64, u64)>;

/// The windows of JSON records (one per line, or an array), of the demo
/// capture's time only (the agent's live windows left out).
fn windows_of(records: &[Value]) -> Windows {
    let mut w = Windows::new();
    for r in records {
        let start = r["start"].as_u64().unwrap();
        if start > 1_600_000_000 {
            continue;
        }
        let e = w.entry(start).or_default();
        match r["log_status"].as_str().unwrap() {
            "OK" => e.0 += 1,
            "SKIPDATA" => e.1 += 1,
            other => panic!("{other} in {r}"),
        }
        e.2 += r["packets"].as_u64().unwrap_or(0);
    }
    w
}

/// The windows in an agent's spool, read with `vpcflow query`.
fn spooled_windows(spool: &Path) -> Windows {
    let out = common::testbed::ok(
        vpcflow()
            .args(["query", "--format", "json", "--store"])
            .arg(spool),
    );
    let records: Vec<Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    windows_of(&records)
}

/// The log group and topic of a spool's windows.
fn topic_of(spool: &Path) -> (String, String) {
    let w = &vpcflow_store::shipped::spooled(spool).unwrap()[0];
    (w.group.clone(), w.topic.clone())
}

/// The windows the server holds of a log topic.
fn server_windows(server: &Server, token: &str, (group, topic): &(String, String)) -> Windows {
    let (s, v) = server.request(
        "GET",
        &format!("/v1/{PROJECT}/log-groups/{group}/log-topics/{topic}/records?limit=10000"),
        Some(token),
        None,
    );
    assert_eq!(s, 200, "{v}");
    windows_of(v["records"].as_array().unwrap())
}

/// `vpcflow agent` of hv-1 on `spool`, sending to `server` (killed if the
/// test fails first).
fn start_agent(server: &Server, token: &str, spool: &Path, extra: &[&str]) -> common::Running {
    common::Running(Some(
        vpcflow()
            .args(["agent", "--capture", "af-packet", "--server"])
            .arg(format!("http://{}", server.addr))
            .args(["--token", token, "--host", "hv-1", "--store"])
            .arg(spool)
            .args(extra)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap(),
    ))
}

/// Waits until no window of the demo capture's time is left in `spool`.
fn wait_for_empty_spool(spool: &Path) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let left = vpcflow_store::shipped::spooled(spool)
            .unwrap()
            .into_iter()
            .filter(|w| {
                w.name
                    .split('-')
                    .next()
                    .and_then(|s| s.parse::<u64>().ok())
                    .is_some_and(|s| s < 1_600_000_000)
            })
            .count();
        if left == 0 {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{left} windows still in the spool"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Stops an agent with SIGTERM; what it said.
fn stop_agent(mut agent: common::Running) -> String {
    let agent = agent.take();
    common::testbed::ok(
        std::process::Command::new("kill").args(["-TERM", &agent.id().to_string()]),
    );
    let out = agent.wait_with_output().unwrap();
    let said = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(out.status.success(), "{said}");
    said
}

/// The agent's line in `GET /v1/agents`.
fn agent_status(server: &Server, token: &str, host: &str) -> Value {
    let (s, v) = server.request("GET", "/v1/agents", Some(token), None);
    assert_eq!(s, 200, "{v}");
    v["agents"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["host"] == host)
        .cloned()
        .unwrap_or(Value::Null)
}

#[test]
fn a_full_spool_keeps_the_oldest_windows_and_counts_the_others_lost_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let (server, project_token) = server_with_hosts(dir.path());
    let hv1 = agent_token(dir.path(), "hv-1");
    let spool = dir.path().join("spool");
    spool_windows(dir.path(), &spool, 4);
    let before = spooled_windows(&spool);
    assert_eq!(before.len(), 8, "{before:?}");
    let topic = topic_of(&spool);
    // Room for about half of them: the oldest that fit stay whole, the
    // rest are lost (their SKIPDATA totals sent).
    let sizes: Vec<u64> = vpcflow_store::shipped::spooled(&spool)
        .unwrap()
        .iter()
        .map(|w| w.bytes)
        .collect();
    let limit = sizes.iter().sum::<u64>() / 2;
    let kept = sizes
        .iter()
        .scan(0, |used, b| {
            *used += b;
            Some(*used)
        })
        .take_while(|used| *used <= limit)
        .count();
    let lost = before.len() - kept;
    assert!(0 < kept && kept < before.len(), "{sizes:?}");
    let agent = start_agent(
        &server,
        &hv1,
        &spool,
        &["--spool-limit", &limit.to_string()],
    );
    wait_for_empty_spool(&spool);
    let said = stop_agent(agent);

    let after = server_windows(&server, &project_token, &topic);
    assert_eq!(
        after.keys().collect::<Vec<_>>(),
        before.keys().collect::<Vec<_>>(),
        "{said}"
    );
    for (i, ((start, was), now)) in before.iter().zip(after.values()).enumerate() {
        let want = if i < kept { *was } else { (0, 1, was.2) };
        assert_eq!(*now, want, "window {start} (was {was:?})\n{said}");
    }
    // Counted exactly: by the agent, as the server lists it, and in its log.
    let status = agent_status(&server, &project_token, "hv-1");
    assert_eq!(status["lost_windows"], lost as u64, "{status}\n{said}");
    assert_eq!(said.matches("lost, its").count(), lost, "{said}");
    assert_eq!(
        std::fs::read_to_string(spool.join(".lost")).unwrap().trim(),
        lost.to_string()
    );
}

#[test]
fn an_agent_killed_mid_send_loses_and_doubles_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (server, project_token) = server_with_hosts(dir.path());
    let hv1 = agent_token(dir.path(), "hv-1");
    let spool = dir.path().join("spool");
    spool_windows(dir.path(), &spool, 12);
    let before = spooled_windows(&spool);
    assert_eq!(before.len(), 24);
    let topic = topic_of(&spool);
    // Killed each time the server has taken another window, so that some
    // are on the wire (taken, not yet removed from the spool) when it
    // dies: those are sent again by the next start, and taken once.
    let received = || {
        agent_status(&server, &project_token, "hv-1")["windows_received"]
            .as_u64()
            .unwrap_or(0)
    };
    let mut kills = 0;
    while received() < 20 {
        let seen = received();
        let mut agent = start_agent(&server, &hv1, &spool, &[]);
        let deadline = Instant::now() + Duration::from_secs(30);
        while received() == seen {
            if Instant::now() > deadline {
                let mut agent = agent.take();
                agent.kill().unwrap();
                let out = agent.wait_with_output().unwrap();
                panic!(
                    "no window arrived after {kills} kills: {}",
                    String::from_utf8_lossy(&out.stderr)
                );
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        drop(agent); // SIGKILL
        kills += 1;
    }
    let left = vpcflow_store::shipped::spooled(&spool).unwrap().len();
    eprintln!("killed {kills} times; {left} windows in the spool");
    assert!(kills > 1);

    let agent = start_agent(&server, &hv1, &spool, &[]);
    wait_for_empty_spool(&spool);
    let said = stop_agent(agent);
    assert_eq!(
        server_windows(&server, &project_token, &topic),
        before,
        "{said}"
    );
    let status = agent_status(&server, &project_token, "hv-1");
    assert_eq!(status["lost_windows"], 0, "{status}");
}

#[test]
fn an_agents_windows_are_stored_once_and_only_for_its_own_ports() {
    let dir = tempfile::tempdir().unwrap();
    let (server, project_token) = server_with_hosts(dir.path());
    let t = Some(project_token.as_str());
    let hv1 = agent_token(dir.path(), "hv-1");
    let hv2 = agent_token(dir.path(), "hv-2");

    // What the agent on hv-1 would have in its store: the demo capture's
    // windows of hv-1's port only.
    let agent_store = dir.path().join("agent-store");
    spool_windows(dir.path(), &agent_store, 1);
    let files = window_files(&agent_store);
    assert!(!files.is_empty());

    let body =
        |summary: &[u8], records: &[u8]| vpcflow_control::agents::window_body(summary, records);
    let mut sent = 0;
    for (group, topic, name, summary, records) in &files {
        let q = format!("log_group_id={group}&log_topic_id={topic}&name={name}");
        let (s, v) = post_window(&server.addr, &hv1, &q, &body(summary, records));
        assert_eq!(s, 200, "{v}");
        assert_eq!(v["duplicate"], false, "{v}");
        sent += v["records"].as_u64().unwrap();
        // Another host's agent may not send hv-1's port's records.
        let (s, v) = post_window(&server.addr, &hv2, &q, &body(summary, records));
        assert_eq!((s, v["code"].as_str()), (403, Some("APIGW.0302")), "{v}");
        assert!(v["message"].as_str().unwrap().contains(WEB), "{v}");
        // Nor a project token.
        let (s, _) = post_window(&server.addr, &project_token, &q, &body(summary, records));
        assert_eq!(s, 403);
    }
    assert!(sent > 0);
    let topics: std::collections::BTreeSet<(&String, &String)> =
        files.iter().map(|(g, t, ..)| (g, t)).collect();
    let count = |server: &Server| -> u64 {
        let mut n = 0;
        for (group, topic) in &topics {
            let (s, v) = server.request(
                "GET",
                &format!("/v1/{PROJECT}/log-groups/{group}/log-topics/{topic}/records?limit=10000"),
                t,
                None,
            );
            assert_eq!(s, 200, "{v}");
            let records = v["records"].as_array().unwrap();
            assert!(records.iter().all(|r| r["interface_id"] == WEB), "{v}");
            n += records.len() as u64;
        }
        n
    };
    assert_eq!(count(&server), sent);

    // Sent again (a retry: the agent did not hear the answer): a
    // duplicate, not counted twice.
    for (group, topic, name, summary, records) in &files {
        let q = format!("log_group_id={group}&log_topic_id={topic}&name={name}");
        let (s, v) = post_window(&server.addr, &hv1, &q, &body(summary, records));
        assert_eq!((s, v["duplicate"].as_bool()), (200, Some(true)), "{v}");
    }
    assert_eq!(count(&server), sent);
    let (s, v) = server.request("GET", "/v1/agents", t, None);
    assert_eq!(s, 200, "{v}");
    let hv1_status = &v["agents"][0];
    assert_eq!(hv1_status["host"], "hv-1");
    assert_eq!(hv1_status["windows_received"], files.len());
    assert_eq!(hv1_status["records_received"], sent);

    // Bad windows are refused, naming what is wrong.
    let (group, topic, name, summary, records) = &files[0];
    for (query, body, says) in [
        (
            format!("log_group_id={group}&log_topic_id={topic}&name={name}"),
            b"xy".to_vec(),
            "not a window",
        ),
        (
            format!("log_group_id={group}&log_topic_id={topic}&name={name}"),
            vpcflow_control::agents::window_body(summary, b"PAR1 not really"),
            "not Parquet",
        ),
        (
            format!("log_group_id={group}&log_topic_id={topic}&name={name}"),
            vpcflow_control::agents::window_body(b"nope", records),
            "not a window summary",
        ),
        (
            format!("log_group_id={group}&log_topic_id={topic}&name=..%2Fx.parquet"),
            body(summary, records),
            "is not a window file's name",
        ),
        (
            format!("log_group_id=..&log_topic_id={topic}&name={name}"),
            body(summary, records),
            "is not an id",
        ),
    ] {
        let (s, v) = post_window(&server.addr, &hv1, &query, &body);
        assert_eq!(s, 400, "{query}: {v}");
        assert!(v["message"].as_str().unwrap().contains(says), "{says}: {v}");
    }
    assert_eq!(count(&server), sent);
}
