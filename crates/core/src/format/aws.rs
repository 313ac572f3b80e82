//! The other big cloud's flow-log lines (`--format aws`), for the tools
//! built around them (Vector's `parse_aws_vpc_flow_log`, flowlogs-reader,
//! Athena tables): its field names, its version numbers, its `tcp-flags`
//! bitmask, `account-id` carrying the project. Each of its fields is one of
//! ours ([`Field`]), or one it has and vpcflow has no value for (`-`).

use super::Field;

/// Where an AWS field's value comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AwsValue {
    /// The format's version: the highest version among its fields.
    Version,
    /// One of vpcflow's fields.
    Field(Field),
    /// `IPv4` or `IPv6`, from the record's addresses.
    Type,
    /// No value in vpcflow (NAT, services, transit gateways...).
    Absent,
}

/// One AWS field: its name, the version that added it, its value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AwsField {
    /// The AWS name.
    pub name: &'static str,
    /// The flow-log version that added it.
    pub version: u8,
    /// Its value.
    pub value: AwsValue,
}

const fn aws(name: &'static str, version: u8, value: AwsValue) -> AwsField {
    AwsField {
        name,
        version,
        value,
    }
}

use AwsValue::{Absent, Field as F};

/// Every AWS field vpcflow writes, versions 2 to 5.
pub const AWS_FIELDS: &[AwsField] = &[
    aws("version", 2, AwsValue::Version),
    aws("account-id", 2, F(Field::ProjectId)),
    aws("interface-id", 2, F(Field::InterfaceId)),
    aws("srcaddr", 2, F(Field::SrcAddr)),
    aws("dstaddr", 2, F(Field::DstAddr)),
    aws("srcport", 2, F(Field::SrcPort)),
    aws("dstport", 2, F(Field::DstPort)),
    aws("protocol", 2, F(Field::Protocol)),
    aws("packets", 2, F(Field::Packets)),
    aws("bytes", 2, F(Field::Bytes)),
    aws("start", 2, F(Field::Start)),
    aws("end", 2, F(Field::End)),
    aws("action", 2, F(Field::Action)),
    aws("log-status", 2, F(Field::LogStatus)),
    aws("vpc-id", 3, F(Field::VpcId)),
    aws("subnet-id", 3, F(Field::NetworkId)),
    aws("instance-id", 3, Absent),
    aws("tcp-flags", 3, F(Field::TcpFlags)),
    aws("type", 3, AwsValue::Type),
    // No address translation: the packet's addresses are the flow's.
    aws("pkt-srcaddr", 3, F(Field::SrcAddr)),
    aws("pkt-dstaddr", 3, F(Field::DstAddr)),
    aws("region", 4, F(Field::RegionId)),
    aws("az-id", 4, F(Field::AzId)),
    aws("sublocation-type", 4, Absent),
    aws("sublocation-id", 4, Absent),
    aws("pkt-src-aws-service", 5, Absent),
    aws("pkt-dst-aws-service", 5, Absent),
    aws("flow-direction", 5, F(Field::Direction)),
    aws("traffic-path", 5, Absent),
];

/// The AWS default format's fields (version 2).
pub const AWS_DEFAULT: &[&str] = &[
    "version",
    "account-id",
    "interface-id",
    "srcaddr",
    "dstaddr",
    "srcport",
    "dstport",
    "protocol",
    "packets",
    "bytes",
    "start",
    "end",
    "action",
    "log-status",
];

/// The AWS field called `name`.
pub fn aws_field(name: &str) -> Option<AwsField> {
    AWS_FIELDS.iter().find(|f| f.name == name).copied()
}
