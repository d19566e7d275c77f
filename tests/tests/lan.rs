//! The demonstration across a LAN: three hosts (a server and two clients),
//! each a network namespace of its own, wired by veth pairs to a bridge in a
//! fourth ("the switch"), with addresses from 198.18.0.0/24. The test builds
//! it with `roomcast_tests::lan::Lan` inside its own private namespace
//! (`netns::isolated`), so nothing it does touches the machine's network,
//! runs the real binary on it, and tears it down.

mod client_common;

use client_common::{ClientProcess, eventually};
use roomcast_tests::lan::Lan;
use roomcast_tests::{ServerProcess, netns};

#[test]
fn chat_across_a_lan_of_namespaces() {
    netns::isolated(|| {
        // Declared first, dropped last: after every process in it has ended.
        let lan = Lan::build(&["srv", "alice", "bob"]);
        let (srv, alice_host, bob_host) = (lan.host("srv"), lan.host("alice"), lan.host("bob"));
        let (server_addr, alice_addr, bob_addr) = (
            srv.v4.to_string(),
            alice_host.v4.to_string(),
            bob_host.v4.to_string(),
        );
        let server =
            ServerProcess::start_with(&srv.exec(), &["--bind", &server_addr, "--port", "5577"]);
        let to_server = format!("{server_addr}:5577");

        // Alice names the interface to chat on; Bob leaves it to the system,
        // which routes multicast to the LAN.
        let mut alice = ClientProcess::start_with(
            "alice",
            &alice_host.exec(),
            &["--server", &to_server, "--iface", &alice_addr],
        );
        let mut bob = ClientProcess::start_with("bob", &bob_host.exec(), &["--server", &to_server]);

        alice.run(
            "connect",
            &format!("Connected to the directory server at {to_server}"),
        );
        eventually("the server to log alice's host", || {
            server.logged(&format!("{alice_addr}:")) > 0
        });
        alice.run("makeroom lan 239.77.2.1 47201", "Room lan created");
        alice.run("getdir", "lan");
        alice.run("bye", "Disconnected");

        alice.run("name Alice", "Your chat name is now Alice");
        bob.run("name Bob", "Your chat name is now Bob");
        alice.run("chat lan", "Entering chat room lan");
        bob.run("chat lan", "Entering chat room lan");
        alice.send("hello across the LAN");
        bob.expect("Alice: hello across the LAN");
        bob.send("hello back");
        alice.expect("Bob: hello back");
        assert!(
            server.logged(&format!("{bob_addr}:")) > 0,
            "bob's lookup did not reach the server:\n{}",
            server.log()
        );

        alice.send_bytes(b"\x1d\n");
        alice.expect("You left chat room lan");
        bob.send_bytes(b"\x1d\n");
        bob.expect("You left chat room lan");
        bob.run("connect", "Connected");
        bob.run("deleteroom lan", "Room lan deleted.");
        bob.run("getdir", "No rooms yet.");
        bob.send("quit");
        assert_eq!(bob.wait_exit(), Some(0));
        alice.close_stdin();
        assert_eq!(alice.wait_exit(), Some(0));
    });
}
