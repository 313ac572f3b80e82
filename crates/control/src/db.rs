//! The control-plane database (SQLite under the data directory).
//!
//! Guarantees:
//! - every read and write of a project's resources is scoped by its
//!   project id;
//! - tokens are stored as SHA-256 hashes, never in the clear;
//! - the flow-log quota is exact under concurrent creates: a create counts
//!   and inserts in one transaction, and creates are serialized;
//! - a write is durable when its call returns (WAL, `synchronous = FULL`).

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use sha2::{Digest, Sha256};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow,
    SqliteSynchronous,
};
use std::collections::HashMap;

use serde_json::{Map, Value};
use sqlx::sqlite::SqliteConnection;
use sqlx::{AssertSqlSafe, Row};
use vpcflow_core::Inventory;
use vpcflow_core::inventory::InventoryError;

use crate::model::{FlowLog, FlowLogFilter, FlowLogUpdate, NewFlowLog, Page};
use crate::resources::{
    KINDS, Kind, Owner, api_field, api_view, document_item, new_item, update_item,
};
use crate::{ControlError, FLOW_LOG_QUOTA};

const SCHEMA: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS projects (id TEXT PRIMARY KEY, created_at TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS tokens (hash TEXT PRIMARY KEY, project_id TEXT NOT NULL REFERENCES projects(id), created_at TEXT NOT NULL)",
    // Every resource but flow logs, as its inventory item (JSON, without id
    // and project); `parent_id` is the owning VPC, subnet or log group, and
    // `seq` keeps creation order for the inventory document.
    "CREATE TABLE IF NOT EXISTS resources (
        kind TEXT NOT NULL, id TEXT NOT NULL, project_id TEXT NOT NULL, parent_id TEXT,
        seq INTEGER NOT NULL, body TEXT NOT NULL, created_at TEXT NOT NULL, updated_at TEXT NOT NULL,
        PRIMARY KEY (kind, id))",
    "CREATE INDEX IF NOT EXISTS resources_by_project ON resources (project_id, kind, seq)",
    "CREATE TABLE IF NOT EXISTS flow_logs (
        id TEXT PRIMARY KEY, project_id TEXT NOT NULL, name TEXT NOT NULL,
        description TEXT NOT NULL, resource_type TEXT NOT NULL, resource_id TEXT NOT NULL,
        traffic_type TEXT NOT NULL, log_group_id TEXT NOT NULL, log_topic_id TEXT NOT NULL,
        admin_state INTEGER NOT NULL, created_at TEXT NOT NULL, updated_at TEXT NOT NULL,
        UNIQUE (project_id, resource_type, resource_id, traffic_type, log_group_id, log_topic_id))",
    "CREATE INDEX IF NOT EXISTS flow_logs_by_project ON flow_logs (project_id, id)",
];

/// Flow-log columns with the derived status, for every read.
const FLOW_LOG_SELECT: &str = "SELECT f.id, f.project_id, f.name, f.description, f.resource_type,
    f.resource_id, f.traffic_type, f.log_group_id, f.log_topic_id, f.admin_state,
    f.created_at, f.updated_at,
    EXISTS (SELECT 1 FROM resources r WHERE r.id = f.resource_id AND r.project_id = f.project_id
            AND r.kind = CASE f.resource_type WHEN 'network' THEN 'subnet' ELSE f.resource_type END)
      AS resource_ok,
    EXISTS (SELECT 1 FROM resources t WHERE t.kind = 'log_topic' AND t.id = f.log_topic_id
            AND t.parent_id = f.log_group_id AND t.project_id = f.project_id) AS topic_ok
    FROM flow_logs f";

/// UTC now as the API writes times (`yyyy-MM-ddTHH:mm:ss`).
pub fn now_utc() -> String {
    chrono::Utc::now().format("%Y-%m-%dT%H:%M:%S").to_string()
}

fn hash_token(token: &str) -> String {
    let digest = Sha256::digest(token.as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

fn flow_log(row: &SqliteRow) -> Result<FlowLog, sqlx::Error> {
    let admin_state: bool = row.try_get("admin_state")?;
    let resource_ok: bool = row.try_get("resource_ok")?;
    let topic_ok: bool = row.try_get("topic_ok")?;
    let status = if !resource_ok || !topic_ok {
        "ERROR"
    } else if !admin_state {
        "DOWN"
    } else {
        "ACTIVE"
    };
    Ok(FlowLog {
        id: row.try_get("id")?,
        project_id: row.try_get("project_id")?,
        name: row.try_get("name")?,
        description: row.try_get("description")?,
        resource_type: row.try_get("resource_type")?,
        resource_id: row.try_get("resource_id")?,
        traffic_type: row.try_get("traffic_type")?,
        log_group_id: row.try_get("log_group_id")?,
        log_topic_id: row.try_get("log_topic_id")?,
        admin_state,
        status: status.to_string(),
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

/// The control plane's database.
#[derive(Debug)]
pub struct ControlDb {
    pool: SqlitePool,
    /// Serializes writes that check the project's model or quota, so a
    /// check and the write it allows are one step.
    writes: tokio::sync::Mutex<()>,
    /// Bumped by every write that committed, so followers (the live
    /// capture) know when to rebuild.
    generation: std::sync::atomic::AtomicU64,
}

impl ControlDb {
    /// Opens (creating if needed) `DIR/control.db`.
    pub async fn open(data_dir: &Path) -> Result<ControlDb, ControlError> {
        std::fs::create_dir_all(data_dir).map_err(|e| {
            ControlError::Invalid(format!("data directory {}: {e}", data_dir.display()))
        })?;
        let options = SqliteConnectOptions::from_str("sqlite://")?
            .filename(data_dir.join("control.db"))
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(Duration::from_secs(10));
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(options)
            .await?;
        for statement in SCHEMA {
            sqlx::query(*statement).execute(&pool).await?;
        }
        Ok(ControlDb {
            pool,
            writes: tokio::sync::Mutex::new(()),
            generation: std::sync::atomic::AtomicU64::new(0),
        })
    }

    /// A transaction that holds the write lock from its start: one that
    /// read first and wrote later could find the database changed by
    /// another writer in between and fail (SQLite's busy snapshot) instead
    /// of waiting its turn.
    async fn write_tx(&self) -> Result<sqlx::Transaction<'static, sqlx::Sqlite>, ControlError> {
        Ok(self.pool.begin_with("BEGIN IMMEDIATE").await?)
    }

    fn bump(&self) {
        self.generation
            .fetch_add(1, std::sync::atomic::Ordering::Release);
    }

    /// Changes so far: differs from an earlier value when anything was
    /// written since.
    pub fn generation(&self) -> u64 {
        self.generation.load(std::sync::atomic::Ordering::Acquire)
    }

    /// Every project's model and flow logs as one inventory (for the live
    /// capture, which sees every port of the host).
    pub async fn global_inventory(&self) -> Result<Inventory, ControlError> {
        let mut conn = self.pool.acquire().await?;
        let projects: Vec<String> = sqlx::query_scalar("SELECT id FROM projects ORDER BY id")
            .fetch_all(&mut *conn)
            .await?;
        let mut all = Map::new();
        for p in &projects {
            let Value::Object(doc) = project_document(&mut conn, p).await? else {
                continue;
            };
            for (k, v) in doc {
                match (all.get_mut(&k), v) {
                    (Some(Value::Array(a)), Value::Array(b)) => a.extend(b),
                    (None, v) => {
                        all.insert(k, v);
                    }
                    _ => {}
                }
            }
        }
        Inventory::from_json("the control plane", &Value::Object(all))
            .map_err(|e| ControlError::Invalid(inventory_message(e)))
    }

    /// Creates a token for `project` (creating the project if it is new)
    /// and returns it; only its hash is stored.
    pub async fn create_token(&self, project: &str) -> Result<String, ControlError> {
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
        let token = format!(
            "vft_{}{}",
            uuid::Uuid::new_v4().simple(),
            uuid::Uuid::new_v4().simple()
        );
        let now = now_utc();
        let mut tx = self.write_tx().await?;
        sqlx::query("INSERT OR IGNORE INTO projects (id, created_at) VALUES (?, ?)")
            .bind(project)
            .bind(&now)
            .execute(&mut *tx)
            .await?;
        sqlx::query("INSERT INTO tokens (hash, project_id, created_at) VALUES (?, ?, ?)")
            .bind(hash_token(&token))
            .bind(project)
            .bind(&now)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(token)
    }

    /// The project a token is for, if it is a token.
    pub async fn project_of_token(&self, token: &str) -> Result<Option<String>, ControlError> {
        Ok(
            sqlx::query_scalar("SELECT project_id FROM tokens WHERE hash = ?")
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
        let _serial = self.writes.lock().await;
        let now = now_utc();
        let mut tx = self.write_tx().await?;
        let done =
            sqlx::query("INSERT OR IGNORE INTO meta (key, value) VALUES ('inventory_imported', ?)")
                .bind(&now)
                .execute(&mut *tx)
                .await?;
        if done.rows_affected() == 0 {
            return Ok(false);
        }
        let settings: Map<String, Value> = ["region", "window_seconds", "max_records_per_window"]
            .into_iter()
            .filter_map(|k| doc.get(k).map(|v| (k.to_string(), v.clone())))
            .collect();
        sqlx::query("INSERT OR REPLACE INTO meta (key, value) VALUES ('settings', ?)")
            .bind(Value::Object(settings).to_string())
            .execute(&mut *tx)
            .await?;
        let items = |key: &str| {
            doc.get(key)
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default()
        };
        for p in items("project") {
            sqlx::query("INSERT OR IGNORE INTO projects (id, created_at) VALUES (?, ?)")
                .bind(p["id"].as_str())
                .bind(&now)
                .execute(&mut *tx)
                .await?;
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
                insert_resource(&mut tx, kind, &id, &project, &body, &now).await?;
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
                "INSERT OR IGNORE INTO flow_logs (id, project_id, name, description, resource_type,
                 resource_id, traffic_type, log_group_id, log_topic_id, admin_state, created_at, updated_at)
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
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
            .bind(f.get("admin_state").and_then(Value::as_bool).unwrap_or(true))
            .bind(&now)
            .bind(&now)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        self.bump();
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
        let _serial = self.writes.lock().await;
        let mut tx = self.write_tx().await?;
        insert_resource(&mut tx, kind, &id, project, &item, &now_utc()).await?;
        check_project(&mut tx, project).await?;
        tx.commit().await?;
        self.bump();
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
            "SELECT id, body, created_at, updated_at FROM resources WHERE kind = ? AND id = ? AND project_id = ?",
        )
        .bind(kind.file_key())
        .bind(id)
        .bind(project)
        .fetch_optional(&self.pool)
        .await?
        .ok_or_else(|| not_found(kind, id))?;
        view_of(&row, project)
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
                    "SELECT seq FROM resources WHERE kind = ? AND id = ? AND project_id = ?",
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
            "SELECT id, body, created_at, updated_at FROM resources WHERE kind = ? AND project_id = ?
             AND (? IS NULL OR parent_id = ?) AND seq > ? ORDER BY seq LIMIT ?",
        )
        .bind(kind.file_key())
        .bind(project)
        .bind(parent)
        .bind(parent)
        .bind(after.unwrap_or(0))
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(|r| view_of(r, project)).collect()
    }

    /// Changes a resource; the project's model must stay valid.
    pub async fn update_resource(
        &self,
        project: &str,
        kind: Kind,
        id: &str,
        fields: Map<String, Value>,
    ) -> Result<Value, ControlError> {
        let _serial = self.writes.lock().await;
        let mut tx = self.write_tx().await?;
        let row =
            sqlx::query("SELECT body FROM resources WHERE kind = ? AND id = ? AND project_id = ?")
                .bind(kind.file_key())
                .bind(id)
                .bind(project)
                .fetch_optional(&mut *tx)
                .await?
                .ok_or_else(|| not_found(kind, id))?;
        let mut item = body_of(&row)?;
        update_item(kind, &mut item, fields)?;
        sqlx::query("UPDATE resources SET body = ?, updated_at = ? WHERE kind = ? AND id = ?")
            .bind(Value::Object(item).to_string())
            .bind(now_utc())
            .bind(kind.file_key())
            .bind(id)
            .execute(&mut *tx)
            .await?;
        check_project(&mut tx, project).await?;
        tx.commit().await?;
        self.bump();
        self.get_resource(project, kind, id).await
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
        let _serial = self.writes.lock().await;
        let mut tx = self.write_tx().await?;
        let done =
            sqlx::query("DELETE FROM resources WHERE kind = ? AND id = ? AND project_id = ?")
                .bind(kind.file_key())
                .bind(id)
                .bind(project)
                .execute(&mut *tx)
                .await?;
        if done.rows_affected() == 0 {
            return Err(not_found(kind, id));
        }
        check_project(&mut tx, project).await.map_err(|e| match e {
            ControlError::Invalid(m) => {
                ControlError::InUse(format!("{} {id} is in use: {m}", kind.label()))
            }
            other => other,
        })?;
        tx.commit().await?;
        self.bump();
        Ok(())
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
        let _serial = self.writes.lock().await;
        let mut tx = self.write_tx().await?;
        let exists = |kind: Kind, id: &str| {
            sqlx::query_scalar::<_, bool>(
                "SELECT EXISTS (SELECT 1 FROM resources WHERE kind = ? AND id = ? AND project_id = ?)",
            )
            .bind(kind.file_key())
            .bind(id.to_string())
            .bind(project.to_string())
        };
        if !exists(new.resource_type.kind(), &new.resource_id)
            .fetch_one(&mut *tx)
            .await?
        {
            return Err(ControlError::Invalid(format!(
                "resource_id: this project has no {} {}",
                new.resource_type.as_str(),
                new.resource_id
            )));
        }
        if !exists(Kind::LogGroup, &new.log_group_id)
            .fetch_one(&mut *tx)
            .await?
        {
            return Err(ControlError::Invalid(format!(
                "log_group_id: this project has no log group {}",
                new.log_group_id
            )));
        }
        let topic_ok: bool = sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM resources WHERE kind = 'log_topic' AND id = ? AND parent_id = ? AND project_id = ?)",
        )
        .bind(&new.log_topic_id)
        .bind(&new.log_group_id)
        .bind(project)
        .fetch_one(&mut *tx)
        .await?;
        if !topic_ok {
            return Err(ControlError::Invalid(format!(
                "log_topic_id: log group {} has no log topic {}",
                new.log_group_id, new.log_topic_id
            )));
        }
        let duplicate: Option<String> = sqlx::query_scalar(
            "SELECT id FROM flow_logs WHERE project_id = ? AND resource_type = ? AND resource_id = ?
             AND traffic_type = ? AND log_group_id = ? AND log_topic_id = ?",
        )
        .bind(project)
        .bind(new.resource_type.as_str())
        .bind(&new.resource_id)
        .bind(new.traffic_type)
        .bind(&new.log_group_id)
        .bind(&new.log_topic_id)
        .fetch_optional(&mut *tx)
        .await?;
        if let Some(id) = duplicate {
            return Err(ControlError::Duplicate(id));
        }
        let used: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM flow_logs WHERE project_id = ?")
            .bind(project)
            .fetch_one(&mut *tx)
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
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
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
        .bind(new.admin_state)
        .bind(&now)
        .bind(&now)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        self.bump();
        self.get_flow_log(project, &id).await
    }

    /// One flow log of `project`.
    pub async fn get_flow_log(&self, project: &str, id: &str) -> Result<FlowLog, ControlError> {
        let row = sqlx::query(AssertSqlSafe(format!(
            "{FLOW_LOG_SELECT} WHERE f.project_id = ? AND f.id = ?"
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
        let mut sql = format!("{FLOW_LOG_SELECT} WHERE f.project_id = ?");
        let mut binds: Vec<String> = vec![project.to_string()];
        let columns = [
            ("id", &filter.id),
            ("name", &filter.name),
            ("description", &filter.description),
            ("resource_type", &filter.resource_type),
            ("resource_id", &filter.resource_id),
            ("traffic_type", &filter.traffic_type),
            ("log_group_id", &filter.log_group_id),
            ("log_topic_id", &filter.log_topic_id),
        ];
        for (column, value) in columns {
            if let Some(v) = value {
                sql.push_str(&format!(" AND f.{column} = ?"));
                binds.push(v.clone());
            }
        }
        if let Some(a) = filter.admin_state {
            sql.push_str(&format!(" AND f.admin_state = {}", i32::from(a)));
        }
        if let Some(m) = &filter.marker {
            sql.push_str(" AND f.id > ?");
            binds.push(m.clone());
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
        let done = sqlx::query(
            "UPDATE flow_logs SET name = COALESCE(?, name), description = COALESCE(?, description),
             admin_state = COALESCE(?, admin_state), updated_at = ? WHERE project_id = ? AND id = ?",
        )
        .bind(&update.name)
        .bind(&update.description)
        .bind(update.admin_state)
        .bind(now_utc())
        .bind(project)
        .bind(id)
        .execute(&self.pool)
        .await?;
        if done.rows_affected() == 0 {
            return Err(ControlError::NotFound(id.to_string()));
        }
        self.bump();
        self.get_flow_log(project, id).await
    }

    /// Deletes a flow log.
    pub async fn delete_flow_log(&self, project: &str, id: &str) -> Result<(), ControlError> {
        let done = sqlx::query("DELETE FROM flow_logs WHERE project_id = ? AND id = ?")
            .bind(project)
            .bind(id)
            .execute(&self.pool)
            .await?;
        if done.rows_affected() == 0 {
            return Err(ControlError::NotFound(id.to_string()));
        }
        self.bump();
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

    /// Flow logs `project` has.
    pub async fn flow_logs_used(&self, project: &str) -> Result<u32, ControlError> {
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM flow_logs WHERE project_id = ?")
            .bind(project)
            .fetch_one(&self.pool)
            .await?;
        Ok(n as u32)
    }
}

fn not_found(kind: Kind, id: &str) -> ControlError {
    ControlError::ResourceNotFound {
        kind: kind.label(),
        id: id.to_string(),
    }
}

fn body_of(row: &SqliteRow) -> Result<Map<String, Value>, ControlError> {
    let text: String = row.try_get("body")?;
    match serde_json::from_str(&text) {
        Ok(Value::Object(m)) => Ok(m),
        _ => Err(ControlError::Invalid(format!(
            "a stored resource is not a JSON object: {text}"
        ))),
    }
}

/// A resource row (id, body, times) as the API shows it.
fn view_of(row: &SqliteRow, project: &str) -> Result<Value, ControlError> {
    Ok(api_view(
        &row.try_get::<String, _>("id")?,
        project,
        &body_of(row)?,
        &row.try_get::<String, _>("created_at")?,
        &row.try_get::<String, _>("updated_at")?,
    ))
}

async fn insert_resource(
    conn: &mut SqliteConnection,
    kind: Kind,
    id: &str,
    project: &str,
    item: &Map<String, Value>,
    now: &str,
) -> Result<(), ControlError> {
    sqlx::query(
        "INSERT OR IGNORE INTO resources (kind, id, project_id, parent_id, seq, body, created_at, updated_at)
         VALUES (?, ?, ?, ?, (SELECT COALESCE(MAX(seq), 0) + 1 FROM resources), ?, ?, ?)",
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
        InventoryError::Syntax { message, .. } => message,
    }
}

/// The project's model as an inventory document.
async fn project_document(
    conn: &mut SqliteConnection,
    project: &str,
) -> Result<Value, ControlError> {
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
        sqlx::query("SELECT kind, id, body FROM resources WHERE project_id = ? ORDER BY seq")
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
        "{FLOW_LOG_SELECT} WHERE f.project_id = ? ORDER BY f.created_at, f.id"
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
async fn check_project(conn: &mut SqliteConnection, project: &str) -> Result<(), ControlError> {
    let doc = project_document(conn, project).await?;
    Inventory::from_json("request", &doc)
        .map(|_| ())
        .map_err(|e| ControlError::Invalid(inventory_message(e)))
}
