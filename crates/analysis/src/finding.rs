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
    pub flow_log_id: String,
    /// The port (`interface-id`), when the finding is about one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub interface_id: Option<String>,
    /// Start of the capture window (Unix seconds).
    pub start: u64,
    /// Its end.
    pub end: u64,
    /// The source, when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub srcaddr: Option<String>,
    /// The source port (for a reflection: the service reflected).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub srcport: Option<u64>,
    /// The service port attacked.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dstport: Option<u64>,
    /// Distinct sources.
    pub sources: u64,
    /// Distinct destination addresses.
    pub dstaddrs: u64,
    /// Distinct destination ports.
    pub dstports: u64,
    /// Flows (records): one per connection attempt for TCP and UDP.
    pub connections: u64,
    /// Packets.
    pub packets: u64,
    /// Bytes.
    pub bytes: u64,
    /// The actions seen: `ACCEPT`, `REJECT` or `ACCEPT,REJECT`.
    pub actions: String,
    /// The security group or ACL of the rule that let it in (or, when all
    /// of it was rejected, that rejected it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub policy_id: Option<String>,
    /// That rule: for accepted traffic, the rule to tighten.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rule_id: Option<String>,
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
        "srcaddr",
        "srcport",
        "dstport",
        "sources",
        "dstaddrs",
        "dstports",
        "connections",
        "packets",
        "bytes",
        "actions",
        "rule-id",
    ];
    let rows: Vec<[String; 15]> = findings
        .iter()
        .map(|f| {
            [
                f.kind.to_string(),
                f.flow_log_id.clone(),
                f.start.to_string(),
                dash(&f.interface_id),
                dash(&f.srcaddr),
                num(f.srcport),
                num(f.dstport),
                f.sources.to_string(),
                f.dstaddrs.to_string(),
                f.dstports.to_string(),
                f.connections.to_string(),
                f.packets.to_string(),
                f.bytes.to_string(),
                f.actions.clone(),
                dash(&f.rule_id),
            ]
        })
        .collect();
    let mut widths = header.map(str::len);
    for r in &rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.len());
        }
    }
    let line = |cells: &[String]| {
        let mut s = String::new();
        for (i, (c, w)) in cells.iter().zip(widths).enumerate() {
            if i > 0 {
                s.push_str("  ");
            }
            s.push_str(&format!("{c:<w$}"));
        }
        s.trim_end().to_string()
    };
    writeln!(out, "{}", line(&header.map(String::from)))?;
    for r in &rows {
        writeln!(out, "{}", line(r))?;
    }
    Ok(())
}
