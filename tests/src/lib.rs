//! Helpers for the end-to-end tests of the `roomcast` binary: start a real
//! server process, talk CRDP to it over real TCP, read its log.
//!
//! Every process a test starts is ended by its own handle (by PID) when the
//! handle drops, so a failing test leaves nothing running.
//!
//! A test that sends multicast runs its body in
//! [`netns::isolated`]: a private network namespace with only loopback,
//! made by the test itself, so `cargo test --workspace` runs it safely
//! anywhere (as root, or without root through a user namespace), and fails
//! saying what is missing where that is impossible. A test that needs hosts
//! on a LAN builds a [`lan::Lan`] inside it. Both modules document how they
//! work, with an example.

pub mod lan;
pub mod loopback;
pub mod netns;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::thread;
use std::time::{Duration, Instant};

/// How long a test waits for anything (a log line, a reply) before failing.
pub const WAIT: Duration = Duration::from_secs(10);

/// The `roomcast` binary under test: `$ROOMCAST_BIN`, or the one cargo built
/// beside this test executable.
pub fn roomcast_bin() -> PathBuf {
    if let Some(path) = std::env::var_os("ROOMCAST_BIN") {
        return PathBuf::from(path);
    }
    let exe = std::env::current_exe().expect("current_exe");
    // target/<profile>/deps/<test> -> target/<profile>/roomcast
    let dir = exe.parent().and_then(|p| p.parent()).expect("target dir");
    let bin = dir.join("roomcast");
    assert!(
        bin.exists(),
        "{} is missing: run `cargo build -p host` first (cargo test --workspace builds it)",
        bin.display()
    );
    bin
}

/// Panics, saying how to install it, unless `program` is on the `PATH`:
/// a test that needs a program fails without it (it is never skipped).
/// `package` is the Debian/Ubuntu package that has it.
pub fn require_program(program: &str, package: &str) {
    let found = std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|dir| dir.join(program).is_file()));
    assert!(
        found,
        "this test needs `{program}`, which is not on the PATH: install it (Debian/Ubuntu: \
         apt-get install {package})"
    );
}

/// `WRAPPER... roomcast` (a wrapper such as `prlimit ... --` or `nsenter
/// ...`, which must exec the binary so that the PID is roomcast's), or the
/// binary alone when `wrapper` is empty.
pub fn roomcast_command(wrapper: &[&str]) -> Command {
    match wrapper.split_first() {
        Some((first, rest)) => {
            let mut command = Command::new(first);
            command.args(rest).arg(roomcast_bin());
            command
        }
        None => Command::new(roomcast_bin()),
    }
}

/// The arguments of a server on a free loopback port that does not announce
/// itself (tests outside a private namespace send no mDNS).
pub const LOCAL_SERVER: [&str; 6] = [
    "server",
    "--bind",
    "127.0.0.1",
    "--port",
    "0",
    "--no-announce",
];

/// Lines a child printed, shared with the thread that reads them.
#[derive(Clone, Default)]
pub struct Lines(Arc<(Mutex<Vec<String>>, Condvar)>);

impl Lines {
    /// Starts a thread that collects every line of `source`. Bytes that are
    /// not UTF-8 are kept as U+FFFD, and collecting goes on after them.
    pub fn collect(source: impl Read + Send + 'static) -> Lines {
        let lines = Lines::default();
        let sink = lines.clone();
        thread::spawn(move || {
            let mut reader = BufReader::new(source);
            let mut line = Vec::new();
            loop {
                line.clear();
                match reader.read_until(b'\n', &mut line) {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {}
                }
                if line.last() == Some(&b'\n') {
                    line.pop();
                    if line.last() == Some(&b'\r') {
                        line.pop();
                    }
                }
                let (store, ready) = &*sink.0;
                store
                    .lock()
                    .unwrap()
                    .push(String::from_utf8_lossy(&line).into_owned());
                ready.notify_all();
            }
        });
        lines
    }

    /// Every line so far.
    pub fn all(&self) -> Vec<String> {
        self.0.0.lock().unwrap().clone()
    }

    /// Waits for a line containing `needle` (searching from line `from`) and
    /// returns its index and text. Panics after [`WAIT`].
    pub fn wait_for_from(&self, from: usize, needle: &str) -> (usize, String) {
        let deadline = Instant::now() + WAIT;
        let (store, ready) = &*self.0;
        let mut lines = store.lock().unwrap();
        loop {
            if let Some(i) = lines.iter().skip(from).position(|l| l.contains(needle)) {
                return (from + i, lines[from + i].clone());
            }
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(
                !left.is_zero(),
                "no line containing {needle:?} within {WAIT:?}; got:\n{}",
                lines.join("\n")
            );
            lines = ready.wait_timeout(lines, left).unwrap().0;
        }
    }

    /// Waits for a line containing `needle` anywhere.
    pub fn wait_for(&self, needle: &str) -> String {
        self.wait_for_from(0, needle).1
    }

    /// How many lines contain `needle` now.
    pub fn count(&self, needle: &str) -> usize {
        self.0
            .0
            .lock()
            .unwrap()
            .iter()
            .filter(|l| l.contains(needle))
            .count()
    }
}

/// A running `roomcast server`, killed when dropped.
pub struct ServerProcess {
    child: Child,
    /// The port it listens on.
    pub port: u16,
    /// What it printed on stdout.
    pub stdout: Lines,
    /// What it printed on stderr.
    pub stderr: Lines,
}

impl ServerProcess {
    /// Starts `roomcast server --bind 127.0.0.1 --port 0 --no-announce
    /// EXTRA...` and waits until it says which port it listens on. (Tests
    /// of the mDNS announcement leave out `--no-announce`, and run in a
    /// private network namespace.)
    pub fn start(extra: &[&str]) -> ServerProcess {
        let args = [
            &["--bind", "127.0.0.1", "--port", "0", "--no-announce"],
            extra,
        ]
        .concat();
        ServerProcess::start_with(&[], &args)
    }

    /// Starts `WRAPPER... roomcast server ARGS...` (a wrapper such as `ip
    /// netns exec NS` or `prlimit ... --`, which must exec the server so that
    /// the PID is the server's) and waits until it says which port it
    /// listens on. [`addr`](Self::addr) assumes it listens on 127.0.0.1.
    pub fn start_with(wrapper: &[&str], args: &[&str]) -> ServerProcess {
        let mut child = roomcast_command(wrapper)
            .arg("server")
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start roomcast server");
        let stdout = Lines::collect(child.stdout.take().unwrap());
        let stderr = Lines::collect(child.stderr.take().unwrap());
        let mut server = ServerProcess {
            child,
            port: 0,
            stdout,
            stderr,
        };
        let line = server.stdout.wait_for("listening on port");
        server.port = line
            .split("listening on port ")
            .nth(1)
            .and_then(|rest| rest.trim_end_matches("...").parse().ok())
            .unwrap_or_else(|| panic!("no port in {line:?}"));
        server
    }

    /// Everything it printed, stdout then stderr.
    pub fn log(&self) -> String {
        [self.stdout.all(), self.stderr.all()].concat().join("\n")
    }

    /// How many lines it printed (on either stream) contain `needle`.
    pub fn logged(&self, needle: &str) -> usize {
        self.stdout.count(needle) + self.stderr.count(needle)
    }

    /// The server's address.
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// A new CRDP connection, greeting read.
    pub fn connect(&self) -> Crdp {
        Crdp::connect(self.addr())
    }

    /// The server's PID.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends a signal to the server (by its PID) and waits for it to exit.
    pub fn signal_and_wait(&mut self, signal: &str) -> std::process::ExitStatus {
        let status = Command::new("kill")
            .args([&format!("-{signal}"), &self.child.id().to_string()])
            .status()
            .expect("kill");
        assert!(status.success());
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "server did not exit after {signal}"
            );
            thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A CRDP connection for tests: send lines, read replies.
pub struct Crdp {
    reader: BufReader<TcpStream>,
    /// The greeting line the server sent.
    pub greeting: String,
}

impl Crdp {
    /// Connects and reads the greeting.
    pub fn connect(addr: SocketAddr) -> Crdp {
        let stream = TcpStream::connect(addr).expect("connect to server");
        stream.set_read_timeout(Some(WAIT)).unwrap();
        let mut crdp = Crdp {
            reader: BufReader::new(stream),
            greeting: String::new(),
        };
        crdp.greeting = crdp.read_line();
        crdp
    }

    /// The socket, for writing raw bytes.
    pub fn stream(&mut self) -> &mut TcpStream {
        self.reader.get_mut()
    }

    /// Writes raw bytes.
    pub fn send_raw(&mut self, bytes: &[u8]) {
        self.stream().write_all(bytes).expect("write to server");
    }

    /// Reads one line, without its LF. Panics on EOF or timeout.
    pub fn read_line(&mut self) -> String {
        let mut line = String::new();
        let n = self.reader.read_line(&mut line).expect("read from server");
        assert!(n > 0, "server closed the connection");
        assert!(line.ends_with('\n'), "unterminated line {line:?}");
        line.pop();
        line
    }

    /// Reads one line, without its LF; `None` if the connection ended (or
    /// failed) first.
    pub fn try_read_line(&mut self) -> Option<String> {
        let mut line = String::new();
        match self.reader.read_line(&mut line) {
            Ok(_) if line.ends_with('\n') => {
                line.pop();
                Some(line)
            }
            _ => None,
        }
    }

    /// Reads one whole reply to `command`: one line, or for a multi-line
    /// `OK` (getdir, help) every line up to and including the `.`.
    pub fn read_reply(&mut self, command: &str) -> Vec<String> {
        let first = self.read_line();
        let verb = command
            .split_whitespace()
            .next()
            .unwrap_or("")
            .to_ascii_lowercase();
        let multi = first.starts_with("OK") && (verb == "getdir" || verb == "help");
        let mut reply = vec![first];
        if multi {
            loop {
                let line = self.read_line();
                let end = line == ".";
                reply.push(line);
                if end {
                    break;
                }
            }
        }
        reply
    }

    /// Sends `command` and reads its whole reply.
    pub fn request(&mut self, command: &str) -> Vec<String> {
        self.send_raw(format!("{command}\n").as_bytes());
        self.read_reply(command)
    }

    /// Sends `command` and returns the first line of its reply.
    pub fn ask(&mut self, command: &str) -> String {
        self.request(command).remove(0)
    }

    /// Reads until the server closes; returns what came before.
    pub fn read_to_close(&mut self) -> String {
        let mut rest = String::new();
        self.reader
            .read_to_string(&mut rest)
            .expect("read to close");
        rest
    }
}

/// A `makeroom` reply without its owner token: `OK created lobby 239.1.2.3
/// 5000 token=...` becomes `OK created lobby 239.1.2.3 5000`, and a private
/// room's `... token=... private` becomes `OK created ... 5000 private`
/// (anything else is returned as it is). For tests about rooms, not owners.
pub fn without_token(reply: &str) -> String {
    match reply.split_once(" token=") {
        Some((head, tail)) if head.starts_with("OK created ") => {
            let (token, rest) = tail.split_once(' ').unwrap_or((tail, ""));
            assert_eq!(
                token.len(),
                OWNER_TOKEN_LEN,
                "a token is 22 characters: {reply:?}"
            );
            if rest.is_empty() {
                head.to_string()
            } else {
                format!("{head} {rest}")
            }
        }
        _ => reply.to_string(),
    }
}

/// The owner token of a `makeroom` reply (`OK created ... token=<token>`,
/// then ` private` for a private room).
pub fn token_of(reply: &str) -> String {
    let (_, tail) = reply
        .split_once(" token=")
        .unwrap_or_else(|| panic!("no token in {reply:?}"));
    let token = tail.split(' ').next().unwrap_or_default();
    assert_eq!(token.len(), OWNER_TOKEN_LEN, "{reply:?}");
    token.to_string()
}

/// The length of an owner token: 128 bits in unpadded base64url
/// (`roomcast_core::limits::TOKEN_TEXT`, not a dependency of this library).
const OWNER_TOKEN_LEN: usize = 22;
