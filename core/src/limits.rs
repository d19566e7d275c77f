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
/// takes the most: the verb and three arguments).
pub const MAX_WORDS: usize = 4;

/// How many bytes of input one connection buffers: room for the partial line
/// being received and the complete lines waiting behind a reply that is
/// still going out (pipelining). When it is full the host stops reading
/// from that peer, so TCP flow control pushes back on it.
pub const CONN_RECV_BUF: usize = 2 * MAX_LINE;

/// How many bytes of output one connection buffers. A reply that does not
/// fit waits; a long directory listing is produced line by line as this
/// buffer drains, never copied whole.
pub const CONN_SEND_BUF: usize = 4 * MAX_LINE;

/// How many log events the server queues between two drains by the host.
/// One `handle_*` call processes at most `CONN_RECV_BUF / 2` commands (each
/// needs at least a letter and an LF), so a host that drains after every call
/// never loses one; past this, events are counted as dropped.
pub const EVENT_QUEUE: usize = CONN_RECV_BUF / 2;

/// The lowest port a room may use: ports below it are privileged.
pub const MIN_ROOM_PORT: u16 = 1024;

/// How long a connection may sit in the middle of a line (bytes received,
/// no LF yet) before the server closes it.
pub const PARTIAL_LINE_TIMEOUT: Duration = Duration::from_secs(30);

/// How long a connection may send nothing at all before the server closes
/// it. `ping` keeps a connection alive.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(600);

/// How long a peer may leave replies unread (the server has bytes for it
/// and it takes none) before the server drops the connection.
pub const SEND_TIMEOUT: Duration = Duration::from_secs(30);
