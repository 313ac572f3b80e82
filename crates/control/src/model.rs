//! Flow logs as the API shows them, and request bodies parsed into typed
//! values (unknown fields, bad values and changes to immutable fields are
//! refused here, each naming the field).

use serde::{Deserialize, Serialize};
use vpcflow_core::inventory::{
    DESCRIPTION_RULE, FLOW_LOG_NAME_RULE, valid_description, valid_flow_log_name,
};

use crate::ControlError;
use crate::resources::Kind;

/// A flow log, as the API returns it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct FlowLog {
    /// Id (UUID).
    pub id: String,
    /// Owning project.
    pub project_id: String,
    /// Owning project, as the seed cloud names it.
    pub tenant_id: String,
    /// Name.
    pub name: String,
    /// Description (empty if none).
    pub description: String,
    /// `port`, `network` or `vpc`.
    pub resource_type: String,
    /// The port, subnet or VPC.
    pub resource_id: String,
    /// `all`, `accept` or `reject`.
    pub traffic_type: String,
    /// Destination log group.
    pub log_group_id: String,
    /// Destination log topic.
    pub log_topic_id: String,
    /// Where the records are stored: `lts` (the log store), as the seed
    /// cloud says.
    pub log_store_type: String,
    /// Enabled.
    pub admin_state: bool,
    /// `ACTIVE`, `DOWN` (disabled) or `ERROR` (resource or topic gone).
    pub status: String,
    /// UTC, `yyyy-MM-ddTHH:mm:ss`.
    pub created_at: String,
    /// UTC, `yyyy-MM-ddTHH:mm:ss`.
    pub updated_at: String,
}

/// The one `log_store_type`: the log store.
pub const LOG_STORE_TYPE: &str = "lts";

/// What a flow log monitors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResourceType {
    /// One port.
    Port,
    /// Every port of a subnet.
    Network,
    /// Every port of a VPC.
    Vpc,
}

impl ResourceType {
    /// The API spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            ResourceType::Port => "port",
            ResourceType::Network => "network",
            ResourceType::Vpc => "vpc",
        }
    }
    /// The kind of resource it names.
    pub fn kind(self) -> Kind {
        match self {
            ResourceType::Port => Kind::Port,
            ResourceType::Network => Kind::Subnet,
            ResourceType::Vpc => Kind::Vpc,
        }
    }
}

/// A valid new flow log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewFlowLog {
    /// Name.
    pub name: String,
    /// Description.
    pub description: String,
    /// What it monitors.
    pub resource_type: ResourceType,
    /// The port, subnet or VPC.
    pub resource_id: String,
    /// `all`, `accept` or `reject`.
    pub traffic_type: &'static str,
    /// Log group.
    pub log_group_id: String,
    /// Log topic.
    pub log_topic_id: String,
    /// Enabled.
    pub admin_state: bool,
}

/// A valid change to a flow log.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FlowLogUpdate {
    /// New name.
    pub name: Option<String>,
    /// New description.
    pub description: Option<String>,
    /// New admin state.
    pub admin_state: Option<bool>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateBody {
    flow_log: CreateFields,
}

/// The fields of a new flow log (OpenAPI: `FlowLogCreate`).
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct CreateFields {
    name: String,
    #[serde(default)]
    description: Option<String>,
    resource_type: String,
    resource_id: String,
    traffic_type: String,
    log_group_id: String,
    log_topic_id: String,
    #[serde(default)]
    admin_state: Option<bool>,
    /// The seed cloud's index switch: accepted; records are always
    /// searchable.
    #[serde(default)]
    #[allow(dead_code, reason = "accepted as the seed cloud's SDK sends it")]
    index_enabled: Option<bool>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UpdateBody {
    flow_log: UpdateFields,
}

/// What an update may change (OpenAPI: `FlowLogUpdate`; the other fields
/// are named in the error when sent).
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct UpdateFields {
    name: Option<String>,
    description: Option<String>,
    admin_state: Option<bool>,
    // Fields that exist but cannot change: named in the error.
    #[schema(ignore)]
    id: Option<serde_json::Value>,
    #[schema(ignore)]
    project_id: Option<serde_json::Value>,
    #[schema(ignore)]
    tenant_id: Option<serde_json::Value>,
    #[schema(ignore)]
    log_store_type: Option<serde_json::Value>,
    #[schema(ignore)]
    resource_type: Option<serde_json::Value>,
    #[schema(ignore)]
    resource_id: Option<serde_json::Value>,
    #[schema(ignore)]
    traffic_type: Option<serde_json::Value>,
    #[schema(ignore)]
    log_group_id: Option<serde_json::Value>,
    #[schema(ignore)]
    log_topic_id: Option<serde_json::Value>,
    #[schema(ignore)]
    status: Option<serde_json::Value>,
    #[schema(ignore)]
    created_at: Option<serde_json::Value>,
    #[schema(ignore)]
    updated_at: Option<serde_json::Value>,
}

fn invalid(msg: impl Into<String>) -> ControlError {
    ControlError::Invalid(msg.into())
}

fn body_error(e: serde_json::Error) -> ControlError {
    invalid(format!("request body: {e}"))
}

fn check_name(name: &str) -> Result<(), ControlError> {
    if valid_flow_log_name(name) {
        Ok(())
    } else {
        Err(invalid(format!("name: {FLOW_LOG_NAME_RULE}")))
    }
}

fn check_description(d: &str) -> Result<(), ControlError> {
    if valid_description(d) {
        Ok(())
    } else {
        Err(invalid(format!("description: {DESCRIPTION_RULE}")))
    }
}

/// A UUID, with or without dashes (the seed's ids come both ways).
pub fn valid_uuid(s: &str) -> bool {
    uuid::Uuid::try_parse(s).is_ok()
}

fn check_uuid(field: &str, s: &str) -> Result<(), ControlError> {
    if valid_uuid(s) {
        Ok(())
    } else {
        Err(invalid(format!("{field}: not a UUID: {s:?}")))
    }
}

impl NewFlowLog {
    /// Parses a create body, `{"flow_log": {...}}`.
    pub fn parse(body: &[u8]) -> Result<NewFlowLog, ControlError> {
        let CreateBody { flow_log: f } = serde_json::from_slice(body).map_err(body_error)?;
        check_name(&f.name)?;
        let description = f.description.unwrap_or_default();
        check_description(&description)?;
        // Any case: the SDK documents `Port`, the API `port`.
        let resource_type = match f.resource_type.to_ascii_lowercase().as_str() {
            "port" => ResourceType::Port,
            "network" => ResourceType::Network,
            "vpc" => ResourceType::Vpc,
            other => {
                return Err(invalid(format!(
                    "resource_type: {other:?} is not port, network or vpc"
                )));
            }
        };
        let traffic_type = match f.traffic_type.as_str() {
            "all" => "all",
            "accept" => "accept",
            "reject" => "reject",
            other => {
                return Err(invalid(format!(
                    "traffic_type: {other:?} is not all, accept or reject"
                )));
            }
        };
        check_uuid("resource_id", &f.resource_id)?;
        check_uuid("log_group_id", &f.log_group_id)?;
        check_uuid("log_topic_id", &f.log_topic_id)?;
        Ok(NewFlowLog {
            name: f.name,
            description,
            resource_type,
            resource_id: f.resource_id,
            traffic_type,
            log_group_id: f.log_group_id,
            log_topic_id: f.log_topic_id,
            admin_state: f.admin_state.unwrap_or(true),
        })
    }
}

impl FlowLogUpdate {
    /// Parses an update body: only name, description and admin_state may
    /// change.
    pub fn parse(body: &[u8]) -> Result<FlowLogUpdate, ControlError> {
        let UpdateBody { flow_log: f } = serde_json::from_slice(body).map_err(body_error)?;
        let immutable = [
            ("id", &f.id),
            ("project_id", &f.project_id),
            ("tenant_id", &f.tenant_id),
            ("log_store_type", &f.log_store_type),
            ("resource_type", &f.resource_type),
            ("resource_id", &f.resource_id),
            ("traffic_type", &f.traffic_type),
            ("log_group_id", &f.log_group_id),
            ("log_topic_id", &f.log_topic_id),
            ("status", &f.status),
            ("created_at", &f.created_at),
            ("updated_at", &f.updated_at),
        ];
        if let Some((field, _)) = immutable.iter().find(|(_, v)| v.is_some()) {
            return Err(invalid(format!(
                "{field} cannot be changed (only name, description and admin_state can)"
            )));
        }
        if let Some(n) = &f.name {
            check_name(n)?;
        }
        if let Some(d) = &f.description {
            check_description(d)?;
        }
        Ok(FlowLogUpdate {
            name: f.name,
            description: f.description,
            admin_state: f.admin_state,
        })
    }
}

/// List filters: every field, plus `limit` and `marker`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FlowLogFilter {
    /// Id.
    pub id: Option<String>,
    /// Name.
    pub name: Option<String>,
    /// Description.
    pub description: Option<String>,
    /// Resource type.
    pub resource_type: Option<String>,
    /// Resource id.
    pub resource_id: Option<String>,
    /// Traffic type.
    pub traffic_type: Option<String>,
    /// Log group.
    pub log_group_id: Option<String>,
    /// Log topic.
    pub log_topic_id: Option<String>,
    /// The project, as the seed cloud names it.
    pub tenant_id: Option<String>,
    /// `lts`.
    pub log_store_type: Option<String>,
    /// Admin state.
    pub admin_state: Option<bool>,
    /// Status.
    pub status: Option<String>,
    /// At most this many (1..2000, default 2000).
    pub limit: Option<u32>,
    /// The last id of the previous page.
    pub marker: Option<String>,
}

/// Most flow logs one list returns.
pub const MAX_PAGE: u32 = 2000;

fn page_size(limit: Option<u32>) -> Result<u32, ControlError> {
    match limit {
        None => Ok(MAX_PAGE),
        Some(n) if (1..=MAX_PAGE).contains(&n) => Ok(n),
        Some(n) => Err(invalid(format!("limit: {n} is not 1 to {MAX_PAGE}"))),
    }
}

/// A list's page: `limit` and `marker` (the last id seen).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Page {
    /// At most this many (1..2000, default 2000).
    pub limit: Option<u32>,
    /// The last id of the previous page.
    pub marker: Option<String>,
}

impl Page {
    /// The page size, checked.
    pub fn size(&self) -> Result<u32, ControlError> {
        page_size(self.limit)
    }
}

impl FlowLogFilter {
    /// The page size, checked.
    pub fn page_size(&self) -> Result<u32, ControlError> {
        page_size(self.limit)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"{"flow_log": {"name": "fl-1", "resource_type": "vpc",
        "resource_id": "0b2a8b6e-07b1-4d43-9d44-0c8e5b0c0f01", "traffic_type": "reject",
        "log_group_id": "0b2a8b6e-07b1-4d43-9d44-0c8e5b0c0f02",
        "log_topic_id": "0b2a8b6e-07b1-4d43-9d44-0c8e5b0c0f03"}}"#;

    fn err(r: Result<impl std::fmt::Debug, ControlError>) -> String {
        match r {
            Err(ControlError::Invalid(m)) => m,
            other => panic!("expected Invalid, got {other:?}"),
        }
    }

    #[test]
    fn a_good_create_body_parses_with_defaults() {
        let f = NewFlowLog::parse(GOOD.as_bytes()).unwrap();
        assert_eq!(f.resource_type, ResourceType::Vpc);
        assert_eq!(f.traffic_type, "reject");
        assert!(f.admin_state);
        assert_eq!(f.description, "");
    }

    #[test]
    fn bad_create_bodies_name_the_field() {
        let with = |from: &str, to: &str| NewFlowLog::parse(GOOD.replace(from, to).as_bytes());
        assert!(err(with("fl-1", "bad name")).starts_with("name:"));
        assert!(err(with("fl-1", &"x".repeat(65))).starts_with("name:"));
        assert!(err(with("\"vpc\"", "\"subnet\"")).starts_with("resource_type:"));
        assert!(err(with("reject", "drop")).starts_with("traffic_type:"));
        assert!(err(with("0c0f01", "0c0f0z")).starts_with("resource_id:"));
        assert!(err(with("\"name\"", "\"nmae\"")).contains("nmae"));
        assert!(
            err(with(
                "\"traffic_type\"",
                "\"description\": \"<b>\", \"traffic_type\""
            ))
            .starts_with("description:")
        );
        assert!(err(NewFlowLog::parse(b"{")).starts_with("request body"));
        assert!(err(NewFlowLog::parse(b"{\"flow_log\": {}}")).contains("missing field"));
    }

    #[test]
    fn updates_change_only_the_mutable_fields() {
        let u =
            FlowLogUpdate::parse(br#"{"flow_log": {"admin_state": false, "name": "n2"}}"#).unwrap();
        assert_eq!(u.admin_state, Some(false));
        assert_eq!(u.name.as_deref(), Some("n2"));
        let m = err(FlowLogUpdate::parse(
            br#"{"flow_log": {"traffic_type": "all"}}"#,
        ));
        assert!(m.starts_with("traffic_type cannot be changed"), "{m}");
        assert!(err(FlowLogUpdate::parse(br#"{"flow_log": {"name": ""}}"#)).starts_with("name:"));
    }

    #[test]
    fn page_sizes_are_checked() {
        let f = |limit| FlowLogFilter {
            limit,
            ..FlowLogFilter::default()
        };
        assert_eq!(f(None).page_size().unwrap(), 2000);
        assert_eq!(f(Some(5)).page_size().unwrap(), 5);
        assert!(f(Some(0)).page_size().is_err());
        assert!(f(Some(2001)).page_size().is_err());
    }
}
