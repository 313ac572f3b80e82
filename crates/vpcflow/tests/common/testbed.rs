//! The live tests' testbed: [`vpcflow_tools::testbed`] of
//! `tests/live/testbed.toml` or another inventory (namespaces, veths,
//! bridges, nftables), taken down when dropped.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime};

/// `tests/live/testbed.toml`.
pub fn inventory() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/live/testbed.toml")
}

/// Runs `cmd`, which must succeed; its stdout.
pub fn ok(cmd: &mut Command) -> String {
    let o = cmd.output().unwrap();
    assert!(
        o.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// The testbed of one test run (its namespace prefix and inventory), taken
/// down when dropped (even on failure).
pub struct Testbed(pub String, PathBuf);

impl Testbed {
    /// The testbed of `tests/live/testbed.toml`.
    pub fn up(tag: &str) -> Testbed {
        Testbed::up_with(tag, inventory())
    }
    /// The testbed of `inventory`.
    pub fn up_with(tag: &str, inventory: PathBuf) -> Testbed {
        let prefix = format!("vl{tag}{}", std::process::id() % 100_000);
        vpcflow_tools::testbed::build(&prefix, &inventory)
            .unwrap_or_else(|e| panic!("testbed {prefix}: {e:#}"));
        Testbed(prefix, inventory)
    }
    /// `program` run in the testbed's host namespace (where the ports'
    /// host-side interfaces are, as on a hypervisor).
    pub fn in_host(&self, program: &str) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &format!("{}-host", self.0), program]);
        c
    }
    /// `program` run in the namespace of `what`: a port id, `host` (the
    /// router's host side) or `host:NAME` (a fleet host's).
    pub fn in_namespace(&self, what: &str, program: &str) -> Command {
        let ns = vpcflow_tools::testbed::namespace(&self.0, &self.1, what)
            .unwrap_or_else(|e| panic!("testbed {}: {e:#}", self.0));
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &ns, program]);
        c
    }
    /// A host-side veth's kernel counter (`rx_bytes`, `tx_packets`, ...).
    pub fn counter(&self, interface: &str, name: &str) -> u64 {
        ok(self
            .in_host("cat")
            .arg(format!("/sys/class/net/{interface}/statistics/{name}")))
        .trim()
        .parse()
        .unwrap()
    }
    /// Packets and layer-3 bytes both ways on a host-side veth.
    pub fn veth_l3(&self, interface: &str) -> (u64, u64) {
        let packets = self.counter(interface, "rx_packets") + self.counter(interface, "tx_packets");
        let bytes = self.counter(interface, "rx_bytes") + self.counter(interface, "tx_bytes");
        (packets, bytes - 14 * packets)
    }
    /// Starts a Python server in port B's namespace and returns once it is
    /// bound: the script prints `bound` on stderr after its bind (or
    /// listen), so traffic sent next cannot find the port closed however
    /// slow the machine. Its output is what it prints when done.
    pub fn serve_on_b(&self, script: &str) -> std::process::Child {
        assert!(script.contains(BOUND), "the script must print {BOUND:?}");
        let mut child = Command::new("ip")
            .args(["netns", "exec", &format!("{}-p1", self.0), "python3", "-c"])
            .arg(script)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            use std::io::BufRead;
            for line in std::io::BufReader::new(stderr)
                .lines()
                .map_while(Result::ok)
            {
                if line == "bound" {
                    let _ = tx.send(());
                } else {
                    eprintln!("server on B: {line}");
                }
            }
        });
        rx.recv_timeout(Duration::from_secs(20))
            .expect("the server on B did not bind within 20 s");
        child
    }
    /// Runs `args` in port `port`'s namespace (`host`: the host side),
    /// which must succeed; its stdout.
    pub fn exec(&self, port: &str, args: &[&str]) -> String {
        ok(self.in_namespace(port, args[0]).args(&args[1..]))
    }
}

/// What a [`Testbed::serve_on_b`] script runs once bound.
pub const BOUND: &str = "import sys;print('bound',file=sys.stderr,flush=True)";

impl Drop for Testbed {
    fn drop(&mut self) {
        if let Err(e) = vpcflow_tools::testbed::down(&self.0) {
            eprintln!("testbed {}: {e:#}", self.0);
        }
    }
}

/// Unix time in seconds.
pub fn now() -> f64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

/// Sleeps until `at` (Unix seconds).
pub fn sleep_until(at: f64) {
    let d = at - now();
    if d > 0.0 {
        std::thread::sleep(Duration::from_secs_f64(d));
    }
}
