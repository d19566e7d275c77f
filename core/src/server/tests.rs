//! Server machine tests, written as scripts: bytes in, exact bytes out.
//!
//! `Host` plays the host's part of the drain rule: after every call into a
//! connection it drains the events, then writes out everything the
//! connection has to send (unless a test says the peer is not reading).

use super::*;
use crate::directory::{Directory, Room, cmp_names};
use crate::limits::{
    CONN_RECV_BUF, CONN_SEND_BUF, EVENT_QUEUE, IDLE_TIMEOUT, MAX_LINE, MAX_PENDING_CHANGES,
    PARTIAL_LINE_TIMEOUT, PERSIST_TIMEOUT, SEND_TIMEOUT,
};
use crate::time::Instant;
use core::net::Ipv4Addr;
use proptest::prelude::*;
use std::boxed::Box;
use std::collections::BTreeSet;
use std::string::String;
use std::vec::Vec;
use std::{format, vec};

const GREETING: &str = "OK CRDP/1 roomcast directory server ready; type 'help' for the commands\n";

fn secs(s: u64) -> Instant {
    Instant::ZERO + Duration::from_secs(s)
}

fn before(at: Instant) -> Instant {
    Instant::from_micros(at.as_micros() - 1)
}

fn room(name: &str, group: [u8; 4], port: u16) -> Room {
    Room {
        name: RoomName::try_from(name).unwrap(),
        group: Ipv4Addr::from(group).into(),
        port,
    }
}

fn name(s: &str) -> Option<RoomName> {
    Some(RoomName::try_from(s).unwrap())
}

/// A directory of `n` rooms named `r0000`, `r0001`, ...
fn directory_of(n: usize) -> Directory {
    let mut dir = Directory::new();
    for i in 0..n {
        let [_, _, b, c] = u32::try_from(i).unwrap().to_be_bytes();
        dir.insert(room(&format!("r{i:04}"), [239, 1, b, c], 5000))
            .unwrap();
    }
    dir
}

/// The server's output as text, with the owner token cut from each `OK
/// created` line (`token=` and 22 base64url characters), so the scripts
/// read as the replies' fixed part; the tokens have tests of their own
/// (`raw_text`).
fn text(bytes: Vec<u8>) -> String {
    let raw = raw_text(bytes);
    let mut out = String::new();
    for line in raw.split_inclusive('\n') {
        match line.split_once(" token=") {
            Some((head, tail)) if head.starts_with("OK created ") => {
                // The token, then the line's end or ` private`.
                let token = tail.split([' ', '\n']).next().unwrap_or_default();
                assert_eq!(token.len(), crate::limits::TOKEN_TEXT, "{line:?}");
                out.push_str(head);
                out.push_str(&tail[token.len()..]);
            }
            _ => out.push_str(line),
        }
    }
    out
}

fn raw_text(bytes: Vec<u8>) -> String {
    String::from_utf8(bytes).expect("the server sent invalid UTF-8")
}

/// The id of a [`Session`]'s connection (a host's first).
const FIRST: ConnId = ConnId(1);

/// The host side: the shared server, the clock, and every event seen.
struct Host {
    server: Box<Server>,
    now: Instant,
    events: Vec<Event>,
    next_id: u64,
}

impl Host {
    fn new() -> Self {
        Self::with(ServerConfig::default(), Directory::new())
    }

    /// A host whose connections have no rate quota: the scripts send many
    /// commands at one instant. The quotas have tests of their own
    /// ([`Host::with_quotas`]).
    fn with(mut config: ServerConfig, directory: Directory) -> Self {
        config.commands_per_second = 0;
        Self::with_quotas(config, directory)
    }

    fn with_quotas(config: ServerConfig, directory: Directory) -> Self {
        Self {
            server: Box::new(Server::with_directory(config, directory)),
            now: Instant::ZERO,
            events: Vec::new(),
            next_id: FIRST.0,
        }
    }

    fn drain_events(&mut self) {
        while let Some(event) = self.server.poll_event() {
            self.events.push(event);
        }
    }

    fn take_events(&mut self) -> Vec<Event> {
        core::mem::take(&mut self.events)
    }

    /// Writes out all the connection has to send, in pieces of at most
    /// `window` bytes, and returns it.
    fn drain_by(&mut self, conn: &mut Connection, window: usize) -> Vec<u8> {
        let mut out = Vec::new();
        loop {
            let pending = conn.poll_transmit();
            if pending.is_empty() {
                return out;
            }
            let n = pending.len().min(window.max(1));
            out.extend_from_slice(&pending[..n]);
            conn.handle_sent(self.now, &mut self.server, n);
            self.drain_events();
        }
    }

    fn drain(&mut self, conn: &mut Connection) -> String {
        text(self.drain_by(conn, usize::MAX))
    }

    /// Feeds `bytes` as the host would (never more than `recv_capacity`),
    /// draining between calls; returns all output.
    fn feed(&mut self, conn: &mut Connection, bytes: &[u8]) -> String {
        let mut out = Vec::new();
        let mut rest = bytes;
        while !rest.is_empty() && conn.recv_capacity() > 0 {
            let offer = conn.recv_capacity().min(rest.len());
            let n = conn.handle_bytes(self.now, &mut self.server, &rest[..offer]);
            assert_eq!(n, offer, "took less than recv_capacity promised");
            rest = &rest[n..];
            self.drain_events();
            out.extend(self.drain_by(conn, usize::MAX));
        }
        text(out)
    }

    /// A new connection, with the next id, greeting not yet read.
    fn open(&mut self) -> Connection {
        let id = ConnId(self.next_id);
        self.next_id += 1;
        Connection::new(self.now, id, self.server.config())
    }

    fn connect(&mut self) -> Connection {
        let mut conn = self.open();
        assert_eq!(self.drain(&mut conn), GREETING);
        conn
    }

    fn timeout(&mut self, conn: &mut Connection, now: Instant) {
        self.now = now;
        conn.handle_timeout(now, &mut self.server);
        self.drain_events();
    }
}

/// One host with one connection: the common case.
struct Session {
    host: Host,
    conn: Connection,
}

impl Session {
    fn new() -> Self {
        Self::with_directory(Directory::new())
    }

    fn with_directory(directory: Directory) -> Self {
        let mut host = Host::with(ServerConfig::default(), directory);
        let conn = host.connect();
        Self { host, conn }
    }

    fn send(&mut self, bytes: impl AsRef<[u8]>) -> String {
        self.host.feed(&mut self.conn, bytes.as_ref())
    }

    fn events(&mut self) -> Vec<Event> {
        self.host.take_events()
    }

    fn at(&mut self, now: Instant) -> &mut Self {
        self.host.now = now;
        self
    }

    fn timeout(&mut self, now: Instant) {
        self.host.timeout(&mut self.conn, now);
    }
}

/// What a [`Session`]'s connection timing out is logged as.
fn timed_out(timeout: Timeout) -> Event {
    Event::TimedOut {
        conn: FIRST,
        timeout,
    }
}

/// What a [`Session`]'s connection answering a line is logged as.
fn answered(
    command: Option<CommandKind>,
    room: Option<RoomName>,
    error: Option<ErrorCode>,
) -> Event {
    Event::Answered {
        conn: FIRST,
        command,
        room,
        error,
    }
}

fn error_of(event: &Event) -> Option<ErrorCode> {
    match event {
        Event::Answered { error, .. } => *error,
        other => panic!("not an answer: {other:?}"),
    }
}

/// Splits a listing reply into its lines, checking the frame: a header
/// `OK <n> room(s)`, room lines, then `.`. Returns (n, room lines).
fn listing_lines(reply: &str) -> (usize, Vec<&str>) {
    let mut lines: Vec<&str> = reply.split_terminator('\n').collect();
    assert!(reply.ends_with('\n'), "{reply:?}");
    assert_eq!(lines.pop(), Some("."), "{reply:?}");
    let header = lines.remove(0);
    let n: usize = header
        .strip_prefix("OK ")
        .and_then(|h| h.strip_suffix(" rooms").or_else(|| h.strip_suffix(" room")))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("bad header {header:?}"));
    (n, lines)
}

// ---- replies ----

#[test]
fn the_greeting_names_the_protocol() {
    let mut host = Host::new();
    let mut conn = host.open();
    let greeting = host.drain(&mut conn);
    assert!(greeting.starts_with("OK CRDP/1 "), "{greeting}");
    assert!(greeting.ends_with('\n') && greeting.matches('\n').count() == 1);
    assert_eq!(greeting, GREETING);
    assert!(host.take_events().is_empty());
    assert!(!conn.is_finished());
}

#[test]
fn each_command_gets_its_exact_reply() {
    let mut s = Session::new();
    assert_eq!(s.send("ping\n"), "OK pong\n");
    assert_eq!(s.send("getdir\n"), "OK 0 rooms\n.\n");
    assert_eq!(
        s.send("makeroom Lobby 239.1.2.3 5000\n"),
        "OK created Lobby 239.1.2.3 5000\n"
    );
    assert_eq!(s.send("getdir\n"), "OK 1 room\nLobby 239.1.2.3 5000\n.\n");
    assert_eq!(
        s.send("makeroom lobby 239.9.9.9 5000\n"),
        "ERR exists a room named 'Lobby' exists already; pick another name\n"
    );
    assert_eq!(
        s.send("makeroom Other 239.1.2.3 5000\n"),
        "ERR inuse 239.1.2.3:5000 is already used by room 'Lobby'; \
         pick another address or port\n"
    );
    // The reply names the room as stored, not as typed.
    assert_eq!(s.send("deleteroom LOBBY\n"), "OK deleted Lobby\n");
    assert_eq!(
        s.send("deleteroom Lobby\n"),
        "ERR noroom no room has that name; 'getdir' lists the rooms\n"
    );
    assert_eq!(
        s.send("frobnicate\n"),
        "ERR unknown 'frobnicate' is not a command; type 'help' for the commands\n"
    );
    assert_eq!(s.send("ping now\n"), "ERR usage usage: ping\n");
    assert_eq!(
        s.send("makeroom x y\n"),
        "ERR usage usage: makeroom <name> [<address> <port>] [private <salt> <verifier>]\n"
    );
    assert_eq!(
        s.send("makeroom x 224.0.0.1 5000\n"),
        "ERR badaddr 224.0.0.1 is outside 239.0.0.0/8, the administratively scoped \
         multicast range; use an address from 239.0.0.0 to 239.255.255.255\n"
    );
    assert_eq!(
        s.send("makeroom x 239.0.0.1 80\n"),
        "ERR badport '80' is not a usable port; use a number from 1024 to 65535\n"
    );
    let reply = s.send(format!("deleteroom {}\n", "n".repeat(33)));
    assert!(reply.starts_with("ERR badname '"), "{reply}");
    assert_eq!(s.send("bye\n"), "OK bye\n");
    assert!(s.conn.is_finished());
}

#[test]
fn getdir_lists_rooms_sorted_between_header_and_dot() {
    let mut s = Session::new();
    s.send("makeroom zeta 239.0.0.2 2000\nmakeroom Alpha 239.0.0.1 1024\n");
    assert_eq!(
        s.send("getdir\n"),
        "OK 2 rooms\nAlpha 239.0.0.1 1024\nzeta 239.0.0.2 2000\n.\n"
    );
    s.send("makeroom beta 239.0.0.3 65535\n");
    assert_eq!(
        s.send("GETDIR\r\n"),
        "OK 3 rooms\nAlpha 239.0.0.1 1024\nbeta 239.0.0.3 65535\nzeta 239.0.0.2 2000\n.\n"
    );
}

#[test]
fn help_lists_every_command_then_a_dot() {
    let mut s = Session::new();
    let reply = s.send("help\n");
    let lines: Vec<&str> = reply.split_terminator('\n').collect();
    assert_eq!(lines.len(), 2 + CommandKind::ALL.len(), "{reply}");
    assert!(lines[0].starts_with("OK "), "{reply}");
    for (line, kind) in lines[1..].iter().zip(CommandKind::ALL) {
        assert!(
            line.starts_with(&format!("  {}", kind.usage())),
            "{line:?} for {kind:?}"
        );
        assert!(line.ends_with(kind.summary()), "{line:?}");
    }
    assert_eq!(lines.last(), Some(&"."));
    assert!(reply.ends_with("\n.\n"));
    // The connection goes on as before.
    assert_eq!(s.send("ping\n"), "OK pong\n");
}

/// Every `help` line arrives, however little room the peer's reading
/// leaves: a line is produced only once a whole line's room is free
/// (`makeroom`'s is longer than a room line).
#[test]
fn help_arrives_whole_to_a_peer_that_reads_a_byte_at_a_time() {
    let whole = Session::new().send("help\n");
    let longest = whole.lines().map(str::len).max().unwrap();
    assert!(longest + 1 > crate::limits::MAX_LISTING_LINE, "{whole}");
    let mut host = Host::with(ServerConfig::default(), directory_of(200));
    let mut conn = host.connect();
    let input = b"getdir full\nhelp\nhelp\n";
    assert_eq!(
        conn.handle_bytes(host.now, &mut host.server, input),
        input.len()
    );
    let mut out = Vec::new();
    while !conn.poll_transmit().is_empty() {
        out.push(conn.poll_transmit()[0]);
        conn.handle_sent(host.now, &mut host.server, 1);
    }
    let out = text(out);
    let help_at = out.find("OK commands").unwrap();
    assert_eq!(&out[help_at..], whole.repeat(2));
}

#[test]
fn pipelined_commands_are_answered_in_order() {
    let mut s = Session::new();
    let reply = s.send(
        "ping\nmakeroom a 239.1.1.1 1024\r\ngetdir\nbogus\ndeleteroom A\nhelp\ngetdir\nping\n",
    );
    let mut want =
        String::from("OK pong\nOK created a 239.1.1.1 1024\nOK 1 room\na 239.1.1.1 1024\n.\n");
    want += "ERR unknown 'bogus' is not a command; type 'help' for the commands\n";
    want += "OK deleted a\n";
    let help_start = want.len();
    assert_eq!(&reply[..help_start], want);
    let rest = &reply[help_start..];
    let help_end = rest.find("\n.\n").unwrap() + 3;
    assert!(rest.starts_with("OK commands"));
    assert_eq!(&rest[help_end..], "OK 0 rooms\n.\nOK pong\n");
    assert_eq!(s.events().len(), 8);
}

#[test]
fn blank_lines_get_no_reply_and_no_event() {
    let mut s = Session::new();
    assert_eq!(s.send("\n\r\n  \n\t\r\n"), "");
    assert!(s.events().is_empty());
    assert_eq!(s.send("\n\nping\n\n"), "OK pong\n");
    assert_eq!(s.events(), [answered(Some(CommandKind::Ping), None, None)]);
}

#[test]
fn bye_answers_then_finishes_and_ignores_the_rest() {
    let mut s = Session::new();
    // Not finished while the reply is still unsent.
    let input = b"bye\nping\nmakeroom a 239.1.1.1 1024\n";
    let n = s.conn.handle_bytes(s.host.now, &mut s.host.server, input);
    assert_eq!(n, input.len());
    assert!(!s.conn.is_finished());
    assert_eq!(s.conn.recv_capacity(), 0);
    assert_eq!(s.conn.poll_transmit(), b"OK bye\n");
    assert!(!s.conn.is_finished());
    // Half of it out: still not finished.
    s.conn.handle_sent(s.host.now, &mut s.host.server, 3);
    assert!(!s.conn.is_finished());
    assert_eq!(s.host.drain(&mut s.conn), "bye\n");
    assert!(s.conn.is_finished());
    // Nothing after bye ran.
    assert!(s.host.server.directory().is_empty());
    s.host.drain_events();
    assert_eq!(s.events(), [answered(Some(CommandKind::Bye), None, None)]);
    // And it stays finished, taking nothing more.
    assert_eq!(
        s.conn
            .handle_bytes(s.host.now, &mut s.host.server, b"ping\n"),
        0
    );
    assert_eq!(s.conn.poll_transmit(), b"");
    assert!(s.conn.is_finished());
}

// ---- bad lines ----

#[test]
fn a_line_of_exactly_max_line_bytes_is_answered() {
    let mut s = Session::new();
    // 511 content bytes + LF = MAX_LINE: answered as a line.
    let line = format!("{}\n", "a".repeat(MAX_LINE - 1));
    assert_eq!(line.len(), MAX_LINE);
    let reply = s.send(&line);
    assert!(reply.starts_with("ERR unknown 'aaaa"), "{reply}");
    assert_eq!(reply.matches('\n').count(), 1);
    // A real command padded to the limit works, with LF or with CR LF.
    let padded = format!("ping{}\n", " ".repeat(MAX_LINE - 5));
    assert_eq!(padded.len(), MAX_LINE);
    assert_eq!(s.send(&padded), "OK pong\n");
    let padded = format!("ping{}\r\n", " ".repeat(MAX_LINE - 6));
    assert_eq!(padded.len(), MAX_LINE);
    assert_eq!(s.send(&padded), "OK pong\n");
}

#[test]
fn a_line_one_byte_too_long_gets_one_toolong_and_the_connection_goes_on() {
    let toolong = "ERR toolong line longer than 512 bytes; it was ignored\n";
    for (line, how) in [
        (format!("{}\n", "a".repeat(MAX_LINE)), "LF"),
        (format!("ping{}\n", " ".repeat(MAX_LINE - 4)), "padded ping"),
        (format!("ping{}\r\n", " ".repeat(MAX_LINE - 5)), "CR LF"),
    ] {
        assert_eq!(line.len(), MAX_LINE + 1, "{how}");
        // Whole, then byte by byte.
        let mut s = Session::new();
        assert_eq!(
            s.send(format!("{line}ping\n")),
            format!("{toolong}OK pong\n"),
            "{how}"
        );
        assert_eq!(
            s.events(),
            [
                answered(None, None, Some(ErrorCode::LineTooLong)),
                answered(Some(CommandKind::Ping), None, None),
            ]
        );
        let mut s = Session::new();
        let mut out = String::new();
        for b in format!("{line}ping\n").bytes() {
            out += &s.send([b]);
        }
        assert_eq!(out, format!("{toolong}OK pong\n"), "{how}, byte by byte");
    }
}

#[test]
fn a_line_is_refused_as_soon_as_it_cannot_fit() {
    let mut s = Session::new();
    // 511 bytes and no LF: it may still end in time.
    assert_eq!(s.send("a".repeat(MAX_LINE - 1)), "");
    // The 512th byte without an LF: too long already, answered now.
    assert_eq!(
        s.send("a"),
        "ERR toolong line longer than 512 bytes; it was ignored\n"
    );
    assert_eq!(s.send("aaa\nping\n"), "OK pong\n");
}

#[test]
fn a_megabyte_line_gets_one_toolong() {
    let big = vec![b'x'; 1 << 20];
    for chunk in [1 << 20, 1000, 511, 512, 513, 4096, 7] {
        let mut s = Session::new();
        let mut out = String::new();
        for piece in big.chunks(chunk) {
            out += &s.send(piece);
        }
        // Answered as soon as it is known to be too long, not at its end.
        assert_eq!(
            out,
            "ERR toolong line longer than 512 bytes; it was ignored\n"
        );
        assert_eq!(s.send("\n"), "", "the end of the long line is not a line");
        assert_eq!(s.send("ping\n"), "OK pong\n", "chunk {chunk}");
        let errors: Vec<_> = s.events().iter().map(error_of).collect();
        assert_eq!(errors, [Some(ErrorCode::LineTooLong), None]);
    }
}

#[test]
fn bytes_that_are_not_utf8_get_err_encoding() {
    let mut s = Session::new();
    assert_eq!(
        s.send(b"ping\xff\n"),
        "ERR encoding the line is not valid UTF-8; send UTF-8 text\n"
    );
    assert_eq!(
        s.send(b"deleteroom a\0b\n"),
        "ERR encoding the line holds a control character; send printable text\n"
    );
    assert_eq!(
        s.send(b"\xc3\n\x80\n"),
        "ERR encoding the line is not valid UTF-8; send UTF-8 text\n".repeat(2)
    );
    assert_eq!(s.send("ping\n"), "OK pong\n");
    let errors: Vec<_> = s.events().iter().map(error_of).collect();
    assert_eq!(
        errors,
        [Some(ErrorCode::Encoding); 4]
            .into_iter()
            .chain([None])
            .collect::<Vec<_>>()
    );
}

#[test]
fn events_say_what_was_answered() {
    let mut s = Session::new();
    s.send(
        "makeroom a 239.1.1.1 1024\nmakeroom A 239.1.1.2 1024\nmakeroom b 239.1.1.1 1024\n\
         deleteroom zz\ndeleteroom a\ngetdir\nhelp\nping\nnope\ngetdir 1\n\
         makeroom c 10.0.0.1 1024\n",
    );
    let mk = Some(CommandKind::MakeRoom);
    let del = Some(CommandKind::DeleteRoom);
    let events = s.events();
    assert_eq!(
        events[..10],
        [
            answered(mk, name("a"), None),
            answered(mk, name("A"), Some(ErrorCode::NameTaken)),
            answered(mk, name("b"), Some(ErrorCode::AddressInUse)),
            answered(del, name("zz"), Some(ErrorCode::NoSuchRoom)),
            answered(del, name("a"), None),
            answered(Some(CommandKind::GetDir), None, None),
            answered(Some(CommandKind::Help), None, None),
            answered(Some(CommandKind::Ping), None, None),
            answered(None, None, Some(ErrorCode::UnknownCommand)),
            answered(Some(CommandKind::GetDir), None, Some(ErrorCode::Usage)),
        ]
    );
    // A refused line that names a command is logged as that command.
    assert_eq!(
        events[10..],
        [answered(mk, None, Some(ErrorCode::BadAddress))]
    );
    assert_eq!(
        s.send("deleteroom\r\nDELETEROOM\n"),
        "ERR usage usage: deleteroom <name> [<token>]\n".repeat(2)
    );
    assert_eq!(
        s.events(),
        [
            answered(del, None, Some(ErrorCode::Usage)),
            answered(del, None, Some(ErrorCode::Usage)),
        ]
    );
}

#[test]
fn undrained_events_are_counted_not_lost_silently() {
    let mut host = Host::new();
    let mut conn = host.connect();
    // 3 * EVENT_QUEUE answers without draining events (output is drained).
    let lines = "ping\n".repeat(3 * EVENT_QUEUE);
    let mut rest = lines.as_bytes();
    while !rest.is_empty() || !conn.poll_transmit().is_empty() {
        let n = conn.handle_bytes(host.now, &mut host.server, rest);
        rest = &rest[n..];
        let out = conn.poll_transmit().len();
        conn.handle_sent(host.now, &mut host.server, out);
    }
    let mut dropped = 0;
    let mut kept = 0;
    while let Some(event) = host.server.poll_event() {
        match event {
            // Reported after the events kept, which came first.
            Event::Dropped(n) => {
                assert_eq!(kept, EVENT_QUEUE, "Dropped before the kept events");
                dropped += n;
            }
            Event::Answered { .. } => kept += 1,
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(kept, EVENT_QUEUE);
    assert_eq!(dropped + kept as u64, 3 * EVENT_QUEUE as u64);
}

// ---- backpressure and bounded memory ----

#[test]
fn a_connection_is_small_whatever_the_directory_holds() {
    // A listing of 1000 rooms is ~25 KB; a connection cannot hold it. Beyond
    // its buffers: its copy of the config, a listing cursor, one change
    // (with a private room's salt and verifier) and the salt `salt` gave.
    let size = core::mem::size_of::<Connection>();
    assert!(size < CONN_RECV_BUF + CONN_SEND_BUF + 576, "{size} bytes");
}

#[test]
fn a_peer_that_does_not_read_is_pushed_back_on_then_served_in_full() {
    let rooms = 1000;
    let mut host = Host::with(ServerConfig::default(), directory_of(rooms));
    let mut conn = host.connect();
    let requests = 200;
    let input = "getdir\n".repeat(requests);
    let mut rest = input.as_bytes();

    // The peer sends but never reads.
    let mut calls = 0;
    loop {
        let n = conn.handle_bytes(host.now, &mut host.server, rest);
        host.drain_events();
        assert!(conn.poll_transmit().len() <= CONN_SEND_BUF);
        rest = &rest[n..];
        calls += 1;
        if n == 0 {
            break;
        }
    }
    assert!(calls <= 3, "{calls}");
    assert_eq!(conn.recv_capacity(), 0);
    assert!(!rest.is_empty(), "took everything: no backpressure");
    assert!(input.len() - rest.len() <= CONN_RECV_BUF + MAX_LINE);
    // Offered more, it takes none.
    assert_eq!(conn.handle_bytes(host.now, &mut host.server, rest), 0);
    let first = conn.poll_transmit().len();
    assert!(
        first > CONN_SEND_BUF - MAX_LINE && first <= CONN_SEND_BUF,
        "{first}"
    );

    // Now the peer reads, a little at a time, and sends as it can.
    let mut out = Vec::new();
    while !rest.is_empty() || !conn.poll_transmit().is_empty() {
        let pending = conn.poll_transmit();
        assert!(pending.len() <= CONN_SEND_BUF);
        let n = pending.len().min(300);
        out.extend_from_slice(&pending[..n]);
        conn.handle_sent(host.now, &mut host.server, n);
        let room = conn.recv_capacity().min(rest.len());
        let took = conn.handle_bytes(host.now, &mut host.server, &rest[..room]);
        assert_eq!(took, room);
        rest = &rest[took..];
        host.drain_events();
    }
    let out = text(out);
    let want_one = {
        let mut s = format!("OK {rooms} rooms\n");
        for r in host.server.directory().rooms() {
            s += &format!("{} {} {}\n", r.name, r.group, r.port);
        }
        s + ".\n"
    };
    assert_eq!(want_one.lines().count(), rooms + 2);
    assert!(
        out == want_one.repeat(requests),
        "replies garbled or out of order"
    );
    assert_eq!(host.take_events().len(), requests);
}

#[test]
fn a_listing_stays_correct_while_rooms_change() {
    let mut host = Host::with(ServerConfig::default(), directory_of(300));
    let mut lister = host.connect();
    let mut editor = host.connect();
    let n = lister.handle_bytes(host.now, &mut host.server, b"getdir\n");
    assert_eq!(n, 7);
    let mut out = Vec::new();
    let mut step = 0u32;
    while !lister.poll_transmit().is_empty() {
        let pending = lister.poll_transmit();
        let k = pending.len().min(150);
        out.extend_from_slice(&pending[..k]);
        lister.handle_sent(host.now, &mut host.server, k);
        // Between pieces, another peer deletes and adds rooms on both sides
        // of the listing's cursor.
        step += 1;
        let edits = format!(
            "deleteroom r{:04}\nmakeroom s{step:03} 239.2.0.{} 5000\nmakeroom a{step:03} 239.3.0.{} 5000\n",
            (step * 7) % 300,
            step % 256,
            step % 256,
        );
        let reply = host.feed(&mut editor, edits.as_bytes());
        assert_eq!(reply.matches("OK").count(), 3, "{reply}");
    }
    let out = text(out);
    let (count, lines) = listing_lines(&out);
    assert_eq!(
        count, 300,
        "the header counts the rooms when the listing began"
    );
    let names: Vec<&str> = lines.iter().map(|l| l.split(' ').next().unwrap()).collect();
    // Sorted, no duplicates.
    for pair in names.windows(2) {
        assert_eq!(
            cmp_names(pair[0], pair[1]),
            core::cmp::Ordering::Less,
            "{pair:?}"
        );
    }
    // Every room present throughout is listed (exactly once: see above).
    let listed: BTreeSet<&str> = names.iter().copied().collect();
    let deleted: BTreeSet<String> = (1..=step)
        .map(|s| format!("r{:04}", (s * 7) % 300))
        .collect();
    for i in 0..300 {
        let n = format!("r{i:04}");
        if !deleted.contains(&n) {
            assert!(listed.contains(n.as_str()), "{n} missing");
        }
    }
    // Rooms added behind the cursor (`a...`) are never seen; rooms added
    // ahead of it (`s...`) are.
    assert!(!names.iter().any(|n| n.starts_with('a')));
    let ahead = names.iter().filter(|n| n.starts_with('s')).count();
    assert!(
        ahead > 0 && ahead < usize::try_from(step).unwrap(),
        "{ahead} of {step}"
    );
    for line in &lines {
        assert_eq!(line.split(' ').count(), 3, "{line}");
    }
    assert!(step > 10, "the listing was not interleaved: {step} steps");
}

// ---- timers ----

#[test]
fn a_partial_line_is_closed_after_the_partial_line_timeout() {
    let mut s = Session::new();
    assert_eq!(s.conn.poll_timeout(), Some(Instant::ZERO + IDLE_TIMEOUT));
    s.at(secs(5)).send("pin");
    let deadline = secs(5) + PARTIAL_LINE_TIMEOUT;
    assert_eq!(s.conn.poll_timeout(), Some(deadline));
    // Trickling more of the same line does not push the deadline back.
    s.at(secs(20)).send("g");
    assert_eq!(s.conn.poll_timeout(), Some(deadline));

    s.timeout(before(deadline));
    assert!(s.events().is_empty());
    assert_eq!(s.host.drain(&mut s.conn), "");
    assert!(!s.conn.is_finished());
    assert_eq!(s.conn.recv_capacity(), CONN_RECV_BUF - 4);

    s.timeout(deadline);
    assert_eq!(s.events(), [timed_out(Timeout::PartialLine)]);
    assert_eq!(
        s.host.drain(&mut s.conn),
        "ERR timeout closing a connection that was quiet too long\n"
    );
    assert!(s.conn.is_finished());
    assert_eq!(s.conn.recv_capacity(), 0);
}

#[test]
fn finishing_the_line_stops_the_partial_line_timer() {
    let mut s = Session::new();
    s.at(secs(1)).send("pi");
    assert_eq!(s.at(secs(2)).send("ng\n"), "OK pong\n");
    assert_eq!(s.events(), [answered(Some(CommandKind::Ping), None, None)]);
    assert_eq!(s.conn.poll_timeout(), Some(secs(2) + IDLE_TIMEOUT));
    s.timeout(secs(1) + PARTIAL_LINE_TIMEOUT);
    assert!(s.events().is_empty());
    assert!(!s.conn.is_finished());
}

#[test]
fn an_idle_connection_is_closed_after_the_idle_timeout() {
    let mut s = Session::new();
    let deadline = Instant::ZERO + IDLE_TIMEOUT;
    assert_eq!(s.conn.poll_timeout(), Some(deadline));
    s.timeout(before(deadline));
    assert!(s.events().is_empty());
    assert!(!s.conn.is_finished());
    s.timeout(deadline);
    assert_eq!(s.events(), [timed_out(Timeout::Idle)]);
    assert_eq!(
        s.host.drain(&mut s.conn),
        "ERR timeout closing a connection that was quiet too long\n"
    );
    assert!(s.conn.is_finished());
}

#[test]
fn ping_resets_the_idle_timer() {
    let mut s = Session::new();
    let first = Instant::ZERO + IDLE_TIMEOUT;
    let ping_at = before(first);
    assert_eq!(s.at(ping_at).send("ping\n"), "OK pong\n");
    assert_eq!(s.conn.poll_timeout(), Some(ping_at + IDLE_TIMEOUT));
    s.timeout(first);
    s.timeout(before(ping_at + IDLE_TIMEOUT));
    assert_eq!(s.events(), [answered(Some(CommandKind::Ping), None, None)]);
    assert!(!s.conn.is_finished());
    s.timeout(ping_at + IDLE_TIMEOUT);
    assert_eq!(s.events(), [timed_out(Timeout::Idle)]);
}

#[test]
fn a_peer_that_never_reads_is_aborted_after_the_send_timeout() {
    let mut host = Host::new();
    // The greeting is never read.
    let mut conn = host.open();
    host.now = secs(10);
    let n = conn.handle_bytes(host.now, &mut host.server, b"ping\n");
    assert_eq!(n, 5);
    host.drain_events();
    let deadline = Instant::ZERO + SEND_TIMEOUT;
    assert_eq!(conn.poll_timeout(), Some(deadline));
    host.timeout(&mut conn, before(deadline));
    assert!(!conn.is_finished());
    assert!(conn.poll_transmit().ends_with(b"OK pong\n"));
    host.timeout(&mut conn, deadline);
    assert!(host.take_events().ends_with(&[timed_out(Timeout::Send)]));
    // Aborted: nothing more to send, nothing more taken, no timer.
    assert!(conn.is_finished());
    assert_eq!(conn.poll_transmit(), b"");
    assert_eq!(conn.recv_capacity(), 0);
    assert_eq!(conn.poll_timeout(), None);
    host.timeout(&mut conn, secs(1000));
    assert!(host.take_events().is_empty());
}

#[test]
fn a_peer_that_reads_slowly_is_not_aborted() {
    let mut s = Session::with_directory(directory_of(200));
    let n = s
        .conn
        .handle_bytes(s.host.now, &mut s.host.server, b"getdir\n");
    assert_eq!(n, 7);
    let mut now = Instant::ZERO;
    let mut out = Vec::new();
    while !s.conn.poll_transmit().is_empty() {
        // Just inside the send timeout each time (and well inside the idle
        // timeout overall).
        now = before(now + SEND_TIMEOUT);
        s.timeout(now);
        assert!(!s.conn.is_finished());
        let pending = s.conn.poll_transmit();
        let k = pending.len().min(500);
        out.extend_from_slice(&pending[..k]);
        s.conn.handle_sent(now, &mut s.host.server, k);
    }
    let (count, lines) = listing_lines(core::str::from_utf8(&out).unwrap());
    assert_eq!((count, lines.len()), (200, 200));
    assert!(now > Instant::ZERO + SEND_TIMEOUT * 3);
    assert!(
        !s.events()
            .iter()
            .any(|e| matches!(e, Event::TimedOut { .. }))
    );
}

#[test]
fn spurious_timeouts_are_no_ops() {
    let mut s = Session::with_directory(directory_of(3));
    s.at(secs(1)).send("makeroom x 239.9.9.9 9999\nhel");
    s.events();
    let deadline = s.conn.poll_timeout().unwrap();
    assert_eq!(deadline, secs(1) + PARTIAL_LINE_TIMEOUT);
    for at in [
        Instant::ZERO,
        secs(1),
        secs(2),
        before(deadline),
        before(deadline),
    ] {
        s.timeout(at);
        assert!(s.events().is_empty());
        assert_eq!(s.conn.poll_transmit(), b"");
        assert_eq!(s.conn.poll_timeout(), Some(deadline));
        assert!(!s.conn.is_finished());
    }
    // The line goes on where it was.
    let reply = s.at(secs(3)).send("p\n");
    assert!(
        reply.starts_with("OK commands") && reply.ends_with("\n.\n"),
        "{reply}"
    );
}

#[test]
fn the_deadline_is_never_in_the_past() {
    // Whatever `now` the host last passed in, poll_timeout never asks to be
    // called before it: a host loop never sees a deadline that already went.
    let mut s = Session::new();
    // A partial line at 0s, more of it at 31s (the host was late).
    s.at(secs(0)).send("pi");
    s.at(secs(31)).send("n");
    let at = s.conn.poll_timeout().unwrap();
    assert!(at >= secs(31), "deadline {at:?} is before now (31s)");
    // It is due now: the timer fires.
    s.timeout(secs(31));
    assert_eq!(s.events(), [timed_out(Timeout::PartialLine)]);

    // Two overdue timers: after the first fires, the second is not reported
    // in the past either.
    let mut s = Session::new();
    s.at(secs(0)).send("x");
    // Replies the peer does not read, and a new partial line: both the send
    // and the partial-line timers run out at 35s.
    let n = s
        .conn
        .handle_bytes(secs(5), &mut s.host.server, b"\nping\ny");
    assert_eq!(n, 7);
    s.host.drain_events();
    s.events();
    s.timeout(secs(100));
    assert_eq!(s.events().len(), 1);
    let at = s.conn.poll_timeout().unwrap();
    assert!(at >= secs(100), "deadline {at:?} is before now (100s)");
    s.timeout(at);
    assert_eq!(s.events(), [timed_out(Timeout::Send)]);
    assert!(s.conn.is_finished());
}

#[test]
fn time_that_goes_backwards_is_clamped() {
    let mut s = Session::new();
    s.at(secs(100)).send("ping\n");
    let deadline = s.conn.poll_timeout().unwrap();
    assert_eq!(deadline, secs(100) + IDLE_TIMEOUT);
    // The host's clock jumps back 50s and a line comes in.
    s.at(secs(50)).send("ping\n");
    let after = s.conn.poll_timeout().unwrap();
    assert!(after >= deadline, "{after:?} < {deadline:?}");
}

/// A peer that reads a byte now and then and sends nothing: the send timer
/// never runs out, the idle timer closes it with replies still queued. Once
/// closing, the next timer that runs out drops it: it is not sent another
/// farewell, and its deadline is not pushed back again. With `offer`, the
/// host also hands in bytes the closing connection does not take.
fn trickle_until_dropped(offer: bool) {
    let mut s = Session::with_directory(directory_of(200));
    let n = s
        .conn
        .handle_bytes(s.host.now, &mut s.host.server, b"getdir\n");
    assert_eq!(n, 7);
    let step = Duration::from_secs(20);
    let mut now = Instant::ZERO;
    let mut out = Vec::new();
    let mut closed_at = None;
    for _ in 0..500 {
        now = now + step;
        s.timeout(now);
        if closed_at.is_none() && s.events().contains(&timed_out(Timeout::Idle)) {
            closed_at = Some(now);
        }
        if s.conn.is_finished() {
            break;
        }
        if let Some(&b) = s.conn.poll_transmit().first() {
            out.push(b);
            s.conn.handle_sent(now, &mut s.host.server, 1);
        }
        if offer && closed_at.is_some() {
            assert_eq!(s.conn.handle_bytes(now, &mut s.host.server, b"ping\n"), 0);
        }
    }
    let closed_at = closed_at.expect("the idle timer never ran out");
    assert_eq!(closed_at, Instant::ZERO + IDLE_TIMEOUT);
    assert!(s.conn.is_finished(), "still open at {now:?}");
    // Dropped `SEND_TIMEOUT` after the close began, however it reads.
    assert!(
        now <= closed_at + SEND_TIMEOUT + step,
        "dropped only at {now:?}"
    );
    // (The idle event was taken in the loop.)
    assert_eq!(s.events(), [timed_out(Timeout::Send)]);
    assert_eq!(s.conn.poll_transmit(), b"");
    assert!(!text(out).contains("ERR"));
}

#[test]
fn a_closing_connection_is_dropped_if_the_peer_only_trickles() {
    trickle_until_dropped(false);
}

#[test]
fn bytes_offered_while_closing_do_not_keep_it_open() {
    trickle_until_dropped(true);
}

#[test]
fn a_bye_whose_reply_is_not_read_is_dropped_after_the_send_timeout() {
    let mut host = Host::new();
    let mut conn = host.connect();
    host.now = secs(5);
    // Bye with trailing bytes that will never be read.
    let _ = conn.handle_bytes(host.now, &mut host.server, b"bye\nxyz");
    host.drain_events();
    host.take_events();
    let deadline = conn.poll_timeout().unwrap();
    assert_eq!(deadline, secs(5) + SEND_TIMEOUT);
    host.timeout(&mut conn, deadline);
    assert!(conn.is_finished());
    // Dropped for not reading; no `ERR timeout` after `OK bye`.
    assert_eq!(host.take_events(), [timed_out(Timeout::Send)]);
    assert_eq!(conn.poll_transmit(), b"");
}

// ---- chunking invariance ----

/// One piece of a client's byte stream: valid commands, near misses, and
/// junk, over a small name and address pool so that rooms clash.
fn arb_piece() -> impl Strategy<Value = Vec<u8>> {
    let names = prop_oneof![
        Just("a"),
        Just("B"),
        Just("b"),
        Just("r0001"),
        Just("bad\u{a0}")
    ];
    let addrs = prop_oneof![
        Just("239.0.0.1"),
        Just("239.1.0.1"),
        Just("224.0.0.1"),
        Just("239.0.0")
    ];
    let ports = prop_oneof![Just("5000"), Just("1024"), Just("80"), Just("65536")];
    let eol = prop_oneof![Just("\n"), Just("\r\n")];
    prop_oneof![
        4 => (names.clone(), addrs, ports, eol.clone())
            .prop_map(|(n, a, p, e)| format!("makeroom {n} {a} {p}{e}").into_bytes()),
        2 => (names, eol.clone()).prop_map(|(n, e)| format!("deleteroom {n}{e}").into_bytes()),
        2 => eol.clone().prop_map(|e| format!("getdir{e}").into_bytes()),
        1 => Just(b"help\n".to_vec()),
        1 => Just(b"PING\n".to_vec()),
        1 => Just(b"ping 1 2 3 4 5\n".to_vec()),
        1 => Just(b"\n".to_vec()),
        1 => Just(b"whatever\n".to_vec()),
        1 => Just(b"bye\n".to_vec()),
        1 => (MAX_LINE - 3..MAX_LINE + 3).prop_map(|n| {
            let mut v = vec![b'y'; n];
            v.push(b'\n');
            v
        }),
        2 => proptest::collection::vec(any::<u8>(), 0..24),
    ]
}

/// Feeds `stream` cut at `cuts`, writing output out `window` bytes at a
/// time; returns every byte sent and every event.
fn run(stream: &[u8], cuts: &[usize], window: usize) -> (String, Vec<Event>) {
    let mut host = Host::with(ServerConfig::default(), directory_of(3));
    let mut conn = host.open();
    let mut out = Vec::new();
    let mut bounds: Vec<usize> = cuts.iter().map(|&c| c.min(stream.len())).collect();
    bounds.push(stream.len());
    bounds.sort_unstable();
    let mut start = 0;
    for end in bounds {
        let mut rest = &stream[start..end];
        start = end;
        while !rest.is_empty() && !conn.is_finished() {
            let room = conn.recv_capacity().min(rest.len());
            let n = conn.handle_bytes(host.now, &mut host.server, &rest[..room]);
            assert_eq!(n, room);
            rest = &rest[n..];
            host.drain_events();
            // Write out one window's worth, not necessarily everything.
            let pending = conn.poll_transmit();
            let k = pending.len().min(window);
            out.extend_from_slice(&pending[..k]);
            conn.handle_sent(host.now, &mut host.server, k);
            host.drain_events();
            assert!(n > 0 || k > 0, "stuck: nothing taken, nothing to send");
        }
    }
    out.extend(host.drain_by(&mut conn, window));
    (text(out), host.take_events())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn prop_any_split_gives_the_same_replies(
        pieces in proptest::collection::vec(arb_piece(), 1..24),
        cuts in proptest::collection::vec(any::<usize>(), 0..12),
        window in 1..3000usize,
    ) {
        let stream: Vec<u8> = pieces.concat();
        let cuts: Vec<usize> = cuts.iter().map(|c| c % (stream.len() + 1)).collect();
        let whole = run(&stream, &[], usize::MAX);
        let split = run(&stream, &cuts, window);
        prop_assert_eq!(&split.0, &whole.0);
        prop_assert_eq!(&split.1, &whole.1);
        let every_byte: Vec<usize> = (1..stream.len()).collect();
        let bytewise = run(&stream, &every_byte, 1);
        prop_assert_eq!(&bytewise.0, &whole.0);
        prop_assert_eq!(&bytewise.1, &whole.1);
        // Every reply line is a whole line of at most MAX_LINE bytes.
        prop_assert!(whole.0.is_empty() || whole.0.ends_with('\n'));
        for line in whole.0.split_inclusive('\n') {
            prop_assert!(line.len() <= MAX_LINE, "{} bytes", line.len());
        }
    }

    #[test]
    fn prop_any_bytes_never_panic_and_keep_the_connection_usable(
        bytes in proptest::collection::vec(any::<u8>(), 0..2000),
    ) {
        let mut s = Session::new();
        let _ = s.send(&bytes);
        // Unless the junk said bye, a fresh line after an LF is answered.
        if s.conn.recv_capacity() > 0 {
            let reply = s.send("\nping\n");
            prop_assert!(reply.ends_with("OK pong\n"), "{reply:?}");
        }
    }
}

#[test]
fn an_idle_timeout_mid_listing_ends_it_without_an_err_that_reads_as_a_room() {
    let mut host = Host::with(ServerConfig::default(), directory_of(200));
    let mut conn = host.connect();
    conn.handle_bytes(host.now, &mut host.server, b"getdir\n");
    // The peer reads only the first 100 bytes, then nothing for ten minutes.
    let first = text(conn.poll_transmit()[..100].to_vec());
    conn.handle_sent(host.now, &mut host.server, 100);
    let mut read = first;
    host.timeout(&mut conn, Instant::ZERO + IDLE_TIMEOUT);
    read += &host.drain(&mut conn);
    assert!(conn.is_finished());
    let lines: Vec<&str> = read.lines().collect();
    assert_eq!(lines[0], "OK 200 rooms");
    assert!(lines.len() < 202, "the listing was cut short");
    for line in &lines[1..] {
        assert!(line.starts_with('r'), "not a room line: {line:?}");
    }
}

// ---- durable replies: what others see is what is stored ----

fn durable_config() -> ServerConfig {
    ServerConfig {
        durable_replies: true,
        ..ServerConfig::default()
    }
}

impl Host {
    /// Hands every resolved change to its connection, then wakes the other
    /// waiting ones, draining as the host would; returns what each
    /// connection sent, in the order of `conns`.
    fn resolve(&mut self, conns: &mut [&mut Connection]) -> Vec<String> {
        while let Some(resolved) = self.server.poll_resolved() {
            for conn in conns.iter_mut().filter(|c| c.id() == resolved.conn) {
                conn.handle_resolved(self.now, &mut self.server, resolved);
            }
        }
        for conn in conns.iter_mut().filter(|c| c.is_waiting()) {
            conn.handle_wake(self.now, &mut self.server);
        }
        self.drain_events();
        conns.iter_mut().map(|c| self.drain(c)).collect()
    }

    /// The host stores the staged directory successfully.
    fn persist(&mut self, conns: &mut [&mut Connection]) -> Vec<String> {
        let version = self.server.poll_persist().expect("nothing to store");
        self.server.handle_persisted(self.now, version);
        self.resolve(conns)
    }

    /// Time passes to `now` without a successful store.
    fn server_timeout(&mut self, now: Instant, conns: &mut [&mut Connection]) -> Vec<String> {
        self.now = now;
        self.server.handle_timeout(now);
        self.resolve(conns)
    }

    fn names(directory: &Directory) -> Vec<&str> {
        directory.rooms().iter().map(|r| r.name.as_str()).collect()
    }
}

#[test]
fn a_change_is_seen_by_others_only_once_it_is_stored() {
    let mut host = Host::with(durable_config(), directory_of(1));
    let mut maker = host.connect();
    let mut other = host.connect();
    // The maker's OK, and everything after it, waits for the disk.
    assert_eq!(
        host.feed(&mut maker, b"makeroom x 239.9.9.9 9000\nping\n"),
        ""
    );
    assert!(maker.is_waiting());
    assert_eq!(Host::names(host.server.staged()), ["r0000", "x"]);
    assert_eq!(Host::names(host.server.directory()), ["r0000"]);
    // Others list what is stored.
    assert_eq!(
        host.feed(&mut other, b"getdir\n"),
        "OK 1 room\nr0000 239.1.0.0 5000\n.\n"
    );
    // A command whose answer depends on the waiting change waits too (and
    // so does everything behind it), rather than say `exists` for a room
    // that may never be stored.
    assert_eq!(
        host.feed(&mut other, b"makeroom X 239.1.1.1 9000\nping\n"),
        ""
    );
    assert!(other.is_waiting());
    // A command that does not depend on it is answered.
    let mut third = host.connect();
    assert_eq!(host.feed(&mut third, b"makeroom y 239.9.9.8 9000\n"), "");
    assert!(third.is_waiting(), "y waits for the disk, not for x");
    assert_eq!(
        host.feed(&mut third, b"deleteroom r0000\n"),
        "",
        "nothing after a change is answered before it"
    );
    host.take_events();

    let out = host.persist(&mut [&mut maker, &mut other, &mut third]);
    assert_eq!(out[0], "OK created x 239.9.9.9 9000\nOK pong\n");
    assert_eq!(
        out[1],
        "ERR exists a room named 'x' exists already; pick another name\nOK pong\n"
    );
    // y is stored; the deleteroom behind it is staged now, and waits.
    assert_eq!(out[2], "OK created y 239.9.9.8 9000\n");
    assert!(third.is_waiting());
    let events = host.take_events();
    assert!(events.contains(&Event::Answered {
        conn: maker.id(),
        command: Some(CommandKind::MakeRoom),
        room: name("x"),
        error: None,
    }));
    assert!(events.contains(&Event::Answered {
        conn: other.id(),
        command: Some(CommandKind::MakeRoom),
        room: name("X"),
        error: Some(ErrorCode::NameTaken),
    }));
    assert_eq!(Host::names(host.server.directory()), ["r0000", "x", "y"]);
    let out = host.persist(&mut [&mut third]);
    assert_eq!(out[0], "OK deleted r0000\n");
    assert_eq!(Host::names(host.server.directory()), ["x", "y"]);
    assert_eq!(host.server.poll_persist(), None);
}

#[test]
fn a_change_not_stored_in_time_is_undone_and_answered_unavailable() {
    let mut host = Host::with(durable_config(), directory_of(1));
    host.now = secs(10);
    let mut maker = host.connect();
    let mut deleter = host.connect();
    let mut other = host.connect();
    assert_eq!(
        host.feed(&mut maker, b"makeroom x 239.9.9.9 9000\nping\n"),
        ""
    );
    assert_eq!(host.feed(&mut deleter, b"deleteroom r0000\n"), "");
    assert_eq!(host.feed(&mut other, b"makeroom x 239.8.8.8 9000\n"), "");
    host.take_events();
    // Every save fails (the host never calls handle_persisted).
    let deadline = secs(10) + PERSIST_TIMEOUT;
    assert_eq!(host.server.poll_timeout(), Some(deadline));
    let out = host.server_timeout(
        before(deadline),
        &mut [&mut maker, &mut deleter, &mut other],
    );
    assert_eq!(out, ["", "", ""]);
    let out = host.server_timeout(deadline, &mut [&mut maker, &mut deleter, &mut other]);
    let unavailable = format!(
        "ERR unavailable the change could not be stored within {}, so it \
         was not made; try again later\n",
        crate::time::HumanDuration(PERSIST_TIMEOUT)
    );
    assert_eq!(out[0], format!("{unavailable}OK pong\n"));
    assert_eq!(out[1], unavailable);
    // The other connection's makeroom no longer depends on anything: it is
    // staged in turn (and waits for the disk like any change).
    assert_eq!(out[2], "");
    assert!(other.is_waiting());
    assert_eq!(Host::names(host.server.staged()), ["r0000", "x"]);
    assert_eq!(Host::names(host.server.directory()), ["r0000"]);
    let events = host.take_events();
    assert!(events.contains(&Event::Undone(2)), "{events:?}");
    assert!(events.contains(&Event::Answered {
        conn: deleter.id(),
        command: Some(CommandKind::DeleteRoom),
        room: name("r0000"),
        error: Some(ErrorCode::Unavailable),
    }));
    // The disk is back: the undo and the new change are stored together.
    let out = host.persist(&mut [&mut maker, &mut deleter, &mut other]);
    assert_eq!(out[2], "OK created x 239.8.8.8 9000\n");
    assert_eq!(
        host.feed(&mut maker, b"getdir\n"),
        "OK 2 rooms\nr0000 239.1.0.0 5000\nx 239.8.8.8 9000\n.\n"
    );
    assert_eq!(host.server.poll_timeout(), None);
}

#[test]
fn an_undo_is_stored_even_when_nothing_else_changes() {
    let mut host = Host::with(durable_config(), Directory::new());
    let mut maker = host.connect();
    host.feed(&mut maker, b"makeroom x 239.9.9.9 9000\n");
    let staged = host.server.poll_persist().unwrap();
    // The save that failed may have reached the disk after all (it failed
    // after replacing the file): the directory without x must be stored
    // again.
    host.server.handle_persist_failed(false);
    host.server.handle_persist_failed(true);
    host.server_timeout(Instant::ZERO + PERSIST_TIMEOUT, &mut [&mut maker]);
    let undone = host.server.poll_persist().unwrap();
    assert!(undone > staged);
    assert!(host.server.staged().is_empty());
    // A late report of the old save does not make x visible.
    host.server.handle_persisted(host.now, staged);
    assert!(host.server.directory().is_empty());
    assert!(host.server.poll_resolved().is_none());
    host.server.handle_persisted(host.now, undone);
    assert_eq!(host.server.poll_persist(), None);
}

#[test]
fn nothing_is_stored_once_every_waiting_change_is_undone() {
    // The disk is full: every save fails before the file is replaced.
    let mut host = Host::with(durable_config(), directory_of(1));
    let mut maker = host.connect();
    let mut deleter = host.connect();
    host.feed(&mut maker, b"makeroom x 239.9.9.9 9000\n");
    host.feed(&mut deleter, b"deleteroom r0000\n");
    assert!(host.server.poll_persist().is_some());
    host.server.handle_persist_failed(true);
    let out = host.server_timeout(
        Instant::ZERO + PERSIST_TIMEOUT,
        &mut [&mut maker, &mut deleter],
    );
    assert!(
        out.iter().all(|o| o.starts_with("ERR unavailable")),
        "{out:?}"
    );
    // Staged is the stored directory again: no save to retry for ever.
    assert_eq!(Host::names(host.server.staged()), ["r0000"]);
    assert_eq!(host.server.poll_persist(), None);
    assert_eq!(host.server.poll_timeout(), None);
    // A later change is stored as usual.
    host.feed(&mut maker, b"makeroom y 239.9.9.8 9000\n");
    assert!(host.server.poll_persist().is_some());
    assert_eq!(
        host.persist(&mut [&mut maker]),
        ["OK created y 239.9.9.8 9000\n"]
    );
    assert_eq!(host.server.poll_persist(), None);
}

#[test]
fn an_undo_with_changes_still_waiting_is_stored_with_them() {
    let mut host = Host::with(durable_config(), Directory::new());
    let mut first = host.connect();
    let mut second = host.connect();
    host.feed(&mut first, b"makeroom x 239.9.9.9 9000\n");
    host.now = secs(1);
    host.feed(&mut second, b"makeroom y 239.9.9.8 9000\n");
    host.server.handle_persist_failed(true);
    host.server_timeout(
        Instant::ZERO + PERSIST_TIMEOUT,
        &mut [&mut first, &mut second],
    );
    // y still waits: staged (y alone) is not what is stored (nothing).
    assert_eq!(Host::names(host.server.staged()), ["y"]);
    assert!(host.server.poll_persist().is_some());
}

#[test]
fn the_timeout_is_shown_for_people() {
    let mut config = durable_config();
    config.persist_timeout = Duration::ZERO;
    let mut host = Host::with(config, Directory::new());
    let mut maker = host.connect();
    host.feed(&mut maker, b"makeroom x 239.9.9.9 9000\n");
    let out = host.server_timeout(Instant::ZERO, &mut [&mut maker]);
    assert_eq!(
        out,
        [
            "ERR unavailable the change could not be stored within 0s, so it was not made; \
          try again later\n"
        ]
    );
}

#[test]
fn commands_that_depend_on_a_waiting_change_wait_for_it() {
    // Each case: a change waiting, then another connection's command, and
    // its answer once the change is stored.
    let cases: [(&str, &str, &str); 6] = [
        (
            "makeroom x 239.9.9.9 9000",
            "makeroom y 239.9.9.9 9000",
            "ERR inuse ",
        ),
        // Not the maker and no token: once x is stored, refused.
        ("makeroom x 239.9.9.9 9000", "deleteroom X", "ERR denied "),
        (
            "deleteroom r0000",
            "makeroom r0000 239.7.7.7 7000",
            "OK created",
        ),
        ("deleteroom r0000", "deleteroom r0000", "ERR noroom "),
        (
            "deleteroom r0000",
            "makeroom z 239.1.0.0 5000",
            "OK created",
        ),
        (
            "makeroom x 239.9.9.9 9000",
            "makeroom x 239.9.9.9 9000",
            "ERR exists ",
        ),
    ];
    for (first, second, answer) in cases {
        let mut host = Host::with(durable_config(), directory_of(1));
        let mut a = host.connect();
        let mut b = host.connect();
        assert_eq!(host.feed(&mut a, format!("{first}\n").as_bytes()), "");
        assert_eq!(host.feed(&mut b, format!("{second}\n").as_bytes()), "");
        assert!(b.is_waiting(), "{second} after {first}");
        let out = host.persist(&mut [&mut a, &mut b]);
        assert!(out[0].starts_with("OK "), "{first}: {out:?}");
        if answer.starts_with("OK") {
            // Staged now: answered once stored.
            assert_eq!(out[1], "");
            let out = host.persist(&mut [&mut b]);
            assert!(out[0].starts_with(answer), "{second}: {out:?}");
        } else {
            assert!(out[1].starts_with(answer), "{second}: {out:?}");
        }
    }
}

#[test]
fn changes_wait_when_max_pending_changes_are_waiting() {
    let mut host = Host::with(durable_config(), Directory::new());
    let mut conns: Vec<Connection> = (0..=MAX_PENDING_CHANGES).map(|_| host.connect()).collect();
    for (i, conn) in conns.iter_mut().enumerate() {
        let [_, _, b, c] = u32::try_from(i).unwrap().to_be_bytes();
        let line = format!("makeroom m{i} 239.2.{b}.{c} 9000\nping\n");
        assert_eq!(host.feed(conn, line.as_bytes()), "");
    }
    assert_eq!(host.server.staged().len(), MAX_PENDING_CHANGES);
    let last = conns.last_mut().unwrap();
    // Queries do not wait.
    let mut reader = host.connect();
    assert_eq!(host.feed(&mut reader, b"getdir\n"), "OK 0 rooms\n.\n");
    assert!(last.is_waiting());
    let mut all: Vec<&mut Connection> = conns.iter_mut().collect();
    let out = host.persist(&mut all);
    for (i, reply) in out[..MAX_PENDING_CHANGES].iter().enumerate() {
        assert!(reply.starts_with(&format!("OK created m{i} ")), "{reply}");
    }
    assert_eq!(out[MAX_PENDING_CHANGES], "", "staged now");
    let out = host.persist(&mut all);
    assert!(out[MAX_PENDING_CHANGES].starts_with("OK created"));
    assert_eq!(host.server.directory().len(), MAX_PENDING_CHANGES + 1);
}

#[test]
fn a_change_waiting_for_the_disk_does_not_run_the_connection_timers() {
    let config = ServerConfig {
        persist_timeout: Duration::from_secs(120),
        ..durable_config()
    };
    let mut host = Host::with(config, Directory::new());
    let mut conn = host.connect();
    conn.handle_bytes(host.now, &mut host.server, b"makeroom a 239.1.1.1 5000\n");
    assert!(conn.is_waiting());
    assert_eq!(conn.poll_transmit(), b"");
    // The disk is slow: a minute passes before the save completes.
    host.timeout(&mut conn, secs(60));
    assert!(
        !conn.is_finished(),
        "a reply waiting for the disk is not the peer's fault"
    );
    let version = host.server.poll_persist().unwrap();
    host.server.handle_persisted(host.now, version);
    let resolved = host.server.poll_resolved().unwrap();
    assert!(resolved.is_stored());
    assert_eq!(resolved.conn, conn.id());
    conn.handle_resolved(host.now, &mut host.server, resolved);
    assert_eq!(
        text(conn.poll_transmit().to_vec()),
        "OK created a 239.1.1.1 5000\n"
    );
    // From now on the peer has the usual time to read it.
    host.timeout(&mut conn, before(secs(60) + SEND_TIMEOUT));
    assert!(!conn.is_finished());
    host.timeout(&mut conn, secs(60) + SEND_TIMEOUT);
    assert!(conn.is_finished());
}

#[test]
fn an_outcome_for_another_connection_or_change_is_ignored() {
    let mut host = Host::with(durable_config(), Directory::new());
    let mut a = host.connect();
    let mut b = host.connect();
    host.feed(&mut a, b"makeroom a 239.1.1.1 5000\n");
    host.feed(&mut b, b"makeroom b 239.1.1.2 5000\n");
    let version = host.server.poll_persist().unwrap();
    host.server.handle_persisted(host.now, version);
    let for_a = host.server.poll_resolved().unwrap();
    let for_b = host.server.poll_resolved().unwrap();
    // Misrouted (a host that reused an id, say): no reply, still waiting.
    b.handle_resolved(host.now, &mut host.server, for_a);
    assert!(b.is_waiting());
    assert_eq!(b.poll_transmit(), b"");
    b.handle_resolved(host.now, &mut host.server, for_b);
    assert_eq!(
        text(b.poll_transmit().to_vec()),
        "OK created b 239.1.1.2 5000\n"
    );
    // Twice: ignored.
    b.handle_resolved(host.now, &mut host.server, for_b);
    assert_eq!(
        text(b.poll_transmit().to_vec()),
        "OK created b 239.1.1.2 5000\n"
    );
}

#[test]
fn the_servers_timer_is_never_in_the_past_and_spurious_calls_are_no_ops() {
    let mut host = Host::with(durable_config(), Directory::new());
    assert_eq!(host.server.poll_timeout(), None);
    host.server.handle_timeout(secs(1000));
    assert!(host.server.poll_resolved().is_none());
    let mut conn = host.connect();
    host.now = secs(1000);
    host.feed(&mut conn, b"makeroom a 239.1.1.1 5000\n");
    // Made at 1000 s: due at 1005 s, not before the latest time seen.
    assert_eq!(
        host.server.poll_timeout(),
        Some(secs(1000) + PERSIST_TIMEOUT)
    );
    host.server.handle_timeout(secs(1001));
    assert!(host.server.poll_resolved().is_none());
    // The host was late: the deadline is now, not in the past. (A failed
    // save may have reached the disk, so the undo is to be stored.)
    host.server.handle_persist_failed(false);
    host.server.handle_timeout(secs(3000));
    let resolved = host.server.poll_resolved().unwrap();
    assert!(!resolved.is_stored());
    // A report of a version never asked for is clamped.
    let version = host.server.poll_persist().unwrap();
    host.server.handle_persisted(host.now, version + 100);
    assert_eq!(host.server.poll_persist(), None);
    host.feed(&mut conn, b"ping\n");
    conn.handle_resolved(host.now, &mut host.server, resolved);
    assert!(host.drain(&mut conn).starts_with("ERR unavailable "));
    host.feed(&mut conn, b"makeroom b 239.1.1.2 5000\n");
    let next = host.server.poll_persist().unwrap();
    assert_eq!(
        next,
        version + 1,
        "a bogus report marked a later change stored"
    );
    host.server.handle_persisted(host.now, next);
    let resolved = host.server.poll_resolved().unwrap();
    assert!(resolved.is_stored());
}

// ---- events name their connection; the busy refusal ----

#[test]
fn events_name_the_connection_they_are_about() {
    let mut host = Host::new();
    let mut a = host.connect();
    let mut b = host.connect();
    assert_ne!(a.id(), b.id());
    host.feed(&mut b, b"ping\n");
    host.feed(&mut a, b"nope\n");
    let events = host.take_events();
    let conns: Vec<_> = events.iter().map(Event::conn).collect();
    assert_eq!(conns, [Some(b.id()), Some(a.id())]);
    host.timeout(&mut a, Instant::ZERO + IDLE_TIMEOUT);
    assert_eq!(
        host.take_events(),
        [Event::TimedOut {
            conn: a.id(),
            timeout: Timeout::Idle
        }]
    );
}

#[test]
fn the_busy_reply_is_one_err_busy_line() {
    let line = busy_reply(10_000);
    assert_eq!(
        line.as_str(),
        "ERR busy the server is serving its limit of 10000 clients; try again later\n"
    );
    let line = busy_reply(usize::MAX);
    assert!(line.len() <= MAX_LINE && line.ends_with('\n'));
}

// ---- the partial-line timer runs only while the server reads ----

#[test]
fn a_line_cut_by_the_servers_own_backpressure_is_not_a_partial_line() {
    // The scenario, small: a steady reader asks for long listings
    // in whole lines; the read-ahead fills up and cuts the last line, and
    // the server stops reading while its replies go out.
    let config = ServerConfig {
        partial_line_timeout: Duration::from_secs(3),
        ..ServerConfig::default()
    };
    let mut host = Host::with(config, directory_of(2000));
    let mut conn = host.connect();
    let input = "getdir\n".repeat(CONN_RECV_BUF / 7 + 2);
    let taken = conn.handle_bytes(host.now, &mut host.server, input.as_bytes());
    assert!(taken < input.len());
    assert_eq!(conn.recv_capacity(), 0, "the read-ahead is full");
    assert_ne!(input.as_bytes()[taken - 1], b'\n', "a line was cut");
    host.drain_events();
    // The peer reads 2 KiB a second (the server stays behind it).
    let mut read = 0;
    for second in 1..=20 {
        host.timeout(&mut conn, secs(second));
        assert!(
            !host
                .take_events()
                .contains(&timed_out(Timeout::PartialLine)),
            "closed at {second}s for a line the server did not read"
        );
        assert!(!conn.is_finished());
        let n = conn.poll_transmit().len().min(2048);
        read += n;
        conn.handle_sent(host.now, &mut host.server, n);
    }
    assert!(read > 30_000);
    // Once the server reads again, the rest of the line is welcome...
    while conn.recv_capacity() == 0 {
        let n = conn.poll_transmit().len();
        conn.handle_sent(host.now, &mut host.server, n);
    }
    let rest = &input.as_bytes()[taken..];
    assert_eq!(
        conn.handle_bytes(host.now, &mut host.server, rest),
        rest.len()
    );
    // ...and a line the peer leaves unfinished while the server reads is
    // still closed after the timeout.
    host.drain(&mut conn);
    let started = host.now;
    conn.handle_bytes(started, &mut host.server, b"getd");
    assert_eq!(conn.poll_timeout(), Some(started + Duration::from_secs(3)));
}

#[test]
fn a_listing_fills_the_send_buffer_to_within_one_listing_line() {
    let mut host = Host::with(ServerConfig::default(), directory_of(1000));
    let mut conn = host.connect();
    conn.handle_bytes(host.now, &mut host.server, b"getdir\nping\n");
    let queued = conn.poll_transmit().len();
    assert!(queued <= CONN_SEND_BUF);
    assert!(
        queued > CONN_SEND_BUF - crate::limits::MAX_LISTING_LINE,
        "only {queued} bytes queued"
    );
    // The ping waits for the listing, then is answered in order.
    let out = host.drain(&mut conn);
    assert!(
        out.ends_with("r0999 239.1.3.231 5000\n.\nOK pong\n"),
        "{}",
        &out[out.len() - 60..]
    );
}

// ---- durable replies against a model ----

/// One step of a run with several connections and a disk that may fail.
#[derive(Clone, Debug)]
enum Step {
    /// Connection `.0` sends the line `.1`.
    Send(usize, &'static str),
    /// The host stores the staged directory.
    Store,
    /// Saves fail until the persist timeout runs out.
    Fail,
}

fn arb_step() -> impl Strategy<Value = Step> {
    let lines = proptest::sample::select(vec![
        "makeroom a 239.0.0.1 5000",
        "makeroom A 239.0.0.2 5000",
        "makeroom b 239.0.0.1 5000",
        "makeroom b 239.0.0.3 5000",
        "deleteroom a",
        "deleteroom B",
        "getdir",
        "ping",
    ]);
    prop_oneof![
        5 => (0..3usize, lines).prop_map(|(c, l)| Step::Send(c, l)),
        2 => Just(Step::Store),
        1 => Just(Step::Fail),
    ]
}

/// Checks one connection's output against the directory clients may see:
/// no reply reveals a room that is not stored, and no room stored is
/// denied. Counts replies and applies acknowledged changes to `model`.
fn check_replies(out: &str, seen: &Directory, model: &mut BTreeSet<String>, replies: &mut usize) {
    let visible: BTreeSet<String> = seen
        .rooms()
        .iter()
        .map(|r| r.name.to_ascii_lowercase())
        .collect();
    let mut lines = out.lines();
    while let Some(line) = lines.next() {
        *replies += 1;
        let quoted = line.split('\'').nth(1).map(str::to_ascii_lowercase);
        if line.starts_with("OK created ") || line.starts_with("OK deleted ") {
            let name = line.split(' ').nth(2).unwrap().to_ascii_lowercase();
            if line.starts_with("OK created") {
                model.insert(name);
            } else {
                model.remove(&name);
            }
        } else if line.starts_with("ERR exists") {
            let name = quoted.unwrap();
            assert!(
                visible.contains(&name),
                "exists for unstored {name}: {line}"
            );
        } else if line.starts_with("ERR denied") {
            // Another connection's room: refused only once it is stored.
            let name = quoted.unwrap();
            assert!(
                visible.contains(&name),
                "denied for unstored {name}: {line}"
            );
        } else if line.starts_with("ERR inuse") {
            let name = line.rsplit('\'').nth(1).unwrap().to_ascii_lowercase();
            assert!(visible.contains(&name), "inuse by unstored {name}: {line}");
        } else if line.starts_with("OK ") && (line.ends_with(" room") || line.ends_with(" rooms")) {
            let mut listed = BTreeSet::new();
            for row in lines.by_ref() {
                if row == "." {
                    break;
                }
                listed.insert(row.split(' ').next().unwrap().to_ascii_lowercase());
            }
            assert_eq!(listed, visible, "getdir lists what is stored");
        } else {
            assert!(
                line == "OK pong"
                    || line.starts_with("ERR noroom")
                    || line.starts_with("ERR unavailable"),
                "{line}"
            );
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn prop_replies_never_reveal_unstored_changes_and_each_line_is_answered_once(
        steps in proptest::collection::vec(arb_step(), 1..40),
    ) {
        let mut host = Host::with(durable_config(), Directory::new());
        let mut conns: Vec<Connection> = (0..3).map(|_| host.connect()).collect();
        let mut sent = [0usize; 3];
        let mut replies = [0usize; 3];
        let mut model = BTreeSet::new();
        // Then the disk works: each store answers at least one change, so
        // this many stores settle every chain of waiting commands.
        let settle = steps.len() + 2;
        let steps = steps.into_iter().map(Some).chain(core::iter::repeat_n(None, settle));
        for step in steps {
            let outs: Vec<String> = match step {
                Some(Step::Send(c, line)) => {
                    sent[c] += 1;
                    let out = host.feed(&mut conns[c], format!("{line}\n").as_bytes());
                    (0..3).map(|i| if i == c { out.clone() } else { String::new() }).collect()
                }
                // The steps after the run: the disk works again.
                Some(Step::Store) | None => {
                    let mut all: Vec<&mut Connection> = conns.iter_mut().collect();
                    if host.server.poll_persist().is_some() {
                        host.persist(&mut all)
                    } else {
                        host.resolve(&mut all)
                    }
                }
                Some(Step::Fail) => {
                    let later = host.now + PERSIST_TIMEOUT;
                    let mut all: Vec<&mut Connection> = conns.iter_mut().collect();
                    host.server_timeout(later, &mut all)
                }
            };
            for (c, out) in outs.iter().enumerate() {
                check_replies(out, host.server.directory(), &mut model, &mut replies[c]);
            }
            let stored: BTreeSet<String> = host
                .server
                .directory()
                .rooms()
                .iter()
                .map(|r| r.name.to_ascii_lowercase())
                .collect();
            prop_assert_eq!(&stored, &model, "the directory holds exactly the acknowledged changes");
        }
        prop_assert!(conns.iter().all(|c| !c.is_waiting()));
        prop_assert_eq!(sent, replies, "every line answered exactly once");
        prop_assert_eq!(host.server.poll_persist(), None);
    }
}

/// Issue 13.10 at the server: names that look empty or hold invisible
/// characters get `ERR badname` (the reply shows the character as
/// `<U+XXXX>`, never as itself), and two rooms cannot look the same.
#[test]
fn room_names_that_look_alike_or_look_empty_are_refused() {
    let mut s = Session::new();
    for (name, shown) in [
        ("lobby\u{34F}", "lobby\u{34F}"),
        ("lobby\u{FE0F}", "lobby\u{FE0F}"),
        ("lobby\u{180B}", "lobby\u{180B}"),
        ("lobby\u{E0020}", "lobby<U+E0020>"),
        ("lobby\u{E0041}", "lobby<U+E0041>"),
        ("lob\u{17B4}by", "lob\u{17B4}by"),
        ("\u{34F}", "\u{34F}"),
        ("\u{3164}", "\u{3164}"),
        ("\u{2800}", "\u{2800}"),
        ("\u{115F}\u{1160}", "\u{115F}\u{1160}"),
        ("lobby\u{3164}general", "lobby\u{3164}general"),
        ("lobby\u{61C}x", "lobby<U+061C>x"),
        ("lobby\u{AD}x", "lobby<U+00AD>x"),
        ("lobby\u{180E}x", "lobby<U+180E>x"),
        ("lobby\u{206A}x", "lobby<U+206A>x"),
    ] {
        let reply = s.send(format!("makeroom {name} 239.1.1.1 5000\n"));
        let want = format!("ERR badname '{shown}' is not a room name (");
        assert!(reply.starts_with(&want), "{name:?}: {reply}");
        assert!(reply.contains("is invisible or blank"), "{name:?}: {reply}");
        // Whatever the reply quotes is shown safely: no format or control
        // character reaches the client's terminal through it.
        assert!(
            reply
                .trim_end_matches('\n')
                .chars()
                .all(|c| !matches!(c, '\u{61C}' | '\u{AD}' | '\u{180E}' | '\u{206A}'..='\u{206F}' | '\u{E0000}'..='\u{E007F}')),
            "{reply:?}"
        );
    }
    assert_eq!(s.send("getdir\n"), "OK 0 rooms\n.\n");

    // Cyrillic о beside Latin o: one room.
    assert_eq!(
        s.send("makeroom lobby 239.1.1.1 5000\n"),
        "OK created lobby 239.1.1.1 5000\n"
    );
    for twin in ["l\u{43E}bby", "L\u{41E}BBY", "Iobby", "1obby"] {
        assert_eq!(
            s.send(format!("makeroom {twin} 239.2.2.2 5000\n")),
            "ERR exists a room named 'lobby' exists already; pick another name\n",
            "{twin}"
        );
    }
    // Precomposed à, then a + combining grave: refused as not composed.
    assert_eq!(
        s.send("makeroom \u{e0} 239.3.3.3 5000\n"),
        "OK created \u{e0} 239.3.3.3 5000\n"
    );
    let reply = s.send("makeroom a\u{300} 239.4.4.4 5000\n");
    assert!(
        reply.starts_with(
            "ERR badname 'a\u{300}' is not a room name (U+0300 is not in composed form"
        ),
        "{reply}"
    );
    // É and é are one room.
    assert_eq!(
        s.send("makeroom caf\u{e9} 239.5.5.5 5000\n"),
        "OK created caf\u{e9} 239.5.5.5 5000\n"
    );
    assert_eq!(
        s.send("makeroom CAF\u{c9} 239.6.6.6 5000\n"),
        "ERR exists a room named 'caf\u{e9}' exists already; pick another name\n"
    );
    // A look-alike name finds the room to delete. The listing stays sorted
    // byte-wise after folding ASCII case (U+00E0 after `c`).
    assert_eq!(s.send("deleteroom L\u{41E}BBY\n"), "OK deleted lobby\n");
    assert_eq!(
        s.send("getdir\n"),
        "OK 2 rooms\ncaf\u{e9} 239.5.5.5 5000\n\u{e0} 239.3.3.3 5000\n.\n"
    );
}

// ---- makeroom <name>: the server picks the address ----

fn one_slot_pool() -> crate::Allocator {
    let pool = crate::AddressPool::new(
        &[crate::GroupPrefix::parse("239.255.9.9/32").unwrap()],
        crate::PortRange::new(5000, 5001).unwrap(),
    )
    .unwrap();
    crate::Allocator::new(pool, 42)
}

#[test]
fn makeroom_with_a_name_only_gets_a_free_address_from_the_pool() {
    let mut s = Session::new();
    let reply = s.send("makeroom lobby\n");
    let words: Vec<&str> = reply.trim_end().split(' ').collect();
    assert_eq!(words[..3], ["OK", "created", "lobby"], "{reply}");
    let group: core::net::Ipv4Addr = words[3].parse().unwrap();
    let port: u16 = words[4].parse().unwrap();
    assert_eq!(group.octets()[..2], [239, 255], "the default pool");
    assert!((40000..49999).contains(&port), "the default range");
    assert_eq!(
        s.send("getdir\n"),
        format!("OK 1 room\nlobby {group} {port}\n.\n")
    );
    // The name is checked as for makeroom with an address.
    assert_eq!(
        s.send("makeroom LOBBY\n"),
        "ERR exists a room named 'lobby' exists already; pick another name\n"
    );
}

#[test]
fn a_full_pool_is_refused_with_a_clear_error() {
    let mut s = Session::new();
    s.host.server.set_allocator(one_slot_pool());
    assert_eq!(s.send("makeroom a\n"), "OK created a 239.255.9.9 5000\n");
    assert_eq!(
        s.send("makeroom b\n"),
        "ERR full no free group/port in the pool; delete a room, give an address and \
         port yourself, or ask the server's operator to widen --group-pool or --port-range\n"
    );
    // A taken name is said first.
    assert!(s.send("makeroom A\n").starts_with("ERR exists "));
    // Deleting the room frees its slot.
    assert_eq!(s.send("deleteroom a\n"), "OK deleted a\n");
    assert_eq!(s.send("makeroom b\n"), "OK created b 239.255.9.9 5000\n");
}

#[test]
fn a_room_reserves_the_port_after_its_own() {
    let mut s = Session::new();
    assert_eq!(
        s.send("makeroom a 239.1.1.1 5000\n"),
        "OK created a 239.1.1.1 5000\n"
    );
    for port in [4999, 5001] {
        assert_eq!(
            s.send(format!("makeroom b 239.1.1.1 {port}\n")),
            "ERR inuse room 'a' uses 239.1.1.1 ports 5000 and 5001 (a room reserves the \
             port after its own); pick another address, or a port at least 2 away from 5000\n"
        );
    }
    // Two away, or another group, is fine.
    assert_eq!(
        s.send("makeroom b 239.1.1.1 5002\n"),
        "OK created b 239.1.1.1 5002\n"
    );
    assert_eq!(
        s.send("makeroom c 239.1.1.2 5001\n"),
        "OK created c 239.1.1.2 5001\n"
    );
    // A room on the top port reserves nothing more.
    assert_eq!(
        s.send("makeroom d 239.1.1.1 65535\n"),
        "OK created d 239.1.1.1 65535\n"
    );
    // IPv6 rooms work alike.
    assert_eq!(
        s.send("makeroom e FF15::0:1 5000\n"),
        "OK created e ff15::1 5000\n"
    );
    assert!(
        s.send("makeroom f ff15::1 5001\n")
            .starts_with("ERR inuse room 'e'")
    );
}

#[test]
fn allocation_with_changes_waiting_keeps_clear_of_them() {
    // The only slot is taken by a change waiting for the disk: a second
    // makeroom waits (the change may be undone), then is refused once it
    // is stored.
    let mut host = Host::with(durable_config(), Directory::new());
    host.server.set_allocator(one_slot_pool());
    let mut maker = host.connect();
    let mut other = host.connect();
    assert_eq!(host.feed(&mut maker, b"makeroom a\n"), "");
    assert_eq!(host.feed(&mut other, b"makeroom b\n"), "");
    assert!(other.is_waiting());
    let out = host.persist(&mut [&mut maker, &mut other]);
    assert_eq!(out[0], "OK created a 239.255.9.9 5000\n");
    assert!(
        out[1].starts_with("ERR full no free group/port"),
        "{}",
        out[1]
    );
}

// ---- owners and quotas ----

/// The token in an `OK created ... token=<token>` line.
fn token_of(reply: &str) -> String {
    let line = reply.lines().next().unwrap();
    assert!(line.starts_with("OK created "), "{line}");
    let token = line.rsplit_once(" token=").unwrap().1;
    let token = token.strip_suffix(" private").unwrap_or(token);
    assert_eq!(token.len(), crate::limits::TOKEN_TEXT);
    token.into()
}

fn feed_raw(host: &mut Host, conn: &mut Connection, line: &str) -> String {
    conn.handle_bytes(host.now, &mut host.server, line.as_bytes());
    host.drain_events();
    raw_text(host.drain_by(conn, usize::MAX))
}

#[test]
fn makeroom_answers_a_token_and_only_the_owner_may_delete() {
    let mut host = Host::new();
    host.server.seed_random([42; 32]);
    let mut maker = host.connect();
    let mut other = host.connect();
    let reply = feed_raw(&mut host, &mut maker, "makeroom lobby 239.1.2.3 5000\n");
    assert!(reply.starts_with("OK created lobby 239.1.2.3 5000 token="));
    let token = token_of(&reply);
    // The directory keeps the hash, never the token.
    let (_, owner) = host.server.directory().get_owned("lobby").unwrap();
    assert_eq!(owner.token, Some(crate::TokenHash::of(&token)));

    let denied = "ERR denied only the owner of room 'lobby' may delete it: the connection \
                  that made it, or with the token 'makeroom' gave ('deleteroom lobby <token>'), \
                  or the server's operator with the admin token\n";
    assert_eq!(host.feed(&mut other, b"deleteroom lobby\n"), denied);
    let wrong = format!("deleteroom LOBBY {}x\n", &token[..21]);
    assert_eq!(host.feed(&mut other, wrong.as_bytes()), denied);
    assert_eq!(
        host.feed(&mut other, b"deleteroom lobby short\n"),
        "ERR usage 'short' is not a token; give the token 'makeroom' answered \
         (16-64 printable characters), or none\n"
    );
    let right = format!("deleteroom Lobby {token}\n");
    assert_eq!(
        host.feed(&mut other, right.as_bytes()),
        "OK deleted lobby\n"
    );
    assert!(host.server.directory().is_empty());
    assert_eq!(
        error_of(host.take_events().last().unwrap()),
        None,
        "the delete is logged as done"
    );
}

#[test]
fn the_connection_that_made_a_room_deletes_it_without_the_token() {
    let mut s = Session::new();
    assert_eq!(
        s.send("makeroom lobby 239.1.2.3 5000\ndeleteroom lobby\n"),
        "OK created lobby 239.1.2.3 5000\nOK deleted lobby\n"
    );
}

#[test]
fn the_admin_token_deletes_any_room_and_nothing_else_does() {
    let admin = "operator-secret-0123456789";
    let mut host = Host::new();
    host.server.set_admin_token(crate::TokenHash::of(admin));
    let mut maker = host.connect();
    let mut other = host.connect();
    host.feed(
        &mut maker,
        b"makeroom a 239.1.1.1 5000\nmakeroom b 239.1.1.2 5000\n",
    );
    let line = format!("deleteroom a {admin}\n");
    assert_eq!(host.feed(&mut other, line.as_bytes()), "OK deleted a\n");
    let line = format!("deleteroom b {admin}X\n");
    assert!(
        host.feed(&mut other, line.as_bytes())
            .starts_with("ERR denied ")
    );
    // Without an admin token set, no token but the owner's works.
    let mut plain = Host::new();
    let mut maker = plain.connect();
    let mut other = plain.connect();
    plain.feed(&mut maker, b"makeroom a 239.1.1.1 5000\n");
    let line = format!("deleteroom a {admin}\n");
    assert!(
        plain
            .feed(&mut other, line.as_bytes())
            .starts_with("ERR denied ")
    );
}

#[test]
fn a_room_without_an_owner_may_be_deleted_by_anyone() {
    // Loaded from a state file written before owners existed.
    let mut s = Session::with_directory(directory_of(1));
    assert_eq!(s.send("deleteroom r0000\n"), "OK deleted r0000\n");
}

#[test]
fn tokens_come_from_the_seed() {
    let first_token = |seed: Option<[u8; 32]>| {
        let mut host = Host::new();
        if let Some(seed) = seed {
            host.server.seed_random(seed);
        }
        assert_eq!(host.server.is_seeded(), seed.is_some());
        let mut conn = host.connect();
        token_of(&feed_raw(
            &mut host,
            &mut conn,
            "makeroom a 239.1.1.1 5000\n",
        ))
    };
    assert_eq!(first_token(Some([1; 32])), first_token(Some([1; 32])));
    assert_ne!(first_token(Some([1; 32])), first_token(Some([2; 32])));
    assert_ne!(first_token(Some([1; 32])), first_token(None));
    // Two rooms, two tokens.
    let mut host = Host::new();
    let mut conn = host.connect();
    let a = token_of(&feed_raw(
        &mut host,
        &mut conn,
        "makeroom a 239.1.1.1 5000\n",
    ));
    let b = token_of(&feed_raw(
        &mut host,
        &mut conn,
        "makeroom b 239.1.1.2 5000\n",
    ));
    assert_ne!(a, b);
}

#[test]
fn rooms_per_client_address_hold_at_their_edge() {
    use crate::limits::MAX_ROOMS_PER_CLIENT;
    let config = ServerConfig {
        commands_per_second: 0,
        ..ServerConfig::default()
    };
    assert_eq!(config.max_rooms_per_client, MAX_ROOMS_PER_CLIENT);
    let mut host = Host::with_quotas(config, Directory::new());
    let addr = |last: u8| core::net::IpAddr::from([10, 0, 0, last]);
    let mut one = Connection::with_peer(host.now, ConnId(100), &config, addr(1));
    let mut again = Connection::with_peer(host.now, ConnId(101), &config, addr(1));
    let mut two = Connection::with_peer(host.now, ConnId(102), &config, addr(2));
    let mut unknown = Connection::new(host.now, ConnId(103), &config);
    for conn in [&mut one, &mut again, &mut two, &mut unknown] {
        assert_eq!(host.drain(conn), GREETING);
    }
    for i in 0..MAX_ROOMS_PER_CLIENT {
        let conn = if i % 2 == 0 { &mut one } else { &mut again };
        let line = format!("makeroom a{i} 239.1.0.{i} 5000\n");
        assert!(host.feed(conn, line.as_bytes()).starts_with("OK created"));
    }
    let over = format!(
        "ERR quota rooms: your address has made {MAX_ROOMS_PER_CLIENT} rooms, the most it may \
         have at once; delete one first\n"
    );
    // Counted per address, over every connection from it.
    assert_eq!(host.feed(&mut one, b"makeroom z 239.2.0.0 5000\n"), over);
    assert_eq!(host.feed(&mut again, b"makeroom z 239.2.0.0 5000\n"), over);
    assert_eq!(
        error_of(host.take_events().last().unwrap()),
        Some(ErrorCode::Quota)
    );
    // Another address, and a connection with no address, are not held.
    assert!(
        host.feed(&mut two, b"makeroom y 239.2.0.1 5000\n")
            .starts_with("OK created")
    );
    assert!(
        host.feed(&mut unknown, b"makeroom x 239.2.0.2 5000\n")
            .starts_with("OK created")
    );
    // Deleting one makes room for one.
    assert_eq!(host.feed(&mut one, b"deleteroom a0\n"), "OK deleted a0\n");
    assert!(
        host.feed(&mut again, b"makeroom z 239.2.0.0 5000\n")
            .starts_with("OK created")
    );
    assert_eq!(host.feed(&mut one, b"makeroom w 239.2.0.3 5000\n"), over);
}

#[test]
fn commands_per_second_hold_at_their_edge() {
    use crate::limits::{COMMAND_BURST, COMMANDS_PER_SECOND};
    let config = ServerConfig::default();
    assert_eq!(
        (config.commands_per_second, config.command_burst),
        (COMMANDS_PER_SECOND, COMMAND_BURST)
    );
    let mut host = Host::with_quotas(config, Directory::new());
    host.now = secs(10);
    let mut conn = host.connect();
    let burst = usize::try_from(COMMAND_BURST).unwrap();
    let over = format!(
        "ERR quota rate: more than {COMMANDS_PER_SECOND} commands a second (bursts of \
         {COMMAND_BURST}); the command was not run, slow down and send it again\n"
    );
    for _ in 0..burst {
        assert_eq!(host.feed(&mut conn, b"ping\n"), "OK pong\n");
    }
    // Blank lines cost nothing.
    assert_eq!(host.feed(&mut conn, b"\n  \n"), "");
    assert_eq!(host.feed(&mut conn, b"makeroom a 239.1.1.1 5000\n"), over);
    assert!(host.server.directory().is_empty(), "not run");
    // One command's worth of time later: exactly one more.
    let step = Duration::from_secs(1) / COMMANDS_PER_SECOND;
    host.now = before(secs(10) + step);
    assert_eq!(host.feed(&mut conn, b"ping\n"), over);
    host.now = secs(10) + step;
    assert_eq!(host.feed(&mut conn, b"ping\n"), "OK pong\n");
    assert_eq!(host.feed(&mut conn, b"ping\n"), over);
    // Each connection has its own bucket.
    let mut fresh = host.connect();
    assert_eq!(host.feed(&mut fresh, b"ping\n"), "OK pong\n");
}

#[test]
fn the_connections_quota_reply_is_one_err_quota_line() {
    let line = connections_quota_reply(32);
    assert_eq!(
        line.as_str(),
        "ERR quota connections: your address holds 32 connections to this server, the most \
         it may; close one and try again\n"
    );
    assert!(line.len() <= MAX_LINE);
}

#[test]
fn a_line_is_charged_once_though_it_waits_and_bad_lines_count_too() {
    let config = ServerConfig {
        commands_per_second: 1,
        command_burst: 1,
        ..durable_config()
    };
    let mut host = Host::with_quotas(config, Directory::new());
    let mut a = host.connect();
    let mut b = host.connect();
    assert_eq!(host.feed(&mut a, b"makeroom x 239.9.9.9 9000\n"), "");
    // Its answer depends on a's change: it waits, and is tried again.
    assert_eq!(host.feed(&mut b, b"makeroom x 239.9.9.9 9001\n"), "");
    assert!(b.is_waiting());
    b.handle_wake(host.now, &mut host.server);
    let out = host.persist(&mut [&mut a, &mut b]);
    assert!(out[0].starts_with("OK created x "), "{out:?}");
    assert!(out[1].starts_with("ERR exists "), "charged once: {out:?}");
    // The bucket is empty now: a line that is not a command is refused too.
    assert!(
        host.feed(&mut b, b"nonsense\n")
            .starts_with("ERR quota rate: ")
    );
    assert_eq!(host.feed(&mut b, b"\n"), "", "blank lines are free");
}

mod private;
