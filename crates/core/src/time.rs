//! Time as values: timestamps and capture-window arithmetic.

/// A point in time, nanoseconds since the Unix epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Timestamp(pub u64);

impl Timestamp {
    /// From whole seconds.
    pub fn from_secs(s: u64) -> Timestamp {
        Timestamp(s.saturating_mul(1_000_000_000))
    }
    /// Whole seconds, rounded down.
    pub fn secs(self) -> u64 {
        self.0 / 1_000_000_000
    }
}

/// The length of a capture window in seconds. Windows are aligned to
/// multiples of it since the Unix epoch (SPEC §2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WindowLength(u32);

impl WindowLength {
    /// The seed's default: 10 minutes.
    pub const DEFAULT: WindowLength = WindowLength(600);
    /// The shortest window an inventory or the command line may ask for.
    pub const MIN_CONFIGURED: u32 = 60;
    /// The longest.
    pub const MAX_CONFIGURED: u32 = 600;

    /// A window of `secs` seconds, within the range SPEC §2 allows.
    pub fn configured(secs: u32) -> Option<WindowLength> {
        (Self::MIN_CONFIGURED..=Self::MAX_CONFIGURED)
            .contains(&secs)
            .then_some(WindowLength(secs))
    }

    /// Any positive length; for tests and simulations that need short windows.
    pub fn any(secs: u32) -> Option<WindowLength> {
        (secs > 0).then_some(WindowLength(secs))
    }

    /// Seconds.
    pub fn secs(self) -> u64 {
        u64::from(self.0)
    }

    /// Start (Unix seconds) of the window holding `t`.
    pub fn start_of(self, t: Timestamp) -> u64 {
        let s = t.secs();
        s - s % self.secs()
    }
}

/// A time or duration the user wrote that is not one: the message names it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct TimeParseError(String);

/// Parses `90s`, `15m`, `1h`, `7d`.
pub fn parse_duration_secs(s: &str) -> Result<u64, TimeParseError> {
    let (n, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let n: u64 = n
        .parse()
        .map_err(|_| TimeParseError(format!("`{s}` is not a duration like 90s, 15m, 1h, 7d")))?;
    let mult = match unit {
        "s" | "" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => {
            return Err(TimeParseError(format!(
                "`{s}`: the unit must be s, m, h or d"
            )));
        }
    };
    n.checked_mul(mult)
        .ok_or_else(|| TimeParseError(format!("`{s}` is too long a duration")))
}

/// Parses Unix seconds or RFC 3339 (`2026-11-24T10:00:00Z`, offsets allowed).
pub fn parse_instant(s: &str) -> Result<u64, TimeParseError> {
    if let Ok(n) = s.parse::<u64>() {
        return Ok(n);
    }
    let bad = || {
        TimeParseError(format!(
            "`{s}` is neither Unix seconds nor an RFC 3339 time like 2026-11-24T10:00:00Z"
        ))
    };
    let b = s.as_bytes();
    if b.len() < 20
        || b[4] != b'-'
        || b[7] != b'-'
        || !matches!(b[10], b'T' | b't' | b' ')
        || b[13] != b':'
        || b[16] != b':'
    {
        return Err(bad());
    }
    let num =
        |r: std::ops::Range<usize>| s.get(r).and_then(|x| x.parse::<i64>().ok()).ok_or_else(bad);
    let (y, mo, d, h, mi, se) = (
        num(0..4)?,
        num(5..7)?,
        num(8..10)?,
        num(11..13)?,
        num(14..16)?,
        num(17..19)?,
    );
    let mut rest = &s[19..];
    if let Some(r) = rest.strip_prefix('.') {
        rest = r.trim_start_matches(|c: char| c.is_ascii_digit());
    }
    let offset = match rest {
        "Z" | "z" => 0,
        r if r.len() == 6 && (r.starts_with('+') || r.starts_with('-')) => {
            let sign = if r.starts_with('-') { -1 } else { 1 };
            let hh: i64 = r[1..3].parse().map_err(|_| bad())?;
            let mm: i64 = r[4..6].parse().map_err(|_| bad())?;
            sign * (hh * 3600 + mm * 60)
        }
        _ => return Err(bad()),
    };
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || se > 60 {
        return Err(bad());
    }
    let t = days_from_civil(y, mo, d) * 86_400 + h * 3600 + mi * 60 + se - offset;
    u64::try_from(t).map_err(|_| bad())
}

/// Days from 1970-01-01 to the proleptic Gregorian date `y-m-d` (Howard
/// Hinnant's days from civil; `m` 1 to 12, `d` 1 to 31, not checked).
pub fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * ((m + 9) % 12) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_align_to_the_epoch() {
        let w = WindowLength::DEFAULT;
        assert_eq!(w.start_of(Timestamp::from_secs(1548752136)), 1548751800);
        assert_eq!(w.start_of(Timestamp::from_secs(1548752400)), 1548752400);
        assert_eq!(w.start_of(Timestamp(1_548_752_399_999_999_999)), 1548751800);
    }

    #[test]
    fn configured_range() {
        assert!(WindowLength::configured(59).is_none());
        assert!(WindowLength::configured(60).is_some());
        assert!(WindowLength::configured(600).is_some());
        assert!(WindowLength::configured(601).is_none());
        assert!(WindowLength::any(0).is_none());
    }

    #[test]
    fn instants_and_durations() {
        assert_eq!(parse_instant("1548752136").unwrap(), 1_548_752_136);
        assert_eq!(
            parse_instant("2019-01-29T09:35:36Z").unwrap(),
            1_548_754_536
        );
        assert_eq!(
            parse_instant("2019-01-29T10:35:36+01:00").unwrap(),
            1_548_754_536
        );
        assert_eq!(
            parse_instant("2000-02-29T00:00:00.5Z").unwrap(),
            951_782_400
        );
        assert!(parse_instant("yesterday").is_err());
        assert!(parse_instant("2019-13-01T00:00:00Z").is_err());
        assert_eq!(parse_duration_secs("15m").unwrap(), 900);
        assert_eq!(parse_duration_secs("7d").unwrap(), 604_800);
        assert!(parse_duration_secs("1w").is_err());
        assert!(parse_duration_secs("400000000000000000d").is_err());
    }
}
