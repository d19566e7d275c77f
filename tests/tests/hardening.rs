//! The server under abuse and crashes: timeouts, peers that never read,
//! running out of descriptors, and a directory that survives SIGKILL.

use std::collections::BTreeMap;
use std::fs;
use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use roomcast_tests::{Crdp, ServerProcess, roomcast_bin};

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
    let server = ServerProcess::start(&["--send-timeout", "1s", "--log-level", "warn"]);
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
fn running_out_of_descriptors_is_survived_without_spinning() {
    // 24 descriptors: stdio, the listener, the poller, the signal pipe...
    // and a handful for clients.
    let server = ServerProcess::start_with(
        &["prlimit", "--nofile=24:24", "--"],
        &[
            "--bind",
            "127.0.0.1",
            "--port",
            "0",
            "--no-announce",
            "--log-level",
            "warn",
        ],
    );
    let (stdout, addr, pid) = (&server.stdout, server.addr(), server.pid());

    let mut held: Vec<TcpStream> = (0..40).map(|_| TcpStream::connect(addr).unwrap()).collect();
    stdout.wait_for("out of file descriptors");
    let ticks_before = cpu_ticks(pid);
    thread::sleep(Duration::from_secs(1));
    let ticks = cpu_ticks(pid) - ticks_before;
    // A busy loop would burn about 100 ticks a second.
    assert!(
        ticks < 30,
        "server used {ticks} ticks in 1 s while out of descriptors"
    );

    // Free them all; the server recovers and serves a new client.
    held.clear();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let stream = TcpStream::connect(addr).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_millis(500)))
            .unwrap();
        let mut c = std::io::BufReader::new(stream);
        let mut greeting = String::new();
        if std::io::BufRead::read_line(&mut c, &mut greeting).is_ok() && greeting.starts_with("OK ")
        {
            break;
        }
        assert!(Instant::now() < deadline, "server did not recover");
        thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_damaged_state_file_stops_the_start_and_is_kept() {
    let dir = temp_dir("damaged");
    let path = dir.join("rooms.state");
    let damaged = b"roomcast-state 1\nlobby 239.1.1.1 5000\n";
    fs::write(&path, damaged).unwrap();
    let out = Command::new(roomcast_bin())
        .args([
            "server",
            "--bind",
            "127.0.0.1",
            "--port",
            "0",
            "--no-announce",
            "--state",
        ])
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
    let mut server = ServerProcess::start(&["--state", &state_arg, "--log-level", "warn"]);
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
    let server = ServerProcess::start(&["--log-level", "warn"]);
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
    assert_eq!(c.read_line(), "OK created second 239.1.1.2 5000");
    assert_eq!(c.read_line(), "OK pong");
    assert!(
        fs::read_to_string(&state)
            .unwrap()
            .contains("second 239.1.1.2 5000")
    );
}
