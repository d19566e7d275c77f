//! Private rooms in the client: `makeroom ... --private`, the server's
//! `salt` and `getroom` answers, and the host's secret checked against the
//! room's verifier (see the module docs of `client`).

use core::fmt::Write as _;

use crate::error::ErrorCode;
use crate::limits::{MAX_LINE, MAX_ROOM_LINE};
use crate::parse::{parse_command, parse_room_line};
use crate::privacy::{RoomKeys, Salt, Verifier};
use crate::wire::{Command, Privacy, Room, RoomName};

use super::render::{Clean, make_text};
use super::{Client, Conn, Deriving, KeyFailure, MakeAt, Output, Purpose, Request, RoomKey};

/// The flag that makes `makeroom` make a private room.
pub(super) const PRIVATE_FLAG: &str = "--private";

/// What `getroom` says of a room.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct RoomInfo {
    pub(super) room: Room,
    /// `None`: the room is open.
    pub(super) privacy: Option<Privacy>,
}

/// Why a `getroom` answer could not be read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum InfoError {
    /// Not `room NAME ADDRESS PORT (open|private ...)`.
    Malformed,
    /// `private` without a valid `salt=` and `verifier=`.
    NoKey,
}

/// Reads the text after `OK` of a `getroom` answer: `room NAME ADDRESS
/// PORT open` or `room NAME ADDRESS PORT private salt=SALT
/// verifier=VERIFIER`. Words after those it does not know (`key=value`
/// words a later server may add) are ignored; a kind other than `open` or
/// `private` is refused, so a room of a kind this client does not know is
/// never entered as open.
pub(super) fn parse_room_info(text: &str) -> Result<RoomInfo, InfoError> {
    let rest = text.strip_prefix("room ").ok_or(InfoError::Malformed)?;
    let mut words = rest.split(' ').filter(|w| !w.is_empty());
    let (name, addr, port) = (
        words.next().ok_or(InfoError::Malformed)?,
        words.next().ok_or(InfoError::Malformed)?,
        words.next().ok_or(InfoError::Malformed)?,
    );
    let mut line = heapless::String::<MAX_ROOM_LINE>::new();
    write!(line, "{name} {addr} {port}").map_err(|_| InfoError::Malformed)?;
    let room = parse_room_line(line.as_bytes()).map_err(|_| InfoError::Malformed)?;
    match words.next() {
        Some("open") => Ok(RoomInfo {
            room,
            privacy: None,
        }),
        Some("private") => {
            let (mut salt, mut verifier) = (None, None);
            for word in words {
                if let Some(text) = word.strip_prefix("salt=") {
                    salt = Salt::parse(text);
                } else if let Some(text) = word.strip_prefix("verifier=") {
                    verifier = Verifier::parse(text);
                }
            }
            match (salt, verifier) {
                (Some(salt), Some(verifier)) => Ok(RoomInfo {
                    room,
                    privacy: Some(Privacy { salt, verifier }),
                }),
                _ => Err(InfoError::NoKey),
            }
        }
        _ => Err(InfoError::Malformed),
    }
}

/// The salt in the text after `OK` of a `salt` answer (`salt=SALT`, maybe
/// with other `key=value` words).
pub(super) fn parse_salt(text: &str) -> Option<Salt> {
    text.split(' ')
        .find_map(|word| word.strip_prefix("salt="))
        .and_then(Salt::parse)
}

/// The room a private `makeroom` of `name` made, from the text after
/// `OK`: `created NAME ADDRESS PORT token=TOKEN private`; `None` if the
/// answer names another room or does not say `private`.
pub(super) fn private_made(name: &RoomName, text: &str) -> Option<Room> {
    let rest = text.strip_prefix("created ")?;
    let mut words = rest.split(' ').filter(|w| !w.is_empty());
    let (n, a, p) = (words.next()?, words.next()?, words.next()?);
    let mut line = heapless::String::<MAX_ROOM_LINE>::new();
    write!(line, "{n} {a} {p}").ok()?;
    let room = parse_room_line(line.as_bytes()).ok()?;
    let private = words.any(|w| w == "private");
    (private && crate::text::same_name(&room.name, name)).then_some(room)
}

/// Whether a `makeroom` line asks for a private room: `--private` among
/// the words after the verb.
pub(super) fn wants_private(rest: &str) -> bool {
    rest.split_whitespace()
        .any(|w| w.eq_ignore_ascii_case(PRIVATE_FLAG))
}

impl Client {
    /// `makeroom NAME [ADDRESS PORT] --private` (`rest` is what follows
    /// the verb): asks the server for a salt.
    pub(super) fn make_private(&mut self, rest: &str) {
        if !self.interactive() {
            say!(
                self,
                "'makeroom' needs a connection to the directory server: type 'connect' first \
                 (or 'connect HOST:PORT')."
            );
            return;
        }
        let mut line = heapless::String::<MAX_LINE>::new();
        let _ = line.push_str("makeroom");
        let mut words = 0;
        for word in rest
            .split_whitespace()
            .filter(|w| !w.eq_ignore_ascii_case(PRIVATE_FLAG))
        {
            words += 1;
            if line.push(' ').is_err() || line.push_str(word).is_err() {
                say!(
                    self,
                    "That command is longer than the protocol allows ({MAX_LINE} bytes); \
                     nothing was sent."
                );
                return;
            }
        }
        if words != 1 && words != 3 {
            say!(self, "usage: makeroom <name> [<address> <port>] --private");
            return;
        }
        let at = match parse_command(line.as_bytes()) {
            Ok(Command::AllocRoom(name)) => MakeAt::Pool(name),
            Ok(Command::MakeRoom(room)) => MakeAt::At(room),
            Ok(_) => {
                say!(self, "usage: makeroom <name> [<address> <port>] --private");
                return;
            }
            Err(e) => {
                let text = make_text(format_args!("{e}"));
                say!(self, "{}", Clean(&text));
                return;
            }
        };
        self.send_request(Request::Salt(at), &Command::Salt);
    }

    /// The server's `OK` to `salt`: the host derives the new room's secret.
    pub(super) fn salt_ok(&mut self, at: MakeAt, text: &str) {
        let Some(salt) = parse_salt(text) else {
            let mut line = heapless::String::<MAX_LINE>::new();
            let _ = write!(line, "OK {text}");
            return self.protocol_error("an answer to 'salt' without a salt", line.as_bytes());
        };
        let room = at.name().clone();
        self.deriving = Some(Deriving::Make { at, salt });
        self.emit(Output::DeriveKey {
            room,
            salt,
            confirm: true,
        });
    }

    /// The server's `ERR` to `salt`.
    pub(super) fn salt_err(&mut self, at: &MakeAt, token: &str, message: &str) {
        let name = at.name();
        if token == ErrorCode::UnknownCommand.token() {
            let server = self.conn_server();
            say!(
                self,
                "Room '{}' was not created: the directory server at {server} does not know \
                 private rooms (it is an older version). Its rooms are open; ask its operator \
                 to update roomcast.",
                Clean(name)
            );
        } else {
            say!(
                self,
                "Room '{}' was not created: {}",
                Clean(name),
                Clean(message)
            );
        }
    }

    /// The server's `OK` to a private `makeroom`: `created NAME ADDRESS
    /// PORT token=TOKEN private`. An answer about another room, or without
    /// the word `private`, is a protocol error: the room may be open there.
    pub(super) fn made_private(&mut self, name: &RoomName, text: &str) {
        let room = match private_made(name, text) {
            Some(room) => room,
            None => {
                let mut line = heapless::String::<MAX_LINE>::new();
                let _ = write!(line, "OK {text}");
                return self.protocol_error(
                    "an answer to a private 'makeroom' that does not say this room was made \
                     private",
                    line.as_bytes(),
                );
            }
        };
        let server = self.conn_server();
        self.emit(Output::PrivateRoom {
            server,
            room: room.clone(),
        });
        say!(
            self,
            "Room '{}' created (private: only people with its passphrase can read it): \
             multicast group {} port {}. Type 'chat {}' to enter it.",
            Clean(&room.name),
            room.group,
            room.port,
            Clean(&room.name)
        );
    }

    /// The server's `OK` to `getroom` for `chat`.
    pub(super) fn getroom_ok(&mut self, asked: &RoomName, text: &str) {
        let info = match parse_room_info(text) {
            Ok(info) => info,
            Err(InfoError::Malformed) => {
                let mut line = heapless::String::<MAX_LINE>::new();
                let _ = write!(line, "OK {text}");
                return self
                    .protocol_error("an answer to 'getroom' that is not a room", line.as_bytes());
            }
            Err(InfoError::NoKey) => {
                let mut line = heapless::String::<MAX_LINE>::new();
                let _ = write!(line, "OK {text}");
                return self.protocol_error(
                    "a private room without a valid salt and verifier",
                    line.as_bytes(),
                );
            }
        };
        if !crate::text::same_name(&info.room.name, asked) {
            let mut line = heapless::String::<MAX_LINE>::new();
            let _ = write!(line, "OK {text}");
            return self.protocol_error(
                "an answer to 'getroom' about another room than the one asked",
                line.as_bytes(),
            );
        }
        match info.privacy {
            None => self.join_room(info.room),
            Some(_) if self.random.is_none() => say!(
                self,
                "Room '{}' is private, and this client has no random bits to seal messages \
                 with; it cannot enter.",
                Clean(&info.room.name)
            ),
            Some(privacy) => {
                let room = info.room.name.clone();
                let salt = privacy.salt;
                self.deriving = Some(Deriving::Join {
                    room: info.room,
                    privacy,
                });
                self.emit(Output::DeriveKey {
                    room,
                    salt,
                    confirm: false,
                });
            }
        }
        self.end_lookup_connection();
    }

    /// The server's `ERR` to `getroom` for `chat`: an older server
    /// (`unknown`) is asked with `getdir`, as before `getroom` existed.
    pub(super) fn getroom_err(&mut self, name: RoomName, token: &str, message: &str) {
        if token == ErrorCode::UnknownCommand.token() {
            return self.send_request(Request::Lookup(name.clone()), &Command::GetDir);
        }
        if token == ErrorCode::NoSuchRoom.token() {
            self.no_such_room(&name);
        } else {
            say!(
                self,
                "Could not look up room {}: the server said: {}",
                Clean(&name),
                Clean(message)
            );
        }
        self.end_lookup_connection();
    }

    /// Ctrl-C while a `chat` waits for the directory server's answer
    /// about its room, or a `makeroom --private` for its salt: the command
    /// is cancelled (its answer, when it comes, is dropped), and the user is
    /// told. False if no such answer is awaited.
    pub(super) fn cancel_room_lookup(&mut self) -> bool {
        if self.deriving.is_some() {
            return false;
        }
        if let Conn::Connecting {
            purpose: Purpose::Lookup(name),
            ..
        }
        | Conn::Open {
            purpose: Purpose::Lookup(name),
            ..
        } = &self.conn
        {
            let name = name.clone();
            self.reset_connection();
            say!(
                self,
                "You did not enter room '{}': cancelled.",
                Clean(&name)
            );
            return true;
        }
        let mut cancelled: Option<(bool, RoomName)> = None;
        for pending in self.pending.iter_mut() {
            let what = match &pending.request {
                Request::GetRoom(name) => (false, name.clone()),
                Request::Salt(at) => (true, at.name().clone()),
                _ => continue,
            };
            pending.request = Request::Cancelled;
            cancelled = Some(what);
        }
        match cancelled {
            Some((true, name)) => {
                say!(self, "Room '{}' was not created: cancelled.", Clean(&name));
                true
            }
            Some((false, name)) => {
                say!(
                    self,
                    "You did not enter room '{}': cancelled.",
                    Clean(&name)
                );
                true
            }
            None => false,
        }
    }

    /// Says there is no room `name`, and how to find one.
    pub(super) fn no_such_room(&mut self, name: &RoomName) {
        let how = if self.interactive() {
            "Type 'getdir' to list the rooms, or 'makeroom' to create one."
        } else {
            "Type 'connect', then 'getdir' to list the rooms or 'makeroom' to create one."
        };
        say!(self, "There is no room named {}. {how}", Clean(name));
    }

    /// The server's `OK` to a `getroom` the user typed.
    pub(super) fn show_room(&mut self, name: &RoomName, text: &str) {
        match parse_room_info(text) {
            Ok(RoomInfo {
                room,
                privacy: None,
            }) => say!(
                self,
                "Room {}: multicast group {} port {}, open (anyone on the network can read \
                 it). Type 'chat {}' to enter it.",
                Clean(&room.name),
                room.group,
                room.port,
                Clean(&room.name)
            ),
            Ok(RoomInfo {
                room,
                privacy: Some(_),
            }) => say!(
                self,
                "Room {}: multicast group {} port {}, private (only people with its passphrase \
                 can read it). Type 'chat {}' to enter it.",
                Clean(&room.name),
                room.group,
                room.port,
                Clean(&room.name)
            ),
            Err(_) => say!(self, "Room {}: {}", Clean(name), Clean(text)),
        }
    }

    /// The host derived the secret: make the room, or check the verifier
    /// and enter it.
    pub(super) fn key_ready(&mut self, keys: RoomKeys, sealer: [u8; 16], wall_ms: u64) {
        match self.deriving.take() {
            Some(Deriving::Make { at, salt }) => {
                if !self.interactive() {
                    say!(
                        self,
                        "Room '{}' was not created: the connection to the directory server \
                         ended meanwhile. Type 'connect', then the command again.",
                        Clean(at.name())
                    );
                    return;
                }
                let privacy = Privacy {
                    salt,
                    verifier: keys.verifier,
                };
                let name = at.name().clone();
                let command = match at {
                    MakeAt::Pool(name) => Command::AllocPrivate(name, privacy),
                    MakeAt::At(room) => Command::MakePrivate(room, privacy),
                };
                self.send_request(Request::MakePrivate(name), &command);
            }
            Some(Deriving::Join { room, privacy }) => {
                if !keys.verifier.matches(&privacy.verifier) {
                    match self.config.passphrase_source {
                        None => say!(
                            self,
                            "Wrong passphrase for room '{}': it is not the one the room was \
                             made with. Try 'chat {}' again.",
                            Clean(&room.name),
                            Clean(&room.name)
                        ),
                        Some(source) => say!(
                            self,
                            "Wrong passphrase for room '{}': the passphrase from {source} is \
                             not this room's. Give this room's passphrase there (or start \
                             roomcast without {source} to type it), then 'chat {}' again.",
                            Clean(&room.name),
                            Clean(&room.name)
                        ),
                    }
                    return;
                }
                self.room_key = Some(RoomKey {
                    frame: keys.frame,
                    sealer,
                    wall_ms,
                    anchor: self.now,
                });
                self.join_room(room);
            }
            None => {}
        }
    }

    /// The host has no secret: say so; the user stays where they were.
    pub(super) fn key_failed(&mut self, why: KeyFailure<'_>) {
        let (making, name) = match self.deriving.take() {
            Some(Deriving::Make { at, .. }) => (true, at.name().clone()),
            Some(Deriving::Join { room, .. }) => (false, room.name),
            None => return,
        };
        let because = match why {
            KeyFailure::Cancelled => make_text(format_args!("no passphrase was given")),
            KeyFailure::Refused(reason) => make_text(format_args!("{}", Clean(reason))),
        };
        if making {
            say!(self, "Room '{}' was not created: {because}.", Clean(&name));
        } else {
            say!(
                self,
                "You did not enter room '{}': {because}.",
                Clean(&name)
            );
        }
    }
}
