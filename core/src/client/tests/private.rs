//! Private rooms in the client: `makeroom ... --private`, `chat` through
//! `getroom` (and `getdir` on an older server), the verifier check, the
//! sealed session, and the replies read.
//!
//! The simulated host answers `Output::DeriveKey` with the node's
//! `passphrase` (SHA-256 with the salt standing in for Argon2id), or
//! cancels when it has none.

use super::*;

use crate::chat::MAX_SEALED;
use crate::privacy::{RoomSecret, SECRET_BYTES, Salt, Verifier};

use super::super::private::{InfoError, parse_room_info, parse_salt};

/// A client named `name` that speaks the room protocol (random bits `seed`).
fn member(name: &str, seed: u64) -> ClientConfig {
    let mut config = config();
    config.name = ChatName::new(name).unwrap();
    config.random_seed = Some(seed);
    config
}

const PASS: &[u8] = b"correct horse battery staple";

/// The real server (no rooms) and Mel, a member, connected, with the
/// passphrase [`PASS`] at hand.
fn private_pair() -> (Net, usize) {
    let mut net = Net::new(11);
    net.add_server(SERVER, ServerConfig::default(), Directory::new());
    let c = net.add_client(member("Mel", 1));
    net.clients[c].passphrase = Some(PASS.to_vec());
    say(&mut net, c, "connect");
    assert_eq!(net.client(c).mode(), Mode::Connected);
    (net, c)
}

/// [`private_pair`] after Mel made the private room `secret` on
/// 239.1.1.9 port 6000.
fn with_secret_room() -> (Net, usize) {
    let (mut net, c) = private_pair();
    let out = say(&mut net, c, "makeroom secret 239.1.1.9 6000 --private");
    assert!(
        all_shown(&out).starts_with(
            "Room 'secret' created (private: only people with its passphrase can read it): \
             multicast group 239.1.1.9 port 6000. Type 'chat secret' to enter it."
        ),
        "{out:?}"
    );
    (net, c)
}

fn sent_lines(outputs: &[Output]) -> Vec<String> {
    outputs
        .iter()
        .filter_map(|o| match o {
            Output::SendLine(l) => Some(l.as_str().to_string()),
            _ => None,
        })
        .collect()
}

#[test]
fn makeroom_private_gets_a_salt_derives_and_sends_the_verifier() {
    let (mut net, c) = private_pair();
    let out = say(&mut net, c, "makeroom secret 239.1.1.9 6000 --private");
    let lines = sent_lines(&out);
    assert_eq!(lines[0], "salt\n");
    let salt = out
        .iter()
        .find_map(|o| match o {
            Output::DeriveKey {
                room,
                salt,
                confirm,
            } => {
                assert_eq!(room.as_str(), "secret");
                assert!(*confirm, "a new room's passphrase is typed twice");
                Some(*salt)
            }
            _ => None,
        })
        .expect("the host is asked for the key");
    let keys = RoomKeys::derive(&crate::sim::sim_room_secret(PASS, &salt));
    assert_eq!(
        lines[1],
        format!(
            "makeroom secret 239.1.1.9 6000 private {salt} {}\n",
            keys.verifier
        )
    );
    assert_eq!(lines.len(), 2);
    // The owner token is kept, though `private` follows it.
    assert!(
        out.iter()
            .any(|o| matches!(o, Output::OwnerToken { room, token, .. }
            if room.as_str() == "secret" && crate::owner::is_valid_token(token.as_str()))),
        "{out:?}"
    );
    assert_eq!(
        shown(&out),
        [
            "Room 'secret' created (private: only people with its passphrase can read it): \
          multicast group 239.1.1.9 port 6000. Type 'chat secret' to enter it."
        ]
    );
    // The server keeps it private: getroom says so.
    let out = say(&mut net, c, "getroom secret");
    assert_eq!(
        all_shown(&out),
        "Room secret: multicast group 239.1.1.9 port 6000, private (only people with its \
         passphrase can read it). Type 'chat secret' to enter it."
    );
    assert!(net.client(c).ready_for_input());
}

#[test]
fn makeroom_private_from_the_pool_and_the_flag_anywhere() {
    let (mut net, c) = private_pair();
    let out = say(&mut net, c, "MAKEROOM --PRIVATE pooled");
    let lines = sent_lines(&out);
    assert_eq!(lines[0], "salt\n");
    assert!(
        lines[1].starts_with("makeroom pooled private "),
        "{lines:?}"
    );
    assert!(
        all_shown(&out).starts_with("Room 'pooled' created (private: "),
        "{out:?}"
    );
}

#[test]
fn makeroom_private_usage_and_bad_words_are_caught_before_sending() {
    let (mut net, c) = private_pair();
    for (typed, said) in [
        (
            "makeroom --private",
            "usage: makeroom <name> [<address> <port>] --private",
        ),
        (
            "makeroom a 239.1.1.1 --private",
            "usage: makeroom <name> [<address> <port>] --private",
        ),
        (
            "makeroom a b c d --private",
            "usage: makeroom <name> [<address> <port>] --private",
        ),
        (
            "makeroom a 10.0.0.1 5000 --private",
            "'10.0.0.1' is not a room group: use IPv4 239.0.0.0/8 (organization-local) or \
             IPv6 ff14/ff15/ff18::/16",
        ),
    ] {
        let out = say(&mut net, c, typed);
        assert!(sent_lines(&out).is_empty(), "{typed}: {out:?}");
        if typed.contains("10.0.0.1") {
            assert!(all_shown(&out).contains("10.0.0.1"), "{typed}: {out:?}");
        } else {
            assert_eq!(all_shown(&out), said, "{typed}");
        }
    }
    // The raw forms are the client's own business.
    for typed in [
        "salt",
        "makeroom x private AAAAAAAAAAAAAAAAAAAAAA AAAAAAAAAAAAAAAAAAAAAA",
    ] {
        let out = say(&mut net, c, typed);
        assert!(sent_lines(&out).is_empty(), "{typed}: {out:?}");
        assert!(
            all_shown(&out).starts_with("To make a private room, type: makeroom <name>"),
            "{out:?}"
        );
    }
    // A line too long for the protocol is refused whole.
    let long = format!("makeroom {} --private", "x".repeat(MAX_LINE));
    let out = say(&mut net, c, &long);
    assert!(sent_lines(&out).is_empty(), "{out:?}");
    assert!(
        all_shown(&out).starts_with("That command is longer than the protocol allows"),
        "{out:?}"
    );
    // Not connected: says to connect.
    let mut fresh = fresh();
    let out = user(&mut fresh, 1, "makeroom x --private");
    assert!(all_shown(&out).contains("needs a connection"), "{out:?}");
}

#[test]
fn makeroom_private_with_no_passphrase_makes_nothing() {
    let (mut net, c) = private_pair();
    net.clients[c].passphrase = None;
    let out = say(&mut net, c, "makeroom secret 239.1.1.9 6000 --private");
    assert_eq!(sent_lines(&out), ["salt\n"]);
    assert_eq!(
        all_shown(&out),
        "Room 'secret' was not created: no passphrase was given."
    );
    assert!(net.client(c).ready_for_input());
    let out = say(&mut net, c, "getdir");
    assert!(all_shown(&out).contains("No rooms yet"), "{out:?}");
}

#[test]
fn a_refused_passphrase_is_told_with_the_hosts_reason() {
    let mut c = hostile_connected();
    let out = user(&mut c, 10, "makeroom secret --private");
    assert_eq!(actions(&out), [line("salt\n")]);
    let out = hostile_sends(&mut c, 11, b"OK salt=AAAAAAAAAAAAAAAAAAAAAA\n");
    assert_eq!(
        actions(&out),
        [Output::DeriveKey {
            room: RoomName::try_from("secret").unwrap(),
            salt: Salt([0; 16]),
            confirm: true,
        }]
    );
    assert!(!c.ready_for_input());
    c.handle_room_secret(
        t(12),
        0,
        Err(KeyFailure::Refused("the passphrase typed is too short")),
    );
    assert_eq!(
        all_shown(&drain(&mut c)),
        "Room 'secret' was not created: the passphrase typed is too short."
    );
    assert!(c.ready_for_input());
    // A late answer nobody waits for changes nothing.
    c.handle_room_secret(t(13), 0, Ok((RoomSecret([1; SECRET_BYTES]), [2; 16])));
    assert_eq!(drain(&mut c), []);
}

#[test]
fn the_connection_lost_while_deriving_makes_nothing() {
    let mut c = hostile_connected();
    user(&mut c, 10, "makeroom secret --private");
    hostile_sends(&mut c, 11, b"OK salt=AAAAAAAAAAAAAAAAAAAAAA more=words\n");
    c.handle_server_closed(t(12));
    drain(&mut c);
    c.handle_room_secret(t(13), 0, Ok((RoomSecret([1; SECRET_BYTES]), [2; 16])));
    let out = drain(&mut c);
    assert_eq!(actions(&out), []);
    assert!(
        all_shown(&out).starts_with(
            "Room 'secret' was not created: the connection to the directory server ended \
             meanwhile."
        ),
        "{out:?}"
    );
    assert!(c.ready_for_input());
}

#[test]
fn an_older_server_without_salt_is_told() {
    let mut c = hostile_connected();
    user(&mut c, 10, "makeroom secret --private");
    let out = hostile_sends(&mut c, 11, b"ERR unknown unknown command 'salt'\n");
    assert_eq!(actions(&out), []);
    assert!(
        all_shown(&out).starts_with(
            "Room 'secret' was not created: the directory server at localhost:5577 does not \
             know private rooms (it is an older version)."
        ),
        "{out:?}"
    );
    // A salt answer without a salt is not a directory server's.
    user(&mut c, 12, "makeroom secret --private");
    let out = hostile_sends(&mut c, 13, b"OK pepper\n");
    assert_eq!(actions(&out), [Output::Close, Output::Prompt(Prompt::Main)]);
    assert!(
        all_shown(&out).contains("an answer to 'salt' without a salt"),
        "{out:?}"
    );
}

/// Mel made `secret`; Ann (client 1, passphrase `ann_pass`) types `chat
/// secret`. Returns Ann's outputs.
fn ann_enters(net: &mut Net, ann_pass: Option<&[u8]>) -> (usize, Vec<Output>) {
    let ann = net.add_client(member("Ann", 2));
    net.clients[ann].passphrase = ann_pass.map(<[u8]>::to_vec);
    let out = say(net, ann, "chat secret");
    (ann, out)
}

#[test]
fn the_right_passphrase_enters_a_sealed_session_both_ways() {
    let (mut net, mel) = with_secret_room();
    let out = say(&mut net, mel, "chat secret");
    assert_eq!(sent_lines(&out), ["getroom secret\n"]);
    assert!(
        out.iter()
            .any(|o| matches!(o, Output::DeriveKey { confirm: false, .. })),
        "{out:?}"
    );
    assert!(
        all_shown(&out).starts_with(
            "Entering chat room secret (239.1.1.9 port 6000) as Mel.\nThe room is private: \
             messages are encrypted, and only people with its passphrase can read them."
        ),
        "{out:?}"
    );
    let (ann, out) = ann_enters(&mut net, Some(PASS));
    assert_eq!(sent_lines(&out), ["getroom secret\n"]);
    assert!(all_shown(&out).contains("The room is private"), "{out:?}");
    assert_eq!(net.client(ann).mode(), Mode::Chat);
    net.advance(Duration::from_secs(1));

    // Mel's words go out sealed, on the control port only.
    let mark = net.mark(ann);
    let out = say(&mut net, mel, "the plan is secret");
    let sends: Vec<&Output> = out
        .iter()
        .filter(|o| matches!(o, Output::SendDatagram(_) | Output::SendControl(_)))
        .collect();
    let [Output::SendControl(f)] = &sends[..] else {
        panic!("{sends:?}");
    };
    // The host logs it from its plain form, which goes nowhere else.
    assert!(
        out.iter()
            .any(|o| matches!(o, Output::Sent(d) if &d[..] == b"Mel: the plan is secret")),
        "{out:?}"
    );
    assert!(f.starts_with(b"\xffRC\x01\x05"), "{f:?}");
    assert!(f.len() <= MAX_SEALED, "{f:?}");
    assert!(!f.windows(4).any(|w| w == b"plan"), "{f:?}");
    assert!(!f.windows(3).any(|w| w == b"Mel"), "{f:?}");
    net.advance(Duration::from_secs(1));
    assert!(
        shown(&net.since(ann, mark))
            .iter()
            .any(|s| s == "Mel: the plan is secret"),
        "{:?}",
        net.since(ann, mark)
    );
    let mark = net.mark(mel);
    say(&mut net, ann, "understood");
    net.advance(Duration::from_secs(1));
    assert!(
        shown(&net.since(mel, mark))
            .iter()
            .any(|s| s == "Ann: understood")
    );
    let out = say(&mut net, mel, "/help");
    assert!(
        all_shown(&out).starts_with(
            "You are in chat room secret as Mel. The room is private: only people with its \
             passphrase can read it. Type a message"
        ),
        "{out:?}"
    );
    // Nobody saw anything refused.
    for c in [mel, ann] {
        assert!(
            !all_shown(&net.since(c, 0)).contains("could not be decrypted"),
            "{:?}",
            net.since(c, 0)
        );
    }
}

#[test]
fn a_wrong_passphrase_is_told_at_once_and_nothing_is_joined() {
    let (mut net, mel) = with_secret_room();
    say(&mut net, mel, "chat secret");
    let (ann, out) = ann_enters(&mut net, Some(b"wrong horse battery staple"));
    assert!(
        !out.iter().any(|o| matches!(o, Output::JoinGroup { .. })),
        "{out:?}"
    );
    assert_eq!(
        shown(&out).last().map(String::as_str),
        Some(
            "Wrong passphrase for room 'secret': it is not the one the room was made with. \
             Try 'chat secret' again."
        )
    );
    assert_eq!(net.client(ann).mode(), Mode::Main);
    assert!(net.client(ann).ready_for_input());
    // Mel's messages never reach her.
    let mark = net.mark(ann);
    say(&mut net, mel, "not for Ann");
    net.advance(Duration::from_secs(1));
    assert!(!all_shown(&net.since(ann, mark)).contains("not for Ann"));

    // Cancelled at the prompt: told, at the prompt still.
    let (carl, out) = ann_enters(&mut net, None);
    assert_eq!(
        shown(&out).last().map(String::as_str),
        Some("You did not enter room 'secret': no passphrase was given.")
    );
    assert_eq!(net.client(carl).mode(), Mode::Main);
}

#[test]
fn a_plain_datagram_in_a_private_room_is_refused_and_counted() {
    let (mut net, mel) = with_secret_room();
    say(&mut net, mel, "chat secret");
    let mut mel = net.into_client(mel);
    let eve = core::net::SocketAddr::new(Ipv4Addr::new(10, 9, 9, 9).into(), 5000);
    let now = t(60_000);
    mel.handle_datagram_from(now, Channel::Plain, eve, b"Eve: plain words");
    let out = drain(&mut mel);
    assert_eq!(
        shown(&out),
        ["[1 unencrypted datagram ignored: this room is private]"]
    );
    // One too long for any plain copy is not shown cut either.
    let long = vec![b'x'; MAX_DATAGRAM + 10];
    mel.handle_datagram_from(now, Channel::Plain, eve, &long);
    // A sealed-looking datagram that does not open.
    let mut fake = b"\xffRC\x01\x05".to_vec();
    fake.extend_from_slice(&[0x42; 60]);
    mel.handle_datagram_from(now, Channel::Control, eve, &fake);
    let out = drain(&mut mel);
    assert!(!all_shown(&out).contains("xxxx"), "{out:?}");
    // The counts come together, at most once per REFUSED_NOTICE.
    mel.handle_timeout(now + crate::chat::REFUSED_NOTICE);
    let later = all_shown(&drain(&mut mel));
    assert!(
        later
            .contains("[1 message could not be decrypted: wrong passphrase, not for this room, or the room was made again]")
            && later.contains("[1 unencrypted datagram ignored: this room is private]"),
        "{later}"
    );
}

#[test]
fn a_private_room_needs_random_bits() {
    let (mut net, mel) = with_secret_room();
    let plain = net.add_client(config());
    net.clients[plain].passphrase = Some(PASS.to_vec());
    let out = say(&mut net, plain, "chat secret");
    assert!(
        !out.iter()
            .any(|o| matches!(o, Output::JoinGroup { .. } | Output::DeriveKey { .. })),
        "{out:?}"
    );
    assert!(
        all_shown(&out).contains("Room 'secret' is private, and this client has no random bits"),
        "{out:?}"
    );
    let _ = mel;
}

#[test]
fn an_older_server_without_getroom_is_asked_with_getdir() {
    let mut c = hostile_connected();
    let out = user(&mut c, 10, "chat lobby");
    assert_eq!(actions(&out), [line("getroom lobby\n")]);
    let out = hostile_sends(&mut c, 11, b"ERR unknown unknown command 'getroom'\n");
    assert_eq!(actions(&out), [line("getdir\n")]);
    let out = hostile_sends(&mut c, 12, b"OK 1 rooms\nlobby 239.1.1.1 5000\n.\n");
    assert_eq!(
        actions(&out),
        [Output::JoinGroup {
            group: Ipv4Addr::new(239, 1, 1, 1).into(),
            port: 5000
        },]
    );
}

#[test]
fn getroom_answers_that_are_not_rooms_close_the_connection() {
    for (answer, what) in [
        (
            &b"OK room lobby 239.1.1.1 5000 sealed-v9\n"[..],
            "not a room",
        ),
        (b"OK room lobby 239.1.1.1\n", "not a room"),
        (b"OK lobby 239.1.1.1 5000 open\n", "not a room"),
        (
            b"OK room lobby 239.1.1.1 5000 private salt=AAAAAAAAAAAAAAAAAAAAAA\n",
            "without a valid salt and verifier",
        ),
    ] {
        let mut c = hostile_connected();
        user(&mut c, 10, "chat lobby");
        let out = hostile_sends(&mut c, 11, answer);
        assert_eq!(
            actions(&out),
            [Output::Close, Output::Prompt(Prompt::Main)],
            "{answer:?}"
        );
        assert!(all_shown(&out).contains(what), "{answer:?}: {out:?}");
    }
}

#[test]
fn replies_are_read_ignoring_unknown_words() {
    let salt = Salt([0; 16]);
    let verifier = Verifier([0xFF; 16]);
    let info = parse_room_info(&format!(
        "room Lobby 239.1.1.1 5000 private later=1 salt={salt} verifier={verifier} x=y"
    ))
    .unwrap();
    assert_eq!(info.room, lobby());
    assert_eq!(info.privacy, Some(crate::wire::Privacy { salt, verifier }));
    let info = parse_room_info("room Lobby 239.1.1.1 5000 open future=yes").unwrap();
    assert_eq!(info.privacy, None);
    assert_eq!(
        parse_room_info("room Lobby 239.1.1.1 5000 private salt=short verifier=short"),
        Err(InfoError::NoKey)
    );
    assert_eq!(
        parse_room_info("room Lobby 239.1.1.1 5000"),
        Err(InfoError::Malformed)
    );
    assert_eq!(parse_salt(&format!("salt={salt}")), Some(salt));
    assert_eq!(parse_salt(&format!("new=1 salt={salt} x")), Some(salt));
    assert_eq!(parse_salt("salt=AAAA"), None);
    assert_eq!(parse_salt(""), None);
}

#[test]
fn quitting_while_the_host_derives_ignores_its_answer() {
    let mut c = Client::new(member("Mel", 1), t(0));
    user(&mut c, 1, "connect");
    c.handle_connected(t(2));
    hostile_sends(&mut c, 3, &real_greeting());
    assert_eq!(c.mode(), Mode::Connected);
    user(&mut c, 10, "chat lobby");
    let out = hostile_sends(
        &mut c,
        11,
        b"OK room lobby 239.1.1.1 5000 private salt=AAAAAAAAAAAAAAAAAAAAAA verifier=AAAAAAAAAAAAAAAAAAAAAA\n",
    );
    assert!(
        out.iter()
            .any(|o| matches!(o, Output::DeriveKey { confirm: false, .. })),
        "{out:?}"
    );
    assert!(!c.ready_for_input());
    // Ctrl-C cancels (the host reads nothing else meanwhile, but the
    // machine is ready for it).
    c.handle_interrupt(t(12));
    assert_eq!(
        all_shown(&drain(&mut c)),
        "You did not enter room 'lobby': no passphrase was given."
    );
    assert!(c.ready_for_input());
    c.handle_room_secret(t(13), 0, Ok((RoomSecret([1; SECRET_BYTES]), [2; 16])));
    assert_eq!(drain(&mut c), []);
}

#[test]
fn a_failed_join_forgets_the_key_and_an_open_room_is_entered_open() {
    let (mut net, mel) = with_secret_room();
    net.clients[mel].join_error = Some("no such device".to_string());
    let out = say(&mut net, mel, "chat secret");
    assert!(
        all_shown(&out).contains("Could not join chat room secret"),
        "{out:?}"
    );
    net.clients[mel].join_error = None;
    say(&mut net, mel, "makeroom open 239.1.1.10 6002");
    say(&mut net, mel, "chat open");
    assert_eq!(net.client(mel).mode(), Mode::Chat);
    let out = say(&mut net, mel, "plain words");
    assert!(
        out.iter()
            .any(|o| matches!(o, Output::SendDatagram(d) if &d[..] == b"Mel: plain words")),
        "the open room got no plain copy: {out:?}"
    );
}

/// The verifier of the secret the `client_input` fuzz target's host
/// derives ([7; 32]), which its seed `seed-private` carries; computed
/// independently (Python's hmac, RFC 5869 by hand).
#[test]
fn the_fuzz_seeds_verifier_is_that_of_its_secret() {
    let keys = RoomKeys::derive(&RoomSecret([7; SECRET_BYTES]));
    assert_eq!(keys.verifier.to_text().as_str(), "WIJfw1JUh1xsxOiQQcwevw");
}

// ---- getdir: which rooms are private ----

#[test]
fn the_room_table_says_which_rooms_are_private() {
    let (mut net, c) = with_secret_room();
    say(&mut net, c, "makeroom lobby 239.1.1.1 5000");
    let out = say(&mut net, c, "getdir");
    assert_eq!(sent_lines(&out), ["getdir full\n"]);
    assert_eq!(
        shown(&out),
        [
            "ROOM    ADDRESS    PORT   ACCESS",
            "lobby   239.1.1.1  5000   open",
            "secret  239.1.1.9  6000   private",
            "(2 rooms)",
        ]
    );
    // Typed as the protocol has it, in any case: the same.
    let again = say(&mut net, c, "GETDIR Full");
    assert_eq!(sent_lines(&again), ["getdir full\n"]);
    assert_eq!(shown(&again), shown(&out));
    assert!(net.client(c).ready_for_input());
}

/// A server older than `getdir full` answers it `ERR usage` (or `ERR
/// unknown`): the client asks with `getdir` once, shows the table as
/// before, and asks so for the rest of the connection.
#[test]
fn an_older_server_without_getdir_full_is_asked_with_getdir() {
    for refusal in [
        &b"ERR usage usage: getdir\n"[..],
        b"ERR unknown 'getdir' is not a command\n",
    ] {
        let mut c = hostile_connected();
        let out = user(&mut c, 10, "getdir");
        assert_eq!(actions(&out), [line("getdir full\n")]);
        let out = hostile_sends(&mut c, 11, refusal);
        assert_eq!(actions(&out), [line("getdir\n")]);
        assert_eq!(shown(&out), Vec::<String>::new());
        assert!(!c.ready_for_input());
        let out = hostile_sends(&mut c, 12, b"OK 1 room\nlobby 239.1.1.1 5000\n.\n");
        assert_eq!(
            shown(&out),
            [
                "ROOM   ADDRESS    PORT",
                "lobby  239.1.1.1  5000",
                "(1 room)"
            ]
        );
        assert!(c.ready_for_input());
        // Remembered for this connection: straight to `getdir`.
        let out = user(&mut c, 13, "getdir");
        assert_eq!(actions(&out), [line("getdir\n")]);
        let out = hostile_sends(&mut c, 14, b"OK 0 rooms\n.\n");
        assert_eq!(
            shown(&out),
            ["No rooms yet. Create one with: makeroom <name>"]
        );
        // A plain `getdir` refused is told, not asked again.
        let out = user(&mut c, 15, "getdir");
        assert_eq!(actions(&out), [line("getdir\n")]);
        let out = hostile_sends(&mut c, 16, b"ERR usage usage: getdir\n");
        assert_eq!(actions(&out), []);
        assert_eq!(all_shown(&out), "Could not list the rooms: usage: getdir");
        // A new connection asks the full listing again.
        user(&mut c, 17, "bye");
        hostile_sends(&mut c, 18, b"OK bye\n");
        user(&mut c, 19, "connect");
        c.handle_connected(t(20));
        hostile_sends(&mut c, 21, &real_greeting());
        let out = user(&mut c, 22, "getdir");
        assert_eq!(actions(&out), [line("getdir full\n")]);
    }
}

/// Any other refusal of `getdir full` is told, without a second try.
#[test]
fn other_refusals_of_getdir_full_are_told() {
    let mut c = hostile_connected();
    user(&mut c, 10, "getdir");
    let out = hostile_sends(&mut c, 11, b"ERR quota rate: slow down\n");
    assert_eq!(actions(&out), []);
    assert_eq!(all_shown(&out), "Could not list the rooms: rate: slow down");
    assert!(c.ready_for_input());
    let out = user(&mut c, 12, "getdir");
    assert_eq!(actions(&out), [line("getdir full\n")]);
}

/// A full listing's line must say its kind, one this client knows; words
/// after the kind (a later version's) are ignored.
#[test]
fn full_listing_lines_must_say_a_known_kind() {
    let mut c = hostile_connected();
    user(&mut c, 10, "getdir");
    let out = hostile_sends(
        &mut c,
        11,
        b"OK 1 room\nlobby 239.1.1.1 5000 private since=2026 more\n.\n",
    );
    assert_eq!(
        shown(&out),
        [
            "ROOM   ADDRESS    PORT   ACCESS",
            "lobby  239.1.1.1  5000   private",
            "(1 room)"
        ]
    );
    for (row, quoted) in [
        (&b"lobby 239.1.1.1 5000\n"[..], "lobby 239.1.1.1 5000"),
        (
            b"lobby 239.1.1.1 5000 sealed\n",
            "lobby 239.1.1.1 5000 sealed",
        ),
        (
            b"lobby 239.1.1.1 5000 Private\n",
            "lobby 239.1.1.1 5000 Private",
        ),
    ] {
        let mut c = hostile_connected();
        user(&mut c, 10, "getdir");
        hostile_sends(&mut c, 11, b"OK 1 room\n");
        let out = hostile_sends(&mut c, 12, row);
        assert_eq!(actions(&out), [Output::Close, Output::Prompt(Prompt::Main)]);
        assert!(
            all_shown(&out).contains(&format!(
                "sent a directory line that is not a room ('{quoted}')"
            )),
            "{out:?}"
        );
    }
}

#[test]
fn a_getroom_answer_about_another_room_enters_nothing() {
    let mut c = hostile_connected();
    user(&mut c, 10, "chat lobby");
    let out = hostile_sends(&mut c, 11, b"OK room other 239.1.1.1 5000 open\n");
    assert_eq!(
        actions(&out),
        [Output::Close, Output::Prompt(Prompt::Main)],
        "{out:?}"
    );
    assert!(all_shown(&out).contains("another room"), "{out:?}");
    // The same name in another case is the same room.
    let mut c = hostile_connected();
    user(&mut c, 10, "chat lobby");
    let out = hostile_sends(&mut c, 11, b"OK room LOBBY 239.1.1.1 5000 open\n");
    assert!(
        matches!(actions(&out)[..], [Output::JoinGroup { .. }]),
        "{out:?}"
    );
}

#[test]
fn a_private_makeroom_answer_about_another_room_or_not_private_keeps_nothing() {
    let salt = Salt([7; 16]);
    let token = "ab".repeat(32);
    for answer in [
        format!("OK created z 239.9.9.9 4000 token={token} private\n"),
        format!("OK created y 239.9.9.9 4000 token={token}\n"),
    ] {
        let mut c = hostile_connected();
        c.handle_user_line(t(10), b"makeroom y --private");
        drain(&mut c);
        let out = hostile_sends(&mut c, 11, format!("OK salt={salt}\n").as_bytes());
        assert!(
            out.iter().any(|o| matches!(o, Output::DeriveKey { .. })),
            "{out:?}"
        );
        c.handle_room_secret(t(12), 1, Ok((RoomSecret([1; SECRET_BYTES]), [2; 16])));
        drain(&mut c);
        let out = hostile_sends(&mut c, 13, answer.as_bytes());
        assert!(
            !out.iter().any(|o| matches!(o, Output::OwnerToken { .. })),
            "{answer}: {out:?}"
        );
        assert!(actions(&out).contains(&Output::Close), "{answer}: {out:?}");
        assert!(!all_shown(&out).contains("Room '"), "{answer}: {out:?}");
        assert!(
            all_shown(&out).contains("made private"),
            "{answer}: {out:?}"
        );
    }
}

#[test]
fn ctrl_c_while_getroom_is_pending_cancels_the_chat() {
    let mut c = hostile_connected();
    user(&mut c, 10, "chat lobby");
    assert_eq!(c.room_pending().map(|n| n.as_str()), Some("lobby"));
    assert!(!c.ready_for_input());
    c.handle_interrupt(t(11));
    let out = drain(&mut c);
    assert!(
        all_shown(&out).contains("You did not enter room 'lobby': cancelled."),
        "{out:?}"
    );
    assert!(c.ready_for_input());
    assert_eq!(c.room_pending(), None);
    // The late answer is dropped: nothing is entered or derived.
    let out = hostile_sends(&mut c, 12, b"OK room lobby 239.1.1.1 5000 open\n");
    assert!(actions(&out).is_empty(), "{out:?}");
    assert_eq!(c.mode(), Mode::Connected);
}

#[test]
fn a_wrong_passphrase_from_a_file_or_the_environment_names_its_source() {
    let (mut net, mel) = with_secret_room();
    say(&mut net, mel, "chat secret");
    let mut config = member("Eve", 3);
    config.passphrase_source = Some("ROOMCAST_PASSPHRASE");
    let eve = net.add_client(config);
    net.clients[eve].passphrase = Some(b"wrong horse battery staple".to_vec());
    let out = say(&mut net, eve, "chat secret");
    assert_eq!(
        shown(&out).last().map(String::as_str),
        Some(
            "Wrong passphrase for room 'secret': the passphrase from ROOMCAST_PASSPHRASE is \
             not this room's. Give this room's passphrase there (or start roomcast without \
             ROOMCAST_PASSPHRASE to type it), then 'chat secret' again."
        )
    );
    assert_eq!(net.client(eve).mode(), Mode::Main);
}
