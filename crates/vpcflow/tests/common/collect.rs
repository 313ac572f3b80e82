//! A `vpcflow collect` for the tests: started on free loopback ports,
//! given what an exporter sends, stopped with SIGTERM (it writes its open
//! windows then), and killed if a test fails before that.

use std::io::{BufRead, BufReader, Read};
use std::process::{Command, Stdio};
use std::time::Duration;

use super::{Running, vpcflow};

/// The records `vpcflow collect --listen 127.0.0.1:0 ARGS --format FORMAT`
/// makes of what `export` sends to the addresses it is given (UDP, then
/// TCP if ARGS has `--listen-tcp`), and what it said on stderr.
pub fn collect_with(
    args: &[String],
    format: &str,
    export: impl FnOnce(&[String]),
) -> (String, String) {
    let mut running = Running(Some(
        vpcflow()
            .args(["collect", "--listen", "127.0.0.1:0"])
            .args(args)
            .args(["--format", format])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    ));
    let child = running.child();
    let mut err = BufReader::new(child.stderr.take().unwrap());
    let listeners = if args.iter().any(|a| a == "--listen-tcp") {
        2
    } else {
        1
    };
    let addrs: Vec<String> = (0..listeners)
        .map(|_| {
            let mut line = String::new();
            err.read_line(&mut line).unwrap();
            line.split_whitespace()
                .find(|w| w.starts_with("127.0.0.1:"))
                .unwrap_or_else(|| panic!("no address in {line:?}"))
                .to_string()
        })
        .collect();
    export(&addrs);
    // What was sent is a few datagrams on loopback; then the collector
    // stops on SIGTERM and writes what it holds.
    std::thread::sleep(Duration::from_millis(500));
    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let out = running.take().wait_with_output().unwrap();
    let mut rest = String::new();
    err.read_to_string(&mut rest).unwrap();
    assert!(out.status.success(), "collect: {rest}");
    (String::from_utf8(out.stdout).unwrap(), rest)
}
