//! `vpcflow-tools testbed`: an inventory built as real network namespaces.
//!
//! Layout (all inside namespaces this command creates; nothing touches the
//! host's own interfaces):
//! - `<prefix>-host`: the hypervisor side. One bridge per subnet holding the
//!   subnet's gateway address (the CIDR's first host), IP forwarding on (it
//!   routes between subnets), and the subnets' network ACLs as nftables
//!   rules on the bridges;
//! - `<prefix>-p<N>`: one namespace per port (N = the port's position among
//!   the ports with an `interface`), with `eth0` holding the port's IPs and a
//!   default route via its subnet's gateway, and the port's security groups
//!   as nftables rules;
//! - a veth pair per port: `eth0` in the port's namespace, and in the host
//!   namespace the port's inventory `interface` name, attached to its
//!   subnet's bridge. That is the host side of the port, as a tap is on a
//!   hypervisor: set `host_side = true` on such ports for the agent.
//!
//! Ports bound to a host (`host = "hv1"`) are a fleet's: each such host is
//! a namespace of its own, `<prefix>-h<K>` (K: the host's position among
//! the ports' hosts), standing for a hypervisor. It holds its ports'
//! host-side interfaces on a bridge per subnet, each bridge linked by a
//! veth (`up<S>` there, `h<K>s<S>` on the subnet's bridge in
//! `<prefix>-host`, which stays the router and the ACLs) as a provider
//! network links hypervisors; and `mgmt`, its address on the management
//! network ([`MANAGEMENT`]) where `<prefix>-host` is [`SERVER_ADDRESS`],
//! so that each host's agent reaches the fleet's server there.
//!
//! `down` removes every namespace with the prefix (and with them every veth,
//! bridge and ruleset).

/// The fleet's management network: the hosts' namespaces and
/// `<prefix>-host` on one bridge there (link-local, so never a VPC's).
pub const MANAGEMENT: &str = "169.254.77.0/24";

/// `<prefix>-host`'s address on [`MANAGEMENT`], where a fleet's server
/// listens for the hosts' agents; host K is `169.254.77.(K + 2)`.
pub const SERVER_ADDRESS: std::net::Ipv4Addr = std::net::Ipv4Addr::new(169, 254, 77, 1);

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use vpcflow_core::Inventory;

/// `vpcflow-tools testbed` subcommands.
#[derive(Debug, Args)]
pub struct TestbedArgs {
    /// Prefix of the namespaces (at most 8 characters).
    #[arg(long, default_value = "vfb", global = true)]
    prefix: String,
    #[command(subcommand)]
    command: TestbedCommand,
}

#[derive(Debug, Subcommand)]
enum TestbedCommand {
    /// Build the inventory's ports, subnets, security groups and ACLs (root).
    Up {
        /// The inventory.
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
    },
    /// Remove everything `up` built.
    Down,
    /// Run a command in a port's namespace (`host` for the router's host
    /// side, `host:NAME` for host NAME's).
    Exec {
        /// The inventory (to find the port).
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
        /// A port id, `host` or `host:NAME`.
        port: String,
        /// The command.
        #[arg(last = true, required = true)]
        command: Vec<String>,
    },
}

fn run_cmd(args: &[&str]) -> Result<String> {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .with_context(|| format!("cannot run {} (scripts/setup.sh test installs it)", args[0]))?;
    if !out.status.success() {
        bail!(
            "`{}` failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn sysctl(netns: &str, setting: &str) -> Result<()> {
    run_cmd(&["ip", "netns", "exec", netns, "sysctl", "-qw", setting]).map(|_| ())
}

/// The ports the testbed builds: those with an interface, in inventory order.
fn bed_ports(inv: &Inventory) -> Vec<usize> {
    (0..inv.ports.len())
        .filter(|&i| inv.ports[i].interface.is_some())
        .collect()
}

/// The hosts the built ports are bound to, in order of first mention.
fn bed_hosts(inv: &Inventory) -> Vec<&str> {
    let mut hosts = Vec::new();
    for p in bed_ports(inv) {
        if let Some(h) = inv.ports[p].host.as_deref()
            && !hosts.contains(&h)
        {
            hosts.push(h);
        }
    }
    hosts
}

/// The namespace of the port's host side: its host's, or `<prefix>-host`.
fn host_namespace_of(prefix: &str, inv: &Inventory, port: usize) -> String {
    match inv.ports[port].host.as_deref() {
        Some(h) => {
            let k = bed_hosts(inv).iter().position(|x| *x == h).unwrap_or(0);
            format!("{prefix}-h{k}")
        }
        None => format!("{prefix}-host"),
    }
}

/// The namespace of a port (by inventory index).
pub fn port_namespace(prefix: &str, inv: &Inventory, port: usize) -> Option<String> {
    bed_ports(inv)
        .iter()
        .position(|&p| p == port)
        .map(|n| format!("{prefix}-p{n}"))
}

fn gateway(net: &ipnet::IpNet) -> Option<(std::net::IpAddr, u8)> {
    match net {
        ipnet::IpNet::V4(n) => n
            .hosts()
            .next()
            .map(|a| (std::net::IpAddr::V4(a), n.prefix_len())),
        ipnet::IpNet::V6(n) => Some((
            std::net::IpAddr::V6((u128::from(n.network()) + 1).into()),
            n.prefix_len(),
        )),
    }
}

fn up(prefix: &str, inv: &Inventory, config: &Path) -> Result<()> {
    let host = format!("{prefix}-host");
    if run_cmd(&["ip", "netns", "list"])?
        .lines()
        .any(|l| l.split_whitespace().next() == Some(host.as_str()))
    {
        bail!(
            "a testbed with prefix '{prefix}' is up already (vpcflow-tools testbed down --prefix {prefix})"
        );
    }
    // Without IPv6 in the inventory, IPv6 stays off: no router
    // solicitations or multicast listener reports in the records.
    let v6 = inv.subnets.iter().any(|s| s.ipv6_cidr.is_some())
        || inv.ports.iter().any(|p| p.ips.iter().any(|a| a.is_ipv6()));
    let ns = |n: &str| -> Result<()> {
        run_cmd(&["ip", "netns", "add", n])?;
        if !v6 {
            for k in ["all", "default"] {
                sysctl(n, &format!("net.ipv6.conf.{k}.disable_ipv6=1"))?;
            }
        }
        run_cmd(&["ip", "-n", n, "link", "set", "lo", "up"])?;
        Ok(())
    };
    ns(&host)?;
    for key in ["net.ipv4.ip_forward=1", "net.ipv6.conf.all.forwarding=1"] {
        sysctl(&host, key)?;
    }
    let mut bridges = Vec::new();
    for (si, s) in inv.subnets.iter().enumerate() {
        let br = format!("br{si}");
        run_cmd(&["ip", "-n", &host, "link", "add", &br, "type", "bridge"])?;
        for net in std::iter::once(&s.cidr).chain(s.ipv6_cidr.as_ref()) {
            if let Some((gw, len)) = gateway(net) {
                run_cmd(&[
                    "ip",
                    "-n",
                    &host,
                    "addr",
                    "add",
                    &format!("{gw}/{len}"),
                    "dev",
                    &br,
                ])?;
            }
        }
        run_cmd(&["ip", "-n", &host, "link", "set", &br, "up"])?;
        bridges.push((si, br));
    }
    // The fleet's hosts: a bridge per subnet linked to the router's, and
    // the management network.
    let hosts = bed_hosts(inv);
    if !hosts.is_empty() {
        let mgmt: ipnet::Ipv4Net = MANAGEMENT.parse()?;
        if let Some(s) = inv
            .subnets
            .iter()
            .find(|s| s.cidr.contains(&std::net::IpAddr::V4(mgmt.network())))
        {
            bail!(
                "subnet {} ({}) overlaps the testbed's management network {MANAGEMENT}",
                s.id,
                s.cidr
            );
        }
        run_cmd(&["ip", "-n", &host, "link", "add", "mgmt", "type", "bridge"])?;
        let server = format!("{SERVER_ADDRESS}/{}", mgmt.prefix_len());
        run_cmd(&["ip", "-n", &host, "addr", "add", &server, "dev", "mgmt"])?;
        run_cmd(&["ip", "-n", &host, "link", "set", "mgmt", "up"])?;
    }
    for (k, name) in hosts.iter().enumerate() {
        let hns = format!("{prefix}-h{k}");
        ns(&hns)?;
        let link = |inside: &str, outside: &str, bridge: &str| -> Result<()> {
            run_cmd(&[
                "ip", "link", "add", inside, "netns", &hns, "type", "veth", "peer", "name",
                outside, "netns", &host,
            ])?;
            run_cmd(&["ip", "-n", &host, "link", "set", outside, "master", bridge])?;
            run_cmd(&["ip", "-n", &host, "link", "set", outside, "up"])?;
            run_cmd(&["ip", "-n", &hns, "link", "set", inside, "up"])?;
            Ok(())
        };
        for (si, br) in &bridges {
            let local = format!("br{si}");
            run_cmd(&["ip", "-n", &hns, "link", "add", &local, "type", "bridge"])?;
            run_cmd(&["ip", "-n", &hns, "link", "set", &local, "up"])?;
            let up = format!("up{si}");
            link(&up, &format!("h{k}s{si}"), br)?;
            run_cmd(&["ip", "-n", &hns, "link", "set", &up, "master", &local])?;
        }
        link("mgmt", &format!("h{k}m"), "mgmt")?;
        let address = std::net::Ipv4Addr::from(u32::from(SERVER_ADDRESS) + 1 + k as u32);
        run_cmd(&[
            "ip",
            "-n",
            &hns,
            "addr",
            "add",
            &format!("{address}/24"),
            "dev",
            "mgmt",
        ])?;
        println!("host {name} -> namespace {hns}, management address {address}");
    }
    let nft = |netns: &str, ruleset: &str, name: &str| -> Result<()> {
        use std::io::Write;
        let mut c = Command::new("ip")
            .args(["netns", "exec", netns, "nft", "-f", "-"])
            .stdin(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .context("cannot run nft (scripts/setup.sh test installs nftables)")?;
        c.stdin
            .take()
            .context("nft stdin")?
            .write_all(ruleset.as_bytes())?;
        let out = c.wait_with_output()?;
        if !out.status.success() {
            bail!(
                "nft refused the {name} ruleset: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(())
    };
    for (n, &pi) in bed_ports(inv).iter().enumerate() {
        let p = &inv.ports[pi];
        let pns = format!("{prefix}-p{n}");
        let ifname = p.interface.as_deref().unwrap_or_default();
        // Its host side: on its host's bridge of its subnet, or the router's.
        let side = host_namespace_of(prefix, inv, pi);
        ns(&pns)?;
        run_cmd(&[
            "ip", "link", "add", "eth0", "netns", &pns, "type", "veth", "peer", "name", ifname,
            "netns", &side,
        ])?;
        if let Some(mac) = &p.mac {
            run_cmd(&["ip", "-n", &pns, "link", "set", "eth0", "address", mac])?;
        }
        run_cmd(&["ip", "-n", &pns, "link", "set", "eth0", "up"])?;
        run_cmd(&[
            "ip",
            "-n",
            &side,
            "link",
            "set",
            ifname,
            "master",
            &bridges[p.subnet].1,
        ])?;
        run_cmd(&["ip", "-n", &side, "link", "set", ifname, "up"])?;
        let s = &inv.subnets[p.subnet];
        for ip in &p.ips {
            let net = if ip.is_ipv4() {
                Some(&s.cidr)
            } else {
                s.ipv6_cidr.as_ref()
            };
            let Some(net) = net else { continue };
            let len = net.prefix_len();
            run_cmd(&[
                "ip",
                "-n",
                &pns,
                "addr",
                "add",
                &format!("{ip}/{len}"),
                "dev",
                "eth0",
                "nodad",
            ])?;
            if let Some((gw, _)) = gateway(net) {
                let family = if ip.is_ipv4() { "-4" } else { "-6" };
                run_cmd(&[
                    "ip",
                    family,
                    "-n",
                    &pns,
                    "route",
                    "replace",
                    "default",
                    "via",
                    &gw.to_string(),
                ])?;
            }
        }
        nft(
            &pns,
            &vpcflow_policy::nft::port_ruleset(inv, pi),
            &format!("p{n}"),
        )?;
        println!(
            "port {} -> namespace {pns}, host interface {ifname} in {side}",
            p.id
        );
    }
    let acl = vpcflow_policy::nft::acl_ruleset(inv, &bridges);
    if !acl.trim().is_empty() {
        nft(&host, &acl, "acl")?;
    }
    println!(
        "testbed '{prefix}' is up from {}: run the agent with `vpcflow-tools testbed exec --config {} host -- vpcflow agent ...`",
        config.display(),
        config.display()
    );
    Ok(())
}

/// Removes every namespace of the testbed `prefix`; returns how many.
pub fn down(prefix: &str) -> Result<usize> {
    let mut n = 0;
    for line in run_cmd(&["ip", "netns", "list"])?.lines() {
        let Some(name) = line.split_whitespace().next() else {
            continue;
        };
        let numbered = |kind: &str| {
            name.strip_prefix(&format!("{prefix}-{kind}"))
                .is_some_and(|r| !r.is_empty() && r.bytes().all(|b| b.is_ascii_digit()))
        };
        if name == format!("{prefix}-host") || numbered("p") || numbered("h") {
            run_cmd(&["ip", "netns", "del", name])?;
            n += 1;
        }
    }
    Ok(n)
}

fn check_prefix(prefix: &str) -> Result<()> {
    if prefix.is_empty() || prefix.len() > 8 || !prefix.bytes().all(|b| b.is_ascii_alphanumeric()) {
        bail!("--prefix '{prefix}': 1 to 8 letters or digits");
    }
    Ok(())
}

/// Builds the testbed `prefix` of the inventory at `config` (root): on an
/// error, whatever was built is removed again.
pub fn build(prefix: &str, config: &Path) -> Result<()> {
    check_prefix(prefix)?;
    let inv = Inventory::read(config)?;
    if bed_ports(&inv).is_empty() {
        bail!(
            "{}: no port has an `interface`; the testbed builds ports with one",
            config.display()
        );
    }
    // The testbed's interfaces are host ends of veths (SPEC §1): a port
    // that does not say so would have every record's direction inverted.
    let wrong: Vec<&str> = bed_ports(&inv)
        .into_iter()
        .map(|i| &inv.ports[i])
        .filter(|p| p.host_side != Some(true))
        .map(|p| p.id.as_str())
        .collect();
    if !wrong.is_empty() {
        bail!(
            "{}: the testbed builds each port's interface as the host end of a veth, so these ports must say `host_side = true`: {}",
            config.display(),
            wrong.join(", ")
        );
    }
    if let Err(e) = up(prefix, &inv, config) {
        // Half a testbed is worse than none.
        let _ = down(prefix);
        return Err(e);
    }
    Ok(())
}

/// The namespace of port `port` (an id of the inventory at `config`;
/// `host` for the host side, the router's; `host:NAME` for host NAME's) in
/// testbed `prefix`.
pub fn namespace(prefix: &str, config: &Path, port: &str) -> Result<String> {
    if port == "host" {
        return Ok(format!("{prefix}-host"));
    }
    let inv = Inventory::read(config)?;
    if let Some(name) = port.strip_prefix("host:") {
        let hosts = bed_hosts(&inv);
        let k = hosts.iter().position(|h| *h == name).with_context(|| {
            format!(
                "no built port is bound to host '{name}' in {} (hosts: {})",
                config.display(),
                hosts.join(", ")
            )
        })?;
        return Ok(format!("{prefix}-h{k}"));
    }
    let pi = inv
        .ports
        .iter()
        .position(|p| p.id == port)
        .with_context(|| format!("no port '{port}' in {}", config.display()))?;
    port_namespace(prefix, &inv, pi).with_context(|| {
        format!("port '{port}' has no `interface`, so the testbed did not build it")
    })
}

/// Runs `vpcflow-tools testbed`.
pub fn run(args: TestbedArgs) -> Result<ExitCode> {
    let prefix = &args.prefix;
    check_prefix(prefix)?;
    match args.command {
        TestbedCommand::Up { config } => {
            build(prefix, &config)?;
            Ok(ExitCode::SUCCESS)
        }
        TestbedCommand::Down => {
            let n = down(prefix)?;
            eprintln!("vpcflow-tools: removed {n} namespaces of testbed '{prefix}'");
            Ok(ExitCode::SUCCESS)
        }
        TestbedCommand::Exec {
            config,
            port,
            command,
        } => {
            let ns = namespace(prefix, &config, &port)?;
            // Replaced by the command (through `ip netns exec`, which
            // execs it in turn): a signal sent to this process id, and
            // the exit status, are the command's own.
            let error = Command::new("ip")
                .args(["netns", "exec", &ns])
                .args(&command)
                .exec();
            Err(anyhow::Error::from(error).context("cannot run ip netns exec"))
        }
    }
}
