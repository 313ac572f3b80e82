//! The control-plane database: a SQLite file under the data directory by
//! default, or a PostgreSQL database that several `vpcflow serve` processes
//! share (one control plane, many API servers).
//!
//! Guarantees, on either:
//! - every read and write of a project's resources is scoped by its
//!   project id;
//! - tokens are stored as SHA-256 hashes, never in the clear, and access
//!   keys' secrets sealed (`signing::SealingKey`);
//! - writes that check something (the flow-log quota, duplicates, the
//!   project's model) are serialized across every process on the database:
//!   each takes the database's write lock as its first statement (SQLite's
//!   `BEGIN IMMEDIATE`, PostgreSQL's transaction-scoped advisory lock), so
//!   a check and the write it allows are one step and the quota is exact
//!   under concurrent creates, whichever server they reach;
//! - a write is durable when its call returns (SQLite: WAL with
//!   `synchronous = FULL`; PostgreSQL: its own commit);
//! - every write bumps a change counter in the same transaction, so a
//!   process that follows the database (the live capture) sees the writes
//!   of every process, not only its own.
//!
//! The SQL is written once for both: `$n` parameters (SQLite reads them as
//! positional too), `ON CONFLICT` upserts, integers for truth values.

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use sha2::{Digest, Sha256};
use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::postgres::{PgConnectOptions, PgConnection};
use sqlx::{AnyConnection, AnyPool, AssertSqlSafe, Connection, Executor, Row};
use std::collections::HashMap;

use serde_json::{Map, Value};
use vpcflow_core::Inventory;
use vpcflow_core::inventory::{AddressScope, InventoryError};

use crate::model::{FlowLog, FlowLogFilter, FlowLogUpdate, LOG_STORE_TYPE, NewFlowLog, Page};
use crate::resources::{
    KINDS, Kind, Owner, SECURITY_GROUP_RULES, add_rule, api_field, api_view, document_item,
    new_item, remove_rule, update_item,
};
use crate::{ControlError, FLOW_LOG_QUOTA};

const SCHEMA: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS projects (id TEXT PRIMARY KEY, created_at TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS tokens (hash TEXT PRIMARY KEY, project_id TEXT NOT NULL REFERENCES projects(id), created_at TEXT NOT NULL)",
    // Access keys: the secret sealed with the servers' sealing key
    // (`signing::SealingKey`), never in the clear.
    "CREATE TABLE IF NOT EXISTS access_keys (access_key TEXT PRIMARY KEY, project_id TEXT NOT NULL REFERENCES projects(id), sealed_secret TEXT NOT NULL, created_at TEXT NOT NULL)",
    // Every resource but flow logs, as its inventory item (JSON, without id
    // and project); `parent_id` is the owning VPC, subnet or log group, and
    // `seq` keeps creation order for the inventory document.
    "CREATE TABLE IF NOT EXISTS resources (
        kind TEXT NOT NULL, id TEXT NOT NULL, project_id TEXT NOT NULL, parent_id TEXT,
        seq INTEGER NOT NULL, body TEXT NOT NULL, created_at TEXT NOT NULL, updated_at TEXT NOT NULL,
        PRIMARY KEY (kind, id))",
    "CREATE INDEX IF NOT EXISTS resources_by_project ON resources (project_id, kind, seq)",
    // The next `seq` is `MAX(seq) + 1`: without this index every insert
    // read the whole table (an 80,000-port import took minutes).
    "CREATE INDEX IF NOT EXISTS resources_by_seq ON resources (seq)",
    "CREATE TABLE IF NOT EXISTS flow_logs (
        id TEXT PRIMARY KEY, project_id TEXT NOT NULL, name TEXT NOT NULL,
        description TEXT NOT NULL, resource_type TEXT NOT NULL, resource_id TEXT NOT NULL,
        traffic_type TEXT NOT NULL, log_group_id TEXT NOT NULL, log_topic_id TEXT NOT NULL,
        admin_state INTEGER NOT NULL, created_at TEXT NOT NULL, updated_at TEXT NOT NULL,
        UNIQUE (project_id, resource_type, resource_id, traffic_type, log_group_id, log_topic_id))",
    "CREATE INDEX IF NOT EXISTS flow_logs_by_project ON flow_logs (project_id, id)",
    // One row: the number of committed writes, for followers.
    "CREATE TABLE IF NOT EXISTS changes (id INTEGER PRIMARY KEY, generation BIGINT NOT NULL)",
    "INSERT INTO changes (id, generation) VALUES (1, 0) ON CONFLICT DO NOTHING",
    // Agents' tokens: each bound to one host, not to a project.
    "CREATE TABLE IF NOT EXISTS agent_tokens (hash TEXT PRIMARY KEY, host TEXT NOT NULL, created_at TEXT NOT NULL)",
    // Windows agents shipped: `writing` from before the store write until
    // after it, then `done`; a retry of a done one is not written again.
    "CREATE TABLE IF NOT EXISTS agent_windows (
        host TEXT NOT NULL, log_group_id TEXT NOT NULL, log_topic_id TEXT NOT NULL, name TEXT NOT NULL,
        state TEXT NOT NULL, records BIGINT NOT NULL, received_at TEXT NOT NULL,
        PRIMARY KEY (host, log_group_id, log_topic_id, name))",
];

/// Where a shipped window stands ([`ControlDb::begin_window`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WindowState {
    /// Not received before: write it, then [`ControlDb::finish_window`].
    New,
    /// Received and written before: a retry, not to be written again.
    Done,
}

/// Flow-log columns with the derived status, for every read.
const FLOW_LOG_SELECT: &str = "SELECT f.id, f.project_id, f.name, f.description, f.resource_type,
    f.resource_id, f.traffic_type, f.log_group_id, f.log_topic_id, f.admin_state,
    f.created_at, f.updated_at,
    CASE WHEN EXISTS (SELECT 1 FROM resources r WHERE r.id = f.resource_id AND r.project_id = f.project_id
            AND r.kind = CASE f.resource_type WHEN 'network' THEN 'subnet' ELSE f.resource_type END)
      THEN 1 ELSE 0 END AS resource_ok,
    CASE WHEN EXISTS (SELECT 1 FROM resources t WHERE t.kind = 'log_topic' AND t.id = f.log_topic_id
            AND t.parent_id = f.log_group_id AND t.project_id = f.project_id)
      THEN 1 ELSE 0 END AS topic_ok
    FROM flow_logs f";

/// The key of the advisory lock PostgreSQL writers take (`vpcflow` in
/// ASCII); any constant would do, as long as every process uses it.
const POSTGRES_WRITE_LOCK: i64 = 0x0076_7063_666c_6f77;

/// UTC now as the API writes times (`yyyy-MM-ddTHH:mm:ss`).
pub fn now_utc() -> String {
    chrono::Utc::now().format("%Y-%m-%dT%H:%M:%S").to_string()
}

/// A project id a token or access key may be made for.
fn check_project_id(project: &str) -> Result<(), ControlError> {
    if project.is_empty()
        || project.len() > 64
        || !project
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-')
    {
        return Err(ControlError::Invalid(format!(
            "project id {project:?}: 1-64 letters, digits or `-`"
        )));
    }
    Ok(())
}

fn hash_token(token: &str) -> String {
    let digest = Sha256::digest(token.as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// A truth value as the schema keeps it (an integer, in both databases).
fn truth(row: &AnyRow, column: &str) -> Result<bool, sqlx::Error> {
    Ok(row.try_get::<i64, _>(column)? != 0)
}

fn flow_log(row: &AnyRow) -> Result<FlowLog, sqlx::Error> {
    let admin_state = truth(row, "admin_state")?;
    let status = if !truth(row, "resource_ok")? || !truth(row, "topic_ok")? {
        "ERROR"
    } else if !admin_state {
        "DOWN"
    } else {
        "ACTIVE"
    };
    let project_id: String = row.try_get("project_id")?;
    Ok(FlowLog {
        id: row.try_get("id")?,
        tenant_id: project_id.clone(),
        project_id,
        name: row.try_get("name")?,
        description: row.try_get("description")?,
        resource_type: row.try_get("resource_type")?,
        resource_id: row.try_get("resource_id")?,
        traffic_type: row.try_get("traffic_type")?,
        log_group_id: row.try_get("log_group_id")?,
        log_topic_id: row.try_get("log_topic_id")?,
        log_store_type: LOG_STORE_TYPE.to_string(),
        admin_state,
        status: status.to_string(),
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

/// Where the control plane keeps its database: parsed from `--database`
/// at the edge, so opening never sees a URL of another kind.
#[derive(Clone, PartialEq, Eq)]
pub enum DatabaseLocation {
    /// A SQLite file, created if missing.
    Sqlite(PathBuf),
    /// A PostgreSQL database (`postgres://USER[:PASSWORD]@HOST[:PORT]/NAME`),
    /// created if missing (when the user may create databases).
    Postgres(String),
}

impl DatabaseLocation {
    /// `--database` as given (`postgres://...`, `postgresql://...`,
    /// `sqlite://FILE`), or else `DIR/control.db`.
    pub fn parse(url: Option<&str>, data_dir: &Path) -> Result<DatabaseLocation, ControlError> {
        let Some(url) = url else {
            return Ok(DatabaseLocation::Sqlite(data_dir.join("control.db")));
        };
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            let options = PgConnectOptions::from_str(url)
                .map_err(|e| ControlError::Invalid(format!("--database: {e}")))?;
            if options.get_database().is_none_or(str::is_empty) {
                return Err(ControlError::Invalid(
                    "--database: name the database (postgres://USER@HOST:PORT/NAME)".into(),
                ));
            }
            return Ok(DatabaseLocation::Postgres(url.to_string()));
        }
        match url.strip_prefix("sqlite://") {
            Some(path) if !path.is_empty() => Ok(DatabaseLocation::Sqlite(PathBuf::from(path))),
            _ => Err(ControlError::Invalid(format!(
                "--database {url:?}: expected postgres://USER@HOST:PORT/NAME or sqlite://FILE"
            ))),
        }
    }
}

/// Shows where it is, never the password.
impl std::fmt::Display for DatabaseLocation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DatabaseLocation::Sqlite(path) => write!(f, "SQLite {}", path.display()),
            DatabaseLocation::Postgres(url) => match PgConnectOptions::from_str(url) {
                Ok(o) => write!(
                    f,
                    "PostgreSQL {}@{}:{}/{}",
                    o.get_username(),
                    o.get_host(),
                    o.get_port(),
                    o.get_database().unwrap_or_default()
                ),
                Err(_) => write!(f, "PostgreSQL"),
            },
        }
    }
}

impl std::fmt::Debug for DatabaseLocation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(self, f)
    }
}

/// The SQL the two databases spell differently.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Dialect {
    Sqlite,
    Postgres,
}

/// A write in progress: the process's write turn and the transaction,
/// which took the database's write lock first.
struct WriteTx {
    tx: sqlx::Transaction<'static, sqlx::Any>,
    _turn: tokio::sync::OwnedMutexGuard<()>,
}

impl WriteTx {
    /// Adds `project` if it is new (a token or key for it is being made).
    async fn add_project(&mut self, project: &str, now: &str) -> Result<(), ControlError> {
        sqlx::query("INSERT INTO projects (id, created_at) VALUES ($1, $2) ON CONFLICT DO NOTHING")
            .bind(project)
            .bind(now)
            .execute(&mut *self.tx)
            .await?;
        Ok(())
    }
}

/// The live capture's inventory: every project whose model checks.
#[derive(Debug)]
pub struct LiveInventory {
    /// The projects' models and flow logs combined.
    pub inventory: Inventory,
    /// The same as an inventory document (what an agent of the fleet is
    /// sent, and reads with [`Inventory::from_json_scoped`]).
    pub document: Value,
    /// Projects left out, with what is wrong in each.
    pub skipped: Vec<(String, String)>,
}

/// A new token's text: `prefix` (`vft_` a project's, `vfa_` an agent's)
/// and 256 random bits.
fn new_token(prefix: &str) -> String {
    format!(
        "{prefix}{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    )
}

/// Whether an inventory document has a port bound to `host`.
fn binds_a_port_to(doc: &Value, host: &str) -> bool {
    doc.get("port")
        .and_then(Value::as_array)
        .is_some_and(|ports| {
            ports
                .iter()
                .any(|p| p.get("host").and_then(Value::as_str) == Some(host))
        })
}

/// The control plane's database.
#[derive(Debug)]
pub struct ControlDb {
    pool: AnyPool,
    dialect: Dialect,
    /// This process's writers queue here before they take the database's
    /// lock (SQLite's busy handler would otherwise poll for it).
    writes: Arc<tokio::sync::Mutex<()>>,
    /// The newest change counter this process has seen (its own commits,
    /// and the database's as [`ControlDb::refresh_generation`] reads it),
    /// watched by the agents' long polls.
    generation: tokio::sync::watch::Sender<u64>,
    /// The models read at the newest generation, so that a fleet's
    /// agents (each window they post is checked against its host's
    /// model, and every agent fetches its model after a change) do not
    /// read and check every project's model again each time.
    models: std::sync::Mutex<ModelCache>,
}

/// A project's id, its model as an inventory document, and what is wrong
/// with it if it does not check on its own.
type ProjectModel = (String, Value, Option<String>);

/// The projects' models and their combinations, read at one generation.
#[derive(Debug, Default)]
struct ModelCache {
    generation: Option<u64>,
    /// Every project's document, and what is wrong with it if it does not
    /// check on its own.
    projects: Option<Arc<[ProjectModel]>>,
    /// Combined inventories by the projects they hold: hosts whose ports
    /// are in the same projects share one.
    combined: HashMap<Vec<String>, Arc<LiveInventory>>,
}

impl ControlDb {
    /// Opens (creating if needed) the database and its tables.
    pub async fn open(location: &DatabaseLocation) -> Result<ControlDb, ControlError> {
        sqlx::any::install_default_drivers();
        let (url, dialect) = match location {
            DatabaseLocation::Sqlite(path) => {
                if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                    std::fs::create_dir_all(dir).map_err(|e| {
                        ControlError::Invalid(format!("data directory {}: {e}", dir.display()))
                    })?;
                }
                (sqlite_url(path), Dialect::Sqlite)
            }
            DatabaseLocation::Postgres(url) => (url.clone(), Dialect::Postgres),
        };
        if dialect == Dialect::Postgres {
            ensure_postgres_database(&url).await?;
        }
        let pool = AnyPoolOptions::new()
            .max_connections(4)
            .acquire_timeout(Duration::from_secs(30))
            .after_connect(move |conn, _| {
                Box::pin(async move {
                    if dialect == Dialect::Sqlite {
                        for pragma in [
                            "PRAGMA journal_mode = WAL",
                            "PRAGMA synchronous = FULL",
                            "PRAGMA busy_timeout = 10000",
                        ] {
                            conn.execute(pragma).await?;
                        }
                    }
                    Ok(())
                })
            })
            .connect(&url)
            .await?;
        let db = ControlDb {
            pool,
            dialect,
            writes: Arc::new(tokio::sync::Mutex::new(())),
            generation: tokio::sync::watch::channel(0).0,
            models: std::sync::Mutex::default(),
        };
        // Under the write lock, so servers starting together on one
        // PostgreSQL database do not race to create the same tables.
        let mut w = db.write().await?;
        for statement in SCHEMA {
            sqlx::query(*statement).execute(&mut *w.tx).await?;
        }
        w.tx.commit().await?;
        db.refresh_generation().await?;
        Ok(db)
    }

    /// Starts a write: this process's turn, then a transaction whose
    /// first statement takes the database's write lock. (A SQLite
    /// transaction that read first and wrote later could find the database
    /// changed by another writer in between and fail with a busy snapshot
    /// instead of waiting its turn.)
    async fn write(&self) -> Result<WriteTx, ControlError> {
        let turn = self.writes.clone().lock_owned().await;
        let tx = match self.dialect {
            Dialect::Sqlite => self.pool.begin_with("BEGIN IMMEDIATE").await?,
            Dialect::Postgres => {
                let mut tx = self.pool.begin().await?;
                // The lock's function returns `void`, which has no Rust type.
                sqlx::query("SELECT pg_advisory_xact_lock($1)::text")
                    .bind(POSTGRES_WRITE_LOCK)
                    .execute(&mut *tx)
                    .await?;
                tx
            }
        };
        Ok(WriteTx { tx, _turn: turn })
    }

    /// Commits a write that changed the model or flow logs, counting it.
    async fn commit(&self, mut w: WriteTx) -> Result<(), ControlError> {
        let generation: i64 = sqlx::query_scalar(
            "UPDATE changes SET generation = generation + 1 WHERE id = 1 RETURNING generation",
        )
        .fetch_one(&mut *w.tx)
        .await?;
        w.tx.commit().await?;
        self.saw_generation(generation as u64);
        Ok(())
    }

    /// Takes `g` as the newest change counter if it is newer; returns the
    /// newest.
    fn saw_generation(&self, g: u64) -> u64 {
        self.generation.send_if_modified(|newest| {
            let newer = g > *newest;
            if newer {
                *newest = g;
            }
            newer
        });
        *self.generation.borrow()
    }

    /// Follows the change counter: the receiver sees every newer value
    /// [`ControlDb::generation`] will return.
    pub fn changes(&self) -> tokio::sync::watch::Receiver<u64> {
        self.generation.subscribe()
    }

    /// Reads the database's change counter (other processes' writes
    /// included) and returns it.
    pub async fn refresh_generation(&self) -> Result<u64, ControlError> {
        let g: i64 = sqlx::query_scalar("SELECT generation FROM changes WHERE id = 1")
            .fetch_one(&self.pool)
            .await?;
        Ok(self.saw_generation(g as u64))
    }

    /// Changes seen so far: differs from an earlier value when anything was
    /// written since (by this process, or by another one once
    /// [`ControlDb::refresh_generation`] has run).
    pub fn generation(&self) -> u64 {
        *self.generation.borrow()
    }

    /// Every project's model and flow logs as one inventory, for the live
    /// capture, which sees every port of the host. Each project is checked
    /// on its own and addresses are unique per project only
    /// ([`AddressScope::Project`]): tenants may reuse each other's
    /// addresses. A project whose model does not check is left out and
    /// named in [`LiveInventory::skipped`], so it never stops the others'
    /// capture.
    pub async fn live_inventory(&self) -> Result<Arc<LiveInventory>, ControlError> {
        self.combined_inventory(|_| true).await
    }

    /// What an agent of the fleet on `host` monitors: the projects with a
    /// port bound to `host`, combined as [`ControlDb::live_inventory`]
    /// combines them (their other ports stay in, for the rules that name
    /// their groups; the agent monitors only its own, see
    /// [`Inventory::local_host`]). An agent sees no other project.
    pub async fn host_inventory(&self, host: &str) -> Result<Arc<LiveInventory>, ControlError> {
        self.combined_inventory(|doc| binds_a_port_to(doc, host))
            .await
    }

    fn cache(&self) -> std::sync::MutexGuard<'_, ModelCache> {
        self.models.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Every project's document at generation `generation` (read once per
    /// generation), with what is wrong with each that does not check.
    async fn project_models(&self, generation: u64) -> Result<Arc<[ProjectModel]>, ControlError> {
        {
            let cache = self.cache();
            if cache.generation == Some(generation)
                && let Some(p) = &cache.projects
            {
                return Ok(Arc::clone(p));
            }
        }
        let mut conn = self.pool.acquire().await?;
        let ids: Vec<String> = sqlx::query_scalar("SELECT id FROM projects ORDER BY id")
            .fetch_all(&mut *conn)
            .await?;
        let mut projects = Vec::with_capacity(ids.len());
        for p in ids {
            let doc = project_document(&mut conn, &p).await?;
            let error = Inventory::from_json(&format!("project {p}"), &doc)
                .err()
                .map(inventory_message);
            projects.push((p, doc, error));
        }
        drop(conn);
        let projects: Arc<[ProjectModel]> = projects.into();
        let mut cache = self.cache();
        // Read at `generation` or later: newer than what the cache holds,
        // or the same. A write meanwhile has bumped the generation, so the
        // next caller reads again.
        if cache.generation.is_none_or(|g| g <= generation) {
            if cache.generation != Some(generation) {
                cache.combined.clear();
            }
            cache.generation = Some(generation);
            cache.projects = Some(Arc::clone(&projects));
        }
        Ok(projects)
    }

    async fn combined_inventory(
        &self,
        wanted: impl Fn(&Value) -> bool,
    ) -> Result<Arc<LiveInventory>, ControlError> {
        let generation = self.generation();
        let projects = self.project_models(generation).await?;
        let mut skipped = Vec::new();
        let mut chosen = Vec::new();
        for (i, (p, doc, error)) in projects.iter().enumerate() {
            if !wanted(doc) {
                continue;
            }
            match error {
                None => chosen.push(i),
                Some(e) => skipped.push((p.clone(), e.clone())),
            }
        }
        let key: Vec<String> = chosen.iter().map(|&i| projects[i].0.clone()).collect();
        {
            let cache = self.cache();
            if cache.generation == Some(generation)
                && let Some(live) = cache.combined.get(&key)
            {
                return Ok(Arc::clone(live));
            }
        }
        let documents = chosen
            .iter()
            .map(|&i| (projects[i].0.clone(), projects[i].1.clone()))
            .collect();
        let live = Arc::new(combine(documents, skipped)?);
        let mut cache = self.cache();
        if cache.generation == Some(generation) {
            cache.combined.insert(key, Arc::clone(&live));
        }
        Ok(live)
    }
}

/// Projects' documents (each checks on its own) as one inventory; a
/// project that breaks the others (an id two of them use) is left out and
/// added to `skipped`.
fn combine(
    documents: Vec<(String, Value)>,
    mut skipped: Vec<(String, String)>,
) -> Result<LiveInventory, ControlError> {
    {
        let combined = |docs: &[(String, Value)]| {
            let mut all = Map::new();
            for (_, doc) in docs {
                let Value::Object(doc) = doc else { continue };
                for (k, v) in doc {
                    match (all.get_mut(k), v) {
                        (Some(Value::Array(a)), Value::Array(b)) => a.extend(b.iter().cloned()),
                        (None, v) => {
                            all.insert(k.clone(), v.clone());
                        }
                        _ => {}
                    }
                }
            }
            let document = Value::Object(all);
            Inventory::from_json_scoped("the control plane", &document, AddressScope::Project)
                .map(|inventory| (inventory, document))
        };
        if let Ok((inventory, document)) = combined(&documents) {
            return Ok(LiveInventory {
                inventory,
                document,
                skipped,
            });
        }
        // Projects that check alone but not together (an id two of them
        // use): add them one by one, leaving out each that breaks the rest.
        let mut kept: Vec<(String, Value)> = Vec::new();
        let (mut inventory, mut document) =
            combined(&kept).map_err(|e| ControlError::Invalid(inventory_message(e)))?;
        for (p, doc) in documents {
            kept.push((p, doc));
            match combined(&kept) {
                Ok((inv, doc)) => (inventory, document) = (inv, doc),
                Err(e) => {
                    let (p, _) = kept.pop().expect("just pushed");
                    skipped.push((p, inventory_message(e)));
                }
            }
        }
        Ok(LiveInventory {
            inventory,
            document,
            skipped,
        })
    }
}

impl ControlDb {
    /// Creates a token for `project` (creating the project if it is new)
    /// and returns it; only its hash is stored.
    pub async fn create_token(&self, project: &str) -> Result<String, ControlError> {
        check_project_id(project)?;
        let token = new_token("vft_");
        let now = now_utc();
        let mut w = self.write().await?;
        w.add_project(project, &now).await?;
        sqlx::query("INSERT INTO tokens (hash, project_id, created_at) VALUES ($1, $2, $3)")
            .bind(hash_token(&token))
            .bind(project)
            .bind(&now)
            .execute(&mut *w.tx)
            .await?;
        w.tx.commit().await?;
        Ok(token)
    }

    /// Creates an access key for `project` (creating the project if it
    /// is new) and returns it with its secret; the secret is stored sealed
    /// with `key`.
    pub async fn create_access_key(
        &self,
        project: &str,
        key: &crate::signing::SealingKey,
    ) -> Result<(String, String), ControlError> {
        check_project_id(project)?;
        let (access_key, secret) = crate::signing::new_access_key()
            .map_err(|e| ControlError::Invalid(format!("no randomness for a new key: {e}")))?;
        let now = now_utc();
        let mut w = self.write().await?;
        w.add_project(project, &now).await?;
        sqlx::query(
            "INSERT INTO access_keys (access_key, project_id, sealed_secret, created_at) VALUES ($1, $2, $3, $4)",
        )
        .bind(&access_key)
        .bind(project)
        .bind(key.seal(&access_key, &secret))
        .bind(&now)
        .execute(&mut *w.tx)
        .await?;
        w.tx.commit().await?;
        Ok((access_key, secret))
    }

    /// The project and the (unsealed) secret of an access key, if it is one.
    pub async fn access_key(
        &self,
        access_key: &str,
        key: &crate::signing::SealingKey,
    ) -> Result<Option<(String, String)>, ControlError> {
        let row: Option<(String, String)> = sqlx::query_as(
            "SELECT project_id, sealed_secret FROM access_keys WHERE access_key = $1",
        )
        .bind(access_key)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.and_then(|(project, sealed)| Some((project, key.open(access_key, &sealed)?))))
    }

    /// Creates a token for the agent on `host` and returns it; only its
    /// hash is stored. It opens the agent paths for that host only (its
    /// ports' model, windows of its ports), and no project's API.
    pub async fn create_agent_token(&self, host: &str) -> Result<String, ControlError> {
        if !vpcflow_core::inventory::valid_host_name(host) {
            return Err(ControlError::Invalid(format!(
                "--agent: `{host}` is not a host name ({})",
                vpcflow_core::inventory::HOST_NAME_RULE
            )));
        }
        let token = new_token("vfa_");
        let mut w = self.write().await?;
        sqlx::query("INSERT INTO agent_tokens (hash, host, created_at) VALUES ($1, $2, $3)")
            .bind(hash_token(&token))
            .bind(host)
            .bind(now_utc())
            .execute(&mut *w.tx)
            .await?;
        w.tx.commit().await?;
        Ok(token)
    }

    /// Notes that the window `name` of `host` is about to be written, or
    /// says it was written before. A window left `writing` by a crash is
    /// settled at the next start ([`ControlDb::unsettled_windows`]) before
    /// anything else can touch the store.
    pub async fn begin_window(
        &self,
        host: &str,
        group: &str,
        topic: &str,
        name: &str,
        records: u64,
    ) -> Result<WindowState, ControlError> {
        let mut w = self.write().await?;
        let state: Option<String> = sqlx::query_scalar(
            "SELECT state FROM agent_windows WHERE host = $1 AND log_group_id = $2 AND log_topic_id = $3 AND name = $4",
        )
        .bind(host)
        .bind(group)
        .bind(topic)
        .bind(name)
        .fetch_optional(&mut *w.tx)
        .await?;
        if state.as_deref() == Some("done") {
            return Ok(WindowState::Done);
        }
        sqlx::query(
            "INSERT INTO agent_windows (host, log_group_id, log_topic_id, name, state, records, received_at)
             VALUES ($1, $2, $3, $4, 'writing', $5, $6) ON CONFLICT (host, log_group_id, log_topic_id, name) DO NOTHING",
        )
        .bind(host)
        .bind(group)
        .bind(topic)
        .bind(name)
        .bind(i64::try_from(records).unwrap_or(i64::MAX))
        .bind(now_utc())
        .execute(&mut *w.tx)
        .await?;
        w.tx.commit().await?;
        Ok(WindowState::New)
    }

    /// The window is durably in the store.
    pub async fn finish_window(
        &self,
        host: &str,
        group: &str,
        topic: &str,
        name: &str,
    ) -> Result<(), ControlError> {
        self.end_window([host, group, topic, name], true).await
    }

    /// A window left `writing` becomes `done`, or is forgotten.
    async fn end_window(&self, key: [&str; 4], done: bool) -> Result<(), ControlError> {
        let q = if done {
            "UPDATE agent_windows SET state = 'done' WHERE host = $1 AND log_group_id = $2 AND log_topic_id = $3 AND name = $4"
        } else {
            "DELETE FROM agent_windows WHERE host = $1 AND log_group_id = $2 AND log_topic_id = $3 AND name = $4"
        };
        key.iter()
            .fold(sqlx::query(q), |q, k| q.bind(*k))
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Windows left `writing` (a crash between their `begin_window` and
    /// `finish_window`): `(host, group, topic, name)`.
    pub async fn unsettled_windows(
        &self,
    ) -> Result<Vec<(String, String, String, String)>, ControlError> {
        Ok(sqlx::query_as(
            "SELECT host, log_group_id, log_topic_id, name FROM agent_windows WHERE state = 'writing'",
        )
        .fetch_all(&self.pool)
        .await?)
    }

    /// Settles a window left `writing`: `done` if its file is in the store
    /// (it was written), else forgotten (the agent sends it again).
    pub async fn settle_window(
        &self,
        (host, group, topic, name): &(String, String, String, String),
        in_store: bool,
    ) -> Result<(), ControlError> {
        self.end_window([host, group, topic, name], in_store).await
    }

    /// Windows received (and written) from each host, and their records.
    pub async fn windows_received(&self) -> Result<Vec<(String, i64, i64)>, ControlError> {
        Ok(sqlx::query_as(
            "SELECT host, COUNT(*), CAST(COALESCE(SUM(records), 0) AS BIGINT) FROM agent_windows WHERE state = 'done' GROUP BY host ORDER BY host",
        )
        .fetch_all(&self.pool)
        .await?)
    }

    /// The host an agent token is for, if it is one.
    pub async fn host_of_agent_token(&self, token: &str) -> Result<Option<String>, ControlError> {
        Ok(
            sqlx::query_scalar("SELECT host FROM agent_tokens WHERE hash = $1")
                .bind(hash_token(token))
                .fetch_optional(&self.pool)
                .await?,
        )
    }

    /// The project a token is for, if it is a token.
    pub async fn project_of_token(&self, token: &str) -> Result<Option<String>, ControlError> {
        Ok(
            sqlx::query_scalar("SELECT project_id FROM tokens WHERE hash = $1")
                .bind(hash_token(token))
                .fetch_optional(&self.pool)
                .await?,
        )
    }

    /// At the database's first start only: adds an inventory file's
    /// projects, resources and flow logs, and keeps its region, window
    /// length and record cap. Returns whether it did (later starts keep
    /// what the API changed). The file is checked first; a bad one is
    /// refused whole.
    pub async fn import_inventory(
        &self,
        source_name: &str,
        text: &str,
    ) -> Result<bool, ControlError> {
        Inventory::from_toml(source_name, text)
            .map_err(|e| ControlError::Invalid(e.to_string()))?;
        let table: toml::Table = toml::from_str(text)
            .map_err(|e| ControlError::Invalid(format!("{source_name}: {e}")))?;
        let doc = serde_json::to_value(table)
            .map_err(|e| ControlError::Invalid(format!("{source_name}: {e}")))?;
        let now = now_utc();
        let mut w = self.write().await?;
        let done =
            sqlx::query(
                "INSERT INTO meta (key, value) VALUES ('inventory_imported', $1) ON CONFLICT DO NOTHING",
            )
                .bind(&now)
                .execute(&mut *w.tx)
                .await?;
        if done.rows_affected() == 0 {
            return Ok(false);
        }
        let settings: Map<String, Value> = ["region", "window_seconds", "max_records_per_window"]
            .into_iter()
            .filter_map(|k| doc.get(k).map(|v| (k.to_string(), v.clone())))
            .collect();
        sqlx::query(
            "INSERT INTO meta (key, value) VALUES ('settings', $1)
             ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        )
        .bind(Value::Object(settings).to_string())
        .execute(&mut *w.tx)
        .await?;
        let items = |key: &str| {
            doc.get(key)
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default()
        };
        for p in items("project") {
            // The file was checked: every project has its id.
            if let Some(id) = p["id"].as_str() {
                w.add_project(id, &now).await?;
            }
        }
        // The file was checked, so every owner exists and comes earlier
        // in KINDS than what it owns.
        let mut project_of: HashMap<(&str, String), String> = HashMap::new();
        for kind in KINDS {
            for item in items(kind.file_key()) {
                let Value::Object(mut body) = item else {
                    continue;
                };
                let id = body
                    .remove("id")
                    .and_then(|v| v.as_str().map(str::to_string))
                    .unwrap_or_default();
                let project = match kind.owner() {
                    Owner::Project => body
                        .remove("project")
                        .and_then(|v| v.as_str().map(str::to_string)),
                    Owner::Parent(f) => body
                        .get(f)
                        .and_then(Value::as_str)
                        .and_then(|parent| project_of.get(&(f, parent.to_string())).cloned()),
                }
                .unwrap_or_default();
                project_of.insert((kind.file_key(), id.clone()), project.clone());
                insert_resource(&mut w.tx, kind, &id, &project, &body, &now).await?;
            }
        }
        for f in items("flow_log") {
            let text = |k: &str| {
                f.get(k)
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string()
            };
            sqlx::query(
                "INSERT INTO flow_logs (id, project_id, name, description, resource_type,
                 resource_id, traffic_type, log_group_id, log_topic_id, admin_state, created_at, updated_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) ON CONFLICT DO NOTHING",
            )
            .bind(text("id"))
            .bind(text("project"))
            .bind(text("name"))
            .bind(text("description"))
            .bind(text("resource_type"))
            .bind(text("resource_id"))
            .bind(text("traffic_type"))
            .bind(text("log_group_id"))
            .bind(text("log_topic_id"))
            .bind(i32::from(
                f.get("admin_state").and_then(Value::as_bool).unwrap_or(true),
            ))
            .bind(&now)
            .bind(&now)
            .execute(&mut *w.tx)
            .await?;
        }
        self.commit(w).await?;
        Ok(true)
    }

    /// Creates a resource in `project` from its API fields; the project's
    /// model must stay valid (references inside the project, CIDRs, rules,
    /// addresses, as an inventory file is checked).
    pub async fn create_resource(
        &self,
        project: &str,
        kind: Kind,
        fields: Map<String, Value>,
    ) -> Result<Value, ControlError> {
        let id = uuid::Uuid::new_v4().to_string();
        let item = new_item(kind, &id, fields)?;
        let mut w = self.write().await?;
        // Counted under the write lock, so racing creates cannot pass it.
        let used = count_resources(&mut w.tx, project, kind).await?;
        if used >= kind.quota() {
            return Err(ControlError::ResourceQuota {
                label: kind.label(),
                quota: kind.quota(),
            });
        }
        insert_resource(&mut w.tx, kind, &id, project, &item, &now_utc()).await?;
        check_project(&mut w.tx, project).await?;
        self.commit(w).await?;
        self.get_resource(project, kind, &id).await
    }

    /// One resource of `project`, as the API shows it.
    pub async fn get_resource(
        &self,
        project: &str,
        kind: Kind,
        id: &str,
    ) -> Result<Value, ControlError> {
        let row = sqlx::query(
            "SELECT id, body, created_at, updated_at FROM resources WHERE kind = $1 AND id = $2 AND project_id = $3",
        )
        .bind(kind.file_key())
        .bind(id)
        .bind(project)
        .fetch_optional(&self.pool)
        .await?
        .ok_or_else(|| not_found(kind, id))?;
        view_of(kind, &row, project)
    }

    /// `project`'s resources of a kind (under `parent`, if given), in
    /// creation order, at most `limit` after the id `marker`.
    pub async fn list_resources(
        &self,
        project: &str,
        kind: Kind,
        parent: Option<&str>,
        page: &Page,
    ) -> Result<Vec<Value>, ControlError> {
        let limit = page.size()?;
        let after: Option<i64> = match &page.marker {
            None => None,
            Some(m) => Some(
                sqlx::query_scalar(
                    "SELECT seq FROM resources WHERE kind = $1 AND id = $2 AND project_id = $3",
                )
                .bind(kind.file_key())
                .bind(m)
                .bind(project)
                .fetch_optional(&self.pool)
                .await?
                .ok_or_else(|| ControlError::Invalid(format!("marker: no {} {m}", kind.label())))?,
            ),
        };
        let rows = sqlx::query(
            "SELECT id, body, created_at, updated_at FROM resources WHERE kind = $1 AND project_id = $2
             AND ($3 IS NULL OR parent_id = $4) AND seq > $5 ORDER BY seq LIMIT $6",
        )
        .bind(kind.file_key())
        .bind(project)
        .bind(parent)
        .bind(parent)
        .bind(after.unwrap_or(0))
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(|r| view_of(kind, r, project)).collect()
    }

    /// Changes a resource; the project's model must stay valid.
    pub async fn update_resource(
        &self,
        project: &str,
        kind: Kind,
        id: &str,
        fields: Map<String, Value>,
    ) -> Result<Value, ControlError> {
        self.modify_resource(project, kind, id, |item| {
            update_item(kind, id, item, fields)
        })
        .await?;
        self.get_resource(project, kind, id).await
    }

    /// The project's security-group rules as the seed cloud lists them
    /// (`/v1/{project_id}/security-group-rules`), group by group in the
    /// order they were made, each group's in its order.
    pub async fn security_group_rules(&self, project: &str) -> Result<Vec<Value>, ControlError> {
        let rows = sqlx::query(
            "SELECT id, body, created_at, updated_at FROM resources
             WHERE kind = $1 AND project_id = $2 ORDER BY seq",
        )
        .bind(Kind::SecurityGroup.file_key())
        .bind(project)
        .fetch_all(&self.pool)
        .await?;
        let mut out = Vec::new();
        for r in &rows {
            if let Value::Object(mut g) = view_of(Kind::SecurityGroup, r, project)?
                && let Some(Value::Array(rules)) = g.remove(SECURITY_GROUP_RULES)
            {
                out.extend(rules);
            }
        }
        Ok(out)
    }

    /// One security-group rule as the seed cloud shows it.
    pub async fn security_group_rule(
        &self,
        project: &str,
        rule_id: &str,
    ) -> Result<Value, ControlError> {
        self.security_group_rules(project)
            .await?
            .into_iter()
            .find(|r| r["id"] == rule_id)
            .ok_or_else(|| ControlError::ResourceNotFound {
                kind: "security group rule",
                id: rule_id.to_string(),
            })
    }

    /// Adds a rule to one of the project's security groups (the cloud's
    /// `POST /v1/{project_id}/security-group-rules`): read, change and
    /// check of the whole model in one write transaction, so two rules
    /// added at once both land and a bad one changes nothing.
    pub async fn create_security_group_rule(
        &self,
        project: &str,
        group: &str,
        rule: Value,
    ) -> Result<Value, ControlError> {
        let id = self
            .modify_resource(project, Kind::SecurityGroup, group, |item| {
                Ok(add_rule(group, item, rule))
            })
            .await?;
        self.security_group_rule(project, &id).await
    }

    /// Changes the stored item of one resource with `f`: read, change,
    /// write and check of the whole model in one write transaction, so
    /// changes made at once all land and a bad one changes nothing.
    pub async fn modify_resource<T>(
        &self,
        project: &str,
        kind: Kind,
        id: &str,
        f: impl FnOnce(&mut Map<String, Value>) -> Result<T, ControlError>,
    ) -> Result<T, ControlError> {
        let mut w = self.write().await?;
        let row = sqlx::query(
            "SELECT body FROM resources WHERE kind = $1 AND id = $2 AND project_id = $3",
        )
        .bind(kind.file_key())
        .bind(id)
        .bind(project)
        .fetch_optional(&mut *w.tx)
        .await?
        .ok_or_else(|| not_found(kind, id))?;
        let mut item = body_of(&row)?;
        let out = f(&mut item)?;
        store_item(&mut w, project, kind, id, item).await?;
        self.commit(w).await?;
        Ok(out)
    }

    /// Sets (or, with `None`, clears) the network ACL of each of
    /// `subnets`, in one write transaction; a subnet of another ACL is
    /// left alone when clearing.
    pub async fn set_subnets_acl(
        &self,
        project: &str,
        acl: &str,
        subnets: &[String],
        associate: bool,
    ) -> Result<(), ControlError> {
        let mut w = self.write().await?;
        for subnet in subnets {
            let row = sqlx::query(
                "SELECT body FROM resources WHERE kind = $1 AND id = $2 AND project_id = $3",
            )
            .bind(Kind::Subnet.file_key())
            .bind(subnet)
            .bind(project)
            .fetch_optional(&mut *w.tx)
            .await?
            .ok_or_else(|| not_found(Kind::Subnet, subnet))?;
            let mut item = body_of(&row)?;
            if associate {
                item.insert("network_acl".into(), Value::from(acl));
            } else if item.get("network_acl").and_then(Value::as_str) == Some(acl) {
                item.remove("network_acl");
            }
            store_item(&mut w, project, Kind::Subnet, subnet, item).await?;
        }
        self.commit(w).await
    }

    /// Deletes a security-group rule of the project, wherever it is (one
    /// write transaction, as [`ControlDb::create_security_group_rule`]).
    pub async fn delete_security_group_rule(
        &self,
        project: &str,
        rule_id: &str,
    ) -> Result<(), ControlError> {
        let kind = Kind::SecurityGroup;
        let mut w = self.write().await?;
        let rows = sqlx::query(
            "SELECT id, body FROM resources WHERE kind = $1 AND project_id = $2 ORDER BY seq",
        )
        .bind(kind.file_key())
        .bind(project)
        .fetch_all(&mut *w.tx)
        .await?;
        for row in &rows {
            let group: String = row.try_get("id")?;
            let mut item = body_of(row)?;
            if remove_rule(&group, &mut item, rule_id) {
                store_item(&mut w, project, kind, &group, item).await?;
                return self.commit(w).await;
            }
        }
        Err(ControlError::ResourceNotFound {
            kind: "security group rule",
            id: rule_id.to_string(),
        })
    }

    /// Deletes a resource nothing else of the project uses (a subnet with
    /// ports, a security group a port or rule names, ... are refused). Flow
    /// logs on it, or writing to a deleted log topic, turn `ERROR`.
    pub async fn delete_resource(
        &self,
        project: &str,
        kind: Kind,
        id: &str,
    ) -> Result<(), ControlError> {
        let mut w = self.write().await?;
        let done =
            sqlx::query("DELETE FROM resources WHERE kind = $1 AND id = $2 AND project_id = $3")
                .bind(kind.file_key())
                .bind(id)
                .bind(project)
                .execute(&mut *w.tx)
                .await?;
        if done.rows_affected() == 0 {
            return Err(not_found(kind, id));
        }
        check_project(&mut w.tx, project)
            .await
            .map_err(|e| match e {
                ControlError::Invalid(m) => {
                    ControlError::InUse(format!("{} {id} is in use: {m}", kind.label()))
                }
                other => other,
            })?;
        self.commit(w).await?;
        Ok(())
    }

    /// The project's model as an inventory file (TOML), as
    /// [`ControlDb::project_inventory`] reads it: what a suggestion edits.
    pub async fn project_inventory_toml(&self, project: &str) -> Result<String, ControlError> {
        let mut conn = self.pool.acquire().await?;
        let doc = without_nulls(project_document(&mut conn, project).await?);
        toml::to_string(&doc).map_err(|e| ControlError::Invalid(format!("project {project}: {e}")))
    }

    /// The project's model as a checked inventory: its resources, and its
    /// flow logs that are not `ERROR` (disabled ones included, with
    /// `admin_state` false).
    pub async fn project_inventory(&self, project: &str) -> Result<Inventory, ControlError> {
        let mut conn = self.pool.acquire().await?;
        let doc = project_document(&mut conn, project).await?;
        Inventory::from_json(&format!("project {project}"), &doc)
            .map_err(|e| ControlError::Invalid(inventory_message(e)))
    }

    /// Creates a flow log in `project`: its resource, log group and topic
    /// must be the project's; a duplicate or a 11th flow log is refused.
    pub async fn create_flow_log(
        &self,
        project: &str,
        new: &NewFlowLog,
    ) -> Result<FlowLog, ControlError> {
        let mut w = self.write().await?;
        let count = |kind: Kind, id: &str| {
            sqlx::query_scalar::<_, i64>(
                "SELECT COUNT(*) FROM resources WHERE kind = $1 AND id = $2 AND project_id = $3",
            )
            .bind(kind.file_key())
            .bind(id.to_string())
            .bind(project.to_string())
        };
        if count(new.resource_type.kind(), &new.resource_id)
            .fetch_one(&mut *w.tx)
            .await?
            == 0
        {
            return Err(ControlError::Invalid(format!(
                "resource_id: this project has no {} {}",
                new.resource_type.as_str(),
                new.resource_id
            )));
        }
        if count(Kind::LogGroup, &new.log_group_id)
            .fetch_one(&mut *w.tx)
            .await?
            == 0
        {
            return Err(ControlError::Invalid(format!(
                "log_group_id: this project has no log group {}",
                new.log_group_id
            )));
        }
        let topics: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM resources WHERE kind = 'log_topic' AND id = $1 AND parent_id = $2 AND project_id = $3",
        )
        .bind(&new.log_topic_id)
        .bind(&new.log_group_id)
        .bind(project)
        .fetch_one(&mut *w.tx)
        .await?;
        if topics == 0 {
            return Err(ControlError::Invalid(format!(
                "log_topic_id: log group {} has no log topic {}",
                new.log_group_id, new.log_topic_id
            )));
        }
        let duplicate: Option<String> = sqlx::query_scalar(
            "SELECT id FROM flow_logs WHERE project_id = $1 AND resource_type = $2 AND resource_id = $3
             AND traffic_type = $4 AND log_group_id = $5 AND log_topic_id = $6",
        )
        .bind(project)
        .bind(new.resource_type.as_str())
        .bind(&new.resource_id)
        .bind(new.traffic_type)
        .bind(&new.log_group_id)
        .bind(&new.log_topic_id)
        .fetch_optional(&mut *w.tx)
        .await?;
        if let Some(id) = duplicate {
            return Err(ControlError::Duplicate(id));
        }
        let used: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM flow_logs WHERE project_id = $1")
            .bind(project)
            .fetch_one(&mut *w.tx)
            .await?;
        if used >= i64::from(FLOW_LOG_QUOTA) {
            return Err(ControlError::Quota {
                quota: FLOW_LOG_QUOTA,
            });
        }
        let id = uuid::Uuid::new_v4().to_string();
        let now = now_utc();
        sqlx::query(
            "INSERT INTO flow_logs (id, project_id, name, description, resource_type, resource_id,
             traffic_type, log_group_id, log_topic_id, admin_state, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
        )
        .bind(&id)
        .bind(project)
        .bind(&new.name)
        .bind(&new.description)
        .bind(new.resource_type.as_str())
        .bind(&new.resource_id)
        .bind(new.traffic_type)
        .bind(&new.log_group_id)
        .bind(&new.log_topic_id)
        .bind(i32::from(new.admin_state))
        .bind(&now)
        .bind(&now)
        .execute(&mut *w.tx)
        .await?;
        self.commit(w).await?;
        self.get_flow_log(project, &id).await
    }

    /// One flow log of `project`.
    pub async fn get_flow_log(&self, project: &str, id: &str) -> Result<FlowLog, ControlError> {
        let row = sqlx::query(AssertSqlSafe(format!(
            "{FLOW_LOG_SELECT} WHERE f.project_id = $1 AND f.id = $2"
        )))
        .bind(project)
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        match row {
            Some(r) => Ok(flow_log(&r)?),
            None => Err(ControlError::NotFound(id.to_string())),
        }
    }

    /// `project`'s flow logs matching `filter`, by id, after `marker`.
    pub async fn list_flow_logs(
        &self,
        project: &str,
        filter: &FlowLogFilter,
    ) -> Result<Vec<FlowLog>, ControlError> {
        let limit = filter.page_size()?;
        // Every flow log is the project's and in the log store: another
        // tenant or store type matches none.
        if filter.tenant_id.as_ref().is_some_and(|t| t != project)
            || filter
                .log_store_type
                .as_ref()
                .is_some_and(|t| !t.eq_ignore_ascii_case(LOG_STORE_TYPE))
        {
            return Ok(Vec::new());
        }
        let resource_type = filter
            .resource_type
            .as_ref()
            .map(|t| t.to_ascii_lowercase());
        let mut sql = format!("{FLOW_LOG_SELECT} WHERE f.project_id = $1");
        let mut binds: Vec<String> = vec![project.to_string()];
        let columns = [
            ("id", &filter.id),
            ("name", &filter.name),
            ("description", &filter.description),
            ("resource_type", &resource_type),
            ("resource_id", &filter.resource_id),
            ("traffic_type", &filter.traffic_type),
            ("log_group_id", &filter.log_group_id),
            ("log_topic_id", &filter.log_topic_id),
        ];
        for (column, value) in columns {
            if let Some(v) = value {
                binds.push(v.clone());
                sql.push_str(&format!(" AND f.{column} = ${}", binds.len()));
            }
        }
        if let Some(a) = filter.admin_state {
            sql.push_str(&format!(" AND f.admin_state = {}", i32::from(a)));
        }
        if let Some(m) = &filter.marker {
            binds.push(m.clone());
            sql.push_str(&format!(" AND f.id > ${}", binds.len()));
        }
        sql.push_str(" ORDER BY f.id");
        // Status is derived, so it filters after the query; the page is
        // cut after that filter.
        // Only constant column names were added; values are bound.
        let mut q = sqlx::query(AssertSqlSafe(sql));
        for b in &binds {
            q = q.bind(b);
        }
        let rows = q.fetch_all(&self.pool).await?;
        let mut out = Vec::new();
        for r in &rows {
            let f = flow_log(r)?;
            if filter.status.as_ref().is_some_and(|s| *s != f.status) {
                continue;
            }
            out.push(f);
            if out.len() == limit as usize {
                break;
            }
        }
        Ok(out)
    }

    /// Changes a flow log's name, description or admin state.
    pub async fn update_flow_log(
        &self,
        project: &str,
        id: &str,
        update: &FlowLogUpdate,
    ) -> Result<FlowLog, ControlError> {
        let mut w = self.write().await?;
        let done = sqlx::query(
            "UPDATE flow_logs SET name = COALESCE($1, name), description = COALESCE($2, description),
             admin_state = COALESCE($3, admin_state), updated_at = $4 WHERE project_id = $5 AND id = $6",
        )
        .bind(&update.name)
        .bind(&update.description)
        .bind(update.admin_state.map(i32::from))
        .bind(now_utc())
        .bind(project)
        .bind(id)
        .execute(&mut *w.tx)
        .await?;
        if done.rows_affected() == 0 {
            return Err(ControlError::NotFound(id.to_string()));
        }
        self.commit(w).await?;
        self.get_flow_log(project, id).await
    }

    /// Deletes a flow log.
    pub async fn delete_flow_log(&self, project: &str, id: &str) -> Result<(), ControlError> {
        let mut w = self.write().await?;
        let done = sqlx::query("DELETE FROM flow_logs WHERE project_id = $1 AND id = $2")
            .bind(project)
            .bind(id)
            .execute(&mut *w.tx)
            .await?;
        if done.rows_affected() == 0 {
            return Err(ControlError::NotFound(id.to_string()));
        }
        self.commit(w).await?;
        Ok(())
    }

    /// Flow logs and projects in the whole control plane (for metrics).
    pub async fn totals(&self) -> Result<(u64, u64), ControlError> {
        let flow_logs: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM flow_logs")
            .fetch_one(&self.pool)
            .await?;
        let projects: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM projects")
            .fetch_one(&self.pool)
            .await?;
        Ok((flow_logs as u64, projects as u64))
    }

    /// How many of a kind `project` has.
    pub async fn resources_used(&self, project: &str, kind: Kind) -> Result<u32, ControlError> {
        let mut c = self.pool.acquire().await?;
        count_resources(&mut c, project, kind).await
    }

    /// Flow logs `project` has.
    pub async fn flow_logs_used(&self, project: &str) -> Result<u32, ControlError> {
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM flow_logs WHERE project_id = $1")
            .bind(project)
            .fetch_one(&self.pool)
            .await?;
        Ok(n as u32)
    }
}

/// A SQLite file as the URL the `Any` driver opens (created if missing;
/// the path is percent-decoded, so `%`, `?` and `#` are encoded).
fn sqlite_url(path: &Path) -> String {
    let mut url = String::from("sqlite://");
    for c in path.to_string_lossy().chars() {
        match c {
            '%' => url.push_str("%25"),
            '?' => url.push_str("%3F"),
            '#' => url.push_str("%23"),
            c => url.push(c),
        }
    }
    url.push_str("?mode=rwc");
    url
}

/// Connects once to the database `url` names, creating it (connected to
/// the server's `postgres` database as the same user) if it does not
/// exist; another process creating it at the same time is not an error.
/// One plain connection first, so an unreachable server or a refused login
/// is said as such, not as a pool that timed out.
async fn ensure_postgres_database(url: &str) -> Result<(), ControlError> {
    let options = PgConnectOptions::from_str(url)?;
    match PgConnection::connect_with(&options).await {
        Ok(conn) => return Ok(conn.close().await?),
        // 3D000: invalid_catalog_name, the database does not exist.
        Err(sqlx::Error::Database(d)) if d.code().as_deref() == Some("3D000") => {}
        Err(e) => return Err(e.into()),
    }
    let name = options.get_database().unwrap_or_default().to_string();
    let mut conn = PgConnection::connect_with(&options.database("postgres")).await?;
    let created = conn
        .execute(AssertSqlSafe(format!(
            "CREATE DATABASE \"{}\"",
            name.replace('"', "\"\"")
        )))
        .await;
    conn.close().await?;
    match created {
        // duplicate_database (42P04), or, when the other creator is still
        // committing, the catalog's unique_violation (23505).
        Err(sqlx::Error::Database(d)) if matches!(d.code().as_deref(), Some("42P04" | "23505")) => {
            Ok(())
        }
        other => other.map(|_| ()).map_err(ControlError::from),
    }
}

/// Writes a changed resource and checks the project's model with it,
/// inside the caller's write.
async fn store_item(
    w: &mut WriteTx,
    project: &str,
    kind: Kind,
    id: &str,
    item: Map<String, Value>,
) -> Result<(), ControlError> {
    sqlx::query("UPDATE resources SET body = $1, updated_at = $2 WHERE kind = $3 AND id = $4")
        .bind(Value::Object(item).to_string())
        .bind(now_utc())
        .bind(kind.file_key())
        .bind(id)
        .execute(&mut *w.tx)
        .await?;
    check_project(&mut w.tx, project).await
}

fn not_found(kind: Kind, id: &str) -> ControlError {
    ControlError::ResourceNotFound {
        kind: kind.label(),
        id: id.to_string(),
    }
}

fn body_of(row: &AnyRow) -> Result<Map<String, Value>, ControlError> {
    let text: String = row.try_get("body")?;
    match serde_json::from_str(&text) {
        Ok(Value::Object(m)) => Ok(m),
        _ => Err(ControlError::Invalid(format!(
            "a stored resource is not a JSON object: {text}"
        ))),
    }
}

/// A resource row (id, body, times) as the API shows it.
fn view_of(kind: Kind, row: &AnyRow, project: &str) -> Result<Value, ControlError> {
    Ok(api_view(
        kind,
        &row.try_get::<String, _>("id")?,
        project,
        &body_of(row)?,
        &row.try_get::<String, _>("created_at")?,
        &row.try_get::<String, _>("updated_at")?,
    ))
}

/// How many of a kind `project` has.
async fn count_resources(
    conn: &mut AnyConnection,
    project: &str,
    kind: Kind,
) -> Result<u32, ControlError> {
    let n: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM resources WHERE kind = $1 AND project_id = $2")
            .bind(kind.file_key())
            .bind(project)
            .fetch_one(&mut *conn)
            .await?;
    Ok(u32::try_from(n).unwrap_or(u32::MAX))
}

async fn insert_resource(
    conn: &mut AnyConnection,
    kind: Kind,
    id: &str,
    project: &str,
    item: &Map<String, Value>,
    now: &str,
) -> Result<(), ControlError> {
    sqlx::query(
        "INSERT INTO resources (kind, id, project_id, parent_id, seq, body, created_at, updated_at)
         VALUES ($1, $2, $3, $4, (SELECT COALESCE(MAX(seq), 0) + 1 FROM resources), $5, $6, $7)
         ON CONFLICT DO NOTHING",
    )
    .bind(kind.file_key())
    .bind(id)
    .bind(project)
    .bind(kind.parent_of(item))
    .bind(Value::Object(item.clone()).to_string())
    .bind(now)
    .bind(now)
    .execute(conn)
    .await?;
    Ok(())
}

/// An inventory error in the API's words (`subnet_id`, not `subnet`).
fn inventory_message(e: InventoryError) -> String {
    match e {
        InventoryError::Invalid {
            item,
            field,
            message,
            ..
        } => format!("{item}: {}: {message}", api_field(&field)),
        InventoryError::Syntax { message, .. } | InventoryError::Read { message, .. } => message,
    }
}

/// The project's model as an inventory document.
/// `v` without its null members: an inventory file leaves out what is not
/// set, and TOML has no null.
fn without_nulls(v: Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.into_iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k, without_nulls(v)))
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.into_iter().map(without_nulls).collect()),
        other => other,
    }
}

async fn project_document(conn: &mut AnyConnection, project: &str) -> Result<Value, ControlError> {
    let settings: Option<String> =
        sqlx::query_scalar("SELECT value FROM meta WHERE key = 'settings'")
            .fetch_optional(&mut *conn)
            .await?;
    let mut doc = match settings.and_then(|s| serde_json::from_str(&s).ok()) {
        Some(Value::Object(m)) => m,
        _ => Map::new(),
    };
    doc.insert("project".into(), serde_json::json!([{ "id": project }]));
    let rows =
        sqlx::query("SELECT kind, id, body FROM resources WHERE project_id = $1 ORDER BY seq")
            .bind(project)
            .fetch_all(&mut *conn)
            .await?;
    for r in &rows {
        let key: String = r.try_get("kind")?;
        let Some(kind) = KINDS.into_iter().find(|k| k.file_key() == key) else {
            continue;
        };
        let id: String = r.try_get("id")?;
        let item = document_item(kind, &id, project, &body_of(r)?);
        push(&mut doc, kind.file_key(), item);
    }
    let rows = sqlx::query(AssertSqlSafe(format!(
        "{FLOW_LOG_SELECT} WHERE f.project_id = $1 ORDER BY f.created_at, f.id"
    )))
    .bind(project)
    .fetch_all(&mut *conn)
    .await?;
    for r in &rows {
        let f = flow_log(r)?;
        if f.status == "ERROR" {
            continue;
        }
        push(
            &mut doc,
            "flow_log",
            serde_json::json!({
                "id": f.id, "project": project, "name": f.name, "description": f.description,
                "resource_type": f.resource_type, "resource_id": f.resource_id,
                "traffic_type": f.traffic_type, "log_group_id": f.log_group_id,
                "log_topic_id": f.log_topic_id, "admin_state": f.admin_state,
            }),
        );
    }
    Ok(Value::Object(doc))
}

fn push(doc: &mut Map<String, Value>, key: &str, item: Value) {
    if let Value::Array(a) = doc
        .entry(key.to_string())
        .or_insert_with(|| Value::Array(Vec::new()))
    {
        a.push(item);
    }
}

/// Checks the project's model as it stands in this transaction.
async fn check_project(conn: &mut AnyConnection, project: &str) -> Result<(), ControlError> {
    let doc = project_document(conn, project).await?;
    Inventory::from_json("request", &doc)
        .map(|_| ())
        .map_err(|e| ControlError::Invalid(inventory_message(e)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::ResourceType;
    use serde_json::json;

    const PROJECT: &str = "5f67944957444bd6bb4fe3b367de8f3d";
    const GROUP: &str = "a1b2c3d4-0000-4000-8000-000000000001";

    #[test]
    fn database_locations_are_parsed_at_the_edge() {
        let data = Path::new("/var/lib/vpcflow");
        let parse = |url| DatabaseLocation::parse(url, data);
        assert_eq!(
            parse(None).unwrap(),
            DatabaseLocation::Sqlite(data.join("control.db"))
        );
        assert_eq!(
            parse(Some("sqlite:///srv/cp.db")).unwrap(),
            DatabaseLocation::Sqlite("/srv/cp.db".into())
        );
        let pg = parse(Some("postgres://cp:s3cret@db.internal:5433/control")).unwrap();
        assert!(matches!(pg, DatabaseLocation::Postgres(_)));
        assert_eq!(pg.to_string(), "PostgreSQL cp@db.internal:5433/control");
        assert!(
            !format!("{pg:?}").contains("s3cret"),
            "the password is never shown"
        );
        assert!(matches!(
            parse(Some("postgresql://cp@localhost/control")).unwrap(),
            DatabaseLocation::Postgres(_)
        ));
        let refused = |url| match parse(Some(url)) {
            Err(ControlError::Invalid(m)) => m,
            other => panic!("{url} was not refused: {other:?}"),
        };
        assert!(refused("mysql://db/control").contains("expected postgres://"));
        assert!(refused("sqlite://").contains("expected postgres://"));
        assert!(refused("postgres://cp@db.internal:5433").contains("name the database"));
        assert!(refused("postgres://cp@db.internal:notaport/x").starts_with("--database:"));
    }

    #[test]
    fn a_sqlite_path_keeps_its_odd_characters() {
        assert_eq!(
            sqlite_url(Path::new("/d/a b?c#d%e.db")),
            "sqlite:///d/a b%3Fc%23d%25e.db?mode=rwc"
        );
    }

    #[tokio::test]
    async fn an_unreachable_postgres_server_is_said_as_such() {
        // Nothing listens on port 1 of the loopback.
        let location = DatabaseLocation::Postgres("postgres://vpcflow@127.0.0.1:1/cp".into());
        let started = std::time::Instant::now();
        let e = ControlDb::open(&location).await.unwrap_err().to_string();
        assert!(e.to_lowercase().contains("refused"), "{e}");
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "not a pool timeout"
        );
    }

    fn example_inventory() -> String {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/vpc.toml");
        std::fs::read_to_string(path).unwrap()
    }

    fn fields(v: Value) -> Map<String, Value> {
        let Value::Object(m) = v else { panic!("{v}") };
        m
    }

    /// Hardening finding 4: one combined, globally checked inventory let
    /// tenant B's port with tenant A's address freeze A's live capture.
    /// Each project is checked alone now; an invalid one is left out and
    /// named, the others kept.
    #[tokio::test]
    async fn the_live_inventory_is_checked_per_project() {
        let dir = tempfile::tempdir().unwrap();
        let db = ControlDb::open(&DatabaseLocation::Sqlite(dir.path().join("c.db")))
            .await
            .unwrap();
        db.import_inventory("vpc.toml", &example_inventory())
            .await
            .unwrap();
        let b = "tenant-b";
        db.create_token(b).await.unwrap();
        let id = |v: Value| v["id"].as_str().unwrap().to_string();
        let vpc = id(db
            .create_resource(
                b,
                Kind::Vpc,
                fields(json!({"name": "b", "cidr": "192.168.0.0/16"})),
            )
            .await
            .unwrap());
        let subnet = id(db
            .create_resource(
                b,
                Kind::Subnet,
                fields(json!({"vpc_id": vpc, "cidr": "192.168.0.0/24"})),
            )
            .await
            .unwrap());
        let sg = id(db
            .create_resource(b, Kind::SecurityGroup, fields(json!({"name": "b"})))
            .await
            .unwrap());
        db.create_resource(
            b,
            Kind::Port,
            fields(json!({"subnet_id": subnet, "ips": ["192.168.0.154"], "security_groups": [sg]})),
        )
        .await
        .unwrap();
        let live = db.live_inventory().await.unwrap();
        assert!(live.skipped.is_empty(), "{:?}", live.skipped);
        assert_eq!(live.inventory.ports.len(), 4);
        assert_eq!(live.inventory.flow_logs.len(), 2, "A's flow logs stay");

        // Tenant C's model is invalid (overlapping subnets, as a database
        // written before that check could hold): C is left out, named.
        let c = "tenant-c";
        db.create_token(c).await.unwrap();
        let mut conn = db.pool.acquire().await.unwrap();
        let now = now_utc();
        for (kind, item_id, f) in [
            (Kind::Vpc, "cv", json!({"cidr": "10.0.0.0/16"})),
            (
                Kind::Subnet,
                "cs1",
                json!({"vpc_id": "cv", "cidr": "10.0.0.0/24"}),
            ),
            (
                Kind::Subnet,
                "cs2",
                json!({"vpc_id": "cv", "cidr": "10.0.0.0/25"}),
            ),
        ] {
            let item = new_item(kind, item_id, fields(f)).unwrap();
            insert_resource(&mut conn, kind, item_id, c, &item, &now)
                .await
                .unwrap();
        }
        // Counted as a change, as every write through the API is (the
        // models are read once per change).
        let again = db.live_inventory().await.unwrap();
        assert!(Arc::ptr_eq(&again, &db.live_inventory().await.unwrap()));
        sqlx::query("UPDATE changes SET generation = generation + 1 WHERE id = 1")
            .execute(&mut *conn)
            .await
            .unwrap();
        drop(conn);
        db.refresh_generation().await.unwrap();
        let live = db.live_inventory().await.unwrap();
        assert!(!Arc::ptr_eq(&again, &live));
        assert_eq!(live.skipped.len(), 1, "{:?}", live.skipped);
        assert_eq!(live.skipped[0].0, c);
        assert!(
            live.skipped[0].1.contains("overlaps subnet"),
            "{:?}",
            live.skipped
        );
        assert_eq!(live.inventory.ports.len(), 4);
        assert_eq!(live.inventory.flow_logs.len(), 2);
    }

    /// Every (resource, traffic type, topic) of the example project: 36,
    /// two of which the example inventory already has.
    fn every_flow_log() -> Vec<NewFlowLog> {
        let resources = [
            (ResourceType::Vpc, "80ee2ed7-605d-49b4-ac6b-6e581acd35a3"),
            (
                ResourceType::Network,
                "93f4cb2d-0e0e-4e2d-a705-e3817bd7ca45",
            ),
            (
                ResourceType::Network,
                "c1e4a0b2-7d5f-4e8a-b3c6-9f0a1d2e3b4c",
            ),
            (ResourceType::Port, "1d515d18-1b36-47dc-a983-bd6512aed4bd"),
            (ResourceType::Port, "7a2c9e41-5b3d-4f60-8e1a-2c4b6d8f0a13"),
            (ResourceType::Port, "e3f1b2c4-d5a6-4b7c-8d9e-0f1a2b3c4d5e"),
        ];
        let mut all = Vec::new();
        for (resource_type, resource_id) in resources {
            for traffic_type in ["all", "accept", "reject"] {
                for topic in ["000000000002", "000000000003"] {
                    all.push(NewFlowLog {
                        name: format!("fl-{}", all.len()),
                        description: String::new(),
                        resource_type,
                        resource_id: resource_id.to_string(),
                        traffic_type,
                        log_group_id: GROUP.to_string(),
                        log_topic_id: format!("a1b2c3d4-0000-4000-8000-{topic}"),
                        admin_state: true,
                    });
                }
            }
        }
        all
    }

    /// Two handles on one database (two `serve` processes, as far as the
    /// database can tell): opened at once, one import, tokens and writes
    /// of one seen by the other, the quota exact across both.
    async fn two_handles_are_one_control_plane(location: DatabaseLocation) {
        let (a, b) = tokio::join!(ControlDb::open(&location), ControlDb::open(&location));
        let (a, b) = (Arc::new(a.unwrap()), Arc::new(b.unwrap()));
        let inventory = example_inventory();
        let (imported_a, imported_b) = tokio::join!(
            a.import_inventory("vpc.toml", &inventory),
            b.import_inventory("vpc.toml", &inventory)
        );
        assert!(
            imported_a.unwrap() ^ imported_b.unwrap(),
            "exactly one import"
        );
        let token = a.create_token(PROJECT).await.unwrap();
        assert_eq!(
            b.project_of_token(&token).await.unwrap().as_deref(),
            Some(PROJECT)
        );
        let before = b.refresh_generation().await.unwrap();
        let mut creates = tokio::task::JoinSet::new();
        for (i, new) in every_flow_log().into_iter().enumerate() {
            let db = if i % 2 == 0 { a.clone() } else { b.clone() };
            creates.spawn(async move { db.create_flow_log(PROJECT, &new).await });
        }
        let (mut created, mut duplicates, mut over_quota) = (0, 0, 0);
        while let Some(r) = creates.join_next().await {
            match r.unwrap() {
                Ok(_) => created += 1,
                Err(ControlError::Duplicate(_)) => duplicates += 1,
                Err(ControlError::Quota { quota: 10 }) => over_quota += 1,
                Err(e) => panic!("{e}"),
            }
        }
        assert_eq!((created, duplicates, over_quota), (8, 2, 26));
        assert_eq!(a.flow_logs_used(PROJECT).await.unwrap(), 10);
        // The other handle's writes reach this one's change counter once
        // it reads the database, and both agree on the count.
        let after = b.refresh_generation().await.unwrap();
        assert!(after >= before + 8, "{before} -> {after}");
        assert_eq!(a.refresh_generation().await.unwrap(), after);
        let listed = b
            .list_flow_logs(PROJECT, &FlowLogFilter::default())
            .await
            .unwrap();
        assert_eq!(listed.len(), 10);
        let disabled = &listed[0].id;
        let update = FlowLogUpdate {
            admin_state: Some(false),
            ..FlowLogUpdate::default()
        };
        a.update_flow_log(PROJECT, disabled, &update).await.unwrap();
        assert_eq!(b.refresh_generation().await.unwrap(), after + 1);
        assert_eq!(
            b.get_flow_log(PROJECT, disabled).await.unwrap().status,
            "DOWN"
        );
        let inventory = b.live_inventory().await.unwrap().inventory.clone();
        assert_eq!(inventory.flow_logs.len(), 10);
        assert!(
            inventory
                .flow_logs
                .iter()
                .any(|f| f.id == *disabled && !f.admin_state)
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn two_handles_on_one_sqlite_file_are_one_control_plane() {
        let dir = tempfile::tempdir().unwrap();
        two_handles_are_one_control_plane(DatabaseLocation::Sqlite(dir.path().join("c?#.db")))
            .await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    #[ignore = "needs a PostgreSQL server (VPCFLOW_TEST_POSTGRES): scripts/test.sh starts one"]
    async fn two_handles_on_one_postgres_database_are_one_control_plane() {
        let server = std::env::var("VPCFLOW_TEST_POSTGRES").expect(
            "set VPCFLOW_TEST_POSTGRES=postgres://USER@127.0.0.1:PORT (scripts/postgres.sh starts one)",
        );
        let name = format!(
            "vpcflow_unit_{}_{}",
            std::process::id(),
            uuid::Uuid::new_v4().simple()
        );
        let url = format!("{}/{name}", server.trim_end_matches('/'));
        let location = DatabaseLocation::parse(Some(&url), Path::new(".")).unwrap();
        two_handles_are_one_control_plane(location).await;
    }
}
