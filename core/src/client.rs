//! The chat client's state machine.
//!
//! [`Client`] takes what happens in the world (a line the user typed, bytes
//! from the directory server, a datagram from the chat room, time passing)
//! and says what the host must do ([`Output`]): connect, send a line, close,
//! join or leave a multicast group, send a datagram, show a message, change
//! the prompt, exit. It speaks the CRDP through [`crate::parse`] and
//! [`crate::wire`], the same code the server uses.
//!
//! # The drain rule
//!
//! After every `handle_*` call, drain [`Client::poll_output`] until `None`,
//! then ask [`Client::poll_timeout`] when to call
//! [`Client::handle_timeout`]. Long replies (a big directory listing) are
//! produced piece by piece while the host drains, so the queue stays small.
//!
//! # Typing ahead
//!
//! While the client waits (connecting, a reply, or the host joining a chat
//! room's group), [`Client::ready_for_input`] is false: the host holds the
//! user's next line until it turns true. Each command so finishes before
//! the next starts, as a person at a prompt expects, and a script piping
//! lines gets the same. Leaving never waits: the end of input, Ctrl-]
//! and Ctrl-C are handed over at once, and so is a line for which
//! [`Client::acts_at_once`] holds (`quit`, `exit`), which abandons what is
//! pending.
//!
//! In a room, `ready_for_input` is also false while the room session's send
//! queue has no room for another line
//! ([`Session::can_send`](crate::chat::Session::can_send)): lines go out at
//! most [`SEND_RATE`](crate::chat::limits::SEND_RATE) a second, and a paste
//! or a script's piped lines wait rather than being refused. The end of
//! input in a room waits for the queue to empty before quitting, and so
//! does `/leave` before leaving (input is held meanwhile); Ctrl-]
//! ([`Client::handle_leave_chat`]) leaves at once and drops what still
//! waits, saying how many lines.
//!
//! # Bounded waits
//!
//! Every wait ends: a connection attempt within
//! [`ClientConfig::connect_timeout`], the first line of a reply within
//! [`ClientConfig::reply_timeout`] of the request, and a whole listing
//! within [`ClientConfig::listing_timeout`] of the request, however
//! steadily its rows come.
//!
//! # Entering a room
//!
//! `chat ROOM` asks the host to join the room's group
//! ([`Output::JoinGroup`]); the user is in the room, and reads so, only
//! once the host reports [`Client::handle_joined`]. If the join fails
//! ([`Client::handle_join_failed`]) the user stays at the prompt they were
//! at, told why; a line typed meanwhile waits for the result and is then
//! read in the mode the result left.
//!
//! # Private rooms
//!
//! `chat ROOM` asks the server with `getroom`; a server that does not know
//! it (an older one: `ERR unknown`) is asked with `getdir` as before, and
//! its rooms are open. For a private room the client asks the host for the
//! room's secret ([`Output::DeriveKey`]: the host gets the passphrase and
//! runs Argon2id with the room's salt) and takes no input until the host
//! answers with [`Client::handle_room_secret`]. The secret's verifier must
//! match the one the server keeps: a wrong passphrase is told at once and
//! the user stays where they were. A right one joins the group and starts
//! a sealed session ([`Session::new_private`](crate::chat::Session::new_private));
//! a private room is never entered without one, so nothing is ever sent
//! or shown in the clear there. `makeroom NAME [ADDR PORT] --private` asks
//! the server for a salt (`salt`), has the host derive the secret (the
//! passphrase typed twice), and sends `makeroom ... private SALT VERIFIER`.
//!
//! # Own messages
//!
//! Multicast loopback brings a client's own datagrams back to it. The client
//! remembers a hash of each datagram it sent in the last
//! [`OWN_ECHO_WINDOW`] (at most [`OWN_ECHO_MEMORY`] of them) and does not
//! show a received datagram equal to one of those, once. This works however
//! many clients share a host and a port (they all receive from the same
//! source port, so the source address could not tell them apart). Two
//! clients with the same name sending the same text within seconds could
//! each hide one copy of the other's; that is the price.
//!
//! # Layout
//!
//! This file holds the machine itself: its state, its inputs and outputs,
//! and the directory server connection's life. Beside it: `names` (chat
//! names, server addresses), `api` (configuration, modes, outputs),
//! `commands` (the user's lines), `replies` (the server's lines and
//! listings), `private` (private rooms: `salt`, `getroom`, the key),
//! `room` (the room protocol's session) and `render` (prompts, messages,
//! text made safe to show).
use core::fmt::Write as _;
use core::net::{Ipv4Addr, SocketAddr};

use crate::chat::Channel;

use crate::limits::{
    CLIENT_OUTPUT_QUEUE, CLIENT_RECV_BUF, LISTING_BUFFER, MAX_DATAGRAM, MAX_LINE, OWN_ECHO_MEMORY,
    OWN_ECHO_WINDOW,
};
use crate::privacy::{FrameKey, RoomKeys, RoomSecret, Salt};
use crate::time::Instant;
use crate::wire::{Command, Privacy, Room, RoomKind, RoomName};

pub use self::api::{
    ClientConfig, ConnectFailure, Datagram, KeyFailure, KnownServer, LEAVE_CHAT_BYTE, Mode, Output,
    Text,
};
pub use self::names::{AddrError, ChatName, NameError, ServerAddr, parse_server_addr};
use self::render::{Clean, QUOTE_BYTES, Quote, make_text};
pub use self::render::{Message, Prompt};

/// How many requests may wait for their replies at once: one from the user
/// and a keepalive `ping`, with room to spare.
const MAX_PENDING: usize = 4;

/// Outputs a step may queue at most: more input is processed only while at
/// least this many slots are free.
const STEP_RESERVE: usize = 6;

/// Shows a message: `say!(self, "format", args...)`. The text is formatted
/// before `self` is borrowed mutably, so the arguments may borrow it.
macro_rules! say {
    ($client:expr, $($arg:tt)*) => {{
        let text = $crate::client::render::make_text(format_args!($($arg)*));
        $client.show(text);
    }};
}

mod api;
mod commands;
mod names;
mod private;
mod render;
mod replies;
mod room;

// ---------------------------------------------------------------------------
// The machine

#[derive(Clone, Debug, PartialEq, Eq)]
enum Purpose {
    /// The user typed `connect`.
    Interactive,
    /// A short connection to look up a room for `chat`.
    Lookup(RoomName),
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Conn {
    None,
    Connecting {
        server: ServerAddr,
        purpose: Purpose,
        deadline: Instant,
    },
    Open {
        server: ServerAddr,
        purpose: Purpose,
        /// When we last sent a line (for the keepalive).
        last_send: Instant,
        /// The server's greeting arrived.
        greeted: bool,
        /// The server answers `getdir full`: false once it refused it as
        /// an older server does (`usage`, `unknown`), so this connection
        /// asks with `getdir` from then on.
        full_listing: bool,
    },
}

/// Where `makeroom NAME [ADDR PORT] --private` makes its room.
#[derive(Clone, Debug, PartialEq, Eq)]
enum MakeAt {
    /// On a group and port the server picks.
    Pool(RoomName),
    /// On the group and port given.
    At(Room),
}

impl MakeAt {
    fn name(&self) -> &RoomName {
        match self {
            MakeAt::Pool(name) => name,
            MakeAt::At(room) => &room.name,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Request {
    Greeting,
    /// `getdir`, shown as a table without the rooms' kinds (an older
    /// server, without `getdir full`).
    GetDir,
    /// `getdir full`, shown as a table with each room's kind.
    GetDirFull,
    /// `getdir` to find the room for `chat`, from a server without
    /// `getroom`.
    Lookup(RoomName),
    /// `getroom` to enter the room (`chat`).
    GetRoom(RoomName),
    /// `getroom` typed by the user: show the room.
    ShowRoom(RoomName),
    /// `salt`, to make this private room.
    Salt(MakeAt),
    /// `makeroom`: the name; what was made is read from the `OK`.
    MakeRoom(RoomName),
    /// `makeroom ... private SALT VERIFIER`.
    MakePrivate(RoomName),
    DeleteRoom(RoomName),
    Ping,
    Bye,
    /// A `getroom` or `salt` whose `chat` or `makeroom --private` the user
    /// cancelled with Ctrl-C: its answer is read and dropped.
    Cancelled,
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct Pending {
    request: Request,
    /// When it was sent. Its whole reply is due within
    /// [`ClientConfig::listing_timeout`] of this, however it trickles in.
    sent: Instant,
}

// One listing at a time, inside the client: no_std keeps it inline.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, PartialEq, Eq)]
enum Listing {
    /// `getdir` shown as a table.
    Table {
        /// Each room with its kind, if the listing says it (`getdir full`).
        rows: heapless::Deque<(Room, Option<RoomKind>), LISTING_BUFFER>,
        /// A `getdir full` listing: its lines end with the kind, and the
        /// table has a column for it.
        full: bool,
        /// Column widths, once known; rows then go out as they come.
        widths: Option<(usize, usize)>,
        count: usize,
        /// The `.` arrived: flush the rows, then the footer.
        ended: bool,
    },
    /// `getdir` to find one room for `chat`.
    Lookup { name: RoomName, found: Option<Room> },
}

/// A private room's secret the host is deriving ([`Output::DeriveKey`]).
#[derive(Clone, Debug, PartialEq, Eq)]
enum Deriving {
    /// For `makeroom ... --private`, with the salt the server gave.
    Make { at: MakeAt, salt: Salt },
    /// For `chat`: the room and what the server keeps of its key.
    Join { room: Room, privacy: Privacy },
}

/// The key of the private room being entered, until its session starts.
#[derive(Clone, Debug, PartialEq, Eq)]
struct RoomKey {
    frame: FrameKey,
    /// The sealer bytes the host drew for this session.
    sealer: [u8; 16],
    /// The wall clock (Unix ms) at `anchor`.
    wall_ms: u64,
    anchor: Instant,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Sent {
    hash: u64,
    at: Instant,
}

/// The chat client's state machine: after every `handle_*` call, drain
/// [`Client::poll_output`] until `None`, then ask [`Client::poll_timeout`]
/// when to call [`Client::handle_timeout`].
#[derive(Debug)]
pub struct Client {
    config: ClientConfig,
    name: ChatName,
    /// The server `connect` and `chat` use: the last one connected to.
    server: ServerAddr,
    now: Instant,
    conn: Conn,
    recv: heapless::Vec<u8, CLIENT_RECV_BUF>,
    pending: heapless::Deque<Pending, MAX_PENDING>,
    listing: Option<Listing>,
    /// Room lines of the listing in progress: a directory holds at most
    /// `MAX_ROOMS`, so a server that sends more is not a directory server.
    listing_rows: usize,
    /// The room asked of the host with [`Output::JoinGroup`], until the
    /// host says how the join went.
    joining: Option<Room>,
    chat: Option<Room>,
    /// The host is deriving a private room's secret.
    deriving: Option<Deriving>,
    /// The key of the private room being joined (see `room`).
    room_key: Option<RoomKey>,
    /// The room protocol's session in the room we are in (see `room`).
    session: Option<crate::chat::Session>,
    /// The host's random bits, stirred ([`ClientConfig::random_seed`]).
    random: Option<u64>,
    /// `/who` lines waiting for room in the output queue.
    who_out: heapless::Deque<Text, { room::WHO_CHUNKS }>,
    sent: heapless::Deque<Sent, OWN_ECHO_MEMORY>,
    out: heapless::Deque<Output, CLIENT_OUTPUT_QUEUE>,
    prompt: Prompt,
    exited: bool,
    /// Input ended while lines still waited in the room's send queue: quit
    /// once they are out.
    quit_when_sent: bool,
    /// `/leave` came while lines still waited in the room's send queue:
    /// leave once they are out (input is held meanwhile).
    leave_when_sent: bool,
}

impl Client {
    /// A client at the main prompt. Its first outputs greet the user and
    /// set the prompt.
    pub fn new(config: ClientConfig, now: Instant) -> Self {
        let random = config.random_seed;
        let mut client = Self {
            name: config.name.clone(),
            server: config.server.clone(),
            config,
            now,
            conn: Conn::None,
            recv: heapless::Vec::new(),
            pending: heapless::Deque::new(),
            listing: None,
            listing_rows: 0,
            joining: None,
            chat: None,
            deriving: None,
            room_key: None,
            session: None,
            random,
            who_out: heapless::Deque::new(),
            sent: heapless::Deque::new(),
            out: heapless::Deque::new(),
            quit_when_sent: false,
            leave_when_sent: false,
            prompt: Prompt::Main,
            exited: false,
        };
        say!(
            client,
            "roomcast chat client; your chat name is {}.\nType 'connect' to reach the \
             directory server at {}, 'help' for all commands.",
            client.name,
            client.server
        );
        client.emit(Output::Prompt(Prompt::Main));
        client
    }

    // ---- state the host may ask about ----

    /// The mode now.
    pub fn mode(&self) -> Mode {
        self.current_prompt().mode()
    }

    /// The chat name now.
    pub fn name(&self) -> &ChatName {
        &self.name
    }

    /// Whether the host should hand over the user's next line now. False
    /// while connecting or waiting for a reply, and in a room while its send
    /// queue has no room for another line (lines go out at most
    /// [`SEND_RATE`](crate::chat::limits::SEND_RATE) a second); see the
    /// module docs.
    pub fn ready_for_input(&self) -> bool {
        !self.exited
            && !self.leave_when_sent
            && self
                .session
                .as_ref()
                .is_none_or(crate::chat::Session::can_send)
            && !matches!(self.conn, Conn::Connecting { .. })
            && self
                .pending
                .iter()
                .all(|p| matches!(p.request, Request::Ping | Request::Cancelled))
            && self.listing.is_none()
            && self.joining.is_none()
            && self.deriving.is_none()
    }

    /// Whether [`handle_user_line`](Self::handle_user_line) acts on `line`
    /// at once even while the client is not
    /// [`ready_for_input`](Self::ready_for_input): `quit` and `exit` outside
    /// a chat room. The host hands such a line over without waiting, so a
    /// server that is slow (or hostile) never keeps the user from leaving.
    pub fn acts_at_once(&self, line: &[u8]) -> bool {
        !self.exited && self.chat.is_none() && commands::is_quit(line)
    }

    /// The room a `chat` or `makeroom ... --private` waits for the
    /// directory server about (its lookup, its salt or its creation), or
    /// whose key the host is deriving. A host that reads input ahead meanwhile
    /// must not let a line typed then reach the room or the history: the
    /// user may have typed the room's passphrase there.
    pub fn room_pending(&self) -> Option<&RoomName> {
        if let Some(deriving) = &self.deriving {
            return Some(match deriving {
                Deriving::Make { at, .. } => at.name(),
                Deriving::Join { room, .. } => &room.name,
            });
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
            return Some(name);
        }
        self.pending.iter().find_map(|p| match &p.request {
            Request::GetRoom(name) | Request::Lookup(name) | Request::MakePrivate(name) => {
                Some(name)
            }
            Request::Salt(at) => Some(at.name()),
            _ => None,
        })
    }

    /// The room [`Output::JoinGroup`] is for, until the host answers it,
    /// and whether it is entered as private (with its key checked): an
    /// open room is entered with `false`.
    pub fn joining(&self) -> Option<(&Room, bool)> {
        self.joining
            .as_ref()
            .map(|room| (room, self.room_key.is_some()))
    }

    /// The directory server `connect` and `chat` use (the last one
    /// connected to), as named.
    pub fn server(&self) -> &ServerAddr {
        &self.server
    }

    /// Whether the client has exited (after [`Output::Exit`]).
    pub fn has_exited(&self) -> bool {
        self.exited
    }

    /// The most bytes [`handle_server_bytes`](Self::handle_server_bytes)
    /// takes now.
    pub fn recv_capacity(&self) -> usize {
        CLIENT_RECV_BUF - self.recv.len()
    }

    // ---- inputs ----

    /// The user typed `line` (its LF, if any, is ignored). The host hands
    /// lines over only while [`ready_for_input`](Self::ready_for_input).
    pub fn handle_user_line(&mut self, now: Instant, line: &[u8]) {
        self.tick(now);
        if !self.exited {
            self.user_line(line);
        }
        self.step();
    }

    /// The user pressed Ctrl-]: leave chat mode at once.
    pub fn handle_leave_chat(&mut self, now: Instant) {
        self.tick(now);
        if !self.exited {
            self.leave_chat_or_hint();
        }
        self.step();
    }

    /// The user pressed Ctrl-C at the prompt: leaves chat mode, elsewhere
    /// says how to quit.
    pub fn handle_interrupt(&mut self, now: Instant) {
        self.tick(now);
        if self.exited {
            // The user already quit: nothing is left to interrupt.
            return self.step();
        }
        if self.chat.is_some() || self.joining.is_some() {
            self.leave_chat();
        } else if self.cancel_room_lookup() {
            // Said by `cancel_room_lookup`.
        } else if self.deriving.is_some() {
            self.key_failed(KeyFailure::Cancelled);
        } else {
            say!(self, "(Type 'quit' or press Ctrl-D to leave roomcast.)");
        }
        self.step();
    }

    /// The host's answer to [`Output::DeriveKey`]: the room's secret and
    /// 16 fresh random bytes (from the operating system, never used
    /// before) that name this client's sealed datagrams in the room, with
    /// the wall clock `wall_ms` (Unix time in ms) at `now`; or why there
    /// is none. An answer nobody waits for (the user quit, say) is
    /// ignored.
    pub fn handle_room_secret(
        &mut self,
        now: Instant,
        wall_ms: u64,
        result: Result<(RoomSecret, [u8; 16]), KeyFailure<'_>>,
    ) {
        self.tick(now);
        if self.exited || self.deriving.is_none() {
            return self.step();
        }
        match result {
            Ok((secret, sealer)) => {
                let keys = RoomKeys::derive(&secret);
                self.key_ready(keys, sealer, wall_ms);
            }
            Err(why) => self.key_failed(why),
        }
        self.step();
    }

    /// Input ended (Ctrl-D, or the end of piped input): quit, once the
    /// lines still waiting in the room's send queue are out.
    pub fn handle_end_of_input(&mut self, now: Instant) {
        self.tick(now);
        let waiting = self
            .session
            .as_ref()
            .map_or(0, crate::chat::Session::queued);
        if !self.exited && waiting > 0 && !self.quit_when_sent {
            self.quit_when_sent = true;
            say!(
                self,
                "{waiting} of your lines are still going out (at most {} a second); roomcast \
                 quits once they are sent (Ctrl-] leaves the room at once, without them).",
                crate::chat::limits::SEND_RATE
            );
        } else if !self.exited && waiting == 0 {
            self.quit();
        }
        self.step();
    }

    /// The connection asked for by [`Output::Connect`] is open.
    pub fn handle_connected(&mut self, now: Instant) {
        self.tick(now);
        if let Conn::Connecting {
            server, purpose, ..
        } = &self.conn
        {
            self.conn = Conn::Open {
                server: server.clone(),
                purpose: purpose.clone(),
                last_send: now,
                greeted: false,
                full_listing: true,
            };
            self.recv.clear();
            self.push_pending(Request::Greeting);
        }
        self.step();
    }

    /// The connection asked for by [`Output::Connect`] could not be opened.
    pub fn handle_connect_failed(&mut self, now: Instant, why: ConnectFailure) {
        self.tick(now);
        if let Conn::Connecting { .. } = self.conn {
            self.connect_failed(why);
        }
        self.step();
    }

    /// Bytes arrived from the server. Takes at most
    /// [`recv_capacity`](Self::recv_capacity) of them and returns how many
    /// it took; the host drains outputs, then offers the rest.
    pub fn handle_server_bytes(&mut self, now: Instant, data: &[u8]) -> usize {
        self.tick(now);
        if !matches!(self.conn, Conn::Open { .. }) {
            return data.len();
        }
        let n = data.len().min(self.recv_capacity());
        // `n` fits by construction.
        let _ = self.recv.extend_from_slice(&data[..n]);
        self.step();
        n
    }

    /// The server closed the connection (or it broke).
    pub fn handle_server_closed(&mut self, now: Instant) {
        self.tick(now);
        match &self.conn {
            Conn::None => {}
            Conn::Connecting { .. } => self.connect_failed(ConnectFailure::Other),
            Conn::Open { .. } => {
                // Complete lines that came before the close still count.
                self.step();
                self.server_lost();
            }
        }
        self.step();
    }

    /// A datagram arrived on the joined group's plain port, from a sender
    /// not known (tests of the plain path; the host uses
    /// [`handle_datagram_from`](Self::handle_datagram_from)).
    pub fn handle_datagram(&mut self, now: Instant, data: &[u8]) {
        let unknown = SocketAddr::new(Ipv4Addr::UNSPECIFIED.into(), 0);
        self.handle_datagram_from(now, Channel::Plain, unknown, data);
    }

    /// A datagram arrived on the joined group, on the room's plain port
    /// ([`Channel::Plain`]) or its control port ([`Channel::Control`]),
    /// from `from`.
    pub fn handle_datagram_from(
        &mut self,
        now: Instant,
        channel: Channel,
        from: SocketAddr,
        data: &[u8],
    ) {
        self.tick(now);
        if self.chat.is_none() || self.exited {
            return;
        }
        // A plain datagram too long for any member's plain copy is shown
        // cut, as ever, without the session (which keeps at most
        // MAX_DATAGRAM bytes and would lose the mark); never in a private
        // room, whose session refuses every plain datagram.
        let oversized = channel == Channel::Plain
            && data.len() > MAX_DATAGRAM
            && !self.session.as_ref().is_some_and(|s| s.is_private());
        if !oversized && self.session_datagram(channel, from, data) {
            self.step();
            return;
        }
        if channel == Channel::Control {
            return;
        }
        let hash = fnv1a(data);
        let now = self.now;
        let own = self
            .sent
            .iter()
            .position(|s| s.hash == hash && now.saturating_since(s.at) <= OWN_ECHO_WINDOW);
        if let Some(i) = own {
            let _ = self.sent.swap_remove_front(i);
            return;
        }
        let n = data.len().min(MAX_DATAGRAM);
        let payload = Datagram::from_slice(&data[..n]).unwrap_or_default();
        self.emit(Output::Show(Message::Chat {
            payload,
            truncated: data.len() > MAX_DATAGRAM,
        }));
    }

    /// [`Output::JoinGroup`] succeeded: the client enters the room.
    pub fn handle_joined(&mut self, now: Instant) {
        self.tick(now);
        if let Some(room) = self.joining.take() {
            self.enter_chat(room);
        }
        self.step();
    }

    /// [`Output::JoinGroup`] failed: the client stays out of the room (or
    /// leaves it, if a join reported as done fails after all).
    pub fn handle_join_failed(&mut self, now: Instant, detail: &str) {
        self.tick(now);
        self.session = None;
        self.room_key = None;
        self.who_out.clear();
        if let Some(room) = self.joining.take().or_else(|| self.chat.take()) {
            say!(
                self,
                "Could not join chat room {} ({} port {}): {}; you are not in the room. \
                 Choose the network interface with --iface NAME (or ADDR), or check that multicast \
                 is routed.",
                Clean(&room.name),
                room.group,
                room.port,
                Clean(detail)
            );
        }
        self.step();
    }

    /// The host refuses to carry out [`Output::JoinGroup`] (say, an open
    /// room it knows as private): the client stays out of the room, and
    /// `why` (worded for people, whole sentences) is shown.
    pub fn handle_join_refused(&mut self, now: Instant, why: &str) {
        self.tick(now);
        if self.joining.take().is_some() {
            self.session = None;
            self.room_key = None;
            self.who_out.clear();
            say!(self, "{}", Clean(why));
        }
        self.step();
    }

    /// [`Output::SendDatagram`] failed.
    pub fn handle_send_failed(&mut self, now: Instant, detail: &str) {
        self.tick(now);
        if self.chat.is_some() {
            say!(self, "Your message could not be sent: {}.", Clean(detail));
        }
        self.step();
    }

    /// The host's wall clock reads `wall_ms` (Unix time in ms) at `now`.
    /// A host calls it each turn of its loop: a private room's session
    /// follows steps of the wall clock with it
    /// ([`Session::handle_wall_clock`](crate::chat::Session::handle_wall_clock)).
    /// Nothing else uses it.
    pub fn handle_wall_clock(&mut self, now: Instant, wall_ms: u64) {
        self.tick(now);
        let now = self.now;
        if let Some(session) = self.session.as_mut() {
            session.handle_wall_clock(now, wall_ms);
        }
    }

    /// Time passed. Spurious calls are no-ops.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.tick(now);
        let now = self.now;
        if let Some(session) = self.session.as_mut() {
            session.handle_timeout(now);
        }
        match &self.conn {
            Conn::Connecting { deadline, .. } if now >= *deadline => {
                self.connect_failed(ConnectFailure::TimedOut);
            }
            Conn::Open { last_send, .. } => {
                let last_send = *last_send;
                if let Some((deadline, whole)) = self.reply_deadline() {
                    if now >= deadline && whole {
                        let secs = self.config.listing_timeout.as_secs();
                        let unanswered = self.unanswered();
                        self.drop_connection(make_text(format_args!(
                            "The directory server at {} did not finish its reply within \
                             {secs} s, so the connection was closed.{unanswered}",
                            self.conn_server()
                        )));
                    } else if now >= deadline {
                        let secs = self.config.reply_timeout.as_secs();
                        self.drop_connection(make_text(format_args!(
                            "The directory server at {} did not answer within {secs} s, so \
                             the connection was closed.",
                            self.conn_server()
                        )));
                    }
                } else if now >= last_send + self.config.keepalive_interval {
                    self.send_request(Request::Ping, &Command::Ping);
                }
            }
            _ => {}
        }
        self.step();
    }

    // ---- outputs ----

    /// The next thing the host must do, if any. Drain until `None` after
    /// every `handle_*` call.
    #[must_use]
    pub fn poll_output(&mut self) -> Option<Output> {
        if self.out.is_empty() {
            self.step();
        }
        self.out.pop_front()
    }

    /// When [`handle_timeout`](Self::handle_timeout) must be called next,
    /// if ever. Calling it earlier is harmless.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        let conn = match &self.conn {
            Conn::None => None,
            Conn::Connecting { deadline, .. } => Some(*deadline),
            Conn::Open { last_send, .. } => Some(match self.reply_deadline() {
                Some((deadline, _)) => deadline,
                None => *last_send + self.config.keepalive_interval,
            }),
        };
        let room = self.session.as_ref().and_then(|s| s.poll_timeout());
        match (conn, room) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    // ---- internals ----

    /// When the reply the client waits for is due, if it waits for one, and
    /// whether that is the bound on a whole reply already begun (a listing)
    /// rather than on its first line. Neither moves as lines arrive.
    fn reply_deadline(&self) -> Option<(Instant, bool)> {
        let front = self.pending.front()?;
        Some(if self.listing.is_some() {
            (front.sent + self.config.listing_timeout, true)
        } else {
            (front.sent + self.config.reply_timeout, false)
        })
    }

    fn tick(&mut self, now: Instant) {
        // Time that goes backwards is clamped.
        self.now = self.now.max(now);
    }

    fn emit(&mut self, output: Output) {
        // Each step leaves STEP_RESERVE slots free before it starts, so this
        // only fails if the host does not drain; then the output is lost
        // rather than memory growing.
        let _ = self.out.push_back(output);
    }

    fn show(&mut self, text: Text) {
        self.emit(Output::Show(Message::Text(text)));
    }

    fn current_prompt(&self) -> Prompt {
        if let Some(room) = &self.chat {
            return Prompt::Chat {
                room: room.name.clone(),
                name: self.name.clone(),
            };
        }
        match &self.conn {
            Conn::Open {
                server,
                purpose: Purpose::Interactive,
                greeted: true,
                ..
            } => Prompt::Connected {
                server: server.clone(),
            },
            _ => Prompt::Main,
        }
    }

    /// The directory server of the open connection, if one is open: the
    /// key, with a room's name, of the owner tokens the host keeps
    /// ([`Output::OwnerToken`]).
    pub fn connected_server(&self) -> Option<&ServerAddr> {
        match &self.conn {
            Conn::Open { server, .. } => Some(server),
            Conn::Connecting { .. } | Conn::None => None,
        }
    }

    fn conn_server(&self) -> ServerAddr {
        match &self.conn {
            Conn::Connecting { server, .. } | Conn::Open { server, .. } => server.clone(),
            Conn::None => self.server.clone(),
        }
    }

    fn interactive(&self) -> bool {
        matches!(
            self.conn,
            Conn::Open {
                purpose: Purpose::Interactive,
                greeted: true,
                ..
            }
        )
    }

    /// Processes buffered server lines and listing rows while there is room
    /// for their outputs, then announces a prompt change.
    fn step(&mut self) {
        while CLIENT_OUTPUT_QUEUE - self.out.len() >= STEP_RESERVE {
            if self.flush_listing_row() || self.flush_session() {
                continue;
            }
            let Some(end) = self.recv.iter().position(|&b| b == b'\n') else {
                if self.recv.len() >= MAX_LINE {
                    let mut start: heapless::Vec<u8, QUOTE_BYTES> = heapless::Vec::new();
                    let _ = start.extend_from_slice(&self.recv[..QUOTE_BYTES]);
                    self.protocol_error("a line longer than the protocol allows", &start);
                }
                break;
            };
            let mut line: heapless::Vec<u8, MAX_LINE> = heapless::Vec::new();
            let _ = line.extend_from_slice(&self.recv[..end.min(MAX_LINE)]);
            self.recv.copy_within(end + 1.., 0);
            self.recv.truncate(self.recv.len() - (end + 1));
            if end >= MAX_LINE {
                self.protocol_error("a line longer than the protocol allows", &line);
            } else {
                self.server_line(&line);
            }
        }
        let sent = self.out.is_empty() && self.session.as_ref().is_none_or(|s| s.queued() == 0);
        if self.leave_when_sent && sent {
            self.leave_when_sent = false;
            if self.chat.is_some() {
                self.leave_chat();
            }
        }
        if self.quit_when_sent && !self.exited && sent {
            self.quit();
        }
        let prompt = self.current_prompt();
        if prompt != self.prompt && !self.exited {
            self.prompt = prompt.clone();
            self.emit(Output::Prompt(prompt));
        }
    }

    // ---- the connection ----

    fn connect_failed(&mut self, why: ConnectFailure) {
        let Conn::Connecting {
            server, purpose, ..
        } = core::mem::replace(&mut self.conn, Conn::None)
        else {
            return;
        };
        self.emit(Output::Close);
        let reason = match why {
            ConnectFailure::Resolve => "that host name is unknown",
            ConnectFailure::Refused => "nothing is listening there",
            ConnectFailure::Unreachable => "that network or host is unreachable",
            ConnectFailure::TimedOut => "no answer",
            ConnectFailure::Other => "the connection failed",
        };
        let within = match why {
            ConnectFailure::TimedOut => self.config.connect_timeout.as_secs(),
            _ => 0,
        };
        let mut timing = heapless::String::<24>::new();
        if within > 0 {
            let _ = write!(timing, " within {within} s");
        }
        let lookup = match &purpose {
            Purpose::Lookup(room) => {
                let mut s = heapless::String::<80>::new();
                let _ = write!(s, " to look up room {}", Clean(room));
                s
            }
            Purpose::Interactive => heapless::String::new(),
        };
        say!(
            self,
            "Could not connect to the directory server at {server}{lookup}: {reason}{timing}. \
             Check that it is running ('roomcast server') and the address, or try \
             'connect HOST:PORT'."
        );
    }

    /// Forgets the connection and tells the host to close it.
    fn reset_connection(&mut self) {
        self.conn = Conn::None;
        self.recv.clear();
        self.pending.clear();
        self.listing = None;
        self.emit(Output::Close);
    }

    fn drop_connection(&mut self, text: Text) {
        self.reset_connection();
        self.show(text);
        self.after_loss();
    }

    fn after_loss(&mut self) {
        if self.chat.is_some() {
            say!(
                self,
                "You are still in the chat room; chatting does not need the server."
            );
        } else {
            say!(self, "Type 'connect' to reconnect.");
        }
    }

    /// The server broke the protocol with `line` (`what` says how): quote
    /// it, close, and say what became of the request it was answering.
    fn protocol_error(&mut self, what: &str, line: &[u8]) {
        let server = self.conn_server();
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let unanswered = self.unanswered();
        self.drop_connection(make_text(format_args!(
            "The directory server at {server} sent {what} ('{}'); the connection was \
             closed.{unanswered}",
            Quote(line)
        )));
    }

    /// What the user should know about the request the server leaves
    /// unanswered when the connection ends (empty if nothing matters), as a
    /// sentence that starts with a space.
    fn unanswered(&self) -> heapless::String<200> {
        let mut note = heapless::String::new();
        let request = self
            .pending
            .iter()
            .map(|p| &p.request)
            .find(|&r| !matches!(r, Request::Ping | Request::Cancelled));
        let _ = match request {
            Some(Request::Greeting) => write!(note, " Is it a roomcast directory server?"),
            Some(Request::GetDir | Request::GetDirFull) => {
                write!(note, " The room list did not arrive in full.")
            }
            Some(Request::MakeRoom(room)) => write!(
                note,
                " Room {} may or may not have been created; 'getdir' tells once you \
                 reconnect.",
                Clean(room)
            ),
            Some(Request::DeleteRoom(name)) => write!(
                note,
                " Room {} may or may not have been deleted; 'getdir' tells once you \
                 reconnect.",
                Clean(name)
            ),
            Some(Request::MakePrivate(room)) => write!(
                note,
                " Private room {} may or may not have been created; 'getdir' tells once you \
                 reconnect.",
                Clean(room)
            ),
            Some(
                Request::Lookup(_)
                | Request::GetRoom(_)
                | Request::ShowRoom(_)
                | Request::Salt(_)
                | Request::Ping
                | Request::Bye
                | Request::Cancelled,
            )
            | None => Ok(()),
        };
        note
    }

    fn server_lost(&mut self) {
        let Conn::Open {
            server, purpose, ..
        } = &self.conn
        else {
            return;
        };
        let server = server.clone();
        let purpose = purpose.clone();
        let bye = self
            .pending
            .front()
            .is_some_and(|p| p.request == Request::Bye);
        let unanswered = self.unanswered();
        self.reset_connection();
        if bye {
            say!(self, "Disconnected from the directory server at {server}.");
            return;
        }
        match purpose {
            Purpose::Lookup(room) => say!(
                self,
                "The directory server at {server} closed the connection before room {} was \
                 found. Try again, or check the server.",
                Clean(&room)
            ),
            Purpose::Interactive => {
                say!(
                    self,
                    "The directory server at {server} closed the connection.{unanswered}"
                );
                self.after_loss();
            }
        }
    }
}

/// FNV-1a, 64 bits: enough to recognise our own datagrams.
fn fnv1a(data: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in data {
        hash ^= u64::from(b);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash ^ (data.len() as u64)
}

#[cfg(test)]
mod tests;
