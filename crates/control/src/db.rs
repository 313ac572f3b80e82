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
use sqlx::{AssertSqlSafe, Row};
use vpcflow_core::Inventory;
use vpcflow_core::inventory::Resource;

use crate::model::{FlowLog, FlowLogFilter, FlowLogUpdate, NewFlowLog};
use crate::{ControlError, FLOW_LOG_QUOTA};

const SCHEMA: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS projects (id TEXT PRIMARY KEY, created_at TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS tokens (hash TEXT PRIMARY KEY, project_id TEXT NOT NULL REFERENCES projects(id), created_at TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS vpcs (id TEXT PRIMARY KEY, project_id TEXT NOT NULL, name TEXT NOT NULL, cidr TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS subnets (id TEXT PRIMARY KEY, project_id TEXT NOT NULL, vpc_id TEXT NOT NULL, name TEXT NOT NULL, cidr TEXT NOT NULL, az TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS ports (id TEXT PRIMARY KEY, project_id TEXT NOT NULL, subnet_id TEXT NOT NULL, name TEXT NOT NULL, interface TEXT)",
    "CREATE TABLE IF NOT EXISTS log_groups (id TEXT PRIMARY KEY, project_id TEXT NOT NULL, name TEXT NOT NULL, ttl_in_days INTEGER NOT NULL)",
    "CREATE TABLE IF NOT EXISTS log_topics (id TEXT PRIMARY KEY, project_id TEXT NOT NULL, log_group_id TEXT NOT NULL, name TEXT NOT NULL)",
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
    CASE f.resource_type
      WHEN 'port' THEN EXISTS (SELECT 1 FROM ports r WHERE r.id = f.resource_id AND r.project_id = f.project_id)
      WHEN 'network' THEN EXISTS (SELECT 1 FROM subnets r WHERE r.id = f.resource_id AND r.project_id = f.project_id)
      ELSE EXISTS (SELECT 1 FROM vpcs r WHERE r.id = f.resource_id AND r.project_id = f.project_id)
    END AS resource_ok,
    EXISTS (SELECT 1 FROM log_topics t WHERE t.id = f.log_topic_id AND t.log_group_id = f.log_group_id
            AND t.project_id = f.project_id) AS topic_ok
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
    /// Serializes flow-log creates, so count-then-insert is exact.
    creates: tokio::sync::Mutex<()>,
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
            creates: tokio::sync::Mutex::new(()),
        })
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
        let mut tx = self.pool.begin().await?;
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

    /// At the database's first start only: adds an inventory's projects,
    /// VPCs, subnets, ports, log groups, topics and flow logs. Returns
    /// whether it did (later starts keep what the API changed).
    pub async fn import_inventory(&self, inv: &Inventory) -> Result<bool, ControlError> {
        let now = now_utc();
        let mut tx = self.pool.begin().await?;
        let done =
            sqlx::query("INSERT OR IGNORE INTO meta (key, value) VALUES ('inventory_imported', ?)")
                .bind(&now)
                .execute(&mut *tx)
                .await?;
        if done.rows_affected() == 0 {
            return Ok(false);
        }
        for p in &inv.projects {
            sqlx::query("INSERT OR IGNORE INTO projects (id, created_at) VALUES (?, ?)")
                .bind(&p.id)
                .bind(&now)
                .execute(&mut *tx)
                .await?;
        }
        let project_of_vpc = |v: usize| &inv.projects[inv.vpcs[v].project].id;
        for v in &inv.vpcs {
            sqlx::query(
                "INSERT OR IGNORE INTO vpcs (id, project_id, name, cidr) VALUES (?, ?, ?, ?)",
            )
            .bind(&v.id)
            .bind(&inv.projects[v.project].id)
            .bind(v.name.clone().unwrap_or_default())
            .bind(v.cidr.to_string())
            .execute(&mut *tx)
            .await?;
        }
        for s in &inv.subnets {
            sqlx::query("INSERT OR IGNORE INTO subnets (id, project_id, vpc_id, name, cidr, az) VALUES (?, ?, ?, ?, ?, ?)")
                .bind(&s.id)
                .bind(project_of_vpc(s.vpc))
                .bind(&inv.vpcs[s.vpc].id)
                .bind(s.name.clone().unwrap_or_default())
                .bind(s.cidr.to_string())
                .bind(s.az.clone().unwrap_or_default())
                .execute(&mut *tx)
                .await?;
        }
        for p in &inv.ports {
            let subnet = &inv.subnets[p.subnet];
            sqlx::query("INSERT OR IGNORE INTO ports (id, project_id, subnet_id, name, interface) VALUES (?, ?, ?, ?, ?)")
                .bind(&p.id)
                .bind(project_of_vpc(subnet.vpc))
                .bind(&subnet.id)
                .bind(p.name.clone().unwrap_or_default())
                .bind(p.interface.clone())
                .execute(&mut *tx)
                .await?;
        }
        for g in &inv.log_groups {
            sqlx::query("INSERT OR IGNORE INTO log_groups (id, project_id, name, ttl_in_days) VALUES (?, ?, ?, ?)")
                .bind(&g.id)
                .bind(&inv.projects[g.project].id)
                .bind(g.name.clone().unwrap_or_default())
                .bind(i64::from(g.ttl_in_days))
                .execute(&mut *tx)
                .await?;
        }
        for t in &inv.log_topics {
            let group = &inv.log_groups[t.log_group];
            sqlx::query("INSERT OR IGNORE INTO log_topics (id, project_id, log_group_id, name) VALUES (?, ?, ?, ?)")
                .bind(&t.id)
                .bind(&inv.projects[group.project].id)
                .bind(&group.id)
                .bind(t.name.clone().unwrap_or_default())
                .execute(&mut *tx)
                .await?;
        }
        for f in &inv.flow_logs {
            let (kind, id) = match f.resource {
                Resource::Port(i) => ("port", &inv.ports[i].id),
                Resource::Subnet(i) => ("network", &inv.subnets[i].id),
                Resource::Vpc(i) => ("vpc", &inv.vpcs[i].id),
            };
            sqlx::query(
                "INSERT OR IGNORE INTO flow_logs (id, project_id, name, description, resource_type,
                 resource_id, traffic_type, log_group_id, log_topic_id, admin_state, created_at, updated_at)
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            )
            .bind(&f.id)
            .bind(&inv.projects[f.project].id)
            .bind(&f.name)
            .bind(f.description.clone().unwrap_or_default())
            .bind(kind)
            .bind(id)
            .bind(f.traffic_type.as_str())
            .bind(&inv.log_groups[f.log_group].id)
            .bind(&inv.log_topics[f.log_topic].id)
            .bind(f.admin_state)
            .bind(&now)
            .bind(&now)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(true)
    }

    /// Creates a flow log in `project`: its resource, log group and topic
    /// must be the project's; a duplicate or a 11th flow log is refused.
    pub async fn create_flow_log(
        &self,
        project: &str,
        new: &NewFlowLog,
    ) -> Result<FlowLog, ControlError> {
        let _serial = self.creates.lock().await;
        let mut tx = self.pool.begin().await?;
        // Table names come from constants, never from the request.
        let exists = |table: &str| {
            AssertSqlSafe(format!(
                "SELECT EXISTS (SELECT 1 FROM {table} WHERE id = ? AND project_id = ?)"
            ))
        };
        let resource_ok: bool = sqlx::query_scalar(exists(new.resource_type.table()))
            .bind(&new.resource_id)
            .bind(project)
            .fetch_one(&mut *tx)
            .await?;
        if !resource_ok {
            return Err(ControlError::Invalid(format!(
                "resource_id: this project has no {} {}",
                new.resource_type.as_str(),
                new.resource_id
            )));
        }
        let group_ok: bool = sqlx::query_scalar(exists("log_groups"))
            .bind(&new.log_group_id)
            .bind(project)
            .fetch_one(&mut *tx)
            .await?;
        if !group_ok {
            return Err(ControlError::Invalid(format!(
                "log_group_id: this project has no log group {}",
                new.log_group_id
            )));
        }
        let topic_ok: bool = sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM log_topics WHERE id = ? AND log_group_id = ? AND project_id = ?)",
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
