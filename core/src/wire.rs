//! The CRDP's wire types and their encoding.
//!
//! Decoding lives in [`crate::parse`]; every byte the core reads or writes
//! goes through these two modules.

use core::fmt::{self, Write as _};
use core::net::IpAddr;

use crate::limits::{
    MAX_ADDRESS_TEXT, MAX_FULL_ROOM_LINE, MAX_LINE, MAX_ROOM_KIND, MAX_ROOM_LINE, MAX_ROOM_NAME,
};
use crate::owner::Token;
use crate::privacy::{Salt, Verifier};

/// A room name: 1 to [`MAX_ROOM_NAME`] bytes of visible UTF-8 without
/// whitespace, in NFC (see [`is_valid_room_name`]).
pub type RoomName = heapless::String<MAX_ROOM_NAME>;

/// One protocol line, terminator included.
pub type LineBuf = heapless::String<MAX_LINE>;

/// A chat room: its name and the multicast group and UDP port it chats on.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Room {
    /// The room's name, unique in the directory by
    /// [`same_name`](crate::same_name): ignoring case and look-alike
    /// characters.
    pub name: RoomName,
    /// The multicast group: IPv4 in 239.0.0.0/8, or IPv6 in ff14::/16,
    /// ff15::/16 or ff18::/16 ([`is_room_group`](crate::is_room_group)).
    pub group: IpAddr,
    /// The UDP port, at least [`MIN_ROOM_PORT`](crate::limits::MIN_ROOM_PORT).
    pub port: u16,
}

/// What makes a room private: the salt its key was derived with and the
/// verifier of that key, both public (`getroom` hands them out). 33 bytes
/// per room as `Option<Privacy>` in the directory.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Privacy {
    /// The salt the server gave the room's maker (`salt`).
    pub salt: Salt,
    /// The verifier of the key the maker derived with that salt.
    pub verifier: Verifier,
}

/// Whether a room is open or private, as a `getdir full` line says it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RoomKind {
    /// `open`: anyone on the network can read the room.
    Open,
    /// `private`: the room is sealed with a key derived from its
    /// passphrase (`getroom` gives its salt and verifier).
    Private,
}

impl RoomKind {
    /// The kind of a room the directory keeps with this privacy.
    pub fn of(privacy: Option<&Privacy>) -> Self {
        match privacy {
            None => RoomKind::Open,
            Some(_) => RoomKind::Private,
        }
    }

    /// The kind's word on the wire (at most [`MAX_ROOM_KIND`] bytes).
    pub const fn word(self) -> &'static str {
        match self {
            RoomKind::Open => "open",
            RoomKind::Private => "private",
        }
    }

    /// The kind a word names, exactly as the server writes it (lower
    /// case); `None` for any other word.
    pub fn from_word(word: &str) -> Option<Self> {
        match word {
            "open" => Some(RoomKind::Open),
            "private" => Some(RoomKind::Private),
            _ => None,
        }
    }
}

// Every kind word fits the room a `getdir full` line gives it.
const _: () = assert!(
    RoomKind::Open.word().len() <= MAX_ROOM_KIND && RoomKind::Private.word().len() <= MAX_ROOM_KIND
);

/// A command from a client to the directory server.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command {
    /// `getdir`: list every room.
    GetDir,
    /// `getdir full`: list every room with its kind, open or private.
    GetDirFull,
    /// `makeroom <name> <address> <port>`: add a room.
    MakeRoom(Room),
    /// `makeroom <name>`: add a room on a group and port the server picks
    /// from its pool.
    AllocRoom(RoomName),
    /// `makeroom <name> <address> <port> private <salt> <verifier>`: add a
    /// private room; the salt is the one `salt` last gave this connection.
    MakePrivate(Room, Privacy),
    /// `makeroom <name> private <salt> <verifier>`: add a private room on a
    /// group and port the server picks.
    AllocPrivate(RoomName, Privacy),
    /// `salt`: get a fresh salt for the next private `makeroom`.
    Salt,
    /// `getroom <name>`: one room's details, private or open.
    GetRoom(RoomName),
    /// `deleteroom <name> [<token>]`: remove a room; the token is the one
    /// `makeroom` answered, or the operator's admin token.
    DeleteRoom(RoomName, Option<Token>),
    /// `ping`: check that the server is alive; also keeps a connection open.
    Ping,
    /// `help`: list the commands and their syntax.
    Help,
    /// `bye`: the server answers, then closes the connection.
    Bye,
}

/// Which command a line named, without its arguments.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CommandKind {
    /// `getdir`
    GetDir,
    /// `getroom`
    GetRoom,
    /// `salt`
    Salt,
    /// `makeroom`
    MakeRoom,
    /// `deleteroom`
    DeleteRoom,
    /// `ping`
    Ping,
    /// `help`
    Help,
    /// `bye`
    Bye,
}

impl CommandKind {
    /// Every command, in the order `help` lists them.
    pub const ALL: [CommandKind; 8] = [
        CommandKind::GetDir,
        CommandKind::GetRoom,
        CommandKind::Salt,
        CommandKind::MakeRoom,
        CommandKind::DeleteRoom,
        CommandKind::Ping,
        CommandKind::Help,
        CommandKind::Bye,
    ];

    /// The command's word on the wire.
    pub const fn verb(self) -> &'static str {
        match self {
            CommandKind::GetDir => "getdir",
            CommandKind::GetRoom => "getroom",
            CommandKind::Salt => "salt",
            CommandKind::MakeRoom => "makeroom",
            CommandKind::DeleteRoom => "deleteroom",
            CommandKind::Ping => "ping",
            CommandKind::Help => "help",
            CommandKind::Bye => "bye",
        }
    }

    /// How many arguments the command takes: at least, at most (`makeroom`
    /// takes 1, 3, 4 or 6: see [`Command::AllocRoom`], [`Command::MakeRoom`],
    /// [`Command::AllocPrivate`], [`Command::MakePrivate`]).
    pub const fn arity(self) -> (usize, usize) {
        match self {
            CommandKind::MakeRoom => (1, 6),
            CommandKind::GetRoom => (1, 1),
            CommandKind::DeleteRoom => (1, 2),
            // `getdir` or `getdir full`.
            CommandKind::GetDir => (0, 1),
            _ => (0, 0),
        }
    }

    /// The command's syntax, as `help` and `ERR usage` show it.
    pub const fn usage(self) -> &'static str {
        match self {
            CommandKind::GetDir => "getdir [full]",
            CommandKind::GetRoom => "getroom <name>",
            CommandKind::Salt => "salt",
            CommandKind::MakeRoom => {
                "makeroom <name> [<address> <port>] [private <salt> <verifier>]"
            }
            CommandKind::DeleteRoom => "deleteroom <name> [<token>]",
            CommandKind::Ping => "ping",
            CommandKind::Help => "help",
            CommandKind::Bye => "bye",
        }
    }

    /// What the command does, in a few words, for `help`.
    pub const fn summary(self) -> &'static str {
        match self {
            CommandKind::GetDir => {
                "list every room: name, multicast address, port (full: and open or private)"
            }
            CommandKind::GetRoom => {
                "one room's address and port, and its salt and verifier if private"
            }
            CommandKind::Salt => "a fresh salt for this connection's next private makeroom",
            CommandKind::MakeRoom => {
                "add a room; the server picks address and port unless given (private: see salt)"
            }
            CommandKind::DeleteRoom => "remove a room you made (token: the one makeroom gave)",
            CommandKind::Ping => "check the server is alive (also keeps the connection open)",
            CommandKind::Help => "show this list",
            CommandKind::Bye => "close the connection",
        }
    }
}

impl Command {
    /// Which command this is.
    pub fn kind(&self) -> CommandKind {
        match self {
            Command::GetDir | Command::GetDirFull => CommandKind::GetDir,
            Command::GetRoom(_) => CommandKind::GetRoom,
            Command::Salt => CommandKind::Salt,
            Command::MakeRoom(_)
            | Command::AllocRoom(_)
            | Command::MakePrivate(..)
            | Command::AllocPrivate(..) => CommandKind::MakeRoom,
            Command::DeleteRoom(..) => CommandKind::DeleteRoom,
            Command::Ping => CommandKind::Ping,
            Command::Help => CommandKind::Help,
            Command::Bye => CommandKind::Bye,
        }
    }
}

/// Whether `name` may name a room: 1 to [`MAX_ROOM_NAME`] bytes of
/// visible characters in composed form (NFC), without whitespace, controls,
/// format characters, default-ignorable or blank-looking characters. The
/// rule is the core's text module's; [`check_room_name`](crate::check_room_name)
/// says what is wrong with a name.
pub fn is_valid_room_name(name: &str) -> bool {
    crate::text::check_room_name(name).is_ok()
}

/// Encodes `command` as one line, LF included, ready to send.
pub fn encode_command(command: &Command) -> LineBuf {
    let mut line = LineBuf::new();
    // The longest command (a private makeroom with a 32-byte name and the
    // longest IPv6 group, 142 bytes) is far below MAX_LINE, so these writes
    // cannot run out of room.
    let _ = match command {
        Command::MakeRoom(room) => {
            writeln!(line, "makeroom {} {} {}", room.name, room.group, room.port)
        }
        Command::AllocRoom(name) => writeln!(line, "makeroom {name}"),
        Command::MakePrivate(room, privacy) => writeln!(
            line,
            "makeroom {} {} {} private {} {}",
            room.name, room.group, room.port, privacy.salt, privacy.verifier
        ),
        Command::AllocPrivate(name, privacy) => writeln!(
            line,
            "makeroom {name} private {} {}",
            privacy.salt, privacy.verifier
        ),
        Command::GetDirFull => writeln!(line, "getdir full"),
        Command::GetRoom(name) => writeln!(line, "getroom {name}"),
        Command::DeleteRoom(name, None) => writeln!(line, "deleteroom {name}"),
        Command::DeleteRoom(name, Some(token)) => writeln!(line, "deleteroom {name} {token}"),
        other => writeln!(line, "{}", other.kind().verb()),
    };
    line
}

/// Appends the `getdir` line for `room`, `<name> <address> <port>` and LF.
pub fn encode_room_line(room: &Room, out: &mut LineBuf) -> fmt::Result {
    let mut line = [0u8; MAX_ROOM_LINE];
    let len = room_line(room, &mut line);
    // The line is the name (a str) and ASCII, so it is UTF-8.
    let text = core::str::from_utf8(&line[..len]).map_err(|_| fmt::Error)?;
    out.push_str(text).map_err(|_| fmt::Error)
}

/// Appends the `getdir full` line for `room` of `kind`, `<name> <address>
/// <port> <kind>` and LF.
pub fn encode_full_room_line(room: &Room, kind: RoomKind, out: &mut LineBuf) -> fmt::Result {
    let mut line = [0u8; MAX_FULL_ROOM_LINE];
    let len = full_room_line(room, kind, &mut line);
    // The name (a str) and ASCII: UTF-8.
    let text = core::str::from_utf8(&line[..len]).map_err(|_| fmt::Error)?;
    out.push_str(text).map_err(|_| fmt::Error)
}

/// Writes the `getdir` line for `room` into `out` and returns its length.
pub(crate) fn room_line<const N: usize>(room: &Room, out: &mut [u8; N]) -> usize {
    let len = room_fields(room, out);
    out[len] = b'\n';
    len + 1
}

/// Writes the `getdir full` line for `room` of `kind` into `out` and
/// returns its length.
pub(crate) fn full_room_line(
    room: &Room,
    kind: RoomKind,
    out: &mut [u8; MAX_FULL_ROOM_LINE],
) -> usize {
    let mut len = room_fields(room, out);
    out[len] = b' ';
    len += 1;
    let word = kind.word().as_bytes();
    out[len..len + word.len()].copy_from_slice(word);
    len += word.len();
    out[len] = b'\n';
    len + 1
}

/// Writes `<name> <address> <port>` for `room` into `out` (at least
/// [`MAX_ROOM_LINE`] bytes: checked when compiled) and returns its length.
///
/// By hand, not with `write!`: formatting `Ipv4Addr` and the port through
/// `core::fmt` was a third of the cost of a `getdir` listing. An IPv6 group
/// goes through `core::fmt` (RFC 5952 form).
fn room_fields<const N: usize>(room: &Room, out: &mut [u8; N]) -> usize {
    const { assert!(N >= MAX_ROOM_LINE) };
    fn push_decimal<const N: usize>(out: &mut [u8; N], len: &mut usize, mut n: u16) {
        let mut digits = [0u8; 5];
        let mut i = digits.len();
        loop {
            i -= 1;
            digits[i] = b'0' + (n % 10) as u8;
            n /= 10;
            if n == 0 {
                break;
            }
        }
        let d = &digits[i..];
        out[*len..*len + d.len()].copy_from_slice(d);
        *len += d.len();
    }
    let name = room.name.as_bytes();
    out[..name.len()].copy_from_slice(name);
    let mut len = name.len();
    match room.group {
        IpAddr::V4(v4) => {
            for (i, octet) in v4.octets().into_iter().enumerate() {
                out[len] = if i == 0 { b' ' } else { b'.' };
                len += 1;
                push_decimal(out, &mut len, octet.into());
            }
        }
        IpAddr::V6(v6) => {
            out[len] = b' ';
            len += 1;
            let mut text = heapless::String::<MAX_ADDRESS_TEXT>::new();
            // At most MAX_ADDRESS_TEXT bytes: this cannot fail.
            let _ = write!(text, "{v6}");
            out[len..len + text.len()].copy_from_slice(text.as_bytes());
            len += text.len();
        }
    }
    out[len] = b' ';
    len += 1;
    push_decimal(out, &mut len, room.port);
    len
}

/// A reply's first line, as a client reads it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReplyLine<'a> {
    /// `OK <text>`: success; `text` may be empty.
    Ok(&'a str),
    /// `ERR <code> <message>`.
    Err {
        /// The code, or `None` for a token this version does not know.
        code: Option<crate::ErrorCode>,
        /// The token as sent.
        token: &'a str,
        /// The human-readable rest of the line.
        message: &'a str,
    },
}
