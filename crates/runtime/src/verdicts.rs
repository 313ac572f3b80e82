//! The policy a pipeline runs: an inventory's security groups and ACLs, or
//! nothing (every flow accepted), and the pipeline of an inventory.

use vpcflow_core::aggregate::AggregatorConfig;
use vpcflow_core::attribute::Attributor;
use vpcflow_core::policy::FlowQuery;
use vpcflow_core::{
    AcceptAll, Decision, Inventory, Pipeline, Policy, Timestamp, Topology, TrafficType,
};
use vpcflow_policy::PolicyEngine;

/// The policy of a run: the inventory's security groups and ACLs, or none.
pub enum Verdicts {
    /// Ports without an inventory (`--ports-from`): everything is accepted.
    AcceptAll(AcceptAll),
    /// The inventory's rules.
    Engine(Box<PolicyEngine>),
}

impl Verdicts {
    /// The rules' engine, if the run has rules.
    pub fn engine(&self) -> Option<&PolicyEngine> {
        match self {
            Verdicts::AcceptAll(_) => None,
            Verdicts::Engine(e) => Some(e),
        }
    }
}

impl Policy for Verdicts {
    fn decide(&mut self, now: Timestamp, flow: &FlowQuery<'_>) -> Decision {
        match self {
            Verdicts::AcceptAll(p) => p.decide(now, flow),
            Verdicts::Engine(p) => p.decide(now, flow),
        }
    }
}

/// A pipeline for an inventory, with its rules; `traffic_type` overrides
/// every flow log's filter.
pub fn inventory_pipeline(
    inv: &Inventory,
    config: AggregatorConfig,
    traffic_type: Option<TrafficType>,
    max_connections: usize,
) -> Pipeline<Verdicts> {
    let mut topology = Topology::from_inventory(inv);
    if let Some(t) = traffic_type {
        override_traffic_type(&mut topology, t);
    }
    let engine = PolicyEngine::new(inv, &topology, max_connections);
    let attributor = Attributor::new(&topology);
    Pipeline::new(
        topology,
        attributor,
        config,
        Verdicts::Engine(Box::new(engine)),
    )
}

fn override_traffic_type(topology: &mut Topology, t: TrafficType) {
    for fl in &mut topology.flow_logs {
        fl.traffic_type = t;
    }
    // Recompute each port's filter mask.
    for p in std::mem::take(&mut topology.ports) {
        topology.push_port(p);
    }
}
