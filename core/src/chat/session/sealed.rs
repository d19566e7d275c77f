//! A private session's side of sealing: what goes out is sealed, what comes
//! in must be sealed, fresh and new, and what is refused is counted and told.

use core::net::SocketAddr;

use super::{Channel, Event, Session, Transmit};
use crate::Instant;
use crate::chat::MemberId;
use crate::chat::frame::{FrameBuf, decode};
use crate::chat::seal::{DEPARTED_MEMORY, DatagramBuf, MAX_SEALED, OpenError, REFUSED_NOTICE};

/// Refusals not yet told, and when they were last told.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct Refusals {
    undecryptable: u32,
    stale: u32,
    plain: u32,
    /// When the last [`Event::Refused`] went out.
    told: Option<Instant>,
}

impl Refusals {
    fn pending(&self) -> bool {
        self.undecryptable != 0 || self.stale != 0 || self.plain != 0
    }
}

#[derive(Clone, Copy)]
pub(super) enum Refusal {
    Undecryptable,
    Stale,
    Plain,
}

impl Session {
    /// What goes out on `channel`: a frame as is in an open session; in a
    /// private one sealed, and nothing on the plain port. `None`: send
    /// nothing.
    pub(super) fn outgoing(&mut self, channel: Channel, data: FrameBuf) -> Option<Transmit> {
        let now = self.now;
        let data = match (&mut self.sealing, channel) {
            (None, _) => DatagramBuf::from_slice(&data).ok()?,
            (Some(_), Channel::Plain) => return None,
            (Some(s), Channel::Control) => s.seal(now, &data)?,
        };
        Some(Transmit { channel, data })
    }

    /// A datagram in a private session.
    pub(super) fn on_private(&mut self, from: SocketAddr, channel: Channel, data: &[u8]) {
        if channel == Channel::Plain {
            self.stats.plain_refused += 1;
            self.refuse(Refusal::Plain);
            return;
        }
        let now = self.now;
        let Some(sealing) = self.sealing.as_mut() else {
            return;
        };
        let mut buf = [0u8; MAX_SEALED];
        match sealing.open(now, data, &mut buf) {
            Ok(inner) => match decode(inner) {
                Ok((sender, frame)) => self.on_frame(from, sender, frame),
                Err(_) => self.stats.malformed += 1,
            },
            Err(OpenError::NotSealed) => {
                self.stats.unsealed += 1;
                self.refuse(Refusal::Plain);
            }
            Err(OpenError::Undecryptable) => {
                self.stats.undecryptable += 1;
                self.refuse(Refusal::Undecryptable);
            }
            Err(OpenError::Stale) => {
                self.stats.stale += 1;
                self.refuse(Refusal::Stale);
            }
            // Replays are also the network's duplicates: counted, not told.
            Err(OpenError::Replayed) => self.stats.replayed += 1,
        }
    }

    /// A private session remembers a member's goodbye for
    /// [`DEPARTED_MEMORY`] (at most [`MAX_DEPARTED`](crate::chat::MAX_DEPARTED), the
    /// oldest forgotten).
    pub(super) fn note_departed(&mut self, id: MemberId) {
        if self.sealing.is_none() {
            return;
        }
        let now = self.now;
        if let Some(entry) = self.departed.iter_mut().find(|(d, _)| *d == id) {
            entry.1 = now;
            return;
        }
        if self.departed.is_full() {
            let _ = self.departed.pop_front();
        }
        let _ = self.departed.push_back((id, now));
    }

    /// Whether member `id` said goodbye in the last [`DEPARTED_MEMORY`].
    pub(super) fn departed_recently(&self, id: MemberId) -> bool {
        self.departed
            .iter()
            .any(|&(d, at)| d == id && self.now.saturating_since(at) < DEPARTED_MEMORY)
    }

    fn refuse(&mut self, why: Refusal) {
        let r = &mut self.refusals;
        match why {
            Refusal::Undecryptable => r.undecryptable = r.undecryptable.saturating_add(1),
            Refusal::Stale => r.stale = r.stale.saturating_add(1),
            Refusal::Plain => r.plain = r.plain.saturating_add(1),
        }
        self.tell_refusals();
    }

    /// Tells the refusals pending if the last notice is at least
    /// [`REFUSED_NOTICE`] old (or there was none) and the event queue has
    /// room.
    pub(super) fn tell_refusals(&mut self) {
        let r = self.refusals;
        if !r.pending() || self.refusals_due().is_some_and(|at| at > self.now) {
            return;
        }
        let ev = Event::Refused {
            undecryptable: r.undecryptable,
            stale: r.stale,
            plain: r.plain,
        };
        if self.events.push_back(ev).is_ok() {
            self.refusals = Refusals {
                told: Some(self.now),
                ..Refusals::default()
            };
        }
    }

    /// When pending refusals may be told next (now, if none was told
    /// yet); `None` if none are pending.
    pub(super) fn refusals_due(&self) -> Option<Instant> {
        let r = &self.refusals;
        if !r.pending() {
            return None;
        }
        Some(r.told.map_or(self.now, |t| t + REFUSED_NOTICE))
    }
}
