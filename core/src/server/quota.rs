//! Refusals that are not the directory's: who may delete a room, and the
//! quotas (rooms per client address, connections per client address,
//! commands per second per connection).

use core::fmt::{self, Write as _};

use crate::directory::DirectoryError;
use crate::error::ErrorCode;
use crate::text::Truncating;
use crate::time::Instant;
use crate::wire::{LineBuf, RoomName};

/// Why a command was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Refusal {
    /// The directory refused it.
    Directory(DirectoryError),
    /// `deleteroom` of an owned room without its token, from another
    /// connection than the one that made it.
    Denied(RoomName),
    /// The client address has this many rooms, its quota.
    Rooms(usize),
    /// The connection sends commands faster than its quota: the rate per
    /// second and the burst.
    Rate(u32, u32),
    /// A private `makeroom` with a salt `salt` did not give this
    /// connection (or after no `salt` at all).
    BadSalt,
}

impl Refusal {
    pub(super) fn code(&self) -> ErrorCode {
        match self {
            Refusal::Directory(e) => e.code(),
            Refusal::Denied(_) => ErrorCode::Denied,
            Refusal::Rooms(_) | Refusal::Rate(..) => ErrorCode::Quota,
            Refusal::BadSalt => ErrorCode::BadSalt,
        }
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refusal::Directory(e) => e.fmt(f),
            Refusal::Denied(name) => write!(
                f,
                "only the owner of room '{name}' may delete it: the connection that made it, \
                 or with the token 'makeroom' gave ('deleteroom {name} <token>'), or the \
                 server's operator with the admin token"
            ),
            // The first word after the code says which quota.
            Refusal::Rooms(limit) => write!(
                f,
                "rooms: your address has made {limit} rooms, the most it may have at once; \
                 delete one first"
            ),
            Refusal::BadSalt => f.write_str(
                "that salt was not given to this connection by 'salt'; send 'salt', derive \
                 the key with the salt it answers, and send makeroom again",
            ),
            Refusal::Rate(rate, burst) => write!(
                f,
                "rate: more than {rate} commands a second (bursts of {burst}); the command \
                 was not run, slow down and send it again"
            ),
        }
    }
}

/// The line that turns away a connection from an address that holds
/// `limit` connections already (sent instead of the greeting, before the
/// host closes).
pub fn connections_quota_reply(limit: usize) -> LineBuf {
    let mut line = Truncating(LineBuf::new());
    let code = ErrorCode::Quota;
    let _ = writeln!(
        line,
        "ERR {code} connections: your address holds {limit} connections to this server, \
         the most it may; close one and try again"
    );
    line.0
}

/// A token bucket: holds up to `burst` commands and refills at `rate` a
/// second. Counted in millionths of a command per microsecond, exactly.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct TokenBucket {
    /// Tokens, in millionths of a command.
    micro_tokens: u64,
    /// When it was last refilled.
    last: Instant,
}

const MICRO: u64 = 1_000_000;

impl TokenBucket {
    /// A full bucket.
    pub(super) fn full(now: Instant, burst: u32) -> Self {
        Self {
            micro_tokens: u64::from(burst) * MICRO,
            last: now,
        }
    }

    /// Takes one command's token, if there is one. A `rate` of zero means
    /// no limit.
    pub(super) fn take(&mut self, now: Instant, rate: u32, burst: u32) -> bool {
        if rate == 0 {
            return true;
        }
        let elapsed = now.as_micros().saturating_sub(self.last.as_micros());
        self.last = self.last.max(now);
        let cap = u64::from(burst.max(1)) * MICRO;
        // rate tokens a second = rate micro-tokens a microsecond.
        let refill = elapsed.saturating_mul(u64::from(rate));
        self.micro_tokens = self.micro_tokens.saturating_add(refill).min(cap);
        if self.micro_tokens >= MICRO {
            self.micro_tokens -= MICRO;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::time::Duration;

    #[test]
    fn bucket_gives_burst_then_rate() {
        let t0 = Instant::ZERO + Duration::from_secs(1);
        let mut bucket = TokenBucket::full(t0, 40);
        for _ in 0..40 {
            assert!(bucket.take(t0, 20, 40));
        }
        assert!(!bucket.take(t0, 20, 40));
        // 20 a second: one more token 50 ms later, not before.
        let almost = t0 + Duration::from_micros(49_999);
        assert!(!bucket.take(almost, 20, 40));
        let later = t0 + Duration::from_millis(50);
        assert!(bucket.take(later, 20, 40));
        assert!(!bucket.take(later, 20, 40));
        // A long quiet time refills to the burst, no more.
        let much_later = later + Duration::from_secs(3600);
        for _ in 0..40 {
            assert!(bucket.take(much_later, 20, 40));
        }
        assert!(!bucket.take(much_later, 20, 40));
    }

    #[test]
    fn rate_zero_is_unlimited_and_time_going_back_is_harmless() {
        let t = Instant::ZERO + Duration::from_secs(5);
        let mut bucket = TokenBucket::full(t, 1);
        for _ in 0..1000 {
            assert!(bucket.take(t, 0, 1));
        }
        assert!(bucket.take(t, 1, 1));
        assert!(!bucket.take(Instant::ZERO, 1, 1));
        assert!(!bucket.take(t, 1, 1));
    }
}
