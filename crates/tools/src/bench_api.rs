//! `vpcflow-tools bench api`: load on a running `vpcflow serve` from this (second)
//! process, over loopback with keep-alive connections: 1,000 flow-log
//! creates across 100 projects (10 each, the quota), then lists of a
//! random project's flow logs for a while; `GET /health` (no database, no
//! token) in the same run is the baseline the list is compared with.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::Args;
use serde_json::{Value, json};

/// Flags of `vpcflow-tools bench api`.
#[derive(Debug, Args)]
pub struct ApiBenchArgs {
    /// The server.
    #[arg(long)]
    api: String,
    /// `PROJECT TOKEN` per line (`vpcflow token create` for each).
    #[arg(long)]
    tokens: PathBuf,
    /// Concurrent clients.
    #[arg(long, default_value_t = 8)]
    clients: usize,
    /// Seconds each read phase lasts.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
}

struct Project {
    id: String,
    token: String,
}

/// One call; its status and body.
fn call(
    agent: &ureq::Agent,
    method: &str,
    url: &str,
    token: Option<&str>,
    body: Option<&Value>,
) -> Result<(u16, Value)> {
    let mut answer = match (method, body) {
        ("POST", Some(b)) => {
            let mut r = agent.post(url).header("Content-Type", "application/json");
            if let Some(t) = token {
                r = r.header("X-Auth-Token", t);
            }
            r.send(b.to_string().as_bytes())?
        }
        _ => {
            let mut r = agent.get(url);
            if let Some(t) = token {
                r = r.header("X-Auth-Token", t);
            }
            r.call()?
        }
    };
    let status = answer.status().as_u16();
    let text = answer.body_mut().read_to_string()?;
    Ok((status, serde_json::from_str(&text).unwrap_or(Value::Null)))
}

fn created_id(
    agent: &ureq::Agent,
    url: &str,
    token: &str,
    key: &str,
    fields: Value,
) -> Result<String> {
    let (s, v) = call(
        agent,
        "POST",
        url,
        Some(token),
        Some(&json!({ key: fields })),
    )?;
    if s != 200 {
        bail!("POST {url}: {s} {v}");
    }
    v[key]["id"]
        .as_str()
        .map(str::to_string)
        .context("no id in the answer")
}

/// Latencies of one phase.
struct Phase {
    name: &'static str,
    requests: usize,
    wall: Duration,
    latencies: Vec<Duration>,
}

impl Phase {
    fn rate(&self) -> f64 {
        self.requests as f64 / self.wall.as_secs_f64()
    }
    fn percentile(&self, p: f64) -> Duration {
        let mut l = self.latencies.clone();
        l.sort_unstable();
        l.get(((l.len() as f64 - 1.0) * p).round() as usize)
            .copied()
            .unwrap_or_default()
    }
    fn print(&self) {
        println!(
            "{:<14} {:>7} requests in {:>6.2} s: {:>8.0} req/s, p50 {:>7.2} ms, p99 {:>7.2} ms",
            self.name,
            self.requests,
            self.wall.as_secs_f64(),
            self.rate(),
            self.percentile(0.50).as_secs_f64() * 1e3,
            self.percentile(0.99).as_secs_f64() * 1e3,
        );
    }
}

/// `clients` threads calling `one(client, i)` until `until` says stop (or
/// `one` says it made no request); every call must succeed.
fn load(
    name: &'static str,
    clients: usize,
    until: impl FnMut(usize, Duration) -> bool + Clone + Send,
    one: impl Fn(&ureq::Agent, usize, usize) -> Result<bool> + Sync,
) -> Result<Phase> {
    let started = Instant::now();
    let results: Vec<Result<Vec<Duration>>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..clients)
            .map(|c| {
                let one = &one;
                let mut until = until.clone();
                s.spawn(move || -> Result<Vec<Duration>> {
                    let agent = agent();
                    let mut lat = Vec::new();
                    let mut i = 0;
                    while !until(i, started.elapsed()) {
                        let t = Instant::now();
                        if !one(&agent, c, i)? {
                            break;
                        }
                        lat.push(t.elapsed());
                        i += 1;
                    }
                    Ok(lat)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|_| bail!("a client panicked")))
            .collect()
    });
    let wall = started.elapsed();
    let mut latencies = Vec::new();
    for r in results {
        latencies.extend(r?);
    }
    Ok(Phase {
        name,
        requests: latencies.len(),
        wall,
        latencies,
    })
}

/// Runs `vpcflow-tools bench api`.
pub fn run(args: ApiBenchArgs) -> Result<()> {
    let text = std::fs::read_to_string(&args.tokens)
        .with_context(|| format!("--tokens {}", args.tokens.display()))?;
    let projects: Vec<Project> = text
        .lines()
        .filter_map(|l| l.split_once(' '))
        .map(|(id, token)| Project {
            id: id.to_string(),
            token: token.trim().to_string(),
        })
        .collect();
    if projects.is_empty() {
        bail!("--tokens: no `PROJECT TOKEN` lines");
    }
    let base = args.api.trim_end_matches('/').to_string();
    // The model each project's flow logs point at (not timed): a VPC, a
    // log group and four topics, so ten flow logs differ.
    let setup = agent();
    let mut targets = Vec::new();
    for p in &projects {
        let v1 = format!("{base}/v1/{}", p.id);
        let vpc = created_id(
            &setup,
            &format!("{v1}/vpcs"),
            &p.token,
            "vpc",
            json!({"cidr": "10.0.0.0/16"}),
        )?;
        let group = created_id(
            &setup,
            &format!("{v1}/log-groups"),
            &p.token,
            "log_group",
            json!({}),
        )?;
        let mut topics = Vec::new();
        for n in 0..4 {
            topics.push(created_id(
                &setup,
                &format!("{v1}/log-groups/{group}/log-topics"),
                &p.token,
                "log_topic",
                json!({ "name": format!("t{n}") }),
            )?);
        }
        targets.push((vpc, group, topics));
    }
    let per_project = vpcflow_control::FLOW_LOG_QUOTA as usize;
    let creates = projects.len() * per_project;
    let next = std::sync::atomic::AtomicUsize::new(0);
    let create = load(
        "create",
        args.clients,
        {
            let next = &next;
            move |_, _| next.load(std::sync::atomic::Ordering::Relaxed) >= creates
        },
        |agent, _, _| {
            let n = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            if n >= creates {
                return Ok(false);
            }
            let (pi, k) = (n % projects.len(), n / projects.len());
            let p = &projects[pi];
            let (vpc, group, topics) = &targets[pi];
            let traffic = ["all", "accept", "reject"][k % 3];
            let body = json!({"flow_log": {
                "name": format!("fl-{k}"), "resource_type": "vpc", "resource_id": vpc,
                "traffic_type": traffic,
                "log_group_id": group, "log_topic_id": topics[k / 3],
            }});
            let (s, v) = call(
                agent,
                "POST",
                &format!("{base}/v1/{}/fl/flow_logs", p.id),
                Some(&p.token),
                Some(&body),
            )?;
            if s != 200 {
                bail!("create: {s} {v}");
            }
            Ok(true)
        },
    )?;
    let seconds = Duration::from_secs(args.seconds);
    let health = load(
        "health",
        args.clients,
        move |_, t| t >= seconds,
        |agent, _, _| {
            let (s, _) = call(agent, "GET", &format!("{base}/health"), None, None)?;
            if s != 200 {
                bail!("health: {s}");
            }
            Ok(true)
        },
    )?;
    let list = load(
        "list",
        args.clients,
        move |_, t| t >= seconds,
        |agent, c, i| {
            let p = &projects[(c * 7919 + i * 104_729) % projects.len()];
            let (s, v) = call(
                agent,
                "GET",
                &format!("{base}/v1/{}/fl/flow_logs", p.id),
                Some(&p.token),
                None,
            )?;
            let n = v["flow_logs"].as_array().map_or(0, Vec::len);
            if s != 200 || n != per_project {
                bail!("list: {s}, {n} flow logs");
            }
            Ok(true)
        },
    )?;
    println!(
        "{} projects, {} flow logs, {} clients",
        projects.len(),
        creates,
        args.clients
    );
    for p in [&create, &health, &list] {
        p.print();
    }
    println!(
        "list / health: {:.3} of the rate, p99 {:.2}x",
        list.rate() / health.rate(),
        list.percentile(0.99).as_secs_f64() / health.percentile(0.99).as_secs_f64()
    );
    Ok(())
}

/// An HTTP agent that hands error statuses back as answers.
fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into()
}
