//! Commands at the main and connected prompts, connecting and disconnecting.

use super::*;

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
    let (mut net, c) = pair_in_chat();
    assert_eq!(
        actions(&act(&mut net, c, Input::End)),
        [Output::LeaveGroup, Output::Close, Output::Exit]
    );
    // "quit" typed in chat mode is a message, not a command.
    let (mut net, c) = pair_in_chat();
    let out = say(&mut net, c, "quit");
    assert!(matches!(actions(&out)[..], [Output::SendDatagram(_)]));
    assert!(!net.client(c).has_exited());
}

// ---- connecting ----

#[test]
fn connect_to_a_named_server_and_bye() {
    let mut net = Net::new(2);
    net.add_server("10.1.2.3:6000", ServerConfig::default(), Directory::new());
    let c = net.add_client(config());
    let mark = net.mark(c);
    net.type_line(c, "connect 10.1.2.3:6000");
    let out = net.since(c, mark);
    assert_eq!(all_shown(&out), "Connecting to 10.1.2.3:6000...");
    assert_eq!(
        actions(&out),
        [Output::Connect {
            server: addr("10.1.2.3:6000")
        }]
    );
    assert_eq!(
        net.client(c).poll_timeout(),
        Some(net.now() + CONNECT_TIMEOUT)
    );
    net.run_until_idle();
    let out = net.since(c, mark);
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
    let out = say(&mut net, c, "connect");
    assert!(all_shown(&out).starts_with("You are already connected to 10.1.2.3:6000."));
    let mark = net.mark(c);
    net.type_line(c, "bye");
    assert_eq!(actions(&net.since(c, mark)), [line("bye\n")]);
    assert!(!net.client(c).ready_for_input());
    // The real server answers "OK bye" and closes; the close changes
    // nothing more.
    net.run_until_idle();
    let out = net.since(c, mark);
    assert_eq!(
        actions(&out),
        [line("bye\n"), Output::Close, Output::Prompt(Prompt::Main)]
    );
    assert_eq!(
        all_shown(&out),
        "Disconnected from the directory server at 10.1.2.3:6000."
    );
    // `connect` alone now goes back to the server used last.
    let out = say(&mut net, c, "connect");
    assert_eq!(
        actions(&out)[0],
        Output::Connect {
            server: addr("10.1.2.3:6000")
        }
    );
    assert_eq!(net.client(c).mode(), Mode::Connected);
}

#[test]
fn connect_by_the_name_of_a_server_found_on_the_lan() {
    let mut known = config();
    for (name, at) in [("alpha", "10.1.2.3:5577"), ("Beta", "10.1.2.4:6000")] {
        let server = KnownServer {
            name: name.try_into().unwrap(),
            addr: addr(at),
        };
        known.known_servers.push(server).unwrap();
    }
    let mut net = Net::new(3);
    net.add_server("10.1.2.4:6000", ServerConfig::default(), Directory::new());
    let c = net.add_client(known);
    // The name, in any case, reaches the address and port it announced.
    let mark = net.mark(c);
    net.type_line(c, "connect beta");
    let out = net.since(c, mark);
    assert_eq!(all_shown(&out), "Connecting to 10.1.2.4:6000...");
    assert_eq!(
        actions(&out),
        [Output::Connect {
            server: addr("10.1.2.4:6000")
        }]
    );
    net.run_until_idle();
    assert_eq!(net.client(c).mode(), Mode::Connected);
    // A name with a port, or one not found, is a host name as before.
    say(&mut net, c, "bye");
    net.run_until_idle();
    let out = say(&mut net, c, "connect alpha:7000");
    assert_eq!(
        actions(&out)[0],
        Output::Connect {
            server: addr("alpha:7000")
        }
    );
}

#[test]
fn bye_answered_by_a_close() {
    // A server may close instead of answering "OK bye".
    let mut net = Net::new(10);
    net.add_hostile_server(SERVER);
    let c = net.add_client(config());
    say(&mut net, c, "connect");
    net.hostile_send(&real_greeting());
    net.run_until_idle();
    say(&mut net, c, "bye");
    let mark = net.mark(c);
    net.hostile_close();
    net.run_until_idle();
    let out = net.since(c, mark);
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
    // The host, not the server machine, refuses a connection when full.
    let mut c = fresh();
    user(&mut c, 1, "connect");
    c.handle_connected(t(2));
    let out = hostile_sends(&mut c, 3, b"ERR busy too many connections; try later\n");
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
    let (mut net, c) = pair_connected();
    let help = all_shown(&say(&mut net, c, "help"));
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

/// Issue 13.10: the `getdir` table aligns by terminal columns, so wide
/// (CJK, emoji) and combining characters do not push the columns out.
#[test]
fn getdir_table_aligns_by_display_width() {
    let room = |name: &str, last: u8| Room {
        name: RoomName::try_from(name).unwrap(),
        group: Ipv4Addr::new(239, 1, 1, last).into(),
        port: 5000,
    };
    let rooms = [
        room("abc", 1),
        room("\u{4f1a}\u{8b70}\u{5ba4}", 2),
        room("\u{1F600}", 3),
        room("ab\u{316}c", 4),
    ];
    let (mut net, c) = pair_with(5, &rooms);
    say(&mut net, c, "connect");
    let mark = net.mark(c);
    net.type_line(c, "getdir");
    net.run_until_idle();
    let mut rows = shown(&net.since(c, mark));
    // The real server lists rooms in its own order: compare as a set.
    let header = rows.remove(0);
    let footer = rows.pop();
    rows.sort();
    assert_eq!(header, "ROOM    ADDRESS    PORT   ACCESS");
    assert_eq!(footer.as_deref(), Some("(4 rooms)"));
    let mut expected = [
        "abc     239.1.1.1  5000   open",
        "\u{4f1a}\u{8b70}\u{5ba4}  239.1.1.2  5000   open",
        "\u{1F600}      239.1.1.3  5000   open",
        "ab\u{316}c     239.1.1.4  5000   open",
    ];
    expected.sort();
    assert_eq!(rows, expected);
}

#[test]
fn getdir_table_is_aligned() {
    let room = |name: &str, group: [u8; 4], port| Room {
        name: RoomName::try_from(name).unwrap(),
        group: Ipv4Addr::from(group).into(),
        port,
    };
    let rooms = [
        room("lobby", [239, 1, 1, 1], 5000),
        room("the-big-room", [239, 100, 200, 1], 65000),
        room("z", [239, 0, 0, 1], 1024),
    ];
    let (mut net, c) = pair_with(3, &rooms);
    say(&mut net, c, "connect");
    let mark = net.mark(c);
    net.type_line(c, "getdir");
    assert_eq!(actions(&net.since(c, mark)), [line("getdir full\n")]);
    assert!(!net.client(c).ready_for_input());
    net.run_until_idle();
    assert_eq!(
        shown(&net.since(c, mark)),
        [
            "ROOM          ADDRESS        PORT   ACCESS",
            "lobby         239.1.1.1      5000   open",
            "the-big-room  239.100.200.1  65000  open",
            "z             239.0.0.1      1024   open",
            "(3 rooms)",
        ]
    );
    assert!(net.client(c).ready_for_input());

    let (mut net, c) = pair_with(4, &[room("x", [239, 1, 1, 1], 5000)]);
    say(&mut net, c, "connect");
    assert_eq!(
        shown(&say(&mut net, c, "getdir")),
        [
            "ROOM  ADDRESS    PORT   ACCESS",
            "x     239.1.1.1  5000   open",
            "(1 room)"
        ]
    );
    let (mut net, c) = pair_with(5, &[]);
    say(&mut net, c, "connect");
    assert_eq!(
        shown(&say(&mut net, c, "GETDIR")),
        ["No rooms yet. Create one with: makeroom <name>"]
    );
}

#[test]
fn a_long_listing_streams_in_wide_columns() {
    let n = 3 * LISTING_BUFFER + 5;
    let rooms: Vec<Room> = (0..n)
        .map(|i| Room {
            name: RoomName::try_from(format!("room{i:04}").as_str()).unwrap(),
            group: Ipv4Addr::new(239, 1, (i / 256) as u8, (i % 256) as u8).into(),
            port: 5000,
        })
        .collect();
    let (mut net, c) = pair_with(6, &rooms);
    say(&mut net, c, "connect");
    let lines = shown(&say(&mut net, c, "getdir"));
    assert_eq!(lines.len(), n + 2, "{lines:#?}");
    assert_eq!(
        lines[0],
        format!("{:<32}  {:<15}  PORT   ACCESS", "ROOM", "ADDRESS")
    );
    for (i, row) in lines[1..=n].iter().enumerate() {
        let expected = format!(
            "{:<32}  {:<15}  5000   open",
            format!("room{i:04}"),
            format!("239.1.{}.{}", i / 256, i % 256)
        );
        assert_eq!(row, &expected);
    }
    assert_eq!(lines[n + 1], format!("({n} rooms)"));
    assert!(net.client(c).ready_for_input());
}

#[test]
fn makeroom_and_deleteroom() {
    let (mut net, c) = pair_with(7, &[]);
    say(&mut net, c, "connect");
    let out = say(&mut net, c, "makeroom lobby 239.1.1.1 5000");
    let acts = actions(&out);
    assert_eq!(acts[0], line("makeroom lobby 239.1.1.1 5000\n"));
    // The token the server answered goes to the host to keep.
    match &acts[1..] {
        [
            Output::OwnerToken {
                server,
                room,
                token,
            },
        ] => {
            assert_eq!(
                (server.as_str(), room.as_str()),
                ("localhost:5577", "lobby")
            );
            assert!(crate::owner::is_valid_token(token), "{token}");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        all_shown(&out),
        "Room lobby created: multicast group 239.1.1.1 port 5000. Type 'chat lobby' to enter it."
    );
    let out = say(&mut net, c, "makeroom Lobby 239.1.1.2 5000");
    assert_eq!(
        all_shown(&out),
        "Room Lobby was not created: a room named 'lobby' exists already; pick another name"
    );
    let out = say(&mut net, c, "deleteroom lobby");
    assert_eq!(actions(&out), [line("deleteroom lobby\n")]);
    assert_eq!(all_shown(&out), "Room lobby deleted.");
    let out = say(&mut net, c, "deleteroom lobby");
    assert_eq!(
        all_shown(&out),
        "Room lobby was not deleted: no room has that name; 'getdir' lists the rooms"
    );
    assert!(net.client(c).ready_for_input());
    assert_eq!(net.client(c).mode(), Mode::Connected);
    assert!(net.server.as_ref().unwrap().directory().is_empty());

    // With a name only, the server picks the address; the client says
    // which, from the OK line.
    let out = say(&mut net, c, "makeroom den");
    let acts = actions(&out);
    assert_eq!(acts[0], line("makeroom den\n"));
    // Its token is kept as for a room made with an address.
    assert!(
        matches!(&acts[1..], [Output::OwnerToken { room, .. }] if room.as_str() == "den"),
        "{acts:?}"
    );
    let shown = all_shown(&out);
    assert!(
        shown.starts_with("Room den created: multicast group 239.255.")
            && shown.contains(" port 4"),
        "{shown}"
    );
    // An OK with more words after the room (a newer server), or without
    // the room at all, still reads well.
    let mut h = hostile_connected();
    user(&mut h, 13, "makeroom six");
    let out = hostile_sends(&mut h, 14, b"OK created six ff15::1:7 40002 more words\n");
    assert_eq!(
        all_shown(&out),
        "Room six created: multicast group ff15::1:7 port 40002. Type 'chat six' to enter it."
    );
    user(&mut h, 15, "makeroom odd");
    let out = hostile_sends(&mut h, 16, b"OK\n");
    assert_eq!(
        all_shown(&out),
        "Room odd created. Type 'chat odd' to enter it."
    );

    // An error code the client does not know still reads well.
    let mut c = hostile_connected();
    user(&mut c, 13, "getdir");
    let out = hostile_sends(&mut c, 14, b"ERR whatever something new went wrong\n");
    assert_eq!(
        all_shown(&out),
        "Could not list the rooms: something new went wrong"
    );
    assert!(c.ready_for_input());
    assert_eq!(c.mode(), Mode::Connected);
}

#[test]
fn bad_commands_are_caught_before_sending() {
    let (mut net, c) = pair_connected();
    for (cmd, msg) in [
        (
            "makeroom lobby 239.1.1.1",
            "usage: makeroom <name> [<address> <port>] [private <salt> <verifier>]",
        ),
        (
            "makeroom a ff02::1 5000",
            "is not an IPv6 group of admin, site or organisation",
        ),
        ("makeroom a 10.0.0.1 5000", "is outside 239.0.0.0/8"),
        ("makeroom a 239.0.0.1 80", "is not a usable port"),
        (
            "makeroom a 239.0.0.300 5000",
            "is not an IPv4 or IPv6 address",
        ),
        ("deleteroom", "usage: deleteroom <name>"),
        ("getdir now", "usage: getdir"),
        ("deleteroom a\u{202e}b", "'a<U+202E>b' is not a room name"),
    ] {
        let out = say(&mut net, c, cmd);
        assert_eq!(actions(&out), [], "{cmd}");
        assert!(all_shown(&out).contains(msg), "{cmd}: {out:?}");
    }
    // ping is passed through; its answer is silent.
    let out = say(&mut net, c, "ping");
    assert_eq!(out, [line("ping\n")]);
    assert!(net.client(c).ready_for_input());
}

#[test]
fn replies_may_come_in_any_pieces() {
    // Bytes a server might send (CR LF, any cuts), fed one at a time.
    let mut c = hostile_connected();
    user(&mut c, 5, "getdir");
    let reply = b"OK 2 rooms\r\nb 239.1.1.2 5001 private\r\na 239.1.1.1 5000 open\n.\n";
    let mut out = Vec::new();
    for b in reply {
        out.extend(hostile_sends(&mut c, 6, &[*b]));
    }
    assert_eq!(
        shown(&out),
        [
            "ROOM  ADDRESS    PORT   ACCESS",
            "b     239.1.1.2  5001   private",
            "a     239.1.1.1  5000   open",
            "(2 rooms)"
        ]
    );
}

#[test]
fn a_refused_deleteroom_says_what_to_do() {
    let (mut net, alice) = pair_with(9, &[]);
    let bob = net.add_client(ClientConfig::new(
        addr(SERVER),
        5577,
        ChatName::new("Bob").unwrap(),
    ));
    say(&mut net, alice, "connect");
    say(&mut net, bob, "connect");
    say(&mut net, alice, "makeroom lobby 239.1.1.1 5000");
    let out = say(&mut net, bob, "deleteroom lobby");
    let shown = all_shown(&out);
    assert!(
        shown.starts_with("Room lobby was not deleted: only the owner of room 'lobby'"),
        "{shown}"
    );
    assert!(
        shown.ends_with(
            "This client sends the token of a room it made from this account by itself; \
             from elsewhere, give the token 'makeroom' answered: deleteroom lobby <token>."
        ),
        "{shown}"
    );
    // The maker needs no token.
    let out = say(&mut net, alice, "deleteroom lobby");
    assert_eq!(all_shown(&out), "Room lobby deleted.");
}
