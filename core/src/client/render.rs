//! Rendering: the prompt, messages for the user, and text from the network
//! made safe for a terminal.

use core::fmt::{self, Write as _};

use crate::text::{self, ShownBytes};
pub(super) use crate::text::{QUOTE_BYTES, Quoted as Quote, Shown as Clean, Truncating};
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
    /// A message from before the user entered the room, served by members
    /// already there: `[history 5 min ago] Ann: text` (the host shows the
    /// local time it was sent instead). Made safe as [`Message::Chat`].
    History {
        /// `Name: text`.
        payload: Datagram,
        /// How long before now it was sent.
        age: core::time::Duration,
    },
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
            Message::History { payload, age } => {
                let secs = age.as_secs();
                if secs < 120 {
                    write!(f, "[history {secs} s ago] ")?;
                } else {
                    write!(f, "[history {} min ago] ", secs / 60)?;
                }
                write!(f, "{}", ShownBytes(payload))
            }
            Message::Chat { payload, truncated } => {
                write!(f, "{}", ShownBytes(payload))?;
                if *truncated {
                    f.write_str(" [cut: too long]")?;
                }
                Ok(())
            }
        }
    }
}

/// Characters that must not reach a terminal as they are (the rule is
/// [`crate::text`]'s).
pub(super) fn is_unsafe_char(c: char) -> bool {
    !text::is_shown_as_is(c)
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
