//! `vpcflow analyze` through the API of a real `vpcflow serve`: the crafted
//! capture of the example VPC under attack (`vpcflow_tools::attacks`)
//! uploaded, then the topic's rules, attacks and traffic analyzed with the
//! project's model; the same through `vpcflow analysis`; bad kinds and
//! parameters are 400s naming them; another project reaches none of it.

use serde_json::Value;
use vpcflow_tools::attacks::{expect, write_capture};

mod common;
use common::server::{Server, token};
use common::vpcflow;

const PROJECT: &str = "5f67944957444bd6bb4fe3b367de8f3d";
const GROUP: &str = "a1b2c3d4-0000-4000-8000-000000000001";
/// The topic of the example's VPC flow log.
const TOPIC: &str = "a1b2c3d4-0000-4000-8000-000000000002";

fn kinds(v: &Value) -> Vec<&str> {
    let mut k: Vec<&str> = v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["kind"].as_str().unwrap())
        .collect();
    k.sort();
    k.dedup();
    k
}

#[test]
fn a_topics_rules_attacks_and_traffic_through_the_api() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let token_text = token(dir.path(), PROJECT);
    let t = Some(token_text.as_str());
    let capture = dir.path().join("attacks.pcap");
    write_capture(&capture, true).unwrap();
    let (s, v) = server.upload(
        &format!("/v1/{PROJECT}/captures"),
        t,
        &std::fs::read(&capture).unwrap(),
    );
    assert_eq!(s, 200, "{v}");
    let analysis = format!("/v1/{PROJECT}/log-groups/{GROUP}/log-topics/{TOPIC}/analysis");

    // The uploaded capture is in 600 s windows (the example's): the
    // attacks counted in flows and sources are found; the rate-based ones
    // (a 60 s flood averaged over 600 s) are not, unless asked to be.
    let (s, v) = server.request("GET", &format!("{analysis}/attacks"), t, None);
    assert_eq!(s, 200, "{v}");
    let found = kinds(&v);
    for kind in ["brute-force", "host-sweep", "port-scan", "syn-flood"] {
        assert!(found.contains(&kind), "{kind}: {v:#}");
    }
    assert!(!found.contains(&"udp-flood"), "{v:#}");
    let brute = v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["kind"] == "brute-force")
        .unwrap();
    assert_eq!(brute["srcaddr"], expect::BRUTE_FORCER);
    assert_eq!(brute["interface-id"], expect::WEB_1);
    let (s, v) = server.request(
        "GET",
        &format!("{analysis}/attacks?thresholds=udp-flood-pps%3D100,port-scan-dstports%3D101"),
        t,
        None,
    );
    assert_eq!(s, 200, "{v}");
    let found = kinds(&v);
    assert!(
        found.contains(&"udp-flood") && !found.contains(&"port-scan"),
        "{v:#}"
    );

    let (s, v) = server.request("GET", &format!("{analysis}/rules"), t, None);
    assert_eq!(s, 200, "{v}");
    assert!(kinds(&v).contains(&"denied-hits"), "{v:#}");
    assert!(kinds(&v).contains(&"unused-rule"), "{v:#}");

    // Every rule's hit counters: one row per rule of the model, the
    // flows they decided adding up to the records the rules decided.
    let (s, v) = server.request("GET", &format!("{analysis}/rules?hits=true"), t, None);
    assert_eq!(s, 200, "{v}");
    assert_eq!(kinds(&v), ["rule-hits"]);
    let hits = v["findings"].as_array().unwrap();
    assert!(hits.iter().any(|f| f["connections"].as_u64() > Some(0)));
    assert!(hits.iter().any(|f| f["rule-id"] == "no-telnet"), "{v:#}");

    // A least-privilege model from the traffic, replayed through it: the
    // changes, and a model that `vpcflow ingest` takes as an inventory.
    let (s, v) = server.request("GET", &format!("{analysis}/suggest"), t, None);
    assert_eq!(s, 200, "{v}");
    assert_eq!(kinds(&v), ["suggested-change"], "{v:#}");
    let suggestion = &v["suggestion"];
    assert!(suggestion["checked"].as_u64() > Some(0), "{suggestion}");
    assert_eq!(suggestion["newly_rejected"], 0);
    let suggested = dir.path().join("suggested.toml");
    std::fs::write(&suggested, suggestion["inventory"].as_str().unwrap()).unwrap();
    let o = vpcflow()
        .arg("ingest")
        .arg("--config")
        .arg(&suggested)
        .arg(&capture)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(!o.stdout.is_empty());

    let (s, v) = server.request(
        "GET",
        &format!("{analysis}/traffic?bucket=1h&top=2&by=packets"),
        t,
        None,
    );
    assert_eq!(s, 200, "{v}");
    assert_eq!(kinds(&v), ["direction", "top-conversation", "top-talker"]);
    let db_talker = v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["kind"] == "top-talker" && f["interface-id"] == expect::DB)
        .unwrap();
    assert_eq!(db_talker["remote"], expect::FLOODER);

    // The CLI client says the same.
    let o = vpcflow()
        .args(["analysis", "attacks", "--api"])
        .arg(format!("http://{}", server.addr))
        .args(["--token", &token_text, "--project", PROJECT])
        .args(["--log-group-id", GROUP, "--log-topic-id", TOPIC])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let cli: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(kinds(&cli).contains(&"brute-force"), "{cli:#}");

    // Bad requests name what is wrong.
    for (query, says) in [
        (
            "/nothing",
            "'nothing' is not one of rules, attacks, traffic, suggest",
        ),
        (
            "/attacks?thresholds=port-scan%3D5",
            "'port-scan' is not one",
        ),
        (
            "/attacks?thresholds=syn-flood-flows%3D0",
            "not a positive integer",
        ),
        ("/traffic?top=0", "top: 0 is not 1 to 1000"),
        ("/traffic?by=flows", "'flows' is not bytes or packets"),
        ("/rules?by=null", "'null' is not bytes or packets"),
        ("/traffic?bucket=soon", "bucket"),
        ("/rules?since=yesterday", "since"),
        ("/rules?color=red", "unknown field"),
    ] {
        let (s, v) = server.request("GET", &format!("{analysis}{query}"), t, None);
        assert_eq!(s, 400, "{query}: {v}");
        let message = v.to_string();
        assert!(message.contains(says), "{query}: {message}");
    }
    // Another project's token reaches nothing of it.
    let other = token(dir.path(), "another-project");
    let (s, v) = server.request("GET", &format!("{analysis}/attacks"), Some(&other), None);
    assert!(s == 403 || s == 404, "{s} {v}");
}
