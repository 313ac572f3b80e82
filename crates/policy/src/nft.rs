//! The inventory's security groups and network ACLs as nftables rulesets,
//! for test beds that let the Linux kernel enforce what the engine decides.
//!
//! [`port_ruleset`] is a port's security groups, for its own network
//! namespace (input = ingress, output = egress); [`acl_ruleset`] is the
//! network ACLs of the subnets behind a router (traffic routed into a subnet
//! meets its ingress rules, traffic routed out of it its egress rules). Both
//! are stateful (`ct state established,related accept` first), evaluate
//! rules in the engine's order, and drop when nothing allows. Pure text: no
//! I/O.

use std::fmt::Write as _;
use std::net::IpAddr;

use ipnet::IpNet;
use vpcflow_core::flow::{INFRASTRUCTURE_ICMPV6_TYPES, INFRASTRUCTURE_UDP_PORTS};
use vpcflow_core::inventory::Inventory;
use vpcflow_core::inventory::rules::{
    AclRule, IpVersion, ProtocolMatch, Remote, RuleAction, RuleDirection, SecurityGroupRule,
};

use crate::evaluation_order;

fn family(v: IpVersion) -> &'static str {
    match v {
        IpVersion::V4 => "ip",
        IpVersion::V6 => "ip6",
    }
}

fn net_family(n: &IpNet) -> IpVersion {
    match n {
        IpNet::V4(_) => IpVersion::V4,
        IpNet::V6(_) => IpVersion::V6,
    }
}

fn protocol(p: ProtocolMatch) -> String {
    match p {
        ProtocolMatch::Any => String::new(),
        ProtocolMatch::Number(n) => format!("meta l4proto {n} "),
    }
}

/// `th` (transport header) matches work for every protocol with ports.
fn ports_match(p: ProtocolMatch, field: &str, ranges: &[(u16, u16)]) -> String {
    if ranges.is_empty() {
        return String::new();
    }
    let items: Vec<String> = ranges
        .iter()
        .map(|&(lo, hi)| {
            if lo == hi {
                lo.to_string()
            } else {
                format!("{lo}-{hi}")
            }
        })
        .collect();
    let l4 = match p {
        ProtocolMatch::Any => "meta l4proto { tcp, udp, sctp, dccp, udplite } ",
        ProtocolMatch::Number(_) => "",
    };
    format!("{l4}th {field} {{ {} }} ", items.join(", "))
}

fn verdict(a: RuleAction, allow: &str) -> String {
    match a {
        RuleAction::Allow => allow.to_string(),
        RuleAction::Deny => "drop".to_string(),
    }
}

fn sg_rule_lines(inv: &Inventory, r: &SecurityGroupRule, out: &mut String) {
    let (dir_addr, comment) = match r.direction {
        RuleDirection::Ingress => ("saddr", "ingress"),
        RuleDirection::Egress => ("daddr", "egress"),
    };
    let tail = format!(
        "{}{}{} comment \"{} {}\"",
        protocol(r.protocol),
        ports_match(r.protocol, "dport", &r.ports.0),
        verdict(r.action, "accept"),
        comment,
        r.id
    );
    match &r.remote {
        Remote::Prefix(net) => {
            let _ = writeln!(
                out,
                "    {} {dir_addr} {net} {tail}",
                family(net_family(net))
            );
        }
        Remote::Group(g) => {
            let mut members: Vec<IpAddr> = inv
                .ports
                .iter()
                .filter(|p| p.security_groups.contains(g))
                .flat_map(|p| p.ips.iter().copied())
                .collect();
            members.sort();
            for v in [IpVersion::V4, IpVersion::V6] {
                if r.ethertype.is_some_and(|e| e != v) {
                    continue;
                }
                let ips: Vec<String> = members
                    .iter()
                    .filter(|a| a.is_ipv4() == (v == IpVersion::V4))
                    .map(|a| a.to_string())
                    .collect();
                if !ips.is_empty() {
                    let _ = writeln!(
                        out,
                        "    {} {dir_addr} {{ {} }} {tail}",
                        family(v),
                        ips.join(", ")
                    );
                }
            }
        }
    }
}

/// The security groups of inventory port `port`, for its namespace.
pub fn port_ruleset(inv: &Inventory, port: usize) -> String {
    let p = &inv.ports[port];
    let mut chains = [String::new(), String::new()];
    for (i, dir) in [RuleDirection::Ingress, RuleDirection::Egress]
        .into_iter()
        .enumerate()
    {
        for &g in &p.security_groups {
            let group = &inv.security_groups[g];
            for ri in evaluation_order(group, dir) {
                sg_rule_lines(inv, &group.rules[ri], &mut chains[i]);
            }
        }
    }
    let infrastructure = infrastructure_lines("accept");
    format!(
        "table inet vpcflow_sg {{\n  chain input {{\n    type filter hook input priority 0; policy drop;\n    ct state established,related accept\n    iifname \"lo\" accept\n{infrastructure}{}  }}\n  chain output {{\n    type filter hook output priority 0; policy drop;\n    ct state established,related accept\n    oifname \"lo\" accept\n{infrastructure}{}  }}\n}}\n",
        chains[0], chains[1]
    )
}

/// SPEC §1's infrastructure traffic, which every security group and ACL
/// lets through, ending in `verdict`; from the same lists the engine reads.
fn infrastructure_lines(verdict: &str) -> String {
    let types: Vec<String> = INFRASTRUCTURE_ICMPV6_TYPES
        .iter()
        .map(u8::to_string)
        .collect();
    let mut out = format!(
        "    icmpv6 type {{ {} }} {verdict} comment \"implicit-allow\"\n",
        types.join(", ")
    );
    for [a, b] in INFRASTRUCTURE_UDP_PORTS {
        let _ = writeln!(
            out,
            "    udp sport {{ {a}, {b} }} udp dport {{ {a}, {b} }} {verdict} comment \"implicit-allow\""
        );
    }
    out
}

fn acl_rule_line(r: &AclRule, out: &mut String) {
    if !r.enabled {
        return;
    }
    let mut m = String::new();
    if let Some(v) = r.ip_version {
        let _ = write!(
            m,
            "meta nfproto {} ",
            if v == IpVersion::V4 { "ipv4" } else { "ipv6" }
        );
    }
    for (net, field) in [(&r.source, "saddr"), (&r.destination, "daddr")] {
        if let Some(n) = net {
            let _ = write!(m, "{} {field} {n} ", family(net_family(n)));
        }
    }
    m.push_str(&protocol(r.protocol));
    for (range, field) in [(r.source_ports, "sport"), (r.destination_ports, "dport")] {
        if let Some(range) = range {
            m.push_str(&ports_match(r.protocol, field, &[range]));
        }
    }
    // An allow only passes this check; the other subnet's ACL may still drop.
    let _ = writeln!(
        out,
        "    {m}{} comment \"{}\"",
        verdict(r.action, "return"),
        r.id
    );
}

/// The network ACLs of the subnets in `subnets`: (subnet index, the
/// router-side interface that leads into it).
pub fn acl_ruleset(inv: &Inventory, subnets: &[(usize, String)]) -> String {
    let mut forward = String::new();
    let mut chains = String::new();
    for (s, ifname) in subnets {
        let Some(a) = inv.subnets[*s].network_acl else {
            continue;
        };
        let acl = &inv.network_acls[a];
        for (dir, hook, remote, name) in [
            (RuleDirection::Ingress, "oifname", "saddr", "in"),
            (RuleDirection::Egress, "iifname", "daddr", "out"),
        ] {
            let chain = format!("acl_{s}_{name}");
            let _ = writeln!(forward, "    {hook} \"{ifname}\" jump {chain}");
            let _ = writeln!(chains, "  chain {chain} {{");
            // SPEC §1's always-allowed traffic.
            chains.push_str(&infrastructure_lines("return"));
            let port = if remote == "saddr" { "sport" } else { "dport" };
            let _ = writeln!(
                chains,
                "    ip {remote} {{ 224.0.0.0/24, 100.125.0.0/16 }} return"
            );
            let _ = writeln!(
                chains,
                "    ip {remote} 169.254.169.254 tcp {port} 80 return"
            );
            let rules = if dir == RuleDirection::Ingress {
                &acl.ingress
            } else {
                &acl.egress
            };
            for r in rules {
                acl_rule_line(r, &mut chains);
            }
            let _ = writeln!(chains, "    drop comment \"default-deny\"\n  }}");
        }
    }
    format!(
        "table inet vpcflow_acl {{\n  chain forward {{\n    type filter hook forward priority 0; policy accept;\n    ct state established,related accept\n{forward}  }}\n{chains}}}\n"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn example() -> Inventory {
        Inventory::from_toml("vpc.toml", include_str!("../../../examples/vpc.toml")).unwrap()
    }

    #[test]
    fn web_port_ruleset() {
        let inv = example();
        let text = port_ruleset(&inv, 0);
        let deny = text
            .find("ip saddr 203.0.113.66/32 meta l4proto 6 th dport { 22 } drop")
            .unwrap();
        let allow = text
            .find("ip saddr 203.0.113.0/24 meta l4proto 6 th dport { 22 } accept")
            .unwrap();
        assert!(deny < allow, "deny before allow at equal priority:\n{text}");
        assert!(
            text.contains("ip saddr 0.0.0.0/0 meta l4proto 6 th dport { 80, 443 } accept"),
            "{text}"
        );
        assert!(
            text.contains("ip daddr 0.0.0.0/0 accept comment \"egress"),
            "{text}"
        );
    }

    #[test]
    fn remote_groups_become_member_sets() {
        let inv = example();
        let text = port_ruleset(&inv, 2);
        assert!(
            text.contains(
                "ip saddr { 192.168.0.20, 192.168.0.154 } meta l4proto 6 th dport { 5432 } accept"
            ),
            "{text}"
        );
        assert!(
            text.contains("ip6 saddr { 2001:db8:0:1::20 } meta l4proto 6 th dport { 5432 } accept"),
            "{text}"
        );
    }

    #[test]
    fn acl_chains_in_order_with_default_deny() {
        let inv = example();
        let text = acl_ruleset(&inv, &[(0, "br-web".into()), (1, "br-db".into())]);
        assert!(text.contains("oifname \"br-web\" jump acl_0_in"), "{text}");
        assert!(!text.contains("br-db"), "subnet-db has no ACL:\n{text}");
        let telnet = text
            .find("meta l4proto 6 th dport { 23 } drop comment \"no-telnet\"")
            .unwrap();
        let all = text
            .find("ip saddr 0.0.0.0/0 return comment \"allow-all-in\"")
            .unwrap();
        assert!(telnet < all, "{text}");
        assert_eq!(text.matches("drop comment \"default-deny\"").count(), 2);
    }

    #[test]
    fn infrastructure_traffic_passes_groups_and_acls() {
        let inv = example();
        let sg = port_ruleset(&inv, 0);
        let nd = "icmpv6 type { 130, 131, 132, 133, 134, 135, 136, 137, 143 } accept comment \"implicit-allow\"";
        assert_eq!(sg.matches(nd).count(), 2, "input and output:\n{sg}");
        assert_eq!(
            sg.matches("udp sport { 67, 68 } udp dport { 67, 68 } accept")
                .count(),
            2,
            "{sg}"
        );
        assert!(sg.contains("udp sport { 546, 547 } udp dport { 546, 547 } accept"));
        // Before the group's rules, so no deny of theirs can drop it.
        assert!(
            sg.find(nd).unwrap() < sg.find("comment \"ingress").unwrap(),
            "{sg}"
        );
        let acl = acl_ruleset(&inv, &[(0, "br-web".into())]);
        assert_eq!(
            acl.matches("icmpv6 type { 130, 131, 132, 133, 134, 135, 136, 137, 143 } return")
                .count(),
            2,
            "{acl}"
        );
        assert!(
            acl.find("return comment \"implicit-allow\"").unwrap() < acl.find("no-telnet").unwrap()
        );
    }
}
