//! Who may delete a room: owner tokens, their hashes, and the record the
//! directory keeps with each room.
//!
//! `makeroom` mints a fresh token of [`TOKEN_BYTES`] random bytes, written
//! as [`TOKEN_TEXT`] characters of unpadded base64url, and answers it once.
//! The server keeps only its SHA-256 ([`TokenHash`]), in memory and in the
//! state file; a presented token is hashed and compared in constant time
//! (`subtle`), so neither the state file nor the timing of a refusal tells
//! a token.
//!
//! Randomness: the server holds a ChaCha20 generator (`rand_chacha`, no_std)
//! that the host seeds once with 32 bytes from the operating system
//! ([`Server::seed_random`](crate::Server::seed_random)); the core never
//! reads OS randomness itself. The same generator makes the salts `salt`
//! answers for private rooms.

use core::fmt;
use core::net::IpAddr;

use base64ct::{Base64UrlUnpadded, Encoding as _};
use rand_chacha::ChaCha20Rng;
use rand_core::{RngCore as _, SeedableRng as _};
use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq as _;

use crate::limits::{MAX_TOKEN, MIN_TOKEN, TOKEN_BYTES, TOKEN_TEXT};
use crate::privacy::{SALT_BYTES, Salt};
use crate::server::ConnId;

/// A token as presented on the wire: [`MIN_TOKEN`] to [`MAX_TOKEN`] bytes
/// of printable ASCII without spaces (see [`is_valid_token`]). Owner tokens
/// are [`TOKEN_TEXT`] characters of base64url; an operator's admin token
/// may be any such word.
pub type Token = heapless::String<MAX_TOKEN>;

/// Whether `word` can be a token: [`MIN_TOKEN`] to [`MAX_TOKEN`] bytes,
/// each printable ASCII (`!` to `~`).
pub fn is_valid_token(word: &str) -> bool {
    (MIN_TOKEN..=MAX_TOKEN).contains(&word.len()) && word.bytes().all(|b| b.is_ascii_graphic())
}

/// The SHA-256 of a token's text: what the server keeps instead of the
/// token.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct TokenHash(pub [u8; 32]);

impl TokenHash {
    /// The hash of `token` (its bytes as written).
    pub fn of(token: &str) -> Self {
        Self(Sha256::digest(token.as_bytes()).into())
    }

    /// Whether `token` hashes to this, compared in constant time.
    pub fn matches(&self, token: &str) -> bool {
        TokenHash::of(token).0.ct_eq(&self.0).into()
    }

    /// Writes the hash as 64 lowercase hex digits.
    pub fn to_hex(&self) -> heapless::String<64> {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let mut out = heapless::String::new();
        for b in self.0 {
            // 32 bytes are 64 digits: the capacity.
            let _ = out.push(HEX[usize::from(b >> 4)] as char);
            let _ = out.push(HEX[usize::from(b & 15)] as char);
        }
        out
    }

    /// Reads 64 hex digits (either case); `None` for anything else.
    pub fn from_hex(text: &str) -> Option<Self> {
        let bytes = text.as_bytes();
        if bytes.len() != 64 {
            return None;
        }
        let digit = |c: u8| char::from(c).to_digit(16);
        let mut out = [0u8; 32];
        for (i, pair) in bytes.chunks_exact(2).enumerate() {
            let hi = digit(pair[0])?;
            let lo = digit(pair[1])?;
            // Two hex digits fit a byte.
            out[i] = u8::try_from(hi * 16 + lo).ok()?;
        }
        Some(Self(out))
    }
}

impl fmt::Debug for TokenHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TokenHash({})", self.to_hex())
    }
}

/// Who may delete a room, kept with it in the directory.
///
/// A room with no token hash was made before owners existed (loaded from a
/// version-1 state file): anyone may delete it, as anyone could when it was
/// made.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Owner {
    /// The hash of the token `makeroom` answered; stored in the state file.
    pub token: Option<TokenHash>,
    /// The connection that made the room, while the server runs: it may
    /// delete the room without the token. Not stored.
    pub maker: Option<ConnId>,
    /// The address the room was made from, for the rooms-per-client quota.
    /// Not stored: rooms loaded from the state file count for nobody.
    pub maker_addr: Option<IpAddr>,
}

impl Owner {
    /// Whether the room has an owner (else anyone may delete it).
    pub fn is_owned(&self) -> bool {
        self.token.is_some()
    }
}

/// The server's source of owner tokens: ChaCha20 seeded by the host.
#[derive(Clone)]
pub(crate) struct TokenSource {
    rng: ChaCha20Rng,
    seeded: bool,
}

/// Never shows the generator's state: whoever read it could tell the next
/// tokens.
impl fmt::Debug for TokenSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenSource")
            .field("seeded", &self.seeded)
            .finish_non_exhaustive()
    }
}

impl TokenSource {
    /// A source that is not seeded yet: its tokens are predictable, so a
    /// host must call [`reseed`](Self::reseed) before serving (tests may
    /// rely on the fixed sequence).
    pub(crate) fn unseeded() -> Self {
        Self {
            rng: ChaCha20Rng::from_seed([0; 32]),
            seeded: false,
        }
    }

    pub(crate) fn reseed(&mut self, seed: [u8; 32]) {
        self.rng = ChaCha20Rng::from_seed(seed);
        self.seeded = true;
    }

    pub(crate) fn is_seeded(&self) -> bool {
        self.seeded
    }

    /// A fresh salt for a private room: [`SALT_BYTES`] random bytes.
    pub(crate) fn mint_salt(&mut self) -> Salt {
        let mut bytes = [0u8; SALT_BYTES];
        self.rng.fill_bytes(&mut bytes);
        Salt(bytes)
    }

    /// A fresh token: [`TOKEN_BYTES`] random bytes in base64url.
    pub(crate) fn mint(&mut self) -> Token {
        let mut bytes = [0u8; TOKEN_BYTES];
        self.rng.fill_bytes(&mut bytes);
        let mut text = [0u8; TOKEN_TEXT];
        let mut token = Token::new();
        // 16 bytes are exactly 22 characters: the buffer fits.
        if let Ok(encoded) = Base64UrlUnpadded::encode(&bytes, &mut text) {
            let _ = token.push_str(encoded);
        }
        token
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_22_base64url_characters_and_differ() {
        let mut source = TokenSource::unseeded();
        source.reseed([7; 32]);
        let a = source.mint();
        let b = source.mint();
        assert_eq!(a.len(), TOKEN_TEXT);
        assert!(is_valid_token(&a));
        assert!(
            a.bytes()
                .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_')
        );
        assert_ne!(a, b);
        let mut other = TokenSource::unseeded();
        other.reseed([8; 32]);
        assert_ne!(other.mint(), a);
    }

    #[test]
    fn salts_come_from_the_seeded_generator_and_differ() {
        let mut source = TokenSource::unseeded();
        source.reseed([7; 32]);
        let a = source.mint_salt();
        let b = source.mint_salt();
        assert_ne!(a, b);
        let mut again = TokenSource::unseeded();
        again.reseed([7; 32]);
        assert_eq!(again.mint_salt(), a, "the same seed gives the same salts");
        let mut other = TokenSource::unseeded();
        other.reseed([8; 32]);
        assert_ne!(other.mint_salt(), a);
    }

    #[test]
    fn the_debug_form_shows_no_generator_state() {
        let mut source = TokenSource::unseeded();
        source.reseed([9; 32]);
        let shown = std::format!("{source:?}");
        assert_eq!(shown, "TokenSource { seeded: true, .. }");
    }

    #[test]
    fn token_length_edges() {
        let min = "a".repeat(MIN_TOKEN);
        let max = "a".repeat(MAX_TOKEN);
        assert!(is_valid_token(&min));
        assert!(is_valid_token(&max));
        assert!(!is_valid_token(&min[1..]));
        assert!(!is_valid_token(&(max + "a")));
        assert!(!is_valid_token("aaaaaaaaaaaaaaaa\u{e9}"));
        assert!(!is_valid_token("aaaaaaaa aaaaaaaa"));
    }

    #[test]
    fn hash_matches_only_its_token_and_round_trips_as_hex() {
        let hash = TokenHash::of("secret-token-0001");
        assert!(hash.matches("secret-token-0001"));
        assert!(!hash.matches("secret-token-0002"));
        let hex = hash.to_hex();
        assert_eq!(hex.len(), 64);
        assert_eq!(TokenHash::from_hex(&hex), Some(hash));
        assert_eq!(TokenHash::from_hex(&hex.to_uppercase()), Some(hash));
        assert_eq!(TokenHash::from_hex(&hex[1..]), None);
        assert_eq!(TokenHash::from_hex(&"g".repeat(64)), None);
        // SHA-256("abc"), a published test vector.
        assert_eq!(
            TokenHash::of("abc").to_hex().as_str(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
