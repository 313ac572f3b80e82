//! The `vpcflow` subcommands that call the API (`flow-log`, `resource`,
//! `capture upload`, `records`) against a real `vpcflow serve`.

use std::process::Output;

use serde_json::Value;

mod common;
use common::server::{Server, token};
use common::{examples, vpcflow};

const PROJECT: &str = "5f67944957444bd6bb4fe3b367de8f3d";
const VPC: &str = "80ee2ed7-605d-49b4-ac6b-6e581acd35a3";
const GROUP: &str = "a1b2c3d4-0000-4000-8000-000000000001";
const TOPIC: &str = "a1b2c3d4-0000-4000-8000-000000000002";

#[test]
fn the_cli_manages_flow_logs_resources_captures_and_records() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let t = token(dir.path(), PROJECT);
    let run = |args: &[&str]| -> Output {
        vpcflow()
            .args(args)
            .env("VPCFLOW_API", format!("http://{}", server.addr))
            .env("VPCFLOW_TOKEN", &t)
            .env("VPCFLOW_PROJECT", PROJECT)
            .output()
            .unwrap()
    };
    let ok = |args: &[&str]| -> Value {
        let out = run(args);
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        if out.stdout.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&out.stdout).unwrap()
        }
    };

    let v = ok(&["flow-log", "list"]);
    assert_eq!(v["flow_logs"].as_array().unwrap().len(), 2);
    let v = ok(&["flow-log", "list", "traffic_type=reject"]);
    assert_eq!(v["flow_logs"].as_array().unwrap().len(), 1);

    let v = ok(&[
        "resource",
        "log-topic",
        "create",
        "--log-group-id",
        GROUP,
        r#"{"name": "cli"}"#,
    ]);
    let topic = v["log_topic"]["id"].as_str().unwrap().to_string();
    let v = ok(&["resource", "log-topic", "list", "--log-group-id", GROUP]);
    assert_eq!(v["log_topics"].as_array().unwrap().len(), 3);

    let v = ok(&[
        "flow-log",
        "create",
        "--name",
        "cli-vpc",
        "--resource-type",
        "vpc",
        "--resource-id",
        VPC,
        "--traffic-type",
        "reject",
        "--log-group-id",
        GROUP,
        "--log-topic-id",
        &topic,
        "--description",
        "made by the CLI",
    ]);
    let id = v["flow_log"]["id"].as_str().unwrap().to_string();
    assert_eq!(v["flow_log"]["traffic_type"], "reject");
    let v = ok(&[
        "flow-log",
        "update",
        &id,
        "--disable",
        "--name",
        "cli-vpc-2",
    ]);
    assert_eq!(v["flow_log"]["status"], "DOWN");
    assert_eq!(v["flow_log"]["name"], "cli-vpc-2");
    let v = ok(&["flow-log", "show", &id]);
    assert_eq!(v["flow_log"]["description"], "made by the CLI");

    // An error answer: its code and message on stderr, exit 1.
    let out = run(&[
        "flow-log",
        "create",
        "--name",
        "bad name",
        "--resource-type",
        "vpc",
        "--resource-id",
        VPC,
        "--log-group-id",
        GROUP,
        "--log-topic-id",
        &topic,
    ]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("400 VPC.3001: name:"), "{err}");

    ok(&["flow-log", "delete", &id]);
    let out = run(&["flow-log", "show", &id]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("404 VPC.3005"));

    let v = ok(&[
        "resource",
        "vpc",
        "create",
        r#"{"name": "cli", "cidr": "10.40.0.0/16"}"#,
    ]);
    let vpc = v["vpc"]["id"].as_str().unwrap().to_string();
    let v = ok(&["resource", "vpc", "update", &vpc, r#"{"name": "cli-2"}"#]);
    assert_eq!(v["vpc"]["name"], "cli-2");
    ok(&["resource", "vpc", "delete", &vpc]);
    let out = run(&["resource", "vpc", "create", "not json"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not JSON"));

    // A capture in, its records out (the inventory's VPC flow log's topic).
    let capture = examples().join("vpc-demo.pcap");
    let v = ok(&["capture", "upload", capture.to_str().unwrap()]);
    assert!(v["capture"]["records"].as_u64().unwrap() > 0, "{v}");
    let v = ok(&[
        "records",
        "--log-group-id",
        GROUP,
        "--log-topic-id",
        TOPIC,
        "--sql",
        "SELECT count(*) AS n FROM records WHERE action = 'ACCEPT'",
    ]);
    assert!(v["records"][0]["n"].as_u64().unwrap() > 0, "{v}");
    let v = ok(&[
        "records",
        "--log-group-id",
        GROUP,
        "--log-topic-id",
        TOPIC,
        "--search",
        "action:REJECT",
        "--limit",
        "2",
    ]);
    assert_eq!(v["records"].as_array().unwrap().len(), 2);
    assert_eq!(v["next_offset"], 2);

    // Without a token: told how to get one, before any call.
    let out = vpcflow()
        .args(["flow-log", "list", "--project", PROJECT, "--api"])
        .arg(format!("http://{}", server.addr))
        .env_remove("VPCFLOW_TOKEN")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--token"));
}
