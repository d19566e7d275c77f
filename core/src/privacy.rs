//! Private rooms: the values the directory, the client and the room
//! protocol share.
//!
//! A private room's messages are sealed with a key that comes from a
//! passphrase the server never sees:
//!
//! 1. the server makes a random [`Salt`] per room and hands it out with the
//!    room's details (`getroom`);
//! 2. the host stretches the passphrase with Argon2id and that salt into a
//!    [`RoomSecret`] ([`ARGON2_MEMORY_KIB`], [`ARGON2_ITERATIONS`],
//!    [`ARGON2_LANES`]: the core is `no_std` and does not run Argon2 itself);
//! 3. [`RoomKeys::derive`] expands the secret with HKDF-SHA256 into the key
//!    that seals the room's frames and a [`Verifier`], which the room's
//!    maker gives the server and the server hands out with the salt, so a
//!    client tells a wrong passphrase at once, before it enters the room.
//!
//! The verifier is a one-way function of the stretched secret: it lets
//! whoever asks the directory test passphrase guesses offline, each at
//! Argon2id's cost; so does any one sealed datagram captured on the LAN.
//! SECURITY.md weighs that.

use core::fmt;

use base64ct::{Base64UrlUnpadded, Encoding as _};
use hkdf::Hkdf;
use sha2::Sha256;
use subtle::ConstantTimeEq as _;
use zeroize::{Zeroize, ZeroizeOnDrop};

/// Bytes in a room's salt.
pub const SALT_BYTES: usize = 16;

/// Bytes in a room's passphrase verifier.
pub const VERIFIER_BYTES: usize = 16;

/// Characters of a salt or verifier written in unpadded base64url
/// (`A-Z a-z 0-9 - _`, RFC 4648 §5): 16 bytes are 22 characters.
pub const KEY_TEXT: usize = 22;

/// Bytes in the secret Argon2id yields, and in the frame key.
pub const SECRET_BYTES: usize = 32;

/// Argon2id's memory, in KiB: 64 MiB, RFC 9106's second recommended
/// setting (for hosts that cannot spare 2 GiB per entry).
pub const ARGON2_MEMORY_KIB: u32 = 64 * 1024;

/// Argon2id's passes over its memory (RFC 9106: 3 with 64 MiB).
pub const ARGON2_ITERATIONS: u32 = 3;

/// Argon2id's lanes (RFC 9106: 4).
pub const ARGON2_LANES: u32 = 4;

/// The shortest passphrase a private room may be made with, in bytes.
pub const MIN_PASSPHRASE: usize = 8;

/// The longest passphrase accepted, in bytes (a passphrase file holds at
/// most this, plus one line ending).
pub const MAX_PASSPHRASE: usize = 1024;

/// HKDF's `info` for the frame key.
const INFO_FRAME_KEY: &[u8] = b"roomcast v1 frame key";

/// HKDF's `info` for the verifier.
const INFO_VERIFIER: &[u8] = b"roomcast v1 passphrase verifier";

/// 16 bytes written as [`KEY_TEXT`] characters of unpadded base64url.
fn encode16(bytes: &[u8; 16]) -> heapless::String<KEY_TEXT> {
    let mut text = [0u8; KEY_TEXT];
    let mut out = heapless::String::new();
    // 16 bytes are exactly 22 characters: both buffers fit.
    if let Ok(encoded) = Base64UrlUnpadded::encode(bytes, &mut text) {
        let _ = out.push_str(encoded);
    }
    out
}

/// Reads [`KEY_TEXT`] characters of unpadded base64url into 16 bytes.
fn decode16(text: &str) -> Option<[u8; 16]> {
    if text.len() != KEY_TEXT {
        return None;
    }
    let mut out = [0u8; 16];
    let decoded = Base64UrlUnpadded::decode(text.as_bytes(), &mut out).ok()?;
    (decoded.len() == 16).then_some(out)
}

/// A private room's salt: [`SALT_BYTES`] random bytes the server makes
/// for the room, public.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Salt(pub [u8; SALT_BYTES]);

impl Salt {
    /// Reads its text form ([`KEY_TEXT`] base64url characters); `None` for
    /// anything else.
    pub fn parse(text: &str) -> Option<Self> {
        decode16(text).map(Self)
    }

    /// Its text form.
    pub fn to_text(&self) -> heapless::String<KEY_TEXT> {
        encode16(&self.0)
    }
}

impl fmt::Display for Salt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_text())
    }
}

impl fmt::Debug for Salt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Salt({})", self.to_text())
    }
}

/// A private room's passphrase verifier: [`VERIFIER_BYTES`] derived from
/// the room's secret ([`RoomKeys::derive`]).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Verifier(pub [u8; VERIFIER_BYTES]);

impl Verifier {
    /// Reads its text form ([`KEY_TEXT`] base64url characters); `None` for
    /// anything else.
    pub fn parse(text: &str) -> Option<Self> {
        decode16(text).map(Self)
    }

    /// Its text form.
    pub fn to_text(&self) -> heapless::String<KEY_TEXT> {
        encode16(&self.0)
    }

    /// Whether `other` is the same, compared in constant time.
    pub fn matches(&self, other: &Verifier) -> bool {
        self.0.ct_eq(&other.0).into()
    }
}

impl fmt::Display for Verifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_text())
    }
}

impl fmt::Debug for Verifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Verifier({})", self.to_text())
    }
}

/// What a private room's salt and passphrase make: the Argon2id output,
/// [`SECRET_BYTES`] long. Wiped when dropped; never shown.
#[derive(Clone, PartialEq, Eq, Zeroize, ZeroizeOnDrop)]
pub struct RoomSecret(pub [u8; SECRET_BYTES]);

impl fmt::Debug for RoomSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RoomSecret(..)")
    }
}

/// The key that seals a private room's frames (XChaCha20-Poly1305). Wiped
/// when dropped; never shown.
#[derive(Clone, PartialEq, Eq, Zeroize, ZeroizeOnDrop)]
pub struct FrameKey(pub [u8; SECRET_BYTES]);

impl fmt::Debug for FrameKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("FrameKey(..)")
    }
}

/// The keys of a private room, expanded from its [`RoomSecret`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RoomKeys {
    /// Seals and opens the room's frames.
    pub frame: FrameKey,
    /// What the directory keeps to tell a wrong passphrase.
    pub verifier: Verifier,
}

impl RoomKeys {
    /// HKDF-SHA256 (RFC 5869) of the secret, no salt (the secret is
    /// uniformly random already), with the `info` strings
    /// `roomcast v1 frame key` (32 bytes) and `roomcast v1 passphrase
    /// verifier` (16 bytes).
    pub fn derive(secret: &RoomSecret) -> Self {
        let hk = Hkdf::<Sha256>::new(None, &secret.0);
        let mut frame = FrameKey([0; SECRET_BYTES]);
        let mut verifier = Verifier([0; VERIFIER_BYTES]);
        // Both lengths are far below HKDF-SHA256's limit of 255 * 32 bytes.
        let _ = hk.expand(INFO_FRAME_KEY, &mut frame.0);
        let _ = hk.expand(INFO_VERIFIER, &mut verifier.0);
        RoomKeys { frame, verifier }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn salt_and_verifier_round_trip_as_22_characters() {
        let salt = Salt([0xA5; SALT_BYTES]);
        let text = salt.to_text();
        assert_eq!(text.len(), KEY_TEXT);
        assert_eq!(Salt::parse(&text), Some(salt));
        let v = Verifier(core::array::from_fn(|i| i as u8));
        assert_eq!(Verifier::parse(&v.to_text()), Some(v));
    }

    #[test]
    fn bad_text_is_refused() {
        for bad in [
            "",
            "short",
            "AAAAAAAAAAAAAAAAAAAAA",
            "AAAAAAAAAAAAAAAAAAAAAAA",
            "AAAAAAAAAAAAAAAAAAAA+/",
            "AAAAAAAAAAAAAAAAAAAAA=",
        ] {
            assert_eq!(Salt::parse(bad), None, "{bad:?}");
        }
        // The last character of 22 carries only 2 bits: non-canonical
        // endings are refused, so each value has one text.
        assert_eq!(Salt::parse("AAAAAAAAAAAAAAAAAAAAAB"), None);
    }

    #[test]
    fn keys_differ_by_secret_and_by_purpose() {
        let a = RoomKeys::derive(&RoomSecret([1; SECRET_BYTES]));
        let b = RoomKeys::derive(&RoomSecret([2; SECRET_BYTES]));
        assert_ne!(a.frame, b.frame);
        assert_ne!(a.verifier, b.verifier);
        assert_ne!(&a.frame.0[..VERIFIER_BYTES], &a.verifier.0[..]);
        assert!(a.verifier.matches(&a.verifier));
        assert!(!a.verifier.matches(&b.verifier));
    }
}
