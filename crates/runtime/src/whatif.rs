//! What-if (`vpcflow ingest --compare`): the flows whose action a proposed
//! inventory would change, grouped by the rule that changes them. Both
//! inventories' drivers see the same frames, so they close the same
//! windows, compared pairwise.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::{self, Write};

use vpcflow_capture::MergedCaptures;
use vpcflow_core::aggregate::ClosedWindow;
use vpcflow_core::flow::FiveTuple;
use vpcflow_core::record::{FlowFields, RecordBody};
use vpcflow_core::{Action, Direction, RuleRef, Topology};

use crate::driver::Driver;

/// Examples printed per group.
const EXAMPLES: usize = 10;

type FlowKey = (u64, String, Direction, FiveTuple);

/// One group of changed flows.
#[derive(Debug, Default)]
struct Group {
    flows: u64,
    packets: u64,
    bytes: u64,
    was: HashSet<String>,
    examples: Vec<String>,
}

/// Changed flows so far.
#[derive(Debug, Default)]
pub struct Comparison {
    /// (from, to, rule that now decides) -> flows.
    groups: BTreeMap<(Action, Action, String), Group>,
    compared: u64,
}

fn rule_name(t: &Topology, r: RuleRef) -> String {
    t.rules.get(r).map_or_else(
        || "-".to_string(),
        |i| format!("{} {} {}", i.stage.as_str(), i.owner, i.id),
    )
}

fn flows<'a>(
    t: &'a Topology,
    w: &'a ClosedWindow,
) -> impl Iterator<Item = (FlowKey, &'a FlowFields)> {
    w.records.iter().filter_map(move |r| match &r.body {
        RecordBody::Flow(f) => Some((
            (
                r.start,
                t.ports[r.port as usize].id.clone(),
                f.direction,
                f.tuple,
            ),
            f,
        )),
        _ => None,
    })
}

impl Comparison {
    /// Compares the same window under the current and the proposed inventory.
    pub fn add(
        &mut self,
        current: &Topology,
        a: &ClosedWindow,
        proposed: &Topology,
        b: &ClosedWindow,
    ) {
        let theirs: HashMap<FlowKey, &FlowFields> = flows(proposed, b).collect();
        let mut seen = HashSet::new();
        for (key, f) in flows(current, a) {
            // A port under several flow logs has its flows once per flow log.
            if !seen.insert(key.clone()) {
                continue;
            }
            let Some(g) = theirs.get(&key) else { continue };
            self.compared += 1;
            if g.action == f.action {
                continue;
            }
            let group = self
                .groups
                .entry((f.action, g.action, rule_name(proposed, g.rule)))
                .or_default();
            group.flows += 1;
            group.packets = group.packets.saturating_add(f.packets);
            group.bytes = group.bytes.saturating_add(f.bytes);
            group.was.insert(rule_name(current, f.rule));
            if group.examples.len() < EXAMPLES {
                let t = &f.tuple;
                group.examples.push(format!(
                    "{} {} {} {} {}:{} -> {}:{} protocol {}, {} packets, {} bytes",
                    key.0,
                    key.1,
                    f.direction.as_str(),
                    f.action,
                    t.src,
                    t.src_port,
                    t.dst,
                    t.dst_port,
                    t.protocol,
                    f.packets,
                    f.bytes
                ));
            }
        }
    }

    /// Writes the report.
    pub fn report(
        &self,
        _current: &Topology,
        _proposed: &Topology,
        out: &mut impl Write,
    ) -> io::Result<()> {
        let changed: u64 = self.groups.values().map(|g| g.flows).sum();
        writeln!(
            out,
            "what-if: {changed} of {} flows would change action",
            self.compared
        )?;
        for ((from, to, rule), g) in &self.groups {
            let mut was: Vec<&String> = g.was.iter().collect();
            was.sort();
            writeln!(
                out,
                "{from} -> {to} by {rule}: {} flows, {} packets, {} bytes (was decided by {})",
                g.flows,
                g.packets,
                g.bytes,
                was.iter()
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>()
                    .join("; ")
            )?;
            for e in &g.examples {
                writeln!(out, "    {e}")?;
            }
            if g.flows as usize > g.examples.len() {
                writeln!(
                    out,
                    "    ... and {} more",
                    g.flows as usize - g.examples.len()
                )?;
            }
        }
        Ok(())
    }
}

/// Replays `captures` through the `current` and the `proposed` inventory's
/// drivers; the flows whose action changes.
pub fn compare(
    current: &mut Driver,
    proposed: &mut Driver,
    captures: &mut MergedCaptures,
) -> Comparison {
    let mut comparison = Comparison::default();
    let mut pair = |current: &mut Driver, proposed: &mut Driver| {
        let (ours, theirs) = (current.take_closed(), proposed.take_closed());
        for (a, b) in ours.iter().zip(&theirs) {
            comparison.add(
                current.pipeline().topology(),
                a,
                proposed.pipeline().topology(),
                b,
            );
        }
    };
    while let Some(frame) = captures.next_frame() {
        current.observe(&frame);
        proposed.observe(&frame);
        if current.has_closed() {
            pair(current, proposed);
        }
    }
    current.close_all();
    proposed.close_all();
    pair(current, proposed);
    comparison
}
