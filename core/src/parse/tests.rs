//! Parser tests: every command and every error at its edge, plus properties
//! (encode/parse round trip, no panic on any bytes).

use super::*;
use crate::limits::{MAX_LINE, MAX_ROOM_NAME};
use crate::privacy::{Salt, Verifier};
use crate::wire::{
    LineBuf, Privacy, RoomKind, encode_command, encode_full_room_line, encode_room_line,
};
use proptest::prelude::*;
use std::string::{String, ToString};
use std::vec;
use std::vec::Vec;

fn name(s: &str) -> RoomName {
    RoomName::try_from(s).unwrap()
}

fn room(n: &str, group: [u8; 4], port: u16) -> Room {
    Room {
        name: name(n),
        group: Ipv4Addr::from(group).into(),
        port,
    }
}

fn parse(line: &str) -> Result<Command, ParseError<'_>> {
    parse_command(line.as_bytes())
}

/// The error code of a line that must not parse.
fn code_of(line: &[u8]) -> ErrorCode {
    parse_command(line)
        .map(|c| panic!("{:?} parsed as {c:?}", String::from_utf8_lossy(line)))
        .unwrap_err()
        .code()
}

// ---- commands that parse ----

#[test]
fn every_command_parses_to_its_exact_value() {
    assert_eq!(parse("getdir"), Ok(Command::GetDir));
    assert_eq!(parse("ping"), Ok(Command::Ping));
    assert_eq!(parse("help"), Ok(Command::Help));
    assert_eq!(parse("bye"), Ok(Command::Bye));
    assert_eq!(
        parse("deleteroom Lobby"),
        Ok(Command::DeleteRoom(name("Lobby"), None))
    );
    assert_eq!(
        parse("makeroom Lobby 239.1.2.3 5000"),
        Ok(Command::MakeRoom(room("Lobby", [239, 1, 2, 3], 5000)))
    );
}

/// `getdir` takes no word or `full`, whose case is ignored as a verb's
/// (and as `private` in `makeroom`).
#[test]
fn getdir_full_is_getdir_with_one_word() {
    for line in [
        "getdir full",
        "GETDIR FULL",
        "getdir Full",
        "GetDir fULL",
        " \tgetdir\t full \t",
        "getdir full\r",
    ] {
        assert_eq!(parse(line), Ok(Command::GetDirFull), "{line:?}");
    }
    assert_eq!(Command::GetDirFull.kind(), CommandKind::GetDir);
    assert_eq!(CommandKind::GetDir.arity(), (0, 1));
    assert_eq!(
        ParseError::Usage(CommandKind::GetDir).to_string(),
        "usage: getdir [full]"
    );
    assert_eq!(
        encode_command(&Command::GetDirFull).as_str(),
        "getdir full\n"
    );
    assert_eq!(command_kind(b"getdir full"), Some(CommandKind::GetDir));
}

#[test]
fn verbs_ignore_ascii_case_but_names_keep_theirs() {
    assert_eq!(parse("GETDIR"), Ok(Command::GetDir));
    assert_eq!(parse("GetDir"), Ok(Command::GetDir));
    assert_eq!(parse("PiNg"), Ok(Command::Ping));
    assert_eq!(parse("HELP"), Ok(Command::Help));
    assert_eq!(parse("Bye"), Ok(Command::Bye));
    assert_eq!(
        parse("DELETEROOM LoBbY"),
        Ok(Command::DeleteRoom(name("LoBbY"), None))
    );
    assert_eq!(
        parse("MakeRoom MiXeD 239.0.0.1 1024"),
        Ok(Command::MakeRoom(room("MiXeD", [239, 0, 0, 1], 1024)))
    );
}

#[test]
fn blanks_are_spaces_and_tabs_in_any_number() {
    let want = Ok(Command::MakeRoom(room("a", [239, 9, 9, 9], 9999)));
    assert_eq!(parse("makeroom a 239.9.9.9 9999"), want);
    assert_eq!(parse("  makeroom   a\t239.9.9.9 \t 9999  "), want);
    assert_eq!(parse("\tmakeroom\ta\t239.9.9.9\t9999\t"), want);
    assert_eq!(parse(" \t ping \t "), Ok(Command::Ping));
}

#[test]
fn one_trailing_cr_is_a_terminator() {
    assert_eq!(parse("ping\r"), Ok(Command::Ping));
    assert_eq!(
        parse("deleteroom x\r"),
        Ok(Command::DeleteRoom(name("x"), None))
    );
    assert_eq!(
        parse("makeroom x 239.1.1.1 1024\r"),
        Ok(Command::MakeRoom(room("x", [239, 1, 1, 1], 1024)))
    );
    // Only one: a second CR, or a CR inside the line, is a control character.
    assert_eq!(parse("ping\r\r"), Err(ParseError::ControlChar));
    assert_eq!(parse("pi\rng"), Err(ParseError::ControlChar));
}

#[test]
fn blank_lines_are_empty() {
    for line in ["", " ", "\t", "  \t  ", "\r", " \r"] {
        assert_eq!(parse(line), Err(ParseError::Empty), "{line:?}");
    }
}

// ---- errors ----

#[test]
fn unknown_commands_quote_the_word() {
    assert_eq!(parse("list"), Err(ParseError::UnknownCommand("list")));
    assert_eq!(parse("  get dir"), Err(ParseError::UnknownCommand("get")));
    assert_eq!(parse("getdirs"), Err(ParseError::UnknownCommand("getdirs")));
    assert_eq!(parse("pin"), Err(ParseError::UnknownCommand("pin")));
    // Non-ASCII case folding does not apply: this is not `ping`.
    assert_eq!(parse("pİng"), Err(ParseError::UnknownCommand("pİng")));
    assert_eq!(code_of(b"list"), ErrorCode::UnknownCommand);
    assert_eq!(ErrorCode::UnknownCommand.token(), "unknown");
}

#[test]
fn wrong_argument_counts_are_usage_errors_for_every_command() {
    let cases: [(&str, CommandKind); 16] = [
        ("getdir x", CommandKind::GetDir),
        ("getdir x y z", CommandKind::GetDir),
        ("getdir full x", CommandKind::GetDir),
        ("getdir fulls", CommandKind::GetDir),
        ("getdir full\u{0131}", CommandKind::GetDir),
        ("ping x", CommandKind::Ping),
        ("help me", CommandKind::Help),
        ("bye now", CommandKind::Bye),
        ("deleteroom", CommandKind::DeleteRoom),
        ("deleteroom  \t ", CommandKind::DeleteRoom),
        ("deleteroom a b c", CommandKind::DeleteRoom),
        ("makeroom", CommandKind::MakeRoom),
        ("makeroom a 239.1.1.1", CommandKind::MakeRoom),
        // A missing name is not an empty name: the words just shift.
        ("makeroom  239.1.1.1 1024", CommandKind::MakeRoom),
        ("makeroom a 239.1.1.1 1024 x", CommandKind::MakeRoom),
        // More words than any command takes: still a usage error, not a panic.
        ("MAKEROOM a b c d e f g h i j", CommandKind::MakeRoom),
    ];
    for (line, kind) in cases {
        assert_eq!(parse(line), Err(ParseError::Usage(kind)), "{line:?}");
        assert_eq!(code_of(line.as_bytes()), ErrorCode::Usage, "{line:?}");
    }
    // The usage message shows the syntax.
    let msg = ParseError::Usage(CommandKind::MakeRoom).to_string();
    assert_eq!(
        msg,
        "usage: makeroom <name> [<address> <port>] [private <salt> <verifier>]"
    );
    // One argument: the server picks the address and port.
    assert_eq!(
        parse("makeroom a"),
        Ok(Command::AllocRoom("a".try_into().unwrap()))
    );
    assert_eq!(
        parse("makeroom \u{202e}"),
        Err(ParseError::BadName("\u{202e}"))
    );
}

#[test]
fn the_arity_is_checked_before_the_arguments() {
    // Too many words wins over a bad name: the user gets the syntax.
    let long = "n".repeat(40);
    let line = std::format!("deleteroom {long} extra-token-that-is-long enough");
    assert_eq!(
        parse(&line),
        Err(ParseError::Usage(CommandKind::DeleteRoom))
    );
}

#[test]
fn room_names_are_1_to_32_bytes_of_printable_non_blank_text() {
    let n32 = "a".repeat(MAX_ROOM_NAME);
    let n33 = "a".repeat(MAX_ROOM_NAME + 1);
    assert_eq!(
        parse(&std::format!("deleteroom {n32}")),
        Ok(Command::DeleteRoom(name(&n32), None))
    );
    assert_eq!(
        parse(&std::format!("deleteroom {n33}")),
        Err(ParseError::BadName(&n33))
    );
    assert_eq!(
        parse(&std::format!("makeroom {n33} 239.1.1.1 1024")),
        Err(ParseError::BadName(&n33))
    );

    // The limit counts bytes, not characters: 30 ASCII + 'é' (2 bytes) is
    // 32 bytes and fits; 31 + 'é' is 33 and does not, though 32 characters.
    let edge = std::format!("{}é", "a".repeat(30));
    assert_eq!(edge.len(), 32);
    assert_eq!(
        parse(&std::format!("deleteroom {edge}")),
        Ok(Command::DeleteRoom(name(&edge), None))
    );
    let over = std::format!("{}é", "a".repeat(31));
    assert_eq!((over.len(), over.chars().count()), (33, 32));
    assert_eq!(
        parse(&std::format!("deleteroom {over}")),
        Err(ParseError::BadName(&over))
    );
    // 8 four-byte characters: exactly 32 bytes.
    let emoji = "🦀".repeat(8);
    assert_eq!(
        parse(&std::format!("deleteroom {emoji}")),
        Ok(Command::DeleteRoom(name(&emoji), None))
    );
    let emoji9 = "🦀".repeat(9);
    assert_eq!(
        parse(&std::format!("deleteroom {emoji9}")),
        Err(ParseError::BadName(&emoji9))
    );

    // Whitespace other than the blanks that split words is still not allowed.
    assert_eq!(
        parse("deleteroom a\u{a0}b"),
        Err(ParseError::BadName("a\u{a0}b"))
    );
    assert_eq!(
        parse("deleteroom a\u{2028}b"),
        Err(ParseError::BadName("a\u{2028}b"))
    );
    assert_eq!(
        code_of("deleteroom a\u{3000}b".as_bytes()),
        ErrorCode::BadName
    );

    // Control characters anywhere in the line are caught before the name.
    assert_eq!(parse("deleteroom a\u{1}b"), Err(ParseError::ControlChar));
    assert_eq!(parse("deleteroom a\u{7f}b"), Err(ParseError::ControlChar));
    assert_eq!(parse("deleteroom a\u{85}b"), Err(ParseError::ControlChar));
    assert_eq!(code_of(b"deleteroom a\x1bb"), ErrorCode::Encoding);

    // An empty name cannot be written on a line (words are never empty), but
    // the validity check itself refuses it.
    assert!(!is_valid_room_name(""));
    assert!(is_valid_room_name("x"));
    assert!(!is_valid_room_name(&n33));
    assert!(!is_valid_room_name("a b"));
    assert!(!is_valid_room_name("a\tb"));
    assert!(!is_valid_room_name("a\u{0}b"));
}

#[test]
fn addresses_must_be_dotted_quads_in_239_slash_8() {
    let mk = |addr: &str| std::format!("makeroom r {addr} 5000");
    for addr in ["239.0.0.0", "239.255.255.255", "239.1.2.3"] {
        let line = mk(addr);
        let Ok(Command::MakeRoom(r)) = parse(&line) else {
            panic!("{line:?} did not parse");
        };
        assert_eq!(r.group, addr.parse::<Ipv4Addr>().unwrap());
    }
    // Not dotted quads.
    for addr in [
        "239.1.1.256",
        "256.1.1.1",
        "239.1.1",
        "239.1.1.1.1",
        "+239.1.1.1",
        "239.+1.1.1",
        "239.1.1.-1",
        "239.1.1.1.",
        ".239.1.1.1",
        "239..1.1",
        "239.1.1.1000",
        "0239.1.1.1",
        "239.1.1.x",
        "239.1.1.1:5",
        "localhost",
        "ff15::1::2",
        "ff15:1:2:3:4:5:6:7:8",
        "ff15::g",
        "[ff15::1]",
        "ff15::1%eth0",
        "ff15:0000:0000:0000:0000:0000:0000:0000:0001",
        "２３９.1.1.1",
    ] {
        let line = mk(addr);
        assert_eq!(parse(&line), Err(ParseError::BadAddress(addr)), "{addr}");
        assert_eq!(code_of(line.as_bytes()), ErrorCode::BadAddress, "{addr}");
    }
    // IPv4, but not administratively scoped multicast.
    for addr in [
        "224.0.0.1",
        "238.255.255.255",
        "240.0.0.1",
        "10.0.0.1",
        "0.0.0.0",
        "255.255.255.255",
    ] {
        let line = mk(addr);
        let ip: Ipv4Addr = addr.parse().unwrap();
        assert_eq!(
            parse(&line),
            Err(ParseError::NotAdminScoped(ip.into())),
            "{addr}"
        );
        assert_eq!(code_of(line.as_bytes()), ErrorCode::BadAddress, "{addr}");
    }
}

#[test]
fn ipv6_groups_of_admin_site_and_organisation_scope_are_rooms() {
    let mk = |addr: &str| std::format!("makeroom a {addr} 5000");
    for (addr, plain) in [
        ("ff14::1", "ff14::1"),
        ("ff15::abcd", "ff15::abcd"),
        ("FF18:0:0:0:0:0:0:7", "ff18::7"),
        ("ff15:1:2:3:4:5:6:7", "ff15:1:2:3:4:5:6:7"),
    ] {
        let Ok(Command::MakeRoom(room)) = parse(&mk(addr)) else {
            panic!("{addr} is a room group")
        };
        assert_eq!(room.group, plain.parse::<core::net::IpAddr>().unwrap());
        // The listing writes it in its usual short form, and reads it back.
        let mut line = LineBuf::new();
        encode_room_line(&room, &mut line).unwrap();
        assert_eq!(line, std::format!("a {plain} 5000\n").as_str());
        assert_eq!(parse_room_line(line.trim_end().as_bytes()), Ok(room));
    }
    // Link-local, interface-local, global, permanent or prefix-based
    // groups, and unicast, are refused with the scopes to use.
    for addr in [
        "ff12::1", "ff11::1", "ff1e::1", "ff05::1", "ff35::1", "fd00::1", "::",
    ] {
        let line = mk(addr);
        let ip: core::net::Ipv6Addr = addr.parse().unwrap();
        assert_eq!(
            parse(&line),
            Err(ParseError::NotAdminScoped(ip.into())),
            "{addr}"
        );
        assert!(
            std::format!("{}", ParseError::NotAdminScoped(ip.into()))
                .contains("ff14::/16, ff15::/16 or ff18::/16")
        );
    }
}

#[test]
fn the_longest_room_line_is_an_ipv6_one() {
    let room = Room {
        name: "x"
            .repeat(crate::limits::MAX_ROOM_NAME)
            .as_str()
            .try_into()
            .unwrap(),
        group: "ff15:ffff:ffff:ffff:ffff:ffff:ffff:ffff".parse().unwrap(),
        port: 65535,
    };
    let mut line = LineBuf::new();
    encode_room_line(&room, &mut line).unwrap();
    assert_eq!(line.len(), crate::limits::MAX_ROOM_LINE);
}

/// The longest `getdir full` line: the longest room line and `private`.
#[test]
fn the_longest_full_room_line_is_a_private_ipv6_one() {
    use crate::limits::MAX_FULL_ROOM_LINE;
    let room = Room {
        name: "x".repeat(MAX_ROOM_NAME).as_str().try_into().unwrap(),
        group: "ff15:ffff:ffff:ffff:ffff:ffff:ffff:ffff".parse().unwrap(),
        port: 65535,
    };
    let mut line = LineBuf::new();
    encode_full_room_line(&room, RoomKind::Private, &mut line).unwrap();
    assert_eq!(line.len(), MAX_FULL_ROOM_LINE);
    assert_eq!(MAX_FULL_ROOM_LINE, 87);
    assert!(line.ends_with(" 65535 private\n"), "{line}");
    let mut open = LineBuf::new();
    encode_full_room_line(&room, RoomKind::Open, &mut open).unwrap();
    assert_eq!(open.len(), MAX_FULL_ROOM_LINE - 3);
    assert_eq!(
        parse_full_room_line(line.trim_end().as_bytes()),
        Ok((room, RoomKind::Private))
    );
}

#[test]
fn full_room_lines_parse() {
    let lobby = room("Lobby", [239, 1, 2, 3], 5000);
    for (line, kind) in [
        (&b"Lobby 239.1.2.3 5000 open"[..], RoomKind::Open),
        (b"Lobby 239.1.2.3 5000 private", RoomKind::Private),
        (b"Lobby 239.1.2.3 5000 private\r", RoomKind::Private),
        (b"Lobby\t239.1.2.3  5000 open ", RoomKind::Open),
        // Words a later version adds are ignored, however many.
        (b"Lobby 239.1.2.3 5000 open a b c d e f g h", RoomKind::Open),
    ] {
        assert_eq!(
            parse_full_room_line(line),
            Ok((lobby.clone(), kind)),
            "{line:?}"
        );
    }
    for line in [
        &b"Lobby 239.1.2.3 5000"[..],
        b"Lobby 239.1.2.3 5000 ",
        b"Lobby 239.1.2.3 5000 OPEN",
        b"Lobby 239.1.2.3 5000 Private",
        b"Lobby 239.1.2.3 5000 sealed",
        b"Lobby 239.1.2.3 5000 openly",
        b".",
        b"",
    ] {
        assert_eq!(
            parse_full_room_line(line),
            Err(ParseError::BadReply),
            "{line:?}"
        );
    }
    assert_eq!(
        parse_full_room_line(b"Lobby 239.1.2.3 80 open"),
        Err(ParseError::BadPort("80"))
    );
    assert_eq!(
        parse_full_room_line(b"Lobby 224.1.2.3 5000 open"),
        Err(ParseError::NotAdminScoped(
            Ipv4Addr::new(224, 1, 2, 3).into()
        ))
    );
    assert_eq!(
        parse_full_room_line(b"\xff 239.1.2.3 5000 open"),
        Err(ParseError::NotUtf8)
    );
    // A plain `getdir` line's parser refuses a full one, as before.
    assert_eq!(
        parse_room_line(b"Lobby 239.1.2.3 5000 open"),
        Err(ParseError::BadReply)
    );
}

#[test]
fn ports_run_from_1024_to_65535() {
    let mk = |port: &str| std::format!("makeroom r 239.1.1.1 {port}");
    for (text, port) in [("1024", 1024), ("65535", 65535), ("5000", 5000)] {
        assert_eq!(
            parse(&mk(text)),
            Ok(Command::MakeRoom(room("r", [239, 1, 1, 1], port)))
        );
    }
    for text in [
        "0", "1", "1023", "65536", "99999", "100000", "001024", "-1", "+1024", "1024x", "0x400",
        "1e4",
    ] {
        let line = mk(text);
        assert_eq!(parse(&line), Err(ParseError::BadPort(text)), "{text}");
        assert_eq!(code_of(line.as_bytes()), ErrorCode::BadPort, "{text}");
    }
}

#[test]
fn the_first_bad_argument_is_reported() {
    assert_eq!(
        parse("makeroom a\u{a0} 1.1.1.1 1"),
        Err(ParseError::BadName("a\u{a0}"))
    );
    assert_eq!(
        parse("makeroom a 1.1.1.1 1"),
        Err(ParseError::NotAdminScoped(Ipv4Addr::new(1, 1, 1, 1).into()))
    );
}

#[test]
fn invalid_utf8_and_nul_are_encoding_errors() {
    for line in [
        &b"\xff"[..],
        b"ping\xff",
        b"deleteroom \xc3",         // truncated sequence
        b"deleteroom \xc0\xaf",     // overlong encoding
        b"deleteroom \xed\xa0\x80", // a surrogate
        b"makeroom \xfe 239.1.1.1 1024",
    ] {
        assert_eq!(parse_command(line), Err(ParseError::NotUtf8), "{line:?}");
        assert_eq!(code_of(line), ErrorCode::Encoding);
    }
    for line in [&b"\0"[..], b"ping\0", b"p\0ing", b"deleteroom a\0"] {
        assert_eq!(
            parse_command(line),
            Err(ParseError::ControlChar),
            "{line:?}"
        );
        assert_eq!(code_of(line), ErrorCode::Encoding);
    }
}

#[test]
fn every_error_has_a_short_actionable_message() {
    let long_ascii = "x".repeat(MAX_LINE - 1);
    let long_wide = "🦀".repeat((MAX_LINE - 1) / 4);
    let errors = [
        ParseError::Empty,
        ParseError::NotUtf8,
        ParseError::ControlChar,
        ParseError::UnknownCommand(&long_ascii),
        ParseError::UnknownCommand(&long_wide),
        ParseError::UnknownCommand("x"),
        ParseError::Usage(CommandKind::GetDir),
        ParseError::Usage(CommandKind::MakeRoom),
        ParseError::Usage(CommandKind::DeleteRoom),
        ParseError::BadName(&long_ascii),
        ParseError::BadName(&long_wide),
        ParseError::BadAddress(&long_ascii),
        ParseError::BadAddress(&long_wide),
        ParseError::NotAdminScoped(Ipv4Addr::new(255, 255, 255, 255).into()),
        ParseError::BadPort(&long_ascii),
        ParseError::BadPort(&long_wide),
        ParseError::BadSalt(&long_ascii),
        ParseError::BadSalt(&long_wide),
        ParseError::BadVerifier(&long_ascii),
        ParseError::BadVerifier(&long_wide),
        ParseError::Usage(CommandKind::GetRoom),
        ParseError::Usage(CommandKind::Salt),
        ParseError::BadReply,
    ];
    for error in errors {
        let msg = error.to_string();
        assert!(!msg.is_empty(), "{error:?}");
        // With `ERR <code> ` in front and LF behind, it still fits a line.
        let line = std::format!("ERR {} {msg}\n", error.code());
        assert!(line.len() <= MAX_LINE, "{} bytes: {line}", line.len());
        assert!(!msg.contains('\n'), "{msg}");
    }
    // Long words are cut, with a mark that they were.
    let msg = ParseError::BadName(&long_ascii).to_string();
    assert!(
        msg.starts_with(&std::format!("'{}...'", "x".repeat(40))),
        "{msg}"
    );
    let msg = ParseError::BadName("short").to_string();
    assert!(msg.starts_with("'short' is not a room name"), "{msg}");
    // Every code has a distinct lowercase token that reads back.
    for code in ErrorCode::ALL {
        let token = code.token();
        assert!(!token.is_empty() && token.bytes().all(|b| b.is_ascii_lowercase()));
        assert_eq!(ErrorCode::from_token(token), Some(code));
        assert_eq!(code.to_string(), token);
    }
    assert_eq!(ErrorCode::from_token("nosuchcode"), None);
}

#[test]
fn error_messages_from_real_lines_fit_a_reply() {
    // A 511-byte token in every argument position.
    let token = "x".repeat(MAX_LINE - 1);
    let wide = "é".repeat((MAX_LINE - 1) / 2);
    for t in [&token, &wide] {
        for line in [
            t.to_string(),
            std::format!("deleteroom {t}"),
            std::format!("makeroom {t} 239.1.1.1 1024"),
            std::format!("makeroom r {t} 1024"),
            std::format!("makeroom r 239.1.1.1 {t}"),
        ] {
            let err = parse(&line).unwrap_err();
            let reply = std::format!("ERR {} {err}\n", err.code());
            assert!(reply.len() <= MAX_LINE, "{} bytes: {reply}", reply.len());
        }
    }
}

#[test]
fn command_kind_names_the_command_of_a_refused_line() {
    assert_eq!(command_kind(b"makeroom x"), Some(CommandKind::MakeRoom));
    assert_eq!(
        command_kind(b"  DeleteRoom\t\xff"),
        Some(CommandKind::DeleteRoom)
    );
    // CR LF lines are logged the same as LF lines.
    assert_eq!(command_kind(b"deleteroom\r"), Some(CommandKind::DeleteRoom));
    assert_eq!(command_kind(b"getdir 1\r"), Some(CommandKind::GetDir));
    assert_eq!(command_kind(b""), None);
    assert_eq!(command_kind(b"\r"), None);
    assert_eq!(command_kind(b"frob"), None);
    assert_eq!(command_kind(b"ping\r\r"), None);
    assert_eq!(command_kind(b"p\xffing"), None);
}

// ---- reply lines ----

#[test]
fn reply_lines_parse() {
    assert_eq!(parse_reply_line(b"OK"), Ok(ReplyLine::Ok("")));
    assert_eq!(parse_reply_line(b"OK pong"), Ok(ReplyLine::Ok("pong")));
    assert_eq!(
        parse_reply_line(b"OK 2 rooms\r"),
        Ok(ReplyLine::Ok("2 rooms"))
    );
    assert_eq!(
        parse_reply_line(b"ERR noroom no room has that name"),
        Ok(ReplyLine::Err {
            code: Some(ErrorCode::NoSuchRoom),
            token: "noroom",
            message: "no room has that name",
        })
    );
    assert_eq!(
        parse_reply_line(b"ERR toolong"),
        Ok(ReplyLine::Err {
            code: Some(ErrorCode::LineTooLong),
            token: "toolong",
            message: "",
        })
    );
    // A token from a newer server: kept, with no code.
    assert_eq!(
        parse_reply_line(b"ERR shiny new thing"),
        Ok(ReplyLine::Err {
            code: None,
            token: "shiny",
            message: "new thing",
        })
    );
}

#[test]
fn bad_reply_lines_are_refused() {
    for line in [
        &b""[..],
        b"ok pong",
        b"OKAY",
        b"OK\tpong",
        b" OK",
        b"ERR",
        b"ERR ",
        b"ERR  double space",
        b"hello",
        b".",
    ] {
        assert_eq!(
            parse_reply_line(line),
            Err(ParseError::BadReply),
            "{line:?}"
        );
    }
    assert_eq!(parse_reply_line(b"OK \xff"), Err(ParseError::NotUtf8));
    assert_eq!(parse_reply_line(b"OK \0"), Err(ParseError::ControlChar));
}

#[test]
fn room_lines_parse() {
    assert_eq!(
        parse_room_line(b"Lobby 239.1.2.3 5000"),
        Ok(room("Lobby", [239, 1, 2, 3], 5000))
    );
    assert_eq!(
        parse_room_line(b"Lobby 239.1.2.3 5000\r"),
        Ok(room("Lobby", [239, 1, 2, 3], 5000))
    );
    assert_eq!(parse_room_line(b"."), Err(ParseError::BadReply));
    assert_eq!(parse_room_line(b""), Err(ParseError::BadReply));
    assert_eq!(
        parse_room_line(b"Lobby 239.1.2.3"),
        Err(ParseError::BadReply)
    );
    assert_eq!(
        parse_room_line(b"Lobby 239.1.2.3 5000 x"),
        Err(ParseError::BadReply)
    );
    assert_eq!(parse_room_line(b"a b c d e f"), Err(ParseError::BadReply));
    assert_eq!(
        parse_room_line(b"Lobby 224.1.2.3 5000"),
        Err(ParseError::NotAdminScoped(
            Ipv4Addr::new(224, 1, 2, 3).into()
        ))
    );
    assert_eq!(
        parse_room_line(b"Lobby 239.1.2.3 80"),
        Err(ParseError::BadPort("80"))
    );
    let n33 = "a".repeat(33);
    assert_eq!(
        parse_room_line(std::format!("{n33} 239.1.2.3 5000").as_bytes()),
        Err(ParseError::BadName(&n33))
    );
    assert_eq!(
        parse_room_line(b"\xff 239.1.2.3 5000"),
        Err(ParseError::NotUtf8)
    );
}

#[test]
fn encoded_commands_end_in_one_lf() {
    assert_eq!(encode_command(&Command::GetDir).as_str(), "getdir\n");
    assert_eq!(encode_command(&Command::Ping).as_str(), "ping\n");
    assert_eq!(encode_command(&Command::Help).as_str(), "help\n");
    assert_eq!(encode_command(&Command::Bye).as_str(), "bye\n");
    assert_eq!(
        encode_command(&Command::DeleteRoom(name("x"), None)).as_str(),
        "deleteroom x\n"
    );
    assert_eq!(
        encode_command(&Command::MakeRoom(room("x", [239, 0, 0, 9], 1024))).as_str(),
        "makeroom x 239.0.0.9 1024\n"
    );
}

// ---- private rooms: salt, getroom, the private makeroom ----

const SALT: &str = "AQEBAQEBAQEBAQEBAQEBAQ";
const VERIFIER: &str = "AgICAgICAgICAgICAgICAg";

fn privacy() -> Privacy {
    Privacy {
        salt: Salt([1; 16]),
        verifier: Verifier([2; 16]),
    }
}

#[test]
fn salt_and_getroom_parse_in_any_case_of_verb() {
    assert_eq!(parse("salt"), Ok(Command::Salt));
    assert_eq!(parse("SALT\r"), Ok(Command::Salt));
    assert_eq!(parse("getroom Lobby"), Ok(Command::GetRoom(name("Lobby"))));
    assert_eq!(
        parse("GetRoom\tLobby "),
        Ok(Command::GetRoom(name("Lobby")))
    );
    for line in ["salt x", "salt x y", "SALT  a"] {
        assert_eq!(
            parse(line),
            Err(ParseError::Usage(CommandKind::Salt)),
            "{line}"
        );
    }
    for line in ["getroom", "getroom a b", "GETROOM a b c d e f"] {
        assert_eq!(
            parse(line),
            Err(ParseError::Usage(CommandKind::GetRoom)),
            "{line}"
        );
    }
    let long = "n".repeat(MAX_ROOM_NAME + 1);
    assert!(matches!(
        parse(&std::format!("getroom {long}")),
        Err(ParseError::BadName(_))
    ));
    assert_eq!(command_kind(b"GETROOM"), Some(CommandKind::GetRoom));
    assert_eq!(command_kind(b"Salt x"), Some(CommandKind::Salt));
}

#[test]
fn makeroom_takes_1_3_4_or_6_words() {
    assert_eq!(parse("makeroom a"), Ok(Command::AllocRoom(name("a"))));
    assert_eq!(
        parse("makeroom a 239.1.2.3 5000"),
        Ok(Command::MakeRoom(room("a", [239, 1, 2, 3], 5000)))
    );
    assert_eq!(
        parse(&std::format!("makeroom a private {SALT} {VERIFIER}")),
        Ok(Command::AllocPrivate(name("a"), privacy()))
    );
    // The word `private` in any case.
    assert_eq!(
        parse(&std::format!(
            "MAKEROOM a 239.1.2.3 5000 PriVate {SALT} {VERIFIER}"
        )),
        Ok(Command::MakePrivate(
            room("a", [239, 1, 2, 3], 5000),
            privacy()
        ))
    );
    let usage = Err(ParseError::Usage(CommandKind::MakeRoom));
    for line in [
        "makeroom".into(),
        "makeroom a 239.1.2.3".into(),
        std::format!("makeroom a private {SALT}"),
        // Four words, but the second is not `private`.
        std::format!("makeroom a privat {SALT} {VERIFIER}"),
        std::format!("makeroom a 239.1.2.3 5000 {SALT}"),
        std::format!("makeroom a 239.1.2.3 5000 private {SALT}"),
        std::format!("makeroom a 239.1.2.3 5000 public {SALT} {VERIFIER}"),
        std::format!("makeroom a 239.1.2.3 5000 private {SALT} {VERIFIER} x"),
        std::format!("makeroom a private {SALT} {VERIFIER} x y"),
    ] {
        assert_eq!(parse(&line), usage, "{line}");
        assert_eq!(code_of(line.as_bytes()), ErrorCode::Usage, "{line}");
    }
}

#[test]
fn a_bad_salt_or_verifier_is_a_usage_error_that_says_so_before_the_name() {
    let bad_name = "n".repeat(MAX_ROOM_NAME + 1);
    let cases = [
        (
            std::format!("makeroom {bad_name} private short {VERIFIER}"),
            "short",
        ),
        // 23 characters, 21, a padded one, standard base64's `+`, and a
        // non-canonical last character.
        (
            std::format!("makeroom a private {SALT}A {VERIFIER}"),
            "salt",
        ),
        (
            std::format!("makeroom a private {} {VERIFIER}", &SALT[1..]),
            "salt",
        ),
        (
            std::format!("makeroom a 1.2.3.4 1 private AAAAAAAAAAAAAAAAAAAAA= {VERIFIER}"),
            "salt",
        ),
        (
            std::format!("makeroom a private AAAAAAAAAAAAAAAAAAAA+A {VERIFIER}"),
            "salt",
        ),
        (
            std::format!("makeroom a private AAAAAAAAAAAAAAAAAAAAAB {VERIFIER}"),
            "salt",
        ),
    ];
    for (line, _) in &cases {
        let err = parse(line).unwrap_err();
        assert!(matches!(err, ParseError::BadSalt(_)), "{line}: {err:?}");
        assert_eq!(err.code(), ErrorCode::Usage);
        let msg = err.to_string();
        assert!(
            msg.contains("is not a salt; give the 22 characters 'salt' answered"),
            "{msg}"
        );
        assert!(msg.contains(CommandKind::MakeRoom.usage()), "{msg}");
    }
    let line = std::format!("makeroom {bad_name} 1.2.3.4 1 private {SALT} {VERIFIER}=");
    let err = parse(&line).unwrap_err();
    assert!(matches!(err, ParseError::BadVerifier(_)), "{err:?}");
    assert_eq!(err.code(), ErrorCode::Usage);
    assert!(err.to_string().contains("is not a verifier"), "{err}");
    // With both right, the name, address and port come next, in order.
    let tail = std::format!("private {SALT} {VERIFIER}");
    assert!(matches!(
        parse(&std::format!("makeroom {bad_name} 1.2.3.4 1 {tail}")),
        Err(ParseError::BadName(_))
    ));
    assert!(matches!(
        parse(&std::format!("makeroom a 1.2.3.4 1 {tail}")),
        Err(ParseError::BadAddress(_) | ParseError::NotAdminScoped(_))
    ));
    assert!(matches!(
        parse(&std::format!("makeroom a 239.1.1.1 1 {tail}")),
        Err(ParseError::BadPort(_))
    ));
}

#[test]
fn a_private_room_port_needs_a_control_port_at_the_edge() {
    // A private room sends only on port + 1: 65534 has 65535, 65535 has none.
    assert_eq!(
        parse(&std::format!(
            "makeroom a 239.1.2.3 65534 private {SALT} {VERIFIER}"
        )),
        Ok(Command::MakePrivate(
            room("a", [239, 1, 2, 3], 65534),
            privacy()
        ))
    );
    let line = std::format!("makeroom a 239.1.2.3 65535 private {SALT} {VERIFIER}");
    let err = parse(&line).unwrap_err();
    assert_eq!(err, ParseError::NoControlPort(65535));
    assert_eq!(err.code(), ErrorCode::BadPort);
    let msg = err.to_string();
    assert!(msg.contains("port + 1"), "{msg}");
    assert!(msg.contains("from 1024 to 65534"), "{msg}");
    // An open room keeps 65535.
    assert_eq!(
        parse("makeroom a 239.1.2.3 65535"),
        Ok(Command::MakeRoom(room("a", [239, 1, 2, 3], 65535)))
    );
}

#[test]
fn private_commands_encode_as_the_protocol_writes_them() {
    assert_eq!(encode_command(&Command::Salt).as_str(), "salt\n");
    assert_eq!(
        encode_command(&Command::GetRoom(name("x"))).as_str(),
        "getroom x\n"
    );
    assert_eq!(
        encode_command(&Command::AllocPrivate(name("x"), privacy())).as_str(),
        std::format!("makeroom x private {SALT} {VERIFIER}\n")
    );
    let longest = Command::MakePrivate(
        Room {
            name: name(&"n".repeat(MAX_ROOM_NAME)),
            group: "ff15:ffff:ffff:ffff:ffff:ffff:ffff:ffff".parse().unwrap(),
            // The highest port a private room may have (65535 has no
            // control port), as long as 65535.
            port: 65534,
        },
        privacy(),
    );
    let line = encode_command(&longest);
    assert!(
        line.ends_with(&std::format!(" 65534 private {SALT} {VERIFIER}\n")),
        "{line}"
    );
    assert_eq!(line.len(), 142, "the longest command line");
    assert_eq!(parse_command(line.trim_end().as_bytes()), Ok(longest));
}

// ---- properties ----

/// A valid room name: 1-32 bytes of characters the name rule allows.
fn arb_name() -> impl Strategy<Value = RoomName> {
    let ch = any::<char>().prop_filter("allowed in a name", |c| crate::text::is_name_char(*c));
    proptest::collection::vec(ch, 1..=32)
        .prop_map(|chars| {
            let mut name = RoomName::new();
            for c in chars {
                if name.push(c).is_err() {
                    break;
                }
            }
            name
        })
        // Every character allowed is not enough: a name may not begin with
        // a combining mark, and must take a column.
        .prop_filter("a valid room name", |name| {
            crate::check_room_name(name).is_ok()
        })
}

fn arb_room() -> impl Strategy<Value = Room> {
    (arb_name(), any::<[u8; 3]>(), 1024u16..=65535).prop_map(|(name, [b, c, d], port)| Room {
        name,
        group: Ipv4Addr::new(239, b, c, d).into(),
        port,
    })
}

fn arb_command() -> impl Strategy<Value = Command> {
    prop_oneof![
        Just(Command::GetDir),
        Just(Command::GetDirFull),
        Just(Command::Ping),
        Just(Command::Help),
        Just(Command::Bye),
        (
            arb_name(),
            proptest::option::of("[!-~]{16,64}".prop_map(|t| Token::try_from(t.as_str()).unwrap()))
        )
            .prop_map(|(name, token)| Command::DeleteRoom(name, token)),
        arb_room().prop_map(Command::MakeRoom),
        Just(Command::Salt),
        arb_name().prop_map(Command::GetRoom),
        (arb_room(), arb_privacy()).prop_map(|(r, p)| Command::MakePrivate(r, p)),
        (arb_name(), arb_privacy()).prop_map(|(n, p)| Command::AllocPrivate(n, p)),
    ]
}

fn arb_privacy() -> impl Strategy<Value = Privacy> {
    (any::<[u8; 16]>(), any::<[u8; 16]>()).prop_map(|(s, v)| Privacy {
        salt: Salt(s),
        verifier: Verifier(v),
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn prop_parse_of_encode_is_identity(c in arb_command()) {
        let line = encode_command(&c);
        prop_assert!(line.ends_with('\n'));
        prop_assert!(line.len() <= MAX_LINE);
        prop_assert_eq!(parse_command(line.trim_end_matches('\n').as_bytes()), Ok(c.clone()));
        // With CR LF too.
        let crlf = std::format!("{}\r", line.trim_end_matches('\n'));
        prop_assert_eq!(parse_command(crlf.as_bytes()), Ok(c));
    }

    #[test]
    fn prop_room_lines_round_trip(r in arb_room()) {
        let mut line = LineBuf::new();
        encode_room_line(&r, &mut line).unwrap();
        prop_assert!(line.ends_with('\n'));
        prop_assert_eq!(parse_room_line(line.trim_end_matches('\n').as_bytes()), Ok(r));
    }

    #[test]
    fn prop_full_room_lines_round_trip(r in arb_room(), private in any::<bool>()) {
        let kind = if private { RoomKind::Private } else { RoomKind::Open };
        let mut line = LineBuf::new();
        encode_full_room_line(&r, kind, &mut line).unwrap();
        prop_assert!(line.ends_with('\n'));
        prop_assert!(line.len() <= crate::limits::MAX_FULL_ROOM_LINE);
        let text = line.trim_end_matches('\n');
        prop_assert_eq!(parse_full_room_line(text.as_bytes()), Ok((r, kind)));
    }

    #[test]
    fn prop_any_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
        if let Err(e) = parse_command(&bytes) {
            let reply = std::format!("ERR {} {e}\n", e.code());
            prop_assert!(reply.len() <= MAX_LINE);
        }
        let _ = parse_reply_line(&bytes);
        let _ = parse_room_line(&bytes);
        let _ = parse_full_room_line(&bytes);
    }

    #[test]
    fn prop_near_miss_lines_never_panic(
        words in proptest::collection::vec(
            prop_oneof![
                Just(String::from("makeroom")),
                Just(String::from("DeleteRoom")),
                Just(String::from("getroom")),
                Just(String::from("salt")),
                Just(String::from("private")),
                Just(String::from("AAAAAAAAAAAAAAAAAAAAAA")),
                Just(String::from("239.1.1.1")),
                Just(String::from("65535")),
                "[a-z0-9.+-]{0,6}",
                "\\PC{0,40}",
            ],
            0..9,
        ),
        sep in "[ \t]{1,3}",
    ) {
        let line: Vec<&str> = words.iter().map(String::as_str).collect();
        let line = line.join(&sep);
        if let Err(e) = parse(&line) {
            let reply = std::format!("ERR {} {e}\n", e.code());
            prop_assert!(reply.len() <= MAX_LINE);
            prop_assert!(!e.to_string().is_empty());
        }
    }
}

#[test]
fn invisible_characters_and_leading_zeros_are_refused() {
    for name in [
        "a\u{200B}b",
        "\u{FEFF}lobby",
        "lob\u{202E}by",
        "soft\u{00AD}",
    ] {
        let line = std::format!("deleteroom {name}");
        assert!(
            matches!(parse_command(line.as_bytes()), Err(ParseError::BadName(_))),
            "{name:?}"
        );
    }
    for addr in ["239.01.1.1", "239.1.1.010", "0239.1.1.1"] {
        let line = std::format!("makeroom a {addr} 5000");
        assert!(
            matches!(
                parse_command(line.as_bytes()),
                Err(ParseError::BadAddress(_))
            ),
            "{addr}"
        );
    }
    assert!(matches!(
        parse_command(b"makeroom a 239.1.1.1 05000"),
        Err(ParseError::BadPort(_))
    ));
    // A lone zero is a number, not a leading zero.
    assert!(parse_command(b"makeroom a 239.0.0.0 5000").is_ok());
}

/// Issue 13.10 in the parser: each example is `badname`, and the message
/// says which character and why, written visibly.
#[test]
fn names_that_look_empty_or_hold_invisible_characters_are_badname() {
    for name in [
        "lobby\u{34F}",
        "lobby\u{FE0F}",
        "lobby\u{180B}",
        "lobby\u{E0020}",
        "lobby\u{E0041}",
        "lob\u{17B4}by",
        "\u{34F}",
        "\u{3164}",
        "\u{2800}",
        "\u{115F}\u{1160}",
        "lobby\u{3164}general",
        "a\u{300}",
    ] {
        for line in [
            std::format!("makeroom {name} 239.1.1.1 5000"),
            std::format!("deleteroom {name}"),
        ] {
            assert_eq!(parse(&line), Err(ParseError::BadName(name)), "{line:?}");
        }
        assert!(parse_room_line(std::format!("{name} 239.1.1.1 5000").as_bytes()).is_err());
        let message = ParseError::BadName(name).to_string();
        assert!(message.contains(" is not a room name (U+"), "{message}");
    }
    assert!(
        ParseError::BadName("lobby\u{E0041}")
            .to_string()
            .starts_with("'lobby<U+E0041>' is not a room name (U+E0041 is invisible or blank)")
    );
    assert!(
        ParseError::BadName("a\u{300}")
            .to_string()
            .contains("U+0300 is not in composed form (NFC)")
    );
    // Marks alone, or first, show as blank or sit on what comes before.
    for name in [
        "\u{E47}\u{E47}\u{E47}",
        "\u{332}\u{332}\u{332}",
        "\u{332}lobby",
    ] {
        for line in [
            std::format!("makeroom {name} 239.1.1.1 5000"),
            std::format!("deleteroom {name}"),
        ] {
            assert_eq!(parse(&line), Err(ParseError::BadName(name)), "{line:?}");
        }
        assert!(parse_room_line(std::format!("{name} 239.1.1.1 5000").as_bytes()).is_err());
        let message = ParseError::BadName(name).to_string();
        assert!(
            message.contains("is a combining mark and cannot begin a name"),
            "{message}"
        );
    }
    let message = ParseError::BadName("\u{D4E}").to_string();
    assert!(
        message.contains("(the name would show as blank)"),
        "{message}"
    );
    // Composed, visible names in any script are fine.
    for name in [
        "\u{e0}",
        "\u{E01}\u{E47}",
        "lobby\u{332}",
        "caf\u{e9}",
        "\u{4f1a}\u{8b70}\u{5ba4}",
        "\u{d55c}",
        "\u{1F600}",
    ] {
        let line = std::format!("deleteroom {name}");
        assert!(parse(&line).is_ok(), "{name}");
    }
}
