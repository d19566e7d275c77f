//! The client in a real terminal: tmux gives it a pseudo-terminal, types
//! keys into it and shows its screen. Prompts change per mode, Ctrl-]
//! leaves chat mode without Enter, and a message that arrives while a line
//! is half typed is printed above it without garbling it.

mod client_common;

use std::path::PathBuf;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use client_common::{ClientProcess, have, require, require_sandbox};
use roomcast_tests::{ServerProcess, WAIT, roomcast_bin};

/// A tmux server of our own (its own socket), with one session running the
/// client; the server and everything in it are ended when dropped.
struct Tmux {
    socket: PathBuf,
}

impl Tmux {
    fn start(command: &str) -> Tmux {
        let socket = std::env::temp_dir().join(format!(
            "roomcast-pty-{}-{}.sock",
            std::process::id(),
            Instant::now().elapsed().as_nanos()
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
        tmux
    }

    fn run(&self, args: &[&str]) -> Output {
        Command::new("tmux")
            .arg("-S")
            .arg(&self.socket)
            .args(args)
            .env_remove("TMUX")
            .output()
            .expect("run tmux")
    }

    /// Types `text` literally (no key names).
    fn type_text(&self, text: &str) {
        let out = self.run(&["send-keys", "-t", "client", "-l", text]);
        assert!(out.status.success(), "{out:?}");
    }

    /// Presses keys by name (`Enter`, `C-]`, `C-d`).
    fn press(&self, key: &str) {
        let out = self.run(&["send-keys", "-t", "client", key]);
        assert!(out.status.success(), "{out:?}");
    }

    /// The screen's lines, trailing blanks removed.
    fn screen(&self) -> Vec<String> {
        let out = self.run(&["capture-pane", "-p", "-t", "client"]);
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
    fn wait_last_line(&self, expected: &str) -> Vec<String> {
        self.wait_screen(&format!("last line {expected:?}"), |s| {
            s.last().is_some_and(|l| l == expected.trim_end())
        })
    }

    fn wait_screen(&self, what: &str, check: impl Fn(&[String]) -> bool) -> Vec<String> {
        let deadline = Instant::now() + WAIT;
        loop {
            let screen = self.screen();
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

    fn session_alive(&self) -> bool {
        self.run(&["has-session", "-t", "client"]).status.success()
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.run(&["kill-server"]);
        let _ = std::fs::remove_file(&self.socket);
    }
}

#[test]
fn prompts_ctrl_bracket_and_messages_above_a_half_typed_line() {
    if !require_sandbox() || !require(have("tmux"), "tmux is not installed") {
        return;
    }
    let server = ServerProcess::start(&[]);
    let port = server.port;
    let mut crdp = server.connect();
    assert!(
        crdp.ask("makeroom lobby 239.77.1.1 47101")
            .starts_with("OK")
    );
    drop(crdp);

    let command = format!(
        "{} client --server 127.0.0.1:{port} --iface 127.0.0.1 --name Alice",
        roomcast_bin().display()
    );
    let tmux = Tmux::start(&command);
    tmux.wait_last_line("roomcast>");

    // The connected prompt shows the server.
    tmux.type_text("connect");
    tmux.press("Enter");
    let connected = format!("roomcast [127.0.0.1:{port}]>");
    let screen = tmux.wait_last_line(&connected);
    assert!(
        screen
            .iter()
            .any(|l| l.starts_with("Connected to the directory server")),
        "{screen:#?}"
    );

    // getdir draws its table.
    tmux.type_text("getdir");
    tmux.press("Enter");
    let screen = tmux.wait_screen("the table", |s| s.iter().any(|l| l == "(1 room)"));
    assert!(
        screen.iter().any(|l| l == "lobby  239.77.1.1  47101"),
        "{screen:#?}"
    );

    // The chat prompt shows room and name.
    tmux.type_text("chat lobby");
    tmux.press("Enter");
    tmux.wait_last_line("[lobby] Alice>");

    let mut bob = ClientProcess::start("bob", port, &["--name", "Bob"]);
    bob.run("chat lobby", "Entering chat room lobby");

    // A message arrives while Alice has half a line typed: it is printed
    // above her prompt, and her line is still there, intact.
    tmux.type_text("half typ");
    tmux.wait_last_line("[lobby] Alice> half typ");
    bob.send("hello alice");
    let screen = tmux.wait_screen("Bob's message", |s| {
        s.iter().any(|l| l == "Bob: hello alice")
    });
    let at = screen.iter().position(|l| l == "Bob: hello alice").unwrap();
    assert_eq!(
        &screen[at + 1..],
        ["[lobby] Alice> half typ"],
        "the half-typed line was disturbed:\n{}",
        screen.join("\n")
    );
    // She finishes the line, and Bob gets all of it.
    tmux.type_text("ed");
    tmux.press("Enter");
    bob.expect("Alice: half typed");
    tmux.wait_last_line("[lobby] Alice>");

    // Ctrl-] leaves chat mode at once, without Enter, dropping the
    // half-typed text.
    tmux.type_text("never sent");
    tmux.wait_last_line("[lobby] Alice> never sent");
    tmux.press("C-]");
    let screen = tmux.wait_last_line(&connected);
    assert!(
        screen
            .iter()
            .any(|l| l == "You left chat room lobby; back at the connected prompt."),
        "{screen:#?}"
    );
    // Left for real: Bob's next message does not reach her.
    bob.send("are you there?");
    bob.send("/leave");
    bob.expect("You left chat room lobby");
    std::thread::sleep(Duration::from_millis(200));
    assert!(
        !tmux.screen().iter().any(|l| l.contains("are you there?")),
        "{:#?}",
        tmux.screen()
    );
    assert_eq!(bob.stdout.count("never sent"), 0);

    // bye: back to the main prompt; Ctrl-D there exits.
    tmux.type_text("bye");
    tmux.press("Enter");
    tmux.wait_last_line("roomcast>");
    tmux.press("C-d");
    let deadline = Instant::now() + WAIT;
    while tmux.session_alive() {
        assert!(
            Instant::now() < deadline,
            "the client did not exit on Ctrl-D"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}
