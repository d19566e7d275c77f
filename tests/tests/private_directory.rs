//! Private rooms in the directory, end to end against the real server
//! binary: `salt`, the private `makeroom`, `getroom`, and the salt and
//! verifier surviving a restart through the state file. TCP on loopback
//! only (no multicast: the rooms' chat is another test's business).

use std::path::PathBuf;

use roomcast_tests::{ServerProcess, token_of, without_token};

/// A verifier as a client would send it: 22 base64url characters.
const VERIFIER: &str = "AgICAgICAgICAgICAgICAg";

/// The reply to a private makeroom whose salt this connection was not
/// given.
const BADSALT: &str = "ERR badsalt that salt was not given to this connection by 'salt'; send \
                       'salt', derive the key with the salt it answers, and send makeroom again";

/// Asks for a salt and returns it.
fn salt(c: &mut roomcast_tests::Crdp) -> String {
    let reply = c.ask("salt");
    let salt = reply
        .strip_prefix("OK salt=")
        .unwrap_or_else(|| panic!("{reply:?}"));
    assert_eq!(salt.len(), 22, "{reply:?}");
    assert!(
        salt.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'),
        "{reply:?}"
    );
    salt.to_string()
}

fn temp_state(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "roomcast-private-e2e-{}-{name}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir.join("rooms.state")
}

#[test]
fn a_private_room_is_made_with_a_salt_and_shown_by_getroom() {
    let server = ServerProcess::start(&[]);
    let mut c = server.connect();
    let mut other = server.connect();
    assert!(
        c.ask("makeroom lobby 239.1.1.1 5000")
            .starts_with("OK created")
    );
    // No salt yet, a made-up one, another connection's: refused.
    let made_up = "AQEBAQEBAQEBAQEBAQEBAQ";
    assert_eq!(
        c.ask(&format!("makeroom secret private {made_up} {VERIFIER}")),
        BADSALT
    );
    let theirs = salt(&mut other);
    assert_eq!(
        c.ask(&format!("makeroom secret private {theirs} {VERIFIER}")),
        BADSALT
    );
    // The verbs in any case; `private` in any case.
    let first = salt(&mut c);
    let ours = c.ask("SALT").strip_prefix("OK salt=").unwrap().to_string();
    assert_ne!(first, ours, "each salt is fresh");
    // A second `salt` replaced the first.
    assert_eq!(
        c.ask(&format!("makeroom secret private {first} {VERIFIER}")),
        BADSALT
    );
    let reply = c.ask(&format!(
        "MakeRoom secret 239.1.1.3 5000 PRIVATE {ours} {VERIFIER}"
    ));
    assert_eq!(
        without_token(&reply),
        "OK created secret 239.1.1.3 5000 private"
    );
    let token = token_of(&reply);
    // Used up.
    assert_eq!(
        c.ask(&format!("makeroom again private {ours} {VERIFIER}")),
        BADSALT
    );
    // Anyone may ask for a room's details; getdir is unchanged.
    assert_eq!(
        other.ask("getroom SECRET"),
        format!("OK room secret 239.1.1.3 5000 private salt={ours} verifier={VERIFIER}")
    );
    assert_eq!(
        other.ask("GetRoom Lobby"),
        "OK room lobby 239.1.1.1 5000 open"
    );
    assert_eq!(
        other.ask("getroom nowhere"),
        "ERR noroom no room has that name; 'getdir' lists the rooms"
    );
    assert_eq!(other.ask("getroom"), "ERR usage usage: getroom <name>");
    assert_eq!(other.ask("salt now"), "ERR usage usage: salt");
    assert!(
        other
            .ask(&format!("makeroom x private short {VERIFIER}"))
            .starts_with("ERR usage 'short' is not a salt")
    );
    assert!(
        other
            .ask(&format!("makeroom x private {theirs} {VERIFIER}x"))
            .starts_with("ERR usage ")
    );
    assert_eq!(
        other.request("getdir"),
        [
            "OK 2 rooms",
            "lobby 239.1.1.1 5000",
            "secret 239.1.1.3 5000",
            "."
        ]
    );
    // `getdir full` says which rooms are private; `full` in any case.
    for command in ["getdir full", "GETDIR Full"] {
        assert_eq!(
            other.request(command),
            [
                "OK 2 rooms",
                "lobby 239.1.1.1 5000 open",
                "secret 239.1.1.3 5000 private",
                "."
            ],
            "{command}"
        );
    }
    assert_eq!(other.ask("getdir fully"), "ERR usage usage: getdir [full]");
    // Owners as ever: the token deletes it from anywhere.
    assert_eq!(
        other.ask(&format!("deleteroom secret {token}")),
        "OK deleted secret"
    );
    assert!(other.ask("getroom secret").starts_with("ERR noroom"));
    // The server picks the address of a private room made by name only.
    let fresh = salt(&mut c);
    let reply = c.ask(&format!("makeroom picked private {fresh} {VERIFIER}"));
    assert!(reply.starts_with("OK created picked 239.255."), "{reply}");
    assert!(reply.ends_with(" private"), "{reply}");
    // help lists the new commands.
    let help = c.request("help");
    for usage in [
        "getdir [full]",
        "getroom <name>",
        "salt",
        "[private <salt> <verifier>]",
    ] {
        assert!(
            help.iter().any(|l| l.contains(usage)),
            "{usage} is not in {help:?}"
        );
    }
}

#[test]
fn the_longest_getroom_reply_fits_a_line() {
    let server = ServerProcess::start(&[]);
    let mut c = server.connect();
    let name = "n".repeat(32);
    let group = "ff15:ffff:ffff:ffff:ffff:ffff:ffff:ffff";
    let given = salt(&mut c);
    // 65534: the highest port of a private room (65535 has no control port).
    let reply = c.ask(&format!(
        "makeroom {name} {group} 65534 private {given} {VERIFIER}"
    ));
    assert!(reply.ends_with(" private"), "{reply}");
    let reply = c.ask(&format!("getroom {name}"));
    assert_eq!(
        reply,
        format!("OK room {name} {group} 65534 private salt={given} verifier={VERIFIER}")
    );
    // 154 bytes and the LF: far below the 512-byte line limit.
    assert_eq!(reply.len() + 1, 155);
}

#[test]
fn private_rooms_keep_their_salt_and_verifier_across_a_restart() {
    let state = temp_state("restart");
    let path = state.to_str().unwrap();
    let mut server = ServerProcess::start(&["--state", path]);
    let mut c = server.connect();
    let given = salt(&mut c);
    let reply = c.ask(&format!(
        "makeroom secret 239.1.1.3 5000 private {given} {VERIFIER}"
    ));
    assert!(reply.ends_with(" private"), "{reply}");
    assert!(
        c.ask("makeroom lobby 239.1.1.1 5000")
            .starts_with("OK created")
    );
    let text = std::fs::read_to_string(&state).unwrap();
    assert!(text.starts_with("roomcast-state 3\n"), "{text}");
    assert!(
        text.lines().any(|l| l.starts_with("secret 239.1.1.3 5000 ")
            && l.ends_with(&format!(" private {given} {VERIFIER}"))),
        "{text}"
    );
    assert!(
        text.lines()
            .any(|l| l.starts_with("lobby 239.1.1.1 5000 ") && l.split(' ').count() == 4),
        "{text}"
    );
    drop(c);
    assert!(server.signal_and_wait("TERM").success());

    let server = ServerProcess::start(&["--state", path]);
    server.stdout.wait_for("loaded 2 rooms");
    let mut c = server.connect();
    assert_eq!(
        c.ask("getroom secret"),
        format!("OK room secret 239.1.1.3 5000 private salt={given} verifier={VERIFIER}")
    );
    assert_eq!(c.ask("getroom lobby"), "OK room lobby 239.1.1.1 5000 open");
    // The salt was used before the restart, and a new connection has none.
    assert_eq!(
        c.ask(&format!("makeroom other private {given} {VERIFIER}")),
        BADSALT
    );
}

#[test]
fn old_state_files_still_load_as_open_rooms() {
    let hash = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
    for (name, text) in [
        (
            "v1",
            "roomcast-state 1\nlobby 239.1.1.1 5000\nend 1\n".to_string(),
        ),
        (
            "v2",
            format!("roomcast-state 2\nlobby 239.1.1.1 5000 {hash}\nend 1\n"),
        ),
    ] {
        let state = temp_state(name);
        std::fs::write(&state, text).unwrap();
        let server = ServerProcess::start(&["--state", state.to_str().unwrap()]);
        server.stdout.wait_for("loaded 1 rooms");
        let mut c = server.connect();
        assert_eq!(
            c.ask("getroom LOBBY"),
            "OK room lobby 239.1.1.1 5000 open",
            "{name}"
        );
        // The next save writes version 3.
        assert!(
            c.ask("makeroom attic 239.1.1.2 5000")
                .starts_with("OK created")
        );
        let saved = std::fs::read_to_string(&state).unwrap();
        assert!(saved.starts_with("roomcast-state 3\n"), "{name}: {saved}");
    }
}
