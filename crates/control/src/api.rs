//! The REST API (SPEC §1): the seed cloud's flow-log paths and bodies.
//!
//! Every `/v1/{project_id}/...` request must carry `X-Auth-Token` or be
//! signed with an access key as the seed cloud's SDKs sign
//! ([`crate::signing`]): no or an unknown token, or a bad signature, is
//! 401 naming why, a token or key of another project 403, before any
//! handler runs. Errors are `{"code": "VPC.xxxx", "message": "..."}`.
//! `/health`, `/metrics` (Prometheus text) and `/openapi.json` need no
//! token.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use axum::body::{Body, Bytes};
use axum::extract::rejection::QueryRejection;
use axum::extract::{DefaultBodyLimit, FromRef, Path, Query, Request, State};
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, get, post};
use axum::{Json, Router};
use http_body_util::BodyExt;
use serde::Deserialize;
use serde_json::{Map, Value, json};
use tokio::io::AsyncWriteExt;
use tokio::sync::broadcast::error::RecvError;
use tower::ServiceExt;

use crate::data::{AnalysisKind, AnalysisQuery, DataError, DataPlane, RecordsQuery};
use crate::db::ControlDb;
use crate::firewall;
use crate::model::{FlowLogFilter, FlowLogUpdate, NewFlowLog, Page};
use crate::resources::{
    KINDS, Kind, SECURITY_GROUP_RULE, SECURITY_GROUP_RULES, parse_body, parse_cloud_rule,
};
use crate::signing::{self, Authorization, SealingKey, SignatureError};
pub use crate::throttle::FAILED_AUTH_LIMIT;
use crate::throttle::{AuthThrottle, ClientAddr, FAILED_AUTH_WINDOW};
use crate::{ControlError, FLOW_LOG_QUOTA};

/// An error response.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
}

impl ApiError {
    pub(crate) fn new(
        status: StatusCode,
        code: &'static str,
        message: impl Into<String>,
    ) -> ApiError {
        ApiError {
            status,
            code,
            message: message.into(),
        }
    }
}

impl From<ControlError> for ApiError {
    fn from(e: ControlError) -> ApiError {
        let (status, code) = match &e {
            ControlError::Invalid(_) => (StatusCode::BAD_REQUEST, "VPC.3001"),
            ControlError::NotFound(_) => (StatusCode::NOT_FOUND, "VPC.3005"),
            ControlError::Duplicate(_) => (StatusCode::CONFLICT, "VPC.3004"),
            ControlError::Quota { .. } => (StatusCode::CONFLICT, "VPC.3003"),
            ControlError::ResourceQuota { .. } => (StatusCode::CONFLICT, "VPC.0410"),
            ControlError::ResourceNotFound { .. } => (StatusCode::NOT_FOUND, "VPC.0404"),
            ControlError::InUse(_) => (StatusCode::CONFLICT, "VPC.0409"),
            ControlError::Database(_) => (StatusCode::INTERNAL_SERVER_ERROR, "VPC.3000"),
        };
        ApiError::new(status, code, e.to_string())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if self.status.is_server_error() {
            // The caller sees the code; the operator needs the why.
            eprintln!(
                "vpcflow: {} {}: {}",
                self.status.as_u16(),
                self.code,
                self.message
            );
        }
        (
            self.status,
            Json(json!({"code": self.code, "message": self.message})),
        )
            .into_response()
    }
}

impl From<DataError> for ApiError {
    fn from(e: DataError) -> ApiError {
        match e {
            DataError::Invalid(m) => ApiError::new(StatusCode::BAD_REQUEST, "VPC.3001", m),
            DataError::Failed(m) => ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "VPC.3000", m),
        }
    }
}

/// What every handler can reach: the control database, the data plane,
/// and where uploads are spooled.
#[derive(Clone)]
pub struct AppState {
    db: Arc<ControlDb>,
    data: Arc<dyn DataPlane>,
    uploads: PathBuf,
    /// Records queries running, per project.
    queries: Arc<Mutex<HashMap<String, usize>>>,
    /// The largest upload body taken, in bytes.
    max_upload_bytes: u64,
    /// Failed authentications per client address.
    throttle: Arc<AuthThrottle>,
    /// What access keys' secrets are sealed with; `None`: signed requests
    /// are refused.
    sealing_key: Option<Arc<SealingKey>>,
    /// The fleet's agents heard from.
    agents: crate::agents::Registry,
}

/// The default of [`AppState::with_upload_limit`]: 1 GiB.
pub const MAX_UPLOAD_BYTES: u64 = 1 << 30;

impl AppState {
    /// The API's state; uploaded captures are spooled in `uploads`.
    pub fn new(db: Arc<ControlDb>, data: Arc<dyn DataPlane>, uploads: PathBuf) -> AppState {
        AppState {
            db,
            data,
            uploads,
            queries: Arc::default(),
            max_upload_bytes: MAX_UPLOAD_BYTES,
            throttle: Arc::default(),
            sealing_key: None,
            agents: Arc::default(),
        }
    }

    pub(crate) fn db(&self) -> &ControlDb {
        &self.db
    }

    pub(crate) fn agents(&self) -> &crate::agents::AgentRegistry {
        &self.agents
    }

    pub(crate) fn data(&self) -> Arc<dyn DataPlane> {
        self.data.clone()
    }

    /// Throttles a client address after `limit` unknown tokens within
    /// [`FAILED_AUTH_WINDOW`] (0: never; default [`FAILED_AUTH_LIMIT`]).
    pub fn with_auth_failure_limit(mut self, limit: u32) -> AppState {
        self.throttle = Arc::new(AuthThrottle::new(limit));
        self
    }

    /// Takes requests signed with access keys (`SDK-HMAC-SHA256`) whose
    /// secrets `key` sealed.
    pub fn with_access_keys(mut self, key: SealingKey) -> AppState {
        self.sealing_key = Some(Arc::new(key));
        self
    }

    /// Refuses upload bodies over `bytes` (413), before more is spooled.
    pub fn with_upload_limit(mut self, bytes: u64) -> AppState {
        self.max_upload_bytes = bytes;
        self
    }
}

/// Removes a spooled upload when dropped: on every path out of the
/// handler, including a client that went away mid-body (the handler's
/// future is dropped then).
struct SpoolFile(PathBuf);

impl Drop for SpoolFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Removes the spool files a crashed server left in `uploads` (at start,
/// before any upload is taken); returns how many.
pub fn sweep_uploads(uploads: &std::path::Path) -> usize {
    let Ok(entries) = std::fs::read_dir(uploads) else {
        return 0;
    };
    entries
        .flatten()
        .filter(|e| e.path().extension().is_some_and(|x| x == "capture"))
        .filter(|e| std::fs::remove_file(e.path()).is_ok())
        .count()
}

/// Records queries one project may run at once: a tenant's heavy queries
/// take at most this many of the server's cores, whatever it sends.
pub const QUERIES_PER_PROJECT: usize = 2;

/// One running query of a project: holds its place in
/// [`QUERIES_PER_PROJECT`], and cancels the query when dropped unfinished
/// (the client went away and hyper dropped the handler).
struct RunningQuery {
    project: String,
    queries: Arc<Mutex<HashMap<String, usize>>>,
    cancel: Arc<std::sync::atomic::AtomicBool>,
}

impl RunningQuery {
    fn start(state: &AppState, project: &str) -> Result<RunningQuery, ApiError> {
        let mut running = state.queries.lock().unwrap_or_else(|e| e.into_inner());
        let n = running.entry(project.to_string()).or_default();
        if *n >= QUERIES_PER_PROJECT {
            return Err(ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "VPC.0429",
                format!(
                    "the project has {n} records queries running; at most {QUERIES_PER_PROJECT} run at once"
                ),
            ));
        }
        *n += 1;
        Ok(RunningQuery {
            project: project.to_string(),
            queries: state.queries.clone(),
            cancel: Arc::default(),
        })
    }
}

impl Drop for RunningQuery {
    fn drop(&mut self) {
        self.cancel
            .store(true, std::sync::atomic::Ordering::Relaxed);
        let mut running = self.queries.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = running.get_mut(&self.project) {
            *n -= 1;
            if *n == 0 {
                running.remove(&self.project);
            }
        }
    }
}

impl FromRef<AppState> for Arc<ControlDb> {
    fn from_ref(s: &AppState) -> Arc<ControlDb> {
        s.db.clone()
    }
}

type Shared = State<Arc<ControlDb>>;

/// Requests answered, by method and status code.
#[derive(Debug, Default)]
pub struct Metrics {
    requests: Mutex<BTreeMap<(String, u16), u64>>,
}

impl Metrics {
    fn count(&self, method: &str, status: u16) {
        let mut r = self.requests.lock().unwrap_or_else(|e| e.into_inner());
        *r.entry((method.to_string(), status)).or_default() += 1;
    }

    /// The Prometheus text exposition of the counters.
    pub fn render(&self, flow_logs: u64, projects: u64) -> String {
        let mut out = String::from(
            "# HELP vpcflow_api_requests_total API requests answered, by method and status code.\n\
             # TYPE vpcflow_api_requests_total counter\n",
        );
        let r = self.requests.lock().unwrap_or_else(|e| e.into_inner());
        for ((method, code), n) in r.iter() {
            out.push_str(&format!(
                "vpcflow_api_requests_total{{method=\"{method}\",code=\"{code}\"}} {n}\n"
            ));
        }
        out.push_str(&format!(
            "# HELP vpcflow_flow_logs Flow logs in the control plane.\n\
             # TYPE vpcflow_flow_logs gauge\nvpcflow_flow_logs {flow_logs}\n\
             # HELP vpcflow_projects Projects in the control plane.\n\
             # TYPE vpcflow_projects gauge\nvpcflow_projects {projects}\n"
        ));
        out
    }
}

/// Refuses a request whose path or query holds an encoded NUL (`%00`):
/// neither database stores one in text, and no parameter means one.
async fn refuse_nul(req: Request, next: Next) -> Response {
    let encoded = req
        .uri()
        .path_and_query()
        .is_some_and(|p| p.as_str().contains("%00"));
    if encoded {
        return ApiError::new(
            StatusCode::BAD_REQUEST,
            "VPC.3001",
            "request: a NUL character (%00) in the path or query, which no parameter accepts",
        )
        .into_response();
    }
    next.run(req).await
}

async fn count_requests(State(metrics): State<Arc<Metrics>>, req: Request, next: Next) -> Response {
    let method = req.method().as_str().to_string();
    let response = next.run(req).await;
    metrics.count(&method, response.status().as_u16());
    response
}

async fn metrics(
    State(state): State<AppState>,
    axum::Extension(metrics): axum::Extension<Arc<Metrics>>,
) -> Result<Response, ApiError> {
    let (flow_logs, projects) = state.db.totals().await?;
    let mut text = metrics.render(flow_logs, projects);
    text.push_str(&state.data.metrics());
    text.push_str(&state.agents.metrics());
    Ok((
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        text,
    )
        .into_response())
}

/// The kinds under `/v1/{project_id}/` (log topics sit under their group).
pub const RESOURCE_KINDS: [Kind; 6] = [
    Kind::Vpc,
    Kind::Subnet,
    Kind::Port,
    Kind::SecurityGroup,
    Kind::NetworkAcl,
    Kind::LogGroup,
];

/// The path segment of a kind's collection.
pub fn collection_path(kind: Kind) -> &'static str {
    match kind {
        Kind::Vpc => "vpcs",
        Kind::Subnet => "subnets",
        Kind::Port => "ports",
        Kind::SecurityGroup => "security-groups",
        Kind::NetworkAcl => "network-acls",
        Kind::LogGroup => "log-groups",
        Kind::LogTopic => "log-topics",
    }
}

/// The API.
pub fn router(state: AppState) -> Router {
    let counters = Arc::new(Metrics::default());
    let gate = Gate {
        db: state.db.clone(),
        throttle: state.throttle.clone(),
        sealing_key: state.sealing_key.clone(),
    };
    let mut v1 = Router::new()
        .route(
            "/v1/{project_id}/fl/flow_logs",
            get(list_flow_logs).post(create_flow_log),
        )
        .route(
            "/v1/{project_id}/fl/flow_logs/{flowlog_id}",
            get(show_flow_log)
                .put(update_flow_log)
                .delete(delete_flow_log),
        )
        .route("/v1/{project_id}/quotas", get(quotas));
    for kind in RESOURCE_KINDS {
        let path = collection_path(kind);
        v1 = v1
            .route(&format!("/v1/{{project_id}}/{path}"), collection(kind))
            .route(&format!("/v1/{{project_id}}/{path}/{{id}}"), item(kind));
    }
    let v1 = v1
        .route(
            "/v1/{project_id}/log-groups/{log_group_id}/log-topics",
            get(list_topics).post(create_topic),
        )
        .route(
            "/v1/{project_id}/log-groups/{log_group_id}/log-topics/{log_topic_id}",
            get(show_topic).put(update_topic).delete(delete_topic),
        )
        .route(
            "/v1/{project_id}/log-groups/{log_group_id}/log-topics/{log_topic_id}/records",
            get(records),
        )
        .route(
            "/v1/{project_id}/log-groups/{log_group_id}/log-topics/{log_topic_id}/analysis/{kind}",
            get(analysis),
        )
        .route(
            "/v1/{project_id}/log-groups/{log_group_id}/log-topics/{log_topic_id}/tail",
            get(tail),
        )
        .route(
            "/v1/{project_id}/vpcs/{vpc_id}/subnets/{subnet_id}",
            get(show_vpc_subnet)
                .put(update_vpc_subnet)
                .delete(delete_vpc_subnet),
        )
        .route(
            "/v3/{project_id}/vpc/firewalls",
            get(list_firewalls).post(create_firewall),
        )
        .route(
            "/v3/{project_id}/vpc/firewalls/{firewall_id}",
            get(show_firewall)
                .put(update_firewall)
                .delete(delete_firewall),
        )
        .route(
            "/v3/{project_id}/vpc/firewalls/{firewall_id}/{action}",
            axum::routing::put(firewall_action),
        )
        .route(
            "/v1/{project_id}/security-group-rules",
            get(list_security_group_rules).post(create_security_group_rule),
        )
        .route(
            "/v1/{project_id}/security-group-rules/{rule_id}",
            get(show_security_group_rule).delete(delete_security_group_rule),
        )
        .route(
            "/v1/{project_id}/captures",
            post(upload_capture).layer(DefaultBodyLimit::disable()),
        )
        .route_layer(middleware::from_fn_with_state(gate.clone(), authenticate));
    // Outside any project's path: whose token this is, and the agents of
    // the caller's hosts.
    let identity = Router::new()
        .route("/v1/auth/token", get(token_project))
        .route("/v1/agents", get(crate::agents::list))
        .route_layer(middleware::from_fn_with_state(gate.clone(), identified));
    // The fleet's agents, with agent tokens only.
    let agent = Router::new()
        .route("/v1/agent/model", get(crate::agents::model))
        .route(
            "/v1/agent/windows",
            post(crate::agents::receive)
                .layer(DefaultBodyLimit::max(crate::agents::MAX_WINDOW_BYTES)),
        )
        .route_layer(middleware::from_fn_with_state(
            (gate, state.agents.clone()),
            agent_gate,
        ));
    Router::new()
        .route("/health", get(|| async { Json(json!({"status": "ok"})) }))
        .route("/metrics", get(metrics))
        .route(
            "/openapi.json",
            get(|| async { Json(crate::openapi::document()) }),
        )
        .merge(v1)
        .merge(identity)
        .merge(agent)
        .fallback(|| async { ApiError::new(StatusCode::NOT_FOUND, "VPC.0404", "no such API path") })
        .with_state(state)
        .layer(middleware::from_fn(refuse_nul))
        .layer(axum::Extension(counters.clone()))
        .layer(middleware::from_fn_with_state(counters, count_requests))
        .layer(middleware::map_response(with_request_id))
}

/// Every response says its request id (`X-Request-Id`), as the seed
/// cloud's do, so that a client's report can name the request.
async fn with_request_id(mut response: Response) -> Response {
    let id = uuid::Uuid::new_v4().simple().to_string();
    if let Ok(v) = axum::http::HeaderValue::from_str(&id) {
        response.headers_mut().insert("x-request-id", v);
    }
    response
}

fn wrap(key: &str, v: Value) -> Json<Value> {
    let mut m = Map::new();
    m.insert(key.to_string(), v);
    Json(Value::Object(m))
}

/// A request's query parameters, or a 400 naming what is wrong with them.
pub(crate) fn params<T>(q: Result<Query<T>, QueryRejection>) -> Result<T, ApiError> {
    q.map(|Query(p)| p).map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "VPC.3001",
            format!("query: {}", e.body_text()),
        )
    })
}

fn page_of(q: Result<Query<Page>, QueryRejection>) -> Result<Page, ApiError> {
    params(q)
}

/// The subnet `subnet` of `project`, if it is in the VPC `vpc` (else 404):
/// the seed cloud updates and deletes a subnet under its VPC's path.
async fn subnet_in(
    db: &ControlDb,
    project: &str,
    vpc: &str,
    subnet: &str,
) -> Result<Value, ApiError> {
    let s = db.get_resource(project, Kind::Subnet, subnet).await?;
    if s["vpc_id"] != vpc {
        return Err(ControlError::ResourceNotFound {
            kind: Kind::Subnet.label(),
            id: format!("{subnet} in VPC {vpc}"),
        }
        .into());
    }
    Ok(s)
}

async fn show_vpc_subnet(
    State(db): Shared,
    Path((project, vpc, subnet)): Path<(String, String, String)>,
) -> Result<Json<Value>, ApiError> {
    let s = subnet_in(&db, &project, &vpc, &subnet).await?;
    Ok(wrap(Kind::Subnet.file_key(), s))
}

async fn update_vpc_subnet(
    State(db): Shared,
    Path((project, vpc, subnet)): Path<(String, String, String)>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    subnet_in(&db, &project, &vpc, &subnet).await?;
    let fields = parse_body(Kind::Subnet, &body)?;
    let s = db
        .update_resource(&project, Kind::Subnet, &subnet, fields)
        .await?;
    Ok(wrap(Kind::Subnet.file_key(), s))
}

async fn delete_vpc_subnet(
    State(db): Shared,
    Path((project, vpc, subnet)): Path<(String, String, String)>,
) -> Result<StatusCode, ApiError> {
    subnet_in(&db, &project, &vpc, &subnet).await?;
    db.delete_resource(&project, Kind::Subnet, &subnet).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A network ACL as the seed cloud's v3 firewall, with its subnets.
async fn firewall_of(db: &ControlDb, project: &str, id: &str) -> Result<Value, ApiError> {
    let acl = db.get_resource(project, Kind::NetworkAcl, id).await?;
    let subnets = acl_subnets(db, project).await?;
    Ok(firewall::view(
        &acl,
        subnets.get(id).map_or(&[], Vec::as_slice),
    ))
}

/// The project's subnets by the network ACL they are associated with.
async fn acl_subnets(
    db: &ControlDb,
    project: &str,
) -> Result<HashMap<String, Vec<String>>, ApiError> {
    let mut by_acl: HashMap<String, Vec<String>> = HashMap::new();
    let all = db
        .list_resources(project, Kind::Subnet, None, &Page::default())
        .await?;
    for s in all {
        if let (Some(acl), Some(id)) = (s["network_acl_id"].as_str(), s["id"].as_str()) {
            by_acl
                .entry(acl.to_string())
                .or_default()
                .push(id.to_string());
        }
    }
    Ok(by_acl)
}

/// The filters of the seed cloud's firewall list.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FirewallFilter {
    id: Option<String>,
    name: Option<String>,
    status: Option<String>,
    admin_state_up: Option<bool>,
    enterprise_project_id: Option<String>,
    limit: Option<u32>,
    marker: Option<String>,
}

async fn list_firewalls(
    State(db): Shared,
    Path(project): Path<String>,
    q: Result<Query<FirewallFilter>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let f = params(q)?;
    let page = Page {
        limit: f.limit,
        marker: f.marker.clone(),
    };
    let acls = db
        .list_resources(&project, Kind::NetworkAcl, None, &page)
        .await?;
    let subnets = acl_subnets(&db, &project).await?;
    // Every ACL here is ACTIVE, on, and of enterprise project "0".
    let epid_ok = f.enterprise_project_id.as_deref().is_none_or(|e| e == "0")
        && f.status.as_deref().is_none_or(|s| s == "ACTIVE")
        && f.admin_state_up != Some(false);
    let views: Vec<Value> = acls
        .iter()
        .filter(|a| {
            epid_ok
                && f.id.as_deref().is_none_or(|i| a["id"] == i)
                && f.name.as_deref().is_none_or(|n| a["name"] == n)
        })
        .map(|a| {
            let id = a["id"].as_str().unwrap_or_default();
            firewall::view(a, subnets.get(id).map_or(&[], Vec::as_slice))
        })
        .collect();
    Ok(wrap(firewall::FIREWALLS, Value::Array(views)))
}

async fn create_firewall(
    State(db): Shared,
    Path(project): Path<String>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let f = firewall::inner(
        firewall::parse(&body, &[firewall::FIREWALL])?,
        &[
            "name",
            "description",
            "enterprise_project_id",
            "admin_state_up",
            "type",
        ],
    )?;
    let made = db
        .create_resource(&project, Kind::NetworkAcl, firewall::acl_fields(f)?)
        .await?;
    let id = made["id"].as_str().unwrap_or_default().to_string();
    Ok(wrap(
        firewall::FIREWALL,
        firewall_of(&db, &project, &id).await?,
    ))
}

async fn show_firewall(
    State(db): Shared,
    Path((project, id)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    Ok(wrap(
        firewall::FIREWALL,
        firewall_of(&db, &project, &id).await?,
    ))
}

async fn update_firewall(
    State(db): Shared,
    Path((project, id)): Path<(String, String)>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let f = firewall::inner(
        firewall::parse(&body, &[firewall::FIREWALL])?,
        &["name", "description", "admin_state_up"],
    )?;
    db.update_resource(&project, Kind::NetworkAcl, &id, firewall::acl_fields(f)?)
        .await?;
    Ok(wrap(
        firewall::FIREWALL,
        firewall_of(&db, &project, &id).await?,
    ))
}

async fn delete_firewall(
    State(db): Shared,
    Path((project, id)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    db.delete_resource(&project, Kind::NetworkAcl, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The firewall's rule and subnet calls (`insert-rules`, `remove-rules`,
/// `update-rules`, `associate-subnets`, `disassociate-subnets`), each one
/// write transaction checked like any change.
async fn firewall_action(
    State(db): Shared,
    Path((project, id, action)): Path<(String, String, String)>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let kind = Kind::NetworkAcl;
    match action.as_str() {
        "insert-rules" | "remove-rules" | "update-rules" => {
            let f = firewall::inner(
                firewall::parse(&body, &[firewall::FIREWALL])?,
                &["ingress_rules", "egress_rules", "insert_after_rule"],
            )?;
            db.modify_resource(&project, kind, &id, |item| match action.as_str() {
                "insert-rules" => firewall::insert_rules(item, &f),
                "remove-rules" => firewall::remove_rules(item, &f),
                _ => firewall::update_rules(item, &f),
            })
            .await?;
        }
        "associate-subnets" | "disassociate-subnets" => {
            let f = firewall::parse(&body, &["subnets"])?;
            db.get_resource(&project, kind, &id).await?;
            let subnets = firewall::subnets_of(&f)?;
            db.set_subnets_acl(&project, &id, &subnets, action == "associate-subnets")
                .await?;
        }
        _ => {
            return Err(ApiError::new(
                StatusCode::NOT_FOUND,
                "VPC.0404",
                format!("no firewall call `{action}`"),
            ));
        }
    }
    Ok(wrap(
        firewall::FIREWALL,
        firewall_of(&db, &project, &id).await?,
    ))
}

/// The filters of the seed cloud's security-group rule list.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleFilter {
    security_group_id: Option<String>,
    direction: Option<String>,
    protocol: Option<String>,
    remote_ip_prefix: Option<String>,
    limit: Option<u32>,
    marker: Option<String>,
}

async fn list_security_group_rules(
    State(db): Shared,
    Path(project): Path<String>,
    q: Result<Query<RuleFilter>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let f = params(q)?;
    let limit = Page {
        limit: f.limit,
        marker: None,
    }
    .size()? as usize;
    let mut rules = db.security_group_rules(&project).await?;
    if let Some(m) = &f.marker {
        let at = rules
            .iter()
            .position(|r| r["id"] == m.as_str())
            .ok_or_else(|| ControlError::Invalid(format!("marker: no security group rule {m}")))?;
        rules.drain(..=at);
    }
    let matches = |r: &Value, k: &str, want: &Option<String>| {
        want.as_ref()
            .is_none_or(|w| r[k].as_str().is_some_and(|v| v.eq_ignore_ascii_case(w)))
    };
    let rules: Vec<Value> = rules
        .into_iter()
        .filter(|r| {
            matches(r, "security_group_id", &f.security_group_id)
                && matches(r, "direction", &f.direction)
                && matches(r, "protocol", &f.protocol)
                && matches(r, "remote_ip_prefix", &f.remote_ip_prefix)
        })
        .take(limit)
        .collect();
    Ok(wrap(SECURITY_GROUP_RULES, Value::Array(rules)))
}

async fn create_security_group_rule(
    State(db): Shared,
    Path(project): Path<String>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let (group, rule) = parse_cloud_rule(&body)?;
    let r = db
        .create_security_group_rule(&project, &group, rule)
        .await?;
    Ok(wrap(SECURITY_GROUP_RULE, r))
}

async fn show_security_group_rule(
    State(db): Shared,
    Path((project, id)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    let r = db.security_group_rule(&project, &id).await?;
    Ok(wrap(SECURITY_GROUP_RULE, r))
}

async fn delete_security_group_rule(
    State(db): Shared,
    Path((project, id)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    db.delete_security_group_rule(&project, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A resource list's query: its page, and the parent filter the seed
/// cloud's SDK sends (a subnet's `vpc_id`, a port's `network_id`).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ResourceList {
    limit: Option<u32>,
    marker: Option<String>,
    vpc_id: Option<String>,
    network_id: Option<String>,
}

impl ResourceList {
    fn parent(&self, kind: Kind) -> Result<Option<&str>, ApiError> {
        let (ok, other) = match kind {
            Kind::Subnet => (&self.vpc_id, ("network_id", &self.network_id)),
            Kind::Port => (&self.network_id, ("vpc_id", &self.vpc_id)),
            _ => match (&self.vpc_id, &self.network_id) {
                (Some(_), _) => return Err(unknown_filter(kind, "vpc_id")),
                (_, Some(_)) => return Err(unknown_filter(kind, "network_id")),
                _ => return Ok(None),
            },
        };
        if other.1.is_some() {
            return Err(unknown_filter(kind, other.0));
        }
        Ok(ok.as_deref())
    }
}

fn unknown_filter(kind: Kind, name: &str) -> ApiError {
    ControlError::Invalid(format!(
        "query: a {} list has no filter `{name}`",
        kind.label()
    ))
    .into()
}

/// `GET` (list) and `POST` (create) of a kind's collection.
fn collection(kind: Kind) -> MethodRouter<AppState> {
    get(
        move |State(db): Shared,
              Path(project): Path<String>,
              q: Result<Query<ResourceList>, QueryRejection>| async move {
            let q = params(q)?;
            let page = Page {
                limit: q.limit,
                marker: q.marker.clone(),
            };
            let parent = q.parent(kind)?;
            let items = db.list_resources(&project, kind, parent, &page).await?;
            Ok::<_, ApiError>(wrap(kind.plural(), Value::Array(items)))
        },
    )
    .post(
        move |State(db): Shared, Path(project): Path<String>, body: Bytes| async move {
            let fields = parse_body(kind, &body)?;
            let created = db.create_resource(&project, kind, fields).await?;
            Ok::<_, ApiError>(wrap(kind.file_key(), created))
        },
    )
}

/// `GET`, `PUT` and `DELETE` of one resource.
fn item(kind: Kind) -> MethodRouter<AppState> {
    get(
        move |State(db): Shared, Path((project, id)): Path<(String, String)>| async move {
            let r = db.get_resource(&project, kind, &id).await?;
            Ok::<_, ApiError>(wrap(kind.file_key(), r))
        },
    )
    .put(
        move |State(db): Shared,
              Path((project, id)): Path<(String, String)>,
              body: Bytes| async move {
            let fields = parse_body(kind, &body)?;
            let r = db.update_resource(&project, kind, &id, fields).await?;
            Ok::<_, ApiError>(wrap(kind.file_key(), r))
        },
    )
    .delete(
        move |State(db): Shared, Path((project, id)): Path<(String, String)>| async move {
            db.delete_resource(&project, kind, &id).await?;
            Ok::<_, ApiError>(StatusCode::NO_CONTENT)
        },
    )
}

/// The topic, if it is `group`'s in `project` (else 404).
async fn topic_of(
    db: &ControlDb,
    project: &str,
    group: &str,
    topic: &str,
) -> Result<Value, ApiError> {
    db.get_resource(project, Kind::LogGroup, group).await?;
    let t = db.get_resource(project, Kind::LogTopic, topic).await?;
    if t["log_group_id"] != group {
        return Err(ControlError::ResourceNotFound {
            kind: Kind::LogTopic.label(),
            id: topic.to_string(),
        }
        .into());
    }
    Ok(t)
}

async fn list_topics(
    State(db): Shared,
    Path((project, group)): Path<(String, String)>,
    q: Result<Query<Page>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let page = page_of(q)?;
    db.get_resource(&project, Kind::LogGroup, &group).await?;
    let items = db
        .list_resources(&project, Kind::LogTopic, Some(&group), &page)
        .await?;
    Ok(wrap(Kind::LogTopic.plural(), Value::Array(items)))
}

async fn create_topic(
    State(db): Shared,
    Path((project, group)): Path<(String, String)>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    db.get_resource(&project, Kind::LogGroup, &group).await?;
    let mut fields = parse_body(Kind::LogTopic, &body)?;
    if fields.get("log_group_id").is_some_and(|g| *g != group) {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "VPC.3001",
            "log_group_id: must be the log group of the path",
        ));
    }
    fields.insert("log_group_id".into(), Value::from(group));
    let t = db.create_resource(&project, Kind::LogTopic, fields).await?;
    Ok(wrap(Kind::LogTopic.file_key(), t))
}

async fn show_topic(
    State(db): Shared,
    Path((project, group, topic)): Path<(String, String, String)>,
) -> Result<Json<Value>, ApiError> {
    let t = topic_of(&db, &project, &group, &topic).await?;
    Ok(wrap(Kind::LogTopic.file_key(), t))
}

async fn update_topic(
    State(db): Shared,
    Path((project, group, topic)): Path<(String, String, String)>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    topic_of(&db, &project, &group, &topic).await?;
    let fields = parse_body(Kind::LogTopic, &body)?;
    let t = db
        .update_resource(&project, Kind::LogTopic, &topic, fields)
        .await?;
    Ok(wrap(Kind::LogTopic.file_key(), t))
}

async fn delete_topic(
    State(db): Shared,
    Path((project, group, topic)): Path<(String, String, String)>,
) -> Result<StatusCode, ApiError> {
    topic_of(&db, &project, &group, &topic).await?;
    db.delete_resource(&project, Kind::LogTopic, &topic).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Rows a records page holds by default, and at most.
const RECORDS_PAGE: usize = 100;
const RECORDS_PAGE_MAX: usize = 10_000;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RecordsParams {
    since: Option<String>,
    until: Option<String>,
    last: Option<String>,
    search: Option<String>,
    sql: Option<String>,
    limit: Option<usize>,
    offset: Option<usize>,
}

async fn records(
    State(state): State<AppState>,
    Path((project, group, topic)): Path<(String, String, String)>,
    q: Result<Query<RecordsParams>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let p = params(q)?;
    topic_of(&state.db, &project, &group, &topic).await?;
    let limit = p.limit.unwrap_or(RECORDS_PAGE);
    if !(1..=RECORDS_PAGE_MAX).contains(&limit) {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "VPC.3001",
            format!("limit: {limit} is not 1 to {RECORDS_PAGE_MAX}"),
        ));
    }
    let offset = p.offset.unwrap_or(0);
    // The SQL engine counts rows in an i64: a larger offset would wrap.
    if i64::try_from(offset).is_err() {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "VPC.3001",
            format!("offset: {offset} is over {}", i64::MAX),
        ));
    }
    let running = RunningQuery::start(&state, &project)?;
    let query = RecordsQuery {
        cancel: running.cancel.clone(),
        log_group_id: group,
        log_topic_id: topic,
        since: p.since,
        until: p.until,
        last: p.last,
        search: p.search,
        sql: p.sql,
        limit,
        offset,
    };
    let data = state.data.clone();
    let page = tokio::task::spawn_blocking(move || data.query(&query))
        .await
        .map_err(|e| {
            ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "VPC.3000", e.to_string())
        })??;
    drop(running);
    Ok(Json(json!(page)))
}

/// Most rows of a top list an analysis may be asked for.
pub const ANALYSIS_TOP_MAX: u64 = 1000;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AnalysisParams {
    since: Option<String>,
    until: Option<String>,
    last: Option<String>,
    thresholds: Option<String>,
    bucket: Option<String>,
    top: Option<u64>,
    by: Option<String>,
    hits: Option<bool>,
}

/// `vpcflow analyze` of one log topic, against the project's model.
async fn analysis(
    State(state): State<AppState>,
    Path((project, group, topic, kind)): Path<(String, String, String, String)>,
    q: Result<Query<AnalysisParams>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let p = params(q)?;
    let kind = AnalysisKind::parse(&kind).ok_or_else(|| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "VPC.3001",
            format!(
                "analysis: '{kind}' is not one of {}",
                AnalysisKind::NAMES.join(", ")
            ),
        )
    })?;
    if let Some(top) = p.top
        && !(1..=ANALYSIS_TOP_MAX).contains(&top)
    {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "VPC.3001",
            format!("top: {top} is not 1 to {ANALYSIS_TOP_MAX}"),
        ));
    }
    // Checked whatever the kind, as the document states them.
    if let Some(by) = &p.by
        && by != "bytes"
        && by != "packets"
    {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "VPC.3001",
            format!("by: '{by}' is not bytes or packets"),
        ));
    }
    topic_of(&state.db, &project, &group, &topic).await?;
    let inventory = state.db.project_inventory(&project).await?;
    let inventory_toml = match kind {
        AnalysisKind::Suggest => Some(state.db.project_inventory_toml(&project).await?),
        _ => None,
    };
    let running = RunningQuery::start(&state, &project)?;
    let query = AnalysisQuery {
        cancel: running.cancel.clone(),
        log_group_id: group,
        log_topic_id: topic,
        since: p.since,
        until: p.until,
        last: p.last,
        thresholds: p.thresholds,
        bucket: p.bucket,
        top: p.top,
        by: p.by,
        hits: p.hits.unwrap_or(false),
        inventory_toml,
    };
    let data = state.data.clone();
    let report = tokio::task::spawn_blocking(move || data.analyze(kind, &inventory, &query))
        .await
        .map_err(|e| {
            ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "VPC.3000", e.to_string())
        })??;
    drop(running);
    Ok(Json(json!(report)))
}

/// Server-sent events: one `window` event per closed window with records
/// for this topic (its flow log, bounds and records), as windows close; a
/// `lagged` event says how many windows a slow reader missed.
async fn tail(
    State(state): State<AppState>,
    Path((project, group, topic)): Path<(String, String, String)>,
) -> Result<Response, ApiError> {
    topic_of(&state.db, &project, &group, &topic).await?;
    let windows = state.data.tail();
    let events = futures_util::stream::unfold(windows, move |mut rx| {
        let (group, topic) = (group.clone(), topic.clone());
        async move {
            loop {
                let event = match rx.recv().await {
                    Ok(w) if w.log_group_id == group && w.log_topic_id == topic => {
                        Event::default().event("window").json_data(&*w)
                    }
                    Ok(_) => continue,
                    Err(RecvError::Lagged(n)) => Event::default()
                        .event("lagged")
                        .json_data(json!({ "missed_windows": n })),
                    Err(RecvError::Closed) => return None,
                };
                return Some((event, rx));
            }
        }
    });
    Ok(Sse::new(events)
        .keep_alive(KeepAlive::default())
        .into_response())
}

/// Spools the body to a file (never all in memory; its first bytes must
/// be a capture's magic, and at most the upload limit is taken), then
/// ingests it as the project's traffic. The spool file is removed on every
/// path.
async fn upload_capture(
    State(state): State<AppState>,
    Path(project): Path<String>,
    body: Body,
) -> Result<Json<Value>, ApiError> {
    let failed = |what: &str, e: &dyn std::fmt::Display| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "VPC.3000",
            format!("{what}: {e}"),
        )
    };
    let inventory = state.db.project_inventory(&project).await?;
    tokio::fs::create_dir_all(&state.uploads)
        .await
        .map_err(|e| failed("upload directory", &e))?;
    let spooled = SpoolFile(
        state
            .uploads
            .join(format!("{}.capture", uuid::Uuid::new_v4())),
    );
    match spool(&state, body, &spooled.0).await? {
        0 => Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "VPC.3001",
            "request body: empty (send a pcap or pcapng file, optionally gzipped)",
        )),
        _ => {
            let data = state.data.clone();
            let report = tokio::task::spawn_blocking(move || {
                let r = data.ingest(&inventory, &spooled.0);
                drop(spooled);
                r
            })
            .await
            .map_err(|e| failed("ingest", &e))??;
            Ok(Json(json!({ "capture": report })))
        }
    }
}

/// Bytes of a body looked at before any is spooled.
const UPLOAD_HEAD: usize = 4;

async fn spool(state: &AppState, body: Body, path: &std::path::Path) -> Result<u64, ApiError> {
    let failed = |e: &dyn std::fmt::Display| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "VPC.3000",
            format!("spooling the upload: {e}"),
        )
    };
    let limit = state.max_upload_bytes;
    let too_large = || {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "VPC.0413",
            format!("request body: over the upload limit of {limit} bytes"),
        )
    };
    let mut file = tokio::fs::File::create(path)
        .await
        .map_err(|e| failed(&e))?;
    let mut body = body;
    let mut n = 0u64;
    let mut head: Vec<u8> = Vec::with_capacity(UPLOAD_HEAD);
    let mut checked = false;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "VPC.3001",
                format!("request body: {e}"),
            )
        })?;
        let Some(chunk) = frame.data_ref() else {
            continue;
        };
        n += chunk.len() as u64;
        if n > limit {
            return Err(too_large());
        }
        if !checked {
            let take = (UPLOAD_HEAD - head.len()).min(chunk.len());
            head.extend_from_slice(&chunk[..take]);
            if head.len() == UPLOAD_HEAD {
                state.data.check_capture_head(&head)?;
                checked = true;
            }
        }
        file.write_all(chunk).await.map_err(|e| failed(&e))?;
    }
    if !checked && !head.is_empty() {
        state.data.check_capture_head(&head)?;
    }
    file.flush().await.map_err(|e| failed(&e))?;
    Ok(n)
}

/// What the token check needs.
#[derive(Clone)]
struct Gate {
    db: Arc<ControlDb>,
    throttle: Arc<AuthThrottle>,
    sealing_key: Option<Arc<SealingKey>>,
}

/// The largest body of a signed request whose hash is checked (the API's
/// JSON bodies are far smaller; a capture upload sends
/// `X-Sdk-Content-Sha256: UNSIGNED-PAYLOAD`).
const MOST_SIGNED_BODY: usize = 4 << 20;

/// A signed request's check: its project, or the 401 (or 413) to answer.
async fn check_signature(
    gate: &Gate,
    req: Request,
    authorization: &str,
) -> Result<(String, Request), Response> {
    let refuse = |e: SignatureError| {
        ApiError::new(
            StatusCode::UNAUTHORIZED,
            "APIGW.0301",
            format!("Incorrect IAM authentication information: {e}"),
        )
        .into_response()
    };
    let Some(key) = &gate.sealing_key else {
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "APIGW.0301",
            "this server takes X-Auth-Token only: it has no access keys",
        )
        .into_response());
    };
    let auth = Authorization::parse(authorization).map_err(refuse)?;
    // (Read before the first await: a request is not `Sync`.)
    let date = req
        .headers()
        .get("x-sdk-date")
        .and_then(|v| v.to_str().ok())
        .ok_or(SignatureError::Date)
        .map_err(refuse)?;
    signing::check_date(date, chrono::Utc::now().timestamp()).map_err(refuse)?;
    let (project, secret) = match gate.db.access_key(&auth.access_key, key).await {
        Ok(Some(found)) => found,
        Ok(None) => return Err(refuse(SignatureError::UnknownKey(auth.access_key))),
        Err(e) => return Err(ApiError::from(e).into_response()),
    };
    let (parts, body) = req.into_parts();
    let declared = parts
        .headers
        .get("x-sdk-content-sha256")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let (body, hash) = match declared {
        Some(h) => (Body::new(body), h),
        None => {
            let bytes = match axum::body::to_bytes(body, MOST_SIGNED_BODY).await {
                Ok(b) => b,
                Err(_) => {
                    return Err(ApiError::new(
                        StatusCode::PAYLOAD_TOO_LARGE,
                        "VPC.0413",
                        format!(
                            "a signed body of more than {MOST_SIGNED_BODY} bytes must be sent with X-Sdk-Content-Sha256: UNSIGNED-PAYLOAD"
                        ),
                    )
                    .into_response());
                }
            };
            let hash = signing::body_hash(&bytes);
            (Body::from(bytes), hash)
        }
    };
    let received = signing::Received {
        method: parts.method.as_str(),
        path: parts.uri.path(),
        query: parts.uri.query(),
        body_hash: &hash,
    };
    let header = |name: &str| parts.headers.get(name).and_then(|v| v.to_str().ok());
    let canonical =
        signing::canonical_request(&received, &auth.signed_headers, header).map_err(refuse)?;
    let date = header("x-sdk-date").unwrap_or_default();
    if !signing::verify(
        &secret,
        &signing::string_to_sign(date, &canonical),
        &auth.signature,
    ) {
        return Err(refuse(SignatureError::Mismatch));
    }
    let path_project = parts.uri.path().split('/').nth(2).unwrap_or_default();
    if let Some(p) = header("x-project-id")
        && p != path_project
    {
        return Err(refuse(SignatureError::ProjectHeader(p.to_string())));
    }
    Ok((project, Request::from_parts(parts, body)))
}

/// 401 without a known token or a valid signature, 403 with another
/// project's; 429 for a client address that sent too many unknown tokens
/// or bad signatures ([`crate::throttle`]).
/// The project whose token or access key signs `req` (throttled by the
/// client's address), or the answer refusing it.
async fn identify(gate: &Gate, req: Request) -> Result<(String, Request), Response> {
    let client = req.extensions().get::<ClientAddr>().map(|c| c.0);
    let now = std::time::Instant::now();
    if let Some(wait) = client.and_then(|c| gate.throttle.wait(c, now)) {
        let mut r = ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "APIGW.0429",
            format!(
                "too many unknown tokens from this address ({} within {} s); retry in {} s",
                gate.throttle.limit(),
                FAILED_AUTH_WINDOW.as_secs(),
                wait.as_secs() + 1
            ),
        )
        .into_response();
        r.headers_mut().insert(
            axum::http::header::RETRY_AFTER,
            axum::http::HeaderValue::from(wait.as_secs() + 1),
        );
        return Err(r);
    }
    let signed = req
        .headers()
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .filter(|v| v.starts_with(signing::ALGORITHM))
        .map(str::to_string);
    let (project, req) = if let Some(authorization) = signed {
        match check_signature(gate, req, &authorization).await {
            Ok(checked) => checked,
            Err(refused) => {
                if refused.status() == StatusCode::UNAUTHORIZED
                    && let Some(c) = client
                {
                    gate.throttle.failed(c, now);
                }
                return Err(refused);
            }
        }
    } else {
        let Some(token) = req
            .headers()
            .get("x-auth-token")
            .and_then(|v| v.to_str().ok())
        else {
            return Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                "APIGW.0301",
                "an X-Auth-Token header or an SDK-HMAC-SHA256 signature is required",
            )
            .into_response());
        };
        match gate.db.project_of_token(token).await {
            Ok(Some(p)) => (p, req),
            Ok(None) if matches!(gate.db.host_of_agent_token(token).await, Ok(Some(_))) => {
                return Err(ApiError::new(
                    StatusCode::FORBIDDEN,
                    "APIGW.0302",
                    "an agent token opens only the agent paths (/v1/agent/...)",
                )
                .into_response());
            }
            Ok(None) => {
                if let Some(c) = client {
                    gate.throttle.failed(c, now);
                }
                return Err(
                    ApiError::new(StatusCode::UNAUTHORIZED, "APIGW.0301", "unknown token")
                        .into_response(),
                );
            }
            Err(e) => return Err(ApiError::from(e).into_response()),
        }
    };
    Ok((project, req))
}

/// Every `/v1/agent/` call: an agent token, whose host the handler gets
/// ([`crate::agents::AgentHost`]); what the agent reports in its headers is
/// noted.
async fn agent_gate(
    State((gate, agents)): State<(Gate, crate::agents::Registry)>,
    mut req: Request,
    next: Next,
) -> Response {
    let client = req.extensions().get::<ClientAddr>().map(|c| c.0);
    let now = std::time::Instant::now();
    if let Some(wait) = client.and_then(|c| gate.throttle.wait(c, now)) {
        return ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "APIGW.0429",
            format!(
                "too many unknown tokens from this address; retry in {} s",
                wait.as_secs() + 1
            ),
        )
        .into_response();
    }
    let Some(token) = req
        .headers()
        .get("x-auth-token")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
    else {
        return ApiError::new(
            StatusCode::UNAUTHORIZED,
            "APIGW.0301",
            "an agent's X-Auth-Token header is required",
        )
        .into_response();
    };
    match gate.db.host_of_agent_token(&token).await {
        Ok(Some(host)) => {
            agents.heard(&host, req.headers());
            req.extensions_mut().insert(crate::agents::AgentHost(host));
            next.run(req).await
        }
        Ok(None) => match gate.db.project_of_token(&token).await {
            Ok(Some(_)) => ApiError::new(
                StatusCode::FORBIDDEN,
                "APIGW.0302",
                "a project token cannot act as an agent (vpcflow token create --agent HOST makes an agent's)",
            )
            .into_response(),
            Ok(None) => {
                if let Some(c) = client {
                    gate.throttle.failed(c, now);
                }
                ApiError::new(StatusCode::UNAUTHORIZED, "APIGW.0301", "unknown token")
                    .into_response()
            }
            Err(e) => ApiError::from(e).into_response(),
        },
        Err(e) => ApiError::from(e).into_response(),
    }
}

/// The project a token or access key belongs to, once [`identified`].
#[derive(Clone)]
pub(crate) struct Caller(pub(crate) String);

/// `/v1/auth/token`: any valid token or access key, whatever its project.
async fn identified(State(gate): State<Gate>, req: Request, next: Next) -> Response {
    match identify(&gate, req).await {
        Ok((project, mut req)) => {
            req.extensions_mut().insert(Caller(project));
            next.run(req).await
        }
        Err(refused) => refused,
    }
}

/// `GET /v1/auth/token`: the project of the caller's token, in the shape
/// of Keystone's token read, so that a client holding only a token (the
/// web console) learns the project id its paths need.
async fn token_project(axum::Extension(Caller(project)): axum::Extension<Caller>) -> Json<Value> {
    Json(json!({ "token": { "project": { "id": project } } }))
}

/// Every `/v1/{project_id}/...` call: the caller must be that project's.
async fn authenticate(State(gate): State<Gate>, req: Request, next: Next) -> Response {
    let (project, req) = match identify(&gate, req).await {
        Ok(identified) => identified,
        Err(refused) => return refused,
    };
    let path_project = req.uri().path().split('/').nth(2).unwrap_or_default();
    if path_project != project {
        return ApiError::new(
            StatusCode::FORBIDDEN,
            "APIGW.0302",
            format!("the token or access key is not valid for project {path_project}"),
        )
        .into_response();
    }
    next.run(req).await
}

fn filter_of(q: Result<Query<FlowLogFilter>, QueryRejection>) -> Result<FlowLogFilter, ApiError> {
    params(q)
}

async fn create_flow_log(
    State(db): Shared,
    Path(project): Path<String>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let new = NewFlowLog::parse(&body)?;
    let f = db.create_flow_log(&project, &new).await?;
    Ok(Json(json!({ "flow_log": f })))
}

async fn list_flow_logs(
    State(db): Shared,
    Path(project): Path<String>,
    query: Result<Query<FlowLogFilter>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let filter = filter_of(query)?;
    let logs = db.list_flow_logs(&project, &filter).await?;
    Ok(Json(json!({ "flow_logs": logs })))
}

async fn show_flow_log(
    State(db): Shared,
    Path((project, id)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    let f = db.get_flow_log(&project, &id).await?;
    Ok(Json(json!({ "flow_log": f })))
}

async fn update_flow_log(
    State(db): Shared,
    Path((project, id)): Path<(String, String)>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let update = FlowLogUpdate::parse(&body)?;
    let f = db.update_flow_log(&project, &id, &update).await?;
    Ok(Json(json!({ "flow_log": f })))
}

async fn delete_flow_log(
    State(db): Shared,
    Path((project, id)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    db.delete_flow_log(&project, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct QuotaQuery {
    r#type: Option<String>,
}

async fn quotas(
    State(db): Shared,
    Path(project): Path<String>,
    query: Result<Query<QuotaQuery>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let q = params(query)?;
    let known = std::iter::once("flow_log")
        .chain(KINDS.iter().map(|k| k.quota_type()))
        .collect::<Vec<_>>();
    if let Some(t) = q.r#type.as_deref()
        && !known.contains(&t)
    {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "VPC.3001",
            format!(
                "type: {t:?} has no quota here (one of {})",
                known.join(", ")
            ),
        ));
    }
    let wanted = |t: &str| q.r#type.as_deref().is_none_or(|w| w == t);
    let mut resources = Vec::new();
    if wanted("flow_log") {
        let used = db.flow_logs_used(&project).await?;
        resources
            .push(json!({"type": "flow_log", "used": used, "quota": FLOW_LOG_QUOTA, "min": 0}));
    }
    for kind in KINDS.iter().filter(|k| wanted(k.quota_type())) {
        let used = db.resources_used(&project, *kind).await?;
        resources.push(
            json!({"type": kind.quota_type(), "used": used, "quota": kind.quota(), "min": 0}),
        );
    }
    Ok(Json(json!({"quotas": {"resources": resources}})))
}

/// How long a stopping server waits for open requests (a query, a live
/// tail, an upload) before it closes them.
pub const SHUTDOWN_GRACE: std::time::Duration = std::time::Duration::from_secs(5);

/// Resolves on SIGINT or SIGTERM.
async fn stop_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = async {
            match term.as_mut() {
                Some(t) => { t.recv().await; }
                None => std::future::pending::<()>().await,
            }
        } => {}
    }
}

/// How long a client may take to send a request's headers: a client that
/// trickles them holds a connection for at most this long.
pub const HEADER_READ_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);
/// Connections one client address may hold open at once; past it new ones
/// are closed at once, so one client cannot take every connection.
pub const CONNECTIONS_PER_CLIENT: usize = 256;
/// Connections open at once in all (kept under the process's file limit).
pub const MAX_CONNECTIONS: usize = 4096;

/// A connection's place in the per-client count, given back when dropped.
struct ClientSlot {
    clients: Arc<Mutex<HashMap<std::net::IpAddr, usize>>>,
    ip: std::net::IpAddr,
}

impl ClientSlot {
    fn take(
        clients: &Arc<Mutex<HashMap<std::net::IpAddr, usize>>>,
        ip: std::net::IpAddr,
    ) -> Option<ClientSlot> {
        let mut c = clients.lock().unwrap_or_else(|e| e.into_inner());
        let n = c.entry(ip).or_default();
        if *n >= CONNECTIONS_PER_CLIENT {
            return None;
        }
        *n += 1;
        Some(ClientSlot {
            clients: clients.clone(),
            ip,
        })
    }
}

impl Drop for ClientSlot {
    fn drop(&mut self) {
        let mut c = self.clients.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = c.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                c.remove(&self.ip);
            }
        }
    }
}

/// Serves the API, and `pages` beside it (the web console), on `listener` until SIGINT or SIGTERM; then stops
/// taking connections, lets open requests finish for [`SHUTDOWN_GRACE`]
/// and returns (a live tail never finishes by itself, so waiting for all
/// of them would never stop). Each connection must send its headers
/// within [`HEADER_READ_TIMEOUT`]; at most [`CONNECTIONS_PER_CLIENT`] per
/// client address and [`MAX_CONNECTIONS`] in all are open at once.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    pages: Router,
) -> std::io::Result<()> {
    let app = router(state).merge(pages);
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let clients = Arc::new(Mutex::new(HashMap::new()));
    let total = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    let stop = stop_signal();
    tokio::pin!(stop);
    let mut failing = false;
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors, most likely: said once per
                    // spell, and retried shortly.
                    if !failing {
                        eprintln!("vpcflow: warning: accepting a connection: {e}");
                        failing = true;
                    }
                    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                    continue;
                }
            },
            () = &mut stop => break,
        };
        failing = false;
        let Some(slot) = ClientSlot::take(&clients, peer.ip()) else {
            continue;
        };
        let Ok(permit) = total.clone().try_acquire_owned() else {
            continue;
        };
        let _ = stream.set_nodelay(true);
        // The token check throttles by the client's address.
        let client = ClientAddr(peer.ip());
        let service = hyper_util::service::TowerToHyperService::new(app.clone().map_request(
            move |mut req: hyper::Request<hyper::body::Incoming>| {
                req.extensions_mut().insert(client);
                req
            },
        ));
        let conn = hyper::server::conn::http1::Builder::new()
            .timer(hyper_util::rt::TokioTimer::new())
            .header_read_timeout(HEADER_READ_TIMEOUT)
            .serve_connection(hyper_util::rt::TokioIo::new(stream), service);
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            let _ = conn.await;
            drop((slot, permit));
        });
    }
    drop(listener);
    if tokio::time::timeout(SHUTDOWN_GRACE, graceful.shutdown())
        .await
        .is_err()
    {
        eprintln!(
            "vpcflow: requests still open {} s after the stop signal; closing them",
            SHUTDOWN_GRACE.as_secs()
        );
    }
    Ok(())
}
