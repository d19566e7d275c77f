//! The error codes of the CRDP: stable tokens after `ERR` on the wire.

use core::fmt;

/// Why the server refused a command. Its [`token`](ErrorCode::token) is the
/// stable lowercase word sent after `ERR`; PROTOCOL.md lists them all.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorCode {
    /// The first word is not a command.
    UnknownCommand,
    /// The command has the wrong number of arguments.
    Usage,
    /// A room name is empty, too long, or has a character names refuse
    /// (whitespace, controls, invisible or blank characters, not NFC).
    BadName,
    /// The address is not a room group: IPv4 in 239.0.0.0/8, or IPv6 in
    /// ff14::/16, ff15::/16 or ff18::/16.
    BadAddress,
    /// The port is not a number in 1024-65535.
    BadPort,
    /// A room with that name, or one that looks the same (ignoring case and
    /// look-alike characters), exists already.
    NameTaken,
    /// Another room already uses that address and port, or one within 1
    /// of it on the same group (each room reserves its port + 1).
    AddressInUse,
    /// The directory holds the most rooms it can, or (`makeroom <name>`)
    /// the server's pool has no free group and port.
    Full,
    /// No room has that name.
    NoSuchRoom,
    /// The line is longer than [`MAX_LINE`](crate::limits::MAX_LINE).
    LineTooLong,
    /// The line is not valid UTF-8 or holds control characters.
    Encoding,
    /// The server has no room for another connection.
    Busy,
    /// The connection was quiet for too long.
    Timeout,
    /// The change could not be stored in time, so it was not made.
    Unavailable,
    /// Only the room's owner (or the server's operator) may delete it.
    Denied,
    /// The client reached one of its quotas (rooms, connections, rate).
    Quota,
    /// A private `makeroom`'s salt is not the one `salt` last gave this
    /// connection, or `salt` gave it none.
    BadSalt,
}

impl ErrorCode {
    /// Every code, in the order PROTOCOL.md lists them.
    pub const ALL: [ErrorCode; 17] = [
        ErrorCode::UnknownCommand,
        ErrorCode::Usage,
        ErrorCode::BadName,
        ErrorCode::BadAddress,
        ErrorCode::BadPort,
        ErrorCode::NameTaken,
        ErrorCode::AddressInUse,
        ErrorCode::Full,
        ErrorCode::NoSuchRoom,
        ErrorCode::LineTooLong,
        ErrorCode::Encoding,
        ErrorCode::Busy,
        ErrorCode::Timeout,
        ErrorCode::Unavailable,
        ErrorCode::Denied,
        ErrorCode::Quota,
        ErrorCode::BadSalt,
    ];

    /// The stable wire token, e.g. `inuse`.
    pub const fn token(self) -> &'static str {
        match self {
            ErrorCode::UnknownCommand => "unknown",
            ErrorCode::Usage => "usage",
            ErrorCode::BadName => "badname",
            ErrorCode::BadAddress => "badaddr",
            ErrorCode::BadPort => "badport",
            ErrorCode::NameTaken => "exists",
            ErrorCode::AddressInUse => "inuse",
            ErrorCode::Full => "full",
            ErrorCode::NoSuchRoom => "noroom",
            ErrorCode::LineTooLong => "toolong",
            ErrorCode::Encoding => "encoding",
            ErrorCode::Busy => "busy",
            ErrorCode::Timeout => "timeout",
            ErrorCode::Unavailable => "unavailable",
            ErrorCode::Denied => "denied",
            ErrorCode::Quota => "quota",
            ErrorCode::BadSalt => "badsalt",
        }
    }

    /// The code for a wire token; `None` for a token this version does not
    /// know (a newer server may send one: treat it as a generic error).
    pub fn from_token(token: &str) -> Option<ErrorCode> {
        ErrorCode::ALL.into_iter().find(|c| c.token() == token)
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.token())
    }
}
