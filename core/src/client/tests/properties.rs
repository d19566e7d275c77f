//! Property runs: replies split anywhere, and random inputs.

use super::*;

// ---- properties ----

/// A session's server side: the reply to each request in turn, the
/// greeting first.
fn session_replies() -> Vec<Vec<u8>> {
    let mut listing = b"OK 40 rooms\n".to_vec();
    for i in 0..40 {
        listing.extend(format!("r{i} 239.1.0.{i} 5000\n").bytes());
    }
    listing.extend(b".\n");
    vec![
        GREETING.to_vec(),
        b"OK created lobby 239.1.1.1 5000\r\n".to_vec(),
        listing,
        b"ERR noroom no room named zz\n".to_vec(),
        b"OK 0 rooms\n.\n".to_vec(),
        b"OK bye\n".to_vec(),
    ]
}

const SESSION_LINES: [&str; 5] = [
    "makeroom lobby 239.1.1.1 5000",
    "getdir",
    "deleteroom zz",
    "getdir",
    "bye",
];

/// Runs the session with the server's byte stream cut at `cuts` (positions
/// in the whole stream). A reply goes out only once its request was sent,
/// as from a real server; the user's lines are handed over whenever the
/// client is ready for one, as the host does.
fn run_session(cuts: &[usize]) -> Vec<Output> {
    let replies = session_replies();
    let bytes: Vec<u8> = replies.concat();
    let mut bounds = Vec::new();
    let mut end = 0;
    for r in &replies {
        end += r.len();
        bounds.push(end);
    }
    let mut points: Vec<usize> = cuts.iter().map(|&p| p % (bytes.len() + 1)).collect();
    points.push(bytes.len());
    points.sort_unstable();

    let mut c = Client::new(config(), t(0));
    let mut out = drain(&mut c);
    out.extend(user(&mut c, 1, "connect"));
    c.handle_connected(t(2));
    out.extend(drain(&mut c));
    let mut lines = SESSION_LINES.iter();
    let mut start = 0;
    let mut requests = 1; // the greeting is owed from the start
    while start < bytes.len() {
        let allowed = bounds[requests - 1];
        let next = points
            .iter()
            .copied()
            .find(|&p| p > start)
            .unwrap_or(bytes.len());
        let end = next.min(allowed);
        assert!(end > start, "the client stopped asking");
        out.extend(server(&mut c, 3, &bytes[start..end]));
        start = end;
        while c.ready_for_input() {
            match lines.next() {
                Some(l) => {
                    let o = user(&mut c, 4, l);
                    requests += o
                        .iter()
                        .filter(|o| matches!(o, Output::SendLine(_)))
                        .count();
                    out.extend(o);
                }
                None => break,
            }
        }
    }
    out
}

proptest! {
    #[test]
    fn replies_split_anywhere_give_the_same_outputs(
        cuts in proptest::collection::vec(0usize..2000, 0..40)
    ) {
        let whole = run_session(&[]);
        prop_assert_eq!(run_session(&cuts), whole);
    }

    #[test]
    fn replies_byte_by_byte(_x in 0..1u8) {
        let n = session_replies().concat().len();
        let cuts: Vec<usize> = (0..n).collect();
        prop_assert_eq!(run_session(&cuts), run_session(&[]));
    }

    #[test]
    fn any_input_never_panics_and_keeps_invariants(
        steps in proptest::collection::vec(step_strategy(), 0..80)
    ) {
        let mut c = Client::new(config(), t(0));
        let mut now = 0u64;
        let mut conn_open = false;   // between Connect and Close
        let mut joined = false;
        let mut out = drain(&mut c);
        for step in steps {
            now += step.advance;
            match step.input {
                In::Line(l) => c.handle_user_line(t(now), l.as_bytes()),
                In::Raw(b) => c.handle_user_line(t(now), &b),
                In::Leave => c.handle_leave_chat(t(now)),
                In::Interrupt => c.handle_interrupt(t(now)),
                In::Connected => c.handle_connected(t(now)),
                In::Failed => c.handle_connect_failed(t(now), ConnectFailure::Refused),
                In::Bytes(b) => {
                    let mut taken = 0;
                    while taken < b.len() {
                        let n = c.handle_server_bytes(t(now), &b[taken..]);
                        taken += n;
                        out.extend(drain(&mut c));
                        prop_assert!(n > 0 || c.recv_capacity() > 0);
                    }
                }
                In::Closed => c.handle_server_closed(t(now)),
                In::Datagram(b) => c.handle_datagram(t(now), &b),
                In::Timeout => {
                    if let Some(at) = c.poll_timeout() {
                        now = now.max(at.as_micros() / 1000 + 1);
                    }
                    c.handle_timeout(t(now));
                }
                In::JoinFailed => c.handle_join_failed(t(now), "nope"),
            }
            let new = drain(&mut c);
            for o in &new {
                match o {
                    Output::Connect { .. } => {
                        prop_assert!(!conn_open, "Connect while open");
                        conn_open = true;
                    }
                    Output::Close => {
                        prop_assert!(conn_open, "Close without Connect");
                        conn_open = false;
                    }
                    Output::JoinGroup { .. } => {
                        prop_assert!(!joined);
                        joined = true;
                    }
                    Output::LeaveGroup => {
                        prop_assert!(joined);
                        joined = false;
                    }
                    Output::SendDatagram(d) => prop_assert!(d.len() <= MAX_DATAGRAM),
                    _ => {}
                }
            }
            if matches!(step.input_kind, Kind::JoinFailed) && joined && c.mode() != Mode::Chat {
                joined = false;
            }
            prop_assert_eq!(c.mode() == Mode::Chat, joined);
            if let Some(at) = c.poll_timeout() {
                // A deadline in the past is only allowed until the host
                // calls handle_timeout, which it does next.
                c.handle_timeout(at);
                let more = drain(&mut c);
                for o in &more {
                    if matches!(o, Output::Close) {
                        prop_assert!(conn_open);
                        conn_open = false;
                    }
                }
                now = now.max(at.as_micros() / 1000);
                if let Some(next) = c.poll_timeout() {
                    prop_assert!(next > at, "deadline did not move: {:?} {:?}", at, next);
                }
            }
            out.extend(new);
            if c.has_exited() {
                prop_assert!(!conn_open);
                prop_assert!(!joined);
                break;
            }
        }
        // Everything shown renders without panicking.
        for o in &out {
            if let Output::Show(m) = o {
                let _ = m.to_string();
            }
        }
    }
}

#[derive(Clone, Debug)]
enum In {
    Line(String),
    Raw(Vec<u8>),
    Leave,
    Interrupt,
    Connected,
    Failed,
    Bytes(Vec<u8>),
    Closed,
    Datagram(Vec<u8>),
    Timeout,
    JoinFailed,
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Kind {
    JoinFailed,
    Other,
}

#[derive(Clone, Debug)]
struct Step {
    advance: u64,
    input: In,
    input_kind: Kind,
}

fn step_strategy() -> impl Strategy<Value = Step> {
    let lines = prop::sample::select(vec![
        "connect",
        "connect 10.0.0.1:9",
        "bye",
        "getdir",
        "makeroom lobby 239.1.1.1 5000",
        "deleteroom lobby",
        "chat lobby",
        "chat other",
        "name Bob",
        "name",
        "help",
        "quit",
        "hello there",
        "/leave",
        "ping",
        "",
    ])
    .prop_map(|s| In::Line(s.into()));
    let replies = prop::sample::select(vec![
        "OK CRDP/1 ready\n",
        "OK 1 room\nlobby 239.1.1.1 5000\n.\n",
        "OK 2 rooms\nother 239.1.1.2 5000\n",
        ".\n",
        "OK bye\n",
        "ERR busy go away\n",
        "OK created lobby 239.1.1.1 5000\n",
        "garbage\n",
        "OK pong\n",
    ])
    .prop_map(|s| In::Bytes(s.as_bytes().to_vec()));
    let input = prop_oneof![
        4 => lines,
        1 => proptest::collection::vec(any::<u8>(), 0..40).prop_map(In::Raw),
        1 => Just(In::Leave),
        1 => Just(In::Interrupt),
        2 => Just(In::Connected),
        1 => Just(In::Failed),
        4 => replies,
        1 => proptest::collection::vec(any::<u8>(), 0..600).prop_map(In::Bytes),
        1 => Just(In::Closed),
        2 => proptest::collection::vec(any::<u8>(), 0..1300).prop_map(In::Datagram),
        1 => Just(In::Timeout),
        1 => Just(In::JoinFailed),
    ];
    (0u64..20_000, input).prop_map(|(advance, input)| {
        let input_kind = if matches!(input, In::JoinFailed) {
            Kind::JoinFailed
        } else {
            Kind::Other
        };
        Step {
            advance,
            input,
            input_kind,
        }
    })
}
