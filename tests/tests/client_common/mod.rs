//! Helpers for the client's end-to-end tests: a client process driven
//! through piped stdin, and a terminal (tmux) to drive it through a pty.
//! Tests that chat run inside `roomcast_tests::netns::isolated`.
#![allow(dead_code)] // each test crate uses its own part of this

pub mod tmux;

use std::io::{Read, Write};
use std::process::{Child, ChildStdin, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use roomcast_tests::{Lines, WAIT, roomcast_command};

/// A `roomcast client` whose stdin is a pipe and whose output is collected,
/// killed (by its own PID) when dropped.
pub struct ClientProcess {
    child: Child,
    stdin: Option<ChildStdin>,
    /// What it printed on stdout.
    pub stdout: Lines,
    /// What it printed on stderr.
    pub stderr: Lines,
    /// Every byte it printed on stdout, as it came.
    raw: Arc<Mutex<Vec<u8>>>,
    /// Where [`expect`](Self::expect) looks from.
    cursor: usize,
    label: String,
}

impl ClientProcess {
    /// Starts `roomcast client ARGS...` (prefixed by `wrapper`, e.g. `ip netns
    /// exec NS`, if any).
    pub fn start_with(label: &str, wrapper: &[&str], args: &[&str]) -> ClientProcess {
        ClientProcess::start_with_env(label, wrapper, args, &[])
    }

    /// [`start_with`](Self::start_with), with these environment variables
    /// set too.
    pub fn start_with_env(
        label: &str,
        wrapper: &[&str],
        args: &[&str],
        env: &[(&str, &str)],
    ) -> ClientProcess {
        let mut child = roomcast_command(wrapper)
            .env("XDG_CONFIG_HOME", no_config_home())
            .env("XDG_STATE_HOME", state_home())
            .envs(env.iter().copied())
            .arg("client")
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start roomcast client");
        let raw = Arc::new(Mutex::new(Vec::new()));
        let stdout = Lines::collect(Tee {
            inner: child.stdout.take().unwrap(),
            copy: raw.clone(),
        });
        let stderr = Lines::collect(child.stderr.take().unwrap());
        let stdin = child.stdin.take();
        let mut client = ClientProcess {
            child,
            stdin,
            stdout,
            stderr,
            raw,
            cursor: 0,
            label: label.to_string(),
        };
        client.expect("roomcast chat client");
        client
    }

    /// Starts a client of the server on 127.0.0.1:`port`, chatting on
    /// loopback.
    pub fn start(label: &str, port: u16, extra: &[&str]) -> ClientProcess {
        let server = format!("127.0.0.1:{port}");
        let mut args = vec!["--server", &server, "--iface", "127.0.0.1"];
        args.extend_from_slice(extra);
        ClientProcess::start_with(label, &[], &args)
    }

    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Every byte it printed on stdout so far.
    pub fn raw_stdout(&self) -> Vec<u8> {
        self.raw.lock().unwrap().clone()
    }

    /// Types `line` (a newline is added).
    pub fn send(&mut self, line: &str) {
        self.send_bytes(format!("{line}\n").as_bytes());
    }

    /// Writes raw bytes to its stdin.
    pub fn send_bytes(&mut self, bytes: &[u8]) {
        let stdin = self.stdin.as_mut().expect("stdin is open");
        stdin.write_all(bytes).expect("write to client");
        stdin.flush().expect("flush to client");
    }

    /// Closes its stdin (end of input).
    pub fn close_stdin(&mut self) {
        self.stdin = None;
    }

    /// Waits for a line containing `needle` after the last one expected, and
    /// returns it. Panics after [`WAIT`], showing everything it printed.
    pub fn expect(&mut self, needle: &str) -> String {
        let (i, line) = self.stdout.wait_for_from(self.cursor, needle);
        self.cursor = i + 1;
        line
    }

    /// Types `line`, then waits for `needle`.
    pub fn run(&mut self, line: &str, needle: &str) -> String {
        self.send(line);
        self.expect(needle)
    }

    /// Every line it printed after the last one expected.
    pub fn rest(&self) -> Vec<String> {
        self.stdout
            .all()
            .split_off(self.cursor.min(self.stdout.all().len()))
    }

    /// Waits for it to exit; its status code.
    pub fn wait_exit(&mut self) -> Option<i32> {
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return status.code();
            }
            assert!(
                Instant::now() < deadline,
                "{} did not exit; it printed:\n{}",
                self.label,
                self.stdout.all().join("\n")
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for ClientProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A reader that keeps a copy of every byte read through it.
struct Tee<R> {
    inner: R,
    copy: Arc<Mutex<Vec<u8>>>,
}

impl<R: Read> Read for Tee<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.copy.lock().unwrap().extend_from_slice(&buf[..n]);
        Ok(n)
    }
}

/// A configuration folder that does not exist, for `XDG_CONFIG_HOME`: the
/// clients under test read no config file of the user running the tests
/// (a test that wants one sets its own).
pub fn no_config_home() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("no-config-home")
}

/// The state folder of the clients under test, for `XDG_STATE_HOME`: the
/// owner tokens they keep go there, not into the home of the user running
/// the tests. All clients share it, as one user's clients do (the demo's
/// second client deletes the first one's room with the token kept there).
pub fn state_home() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("state-home")
}

/// Waits until `check` holds, up to [`WAIT`].
pub fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}
