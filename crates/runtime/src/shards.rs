//! Capture files on every core: one pipeline per thread, each keeping the
//! flows of its share of the ports ([`Shard`]), their closed windows merged
//! back into the records one pipeline would have written.
//!
//! The calling thread reads the captures and runs shard 0: it parses,
//! reassembles and attributes each frame once
//! ([`Pipeline::observe_sharing`]) and hands what it read (the packet's
//! summary, its ports, the ports its attribution added) in batches to
//! every other shard ([`Pipeline::apply`]), nothing allocated per frame.
//! So every shard sees every packet's time and every port in the same
//! order, and opens and closes the same windows; each aggregates, asks its
//! rules about and writes only its own ports' flows. The windows shard 0
//! closes are completed with the other shards' pieces of the same window
//! before they reach the sink.
//!
//! Guarantees: the sink receives the same windows, with the same records
//! in the same order (interface-id, flow log, first packet) and the same
//! rule hits, as [`crate::capture::replay`] gives with one pipeline, for
//! any number of shards (the connection tables are per shard, so a run
//! that evicts connections may decide a few late flows differently); a
//! shard that fails stops the run with an error, never a partial window.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};

use vpcflow_capture::MergedCaptures;
use vpcflow_core::aggregate::{ClosedWindow, RuleHits, Shard};
use vpcflow_core::{Inventory, Pipeline, PipelineStats, RuleRef, SharedFrame, Timestamp, Topology};
use vpcflow_policy::EngineStats;

use crate::capture::{LOOKAHEAD, read_ahead};
use crate::driver::{Driver, Sink, SinkError, forward_sink_upkeep};
use crate::verdicts::Verdicts;

/// Frames' worth of what the reader read, handed to the shards at once.
const BATCH_FRAMES: usize = 4096;
/// The reading thread's share of the ports beside another shard's: it also
/// reads, parses and attributes every frame and writes the records, more
/// than aggregating costs, so it keeps no port (measured best on the
/// benchmark's capture, `bench/run.sh`, against one slot, 0.1, 0.3 and 0.6).
const READER_SHARE: f64 = 0.0;
/// Batches in flight to a shard before the reader waits.
const BATCHES_AHEAD: usize = 4;

/// What the reader read of a run of frames, in order. A vector of its own
/// (not a shared slice) because it goes back to the reader to be refilled
/// once every shard is done with it.
#[derive(Debug, Default)]
struct Batch(Vec<SharedFrame>);

/// What a shard thread sends back.
enum Piece {
    /// Windows it closed, oldest first.
    Windows(Vec<ClosedWindow>),
    /// The input is over; its counters.
    Done(Box<ShardTotals>),
}

/// A run's counters over all its shards.
#[derive(Debug, Clone, Default)]
pub struct ShardTotals {
    /// The pipeline counters: packets, skips and windows as every shard saw
    /// them; records and flow-table peaks summed over the shards.
    pub stats: PipelineStats,
    /// The rules' engines' counters summed, and connections evicted (with
    /// an inventory).
    pub policy: Option<(EngineStats, u64)>,
    /// When each rule (by [`RuleRef`] number) last decided a flow, the
    /// latest over the shards.
    pub last_decided: Vec<Option<Timestamp>>,
}

impl ShardTotals {
    /// The counters of one pipeline (a run with one shard).
    pub fn of(p: &Pipeline<Verdicts>) -> ShardTotals {
        let engine = p.policy().engine();
        ShardTotals {
            stats: p.stats().clone(),
            policy: engine.map(|e| (e.stats(), e.evicted())),
            last_decided: engine.map_or_else(Vec::new, |e| {
                let mut last = Vec::new();
                for (r, _) in p.topology().rules.iter() {
                    let i = usize::from(r.0);
                    if last.len() <= i {
                        last.resize(i + 1, None);
                    }
                    last[i] = e.last_decided(r);
                }
                last
            }),
        }
    }

    fn add(&mut self, other: &ShardTotals) {
        for (a, b) in self.stats.records.iter_mut().zip(other.stats.records) {
            *a += b;
        }
        self.stats.peak_flows.0 += other.stats.peak_flows.0;
        self.stats.peak_flows.1 += other.stats.peak_flows.1;
        if let (Some((a, ae)), Some((b, be))) = (&mut self.policy, &other.policy) {
            a.evaluated += b.evaluated;
            a.stateful_returns += b.stateful_returns;
            a.tracked += b.tracked;
            a.inherited += b.inherited;
            *ae += be;
        }
        for (a, b) in self.last_decided.iter_mut().zip(&other.last_decided) {
            *a = (*a).max(*b);
        }
    }

    /// When rule `r` last decided a flow, in any shard.
    pub fn last_decided(&self, r: RuleRef) -> Option<Timestamp> {
        self.last_decided.get(usize::from(r.0)).copied().flatten()
    }
}

/// Completes each window shard 0 writes with the other shards' pieces.
struct MergingSink<'a> {
    sink: &'a mut dyn Sink,
    shards: Vec<(Receiver<Piece>, VecDeque<ClosedWindow>)>,
    /// Each port's place in interface-id order (records are in that order).
    rank: Vec<u32>,
}

fn stopped() -> SinkError {
    "a shard's thread stopped before the end of the input".into()
}

impl MergingSink<'_> {
    /// The next window `shard` closed, waiting for it if need be.
    fn next_piece(&mut self, shard: usize) -> Result<ClosedWindow, SinkError> {
        let (rx, pending) = &mut self.shards[shard];
        loop {
            if let Some(w) = pending.pop_front() {
                return Ok(w);
            }
            match rx.recv().map_err(|_| stopped())? {
                Piece::Windows(ws) => pending.extend(ws),
                Piece::Done(_) => return Err(stopped()),
            }
        }
    }

    fn merge(
        &mut self,
        topology: &Topology,
        window: &ClosedWindow,
    ) -> Result<ClosedWindow, SinkError> {
        if self.rank.len() != topology.ports.len() {
            let mut order: Vec<u32> = (0..topology.ports.len() as u32).collect();
            order.sort_by(|&a, &b| {
                topology.ports[a as usize]
                    .id
                    .cmp(&topology.ports[b as usize].id)
            });
            self.rank = vec![0; order.len()];
            for (r, p) in order.into_iter().enumerate() {
                self.rank[p as usize] = r as u32;
            }
        }
        let mut pieces = Vec::with_capacity(self.shards.len());
        for s in 0..self.shards.len() {
            let w = self.next_piece(s)?;
            if (w.start, w.end) != (window.start, window.end) {
                return Err(format!(
                    "shards out of step: window {}-{} beside {}-{}",
                    w.start, w.end, window.start, window.end
                )
                .into());
            }
            pieces.push(w);
        }
        // The largest piece's records become the window's (no second copy
        // of a million records), the others appended, then a stable sort
        // by interface-id: each piece is already in that order (a port's
        // records are all in one piece), so the sort only merges the runs.
        let total = window.records.len() + pieces.iter().map(|w| w.records.len()).sum::<usize>();
        let biggest = (0..pieces.len()).max_by_key(|&i| pieces[i].records.len());
        let mut records = biggest
            .map(|i| std::mem::take(&mut pieces[i].records))
            .unwrap_or_default();
        records.reserve_exact(total - records.len());
        records.extend_from_slice(&window.records);
        for p in &mut pieces {
            records.append(&mut p.records);
        }
        let rank = &self.rank;
        records.sort_by_key(|r| rank[r.port as usize]);
        let mut hits: Vec<RuleHits> = Vec::new();
        for h in window
            .rule_hits
            .iter()
            .chain(pieces.iter().flat_map(|w| &w.rule_hits))
        {
            match hits.binary_search_by_key(&h.rule.0, |x| x.rule.0) {
                Ok(i) => {
                    let x = &mut hits[i];
                    x.flows += h.flows;
                    x.packets = x.packets.saturating_add(h.packets);
                    x.bytes = x.bytes.saturating_add(h.bytes);
                }
                Err(i) => hits.insert(i, *h),
            }
        }
        Ok(ClosedWindow {
            start: window.start,
            end: window.end,
            records,
            rule_hits: hits,
        })
    }
}

impl Sink for MergingSink<'_> {
    fn write(
        &mut self,
        topology: &Topology,
        window: &ClosedWindow,
        partial: bool,
    ) -> Result<(), SinkError> {
        let merged = self.merge(topology, window)?;
        self.sink.write(topology, &merged, partial)
    }
    forward_sink_upkeep!(sink);
}

/// Runs shard `pipeline` over every batch of what the reading shard read,
/// sending back the windows it closes, then its counters.
fn shard_thread(
    mut pipeline: Pipeline<Verdicts>,
    batches: Receiver<Arc<Batch>>,
    out: SyncSender<Piece>,
) {
    for batch in batches {
        for (i, f) in batch.0.iter().enumerate() {
            if let Some(ahead) = batch.0.get(i + LOOKAHEAD) {
                pipeline.prefetch_shared(ahead);
            }
            pipeline.apply(f);
        }
        drop(batch);
        let closed = std::mem::take(pipeline.closed());
        if !closed.is_empty() && out.send(Piece::Windows(closed)).is_err() {
            return;
        }
    }
    pipeline.finish();
    let closed = std::mem::take(pipeline.closed());
    if !closed.is_empty() && out.send(Piece::Windows(closed)).is_err() {
        return;
    }
    let _ = out.send(Piece::Done(Box::new(ShardTotals::of(&pipeline))));
}

/// What a replay leaves: the first shard's driver (its topology and rules'
/// engine, the same as every shard's), the frames read, and the counters
/// over all shards.
pub struct Replayed {
    /// Shard 0's driver.
    pub driver: Driver,
    /// Frames read.
    pub frames: u64,
    /// Counters over all shards.
    pub totals: ShardTotals,
}

/// Replays `captures` like [`crate::capture::replay`], with `pipelines.len()`
/// shards (pipelines built alike, of one inventory or of automatic ports),
/// one thread each (one pipeline: on this thread, no copy), into `sink`.
pub fn replay_sharded(
    mut pipelines: Vec<Pipeline<Verdicts>>,
    captures: &mut MergedCaptures,
    sink: &mut dyn Sink,
    progress: &mut dyn FnMut(&MergedCaptures),
) -> Result<Replayed, SinkError> {
    if pipelines.len() == 1
        && let Some(p) = pipelines.pop()
    {
        let mut driver = Driver::from_pipeline(p);
        let frames = crate::capture::replay(&mut driver, captures, sink, progress)?;
        let totals = ShardTotals::of(driver.pipeline());
        return Ok(Replayed {
            driver,
            frames,
            totals,
        });
    }
    let shares = Shard::split(pipelines.len() as u32, READER_SHARE);
    let mut pipelines = pipelines
        .into_iter()
        .zip(shares)
        .map(|(p, shard)| p.into_shard(shard));
    let Some(first) = pipelines.next() else {
        return Err("no pipeline to replay through".into());
    };
    std::thread::scope(|scope| {
        let mut to_shards = Vec::new();
        let mut from_shards = Vec::new();
        for (i, p) in pipelines.enumerate() {
            let (tx, rx) = sync_channel::<Arc<Batch>>(BATCHES_AHEAD);
            let (back_tx, back_rx) = sync_channel::<Piece>(BATCHES_AHEAD);
            std::thread::Builder::new()
                .name(format!("vpcflow-shard-{}", i + 1))
                .spawn_scoped(scope, move || shard_thread(p, rx, back_tx))
                .map_err(|e| format!("starting a shard thread: {e}"))?;
            to_shards.push(tx);
            from_shards.push((back_rx, VecDeque::new()));
        }
        let mut merging = MergingSink {
            sink,
            shards: from_shards,
            rank: Vec::new(),
        };
        let mut driver = Driver::from_pipeline(first);
        let mut in_flight: VecDeque<Arc<Batch>> = VecDeque::new();
        let mut batch = Batch(Vec::with_capacity(BATCH_FRAMES + 2));
        // Hands the batch to every shard and starts the next, reusing one
        // the shards are done with.
        let mut send = |batch: &mut Batch| -> Result<(), SinkError> {
            let next = match in_flight.front().map(Arc::strong_count) {
                Some(1) => in_flight
                    .pop_front()
                    .and_then(|b| Arc::try_unwrap(b).ok())
                    .map(|mut b| {
                        b.0.clear();
                        b
                    }),
                _ => None,
            }
            .unwrap_or_else(|| Batch(Vec::with_capacity(BATCH_FRAMES + 2)));
            let full = Arc::new(std::mem::replace(batch, next));
            for tx in &to_shards {
                tx.send(Arc::clone(&full)).map_err(|_| stopped())?;
            }
            in_flight.push_back(full);
            if in_flight.len() > BATCHES_AHEAD + 2 {
                in_flight.pop_front();
            }
            Ok(())
        };
        let frames = read_ahead(&mut driver, captures, progress, &mut |driver, f| {
            driver.observe_sharing(f, &mut batch.0);
            if driver.has_closed() {
                // The others need what closed the window to close it too.
                send(&mut batch)?;
                driver.drain(&mut merging)?;
            } else if batch.0.len() >= BATCH_FRAMES {
                send(&mut batch)?;
            }
            Ok(())
        })?;
        if !batch.0.is_empty() {
            send(&mut batch)?;
        }
        drop(to_shards);
        driver.end_of_input(&mut merging)?;
        let mut totals = ShardTotals::of(driver.pipeline());
        for s in 0..merging.shards.len() {
            let (rx, pending) = &mut merging.shards[s];
            if !pending.is_empty() {
                return Err("shards out of step: windows left over at the end".into());
            }
            match rx.recv().map_err(|_| stopped())? {
                Piece::Windows(_) => {
                    return Err("shards out of step: windows left over at the end".into());
                }
                Piece::Done(t) => totals.add(&t),
            }
        }
        Ok(Replayed {
            driver,
            frames,
            totals,
        })
    })
}
