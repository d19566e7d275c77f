//! Names and addresses: the user's chat name and the directory server's
//! `HOST:PORT`.

use core::fmt::{self, Write as _};

use crate::limits::{MAX_CHAT_NAME, MAX_SERVER_ADDR};
use crate::text::{self, NameProblem};

use super::render::is_unsafe_char;

/// A directory server's address as the client uses it: `HOST:PORT`, where
/// HOST is a name, an IPv4 address or a bracketed IPv6 address.
pub type ServerAddr = heapless::String<MAX_SERVER_ADDR>;

/// A chat name: 1 to [`MAX_CHAT_NAME`] characters, words of the characters
/// a room name may hold (the core's text rule: visible, not blank, in
/// composed form, not beginning with a combining mark) with single spaces
/// between them (leading and trailing spaces are dropped), and no `: `,
/// where receivers split `Name: text`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ChatName(heapless::String<{ 4 * MAX_CHAT_NAME }>);

/// Why a chat name was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum NameError {
    /// Nothing but spaces.
    Empty,
    /// More than [`MAX_CHAT_NAME`] characters.
    TooLong,
    /// A control or invisible formatting character.
    NotPrintable,
    /// Holds `: ` (receivers would read the name as ending at the colon).
    ColonSpace,
    /// Two spaces in a row (a name that looks like another).
    DoubleSpace,
    /// A character the text rule refuses in names (blank, ignorable, not
    /// composed, a space other than U+0020), or a word beginning with a
    /// combining mark or showing as blank.
    Refused(NameProblem),
}

impl fmt::Display for NameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NameError::Empty => f.write_str("a chat name cannot be empty"),
            NameError::TooLong => write!(
                f,
                "a chat name has at most {MAX_CHAT_NAME} characters; choose a shorter one"
            ),
            NameError::NotPrintable => {
                f.write_str("a chat name holds printable characters only; choose another")
            }
            NameError::ColonSpace => f.write_str(
                "a chat name cannot hold ': ' (a colon then a space): others would see \
                 the name end at the colon; choose another",
            ),
            NameError::DoubleSpace => {
                f.write_str("a chat name has single spaces between words; choose another")
            }
            NameError::Refused(problem) => {
                write!(f, "in a chat name, {problem}; choose another")
            }
        }
    }
}

impl ChatName {
    /// Checks and takes `name`, without its leading and trailing spaces.
    pub fn new(name: &str) -> Result<ChatName, NameError> {
        let name = name.trim();
        if name.is_empty() {
            return Err(NameError::Empty);
        }
        if name.chars().any(is_unsafe_char) {
            return Err(NameError::NotPrintable);
        }
        if name.chars().count() > MAX_CHAT_NAME {
            return Err(NameError::TooLong);
        }
        if name.contains(": ") {
            return Err(NameError::ColonSpace);
        }
        if name.contains("  ") {
            return Err(NameError::DoubleSpace);
        }
        for word in name.split(' ') {
            text::check_name_text(word).map_err(NameError::Refused)?;
        }
        // At most MAX_CHAT_NAME chars of at most 4 bytes each: it fits.
        heapless::String::try_from(name)
            .map(ChatName)
            .map_err(|_| NameError::TooLong)
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ChatName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Why a server address was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum AddrError {
    /// Empty, or holds spaces or control characters.
    BadHost,
    /// The part after the colon is not a port number 1-65535.
    BadPort,
    /// Longer than [`MAX_SERVER_ADDR`].
    TooLong,
}

impl fmt::Display for AddrError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            AddrError::BadHost => "give the server as HOST or HOST:PORT, e.g. localhost:5577",
            AddrError::BadPort => "the port after the colon must be a number from 1 to 65535",
            AddrError::TooLong => "that server address is too long",
        })
    }
}

/// Reads `HOST` or `HOST:PORT` (IPv6 as `[ADDR]:PORT` or a bare `ADDR`) and
/// returns it as `HOST:PORT`, with `default_port` when none is given.
pub fn parse_server_addr(text: &str, default_port: u16) -> Result<ServerAddr, AddrError> {
    let text = text.trim();
    if text.is_empty() || text.chars().any(|c| c.is_whitespace() || is_unsafe_char(c)) {
        return Err(AddrError::BadHost);
    }
    let (host, port) = if let Some(rest) = text.strip_prefix('[') {
        let (inside, after) = rest.split_once(']').ok_or(AddrError::BadHost)?;
        if inside.is_empty() {
            return Err(AddrError::BadHost);
        }
        let port = match after {
            "" => None,
            _ => Some(after.strip_prefix(':').ok_or(AddrError::BadHost)?),
        };
        (&text[..inside.len() + 2], port)
    } else if text.matches(':').count() > 1 {
        // A bare IPv6 address: no port.
        return write_addr(format_args!("[{text}]:{default_port}"));
    } else {
        match text.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (text, None),
        }
    };
    if host.is_empty() {
        return Err(AddrError::BadHost);
    }
    let port = match port {
        None => default_port,
        Some(p) => parse_port(p).ok_or(AddrError::BadPort)?,
    };
    write_addr(format_args!("{host}:{port}"))
}

/// A port number 1-65535 written in 1-5 ASCII digits (no sign).
fn parse_port(text: &str) -> Option<u16> {
    if text.is_empty() || text.len() > 5 || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse::<u16>().ok().filter(|&p| p > 0)
}

fn write_addr(args: fmt::Arguments<'_>) -> Result<ServerAddr, AddrError> {
    let mut out = ServerAddr::new();
    out.write_fmt(args).map_err(|_| AddrError::TooLong)?;
    Ok(out)
}
