//! Sealed frames: the seal itself, the replay window, and private sessions.

use std::collections::BTreeSet;
use std::string::String;
use std::vec::Vec;

use proptest::prelude::*;

use super::*;
use crate::chat::frame::{Frame, decode, encode_bye};
use crate::chat::limits::MAX_MESSAGE;
use crate::chat::tests::{addr, at, drain};
use crate::chat::{Channel, Event, MemberId, Session};
use crate::privacy::SECRET_BYTES;

/// A wall clock (Unix ms) of the tests: 2026-11-27.
const WALL: u64 = 1_795_000_000_000;

fn key(n: u8) -> FrameKey {
    FrameKey([n; SECRET_BYTES])
}

fn sealing(k: u8, sealer: u8) -> Sealing {
    Sealing::new(&key(k), [sealer; SEALER_BYTES], at(0), WALL)
}

fn open(r: &mut Sealing, now: Instant, d: &[u8]) -> Result<Vec<u8>, OpenError> {
    let mut buf = [0; MAX_SEALED];
    r.open(now, d, &mut buf).map(<[u8]>::to_vec)
}

fn private(id: u64, name: &str, k: u8) -> Session {
    let s = Sealing::new(&key(k), [id as u8; SEALER_BYTES], at(0), WALL);
    Session::new_private(at(0), MemberId(id), name, id, s).expect("a valid name")
}

fn counter_of(d: &[u8]) -> u64 {
    let mut c = [0; 8];
    c.copy_from_slice(&d[5 + SEALER_BYTES..SEAL_HEADER]);
    u64::from_be_bytes(c)
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

// ---- The seal ----

#[test]
fn seal_and_open_round_trip_with_the_documented_layout() {
    let frame = encode_bye(MemberId(7));
    let mut a = sealing(1, 0xA1);
    let d = a.seal(at(5), &frame).expect("sealed");
    assert_eq!(d.len(), frame.len() + SEAL_OVERHEAD);
    assert_eq!(SEAL_OVERHEAD, 53);
    assert_eq!(MAX_SEALED, 1253);
    assert_eq!(&d[..5], &[0xFF, b'R', b'C', 1, 5]);
    assert_eq!(&d[5..21], &[0xA1; 16]);
    assert_eq!(counter_of(&d), 1);
    assert!(!contains(&d, &frame[5..]), "the frame is not in the clear");
    let mut b = sealing(1, 0xB2);
    assert_eq!(open(&mut b, at(5), &d).as_deref(), Ok(&frame[..]));
    let d2 = a.seal(at(6), &frame).expect("sealed");
    assert_eq!(counter_of(&d2), 2);
    assert_ne!(d[SEAL_HEADER..], d2[SEAL_HEADER..], "a fresh nonce");
}

#[test]
fn a_tampered_byte_anywhere_is_refused() {
    let frame = encode_bye(MemberId(7));
    let mut a = sealing(1, 0xA1);
    let d = a.seal(at(0), &frame).expect("sealed");
    for i in 0..d.len() {
        for bit in [0x01, 0x80] {
            let mut bad = d.to_vec();
            bad[i] ^= bit;
            let mut b = sealing(1, 0xB2);
            let want = if i < 5 {
                OpenError::NotSealed
            } else {
                OpenError::Undecryptable
            };
            assert_eq!(open(&mut b, at(0), &bad), Err(want), "byte {i}");
        }
    }
    // Cut short or made longer: refused too.
    let mut b = sealing(1, 0xB2);
    for n in 0..d.len() {
        assert!(open(&mut b, at(0), &d[..n]).is_err(), "{n} bytes");
    }
    let mut long = d.to_vec();
    long.push(0);
    assert_eq!(open(&mut b, at(0), &long), Err(OpenError::Undecryptable));
    assert_eq!(open(&mut b, at(0), &d).as_deref(), Ok(&frame[..]));
}

#[test]
fn another_key_does_not_open() {
    let mut a = sealing(1, 0xA1);
    let d = a.seal(at(0), &encode_bye(MemberId(7))).expect("sealed");
    let mut c = sealing(2, 0xC3);
    assert_eq!(open(&mut c, at(0), &d), Err(OpenError::Undecryptable));
    assert_eq!(c.sealers(), 0, "nothing is remembered of it");
}

#[test]
fn sizes_and_counters_at_their_edges() {
    let mut a = sealing(1, 0xA1);
    let mut b = sealing(1, 0xB2);
    let biggest = [b'x'; MAX_FRAME];
    let d = a.seal(at(0), &biggest).expect("a largest frame seals");
    assert_eq!(d.len(), MAX_SEALED);
    assert!(open(&mut b, at(0), &d).is_ok());
    assert_eq!(a.seal(at(0), &[b'x'; MAX_FRAME + 1]), None);
    // A zero counter is never sealed and never opened.
    let mut zero = a.seal(at(0), b"x").expect("sealed").to_vec();
    zero[5 + SEALER_BYTES..SEAL_HEADER].fill(0);
    assert_eq!(open(&mut b, at(0), &zero), Err(OpenError::Undecryptable));
    // The counter never wraps: the last one is u64::MAX - 1.
    a.next = u64::MAX - 1;
    let last = a.seal(at(0), b"x").expect("sealed");
    assert_eq!(counter_of(&last), u64::MAX - 1);
    assert_eq!(a.seal(at(0), b"x"), None);
    assert_eq!(a.seal(at(0), b"x"), None);
}

#[test]
fn stale_is_refused_past_the_clock_skew_either_way() {
    let skew = u64::try_from(MAX_CLOCK_SKEW.as_millis()).expect("small");
    let frame = encode_bye(MemberId(7));
    // The receiver's clock ahead of the sender's.
    let mut a = sealing(1, 0xA1);
    let mut b = sealing(1, 0xB2);
    let d1 = a.seal(at(0), &frame).expect("sealed");
    let d2 = a.seal(at(0), &frame).expect("sealed");
    assert_eq!(open(&mut b, at(skew + 1), &d1), Err(OpenError::Stale));
    assert!(open(&mut b, at(skew), &d2).is_ok(), "at the edge");
    // A stale datagram is not taken: it was never counted as seen.
    assert_eq!(b.sealers(), 1);
    // The sender's clock ahead of the receiver's.
    let mut ahead = Sealing::new(&key(1), [0xA3; 16], at(0), WALL + skew);
    let d = ahead.seal(at(0), &frame).expect("sealed");
    assert!(open(&mut b, at(0), &d).is_ok(), "at the edge");
    let mut ahead = Sealing::new(&key(1), [0xA4; 16], at(0), WALL + skew + 1);
    let d = ahead.seal(at(0), &frame).expect("sealed");
    assert_eq!(open(&mut b, at(0), &d), Err(OpenError::Stale));
    // The wall clock advances with the session's instants.
    assert_eq!(b.wall_ms(at(1500)), WALL + 1500);
}

#[test]
fn a_datagram_is_taken_once() {
    let mut a = sealing(1, 0xA1);
    let mut b = sealing(1, 0xB2);
    let d = a.seal(at(0), b"x").expect("sealed");
    assert!(open(&mut b, at(0), &d).is_ok());
    assert_eq!(open(&mut b, at(1), &d), Err(OpenError::Replayed));
    assert_eq!(open(&mut b, at(90_000), &d), Err(OpenError::Replayed));
}

#[test]
fn the_replay_window_edge() {
    let mut a = sealing(1, 0xA1);
    let all: Vec<_> = (0..200)
        .map(|_| a.seal(at(0), b"x").expect("sealed"))
        .collect();
    let mut b = sealing(1, 0xB2);
    let window = usize::try_from(REPLAY_WINDOW).expect("small");
    // Counter 200 first, then the oldest still in the window, then the
    // newest just below it.
    assert!(open(&mut b, at(0), &all[199]).is_ok());
    assert!(
        open(&mut b, at(0), &all[200 - window]).is_ok(),
        "in the window"
    );
    assert_eq!(
        open(&mut b, at(0), &all[199 - window]),
        Err(OpenError::Replayed),
        "below the window, never seen: refused all the same"
    );
    assert!(open(&mut b, at(0), &all[150]).is_ok());
    assert_eq!(open(&mut b, at(0), &all[150]), Err(OpenError::Replayed));
    assert_eq!(open(&mut b, at(0), &all[199]), Err(OpenError::Replayed));
}

#[test]
fn the_sealer_table_is_bounded_and_forgets_the_least_recently_heard() {
    let mut b = sealing(1, 0xFF);
    let mut firsts = Vec::new();
    for n in 0..MAX_SEALERS {
        let mut s = Sealing::new(&key(1), [n as u8; 16], at(0), WALL);
        let d = s.seal(at(0), b"x").expect("sealed");
        assert!(open(&mut b, at(n as u64), &d).is_ok());
        firsts.push((s, d));
    }
    assert_eq!(b.sealers(), MAX_SEALERS);
    // Sealer 0 is heard again, so sealer 1 is now the least recent.
    let d0 = firsts[0].0.seal(at(0), b"y").expect("sealed");
    assert!(open(&mut b, at(100), &d0).is_ok());
    let mut new = Sealing::new(&key(1), [0xEE; 16], at(0), WALL);
    let d = new.seal(at(0), b"x").expect("sealed");
    assert!(open(&mut b, at(101), &d).is_ok());
    assert_eq!(b.sealers(), MAX_SEALERS, "still bounded");
    assert_eq!(
        open(&mut b, at(102), &firsts[0].1),
        Err(OpenError::Replayed),
        "sealer 0 is remembered"
    );
    assert_eq!(
        open(&mut b, at(102), &firsts[2].1),
        Err(OpenError::Replayed)
    );
    // Sealer 1 was forgotten: its old datagram opens again. This is why
    // the table has room for every member of a room (MAX_MEMBERS), and why
    // MAX_CLOCK_SKEW bounds the age of a replay.
    assert!(open(&mut b, at(103), &firsts[1].1).is_ok());
}

#[test]
fn own_datagrams_open_but_take_no_window() {
    let mut a = sealing(1, 0xA1);
    let d = a.seal(at(0), b"x").expect("sealed");
    assert!(open(&mut a, at(0), &d).is_ok());
    assert_eq!(a.sealers(), 0);
}

// ---- Private sessions ----

/// Runs `a` and `b` for a while, delivering each one's datagrams to the
/// other; returns `b`'s events.
fn exchange(a: &mut Session, b: &mut Session, from: u64, to: u64) -> Vec<Event> {
    let mut events = Vec::new();
    for ms in from..to {
        let now = at(ms);
        a.handle_timeout(now);
        b.handle_timeout(now);
        let (ta, _) = drain(a);
        for t in ta {
            b.handle_datagram(now, addr(1), t.channel, &t.data);
        }
        let (tb, eb) = drain(b);
        events.extend(eb);
        for t in tb {
            a.handle_datagram(now, addr(2), t.channel, &t.data);
        }
    }
    events
}

#[test]
fn two_private_sessions_with_one_key_chat_and_nothing_is_in_the_clear() {
    let mut a = private(1, "Annabel", 7);
    let mut b = private(2, "Bo", 7);
    assert!(a.is_private());
    assert!(
        !Session::new(at(0), MemberId(3), "C", 3)
            .expect("ok")
            .is_private()
    );
    let _ = exchange(&mut a, &mut b, 0, 10);
    a.handle_send(at(10), "secret words").expect("sent");
    let (t, _) = drain(&mut a);
    assert_eq!(t.len(), 1, "one sealed frame, no plain copy");
    assert_eq!(t[0].channel, Channel::Control);
    assert!(!contains(&t[0].data, b"secret"));
    assert!(!contains(&t[0].data, b"Annabel"));
    for d in &t {
        b.handle_datagram(at(10), addr(1), d.channel, &d.data);
    }
    let mut events = drain(&mut b).1;
    events.extend(exchange(&mut a, &mut b, 11, 1000));
    let texts: Vec<_> = events
        .iter()
        .filter_map(|e| match e {
            Event::Message { text, name, .. } => Some((name.as_str(), text.as_str())),
            _ => None,
        })
        .collect();
    assert_eq!(texts, [("Annabel", "secret words")]);
    assert!(!events.iter().any(|e| matches!(e, Event::Refused { .. })));
    let s = b.stats();
    assert_eq!(
        (s.undecryptable, s.stale, s.unsealed, s.plain_refused),
        (0, 0, 0, 0)
    );
}

#[test]
fn another_key_sees_only_refusals_told_at_once_then_every_notice_period() {
    let mut a = private(1, "Ann", 7);
    let mut c = private(3, "Cy", 8);
    let mut events = Vec::new();
    for i in 0..5u64 {
        a.handle_send(at(i * 100), "hello").expect("sent");
        for t in drain(&mut a).0 {
            c.handle_datagram(at(i * 100), addr(1), t.channel, &t.data);
        }
        events.extend(drain(&mut c).1);
    }
    let first = c.stats().undecryptable;
    assert!(first >= 5);
    assert_eq!(
        events,
        [Event::Refused {
            undecryptable: 1,
            stale: 0,
            plain: 0
        }],
        "the first at once, the rest wait"
    );
    let notice = u64::try_from(REFUSED_NOTICE.as_millis()).expect("small");
    let due = c.poll_timeout().expect("a timer");
    assert!(due <= at(notice));
    c.handle_timeout(at(notice - 1));
    assert!(drain(&mut c).1.is_empty(), "not before the notice period");
    c.handle_timeout(at(notice));
    let told = u32::try_from(first - 1).expect("small");
    assert_eq!(
        drain(&mut c).1,
        [Event::Refused {
            undecryptable: told,
            stale: 0,
            plain: 0
        }]
    );
    assert_eq!(c.members().count(), 0, "nobody was heard");
    // A plain datagram and an unsealed frame: counted as plain, told once
    // the period is over again.
    c.handle_datagram(at(notice + 1), addr(4), Channel::Plain, b"Eve: hi");
    c.handle_datagram(
        at(notice + 2),
        addr(4),
        Channel::Control,
        &encode_bye(MemberId(4)),
    );
    assert!(drain(&mut c).1.is_empty());
    c.handle_timeout(at(2 * notice));
    assert_eq!(
        drain(&mut c).1,
        [Event::Refused {
            undecryptable: 0,
            stale: 0,
            plain: 2
        }]
    );
    assert_eq!((c.stats().plain_refused, c.stats().unsealed), (1, 1));
    // Nothing pending: no refusal timer.
    assert!(c.poll_timeout().expect("a timer") > at(2 * notice));
}

#[test]
fn a_captured_datagram_replayed_later_is_not_delivered_again() {
    let mut a = private(1, "Ann", 7);
    let mut b = private(2, "Bo", 7);
    let _ = exchange(&mut a, &mut b, 0, 10);
    a.handle_send(at(10), "once").expect("sent");
    let captured = drain(&mut a).0;
    for t in &captured {
        b.handle_datagram(at(10), addr(1), t.channel, &t.data);
    }
    let (_, e) = drain(&mut b);
    assert_eq!(
        e.iter()
            .filter(|e| matches!(e, Event::Message { .. }))
            .count(),
        1
    );
    for later in [20, 60_000] {
        for t in &captured {
            b.handle_datagram(at(later), addr(9), t.channel, &t.data);
        }
        let (_, e) = drain(&mut b);
        assert!(e.is_empty(), "{e:?}");
    }
    assert_eq!(b.stats().replayed, 2);
    // Past the clock skew it is stale, and told.
    b.handle_datagram(at(200_000), addr(9), captured[0].channel, &captured[0].data);
    let (_, e) = drain(&mut b);
    assert_eq!(
        e,
        [Event::Refused {
            undecryptable: 0,
            stale: 1,
            plain: 0
        }]
    );
}

#[test]
fn a_private_session_is_of_bounded_size() {
    let size = core::mem::size_of::<Session>();
    // Fixed when made: mostly the MAX_STORED messages and the send queue.
    assert!(size < 640 * 1024, "{size} bytes");
    let long = "x".repeat(MAX_MESSAGE);
    let mut a = private(1, &"N".repeat(crate::chat::limits::MAX_NAME), 7);
    a.handle_send(at(0), &long)
        .expect("the longest message fits sealed");
    let (t, _) = drain(&mut a);
    assert!(t.iter().all(|t| t.data.len() <= MAX_SEALED));
    assert!(matches!(t.last(), Some(t) if t.data.len() > MAX_FRAME));
}

// ---- Properties ----

proptest! {
    /// The replay window takes each (sealer, counter) at most once, and
    /// takes a counter the first time it comes whenever it is within the
    /// window of the highest one taken so far.
    #[test]
    fn the_replay_window_takes_each_counter_once(
        arrivals in proptest::collection::vec((0u8..4, 1u64..400), 0..400)
    ) {
        let mut r = sealing(1, 0xFF);
        let mut taken = BTreeSet::new();
        let mut hi = [0u64; 4];
        for (i, &(s, c)) in arrivals.iter().enumerate() {
            let ok = r.take([s; 16], c, at(i as u64));
            let fresh = !taken.contains(&(s, c));
            let in_window = hi[usize::from(s)] < REPLAY_WINDOW
                || c > hi[usize::from(s)] - REPLAY_WINDOW;
            prop_assert_eq!(ok, fresh && in_window, "arrival {} ({}, {})", i, s, c);
            if ok {
                taken.insert((s, c));
                hi[usize::from(s)] = hi[usize::from(s)].max(c);
            }
        }
    }

    /// Arbitrary datagrams on either port, and valid sealed ones with one
    /// byte changed: no panic, nothing shown, only refusals told.
    #[test]
    fn nothing_unsealed_or_tampered_gets_through(
        input in proptest::collection::vec(
            (any::<bool>(), proptest::collection::vec(any::<u8>(), 0..1400), any::<u16>(), 1u8..=255),
            1..40,
        )
    ) {
        let mut a = sealing(7, 0xA1);
        let mut s = private(2, "Bo", 7);
        for (k, (plain, bytes, pos, flip)) in input.into_iter().enumerate() {
            let now = at(k as u64 * 10);
            let channel = if plain { Channel::Plain } else { Channel::Control };
            s.handle_datagram(now, addr(1), channel, &bytes);
            let frame = crate::chat::frame::encode_heartbeat(
                MemberId(1), "Ann", 0, 0, 0, &[],
            ).expect("a valid name");
            let mut d = a.seal(now, &frame).expect("sealed").to_vec();
            let i = usize::from(pos) % d.len();
            d[i] ^= flip;
            s.handle_datagram(now, addr(1), Channel::Control, &d);
            for e in drain(&mut s).1 {
                prop_assert!(matches!(e, Event::Refused { stale: 0, .. }), "{:?}", e);
            }
        }
        prop_assert_eq!(s.members().count(), 0);
    }

    /// Whatever a private session is given to do, every datagram it puts
    /// out is sealed with its one sealer and a counter higher than the one
    /// before: no (sealer, counter) twice, so no nonce twice. Two members
    /// talk over a lossy link (so requests and repairs go out too), while
    /// old datagrams, mangled ones and plain ones come in.
    #[test]
    fn every_sealed_datagram_has_a_fresh_nonce(
        ops in proptest::collection::vec((0u8..5, 0u16..3000, any::<u8>()), 1..120)
    ) {
        let mut a = private(1, "Ann", 7);
        let mut b = private(2, "Bo", 7);
        let mut now = 0u64;
        let mut last = [0u64; 2];
        let mut wire: Vec<Vec<u8>> = Vec::new();
        // What each put out last, for the other (a third of it lost).
        let mut in_flight: [Vec<Vec<u8>>; 2] = [Vec::new(), Vec::new()];
        for (op, n, byte) in ops {
            for (k, s) in [&mut b, &mut a].into_iter().enumerate() {
                for (j, d) in core::mem::take(&mut in_flight[k]).iter().enumerate() {
                    if (j + usize::from(byte)) % 3 != 0 {
                        s.handle_datagram(at(now), addr(k as u8 + 1), Channel::Control, d);
                    }
                }
            }
            match op {
                0 => now += u64::from(n),
                1 => {
                    let text = "x".repeat(usize::from(n) % 40);
                    let _ = a.handle_send(at(now), &text);
                }
                2 => {
                    let _ = b.handle_send(at(now), "hi");
                }
                3 => {
                    // Something from the wire again, perhaps mangled.
                    if !wire.is_empty() {
                        let mut d = wire[usize::from(n) % wire.len()].clone();
                        if byte % 2 == 1 {
                            let i = usize::from(n) % d.len();
                            d[i] ^= byte;
                        }
                        a.handle_datagram(at(now), addr(9), Channel::Control, &d);
                        b.handle_datagram(at(now), addr(9), Channel::Control, &d);
                    }
                }
                _ => {
                    a.handle_datagram(at(now), addr(9), Channel::Plain, &[byte; 3]);
                }
            }
            a.handle_timeout(at(now));
            b.handle_timeout(at(now));
            for (k, s) in [&mut a, &mut b].into_iter().enumerate() {
                let sealer = [k as u8 + 1; SEALER_BYTES];
                let (t, _) = drain(s);
                for t in t {
                    prop_assert_eq!(t.channel, Channel::Control);
                    prop_assert_eq!(&t.data[5..5 + SEALER_BYTES], &sealer[..]);
                    let c = counter_of(&t.data);
                    prop_assert!(c > last[k], "counter {} after {}", c, last[k]);
                    last[k] = c;
                    in_flight[k].push(t.data.to_vec());
                    if wire.len() < 64 {
                        wire.push(t.data.to_vec());
                    }
                }
            }
        }
    }
}

#[test]
fn decoded_inner_frames_are_the_ones_sealed() {
    let mut a = sealing(1, 0xA1);
    let mut b = sealing(1, 0xB2);
    let frame = encode_bye(MemberId(42));
    let d = a.seal(at(0), &frame).expect("sealed");
    let inner = open(&mut b, at(0), &d).expect("opens");
    assert_eq!(decode(&inner), Ok((MemberId(42), Frame::Bye)));
}

#[test]
fn set_wall_re_anchors_only_past_the_resync_edge() {
    let resync = u64::try_from(WALL_RESYNC.as_millis()).expect("small");
    let mut s = sealing(1, 0xA1);
    // Within WALL_RESYNC of the estimate: kept.
    s.set_wall(at(1000), WALL + 1000 + resync);
    assert_eq!(s.wall_ms(at(1000)), WALL + 1000);
    s.set_wall(at(1000), WALL + 1000 - resync);
    assert_eq!(s.wall_ms(at(1000)), WALL + 1000);
    // Past it, either way: the host's clock is taken.
    s.set_wall(at(1000), WALL + 1000 + resync + 1);
    assert_eq!(s.wall_ms(at(1000)), WALL + 1000 + resync + 1);
    assert_eq!(s.wall_ms(at(3000)), WALL + 3000 + resync + 1);
    s.set_wall(at(3000), WALL - 600_000);
    assert_eq!(s.wall_ms(at(4000)), WALL - 599_000);
}

/// Runs `a` and `b` from `from` to `to` ms, each told its host's wall
/// clock each turn (`wall_a`, `wall_b` at a time); returns the messages
/// each got, as (text at a, text at b).
fn exchange_with_walls(
    a: &mut Session,
    b: &mut Session,
    (from, to): (u64, u64),
    wall_a: impl Fn(u64) -> u64,
    wall_b: impl Fn(u64) -> u64,
) -> (Vec<String>, Vec<String>) {
    let texts = |events: Vec<Event>| {
        events
            .into_iter()
            .filter_map(|e| match e {
                Event::Message { text, .. } => Some(String::from(text.as_str())),
                _ => None,
            })
            .collect::<Vec<_>>()
    };
    let (mut at_a, mut at_b) = (Vec::new(), Vec::new());
    for ms in from..to {
        let now = at(ms);
        a.handle_wall_clock(now, wall_a(ms));
        b.handle_wall_clock(now, wall_b(ms));
        a.handle_timeout(now);
        b.handle_timeout(now);
        let (ta, ea) = drain(a);
        at_a.extend(texts(ea));
        for t in ta {
            b.handle_datagram(now, addr(1), t.channel, &t.data);
        }
        let (tb, eb) = drain(b);
        at_b.extend(texts(eb));
        for t in tb {
            a.handle_datagram(now, addr(2), t.channel, &t.data);
        }
    }
    (at_a, at_b)
}

#[test]
fn a_session_follows_a_step_of_its_hosts_wall_clock() {
    let ten_min = 600_000;
    // Bo's session starts while its host's clock is 10 min behind; then
    // NTP steps the clock right (a suspend that the monotonic clock did
    // not count leaves the session as far behind: the same case).
    let mut a = private(1, "Ann", 7);
    let s = Sealing::new(&key(7), [2; SEALER_BYTES], at(0), WALL - ten_min);
    let mut b = Session::new_private(at(0), MemberId(2), "Bo", 2, s).expect("a valid name");
    let right = |ms: u64| WALL + ms;
    let behind = |ms: u64| WALL + ms - ten_min;
    a.handle_send(at(0), "before").expect("sent");
    let (at_a, at_b) = exchange_with_walls(&mut a, &mut b, (0, 50), right, behind);
    assert!(at_a.is_empty() && at_b.is_empty(), "{at_a:?} {at_b:?}");
    assert!(b.stats().stale > 0 && a.stats().stale > 0);
    // The host's clock is stepped: the session follows at the next turn.
    let stale = (a.stats().stale, b.stats().stale);
    b.handle_wall_clock(at(50), right(50));
    b.handle_send(at(50), "after the step").expect("sent");
    let (at_a, at_b) = exchange_with_walls(&mut a, &mut b, (50, 3000), right, right);
    assert_eq!(at_a, [String::from("after the step")]);
    // "before" reaches Bo too, through the reliable layer's repair.
    assert_eq!(at_b, [String::from("before")]);
    assert_eq!((a.stats().stale, b.stats().stale), stale);
}

#[test]
fn a_replay_of_a_departed_member_does_not_make_it_join_again() {
    // Ann sees Bo's datagrams; Cy joined later and missed them, but sees
    // Bo's goodbye. A replay of Bo's older datagrams (fresh, and new to
    // Cy's replay window) must not show Bo as joining again.
    let mut a = private(1, "Ann", 7);
    let mut b = private(2, "Bo", 7);
    let mut c = private(3, "Cy", 7);
    let mut captured = Vec::new();
    let _ = exchange(&mut a, &mut b, 0, 10);
    b.handle_send(at(10), "before leaving").expect("sent");
    let _ = drain(&mut a);
    for ms in 10..400 {
        b.handle_timeout(at(ms));
        a.handle_timeout(at(ms));
        for t in drain(&mut b).0 {
            a.handle_datagram(at(ms), addr(2), t.channel, &t.data);
            captured.push(t);
        }
        for t in drain(&mut a).0 {
            b.handle_datagram(at(ms), addr(1), t.channel, &t.data);
        }
    }
    assert!(!captured.is_empty());
    b.handle_leave(at(400));
    for t in drain(&mut b).0 {
        a.handle_datagram(at(400), addr(2), t.channel, &t.data);
        c.handle_datagram(at(400), addr(2), t.channel, &t.data);
    }
    let (_, ea) = drain(&mut a);
    assert!(
        ea.iter()
            .any(|e| matches!(e, Event::Left { id, .. } if *id == MemberId(2)))
    );
    let _ = drain(&mut c);
    for t in &captured {
        c.handle_datagram(at(1000), addr(2), t.channel, &t.data);
    }
    c.handle_timeout(at(1000));
    let (_, ec) = drain(&mut c);
    assert!(
        !ec.iter()
            .any(|e| matches!(e, Event::Joined { id, .. } if *id == MemberId(2))),
        "{ec:?}"
    );
    assert!(
        !c.members().any(|m| m.id == Some(MemberId(2))),
        "not shown as present"
    );
    // After DEPARTED_MEMORY the goodbye is forgotten (a replay is stale by
    // then anyway: older than MAX_CLOCK_SKEW).
    let later = 400 + u64::try_from(DEPARTED_MEMORY.as_millis()).expect("small");
    c.handle_timeout(at(later));
    let fresh = Sealing::new(&key(7), [9; SEALER_BYTES], at(0), WALL + later);
    let mut b2 = Session::new_private(at(0), MemberId(2), "Bo", 9, fresh).expect("ok");
    b2.handle_timeout(at(0));
    for t in drain(&mut b2).0 {
        c.handle_datagram(at(later), addr(2), t.channel, &t.data);
    }
    let (_, ec) = drain(&mut c);
    assert!(
        ec.iter()
            .any(|e| matches!(e, Event::Joined { id, .. } if *id == MemberId(2))),
        "{ec:?}"
    );
}
