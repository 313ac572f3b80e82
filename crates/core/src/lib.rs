//! The flow-log core: model, inventory, attribution, windowed aggregation and
//! record formats.
//!
//! **Architecture invariant:** this crate does no I/O and never reads the
//! clock. Time is always an argument (`observe(now, ..)`,
//! `close_until(now, ..)`), so a capture replayed from a file and the same
//! traffic seen live give the same records, and tests are deterministic.
//!
//! Data flow: a [`wire::Frame`](vpcflow_wire::Frame) enters the [`Pipeline`],
//! is parsed into an [`IpSummary`](vpcflow_wire::IpSummary), completed by the
//! [`fragments`] tracker, attributed to monitored ports ([`attribute`]),
//! and folded into the current capture window by the [`aggregate`]
//! module, which asks the [`policy`] once per new flow. Closed windows come
//! out as [`record::FlowRecord`]s, which [`format`] turns into text or JSON.

pub mod aggregate;
pub mod attribute;
pub mod flow;
pub mod format;
pub mod fragments;
mod hint;
pub mod inventory;
pub mod pipeline;
pub mod policy;
pub mod record;
pub mod rules;
pub mod schema;
pub mod time;
pub mod topology;

pub use aggregate::{Aggregator, ClosedWindow};
pub use flow::{Action, Direction, FlowDelta, TrafficType};
pub use inventory::{Inventory, InventoryError};
pub use pipeline::{
    Pipeline, PipelineStats, PlausibleTimes, PreparedFrame, SharedFrame, SkipReason,
};
pub use policy::{AcceptAll, Decision, Policy, RuleRef};
pub use record::{FlowRecord, LogStatus, RecordBody};
pub use time::{Timestamp, WindowLength};
pub use topology::Topology;
