//! Arbitrary datagrams, sends and time into one room session.
//!
//! Input layout: a sequence of records, each one byte saying what happens
//! and how many bytes it carries (bits 0-4: 0-30; 31 means "the next byte
//! plus 31"), then that many bytes:
//!
//! | bits 5-7 | event |
//! |---|---|
//! | 0, 1, 2 | a datagram on the control port from member address 0-2 |
//! | 3 | a datagram on the room's (plain) port, from address 3 |
//! | 4 | the user sends the bytes (as UTF-8, lossily) |
//! | 5 | time passes: the bytes' sum in milliseconds × 10, then a timeout |
//! | 6 | the session's own deadline: a timeout at `poll_timeout` |
//! | 7 | a datagram on the control port, from an address picked by the first byte |
//!
//! Follows the drain rule after every call and checks that nothing panics,
//! that no deadline asked for is in the past, that the hold-back stays in
//! its limit, and that requests and repairs stay within their rate limits
//! (so hostile frames cannot make the session flood the room).
#![no_main]

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use libfuzzer_sys::fuzz_target;

#[path = "common/ops.rs"]
mod ops;
use roomcast_core::Instant;
use roomcast_core::chat::frame::{FLAG_REPAIR, Frame, decode};
use roomcast_core::chat::limits::{MAX_HOLDBACK, MAX_STORED, NAK_RATE, REPAIR_RATE};
use roomcast_core::chat::{Channel, MemberId, Session};

fn addr(n: u8) -> SocketAddr {
    SocketAddr::new(IpAddr::V4(Ipv4Addr::new(10, 0, 0, n)), 5000)
}

fuzz_target!(|data: &[u8]| {
    let mut now = Instant::ZERO;
    let Ok(mut s) = Session::new(now, MemberId(0x1234), "fuzz", 7) else {
        return;
    };
    let mut naks: Vec<Instant> = Vec::new();
    let mut repairs: Vec<Instant> = Vec::new();
    let mut rest = data;
    while let Some((op, bytes)) = ops::next_op(&mut rest) {
        match op {
            k @ 0..=2 => s.handle_datagram(now, addr(k), Channel::Control, bytes),
            3 => s.handle_datagram(now, addr(3), Channel::Plain, bytes),
            4 => {
                let _ = s.handle_send(now, &String::from_utf8_lossy(bytes));
            }
            5 => {
                let ms: u64 = bytes.iter().map(|&b| u64::from(b)).sum();
                now = now + Duration::from_millis(ms * 10);
                s.handle_timeout(now);
            }
            6 => {
                if let Some(at) = s.poll_timeout() {
                    now = now.max(at);
                }
                s.handle_timeout(now);
            }
            _ => {
                let from = bytes.first().copied().unwrap_or(0);
                s.handle_datagram(now, addr(from), Channel::Control, bytes);
            }
        }
        while let Some(t) = s.poll_transmit() {
            if t.channel == Channel::Control {
                match decode(&t.data) {
                    Ok((_, Frame::Nak(_))) => naks.push(now),
                    Ok((_, Frame::Data(d))) if d.flags & FLAG_REPAIR != 0 => repairs.push(now),
                    Ok(_) => {}
                    Err(e) => panic!("the session sent a bad frame: {e}"),
                }
            }
        }
        while s.poll_event().is_some() {}
        if let Some(at) = s.poll_timeout() {
            assert!(at >= now, "a deadline in the past");
        }
        assert!(s.held_back() <= MAX_HOLDBACK);
        assert!(s.stored() <= MAX_STORED);
        // Token buckets: at most a burst plus the rate per second elapsed.
        let secs = now.as_micros() / 1_000_000 + 1;
        assert!(naks.len() as u64 <= u64::from(NAK_RATE) * (secs + 1));
        assert!(repairs.len() as u64 <= u64::from(REPAIR_RATE) * (secs + 1));
    }
});
