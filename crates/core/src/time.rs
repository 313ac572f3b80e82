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
}
