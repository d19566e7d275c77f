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

pub mod frame;
pub mod limits;
mod session;

pub use frame::{FrameError, MemberId};
pub use session::{
    CONTROL_PORT_OFFSET, Channel, Event, MemberInfo, MessageText, Name, Session, Stats, Transmit,
    UsageError, control_port,
};

#[cfg(test)]
mod tests;
