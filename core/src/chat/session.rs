//! One member's session in one room: the reliable chat state machine.

use core::net::SocketAddr;
use core::time::Duration;

use super::frame::{
    self, Data, DigestEntry, FLAG_REPAIR, Frame, FrameBuf, MemberId, Nak, decode, encode_bye,
    encode_data, encode_heartbeat, encode_nak, is_frame, is_valid_name,
};
use super::limits::{
    AGE_SLACK, CATCHUP, HEARTBEAT_MAX, HEARTBEAT_MIN, HISTORY_AGE, MAX_DIGEST, MAX_EVENTS,
    MAX_FRAME, MAX_HOLDBACK, MAX_MEMBERS, MAX_MESSAGE, MAX_NAK_RANGE, MAX_OUTBOX, MAX_PENDING_NAKS,
    MAX_PENDING_REPAIRS, MAX_STORED, MEMBER_TIMEOUT, NAK_DELAY, NAK_RATE, NAK_RETRY, NAK_RETRY_MAX,
    NAK_SPREAD, NAK_TRIES, OWN_ECHO, REPAIR_DELAY, REPAIR_HOLDOFF, REPAIR_OWN_SPREAD, REPAIR_RATE,
    REPAIR_SPREAD, WINDOW,
};
use crate::Instant;

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
    /// The payload.
    pub data: FrameBuf,
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
    /// The host has not drained [`Session::poll_transmit`].
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
            UsageError::Busy => f.write_str("the outgoing queue is full; drain it first"),
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

/// A token bucket: at most `rate` per second, bursts of `rate`.
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
        let us = u64::try_from(now.saturating_since(self.at).as_micros()).unwrap_or(u64::MAX);
        let cap = u64::from(rate) * 1000;
        self.milli = self
            .milli
            .saturating_add(us.saturating_mul(u64::from(rate)) / 1000)
            .min(cap);
        self.at = now;
        if self.milli >= 1000 {
            self.milli -= 1000;
            true
        } else {
            false
        }
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
/// datagram can make it panic. It is about 230 KiB (mostly the stored
/// messages and the outgoing queue): a host keeps it boxed.
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
    nak_bucket: Bucket,
    repair_bucket: Bucket,
    closed: bool,
    stats: Stats,
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
            naks: heapless::Vec::new(),
            nak_overflow: false,
            repairs: heapless::Vec::new(),
            outbox: heapless::Deque::new(),
            events: heapless::Deque::new(),
            echo: heapless::Deque::new(),
            plain_shown: heapless::Deque::new(),
            self_addr: None,
            nak_bucket: Bucket::new(now, NAK_RATE),
            repair_bucket: Bucket::new(now, REPAIR_RATE),
            closed: false,
            stats: Stats::default(),
        })
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
    /// port.
    pub fn handle_send(&mut self, now: Instant, text: &str) -> Result<(), UsageError> {
        self.tick(now);
        if self.closed {
            return Err(UsageError::Closed);
        }
        if text.len() > MAX_MESSAGE {
            return Err(UsageError::TooLong);
        }
        if self.outbox.capacity() - self.outbox.len() < 2 {
            return Err(UsageError::Busy);
        }
        let seq = self.next_seq;
        let mut t = MessageText::new();
        t.push_str(text).map_err(|_| UsageError::TooLong)?;
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
        Ok(())
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
        self.run_timers();
    }

    /// The user leaves the room: a goodbye goes out, and the session does
    /// nothing more.
    pub fn handle_leave(&mut self, now: Instant) {
        self.tick(now);
        if !self.closed {
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
        let len = data.len() as u64;
        if self.outbox.push_back(Transmit { channel, data }).is_err() {
            return false;
        }
        self.stats.bytes_sent += len;
        true
    }

    fn outbox_free(&self) -> usize {
        self.outbox.capacity() - self.outbox.len()
    }

    fn find(&self, id: MemberId) -> Option<usize> {
        self.members
            .iter()
            .position(|m| m.used && !m.plain && m.id == id)
    }

    /// The member's index, making an entry if there is room.
    fn member(&mut self, id: MemberId) -> Option<usize> {
        if let Some(i) = self.find(id) {
            return Some(i);
        }
        let fresh = Member {
            used: true,
            id,
            plain: false,
            name: Name::new(),
            addr: None,
            last_heard: self.now,
            present: false,
            started: false,
            next: 1,
            hi: 0,
            hi_sent: 0,
            lost: 0,
        };
        self.place(fresh)
    }

    fn place(&mut self, fresh: Member) -> Option<usize> {
        if let Some(i) = self.members.iter().position(|m| !m.used) {
            self.members[i] = fresh;
            return Some(i);
        }
        if self.members.push(fresh.clone()).is_ok() {
            return Some(self.members.len() - 1);
        }
        // Full: forget an absent entry with nothing pending, heard longest ago.
        let now = self.now;
        let victim = (0..self.members.len())
            .filter(|&i| {
                let m = &self.members[i];
                !m.present
                    && m.lost == 0
                    && now.saturating_since(m.last_heard) >= MEMBER_TIMEOUT
                    && !self.store.iter().any(|s| s.origin == m.id && !s.delivered)
                    && !self.naks.iter().any(|n| n.origin == m.id)
            })
            .min_by_key(|&i| self.members[i].last_heard)?;
        self.members[victim] = fresh;
        self.ready &= !(1 << victim);
        Some(victim)
    }

    fn on_plain(&mut self, from: SocketAddr, data: &[u8]) {
        if is_frame(data) {
            self.stats.malformed += 1;
            return;
        }
        if self.self_addr == Some(from) {
            return;
        }
        let hash = fnv1a(data);
        if let Some(i) = self.echo.iter().position(|&h| h == hash) {
            // Our own copy, back through multicast loopback.
            let mut keep: heapless::Deque<u64, OWN_ECHO> = heapless::Deque::new();
            for (j, &h) in self.echo.iter().enumerate() {
                if j != i {
                    let _ = keep.push_back(h);
                }
            }
            self.echo = keep;
            return;
        }
        if self
            .members
            .iter()
            .any(|m| m.used && !m.plain && m.addr == Some(from))
        {
            // The plain copy of a roomcast member's message: it is shown
            // from the frame, in order, exactly once.
            self.stats.plain_copies += 1;
            return;
        }
        if self.events.is_full() {
            self.stats.dropped += 1;
            return;
        }
        let n = data.len().min(MAX_FRAME);
        let bytes = FrameBuf::from_slice(&data[..n]).unwrap_or_default();
        let now = self.now;
        let idx = match self
            .members
            .iter()
            .position(|m| m.used && m.plain && m.addr == Some(from))
        {
            Some(i) => Some(i),
            None => self.place(Member {
                used: true,
                id: MemberId(0),
                plain: true,
                name: plain_name(data),
                addr: Some(from),
                last_heard: now,
                present: true,
                started: false,
                next: 1,
                hi: 0,
                hi_sent: 0,
                lost: 0,
            }),
        };
        if let Some(i) = idx {
            self.members[i].last_heard = now;
            self.members[i].present = true;
        }
        if self.plain_shown.is_full() {
            let _ = self.plain_shown.pop_front();
        }
        let _ = self.plain_shown.push_back((from, hash));
        let _ = self.events.push_back(Event::Plain { from, data: bytes });
    }

    fn on_frame(&mut self, from: SocketAddr, sender: MemberId, frame: Frame<'_>) {
        if sender == self.me {
            self.self_addr = Some(from);
            return;
        }
        let Some(si) = self.member(sender) else {
            self.stats.dropped += 1;
            return;
        };
        if matches!(frame, Frame::Bye) {
            let m = &mut self.members[si];
            m.last_heard = self.now;
            if m.present {
                m.present = false;
                let ev = Event::Left {
                    id: sender,
                    name: m.name.clone(),
                    timed_out: false,
                };
                if self.events.push_back(ev).is_err() {
                    self.stats.dropped += 1;
                }
            }
            return;
        }
        let name = match frame {
            Frame::Heartbeat(h) => Some(h.name),
            Frame::Data(d) if d.origin == sender => Some(d.name),
            _ => None,
        };
        self.heard(si, from, name);
        match frame {
            Frame::Data(d) => self.on_data(&d),
            Frame::Nak(n) => self.on_nak(&n),
            Frame::Heartbeat(h) => {
                let sent = self.now_us() - i64::from(h.hi_age_ms) * 1000;
                self.on_hi(si, h.hi, sent);
                for e in h.digest() {
                    if e.origin == self.me || e.hi == 0 {
                        continue;
                    }
                    if let Some(oi) = self.member(e.origin) {
                        let sent = self.now_us() - i64::from(e.age_ms) * 1000;
                        self.on_hi(oi, e.hi, sent);
                    }
                }
            }
            Frame::Bye => {}
        }
    }

    /// A frame came straight from member `i`.
    fn heard(&mut self, i: usize, from: SocketAddr, name: Option<&str>) {
        let now = self.now;
        if self.members[i].addr != Some(from) {
            // Its plain copies may have been taken for a plain client's.
            for m in self.members.iter_mut() {
                if m.used && m.plain && m.addr == Some(from) {
                    m.used = false;
                    m.present = false;
                }
            }
        }
        let m = &mut self.members[i];
        m.last_heard = now;
        m.addr = Some(from);
        if let Some(name) = name
            && m.name.as_str() != name
        {
            m.name.clear();
            let _ = m.name.push_str(name);
        }
        if !m.present && !m.name.is_empty() {
            m.present = true;
            let ev = Event::Joined {
                id: m.id,
                name: m.name.clone(),
                addr: from,
            };
            if self.events.push_back(ev).is_err() {
                self.stats.dropped += 1;
            }
        }
    }

    fn on_data(&mut self, d: &Data<'_>) {
        // Whoever sent it, the message is out: no need to repair it now.
        self.repairs
            .retain(|r| !(r.origin == d.origin && r.seq == d.seq));
        let now = self.now;
        let repair = d.flags & FLAG_REPAIR != 0;
        if let Some(s) = self
            .store
            .iter_mut()
            .find(|s| s.origin == d.origin && s.seq == d.seq)
        {
            if repair {
                s.last_sent = Some(now);
            }
            return;
        }
        if d.origin == self.me {
            return;
        }
        let Some(oi) = self.member(d.origin) else {
            self.stats.dropped += 1;
            return;
        };
        if self.members[oi].name.is_empty() {
            // Known so far only from digests: the frame names it.
            let _ = self.members[oi].name.push_str(d.name);
        }
        let sent = self.now_us() - i64::from(d.age_ms) * 1000;
        if !self.members[oi].started {
            self.start(oi, d.seq, sent);
        }
        let m = &self.members[oi];
        if d.seq < m.next {
            return; // Delivered (or given up) already.
        }
        if d.seq >= m.next.saturating_add(WINDOW) {
            self.on_hi(oi, d.seq, sent);
            return;
        }
        let in_order = d.seq == m.next;
        if !in_order && self.held_back() >= MAX_HOLDBACK {
            self.stats.dropped += 1;
            self.on_hi(oi, d.seq, sent);
            return;
        }
        if let Some(k) = self
            .naks
            .iter()
            .position(|n| n.origin == d.origin && n.seq == d.seq)
        {
            self.naks.swap_remove(k);
        }
        let mut name = Name::new();
        let _ = name.push_str(d.name);
        let mut text = MessageText::new();
        let _ = text.push_str(d.text);
        if self.store_message(d.origin, d.seq, sent, false, name, text) {
            if let Some(s) = self.store.last_mut().filter(|_| repair) {
                s.last_sent = Some(now);
            }
            if in_order {
                self.ready |= 1 << oi;
            }
        } else {
            self.stats.dropped += 1;
        }
        self.on_hi(oi, d.seq, sent);
    }

    /// Stores a message, forgetting the oldest delivered one if full.
    fn store_message(
        &mut self,
        origin: MemberId,
        seq: u32,
        sent: i64,
        delivered: bool,
        name: Name,
        text: MessageText,
    ) -> bool {
        if self.store.is_full() {
            let Some(oldest) = (0..self.store.len())
                .filter(|&i| self.store[i].delivered)
                .min_by_key(|&i| self.store[i].sent)
            else {
                return false;
            };
            self.store.swap_remove(oldest);
        }
        self.store
            .push(Stored {
                origin,
                seq,
                sent,
                delivered,
                last_sent: None,
                name,
                text,
            })
            .is_ok()
    }

    /// First news of a sender: ask for up to its last [`CATCHUP`] messages.
    fn start(&mut self, i: usize, hi: u32, sent: i64) {
        let m = &mut self.members[i];
        m.started = true;
        m.next = hi.saturating_sub(CATCHUP).saturating_add(1).max(1);
        m.hi = m.next - 1;
        m.hi_sent = sent;
    }

    /// Member `i`'s highest message number is at least `hi`, sent at `sent`.
    fn on_hi(&mut self, i: usize, hi: u32, sent: i64) {
        if !self.members[i].started {
            self.start(i, hi, sent);
        }
        let m = &mut self.members[i];
        if hi <= m.hi {
            return;
        }
        let id = m.id;
        if hi > m.hi.max(m.next).saturating_add(CATCHUP) {
            // A jump past what catch-up would ask for: resynchronise,
            // reporting what is skipped in one notice.
            let new_next = hi - CATCHUP + 1;
            let skipped = new_next - m.next;
            m.lost = m.lost.saturating_add(skipped);
            m.next = new_next;
            self.ready |= 1 << i;
            self.store
                .retain(|s| !(s.origin == id && !s.delivered && s.seq < new_next));
            self.naks.retain(|n| !(n.origin == id && n.seq < new_next));
        }
        let m = &mut self.members[i];
        m.hi = hi;
        m.hi_sent = sent;
        self.scan(i);
    }

    /// Makes request entries for member `i`'s missing messages in its window.
    fn scan(&mut self, i: usize) {
        let m = &self.members[i];
        let (id, next, hi) = (m.id, m.next, m.hi);
        let end = hi.min(next.saturating_add(WINDOW - 1));
        let mut s = next;
        while s <= end && s != 0 {
            let have = self.store.iter().any(|x| x.origin == id && x.seq == s)
                || self.naks.iter().any(|n| n.origin == id && n.seq == s);
            if !have {
                let due = self.now + NAK_DELAY + self.rng.upto(NAK_SPREAD);
                let entry = NakEntry {
                    origin: id,
                    seq: s,
                    due,
                    tries: 0,
                    gave_up: false,
                    silent: false,
                };
                if self.naks.push(entry).is_err() {
                    self.nak_overflow = true;
                    return;
                }
            }
            s = s.wrapping_add(1);
        }
    }

    fn retry_delay(&mut self, tries: u8) -> Duration {
        let base = NAK_RETRY
            .saturating_mul(1 << u32::from(tries.min(8)))
            .min(NAK_RETRY_MAX);
        base + self.rng.upto(base)
    }

    fn on_nak(&mut self, n: &Nak) {
        let now = self.now;
        for k in 0..u32::from(n.count.min(MAX_NAK_RANGE)) {
            let Some(seq) = n.first.checked_add(k) else {
                break;
            };
            // Someone else asked: wait for the repair rather than ask too.
            if let Some(j) = self
                .naks
                .iter()
                .position(|e| e.origin == n.origin && e.seq == seq && !e.gave_up)
            {
                let tries = self.naks[j].tries.saturating_add(1);
                let delay = self.retry_delay(tries);
                self.naks[j].tries = tries;
                self.naks[j].due = now + delay;
            }
            // On a first request, leave the answer to the origin if it is
            // here: others answer when it is gone or its repair was lost.
            let origin_here =
                n.origin != self.me && self.find(n.origin).is_some_and(|i| self.members[i].present);
            if origin_here && n.attempt < 2 {
                continue;
            }
            let held = self
                .store
                .iter()
                .find(|s| s.origin == n.origin && s.seq == seq);
            let Some(s) = held else { continue };
            if s.last_sent
                .is_some_and(|t| now.saturating_since(t) < REPAIR_HOLDOFF)
            {
                continue;
            }
            if self
                .repairs
                .iter()
                .any(|r| r.origin == n.origin && r.seq == seq)
            {
                continue;
            }
            let delay = if n.origin == self.me {
                self.rng.upto(REPAIR_OWN_SPREAD)
            } else {
                REPAIR_DELAY + self.rng.upto(REPAIR_SPREAD)
            };
            let entry = RepairEntry {
                origin: n.origin,
                seq,
                due: now + delay,
            };
            if self.repairs.push(entry).is_err() {
                self.stats.dropped += 1;
                break;
            }
        }
    }

    fn run_timers(&mut self) {
        let now = self.now;
        // Members not heard from.
        for i in 0..self.members.len() {
            let m = &self.members[i];
            if !(m.used && m.present) || now.saturating_since(m.last_heard) < MEMBER_TIMEOUT {
                continue;
            }
            if m.plain {
                self.members[i].present = false;
                self.members[i].used = false;
                continue;
            }
            if self.events.is_full() {
                break;
            }
            let m = &mut self.members[i];
            m.present = false;
            let ev = Event::Left {
                id: m.id,
                name: m.name.clone(),
                timed_out: true,
            };
            let _ = self.events.push_back(ev);
        }
        // Repairs.
        let mut k = 0;
        while k < self.repairs.len() {
            let r = self.repairs[k];
            if r.due > now {
                k += 1;
                continue;
            }
            if self.outbox_free() == 0 {
                break;
            }
            self.repairs.swap_remove(k);
            self.send_repair(r.origin, r.seq);
        }
        // Requests.
        if self.nak_overflow {
            self.nak_overflow = false;
            for i in 0..self.members.len() {
                let m = &self.members[i];
                if m.used && !m.plain && m.started && m.next <= m.hi {
                    self.scan(i);
                }
            }
        }
        let mut k = 0;
        while k < self.naks.len() {
            let e = self.naks[k];
            if e.gave_up || e.due > now {
                k += 1;
                continue;
            }
            if e.tries >= NAK_TRIES {
                self.give_up(k);
                k += 1;
                continue;
            }
            if self.outbox_free() < 2 {
                break;
            }
            self.send_nak(e.origin, e.seq);
            k += 1;
        }
        // Heartbeat.
        if self.hb_due <= now && self.outbox_free() > 0 {
            self.send_heartbeat();
            self.hb_due = now + self.hb_interval;
            self.hb_interval = (self.hb_interval * 2).min(HEARTBEAT_MAX);
        }
    }

    fn send_repair(&mut self, origin: MemberId, seq: u32) {
        let now = self.now;
        let Some(j) = self
            .store
            .iter()
            .position(|s| s.origin == origin && s.seq == seq)
        else {
            return;
        };
        if !self.repair_bucket.take(now, REPAIR_RATE) {
            self.stats.dropped += 1;
            return;
        }
        let s = &self.store[j];
        let data = Data {
            flags: FLAG_REPAIR,
            origin,
            seq,
            age_ms: self.age_ms(s.sent),
            name: &s.name,
            text: &s.text,
        };
        if let Some(frame) = encode_data(self.me, &data) {
            self.store[j].last_sent = Some(now);
            if self.transmit(Channel::Control, frame) {
                self.stats.repairs_sent += 1;
            }
        }
    }

    /// Sends one request for the run of missing messages that starts at
    /// `(origin, seq)`.
    fn send_nak(&mut self, origin: MemberId, seq: u32) {
        let now = self.now;
        if !self.nak_bucket.take(now, NAK_RATE) {
            let delay = NAK_RETRY;
            for e in self
                .naks
                .iter_mut()
                .filter(|e| e.origin == origin && e.seq == seq)
            {
                e.due = now + delay;
            }
            return;
        }
        let mut count: u8 = 1;
        while count < MAX_NAK_RANGE {
            let s = seq.wrapping_add(u32::from(count));
            if !self
                .naks
                .iter()
                .any(|e| e.origin == origin && e.seq == s && !e.gave_up)
            {
                break;
            }
            count += 1;
        }
        let attempt = self
            .naks
            .iter()
            .find(|e| e.origin == origin && e.seq == seq)
            .map_or(1, |e| e.tries.saturating_add(1));
        for k in 0..self.naks.len() {
            let e = self.naks[k];
            if e.origin == origin && !e.gave_up && e.seq.wrapping_sub(seq) < u32::from(count) {
                let tries = e.tries.saturating_add(1);
                let delay = self.retry_delay(tries);
                self.naks[k].tries = tries;
                self.naks[k].due = now + delay;
            }
        }
        let frame = encode_nak(
            self.me,
            &Nak {
                origin,
                first: seq,
                count,
                attempt,
            },
        );
        if self.transmit(Channel::Control, frame) {
            self.stats.naks_sent += 1;
        }
    }

    /// Request entry `k` ran out of tries: the message is lost, unless it
    /// was sent before this member arrived (then it is old history).
    fn give_up(&mut self, k: usize) {
        let e = self.naks[k];
        let Some(i) = self.find(e.origin) else {
            self.naks.swap_remove(k);
            return;
        };
        // When was the next message we know of sent? This one is older.
        let later = self
            .store
            .iter()
            .filter(|s| s.origin == e.origin && s.seq > e.seq)
            .min_by_key(|s| s.seq)
            .map(|s| s.sent);
        let m = &self.members[i];
        let later = later.or((m.hi > e.seq).then_some(m.hi_sent));
        let joined = i64::try_from(self.joined.as_micros()).unwrap_or(i64::MAX);
        let silent = later.is_some_and(|t| t < joined - micros(AGE_SLACK));
        self.naks[k].gave_up = true;
        self.naks[k].silent = silent;
        self.ready |= 1 << i;
    }

    /// The next event of member `i`, if it has one now.
    fn next_of(&mut self, i: usize) -> Option<Event> {
        loop {
            let m = &self.members[i];
            if !m.used || m.plain {
                return None;
            }
            let (id, next) = (m.id, m.next);
            if m.lost > 0 {
                let count = m.lost;
                let name = m.name.clone();
                self.members[i].lost = 0;
                self.stats.lost += u64::from(count);
                return Some(Event::Lost {
                    from: id,
                    name,
                    count,
                });
            }
            if let Some(j) = self
                .store
                .iter()
                .position(|s| s.origin == id && s.seq == next && !s.delivered)
            {
                self.store[j].delivered = true;
                self.members[i].next = next.saturating_add(1);
                let s = &self.store[j];
                let age = self.now_us().saturating_sub(s.sent).max(0);
                let in_room = micros(self.now.saturating_since(self.joined));
                if age <= in_room.saturating_add(micros(AGE_SLACK)) {
                    self.stats.delivered += 1;
                    let already_shown = self.was_shown_plain(i, j);
                    let s = &self.store[j];
                    return Some(Event::Message {
                        from: id,
                        name: s.name.clone(),
                        text: s.text.clone(),
                        already_shown,
                    });
                }
                let age = Duration::from_micros(u64::try_from(age).unwrap_or(0));
                if age <= HISTORY_AGE {
                    self.stats.delivered += 1;
                    return Some(Event::History {
                        from: id,
                        name: s.name.clone(),
                        text: s.text.clone(),
                        age,
                    });
                }
                continue;
            }
            if let Some(k) = self
                .naks
                .iter()
                .position(|e| e.origin == id && e.seq == next && e.gave_up)
            {
                let silent = self.naks[k].silent;
                self.naks.swap_remove(k);
                let m = &mut self.members[i];
                m.next = next.saturating_add(1);
                if !silent {
                    m.lost = m.lost.saturating_add(1);
                }
                // Report a run of lost messages as one notice.
                let more = self
                    .naks
                    .iter()
                    .any(|e| e.origin == id && e.seq == next.saturating_add(1) && e.gave_up);
                if more {
                    continue;
                }
                // Messages past the window become requestable now.
                self.scan(i);
                continue;
            }
            self.scan(i);
            return None;
        }
    }

    /// Whether stored message `j` of member `i` was shown already from its
    /// plain copy (and forgets that it was).
    fn was_shown_plain(&mut self, i: usize, j: usize) -> bool {
        // A member never heard directly (only through repairs) has no
        // address yet: then the name and text alone must match.
        let addr = self.members[i].addr;
        if self.plain_shown.is_empty() {
            return false;
        }
        let s = &self.store[j];
        let mut plain = FrameBuf::new();
        let _ = plain.extend_from_slice(s.name.as_bytes());
        let _ = plain.extend_from_slice(b": ");
        let _ = plain.extend_from_slice(s.text.as_bytes());
        let hash = fnv1a(&plain);
        let Some(k) = self
            .plain_shown
            .iter()
            .position(|&(a, h)| h == hash && addr.is_none_or(|addr| addr == a))
        else {
            return false;
        };
        let mut keep: heapless::Deque<(SocketAddr, u64), OWN_ECHO> = heapless::Deque::new();
        for (n, &p) in self.plain_shown.iter().enumerate() {
            if n != k {
                let _ = keep.push_back(p);
            }
        }
        self.plain_shown = keep;
        true
    }

    fn send_heartbeat(&mut self) {
        let mut digest: heapless::Vec<DigestEntry, MAX_DIGEST> = heapless::Vec::new();
        let n = self.members.len();
        for step in 0..n {
            if digest.is_full() {
                break;
            }
            let i = (self.digest_cursor + step) % n;
            let m = &self.members[i];
            if m.used && !m.plain && m.started && m.hi > 0 {
                let _ = digest.push(DigestEntry {
                    origin: m.id,
                    hi: m.hi,
                    age_ms: self.age_ms(m.hi_sent),
                });
            }
        }
        self.digest_cursor = (self.digest_cursor + MAX_DIGEST) % n.max(1);
        let hi = self.next_seq - 1;
        let hi_age_ms = u32::try_from(self.now.saturating_since(self.last_send).as_millis())
            .unwrap_or(u32::MAX);
        let low = self
            .store
            .iter()
            .filter(|s| s.origin == self.me)
            .map(|s| s.seq)
            .min()
            .unwrap_or(0);
        if let Some(frame) = encode_heartbeat(self.me, &self.name, hi, hi_age_ms, low, &digest) {
            let len = frame.len() as u64;
            if self.transmit(Channel::Control, frame) {
                self.stats.heartbeats_sent += 1;
                self.stats.heartbeat_bytes += len;
            }
        }
    }
}

/// The name of a plain client: what precedes `: ` in its datagram, if that
/// is a valid name; else `?`.
fn plain_name(data: &[u8]) -> Name {
    let mut name = Name::new();
    let head = data
        .windows(2)
        .position(|w| w == b": ")
        .and_then(|p| core::str::from_utf8(&data[..p]).ok())
        .filter(|n| frame::is_valid_name(n));
    let _ = name.push_str(head.unwrap_or("?"));
    name
}
