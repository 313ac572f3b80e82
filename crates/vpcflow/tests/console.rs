//! The web console of a real `vpcflow serve`: its files served with their
//! types and caching, then the console driven in headless Chromium
//! (Debian's `chromium` and `chromium-driver`, `scripts/setup.sh test`) by
//! `tests/console/console.py`: sign in, flow logs made, renamed, disabled
//! and deleted, the demo capture's records searched, the charts' totals
//! against the API's, an attack's findings and their records, the live
//! tail, another project's token seeing none of it, a narrow window and
//! the keyboard, and no console errors. Each step's screenshot is kept in
//! `$CARGO_TARGET_TMPDIR/console-screenshots/`.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;

use vpcflow_tools::attacks::write_capture;

mod common;
use common::server::{Server, raw_get, token};
use common::{examples, test_python};

const PROJECT: &str = "5f67944957444bd6bb4fe3b367de8f3d";

/// The head of a `GET` answer (status line and headers), lower-cased.
fn head_of(raw: &str) -> String {
    raw.split("\r\n\r\n").next().unwrap().to_lowercase()
}

fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines()
        .find_map(|l| l.strip_prefix(&format!("{name}: ")))
        .map(str::trim)
}

#[test]
fn the_console_is_served_from_the_binary_with_its_types_and_tags() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    for (path, ty) in [
        ("/", "text/html; charset=utf-8"),
        ("/console/console.js", "text/javascript; charset=utf-8"),
        ("/console/charts.js", "text/javascript; charset=utf-8"),
        ("/console/console.css", "text/css; charset=utf-8"),
        ("/console/icon.svg", "image/svg+xml"),
        ("/console/fields.json", "application/json"),
    ] {
        let raw = raw_get(&server.addr, path);
        let head = head_of(&raw);
        assert!(head.starts_with("http/1.1 200"), "{path}: {head}");
        assert_eq!(header(&head, "content-type"), Some(ty), "{path}");
        assert_eq!(header(&head, "cache-control"), Some("no-cache"), "{path}");
        assert_eq!(header(&head, "x-content-type-options"), Some("nosniff"));
        let csp = header(&head, "content-security-policy").unwrap();
        assert!(csp.contains("default-src 'none'") && csp.contains("script-src 'self'"));
        // The same tag again: 304, no body.
        let tag = header(&head, "etag").unwrap().to_string();
        let mut s = TcpStream::connect(&server.addr).unwrap();
        write!(
            s,
            "GET {path} HTTP/1.1\r\nHost: x\r\nIf-None-Match: {tag}\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut again = String::new();
        s.read_to_string(&mut again).unwrap();
        assert!(again.starts_with("HTTP/1.1 304"), "{path}: {again}");
        assert!(again.ends_with("\r\n\r\n"), "{path}: a 304 has no body");
    }
    // The page names only its own files; the API is not opened by it.
    let page = raw_get(&server.addr, "/");
    assert!(page.contains("<script src=\"/console/console.js\" defer></script>"));
    assert!(!page.contains("https://"));
    // The API is where it was, and unknown paths are still the API's 404.
    let missing = raw_get(&server.addr, "/console/nothing.js");
    assert!(missing.starts_with("HTTP/1.1 404"), "{missing}");
    assert!(missing.contains("VPC.0404"), "{missing}");
}

#[test]
fn a_token_alone_says_its_project() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let t = token(dir.path(), PROJECT);
    let (s, v) = server.request("GET", "/v1/auth/token", Some(&t), None);
    assert_eq!(
        (s, v["token"]["project"]["id"].as_str()),
        (200, Some(PROJECT))
    );
    let other = token(dir.path(), "another-project");
    let (s, v) = server.request("GET", "/v1/auth/token", Some(&other), None);
    assert_eq!(
        (s, v["token"]["project"]["id"].as_str()),
        (200, Some("another-project"))
    );
    let (s, v) = server.request("GET", "/v1/auth/token", Some("nonsense"), None);
    assert_eq!((s, v["code"].as_str()), (401, Some("APIGW.0301")));
    let (s, v) = server.request("GET", "/v1/auth/token", None, None);
    assert_eq!((s, v["code"].as_str()), (401, Some("APIGW.0301")));
}

/// Needs Debian's `chromium` and `chromium-driver` and the tests' venv
/// (selenium), which `scripts/setup.sh test` installs (as for the other
/// tests that use the venv); fails saying so when they are missing.
#[test]
fn the_console_in_a_real_browser() {
    for needed in ["/usr/bin/chromium", "/usr/bin/chromedriver"] {
        assert!(
            std::path::Path::new(needed).exists(),
            "{needed}: missing; scripts/setup.sh test installs chromium and chromium-driver"
        );
    }
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let own = token(dir.path(), PROJECT);
    let other = token(dir.path(), "another-project");
    let attacks = dir.path().join("attacks.pcap");
    write_capture(&attacks, true).unwrap();
    let shots = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("console-screenshots");
    let _ = std::fs::remove_dir_all(&shots);
    let script =
        std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/console/console.py");
    let o = Command::new(test_python())
        .arg(script)
        .arg(format!("http://{}", server.addr))
        .args([PROJECT, &own, &other])
        .arg(examples().join("vpc-demo.pcap"))
        .arg(&attacks)
        .arg(&shots)
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{said}");
    assert!(said.contains("9 steps passed"), "{said}");
    // A screenshot of each step, each a PNG.
    let pngs: Vec<_> = std::fs::read_dir(&shots)
        .unwrap()
        .map(|e| std::fs::read(e.unwrap().path()).unwrap())
        .collect();
    assert!(pngs.len() >= 9, "{} screenshots", pngs.len());
    assert!(pngs.iter().all(|p| p.starts_with(b"\x89PNG\r\n")));
}
