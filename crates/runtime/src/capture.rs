//! Capture files as a source: their frames, merged in time order, through
//! the [`Driver`], with the frames' own timestamps as the clock (a capture
//! replays its hour in seconds; no wall clock is read).
//!
//! Guarantees: every window the frames passed is written as soon as a later
//! frame closed it; at the end of the input every window is written whole
//! (a capture's last window is not cut short by a stop), and no window
//! after the last frame is opened.

use std::collections::VecDeque;
use std::io::{self, Write};

use vpcflow_capture::{CaptureFile, Ending, MergedCaptures};
use vpcflow_core::PreparedFrame;
use vpcflow_core::pipeline::status_counts;

use crate::driver::{Driver, Sink, SinkError};
use crate::shards::ShardTotals;

/// Frames between two calls of the progress callback.
pub const PROGRESS_EVERY: u64 = 65_536;

/// How many frames ahead of the one observed a replay reads and
/// prefetches: enough that a frame's cache misses are done by its turn
/// (a few hundred ns of work each), few enough that the lines are still
/// in the cache.
pub const LOOKAHEAD: usize = 8;

/// Replays `captures` through `driver` into `sink`; `progress` is called
/// every [`PROGRESS_EVERY`] frames. Returns the frames read.
pub fn replay(
    driver: &mut Driver,
    captures: &mut MergedCaptures,
    sink: &mut dyn Sink,
    progress: &mut dyn FnMut(&MergedCaptures),
) -> Result<u64, SinkError> {
    let frames = read_ahead(driver, captures, progress, &mut |driver, frame| {
        driver.observe_prepared(frame);
        if driver.has_closed() {
            driver.drain(sink)?;
        }
        Ok(())
    })?;
    driver.end_of_input(sink)?;
    Ok(frames)
}

/// Reads every frame of `captures` and hands it, prepared, to `observe`
/// in order, [`LOOKAHEAD`] frames after `driver` was asked to prefetch
/// for it: what each frame does is what it would do observed at once
/// (prefetching changes nothing), but its lookups' misses overlap the
/// frames before it. Returns the frames read.
pub(crate) fn read_ahead(
    driver: &mut Driver,
    captures: &mut MergedCaptures,
    progress: &mut dyn FnMut(&MergedCaptures),
    observe: &mut dyn FnMut(&mut Driver, &PreparedFrame) -> Result<(), SinkError>,
) -> Result<u64, SinkError> {
    let mut ahead: VecDeque<PreparedFrame> = VecDeque::with_capacity(LOOKAHEAD + 1);
    let mut frames: u64 = 0;
    while let Some(frame) = captures.next_frame() {
        let frame = PreparedFrame::of(&frame);
        driver.prefetch(&frame);
        ahead.push_back(frame);
        frames += 1;
        if ahead.len() > LOOKAHEAD
            && let Some(frame) = ahead.pop_front()
        {
            observe(driver, &frame)?;
        }
        if frames.is_multiple_of(PROGRESS_EVERY) {
            progress(captures);
        }
    }
    for frame in ahead {
        observe(driver, &frame)?;
    }
    Ok(frames)
}

/// Writes what a replay (`totals`, over its shards) of `files` saw in `elapsed`
/// seconds (packets, attribution, skips, records, policy, flow table, how
/// each capture ended) to `err`. Whether every capture was whole or merely
/// cut (a corrupt one is an error).
pub fn write_summary(
    err: &mut impl Write,
    totals: &ShardTotals,
    files: &[CaptureFile],
    elapsed: f64,
) -> io::Result<bool> {
    let stats = &totals.stats;
    writeln!(
        err,
        "vpcflow: read {} packets from {} capture(s) in {:.3} s ({:.0} packets/s)",
        stats.packets,
        files.len(),
        elapsed,
        stats.packets as f64 / elapsed.max(1e-9)
    )?;
    writeln!(err, "  attributed to monitored ports: {}", stats.attributed)?;
    let skipped = stats.skipped();
    if !skipped.is_empty() {
        let list: Vec<String> = skipped
            .iter()
            .map(|(r, n)| format!("{} {n}", r.name()))
            .collect();
        writeln!(err, "  skipped: {}", list.join(", "))?;
    }
    if stats.transport_truncated > 0 || stats.unmatched_fragments > 0 {
        writeln!(
            err,
            "  recorded with ports 0: transport header cut by the capture {}, fragments without their first {}",
            stats.transport_truncated, stats.unmatched_fragments
        )?;
    }
    if stats.gap_windows_not_reported > 0 {
        writeln!(
            err,
            "vpcflow: warning: {} capture windows of gaps without traffic were not reported: NODATA covers at most {} s after traffic",
            stats.gap_windows_not_reported,
            vpcflow_core::aggregate::MAX_GAP_NODATA_SECS
        )?;
    }
    let counts: Vec<String> = status_counts(stats)
        .iter()
        .map(|(s, n)| format!("{} {n}", s.as_str()))
        .collect();
    writeln!(
        err,
        "  records: {} (windows: {})",
        counts.join(", "),
        stats.windows
    )?;
    if let Some((s, evicted)) = &totals.policy {
        writeln!(
            err,
            "  policy: {} flows evaluated, {} return traffic of accepted connections, {} of connections already decided; {} connections evicted",
            s.evaluated, s.stateful_returns, s.tracked, evicted
        )?;
    }
    let (flows, bytes) = stats.peak_flows;
    if flows > 0 {
        // Tables grow in chunks of thousands of flows, so a per-flow figure
        // only means something for large inputs.
        let per_flow = if flows >= 10_000 {
            format!(" ({:.1} bytes/flow)", bytes as f64 / flows as f64)
        } else {
            String::new()
        };
        writeln!(
            err,
            "  flow table: peak {flows} flows in open windows, {bytes} bytes{per_flow}"
        )?;
    }
    let mut clean = true;
    for f in files {
        match f.ending() {
            Ending::Truncated => writeln!(
                err,
                "vpcflow: warning: {}: the capture ends in the middle of a packet; records cover the {} packets before the cut",
                f.name(),
                f.frames()
            )?,
            Ending::Corrupt(why) => {
                writeln!(
                    err,
                    "vpcflow: error: {}: {why}; records cover the {} packets before it",
                    f.name(),
                    f.frames()
                )?;
                clean = false;
            }
            _ => {}
        }
    }
    Ok(clean)
}
