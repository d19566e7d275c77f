//! Arbitrary and mutated sealed datagrams, sends and time into one private
//! room session.
//!
//! Three peers hold the room's key (peer 2's clock is 122 s ahead, past
//! `MAX_CLOCK_SKEW`, so its datagrams are stale); whatever is sealed, by a
//! peer or by the session, is kept as the last sealed datagram. Input
//! layout: a sequence of records, each one byte saying what happens and how
//! many bytes it carries (bits 0-4: 0-30; 31 means "the next byte plus
//! 31"), then that many bytes:
//!
//! | bits 5-7 | event |
//! |---|---|
//! | 0, 1, 2 | peer 0-2 seals the bytes (an inner frame, valid or not) and sends it |
//! | 3 | the bytes as they are, on the control port (arbitrary datagrams) |
//! | 4 | the last sealed datagram, mutated: each pair of bytes XORs position, value |
//! | 5 | the last sealed datagram again (a replay), or a plain datagram if none |
//! | 6 | the user sends the bytes (as UTF-8, lossily) |
//! | 7 | time passes: the bytes' sum in milliseconds × 100, then a timeout |
//!
//! Follows the drain rule after every call and checks that nothing panics,
//! that every datagram the session puts out is sealed on the control port
//! and opens for a member holding the key with a fresh nonce (never a plain
//! copy), that no deadline asked for is in the past, and that the
//! session's buffers stay in their limits.
#![no_main]

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use libfuzzer_sys::fuzz_target;

#[path = "common/ops.rs"]
mod ops;
use roomcast_core::Instant;
use roomcast_core::chat::limits::{MAX_HOLDBACK, MAX_STORED};
use roomcast_core::chat::seal::OpenError;
use roomcast_core::chat::{Channel, MAX_SEALED, MemberId, Sealing, Session};
use roomcast_core::privacy::FrameKey;

/// Unix ms at the start.
const WALL: u64 = 1_795_000_000_000;

fn addr(n: u8) -> SocketAddr {
    SocketAddr::new(IpAddr::V4(Ipv4Addr::new(10, 0, 0, n)), 5000)
}

fuzz_target!(|data: &[u8]| {
    let mut now = Instant::ZERO;
    let key = FrameKey([0x42; 32]);
    let sealing = Sealing::new(&key, [0xAA; 16], now, WALL);
    let Ok(mut s) = Session::new_private(now, MemberId(0x1234), "fuzz", 7, sealing) else {
        return;
    };
    let mut peers: Vec<Sealing> = (0..3u8)
        .map(|k| Sealing::new(&key, [k; 16], now, WALL + u64::from(k) * 61_000))
        .collect();
    // A member of the room that sees everything the session sends.
    let mut observer = Sealing::new(&key, [0xBB; 16], now, WALL);
    let mut last: Option<Vec<u8>> = None;
    let mut buf = [0u8; MAX_SEALED];
    let mut rest = data;
    while let Some((op, bytes)) = ops::next_op(&mut rest) {
        match op {
            k @ 0..=2 => {
                if let Some(d) = peers[usize::from(k)].seal(now, bytes) {
                    s.handle_datagram(now, addr(k), Channel::Control, &d);
                    last = Some(d.to_vec());
                }
            }
            3 => s.handle_datagram(now, addr(3), Channel::Control, bytes),
            4 => {
                if let Some(mut d) = last.clone() {
                    for pair in bytes.chunks_exact(2) {
                        let i = usize::from(pair[0]) * d.len() / 256;
                        d[i] ^= pair[1];
                    }
                    if bytes.len() % 2 == 1 {
                        // Cut short.
                        d.truncate(usize::from(bytes[bytes.len() - 1]) * d.len() / 256);
                    }
                    s.handle_datagram(now, addr(4), Channel::Control, &d);
                }
            }
            5 => match &last {
                Some(d) => s.handle_datagram(now, addr(5), Channel::Control, d),
                None => s.handle_datagram(now, addr(5), Channel::Plain, bytes),
            },
            6 => {
                let _ = s.handle_send(now, &String::from_utf8_lossy(bytes));
            }
            _ => {
                let ms: u64 = bytes.iter().map(|&b| u64::from(b)).sum();
                now = now + Duration::from_millis(ms * 100);
                s.handle_timeout(now);
            }
        }
        while let Some(t) = s.poll_transmit() {
            assert_eq!(
                t.channel,
                Channel::Control,
                "a plain copy from a private room"
            );
            match observer.open(now, &t.data, &mut buf) {
                Ok(_) => {}
                Err(OpenError::Replayed) => panic!("the session reused a nonce"),
                Err(e) => panic!("the session sent a datagram that does not open: {e:?}"),
            }
            last = Some(t.data.to_vec());
        }
        while s.poll_event().is_some() {}
        if let Some(at) = s.poll_timeout() {
            assert!(at >= now, "a deadline in the past");
        }
        assert!(s.held_back() <= MAX_HOLDBACK);
        assert!(s.stored() <= MAX_STORED);
        assert!(s.is_private());
    }
});
