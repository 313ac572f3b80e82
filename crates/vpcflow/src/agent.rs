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
    /// With --server or a ClickHouse --store: the most the spool of
    /// windows not yet sent holds: bytes, or with KiB, MiB or GiB after
    /// the number. The oldest windows that fit stay; each newer one is
    /// counted as lost and reduced to SKIPDATA records with its totals
    /// (kept in an eighth more, at least 1 MiB), sent once the next hop
    /// answers; capture goes on.
    #[arg(long, value_name = "SIZE", default_value = "1GiB", value_parser = parse_size)]
    spool_limit: u64,
    /// The log store: a directory (with --server, the spool of windows
    /// not yet sent), or ClickHouse
    /// (`clickhouse://HOST:PORT[,HOST:PORT...]/DATABASE[?cluster=NAME]`,
    /// each closed window one insert, through the spool --spool).
    #[arg(long, value_name = "DIR|URL", default_value = "vpcflow-store")]
    store: vpcflow_store::StoreLocation,
    /// With a ClickHouse --store: the directory closed windows wait in
    /// until ClickHouse has them (across restarts and outages).
    #[arg(long, value_name = "DIR", default_value = "vpcflow-spool")]
    spool: PathBuf,
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
pub(crate) fn parse_size(text: &str) -> Result<u64, String> {
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
    // With a server, or ClickHouse, the store here is the spool: its
    // files leave as they are sent, so they are neither merged nor aged
    // out here.
    let (spool_dir, clickhouse) = match &args.store {
        vpcflow_store::StoreLocation::Dir(dir) => (dir.clone(), None),
        vpcflow_store::StoreLocation::ClickHouse(url) => (args.spool.clone(), Some(url.clone())),
    };
    #[cfg(feature = "server")]
    if clickhouse.is_some() && args.server.is_some() {
        anyhow::bail!(
            "--store {}: with --server the windows go to the server, which has its own store",
            args.store
        );
    }
    settings.spool = args.config.is_none() || clickhouse.is_some();
    let store = Arc::new(if settings.spool {
        SharedStore::open_spool(&spool_dir)?
    } else {
        let store = SharedStore::open(&spool_dir)?;
        store.store().compact_in_background();
        store
    });
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
        let hop = from_server::ServerHop {
            client: vpcflow_control::client::AgentClient::new(
                server,
                args.token.as_deref().unwrap_or_default(),
            ),
            server: server.to_string(),
        };
        vpcflow_runtime::Shipper::start_on(&store, Box::new(hop), args.spool_limit)
    });
    let to_clickhouse = match &clickhouse {
        Some(url) => Some(vpcflow_runtime::Shipper::start_on(
            &store,
            Box::new(vpcflow_runtime::ClickHouseHop::new(url, &spool_dir)?.with_retention()),
            args.spool_limit,
        )),
        None => None,
    };
    let out: Box<dyn std::io::Write + Send> = Box::new(std::io::stdout());
    let agent = Agent::start(settings, inventory, store, Some(out))?;
    eprintln!("vpcflow: {}", agent.describe());
    let report = agent.run(&stop)?;
    eprintln!("vpcflow: {report}");
    // The last windows (the open one, flushed as partial).
    #[cfg(feature = "server")]
    let shipper = shipper.or(to_clickhouse);
    #[cfg(not(feature = "server"))]
    let shipper = to_clickhouse;
    if let Some(s) = shipper {
        s.stop();
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
    use vpcflow_runtime::{Backlog, Delivery, NextHop};
    use vpcflow_runtime::{InventorySource, SourceError};
    use vpcflow_store::shipped::Spooled;

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

    /// The fleet's server as the spool's next hop: a window it has
    /// (taken now or before) leaves the spool.
    pub struct ServerHop {
        pub client: AgentClient,
        pub server: String,
    }

    impl NextHop for ServerHop {
        fn describe(&self) -> String {
            format!("the server {}", self.server)
        }

        fn deliver(
            &mut self,
            w: &Spooled,
            summary: &[u8],
            records: Vec<u8>,
            backlog: Backlog,
        ) -> Result<Delivery, String> {
            match self.client.ship(
                &w.group,
                &w.topic,
                &w.name,
                summary,
                &records,
                (backlog.waiting, backlog.lost),
            ) {
                Ok(Shipped::Taken { .. }) => Ok(Delivery::Taken),
                Ok(Shipped::Refused(why)) => Ok(Delivery::Refused(why)),
                Err(e) => Err(e.to_string()),
            }
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

#[cfg(test)]
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
