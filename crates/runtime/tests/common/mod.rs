//! What the runtime's tests share: a sink that keeps every window as text
//! lines of chosen fields, and a two-port inventory.

use vpcflow_core::Topology;
use vpcflow_core::aggregate::ClosedWindow;
use vpcflow_core::format::{self, Format};
use vpcflow_runtime::{Sink, SinkError};

/// Every window written: (start, partial, its non-NODATA records as
/// `fields`, sorted).
pub struct Collected {
    fields: Format,
    pub windows: Vec<(u64, bool, Vec<String>)>,
}

impl Collected {
    /// Keeps the records' `fields` (`custom:...`).
    pub fn new(fields: &str) -> Collected {
        Collected {
            fields: Format::parse(fields).unwrap(),
            windows: Vec::new(),
        }
    }
}

impl Sink for Collected {
    fn write(
        &mut self,
        topology: &Topology,
        window: &ClosedWindow,
        partial: bool,
    ) -> Result<(), SinkError> {
        let mut out = Vec::new();
        for r in &window.records {
            format::write_record(&self.fields, topology, r, &mut out)?;
        }
        let mut lines: Vec<String> = String::from_utf8(out)?
            .lines()
            .filter(|l| !l.contains("NODATA"))
            .map(str::to_string)
            .collect();
        lines.sort();
        self.windows.push((window.start, partial, lines));
        Ok(())
    }
}

/// Two ports in two subnets of one VPC under one all-traffic flow log: a
/// client (`pa`, 10.0.1.10, open both ways) and a database (`pb`,
/// 10.0.2.20, TCP 5432 from the client's subnet only).
#[allow(dead_code, reason = "not every test binary uses it")]
pub const INVENTORY: &str = r#"
region = "r1"
[[project]]
id = "p"
[[vpc]]
id = "vpc"
project = "p"
cidr = "10.0.0.0/16"
[[subnet]]
id = "sa"
vpc = "vpc"
cidr = "10.0.1.0/24"
[[subnet]]
id = "sb"
vpc = "vpc"
cidr = "10.0.2.0/24"
[[port]]
id = "pa"
subnet = "sa"
ips = ["10.0.1.10"]
security_groups = ["client"]
interface = "vpa"
[[port]]
id = "pb"
subnet = "sb"
ips = ["10.0.2.20"]
security_groups = ["db"]
interface = "vpb"
[[security_group]]
id = "client"
project = "p"
[[security_group.rule]]
id = "out"
direction = "egress"
remote_ip_prefix = "0.0.0.0/0"
[[security_group.rule]]
id = "in"
direction = "ingress"
remote_ip_prefix = "0.0.0.0/0"
[[security_group]]
id = "db"
project = "p"
[[security_group.rule]]
id = "pg"
direction = "ingress"
protocol = "tcp"
multiport = "5432"
remote_ip_prefix = "10.0.1.0/24"
[[log_group]]
id = "lg"
project = "p"
[[log_topic]]
id = "lt"
log_group = "lg"
[[flow_log]]
id = "fl"
project = "p"
name = "all"
resource_type = "vpc"
resource_id = "vpc"
traffic_type = "all"
log_group_id = "lg"
log_topic_id = "lt"
"#;
