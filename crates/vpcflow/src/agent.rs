//! `vpcflow agent`: flags to the runtime's [`vpcflow_runtime::Agent`], an
//! inventory file as its inventory, closed windows into the log store. The
//! capture itself (eBPF or AF_PACKET, taps reopened when their interface
//! comes back, losses as SKIPDATA) is [`vpcflow_runtime::LiveSource`];
//! inventory generations and windows are [`vpcflow_runtime::Driver`]'s.
//!
//! The inventory (a file; the model of this host from the fleet's server,
//! `--server URL --token TOKEN`; or the control plane's database under
//! `vpcflow serve --live`) is re-read when it changes; the new one applies from the
//! next capture window. SIGINT/SIGTERM flush the open window as a partial
//! one: its records keep the window's `end`, and its store file names carry
//! `-partial`.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, SystemTime};

use anyhow::{Context, Result};
use clap::{Args, ValueEnum};
use vpcflow_core::Inventory;
use vpcflow_core::time::WindowLength;
use vpcflow_runtime::{
    Agent, AgentSettings, CaptureKind, InventorySource, LiveConfig, SharedStore, SourceError,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum CaptureArg {
    /// In-kernel aggregation by a TC eBPF program.
    Ebpf,
    /// A TPACKET_V3 AF_PACKET ring per interface.
    #[value(alias = "af_packet")]
    AfPacket,
}

/// Flags of `vpcflow agent`.
#[derive(Debug, Args)]
pub struct AgentArgs {
    /// The inventory (re-read when it changes).
    #[cfg_attr(
        feature = "server",
        arg(
            long,
            value_name = "FILE",
            required_unless_present = "server",
            conflicts_with = "server"
        )
    )]
    #[cfg_attr(
        not(feature = "server"),
        arg(long, value_name = "FILE", required = true)
    )]
    config: Option<PathBuf>,
    /// The fleet's server (`http://HOST:PORT`): the model of this host's
    /// ports is fetched from it and followed as it changes, instead of
    /// an inventory file.
    #[cfg(feature = "server")]
    #[arg(long, value_name = "URL", requires = "token")]
    server: Option<String>,
    /// The agent token (`vpcflow token create --agent HOST`).
    #[cfg(feature = "server")]
    #[arg(long, env = "VPCFLOW_AGENT_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// This host's name: checked against the one the token is bound to.
    #[cfg(feature = "server")]
    #[arg(long, value_name = "NAME")]
    host: Option<String>,
    /// With --server: the most the store (then the spool of windows not
    /// yet sent) holds: bytes, or with KiB, MiB or GiB after the number.
    /// The oldest windows that fit stay; each newer one is counted as
    /// lost and reduced to SKIPDATA records with its totals (kept in an
    /// eighth more, at least 1 MiB), sent once the server answers;
    /// capture goes on.
    #[cfg(feature = "server")]
    #[arg(long, value_name = "SIZE", default_value = "1GiB", value_parser = parse_size, requires = "server")]
    spool_limit: u64,
    /// The log store.
    #[arg(long, value_name = "DIR", default_value = "vpcflow-store")]
    store: PathBuf,
    #[command(flatten)]
    capture: CaptureOptions,
}

/// How to capture (shared by `vpcflow agent` and `vpcflow serve --live`).
#[derive(Debug, Clone, Args)]
pub struct CaptureOptions {
    /// Capture window in seconds, 60 to 600 (default: the inventory's).
    #[arg(long, value_name = "SECONDS")]
    window: Option<u32>,
    /// How to capture: ebpf (the default in a build with `--features
    /// ebpf`; without the flag, a program that cannot load falls back to
    /// af-packet with a warning) or af-packet.
    #[arg(long, value_enum)]
    capture: Option<CaptureArg>,
    /// af-packet: bytes kept of each packet (enough for its headers).
    #[arg(long, default_value_t = 256)]
    snaplen: u32,
    /// ebpf: flows the kernel table holds between two collections; more
    /// become SKIPDATA.
    #[arg(long, value_name = "FLOWS", default_value_t = 65_536)]
    flow_table: u32,
    /// Stop after this many seconds (as on SIGTERM).
    #[arg(long, value_name = "SECONDS", hide = true)]
    duration: Option<u64>,
}

impl CaptureOptions {
    /// The runtime's agent settings.
    pub fn settings(&self) -> Result<AgentSettings> {
        let window = self
            .window
            .map(|s| {
                WindowLength::configured(s).with_context(|| {
                    format!("--window {s}: the capture window must be 60 to 600 seconds")
                })
            })
            .transpose()?;
        Ok(AgentSettings {
            live: LiveConfig {
                capture: self.capture.map(|c| match c {
                    CaptureArg::Ebpf => CaptureKind::Ebpf,
                    CaptureArg::AfPacket => CaptureKind::AfPacket,
                }),
                snaplen: self.snaplen,
                flow_table: self.flow_table,
            },
            window,
            duration: self.duration.map(Duration::from_secs),
            spool: false,
        })
    }
}

/// A size in bytes: a number, with `KiB`, `MiB` or `GiB` after it or not.
#[cfg(feature = "server")]
fn parse_size(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let (digits, shift) = [("KiB", 10), ("MiB", 20), ("GiB", 30), ("B", 0)]
        .into_iter()
        .find_map(|(unit, shift)| t.strip_suffix(unit).map(|d| (d.trim(), shift)))
        .unwrap_or((t, 0));
    digits
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(1 << shift))
        .ok_or_else(|| format!("`{text}` is not a size (bytes, or a number and KiB, MiB or GiB)"))
}

/// An inventory file, re-read when its modification time changes.
struct FileInventory {
    path: PathBuf,
    mtime: Option<SystemTime>,
}

fn modified(path: &PathBuf) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

impl InventorySource for FileInventory {
    fn describe(&self) -> String {
        self.path.display().to_string()
    }
    fn load(&mut self) -> Result<Inventory, SourceError> {
        self.mtime = modified(&self.path);
        Ok(Inventory::read(&self.path)?)
    }
    fn changed(&mut self) -> bool {
        modified(&self.path) != self.mtime
    }
}

/// Runs `vpcflow agent`.
pub fn run(args: AgentArgs) -> Result<ExitCode> {
    let mut settings = args.capture.settings()?;
    let store = Arc::new(SharedStore::open(&args.store)?);
    // With a server the store is the spool: its files leave as they are
    // sent, so they are neither merged nor aged out here.
    settings.spool = args.config.is_none();
    if !settings.spool {
        store.store().compact_in_background();
    }
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, Arc::clone(&stop))
            .context("installing signal handlers")?;
    }
    let inventory: Box<dyn InventorySource> = match &args.config {
        Some(path) => Box::new(FileInventory {
            path: path.clone(),
            mtime: None,
        }),
        #[cfg(feature = "server")]
        None => Box::new(from_server::ServerInventory::connect(
            args.server.as_deref().unwrap_or_default(),
            args.token.as_deref().unwrap_or_default(),
            args.host.as_deref(),
        )?),
        #[cfg(not(feature = "server"))]
        None => anyhow::bail!("--config FILE is required"),
    };
    #[cfg(feature = "server")]
    let shipper = args.server.as_deref().map(|server| {
        from_server::Shipper::start(
            server,
            args.token.as_deref().unwrap_or_default(),
            args.store.clone(),
            args.spool_limit,
        )
    });
    let out: Box<dyn std::io::Write + Send> = Box::new(std::io::stdout());
    let agent = Agent::start(settings, inventory, store, Some(out))?;
    eprintln!("vpcflow: {}", agent.describe());
    let report = agent.run(&stop)?;
    eprintln!("vpcflow: {report}");
    // The last windows (the open one, flushed as partial) get a few
    // seconds to reach the server; what does not stays in the spool.
    #[cfg(feature = "server")]
    if let Some(s) = shipper {
        s.finish(Duration::from_secs(5));
    }
    Ok(ExitCode::SUCCESS)
}

/// The model of this host from the fleet's server, as the agent's
/// inventory: fetched at start (a refusal stops the agent, naming the
/// server's words), then followed by a long poll on a thread of its own,
/// so a change applies from the next capture window without a restart;
/// while the server cannot be reached, the last model stays in force.
#[cfg(feature = "server")]
mod from_server {
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    use anyhow::{Result, bail};
    use vpcflow_control::client::{AgentClient, AgentModel, Shipped};
    use vpcflow_core::Inventory;
    use vpcflow_core::inventory::AddressScope;
    use vpcflow_runtime::{InventorySource, SourceError};
    use vpcflow_store::shipped::{Reduction, Spooled};

    /// How long one poll waits for a change.
    const POLL_WAIT: Duration = Duration::from_secs(25);
    /// The longest pause between failed polls.
    const RETRY_MAX: Duration = Duration::from_secs(5);

    pub struct ServerInventory {
        server: String,
        newest: Arc<Mutex<AgentModel>>,
        loaded: Option<u64>,
    }

    impl ServerInventory {
        pub fn connect(server: &str, token: &str, host: Option<&str>) -> Result<ServerInventory> {
            let client = AgentClient::new(server, token);
            let first = client.model(None, Duration::ZERO)?;
            if let Some(h) = host
                && h != first.host
            {
                bail!("--host {h}: the agent token is for host {}", first.host);
            }
            let newest = Arc::new(Mutex::new(first));
            let following = Arc::clone(&newest);
            std::thread::Builder::new()
                .name("model-follower".into())
                .spawn(move || follow(&client, &following))?;
            Ok(ServerInventory {
                server: server.to_string(),
                newest,
                loaded: None,
            })
        }

        fn newest(&self) -> AgentModel {
            self.newest
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone()
        }
    }

    /// Polls for newer models for as long as the process lives.
    fn follow(client: &AgentClient, newest: &Mutex<AgentModel>) {
        let mut pause = Duration::from_millis(250);
        let mut failing = false;
        loop {
            let after = newest.lock().unwrap_or_else(|e| e.into_inner()).generation;
            match client.model(Some(after), POLL_WAIT) {
                Ok(model) => {
                    if failing {
                        eprintln!("vpcflow: the server answers again");
                        failing = false;
                    }
                    pause = Duration::from_millis(250);
                    if model.generation != after {
                        *newest.lock().unwrap_or_else(|e| e.into_inner()) = model;
                    }
                }
                Err(e) => {
                    if !failing {
                        eprintln!(
                            "vpcflow: warning: cannot fetch the model, capturing under the last one: {e}"
                        );
                        failing = true;
                    }
                    std::thread::sleep(pause);
                    pause = (pause * 2).min(RETRY_MAX);
                }
            }
        }
    }

    /// Sends the store's window files to the server, oldest first, each
    /// removed once the server has it (taken, or taken before); a server
    /// that cannot be reached leaves them, in order, for the next pass (a
    /// restart included: the spool is the store's directory). Past the
    /// spool's limit the newest windows are dropped and counted as lost;
    /// a window the server refuses for good is set aside in `.refused/`.
    pub struct Shipper {
        stop: Arc<std::sync::atomic::AtomicBool>,
        thread: std::thread::JoinHandle<()>,
    }

    /// Between passes over the spool.
    const PASS_EVERY: Duration = Duration::from_millis(500);

    /// Room for lost windows' SKIPDATA notes beyond the spool's limit: an
    /// eighth of it, at least 1 MiB (a note is one record per port and
    /// flow log, so even a long outage's fit).
    fn notes_room(limit: u64) -> u64 {
        (limit / 8).max(1 << 20)
    }

    impl Shipper {
        pub fn start(server: &str, token: &str, root: std::path::PathBuf, limit: u64) -> Shipper {
            let client = AgentClient::new(server, token);
            let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
            let stopping = Arc::clone(&stop);
            let thread = std::thread::spawn(move || {
                let mut spool = Spool {
                    client,
                    lost: LostWindows::load(&root),
                    root,
                    limit,
                    failing: false,
                };
                loop {
                    let sent_all = spool.pass();
                    if stopping.load(std::sync::atomic::Ordering::Relaxed) && sent_all {
                        break;
                    }
                    std::thread::sleep(PASS_EVERY);
                }
            });
            Shipper { stop, thread }
        }

        /// Lets the last windows go for at most `grace`, then returns.
        pub fn finish(self, grace: Duration) {
            self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
            let deadline = std::time::Instant::now() + grace;
            while !self.thread.is_finished() && std::time::Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(50));
            }
            if !self.thread.is_finished() {
                eprintln!("vpcflow: windows not yet sent stay in the spool for the next start");
            }
        }
    }

    struct Spool {
        client: AgentClient,
        root: std::path::PathBuf,
        limit: u64,
        lost: LostWindows,
        failing: bool,
    }

    /// How many windows this agent lost, kept in the spool (`.lost`) so
    /// that a restart goes on counting: each counted once, when it is
    /// reduced to SKIPDATA (or removed whole, if it had only NODATA).
    struct LostWindows {
        path: std::path::PathBuf,
        count: u64,
    }

    impl LostWindows {
        fn load(root: &std::path::Path) -> LostWindows {
            let path = root.join(".lost");
            let count = std::fs::read_to_string(&path)
                .ok()
                .and_then(|t| t.trim().parse().ok())
                .unwrap_or(0);
            LostWindows { path, count }
        }

        fn add(&mut self, what: &Spooled, limit: u64, how: &str) {
            self.count += 1;
            eprintln!(
                "vpcflow: warning: the spool is past its limit ({limit} bytes): window {} of log topic {} lost, {how} ({} lost so far)",
                what.name, what.topic, self.count
            );
            let tmp = self.path.with_extension("tmp");
            let kept = std::fs::File::create(&tmp)
                .and_then(|mut f| {
                    use std::io::Write;
                    writeln!(f, "{}", self.count)?;
                    f.sync_all()
                })
                .and_then(|()| std::fs::rename(&tmp, &self.path));
            if let Err(e) = kept {
                eprintln!(
                    "vpcflow: warning: cannot keep the lost windows' count in {}: {e}",
                    self.path.display()
                );
            }
        }
    }

    impl Spool {
        /// Brings the spool within its limit: the oldest windows that
        /// fit in it stay as they are; every newer one is lost, reduced
        /// to its SKIPDATA records (counted once, when reduced). Those
        /// notes have a room of their own ([`notes_room`]); past it, the
        /// newest are removed whole.
        fn make_room(&mut self, waiting: &mut Vec<Spooled>) {
            let mut used = 0;
            let kept = waiting
                .iter()
                .take_while(|w| {
                    used += w.bytes;
                    used <= self.limit
                })
                .count();
            let mut notes = 0;
            let mut states = Vec::with_capacity(waiting.len() - kept);
            for w in &mut waiting[kept..] {
                let state = match w.reduce_to_skipdata() {
                    Ok(r) => {
                        if let Reduction::Reduced { dropped } = r {
                            let how = format!(
                                "its {dropped} records kept as SKIPDATA totals, sent once the server answers"
                            );
                            self.lost.add(w, self.limit, &how);
                        }
                        Some(r)
                    }
                    Err(e) => {
                        eprintln!("vpcflow: warning: {e}");
                        None
                    }
                };
                states.push(state);
                notes += w.bytes;
            }
            while notes > notes_room(self.limit) {
                let (Some(w), Some(state)) = (waiting.pop(), states.pop()) else {
                    return;
                };
                notes -= w.bytes;
                // Counted once: when reduced, now or before.
                if !matches!(
                    state,
                    Some(Reduction::Reduced { .. } | Reduction::WasReduced)
                ) {
                    self.lost.add(&w, self.limit, "removed whole");
                }
                if let Err(e) = w.remove() {
                    eprintln!("vpcflow: warning: {e}");
                }
            }
        }

        /// One pass; whether the spool is empty after it.
        fn pass(&mut self) -> bool {
            let mut waiting = match vpcflow_store::shipped::spooled(&self.root) {
                Ok(w) => w,
                Err(e) => {
                    eprintln!("vpcflow: warning: reading the spool: {e}");
                    return false;
                }
            };
            self.make_room(&mut waiting);
            let depth = waiting.len() as u64;
            for (i, w) in waiting.iter().enumerate() {
                let read = std::fs::read(&w.summary).and_then(|s| Ok((s, std::fs::read(&w.path)?)));
                let (summary, records) = match read {
                    Ok(r) => r,
                    // Records without their summary: only an agent of
                    // before removing records first leaves them, cut off
                    // between the two removals of a window the server had.
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound && w.path.exists() => {
                        eprintln!(
                            "vpcflow: window {} lost its summary after it was sent; removed",
                            w.name
                        );
                        if let Err(e) = w.remove() {
                            eprintln!("vpcflow: warning: {e}");
                            return false;
                        }
                        continue;
                    }
                    // Removed meanwhile: the next pass sees the spool anew.
                    Err(_) => return false,
                };
                let shipped = self.client.ship(
                    &w.group,
                    &w.topic,
                    &w.name,
                    &summary,
                    &records,
                    (depth - i as u64, self.lost.count),
                );
                match shipped {
                    Ok(Shipped::Taken { .. }) => {
                        if self.failing {
                            eprintln!("vpcflow: the server takes windows again");
                            self.failing = false;
                        }
                        if let Err(e) = w.remove() {
                            eprintln!("vpcflow: warning: {e}");
                            return false;
                        }
                    }
                    Ok(Shipped::Refused(why)) => {
                        let aside = self.root.join(".refused");
                        eprintln!(
                            "vpcflow: warning: the server refused window {} of log topic {}: {why}; kept in {}",
                            w.name,
                            w.topic,
                            aside.display()
                        );
                        // Records first, as a removal goes.
                        let moved = std::fs::create_dir_all(&aside)
                            .and_then(|()| std::fs::rename(&w.path, aside.join(&w.name)))
                            .and_then(|()| {
                                std::fs::rename(&w.summary, aside.join(format!("_{}", w.name)))
                            });
                        if let Err(e) = moved {
                            eprintln!("vpcflow: warning: {e}");
                            return false;
                        }
                    }
                    Err(e) => {
                        if !self.failing {
                            eprintln!(
                                "vpcflow: warning: cannot send windows, keeping them in the spool: {e}"
                            );
                            self.failing = true;
                        }
                        return false;
                    }
                }
            }
            true
        }
    }

    impl InventorySource for ServerInventory {
        fn describe(&self) -> String {
            format!(
                "the model of host {} from {}",
                self.newest().host,
                self.server
            )
        }
        fn load(&mut self) -> Result<Inventory, SourceError> {
            let model = self.newest();
            self.loaded = Some(model.generation);
            for (project, why) in &model.skipped {
                eprintln!(
                    "vpcflow: warning: the server leaves out project {project} until its model is fixed: {why}"
                );
            }
            let inv = Inventory::from_json_scoped(
                &format!("the model of host {}", model.host),
                &model.inventory,
                AddressScope::Project,
            )?;
            Ok(inv.on_host(&model.host))
        }
        fn changed(&mut self) -> bool {
            self.loaded != Some(self.newest().generation)
        }
    }
}

#[cfg(all(test, feature = "server"))]
mod tests {
    use super::parse_size;

    #[test]
    fn sizes_are_bytes_or_binary_units() {
        assert_eq!(parse_size("4096"), Ok(4096));
        assert_eq!(parse_size("64KiB"), Ok(64 << 10));
        assert_eq!(parse_size("512 MiB"), Ok(512 << 20));
        assert_eq!(parse_size("1GiB"), Ok(1 << 30));
        for bad in ["", "MiB", "1.5GiB", "-1", "1TB", "99999999999GiB"] {
            let e = parse_size(bad).unwrap_err();
            assert!(e.contains("is not a size"), "{bad}: {e}");
        }
    }
}
