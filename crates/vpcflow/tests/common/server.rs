//! A real `vpcflow serve` for the API tests, and a minimal HTTP/1.1 client.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Stdio};

use serde_json::Value;

use super::{examples, vpcflow};

/// A `vpcflow serve` process, killed when dropped.
pub struct Server {
    pub child: Child,
    pub addr: String,
}

/// The control-plane database of the test servers whose data directory is
/// `data`: `None` (SQLite, `DIR/control.db`) unless
/// `VPCFLOW_TEST_CONTROL_DB=postgres`, which gives each data directory a
/// database of its own on the server `VPCFLOW_TEST_POSTGRES` names
/// (`scripts/test.sh` starts one and runs the API suites both ways).
pub fn database_url(data: &Path) -> Option<String> {
    match std::env::var("VPCFLOW_TEST_CONTROL_DB").as_deref() {
        Err(_) | Ok("") | Ok("sqlite") => None,
        Ok("postgres") => Some(postgres_database(&format!("{}", data.display()))),
        Ok(other) => panic!("VPCFLOW_TEST_CONTROL_DB={other}: expected sqlite or postgres"),
    }
}

/// A database named after `key` on the test PostgreSQL server (`vpcflow
/// serve` creates it when it first connects).
pub fn postgres_database(key: &str) -> String {
    use std::hash::{Hash, Hasher};
    let server = std::env::var("VPCFLOW_TEST_POSTGRES").expect(
        "this test needs a PostgreSQL server: set VPCFLOW_TEST_POSTGRES=postgres://USER@127.0.0.1:PORT \
         (scripts/test.sh starts one with scripts/postgres.sh)",
    );
    // A fixed-key hash: the same directory names the same database in
    // every process of the test (server, token command, restarts).
    let mut h = std::hash::DefaultHasher::new();
    key.hash(&mut h);
    format!(
        "{}/vpcflow_test_{:016x}",
        server.trim_end_matches('/'),
        h.finish()
    )
}

/// `--database URL` for `data`'s control plane, or nothing (SQLite).
pub fn database_args(data: &Path) -> Vec<String> {
    database_url(data)
        .map(|u| vec!["--database".to_string(), u])
        .unwrap_or_default()
}

impl Server {
    pub fn start(data: &Path) -> Server {
        Server::start_on(data, &database_args(data))
    }

    /// A server on `data` with extra flags (`--database URL`).
    pub fn start_on(data: &Path, extra: &[String]) -> Server {
        let mut child = vpcflow()
            .args(["serve", "--listen", "127.0.0.1:0", "--data"])
            .arg(data)
            .arg("--config")
            .arg(examples().join("vpc.toml"))
            .args(extra)
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let addr = loop {
            let line = lines
                .next()
                .expect("serve exited before listening")
                .unwrap();
            if let Some(a) = line.split("http://").nth(1) {
                break a.trim().to_string();
            }
        };
        // Keep draining stderr so the server never blocks on it.
        std::thread::spawn(move || for _ in lines {});
        Server { child, addr }
    }

    pub fn request(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<&Value>,
    ) -> (u16, Value) {
        let body = body.map(|b| b.to_string().into_bytes());
        request(&self.addr, method, path, token, body.as_deref())
    }

    /// `POST`s raw bytes (a capture).
    pub fn upload(&self, path: &str, token: Option<&str>, bytes: &[u8]) -> (u16, Value) {
        request(&self.addr, "POST", path, token, Some(bytes))
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One HTTP/1.1 request on a fresh connection; the answer's body as JSON
/// (Null if empty).
pub fn request(
    addr: &str,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&[u8]>,
) -> (u16, Value) {
    let mut headers = vec![("Content-Type", "application/json")];
    if let Some(t) = token {
        headers.push(("X-Auth-Token", t));
    }
    let (status, raw) = send(addr, method, path, &headers, body.unwrap_or(b""));
    let payload = raw.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    let json = if payload.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(payload).unwrap_or_else(|e| panic!("{e}: {raw}"))
    };
    (status, json)
}

/// One HTTP/1.1 request with `headers` on a fresh connection: the status
/// and the whole raw answer.
pub fn send(
    addr: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> (u16, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    s.write_all(head.as_bytes()).unwrap();
    s.write_all(body).unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    let raw = String::from_utf8_lossy(&raw).into_owned();
    (raw[9..12].parse().unwrap(), raw)
}

pub fn token(data: &Path, project: &str) -> String {
    token_on(data, project, &database_args(data))
}

/// A token from `vpcflow token create` with extra flags (`--database URL`).
pub fn token_on(data: &Path, project: &str, extra: &[String]) -> String {
    token_made(data, &["--project", project], extra)
}

/// The token for the fleet's agent on `host` (`token create --agent`).
pub fn agent_token(data: &Path, host: &str) -> String {
    token_made(data, &["--agent", host], &database_args(data))
}

/// What `vpcflow token create WHO --data DATA EXTRA` prints.
fn token_made(data: &Path, who: &[&str], extra: &[String]) -> String {
    let out = vpcflow()
        .args(["token", "create"])
        .args(who)
        .arg("--data")
        .arg(data)
        .args(extra)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// Everything the control plane has stored, as bytes: the SQLite file and
/// its write-ahead log, or a data dump of the PostgreSQL database.
pub fn stored_bytes(data: &Path) -> Vec<u8> {
    match database_url(data) {
        None => {
            let mut bytes = std::fs::read(data.join("control.db")).unwrap();
            bytes.extend(std::fs::read(data.join("control.db-wal")).unwrap_or_default());
            bytes
        }
        Some(url) => {
            let out = std::process::Command::new("pg_dump")
                .args(["--data-only", &url])
                .output()
                .expect("pg_dump (Debian's postgresql-client) runs");
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            assert!(!out.stdout.is_empty());
            out.stdout
        }
    }
}

/// A `GET` without a token; the whole raw answer (status line, headers,
/// body) as text.
pub fn raw_get(addr: &str, path: &str) -> String {
    let mut s = TcpStream::connect(addr).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut raw = String::new();
    s.read_to_string(&mut raw).unwrap();
    raw
}
