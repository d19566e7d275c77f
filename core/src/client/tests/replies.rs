//! The server misbehaving or going away, and the reply timers.

use super::*;

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
