//! An agent of the fleet on the testbed: `vpcflow serve` holds the model,
//! ports A and B are bound to hosts hv-a and hv-b through the API, and
//! `vpcflow agent --server URL --token TOKEN --host hv-a` captures live
//! under the model it fetched and ships its windows to the server: only
//! hv-a's port (A) has records, though B saw the same traffic; a port
//! bound to hv-a through the API is picked up without a restart (the agent
//! reloads within a second of the write); the server killed before the
//! window closes and kept down for three windows of traffic leaves them in
//! the agent's spool, and once it is back the spool empties into its store
//! with every window once (each window's pings counted exactly), the
//! partial window of the agent's stop too.
//!
//! And a fleet of three: the testbed's ports on three hosts (namespaces),
//! an agent on each reaching the server over the management network, a
//! VPC flow log created through the API; every port's pings arrive
//! centrally, counted exactly; a port added to one host through the API
//! has records from the next window without a restart; the flow log
//! deleted, no agent writes its records from the next window on.
//!
//! Needs root, iproute2 and ping: `#[ignore]`d so a plain `cargo test` says
//! it did not run; `scripts/test.sh` (and CI, as root) runs it.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

mod common;
use common::testbed::{Testbed, inventory, now, ok, sleep_until};
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

/// `vpcflow serve` of `config` in the testbed's router namespace on
/// `listen`, once it serves.
fn serve(bed: &Testbed, listen: &str, config: &Path, data: &Path) -> common::Running {
    let mut server = common::Running(Some(
        bed.in_host(env!("CARGO_BIN_EXE_vpcflow"))
            .args(["serve", "--listen", listen, "--config"])
            .arg(config)
            .arg("--data")
            .arg(data)
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
}

/// A token made with `vpcflow token create ARGS` on the data directory.
fn token_in(data: &Path, args: &[&str]) -> String {
    ok(vpcflow()
        .args(["token", "create"])
        .args(args)
        .arg("--data")
        .arg(data))
    .trim()
    .to_string()
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
    let start_server = || serve(&bed, &addr, &inventory(), &data);
    let mut server = start_server();
    let token = |args: &[&str]| token_in(&data, args);
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
    let mut agent = common::Running(Some(
        in_host(env!("CARGO_BIN_EXE_vpcflow"))
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
            .unwrap(),
    ));
    let files = lines_of(agent.child().stdout.take().unwrap());
    let said = lines_of(agent.child().stderr.take().unwrap());
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

    // The server goes down before the window closes, for three windows
    // of traffic: they wait in the agent's spool.
    let mut killed = server.take();
    killed.kill().unwrap();
    killed.wait().unwrap();
    let first = (traffic_start / 60.0).floor() * 60.0;
    for w in 1..3 {
        while now() < first + 60.0 * w as f64 + 1.0 {
            std::thread::sleep(Duration::from_millis(200));
        }
        bed.exec(A, &["ping", "-c", "4", "-i", "0.2", "10.77.2.20"]);
    }
    let mut written = Vec::new();
    let deadline = Instant::now() + Duration::from_secs_f64(first + 180.0 - now() + 15.0);
    while written.len() < 3 && Instant::now() < deadline {
        if let Ok((_, line)) = files.recv_timeout(Duration::from_millis(200)) {
            written.push(line);
        }
    }
    assert_eq!(written.len(), 3, "{written:#?}\n{agent_log:#?}");
    std::thread::sleep(Duration::from_secs(2));
    let waiting = vpcflow_store::shipped::spooled(&store).unwrap();
    assert_eq!(
        waiting.len(),
        3,
        "the windows left the spool with the server down: {waiting:#?}"
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
    let mut agent = agent.take();
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
    let mut pings = std::collections::BTreeMap::new();
    for r in records
        .iter()
        .filter(|r| r["interface_id"] == A && r["protocol"] == 1 && r["direction"] == "egress")
    {
        *pings.entry(r["start"].as_u64().unwrap()).or_insert(0) += r["packets"].as_u64().unwrap();
    }
    let first = first as u64;
    assert_eq!(
        pings,
        [(first, 4), (first + 60, 4), (first + 120, 4)]
            .into_iter()
            .collect(),
        "{records:#?}"
    );
    assert!(
        !records.iter().any(|r| r["interface_id"] == B),
        "B is hv-b's: {records:#?}"
    );
}

/// Port D: on host hv1 in the testbed from the start, in the server's
/// model only once the test adds it through the API.
const PORT_D: &str = r#"
[[port]]
id = "33333333-0000-4000-8000-00000000000d"
subnet = "22222222-0000-4000-8000-000000000001"
ips = ["10.77.1.40"]
security_groups = ["44444444-0000-4000-8000-000000000001"]
interface = "vfbtap-d"
host_side = true
host = "hv1"
"#;

/// Seconds into the current capture window of `window` seconds.
fn into_window(window: f64) -> f64 {
    now() % window
}

#[test]
#[ignore = "needs root, network namespaces and ping: scripts/test.sh runs it as root"]
fn a_fleet_of_three_agents_reports_every_port_to_one_server() {
    assert_eq!(ok(Command::new("id").arg("-u")).trim(), "0", "needs root");
    let dir = tempfile::tempdir().unwrap();
    let fleet = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/live/fleet.toml");
    let bed_inventory = dir.path().join("fleet-and-d.toml");
    std::fs::write(
        &bed_inventory,
        std::fs::read_to_string(&fleet).unwrap() + PORT_D,
    )
    .unwrap();
    let bed = Testbed::up_with("f", bed_inventory);
    let data = dir.path().join("data");
    let api = format!("http://{}:39697", vpcflow_tools::testbed::SERVER_ADDRESS);
    // The server in the router's namespace, on the management network.
    let server = serve(&bed, api.trim_start_matches("http://"), &fleet, &data);
    let token = |args: &[&str]| token_in(&data, args);
    let project_token = token(&["--project", PROJECT]);
    // The CLI client, from the router's namespace.
    let cli = |args: &[&str]| -> Value {
        let out = ok(bed
            .in_host(env!("CARGO_BIN_EXE_vpcflow"))
            .args(args)
            .env("VPCFLOW_API", &api)
            .env("VPCFLOW_TOKEN", &project_token)
            .env("VPCFLOW_PROJECT", PROJECT));
        serde_json::from_str(&out).unwrap_or(Value::Null)
    };
    let flow_log = cli(&[
        "flow-log",
        "create",
        "--name",
        "fl-fleet",
        "--resource-type",
        "vpc",
        "--resource-id",
        "11111111-0000-4000-8000-000000000001",
        "--log-group-id",
        "66666666-0000-4000-8000-000000000001",
        "--log-topic-id",
        "77777777-0000-4000-8000-000000000001",
    ]);
    let flow_log = flow_log["flow_log"]["id"].as_str().unwrap().to_string();

    // Enough of the window left for the first traffic.
    const WINDOW: f64 = 60.0;
    while into_window(WINDOW) > 40.0 {
        std::thread::sleep(Duration::from_millis(200));
    }
    let hosts = ["hv1", "hv2", "hv3"];
    let mut agents = Vec::new();
    let mut said = Vec::new();
    for host in hosts {
        let mut agent = bed
            .in_namespace(&format!("host:{host}"), env!("CARGO_BIN_EXE_vpcflow"))
            .args(["agent", "--capture", "af-packet", "--window", "60"])
            .args(["--server", &api, "--host", host, "--store"])
            .arg(dir.path().join(format!("spool-{host}")))
            .env("VPCFLOW_AGENT_TOKEN", token(&["--agent", host]))
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        said.push(lines_of(agent.stderr.take().unwrap()));
        agents.push(common::Running(Some(agent)));
    }
    let mut logs = vec![Vec::new(), Vec::new(), Vec::new()];
    for (rx, log) in said.iter().zip(&mut logs) {
        wait_for(rx, "agent running", Duration::from_secs(15), log);
    }
    let w1 = (now() / WINDOW).floor() * WINDOW;

    // Window 1: A pings B (hv1 to hv2, routed), B pings C (hv2 to hv3,
    // one subnet), C pings A: each port 8 ICMP packets each way.
    for (from, to) in [(A, "10.77.2.20"), (B, "10.77.2.30"), (C, "10.77.1.10")] {
        bed.exec(from, &["ping", "-c", "4", "-i", "0.2", to]);
    }
    // Port D added to hv1 through the API: hv1's agent takes it within a
    // second, from the next window on.
    let d = json!({
        "subnet_id": "22222222-0000-4000-8000-000000000001",
        "ips": ["10.77.1.40"],
        "security_groups": ["44444444-0000-4000-8000-000000000001"],
        "interface": "vfbtap-d",
        "host_side": true,
        "host": "hv1",
    });
    let d = cli(&["resource", "port", "create", &d.to_string()]);
    let port_d = d["port"]["id"].as_str().unwrap().to_string();
    let added = now();
    let reloaded = wait_for(
        &said[0],
        "inventory reloaded",
        Duration::from_secs(5),
        &mut logs[0],
    );
    assert!(
        reloaded - added < 1.5,
        "hv1 reloaded {:.2} s after",
        reloaded - added
    );
    assert!(
        now() < w1 + WINDOW,
        "window 1 ended before port D was added"
    );

    // Window 2: D pings B.
    sleep_until(w1 + WINDOW + 1.0);
    bed.exec(
        "33333333-0000-4000-8000-00000000000d",
        &["ping", "-c", "3", "-i", "0.2", "10.77.2.20"],
    );
    // The flow log deleted: from window 3 on, no agent writes its records.
    cli(&["flow-log", "delete", &flow_log]);
    for (rx, log) in said.iter().zip(&mut logs) {
        wait_for(rx, "inventory reloaded", Duration::from_secs(5), log);
    }
    assert!(
        now() < w1 + 2.0 * WINDOW,
        "window 2 ended before the flow log was deleted"
    );

    // Window 3: traffic, then every agent stopped: their partial windows
    // (no flow log, so no records) and window 2's reach the server.
    sleep_until(w1 + 2.0 * WINDOW + 1.0);
    bed.exec(A, &["ping", "-c", "4", "-i", "0.2", "10.77.2.20"]);
    for (mut agent, (rx, log)) in agents.into_iter().zip(said.iter().zip(&mut logs)) {
        let mut agent = agent.take();
        ok(Command::new("kill").args(["-TERM", &agent.id().to_string()]));
        assert!(agent.wait().unwrap().success());
        while let Ok((_, line)) = rx.recv_timeout(Duration::from_millis(200)) {
            log.push(line);
        }
    }
    for host in hosts {
        let left =
            vpcflow_store::shipped::spooled(&dir.path().join(format!("spool-{host}"))).unwrap();
        assert!(left.is_empty(), "{host} kept {left:?}: {logs:#?}");
    }

    // The server's store: (window, port, direction) -> ICMP packets, bytes.
    let rows = ok(vpcflow()
        .args(["query", "--format", "json", "--store"])
        .arg(data.join("store")));
    let mut icmp = std::collections::BTreeMap::new();
    for r in rows
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
    {
        let start = r["start"].as_f64().unwrap();
        if r["protocol"] == 1 {
            let key = (
                ((start - w1) / WINDOW) as u64 + 1,
                r["interface_id"].as_str().unwrap().to_string(),
                r["direction"].as_str().unwrap().to_string(),
            );
            let e = icmp.entry(key).or_insert((0, 0));
            e.0 += r["packets"].as_u64().unwrap();
            e.1 += r["bytes"].as_u64().unwrap();
        }
    }
    let mut want = std::collections::BTreeMap::new();
    for port in [A, B, C] {
        for dir in ["ingress", "egress"] {
            want.insert((1, port.to_string(), dir.to_string()), (8, 8 * 84));
        }
    }
    for dir in ["ingress", "egress"] {
        want.insert((2, port_d.clone(), dir.to_string()), (3, 3 * 84));
        want.insert((2, B.to_string(), dir.to_string()), (3, 3 * 84));
    }
    assert_eq!(icmp, want, "{logs:#?}");
    let w3: Vec<&str> = rows
        .lines()
        .filter(|l| l.contains(&format!("\"start\":{}", (w1 + 2.0 * WINDOW) as u64)))
        .collect();
    assert!(
        w3.is_empty(),
        "records of window 3, after the flow log was deleted: {w3:#?}\n{logs:#?}"
    );

    // The server lists the three agents, each with its windows.
    let listed = ok(bed.in_host("python3").args([
        "-c",
        "import sys,urllib.request as u;r=u.Request(sys.argv[1]+'/v1/agents',headers={'X-Auth-Token':sys.argv[2]});print(u.urlopen(r).read().decode())",
        &api,
        &project_token,
    ]));
    let listed: Value = serde_json::from_str(&listed).unwrap();
    let agents = listed["agents"].as_array().unwrap();
    assert_eq!(
        agents
            .iter()
            .map(|a| a["host"].as_str().unwrap())
            .collect::<Vec<_>>(),
        hosts,
        "{listed}"
    );
    for a in agents {
        assert!(a["windows_received"].as_u64().unwrap() >= 2, "{a}");
        assert_eq!(a["lost_windows"], 0, "{a}");
    }
    drop(server);
}
