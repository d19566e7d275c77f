//! Arbitrary bytes into the directory server's state machine.
//!
//! Input layout: the first byte says how many "step" bytes follow (bits
//! 0-3: 1-16) and whether the server holds replies to changes until they are
//! stored (bit 4: `durable_replies`), and whether the quotas are tight
//! (bit 5: two rooms per address, 5 commands a second in bursts of 3, so
//! `ERR quota` comes up; else the defaults). Both peers come from one
//! address and an admin token is set (`ADMIN`, in the dictionary), so
//! `deleteroom` meets the maker, a token, the admin token and `ERR denied`.
//! The step bytes are used in turn, one
//! per step, and the rest of the input is the byte stream the peers send.
//! Each step byte picks:
//!
//! - bit 7: which of two connections the step is for (they share one
//!   directory, so one may change it while the other lists it);
//! - bit 6: a slow host: it writes out only half of what is queued, and
//!   does not store the directory this step;
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

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use roomcast_core::limits::MAX_LINE;
use roomcast_core::{ConnId, Connection, Instant, Server, ServerConfig, TokenHash};

/// The address both peers connect from.
const PEER: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1));

/// The operator's admin token.
const ADMIN: &str = "fuzz-admin-token-0123";

/// One peer as the host sees it, plus what it has received so far.
struct Peer {
    conn: Connection,
    /// The output line being received, not yet ended by LF.
    line: Vec<u8>,
}

impl Peer {
    fn new(now: Instant, id: u64, config: &ServerConfig) -> Self {
        Self {
            conn: Connection::with_peer(now, ConnId(id), config, PEER),
            line: Vec::new(),
        }
    }

    /// Checks the bytes the peer received.
    fn receive(&mut self, bytes: &[u8]) {
        for &b in bytes {
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
    }
}

/// The server, its peers and the clock: what a host holds.
struct Host {
    now: Instant,
    server: Server,
    peers: [Peer; 2],
    /// The id of the last connection opened.
    serial: u64,
}

impl Host {
    /// Stores the directory if it changed, as a host with a state file does
    /// once per event-loop turn, and answers the changes that waited.
    fn persist(&mut self) {
        let Some(version) = self.server.poll_persist() else {
            return;
        };
        self.server.handle_persisted(self.now, version);
        self.hand_out();
        // Answering the stored changes may stage the next ones (pipelined
        // behind them), never leave an old one unstored.
        if let Some(next) = self.server.poll_persist() {
            assert!(
                next > version,
                "version {version} stored, {next} still asked for"
            );
        }
    }

    /// Gives each resolved change to its connection, then wakes the others
    /// that wait.
    fn hand_out(&mut self) {
        while let Some(resolved) = self.server.poll_resolved() {
            for peer in &mut self.peers {
                if peer.conn.id() == resolved.conn {
                    peer.conn
                        .handle_resolved(self.now, &mut self.server, resolved);
                }
            }
            while self.server.poll_event().is_some() {}
        }
        for peer in &mut self.peers {
            if peer.conn.is_waiting() {
                peer.conn.handle_wake(self.now, &mut self.server);
                while self.server.poll_event().is_some() {}
            }
        }
    }

    /// A new connection in slot `i`.
    fn reconnect(&mut self, i: usize) {
        self.serial += 1;
        self.peers[i] = Peer::new(self.now, self.serial, self.server.config());
    }

    /// The drain rule for peer `i`: events first, then output (all of it,
    /// or half when `slow`). Returns how many bytes were written.
    fn drain(&mut self, i: usize, slow: bool) -> usize {
        while self.server.poll_event().is_some() {}
        let peer = &mut self.peers[i];
        let out = peer.conn.poll_transmit();
        let n = if slow { out.len() / 2 } else { out.len() };
        let sent = out[..n].to_vec();
        peer.receive(&sent);
        peer.conn.handle_sent(self.now, &mut self.server, n);
        while self.server.poll_event().is_some() {}
        n
    }

    /// Stores the directory and writes out everything for peer `i`,
    /// including the rest of a listing in progress.
    fn drain_all(&mut self, i: usize) {
        loop {
            self.persist();
            if self.drain(i, false) == 0 {
                break;
            }
        }
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
    let mut config = ServerConfig::default();
    config.durable_replies = head & 0x10 != 0;
    if head & 0x20 != 0 {
        config.max_rooms_per_client = 2;
        config.commands_per_second = 5;
        config.command_burst = 3;
    }

    let now = Instant::ZERO;
    let mut host = Host {
        now,
        server: {
            let mut server = Server::new(config);
            server.seed_random([7; 32]);
            server.set_admin_token(TokenHash::of(ADMIN));
            server
        },
        peers: [Peer::new(now, 1, &config), Peer::new(now, 2, &config)],
        serial: 2,
    };
    host.drain(0, false);
    host.drain(1, false);

    // A step that takes no input halves the output at least, or writes it
    // all out and so lets the next step take input, or finishes a
    // connection; so a machine that works never reaches this bound.
    let max_steps = 64 * data.len() + 64;
    let mut step = 0;
    while !input.is_empty() {
        step += 1;
        assert!(step <= max_steps, "no progress after {max_steps} steps");
        let s = steps[step % n_steps];
        let i = usize::from(s >> 7);
        let slow = s & 0x40 != 0;
        host.now = host.now + Duration::from_millis(1);
        let now = host.now;

        if host.peers[i].conn.is_finished() {
            // The host closes it and a new peer connects in its place.
            host.reconnect(i);
            host.drain(i, false);
        }
        let size = usize::from(s & 0x3f);
        if size == 63 {
            // Uses up one input byte, so that timeouts cannot loop forever.
            input = &input[1..];
            host.now = now + Duration::from_secs(700);
            host.server.handle_timeout(host.now);
            host.hand_out();
            host.peers[i]
                .conn
                .handle_timeout(host.now, &mut host.server);
            host.drain(i, slow);
            continue;
        }
        let size = if size == 0 {
            input.len()
        } else {
            size.min(input.len())
        };
        let conn = &mut host.peers[i].conn;
        let capacity = conn.recv_capacity();
        let taken = conn.handle_bytes(now, &mut host.server, &input[..size]);
        assert!(taken <= size);
        if size <= capacity {
            assert_eq!(taken, size, "took less than recv_capacity promised");
        }
        input = &input[taken..];
        if !slow {
            host.persist();
        }
        let written = host.drain(i, slow);
        if taken == 0 && written == 0 {
            // A host that stopped reading must be able to make progress by
            // storing the directory and writing everything out.
            host.drain_all(i);
            let conn = &host.peers[i].conn;
            if !conn.is_finished() {
                assert!(
                    conn.recv_capacity() > 0,
                    "open connection with nothing to send refuses input"
                );
            }
        }
    }

    // Let every timer run out; every connection must then finish.
    for _ in 0..4 {
        host.now = host.now + Duration::from_secs(700);
        host.server.handle_timeout(host.now);
        host.hand_out();
        for i in 0..host.peers.len() {
            host.peers[i]
                .conn
                .handle_timeout(host.now, &mut host.server);
            host.drain_all(i);
        }
    }
    for peer in &host.peers {
        assert!(
            peer.conn.is_finished(),
            "connection still open after all timeouts"
        );
    }
});
