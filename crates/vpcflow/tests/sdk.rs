//! The seed cloud's SDK against `vpcflow serve`, unchanged: its Python SDK
//! (`tests/sdk/flow_logs.py`, pinned in `tests/python-requirements.txt`,
//! in the venv `scripts/setup.sh test` makes) signs every request with an
//! access key from `vpcflow token create --access-key`; and signed
//! requests the SDK would never send (a stale date, another project's
//! `X-Project-Id`, a wrong secret) refused, naming why; every response
//! with an `X-Request-Id`.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;

use vpcflow_control::signing;

mod common;
use common::server::Server;
use common::vpcflow;

const PROJECT: &str = "5f67944957444bd6bb4fe3b367de8f3d";

/// The access key and secret `vpcflow token create --access-key` prints.
fn access_key(data: &Path, project: &str) -> (String, String) {
    let o = vpcflow()
        .args([
            "token",
            "create",
            "--access-key",
            "--project",
            project,
            "--data",
        ])
        .arg(data)
        .args(common::server::database_args(data))
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let out = String::from_utf8(o.stdout).unwrap();
    let field = |name: &str| {
        out.lines()
            .find_map(|l| l.strip_prefix(name))
            .unwrap_or_else(|| panic!("no {name} in {out:?}"))
            .trim()
            .to_string()
    };
    (field("access_key "), field("secret_key "))
}

/// Runs `tests/sdk/NAME` in the tests' venv; it must pass every check.
fn sdk_script(name: &str, args: &[&str]) {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/sdk")
        .join(name);
    let o = Command::new(common::test_python())
        .arg(script)
        .args(args)
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success() && out.contains("all checks passed"),
        "{name}: {out}{}",
        String::from_utf8_lossy(&o.stderr)
    );
}

#[test]
fn the_seed_clouds_python_sdk_works_unchanged_with_an_access_key() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let server = Server::start(&data);
    let (ak, sk) = access_key(&data, PROJECT);
    let (other_ak, other_sk) = access_key(&data, "other-project");
    let endpoint = format!("http://{}", server.addr);
    sdk_script(
        "flow_logs.py",
        &[
            &endpoint,
            PROJECT,
            &ak,
            &sk,
            "other-project",
            &other_ak,
            &other_sk,
        ],
    );
    // Network ACLs on the cloud's v3 path, through its v3 client; the
    // example VPC's subnet-db has no ACL of its own.
    sdk_script(
        "firewalls.py",
        &[
            &endpoint,
            PROJECT,
            &ak,
            &sk,
            "c1e4a0b2-7d5f-4e8a-b3c6-9f0a1d2e3b4c",
        ],
    );
    // The secret is in the database only sealed.
    let db = std::fs::read(data.join("control.db")).unwrap_or_default();
    let wal = std::fs::read(data.join("control.db-wal")).unwrap_or_default();
    for bytes in [db, wal] {
        assert!(
            !bytes.windows(sk.len()).any(|w| w == sk.as_bytes()),
            "the secret key is stored in the clear"
        );
    }
}

/// A `GET` of the flow logs signed with `sk` as the SDK signs, with
/// `date` and extra headers; its status and body.
fn signed_get(addr: &str, ak: &str, sk: &str, date: &str, extra: &[(&str, &str)]) -> (u16, String) {
    let path = format!("/v1/{PROJECT}/fl/flow_logs");
    let mut headers: Vec<(String, String)> = vec![
        ("host".into(), addr.into()),
        ("x-sdk-date".into(), date.into()),
    ];
    headers.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    headers.sort();
    let names: Vec<String> = headers.iter().map(|(k, _)| k.clone()).collect();
    let received = signing::Received {
        method: "GET",
        path: &path,
        query: Some("limit=5"),
        body_hash: &signing::body_hash(b""),
    };
    let canonical = signing::canonical_request(&received, &names, |n| {
        headers
            .iter()
            .find(|(k, _)| k == n)
            .map(|(_, v)| v.as_str())
    })
    .unwrap();
    let signature = signing::sign(sk, &signing::string_to_sign(date, &canonical));
    let mut head = format!(
        "GET {path}?limit=5 HTTP/1.1\r\nConnection: close\r\nAuthorization: SDK-HMAC-SHA256 Access={ak}, SignedHeaders={}, Signature={signature}\r\n",
        names.join(";")
    );
    for (k, v) in &headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    let mut s = TcpStream::connect(addr).unwrap();
    s.write_all(head.as_bytes()).unwrap();
    let mut raw = String::new();
    s.read_to_string(&mut raw).unwrap();
    let status = raw[9..12].parse().unwrap();
    (
        status,
        raw.split_once("\r\n\r\n")
            .map_or("", |(_, b)| b)
            .to_string(),
    )
}

#[test]
fn signed_requests_are_refused_for_a_stale_date_or_another_projects_header() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let server = Server::start(&data);
    let (ak, sk) = access_key(&data, PROJECT);
    let now = chrono_now();
    let (status, body) = signed_get(&server.addr, &ak, &sk, &now, &[("x-project-id", PROJECT)]);
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("flow_logs"), "{body}");
    let (status, body) = signed_get(&server.addr, &ak, &sk, "20200101T000000Z", &[]);
    assert_eq!(status, 401, "{body}");
    assert!(body.contains("more than 15 minutes"), "{body}");
    let (status, body) = signed_get(
        &server.addr,
        &ak,
        &sk,
        &now,
        &[("x-project-id", "someone-else")],
    );
    assert_eq!(status, 401, "{body}");
    assert!(body.contains("X-Project-Id someone-else"), "{body}");
    let (status, body) = signed_get(&server.addr, &ak, "not-the-secret", &now, &[]);
    assert_eq!(status, 401, "{body}");
    assert!(body.contains("verify aksk signature fail"), "{body}");
    // Every response names its request, distinct each time.
    let ids: Vec<String> = ["/health", "/v1/p/fl/flow_logs", "/nowhere"]
        .iter()
        .map(|path| {
            let raw = common::server::raw_get(&server.addr, path);
            raw.lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("x-request-id: ")
                        .map(str::to_string)
                })
                .unwrap_or_else(|| panic!("no X-Request-Id: {raw}"))
        })
        .collect();
    assert!(
        ids.iter().all(|i| i.len() == 32) && ids[0] != ids[1] && ids[1] != ids[2],
        "{ids:?}"
    );
}

/// Now as `yyyyMMddTHHmmssZ` (the test's own clock: `date -u`).
fn chrono_now() -> String {
    let o = Command::new("date")
        .args(["-u", "+%Y%m%dT%H%M%SZ"])
        .output()
        .unwrap();
    String::from_utf8(o.stdout).unwrap().trim().to_string()
}
