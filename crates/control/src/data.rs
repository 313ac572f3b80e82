//! What the API asks of the data plane (the pipeline and the log store),
//! which the `vpcflow` binary provides: the control plane stays free of
//! capture, aggregation and storage code.
//!
//! Both calls block (file reading, aggregation, Parquet, DataFusion); the
//! API runs them on tokio's blocking threads.

use std::path::Path;

use serde::Serialize;
use vpcflow_core::Inventory;

/// Why the data plane refused or failed a call.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    /// The caller's input is wrong (a bad capture, search or SQL): 400.
    #[error("{0}")]
    Invalid(String),
    /// The server failed: 500.
    #[error("{0}")]
    Failed(String),
}

/// What ingesting one capture did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct IngestReport {
    /// Frames read.
    pub frames: u64,
    /// Capture windows written.
    pub windows: u64,
    /// Records written to the log store.
    pub records: u64,
    /// Store files written.
    pub files: u64,
    /// How the capture ended (`complete`, or what cut it short: the frames
    /// before the damage were ingested).
    pub ending: String,
    /// Frames that reached no record, by reason (`not-ip`,
    /// `no-monitored-port`, `implausible-timestamp`: before 1990 or more
    /// than a day ahead of the server's clock, ...); reasons with none are
    /// left out.
    pub skipped: std::collections::BTreeMap<String, u64>,
    /// Capture windows of long gaps without traffic that were not written:
    /// past a day of NODATA after traffic, the rest of a gap is left out.
    pub gap_windows_not_reported: u64,
}

/// A records query of one log topic (ids checked to be the caller's).
#[derive(Debug, Clone, Default)]
pub struct RecordsQuery {
    /// Log group id.
    pub log_group_id: String,
    /// Log topic id.
    pub log_topic_id: String,
    /// Records of windows ending after this instant (RFC 3339 or Unix s).
    pub since: Option<String>,
    /// Records of windows starting before this instant.
    pub until: Option<String>,
    /// Records of the last duration (`15m`, `2h`, `7d`), instead of since.
    pub last: Option<String>,
    /// A field search (`vpcflow query`'s syntax).
    pub search: Option<String>,
    /// SQL over the table `records`.
    pub sql: Option<String>,
    /// Rows per page.
    pub limit: usize,
    /// Rows skipped before the page.
    pub offset: usize,
    /// Set when the answer is no longer wanted (the client went away).
    pub cancel: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

/// Which analysis of a log topic's records (`vpcflow analyze`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AnalysisKind {
    /// Unused, shadowed and broad rules, deny hits.
    Rules,
    /// Scans, sweeps, brute force, floods, reflection, denied bursts.
    Attacks,
    /// Direction split, top talkers and conversations.
    Traffic,
    /// A least-privilege model from the traffic (`analyze rules
    /// --suggest`), replayed against that traffic.
    Suggest,
}

impl AnalysisKind {
    /// Every kind's path segment.
    pub const NAMES: [&'static str; 4] = ["rules", "attacks", "traffic", "suggest"];

    /// The kind of a path segment.
    pub fn parse(s: &str) -> Option<AnalysisKind> {
        match s {
            "rules" => Some(AnalysisKind::Rules),
            "attacks" => Some(AnalysisKind::Attacks),
            "traffic" => Some(AnalysisKind::Traffic),
            "suggest" => Some(AnalysisKind::Suggest),
            _ => None,
        }
    }
}

/// An analysis of one log topic (ids checked to be the caller's).
#[derive(Debug, Clone, Default)]
pub struct AnalysisQuery {
    /// Log group id.
    pub log_group_id: String,
    /// Log topic id.
    pub log_topic_id: String,
    /// Windows ending after this instant (RFC 3339 or Unix s).
    pub since: Option<String>,
    /// Windows starting before this instant.
    pub until: Option<String>,
    /// The last duration (`15m`, `2h`, `7d`), instead of since.
    pub last: Option<String>,
    /// Attack thresholds, `NAME=VALUE,NAME=VALUE`.
    pub thresholds: Option<String>,
    /// Traffic: the time bucket (`1h`).
    pub bucket: Option<String>,
    /// Traffic: rows per top list.
    pub top: Option<u64>,
    /// Traffic: rank by `bytes` or `packets`.
    pub by: Option<String>,
    /// Rules: every rule's hit counters (`analyze rules --hits`) instead
    /// of the findings.
    pub hits: bool,
    /// Suggest: the project's model as an inventory file, which the
    /// suggestion edits.
    pub inventory_toml: Option<String>,
    /// Set when the answer is no longer wanted (the client went away).
    pub cancel: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

/// What an analysis found.
#[derive(Debug, Clone, Default, Serialize, utoipa::ToSchema)]
pub struct AnalysisReport {
    /// Findings, as `vpcflow analyze --format json` writes them.
    #[schema(value_type = Vec<Object>)]
    pub findings: Vec<serde_json::Value>,
    /// Suggest only: the suggested model and its replay.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub suggestion: Option<SuggestionReport>,
}

/// A suggested least-privilege model, and what replaying the range's
/// traffic through it showed (its changes and any flow it would newly
/// reject are the report's findings).
#[derive(Debug, Clone, Default, Serialize, utoipa::ToSchema)]
pub struct SuggestionReport {
    /// The project's model with the changes, as an inventory file.
    pub inventory: String,
    /// Accepted flows of the range replayed through it.
    pub checked: u64,
    /// How many of them it would reject (`newly-rejected` findings); the
    /// suggestion is sound only when none.
    pub newly_rejected: u64,
}

/// One page of a records query.
#[derive(Debug, Clone, Default, Serialize, utoipa::ToSchema)]
pub struct RecordsPage {
    /// Rows, as JSON objects keyed by column.
    #[schema(value_type = Vec<Object>)]
    pub records: Vec<serde_json::Value>,
    /// The offset of the next page, if there is more.
    pub next_offset: Option<usize>,
}

/// One closed window's records of one flow log, for the live tail.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct TailWindow {
    /// Log group.
    pub log_group_id: String,
    /// Log topic.
    pub log_topic_id: String,
    /// The flow log that wrote them.
    pub flow_log_id: String,
    /// Window start (Unix seconds).
    pub start: u64,
    /// Window end.
    pub end: u64,
    /// The records, as `--format json` writes them.
    #[schema(value_type = Vec<Object>)]
    pub records: Vec<serde_json::Value>,
}

/// A window a fleet's agent shipped, checked, waiting to be written.
#[derive(Debug, Clone)]
pub struct ShippedInfo {
    /// Log group.
    pub log_group_id: String,
    /// Log topic.
    pub log_topic_id: String,
    /// Its file's name in the agent's store (with the host, its id).
    pub name: String,
    /// The ports its records are of.
    pub interface_ids: Vec<String>,
    /// Its records.
    pub records: u64,
}

/// A checked shipped window: written once the caller has authorized it.
pub trait PendingWindow: Send {
    /// What it holds.
    fn info(&self) -> &ShippedInfo;
    /// Writes it durably into the log store as the window of `host`.
    fn write(self: Box<Self>, host: &str) -> Result<(), DataError>;
}

/// The pipeline and the log store, as `vpcflow serve` runs them.
pub trait DataPlane: Send + Sync + 'static {
    /// Checks a window an agent shipped: its log topic, its file's name in
    /// the agent's store, the file (Parquet) and its summary. `inventory`
    /// is the model of the agent's host (its log groups and topics).
    fn check_window(
        &self,
        inventory: &Inventory,
        log_group_id: &str,
        log_topic_id: &str,
        name: &str,
        records: Vec<u8>,
        summary: &[u8],
    ) -> Result<Box<dyn PendingWindow>, DataError>;
    /// Whether the window `name` of `host` is in the log store.
    fn has_window(&self, host: &str, log_group_id: &str, log_topic_id: &str, name: &str) -> bool;
    /// Ingests the capture at `path` as the traffic of `inventory` (one
    /// project's model and flow logs) and writes the closed windows to the
    /// log store.
    fn ingest(&self, inventory: &Inventory, path: &Path) -> Result<IngestReport, DataError>;
    /// Whether an upload whose first bytes are `head` (at least 4, or the
    /// whole body if shorter) can be a capture: checked before the rest
    /// of the body is spooled. The error names what was found.
    fn check_capture_head(&self, head: &[u8]) -> Result<(), DataError>;
    /// Runs a query confined to one log topic.
    fn query(&self, query: &RecordsQuery) -> Result<RecordsPage, DataError>;
    /// Analyzes one log topic's records against `inventory` (the project's
    /// model).
    fn analyze(
        &self,
        kind: AnalysisKind,
        inventory: &Inventory,
        query: &AnalysisQuery,
    ) -> Result<AnalysisReport, DataError>;
    /// Prometheus text of the data plane's counters.
    fn metrics(&self) -> String;
    /// Every window's records from now on, as they are written.
    fn tail(&self) -> tokio::sync::broadcast::Receiver<std::sync::Arc<TailWindow>>;
}
