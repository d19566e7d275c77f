//! Repair: missing messages, requests (NAKs), repairs and the timers.

use core::time::Duration;

use super::{Channel, Event, NakEntry, RepairEntry, Session, micros};
use crate::chat::frame::{Data, FLAG_REPAIR, MemberId, Nak, encode_data, encode_nak};
use crate::chat::limits::{
    AGE_SLACK, CATCHUP, HEARTBEAT_MAX, MAX_NAK_RANGE, MEMBER_TIMEOUT, NAK_DELAY, NAK_RATE,
    NAK_RETRY, NAK_RETRY_MAX, NAK_SPREAD, NAK_TRIES, REPAIR_DELAY, REPAIR_HOLDOFF,
    REPAIR_OWN_SPREAD, REPAIR_RATE, REPAIR_SPREAD, WINDOW,
};

impl Session {
    /// First news of a sender: ask for up to its last [`CATCHUP`] messages.
    pub(super) fn start(&mut self, i: usize, hi: u32, sent: i64) {
        let m = &mut self.members[i];
        m.started = true;
        m.next = hi.saturating_sub(CATCHUP).saturating_add(1).max(1);
        m.hi = m.next - 1;
        m.hi_sent = sent;
    }

    /// Member `i`'s highest message number is at least `hi`, sent at `sent`.
    pub(super) fn on_hi(&mut self, i: usize, hi: u32, sent: i64) {
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
            let mut k = 0;
            while k < self.store.len() {
                let s = &self.store[k];
                if s.origin == id && !s.delivered && s.seq < new_next {
                    self.forget(k);
                } else {
                    k += 1;
                }
            }
            self.naks.retain(|n| !(n.origin == id && n.seq < new_next));
        }
        let m = &mut self.members[i];
        m.hi = hi;
        m.hi_sent = sent;
        self.scan(i);
    }

    /// Makes request entries for member `i`'s missing messages in its window.
    pub(super) fn scan(&mut self, i: usize) {
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

    pub(super) fn on_nak(&mut self, n: &Nak) {
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

    pub(super) fn run_timers(&mut self) {
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
        let body = &self.bodies[usize::from(s.slot)];
        let data = Data {
            flags: FLAG_REPAIR,
            origin,
            seq,
            age_ms: self.age_ms(s.sent),
            name: &body.name,
            text: &body.text,
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
}
