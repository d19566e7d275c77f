//! Tests of the client machine: scripts of inputs with their exact outputs,
//! every command in every mode, replies split anywhere, server errors and
//! lost connections, and property runs over random inputs.

use std::string::{String, ToString};
use std::vec::Vec;
use std::{format, vec};

use proptest::prelude::*;

use super::*;

const GREETING: &[u8] = b"OK CRDP/1 roomcast directory server ready\n";

fn t(ms: u64) -> Instant {
    Instant::from_micros(ms * 1000)
}

fn config() -> ClientConfig {
    ClientConfig::new(
        parse_server_addr("localhost", 5577).unwrap(),
        5577,
        ChatName::new("Mel").unwrap(),
    )
}

fn drain(c: &mut Client) -> Vec<Output> {
    let mut out = Vec::new();
    while let Some(o) = c.poll_output() {
        out.push(o);
        assert!(out.len() < 100_000, "poll_output never ends");
    }
    out
}

/// What the outputs showed, one string per message.
fn shown(outputs: &[Output]) -> Vec<String> {
    outputs
        .iter()
        .filter_map(|o| match o {
            Output::Show(m) => Some(m.to_string()),
            _ => None,
        })
        .collect()
}

fn all_shown(outputs: &[Output]) -> String {
    shown(outputs).join("\n")
}

fn line(s: &str) -> Output {
    Output::SendLine(LineBuf::try_from(s).unwrap())
}

fn prompts(outputs: &[Output]) -> Vec<Prompt> {
    outputs
        .iter()
        .filter_map(|o| match o {
            Output::Prompt(p) => Some(p.clone()),
            _ => None,
        })
        .collect()
}

/// The outputs that are not messages for the user.
fn actions(outputs: &[Output]) -> Vec<Output> {
    outputs
        .iter()
        .filter(|o| !matches!(o, Output::Show(_)))
        .cloned()
        .collect()
}

fn addr(s: &str) -> ServerAddr {
    ServerAddr::try_from(s).unwrap()
}

fn connected_prompt() -> Prompt {
    Prompt::Connected {
        server: addr("localhost:5577"),
    }
}

fn chat_prompt(room: &str, name: &str) -> Prompt {
    Prompt::Chat {
        room: RoomName::try_from(room).unwrap(),
        name: ChatName::new(name).unwrap(),
    }
}

/// A client whose greeting was drained.
fn fresh() -> Client {
    let mut c = Client::new(config(), t(0));
    let out = drain(&mut c);
    assert!(all_shown(&out).contains("your chat name is Mel"));
    assert_eq!(prompts(&out), [Prompt::Main]);
    c
}

fn user(c: &mut Client, now: u64, text: &str) -> Vec<Output> {
    c.handle_user_line(t(now), text.as_bytes());
    drain(c)
}

fn server(c: &mut Client, now: u64, bytes: &[u8]) -> Vec<Output> {
    let mut taken = 0;
    let mut out = Vec::new();
    while taken < bytes.len() {
        let n = c.handle_server_bytes(t(now), &bytes[taken..]);
        taken += n;
        out.extend(drain(c));
        assert!(n > 0 || c.recv_capacity() > 0, "stuck");
    }
    out
}

/// A client connected to localhost:5577.
fn connected() -> Client {
    let mut c = fresh();
    let out = user(&mut c, 1, "connect");
    assert_eq!(
        actions(&out),
        [Output::Connect {
            server: addr("localhost:5577")
        }]
    );
    assert!(!c.ready_for_input());
    c.handle_connected(t(2));
    assert!(drain(&mut c).is_empty());
    let out = server(&mut c, 3, GREETING);
    assert_eq!(
        all_shown(&out),
        "Connected to the directory server at localhost:5577. Type 'help' for its commands, \
         'bye' to disconnect."
    );
    assert_eq!(prompts(&out), [connected_prompt()]);
    assert!(c.ready_for_input());
    assert_eq!(c.mode(), Mode::Connected);
    c
}

/// A connected client in room lobby (239.1.1.1 port 5000).
fn in_chat() -> Client {
    let mut c = connected();
    let out = user(&mut c, 10, "chat lobby");
    assert_eq!(actions(&out), [line("getdir\n")]);
    let out = server(
        &mut c,
        11,
        b"OK 2 rooms\nLobby 239.1.1.1 5000\nother 239.1.1.2 5000\n.\n",
    );
    assert_eq!(
        actions(&out),
        [
            Output::JoinGroup {
                group: Ipv4Addr::new(239, 1, 1, 1),
                port: 5000
            },
            Output::Prompt(chat_prompt("Lobby", "Mel")),
        ]
    );
    assert!(
        all_shown(&out).starts_with("Entering chat room Lobby (239.1.1.1 port 5000) as Mel.\n")
    );
    assert_eq!(c.mode(), Mode::Chat);
    c
}

// ---- names and addresses ----

#[test]
fn chat_names() {
    assert_eq!(ChatName::new("  Mel  ").unwrap().as_str(), "Mel");
    assert_eq!(ChatName::new("Mel Smith").unwrap().as_str(), "Mel Smith");
    assert_eq!(ChatName::new("").unwrap_err(), NameError::Empty);
    assert_eq!(ChatName::new("   ").unwrap_err(), NameError::Empty);
    assert!(ChatName::new(&"é".repeat(32)).is_ok());
    assert_eq!(
        ChatName::new(&"a".repeat(33)).unwrap_err(),
        NameError::TooLong
    );
    assert_eq!(ChatName::new("a\tb").unwrap_err(), NameError::NotPrintable);
    assert_eq!(
        ChatName::new("a\u{1b}b").unwrap_err(),
        NameError::NotPrintable
    );
    assert_eq!(
        ChatName::new("a\u{202e}b").unwrap_err(),
        NameError::NotPrintable
    );
}

#[test]
fn server_addresses() {
    let ok = |s: &str| parse_server_addr(s, 5577).map(|a| a.to_string());
    assert_eq!(ok("localhost").unwrap(), "localhost:5577");
    assert_eq!(ok("host:80").unwrap(), "host:80");
    assert_eq!(ok(" 10.0.0.1:6000 ").unwrap(), "10.0.0.1:6000");
    assert_eq!(ok("::1").unwrap(), "[::1]:5577");
    assert_eq!(ok("[::1]").unwrap(), "[::1]:5577");
    assert_eq!(ok("[fe80::1]:9").unwrap(), "[fe80::1]:9");
    assert_eq!(ok("host:0"), Err(AddrError::BadPort));
    assert_eq!(ok("host:65536"), Err(AddrError::BadPort));
    assert_eq!(ok("host:+80"), Err(AddrError::BadPort));
    assert_eq!(ok("host:"), Err(AddrError::BadPort));
    assert_eq!(ok(":80"), Err(AddrError::BadHost));
    assert_eq!(ok(""), Err(AddrError::BadHost));
    assert_eq!(ok("a b"), Err(AddrError::BadHost));
    assert_eq!(ok("[::1"), Err(AddrError::BadHost));
    assert_eq!(ok("[]:80"), Err(AddrError::BadHost));
    assert_eq!(ok("[::1]x"), Err(AddrError::BadHost));
    assert_eq!(ok(&"h".repeat(300)), Err(AddrError::TooLong));
}

// ---- main mode ----

#[test]
fn main_mode_commands() {
    let mut c = fresh();
    let help = all_shown(&user(&mut c, 1, "help"));
    for word in [
        "connect [HOST[:PORT]]",
        "name [NAME]",
        "chat <room>",
        "quit",
    ] {
        assert!(help.contains(word), "{help}");
    }
    assert!(!help.contains("deleteroom <name>"), "{help}");
    assert_eq!(all_shown(&user(&mut c, 1, "?")), help);
    assert_eq!(all_shown(&user(&mut c, 1, "HELP")), help);

    for cmd in [
        "getdir",
        "makeroom a 239.1.1.1 5000",
        "deleteroom a",
        "ping",
    ] {
        let out = user(&mut c, 2, cmd);
        assert_eq!(actions(&out), []);
        assert!(
            all_shown(&out).contains("type 'connect' first"),
            "{cmd}: {out:?}"
        );
    }
    let out = user(&mut c, 2, "bye");
    assert_eq!(
        all_shown(&out),
        "You are not connected to a directory server (type 'connect' to connect)."
    );
    let out = user(&mut c, 2, "frobnicate now");
    assert_eq!(
        all_shown(&out),
        "'frobnicate' is not a command. Type 'help' for the commands."
    );
    assert_eq!(user(&mut c, 2, ""), []);
    assert_eq!(user(&mut c, 2, "   \r\n"), []);
    assert_eq!(
        all_shown(&user(&mut c, 2, "connect a b")),
        "usage: connect [HOST[:PORT]]"
    );
    assert!(all_shown(&user(&mut c, 2, "connect host:99999")).contains("port after the colon"));
    assert!(all_shown(&user(&mut c, 2, "chat")).starts_with("usage: chat <room>"));
    assert!(all_shown(&user(&mut c, 2, "chat a b")).starts_with("usage: chat <room>"));
    assert!(
        all_shown(&user(&mut c, 2, &format!("chat {}", "r".repeat(33))))
            .contains("is not a room name")
    );
    c.handle_user_line(t(2), b"caf\xff");
    assert_eq!(
        all_shown(&drain(&mut c)),
        "That line is not valid UTF-8, so it was ignored."
    );
    c.handle_user_line(t(2), b"\x1d");
    assert_eq!(
        all_shown(&drain(&mut c)),
        "Ctrl-] leaves a chat room; you are not in one."
    );
    c.handle_leave_chat(t(2));
    assert_eq!(
        all_shown(&drain(&mut c)),
        "Ctrl-] leaves a chat room; you are not in one."
    );
    c.handle_interrupt(t(2));
    assert!(all_shown(&drain(&mut c)).contains("Type 'quit'"));
    assert_eq!(c.mode(), Mode::Main);
    assert!(c.ready_for_input());
    assert_eq!(c.poll_timeout(), None);
}

#[test]
fn name_command() {
    let mut c = fresh();
    assert_eq!(
        all_shown(&user(&mut c, 1, "name")),
        "Your chat name is Mel. Change it with: name <chat name>"
    );
    assert_eq!(
        all_shown(&user(&mut c, 1, "name  Mel Smith ")),
        "Your chat name is now Mel Smith. Your messages will read \"Mel Smith: ...\"."
    );
    assert_eq!(c.name().as_str(), "Mel Smith");
    let out = all_shown(&user(&mut c, 1, &format!("name {}", "x".repeat(40))));
    assert!(out.starts_with("That name was not taken: a chat name has at most 32"));
    assert_eq!(c.name().as_str(), "Mel Smith");
}

#[test]
fn quit_and_end_of_input() {
    let mut c = fresh();
    let out = user(&mut c, 1, "quit");
    assert_eq!(actions(&out), [Output::Exit]);
    assert_eq!(all_shown(&out), "Goodbye.");
    assert!(c.has_exited());
    assert!(!c.ready_for_input());
    assert_eq!(user(&mut c, 2, "help"), []);

    let mut c = fresh();
    c.handle_end_of_input(t(1));
    assert_eq!(actions(&drain(&mut c)), [Output::Exit]);

    // Quitting from chat mode leaves the group and closes the connection.
    let mut c = in_chat();
    c.handle_end_of_input(t(20));
    assert_eq!(
        actions(&drain(&mut c)),
        [Output::LeaveGroup, Output::Close, Output::Exit]
    );
    // "quit" typed in chat mode is a message, not a command.
    let mut c = in_chat();
    let out = user(&mut c, 20, "quit");
    assert!(matches!(actions(&out)[..], [Output::SendDatagram(_)]));
}

// ---- connecting ----

#[test]
fn connect_to_a_named_server_and_bye() {
    let mut c = fresh();
    let out = user(&mut c, 1, "connect 10.1.2.3:6000");
    assert_eq!(all_shown(&out), "Connecting to 10.1.2.3:6000...");
    assert_eq!(
        actions(&out),
        [Output::Connect {
            server: addr("10.1.2.3:6000")
        }]
    );
    assert_eq!(c.poll_timeout(), Some(t(1) + CONNECT_TIMEOUT));
    c.handle_connected(t(5));
    let out = server(&mut c, 6, GREETING);
    assert_eq!(
        prompts(&out),
        [Prompt::Connected {
            server: addr("10.1.2.3:6000")
        }]
    );
    assert_eq!(
        Prompt::Connected {
            server: addr("10.1.2.3:6000")
        }
        .to_string(),
        "roomcast [10.1.2.3:6000]> "
    );
    let out = user(&mut c, 7, "connect");
    assert!(all_shown(&out).starts_with("You are already connected to 10.1.2.3:6000."));
    let out = user(&mut c, 8, "bye");
    assert_eq!(actions(&out), [line("bye\n")]);
    assert!(!c.ready_for_input());
    let out = server(&mut c, 9, b"OK bye\n");
    assert_eq!(actions(&out), [Output::Close, Output::Prompt(Prompt::Main)]);
    assert_eq!(
        all_shown(&out),
        "Disconnected from the directory server at 10.1.2.3:6000."
    );
    // The server closing after its "OK bye" changes nothing more.
    c.handle_server_closed(t(10));
    assert_eq!(drain(&mut c), []);
    // `connect` alone now goes back to the server used last.
    let out = user(&mut c, 11, "connect");
    assert_eq!(
        actions(&out),
        [Output::Connect {
            server: addr("10.1.2.3:6000")
        }]
    );
}

#[test]
fn bye_answered_by_a_close() {
    let mut c = connected();
    user(&mut c, 10, "bye");
    c.handle_server_closed(t(11));
    let out = drain(&mut c);
    assert_eq!(actions(&out), [Output::Close, Output::Prompt(Prompt::Main)]);
    assert_eq!(
        all_shown(&out),
        "Disconnected from the directory server at localhost:5577."
    );
}

#[test]
fn connect_failures_are_explained() {
    for (why, text) in [
        (ConnectFailure::Refused, "nothing is listening there"),
        (ConnectFailure::Resolve, "that host name is unknown"),
        (ConnectFailure::Unreachable, "unreachable"),
        (ConnectFailure::Other, "the connection failed"),
    ] {
        let mut c = fresh();
        user(&mut c, 1, "connect");
        c.handle_connect_failed(t(2), why);
        let out = drain(&mut c);
        assert_eq!(actions(&out), [Output::Close]);
        let msg = all_shown(&out);
        assert!(
            msg.starts_with("Could not connect to the directory server at localhost:5577: "),
            "{msg}"
        );
        assert!(msg.contains(text), "{msg}");
        assert!(msg.contains("roomcast server"), "{msg}");
        assert!(c.ready_for_input());
        assert_eq!(c.poll_timeout(), None);
    }
}

#[test]
fn connect_times_out() {
    let mut c = fresh();
    user(&mut c, 1000, "connect");
    let deadline = c.poll_timeout().unwrap();
    assert_eq!(deadline, t(1000) + CONNECT_TIMEOUT);
    c.handle_timeout(t(3000));
    assert_eq!(drain(&mut c), []);
    c.handle_timeout(deadline);
    let out = drain(&mut c);
    assert_eq!(actions(&out), [Output::Close]);
    assert!(all_shown(&out).contains("no answer within 5 s"));
    // A late report of the abandoned attempt is ignored.
    c.handle_connected(t(7000));
    c.handle_connect_failed(t(7000), ConnectFailure::Refused);
    assert_eq!(drain(&mut c), []);
    assert_eq!(c.mode(), Mode::Main);
}

#[test]
fn greeting_refused() {
    let mut c = fresh();
    user(&mut c, 1, "connect");
    c.handle_connected(t(2));
    let out = server(&mut c, 3, b"ERR busy too many connections; try later\n");
    assert_eq!(actions(&out), [Output::Close]);
    assert_eq!(
        all_shown(&out),
        "The directory server at localhost:5577 turned the connection away (busy): too many \
         connections; try later"
    );
    assert_eq!(c.mode(), Mode::Main);
}

#[test]
fn no_greeting_times_out() {
    let mut c = fresh();
    user(&mut c, 1, "connect");
    c.handle_connected(t(2));
    assert_eq!(c.poll_timeout(), Some(t(2) + REPLY_TIMEOUT));
    c.handle_timeout(t(2) + REPLY_TIMEOUT);
    let out = drain(&mut c);
    assert_eq!(actions(&out), [Output::Close]);
    assert!(all_shown(&out).contains("did not answer within 10 s"));
}

// ---- connected mode ----

#[test]
fn connected_help() {
    let mut c = connected();
    let help = all_shown(&user(&mut c, 5, "help"));
    for word in [
        "getdir",
        "makeroom <name> <address> <port>",
        "deleteroom <name>",
        "chat <room>",
        "name [NAME]",
        "bye",
        "quit",
    ] {
        assert!(help.contains(word), "{help}");
    }
}

#[test]
fn getdir_table_is_aligned() {
    let mut c = connected();
    let out = user(&mut c, 5, "getdir");
    assert_eq!(actions(&out), [line("getdir\n")]);
    assert!(!c.ready_for_input());
    let out = server(
        &mut c,
        6,
        b"OK 3 rooms\nlobby 239.1.1.1 5000\nthe-big-room 239.100.200.1 65000\nz 239.0.0.1 1024\n.\n",
    );
    assert_eq!(
        shown(&out),
        [
            "ROOM          ADDRESS        PORT",
            "lobby         239.1.1.1      5000",
            "the-big-room  239.100.200.1  65000",
            "z             239.0.0.1      1024",
            "(3 rooms)",
        ]
    );
    assert!(c.ready_for_input());

    user(&mut c, 7, "getdir");
    let out = server(&mut c, 8, b"OK 1 room\nx 239.1.1.1 5000\n.\n");
    assert_eq!(
        shown(&out),
        ["ROOM  ADDRESS    PORT", "x     239.1.1.1  5000", "(1 room)"]
    );
    user(&mut c, 9, "GETDIR");
    let out = server(&mut c, 10, b"OK 0 rooms\n.\n");
    assert_eq!(
        shown(&out),
        ["No rooms yet. Create one with: makeroom <name> <address> <port>"]
    );
}

#[test]
fn a_long_listing_streams_in_wide_columns() {
    let mut c = connected();
    user(&mut c, 5, "getdir");
    let n = 3 * LISTING_BUFFER + 5;
    let mut bytes = format!("OK {n} rooms\n").into_bytes();
    for i in 0..n {
        bytes.extend(format!("room{i:04} 239.1.{}.{} 5000\n", i / 256, i % 256).bytes());
    }
    bytes.extend(b".\n");
    let out = server(&mut c, 6, &bytes);
    let lines = shown(&out);
    assert_eq!(lines.len(), n + 2, "{lines:#?}");
    assert_eq!(lines[0], format!("{:<32}  {:<15}  PORT", "ROOM", "ADDRESS"));
    for (i, row) in lines[1..=n].iter().enumerate() {
        let expected = format!(
            "{:<32}  {:<15}  5000",
            format!("room{i:04}"),
            format!("239.1.{}.{}", i / 256, i % 256)
        );
        assert_eq!(row, &expected);
    }
    assert_eq!(lines[n + 1], format!("({n} rooms)"));
    assert!(c.ready_for_input());
}

#[test]
fn makeroom_and_deleteroom() {
    let mut c = connected();
    let out = user(&mut c, 5, "makeroom lobby 239.1.1.1 5000");
    assert_eq!(actions(&out), [line("makeroom lobby 239.1.1.1 5000\n")]);
    let out = server(&mut c, 6, b"OK created lobby 239.1.1.1 5000\n");
    assert_eq!(
        all_shown(&out),
        "Room lobby created: multicast group 239.1.1.1 port 5000. Type 'chat lobby' to enter it."
    );
    user(&mut c, 7, "makeroom Lobby 239.1.1.2 5000");
    let out = server(
        &mut c,
        8,
        b"ERR exists a room named lobby exists already; choose another name\n",
    );
    assert_eq!(
        all_shown(&out),
        "Room Lobby was not created: a room named lobby exists already; choose another name"
    );
    let out = user(&mut c, 9, "deleteroom lobby");
    assert_eq!(actions(&out), [line("deleteroom lobby\n")]);
    let out = server(&mut c, 10, b"OK deleted lobby\n");
    assert_eq!(all_shown(&out), "Room lobby deleted.");
    user(&mut c, 11, "deleteroom lobby");
    let out = server(&mut c, 12, b"ERR noroom no room named lobby\n");
    assert_eq!(
        all_shown(&out),
        "Room lobby was not deleted: no room named lobby"
    );
    user(&mut c, 13, "getdir");
    let out = server(&mut c, 14, b"ERR whatever something new went wrong\n");
    assert_eq!(
        all_shown(&out),
        "Could not list the rooms: something new went wrong"
    );
    assert!(c.ready_for_input());
    assert_eq!(c.mode(), Mode::Connected);
}

#[test]
fn bad_commands_are_caught_before_sending() {
    let mut c = connected();
    for (cmd, msg) in [
        ("makeroom lobby", "usage: makeroom <name> <address> <port>"),
        ("makeroom a 10.0.0.1 5000", "is outside 239.0.0.0/8"),
        ("makeroom a 239.0.0.1 80", "is not a usable port"),
        ("makeroom a 239.0.0.300 5000", "is not an IPv4 address"),
        ("deleteroom", "usage: deleteroom <name>"),
        ("getdir now", "usage: getdir"),
        ("deleteroom a\u{202e}b", "'a<U+202E>b' is not a room name"),
    ] {
        let out = user(&mut c, 5, cmd);
        assert_eq!(actions(&out), [], "{cmd}");
        assert!(all_shown(&out).contains(msg), "{cmd}: {out:?}");
    }
    // ping is passed through; its answer is silent.
    let out = user(&mut c, 6, "ping");
    assert_eq!(actions(&out), [line("ping\n")]);
    assert_eq!(server(&mut c, 7, b"OK pong\n"), []);
}

#[test]
fn replies_may_come_in_any_pieces() {
    let mut c = connected();
    user(&mut c, 5, "getdir");
    let reply = b"OK 2 rooms\r\nb 239.1.1.2 5001\r\na 239.1.1.1 5000\n.\n";
    let mut out = Vec::new();
    for b in reply {
        out.extend(server(&mut c, 6, &[*b]));
    }
    assert_eq!(
        shown(&out),
        [
            "ROOM  ADDRESS    PORT",
            "b     239.1.1.2  5001",
            "a     239.1.1.1  5000",
            "(2 rooms)"
        ]
    );
}

// ---- the server misbehaving or going away ----

#[test]
fn server_lost_while_connected() {
    let mut c = connected();
    c.handle_server_closed(t(50));
    let out = drain(&mut c);
    assert_eq!(actions(&out), [Output::Close, Output::Prompt(Prompt::Main)]);
    assert_eq!(
        shown(&out),
        [
            "The directory server at localhost:5577 closed the connection.",
            "Type 'connect' to reconnect."
        ]
    );
    assert!(c.ready_for_input());
    let out = user(&mut c, 51, "getdir");
    assert!(all_shown(&out).contains("type 'connect' first"));
}

#[test]
fn server_lost_mid_listing() {
    let mut c = connected();
    user(&mut c, 5, "getdir");
    let out = server(&mut c, 6, b"OK 2 rooms\na 239.1.1.1 5000\n");
    assert_eq!(shown(&out), Vec::<String>::new());
    c.handle_server_closed(t(7));
    let out = drain(&mut c);
    assert_eq!(actions(&out), [Output::Close, Output::Prompt(Prompt::Main)]);
    assert!(c.ready_for_input());
}

#[test]
fn server_lost_while_chatting_keeps_the_chat() {
    let mut c = in_chat();
    c.handle_server_closed(t(50));
    let out = drain(&mut c);
    assert_eq!(actions(&out), [Output::Close]);
    assert_eq!(
        shown(&out),
        [
            "The directory server at localhost:5577 closed the connection.",
            "You are still in the chat room; chatting does not need the server."
        ]
    );
    assert_eq!(c.mode(), Mode::Chat);
    c.handle_leave_chat(t(51));
    let out = drain(&mut c);
    assert_eq!(
        actions(&out),
        [Output::LeaveGroup, Output::Prompt(Prompt::Main)]
    );
    assert_eq!(
        all_shown(&out),
        "You left chat room Lobby; back at the main prompt."
    );
}

#[test]
fn protocol_errors_close_the_connection() {
    let cases: [&[u8]; 5] = [
        b"HELLO\n",
        b"OK unasked\n",
        b"\xff\xfe\n",
        &[b'x'; MAX_LINE + 10],
        b"OK 1 room\nnot a room line at all\n",
    ];
    for (i, bytes) in cases.iter().enumerate() {
        let mut c = connected();
        if i == 4 {
            user(&mut c, 5, "getdir");
        }
        let out = server(&mut c, 6, bytes);
        assert_eq!(
            actions(&out),
            [Output::Close, Output::Prompt(Prompt::Main)],
            "case {i}"
        );
        assert!(
            all_shown(&out).starts_with("The directory server at localhost:5577 sent "),
            "case {i}: {out:?}"
        );
        // Bytes after the close are ignored.
        assert_eq!(server(&mut c, 7, b"OK more\n"), []);
    }
}

#[test]
fn protocol_errors_quote_the_line_safely() {
    let long = [b'x'; MAX_LINE + 10];
    let cases: [(&[u8], &str); 5] = [
        (
            b"HTTP/1.1 400 Bad Request\r\n",
            "sent a line that is not a reply ('HTTP/1.1 400 Bad Request'); the connection \
             was closed.",
        ),
        (
            b"\x1b[2J\x00\xff\xc2\x9b\xe2\x80\xae!\n",
            "sent a line that is not a reply ('^[[2J^@\u{FFFD}<U+009B><U+202E>!')",
        ),
        (
            &long,
            "sent a line longer than the protocol allows \
             ('xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx...')",
        ),
        (
            b"OK unasked\n",
            "sent a line nobody asked for ('OK unasked')",
        ),
        (
            b"OK 1 room\nlobby 1.2.3 5000\n",
            "sent a directory line that is not a room ('lobby 1.2.3 5000'); the connection \
             was closed. The room list did not arrive in full.",
        ),
    ];
    for (i, (bytes, expected)) in cases.iter().enumerate() {
        let mut c = connected();
        if i != 3 {
            user(&mut c, 5, "getdir");
        }
        let out = server(&mut c, 6, bytes);
        assert_eq!(actions(&out), [Output::Close, Output::Prompt(Prompt::Main)]);
        let shown = all_shown(&out);
        assert!(shown.contains(expected), "case {i}: {shown}");
        assert!(shown.ends_with("Type 'connect' to reconnect."), "{shown}");
    }
}

#[test]
fn a_greeting_that_is_not_crdp1_is_refused() {
    for greeting in [
        &b"OK hello\n"[..],
        b"OK CRDP/10 ready\n",
        b"OK\n",
        b"+OK POP3\n",
    ] {
        let mut c = fresh();
        user(&mut c, 1, "connect");
        c.handle_connected(t(2));
        let out = server(&mut c, 3, greeting);
        assert_eq!(actions(&out), [Output::Close], "{greeting:?}");
        let shown = all_shown(&out);
        assert!(
            shown.starts_with("The directory server at localhost:5577 sent a "),
            "{shown}"
        );
        assert!(
            shown.contains("Is it a roomcast directory server?"),
            "{shown}"
        );
        assert!(c.ready_for_input());
        assert_eq!(c.mode(), Mode::Main);
    }
    // The greeting may say more after the version.
    let mut c = fresh();
    user(&mut c, 1, "connect");
    c.handle_connected(t(2));
    let out = server(&mut c, 3, b"OK CRDP/1\n");
    assert_eq!(prompts(&out), [connected_prompt()]);
}

#[test]
fn a_close_before_the_reply_says_what_may_have_happened() {
    let cases = [
        (
            "makeroom lobby 239.1.1.1 5000",
            &b""[..],
            " Room lobby may or may not have been created; 'getdir' tells once you reconnect.",
        ),
        (
            "deleteroom lobby",
            b"OK del",
            " Room lobby may or may not have been deleted; 'getdir' tells once you reconnect.",
        ),
        (
            "getdir",
            b"OK 3 rooms\nlobby 239.1.1.1 5000\n",
            " The room list did not arrive in full.",
        ),
    ];
    for (command, partial, note) in cases {
        let mut c = connected();
        user(&mut c, 5, command);
        assert_eq!(server(&mut c, 6, partial), []);
        c.handle_server_closed(t(7));
        let out = drain(&mut c);
        assert_eq!(actions(&out), [Output::Close, Output::Prompt(Prompt::Main)]);
        assert_eq!(
            shown(&out),
            [
                format!("The directory server at localhost:5577 closed the connection.{note}"),
                "Type 'connect' to reconnect.".to_string()
            ]
        );
        assert!(c.ready_for_input());
    }
}

#[test]
fn reply_timeout_and_keepalive() {
    let mut c = connected();
    // Idle: a ping after the keepalive interval, answered silently.
    let at = c.poll_timeout().unwrap();
    assert_eq!(at, t(2) + KEEPALIVE_INTERVAL);
    c.handle_timeout(t(4));
    assert_eq!(drain(&mut c), []);
    c.handle_timeout(at);
    assert_eq!(drain(&mut c), [line("ping\n")]);
    // A ping in flight does not hold up the user.
    assert!(c.ready_for_input());
    assert_eq!(c.poll_timeout(), Some(at + REPLY_TIMEOUT));
    let later = at.as_micros() / 1000 + 10;
    assert_eq!(server(&mut c, later, b"OK pong\n"), []);
    assert_eq!(c.poll_timeout(), Some(at + KEEPALIVE_INTERVAL));

    // A request not answered in time closes the connection.
    user(&mut c, later + 1, "getdir");
    let deadline = c.poll_timeout().unwrap();
    assert_eq!(deadline, t(later + 1) + REPLY_TIMEOUT);
    c.handle_timeout(deadline);
    let out = drain(&mut c);
    assert_eq!(actions(&out), [Output::Close, Output::Prompt(Prompt::Main)]);
    assert!(all_shown(&out).contains("did not answer within 10 s"));
}

#[test]
fn time_going_backwards_is_clamped() {
    let mut c = connected();
    user(&mut c, 100_000, "getdir");
    let deadline = c.poll_timeout().unwrap();
    c.handle_timeout(t(5));
    assert_eq!(drain(&mut c), []);
    assert_eq!(c.poll_timeout(), Some(deadline));
}

// ---- chat mode ----

#[test]
fn chat_looks_up_the_room_over_a_short_connection() {
    let mut c = fresh();
    let out = user(&mut c, 1, "chat LOBBY");
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
    c.handle_connected(t(2));
    let out = server(&mut c, 3, GREETING);
    assert_eq!(actions(&out), [line("getdir\n")]);
    assert_eq!(c.mode(), Mode::Main);
    let out = server(&mut c, 4, b"OK 1 room\nlobby 239.1.1.1 5000\n.\n");
    assert_eq!(
        actions(&out),
        [
            Output::JoinGroup {
                group: Ipv4Addr::new(239, 1, 1, 1),
                port: 5000
            },
            Output::Close,
            Output::Prompt(chat_prompt("lobby", "Mel")),
        ]
    );
    assert_eq!(chat_prompt("lobby", "Mel").to_string(), "[lobby] Mel> ");
    c.handle_leave_chat(t(5));
    let out = drain(&mut c);
    assert_eq!(
        actions(&out),
        [Output::LeaveGroup, Output::Prompt(Prompt::Main)]
    );
}

#[test]
fn chat_with_an_unknown_room() {
    let mut c = fresh();
    user(&mut c, 1, "chat nowhere");
    c.handle_connected(t(2));
    server(&mut c, 3, GREETING);
    let out = server(&mut c, 4, b"OK 1 room\nlobby 239.1.1.1 5000\n.\n");
    assert_eq!(actions(&out), [Output::Close]);
    assert_eq!(
        all_shown(&out),
        "There is no room named nowhere. Type 'connect', then 'getdir' to list the rooms or \
         'makeroom' to create one."
    );

    let mut c = connected();
    user(&mut c, 5, "chat nowhere");
    let out = server(&mut c, 6, b"OK 0 rooms\n.\n");
    assert_eq!(actions(&out), []);
    assert_eq!(
        all_shown(&out),
        "There is no room named nowhere. Type 'getdir' to list the rooms, or 'makeroom' to \
         create one."
    );
    assert_eq!(c.mode(), Mode::Connected);
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
    let mut c = fresh();
    user(&mut c, 1, "chat lobby");
    c.handle_connected(t(2));
    server(&mut c, 3, GREETING);
    let out = server(&mut c, 4, b"ERR busy try later\n");
    assert_eq!(actions(&out), [Output::Close]);
    assert_eq!(
        all_shown(&out),
        "Could not look up room lobby: the server said: try later"
    );

    let mut c = fresh();
    user(&mut c, 1, "chat lobby");
    c.handle_connected(t(2));
    server(&mut c, 3, GREETING);
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
    let mut c = in_chat();
    c.handle_interrupt(t(20));
    let out = drain(&mut c);
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
    let mut c = connected();
    user(&mut c, 5, "deleteroom x");
    // The parser refuses control characters in replies: a protocol error.
    let out = server(&mut c, 6, b"ERR noroom \x1b[31mred\n");
    assert_eq!(actions(&out), [Output::Close, Output::Prompt(Prompt::Main)]);
    // Invisible formatting characters are shown as code points.
    let mut c = connected();
    user(&mut c, 5, "deleteroom x");
    let out = server(&mut c, 6, "ERR noroom no \u{202e}room\n".as_bytes());
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

// ---- golden transcript ----

/// Renders a session as the user would see it (prompts and messages) with
/// the actions in brackets.
fn render(outputs: &[Output]) -> String {
    let mut s = String::new();
    for o in outputs {
        match o {
            Output::Show(m) => s.push_str(&format!("{m}\n")),
            Output::Prompt(p) => s.push_str(&format!("<prompt {p:?}>\n", p = p.to_string())),
            Output::SendLine(l) => s.push_str(&format!("[send {:?}]\n", l.as_str())),
            Output::Connect { server } => s.push_str(&format!("[connect {server}]\n")),
            Output::Close => s.push_str("[close]\n"),
            Output::JoinGroup { group, port } => s.push_str(&format!("[join {group}:{port}]\n")),
            Output::LeaveGroup => s.push_str("[leave]\n"),
            Output::SendDatagram(d) => {
                s.push_str(&format!("[datagram {:?}]\n", String::from_utf8_lossy(d)))
            }
            Output::Exit => s.push_str("[exit]\n"),
        }
    }
    s
}

#[test]
fn golden_demo_session() {
    let mut c = Client::new(config(), t(0));
    let mut out = drain(&mut c);
    out.extend(user(&mut c, 1, "connect"));
    c.handle_connected(t(2));
    out.extend(drain(&mut c));
    out.extend(server(&mut c, 3, GREETING));
    out.extend(user(&mut c, 4, "makeroom lobby 239.1.1.1 5000"));
    out.extend(server(&mut c, 5, b"OK created lobby 239.1.1.1 5000\n"));
    out.extend(user(&mut c, 6, "getdir"));
    out.extend(server(&mut c, 7, b"OK 1 room\nlobby 239.1.1.1 5000\n.\n"));
    out.extend(user(&mut c, 8, "bye"));
    out.extend(server(&mut c, 9, b"OK bye\n"));
    out.extend(user(&mut c, 10, "name Alice"));
    out.extend(user(&mut c, 11, "chat lobby"));
    c.handle_connected(t(12));
    out.extend(drain(&mut c));
    out.extend(server(&mut c, 13, GREETING));
    out.extend(server(&mut c, 14, b"OK 1 room\nlobby 239.1.1.1 5000\n.\n"));
    out.extend(user(&mut c, 15, "Good morning!"));
    c.handle_datagram(t(16), b"Alice: Good morning!");
    c.handle_datagram(t(16), b"Bob: Hi Alice");
    out.extend(drain(&mut c));
    c.handle_leave_chat(t(17));
    out.extend(drain(&mut c));
    out.extend(user(&mut c, 18, "quit"));
    let expected = "\
roomcast chat client; your chat name is Mel.
Type 'connect' to reach the directory server at localhost:5577, 'help' for all commands.
<prompt \"roomcast> \">
Connecting to localhost:5577...
[connect localhost:5577]
Connected to the directory server at localhost:5577. Type 'help' for its commands, 'bye' to disconnect.
<prompt \"roomcast [localhost:5577]> \">
[send \"makeroom lobby 239.1.1.1 5000\\n\"]
Room lobby created: multicast group 239.1.1.1 port 5000. Type 'chat lobby' to enter it.
[send \"getdir\\n\"]
ROOM   ADDRESS    PORT
lobby  239.1.1.1  5000
(1 room)
[send \"bye\\n\"]
[close]
Disconnected from the directory server at localhost:5577.
<prompt \"roomcast> \">
Your chat name is now Alice. Your messages will read \"Alice: ...\".
Connecting to localhost:5577 to look up the room...
[connect localhost:5577]
[send \"getdir\\n\"]
[join 239.1.1.1:5000]
Entering chat room lobby (239.1.1.1 port 5000) as Alice.
Type a message and press Enter to send it; Ctrl-] (or /leave) leaves the room.
[close]
<prompt \"[lobby] Alice> \">
[datagram \"Alice: Good morning!\"]
Bob: Hi Alice
[leave]
You left chat room lobby; back at the main prompt.
<prompt \"roomcast> \">
Goodbye.
[exit]
";
    assert_eq!(render(&out), expected);
}

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

#[test]
fn a_listing_longer_than_any_directory_is_a_protocol_error() {
    use crate::limits::MAX_ROOMS;
    let mut c = connected();
    user(&mut c, 5, "getdir");
    let mut bytes = b"OK 0 rooms\n".to_vec();
    // MAX_ROOMS lines are a full directory; distinct rooms, as a server lists.
    for i in 0..MAX_ROOMS {
        bytes.extend(format!("r{i:05} 239.2.{}.{} 5000\n", i / 256, i % 256).bytes());
    }
    let out = server(&mut c, 6, &bytes);
    assert!(
        !actions(&out).contains(&Output::Close),
        "a full directory is fine"
    );
    // One more, and the server is not a directory server.
    let out = server(&mut c, 7, b"extra 239.3.0.1 5000\n");
    assert_eq!(actions(&out), [Output::Close, Output::Prompt(Prompt::Main)]);
    assert!(
        all_shown(&out).contains("more rooms than a directory can hold"),
        "{out:?}"
    );
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

/// Issue 13.10: the `getdir` table aligns by terminal columns, so wide
/// (CJK, emoji) and combining characters do not push the columns out.
#[test]
fn getdir_table_aligns_by_display_width() {
    let mut c = connected();
    user(&mut c, 5, "getdir");
    let out = server(
        &mut c,
        6,
        "OK 4 rooms\nabc 239.1.1.1 5000\n\u{4f1a}\u{8b70}\u{5ba4} 239.1.1.2 5000\n\
         \u{1F600} 239.1.1.3 5000\nab\u{316}c 239.1.1.4 5000\n.\n"
            .as_bytes(),
    );
    assert_eq!(
        shown(&out),
        [
            "ROOM    ADDRESS    PORT",
            "abc     239.1.1.1  5000",
            "\u{4f1a}\u{8b70}\u{5ba4}  239.1.1.2  5000",
            "\u{1F600}      239.1.1.3  5000",
            "ab\u{316}c     239.1.1.4  5000",
            "(4 rooms)",
        ]
    );
}
