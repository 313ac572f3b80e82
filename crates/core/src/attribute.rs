//! Attribution: which monitored ports a packet belongs to, and in which
//! direction.
//!
//! A packet whose source is a port's fixed IP is that port's egress; whose
//! destination is a port's fixed IP, that port's ingress; between two ports,
//! both. With `--ports-from CIDR`, every address inside one of the CIDRs
//! becomes a port of its own the first time it is seen (bounded by
//! [`MAX_AUTO_PORTS`]; the traffic of addresses past the bound goes to one
//! more port, [`OVERFLOW_PORT_ID`], whose windows report it as SKIPDATA,
//! so nothing is dropped unsaid).

use crate::schema::NOT_KNOWN;
use std::net::IpAddr;

use hashbrown::HashMap;
use ipnet::IpNet;

use crate::flow::{Direction, TrafficType};
use crate::time::{Timestamp, WindowLength};
use crate::topology::{FlowLogInfo, PortInfo, Topology};

/// Upper bound on automatic ports, so a scan of a /8 cannot exhaust memory.
pub const MAX_AUTO_PORTS: usize = 1 << 20;

/// The port the traffic of automatic addresses past the bound is counted
/// on, as SKIPDATA: its packets and bytes are known, its flows are not.
pub const OVERFLOW_PORT_ID: &str = "auto-overflow";

/// Settings of the automatic-port mode.
#[derive(Debug, Clone)]
pub struct AutoPorts {
    /// Addresses in these networks become ports.
    pub cidrs: Vec<IpNet>,
    /// Traffic type of the single automatic flow log.
    pub traffic_type: TrafficType,
    /// Region to print.
    pub region: String,
}

/// Ids of the default project, VPC, subnet, log group and topic of automatic ports.
pub const AUTO_ID: &str = "auto";

/// Maps addresses to port indices.
#[derive(Debug)]
pub struct Attributor {
    v4: HashMap<u32, u32, foldhash::fast::RandomState>,
    v6: HashMap<u128, u32, foldhash::fast::RandomState>,
    auto: Vec<IpNet>,
    /// Addresses that would have become automatic ports past [`MAX_AUTO_PORTS`].
    pub auto_ports_refused: u64,
    /// Automatic ports made at most.
    max_auto_ports: usize,
    /// The port of [`OVERFLOW_PORT_ID`], once the bound was reached.
    overflow: Option<u32>,
}

fn v6_key(a: &std::net::Ipv6Addr) -> u128 {
    u128::from_be_bytes(a.octets())
}

impl Attributor {
    /// Attribution for the ports already in `topology`.
    pub fn new(topology: &Topology) -> Attributor {
        let mut a = Attributor {
            v4: HashMap::default(),
            v6: HashMap::default(),
            auto: Vec::new(),
            auto_ports_refused: 0,
            max_auto_ports: MAX_AUTO_PORTS,
            overflow: None,
        };
        for (i, p) in topology.ports.iter().enumerate() {
            for ip in &p.ips {
                a.insert(*ip, i as u32);
            }
        }
        a
    }

    /// Automatic-port mode: an empty topology with one flow log, and an
    /// attributor that adds ports as addresses appear.
    pub fn automatic(settings: &AutoPorts) -> (Attributor, Topology) {
        let topology = Topology {
            region: settings.region.clone(),
            flow_logs: vec![FlowLogInfo {
                id: AUTO_ID.to_string(),
                traffic_type: settings.traffic_type,
                log_group_id: AUTO_ID.to_string(),
                log_topic_id: AUTO_ID.to_string(),
            }],
            ..Default::default()
        };
        let mut a = Attributor::new(&topology);
        a.auto = settings.cidrs.clone();
        (a, topology)
    }

    /// Makes at most `n` automatic ports (tests use a small bound).
    pub fn limit_auto_ports(&mut self, n: usize) {
        self.max_auto_ports = n;
    }

    /// Takes note of `port` (number `index`), added to this attributor's
    /// topology by another's attribution (see
    /// [`crate::Pipeline::apply`]): the overflow port is known by its id.
    pub fn adopt(&mut self, port: &PortInfo, index: u32) {
        if port.id == OVERFLOW_PORT_ID {
            self.overflow = Some(index);
        }
    }

    /// The overflow port, if the bound on automatic ports was reached:
    /// its traffic is SKIPDATA, not flows.
    pub fn overflow_port(&self) -> Option<u32> {
        self.overflow
    }

    fn insert(&mut self, ip: IpAddr, port: u32) {
        match ip {
            IpAddr::V4(v4) => self.v4.insert(u32::from(v4), port),
            IpAddr::V6(v6) => self.v6.insert(v6_key(&v6), port),
        };
    }

    fn lookup(&self, ip: &IpAddr) -> Option<u32> {
        match ip {
            IpAddr::V4(v4) => self.v4.get(&u32::from(*v4)).copied(),
            IpAddr::V6(v6) => self.v6.get(&v6_key(v6)).copied(),
        }
    }

    fn port_of(
        &mut self,
        ip: &IpAddr,
        now: Timestamp,
        window: WindowLength,
        topology: &mut Topology,
    ) -> Option<u32> {
        if let Some(p) = self.lookup(ip) {
            return Some(p);
        }
        if self.auto.is_empty() || !self.auto.iter().any(|n| n.contains(ip)) {
            return None;
        }
        if topology.ports.len() >= self.max_auto_ports {
            self.auto_ports_refused += 1;
            return Some(*self.overflow.get_or_insert_with(|| {
                topology.push_port(PortInfo {
                    id: OVERFLOW_PORT_ID.into(),
                    project_id: AUTO_ID.into(),
                    vpc_id: AUTO_ID.into(),
                    subnet_id: AUTO_ID.into(),
                    az_id: NOT_KNOWN.into(),
                    ips: Vec::new(),
                    inventory_index: None,
                    flow_logs: vec![0],
                    filters: 0,
                    first_window: Some(window.start_of(now)),
                })
            }));
        }
        let p = topology.push_port(PortInfo {
            id: format!("auto-{ip}"),
            project_id: AUTO_ID.into(),
            vpc_id: AUTO_ID.into(),
            subnet_id: AUTO_ID.into(),
            az_id: NOT_KNOWN.into(),
            ips: vec![*ip],
            inventory_index: None,
            flow_logs: vec![0],
            filters: 0,
            first_window: Some(window.start_of(now)),
        });
        self.insert(*ip, p);
        Some(p)
    }

    /// The (port, direction) pairs a packet from `src` to `dst` belongs to:
    /// egress of the source's port first, then ingress of the destination's.
    pub fn attribute(
        &mut self,
        src: &IpAddr,
        dst: &IpAddr,
        now: Timestamp,
        window: WindowLength,
        topology: &mut Topology,
    ) -> [Option<(u32, Direction)>; 2] {
        [
            self.port_of(src, now, window, topology)
                .map(|p| (p, Direction::Egress)),
            self.port_of(dst, now, window, topology)
                .map(|p| (p, Direction::Ingress)),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn automatic_ports_appear_once_and_only_inside_the_cidrs() {
        let (mut a, mut t) = Attributor::automatic(&AutoPorts {
            cidrs: vec!["10.0.0.0/8".parse().unwrap()],
            traffic_type: TrafficType::All,
            region: "-".into(),
        });
        let w = WindowLength::DEFAULT;
        let (x, y, z): (IpAddr, IpAddr, IpAddr) = (
            "10.1.2.3".parse().unwrap(),
            "10.9.9.9".parse().unwrap(),
            "8.8.8.8".parse().unwrap(),
        );
        let r = a.attribute(&x, &y, Timestamp::from_secs(1000), w, &mut t);
        assert_eq!(
            r,
            [Some((0, Direction::Egress)), Some((1, Direction::Ingress))]
        );
        let r = a.attribute(&y, &z, Timestamp::from_secs(2000), w, &mut t);
        assert_eq!(r, [Some((1, Direction::Egress)), None]);
        assert_eq!(t.ports.len(), 2);
        assert_eq!(t.ports[0].id, "auto-10.1.2.3");
        assert_eq!(t.ports[1].first_window, Some(600));
    }
}
