//! The control plane: what users create through the API, kept in a
//! database, and the REST API itself.
//!
//! - [`db::ControlDb`]: projects, hashed tokens, the resources flow logs
//!   point at (VPCs, subnets, ports, log groups and topics, imported from an
//!   inventory file at first start) and flow logs, in SQLite under the data
//!   directory. Every query is scoped by project: nothing of project B is
//!   reachable with project A's id.
//! - [`api::router`]: the seed cloud's flow-log API (SPEC §1) with its
//!   bodies, filters, pagination, `VPC.xxxx` errors, duplicate and quota
//!   rules, and the token check in front of every `/v1/` route.
//! - [`model`]: request bodies parsed into typed values at the edge, so the
//!   database only ever sees valid flow logs.
//! - [`agents`]: the fleet's agents: what an agent token (bound to a host)
//!   may fetch, and what the server knows of each agent.
//! - [`resources`]: the other resources, kept as inventory items so every
//!   change is checked by the inventory's own checker against the whole
//!   project before it commits.

pub mod agents;
pub mod api;
pub mod client;
pub mod data;
pub mod db;
pub mod firewall;
pub mod model;
pub mod openapi;
pub mod resources;
pub mod signing;
pub mod throttle;

/// What can go wrong in the control plane.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    /// A request field is invalid (400, `VPC.3001`).
    #[error("{0}")]
    Invalid(String),
    /// The flow log does not exist in this project (404, `VPC.3005`).
    #[error("flow log {0} not found")]
    NotFound(String),
    /// Same resource, traffic type, log group and topic as another (409,
    /// `VPC.3004`).
    #[error("a flow log with the same resource, traffic type, log group and log topic exists: {0}")]
    Duplicate(String),
    /// A resource does not exist in this project (404).
    #[error("{kind} {id} not found")]
    ResourceNotFound {
        /// What was looked for.
        kind: &'static str,
        /// Its id.
        id: String,
    },
    /// A resource cannot be deleted while others use it (409).
    #[error("{0}")]
    InUse(String),
    /// The project's flow-log quota is used up (409, `VPC.3003`).
    #[error("flow log quota exceeded: a project may have {quota} flow logs in this region")]
    Quota {
        /// The quota.
        quota: u32,
    },
    /// The project has as many of a kind as its quota allows (409,
    /// `VPC.0410`).
    #[error("{label} quota exceeded: a project may have {quota}")]
    ResourceQuota {
        /// The kind, in messages.
        label: &'static str,
        /// Its quota.
        quota: u32,
    },
    /// The database failed.
    #[error("control-plane database: {0}")]
    Database(#[from] sqlx::Error),
}

/// Flow logs per project per region (SPEC §1).
pub const FLOW_LOG_QUOTA: u32 = 10;
