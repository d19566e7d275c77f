//! The client in a real terminal: tmux gives it a pseudo-terminal, types
//! keys into it and shows its screen. Prompts change per mode, Ctrl-]
//! leaves chat mode without Enter, and a message that arrives while a line
//! is half typed is printed above it without garbling it.

mod client_common;

use std::time::{Duration, Instant};

use client_common::ClientProcess;
use client_common::tmux::Tmux;
use roomcast_tests::{ServerProcess, WAIT, netns, roomcast_bin};

#[test]
fn prompts_ctrl_bracket_and_messages_above_a_half_typed_line() {
    netns::isolated(|| {
        let server = ServerProcess::start(&[]);
        let port = server.port;
        let mut crdp = server.connect();
        assert!(
            crdp.ask("makeroom lobby 239.77.1.1 47101")
                .starts_with("OK")
        );
        drop(crdp);

        let command = format!(
            "{} client --server 127.0.0.1:{port} --iface 127.0.0.1 --name Alice --time-format none",
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
            screen.iter().any(|l| l == "lobby  239.77.1.1  47101  open"),
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
    });
}
