//! An agent of the fleet on the testbed: `vpcflow serve` holds the model,
//! ports A and B are bound to hosts hv-a and hv-b through the API, and
//! `vpcflow agent --server URL --token TOKEN --host hv-a` captures live
//! under the model it fetched and ships its windows to the server: only
//! hv-a's port (A) has records, though B saw the same traffic; a port
//! bound to hv-a through the API is picked up without a restart (the agent
//! reloads within a second of the write); the server killed before the
//! window closes leaves the window in the agent's spool, and once it is
//! back the spool empties into its store with every window once (the
//! pings counted exactly), the partial window of the agent's stop too.
//!
//! Needs root, iproute2 and ping: `#[ignore]`d so a plain `cargo test` says
//! it did not run; `scripts/test.sh` (and CI, as root) runs it.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

mod common;
use common::testbed::{Testbed, inventory, now, ok};
use common::vpcflow;

const PROJECT: &str = "0c0ffee0000000000000000000000001";
const A: &str = "33333333-0000-4000-8000-00000000000a";
const B: &str = "33333333-0000-4000-8000-00000000000b";
const C: &str = "33333333-0000-4000-8000-00000000000c";

/// Lines of a child's pipe, each with when it came.
fn lines_of(pipe: impl std::io::Read + Send + 'static) -> mpsc::Receiver<(f64, String)> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(pipe).lines().map_while(Result::ok) {
            let _ = tx.send((now(), line));
        }
    });
    rx
}

/// Waits for a line containing `what`; every line seen goes to `log`.
fn wait_for(
    rx: &mpsc::Receiver<(f64, String)>,
    what: &str,
    within: Duration,
    log: &mut Vec<String>,
) -> f64 {
    let deadline = Instant::now() + within;
    loop {
        assert!(
            Instant::now() < deadline,
            "no line with {what:?} within {within:?}: {log:#?}"
        );
        if let Ok((at, line)) = rx.recv_timeout(Duration::from_millis(100)) {
            let found = line.contains(what);
            log.push(line);
            if found {
                return at;
            }
        }
    }
}

#[test]
#[ignore = "needs root, network namespaces and ping: scripts/test.sh runs it as root"]
fn an_agent_captures_its_hosts_ports_under_the_servers_model() {
    assert_eq!(ok(Command::new("id").arg("-u")).trim(), "0", "needs root");
    let bed = Testbed::up("h");
    std::thread::sleep(Duration::from_secs(4));
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let store = dir.path().join("store");
    let in_host = |program: &str| bed.in_host(program);
    // The server, in the testbed's host namespace (the agent reaches it on
    // that namespace's loopback), on a fixed port so that it can come back
    // where the agent looks for it.
    let addr = "127.0.0.1:39696".to_string();
    let start_server = || {
        let mut server = common::Running(Some(
            in_host(env!("CARGO_BIN_EXE_vpcflow"))
                .args(["serve", "--listen", &addr, "--config"])
                .arg(inventory())
                .arg("--data")
                .arg(&data)
                .stderr(Stdio::piped())
                .stdout(Stdio::null())
                .spawn()
                .unwrap(),
        ));
        let served = lines_of(server.child().stderr.take().unwrap());
        let mut log = Vec::new();
        wait_for(
            &served,
            "serving the API on",
            Duration::from_secs(20),
            &mut log,
        );
        std::thread::spawn(move || for _ in served {});
        server
    };
    let mut server = start_server();
    let token = |args: &[&str]| {
        ok(vpcflow()
            .args(["token", "create"])
            .args(args)
            .arg("--data")
            .arg(&data))
        .trim()
        .to_string()
    };
    let project_token = token(&["--project", PROJECT]);
    let agent_token = token(&["--agent", "hv-a"]);
    // The API listens in the host namespace: bind ports from there, with
    // the CLI client.
    let bind = |port: &str, host: &str| {
        let out = ok(in_host(env!("CARGO_BIN_EXE_vpcflow"))
            .args(["resource", "port", "update", port])
            .arg(json!({ "host": host }).to_string())
            .arg("--api")
            .arg(format!("http://{addr}"))
            .args(["--token", &project_token, "--project", PROJECT]));
        let v: Value = serde_json::from_str(&out).unwrap();
        assert_eq!(v["port"]["host"], host, "{v}");
    };
    bind(A, "hv-a");
    bind(B, "hv-b");

    // Early in a 60 s window, so the traffic lands in one.
    while now() % 60.0 > 40.0 {
        std::thread::sleep(Duration::from_millis(200));
    }
    let mut agent = in_host(env!("CARGO_BIN_EXE_vpcflow"))
        .args([
            "agent",
            "--capture",
            "af-packet",
            "--window",
            "60",
            "--server",
        ])
        .arg(format!("http://{addr}"))
        .args(["--token", &agent_token, "--host", "hv-a", "--store"])
        .arg(&store)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let files = lines_of(agent.stdout.take().unwrap());
    let said = lines_of(agent.stderr.take().unwrap());
    let mut agent_log = Vec::new();
    wait_for(
        &said,
        "agent running",
        Duration::from_secs(15),
        &mut agent_log,
    );
    let traffic_start = now();
    // A pings B: B's tap carries the same packets, but B is hv-b's.
    bed.exec(A, &["ping", "-c", "4", "-i", "0.2", "10.77.2.20"]);

    // C bound to hv-a through the API: the agent picks it up at once.
    bind(C, "hv-a");
    let changed = now();
    let reloaded = wait_for(
        &said,
        "inventory reloaded",
        Duration::from_secs(5),
        &mut agent_log,
    );
    assert!(
        reloaded - changed < 1.5,
        "the agent reloaded {:.2} s after the write",
        reloaded - changed
    );

    // The server goes down before the window closes: the window waits in
    // the agent's spool.
    let mut killed = server.take();
    killed.kill().unwrap();
    killed.wait().unwrap();
    let window_end = (traffic_start / 60.0).floor() * 60.0 + 60.0;
    let mut written = Vec::new();
    let deadline = Instant::now() + Duration::from_secs_f64(window_end - now() + 15.0);
    while written.is_empty() && Instant::now() < deadline {
        if let Ok((_, line)) = files.recv_timeout(Duration::from_millis(200)) {
            written.push(line);
        }
    }
    assert!(!written.is_empty(), "no window was written: {agent_log:#?}");
    std::thread::sleep(Duration::from_secs(2));
    let waiting = vpcflow_store::shipped::spooled(&store).unwrap();
    assert!(
        !waiting.is_empty(),
        "the window left the spool with the server down"
    );
    // Back: the spool empties into the server's store, each window once.
    let _server = start_server();
    let deadline = Instant::now() + Duration::from_secs(20);
    while !vpcflow_store::shipped::spooled(&store).unwrap().is_empty() {
        assert!(
            Instant::now() < deadline,
            "the spool did not empty: {agent_log:#?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    ok(Command::new("kill").args(["-TERM", &agent.id().to_string()]));
    assert!(agent.wait().unwrap().success());
    while let Ok((_, line)) = said.recv_timeout(Duration::from_millis(200)) {
        agent_log.push(line);
    }
    assert!(
        vpcflow_store::shipped::spooled(&store).unwrap().is_empty(),
        "the partial window did not reach the server: {agent_log:#?}"
    );

    // The server's store: hv-a's port only, its pings counted once.
    let rows = ok(vpcflow()
        .args(["query", "--format", "json", "--store"])
        .arg(data.join("store")));
    let records: Vec<Value> = rows
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let ports: std::collections::BTreeSet<&str> = records
        .iter()
        .filter(|r| r["log_status"] == "OK")
        .map(|r| r["interface_id"].as_str().unwrap())
        .collect();
    assert_eq!(
        ports,
        [A].into_iter().collect(),
        "only hv-a's port: {records:#?}"
    );
    let pings: u64 = records
        .iter()
        .filter(|r| r["interface_id"] == A && r["protocol"] == 1 && r["direction"] == "egress")
        .map(|r| r["packets"].as_u64().unwrap())
        .sum();
    assert_eq!(pings, 4, "{records:#?}");
    assert!(
        !records.iter().any(|r| r["interface_id"] == B),
        "B is hv-b's: {records:#?}"
    );
}
