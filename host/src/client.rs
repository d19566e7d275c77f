//! `roomcast client`: the terminal chat client.
//!
//! One `polling` loop drives the [`Client`] machine of `roomcast-core` over
//! the directory server's TCP connection, the chat room's multicast socket
//! and the terminal (whose reading thread wakes the loop with
//! `Poller::notify`). After every input the loop drains the machine's
//! outputs and carries them out; see `net.rs` for the sockets,
//! `terminal.rs` for line editing, and `keys.rs` and `passphrase.rs` for
//! the keys of private rooms.
//!
//! # Input while the client waits
//!
//! The machine takes the user's next line only when it is ready for one
//! (see `roomcast-core`'s client docs), so commands run in order. But
//! leaving never waits for a server: once the client has waited
//! [`READ_AHEAD_AFTER`], the loop asks the terminal for input anyway (with
//! the prompt of the mode it is in). Ctrl-D, Ctrl-], Ctrl-C and a `quit`
//! or `exit` line then act at once; other lines wait their turn, at most
//! [`TYPE_AHEAD`] of them. A responsive server answers well within
//! [`READ_AHEAD_AFTER`], so then nothing is read early, and a script's
//! lines run one after the other as before. The end of piped input waits
//! its turn like a line (the script's last replies are shown first).

mod chatlog;
mod config;
mod keys;
mod net;
pub(crate) mod passphrase;
mod private_rooms;
mod style;
mod terminal;
mod tokens;

use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::mpsc::{self, Receiver, Sender};
use std::thread;
use std::time::Duration;

use polling::{Event, Events, Poller};
use roomcast_core::chat::Channel;
use roomcast_core::limits::MAX_KNOWN_SERVERS;
use roomcast_core::{
    ChatName, Client, ClientConfig, ConnectFailure, Instant, KeyFailure, KnownServer, Message,
    Mode, Output, Prompt, ServerAddr, parse_server_addr,
};
use socket2::Socket;

use self::chatlog::ChatLog;
use self::config::ColorChoice;
use self::net::{Group, Iface};
use self::style::Style;
use self::terminal::{Input, Terminal};
use crate::DEFAULT_PORT;
use crate::discovery::{self, Found};

/// Options of `roomcast client`.
#[derive(Debug, clap::Args)]
#[command(after_help = config::help_text())]
pub struct ClientArgs {
    /// The directory server that `connect` (with no argument) and `chat`
    /// use, as HOST or HOST:PORT [default: the one found on the LAN over
    /// mDNS, else localhost]
    #[arg(long, value_name = "HOST[:PORT]")]
    server: Option<String>,
    /// Your chat name: 1-32 printable characters [default: your login name]
    #[arg(long, value_name = "NAME")]
    name: Option<String>,
    /// The network interface to chat on, by name (eth0) or by one of its
    /// addresses (IPv4 or IPv6): multicast is joined and sent there
    /// [default: the system's choice].
    #[arg(long, value_name = "NAME|ADDR")]
    iface: Option<Iface>,
    /// How many router hops chat messages may cross (multicast TTL); 1 keeps
    /// them on the local network.
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(u32).range(0..=255))]
    ttl: u32,
    /// When to colour the screen: senders' names by a stable colour each,
    /// roomcast's notices in a room dim. auto: when stdout is a terminal
    /// and NO_COLOR is unset or empty [default: auto]
    #[arg(long, value_name = "WHEN")]
    color: Option<ColorChoice>,
    /// How to show the time each message arrived, strftime-like (%H:%M,
    /// %H:%M:%S, %a %H:%M...); "" or none hides it [default: %H:%M when
    /// stdout is a terminal, else none]
    #[arg(long, value_name = "FORMAT")]
    time_format: Option<String>,
    /// Append each room's messages to DIR/ROOM/YYYY-MM-DD.log (one file per
    /// room and day; folders 0700, files 0600)
    #[arg(long, value_name = "DIR", value_hint = clap::ValueHint::DirPath)]
    log_dir: Option<PathBuf>,
    /// Read the passphrase of private rooms from this file (its bytes, with
    /// one trailing line ending removed; a regular file; the passphrase at
    /// most 1024 bytes, plus that line ending). Without it, the ROOMCAST_PASSPHRASE environment variable
    /// gives it, else it is asked at the terminal without echo.
    #[arg(long, value_name = "PATH", value_hint = clap::ValueHint::FilePath)]
    passphrase_file: Option<PathBuf>,
    /// Read settings from this file instead of the usual one (see below)
    #[arg(long, value_name = "PATH", value_hint = clap::ValueHint::FilePath)]
    config: Option<PathBuf>,
}

const KEY_TCP: usize = 1;
const KEY_UDP: usize = 2;
/// The room's control port (the room protocol's frames).
const KEY_CONTROL: usize = 3;

/// The most chat datagrams taken in one turn of the event loop, between two
/// looks at the user's input.
const DATAGRAMS_PER_TURN: usize = 32;

/// How long the client waits for a server before it reads the user's input
/// anyway, so that Ctrl-D, Ctrl-] and `quit` act at once; see the module
/// docs.
const READ_AHEAD_AFTER: Duration = Duration::from_millis(500);

/// The most lines read ahead while the client waits. In a terminal, a line
/// past these is refused with a message (and input is still read, so that
/// leaving works); from a pipe, reading pauses until the client catches up.
const TYPE_AHEAD: usize = 8;

/// Runs the client until the user quits.
pub fn run(args: ClientArgs) -> Result<(), String> {
    let file = config::load(args.config.as_deref())?;
    // Each option overrides its setting in the file; the second of the pair
    // names where the value came from, for errors.
    let pick =
        |arg: &Option<String>, set: &Option<String>, option: &str, key: &str| match (arg, set) {
            (Some(v), _) => Some((v.clone(), format!("{option} {v:?}"))),
            (None, Some(v)) => Some((v.clone(), file.describe(key, v))),
            (None, None) => None,
        };
    let style = screen_style(&args, &file)?;
    let name = match pick(&args.name, &file.name, "--name", "name") {
        Some((name, what)) => ChatName::new(&name).map_err(|e| format!("{what}: {e}"))?,
        None => default_name(),
    };
    let (server, discovered) = match pick(&args.server, &file.server, "--server", "server") {
        Some((text, what)) => (
            parse_server_addr(&text, DEFAULT_PORT).map_err(|e| format!("{what}: {e}"))?,
            Vec::new(),
        ),
        None => find_servers(),
    };
    let iface = args.iface.or(file.iface);
    let chatlog = args
        .log_dir
        .as_deref()
        .map(config::expand_home)
        .or(file.log_dir.clone())
        .map(ChatLog::new);
    let poller = Arc::new(Poller::new().map_err(|e| format!("cannot start: {e}"))?);
    let terminal = Terminal::start(poller.clone(), style.colour)
        .map_err(|e| format!("cannot use the terminal: {e}"))?;
    let wake = poller.clone();
    let signals = crate::platform::client_signals(move || {
        let _ = wake.notify();
    })
    .map_err(|e| format!("cannot watch signals: {e}"))?;
    let start = std::time::Instant::now();
    let mut config = ClientConfig::new(server, DEFAULT_PORT, name);
    config.known_servers = known_servers(&discovered);
    config.passphrase_source = passphrase::source_name(args.passphrase_file.as_deref());
    // The room protocol's member ids and timer seeds come from here.
    config.random_seed =
        Some(getrandom::u64().map_err(|e| format!("cannot read random bytes: {e}"))?);
    let client = Client::new(config, Instant::ZERO);
    let (resolved_tx, resolved) = mpsc::channel();
    let (derived_tx, derived) = keys::channel();
    let mut host = Host {
        passphrase_file: args.passphrase_file.clone(),
        signals,
        key_job: None,
        key_seq: 0,
        derived_tx,
        derived,
        tokens: tokens::Tokens::new(),
        private_rooms: private_rooms::PrivateRooms::new(),
        client,
        poller,
        start,
        terminal,
        tcp: Tcp::None,
        group: None,
        iface,
        ttl: args.ttl,
        style,
        chatlog,
        prompt: Prompt::Main,
        awaiting_line: false,
        drop_next_line: false,
        held: false,
        held_told: false,
        held_fresh: false,
        history: Vec::new(),
        typed: VecDeque::new(),
        busy_since: None,
        resolved_tx,
        resolved,
        attempt: 0,
        exit: false,
        deferred: Vec::new(),
        buf: vec![0; 64 * 1024],
    };
    let result = host.run();
    host.shutdown();
    host.terminal.finish();
    result
}

/// How the screen looks, from the options and the config file: colour
/// per `--color` (auto: stdout a terminal and NO_COLOR unset or empty), the
/// time per `--time-format` (by default shown in a terminal only, so piped
/// output stays the datagrams as they came).
fn screen_style(args: &ClientArgs, file: &config::FileConfig) -> Result<Style, String> {
    use std::io::IsTerminal as _;
    let tty = io::stdout().is_terminal();
    let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
    let colour = match args.color.or(file.color).unwrap_or(ColorChoice::Auto) {
        ColorChoice::Always => true,
        ColorChoice::Never => false,
        ColorChoice::Auto => tty && !no_color,
    };
    let time_format = match (&args.time_format, &file.time_format) {
        (Some(format), _) => {
            Style::time_format(format).map_err(|e| format!("--time-format {format:?}: {e}"))?
        }
        (None, Some(format)) => Style::time_format(format)
            .map_err(|e| format!("{}: {e}", file.describe("time-format", format)))?,
        (None, None) if tty => Some(style::DEFAULT_TIME_FORMAT.to_string()),
        (None, None) => None,
    };
    Ok(Style {
        colour,
        time_format,
    })
}

/// How long a client started without `--server` listens for directory
/// servers announcing themselves on the LAN.
const DISCOVERY_WAIT: Duration = Duration::from_millis(1500);

/// Looks for directory servers on the LAN and says what it found: the one
/// server becomes the default for `connect`; several are listed for
/// `connect NAME`; with none, the default stays `localhost`.
fn find_servers() -> (ServerAddr, Vec<Found>) {
    let fallback = format!("localhost:{DEFAULT_PORT}");
    let fallback = parse_server_addr(&fallback, DEFAULT_PORT).expect("a valid default address");
    println!("Looking for directory servers on the LAN...");
    let found = match discovery::browse(DISCOVERY_WAIT) {
        Ok(found) => found,
        Err(e) => {
            println!("{e}. 'connect' tries {fallback}; give another with --server HOST[:PORT].");
            return (fallback, Vec::new());
        }
    };
    match &found[..] {
        [] => {
            println!(
                "No directory server answered. 'connect' tries {fallback}; start a server with \
                 'roomcast server', or give its address with --server HOST[:PORT]."
            );
            (fallback, found)
        }
        [one] => {
            let addr = one.address().expect("found servers have addresses");
            let server = parse_server_addr(&SocketAddr::new(addr, one.port).to_string(), one.port)
                .unwrap_or(fallback);
            println!(
                "Found the directory server {} at {server}; 'connect' uses it.",
                one.name
            );
            (server, found)
        }
        many => {
            println!("Found {} directory servers:", many.len());
            for f in many {
                let addr = f.address().expect("found servers have addresses");
                println!("  {:<24} {}", f.name, SocketAddr::new(addr, f.port));
            }
            println!("Type 'connect NAME' to pick one.");
            (fallback, found)
        }
    }
}

/// The servers found, by name, for the client's `connect NAME` (as many as
/// it keeps: the list is sorted by name and said in full above).
fn known_servers(found: &[Found]) -> heapless::Vec<KnownServer, MAX_KNOWN_SERVERS> {
    found
        .iter()
        .filter_map(|f| {
            let addr = SocketAddr::new(f.address()?, f.port).to_string();
            Some(KnownServer {
                name: heapless::String::try_from(f.name.as_str()).ok()?,
                addr: parse_server_addr(&addr, f.port).ok()?,
            })
        })
        .take(MAX_KNOWN_SERVERS)
        .collect()
}

/// The login name, if it makes a chat name; else "guest".
fn default_name() -> ChatName {
    ["USER", "LOGNAME"]
        .iter()
        .filter_map(std::env::var_os)
        .find_map(|v| ChatName::new(&v.to_string_lossy()).ok())
        .unwrap_or_else(|| ChatName::new("guest").expect("a valid name"))
}

/// The directory server connection, as far as it got.
enum Tcp {
    None,
    /// A thread resolves the name (it could take a while).
    Resolving,
    /// Trying `socket`; `rest` are the addresses to try after it.
    Connecting {
        socket: Socket,
        rest: Vec<SocketAddr>,
    },
    Open {
        stream: TcpStream,
        /// Lines not yet written.
        out: Vec<u8>,
    },
}

/// Something that happened while carrying out outputs, to hand to the
/// machine once the drain is over (it is not re-entered mid-drain).
enum Deferred {
    Connected,
    ConnectFailed(ConnectFailure),
    ServerClosed,
    Joined,
    JoinFailed(String),
    SendFailed(String),
    /// No key for `Output::DeriveKey`, and why.
    KeyFailed(String),
    /// The user cancelled at the passphrase prompt.
    KeyCancelled,
    /// `Output::JoinGroup` not carried out, and why (`refuse_open`).
    JoinRefused(String),
}

struct Host {
    client: Client,
    poller: Arc<Poller>,
    start: std::time::Instant,
    terminal: Terminal,
    tcp: Tcp,
    group: Option<Group>,
    iface: Option<Iface>,
    ttl: u32,
    style: Style,
    chatlog: Option<ChatLog>,
    prompt: Prompt,
    /// A line was asked of the terminal and has not come yet.
    awaiting_line: bool,
    /// The line asked of the terminal is dropped when it comes: a room
    /// turned out private meanwhile (see `keys.rs`).
    drop_next_line: bool,
    /// The line asked of the terminal is a held one (`request_held`):
    /// rustyline is not editing, so messages are written at once.
    held: bool,
    /// The cursor is still at the end of the held prompt: a message
    /// written now starts a new line first.
    held_fresh: bool,
    /// The user was told to press Enter to end the held line.
    held_told: bool,
    /// Lines the client took, for the terminal's history.
    history: Vec<String>,
    /// Input that came while the machine was busy, oldest first.
    typed: VecDeque<Input>,
    /// Since when the machine has not been ready for input.
    busy_since: Option<std::time::Instant>,
    resolved_tx: Sender<(u64, io::Result<Vec<SocketAddr>>)>,
    resolved: Receiver<(u64, io::Result<Vec<SocketAddr>>)>,
    /// Counts connect attempts, so a late resolution of an abandoned one is
    /// ignored.
    attempt: u64,
    exit: bool,
    deferred: Vec<Deferred>,
    buf: Vec<u8>,
    /// The owner tokens of rooms made from this account.
    tokens: tokens::Tokens,
    /// The private rooms entered from this account.
    private_rooms: private_rooms::PrivateRooms,
    /// `--passphrase-file`.
    passphrase_file: Option<PathBuf>,
    /// SIGINT with the terminal in its usual mode (`platform::client_signals`).
    signals: Receiver<()>,
    /// The key the machine waits for, if it waits for one.
    key_job: Option<keys::KeyJob>,
    /// Numbers the key jobs.
    key_seq: u64,
    derived_tx: Sender<keys::Derived>,
    derived: Receiver<keys::Derived>,
}

impl Host {
    fn now(&self) -> Instant {
        let micros = u64::try_from(self.start.elapsed().as_micros()).unwrap_or(u64::MAX);
        Instant::from_micros(micros)
    }

    fn run(&mut self) -> Result<(), String> {
        let mut events = Events::new();
        loop {
            self.drain();
            if self.exit {
                return Ok(());
            }
            if self.feed_input() {
                continue;
            }
            self.arm().map_err(|e| format!("event loop: {e}"))?;
            let machine = self.client.poll_timeout().map(|at| {
                Duration::from_micros(at.as_micros().saturating_sub(self.now().as_micros()))
            });
            let timeout = match (machine, self.read_ahead_in()) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            events.clear();
            match self.poller.wait(&mut events, timeout) {
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(format!("event loop: {e}")),
            }
            let keys: Vec<(usize, bool, bool)> = events
                .iter()
                .map(|e| (e.key, e.readable, e.writable))
                .collect();
            let now = self.now();
            self.client.handle_wall_clock(now, keys::wall_ms());
            for (key, readable, writable) in keys {
                match key {
                    KEY_TCP => self.on_tcp(readable, writable),
                    KEY_UDP => self.on_udp(Channel::Plain),
                    KEY_CONTROL => self.on_udp(Channel::Control),
                    _ => {}
                }
            }
            self.on_resolved();
            self.on_derived();
            self.on_sigint();
            if self
                .client
                .poll_timeout()
                .is_some_and(|at| self.now() >= at)
            {
                let now = self.now();
                self.client.handle_timeout(now);
            }
        }
    }

    /// Ctrl-C while no line is read (the terminal in its usual mode: a
    /// room's key being derived, or a server waited for): in a terminal,
    /// as Ctrl-C at the prompt (it cancels a `chat` under way); otherwise
    /// the process ends, as by default.
    fn on_sigint(&mut self) {
        while self.signals.try_recv().is_ok() {
            if !self.terminal.is_tty() {
                self.shutdown();
                crate::platform::die_of_sigint();
            }
            let now = self.now();
            self.client.handle_interrupt(now);
            self.drain();
        }
    }

    /// Carries out every output the machine has, then hands it what
    /// happened meanwhile, until both are empty.
    fn drain(&mut self) {
        loop {
            while let Some(output) = self.client.poll_output() {
                self.carry_out(output);
            }
            if self.deferred.is_empty() {
                return;
            }
            let now = self.now();
            for deferred in std::mem::take(&mut self.deferred) {
                match deferred {
                    Deferred::Connected => self.client.handle_connected(now),
                    Deferred::ConnectFailed(why) => self.client.handle_connect_failed(now, why),
                    Deferred::ServerClosed => self.client.handle_server_closed(now),
                    Deferred::Joined => self.client.handle_joined(now),
                    Deferred::JoinFailed(e) => self.client.handle_join_failed(now, &e),
                    Deferred::SendFailed(e) => self.client.handle_send_failed(now, &e),
                    Deferred::KeyFailed(e) => {
                        self.client
                            .handle_room_secret(now, 0, Err(KeyFailure::Refused(&e)))
                    }
                    Deferred::JoinRefused(why) => self.client.handle_join_refused(now, &why),
                    Deferred::KeyCancelled => {
                        self.client
                            .handle_room_secret(now, 0, Err(KeyFailure::Cancelled))
                    }
                }
            }
        }
    }

    fn carry_out(&mut self, output: Output) {
        match output {
            Output::Connect { server } => self.resolve(server),
            Output::SendLine(line) => {
                if let Tcp::Open { out, .. } = &mut self.tcp {
                    out.extend_from_slice(line.as_bytes());
                    self.flush_tcp();
                }
            }
            Output::Close => self.close_tcp(),
            Output::JoinGroup { group, port } => {
                if let Some(why) = self.refuse_open() {
                    self.deferred.push(Deferred::JoinRefused(why));
                    return;
                }
                self.remember_private();
                self.leave_group();
                match Group::join(group, port, self.iface.as_ref(), self.ttl) {
                    Ok(joined) => {
                        // SAFETY: the socket is deleted from the poller before
                        // it is dropped (`leave_group`).
                        let added =
                            unsafe { self.poller.add(&joined.recv, Event::readable(KEY_UDP)) }
                                .and_then(|()| match &joined.control {
                                    // SAFETY: as above.
                                    Some(control) => unsafe {
                                        self.poller.add(control, Event::readable(KEY_CONTROL))
                                    },
                                    None => Ok(()),
                                });
                        // Kept either way, so that leaving deletes what was added.
                        self.group = Some(joined);
                        match added {
                            Ok(()) => self.deferred.push(Deferred::Joined),
                            Err(e) => {
                                self.leave_group();
                                self.deferred.push(Deferred::JoinFailed(e.to_string()));
                            }
                        }
                    }
                    Err(e) => self.deferred.push(Deferred::JoinFailed(format!(
                        "{e}; {}",
                        net::multicast_interfaces()
                    ))),
                }
            }
            Output::LeaveGroup => self.leave_group(),
            Output::SendDatagram(payload) => {
                if let Some(group) = &self.group {
                    match group.send(&payload) {
                        Ok(()) => self.log(&jiff::Zoned::now(), &payload, false),
                        Err(e) => self.deferred.push(Deferred::SendFailed(e.to_string())),
                    }
                }
            }
            Output::Sent(payload) => self.log(&jiff::Zoned::now(), &payload, false),
            Output::SendControl(frame) => {
                if let Some(group) = &self.group {
                    // A lost frame is repaired by the protocol; an error
                    // here is not the user's to handle.
                    let _ = group.send_control(&frame);
                }
            }
            Output::Show(Message::History { payload, age }) => {
                let sent = jiff::Zoned::now()
                    .checked_sub(jiff::SignedDuration::try_from(age).unwrap_or_default())
                    .unwrap_or_else(|_| jiff::Zoned::now());
                let chat = Message::Chat {
                    payload,
                    truncated: false,
                };
                let text = format!("[history {}] {chat}", sent.strftime("%H:%M"));
                let text = self.style.notice(&text, true);
                let editing = self.editing();
                self.terminal.print(&text, editing, true);
            }
            Output::Show(Message::Chat { payload, truncated }) => {
                let now = jiff::Zoned::now();
                self.log(&now, &payload, truncated);
                let text = self.style.chat(&now, &payload, truncated);
                let editing = self.editing();
                self.terminal.print(&text, editing, true);
            }
            Output::Show(message) => {
                let in_room = self.prompt.mode() == Mode::Chat || self.client.mode() == Mode::Chat;
                let text = self.style.notice(&message.to_string(), in_room);
                let editing = self.editing();
                self.terminal.print(&text, editing, false);
            }
            Output::Prompt(prompt) => self.prompt = prompt,
            Output::Exit => self.exit = true,
            Output::DeriveKey {
                room,
                salt,
                confirm,
            } => self.derive_key(room, salt, confirm),
            Output::PrivateRoom { server, room } => {
                if let Err(e) = self.private_rooms.remember(server.as_str(), &room) {
                    let text = format!(
                        "Could not remember that room '{}' is private ({e}); this client will \
                         not notice if a directory server calls it open later.",
                        room.name
                    );
                    let text = self.style.notice(&text, false);
                    let editing = self.editing();
                    self.terminal.print(&text, editing, false);
                }
            }
            Output::OwnerToken {
                server,
                room,
                token,
            } => {
                if let Err(e) = self.tokens.remember(&server, &room, &token) {
                    let text = format!(
                        "Could not keep the owner token of room {room} ({e}). To delete the \
                         room from another connection, write it down: deleteroom {room} {token}"
                    );
                    let in_room = self.client.mode() == Mode::Chat;
                    let text = self.style.notice(&text, in_room);
                    let editing = self.editing();
                    self.terminal.print(&text, editing, false);
                }
            }
        }
    }

    /// Appends a chat payload to the log of the room we are in, if logging;
    /// the first error is said on the screen.
    fn log(&mut self, now: &jiff::Zoned, payload: &[u8], truncated: bool) {
        let (Some(log), Prompt::Chat { room, .. }) = (&mut self.chatlog, &self.prompt) else {
            return;
        };
        if let Some(error) = log.write(room.as_str(), now, payload, truncated) {
            let text = self.style.notice(&error, true);
            let editing = self.editing();
            self.terminal.print(&text, editing, false);
        }
    }

    /// Hands the user's input to the machine when it can take it, and asks
    /// for more input when it is ready for a line or has waited
    /// [`READ_AHEAD_AFTER`]. True if input was fed.
    fn feed_input(&mut self) -> bool {
        if self.client.ready_for_input() {
            self.busy_since = None;
        } else if self.busy_since.is_none() {
            self.busy_since = Some(std::time::Instant::now());
        }
        let tty = self.terminal.is_tty();
        while tty || self.typed.len() < TYPE_AHEAD {
            let Some(input) = self.terminal.try_input() else {
                break;
            };
            if let Input::Secret(result) = input {
                self.on_secret(result);
                return true;
            }
            self.awaiting_line = false;
            let input = match input {
                Input::Held(result) => {
                    self.drop_next_line = false;
                    self.held = false;
                    match self.on_held(result) {
                        Some(input) => input,
                        None => return true,
                    }
                }
                Input::Line(_) if std::mem::take(&mut self.drop_next_line) => {
                    self.say_dropped(1);
                    return true;
                }
                input => {
                    self.drop_next_line = false;
                    input
                }
            };
            if self.typed.len() >= TYPE_AHEAD && !self.acts_at_once(&input) {
                // The machine refuses it, saying so.
                self.hand_over(input);
                return true;
            }
            self.typed.push_back(input);
        }
        // Leaving goes first, whatever waits before it.
        if let Some(i) = self.typed.iter().position(|input| self.acts_at_once(input))
            && let Some(input) = self.typed.remove(i)
        {
            self.hand_over(input);
            return true;
        }
        // Only then the passphrase: never asked of a user who just left.
        self.ask_passphrase();
        if self.client.ready_for_input()
            && let Some(input) = self.typed.pop_front()
        {
            self.hand_over(input);
            return true;
        }
        if self.held && !self.held_told && self.client.room_pending().is_none() {
            // The lookup is over; the line held is still being read.
            self.held_told = true;
            let text = self.style.notice("(Press Enter to go on.)", false);
            self.editing();
            self.terminal.print(&text, false, false);
        }
        let room = tty || self.typed.len() < TYPE_AHEAD;
        let wanted = if self.client.ready_for_input() {
            self.typed.is_empty()
        } else {
            self.read_ahead_in() == Some(Duration::ZERO)
        };
        if !self.awaiting_line && room && wanted && !self.client.has_exited() {
            match self.client.room_pending() {
                // Never an echoing prompt while a room is looked up: the
                // user might type its passphrase there (see `keys.rs`).
                Some(name) if tty && !self.client.ready_for_input() => {
                    let prompt = format!(
                        "(waiting for the directory server about room '{name}'; Ctrl-C \
                         cancels) "
                    );
                    self.terminal.request_held(&prompt);
                    self.held = true;
                    self.held_told = false;
                    self.held_fresh = true;
                }
                _ => {
                    let history = std::mem::take(&mut self.history);
                    self.terminal.request_line(&self.prompt, history);
                }
            }
            self.awaiting_line = true;
        }
        false
    }

    /// Whether rustyline is editing a line (messages then go above its
    /// prompt, through its printer).
    /// Ends the line of a held prompt first (see `held_fresh`).
    fn editing(&mut self) -> bool {
        if self.held && std::mem::take(&mut self.held_fresh) {
            self.terminal.print("", false, false);
        }
        self.awaiting_line && !self.held
    }

    /// Whether the machine takes `input` at once, ready or not.
    fn acts_at_once(&self, input: &Input) -> bool {
        match input {
            Input::Line(line) => self.client.acts_at_once(line),
            Input::LeaveChat | Input::Interrupt | Input::Eof => true,
            Input::Closed | Input::Secret(_) | Input::Held(_) => false,
        }
    }

    fn hand_over(&mut self, input: Input) {
        let now = self.now();
        match input {
            Input::Line(line) => {
                // `deleteroom <name>` of a room this account made: with its
                // token, kept when `makeroom` answered it.
                let completed = (self.client.mode() != Mode::Chat)
                    .then(|| self.client.connected_server())
                    .flatten()
                    .zip(std::str::from_utf8(&line).ok())
                    .and_then(|(server, text)| {
                        tokens::complete_deleteroom(text, server.as_str(), &self.tokens)
                    });
                let line = completed.map_or(line, String::into_bytes);
                if self.terminal.is_tty()
                    && let Ok(text) = std::str::from_utf8(&line)
                    && !text.trim().is_empty()
                {
                    self.history.push(text.to_string());
                }
                self.client.handle_user_line(now, &line)
            }
            Input::LeaveChat => self.client.handle_leave_chat(now),
            Input::Interrupt => self.client.handle_interrupt(now),
            Input::Eof | Input::Closed => self.client.handle_end_of_input(now),
            // Handled as they come (`feed_input`).
            Input::Secret(_) | Input::Held(_) => {}
        }
    }

    /// How long until input is read ahead (zero: now), if the machine is
    /// busy and no line is asked for yet.
    fn read_ahead_in(&self) -> Option<Duration> {
        let full = !self.terminal.is_tty() && self.typed.len() >= TYPE_AHEAD;
        if self.awaiting_line || full || self.client.ready_for_input() || self.key_busy() {
            return None;
        }
        let since = self.busy_since?;
        Some(READ_AHEAD_AFTER.saturating_sub(since.elapsed()))
    }

    /// Re-arms the oneshot registrations with what each source waits for.
    fn arm(&self) -> io::Result<()> {
        match &self.tcp {
            Tcp::Connecting { socket, .. } => {
                self.poller.modify(socket, Event::writable(KEY_TCP))?
            }
            Tcp::Open { stream, out } => {
                let event = if out.is_empty() {
                    Event::readable(KEY_TCP)
                } else {
                    Event::all(KEY_TCP)
                };
                self.poller.modify(stream, event)?;
            }
            Tcp::None | Tcp::Resolving => {}
        }
        if let Some(group) = &self.group {
            self.poller.modify(&group.recv, Event::readable(KEY_UDP))?;
            if let Some(control) = &group.control {
                self.poller.modify(control, Event::readable(KEY_CONTROL))?;
            }
        }
        Ok(())
    }

    // ---- the directory server connection ----

    fn resolve(&mut self, server: ServerAddr) {
        self.close_tcp();
        self.attempt += 1;
        let attempt = self.attempt;
        let tx = self.resolved_tx.clone();
        let poller = self.poller.clone();
        let spawned = thread::Builder::new()
            .name("resolve".into())
            .spawn(move || {
                let result = server
                    .as_str()
                    .to_socket_addrs()
                    .map(|addrs| addrs.collect());
                let _ = tx.send((attempt, result));
                let _ = poller.notify();
            });
        match spawned {
            Ok(_) => self.tcp = Tcp::Resolving,
            Err(_) => self
                .deferred
                .push(Deferred::ConnectFailed(ConnectFailure::Other)),
        }
    }

    fn on_resolved(&mut self) {
        while let Ok((attempt, result)) = self.resolved.try_recv() {
            if attempt != self.attempt || !matches!(self.tcp, Tcp::Resolving) {
                continue;
            }
            match result {
                Ok(addrs) if !addrs.is_empty() => self.try_connect(addrs, None),
                _ => self.fail_connect(ConnectFailure::Resolve),
            }
        }
    }

    /// Tries the first of `addrs` that starts; on none, reports `last`.
    fn try_connect(&mut self, mut addrs: Vec<SocketAddr>, mut last: Option<io::Error>) {
        addrs.reverse();
        while let Some(addr) = addrs.pop() {
            match net::start_connect(addr) {
                Ok(socket) => {
                    // SAFETY: deleted from the poller before it is dropped
                    // (`close_tcp`, `on_tcp`).
                    if let Err(e) = unsafe { self.poller.add(&socket, Event::writable(KEY_TCP)) } {
                        last = Some(e);
                        continue;
                    }
                    addrs.reverse();
                    self.tcp = Tcp::Connecting {
                        socket,
                        rest: addrs,
                    };
                    return;
                }
                Err(e) => last = Some(e),
            }
        }
        let why = last
            .as_ref()
            .map_or(ConnectFailure::Other, net::connect_failure);
        self.fail_connect(why);
    }

    fn fail_connect(&mut self, why: ConnectFailure) {
        self.tcp = Tcp::None;
        self.deferred.push(Deferred::ConnectFailed(why));
        self.drain();
    }

    fn on_tcp(&mut self, readable: bool, writable: bool) {
        match std::mem::replace(&mut self.tcp, Tcp::None) {
            Tcp::Connecting { socket, rest } => {
                let _ = self.poller.delete(&socket);
                match net::finish_connect(socket) {
                    Ok(stream) => {
                        // SAFETY: deleted before dropped (`close_tcp`).
                        match unsafe { self.poller.add(&stream, Event::readable(KEY_TCP)) } {
                            Ok(()) => {
                                self.tcp = Tcp::Open {
                                    stream,
                                    out: Vec::new(),
                                };
                                self.deferred.push(Deferred::Connected);
                            }
                            Err(e) => self.try_connect(rest, Some(e)),
                        }
                    }
                    Err(e) => self.try_connect(rest, Some(e)),
                }
                self.drain();
            }
            open @ Tcp::Open { .. } => {
                self.tcp = open;
                if writable {
                    self.flush_tcp();
                    self.drain();
                }
                if readable {
                    self.read_tcp();
                }
            }
            other => self.tcp = other,
        }
    }

    /// Reads what the server sent, feeding it to the machine as it has room.
    fn read_tcp(&mut self) {
        loop {
            let Tcp::Open { stream, .. } = &mut self.tcp else {
                return;
            };
            let room = self.client.recv_capacity().min(self.buf.len());
            if room == 0 {
                // Cannot happen after a drain; stop rather than spin.
                return;
            }
            let n = match stream.read(&mut self.buf[..room]) {
                Ok(0) => {
                    self.deferred.push(Deferred::ServerClosed);
                    self.drain();
                    return;
                }
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => {
                    self.deferred.push(Deferred::ServerClosed);
                    self.drain();
                    return;
                }
            };
            let now = self.now();
            let mut taken = 0;
            while taken < n {
                taken += self.client.handle_server_bytes(now, &self.buf[taken..n]);
                self.drain();
                if !matches!(self.tcp, Tcp::Open { .. }) {
                    return;
                }
            }
        }
    }

    /// Writes what it can of the pending lines.
    fn flush_tcp(&mut self) {
        let Tcp::Open { stream, out } = &mut self.tcp else {
            return;
        };
        while !out.is_empty() {
            match stream.write(out) {
                Ok(0) => break,
                Ok(n) => {
                    out.drain(..n);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => {
                    out.clear();
                    self.deferred.push(Deferred::ServerClosed);
                    break;
                }
            }
        }
    }

    fn close_tcp(&mut self) {
        match std::mem::replace(&mut self.tcp, Tcp::None) {
            Tcp::Connecting { socket, .. } => {
                let _ = self.poller.delete(&socket);
            }
            Tcp::Open { stream, mut out } => {
                // A last line (if any) goes out before the close, best effort.
                let _ = stream.set_nonblocking(false);
                let _ = stream.set_write_timeout(Some(Duration::from_millis(200)));
                let mut s = &stream;
                let _ = s.write_all(&out);
                out.clear();
                let _ = self.poller.delete(&stream);
            }
            Tcp::None | Tcp::Resolving => {}
        }
    }

    // ---- the chat room ----

    /// Takes at most [`DATAGRAMS_PER_TURN`] datagrams, then goes back to
    /// the loop (which sees the socket still readable at once): a flood
    /// never holds up the user's input, the server or the timers. What the
    /// client cannot take in time the kernel drops when the socket's
    /// receive buffer is full; memory stays bounded.
    fn on_udp(&mut self, channel: Channel) {
        for _ in 0..DATAGRAMS_PER_TURN {
            let Some(group) = &self.group else {
                return;
            };
            let got = match channel {
                Channel::Plain => group.recv_from(&mut self.buf),
                Channel::Control => group.recv_control(&mut self.buf),
            };
            match got {
                Ok((n, from)) => {
                    let now = self.now();
                    self.client
                        .handle_datagram_from(now, channel, from, &self.buf[..n]);
                    self.drain();
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return,
            }
        }
    }

    fn leave_group(&mut self) {
        if let Some(group) = self.group.take() {
            let _ = self.poller.delete(&group.recv);
            if let Some(control) = &group.control {
                let _ = self.poller.delete(control);
            }
            group.leave();
        }
    }

    fn shutdown(&mut self) {
        self.leave_group();
        self.close_tcp();
    }
}
