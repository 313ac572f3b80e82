//! A finding, and the two ways it is written.

use std::io::{self, Write};

use serde::Serialize;

/// Something an analysis found: what, where, when, and the traffic behind
/// it. Fields that do not apply to a kind are absent.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct Finding {
    /// `port-scan`, `host-sweep`, `brute-force`, ...
    pub kind: &'static str,
    /// The flow log whose records show it.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub flow_log_id: String,
    /// The port (`interface-id`), when the finding is about one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub interface_id: Option<String>,
    /// The subnet (`network-id`), when the finding is about one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub network_id: Option<String>,
    /// Start of the capture window (Unix seconds).
    pub start: u64,
    /// Its end.
    pub end: u64,
    /// `ingress` or `egress`, when the finding is about one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub direction: Option<String>,
    /// `east-west` (the other end is in the port's VPC) or `north-south`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    /// The other end of a port's traffic (a top talker).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub remote: Option<String>,
    /// The source, when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub srcaddr: Option<String>,
    /// The destination (of a conversation).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dstaddr: Option<String>,
    /// The source port (for a reflection: the service reflected).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub srcport: Option<u64>,
    /// The service port attacked (or of a conversation).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dstport: Option<u64>,
    /// IANA protocol number (of a conversation).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub protocol: Option<u64>,
    /// Distinct sources.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sources: Option<u64>,
    /// Distinct destination addresses.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dstaddrs: Option<u64>,
    /// Distinct destination ports.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dstports: Option<u64>,
    /// Flows (records): one per connection attempt for TCP and UDP.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub connections: Option<u64>,
    /// Packets.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub packets: Option<u64>,
    /// Bytes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bytes: Option<u64>,
    /// The actions seen: `ACCEPT`, `REJECT` or `ACCEPT,REJECT`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub actions: Option<String>,
    /// Which check a rule finding is about (`sg-ingress`, `acl-egress`, ...).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub decided_by: Option<String>,
    /// The security group or ACL of the rule that let it in (or, when all
    /// of it was rejected, that rejected it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub policy_id: Option<String>,
    /// That rule: for accepted traffic, the rule to tighten.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rule_id: Option<String>,
    /// What a person needs to act on it, in words (the shadowing rule, the
    /// observed use of a broad rule, the top sources of a deny).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// One JSON object per line.
pub fn write_json(findings: &[Finding], out: &mut impl Write) -> io::Result<()> {
    for f in findings {
        serde_json::to_writer(&mut *out, f).map_err(io::Error::other)?;
        out.write_all(b"\n")?;
    }
    Ok(())
}

/// A table for a terminal.
pub fn write_table(findings: &[Finding], out: &mut impl Write) -> io::Result<()> {
    if findings.is_empty() {
        return writeln!(out, "(no findings)");
    }
    let dash = |o: &Option<String>| o.clone().unwrap_or_else(|| "-".into());
    let num = |o: Option<u64>| o.map_or_else(|| "-".into(), |n| n.to_string());
    let header = [
        "kind",
        "flow-log-id",
        "start",
        "interface-id",
        "network-id",
        "direction",
        "scope",
        "remote",
        "srcaddr",
        "dstaddr",
        "srcport",
        "dstport",
        "protocol",
        "sources",
        "dstaddrs",
        "dstports",
        "connections",
        "packets",
        "bytes",
        "actions",
        "decided-by",
        "policy-id",
        "rule-id",
        "detail",
    ];
    let rows: Vec<[String; 24]> = findings
        .iter()
        .map(|f| {
            [
                f.kind.to_string(),
                dash(&Some(f.flow_log_id.clone()).filter(|s| !s.is_empty())),
                f.start.to_string(),
                dash(&f.interface_id),
                dash(&f.network_id),
                dash(&f.direction),
                dash(&f.scope),
                dash(&f.remote),
                dash(&f.srcaddr),
                dash(&f.dstaddr),
                num(f.srcport),
                num(f.dstport),
                num(f.protocol),
                num(f.sources),
                num(f.dstaddrs),
                num(f.dstports),
                num(f.connections),
                num(f.packets),
                num(f.bytes),
                dash(&f.actions),
                dash(&f.decided_by),
                dash(&f.policy_id),
                dash(&f.rule_id),
                dash(&f.detail),
            ]
        })
        .collect();
    // Only the columns some finding has a value in.
    let shown: Vec<usize> = (0..header.len())
        .filter(|&c| rows.iter().any(|r| r[c] != "-"))
        .collect();
    let header: Vec<&str> = shown.iter().map(|&c| header[c]).collect();
    let rows: Vec<Vec<String>> = rows
        .into_iter()
        .map(|r| shown.iter().map(|&c| r[c].clone()).collect())
        .collect();
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for r in &rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.len());
        }
    }
    let line = |cells: &[String]| {
        let mut s = String::new();
        for (i, (c, w)) in cells.iter().zip(&widths).enumerate() {
            if i > 0 {
                s.push_str("  ");
            }
            s.push_str(&format!("{c:<w$}", w = *w));
        }
        s.trim_end().to_string()
    };
    let header: Vec<String> = header.iter().map(|h| h.to_string()).collect();
    writeln!(out, "{}", line(&header))?;
    for r in &rows {
        writeln!(out, "{}", line(r))?;
    }
    Ok(())
}
