//! What each fuzz target runs (`fuzz/fuzz_targets/NAME.rs` calls the
//! function of the same name in [`TARGETS`]), kept in the workspace so the
//! ordinary test run replays every input a fuzzer ever kept
//! (`fuzz/regressions/NAME/`) and every seed (`fuzz/seeds/NAME/`) through
//! the very same code: a crash found once stays a test.
//!
//! Each function takes any bytes and must return without panicking,
//! whatever they are. None of them has an SQL engine or a server below it,
//! so the fuzz build stays light.

use std::io::Cursor;
use std::sync::OnceLock;

use ipnet::IpNet;
use vpcflow_capture::{CaptureFile, MergedCaptures};
use vpcflow_core::aggregate::AggregatorConfig;
use vpcflow_core::attribute::{Attributor, AutoPorts};
use vpcflow_core::format::Format;
use vpcflow_core::{AcceptAll, Inventory, Pipeline, TrafficType};
use vpcflow_policy::DEFAULT_CONNECTIONS;
use vpcflow_runtime::capture::replay;
use vpcflow_runtime::{Driver, FormatSink, Verdicts, inventory_pipeline};
use vpcflow_wire::LinkType;

/// A target: its name (its file in `fuzz/fuzz_targets/`) and what it runs.
pub type Target = (&'static str, fn(&[u8]));

/// Every target, by name: the fuzz targets' and the regression test's one
/// list.
pub const TARGETS: [Target; 7] = [
    ("frame", frame),
    ("export", export),
    ("capture", capture),
    ("inventory_toml", inventory_toml),
    ("inventory_json", inventory_json),
    ("search", search),
    ("sql", sql),
];

/// The link types a frame is read as; the input's first byte picks one.
const LINKS: [u32; 10] = [0, 1, 101, 108, 113, 228, 229, 239, 276, 147];

/// One frame through the header parser: the first byte picks the link
/// type, the next two say how much longer the frame was on the wire than
/// captured, the rest is the frame.
pub fn frame(data: &[u8]) {
    let [pick, a, b, frame @ ..] = data else {
        return;
    };
    let link = LinkType::from_number(LINKS[usize::from(*pick) % LINKS.len()]);
    let cut = u32::from(u16::from_be_bytes([*a, *b]));
    let wire_len = u32::try_from(frame.len())
        .unwrap_or(u32::MAX)
        .saturating_add(cut);
    let _ = vpcflow_wire::parse_frame(link, frame, wire_len);
}

/// NetFlow/IPFIX datagrams from one exporter through `vpcflow collect`'s
/// decoder and into the pipeline (every address a port, a small record
/// cap): the input is datagrams, each after its 2-byte big-endian length,
/// so that templates of one apply to the next.
pub fn export(mut data: &[u8]) {
    let any: Vec<IpNet> = vec![IpNet::V4(Default::default()), IpNet::V6(Default::default())];
    let (attributor, topology) = Attributor::automatic(&AutoPorts {
        cidrs: any,
        traffic_type: TrafficType::All,
        region: "-".into(),
    });
    let config = AggregatorConfig {
        max_records: 4,
        ..AggregatorConfig::of(example_inventory(), None)
    };
    let pipeline = Pipeline::new(topology, attributor, config, Verdicts::AcceptAll(AcceptAll));
    let mut driver = Driver::from_pipeline(pipeline);
    let mut decoder = vpcflow_flowexport::Decoder::new();
    let exporter = std::net::SocketAddr::from(([127, 0, 0, 1], 2055));
    let Ok(mut sink) = FormatSink::new(Format::V2, false, std::io::sink()) else {
        return;
    };
    while let [a, b, rest @ ..] = data {
        let n = usize::from(u16::from_be_bytes([*a, *b])).min(rest.len());
        let (datagram, next) = rest.split_at(n);
        // sFlow's samples count when received: a fixed instant.
        let received_ns = 1_700_000_000_000_000_000;
        if let Ok(d) = decoder.decode(exporter, datagram, received_ns, &mut |f| {
            driver.exported(exporter, f);
        }) && d.lost > 0
        {
            driver.exported_lost(exporter, vpcflow_core::Timestamp(d.export_ns));
        }
        if let Err(e) = driver.drain(&mut sink) {
            panic!("writing into io::sink failed: {e}");
        }
        data = next;
    }
    if let Err(e) = driver.end_of_input(&mut sink) {
        panic!("writing into io::sink failed: {e}");
    }
}

/// The inventory the capture target decides with (the shared example).
const EXAMPLE_INVENTORY: &str = include_str!("../../../examples/vpc.toml");

/// A capture file (pcap, pcapng, either gzip-compressed) replayed as
/// `vpcflow ingest` replays it, twice: every address a port of its own
/// (the aggregator, NODATA over gaps, the record cap), and under the
/// example inventory (security groups, ACLs, connection tracking); the
/// records written as v2 text.
pub fn capture(data: &[u8]) {
    let open = || CaptureFile::from_reader("fuzz", Cursor::new(data.to_vec())).ok();
    let Some(file) = open() else {
        return;
    };
    let any: Vec<IpNet> = vec![IpNet::V4(Default::default()), IpNet::V6(Default::default())];
    let (attributor, topology) = Attributor::automatic(&AutoPorts {
        cidrs: any,
        traffic_type: TrafficType::All,
        region: "-".into(),
    });
    let inventory = example_inventory();
    // A small cap, so that SKIPDATA is reached by small inputs too.
    let config = AggregatorConfig {
        max_records: 4,
        ..AggregatorConfig::of(inventory, None)
    };
    let automatic = Pipeline::new(topology, attributor, config, Verdicts::AcceptAll(AcceptAll));
    run(automatic, file);
    if let Some(file) = open() {
        run(
            inventory_pipeline(inventory, config, None, DEFAULT_CONNECTIONS),
            file,
        );
    }
}

/// The example inventory, read once (not per input: it would cost more
/// than most inputs).
fn example_inventory() -> &'static Inventory {
    static INVENTORY: OnceLock<Inventory> = OnceLock::new();
    INVENTORY.get_or_init(|| {
        Inventory::from_toml("examples/vpc.toml", EXAMPLE_INVENTORY)
            .unwrap_or_else(|e| panic!("the example inventory must check: {e}"))
    })
}

fn run(pipeline: Pipeline<Verdicts>, file: CaptureFile) {
    let mut driver = Driver::from_pipeline(pipeline);
    let mut captures = MergedCaptures::new(vec![file]);
    let Ok(mut sink) = FormatSink::new(Format::V2, false, std::io::sink()) else {
        return;
    };
    // Writing to a sink that takes everything cannot fail.
    if let Err(e) = replay(&mut driver, &mut captures, &mut sink, &mut |_| {}) {
        panic!("replaying into io::sink failed: {e}");
    }
}

/// An inventory file's text (TOML), parsed and checked.
pub fn inventory_toml(data: &[u8]) {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = Inventory::from_toml("fuzz.toml", text);
    }
}

/// A JSON document parsed and checked as an inventory: what the API's
/// model bodies become before every write commits (the control plane
/// rebuilds the project's document and runs this checker on it).
pub fn inventory_json(data: &[u8]) {
    if let Ok(document) = serde_json::from_slice::<serde_json::Value>(data) {
        let _ = Inventory::from_json("fuzz.json", &document);
    }
}

/// The field search turned into SQL; what it makes must pass SQL's text
/// bounds (the search's own limits are tighter).
pub fn search(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(condition) = vpcflow_querylang::search::to_sql(text) {
        let sql = format!("SELECT * FROM records WHERE {condition}");
        if let Err(e) = vpcflow_querylang::sql::check_sql(&sql) {
            panic!("search {text:?} became SQL the bounds refuse: {e}");
        }
    }
}

/// SQL's text bounds.
pub fn sql(data: &[u8]) {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = vpcflow_querylang::sql::check_sql(text);
    }
}
