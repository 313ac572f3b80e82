//! The REST API (SPEC §1): the seed cloud's flow-log paths and bodies.
//!
//! Every `/v1/{project_id}/...` request must carry `X-Auth-Token`: no or
//! an unknown token is 401, a token of another project 403, before any
//! handler runs. Errors are `{"code": "VPC.xxxx", "message": "..."}`.
//! `/health` and `/metrics` (Prometheus text) need no token.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, Request, State};
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;

use crate::db::ControlDb;
use crate::model::{FlowLogFilter, FlowLogUpdate, NewFlowLog};
use crate::{ControlError, FLOW_LOG_QUOTA};

/// An error response.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
}

impl ApiError {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
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
            ControlError::Database(_) => (StatusCode::INTERNAL_SERVER_ERROR, "VPC.3000"),
        };
        ApiError::new(status, code, e.to_string())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (
            self.status,
            Json(json!({"code": self.code, "message": self.message})),
        )
            .into_response()
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

async fn count_requests(State(metrics): State<Arc<Metrics>>, req: Request, next: Next) -> Response {
    let method = req.method().as_str().to_string();
    let response = next.run(req).await;
    metrics.count(&method, response.status().as_u16());
    response
}

async fn metrics(
    State(db): Shared,
    axum::Extension(metrics): axum::Extension<Arc<Metrics>>,
) -> Result<Response, ApiError> {
    let (flow_logs, projects) = db.totals().await?;
    Ok((
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        metrics.render(flow_logs, projects),
    )
        .into_response())
}

/// The API over `db`.
pub fn router(db: Arc<ControlDb>) -> Router {
    let counters = Arc::new(Metrics::default());
    let v1 = Router::new()
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
        .route("/v1/{project_id}/quotas", get(quotas))
        .route_layer(middleware::from_fn_with_state(db.clone(), authenticate));
    Router::new()
        .route("/health", get(|| async { Json(json!({"status": "ok"})) }))
        .route("/metrics", get(metrics))
        .merge(v1)
        .fallback(|| async { ApiError::new(StatusCode::NOT_FOUND, "VPC.0404", "no such API path") })
        .with_state(db)
        .layer(axum::Extension(counters.clone()))
        .layer(middleware::from_fn_with_state(counters, count_requests))
}

/// 401 without a known token, 403 with another project's.
async fn authenticate(State(db): Shared, req: Request, next: Next) -> Response {
    let Some(token) = req
        .headers()
        .get("x-auth-token")
        .and_then(|v| v.to_str().ok())
    else {
        return ApiError::new(
            StatusCode::UNAUTHORIZED,
            "APIGW.0301",
            "an X-Auth-Token header is required",
        )
        .into_response();
    };
    let project = match db.project_of_token(token).await {
        Ok(Some(p)) => p,
        Ok(None) => {
            return ApiError::new(StatusCode::UNAUTHORIZED, "APIGW.0301", "unknown token")
                .into_response();
        }
        Err(e) => return ApiError::from(e).into_response(),
    };
    let path_project = req.uri().path().split('/').nth(2).unwrap_or_default();
    if path_project != project {
        return ApiError::new(
            StatusCode::FORBIDDEN,
            "APIGW.0302",
            format!("the token is not valid for project {path_project}"),
        )
        .into_response();
    }
    next.run(req).await
}

fn filter_of(q: Result<Query<FlowLogFilter>, QueryRejection>) -> Result<FlowLogFilter, ApiError> {
    q.map(|Query(f)| f).map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "VPC.3001",
            format!("query: {}", e.body_text()),
        )
    })
}

async fn create_flow_log(
    State(db): Shared,
    Path(project): Path<String>,
    body: Bytes,
) -> Result<Json<serde_json::Value>, ApiError> {
    let new = NewFlowLog::parse(&body)?;
    let f = db.create_flow_log(&project, &new).await?;
    Ok(Json(json!({ "flow_log": f })))
}

async fn list_flow_logs(
    State(db): Shared,
    Path(project): Path<String>,
    query: Result<Query<FlowLogFilter>, QueryRejection>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let filter = filter_of(query)?;
    let logs = db.list_flow_logs(&project, &filter).await?;
    Ok(Json(json!({ "flow_logs": logs })))
}

async fn show_flow_log(
    State(db): Shared,
    Path((project, id)): Path<(String, String)>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let f = db.get_flow_log(&project, &id).await?;
    Ok(Json(json!({ "flow_log": f })))
}

async fn update_flow_log(
    State(db): Shared,
    Path((project, id)): Path<(String, String)>,
    body: Bytes,
) -> Result<Json<serde_json::Value>, ApiError> {
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
) -> Result<Json<serde_json::Value>, ApiError> {
    let Query(q) = query.map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "VPC.3001",
            format!("query: {}", e.body_text()),
        )
    })?;
    if let Some(t) = q.r#type.as_deref()
        && t != "flow_log"
    {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "VPC.3001",
            format!("type: {t:?} has no quota here (flow_log has)"),
        ));
    }
    let used = db.flow_logs_used(&project).await?;
    Ok(Json(json!({"quotas": {"resources": [
        {"type": "flow_log", "used": used, "quota": FLOW_LOG_QUOTA, "min": 0}
    ]}})))
}

/// Serves the API on `listener` until SIGINT or SIGTERM.
pub async fn serve(listener: tokio::net::TcpListener, db: Arc<ControlDb>) -> std::io::Result<()> {
    axum::serve(listener, router(db))
        .with_graceful_shutdown(async {
            let mut term =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = async {
                    match term.as_mut() {
                        Some(t) => { t.recv().await; }
                        None => std::future::pending::<()>().await,
                    }
                } => {}
            }
        })
        .await
}
