//! Table-driven tests of every rule feature, and of connection tracking.

use std::net::IpAddr;

use vpcflow_core::flow::FiveTuple;
use vpcflow_core::inventory::Inventory;
use vpcflow_core::policy::FlowQuery;
use vpcflow_core::{Action, Direction, Policy, Timestamp, Topology};
use vpcflow_wire::IpProtocol;

use crate::PolicyEngine;

const BASE: &str = r#"
region = "r1"
[[project]]
id = "p"
[[vpc]]
id = "vpc"
project = "p"
cidr = "10.0.0.0/16"
[[subnet]]
id = "sa"
vpc = "vpc"
cidr = "10.0.1.0/24"
network_acl = "acl-a"
[[subnet]]
id = "sb"
vpc = "vpc"
cidr = "10.0.2.0/24"
[[port]]
id = "pa"
subnet = "sa"
ips = ["10.0.1.10", "2001:db8:1::10"]
security_groups = ["g1", "g2"]
[[port]]
id = "pa2"
subnet = "sa"
ips = ["10.0.1.11"]
security_groups = ["g3"]
[[port]]
id = "pb"
subnet = "sb"
ips = ["10.0.2.20"]
security_groups = ["g3"]
[[log_group]]
id = "lg"
project = "p"
[[log_topic]]
id = "lt"
log_group = "lg"
[[flow_log]]
id = "fl"
project = "p"
name = "all"
resource_type = "vpc"
resource_id = "vpc"
traffic_type = "all"
log_group_id = "lg"
log_topic_id = "lt"
"#;

/// Groups and ACL under test; g3 (of pa2 and pb) allows ingress from g1 on
/// 5432 and has no egress rule at all.
const RULES: &str = r#"
[[security_group]]
id = "g1"
project = "p"
[[security_group.rule]]
id = "ssh-allow-p2"
direction = "ingress"
protocol = "tcp"
multiport = "22"
remote_ip_prefix = "0.0.0.0/0"
priority = 2
[[security_group.rule]]
id = "ssh-deny-p1"
direction = "ingress"
protocol = "tcp"
multiport = "22"
remote_ip_prefix = "198.51.100.0/24"
action = "deny"
priority = 1
[[security_group.rule]]
id = "web-allow"
direction = "ingress"
protocol = "tcp"
multiport = "80,443"
remote_ip_prefix = "0.0.0.0/0"
priority = 5
[[security_group.rule]]
id = "web-deny"
direction = "ingress"
protocol = "tcp"
multiport = "443"
remote_ip_prefix = "203.0.113.9"
action = "deny"
priority = 5
[[security_group.rule]]
id = "low-range"
direction = "ingress"
protocol = "udp"
multiport = "1-30"
remote_ip_prefix = "0.0.0.0/0"
[[security_group.rule]]
id = "icmp-in"
direction = "ingress"
protocol = "icmp"
remote_ip_prefix = "0.0.0.0/0"
[[security_group.rule]]
id = "gre-in"
direction = "ingress"
protocol = "47"
remote_ip_prefix = "0.0.0.0/0"
[[security_group.rule]]
id = "v6-in"
direction = "ingress"
ethertype = "IPv6"
protocol = "tcp"
multiport = "8080"
remote_ip_prefix = "::/0"
[[security_group.rule]]
id = "out-all"
direction = "egress"
remote_ip_prefix = "0.0.0.0/0"
priority = 100

[[security_group]]
id = "g2"
project = "p"
[[security_group.rule]]
id = "g2-sctp"
direction = "ingress"
protocol = 132
remote_ip_prefix = "0.0.0.0/0"
[[security_group.rule]]
id = "g2-ssh-never"
direction = "ingress"
protocol = "tcp"
multiport = "22"
remote_ip_prefix = "0.0.0.0/0"
action = "deny"

[[security_group]]
id = "g3"
project = "p"
[[security_group.rule]]
id = "pg-from-g1"
direction = "ingress"
protocol = "tcp"
multiport = "5432"
remote_group_id = "g1"
[[security_group.rule]]
id = "dns-from-g1"
direction = "ingress"
protocol = "udp"
multiport = "53"
remote_group_id = "g1"

[[network_acl]]
id = "acl-a"
project = "p"
[[network_acl.ingress_rule]]
name = "no-telnet"
action = "deny"
protocol = "tcp"
destination_port = "23"
[[network_acl.ingress_rule]]
name = "disabled-deny-all"
action = "deny"
enabled = false
[[network_acl.ingress_rule]]
name = "from-internet"
action = "allow"
source_ip_address = "0.0.0.0/0"
destination_ip_address = "10.0.1.0/24"
[[network_acl.ingress_rule]]
name = "v6-in"
action = "allow"
ip_version = 6
[[network_acl.egress_rule]]
name = "to-db"
action = "allow"
protocol = "tcp"
destination_ip_address = "10.0.2.0/24"
destination_port = "5432"
[[network_acl.egress_rule]]
name = "dns-to-db"
action = "allow"
protocol = "udp"
destination_ip_address = "10.0.2.0/24"
destination_port = 53
[[network_acl.egress_rule]]
name = "web-replies"
action = "allow"
protocol = "tcp"
source_port = "80"
"#;

struct Setup {
    engine: PolicyEngine,
    topology: Topology,
}

fn setup_with(capacity: usize) -> Setup {
    let inv = Inventory::from_toml("t.toml", &format!("{BASE}{RULES}")).unwrap();
    let topology = Topology::from_inventory(&inv);
    let engine = PolicyEngine::new(&inv, &topology, capacity);
    Setup { engine, topology }
}

fn setup() -> Setup {
    setup_with(1 << 16)
}

/// An engine for an inventory given whole.
fn setup_of(toml: &str) -> Setup {
    let inv = Inventory::from_toml("t.toml", toml).unwrap();
    let topology = Topology::from_inventory(&inv);
    let engine = PolicyEngine::new(&inv, &topology, 1 << 16);
    Setup { engine, topology }
}

/// A setup for the inventory after a change, succeeding `previous`.
fn successor(toml: &str, previous: &Setup) -> Setup {
    let mut next = setup_of(toml);
    next.engine.succeed(&previous.engine);
    next
}

#[derive(Debug, Clone, Copy)]
struct Q<'a> {
    port: &'a str,
    dir: Direction,
    src: &'a str,
    dst: &'a str,
    proto: u8,
    sport: u16,
    dport: u16,
    /// ICMP/ICMPv6 message type.
    icmp: Option<u8>,
}

fn q<'a>(
    port: &'a str,
    dir: Direction,
    src: &'a str,
    dst: &'a str,
    proto: u8,
    sport: u16,
    dport: u16,
) -> Q<'a> {
    Q {
        port,
        dir,
        src,
        dst,
        proto,
        sport,
        dport,
        icmp: None,
    }
}

fn icmpv6<'a>(port: &'a str, dir: Direction, src: &'a str, dst: &'a str, t: u8) -> Q<'a> {
    Q {
        icmp: Some(t),
        ..q(port, dir, src, dst, 58, 0, 0)
    }
}

impl Setup {
    /// Decides and returns (action, decided-by, policy-id, rule-id).
    fn ask(&mut self, at: u64, x: Q<'_>, flags: u8) -> (Action, String, String, String) {
        let pi = self
            .topology
            .ports
            .iter()
            .position(|p| p.id == x.port)
            .unwrap();
        let port = &self.topology.ports[pi];
        let tuple = FiveTuple::new(
            x.src.parse::<IpAddr>().unwrap(),
            x.dst.parse::<IpAddr>().unwrap(),
            x.sport,
            x.dport,
            IpProtocol(x.proto),
            x.icmp,
        );
        let d = self.engine.decide(
            Timestamp::from_secs(at),
            &FlowQuery {
                port,
                port_index: pi as u32,
                direction: x.dir,
                tuple,
                tcp_flags: flags,
            },
        );
        let r = self
            .topology
            .rules
            .get(d.rule)
            .expect("every decision names a rule");
        (
            d.action,
            r.stage.as_str().to_string(),
            r.owner.clone(),
            r.id.clone(),
        )
    }
}

use Action::{Accept as A, Reject as R};
use Direction::{Egress as Out, Ingress as In};

#[test]
fn every_rule_feature_with_its_deciding_rule() {
    let cases: Vec<(&str, Q<'_>, Action, &str, &str, &str)> = vec![
        (
            "priority 1 before 2",
            q("pa", In, "198.51.100.7", "10.0.1.10", 6, 5000, 22),
            R,
            "sg-ingress",
            "g1",
            "ssh-deny-p1",
        ),
        (
            "priority 2 when 1 does not match",
            q("pa", In, "192.0.2.1", "10.0.1.10", 6, 5000, 22),
            A,
            "sg-ingress",
            "g1",
            "ssh-allow-p2",
        ),
        (
            "deny before allow at equal priority",
            q("pa", In, "203.0.113.9", "10.0.1.10", 6, 5000, 443),
            R,
            "sg-ingress",
            "g1",
            "web-deny",
        ),
        (
            "list form of multiport",
            q("pa", In, "203.0.113.9", "10.0.1.10", 6, 5000, 80),
            A,
            "sg-ingress",
            "g1",
            "web-allow",
        ),
        (
            "range form, low end",
            q("pa", In, "192.0.2.1", "10.0.1.10", 17, 5000, 1),
            A,
            "sg-ingress",
            "g1",
            "low-range",
        ),
        (
            "range form, high end",
            q("pa", In, "192.0.2.1", "10.0.1.10", 17, 5000, 30),
            A,
            "sg-ingress",
            "g1",
            "low-range",
        ),
        (
            "range form, outside",
            q("pa", In, "192.0.2.1", "10.0.1.10", 17, 5000, 31),
            R,
            "sg-ingress",
            "-",
            "default-deny",
        ),
        (
            "icmp by name",
            q("pa", In, "192.0.2.1", "10.0.1.10", 1, 0, 0),
            A,
            "sg-ingress",
            "g1",
            "icmp-in",
        ),
        (
            "protocol by number as text",
            q("pa", In, "192.0.2.1", "10.0.1.10", 47, 0, 0),
            A,
            "sg-ingress",
            "g1",
            "gre-in",
        ),
        (
            "protocol by number, second group",
            q("pa", In, "192.0.2.1", "10.0.1.10", 132, 9, 9),
            A,
            "sg-ingress",
            "g2",
            "g2-sctp",
        ),
        (
            "first group decides before the second's deny",
            q("pa", In, "192.0.2.1", "10.0.1.10", 6, 1, 22),
            A,
            "sg-ingress",
            "g1",
            "ssh-allow-p2",
        ),
        (
            "ethertype IPv6 rule",
            q("pa", In, "2001:db8:9::1", "2001:db8:1::10", 6, 1, 8080),
            A,
            "sg-ingress",
            "g1",
            "v6-in",
        ),
        (
            "IPv4 prefix rules do not match IPv6",
            q("pa", In, "2001:db8:9::1", "2001:db8:1::10", 6, 1, 80),
            R,
            "sg-ingress",
            "-",
            "default-deny",
        ),
        (
            "ACL order: telnet denied first",
            q("pa", In, "192.0.2.1", "10.0.1.10", 6, 5000, 23),
            R,
            "acl-ingress",
            "acl-a",
            "no-telnet",
        ),
        (
            "ACL: disabled rule skipped",
            q("pa", In, "192.0.2.1", "10.0.1.10", 6, 5000, 80),
            A,
            "sg-ingress",
            "g1",
            "web-allow",
        ),
        (
            "ACL default deny",
            q("pa", Out, "10.0.1.10", "192.0.2.1", 6, 5000, 443),
            R,
            "acl-egress",
            "acl-a",
            "default-deny",
        ),
        (
            "egress: SG then ACL, ACL decides",
            q("pa", Out, "10.0.1.10", "10.0.2.20", 6, 5000, 5432),
            A,
            "acl-egress",
            "acl-a",
            "to-db",
        ),
        (
            "ACL source port",
            q("pa", Out, "10.0.1.10", "192.0.2.1", 6, 80, 5000),
            A,
            "acl-egress",
            "acl-a",
            "web-replies",
        ),
        (
            "same subnet always allowed",
            q("pa", Out, "10.0.1.10", "10.0.1.11", 6, 5000, 9999),
            A,
            "acl-egress",
            "acl-a",
            "implicit-allow",
        ),
        (
            "224.0.0.0/24 always allowed",
            q("pa", Out, "10.0.1.10", "224.0.0.251", 17, 5353, 5353),
            A,
            "acl-egress",
            "acl-a",
            "implicit-allow",
        ),
        (
            "metadata on port 80 always allowed",
            q("pa", Out, "10.0.1.10", "169.254.169.254", 6, 5000, 80),
            A,
            "acl-egress",
            "acl-a",
            "implicit-allow",
        ),
        (
            "metadata on other ports is not",
            q("pa", Out, "10.0.1.10", "169.254.169.254", 6, 5000, 81),
            R,
            "acl-egress",
            "acl-a",
            "default-deny",
        ),
        (
            "100.125.0.0/16 always allowed",
            q("pa", Out, "10.0.1.10", "100.125.3.4", 17, 5000, 123),
            A,
            "acl-egress",
            "acl-a",
            "implicit-allow",
        ),
        (
            "remote group member",
            q("pb", In, "10.0.1.10", "10.0.2.20", 6, 5000, 5432),
            A,
            "sg-ingress",
            "g3",
            "pg-from-g1",
        ),
        (
            "not a remote group member",
            q("pb", In, "10.0.1.11", "10.0.2.20", 6, 5000, 5432),
            R,
            "sg-ingress",
            "-",
            "default-deny",
        ),
        (
            "no egress rule: default deny",
            q("pb", Out, "10.0.2.20", "192.0.2.1", 17, 5000, 53),
            R,
            "sg-egress",
            "-",
            "default-deny",
        ),
    ];
    for (name, x, action, stage, owner, rule) in cases {
        let mut s = setup();
        let got = s.ask(1000, x, 0);
        assert_eq!(
            got,
            (
                action,
                stage.to_string(),
                owner.to_string(),
                rule.to_string()
            ),
            "{name}"
        );
    }
}

#[test]
fn tcp_return_traffic_across_subnets_and_an_acl_is_accepted() {
    let mut s = setup();
    // Request: pa (subnet a, ACL) -> pb (subnet b) on 5432.
    assert_eq!(
        s.ask(
            100,
            q("pa", Out, "10.0.1.10", "10.0.2.20", 6, 40000, 5432),
            0x02
        )
        .0,
        A
    );
    assert_eq!(
        s.ask(
            100,
            q("pb", In, "10.0.1.10", "10.0.2.20", 6, 40000, 5432),
            0x02
        )
        .0,
        A
    );
    // Reply: pb has no egress rule and the ACL has no ingress rule for it,
    // yet both stateful checks let it through.
    let back = q("pb", Out, "10.0.2.20", "10.0.1.10", 6, 5432, 40000);
    assert_eq!(
        s.ask(101, back, 0x12),
        (A, "conntrack".into(), "-".into(), "stateful-return".into())
    );
    let back_in = q("pa", In, "10.0.2.20", "10.0.1.10", 6, 5432, 40000);
    assert_eq!(s.ask(101, back_in, 0x12).3, "stateful-return");
    // Without the request, the same reply is judged by the rules.
    let mut fresh = setup();
    assert_eq!(fresh.ask(101, back, 0x12).0, R);
}

#[test]
fn infrastructure_traffic_is_always_allowed_and_never_a_connection() {
    let mut s = setup();
    let (a, b) = ("2001:db8:1::10", "2001:db8:2::20");
    let implicit = |stage: &str, owner: &str| {
        (
            A,
            stage.to_string(),
            owner.to_string(),
            "implicit-allow".to_string(),
        )
    };
    // Port pa (subnet sa, ACL acl-a): its groups allow no ICMPv6 at all.
    assert_eq!(
        s.ask(100, icmpv6("pa", In, b, a, 135), 0),
        implicit("sg-ingress", "-")
    );
    assert_eq!(
        s.ask(100, icmpv6("pa", Out, a, "ff02::16", 143), 0),
        implicit("acl-egress", "acl-a")
    );
    assert_eq!(
        s.ask(100, icmpv6("pa", Out, a, "ff02::2", 133), 0),
        implicit("acl-egress", "acl-a")
    );
    // An echo request between the same addresses meets the rules, and the
    // neighbour solicitation before it opened no connection to return on.
    let echo = s.ask(101, icmpv6("pa", In, b, a, 128), 0);
    assert_eq!(echo.0, R, "{echo:?}");
    assert_ne!(echo.3, "stateful-return");
    let reply_to_ns = s.ask(102, icmpv6("pa", Out, a, b, 129), 0);
    assert_ne!(reply_to_ns.3, "stateful-return", "{reply_to_ns:?}");
    // DHCP, both ends on its ports; a flow merely from port 68 is not.
    assert_eq!(
        s.ask(
            103,
            q("pa", Out, "0.0.0.0", "255.255.255.255", 17, 68, 67),
            0
        ),
        implicit("acl-egress", "acl-a")
    );
    assert_eq!(
        s.ask(103, q("pb", In, "10.0.2.1", "10.0.2.20", 17, 67, 68), 0),
        implicit("sg-ingress", "-")
    );
    assert_eq!(
        s.ask(104, q("pb", In, "10.0.1.99", "10.0.2.20", 17, 68, 5432), 0)
            .0,
        R
    );
    // Counted: implicit-allow decided.
    let t = &s.topology.rules;
    assert!(
        s.engine
            .last_decided(
                t.sg_implicit_allow(vpcflow_core::inventory::rules::RuleDirection::Ingress)
            )
            .is_some()
    );
}

#[test]
fn udp_request_and_response() {
    let mut s = setup();
    assert_eq!(
        s.ask(
            100,
            q("pa", Out, "10.0.1.10", "10.0.2.20", 17, 40000, 53),
            0
        )
        .3,
        "dns-to-db"
    );
    assert_eq!(
        s.ask(100, q("pb", In, "10.0.1.10", "10.0.2.20", 17, 40000, 53), 0)
            .3,
        "dns-from-g1"
    );
    assert_eq!(
        s.ask(
            110,
            q("pb", Out, "10.0.2.20", "10.0.1.10", 17, 53, 40000),
            0
        )
        .3,
        "stateful-return"
    );
    assert_eq!(
        s.ask(110, q("pa", In, "10.0.2.20", "10.0.1.10", 17, 53, 40000), 0)
            .3,
        "stateful-return"
    );
}

#[test]
fn a_rejected_connection_stays_rejected_and_so_does_its_reply() {
    let mut s = setup();
    let syn = q("pb", In, "192.0.2.1", "10.0.2.20", 6, 40000, 22);
    let first = s.ask(100, syn, 0x02);
    assert_eq!(first.0, R);
    // Retransmissions and later windows: the same verdict and rule.
    assert_eq!(s.ask(700, syn, 0x02), first);
    // The reply to the rejected SYN is rejected by the rule that rejected it.
    let reply = s.ask(
        701,
        q("pb", Out, "10.0.2.20", "192.0.2.1", 6, 22, 40000),
        0x14,
    );
    assert_eq!(reply, first);
}

#[test]
fn connections_expire_after_their_timeouts() {
    // TCP: 600 s without activity.
    let mut s = setup();
    s.ask(
        0,
        q("pb", In, "10.0.1.10", "10.0.2.20", 6, 40000, 5432),
        0x02,
    );
    assert_eq!(
        s.ask(
            599,
            q("pb", Out, "10.0.2.20", "10.0.1.10", 6, 5432, 40000),
            0x10
        )
        .0,
        A
    );
    assert_eq!(
        s.ask(
            1_200,
            q("pb", Out, "10.0.2.20", "10.0.1.10", 6, 5432, 40000),
            0x10
        )
        .0,
        R
    );
    // TCP after FIN: 30 s.
    let mut s = setup();
    s.ask(
        0,
        q("pb", In, "10.0.1.10", "10.0.2.20", 6, 40001, 5432),
        0x11,
    );
    assert_eq!(
        s.ask(
            31,
            q("pb", Out, "10.0.2.20", "10.0.1.10", 6, 5432, 40001),
            0x10
        )
        .0,
        R
    );
    // UDP: 30 s unanswered ...
    let mut s = setup();
    s.ask(0, q("pb", In, "10.0.1.10", "10.0.2.20", 17, 40000, 53), 0);
    assert_eq!(
        s.ask(31, q("pb", Out, "10.0.2.20", "10.0.1.10", 17, 53, 40000), 0)
            .0,
        R
    );
    // ... 180 s once answered.
    let mut s = setup();
    s.ask(0, q("pb", In, "10.0.1.10", "10.0.2.20", 17, 40000, 53), 0);
    assert_eq!(
        s.ask(20, q("pb", Out, "10.0.2.20", "10.0.1.10", 17, 53, 40000), 0)
            .0,
        A
    );
    assert_eq!(
        s.ask(
            190,
            q("pb", Out, "10.0.2.20", "10.0.1.10", 17, 53, 40000),
            0
        )
        .0,
        A
    );
    assert_eq!(
        s.ask(
            400,
            q("pb", Out, "10.0.2.20", "10.0.1.10", 17, 53, 40000),
            0
        )
        .0,
        R
    );
    // ICMP: 30 s.
    let mut s = setup();
    s.ask(0, q("pa", In, "192.0.2.1", "10.0.1.10", 1, 0, 0), 0);
    assert_eq!(
        s.ask(10, q("pa", Out, "10.0.1.10", "192.0.2.1", 1, 0, 0), 0)
            .3,
        "stateful-return"
    );
    assert_eq!(
        s.ask(100, q("pa", Out, "10.0.1.10", "192.0.2.1", 1, 0, 0), 0)
            .3,
        "default-deny"
    );
}

#[test]
fn the_table_stays_bounded_under_a_flood() {
    let mut s = setup_with(1_000);
    for i in 0..50_000u32 {
        let src = format!("192.0.{}.{}", (i >> 8) & 255, i & 255);
        s.ask(
            u64::from(i / 1000),
            q("pa", In, &src, "10.0.1.10", 6, (i % 60_000) as u16, 80),
            0x02,
        );
    }
    assert!(s.engine.connections() <= 1_000);
    assert!(s.engine.evicted() > 40_000, "{}", s.engine.evicted());
    // The newest connections are still tracked.
    let last = q("pa", Out, "10.0.1.10", "192.0.195.79", 6, 80, 49_999);
    assert_eq!(s.ask(50, last, 0x12).3, "stateful-return");
}

#[test]
fn verdicts_do_not_depend_on_the_order_ports_are_asked() {
    let flows = [
        q("pa", Out, "10.0.1.10", "10.0.2.20", 6, 40000, 5432),
        q("pb", In, "10.0.1.10", "10.0.2.20", 6, 40000, 5432),
        q("pb", Out, "10.0.2.20", "10.0.1.10", 6, 5432, 40000),
        q("pa", In, "10.0.2.20", "10.0.1.10", 6, 5432, 40000),
        q("pb", In, "192.0.2.1", "10.0.2.20", 6, 1, 22),
        q("pb", Out, "10.0.2.20", "192.0.2.1", 6, 22, 1),
    ];
    let run = |order: &[usize]| {
        let mut s = setup();
        let mut got = vec![None; flows.len()];
        for &i in order {
            got[i] = Some(s.ask(100 + i as u64, flows[i], 0));
        }
        got
    };
    // Each port's questions keep their relative order (pa: 0, 3; pb: 1, 2,
    // 4, 5); the two ports interleave differently.
    let a = run(&[0, 1, 2, 3, 4, 5]);
    for order in [[0, 3, 1, 2, 4, 5], [1, 2, 4, 5, 0, 3], [1, 0, 2, 4, 3, 5]] {
        assert_eq!(run(&order), a, "{order:?}");
    }
    assert_eq!(a[2].as_ref().unwrap().3, "stateful-return");
}

/// The inventory of [`BASE`] and [`RULES`] after a change: port pa2 is gone
/// (pb's topology index shifts), g1 has a new first rule (every later ref
/// shifts), and g3's 5432 rule is replaced by one for 5433.
fn changed() -> String {
    let base = BASE.replace(
        "[[port]]\nid = \"pa2\"\nsubnet = \"sa\"\nips = [\"10.0.1.11\"]\nsecurity_groups = [\"g3\"]\n",
        "",
    );
    let rules = RULES
        .replace(
            "id = \"g1\"\nproject = \"p\"\n",
            "id = \"g1\"\nproject = \"p\"\n[[security_group.rule]]\nid = \"rdp\"\ndirection = \"ingress\"\nprotocol = \"tcp\"\nmultiport = \"3389\"\nremote_ip_prefix = \"0.0.0.0/0\"\n",
        )
        .replace(
            "id = \"pg-from-g1\"\ndirection = \"ingress\"\nprotocol = \"tcp\"\nmultiport = \"5432\"",
            "id = \"pg-5433\"\ndirection = \"ingress\"\nprotocol = \"tcp\"\nmultiport = \"5433\"",
        );
    assert_ne!(base, BASE, "the change removes pa2");
    assert!(rules.contains("pg-5433") && rules.contains("rdp"));
    format!("{base}{rules}")
}

#[test]
fn connections_open_before_a_change_keep_their_verdicts() {
    let mut old = setup();
    let request_out = q("pa", Out, "10.0.1.10", "10.0.2.20", 6, 40000, 5432);
    let request_in = q("pb", In, "10.0.1.10", "10.0.2.20", 6, 40000, 5432);
    assert_eq!(old.ask(100, request_out, 0x02).3, "to-db");
    assert_eq!(old.ask(100, request_in, 0x02).3, "pg-from-g1");

    let mut new = successor(&changed(), &old);
    // The reply meets connection tracking, not the new rules (pb has no
    // egress rule at all).
    let reply = q("pb", Out, "10.0.2.20", "10.0.1.10", 6, 5432, 40000);
    assert_eq!(
        new.ask(101, reply, 0x12),
        (A, "conntrack".into(), "-".into(), "stateful-return".into())
    );
    let reply_in = q("pa", In, "10.0.2.20", "10.0.1.10", 6, 5432, 40000);
    assert_eq!(new.ask(101, reply_in, 0x12).3, "stateful-return");
    // The request goes on: its rule is gone, the connection stays accepted.
    assert_eq!(
        new.ask(160, request_in, 0x10),
        (
            A,
            "conntrack".into(),
            "-".into(),
            "tracked-connection".into()
        )
    );
    // Its egress rule still exists (renumbered): named as before.
    assert_eq!(new.ask(160, request_out, 0x10).3, "to-db");
    // Two connections (one per port) were taken over.
    assert_eq!(new.engine.stats().inherited, 2);
    // A new connection meets the new rules.
    let other = q("pb", In, "10.0.1.10", "10.0.2.20", 6, 40001, 5432);
    assert_eq!(new.ask(161, other, 0x02).0, R);
    // Without the handover, the reply would be judged afresh: REJECT.
    let mut fresh = setup_of(&changed());
    assert_eq!(fresh.ask(101, reply, 0x12).0, R);
}

#[test]
fn rejected_connections_meet_the_new_rules() {
    let mut old = setup();
    let ssh = q("pa", In, "198.51.100.7", "10.0.1.10", 6, 5000, 22);
    assert_eq!(old.ask(100, ssh, 0x02).3, "ssh-deny-p1");
    let allowed = RULES.replace(
        "remote_ip_prefix = \"198.51.100.0/24\"",
        "remote_ip_prefix = \"192.0.2.0/24\"",
    );
    let mut new = successor(&format!("{BASE}{allowed}"), &old);
    // The rule that let it in takes effect at once.
    assert_eq!(
        new.ask(101, ssh, 0x02),
        (A, "sg-ingress".into(), "g1".into(), "ssh-allow-p2".into())
    );
    assert_eq!(new.engine.stats().inherited, 0);
    assert_eq!(new.engine.stats().evaluated, 1);
    // The old engine, closing its window, keeps its own verdict.
    assert_eq!(old.ask(101, ssh, 0x10).0, R);
}

#[test]
fn tracking_timeouts_run_on_across_a_change() {
    let mut old = setup();
    let dns = q("pa", Out, "10.0.1.10", "10.0.2.20", 17, 40000, 53);
    assert_eq!(old.ask(100, dns, 0).0, A);
    let mut new = successor(&changed(), &old);
    // Unanswered UDP is forgotten after 30 s, whichever engine asks.
    let late_reply = q("pa", In, "10.0.2.20", "10.0.1.10", 17, 53, 40000);
    assert_eq!(new.ask(131, late_reply, 0).3, "default-deny");
}

#[test]
fn a_retired_engine_hands_over_what_it_still_tracks() {
    let mut e0 = setup();
    let a = q("pa", Out, "10.0.1.10", "10.0.2.20", 6, 40000, 5432);
    let b = q("pa", Out, "10.0.1.10", "10.0.2.20", 6, 40002, 5432);
    e0.ask(100, a, 0x02);
    let e1 = successor(&changed(), &e0);
    // A late packet of e0's window opens b after e1 exists.
    e0.ask(101, b, 0x02);
    let mut e2 = successor(&format!("{BASE}{RULES}"), &e1);
    // Found through e1 in e0 (two changes in one window).
    let reply_a = q("pa", In, "10.0.2.20", "10.0.1.10", 6, 5432, 40000);
    assert_eq!(e2.ask(102, reply_a, 0x12).3, "stateful-return");
    // e0 retires: e1 takes b over; then e1 retires into e2.
    e1.engine.retire_predecessor(Timestamp::from_secs(103));
    drop(e0);
    e2.engine.retire_predecessor(Timestamp::from_secs(103));
    drop(e1);
    assert_eq!(e2.engine.connections(), 2);
    let reply_b = q("pa", In, "10.0.2.20", "10.0.1.10", 6, 5432, 40002);
    assert_eq!(e2.ask(104, reply_b, 0x12).3, "stateful-return");
    assert_eq!(e2.engine.stats().evaluated, 0);
}
