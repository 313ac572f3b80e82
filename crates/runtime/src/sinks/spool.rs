//! A spool of closed windows and the thread that sends them on: a store
//! directory written as a spool ([`crate::Compaction::Spool`]: window
//! files neither merged nor aged out) whose files a [`Shipper`] hands to
//! the next hop (the fleet's server, or ClickHouse: [`ClickHouseHop`]),
//! oldest first, each removed once the hop has it.
//!
//! Guarantees:
//! - a window leaves the spool only once the hop said it has it (taken
//!   now, or before: hops answer a retry as a duplicate, so nothing is
//!   counted twice); a hop that cannot be reached leaves every window,
//!   in order, for the next pass, a restart included;
//! - past the spool's limit the newest windows are lost, each reduced to
//!   its SKIPDATA totals and counted once (in `.lost`, kept across
//!   restarts); those notes have room of their own ([`notes_room`]);
//! - a window the hop refuses for good is set aside in `.refused/`.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use vpcflow_store::StoreError;
use vpcflow_store::clickhouse::{ClickHouse, ClickHouseUrl};
use vpcflow_store::shipped::{Reduction, Spooled};

/// What a hop said of a window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Delivery {
    /// It has the window (now, or from an earlier try).
    Taken,
    /// It never will: why.
    Refused(String),
}

/// How far behind the spool is, told to a hop with each window.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Backlog {
    /// Windows waiting, this one included.
    pub waiting: u64,
    /// Windows lost so far.
    pub lost: u64,
}

/// Where spooled windows go next.
pub trait NextHop: Send {
    /// For messages: the hop.
    fn describe(&self) -> String;
    /// Sends one window: its summary and records files' bytes. An error
    /// is a failure to deliver (tried again later), with why.
    fn deliver(
        &mut self,
        window: &Spooled,
        summary: &[u8],
        records: Vec<u8>,
        backlog: Backlog,
    ) -> Result<Delivery, String>;
}

/// Sends a spool's windows on a thread of its own (see the module).
pub struct Shipper {
    stop: Arc<AtomicBool>,
    /// Set while the hop cannot be reached.
    failing: Arc<AtomicBool>,
    /// Passes that sent every window they found, and a wake for whoever
    /// waits for one ([`SentWaiter`]).
    emptied: Arc<(Mutex<u64>, Condvar)>,
    nudge: Nudge,
    thread: std::thread::JoinHandle<()>,
    root: PathBuf,
}

/// How long the last windows have to go at a stop ([`Shipper::stop`]).
pub const STOP_GRACE: Duration = Duration::from_secs(5);

/// Between passes over the spool.
const PASS_EVERY: Duration = Duration::from_millis(500);

/// Room for lost windows' SKIPDATA notes beyond the spool's limit: an
/// eighth of it, at least 1 MiB (a note is one record per port and
/// flow log, so even a long outage's fit).
pub fn notes_room(limit: u64) -> u64 {
    (limit / 8).max(1 << 20)
}

impl Shipper {
    /// Starts sending the windows of the spool at `root` (at most `limit`
    /// bytes) to `hop`.
    pub fn start(hop: Box<dyn NextHop>, root: PathBuf, limit: u64) -> Shipper {
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = Arc::clone(&stop);
        let failing = Arc::new(AtomicBool::new(false));
        let failing_now = Arc::clone(&failing);
        let emptied = Arc::new((Mutex::new(0), Condvar::new()));
        let emptied_now = Arc::clone(&emptied);
        let nudge = Nudge::default();
        let nudged = nudge.clone();
        let spool_root = root.clone();
        let thread = std::thread::Builder::new()
            .name("shipper".into())
            .spawn(move || {
                let mut spool = Spool {
                    hop,
                    lost: LostWindows::load(&spool_root),
                    root: spool_root,
                    limit,
                    failing: false,
                };
                loop {
                    // Read before the pass: a pass that began before the
                    // stop may not have seen the last windows.
                    let last = stopping.load(Ordering::Relaxed);
                    let sent_all = spool.pass();
                    failing_now.store(spool.failing, Ordering::Relaxed);
                    let (passes, wake) = &*emptied_now;
                    if sent_all {
                        *passes.lock().unwrap_or_else(|e| e.into_inner()) += 1;
                    }
                    // Also when failing: a waiter gives up then.
                    wake.notify_all();
                    if last && sent_all {
                        break;
                    }
                    // A window written meanwhile (or a stop) starts the
                    // next pass at once, unless the hop is failing: then
                    // a pass a period.
                    nudged.wait(PASS_EVERY, spool.failing);
                }
            })
            .expect("spawning the shipper thread");
        Shipper {
            stop,
            failing,
            emptied,
            nudge,
            thread,
            root,
        }
    }

    /// Starts sending the windows of the spool `store` (at most `limit`
    /// bytes) to `hop`, each as soon as it is written
    /// ([`crate::SharedStore::on_write`]).
    pub fn start_on(store: &crate::SharedStore, hop: Box<dyn NextHop>, limit: u64) -> Shipper {
        let shipper = Shipper::start(hop, store.root().to_path_buf(), limit);
        let nudge = shipper.nudge();
        store.on_write(Box::new(move || nudge.nudge()));
        shipper
    }

    /// What to call when a window is written into the spool: the next
    /// pass starts at once (see [`crate::SharedStore::on_write`]).
    pub fn nudge(&self) -> Nudge {
        self.nudge.clone()
    }

    /// Who may wait for the spool's windows to be sent
    /// ([`SentWaiter::wait`]).
    pub fn waiter(&self) -> SentWaiter {
        SentWaiter {
            emptied: Arc::clone(&self.emptied),
            failing: Arc::clone(&self.failing),
        }
    }

    /// At a stop: the last windows (a live capture's partial one) get
    /// [`STOP_GRACE`] to go; the ones left are said, and go at the next
    /// start.
    pub fn stop(self) {
        let waiting = self.finish(STOP_GRACE);
        if waiting > 0 {
            eprintln!(
                "vpcflow: {waiting} windows not yet sent stay in the spool for the next start"
            );
        }
    }

    /// Lets the last windows go for at most `grace` (less when the hop
    /// cannot be reached: they would not go), then returns how many
    /// window files are still waiting (they go with the next start).
    pub fn finish(self, grace: Duration) -> usize {
        self.stop.store(true, Ordering::Relaxed);
        self.nudge.nudge();
        let deadline = Instant::now() + grace;
        let mut failed_passes = 0;
        while !self.thread.is_finished() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
            if self.failing.load(Ordering::Relaxed) {
                failed_passes += 1;
                // About three passes' time with the hop failing.
                if failed_passes * 50 > 3 * PASS_EVERY.as_millis() {
                    break;
                }
            } else {
                failed_passes = 0;
            }
        }
        vpcflow_store::shipped::spooled(&self.root).map_or(0, |w| w.len())
    }
}

/// Starts a [`Shipper`]'s next pass at once: windows go as they are
/// written, not at the next period.
#[derive(Clone, Default)]
pub struct Nudge(Arc<(Mutex<bool>, Condvar)>);

impl Nudge {
    /// A window was written (or the shipper is to stop).
    pub fn nudge(&self) {
        let (nudged, wake) = &*self.0;
        *nudged.lock().unwrap_or_else(|e| e.into_inner()) = true;
        wake.notify_all();
    }

    /// Waits `period`, or less if nudged (unless `failing`: a failing hop
    /// is tried once a period).
    fn wait(&self, period: Duration, failing: bool) {
        let (nudged, wake) = &*self.0;
        let mut was = nudged.lock().unwrap_or_else(|e| e.into_inner());
        if failing {
            drop(was);
            std::thread::sleep(period);
            *nudged.lock().unwrap_or_else(|e| e.into_inner()) = false;
            return;
        }
        if !*was {
            was = wake
                .wait_timeout(was, period)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        *was = false;
    }
}

/// Waits for a [`Shipper`]'s spool to be sent (an upload answered once
/// its windows are in ClickHouse).
#[derive(Clone)]
pub struct SentWaiter {
    emptied: Arc<(Mutex<u64>, Condvar)>,
    failing: Arc<AtomicBool>,
}

impl SentWaiter {
    /// Waits at most `timeout` for the windows in the spool now to be
    /// sent: for a pass begun after the call to send every window it
    /// found. False if the time ran out or the hop is failing (the
    /// windows wait in the spool, and go once it answers).
    pub fn wait(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let (passes, wake) = &*self.emptied;
        let mut done = passes.lock().unwrap_or_else(|e| e.into_inner());
        // The pass running now may have listed the spool before the
        // caller's windows; a second one ending began after the call.
        let want = *done + 2;
        while *done < want {
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            done = wake
                .wait_timeout(done, deadline - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
            if self.failing.load(Ordering::Relaxed) {
                return false;
            }
        }
        true
    }
}

struct Spool {
    hop: Box<dyn NextHop>,
    root: PathBuf,
    limit: u64,
    lost: LostWindows,
    failing: bool,
}

/// How many windows this spool lost, kept in it (`.lost`) so that a
/// restart goes on counting: each counted once, when it is reduced to
/// SKIPDATA (or removed whole, if it had only NODATA).
struct LostWindows {
    path: PathBuf,
    count: u64,
}

impl LostWindows {
    fn load(root: &Path) -> LostWindows {
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
    /// Brings the spool within its limit: the oldest windows that fit in
    /// it stay as they are; every newer one is lost, reduced to its
    /// SKIPDATA records (counted once, when reduced). Those notes have a
    /// room of their own ([`notes_room`]); past it, the newest are
    /// removed whole.
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
                            "its {dropped} records kept as SKIPDATA totals, sent once {} answers",
                            self.hop.describe()
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
                // Records without their summary: only an agent of before
                // removing records first leaves them, cut off between the
                // two removals of a window the hop had.
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
            let backlog = Backlog {
                waiting: depth - i as u64,
                lost: self.lost.count,
            };
            match self.hop.deliver(w, &summary, records, backlog) {
                Ok(Delivery::Taken) => {
                    if self.failing {
                        eprintln!("vpcflow: {} takes windows again", self.hop.describe());
                        self.failing = false;
                    }
                    if let Err(e) = w.remove() {
                        eprintln!("vpcflow: warning: {e}");
                        return false;
                    }
                }
                Ok(Delivery::Refused(why)) => {
                    let aside = self.root.join(".refused");
                    eprintln!(
                        "vpcflow: warning: {} refused window {} of log topic {}: {why}; kept in {}",
                        self.hop.describe(),
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
                            "vpcflow: warning: cannot send windows to {}, keeping them in the spool: {e}",
                            self.hop.describe()
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

/// ClickHouse as the next hop: each window one insert, under an id of
/// this spool and the window's name, so a retry is a duplicate.
/// Connected on first use, and again after a failure: ClickHouse may be
/// down when the spool starts.
pub struct ClickHouseHop {
    url: ClickHouseUrl,
    /// The spool: its catalog goes to the store on connecting, and again
    /// when it changes (a new inventory's log groups).
    root: PathBuf,
    /// When the spool's catalog last went.
    catalog_sent: Option<std::time::SystemTime>,
    /// With retention (a long-running writer: the agent): when it last ran.
    retention: Option<Option<Instant>>,
    store: Option<Arc<ClickHouse>>,
    ids: SpoolIds,
}

impl ClickHouseHop {
    /// ClickHouse at `url` for the spool at `root`.
    pub fn new(url: &ClickHouseUrl, root: &Path) -> Result<ClickHouseHop, StoreError> {
        Ok(ClickHouseHop {
            url: url.clone(),
            root: root.to_path_buf(),
            catalog_sent: None,
            retention: None,
            store: None,
            ids: SpoolIds::of(root)?,
        })
    }
}

impl ClickHouseHop {
    /// Also applies each log group's retention (its catalog's
    /// `ttl_in_days`) to the store, once an hour, as the agent does to a
    /// directory (not for `ingest`, whose records may be of any age).
    pub fn with_retention(mut self) -> ClickHouseHop {
        self.retention = Some(None);
        self
    }

    /// Retention, when it is due.
    fn upkeep(&mut self, store: &ClickHouse) {
        let Some(last) = self.retention else { return };
        if last.is_some_and(|t| t.elapsed() < RETENTION_EVERY) {
            return;
        }
        self.retention = Some(Some(Instant::now()));
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        if let Err(e) = store.gc(|_| None, now) {
            eprintln!("vpcflow: warning: retention in {}: {e}", self.url);
        }
    }
}

/// How often a long-running writer applies retention.
const RETENTION_EVERY: Duration = Duration::from_secs(3600);

/// The ids a spool's windows go by in ClickHouse: the spool's own
/// (random, made once and kept in `.id`, so windows of different spools,
/// hosts or runs of `ingest`, never share one) and the window's name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpoolIds(String);

impl SpoolIds {
    /// The ids of the spool at `root` (its id made now if it has none).
    pub fn of(root: &Path) -> Result<SpoolIds, StoreError> {
        spool_id(root).map(SpoolIds)
    }

    /// The id of the window named `name` (its file's name in the spool).
    pub fn window(&self, name: &str) -> String {
        format!("{}/{name}", self.0)
    }
}

fn spool_id(root: &Path) -> Result<String, StoreError> {
    let path = root.join(".id");
    let io = |e| StoreError::Io {
        path: path.display().to_string(),
        source: e,
    };
    if let Ok(id) = std::fs::read_to_string(&path)
        && id.trim().len() == 32
    {
        return Ok(id.trim().to_string());
    }
    std::fs::create_dir_all(root).map_err(io)?;
    let mut bytes = [0u8; 16];
    getrandom(&mut bytes).map_err(io)?;
    let id: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    let tmp = root.join(".id.tmp");
    std::fs::File::create(&tmp)
        .and_then(|mut f| {
            use std::io::Write;
            writeln!(f, "{id}")?;
            f.sync_all()
        })
        .and_then(|()| std::fs::rename(&tmp, &path))
        .map_err(io)?;
    Ok(id)
}

fn getrandom(out: &mut [u8]) -> std::io::Result<()> {
    use std::io::Read;
    std::fs::File::open("/dev/urandom")?.read_exact(out)
}

impl NextHop for ClickHouseHop {
    fn describe(&self) -> String {
        self.url.to_string()
    }

    fn deliver(
        &mut self,
        w: &Spooled,
        summary: &[u8],
        records: Vec<u8>,
        _backlog: Backlog,
    ) -> Result<Delivery, String> {
        let window = match vpcflow_store::shipped::ShippedWindow::parse(
            &w.group,
            &w.topic,
            &w.name,
            records.into(),
            summary,
            vpcflow_store::shipped::WindowNames::OwnOrShipped,
        ) {
            Ok(window) => window,
            Err(e) => return Ok(Delivery::Refused(e.to_string())),
        };
        let id = self.ids.window(&w.name);
        let store = match &self.store {
            Some(s) => Arc::clone(s),
            None => {
                let s = ClickHouse::shared(&self.url).map_err(|e| e.to_string())?;
                self.store = Some(Arc::clone(&s));
                s
            }
        };
        // The log groups' names and retention, as the spool's writer
        // registered them.
        let changed = std::fs::metadata(self.root.join(vpcflow_store::CATALOG_FILE))
            .and_then(|m| m.modified())
            .ok();
        if changed.is_some() && changed != self.catalog_sent {
            let catalog = vpcflow_store::Catalog::load(&self.root).map_err(|e| e.to_string())?;
            store
                .register(&catalog.log_groups)
                .map_err(|e| e.to_string())?;
            self.catalog_sent = changed;
        }
        // Before the insert: a window is never removed in the pass that
        // brought it, only by the next hourly run (an upload of old
        // records can be read back before it ages out).
        self.upkeep(&store);
        match store.insert_window(&id, &window, summary) {
            Ok(_) => Ok(Delivery::Taken),
            Err(e) => Err(e.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_nudge_starts_the_next_pass_at_once_unless_the_hop_is_failing() {
        let nudge = Nudge::default();
        // Nudged before the wait: no hour-long wait (the test would hang).
        nudge.nudge();
        nudge.wait(Duration::from_secs(3600), false);
        // Nudged from another thread during the wait.
        let other = nudge.clone();
        let t = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(50));
            other.nudge();
        });
        nudge.wait(Duration::from_secs(3600), false);
        t.join().unwrap();
        // A failing hop waits its period whatever the nudges, and the
        // nudge it ignored does not cut the next wait short.
        nudge.nudge();
        let started = Instant::now();
        nudge.wait(Duration::from_millis(300), true);
        assert!(started.elapsed() >= Duration::from_millis(300));
        let started = Instant::now();
        nudge.wait(Duration::from_millis(200), false);
        assert!(started.elapsed() >= Duration::from_millis(200));
    }

    #[test]
    fn a_shipper_on_a_store_sends_its_windows_and_says_when_they_went() {
        use vpcflow_core::aggregate::ClosedWindow;
        use vpcflow_core::record::{FlowRecord, RecordBody};

        /// Counts what it takes.
        struct Counting(Arc<Mutex<Vec<String>>>);
        impl NextHop for Counting {
            fn describe(&self) -> String {
                "a counter".into()
            }
            fn deliver(
                &mut self,
                w: &Spooled,
                _: &[u8],
                _: Vec<u8>,
                _: Backlog,
            ) -> Result<Delivery, String> {
                self.0.lock().unwrap().push(w.name.clone());
                Ok(Delivery::Taken)
            }
        }
        let dir = tempfile::tempdir().unwrap();
        let store = crate::SharedStore::open_spool(dir.path()).unwrap();
        let taken = Arc::new(Mutex::new(Vec::new()));
        let shipper = Shipper::start_on(&store, Box::new(Counting(Arc::clone(&taken))), u64::MAX);
        let inv = vpcflow_core::Inventory::from_toml(
            "vpc.toml",
            include_str!("../../../../examples/vpc.toml"),
        )
        .unwrap();
        let topology = vpcflow_core::Topology::from_inventory(&inv);
        for start in [600, 1200] {
            let w = ClosedWindow {
                start,
                end: start + 600,
                records: vec![FlowRecord {
                    flow_log: 0,
                    port: 0,
                    start,
                    end: start + 600,
                    body: RecordBody::NoData,
                }],
                rule_hits: Vec::new(),
            };
            store.write(&topology, &w, false).unwrap();
            let waiter = shipper.waiter();
            assert!(
                waiter.wait(Duration::from_secs(30)),
                "window {start} not sent"
            );
        }
        assert_eq!(taken.lock().unwrap().len(), 2);
        assert_eq!(shipper.finish(Duration::from_secs(5)), 0);
    }
}
