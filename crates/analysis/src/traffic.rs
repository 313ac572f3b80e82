//! The direction of traffic, and who talks most, over time buckets:
//!
//! - `direction`: per port and per subnet, flows, packets and bytes
//!   `ingress` and `egress`, each `east-west` (the other end is in the
//!   port's VPC: one of its or its subnets' CIDRs) or `north-south`;
//! - `top-talker`: per port and per subnet, the other ends with the most
//!   bytes (or packets), both directions together;
//! - `top-conversation`: per port, the (source, destination, service,
//!   protocol) with the most bytes (or packets).
//!
//! Every row is per flow log, like the other analyses: a port under two
//! flow logs is counted in each, never twice in one.

use vpcflow_core::Inventory;

use crate::{AnalysisError, Finding, Records, Row, quote};

/// How `analyze traffic` groups and ranks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TrafficOptions {
    /// Bucket length in seconds (at least one window: a bucket holds whole
    /// windows, by their start).
    pub bucket_secs: u64,
    /// Talkers and conversations listed per port (and subnet) and bucket.
    pub top: u64,
    /// Rank by packets instead of bytes.
    pub by_packets: bool,
}

impl Default for TrafficOptions {
    fn default() -> Self {
        TrafficOptions {
            bucket_secs: 3600,
            top: 5,
            by_packets: false,
        }
    }
}

/// The other end of a record's traffic.
const REMOTE: &str = "CASE WHEN direction = 'ingress' THEN srcaddr ELSE dstaddr END";

/// An SQL condition: the other end is inside the port's VPC.
fn east_west(inv: &Inventory) -> String {
    let mut per_vpc = Vec::new();
    for (vi, v) in inv.vpcs.iter().enumerate() {
        let mut nets = vec![v.cidr];
        nets.extend(v.ipv6_cidr);
        for s in inv.subnets.iter().filter(|s| s.vpc == vi) {
            nets.push(s.cidr);
            nets.extend(s.ipv6_cidr);
        }
        nets.sort();
        nets.dedup();
        let inside: Vec<String> = nets
            .iter()
            .map(|n| format!("cidr_contains({REMOTE}, {})", quote(&n.to_string())))
            .collect();
        per_vpc.push(format!(
            "(vpc_id = {} AND ({}))",
            quote(&v.id),
            inside.join(" OR ")
        ));
    }
    if per_vpc.is_empty() {
        "FALSE".into()
    } else {
        per_vpc.join(" OR ")
    }
}

fn counts(f: &mut Finding, r: &Row, at: usize) -> Result<(), AnalysisError> {
    f.connections = Some(r.u64(at)?);
    f.packets = Some(r.u64(at + 1)?);
    f.bytes = Some(r.u64(at + 2)?);
    Ok(())
}

/// Every traffic row over `records`, for the VPCs of `inv`.
pub fn find(
    records: &Records<'_>,
    inv: &Inventory,
    o: &TrafficOptions,
) -> Result<Vec<Finding>, AnalysisError> {
    if o.bucket_secs == 0 || o.top == 0 {
        return Err(AnalysisError::Threshold(
            "the bucket and the number of top rows must be positive".into(),
        ));
    }
    let b = o.bucket_secs;
    let bucket = format!("start - start % {b}");
    let scope = format!(
        "CASE WHEN {} THEN 'east-west' ELSE 'north-south' END",
        east_west(inv)
    );
    // Over the grouped rows' sums.
    let rank = if o.by_packets {
        "packets DESC, bytes DESC"
    } else {
        "bytes DESC, packets DESC"
    };
    let mut out = Vec::new();
    let base = |f: &mut Finding, r: &Row| -> Result<(), AnalysisError> {
        f.flow_log_id = r.text(0)?.to_string();
        f.start = r.u64(1)?;
        f.end = f.start + b;
        Ok(())
    };
    for (place, column) in [("port", "interface_id"), ("subnet", "network_id")] {
        let rows = records.sql(format!(
            "SELECT flow_log_id, {bucket} AS bucket, {column}, direction, {scope} AS scope, \
               COUNT(*), SUM(packets), SUM(bytes) \
             FROM records WHERE log_status = 'OK' \
             GROUP BY flow_log_id, bucket, {column}, direction, scope"
        ))?;
        for r in &rows {
            let mut f = Finding {
                kind: "direction",
                direction: Some(r.text(3)?.to_string()),
                scope: Some(r.text(4)?.to_string()),
                ..Finding::default()
            };
            base(&mut f, r)?;
            set_place(&mut f, place, r.text(2)?);
            counts(&mut f, r, 5)?;
            out.push(f);
        }
        let rows = records.sql(records.top_per_group(
            &format!(
                "SELECT flow_log_id, {bucket} AS bucket, {column}, {REMOTE} AS remote, \
                   COUNT(*) AS flows, SUM(packets) AS packets, SUM(bytes) AS bytes \
                 FROM records WHERE log_status = 'OK' \
                 GROUP BY flow_log_id, bucket, {column}, remote"
            ),
            &format!("flow_log_id, bucket, {column}"),
            &format!("{rank}, remote"),
            o.top,
            &format!("flow_log_id, bucket, {column}, remote, flows, packets, bytes"),
        ))?;
        for r in &rows {
            let mut f = Finding {
                kind: "top-talker",
                remote: Some(r.text(3)?.to_string()),
                ..Finding::default()
            };
            base(&mut f, r)?;
            set_place(&mut f, place, r.text(2)?);
            counts(&mut f, r, 4)?;
            out.push(f);
        }
    }
    let rows = records.sql(records.top_per_group(
        &format!(
            "SELECT flow_log_id, {bucket} AS bucket, interface_id, srcaddr, dstaddr, dstport, \
               protocol, COUNT(*) AS flows, SUM(packets) AS packets, SUM(bytes) AS bytes \
             FROM records WHERE log_status = 'OK' \
             GROUP BY flow_log_id, bucket, interface_id, srcaddr, dstaddr, dstport, protocol"
        ),
        "flow_log_id, bucket, interface_id",
        &format!("{rank}, srcaddr, dstaddr, dstport, protocol"),
        o.top,
        "flow_log_id, bucket, interface_id, srcaddr, dstaddr, dstport, protocol, flows, packets, bytes",
    ))?;
    for r in &rows {
        let mut f = Finding {
            kind: "top-conversation",
            interface_id: Some(r.text(2)?.to_string()),
            srcaddr: Some(r.text(3)?.to_string()),
            dstaddr: Some(r.text(4)?.to_string()),
            dstport: Some(r.u64(5)?),
            protocol: Some(r.u64(6)?),
            ..Finding::default()
        };
        base(&mut f, r)?;
        counts(&mut f, r, 7)?;
        out.push(f);
    }
    // Buckets in time order; within one, each place's rows together, the
    // largest first.
    let volume = |f: &Finding| {
        if o.by_packets {
            (f.packets, f.bytes)
        } else {
            (f.bytes, f.packets)
        }
    };
    out.sort_by(|a, b| {
        (
            a.start,
            &a.flow_log_id,
            a.kind,
            &a.network_id,
            &a.interface_id,
        )
            .cmp(&(
                b.start,
                &b.flow_log_id,
                b.kind,
                &b.network_id,
                &b.interface_id,
            ))
            .then_with(|| volume(b).cmp(&volume(a)))
            .then_with(|| {
                (
                    &a.direction,
                    &a.scope,
                    &a.remote,
                    &a.srcaddr,
                    &a.dstaddr,
                    a.dstport,
                    a.protocol,
                )
                    .cmp(&(
                        &b.direction,
                        &b.scope,
                        &b.remote,
                        &b.srcaddr,
                        &b.dstaddr,
                        b.dstport,
                        b.protocol,
                    ))
            })
    });
    Ok(out)
}

fn set_place(f: &mut Finding, place: &str, id: &str) {
    if place == "port" {
        f.interface_id = Some(id.to_string());
    } else {
        f.network_id = Some(id.to_string());
    }
}
