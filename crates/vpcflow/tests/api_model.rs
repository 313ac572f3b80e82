//! The model through the API against a real `vpcflow serve`: VPCs, subnets,
//! ports, security groups, network ACLs, log groups and topics; create,
//! list, show, update, delete; SPEC §1's checks on every change (a port's
//! IP inside its subnet, rules that parse, references inside the project);
//! what is in use cannot be deleted; flow logs turn `ERROR` when their
//! topic goes; another project sees none of it; all of it survives
//! `kill -9`.

use serde_json::{Value, json};

mod common;
use common::server::{Server, token};

const PROJECT: &str = "5f67944957444bd6bb4fe3b367de8f3d";
const OTHER: &str = "0therpr0ject";

fn code(v: &Value) -> &str {
    v["code"]
        .as_str()
        .unwrap_or_else(|| panic!("no error code in {v}"))
}

/// Calls of one project.
struct Client<'a> {
    server: &'a Server,
    project: &'a str,
    token: String,
}

impl<'a> Client<'a> {
    /// A client of `project` on `server`, with a token made in `data`.
    fn of(server: &'a Server, data: &std::path::Path, project: &'a str) -> Client<'a> {
        Client {
            server,
            project,
            token: token(data, project),
        }
    }

    fn call(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        self.server.request(
            method,
            &format!("/v1/{}/{path}", self.project),
            Some(&self.token),
            body.as_ref(),
        )
    }

    /// Creates and returns the id; panics unless 200.
    fn create(&self, path: &str, key: &str, fields: Value) -> String {
        let (s, v) = self.call("POST", path, Some(json!({ key: fields })));
        assert_eq!(s, 200, "POST {path}: {v}");
        v[key]["id"].as_str().unwrap().to_string()
    }

    /// The error of a call that must fail with `status`.
    fn fails(
        &self,
        method: &str,
        path: &str,
        body: Option<Value>,
        status: u16,
    ) -> (String, String) {
        let (s, v) = self.call(method, path, body);
        assert_eq!(s, status, "{method} {path}: {v}");
        (
            code(&v).to_string(),
            v["message"].as_str().unwrap().to_string(),
        )
    }
}

#[test]
fn the_model_is_managed_through_the_api_with_every_change_checked() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let a = Client::of(&server, dir.path(), PROJECT);

    // The imported inventory is there, in API names.
    let (s, v) = a.call("GET", "subnets", None);
    assert_eq!(s, 200, "{v}");
    let subnets = v["subnets"].as_array().unwrap();
    assert_eq!(subnets.len(), 2);
    assert_eq!(subnets[0]["vpc_id"], "80ee2ed7-605d-49b4-ac6b-6e581acd35a3");
    assert_eq!(
        subnets[0]["network_acl_id"],
        "0b9a7c3e-4f6d-4c7a-9a51-2d8f3e1c6b70"
    );
    assert_eq!(subnets[0]["project_id"], PROJECT);

    // A VPC, a subnet in it, a port in the subnet.
    let vpc = a.create(
        "vpcs",
        "vpc",
        json!({"name": "lab", "cidr": "10.20.0.0/16"}),
    );
    let subnet = a.create(
        "subnets",
        "subnet",
        json!({"vpc_id": vpc, "name": "lab-a", "cidr": "10.20.1.0/24", "az": "ab-cdef-3a"}),
    );
    let (s, v) = a.call("GET", &format!("subnets/{subnet}"), None);
    assert_eq!(s, 200);
    assert_eq!(v["subnet"]["cidr"], "10.20.1.0/24");
    assert_eq!(v["subnet"]["created_at"].as_str().unwrap().len(), 19);

    // A security group made without rules gets SPEC §1's defaults.
    let sg = a.create(
        "security-groups",
        "security_group",
        json!({"name": "lab-sg"}),
    );
    let (_, v) = a.call("GET", &format!("security-groups/{sg}"), None);
    let rules = v["security_group"]["rules"].as_array().unwrap();
    assert_eq!(rules.len(), 4, "{v}");
    assert_eq!(rules[0]["remote_group_id"], sg.as_str());
    assert_eq!(rules[3]["remote_ip_prefix"], "::/0");
    assert!(rules.iter().all(|r| r["id"].is_string()));

    let port = a.create(
        "ports",
        "port",
        json!({"subnet_id": subnet, "ips": ["10.20.1.5"], "security_groups": [sg]}),
    );

    // Every change is checked, and the error names the field.
    let (c, m) = a.fails(
        "POST",
        "ports",
        Some(json!({"port": {"subnet_id": subnet, "ips": ["10.99.0.5"]}})),
        400,
    );
    assert_eq!(c, "VPC.3001");
    assert!(m.contains("ips") && m.contains("10.99.0.5"), "{m}");
    let (_, m) = a.fails(
        "POST",
        "ports",
        Some(json!({"port": {"subnet_id": subnet, "ips": ["10.20.1.5"]}})),
        400,
    );
    assert!(m.contains("10.20.1.5"), "two ports, one IP: {m}");
    let (_, m) = a.fails(
        "POST",
        "subnets",
        Some(json!({"subnet": {"vpc_id": "no-such-vpc", "cidr": "10.20.2.0/24"}})),
        400,
    );
    assert!(m.contains("vpc_id") && m.contains("no-such-vpc"), "{m}");
    let (_, m) = a.fails(
        "POST",
        "vpcs",
        Some(json!({"vpc": {"cidr": "10.20.0.0/16", "colour": "red"}})),
        400,
    );
    assert!(m.contains("colour"), "{m}");
    let (_, m) = a.fails(
        "POST",
        "vpcs",
        Some(json!({"vpc": {"id": "mine", "cidr": "10.0.0.0/8"}})),
        400,
    );
    assert_eq!(m, "id: set by the server");
    let (_, m) = a.fails(
        "PUT",
        &format!("security-groups/{sg}"),
        Some(json!({"security_group": {"rules": [{"direction": "ingress", "protocol": "tcp", "multiport": "99999"}]}})),
        400,
    );
    assert!(m.contains("multiport"), "{m}");
    let (_, m) = a.fails(
        "PUT",
        &format!("subnets/{subnet}"),
        Some(json!({"subnet": {"cidr": "10.20.9.0/24"}})),
        400,
    );
    assert_eq!(m, "cidr cannot be changed after a subnet is created");
    let (_, m) = a.fails(
        "POST",
        "log-groups",
        Some(json!({"log_group": {"ttl_in_days": 400}})),
        400,
    );
    assert!(m.contains("ttl_in_days"), "{m}");
    // A failed change changed nothing.
    let (_, v) = a.call("GET", "ports", None);
    assert_eq!(v["ports"].as_array().unwrap().len(), 4);

    // Updates: a mutable field changes, null removes an optional one.
    let (s, v) = a.call(
        "PUT",
        &format!("ports/{port}"),
        Some(json!({"port": {"name": "lab-port", "mac": "fa:16:3e:00:00:05"}})),
    );
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["port"]["name"], "lab-port");
    let (_, v) = a.call(
        "PUT",
        &format!("ports/{port}"),
        Some(json!({"port": {"name": null}})),
    );
    assert!(v["port"].get("name").is_none(), "{v}");

    // A network ACL with ordered rules, associated with the subnet.
    let acl = a.create(
        "network-acls",
        "network_acl",
        json!({"name": "lab-acl", "ingress_rules": [
            {"action": "deny", "protocol": "tcp", "destination_port": 23},
            {"action": "allow"}
        ], "egress_rules": [{"action": "allow"}]}),
    );
    let (_, v) = a.call("GET", &format!("network-acls/{acl}"), None);
    let ingress = v["network_acl"]["ingress_rules"].as_array().unwrap();
    assert_eq!(ingress[0]["action"], "deny");
    assert_eq!(ingress[1]["action"], "allow");
    let (s, v) = a.call(
        "PUT",
        &format!("subnets/{subnet}"),
        Some(json!({"subnet": {"network_acl_id": acl}})),
    );
    assert_eq!(s, 200, "{v}");

    // Log group (retention 7 days by default) and a topic under it.
    let group = a.create("log-groups", "log_group", json!({"name": "lab-logs"}));
    let (_, v) = a.call("GET", &format!("log-groups/{group}"), None);
    assert_eq!(v["log_group"]["ttl_in_days"], 7);
    let topic = a.create(
        &format!("log-groups/{group}/log-topics"),
        "log_topic",
        json!({"name": "lab"}),
    );
    let (_, v) = a.call("GET", &format!("log-groups/{group}/log-topics"), None);
    assert_eq!(v["log_topics"][0]["id"], topic.as_str());
    assert_eq!(v["log_topics"][0]["log_group_id"], group.as_str());
    // The example's group is another group: the topic is not under it.
    a.fails(
        "GET",
        &format!("log-groups/a1b2c3d4-0000-4000-8000-000000000001/log-topics/{topic}"),
        None,
        404,
    );

    // A flow log on the new subnet, writing to the new topic.
    let (s, v) = a.call(
        "POST",
        "fl/flow_logs",
        Some(
            json!({"flow_log": {"name": "lab", "resource_type": "network", "resource_id": subnet,
            "traffic_type": "all", "log_group_id": group, "log_topic_id": topic}}),
        ),
    );
    assert_eq!(s, 200, "{v}");
    let fl = v["flow_log"]["id"].as_str().unwrap().to_string();
    assert_eq!(v["flow_log"]["status"], "ACTIVE");

    // In use: refused with 409 and what uses it; nothing changes.
    for (path, user) in [
        (format!("subnets/{subnet}"), "port"),
        (format!("vpcs/{vpc}"), "subnet"),
        (format!("security-groups/{sg}"), "security_groups"),
        (format!("network-acls/{acl}"), "network_acl_id"),
        (format!("log-groups/{group}"), "log_group_id"),
    ] {
        let (c, m) = a.fails("DELETE", &path, None, 409);
        assert_eq!(c, "VPC.0409");
        assert!(m.contains("is in use") && m.contains(user), "{path}: {m}");
        let (s, _) = a.call("GET", &path, None);
        assert_eq!(s, 200, "{path} is still there");
    }

    // Pages: limit and marker, in creation order.
    let (_, v) = a.call("GET", "vpcs?limit=1", None);
    let first = v["vpcs"][0]["id"].as_str().unwrap().to_string();
    let (_, v) = a.call("GET", &format!("vpcs?limit=1&marker={first}"), None);
    assert_eq!(v["vpcs"][0]["id"], vpc.as_str());
    let (_, v) = a.call("GET", &format!("vpcs?marker={vpc}"), None);
    assert_eq!(v["vpcs"], json!([]));
    a.fails("GET", "vpcs?limit=0", None, 400);
    a.fails("GET", "vpcs?colour=red", None, 400);

    // Another project sees and touches none of it.
    let b = Client::of(&server, dir.path(), OTHER);
    for path in [
        format!("vpcs/{vpc}"),
        format!("subnets/{subnet}"),
        format!("ports/{port}"),
        format!("security-groups/{sg}"),
        format!("network-acls/{acl}"),
        format!("log-groups/{group}"),
        format!("log-groups/{group}/log-topics/{topic}"),
    ] {
        let (c, _) = b.fails("GET", &path, None, 404);
        assert_eq!(c, "VPC.0404");
        b.fails("DELETE", &path, None, 404);
        // And project A's path with B's token is refused before anything.
        let (s, v) = server.request(
            "GET",
            &format!("/v1/{PROJECT}/{path}"),
            Some(&b.token),
            None,
        );
        assert_eq!((s, code(&v)), (403, "APIGW.0302"));
    }
    let (_, v) = b.call("GET", "vpcs", None);
    assert_eq!(v["vpcs"], json!([]));
    let (_, m) = b.fails(
        "POST",
        "subnets",
        Some(json!({"subnet": {"vpc_id": vpc, "cidr": "10.20.3.0/24"}})),
        400,
    );
    assert!(m.contains("vpc_id"), "B cannot build on A's VPC: {m}");

    // Deleting the topic turns the flow log ERROR; then the rest goes in order.
    let (s, _) = a.call(
        "DELETE",
        &format!("log-groups/{group}/log-topics/{topic}"),
        None,
    );
    assert_eq!(s, 204);
    let (_, v) = a.call("GET", &format!("fl/flow_logs/{fl}"), None);
    assert_eq!(v["flow_log"]["status"], "ERROR");
    let (s, _) = a.call("DELETE", &format!("log-groups/{group}"), None);
    assert_eq!(s, 204);
    let (s, _) = a.call("DELETE", &format!("ports/{port}"), None);
    assert_eq!(s, 204);
    a.fails("GET", &format!("ports/{port}"), None, 404);
    a.call(
        "PUT",
        &format!("subnets/{subnet}"),
        Some(json!({"subnet": {"network_acl_id": null}})),
    );
    for path in [
        format!("subnets/{subnet}"),
        format!("vpcs/{vpc}"),
        format!("security-groups/{sg}"),
        format!("network-acls/{acl}"),
    ] {
        let (s, v) = a.call("DELETE", &path, None);
        assert_eq!(s, 204, "{path}: {v}");
    }

    // What is left survives kill -9.
    let kept = a.create(
        "vpcs",
        "vpc",
        json!({"name": "kept", "cidr": "10.30.0.0/16"}),
    );
    drop(a);
    drop(b);
    drop(server);
    let server = Server::start(dir.path());
    let a = Client::of(&server, dir.path(), PROJECT);
    let (s, v) = a.call("GET", &format!("vpcs/{kept}"), None);
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["vpc"]["name"], "kept");
    let (_, v) = a.call("GET", &format!("subnets/{subnet}"), None);
    assert_eq!(code(&v), "VPC.0404");
}

/// Hardening finding 5: no quotas on model resources (every write checks
/// the whole project, so a tenant with 80,000 ports slowed its own writes
/// to a second each). A project has at most its quota of each kind.
#[test]
fn a_project_is_held_to_its_quota_of_each_kind() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let a = Client::of(&server, dir.path(), OTHER);
    let (s, v) = a.call("GET", "quotas", None);
    assert_eq!(s, 200, "{v}");
    let quotas = v["quotas"]["resources"].as_array().unwrap();
    let types: Vec<&str> = quotas.iter().map(|q| q["type"].as_str().unwrap()).collect();
    assert_eq!(
        types,
        [
            "flow_log",
            "vpc",
            "subnet",
            "port",
            "security_group",
            "network_acl",
            "log_group",
            "log_topic"
        ]
    );
    let quota = quotas[1]["quota"].as_u64().unwrap();
    let mut first = String::new();
    for i in 0..quota {
        let id = a.create(
            "vpcs",
            "vpc",
            json!({"name": format!("v{i}"), "cidr": format!("10.{i}.0.0/16")}),
        );
        if i == 0 {
            first = id;
        }
    }
    let over = json!({"vpc": {"name": "one-more", "cidr": "172.16.0.0/16"}});
    let (code, message) = a.fails("POST", "vpcs", Some(over.clone()), 409);
    assert_eq!(code, "VPC.0410");
    assert!(
        message.contains(&format!("VPC quota exceeded: a project may have {quota}")),
        "{message}"
    );
    let (_, v) = a.call("GET", "quotas?type=vpc", None);
    assert_eq!(v["quotas"]["resources"][0]["used"], quota);
    // Another project is not held to this one's count.
    let b = Client::of(&server, dir.path(), PROJECT);
    b.create("vpcs", "vpc", json!({"name": "b", "cidr": "10.9.0.0/16"}));
    // A deleted one frees its place.
    let (s, _) = a.call("DELETE", &format!("vpcs/{first}"), None);
    assert_eq!(s, 204);
    let (s, v) = a.call("POST", "vpcs", Some(over));
    assert_eq!(s, 200, "{v}");
}

#[test]
fn rules_on_the_clouds_own_path_land_together_and_keep_the_others_ids() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let a = Client::of(&server, dir.path(), PROJECT);
    // A group of the imported inventory: its rules have positional ids.
    let group = "6c5b4a39-8e7f-4d21-b0a9-c8d7e6f5a4b3";
    let rules_of = |a: &Client<'_>| -> Vec<String> {
        let (s, v) = a.call(
            "GET",
            &format!("security-group-rules?security_group_id={group}"),
            None,
        );
        assert_eq!(s, 200, "{v}");
        v["security_group_rules"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["id"].as_str().unwrap().to_string())
            .collect()
    };
    let before = rules_of(&a);
    assert!(
        before.iter().any(|id| id == &format!("{group}/1")),
        "{before:?}"
    );
    // Eight rules added at once: every one lands (one write each).
    let added: Vec<String> = std::thread::scope(|s| {
        let calls: Vec<_> = (0..8)
            .map(|i| {
                let a = &a;
                s.spawn(move || {
                    a.create(
                        "security-group-rules",
                        "security_group_rule",
                        json!({"security_group_id": group, "direction": "ingress",
                               "protocol": "tcp", "port_range_min": 8000 + i,
                               "port_range_max": 8000 + i,
                               "remote_ip_prefix": "198.51.100.0/24"}),
                    )
                })
            })
            .collect();
        calls.into_iter().map(|c| c.join().unwrap()).collect()
    });
    let after = rules_of(&a);
    assert_eq!(after.len(), before.len() + 8, "{after:?}");
    assert_eq!(after[..before.len()], before[..]);
    assert!(added.iter().all(|id| after.contains(id)));
    // The cloud's multiport form, as the group itself shows it.
    let (_, g) = a.call("GET", &format!("security-groups/{group}"), None);
    let ports: Vec<&str> = g["security_group"]["rules"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|r| r["multiport"].as_str())
        .collect();
    assert!(
        (8000..8008).all(|p| ports.contains(&p.to_string().as_str())),
        "{ports:?}"
    );
    // Deleting the first rule leaves every other id as it was (a
    // positional id's `/` is percent-encoded in the path).
    let (s, v) = a.call(
        "DELETE",
        &format!("security-group-rules/{}", before[0].replace('/', "%2F")),
        None,
    );
    assert_eq!(s, 204, "{v}");
    assert_eq!(rules_of(&a), after[1..]);
    // Bad bodies name what is wrong, and change nothing.
    for (body, says) in [
        (
            json!({"direction": "ingress"}),
            "security_group_id: required",
        ),
        (
            json!({"security_group_id": group, "direction": "ingress", "id": "mine"}),
            "set by the server",
        ),
        (
            json!({"security_group_id": group, "direction": "ingress", "port_range_min": 70000}),
            "port_range_min",
        ),
        (
            json!({"security_group_id": group, "direction": "sideways", "remote_ip_prefix": "0.0.0.0/0"}),
            "direction",
        ),
    ] {
        let (c, m) = a.fails(
            "POST",
            "security-group-rules",
            Some(json!({ "security_group_rule": body })),
            400,
        );
        assert_eq!(c, "VPC.3001");
        assert!(m.contains(says), "{m}");
    }
    assert_eq!(rules_of(&a), after[1..]);
    // Another project sees none of them.
    let b = Client::of(&server, dir.path(), OTHER);
    let (s, v) = b.call("GET", "security-group-rules", None);
    assert_eq!(
        (s, v["security_group_rules"].as_array().map(Vec::len)),
        (200, Some(0))
    );
    b.fails(
        "DELETE",
        &format!("security-group-rules/{}", added[0]),
        None,
        404,
    );
}
