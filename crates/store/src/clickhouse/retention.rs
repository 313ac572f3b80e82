//! Retention on ClickHouse: each log group keeps its records
//! `ttl_in_days` (SPEC §1), the same hours as the Parquet store keeps.
//!
//! A day partition whose every hour is past the group's retention is
//! dropped whole (`DROP PARTITION`, on every host the URL lists); in the
//! day the horizon falls in, the hours past it are deleted (a mutation,
//! only when there are such rows). Debian's 18.16 has no `TTL`; doing it
//! here works on every release alike.

use std::path::PathBuf;

use super::{ClickHouse, Target, literal};
use crate::{GcReport, StoreError};

/// `('group',20240102)`, a partition of `records` as `system.parts` names it.
fn parse_partition(text: &str) -> Option<(String, i64)> {
    let inner = text.strip_prefix('(')?.strip_suffix(')')?;
    let (group, date) = inner.rsplit_once(',')?;
    let group = group.trim().strip_prefix('\'')?.strip_suffix('\'')?;
    Some((group.to_string(), date.trim().parse().ok()?))
}

/// The first second of `YYYYMMDD` (UTC).
fn day_start(date: i64) -> Option<u64> {
    let (y, m, d) = (date / 10_000, date / 100 % 100, date % 100);
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) {
        return None;
    }
    u64::try_from(vpcflow_core::time::days_from_civil(y, m, d) * 86_400).ok()
}

impl ClickHouse {
    /// Removes the records past their log group's retention at `now`:
    /// `ttl_days` where it knows the group, else the catalog's.
    pub fn gc(
        &self,
        ttl_days: impl Fn(&str) -> Option<u32>,
        now: u64,
    ) -> Result<GcReport, StoreError> {
        let catalog = self.catalog()?;
        let ttl_days = |g: &str| ttl_days(g).or_else(|| catalog.ttl_in_days(g));
        let mut report = GcReport::default();
        let local = self.local_table("records");
        for i in 0..self.url.hosts.len() {
            let host = Target::Host(i);
            let parts = self.statement(
                host,
                &format!(
                    "SELECT DISTINCT partition FROM system.parts WHERE active AND database = {} \
                     AND table = {} ORDER BY partition FORMAT TabSeparatedRaw",
                    literal(&self.url.database),
                    literal(
                        local
                            .rsplit('.')
                            .next()
                            .unwrap_or_default()
                            .trim_matches('"')
                    )
                ),
                None,
                &[],
            )?;
            for line in parts.lines() {
                let Some((group, date)) = parse_partition(line) else {
                    continue;
                };
                let Some(ttl) = ttl_days(&group) else {
                    if !report.unknown_groups.contains(&group) {
                        report.unknown_groups.push(group);
                    }
                    continue;
                };
                let Some(first) = day_start(date) else {
                    continue;
                };
                // The hours whose end is at or before the horizon.
                let horizon = now.saturating_sub(u64::from(ttl) * 86_400);
                let cut = horizon - horizon % 3600;
                let name = PathBuf::from(format!("log_group={group}/date={date}"));
                if first + 86_400 <= cut {
                    self.statement(
                        host,
                        &format!(
                            "ALTER TABLE {local} DROP PARTITION ({}, {date})",
                            literal(&group)
                        ),
                        None,
                        &[],
                    )?;
                    if !report.partitions.contains(&name) {
                        report.partitions.push(name);
                    }
                } else if first < cut {
                    let which = format!(
                        "log_group = {} AND date = {date} AND start < {cut}",
                        literal(&group)
                    );
                    let n =
                        self.count(host, &format!("SELECT count() FROM {local} WHERE {which}"))?;
                    if n > 0 {
                        self.statement(
                            host,
                            &format!("ALTER TABLE {local} DELETE WHERE {which}"),
                            None,
                            &[],
                        )?;
                        let hours = name.join(format!("hour<{}", (cut - first) / 3600));
                        if !report.partitions.contains(&hours) {
                            report.partitions.push(hours);
                        }
                    }
                }
            }
        }
        Ok(report)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partitions_name_their_group_and_day() {
        assert_eq!(
            parse_partition("('lg-1',20240102)"),
            Some(("lg-1".to_string(), 20_240_102))
        );
        assert_eq!(parse_partition("20240102"), None);
        assert_eq!(day_start(19_700_101), Some(0));
        assert_eq!(day_start(20_240_102), Some(1_704_153_600));
        assert_eq!(day_start(20_241_301), None);
    }
}
