//! The directory server's state machine.
//!
//! [`Server`] holds what all connections share: the [`Directory`], the
//! changes waiting to be stored, and the log events. [`Connection`] is one
//! peer: its line framing, its pending replies and its timers. The host owns
//! the connections: it allocates their storage and their [`ConnId`]s (opaque
//! to the core), and passes the server in to every call that may read or
//! change the directory or report an event.
//!
//! # The drain rule
//!
//! After every `handle_*` call: drain [`Server::poll_event`] until `None`
//! (each event names the connection it is about), then write out
//! [`Connection::poll_transmit`] and report it with
//! [`Connection::handle_sent`], and close the socket if
//! [`Connection::is_finished`]. Sleep until the earliest of
//! [`Server::poll_timeout`] and every [`Connection::poll_timeout`].
//!
//! # Durable replies: what others see is what is stored
//!
//! With [`ServerConfig::durable_replies`], a `makeroom` or `deleteroom` is
//! *staged*: [`Server::directory`] (what every `getdir` lists and every
//! refusal is checked against) stays as it was, and [`Server::staged`] (the
//! directory plus the changes waiting) is what the host stores. Once per
//! event-loop turn the host asks [`Server::poll_persist`], stores
//! [`Server::staged`] and reports it with [`Server::handle_persisted`]; the
//! changes then become visible. A change not stored within
//! [`ServerConfig::persist_timeout`] is undone by [`Server::handle_timeout`]
//! and answered `ERR unavailable`. Either way the outcome comes out of
//! [`Server::poll_resolved`]; the host hands each to its connection with
//! [`Connection::handle_resolved`], then calls [`Connection::handle_wake`] on
//! every other connection that [is waiting](Connection::is_waiting).
//!
//! A connection with a change waiting answers nothing after it until the
//! change is resolved, so replies keep their order. A command from another
//! connection whose answer depends on a waiting change (the same name or
//! address, or a directory nearly full) waits too, so no reply ever reveals
//! a change that may still be undone.

use core::fmt::{self, Write as _};
use core::time::Duration;

use crate::directory::{Directory, DirectoryError};
use crate::error::ErrorCode;
use crate::limits::{
    CONN_RECV_BUF, CONN_SEND_BUF, EVENT_QUEUE, IDLE_TIMEOUT, MAX_LINE, MAX_LISTING_LINE,
    MAX_PENDING_CHANGES, MAX_ROOM_LINE, MAX_ROOMS, PARTIAL_LINE_TIMEOUT, PERSIST_TIMEOUT,
    SEND_TIMEOUT,
};
use crate::parse::{ParseError, command_kind, parse_command};
use crate::time::Instant;
use crate::wire::{Command, CommandKind, LineBuf, Room, RoomName, room_line};

/// The protocol name and version the greeting announces.
pub const PROTOCOL_VERSION: &str = "CRDP/1";

/// Which connection something is about. The host allocates ids (and must
/// not give a live connection's id to another); the core only compares them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ConnId(pub u64);

/// How a server behaves; every field has a documented default. The server
/// and each [`Connection`] keep their own copy.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ServerConfig {
    /// See [`PARTIAL_LINE_TIMEOUT`].
    pub partial_line_timeout: Duration,
    /// See [`IDLE_TIMEOUT`].
    pub idle_timeout: Duration,
    /// See [`SEND_TIMEOUT`].
    pub send_timeout: Duration,
    /// See [`PERSIST_TIMEOUT`].
    pub persist_timeout: Duration,
    /// Make a change visible, and answer it, only once the host says it is
    /// stored (see the module docs). Off by default: a server without a
    /// state file has nothing to wait for.
    pub durable_replies: bool,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            partial_line_timeout: PARTIAL_LINE_TIMEOUT,
            idle_timeout: IDLE_TIMEOUT,
            send_timeout: SEND_TIMEOUT,
            persist_timeout: PERSIST_TIMEOUT,
            durable_replies: false,
        }
    }
}

/// Something the host may want to log.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Event {
    /// A line was answered.
    Answered {
        /// The connection it came from.
        conn: ConnId,
        /// The command, or `None` when the line was not one.
        command: Option<CommandKind>,
        /// The room the command named, if any.
        room: Option<RoomName>,
        /// `None` for an `OK`, else the code of the `ERR`.
        error: Option<ErrorCode>,
    },
    /// The connection is being closed because a timer ran out.
    TimedOut {
        /// The connection.
        conn: ConnId,
        /// Which timer.
        timeout: Timeout,
    },
    /// Changes could not be stored in time and were undone; each one's
    /// connection gets `ERR unavailable` (and an [`Event::Answered`] saying so).
    Undone(u64),
    /// Events were lost because the host did not drain them in time.
    Dropped(u64),
}

impl Event {
    /// The connection the event is about, if it is about one.
    pub fn conn(&self) -> Option<ConnId> {
        match self {
            Event::Answered { conn, .. } | Event::TimedOut { conn, .. } => Some(*conn),
            Event::Undone(_) | Event::Dropped(_) => None,
        }
    }
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

/// The outcome of a change that waited to be stored: hand it to the
/// connection [`conn`](Self::conn) with [`Connection::handle_resolved`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Resolved {
    /// The connection that made the change.
    pub conn: ConnId,
    seq: u64,
    stored: bool,
}

impl Resolved {
    /// Whether the change was stored (`false`: it was undone).
    pub fn is_stored(&self) -> bool {
        self.stored
    }
}

/// A change to the directory, with the room as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Change {
    Made(Room),
    Deleted(Room),
}

impl Change {
    fn room(&self) -> &Room {
        match self {
            Change::Made(room) | Change::Deleted(room) => room,
        }
    }

    fn kind(&self) -> CommandKind {
        match self {
            Change::Made(_) => CommandKind::MakeRoom,
            Change::Deleted(_) => CommandKind::DeleteRoom,
        }
    }

    fn apply(&self, directory: &mut Directory) {
        // Staged changes never clash (a clashing command waits), so these
        // cannot fail; if one did, the directory would stay as it is.
        let _ = match self {
            Change::Made(room) => directory.insert(room.clone()),
            Change::Deleted(room) => directory.remove(&room.name).map(drop),
        };
    }

    fn undo(&self, directory: &mut Directory) {
        let _ = match self {
            Change::Made(room) => directory.remove(&room.name).map(drop),
            Change::Deleted(room) => directory.insert(room.clone()),
        };
    }
}

/// A staged change waiting to be stored.
#[derive(Clone, Debug)]
struct Pending {
    seq: u64,
    conn: ConnId,
    made_at: Instant,
    change: Change,
}

/// What [`Server::stage`] did with a command.
enum Staging {
    /// Answered now: the room a change made or removed, or the refusal.
    Done(Result<Option<Room>, DirectoryError>),
    /// Staged: the answer comes with its [`Resolved`].
    Held(u64, Change),
    /// Its answer depends on changes still waiting: try again later.
    Wait,
}

/// What every connection shares: the directory and the event queue.
#[derive(Debug)]
pub struct Server {
    config: ServerConfig,
    /// What clients see: every change in it is stored.
    directory: Directory,
    /// `directory` plus the pending changes: what the host stores.
    staged: Directory,
    pending: heapless::Deque<Pending, MAX_PENDING_CHANGES>,
    resolved: heapless::Deque<Resolved, MAX_PENDING_CHANGES>,
    events: heapless::Deque<Event, EVENT_QUEUE>,
    dropped_events: u64,
    /// Counts every change to `staged` (a change made or undone).
    version: u64,
    /// The version the host last stored.
    stored: u64,
    /// The latest `now` passed in.
    now: Instant,
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
            staged: directory.clone(),
            directory,
            pending: heapless::Deque::new(),
            resolved: heapless::Deque::new(),
            events: heapless::Deque::new(),
            dropped_events: 0,
            version: 0,
            stored: 0,
            now: Instant::ZERO,
        }
    }

    /// The configuration the server was made with (copy it into each
    /// [`Connection::new`]).
    pub fn config(&self) -> &ServerConfig {
        &self.config
    }

    /// The directory as clients see it: every change in it is stored.
    pub fn directory(&self) -> &Directory {
        &self.directory
    }

    /// The directory to store: [`directory`](Self::directory) plus every
    /// change waiting to be stored.
    pub fn staged(&self) -> &Directory {
        &self.staged
    }

    /// The version the host must store [`staged`](Self::staged) for, if it
    /// changed since the last store. Ask once per event-loop turn, after
    /// handling every event of the turn, so one write covers them all.
    #[must_use]
    pub fn poll_persist(&self) -> Option<u64> {
        (self.version > self.stored).then_some(self.version)
    }

    /// The host stored [`staged`](Self::staged) as it was at `version` (the
    /// value [`poll_persist`](Self::poll_persist) returned). The changes in
    /// it become visible; drain [`poll_resolved`](Self::poll_resolved).
    pub fn handle_persisted(&mut self, now: Instant, version: u64) {
        self.clock(now);
        let version = version.min(self.version);
        self.stored = self.stored.max(version);
        while self.pending.front().is_some_and(|p| p.seq <= version) {
            let Some(pending) = self.pending.pop_front() else {
                break;
            };
            pending.change.apply(&mut self.directory);
            self.resolve(pending, true);
        }
    }

    /// When [`handle_timeout`](Self::handle_timeout) must be called next:
    /// when the oldest waiting change is due to be undone. Never before the
    /// latest `now` passed in.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.pending
            .front()
            .map(|p| (p.made_at + self.config.persist_timeout).max(self.now))
    }

    /// Time passed: changes not stored within
    /// [`persist_timeout`](ServerConfig::persist_timeout) are undone (and
    /// the undoing must be stored in turn: see
    /// [`poll_persist`](Self::poll_persist)). A spurious call is a no-op.
    pub fn handle_timeout(&mut self, now: Instant) {
        let now = self.clock(now);
        let timeout = self.config.persist_timeout;
        let mut undone = 0;
        while self
            .pending
            .front()
            .is_some_and(|p| p.made_at + timeout <= now)
        {
            let Some(pending) = self.pending.pop_front() else {
                break;
            };
            pending.change.undo(&mut self.staged);
            self.version += 1;
            self.resolve(pending, false);
            undone += 1;
        }
        if undone > 0 {
            self.emit(Event::Undone(undone));
        }
    }

    /// The next change that was stored or undone, if any. Drain it after
    /// [`handle_persisted`](Self::handle_persisted) and
    /// [`handle_timeout`](Self::handle_timeout).
    #[must_use]
    pub fn poll_resolved(&mut self) -> Option<Resolved> {
        self.resolved.pop_front()
    }

    /// The next log event, if any. Drain until `None` after every call into
    /// the server or a connection.
    #[must_use]
    pub fn poll_event(&mut self) -> Option<Event> {
        // The queue holds the oldest events; the ones dropped came after.
        if let Some(event) = self.events.pop_front() {
            return Some(event);
        }
        (self.dropped_events > 0).then(|| Event::Dropped(core::mem::take(&mut self.dropped_events)))
    }

    fn clock(&mut self, now: Instant) -> Instant {
        self.now = self.now.max(now);
        self.now
    }

    fn emit(&mut self, event: Event) {
        if self.events.push_back(event).is_err() {
            self.dropped_events += 1;
        }
    }

    fn resolve(&mut self, pending: Pending, stored: bool) {
        // Room is kept: a change is staged only while
        // `pending + resolved < MAX_PENDING_CHANGES`.
        let _ = self.resolved.push_back(Resolved {
            conn: pending.conn,
            seq: pending.seq,
            stored,
        });
    }

    /// Runs one command against the directory (see [`Staging`]).
    fn stage(&mut self, now: Instant, conn: ConnId, command: &Command) -> Staging {
        let now = self.clock(now);
        let durable = self.config.durable_replies;
        if durable
            && matches!(command, Command::MakeRoom(_) | Command::DeleteRoom(_))
            && self.pending.len() + self.resolved.len() >= MAX_PENDING_CHANGES
        {
            return Staging::Wait;
        }
        // With nothing pending, `staged` is `directory` and every answer is
        // final. Otherwise an answer is final only if it is the same with
        // and without the pending changes (so with any of them undone).
        let settled = self.pending.is_empty();
        let change = match command {
            Command::MakeRoom(room) => {
                let staged = self.staged.insert(room.clone());
                if !settled {
                    let now_seen = check_insert(&self.directory, room);
                    let pending_made = self
                        .pending
                        .iter()
                        .filter(|p| matches!(p.change, Change::Made(_)))
                        .count();
                    let same = match (&staged, &now_seen) {
                        // Room enough even if every pending room is made.
                        (Ok(()), Ok(())) => self.directory.len() + pending_made < MAX_ROOMS,
                        // Full could change if a pending delete is undone.
                        (Err(a), Err(b)) => a == b && *a != DirectoryError::Full,
                        _ => false,
                    };
                    if !same {
                        if staged.is_ok() {
                            let _ = self.staged.remove(&room.name);
                        }
                        return Staging::Wait;
                    }
                }
                match staged {
                    Ok(()) => Change::Made(room.clone()),
                    Err(refusal) => return Staging::Done(Err(refusal)),
                }
            }
            Command::DeleteRoom(name) => {
                if !settled && self.staged.get(name) != self.directory.get(name) {
                    return Staging::Wait;
                }
                match self.staged.remove(name) {
                    Ok(room) => Change::Deleted(room),
                    Err(refusal) => return Staging::Done(Err(refusal)),
                }
            }
            Command::GetDir | Command::Ping | Command::Help | Command::Bye => {
                return Staging::Done(Ok(None));
            }
        };
        self.version += 1;
        if !durable {
            change.apply(&mut self.directory);
            self.stored = self.version;
            return Staging::Done(Ok(Some(change.room().clone())));
        }
        let seq = self.version;
        // Room was checked above.
        let _ = self.pending.push_back(Pending {
            seq,
            conn,
            made_at: now,
            change: change.clone(),
        });
        Staging::Held(seq, change)
    }
}

/// Whether `directory.insert(room)` would succeed, without inserting it.
fn check_insert(directory: &Directory, room: &Room) -> Result<(), DirectoryError> {
    if let Some(holder) = directory.get(&room.name) {
        return Err(DirectoryError::NameTaken(holder.clone()));
    }
    if let Some(holder) = directory
        .rooms()
        .iter()
        .find(|r| r.group == room.group && r.port == room.port)
    {
        return Err(DirectoryError::AddressInUse(holder.clone()));
    }
    if directory.len() >= MAX_ROOMS {
        return Err(DirectoryError::Full);
    }
    Ok(())
}

/// The line that turns away a client over the host's connection limit of
/// `limit` clients (sent instead of the greeting, before the host closes).
pub fn busy_reply(limit: usize) -> LineBuf {
    let mut line = Truncating(LineBuf::new());
    let code = ErrorCode::Busy;
    let _ = writeln!(
        line,
        "ERR {code} the server is serving its limit of {limit} clients; try again later"
    );
    line.0
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
/// a cursor for a listing in progress, and at most one change waiting to be
/// stored.
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
}

impl Connection {
    /// A new connection with the id the host gave it, and a copy of the
    /// server's configuration; its greeting is queued.
    pub fn new(now: Instant, id: ConnId, config: &ServerConfig) -> Self {
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
        let room = change.room();
        let error = match (resolved.stored, &change) {
            (true, Change::Made(_)) => {
                self.push_line(
                    now,
                    format_args!("OK created {} {} {}", room.name, room.group, room.port),
                );
                None
            }
            (true, Change::Deleted(_)) => {
                self.push_line(now, format_args!("OK deleted {}", room.name));
                None
            }
            (false, _) => {
                let code = ErrorCode::Unavailable;
                let within = self.config.persist_timeout;
                self.push_line(
                    now,
                    format_args!(
                        "ERR {code} the change could not be stored within {within:?}, \
                         so it was not made; try again later"
                    ),
                );
                Some(code)
            }
        };
        server.emit(Event::Answered {
            conn: self.id,
            command: Some(change.kind()),
            room: Some(room.name.clone()),
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
        let room = match &command {
            Command::MakeRoom(room) => Some(room.name.clone()),
            Command::DeleteRoom(name) => Some(name.clone()),
            _ => None,
        };
        let error = match server.stage(now, self.id, &command) {
            Staging::Wait => return false,
            Staging::Held(seq, change) => {
                // Answered (and logged) once resolved.
                self.awaiting = Some((seq, change));
                return true;
            }
            Staging::Done(Ok(changed)) => {
                self.reply_ok(now, server, &command, changed.as_ref());
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

/// A line writer that keeps what fits and drops the rest, so a long quoted
/// value can never turn a reply into no reply.
struct Truncating(LineBuf);

impl fmt::Write for Truncating {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        for c in s.chars() {
            if self.0.push(c).is_err() {
                break;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
