//! Time as the core sees it: handed in by the host, never read from a clock.

use core::ops::Add;
use core::time::Duration;

/// A point in time, in microseconds since an arbitrary zero chosen by the
/// host (usually the moment it started).
///
/// The core never reads a clock; every `handle_*` call takes `now`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Instant(u64);

impl Instant {
    /// The host's zero.
    pub const ZERO: Self = Self(0);

    /// The instant `micros` microseconds after the host's zero.
    pub const fn from_micros(micros: u64) -> Self {
        Self(micros)
    }

    /// Microseconds since the host's zero.
    pub const fn as_micros(self) -> u64 {
        self.0
    }

    /// How long after `earlier` this is; zero if `earlier` is later (time
    /// that seems to go backwards is clamped, never a panic).
    pub fn saturating_since(self, earlier: Instant) -> Duration {
        Duration::from_micros(self.0.saturating_sub(earlier.0))
    }
}

impl Add<Duration> for Instant {
    type Output = Instant;

    fn add(self, rhs: Duration) -> Instant {
        let micros = u64::try_from(rhs.as_micros()).unwrap_or(u64::MAX);
        Instant(self.0.saturating_add(micros))
    }
}

/// Shows a duration for people the way the host's `humantime` does (the
/// core is `no_std`, so it cannot use that crate): `0s`, `5s`, `1m 30s`,
/// `1h 2m 3s 250ms`, never Rust's `Debug` form (`0ns`, `1.5s`).
pub struct HumanDuration(pub Duration);

impl core::fmt::Display for HumanDuration {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let secs = self.0.as_secs();
        let nanos = self.0.subsec_nanos();
        if secs == 0 && nanos == 0 {
            return f.write_str("0s");
        }
        let parts = [
            (secs / 86_400, "d"),
            (secs / 3600 % 24, "h"),
            (secs / 60 % 60, "m"),
            (secs % 60, "s"),
            (u64::from(nanos / 1_000_000), "ms"),
            (u64::from(nanos / 1000 % 1000), "us"),
            (u64::from(nanos % 1000), "ns"),
        ];
        let mut first = true;
        for (value, unit) in parts {
            if value > 0 {
                if !first {
                    f.write_str(" ")?;
                }
                write!(f, "{value}{unit}")?;
                first = false;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::string::ToString;

    use super::*;

    #[test]
    fn durations_are_shown_for_people() {
        let shown = |d: Duration| HumanDuration(d).to_string();
        assert_eq!(shown(Duration::ZERO), "0s");
        assert_eq!(shown(Duration::from_secs(5)), "5s");
        assert_eq!(shown(Duration::from_secs(90)), "1m 30s");
        assert_eq!(shown(Duration::from_millis(250)), "250ms");
        assert_eq!(
            shown(Duration::new(90_061, 2_003_004)),
            "1d 1h 1m 1s 2ms 3us 4ns"
        );
    }
}
