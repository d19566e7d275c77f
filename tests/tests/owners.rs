//! End-to-end tests of room owners and quotas: `roomcast server` over real
//! TCP on loopback (no multicast, so no namespace).

mod client_common;

use std::fs;
use std::process::Command;

use client_common::ClientProcess;
use roomcast_tests::{Crdp, ServerProcess, roomcast_bin, token_of, without_token};

const ADMIN: &str = "operator-admin-token-0123456789";

/// A private admin token file in a fresh folder (kept alive by the guard).
fn admin_file(mode: u32) -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("admin-token");
    fs::write(&path, format!("{ADMIN}\n")).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        fs::set_permissions(&path, fs::Permissions::from_mode(mode)).unwrap();
    }
    #[cfg(not(unix))]
    let _ = mode;
    let path = path.to_str().unwrap().to_string();
    (dir, path)
}

#[test]
fn deleteroom_is_for_the_maker_the_owner_token_and_the_admin_token() {
    let (_dir, admin) = admin_file(0o600);
    let server = ServerProcess::start(&["--admin-token-file", &admin]);
    let mut maker = server.connect();
    let mut other = server.connect();
    let made = maker.ask("makeroom lobby 239.1.2.3 5000");
    // The old reply, byte for byte, then the token.
    assert_eq!(without_token(&made), "OK created lobby 239.1.2.3 5000");
    let token = token_of(&made);
    assert!(
        token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'),
        "{token}"
    );
    maker.ask("makeroom attic 239.1.2.4 5000");
    maker.ask("makeroom cellar 239.1.2.5 5000");

    // Another connection without the token is refused, and told who may.
    let denied = other.ask("deleteroom lobby");
    assert!(denied.starts_with("ERR denied "), "{denied}");
    assert!(denied.contains("owner"), "{denied}");
    assert!(denied.contains("operator"), "{denied}");
    let wrong = other.ask("deleteroom lobby AAAAAAAAAAAAAAAAAAAAAA");
    assert!(wrong.starts_with("ERR denied "), "{wrong}");
    // With the token it succeeds.
    assert_eq!(
        other.ask(&format!("deleteroom lobby {token}")),
        "OK deleted lobby"
    );
    // With the admin token any room goes.
    assert_eq!(
        other.ask(&format!("deleteroom attic {ADMIN}")),
        "OK deleted attic"
    );
    // The maker needs no token.
    assert_eq!(maker.ask("deleteroom cellar"), "OK deleted cellar");
    assert_eq!(other.request("getdir"), ["OK 0 rooms", "."]);
    // Neither token reaches the log.
    server.stdout.wait_for("deleteroom cellar: OK");
    let log = server.log();
    assert!(!log.contains(&token), "{log}");
    assert!(!log.contains(ADMIN), "{log}");
}

#[test]
fn two_servers_give_different_tokens() {
    let token = || {
        let server = ServerProcess::start(&[]);
        token_of(&server.connect().ask("makeroom lobby 239.1.2.3 5000"))
    };
    assert_ne!(token(), token());
}

#[test]
fn an_admin_token_file_open_to_others_or_missing_stops_the_start() {
    let run = |path: &str| {
        Command::new(roomcast_bin())
            .args(["server", "--bind", "127.0.0.1", "--port", "0"])
            .args(["--no-announce", "--admin-token-file", path])
            .output()
            .unwrap()
    };
    #[cfg(unix)]
    {
        let (_dir, open) = admin_file(0o644);
        let out = run(&open);
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("may be read by others"), "{err}");
    }
    let out = run("/nonexistent/roomcast-admin-token");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("cannot read the admin token file"), "{err}");
}

#[test]
fn the_state_file_keeps_owners_as_hashes_across_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("rooms.state");
    let state = state.to_str().unwrap();
    let token = {
        let mut server = ServerProcess::start(&["--state", state]);
        let token = token_of(&server.connect().ask("makeroom lobby 239.1.2.3 5000"));
        server.signal_and_wait("TERM");
        token
    };
    let text = fs::read_to_string(state).unwrap();
    assert!(text.starts_with("roomcast-state 3\n"), "{text}");
    assert!(!text.contains(&token), "the token itself is never stored");
    let server = ServerProcess::start(&["--state", state]);
    let mut c = server.connect();
    // After the restart no connection is the maker: the token is needed.
    assert!(c.ask("deleteroom lobby").starts_with("ERR denied "));
    assert_eq!(
        c.ask(&format!("deleteroom lobby {token}")),
        "OK deleted lobby"
    );
}

#[test]
fn connections_per_client_address_hold_at_their_edge() {
    let server = ServerProcess::start(&["--max-connections-per-client", "3"]);
    let mut held: Vec<Crdp> = (0..3).map(|_| server.connect()).collect();
    for c in &held {
        assert!(c.greeting.starts_with("OK CRDP/1 "), "{}", c.greeting);
    }
    let mut over = server.connect();
    assert_eq!(
        over.greeting,
        "ERR quota connections: your address holds 3 connections to this server, the most \
         it may; close one and try again"
    );
    assert_eq!(over.read_to_close(), "");
    // One closes: one more may come.
    let mut gone = held.pop().unwrap();
    assert_eq!(gone.ask("bye"), "OK bye");
    gone.read_to_close();
    server.stdout.wait_for("connection closed (2 connected)");
    let again = server.connect();
    assert!(
        again.greeting.starts_with("OK CRDP/1 "),
        "{}",
        again.greeting
    );
}

#[test]
fn the_default_connection_quota_is_32() {
    let server = ServerProcess::start(&[]);
    let held: Vec<Crdp> = (0..32).map(|_| server.connect()).collect();
    assert!(held.iter().all(|c| c.greeting.starts_with("OK CRDP/1 ")));
    assert!(
        server
            .connect()
            .greeting
            .starts_with("ERR quota connections: ")
    );
}

#[test]
fn rooms_per_client_address_hold_at_their_edge() {
    let server = ServerProcess::start(&["--max-rooms-per-client", "2"]);
    let mut a = server.connect();
    let mut b = server.connect();
    assert!(
        a.ask("makeroom r1 239.1.1.1 5000")
            .starts_with("OK created")
    );
    assert!(
        b.ask("makeroom r2 239.1.1.2 5000")
            .starts_with("OK created")
    );
    assert_eq!(
        a.ask("makeroom r3 239.1.1.3 5000"),
        "ERR quota rooms: your address has made 2 rooms, the most it may have at once; \
         delete one first"
    );
    assert_eq!(a.ask("deleteroom r1"), "OK deleted r1");
    assert!(
        a.ask("makeroom r3 239.1.1.3 5000")
            .starts_with("OK created")
    );
}

#[test]
fn commands_per_second_hold_at_their_edge() {
    // A burst of 5 and one command a second: six lines in one write (one
    // segment on loopback, read at one instant) leave the sixth refused.
    let server = ServerProcess::start(&["--commands-per-second", "1", "--command-burst", "5"]);
    let mut c = server.connect();
    c.send_raw("ping\n".repeat(6).as_bytes());
    for _ in 0..5 {
        assert_eq!(c.read_line(), "OK pong");
    }
    let over = c.read_line();
    assert!(over.starts_with("ERR quota rate: "), "{over}");
}

#[test]
fn a_flood_of_refused_commands_logs_a_bounded_number_of_lines() {
    // Thousands of commands over the rate quota: the first refusal is
    // logged, the rest in summary with their count (at most one line per
    // interval, the rest when the connection closes), not one line each.
    const FLOOD: usize = 2000;
    let server = ServerProcess::start(&["--commands-per-second", "1", "--command-burst", "5"]);
    let mut c = server.connect();
    c.send_raw("ping\n".repeat(FLOOD).as_bytes());
    for _ in 0..5 {
        assert_eq!(c.read_line(), "OK pong");
    }
    for _ in 5..FLOOD {
        let over = c.read_line();
        assert!(over.starts_with("ERR quota rate: "), "{over}");
    }
    drop(c);
    server.stdout.wait_for("connection closed");
    let log = server.log();
    let quota: Vec<&str> = log.lines().filter(|l| l.contains("quota")).collect();
    // The first, then a summary at most every 10 s, and one at the close.
    assert!(
        quota.len() <= 10,
        "{} lines: {:?}",
        quota.len(),
        &quota[..10]
    );
    assert!(quota[0].ends_with(": ping: ERR quota"), "{quota:?}");
    let counted: u64 = quota[1..]
        .iter()
        .map(|l| {
            let (_, rest) = l.split_once(": ").expect("client: ...");
            let n = rest.split(' ').next().unwrap();
            n.parse::<u64>().unwrap_or_else(|_| panic!("{l}"))
        })
        .sum();
    assert_eq!(counted + 1, (FLOOD - 5) as u64, "{quota:?}");
    assert!(
        quota.last().unwrap().ends_with("before it closed"),
        "{quota:?}"
    );
}

/// `roomcast client` with its own state folder (another account, as far as
/// its tokens go), talking to the server on `port`.
fn client_with_state(label: &str, state: &std::path::Path, port: u16) -> ClientProcess {
    let env = format!("XDG_STATE_HOME={}", state.display());
    let server = format!("127.0.0.1:{port}");
    ClientProcess::start_with(label, &["env", &env], &["--server", &server])
}

#[test]
fn the_client_keeps_its_tokens_privately_and_sends_them_with_deleteroom() {
    let server = ServerProcess::start(&[]);
    let ours = tempfile::tempdir().unwrap();
    let theirs = tempfile::tempdir().unwrap();
    let connected = format!(
        "Connected to the directory server at 127.0.0.1:{}",
        server.port
    );

    let mut maker = client_with_state("maker", ours.path(), server.port);
    maker.run("connect", &connected);
    maker.run("makeroom lobby 239.1.2.3 5000", "Room lobby created");
    maker.run("bye", "Disconnected");
    let file = ours.path().join("roomcast").join("tokens");
    let text = fs::read_to_string(&file).unwrap();
    assert!(
        text.starts_with(&format!("127.0.0.1:{} lobby ", server.port)),
        "{text}"
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = |p: &std::path::Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&file), 0o600);
        assert_eq!(mode(file.parent().unwrap()), 0o700);
    }

    // Another account has no token: refused, and told what to do.
    let mut other = client_with_state("other", theirs.path(), server.port);
    other.run("connect", &connected);
    let refused = other.run("deleteroom lobby", "was not deleted");
    assert!(
        refused.contains("only the owner of room 'lobby'"),
        "{refused}"
    );
    assert!(refused.ends_with("deleteroom lobby <token>."), "{refused}");

    // The same account, on a new connection: the kept token is sent.
    let mut again = client_with_state("again", ours.path(), server.port);
    again.run("connect", &connected);
    again.run("deleteroom LOBBY", "Room LOBBY deleted.");
    assert_eq!(server.connect().request("getdir"), ["OK 0 rooms", "."]);
}
