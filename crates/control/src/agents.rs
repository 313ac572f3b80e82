//! The fleet's agents on the API: what an agent on a host fetches, and what
//! the server knows of each agent.
//!
//! An agent signs in with an agent token (`vpcflow token create --agent
//! HOST`), bound to one host name and to no project. With it, it may only
//! read the model of its own host (`GET /v1/agent/model`: the projects with
//! a port bound to that host, which it monitors only on that host's ports);
//! a project token is refused there (403), and an agent token is refused on
//! every project's path (403). `GET /v1/agent/model?after=G` is a long
//! poll: it answers at once when the model changed after generation `G`,
//! else when it changes (a write through any server on the database, seen
//! within the follow interval), else after `wait` seconds with the same
//! generation, so an agent follows changes within a second without a tight
//! loop.
//!
//! Each agent request reports the agent's version, spool depth and lost
//! windows in headers; `GET /v1/agents` (a project token) lists the agents
//! of the hosts the project's ports are bound to, with when each was last
//! seen, and flags one silent for more than two capture windows.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Json;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::api::{ApiError, AppState};

/// The longest an agent's model request waits for a change.
pub const MODEL_WAIT_MAX: Duration = Duration::from_secs(60);
/// How long it waits when the agent does not say.
pub const MODEL_WAIT_DEFAULT: Duration = Duration::from_secs(25);

/// Header: the agent's version.
pub const VERSION_HEADER: &str = "x-agent-version";
/// Header: closed windows waiting in the agent's spool.
pub const SPOOL_HEADER: &str = "x-agent-spool-depth";
/// Header: windows the agent counted as lost (its spool was full).
pub const LOST_HEADER: &str = "x-agent-lost-windows";

/// The host an agent token is for, set by the agent gate.
#[derive(Debug, Clone)]
pub struct AgentHost(pub String);

/// What the server knows of one agent.
#[derive(Debug, Clone, Default, Serialize, utoipa::ToSchema)]
pub struct AgentStatus {
    /// The host it runs on (its token's).
    pub host: String,
    /// Its version, as it says.
    pub version: Option<String>,
    /// When it was last heard from (Unix seconds); none if never.
    pub last_seen: Option<u64>,
    /// The model generation it last fetched.
    pub generation: Option<u64>,
    /// Closed windows waiting in its spool, as it last said.
    pub spool_depth: u64,
    /// Windows it counted as lost, as it last said.
    pub lost_windows: u64,
    /// Silent for more than two capture windows (or never seen).
    pub silent: bool,
}

/// Every agent heard from since the server started.
#[derive(Debug, Default)]
pub struct AgentRegistry {
    seen: Mutex<HashMap<String, AgentStatus>>,
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn header_number(headers: &HeaderMap, name: &str) -> Option<u64> {
    headers.get(name)?.to_str().ok()?.trim().parse().ok()
}

impl AgentRegistry {
    /// Notes a request of the agent on `host`, with what its headers report.
    pub fn heard(&self, host: &str, headers: &HeaderMap) {
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        let status = seen.entry(host.to_string()).or_insert_with(|| AgentStatus {
            host: host.to_string(),
            ..AgentStatus::default()
        });
        status.last_seen = Some(now_secs());
        if let Some(v) = headers.get(VERSION_HEADER).and_then(|v| v.to_str().ok()) {
            status.version = Some(v.chars().take(64).collect());
        }
        if let Some(n) = header_number(headers, SPOOL_HEADER) {
            status.spool_depth = n;
        }
        if let Some(n) = header_number(headers, LOST_HEADER) {
            status.lost_windows = n;
        }
    }

    fn fetched(&self, host: &str, generation: u64) {
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(s) = seen.get_mut(host) {
            s.generation = Some(generation);
        }
    }

    /// The status of the agent on each of `hosts` (never seen ones too),
    /// silent when not heard from for `silent_after`.
    pub fn statuses(&self, hosts: &[String], silent_after: Duration) -> Vec<AgentStatus> {
        let seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        let now = now_secs();
        hosts
            .iter()
            .map(|h| {
                let mut s = seen.get(h).cloned().unwrap_or_else(|| AgentStatus {
                    host: h.clone(),
                    ..AgentStatus::default()
                });
                s.silent = s
                    .last_seen
                    .is_none_or(|t| now.saturating_sub(t) > silent_after.as_secs());
                s
            })
            .collect()
    }

    /// Prometheus text: each agent's last contact, spool and losses.
    pub fn metrics(&self) -> String {
        let seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        let mut hosts: Vec<&AgentStatus> = seen.values().collect();
        hosts.sort_by(|a, b| a.host.cmp(&b.host));
        let mut text = String::from(
            "# HELP vpcflow_agent_last_seen_seconds When each agent was last heard from (Unix seconds).\n\
             # TYPE vpcflow_agent_last_seen_seconds gauge\n",
        );
        for s in &hosts {
            text.push_str(&format!(
                "vpcflow_agent_last_seen_seconds{{host=\"{}\"}} {}\n",
                s.host,
                s.last_seen.unwrap_or(0)
            ));
        }
        text.push_str(
            "# HELP vpcflow_agent_spool_depth Closed windows in each agent's spool, as it last said.\n\
             # TYPE vpcflow_agent_spool_depth gauge\n",
        );
        for s in &hosts {
            text.push_str(&format!(
                "vpcflow_agent_spool_depth{{host=\"{}\"}} {}\n",
                s.host, s.spool_depth
            ));
        }
        text.push_str(
            "# HELP vpcflow_agent_lost_windows Windows each agent counted as lost, as it last said.\n\
             # TYPE vpcflow_agent_lost_windows gauge\n",
        );
        for s in &hosts {
            text.push_str(&format!(
                "vpcflow_agent_lost_windows{{host=\"{}\"}} {}\n",
                s.host, s.lost_windows
            ));
        }
        text
    }
}

/// `GET /v1/agent/model` parameters.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ModelParams {
    /// The generation the agent has; answer when there is a newer one.
    after: Option<u64>,
    /// Seconds to wait for one (at most [`MODEL_WAIT_MAX`]).
    wait: Option<u64>,
}

/// `GET /v1/agent/model`: the model of the agent's host, when it is newer
/// than `after` (or after `wait` seconds, unchanged).
pub(crate) async fn model(
    State(state): State<AppState>,
    axum::Extension(AgentHost(host)): axum::Extension<AgentHost>,
    q: Result<Query<ModelParams>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let p = crate::api::params(q)?;
    let wait = match p.wait {
        None => MODEL_WAIT_DEFAULT,
        Some(s) if Duration::from_secs(s) <= MODEL_WAIT_MAX => Duration::from_secs(s),
        Some(s) => {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "VPC.3001",
                format!("wait: {s} is over {} seconds", MODEL_WAIT_MAX.as_secs()),
            ));
        }
    };
    let db = state.db();
    if let Some(after) = p.after {
        let mut changes = db.changes();
        // Unchanged after the wait: the same generation, which the agent
        // already has.
        let _ = tokio::time::timeout(wait, changes.wait_for(|g| *g > after)).await;
    }
    // The generation before the read: a write between the two is fetched
    // again at the next poll, never missed.
    let generation = db.generation();
    let live = db.host_inventory(&host).await?;
    state.agents().fetched(&host, generation);
    let skipped: Vec<Value> = live
        .skipped
        .iter()
        .map(|(project, why)| json!({"project": project, "reason": why}))
        .collect();
    Ok(Json(json!({
        "host": host,
        "generation": generation,
        "inventory": live.document,
        "skipped": skipped,
    })))
}

/// The largest window body taken (records and summary).
pub const MAX_WINDOW_BYTES: usize = 256 << 20;

/// `POST /v1/agent/windows` parameters: the window's log topic and its
/// file's name in the agent's store (its id, with the host).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct WindowParams {
    log_group_id: String,
    log_topic_id: String,
    name: String,
}

/// The body of a shipped window: the summary's length (4 bytes, big
/// endian), the summary, then the records file.
pub fn window_body(summary: &[u8], records: &[u8]) -> Vec<u8> {
    let mut body = Vec::with_capacity(4 + summary.len() + records.len());
    body.extend_from_slice(
        &u32::try_from(summary.len())
            .unwrap_or(u32::MAX)
            .to_be_bytes(),
    );
    body.extend_from_slice(summary);
    body.extend_from_slice(records);
    body
}

fn split_body(body: &[u8]) -> Option<(&[u8], &[u8])> {
    let len = u32::from_be_bytes(body.get(..4)?.try_into().ok()?) as usize;
    let summary = body.get(4..4usize.checked_add(len)?)?;
    Some((summary, &body[4 + len..]))
}

/// `POST /v1/agent/windows`: one closed window of one log topic from the
/// agent's store. Checked (whole, this store's columns), authorized (every
/// record of a port bound to the agent's host, the topic one of its
/// projects'), then written once: a retry of a window already written is
/// answered as a duplicate and not written again.
pub(crate) async fn receive(
    State(state): State<AppState>,
    axum::Extension(AgentHost(host)): axum::Extension<AgentHost>,
    q: Result<Query<WindowParams>, axum::extract::rejection::QueryRejection>,
    body: axum::body::Bytes,
) -> Result<Json<Value>, ApiError> {
    let p = crate::api::params(q)?;
    let bad = |m: String| ApiError::new(StatusCode::BAD_REQUEST, "VPC.3001", m);
    let (summary, records) = split_body(&body)
        .ok_or_else(|| bad("body: not a window (summary length, summary, records)".into()))?;
    let (summary, records) = (summary.to_vec(), records.to_vec());
    let live = state.db().host_inventory(&host).await?;
    let data = state.data();
    let (group, topic, name) = (
        p.log_group_id.clone(),
        p.log_topic_id.clone(),
        p.name.clone(),
    );
    let checked = Arc::clone(&live);
    let pending = tokio::task::spawn_blocking(move || {
        data.check_window(&checked.inventory, &group, &topic, &name, records, &summary)
    })
    .await
    .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "VPC.3000", e.to_string()))??;
    // Only its own ports, in a log topic of its host's projects.
    let model = &live.inventory;
    let own: std::collections::HashSet<&str> = model
        .ports
        .iter()
        .filter(|p| p.host.as_deref() == Some(host.as_str()))
        .map(|p| p.id.as_str())
        .collect();
    let forbidden = |m: String| ApiError::new(StatusCode::FORBIDDEN, "APIGW.0302", m);
    if let Some(other) = pending
        .info()
        .interface_ids
        .iter()
        .find(|i| !own.contains(i.as_str()))
    {
        return Err(forbidden(format!(
            "port {other} is not bound to host {host}: its records are not this agent's to send"
        )));
    }
    let known_topic = model
        .log_topics
        .iter()
        .any(|t| t.id == p.log_topic_id && model.log_groups[t.log_group].id == p.log_group_id);
    if !known_topic {
        return Err(forbidden(format!(
            "log topic {}/{} is not one of host {host}'s projects'",
            p.log_group_id, p.log_topic_id
        )));
    }
    let records = pending.info().records;
    // Carried to its end on a task of its own, so an agent that hangs up
    // (killed, timed out) cannot cut the ledger's transaction or the
    // write off half way: the window is written and noted done, or not
    // written at all, and its retry is answered accordingly.
    let (group, topic, name) = (
        p.log_group_id.clone(),
        p.log_topic_id.clone(),
        p.name.clone(),
    );
    let taken = state.clone();
    let internal = |e: tokio::task::JoinError| {
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "VPC.3000", e.to_string())
    };
    let duplicate = tokio::spawn(async move {
        let db = taken.db();
        match db
            .begin_window(&host, &group, &topic, &name, records)
            .await?
        {
            crate::db::WindowState::Done => Ok::<bool, ApiError>(true),
            crate::db::WindowState::New => {
                let h = host.clone();
                tokio::task::spawn_blocking(move || pending.write(&h))
                    .await
                    .map_err(internal)??;
                db.finish_window(&host, &group, &topic, &name).await?;
                Ok(false)
            }
        }
    })
    .await
    .map_err(internal)??;
    Ok(Json(json!({
        "window": p.name,
        "records": records,
        "duplicate": duplicate,
    })))
}

/// `GET /v1/agents`: the agents of the hosts the caller's project's ports
/// are bound to.
pub(crate) async fn list(
    State(state): State<AppState>,
    axum::Extension(crate::api::Caller(project)): axum::Extension<crate::api::Caller>,
) -> Result<Json<Value>, ApiError> {
    let inventory = state.db().project_inventory(&project).await?;
    let mut hosts: Vec<String> = inventory
        .ports
        .iter()
        .filter_map(|p| p.host.clone())
        .collect();
    hosts.sort();
    hosts.dedup();
    // Silent: not heard from for two capture windows.
    let silent_after = Duration::from_secs(2 * inventory.window.secs());
    let received = state.db().windows_received().await?;
    let agents: Vec<Value> = state
        .agents()
        .statuses(&hosts, silent_after)
        .into_iter()
        .map(|s| {
            let (windows, records) = received
                .iter()
                .find(|(h, _, _)| *h == s.host)
                .map_or((0, 0), |(_, w, r)| (*w, *r));
            let mut v = serde_json::to_value(&s).unwrap_or_default();
            v["windows_received"] = json!(windows);
            v["records_received"] = json!(records);
            v
        })
        .collect();
    Ok(Json(json!({ "agents": agents })))
}

/// The agent gate's registry, shared by every request.
pub(crate) type Registry = Arc<AgentRegistry>;
