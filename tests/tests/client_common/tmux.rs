//! A tmux server of our own, for tests that drive the client through a
//! pseudo-terminal: type keys, read the screen.
//!
//! Each [`Tmux`] starts its own tmux server (its own socket) from the
//! calling thread, so inside `netns::isolated` the server and the programs
//! in its panes are in the test's network namespace; [`Tmux::start`]
//! checks that they are.

use std::path::PathBuf;
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use roomcast_tests::{WAIT, require_program};

/// A tmux server of our own (its own socket), with one session running the
/// client; the server and everything in it are ended when dropped.
pub struct Tmux {
    socket: PathBuf,
}

impl Tmux {
    /// Starts a tmux server of its own running `command` in a 110x40
    /// pane. Fails (never skips) if tmux is not installed.
    pub fn start(command: &str) -> Tmux {
        require_program("tmux", "tmux");
        // One socket per Tmux: tests in one process run in parallel.
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let socket = std::env::temp_dir().join(format!(
            "roomcast-pty-{}-{}.sock",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::SeqCst)
        ));
        let tmux = Tmux { socket };
        let out = tmux.run(&[
            "new-session",
            "-d",
            "-s",
            "client",
            "-x",
            "110",
            "-y",
            "40",
            command,
        ]);
        assert!(out.status.success(), "tmux new-session: {out:?}");
        // The pane's program is in the network namespace of the thread
        // that started tmux.
        let ours = std::fs::read_link("/proc/thread-self/ns/net").expect("our namespace");
        let pane = tmux.format("#{pane_pid}");
        let its = std::fs::read_link(format!("/proc/{pane}/ns/net")).expect("the pane's namespace");
        assert_eq!(
            its, ours,
            "the program in tmux runs in another network namespace"
        );
        tmux
    }

    pub fn run(&self, args: &[&str]) -> Output {
        Command::new("tmux")
            .arg("-S")
            .arg(&self.socket)
            .args(args)
            .env_remove("TMUX")
            // The tmux server, and so the client in its pane, reads no
            // config file of the user running the tests.
            .env("XDG_CONFIG_HOME", super::no_config_home())
            .env("XDG_STATE_HOME", super::state_home())
            .output()
            .expect("run tmux")
    }

    /// Types `text` literally (no key names).
    pub fn type_text(&self, text: &str) {
        let out = self.run(&["send-keys", "-t", "client", "-l", text]);
        assert!(out.status.success(), "{out:?}");
    }

    /// Presses keys by name (`Enter`, `C-]`, `C-d`).
    pub fn press(&self, key: &str) {
        let out = self.run(&["send-keys", "-t", "client", key]);
        assert!(out.status.success(), "{out:?}");
    }

    /// The screen's lines, trailing blanks removed.
    pub fn screen(&self) -> Vec<String> {
        self.capture(&["capture-pane", "-p", "-t", "client"])
    }

    /// The screen with everything scrolled off above it (tmux's history).
    #[allow(dead_code)] // Not every test file that shares this module uses it.
    pub fn history(&self) -> Vec<String> {
        self.capture(&["capture-pane", "-p", "-S", "-", "-t", "client"])
    }

    fn capture(&self, args: &[&str]) -> Vec<String> {
        let out = self.run(args);
        let mut lines: Vec<String> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(|l| l.trim_end().to_string())
            .collect();
        while lines.last().is_some_and(|l| l.is_empty()) {
            lines.pop();
        }
        lines
    }

    /// Waits until the last line of the screen (the cursor's line) is
    /// `expected`; returns the whole screen.
    pub fn wait_last_line(&self, expected: &str) -> Vec<String> {
        self.wait_screen(&format!("last line {expected:?}"), |s| {
            s.last().is_some_and(|l| l == expected.trim_end())
        })
    }

    pub fn wait_screen(&self, what: &str, check: impl Fn(&[String]) -> bool) -> Vec<String> {
        self.wait_capture(what, Self::screen, check)
    }

    /// As [`wait_screen`](Self::wait_screen), over the history too.
    #[allow(dead_code)] // Not every test file that shares this module uses it.
    pub fn wait_history(&self, what: &str, check: impl Fn(&[String]) -> bool) -> Vec<String> {
        self.wait_capture(what, Self::history, check)
    }

    fn wait_capture(
        &self,
        what: &str,
        capture: fn(&Self) -> Vec<String>,
        check: impl Fn(&[String]) -> bool,
    ) -> Vec<String> {
        let deadline = Instant::now() + WAIT;
        loop {
            let screen = capture(self);
            if check(&screen) {
                return screen;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}; the screen:\n{}",
                screen.join("\n")
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// A tmux format (`#{pid}`, `#{pane_pid}`, `#{pane_title}`) of the
    /// session's pane.
    pub fn format(&self, format: &str) -> String {
        let out = self.run(&["display-message", "-p", "-t", "client", format]);
        assert!(out.status.success(), "{out:?}");
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    pub fn session_alive(&self) -> bool {
        self.run(&["has-session", "-t", "client"]).status.success()
    }

    /// Waits until the session has ended (its command exited).
    pub fn wait_gone(&self) {
        let deadline = Instant::now() + WAIT;
        while self.session_alive() {
            assert!(
                Instant::now() < deadline,
                "the session did not end; the screen:\n{}",
                self.screen().join("\n")
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.run(&["kill-server"]);
        let _ = std::fs::remove_file(&self.socket);
    }
}
