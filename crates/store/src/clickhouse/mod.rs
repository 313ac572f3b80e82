//! The log store on ClickHouse: the same records, queries, searches and
//! retention as the Parquet directory, in a ClickHouse database (one
//! server, or a cluster of shards), spoken to over its HTTP interface.
//!
//! A store URL is `clickhouse://HOST:PORT[,HOST:PORT...]/DATABASE[?cluster=NAME]`
//! ([`ClickHouseUrl`]). With `cluster=NAME`, every shard holds a local
//! `MergeTree` table and a `Distributed` table over them spreads records
//! by a hash of `interface_id` (one port's records stay on one shard);
//! the tables are made on every host the URL lists (ClickHouse without
//! ZooKeeper has no `ON CLUSTER`), and with fewer hosts than shards they
//! must already be there. Reads and writes go to the first host that
//! answers.
//!
//! Guarantees:
//! - the schema is made when missing and its version recorded
//!   (`vpcflow_schema`); a database of a newer vpcflow is refused;
//! - a window is written once: its id goes into a ledger (`windows`) after
//!   its records, and a retry finds it there, or finds the records of a
//!   cut-off attempt and replaces them ([`ClickHouse::insert_window`]);
//! - queries run in ClickHouse: the scope, search and SQL are pushed down,
//!   and only the answer comes back ([`ClickHouse::run`]);
//! - DDL and queries are those Debian 12's ClickHouse (18.16) accepts, and
//!   so every later release.

mod ddl;
mod insert;
mod read;
mod retention;

use std::fmt;
use std::time::Duration;

use crate::StoreError;

pub use insert::Inserted;

/// The URL scheme of a ClickHouse store.
pub const SCHEME: &str = "clickhouse://";

/// Where a ClickHouse store is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClickHouseUrl {
    /// `HOST:PORT` of each server's HTTP interface, in the order tried.
    pub hosts: Vec<String>,
    /// The database (made when missing).
    pub database: String,
    /// The cluster of the servers' `remote_servers` to spread records over.
    pub cluster: Option<String>,
}

/// A name ClickHouse takes unquoted: a database or cluster.
fn plain_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
        && !s.as_bytes()[0].is_ascii_digit()
}

impl ClickHouseUrl {
    /// Parses `clickhouse://HOST:PORT[,HOST:PORT...]/DATABASE[?cluster=NAME]`.
    pub fn parse(url: &str) -> Result<ClickHouseUrl, StoreError> {
        let bad = |why: &str| {
            StoreError::Query(format!(
                "{url}: {why} (a ClickHouse store is clickhouse://HOST:PORT[,HOST:PORT...]/DATABASE[?cluster=NAME])"
            ))
        };
        let rest = url
            .strip_prefix(SCHEME)
            .ok_or_else(|| bad("not a clickhouse:// URL"))?;
        let (rest, query) = match rest.split_once('?') {
            Some((r, q)) => (r, Some(q)),
            None => (rest, None),
        };
        let (hosts, database) = rest
            .split_once('/')
            .ok_or_else(|| bad("no database after the hosts"))?;
        if !plain_name(database) {
            return Err(bad(&format!(
                "`{database}` is not a database name (letters, digits and _)"
            )));
        }
        let mut list = Vec::new();
        for h in hosts.split(',') {
            let (host, port) = h
                .rsplit_once(':')
                .ok_or_else(|| bad(&format!("`{h}` has no :PORT")))?;
            let port_ok = port.parse::<u16>().is_ok_and(|p| p > 0);
            let host_ok = !host.is_empty()
                && host.bytes().all(|b| {
                    b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'[' | b']' | b':')
                });
            if !port_ok || !host_ok {
                return Err(bad(&format!("`{h}` is not HOST:PORT")));
            }
            list.push(h.to_string());
        }
        let mut cluster = None;
        for pair in query.into_iter().flat_map(|q| q.split('&')) {
            match pair.split_once('=') {
                Some(("cluster", name)) if plain_name(name) => cluster = Some(name.to_string()),
                Some(("cluster", name)) => {
                    return Err(bad(&format!("`{name}` is not a cluster name")));
                }
                _ => {
                    return Err(bad(&format!(
                        "unknown parameter `{pair}` (only cluster=NAME)"
                    )));
                }
            }
        }
        Ok(ClickHouseUrl {
            hosts: list,
            database: database.to_string(),
            cluster,
        })
    }
}

impl fmt::Display for ClickHouseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{SCHEME}{}/{}", self.hosts.join(","), self.database)?;
        if let Some(c) = &self.cluster {
            write!(f, "?cluster={c}")?;
        }
        Ok(())
    }
}

/// What the server's release has, beyond Debian 12's 18.16, that vpcflow
/// uses where it is there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Features {
    /// `isIPAddressInRange` (21.4): a current release's `IPv4StringToNum`
    /// throws on text that is no address, so a prefix test needs it.
    pub(crate) ip_ranges: bool,
}

impl Features {
    /// Of the release `version()` names (major, minor).
    pub(crate) fn of(version: (u32, u32)) -> Features {
        Features {
            ip_ranges: version >= (21, 4),
        }
    }
}

/// Largest answer read from a server.
const MAX_ANSWER_BYTES: u64 = 1 << 31;

/// A connection to a ClickHouse store whose schema is in place.
pub struct ClickHouse {
    url: ClickHouseUrl,
    agent: ureq::Agent,
    /// What the server's release has.
    features: Features,
    /// Where the cluster's shards are among the URL's hosts, once known
    /// (`None` inside: not every shard is listed, or no cluster).
    shards: std::sync::Mutex<Option<Option<std::sync::Arc<Shards>>>>,
}

/// The cluster's shards as the `Distributed` table spreads rows over
/// them, with the URL's host of each.
pub(super) struct Shards {
    /// For each slot of the sharding key modulo the shards' total weight,
    /// the URL's host of its shard (each shard its weight many slots, in
    /// shard order, as ClickHouse counts them).
    pub(super) slots: Vec<usize>,
    /// The sharding key (`cityHash64`) of each port seen, from the server.
    hashes: std::sync::Mutex<std::collections::HashMap<String, u64>>,
}

impl fmt::Debug for ClickHouse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ClickHouse({})", self.url)
    }
}

/// Which host a statement goes to.
#[derive(Clone, Copy)]
enum Target {
    /// The first that answers.
    Any,
    /// This one of the URL's.
    Host(usize),
}

impl ClickHouse {
    /// Connects to the store at `url` and makes its schema where missing.
    pub fn open(url: &ClickHouseUrl) -> Result<ClickHouse, StoreError> {
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_connect(Some(Duration::from_secs(5)))
            .timeout_global(Some(Duration::from_secs(3600)))
            .build()
            .into();
        let mut ch = ClickHouse {
            url: url.clone(),
            agent,
            features: Features::of((0, 0)),
            shards: Default::default(),
        };
        let v = ch.statement(Target::Any, "SELECT version()", None, &[])?;
        let mut parts = v.trim().split('.').map(|p| p.parse::<u32>().unwrap_or(0));
        ch.features = Features::of((parts.next().unwrap_or(0), parts.next().unwrap_or(0)));
        ddl::migrate(&ch)?;
        Ok(ch)
    }

    /// The connection of this process to the store at `url`, opened (and
    /// its schema made) on first use.
    pub fn shared(url: &ClickHouseUrl) -> Result<std::sync::Arc<ClickHouse>, StoreError> {
        use std::collections::HashMap;
        use std::sync::{Arc, Mutex, OnceLock};
        static OPEN: OnceLock<Mutex<HashMap<String, Arc<ClickHouse>>>> = OnceLock::new();
        let open = OPEN.get_or_init(Mutex::default);
        let key = url.to_string();
        if let Some(ch) = open.lock().unwrap_or_else(|e| e.into_inner()).get(&key) {
            return Ok(Arc::clone(ch));
        }
        let ch = Arc::new(ClickHouse::open(url)?);
        open.lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(key, Arc::clone(&ch));
        Ok(ch)
    }

    /// The store's URL.
    pub fn url(&self) -> &ClickHouseUrl {
        &self.url
    }

    /// The database, quoted for SQL.
    fn db(&self) -> String {
        format!("\"{}\"", self.url.database)
    }

    /// The table reads and writes go through: the `Distributed` one on a
    /// cluster, else the table itself.
    fn table(&self, name: &str) -> String {
        format!("{}.\"{name}\"", self.db())
    }

    /// The table each shard holds.
    fn local_table(&self, name: &str) -> String {
        match &self.url.cluster {
            Some(_) => format!("{}.\"{name}_local\"", self.db()),
            None => self.table(name),
        }
    }

    fn failed(&self, host: &str, message: impl fmt::Display) -> StoreError {
        StoreError::ClickHouse {
            at: format!("{SCHEME}{host}/{}", self.url.database),
            message: message.to_string(),
        }
    }

    /// Sends `sql` (and `body`, the data of an `INSERT ... FORMAT`), with
    /// settings, and returns the answer. A host that cannot be reached is
    /// passed over for the next; an answer with an error status is the
    /// server's word on the statement, returned as the error.
    fn statement(
        &self,
        target: Target,
        sql: &str,
        body: Option<&[u8]>,
        settings: &[(&str, String)],
    ) -> Result<String, StoreError> {
        let (host, bytes) = self.statement_bytes(target, sql, body, settings)?;
        String::from_utf8(bytes).map_err(|_| self.failed(&host, "an answer that is not UTF-8"))
    }

    /// [`ClickHouse::statement`], the answer as bytes, with the host that
    /// gave it.
    fn statement_bytes(
        &self,
        target: Target,
        sql: &str,
        body: Option<&[u8]>,
        settings: &[(&str, String)],
    ) -> Result<(String, Vec<u8>), StoreError> {
        let hosts: Vec<usize> = match target {
            Target::Any => (0..self.url.hosts.len()).collect(),
            Target::Host(i) => vec![i],
        };
        let mut last = None;
        for i in hosts {
            let host = &self.url.hosts[i];
            let mut req = self.agent.post(format!("http://{host}/"));
            for (k, v) in settings {
                req = req.query(*k, v);
            }
            let sent = match body {
                Some(data) => req.query("query", sql).send(data),
                None => req.send(sql.as_bytes()),
            };
            let mut answer = match sent {
                Ok(a) => a,
                Err(e) => {
                    last = Some(self.failed(host, e));
                    continue;
                }
            };
            let status = answer.status().as_u16();
            let bytes = answer
                .body_mut()
                .with_config()
                .limit(MAX_ANSWER_BYTES)
                .read_to_vec()
                .map_err(|e| self.failed(host, e))?;
            if status != 200 {
                return Err(self.failed(host, String::from_utf8_lossy(&bytes).trim()));
            }
            return Ok((host.clone(), bytes));
        }
        Err(last.unwrap_or_else(|| self.failed("", "no host in the URL")))
    }

    /// Where the cluster's shards are among the URL's hosts: `None` with
    /// no cluster, or with a shard no listed host is (then inserts go
    /// through the `Distributed` table).
    fn shards(&self) -> Result<Option<std::sync::Arc<Shards>>, StoreError> {
        let mut known = self.shards.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(s) = &*known {
            return Ok(s.clone());
        }
        let Some(cluster) = &self.url.cluster else {
            *known = Some(None);
            return Ok(None);
        };
        let numbers = |text: &str| -> Vec<Vec<u64>> {
            text.lines()
                .map(|l| l.split('\t').filter_map(|n| n.parse().ok()).collect())
                .collect()
        };
        let weights = numbers(&self.statement(
            Target::Any,
            &format!(
                "SELECT shard_num, any(shard_weight) FROM system.clusters WHERE cluster = {} \
                 GROUP BY shard_num ORDER BY shard_num FORMAT TabSeparated",
                literal(cluster)
            ),
            None,
            &[],
        )?);
        let mut host_of = std::collections::HashMap::new();
        for i in 0..self.url.hosts.len() {
            let mine = numbers(&self.statement(
                Target::Host(i),
                &format!(
                    "SELECT shard_num FROM system.clusters WHERE cluster = {} AND is_local \
                     LIMIT 1 FORMAT TabSeparated",
                    literal(cluster)
                ),
                None,
                &[],
            )?);
            if let Some(&[shard]) = mine.first().map(Vec::as_slice) {
                host_of.entry(shard).or_insert(i);
            }
        }
        let mut slots = Vec::new();
        for w in &weights {
            let &[shard, weight] = w.as_slice() else {
                return Err(self.failed("", format!("system.clusters answered {w:?}")));
            };
            let Some(&host) = host_of.get(&shard) else {
                *known = Some(None);
                return Ok(None);
            };
            slots.extend(std::iter::repeat_n(host, weight as usize));
        }
        let shards = (!slots.is_empty()).then(|| {
            std::sync::Arc::new(Shards {
                slots,
                hashes: Default::default(),
            })
        });
        *known = Some(shards.clone());
        Ok(shards)
    }

    /// The sharding key of each of `ports`, asked of the server (its own
    /// `cityHash64`) for the ones not seen before.
    fn port_hashes(
        &self,
        shards: &Shards,
        ports: &std::collections::BTreeSet<String>,
    ) -> Result<std::collections::HashMap<String, u64>, StoreError> {
        let mut hashes = shards.hashes.lock().unwrap_or_else(|e| e.into_inner());
        let new: Vec<&String> = ports.iter().filter(|p| !hashes.contains_key(*p)).collect();
        if !new.is_empty() {
            let list: Vec<String> = new.iter().map(|p| literal(p)).collect();
            let text = self.statement(
                Target::Any,
                &format!(
                    "SELECT cityHash64(p) FROM (SELECT [{}] AS a) ARRAY JOIN a AS p FORMAT TabSeparated",
                    list.join(",")
                ),
                None,
                &[],
            )?;
            let got: Vec<u64> = text.lines().filter_map(|l| l.parse().ok()).collect();
            if got.len() != new.len() {
                return Err(self.failed(
                    "",
                    format!("{} port hashes for {} ports", got.len(), new.len()),
                ));
            }
            for (p, h) in new.into_iter().zip(got) {
                hashes.insert(p.clone(), h);
            }
        }
        Ok(ports
            .iter()
            .filter_map(|p| hashes.get(p).map(|&h| (p.clone(), h)))
            .collect())
    }

    /// The ports whose records each of the URL's hosts holds in its own
    /// table (where the rows went; for tests and diagnosis).
    #[doc(hidden)]
    pub fn ports_on_each_host(&self) -> Result<Vec<Vec<String>>, StoreError> {
        (0..self.url.hosts.len())
            .map(|i| {
                let text = self.statement(
                    Target::Host(i),
                    &format!(
                        "SELECT DISTINCT interface_id FROM {} ORDER BY interface_id FORMAT TabSeparated",
                        self.local_table("records")
                    ),
                    None,
                    &[],
                )?;
                Ok(text.lines().map(str::to_string).collect())
            })
            .collect()
    }

    /// The first row's first value of a `SELECT`, as a number.
    fn count(&self, target: Target, sql: &str) -> Result<u64, StoreError> {
        let text = self.statement(target, sql, None, &[])?;
        text.trim()
            .parse()
            .map_err(|_| self.failed("", format!("`{sql}` answered `{}`", text.trim())))
    }
}

impl ClickHouse {
    /// The store's catalog (empty if none was saved).
    pub fn catalog(&self) -> Result<crate::Catalog, StoreError> {
        let text = self.statement(
            Target::Any,
            &format!(
                "SELECT doc FROM {} ORDER BY seq DESC LIMIT 1 FORMAT JSONEachRow",
                self.table("catalog")
            ),
            None,
            &[],
        )?;
        if text.trim().is_empty() {
            return Ok(crate::Catalog::default());
        }
        #[derive(serde::Deserialize)]
        struct Row {
            doc: String,
        }
        serde_json::from_str::<Row>(text.trim())
            .and_then(|r| serde_json::from_str(&r.doc))
            .map_err(|e| self.failed(&self.url.hosts[0], format!("not a store catalog: {e}")))
    }

    /// Bytes on disk of the records, and of the rest (the window ledger
    /// with its summaries, the catalog), over every shard.
    pub fn bytes_on_disk(&self) -> Result<(u64, u64), StoreError> {
        let parts = match &self.url.cluster {
            Some(c) => format!("cluster({c}, system.parts)"),
            None => "system.parts".to_string(),
        };
        let text = self.statement(
            Target::Any,
            &format!(
                "SELECT sumIf(bytes_on_disk, table IN ('records', 'records_local')), \
                 sumIf(bytes_on_disk, table NOT IN ('records', 'records_local')) \
                 FROM {parts} WHERE active AND database = {} FORMAT TabSeparated",
                literal(&self.url.database)
            ),
            None,
            &[],
        )?;
        let mut n = text
            .split_whitespace()
            .map(|v| v.parse::<u64>().unwrap_or(0));
        Ok((n.next().unwrap_or(0), n.next().unwrap_or(0)))
    }

    /// Adds or updates log groups in the catalog (names, retention, topics).
    pub fn register(&self, groups: &[crate::CatalogGroup]) -> Result<(), StoreError> {
        let mut catalog = self.catalog()?;
        if !catalog.merge(groups) {
            return Ok(());
        }
        let doc = serde_json::to_string(&catalog).map_err(|e| StoreError::Encode {
            path: "catalog".into(),
            message: e.to_string(),
        })?;
        let seq = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        self.statement(
            Target::Any,
            &format!(
                "INSERT INTO {} VALUES ({seq}, {}, toDateTime(now(), 'UTC'))",
                self.table("catalog"),
                literal(&doc)
            ),
            None,
            &[("insert_distributed_sync", "1".into())],
        )?;
        Ok(())
    }
}

/// The statements vpcflow sends, made without a server, to be run on
/// another release of ClickHouse (a test runs them in chDB, a current
/// one): the tables of a store with no cluster, a window's insert, a
/// query's SQL.
#[doc(hidden)]
pub mod offline {
    use super::{ClickHouse, ClickHouseUrl, Features};
    use crate::StoreError;
    use crate::query::Query;
    use crate::shipped::ShippedWindow;

    fn of(database: &str, version: (u32, u32)) -> ClickHouse {
        ClickHouse {
            url: ClickHouseUrl {
                hosts: vec!["offline:9".into()],
                database: database.into(),
                cluster: None,
            },
            agent: ureq::Agent::new_with_defaults(),
            features: Features::of(version),
            shards: Default::default(),
        }
    }

    /// `CREATE DATABASE` and every `CREATE TABLE`.
    pub fn tables(database: &str) -> Vec<String> {
        super::ddl::statements(&of(database, (0, 0)))
    }

    /// A window's inserts and their data: its records (`FORMAT Native`),
    /// then its ledger row (`FORMAT RowBinary`), `summary` being its
    /// summary file's bytes.
    pub fn insert(
        database: &str,
        window_id: &str,
        w: &ShippedWindow,
        summary: &[u8],
    ) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        let ch = of(database, (0, 0));
        let rows = super::insert::every_row(&w.batches);
        Ok(vec![
            (
                format!("INSERT INTO {} FORMAT Native", ch.table("records")),
                super::insert::native_block(
                    &w.batches, &rows, &w.group, &w.topic, w.start, window_id,
                )?,
            ),
            (
                format!("INSERT INTO {} FORMAT RowBinary", ch.table("windows")),
                super::insert::ledger_row(window_id, w, summary),
            ),
        ])
    }

    /// The SQL of `q` for a server of release `version` (major, minor);
    /// `q` names no log group or topic (their names are the server's).
    pub fn query(database: &str, q: &Query, version: (u32, u32)) -> Result<String, StoreError> {
        if q.group.is_some() || q.topic.is_some() {
            return Err(StoreError::Query(
                "offline: a query by log group or topic needs the server".into(),
            ));
        }
        of(database, version).sql_of(q)
    }
}

/// `s` as an SQL string literal (ClickHouse's escapes).
fn literal(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('\'');
    for c in s.chars() {
        match c {
            '\'' => out.push_str("\\'"),
            '\\' => out.push_str("\\\\"),
            c => out.push(c),
        }
    }
    out.push('\'');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_urls_name_hosts_database_and_cluster() {
        let u =
            ClickHouseUrl::parse("clickhouse://127.0.0.1:8123,127.0.0.1:8124/flows?cluster=two")
                .unwrap();
        assert_eq!(u.hosts, ["127.0.0.1:8123", "127.0.0.1:8124"]);
        assert_eq!(u.database, "flows");
        assert_eq!(u.cluster.as_deref(), Some("two"));
        assert_eq!(
            u.to_string(),
            "clickhouse://127.0.0.1:8123,127.0.0.1:8124/flows?cluster=two"
        );
        let one = ClickHouseUrl::parse("clickhouse://db.example:8123/vpcflow").unwrap();
        assert_eq!(one.cluster, None);
        for (bad, why) in [
            ("http://h:1/db", "not a clickhouse:// URL"),
            ("clickhouse://h:1", "no database"),
            ("clickhouse://h/db", "has no :PORT"),
            ("clickhouse://h:0/db", "is not HOST:PORT"),
            ("clickhouse://h:1/db;drop", "is not a database name"),
            ("clickhouse://h:1/db?cluster=a'b", "is not a cluster name"),
            ("clickhouse://h:1/db?user=x", "unknown parameter"),
        ] {
            let e = ClickHouseUrl::parse(bad).unwrap_err().to_string();
            assert!(e.contains(why), "{bad}: {e}");
        }
    }

    #[test]
    fn literals_escape_quotes_and_backslashes() {
        assert_eq!(literal(r"a'b\c"), r"'a\'b\\c'");
    }
}
