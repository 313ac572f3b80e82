//! `vpcflow serve` as a library: the control plane's REST API
//! (`vpcflow-control`) on its database, with the data plane behind it
//! ([`data::StoreDataPlane`]: uploads through the runtime's driver into the
//! log store, records queries in a worker process, the live tail) and,
//! with `--live`, the runtime's agent capturing under the database's flow
//! logs ([`live::DatabaseInventory`]); with `--collect`, the runtime's
//! collector taking flow exports (NetFlow, IPFIX, sFlow) under them too.
//!
//! Guarantees: the server's files are its own (0600, directories 0700);
//! connection caps, not the file limit, decide how many clients it takes;
//! on SIGTERM open requests get a grace, the live capture writes its open
//! window as a partial one, the collector its open windows whole, and the
//! process exits.

pub mod data;
pub mod live;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use vpcflow_control::ControlError;
use vpcflow_control::api::AppState;
use vpcflow_control::data::DataPlane;
use vpcflow_control::db::{ControlDb, DatabaseLocation};
use vpcflow_control::signing::{SEALING_KEY_FILE, SealingKey};
use vpcflow_core::aggregate::AggregatorConfig;
use vpcflow_runtime::{
    Agent, AgentError, AgentReport, AgentSettings, Collector, Compaction, Driver, InventorySource,
    SharedStore, Shipper, Sink, StoreSink, SystemClock,
};
use vpcflow_store::{QueryLimits, StoreError};

use crate::data::StoreDataPlane;
use crate::live::{DatabaseInventory, follow_database};

/// What `vpcflow serve` runs with.
#[derive(Debug, Clone)]
pub struct ServerSettings {
    /// Where the API listens.
    pub listen: SocketAddr,
    /// The data directory: the log store (`store/`), upload spools, and the
    /// SQLite control database unless `database` names another.
    pub data: PathBuf,
    /// The log store in ClickHouse instead of `store/`: every window
    /// waits in the spool `spool/` until ClickHouse has it.
    pub clickhouse: Option<vpcflow_store::clickhouse::ClickHouseUrl>,
    /// The most the spool holds, in bytes (past it, the newest windows
    /// are lost as SKIPDATA totals, counted).
    pub spool_limit: u64,
    /// The control database's URL (`postgres://...`, `sqlite://FILE`).
    pub database: Option<String>,
    /// An inventory imported at the database's first start: its name and
    /// text.
    pub import: Option<(String, String)>,
    /// Live capture under the control plane's flow logs.
    pub live: Option<AgentSettings>,
    /// Flow exports received under the control plane's flow logs.
    pub collect: Option<CollectSettings>,
    /// Bounds of each records query.
    pub query_limits: QueryLimits,
    /// The largest capture upload taken, in bytes.
    pub max_upload: u64,
    /// Unknown tokens one client address may send a minute before it is
    /// throttled (0: never).
    pub auth_failures: u32,
}

/// Where `vpcflow serve --collect` receives flow exports.
#[derive(Debug, Clone, Copy)]
pub struct CollectSettings {
    /// UDP: NetFlow v5, v9, IPFIX, sFlow v5.
    pub udp: SocketAddr,
    /// TCP: IPFIX.
    pub tcp: Option<SocketAddr>,
    /// How long a window stays open past its end on the exporters' clock.
    pub grace: Duration,
}

/// Why the server could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// The control database could not be opened.
    #[error("control-plane database ({location}): {error}")]
    Database {
        /// Where it is (no password).
        location: String,
        /// Why.
        error: ControlError,
    },
    /// The control plane refused something (the imported inventory, a
    /// token's project).
    #[error(transparent)]
    Control(#[from] ControlError),
    /// The log store.
    #[error("the log store: {0}")]
    Store(#[from] StoreError),
    /// A system call.
    #[error("{what}: {error}")]
    Io {
        /// What was being done.
        what: String,
        /// The error.
        error: std::io::Error,
    },
}

fn io_error(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> ServerError {
    let what = what.into();
    move |error| ServerError::Io { what, error }
}

/// How long requests still running at a stop have, and a stopped
/// runtime's blocking threads (a cancelled query) after that.
const RUNTIME_SHUTDOWN: Duration = Duration::from_secs(2);

fn runtime() -> Result<tokio::runtime::Runtime, ServerError> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(io_error("starting the async runtime"))
}

/// Opens the control database `url` (default: `data/control.db`).
pub async fn open_database(
    url: Option<&str>,
    data: &Path,
) -> Result<(ControlDb, DatabaseLocation), ServerError> {
    let location = DatabaseLocation::parse(url, data)?;
    match ControlDb::open(&location).await {
        Ok(db) => Ok((db, location)),
        Err(error) => Err(ServerError::Database {
            location: location.to_string(),
            error,
        }),
    }
}

/// A new API token for `project` (created if new) in the control database.
pub fn create_token(url: Option<&str>, data: &Path, project: &str) -> Result<String, ServerError> {
    runtime()?.block_on(async {
        let (db, _) = open_database(url, data).await?;
        Ok(db.create_token(project).await?)
    })
}

/// A new token for the fleet's agent on `host` in the control database.
pub fn create_agent_token(
    url: Option<&str>,
    data: &Path,
    host: &str,
) -> Result<String, ServerError> {
    runtime()?.block_on(async {
        let (db, _) = open_database(url, data).await?;
        Ok(db.create_agent_token(host).await?)
    })
}

/// The key access keys' secrets are sealed with: `DATA/access-keys.key`,
/// made at first use (servers sharing a database must share it).
fn sealing_key(data: &Path) -> Result<SealingKey, ServerError> {
    std::fs::create_dir_all(data).map_err(io_error(format!("{}", data.display())))?;
    let path = data.join(SEALING_KEY_FILE);
    SealingKey::load_or_create(&path).map_err(io_error(format!("{}", path.display())))
}

/// A new access key and its secret for `project` (created if new) in the
/// control database; the secret is stored sealed with the data directory's
/// key, and shown only now.
pub fn create_access_key(
    url: Option<&str>,
    data: &Path,
    project: &str,
) -> Result<(String, String), ServerError> {
    let key = sealing_key(data)?;
    runtime()?.block_on(async {
        let (db, _) = open_database(url, data).await?;
        Ok(db.create_access_key(project, &key).await?)
    })
}

/// Files 0600 and directories 0700 (tenants' records, tokens and uploads),
/// and as many open files as the hard limit allows (every connection is
/// one: the connection caps, not the file limit, decide).
fn harden_process() {
    use rustix::process::{Resource, Rlimit, getrlimit, setrlimit, umask};
    umask(rustix::fs::Mode::from_raw_mode(0o077));
    let files = getrlimit(Resource::Nofile);
    if files.current < files.maximum {
        let raised = Rlimit {
            current: files.maximum,
            maximum: files.maximum,
        };
        let _ = setrlimit(Resource::Nofile, raised);
    }
}

/// How often a directory store's retention runs (and once at start).
const RETENTION_EVERY: Duration = Duration::from_secs(3600);

/// Retention on a directory store, at start and then every
/// [`RETENTION_EVERY`]: uploads and agents' windows are kept only as long as
/// their log group says, whether or not a live capture (whose sink runs it
/// too) is on. (On ClickHouse the shipper's hop runs it.)
async fn apply_retention(store: Arc<SharedStore>) {
    let mut every = tokio::time::interval(RETENTION_EVERY);
    loop {
        every.tick().await;
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let store = store.clone();
        let _ = tokio::task::spawn_blocking(move || store.apply_retention(now)).await;
    }
}

/// Runs the server until SIGTERM or SIGINT.
pub fn serve(settings: ServerSettings) -> Result<(), ServerError> {
    harden_process();
    let (store, data, shipper) = match &settings.clickhouse {
        None => {
            let store = Arc::new(SharedStore::open(&settings.data.join("store"))?);
            let data = StoreDataPlane::new(store.clone(), settings.query_limits);
            (store, data, None)
        }
        Some(url) => {
            let spool = settings.data.join("spool");
            let store = Arc::new(SharedStore::open_spool(&spool)?);
            let hop = vpcflow_runtime::ClickHouseHop::new(url, &spool)?.with_retention();
            let shipper = Shipper::start_on(&store, Box::new(hop), settings.spool_limit);
            let data = StoreDataPlane::new(store.clone(), settings.query_limits).with_clickhouse(
                data::ClickHouseStore {
                    url: url.clone(),
                    ids: vpcflow_runtime::SpoolIds::of(&spool)?,
                    sent: shipper.waiter(),
                },
            );
            eprintln!(
                "vpcflow: the log store is {url}; windows wait in {} until it has them",
                spool.display()
            );
            (store, data, Some(shipper))
        }
    };
    let runtime = runtime()?;
    let served = runtime.block_on(async {
        let (db, location) = open_database(settings.database.as_deref(), &settings.data).await?;
        let db = Arc::new(db);
        // Agents' windows a crash left half-received: settled by whether
        // their file is in the store, before compaction may merge it away
        // (then a retry would be written twice).
        for w in db.unsettled_windows().await? {
            let in_store = data.has_window(&w.0, &w.1, &w.2, &w.3);
            db.settle_window(&w, in_store).await?;
        }
        if !store.is_spool() {
            store.store().compact_in_background();
            tokio::spawn(apply_retention(store.clone()));
        }
        if let Some((name, text)) = &settings.import
            && db.import_inventory(name, text).await?
        {
            eprintln!("vpcflow: imported the inventory into {location}");
        }
        let uploads = settings.data.join("uploads");
        let swept = vpcflow_control::api::sweep_uploads(&uploads);
        if swept > 0 {
            eprintln!("vpcflow: removed {swept} upload spool files an earlier run left");
        }
        let listener = tokio::net::TcpListener::bind(settings.listen)
            .await
            .map_err(io_error(format!("--listen {}", settings.listen)))?;
        let stop = Arc::new(AtomicBool::new(false));
        // Writes through other servers on the database reach the live
        // capture and the agents' long polls within the follow interval.
        tokio::spawn(follow_database(db.clone()));
        let live = match settings.live {
            Some(agent) => Some(start_live(agent, &db, &store, &stop)?),
            None => None,
        };
        let collect = match settings.collect {
            Some(collect) => Some(start_collect(collect, &db, &store, &stop)?),
            None => None,
        };
        let addr = listener.local_addr().map_err(io_error("the listener"))?;
        eprintln!("vpcflow: serving the API on http://{addr}");
        // Not a second URL: tools take the address from the line above.
        eprintln!("vpcflow: the web console is at / (sign in with a project token)");
        let state = AppState::new(db, Arc::new(data), uploads)
            .with_access_keys(sealing_key(&settings.data)?)
            .with_upload_limit(settings.max_upload)
            .with_auth_failure_limit(settings.auth_failures);
        let served = vpcflow_control::api::serve(listener, state, vpcflow_console::router())
            .await
            .map_err(io_error("serving the API"));
        // The live capture flushes its open window as a partial one.
        stop.store(true, Ordering::Relaxed);
        for (what, t) in [("live capture", live), ("collector", collect)] {
            if let Some(t) = t {
                let joined = tokio::task::spawn_blocking(move || t.join()).await;
                if !matches!(joined, Ok(Ok(()))) {
                    eprintln!("vpcflow: {what} panicked");
                }
            }
        }
        served
    });
    // A query still running on a blocking thread has been cancelled (its
    // request is gone); dropping the runtime would wait for it.
    runtime.shutdown_timeout(RUNTIME_SHUTDOWN);
    // The last windows (live capture's partial one, the collector's).
    if let Some(s) = shipper {
        s.stop();
    }
    if served.is_ok() {
        eprintln!("vpcflow: stopped");
    }
    served
}

/// Starts the agent on a thread of its own, its inventory the database's.
/// Call from inside the runtime (it follows the database on a task). A
/// capture that cannot start or stops early is said, and the API goes on.
fn start_live(
    settings: AgentSettings,
    db: &Arc<ControlDb>,
    store: &Arc<SharedStore>,
    stop: &Arc<AtomicBool>,
) -> Result<std::thread::JoinHandle<()>, ServerError> {
    // The inventory is read with `block_on`, so off the runtime's threads.
    let inventory = DatabaseInventory::new(db.clone(), tokio::runtime::Handle::current());
    let (store, stop) = (store.clone(), stop.clone());
    let capture = move || -> Result<AgentReport, AgentError> {
        let out: Box<dyn std::io::Write + Send> = Box::new(std::io::stdout());
        let agent = Agent::start(settings, Box::new(inventory), store, Some(out))?;
        eprintln!("vpcflow: {}", agent.describe());
        agent.run(&stop)
    };
    std::thread::Builder::new()
        .name("live capture".into())
        .spawn(move || match capture() {
            Ok(report) => eprintln!("vpcflow: {report}"),
            // Said now, not at shutdown: the API keeps serving.
            Err(e) => eprintln!("vpcflow: error: live capture stopped: {e}"),
        })
        .map_err(io_error("starting live capture"))
}

/// Binds the collector's sockets (a bad address fails the start) and runs
/// it on a thread of its own, its inventory the database's, its windows
/// into the log store. Call from inside the runtime. A collector that
/// stops early is said, and the API goes on.
fn start_collect(
    settings: CollectSettings,
    db: &Arc<ControlDb>,
    store: &Arc<SharedStore>,
    stop: &Arc<AtomicBool>,
) -> Result<std::thread::JoinHandle<()>, ServerError> {
    let collector = Collector::bind(settings.udp, settings.tcp)
        .map_err(io_error(format!("--collect {}", settings.udp)))?;
    let udp = collector
        .udp_addr()
        .map_err(io_error("the collector's socket"))?;
    eprintln!("vpcflow: collecting flow exports on {udp} (udp)");
    if let Some(tcp) = collector.tcp_addr() {
        let tcp = tcp.map_err(io_error("the collector's socket"))?;
        eprintln!("vpcflow: collecting IPFIX on {tcp} (tcp)");
    }
    let mut inventory = DatabaseInventory::new(db.clone(), tokio::runtime::Handle::current());
    let (store, stop) = (store.clone(), stop.clone());
    let grace_ns = u64::try_from(settings.grace.as_nanos()).unwrap_or(u64::MAX);
    let collect = move || -> Result<String, String> {
        let inv = inventory.load().map_err(|e| e.to_string())?;
        let config = AggregatorConfig {
            grace_ns,
            ..AggregatorConfig::of(&inv, None)
        };
        let mut sink = StoreSink::new(store, None, Compaction::AsWritten);
        sink.register(&inv).map_err(|e| e.to_string())?;
        let mut driver = Driver::new(&inv, config);
        let report = collector
            .run(
                &mut driver,
                &mut sink,
                Some(&mut inventory),
                &SystemClock,
                &stop,
            )
            .map_err(|e| e.to_string())?;
        Ok(report.to_string())
    };
    std::thread::Builder::new()
        .name("collector".into())
        .spawn(move || match collect() {
            Ok(report) => eprintln!("vpcflow: {report}"),
            Err(e) => eprintln!("vpcflow: error: the collector stopped: {e}"),
        })
        .map_err(io_error("starting the collector"))
}
