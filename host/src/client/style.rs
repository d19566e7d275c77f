//! How chat lines look on the screen: the time a message arrived, the
//! sender's colour, actions (`/me`), and notices styled apart.
//!
//! A chat datagram is `Name: text`; the sender's name is what precedes the
//! first `: ` (nothing proves it). A text that is `/me` or starts with
//! `/me ` is an action: `Ann: /me waves` shows as `* Ann waves`. Plain
//! clients show the same datagram as `Ann: /me waves`, which reads well
//! enough (PROTOCOL.md).
//!
//! Every piece that came from the network is made safe by the core's
//! [`Message`] `Display` (control characters shown, never obeyed) first;
//! colour codes are added to the safe text afterwards, so a datagram
//! cannot bring escape sequences of its own.
//!
//! # Colours
//!
//! A sender's colour is [`name_colour`]: FNV-1a (32 bits) of the name's
//! bytes, modulo the [`PALETTE`] of twelve ANSI colours. It depends on the
//! name alone, so the same name has the same colour on every screen and in
//! every run. The palette is the terminal's own red, green, yellow, blue,
//! magenta and cyan, normal and bright (no black, white or grey): the
//! user's terminal theme picks the shades, so they read well on its
//! background. The time and roomcast's notices in a room are dim and
//! italic.

use std::fmt::Write as _;

use jiff::Zoned;
use roomcast_core::{Datagram, Message};

/// SGR foreground codes of the colours senders' names get.
pub const PALETTE: [u8; 12] = [31, 32, 33, 34, 35, 36, 91, 92, 93, 94, 95, 96];

/// Dim and italic, for the time and for roomcast's notices in a room.
const DIM: &str = "\x1b[2;3m";
pub const RESET: &str = "\x1b[0m";

/// The time format used in a terminal when none is chosen.
pub const DEFAULT_TIME_FORMAT: &str = "%H:%M";

/// The colour (an SGR code from [`PALETTE`]) of the sender `name`.
pub fn name_colour(name: &[u8]) -> u8 {
    let mut hash: u32 = 0x811c_9dc5;
    for &b in name {
        hash ^= u32::from(b);
        hash = hash.wrapping_mul(0x0100_0193);
    }
    PALETTE[(hash % PALETTE.len() as u32) as usize]
}

/// A chat datagram taken apart.
#[derive(Debug, PartialEq, Eq)]
pub struct Parsed<'a> {
    /// What precedes the first `: `, if that is not empty.
    pub sender: Option<&'a [u8]>,
    /// What follows it (for an action, what follows `/me `); the whole
    /// payload when there is no sender.
    pub text: &'a [u8],
    /// The text was `/me ...`.
    pub action: bool,
}

/// Takes a chat payload apart (see the module docs).
pub fn parse(payload: &[u8]) -> Parsed<'_> {
    let split = payload
        .windows(2)
        .position(|w| w == b": ")
        .filter(|&i| i > 0);
    let Some(i) = split else {
        return Parsed {
            sender: None,
            text: payload,
            action: false,
        };
    };
    let (sender, text) = (&payload[..i], &payload[i + 2..]);
    let action = text == b"/me" || text.starts_with(b"/me ");
    let text = if action {
        text.get(4..).unwrap_or_default()
    } else {
        text
    };
    Parsed {
        sender: Some(sender),
        text,
        action,
    }
}

/// Bytes from the network as safe text, by the core's [`Message`] rules;
/// `truncated` adds its `[cut: too long]` mark.
pub fn clean(bytes: &[u8], truncated: bool) -> String {
    let payload = Datagram::from_slice(&bytes[..bytes.len().min(Datagram::new().capacity())])
        .unwrap_or_default();
    Message::Chat { payload, truncated }.to_string()
}

/// How chat lines are drawn.
#[derive(Clone, Debug)]
pub struct Style {
    /// Colours and dim text are on.
    pub colour: bool,
    /// The strftime-like format of the time shown before each message, if
    /// any.
    pub time_format: Option<String>,
}

impl Style {
    /// Checks a time format, as given by the user: `None` for an empty one
    /// or `none` (no time shown).
    pub fn time_format(format: &str) -> Result<Option<String>, String> {
        if format.is_empty() || format == "none" {
            return Ok(None);
        }
        jiff::fmt::strtime::format(format, &Zoned::now()).map_err(|e| e.to_string())?;
        Ok(Some(format.to_string()))
    }

    fn dim(&self, out: &mut String, text: &str) {
        if self.colour {
            let _ = write!(out, "{DIM}{text}{RESET}");
        } else {
            out.push_str(text);
        }
    }

    /// A received chat message, as shown on the screen at `now`.
    pub fn chat(&self, now: &Zoned, payload: &[u8], truncated: bool) -> String {
        let mut out = String::new();
        if let Some(format) = &self.time_format {
            // Checked at the start; a failure now shows no time.
            if let Ok(time) = jiff::fmt::strtime::format(format, now) {
                self.dim(&mut out, &clean(time.as_bytes(), false));
                out.push(' ');
            }
        }
        let parsed = parse(payload);
        let text = clean(parsed.text, truncated);
        let Some(sender) = parsed.sender else {
            out.push_str(&text);
            return out;
        };
        let name = clean(sender, false);
        let name = if self.colour {
            format!("\x1b[{}m{name}{RESET}", name_colour(sender))
        } else {
            name
        };
        if parsed.action {
            let _ = write!(out, "* {name}");
            if !text.is_empty() {
                let _ = write!(out, " {text}");
            }
        } else {
            let _ = write!(out, "{name}: {text}");
        }
        out
    }

    /// One of roomcast's own messages; dim in a room (`in_room`), where it
    /// must stand apart from what people say.
    pub fn notice(&self, text: &str, in_room: bool) -> String {
        if !self.colour || !in_room {
            return text.to_string();
        }
        let mut out = String::new();
        for (i, line) in text.split('\n').enumerate() {
            if i > 0 {
                out.push('\n');
            }
            self.dim(&mut out, line);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_name_keeps_its_colour() {
        // Fixed values: a change here changes everyone's colours.
        assert_eq!(name_colour(b"Ann"), name_colour(b"Ann"));
        let expected: Vec<u8> = ["Ann", "Bob", "Mel", "alice", "Zoë"]
            .iter()
            .map(|n| name_colour(n.as_bytes()))
            .collect();
        assert_eq!(expected, [35, 35, 94, 96, 31]);
        // Names spread over the palette.
        let used: std::collections::BTreeSet<u8> = (0..200)
            .map(|i| name_colour(format!("user{i}").as_bytes()))
            .collect();
        assert_eq!(used.len(), PALETTE.len());
    }

    #[test]
    fn datagrams_are_taken_apart_at_the_first_colon_space() {
        let p = parse(b"Ann: hi: there");
        assert_eq!(
            (p.sender, p.text, p.action),
            (Some(&b"Ann"[..]), &b"hi: there"[..], false)
        );
        let p = parse(b"Ann: /me waves");
        assert_eq!(
            (p.sender, p.text, p.action),
            (Some(&b"Ann"[..]), &b"waves"[..], true)
        );
        assert!(parse(b"Ann: /me").action);
        assert!(!parse(b"Ann: /meow").action);
        assert_eq!(parse(b"no sender").sender, None);
        assert_eq!(parse(b": empty name").sender, None);
    }

    #[test]
    fn colour_comes_after_neutralisation() {
        let style = Style {
            colour: true,
            time_format: None,
        };
        let now = Zoned::now();
        let shown = style.chat(&now, b"A\x1b[31mnn: hi \x1b]0;x\x07 \xe2\x80\xae", false);
        // The only ESC bytes are the colour's own two.
        assert_eq!(shown.matches('\x1b').count(), 2, "{shown:?}");
        assert!(shown.contains("A^[[31mnn"), "{shown:?}");
        assert!(shown.ends_with("hi ^[]0;x^G <U+202E>"), "{shown:?}");
        let plain = Style {
            colour: false,
            time_format: None,
        };
        assert_eq!(plain.chat(&now, b"Ann: /me waves", false), "* Ann waves");
        assert_eq!(
            plain.chat(&now, b"Ann: hello", true),
            "Ann: hello [cut: too long]"
        );
    }

    #[test]
    fn the_time_comes_first_in_its_format() {
        let style = Style {
            colour: false,
            time_format: Style::time_format("%H:%M").unwrap(),
        };
        let now: Zoned = "2026-11-27T09:05:00[UTC]".parse().unwrap();
        assert_eq!(style.chat(&now, b"Ann: hi", false), "09:05 Ann: hi");
        assert_eq!(Style::time_format("").unwrap(), None);
        assert_eq!(Style::time_format("none").unwrap(), None);
        assert!(Style::time_format("%H:%").is_err());
    }
}
