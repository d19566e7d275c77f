//! The directory server's state machine.
//!
//! [`Server`] holds what all connections share: the [`Directory`] and the
//! log events. [`Connection`] is one peer: its line framing, its pending
//! replies and its timers. The host owns the connections (it allocates their
//! storage and ids) and passes the server in to every call that may read or
//! change the directory.
//!
//! # The drain rule
//!
//! After every `handle_*` call: drain [`Server::poll_event`] until `None`,
//! then write out [`Connection::poll_transmit`] and report it with
//! [`Connection::handle_sent`], and close the socket if
//! [`Connection::is_finished`].
//!
//! # Durable replies
//!
//! With [`ServerConfig::durable_replies`], the `OK` to a `makeroom` or
//! `deleteroom` (and every reply queued behind it on that connection) is
//! held back until the host has stored the directory: the host asks
//! [`Server::poll_persist`] once per event-loop turn, stores
//! [`Server::directory`], reports it with [`Server::handle_persisted`], and
//! calls [`Connection::handle_durable`] on the connections that were
//! [holding](Connection::is_holding). One write then covers every change of
//! the turn.

use core::fmt::{self, Write as _};
use core::time::Duration;

use crate::directory::{Directory, DirectoryError};
use crate::error::ErrorCode;
use crate::limits::{
    CONN_RECV_BUF, CONN_SEND_BUF, EVENT_QUEUE, IDLE_TIMEOUT, MAX_LINE, MAX_LISTING_LINE,
    MAX_ROOM_LINE, PARTIAL_LINE_TIMEOUT, SEND_TIMEOUT,
};
use crate::parse::{ParseError, command_kind, parse_command};
use crate::text::Truncating;
use crate::time::Instant;
use crate::wire::{Command, CommandKind, LineBuf, Room, RoomName, room_line};

/// The protocol name and version the greeting announces.
pub const PROTOCOL_VERSION: &str = "CRDP/1";

/// How a server behaves; every field has a documented default.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ServerConfig {
    /// See [`PARTIAL_LINE_TIMEOUT`].
    pub partial_line_timeout: Duration,
    /// See [`IDLE_TIMEOUT`].
    pub idle_timeout: Duration,
    /// See [`SEND_TIMEOUT`].
    pub send_timeout: Duration,
    /// Hold each change's `OK` until the host says the change is stored (see
    /// the module docs). Off by default: a server without a state file has
    /// nothing to wait for.
    pub durable_replies: bool,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            partial_line_timeout: PARTIAL_LINE_TIMEOUT,
            idle_timeout: IDLE_TIMEOUT,
            send_timeout: SEND_TIMEOUT,
            durable_replies: false,
        }
    }
}

/// Something the host may want to log. Events come from the connection the
/// host last called, so the host knows which peer each one is about.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Event {
    /// A line was answered.
    Answered {
        /// The command, or `None` when the line was not one.
        command: Option<CommandKind>,
        /// The room the command named, if any.
        room: Option<RoomName>,
        /// `None` for an `OK`, else the code of the `ERR`.
        error: Option<ErrorCode>,
    },
    /// The connection is being closed because a timer ran out.
    TimedOut(Timeout),
    /// Events were lost because the host did not drain them in time.
    Dropped(u64),
}

/// Which timer closed a connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Timeout {
    /// Half a line sat unfinished for too long.
    PartialLine,
    /// Nothing arrived for too long.
    Idle,
    /// The peer did not read its replies for too long.
    Send,
}

/// What every connection shares: the directory and the event queue.
#[derive(Debug)]
pub struct Server {
    config: ServerConfig,
    directory: Directory,
    events: heapless::Deque<Event, EVENT_QUEUE>,
    dropped_events: u64,
    /// How many changes the directory has had.
    changes: u64,
    /// How many of them the host has stored.
    durable: u64,
}

impl Server {
    /// A server with an empty directory.
    pub fn new(config: ServerConfig) -> Self {
        Self::with_directory(config, Directory::new())
    }

    /// A server that starts with `directory` (loaded from disk, say).
    pub fn with_directory(config: ServerConfig, directory: Directory) -> Self {
        Self {
            config,
            directory,
            events: heapless::Deque::new(),
            dropped_events: 0,
            changes: 0,
            durable: 0,
        }
    }

    /// The change count the host must store [`directory`](Self::directory)
    /// for, if changes are waiting to be made durable. Ask once per
    /// event-loop turn, after handling every event of the turn.
    #[must_use]
    pub fn poll_persist(&self) -> Option<u64> {
        (self.changes > self.durable).then_some(self.changes)
    }

    /// The host stored the directory as it was at change count `changes`
    /// (the value [`poll_persist`](Self::poll_persist) returned). Now call
    /// [`Connection::handle_durable`] on every connection that
    /// [is holding](Connection::is_holding) replies.
    pub fn handle_persisted(&mut self, changes: u64) {
        self.durable = self.durable.max(changes.min(self.changes));
    }

    /// The directory as it is now.
    pub fn directory(&self) -> &Directory {
        &self.directory
    }

    /// The next log event, if any. Drain until `None` after every call into
    /// a connection.
    #[must_use]
    pub fn poll_event(&mut self) -> Option<Event> {
        // The queue holds the oldest events; the ones dropped came after.
        if let Some(event) = self.events.pop_front() {
            return Some(event);
        }
        (self.dropped_events > 0).then(|| Event::Dropped(core::mem::take(&mut self.dropped_events)))
    }

    fn emit(&mut self, event: Event) {
        if self.events.push_back(event).is_err() {
            self.dropped_events += 1;
        }
    }

    /// Runs one command against the directory; `Err` carries the refusal.
    /// Runs one command against the directory. `Ok(Some(room))` is the room
    /// a change made or removed, as stored (so a deleted room is named in
    /// the case it was made with, not as typed).
    fn execute(&mut self, command: &Command) -> Result<Option<Room>, DirectoryError> {
        let room = match command {
            Command::MakeRoom(room) => {
                self.directory.insert(room.clone())?;
                room.clone()
            }
            Command::DeleteRoom(name) => self.directory.remove(name)?,
            Command::GetDir | Command::Ping | Command::Help | Command::Bye => return Ok(None),
        };
        self.changes += 1;
        if !self.config.durable_replies {
            self.durable = self.changes;
        }
        Ok(Some(room))
    }
}

/// A multi-line reply still being produced, a line at a time.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Listing {
    /// `getdir`: the next room is the first after `after`.
    Rooms {
        after: Option<RoomName>,
        /// Where the room after `after` was: checked, then used, so the
        /// walk needs no binary search per line while nothing changes.
        next: usize,
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
/// and a cursor for a listing in progress.
#[derive(Clone, Debug)]
pub struct Connection {
    recv: heapless::Vec<u8, CONN_RECV_BUF>,
    /// How much of `recv` is known to hold no LF.
    scanned: usize,
    /// Inside a line that was too long: drop bytes up to its LF.
    discarding: bool,
    send: heapless::Vec<u8, CONN_SEND_BUF>,
    listing: Option<Listing>,
    state: State,
    last_recv: Instant,
    partial_since: Option<Instant>,
    /// When the peer last took bytes while we had some waiting for it.
    blocked_since: Option<Instant>,
    /// The latest `now` passed in: time that goes backwards is clamped to it.
    now: Instant,
    /// Replies from `send[offset..]` wait until change `seq` is durable.
    held: Option<Held>,
    /// Closing after a timeout: dropped at this instant whatever happens,
    /// so a peer reading a byte at a time cannot keep it open.
    close_by: Option<Instant>,
}

/// Where a connection's not-yet-durable replies begin.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Held {
    offset: usize,
    seq: u64,
}

impl Connection {
    /// A new connection; its greeting is queued.
    pub fn new(now: Instant) -> Self {
        let mut conn = Self {
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
            held: None,
            close_by: None,
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

    /// The bytes ready to go to the peer (empty if none). Replies held for
    /// durability are not among them until [`handle_durable`](Self::handle_durable).
    #[must_use]
    pub fn poll_transmit(&self) -> &[u8] {
        match (self.state, self.held) {
            (State::Aborted, _) => &[],
            (_, Some(held)) => &self.send[..held.offset],
            (State::Open | State::Closing, None) => &self.send,
        }
    }

    /// Whether replies wait for the directory to be stored; see
    /// [`Server::handle_persisted`].
    pub fn is_holding(&self) -> bool {
        self.held.is_some()
    }

    /// The host stored the directory: release the replies that waited for it.
    pub fn handle_durable(&mut self, now: Instant, server: &mut Server) {
        if self.held.is_some_and(|held| held.seq <= server.durable) {
            self.held = None;
            // The peer's time to read starts now, not when the reply was made.
            self.blocked_since = None;
            self.handle_sent(now, server, 0);
        }
    }

    /// The host wrote the first `n` bytes of [`poll_transmit`](Self::poll_transmit).
    /// Frees room, so waiting lines may be answered now.
    pub fn handle_sent(&mut self, now: Instant, server: &mut Server, n: usize) {
        let now = self.clock(now);
        let n = n.min(self.poll_transmit().len());
        if let Some(held) = &mut self.held {
            held.offset -= n;
        }
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
    pub fn poll_timeout(&self, server: &Server) -> Option<Instant> {
        self.next_timeout(server).map(|(at, _)| at.max(self.now))
    }

    /// The time to act on: `now`, or the latest time seen if `now` is earlier.
    fn clock(&mut self, now: Instant) -> Instant {
        self.now = self.now.max(now);
        self.now
    }

    fn next_timeout(&self, server: &Server) -> Option<(Instant, Timeout)> {
        if self.state == State::Aborted {
            return None;
        }
        if let Some(at) = self.close_by {
            return Some((at, Timeout::Send));
        }
        let config = &server.config;
        // Replies held for the disk are not the peer's to read yet.
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

    /// Time passed; closes the connection if one of its timers ran out.
    /// A spurious call is a no-op.
    pub fn handle_timeout(&mut self, now: Instant, server: &mut Server) {
        let now = self.clock(now);
        let Some((at, which)) = self.next_timeout(server) else {
            return;
        };
        if now < at || self.state == State::Aborted {
            return;
        }
        server.emit(Event::TimedOut(which));
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
                self.close_by = Some(now + server.config.send_timeout);
            }
        }
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
    /// line is unfinished, from when it began: complete lines waiting behind
    /// unread replies are the send timer's business, not this one's.
    fn update_partial(&mut self, now: Instant) {
        let unfinished = self.recv.last().is_some_and(|&b| b != b'\n');
        // Once closing, what is left in `recv` is never read: not a line.
        let pending = self.state == State::Open && (self.discarding || unfinished);
        match (pending, self.partial_since) {
            (true, None) => self.partial_since = Some(now),
            (false, Some(_)) => self.partial_since = None,
            _ => {}
        }
    }

    /// Answers lines until input runs out or output is full.
    fn process(&mut self, now: Instant, server: &mut Server) {
        while self.state == State::Open && self.send_room() >= self.room_needed() {
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
            } else {
                self.answer(now, server, end);
            }
            self.consume(end + 1);
        }
    }

    /// Output room needed before the next line is produced: a whole
    /// [`MAX_LINE`] for a reply, but only [`MAX_LISTING_LINE`] for the next
    /// line of a listing, so a listing fills the send buffer and goes out in
    /// fewer writes.
    fn room_needed(&self) -> usize {
        if self.listing.is_some() {
            MAX_LISTING_LINE
        } else {
            MAX_LINE
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
            command: None,
            room: None,
            error: Some(code),
        });
    }

    /// Answers the line `recv[..end]`.
    fn answer(&mut self, now: Instant, server: &mut Server, end: usize) {
        let command = match parse_command(&self.recv[..end]) {
            Ok(command) => command,
            Err(ParseError::Empty) => return,
            Err(error) => {
                let code = error.code();
                let command = command_kind(&self.recv[..end]);
                let mut line = Truncating(LineBuf::new());
                let _ = write!(line, "ERR {code} {error}");
                self.push_line(now, format_args!("{}", line.0));
                server.emit(Event::Answered {
                    command,
                    room: None,
                    error: Some(code),
                });
                return;
            }
        };
        let room = match &command {
            Command::MakeRoom(room) => Some(room.name.clone()),
            Command::DeleteRoom(name) => Some(name.clone()),
            _ => None,
        };
        let offset = self.send.len();
        let error = match server.execute(&command) {
            Ok(changed) => {
                self.reply_ok(now, server, &command, changed.as_ref());
                if server.poll_persist().is_some() && changed.is_some() {
                    let offset = self.held.map_or(offset, |held| held.offset);
                    self.held = Some(Held {
                        offset,
                        seq: server.changes,
                    });
                }
                None
            }
            Err(refusal) => {
                let code = refusal.code();
                self.push_line(now, format_args!("ERR {code} {refusal}"));
                Some(code)
            }
        };
        server.emit(Event::Answered {
            command: Some(command.kind()),
            room,
            error,
        });
    }

    /// Answers a command that succeeded; `changed` is the room it made or
    /// removed, if it was a change.
    fn reply_ok(
        &mut self,
        now: Instant,
        server: &Server,
        command: &Command,
        changed: Option<&Room>,
    ) {
        match (command, changed) {
            (Command::MakeRoom(_), Some(room)) => self.push_line(
                now,
                format_args!("OK created {} {} {}", room.name, room.group, room.port),
            ),
            (Command::DeleteRoom(_), Some(room)) => {
                self.push_line(now, format_args!("OK deleted {}", room.name));
            }
            (command, _) => self.reply_ok_query(now, server, command),
        }
    }

    fn reply_ok_query(&mut self, now: Instant, server: &Server, command: &Command) {
        match command {
            Command::GetDir => {
                let n = server.directory.len();
                let s = if n == 1 { "" } else { "s" };
                self.push_line(now, format_args!("OK {n} room{s}"));
                self.listing = Some(Listing::Rooms {
                    after: None,
                    next: 0,
                });
            }
            // Answered by `reply_ok`, which has the stored room.
            Command::MakeRoom(_) | Command::DeleteRoom(_) => {}
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
            Listing::Rooms { after, next } => {
                let rooms = server.directory.rooms();
                let start = server
                    .directory
                    .next_after_hinted(after.as_deref(), *next)
                    .map_or(rooms.len(), |(index, _)| index);
                // As many room lines as fit, straight into the send buffer;
                // the cursor moves once per batch, not once per line.
                let mut index = start;
                let mut encoded = [0u8; MAX_ROOM_LINE];
                while index < rooms.len() && CONN_SEND_BUF - self.send.len() >= MAX_LISTING_LINE {
                    let len = room_line(&rooms[index], &mut encoded);
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
                    let _ = writeln!(line, "  {:<34} {}", kind.usage(), kind.summary());
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

#[cfg(test)]
mod tests;
