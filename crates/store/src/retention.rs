//! Retention: each log group keeps its records `ttl_in_days` (SPEC §1).
//!
//! Whole hour partitions go once their last instant is older than the
//! group's retention; a partition is removed by renaming it to a hidden name
//! first, so a crash mid-way never leaves a half-deleted hour visible.

use std::fs;
use std::path::{Path, PathBuf};

use crate::StoreError;
use crate::layout::{name, partition_end, subdirs};

/// What a collection removed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GcReport {
    /// Hour partitions removed.
    pub partitions: Vec<PathBuf>,
    /// Log groups in the store with no retention given (kept).
    pub unknown_groups: Vec<String>,
}

/// Removes every hour partition older than its group's retention at `now`
/// (Unix seconds). `ttl_days` gives a group's retention by id.
pub fn gc(
    root: &Path,
    ttl_days: impl Fn(&str) -> Option<u32>,
    now: u64,
) -> Result<GcReport, StoreError> {
    let mut report = GcReport::default();
    // Leftovers of an interrupted collection.
    for p in walk_dirs(root)? {
        if name(&p).starts_with(".gc-") {
            fs::remove_dir_all(&p).map_err(|e| StoreError::io(&p, e))?;
        }
    }
    for group_dir in subdirs(root)? {
        let Some(group) = name(&group_dir)
            .strip_prefix("log_group=")
            .map(str::to_string)
        else {
            continue;
        };
        let Some(ttl) = ttl_days(&group) else {
            report.unknown_groups.push(group);
            continue;
        };
        let horizon = now.saturating_sub(u64::from(ttl) * 86_400);
        for topic in subdirs(&group_dir)? {
            for date in subdirs(&topic)? {
                for hour in subdirs(&date)? {
                    let Some(end) = partition_end(&name(&date), &name(&hour)) else {
                        continue;
                    };
                    if end <= horizon {
                        let hidden = date.join(format!(".gc-{}", name(&hour)));
                        fs::rename(&hour, &hidden).map_err(|e| StoreError::io(&hour, e))?;
                        fs::remove_dir_all(&hidden).map_err(|e| StoreError::io(&hidden, e))?;
                        report.partitions.push(hour);
                    }
                }
                if fs::read_dir(&date)
                    .map(|mut d| d.next().is_none())
                    .unwrap_or(false)
                {
                    let _ = fs::remove_dir(&date);
                }
            }
        }
    }
    Ok(report)
}

/// An hour partition directory and the instant its hour ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct HourPartition {
    pub path: PathBuf,
    pub end: u64,
}

/// Every hour partition of the store, in path order.
pub(crate) fn hour_partitions(root: &Path) -> Result<Vec<HourPartition>, StoreError> {
    let mut out = Vec::new();
    for group in subdirs(root)? {
        if !name(&group).starts_with("log_group=") {
            continue;
        }
        for topic in subdirs(&group)? {
            for date in subdirs(&topic)? {
                for hour in subdirs(&date)? {
                    if let Some(end) = partition_end(&name(&date), &name(&hour)) {
                        out.push(HourPartition { path: hour, end });
                    }
                }
            }
        }
    }
    Ok(out)
}

fn walk_dirs(root: &Path) -> Result<Vec<PathBuf>, StoreError> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for p in subdirs(&d)? {
            stack.push(p.clone());
            out.push(p);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expired_hours_go_and_others_stay() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let mk = |g: &str, d: &str, h: &str| {
            let p = root.join(format!("log_group={g}/log_topic=t/date={d}/hour={h}"));
            fs::create_dir_all(&p).unwrap();
            fs::write(p.join("x.parquet"), b"x").unwrap();
            p
        };
        let old = mk("a", "20190101", "0");
        let edge = mk("a", "20190101", "23");
        let keep = mk("a", "20190102", "0");
        let other = mk("b", "20190101", "0");
        let unknown = mk("c", "20000101", "0");
        // now = 2019-01-09T00:00:00Z; group a keeps 7 days, b 30.
        let now = 1_546_992_000;
        let r = gc(
            root,
            |g| match g {
                "a" => Some(7),
                "b" => Some(30),
                _ => None,
            },
            now,
        )
        .unwrap();
        assert!(!old.exists() && !edge.exists());
        assert!(keep.exists() && other.exists() && unknown.exists());
        assert_eq!(r.partitions.len(), 2);
        assert_eq!(r.unknown_groups, vec!["c".to_string()]);
        assert!(!root.join("log_group=a/log_topic=t/date=20190101").exists());
    }
}
