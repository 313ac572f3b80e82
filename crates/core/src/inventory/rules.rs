//! Typed security-group and network-ACL rules (SPEC §1). The policy engine
//! evaluates these; here they are only parsed, so it never sees a malformed
//! rule.

use ipnet::IpNet;

/// Which way a rule applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RuleDirection {
    /// Traffic to the port.
    Ingress,
    /// Traffic from the port.
    Egress,
}

/// Allow or deny.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RuleAction {
    /// Let the traffic through.
    Allow,
    /// Stop it.
    Deny,
}

/// IPv4 or IPv6.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IpVersion {
    /// IPv4.
    V4,
    /// IPv6.
    V6,
}

/// A protocol match: any, or one IANA number (`tcp` = 6, `udp` = 17,
/// `icmp` = 1, `icmpv6` = 58).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProtocolMatch {
    /// Every protocol.
    Any,
    /// Exactly this protocol number.
    Number(u8),
}

impl ProtocolMatch {
    /// Parses a name or number; empty and `any` mean any.
    pub fn parse(s: &str) -> Option<ProtocolMatch> {
        let s = s.trim();
        Some(match s.to_ascii_lowercase().as_str() {
            "" | "any" | "all" => ProtocolMatch::Any,
            "tcp" => ProtocolMatch::Number(6),
            "udp" => ProtocolMatch::Number(17),
            "icmp" => ProtocolMatch::Number(1),
            "icmpv6" | "ipv6-icmp" => ProtocolMatch::Number(58),
            "gre" => ProtocolMatch::Number(47),
            "sctp" => ProtocolMatch::Number(132),
            other => ProtocolMatch::Number(other.parse::<u8>().ok()?),
        })
    }
}

/// A set of port ranges; empty means every port.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PortSet(pub Vec<(u16, u16)>);

impl PortSet {
    /// Parses `""` (all), `"80"`, `"1-30"`, `"22,3389,80"` and mixtures.
    pub fn parse(s: &str) -> Result<PortSet, String> {
        let s = s.trim();
        if s.is_empty() {
            return Ok(PortSet::default());
        }
        let mut ranges = Vec::new();
        for part in s.split(',') {
            ranges.push(parse_range(part.trim())?);
        }
        Ok(PortSet(ranges))
    }

    /// Whether `port` is in the set.
    pub fn contains(&self, port: u16) -> bool {
        self.0.is_empty() || self.0.iter().any(|&(lo, hi)| lo <= port && port <= hi)
    }
}

/// Parses `"80"` or `"1-30"` into an inclusive range.
pub fn parse_range(s: &str) -> Result<(u16, u16), String> {
    let num = |t: &str| {
        t.trim()
            .parse::<u16>()
            .map_err(|_| format!("`{s}` is not a port (0-65535) or a range like 1-1024"))
    };
    match s.split_once('-') {
        Some((a, b)) => {
            let (lo, hi) = (num(a)?, num(b)?);
            if lo > hi {
                return Err(format!("range `{s}` starts after it ends"));
            }
            Ok((lo, hi))
        }
        None => {
            let p = num(s)?;
            Ok((p, p))
        }
    }
}

/// The one remote of a security-group rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Remote {
    /// An address prefix (a bare IP is a /32 or /128).
    Prefix(IpNet),
    /// Members of a security group: index into `Inventory::security_groups`.
    Group(usize),
}

/// One security-group rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecurityGroupRule {
    /// The rule's id (given, or `<group id>/<position>`).
    pub id: String,
    /// Ingress or egress.
    pub direction: RuleDirection,
    /// IPv4 or IPv6; `None` matches both (a group remote without ethertype).
    pub ethertype: Option<IpVersion>,
    /// Protocol.
    pub protocol: ProtocolMatch,
    /// Ports (destination ports for ingress and egress alike).
    pub ports: PortSet,
    /// Remote side.
    pub remote: Remote,
    /// Allow or deny.
    pub action: RuleAction,
    /// 1 (first) to 100.
    pub priority: u8,
}

/// One network-ACL rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AclRule {
    /// The rule's id (given, its name, or `<direction>-<position>`).
    pub id: String,
    /// Allow or deny.
    pub action: RuleAction,
    /// Protocol.
    pub protocol: ProtocolMatch,
    /// IP version, if restricted.
    pub ip_version: Option<IpVersion>,
    /// Source prefix, if restricted.
    pub source: Option<IpNet>,
    /// Destination prefix, if restricted.
    pub destination: Option<IpNet>,
    /// Source ports, inclusive range; `None` for all.
    pub source_ports: Option<(u16, u16)>,
    /// Destination ports, inclusive range; `None` for all.
    pub destination_ports: Option<(u16, u16)>,
    /// Disabled rules are skipped.
    pub enabled: bool,
}

/// Parses a CIDR or a bare address (a host prefix).
pub fn parse_prefix(s: &str) -> Result<IpNet, String> {
    let s = s.trim();
    if let Ok(net) = s.parse::<IpNet>() {
        return Ok(net);
    }
    s.parse::<std::net::IpAddr>()
        .map(IpNet::from)
        .map_err(|_| format!("`{s}` is not an IP prefix (like 10.0.0.0/8) or an address"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multiport_forms() {
        assert!(PortSet::parse("").unwrap().contains(9));
        let p = PortSet::parse("22,3389,80").unwrap();
        assert!(p.contains(3389) && p.contains(22) && !p.contains(23));
        let r = PortSet::parse("1-30").unwrap();
        assert!(r.contains(1) && r.contains(30) && !r.contains(31));
        assert!(PortSet::parse("30-1").is_err());
        assert!(PortSet::parse("http").is_err());
        assert!(PortSet::parse("70000").is_err());
    }

    #[test]
    fn protocols_by_name_and_number() {
        assert_eq!(ProtocolMatch::parse("TCP"), Some(ProtocolMatch::Number(6)));
        assert_eq!(
            ProtocolMatch::parse("icmpv6"),
            Some(ProtocolMatch::Number(58))
        );
        assert_eq!(ProtocolMatch::parse("47"), Some(ProtocolMatch::Number(47)));
        assert_eq!(ProtocolMatch::parse(""), Some(ProtocolMatch::Any));
        assert_eq!(ProtocolMatch::parse("256"), None);
        assert_eq!(ProtocolMatch::parse("bogus"), None);
    }

    #[test]
    fn bare_address_is_a_host_prefix() {
        assert_eq!(parse_prefix("203.0.113.66").unwrap().prefix_len(), 32);
        assert_eq!(parse_prefix("2001:db8::1").unwrap().prefix_len(), 128);
        assert!(parse_prefix("10.0.0.0/33").is_err());
    }
}
