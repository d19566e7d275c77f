//! Private rooms end to end, on real sockets in a private network
//! namespace: clients of the real binary make a private room and chat in
//! it with the passphrase (from `--passphrase-file` and from
//! `ROOMCAST_PASSPHRASE`); a wrong passphrase is told at once and shows
//! nothing; a raw socket joined to the room's group on both its ports sees
//! none of the words typed and no names; captured datagrams sent again are
//! not shown again; a plain `Name: text` datagram is not shown; and the
//! passphrase typed at a terminal is not echoed.

mod client_common;

use std::net::{Ipv4Addr, SocketAddrV4};
use std::thread;
use std::time::Duration;

use client_common::tmux::Tmux;
use client_common::{ClientProcess, eventually};
use roomcast_tests::loopback::{Capture, everything, sender};
use roomcast_tests::{ServerProcess, netns, roomcast_bin};

/// The passphrase of the room the tests make.
const PASS: &str = "correct horse battery staple";

/// The room's group and port (its control port is the next one).
const GROUP: Ipv4Addr = Ipv4Addr::new(239, 77, 5, 1);
const PORT: u16 = 47200;

/// A file holding `passphrase` and a line ending, as `echo` writes it.
fn pass_file(dir: &tempfile::TempDir, passphrase: &str) -> String {
    let path = dir.path().join("passphrase");
    std::fs::write(&path, format!("{passphrase}\n")).unwrap();
    path.to_str().unwrap().to_string()
}

/// Ann (passphrase from a file) makes the private room `secret` on
/// [`GROUP`]:[`PORT`] through the client and enters it.
fn ann_makes_and_enters(port: u16, file: &str, extra: &[&str]) -> ClientProcess {
    let mut args = vec!["--name", "Ann", "--passphrase-file", file];
    args.extend_from_slice(extra);
    let mut ann = ClientProcess::start("ann", port, &args);
    ann.run("connect", "Connected");
    ann.run(
        &format!("makeroom secret {GROUP} {PORT} --private"),
        &format!(
            "Room 'secret' created (private: only people with its passphrase can read it): \
             multicast group {GROUP} port {PORT}."
        ),
    );
    ann.run("chat secret", "Entering chat room secret");
    ann.expect("The room is private: messages are encrypted");
    ann
}

#[test]
fn the_passphrase_chats_both_ways_and_the_wire_holds_no_words_or_names() {
    netns::isolated(|| {
        let server = ServerProcess::start(&[]);
        let dir = tempfile::tempdir().unwrap();
        let file = pass_file(&dir, PASS);
        // Everything sent to the room, on both its ports, from the start.
        let plain_port = Capture::start(GROUP, PORT, everything);
        let control_port = Capture::start(GROUP, PORT + 1, everything);

        let logs = dir.path().join("logs");
        let mut ann =
            ann_makes_and_enters(server.port, &file, &["--log-dir", logs.to_str().unwrap()]);
        // The directory keeps the room private, with its salt and verifier.
        let mut crdp = server.connect();
        let reply = crdp.ask("getroom secret");
        assert!(
            reply.starts_with(&format!("OK room secret {GROUP} {PORT} private salt=")),
            "{reply}"
        );
        assert!(reply.contains(" verifier="), "{reply}");
        drop(crdp);

        let mut bob = ClientProcess::start_with_env(
            "bob",
            &[],
            &[
                "--server",
                &format!("127.0.0.1:{}", server.port),
                "--iface",
                "127.0.0.1",
                "--name",
                "Bob",
            ],
            &[("ROOMCAST_PASSPHRASE", PASS)],
        );
        bob.run("chat secret", "Entering chat room secret");
        bob.expect("The room is private");
        ann.expect("Bob joined");

        ann.send("zebra crossing at noon");
        bob.expect("Ann: zebra crossing at noon");
        bob.send("walrus reply");
        ann.expect("Bob: walrus reply");

        // The wire: sealed datagrams on the control port only, holding
        // none of the words and no names.
        eventually("datagrams captured", || control_port.datagrams().len() >= 2);
        thread::sleep(Duration::from_millis(300));
        let sealed = control_port.datagrams();
        assert!(
            plain_port.datagrams().is_empty(),
            "a private room sent plain datagrams: {:?}",
            plain_port.datagrams()
        );
        for datagram in &sealed {
            assert!(
                datagram.starts_with(b"\xffRC\x01\x05"),
                "not sealed: {datagram:?}"
            );
            for word in [
                "zebra", "crossing", "noon", "walrus", "reply", "Ann", "Bob", "secret",
            ] {
                assert!(
                    !datagram.windows(word.len()).any(|w| w == word.as_bytes()),
                    "{word:?} is in a datagram on the wire: {datagram:?}"
                );
            }
        }

        // Every captured datagram sent again: nothing is shown again.
        let replay = sender();
        for datagram in &sealed {
            replay
                .send_to(datagram, SocketAddrV4::new(GROUP, PORT + 1))
                .unwrap();
        }
        // A plain `Name: text` datagram into the private room: not shown,
        // counted.
        replay
            .send_to(b"Eve: plain words", SocketAddrV4::new(GROUP, PORT))
            .unwrap();
        bob.expect("[1 unencrypted datagram ignored: this room is private]");
        ann.expect("[1 unencrypted datagram ignored: this room is private]");
        // A message typed after the replays arrives once: so had the
        // replays been shown, they would have come before it.
        ann.send("after the replay");
        bob.expect("Ann: after the replay");
        bob.send("me too");
        ann.expect("Bob: me too");
        assert_eq!(bob.stdout.count("Ann: zebra crossing at noon"), 1);
        assert_eq!(ann.stdout.count("Bob: walrus reply"), 1);
        assert_eq!(ann.stdout.count("Ann: zebra crossing at noon"), 0);
        for client in [&ann, &bob] {
            assert_eq!(client.stdout.count("Eve: plain words"), 0);
            assert_eq!(client.stdout.count("could not be decrypted"), 0);
        }
        // Ann's chat log has both sides, her own lines too.
        let folder = logs.join("secret");
        let log: String = std::fs::read_dir(&folder)
            .unwrap()
            .map(|f| std::fs::read_to_string(f.unwrap().path()).unwrap())
            .collect();
        for line in [
            "<Ann> zebra crossing at noon",
            "<Bob> walrus reply",
            "<Ann> after the replay",
        ] {
            assert_eq!(log.matches(line).count(), 1, "{line:?} in the log:\n{log}");
        }
    });
}

#[test]
fn a_wrong_passphrase_is_told_at_once_and_shows_nothing() {
    netns::isolated(|| {
        let server = ServerProcess::start(&[]);
        let dir = tempfile::tempdir().unwrap();
        let file = pass_file(&dir, PASS);
        let mut ann = ann_makes_and_enters(server.port, &file, &[]);

        let mut eve = ClientProcess::start_with_env(
            "eve",
            &[],
            &[
                "--server",
                &format!("127.0.0.1:{}", server.port),
                "--iface",
                "127.0.0.1",
                "--name",
                "Eve",
            ],
            &[("ROOMCAST_PASSPHRASE", "incorrect horse battery staple")],
        );
        eve.run(
            "chat secret",
            "Wrong passphrase for room 'secret': the passphrase from ROOMCAST_PASSPHRASE is \
             not this room's. Give this room's passphrase there (or start roomcast without \
             ROOMCAST_PASSPHRASE to type it), then 'chat secret' again.",
        );
        // She is at the prompt, not in the room.
        eve.run("name", "Your chat name is Eve.");
        ann.send("words for members only");
        thread::sleep(Duration::from_millis(500));
        assert_eq!(eve.stdout.count("members only"), 0);
        assert_eq!(eve.stdout.count("Entering chat room"), 0);
        assert_eq!(ann.stdout.count("Eve joined"), 0);
    });
}

#[test]
fn without_a_terminal_or_a_source_the_options_are_named() {
    netns::isolated(|| {
        assert!(
            std::env::var_os("ROOMCAST_PASSPHRASE").is_none(),
            "run the tests without ROOMCAST_PASSPHRASE set"
        );
        let server = ServerProcess::start(&[]);
        let dir = tempfile::tempdir().unwrap();

        // No passphrase at all: making a private room says what to do.
        let mut dan = ClientProcess::start("dan", server.port, &["--name", "Dan"]);
        dan.run("connect", "Connected");
        dan.run(
            "makeroom secret --private",
            "Room 'secret' was not created: the room is private and its passphrase cannot be \
             typed here (not a terminal): give it with --passphrase-file PATH or the \
             ROOMCAST_PASSPHRASE environment variable.",
        );
        // Too short for a new room.
        let short = pass_file(&dir, "short");
        let mut kim = ClientProcess::start("kim", server.port, &["--passphrase-file", &short]);
        kim.run("connect", "Connected");
        let said = kim.run("makeroom secret --private", "was not created");
        assert!(
            said.contains("is too short: a new private room needs at least 8 bytes"),
            "{said}"
        );
        // Made with a good one, entered without any: refused, named.
        let file = pass_file(&dir, PASS);
        let _ann = ann_makes_and_enters(server.port, &file, &[]);
        dan.run(
            "chat secret",
            "You did not enter room 'secret': the room is private and its passphrase cannot \
             be typed here",
        );
        let missing = dir.path().join("missing");
        let mut lee = ClientProcess::start(
            "lee",
            server.port,
            &["--passphrase-file", missing.to_str().unwrap()],
        );
        let said = lee.run("chat secret", "You did not enter room 'secret'");
        assert!(said.contains("cannot read the passphrase file"), "{said}");
        assert_eq!(dan.stdout.count("Entering chat room"), 0);
    });
}

#[test]
fn a_typed_passphrase_is_not_echoed() {
    netns::isolated(|| {
        let server = ServerProcess::start(&[]);
        let port = server.port;
        let command = format!(
            "env -u ROOMCAST_PASSPHRASE {} client --server 127.0.0.1:{port} --iface 127.0.0.1 \
             --name Alice --time-format none",
            roomcast_bin().display()
        );
        let tmux = Tmux::start(&command);
        tmux.wait_last_line("roomcast>");
        tmux.type_text("connect");
        tmux.press("Enter");
        let connected = format!("roomcast [127.0.0.1:{port}]>");
        tmux.wait_last_line(&connected);

        // Made with the passphrase typed twice, never shown.
        tmux.type_text(&format!("makeroom secret {GROUP} {PORT} --private"));
        tmux.press("Enter");
        tmux.wait_last_line("Passphrase for new private room 'secret':");
        tmux.type_text("tiger lily pad");
        tmux.press("Enter");
        tmux.wait_last_line("Repeat it:");
        tmux.type_text("tiger lily pad");
        tmux.press("Enter");
        let screen = tmux.wait_screen("the room made", |s| {
            s.iter()
                .any(|l| l.starts_with("Room 'secret' created (private"))
        });
        tmux.wait_last_line(&connected);
        assert!(!screen.iter().any(|l| l.contains("tiger")), "{screen:#?}");

        // A wrong passphrase: told at once, back at the prompt.
        tmux.type_text("chat secret");
        tmux.press("Enter");
        tmux.wait_last_line("Passphrase for room 'secret':");
        tmux.type_text("lion");
        tmux.press("Enter");
        let screen = tmux.wait_screen("the wrong passphrase told", |s| {
            s.iter()
                .any(|l| l.starts_with("Wrong passphrase for room 'secret'"))
        });
        tmux.wait_last_line(&connected);
        assert!(!screen.iter().any(|l| l.contains("lion")), "{screen:#?}");

        // Ctrl-C at the prompt gives up, with the terminal as it was.
        tmux.type_text("chat secret");
        tmux.press("Enter");
        tmux.wait_last_line("Passphrase for room 'secret':");
        tmux.type_text("half");
        tmux.press("C-c");
        let screen = tmux.wait_screen("giving up told", |s| {
            s.iter()
                .any(|l| l == "You did not enter room 'secret': no passphrase was given.")
        });
        tmux.wait_last_line(&connected);
        assert!(!screen.iter().any(|l| l.contains("half")), "{screen:#?}");

        // The right one enters; Ctrl-U and Backspace edit what is typed.
        tmux.type_text("chat secret");
        tmux.press("Enter");
        tmux.wait_last_line("Passphrase for room 'secret':");
        tmux.type_text("nonsense");
        tmux.press("C-u");
        tmux.type_text("tiger lily padX");
        tmux.press("BSpace");
        tmux.press("Enter");
        let screen = tmux.wait_screen("entering the room", |s| {
            s.iter().any(|l| l.starts_with("The room is private"))
        });
        tmux.wait_last_line("[secret] Alice>");
        assert!(
            !screen
                .iter()
                .any(|l| l.contains("tiger") || l.contains("nonsense")),
            "{screen:#?}"
        );
        // Echo is back on for ordinary lines.
        tmux.type_text("visible words");
        tmux.wait_last_line("[secret] Alice> visible words");
    });
}

/// A relay to the directory server at `to` that holds each `getroom`
/// answer back for `delay` (longer than the client waits before it reads
/// input ahead); serves connections until the test ends.
fn slow_relay(to: std::net::SocketAddr, delay: Duration) -> u16 {
    use std::io::{BufRead as _, BufReader, Write as _};
    use std::net::{TcpListener, TcpStream};
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    thread::spawn(move || {
        for client in listener.incoming() {
            let Ok(client) = client else { return };
            let server = TcpStream::connect(to).unwrap();
            let (mut to_server, from_client) =
                (server.try_clone().unwrap(), client.try_clone().unwrap());
            thread::spawn(move || {
                let _ = std::io::copy(&mut &from_client, &mut to_server);
            });
            thread::spawn(move || {
                let mut to_client = client;
                let mut lines = BufReader::new(server);
                let mut line = String::new();
                while lines.read_line(&mut line).is_ok_and(|n| n > 0) {
                    if line.starts_with("OK room ") {
                        thread::sleep(delay);
                    }
                    if to_client.write_all(line.as_bytes()).is_err() {
                        return;
                    }
                    line.clear();
                }
            });
        }
    });
    port
}

/// With a slow server the client reads input ahead (so Ctrl-C acts at
/// once), without echo and saying it waits: a passphrase typed there (or
/// any line) is dropped, never shown, sent to the room, run or kept in the
/// history, and the user is told; the passphrase is then asked at its own
/// prompt. Ctrl-C while the room is looked up cancels the `chat`; the
/// terminal is left as it was (echo on). Before the fix, the line read
/// ahead was echoed, kept in the history, and sent to the room.
#[test]
fn a_slow_server_drops_the_line_typed_ahead_and_asks_the_passphrase() {
    netns::isolated(|| {
        let server = ServerProcess::start(&[]);
        let dir = tempfile::tempdir().unwrap();
        let file = pass_file(&dir, PASS);
        let mut ann = ann_makes_and_enters(server.port, &file, &[]);
        let relay = slow_relay(server.addr(), Duration::from_millis(1500));
        // The client, then the terminal's modes once it has exited, into
        // the file `stty`.
        let command = |stty: &std::path::Path| {
            format!(
                "sh -c 'env -u ROOMCAST_PASSPHRASE {} client --server 127.0.0.1:{relay} \
                 --iface 127.0.0.1 --name Bob --time-format none; stty -a > {}; sleep 30'",
                roomcast_bin().display(),
                stty.display()
            )
        };
        let echo_on = |stty: &std::path::Path| {
            eventually("the client to exit and stty to run", || {
                std::fs::read_to_string(stty).is_ok_and(|s| s.contains("echo"))
            });
            let modes = std::fs::read_to_string(stty).unwrap();
            let words: Vec<&str> = modes.split_whitespace().collect();
            assert!(
                words.contains(&"echo") && words.contains(&"icanon"),
                "the terminal was left without echo:\n{modes}"
            );
        };
        let waiting = "(waiting for the directory server about room 'secret'; Ctrl-C cancels)";

        // The passphrase typed ahead, at the line read while waiting.
        let stty = dir.path().join("stty-1");
        let tmux = Tmux::start(&command(&stty));
        tmux.wait_last_line("roomcast>");
        tmux.type_text("chat secret");
        tmux.press("Enter");
        tmux.wait_last_line(waiting);
        tmux.type_text(PASS);
        tmux.press("Enter");
        tmux.wait_screen("the line dropped", |s| {
            s.iter().any(|l| {
                l.starts_with("The line typed while the room was looked up was dropped: not sent")
            })
        });
        tmux.wait_screen("the notice", |s| {
            s.iter()
                .any(|l| l.starts_with("Room 'secret' is private: press Enter to go on"))
        });
        tmux.press("Enter");
        tmux.wait_last_line("Passphrase for room 'secret':");
        tmux.type_text(PASS);
        tmux.press("Enter");
        tmux.wait_last_line("[secret] Bob>");
        ann.expect("Bob joined");
        // The history holds the command, not the line dropped.
        tmux.press("Up");
        tmux.wait_last_line("[secret] Bob> chat secret");
        tmux.press("Up");
        tmux.wait_last_line("[secret] Bob> chat secret");
        tmux.press("C-u");
        tmux.type_text("after the passphrase");
        tmux.press("Enter");
        ann.expect("Bob: after the passphrase");
        assert!(
            !tmux.screen().iter().any(|l| l.contains("horse")),
            "{:#?}",
            tmux.screen()
        );
        assert_eq!(ann.stdout.count("horse"), 0, "{:#?}", ann.stdout.all());
        tmux.press("C-d");
        echo_on(&stty);
        drop(tmux);

        // Ctrl-C while the room is looked up cancels the chat; the late
        // answer enters nothing, no passphrase is asked, and the terminal
        // keeps its echo.
        let stty = dir.path().join("stty-2");
        let tmux = Tmux::start(&command(&stty));
        tmux.wait_last_line("roomcast>");
        tmux.type_text("chat secret");
        tmux.press("Enter");
        tmux.wait_last_line(waiting);
        tmux.press("C-c");
        tmux.wait_screen("the chat cancelled", |s| {
            s.iter()
                .any(|l| l == "You did not enter room 'secret': cancelled.")
        });
        tmux.wait_last_line("roomcast>");
        tmux.type_text("quit");
        tmux.press("Enter");
        echo_on(&stty);
        assert!(
            !tmux
                .screen()
                .iter()
                .any(|l| l.starts_with("Passphrase for room") || l.starts_with("Entering")),
            "{:#?}",
            tmux.screen()
        );
    });
}

/// The downgrade (F1): a directory server that calls a private room open
/// (a forged one announced on the LAN, say) is not believed by a client
/// of an account that entered the room as private: not by its name, nor
/// by its group and port. And a client given a passphrase never enters an
/// open room. Before the fix, each of these entered the room open and
/// sent its words in clear.
#[test]
fn an_open_room_where_a_private_one_was_is_refused() {
    netns::isolated(|| {
        let server = ServerProcess::start(&[]);
        let dir = tempfile::tempdir().unwrap();
        let file = pass_file(&dir, PASS);
        let ann = ann_makes_and_enters(server.port, &file, &[]);

        // The forged directory: the room's name, group and port, open.
        let forged = ServerProcess::start(&[]);
        let mut crdp = forged.connect();
        assert!(
            crdp.ask(&format!("makeroom secret {GROUP} {PORT}"))
                .starts_with("OK")
        );
        assert!(
            crdp.ask("makeroom plain 239.77.5.9 47300")
                .starts_with("OK")
        );
        // Another: another name on the private room's address.
        let other = ServerProcess::start(&[]);
        let mut crdp2 = other.connect();
        assert!(
            crdp2
                .ask(&format!("makeroom lounge {GROUP} {PORT}"))
                .starts_with("OK")
        );

        // The same account (the tests' clients share one state folder),
        // without a passphrase.
        let mut vic = ClientProcess::start("vic", forged.port, &["--name", "Vic"]);
        let said = vic.run("chat secret", "You did not enter it");
        assert!(
            said.contains("Room 'secret' (239.77.5.1 port 47200) is OPEN on the directory server")
                && said.contains("as private before"),
            "{said}"
        );
        let mut wes = ClientProcess::start("wes", other.port, &["--name", "Wes"]);
        let said = wes.run("chat lounge", "You did not enter it");
        assert!(said.contains("entered room 'secret'"), "{said}");

        // A passphrase given: an open room is refused, whatever it is.
        let mut pat = ClientProcess::start(
            "pat",
            forged.port,
            &["--name", "Pat", "--passphrase-file", &file],
        );
        pat.run(
            "chat plain",
            "Room 'plain' is OPEN: anyone on the LAN can read it, although a passphrase was \
             given (--passphrase-file). You did not enter it",
        );
        // Nobody got in: all stay at the prompt.
        for c in [&mut vic, &mut wes, &mut pat] {
            c.run("name", "Your chat name is");
            assert_eq!(c.stdout.count("Entering chat room"), 0);
        }
        thread::sleep(Duration::from_millis(300));
        assert_eq!(ann.stdout.count("unencrypted datagram"), 0);
        assert_eq!(ann.stdout.count("joined"), 0);
    });
}

/// A client killed (SIGTERM, SIGHUP) while it reads a passphrase without
/// echo puts the terminal back first (F3): the shell after it has its
/// echo. Before the fix, the terminal stayed without echo, ICANON and ISIG.
#[test]
fn a_client_killed_at_the_passphrase_prompt_restores_the_terminal() {
    netns::isolated(|| {
        let server = ServerProcess::start(&[]);
        let dir = tempfile::tempdir().unwrap();
        let file = pass_file(&dir, PASS);
        let _ann = ann_makes_and_enters(server.port, &file, &[]);
        for signal in ["TERM", "HUP"] {
            let stty = dir.path().join(format!("stty-{signal}"));
            let command = format!(
                "sh -c 'env -u ROOMCAST_PASSPHRASE {} client --server 127.0.0.1:{} \
                 --iface 127.0.0.1 --name Bob --time-format none; stty -a > {}; sleep 30'",
                roomcast_bin().display(),
                server.port,
                stty.display()
            );
            let tmux = Tmux::start(&command);
            tmux.wait_last_line("roomcast>");
            tmux.type_text("chat secret");
            tmux.press("Enter");
            tmux.wait_last_line("Passphrase for room 'secret':");
            // The client is the shell's child.
            let shell = tmux.format("#{pane_pid}");
            let children =
                std::fs::read_to_string(format!("/proc/{shell}/task/{shell}/children")).unwrap();
            let client = children.split_whitespace().next().expect("the client");
            let killed = std::process::Command::new("kill")
                .args([&format!("-{signal}"), client])
                .status()
                .unwrap();
            assert!(killed.success());
            eventually("the client to exit and stty to run", || {
                std::fs::read_to_string(&stty).is_ok_and(|s| s.contains("echo"))
            });
            let modes = std::fs::read_to_string(&stty).unwrap();
            let words: Vec<&str> = modes.split_whitespace().collect();
            assert!(
                words.contains(&"echo") && words.contains(&"icanon") && words.contains(&"isig"),
                "{signal}: the terminal was left without echo:\n{modes}"
            );
        }
    });
}
