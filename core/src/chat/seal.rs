//! Sealed frames: how a private room's frames travel.
//!
//! In a private room every frame (DATA, NAK, HEARTBEAT, BYE) is sealed with
//! XChaCha20-Poly1305 under the room's [`FrameKey`] before it goes out, and
//! nothing else is sent: no plain `Name: text` copy. A sealed datagram is
//! (integers big-endian):
//!
//! | bytes | field |
//! |---|---|
//! | 3 | magic `FF 52 43` |
//! | 1 | version `01` |
//! | 1 | kind `05` (SEALED) |
//! | 16 | sealer: random bytes the host gives per session |
//! | 8 | counter: 1, 2, 3 ... per sealed datagram of this sealer |
//! | n | ciphertext of: sealed-at (u64, Unix ms, sender's wall clock) ‖ the inner frame |
//! | 16 | Poly1305 tag |
//!
//! The nonce is sealer ‖ counter (24 bytes), the associated data the 29
//! header bytes. A receiver opens the datagram, refuses it if its sealed-at
//! time is more than [`MAX_CLOCK_SKEW`] from its own wall clock (the
//! host's, given at the start and each turn: [`Sealing::set_wall`]), and
//! keeps per sealer the highest counter and a bitmap of the
//! [`REPLAY_WINDOW`] counters up to it (RFC 4303 §3.4.3), so each datagram
//! of another sealer is taken at most once (its own are opened and not
//! tracked). PROTOCOL.md ("Private rooms: sealed frames") is the specification.
//!
//! # Nonce uniqueness
//!
//! A nonce must never repeat under one key. The sealer is 16 fresh random
//! bytes from the host's OS randomness per session (two sessions share one
//! with chance 2^-128), and the counter of a session only increases, from
//! 1, and never wraps: a session whose counter would reach `u64::MAX`
//! seals nothing more.

use core::time::Duration;

use chacha20poly1305::{AeadInOut as _, KeyInit as _, XChaCha20Poly1305, XNonce};

use super::frame::{MAGIC, VERSION};
use super::limits::{MAX_FRAME, MAX_MEMBERS};
use crate::Instant;
use crate::privacy::FrameKey;

/// The kind byte of a sealed frame.
pub const KIND_SEALED: u8 = 5;

/// Bytes of a sealer: the random half of the nonce.
pub const SEALER_BYTES: usize = 16;

/// Bytes of a sealed frame's header (magic, version, kind, sealer,
/// counter), which is also the AEAD's associated data.
pub const SEAL_HEADER: usize = 3 + 1 + 1 + SEALER_BYTES + 8;

/// Bytes of the sealed-at time at the start of the plaintext.
pub const SEALED_AT_BYTES: usize = 8;

/// Bytes of the Poly1305 tag at the end.
pub const TAG_BYTES: usize = 16;

/// What sealing adds to a frame: header (29), sealed-at (8) and tag (16),
/// 53 bytes.
pub const SEAL_OVERHEAD: usize = SEAL_HEADER + SEALED_AT_BYTES + TAG_BYTES;

/// The largest sealed datagram: a largest frame ([`MAX_FRAME`]) sealed,
/// 1253 bytes, still one unfragmented Ethernet datagram. A longer
/// datagram on the control port of a private room is not opened (counted
/// as undecryptable).
pub const MAX_SEALED: usize = MAX_FRAME + SEAL_OVERHEAD;

/// The most a sealed datagram's sealed-at time may differ from the
/// receiver's wall clock, either way. Past it the datagram is refused as
/// stale (counted, and told as [`crate::chat::Event::Refused`]): members
/// whose clocks are more than this apart do not hear each other. It also
/// bounds how long a captured datagram can be replayed to a receiver that
/// has not seen it (one that restarted).
pub const MAX_CLOCK_SKEW: Duration = Duration::from_secs(120);

/// How many counters below (and including) a sealer's highest one a
/// receiver remembers. A counter this far or farther below the highest is
/// refused as a replay even if it was never seen (a datagram reordered that
/// much is lost; the reliable layer repairs it).
pub const REPLAY_WINDOW: u64 = 128;

/// How many sealers a receiver tracks, one per session heard: as many as
/// members ([`MAX_MEMBERS`]). When full, a new sealer replaces the one
/// heard least recently; only holders of the key can make new sealers.
pub const MAX_SEALERS: usize = MAX_MEMBERS;

/// How far the session's estimate of the wall clock (the anchor plus the
/// monotonic time since) may drift from the wall time the host reports
/// ([`Sealing::set_wall`]) before it is re-anchored to the host's. Smaller
/// differences (the two clocks' rates, the host's own jitter) are kept, so
/// the sealed-at times of one session do not wobble; a step of the host's
/// clock (NTP, a suspend the monotonic clock did not count) is followed.
pub const WALL_RESYNC: Duration = Duration::from_secs(1);

/// How long a private session remembers a member that said goodbye (a
/// sealed BYE): frames of that member id heard in this time do not make it
/// join again. A replay of its older datagrams is fresh for at most
/// [`MAX_CLOCK_SKEW`] after its sealing by a sender whose clock was up to
/// [`MAX_CLOCK_SKEW`] ahead: twice that covers it.
pub const DEPARTED_MEMORY: Duration = Duration::from_secs(2 * 120);

/// How many departed members a private session remembers: as many as
/// members ([`MAX_MEMBERS`]); when full, the oldest goodbye is forgotten.
pub const MAX_DEPARTED: usize = MAX_MEMBERS;

/// A session tells refused datagrams ([`crate::chat::Event::Refused`]) at
/// the first one at once, then at most once per this, with the counts since
/// the last notice.
pub const REFUSED_NOTICE: Duration = Duration::from_secs(5);

/// Bytes of one datagram a session puts out: a frame, a plain copy, or a
/// sealed frame.
pub type DatagramBuf = heapless::Vec<u8, MAX_SEALED>;

/// Why a datagram was not opened.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OpenError {
    /// Not a sealed frame of this version (for example a plain frame).
    NotSealed,
    /// A sealed frame that does not open with this key: bad size, a zero
    /// counter, tampered, or sealed under another key.
    Undecryptable,
    /// Sealed more than [`MAX_CLOCK_SKEW`] from this receiver's clock.
    Stale,
    /// Already taken, or below its sealer's [`REPLAY_WINDOW`].
    Replayed,
}

/// What a receiver remembers of one sealer.
#[derive(Clone, Copy, Debug)]
struct Window {
    sealer: [u8; SEALER_BYTES],
    /// The highest counter taken.
    hi: u64,
    /// Bit `i` set: counter `hi - i` was taken.
    seen: u128,
    /// When a datagram of this sealer was last taken.
    heard: Instant,
}

/// The sealing state of one member in a private room: the room's key, this
/// session's sealer and counter, the wall clock, and the replay windows of
/// the sealers heard. Its size is fixed ([`MAX_SEALERS`] windows).
#[derive(Clone, Debug)]
pub struct Sealing {
    key: FrameKey,
    sealer: [u8; SEALER_BYTES],
    /// The counter of the next sealed datagram.
    pub(crate) next: u64,
    anchor: Instant,
    anchor_wall_ms: u64,
    windows: heapless::Vec<Window, MAX_SEALERS>,
}

impl Sealing {
    /// Sealing with the room's `key` and `sealer`, 16 bytes of fresh OS
    /// randomness (never reuse a sealer with the same key); `wall_ms` is
    /// the wall clock (Unix time in ms) at `now`. Later wall times are
    /// `wall_ms` plus the time since `now`, until the host reports its
    /// wall clock again with [`Sealing::set_wall`], which it should do
    /// often (each turn of its loop): the monotonic clock does not follow
    /// steps of the wall clock, nor (on some systems) a suspend.
    pub fn new(key: &FrameKey, sealer: [u8; SEALER_BYTES], now: Instant, wall_ms: u64) -> Self {
        Sealing {
            key: key.clone(),
            sealer,
            next: 1,
            anchor: now,
            anchor_wall_ms: wall_ms,
            windows: heapless::Vec::new(),
        }
    }

    /// This session's sealer.
    pub fn sealer(&self) -> [u8; SEALER_BYTES] {
        self.sealer
    }

    /// The host's wall clock is `wall_ms` (Unix ms) at `now`: if this
    /// sealing's estimate differs from it by more than [`WALL_RESYNC`],
    /// the estimate is re-anchored to it (a clock step, a suspend).
    pub fn set_wall(&mut self, now: Instant, wall_ms: u64) {
        let resync = u64::try_from(WALL_RESYNC.as_millis()).unwrap_or(u64::MAX);
        if self.wall_ms(now).abs_diff(wall_ms) > resync {
            self.anchor = self.anchor.max(now);
            self.anchor_wall_ms = wall_ms;
        }
    }

    /// The wall clock (Unix ms) at `now`, as estimated from the last
    /// anchor.
    pub fn wall_ms(&self, now: Instant) -> u64 {
        let since =
            u64::try_from(now.saturating_since(self.anchor).as_millis()).unwrap_or(u64::MAX);
        self.anchor_wall_ms.saturating_add(since)
    }

    fn cipher(&self) -> XChaCha20Poly1305 {
        XChaCha20Poly1305::new(&self.key.0.into())
    }

    /// Seals `frame` (a whole frame, at most [`MAX_FRAME`] bytes) at `now`
    /// with the next counter. `None` if the frame is too long or the
    /// counter is used up.
    pub fn seal(&mut self, now: Instant, frame: &[u8]) -> Option<DatagramBuf> {
        if frame.len() > MAX_FRAME || self.next == u64::MAX || self.next == 0 {
            return None;
        }
        let counter = self.next;
        self.next += 1;
        let mut out = DatagramBuf::new();
        out.extend_from_slice(&MAGIC).ok()?;
        out.extend_from_slice(&[VERSION, KIND_SEALED]).ok()?;
        out.extend_from_slice(&self.sealer).ok()?;
        out.extend_from_slice(&counter.to_be_bytes()).ok()?;
        out.extend_from_slice(&self.wall_ms(now).to_be_bytes())
            .ok()?;
        out.extend_from_slice(frame).ok()?;
        let nonce = nonce(&self.sealer, counter);
        let (header, body) = out.split_at_mut(SEAL_HEADER);
        let tag = self
            .cipher()
            .encrypt_inout_detached(&nonce, header, body.into())
            .ok()?;
        out.extend_from_slice(&tag).ok()?;
        Some(out)
    }

    /// Opens a sealed datagram received at `now` into `buf` and returns the
    /// inner frame (not yet decoded). Checks, in order: the header, the tag,
    /// the sealed-at time, the replay window; a datagram is taken (its
    /// counter marked) only when all pass. This session's own datagrams,
    /// back through multicast loopback, open but are not tracked.
    pub fn open<'b>(
        &mut self,
        now: Instant,
        data: &[u8],
        buf: &'b mut [u8; MAX_SEALED],
    ) -> Result<&'b [u8], OpenError> {
        if data.len() < 5 || data[..3] != MAGIC || data[3] != VERSION || data[4] != KIND_SEALED {
            return Err(OpenError::NotSealed);
        }
        if data.len() < SEAL_OVERHEAD || data.len() > MAX_SEALED {
            return Err(OpenError::Undecryptable);
        }
        let (header, rest) = data.split_at(SEAL_HEADER);
        let mut sealer = [0; SEALER_BYTES];
        sealer.copy_from_slice(&header[5..5 + SEALER_BYTES]);
        let mut c = [0; 8];
        c.copy_from_slice(&header[5 + SEALER_BYTES..]);
        let counter = u64::from_be_bytes(c);
        if counter == 0 {
            return Err(OpenError::Undecryptable);
        }
        let (body, tag) = rest.split_at(rest.len() - TAG_BYTES);
        let plain = &mut buf[..body.len()];
        plain.copy_from_slice(body);
        let tag = chacha20poly1305::Tag::try_from(tag).map_err(|_| OpenError::Undecryptable)?;
        self.cipher()
            .decrypt_inout_detached(&nonce(&sealer, counter), header, (&mut *plain).into(), &tag)
            .map_err(|_| OpenError::Undecryptable)?;
        let mut at = [0; 8];
        at.copy_from_slice(&plain[..SEALED_AT_BYTES]);
        let sealed_at = u64::from_be_bytes(at);
        let skew = u64::try_from(MAX_CLOCK_SKEW.as_millis()).unwrap_or(u64::MAX);
        if sealed_at.abs_diff(self.wall_ms(now)) > skew {
            return Err(OpenError::Stale);
        }
        if sealer != self.sealer && !self.take(sealer, counter, now) {
            return Err(OpenError::Replayed);
        }
        Ok(&buf[SEALED_AT_BYTES..body.len()])
    }

    /// Marks `counter` of `sealer` taken; `false` if it was taken already
    /// or is below the window.
    fn take(&mut self, sealer: [u8; SEALER_BYTES], counter: u64, now: Instant) -> bool {
        let Some(w) = self.windows.iter_mut().find(|w| w.sealer == sealer) else {
            let w = Window {
                sealer,
                hi: counter,
                seen: 1,
                heard: now,
            };
            if self.windows.is_full() {
                // Forget the sealer heard least recently.
                if let Some(old) = self.windows.iter_mut().min_by_key(|w| w.heard) {
                    *old = w;
                }
            } else {
                let _ = self.windows.push(w);
            }
            return true;
        };
        if counter > w.hi {
            let shift = counter - w.hi;
            w.seen = if shift >= REPLAY_WINDOW {
                0
            } else {
                w.seen << shift
            };
            w.seen |= 1;
            w.hi = counter;
        } else {
            let back = w.hi - counter;
            if back >= REPLAY_WINDOW || w.seen & (1 << back) != 0 {
                return false;
            }
            w.seen |= 1 << back;
        }
        w.heard = now;
        true
    }

    /// How many sealers are tracked (at most [`MAX_SEALERS`]).
    pub fn sealers(&self) -> usize {
        self.windows.len()
    }
}

fn nonce(sealer: &[u8; SEALER_BYTES], counter: u64) -> XNonce {
    let mut n = [0; 24];
    n[..SEALER_BYTES].copy_from_slice(sealer);
    n[SEALER_BYTES..].copy_from_slice(&counter.to_be_bytes());
    XNonce::from(n)
}

#[cfg(test)]
mod tests;
