//! Delivery: each sender's messages in order, history and loss notices.

use core::net::SocketAddr;
use core::time::Duration;

use super::{Event, Session, fnv1a, micros};
use crate::chat::frame::FrameBuf;
use crate::chat::limits::{AGE_SLACK, HISTORY_AGE, OWN_ECHO};

impl Session {
    /// The next event of member `i`, if it has one now.
    pub(super) fn next_of(&mut self, i: usize) -> Option<Event> {
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
                    let body = &self.bodies[usize::from(self.store[j].slot)];
                    return Some(Event::Message {
                        from: id,
                        name: body.name.clone(),
                        text: body.text.clone(),
                        already_shown,
                    });
                }
                let age = Duration::from_micros(u64::try_from(age).unwrap_or(0));
                if age <= HISTORY_AGE {
                    self.stats.delivered += 1;
                    let body = &self.bodies[usize::from(s.slot)];
                    return Some(Event::History {
                        from: id,
                        name: body.name.clone(),
                        text: body.text.clone(),
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
        let s = &self.bodies[usize::from(self.store[j].slot)];
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
}
