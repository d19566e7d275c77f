//! The protocol core of roomcast: sans-IO and `no_std`.
//!
//! This crate holds everything about roomcast that is not input/output:
//!
//! - the command parser and the wire format of the Chat Room Directory
//!   Protocol (CRDP): [`parse_command`], [`Command`], [`ErrorCode`];
//! - one rule for text: what may reach a terminal as itself
//!   ([`is_shown_as_is`]), what may be in a room name ([`check_room_name`])
//!   and when two names are one room ([`same_name`], [`look_alike`]);
//! - the room directory and its invariants: [`Directory`];
//! - the directory server's state machine: [`Server`] and its per-peer
//!   [`Connection`];
//! - the chat client's state machine: [`Client`], which takes the user's
//!   lines, the server's bytes and chat datagrams, and puts out
//!   [`Output`]s for its host to carry out.
//!
//! # The sans-IO promise
//!
//! Nothing in here opens a socket, reads a clock, starts a thread or asks the
//! operating system for randomness. Time comes in as an [`Instant`] argument.
//! Every buffer is a fixed-capacity `heapless` one whose size is a named
//! constant in [`limits`], so memory is bounded by construction, and bad input
//! from a peer is never a panic: it becomes an error reply.
//!
//! # The run loop
//!
//! A host drives a connection like this (see `host/src/server.rs`):
//!
//! 1. on accept, [`Connection::new`] with a fresh [`ConnId`] (over the
//!    connection limit, send [`busy_reply`] instead and close);
//! 2. when the socket is readable, read at most [`Connection::recv_capacity`]
//!    bytes and hand them to [`Connection::handle_bytes`];
//! 3. after every `handle_*` call, drain [`Server::poll_event`] until `None`
//!    (for logging; each event names its connection), then write what
//!    [`Connection::poll_transmit`] returns and report how much went out
//!    with [`Connection::handle_sent`];
//! 4. close the socket once [`Connection::is_finished`] says so;
//! 5. sleep until the earliest [`Connection::poll_timeout`] and
//!    [`Server::poll_timeout`], and call the `handle_timeout` that is due;
//! 6. with durable replies on, once per loop turn store [`Server::staged`]
//!    when [`Server::poll_persist`] asks, then [`Server::handle_persisted`];
//!    after that and after [`Server::handle_timeout`], hand each
//!    [`Server::poll_resolved`] to its connection
//!    ([`Connection::handle_resolved`]) and wake the other waiting ones
//!    ([`Connection::handle_wake`]).
//!
//! The client's host (`host/src/client.rs`) works the same way: every
//! `handle_*` call is followed by draining [`Client::poll_output`].
#![no_std]
#![deny(unsafe_code)]
#![warn(missing_docs)]

#[cfg(any(test, feature = "_sim"))]
extern crate std;

mod alloc;
pub mod chat;
mod client;
mod directory;
mod error;
pub mod limits;
mod owner;
mod parse;
pub mod privacy;
mod server;
#[cfg(any(test, feature = "_sim"))]
#[doc(hidden)]
pub mod sim;
mod text;
mod time;
mod wire;

pub use alloc::{
    AddressPool, Allocator, GroupPrefix, IPV6_ROOM_SCOPES, PoolError, PortRange, is_room_group,
};
pub use client::{
    AddrError, ChatName, Client, ClientConfig, ConnectFailure, Datagram, KeyFailure, KnownServer,
    LEAVE_CHAT_BYTE, Message, Mode, NameError, Output, Prompt, ServerAddr, Text, parse_server_addr,
};
pub use directory::{Directory, DirectoryError};
pub use error::ErrorCode;
pub use owner::{Owner, Token, TokenHash, is_valid_token};
pub use parse::{
    ParseError, command_kind, parse_command, parse_full_room_line, parse_reply_line,
    parse_room_line,
};
pub use server::{
    ConnId, Connection, Event, PROTOCOL_VERSION, Resolved, Server, ServerConfig, Timeout,
    busy_reply, connections_quota_reply,
};
pub use text::{
    BLANK_LOOKING, NameProblem, TABLES_UNICODE_VERSION, check_room_name, display_width,
    is_name_char, is_shown_as_is, look_alike, name_key, name_skeleton, same_name,
};
pub use time::Instant;
pub use wire::{
    Command, CommandKind, LineBuf, Privacy, ReplyLine, Room, RoomKind, RoomName, encode_command,
    encode_full_room_line, encode_room_line, is_valid_room_name,
};
