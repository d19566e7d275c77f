//! The server's log on stdout never holds up serving: a stdout nobody reads
//! (a full pipe, a paused terminal) costs log lines, not service, and a
//! closed stdout is not a crash. TCP on loopback only.

use std::io::Read;
use std::net::SocketAddr;
use std::process::{Child, ChildStdout, Command, ExitStatus, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use roomcast_tests::{Crdp, LOCAL_SERVER, Lines, WAIT, roomcast_command};

/// Pings sent by the tests that fill the log: at one log line of about 70
/// bytes each, far more than a pipe holds (64 KiB on Linux).
const PINGS: usize = 5000;

/// A server whose stdout the test reads only as far as it wants to.
struct Server {
    child: Child,
    stdout: Option<ChildStdout>,
    stderr: Lines,
    port: u16,
}

impl Server {
    /// Starts the server and reads its stdout, one byte at a time (so
    /// nothing more is taken from the pipe), up to the line that says which
    /// port it listens on.
    fn start() -> Server {
        let mut child = roomcast_command(&[])
            .args(LOCAL_SERVER)
            .args([
                // Thousands of pings, a hundred per write, to fill the log:
                // not about the rate quota.
                "--commands-per-second",
                "0",
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start roomcast server");
        let stderr = Lines::collect(child.stderr.take().unwrap());
        let mut stdout = child.stdout.take().unwrap();
        let mut line = Vec::new();
        let mut byte = [0u8; 1];
        while byte[0] != b'\n' {
            assert_eq!(stdout.read(&mut byte).unwrap(), 1, "stdout closed");
            line.push(byte[0]);
            assert!(line.len() < 200, "no first line: {line:?}");
        }
        let line = String::from_utf8(line).unwrap();
        let port = line
            .split("listening on port ")
            .nth(1)
            .and_then(|rest| rest.trim_end().trim_end_matches("...").parse().ok())
            .unwrap_or_else(|| panic!("no port in {line:?}"));
        Server {
            child,
            stdout: Some(stdout),
            stderr,
            port,
        }
    }

    fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// Sends SIGTERM (by PID) and waits, at most [`WAIT`], for the exit.
    fn terminate(&mut self) -> ExitStatus {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "the server did not exit after SIGTERM"
            );
            thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Sends [`PINGS`] pings on one connection, 100 at a time, and checks every
/// reply. Each one logs a line.
fn ping_many(addr: SocketAddr) {
    let mut c = Crdp::connect(addr);
    let batch = "ping\n".repeat(100);
    for _ in 0..PINGS / 100 {
        c.send_raw(batch.as_bytes());
        for _ in 0..100 {
            assert_eq!(c.read_line(), "OK pong");
        }
    }
    assert_eq!(c.ask("bye"), "OK bye");
}

#[test]
fn a_stdout_nobody_reads_does_not_stop_the_server() {
    let mut server = Server::start();
    // Nobody reads the pipe from here on: it fills after a few hundred lines.
    ping_many(server.addr());
    // New clients are still greeted and served.
    for _ in 0..3 {
        let mut c = Crdp::connect(server.addr());
        assert!(c.greeting.starts_with("OK CRDP/1 "), "{}", c.greeting);
        assert_eq!(c.ask("ping"), "OK pong");
    }
    // Reading again: the log catches up and, before the next line that gets
    // through, says how much it dropped. (Lines logged while the backlog
    // drains may be dropped too, so a few pings may be needed.)
    let stdout = Lines::collect(server.stdout.take().unwrap());
    let mut c = Crdp::connect(server.addr());
    let notice = "log lines dropped: output was not being read]";
    let deadline = Instant::now() + WAIT;
    while stdout.count(notice) == 0 {
        assert!(Instant::now() < deadline, "no notice of dropped lines");
        assert_eq!(c.ask("ping"), "OK pong");
        thread::sleep(Duration::from_millis(20));
    }
    let (at, line) = stdout.wait_for_from(0, notice);
    let dropped: usize = line
        .strip_prefix('[')
        .and_then(|l| l.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no count in {line:?}"));
    assert!(dropped > 0 && dropped < 2 * PINGS, "{line}");
    // And it goes on logging.
    assert_eq!(c.ask("bye"), "OK bye");
    stdout.wait_for_from(at + 1, "connection closed");
    assert!(server.stderr.all().is_empty(), "{:?}", server.stderr.all());
}

#[test]
fn a_closed_stdout_is_not_a_crash_and_sigterm_exits_0() {
    // `roomcast server | head -1`
    let mut server = Server::start();
    drop(server.stdout.take());
    let mut c = Crdp::connect(server.addr());
    assert_eq!(c.ask("ping"), "OK pong");
    drop(c);
    let status = server.terminate();
    let stderr = server.stderr.all().join("\n");
    assert_eq!(status.code(), Some(0), "stderr: {stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn sigterm_with_a_full_stdout_pipe_exits_0() {
    let mut server = Server::start();
    ping_many(server.addr());
    let status = server.terminate();
    let stderr = server.stderr.all().join("\n");
    assert_eq!(status.code(), Some(0), "stderr: {stderr}");
    // What was still queued comes out once the pipe is read.
    let mut rest = Vec::new();
    server
        .stdout
        .take()
        .unwrap()
        .read_to_end(&mut rest)
        .unwrap();
    let rest = String::from_utf8_lossy(&rest);
    assert!(rest.contains("ping: OK"), "{rest}");
}
