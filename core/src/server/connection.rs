//! One client connection: its line framing, its replies and its timers.

use core::fmt::{self, Write as _};
use core::net::IpAddr;

use crate::error::ErrorCode;
use crate::limits::{CONN_RECV_BUF, CONN_SEND_BUF, MAX_FULL_ROOM_LINE, MAX_LINE, MAX_LISTING_LINE};
use crate::parse::{ParseError, command_kind, parse_command};
use crate::privacy::Salt;
use crate::time::Instant;
use crate::wire::{Command, CommandKind, LineBuf, RoomKind, RoomName, full_room_line, room_line};

use super::quota::{Refusal, TokenBucket};
use super::shared::{Change, Staging};
use super::{ConnId, Event, PROTOCOL_VERSION, Resolved, Server, ServerConfig, Timeout, Truncating};

/// A multi-line reply still being produced, a line at a time.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Listing {
    /// `getdir` (or `getdir full`): the next room is the first after
    /// `after`.
    Rooms {
        after: Option<RoomName>,
        /// Where the room after `after` was: checked, then used, so the
        /// walk needs no binary search per line while nothing changes.
        next: usize,
        /// `getdir full`: each line ends with the room's kind.
        full: bool,
    },
    /// `help`: the next line is the one for `CommandKind::ALL[next]`.
    Help { next: usize },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Open,
    /// Send what is queued, then close (after `bye` or a timeout).
    Closing,
    /// Close now, dropping what is queued (the peer stopped reading).
    Aborted,
}

/// One client connection to the directory server.
///
/// Memory is fixed: [`CONN_RECV_BUF`] bytes in, [`CONN_SEND_BUF`] bytes out,
/// a cursor for a listing in progress, at most one change waiting to be
/// stored, and the salt `salt` last answered (one at a time: a second
/// `salt` replaces it; a private `makeroom` that succeeds uses it up).
#[derive(Clone, Debug)]
pub struct Connection {
    id: ConnId,
    config: ServerConfig,
    recv: heapless::Vec<u8, CONN_RECV_BUF>,
    /// How much of `recv` is known to hold no LF.
    scanned: usize,
    /// Inside a line that was too long: drop bytes up to its LF.
    discarding: bool,
    send: heapless::Vec<u8, CONN_SEND_BUF>,
    listing: Option<Listing>,
    state: State,
    last_recv: Instant,
    /// When the unfinished newest line began, counted only while the
    /// connection is willing to read (see `update_partial`).
    partial_since: Option<Instant>,
    /// When the peer last took bytes while we had some waiting for it.
    blocked_since: Option<Instant>,
    /// The latest `now` passed in: time that goes backwards is clamped to it.
    now: Instant,
    /// This connection's change that waits to be stored; nothing after it
    /// is answered until it is resolved.
    awaiting: Option<(u64, Change)>,
    /// The next command's answer depends on other connections' changes
    /// that wait to be stored.
    stalled: bool,
    /// Closing after a timeout: dropped at this instant whatever happens,
    /// so a peer reading a byte at a time cannot keep it open.
    close_by: Option<Instant>,
    /// The peer's address, for the rooms-per-client quota; `None`: no quota.
    peer: Option<IpAddr>,
    /// Commands it may still send now (see [`ServerConfig::commands_per_second`]).
    bucket: TokenBucket,
    /// The line being answered was charged to `bucket` already.
    paid: bool,
    /// The salt `salt` last answered, until a private `makeroom` with it
    /// succeeds.
    salt: Option<Salt>,
}

impl Connection {
    /// A new connection with the id the host gave it, and a copy of the
    /// server's configuration; its greeting is queued.
    ///
    /// Without a peer address the rooms-per-client quota does not apply;
    /// a host passes it with [`with_peer`](Self::with_peer).
    pub fn new(now: Instant, id: ConnId, config: &ServerConfig) -> Self {
        Self::make(now, id, config, None)
    }

    /// A new connection from `peer`: its rooms count toward that address's
    /// quota ([`ServerConfig::max_rooms_per_client`]).
    pub fn with_peer(now: Instant, id: ConnId, config: &ServerConfig, peer: IpAddr) -> Self {
        Self::make(now, id, config, Some(peer))
    }

    fn make(now: Instant, id: ConnId, config: &ServerConfig, peer: Option<IpAddr>) -> Self {
        let mut conn = Self {
            id,
            config: *config,
            recv: heapless::Vec::new(),
            scanned: 0,
            discarding: false,
            send: heapless::Vec::new(),
            listing: None,
            state: State::Open,
            last_recv: now,
            partial_since: None,
            blocked_since: None,
            now,
            awaiting: None,
            stalled: false,
            close_by: None,
            peer,
            bucket: TokenBucket::full(now, config.command_burst),
            paid: false,
            salt: None,
        };
        conn.push_line(
            now,
            format_args!(
                "OK {PROTOCOL_VERSION} roomcast directory server ready; \
                 type 'help' for the commands"
            ),
        );
        conn
    }

    /// The id the host gave this connection.
    pub fn id(&self) -> ConnId {
        self.id
    }

    /// The most bytes [`handle_bytes`](Self::handle_bytes) will take now.
    /// Zero means: stop reading from this peer until output drains.
    pub fn recv_capacity(&self) -> usize {
        match self.state {
            State::Open => CONN_RECV_BUF - self.recv.len(),
            State::Closing | State::Aborted => 0,
        }
    }

    /// Takes bytes the peer sent and answers every complete line that there
    /// is room to answer. Returns how many bytes were taken: all of them if
    /// `data.len() <= self.recv_capacity()`.
    pub fn handle_bytes(&mut self, now: Instant, server: &mut Server, data: &[u8]) -> usize {
        let now = self.clock(now);
        let mut taken = 0;
        while taken < data.len() {
            let room = self.recv_capacity().min(data.len() - taken);
            if room == 0 {
                break;
            }
            // `room` fits by construction.
            let _ = self.recv.extend_from_slice(&data[taken..taken + room]);
            taken += room;
            self.process(now, server);
        }
        // Bytes offered but not taken (while closing, say) are not input.
        if taken > 0 {
            self.last_recv = now;
        }
        if data[..taken].contains(&b'\n') {
            // A line ended: the partial-line timer restarts for the next one.
            self.partial_since = None;
        }
        self.update_partial(now);
        taken
    }

    /// The bytes ready to go to the peer (empty if none).
    #[must_use]
    pub fn poll_transmit(&self) -> &[u8] {
        match self.state {
            State::Aborted => &[],
            State::Open | State::Closing => &self.send,
        }
    }

    /// Whether the next reply waits for changes to be stored or undone:
    /// this connection's own (see [`handle_resolved`](Self::handle_resolved))
    /// or others' (see [`handle_wake`](Self::handle_wake)).
    pub fn is_waiting(&self) -> bool {
        self.awaiting.is_some() || self.stalled
    }

    /// A change was stored or undone ([`Server::poll_resolved`]); if it is
    /// this connection's, its reply is queued and the lines behind it are
    /// answered. Anything else is ignored.
    pub fn handle_resolved(&mut self, now: Instant, server: &mut Server, resolved: Resolved) {
        let now = self.clock(now);
        let Some((seq, change)) = self.awaiting.take() else {
            return;
        };
        if resolved.conn != self.id || resolved.seq != seq {
            self.awaiting = Some((seq, change));
            return;
        }
        // The room for this line was there when the command was taken, and
        // nothing was queued since.
        let error = self.reply_change(now, &change, resolved.stored);
        server.emit(Event::Answered {
            conn: self.id,
            command: Some(change.kind()),
            room: Some(change.room().name.clone()),
            error,
        });
        self.process(now, server);
        self.update_partial(now);
    }

    /// Changes were stored or undone: a connection that
    /// [is waiting](Self::is_waiting) on others' changes tries its next
    /// command again. A spurious call is a no-op.
    pub fn handle_wake(&mut self, now: Instant, server: &mut Server) {
        let now = self.clock(now);
        self.process(now, server);
        self.update_partial(now);
    }

    /// The host wrote the first `n` bytes of [`poll_transmit`](Self::poll_transmit).
    /// Frees room, so waiting lines may be answered now.
    pub fn handle_sent(&mut self, now: Instant, server: &mut Server, n: usize) {
        let now = self.clock(now);
        let n = n.min(self.poll_transmit().len());
        if n > 0 {
            self.send.copy_within(n.., 0);
            self.send.truncate(self.send.len() - n);
            self.blocked_since = None;
        }
        self.process(now, server);
        self.update_partial(now);
        if !self.send.is_empty() && self.blocked_since.is_none() {
            self.blocked_since = Some(now);
        }
    }

    /// When [`handle_timeout`](Self::handle_timeout) must be called next, if
    /// ever. Calling it earlier is harmless. Never before the latest `now`
    /// passed in: a timer that ran out while the host was busy is due at once.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.next_timeout().map(|(at, _)| at.max(self.now))
    }

    /// The time to act on: `now`, or the latest time seen if `now` is earlier.
    fn clock(&mut self, now: Instant) -> Instant {
        self.now = self.now.max(now);
        self.now
    }

    fn next_timeout(&self) -> Option<(Instant, Timeout)> {
        if self.state == State::Aborted {
            return None;
        }
        if let Some(at) = self.close_by {
            return Some((at, Timeout::Send));
        }
        let config = &self.config;
        let blocked = self
            .blocked_since
            .filter(|_| !self.poll_transmit().is_empty());
        let timers = [
            self.partial_since
                .map(|t| (t + config.partial_line_timeout, Timeout::PartialLine)),
            Some((self.last_recv + config.idle_timeout, Timeout::Idle)),
            blocked.map(|t| (t + config.send_timeout, Timeout::Send)),
        ];
        timers.into_iter().flatten().min_by_key(|(at, _)| *at)
    }

    /// Time passed; closes the connection if one of its timers ran out (the
    /// server is passed in for the event that says so). A spurious call is
    /// a no-op.
    pub fn handle_timeout(&mut self, now: Instant, server: &mut Server) {
        let now = self.clock(now);
        let Some((at, which)) = self.next_timeout() else {
            return;
        };
        if now < at || self.state == State::Aborted {
            return;
        }
        server.emit(Event::TimedOut {
            conn: self.id,
            timeout: which,
        });
        match (self.state, which) {
            // Already closing: the peer had its time to read what was left.
            (State::Closing, _) | (_, Timeout::Send) => self.state = State::Aborted,
            (_, Timeout::PartialLine | Timeout::Idle) => {
                // In the middle of a listing an ERR line would read as a
                // room: the listing just stops short, and the close says why.
                let listing = self.listing.take();
                if listing.is_none() && self.send_room() >= MAX_LINE {
                    let code = ErrorCode::Timeout;
                    self.push_line(
                        now,
                        format_args!("ERR {code} closing a connection that was quiet too long"),
                    );
                }
                self.state = State::Closing;
                // The peer has `send_timeout` to read the farewell, then it
                // is dropped.
                self.partial_since = None;
                self.close_by = Some(now + self.config.send_timeout);
            }
        }
    }

    /// Whether the connection was dropped because the peer stopped reading
    /// (it [is finished](Self::is_finished) with replies unsent): close it
    /// at once, without lingering.
    pub fn is_aborted(&self) -> bool {
        self.state == State::Aborted
    }

    /// Whether the host should close the socket now: after `bye` once its
    /// reply is sent, or after a timeout.
    pub fn is_finished(&self) -> bool {
        match self.state {
            State::Open => false,
            State::Closing => self.send.is_empty(),
            State::Aborted => true,
        }
    }

    fn send_room(&self) -> usize {
        CONN_SEND_BUF - self.send.len()
    }

    /// Queues one line. Callers first check there are [`MAX_LINE`] bytes of
    /// room; a line longer than that is cut, never split or lost silently.
    fn push_line(&mut self, now: Instant, args: fmt::Arguments<'_>) {
        let mut line = Truncating(LineBuf::new());
        let _ = line.write_fmt(args);
        let mut line = line.0;
        if line.len() == MAX_LINE {
            line.pop();
        }
        let _ = line.push('\n');
        // The caller made room; if it did not, the line is dropped and the
        // peer will see a gap rather than the server panicking.
        let _ = self.send.extend_from_slice(line.as_bytes());
        if self.blocked_since.is_none() {
            self.blocked_since = Some(now);
        }
    }

    /// Starts or stops the partial-line timer. It runs while the newest
    /// line is unfinished and the connection is willing to read more of it:
    /// complete lines waiting behind unread replies are the send timer's
    /// business, and a line the server cut by not reading (its read-ahead
    /// full, because its replies are not going out) is not the peer's fault.
    /// When reading resumes, the peer gets the whole timeout again.
    fn update_partial(&mut self, now: Instant) {
        let unfinished = self.recv.last().is_some_and(|&b| b != b'\n');
        // `recv_capacity` is zero once closing: what is left is never read.
        let running = self.recv_capacity() > 0 && (self.discarding || unfinished);
        if !running {
            self.partial_since = None;
        } else if self.partial_since.is_none() {
            self.partial_since = Some(now);
        }
    }

    /// Answers lines until input runs out, output is full, or the next
    /// answer waits for changes to be stored.
    fn process(&mut self, now: Instant, server: &mut Server) {
        self.stalled = false;
        while self.state == State::Open
            && self.awaiting.is_none()
            && self.send_room() >= self.room_needed()
        {
            if self.listing.is_some() {
                self.continue_listing(now, server);
                continue;
            }
            let Some(end) = self.find_lf() else {
                self.check_overlong(now, server);
                return;
            };
            if self.discarding {
                self.discarding = false;
            } else if end >= MAX_LINE {
                self.refuse_overlong(now, server);
            } else if !self.answer(now, server, end) {
                self.stalled = true;
                return;
            }
            self.paid = false;
            self.consume(end + 1);
        }
    }

    /// Output room needed before the next line is produced: a whole
    /// [`MAX_LINE`] for a reply, but only [`MAX_LISTING_LINE`] for the next
    /// room line of a `getdir` listing (either form), so a listing fills the
    /// send buffer and goes out in fewer writes. A `help` line asks for a
    /// whole line too: `makeroom`'s is longer than `MAX_LISTING_LINE`, and
    /// a line that did not fit would be lost.
    fn room_needed(&self) -> usize {
        match self.listing {
            Some(Listing::Rooms { .. }) => MAX_LISTING_LINE,
            Some(Listing::Help { .. }) | None => MAX_LINE,
        }
    }

    fn find_lf(&mut self) -> Option<usize> {
        match self.recv[self.scanned..].iter().position(|&b| b == b'\n') {
            Some(i) => Some(self.scanned + i),
            None => {
                self.scanned = self.recv.len();
                None
            }
        }
    }

    fn consume(&mut self, n: usize) {
        self.recv.copy_within(n.., 0);
        self.recv.truncate(self.recv.len() - n);
        self.scanned = 0;
    }

    /// No LF yet: if the line is already too long, answer now and drop it.
    fn check_overlong(&mut self, now: Instant, server: &mut Server) {
        if self.discarding {
            self.recv.clear();
            self.scanned = 0;
        } else if self.recv.len() >= MAX_LINE {
            self.refuse_overlong(now, server);
            self.discarding = true;
            self.recv.clear();
            self.scanned = 0;
        }
    }

    fn refuse_overlong(&mut self, now: Instant, server: &mut Server) {
        let code = ErrorCode::LineTooLong;
        self.push_line(
            now,
            format_args!("ERR {code} line longer than {MAX_LINE} bytes; it was ignored"),
        );
        server.emit(Event::Answered {
            conn: self.id,
            command: None,
            room: None,
            error: Some(code),
        });
    }

    /// Answers the line `recv[..end]`, or returns `false` if its answer must
    /// wait for other connections' changes to be stored or undone.
    fn answer(&mut self, now: Instant, server: &mut Server, end: usize) -> bool {
        let command = match parse_command(&self.recv[..end]) {
            Ok(command) => command,
            Err(ParseError::Empty) => return true,
            Err(error) => {
                let code = error.code();
                let command = command_kind(&self.recv[..end]);
                let mut line = Truncating(LineBuf::new());
                let _ = write!(line, "ERR {code} {error}");
                // A line that is not a command costs the same as one that is.
                if self.over_rate(now) {
                    self.refuse_rate(now, server, command, None);
                    return true;
                }
                self.push_line(now, format_args!("{}", line.0));
                server.emit(Event::Answered {
                    conn: self.id,
                    command,
                    room: None,
                    error: Some(code),
                });
                return true;
            }
        };
        let (room, privacy) = match &command {
            Command::MakeRoom(room) => (Some(room.name.clone()), None),
            Command::MakePrivate(room, privacy) => (Some(room.name.clone()), Some(privacy)),
            Command::AllocPrivate(name, privacy) => (Some(name.clone()), Some(privacy)),
            Command::AllocRoom(name) | Command::DeleteRoom(name, _) | Command::GetRoom(name) => {
                (Some(name.clone()), None)
            }
            _ => (None, None),
        };
        if self.over_rate(now) {
            self.refuse_rate(now, server, Some(command.kind()), room);
            return true;
        }
        // After the parser's checks (usage, name, address, port), before
        // the quota and the directory's: the salt must be the one `salt`
        // gave this connection.
        let staging = match privacy {
            Some(privacy) if self.salt != Some(privacy.salt) => {
                Staging::Done(Err(Refusal::BadSalt))
            }
            _ => server.stage(now, self.id, self.peer, &command),
        };
        let error = match staging {
            Staging::Wait => return false,
            Staging::Held(seq, change) => {
                // Answered (and logged) once resolved.
                self.awaiting = Some((seq, change));
                return true;
            }
            Staging::Done(Ok(Some(change))) => self.reply_change(now, &change, true),
            Staging::Done(Ok(None)) => {
                self.reply_ok_query(now, server, &command);
                None
            }
            Staging::Done(Err(refusal)) => {
                let code = refusal.code();
                self.push_line(now, format_args!("ERR {code} {refusal}"));
                Some(code)
            }
        };
        server.emit(Event::Answered {
            conn: self.id,
            command: Some(command.kind()),
            room,
            error,
        });
        true
    }

    /// Whether the line being answered is over the rate quota. A line is
    /// charged once, even if its answer waits for other changes and is
    /// tried again (`paid` is cleared when it is answered).
    fn over_rate(&mut self, now: Instant) -> bool {
        if self.paid {
            return false;
        }
        let (rate, burst) = (self.config.commands_per_second, self.config.command_burst);
        self.paid = self.bucket.take(now, rate, burst);
        !self.paid
    }

    fn refuse_rate(
        &mut self,
        now: Instant,
        server: &mut Server,
        command: Option<CommandKind>,
        room: Option<RoomName>,
    ) {
        let refusal = Refusal::Rate(self.config.commands_per_second, self.config.command_burst);
        let code = refusal.code();
        self.push_line(now, format_args!("ERR {code} {refusal}"));
        server.emit(Event::Answered {
            conn: self.id,
            command,
            room,
            error: Some(code),
        });
    }

    /// Answers a change: `OK` with the room as stored, or, if it could not
    /// be stored, `ERR unavailable`. Returns the error code, if any.
    fn reply_change(&mut self, now: Instant, change: &Change, stored: bool) -> Option<ErrorCode> {
        let room = change.room();
        match (stored, change) {
            (true, Change::Made(_, _, None, token)) => {
                self.push_line(
                    now,
                    format_args!(
                        "OK created {} {} {} token={token}",
                        room.name, room.group, room.port
                    ),
                );
                None
            }
            (true, Change::Made(_, _, Some(privacy), token)) => {
                // Used up only now: a makeroom refused, or undone because
                // it could not be stored, may be sent again with it.
                if self.salt == Some(privacy.salt) {
                    self.salt = None;
                }
                self.push_line(
                    now,
                    format_args!(
                        "OK created {} {} {} token={token} private",
                        room.name, room.group, room.port
                    ),
                );
                None
            }
            (true, Change::Deleted(..)) => {
                self.push_line(now, format_args!("OK deleted {}", room.name));
                None
            }
            (false, _) => {
                let code = ErrorCode::Unavailable;
                let within = crate::time::HumanDuration(self.config.persist_timeout);
                self.push_line(
                    now,
                    format_args!(
                        "ERR {code} the change could not be stored within {within}, \
                         so it was not made; try again later"
                    ),
                );
                Some(code)
            }
        }
    }

    fn reply_ok_query(&mut self, now: Instant, server: &mut Server, command: &Command) {
        match command {
            Command::GetDir | Command::GetDirFull => {
                let n = server.directory().len();
                let s = if n == 1 { "" } else { "s" };
                self.push_line(now, format_args!("OK {n} room{s}"));
                self.listing = Some(Listing::Rooms {
                    after: None,
                    next: 0,
                    full: *command == Command::GetDirFull,
                });
            }
            // What clients see: a room still waiting to be stored is not
            // there yet, as in `getdir`.
            Command::GetRoom(name) => match server.directory().get_with_privacy(name) {
                Some((room, None)) => self.push_line(
                    now,
                    format_args!("OK room {} {} {} open", room.name, room.group, room.port),
                ),
                Some((room, Some(privacy))) => self.push_line(
                    now,
                    format_args!(
                        "OK room {} {} {} private salt={} verifier={}",
                        room.name, room.group, room.port, privacy.salt, privacy.verifier
                    ),
                ),
                // `stage` answered a missing room with `ERR noroom`.
                None => {}
            },
            Command::Salt => {
                let salt = server.mint_salt();
                self.salt = Some(salt);
                self.push_line(now, format_args!("OK salt={salt}"));
            }
            // A change that succeeded is answered by `reply_change`, with
            // the room as stored.
            Command::MakeRoom(_)
            | Command::AllocRoom(_)
            | Command::MakePrivate(..)
            | Command::AllocPrivate(..)
            | Command::DeleteRoom(..) => {
                self.push_line(now, format_args!("OK"));
            }
            Command::Ping => self.push_line(now, format_args!("OK pong")),
            Command::Help => {
                self.push_line(
                    now,
                    format_args!("OK commands (one per line, end with LF):"),
                );
                self.listing = Some(Listing::Help { next: 0 });
            }
            Command::Bye => {
                self.push_line(now, format_args!("OK bye"));
                self.state = State::Closing;
            }
        }
    }

    /// Produces the next line of the listing in progress (there is room for
    /// one: the caller checked).
    fn continue_listing(&mut self, now: Instant, server: &Server) {
        let Some(listing) = &mut self.listing else {
            return;
        };
        let mut line = LineBuf::new();
        match listing {
            Listing::Rooms { after, next, full } => {
                let rooms = server.directory().rooms();
                // Beside `rooms`, index for index.
                let privacy = server.directory().privacy();
                let start = server
                    .directory()
                    .next_after_hinted(after.as_deref(), *next)
                    .map_or(rooms.len(), |(index, _)| index);
                // As many room lines as fit, straight into the send buffer;
                // the cursor moves once per batch, not once per line.
                let mut index = start;
                let mut encoded = [0u8; MAX_FULL_ROOM_LINE];
                while index < rooms.len() && CONN_SEND_BUF - self.send.len() >= MAX_LISTING_LINE {
                    let room = &rooms[index];
                    let len = if *full {
                        let kind = RoomKind::of(privacy.get(index).and_then(Option::as_ref));
                        full_room_line(room, kind, &mut encoded)
                    } else {
                        room_line(room, &mut encoded)
                    };
                    let _ = self.send.extend_from_slice(&encoded[..len]);
                    index += 1;
                }
                if index > start {
                    *after = Some(rooms[index - 1].name.clone());
                    *next = index;
                } else {
                    let _ = line.push_str(".\n");
                    self.listing = None;
                }
            }
            Listing::Help { next } => match CommandKind::ALL.get(*next) {
                Some(kind) => {
                    let _ = writeln!(line, "  {:<35} {}", kind.usage(), kind.summary());
                    *next += 1;
                }
                None => {
                    let _ = line.push_str(".\n");
                    self.listing = None;
                }
            },
        }
        let _ = self.send.extend_from_slice(line.as_bytes());
        if self.blocked_since.is_none() {
            self.blocked_since = Some(now);
        }
    }
}
