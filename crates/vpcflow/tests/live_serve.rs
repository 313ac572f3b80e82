//! `vpcflow serve --live` on the testbed: flow logs created and disabled
//! through the API (with the `vpcflow` CLI) drive the live capture without
//! a restart. A flow log created during one window writes records from the
//! next; disabled during another, it writes nothing from the window after,
//! while the inventory's own flow log still records the same traffic; the
//! live tail delivers the window as it closes.
//!
//! Needs root, iproute2, nftables and python3 (the API listens on loopback
//! inside the testbed's host namespace, so every call runs there):
//! `#[ignore]`d, run by `scripts/test.sh` as root. Takes up to three
//! 60-second windows.

use std::io::{BufRead, BufReader};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

mod common;
use common::testbed::{BOUND, Testbed, inventory, now, ok, sleep_until};

const PROJECT: &str = "0c0ffee0000000000000000000000001";
const PORT_A: &str = "33333333-0000-4000-8000-00000000000a";
const GROUP: &str = "66666666-0000-4000-8000-000000000001";
/// The inventory's VPC flow log writes here.
const INVENTORY_TOPIC: &str = "77777777-0000-4000-8000-000000000001";

#[test]
#[ignore = "needs root, network namespaces, nftables and python3: scripts/test.sh runs it as root"]
fn flow_logs_changed_through_the_api_drive_live_capture_from_the_next_window() {
    assert_eq!(ok(Command::new("id").arg("-u")).trim(), "0", "needs root");
    let bed = Testbed::up("s");
    std::thread::sleep(Duration::from_secs(4));
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let in_host = |program: &str| bed.in_host(program);
    let mut server = common::Running(Some(
        in_host(env!("CARGO_BIN_EXE_vpcflow"))
            .args([
                "serve",
                "--live",
                "--capture",
                "af-packet",
                "--listen",
                "127.0.0.1:0",
                "--config",
            ])
            .arg(inventory())
            .arg("--data")
            .arg(&data)
            .stderr(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .unwrap(),
    ));
    let mut lines = BufReader::new(server.child().stderr.take().unwrap()).lines();
    let mut addr = None;
    let mut log = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    while addr.is_none() || !log.iter().any(|l: &String| l.contains("agent running")) {
        assert!(
            Instant::now() < deadline,
            "serve --live did not start: {log:?}"
        );
        let line = lines.next().expect("serve exited").unwrap();
        if let Some(a) = line.split("http://").nth(1) {
            addr = Some(a.trim().to_string());
        }
        log.push(line);
    }
    std::thread::spawn(move || for _ in lines {});
    let addr = addr.unwrap();
    let token = ok(common::vpcflow()
        .args(["token", "create", "--project", PROJECT, "--data"])
        .arg(&data))
    .trim()
    .to_string();
    let cli = |args: &[&str]| -> Value {
        let out: Output = in_host(env!("CARGO_BIN_EXE_vpcflow"))
            .args(args)
            .env("VPCFLOW_API", format!("http://{addr}"))
            .env("VPCFLOW_TOKEN", &token)
            .env("VPCFLOW_PROJECT", PROJECT)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap_or(Value::Null)
    };

    // Leave room before the boundary for the change to be seen.
    if now() % 60.0 > 45.0 {
        sleep_until((now() / 60.0).ceil() * 60.0 + 1.0);
    }
    let v = cli(&[
        "resource",
        "log-topic",
        "create",
        "--log-group-id",
        GROUP,
        r#"{"name": "from-the-api"}"#,
    ]);
    let topic = v["log_topic"]["id"].as_str().unwrap().to_string();
    let v = cli(&[
        "flow-log",
        "create",
        "--name",
        "port-a",
        "--resource-type",
        "port",
        "--resource-id",
        PORT_A,
        "--log-group-id",
        GROUP,
        "--log-topic-id",
        &topic,
    ]);
    let flow_log = v["flow_log"]["id"].as_str().unwrap().to_string();
    let w1 = (now() / 60.0).ceil() * 60.0;

    // The tail of the new topic, listening from before its first window.
    let mut tail = common::Running(Some(in_host("python3")
        .arg("-c")
        .arg(format!(
            "import socket\nhost,port='{}'.split(':')\ns=socket.create_connection((host,int(port)))\n\
             s.sendall(b'GET /v1/{PROJECT}/log-groups/{GROUP}/log-topics/{topic}/tail HTTP/1.1\\r\\nHost: x\\r\\nX-Auth-Token: {token}\\r\\n\\r\\n')\n\
             s.settimeout(200)\nbuf=b''\n\
             while True:\n  i=buf.find(b'event: window')\n  \
             if i>=0 and buf.find(b'\\n',buf.find(b'data: ',i))>0: break\n  \
             d=s.recv(65536)\n  if not d: break\n  buf+=d\n\
             j=buf.find(b'data: ',buf.find(b'event: window'))\nprint(buf[j+6:buf.find(b'\\n',j)].decode())",
            addr
        ))
        .stdout(Stdio::piped())
        .spawn()
        .unwrap()));

    let send_25 = || {
        let listener = bed.serve_on_b(&format!("import socket\ns=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\ns.bind(('0.0.0.0',5000))\n{BOUND}\ns.settimeout(8)\nn=0\ntry:\n  while n<25:\n    s.recv(2000); n+=1\nexcept Exception: pass\nprint(n)"));
        bed.exec(
            PORT_A,
            &[
                "python3",
                "-c",
                "import socket\ns=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\ns.bind(('0.0.0.0',40000))\n\
                 for i in range(25): s.sendto(b'x'*100,('10.77.2.20',5000))",
            ],
        );
        let got = listener.wait_with_output().unwrap();
        assert_eq!(String::from_utf8_lossy(&got.stdout).trim(), "25");
    };

    // Window 1: the new flow log records; disabled during it, it stops
    // from window 2.
    sleep_until(w1 + 1.0);
    send_25();
    let v = cli(&["flow-log", "update", &flow_log, "--disable"]);
    assert_eq!(v["flow_log"]["status"], "DOWN");
    let w2 = w1 + 60.0;
    sleep_until(w2 + 1.0);
    send_25();
    sleep_until(w2 + 60.0 + 6.0);

    let per_window = |topic: &str| -> Vec<(u64, String, u64)> {
        let v = cli(&[
            "records",
            "--log-group-id",
            GROUP,
            "--log-topic-id",
            topic,
            "--sql",
            "SELECT start, log_status, CAST(sum(packets) AS BIGINT) AS packets FROM records \
             WHERE interface_id = '33333333-0000-4000-8000-00000000000a' \
             GROUP BY start, log_status ORDER BY start, log_status",
        ]);
        v["records"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                (
                    r["start"].as_u64().unwrap(),
                    r["log_status"].as_str().unwrap().to_string(),
                    r["packets"].as_u64().unwrap_or(0),
                )
            })
            .collect()
    };
    let (w1, w2) = (w1 as u64, w2 as u64);
    // The API's flow log: window 1's 25 datagrams, nothing from window 2 on.
    assert_eq!(per_window(&topic), vec![(w1, "OK".to_string(), 25)]);
    // The inventory's flow log saw both windows' traffic.
    let theirs = per_window(INVENTORY_TOPIC);
    assert!(theirs.contains(&(w1, "OK".to_string(), 25)), "{theirs:?}");
    assert!(theirs.contains(&(w2, "OK".to_string(), 25)), "{theirs:?}");

    // The tail delivered window 1 of the new topic as it closed.
    let tailed = tail.take().wait_with_output().unwrap();
    let event: Value = serde_json::from_slice(&tailed.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&tailed.stdout)));
    assert_eq!(event["start"], w1);
    assert_eq!(event["flow_log_id"], flow_log.as_str());
    let packets: u64 = event["records"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|r| r["packets"].as_u64())
        .sum();
    assert_eq!(packets, 25, "{event}");

    let mut server = server.take();
    let _ = Command::new("kill").arg(server.id().to_string()).status();
    assert!(server.wait().unwrap().success());
}
