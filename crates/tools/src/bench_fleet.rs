//! `vpcflow-tools bench fleet`: a fleet's agents, simulated from this one
//! process, posting their windows to a running `vpcflow serve`, as
//! `vpcflow agent --server` does (`POST /v1/agent/windows`, each agent
//! with its own token, keep-alive connections); and
//! `vpcflow-tools bench fleet-inventory`, the fleet's model (hosts, ports
//! bound to them, a VPC flow log) that the server is started with.
//!
//! The windows are made before the clock starts: records of each host's
//! ports written by the log store as an agent's store writes them. Timed:
//! every window posted (windows/s, records/s, the p50/p99 of the time to
//! the server's answer) and the server's CPU time over the run (from
//! `/proc/PID/stat`) per million records. The baseline, measured in the
//! same run: the same windows checked and written by this process with
//! the store's own code for shipped windows, on one thread, what the
//! server does per window beside HTTP, authorization and its ledger.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::Args;
use vpcflow_core::record::FlowRecord;
use vpcflow_core::{Inventory, Topology};

use crate::bench::{closed_window, random_record, xorshift};

/// The fleet's project.
const PROJECT: &str = "f1ee7000000000000000000000000001";
/// Subnets the ports are spread over (a /18 each).
const SUBNETS: u32 = 4;

/// Writes the model of a fleet of `hosts` hosts with `ports_per_host`
/// ports each (`h0001`, ...), one VPC and a flow log of all its traffic.
pub fn write_inventory(out: &Path, hosts: u32, ports_per_host: u32) -> Result<()> {
    let ports = hosts * ports_per_host;
    if ports > SUBNETS * 16_000 {
        bail!(
            "{ports} ports: at most {} fit the fleet's VPC",
            SUBNETS * 16_000
        );
    }
    let mut t = String::new();
    let _ = writeln!(
        t,
        "# A fleet of {hosts} hosts, {ports_per_host} ports each (vpcflow-tools bench fleet-inventory).\n\
         region = \"bench-1\"\nwindow_seconds = 600\n\n\
         [[project]]\nid = \"{PROJECT}\"\n\n\
         [[vpc]]\nid = \"11111111-0000-4000-8000-000000000001\"\nproject = \"{PROJECT}\"\n\
         name = \"vpc-fleet\"\ncidr = \"10.0.0.0/16\"\n"
    );
    for s in 0..SUBNETS {
        let _ = writeln!(
            t,
            "[[subnet]]\nid = \"22222222-0000-4000-8000-{s:012x}\"\n\
             vpc = \"11111111-0000-4000-8000-000000000001\"\nname = \"subnet-{s}\"\n\
             cidr = \"10.0.{}.0/18\"\naz = \"bench-1a\"\n",
            s * 64
        );
    }
    let _ = writeln!(
        t,
        "[[security_group]]\nid = \"44444444-0000-4000-8000-000000000001\"\n\
         project = \"{PROJECT}\"\nname = \"sg-fleet\"\n\n\
         [[security_group.rule]]\ndirection = \"ingress\"\nremote_ip_prefix = \"0.0.0.0/0\"\n\
         action = \"allow\"\npriority = 1\n\n\
         [[security_group.rule]]\ndirection = \"egress\"\nremote_ip_prefix = \"0.0.0.0/0\"\n\
         action = \"allow\"\npriority = 1\n"
    );
    for n in 0..ports {
        let s = n % SUBNETS;
        let ip =
            Ipv4Addr::from(u32::from(Ipv4Addr::new(10, 0, (s * 64) as u8, 0)) + 2 + n / SUBNETS);
        let _ = writeln!(
            t,
            "[[port]]\nid = \"33333333-0000-4000-8000-{n:012x}\"\n\
             subnet = \"22222222-0000-4000-8000-{s:012x}\"\nips = [\"{ip}\"]\n\
             security_groups = [\"44444444-0000-4000-8000-000000000001\"]\n\
             host = \"h{:04}\"\n",
            n / ports_per_host + 1
        );
    }
    let _ = writeln!(
        t,
        "[[log_group]]\nid = \"66666666-0000-4000-8000-000000000001\"\nproject = \"{PROJECT}\"\n\
         name = \"lg-fleet\"\nttl_in_days = 7\n\n\
         [[log_topic]]\nid = \"77777777-0000-4000-8000-000000000001\"\n\
         log_group = \"66666666-0000-4000-8000-000000000001\"\nname = \"lt-fleet\"\n\n\
         [[flow_log]]\nid = \"88888888-0000-4000-8000-000000000001\"\nproject = \"{PROJECT}\"\n\
         name = \"fl-fleet\"\nresource_type = \"vpc\"\n\
         resource_id = \"11111111-0000-4000-8000-000000000001\"\ntraffic_type = \"all\"\n\
         log_group_id = \"66666666-0000-4000-8000-000000000001\"\n\
         log_topic_id = \"77777777-0000-4000-8000-000000000001\""
    );
    // Checked as the server will read it.
    Inventory::from_toml(&out.display().to_string(), &t)?;
    std::fs::write(out, t).with_context(|| out.display().to_string())
}

/// Flags of `vpcflow-tools bench fleet`.
#[derive(Debug, Args)]
pub struct FleetBenchArgs {
    /// The server.
    #[arg(long)]
    api: String,
    /// The server's process id (its CPU time is read from /proc).
    #[arg(long)]
    server_pid: u32,
    /// The fleet's model (`bench fleet-inventory`), as the server has it.
    #[arg(long)]
    config: PathBuf,
    /// `HOST TOKEN` per line (`vpcflow token create --agent HOST`).
    #[arg(long)]
    tokens: PathBuf,
    /// Where the agents' windows are made (created).
    #[arg(long)]
    work: PathBuf,
    /// Windows each agent posts.
    #[arg(long, default_value_t = 3)]
    windows: u64,
    /// Records of each port in a window.
    #[arg(long, default_value_t = 100)]
    flows: u64,
    /// Connections posting at once.
    #[arg(long, default_value_t = 16)]
    clients: usize,
}

/// One window of one agent, as its spool holds it.
struct Window {
    host: String,
    name: String,
    body: Vec<u8>,
    records: u64,
}

/// Records of `ports` (topology indexes) in the window from `start`.
fn records(
    topology: &Topology,
    ports: &[u32],
    start: u64,
    flows: u64,
    next: &mut impl FnMut() -> u64,
) -> Vec<FlowRecord> {
    let mut out = Vec::with_capacity(ports.len() * flows as usize);
    for &port in ports {
        let local = topology.ports[port as usize].ips[0];
        for _ in 0..flows {
            out.push(random_record(next(), port, local, start, 600, 0));
        }
    }
    out
}

/// Every agent's windows, oldest window of every agent first.
fn make_windows(args: &FleetBenchArgs, hosts: &[String], now: u64) -> Result<Vec<Window>> {
    let inv = Inventory::read(&args.config)?;
    let topology = Topology::from_inventory(&inv);
    let mut by_host: BTreeMap<&str, Vec<u32>> = BTreeMap::new();
    for (p, port) in topology.ports.iter().enumerate() {
        let host = port
            .inventory_index
            .and_then(|i| inv.ports[i].host.as_deref());
        if let Some(h) = host {
            by_host.entry(h).or_default().push(p as u32);
        }
    }
    let mut store = vpcflow_store::Store::open(&args.work.join("spools"))?;
    let mut next = xorshift(0x9e37_79b9_7f4a_7c15);
    let last = now / 600 * 600;
    let mut windows = Vec::new();
    for w in 0..args.windows {
        let start = last - (args.windows - w) * 600;
        for host in hosts {
            let ports = by_host
                .get(host.as_str())
                .with_context(|| format!("host {host}: no port of the model is bound to it"))?;
            let closed = closed_window(
                start,
                records(&topology, ports, start, args.flows, &mut next),
            );
            for f in store.write_window(&topology, &closed)? {
                let summary = std::fs::read(vpcflow_store::summary::summary_path(&f.path))?;
                let parquet = std::fs::read(&f.path)?;
                windows.push(Window {
                    host: host.clone(),
                    name: f
                        .path
                        .file_name()
                        .map(|n| n.to_string_lossy().into_owned())
                        .unwrap_or_default(),
                    body: vpcflow_control::agents::window_body(&summary, &parquet),
                    records: f.records as u64,
                });
            }
        }
    }
    Ok(windows)
}

/// A process's user and system CPU time (Linux, 100 ticks a second).
fn cpu_seconds(pid: u32) -> Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .with_context(|| format!("--server-pid {pid}: no such process"))?;
    // The fields after the command's closing parenthesis; utime and stime
    // are the 14th and 15th of the whole line.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    Ok((ticks(11) + ticks(12)) as f64 / 100.0)
}

/// Runs `vpcflow-tools bench fleet`.
pub fn run(args: FleetBenchArgs) -> Result<()> {
    let text = std::fs::read_to_string(&args.tokens)
        .with_context(|| format!("--tokens {}", args.tokens.display()))?;
    let tokens: BTreeMap<String, String> = text
        .lines()
        .filter_map(|l| l.split_once(' '))
        .map(|(h, t)| (h.to_string(), t.trim().to_string()))
        .collect();
    if tokens.is_empty() {
        bail!("--tokens: no `HOST TOKEN` lines");
    }
    let hosts: Vec<String> = tokens.keys().cloned().collect();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_secs();
    let made = Instant::now();
    let windows = make_windows(&args, &hosts, now)?;
    let records: u64 = windows.iter().map(|w| w.records).sum();
    let bytes: usize = windows.iter().map(|w| w.body.len()).sum();
    eprintln!(
        "{} windows of {} agents ({records} records, {:.1} MB) made in {:.1} s",
        windows.len(),
        hosts.len(),
        bytes as f64 / 1e6,
        made.elapsed().as_secs_f64()
    );
    let group = "66666666-0000-4000-8000-000000000001";
    let topic = "77777777-0000-4000-8000-000000000001";
    let base = args.api.trim_end_matches('/');

    let cpu_before = cpu_seconds(args.server_pid)?;
    let next = AtomicUsize::new(0);
    let started = Instant::now();
    let results: Vec<Result<Vec<Duration>>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..args.clients)
            .map(|_| {
                let (next, windows, tokens) = (&next, &windows, &tokens);
                s.spawn(move || -> Result<Vec<Duration>> {
                    let agent: ureq::Agent = ureq::Agent::config_builder()
                        .http_status_as_error(false)
                        .build()
                        .into();
                    let mut latencies = Vec::new();
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let Some(w) = windows.get(i) else { break };
                        let url = format!(
                            "{base}/v1/agent/windows?log_group_id={group}&log_topic_id={topic}&name={}",
                            w.name
                        );
                        let t = Instant::now();
                        let mut answer = agent
                            .post(&url)
                            .header("X-Auth-Token", &tokens[&w.host])
                            .header(vpcflow_control::agents::VERSION_HEADER, "bench")
                            .send(&w.body[..])?;
                        let status = answer.status().as_u16();
                        let text = answer.body_mut().read_to_string()?;
                        latencies.push(t.elapsed());
                        let v: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
                        if status != 200
                            || v["duplicate"] != false
                            || v["records"].as_u64() != Some(w.records)
                        {
                            bail!("window {} of {}: {status} {text}", w.name, w.host);
                        }
                    }
                    Ok(latencies)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|_| bail!("a client panicked")))
            .collect()
    });
    let wall = started.elapsed().as_secs_f64();
    let server_cpu = cpu_seconds(args.server_pid)? - cpu_before;
    let mut latencies = Vec::new();
    for r in results {
        latencies.extend(r?);
    }
    latencies.sort_unstable();
    let pct = |p: f64| {
        latencies
            .get(((latencies.len() as f64 - 1.0) * p).round() as usize)
            .map_or(0.0, |d| d.as_secs_f64() * 1e3)
    };

    // The baseline: the same windows checked and written here, on one
    // thread, with the code the server runs for each.
    let mut local = vpcflow_store::Store::open(&args.work.join("baseline"))?;
    let t = Instant::now();
    for w in &windows {
        let (summary, parquet) = w
            .body
            .split_at(4 + u32::from_be_bytes(w.body[..4].try_into()?) as usize);
        let shipped = vpcflow_store::shipped::ShippedWindow::parse(
            group,
            topic,
            &w.name,
            bytes_of(parquet),
            &summary[4..],
            vpcflow_store::shipped::WindowNames::Own,
        )?;
        local.write_shipped(&w.host, &shipped)?;
    }
    let baseline = t.elapsed().as_secs_f64();

    let millions = records as f64 / 1e6;
    println!(
        "{} agents, {} windows of {} records ({} ports each, {} flows a port), {} connections",
        hosts.len(),
        windows.len(),
        records / windows.len().max(1) as u64,
        records / windows.len().max(1) as u64 / args.flows.max(1),
        args.flows,
        args.clients
    );
    println!(
        "accepted: {:.0} windows/s, {:.0} records/s ({:.1} s); acknowledged in p50 {:.1} ms, p99 {:.1} ms",
        windows.len() as f64 / wall,
        records as f64 / wall,
        wall,
        pct(0.50),
        pct(0.99)
    );
    println!(
        "server CPU: {server_cpu:.2} s = {:.2} s per million records; the store alone (this process, one thread): {:.2} s per million records; server / store alone: {:.2}x",
        server_cpu / millions,
        baseline / millions,
        server_cpu / baseline
    );
    Ok(())
}

/// Bytes for the Parquet reader.
fn bytes_of(b: &[u8]) -> vpcflow_store::shipped::Bytes {
    vpcflow_store::shipped::Bytes::copy_from_slice(b)
}
