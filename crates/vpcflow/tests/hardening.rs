//! A hostile tenant against a real `vpcflow serve` (issue 13's findings,
//! one test each): queries that overflowed the server's stack or pinned a
//! core are refused or end at their deadline while other tenants keep
//! being answered; one project cannot run more than its share of queries
//! at once; SIGTERM stops the server even with clients connected.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use serde_json::json;

mod common;
use common::examples;
use common::server::{Server, database_args, raw_get, token};

const PROJECT: &str = "5f67944957444bd6bb4fe3b367de8f3d";
const OTHER: &str = "another-project";
const GROUP: &str = "a1b2c3d4-0000-4000-8000-000000000001";
const TOPIC: &str = "a1b2c3d4-0000-4000-8000-000000000002";

/// Percent-encodes a query-string value.
fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn records(param: &str, value: &str) -> String {
    format!(
        "/v1/{PROJECT}/log-groups/{GROUP}/log-topics/{TOPIC}/records?{param}={}",
        encode(value)
    )
}

fn healthy(server: &Server) {
    let t = Instant::now();
    assert!(raw_get(&server.addr, "/health").starts_with("HTTP/1.1 200"));
    assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
}

/// A server with the demo capture uploaded, and a token of [`PROJECT`].
fn server_with_records(dir: &std::path::Path, extra: &[&str]) -> (Server, String) {
    let mut args = database_args(dir);
    args.extend(extra.iter().map(|s| s.to_string()));
    let server = Server::start_on(dir, &args);
    let t = token(dir, PROJECT);
    let capture = std::fs::read(examples().join("vpc-demo.pcap")).unwrap();
    let (s, v) = server.upload(&format!("/v1/{PROJECT}/captures"), Some(&t), &capture);
    assert_eq!(s, 200, "{v}");
    (server, t)
}

/// Finding 1 and 2's text half: each of these requests aborted the server
/// (stack overflow) or kept a core busy for minutes in SQL parsing.
#[test]
fn stack_overflowing_and_backtracking_queries_get_400s_naming_the_limit() {
    let dir = tempfile::tempdir().unwrap();
    let (server, t) = server_with_records(dir.path(), &[]);
    let nested = format!("{}action:REJECT{}", "(".repeat(5000), ")".repeat(5000));
    let sum = format!("SELECT 1{} AS n", "+1".repeat(999));
    let unions = format!("SELECT 1 AS n{}", " UNION ALL SELECT 1".repeat(1000));
    let few_unions = format!("SELECT 1 AS n{}", " UNION ALL SELECT 1".repeat(40));
    let ors = vec!["dstport:22"; 1000].join(" OR ");
    let terms = vec!["dstport:22"; 101].join(" OR ");
    let nots = format!("{}action:REJECT", "NOT ".repeat(40));
    let sql_nots = format!(
        "SELECT count(*) AS n FROM records WHERE {}true{}",
        "NOT (".repeat(40),
        ")".repeat(40)
    );
    for (param, value, named) in [
        ("search", nested.as_str(), "at most 4096 are accepted"),
        ("sql", &sum, "at most 1000 are accepted"),
        ("sql", &unions, "at most 16384 are accepted"),
        ("sql", &few_unions, "40 set operations"),
        ("search", &ors, "at most 4096 are accepted"),
        ("search", &terms, "101 terms; at most 100"),
        ("search", &nots, "40 NOTs; at most 16"),
        ("sql", &sql_nots, "nests parentheses 40 deep; at most 32"),
    ] {
        let started = Instant::now();
        let (s, v) = server.request("GET", &records(param, value), Some(&t), None);
        assert_eq!(s, 400, "{param} of {} bytes: {v}", value.len());
        let message = v["message"].as_str().unwrap_or_default();
        assert!(message.contains(named), "{param}: {message}");
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "{param}: {:?}",
            started.elapsed()
        );
        healthy(&server);
    }
    // An offset past what the SQL engine counts in (it wrapped negative).
    let (s, v) = server.request(
        "GET",
        &format!(
            "{}&offset=9223372036854775808",
            records("search", "action:REJECT")
        ),
        Some(&t),
        None,
    );
    assert_eq!(s, 400, "{v}");
    assert!(
        v["message"]
            .as_str()
            .unwrap()
            .contains("offset: 9223372036854775808 is over"),
        "{v}"
    );
    // At the limits, such queries run and answer.
    let at_limit = format!(
        "{}{}action:REJECT{}",
        "NOT ".repeat(16),
        "(".repeat(16),
        ")".repeat(16)
    );
    let (s, v) = server.request("GET", &records("search", &at_limit), Some(&t), None);
    assert_eq!(s, 200, "{v}");
    let ors = vec!["dstport:22"; 100].join(" OR ");
    let (s, v) = server.request("GET", &records("search", &ors), Some(&t), None);
    assert_eq!(s, 200, "{v}");
    let sum = format!("SELECT 1{} AS n", "+1".repeat(400));
    let (s, v) = server.request("GET", &records("sql", &sum), Some(&t), None);
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["records"][0]["n"], 401, "{v}");
}

/// Another tenant, [`OTHER`], with a model of its own over the same
/// addresses as [`PROJECT`]'s (a VPC flow log into its own topic) and the
/// demo capture uploaded: its token, and a records query counting them.
fn other_tenant_with_records(server: &Server, dir: &std::path::Path) -> (String, String) {
    let t = token(dir, OTHER);
    let create = |path: &str, key: &str, fields: serde_json::Value| {
        let (s, v) = server.request(
            "POST",
            &format!("/v1/{OTHER}/{path}"),
            Some(&t),
            Some(&json!({ key: fields })),
        );
        assert_eq!(s, 200, "POST {path}: {v}");
        v[key]["id"].as_str().unwrap().to_string()
    };
    let vpc = create(
        "vpcs",
        "vpc",
        json!({"name": "theirs", "cidr": "192.168.0.0/16"}),
    );
    let subnet = create(
        "subnets",
        "subnet",
        json!({"vpc_id": vpc, "name": "theirs", "cidr": "192.168.0.0/24"}),
    );
    let sg = create(
        "security-groups",
        "security_group",
        json!({"name": "theirs"}),
    );
    create(
        "ports",
        "port",
        json!({"subnet_id": subnet, "ips": ["192.168.0.154"], "security_groups": [sg]}),
    );
    let group = create("log-groups", "log_group", json!({"name": "theirs"}));
    let topic = create(
        &format!("log-groups/{group}/log-topics"),
        "log_topic",
        json!({"name": "theirs"}),
    );
    create(
        "fl/flow_logs",
        "flow_log",
        json!({"name": "theirs", "resource_type": "vpc", "resource_id": vpc,
               "traffic_type": "all", "log_group_id": group, "log_topic_id": topic}),
    );
    let capture = std::fs::read(examples().join("vpc-demo.pcap")).unwrap();
    let (s, v) = server.upload(&format!("/v1/{OTHER}/captures"), Some(&t), &capture);
    assert_eq!(s, 200, "{v}");
    assert!(v["capture"]["records"].as_u64().unwrap() > 0, "{v}");
    let query = format!(
        "/v1/{OTHER}/log-groups/{group}/log-topics/{topic}/records?sql={}",
        encode("SELECT count(*) AS n FROM records")
    );
    (t, query)
}

/// Finding 2's running half: endless and memory-hungry SQL ends within
/// its deadline with a 400 naming the bound, while another tenant's
/// queries keep being answered.
#[test]
fn endless_and_hungry_sql_ends_at_its_bounds_while_other_tenants_are_answered() {
    let dir = tempfile::tempdir().unwrap();
    let (server, t) = server_with_records(
        dir.path(),
        &["--query-timeout", "3", "--query-memory", "64"],
    );
    let (other, theirs) = other_tenant_with_records(&server, dir.path());
    let hostile = [
        (
            "SELECT count(*) AS n FROM generate_series(1, 100000000000)",
            "deadline of 3 s",
        ),
        (
            "SELECT sum(a.value * b.value) AS n FROM generate_series(1, 1000000) a, generate_series(1, 1000000) b",
            "deadline of 3 s",
        ),
        (
            "SELECT count(*) AS n FROM generate_series(1, 10000000) a JOIN generate_series(1, 10000000) b ON a.value = b.value",
            "67108864 bytes of memory",
        ),
        (
            "SELECT repeat('x', 1500000000) AS s",
            "67108864 bytes of memory",
        ),
        (
            "SELECT length(replace(replace(replace(repeat('x', 1000), 'x', repeat('y', 1000)), 'y', repeat('z', 1000)), 'z', 'ww')) AS n",
            "67108864 bytes of memory",
        ),
        (
            "WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r) SELECT count(*) AS n FROM r",
            "ecursive",
        ),
    ];
    for (sql, named) in hostile {
        let addr = server.addr.clone();
        let path = records("sql", sql);
        let token = t.clone();
        let started = Instant::now();
        let attack = std::thread::spawn(move || {
            common::server::request(&addr, "GET", &path, Some(&token), None)
        });
        // Meanwhile the other tenant is answered, promptly.
        std::thread::sleep(Duration::from_millis(300));
        for _ in 0..3 {
            let asked = Instant::now();
            let (s, v) = server.request("GET", &theirs, Some(&other), None);
            assert_eq!(s, 200, "{v}");
            assert!(v["records"][0]["n"].as_u64().unwrap() > 0, "{v}");
            assert!(
                asked.elapsed() < Duration::from_secs(2),
                "{sql}: {:?}",
                asked.elapsed()
            );
        }
        let (s, v) = attack.join().unwrap();
        assert_eq!(s, 400, "{sql}: {v}");
        let message = v["message"].as_str().unwrap_or_default();
        assert!(message.contains(named), "{sql}: {message}");
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{sql}: {:?}",
            started.elapsed()
        );
    }
}

/// Sends a records request and leaves without reading the answer.
fn abandon(addr: &str, path: &str, token: &str) -> TcpStream {
    let mut s = TcpStream::connect(addr).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: x\r\nX-Auth-Token: {token}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    s
}

/// A project runs at most two queries at once (the third is a 429), and
/// a query whose client went away is cancelled and frees its slot.
#[test]
fn a_project_runs_two_queries_at_once_and_a_departed_clients_query_stops() {
    let dir = tempfile::tempdir().unwrap();
    let (server, t) = server_with_records(dir.path(), &["--query-timeout", "60"]);
    let endless = records(
        "sql",
        "SELECT count(*) AS n FROM generate_series(1, 100000000000)",
    );
    let a = abandon(&server.addr, &endless, &t);
    let b = abandon(&server.addr, &endless, &t);
    std::thread::sleep(Duration::from_millis(500));
    let quick = records("sql", "SELECT 1 AS n");
    let (s, v) = server.request("GET", &quick, Some(&t), None);
    assert_eq!((s, v["code"].as_str()), (429, Some("VPC.0429")), "{v}");
    // Both clients leave: their queries stop (not at the 60 s deadline)
    // and the project may query again.
    drop((a, b));
    let left = Instant::now();
    loop {
        let (s, v) = server.request("GET", &quick, Some(&t), None);
        if s == 200 {
            assert_eq!(v["records"][0]["n"], 1, "{v}");
            break;
        }
        assert_eq!(s, 429, "{v}");
        assert!(
            left.elapsed() < Duration::from_secs(10),
            "slots still taken"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// SIGTERM stops the server within its shutdown grace, even with a live
/// tail and a long query connected (graceful shutdown waited for them
/// for good).
#[test]
fn sigterm_stops_the_server_with_clients_connected() {
    let dir = tempfile::tempdir().unwrap();
    let (mut server, t) = server_with_records(dir.path(), &["--query-timeout", "600"]);
    let tail = abandon(
        &server.addr,
        &format!("/v1/{PROJECT}/log-groups/{GROUP}/log-topics/{TOPIC}/tail"),
        &t,
    );
    let query = abandon(
        &server.addr,
        &records(
            "sql",
            "SELECT count(*) AS n FROM generate_series(1, 100000000000)",
        ),
        &t,
    );
    std::thread::sleep(Duration::from_millis(500));
    let pid = server.child.id().to_string();
    let sent = Instant::now();
    assert!(
        std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let status = loop {
        if let Some(status) = server.child.try_wait().unwrap() {
            break status;
        }
        assert!(
            sent.elapsed() < Duration::from_secs(20),
            "serve still running 20 s after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(status.success(), "{status:?}");
    // The tail's client sees its stream end rather than hang.
    let mut tail = tail;
    tail.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut rest = Vec::new();
    assert!(tail.read_to_end(&mut rest).is_ok());
    drop(query);
}

/// A pcap file header (microseconds, Ethernet), as an upload starts.
fn pcap_header() -> Vec<u8> {
    let mut h = Vec::new();
    h.extend(0xa1b2_c3d4u32.to_le_bytes());
    h.extend(2u16.to_le_bytes());
    h.extend(4u16.to_le_bytes());
    h.extend([0u8; 8]);
    h.extend(65535u32.to_le_bytes());
    h.extend(1u32.to_le_bytes());
    h
}

/// Starts an upload that says it is `length` bytes long and sends `sent`
/// of them; the open connection.
fn start_upload(addr: &str, token: &str, length: u64, sent: &[u8]) -> TcpStream {
    let mut s = TcpStream::connect(addr).unwrap();
    write!(
        s,
        "POST /v1/{PROJECT}/captures HTTP/1.1\r\nHost: x\r\nX-Auth-Token: {token}\r\nContent-Length: {length}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    // The server may answer (and close) before all is sent.
    let _ = s.write_all(sent);
    s
}

/// The answer on `s`, as text (whatever arrives within 10 s).
fn answer(mut s: TcpStream) -> String {
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut raw = Vec::new();
    let _ = s.read_to_end(&mut raw);
    String::from_utf8_lossy(&raw).to_string()
}

fn spool_files(data: &std::path::Path) -> usize {
    std::fs::read_dir(data.join("uploads"))
        .map(|d| d.flatten().count())
        .unwrap_or(0)
}

fn wait_for_no_spool_files(data: &std::path::Path) {
    let t = Instant::now();
    while spool_files(data) > 0 {
        assert!(t.elapsed() < Duration::from_secs(10), "a spool file stays");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Hardening finding 5: an upload whose client went away leaked its spool
/// file for good, and one a crash left behind stayed too.
#[test]
fn a_departed_uploads_spool_file_is_removed_and_leftovers_are_swept_at_start() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("uploads")).unwrap();
    std::fs::write(dir.path().join("uploads/left-by-a-crash.capture"), b"x").unwrap();
    let server = Server::start(dir.path());
    assert_eq!(spool_files(dir.path()), 0, "swept at start");
    let t = token(dir.path(), PROJECT);
    // Gone mid-body.
    let mut sent = pcap_header();
    sent.resize(100_000, 0);
    let upload = start_upload(&server.addr, &t, 10_000_000, &sent);
    let spooling = Instant::now();
    while spool_files(dir.path()) == 0 {
        assert!(
            spooling.elapsed() < Duration::from_secs(10),
            "never spooled"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    drop(upload);
    wait_for_no_spool_files(dir.path());
    // Gone right after the whole body, before the answer.
    let capture = std::fs::read(examples().join("vpc-demo.pcap")).unwrap();
    for _ in 0..5 {
        drop(start_upload(
            &server.addr,
            &t,
            capture.len() as u64,
            &capture,
        ));
    }
    wait_for_no_spool_files(dir.path());
    healthy(&server);
}

/// Hardening finding 5: 1 GB of zeros was spooled before `not a pcap`;
/// uploads had no size limit.
#[test]
fn junk_is_refused_at_its_first_bytes_and_an_upload_over_the_limit_gets_413() {
    let dir = tempfile::tempdir().unwrap();
    let mut args = database_args(dir.path());
    args.extend(["--max-upload".to_string(), "1".to_string()]);
    let server = Server::start_on(dir.path(), &args);
    let t = token(dir.path(), PROJECT);
    let asked = Instant::now();
    let raw = answer(start_upload(&server.addr, &t, 1 << 30, &vec![0u8; 65536]));
    assert!(raw.starts_with("HTTP/1.1 400"), "{raw}");
    assert!(
        raw.contains("not a pcap or pcapng capture (starts with 00 00 00 00)"),
        "{raw}"
    );
    assert!(
        asked.elapsed() < Duration::from_secs(5),
        "{:?}",
        asked.elapsed()
    );
    let mut big = pcap_header();
    big.resize(2 << 20, 0);
    let raw = answer(start_upload(&server.addr, &t, big.len() as u64, &big));
    assert!(raw.starts_with("HTTP/1.1 413"), "{raw}");
    assert!(
        raw.contains("VPC.0413") && raw.contains("upload limit of 1048576 bytes"),
        "{raw}"
    );
    wait_for_no_spool_files(dir.path());
    // Under the limit, a capture is taken.
    let capture = std::fs::read(examples().join("vpc-demo.pcap")).unwrap();
    assert!(capture.len() < 1 << 20);
    let (s, v) = server.upload(&format!("/v1/{PROJECT}/captures"), Some(&t), &capture);
    assert_eq!(s, 200, "{v}");
}

/// Hardening finding 5: `control.db` and the store were created 0644.
#[test]
fn the_servers_files_are_its_own() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let (server, _) = server_with_records(dir.path(), &[]);
    drop(server);
    let mut stack = vec![dir.path().to_path_buf()];
    let mut seen = 0;
    while let Some(p) = stack.pop() {
        let meta = std::fs::symlink_metadata(&p).unwrap();
        if p != dir.path() {
            let mode = meta.permissions().mode() & 0o777;
            assert_eq!(mode & 0o077, 0, "{} is {mode:o}", p.display());
            seen += 1;
        }
        if meta.is_dir() {
            stack.extend(std::fs::read_dir(&p).unwrap().flatten().map(|e| e.path()));
        }
    }
    assert!(seen > 5, "{seen} files");
}

/// A connection from `source` (any address of 127.0.0.0/8) to `addr`.
fn connect_from(source: &str, addr: &str) -> TcpStream {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let s = rt.block_on(async {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.bind(format!("{source}:0").parse().unwrap()).unwrap();
        socket.connect(addr.parse().unwrap()).await.unwrap()
    });
    let s = s.into_std().unwrap();
    // Tokio hands the socket over non-blocking.
    s.set_nonblocking(false).unwrap();
    s
}

/// Hardening finding 5: 1,100 half-sent requests (no token needed) made
/// `/health` time out for over a minute. One client's connections are
/// capped, the rest of the world is served, and a client that does not
/// finish its headers is cut off.
#[test]
fn slow_clients_do_not_block_other_clients() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let mut slow = Vec::new();
    for _ in 0..1100 {
        let mut s = connect_from("127.0.0.2", &server.addr);
        let _ = s.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n");
        slow.push(s);
    }
    for _ in 0..3 {
        let asked = Instant::now();
        let raw = raw_get(&server.addr, "/health");
        assert!(raw.starts_with("HTTP/1.1 200"), "{raw}");
        assert!(
            asked.elapsed() < Duration::from_secs(2),
            "{:?}",
            asked.elapsed()
        );
    }
    // The slow client's connections past its cap were closed at once, and
    // the rest once the header timeout passed.
    let cut = Instant::now();
    for s in &mut slow {
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        let mut buf = [0u8; 512];
        let n = match s.read(&mut buf) {
            Ok(n) => n,
            // Closed by the server with the half-sent request unread.
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => 0,
            Err(e) => panic!("still open after {:?}: {e}", cut.elapsed()),
        };
        let text = String::from_utf8_lossy(&buf[..n]);
        assert!(n == 0 || text.starts_with("HTTP/1.1 408"), "{text}");
    }
    assert!(
        cut.elapsed() < Duration::from_secs(15),
        "{:?}",
        cut.elapsed()
    );
}

/// Found by schemathesis on PostgreSQL: a `marker` holding `%00` was a 500
/// (PostgreSQL stores no NUL in text). A NUL anywhere is a 400 now, and
/// so is a field past its length.
#[test]
fn nul_characters_and_overlong_fields_are_refused_with_400s() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let t = token(dir.path(), PROJECT);
    let (s, v) = server.request(
        "GET",
        &format!("/v1/{PROJECT}/subnets?marker=a%00b&limit=5"),
        Some(&t),
        None,
    );
    assert_eq!((s, v["code"].as_str()), (400, Some("VPC.3001")), "{v}");
    assert!(v["message"].as_str().unwrap().contains("NUL"), "{v}");
    let (s, v) = server.request(
        "POST",
        &format!("/v1/{PROJECT}/vpcs"),
        Some(&t),
        Some(&json!({"vpc": {"name": "a\u{0}b", "cidr": "10.9.0.0/16"}})),
    );
    assert_eq!(s, 400, "{v}");
    assert!(
        v["message"].as_str().unwrap().contains("name: a NUL"),
        "{v}"
    );
    // Hardening finding 5: a 1 MiB VPC description was accepted.
    let (s, v) = server.request(
        "POST",
        &format!("/v1/{PROJECT}/vpcs"),
        Some(&t),
        Some(&json!({"vpc": {"description": "d".repeat(1 << 20), "cidr": "10.9.0.0/16"}})),
    );
    assert_eq!(s, 400, "{v}");
    assert!(
        v["message"]
            .as_str()
            .unwrap()
            .contains("description: 1048576 characters; at most 1024"),
        "{v}"
    );
    let (s, v) = server.request(
        "POST",
        &format!("/v1/{PROJECT}/fl/flow_logs"),
        Some(&t),
        Some(
            &json!({"flow_log": {"name": "n", "description": "a\u{0}b", "resource_type": "vpc",
            "resource_id": "80ee2ed7-605d-49b4-ac6b-6e581acd35a3", "traffic_type": "all",
            "log_group_id": GROUP, "log_topic_id": TOPIC}}),
        ),
    );
    assert_eq!(s, 400, "{v}");
    assert!(
        v["message"].as_str().unwrap().contains("description"),
        "{v}"
    );
    healthy(&server);
}

/// A GET of `path` with `token` from `source`: the status line and the
/// answer's headers and body.
fn get_from(source: &str, addr: &str, path: &str, token: &str) -> String {
    let mut s = connect_from(source, addr);
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: x\r\nX-Auth-Token: {token}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut answer = String::new();
    s.read_to_string(&mut answer).unwrap();
    answer
}

/// Hardening finding 5: failed tokens were not throttled. An address that
/// sends `--auth-failures` unknown tokens gets 429 with Retry-After, good
/// token or not, while another address keeps its answers.
#[test]
fn an_address_guessing_tokens_is_throttled_and_others_are_not() {
    let dir = tempfile::tempdir().unwrap();
    let limit = 7;
    let mut extra = database_args(dir.path());
    extra.extend(["--auth-failures".to_string(), limit.to_string()]);
    let server = Server::start_on(dir.path(), &extra);
    let good = token(dir.path(), "p1");
    let path = "/v1/p1/fl/flow_logs";
    for i in 0..limit {
        let a = get_from("127.0.0.3", &server.addr, path, &format!("guess-{i}"));
        assert!(a.starts_with("HTTP/1.1 401"), "guess {i}: {a}");
    }
    for t in ["guess-again", good.as_str()] {
        let a = get_from("127.0.0.3", &server.addr, path, t);
        assert!(a.starts_with("HTTP/1.1 429"), "{a}");
        assert!(a.contains("APIGW.0429"), "{a}");
        let retry = a
            .lines()
            .find_map(|l| {
                l.to_ascii_lowercase()
                    .strip_prefix("retry-after: ")
                    .map(str::to_string)
            })
            .unwrap_or_else(|| panic!("no Retry-After: {a}"));
        let secs: u64 = retry.trim().parse().unwrap();
        assert!((1..=60).contains(&secs), "{secs}");
    }
    // Another address: its good token works, its bad one is a plain 401.
    let a = get_from("127.0.0.4", &server.addr, path, &good);
    assert!(a.starts_with("HTTP/1.1 200"), "{a}");
    let a = get_from("127.0.0.4", &server.addr, path, "one-guess");
    assert!(a.starts_with("HTTP/1.1 401"), "{a}");
    healthy(&server);
}

/// Hardening finding 5: an idle keep-alive connection must not be held
/// for good. After an answered request, a client that sends nothing more
/// is closed once the header timeout (10 s) passes, as one that never
/// finishes its first request's headers is.
#[test]
fn an_idle_keep_alive_connection_is_closed_after_the_header_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let mut s = connect_from("127.0.0.5", &server.addr);
    s.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let mut buf = [0u8; 1024];
    let n = s.read(&mut buf).unwrap();
    assert!(buf[..n].starts_with(b"HTTP/1.1 200"));
    let idle = Instant::now();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let n = match s.read(&mut buf) {
        Ok(n) => n,
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => 0,
        Err(e) => panic!("still open after {:?}: {e}", idle.elapsed()),
    };
    assert_eq!(n, 0, "{}", String::from_utf8_lossy(&buf[..n]));
    let waited = idle.elapsed();
    assert!(
        waited >= Duration::from_secs(8) && waited < Duration::from_secs(15),
        "closed after {waited:?}"
    );
}
