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

#[test]
fn two_members_with_one_name_are_told_apart() {
    let mut directory = Directory::new();
    directory.insert(lobby()).unwrap();
    let mut net = Net::new(9);
    net.add_server(SERVER, ServerConfig::default(), directory);
    let mel = net.add_client(member("Mel", 1));
    let ann = net.add_client(member("Ann", 2));
    let other_ann = net.add_client(member("Ann", 3));
    for c in [mel, ann, other_ann] {
        say(&mut net, c, "chat lobby");
    }
    net.advance(Duration::from_secs(1));
    let out = all_shown(&net.since(mel, 0));
    let joins: Vec<&str> = out.lines().filter(|l| l.ends_with(" joined")).collect();
    assert_eq!(joins.len(), 2, "{out}");
    assert_eq!(joins[0], "Ann joined");
    assert!(
        joins[1].starts_with("Ann #") && joins[1].len() == "Ann #1a2b joined".len(),
        "{joins:?}"
    );
    let mark = net.mark(mel);
    say(&mut net, mel, "/who");
    let who = all_shown(&net.since(mel, mark));
    assert_eq!(who.matches("\n  Ann #").count(), 2, "{who}");
}

#[test]
fn what_cannot_be_recovered_is_said_and_a_silent_member_leaves() {
    use crate::chat::frame::{Data, encode_data, encode_heartbeat};
    let net = room_of_two();
    let mut mel = net.into_client(0);
    let eve = crate::chat::MemberId(0xe7e0_0000_0000_0001);
    let from = core::net::SocketAddr::new(Ipv4Addr::new(10, 9, 9, 7).into(), 40000);
    let mut now = t(2_000);
    let data = Data {
        flags: 0,
        origin: eve,
        seq: 1,
        age_ms: 0,
        name: "Eve",
        text: "first",
    };
    let frame = encode_data(eve, &data).unwrap();
    mel.handle_datagram_from(now, Channel::Control, from, &frame);
    assert_eq!(shown(&drain(&mut mel)), ["Eve joined", "Eve: first"]);
    // Eve claims 199 more: all but the last 50 are given up at once.
    now = t(2_100);
    let hb = encode_heartbeat(eve, "Eve", 200, 0, 150, &[]).unwrap();
    mel.handle_datagram_from(now, Channel::Control, from, &hb);
    assert_eq!(
        shown(&drain(&mut mel)),
        ["[149 messages from Eve could not be recovered]"]
    );
    // Then Eve falls silent (and so does Ann: the client is out of the
    // network); after MEMBER_TIMEOUT the user is told.
    let timeout = crate::chat::limits::MEMBER_TIMEOUT;
    let mut left = Vec::new();
    for ms in (2_200..2_200 + u64::try_from(timeout.as_millis()).unwrap() + 40_000).step_by(100) {
        now = t(ms);
        if mel.poll_timeout().is_some_and(|at| at <= now) {
            mel.handle_timeout(now);
        }
        left.extend(
            shown(&drain(&mut mel))
                .into_iter()
                .filter(|s| s.contains(" left")),
        );
    }
    assert!(
        left.contains(&"Eve left (not heard from for 15 s)".to_string()),
        "{left:?}"
    );
}

/// Hands `mel` lines of 500 bytes while it is ready for input (at most
/// 100); returns how many it took and what it put out.
fn paste(mel: &mut Client, now: Instant) -> (usize, Vec<Output>) {
    let mut out = Vec::new();
    let mut taken = 0;
    while taken < 100 && mel.ready_for_input() {
        let text = std::format!("{taken:03} {}", "x".repeat(496));
        mel.handle_user_line(now, text.as_bytes());
        out.extend(drain(mel));
        taken += 1;
    }
    (taken, out)
}

/// Runs `mel`'s timers from `now` until `done` holds (at most 60 s).
fn run_timers(mel: &mut Client, mut now: Instant, done: impl Fn(&Client) -> bool) -> Vec<Output> {
    let mut out = Vec::new();
    let end = now + Duration::from_secs(60);
    while !done(mel) && now < end {
        now = mel.poll_timeout().unwrap_or(end).max(now);
        mel.handle_timeout(now);
        out.extend(drain(mel));
    }
    out
}

fn plain_sent(out: &[Output]) -> usize {
    out.iter()
        .filter(|o| matches!(o, Output::SendDatagram(_)))
        .count()
}

#[test]
fn a_paste_is_held_and_paced_and_the_end_of_input_waits_for_it() {
    let net = room_of_two();
    let mut mel = net.into_client(0);
    let now = t(60_000);
    let (taken, out) = paste(&mut mel, now);
    // The burst went out at once; the rest waits, and so does the input.
    let burst = crate::chat::limits::SEND_BURST as usize;
    assert_eq!(plain_sent(&out), burst);
    assert!(taken > burst && taken < 100, "{taken}");
    assert!(!mel.ready_for_input());
    mel.handle_end_of_input(now);
    let out = drain(&mut mel);
    let waiting = taken - burst;
    assert_eq!(
        all_shown(&out),
        std::format!(
            "{waiting} of your lines are still going out (at most 10 a second); roomcast quits \
             once they are sent (Ctrl-] leaves the room at once, without them)."
        )
    );
    assert!(!mel.has_exited());
    let out = run_timers(&mut mel, now, Client::has_exited);
    assert_eq!(
        plain_sent(&out),
        waiting,
        "every line went out before quitting"
    );
    assert!(all_shown(&out).ends_with("Goodbye."), "{}", all_shown(&out));
    assert!(!all_shown(&out).contains("not sent"));
}

#[test]
fn leave_waits_for_the_lines_before_it_and_ctrl_bracket_does_not() {
    let net = room_of_two();
    let mut mel = net.into_client(0);
    let now = t(60_000);
    let (taken, _) = paste(&mut mel, now);
    let waiting = taken - crate::chat::limits::SEND_BURST as usize;
    mel.handle_user_line(now, b"/leave");
    let out = drain(&mut mel);
    assert!(
        all_shown(&out).starts_with(&std::format!("{waiting} of your lines are still going out")),
        "{out:?}"
    );
    assert_eq!(mel.mode(), Mode::Chat);
    assert!(
        !mel.ready_for_input(),
        "what follows /leave waits until it is done"
    );
    let out = run_timers(&mut mel, now, |c| c.mode() != Mode::Chat);
    assert_eq!(plain_sent(&out), waiting);
    assert!(all_shown(&out).contains("You left chat room Lobby"));
    assert!(mel.ready_for_input());

    // Ctrl-] leaves at once, and says what was not sent.
    let net = room_of_two();
    let mut mel = net.into_client(0);
    let (taken, _) = paste(&mut mel, now);
    let waiting = taken - crate::chat::limits::SEND_BURST as usize;
    mel.handle_leave_chat(now);
    let out = drain(&mut mel);
    assert_eq!(plain_sent(&out), 0);
    assert!(
        all_shown(&out).starts_with(&std::format!(
            "{waiting} lines you sent had not gone out yet and were not sent."
        )),
        "{out:?}"
    );
    assert_eq!(mel.mode(), Mode::Main);
}
