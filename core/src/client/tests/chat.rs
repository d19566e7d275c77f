//! Chat mode: looking up a room, messages both ways, leaving.

use super::*;

// ---- chat mode ----

#[test]
fn chat_looks_up_the_room_over_a_short_connection() {
    let (mut net, c) = pair();
    let mark = net.mark(c);
    net.type_line(c, "chat LOBBY");
    let out = net.since(c, mark);
    assert_eq!(
        all_shown(&out),
        "Connecting to localhost:5577 to look up the room..."
    );
    assert_eq!(
        actions(&out),
        [Output::Connect {
            server: addr("localhost:5577")
        }]
    );
    net.run_until(Duration::from_secs(1), |net| {
        net.since(c, mark).contains(&line("getroom LOBBY\n"))
    });
    assert_eq!(net.client(c).mode(), Mode::Main);
    let mark = net.mark(c);
    net.run_until_idle();
    let out = net.since(c, mark);
    assert_eq!(
        actions(&out),
        [
            Output::JoinGroup {
                group: Ipv4Addr::new(239, 1, 1, 1).into(),
                port: 5000
            },
            Output::Close,
            Output::Prompt(chat_prompt("Lobby", "Mel")),
        ]
    );
    assert_eq!(chat_prompt("lobby", "Mel").to_string(), "[lobby] Mel> ");
    let out = act(&mut net, c, Input::LeaveChat);
    assert_eq!(
        actions(&out),
        [Output::LeaveGroup, Output::Prompt(Prompt::Main)]
    );
}

#[test]
fn chat_with_an_unknown_room() {
    let (mut net, c) = pair();
    let out = say(&mut net, c, "chat nowhere");
    assert_eq!(
        actions(&out)[1..],
        [line("getroom nowhere\n"), Output::Close]
    );
    assert_eq!(
        shown(&out)[1],
        "There is no room named nowhere. Type 'connect', then 'getdir' to list the rooms or \
         'makeroom' to create one."
    );

    let (mut net, c) = pair_connected();
    let out = say(&mut net, c, "chat nowhere");
    assert_eq!(actions(&out), [line("getroom nowhere\n")]);
    assert_eq!(
        all_shown(&out),
        "There is no room named nowhere. Type 'getdir' to list the rooms, or 'makeroom' to \
         create one."
    );
    assert_eq!(net.client(c).mode(), Mode::Connected);
}

#[test]
fn chat_lookup_fails_to_connect() {
    let mut c = fresh();
    user(&mut c, 1, "chat lobby");
    c.handle_connect_failed(t(2), ConnectFailure::Refused);
    let out = drain(&mut c);
    assert_eq!(actions(&out), [Output::Close]);
    assert!(all_shown(&out).starts_with(
        "Could not connect to the directory server at localhost:5577 to look up room lobby: \
         nothing is listening there."
    ));
}

#[test]
fn chat_lookup_server_error_and_loss() {
    // A server that refuses the getdir (the real one never does).
    let mut c = fresh();
    user(&mut c, 1, "chat lobby");
    c.handle_connected(t(2));
    hostile_sends(&mut c, 3, &real_greeting());
    let out = hostile_sends(&mut c, 4, b"ERR busy try later\n");
    assert_eq!(actions(&out), [Output::Close]);
    assert_eq!(
        all_shown(&out),
        "Could not look up room lobby: the server said: try later"
    );

    let mut c = fresh();
    user(&mut c, 1, "chat lobby");
    c.handle_connected(t(2));
    hostile_sends(&mut c, 3, &real_greeting());
    c.handle_server_closed(t(4));
    let out = drain(&mut c);
    assert_eq!(actions(&out), [Output::Close]);
    assert!(all_shown(&out).contains("closed the connection before room lobby was found"));
    assert!(c.ready_for_input());
}

#[test]
fn chat_lines_become_datagrams() {
    let mut c = in_chat();
    let out = user(&mut c, 20, "Good morning!");
    assert_eq!(
        out,
        [Output::SendDatagram(
            Datagram::from_slice(b"Mel: Good morning!").unwrap()
        )]
    );
    assert_eq!(user(&mut c, 21, ""), []);
    assert_eq!(user(&mut c, 21, "   "), []);
    // Words that are commands elsewhere are text here.
    for text in ["help", "bye", "getdir", "connect", "name Bob"] {
        let out = user(&mut c, 22, text);
        assert_eq!(
            out,
            [Output::SendDatagram(
                Datagram::from_slice(format!("Mel: {text}").as_bytes()).unwrap()
            )]
        );
    }
    let most = MAX_DATAGRAM - "Mel: ".len();
    let out = user(&mut c, 23, &"x".repeat(most));
    assert!(matches!(&out[..], [Output::SendDatagram(d)] if d.len() == MAX_DATAGRAM));
    let out = user(&mut c, 24, &"x".repeat(most + 1));
    assert_eq!(actions(&out), []);
    assert_eq!(
        all_shown(&out),
        "That message was not sent: it is 1201 bytes with your name, and one message carries \
         at most 1200. Split it into shorter lines."
    );
    let help = all_shown(&user(&mut c, 25, "/help"));
    assert!(help.contains("You are in chat room Lobby as Mel"), "{help}");
    assert!(help.contains("Ctrl-]"), "{help}");
    let out = user(&mut c, 26, "/leave");
    assert_eq!(
        actions(&out),
        [Output::LeaveGroup, Output::Prompt(connected_prompt())]
    );
    assert_eq!(
        all_shown(&out),
        "You left chat room Lobby; back at the connected prompt."
    );
}

#[test]
fn leave_byte_in_a_line() {
    let mut c = in_chat();
    c.handle_user_line(t(20), b"typed \x1d");
    let out = drain(&mut c);
    assert_eq!(
        actions(&out),
        [Output::LeaveGroup, Output::Prompt(connected_prompt())]
    );
    // Datagrams after leaving are ignored.
    c.handle_datagram(t(21), b"Bob: late");
    assert_eq!(drain(&mut c), []);
}

#[test]
fn interrupt_leaves_chat() {
    let (mut net, c) = pair_in_chat();
    let out = act(&mut net, c, Input::Interrupt);
    assert_eq!(
        actions(&out),
        [Output::LeaveGroup, Output::Prompt(connected_prompt())]
    );
}

#[test]
fn own_datagrams_are_not_shown_twice() {
    let mut c = in_chat();
    user(&mut c, 20, "hello");
    user(&mut c, 20, "hello");
    c.handle_datagram(t(21), b"Mel: hello");
    assert_eq!(drain(&mut c), []);
    c.handle_datagram(t(21), b"Bob: hello");
    assert_eq!(shown(&drain(&mut c)), ["Bob: hello"]);
    c.handle_datagram(t(22), b"Mel: hello");
    assert_eq!(drain(&mut c), []);
    // A third copy is someone else's (another Mel saying the same).
    c.handle_datagram(t(22), b"Mel: hello");
    assert_eq!(shown(&drain(&mut c)), ["Mel: hello"]);
    // Remembered only for a while.
    user(&mut c, 30, "again");
    let late = 30 + u64::try_from(OWN_ECHO_WINDOW.as_millis()).unwrap() + 1;
    c.handle_datagram(t(late), b"Mel: again");
    assert_eq!(shown(&drain(&mut c)), ["Mel: again"]);
}

#[test]
fn received_text_is_made_safe() {
    let mut c = in_chat();
    let cases: [(&[u8], &str); 7] = [
        (b"Bob: plain", "Bob: plain"),
        (b"Bob: \x1b[2J\x1b]0;title\x07", "Bob: ^[[2J^[]0;title^G"),
        (b"Bob: a\tb\r\nc\x7f", "Bob: a b^M^Jc^?"),
        (
            "Bob: \u{85}x\u{202e}y".as_bytes(),
            "Bob: <U+0085>x<U+202E>y",
        ),
        (b"Bob: caf\xc3\xa9 \xff\xfe!", "Bob: café \u{fffd}\u{fffd}!"),
        (b"", ""),
        ("Ev\u{e9}: \u{1F600}".as_bytes(), "Ev\u{e9}: \u{1F600}"),
    ];
    for (bytes, expected) in cases {
        c.handle_datagram(t(20), bytes);
        assert_eq!(shown(&drain(&mut c)), [expected], "{bytes:?}");
    }
    let big = vec![b'a'; MAX_DATAGRAM + 50];
    c.handle_datagram(t(20), &big);
    let out = drain(&mut c);
    match &out[..] {
        [Output::Show(Message::Chat { payload, truncated })] => {
            assert_eq!(payload.len(), MAX_DATAGRAM);
            assert!(truncated);
            assert!(out[0].to_owned_string().ends_with(" [cut: too long]"));
        }
        other => panic!("{other:?}"),
    }
}

trait ToOwnedString {
    fn to_owned_string(&self) -> String;
}

impl ToOwnedString for Output {
    fn to_owned_string(&self) -> String {
        match self {
            Output::Show(m) => m.to_string(),
            other => format!("{other:?}"),
        }
    }
}

#[test]
fn server_text_is_made_safe() {
    let mut c = hostile_connected();
    user(&mut c, 5, "deleteroom x");
    // The parser refuses control characters in replies: a protocol error.
    let out = hostile_sends(&mut c, 6, b"ERR noroom \x1b[31mred\n");
    assert_eq!(actions(&out), [Output::Close, Output::Prompt(Prompt::Main)]);
    // Invisible formatting characters are shown as code points.
    let mut c = hostile_connected();
    user(&mut c, 5, "deleteroom x");
    let out = hostile_sends(&mut c, 6, "ERR noroom no \u{202e}room\n".as_bytes());
    assert_eq!(all_shown(&out), "Room x was not deleted: no <U+202E>room");
}

#[test]
fn join_and_send_failures() {
    let mut c = in_chat();
    c.handle_send_failed(t(20), "Network is unreachable (os error 101)");
    assert_eq!(
        all_shown(&drain(&mut c)),
        "Your message could not be sent: Network is unreachable (os error 101)."
    );
    c.handle_join_failed(t(21), "No such device (os error 19)");
    let out = drain(&mut c);
    assert_eq!(actions(&out), [Output::Prompt(connected_prompt())]);
    assert!(all_shown(&out).starts_with(
        "Could not join chat room Lobby (239.1.1.1 port 5000): No such device (os error 19); you are not in the room."
    ));
}

#[test]
fn input_while_waiting_is_refused_not_lost_silently() {
    let mut c = fresh();
    user(&mut c, 1, "connect");
    assert!(!c.ready_for_input());
    let out = user(&mut c, 2, "getdir");
    assert_eq!(actions(&out), []);
    assert!(all_shown(&out).starts_with("Still waiting for the directory server"));
}

#[test]
fn the_room_is_entered_only_once_joined() {
    // The join fails (`--iface` names an address the host lacks): no
    // "Entering chat room", and a line typed meanwhile waits for the
    // result, then is read at the prompt the user is back at.
    let (mut net, c) = pair();
    net.clients[c].join_error = Some("Cannot assign requested address (os error 99)".into());
    let mark = net.mark(c);
    net.type_line(c, "chat lobby");
    net.type_line(c, "hello");
    net.run_until_idle();
    let out = net.since(c, mark);
    let text = all_shown(&out);
    assert!(!text.contains("Entering chat room"), "{text}");
    assert_eq!(
        shown(&out)[1..],
        [
            "Could not join chat room Lobby (239.1.1.1 port 5000): Cannot assign requested \
             address (os error 99); you are not in the room. Choose the network interface \
             with --iface NAME (or ADDR), or check that multicast is routed.",
            "'hello' is not a command. Type 'help' for the commands.",
        ]
    );
    assert!(!out.iter().any(|o| matches!(o, Output::SendDatagram(_))));
    assert_eq!(prompts(&out), []);
    assert_eq!(net.client(c).mode(), Mode::Main);

    // The join succeeds: the line typed meanwhile is a chat message, sent
    // once the user has read that they are in the room.
    let (mut net, c) = pair();
    let mark = net.mark(c);
    net.type_line(c, "chat lobby");
    net.type_line(c, "hello");
    net.run_until_idle();
    let out = net.since(c, mark);
    let entering = out
        .iter()
        .position(|o| o.to_owned_string().starts_with("Entering chat room Lobby"))
        .unwrap();
    let sent = out
        .iter()
        .position(|o| matches!(o, Output::SendDatagram(d) if &d[..] == b"Mel: hello"))
        .unwrap();
    assert!(entering < sent, "{out:?}");
}

#[test]
fn while_joining_the_client_waits() {
    let (mut net, c) = pair_connected();
    net.clients[c].hold_joins = true;
    let out = say(&mut net, c, "chat lobby");
    assert_eq!(
        actions(&out),
        [
            line("getroom lobby\n"),
            Output::JoinGroup {
                group: Ipv4Addr::new(239, 1, 1, 1).into(),
                port: 5000
            }
        ]
    );
    assert_eq!(all_shown(&out), "");
    let mut c = net.into_client(c);
    assert!(!c.ready_for_input());
    assert_eq!(c.mode(), Mode::Connected);
    // Datagrams before the join is done are not shown.
    c.handle_datagram(t(20), b"Bob: early");
    assert_eq!(drain(&mut c), []);
    // A line handed over anyway is refused, not sent or run.
    let out = user(&mut c, 20, "deleteroom lobby");
    assert_eq!(actions(&out), []);
    assert_eq!(
        all_shown(&out),
        "Still joining chat room Lobby; 'deleteroom lobby' was ignored. Wait for the prompt."
    );
    // quit gives up the join at once.
    assert!(c.acts_at_once(b"quit"));
    let out = user(&mut c, 21, "quit");
    assert_eq!(
        actions(&out),
        [Output::LeaveGroup, Output::Close, Output::Exit]
    );
    // A late report of the join changes nothing.
    c.handle_joined(t(22));
    assert_eq!(drain(&mut c), []);
    assert_eq!(c.mode(), Mode::Main);

    // Ctrl-] gives it up too; the host's report then changes nothing.
    let (mut net, c) = pair_connected();
    net.clients[c].hold_joins = true;
    say(&mut net, c, "chat lobby");
    let out = act(&mut net, c, Input::LeaveChat);
    assert_eq!(actions(&out), [Output::LeaveGroup]);
    assert_eq!(
        all_shown(&out),
        "You left chat room Lobby; back at the connected prompt."
    );
    let mark = net.mark(c);
    net.report_joined(c);
    assert_eq!(net.since(c, mark), []);
    assert!(net.client(c).ready_for_input());

    // Reported late, the join enters the room then.
    let (mut net, c) = pair_connected();
    net.clients[c].hold_joins = true;
    say(&mut net, c, "chat lobby");
    net.advance(Duration::from_secs(3));
    let mark = net.mark(c);
    net.report_joined(c);
    let out = net.since(c, mark);
    assert!(all_shown(&out).starts_with("Entering chat room Lobby"));
    assert_eq!(prompts(&out), [chat_prompt("Lobby", "Mel")]);
}

/// Issue 8: each character that passed one of the old filters, and the
/// other format characters, come out neutralised when a datagram carries
/// them; nothing in the shown line can reorder or hide text.
#[test]
fn every_hiding_character_in_a_datagram_is_shown_neutralised() {
    let mut c = in_chat();
    let hiding = [
        '\u{061C}',
        '\u{00AD}',
        '\u{180E}',
        '\u{206A}',
        '\u{206B}',
        '\u{206C}',
        '\u{206D}',
        '\u{206E}',
        '\u{206F}',
        '\u{E0001}',
        '\u{E0020}',
        '\u{E0041}',
        '\u{E007F}',
        '\u{200B}',
        '\u{200E}',
        '\u{202E}',
        '\u{2066}',
        '\u{2069}',
        '\u{FEFF}',
        '\u{2028}',
        '\u{2029}',
        '\u{E000}',
        '\u{10FFFF}',
    ];
    for h in hiding {
        let payload = format!("Bob: a{h}b");
        c.handle_datagram(t(20), payload.as_bytes());
        assert_eq!(
            shown(&drain(&mut c)),
            [format!("Bob: a<U+{:04X}>b", u32::from(h))],
            "U+{:04X}",
            u32::from(h)
        );
    }
}
