//! Nothing to configure: `makeroom <name>` alone gives a room (the server
//! picks its group and port), IPv6 rooms, interfaces by name, a full pool.
//! Multicast runs on a LAN of namespaces (`roomcast_tests::lan::Lan`):
//! IPv6 multicast does not loop back on `lo` here, it does cross the LAN.

mod client_common;

use std::process::Command;

use client_common::{ClientProcess, eventually};
use roomcast_tests::lan::Lan;
use roomcast_tests::{ServerProcess, netns, roomcast_bin, without_token};

#[test]
fn makeroom_with_a_name_alone_gives_a_room_two_hosts_chat_in() {
    netns::isolated(|| {
        let lan = Lan::build(&["srv", "alice", "bob"]);
        let (srv, alice_host, bob_host) = (lan.host("srv"), lan.host("alice"), lan.host("bob"));
        // Dual-stack: one listener serves IPv4 and IPv6 clients.
        let server = ServerProcess::start_with(
            &srv.exec(),
            &["--bind", "::", "--port", "5577", "--no-announce"],
        );
        let over_v4 = format!("{}:5577", srv.v4);
        let over_v6 = format!("[{}]:5577", srv.v6);

        // Alice reaches the server over IPv4 and picks her interface by name.
        let mut alice = ClientProcess::start_with(
            "alice",
            &alice_host.exec(),
            &["--server", &over_v4, "--iface", "eth0", "--name", "Alice"],
        );
        // Bob reaches it over IPv6 and leaves the interface to the system.
        let mut bob = ClientProcess::start_with(
            "bob",
            &bob_host.exec(),
            &["--server", &over_v6, "--name", "Bob"],
        );
        alice.run("connect", "Connected to the directory server");
        let made = alice.run(
            "makeroom lobby",
            "Room lobby created: multicast group 239.255.",
        );
        assert!(made.contains(" port 4"), "{made}");
        alice.run("bye", "Disconnected");
        // IPv4 clients of the dual-stack listener are logged as IPv4.
        eventually("the server to log alice's IPv4 address", || {
            server.logged(&format!("client {}:", alice_host.v4)) > 0
        });

        alice.run("chat lobby", "Entering chat room lobby");
        bob.run("chat lobby", "Entering chat room lobby");
        eventually("the server to log bob's IPv6 address", || {
            server.logged(&format!("client [{}]:", bob_host.v6)) > 0
        });
        alice.send("made with no address at all");
        bob.expect("Alice: made with no address at all");
        bob.send("and found");
        alice.expect("Bob: and found");

        alice.send_bytes(b"\x1d\n");
        alice.expect("You left chat room lobby");
        bob.send_bytes(b"\x1d\n");
        bob.expect("You left chat room lobby");
        alice.send("quit");
        bob.send("quit");
        assert_eq!(alice.wait_exit(), Some(0));
        assert_eq!(bob.wait_exit(), Some(0));
    });
}

#[test]
fn an_ipv6_room_carries_chat_between_hosts() {
    netns::isolated(|| {
        let lan = Lan::build(&["srv", "alice", "bob"]);
        let (srv, alice_host, bob_host) = (lan.host("srv"), lan.host("alice"), lan.host("bob"));
        // The pool is IPv6 only: `makeroom six` gets an ff15:: group.
        let _server = ServerProcess::start_with(
            &srv.exec(),
            &[
                "--bind",
                &srv.v4.to_string(),
                "--port",
                "5577",
                "--no-announce",
                "--group-pool",
                "ff15::/16",
            ],
        );
        let to_server = format!("{}:5577", srv.v4);
        let bob_v6 = bob_host.v6.to_string();
        let mut alice = ClientProcess::start_with(
            "alice",
            &alice_host.exec(),
            &["--server", &to_server, "--iface", "eth0", "--name", "Alice"],
        );
        // Bob names his interface by its IPv6 address.
        let mut bob = ClientProcess::start_with(
            "bob",
            &bob_host.exec(),
            &["--server", &to_server, "--iface", &bob_v6, "--name", "Bob"],
        );
        alice.run("connect", "Connected");
        alice.run("makeroom six", "Room six created: multicast group ff15:");
        alice.run(
            "makeroom fixed ff18::77 47300",
            "Room fixed created: multicast group ff18::77 port 47300",
        );
        let listing = alice.run("getdir", "fixed");
        assert!(listing.contains("ff18::77"), "{listing}");
        alice.run("bye", "Disconnected");

        for room in ["six", "fixed"] {
            alice.run(
                &format!("chat {room}"),
                &format!("Entering chat room {room}"),
            );
            bob.run(
                &format!("chat {room}"),
                &format!("Entering chat room {room}"),
            );
            alice.send(&format!("over IPv6 in {room}"));
            bob.expect(&format!("Alice: over IPv6 in {room}"));
            bob.send(&format!("back in {room}"));
            alice.expect(&format!("Bob: back in {room}"));
            alice.send_bytes(b"\x1d\n");
            alice.expect(&format!("You left chat room {room}"));
            bob.send_bytes(b"\x1d\n");
            bob.expect(&format!("You left chat room {room}"));
        }

        // An interface that does not exist: the join fails, and the client
        // lists the interfaces that carry multicast and how to pick one.
        let mut carol = ClientProcess::start_with(
            "carol",
            &alice_host.exec(),
            &["--server", &to_server, "--iface", "eth9"],
        );
        let line = carol.run("chat six", "Could not join chat room six");
        assert!(line.contains("no interface is named 'eth9'"), "{line}");
        assert!(
            line.contains(&format!(
                "interfaces that carry multicast: eth0 ({}",
                alice_host.v4
            )),
            "{line}"
        );
        assert!(line.contains("pick one with --iface NAME"), "{line}");
        assert!(
            !line.contains("lo ("),
            "loopback carries no multicast here: {line}"
        );

        for mut client in [alice, bob, carol] {
            client.send("quit");
            assert_eq!(client.wait_exit(), Some(0));
        }
    });
}

#[test]
fn a_full_pool_is_refused_cleanly() {
    let server = ServerProcess::start(&[
        "--group-pool",
        "239.255.9.9/32",
        "--port-range",
        "5000-5001",
    ]);
    let mut crdp = server.connect();
    assert_eq!(
        without_token(&crdp.ask("makeroom a")),
        "OK created a 239.255.9.9 5000"
    );
    let full = crdp.ask("makeroom b");
    assert!(
        full.starts_with("ERR full no free group/port in the pool;"),
        "{full}"
    );
    // The port after a room's is reserved: an explicit address is refused
    // there too.
    let reserved = crdp.ask("makeroom c 239.255.9.9 5001");
    assert!(
        reserved.starts_with("ERR inuse room 'a' uses 239.255.9.9 ports 5000 and 5001"),
        "{reserved}"
    );
    assert_eq!(
        without_token(&crdp.ask("makeroom c 239.255.9.9 5002")),
        "OK created c 239.255.9.9 5002"
    );
    assert_eq!(crdp.ask("deleteroom a"), "OK deleted a");
    assert_eq!(
        without_token(&crdp.ask("makeroom b")),
        "OK created b 239.255.9.9 5000"
    );
    assert!(
        server.logged("makeroom without an address picks from 239.255.9.9/32 ports 5000-5001") > 0
    );
}

#[test]
fn a_bad_pool_stops_the_server_with_the_reason() {
    for (args, reason) in [
        (
            ["--group-pool", "224.0.0.0/8"].as_slice(),
            "inside 239.0.0.0/8, ff14::/16",
        ),
        (
            ["--group-pool", "ff02::/16"].as_slice(),
            "inside 239.0.0.0/8, ff14::/16",
        ),
        (
            ["--port-range", "5000-5000"].as_slice(),
            "FIRST-LAST with 1024 <= FIRST < LAST",
        ),
        (
            [
                "--group-pool",
                "239.255.0.0/16",
                "--group-pool",
                "239.255.3.0/24",
            ]
            .as_slice(),
            "overlap",
        ),
    ] {
        let out = Command::new(roomcast_bin())
            .args([
                "server",
                "--bind",
                "127.0.0.1",
                "--port",
                "0",
                "--no-announce",
            ])
            .args(args)
            .output()
            .unwrap();
        assert!(!out.status.success(), "{args:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(reason), "{args:?}: {stderr}");
    }
}

#[test]
fn a_host_with_two_interfaces_on_the_lan_shows_each_message_once() {
    netns::isolated(|| {
        let lan = Lan::build(&["srv", "alice", "bob"]);
        let (srv, alice_host, bob_host) = (lan.host("srv"), lan.host("alice"), lan.host("bob"));
        // A second card for alice, on the same switch.
        let switch_pid = lan.switch.pid().to_string();
        alice_host.ip(&[
            "link",
            "add",
            "eth1",
            "type",
            "veth",
            "peer",
            "name",
            "q1",
            "netns",
            &switch_pid,
        ]);
        lan.switch.ip(&["link", "set", "q1", "master", "br0"]);
        lan.switch.ip(&["link", "set", "q1", "up"]);
        alice_host.ip(&["addr", "add", "198.18.0.100/24", "dev", "eth1"]);
        alice_host.ip(&[
            "-6",
            "addr",
            "add",
            "fd00:18::100/64",
            "dev",
            "eth1",
            "nodad",
        ]);
        alice_host.ip(&["link", "set", "eth1", "up"]);

        let _server = ServerProcess::start_with(
            &srv.exec(),
            &[
                "--bind",
                &srv.v4.to_string(),
                "--port",
                "5577",
                "--no-announce",
            ],
        );
        let to_server = format!("{}:5577", srv.v4);
        let mut alice = ClientProcess::start_with(
            "alice",
            &alice_host.exec(),
            &["--server", &to_server, "--name", "Alice"],
        );
        let mut bob = ClientProcess::start_with(
            "bob",
            &bob_host.exec(),
            &["--server", &to_server, "--name", "Bob"],
        );
        alice.run("connect", "Connected");
        alice.run("makeroom four", "Room four created");
        alice.run("makeroom six ff15::46 47400", "Room six created");
        alice.run("bye", "Disconnected");
        for room in ["four", "six"] {
            alice.run(
                &format!("chat {room}"),
                &format!("Entering chat room {room}"),
            );
            bob.run(
                &format!("chat {room}"),
                &format!("Entering chat room {room}"),
            );
            bob.send(&format!("first in {room}"));
            alice.expect(&format!("Bob: first in {room}"));
            bob.send(&format!("second in {room}"));
            alice.expect(&format!("Bob: second in {room}"));
            // Both datagrams reached alice's host on both cards; the first
            // would have been shown twice before the second if the client
            // had joined on both.
            let seen = alice.stdout.count(&format!("Bob: first in {room}"));
            assert_eq!(seen, 1, "{room}");
            alice.send_bytes(b"\x1d\n");
            alice.expect(&format!("You left chat room {room}"));
            bob.send_bytes(b"\x1d\n");
            bob.expect(&format!("You left chat room {room}"));
        }
        for mut client in [alice, bob] {
            client.send("quit");
            assert_eq!(client.wait_exit(), Some(0));
        }
    });
}
