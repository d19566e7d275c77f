//! Rendering: the prompt, messages for the user, and text from the network
//! made safe for a terminal.

use core::fmt::{self, Write as _};

use crate::wire::RoomName;

use super::api::{Datagram, Mode, Text};
use super::names::{ChatName, ServerAddr};

/// Formats a message, cut at [`MAX_TEXT`](crate::limits::MAX_TEXT) bytes.
pub(super) fn make_text(args: fmt::Arguments<'_>) -> Text {
    let mut text = Truncating(Text::new());
    let _ = text.write_fmt(args);
    text.0
}

/// The prompt for the user's next line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Prompt {
    /// `roomcast> `
    Main,
    /// `roomcast [HOST:PORT]> `
    Connected {
        /// The server connected to.
        server: ServerAddr,
    },
    /// `[ROOM] NAME> `
    Chat {
        /// The chat room.
        room: RoomName,
        /// The user's chat name.
        name: ChatName,
    },
}

impl Prompt {
    /// The mode this prompt belongs to.
    pub fn mode(&self) -> Mode {
        match self {
            Prompt::Main => Mode::Main,
            Prompt::Connected { .. } => Mode::Connected,
            Prompt::Chat { .. } => Mode::Chat,
        }
    }
}

impl fmt::Display for Prompt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Prompt::Main => f.write_str("roomcast> "),
            Prompt::Connected { server } => write!(f, "roomcast [{server}]> "),
            Prompt::Chat { room, name } => write!(f, "[{}] {name}> ", Clean(room)),
        }
    }
}

/// Something to show the user.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Message {
    /// A message from roomcast itself (may span lines).
    Text(Text),
    /// A chat message received from the room, exactly as it came. Its
    /// [`Display`](fmt::Display) makes it safe for a terminal: invalid
    /// UTF-8 shown as U+FFFD, control characters and invisible formatting
    /// characters written out visibly.
    Chat {
        /// The datagram's first [`MAX_DATAGRAM`](crate::limits::MAX_DATAGRAM) bytes.
        payload: Datagram,
        /// Whether the datagram was longer and got cut.
        truncated: bool,
    },
}

impl fmt::Display for Message {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Message::Text(text) => f.write_str(text),
            Message::Chat { payload, truncated } => {
                for chunk in payload.utf8_chunks() {
                    write!(f, "{}", Clean(chunk.valid()))?;
                    if !chunk.invalid().is_empty() {
                        f.write_char(char::REPLACEMENT_CHARACTER)?;
                    }
                }
                if *truncated {
                    f.write_str(" [cut: too long]")?;
                }
                Ok(())
            }
        }
    }
}

/// Characters that must not reach a terminal as they are: control
/// characters and invisible formatting ones (bidirectional overrides, zero
/// width characters) that could disguise text.
pub(super) fn is_unsafe_char(c: char) -> bool {
    c.is_control()
        || matches!(c,
            '\u{200B}'..='\u{200F}'
            | '\u{202A}'..='\u{202E}'
            | '\u{2060}'..='\u{2069}'
            | '\u{FEFF}'
            | '\u{FFF9}'..='\u{FFFB}')
}

/// Shows text from the network safely: a tab as a space, other C0 controls
/// in caret notation (`^[` for ESC), anything else unsafe as `<U+XXXX>`.
pub(super) struct Clean<'a>(pub(super) &'a str);

impl fmt::Display for Clean<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for c in self.0.chars() {
            if !is_unsafe_char(c) {
                f.write_char(c)?;
            } else if c == '\t' {
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

/// How many characters of a bad line from the server a message quotes.
pub(super) const QUOTE_CHARS: usize = 40;

/// Enough bytes for more than [`QUOTE_CHARS`] characters.
pub(super) const QUOTE_BYTES: usize = 4 * QUOTE_CHARS + 4;

/// Shows the first [`QUOTE_CHARS`] characters of bytes from the network
/// safely (invalid UTF-8 as U+FFFD, the rest as [`Clean`] does), with
/// `...` after them if there are more.
pub(super) struct Quote<'a>(pub(super) &'a [u8]);

impl fmt::Display for Quote<'_> {
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
                write!(f, "{}", Clean(c.encode_utf8(&mut buf)))?;
            }
        }
        Ok(())
    }
}

/// The width in characters of [`Clean`] text.
pub(super) struct CleanLen<'a>(pub(super) &'a str);

impl CleanLen<'_> {
    pub(super) fn len(&self) -> usize {
        fmt_len(format_args!("{}", Clean(self.0)))
    }
}

/// How many characters `args` writes.
pub(super) fn fmt_len(args: fmt::Arguments<'_>) -> usize {
    struct Count(usize);
    impl fmt::Write for Count {
        fn write_str(&mut self, s: &str) -> fmt::Result {
            self.0 += s.chars().count();
            Ok(())
        }
    }
    let mut count = Count(0);
    let _ = count.write_fmt(args);
    count.0
}

/// A writer that keeps what fits and drops the rest (a long message is cut,
/// never lost).
pub(super) struct Truncating<const N: usize>(heapless::String<N>);

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
