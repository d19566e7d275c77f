//! Arbitrary bytes into the directory server's state machine.
//!
//! Input layout: the first byte says how many "step" bytes follow (1-16);
//! the step bytes are used in turn, one per step, and the rest of the input
//! is the byte stream the peers send. Each step byte picks:
//!
//! - bit 7: which of two connections the step is for (they share one
//!   directory, so one may change it while the other lists it);
//! - bit 6: a slow reader: the host writes out only half of what is queued;
//! - bits 0-5: how many bytes to feed (0 means: all that is left), except
//!   that the value 63 means "skip one input byte and let 700 seconds pass",
//!   so that every timer runs out.
//!
//! A connection that finished is closed and replaced by a fresh one.
//!
//! Follows the drain rule after every call, and checks that nothing panics,
//! that every output line is UTF-8 of at most `MAX_LINE` bytes, LF included,
//! and that the machine never stalls with input it refuses to take.
#![no_main]

use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use roomcast_core::limits::MAX_LINE;
use roomcast_core::{Connection, Instant, Server, ServerConfig};

/// One peer as the host sees it, plus what it has received so far.
struct Peer {
    conn: Connection,
    /// The output line being received, not yet ended by LF.
    line: Vec<u8>,
}

impl Peer {
    fn new(now: Instant) -> Self {
        Self {
            conn: Connection::new(now),
            line: Vec::new(),
        }
    }

    /// The drain rule: events first, then output (all of it, or half when
    /// `slow`). Returns how many bytes were written.
    fn drain(&mut self, now: Instant, server: &mut Server, slow: bool) -> usize {
        while server.poll_event().is_some() {}
        let out = self.conn.poll_transmit();
        let n = if slow { out.len() / 2 } else { out.len() };
        for &b in &out[..n] {
            if b == b'\n' {
                assert!(
                    self.line.len() < MAX_LINE,
                    "output line of {} bytes plus LF",
                    self.line.len()
                );
                if let Err(e) = std::str::from_utf8(&self.line) {
                    panic!("output line not UTF-8 ({e}): {:?}", self.line);
                }
                self.line.clear();
            } else {
                self.line.push(b);
                assert!(self.line.len() < MAX_LINE, "output line too long");
            }
        }
        self.conn.handle_sent(now, server, n);
        while server.poll_event().is_some() {}
        n
    }

    /// Writes out everything, including the rest of a listing in progress.
    fn drain_all(&mut self, now: Instant, server: &mut Server) {
        while self.drain(now, server, false) > 0 {}
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&head, rest)) = data.split_first() else {
        return;
    };
    let n_steps = usize::from(head % 16) + 1;
    if rest.len() < n_steps {
        return;
    }
    let (steps, mut input) = rest.split_at(n_steps);

    let mut now = Instant::ZERO;
    let mut server = Server::new(ServerConfig::default());
    let mut peers = [Peer::new(now), Peer::new(now)];
    for peer in &mut peers {
        peer.drain(now, &mut server, false);
    }

    // A step that takes no input halves the output at least, or writes it
    // all out and so lets the next step take input, or finishes a
    // connection; so a machine that works never reaches this bound.
    let max_steps = 64 * data.len() + 64;
    let mut step = 0;
    while !input.is_empty() {
        step += 1;
        assert!(step <= max_steps, "no progress after {max_steps} steps");
        let s = steps[step % n_steps];
        let peer = &mut peers[usize::from(s >> 7)];
        let slow = s & 0x40 != 0;
        now = now + Duration::from_millis(1);

        if peer.conn.is_finished() {
            // The host closes it and a new peer connects in its place.
            *peer = Peer::new(now);
            peer.drain(now, &mut server, false);
        }
        let size = usize::from(s & 0x3f);
        if size == 63 {
            // Uses up one input byte, so that timeouts cannot loop forever.
            input = &input[1..];
            now = now + Duration::from_secs(700);
            peer.conn.handle_timeout(now, &mut server);
            peer.drain(now, &mut server, slow);
            continue;
        }
        let size = if size == 0 {
            input.len()
        } else {
            size.min(input.len())
        };
        let capacity = peer.conn.recv_capacity();
        let taken = peer.conn.handle_bytes(now, &mut server, &input[..size]);
        assert!(taken <= size);
        if size <= capacity {
            assert_eq!(taken, size, "took less than recv_capacity promised");
        }
        input = &input[taken..];
        let written = peer.drain(now, &mut server, slow);
        if taken == 0 && written == 0 {
            // A host that stopped reading must be able to make progress by
            // writing everything out.
            peer.drain_all(now, &mut server);
            if !peer.conn.is_finished() {
                assert!(
                    peer.conn.recv_capacity() > 0,
                    "open connection with nothing to send refuses input"
                );
            }
        }
    }

    // Let every timer run out; every connection must then finish.
    for _ in 0..4 {
        now = now + Duration::from_secs(700);
        for peer in &mut peers {
            peer.conn.handle_timeout(now, &mut server);
            peer.drain_all(now, &mut server);
        }
    }
    for peer in &peers {
        assert!(
            peer.conn.is_finished(),
            "connection still open after all timeouts"
        );
    }
});
