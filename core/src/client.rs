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
//! While the client waits for the server (connecting, or a reply),
//! [`Client::ready_for_input`] is false: the host holds the user's next line
//! until it turns true. Each command so finishes before the next starts, as
//! a person at a prompt expects, and a script piping lines gets the same.
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

use core::fmt::{self, Write as _};
use core::net::Ipv4Addr;
use core::time::Duration;

use crate::limits::{
    CLIENT_OUTPUT_QUEUE, CLIENT_RECV_BUF, CONNECT_TIMEOUT, KEEPALIVE_INTERVAL, LISTING_BUFFER,
    MAX_CHAT_NAME, MAX_DATAGRAM, MAX_LINE, MAX_ROOM_NAME, MAX_ROOMS, MAX_SERVER_ADDR, MAX_TEXT,
    OWN_ECHO_MEMORY, OWN_ECHO_WINDOW, REPLY_TIMEOUT,
};
use crate::parse::{parse_command, parse_reply_line, parse_room_line};
use crate::server::PROTOCOL_VERSION;
use crate::text::{self, QUOTE_BYTES, Quoted as Quote, Shown as Clean, ShownBytes, Truncating};
use crate::time::Instant;
use crate::wire::{
    Command, CommandKind, LineBuf, ReplyLine, Room, RoomName, encode_command, is_valid_room_name,
};

/// A directory server's address as the client uses it: `HOST:PORT`, where
/// HOST is a name, an IPv4 address or a bracketed IPv6 address.
pub type ServerAddr = heapless::String<MAX_SERVER_ADDR>;

/// The payload of one chat datagram.
pub type Datagram = heapless::Vec<u8, MAX_DATAGRAM>;

/// A message for the user, already worded.
pub type Text = heapless::String<MAX_TEXT>;

/// The byte a line holds to leave chat mode when input is not a terminal
/// (what Ctrl-] types).
pub const LEAVE_CHAT_BYTE: u8 = 0x1D;

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
        let text = make_text(format_args!($($arg)*));
        $client.show(text);
    }};
}

/// Formats a message, cut at [`MAX_TEXT`] bytes.
fn make_text(args: fmt::Arguments<'_>) -> Text {
    let mut text = Truncating(Text::new());
    let _ = text.write_fmt(args);
    text.0
}

// ---------------------------------------------------------------------------
// Names and addresses

/// A chat name: 1 to [`MAX_CHAT_NAME`] printable characters (spaces inside
/// are fine; leading and trailing ones are dropped).
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

// ---------------------------------------------------------------------------
// Configuration, modes, outputs

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
    /// See [`KEEPALIVE_INTERVAL`].
    pub keepalive_interval: Duration,
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
            keepalive_interval: KEEPALIVE_INTERVAL,
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
        /// The datagram's first [`MAX_DATAGRAM`] bytes.
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
                write!(f, "{}", ShownBytes(payload))?;
                if *truncated {
                    f.write_str(" [cut: too long]")?;
                }
                Ok(())
            }
        }
    }
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

/// What the host must do. Drain with [`Client::poll_output`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Output {
    /// Open a TCP connection to `server` (`HOST:PORT`: resolve the name,
    /// try each address), then call [`Client::handle_connected`] or
    /// [`Client::handle_connect_failed`]. Every `Connect` is followed,
    /// sooner or later, by exactly one [`Output::Close`].
    Connect {
        /// Where to connect.
        server: ServerAddr,
    },
    /// Write this line (LF included) to the server.
    SendLine(LineBuf),
    /// Close the server connection (or abandon the attempt to open it).
    Close,
    /// Join the multicast `group` and receive on `port`; report failure with
    /// [`Client::handle_join_failed`].
    JoinGroup {
        /// The room's group, in 239.0.0.0/8.
        group: Ipv4Addr,
        /// The room's UDP port.
        port: u16,
    },
    /// Leave the group joined last and close its socket.
    LeaveGroup,
    /// Send this payload to the joined group and port.
    SendDatagram(Datagram),
    /// Show this to the user.
    Show(Message),
    /// Use this prompt for the user's next line.
    Prompt(Prompt),
    /// Stop: the user quit.
    Exit,
}

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
    },
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Request {
    Greeting,
    GetDir,
    Lookup(RoomName),
    MakeRoom(Room),
    DeleteRoom(RoomName),
    Ping,
    Bye,
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct Pending {
    request: Request,
    /// When it was sent, or when its reply last made progress.
    since: Instant,
}

// One listing at a time, inside the client: no_std keeps it inline.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, PartialEq, Eq)]
enum Listing {
    /// `getdir` shown as a table.
    Table {
        rows: heapless::Deque<Room, LISTING_BUFFER>,
        /// Column widths, once known; rows then go out as they come.
        widths: Option<(usize, usize)>,
        count: usize,
        /// The `.` arrived: flush the rows, then the footer.
        ended: bool,
    },
    /// `getdir` to find one room for `chat`.
    Lookup { name: RoomName, found: Option<Room> },
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
    chat: Option<Room>,
    sent: heapless::Deque<Sent, OWN_ECHO_MEMORY>,
    out: heapless::Deque<Output, CLIENT_OUTPUT_QUEUE>,
    prompt: Prompt,
    exited: bool,
}

impl Client {
    /// A client at the main prompt. Its first outputs greet the user and
    /// set the prompt.
    pub fn new(config: ClientConfig, now: Instant) -> Self {
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
            chat: None,
            sent: heapless::Deque::new(),
            out: heapless::Deque::new(),
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
    /// while connecting or waiting for a reply; see the module docs.
    pub fn ready_for_input(&self) -> bool {
        !self.exited
            && !matches!(self.conn, Conn::Connecting { .. })
            && self.pending.iter().all(|p| p.request == Request::Ping)
            && self.listing.is_none()
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
        } else if self.chat.is_some() {
            self.leave_chat();
        } else {
            say!(self, "(Type 'quit' or press Ctrl-D to leave roomcast.)");
        }
        self.step();
    }

    /// Input ended (Ctrl-D, or the end of piped input): quit.
    pub fn handle_end_of_input(&mut self, now: Instant) {
        self.tick(now);
        if !self.exited {
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

    /// A datagram arrived on the joined group.
    pub fn handle_datagram(&mut self, now: Instant, data: &[u8]) {
        self.tick(now);
        if self.chat.is_none() || self.exited {
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

    /// [`Output::JoinGroup`] failed: the client leaves chat mode.
    pub fn handle_join_failed(&mut self, now: Instant, detail: &str) {
        self.tick(now);
        if let Some(room) = self.chat.take() {
            say!(
                self,
                "Could not join chat room {} ({} port {}): {}; you are not in the room. \
                 Choose the network interface with --iface ADDR, or check that multicast \
                 is routed.",
                Clean(&room.name),
                room.group,
                room.port,
                Clean(detail)
            );
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

    /// Time passed. Spurious calls are no-ops.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.tick(now);
        let now = self.now;
        match &self.conn {
            Conn::Connecting { deadline, .. } if now >= *deadline => {
                self.connect_failed(ConnectFailure::TimedOut);
            }
            Conn::Open { last_send, .. } => {
                let last_send = *last_send;
                if let Some(front) = self.pending.front() {
                    if now >= front.since + self.config.reply_timeout {
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
        match &self.conn {
            Conn::None => None,
            Conn::Connecting { deadline, .. } => Some(*deadline),
            Conn::Open { last_send, .. } => Some(match self.pending.front() {
                Some(p) => p.since + self.config.reply_timeout,
                None => *last_send + self.config.keepalive_interval,
            }),
        }
    }

    // ---- internals ----

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
            if self.flush_listing_row() {
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
        let prompt = self.current_prompt();
        if prompt != self.prompt && !self.exited {
            self.prompt = prompt.clone();
            self.emit(Output::Prompt(prompt));
        }
    }

    // ---- user lines ----

    fn user_line(&mut self, line: &[u8]) {
        let line = line.strip_suffix(b"\n").unwrap_or(line);
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.contains(&LEAVE_CHAT_BYTE) {
            self.leave_chat_or_hint();
            return;
        }
        let Ok(text) = core::str::from_utf8(line) else {
            say!(self, "That line is not valid UTF-8, so it was ignored.");
            return;
        };
        if self.chat.is_some() {
            self.chat_line(text);
        } else if !self.ready_for_input() {
            say!(
                self,
                "Still waiting for the directory server; '{}' was ignored. Wait for the prompt.",
                Quote(text.as_bytes())
            );
        } else {
            self.command_line(text);
        }
    }

    fn chat_line(&mut self, text: &str) {
        match text.trim() {
            "" => return,
            "/leave" => return self.leave_chat(),
            "/help" => return self.help(),
            _ => {}
        }
        let mut payload = Datagram::new();
        let fits = payload
            .extend_from_slice(self.name.as_str().as_bytes())
            .is_ok()
            && payload.extend_from_slice(b": ").is_ok()
            && payload.extend_from_slice(text.as_bytes()).is_ok();
        if !fits {
            let size = self.name.as_str().len() + 2 + text.len();
            say!(
                self,
                "That message was not sent: it is {size} bytes with your name, and one \
                 message carries at most {MAX_DATAGRAM}. Split it into shorter lines."
            );
            return;
        }
        if self.sent.is_full() {
            let _ = self.sent.pop_front();
        }
        let _ = self.sent.push_back(Sent {
            hash: fnv1a(&payload),
            at: self.now,
        });
        self.emit(Output::SendDatagram(payload));
    }

    fn command_line(&mut self, text: &str) {
        let text = text.trim();
        let mut words = text.split_whitespace();
        let Some(verb) = words.next() else {
            return;
        };
        let rest = text[verb.len()..].trim();
        let args = rest.split_whitespace().count();
        let is = |word: &str| verb.eq_ignore_ascii_case(word);
        if is("help") || verb == "?" {
            self.help();
        } else if is("quit") || is("exit") {
            self.quit();
        } else if is("connect") {
            if args > 1 {
                say!(self, "usage: connect [HOST[:PORT]]");
            } else {
                self.connect(rest);
            }
        } else if is("bye") {
            self.bye();
        } else if is("name") {
            self.name_command(rest);
        } else if is("chat") {
            if args != 1 {
                say!(
                    self,
                    "usage: chat <room>  (type 'getdir' when connected to list the rooms)"
                );
            } else {
                self.chat_command(rest);
            }
        } else {
            self.server_command(verb, text);
        }
    }

    fn help(&mut self) {
        match self.mode() {
            Mode::Main => say!(
                self,
                "Commands (you are not connected to a directory server):\n  \
                 connect [HOST[:PORT]]   connect to the directory server (now {})\n  \
                 name [NAME]             show or set your chat name (now {})\n  \
                 chat <room>             enter a chat room (looked up on the server)\n  \
                 help                    show this list\n  \
                 quit                    leave roomcast (Ctrl-D does the same)\n\
                 Once connected: getdir, makeroom, deleteroom, bye.",
                self.server,
                self.name
            ),
            Mode::Connected => say!(
                self,
                "Commands (connected to {}):\n  \
                 getdir                  list the chat rooms\n  \
                 makeroom <name> <address> <port>\n                          \
                 create a room; address in 239.0.0.0/8, port 1024-65535\n  \
                 deleteroom <name>       delete a room\n  \
                 chat <room>             enter a chat room\n  \
                 name [NAME]             show or set your chat name (now {})\n  \
                 bye                     close the connection to the server\n  \
                 help                    show this list\n  \
                 quit                    leave roomcast",
                self.conn_server(),
                self.name
            ),
            Mode::Chat => {
                let room = self
                    .chat
                    .as_ref()
                    .map(|r| r.name.clone())
                    .unwrap_or_default();
                say!(
                    self,
                    "You are in chat room {} as {}. Type a message and press Enter to send \
                     it to everyone in the room.\n  \
                     Ctrl-]    leave the room (or type /leave)\n  \
                     /help     show this help\n  \
                     Ctrl-D    quit roomcast (on an empty line)",
                    Clean(&room),
                    self.name
                );
            }
        }
    }

    fn quit(&mut self) {
        if self.chat.take().is_some() {
            self.emit(Output::LeaveGroup);
        }
        if !matches!(self.conn, Conn::None) {
            self.reset_connection();
        }
        say!(self, "Goodbye.");
        self.emit(Output::Exit);
        self.exited = true;
    }

    fn connect(&mut self, target: &str) {
        if let Conn::Open { server, .. } = &self.conn {
            let server = server.clone();
            say!(
                self,
                "You are already connected to {server}. Type 'bye' first to connect elsewhere."
            );
            return;
        }
        let server = if target.is_empty() {
            self.server.clone()
        } else {
            match parse_server_addr(target, self.config.default_port) {
                Ok(server) => server,
                Err(e) => {
                    say!(self, "'{}': {e}.", Clean(target));
                    return;
                }
            }
        };
        self.start_connect(server, Purpose::Interactive);
    }

    fn start_connect(&mut self, server: ServerAddr, purpose: Purpose) {
        let what = match &purpose {
            Purpose::Interactive => "",
            Purpose::Lookup(_) => " to look up the room",
        };
        say!(self, "Connecting to {server}{what}...");
        self.emit(Output::Connect {
            server: server.clone(),
        });
        self.conn = Conn::Connecting {
            server,
            purpose,
            deadline: self.now + self.config.connect_timeout,
        };
    }

    fn bye(&mut self) {
        if self.interactive() {
            self.send_request(Request::Bye, &Command::Bye);
        } else {
            say!(
                self,
                "You are not connected to a directory server (type 'connect' to connect)."
            );
        }
    }

    fn name_command(&mut self, rest: &str) {
        if rest.is_empty() {
            say!(
                self,
                "Your chat name is {}. Change it with: name <chat name>",
                self.name
            );
            return;
        }
        match ChatName::new(rest) {
            Ok(name) => {
                self.name = name;
                say!(
                    self,
                    "Your chat name is now {}. Your messages will read \"{}: ...\".",
                    self.name,
                    self.name
                );
            }
            Err(e) => say!(self, "That name was not taken: {e}."),
        }
    }

    fn chat_command(&mut self, room: &str) {
        if !is_valid_room_name(room) {
            say!(
                self,
                "'{}' is not a room name: room names have 1-{MAX_ROOM_NAME} printable \
                 characters and no spaces.",
                Clean(room)
            );
            return;
        }
        let name = RoomName::try_from(room).unwrap_or_default();
        match self.conn {
            Conn::Open { .. } => {
                self.send_request(Request::Lookup(name), &Command::GetDir);
            }
            _ => {
                let server = self.server.clone();
                self.start_connect(server, Purpose::Lookup(name));
            }
        }
    }

    fn server_command(&mut self, verb: &str, text: &str) {
        let known = CommandKind::ALL
            .into_iter()
            .find(|k| k.verb().eq_ignore_ascii_case(verb));
        let Some(kind) = known else {
            say!(
                self,
                "'{}' is not a command. Type 'help' for the commands.",
                Quote(verb.as_bytes())
            );
            return;
        };
        if !self.interactive() {
            say!(
                self,
                "'{}' needs a connection to the directory server: type 'connect' first \
                 (or 'connect HOST:PORT').",
                kind.verb()
            );
            return;
        }
        match parse_command(text.as_bytes()) {
            Ok(command) => {
                let request = match &command {
                    Command::GetDir => Request::GetDir,
                    Command::MakeRoom(room) => Request::MakeRoom(room.clone()),
                    Command::DeleteRoom(name) => Request::DeleteRoom(name.clone()),
                    Command::Ping => Request::Ping,
                    // `help` and `bye` are the client's own; never here.
                    Command::Help | Command::Bye => return,
                };
                self.send_request(request, &command);
            }
            Err(e) => {
                // The error quotes what the user typed: keep it printable.
                let text = make_text(format_args!("{e}"));
                say!(self, "{}", Clean(&text));
            }
        }
    }

    fn send_request(&mut self, request: Request, command: &Command) {
        let Conn::Open { last_send, .. } = &mut self.conn else {
            return;
        };
        *last_send = self.now;
        let line = encode_command(command);
        self.push_pending(request);
        self.emit(Output::SendLine(line));
    }

    fn push_pending(&mut self, request: Request) {
        if self.pending.is_full() {
            // Cannot happen while the host respects `ready_for_input`.
            self.drop_connection(make_text(format_args!(
                "Too many requests without answers; the connection was closed."
            )));
            return;
        }
        let _ = self.pending.push_back(Pending {
            request,
            since: self.now,
        });
    }

    // ---- chat mode ----

    fn leave_chat_or_hint(&mut self) {
        if self.chat.is_some() {
            self.leave_chat();
        } else {
            say!(self, "Ctrl-] leaves a chat room; you are not in one.");
        }
    }

    fn leave_chat(&mut self) {
        if let Some(room) = self.chat.take() {
            self.emit(Output::LeaveGroup);
            self.sent.clear();
            let back = if self.interactive() {
                "the connected prompt"
            } else {
                "the main prompt"
            };
            say!(
                self,
                "You left chat room {}; back at {back}.",
                Clean(&room.name)
            );
        }
    }

    fn enter_chat(&mut self, room: Room) {
        // Joined before the user reads that they are in the room.
        self.emit(Output::JoinGroup {
            group: room.group,
            port: room.port,
        });
        say!(
            self,
            "Entering chat room {} ({} port {}) as {}.\nType a message and press Enter to \
             send it; Ctrl-] (or /leave) leaves the room.",
            Clean(&room.name),
            room.group,
            room.port,
            self.name
        );
        self.chat = Some(room);
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
            .find(|&r| *r != Request::Ping);
        let _ = match request {
            Some(Request::Greeting) => write!(note, " Is it a roomcast directory server?"),
            Some(Request::GetDir) => write!(note, " The room list did not arrive in full."),
            Some(Request::MakeRoom(room)) => write!(
                note,
                " Room {} may or may not have been created; 'getdir' tells once you \
                 reconnect.",
                Clean(&room.name)
            ),
            Some(Request::DeleteRoom(name)) => write!(
                note,
                " Room {} may or may not have been deleted; 'getdir' tells once you \
                 reconnect.",
                Clean(name)
            ),
            Some(Request::Lookup(_) | Request::Ping | Request::Bye) | None => Ok(()),
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

    // ---- server lines ----

    fn server_line(&mut self, line: &[u8]) {
        if !matches!(self.conn, Conn::Open { .. }) {
            return;
        }
        if let Some(front) = self.pending.front_mut() {
            front.since = self.now;
        }
        if self.listing.is_some() {
            return self.listing_line(line);
        }
        let Some(front) = self.pending.front() else {
            return self.protocol_error("a line nobody asked for", line);
        };
        let request = front.request.clone();
        let reply = match parse_reply_line(line) {
            Ok(reply) => reply,
            Err(_) => return self.protocol_error("a line that is not a reply", line),
        };
        if request == Request::Greeting
            && let ReplyLine::Ok(text) = reply
            && text.split(' ').next() != Some(PROTOCOL_VERSION)
        {
            return self.protocol_error("a greeting that is not CRDP/1", line);
        }
        let _ = self.pending.pop_front();
        match reply {
            ReplyLine::Ok(_) => self.reply_ok(request),
            ReplyLine::Err { token, message, .. } => self.reply_err(request, token, message),
        }
    }

    fn reply_ok(&mut self, request: Request) {
        match request {
            Request::Greeting => {
                if let Conn::Open { greeted, .. } = &mut self.conn {
                    *greeted = true;
                }
                let server = self.conn_server();
                match &self.conn {
                    Conn::Open {
                        purpose: Purpose::Lookup(room),
                        ..
                    } => {
                        let room = room.clone();
                        self.send_request(Request::Lookup(room), &Command::GetDir);
                    }
                    _ => {
                        self.server = server.clone();
                        say!(
                            self,
                            "Connected to the directory server at {server}. Type 'help' for \
                             its commands, 'bye' to disconnect."
                        );
                    }
                }
            }
            Request::GetDir => {
                self.restore_pending(Request::GetDir);
                self.listing_rows = 0;
                self.listing = Some(Listing::Table {
                    rows: heapless::Deque::new(),
                    widths: None,
                    count: 0,
                    ended: false,
                });
            }
            Request::Lookup(name) => {
                self.restore_pending(Request::Lookup(name.clone()));
                self.listing_rows = 0;
                self.listing = Some(Listing::Lookup { name, found: None });
            }
            Request::MakeRoom(room) => say!(
                self,
                "Room {} created: multicast group {} port {}. Type 'chat {}' to enter it.",
                Clean(&room.name),
                room.group,
                room.port,
                Clean(&room.name)
            ),
            Request::DeleteRoom(name) => {
                say!(self, "Room {} deleted.", Clean(&name))
            }
            Request::Ping => {}
            Request::Bye => {
                let server = self.conn_server();
                self.reset_connection();
                say!(self, "Disconnected from the directory server at {server}.");
            }
        }
    }

    /// Puts a request whose reply goes on (a listing) back at the front.
    fn restore_pending(&mut self, request: Request) {
        let _ = self.pending.push_front(Pending {
            request,
            since: self.now,
        });
    }

    fn reply_err(&mut self, request: Request, token: &str, message: &str) {
        let server = self.conn_server();
        let message = Clean(message);
        match request {
            Request::Greeting => {
                self.reset_connection();
                say!(
                    self,
                    "The directory server at {server} turned the connection away \
                     ({}): {message}",
                    Clean(token)
                );
            }
            Request::Lookup(room) => {
                say!(
                    self,
                    "Could not look up room {}: the server said: {message}",
                    Clean(&room)
                );
                self.end_lookup_connection();
            }
            Request::GetDir => {
                say!(self, "Could not list the rooms: {message}")
            }
            Request::MakeRoom(room) => say!(
                self,
                "Room {} was not created: {message}",
                Clean(&room.name)
            ),
            Request::DeleteRoom(name) => {
                say!(self, "Room {} was not deleted: {message}", Clean(&name))
            }
            Request::Ping => {}
            Request::Bye => {
                self.reset_connection();
                say!(self, "Disconnected from the directory server at {server}.");
            }
        }
    }

    /// After a lookup over a short connection: close it.
    fn end_lookup_connection(&mut self) {
        if let Conn::Open {
            purpose: Purpose::Lookup(_),
            ..
        } = self.conn
        {
            self.reset_connection();
        }
    }

    fn listing_line(&mut self, line: &[u8]) {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line == b"." {
            return self.end_listing();
        }
        let room = match parse_room_line(line) {
            Ok(room) => room,
            Err(_) => return self.protocol_error("a directory line that is not a room", line),
        };
        self.listing_rows += 1;
        if self.listing_rows > MAX_ROOMS {
            return self.protocol_error("more rooms than a directory can hold", line);
        }
        match &mut self.listing {
            Some(Listing::Lookup { name, found })
                if found.is_none() && text::same_name(&room.name, name) =>
            {
                *found = Some(room);
            }
            Some(Listing::Lookup { .. }) => {}
            Some(Listing::Table {
                rows,
                widths,
                count,
                ..
            }) => {
                *count += 1;
                // Rows are flushed before the next line is read, so there is
                // room in `rows` whenever widths are known.
                let _ = rows.push_back(room);
                if widths.is_none() && rows.is_full() {
                    *widths = Some((MAX_ROOM_NAME, 15));
                    self.table_header(MAX_ROOM_NAME, 15);
                }
            }
            None => {}
        }
    }

    fn end_listing(&mut self) {
        let _ = self.pending.pop_front();
        match self.listing.take() {
            Some(Listing::Lookup { name, found }) => {
                match found {
                    Some(room) => self.enter_chat(room),
                    None => {
                        let how = if self.interactive() {
                            "Type 'getdir' to list the rooms, or 'makeroom' to create one."
                        } else {
                            "Type 'connect', then 'getdir' to list the rooms or 'makeroom' \
                             to create one."
                        };
                        say!(self, "There is no room named {}. {how}", Clean(&name));
                    }
                }
                self.end_lookup_connection();
            }
            Some(Listing::Table {
                rows,
                widths,
                count,
                ..
            }) => {
                if count == 0 {
                    say!(
                        self,
                        "No rooms yet. Create one with: makeroom <name> <address> <port>"
                    );
                    return;
                }
                let widths = widths.unwrap_or_else(|| {
                    let name = rows
                        .iter()
                        .map(|r| text::display_width(&r.name))
                        .max()
                        .unwrap_or(0)
                        .max(4);
                    let addr = rows
                        .iter()
                        .map(|r| fmt_len(format_args!("{}", r.group)))
                        .max()
                        .unwrap_or(0)
                        .max(7);
                    self.table_header(name, addr);
                    (name, addr)
                });
                // Flushed by `step` through `flush_listing_row`.
                self.listing = Some(Listing::Table {
                    rows,
                    widths: Some(widths),
                    count,
                    ended: true,
                });
                // The request stays answered; `flush_listing_row` ends it.
            }
            None => {}
        }
    }

    fn table_header(&mut self, name: usize, addr: usize) {
        say!(self, "{:<name$}  {:<addr$}  PORT", "ROOM", "ADDRESS");
    }

    /// Emits one buffered table row, or the footer; false if none is due.
    fn flush_listing_row(&mut self) -> bool {
        let Some(Listing::Table {
            rows,
            widths: Some((name_w, addr_w)),
            count,
            ended,
        }) = &mut self.listing
        else {
            return false;
        };
        let (name_w, addr_w, count) = (*name_w, *addr_w, *count);
        if let Some(room) = rows.pop_front() {
            let name = text::Padded {
                text: &room.name,
                width: name_w,
            };
            let mut group = heapless::String::<16>::new();
            let _ = write!(group, "{}", room.group);
            say!(self, "{name}  {:<addr_w$}  {}", group.as_str(), room.port);
            return true;
        }
        if *ended {
            self.listing = None;
            let s = if count == 1 { "" } else { "s" };
            say!(self, "({count} room{s})");
            return true;
        }
        false
    }
}

// ---------------------------------------------------------------------------
// Helpers

/// Characters that must not reach a terminal as they are (the rule is
/// [`crate::text`]'s).
fn is_unsafe_char(c: char) -> bool {
    !text::is_shown_as_is(c)
}

/// How many characters `args` writes.
fn fmt_len(args: fmt::Arguments<'_>) -> usize {
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
