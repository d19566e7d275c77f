//! The room protocol inside the client: frames and plain copies out, each
//! message shown once, presence, `/who`, history, leaving.

use super::*;

/// A client named `name` that speaks the room protocol (random bits `seed`).
fn member(name: &str, seed: u64) -> ClientConfig {
    let mut config = ClientConfig::new(
        parse_server_addr("localhost", 5577).unwrap(),
        5577,
        ChatName::new(name).unwrap(),
    );
    config.random_seed = Some(seed);
    config
}

/// The real server with room Lobby, and members Mel (0) and Ann (1), both
/// in the room, having heard of each other.
fn room_of_two() -> Net {
    let mut directory = Directory::new();
    directory.insert(lobby()).unwrap();
    let mut net = Net::new(7);
    net.add_server(SERVER, ServerConfig::default(), directory);
    let mel = net.add_client(member("Mel", 1));
    let ann = net.add_client(member("Ann", 2));
    assert_eq!((mel, ann), (0, 1));
    for c in [mel, ann] {
        let out = say(&mut net, c, "chat lobby");
        assert!(
            all_shown(&out).contains("Entering chat room Lobby"),
            "{out:?}"
        );
    }
    net.advance(Duration::from_secs(1));
    assert!(all_shown(&net.since(mel, 0)).contains("\nAnn joined"));
    assert!(all_shown(&net.since(ann, 0)).contains("\nMel joined"));
    net
}

fn count(outputs: &[Output], text: &str) -> usize {
    shown(outputs).iter().filter(|s| *s == text).count()
}

#[test]
fn a_message_goes_out_as_a_frame_and_the_exact_plain_datagram() {
    let mut net = room_of_two();
    let mark = net.mark(1);
    let out = say(&mut net, 0, "hello there");
    let sends: Vec<&Output> = out
        .iter()
        .filter(|o| matches!(o, Output::SendDatagram(_) | Output::SendControl(_)))
        .collect();
    assert!(
        matches!(&sends[..], [Output::SendControl(f), Output::SendDatagram(d)]
            if f.starts_with(b"\xffRC\x01\x01") && &d[..] == b"Mel: hello there"),
        "{sends:?}"
    );
    net.advance(Duration::from_secs(2));
    // Ann gets both forms and shows the message once.
    assert_eq!(count(&net.since(1, mark), "Mel: hello there"), 1);
    // Mel does not see its own message come back.
    assert_eq!(count(&net.since(0, 0), "Mel: hello there"), 0);
}

#[test]
fn who_lists_the_members_and_plain_clients() {
    let net = room_of_two();
    let mut mel = net.into_client(0);
    let plain = core::net::SocketAddr::new(Ipv4Addr::new(10, 9, 9, 9).into(), 5000);
    let now = t(60_000);
    mel.handle_datagram_from(now, Channel::Plain, plain, b"Eve: plain words");
    assert_eq!(shown(&drain(&mut mel)), ["Eve: plain words"]);
    mel.handle_user_line(now, b"/who");
    let out = all_shown(&drain(&mut mel));
    assert!(
        out.starts_with("In room Lobby (3 here):\n  Mel (you)\n"),
        "{out}"
    );
    assert!(out.contains("\n  Ann  10.0.0.2:40000  idle "), "{out}");
    assert!(
        out.contains("\n  Eve (plain client)  10.9.9.9:5000  idle 0 s"),
        "{out}"
    );
}

#[test]
fn who_outside_a_room_says_how_to_use_it() {
    let mut c = fresh();
    c.handle_user_line(t(1), b"who");
    assert_eq!(
        shown(&drain(&mut c)),
        [
            "You are not in a chat room. Type 'chat ROOM' to enter one; there, /who lists who is \
          in it."
        ]
    );
}

#[test]
fn leaving_says_goodbye_before_leaving_the_group() {
    let mut net = room_of_two();
    let mark = net.mark(1);
    let out = say(&mut net, 0, "/leave");
    let actions = actions(&out);
    assert!(
        matches!(&actions[..], [Output::SendControl(bye), Output::LeaveGroup, ..]
            if bye.starts_with(b"\xffRC\x01\x04")),
        "{actions:?}"
    );
    net.advance(Duration::from_secs(1));
    assert_eq!(count(&net.since(1, mark), "Mel left"), 1);
}

#[test]
fn a_late_member_gets_the_history_marked() {
    let mut net = room_of_two();
    say(&mut net, 0, "before you came");
    net.advance(Duration::from_secs(5));
    let cat = net.add_client(member("Cat", 3));
    let out = say(&mut net, cat, "chat lobby");
    assert!(all_shown(&out).contains("Entering chat room Lobby"));
    net.advance(Duration::from_secs(2));
    let out = net.since(cat, 0);
    let history: Vec<String> = out
        .iter()
        .filter_map(|o| match o {
            Output::Show(m @ Message::History { .. }) => Some(m.to_string()),
            _ => None,
        })
        .collect();
    assert_eq!(history.len(), 1, "{out:?}");
    let text = &history[0];
    assert!(text.starts_with("[history "), "{text}");
    assert!(text.ends_with("s ago] Mel: before you came"), "{text}");
    assert_eq!(count(&out, "Mel: before you came"), 0);
}
