//! What text may be shown, and what may be in a name: one rule, used by the
//! wire format, the server and the client.
//!
//! # The rule
//!
//! **Shown as itself** ([`is_shown_as_is`]): every character except those of
//! general category Cc (controls), Cf (format: zero-width characters, the
//! bidirectional controls, tags, ...), Zl and Zp (line and paragraph
//! separators), Co (private use) and Cn (unassigned), and except the
//! `Bidi_Control` characters. Anything else in text from the network is
//! written out visibly by [`Shown`] (`^[`, `<U+202E>`), so no datagram can
//! move the cursor, reorder a line or hide text.
//!
//! **Allowed in a room name** ([`is_name_char`]): a character shown as
//! itself that is also not `White_Space`, not `Default_Ignorable_Code_Point`
//! (variation selectors, U+034F, Hangul fillers, tags, ...: drawn as
//! nothing), not one of the [`BLANK_LOOKING`] characters, and is
//! `NFC_Quick_Check=Yes` (so a name is in composed form, NFC). A name is 1 to
//! [`MAX_ROOM_NAME`] bytes of such characters ([`check_room_name`]) that
//! does not begin with a combining mark (general category Mn, Mc or Me: it
//! would sit on whatever is drawn before the name) and takes at least one
//! column on a terminal ([`display_width`]): a name of marks alone, or of
//! zero-width letters, would show as blank in a table.
//!
//! **The same room**: a name is taken when it is the [`same_name`] as a
//! room's (equal UTS #39 confusable skeletons of the full case folds:
//! `Lobby`, `LOBBY`, Cyrillic `lоbby`; `rn` and `m`), or when the two
//! [`look_alike`] as written (equal skeletons, case kept: capital `I` and
//! small `l`, `0` and `O`, which folding alone would tell apart).
//!
//! General categories come from `unicode-properties`; the derived
//! properties, NFC quick check, case folding and confusables are tables
//! generated from well-kept crates by `core/text-tables` (see `tables.rs`).

use core::fmt::{self, Write as _};

use unicode_properties::{GeneralCategory, UnicodeGeneralCategory};

use crate::limits::MAX_ROOM_NAME;

#[rustfmt::skip]
mod tables;

#[cfg(test)]
mod tests;

/// Characters that look like nothing or like a space but that no derived
/// property above catches: U+2800 BRAILLE PATTERN BLANK (a symbol, `So`).
/// The Hangul fillers, U+17B4/U+17B5, U+034F, the variation selectors and
/// the tags are `Default_Ignorable_Code_Point` already.
pub const BLANK_LOOKING: &[char] = &['\u{2800}'];

fn in_ranges(ranges: &[(u32, u32)], c: char) -> bool {
    let c = u32::from(c);
    ranges
        .binary_search_by(|&(lo, hi)| {
            if hi < c {
                core::cmp::Ordering::Less
            } else if lo > c {
                core::cmp::Ordering::Greater
            } else {
                core::cmp::Ordering::Equal
            }
        })
        .is_ok()
}

/// Whether `c` may reach a terminal as itself (see the module docs).
pub fn is_shown_as_is(c: char) -> bool {
    if c.is_ascii() {
        // The common case, without a table: printable ASCII and space.
        return !c.is_ascii_control();
    }
    !matches!(
        c.general_category(),
        GeneralCategory::Control
            | GeneralCategory::Format
            | GeneralCategory::LineSeparator
            | GeneralCategory::ParagraphSeparator
            | GeneralCategory::PrivateUse
            | GeneralCategory::Unassigned
    ) && !in_ranges(tables::BIDI_CONTROL, c)
}

/// Whether `c` is `Default_Ignorable_Code_Point`.
pub fn is_default_ignorable(c: char) -> bool {
    in_ranges(tables::DEFAULT_IGNORABLE, c)
}

/// Whether `c` may be in a room name (see the module docs).
pub fn is_name_char(c: char) -> bool {
    is_shown_as_is(c)
        && !c.is_whitespace()
        && !is_default_ignorable(c)
        && !BLANK_LOOKING.contains(&c)
        && !in_ranges(tables::NFC_QC_NOT_YES, c)
}

/// Why a string is not a room name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum NameProblem {
    /// The name is empty.
    Empty,
    /// The name is longer than [`MAX_ROOM_NAME`] bytes.
    TooLong,
    /// The name holds whitespace.
    Space(char),
    /// The name holds a character that is invisible, blank or a control.
    Invisible(char),
    /// The name holds a character that is not in composed form (NFC), or a
    /// combining mark that could compose with the character before it.
    NotComposed(char),
    /// The name begins with a combining mark.
    StartsWithMark(char),
    /// The name would take no column on a terminal (it shows as blank).
    NoWidth,
}

/// Whether `c` is a combining mark (general category Mn, Mc or Me).
pub fn is_mark(c: char) -> bool {
    matches!(
        c.general_category(),
        GeneralCategory::NonspacingMark
            | GeneralCategory::SpacingMark
            | GeneralCategory::EnclosingMark
    )
}

impl fmt::Display for NameProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            NameProblem::Empty => f.write_str("a name cannot be empty"),
            NameProblem::TooLong => write!(f, "a name has at most {MAX_ROOM_NAME} bytes"),
            NameProblem::Space(c) => write!(f, "U+{:04X} is a space", u32::from(c)),
            NameProblem::Invisible(c) => {
                write!(f, "U+{:04X} is invisible or blank", u32::from(c))
            }
            NameProblem::NotComposed(c) if is_mark(c) => write!(
                f,
                "U+{:04X} is not in composed form (NFC); type the accented letter itself",
                u32::from(c)
            ),
            // A singleton such as U+212A KELVIN SIGN, U+2126 OHM SIGN or
            // U+212B ANGSTROM SIGN: NFC turns it into another character.
            NameProblem::NotComposed(c) => write!(
                f,
                "U+{:04X} is a duplicate of a usual character and not in composed form (NFC); \
                 type the usual letter or sign instead",
                u32::from(c)
            ),
            NameProblem::StartsWithMark(c) => write!(
                f,
                "U+{:04X} is a combining mark and cannot begin a name",
                u32::from(c)
            ),
            NameProblem::NoWidth => f.write_str("the name would show as blank"),
        }
    }
}

/// Checks that `name` may name a room: 1 to [`MAX_ROOM_NAME`] bytes of
/// [`is_name_char`] characters, not beginning with a combining mark
/// ([`is_mark`]), at least one column wide ([`display_width`]).
pub fn check_room_name(name: &str) -> Result<(), NameProblem> {
    if name.is_empty() {
        return Err(NameProblem::Empty);
    }
    if name.len() > MAX_ROOM_NAME {
        return Err(NameProblem::TooLong);
    }
    check_name_text(name)
}

/// Checks the characters of a name of any length, as [`check_room_name`]
/// does: [`is_name_char`] characters, not beginning with a combining mark,
/// at least one column wide. The client's chat names check each of their
/// words with it.
pub fn check_name_text(name: &str) -> Result<(), NameProblem> {
    if name.is_empty() {
        return Err(NameProblem::Empty);
    }
    match name.chars().find(|&c| !is_name_char(c)) {
        None => match name.chars().next() {
            Some(first) if is_mark(first) => Err(NameProblem::StartsWithMark(first)),
            _ if display_width(name) == 0 => Err(NameProblem::NoWidth),
            _ => Ok(()),
        },
        Some(c) if c.is_whitespace() => Err(NameProblem::Space(c)),
        Some(c) if in_ranges(tables::NFC_QC_NOT_YES, c) && is_shown_as_is(c) => {
            Err(NameProblem::NotComposed(c))
        }
        Some(c) => Err(NameProblem::Invisible(c)),
    }
}

// ---------------------------------------------------------------------------
// The name key: when two names are the same room

const HANGUL_FIRST: u32 = 0xAC00;
const HANGUL_COUNT: u32 = 11172;
const JAMO_L: u32 = 0x1100;
const JAMO_V: u32 = 0x1161;
const JAMO_T: u32 = 0x11A7;
const JAMO_V_COUNT: u32 = 21;
const JAMO_T_COUNT: u32 = 28;

/// The key of one character in a generated table, or `None` when the
/// table does not list it.
fn lookup(codes: &[u32], offsets: &[u16], c: char) -> Option<&'static str> {
    let code = u32::from(c);
    let i = codes
        .binary_search_by(|&entry| (entry >> 8).cmp(&code))
        .ok()?;
    let len = (codes.get(i)? & 0xFF) as usize;
    let at = usize::from(*offsets.get(i)?);
    tables::KEY_POOL.get(at..at + len)
}

/// The plain skeleton of one character, or `None` when it is itself.
fn skeleton_char_key(c: char) -> Option<&'static str> {
    lookup(tables::SKELETON_CODES, tables::SKELETON_OFFSETS, c)
}

/// The folded key of one character, or `None` when it is itself.
fn folded_char_key(c: char) -> Option<&'static str> {
    lookup(tables::FOLDED_CODES, tables::FOLDED_OFFSETS, c).or_else(|| skeleton_char_key(c))
}

/// The most key characters one character of a name gives: a Hangul
/// syllable is up to three jamo.
const KEY_CHUNK: usize = 3 * tables::MAX_KEY_EXPANSION;

/// The key characters of `c` by `char_key`, pushed to `out`.
fn push_key(c: char, char_key: fn(char) -> Option<&'static str>, out: &mut Chunk) {
    match char_key(c) {
        Some(key) => key.chars().for_each(|k| {
            let _ = out.push(k);
        }),
        None => {
            let _ = out.push(c);
        }
    }
}

type Chunk = heapless::Vec<char, KEY_CHUNK>;

/// The key of `name` by `char_key`, one character at a time; Hangul
/// syllables are decomposed into jamo here (the tables do not list them).
/// Names are NFC (see [`check_room_name`]), so combining marks are not
/// reordered. Needs no allocation: one character of a name gives at most
/// `KEY_CHUNK` characters of key.
fn key_of(
    name: &str,
    char_key: fn(char) -> Option<&'static str>,
) -> impl Iterator<Item = char> + '_ {
    name.chars().flat_map(move |c| {
        let mut chunk = Chunk::new();
        let s = u32::from(c).wrapping_sub(HANGUL_FIRST);
        if s < HANGUL_COUNT {
            let jamo = [
                JAMO_L + s / (JAMO_V_COUNT * JAMO_T_COUNT),
                JAMO_V + (s % (JAMO_V_COUNT * JAMO_T_COUNT)) / JAMO_T_COUNT,
                JAMO_T + s % JAMO_T_COUNT,
            ];
            let count = if s % JAMO_T_COUNT == 0 { 2 } else { 3 };
            for j in jamo[..count].iter().filter_map(|&j| char::from_u32(j)) {
                push_key(j, char_key, &mut chunk);
            }
        } else {
            push_key(c, char_key, &mut chunk);
        }
        chunk.into_iter()
    })
}

/// The case-insensitive key of a name: the UTS #39 confusable skeleton of
/// its full case fold, one character at a time. Two names with equal keys
/// are [`same_name`].
pub fn name_key(name: &str) -> impl Iterator<Item = char> + '_ {
    key_of(name, folded_char_key)
}

/// The case-sensitive key of a name: its UTS #39 confusable skeleton. Two
/// names with equal skeletons [`look_alike`].
pub fn name_skeleton(name: &str) -> impl Iterator<Item = char> + '_ {
    key_of(name, skeleton_char_key)
}

/// Whether `a` and `b` are the same name ignoring case and look-alike
/// characters: `Lobby`, `LOBBY` and Cyrillic `lоbby`; `é` and `É`; `rn` and
/// `m`. Commands that name a room (`deleteroom`, the client's `chat`)
/// match names this way.
pub fn same_name(a: &str, b: &str) -> bool {
    a == b || name_key(a).eq(name_key(b))
}

/// Whether `a` and `b` look alike as written, case included: capital `I`
/// and small `l`, `0` and `O`. Case folding alone cannot see these (it
/// makes `I` an `i`), so a directory refuses a name that is the
/// [`same_name`] as a room's or looks like it.
pub fn look_alike(a: &str, b: &str) -> bool {
    a == b || name_skeleton(a).eq(name_skeleton(b))
}

/// A 64-bit hash (FNV-1a) of a key: equal keys, equal hashes, so a
/// directory can compare hashes first.
fn key_hash(key: impl Iterator<Item = char>) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for c in key {
        hash ^= u64::from(u32::from(c));
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash
}

/// The hashes of `name`'s [`name_key`] and [`name_skeleton`].
pub fn name_hashes(name: &str) -> (u64, u64) {
    (key_hash(name_key(name)), key_hash(name_skeleton(name)))
}

// ---------------------------------------------------------------------------
// Showing text from the network

/// Shows text from the network safely: a tab as a space, other C0 controls
/// in caret notation (`^[` for ESC), DEL as `^?`, anything else not
/// [`is_shown_as_is`] as `<U+XXXX>`.
pub struct Shown<'a>(pub &'a str);

impl fmt::Display for Shown<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut rest = self.0;
        while !rest.is_empty() {
            // Write the longest run shown as it is in one piece.
            let cut = rest
                .char_indices()
                .find(|&(_, c)| !is_shown_as_is(c))
                .map_or(rest.len(), |(i, _)| i);
            f.write_str(&rest[..cut])?;
            let mut chars = rest[cut..].chars();
            let Some(c) = chars.next() else { break };
            rest = chars.as_str();
            if c == '\t' {
                f.write_char(' ')?;
            } else if (c as u32) < 0x20 {
                f.write_char('^')?;
                f.write_char(char::from(c as u8 + 0x40))?;
            } else if c == '\u{7F}' {
                f.write_str("^?")?;
            } else {
                write!(f, "<U+{:04X}>", c as u32)?;
            }
        }
        Ok(())
    }
}

/// Shows bytes from the network safely: invalid UTF-8 as U+FFFD, the rest
/// as [`Shown`] does.
pub struct ShownBytes<'a>(pub &'a [u8]);

impl fmt::Display for ShownBytes<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for chunk in self.0.utf8_chunks() {
            write!(f, "{}", Shown(chunk.valid()))?;
            if !chunk.invalid().is_empty() {
                f.write_char(char::REPLACEMENT_CHARACTER)?;
            }
        }
        Ok(())
    }
}

/// How many characters of a bad word or line a message quotes.
pub const QUOTE_CHARS: usize = 40;

/// Enough bytes for more than [`QUOTE_CHARS`] characters: a caller that
/// keeps this much of a line can quote it.
pub const QUOTE_BYTES: usize = 4 * QUOTE_CHARS + 4;

/// Quotes the first [`QUOTE_CHARS`] characters of bytes from the network
/// safely (as [`ShownBytes`] does), with `...` after them if there are
/// more. The caller writes the quote marks.
pub struct Quoted<'a>(pub &'a [u8]);

impl fmt::Display for Quoted<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut left = QUOTE_CHARS;
        for chunk in self.0.utf8_chunks() {
            let mut buf = [0; 4];
            let invalid = (!chunk.invalid().is_empty()).then_some(char::REPLACEMENT_CHARACTER);
            for c in chunk.valid().chars().chain(invalid) {
                if left == 0 {
                    return f.write_str("...");
                }
                left -= 1;
                write!(f, "{}", Shown(c.encode_utf8(&mut buf)))?;
            }
        }
        Ok(())
    }
}

/// The number of terminal columns `text` takes once shown safely (as
/// [`is_shown_as_is`] decides): wide (East Asian, emoji) characters count
/// two, combining marks none (`unicode-width`).
pub fn display_width(text: &str) -> usize {
    struct Width(usize);
    impl fmt::Write for Width {
        fn write_str(&mut self, s: &str) -> fmt::Result {
            self.0 += unicode_width::UnicodeWidthStr::width(s);
            Ok(())
        }
    }
    let mut width = Width(0);
    let _ = write!(width, "{}", Shown(text));
    width.0
}

/// Writes `text` [`Shown`], then spaces up to `width` columns (by
/// [`display_width`]), for tables aligned on a terminal.
pub struct Padded<'a> {
    /// The text, shown safely.
    pub text: &'a str,
    /// The columns to fill.
    pub width: usize,
}

impl fmt::Display for Padded<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", Shown(self.text))?;
        for _ in display_width(self.text)..self.width {
            f.write_char(' ')?;
        }
        Ok(())
    }
}

/// A writer that keeps what fits in its `heapless::String` and drops the
/// rest, at a character boundary: a long message is cut, never lost, and a
/// long quoted value never turns a reply into no reply.
pub struct Truncating<const N: usize>(pub heapless::String<N>);

impl<const N: usize> fmt::Write for Truncating<N> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        for c in s.chars() {
            if self.0.push(c).is_err() {
                break;
            }
        }
        Ok(())
    }
}

/// The Unicode version of the generated tables (`tables.rs`).
pub const TABLES_UNICODE_VERSION: (u8, u8, u8) = tables::UNICODE_VERSION;
