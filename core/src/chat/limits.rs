//! Every capacity, limit and timer of the room protocol, in one place.
//!
//! Each constant says what happens when it is reached. PROTOCOL.md ("The
//! room protocol") gives the same figures for other implementations. The
//! limits of private rooms (sealed frames: `MAX_SEALED`, `MAX_CLOCK_SKEW`,
//! `REPLAY_WINDOW`, `MAX_SEALERS`, `REFUSED_NOTICE`) are in
//! [`crate::chat::seal`].

use core::time::Duration;

// ---- Sizes ----

/// The largest frame, in bytes: the same bound as a plain chat datagram
/// ([`crate::limits::MAX_DATAGRAM`]), so a frame is never fragmented. A
/// longer datagram is not a frame and is ignored. (Sealed, in a private
/// room, a frame takes up to [`crate::chat::seal::MAX_SEALED`] bytes.)
pub const MAX_FRAME: usize = crate::limits::MAX_DATAGRAM;

/// The longest display name in a frame, in bytes (32 characters of up to 4
/// bytes). A frame with a longer name is ignored.
pub const MAX_NAME: usize = 4 * crate::limits::MAX_CHAT_NAME;

/// The longest message text, in bytes. [`crate::chat::Session::handle_send`]
/// refuses a longer one; with the longest name, both the frame and the plain
/// `Name: text` copy fit in [`MAX_FRAME`].
pub const MAX_MESSAGE: usize = 1000;

/// The most members (and plain clients) a session tracks: present ones and
/// absent senders whose messages it still handles. When full, a frame from
/// an unknown member is ignored (nothing is shown from it) until an absent
/// entry with nothing pending can be forgotten.
pub const MAX_MEMBERS: usize = 64;

/// How many messages a session stores: its own and others' delivered ones
/// (to repair them and to serve late joiners) and the ones held back waiting
/// for a gap to fill: [`OWN_STORED`] for its own, 128 for the others'.
/// When full, the oldest delivered message is forgotten (an own one only to
/// make room for a newer own one: see [`OWN_STORED`]); it can then no longer
/// be repaired from here. About 1.2 KiB each (a slot holds the longest name
/// and text), so 328 slots are about 380 KiB of the session.
pub const MAX_STORED: usize = OWN_STORED + 128;

/// How many of [`MAX_STORED`] are kept for the member's own messages (PGM's
/// transmit window): others' messages never push an own one out, and an
/// own message is forgotten only when a newer own one needs its slot. With
/// the sender's pace ([`SEND_RATE`]) a message therefore stays repairable
/// by its origin for at least `(OWN_STORED - SEND_BURST) / SEND_RATE` =
/// (200 - 10) / 10 = **19 s** after it is sent, even while its origin sends
/// without pause (a paste, a script).
///
/// Why 19 s is enough: a receiver that lost a message notices within 100 ms
/// (the origin's next message at [`SEND_RATE`]) or 250 ms (a heartbeat,
/// [`HEARTBEAT_MIN`]) and asks after 20-120 ms ([`NAK_DELAY`],
/// [`NAK_SPREAD`]); it asks again after 0.5-1 s, 1-2 s, then every 2-4 s
/// ([`NAK_RETRY`], [`NAK_RETRY_MAX`]). So its 1st to 6th requests go out
/// within 0.4, 1.4, 3.4, 7.4, 11.4 and 15.4 s of the loss. At 10 % loss at
/// every receiver a round fails only if the request or the repair is lost:
/// at most 1 - 0.9 * 0.9 = 0.19 (less, as others' requests and repairs from
/// other members help), so six rounds all fail with a chance below 0.19^6 =
/// 5e-5 per lost datagram, 1e-6 at the usual 0.1 per round. A message the
/// origin no longer has may still come from any other member that stores it.
pub const OWN_STORED: usize = 200;

/// The most new messages a member sends per second, sustained (a token
/// bucket of [`SEND_BURST`]; repairs, requests and heartbeats are not
/// counted: they have their own limits). Lines the user sends faster wait
/// in the send queue ([`SEND_QUEUE_BYTES`]). The pace keeps every message
/// repairable for a while ([`OWN_STORED`]) and keeps a burst within what a
/// receiver with a gap can hold back: 64 messages ([`WINDOW`]) are 6.4 s of
/// a sender at this rate, longer than four rounds of repair. A person types
/// far slower (a busy room is a few lines a second in all); a pasted or
/// piped block of 400 lines takes 40 s to go out.
pub const SEND_RATE: u32 = 10;

/// How many messages a member may send at once, beyond [`SEND_RATE`], after
/// a quiet while: a short paste goes out at once.
pub const SEND_BURST: u32 = 10;

/// The bytes of the send queue: lines accepted by
/// [`crate::chat::Session::handle_send`] that wait for [`SEND_RATE`], each
/// taking 2 bytes plus its text. When a line does not fit, `handle_send`
/// says `Busy` (the roomcast client holds the user's input meanwhile:
/// it stops reading it until the queue has room for the longest line). 16
/// KiB hold 16 lines of the longest kind ([`MAX_MESSAGE`]) or about 390 of
/// 40 bytes: 39 s at [`SEND_RATE`].
pub const SEND_QUEUE_BYTES: usize = 16 * 1024;

/// How many stored messages may be held back, waiting for an earlier one
/// from the same sender. An out-of-order message past this is dropped (it
/// is asked for again once the gap fills), so of the 128 slots for others'
/// messages at least `128 - MAX_HOLDBACK` = 32 always take the next message
/// in order (the session's own have [`OWN_STORED`]).
pub const MAX_HOLDBACK: usize = 96;

/// How far past the next expected message of a sender a message may be and
/// still be kept (and a gap asked for). Later ones are dropped and asked for
/// once the window moves.
pub const WINDOW: u32 = 64;

/// How many of a sender's most recent messages a member asks for when it
/// first hears of that sender (catch-up): the ones sent while it was in the
/// room are shown as messages, older ones as history. Also how far a single
/// claim may move a stream: a claimed jump of more than this past what is
/// known is taken as a resynchronisation, everything before the last
/// `CATCHUP` messages reported lost in one notice.
pub const CATCHUP: u32 = 50;

/// How many missing messages a session chases at once (one entry per
/// message). When full, further gaps are noticed again at the next timer.
pub const MAX_PENDING_NAKS: usize = 64;

/// How many repairs a session has scheduled at once. When full, a further
/// request is not answered from here (another member may answer; the
/// requester asks again).
pub const MAX_PENDING_REPAIRS: usize = 32;

/// The most messages one request (NAK) may name. A longer range in a frame
/// is cut to this.
pub const MAX_NAK_RANGE: u8 = 32;

/// The most (sender, highest number) entries in one heartbeat. Senders take
/// turns when there are more.
pub const MAX_DIGEST: usize = 8;

/// How many transmissions a session queues between two drains by the host.
/// A timer's work that does not fit waits for the next call (the deadline is
/// then "now").
pub const MAX_OUTBOX: usize = 32;

/// How many presence and plain-datagram events a session queues between two
/// drains. Past this, a plain datagram is dropped (counted); timeouts wait
/// for the next call. Messages are not queued: they are read from the store.
pub const MAX_EVENTS: usize = 16;

/// How many of its own recent plain copies a session recognises when
/// multicast loopback brings them back.
pub const OWN_ECHO: usize = 16;

// ---- Timers ----

/// A member waits a random time in `[NAK_DELAY, NAK_DELAY + NAK_SPREAD]`
/// after noticing a gap before asking for it, so that when many lose the
/// same message the first request suppresses the others (SRM, PGM's
/// `NAK_BO_IVL`).
pub const NAK_DELAY: Duration = Duration::from_millis(20);

/// See [`NAK_DELAY`].
pub const NAK_SPREAD: Duration = Duration::from_millis(100);

/// After a request (its own, or one heard from another member for the same
/// message) a member waits a random time in `[b, 2b]` before asking again,
/// with `b = NAK_RETRY * 2^tries` (tries so far, counting this one), at
/// most [`NAK_RETRY_MAX`].
pub const NAK_RETRY: Duration = Duration::from_millis(250);

/// The longest wait between two requests for one message.
pub const NAK_RETRY_MAX: Duration = Duration::from_secs(2);

/// After this many requests (own or heard) without the message, it is
/// given up and reported lost: 20 to 40 s with the back-off, longer than
/// any partition the simulator heals.
pub const NAK_TRIES: u8 = 12;

/// The original sender answers a request after a random time in
/// `[0, REPAIR_OWN_SPREAD]`.
pub const REPAIR_OWN_SPREAD: Duration = Duration::from_millis(10);

/// Any other member holding the message answers after a random time in
/// `[REPAIR_DELAY, REPAIR_DELAY + REPAIR_SPREAD]`, so that the sender
/// answers first when it can, and a repair heard from anyone cancels the
/// others' (SRM's repair timers).
pub const REPAIR_DELAY: Duration = Duration::from_millis(40);

/// See [`REPAIR_DELAY`].
pub const REPAIR_SPREAD: Duration = Duration::from_millis(400);

/// A member does not repair the same message twice within this time: a
/// flood of requests for one message gets one answer per period.
pub const REPAIR_HOLDOFF: Duration = Duration::from_millis(200);

/// The most requests a member sends per second (burst as large). Past it,
/// requests wait.
pub const NAK_RATE: u32 = 50;

/// The most repairs a member sends per second (burst as large). Past it, a
/// repair is not sent (the requester asks again), so a flood of requests
/// cannot make a member flood the room.
pub const REPAIR_RATE: u32 = 100;

/// The first heartbeat after a member's own message (or its arrival) comes
/// this long after it; each next one waits twice as long, up to
/// [`HEARTBEAT_MAX`] (PGM's SPM back-off). A lost last message is thus
/// noticed within about this time.
pub const HEARTBEAT_MIN: Duration = Duration::from_millis(250);

/// The longest time between two heartbeats of a quiet member.
pub const HEARTBEAT_MAX: Duration = Duration::from_secs(3);

/// A member not heard from for this long is taken to have left
/// (`Ann left (not heard from for 15 s)`): five heartbeats in a row lost.
pub const MEMBER_TIMEOUT: Duration = Duration::from_secs(15);

/// A message sent more than this before a member arrived is shown to it as
/// history, not as a message (the margin covers network delay and the
/// members' timers).
pub const AGE_SLACK: Duration = Duration::from_secs(2);

/// History older than this is not shown.
pub const HISTORY_AGE: Duration = Duration::from_secs(600);
