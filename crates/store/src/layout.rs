//! Where a window's records go: the one definition of the partition
//! directories' names, how they read back, and the move from the layout
//! of earlier versions.
//!
//! `log_group=<id>/log_topic=<id>/date=YYYYMMDD/hour=H`: the date and the
//! hour (UTC) of the window's start, as whole numbers without leading
//! zeros, so every engine that infers Hive partition types reads both as
//! integers (`hour=08` was text to DuckDB and a number to Polars, and
//! `date=2019-01-29` a date to some and text to others).

use std::fs;
use std::path::{Path, PathBuf};

use crate::StoreError;

/// The UTC calendar date (year, month, day) and hour of Unix second `t`.
pub fn civil_date(t: u64) -> (i64, u32, u32, u32) {
    // Howard Hinnant's days-from-civil inverse.
    let days = (t / 86_400) as i64;
    let hour = ((t % 86_400) / 3600) as u32;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d, hour)
}

fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * ((m + 9) % 12) + 2) / 5 + d - 1;
    era * 146_097 + yoe * 365 + yoe / 4 - yoe / 100 + doy - 719_468
}

fn date_dir(y: i64, m: u32, d: u32) -> String {
    format!("date={y:04}{m:02}{d:02}")
}

fn hour_dir(h: u32) -> String {
    format!("hour={h}")
}

/// The partition directory of a log topic's records of the window starting at `start`.
pub fn partition(root: &Path, group: &str, topic: &str, start: u64) -> PathBuf {
    let (y, m, d, h) = civil_date(start);
    root.join(format!("log_group={group}"))
        .join(format!("log_topic={topic}"))
        .join(date_dir(y, m, d))
        .join(hour_dir(h))
}

/// The (year, month, day) a date directory's name holds, if it is one.
fn parse_date(dir: &str) -> Option<(i64, i64, i64)> {
    let d = dir.strip_prefix("date=")?;
    if d.len() != 8 || !d.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let (y, m, dd) = (
        d[..4].parse().ok()?,
        d[4..6].parse().ok()?,
        d[6..].parse().ok()?,
    );
    ((1..=12).contains(&m) && (1..=31).contains(&dd)).then_some((y, m, dd))
}

fn parse_hour(dir: &str) -> Option<i64> {
    let h = dir.strip_prefix("hour=")?;
    let n: i64 = h.parse().ok()?;
    (n.to_string() == h && (0..24).contains(&n)).then_some(n)
}

/// Unix second at which the hour partition `date`/`hour` (directory names)
/// ends, if they are a partition's names.
pub(crate) fn partition_end(date: &str, hour: &str) -> Option<u64> {
    let (y, m, d) = parse_date(date)?;
    let h = parse_hour(hour)?;
    u64::try_from(days_from_civil(y, m, d) * 86_400 + (h + 1) * 3600).ok()
}

/// The names a partition of the earlier layout (`date=YYYY-MM-DD/hour=HH`)
/// has now, if `date`/`hour` are such names.
fn renamed_legacy(date: &str, hour: &str) -> Option<(String, String)> {
    let d = date.strip_prefix("date=")?.as_bytes();
    let h = hour.strip_prefix("hour=")?;
    let shaped = d.len() == 10 && d[4] == b'-' && d[7] == b'-' && h.len() == 2;
    if !shaped {
        return None;
    }
    let digits = |b: &[u8]| std::str::from_utf8(b).ok()?.parse::<u32>().ok();
    let (y, m, dd) = (digits(&d[..4])?, digits(&d[5..7])?, digits(&d[8..])?);
    let h: u32 = h.parse().ok()?;
    (h < 24).then(|| (date_dir(i64::from(y), m, dd), hour_dir(h)))
}

pub(crate) fn subdirs(dir: &Path) -> Result<Vec<PathBuf>, StoreError> {
    let mut v: Vec<PathBuf> = fs::read_dir(dir)
        .map_err(|e| StoreError::io(dir, e))?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.is_dir())
        .collect();
    v.sort();
    Ok(v)
}

pub(crate) fn name(p: &Path) -> String {
    p.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// Moves the hour partitions of the earlier layout under `root` to their
/// names now, with the files in them. Each move is a rename; one cut short
/// by a crash is finished by the next call. Returns how many hours moved.
pub(crate) fn migrate_legacy_partitions(root: &Path) -> Result<usize, StoreError> {
    let mut moved = 0;
    for group in subdirs(root)? {
        if !name(&group).starts_with("log_group=") {
            continue;
        }
        for topic in subdirs(&group)? {
            for date in subdirs(&topic)? {
                let mut legacy = false;
                for hour in subdirs(&date)? {
                    let Some((new_date, new_hour)) = renamed_legacy(&name(&date), &name(&hour))
                    else {
                        continue;
                    };
                    legacy = true;
                    let to_date = topic.join(new_date);
                    let to = to_date.join(new_hour);
                    fs::create_dir_all(&to_date).map_err(|e| StoreError::io(&to_date, e))?;
                    if !to.exists() {
                        fs::rename(&hour, &to).map_err(|e| StoreError::io(&hour, e))?;
                    } else {
                        // A move cut short: the rest file by file.
                        for f in fs::read_dir(&hour).map_err(|e| StoreError::io(&hour, e))? {
                            let f = f.map_err(|e| StoreError::io(&hour, e))?.path();
                            let dest = to.join(f.file_name().unwrap_or_default());
                            fs::rename(&f, &dest).map_err(|e| StoreError::io(&f, e))?;
                        }
                        fs::remove_dir(&hour).map_err(|e| StoreError::io(&hour, e))?;
                    }
                    moved += 1;
                }
                if legacy {
                    let _ = fs::remove_dir(&date);
                }
            }
        }
    }
    Ok(moved)
}

/// An hour partition of the earlier layout under `dirs`, if there is one:
/// a store no writer has opened since an upgrade.
pub(crate) fn legacy_partition_under(dirs: &[PathBuf]) -> Option<PathBuf> {
    let mut stack = dirs.to_vec();
    while let Some(d) = stack.pop() {
        for sub in subdirs(&d).ok()? {
            let n = name(&sub);
            if n.starts_with("date=") {
                let hours = subdirs(&sub).ok()?;
                if let Some(h) = hours
                    .into_iter()
                    .find(|h| renamed_legacy(&n, &name(h)).is_some())
                {
                    return Some(h);
                }
            } else {
                stack.push(sub);
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_of_known_instants() {
        assert_eq!(civil_date(0), (1970, 1, 1, 0));
        assert_eq!(civil_date(1_548_752_136), (2019, 1, 29, 8));
        assert_eq!(civil_date(951_782_400), (2000, 2, 29, 0));
        assert_eq!(civil_date(4_102_444_799), (2099, 12, 31, 23));
    }

    #[test]
    fn hive_layout() {
        let p = partition(Path::new("/s"), "g1", "t1", 1_548_752_136);
        assert_eq!(
            p,
            Path::new("/s/log_group=g1/log_topic=t1/date=20190129/hour=8")
        );
    }

    #[test]
    fn partition_ends() {
        assert_eq!(partition_end("date=19700101", "hour=0"), Some(3600));
        assert_eq!(
            partition_end("date=20190129", "hour=8"),
            Some(1_548_752_400)
        );
        for (d, h) in [
            ("date=20190129", "nonsense"),
            ("date=20190129", "hour=08"),
            ("date=20190129", "hour=24"),
            ("date=2019-01-29", "hour=8"),
            ("date=20191329", "hour=8"),
        ] {
            assert_eq!(partition_end(d, h), None, "{d}/{h}");
        }
    }

    #[test]
    fn legacy_partitions_move_to_their_names_now() {
        let dir = tempfile::tempdir().unwrap();
        let topic = dir.path().join("log_group=g/log_topic=t");
        let old = topic.join("date=2019-01-29/hour=08");
        fs::create_dir_all(&old).unwrap();
        fs::write(old.join("a.parquet"), b"a").unwrap();
        // A move cut short: the new hour exists with one file already.
        let old9 = topic.join("date=2019-01-29/hour=09");
        fs::create_dir_all(&old9).unwrap();
        fs::write(old9.join("c.parquet"), b"c").unwrap();
        let new9 = topic.join("date=20190129/hour=9");
        fs::create_dir_all(&new9).unwrap();
        fs::write(new9.join("b.parquet"), b"b").unwrap();
        assert_eq!(migrate_legacy_partitions(dir.path()).unwrap(), 2);
        assert!(!topic.join("date=2019-01-29").exists());
        assert_eq!(
            fs::read(topic.join("date=20190129/hour=8/a.parquet")).unwrap(),
            b"a"
        );
        assert!(new9.join("b.parquet").exists() && new9.join("c.parquet").exists());
        assert_eq!(migrate_legacy_partitions(dir.path()).unwrap(), 0);
    }
}
