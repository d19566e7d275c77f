//! The server under abuse and crashes: timeouts, peers that never read,
//! running out of descriptors, and a directory that survives SIGKILL.

use std::collections::BTreeMap;
use std::fs;
use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use roomcast_tests::{Crdp, LOCAL_SERVER, ServerProcess, WAIT, roomcast_command, without_token};
use socket2::{Domain, Socket, Type};

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("roomcast-e2e-{}-{name}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    dir
}

/// Reads `/proc/PID/status` field `VmRSS` in KiB.
fn rss_kib(pid: u32) -> u64 {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS")
}

/// CPU time (user + system) the process has used, in clock ticks.
fn cpu_ticks(pid: u32) -> u64 {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // Fields after the command name, which is in parentheses.
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let fields: Vec<&str> = rest.split(' ').collect();
    fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()
}

/// The per-client quotas lifted, for the tests that load the server from
/// one address as fast as it goes (thousands of rooms, pipelined): they are
/// about memory, order and durability, not quotas (tests/tests/owners.rs).
const NO_QUOTAS: &[&str] = &[
    "--commands-per-second",
    "0",
    "--max-rooms-per-client",
    "4096",
];

#[test]
fn half_a_line_is_closed_after_the_partial_line_timeout() {
    let server = ServerProcess::start(&["--partial-line-timeout", "300ms", "--idle-timeout", "5s"]);
    let mut slow = server.connect();
    let mut steady = server.connect();
    let started = Instant::now();
    slow.send_raw(b"makeroom half");
    // Whole lines on another connection are not affected.
    for _ in 0..5 {
        thread::sleep(Duration::from_millis(100));
        assert_eq!(steady.ask("ping"), "OK pong");
    }
    let farewell = slow.read_to_close();
    assert!(farewell.starts_with("ERR timeout "), "{farewell:?}");
    assert!(started.elapsed() >= Duration::from_millis(300));
    server
        .stdout
        .wait_for("sent half a line and stopped: closing");
    assert_eq!(steady.request("getdir"), ["OK 0 rooms", "."]);
}

#[test]
fn idle_connections_are_kept_while_they_ping_and_closed_when_silent() {
    // Generous margins: a loaded CI machine may stall a thread for a while.
    let server = ServerProcess::start(&["--idle-timeout", "1s"]);
    let mut pinger = server.connect();
    let mut silent = server.connect();
    for _ in 0..10 {
        thread::sleep(Duration::from_millis(200));
        assert_eq!(pinger.ask("ping"), "OK pong");
    }
    // 2 s have passed: the silent one was closed, the pinger was not.
    let farewell = silent.read_to_close();
    assert!(farewell.starts_with("ERR timeout "), "{farewell:?}");
    assert_eq!(pinger.ask("ping"), "OK pong");
    server.stdout.wait_for("was idle too long: closing");
}

#[test]
fn a_peer_that_never_reads_is_dropped_and_memory_stays_flat() {
    let server = ServerProcess::start(
        &[&["--send-timeout", "1s", "--log-level", "warn"], NO_QUOTAS].concat(),
    );
    let mut maker = server.connect();
    let mut batch = String::new();
    for i in 0..2000 {
        batch += &format!(
            "makeroom big-room-number-{i:05} 239.5.{}.{} 9000\n",
            i / 256,
            i % 256
        );
    }
    maker.send_raw(batch.as_bytes());
    for _ in 0..2000 {
        assert!(maker.read_line().starts_with("OK created"));
    }
    let before = rss_kib(server.pid());
    // Peers each ask for 500 listings of 2000 rooms (about 40 MB each) and
    // read nothing. (The kernel takes megabytes before the socket is full,
    // so a few hogs suffice.)
    const HOGS: usize = 4;
    let mut hogs: Vec<TcpStream> = (0..HOGS)
        .map(|_| {
            let s = TcpStream::connect(server.addr()).unwrap();
            s.set_write_timeout(Some(Duration::from_millis(200)))
                .unwrap();
            s
        })
        .collect();
    let request = "getdir\n".repeat(500);
    for hog in &mut hogs {
        // The server stops reading when its buffers are full, so this write
        // may stall: that is the point.
        let _ = hog.write_all(request.as_bytes());
    }
    thread::sleep(Duration::from_millis(300));
    let during = rss_kib(server.pid());
    // Others are served meanwhile.
    assert_eq!(maker.ask("ping"), "OK pong");
    // Each hog is dropped after the send timeout.
    let deadline = Instant::now() + Duration::from_secs(30);
    while server.stdout.count("stopped reading its replies") < HOGS {
        assert!(Instant::now() < deadline, "not every hog was dropped");
        thread::sleep(Duration::from_millis(50));
    }
    for hog in &mut hogs {
        hog.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut sink = vec![0u8; 1 << 16];
        // Drain what the kernel buffered; the server's side is gone.
        loop {
            match hog.read(&mut sink) {
                Ok(0) => break,
                Ok(_) => {}
                Err(e) if e.kind() == ErrorKind::ConnectionReset => break,
                Err(e) => panic!("hog read: {e}"),
            }
        }
    }
    // 4 x 40 MB was asked for; the server's memory grew by less than 4 MB.
    assert!(
        during < before + 4 * 1024,
        "RSS grew from {before} KiB to {during} KiB"
    );
    assert_eq!(maker.ask("ping"), "OK pong");
}

#[test]
fn a_low_open_file_limit_lowers_the_connection_cap_and_saves_keep_working() {
    // 40 descriptors, 24 of them kept for the server itself: 16 clients.
    // Before, the server took clients until accept failed, and then every
    // save failed with EMFILE and a makeroom was never answered.
    let dir = temp_dir("nofile");
    let state = dir.join("rooms.state");
    let server = ServerProcess::start_with(
        &["prlimit", "--nofile=40:40", "--"],
        &[
            "--bind",
            "127.0.0.1",
            "--port",
            "0",
            "--no-announce",
            "--log-level",
            "warn",
            "--state",
            state.to_str().unwrap(),
        ],
    );
    server
        .stdout
        .wait_for("serving at most 16 clients at once, not 10000");
    let (addr, pid) = (server.addr(), server.pid());
    let mut first = server.connect();
    assert!(first.greeting.starts_with("OK "), "{}", first.greeting);
    // 60 idle clients: 15 more are served, the others turned away.
    let mut idle: Vec<Crdp> = (0..60).map(|_| Crdp::connect(addr)).collect();
    let busy = idle
        .iter()
        .filter(|c| c.greeting.starts_with("ERR busy "))
        .count();
    assert_eq!(busy, 60 - 15);
    // A change still reaches the disk and is answered.
    assert_eq!(
        without_token(&first.ask("makeroom kept 239.1.1.1 5000")),
        "OK created kept 239.1.1.1 5000"
    );
    assert!(
        fs::read_to_string(&state)
            .unwrap()
            .contains("kept 239.1.1.1 5000")
    );
    let ticks_before = cpu_ticks(pid);
    thread::sleep(Duration::from_secs(1));
    let ticks = cpu_ticks(pid) - ticks_before;
    // A busy loop would burn about 100 ticks a second.
    assert!(ticks < 30, "server used {ticks} ticks in 1 s at its cap");
    // A slot that frees up serves a new client.
    idle.retain(|c| !c.greeting.starts_with("OK "));
    let deadline = Instant::now() + WAIT;
    loop {
        let mut c = Crdp::connect(addr);
        if c.greeting.starts_with("OK ") {
            assert_eq!(c.ask("ping"), "OK pong");
            break;
        }
        assert!(Instant::now() < deadline, "no slot freed up");
        thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn an_open_file_limit_too_low_for_any_client_stops_the_start() {
    let mut child = roomcast_command(&["prlimit", "--nofile=20:20", "--"])
        .args(LOCAL_SERVER)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + WAIT;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the server started with 20 descriptors");
        }
        thread::sleep(Duration::from_millis(50));
    };
    assert!(!status.success());
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    assert!(err.contains("too low to serve anyone"), "{err}");
}

#[test]
fn a_damaged_state_file_stops_the_start_and_is_kept() {
    let dir = temp_dir("damaged");
    let path = dir.join("rooms.state");
    let damaged = b"roomcast-state 1\nlobby 239.1.1.1 5000\n";
    fs::write(&path, damaged).unwrap();
    let out = roomcast_command(&[])
        .args(LOCAL_SERVER)
        .arg("--state")
        .arg(&path)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("is damaged"), "{err}");
    assert!(err.contains("repair or move the file away"), "{err}");
    assert_eq!(fs::read(&path).unwrap(), damaged, "the file is untouched");
}

#[test]
fn rooms_survive_a_restart() {
    let dir = temp_dir("restart");
    let state = dir.join("rooms.state");
    let state = state.to_str().unwrap();
    {
        let server = ServerProcess::start(&["--state", state]);
        let mut c = server.connect();
        assert!(c.ask("makeroom lobby 239.1.1.1 5000").starts_with("OK"));
        assert!(c.ask("makeroom attic 239.1.1.2 5000").starts_with("OK"));
        assert!(c.ask("deleteroom attic").starts_with("OK"));
    }
    let server = ServerProcess::start(&["--state", state]);
    server.stdout.wait_for("loaded 1 rooms");
    assert_eq!(
        server.connect().request("getdir"),
        ["OK 1 room", "lobby 239.1.1.1 5000", "."]
    );
}

/// What a client knows about one of its rooms.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Known {
    /// The server said OK to makeroom, and nothing since.
    Present,
    /// The server said OK to deleteroom (or the room was never made).
    Absent,
    /// A command was sent and no reply came: either outcome is allowed.
    InFlight,
}

#[test]
fn every_acknowledged_change_survives_sigkill() {
    let dir = temp_dir("sigkill");
    let state = dir.join("rooms.state");
    let state_arg = state.to_str().unwrap().to_owned();
    let mut server = ServerProcess::start(
        &[&["--state", &state_arg, "--log-level", "warn"], NO_QUOTAS].concat(),
    );
    let addr = server.addr();
    let knowledge: Arc<Mutex<BTreeMap<String, Known>>> = Arc::default();
    let workers: Vec<_> = (0..8)
        .map(|w| {
            let knowledge = Arc::clone(&knowledge);
            thread::spawn(move || {
                let mut c = Crdp::connect(addr);
                for round in 0.. {
                    let name = format!("w{w}-{}", round % 10);
                    let made =
                        knowledge.lock().unwrap().get(&name).copied() == Some(Known::Present);
                    let command = if made {
                        format!("deleteroom {name}")
                    } else {
                        format!("makeroom {name} 239.6.{w}.{} 7000", round % 10)
                    };
                    knowledge
                        .lock()
                        .unwrap()
                        .insert(name.clone(), Known::InFlight);
                    c.send_raw(format!("{command}\n").as_bytes());
                    let Some(line) = c.try_read_line() else {
                        return; // The server died: this one stays in flight.
                    };
                    assert!(line.starts_with("OK "), "{command} -> {line}");
                    let now = if made { Known::Absent } else { Known::Present };
                    knowledge.lock().unwrap().insert(name, now);
                }
            })
        })
        .collect();
    // Let them work, then pull the plug.
    thread::sleep(Duration::from_millis(700));
    server.signal_and_wait("KILL");
    for w in workers {
        w.join().unwrap();
    }
    let knowledge = knowledge.lock().unwrap().clone();
    assert!(knowledge.len() >= 8, "the workers did some work");

    let server = ServerProcess::start(&["--state", &state_arg]);
    let listing = server.connect().request("getdir");
    let present: Vec<&str> = listing[1..listing.len() - 1]
        .iter()
        .map(|l| l.split(' ').next().unwrap())
        .collect();
    for name in &present {
        let known = knowledge.get(*name);
        assert!(
            matches!(known, Some(Known::Present | Known::InFlight)),
            "{name} is present but was {known:?}"
        );
    }
    for (name, known) in &knowledge {
        if *known == Known::Present {
            assert!(
                present.contains(&name.as_str()),
                "acknowledged {name} was lost"
            );
        }
    }
}

/// A small deterministic generator, so a failure can be replayed.
fn xorshift(seed: &mut u64) -> u64 {
    *seed ^= *seed << 13;
    *seed ^= *seed >> 7;
    *seed ^= *seed << 17;
    *seed
}

#[test]
fn binary_garbage_gets_errors_or_a_close_and_others_are_unaffected() {
    // A megabyte of garbage is thousands of lines, each over the rate quota
    // once the burst is spent: lifted, as this is about robustness.
    let server = ServerProcess::start(&[&["--log-level", "warn"], NO_QUOTAS].concat());
    let mut steady = server.connect();
    assert!(steady.ask("makeroom keep 239.7.7.7 7777").starts_with("OK"));
    for seed in [1u64, 2, 3, 0xdead_beef] {
        let mut state = seed;
        let garbage: Vec<u8> = (0..1 << 20).map(|_| xorshift(&mut state) as u8).collect();
        let mut noisy = TcpStream::connect(server.addr()).unwrap();
        noisy
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let reader = {
            let mut noisy = noisy.try_clone().unwrap();
            thread::spawn(move || {
                let mut all = Vec::new();
                let _ = noisy.read_to_end(&mut all);
                all
            })
        };
        noisy.write_all(&garbage).unwrap();
        noisy.write_all(b"\nbye\n").unwrap();
        let replies = reader.join().unwrap();
        let text = String::from_utf8(replies)
            .unwrap_or_else(|e| panic!("seed {seed}: replies are not UTF-8: {e}"));
        let mut lines = text.lines();
        assert!(lines.next().unwrap().starts_with("OK CRDP/1"));
        for line in lines {
            assert!(
                line.starts_with("ERR ") || line.starts_with("OK") || line == ".",
                "seed {seed}: unexpected line {line:?}"
            );
            assert!(line.len() < roomcast_core::limits::MAX_LINE);
        }
        assert!(
            text.ends_with("OK bye\n"),
            "seed {seed}: the connection still works"
        );
        assert_eq!(steady.ask("ping"), "OK pong");
    }
    let listing = steady.request("getdir");
    assert!(
        listing.contains(&"keep 239.7.7.7 7777".to_owned()),
        "{listing:?}"
    );
}

#[test]
fn pipelined_lines_split_across_writes_are_not_a_partial_line() {
    let server = ServerProcess::start(&["--partial-line-timeout", "1s"]);
    let mut c = server.connect();
    c.send_raw(b"pi");
    // Every write ends a line and starts the next: no line is ever left
    // unfinished for long, though the buffer is never empty for 1.5 s.
    for _ in 0..15 {
        thread::sleep(Duration::from_millis(100));
        c.send_raw(b"ng\npi");
        assert_eq!(c.read_line(), "OK pong");
    }
    c.send_raw(b"ng\n");
    assert_eq!(c.read_line(), "OK pong");
}

#[test]
fn no_ok_until_the_change_is_on_disk() {
    let dir = temp_dir("unsaveable");
    let folder = dir.join("state");
    fs::create_dir_all(&folder).unwrap();
    let state = folder.join("rooms.state");
    let server = ServerProcess::start(&["--state", state.to_str().unwrap()]);
    let mut c = server.connect();
    assert!(c.ask("makeroom first 239.1.1.1 5000").starts_with("OK"));
    // The disk goes away: the change is made in memory but cannot be stored.
    fs::remove_dir_all(&folder).unwrap();
    c.send_raw(b"makeroom second 239.1.1.2 5000\nping\n");
    server.stdout.wait_for("cannot save the directory");
    c.stream()
        .set_read_timeout(Some(Duration::from_millis(1500)))
        .unwrap();
    let mut byte = [0u8; 1];
    let early = c.stream().read(&mut byte);
    assert!(
        matches!(&early, Err(e) if e.kind() == ErrorKind::WouldBlock),
        "a reply came before the change was stored: {early:?}"
    );
    // The disk comes back: the save is retried and the replies follow, in order.
    fs::create_dir_all(&folder).unwrap();
    c.stream()
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    assert_eq!(
        without_token(&c.read_line()),
        "OK created second 239.1.1.2 5000"
    );
    assert_eq!(c.read_line(), "OK pong");
    assert!(
        fs::read_to_string(&state)
            .unwrap()
            .contains("second 239.1.1.2 5000")
    );
}

/// Makes `n` rooms, named `big-room-number-NNNNN`, through one connection.
fn make_rooms(server: &ServerProcess, n: usize) {
    let mut maker = server.connect();
    let mut batch = String::new();
    for i in 0..n {
        batch += &format!(
            "makeroom big-room-number-{i:05} 239.5.{}.{} 9000\n",
            i / 256,
            i % 256
        );
    }
    maker.send_raw(batch.as_bytes());
    for _ in 0..n {
        assert!(maker.read_line().starts_with("OK created"));
    }
}

/// A TCP connection to `server` whose receive buffer is about `rcvbuf`
/// bytes (so the kernel does not absorb what the server sends).
fn small_window(server: &ServerProcess, rcvbuf: usize) -> TcpStream {
    let socket = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
    socket.set_recv_buffer_size(rcvbuf).unwrap();
    socket.connect(&server.addr().into()).unwrap();
    let stream: TcpStream = socket.into();
    stream.set_read_timeout(Some(WAIT)).unwrap();
    stream
}

#[test]
fn a_change_that_cannot_be_stored_is_invisible_then_undone_and_the_server_goes_on() {
    let dir = temp_dir("vanished");
    let folder = dir.join("state");
    fs::create_dir_all(&folder).unwrap();
    let state = folder.join("rooms.state");
    let state_arg = state.to_str().unwrap().to_owned();
    {
        let server = ServerProcess::start(&["--state", &state_arg, "--persist-timeout", "2s"]);
        let mut maker = server.connect();
        let mut other = server.connect();
        assert!(maker.ask("makeroom first 239.1.1.1 5000").starts_with("OK"));
        // The disk goes away.
        fs::remove_dir_all(&folder).unwrap();
        maker.send_raw(b"makeroom second 239.1.1.2 5000\nping\n");
        server.stdout.wait_for("cannot save the directory");
        // Others see only what is stored, and are not told `exists` for a
        // room that is not.
        assert_eq!(
            other.request("getdir"),
            ["OK 1 room", "first 239.1.1.1 5000", "."]
        );
        other.send_raw(b"makeroom second 239.1.1.3 5000\n");
        // Not stored within --persist-timeout: undone and refused.
        let refused = maker.read_line();
        assert!(refused.starts_with("ERR unavailable "), "{refused}");
        assert_eq!(maker.read_line(), "OK pong");
        // The other makeroom was staged after the undo, and fails the same way.
        let refused = other.read_line();
        assert!(refused.starts_with("ERR unavailable "), "{refused}");
        assert!(refused.contains(" stored within 2s,"), "{refused}");
        // The server goes on serving.
        assert_eq!(
            maker.request("getdir"),
            ["OK 1 room", "first 239.1.1.1 5000", "."]
        );
        let undone = "undone, answered ERR unavailable";
        let (first_undo, _) = server.stdout.wait_for_from(0, undone);
        server.stdout.wait_for_from(first_undo + 1, undone);
        // Everything undone: what is staged is what is stored, so the
        // server stops trying to save (it retried every second for ever).
        let failures = server.logged("cannot save the directory");
        thread::sleep(Duration::from_millis(3500));
        assert_eq!(
            server.logged("cannot save the directory"),
            failures,
            "{}",
            server.log()
        );
        // The disk comes back: changes are stored and answered again.
        fs::create_dir_all(&folder).unwrap();
        assert_eq!(
            without_token(&maker.ask("makeroom third 239.1.1.4 5000")),
            "OK created third 239.1.1.4 5000"
        );
    }
    // Nothing unacknowledged came back with a restart.
    let server = ServerProcess::start(&["--state", &state_arg]);
    assert_eq!(
        server.connect().request("getdir"),
        [
            "OK 2 rooms",
            "first 239.1.1.1 5000",
            "third 239.1.1.4 5000",
            "."
        ]
    );
}

#[test]
fn a_reset_connection_is_closed_at_once_while_saves_fail() {
    let dir = temp_dir("reset");
    let folder = dir.join("state");
    fs::create_dir_all(&folder).unwrap();
    let state = folder.join("rooms.state");
    let server = ServerProcess::start(&[
        "--state",
        state.to_str().unwrap(),
        "--persist-timeout",
        "60s",
    ]);
    fs::remove_dir_all(&folder).unwrap();
    // A change whose reply waits for the disk, and 400 listings behind it.
    let socket = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
    socket.connect(&server.addr().into()).unwrap();
    let mut stream: TcpStream = socket.try_clone().unwrap().into();
    let local = stream.local_addr().unwrap();
    let mut request = String::from("makeroom held 239.1.1.1 5000\n");
    request += &"getdir\n".repeat(400);
    stream.set_write_timeout(Some(WAIT)).unwrap();
    stream.write_all(request.as_bytes()).unwrap();
    server.stdout.wait_for("cannot save the directory");
    thread::sleep(Duration::from_millis(200));
    // Reset: SO_LINGER 0 makes the close send RST.
    socket.set_linger(Some(Duration::ZERO)).unwrap();
    drop((socket, stream));
    server
        .stdout
        .wait_for(&format!("client {local} connection closed"));
    // And nothing spins meanwhile.
    let ticks_before = cpu_ticks(server.pid());
    thread::sleep(Duration::from_secs(1));
    let ticks = cpu_ticks(server.pid()) - ticks_before;
    assert!(ticks < 30, "server used {ticks} ticks in 1 s");
    assert_eq!(server.connect().ask("ping"), "OK pong");
}

#[test]
fn a_line_cut_by_the_servers_own_backpressure_is_not_a_partial_line() {
    // The scenario, smaller: 2,000 rooms, whole `getdir` lines
    // beyond the 1 KiB read-ahead (so it cuts one), a client that reads
    // steadily but slower than the server could send.
    let server = ServerProcess::start(
        &[
            &["--partial-line-timeout", "1s", "--log-level", "warn"],
            NO_QUOTAS,
        ]
        .concat(),
    );
    make_rooms(&server, 2000);
    let mut stream = small_window(&server, 16 * 1024);
    // Far more lines than the kernel's buffers take listings, so the
    // read-ahead stays full (and a line cut) while the server waits.
    stream
        .write_all("getdir\n".repeat(5000).as_bytes())
        .unwrap();
    // About 32 KiB/s for 4 s: the server's buffers fill within the first
    // second, then it waits for the reader, much longer than the
    // partial-line timeout.
    let mut got = Vec::new();
    let mut buf = [0u8; 2048];
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(4) {
        let n = stream.read(&mut buf).unwrap();
        assert!(n > 0, "the server closed the connection");
        got.extend_from_slice(&buf[..n]);
        thread::sleep(Duration::from_millis(60));
    }
    let text = String::from_utf8_lossy(&got);
    assert!(
        !text.contains("ERR"),
        "{}",
        &text[text.len().saturating_sub(200)..]
    );
    assert!(text.matches("OK 2000 rooms").count() >= 1);
    assert_eq!(server.logged("sent half a line"), 0, "{}", server.log());
}

#[test]
fn every_reply_before_bye_arrives_though_more_input_follows_it() {
    let server = ServerProcess::start(&[&["--log-level", "warn"], NO_QUOTAS].concat());
    make_rooms(&server, 2000);
    let mut stream = small_window(&server, 4096);
    let mut request = b"getdir\nbye\n".to_vec();
    request.extend(std::iter::repeat_n(b'z', 2000));
    stream.write_all(&request).unwrap();
    // Read slowly at first, so the server is done long before the client.
    thread::sleep(Duration::from_millis(500));
    let mut all = Vec::new();
    stream
        .read_to_end(&mut all)
        .expect("the connection was reset: replies were lost");
    let text = String::from_utf8(all).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines[0].starts_with("OK CRDP/1"), "{}", lines[0]);
    assert_eq!(lines[1], "OK 2000 rooms");
    assert_eq!(lines.len(), 2 + 2000 + 2, "{} lines", lines.len());
    assert_eq!(lines[2002], ".");
    assert_eq!(lines[2003], "OK bye");
}

#[test]
fn every_reply_before_bye_arrives_though_the_client_half_closes() {
    // The review's scenario: a full directory, more lines after `bye`, then
    // the client shuts its writing down and reads slowly. The server's own
    // FIN plus the client's makes the poller report a hang-up while the
    // lines after `bye` are still unread: closing then would reset.
    let server = ServerProcess::start(&[&["--log-level", "warn"], NO_QUOTAS].concat());
    // The most rooms a directory holds (the core's `MAX_ROOMS`).
    let rooms = 4096;
    make_rooms(&server, rooms);
    let mut stream = small_window(&server, 8 * 1024);
    let mut request = b"getdir\nbye\n".to_vec();
    request.extend("ping\n".repeat(400).as_bytes());
    stream.write_all(&request).unwrap();
    stream.shutdown(Shutdown::Write).unwrap();
    let mut all = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        // Slowly at first, so the server is done long before the client.
        if all.len() < 64 * 1024 {
            thread::sleep(Duration::from_millis(20));
        }
        let n = stream
            .read(&mut buf)
            .expect("the connection was reset: replies were lost");
        if n == 0 {
            break;
        }
        all.extend_from_slice(&buf[..n]);
    }
    let text = String::from_utf8(all).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines[0].starts_with("OK CRDP/1"), "{}", lines[0]);
    assert_eq!(lines[1], format!("OK {rooms} rooms"));
    assert_eq!(lines.len(), 2 + rooms + 2, "{} lines", lines.len());
    assert_eq!(lines[rooms + 2], ".");
    assert_eq!(lines[rooms + 3], "OK bye");
}

#[test]
fn the_server_and_client_run_with_a_one_mib_main_stack() {
    // Windows gives a main thread 1 MiB of stack. The directory server's
    // machine is bigger than that, and was built on the main thread's stack
    // before it went into its Box: the process died of a stack overflow.
    // prlimit gives the same 1 MiB here.
    let server = ServerProcess::start_with(
        &["prlimit", "--stack=1048576", "--"],
        &["--bind", "127.0.0.1", "--port", "0", "--no-announce"],
    );
    let mut crdp = server.connect();
    assert_eq!(
        without_token(&crdp.ask("makeroom small 239.1.1.9 5000")),
        "OK created small 239.1.1.9 5000"
    );
    let out = roomcast_command(&["prlimit", "--stack=1048576", "--"])
        .env("XDG_CONFIG_HOME", "/nonexistent/roomcast-test")
        .env("XDG_STATE_HOME", "/nonexistent/roomcast-test")
        .args(["client", "--server"])
        .arg(server.addr().to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            child
                .stdin
                .take()
                .unwrap()
                .write_all(b"connect\ngetdir\nquit\n")?;
            child.wait_with_output()
        })
        .expect("run the client");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.lines().any(|l| l
            .split_whitespace()
            .eq(["small", "239.1.1.9", "5000", "open"])),
        "{stdout}"
    );
}
