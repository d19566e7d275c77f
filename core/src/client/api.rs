//! What the host sees of the client: its configuration, its modes, the
//! outputs it puts out, and how a connection attempt can fail.

use core::net::IpAddr;
use core::time::Duration;

use crate::limits::{
    CONNECT_TIMEOUT, KEEPALIVE_INTERVAL, LISTING_TIMEOUT, MAX_DATAGRAM, MAX_KNOWN_SERVER_NAME,
    MAX_KNOWN_SERVERS, MAX_TEXT, REPLY_TIMEOUT,
};
use crate::owner::Token;
use crate::privacy::Salt;
use crate::wire::{LineBuf, Room, RoomName};

use super::names::{ChatName, ServerAddr};
use super::render::{Message, Prompt};

/// The payload of one chat datagram.
pub type Datagram = heapless::Vec<u8, MAX_DATAGRAM>;

/// A message for the user, already worded.
pub type Text = heapless::String<MAX_TEXT>;

/// The byte a line holds to leave chat mode when input is not a terminal
/// (what Ctrl-] types).
pub const LEAVE_CHAT_BYTE: u8 = 0x1D;

/// How a client behaves; [`ClientConfig::new`] fills in the defaults.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ClientConfig {
    /// The directory server `connect` (with no argument) and `chat` use,
    /// as `HOST:PORT`.
    pub server: ServerAddr,
    /// The port `connect HOST` uses.
    pub default_port: u16,
    /// The chat name to start with.
    pub name: ChatName,
    /// See [`CONNECT_TIMEOUT`].
    pub connect_timeout: Duration,
    /// See [`REPLY_TIMEOUT`].
    pub reply_timeout: Duration,
    /// See [`LISTING_TIMEOUT`].
    pub listing_timeout: Duration,
    /// See [`KEEPALIVE_INTERVAL`].
    pub keepalive_interval: Duration,
    /// Directory servers known by name (found on the LAN): `connect NAME`
    /// with one of these names, without a port, goes to its address.
    pub known_servers: heapless::Vec<KnownServer, MAX_KNOWN_SERVERS>,
    /// Random bits from the host (OS randomness; the core never reads
    /// any). With them the client speaks the room protocol
    /// ([`crate::chat`]) in every room it enters: each entry draws a fresh
    /// member id and timer seed from them. `None` (the default): plain
    /// `Name: text` datagrams only, as the original assignment's clients.
    pub random_seed: Option<u64>,
    /// Where private rooms' passphrases come from when not typed: the
    /// option or variable's name (`--passphrase-file`,
    /// `ROOMCAST_PASSPHRASE`), said when that passphrase is wrong. `None`
    /// (the default): typed at the terminal.
    pub passphrase_source: Option<&'static str>,
}

/// A directory server known by name, for `connect NAME`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KnownServer {
    /// Its name (compared without regard to ASCII case).
    pub name: heapless::String<MAX_KNOWN_SERVER_NAME>,
    /// Where it listens, as `HOST:PORT`.
    pub addr: ServerAddr,
}

impl ClientConfig {
    /// A configuration with the default timeouts.
    pub fn new(server: ServerAddr, default_port: u16, name: ChatName) -> Self {
        Self {
            server,
            default_port,
            name,
            connect_timeout: CONNECT_TIMEOUT,
            reply_timeout: REPLY_TIMEOUT,
            listing_timeout: LISTING_TIMEOUT,
            keepalive_interval: KEEPALIVE_INTERVAL,
            known_servers: heapless::Vec::new(),
            random_seed: None,
            passphrase_source: None,
        }
    }
}

/// Which commands the user has: the prompt shows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Mode {
    /// Not connected to a directory server.
    Main,
    /// Connected to a directory server: its commands work.
    Connected,
    /// In a chat room: lines typed are messages.
    Chat,
}

/// Why a connection attempt failed, as the host saw it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConnectFailure {
    /// The host name did not resolve.
    Resolve,
    /// Nothing listens at that address and port.
    Refused,
    /// No route to the host or network.
    Unreachable,
    /// The host gave up waiting.
    TimedOut,
    /// Anything else.
    Other,
}

/// Why the host has no key for [`Output::DeriveKey`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum KeyFailure<'a> {
    /// The user gave up (Ctrl-C or Ctrl-D at the passphrase prompt).
    Cancelled,
    /// No passphrase could be had, or it was refused, for this reason
    /// (worded for people, without a full stop: "the passphrase typed is
    /// empty").
    Refused(&'a str),
}

/// What the host must do. Drain with [`Client::poll_output`](super::Client::poll_output).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Output {
    /// Open a TCP connection to `server` (`HOST:PORT`: resolve the name,
    /// try each address), then call [`Client::handle_connected`](super::Client::handle_connected) or
    /// [`Client::handle_connect_failed`](super::Client::handle_connect_failed). Every `Connect` is followed,
    /// sooner or later, by exactly one [`Output::Close`].
    Connect {
        /// Where to connect.
        server: ServerAddr,
    },
    /// Write this line (LF included) to the server.
    SendLine(LineBuf),
    /// Close the server connection (or abandon the attempt to open it).
    Close,
    /// Join the multicast `group` and receive on `port` and, where
    /// [`crate::chat::control_port`] gives one, on the room's control port
    /// too (feed both to
    /// [`Client::handle_datagram_from`](super::Client::handle_datagram_from)),
    /// then report how it
    /// went with [`Client::handle_joined`](super::Client::handle_joined) or
    /// [`Client::handle_join_failed`](super::Client::handle_join_failed).
    /// The client enters the room (and says so) only once it is joined.
    JoinGroup {
        /// The room's group: IPv4 in 239.0.0.0/8, or IPv6
        /// ([`is_room_group`](crate::is_room_group)).
        group: IpAddr,
        /// The room's UDP port.
        port: u16,
    },
    /// Leave the group joined last and close its socket.
    LeaveGroup,
    /// Send this payload to the joined group and port (the room's plain
    /// port), from the room's sending socket.
    SendDatagram(Datagram),
    /// Send this room-protocol frame to the joined group on the room's
    /// control port ([`crate::chat::control_port`]), from the same sending
    /// socket as [`Output::SendDatagram`] (receivers match a member's plain
    /// copies to it by that one source address). Up to
    /// [`crate::chat::MAX_SEALED`] bytes (a sealed frame, private rooms).
    SendControl(crate::chat::DatagramBuf),
    /// Show this to the user.
    Show(Message),
    /// The user sent this message in a private room, in its plain form
    /// (`Name: text`): for the host's chat log only, as
    /// [`Output::SendDatagram`] is in an open room. Nothing of it went out
    /// in the clear, and it is not shown (the line typed is on the screen).
    Sent(Datagram),
    /// Use this prompt for the user's next line.
    Prompt(Prompt),
    /// Stop: the user quit.
    Exit,
    /// Get the passphrase of private room `room` (see the host's sources:
    /// a file, an environment variable, or typed without echo), stretch it
    /// with Argon2id and `salt` into a
    /// [`RoomSecret`](crate::privacy::RoomSecret) (the parameters of
    /// [`crate::privacy`]), and hand it over with fresh random sealer bytes
    /// through [`Client::handle_room_secret`](super::Client::handle_room_secret),
    /// or say why not ([`KeyFailure`]). The client takes no input meanwhile
    /// ([`Client::ready_for_input`](super::Client::ready_for_input) is
    /// false).
    DeriveKey {
        /// The room, as the server named it.
        room: RoomName,
        /// The room's salt.
        salt: Salt,
        /// A new room is being made: have the passphrase typed twice, and
        /// refuse one shorter than
        /// [`MIN_PASSPHRASE`](crate::privacy::MIN_PASSPHRASE).
        confirm: bool,
    },
    /// Keep this owner token of `room` on `server` (`makeroom` answered
    /// it), so a later `deleteroom` from this account can show it: see
    /// [`Client::connected_server`](super::Client::connected_server).
    OwnerToken {
        /// The directory server, as the client named it.
        server: ServerAddr,
        /// The room, as the server made it.
        room: RoomName,
        /// Its owner token.
        token: Token,
    },
    /// A private room was made from this client (`makeroom ... --private`
    /// answered): the host may remember it, so that a directory server
    /// that later calls a room of that name or address open is not
    /// believed.
    PrivateRoom {
        /// The directory server, as the client named it.
        server: ServerAddr,
        /// The room, as the server made it.
        room: Room,
    },
}
