//! Receiving: plain datagrams and frames from the room.

use core::net::SocketAddr;

use super::{Body, Event, Member, MessageText, Name, Session, Stored, fnv1a};
use crate::chat::frame::{self, Data, FLAG_REPAIR, Frame, FrameBuf, MemberId, is_frame};
use crate::chat::limits::{MAX_FRAME, MAX_HOLDBACK, OWN_ECHO, OWN_STORED, WINDOW};

impl Session {
    pub(super) fn on_plain(&mut self, from: SocketAddr, data: &[u8]) {
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

    pub(super) fn on_frame(&mut self, from: SocketAddr, sender: MemberId, frame: Frame<'_>) {
        if sender == self.me {
            self.self_addr = Some(from);
            return;
        }
        let Some(si) = self.member(sender) else {
            self.stats.dropped += 1;
            return;
        };
        if matches!(frame, Frame::Bye) {
            self.note_departed(sender);
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
        // A member gone (sealed BYE) does not come back by a replay of its
        // older datagrams; its frames are still taken (repairs, history).
        if !self.departed_recently(sender) {
            self.heard(si, from, name);
        }
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

    /// Stores a message, forgetting the oldest delivered one if full: an own
    /// message only for a newer own one, once there are [`OWN_STORED`] of
    /// them (they are kept for repair as long as the pace allows: see
    /// there), else one of the others'.
    pub(super) fn store_message(
        &mut self,
        origin: MemberId,
        seq: u32,
        sent: i64,
        delivered: bool,
        name: Name,
        text: MessageText,
    ) -> bool {
        if self.store.is_full() {
            let me = self.me;
            let own = self.store.iter().filter(|s| s.origin == me).count();
            // (Before the store first fills, own ones may take more.)
            let take_own = own > OWN_STORED || (origin == me && own == OWN_STORED);
            let oldest = |own_ones: bool| {
                (0..self.store.len())
                    .filter(|&i| {
                        self.store[i].delivered && (self.store[i].origin == me) == own_ones
                    })
                    .min_by_key(|&i| self.store[i].sent)
            };
            // Others' messages leave first; own ones only as said above
            // (or if nothing else can go).
            let Some(oldest) = oldest(take_own).or_else(|| oldest(!take_own)) else {
                return false;
            };
            self.forget(oldest);
        }
        let body = Body { name, text };
        let slot = match self.free.pop() {
            Some(k) => {
                self.bodies[usize::from(k)] = body;
                k
            }
            None => {
                if self.bodies.push(body).is_err() {
                    return false;
                }
                (self.bodies.len() - 1) as u16
            }
        };
        let stored = Stored {
            origin,
            seq,
            sent,
            delivered,
            last_sent: None,
            slot,
        };
        match self.store.push(stored) {
            Ok(()) => true,
            Err(s) => {
                let _ = self.free.push(s.slot);
                false
            }
        }
    }

    /// Forgets stored message `k` (the last one takes its place).
    pub(super) fn forget(&mut self, k: usize) {
        let gone = self.store.swap_remove(k);
        let _ = self.free.push(gone.slot);
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
