//! Queries in a child process of their own (the server's records queries).
//!
//! A tenant's SQL can ask for memory the query's pool never sees (a scalar
//! function such as `repeat('x', 1.5e9)` or nested `replace`s build their
//! result in one allocation) or hit a fault deep in the SQL engine. In a
//! child process neither can take the server down: the child runs the
//! query with the in-process limits of [`QueryLimits`], under an
//! `RLIMIT_DATA` of the query's memory plus [`WORKER_BASE_BYTES`], so an
//! allocation past it ends the child alone; the parent kills it at the
//! deadline or when the caller cancels, and reads at most the result cap
//! of its answer.
//!
//! The parent sends the query as one JSON object on the child's stdin; the
//! child answers JSON lines on stdout, or one `vpcflow-query: KIND: MESSAGE`
//! line on stderr and exit status [`FAILED`].

use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::{Command, ExitCode, Stdio};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use crate::limits::check_sql;
use crate::{OutputFormat, Query, QueryLimits, StoreError, StoreLocation, StoreRef, TimeRange};

/// For messages: where the store is.
fn where_(store: StoreRef<'_>) -> String {
    match store {
        StoreRef::Dir(d) => d.display().to_string(),
        StoreRef::ClickHouse(url) => url.to_string(),
    }
}
use serde::{Deserialize, Serialize};

/// The subcommand of the running binary that runs [`worker_main`]: a
/// binary that runs [`run_isolated`] must hand this argument to it.
pub const WORKER_COMMAND: &str = "query-worker";

/// The child's data segment beyond the query's memory: the query thread's
/// deep stack, the runtime's threads, the engine's own tables.
pub const WORKER_BASE_BYTES: u64 = 768 * 1024 * 1024;
/// Exit status of a child that answered with an error.
const FAILED: u8 = 3;
/// How much longer than its deadline the parent gives the child (which
/// enforces the deadline itself) before killing it.
const DEADLINE_SLACK: Duration = Duration::from_secs(2);
/// The JSON lines of a result are larger than its Arrow arrays, which the
/// result cap counts: the parent reads this many times the cap at most.
const JSON_PER_ARROW_BYTE: usize = 4;

/// A query as the child receives it.
#[derive(Debug, Serialize, Deserialize)]
struct Request {
    root: PathBuf,
    /// A ClickHouse store's URL, in place of `root`.
    #[serde(default)]
    clickhouse: Option<String>,
    group: Option<String>,
    topic: Option<String>,
    since: Option<u64>,
    until: Option<u64>,
    filter: Option<String>,
    sql: Option<String>,
    limit: Option<usize>,
    offset: usize,
    confined: bool,
    memory_bytes: usize,
    deadline_ms: u64,
    result_bytes: usize,
}

impl Request {
    fn of(q: &Query, store: StoreRef<'_>) -> Request {
        let (root, clickhouse) = match store {
            StoreRef::Dir(d) => (d.to_path_buf(), None),
            StoreRef::ClickHouse(url) => (PathBuf::new(), Some(url.to_string())),
        };
        Request {
            root,
            clickhouse,
            group: q.group.clone(),
            topic: q.topic.clone(),
            since: q.time.since,
            until: q.time.until,
            filter: q.filter.clone(),
            sql: q.sql.clone(),
            limit: q.limit,
            offset: q.offset,
            confined: q.confined,
            memory_bytes: q.limits.memory_bytes,
            deadline_ms: q.limits.deadline.as_millis() as u64,
            result_bytes: q.limits.result_bytes,
        }
    }

    fn limits(&self) -> QueryLimits {
        QueryLimits {
            memory_bytes: self.memory_bytes,
            deadline: Duration::from_millis(self.deadline_ms),
            result_bytes: self.result_bytes,
        }
    }

    fn query(self) -> Result<(Query, StoreLocation), StoreError> {
        let limits = self.limits();
        let store = match &self.clickhouse {
            Some(url) => StoreLocation::ClickHouse(crate::clickhouse::ClickHouseUrl::parse(url)?),
            None => StoreLocation::Dir(self.root.clone()),
        };
        Ok((
            Query {
                group: self.group,
                topic: self.topic,
                time: TimeRange {
                    since: self.since,
                    until: self.until,
                },
                filter: self.filter,
                sql: self.sql,
                limit: self.limit,
                offset: self.offset,
                confined: self.confined,
                limits,
                cancel: None,
            },
            store,
        ))
    }
}

/// Runs `q` over `store` in a child process; its JSON lines. `q.cancel`,
/// when set, kills the child.
pub fn run_isolated(q: &Query, store: StoreRef<'_>) -> Result<Vec<u8>, StoreError> {
    // Refused text costs no process.
    for text in [&q.sql, &q.filter].into_iter().flatten() {
        check_sql(text)?;
    }
    let failed = |what: &str, e: std::io::Error| StoreError::Query(format!("{what}: {e}"));
    let exe = std::env::current_exe().map_err(|e| failed("finding the vpcflow binary", e))?;
    let mut child = Command::new(exe)
        .arg(WORKER_COMMAND)
        // Few malloc arenas: each reserves address space the data limit
        // would count once touched.
        .env("MALLOC_ARENA_MAX", "2")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| failed("starting the query process", e))?;
    let request = serde_json::to_vec(&Request::of(q, store)).expect("a request serializes");
    let mut stdin = child.stdin.take().expect("piped");
    let writer = std::thread::spawn(move || stdin.write_all(&request));
    let cap = q.limits.result_bytes.saturating_mul(JSON_PER_ARROW_BYTE) as u64;
    let mut stdout = child.stdout.take().expect("piped");
    let reader = std::thread::spawn(move || {
        let mut out = Vec::new();
        let r = (&mut stdout).take(cap + 1).read_to_end(&mut out);
        r.map(|_| out)
    });
    let mut stderr = child.stderr.take().expect("piped");
    let errors = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = (&mut stderr).take(64 * 1024).read_to_string(&mut text);
        text
    });
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child
            .try_wait()
            .map_err(|e| failed("waiting for the query", e))?
        {
            break Some(status);
        }
        let cancelled = q.cancel.as_ref().is_some_and(|c| c.load(Ordering::Relaxed));
        if cancelled || started.elapsed() > q.limits.deadline + DEADLINE_SLACK {
            let _ = child.kill();
            let _ = child.wait();
            if cancelled {
                return Err(crate::limits::cancelled());
            }
            return Err(q.limits.past_deadline());
        }
        if reader.is_finished() {
            // Read to its end or to the cap: the child is done or over.
            break None;
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let out = reader
        .join()
        .expect("the reader does not panic")
        .map_err(|e| failed("reading the query's answer", e))?;
    if out.len() as u64 > cap {
        let _ = child.kill();
        let _ = child.wait();
        return Err(q.limits.result_too_large());
    }
    let status = match status {
        Some(s) => s,
        None => child
            .wait()
            .map_err(|e| failed("waiting for the query", e))?,
    };
    let _ = writer.join();
    let errors = errors.join().unwrap_or_default();
    if status.success() {
        return Ok(out);
    }
    if let Some(line) = errors
        .lines()
        .rev()
        .find_map(|l| l.strip_prefix("vpcflow-query: "))
    {
        let (kind, message) = line.split_once(": ").unwrap_or(("query", line));
        let message = message.to_string();
        return Err(match kind {
            "limit" => StoreError::Limit(message),
            "not-found" => StoreError::NotFound {
                kind: "log topic",
                name: q.topic.clone().unwrap_or_default(),
                dir: where_(store),
            },
            "query" => StoreError::Query(message),
            _ => StoreError::Io {
                path: where_(store),
                source: std::io::Error::other(message),
            },
        });
    }
    // No answer: the data limit ended it (an allocation failed), or
    // something else killed it.
    if errors.contains("memory allocation") {
        return Err(q.limits.out_of_memory(""));
    }
    Err(StoreError::Query(format!(
        "the query process ended without an answer ({status}){}",
        errors
            .lines()
            .last()
            .map(|l| format!(": {l}"))
            .unwrap_or_default()
    )))
}

/// The worker's side (the binary's hidden [`WORKER_COMMAND`]): one query
/// from stdin, its JSON lines on stdout.
pub fn worker_main() -> ExitCode {
    let answer = |kind: &str, message: &str| {
        eprintln!("vpcflow-query: {kind}: {message}");
        ExitCode::from(FAILED)
    };
    let mut text = String::new();
    if let Err(e) = std::io::stdin().take(1 << 20).read_to_string(&mut text) {
        return answer("query", &format!("reading the request: {e}"));
    }
    let request: Request = match serde_json::from_str(&text) {
        Ok(r) => r,
        Err(e) => return answer("query", &format!("the request: {e}")),
    };
    let data = request.memory_bytes as u64 + WORKER_BASE_BYTES;
    let limit = rustix::process::Rlimit {
        current: Some(data),
        maximum: Some(data),
    };
    if let Err(e) = rustix::process::setrlimit(rustix::process::Resource::Data, limit) {
        return answer("query", &format!("limiting the query's memory: {e}"));
    }
    let result = request
        .query()
        .and_then(|(query, store)| query.run_at(StoreRef::from(&store)));
    let result = match result {
        Ok(r) => r,
        Err(StoreError::Limit(m)) => return answer("limit", &m),
        Err(e @ StoreError::NotFound { .. }) => return answer("not-found", &e.to_string()),
        Err(StoreError::Query(m)) => return answer("query", &m),
        Err(e) => return answer("failed", &e.to_string()),
    };
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let written = result
        .write(OutputFormat::Json, &mut out)
        .map_err(|e| e.to_string())
        .and_then(|()| out.flush().map_err(|e| e.to_string()));
    match written {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => answer("failed", &format!("writing the answer: {e}")),
    }
}
