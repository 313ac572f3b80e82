//! The OpenAPI 3.1 document served at `/openapi.json`.
//!
//! Built from the same tables as the router ([`crate::api::RESOURCE_KINDS`]
//! and [`crate::api::collection_path`]), with the flow-log, capture and
//! records bodies derived from their Rust types (utoipa), so the document
//! cannot list a path the server lacks or a flow-log field it does not
//! send. Schemathesis checks the server against it in CI.

use serde_json::{Map, Value, json};
use utoipa::PartialSchema;

use crate::api::{RESOURCE_KINDS, collection_path};
use crate::data::{
    AnalysisKind, AnalysisReport, IngestReport, RecordsPage, SuggestionReport, TailWindow,
};
use crate::model::{CreateFields, FlowLog, MAX_PAGE, UpdateFields};
use crate::resources::Kind;

fn schema_of<T: PartialSchema>() -> Value {
    serde_json::to_value(T::schema()).unwrap_or(Value::Null)
}

fn reference(name: &str) -> Value {
    json!({ "$ref": format!("#/components/schemas/{name}") })
}

/// `{"key": <schema>}` with `key` required and nothing else.
fn wrapped(key: &str, schema: Value) -> Value {
    json!({"type": "object", "properties": { key: schema }, "required": [key],
           "additionalProperties": false})
}

fn json_content(schema: Value) -> Value {
    json!({"application/json": {"schema": schema}})
}

fn error(description: &str) -> Value {
    json!({"description": description, "content": json_content(reference("Error"))})
}

/// The answers every `/v1/` call can get besides its own.
fn responses(ok: (&str, Value), errors: &[(&str, &str)]) -> Value {
    let mut r = Map::new();
    let (status, body) = ok;
    r.insert(status.to_string(), body);
    r.insert(
        "401".into(),
        error("No token, or an unknown one (APIGW.0301)"),
    );
    r.insert(
        "403".into(),
        error("The token is another project's (APIGW.0302)"),
    );
    r.insert(
        "429".into(),
        error("Too many unknown tokens from this address (APIGW.0429; Retry-After says when to retry)"),
    );
    for (status, what) in errors {
        r.insert(status.to_string(), error(what));
    }
    Value::Object(r)
}

fn ok_json(schema: Value) -> (&'static str, Value) {
    (
        "200",
        json!({"description": "OK", "content": json_content(schema)}),
    )
}

fn no_content() -> (&'static str, Value) {
    ("204", json!({"description": "Deleted"}))
}

fn path_param(name: &str) -> Value {
    json!({"name": name, "in": "path", "required": true, "schema": {"type": "string"}})
}

fn query_param(name: &str, schema: Value) -> Value {
    json!({"name": name, "in": "query", "required": false, "schema": schema})
}

const BAD: (&str, &str) = ("400", "Invalid parameter or body (VPC.3001)");
const MISSING: (&str, &str) = ("404", "Not found (VPC.3005 flow log, VPC.0404 other)");
const IN_USE: (&str, &str) = ("409", "In use by other resources (VPC.0409)");
const OVER_QUOTA: (&str, &str) = (
    "409",
    "The project's quota of the kind is used up (VPC.0410)",
);
const BUSY: (&str, &str) = (
    "429",
    "The project already runs its most queries at once (VPC.0429), or too many unknown tokens from this address (APIGW.0429)",
);

fn nullable(t: &str) -> Value {
    json!({ "type": [t, "null"] })
}

fn strings() -> Value {
    json!({"type": ["array", "null"], "items": {"type": "string"}})
}

fn objects() -> Value {
    json!({"type": ["array", "null"], "items": {"type": "object"}})
}

/// The schema of an API field (by name: a name means the same in every
/// kind).
fn field_schema(name: &str) -> Value {
    match name {
        "ips" | "security_groups" => strings(),
        "rules" | "ingress_rules" | "egress_rules" => objects(),
        "host_side" => nullable("boolean"),
        "if_index" => json!({"type": ["integer", "null"], "minimum": 0, "maximum": u32::MAX}),
        "ttl_in_days" => json!({"type": ["integer", "null"], "minimum": 1, "maximum": 365}),
        _ => nullable("string"),
    }
}

/// A kind's create body (its required fields) and update body (without
/// the fields that cannot change; null removes an optional field). A log
/// topic's group comes from the path.
fn bodies(kind: Kind) -> (Value, Value) {
    let from_path = |f: &&str| kind != Kind::LogTopic || *f != "log_group_id";
    let props = |keep: &dyn Fn(&&str) -> bool| -> Value {
        Value::Object(
            kind.api_fields()
                .iter()
                .filter(|f| from_path(f) && keep(f))
                .map(|f| (f.to_string(), field_schema(f)))
                .collect(),
        )
    };
    let required: Vec<&str> = kind
        .required_fields()
        .iter()
        .copied()
        .filter(|f| from_path(f))
        .collect();
    (
        json!({"type": "object", "properties": props(&|_| true), "required": required,
               "additionalProperties": false}),
        json!({"type": "object", "properties": props(&|f| !kind.immutable().contains(f)),
               "additionalProperties": false}),
    )
}

fn kind_schemas(kind: Kind, schemas: &mut Map<String, Value>) -> (String, String, String) {
    let base = kind
        .file_key()
        .split('_')
        .map(|w| {
            let mut c = w.chars();
            c.next()
                .map(|f| f.to_ascii_uppercase().to_string() + c.as_str())
                .unwrap_or_default()
        })
        .collect::<String>();
    let (create_body, update_body) = bodies(kind);
    let create = format!("{base}Create");
    let update = format!("{base}Update");
    schemas.insert(create.clone(), create_body);
    schemas.insert(update.clone(), update_body);
    schemas.insert(
        base.clone(),
        json!({"type": "object", "required": ["id", "project_id", "created_at", "updated_at"],
               "properties": {"id": {"type": "string"}, "project_id": {"type": "string"},
                              "created_at": {"type": "string"}, "updated_at": {"type": "string"}},
               "additionalProperties": true}),
    );
    (base, create, update)
}

fn page_params() -> Vec<Value> {
    vec![
        query_param(
            "limit",
            json!({"type": "integer", "minimum": 1, "maximum": MAX_PAGE}),
        ),
        query_param("marker", json!({"type": "string"})),
    ]
}

/// Collection and item paths of a kind; `parents` are the path
/// parameters before the collection (project, and the log group for
/// topics).
fn resource_paths(
    paths: &mut Map<String, Value>,
    prefix: &str,
    parents: &[&str],
    kind: Kind,
    names: (String, String, String),
) {
    let (base, create, update) = names;
    let key = kind.file_key();
    let collection = format!("{prefix}/{}", collection_path(kind));
    let params: Vec<Value> = parents.iter().map(|p| path_param(p)).collect();
    let mut list_params = params.clone();
    list_params.extend(page_params());
    let one = wrapped(key, reference(&base));
    let label = kind.label();
    paths.insert(
        collection.clone(),
        json!({
            "get": {"summary": format!("List {label}s"), "parameters": list_params,
                    "responses": responses(ok_json(wrapped(kind.plural(), json!({"type": "array", "items": reference(&base)}))), &[BAD, MISSING])},
            "post": {"summary": format!("Create a {label}"), "parameters": params,
                     "requestBody": {"required": true, "content": json_content(wrapped(key, reference(&create)))},
                     "responses": responses(ok_json(one.clone()), &[BAD, MISSING, OVER_QUOTA])},
        }),
    );
    let mut item_params = params;
    item_params.push(path_param("id"));
    paths.insert(
        format!("{collection}/{{id}}"),
        json!({
            "get": {"summary": format!("Show a {label}"), "parameters": item_params,
                    "responses": responses(ok_json(one.clone()), &[MISSING])},
            "put": {"summary": format!("Update a {label}"), "parameters": item_params,
                    "requestBody": {"required": true, "content": json_content(wrapped(key, reference(&update)))},
                    "responses": responses(ok_json(one), &[BAD, MISSING])},
            "delete": {"summary": format!("Delete a {label}"), "parameters": item_params,
                       "responses": responses(no_content(), &[MISSING, IN_USE])},
        }),
    );
}

/// The whole document.
pub fn document() -> Value {
    let mut schemas = Map::new();
    schemas.insert(
        "Error".into(),
        json!({"type": "object", "required": ["code", "message"],
               "properties": {"code": {"type": "string"}, "message": {"type": "string"}}}),
    );
    schemas.insert("FlowLog".into(), schema_of::<FlowLog>());
    schemas.insert("FlowLogCreate".into(), schema_of::<CreateFields>());
    schemas.insert("FlowLogUpdate".into(), schema_of::<UpdateFields>());
    schemas.insert("IngestReport".into(), schema_of::<IngestReport>());
    schemas.insert("RecordsPage".into(), schema_of::<RecordsPage>());
    schemas.insert("AnalysisReport".into(), schema_of::<AnalysisReport>());
    schemas.insert("SuggestionReport".into(), schema_of::<SuggestionReport>());
    schemas.insert("TailWindow".into(), schema_of::<TailWindow>());

    let project = "/v1/{project_id}";
    let mut paths = Map::new();
    let flow_log = wrapped("flow_log", reference("FlowLog"));
    let mut list_params = vec![path_param("project_id")];
    for f in [
        "id",
        "name",
        "description",
        "resource_type",
        "resource_id",
        "traffic_type",
        "log_group_id",
        "log_topic_id",
        "status",
    ] {
        list_params.push(query_param(f, json!({"type": "string"})));
    }
    list_params.push(query_param("admin_state", json!({"type": "boolean"})));
    list_params.extend(page_params());
    paths.insert(
        format!("{project}/fl/flow_logs"),
        json!({
            "get": {"summary": "List flow logs", "parameters": list_params,
                    "responses": responses(ok_json(wrapped("flow_logs", json!({"type": "array", "items": reference("FlowLog")}))), &[BAD])},
            "post": {"summary": "Create a flow log", "parameters": [path_param("project_id")],
                     "requestBody": {"required": true, "content": json_content(wrapped("flow_log", reference("FlowLogCreate")))},
                     "responses": responses(ok_json(flow_log.clone()), &[BAD, ("409", "Duplicate (VPC.3004) or quota exceeded (VPC.3003)")])},
        }),
    );
    let item = [path_param("project_id"), path_param("flowlog_id")];
    paths.insert(
        format!("{project}/fl/flow_logs/{{flowlog_id}}"),
        json!({
            "get": {"summary": "Show a flow log", "parameters": item,
                    "responses": responses(ok_json(flow_log.clone()), &[MISSING])},
            "put": {"summary": "Update a flow log (name, description, admin_state)", "parameters": item,
                    "requestBody": {"required": true, "content": json_content(wrapped("flow_log", reference("FlowLogUpdate")))},
                    "responses": responses(ok_json(flow_log), &[BAD, MISSING])},
            "delete": {"summary": "Delete a flow log", "parameters": item,
                       "responses": responses(no_content(), &[MISSING])},
        }),
    );
    paths.insert(
        format!("{project}/quotas"),
        json!({"get": {"summary": "Quotas", "parameters": [path_param("project_id"), query_param("type", json!({"type": "string"}))],
            "responses": responses(ok_json(wrapped("quotas", wrapped("resources", json!({"type": "array", "items": {
                "type": "object", "required": ["type", "used", "quota", "min"],
                "properties": {"type": {"type": "string"}, "used": {"type": "integer"}, "quota": {"type": "integer"}, "min": {"type": "integer"}}}})))), &[BAD])}}),
    );
    for kind in RESOURCE_KINDS {
        let names = kind_schemas(kind, &mut schemas);
        resource_paths(&mut paths, project, &["project_id"], kind, names);
    }
    let names = kind_schemas(Kind::LogTopic, &mut schemas);
    resource_paths(
        &mut paths,
        &format!("{project}/log-groups/{{log_group_id}}"),
        &["project_id", "log_group_id"],
        Kind::LogTopic,
        names,
    );
    // The seed cloud's own paths for a subnet under its VPC and for
    // security-group rules one by one.
    let subnet = wrapped("subnet", reference("Subnet"));
    let in_vpc = [
        path_param("project_id"),
        path_param("vpc_id"),
        path_param("subnet_id"),
    ];
    paths.insert(
        format!("{project}/vpcs/{{vpc_id}}/subnets/{{subnet_id}}"),
        json!({
            "get": {"summary": "Show a subnet of a VPC", "parameters": in_vpc,
                    "responses": responses(ok_json(subnet.clone()), &[MISSING])},
            "put": {"summary": "Update a subnet of a VPC", "parameters": in_vpc,
                    "requestBody": {"required": true, "content": json_content(wrapped("subnet", reference("SubnetUpdate")))},
                    "responses": responses(ok_json(subnet), &[BAD, MISSING])},
            "delete": {"summary": "Delete a subnet of a VPC", "parameters": in_vpc,
                       "responses": responses(no_content(), &[MISSING, IN_USE])},
        }),
    );
    let rule_schema = json!({"type": "object", "required": ["security_group_id", "direction"],
        "properties": {
            "security_group_id": {"type": "string"}, "description": {"type": "string"},
            "direction": {"type": "string", "enum": ["ingress", "egress"]},
            "ethertype": {"type": "string", "enum": ["IPv4", "IPv6"]},
            "protocol": {"type": "string"},
            "port_range_min": {"type": "integer", "minimum": 0, "maximum": 65535},
            "port_range_max": {"type": "integer", "minimum": 0, "maximum": 65535},
            "remote_ip_prefix": {"type": "string"}, "remote_group_id": {"type": "string"}}});
    schemas.insert("SecurityGroupRuleCreate".into(), rule_schema.clone());
    // A rule read back says null for what it does not have.
    let mut rule_view = rule_schema;
    if let Some(p) = rule_view["properties"].as_object_mut() {
        for k in [
            "protocol",
            "port_range_min",
            "port_range_max",
            "remote_ip_prefix",
            "remote_group_id",
        ] {
            if let Some(t) = p.get_mut(k)
                && let Some(ty) = t.get("type").cloned()
            {
                t["type"] = json!([ty, "null"]);
            }
        }
        p.insert("id".into(), json!({"type": "string"}));
        p.insert("tenant_id".into(), json!({"type": "string"}));
    }
    schemas.insert("SecurityGroupRule".into(), rule_view);
    let rule = wrapped("security_group_rule", reference("SecurityGroupRule"));
    let mut rule_list = vec![path_param("project_id")];
    for f in [
        "security_group_id",
        "direction",
        "protocol",
        "remote_ip_prefix",
    ] {
        rule_list.push(query_param(f, json!({"type": "string"})));
    }
    rule_list.extend(page_params());
    paths.insert(
        format!("{project}/security-group-rules"),
        json!({
            "get": {"summary": "List security-group rules", "parameters": rule_list,
                    "responses": responses(ok_json(wrapped("security_group_rules", json!({"type": "array", "items": reference("SecurityGroupRule")}))), &[BAD])},
            "post": {"summary": "Add a rule to a security group", "parameters": [path_param("project_id")],
                     "requestBody": {"required": true, "content": json_content(wrapped("security_group_rule", reference("SecurityGroupRuleCreate")))},
                     "responses": responses(ok_json(rule.clone()), &[BAD, MISSING])},
        }),
    );
    let one_rule = [path_param("project_id"), path_param("rule_id")];
    paths.insert(
        format!("{project}/security-group-rules/{{rule_id}}"),
        json!({
            "get": {"summary": "Show a security-group rule", "parameters": one_rule,
                    "responses": responses(ok_json(rule), &[MISSING])},
            "delete": {"summary": "Delete a security-group rule", "parameters": one_rule,
                       "responses": responses(no_content(), &[MISSING])},
        }),
    );
    // Network ACLs as the seed cloud's v3 firewalls.
    let fw = wrapped(
        "firewall",
        json!({"type": "object", "additionalProperties": true}),
    );
    let fw_body = json_content(wrapped("firewall", json!({"type": "object"})));
    let one_fw = [path_param("project_id"), path_param("firewall_id")];
    let mut fw_list = vec![path_param("project_id")];
    for f in ["id", "name", "status", "enterprise_project_id"] {
        fw_list.push(query_param(f, json!({"type": "string"})));
    }
    fw_list.push(query_param("admin_state_up", json!({"type": "boolean"})));
    fw_list.extend(page_params());
    paths.insert(
        "/v3/{project_id}/vpc/firewalls".into(),
        json!({
            "get": {"summary": "List network ACLs in the seed cloud's firewall shape", "parameters": fw_list,
                    "responses": responses(ok_json(wrapped("firewalls", json!({"type": "array"}))), &[BAD])},
            "post": {"summary": "Create a network ACL (firewall)", "parameters": [path_param("project_id")],
                     "requestBody": {"required": true, "content": fw_body.clone()},
                     "responses": responses(ok_json(fw.clone()), &[BAD, OVER_QUOTA])},
        }),
    );
    paths.insert(
        "/v3/{project_id}/vpc/firewalls/{firewall_id}".into(),
        json!({
            "get": {"summary": "Show a network ACL (firewall)", "parameters": one_fw,
                    "responses": responses(ok_json(fw.clone()), &[MISSING])},
            "put": {"summary": "Rename or describe a network ACL (firewall)", "parameters": one_fw,
                    "requestBody": {"required": true, "content": fw_body.clone()},
                    "responses": responses(ok_json(fw.clone()), &[BAD, MISSING])},
            "delete": {"summary": "Delete a network ACL (firewall)", "parameters": one_fw,
                       "responses": responses(no_content(), &[MISSING, IN_USE])},
        }),
    );
    let fw_call = [
        path_param("project_id"),
        path_param("firewall_id"),
        json!({"name": "action", "in": "path", "required": true, "schema": {"type": "string",
               "enum": ["insert-rules", "remove-rules", "update-rules", "associate-subnets", "disassociate-subnets"]}}),
    ];
    paths.insert(
        "/v3/{project_id}/vpc/firewalls/{firewall_id}/{action}".into(),
        json!({"put": {"summary": "Insert, remove or update a network ACL's rules, or (dis)associate subnets",
            "parameters": fw_call, "requestBody": {"required": true, "content": json_content(json!({"type": "object"}))},
            "responses": responses(ok_json(fw), &[BAD, MISSING])}}),
    );
    let mut record_params = vec![
        path_param("project_id"),
        path_param("log_group_id"),
        path_param("id"),
    ];
    for p in ["since", "until", "last", "search", "sql"] {
        record_params.push(query_param(p, json!({"type": "string"})));
    }
    record_params.push(query_param(
        "limit",
        json!({"type": "integer", "minimum": 1, "maximum": 10000}),
    ));
    record_params.push(query_param(
        "offset",
        json!({"type": "integer", "minimum": 0, "maximum": i64::MAX}),
    ));
    paths.insert(
        format!("{project}/log-groups/{{log_group_id}}/log-topics/{{id}}/records"),
        json!({"get": {"summary": "Query a log topic's records (search, time range, SQL over `records`), by pages",
            "parameters": record_params,
            "responses": responses(ok_json(reference("RecordsPage")), &[BAD, MISSING, BUSY])}}),
    );
    let mut analysis_params = vec![
        path_param("project_id"),
        path_param("log_group_id"),
        path_param("id"),
        json!({"name": "kind", "in": "path", "required": true,
               "schema": {"type": "string", "enum": AnalysisKind::NAMES}}),
    ];
    for p in ["since", "until", "last", "thresholds", "bucket"] {
        analysis_params.push(query_param(p, json!({"type": "string"})));
    }
    analysis_params.push(query_param(
        "top",
        json!({"type": "integer", "minimum": 1, "maximum": crate::api::ANALYSIS_TOP_MAX}),
    ));
    analysis_params.push(query_param("hits", json!({"type": "boolean"})));
    analysis_params.push(query_param(
        "by",
        json!({"type": "string", "enum": ["bytes", "packets"]}),
    ));
    paths.insert(
        format!("{project}/log-groups/{{log_group_id}}/log-topics/{{id}}/analysis/{{kind}}"),
        json!({"get": {"summary": "Analyze a log topic's records: `rules` (unused, shadowed, broad rules, deny hits; with `hits=true`, every rule's hit counters instead), `suggest` (a least-privilege model from the traffic, with its changes and the replay of the range's accepted flows through it), `attacks` (scans, sweeps, brute force, floods, reflection, denied bursts; `thresholds` as NAME=VALUE,...), `traffic` (direction split, top talkers and conversations per `bucket`)",
            "parameters": analysis_params,
            "responses": responses(ok_json(reference("AnalysisReport")), &[BAD, MISSING, BUSY])}}),
    );
    paths.insert(
        format!("{project}/log-groups/{{log_group_id}}/log-topics/{{id}}/tail"),
        json!({"get": {"summary": "Live tail: server-sent events, one `window` event (a TailWindow) per closed window of this topic",
            "parameters": [path_param("project_id"), path_param("log_group_id"), path_param("id")],
            "responses": responses(("200", json!({"description": "An event stream",
                "content": {"text/event-stream": {"schema": {"type": "string"}}}})), &[MISSING])}}),
    );
    paths.insert(
        format!("{project}/captures"),
        json!({"post": {"summary": "Ingest a pcap or pcapng capture (optionally gzipped) as the project's traffic",
            "parameters": [path_param("project_id")],
            "requestBody": {"required": true, "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}},
            "responses": responses(ok_json(wrapped("capture", reference("IngestReport"))), &[BAD])}}),
    );
    paths.insert(
        "/v1/auth/token".into(),
        json!({"get": {"summary": "The project of the caller's token (what a client holding only a token needs)",
            "responses": responses(ok_json(wrapped("token", wrapped("project", json!({"type": "object", "required": ["id"],
                "properties": {"id": {"type": "string"}}})))), &[])}}),
    );
    paths.insert(
        "/health".into(),
        json!({"get": {"summary": "Liveness", "security": [],
            "responses": {"200": {"description": "OK", "content": json_content(json!({"type": "object"}))}}}}),
    );
    paths.insert(
        "/metrics".into(),
        json!({"get": {"summary": "Prometheus metrics", "security": [],
            "responses": {"200": {"description": "Prometheus text", "content": {"text/plain": {"schema": {"type": "string"}}}}}}}),
    );
    json!({
        "openapi": "3.1.0",
        "info": {"title": "vpcflow", "version": env!("CARGO_PKG_VERSION"),
                 "description": "VPC flow logs: the seed cloud's flow-log API, the model it refers to, records and captures."},
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {
                "token": {"type": "apiKey", "in": "header", "name": "X-Auth-Token"},
                "access_key": {"type": "apiKey", "in": "header", "name": "Authorization",
                    "description": "SDK-HMAC-SHA256 Access=AK, SignedHeaders=..., Signature=... with X-Sdk-Date, as the seed cloud's SDKs sign (vpcflow token create --access-key)"},
            },
        },
        "security": [{"token": []}, {"access_key": []}],
    })
}
