//! Every capacity and limit of the protocol core, in one place.
//!
//! Each limit is enforced by the code that uses it and tested at its edge.

use core::time::Duration;

/// The longest CRDP line, in bytes, counting its terminating LF (and the CR
/// before it, if any). A longer line gets `ERR toolong` and is discarded.
pub const MAX_LINE: usize = 512;

/// The most rooms the directory holds. `makeroom` on a full directory gets
/// `ERR full`.
pub const MAX_ROOMS: usize = 4096;

/// The longest room name, in bytes (UTF-8).
pub const MAX_ROOM_NAME: usize = 32;

/// The most whitespace-separated words in one command line (`makeroom`
/// takes the most: the verb and six arguments in its private form,
/// `makeroom <name> <address> <port> private <salt> <verifier>`).
pub const MAX_WORDS: usize = 7;

/// How many bytes of input one connection buffers: room for the partial line
/// being received and the complete lines waiting behind a reply that is
/// still going out (pipelining). When it is full the host stops reading
/// from that peer, so TCP flow control pushes back on it.
pub const CONN_RECV_BUF: usize = 2 * MAX_LINE;

/// The longest address a room line holds: an IPv6 address in its usual
/// (RFC 5952) form is at most 39 bytes (`ffff:ffff:...:ffff`); an IPv4
/// address at most 15.
pub const MAX_ADDRESS_TEXT: usize = 39;

/// The longest `getdir` line of a room: a 32-byte name, a space, an address
/// of up to [`MAX_ADDRESS_TEXT`] bytes, a space, a port of up to 5 digits
/// and the LF.
pub const MAX_ROOM_LINE: usize = MAX_ROOM_NAME + 1 + MAX_ADDRESS_TEXT + 1 + 5 + 1;

/// The longest room kind word of a `getdir full` line: `private` (the
/// other is `open`).
pub const MAX_ROOM_KIND: usize = 7;

/// The longest `getdir full` line of a room: a `getdir` line's fields, a
/// space, the kind word (at most [`MAX_ROOM_KIND`] bytes) and the LF:
/// 32 + 1 + 39 + 1 + 5 + 1 + 7 + 1 = 87 bytes.
pub const MAX_FULL_ROOM_LINE: usize = MAX_ROOM_LINE + 1 + MAX_ROOM_KIND;

/// The longest room line of a listing: a `getdir` room line is at
/// most 32 + 1 + 39 + 1 + 5 + 1 = 79 bytes, a `getdir full` one 87
/// ([`MAX_FULL_ROOM_LINE`]). The next room line of a listing is produced
/// once this much output room is free (a reply, and a `help` line, need
/// [`MAX_LINE`]), so a listing fills the send buffer.
pub const MAX_LISTING_LINE: usize = 128;

// A room line of either listing fits in the room a listing line is given.
const _: () = assert!(MAX_FULL_ROOM_LINE <= MAX_LISTING_LINE);

/// How many bytes of output one connection buffers. A reply that does not
/// fit waits; a long directory listing is produced line by line as this
/// buffer drains, never copied whole.
///
/// 4 KiB holds a `getdir` of about 100 rooms, so such a listing goes out in
/// one write: with 2 KiB the extra write per listing halved the `getdir`
/// rate (BENCHMARKS.md).
pub const CONN_SEND_BUF: usize = 8 * MAX_LINE;

/// How many log events the server queues between two drains by the host.
/// One `handle_*` call processes at most `CONN_RECV_BUF / 2` commands (each
/// needs at least a letter and an LF), so a host that drains after every call
/// never loses one; past this, events are counted as dropped.
pub const EVENT_QUEUE: usize = CONN_RECV_BUF / 2;

/// The lowest port a room may use: ports below it are privileged.
pub const MIN_ROOM_PORT: u16 = 1024;

// ---- Address allocation (`makeroom <name>` without an address) ----

/// The most group pools a server allocates from (`--group-pool`, given
/// several times).
pub const MAX_GROUP_POOLS: usize = 8;

/// How many random (group, port) slots the allocator tries before it walks
/// the pool in order. Each try costs a binary search over the rooms; the
/// walk that follows is bounded by the number of rooms (see
/// `core/src/alloc.rs`), so allocation is bounded work however full the
/// pool is.
pub const ALLOC_PROBES: usize = 32;

/// The default group pool: 239.255.0.0/16, the IPv4 organisation-local
/// scope of RFC 2365 (65 536 groups).
pub const DEFAULT_GROUP_POOL: &str = "239.255.0.0/16";

/// The default port range rooms are given ports from, both ends included.
/// A room on port `p` also reserves `p + 1`, so the ports allocated run
/// from the first to the last but one. Above the registered ports most
/// systems hand out as ephemeral (Linux 32768-60999 overlaps: a room's port
/// is a bound multicast port, which an ephemeral port of another group does
/// not disturb).
pub const DEFAULT_PORT_RANGE: (u16, u16) = (40000, 49999);

/// How long a connection may sit in the middle of a line (bytes received,
/// no LF yet) before the server closes it.
pub const PARTIAL_LINE_TIMEOUT: Duration = Duration::from_secs(30);

/// How long a connection may send nothing at all before the server closes
/// it. `ping` keeps a connection alive.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(600);

/// How long a peer may leave replies unread (the server has bytes for it
/// and it takes none) before the server drops the connection.
pub const SEND_TIMEOUT: Duration = Duration::from_secs(30);

/// How long a change (`makeroom`, `deleteroom`) may wait to be stored
/// before it is undone and answered `ERR unavailable`, when the server keeps
/// its directory on disk. A failing disk then costs a client this long, not
/// forever, and nothing unacknowledged lingers in the directory.
pub const PERSIST_TIMEOUT: Duration = Duration::from_secs(5);

/// How many changes may wait to be stored (or for their outcome to be
/// collected by the host) at once. One more waits, like a command that
/// clashes with a waiting change, until some are resolved. Each connection
/// has at most one change waiting.
pub const MAX_PENDING_CHANGES: usize = 128;

// ---- Owners and quotas ----

/// How many random bytes an owner token holds: 128 bits, too many to guess.
pub const TOKEN_BYTES: usize = 16;

/// How long an owner token is as text: [`TOKEN_BYTES`] in unpadded
/// base64url (`makeroom` answers `token=<22 characters>`).
pub const TOKEN_TEXT: usize = 22;

/// The shortest token `deleteroom` accepts (an operator's admin token must
/// be at least this long too).
pub const MIN_TOKEN: usize = 16;

/// The longest token `deleteroom` accepts, and the longest admin token.
pub const MAX_TOKEN: usize = 64;

/// How many rooms may exist at once that were made from one client address
/// (IP), unless the server is started with another
/// `--max-rooms-per-client`. One more `makeroom` gets `ERR quota rooms`.
pub const MAX_ROOMS_PER_CLIENT: usize = 64;

/// How many connections one client address (IP) may hold open at once,
/// unless the server is started with another
/// `--max-connections-per-client`. One more gets `ERR quota connections`
/// instead of the greeting and is closed.
pub const MAX_CONNECTIONS_PER_CLIENT: usize = 32;

/// How many commands per second a connection may send on average
/// (`--commands-per-second`). A line over it is answered
/// `ERR quota rate` and not run.
pub const COMMANDS_PER_SECOND: u32 = 20;

/// How many commands a connection may send at once after being quiet
/// (`--command-burst`): the size of its token bucket, which refills at
/// [`COMMANDS_PER_SECOND`].
pub const COMMAND_BURST: u32 = 40;

// ---- The chat client ----

/// The largest chat datagram, in bytes: `Name: text` in UTF-8, no newline.
/// A typed line whose datagram would be longer is refused with a message;
/// 1200 bytes fits in one IPv4 packet on any usual link, so a message is
/// never fragmented.
pub const MAX_DATAGRAM: usize = 1200;

/// The longest chat name, in characters (`name <chat name>`).
pub const MAX_CHAT_NAME: usize = 32;

/// The longest directory server address the client takes, `HOST:PORT`
/// included: a DNS name (253 bytes), brackets for IPv6, a port.
pub const MAX_SERVER_ADDR: usize = 264;

/// The most directory servers found on the LAN that the client keeps by
/// name for `connect NAME` ([`ClientConfig::known_servers`]); the host
/// keeps the first ones (by name) and says how many more it left out.
///
/// [`ClientConfig::known_servers`]: crate::ClientConfig::known_servers
pub const MAX_KNOWN_SERVERS: usize = 16;

/// The longest name of a known server: one DNS label.
pub const MAX_KNOWN_SERVER_NAME: usize = 63;

/// The longest message the client shows in one piece, in bytes.
pub const MAX_TEXT: usize = 1024;

/// How long the client waits for the directory server to accept a
/// connection before it gives up and says so.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// How long the client waits for a reply to begin (its first line) before
/// it gives up on the server and closes the connection.
pub const REPLY_TIMEOUT: Duration = Duration::from_secs(10);

/// The longest a whole reply may take, counted from the moment its request
/// was sent to its last line: a `getdir` listing must end (`.`) within
/// this, however steadily its rows come. A timer restarted at every row
/// would let a server that trickles one row every few seconds hold the
/// client for hours ([`MAX_ROOMS`] rows); a real server sends a full
/// directory in well under a second.
pub const LISTING_TIMEOUT: Duration = Duration::from_secs(30);

/// How long a connected client stays quiet before it sends `ping`, so the
/// server's [`IDLE_TIMEOUT`] never closes a connection the user is keeping.
pub const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(240);

/// How many bytes of server output the client buffers: a partial line and
/// the complete lines behind it. A line longer than [`MAX_LINE`] from the
/// server is a protocol error.
pub const CLIENT_RECV_BUF: usize = 2 * MAX_LINE;

/// How many `getdir` rows the client holds to size the table's columns; a
/// longer listing is shown as it arrives, in columns wide enough for any
/// room.
pub const LISTING_BUFFER: usize = 32;

/// How many outputs the client queues between two drains by the host.
pub const CLIENT_OUTPUT_QUEUE: usize = 16;

/// How many of its own recent datagrams the client remembers, so it does not
/// show them again when multicast loopback brings them back.
pub const OWN_ECHO_MEMORY: usize = 16;

/// How long the client remembers a datagram it sent (see
/// [`OWN_ECHO_MEMORY`]).
pub const OWN_ECHO_WINDOW: Duration = Duration::from_secs(5);
