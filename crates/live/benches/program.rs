//! The eBPF program's own cost per packet, measured by the kernel
//! (`BPF_PROG_TEST_RUN`): each hook's program run on real frames, beside
//! an empty program run the same way in the same round (the cost of
//! running any program, which the figures are quoted above). Two cases:
//! - **known flow**: 256 frames of the capture, each run 10,000 times in a
//!   row (the flow is in the table after its first run): the steady cost
//!   of a packet of a flow already counted;
//! - **in order**: every frame once, in capture order (new flows, the
//!   fragment table, the table growing): what a replay of the capture would
//!   cost, per frame.
//!
//! Medians of 5 rounds. Root (CAP_BPF); the program is loaded but attached
//! nowhere, so nothing but these runs is counted.
//!
//!     cargo bench -p vpcflow-live --features ebpf [-- CAPTURE...]

use std::path::{Path, PathBuf};
use std::time::Duration;

use vpcflow_capture::CaptureFile;
use vpcflow_live::{EbpfConfig, FlowCounter, Hook};
use vpcflow_wire::LinkType;

const ROUNDS: usize = 5;
const REPEAT: u32 = 10_000;
const SAMPLE: usize = 256;

fn shared(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/data/zeek/traces")
        .join(name)
}

/// Mean ns per run of `hook` over `frames`, each run `repeat` times.
fn mean_ns(counter: &FlowCounter, hook: Hook, frames: &[&[u8]], repeat: u32) -> f64 {
    let total: Duration = frames
        .iter()
        .map(|f| {
            counter
                .run_in_kernel(hook, f, repeat)
                .unwrap_or_else(|e| panic!("running {hook:?} in the kernel: {e}"))
        })
        .sum();
    total.as_nanos() as f64 / frames.len() as f64
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let mut captures: Vec<PathBuf> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .map(PathBuf::from)
        .collect();
    if captures.is_empty() {
        captures = vec![
            shared("echo-connections.pcap.gz"),
            shared("ftp_ipv6.pcap"),
            shared("http-qinq-0.pcap"),
        ];
    }
    let mut counter = FlowCounter::load(EbpfConfig::default())
        .expect("loading the eBPF program (root, a kernel with BPF and BTF)");
    println!("eBPF program cost per packet, ns above an empty program ({ROUNDS} rounds, medians)");
    println!(
        "{:<28} {:>7}  {:>22}  {:>22}  {:>8}",
        "capture", "frames", "known flow: in / out", "in order: in / out", "empty"
    );
    for path in &captures {
        let all = CaptureFile::read_all(path)
            .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
        let frames: Vec<&[u8]> = all
            .iter()
            .filter(|(_, link, _, _)| *link == LinkType::Ethernet)
            .map(|(_, _, data, _)| data.as_slice())
            .collect();
        if frames.is_empty() {
            println!("{}: no Ethernet frames", path.display());
            continue;
        }
        let step = frames.len().div_ceil(SAMPLE);
        let sample: Vec<&[u8]> = frames.iter().step_by(step).copied().collect();
        let mut known = [Vec::new(), Vec::new()];
        let mut in_order = [Vec::new(), Vec::new()];
        let (mut empty, mut empty_once) = (Vec::new(), Vec::new());
        let (mut flows, mut losses) = (Vec::new(), Vec::new());
        for _ in 0..ROUNDS {
            let zero = mean_ns(&counter, Hook::Baseline, &sample, REPEAT);
            let zero_once = mean_ns(&counter, Hook::Baseline, &frames, 1);
            for (i, hook) in [Hook::Ingress, Hook::Egress].into_iter().enumerate() {
                // Each case starts from empty tables.
                counter.collect(&mut flows, &mut losses).expect("draining");
                in_order[i].push(mean_ns(&counter, hook, &frames, 1) - zero_once);
                known[i].push(mean_ns(&counter, hook, &sample, REPEAT) - zero);
            }
            counter.collect(&mut flows, &mut losses).expect("draining");
            flows.clear();
            losses.clear();
            empty.push(zero);
            empty_once.push(zero_once);
        }
        let [ki, ke] = known.map(median);
        let [oi, oe] = in_order.map(median);
        let name = path.file_name().unwrap_or_default().to_string_lossy();
        println!(
            "{name:<28} {:>7}  {:>10.1} / {:<9.1}  {:>10.1} / {:<9.1}  {:>8.1}",
            frames.len(),
            ki,
            ke,
            oi,
            oe,
            median(empty)
        );
    }
}
