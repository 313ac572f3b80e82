//! Capture files through the driver (`capture::replay`, what `ingest` and
//! uploads run): the records equal a bare pipeline's over the same frames,
//! the store sink keeps every one of them in durable files it names, and
//! the what-if of an inventory against itself changes nothing.

use std::io::Write;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use vpcflow_capture::{CaptureFile, MergedCaptures};
use vpcflow_core::aggregate::{AggregatorConfig, CLOSE_GRACE_NS};
use vpcflow_core::format::{self, Format};
use vpcflow_core::{Inventory, Pipeline};
use vpcflow_policy::DEFAULT_CONNECTIONS;
use vpcflow_runtime::capture::replay;
use vpcflow_runtime::{
    Compaction, Driver, FormatSink, SharedStore, Sink, StoreSink, Verdicts, inventory_pipeline,
    whatif,
};

fn example(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../examples")
        .join(name)
}

fn pipeline() -> Pipeline<Verdicts> {
    let inv = Inventory::read(&example("vpc.toml")).unwrap();
    let config = AggregatorConfig {
        window: inv.window,
        max_records: inv.max_records_per_window,
        grace_ns: CLOSE_GRACE_NS,
    };
    inventory_pipeline(&inv, config, None, DEFAULT_CONNECTIONS)
}

fn demo() -> MergedCaptures {
    MergedCaptures::new(vec![CaptureFile::open(&example("vpc-demo.pcap")).unwrap()])
}

/// The records of a pipeline fed the demo capture frame by frame, no driver.
fn bare() -> Vec<u8> {
    let mut p = pipeline();
    let mut captures = demo();
    while let Some(frame) = captures.next_frame() {
        p.observe(&frame);
    }
    p.finish();
    let mut out = Vec::new();
    for w in std::mem::take(p.closed()) {
        for r in &w.records {
            format::write_record(&Format::V2, p.topology(), r, &mut out).unwrap();
        }
    }
    out
}

#[test]
fn replayed_records_equal_a_bare_pipelines() {
    let mut driver = Driver::from_pipeline(pipeline());
    let mut sink = FormatSink::new(Format::V2, false, Vec::new()).unwrap();
    let mut calls = 0;
    let frames = replay(&mut driver, &mut demo(), &mut sink, &mut |_| calls += 1).unwrap();
    let out = sink.into_inner().unwrap();
    let expected = bare();
    assert!(frames > 0);
    assert!(!expected.is_empty(), "the demo capture has records");
    assert_eq!(
        String::from_utf8(out).unwrap(),
        String::from_utf8(expected).unwrap()
    );
    assert_eq!(driver.stats().frames, frames);
    // The demo is smaller than one progress step.
    assert_eq!(calls, frames / vpcflow_runtime::capture::PROGRESS_EVERY);
}

/// A sink whose first write fails (a full disk, a store away).
struct FailingOnce<S> {
    sink: S,
    failed: bool,
}

impl<S: Sink> Sink for FailingOnce<S> {
    fn write(
        &mut self,
        topology: &vpcflow_core::Topology,
        window: &vpcflow_core::aggregate::ClosedWindow,
        partial: bool,
    ) -> Result<(), vpcflow_runtime::SinkError> {
        if !self.failed {
            self.failed = true;
            return Err("no space left on device".into());
        }
        self.sink.write(topology, window, partial)
    }
}

#[test]
fn a_window_a_sink_failed_to_take_is_written_by_the_next_write_in_order() {
    let mut driver = Driver::from_pipeline(pipeline());
    let mut sink = FailingOnce {
        sink: FormatSink::new(Format::V2, false, Vec::new()).unwrap(),
        failed: false,
    };
    let mut captures = demo();
    let err = replay(&mut driver, &mut captures, &mut sink, &mut |_| {}).unwrap_err();
    assert!(err.to_string().contains("no space"), "{err}");
    // The run goes on where it stopped (the caller's retry).
    replay(&mut driver, &mut captures, &mut sink, &mut |_| {}).unwrap();
    let out = sink.sink.into_inner().unwrap();
    assert_eq!(
        String::from_utf8(out).unwrap(),
        String::from_utf8(bare()).unwrap()
    );
}

/// A writer whose bytes the test keeps.
#[derive(Clone, Default)]
struct Shared(Arc<Mutex<Vec<u8>>>);

impl Write for Shared {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn the_store_sink_keeps_every_record_in_the_files_it_names() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(SharedStore::open(dir.path()).unwrap());
    let said = Shared::default();
    let mut sink = StoreSink::new(
        Arc::clone(&store),
        Some(Box::new(said.clone())),
        Compaction::ByCaller,
    );
    let inv = Inventory::read(&example("vpc.toml")).unwrap();
    sink.register(&inv).unwrap();
    let mut driver = Driver::from_pipeline(pipeline());
    replay(&mut driver, &mut demo(), &mut sink, &mut |_| {}).unwrap();
    let expected = bare().iter().filter(|&&b| b == b'\n').count() as u64;
    assert_eq!(sink.records, expected);
    let lines = String::from_utf8(said.0.lock().unwrap().clone()).unwrap();
    let mut named = 0;
    for line in lines.lines() {
        let (path, n) = line.rsplit_once(' ').unwrap();
        assert_eq!(
            vpcflow_store::read_rows(std::path::Path::new(path)).unwrap(),
            n.parse::<usize>().unwrap(),
            "{path}"
        );
        named += n.parse::<u64>().unwrap();
    }
    assert_eq!(named, expected);
    assert_eq!(sink.files, lines.lines().count() as u64);
    assert!(store.metrics().contains("vpcflow_windows_closed_total"));
}

#[test]
fn an_inventory_compared_with_itself_changes_no_flow() {
    let mut current = Driver::from_pipeline(pipeline());
    let mut proposed = Driver::from_pipeline(pipeline());
    let comparison = whatif::compare(&mut current, &mut proposed, &mut demo());
    let mut out = Vec::new();
    comparison
        .report(
            current.pipeline().topology(),
            proposed.pipeline().topology(),
            &mut out,
        )
        .unwrap();
    let text = String::from_utf8(out).unwrap();
    assert!(text.starts_with("what-if: 0 of "), "{text}");
    assert!(
        !text.starts_with("what-if: 0 of 0 "),
        "flows were compared: {text}"
    );
}
