//! The testbed's own commands: what `up` refuses, and `exec` as the
//! command it runs (SPEC §1, "Where a port is observed").

use std::io::{BufRead, BufReader};
use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn live_inventory() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/live/testbed.toml")
}

/// A port whose interface the testbed would build as a veth's host end,
/// but which does not say `host_side = true`, is refused by name before
/// anything is built (no root needed: nothing is).
#[test]
fn the_testbed_refuses_ports_that_are_not_host_side() {
    let text = std::fs::read_to_string(live_inventory()).unwrap();
    let mut dropped = 0;
    let changed: String = text
        .lines()
        .filter(|l| {
            let drop = l.trim() == "host_side = true" && dropped == 0;
            dropped += usize::from(drop);
            !drop
        })
        .map(|l| format!("{l}\n"))
        .collect();
    assert_eq!(dropped, 1, "the live inventory says host_side = true");
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("bed.toml");
    std::fs::write(&config, changed).unwrap();
    let inv = vpcflow_core::Inventory::read(&config).unwrap();
    let port = inv
        .ports
        .iter()
        .find(|p| p.interface.is_some() && p.host_side != Some(true))
        .unwrap();
    let err = vpcflow_tools::testbed::build("vtref", &config)
        .expect_err("a port that is not host side")
        .to_string();
    assert!(err.contains("host_side = true"), "{err}");
    assert!(err.contains(&port.id), "{err}");
}

/// `testbed exec` is replaced by its command: a SIGTERM sent to its pid
/// (a supervisor's stop) reaches the command, whose exit status is the
/// process's.
#[test]
#[ignore = "needs root and network namespaces: scripts/test.sh runs it as root"]
fn a_signal_to_testbed_exec_reaches_its_command() {
    let prefix = format!("vx{}", std::process::id() % 100_000);
    vpcflow_tools::testbed::build(&prefix, &live_inventory()).unwrap();
    let _down = Down(prefix.clone());
    let script = "trap 'kill $!; echo got-term; exit 7' TERM; echo ready; sleep 60 & wait";
    let mut child = Command::new(env!("CARGO_BIN_EXE_vpcflow-tools"))
        .args(["testbed", "--prefix", &prefix, "exec", "--config"])
        .arg(live_inventory())
        .args(["host", "--", "sh", "-c", script])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    assert_eq!(lines.next().unwrap().unwrap(), "ready");
    let sent = Instant::now();
    terminate(child.id());
    let status = child.wait().unwrap();
    assert!(
        sent.elapsed() < Duration::from_secs(5),
        "{:?}",
        sent.elapsed()
    );
    assert_eq!(
        lines.next().map(Result::unwrap).as_deref(),
        Some("got-term")
    );
    assert_eq!((status.code(), status.signal()), (Some(7), None));
}

fn terminate(pid: u32) {
    let ok = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap();
    assert!(ok.success());
}

struct Down(String);

impl Drop for Down {
    fn drop(&mut self) {
        let _ = vpcflow_tools::testbed::down(&self.0);
    }
}
