//! The control plane's REST API against a real `vpcflow serve` on
//! 127.0.0.1 (a port the OS picks), with the example inventory imported:
//! every flow-log endpoint, the SPEC §1 error codes, pagination, immutable
//! fields, duplicates, the quota under 50 concurrent creates, tokens and
//! cross-project isolation, and persistence across `kill -9`.

use serde_json::{Value, json};

mod common;
use common::server::{Server, postgres_database, raw_get, request, stored_bytes, token, token_on};

const PROJECT: &str = "5f67944957444bd6bb4fe3b367de8f3d";
const VPC: &str = "80ee2ed7-605d-49b4-ac6b-6e581acd35a3";
const SUBNETS: [&str; 2] = [
    "93f4cb2d-0e0e-4e2d-a705-e3817bd7ca45",
    "c1e4a0b2-7d5f-4e8a-b3c6-9f0a1d2e3b4c",
];
const PORTS: [&str; 3] = [
    "1d515d18-1b36-47dc-a983-bd6512aed4bd",
    "7a2c9e41-5b3d-4f60-8e1a-2c4b6d8f0a13",
    "e3f1b2c4-d5a6-4b7c-8d9e-0f1a2b3c4d5e",
];
const GROUP: &str = "a1b2c3d4-0000-4000-8000-000000000001";
const TOPICS: [&str; 2] = [
    "a1b2c3d4-0000-4000-8000-000000000002",
    "a1b2c3d4-0000-4000-8000-000000000003",
];
const IMPORTED: [&str; 2] = [
    "0c1d2e3f-4a5b-4c6d-8e7f-9a0b1c2d3e4f",
    "f49f2c7a-1d3e-4b5c-9a8b-7c6d5e4f3a21",
];

fn flow_logs_path(project: &str) -> String {
    format!("/v1/{project}/fl/flow_logs")
}

fn body(name: &str, resource_type: &str, resource_id: &str, traffic: &str, topic: &str) -> Value {
    json!({"flow_log": {
        "name": name, "resource_type": resource_type, "resource_id": resource_id,
        "traffic_type": traffic, "log_group_id": GROUP, "log_topic_id": topic,
    }})
}

fn code(v: &Value) -> &str {
    v["code"]
        .as_str()
        .unwrap_or_else(|| panic!("no error code in {v}"))
}

#[test]
fn flow_logs_can_be_created_listed_shown_updated_and_deleted() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let t = token(dir.path(), PROJECT);
    let t = Some(t.as_str());
    let path = flow_logs_path(PROJECT);

    // The inventory's two flow logs were imported.
    let (s, v) = server.request("GET", &path, t, None);
    assert_eq!(s, 200, "{v}");
    let ids: Vec<&str> = v["flow_logs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, IMPORTED);

    // Create: 200 and the whole flow log.
    let (s, v) = server.request(
        "POST",
        &path,
        t,
        Some(&body(
            "web-rejects",
            "network",
            SUBNETS[0],
            "reject",
            TOPICS[1],
        )),
    );
    assert_eq!(s, 200, "{v}");
    let f = &v["flow_log"];
    let id = f["id"].as_str().unwrap().to_string();
    assert_eq!(f["project_id"], PROJECT);
    assert_eq!(f["resource_type"], "network");
    assert_eq!(f["admin_state"], true);
    assert_eq!(f["status"], "ACTIVE");
    let created = f["created_at"].as_str().unwrap();
    assert_eq!(created.len(), 19, "yyyy-MM-ddTHH:mm:ss: {created}");
    assert_eq!(&created[10..11], "T");

    // Show.
    let (s, v) = server.request("GET", &format!("{path}/{id}"), t, None);
    assert_eq!((s, &v["flow_log"]["name"]), (200, &json!("web-rejects")));

    // Update: name, description, admin_state; the status follows.
    let (s, v) = server.request("PUT", &format!("{path}/{id}"), t, Some(&json!({"flow_log": {"name": "web-rej", "description": "tuning sg-web", "admin_state": false}})));
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["flow_log"]["name"], "web-rej");
    assert_eq!(v["flow_log"]["description"], "tuning sg-web");
    assert_eq!(v["flow_log"]["status"], "DOWN");
    // Immutable fields: 400 VPC.3001 naming the field.
    let (s, v) = server.request(
        "PUT",
        &format!("{path}/{id}"),
        t,
        Some(&json!({"flow_log": {"traffic_type": "all"}})),
    );
    assert_eq!((s, code(&v)), (400, "VPC.3001"));
    assert!(
        v["message"].as_str().unwrap().contains("traffic_type"),
        "{v}"
    );

    // Filters and pagination.
    let (_, v) = server.request("GET", &format!("{path}?status=DOWN"), t, None);
    assert_eq!(v["flow_logs"].as_array().unwrap().len(), 1);
    assert_eq!(v["flow_logs"][0]["id"], id.as_str());
    let (_, v) = server.request(
        "GET",
        &format!("{path}?resource_type=port&traffic_type=reject"),
        t,
        None,
    );
    assert_eq!(v["flow_logs"][0]["id"], IMPORTED[0]);
    assert_eq!(v["flow_logs"].as_array().unwrap().len(), 1);
    let mut all = Vec::new();
    let mut marker = String::new();
    loop {
        let q = if marker.is_empty() {
            "?limit=2".to_string()
        } else {
            format!("?limit=2&marker={marker}")
        };
        let (s, v) = server.request("GET", &format!("{path}{q}"), t, None);
        assert_eq!(s, 200);
        let page = v["flow_logs"].as_array().unwrap().clone();
        assert!(page.len() <= 2);
        if page.is_empty() {
            break;
        }
        marker = page.last().unwrap()["id"].as_str().unwrap().to_string();
        all.extend(page);
    }
    assert_eq!(all.len(), 3, "pages cover every flow log once");
    for bad in [
        "?limit=0",
        "?limit=2001",
        "?limit=x",
        "?colour=red",
        "?admin_state=maybe",
    ] {
        let (s, v) = server.request("GET", &format!("{path}{bad}"), t, None);
        assert_eq!((s, code(&v)), (400, "VPC.3001"), "{bad}: {v}");
    }

    // Errors of create.
    let dup = body("again", "vpc", VPC, "all", TOPICS[0]);
    let (s, v) = server.request("POST", &path, t, Some(&dup));
    assert_eq!(
        (s, code(&v)),
        (409, "VPC.3004"),
        "duplicate of the imported vpc-all: {v}"
    );
    for (bad, field) in [
        (body("bad name!", "vpc", VPC, "accept", TOPICS[0]), "name"),
        (
            body("x", "subnet", VPC, "accept", TOPICS[0]),
            "resource_type",
        ),
        (body("x", "vpc", VPC, "dropped", TOPICS[0]), "traffic_type"),
        (
            body("x", "vpc", "not-a-uuid", "accept", TOPICS[0]),
            "resource_id",
        ),
        (body("x", "port", VPC, "accept", TOPICS[0]), "resource_id"),
        (body("x", "vpc", VPC, "accept", GROUP), "log_topic_id"),
        (json!({"flow_log": {"name": "x"}}), "missing field"),
        (json!({"flowlog": {}}), "flowlog"),
    ] {
        let (s, v) = server.request("POST", &path, t, Some(&bad));
        assert_eq!((s, code(&v)), (400, "VPC.3001"), "{bad}: {v}");
        assert!(
            v["message"].as_str().unwrap().contains(field),
            "{field}: {v}"
        );
    }
    let (s, v) = request(&server.addr, "POST", &path, t, Some(b"{not json"));
    assert_eq!((s, code(&v)), (400, "VPC.3001"));

    // Quota endpoint.
    let (s, v) = server.request(
        "GET",
        &format!("/v1/{PROJECT}/quotas?type=flow_log"),
        t,
        None,
    );
    assert_eq!(s, 200);
    assert_eq!(
        v,
        json!({"quotas": {"resources": [{"type": "flow_log", "used": 3, "quota": 10, "min": 0}]}})
    );
    let (s, _) = server.request("GET", &format!("/v1/{PROJECT}/quotas?type=router"), t, None);
    assert_eq!(s, 400);
    let (s, v) = server.request("GET", &format!("/v1/{PROJECT}/quotas?type=vpc"), t, None);
    assert_eq!(s, 200);
    assert_eq!(v["quotas"]["resources"][0]["type"], "vpc");
    assert_eq!(v["quotas"]["resources"][0]["quota"], 100);

    // Delete: 204, then 404 VPC.3005 everywhere.
    let (s, v) = server.request("DELETE", &format!("{path}/{id}"), t, None);
    assert_eq!((s, v), (204, Value::Null));
    for method in ["GET", "DELETE"] {
        let (s, v) = server.request(method, &format!("{path}/{id}"), t, None);
        assert_eq!((s, code(&v)), (404, "VPC.3005"), "{method}");
    }
    let (s, v) = server.request(
        "PUT",
        &format!("{path}/{id}"),
        t,
        Some(&json!({"flow_log": {"name": "n"}})),
    );
    assert_eq!((s, code(&v)), (404, "VPC.3005"));
}

/// 50 creates: every distinct (resource, traffic type, topic) but the two
/// imported, and 16 of them twice.
fn fifty_creates() -> Vec<Value> {
    let mut bodies = Vec::new();
    let resources = [("vpc", VPC)]
        .into_iter()
        .chain(SUBNETS.map(|s| ("network", s)))
        .chain(PORTS.map(|p| ("port", p)));
    for (kind, id) in resources {
        for traffic in ["all", "accept", "reject"] {
            for topic in TOPICS {
                if (kind, traffic, topic) == ("vpc", "all", TOPICS[0])
                    || (id, traffic, topic) == (PORTS[2], "reject", TOPICS[1])
                {
                    continue;
                }
                bodies.push(body(
                    &format!("fl-{}", bodies.len()),
                    kind,
                    id,
                    traffic,
                    topic,
                ));
            }
        }
    }
    assert_eq!(bodies.len(), 34);
    for i in 0..16 {
        let mut again = bodies[i].clone();
        again["flow_log"]["name"] = json!(format!("again-{i}"));
        bodies.push(again);
    }
    bodies
}

/// Sends every create at once, the i-th to `addrs[i % addrs.len()]`, and
/// checks that exactly the quota was created: 8 beside the 2 imported, the
/// rest refused as over the quota or duplicates.
fn create_at_once_up_to_the_quota(addrs: &[&str], t: &str) {
    let bodies = fifty_creates();
    let path = flow_logs_path(PROJECT);
    let results: Vec<(u16, Value)> = std::thread::scope(|s| {
        let handles: Vec<_> = bodies
            .iter()
            .enumerate()
            .map(|(i, b)| {
                let (addr, path) = (addrs[i % addrs.len()], &path);
                s.spawn(move || {
                    request(addr, "POST", path, Some(t), Some(b.to_string().as_bytes()))
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let created = results.iter().filter(|(s, _)| *s == 200).count();
    assert_eq!(created, 8, "2 imported + 8 = the quota of 10");
    for (s, v) in results.iter().filter(|(s, _)| *s != 200) {
        assert_eq!(*s, 409, "{v}");
        assert!(["VPC.3003", "VPC.3004"].contains(&code(v)), "{v}");
    }
    assert!(
        results.iter().any(|(_, v)| v["code"] == "VPC.3003"),
        "someone hit the quota"
    );
}

#[test]
fn fifty_concurrent_creates_leave_exactly_ten_flow_logs() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let t = token(dir.path(), PROJECT);
    create_at_once_up_to_the_quota(&[&server.addr], &t);
    let path = flow_logs_path(PROJECT);
    let (_, v) = server.request("GET", &path, Some(&t), None);
    assert_eq!(v["flow_logs"].as_array().unwrap().len(), 10);
    let (_, v) = server.request("GET", &format!("/v1/{PROJECT}/quotas"), Some(&t), None);
    assert_eq!(v["quotas"]["resources"][0]["used"], 10);
}

#[test]
#[ignore = "needs a PostgreSQL server (VPCFLOW_TEST_POSTGRES): scripts/test.sh starts one"]
fn two_servers_on_one_postgres_database_are_one_control_plane() {
    let dirs = [tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap()];
    let url = postgres_database(&format!("shared by {}", dirs[0].path().display()));
    let database = ["--database".to_string(), url];
    // Started together, they race to create the database and its tables
    // and to import the inventory, which lands once.
    let servers: Vec<Server> = std::thread::scope(|s| {
        let handles: Vec<_> = dirs
            .iter()
            .map(|d| s.spawn(|| Server::start_on(d.path(), &database)))
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let (a, b) = (&servers[0], &servers[1]);
    // A token made beside one server opens the other.
    let t = token_on(dirs[1].path(), PROJECT, &database);
    let path = flow_logs_path(PROJECT);
    let (s, v) = a.request("GET", &path, Some(&t), None);
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["flow_logs"].as_array().unwrap().len(), 2, "imported once");
    // The quota is exact across processes: 50 creates at once, half to each.
    create_at_once_up_to_the_quota(&[&a.addr, &b.addr], &t);
    let ids = |server: &Server| -> Vec<String> {
        let (s, v) = server.request("GET", &path, Some(&t), None);
        assert_eq!(s, 200, "{v}");
        v["flow_logs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["id"].as_str().unwrap().to_string())
            .collect()
    };
    let seen = ids(a);
    assert_eq!(seen.len(), 10);
    assert_eq!(ids(b), seen, "both servers list the same flow logs");
    for server in [a, b] {
        let (_, v) = server.request("GET", &format!("/v1/{PROJECT}/quotas"), Some(&t), None);
        assert_eq!(v["quotas"]["resources"][0]["used"], 10);
    }
    // A change through one is what the other shows.
    let one = format!("{path}/{}", seen[3]);
    let (s, _) = b.request(
        "PUT",
        &one,
        Some(&t),
        Some(&json!({"flow_log": {"name": "renamed-on-b", "admin_state": false}})),
    );
    assert_eq!(s, 200);
    let (_, v) = a.request("GET", &one, Some(&t), None);
    assert_eq!(
        (&v["flow_log"]["name"], &v["flow_log"]["status"]),
        (&json!("renamed-on-b"), &json!("DOWN"))
    );
    let f = &v["flow_log"];
    let again = body(
        "again",
        f["resource_type"].as_str().unwrap(),
        f["resource_id"].as_str().unwrap(),
        f["traffic_type"].as_str().unwrap(),
        f["log_topic_id"].as_str().unwrap(),
    );
    let (s, _) = a.request("DELETE", &one, Some(&t), None);
    assert_eq!(s, 204);
    let (s, v) = b.request("GET", &one, Some(&t), None);
    assert_eq!((s, code(&v)), (404, "VPC.3005"));
    // One server killed, the other carries the whole control plane.
    let mut servers = servers;
    let b = servers.pop().unwrap();
    drop(servers);
    assert_eq!(ids(&b).len(), 9);
    let (s, v) = b.request("POST", &path, Some(&t), Some(&again));
    assert_eq!(s, 200, "the place the delete freed: {v}");
}

#[test]
fn a_token_opens_its_own_project_only() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let ours = token(dir.path(), PROJECT);
    let theirs = token(dir.path(), "0000000000000000000000000000000b");
    let path = flow_logs_path(PROJECT);
    let one = format!("{path}/{}", IMPORTED[0]);
    let new = body("x", "vpc", VPC, "accept", TOPICS[0]);
    let update = json!({"flow_log": {"admin_state": false}});
    let calls: [(&str, &str, Option<&Value>); 6] = [
        ("GET", &path, None),
        ("POST", &path, Some(&new)),
        ("GET", &one, None),
        ("PUT", &one, Some(&update)),
        ("DELETE", &one, None),
        ("GET", &format!("/v1/{PROJECT}/quotas"), None),
    ];
    for (method, p, b) in calls {
        let (s, v) = server.request(method, p, None, b);
        assert_eq!((s, code(&v)), (401, "APIGW.0301"), "no token: {method} {p}");
        let (s, v) = server.request(method, p, Some("vft_made_up"), b);
        assert_eq!(
            (s, code(&v)),
            (401, "APIGW.0301"),
            "unknown token: {method} {p}"
        );
        let (s, v) = server.request(method, p, Some(&theirs), b);
        assert_eq!(
            (s, code(&v)),
            (403, "APIGW.0302"),
            "other project: {method} {p}"
        );
    }
    // Through its own project's paths, the other project sees nothing of ours.
    let their_path = flow_logs_path("0000000000000000000000000000000b");
    let (s, v) = server.request("GET", &their_path, Some(&theirs), None);
    assert_eq!((s, v), (200, json!({"flow_logs": []})));
    for method in ["GET", "DELETE"] {
        let (s, v) = server.request(
            method,
            &format!("{their_path}/{}", IMPORTED[0]),
            Some(&theirs),
            None,
        );
        assert_eq!((s, code(&v)), (404, "VPC.3005"));
    }
    let (s, v) = server.request(
        "PUT",
        &format!("{their_path}/{}", IMPORTED[0]),
        Some(&theirs),
        Some(&update),
    );
    assert_eq!((s, code(&v)), (404, "VPC.3005"));
    // Our resources are not theirs to log.
    let (s, v) = server.request("POST", &their_path, Some(&theirs), Some(&new));
    assert_eq!((s, code(&v)), (400, "VPC.3001"), "{v}");
    // Nothing of ours changed.
    let (_, v) = server.request("GET", &one, Some(&ours), None);
    assert_eq!(v["flow_log"]["admin_state"], true);
    // Tokens are stored hashed: the database does not hold them.
    let stored = stored_bytes(dir.path());
    for t in [&ours, &theirs] {
        assert!(
            !stored.windows(t.len()).any(|w| w == t.as_bytes()),
            "a token in clear"
        );
    }
}

#[test]
fn everything_survives_kill_9_and_the_inventory_is_imported_once() {
    let dir = tempfile::tempdir().unwrap();
    let t = token(dir.path(), PROJECT);
    let path = flow_logs_path(PROJECT);
    let created;
    {
        let server = Server::start(dir.path());
        let (s, v) = server.request(
            "POST",
            &path,
            Some(&t),
            Some(&body("kept", "port", PORTS[0], "all", TOPICS[0])),
        );
        assert_eq!(s, 200, "{v}");
        created = v["flow_log"]["id"].as_str().unwrap().to_string();
        let (s, _) = server.request(
            "PUT",
            &format!("{path}/{created}"),
            Some(&t),
            Some(&json!({"flow_log": {"admin_state": false}})),
        );
        assert_eq!(s, 200);
        let (s, _) = server.request("DELETE", &format!("{path}/{}", IMPORTED[1]), Some(&t), None);
        assert_eq!(s, 204);
        // Dropping the server is SIGKILL.
    }
    let server = Server::start(dir.path());
    let (s, v) = server.request("GET", &path, Some(&t), None);
    assert_eq!(s, 200);
    let logs: Vec<(String, bool)> = v["flow_logs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["id"].as_str().unwrap().to_string(),
                f["admin_state"].as_bool().unwrap(),
            )
        })
        .collect();
    let mut want = vec![(IMPORTED[0].to_string(), true), (created, false)];
    want.sort();
    assert_eq!(logs, want, "the deleted imported flow log stays deleted");
}

#[test]
fn health_and_metrics_answer_without_a_token_and_unknown_paths_are_json_404() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let (s, v) = server.request("GET", "/health", None, None);
    assert_eq!((s, v), (200, json!({"status": "ok"})));
    let (s, v) = server.request("GET", "/v2/nothing", None, None);
    assert_eq!(s, 404);
    assert!(v["code"].is_string());
    for _ in 0..3 {
        let (s, _) = server.request("GET", &flow_logs_path(PROJECT), None, None);
        assert_eq!(s, 401);
    }
    // Prometheus text: requests by method and code, and the model's size.
    let raw = raw_get(&server.addr, "/metrics");
    assert!(raw.starts_with("HTTP/1.1 200"), "{raw}");
    assert!(
        raw.contains("content-type: text/plain; version=0.0.4"),
        "{raw}"
    );
    for line in [
        "vpcflow_api_requests_total{method=\"GET\",code=\"200\"} 1",
        "vpcflow_api_requests_total{method=\"GET\",code=\"404\"} 1",
        "vpcflow_api_requests_total{method=\"GET\",code=\"401\"} 3",
        "vpcflow_flow_logs 2",
        "vpcflow_projects 1",
    ] {
        assert!(
            raw.lines().any(|l| l == line),
            "{line} missing from:\n{raw}"
        );
    }
}

#[test]
fn the_openapi_document_describes_what_the_server_answers() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let (s, doc) = server.request("GET", "/openapi.json", None, None);
    assert_eq!(s, 200);
    assert_eq!(doc["openapi"], "3.1.0");
    let paths = doc["paths"].as_object().unwrap();
    for p in [
        "/v1/{project_id}/fl/flow_logs",
        "/v1/{project_id}/fl/flow_logs/{flowlog_id}",
        "/v1/{project_id}/quotas",
        "/v1/{project_id}/vpcs/{id}",
        "/v1/{project_id}/security-groups",
        "/v1/{project_id}/log-groups/{log_group_id}/log-topics/{id}",
        "/v1/{project_id}/log-groups/{log_group_id}/log-topics/{id}/records",
        "/v1/{project_id}/captures",
    ] {
        assert!(paths.contains_key(p), "{p} missing");
    }
    // Every field a flow log is shown with is in its schema, and nothing more.
    let t = token(dir.path(), PROJECT);
    let (_, v) = server.request("GET", &flow_logs_path(PROJECT), Some(&t), None);
    let shown: Vec<&String> = v["flow_logs"][0].as_object().unwrap().keys().collect();
    let schema = &doc["components"]["schemas"]["FlowLog"];
    let mut documented: Vec<&String> = schema["properties"].as_object().unwrap().keys().collect();
    documented.sort();
    assert_eq!(shown, documented);
    // Every documented path answers something other than the fallback 404
    // (a path the router lacks) with the token of its project.
    // (The tail is an endless stream: tests/api_records.rs reads it.)
    for p in paths
        .keys()
        .filter(|p| p.starts_with("/v1/") && !p.ends_with("/tail"))
    {
        let concrete = p
            .replace("{project_id}", PROJECT)
            .replace("{log_group_id}", GROUP)
            .replace("{flowlog_id}", IMPORTED[0])
            .replace("{id}", TOPICS[0]);
        let (s, v) = server.request("GET", &concrete, Some(&t), None);
        assert_ne!(v["message"], "no such API path", "{p} -> {s} {v}");
    }
}
