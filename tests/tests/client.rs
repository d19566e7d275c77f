//! The client's behaviour at the edges, with the real binary: a server that
//! is not there or goes away, bad options, rooms that share a port, several
//! clients in one room on one host.

mod client_common;

use std::net::TcpListener;
use std::process::Command;
use std::time::{Duration, Instant};

use client_common::ClientProcess;
use roomcast_tests::{ServerProcess, netns, roomcast_bin};

/// A local port that nothing listens on.
fn closed_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

#[test]
fn no_server_gets_a_clear_answer_quickly() {
    netns::isolated(|| {
        let port = closed_port();
        let mut client = ClientProcess::start("c", port, &[]);
        let started = Instant::now();
        let line = client.run(
            "connect",
            &format!("Could not connect to the directory server at 127.0.0.1:{port}"),
        );
        assert!(line.contains("nothing is listening there"), "{line}");
        assert!(line.contains("roomcast server"), "{line}");
        assert!(started.elapsed() < Duration::from_secs(6));
        // A name that does not resolve fails fast too (in a network namespace
        // with only loopback, no DNS server is reached).
        let line = client.run(
            "connect no-such-host.invalid",
            "Could not connect to the directory server at no-such-host.invalid:5577",
        );
        assert!(line.contains("unknown"), "{line}");
        // The client keeps working.
        let line = client.run("chat lobby", "Could not connect");
        assert!(line.contains("to look up room lobby"), "{line}");
        client.run("getdir", "type 'connect' first");
        client.send("quit");
        assert_eq!(client.wait_exit(), Some(0));
    });
}

#[test]
fn the_server_going_away() {
    let mut server = ServerProcess::start(&[]);
    let mut client = ClientProcess::start("c", server.port, &[]);
    client.run("connect", "Connected to the directory server");
    let status = server.signal_and_wait("TERM");
    assert!(status.success());
    client.expect("closed the connection.");
    client.expect("Type 'connect' to reconnect.");
    client.run("getdir", "type 'connect' first");
    client.run("connect", "nothing is listening there");
}

#[test]
fn bad_options_are_refused_with_a_reason() {
    let run = |args: &[&str]| {
        Command::new(roomcast_bin())
            .arg("client")
            .args(args)
            .output()
            .unwrap()
    };
    let out = run(&["--name", &"x".repeat(40)]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("at most 32 characters"), "{err}");
    let out = run(&["--server", "host:notaport"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("port"), "{err}");
    let out = run(&["--ttl", "300"]);
    assert!(!out.status.success());
    let out = run(&["--help"]);
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    for option in ["--server", "--name", "--iface", "--ttl"] {
        assert!(help.contains(option), "{help}");
    }
}

#[test]
fn default_name_is_the_login_name() {
    let mut client = ClientProcess::start_with("c", &["env", "USER=ada", "LOGNAME=x"], &[]);
    client.run("name", "Your chat name is ada.");
}

#[test]
fn rooms_sharing_a_port_and_clients_sharing_a_host() {
    netns::isolated(|| {
        let server = ServerProcess::start(&[]);
        let mut crdp = server.connect();
        assert!(crdp.ask("makeroom red 239.77.3.1 47301").starts_with("OK"));
        assert!(crdp.ask("makeroom blue 239.77.3.2 47301").starts_with("OK"));
        drop(crdp);
        let mut clients: Vec<ClientProcess> = ["Ann", "Ben", "Cat", "Dan"]
            .iter()
            .map(|name| ClientProcess::start(name, server.port, &["--name", name]))
            .collect();
        for (i, client) in clients.iter_mut().enumerate() {
            let room = if i < 3 { "red" } else { "blue" };
            client.run(&format!("chat {room}"), "Entering chat room");
        }
        clients[0].send("in red");
        clients[3].send("in blue");
        clients[1].expect("Ann: in red");
        clients[2].expect("Ann: in red");
        clients[1].send("ben too");
        clients[0].expect("Ben: ben too");
        clients[2].expect("Ben: ben too");
        // Blue is on the same port, another group: red hears nothing of it,
        // and Dan hears nothing of red.
        clients[0].send("sync");
        for client in &mut clients[1..3] {
            client.expect("Ann: sync");
        }
        for client in &clients[..3] {
            assert_eq!(client.stdout.count("in blue"), 0);
        }
        assert_eq!(clients[3].stdout.count("Ann:"), 0);
        assert_eq!(clients[3].stdout.count("Ben:"), 0);
        // Each sees the others' messages once and its own not at all.
        assert_eq!(clients[0].stdout.count("Ann: in red"), 0);
        assert_eq!(clients[2].stdout.count("Ann: in red"), 1);
    });
}

/// The real client's `getdir` table says which rooms are private: it asks
/// the server with `getdir full` and shows an ACCESS column.
#[test]
fn the_getdir_table_marks_private_rooms() {
    let server = ServerProcess::start(&[]);
    let mut crdp = server.connect();
    assert!(
        crdp.ask("makeroom lobby 239.77.4.1 47401")
            .starts_with("OK created")
    );
    let salt = crdp.ask("salt");
    let salt = salt.strip_prefix("OK salt=").unwrap();
    // The verifier is the maker's business; any 22 base64url characters.
    let make = format!("makeroom vault 239.77.4.2 47401 private {salt} AgICAgICAgICAgICAgICAg");
    assert!(crdp.ask(&make).starts_with("OK created vault"));
    drop(crdp);
    let mut client = ClientProcess::start("c", server.port, &[]);
    client.run("connect", "Connected to the directory server");
    client.send("getdir");
    let words =
        |line: &str| -> Vec<String> { line.split_whitespace().map(str::to_string).collect() };
    assert_eq!(
        words(&client.expect("ROOM")),
        ["ROOM", "ADDRESS", "PORT", "ACCESS"]
    );
    assert_eq!(
        words(&client.expect("lobby")),
        ["lobby", "239.77.4.1", "47401", "open"]
    );
    assert_eq!(
        words(&client.expect("vault")),
        ["vault", "239.77.4.2", "47401", "private"]
    );
    client.expect("(2 rooms)");
}

/// A piped line longer than the client reads at once is refused as one
/// line: it is never cut into pieces that would each run (or, in a room,
/// each be sent).
#[test]
fn an_overlong_piped_line_is_refused_whole() {
    let port = closed_port();
    let mut client = ClientProcess::start("c", port, &[]);
    // 100 KiB, more than the 64 KiB read at once, with a multibyte
    // character across the cut.
    let mut long = "é".repeat(50 * 1024).into_bytes();
    long.push(b'\n');
    client.send_bytes(&long);
    client.run("name Zed", "Your chat name is now Zed");
    let refusals = client
        .stdout
        .all()
        .iter()
        .filter(|l| l.contains("is not a command"))
        .count();
    assert_eq!(refusals, 1, "{:#?}", client.stdout.all());
    assert!(
        !client
            .stdout
            .all()
            .iter()
            .any(|l| l.contains("not valid UTF-8")),
        "the cut split a character"
    );
}
