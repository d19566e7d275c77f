//! The assignment's demonstration, steps 1-8, as one script: the real
//! server and two real clients driven through piped stdin, chatting over
//! multicast on loopback, in a private network namespace of the test's own
//! (`netns::isolated`), so nothing it sends can leave the machine.

mod client_common;

use client_common::{ClientProcess, eventually};
use roomcast_tests::{ServerProcess, netns};

/// How many chat messages starting with `prefix` `client` showed.
fn said(client: &ClientProcess, prefix: &str) -> usize {
    client
        .stdout
        .all()
        .iter()
        .filter(|line| line.starts_with(prefix))
        .count()
}

/// A 0x1D byte on a line of its own: what Ctrl-] types in a cooked terminal.
const LEAVE: &[u8] = b"\x1d\n";

#[test]
fn the_eight_demonstration_steps() {
    netns::isolated(|| {
        // 1. The server starts and says where it listens.
        let server = ServerProcess::start(&[]);
        server
            .stdout
            .wait_for("Chat Room Directory Server listening on port");
        let port = server.port;
        let server_log = || server.stdout.all().join("\n") + &server.stderr.all().join("\n");

        // 2. A client connects; the prompt would change, the server reports it.
        let mut alice = ClientProcess::start("alice", port, &[]);
        alice.run(
            "connect",
            &format!("Connected to the directory server at 127.0.0.1:{port}"),
        );
        eventually("the server to report the connection", || {
            server_log().contains(" connected (1 connected)")
        });

        // 3. makeroom, then getdir shows the room in the table.
        alice.run(
            "makeroom lobby 239.77.0.1 47001",
            "Room lobby created: multicast group 239.77.0.1 port 47001",
        );
        alice.send("getdir");
        let header = alice.expect("ROOM");
        assert!(
            header.contains("ADDRESS") && header.contains("PORT"),
            "{header}"
        );
        let row = alice.expect("lobby");
        let cols: Vec<&str> = row.split_whitespace().collect();
        assert_eq!(cols, ["lobby", "239.77.0.1", "47001", "open"], "{row:?}");
        alice.expect("(1 room)");

        // 4. bye: the client is back at the main prompt; the server says the
        //    connection closed.
        alice.run("bye", "Disconnected from the directory server");
        eventually("the server to report the close", || {
            server_log().contains("connection closed")
        });

        // 5. Two clients name themselves.
        let mut bob = ClientProcess::start("bob", port, &[]);
        alice.run("name Alice", "Your chat name is now Alice");
        bob.run("name Bob", "Your chat name is now Bob");
        bob.run("name", "Your chat name is Bob");

        // 6. Both enter the room (looked up over a short connection) and chat
        //    both ways; nobody sees their own message twice.
        alice.run(
            "chat lobby",
            "Entering chat room lobby (239.77.0.1 port 47001) as Alice",
        );
        bob.run(
            "chat lobby",
            "Entering chat room lobby (239.77.0.1 port 47001) as Bob",
        );
        alice.send("Good morning!");
        bob.expect("Alice: Good morning!");
        bob.send("Good morning, Alice. ünïcödé too");
        alice.expect("Bob: Good morning, Alice. ünïcödé too");
        // Escape sequences from the network are shown, not obeyed.
        bob.send_bytes(b"\x1b[2Jcleared?\n");
        let shown = alice.expect("cleared?");
        assert_eq!(shown, "Bob: ^[[2Jcleared?");
        // Empty lines are not sent; a message too long for a datagram is refused.
        bob.send("");
        bob.send(&"x".repeat(1300));
        bob.expect("That message was not sent");
        alice.send("last one");
        bob.expect("Alice: last one");
        assert_eq!(said(&alice, "Alice: "), 0, "alice saw her own message");
        assert_eq!(said(&bob, "Bob: "), 0, "bob saw his own message");
        assert_eq!(said(&alice, "Bob: "), 2, "{:#?}", alice.stdout.all());

        // Leaving with the byte Ctrl-] types: back at the main prompt, and the
        // room's messages no longer arrive.
        alice.send_bytes(LEAVE);
        alice.expect("You left chat room lobby; back at the main prompt.");
        bob.send("anyone there?");
        bob.send_bytes(LEAVE);
        bob.expect("You left chat room lobby");

        // 7. A client deletes the room and getdir shows it gone.
        bob.run(
            "connect",
            &format!("Connected to the directory server at 127.0.0.1:{port}"),
        );
        bob.run("deleteroom lobby", "Room lobby deleted.");
        bob.run("getdir", "No rooms yet.");
        bob.run("chat lobby", "There is no room named lobby.");
        assert_eq!(
            said(&alice, "Bob: anyone there?"),
            0,
            "a message after leaving arrived"
        );

        // 8. Several clients connected at once: both are served, in any order.
        alice.run(
            "connect",
            &format!("Connected to the directory server at 127.0.0.1:{port}"),
        );
        eventually("the server to count two connections", || {
            server_log().contains("(2 connected)")
        });
        alice.run("makeroom second 239.77.0.2 47002", "Room second created");
        bob.send("getdir");
        bob.expect("second");
        alice.send("makeroom second 239.77.0.3 47003");
        alice.expect("Room second was not created:");
        bob.run("bye", "Disconnected");
        alice.run("bye", "Disconnected");

        // quit and end of input both exit with status 0.
        alice.send("quit");
        alice.expect("Goodbye.");
        assert_eq!(alice.wait_exit(), Some(0));
        bob.close_stdin();
        bob.expect("Goodbye.");
        assert_eq!(bob.wait_exit(), Some(0));
    });
}
