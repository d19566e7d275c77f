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

//! # Owners and quotas
//!
//! Each room keeps an [`Owner`](crate::Owner): the hash of the token
//! `makeroom` answered, and (while the server runs) the connection and
//! address that made it. `deleteroom` succeeds for that connection, for the
//! owner token, and for the admin token ([`Server::set_admin_token`]);
//! else `ERR denied`. Tokens come from a generator the host seeds once
//! ([`Server::seed_random`]). Quotas: rooms per client address
//! ([`ServerConfig::max_rooms_per_client`], for connections made with
//! [`Connection::with_peer`]) and commands per second per connection
//! ([`ServerConfig::commands_per_second`]); the host counts connections per
//! address and turns the extra one away with [`connections_quota_reply`].

use core::fmt::Write as _;
use core::time::Duration;

use crate::error::ErrorCode;
use crate::limits::{
    COMMAND_BURST, COMMANDS_PER_SECOND, IDLE_TIMEOUT, MAX_ROOMS_PER_CLIENT, PARTIAL_LINE_TIMEOUT,
    PERSIST_TIMEOUT, SEND_TIMEOUT,
};
use crate::text::Truncating;
use crate::wire::{CommandKind, LineBuf, RoomName};

mod connection;
mod quota;
mod shared;

pub use connection::Connection;
pub use quota::connections_quota_reply;
pub use shared::Server;

/// The protocol name and version the greeting announces.
pub const PROTOCOL_VERSION: &str = "CRDP/1";

/// Which connection something is about. The host allocates ids; the core
/// only compares them. An id must never be given to a second connection,
/// not even after the first one closed: the directory remembers which
/// connection made each room (it may delete the room without the token), so
/// a reused id would inherit that right. (The roomcast host counts them up.)
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
    /// See [`MAX_ROOMS_PER_CLIENT`]; counted for connections made with
    /// [`Connection::with_peer`].
    pub max_rooms_per_client: usize,
    /// See [`COMMANDS_PER_SECOND`]; zero: no limit.
    pub commands_per_second: u32,
    /// See [`COMMAND_BURST`].
    pub command_burst: u32,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            partial_line_timeout: PARTIAL_LINE_TIMEOUT,
            idle_timeout: IDLE_TIMEOUT,
            send_timeout: SEND_TIMEOUT,
            persist_timeout: PERSIST_TIMEOUT,
            durable_replies: false,
            max_rooms_per_client: MAX_ROOMS_PER_CLIENT,
            commands_per_second: COMMANDS_PER_SECOND,
            command_burst: COMMAND_BURST,
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

#[cfg(test)]
mod tests;
