//! Script-like tests of the frame codec and of one or two sessions.

use core::net::{IpAddr, Ipv4Addr, SocketAddr};
use core::time::Duration;
use std::vec::Vec;

use super::frame::{
    self, Data, DigestEntry, FLAG_REPAIR, Frame, FrameError, Nak, decode, encode_bye, encode_data,
    encode_heartbeat, encode_nak,
};
use super::limits::{
    CATCHUP, HEARTBEAT_MAX, MAX_FRAME, MAX_HOLDBACK, MAX_MEMBERS, MAX_MESSAGE, MAX_NAK_RANGE,
    MAX_NAME, MAX_STORED, MEMBER_TIMEOUT, NAK_TRIES, OWN_STORED, REPAIR_RATE, SEND_BURST,
    SEND_QUEUE_BYTES, SEND_RATE, WINDOW,
};
use super::{Channel, Event, MemberId, Session, Transmit, UsageError};
use crate::Instant;

/// `ms` milliseconds after the tests' zero.
pub(super) fn at(ms: u64) -> Instant {
    Instant::from_micros(ms * 1000)
}

/// A member's address: 10.0.0.`n`, port 40000.
pub(super) fn addr(n: u8) -> SocketAddr {
    SocketAddr::new(IpAddr::V4(Ipv4Addr::new(10, 0, 0, n)), 40000)
}

fn session(id: u64, name: &str) -> Session {
    Session::new(at(0), MemberId(id), name, id).expect("a valid name")
}

/// Everything `s` has to send and to tell, drained.
pub(super) fn drain(s: &mut Session) -> (Vec<Transmit>, Vec<Event>) {
    let mut t = Vec::new();
    while let Some(x) = s.poll_transmit() {
        t.push(x);
    }
    let mut e = Vec::new();
    while let Some(x) = s.poll_event() {
        e.push(x);
    }
    (t, e)
}

fn data(origin: u64, seq: u32, text: &str) -> Vec<u8> {
    let d = Data {
        flags: 0,
        origin: MemberId(origin),
        seq,
        age_ms: 0,
        name: "Ann",
        text,
    };
    encode_data(MemberId(origin), &d).expect("fits").to_vec()
}

fn texts(events: &[Event]) -> Vec<&str> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Message { text, .. } => Some(text.as_str()),
            _ => None,
        })
        .collect()
}

// ---- Codec ----

#[test]
fn frames_round_trip() {
    let d = Data {
        flags: FLAG_REPAIR,
        origin: MemberId(7),
        seq: 42,
        age_ms: 1234,
        name: "Ann B",
        text: "hello, wörld",
    };
    let bytes = encode_data(MemberId(9), &d).expect("fits");
    assert_eq!(decode(&bytes), Ok((MemberId(9), Frame::Data(d))));

    let n = Nak {
        origin: MemberId(7),
        first: 3,
        count: 5,
        attempt: 1,
    };
    assert_eq!(
        decode(&encode_nak(MemberId(1), &n)),
        Ok((MemberId(1), Frame::Nak(n)))
    );

    let digest = [DigestEntry {
        origin: MemberId(5),
        hi: 10,
        age_ms: 20,
    }];
    let hb = encode_heartbeat(MemberId(2), "Bo", 4, 100, 1, &digest).expect("fits");
    let Ok((MemberId(2), Frame::Heartbeat(h))) = decode(&hb) else {
        panic!("not a heartbeat");
    };
    assert_eq!((h.name, h.hi, h.hi_age_ms, h.low), ("Bo", 4, 100, 1));
    assert_eq!(h.digest().collect::<Vec<_>>(), digest);

    assert_eq!(
        decode(&encode_bye(MemberId(3))),
        Ok((MemberId(3), Frame::Bye))
    );
}

#[test]
fn frame_header_is_magic_version_kind_sender() {
    let bytes = encode_bye(MemberId(0x0102_0304_0506_0708));
    assert_eq!(
        bytes.as_slice(),
        &[0xFF, b'R', b'C', 1, 4, 1, 2, 3, 4, 5, 6, 7, 8]
    );
}

#[test]
fn plain_text_is_never_a_frame() {
    assert_eq!(decode(b"Ann: hello"), Err(FrameError::NotAFrame));
    assert_eq!(decode(b""), Err(FrameError::NotAFrame));
}

#[test]
fn other_versions_and_kinds_are_refused() {
    let mut bytes = encode_bye(MemberId(1)).to_vec();
    bytes[3] = 2;
    assert_eq!(decode(&bytes), Err(FrameError::Version));
    let mut bytes = encode_bye(MemberId(1)).to_vec();
    bytes[4] = 99;
    assert_eq!(decode(&bytes), Err(FrameError::Kind));
}

#[test]
fn every_truncation_of_a_frame_is_refused() {
    let frames = [
        data(1, 1, "hi"),
        encode_nak(
            MemberId(1),
            &Nak {
                origin: MemberId(2),
                first: 1,
                count: 1,
                attempt: 1,
            },
        )
        .to_vec(),
        encode_heartbeat(MemberId(1), "A", 1, 1, 1, &[])
            .expect("fits")
            .to_vec(),
    ];
    for f in frames {
        for cut in 0..f.len() {
            // A data frame cut inside its text is still a (shorter) frame.
            if let Ok((_, Frame::Data(d))) = decode(&f[..cut]) {
                assert!(d.text.len() < 2);
                continue;
            }
            assert!(decode(&f[..cut]).is_err(), "cut at {cut} of {f:?}");
        }
    }
}

#[test]
fn limits_of_the_codec() {
    let long = "x".repeat(MAX_MESSAGE);
    let name = "n".repeat(MAX_NAME);
    let d = Data {
        flags: 0,
        origin: MemberId(1),
        seq: 1,
        age_ms: 0,
        name: &name,
        text: &long,
    };
    let bytes = encode_data(MemberId(1), &d).expect("the longest message fits");
    assert!(bytes.len() <= MAX_FRAME);
    assert!(
        name.len() + 2 + long.len() <= MAX_FRAME,
        "and its plain copy"
    );
    let longer = "x".repeat(MAX_MESSAGE + 1);
    assert!(encode_data(MemberId(1), &Data { text: &longer, ..d }).is_none());
    // A request for more than MAX_NAK_RANGE is cut to it.
    let mut nak = encode_nak(
        MemberId(1),
        &Nak {
            origin: MemberId(2),
            first: 1,
            count: 1,
            attempt: 1,
        },
    )
    .to_vec();
    let len = nak.len();
    nak[len - 2] = 255;
    let Ok((_, Frame::Nak(n))) = decode(&nak) else {
        panic!("a request");
    };
    assert_eq!(n.count, MAX_NAK_RANGE);
    // Sequence number 0, an empty or controlled name: not frames.
    let mut zero = data(1, 1, "hi");
    zero[25..29].copy_from_slice(&[0, 0, 0, 0]);
    assert_eq!(decode(&zero), Err(FrameError::Malformed));
    assert!(encode_heartbeat(MemberId(1), "a\u{7}", 0, 0, 0, &[]).is_none());
    assert!(!frame::is_valid_name(""));
}

// ---- Sessions ----

#[test]
fn send_puts_out_a_frame_and_a_plain_copy() {
    let mut s = session(1, "Ann");
    let _ = drain(&mut s);
    s.handle_send(at(10), "hello").expect("sent");
    let (t, _) = drain(&mut s);
    assert_eq!(t.len(), 2);
    assert_eq!(t[0].channel, Channel::Control);
    assert!(
        matches!(decode(&t[0].data), Ok((_, Frame::Data(d))) if d.seq == 1 && d.text == "hello")
    );
    assert_eq!(t[1].channel, Channel::Plain);
    assert_eq!(t[1].data.as_slice(), b"Ann: hello");
    let long = "x".repeat(MAX_MESSAGE + 1);
    assert_eq!(s.handle_send(at(11), &long), Err(UsageError::TooLong));
    assert_eq!(
        Session::new(at(0), MemberId(1), "", 0).err(),
        Some(UsageError::BadName)
    );
}

#[test]
fn messages_are_delivered_once_in_order() {
    let mut b = session(2, "Bo");
    let _ = drain(&mut b);
    b.handle_datagram(at(1), addr(1), Channel::Control, &data(1, 2, "two"));
    b.handle_datagram(at(1), addr(1), Channel::Control, &data(1, 2, "two"));
    let (_, e) = drain(&mut b);
    assert!(texts(&e).is_empty(), "held back: one is missing");
    assert!(matches!(e.first(), Some(Event::Joined { name, .. }) if name == "Ann"));
    b.handle_datagram(at(2), addr(1), Channel::Control, &data(1, 1, "one"));
    let (_, e) = drain(&mut b);
    assert_eq!(texts(&e), ["one", "two"]);
    b.handle_datagram(at(3), addr(1), Channel::Control, &data(1, 1, "one"));
    assert!(drain(&mut b).1.is_empty(), "a duplicate is dropped");
}

#[test]
fn a_gap_is_asked_for_and_repaired_by_the_sender() {
    let mut a = session(1, "Ann");
    let mut b = session(2, "Bo");
    let _ = drain(&mut a);
    let _ = drain(&mut b);
    a.handle_send(at(0), "one").expect("sent");
    a.handle_send(at(0), "two").expect("sent");
    let (t, _) = drain(&mut a);
    // Only the second reaches b.
    b.handle_datagram(at(1), addr(1), Channel::Control, &t[2].data);
    let _ = drain(&mut b);
    let mut naks = Vec::new();
    let mut due = at(1);
    while naks.is_empty() {
        due = b.poll_timeout().expect("a timer");
        assert!(due <= at(1) + Duration::from_millis(121), "asks in time");
        b.handle_timeout(due);
        let (t, _) = drain(&mut b);
        naks.extend(t.iter().filter_map(|x| match decode(&x.data) {
            Ok((_, Frame::Nak(n))) => Some((n, x.data.clone())),
            _ => None,
        }));
    }
    let (naks, frames): (Vec<_>, Vec<_>) = naks.into_iter().unzip();
    assert_eq!(naks.len(), 1);
    assert_eq!((naks[0].first, naks[0].count), (1, 1));
    a.handle_datagram(due, addr(2), Channel::Control, &frames[0]);
    let _ = drain(&mut a);
    let rep = a.poll_timeout().expect("a repair timer");
    assert!(
        rep <= due + Duration::from_millis(10),
        "the sender answers first"
    );
    a.handle_timeout(rep);
    let (t, _) = drain(&mut a);
    let repair = t
        .iter()
        .find(|x| matches!(decode(&x.data), Ok((_, Frame::Data(d))) if d.flags & FLAG_REPAIR != 0))
        .expect("a repair");
    b.handle_datagram(rep, addr(1), Channel::Control, &repair.data);
    assert_eq!(texts(&drain(&mut b).1), ["one", "two"]);
}

#[test]
fn hearing_anothers_request_suppresses_mine() {
    let mut b = session(2, "Bo");
    let _ = drain(&mut b);
    b.handle_datagram(at(0), addr(1), Channel::Control, &data(1, 2, "two"));
    let _ = drain(&mut b);
    let mine = b.poll_timeout().expect("a request timer");
    let other = encode_nak(
        MemberId(3),
        &Nak {
            origin: MemberId(1),
            first: 1,
            count: 1,
            attempt: 1,
        },
    );
    b.handle_datagram(at(10), addr(3), Channel::Control, &other);
    let _ = drain(&mut b);
    b.handle_timeout(mine);
    let (t, _) = drain(&mut b);
    assert!(
        !t.iter()
            .any(|x| matches!(decode(&x.data), Ok((_, Frame::Nak(_))))),
        "no request of my own right after another's"
    );
}

#[test]
fn hearing_a_repair_cancels_mine() {
    // Bo holds Ann's message; Cy asks a second time; Bo would repair it
    // (control), unless it hears Dee's repair first.
    for heard in [false, true] {
        let mut b = session(2, "Bo");
        let _ = drain(&mut b);
        b.handle_datagram(at(0), addr(1), Channel::Control, &data(1, 1, "one"));
        let _ = drain(&mut b);
        let nak = encode_nak(
            MemberId(3),
            &Nak {
                origin: MemberId(1),
                first: 1,
                count: 1,
                attempt: 2,
            },
        );
        b.handle_datagram(at(500), addr(3), Channel::Control, &nak);
        let _ = drain(&mut b);
        if heard {
            let mut rep = data(1, 1, "one");
            rep[13] = FLAG_REPAIR;
            b.handle_datagram(at(501), addr(4), Channel::Control, &rep);
            let _ = drain(&mut b);
        }
        b.handle_timeout(at(2000));
        let (t, _) = drain(&mut b);
        let repaired = t
            .iter()
            .any(|x| matches!(decode(&x.data), Ok((_, Frame::Data(_)))));
        assert_eq!(repaired, !heard);
    }
}

#[test]
fn a_first_request_is_left_to_the_origin_while_it_is_here() {
    let mut b = session(2, "Bo");
    let _ = drain(&mut b);
    b.handle_datagram(at(0), addr(1), Channel::Control, &data(1, 1, "one"));
    let _ = drain(&mut b);
    let nak = encode_nak(
        MemberId(3),
        &Nak {
            origin: MemberId(1),
            first: 1,
            count: 1,
            attempt: 1,
        },
    );
    b.handle_datagram(at(500), addr(3), Channel::Control, &nak);
    b.handle_timeout(at(2000));
    let (t, _) = drain(&mut b);
    assert!(
        !t.iter()
            .any(|x| matches!(decode(&x.data), Ok((_, Frame::Data(_)))))
    );
}

#[test]
fn a_flood_of_requests_gets_bounded_repairs() {
    let mut a = session(1, "Ann");
    let _ = drain(&mut a);
    for _ in 0..10 {
        a.handle_send(at(0), "m").expect("sent");
        let _ = drain(&mut a);
    }
    let mut repairs = 0;
    for ms in 0..1000u64 {
        for first in 1..=10 {
            let nak = encode_nak(
                MemberId(9),
                &Nak {
                    origin: MemberId(1),
                    first,
                    count: 1,
                    attempt: 1,
                },
            );
            a.handle_datagram(at(1000 + ms), addr(9), Channel::Control, &nak);
        }
        a.handle_timeout(at(1000 + ms));
        repairs += drain(&mut a)
            .0
            .iter()
            .filter(|x| matches!(decode(&x.data), Ok((_, Frame::Data(_)))))
            .count();
    }
    // 10 messages, each at most once per REPAIR_HOLDOFF (200 ms): 50 in a
    // second, and never more than REPAIR_RATE.
    assert!(repairs <= 10 * 5 + 10, "{repairs} repairs");
    assert!(repairs as u32 <= REPAIR_RATE);
}

#[test]
fn a_huge_claimed_gap_is_bounded() {
    let mut b = session(2, "Bo");
    let _ = drain(&mut b);
    b.handle_datagram(at(0), addr(1), Channel::Control, &data(1, 1, "one"));
    let _ = drain(&mut b);
    let hb = encode_heartbeat(MemberId(1), "Ann", u32::MAX, 0, 1, &[]).expect("fits");
    b.handle_datagram(at(1), addr(1), Channel::Control, &hb);
    let (_, e) = drain(&mut b);
    let lost: u32 = e
        .iter()
        .map(|e| match e {
            Event::Lost { count, .. } => *count,
            _ => 0,
        })
        .sum();
    assert_eq!(lost, u32::MAX - CATCHUP - 1, "one notice for the jump");
    // Only the window is chased.
    let mut asked = 0;
    for ms in 0..3000u64 {
        b.handle_timeout(at(2 + ms));
        for t in drain(&mut b).0 {
            if let Ok((_, Frame::Nak(n))) = decode(&t.data) {
                asked += u32::from(n.count);
            }
        }
    }
    assert!(asked <= 4 * WINDOW, "{asked}");
    assert!(b.held_back() <= MAX_HOLDBACK);
}

#[test]
fn a_missing_message_is_reported_lost_after_the_tries() {
    let mut b = session(2, "Bo");
    let _ = drain(&mut b);
    b.handle_datagram(at(0), addr(1), Channel::Control, &data(1, 2, "two"));
    let _ = drain(&mut b);
    let mut naks = 0;
    let mut events = Vec::new();
    let mut now = at(0);
    while let Some(t) = b.poll_timeout() {
        if t > at(120_000) {
            break;
        }
        now = t;
        b.handle_timeout(now);
        let (t, e) = drain(&mut b);
        naks += t
            .iter()
            .filter(|x| matches!(decode(&x.data), Ok((_, Frame::Nak(_)))))
            .count();
        events.extend(e.into_iter().filter(|e| !matches!(e, Event::Left { .. })));
        if !events.is_empty() {
            break;
        }
    }
    assert_eq!(naks, usize::from(NAK_TRIES));
    assert!(matches!(&events[0], Event::Lost { count: 1, name, .. } if name == "Ann"));
    assert!(matches!(&events[1], Event::Message { text, .. } if text == "two"));
    assert!(now < at(60_000));
}

#[test]
fn presence_joins_leaves_and_timeouts() {
    let mut b = session(2, "Bo");
    let _ = drain(&mut b);
    let hb = encode_heartbeat(MemberId(1), "Ann", 0, 0, 0, &[]).expect("fits");
    b.handle_datagram(at(0), addr(1), Channel::Control, &hb);
    let hb3 = encode_heartbeat(MemberId(3), "Ann", 0, 0, 0, &[]).expect("fits");
    b.handle_datagram(at(0), addr(3), Channel::Control, &hb3);
    let (_, e) = drain(&mut b);
    assert_eq!(e.len(), 2, "two members named Ann, told apart: {e:?}");
    assert_eq!(b.members().count(), 2);
    b.handle_datagram(at(10), addr(1), Channel::Control, &encode_bye(MemberId(1)));
    let (_, e) = drain(&mut b);
    assert!(
        matches!(
            &e[..],
            [Event::Left {
                id: MemberId(1),
                timed_out: false,
                ..
            }]
        ),
        "{e:?}"
    );
    // Member 3 goes quiet.
    b.handle_timeout(at(0) + (MEMBER_TIMEOUT - Duration::from_millis(1)));
    assert!(drain(&mut b).1.is_empty());
    b.handle_timeout(at(0) + MEMBER_TIMEOUT);
    let (_, e) = drain(&mut b);
    assert!(
        matches!(
            &e[..],
            [Event::Left {
                id: MemberId(3),
                timed_out: true,
                ..
            }]
        ),
        "{e:?}"
    );
    assert_eq!(b.members().count(), 0);
}

#[test]
fn a_quiet_member_backs_off_its_heartbeats() {
    let mut a = session(1, "Ann");
    let mut beats = Vec::new();
    let mut now = at(0);
    a.handle_timeout(now);
    while now < at(30_000) {
        for t in drain(&mut a).0 {
            if matches!(decode(&t.data), Ok((_, Frame::Heartbeat(_)))) {
                beats.push(now);
            }
        }
        now = a.poll_timeout().expect("a heartbeat timer");
        a.handle_timeout(now);
    }
    let gaps: Vec<_> = beats
        .windows(2)
        .map(|w| w[1].saturating_since(w[0]))
        .collect();
    assert_eq!(gaps[0], Duration::from_millis(250));
    assert_eq!(gaps[1], Duration::from_millis(500));
    assert!(gaps.iter().all(|g| *g <= HEARTBEAT_MAX));
    assert_eq!(*gaps.last().expect("gaps"), HEARTBEAT_MAX);
}

#[test]
fn plain_clients_are_shown_and_listed_and_copies_are_not_shown_twice() {
    let mut b = session(2, "Bo");
    let _ = drain(&mut b);
    // A plain client.
    b.handle_datagram(at(0), addr(7), Channel::Plain, b"Cy: hi all");
    let (_, e) = drain(&mut b);
    assert!(matches!(&e[..], [Event::Plain { data, .. }] if data.as_slice() == b"Cy: hi all"));
    let who: Vec<_> = b.members().collect();
    assert_eq!((who[0].id, who[0].name), (None, "Cy"));
    // A roomcast member: its plain copy is not shown, its frame is.
    b.handle_datagram(at(1), addr(1), Channel::Control, &data(1, 1, "yo"));
    b.handle_datagram(at(1), addr(1), Channel::Plain, b"Ann: yo");
    let (_, e) = drain(&mut b);
    assert_eq!(texts(&e), ["yo"]);
    assert!(!e.iter().any(|e| matches!(e, Event::Plain { .. })));
    // The plain copy first (nothing known of the member yet): shown as
    // plain, then the frame says it was shown already.
    b.handle_datagram(at(2), addr(5), Channel::Plain, b"Ann: first");
    b.handle_datagram(at(2), addr(5), Channel::Control, &data(5, 1, "first"));
    let (_, e) = drain(&mut b);
    assert!(matches!(&e[0], Event::Plain { .. }));
    assert!(e.iter().any(|e| matches!(
        e,
        Event::Message {
            already_shown: true,
            ..
        }
    )));
    // Our own copies coming back are not shown.
    b.handle_send(at(3), "mine").expect("sent");
    let _ = drain(&mut b);
    b.handle_datagram(at(3), addr(2), Channel::Plain, b"Bo: mine");
    assert!(drain(&mut b).1.is_empty());
}

#[test]
fn a_late_joiner_gets_history() {
    let mut b = session(2, "Bo");
    let _ = drain(&mut b);
    // Ann's third message, sent 60 s before Bo came in, arrives as a repair.
    let d = Data {
        flags: FLAG_REPAIR,
        origin: MemberId(1),
        seq: 3,
        age_ms: 60_000,
        name: "Ann",
        text: "old",
    };
    let bytes = encode_data(MemberId(4), &d).expect("fits");
    b.handle_datagram(at(100), addr(4), Channel::Control, &bytes);
    let (_, e) = drain(&mut b);
    assert!(texts(&e).is_empty(), "1 and 2 are asked for first");
    let mut d1 = d;
    for (seq, text) in [(1, "older"), (2, "old too")] {
        d1.seq = seq;
        d1.text = text;
        let bytes = encode_data(MemberId(4), &d1).expect("fits");
        b.handle_datagram(at(200), addr(4), Channel::Control, &bytes);
    }
    let (_, e) = drain(&mut b);
    let hist: Vec<_> = e
        .iter()
        .filter_map(|e| match e {
            Event::History { text, age, .. } => Some((text.as_str(), age.as_secs())),
            _ => None,
        })
        .collect();
    assert_eq!(hist, [("older", 60), ("old too", 60), ("old", 60)]);
}

#[test]
fn the_member_table_is_bounded() {
    let mut b = session(2, "Bo");
    let _ = drain(&mut b);
    for id in 100..100 + 2 * MAX_MEMBERS as u64 {
        let hb = encode_heartbeat(MemberId(id), "x", 0, 0, 0, &[]).expect("fits");
        b.handle_datagram(at(0), addr(1), Channel::Control, &hb);
        let _ = drain(&mut b);
    }
    assert_eq!(b.members().count(), MAX_MEMBERS);
    assert!(b.stats().dropped >= MAX_MEMBERS as u64);
}

#[test]
fn time_going_backwards_is_clamped() {
    let mut a = session(1, "Ann");
    a.handle_timeout(at(5000));
    let _ = drain(&mut a);
    a.handle_timeout(at(10));
    let _ = drain(&mut a);
    assert!(a.poll_timeout().expect("a deadline") >= at(5000));
}

#[test]
fn control_port_is_the_next_one() {
    assert_eq!(super::control_port(5000), Some(5001));
    assert_eq!(super::control_port(u16::MAX), None);
}

#[test]
fn a_session_is_of_bounded_size() {
    // Mostly the stored messages (MAX_STORED slots of about 1.2 KiB).
    let size = core::mem::size_of::<Session>();
    assert!(size < 512 * 1024, "{size} bytes");
}

// ---- Sending: pace, queue, own store ----

/// The seqs of the DATA frames (first transmissions) in `t`.
fn data_seqs(t: &[Transmit]) -> Vec<u32> {
    t.iter()
        .filter_map(|x| match decode(&x.data) {
            Ok((_, Frame::Data(d))) if d.flags & FLAG_REPAIR == 0 => Some(d.seq),
            _ => None,
        })
        .collect()
}

/// Runs `s`'s timers up to `until` (ms), collecting what it sends.
fn run_until(s: &mut Session, until: u64) -> Vec<Transmit> {
    let mut out = Vec::new();
    while let Some(due) = s.poll_timeout() {
        if due > at(until) {
            break;
        }
        s.handle_timeout(due);
        out.extend(drain(s).0);
    }
    out
}

#[test]
fn a_burst_goes_out_at_the_senders_pace_in_order() {
    let mut a = session(1, "Ann");
    let _ = drain(&mut a);
    let lines = 3 * SEND_BURST;
    for k in 0..lines {
        a.handle_send(at(0), &std::format!("line {k}"))
            .expect("queued");
    }
    let first = data_seqs(&drain(&mut a).0);
    assert_eq!(
        first,
        (1..=SEND_BURST).collect::<Vec<_>>(),
        "a burst at once"
    );
    assert_eq!(a.queued(), (lines - SEND_BURST) as usize);
    // Then one every 1/SEND_RATE s: after 1 s, SEND_RATE more.
    let next = a.poll_timeout().expect("a deadline");
    assert_eq!(next, at(1000 / u64::from(SEND_RATE)));
    let more = data_seqs(&run_until(&mut a, 1000));
    assert_eq!(
        more,
        (SEND_BURST + 1..=SEND_BURST + SEND_RATE).collect::<Vec<_>>()
    );
    let rest = data_seqs(&run_until(&mut a, 10_000));
    assert_eq!(
        rest,
        (SEND_BURST + SEND_RATE + 1..=lines).collect::<Vec<_>>()
    );
    assert_eq!(a.queued(), 0);
    assert_eq!(a.stats().messages_sent, u64::from(lines));
}

#[test]
fn the_send_queue_is_bounded_in_bytes_and_says_busy() {
    let mut a = session(1, "Ann");
    let _ = drain(&mut a);
    // The burst goes out at once and takes no queue.
    for _ in 0..SEND_BURST {
        a.handle_send(at(0), "x").expect("sent");
    }
    assert_eq!(a.queued(), 0);
    let long = "y".repeat(MAX_MESSAGE);
    let fit = SEND_QUEUE_BYTES / (2 + MAX_MESSAGE);
    for _ in 0..fit {
        assert!(a.can_send());
        a.handle_send(at(0), &long).expect("queued");
    }
    assert!(!a.can_send(), "no room for the longest line");
    assert_eq!(a.handle_send(at(0), &long), Err(UsageError::Busy));
    // What is left fits a shorter line exactly.
    let left = SEND_QUEUE_BYTES - fit * (2 + MAX_MESSAGE) - 2;
    assert_eq!(
        a.handle_send(at(0), &"z".repeat(left + 1)),
        Err(UsageError::Busy)
    );
    a.handle_send(at(0), &"z".repeat(left))
        .expect("fits exactly");
    assert_eq!(a.queued(), fit + 1);
    let _ = drain(&mut a);
    // Leaving drops what waits, and counts it.
    a.handle_leave(at(1));
    assert_eq!(a.stats().unsent, (fit + 1) as u64);
    assert_eq!(a.queued(), 0);
    assert_eq!(a.handle_send(at(2), "late"), Err(UsageError::Closed));
}

#[test]
fn others_messages_never_push_out_own_ones() {
    let mut a = session(1, "Ann");
    let _ = drain(&mut a);
    // OWN_STORED own messages, sent at the pace.
    let mut t = 0;
    for k in 0..OWN_STORED {
        a.handle_send(at(t), &std::format!("own {k}"))
            .expect("queued");
        let _ = drain(&mut a);
        let _ = run_until(&mut a, t + 100);
        t += 100;
    }
    // A flood of another member's messages fills the rest of the store many
    // times over.
    for seq in 1..=3 * MAX_STORED as u32 {
        a.handle_datagram(at(t), addr(2), Channel::Control, &data(2, seq, "other"));
        let _ = drain(&mut a);
    }
    assert_eq!(a.stored(), MAX_STORED);
    // The oldest own message is still repaired when asked for.
    let nak = encode_nak(
        MemberId(9),
        &Nak {
            origin: MemberId(1),
            first: 1,
            count: 1,
            attempt: 1,
        },
    );
    a.handle_datagram(at(t), addr(9), Channel::Control, &nak);
    let repairs = |t: &[Transmit]| {
        t.iter()
            .filter_map(|x| match decode(&x.data) {
                Ok((_, Frame::Data(d))) if d.flags & FLAG_REPAIR != 0 => Some(d.seq),
                _ => None,
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(repairs(&run_until(&mut a, t + 50)), [1]);
    // One more own message: the oldest own one makes room for it.
    t += 1000;
    a.handle_send(at(t), "one more").expect("sent");
    let _ = drain(&mut a);
    a.handle_datagram(at(t), addr(9), Channel::Control, &nak);
    assert!(repairs(&run_until(&mut a, t + 50)).is_empty(), "1 is gone");
    let nak2 = encode_nak(
        MemberId(9),
        &Nak {
            origin: MemberId(1),
            first: 2,
            count: 1,
            attempt: 1,
        },
    );
    a.handle_datagram(at(t + 60), addr(9), Channel::Control, &nak2);
    assert_eq!(repairs(&run_until(&mut a, t + 120)), [2]);
}
