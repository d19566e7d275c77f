//! Parsers for everything the core reads: command lines from clients, reply
//! lines from the server. Written with `nom` over bytes; none of them can
//! panic, whatever the input.

use core::fmt;
use core::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use nom::bytes::complete::{tag, take_till1, take_while_m_n};
use nom::character::complete::space0;
use nom::combinator::{all_consuming, map_res};
use nom::sequence::preceded;
use nom::{IResult, Parser};

use crate::alloc::is_room_group;
use crate::error::ErrorCode;
use crate::limits::{MAX_TOKEN, MAX_WORDS, MIN_ROOM_PORT, MIN_TOKEN};
use crate::owner::{Token, is_valid_token};
use crate::privacy::{KEY_TEXT, Salt, Verifier};
use crate::wire::{
    Command, CommandKind, Privacy, ReplyLine, Room, RoomKind, RoomName, is_valid_room_name,
};

/// Why a line could not be read. Borrowed parts point into the line, so an
/// error message can quote what was wrong.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ParseError<'a> {
    /// The line is empty or only whitespace. The server ignores such lines.
    Empty,
    /// The line is not valid UTF-8.
    NotUtf8,
    /// The line holds a control character (other than tab, CR before LF).
    ControlChar,
    /// The first word is not a command.
    UnknownCommand(&'a str),
    /// The command has the wrong number of arguments.
    Usage(CommandKind),
    /// The room name is not 1-32 bytes of characters a name may hold (see
    /// [`check_room_name`](crate::check_room_name)).
    BadName(&'a str),
    /// The address is not a dotted-quad IPv4 address or an IPv6 address.
    BadAddress(&'a str),
    /// The address is outside 239.0.0.0/8, ff14::/16, ff15::/16 and
    /// ff18::/16 (see [`is_room_group`](crate::is_room_group)).
    NotAdminScoped(IpAddr),
    /// The port is not a number from 1024 to 65535.
    BadPort(&'a str),
    /// A private room's port has no control port: a private room sends only
    /// on port + 1, so its port must be below 65535.
    NoControlPort(u16),
    /// The token is not [`MIN_TOKEN`](crate::limits::MIN_TOKEN) to
    /// [`MAX_TOKEN`](crate::limits::MAX_TOKEN) printable ASCII characters.
    BadToken(&'a str),
    /// A private `makeroom`'s salt is not [`KEY_TEXT`] characters of
    /// unpadded base64url.
    BadSalt(&'a str),
    /// A private `makeroom`'s verifier is not [`KEY_TEXT`] characters of
    /// unpadded base64url.
    BadVerifier(&'a str),
    /// A reply line that is neither `OK ...` nor `ERR <code> ...`.
    BadReply,
}

impl ParseError<'_> {
    /// The wire error code for this error.
    pub fn code(&self) -> ErrorCode {
        match self {
            ParseError::Empty | ParseError::UnknownCommand(_) => ErrorCode::UnknownCommand,
            ParseError::NotUtf8 | ParseError::ControlChar | ParseError::BadReply => {
                ErrorCode::Encoding
            }
            ParseError::Usage(_)
            | ParseError::BadToken(_)
            | ParseError::BadSalt(_)
            | ParseError::BadVerifier(_) => ErrorCode::Usage,
            ParseError::BadName(_) => ErrorCode::BadName,
            ParseError::BadAddress(_) | ParseError::NotAdminScoped(_) => ErrorCode::BadAddress,
            ParseError::BadPort(_) | ParseError::NoControlPort(_) => ErrorCode::BadPort,
        }
    }
}

/// Quotes a word from the input, cut to
/// [`QUOTE_CHARS`](crate::text::QUOTE_CHARS) characters and shown safely
/// (an invisible or reordering character is written as `<U+XXXX>`), so a
/// reply always fits in one line and never carries what it refused.
struct Quoted<'a>(&'a str);

impl fmt::Display for Quoted<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "'{}'", crate::text::Quoted(self.0.as_bytes()))
    }
}

impl fmt::Display for ParseError<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ParseError::Empty => f.write_str("empty line; type 'help' for the commands"),
            ParseError::NotUtf8 => f.write_str("the line is not valid UTF-8; send UTF-8 text"),
            ParseError::ControlChar => {
                f.write_str("the line holds a control character; send printable text")
            }
            ParseError::UnknownCommand(word) => write!(
                f,
                "{} is not a command; type 'help' for the commands",
                Quoted(word)
            ),
            ParseError::Usage(kind) => write!(f, "usage: {}", kind.usage()),
            ParseError::BadName(name) => {
                write!(f, "{} is not a room name", Quoted(name))?;
                if let Err(problem) = crate::text::check_room_name(name) {
                    write!(f, " ({problem})")?;
                }
                f.write_str("; use 1-32 bytes of visible characters without spaces")
            }
            ParseError::BadAddress(addr) => write!(
                f,
                "{} is not an IPv4 or IPv6 address; use one from 239.0.0.0 to \
                 239.255.255.255 (or leave the address and port out: the server picks them)",
                Quoted(addr)
            ),
            ParseError::NotAdminScoped(IpAddr::V4(addr)) => write!(
                f,
                "{addr} is outside 239.0.0.0/8, the administratively scoped multicast \
                 range; use an address from 239.0.0.0 to 239.255.255.255"
            ),
            ParseError::NotAdminScoped(IpAddr::V6(addr)) => write!(
                f,
                "{addr} is not an IPv6 group of admin, site or organisation-local \
                 scope; use one in ff14::/16, ff15::/16 or ff18::/16"
            ),
            ParseError::BadPort(port) => write!(
                f,
                "{} is not a usable port; use a number from {MIN_ROOM_PORT} to 65535",
                Quoted(port)
            ),
            ParseError::NoControlPort(port) => write!(
                f,
                "{port} cannot be a private room's port: a private room sends only on \
                 its control port, port + 1, which does not exist for {port}; use a port \
                 from {MIN_ROOM_PORT} to {}",
                u16::MAX - 1
            ),
            ParseError::BadToken(token) => write!(
                f,
                "{} is not a token; give the token 'makeroom' answered \
                 ({MIN_TOKEN}-{MAX_TOKEN} printable characters), or none",
                Quoted(token)
            ),
            ParseError::BadSalt(salt) => write!(
                f,
                "{} is not a salt; give the {KEY_TEXT} characters 'salt' answered \
                 (usage: {})",
                Quoted(salt),
                CommandKind::MakeRoom.usage()
            ),
            ParseError::BadVerifier(verifier) => write!(
                f,
                "{} is not a verifier; give the {KEY_TEXT} base64url characters \
                 (A-Z a-z 0-9 - _) of your key's verifier (usage: {})",
                Quoted(verifier),
                CommandKind::MakeRoom.usage()
            ),
            ParseError::BadReply => f.write_str("the server sent a line that is not a reply"),
        }
    }
}

type Res<'a, T> = IResult<&'a [u8], T>;

fn is_blank(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

/// One word: blanks, then a run of non-blank bytes.
fn word(input: &[u8]) -> Res<'_, &[u8]> {
    preceded(space0, take_till1(is_blank)).parse(input)
}

/// Splits a line into at most `MAX_WORDS` words; `None` if there are more.
fn words(line: &[u8]) -> Option<heapless::Vec<&[u8], MAX_WORDS>> {
    let mut out = heapless::Vec::new();
    let mut rest = line;
    while let Ok((tail, w)) = word(rest) {
        out.push(w).ok()?;
        rest = tail;
    }
    Some(out)
}

fn decimal<T: core::str::FromStr>(max_digits: usize) -> impl Fn(&[u8]) -> Res<'_, T> {
    move |input| {
        map_res(
            take_while_m_n(1, max_digits, |b: u8| b.is_ascii_digit()),
            |digits: &[u8]| {
                // `010` could mean ten or eight (octal, to some parsers):
                // leading zeros are refused rather than guessed at.
                if digits.len() > 1 && digits[0] == b'0' {
                    return Err(());
                }
                // ASCII digits are UTF-8.
                core::str::from_utf8(digits)
                    .ok()
                    .and_then(|s| s.parse::<T>().ok())
                    .ok_or(())
            },
        )
        .parse(input)
    }
}

/// A dotted-quad IPv4 address, every octet 0-255.
fn ipv4(input: &[u8]) -> Res<'_, Ipv4Addr> {
    let octet = decimal::<u8>(3);
    let (rest, (a, _, b, _, c, _, d)) =
        (&octet, tag("."), &octet, tag("."), &octet, tag("."), &octet).parse(input)?;
    Ok((rest, Ipv4Addr::new(a, b, c, d)))
}

/// Strips one trailing CR (a CR LF terminator) and checks the text.
fn text_of(line: &[u8]) -> Result<&str, ParseError<'_>> {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let text = core::str::from_utf8(line).map_err(|_| ParseError::NotUtf8)?;
    if text.chars().any(|c| c.is_control() && c != '\t') {
        return Err(ParseError::ControlChar);
    }
    Ok(text)
}

fn as_str(bytes: &[u8]) -> &str {
    // Only called on slices of a line `text_of` proved to be UTF-8, cut at
    // ASCII blanks, so this never fails; an empty string if it somehow did.
    core::str::from_utf8(bytes).unwrap_or("")
}

fn room_name(word: &[u8]) -> Result<RoomName, ParseError<'_>> {
    let name = as_str(word);
    if !is_valid_room_name(name) {
        return Err(ParseError::BadName(name));
    }
    RoomName::try_from(name).map_err(|_| ParseError::BadName(name))
}

fn token(word: &[u8]) -> Result<Token, ParseError<'_>> {
    let text = as_str(word);
    if !is_valid_token(text) {
        return Err(ParseError::BadToken(text));
    }
    Token::try_from(text).map_err(|_| ParseError::BadToken(text))
}

/// A room's group: dotted-quad IPv4, or IPv6 in any textual form
/// (`ff15::1`, `FF15:0:0:0:0:0:0:1`; no zone, no embedded IPv4 needed),
/// inside the scopes rooms may use ([`is_room_group`]).
fn group_address(word: &[u8]) -> Result<IpAddr, ParseError<'_>> {
    let bad = || ParseError::BadAddress(as_str(word));
    let addr = if word.contains(&b':') {
        // No IPv6 address is longer than 45 characters; a longer word is
        // refused before the standard parser sees it.
        if word.len() > 45 {
            return Err(bad());
        }
        IpAddr::V6(as_str(word).parse::<Ipv6Addr>().map_err(|_| bad())?)
    } else {
        let (_, addr) = all_consuming(ipv4).parse(word).map_err(|_| bad())?;
        IpAddr::V4(addr)
    };
    if !is_room_group(addr) {
        return Err(ParseError::NotAdminScoped(addr));
    }
    Ok(addr)
}

fn room_port(word: &[u8]) -> Result<u16, ParseError<'_>> {
    let bad = || ParseError::BadPort(as_str(word));
    let (_, port) = all_consuming(decimal::<u16>(5))
        .parse(word)
        .map_err(|_| bad())?;
    if port < MIN_ROOM_PORT {
        return Err(bad());
    }
    Ok(port)
}

/// Parses one command line, without its LF (a trailing CR is ignored).
///
/// Verbs are matched ignoring ASCII case; words are separated by spaces or
/// tabs. Never panics, whatever the bytes.
pub fn parse_command(line: &[u8]) -> Result<Command, ParseError<'_>> {
    let text = text_of(line)?;
    let bytes = text.as_bytes();
    let first = match word(bytes) {
        Ok((_, w)) => w,
        Err(_) => return Err(ParseError::Empty),
    };
    let kind = command_kind(first).ok_or(ParseError::UnknownCommand(as_str(first)))?;
    let words = words(bytes).ok_or(ParseError::Usage(kind))?;
    let args = &words[1..];
    if kind == CommandKind::MakeRoom {
        return make_room(args);
    }
    let (least, most) = kind.arity();
    if args.len() < least || args.len() > most {
        return Err(ParseError::Usage(kind));
    }
    Ok(match kind {
        CommandKind::GetDir => match args.first() {
            None => Command::GetDir,
            // `full` in any case, as `private` in `makeroom`.
            Some(word) if word.eq_ignore_ascii_case(b"full") => Command::GetDirFull,
            Some(_) => return Err(ParseError::Usage(kind)),
        },
        CommandKind::Salt => Command::Salt,
        CommandKind::Ping => Command::Ping,
        CommandKind::Help => Command::Help,
        CommandKind::Bye => Command::Bye,
        CommandKind::GetRoom => Command::GetRoom(room_name(args[0])?),
        CommandKind::DeleteRoom => Command::DeleteRoom(
            room_name(args[0])?,
            args.get(1).map(|t| token(t)).transpose()?,
        ),
        CommandKind::MakeRoom => return make_room(args),
    })
}

/// `makeroom`'s arguments, in one of its four forms: `<name>`, `<name>
/// <address> <port>`, `<name> private <salt> <verifier>`, `<name> <address>
/// <port> private <salt> <verifier>`. Checked in this order: the count and
/// the word `private` (any case), the salt and the verifier (all `usage`),
/// then the name, the address and the port (a private room's port must
/// have a control port, port + 1: 65535 is refused).
fn make_room<'a>(args: &[&'a [u8]]) -> Result<Command, ParseError<'a>> {
    let usage = ParseError::Usage(CommandKind::MakeRoom);
    let is_private = |word: &[u8]| word.eq_ignore_ascii_case(b"private");
    let (place, privacy) = match args.len() {
        1 => (None, None),
        // `makeroom x private <salt>`: a private form cut short, not an
        // address.
        3 if is_private(args[1]) => return Err(usage),
        3 => (Some((args[1], args[2])), None),
        4 if is_private(args[1]) => (None, Some(privacy(args[2], args[3])?)),
        6 if is_private(args[3]) => (Some((args[1], args[2])), Some(privacy(args[4], args[5])?)),
        _ => return Err(usage),
    };
    let name = room_name(args[0])?;
    let room = match place {
        Some((group, port)) => Some(Room {
            name: name.clone(),
            group: group_address(group)?,
            port: room_port(port)?,
        }),
        None => None,
    };
    if let (Some(room), Some(_)) = (&room, &privacy)
        && room.port == u16::MAX
    {
        return Err(ParseError::NoControlPort(room.port));
    }
    Ok(match (room, privacy) {
        (None, None) => Command::AllocRoom(name),
        (Some(room), None) => Command::MakeRoom(room),
        (None, Some(privacy)) => Command::AllocPrivate(name, privacy),
        (Some(room), Some(privacy)) => Command::MakePrivate(room, privacy),
    })
}

/// A private `makeroom`'s salt and verifier, each [`KEY_TEXT`] characters
/// of unpadded base64url.
fn privacy<'a>(salt: &'a [u8], verifier: &'a [u8]) -> Result<Privacy, ParseError<'a>> {
    let salt_text = as_str(salt);
    let verifier_text = as_str(verifier);
    Ok(Privacy {
        salt: Salt::parse(salt_text).ok_or(ParseError::BadSalt(salt_text))?,
        verifier: Verifier::parse(verifier_text).ok_or(ParseError::BadVerifier(verifier_text))?,
    })
}

/// The command a line names by its first word, whether or not its arguments
/// are right; `None` if the first word is not a command. For logs and error
/// messages about lines [`parse_command`] refused.
pub fn command_kind(line: &[u8]) -> Option<CommandKind> {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let (_, first) = word(line).ok()?;
    let verb = core::str::from_utf8(first).ok()?;
    CommandKind::ALL
        .into_iter()
        .find(|k| k.verb().eq_ignore_ascii_case(verb))
}

/// Parses the first line of a server reply (without its LF): `OK [text]` or
/// `ERR <code> [message]`.
pub fn parse_reply_line(line: &[u8]) -> Result<ReplyLine<'_>, ParseError<'_>> {
    let text = text_of(line)?;
    let (head, rest) = match text.split_once(' ') {
        Some((head, rest)) => (head, rest),
        None => (text, ""),
    };
    match head {
        "OK" => Ok(ReplyLine::Ok(rest)),
        "ERR" => {
            let (token, message) = rest.split_once(' ').unwrap_or((rest, ""));
            if token.is_empty() {
                return Err(ParseError::BadReply);
            }
            Ok(ReplyLine::Err {
                code: ErrorCode::from_token(token),
                token,
                message,
            })
        }
        _ => Err(ParseError::BadReply),
    }
}

/// Parses one `getdir` listing line (without its LF): `<name> <address>
/// <port>`. The caller checks for the `.` that ends a listing first.
pub fn parse_room_line(line: &[u8]) -> Result<Room, ParseError<'_>> {
    let text = text_of(line)?;
    let words = words(text.as_bytes()).ok_or(ParseError::BadReply)?;
    let [name, group, port] = words.as_slice() else {
        return Err(ParseError::BadReply);
    };
    Ok(Room {
        name: room_name(name)?,
        group: group_address(group)?,
        port: room_port(port)?,
    })
}

/// Parses one `getdir full` listing line (without its LF): `<name>
/// <address> <port> <kind>`, the kind `open` or `private` (lower case, as
/// the server writes it). Words after the kind (a later version may add
/// some) are ignored; a line without a kind, or of a kind this version does
/// not know, is refused, so a room is never shown as open on a guess. The
/// caller checks for the `.` that ends a listing first.
pub fn parse_full_room_line(line: &[u8]) -> Result<(Room, RoomKind), ParseError<'_>> {
    let text = text_of(line)?;
    let mut rest = text.as_bytes();
    let mut next = || -> Result<&[u8], ParseError<'_>> {
        let (tail, w) = word(rest).map_err(|_| ParseError::BadReply)?;
        rest = tail;
        Ok(w)
    };
    let (name, group, port, kind) = (next()?, next()?, next()?, next()?);
    let kind = RoomKind::from_word(as_str(kind)).ok_or(ParseError::BadReply)?;
    let room = Room {
        name: room_name(name)?,
        group: group_address(group)?,
        port: room_port(port)?,
    };
    Ok((room, kind))
}

#[cfg(test)]
mod tests;
