//! The server misbehaving or going away, and the reply timers.

use super::*;

// ---- the server misbehaving or going away ----

#[test]
fn server_lost_while_connected() {
    let (mut net, c) = pair_connected();
    let mark = net.mark(c);
    net.server_closes_all();
    net.run_until_idle();
    let out = net.since(c, mark);
    assert_eq!(actions(&out), [Output::Close, Output::Prompt(Prompt::Main)]);
    assert_eq!(
        shown(&out),
        [
            "The directory server at localhost:5577 closed the connection.",
            "Type 'connect' to reconnect."
        ]
    );
    assert!(net.client(c).ready_for_input());
    let out = say(&mut net, c, "getdir");
    assert!(all_shown(&out).contains("type 'connect' first"));
}

#[test]
fn server_lost_mid_listing() {
    let mut c = hostile_connected();
    user(&mut c, 5, "getdir");
    let out = hostile_sends(&mut c, 6, b"OK 2 rooms\na 239.1.1.1 5000 open\n");
    assert_eq!(shown(&out), Vec::<String>::new());
    c.handle_server_closed(t(7));
    let out = drain(&mut c);
    assert_eq!(actions(&out), [Output::Close, Output::Prompt(Prompt::Main)]);
    assert!(c.ready_for_input());
}

#[test]
fn server_lost_while_chatting_keeps_the_chat() {
    let (mut net, c) = pair_in_chat();
    let mark = net.mark(c);
    net.server_closes_all();
    net.run_until_idle();
    let out = net.since(c, mark);
    assert_eq!(actions(&out), [Output::Close]);
    assert_eq!(
        shown(&out),
        [
            "The directory server at localhost:5577 closed the connection.",
            "You are still in the chat room; chatting does not need the server."
        ]
    );
    assert_eq!(net.client(c).mode(), Mode::Chat);
    let out = act(&mut net, c, Input::LeaveChat);
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
        let mut c = hostile_connected();
        if i == 4 {
            user(&mut c, 5, "getdir");
        }
        let out = hostile_sends(&mut c, 6, bytes);
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
        assert_eq!(hostile_sends(&mut c, 7, b"OK more\n"), []);
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
        let mut c = hostile_connected();
        if i != 3 {
            user(&mut c, 5, "getdir");
        }
        let out = hostile_sends(&mut c, 6, bytes);
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
        let out = hostile_sends(&mut c, 3, greeting);
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
    let out = hostile_sends(&mut c, 3, b"OK CRDP/1\n");
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
            b"OK 3 rooms\nlobby 239.1.1.1 5000 open\n",
            " The room list did not arrive in full.",
        ),
    ];
    for (command, partial, note) in cases {
        let mut c = hostile_connected();
        user(&mut c, 5, command);
        assert_eq!(hostile_sends(&mut c, 6, partial), []);
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
    // Idle: a ping after the keepalive interval, answered silently by the
    // real server, which so never closes the connection as idle.
    let (mut net, c) = pair_connected();
    let at = net.client(c).poll_timeout().unwrap();
    assert!(at > net.now() && at <= net.now() + KEEPALIVE_INTERVAL);
    let mark = net.mark(c);
    net.advance(at.saturating_since(net.now()) - Duration::from_millis(1));
    assert_eq!(net.since(c, mark), []);
    net.advance(Duration::from_millis(1));
    // A ping in flight does not hold up the user.
    assert_eq!(net.since(c, mark), [line("ping\n")]);
    assert!(net.client(c).ready_for_input());
    assert_eq!(net.client(c).poll_timeout(), Some(at + REPLY_TIMEOUT));
    net.run_until_idle();
    assert_eq!(net.since(c, mark), [line("ping\n")]);
    assert_eq!(net.client(c).poll_timeout(), Some(at + KEEPALIVE_INTERVAL));
    net.advance(3 * KEEPALIVE_INTERVAL);
    assert_eq!(net.client(c).mode(), Mode::Connected);
    assert!(
        net.since(c, mark).iter().all(|o| *o == line("ping\n")),
        "{:?}",
        net.since(c, mark)
    );

    // A request not answered in time closes the connection.
    let mut c = hostile_connected();
    let later = 20;
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
    let mut c = hostile_connected();
    user(&mut c, 100_000, "getdir");
    let deadline = c.poll_timeout().unwrap();
    c.handle_timeout(t(5));
    assert_eq!(drain(&mut c), []);
    assert_eq!(c.poll_timeout(), Some(deadline));
}

#[test]
fn a_listing_longer_than_any_directory_is_a_protocol_error() {
    use crate::limits::MAX_ROOMS;
    let mut c = hostile_connected();
    user(&mut c, 5, "getdir");
    let mut bytes = b"OK 0 rooms\n".to_vec();
    // MAX_ROOMS lines are a full directory; distinct rooms, as a server lists.
    for i in 0..MAX_ROOMS {
        bytes.extend(format!("r{i:05} 239.2.{}.{} 5000 open\n", i / 256, i % 256).bytes());
    }
    let out = hostile_sends(&mut c, 6, &bytes);
    assert!(
        !actions(&out).contains(&Output::Close),
        "a full directory is fine"
    );
    // One more, and the server is not a directory server.
    let out = hostile_sends(&mut c, 7, b"extra 239.3.0.1 5000 open\n");
    assert_eq!(actions(&out), [Output::Close, Output::Prompt(Prompt::Main)]);
    assert!(
        all_shown(&out).contains("more rooms than a directory can hold"),
        "{out:?}"
    );
}

/// A scripted server at [`SERVER`] and client 0 connected to it (greeted
/// with the real greeting), in the simulated network.
fn hostile_pair() -> (Net, usize) {
    let mut net = Net::new(9);
    net.add_hostile_server(SERVER);
    let c = net.add_client(config());
    net.type_line(c, "connect");
    net.run_until_idle();
    net.hostile_send(&real_greeting());
    net.run_until_idle();
    assert_eq!(net.client(c).mode(), Mode::Connected);
    (net, c)
}

/// When client `c` carried out `output` last.
fn when(net: &Net, c: usize, output: &Output) -> Instant {
    net.clients[c]
        .log
        .iter()
        .rev()
        .find(|(_, o)| o == output)
        .map(|(at, _)| *at)
        .unwrap_or_else(|| net.fail("no such output"))
}

#[test]
fn a_trickled_listing_is_bounded_as_a_whole() {
    use crate::limits::LISTING_TIMEOUT;
    let (mut net, c) = hostile_pair();
    let mark = net.mark(c);
    net.type_line(c, "getdir");
    net.run_until_idle();
    let sent = when(&net, c, &line("getdir full\n"));
    assert!(net.hostile.received.ends_with(b"getdir full\n"));
    // One row every 8 s: each comes well within the first-line timeout, so
    // a timer restarted at every row would wait for all 4,096 (9 hours).
    net.hostile_send(b"OK 4096 rooms\n");
    let mut rows = 0;
    while net.client(c).mode() == Mode::Connected {
        assert!(rows < 4096, "the client never gave up");
        net.hostile_send(
            format!("r{rows} 239.1.{}.{} 5000 open\n", rows / 256, rows % 256).as_bytes(),
        );
        net.advance(Duration::from_secs(8));
        rows += 1;
    }
    assert_eq!(when(&net, c, &Output::Close), sent + LISTING_TIMEOUT);
    assert_eq!(rows, 4, "rows at 0, 8, 16 and 24 s; the bound is 30 s");
    let out = net.since(c, mark);
    assert_eq!(
        all_shown(&out),
        "The directory server at localhost:5577 did not finish its reply within 30 s, so the \
         connection was closed. The room list did not arrive in full.\nType 'connect' to \
         reconnect."
    );
    assert!(net.client(c).ready_for_input());
}

#[test]
fn quit_works_at_once_while_a_reply_trickles_in() {
    let (mut net, c) = hostile_pair();
    net.type_line(c, "getdir");
    net.hostile_send(b"OK 4096 rooms\nr0 239.1.1.1 5000 open\n");
    net.advance(Duration::from_secs(8));
    assert!(!net.client(c).ready_for_input());
    // Typed while the reply is still coming: not held until it ends.
    assert!(net.client(c).acts_at_once(b"quit"));
    assert!(net.client(c).acts_at_once(b" EXIT now"));
    assert!(!net.client(c).acts_at_once(b"getdir"));
    let mark = net.mark(c);
    net.type_line(c, "quit");
    let at = net.now();
    assert_eq!(actions(&net.since(c, mark)), [Output::Close, Output::Exit]);
    assert_eq!(all_shown(&net.since(c, mark)), "Goodbye.");
    assert_eq!(when(&net, c, &Output::Exit), at);

    // Ctrl-D (the end of input) too.
    let (mut net, c) = hostile_pair();
    net.type_line(c, "getdir");
    net.hostile_send(b"OK 4096 rooms\nr0 239.1.1.1 5000 open\n");
    net.advance(Duration::from_secs(8));
    let at = net.now();
    net.input(c, Input::End);
    assert_eq!(when(&net, c, &Output::Exit), at);

    // Another line waits for the reply, as before.
    let (mut net, c) = hostile_pair();
    net.type_line(c, "getdir");
    net.hostile_send(b"OK 1 room\n");
    net.run_until_idle();
    let mark = net.mark(c);
    net.type_line(c, "bye");
    assert_eq!(net.since(c, mark), []);
    net.hostile_send(b"r0 239.1.1.1 5000 open\n.\n");
    net.run_until_idle();
    let out = net.since(c, mark);
    assert_eq!(shown(&out).last().map(String::as_str), Some("(1 room)"));
    assert_eq!(actions(&out), [line("bye\n")]);
}

#[test]
fn a_slow_listing_that_ends_within_the_bound_is_shown() {
    use crate::limits::LISTING_TIMEOUT;
    let (mut net, c) = hostile_pair();
    let mark = net.mark(c);
    net.type_line(c, "getdir");
    net.run_until_idle();
    let sent = when(&net, c, &line("getdir full\n"));
    net.hostile_send(b"OK 2 rooms\na 239.1.1.1 5000 open\n");
    net.advance(Duration::from_secs(9));
    net.hostile_send(b"b 239.1.1.2 5000 private\n");
    // The end arrives 1 ms before the bound (the link takes LINK_DELAY).
    let end_at = sent + (LISTING_TIMEOUT - Duration::from_millis(1));
    net.advance(end_at.saturating_since(net.now()) - crate::sim::LINK_DELAY);
    net.hostile_send(b".\n");
    net.run_until_idle();
    let out = net.since(c, mark);
    assert_eq!(
        shown(&out),
        [
            "ROOM  ADDRESS    PORT   ACCESS",
            "a     239.1.1.1  5000   open",
            "b     239.1.1.2  5000   private",
            "(2 rooms)"
        ]
    );
    assert_eq!(net.client(c).mode(), Mode::Connected);
    // And the connection lives on: nothing closes it at the old bound.
    net.advance(LISTING_TIMEOUT);
    assert_eq!(net.client(c).mode(), Mode::Connected);
}
