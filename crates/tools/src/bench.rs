//! `vpcflow-tools bench`: helpers of `bench/*.sh`.
//!
//! - `make-capture`: a large capture built from real traces, with addresses
//!   shifted per copy so it holds many concurrent flows;
//! - `read` and `parse`: the baselines (reading frames; reading and parsing
//!   them) that `vpcflow ingest` is compared with in the same run;
//! - `store`: the log store's write and query benchmark (`bench/store.sh`);
//! - `api`: load on a running `vpcflow serve` (`bench/api.sh`);
//! - `ipfix-stream` and `replay`: the exporter of the collector benchmark
//!   (`bench/collect.sh`).

use std::collections::HashSet;
use std::fs::File;
use std::io::BufWriter;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use vpcflow_capture::{CaptureFile, PcapWriter};
use vpcflow_wire::link::network_layer;
use vpcflow_wire::{LinkType, parse_frame};

/// Benchmark tooling.
#[derive(Debug, Args)]
pub struct BenchArgs {
    #[command(subcommand)]
    command: BenchCommand,
}

#[derive(Debug, Subcommand)]
enum BenchCommand {
    /// Build a large Ethernet/IPv4 capture from real traces.
    MakeCapture {
        /// Output pcap.
        #[arg(long)]
        out: PathBuf,
        /// Packets to write.
        #[arg(long, default_value_t = 5_000_000)]
        packets: u64,
        /// Distinct unidirectional flows wanted in each of the two capture windows.
        #[arg(long, default_value_t = 500_000)]
        flows: u64,
        /// Bytes of each frame kept (the wire length is preserved).
        #[arg(long, default_value_t = 128)]
        snap_len: u32,
        /// Real captures to take packets from.
        #[arg(required = true)]
        sources: Vec<PathBuf>,
    },
    /// Read every frame (baseline 1).
    Read {
        /// Capture.
        capture: PathBuf,
    },
    /// Read and parse every frame (baseline 2).
    Parse {
        /// Capture.
        capture: PathBuf,
    },
    /// Load a running `vpcflow serve`: flow-log creates and lists.
    Api(crate::bench_api::ApiBenchArgs),
    /// Write a fleet's model: hosts, ports bound to them, a VPC flow log.
    FleetInventory {
        /// The inventory (TOML, created).
        #[arg(long)]
        out: PathBuf,
        /// Hosts.
        #[arg(long, default_value_t = 1_000)]
        hosts: u32,
        /// Ports on each host.
        #[arg(long, default_value_t = 10)]
        ports_per_host: u32,
    },
    /// Load a running `vpcflow serve` with a fleet's agents' windows.
    Fleet(crate::bench_fleet::FleetBenchArgs),
    /// Write a stream of IPFIX messages (vpcflow's encoder) to a file.
    IpfixStream {
        /// The stream file (created).
        #[arg(long)]
        out: PathBuf,
        /// Flows in it.
        #[arg(long, default_value_t = 1_000_000)]
        flows: u64,
    },
    /// Send a stream file's messages as UDP datagrams.
    Replay {
        /// The stream file.
        #[arg(long)]
        stream: PathBuf,
        /// Where to.
        #[arg(long)]
        to: std::net::SocketAddr,
        /// Datagrams a second at most.
        #[arg(long, default_value_t = 10_000)]
        rate: u64,
    },
    /// Write the store benchmark's records into ClickHouse through the
    /// spool, against the Parquet store, then time two queries on both.
    Clickhouse {
        /// The ClickHouse store (`clickhouse://...`; its database is written).
        #[arg(long)]
        store: String,
        /// Records to write.
        #[arg(long, default_value_t = 10_000_000)]
        records: u64,
        /// Ports the records are of.
        #[arg(long, default_value_t = 1_000)]
        ports: u32,
        /// Records per 600 s window (one insert each).
        #[arg(long, default_value_t = 70_000)]
        per_window: u64,
        /// A directory for the Parquet store and the spool.
        #[arg(long)]
        work: PathBuf,
    },
    /// Write generated records into a log store, then time two queries.
    Store {
        /// The store (created).
        #[arg(long)]
        store: PathBuf,
        /// Records to write.
        #[arg(long, default_value_t = 10_000_000)]
        records: u64,
        /// Records per 600 s window (each window is one file per topic).
        #[arg(long, default_value_t = 70_000)]
        per_window: u64,
    },
}

/// A xorshift64 generator from `seed` (not zero): the benchmarks' traffic
/// is random but the same in every run.
pub(crate) fn xorshift(mut seed: u64) -> impl FnMut() -> u64 {
    move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    }
}

struct Template {
    data: Vec<u8>,
    wire_len: u32,
    ip_offset: usize,
}

/// Runs `vpcflow-tools bench`.
pub fn run(args: BenchArgs) -> Result<()> {
    match args.command {
        BenchCommand::MakeCapture {
            out,
            packets,
            flows,
            snap_len,
            sources,
        } => make_capture(&out, packets, flows, snap_len, &sources),
        BenchCommand::Read { capture } => {
            let mut c = CaptureFile::open(&capture)?;
            let t = Instant::now();
            let mut bytes = 0u64;
            while let Some(f) = c.next_frame() {
                bytes += f.data.len() as u64;
            }
            report("read", c.frames(), t, bytes);
            Ok(())
        }
        BenchCommand::Api(args) => crate::bench_api::run(args),
        BenchCommand::FleetInventory {
            out,
            hosts,
            ports_per_host,
        } => crate::bench_fleet::write_inventory(&out, hosts, ports_per_host),
        BenchCommand::Fleet(args) => crate::bench_fleet::run(args),
        BenchCommand::IpfixStream { out, flows } => crate::bench_export::write_stream(&out, flows),
        BenchCommand::Replay { stream, to, rate } => crate::bench_export::replay(&stream, to, rate),
        BenchCommand::Store {
            store,
            records,
            per_window,
        } => bench_store(&store, records, per_window),
        BenchCommand::Clickhouse {
            store,
            records,
            ports,
            per_window,
            work,
        } => crate::bench_clickhouse::run(&store, records, ports, per_window, &work),
        BenchCommand::Parse { capture } => {
            let mut c = CaptureFile::open(&capture)?;
            let t = Instant::now();
            let mut ok = 0u64;
            while let Some(f) = c.next_frame() {
                if let Ok(s) = parse_frame(f.link, f.data, f.wire_len) {
                    ok += u64::from(s.ip_bytes > 0);
                }
            }
            report("parse", c.frames(), t, ok);
            Ok(())
        }
    }
}

fn report(what: &str, frames: u64, t: Instant, check: u64) {
    let secs = t.elapsed().as_secs_f64();
    println!(
        "{what}: {frames} packets in {secs:.3} s = {:.0} packets/s (check {check})",
        frames as f64 / secs
    );
}

fn make_capture(
    out: &PathBuf,
    packets: u64,
    flows: u64,
    snap_len: u32,
    sources: &[PathBuf],
) -> Result<()> {
    let mut templates = Vec::new();
    for s in sources {
        let mut c = CaptureFile::open(s)?;
        while let Some(f) = c.next_frame() {
            if f.link != LinkType::Ethernet {
                break;
            }
            let Ok(sum) = parse_frame(f.link, f.data, f.wire_len) else {
                continue;
            };
            if !sum.src.is_ipv4() || sum.fragment.is_some() {
                continue;
            }
            let Ok((ip_offset, _)) = network_layer(f.link, f.data) else {
                continue;
            };
            let keep = f.data.len().min(snap_len as usize).max(ip_offset + 20);
            templates.push(Template {
                data: f.data[..keep.min(f.data.len())].to_vec(),
                wire_len: f.wire_len,
                ip_offset,
            });
        }
    }
    if templates.is_empty() {
        bail!("no Ethernet IPv4 packets in the sources");
    }
    // distinct[m]: distinct flows among the first m templates.
    let mut seen = HashSet::new();
    let mut distinct = Vec::with_capacity(templates.len() + 1);
    distinct.push(0u64);
    for t in &templates {
        let s = parse_frame(LinkType::Ethernet, &t.data, t.wire_len).context("template")?;
        seen.insert((s.src, s.dst, s.src_port, s.dst_port, s.protocol));
        distinct.push(seen.len() as u64);
    }
    // Packet i is copy i % K of template (i / K) % T; each half of the
    // capture is one window, so each must hold `flows` distinct flows.
    let half = packets / 2;
    let t_count = templates.len() as u64;
    let copies = (1..=65_535u64)
        .find(|k| k * distinct[(half / k).min(t_count) as usize] >= flows)
        .context("cannot reach that many flows with these sources")?;
    let mut w = PcapWriter::new(
        BufWriter::with_capacity(1 << 20, File::create(out)?),
        1,
        snap_len,
    )?;
    let t0: u64 = 1_700_000_400 * 1_000_000_000; // a window boundary
    let step = 1_200_000_000_000 / packets.max(1); // two 600 s windows
    let mut frame = Vec::with_capacity(snap_len as usize);
    for i in 0..packets {
        let k = i % copies;
        let j = if i < half {
            (i / copies) % t_count
        } else {
            ((i - half) / copies + t_count / 2) % t_count
        };
        let t = &templates[j as usize];
        frame.clear();
        frame.extend_from_slice(&t.data);
        let shift = (k as u16).to_be_bytes();
        for addr in [t.ip_offset + 12, t.ip_offset + 16] {
            frame[addr + 1] ^= shift[0];
            frame[addr + 2] ^= shift[1];
        }
        w.write(t0 + i * step, &frame, t.wire_len)?;
    }
    w.finish()?;
    eprintln!(
        "wrote {packets} packets to {}: {} templates x {copies} address copies",
        out.display(),
        templates.len()
    );
    Ok(())
}

/// Generated traffic of 2,000 ports talking to a pool of 50,000 remote
/// addresses, written window by window through the real writer.
/// The 600-second window from `start` closed with `records`, listed port
/// by port (interface-id order) as a closed window lists them.
pub(crate) fn closed_window(
    start: u64,
    mut records: Vec<vpcflow_core::record::FlowRecord>,
) -> vpcflow_core::aggregate::ClosedWindow {
    records.sort_by_key(|r| r.port);
    vpcflow_core::aggregate::ClosedWindow {
        start,
        end: start + 600,
        records,
        rule_hits: Vec::new(),
    }
}

/// A flow record of `port` (whose address is `local`) in the window of
/// `seconds` from `start`, drawn from the random `r`: a client's ephemeral
/// port towards a service, either way, TCP or UDP; with `rules` rules in
/// the topology, one decided it and another it passed.
pub(crate) fn random_record(
    r: u64,
    port: u32,
    local: std::net::IpAddr,
    start: u64,
    seconds: u64,
    rules: u64,
) -> vpcflow_core::record::FlowRecord {
    use std::net::{IpAddr, Ipv4Addr};
    use vpcflow_core::flow::FiveTuple;
    use vpcflow_core::record::{FlowFields, FlowRecord, RecordBody, TcpFlag};
    use vpcflow_core::{Action, Direction, RuleRef};
    use vpcflow_wire::IpProtocol;

    let remote = IpAddr::V4(Ipv4Addr::from(0xc633_6400 + ((r >> 11) % 50_000) as u32));
    let egress = r & (1 << 40) != 0;
    let (src, dst) = if egress {
        (local, remote)
    } else {
        (remote, local)
    };
    let proto = if r & (1 << 41) != 0 {
        IpProtocol::UDP
    } else {
        IpProtocol::TCP
    };
    let service = [22u16, 53, 80, 443, 3306, 5432][((r >> 42) % 6) as usize];
    let ephemeral = 32_768 + ((r >> 20) % 28_000) as u16;
    let packets = 1 + (r >> 50) % 200;
    let (rule, passed) = if rules == 0 {
        (RuleRef::NONE, RuleRef::NONE)
    } else {
        (
            RuleRef(1 + ((r >> 8) % rules) as u16),
            RuleRef(((r >> 16) % (rules + 1)) as u16),
        )
    };
    FlowRecord {
        flow_log: 0,
        port,
        start,
        end: start + seconds,
        body: RecordBody::Flow(FlowFields {
            tuple: FiveTuple {
                src,
                dst,
                // Clients use ephemeral ports towards services, in both directions.
                src_port: ephemeral,
                dst_port: service,
                protocol: proto,
                infrastructure: false,
            },
            packets,
            bytes: packets * (40 + (r >> 30) % 1400),
            action: if r.is_multiple_of(17) {
                Action::Reject
            } else {
                Action::Accept
            },
            direction: if egress {
                Direction::Egress
            } else {
                Direction::Ingress
            },
            tcp_flag: (proto == IpProtocol::TCP).then_some(TcpFlag::Established),
            rule,
            passed,
            sampling_rate: 1,
            tcp_flags: 0,
        }),
    }
}

/// The store benchmarks' topology: `ports` ports of one VPC flow log
/// (`lg-bench`/`lt-bench`), the example's rules; and how many rules.
pub(crate) fn store_topology(ports: u32) -> Result<(vpcflow_core::Topology, u64)> {
    use std::net::{IpAddr, Ipv4Addr};
    use vpcflow_core::topology::{FlowLogInfo, PortInfo};
    use vpcflow_core::{Topology, TrafficType};

    let mut topology = Topology {
        region: "ab-cdef-3".into(),
        flow_logs: vec![FlowLogInfo {
            id: "fl-bench".into(),
            traffic_type: TrafficType::All,
            log_group_id: "lg-bench".into(),
            log_topic_id: "lt-bench".into(),
        }],
        ..Default::default()
    };
    // The example's rules, so each record names a deciding rule and the
    // one it passed (the analyses group by them).
    let example = vpcflow_core::Inventory::from_toml(
        "examples/vpc.toml",
        include_str!("../../../examples/vpc.toml"),
    )?;
    topology.rules = vpcflow_core::rules::RuleTable::from_inventory(&example);
    let rule_count = topology.rules.len() as u64 - 1;
    for p in 0..ports {
        topology.push_port(PortInfo {
            id: format!("port-{p:05}"),
            project_id: "5f67944957444bd6bb4fe3b367de8f3d".into(),
            vpc_id: "80ee2ed7-605d-49b4-ac6b-6e581acd35a3".into(),
            subnet_id: format!("subnet-{:02}", p % 20),
            az_id: "ab-cdef-3a".into(),
            ips: vec![IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + p))],
            inventory_index: None,
            flow_logs: vec![0],
            filters: 0,
            first_window: None,
        });
    }
    Ok((topology, rule_count))
}

/// The first window's start of the store benchmarks.
pub(crate) const BENCH_T0: u64 = 1_700_000_400;

/// The store benchmarks' windows: `records` records over the ports of
/// `topology`, `per_window` a 600-second window, the same in every run.
pub(crate) fn store_windows(
    topology: &vpcflow_core::Topology,
    rule_count: u64,
    records: u64,
    per_window: u64,
) -> impl Iterator<Item = vpcflow_core::aggregate::ClosedWindow> + '_ {
    let mut next = xorshift(0x9e37_79b9_7f4a_7c15);
    let ports = topology.ports.len() as u64;
    let mut written = 0u64;
    let mut window = 0u64;
    std::iter::from_fn(move || {
        if written >= records {
            return None;
        }
        let start = BENCH_T0 + window * 600;
        let n = per_window.min(records - written);
        let mut recs = Vec::with_capacity(n as usize);
        for _ in 0..n {
            let r = next();
            let port = (r % ports) as u32;
            let local = topology.ports[port as usize].ips[0];
            recs.push(random_record(r, port, local, start, 600, rule_count));
        }
        written += n;
        window += 1;
        Some(closed_window(start, recs))
    })
}

fn bench_store(dir: &std::path::Path, records: u64, per_window: u64) -> Result<()> {
    use vpcflow_core::record::FlowRecord;

    let (topology, rule_count) = store_topology(2_000)?;
    let mut store = vpcflow_store::Store::open(dir)?;
    store.compact_in_background();
    let started = Instant::now();
    let mut written = 0u64;
    let mut as_written = 0u64;
    let mut window = 0u64;
    let mut last = None;
    for closed in store_windows(&topology, rule_count, records, per_window) {
        let start = closed.start;
        for f in store.write_window(&topology, &closed)? {
            as_written += std::fs::metadata(&f.path)?.len();
        }
        written += closed.records.len() as u64;
        last = Some(closed);
        // As ingest and the agent do: an hour is compacted once it is over.
        store.compact_before(start)?;
        window += 1;
    }
    let secs = started.elapsed().as_secs_f64();
    store.compact_before(u64::MAX)?;
    store.finish_compaction()?;
    let drained = started.elapsed().as_secs_f64();
    let (bytes, summaries) = store_bytes(dir)?;
    println!(
        "write: {written} records in {secs:.3} s = {:.0} records/s durable \
         ({drained:.3} s = {:.0} records/s until every hour was compacted, on a second thread); \
         {bytes} bytes on disk = {:.2} bytes/record ({:.2} before compaction), \
         of which window summaries {:.2} bytes/record",
        written as f64 / secs,
        written as f64 / drained,
        bytes as f64 / written as f64,
        as_written as f64 / written as f64,
        summaries as f64 / written as f64
    );
    // What the window summary costs the writer: summarizing the last
    // window again, against the average durable write of one window.
    if let Some(w) = &last {
        let listed: Vec<(usize, &FlowRecord)> = w.records.iter().enumerate().collect();
        let mut best = f64::MAX;
        for _ in 0..3 {
            let t = Instant::now();
            std::hint::black_box(vpcflow_store::summary::summarize(
                &topology, w.start, w.end, &listed,
            ));
            best = best.min(t.elapsed().as_secs_f64());
        }
        let per_window = secs / window as f64;
        println!(
            "window summary: {:.1} ms of a window's {:.1} ms durable write ({:.0}%, {} records)",
            best * 1e3,
            per_window * 1e3,
            100.0 * best / per_window,
            w.records.len()
        );
    }
    for (name, q) in store_queries()? {
        let (best, rows) = best_of_three(&q, dir.into())?;
        println!("query {name}: {best:.3} s ({rows} rows, best of 3)");
    }
    Ok(())
}

/// The best of three runs of `q` on `at`, in seconds, and its rows (as
/// bench/duckdb_queries.py measures DuckDB).
pub(crate) fn best_of_three(
    q: &vpcflow_store::Query,
    at: vpcflow_store::StoreRef<'_>,
) -> Result<(f64, usize)> {
    let mut best = f64::MAX;
    let mut rows = 0;
    for _ in 0..3 {
        let t = Instant::now();
        rows = q.run_at(at)?.rows();
        best = best.min(t.elapsed().as_secs_f64());
    }
    Ok((best, rows))
}

/// Bytes of every file of the store at `dir`, and of its window summaries.
pub(crate) fn store_bytes(dir: &std::path::Path) -> Result<(u64, u64)> {
    let (mut bytes, mut summaries) = (0u64, 0u64);
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d)?.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                bytes += e.metadata()?.len();
                if p.to_string_lossy()
                    .ends_with(vpcflow_store::summary::SUMMARY_SUFFIX)
                {
                    summaries += e.metadata()?.len();
                }
            }
        }
    }
    Ok((bytes, summaries))
}

/// The store benchmarks' two queries, by name: the top-10 talkers, and a
/// filtered search over the first day.
pub(crate) fn store_queries() -> Result<[(&'static str, vpcflow_store::Query); 2]> {
    Ok([
        (
            "top10",
            vpcflow_store::Query {
                sql: Some(TOP10.to_string()),
                ..Default::default()
            },
        ),
        (
            "search-one-day",
            vpcflow_store::Query {
                time: vpcflow_store::TimeRange {
                    since: Some(BENCH_T0),
                    until: Some(BENCH_T0 + 86_400),
                },
                filter: Some(vpcflow_store::search::to_sql(
                    "action:REJECT AND dstport:22",
                )?),
                sql: Some("SELECT count(*) AS n, sum(bytes) AS bytes FROM records".to_string()),
                ..Default::default()
            },
        ),
    ])
}

/// The top-10 talkers query of the store benchmark (also run in DuckDB).
pub const TOP10: &str = "SELECT srcaddr, sum(bytes) AS bytes FROM records WHERE log_status = 'OK' GROUP BY srcaddr ORDER BY bytes DESC, srcaddr LIMIT 10";
