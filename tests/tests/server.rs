//! End-to-end tests of `roomcast server` over real TCP on loopback.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};
use std::thread;
use std::time::Duration;

use roomcast_core::limits::MAX_LINE;
use roomcast_tests::{Crdp, ServerProcess, token_of, without_token};

#[test]
fn announces_itself_and_logs_connections() {
    let server = ServerProcess::start(&[]);
    let mut client = server.connect();
    assert!(
        client.greeting.starts_with("OK CRDP/1 "),
        "greeting: {}",
        client.greeting
    );
    server.stdout.wait_for("connected (1 connected)");
    assert_eq!(client.ask("ping"), "OK pong");
    server.stdout.wait_for(": ping: OK");
    assert_eq!(client.ask("bye"), "OK bye");
    assert_eq!(client.read_to_close(), "");
    server.stdout.wait_for("connection closed (0 connected)");
}

#[test]
fn makes_lists_and_deletes_rooms() {
    let server = ServerProcess::start(&[]);
    let mut c = server.connect();
    assert_eq!(c.request("getdir"), ["OK 0 rooms", "."]);
    let made = c.ask("makeroom lobby 239.1.1.1 5000");
    assert_eq!(without_token(&made), "OK created lobby 239.1.1.1 5000");
    let token = token_of(&made);
    assert_eq!(
        without_token(&c.ask("makeroom Attic 239.1.1.2 5000")),
        "OK created Attic 239.1.1.2 5000"
    );
    assert_eq!(
        c.request("getdir"),
        [
            "OK 2 rooms",
            "Attic 239.1.1.2 5000",
            "lobby 239.1.1.1 5000",
            "."
        ]
    );
    // Another connection sees the same directory, and deletes with the
    // owner's token.
    let mut other = server.connect();
    assert_eq!(
        other.ask(&format!("deleteroom LOBBY {token}")),
        "OK deleted lobby"
    );
    assert_eq!(
        c.request("getdir"),
        ["OK 1 room", "Attic 239.1.1.2 5000", "."]
    );
    let help = c.request("help");
    assert_eq!(help.last().map(String::as_str), Some("."));
    assert!(
        help.iter()
            .any(|l| l.contains("makeroom <name> [<address> <port>] [private <salt> <verifier>]"))
    );
}

/// Every refusal the protocol defines, with its stable code.
#[test]
fn every_error_path_gets_its_code_and_the_connection_goes_on() {
    let server = ServerProcess::start(&[]);
    let mut c = server.connect();
    c.ask("makeroom lobby 239.1.1.1 5000");
    let cases = [
        ("frobnicate", "ERR unknown "),
        ("getdir now", "ERR usage usage: getdir"),
        (
            "makeroom lobby 239.1.1.1",
            "ERR usage usage: makeroom <name> [<address> <port>] [private <salt> <verifier>]",
        ),
        ("makeroom lobby", "ERR exists "),
        ("deleteroom", "ERR usage usage: deleteroom <name>"),
        ("makeroom a 239.1.1.9 5000 extra", "ERR usage "),
        (
            "makeroom 012345678901234567890123456789012 239.1.1.9 5000",
            "ERR badname ",
        ),
        ("makeroom b 10.0.0.1 5000", "ERR badaddr "),
        ("makeroom b 239.1.1 5000", "ERR badaddr "),
        ("makeroom b 239.1.1.256 5000", "ERR badaddr "),
        ("makeroom b 239.1.1.9 80", "ERR badport "),
        ("makeroom b 239.1.1.9 65536", "ERR badport "),
        ("makeroom b 239.1.1.9 http", "ERR badport "),
        ("makeroom LOBBY 239.1.1.9 5000", "ERR exists "),
        (
            "makeroom b 239.1.1.1 5000",
            "ERR inuse 239.1.1.1:5000 is already used by room 'lobby'",
        ),
        (
            "makeroom b 239.1.1.1 5001",
            "ERR inuse room 'lobby' uses 239.1.1.1 ports 5000 and 5001",
        ),
        ("makeroom b ff02::1 5000", "ERR badaddr "),
        ("deleteroom nowhere", "ERR noroom "),
    ];
    for (command, expected) in cases {
        let reply = c.ask(command);
        assert!(reply.starts_with(expected), "{command:?} -> {reply:?}");
    }
    assert_eq!(c.ask("ping"), "OK pong");
    assert_eq!(
        c.request("getdir"),
        ["OK 1 room", "lobby 239.1.1.1 5000", "."]
    );
}

#[test]
fn bad_bytes_get_errors_and_the_connection_keeps_working() {
    let server = ServerProcess::start(&[]);
    let mut c = server.connect();
    c.send_raw(b"get\xffdir\n");
    assert!(c.read_line().starts_with("ERR encoding "));
    c.send_raw(b"ping\0\n");
    assert!(c.read_line().starts_with("ERR encoding "));
    c.send_raw(b"ping\rping\n");
    assert!(c.read_line().starts_with("ERR encoding "));
    c.send_raw(b"ping\r\n");
    assert_eq!(c.read_line(), "OK pong");
    c.send_raw(b"\n\n   \n");
    assert_eq!(c.ask("ping"), "OK pong", "blank lines get no reply");
}

#[test]
fn overlong_lines_are_refused_at_the_limit() {
    let server = ServerProcess::start(&[]);
    let mut c = server.connect();
    // MAX_LINE bytes with the LF: the longest line there is.
    let longest = format!("{}\n", "x".repeat(MAX_LINE - 1));
    c.send_raw(longest.as_bytes());
    assert!(c.read_line().starts_with("ERR unknown "));
    // One byte more is too long.
    let too_long = format!("{}\n", "x".repeat(MAX_LINE));
    c.send_raw(too_long.as_bytes());
    assert!(c.read_line().starts_with("ERR toolong "));
    // A megabyte in one line: one error, then business as usual.
    let huge = vec![b'y'; 1 << 20];
    c.send_raw(&huge);
    c.send_raw(b"\nping\n");
    assert!(c.read_line().starts_with("ERR toolong "));
    assert_eq!(c.read_line(), "OK pong");
}

#[test]
fn pipelined_commands_are_answered_in_order() {
    // A thousand commands in one write: about order, not the rate quota.
    let server = ServerProcess::start(&["--commands-per-second", "0"]);
    let mut c = server.connect();
    let mut batch = String::new();
    let mut expected = Vec::new();
    for i in 0..1000 {
        match i % 4 {
            0 => {
                batch += &format!("makeroom r{i} 239.2.{}.{} 6000\n", i / 256, i % 256);
                expected.push(format!(
                    "OK created r{i} 239.2.{}.{} 6000",
                    i / 256,
                    i % 256
                ));
            }
            1 => {
                batch += "ping\n";
                expected.push("OK pong".into());
            }
            2 => {
                batch += &format!("deleteroom r{}\n", i - 2);
                expected.push(format!("OK deleted r{}", i - 2));
            }
            _ => {
                batch += "bogus\n";
                expected.push(
                    "ERR unknown 'bogus' is not a command; type 'help' for the commands".into(),
                );
            }
        }
    }
    c.send_raw(batch.as_bytes());
    for want in &expected {
        assert_eq!(&without_token(&c.read_line()), want);
    }
    assert_eq!(c.request("getdir"), ["OK 0 rooms", "."]);
}

#[test]
fn a_hundred_concurrent_clients_make_and_delete_rooms() {
    // A hundred clients from one address, a thousand rooms: about
    // concurrency, not the per-address quotas.
    let server = ServerProcess::start(&[
        "--log-level",
        "warn",
        "--max-connections-per-client",
        "100",
        "--max-rooms-per-client",
        "4096",
    ]);
    let addr = server.addr();
    let workers: Vec<_> = (0..100)
        .map(|i| {
            thread::spawn(move || {
                let mut c = Crdp::connect(addr);
                for round in 0..20 {
                    let name = format!("c{i}r{round}");
                    let made = c.ask(&format!("makeroom {name} 239.3.{i}.{round} 7000"));
                    assert_eq!(
                        without_token(&made),
                        format!("OK created {name} 239.3.{i}.{round} 7000")
                    );
                    if round % 2 == 0 {
                        assert_eq!(
                            c.ask(&format!("deleteroom {name}")),
                            format!("OK deleted {name}")
                        );
                    }
                }
                // Everyone races for one address/port: exactly one wins.
                c.ask(&format!("makeroom race{i} 239.9.9.9 9999"))
            })
        })
        .collect();
    let results: Vec<String> = workers.into_iter().map(|w| w.join().unwrap()).collect();
    assert_eq!(
        results
            .iter()
            .filter(|r| r.starts_with("OK created"))
            .count(),
        1
    );
    assert_eq!(
        results
            .iter()
            .filter(|r| r.starts_with("ERR inuse"))
            .count(),
        99
    );

    let listing = server.connect().request("getdir");
    assert_eq!(listing[0], "OK 1001 rooms");
    assert_eq!(listing.len(), 1001 + 2);
    let names: Vec<&str> = listing[1..1002]
        .iter()
        .map(|l| l.split(' ').next().unwrap())
        .collect();
    let mut sorted = names.clone();
    sorted.sort_by_key(|n| n.to_ascii_lowercase());
    assert_eq!(names, sorted, "listing is sorted by name");
    assert!(
        names
            .iter()
            .all(|n| n.starts_with("race") || n.ends_with(|c: char| "13579".contains(c)))
    );
}

#[test]
fn a_client_that_vanishes_mid_line_does_not_disturb_the_others() {
    let server = ServerProcess::start(&[]);
    let mut steady = server.connect();
    {
        let mut vanishing = TcpStream::connect(server.addr()).unwrap();
        vanishing.write_all(b"makeroom half 239.1").unwrap();
        // Gone without a LF: the half command must not be run.
    }
    server.stdout.wait_for("connection closed (1 connected)");
    assert_eq!(steady.request("getdir"), ["OK 0 rooms", "."]);
    // A peer that sends a whole command and closes its side still gets the
    // answer, and the command is run.
    let mut quick = TcpStream::connect(server.addr()).unwrap();
    quick.write_all(b"makeroom quick 239.1.1.1 5000\n").unwrap();
    quick.shutdown(Shutdown::Write).unwrap();
    let mut all = String::new();
    quick.read_to_string(&mut all).unwrap();
    assert!(
        all.contains("OK created quick 239.1.1.1 5000 token="),
        "{all:?}"
    );
    assert_eq!(
        steady.request("getdir"),
        ["OK 1 room", "quick 239.1.1.1 5000", "."]
    );
}

#[test]
fn a_stalled_client_does_not_delay_the_others() {
    // 200 rooms and 100 listings in one write each: about a stalled peer,
    // not the quotas.
    let server = ServerProcess::start(&[
        "--log-level",
        "warn",
        "--commands-per-second",
        "0",
        "--max-rooms-per-client",
        "200",
    ]);
    let mut c = server.connect();
    let mut batch = String::new();
    for i in 0..200 {
        batch += &format!("makeroom room-{i:03} 239.4.0.{i} 8000\n");
    }
    c.send_raw(batch.as_bytes());
    for _ in 0..200 {
        assert!(c.read_line().starts_with("OK created"));
    }
    // This one asks for listings and never reads them.
    let mut stalled = TcpStream::connect(server.addr()).unwrap();
    stalled
        .write_all("getdir\n".repeat(100).as_bytes())
        .unwrap();
    // And this one sends half a line and waits.
    let mut half = TcpStream::connect(server.addr()).unwrap();
    half.write_all(b"getd").unwrap();
    thread::sleep(Duration::from_millis(100));
    for _ in 0..50 {
        assert_eq!(c.ask("ping"), "OK pong");
    }
    assert_eq!(c.request("getdir").len(), 202);
    drop((stalled, half));
}

#[test]
fn stops_cleanly_on_sigterm_and_sigint() {
    for signal in ["TERM", "INT"] {
        let mut server = ServerProcess::start(&[]);
        let mut c = server.connect();
        assert_eq!(c.ask("ping"), "OK pong");
        let status = server.signal_and_wait(signal);
        assert!(status.success(), "SIG{signal}: {status}");
        server
            .stdout
            .wait_for("Chat Room Directory Server stopped.");
        assert_eq!(c.read_to_close(), "", "connections are closed");
    }
}

#[test]
fn the_connection_limit_turns_away_one_too_many() {
    let server = ServerProcess::start(&["--max-connections", "3"]);
    let mut kept: Vec<Crdp> = (0..3).map(|_| server.connect()).collect();
    let mut extra = Crdp::connect(server.addr());
    assert!(
        extra.greeting.starts_with("ERR busy "),
        "{}",
        extra.greeting
    );
    assert_eq!(extra.read_to_close(), "");
    for c in &mut kept {
        assert_eq!(c.ask("ping"), "OK pong");
    }
    // A slot that frees up can be used again.
    drop(kept.pop());
    server.stdout.wait_for("connection closed (2 connected)");
    let mut again = server.connect();
    assert!(again.greeting.starts_with("OK "));
    assert_eq!(again.ask("ping"), "OK pong");
}

/// Issue 13.10 end to end: the names the review got accepted are refused,
/// and a room that looks like another is `ERR exists`.
#[test]
fn room_names_that_look_empty_or_alike_are_refused() {
    let server = ServerProcess::start(&[]);
    let mut c = server.connect();
    assert_eq!(
        without_token(&c.ask("makeroom lobby 239.1.1.1 5000")),
        "OK created lobby 239.1.1.1 5000"
    );
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
        let reply = c.ask(&format!("makeroom {name} 239.1.1.9 5000"));
        assert!(reply.starts_with("ERR badname '"), "{name:?} -> {reply:?}");
    }
    for twin in ["l\u{43E}bby", "Iobby", "LOBBY"] {
        assert_eq!(
            c.ask(&format!("makeroom {twin} 239.1.1.9 5000")),
            "ERR exists a room named 'lobby' exists already; pick another name",
            "{twin}"
        );
    }
    assert_eq!(
        without_token(&c.ask("makeroom \u{e0} 239.1.1.2 5000")),
        "OK created \u{e0} 239.1.1.2 5000"
    );
    assert_eq!(
        c.request("getdir"),
        [
            "OK 2 rooms",
            "lobby 239.1.1.1 5000",
            "\u{e0} 239.1.1.2 5000",
            "."
        ]
    );
}
