//! Network ACLs in the seed cloud's own shape and path: its v3 "firewall"
//! (`/v3/{project_id}/vpc/firewalls`), which is what its SDK
//! (`huaweicloudsdkvpc.v3`) calls a network ACL.
//!
//! A firewall is a stored network ACL seen another way: its rules are
//! already the cloud's (`action`, `protocol`, `source_ip_address`,
//! `destination_port`, ...), so this module only reshapes views, reads
//! the cloud's bodies and changes rule lists the way its rule calls do
//! (`insert-rules`, `remove-rules`, `update-rules`). Every change goes
//! through the same model check as any other; nothing here writes.

use serde_json::{Map, Value, json};

use vpcflow_core::inventory::acl_rule_id;

use crate::ControlError;

/// Body and list keys.
pub const FIREWALL: &str = "firewall";
/// See [`FIREWALL`].
pub const FIREWALLS: &str = "firewalls";

/// The two rule lists: the cloud's name and the stored one.
const LISTS: [(&str, &str); 2] = [
    ("ingress_rules", "ingress_rule"),
    ("egress_rules", "egress_rule"),
];

/// The direction of a stored list (`ingress_rule`), as rule ids name it.
fn direction(stored: &str) -> &str {
    stored.trim_end_matches("_rule")
}

/// Gives every rule of a stored list the id the model knows it by
/// ([`acl_rule_id`] for one written without), so that ids stay what they
/// were shown as when rules are added, moved or renamed.
fn freeze_ids(stored: &str, rules: &mut [Value]) {
    for (n, r) in rules.iter_mut().enumerate() {
        if let Value::Object(m) = r
            && !m.contains_key("id")
        {
            let name = m.get("name").and_then(Value::as_str);
            let id = acl_rule_id(name, direction(stored), n);
            m.insert("id".into(), Value::from(id));
        }
    }
}

/// The rule fields the cloud's firewall rules have (all stored as is).
const RULE_FIELDS: [&str; 11] = [
    "id",
    "name",
    "description",
    "action",
    "protocol",
    "ip_version",
    "source_ip_address",
    "destination_ip_address",
    "source_port",
    "destination_port",
    "enabled",
];

fn invalid(msg: impl Into<String>) -> ControlError {
    ControlError::Invalid(msg.into())
}

/// A request body's top-level object, restricted to `top` keys (and
/// `dry_run`, which the SDK may send; only `false` is honoured: a call
/// here always does what it says).
pub fn parse(body: &[u8], top: &[&str]) -> Result<Map<String, Value>, ControlError> {
    let v: Value =
        serde_json::from_slice(body).map_err(|e| invalid(format!("request body: {e}")))?;
    let Value::Object(mut m) = v else {
        return Err(invalid("request body: expected a JSON object"));
    };
    match m.remove("dry_run") {
        None | Some(Value::Bool(false)) => {}
        Some(v) => return Err(invalid(format!("dry_run: {v}: not supported here"))),
    }
    if let Some(k) = m.keys().find(|k| !top.contains(&k.as_str())) {
        return Err(invalid(format!(
            "request body: unknown field `{k}` (expected {})",
            top.join(", ")
        )));
    }
    Ok(m)
}

/// The `firewall` object of a parsed body, its fields limited to `allowed`.
pub fn inner(
    mut top: Map<String, Value>,
    allowed: &[&str],
) -> Result<Map<String, Value>, ControlError> {
    let Some(Value::Object(m)) = top.remove(FIREWALL) else {
        return Err(invalid("request body: `firewall` must be an object"));
    };
    if let Some(k) = m.keys().find(|k| !allowed.contains(&k.as_str())) {
        return Err(invalid(format!(
            "firewall: unknown field `{k}`; this call takes {}",
            allowed.join(", ")
        )));
    }
    Ok(m)
}

/// A create or update body's fields as a network ACL's (`name`,
/// `description`); what vpcflow cannot honour is refused, naming it.
pub fn acl_fields(mut f: Map<String, Value>) -> Result<Map<String, Value>, ControlError> {
    match f.remove("admin_state_up") {
        None | Some(Value::Bool(true)) => {}
        Some(v) => {
            return Err(invalid(format!(
                "admin_state_up: {v}: a network ACL here is always on (detach it from its subnets instead)"
            )));
        }
    }
    match f.remove("type") {
        None => {}
        Some(Value::String(s)) if s == "normal" => {}
        Some(v) => return Err(invalid(format!("type: {v}: only \"normal\""))),
    }
    match f.remove("enterprise_project_id") {
        None => {}
        Some(Value::String(s)) if s == "0" => {}
        Some(v) => return Err(invalid(format!("enterprise_project_id: {v}: only \"0\""))),
    }
    Ok(f)
}

/// The rules of a body's list (`ingress_rules`), each checked to have
/// only the cloud's rule fields.
fn rules_of(f: &Map<String, Value>, list: &str) -> Result<Option<Vec<Value>>, ControlError> {
    let Some(v) = f.get(list) else {
        return Ok(None);
    };
    let rules = v
        .as_array()
        .ok_or_else(|| invalid(format!("{list}: expected a list")))?;
    for r in rules {
        let r = r
            .as_object()
            .ok_or_else(|| invalid(format!("{list}: every rule is an object")))?;
        if let Some(k) = r.keys().find(|k| !RULE_FIELDS.contains(&k.as_str())) {
            return Err(invalid(format!(
                "{list}: unknown rule field `{k}`; a rule has {}",
                RULE_FIELDS.join(", ")
            )));
        }
    }
    Ok(Some(rules.clone()))
}

/// Runs `f` on a stored rule list (made empty if absent).
fn with_list<R>(
    item: &mut Map<String, Value>,
    stored: &str,
    f: impl FnOnce(&mut Vec<Value>) -> R,
) -> R {
    let mut rules = match item.remove(stored) {
        Some(Value::Array(rules)) => rules,
        _ => Vec::new(),
    };
    freeze_ids(stored, &mut rules);
    let out = f(&mut rules);
    item.insert(stored.into(), Value::Array(rules));
    out
}

fn rule_id(r: &Value) -> Option<&str> {
    r.get("id").and_then(Value::as_str)
}

/// `insert-rules`: the body's rules go, in their order and each with a
/// new id, after `insert_after_rule` in their list, or at the front of
/// it without one (as the cloud documents; with one, only one list may
/// be given).
pub fn insert_rules(
    item: &mut Map<String, Value>,
    f: &Map<String, Value>,
) -> Result<(), ControlError> {
    let after = f.get("insert_after_rule").and_then(Value::as_str);
    if after.is_some() && f.contains_key("ingress_rules") && f.contains_key("egress_rules") {
        return Err(invalid(
            "insert_after_rule: give ingress_rules or egress_rules, not both",
        ));
    }
    let mut placed = after.is_none();
    for (list, stored) in LISTS {
        let Some(new) = rules_of(f, list)? else {
            continue;
        };
        let new: Vec<Value> = new
            .into_iter()
            .map(|mut r| {
                if let Value::Object(m) = &mut r {
                    m.insert("id".into(), Value::from(uuid::Uuid::new_v4().to_string()));
                }
                r
            })
            .collect();
        with_list(item, stored, |rules| {
            let at = match after.and_then(|a| rules.iter().position(|r| rule_id(r) == Some(a))) {
                Some(i) => {
                    placed = true;
                    i + 1
                }
                None => 0,
            };
            rules.splice(at..at, new);
        });
    }
    if !placed {
        return Err(invalid(format!(
            "insert_after_rule: no rule {} in the lists given",
            after.unwrap_or_default()
        )));
    }
    Ok(())
}

/// `remove-rules`: the rules the body names by id go.
pub fn remove_rules(
    item: &mut Map<String, Value>,
    f: &Map<String, Value>,
) -> Result<(), ControlError> {
    for (list, stored) in LISTS {
        let Some(gone) = rules_of(f, list)? else {
            continue;
        };
        with_list(item, stored, |rules| {
            for g in &gone {
                let id = rule_id(g)
                    .ok_or_else(|| invalid(format!("{list}: every rule needs its id")))?;
                let before = rules.len();
                rules.retain(|r| rule_id(r) != Some(id));
                if rules.len() == before {
                    return Err(invalid(format!("{list}: no rule {id}")));
                }
            }
            Ok(())
        })?;
    }
    Ok(())
}

/// `update-rules`: each rule the body names by id takes the fields given
/// (a null removes one).
pub fn update_rules(
    item: &mut Map<String, Value>,
    f: &Map<String, Value>,
) -> Result<(), ControlError> {
    for (list, stored) in LISTS {
        let Some(changes) = rules_of(f, list)? else {
            continue;
        };
        with_list(item, stored, |rules| {
            for c in &changes {
                let id = rule_id(c)
                    .ok_or_else(|| invalid(format!("{list}: every rule needs its id")))?;
                let Some(Value::Object(rule)) = rules.iter_mut().find(|r| rule_id(r) == Some(id))
                else {
                    return Err(invalid(format!("{list}: no rule {id}")));
                };
                for (k, v) in c.as_object().into_iter().flatten() {
                    if v.is_null() {
                        rule.remove(k);
                    } else {
                        rule.insert(k.clone(), v.clone());
                    }
                }
            }
            Ok(())
        })?;
    }
    Ok(())
}

/// A rule as the cloud shows it: ports as text, `ip_version` and
/// `enabled` filled.
fn cloud_rule(r: &Value) -> Value {
    let mut out = r.as_object().cloned().unwrap_or_default();
    for k in ["source_port", "destination_port"] {
        if let Some(Value::Number(n)) = out.get(k) {
            let text = n.to_string();
            out.insert(k.into(), Value::from(text));
        }
    }
    let v6 = ["source_ip_address", "destination_ip_address"]
        .iter()
        .any(|k| {
            out.get(*k)
                .and_then(Value::as_str)
                .is_some_and(|a| a.contains(':'))
        });
    out.entry("ip_version")
        .or_insert(Value::from(if v6 { 6 } else { 4 }));
    out.entry("enabled").or_insert(Value::Bool(true));
    out.entry("protocol").or_insert(Value::from("any"));
    out.entry("description").or_insert(Value::from(""));
    Value::Object(out)
}

/// A network ACL (its API view) as the cloud's firewall, with the
/// subnets it is associated with. Rules written without an id show the
/// one the model (and so the records' `rule-id`) knows them by.
pub fn view(acl: &Value, subnets: &[String]) -> Value {
    let text = |k: &str| acl.get(k).cloned().unwrap_or(Value::from(""));
    let rules = |k: &str| {
        let mut rs = acl
            .get(k)
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let stored = LISTS.iter().find(|(c, _)| *c == k).map_or(k, |(_, s)| *s);
        freeze_ids(stored, &mut rs);
        Value::Array(rs.iter().map(cloud_rule).collect())
    };
    json!({
        "id": text("id"),
        "name": text("name"),
        "description": text("description"),
        "project_id": text("project_id"),
        "created_at": text("created_at"),
        "updated_at": text("updated_at"),
        "admin_state_up": true,
        "status": "ACTIVE",
        "enterprise_project_id": "0",
        "tags": [],
        "type": "normal",
        "associations": subnets.iter().map(|s| json!({"virsubnet_id": s})).collect::<Vec<_>>(),
        "ingress_rules": rules("ingress_rules"),
        "egress_rules": rules("egress_rules"),
    })
}

/// The subnet ids of an `associate-subnets` / `disassociate-subnets`
/// body (`{"subnets": [{"virsubnet_id": ...}]}`).
pub fn subnets_of(f: &Map<String, Value>) -> Result<Vec<String>, ControlError> {
    f.get("subnets")
        .and_then(Value::as_array)
        .ok_or_else(|| invalid("subnets: required, a list of {\"virsubnet_id\": ...}"))?
        .iter()
        .map(|s| {
            s.get("virsubnet_id")
                .and_then(Value::as_str)
                .map(str::to_string)
                .ok_or_else(|| invalid("subnets: every entry needs a virsubnet_id"))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item() -> Map<String, Value> {
        json!({"ingress_rule": [{"id": "a", "action": "allow"}, {"id": "b", "action": "deny"}]})
            .as_object()
            .unwrap()
            .clone()
    }

    fn ids(item: &Map<String, Value>) -> Vec<String> {
        item["ingress_rule"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| rule_id(r).unwrap().to_string())
            .collect()
    }

    #[test]
    fn rules_go_in_after_the_one_named_and_out_by_id() {
        let mut it = item();
        let body = json!({"ingress_rules": [{"action": "deny", "protocol": "tcp"}],
                          "insert_after_rule": "a"});
        insert_rules(&mut it, body.as_object().unwrap()).unwrap();
        let got = ids(&it);
        assert_eq!((got.len(), got[0].as_str(), got[2].as_str()), (3, "a", "b"));
        let body = json!({"ingress_rules": [{"id": "a"}]});
        remove_rules(&mut it, body.as_object().unwrap()).unwrap();
        assert_eq!(ids(&it).len(), 2);
        let e = remove_rules(&mut it, body.as_object().unwrap()).unwrap_err();
        assert!(e.to_string().contains("no rule a"), "{e}");
        let body = json!({"ingress_rules": [{"id": "b", "action": "allow"}]});
        update_rules(&mut it, body.as_object().unwrap()).unwrap();
        assert_eq!(it["ingress_rule"][1]["action"], "allow");
        let body = json!({"ingress_rules": [{"id": "b", "colour": "red"}]});
        let e = update_rules(&mut it, body.as_object().unwrap()).unwrap_err();
        assert!(e.to_string().contains("colour"), "{e}");
    }

    #[test]
    fn the_view_fills_what_the_sdk_models() {
        let acl = json!({"id": "x", "name": "n", "project_id": "p", "created_at": "t",
                         "updated_at": "t", "ingress_rules": [{"id": "r", "action": "allow",
                         "source_ip_address": "::/0", "destination_port": 22}]});
        let v = view(&acl, &["s1".to_string()]);
        assert_eq!(v["associations"][0]["virsubnet_id"], "s1");
        // Ids as the model gives rules written without one.
        let acl2 =
            json!({"egress_rules": [{"action": "allow"}, {"name": "out", "action": "allow"}]});
        let v2 = view(&acl2, &[]);
        assert_eq!(v2["egress_rules"][0]["id"], "egress-1");
        assert_eq!(v2["egress_rules"][1]["id"], "out");
        let r = &v["ingress_rules"][0];
        assert_eq!(
            (r["ip_version"].as_i64(), r["destination_port"].as_str()),
            (Some(6), Some("22"))
        );
        assert_eq!(v["egress_rules"], json!([]));
    }
}
