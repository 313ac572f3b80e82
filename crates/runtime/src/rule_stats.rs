//! Rule totals (`vpcflow ingest --rule-stats`): what every rule decided
//! over a run, as a sink wrapping another.

use std::io::{self, Write};

use serde::Serialize;
use vpcflow_core::aggregate::ClosedWindow;
use vpcflow_core::{Inventory, RuleRef, Timestamp, Topology};

use crate::driver::{Sink, SinkError, forward_sink_upkeep};

/// Totals per rule, indexed by `RuleRef`.
#[derive(Debug, Default)]
pub struct RuleStats {
    totals: Vec<(u64, u64, u64)>,
}

#[derive(Serialize)]
#[serde(rename_all = "kebab-case")]
struct Line<'a> {
    decided_by: &'static str,
    policy_id: &'a str,
    rule_id: &'a str,
    matched: bool,
    flows: u64,
    packets: u64,
    bytes: u64,
    last_decided: Option<u64>,
}

impl RuleStats {
    /// Adds a closed window's rule hits.
    pub fn add(&mut self, w: &ClosedWindow) {
        for h in &w.rule_hits {
            let i = usize::from(h.rule.0);
            if self.totals.len() <= i {
                self.totals.resize(i + 1, (0, 0, 0));
            }
            let t = &mut self.totals[i];
            t.0 += h.flows;
            t.1 = t.1.saturating_add(h.packets);
            t.2 = t.2.saturating_add(h.bytes);
        }
    }

    /// One JSON line per rule of the topology, in table order;
    /// `last_decided` says when a rule last decided a flow (the rules'
    /// engines know: [`PolicyEngine::last_decided`], or the latest over a
    /// run's shards, [`crate::ShardTotals::last_decided`]).
    pub fn write(
        &self,
        topology: &Topology,
        last_decided: impl Fn(RuleRef) -> Option<Timestamp>,
        out: &mut impl Write,
    ) -> io::Result<()> {
        for (r, info) in topology.rules.iter() {
            let (flows, packets, bytes) = self
                .totals
                .get(usize::from(r.0))
                .copied()
                .unwrap_or_default();
            let last = last_decided(r);
            let line = Line {
                decided_by: info.stage.as_str(),
                policy_id: &info.owner,
                rule_id: &info.id,
                matched: last.is_some(),
                flows,
                packets,
                bytes,
                last_decided: last.map(|t| t.secs()),
            };
            serde_json::to_writer(&mut *out, &line).map_err(io::Error::other)?;
            out.write_all(b"\n")?;
        }
        Ok(())
    }
}

/// A sink that totals each window's rule hits, then hands it on.
pub struct Tallied<S> {
    /// Where the windows go.
    pub sink: S,
    /// The totals so far.
    pub stats: RuleStats,
}

impl<S: Sink> Sink for Tallied<S> {
    fn write(
        &mut self,
        topology: &Topology,
        window: &ClosedWindow,
        partial: bool,
    ) -> Result<(), SinkError> {
        self.stats.add(window);
        self.sink.write(topology, window, partial)
    }
    forward_sink_upkeep!(sink);
}
