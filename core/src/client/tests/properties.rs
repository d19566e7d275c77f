//! Property runs: replies split anywhere, and random inputs.

use super::*;

// ---- properties ----

/// The user's lines of the session, typed all at once: the host hands
/// each over when the client is ready for it.
const SESSION_LINES: [&str; 6] = [
    "connect",
    "makeroom lobby 239.1.1.1 5000",
    "getdir",
    "deleteroom zz",
    "getdir",
    "bye",
];

/// Runs the session against the real server holding 40 rooms, every write
/// on the connection cut into segments of 1 to `max_segment` bytes at
/// points `seed` picks. Returns what the client put out.
fn run_session(seed: u64, max_segment: usize) -> Vec<Output> {
    let rooms: Vec<Room> = (0..40u8)
        .map(|i| Room {
            name: RoomName::try_from(format!("r{i}").as_str()).unwrap(),
            group: Ipv4Addr::new(239, 1, 0, i).into(),
            port: 5000,
        })
        .collect();
    let (mut net, c) = pair_with(seed, &rooms);
    net.max_segment = max_segment;
    for line in SESSION_LINES {
        net.type_line(c, line);
    }
    net.run_until_idle();
    net.since(c, 0)
}

/// The session with every write whole.
fn whole_session() -> Vec<Output> {
    let out = run_session(0, usize::MAX);
    // It did what it says, so that comparing with it means something.
    let text = all_shown(&out);
    assert!(text.contains("Room lobby created"), "{text}");
    assert!(text.contains("(41 rooms)"), "{text}");
    assert!(text.contains("Room zz was not deleted"), "{text}");
    assert!(
        text.contains("Disconnected from the directory server"),
        "{text}"
    );
    out
}

#[test]
fn replies_byte_by_byte() {
    assert_eq!(run_session(0, 1), whole_session());
}

proptest! {
    #[test]
    fn replies_split_anywhere_give_the_same_outputs(
        seed in any::<u64>(),
        max_segment in 1usize..300,
    ) {
        prop_assert_eq!(run_session(seed, max_segment), whole_session());
    }

    #[test]
    fn any_input_never_panics_and_keeps_invariants(
        steps in proptest::collection::vec(step_strategy(), 0..80)
    ) {
        let mut c = Client::new(config(), t(0));
        let mut now = 0u64;
        let mut conn_open = false;   // between Connect and Close
        // The model of the multicast membership, decided from the outputs
        // and the host's reports alone, never read from the machine.
        let mut joining = false;
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
                In::JoinFailed => {
                    c.handle_join_failed(t(now), "nope");
                    // A failed join (or a joined group that fails after
                    // all) leaves the client out of the room.
                    joining = false;
                    joined = false;
                }
                In::Joined => {
                    c.handle_joined(t(now));
                    if joining {
                        joining = false;
                        joined = true;
                    }
                }
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
                        prop_assert!(!joined && !joining);
                        joining = true;
                    }
                    Output::LeaveGroup => {
                        prop_assert!(joined || joining);
                        joined = false;
                        joining = false;
                    }
                    Output::SendDatagram(d) => prop_assert!(d.len() <= MAX_DATAGRAM),
                    _ => {}
                }
            }
            prop_assert_eq!(c.mode() == Mode::Chat, joined);
            if joining {
                prop_assert!(!c.ready_for_input(), "input taken while joining");
            }
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
                prop_assert!(!joined && !joining);
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
    Joined,
}

#[derive(Clone, Debug)]
struct Step {
    advance: u64,
    input: In,
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
        "OK 1 room\nlobby 239.1.1.1 5000 private\n.\n",
        "OK 2 rooms\nother 239.1.1.2 5000 open more\n",
        "ERR usage usage: getdir\n",
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
        2 => Just(In::Joined),
    ];
    (0u64..20_000, input).prop_map(|(advance, input)| Step { advance, input })
}

/// Lines the clients of [`many_clients_against_the_real_server`] type.
const MANY_LINES: [&str; 11] = [
    "connect",
    "connect",
    "bye",
    "getdir",
    "makeroom r1 239.1.1.1 5000",
    "makeroom r2 239.1.1.2 5001",
    "deleteroom r1",
    "deleteroom r2",
    "chat r1",
    "hello",
    "/leave",
];

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// Four clients type at random against the real server over a network
    /// that cuts every write at random: every line is handed over, every
    /// change the server made is reported to exactly one user (so the
    /// directory holds what the users were told), and the network checks
    /// every deadline on every step.
    #[test]
    fn many_clients_against_the_real_server(
        seed in any::<u64>(),
        max_segment in 1usize..80,
        script in proptest::collection::vec(
            (0usize..4, 0usize..MANY_LINES.len(), 0u64..3_000),
            0..60,
        ),
    ) {
        let mut net = Net::new(seed);
        net.max_segment = max_segment;
        net.add_server(SERVER, ServerConfig::default(), Directory::new());
        let clients: Vec<usize> = (0..4).map(|_| net.add_client(config())).collect();
        for (c, line, pause) in script {
            net.type_line(clients[c], MANY_LINES[line]);
            net.advance(Duration::from_millis(pause));
        }
        net.advance(Duration::from_secs(60));
        let mut created = 0i64;
        let mut deleted = 0i64;
        for &c in &clients {
            prop_assert_eq!(net.typed_ahead(c), 0);
            for text in shown(&net.since(c, 0)) {
                if text.starts_with("Room ") && text.contains(" created: multicast group") {
                    created += 1;
                }
                if text.starts_with("Room ") && text.ends_with(" deleted.") {
                    deleted += 1;
                }
            }
        }
        let rooms = net.server.as_ref().unwrap().directory().len();
        prop_assert_eq!(created - deleted, i64::try_from(rooms).unwrap());
    }
}
