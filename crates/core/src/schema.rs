//! The flow record's fields: one table, [`FIELDS`], from which every
//! rendering of a record is derived (the text formats and JSON in
//! [`format`](crate::format), the log store's columns, the query's v1/v2
//! output, the search's field names), and [`value`], the one place a
//! record's indexes (port, flow log, rule) are resolved to its values.
//!
//! Guarantees: a field's seed name, column name, type, nullability and tier
//! are written once, here; `Field::ALL` is the table's order (the seed's v2
//! list, then the extensions), and v1 and v2 are its prefixes.

use std::net::IpAddr;

use crate::record::{FlowRecord, RecordBody};
use crate::topology::Topology;

/// A field a record can print.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    /// `version`.
    Version,
    /// `project-id`.
    ProjectId,
    /// `interface-id`.
    InterfaceId,
    /// `srcaddr`.
    SrcAddr,
    /// `dstaddr`.
    DstAddr,
    /// `srcport`.
    SrcPort,
    /// `dstport`.
    DstPort,
    /// `protocol`.
    Protocol,
    /// `packets`.
    Packets,
    /// `bytes`.
    Bytes,
    /// `start`.
    Start,
    /// `end`.
    End,
    /// `action`.
    Action,
    /// `log-status`.
    LogStatus,
    /// `direction`.
    Direction,
    /// `tcp-flag`.
    TcpFlag,
    /// `region-id`.
    RegionId,
    /// `az-id`.
    AzId,
    /// `vpc-id`.
    VpcId,
    /// `network-id`.
    NetworkId,
    /// Extension: which check decided (`sg-ingress`, `acl-egress`, `conntrack`...).
    DecidedBy,
    /// Extension: the security group or network ACL whose rule decided.
    PolicyId,
    /// Extension: the deciding rule, `default-deny`, `implicit-allow` or `stateful-return`.
    RuleId,
    /// Extension: for ACCEPT, the other check the flow passed (`sg-egress`
    /// where the ACL decided egress, `acl-ingress` where the group decided
    /// ingress); absent when there was none.
    PassedBy,
    /// Extension: that check's security group or network ACL.
    PassedPolicyId,
    /// Extension: that check's allowing rule.
    PassedRuleId,
    /// Extension: N when the record's packets and bytes are estimates from
    /// sampling 1 packet in N (sFlow); absent when they were counted.
    SamplingRate,
    /// Extension: the TCP flags seen as the other big cloud's flow logs
    /// give them (FIN 1, SYN 2, RST 4, SYN-ACK 18); absent but for TCP.
    TcpFlags,
    /// Extension: the flow log the record belongs to.
    FlowLogId,
    /// Extension: its log group.
    LogGroupId,
    /// Extension: its log topic.
    LogTopicId,
}

/// How a field's value is typed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// An unsigned integer (stored as UInt64).
    Number,
    /// Text.
    Text,
    /// An IPv4 or IPv6 address (stored as text, RFC 5952 for IPv6).
    Address,
}

/// Where a field comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tier {
    /// The seed's version 1 fields.
    V1,
    /// Added by the seed's version 2.
    V2,
    /// vpcflow's own: the deciding rule and where the record is logged.
    Extension,
}

/// One row of [`FIELDS`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FieldSpec {
    /// The field.
    pub field: Field,
    /// The seed's name (`log-status`), used by the text formats and JSON.
    pub name: &'static str,
    /// The column name in the log store and SQL (`log_status`).
    pub column: &'static str,
    /// Its type.
    pub kind: Kind,
    /// Whether a record can lack it (`-` in text, `null` in JSON).
    pub nullable: bool,
    /// Seed v1, v2 or extension.
    pub tier: Tier,
    /// Whether the log store keeps it as a column of each record (log group
    /// and topic are the store's partitions). The stored `version` is 2, the
    /// format that holds every stored field; a text format prints its own.
    pub stored: bool,
}

const fn spec(
    field: Field,
    name: &'static str,
    column: &'static str,
    kind: Kind,
    nullable: bool,
    tier: Tier,
    stored: bool,
) -> FieldSpec {
    FieldSpec {
        field,
        name,
        column,
        kind,
        nullable,
        tier,
        stored,
    }
}

/// What the model holds where something is not known (a port's
/// availability zone, the region of an address range, the owner of a
/// built-in rule): records show it as absent, never as text.
pub const NOT_KNOWN: &str = "-";

/// Every field of a record, in output order: the seed's v2 list, then the
/// extensions. `FIELDS[f as usize].field == f` for every field.
pub const FIELDS: [FieldSpec; 31] = [
    spec(
        Field::Version,
        "version",
        "version",
        Kind::Number,
        false,
        Tier::V1,
        true,
    ),
    spec(
        Field::ProjectId,
        "project-id",
        "project_id",
        Kind::Text,
        false,
        Tier::V1,
        true,
    ),
    spec(
        Field::InterfaceId,
        "interface-id",
        "interface_id",
        Kind::Text,
        false,
        Tier::V1,
        true,
    ),
    spec(
        Field::SrcAddr,
        "srcaddr",
        "srcaddr",
        Kind::Address,
        true,
        Tier::V1,
        true,
    ),
    spec(
        Field::DstAddr,
        "dstaddr",
        "dstaddr",
        Kind::Address,
        true,
        Tier::V1,
        true,
    ),
    spec(
        Field::SrcPort,
        "srcport",
        "srcport",
        Kind::Number,
        true,
        Tier::V1,
        true,
    ),
    spec(
        Field::DstPort,
        "dstport",
        "dstport",
        Kind::Number,
        true,
        Tier::V1,
        true,
    ),
    spec(
        Field::Protocol,
        "protocol",
        "protocol",
        Kind::Number,
        true,
        Tier::V1,
        true,
    ),
    spec(
        Field::Packets,
        "packets",
        "packets",
        Kind::Number,
        true,
        Tier::V1,
        true,
    ),
    spec(
        Field::Bytes,
        "bytes",
        "bytes",
        Kind::Number,
        true,
        Tier::V1,
        true,
    ),
    spec(
        Field::Start,
        "start",
        "start",
        Kind::Number,
        false,
        Tier::V1,
        true,
    ),
    spec(
        Field::End,
        "end",
        "end",
        Kind::Number,
        false,
        Tier::V1,
        true,
    ),
    spec(
        Field::Action,
        "action",
        "action",
        Kind::Text,
        true,
        Tier::V1,
        true,
    ),
    spec(
        Field::LogStatus,
        "log-status",
        "log_status",
        Kind::Text,
        false,
        Tier::V1,
        true,
    ),
    spec(
        Field::Direction,
        "direction",
        "direction",
        Kind::Text,
        true,
        Tier::V2,
        true,
    ),
    spec(
        Field::TcpFlag,
        "tcp-flag",
        "tcp_flag",
        Kind::Text,
        true,
        Tier::V2,
        true,
    ),
    spec(
        Field::RegionId,
        "region-id",
        "region_id",
        Kind::Text,
        true,
        Tier::V2,
        true,
    ),
    spec(
        Field::AzId,
        "az-id",
        "az_id",
        Kind::Text,
        true,
        Tier::V2,
        true,
    ),
    spec(
        Field::VpcId,
        "vpc-id",
        "vpc_id",
        Kind::Text,
        false,
        Tier::V2,
        true,
    ),
    spec(
        Field::NetworkId,
        "network-id",
        "network_id",
        Kind::Text,
        false,
        Tier::V2,
        true,
    ),
    spec(
        Field::DecidedBy,
        "decided-by",
        "decided_by",
        Kind::Text,
        true,
        Tier::Extension,
        true,
    ),
    spec(
        Field::PolicyId,
        "policy-id",
        "policy_id",
        Kind::Text,
        true,
        Tier::Extension,
        true,
    ),
    spec(
        Field::RuleId,
        "rule-id",
        "rule_id",
        Kind::Text,
        true,
        Tier::Extension,
        true,
    ),
    spec(
        Field::PassedBy,
        "passed-by",
        "passed_by",
        Kind::Text,
        true,
        Tier::Extension,
        true,
    ),
    spec(
        Field::PassedPolicyId,
        "passed-policy-id",
        "passed_policy_id",
        Kind::Text,
        true,
        Tier::Extension,
        true,
    ),
    spec(
        Field::PassedRuleId,
        "passed-rule-id",
        "passed_rule_id",
        Kind::Text,
        true,
        Tier::Extension,
        true,
    ),
    spec(
        Field::SamplingRate,
        "sampling-rate",
        "sampling_rate",
        Kind::Number,
        true,
        Tier::Extension,
        true,
    ),
    spec(
        Field::TcpFlags,
        "tcp-flags",
        "tcp_flags",
        Kind::Number,
        true,
        Tier::Extension,
        true,
    ),
    spec(
        Field::FlowLogId,
        "flow-log-id",
        "flow_log_id",
        Kind::Text,
        false,
        Tier::Extension,
        true,
    ),
    spec(
        Field::LogGroupId,
        "log-group-id",
        "log_group_id",
        Kind::Text,
        false,
        Tier::Extension,
        false,
    ),
    spec(
        Field::LogTopicId,
        "log-topic-id",
        "log_topic_id",
        Kind::Text,
        false,
        Tier::Extension,
        false,
    ),
];

impl Field {
    /// Every field, in [`FIELDS`]' order.
    pub const ALL: [Field; FIELDS.len()] = {
        let mut all = [Field::Version; FIELDS.len()];
        let mut i = 0;
        while i < FIELDS.len() {
            all[i] = FIELDS[i].field;
            i += 1;
        }
        all
    };

    /// The field's row of [`FIELDS`].
    pub fn spec(self) -> &'static FieldSpec {
        &FIELDS[self as usize]
    }

    /// The field's seed name.
    pub fn name(self) -> &'static str {
        self.spec().name
    }

    /// The field called `name` (the seed's name).
    pub fn parse(name: &str) -> Option<Field> {
        FIELDS.iter().find(|s| s.name == name).map(|s| s.field)
    }

    /// Whether the field is one flow's own (its addresses, ports,
    /// protocol, action, direction, TCP state, the rules that judged it,
    /// its sampling): an OK record may have it, a NODATA or SKIPDATA
    /// record never does. The rest are the port's, the flow log's and the
    /// window's, which every record has, and the counts (a SKIPDATA
    /// record's are the totals it stands for).
    pub const fn of_one_flow(self) -> bool {
        matches!(
            self,
            Field::SrcAddr
                | Field::DstAddr
                | Field::SrcPort
                | Field::DstPort
                | Field::Protocol
                | Field::Action
                | Field::Direction
                | Field::TcpFlag
                | Field::DecidedBy
                | Field::PolicyId
                | Field::RuleId
                | Field::PassedBy
                | Field::PassedPolicyId
                | Field::PassedRuleId
                | Field::SamplingRate
                | Field::TcpFlags
        )
    }

    /// Whether the field's value is the same in every record of one port,
    /// flow log and window (the port's, the flow log's, the window's and
    /// the constant `version`): what a writer of a window's records, which
    /// come port by port, renders once per run of them.
    pub const fn of_context(self) -> bool {
        !self.of_one_flow() && !matches!(self, Field::Packets | Field::Bytes | Field::LogStatus)
    }
}

const fn tier_len(last: Tier) -> usize {
    let mut n = 0;
    while n < FIELDS.len() && (FIELDS[n].tier as u8) <= (last as u8) {
        n += 1;
    }
    n
}

/// The seed's version 1 fields.
pub const V1_FIELDS: &[Field] = Field::ALL.split_at(tier_len(Tier::V1)).0;
/// The seed's version 2 fields.
pub const V2_FIELDS: &[Field] = Field::ALL.split_at(tier_len(Tier::V2)).0;

/// A field's value in one record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Value<'a> {
    /// The record has none (a NODATA record's addresses, a SKIPDATA's action).
    Absent,
    /// A number.
    Number(u64),
    /// Text.
    Text(&'a str),
    /// An address.
    Address(IpAddr),
}

/// The value of `field` in `r`, whose indexes point into `topology`.
/// `version` is 2 here; the v1 text format prints 1.
pub fn value<'a>(field: Field, topology: &'a Topology, r: &'a FlowRecord) -> Value<'a> {
    let port = &topology.ports[r.port as usize];
    let flow = match &r.body {
        RecordBody::Flow(f) => Some(f),
        _ => None,
    };
    let rule = || flow.and_then(|f| topology.rules.get(f.rule));
    let passed = || flow.and_then(|f| topology.rules.get(f.passed));
    let flow_log = || &topology.flow_logs[r.flow_log as usize];
    let num = |v: Option<u64>| v.map_or(Value::Absent, Value::Number);
    // A placeholder for what is not known is absent, like a missing
    // value: one null convention in every format and the store.
    let text = |v: Option<&'a str>| {
        v.filter(|s| *s != NOT_KNOWN)
            .map_or(Value::Absent, Value::Text)
    };
    match field {
        Field::Version => Value::Number(2),
        Field::ProjectId => Value::Text(&port.project_id),
        Field::InterfaceId => Value::Text(&port.id),
        Field::SrcAddr => flow.map_or(Value::Absent, |f| Value::Address(f.tuple.src)),
        Field::DstAddr => flow.map_or(Value::Absent, |f| Value::Address(f.tuple.dst)),
        Field::SrcPort => num(flow.map(|f| u64::from(f.tuple.src_port))),
        Field::DstPort => num(flow.map(|f| u64::from(f.tuple.dst_port))),
        Field::Protocol => num(flow.map(|f| u64::from(f.tuple.protocol.0))),
        Field::Packets | Field::Bytes => {
            let (packets, bytes) = match &r.body {
                RecordBody::Flow(f) => (Some(f.packets), Some(f.bytes)),
                RecordBody::SkipData { packets, bytes } => (Some(*packets), Some(*bytes)),
                RecordBody::NoData => (None, None),
            };
            num(if field == Field::Packets {
                packets
            } else {
                bytes
            })
        }
        Field::Start => Value::Number(r.start),
        Field::End => Value::Number(r.end),
        Field::Action => text(flow.map(|f| f.action.as_str())),
        Field::LogStatus => Value::Text(r.status().as_str()),
        Field::Direction => text(flow.map(|f| f.direction.as_str())),
        Field::TcpFlag => text(flow.and_then(|f| f.tcp_flag).map(|t| t.as_str())),
        Field::RegionId => text(Some(&topology.region)),
        Field::AzId => text(Some(&port.az_id)),
        Field::VpcId => Value::Text(&port.vpc_id),
        Field::NetworkId => Value::Text(&port.subnet_id),
        Field::DecidedBy => text(rule().map(|r| r.stage.as_str())),
        Field::PolicyId => text(rule().and_then(|r| r.policy_id())),
        Field::RuleId => text(rule().map(|r| r.id.as_str())),
        Field::PassedBy => text(passed().map(|r| r.stage.as_str())),
        Field::PassedPolicyId => text(passed().and_then(|r| r.policy_id())),
        Field::PassedRuleId => text(passed().map(|r| r.id.as_str())),
        Field::SamplingRate => num(flow
            .filter(|f| f.sampling_rate > 1)
            .map(|f| u64::from(f.sampling_rate))),
        Field::TcpFlags => num(flow
            .filter(|f| f.tuple.protocol == vpcflow_wire::IpProtocol::TCP)
            .map(|f| u64::from(f.tcp_flags))),
        Field::FlowLogId => Value::Text(&flow_log().id),
        Field::LogGroupId => Value::Text(&flow_log().log_group_id),
        Field::LogTopicId => Value::Text(&flow_log().log_topic_id),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_is_in_the_enums_order_and_its_names_are_unique() {
        for (i, s) in FIELDS.iter().enumerate() {
            assert_eq!(s.field as usize, i, "{}", s.name);
            assert_eq!(Field::parse(s.name), Some(s.field));
            assert_eq!(s.column, s.name.replace('-', "_"));
        }
        let mut names: Vec<&str> = FIELDS.iter().map(|s| s.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), FIELDS.len());
    }

    /// The shared example inventory's topology.
    fn example_topology() -> Topology {
        let inv =
            crate::Inventory::from_toml("vpc.toml", include_str!("../../../examples/vpc.toml"))
                .unwrap();
        Topology::from_inventory(&inv)
    }

    #[test]
    fn one_flows_fields_are_what_nodata_and_skipdata_records_lack() {
        let topology = example_topology();
        for body in [
            RecordBody::NoData,
            RecordBody::SkipData {
                packets: 3,
                bytes: 120,
            },
        ] {
            let r = FlowRecord {
                flow_log: 0,
                port: 0,
                start: 60,
                end: 120,
                body,
            };
            for f in Field::ALL.iter() {
                let absent = value(*f, &topology, &r) == Value::Absent;
                let counts = matches!(f, Field::Packets | Field::Bytes);
                assert_eq!(
                    absent,
                    f.of_one_flow() || (counts && body == RecordBody::NoData),
                    "{} of {body:?}",
                    f.name()
                );
            }
        }
    }

    #[test]
    fn context_fields_are_those_every_record_of_a_port_flow_log_and_window_shares() {
        let topology = example_topology();
        let judged = topology
            .rules
            .iter()
            .find(|(_, r)| r.policy_id().is_some())
            .map(|(r, _)| r)
            .unwrap();
        let flow = |packets: u64, action, direction, sampling_rate, rule| {
            RecordBody::Flow(crate::record::FlowFields {
                tuple: crate::flow::FiveTuple {
                    src: "10.0.0.1".parse().unwrap(),
                    dst: "2001:db8::1".parse().unwrap(),
                    src_port: packets as u16,
                    dst_port: 443,
                    protocol: vpcflow_wire::IpProtocol(packets as u8),
                    infrastructure: false,
                },
                packets,
                bytes: packets * 100,
                action,
                direction,
                tcp_flag: Some(crate::record::TcpFlag::Established),
                rule,
                passed: rule,
                sampling_rate,
                tcp_flags: packets as u8,
            })
        };
        use crate::flow::{Action, Direction};
        use crate::policy::RuleRef;
        let bodies = [
            flow(6, Action::Accept, Direction::Egress, 1, judged),
            flow(17, Action::Reject, Direction::Ingress, 100, RuleRef::NONE),
            RecordBody::NoData,
            RecordBody::SkipData {
                packets: 3,
                bytes: 120,
            },
        ];
        for port in 0..topology.ports.len() as u32 {
            let records = bodies.map(|body| FlowRecord {
                flow_log: 0,
                port,
                start: 600,
                end: 1200,
                body,
            });
            for f in Field::ALL {
                let values = records.each_ref().map(|r| value(f, &topology, r));
                let shared = values.iter().all(|v| *v == values[0]);
                // Every other field tells some two of these records apart.
                assert_eq!(shared, f.of_context(), "{}", f.name());
            }
        }
    }

    #[test]
    fn v1_and_v2_are_the_seeds_lists() {
        assert_eq!(V1_FIELDS.len(), 14);
        assert_eq!(V2_FIELDS.len(), 20);
        assert_eq!(V1_FIELDS.last(), Some(&Field::LogStatus));
        assert_eq!(V2_FIELDS.last(), Some(&Field::NetworkId));
    }
}
