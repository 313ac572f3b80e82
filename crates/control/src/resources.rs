//! The model's resources other than flow logs (VPCs, subnets, ports,
//! security groups, network ACLs, log groups and topics) as the API shows
//! them and as the database keeps them.
//!
//! The database keeps each resource as the inventory file's item (the same
//! field names, without `id` and `project`), so the project's whole model
//! can be rebuilt as an inventory document and checked by the one checker
//! the inventory file has ([`vpcflow_core::Inventory::from_json`]). The API
//! names references with an `_id` suffix (`vpc_id`, `subnet_id`, ...) and
//! rule lists in the plural, like the seed cloud's API; this module turns
//! one spelling into the other and refuses what the server sets (`id`,
//! `project_id`, times) and fields that cannot change.

use serde_json::{Map, Value};

use crate::ControlError;

/// Who owns a resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Owner {
    /// The project directly (the file's `project` field).
    Project,
    /// Another resource, named in this file field (the project is its).
    Parent(&'static str),
}

/// A kind of resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A VPC.
    Vpc,
    /// A subnet (the seed's network).
    Subnet,
    /// A port (the seed's interface).
    Port,
    /// A security group with its rules.
    SecurityGroup,
    /// A network ACL with its ordered rules.
    NetworkAcl,
    /// A log group.
    LogGroup,
    /// A log topic of a log group.
    LogTopic,
}

/// Every kind, in the order an inventory document lists them.
pub const KINDS: [Kind; 7] = [
    Kind::Vpc,
    Kind::Subnet,
    Kind::Port,
    Kind::SecurityGroup,
    Kind::NetworkAcl,
    Kind::LogGroup,
    Kind::LogTopic,
];

/// File field names and their API names, for every kind (a file name is
/// never an API name of another field, so one table serves all kinds).
const RENAMES: &[(&str, &str)] = &[
    ("vpc", "vpc_id"),
    ("subnet", "subnet_id"),
    ("network_acl", "network_acl_id"),
    ("log_group", "log_group_id"),
    ("rule", "rules"),
    ("ingress_rule", "ingress_rules"),
    ("egress_rule", "egress_rules"),
    ("project", "project_id"),
];

/// Fields the server sets.
const SERVER_FIELDS: [&str; 4] = ["id", "project_id", "created_at", "updated_at"];

/// The API name of a file field.
pub fn api_field(file: &str) -> &str {
    RENAMES
        .iter()
        .find(|(f, _)| *f == file)
        .map_or(file, |(_, a)| a)
}

fn file_field(api: &str) -> &str {
    RENAMES
        .iter()
        .find(|(_, a)| *a == api)
        .map_or(api, |(f, _)| f)
}

fn invalid(msg: impl Into<String>) -> ControlError {
    ControlError::Invalid(msg.into())
}

impl Kind {
    /// The inventory file's name for it, also its name in the database.
    pub fn file_key(self) -> &'static str {
        match self {
            Kind::Vpc => "vpc",
            Kind::Subnet => "subnet",
            Kind::Port => "port",
            Kind::SecurityGroup => "security_group",
            Kind::NetworkAcl => "network_acl",
            Kind::LogGroup => "log_group",
            Kind::LogTopic => "log_topic",
        }
    }

    /// The key of a list body (`{"vpcs": [...]}`).
    pub fn plural(self) -> &'static str {
        match self {
            Kind::Vpc => "vpcs",
            Kind::Subnet => "subnets",
            Kind::Port => "ports",
            Kind::SecurityGroup => "security_groups",
            Kind::NetworkAcl => "network_acls",
            Kind::LogGroup => "log_groups",
            Kind::LogTopic => "log_topics",
        }
    }

    /// How many of this kind a project may have (the API's quota; an
    /// inventory imported at first start is the operator's and is not
    /// held to it). They bound what one tenant can make every write of
    /// its project check.
    pub fn quota(self) -> u32 {
        match self {
            Kind::Vpc => 100,
            Kind::Subnet => 1_000,
            Kind::Port => 5_000,
            Kind::SecurityGroup => 1_000,
            Kind::NetworkAcl => 200,
            Kind::LogGroup => 100,
            Kind::LogTopic => 1_000,
        }
    }

    /// The `type` of its quota (`/v1/{project_id}/quotas`).
    pub fn quota_type(self) -> &'static str {
        self.file_key()
    }

    /// In messages.
    pub fn label(self) -> &'static str {
        match self {
            Kind::Vpc => "VPC",
            Kind::Subnet => "subnet",
            Kind::Port => "port",
            Kind::SecurityGroup => "security group",
            Kind::NetworkAcl => "network ACL",
            Kind::LogGroup => "log group",
            Kind::LogTopic => "log topic",
        }
    }

    /// Who owns it.
    pub fn owner(self) -> Owner {
        match self {
            Kind::Subnet => Owner::Parent("vpc"),
            Kind::Port => Owner::Parent("subnet"),
            Kind::LogTopic => Owner::Parent("log_group"),
            _ => Owner::Project,
        }
    }

    /// The fields its create and update bodies may have (API names).
    pub fn api_fields(self) -> &'static [&'static str] {
        match self {
            Kind::Vpc => &["name", "description", "cidr", "ipv6_cidr"],
            Kind::Subnet => &[
                "vpc_id",
                "name",
                "description",
                "cidr",
                "ipv6_cidr",
                "az",
                "network_acl_id",
            ],
            Kind::Port => &[
                "subnet_id",
                "name",
                "description",
                "ips",
                "mac",
                "security_groups",
                "interface",
                "host_side",
                "exporter",
                "if_index",
                "host",
            ],
            Kind::SecurityGroup => &["name", "description", "rules"],
            Kind::NetworkAcl => &["name", "description", "ingress_rules", "egress_rules"],
            Kind::LogGroup => &["name", "ttl_in_days"],
            Kind::LogTopic => &["name", "log_group_id"],
        }
    }

    /// The fields a create must have (API names).
    pub fn required_fields(self) -> &'static [&'static str] {
        match self {
            Kind::Vpc => &["cidr"],
            Kind::Subnet => &["vpc_id", "cidr"],
            Kind::Port => &["subnet_id", "ips"],
            Kind::LogTopic => &["log_group_id"],
            _ => &[],
        }
    }

    /// API fields that cannot change after creation.
    pub fn immutable(self) -> &'static [&'static str] {
        match self {
            Kind::Subnet => &["vpc_id", "cidr", "ipv6_cidr", "az"],
            Kind::Port => &["subnet_id", "interface", "host_side"],
            Kind::LogTopic => &["log_group_id"],
            _ => &[],
        }
    }

    /// The rule lists this kind holds (file names).
    fn rule_lists(self) -> &'static [&'static str] {
        match self {
            Kind::SecurityGroup => &["rule"],
            Kind::NetworkAcl => &["ingress_rule", "egress_rule"],
            _ => &[],
        }
    }

    /// The parent's id in a stored body, for kinds that have one.
    pub fn parent_of(self, body: &Map<String, Value>) -> Option<String> {
        match self.owner() {
            Owner::Parent(f) => body.get(f).and_then(Value::as_str).map(str::to_string),
            Owner::Project => None,
        }
    }
}

/// The longest string any model field takes, in characters (names,
/// descriptions, CIDRs, ids: all far shorter).
pub const MAX_FIELD_CHARS: usize = 1024;

/// Refuses a body whose strings (or keys) hold a NUL character (neither
/// database stores one in text, and no field means one) or are longer
/// than [`MAX_FIELD_CHARS`]; the error names the field.
fn check_strings(v: &Value, field: &str) -> Result<(), ControlError> {
    let check = |s: &str, field: &str| {
        if s.contains('\0') {
            return Err(invalid(format!(
                "{field}: a NUL character (\\u0000), which no field accepts"
            )));
        }
        if s.chars().count() > MAX_FIELD_CHARS {
            return Err(invalid(format!(
                "{field}: {} characters; at most {MAX_FIELD_CHARS} are accepted",
                s.chars().count()
            )));
        }
        Ok(())
    };
    match v {
        Value::String(s) => check(s, field),
        Value::Array(a) => a.iter().try_for_each(|v| check_strings(v, field)),
        Value::Object(m) => m.iter().try_for_each(|(k, v)| {
            check(k, field)?;
            check_strings(v, k)
        }),
        _ => Ok(()),
    }
}

/// A request body `{"<singular>": {...}}` as a map of API fields.
pub fn parse_body(kind: Kind, body: &[u8]) -> Result<Map<String, Value>, ControlError> {
    parse_wrapped(kind.file_key(), body)
}

/// A request body `{"<key>": {...}}`: the inner object.
fn parse_wrapped(key: &str, body: &[u8]) -> Result<Map<String, Value>, ControlError> {
    let v: Value =
        serde_json::from_slice(body).map_err(|e| invalid(format!("request body: {e}")))?;
    check_strings(&v, "request body")?;
    let Value::Object(mut outer) = v else {
        return Err(invalid(format!(
            "request body: expected {{\"{key}\": {{...}}}}"
        )));
    };
    let inner = outer.remove(key);
    if let Some(other) = outer.keys().next() {
        return Err(invalid(format!(
            "request body: unknown field `{other}` (expected `{key}`)"
        )));
    }
    match inner {
        Some(Value::Object(m)) => Ok(m),
        Some(_) => Err(invalid(format!("{key}: expected an object"))),
        None => Err(invalid(format!("request body: missing field `{key}`"))),
    }
}

fn to_file_name(kind: Kind, api: &str) -> Result<&str, ControlError> {
    if SERVER_FIELDS.contains(&api) {
        return Err(invalid(format!("{api}: set by the server")));
    }
    if !kind.api_fields().contains(&api) {
        let hint = if api_field(api) != api {
            format!(" (the API calls it `{}`)", api_field(api))
        } else {
            format!("; a {} has {}", kind.label(), kind.api_fields().join(", "))
        };
        return Err(invalid(format!("unknown field `{api}`{hint}")));
    }
    Ok(file_field(api))
}

/// A create body turned into the stored item: API names to file names,
/// nulls dropped, defaults of SPEC §1 applied (a log group keeps records 7
/// days; a security group created without rules gets the default rules),
/// and every rule given an id. `id` is the new resource's.
pub fn new_item(
    kind: Kind,
    id: &str,
    fields: Map<String, Value>,
) -> Result<Map<String, Value>, ControlError> {
    let fields = take_cloud_names(kind, fields, true)?;
    let (echoed, fields) = split_echoed(kind, fields);
    let mut item = Map::new();
    for (k, v) in fields {
        let f = to_file_name(kind, &k)?;
        if !v.is_null() {
            item.insert(f.to_string(), v);
        }
    }
    for f in kind.required_fields() {
        if !item.contains_key(file_field(f)) {
            return Err(invalid(format!("{f}: required")));
        }
    }
    if let Owner::Parent(f) = kind.owner()
        && !item.get(f).is_some_and(Value::is_string)
    {
        return Err(invalid(format!("{}: must be an id", api_field(f))));
    }
    match kind {
        Kind::LogGroup => {
            item.entry("ttl_in_days").or_insert(Value::from(7));
        }
        Kind::SecurityGroup if !item.contains_key("rule") => {
            item.insert("rule".into(), default_security_group_rules(id));
        }
        _ => {}
    }
    name_rules(kind, &mut item)?;
    check_echoed(kind, id, &item, echoed)?;
    Ok(item)
}

/// Applies an update body to a stored item: null removes an optional field;
/// fields the kind cannot change are refused, naming them.
pub fn update_item(
    kind: Kind,
    id: &str,
    item: &mut Map<String, Value>,
    fields: Map<String, Value>,
) -> Result<(), ControlError> {
    let fields = take_cloud_names(kind, fields, false)?;
    let (echoed, fields) = split_echoed(kind, fields);
    for (k, v) in fields {
        if kind.immutable().contains(&k.as_str()) {
            return Err(invalid(format!(
                "{k} cannot be changed after a {} is created",
                kind.label()
            )));
        }
        let f = to_file_name(kind, &k)?.to_string();
        if v.is_null() {
            item.remove(&f);
        } else {
            item.insert(f, v);
        }
    }
    name_rules(kind, item)?;
    check_echoed(kind, id, item, echoed)
}

/// A body written with the seed cloud's names (as its SDK sends them)
/// where ours are absent: a port's `network_id`, `fixed_ips` and
/// `mac_address`, a subnet's `availability_zone` and `cidr_v6`, a group's
/// `security_group_rules`, taken as ours. Where both are sent, or in an
/// update of a field that cannot change, the cloud's is an echo
/// ([`check_echoed`]).
fn take_cloud_names(
    kind: Kind,
    mut fields: Map<String, Value>,
    creating: bool,
) -> Result<Map<String, Value>, ControlError> {
    let renames: &[(&str, &str)] = match kind {
        Kind::Port => &[
            ("network_id", "subnet_id"),
            ("mac_address", "mac"),
            ("fixed_ips", "ips"),
        ],
        Kind::Subnet => &[("availability_zone", "az"), ("cidr_v6", "ipv6_cidr")],
        Kind::SecurityGroup => &[("security_group_rules", "rules")],
        _ => &[],
    };
    // The cloud takes a group's `vpc_id` and documents it as unused; so
    // does vpcflow (a group is the project's, any VPC's ports may use it).
    if kind == Kind::SecurityGroup {
        fields.remove("vpc_id");
    }
    for (cloud, ours) in renames {
        if fields.contains_key(*ours) || (!creating && kind.immutable().contains(ours)) {
            continue;
        }
        let Some(v) = fields.remove(*cloud) else {
            continue;
        };
        let v = match *cloud {
            "fixed_ips" => {
                let subnet = fields
                    .get("subnet_id")
                    .or(fields.get("network_id"))
                    .cloned();
                Value::Array(
                    v.as_array()
                        .ok_or_else(|| invalid("fixed_ips: expected a list"))?
                        .iter()
                        .map(|ip| {
                            if let (Some(s), Some(mine)) = (ip.get("subnet_id"), &subnet)
                                && s != mine
                            {
                                return Err(invalid(format!(
                                    "fixed_ips: {s} is not the port's subnet {mine}"
                                )));
                            }
                            ip.get("ip_address").cloned().ok_or_else(|| {
                                invalid("fixed_ips: every entry needs an ip_address")
                            })
                        })
                        .collect::<Result<Vec<_>, _>>()?,
                )
            }
            "security_group_rules" => Value::Array(
                v.as_array()
                    .ok_or_else(|| invalid("security_group_rules: expected a list"))?
                    .iter()
                    .map(our_rule)
                    .collect::<Result<Vec<_>, _>>()?,
            ),
            _ => v,
        };
        fields.insert(ours.to_string(), v);
    }
    Ok(fields)
}

/// A security-group rule written as the seed cloud writes it, as ours
/// (`port_range_min`/`max` become `multiport`).
fn our_rule(rule: &Value) -> Result<Value, ControlError> {
    let r = rule
        .as_object()
        .ok_or_else(|| invalid("security_group_rules: every rule is an object"))?;
    let mut out = Map::new();
    for k in [
        "id",
        "description",
        "direction",
        "ethertype",
        "protocol",
        "remote_ip_prefix",
        "remote_group_id",
    ] {
        if let Some(v) = r.get(k).filter(|v| !v.is_null()) {
            out.insert(k.to_string(), v.clone());
        }
    }
    let port = |k: &str| r.get(k).and_then(Value::as_u64);
    match (port("port_range_min"), port("port_range_max")) {
        (None, None) => {}
        (Some(a), Some(b)) if a == b => {
            out.insert("multiport".into(), Value::from(a.to_string()));
        }
        (Some(a), Some(b)) => {
            out.insert("multiport".into(), Value::from(format!("{a}-{b}")));
        }
        (Some(a), None) | (None, Some(a)) => {
            out.insert("multiport".into(), Value::from(a.to_string()));
        }
    }
    Ok(Value::Object(out))
}

/// The body key of a security-group rule on the seed cloud's own path
/// (`/v1/{project_id}/security-group-rules`), and of its list.
pub const SECURITY_GROUP_RULE: &str = "security_group_rule";
/// See [`SECURITY_GROUP_RULE`].
pub const SECURITY_GROUP_RULES: &str = "security_group_rules";

/// The fields a rule created on that path may have, as the cloud names them.
const CLOUD_RULE_FIELDS: [&str; 9] = [
    "security_group_id",
    "description",
    "direction",
    "ethertype",
    "protocol",
    "port_range_min",
    "port_range_max",
    "remote_ip_prefix",
    "remote_group_id",
];

/// A `{"security_group_rule": {...}}` create body: the group it goes in,
/// and the rule in our shape (checked with the rest of the model when it
/// is stored). The id is the server's to give.
pub fn parse_cloud_rule(body: &[u8]) -> Result<(String, Value), ControlError> {
    let mut fields = parse_wrapped(SECURITY_GROUP_RULE, body)?;
    if let Some(k) = fields
        .keys()
        .find(|k| !CLOUD_RULE_FIELDS.contains(&k.as_str()))
    {
        let hint = if k == "id" {
            ": set by the server".to_string()
        } else {
            format!(
                "; a security group rule has {}",
                CLOUD_RULE_FIELDS.join(", ")
            )
        };
        return Err(invalid(format!("unknown field `{k}`{hint}")));
    }
    let group = match fields.remove("security_group_id") {
        Some(Value::String(g)) => g,
        Some(_) => return Err(invalid("security_group_id: must be an id")),
        None => return Err(invalid("security_group_id: required")),
    };
    if !fields.get("direction").is_some_and(Value::is_string) {
        return Err(invalid("direction: required (ingress or egress)"));
    }
    for k in ["port_range_min", "port_range_max"] {
        if let Some(v) = fields.get(k).filter(|v| !v.is_null())
            && v.as_u64().is_none_or(|p| p > 65_535)
        {
            return Err(invalid(format!("{k}: {v} is not a port (0..=65535)")));
        }
    }
    Ok((group, our_rule(&Value::Object(fields))?))
}

/// Adds `rule` (ours, from [`parse_cloud_rule`]) to the security group
/// `group`'s stored item, with a new id, which it returns. Rules the
/// group had without ids keep the positional ids they were shown with:
/// adding or removing one must not renumber the others.
pub fn add_rule(group: &str, item: &mut Map<String, Value>, mut rule: Value) -> String {
    let id = uuid::Uuid::new_v4().to_string();
    if let Value::Object(r) = &mut rule {
        r.insert("id".into(), Value::from(id.clone()));
    }
    with_rules(group, item, |rules| rules.push(rule));
    id
}

/// Removes the rule `rule_id` from the security group `group`'s stored
/// item, if it has it (the others keep their ids, as in [`add_rule`]).
pub fn remove_rule(group: &str, item: &mut Map<String, Value>, rule_id: &str) -> bool {
    with_rules(group, item, |rules| {
        let before = rules.len();
        rules.retain(|r| r.get("id").and_then(Value::as_str) != Some(rule_id));
        rules.len() != before
    })
}

/// Runs `f` on the group's rule list, every rule given the id it is
/// shown with first.
fn with_rules<R>(
    group: &str,
    item: &mut Map<String, Value>,
    f: impl FnOnce(&mut Vec<Value>) -> R,
) -> R {
    let mut rules = match item.remove("rule") {
        Some(Value::Array(rules)) => rules,
        _ => Vec::new(),
    };
    for (n, r) in rules.iter_mut().enumerate() {
        if let Value::Object(r) = r {
            r.entry("id").or_insert_with(|| {
                Value::from(vpcflow_core::inventory::positional_rule_id(group, n))
            });
        }
    }
    let out = f(&mut rules);
    item.insert("rule".into(), Value::Array(rules));
    out
}

/// The fields of a body that are the seed cloud's read-only names
/// ([`cloud_fields`]) rather than ones the kind takes: a resource read
/// and sent back carries them.
type Echoed = Vec<(String, Value)>;

fn split_echoed(kind: Kind, fields: Map<String, Value>) -> (Echoed, Map<String, Value>) {
    let cloud: Vec<String> = cloud_fields(kind, "", "", &Map::new())
        .into_iter()
        .map(|(k, _)| k)
        .chain(CLOUD_ONLY_WHEN_SET.iter().map(|k| k.to_string()))
        .collect();
    let mut echoed = Vec::new();
    let mut rest = Map::new();
    for (k, v) in fields {
        if !kind.api_fields().contains(&k.as_str()) && cloud.contains(&k) {
            echoed.push((k, v));
        } else {
            rest.insert(k, v);
        }
    }
    (echoed, rest)
}

/// Cloud names [`cloud_fields`] gives only when the resource has the
/// value (so an empty resource does not list them).
const CLOUD_ONLY_WHEN_SET: &[&str] = &[
    "availability_zone",
    "gateway_ip",
    "gateway_ip_v6",
    "cidr_v6",
    "mac_address",
];

/// Echoed cloud fields must be what the resource gives them (or the
/// project, for `tenant_id`, which the path checks): sent back unchanged,
/// they are taken; set to something else, they are refused, naming ours.
fn check_echoed(
    kind: Kind,
    id: &str,
    item: &Map<String, Value>,
    echoed: Echoed,
) -> Result<(), ControlError> {
    if echoed.is_empty() {
        return Ok(());
    }
    // The project is the path's: `tenant_id`s (the resource's, its
    // rules') are not compared.
    fn without_tenant(v: &Value) -> Value {
        match v {
            Value::Object(m) => Value::Object(
                m.iter()
                    .filter(|(k, _)| *k != "tenant_id")
                    .map(|(k, v)| (k.clone(), without_tenant(v)))
                    .collect(),
            ),
            Value::Array(a) => Value::Array(a.iter().map(without_tenant).collect()),
            other => other.clone(),
        }
    }
    let derived: Map<String, Value> = cloud_fields(kind, id, "", item).into_iter().collect();
    for (k, v) in echoed {
        if k == "tenant_id"
            || derived
                .get(&k)
                .is_some_and(|d| without_tenant(d) == without_tenant(&v))
        {
            continue;
        }
        return Err(invalid(format!(
            "{k} is read-only here (the seed cloud's name for what the {} says in {}); it would be {}",
            kind.label(),
            kind.api_fields().join(", "),
            derived
                .get(&k)
                .map_or("absent".to_string(), Value::to_string)
        )));
    }
    Ok(())
}

/// Rules get ids (UUIDs) where they have none, so the API can name them.
fn name_rules(kind: Kind, item: &mut Map<String, Value>) -> Result<(), ControlError> {
    for list in kind.rule_lists() {
        match item.get_mut(*list) {
            None => {}
            Some(Value::Array(rules)) => {
                for r in rules {
                    let Value::Object(r) = r else {
                        return Err(invalid(format!(
                            "{}: every rule is an object",
                            api_field(list)
                        )));
                    };
                    r.entry("id")
                        .or_insert_with(|| Value::from(uuid::Uuid::new_v4().to_string()));
                }
            }
            Some(_) => return Err(invalid(format!("{}: expected a list", api_field(list)))),
        }
    }
    Ok(())
}

/// SPEC §1: ingress from members of the group itself (IPv4 and IPv6),
/// egress to anywhere.
fn default_security_group_rules(group: &str) -> Value {
    serde_json::json!([
        {"direction": "ingress", "ethertype": "IPv4", "remote_group_id": group},
        {"direction": "ingress", "ethertype": "IPv6", "remote_group_id": group},
        {"direction": "egress", "ethertype": "IPv4", "remote_ip_prefix": "0.0.0.0/0"},
        {"direction": "egress", "ethertype": "IPv6", "remote_ip_prefix": "::/0"},
    ])
}

/// A stored item as the API shows it.
pub fn api_view(
    kind: Kind,
    id: &str,
    project: &str,
    item: &Map<String, Value>,
    created_at: &str,
    updated_at: &str,
) -> Value {
    let mut out = Map::new();
    out.insert("id".into(), Value::from(id));
    out.insert("project_id".into(), Value::from(project));
    for (k, v) in item {
        out.insert(api_field(k).to_string(), v.clone());
    }
    out.insert("created_at".into(), Value::from(created_at));
    out.insert("updated_at".into(), Value::from(updated_at));
    for (k, v) in cloud_fields(kind, id, project, item) {
        out.entry(k).or_insert(v);
    }
    Value::Object(out)
}

/// The seed cloud's names for what a resource already says, beside ours,
/// so that its SDK's models are filled: `tenant_id`, `status`, a port's
/// `fixed_ips`, `mac_address` and `network_id`, a subnet's
/// `availability_zone` and `gateway_ip`, a group's
/// `security_group_rules`...
fn cloud_fields(
    kind: Kind,
    id: &str,
    project: &str,
    item: &Map<String, Value>,
) -> Vec<(String, Value)> {
    let text = |k: &str| item.get(k).and_then(Value::as_str).map(str::to_string);
    let mut out = vec![("tenant_id".to_string(), Value::from(project))];
    let mut add = |k: &str, v: Value| out.push((k.to_string(), v));
    match kind {
        Kind::Vpc => {
            add("status", Value::from("OK"));
            add(
                "description",
                Value::from(text("description").unwrap_or_default()),
            );
            add("routes", Value::Array(Vec::new()));
            add("enterprise_project_id", Value::from("0"));
            add("enable_network_address_usage_metrics", Value::from(false));
        }
        Kind::Subnet => {
            add("status", Value::from("ACTIVE"));
            add(
                "description",
                Value::from(text("description").unwrap_or_default()),
            );
            add("dhcp_enable", Value::from(true));
            add("scope", Value::from("center"));
            add("dns_list", Value::Array(Vec::new()));
            add("extra_dhcp_opts", Value::Array(Vec::new()));
            add("enable_network_address_usage_metrics", Value::from(false));
            add("neutron_network_id", Value::from(id));
            add("neutron_subnet_id", Value::from(id));
            if let Some(az) = text("az") {
                add("availability_zone", Value::from(az));
            }
            if let Some(gateway) = text("cidr").and_then(|c| first_host(&c)) {
                add("gateway_ip", Value::from(gateway));
            }
            let v6 = text("ipv6_cidr");
            add("ipv6_enable", Value::from(v6.is_some()));
            if let Some(v6) = v6 {
                if let Some(gateway) = first_host(&v6) {
                    add("gateway_ip_v6", Value::from(gateway));
                }
                add("cidr_v6", Value::from(v6));
            }
        }
        Kind::Port => {
            let subnet = text("subnet").unwrap_or_default();
            add("status", Value::from("ACTIVE"));
            add("admin_state_up", Value::from(true));
            add("network_id", Value::from(subnet.clone()));
            if let Some(mac) = text("mac") {
                add("mac_address", Value::from(mac));
            }
            let ips = item
                .get("ips")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            let fixed: Vec<Value> = ips
                .iter()
                .map(|ip| serde_json::json!({"subnet_id": subnet, "ip_address": ip}))
                .collect();
            add("fixed_ips", Value::Array(fixed));
            add("device_id", Value::from(""));
            add("device_owner", Value::from(""));
            // Its security groups are always applied; it has no extra
            // address pairs or DHCP options.
            add("port_security_enabled", Value::from(true));
            add("allowed_address_pairs", Value::Array(Vec::new()));
            add("extra_dhcp_opts", Value::Array(Vec::new()));
        }
        Kind::SecurityGroup => {
            add(
                "description",
                Value::from(text("description").unwrap_or_default()),
            );
            add("enterprise_project_id", Value::from("0"));
            let rules = item
                .get("rule")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            let rules: Vec<Value> = rules
                .iter()
                .enumerate()
                .map(|(n, r)| cloud_rule(r, n, id, project))
                .collect();
            add("security_group_rules", Value::Array(rules));
        }
        _ => {}
    }
    out
}

/// The `n`th security-group rule as the seed cloud shows it (its id as
/// the inventory gives it, positional when written without one).
fn cloud_rule(rule: &Value, n: usize, group: &str, project: &str) -> Value {
    let text = |k: &str| rule.get(k).and_then(Value::as_str).map(str::to_string);
    let prefix = text("remote_ip_prefix");
    let ethertype = text("ethertype").unwrap_or_else(|| {
        if prefix.as_deref().is_some_and(|p| p.contains(':')) {
            "IPv6".into()
        } else {
            "IPv4".into()
        }
    });
    let (min, max) = match text("multiport")
        .as_deref()
        .map(|m| m.split_once('-').unwrap_or((m, m)))
    {
        Some((a, b)) => (a.trim().parse::<u16>().ok(), b.trim().parse::<u16>().ok()),
        None => (None, None),
    };
    let protocol = match rule.get("protocol") {
        Some(Value::Number(n)) => Value::from(n.to_string()),
        Some(Value::String(p)) => Value::from(p.clone()),
        _ => Value::Null,
    };
    serde_json::json!({
        "id": text("id").unwrap_or_else(|| vpcflow_core::inventory::positional_rule_id(group, n)),
        "security_group_id": group,
        "tenant_id": project,
        "description": text("description").unwrap_or_default(),
        "direction": text("direction").unwrap_or_default(),
        "ethertype": ethertype,
        "protocol": protocol,
        "port_range_min": min,
        "port_range_max": max,
        "remote_ip_prefix": prefix,
        "remote_group_id": text("remote_group_id"),
    })
}

/// The first host address of a CIDR (a subnet's gateway, as the seed
/// cloud gives it by default).
fn first_host(cidr: &str) -> Option<String> {
    let net: ipnet::IpNet = cidr.parse().ok()?;
    let first = match net.network() {
        std::net::IpAddr::V4(a) => std::net::IpAddr::V4((u32::from(a).checked_add(1)?).into()),
        std::net::IpAddr::V6(a) => std::net::IpAddr::V6((u128::from(a).checked_add(1)?).into()),
    };
    Some(first.to_string())
}

/// A stored item as an inventory document lists it.
pub fn document_item(kind: Kind, id: &str, project: &str, item: &Map<String, Value>) -> Value {
    let mut out = item.clone();
    out.insert("id".into(), Value::from(id));
    if kind.owner() == Owner::Project {
        out.insert("project".into(), Value::from(project));
    }
    Value::Object(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn map(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            _ => panic!("not an object"),
        }
    }

    fn err(r: Result<impl std::fmt::Debug, ControlError>) -> String {
        match r {
            Err(ControlError::Invalid(m)) => m,
            other => panic!("expected Invalid, got {other:?}"),
        }
    }

    #[test]
    fn api_names_become_file_names_and_back() {
        let item = new_item(
            Kind::Subnet,
            "s1",
            map(json!({"vpc_id": "v1", "cidr": "10.0.0.0/24", "network_acl_id": "a1", "az": null})),
        )
        .unwrap();
        assert_eq!(
            Value::Object(item.clone()),
            json!({"vpc": "v1", "cidr": "10.0.0.0/24", "network_acl": "a1"})
        );
        assert_eq!(Kind::Subnet.parent_of(&item).as_deref(), Some("v1"));
        let view = api_view(Kind::Subnet, "s1", "p", &item, "t0", "t1");
        assert_eq!(view["vpc_id"], "v1");
        assert_eq!(view["network_acl_id"], "a1");
        assert_eq!(view["project_id"], "p");
        let doc = document_item(Kind::Subnet, "s1", "p", &item);
        assert_eq!(doc["id"], "s1");
        assert!(doc.get("project").is_none());
        let doc = document_item(Kind::Vpc, "v1", "p", &Map::new());
        assert_eq!(doc["project"], "p");
    }

    #[test]
    fn server_fields_file_spellings_and_missing_parents_are_refused() {
        let bad = |v| err(new_item(Kind::Port, "x", map(v)));
        assert_eq!(
            bad(json!({"id": "y", "subnet_id": "s"})),
            "id: set by the server"
        );
        assert!(bad(json!({"subnet": "s"})).contains("the API calls it `subnet_id`"));
        // Unknown fields are refused even when null (nothing to drop silently).
        assert!(
            bad(json!({"subnet_id": "s", "ips": [], "colour": null}))
                .starts_with("unknown field `colour`")
        );
        assert_eq!(
            bad(json!({"subnet_id": 5, "ips": []})),
            "subnet_id: must be an id"
        );
        assert_eq!(bad(json!({"ips": ["10.0.0.5"]})), "subnet_id: required");
        assert!(err(parse_body(Kind::Vpc, br#"{"vpcs": {}}"#)).contains("unknown field `vpcs`"));
        assert!(err(parse_body(Kind::Vpc, br#"{"vpc": 1}"#)).contains("expected an object"));
        assert!(err(parse_body(Kind::Vpc, b"{}")).contains("missing field `vpc`"));
    }

    #[test]
    fn defaults_and_rule_ids() {
        let g = new_item(Kind::LogGroup, "g", Map::new()).unwrap();
        assert_eq!(g["ttl_in_days"], 7);
        let sg = new_item(Kind::SecurityGroup, "sg1", Map::new()).unwrap();
        let rules = sg["rule"].as_array().unwrap();
        assert_eq!(rules.len(), 4);
        assert_eq!(rules[0]["remote_group_id"], "sg1");
        assert!(rules.iter().all(|r| r["id"].is_string()));
        let none = new_item(Kind::SecurityGroup, "sg2", map(json!({"rules": []}))).unwrap();
        assert_eq!(none["rule"], json!([]));
        let acl = new_item(
            Kind::NetworkAcl,
            "a",
            map(json!({"ingress_rules": [{"id": "keep", "action": "deny"}, {"action": "allow"}]})),
        )
        .unwrap();
        assert_eq!(acl["ingress_rule"][0]["id"], "keep");
        assert!(acl["ingress_rule"][1]["id"].is_string());
        assert!(
            err(new_item(
                Kind::NetworkAcl,
                "a",
                map(json!({"egress_rules": 3}))
            ))
            .contains("expected a list")
        );
    }

    #[test]
    fn bodies_in_the_seed_clouds_names_are_taken_as_ours() {
        let port = new_item(
            Kind::Port,
            "p1",
            map(
                json!({"network_id": "s1", "mac_address": "fa:16:3e:00:00:09",
                       "fixed_ips": [{"subnet_id": "s1", "ip_address": "10.0.0.9"}],
                       "security_groups": ["g"], "admin_state_up": true}),
            ),
        )
        .unwrap();
        assert_eq!(
            Value::Object(port),
            json!({"subnet": "s1", "mac": "fa:16:3e:00:00:09", "ips": ["10.0.0.9"], "security_groups": ["g"]})
        );
        let m = err(new_item(
            Kind::Port,
            "p2",
            map(
                json!({"network_id": "s1", "fixed_ips": [{"subnet_id": "s2", "ip_address": "10.0.0.9"}]}),
            ),
        ));
        assert!(m.contains("not the port's subnet"), "{m}");
        let group = new_item(
            Kind::SecurityGroup,
            "g1",
            map(json!({"name": "web", "security_group_rules": [
                {"direction": "ingress", "ethertype": "IPv4", "protocol": "tcp",
                 "port_range_min": 80, "port_range_max": 443, "remote_ip_prefix": "0.0.0.0/0"},
                {"direction": "ingress", "protocol": "tcp", "port_range_min": 22, "port_range_max": 22}]})),
        )
        .unwrap();
        let rules = group["rule"].as_array().unwrap();
        assert_eq!(rules[0]["multiport"], "80-443");
        assert_eq!(rules[1]["multiport"], "22");
        assert!(rules.iter().all(|r| r["id"].is_string()), "{rules:?}");
        let subnet = new_item(
            Kind::Subnet,
            "s1",
            map(json!({"vpc_id": "v", "cidr": "10.0.0.0/24", "availability_zone": "az1"})),
        )
        .unwrap();
        assert_eq!(subnet["az"], "az1");
    }

    #[test]
    fn updates_refuse_immutable_fields_and_remove_nulls() {
        let mut item = map(json!({"subnet": "s", "ips": ["10.0.0.5"], "name": "web"}));
        update_item(
            Kind::Port,
            "p1",
            &mut item,
            map(json!({"name": null, "mac": "fa:16:3e:00:00:01"})),
        )
        .unwrap();
        assert!(!item.contains_key("name"));
        assert_eq!(item["mac"], "fa:16:3e:00:00:01");
        let m = err(update_item(
            Kind::Port,
            "p1",
            &mut item,
            map(json!({"subnet_id": "t"})),
        ));
        assert_eq!(m, "subnet_id cannot be changed after a port is created");
        let m = err(update_item(
            Kind::Port,
            "p1",
            &mut item,
            map(json!({"created_at": "x"})),
        ));
        assert_eq!(m, "created_at: set by the server");
        // The seed cloud's names a read gives are taken back unchanged, and
        // refused when changed.
        let view = api_view(Kind::Port, "p1", "proj", &item, "t0", "t1");
        let mut echo = view.as_object().unwrap().clone();
        for server_set in ["id", "project_id", "created_at", "updated_at", "subnet_id"] {
            echo.remove(server_set);
        }
        update_item(Kind::Port, "p1", &mut item, echo.clone()).unwrap();
        echo.insert("mac_address".into(), json!("fa:16:3e:00:00:02"));
        let m = err(update_item(Kind::Port, "p1", &mut item, echo));
        assert!(m.starts_with("mac_address is read-only here"), "{m}");
        assert!(m.contains("\"fa:16:3e:00:00:01\""), "{m}");
    }
}
