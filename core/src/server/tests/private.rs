//! Private rooms in the directory: `salt`, the private `makeroom`,
//! `getroom`.

use super::*;
use crate::privacy::{KEY_TEXT, Salt, Verifier};
use crate::wire::Privacy;

/// A verifier as a client would send it (its value is the maker's
/// business: the server keeps and hands it out as given).
const VERIFIER: &str = "dmVyaWZpZXItdmVyaWZpZQ";

/// Sends `salt` and returns the salt answered.
fn salt(host: &mut Host, conn: &mut Connection) -> String {
    let reply = host.feed(conn, b"salt\n");
    let salt = reply
        .strip_prefix("OK salt=")
        .and_then(|s| s.strip_suffix('\n'))
        .unwrap_or_else(|| panic!("{reply:?}"));
    assert_eq!(salt.len(), KEY_TEXT, "{reply:?}");
    assert!(Salt::parse(salt).is_some(), "{reply:?}");
    salt.into()
}

const BADSALT: &str = "ERR badsalt that salt was not given to this connection by 'salt'; send \
                       'salt', derive the key with the salt it answers, and send makeroom again\n";

#[test]
fn salt_answers_a_fresh_salt_from_the_seeded_generator() {
    let mut host = Host::new();
    host.server.seed_random([5; 32]);
    let mut conn = host.connect();
    let a = salt(&mut host, &mut conn);
    let b = salt(&mut host, &mut conn);
    assert_ne!(a, b);
    // The verb in any case; arguments are a usage error.
    assert!(host.feed(&mut conn, b"SaLt\n").starts_with("OK salt="));
    assert_eq!(
        host.feed(&mut conn, b"salt please\n"),
        "ERR usage usage: salt\n"
    );
    // The same seed gives the same salts: they come from that generator.
    let mut again = Host::new();
    again.server.seed_random([5; 32]);
    let mut conn = again.connect();
    assert_eq!(salt(&mut again, &mut conn), a);
    let mut other = Host::new();
    other.server.seed_random([6; 32]);
    let mut conn = other.connect();
    assert_ne!(salt(&mut other, &mut conn), a);
}

#[test]
fn a_private_makeroom_needs_the_salt_this_connection_was_given_last() {
    let mut host = Host::new();
    host.server.seed_random([1; 32]);
    let mut conn = host.connect();
    let mut other = host.connect();
    let given = Salt([9; 16]).to_text();
    // No salt asked for yet.
    let line = format!("makeroom a 239.1.1.1 5000 private {given} {VERIFIER}\n");
    assert_eq!(host.feed(&mut conn, line.as_bytes()), BADSALT);
    let events = host.take_events();
    assert_eq!(
        events.last(),
        Some(&Event::Answered {
            conn: conn.id(),
            command: Some(CommandKind::MakeRoom),
            room: name("a"),
            error: Some(ErrorCode::BadSalt),
        })
    );
    // A salt, but not the one given.
    let first = salt(&mut host, &mut conn);
    assert_eq!(host.feed(&mut conn, line.as_bytes()), BADSALT);
    // A second `salt` replaces the first.
    let second = salt(&mut host, &mut conn);
    let with = |salt: &str, name: &str| format!("makeroom {name} private {salt} {VERIFIER}\n");
    assert_eq!(host.feed(&mut conn, with(&first, "a").as_bytes()), BADSALT);
    // Another connection's salt is not this one's.
    assert_eq!(
        host.feed(&mut other, with(&second, "a").as_bytes()),
        BADSALT
    );
    assert!(host.directory_is_empty());
    let made = host.feed(&mut conn, with(&second, "a").as_bytes());
    assert!(made.starts_with("OK created a 239.255."), "{made}");
    assert!(made.ends_with(" private\n"), "{made}");
    // Used up: the same salt again is refused, for any room.
    assert_eq!(host.feed(&mut conn, with(&second, "b").as_bytes()), BADSALT);
    // The directory keeps the salt and the verifier.
    let (_, privacy) = host.server.directory().get_with_privacy("A").unwrap();
    assert_eq!(
        privacy,
        Some(&Privacy {
            salt: Salt::parse(&second).unwrap(),
            verifier: Verifier::parse(VERIFIER).unwrap(),
        })
    );
    // An open makeroom neither needs nor uses a salt.
    let third = salt(&mut host, &mut conn);
    assert!(
        host.feed(&mut conn, b"makeroom open 239.1.1.1 5000\n")
            .starts_with("OK created open 239.1.1.1 5000")
    );
    let line = format!("makeroom c 239.1.1.3 5000 PRIVATE {third} {VERIFIER}\n");
    assert_eq!(
        host.feed(&mut conn, line.as_bytes()),
        "OK created c 239.1.1.3 5000 private\n"
    );
}

impl Host {
    fn directory_is_empty(&self) -> bool {
        self.server.directory().is_empty()
    }
}

#[test]
fn checks_come_in_order_usage_name_address_port_salt_quota_directory() {
    let config = ServerConfig {
        commands_per_second: 0,
        max_rooms_per_client: 1,
        ..ServerConfig::default()
    };
    let mut host = Host::with_quotas(config, Directory::new());
    let peer = core::net::IpAddr::from([10, 0, 0, 1]);
    let mut conn = Connection::with_peer(host.now, ConnId(50), &config, peer);
    assert_eq!(host.drain(&mut conn), GREETING);
    let not_given = Salt([3; 16]).to_text();
    let bad_name = "n".repeat(33);
    // A malformed salt or verifier is a usage error, whatever else is wrong.
    let reply = host.feed(
        &mut conn,
        format!("makeroom {bad_name} private short {VERIFIER}\n").as_bytes(),
    );
    assert!(
        reply.starts_with("ERR usage 'short' is not a salt"),
        "{reply}"
    );
    let reply = host.feed(
        &mut conn,
        format!("makeroom x 1.2.3.4 80 private {not_given} {VERIFIER}=\n").as_bytes(),
    );
    assert!(reply.starts_with("ERR usage '"), "{reply}");
    assert!(reply.contains("is not a verifier"), "{reply}");
    // Then the name, the address and the port, before the salt.
    let cases = [
        (format!("makeroom {bad_name} private"), "ERR badname "),
        ("makeroom x 1.2.3.4 5000 private".into(), "ERR badaddr "),
        ("makeroom x 239.1.1.1 80 private".into(), "ERR badport "),
        ("makeroom x private".into(), "ERR badsalt "),
    ];
    for (head, expected) in cases {
        let line = format!("{head} {not_given} {VERIFIER}\n");
        let reply = host.feed(&mut conn, line.as_bytes());
        assert!(reply.starts_with(expected), "{line:?}: {reply}");
    }
    // The salt before the quota: fill the quota of one room.
    assert!(
        host.feed(&mut conn, b"makeroom taken 239.1.1.1 5000\n")
            .starts_with("OK created")
    );
    let line = format!("makeroom x private {not_given} {VERIFIER}\n");
    assert_eq!(host.feed(&mut conn, line.as_bytes()), BADSALT);
    let given = salt(&mut host, &mut conn);
    let line = format!("makeroom x private {given} {VERIFIER}\n");
    let reply = host.feed(&mut conn, line.as_bytes());
    assert!(reply.starts_with("ERR quota rooms:"), "{reply}");
    // The quota before the directory's checks; a refusal keeps the salt.
    let line = format!("makeroom TAKEN private {given} {VERIFIER}\n");
    let reply = host.feed(&mut conn, line.as_bytes());
    assert!(reply.starts_with("ERR quota rooms:"), "{reply}");
    assert_eq!(
        host.feed(&mut conn, b"deleteroom taken\n"),
        "OK deleted taken\n"
    );
    let mut other = host.connect();
    host.feed(&mut other, b"makeroom busy 239.1.1.1 5000\n");
    let line = format!("makeroom Busy private {given} {VERIFIER}\n");
    let reply = host.feed(&mut conn, line.as_bytes());
    assert!(reply.starts_with("ERR exists "), "{reply}");
    let line = format!("makeroom x 239.1.1.1 5000 private {given} {VERIFIER}\n");
    let reply = host.feed(&mut conn, line.as_bytes());
    assert!(reply.starts_with("ERR inuse "), "{reply}");
    // Still this connection's salt: the next try succeeds with it.
    let line = format!("makeroom x 239.1.1.9 5000 private {given} {VERIFIER}\n");
    assert_eq!(
        host.feed(&mut conn, line.as_bytes()),
        "OK created x 239.1.1.9 5000 private\n"
    );
}

#[test]
fn getroom_answers_open_private_and_missing_rooms() {
    let mut host = Host::new();
    let mut conn = host.connect();
    host.feed(&mut conn, b"makeroom Lobby 239.1.2.3 5000\n");
    let given = salt(&mut host, &mut conn);
    let line = format!("makeroom Secret 239.1.2.5 6000 private {given} {VERIFIER}\n");
    host.feed(&mut conn, line.as_bytes());
    host.take_events();
    assert_eq!(
        host.feed(&mut conn, b"getroom Lobby\n"),
        "OK room Lobby 239.1.2.3 5000 open\n"
    );
    // Matched as deleteroom matches: ignoring case, in any case of verb.
    assert_eq!(
        host.feed(&mut conn, b"GETROOM secret\n"),
        format!("OK room Secret 239.1.2.5 6000 private salt={given} verifier={VERIFIER}\n")
    );
    assert_eq!(
        host.feed(&mut conn, b"getroom nowhere\n"),
        "ERR noroom no room has that name; 'getdir' lists the rooms\n"
    );
    assert_eq!(
        host.take_events(),
        [
            answered(Some(CommandKind::GetRoom), name("Lobby"), None),
            answered(Some(CommandKind::GetRoom), name("secret"), None),
            answered(
                Some(CommandKind::GetRoom),
                name("nowhere"),
                Some(ErrorCode::NoSuchRoom)
            ),
        ]
        .map(|mut e| {
            if let Event::Answered { conn: c, .. } = &mut e {
                *c = conn.id();
            }
            e
        })
    );
    assert_eq!(
        host.feed(&mut conn, b"getroom\n"),
        "ERR usage usage: getroom <name>\n"
    );
    assert_eq!(
        host.feed(&mut conn, b"getroom a b\n"),
        "ERR usage usage: getroom <name>\n"
    );
    let reply = host.feed(
        &mut conn,
        format!("getroom {}\n", "n".repeat(33)).as_bytes(),
    );
    assert!(reply.starts_with("ERR badname '"), "{reply}");
    // getdir is unchanged: private rooms are listed as any other.
    assert_eq!(
        host.feed(&mut conn, b"getdir\n"),
        "OK 2 rooms\nLobby 239.1.2.3 5000\nSecret 239.1.2.5 6000\n.\n"
    );
    // `getdir full` says which is which.
    assert_eq!(
        host.feed(&mut conn, b"getdir full\n"),
        "OK 2 rooms\nLobby 239.1.2.3 5000 open\nSecret 239.1.2.5 6000 private\n.\n"
    );
    // Deleting a private room removes its salt and verifier with it.
    assert_eq!(
        host.feed(&mut conn, b"deleteroom SECRET\n"),
        "OK deleted Secret\n"
    );
    assert!(
        host.feed(&mut conn, b"getroom secret\n")
            .starts_with("ERR noroom")
    );
    assert_eq!(host.server.directory().privacy(), [None]);
}

#[test]
fn the_longest_getroom_and_created_replies_fit_a_line() {
    let mut host = Host::new();
    let mut conn = host.connect();
    let long = "n".repeat(crate::limits::MAX_ROOM_NAME);
    let group = "ff15:ffff:ffff:ffff:ffff:ffff:ffff:ffff";
    assert_eq!(group.len(), crate::limits::MAX_ADDRESS_TEXT);
    let given = salt(&mut host, &mut conn);
    // 65534: the highest port of a private room (65535 has no control port).
    let line = format!("makeroom {long} {group} 65534 private {given} {VERIFIER}\n");
    assert_eq!(line.len(), 142, "the longest makeroom");
    let reply = feed_raw(&mut host, &mut conn, &line);
    assert_eq!(
        reply.len(),
        11 + 32 + 1 + 39 + 1 + 5 + 7 + 22 + 8 + 1,
        "{reply}"
    );
    assert!(reply.ends_with(" private\n"), "{reply}");
    let reply = host.feed(&mut conn, format!("getroom {long}\n").as_bytes());
    // `OK room `, name, address, port, ` private salt=`, 22, ` verifier=`,
    // 22, LF: 155 bytes, far below MAX_LINE (nothing is cut).
    assert_eq!(reply.len(), 8 + 32 + 1 + 39 + 1 + 5 + 14 + 22 + 10 + 22 + 1);
    assert_eq!(reply.len(), 155);
    assert!(reply.len() < MAX_LINE);
    assert_eq!(
        reply,
        format!("OK room {long} {group} 65534 private salt={given} verifier={VERIFIER}\n")
    );
}

#[test]
fn a_private_room_waiting_for_the_disk_is_not_there_for_getroom() {
    let mut host = Host::with(durable_config(), Directory::new());
    host.server.seed_random([2; 32]);
    host.now = secs(10);
    let mut maker = host.connect();
    let mut other = host.connect();
    let given = salt(&mut host, &mut maker);
    let make = format!("makeroom p 239.9.9.9 9000 private {given} {VERIFIER}\n");
    assert_eq!(host.feed(&mut maker, make.as_bytes()), "");
    assert!(maker.is_waiting());
    // As in getdir: not there until stored, and no waiting for it.
    assert!(
        host.feed(&mut other, b"getroom p\n")
            .starts_with("ERR noroom")
    );
    assert!(!other.is_waiting());
    // Not stored in time: undone, and the salt is kept for another try.
    let deadline = secs(10) + PERSIST_TIMEOUT;
    let out = host.server_timeout(deadline, &mut [&mut maker, &mut other]);
    assert!(out[0].starts_with("ERR unavailable"), "{out:?}");
    assert_eq!(host.feed(&mut maker, make.as_bytes()), "");
    let out = host.persist(&mut [&mut maker, &mut other]);
    assert_eq!(out[0], "OK created p 239.9.9.9 9000 private\n");
    assert_eq!(
        host.feed(&mut other, b"getroom P\n"),
        format!("OK room p 239.9.9.9 9000 private salt={given} verifier={VERIFIER}\n")
    );
    // Stored: the salt is used up.
    let again = format!("makeroom q private {given} {VERIFIER}\n");
    assert_eq!(host.feed(&mut maker, again.as_bytes()), BADSALT);
    // A delete undone brings the room back private.
    host.now = secs(100);
    assert_eq!(host.feed(&mut maker, b"deleteroom p\n"), "");
    let out = host.server_timeout(secs(100) + PERSIST_TIMEOUT, &mut [&mut maker]);
    assert!(out[0].starts_with("ERR unavailable"), "{out:?}");
    assert_eq!(host.server.poll_persist(), None, "nothing changed on disk");
    for dir in [host.server.directory(), host.server.staged()] {
        let (_, privacy) = dir.get_with_privacy("p").unwrap();
        assert_eq!(privacy.map(|p| p.salt), Salt::parse(&given));
    }
}

#[test]
fn makeroom_with_a_name_only_and_private_picks_from_the_pool() {
    let mut host = Host::new();
    host.server.set_allocator(super::one_slot_pool());
    let mut conn = host.connect();
    let given = salt(&mut host, &mut conn);
    let line = format!("makeroom first private {given} {VERIFIER}\n");
    let reply = host.feed(&mut conn, line.as_bytes());
    assert!(reply.starts_with("OK created first "), "{reply}");
    assert!(reply.ends_with(" private\n"), "{reply}");
    let (room, privacy) = host.server.directory().get_with_privacy("first").unwrap();
    assert!(privacy.is_some());
    let room = room.clone();
    // The pool is full now: the next is refused, and keeps its salt.
    let given = salt(&mut host, &mut conn);
    let line = format!("makeroom second private {given} {VERIFIER}\n");
    let reply = host.feed(&mut conn, line.as_bytes());
    assert!(reply.starts_with("ERR full no free group/port"), "{reply}");
    let line = format!(
        "makeroom second {} {} private {given} {VERIFIER}\n",
        room.group,
        room.port + 2
    );
    assert!(
        host.feed(&mut conn, line.as_bytes())
            .starts_with("OK created second")
    );
}

#[test]
fn a_private_room_at_port_65535_is_refused_it_has_no_control_port() {
    let mut host = Host::new();
    let mut conn = host.connect();
    let given = salt(&mut host, &mut conn);
    let line = format!("makeroom top 239.1.1.1 65535 private {given} {VERIFIER}\n");
    let reply = host.feed(&mut conn, line.as_bytes());
    assert!(
        reply.starts_with("ERR badport 65535 cannot be a private room's port"),
        "{reply}"
    );
    assert!(reply.contains("port + 1"), "{reply}");
    assert!(host.directory_is_empty());
    // The salt is kept: 65534 (its control port is 65535) is fine.
    let line = format!("makeroom top 239.1.1.1 65534 private {given} {VERIFIER}\n");
    assert_eq!(
        host.feed(&mut conn, line.as_bytes()),
        "OK created top 239.1.1.1 65534 private\n"
    );
    // An open room may still take 65535.
    assert!(
        host.feed(&mut conn, b"makeroom open 239.1.1.9 65535\n")
            .starts_with("OK created open 239.1.1.9 65535")
    );
}

#[test]
fn the_fuzz_dictionarys_salt_is_the_first_a_server_seeded_with_sevens_answers() {
    // fuzz/dict/crdp.dict and the server_bytes seeds hold this salt, so
    // that the fuzzer's private makeroom can succeed: its server is seeded
    // with [7; 32].
    let mut host = Host::new();
    host.server.seed_random([7; 32]);
    let mut conn = host.connect();
    assert_eq!(salt(&mut host, &mut conn), "9ACSeFeq9kEU9WG6rLN5cA");
    let line = format!("makeroom p private 9ACSeFeq9kEU9WG6rLN5cA {VERIFIER}\n");
    assert!(
        host.feed(&mut conn, line.as_bytes())
            .ends_with(" private\n")
    );
}

// ---- getdir full ----

#[test]
fn getdir_full_gives_each_rooms_kind() {
    let mut host = Host::new();
    let mut conn = host.connect();
    assert_eq!(host.feed(&mut conn, b"getdir full\n"), "OK 0 rooms\n.\n");
    host.feed(&mut conn, b"makeroom lobby 239.1.2.3 5000\n");
    let given = salt(&mut host, &mut conn);
    let line = format!("makeroom Attic private {given} {VERIFIER}\n");
    let made = host.feed(&mut conn, line.as_bytes());
    let [_, _, _, group, port, ..] = made.split(' ').collect::<Vec<_>>()[..] else {
        panic!("{made}");
    };
    host.take_events();
    let want = format!("OK 2 rooms\nAttic {group} {port} private\nlobby 239.1.2.3 5000 open\n.\n");
    // `full` in any case, as the verb; blanks as anywhere.
    for line in [
        "getdir full\n",
        "GETDIR FULL\n",
        "getdir Full\r\n",
        " getdir\tfull \n",
    ] {
        assert_eq!(host.feed(&mut conn, line.as_bytes()), want, "{line:?}");
    }
    let mut want_event = answered(Some(CommandKind::GetDir), None, None);
    if let Event::Answered { conn: c, .. } = &mut want_event {
        *c = conn.id();
    }
    assert_eq!(host.take_events(), vec![want_event; 4]);
    // Any other word, or more words, is a usage error that shows the form.
    for line in [
        "getdir fully\n",
        "getdir full full\n",
        "getdir all\n",
        "getdir 1\n",
    ] {
        assert_eq!(
            host.feed(&mut conn, line.as_bytes()),
            "ERR usage usage: getdir [full]\n",
            "{line:?}"
        );
    }
    // One room: `room`, as `getdir` says it.
    host.feed(&mut conn, b"deleteroom lobby\n");
    assert_eq!(
        host.feed(&mut conn, b"getdir full\n"),
        format!("OK 1 room\nAttic {group} {port} private\n.\n")
    );
}

#[test]
fn the_longest_getdir_full_line_is_sent_whole() {
    use crate::limits::MAX_FULL_ROOM_LINE;
    let mut host = Host::new();
    let mut conn = host.connect();
    let long = "n".repeat(crate::limits::MAX_ROOM_NAME);
    let group = "ff15:ffff:ffff:ffff:ffff:ffff:ffff:ffff";
    let given = salt(&mut host, &mut conn);
    // 65534: a private room needs port + 1; as long as 65535 all the same.
    let line = format!("makeroom {long} {group} 65534 private {given} {VERIFIER}\n");
    assert!(
        host.feed(&mut conn, line.as_bytes())
            .starts_with("OK created")
    );
    let reply = host.feed(&mut conn, b"getdir full\n");
    let row = format!("{long} {group} 65534 private\n");
    assert_eq!(row.len(), MAX_FULL_ROOM_LINE);
    assert_eq!(reply, format!("OK 1 room\n{row}.\n"));
}

/// A long `getdir full` to a peer that reads a little at a time streams as
/// `getdir` does: every room once, in order, with its kind, the send buffer
/// never over its bound.
#[test]
fn a_long_full_listing_streams_with_the_kinds() {
    let rooms = 1000;
    let mut dir = Directory::new();
    for i in 0..rooms {
        let [_, _, b, c] = u32::try_from(i).unwrap().to_be_bytes();
        let privacy = (i % 3 == 0).then_some(Privacy {
            salt: Salt([1; 16]),
            verifier: Verifier([2; 16]),
        });
        let room = room(&format!("r{i:04}"), [239, 1, b, c], 5000);
        dir.insert_private(room, crate::Owner::default(), privacy)
            .unwrap();
    }
    let mut host = Host::with(ServerConfig::default(), dir);
    let mut conn = host.connect();
    let input = b"getdir full\ngetdir\n";
    assert_eq!(
        conn.handle_bytes(host.now, &mut host.server, input),
        input.len()
    );
    let mut out = Vec::new();
    while !conn.poll_transmit().is_empty() {
        let pending = conn.poll_transmit();
        assert!(pending.len() <= CONN_SEND_BUF);
        let n = pending.len().min(300);
        out.extend_from_slice(&pending[..n]);
        conn.handle_sent(host.now, &mut host.server, n);
    }
    let mut want = format!("OK {rooms} rooms\n");
    for i in 0..rooms {
        let [_, _, b, c] = u32::try_from(i).unwrap().to_be_bytes();
        let kind = if i % 3 == 0 { "private" } else { "open" };
        want += &format!("r{i:04} 239.1.{b}.{c} 5000 {kind}\n");
    }
    want += ".\n";
    // The plain listing after it is as ever.
    want += &format!("OK {rooms} rooms\n");
    for i in 0..rooms {
        let [_, _, b, c] = u32::try_from(i).unwrap().to_be_bytes();
        want += &format!("r{i:04} 239.1.{b}.{c} 5000\n");
    }
    want += ".\n";
    assert!(text(out) == want, "listing garbled");
}
