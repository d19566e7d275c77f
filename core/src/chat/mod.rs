//! The room protocol: reliable chat among the members of one room.
//!
//! A room is a multicast group and port from the directory. Plain clients
//! (the original assignment's) send and read one `Name: text` datagram per
//! message on that port, and roomcast keeps that working: every message also
//! goes out in that form. roomcast members additionally exchange frames
//! ([`frame`]) on the room's control port (the port plus
//! [`CONTROL_PORT_OFFSET`], same group), which give
//!
//! - exactly-once delivery in each sender's order, with numbered messages,
//!   randomised and suppressed repair requests and repairs from any member
//!   (SRM, PGM), and heartbeats carrying highest numbers so that a lost
//!   last message is found;
//! - a notice in place of what truly cannot be recovered ([`Event::Lost`]);
//! - presence: who is in the room, joins and leaves ([`Session::members`]);
//! - catch-up: a member entering a room gets senders' recent messages,
//!   older ones marked as history ([`Event::History`]).
//!
//! [`Session`] is one member's machine in one room; PROTOCOL.md ("The room
//! protocol") specifies the frames and timers, [`limits`] every bound.
//! Nothing here knows about terminals or the directory.
//!
//! In a **private room** ([`Session::new_private`], [`seal`]) every frame is
//! sealed (XChaCha20-Poly1305 under the room's key) and nothing goes out in
//! the plain `Name: text` form; only sealed, fresh, new frames are taken in,
//! and what is refused is counted and told ([`Event::Refused`]).
//!
//! # Owning a session (for the client)
//!
//! A client owns one boxed [`Session`] while it is in a room:
//!
//! 1. on entering, take 16 random bytes from the host: 8 for the
//!    [`MemberId`], 8 for the seed; [`Session::new`]. In a private room,
//!    also 16 more for the sealer, and the wall clock (Unix ms):
//!    [`Sealing::new`], then [`Session::new_private`]; receive control
//!    datagrams of up to [`MAX_SEALED`] bytes;
//! 2. receive on the room's group at its port ([`Channel::Plain`]) and at
//!    [`control_port`] ([`Channel::Control`]), and send what
//!    [`Session::poll_transmit`] gives to the port of its channel, **from one
//!    socket** (one source address for both, see PROTOCOL.md);
//! 3. a typed line goes to [`Session::handle_send`] (the user's own line is
//!    not echoed back as an event);
//! 4. after every `handle_*` call drain `poll_transmit` and
//!    [`Session::poll_event`], and wake at [`Session::poll_timeout`];
//! 5. show events: [`Event::Message`] as `Name: text` (nothing if
//!    `already_shown`), [`Event::History`] marked as history with its age,
//!    [`Event::Lost`] as `[2 messages from Ann could not be recovered]`,
//!    [`Event::Joined`] / [`Event::Left`] as `Ann joined`, `Ann left`,
//!    `Ann left (not heard from for 15 s)`, [`Event::Plain`] as today's plain
//!    datagrams, [`Event::Refused`] as counts of what a private room refused. Text from the network is untrusted: neutralise control
//!    characters before display, as for plain datagrams;
//! 6. `who` lists [`Session::members`] (name, address, idle since
//!    `last_heard`; `id: None` is a plain client); two members with one name
//!    are told apart by their id ([`MemberId`] displays 4 hex digits);
//! 7. on leaving, [`Session::handle_leave`], drain (a goodbye goes out),
//!    then drop the session.

pub mod frame;
pub mod limits;
pub mod seal;
mod session;

pub use frame::{FrameError, MemberId};
pub use seal::{
    DEPARTED_MEMORY, DatagramBuf, MAX_CLOCK_SKEW, MAX_DEPARTED, MAX_SEALED, MAX_SEALERS,
    REFUSED_NOTICE, REPLAY_WINDOW, SEAL_OVERHEAD, Sealing, WALL_RESYNC,
};
pub use session::{
    CONTROL_PORT_OFFSET, Channel, Event, MemberInfo, MessageText, Name, Session, Stats, Transmit,
    UsageError, control_port,
};

#[cfg(test)]
mod tests;
