//! One member's session in one room: the reliable chat state machine.

use core::net::SocketAddr;
use core::time::Duration;

use super::frame::{Data, FrameBuf, MemberId, decode, encode_bye, encode_data, is_valid_name};
use super::limits::{
    HEARTBEAT_MIN, MAX_EVENTS, MAX_MEMBERS, MAX_MESSAGE, MAX_OUTBOX, MAX_PENDING_NAKS,
    MAX_PENDING_REPAIRS, MAX_STORED, MEMBER_TIMEOUT, NAK_DELAY, NAK_RATE, OWN_ECHO, REPAIR_RATE,
    SEND_BURST, SEND_RATE,
};
use super::seal::{DatagramBuf, Sealing};
use crate::Instant;

mod deliver;
mod presence;
mod receive;
mod repair;
mod sealed;
mod send;

/// A display name as the session keeps it.
pub type Name = heapless::String<{ super::limits::MAX_NAME }>;

/// The text of one message.
pub type MessageText = heapless::String<MAX_MESSAGE>;

/// Which of a room's two ports a datagram came in on or goes out to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Channel {
    /// The room's own port (from the directory): plain `Name: text`
    /// datagrams, which every client, roomcast or not, reads.
    Plain,
    /// The control port (the room's port + [`CONTROL_PORT_OFFSET`]):
    /// roomcast frames, which plain clients never receive.
    Control,
}

/// The control port of a room is its port plus this (the same group).
pub const CONTROL_PORT_OFFSET: u16 = 1;

/// The control port of a room on `room_port`; `None` for port 65535, which
/// has no control port (such a room is plain only).
pub fn control_port(room_port: u16) -> Option<u16> {
    room_port.checked_add(CONTROL_PORT_OFFSET)
}

/// A datagram the host must send to the room's group, on the port of
/// `channel`, from the socket it sends everything from (one source address
/// for both ports: receivers recognise a member's plain copies by it).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transmit {
    /// Which port.
    pub channel: Channel,
    /// The payload (in a private session a sealed frame, up to
    /// [`super::seal::MAX_SEALED`] bytes).
    pub data: DatagramBuf,
}

/// What the session tells the user.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// A message, in its sender's order, exactly once.
    Message {
        /// The sender.
        from: MemberId,
        /// The sender's name.
        name: Name,
        /// The text, as sent (the client makes it safe to show).
        text: MessageText,
        /// Its plain copy was already shown as [`Event::Plain`] (it came
        /// before anything else from this member): do not show it again.
        /// Its place in the sender's order is kept all the same.
        already_shown: bool,
    },
    /// A message sent before this member came in (catch-up).
    History {
        /// The sender.
        from: MemberId,
        /// The sender's name.
        name: Name,
        /// The text.
        text: MessageText,
        /// How long ago it was sent.
        age: Duration,
    },
    /// Messages of a sender that could not be recovered, in their place in
    /// the sender's order: `[2 messages from Ann could not be recovered]`.
    Lost {
        /// The sender.
        from: MemberId,
        /// The sender's name (empty if never heard directly).
        name: Name,
        /// How many.
        count: u32,
    },
    /// A plain datagram from a client that does not speak the room
    /// protocol, as received (at most [`MAX_FRAME`] bytes).
    Plain {
        /// Where it came from.
        from: SocketAddr,
        /// Its bytes, usually `Name: text`.
        data: FrameBuf,
    },
    /// A member was heard for the first time (or again after it left).
    Joined {
        /// Who.
        id: MemberId,
        /// Its name.
        name: Name,
        /// Its address.
        addr: SocketAddr,
    },
    /// A member left: it said goodbye, or was not heard from for
    /// [`MEMBER_TIMEOUT`] (`timed_out`).
    Left {
        /// Who.
        id: MemberId,
        /// Its name.
        name: Name,
        /// Whether it was silence, not a goodbye.
        timed_out: bool,
    },
    /// A private session refused datagrams (nothing of them is shown): the
    /// counts since the last such event. Told at the first refusal at once,
    /// then at most once per [`super::seal::REFUSED_NOTICE`].
    Refused {
        /// Sealed datagrams that did not open: wrong passphrase, tampered,
        /// or not for this room.
        undecryptable: u32,
        /// Sealed datagrams whose sender's clock is more than
        /// [`super::seal::MAX_CLOCK_SKEW`] off this one's.
        stale: u32,
        /// Unsealed datagrams: plain `Name: text` ones and plain frames.
        plain: u32,
    },
}

/// Misuse of the session by its caller.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum UsageError {
    /// A name that is empty, longer than [`super::limits::MAX_NAME`] bytes or
    /// has control characters.
    BadName,
    /// A message longer than [`MAX_MESSAGE`] bytes.
    TooLong,
    /// The send queue ([`super::limits::SEND_QUEUE_BYTES`]) has no room
    /// for this line: lines go out at most
    /// [`super::limits::SEND_RATE`] a second. Try again later (the roomcast
    /// client holds the user's input while [`Session::can_send`] is false).
    Busy,
    /// The session has left the room.
    Closed,
}

impl core::fmt::Display for UsageError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            UsageError::BadName => write!(
                f,
                "a name has 1 to {} bytes and no control characters",
                super::limits::MAX_NAME
            ),
            UsageError::TooLong => write!(f, "a message has at most {MAX_MESSAGE} bytes"),
            UsageError::Busy => write!(
                f,
                "too many lines are waiting to go out (at most {SEND_RATE} a second); \
                 send it again in a moment"
            ),
            UsageError::Closed => f.write_str("the session has left the room"),
        }
    }
}

/// One entry of the room's member list, for `who`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MemberInfo<'a> {
    /// The member's id; `None` for a plain client.
    pub id: Option<MemberId>,
    /// Its name (for a plain client, what precedes `: ` in its datagrams).
    pub name: &'a str,
    /// Where its datagrams come from.
    pub addr: SocketAddr,
    /// When it was last heard.
    pub last_heard: Instant,
}

/// Counters, for logs, the simulator and the benchmarks.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Own messages sent.
    pub messages_sent: u64,
    /// Requests (NAK frames) sent.
    pub naks_sent: u64,
    /// Repairs sent.
    pub repairs_sent: u64,
    /// Heartbeats sent.
    pub heartbeats_sent: u64,
    /// Bytes put out, all channels.
    pub bytes_sent: u64,
    /// Bytes of heartbeats.
    pub heartbeat_bytes: u64,
    /// Datagrams on the control port that were not valid frames.
    pub malformed: u64,
    /// Plain copies of roomcast messages recognised and not shown twice.
    pub plain_copies: u64,
    /// Datagrams dropped because a limit was reached.
    pub dropped: u64,
    /// Messages delivered to the user (including history).
    pub delivered: u64,
    /// Messages reported lost.
    pub lost: u64,
    /// Private: sealed datagrams that did not open.
    pub undecryptable: u64,
    /// Private: sealed datagrams refused for their sealed-at time.
    pub stale: u64,
    /// Private: sealed datagrams taken before (or below the replay window).
    pub replayed: u64,
    /// Private: control datagrams that were not sealed.
    pub unsealed: u64,
    /// Private: datagrams on the plain port, not shown.
    pub plain_refused: u64,
    /// Lines still in the send queue when the session left the room (never
    /// sent).
    pub unsent: u64,
}

#[derive(Clone, Debug)]
struct Member {
    used: bool,
    id: MemberId,
    plain: bool,
    name: Name,
    addr: Option<SocketAddr>,
    last_heard: Instant,
    present: bool,
    started: bool,
    /// The next message number to deliver.
    next: u32,
    /// The highest known message number.
    hi: u32,
    /// When `hi` was sent, on this session's clock (microseconds, may be
    /// before zero).
    hi_sent: i64,
    /// Messages given up, to report before the next one.
    lost: u32,
}

#[derive(Clone, Debug)]
struct Stored {
    origin: MemberId,
    seq: u32,
    /// When it was sent, on this session's clock, in microseconds.
    sent: i64,
    delivered: bool,
    last_sent: Option<Instant>,
    /// Where its name and text are, in `bodies`.
    slot: u16,
}

/// The bulky part of a stored message, kept apart from [`Stored`] so that
/// the store's scans (by origin and number) touch a few cache lines, not
/// [`MAX_STORED`] slots of 1.2 KiB.
#[derive(Clone, Debug)]
struct Body {
    name: Name,
    text: MessageText,
}

#[derive(Clone, Copy, Debug)]
struct NakEntry {
    origin: MemberId,
    seq: u32,
    due: Instant,
    tries: u8,
    gave_up: bool,
    /// Given up, but sent before this member arrived: skip it quietly.
    silent: bool,
}

#[derive(Clone, Copy, Debug)]
struct RepairEntry {
    origin: MemberId,
    seq: u32,
    due: Instant,
}

/// A token bucket: at most `rate` per second, bursts of `rate` (or of
/// `burst`, with [`Bucket::take_burst`]).
#[derive(Clone, Copy, Debug)]
struct Bucket {
    milli: u64,
    at: Instant,
}

impl Bucket {
    fn new(now: Instant, rate: u32) -> Self {
        Bucket {
            milli: u64::from(rate) * 1000,
            at: now,
        }
    }
    fn take(&mut self, now: Instant, rate: u32) -> bool {
        self.take_burst(now, rate, rate)
    }
    /// Thousandths of a token held at `now`.
    fn level(&self, now: Instant, rate: u32, burst: u32) -> u64 {
        let us = u64::try_from(now.saturating_since(self.at).as_micros()).unwrap_or(u64::MAX);
        let cap = u64::from(burst) * 1000;
        self.milli
            .saturating_add(us.saturating_mul(u64::from(rate)) / 1000)
            .min(cap)
    }
    fn take_burst(&mut self, now: Instant, rate: u32, burst: u32) -> bool {
        self.milli = self.level(now, rate, burst);
        self.at = self.at.max(now);
        if self.milli >= 1000 {
            self.milli -= 1000;
            true
        } else {
            false
        }
    }
    /// When the next token is there (`now` if it is already).
    fn ready_at(&self, now: Instant, rate: u32, burst: u32) -> Instant {
        let have = self.level(now, rate, burst);
        if have >= 1000 || rate == 0 {
            return now;
        }
        // Tokens accrue at `rate` thousandths per millisecond: round up.
        let us = ((1000 - have) * 1000).div_ceil(u64::from(rate));
        now + Duration::from_micros(us)
    }
}

/// splitmix64: small, seeded, good enough for timer jitter.
#[derive(Clone, Copy, Debug)]
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// A random duration in `[0, max]`.
    fn upto(&mut self, max: Duration) -> Duration {
        let us = u64::try_from(max.as_micros()).unwrap_or(u64::MAX);
        Duration::from_micros(self.next() % us.saturating_add(1))
    }
}

fn micros(d: Duration) -> i64 {
    i64::try_from(d.as_micros()).unwrap_or(i64::MAX)
}

fn fnv1a(data: &[u8]) -> u64 {
    data.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// One member's session in one room: sequence numbers, repair, presence
/// and catch-up (history), sans-IO.
///
/// # The run loop
///
/// - datagrams from the room's two ports go to [`Session::handle_datagram`],
///   a line the user sends to [`Session::handle_send`], and when
///   [`Session::poll_timeout`] is due, [`Session::handle_timeout`];
/// - after every `handle_*` call, drain [`Session::poll_transmit`] and
///   [`Session::poll_event`] until both say `None` (the drain rule), then
///   ask [`Session::poll_timeout`] again.
///
/// Every call does work bounded by the named limits of
/// [`crate::chat::limits`]; the session's memory is fixed at creation. No
/// datagram can make it panic. It is about 470 KiB (mostly the stored
/// messages, [`MAX_STORED`]): a host keeps it boxed.
#[derive(Clone, Debug)]
pub struct Session {
    me: MemberId,
    name: Name,
    now: Instant,
    joined: Instant,
    rng: Rng,
    next_seq: u32,
    last_send: Instant,
    hb_due: Instant,
    hb_interval: Duration,
    digest_cursor: usize,
    members: heapless::Vec<Member, MAX_MEMBERS>,
    /// Members that may have something to deliver (bit per index).
    ready: u64,
    rr: usize,
    store: heapless::Vec<Stored, MAX_STORED>,
    /// Names and texts of the stored messages, by `Stored::slot`.
    bodies: heapless::Vec<Body, MAX_STORED>,
    /// Slots of `bodies` no stored message uses.
    free: heapless::Vec<u16, MAX_STORED>,
    naks: heapless::Vec<NakEntry, MAX_PENDING_NAKS>,
    /// A gap could not get an entry: scan again at the next timer.
    nak_overflow: bool,
    repairs: heapless::Vec<RepairEntry, MAX_PENDING_REPAIRS>,
    outbox: heapless::Deque<Transmit, MAX_OUTBOX>,
    events: heapless::Deque<Event, MAX_EVENTS>,
    echo: heapless::Deque<u64, OWN_ECHO>,
    /// Plain datagrams shown from addresses not known as members, as
    /// (address, hash), in case a member's frames turn up later.
    plain_shown: heapless::Deque<(SocketAddr, u64), OWN_ECHO>,
    self_addr: Option<SocketAddr>,
    /// Lines waiting for [`SEND_RATE`]: each a 2-byte length and the text.
    queue: send::ByteRing,
    /// How many lines `queue` holds.
    queued: usize,
    /// The pace of new messages: per second, and the burst
    /// ([`SEND_RATE`], [`SEND_BURST`] unless [`Session::set_pace`]).
    pace: (u32, u32),
    send_bucket: Bucket,
    nak_bucket: Bucket,
    repair_bucket: Bucket,
    closed: bool,
    stats: Stats,
    /// `Some` in a private room.
    sealing: Option<Sealing>,
    refusals: sealed::Refusals,
    /// In a private room: members that said goodbye, and when (see
    /// [`DEPARTED_MEMORY`](super::seal::DEPARTED_MEMORY)).
    departed: heapless::Deque<(MemberId, Instant), { super::seal::MAX_DEPARTED }>,
}

impl Session {
    /// A session for member `id` named `name`, entering the room at `now`.
    /// `seed` drives the timers' randomness (the host gives random bytes);
    /// `id` should be random too, so that members are told apart.
    ///
    /// The first heartbeat goes out at once (call [`Session::handle_timeout`]
    /// or just drain after the first timeout).
    pub fn new(now: Instant, id: MemberId, name: &str, seed: u64) -> Result<Self, UsageError> {
        if !is_valid_name(name) {
            return Err(UsageError::BadName);
        }
        let mut n = Name::new();
        n.push_str(name).map_err(|_| UsageError::BadName)?;
        Ok(Session {
            me: id,
            name: n,
            now,
            joined: now,
            rng: Rng(seed ^ id.0),
            next_seq: 1,
            last_send: now,
            hb_due: now,
            hb_interval: HEARTBEAT_MIN,
            digest_cursor: 0,
            members: heapless::Vec::new(),
            ready: 0,
            rr: 0,
            store: heapless::Vec::new(),
            bodies: heapless::Vec::new(),
            free: heapless::Vec::new(),
            naks: heapless::Vec::new(),
            nak_overflow: false,
            repairs: heapless::Vec::new(),
            outbox: heapless::Deque::new(),
            events: heapless::Deque::new(),
            echo: heapless::Deque::new(),
            plain_shown: heapless::Deque::new(),
            self_addr: None,
            queue: send::ByteRing::new(),
            queued: 0,
            pace: (SEND_RATE, SEND_BURST),
            send_bucket: Bucket {
                milli: u64::from(SEND_BURST) * 1000,
                at: now,
            },
            nak_bucket: Bucket::new(now, NAK_RATE),
            repair_bucket: Bucket::new(now, REPAIR_RATE),
            closed: false,
            stats: Stats::default(),
            sealing: None,
            refusals: sealed::Refusals::default(),
            departed: heapless::Deque::new(),
        })
    }

    /// A session in a private room: like [`Session::new`], but every frame
    /// goes out sealed with `sealing` (and no plain copy), and only sealed,
    /// fresh, new frames are taken in; the rest is counted and told as
    /// [`Event::Refused`]. See [`super::seal`].
    pub fn new_private(
        now: Instant,
        id: MemberId,
        name: &str,
        seed: u64,
        sealing: Sealing,
    ) -> Result<Self, UsageError> {
        let mut s = Self::new(now, id, name, seed)?;
        s.sealing = Some(sealing);
        Ok(s)
    }

    /// Whether this session is in a private room.
    pub fn is_private(&self) -> bool {
        self.sealing.is_some()
    }

    /// This member's id.
    pub fn id(&self) -> MemberId {
        self.me
    }

    /// This member's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Counters since the session began.
    pub fn stats(&self) -> Stats {
        self.stats
    }

    /// How many messages are held back waiting for an earlier one (at most
    /// [`MAX_HOLDBACK`]).
    pub fn held_back(&self) -> usize {
        self.store.iter().filter(|s| !s.delivered).count()
    }

    /// How many messages the session stores (at most [`MAX_STORED`]).
    pub fn stored(&self) -> usize {
        self.store.len()
    }

    /// Whether [`Session::handle_leave`] was called.
    pub fn is_closed(&self) -> bool {
        self.closed
    }

    /// The room's members as this session sees them, for `who`: roomcast
    /// members present, then plain clients heard within
    /// [`MEMBER_TIMEOUT`]. This member is not listed.
    pub fn members(&self) -> impl Iterator<Item = MemberInfo<'_>> {
        self.members
            .iter()
            .filter(|m| m.used && m.present)
            .filter_map(|m| {
                Some(MemberInfo {
                    id: (!m.plain).then_some(m.id),
                    name: &m.name,
                    addr: m.addr?,
                    last_heard: m.last_heard,
                })
            })
    }

    // ---- Inputs ----

    /// The user sends `text` to the room. It goes out as a frame on the
    /// control port and as one plain `Name: text` datagram on the room's
    /// port: at once if the sender's pace allows ([`SEND_RATE`], bursts of
    /// [`SEND_BURST`]), else from the send queue, in order, as it does
    /// (drain after [`Session::handle_timeout`] as ever). `Busy` if the
    /// queue has no room for it ([`SEND_QUEUE_BYTES`]).
    pub fn handle_send(&mut self, now: Instant, text: &str) -> Result<(), UsageError> {
        self.tick(now);
        if self.closed {
            return Err(UsageError::Closed);
        }
        if text.len() > MAX_MESSAGE {
            return Err(UsageError::TooLong);
        }
        if !self.enqueue(text) {
            return Err(UsageError::Busy);
        }
        self.pump();
        Ok(())
    }

    /// Sends `text` as the next message now (the send queue's pace allowed
    /// it and the outbox has room for both datagrams).
    fn send_now(&mut self, text: &str) {
        let seq = self.next_seq;
        let mut t = MessageText::new();
        let _ = t.push_str(text);
        let sent = self.now_us();
        self.store_message(self.me, seq, sent, true, self.name.clone(), t);
        self.next_seq = self.next_seq.saturating_add(1);
        let data = Data {
            flags: 0,
            origin: self.me,
            seq,
            age_ms: 0,
            name: &self.name,
            text,
        };
        if let Some(frame) = encode_data(self.me, &data) {
            self.transmit(Channel::Control, frame);
        }
        let mut plain = FrameBuf::new();
        let _ = plain.extend_from_slice(self.name.as_bytes());
        let _ = plain.extend_from_slice(b": ");
        let _ = plain.extend_from_slice(text.as_bytes());
        if self.echo.is_full() {
            let _ = self.echo.pop_front();
        }
        let _ = self.echo.push_back(fnv1a(&plain));
        self.transmit(Channel::Plain, plain);
        self.stats.messages_sent += 1;
        self.last_send = self.now;
        self.hb_interval = HEARTBEAT_MIN;
        self.hb_due = self.now + HEARTBEAT_MIN;
    }

    /// A datagram arrived on `channel` from `from`. Anything is accepted:
    /// what is not understood is counted and ignored.
    pub fn handle_datagram(
        &mut self,
        now: Instant,
        from: SocketAddr,
        channel: Channel,
        data: &[u8],
    ) {
        self.tick(now);
        if self.closed {
            return;
        }
        if self.sealing.is_some() {
            self.on_private(from, channel, data);
            return;
        }
        match channel {
            Channel::Plain => self.on_plain(from, data),
            Channel::Control => match decode(data) {
                Ok((sender, frame)) => self.on_frame(from, sender, frame),
                Err(_) => self.stats.malformed += 1,
            },
        }
    }

    /// Time passed; spurious calls are harmless.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.tick(now);
        if self.closed {
            return;
        }
        self.tell_refusals();
        self.run_timers();
        self.pump();
    }

    /// The host's wall clock reads `wall_ms` (Unix time in ms) at `now`. A
    /// private session's sealed-at times and freshness checks follow it
    /// (see [`Sealing::set_wall`]); an open session ignores it. A host
    /// calls it often, each turn of its loop, so that a step of its wall
    /// clock (NTP, a suspend) does not leave the session's clock behind.
    pub fn handle_wall_clock(&mut self, now: Instant, wall_ms: u64) {
        self.tick(now);
        let now = self.now;
        if let Some(sealing) = self.sealing.as_mut() {
            sealing.set_wall(now, wall_ms);
        }
    }

    /// The user leaves the room: a goodbye goes out, and the session does
    /// nothing more.
    pub fn handle_leave(&mut self, now: Instant) {
        self.tick(now);
        if !self.closed {
            self.drop_queue();
            self.transmit(Channel::Control, encode_bye(self.me));
            self.closed = true;
        }
    }

    // ---- Outputs ----

    /// The next datagram to send. Drain after every `handle_*` call.
    #[must_use]
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.outbox.pop_front()
    }

    /// The next thing to tell the user. Drain after every `handle_*` call.
    #[must_use]
    pub fn poll_event(&mut self) -> Option<Event> {
        if let Some(e) = self.events.pop_front() {
            return Some(e);
        }
        while self.ready != 0 {
            let n = self.members.len().max(1);
            let i = self.rr % n;
            self.rr = (i + 1) % n;
            if self.ready & (1 << i) == 0 {
                continue;
            }
            if let Some(e) = self.next_of(i) {
                // Stay on this member until it has nothing more.
                self.rr = i;
                return Some(e);
            }
            self.ready &= !(1 << i);
        }
        None
    }

    /// When [`Session::handle_timeout`] should next be called; never before
    /// the last `now` given. `None` once the session has left.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.closed {
            return None;
        }
        let mut at = self.hb_due;
        for n in self.naks.iter().filter(|n| !n.gave_up) {
            at = at.min(n.due);
        }
        for r in &self.repairs {
            at = at.min(r.due);
        }
        for m in self.members.iter().filter(|m| m.used && m.present) {
            at = at.min(m.last_heard + MEMBER_TIMEOUT);
        }
        if self.nak_overflow {
            at = at.min(self.now + NAK_DELAY);
        }
        if let Some(due) = self.refusals_due() {
            at = at.min(due);
        }
        if self.queued > 0 {
            at = at.min(
                self.send_bucket
                    .ready_at(self.now, self.pace.0, self.pace.1),
            );
        }
        Some(at.max(self.now))
    }

    // ---- Internals ----

    fn tick(&mut self, now: Instant) {
        self.now = self.now.max(now);
    }

    fn now_us(&self) -> i64 {
        i64::try_from(self.now.as_micros()).unwrap_or(i64::MAX)
    }

    fn age_ms(&self, sent: i64) -> u32 {
        u32::try_from(self.now_us().saturating_sub(sent).max(0) / 1000).unwrap_or(u32::MAX)
    }

    fn transmit(&mut self, channel: Channel, data: FrameBuf) -> bool {
        if self.outbox.is_full() {
            return false;
        }
        let Some(t) = self.outgoing(channel, data) else {
            return false;
        };
        let len = t.data.len() as u64;
        if self.outbox.push_back(t).is_err() {
            return false;
        }
        self.stats.bytes_sent += len;
        true
    }

    fn outbox_free(&self) -> usize {
        self.outbox.capacity() - self.outbox.len()
    }
}
