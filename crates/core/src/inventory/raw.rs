//! The inventory file as written: serde structs that reject unknown fields.
//! Nothing here is trusted; [`super::Inventory::from_toml`] turns it into the
//! typed model.

use serde::Deserialize;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct File {
    pub region: Option<String>,
    pub window_seconds: Option<u32>,
    pub max_records_per_window: Option<u32>,
    #[serde(default)]
    pub project: Vec<Project>,
    #[serde(default)]
    pub vpc: Vec<Vpc>,
    #[serde(default)]
    pub subnet: Vec<Subnet>,
    #[serde(default)]
    pub port: Vec<Port>,
    #[serde(default)]
    pub security_group: Vec<SecurityGroup>,
    #[serde(default)]
    pub network_acl: Vec<NetworkAcl>,
    #[serde(default)]
    pub log_group: Vec<LogGroup>,
    #[serde(default)]
    pub log_topic: Vec<LogTopic>,
    #[serde(default)]
    pub flow_log: Vec<FlowLog>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Project {
    pub id: String,
    pub name: Option<String>,
    /// Accepted for the reader's benefit; the pipeline has no use for it.
    #[serde(rename = "description")]
    pub _description: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Vpc {
    pub id: String,
    pub project: String,
    pub name: Option<String>,
    /// Accepted for the reader's benefit; the pipeline has no use for it.
    #[serde(rename = "description")]
    pub _description: Option<String>,
    pub cidr: String,
    pub ipv6_cidr: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Subnet {
    pub id: String,
    pub vpc: String,
    pub name: Option<String>,
    /// Accepted for the reader's benefit; the pipeline has no use for it.
    #[serde(rename = "description")]
    pub _description: Option<String>,
    pub cidr: String,
    pub ipv6_cidr: Option<String>,
    pub az: Option<String>,
    pub network_acl: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Port {
    pub id: String,
    pub subnet: String,
    pub name: Option<String>,
    /// Accepted for the reader's benefit; the pipeline has no use for it.
    #[serde(rename = "description")]
    pub _description: Option<String>,
    pub ips: Vec<String>,
    pub mac: Option<String>,
    #[serde(default)]
    pub security_groups: Vec<String>,
    pub interface: Option<String>,
    pub host_side: Option<bool>,
    pub exporter: Option<String>,
    pub if_index: Option<u32>,
    pub host: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct SecurityGroup {
    pub id: String,
    pub project: String,
    pub name: Option<String>,
    /// Accepted for the reader's benefit; the pipeline has no use for it.
    #[serde(rename = "description")]
    pub _description: Option<String>,
    #[serde(default)]
    pub rule: Vec<SecurityGroupRule>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct SecurityGroupRule {
    pub id: Option<String>,
    /// Accepted for the reader's benefit; the pipeline has no use for it.
    #[serde(rename = "description")]
    pub _description: Option<String>,
    pub direction: String,
    pub ethertype: Option<String>,
    pub protocol: Option<ProtocolValue>,
    pub multiport: Option<String>,
    pub remote_ip_prefix: Option<String>,
    pub remote_group_id: Option<String>,
    pub action: Option<String>,
    pub priority: Option<i64>,
}

/// A protocol written as a name (`"tcp"`) or a number (`6` or `"6"`).
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub(super) enum ProtocolValue {
    Number(i64),
    Name(String),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct NetworkAcl {
    pub id: String,
    pub project: String,
    pub name: Option<String>,
    /// Accepted for the reader's benefit; the pipeline has no use for it.
    #[serde(rename = "description")]
    pub _description: Option<String>,
    #[serde(default)]
    pub ingress_rule: Vec<AclRule>,
    #[serde(default)]
    pub egress_rule: Vec<AclRule>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct AclRule {
    pub id: Option<String>,
    pub name: Option<String>,
    /// Accepted for the reader's benefit; the pipeline has no use for it.
    #[serde(rename = "description")]
    pub _description: Option<String>,
    pub action: String,
    pub protocol: Option<ProtocolValue>,
    pub ip_version: Option<i64>,
    pub source_ip_address: Option<String>,
    pub destination_ip_address: Option<String>,
    pub source_port: Option<PortValue>,
    pub destination_port: Option<PortValue>,
    pub enabled: Option<bool>,
}

/// A port or range written as `22`, `"22"` or `"1-1024"`.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub(super) enum PortValue {
    Number(i64),
    Text(String),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct LogGroup {
    pub id: String,
    pub project: String,
    pub name: Option<String>,
    pub ttl_in_days: Option<i64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct LogTopic {
    pub id: String,
    pub log_group: String,
    pub name: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FlowLog {
    pub id: String,
    pub project: String,
    pub name: String,
    pub description: Option<String>,
    pub resource_type: String,
    pub resource_id: String,
    pub traffic_type: String,
    pub log_group_id: String,
    pub log_topic_id: String,
    pub admin_state: Option<bool>,
}
