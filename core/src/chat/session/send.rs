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

/// The send queue's storage: a ring of bytes, written and read with slice
/// copies (at most two per call, where the ring wraps).
#[derive(Clone, Debug)]
pub(super) struct ByteRing {
    buf: [u8; SEND_QUEUE_BYTES],
    /// Where the oldest byte is.
    head: usize,
    len: usize,
}

impl ByteRing {
    pub(super) const fn new() -> Self {
        ByteRing {
            buf: [0; SEND_QUEUE_BYTES],
            head: 0,
            len: 0,
        }
    }

    fn free(&self) -> usize {
        SEND_QUEUE_BYTES - self.len
    }

    /// Appends `data` whole; false (and nothing written) if it does not fit.
    fn push(&mut self, data: &[u8]) -> bool {
        if data.len() > self.free() {
            return false;
        }
        let tail = (self.head + self.len) % SEND_QUEUE_BYTES;
        let first = data.len().min(SEND_QUEUE_BYTES - tail);
        self.buf[tail..tail + first].copy_from_slice(&data[..first]);
        self.buf[..data.len() - first].copy_from_slice(&data[first..]);
        self.len += data.len();
        true
    }

    /// Moves the oldest `out.len()` bytes (or all there are) into `out`;
    /// how many.
    fn pop_into(&mut self, out: &mut [u8]) -> usize {
        let n = out.len().min(self.len);
        let first = n.min(SEND_QUEUE_BYTES - self.head);
        out[..first].copy_from_slice(&self.buf[self.head..self.head + first]);
        out[first..n].copy_from_slice(&self.buf[..n - first]);
        self.head = (self.head + n) % SEND_QUEUE_BYTES;
        self.len -= n;
        n
    }

    fn clear(&mut self) {
        self.head = 0;
        self.len = 0;
    }
}

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
        self.queue.free()
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
        // Both fit: the room was checked above.
        let _ = self.queue.push(&len.to_be_bytes());
        let _ = self.queue.push(text.as_bytes());
        self.queued += 1;
        true
    }

    /// The first line of the send queue, taken out of it.
    fn dequeue(&mut self) -> Option<MessageText> {
        let mut len = [0u8; HEADER];
        if self.queue.pop_into(&mut len) < HEADER {
            return None;
        }
        let len = usize::from(u16::from_be_bytes(len)).min(MAX_MESSAGE);
        let mut bytes = [0u8; MAX_MESSAGE];
        let got = self.queue.pop_into(&mut bytes[..len]);
        self.queued = self.queued.saturating_sub(1);
        // The bytes are a `&str` that was queued whole.
        let text = core::str::from_utf8(&bytes[..got]).unwrap_or_default();
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ring_holds_exactly_its_size_and_keeps_order_across_the_wrap() {
        let mut ring = ByteRing::new();
        // Fill to the last byte: one more is refused, and nothing of it is
        // written.
        let fill: std::vec::Vec<u8> = (0..SEND_QUEUE_BYTES).map(|i| i as u8).collect();
        assert!(ring.push(&fill[..SEND_QUEUE_BYTES - 1]));
        assert!(!ring.push(&[1, 2]));
        assert!(ring.push(&fill[SEND_QUEUE_BYTES - 1..]));
        assert_eq!(ring.free(), 0);
        assert!(!ring.push(&[0]));
        // Take 100 out, put 300 in across the end of the buffer.
        let mut out = [0u8; 100];
        assert_eq!(ring.pop_into(&mut out), 100);
        assert_eq!(&out[..], &fill[..100]);
        assert!(!ring.push(&[7; 101]));
        assert!(ring.push(&[7; 100]));
        let mut all = std::vec![0u8; SEND_QUEUE_BYTES + 10];
        assert_eq!(ring.pop_into(&mut all), SEND_QUEUE_BYTES);
        assert_eq!(&all[..SEND_QUEUE_BYTES - 100], &fill[100..]);
        assert!(
            all[SEND_QUEUE_BYTES - 100..SEND_QUEUE_BYTES]
                .iter()
                .all(|&b| b == 7)
        );
        assert_eq!(ring.pop_into(&mut out), 0);
        // Wrapped lines come back whole, line after line.
        for round in 0..3 * SEND_QUEUE_BYTES / 999 {
            let line = [round as u8; 999];
            assert!(ring.push(&line));
            let mut back = [0u8; 999];
            assert_eq!(ring.pop_into(&mut back), 999);
            assert_eq!(back, line);
        }
    }
}
