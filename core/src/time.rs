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
