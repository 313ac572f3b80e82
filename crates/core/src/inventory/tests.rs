use super::*;

const EXAMPLE: &str = include_str!("../../../../examples/vpc.toml");

fn err(text: &str) -> String {
    Inventory::from_toml("bad.toml", text)
        .unwrap_err()
        .to_string()
}

#[test]
fn the_shared_example_is_accepted_unchanged() {
    let inv = Inventory::from_toml("vpc.toml", EXAMPLE).unwrap();
    assert_eq!(inv.region, "ab-cdef-3");
    assert_eq!(inv.window.secs(), 600);
    assert_eq!(inv.max_records_per_window, 400_000);
    assert_eq!(inv.ports.len(), 3);
    assert_eq!(inv.security_groups[0].rules.len(), 4);
    assert_eq!(inv.network_acls[0].ingress[0].id, "no-telnet");
    assert_eq!(
        inv.network_acls[0].ingress[0].destination_ports,
        Some((23, 23))
    );
    // The bare IP remote is a /32 and the rule without ethertype takes the prefix's.
    let deny = &inv.security_groups[0].rules[2];
    assert_eq!(
        deny.remote,
        Remote::Prefix("203.0.113.66/32".parse().unwrap())
    );
    assert_eq!(deny.ethertype, Some(IpVersion::V4));
    assert_eq!(deny.action, RuleAction::Deny);
    // sg-db's rules name sg-web as remote group.
    assert_eq!(inv.security_groups[1].rules[0].remote, Remote::Group(0));
    // The VPC flow log monitors all three ports; the port flow log one.
    assert_eq!(inv.ports_of(&inv.flow_logs[0]), vec![0, 1, 2]);
    assert_eq!(inv.ports_of(&inv.flow_logs[1]), vec![2]);
    assert_eq!(inv.flow_logs[1].traffic_type, TrafficType::Reject);
    assert!(inv.flow_logs[0].admin_state);
}

#[test]
fn unknown_field_is_named_with_file_and_line() {
    let e = err(
        "region = \"r\"\n[[vpc]]\nid = \"v\"\nproject = \"p\"\ncidr = \"10.0.0.0/8\"\ncolour = \"red\"\n",
    );
    assert!(e.starts_with("bad.toml: "), "{e}");
    assert!(e.contains("colour"), "{e}");
    assert!(e.contains("line 6"), "{e}");
}

fn with(extra: &str) -> String {
    format!("{EXAMPLE}\n{extra}")
}

#[test]
fn dangling_reference_names_item_and_field() {
    let e = err(&with(
        "[[port]]\nid = \"p9\"\nsubnet = \"nope\"\nips = [\"192.168.0.9\"]\nsecurity_groups = [\"6c5b4a39-8e7f-4d21-b0a9-c8d7e6f5a4b3\"]\n",
    ));
    assert_eq!(
        e,
        "bad.toml: port 'p9': field `subnet`: no subnet with id 'nope'"
    );
}

#[test]
fn bad_cidr_is_named() {
    let e = err(
        "[[project]]\nid = \"p\"\n[[vpc]]\nid = \"v\"\nproject = \"p\"\ncidr = \"10.0.0.0/33\"\n",
    );
    assert!(e.contains("vpc 'v': field `cidr`"), "{e}");
    assert!(e.contains("10.0.0.0/33"), "{e}");
}

#[test]
fn duplicate_id_is_refused() {
    let e = err(&with(
        "[[project]]\nid = \"5f67944957444bd6bb4fe3b367de8f3d\"\n",
    ));
    assert_eq!(
        e,
        "bad.toml: project '5f67944957444bd6bb4fe3b367de8f3d': field `id`: duplicate id: another item of the same kind has it"
    );
}

#[test]
fn overlapping_port_ips_are_refused() {
    let e = err(&with(
        "[[port]]\nid = \"p9\"\nsubnet = \"93f4cb2d-0e0e-4e2d-a705-e3817bd7ca45\"\nips = [\"192.168.0.154\"]\nsecurity_groups = [\"6c5b4a39-8e7f-4d21-b0a9-c8d7e6f5a4b3\"]\n",
    ));
    assert!(
        e.contains("port 'p9': field `ips`: 192.168.0.154 is already a fixed IP of port '1d515d18-1b36-47dc-a983-bd6512aed4bd'"),
        "{e}"
    );
}

#[test]
fn port_ip_outside_its_subnet_is_refused() {
    let e = err(&with(
        "[[port]]\nid = \"p9\"\nsubnet = \"93f4cb2d-0e0e-4e2d-a705-e3817bd7ca45\"\nips = [\"192.168.7.1\"]\nsecurity_groups = [\"6c5b4a39-8e7f-4d21-b0a9-c8d7e6f5a4b3\"]\n",
    ));
    assert!(e.contains("192.168.7.1 is not inside subnet"), "{e}");
}

#[test]
fn duplicate_flow_log_and_quota() {
    let dup = "[[flow_log]]\nid = \"dup\"\nproject = \"5f67944957444bd6bb4fe3b367de8f3d\"\nname = \"again\"\nresource_type = \"vpc\"\nresource_id = \"80ee2ed7-605d-49b4-ac6b-6e581acd35a3\"\ntraffic_type = \"all\"\nlog_group_id = \"a1b2c3d4-0000-4000-8000-000000000001\"\nlog_topic_id = \"a1b2c3d4-0000-4000-8000-000000000002\"\n";
    let e = err(&with(dup));
    assert!(
        e.contains("flow_log 'dup' (again)") && e.contains("duplicate flow log"),
        "{e}"
    );

    let mut extra = String::new();
    for i in 0..9 {
        extra.push_str(&format!(
            "[[flow_log]]\nid = \"q{i}\"\nproject = \"5f67944957444bd6bb4fe3b367de8f3d\"\nname = \"q{i}\"\nresource_type = \"port\"\nresource_id = \"1d515d18-1b36-47dc-a983-bd6512aed4bd\"\ntraffic_type = \"{}\"\nlog_group_id = \"a1b2c3d4-0000-4000-8000-000000000001\"\nlog_topic_id = \"a1b2c3d4-0000-4000-8000-00000000000{}\"\n",
            ["all", "accept", "reject"][i % 3],
            2 + i / 3,
        ));
    }
    // 2 + 9 = 11 flow logs, but topic ...004 does not exist: add it first.
    let topic = "[[log_topic]]\nid = \"a1b2c3d4-0000-4000-8000-000000000004\"\nlog_group = \"a1b2c3d4-0000-4000-8000-000000000001\"\n";
    let e = err(&with(&format!("{topic}{extra}")));
    assert!(
        e.contains("quota exceeded: at most 10 flow logs per project"),
        "{e}"
    );
}

#[test]
fn rule_errors_name_the_rule() {
    let e = err(&with(
        "[[security_group]]\nid = \"sg3\"\nproject = \"5f67944957444bd6bb4fe3b367de8f3d\"\n[[security_group.rule]]\ndirection = \"ingress\"\nmultiport = \"22-\"\nremote_ip_prefix = \"0.0.0.0/0\"\n",
    ));
    assert!(
        e.contains("security_group 'sg3' rule #1: field `multiport`"),
        "{e}"
    );
    let e = err(&with(
        "[[security_group]]\nid = \"sg3\"\nproject = \"5f67944957444bd6bb4fe3b367de8f3d\"\n[[security_group.rule]]\ndirection = \"ingress\"\npriority = 0\nremote_ip_prefix = \"0.0.0.0/0\"\n",
    ));
    assert!(e.contains("field `priority`: 0 is outside 1..=100"), "{e}");
    let e = err(&with(
        "[[security_group]]\nid = \"sg3\"\nproject = \"5f67944957444bd6bb4fe3b367de8f3d\"\n[[security_group.rule]]\ndirection = \"ingress\"\nethertype = \"IPv6\"\nremote_ip_prefix = \"10.0.0.0/8\"\n",
    ));
    assert!(e.contains("does not match the rule's ethertype"), "{e}");
}

#[test]
fn window_and_cap_bounds() {
    assert!(
        err("window_seconds = 30\n").contains("field `window_seconds`: 30 is outside 60..=600")
    );
    assert!(err("max_records_per_window = 0\n").contains("must be at least 1"));
    let ok = Inventory::from_toml("x", "window_seconds = 60\n").unwrap();
    assert_eq!(ok.window.secs(), 60);
}

#[test]
fn ids_must_be_printable_tokens() {
    let e = err("[[project]]\nid = \"has space\"\n");
    assert!(e.contains("is not a valid id"), "{e}");
}

#[test]
fn the_same_document_as_json_gives_the_same_inventory() {
    let table: toml::Table = toml::from_str(EXAMPLE).unwrap();
    let json = serde_json::to_value(&table).unwrap();
    assert_eq!(
        Inventory::from_json("db", &json).unwrap(),
        Inventory::from_toml("vpc.toml", EXAMPLE).unwrap()
    );
    let mut bad = json.clone();
    bad["port"][0]["colour"] = serde_json::json!("red");
    let e = Inventory::from_json("db", &bad).unwrap_err().to_string();
    assert!(e.starts_with("db: unknown field `colour`"), "{e}");
    let mut dangling = json;
    dangling["port"][0]["subnet"] = serde_json::json!("nope");
    let e = Inventory::from_json("db", &dangling)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("field `subnet`: no subnet with id 'nope'"),
        "{e}"
    );
}

/// A second project with a VPC over the same addresses as the example's,
/// a subnet, a security group and a log group with a topic.
const OTHER: &str = "[[project]]\nid = \"other\"\n\
    [[vpc]]\nid = \"ov\"\nproject = \"other\"\ncidr = \"192.168.0.0/16\"\n\
    [[subnet]]\nid = \"os\"\nvpc = \"ov\"\ncidr = \"192.168.0.0/24\"\n\
    [[security_group]]\nid = \"og\"\nproject = \"other\"\n\
    [[log_group]]\nid = \"olg\"\nproject = \"other\"\n\
    [[log_topic]]\nid = \"olt\"\nlog_group = \"olg\"\n";
const A: &str = "5f67944957444bd6bb4fe3b367de8f3d";

fn with_other(extra: &str) -> String {
    with(&format!("{OTHER}{extra}"))
}

/// Hardening finding: project A's ports could sit in B's groups, and B's
/// flow log could cover A's VPC, writing A's traffic into B's log group.
#[test]
fn references_across_projects_are_refused() {
    Inventory::from_toml("ok.toml", &with_other("")).unwrap();
    let e = err(&with_other(
        "[[port]]\nid = \"op\"\nsubnet = \"os\"\nips = [\"192.168.0.77\"]\nsecurity_groups = [\"6c5b4a39-8e7f-4d21-b0a9-c8d7e6f5a4b3\"]\n",
    ));
    assert!(
        e.contains(&format!("port 'op': field `security_groups`: security group '6c5b4a39-8e7f-4d21-b0a9-c8d7e6f5a4b3' belongs to project '{A}', not to the port's project 'other'")),
        "{e}"
    );
    let flow_log = |resource_type: &str, resource: &str, group: &str, topic: &str| {
        format!(
            "[[flow_log]]\nid = \"ofl\"\nproject = \"other\"\nname = \"theirs\"\nresource_type = \"{resource_type}\"\nresource_id = \"{resource}\"\ntraffic_type = \"all\"\nlog_group_id = \"{group}\"\nlog_topic_id = \"{topic}\"\n"
        )
    };
    let e = err(&with_other(&flow_log(
        "vpc",
        "80ee2ed7-605d-49b4-ac6b-6e581acd35a3",
        "olg",
        "olt",
    )));
    assert!(
        e.contains(&format!("flow_log 'ofl' (theirs): field `resource_id`: it belongs to project '{A}', not to the flow log's project 'other'")),
        "{e}"
    );
    let e = err(&with_other(&flow_log(
        "vpc",
        "ov",
        "a1b2c3d4-0000-4000-8000-000000000001",
        "a1b2c3d4-0000-4000-8000-000000000002",
    )));
    assert!(
        e.contains("field `log_group_id`: it belongs to project"),
        "{e}"
    );
    Inventory::from_toml("ok.toml", &with_other(&flow_log("vpc", "ov", "olg", "olt"))).unwrap();
    let e = err(&with_other(
        "[[subnet]]\nid = \"os2\"\nvpc = \"ov\"\ncidr = \"192.168.1.0/24\"\nnetwork_acl = \"0b9a7c3e-4f6d-4c7a-9a51-2d8f3e1c6b70\"\n",
    ));
    assert!(
        e.contains("subnet 'os2': field `network_acl`: network acl '0b9a7c3e-4f6d-4c7a-9a51-2d8f3e1c6b70' belongs to project"),
        "{e}"
    );
    let e = err(&with_other(
        "[[security_group]]\nid = \"og2\"\nproject = \"other\"\n[[security_group.rule]]\ndirection = \"ingress\"\nremote_group_id = \"6c5b4a39-8e7f-4d21-b0a9-c8d7e6f5a4b3\"\n",
    ));
    assert!(
        e.contains("security_group 'og2' rule #1: field `remote_group_id`: security group '6c5b4a39-8e7f-4d21-b0a9-c8d7e6f5a4b3' belongs to project"),
        "{e}"
    );
}

#[test]
fn overlapping_subnets_of_one_vpc_are_refused() {
    let e = err(&with(
        "[[subnet]]\nid = \"s9\"\nvpc = \"80ee2ed7-605d-49b4-ac6b-6e581acd35a3\"\ncidr = \"192.168.0.128/25\"\n",
    ));
    assert!(
        e.contains("subnet 's9': field `cidr`: overlaps subnet '93f4cb2d-0e0e-4e2d-a705-e3817bd7ca45' of the same vpc"),
        "{e}"
    );
    let e = err(&with(
        "[[subnet]]\nid = \"s9\"\nvpc = \"80ee2ed7-605d-49b4-ac6b-6e581acd35a3\"\ncidr = \"192.168.0.0/16\"\n",
    ));
    assert!(e.contains("overlaps subnet"), "{e}");
    // Beside them, and in another VPC over the same addresses: fine.
    Inventory::from_toml(
        "ok.toml",
        &with_other(
            "[[subnet]]\nid = \"s9\"\nvpc = \"80ee2ed7-605d-49b4-ac6b-6e581acd35a3\"\ncidr = \"192.168.4.0/24\"\n",
        ),
    )
    .unwrap();
}

/// Hardening finding: the live inventory merged every project and refused
/// tenant B's port for reusing tenant A's address, freezing A's capture.
/// In the project scope addresses are unique per project only.
#[test]
fn addresses_are_unique_per_project_in_the_project_scope() {
    let reused = with_other(
        "[[port]]\nid = \"op\"\nsubnet = \"os\"\nips = [\"192.168.0.154\"]\nsecurity_groups = [\"og\"]\n",
    );
    let e = err(&reused);
    assert!(e.contains("192.168.0.154 is already a fixed IP"), "{e}");
    let doc: serde_json::Value = toml::from_str(&reused).unwrap();
    let inv = Inventory::from_json_scoped("live", &doc, AddressScope::Project).unwrap();
    assert_eq!(inv.ports.len(), 4);
    // Within one project, still one port per address.
    let twice = with_other(
        "[[port]]\nid = \"op\"\nsubnet = \"os\"\nips = [\"192.168.0.9\"]\nsecurity_groups = [\"og\"]\n\
         [[port]]\nid = \"op2\"\nsubnet = \"os\"\nips = [\"192.168.0.9\"]\nsecurity_groups = [\"og\"]\n",
    );
    let doc: serde_json::Value = toml::from_str(&twice).unwrap();
    let e = Inventory::from_json_scoped("live", &doc, AddressScope::Project)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("192.168.0.9 is already a fixed IP of port 'op'"),
        "{e}"
    );
}

#[test]
fn exporter_interfaces_are_both_given_valid_and_one_port_each() {
    let port = |id: &str, ip: &str, extra: &str| {
        format!(
            "[[port]]\nid = \"{id}\"\nsubnet = \"93f4cb2d-0e0e-4e2d-a705-e3817bd7ca45\"\nips = [\"{ip}\"]\nsecurity_groups = [\"6c5b4a39-8e7f-4d21-b0a9-c8d7e6f5a4b3\"]\n{extra}"
        )
    };
    let ok = Inventory::from_toml(
        "ok.toml",
        &with(&port(
            "p9",
            "192.168.0.9",
            "exporter = \"192.0.2.1\"\nif_index = 7\n",
        )),
    )
    .unwrap();
    let p9 = ok.ports.iter().find(|p| p.id == "p9").unwrap();
    assert_eq!(
        p9.exporter_interface,
        Some(("192.0.2.1".parse().unwrap(), 7))
    );
    let e = err(&with(&port(
        "p9",
        "192.168.0.9",
        "exporter = \"192.0.2.1\"\n",
    )));
    assert!(e.contains("port 'p9': field `if_index`"), "{e}");
    let e = err(&with(&port("p9", "192.168.0.9", "if_index = 7\n")));
    assert!(e.contains("port 'p9': field `exporter`"), "{e}");
    let e = err(&with(&port(
        "p9",
        "192.168.0.9",
        "exporter = \"sw1\"\nif_index = 7\n",
    )));
    assert!(e.contains("`sw1` is not an IP address"), "{e}");
    let e = err(&with(&format!(
        "{}{}",
        port(
            "p9",
            "192.168.0.9",
            "exporter = \"192.0.2.1\"\nif_index = 7\n"
        ),
        port(
            "p8",
            "192.168.0.8",
            "exporter = \"192.0.2.1\"\nif_index = 7\n"
        )
    )));
    assert!(
        e.contains(
            "port 'p8': field `if_index`: interface 7 of exporter 192.0.2.1 is already port 'p9'"
        ),
        "{e}"
    );
}

#[test]
fn an_agent_on_a_host_monitors_only_the_ports_bound_to_it() {
    // The web port on hv-1, the db port on hv-2, the third unbound.
    let text = EXAMPLE
        .replacen(
            "interface = \"tap1d515d18-1b\"",
            "host = \"hv-1\"\ninterface = \"tap1d515d18-1b\"",
            1,
        )
        .replacen(
            "mac = \"fa:16:3e:5a:03:25\"",
            "mac = \"fa:16:3e:5a:03:25\"\nhost = \"hv-2\"",
            1,
        );
    let inv = Inventory::from_toml("vpc.toml", &text).unwrap();
    assert_eq!(inv.ports[0].host.as_deref(), Some("hv-1"));
    assert_eq!(inv.ports[1].host, None);
    let monitored = |inv: &Inventory| -> Vec<String> {
        crate::Topology::from_inventory(inv)
            .ports
            .into_iter()
            .map(|p| p.id)
            .collect()
    };
    // Without a local host: every port its flow logs cover.
    assert_eq!(monitored(&inv).len(), 3);
    assert_eq!(
        monitored(&inv.clone().on_host("hv-1")),
        [inv.ports[0].id.clone()]
    );
    assert_eq!(
        monitored(&inv.clone().on_host("hv-2")),
        [inv.ports[2].id.clone()]
    );
    assert!(monitored(&inv.clone().on_host("hv-3")).is_empty());
    // The rules still see every port: the db group's rule names the web group.
    let on_hv2 = inv.clone().on_host("hv-2");
    assert_eq!(on_hv2.security_groups[1].rules[0].remote, Remote::Group(0));
    assert_eq!(on_hv2.ports.len(), 3);

    let e = err(&text.replacen("host = \"hv-1\"", "host = \"hv 1\"", 1));
    assert!(
        e.contains("host") && e.contains("`hv 1` is not a host name"),
        "{e}"
    );
}
