//! Presence: the member list, joins, and the heartbeat.

use core::net::SocketAddr;

use super::{Channel, Event, Member, Name, Session};
use crate::chat::frame::{DigestEntry, MemberId, encode_heartbeat};
use crate::chat::limits::{MAX_DIGEST, MEMBER_TIMEOUT};

impl Session {
    pub(super) fn find(&self, id: MemberId) -> Option<usize> {
        self.members
            .iter()
            .position(|m| m.used && !m.plain && m.id == id)
    }

    /// The member's index, making an entry if there is room.
    pub(super) fn member(&mut self, id: MemberId) -> Option<usize> {
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

    pub(super) fn place(&mut self, fresh: Member) -> Option<usize> {
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

    /// A frame came straight from member `i`.
    pub(super) fn heard(&mut self, i: usize, from: SocketAddr, name: Option<&str>) {
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

    pub(super) fn send_heartbeat(&mut self) {
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
