//! Sending: the send queue and the sender's pace (PGM's rate-limited
//! transmit window).
//!
//! A line the user sends waits in a bounded byte queue
//! ([`SEND_QUEUE_BYTES`]) and goes out as a new message when the send
//! bucket ([`SEND_RATE`](crate::chat::limits::SEND_RATE), bursts of [`SEND_BURST`](crate::chat::limits::SEND_BURST)) has a token and the
//! outbox has room for its two datagrams. Repairs and requests go first:
//! they run before the queue at each timer.

use super::{MessageText, Session};
use crate::chat::limits::{MAX_MESSAGE, SEND_QUEUE_BYTES};

/// Bytes of a queued line beyond its text: its length.
const HEADER: usize = 2;

impl Session {
    /// Whether a line of any length (up to [`MAX_MESSAGE`]) fits in the send
    /// queue now, so that [`Session::handle_send`] will not say `Busy`. A
    /// host that reads its user's input holds it while this is false.
    pub fn can_send(&self) -> bool {
        !self.closed && self.queue_free() >= HEADER + MAX_MESSAGE
    }

    /// How many lines wait in the send queue.
    pub fn queued(&self) -> usize {
        self.queued
    }

    /// Sets the pace of new messages: at most `rate` a second (at least
    /// 1), after a burst of `burst` (at least 1). The default,
    /// [`SEND_RATE`](crate::chat::limits::SEND_RATE) and [`SEND_BURST`](crate::chat::limits::SEND_BURST), keeps each message repairable for
    /// the time [`crate::chat::limits::OWN_STORED`] explains; a faster pace
    /// shortens that time in proportion (`OWN_STORED / rate`). For
    /// benchmarks of the protocol's own speed, and for hosts that know
    /// their network loses little.
    pub fn set_pace(&mut self, rate: u32, burst: u32) {
        self.pace = (rate.max(1), burst.max(1));
        self.send_bucket.milli = self.send_bucket.milli.min(u64::from(self.pace.1) * 1000);
    }

    fn queue_free(&self) -> usize {
        SEND_QUEUE_BYTES - self.queue.len()
    }

    /// Puts `text` (at most [`MAX_MESSAGE`] bytes) at the end of the send
    /// queue; false if it does not fit.
    pub(super) fn enqueue(&mut self, text: &str) -> bool {
        let Ok(len) = u16::try_from(text.len()) else {
            return false;
        };
        if self.queue_free() < HEADER + text.len() {
            return false;
        }
        for b in len.to_be_bytes().iter().chain(text.as_bytes()) {
            // Cannot fail: the room was checked above.
            let _ = self.queue.push_back(*b);
        }
        self.queued += 1;
        true
    }

    /// The first line of the send queue, taken out of it.
    fn dequeue(&mut self) -> Option<MessageText> {
        let hi = self.queue.pop_front()?;
        let lo = self.queue.pop_front().unwrap_or(0);
        let len = usize::from(u16::from_be_bytes([hi, lo]));
        let mut bytes: heapless::Vec<u8, MAX_MESSAGE> = heapless::Vec::new();
        for _ in 0..len {
            if let Some(b) = self.queue.pop_front() {
                let _ = bytes.push(b);
            }
        }
        self.queued = self.queued.saturating_sub(1);
        // The bytes are a `&str` that was queued whole.
        let text = core::str::from_utf8(&bytes).unwrap_or_default();
        let mut t = MessageText::new();
        let _ = t.push_str(text);
        Some(t)
    }

    /// Sends queued lines as far as the pace and the outbox allow.
    pub(super) fn pump(&mut self) {
        while self.queued > 0 && self.outbox_free() >= 2 {
            if !self
                .send_bucket
                .take_burst(self.now, self.pace.0, self.pace.1)
            {
                return;
            }
            let Some(text) = self.dequeue() else {
                return;
            };
            self.send_now(&text);
        }
    }

    /// Leaving: the lines still queued are not sent (counted).
    pub(super) fn drop_queue(&mut self) {
        self.stats.unsent += self.queued as u64;
        self.queue.clear();
        self.queued = 0;
    }
}
