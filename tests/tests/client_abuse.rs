//! The client under abuse, with the real binary: a flood of datagrams,
//! hostile datagrams (oversized, binary, escape sequences), and a directory
//! server that closes mid-reply or sends garbage. The client must stay
//! responsive, keep its memory bounded, show nothing a terminal would obey,
//! and stay usable.
//!
//! Floods run in a private network namespace of the test's own
//! (`netns::isolated`: multicast on loopback, TTL 1, sent from 127.0.0.1);
//! they are bounded in count and time.

mod client_common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, SocketAddrV4, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use client_common::ClientProcess;
use client_common::tmux::Tmux;
use roomcast_tests::loopback::{Capture, sender};
use roomcast_tests::{ServerProcess, netns, roomcast_bin};

/// Datagrams a second in a flood of 1 kB messages: more than a debug build
/// of the client can show on a pipe, so it must choose between showing them
/// and serving its user.
const FLOOD_RATE: u32 = 20_000;

/// Datagrams a second in a flood of short messages to a terminal: more than
/// a terminal can show one by one.
const TERMINAL_FLOOD_RATE: u32 = 100_000;

/// A 0x1D byte on a line of its own: what Ctrl-] types in a cooked terminal.
const LEAVE: &[u8] = b"\x1d\n";

/// Datagrams from anyone but the flood's sender.
fn not_mallory(datagram: &[u8]) -> bool {
    !datagram.starts_with(b"Mallory: ")
}

/// Sends `payload(i)` to `group`:`port` from a thread, `rate` datagrams a
/// second, for `duration` (and at most `rate * duration` datagrams).
/// Returns how many it sent. `stop` ends it early.
fn flood(
    group: Ipv4Addr,
    port: u16,
    rate: u32,
    duration: Duration,
    stop: Arc<AtomicBool>,
    payload: impl Fn(u64) -> Vec<u8> + Send + 'static,
) -> JoinHandle<u64> {
    thread::spawn(move || {
        let socket = sender();
        let dest = SocketAddrV4::new(group, port);
        let total = (f64::from(rate) * duration.as_secs_f64()) as u64;
        let start = Instant::now();
        let mut sent = 0;
        // Sends in bursts of a millisecond's worth, then catches up.
        while sent < total && !stop.load(Ordering::SeqCst) && start.elapsed() < duration {
            let due = ((start.elapsed().as_secs_f64() * f64::from(rate)) as u64).min(total);
            while sent < due {
                let _ = socket.send_to(&payload(sent), dest);
                sent += 1;
            }
            thread::sleep(Duration::from_millis(1));
        }
        sent
    })
}

/// The resident memory of process `pid`, in KiB.
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS in /proc/PID/status")
}

/// A server with one room.
fn server_with_room(room: &str, group: Ipv4Addr, port: u16) -> ServerProcess {
    let server = ServerProcess::start(&[]);
    let mut crdp = server.connect();
    let reply = crdp.ask(&format!("makeroom {room} {group} {port}"));
    assert!(reply.starts_with("OK"), "{reply}");
    server
}

#[test]
fn a_flood_keeps_the_piped_client_responsive_and_bounded() {
    netns::isolated(|| {
        let (group, port) = (Ipv4Addr::new(239, 77, 9, 1), 47901);
        let server = server_with_room("flood", group, port);
        let mut ann = ClientProcess::start("ann", server.port, &["--name", "Ann"]);
        ann.run("chat flood", "Entering chat room flood");
        let room = Capture::start(group, port, not_mallory);
        let before = rss_kib(ann.pid());

        let stop = Arc::new(AtomicBool::new(false));
        let flooder = flood(
            group,
            port,
            FLOOD_RATE,
            Duration::from_secs(3),
            stop.clone(),
            |i| format!("Mallory: flood {i} {}", "x".repeat(1000)).into_bytes(),
        );
        ann.expect("Mallory: flood");
        thread::sleep(Duration::from_millis(500));

        // While the flood goes on, what Ann types is acted on at once.
        let started = Instant::now();
        ann.send("still here");
        assert!(
            room.receive(b"Ann: still here", Duration::from_secs(2)),
            "Ann's message was not sent within 2 s of typing it during the flood"
        );
        eprintln!("chat line sent after {:?}", started.elapsed());
        let started = Instant::now();
        ann.send("/help");
        ann.expect("You are in chat room flood as Ann");
        eprintln!("help after {:?}", started.elapsed());
        let during = rss_kib(ann.pid());
        let started = Instant::now();
        ann.send_bytes(LEAVE);
        ann.expect("You left chat room flood");
        eprintln!("left after {:?}", started.elapsed());
        assert!(!flooder.is_finished(), "the flood ended too soon to tell");
        let started = Instant::now();
        ann.run("name", "Your chat name is Ann.");
        assert!(started.elapsed() < Duration::from_secs(2));
        stop.store(true, Ordering::SeqCst);
        let sent = flooder.join().unwrap();
        let shown = ann.stdout.count("Mallory: flood");
        eprintln!("sent {sent}, shown {shown}, rss {before} KiB -> {during} KiB");
        assert!(
            during < before + 8 * 1024,
            "memory grew from {before} KiB to {during} KiB during the flood"
        );
        ann.send("quit");
        assert_eq!(ann.wait_exit(), Some(0));
    });
}

/// Stops a process (SIGSTOP) and lets it go on (SIGCONT) when dropped.
struct Stopped(u32);

impl Stopped {
    fn stop(pid: u32) -> Stopped {
        signal(pid, "STOP");
        Stopped(pid)
    }
}

impl Drop for Stopped {
    fn drop(&mut self) {
        signal(self.0, "CONT");
    }
}

fn signal(pid: u32, name: &str) {
    let status = std::process::Command::new("kill")
        .args([&format!("-{name}"), &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success(), "kill -{name} {pid}");
}

/// The client in tmux, in room `room`; its PID.
fn terminal_client(server: &ServerProcess, room: &str) -> (Tmux, u32) {
    let command = format!(
        "exec {} client --server 127.0.0.1:{} --iface 127.0.0.1 --name Alice --time-format none",
        roomcast_bin().display(),
        server.port
    );
    let tmux = Tmux::start(&command);
    tmux.wait_last_line("roomcast>");
    tmux.type_text(&format!("chat {room}"));
    tmux.press("Enter");
    tmux.wait_last_line(&format!("[{room}] Alice>"));
    let pid = tmux.format("#{pane_pid}").parse().unwrap();
    (tmux, pid)
}

#[test]
fn a_flood_keeps_the_terminal_responsive() {
    netns::isolated(|| {
        let (group, port) = (Ipv4Addr::new(239, 77, 9, 2), 47902);
        let server = server_with_room("storm", group, port);
        let (tmux, pid) = terminal_client(&server, "storm");
        let room = Capture::start(group, port, not_mallory);
        let before = rss_kib(pid);

        // Escape sequences from the room are shown, not obeyed: the screen is
        // not cleared, the pane's title stays.
        let title = tmux.format("#{pane_title}");
        sender()
            .send_to(
                b"Eve: \x1b]2;pwned\x07\x1b[2J\x1b[31mboo\x9b",
                SocketAddrV4::new(group, port),
            )
            .unwrap();
        let screen = tmux.wait_screen("Eve's message", |s| {
            s.iter()
                .any(|l| l == "Eve: ^[]2;pwned^G^[[2J^[[31mboo\u{FFFD}")
        });
        assert!(
            screen
                .iter()
                .any(|l| l.starts_with("Entering chat room storm")),
            "{screen:#?}"
        );
        assert_eq!(tmux.format("#{pane_title}"), title);

        let stop = Arc::new(AtomicBool::new(false));
        let flooder = flood(
            group,
            port,
            TERMINAL_FLOOD_RATE,
            Duration::from_secs(4),
            stop.clone(),
            |i| format!("Mallory: storm {i}").into_bytes(),
        );
        tmux.wait_screen("the flood", |s| {
            s.iter().any(|l| l.contains("Mallory: storm"))
        });
        thread::sleep(Duration::from_millis(500));

        // Keys typed during the flood are handled at once.
        let started = Instant::now();
        tmux.type_text("typed in the storm");
        tmux.press("Enter");
        assert!(
            room.receive(b"Alice: typed in the storm", Duration::from_secs(2)),
            "Alice's message was not sent within 2 s of typing it during the flood; the screen:\n{}",
            tmux.screen().join("\n")
        );
        eprintln!("chat line sent after {:?}", started.elapsed());
        let during = rss_kib(pid);
        let started = Instant::now();
        tmux.press("C-]");
        tmux.wait_last_line("roomcast>");
        eprintln!("left after {:?}", started.elapsed());
        assert!(started.elapsed() < Duration::from_secs(3));
        assert!(!flooder.is_finished(), "the flood ended too soon to tell");
        tmux.type_text("name");
        tmux.press("Enter");
        tmux.wait_screen("the name", |s| {
            s.iter()
                .any(|l| l == "Your chat name is Alice. Change it with: name <chat name>")
        });
        stop.store(true, Ordering::SeqCst);
        let sent = flooder.join().unwrap();
        eprintln!("sent {sent}, rss {before} KiB -> {during} KiB");
        assert!(
            during < before + 8 * 1024,
            "memory grew from {before} KiB to {during} KiB during the flood"
        );
        tmux.press("C-d");
        tmux.wait_gone();
    });
}

#[test]
fn a_terminal_that_is_not_read_costs_bounded_memory() {
    netns::isolated(|| {
        let (group, port) = (Ipv4Addr::new(239, 77, 9, 3), 47903);
        let server = server_with_room("jam", group, port);
        let (tmux, pid) = terminal_client(&server, "jam");
        let room = Capture::start(group, port, not_mallory);
        let before = rss_kib(pid);

        // The terminal stops reading (tmux is stopped): the client's writes to
        // it block, and 10 MB of chat arrives meanwhile.
        let tmux_pid: u32 = tmux.format("#{pid}").parse().unwrap();
        let stopped = Stopped::stop(tmux_pid);
        let sent = flood(
            group,
            port,
            5000,
            Duration::from_secs(2),
            Arc::new(AtomicBool::new(false)),
            |i| format!("Mallory: jam {i} {}", "x".repeat(1000)).into_bytes(),
        )
        .join()
        .unwrap();
        thread::sleep(Duration::from_millis(200));
        let during = rss_kib(pid);
        drop(stopped);
        eprintln!("sent {sent}, rss {before} KiB -> {during} KiB");
        assert!(
            during < before + 4 * 1024,
            "memory grew from {before} KiB to {during} KiB while the terminal was not read"
        );

        // Once the terminal reads again, the user learns what was lost, and the
        // client works. (Datagrams still in the socket's buffer may follow the
        // notice and scroll it off the screen on a loaded machine: look in the
        // history too.)
        tmux.wait_history("the count of dropped messages", |s| {
            s.iter()
                .any(|l| l.contains("messages dropped: they came faster than the terminal"))
        });
        tmux.type_text("back");
        tmux.press("Enter");
        assert!(room.receive(b"Alice: back", Duration::from_secs(2)));
        tmux.press("C-]");
        tmux.wait_last_line("roomcast>");
        tmux.press("C-d");
        tmux.wait_gone();
    });
}

/// Datagrams a hostile peer might send, and what the client must show for
/// each (the start of the line).
fn hostile_datagrams() -> Vec<(Vec<u8>, &'static str)> {
    let mut binary: Vec<u8> = b"Eve: ".to_vec();
    binary.extend(0..=255u8);
    let mut oversized = b"Eve: ".to_vec();
    oversized.resize(9000, b'A');
    vec![
        (
            b"Eve: \x1b[2J\x1b[Hcleared".to_vec(),
            "Eve: ^[[2J^[[Hcleared",
        ),
        (
            b"Eve: \x1b]0;pwned\x07title".to_vec(),
            "Eve: ^[]0;pwned^Gtitle",
        ),
        (
            "Eve: \u{85}next\u{9b}31mred".into(),
            "Eve: <U+0085>next<U+009B>31mred",
        ),
        (
            b"Eve: raw c1 \x9b31m \x84!".to_vec(),
            "Eve: raw c1 \u{FFFD}31m \u{FFFD}!",
        ),
        (
            "Eve: \u{202E}evil\u{202C} bidi \u{200B}".into(),
            "Eve: <U+202E>evil<U+202C> bidi <U+200B>",
        ),
        (
            b"Eve: nul\x00byte\xff\xfe end".to_vec(),
            "Eve: nul^@byte\u{FFFD}\u{FFFD} end",
        ),
        (b"Eve: two\nlines\r\n".to_vec(), "Eve: two^Jlines^M^J"),
        (binary, "Eve: ^@^A^B^C^D^E^F^G^H ^J^K^L^M^N^O"),
        (oversized, "Eve: AAAAAAAAAA"),
    ]
}

/// Checks that `out` holds nothing a terminal would act on: valid UTF-8
/// with no control characters but LF, and no invisible formatting ones.
fn assert_terminal_safe(out: &[u8]) {
    let text = std::str::from_utf8(out).expect("the client's output is UTF-8");
    for (i, c) in text.char_indices() {
        let bad = (c.is_control() && c != '\n')
            || matches!(c, '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}'
                | '\u{2060}'..='\u{2069}' | '\u{FEFF}');
        assert!(
            !bad,
            "the client printed {c:?} at byte {i}: {:?}",
            &text[i.saturating_sub(40)..(i + 40).min(text.len())]
        );
    }
}

#[test]
fn hostile_datagrams_are_shown_safely() {
    netns::isolated(|| {
        let (group, port) = (Ipv4Addr::new(239, 77, 9, 4), 47904);
        let server = server_with_room("den", group, port);
        let mut ann = ClientProcess::start("ann", server.port, &["--name", "Ann"]);
        ann.run("chat den", "Entering chat room den");
        let socket = sender();
        let dest = SocketAddrV4::new(group, port);
        for (datagram, shown) in hostile_datagrams() {
            socket.send_to(&datagram, dest).unwrap();
            let line = ann.expect(shown);
            assert!(line.starts_with(shown), "{line:?}");
            if datagram.len() > 1200 {
                // Cut at the largest datagram, and said so.
                assert!(line.ends_with(" [cut: too long]"), "{line:?}");
                assert_eq!(line.len(), 1200 + " [cut: too long]".len());
            }
        }
        // An empty datagram is an empty line; then the client goes on.
        socket.send_to(b"", dest).unwrap();
        socket.send_to(b"Eve: still talking", dest).unwrap();
        ann.expect("Eve: still talking");
        ann.send_bytes(LEAVE);
        ann.expect("You left chat room den");
        ann.run("name", "Your chat name is Ann.");
        ann.send("quit");
        assert_eq!(ann.wait_exit(), Some(0));
        assert_terminal_safe(&ann.raw_stdout());
    });
}

// ---------------------------------------------------------------------------
// A directory server that misbehaves

/// What a fake server does with one connection.
type Script = Box<dyn FnOnce(&mut TcpStream) + Send>;

/// A fake directory server on 127.0.0.1 that serves one connection per
/// script, in order, then stops.
fn fake_server(scripts: Vec<Script>) -> (u16, JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let handle = thread::spawn(move || {
        for script in scripts {
            let (mut stream, _) = listener.accept().unwrap();
            stream
                .set_read_timeout(Some(Duration::from_secs(10)))
                .unwrap();
            script(&mut stream);
        }
    });
    (port, handle)
}

const GREETING: &[u8] = b"OK CRDP/1 fake directory server ready\n";

/// Reads one line the client sent.
fn read_line(stream: &mut TcpStream) -> String {
    let mut line = String::new();
    BufReader::new(stream).read_line(&mut line).unwrap();
    line
}

/// Waits (up to 5 s) for the client to close the connection.
fn wait_for_close(stream: &mut TcpStream) {
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut buf = [0; 1024];
    while Instant::now() < deadline {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
    }
}

/// A script: greet, read the client's command, send `reply`, close.
fn answer_and_close(reply: &'static [u8]) -> Script {
    Box::new(move |stream| {
        stream.write_all(GREETING).unwrap();
        read_line(stream);
        let _ = stream.write_all(reply);
    })
}

/// A script: greet, read the client's command, send `reply`, then wait
/// for the client to close the connection.
fn answer_and_wait(reply: Vec<u8>) -> Script {
    Box::new(move |stream| {
        stream.write_all(GREETING).unwrap();
        read_line(stream);
        let _ = stream.write_all(&reply);
        wait_for_close(stream);
    })
}

/// A script: send `greeting`, then wait for the client to close.
fn greet_with(greeting: &'static [u8]) -> Script {
    Box::new(move |stream| {
        let _ = stream.write_all(greeting);
        wait_for_close(stream);
    })
}

#[test]
fn a_server_closing_mid_reply_or_sending_garbage() {
    let mut overlong = b"OK 1 room\n".to_vec();
    overlong.resize(100_000, b'x');
    // What the user types, what the server does, what the user is told.
    let cases: Vec<(&[&str], Script, &str)> = vec![
        (
            &["connect", "getdir"],
            answer_and_close(b"OK 3 rooms\nlobby 239.1.1.1 5000 open\n"),
            "closed the connection. The room list did not arrive in full.",
        ),
        (
            &["connect", "getdir"],
            // A server older than `getdir full`: the client asks again with
            // `getdir`, whose listing is cut short.
            Box::new(|stream| {
                stream.write_all(GREETING).unwrap();
                assert_eq!(read_line(stream), "getdir full\n");
                let _ = stream.write_all(b"ERR usage usage: getdir\n");
                assert_eq!(read_line(stream), "getdir\n");
                let _ = stream.write_all(b"OK 2 rooms\nlobby 239.1.1.1 5000\n");
            }),
            "closed the connection. The room list did not arrive in full.",
        ),
        (
            &["connect", "makeroom a 239.1.1.2 5000"],
            answer_and_close(b"OK crea"),
            "closed the connection. Room a may or may not have been created; \
             'getdir' tells once you reconnect.",
        ),
        (
            &["connect", "getdir"],
            answer_and_wait(b"\x00\xff\x1b[2J\x07\x9b garbage\n".to_vec()),
            "sent a line that is not a reply ('^@\u{FFFD}^[[2J^G\u{FFFD} garbage'); \
             the connection was closed.",
        ),
        (
            &["connect", "getdir"],
            answer_and_wait(overlong),
            "sent a line longer than the protocol allows ('xxxxxxxxxx",
        ),
        (
            &["connect", "deleteroom a"],
            answer_and_wait(b"HTTP/1.1 400 Bad Request\r\n".to_vec()),
            "sent a line that is not a reply ('HTTP/1.1 400 Bad Request'); the connection \
             was closed. Room a may or may not have been deleted",
        ),
        (
            &["connect", "getdir"],
            answer_and_wait(
                b"OK 2 rooms\nlobby 239.1.1.1 5000 open\nattic 1.2.3 5000 open\n.\n".to_vec(),
            ),
            "sent a directory line that is not a room ('attic 1.2.3 5000 open')",
        ),
        (
            &["connect"],
            greet_with(b"SSH-2.0-OpenSSH_9.6\r\n"),
            "sent a line that is not a reply ('SSH-2.0-OpenSSH_9.6'); the connection was \
             closed. Is it a roomcast directory server?",
        ),
        (
            &["connect"],
            greet_with(b"OK hello\n"),
            "sent a greeting that is not CRDP/1 ('OK hello'); the connection was closed. \
             Is it a roomcast directory server?",
        ),
        (
            &["connect"],
            Box::new(|_| {}), // accepts, and closes at once
            "closed the connection. Is it a roomcast directory server?",
        ),
        (
            &["chat lobby"],
            // A server older than `getroom`: the client asks with `getdir`,
            // whose listing is cut short.
            Box::new(|stream| {
                stream.write_all(GREETING).unwrap();
                read_line(stream);
                let _ = stream.write_all(b"ERR unknown unknown command\n");
                read_line(stream);
                let _ = stream.write_all(b"OK 1 room\nlobby 239.1.1.1 5000\n");
            }),
            "closed the connection before room lobby was found",
        ),
    ];
    let mut typed = Vec::new();
    let mut scripts = Vec::new();
    let mut told = Vec::new();
    for (lines, script, expected) in cases {
        typed.push(lines);
        scripts.push(script);
        told.push(expected);
    }
    let (port, fake) = fake_server(scripts);
    let mut ann = ClientProcess::start("ann", port, &["--name", "Ann"]);
    for (i, (lines, expected)) in typed.iter().zip(&told).enumerate() {
        for line in *lines {
            ann.send(line);
        }
        let said = ann.expect(expected);
        assert!(
            said.starts_with(&format!("The directory server at 127.0.0.1:{port} ")),
            "{said}"
        );
        // Back at the main prompt, with a client that works.
        ann.run(
            &format!("name Ann{i}"),
            &format!("Your chat name is now Ann{i}."),
        );
        ann.run("getdir", "type 'connect' first");
    }
    fake.join().unwrap();
    // A real server works after all that.
    let server = ServerProcess::start(&[]);
    ann.run(
        &format!("connect 127.0.0.1:{}", server.port),
        "Connected to the directory server",
    );
    ann.run("makeroom lobby 239.77.9.5 47905", "Room lobby created");
    ann.run("getdir", "(1 room)");
    ann.send("quit");
    assert_eq!(ann.wait_exit(), Some(0));
    assert_terminal_safe(&ann.raw_stdout());
}
