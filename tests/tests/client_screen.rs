//! The chat screen in a real terminal (tmux) and what the client keeps:
//! times, stable colours per sender (none with NO_COLOR or `--color
//! never`), `/me` actions and the datagram plain clients get, the chat log
//! (neutralised, private), and the config file (honoured, overridden by an
//! option, a bad one refused with its line), and tables aligned by
//! display width (CJK, emoji, combining marks).
//!
//! Every test that chats runs in a private network namespace of its own
//! (`netns::isolated`): multicast on loopback only.

mod client_common;

use std::net::{Ipv4Addr, SocketAddrV4, UdpSocket};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use client_common::tmux::Tmux;
use client_common::{ClientProcess, eventually};
use roomcast_tests::{ServerProcess, WAIT, netns, roomcast_bin};
use socket2::{Domain, Protocol, Socket, Type};
use unicode_width::UnicodeWidthStr;

/// A server with one room, `lobby` at `group`:`port`.
fn server_with_lobby(group: &str, port: u16) -> ServerProcess {
    let server = ServerProcess::start(&[]);
    let mut crdp = server.connect();
    let reply = crdp.ask(&format!("makeroom lobby {group} {port}"));
    assert!(reply.starts_with("OK"), "{reply}");
    server
}

/// A terminal client of `server` named `name`, in room `lobby`; `env`
/// (like `NO_COLOR=1`) and `extra` options are given to it. NO_COLOR is
/// unset unless `env` sets it, whatever the test runner has.
fn terminal_in_lobby(server: &ServerProcess, name: &str, env: &str, extra: &str) -> Tmux {
    let command = format!(
        "env -u NO_COLOR {env} {} client --server 127.0.0.1:{} --iface 127.0.0.1 --name {name} \
         {extra}",
        roomcast_bin().display(),
        server.port
    );
    let tmux = Tmux::start(&command);
    tmux.wait_last_line("roomcast>");
    tmux.type_text("chat lobby");
    tmux.press("Enter");
    tmux.wait_last_line(&format!("[lobby] {name}>"));
    tmux
}

/// The screen with its escape codes (`capture-pane -e`).
fn screen_with_codes(tmux: &Tmux) -> Vec<String> {
    let out = tmux.run(&["capture-pane", "-p", "-e", "-t", "client"]);
    assert!(out.status.success(), "{out:?}");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect()
}

/// The line of the screen (with its codes) that holds `needle`.
fn coded_line(tmux: &Tmux, needle: &str) -> String {
    screen_with_codes(tmux)
        .into_iter()
        .find(|l| l.contains(needle))
        .unwrap_or_else(|| panic!("no line with {needle:?}:\n{}", tmux.screen().join("\n")))
}

/// Whether `s` starts with a time as `HH:MM` then a space.
fn starts_with_time(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() > 6
        && b[..2].iter().all(u8::is_ascii_digit)
        && b[2] == b':'
        && b[3..5].iter().all(u8::is_ascii_digit)
        && b[5] == b' '
}

/// A socket in the room's group, as a plain client (or a hostile peer)
/// on the LAN would have, over loopback only.
fn plain_member(group: Ipv4Addr, port: u16) -> (UdpSocket, UdpSocket) {
    let recv = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP)).unwrap();
    recv.set_reuse_address(true).unwrap();
    recv.set_reuse_port(true).unwrap();
    recv.set_multicast_all_v4(false).unwrap();
    recv.bind(&SocketAddrV4::new(group, port).into()).unwrap();
    recv.join_multicast_v4(&group, &Ipv4Addr::LOCALHOST)
        .unwrap();
    recv.set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let send = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP)).unwrap();
    send.set_multicast_if_v4(&Ipv4Addr::LOCALHOST).unwrap();
    send.set_multicast_ttl_v4(1).unwrap();
    send.set_multicast_loop_v4(true).unwrap();
    (recv.into(), send.into())
}

/// Waits for a datagram equal to `wanted` on `socket`.
fn receive(socket: &UdpSocket, wanted: &[u8]) {
    let deadline = Instant::now() + WAIT;
    let mut seen = Vec::new();
    let mut buf = [0; 2048];
    while Instant::now() < deadline {
        if let Ok(n) = socket.recv(&mut buf) {
            if &buf[..n] == wanted {
                return;
            }
            seen.push(String::from_utf8_lossy(&buf[..n]).into_owned());
        }
    }
    panic!(
        "no datagram {:?}; got {seen:#?}",
        String::from_utf8_lossy(wanted)
    );
}

#[test]
fn times_colours_and_actions_on_the_screen() {
    netns::isolated(|| {
        let group = Ipv4Addr::new(239, 77, 5, 1);
        let server = server_with_lobby("239.77.5.1", 47501);
        let (plain, _) = plain_member(group, 47501);
        let alice = terminal_in_lobby(&server, "Alice", "", "--color always");
        let mut bob = ClientProcess::start("bob", server.port, &["--name", "Bob"]);
        bob.run("chat lobby", "Entering chat room lobby");

        // A message shows the time it arrived and the sender in colour.
        bob.send("hello alice");
        let screen = alice.wait_screen("Bob's message", |s| {
            s.iter().any(|l| l.ends_with("Bob: hello alice"))
        });
        let line = screen
            .iter()
            .find(|l| l.ends_with("Bob: hello alice"))
            .unwrap();
        assert!(starts_with_time(line), "no time: {line:?}");
        assert_eq!(line.len(), "HH:MM Bob: hello alice".len(), "{line:?}");
        let coded = coded_line(&alice, "hello alice");
        // Bob's name, and only it, is in a colour of the palette.
        let name_at = coded.find("Bob").unwrap();
        let before = &coded[..name_at];
        assert!(
            [31, 32, 33, 34, 35, 36, 91, 92, 93, 94, 95, 96]
                .iter()
                .any(|c| before.ends_with(&format!("\x1b[{c}m"))),
            "Bob's name is not coloured: {coded:?}"
        );

        // /me: plain clients get the ordinary datagram; roomcast shows an
        // action, on a pipe as in a terminal.
        alice.type_text("/me waves");
        alice.press("Enter");
        receive(&plain, b"Alice: /me waves");
        assert_eq!(bob.expect("waves"), "* Alice waves");
        bob.send("/me waves back");
        let screen = alice.wait_screen("Bob's action", |s| {
            s.iter().any(|l| l.ends_with("* Bob waves back"))
        });
        let line = screen
            .iter()
            .find(|l| l.ends_with("* Bob waves back"))
            .unwrap();
        assert!(starts_with_time(line), "{line:?}");
        receive(&plain, b"Bob: /me waves back");

        // One's own lines follow a bold prompt; roomcast's notices in the
        // room are dim.
        let own = coded_line(&alice, "/me waves");
        assert!(own.starts_with("\x1b[1m[lobby] Alice> "), "{own:?}");
        let notice = coded_line(&alice, "Entering chat room lobby");
        assert!(notice.starts_with("\x1b[2"), "{notice:?}");

        // /help lists /me.
        alice.type_text("/help");
        alice.press("Enter");
        alice.wait_screen("the help", |s| {
            s.iter()
                .any(|l| l.contains("/me TEXT") && l.contains("* Alice TEXT"))
        });

        // The piped client shows neither time nor colour by default.
        assert!(
            bob.raw_stdout().iter().all(|&b| b != 0x1b),
            "escape codes on a pipe: {:?}",
            bob.stdout.all()
        );
    });
}

#[test]
fn no_colour_with_no_color_or_never_and_the_time_can_go() {
    netns::isolated(|| {
        let server = server_with_lobby("239.77.5.2", 47502);
        let no_color = terminal_in_lobby(&server, "Nina", "NO_COLOR=1", "");
        let never = terminal_in_lobby(&server, "Nev", "", "--color never --time-format none");
        // An empty NO_COLOR is no request: colours stay on.
        let empty = terminal_in_lobby(&server, "Emma", "NO_COLOR=", "--time-format %H:%M:%S");
        let mut bob = ClientProcess::start("bob", server.port, &["--name", "Bob"]);
        bob.run("chat lobby", "Entering chat room lobby");
        bob.send("plain please");

        for tmux in [&no_color, &never, &empty] {
            tmux.wait_screen("Bob's message", |s| {
                s.iter().any(|l| l.ends_with("Bob: plain please"))
            });
        }
        for tmux in [&no_color, &never] {
            for needle in ["plain please", "Entering chat room", "] N"] {
                let coded = coded_line(tmux, needle);
                assert!(!coded.contains('\x1b'), "colour: {coded:?}");
            }
        }
        assert!(coded_line(&empty, "plain please").contains("\x1b["));

        // The time: HH:MM by default, none with --time-format none, and as
        // the format says.
        let line = |tmux: &Tmux| {
            tmux.screen()
                .into_iter()
                .find(|l| l.ends_with("Bob: plain please"))
                .unwrap()
        };
        assert!(starts_with_time(&line(&no_color)), "{:?}", line(&no_color));
        assert_eq!(line(&never), "Bob: plain please");
        let with_seconds = line(&empty);
        assert_eq!(with_seconds.len(), "HH:MM:SS Bob: plain please".len());
        assert_eq!(with_seconds.as_bytes()[5], b':', "{with_seconds:?}");
    });
}

/// The files under `dir`, recursively (none if it is missing).
fn files_under(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for entry in entries {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(files_under(&path));
        } else {
            out.push(path);
        }
    }
    out
}

#[test]
fn the_chat_log_is_written_neutralised_and_private() {
    netns::isolated(|| {
        let group = Ipv4Addr::new(239, 77, 5, 3);
        let server = server_with_lobby("239.77.5.3", 47503);
        let (_, hostile) = plain_member(group, 47503);
        let dir = tempfile::tempdir().unwrap();
        let logs = dir.path().join("logs");
        let logs_arg = logs.to_str().unwrap();
        let mut alice = ClientProcess::start(
            "alice",
            server.port,
            &["--name", "Alice", "--log-dir", logs_arg],
        );
        alice.run("chat lobby", "Entering chat room lobby");
        alice.send("hi all");
        // One's own messages are logged too (once sent).
        eventually("Alice's own line in the log", || {
            files_under(&logs)
                .iter()
                .any(|f| std::fs::read_to_string(f).is_ok_and(|t| t.contains("<Alice> hi all")))
        });
        hostile
            .send_to(
                b"Mal\x1b[31m: \x1b]0;owned\x07\x1b[2J\r\ngone \xe2\x80\xaeevil\xff",
                (group, 47503),
            )
            .unwrap();
        hostile.send_to(b"Mal: /me grins", (group, 47503)).unwrap();
        alice.expect("grins");

        let files = files_under(&logs);
        assert_eq!(files.len(), 1, "{files:?}");
        let file = &files[0];
        let room = file.parent().unwrap();
        assert_eq!(room, logs.join("lobby"));
        let day = file.file_name().unwrap().to_str().unwrap();
        let b = day.as_bytes();
        assert!(
            day.len() == "YYYY-MM-DD.log".len()
                && b[4] == b'-'
                && b[7] == b'-'
                && day.ends_with(".log"),
            "{day}"
        );
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(file), 0o600);
        assert_eq!(mode(room), 0o700);
        assert_eq!(mode(&logs), 0o700);

        let bytes = std::fs::read(file).unwrap();
        let text = String::from_utf8(bytes.clone()).expect("the log is UTF-8");
        assert!(
            bytes
                .iter()
                .all(|&b| b == b'\n' || (b >= 0x20 && b != 0x7f)),
            "a raw control character in the log: {text:?}"
        );
        assert!(!text.contains('\u{202E}'), "{text:?}");
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3, "{text}");
        let rest = |l: &str| l.split_once(' ').unwrap().1.to_string();
        assert_eq!(rest(lines[0]), "<Alice> hi all");
        assert_eq!(
            rest(lines[1]),
            "<Mal^[[31m> ^[]0;owned^G^[[2J^M^Jgone <U+202E>evil\u{FFFD}"
        );
        assert_eq!(rest(lines[2]), "* Mal grins");
        let time = lines[0].split(' ').next().unwrap();
        assert!(time.len() == 8 && time.as_bytes()[2] == b':', "{time}");
    });
}

#[test]
fn the_config_file_is_honoured_and_options_override_it() {
    netns::isolated(|| {
        let server = server_with_lobby("239.77.5.4", 47504);
        let home = tempfile::tempdir().unwrap();
        let config_dir = home.path().join("roomcast");
        std::fs::create_dir(&config_dir).unwrap();
        std::fs::write(
            config_dir.join("client.toml"),
            format!(
                "# settings\nserver = \"127.0.0.1:{}\"\nname = \"Cfg\"\niface = \"127.0.0.1\"\n\
                 time-format = \"[%H]\"\ncolor = \"never\"\n",
                server.port
            ),
        )
        .unwrap();
        let xdg = format!("XDG_CONFIG_HOME={}", home.path().display());
        let wrapper = ["env", xdg.as_str()];

        // Honoured: the name, the server, and the time format (given, so
        // shown on a pipe too).
        let mut cfg = ClientProcess::start_with("cfg", &wrapper, &[]);
        let greeting = cfg.stdout.all().join("\n");
        assert!(greeting.contains("your chat name is Cfg."), "{greeting}");
        let next = cfg.expect("directory server at");
        assert!(
            next.contains(&format!("directory server at 127.0.0.1:{}", server.port)),
            "{next}"
        );
        cfg.run("chat lobby", "Entering chat room lobby");

        // Overridden by options.
        let mut opt =
            ClientProcess::start_with("opt", &wrapper, &["--name", "Opt", "--time-format", "none"]);
        let greeting = opt.stdout.all().join("\n");
        assert!(greeting.contains("your chat name is Opt."), "{greeting}");
        opt.run("chat lobby", "Entering chat room lobby");
        opt.send("from opt");
        let line = cfg.expect("from opt");
        assert!(
            line.starts_with('[') && line.ends_with("] Opt: from opt") && line.len() == 18,
            "{line:?}"
        );
        cfg.send("from cfg");
        assert_eq!(opt.expect("from cfg"), "Cfg: from cfg");

        // A bad file: a clear error naming the file and the line.
        let bad = home.path().join("bad.toml");
        std::fs::write(&bad, "name = \"Ann\"\ncolour = \"never\"\n").unwrap();
        let out = Command::new(roomcast_bin())
            .args(["client", "--config"])
            .arg(&bad)
            .output()
            .unwrap();
        assert!(!out.status.success());
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains(&format!(
                "config file {}: line 2: unknown field `colour`",
                bad.display()
            )),
            "{stderr}"
        );

        // A bad value too, before anything else is done.
        std::fs::write(&bad, "time-format = \"%H:%\"\n").unwrap();
        let out = Command::new(roomcast_bin())
            .args(["client", "--config"])
            .arg(&bad)
            .output()
            .unwrap();
        assert!(!out.status.success());
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains(&format!(
                "config file {}: time-format = \"%H:%\": ",
                bad.display()
            )),
            "{stderr}"
        );
        assert!(out.stdout.is_empty(), "{out:?}");

        // --help says where the file is looked for.
        let out = Command::new(roomcast_bin())
            .args(["client", "--help"])
            .env("XDG_CONFIG_HOME", home.path())
            .output()
            .unwrap();
        let help = String::from_utf8_lossy(&out.stdout);
        assert!(
            help.contains("$XDG_CONFIG_HOME/roomcast/client.toml"),
            "{help}"
        );
        assert!(
            help.contains(&format!("{}/roomcast/client.toml", home.path().display())),
            "{help}"
        );
    });
}

#[test]
fn getdir_aligns_wide_and_combining_names_by_display_width() {
    // Only TCP to the server on loopback (no multicast): no namespace.
    let server = ServerProcess::start(&[]);
    // Display widths 6, 2, 3 and 5 columns; 3, 1, 4 and 5 characters (and
    // 9, 4, 5, 5 bytes), so a table aligned by characters or bytes puts
    // the address at different columns on different rows.
    let rooms = [
        ("会議室", "239.77.6.1", "47601"),
        ("😀", "239.77.16.2", "47602"),
        ("ab\u{316}c", "239.77.6.3", "47603"),
        ("lobby", "239.77.106.4", "47604"),
    ];
    let mut crdp = server.connect();
    for (name, group, port) in rooms {
        let reply = crdp.ask(&format!("makeroom {name} {group} {port}"));
        assert!(reply.starts_with("OK"), "{name}: {reply}");
    }
    drop(crdp);

    let command = format!(
        "{} client --server 127.0.0.1:{} --iface 127.0.0.1 --name Alice",
        roomcast_bin().display(),
        server.port
    );
    let tmux = Tmux::start(&command);
    tmux.wait_last_line("roomcast>");
    tmux.type_text("connect");
    tmux.press("Enter");
    tmux.wait_last_line(&format!("roomcast [127.0.0.1:{}]>", server.port));
    tmux.type_text("getdir");
    tmux.press("Enter");
    let screen = tmux.wait_screen("the table", |s| s.iter().any(|l| l == "(4 rooms)"));

    let header_at = screen
        .iter()
        .position(|l| l.starts_with("ROOM "))
        .unwrap_or_else(|| panic!("no header:\n{}", screen.join("\n")));
    let end_at = screen.iter().position(|l| l == "(4 rooms)").unwrap();
    let header = &screen[header_at];
    let rows = &screen[header_at + 1..end_at];
    assert_eq!(rows.len(), rooms.len(), "{}", screen.join("\n"));

    // The column (counted from 0, in terminal cells) where `needle` starts
    // on `line`: the display width of what comes before it. tmux draws a
    // wide character in two cells and a combining mark in none, as
    // unicode-width measures them.
    let column = |line: &str, needle: &str| {
        let at = line
            .find(needle)
            .unwrap_or_else(|| panic!("no {needle:?} on {line:?}"));
        line[..at].width()
    };
    // The widest name, 会議室, takes 6 columns; two spaces follow it.
    let address_column = 6 + 2;
    assert_eq!(column(header, "ADDRESS"), address_column, "{header:?}");
    let port_column = column(header, "PORT");
    assert_eq!(
        port_column,
        address_column + "239.77.106.4".len() + 2,
        "{header:?}"
    );

    // Each room made is on exactly one row, as made, its address and port
    // at the header's columns.
    for (name, group, port) in rooms {
        let row: Vec<&String> = rows
            .iter()
            .filter(|l| l.split_whitespace().next() == Some(name))
            .collect();
        assert_eq!(row.len(), 1, "rows for {name:?}: {rows:#?}");
        let row = row[0];
        assert_eq!(
            row.split_whitespace().collect::<Vec<_>>(),
            [name, group, port, "open"],
            "{row:?}"
        );
        assert_eq!(
            column(row, &format!("  {group}  ")) + 2,
            address_column,
            "{name:?}: the address is not under ADDRESS:\n{header}\n{row}"
        );
        assert_eq!(
            column(row, &format!("  {port}")) + 2,
            port_column,
            "{name:?}: the port is not under PORT:\n{header}\n{row}"
        );
    }
}
