//! The runtime snapshot the pipeline works from: the monitored ports, with
//! everything a record prints about them resolved to strings once, and the
//! enabled flow logs.
//!
//! Built from an [`Inventory`] (ports under at least one enabled flow log) or,
//! for `--ports-from`, grown one automatic port at a time. Port indices are
//! stable for the life of the topology; records refer to ports and flow logs
//! by index.

use crate::schema::NOT_KNOWN;
use std::net::IpAddr;

use crate::flow::TrafficType;
use crate::inventory::Inventory;
use crate::rules::RuleTable;

/// A flow log as the pipeline needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlowLogInfo {
    /// Flow log id.
    pub id: String,
    /// Its filter.
    pub traffic_type: TrafficType,
    /// Destination log group id.
    pub log_group_id: String,
    /// Destination log topic id.
    pub log_topic_id: String,
}

/// A monitored port as the pipeline needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortInfo {
    /// `interface-id`.
    pub id: String,
    /// `project-id`.
    pub project_id: String,
    /// `vpc-id`.
    pub vpc_id: String,
    /// `network-id` (the subnet).
    pub subnet_id: String,
    /// `az-id` (`-` if unknown).
    pub az_id: String,
    /// Fixed IPs.
    pub ips: Vec<IpAddr>,
    /// Index of the port in the inventory it came from, if any (for the policy).
    pub inventory_index: Option<usize>,
    /// Flow logs monitoring it (indices into [`Topology::flow_logs`]), in inventory order.
    pub flow_logs: Vec<u32>,
    /// Bit `1 << TrafficType::index()` for each filter among its flow logs.
    pub filters: u8,
    /// First window (Unix seconds) to report for; `None` means from the first window seen.
    pub first_window: Option<u64>,
}

/// Ports, flow logs and region.
#[derive(Debug, Clone, Default)]
pub struct Topology {
    /// `region-id` (`-` if unknown).
    pub region: String,
    /// Monitored ports.
    pub ports: Vec<PortInfo>,
    /// Enabled flow logs.
    pub flow_logs: Vec<FlowLogInfo>,
    /// Every security-group and ACL rule, numbered.
    pub rules: RuleTable,
}

impl Topology {
    /// The monitored ports and enabled flow logs of an inventory.
    pub fn from_inventory(inv: &Inventory) -> Topology {
        let mut t = Topology {
            region: inv.region.clone(),
            rules: RuleTable::from_inventory(inv),
            ..Default::default()
        };
        let mut fl_index = vec![None; inv.flow_logs.len()];
        for (i, fl) in inv.flow_logs.iter().enumerate() {
            if !fl.admin_state {
                continue;
            }
            fl_index[i] = Some(t.flow_logs.len() as u32);
            t.flow_logs.push(FlowLogInfo {
                id: fl.id.clone(),
                traffic_type: fl.traffic_type,
                log_group_id: inv.log_groups[fl.log_group].id.clone(),
                log_topic_id: inv.log_topics[fl.log_topic].id.clone(),
            });
        }
        for (p, port) in inv.ports.iter().enumerate() {
            if !inv.is_local(p) {
                continue;
            }
            let flow_logs: Vec<u32> = inv
                .flow_logs
                .iter()
                .enumerate()
                .filter(|(_, fl)| inv.monitors(fl, p))
                .filter_map(|(i, _)| fl_index[i])
                .collect();
            if flow_logs.is_empty() {
                continue;
            }
            let subnet = &inv.subnets[port.subnet];
            let vpc = &inv.vpcs[subnet.vpc];
            t.push_port(PortInfo {
                id: port.id.clone(),
                project_id: inv.projects[vpc.project].id.clone(),
                vpc_id: vpc.id.clone(),
                subnet_id: subnet.id.clone(),
                az_id: subnet.az.clone().unwrap_or_else(|| NOT_KNOWN.into()),
                ips: port.ips.clone(),
                inventory_index: Some(p),
                flow_logs,
                filters: 0,
                first_window: None,
            });
        }
        t
    }

    /// Adds a port; its filter mask is computed from its flow logs.
    pub fn push_port(&mut self, mut port: PortInfo) -> u32 {
        port.filters = port
            .flow_logs
            .iter()
            .map(|&f| 1u8 << self.flow_logs[f as usize].traffic_type.index())
            .fold(0, |a, b| a | b);
        self.ports.push(port);
        (self.ports.len() - 1) as u32
    }
}

/// Bit for a traffic type in [`PortInfo::filters`].
pub fn filter_bit(t: TrafficType) -> u8 {
    1 << t.index()
}
