//! The inventory: projects, VPCs, subnets, ports, security groups, network
//! ACLs, log groups and topics, and flow logs, as typed values.
//!
//! [`Inventory::from_toml`] (or [`Inventory::from_json`], the same document
//! as JSON) is the only way in. It guarantees, for the value it
//! returns: every id is unique within its kind and safe to print in the
//! space-separated record format; every reference points at an existing item
//! (held as an index, so lookups cannot fail); CIDRs, rules and enums are
//! parsed; no two ports share an IP (of one project, for the control
//! plane's combined live inventory: see [`AddressScope`]); a port's IPv4
//! addresses lie in its subnet; the subnets of one VPC do not overlap;
//! every reference stays inside its item's project (a port's subnet and
//! security groups, a subnet's network ACL, a rule's remote group, a flow
//! log's resource and log group); the flow-log quota and duplicate rules of
//! SPEC §1 hold. A bad file gets an [`InventoryError`] naming the file, the
//! item and the field.

mod raw;
pub mod rules;

use crate::schema::NOT_KNOWN;
use std::collections::{HashMap, HashSet};
use std::fmt;
use std::net::IpAddr;

use ipnet::IpNet;

use crate::flow::TrafficType;
use crate::time::WindowLength;
use rules::{
    AclRule, IpVersion, ProtocolMatch, Remote, RuleAction, RuleDirection, SecurityGroupRule,
    parse_prefix, parse_range,
};

/// The seed's record cap per port and window.
pub const DEFAULT_MAX_RECORDS: u32 = 400_000;
/// Flow logs per project per region (SPEC §1).
pub const FLOW_LOG_QUOTA: usize = 10;

/// What is wrong with an inventory file, and where.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InventoryError {
    /// The file could not be read.
    #[error("cannot read inventory {path}: {message}")]
    Read {
        /// The file.
        path: String,
        /// The system's reason.
        message: String,
    },
    /// The file is not valid TOML or has unknown fields or wrong types.
    #[error("{source_name}: {message}")]
    Syntax {
        /// File name (or other label) of the inventory.
        source_name: String,
        /// The parser's message, with line and column.
        message: String,
    },
    /// An item is invalid.
    #[error("{source_name}: {item}: field `{field}`: {message}")]
    Invalid {
        /// File name.
        source_name: String,
        /// The item, e.g. `subnet 'c1e4…' (subnet-db)`.
        item: String,
        /// The field at fault.
        field: String,
        /// What is wrong.
        message: String,
    },
}

/// A project (tenant).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Project {
    /// Id.
    pub id: String,
    /// Name.
    pub name: Option<String>,
}

/// A VPC.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Vpc {
    /// Id.
    pub id: String,
    /// Owning project (index into `projects`).
    pub project: usize,
    /// Name.
    pub name: Option<String>,
    /// IPv4 CIDR.
    pub cidr: IpNet,
    /// Optional IPv6 CIDR.
    pub ipv6_cidr: Option<IpNet>,
}

/// A subnet (the seed's `network-id`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subnet {
    /// Id.
    pub id: String,
    /// Owning VPC (index into `vpcs`).
    pub vpc: usize,
    /// Name.
    pub name: Option<String>,
    /// IPv4 CIDR, inside the VPC's.
    pub cidr: IpNet,
    /// Optional IPv6 CIDR.
    pub ipv6_cidr: Option<IpNet>,
    /// Availability zone.
    pub az: Option<String>,
    /// Its network ACL (index into `network_acls`).
    pub network_acl: Option<usize>,
}

/// A port (the seed's network interface, `interface-id`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Port {
    /// Id.
    pub id: String,
    /// Subnet (index into `subnets`).
    pub subnet: usize,
    /// Name.
    pub name: Option<String>,
    /// Fixed IPs; none shared with another port.
    pub ips: Vec<IpAddr>,
    /// MAC address, as written.
    pub mac: Option<String>,
    /// Security groups in evaluation order (indices into `security_groups`).
    pub security_groups: Vec<usize>,
    /// Linux interface that carries the port (live capture).
    pub interface: Option<String>,
    /// The interface is the host side of a tap/veth: its RX is the port's
    /// egress. As the inventory says it (`None`: not said, which is the
    /// port's own side unless the interface is a tap, SPEC §1).
    pub host_side: Option<bool>,
    /// The flow exporter (its address) and its interface index that carry
    /// the port: exported flows that entered the exporter there are the
    /// port's egress, flows that left there its ingress. An exporter with
    /// such ports has its flows attributed by interface only.
    pub exporter_interface: Option<(IpAddr, u32)>,
    /// The host (hypervisor) the port is bound to, as Neutron binds a port
    /// to one: an agent told its host name monitors only its host's ports
    /// ([`Inventory::local_host`]).
    pub host: Option<String>,
}

/// A security group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecurityGroup {
    /// Id.
    pub id: String,
    /// Owning project.
    pub project: usize,
    /// Name.
    pub name: Option<String>,
    /// Its complete rule list, in file order.
    pub rules: Vec<SecurityGroupRule>,
}

/// A network ACL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetworkAcl {
    /// Id.
    pub id: String,
    /// Owning project.
    pub project: usize,
    /// Name.
    pub name: Option<String>,
    /// Ordered ingress rules.
    pub ingress: Vec<AclRule>,
    /// Ordered egress rules.
    pub egress: Vec<AclRule>,
}

/// A log group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogGroup {
    /// Id.
    pub id: String,
    /// Owning project.
    pub project: usize,
    /// Name.
    pub name: Option<String>,
    /// Retention, 1..=365 days.
    pub ttl_in_days: u16,
}

/// A log topic (log stream) of a group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogTopic {
    /// Id.
    pub id: String,
    /// Its group (index into `log_groups`).
    pub log_group: usize,
    /// Name.
    pub name: Option<String>,
}

/// What a flow log monitors.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Resource {
    /// One port (index into `ports`).
    Port(usize),
    /// Every port of a subnet (index into `subnets`).
    Subnet(usize),
    /// Every port of a VPC (index into `vpcs`).
    Vpc(usize),
}

/// A flow log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlowLog {
    /// Id.
    pub id: String,
    /// Owning project.
    pub project: usize,
    /// Name (<= 64 of letters, digits, `_`, `-`, `.`).
    pub name: String,
    /// Description (<= 255 chars, no `<` or `>`).
    pub description: Option<String>,
    /// What it monitors.
    pub resource: Resource,
    /// Its filter.
    pub traffic_type: TrafficType,
    /// Destination log group (index).
    pub log_group: usize,
    /// Destination log topic (index), a topic of `log_group`.
    pub log_topic: usize,
    /// Disabled flow logs produce no records.
    pub admin_state: bool,
}

/// A whole, valid inventory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inventory {
    /// Region name (`-` when not given).
    pub region: String,
    /// Capture window length.
    pub window: WindowLength,
    /// Records per port, flow log and window.
    pub max_records_per_window: u32,
    /// Projects.
    pub projects: Vec<Project>,
    /// VPCs.
    pub vpcs: Vec<Vpc>,
    /// Subnets.
    pub subnets: Vec<Subnet>,
    /// Ports.
    pub ports: Vec<Port>,
    /// Security groups.
    pub security_groups: Vec<SecurityGroup>,
    /// Network ACLs.
    pub network_acls: Vec<NetworkAcl>,
    /// Log groups.
    pub log_groups: Vec<LogGroup>,
    /// Log topics.
    pub log_topics: Vec<LogTopic>,
    /// Flow logs.
    pub flow_logs: Vec<FlowLog>,
    /// The host this inventory is monitored on, when an agent of a fleet
    /// runs it: only ports bound to that host are monitored (the others
    /// stay in the model, for rules that name their groups). `None`: every
    /// port its flow logs cover, wherever it is bound.
    pub local_host: Option<String>,
}

/// What a host name may be, for error messages.
pub const HOST_NAME_RULE: &str = "1-255 letters, digits, `.`, `-` or `_`";

/// A host name: 1-255 letters, digits, `.`, `-`, `_` (a DNS name or a
/// hypervisor's id).
pub fn valid_host_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 255
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'))
}

/// What a flow log's name may be (SPEC §1), for error messages.
pub const FLOW_LOG_NAME_RULE: &str = "1-64 letters, digits, `_`, `-` or `.`";
/// What a description may be (SPEC §1), for error messages.
pub const DESCRIPTION_RULE: &str = "at most 255 characters, without `<`, `>` or NUL";

/// A flow log's name: 1-64 letters, digits, `_`, `-`, `.` (SPEC §1).
pub fn valid_flow_log_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
}

/// A description: at most 255 characters, no `<` or `>` (SPEC §1).
pub fn valid_description(d: &str) -> bool {
    d.chars().count() <= 255 && !d.contains(['<', '>', '\0'])
}

/// Ids go into a space-separated format, so they must be printable tokens.
fn valid_id(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 128
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'))
}

/// Where port addresses must be unique.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AddressScope {
    /// In the whole inventory: a file's ports share one capture, which
    /// attributes packets to ports by address.
    #[default]
    Inventory,
    /// In each project: the control plane's live inventory combines
    /// separate tenants' networks, which may reuse each other's addresses
    /// (live capture attributes by interface, not address).
    Project,
}

struct Checker<'a> {
    source: &'a str,
    addresses: AddressScope,
}

impl Checker<'_> {
    fn err(
        &self,
        item: impl fmt::Display,
        field: &str,
        message: impl Into<String>,
    ) -> InventoryError {
        InventoryError::Invalid {
            source_name: self.source.to_string(),
            item: item.to_string(),
            field: field.to_string(),
            message: message.into(),
        }
    }

    /// Checks ids of one kind and returns id -> index.
    fn index<'i>(
        &self,
        kind: &str,
        ids: impl Iterator<Item = &'i String>,
    ) -> Result<HashMap<&'i str, usize>, InventoryError> {
        let mut map = HashMap::new();
        for (i, id) in ids.enumerate() {
            if !valid_id(id) {
                return Err(self.err(
                    format_args!("{kind} #{}", i + 1),
                    "id",
                    format!("`{id}` is not a valid id (1-128 letters, digits, `-`, `_`, `.`, `:`)"),
                ));
            }
            if map.insert(id.as_str(), i).is_some() {
                return Err(self.err(
                    format_args!("{kind} '{id}'"),
                    "id",
                    "duplicate id: another item of the same kind has it",
                ));
            }
        }
        Ok(map)
    }

    fn resolve(
        &self,
        map: &HashMap<&str, usize>,
        item: &str,
        field: &str,
        kind: &str,
        id: &str,
    ) -> Result<usize, InventoryError> {
        map.get(id)
            .copied()
            .ok_or_else(|| self.err(item, field, format!("no {kind} with id '{id}'")))
    }

    fn prefix(&self, item: &str, field: &str, s: &str) -> Result<IpNet, InventoryError> {
        parse_prefix(s).map_err(|m| self.err(item, field, m))
    }
}

fn describe(kind: &str, id: &str, name: Option<&String>) -> String {
    match name {
        Some(n) => format!("{kind} '{id}' ({n})"),
        None => format!("{kind} '{id}'"),
    }
}

fn rule_action(s: Option<&str>) -> Option<RuleAction> {
    match s.unwrap_or("allow").to_ascii_lowercase().as_str() {
        "allow" | "accept" => Some(RuleAction::Allow),
        "deny" | "reject" | "drop" => Some(RuleAction::Deny),
        _ => None,
    }
}

fn protocol_of(p: Option<&raw::ProtocolValue>) -> Option<ProtocolMatch> {
    match p {
        None => Some(ProtocolMatch::Any),
        Some(raw::ProtocolValue::Number(n)) => u8::try_from(*n).ok().map(ProtocolMatch::Number),
        Some(raw::ProtocolValue::Name(s)) => ProtocolMatch::parse(s),
    }
}

fn version_of(net: &IpNet) -> IpVersion {
    match net {
        IpNet::V4(_) => IpVersion::V4,
        IpNet::V6(_) => IpVersion::V6,
    }
}

impl Inventory {
    /// Reads, parses and checks the inventory file at `path`.
    pub fn read(path: &std::path::Path) -> Result<Inventory, InventoryError> {
        let text = std::fs::read_to_string(path).map_err(|e| InventoryError::Read {
            path: path.display().to_string(),
            message: e.to_string(),
        })?;
        Inventory::from_toml(&path.display().to_string(), &text)
    }

    /// Parses and checks an inventory. `source_name` (usually the file
    /// name) labels every error.
    pub fn from_toml(source_name: &str, text: &str) -> Result<Inventory, InventoryError> {
        let file: raw::File = toml::from_str(text).map_err(|e| InventoryError::Syntax {
            source_name: source_name.to_string(),
            message: e.to_string().trim_end().to_string(),
        })?;
        build(
            &Checker {
                source: source_name,
                addresses: AddressScope::Inventory,
            },
            file,
        )
    }

    /// Parses and checks an inventory given as a JSON document of the same
    /// shape as the file (the control plane builds one from its database).
    /// Errors are as [`Inventory::from_toml`]'s.
    pub fn from_json(
        source_name: &str,
        document: &serde_json::Value,
    ) -> Result<Inventory, InventoryError> {
        Inventory::from_json_scoped(source_name, document, AddressScope::Inventory)
    }

    /// [`Inventory::from_json`] with port addresses unique in `addresses`.
    pub fn from_json_scoped(
        source_name: &str,
        document: &serde_json::Value,
        addresses: AddressScope,
    ) -> Result<Inventory, InventoryError> {
        let file = <raw::File as serde::Deserialize>::deserialize(document).map_err(|e| {
            InventoryError::Syntax {
                source_name: source_name.to_string(),
                message: e.to_string(),
            }
        })?;
        build(
            &Checker {
                source: source_name,
                addresses,
            },
            file,
        )
    }

    /// Indices of the ports a flow log monitors, now.
    pub fn ports_of(&self, flow_log: &FlowLog) -> Vec<usize> {
        (0..self.ports.len())
            .filter(|&p| self.monitors(flow_log, p))
            .collect()
    }

    /// This inventory as monitored on `host`: see [`Inventory::local_host`].
    pub fn on_host(mut self, host: &str) -> Inventory {
        self.local_host = Some(host.to_string());
        self
    }

    /// Whether port `p` is monitored here: on its own host when this
    /// inventory has one ([`Inventory::local_host`]), else anywhere.
    pub fn is_local(&self, p: usize) -> bool {
        self.local_host
            .as_ref()
            .is_none_or(|h| self.ports[p].host.as_ref() == Some(h))
    }

    /// Whether `flow_log` monitors port `p`.
    pub fn monitors(&self, flow_log: &FlowLog, p: usize) -> bool {
        let port = &self.ports[p];
        match flow_log.resource {
            Resource::Port(i) => i == p,
            Resource::Subnet(s) => port.subnet == s,
            Resource::Vpc(v) => self.subnets[port.subnet].vpc == v,
        }
    }
}

fn build(c: &Checker<'_>, f: raw::File) -> Result<Inventory, InventoryError> {
    let top = "inventory";
    let window = match f.window_seconds {
        None => WindowLength::DEFAULT,
        Some(s) => WindowLength::configured(s).ok_or_else(|| {
            c.err(
                top,
                "window_seconds",
                format!("{s} is outside 60..=600 seconds"),
            )
        })?,
    };
    let max_records_per_window = match f.max_records_per_window {
        None => DEFAULT_MAX_RECORDS,
        Some(0) => return Err(c.err(top, "max_records_per_window", "must be at least 1")),
        Some(n) => n,
    };
    let region = f.region.unwrap_or_else(|| NOT_KNOWN.to_string());
    if region != NOT_KNOWN && !valid_id(&region) {
        return Err(c.err(
            top,
            "region",
            format!("`{region}` is not a valid region name"),
        ));
    }

    let project_ix = c.index("project", f.project.iter().map(|p| &p.id))?;
    let vpc_ix = c.index("vpc", f.vpc.iter().map(|p| &p.id))?;
    let subnet_ix = c.index("subnet", f.subnet.iter().map(|p| &p.id))?;
    let port_ix = c.index("port", f.port.iter().map(|p| &p.id))?;
    let sg_ix = c.index("security_group", f.security_group.iter().map(|p| &p.id))?;
    let acl_ix = c.index("network_acl", f.network_acl.iter().map(|p| &p.id))?;
    let group_ix = c.index("log_group", f.log_group.iter().map(|p| &p.id))?;
    let topic_ix = c.index("log_topic", f.log_topic.iter().map(|p| &p.id))?;
    let _ = c.index("flow_log", f.flow_log.iter().map(|p| &p.id))?;

    let projects = f
        .project
        .iter()
        .map(|p| Project {
            id: p.id.clone(),
            name: p.name.clone(),
        })
        .collect();

    let mut vpcs = Vec::new();
    for v in &f.vpc {
        let item = describe("vpc", &v.id, v.name.as_ref());
        let project = c.resolve(&project_ix, &item, "project", "project", &v.project)?;
        let cidr = c.prefix(&item, "cidr", &v.cidr)?;
        let ipv6_cidr = v
            .ipv6_cidr
            .as_deref()
            .map(|s| c.prefix(&item, "ipv6_cidr", s))
            .transpose()?;
        vpcs.push(Vpc {
            id: v.id.clone(),
            project,
            name: v.name.clone(),
            cidr,
            ipv6_cidr,
        });
    }

    let mut network_acls = Vec::new();
    for a in &f.network_acl {
        let item = describe("network_acl", &a.id, a.name.as_ref());
        let project = c.resolve(&project_ix, &item, "project", "project", &a.project)?;
        let ingress = acl_rules(c, &item, "ingress_rule", &a.ingress_rule)?;
        let egress = acl_rules(c, &item, "egress_rule", &a.egress_rule)?;
        network_acls.push(NetworkAcl {
            id: a.id.clone(),
            project,
            name: a.name.clone(),
            ingress,
            egress,
        });
    }

    let mut subnets = Vec::new();
    for s in &f.subnet {
        let item = describe("subnet", &s.id, s.name.as_ref());
        let vpc = c.resolve(&vpc_ix, &item, "vpc", "vpc", &s.vpc)?;
        let cidr = c.prefix(&item, "cidr", &s.cidr)?;
        let vpc_cidr = vpcs[vpc].cidr;
        if !vpc_cidr.contains(&cidr) {
            return Err(c.err(
                &item,
                "cidr",
                format!("{cidr} is not inside the vpc's {vpc_cidr}"),
            ));
        }
        let ipv6_cidr = s
            .ipv6_cidr
            .as_deref()
            .map(|v| c.prefix(&item, "ipv6_cidr", v))
            .transpose()?;
        let network_acl = s
            .network_acl
            .as_deref()
            .map(|id| c.resolve(&acl_ix, &item, "network_acl", "network_acl", id))
            .transpose()?;
        let project = vpcs[vpc].project;
        if let Some(a) = network_acl
            && network_acls[a].project != project
        {
            return Err(c.err(
                &item,
                "network_acl",
                format!(
                    "network acl '{}' belongs to project '{}', not to the vpc's project '{}'",
                    network_acls[a].id,
                    f.project[network_acls[a].project].id,
                    f.project[project].id
                ),
            ));
        }
        for other in subnets.iter().filter(|o: &&Subnet| o.vpc == vpc) {
            let overlapping =
                |a: &IpNet, b: &IpNet| a.contains(&b.network()) || b.contains(&a.network());
            let v6 = match (&ipv6_cidr, &other.ipv6_cidr) {
                (Some(a), Some(b)) => overlapping(a, b),
                _ => false,
            };
            if overlapping(&cidr, &other.cidr) || v6 {
                return Err(c.err(
                    &item,
                    if v6 { "ipv6_cidr" } else { "cidr" },
                    format!("overlaps subnet '{}' of the same vpc", other.id),
                ));
            }
        }
        if let Some(az) = &s.az
            && !valid_id(az)
        {
            return Err(c.err(&item, "az", format!("`{az}` is not a valid az name")));
        }
        subnets.push(Subnet {
            id: s.id.clone(),
            vpc,
            name: s.name.clone(),
            cidr,
            ipv6_cidr,
            az: s.az.clone(),
            network_acl,
        });
    }

    let mut security_groups = Vec::new();
    for g in &f.security_group {
        let item = describe("security_group", &g.id, g.name.as_ref());
        let project = c.resolve(&project_ix, &item, "project", "project", &g.project)?;
        let mut rules = Vec::new();
        for (n, r) in g.rule.iter().enumerate() {
            let ritem = format!("{item} rule #{}", n + 1);
            rules.push(sg_rule(c, &ritem, &g.id, n, r, &sg_ix)?);
        }
        security_groups.push(SecurityGroup {
            id: g.id.clone(),
            project,
            name: g.name.clone(),
            rules,
        });
    }

    for (gi, g) in security_groups.iter().enumerate() {
        for (n, r) in g.rules.iter().enumerate() {
            if let Remote::Group(o) = r.remote
                && security_groups[o].project != g.project
            {
                let raw = &f.security_group[gi];
                return Err(c.err(
                    format!("{} rule #{}", describe("security_group", &raw.id, raw.name.as_ref()), n + 1),
                    "remote_group_id",
                    format!(
                        "security group '{}' belongs to project '{}', not to this group's project '{}'",
                        security_groups[o].id, f.project[security_groups[o].project].id, f.project[g.project].id
                    ),
                ));
            }
        }
    }

    let mut ports: Vec<Port> = Vec::new();
    let mut owner_of_ip: HashMap<(usize, IpAddr), &str> = HashMap::new();
    let mut owner_of_exporter_interface: HashMap<(IpAddr, u32), &str> = HashMap::new();
    for p in &f.port {
        let item = describe("port", &p.id, p.name.as_ref());
        let subnet = c.resolve(&subnet_ix, &item, "subnet", "subnet", &p.subnet)?;
        if p.ips.is_empty() {
            return Err(c.err(&item, "ips", "a port needs at least one fixed IP"));
        }
        let mut ips = Vec::new();
        for s in &p.ips {
            let ip: IpAddr = s
                .trim()
                .parse()
                .map_err(|_| c.err(&item, "ips", format!("`{s}` is not an IP address")))?;
            let sn = &subnets[subnet];
            let inside = match ip {
                IpAddr::V4(_) => sn.cidr.contains(&ip),
                IpAddr::V6(_) => sn.ipv6_cidr.is_none_or(|n| n.contains(&ip)),
            };
            if !inside {
                return Err(c.err(
                    &item,
                    "ips",
                    format!("{ip} is not inside subnet '{}'", sn.id),
                ));
            }
            let scope = match c.addresses {
                AddressScope::Inventory => 0,
                AddressScope::Project => vpcs[sn.vpc].project,
            };
            if let Some(other) = owner_of_ip.insert((scope, ip), &p.id) {
                return Err(c.err(
                    &item,
                    "ips",
                    format!("{ip} is already a fixed IP of port '{other}'"),
                ));
            }
            ips.push(ip);
        }
        if p.security_groups.is_empty() {
            return Err(c.err(
                &item,
                "security_groups",
                "a port needs at least one security group",
            ));
        }
        let mut groups = Vec::new();
        let project = vpcs[subnets[subnet].vpc].project;
        for g in &p.security_groups {
            let sg = c.resolve(&sg_ix, &item, "security_groups", "security_group", g)?;
            if security_groups[sg].project != project {
                return Err(c.err(
                    &item,
                    "security_groups",
                    format!(
                        "security group '{g}' belongs to project '{}', not to the port's project '{}'",
                        f.project[security_groups[sg].project].id, f.project[project].id
                    ),
                ));
            }
            groups.push(sg);
        }
        if let Some(ifname) = &p.interface
            && (ifname.is_empty() || ifname.len() > 15 || ifname.contains(['/', ' ']))
        {
            return Err(c.err(
                &item,
                "interface",
                format!("`{ifname}` is not a Linux interface name"),
            ));
        }
        let exporter_interface = match (&p.exporter, p.if_index) {
            (None, None) => None,
            (Some(_), None) => {
                return Err(c.err(
                    &item,
                    "if_index",
                    "a port with an exporter needs the exporter's interface index too",
                ));
            }
            (None, Some(_)) => {
                return Err(c.err(
                    &item,
                    "exporter",
                    "an interface index needs the exporter (its IP address) it is on",
                ));
            }
            (Some(e), Some(index)) => {
                let exporter: IpAddr = e
                    .trim()
                    .parse()
                    .map_err(|_| c.err(&item, "exporter", format!("`{e}` is not an IP address")))?;
                if let Some(other) = owner_of_exporter_interface.insert((exporter, index), &p.id) {
                    return Err(c.err(
                        &item,
                        "if_index",
                        format!(
                            "interface {index} of exporter {exporter} is already port '{other}'"
                        ),
                    ));
                }
                Some((exporter, index))
            }
        };
        if let Some(host) = &p.host
            && !valid_host_name(host)
        {
            return Err(c.err(
                &item,
                "host",
                format!("`{host}` is not a host name ({HOST_NAME_RULE})"),
            ));
        }
        ports.push(Port {
            id: p.id.clone(),
            subnet,
            name: p.name.clone(),
            ips,
            mac: p.mac.clone(),
            security_groups: groups,
            interface: p.interface.clone(),
            host_side: p.host_side,
            exporter_interface,
            host: p.host.clone(),
        });
    }

    let mut log_groups = Vec::new();
    for g in &f.log_group {
        let item = describe("log_group", &g.id, g.name.as_ref());
        let project = c.resolve(&project_ix, &item, "project", "project", &g.project)?;
        let ttl = g.ttl_in_days.unwrap_or(7);
        if !(1..=365).contains(&ttl) {
            return Err(c.err(&item, "ttl_in_days", format!("{ttl} is outside 1..=365")));
        }
        log_groups.push(LogGroup {
            id: g.id.clone(),
            project,
            name: g.name.clone(),
            ttl_in_days: ttl as u16,
        });
    }
    let mut log_topics = Vec::new();
    for t in &f.log_topic {
        let item = describe("log_topic", &t.id, t.name.as_ref());
        let log_group = c.resolve(&group_ix, &item, "log_group", "log_group", &t.log_group)?;
        log_topics.push(LogTopic {
            id: t.id.clone(),
            log_group,
            name: t.name.clone(),
        });
    }

    let mut flow_logs: Vec<FlowLog> = Vec::new();
    let mut seen = HashSet::new();
    let mut per_project: HashMap<usize, usize> = HashMap::new();
    for l in &f.flow_log {
        let item = describe("flow_log", &l.id, Some(&l.name));
        let project = c.resolve(&project_ix, &item, "project", "project", &l.project)?;
        if !valid_flow_log_name(&l.name) {
            return Err(c.err(&item, "name", FLOW_LOG_NAME_RULE));
        }
        if let Some(d) = &l.description
            && !valid_description(d)
        {
            return Err(c.err(&item, "description", DESCRIPTION_RULE));
        }
        let resource = match l.resource_type.as_str() {
            "port" => {
                Resource::Port(c.resolve(&port_ix, &item, "resource_id", "port", &l.resource_id)?)
            }
            "network" | "subnet" => Resource::Subnet(c.resolve(
                &subnet_ix,
                &item,
                "resource_id",
                "subnet",
                &l.resource_id,
            )?),
            "vpc" => {
                Resource::Vpc(c.resolve(&vpc_ix, &item, "resource_id", "vpc", &l.resource_id)?)
            }
            other => {
                return Err(c.err(
                    &item,
                    "resource_type",
                    format!("`{other}` is not one of port, network, vpc"),
                ));
            }
        };
        let traffic_type = TrafficType::parse(&l.traffic_type).ok_or_else(|| {
            c.err(
                &item,
                "traffic_type",
                format!("`{}` is not one of all, accept, reject", l.traffic_type),
            )
        })?;
        let log_group = c.resolve(
            &group_ix,
            &item,
            "log_group_id",
            "log_group",
            &l.log_group_id,
        )?;
        let log_topic = c.resolve(
            &topic_ix,
            &item,
            "log_topic_id",
            "log_topic",
            &l.log_topic_id,
        )?;
        let resource_project = match resource {
            Resource::Port(i) => vpcs[subnets[ports[i].subnet].vpc].project,
            Resource::Subnet(i) => vpcs[subnets[i].vpc].project,
            Resource::Vpc(i) => vpcs[i].project,
        };
        for (field, owner) in [
            ("resource_id", resource_project),
            ("log_group_id", log_groups[log_group].project),
        ] {
            if owner != project {
                return Err(c.err(
                    &item,
                    field,
                    format!(
                        "it belongs to project '{}', not to the flow log's project '{}'",
                        f.project[owner].id, f.project[project].id
                    ),
                ));
            }
        }
        if log_topics[log_topic].log_group != log_group {
            return Err(c.err(
                &item,
                "log_topic_id",
                format!(
                    "log topic '{}' does not belong to log group '{}'",
                    l.log_topic_id, l.log_group_id
                ),
            ));
        }
        if !seen.insert((resource, traffic_type, log_group, log_topic)) {
            return Err(c.err(
                &item,
                "resource_id",
                "duplicate flow log: another has the same resource, traffic type, log group and topic",
            ));
        }
        let count = per_project.entry(project).or_default();
        *count += 1;
        if *count > FLOW_LOG_QUOTA {
            return Err(c.err(
                &item,
                "project",
                format!("quota exceeded: at most {FLOW_LOG_QUOTA} flow logs per project"),
            ));
        }
        flow_logs.push(FlowLog {
            id: l.id.clone(),
            project,
            name: l.name.clone(),
            description: l.description.clone(),
            resource,
            traffic_type,
            log_group,
            log_topic,
            admin_state: l.admin_state.unwrap_or(true),
        });
    }

    let inv = Inventory {
        region,
        window,
        max_records_per_window,
        projects,
        vpcs,
        subnets,
        ports,
        security_groups,
        network_acls,
        log_groups,
        log_topics,
        flow_logs,
        local_host: None,
    };
    let rules = crate::rules::count(&inv);
    if rules > crate::rules::MAX_RULES {
        return Err(c.err(
            top,
            "security_group",
            format!(
                "{rules} rules in all; at most {} are supported",
                crate::rules::MAX_RULES
            ),
        ));
    }
    Ok(inv)
}

fn sg_rule(
    c: &Checker<'_>,
    item: &str,
    group_id: &str,
    n: usize,
    r: &raw::SecurityGroupRule,
    sg_ix: &HashMap<&str, usize>,
) -> Result<SecurityGroupRule, InventoryError> {
    let direction = match r.direction.as_str() {
        "ingress" => RuleDirection::Ingress,
        "egress" => RuleDirection::Egress,
        other => {
            return Err(c.err(
                item,
                "direction",
                format!("`{other}` is not ingress or egress"),
            ));
        }
    };
    let mut ethertype = match r.ethertype.as_deref() {
        None => None,
        Some("IPv4" | "ipv4") => Some(IpVersion::V4),
        Some("IPv6" | "ipv6") => Some(IpVersion::V6),
        Some(other) => {
            return Err(c.err(item, "ethertype", format!("`{other}` is not IPv4 or IPv6")));
        }
    };
    let protocol = protocol_of(r.protocol.as_ref()).ok_or_else(|| {
        c.err(
            item,
            "protocol",
            "not tcp, udp, icmp, icmpv6, a number 0-255, or empty",
        )
    })?;
    let ports = rules::PortSet::parse(r.multiport.as_deref().unwrap_or(""))
        .map_err(|m| c.err(item, "multiport", m))?;
    let remote = match (&r.remote_ip_prefix, &r.remote_group_id) {
        (Some(p), None) => {
            let net = c.prefix(item, "remote_ip_prefix", p)?;
            match ethertype {
                Some(v) if v != version_of(&net) => {
                    return Err(c.err(
                        item,
                        "remote_ip_prefix",
                        format!("{net} does not match the rule's ethertype"),
                    ));
                }
                None => ethertype = Some(version_of(&net)),
                _ => {}
            }
            Remote::Prefix(net)
        }
        (None, Some(g)) => {
            Remote::Group(c.resolve(sg_ix, item, "remote_group_id", "security_group", g)?)
        }
        (Some(_), Some(_)) => {
            return Err(c.err(
                item,
                "remote_group_id",
                "give remote_ip_prefix or remote_group_id, not both",
            ));
        }
        (None, None) => {
            return Err(c.err(
                item,
                "remote_ip_prefix",
                "a rule needs remote_ip_prefix or remote_group_id",
            ));
        }
    };
    let action = rule_action(r.action.as_deref())
        .ok_or_else(|| c.err(item, "action", "not allow or deny"))?;
    let priority = r.priority.unwrap_or(1);
    if !(1..=100).contains(&priority) {
        return Err(c.err(item, "priority", format!("{priority} is outside 1..=100")));
    }
    // A positional id kept as the rule's own (by the API, when the
    // group's rules change) is an id too.
    let positional = |id: &str| {
        id.rsplit_once('/')
            .is_some_and(|(g, k)| valid_id(g) && k.parse::<usize>().is_ok_and(|k| k > 0))
    };
    let id = match &r.id {
        Some(id) if valid_id(id) || positional(id) => id.clone(),
        Some(id) => return Err(c.err(item, "id", format!("`{id}` is not a valid id"))),
        None => positional_rule_id(group_id, n),
    };
    Ok(SecurityGroupRule {
        id,
        direction,
        ethertype,
        protocol,
        ports,
        remote,
        action,
        priority: priority as u8,
    })
}

fn acl_rules(
    c: &Checker<'_>,
    acl_item: &str,
    field: &str,
    raw_rules: &[raw::AclRule],
) -> Result<Vec<AclRule>, InventoryError> {
    let dir = field.trim_end_matches("_rule");
    let mut out: Vec<AclRule> = Vec::new();
    for (n, r) in raw_rules.iter().enumerate() {
        let item = format!("{acl_item} {field} #{}", n + 1);
        let action = rule_action(Some(&r.action))
            .ok_or_else(|| c.err(&item, "action", "not allow or deny"))?;
        let protocol = protocol_of(r.protocol.as_ref()).ok_or_else(|| {
            c.err(
                &item,
                "protocol",
                "not tcp, udp, icmp, icmpv6, a number 0-255, or empty",
            )
        })?;
        let ip_version = match r.ip_version {
            None => None,
            Some(4) => Some(IpVersion::V4),
            Some(6) => Some(IpVersion::V6),
            Some(v) => return Err(c.err(&item, "ip_version", format!("{v} is not 4 or 6"))),
        };
        let source = r
            .source_ip_address
            .as_deref()
            .map(|s| c.prefix(&item, "source_ip_address", s))
            .transpose()?;
        let destination = r
            .destination_ip_address
            .as_deref()
            .map(|s| c.prefix(&item, "destination_ip_address", s))
            .transpose()?;
        for (net, f) in [
            (source, "source_ip_address"),
            (destination, "destination_ip_address"),
        ] {
            if let (Some(net), Some(v)) = (net, ip_version)
                && version_of(&net) != v
            {
                return Err(c.err(&item, f, format!("{net} does not match ip_version")));
            }
        }
        let port_range =
            |v: &Option<raw::PortValue>, f: &str| -> Result<Option<(u16, u16)>, InventoryError> {
                match v {
                    None => Ok(None),
                    Some(raw::PortValue::Number(n)) => u16::try_from(*n)
                        .map(|p| Some((p, p)))
                        .map_err(|_| c.err(&item, f, format!("{n} is not a port (0-65535)"))),
                    Some(raw::PortValue::Text(s)) if s.trim().is_empty() => Ok(None),
                    Some(raw::PortValue::Text(s)) => parse_range(s.trim())
                        .map(Some)
                        .map_err(|m| c.err(&item, f, m)),
                }
            };
        let source_ports = port_range(&r.source_port, "source_port")?;
        let destination_ports = port_range(&r.destination_port, "destination_port")?;
        let id =
            r.id.clone()
                .unwrap_or_else(|| acl_rule_id(r.name.as_deref(), dir, n));
        if !valid_id(&id) {
            return Err(c.err(&item, "id", format!("`{id}` is not a valid rule id")));
        }
        if out.iter().any(|o| o.id == id) {
            return Err(c.err(
                &item,
                "id",
                format!("another {field} of this ACL is also '{id}'"),
            ));
        }
        out.push(AclRule {
            id,
            action,
            protocol,
            ip_version,
            source,
            destination,
            source_ports,
            destination_ports,
            enabled: r.enabled.unwrap_or(true),
        });
    }
    Ok(out)
}

/// The id of a network ACL's rule written without one: its name, else
/// its direction and place in that direction's list, from 1 (`ingress-2`).
pub fn acl_rule_id(name: Option<&str>, direction: &str, index: usize) -> String {
    name.map_or_else(|| format!("{direction}-{}", index + 1), str::to_string)
}

/// The id of a security group's rule written without one: the group's
/// id and the rule's place in its list, from 1 (`GROUP/3`).
pub fn positional_rule_id(group_id: &str, index: usize) -> String {
    format!("{group_id}/{}", index + 1)
}

#[cfg(test)]
mod tests;
