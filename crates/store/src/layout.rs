//! Where a window's records go.

use std::path::{Path, PathBuf};

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

/// The partition directory of a log topic's records of the window starting at `start`.
pub fn partition(root: &Path, group: &str, topic: &str, start: u64) -> PathBuf {
    let (y, m, d, h) = civil_date(start);
    root.join(format!("log_group={group}"))
        .join(format!("log_topic={topic}"))
        .join(format!("date={y:04}-{m:02}-{d:02}"))
        .join(format!("hour={h:02}"))
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
            Path::new("/s/log_group=g1/log_topic=t1/date=2019-01-29/hour=08")
        );
    }
}
