//! The demonstration across a LAN: three hosts (a server and two clients),
//! each a network namespace of its own, wired by veth pairs to a bridge in a
//! fourth ("the switch"), with addresses from 198.18.0.0/24. The test builds
//! it, runs the real binary on it with `ip netns exec`, and tears it down.
//!
//! Needs root, and runs only inside `../shared/sandbox` so nothing it does
//! touches the machine's real network: it creates no interface in the
//! namespace it runs in, only in the ones it makes.

mod client_common;

use std::process::Command;
use std::time::{SystemTime, UNIX_EPOCH};

use client_common::{ClientProcess, eventually, have, is_root, require, require_sandbox};
use roomcast_tests::ServerProcess;

/// The LAN; its namespaces are deleted when it is dropped.
struct Lan {
    prefix: String,
    made: Vec<String>,
}

const SERVER: &str = "198.18.0.1";
const ALICE: &str = "198.18.0.2";
const BOB: &str = "198.18.0.3";

fn ip(args: &[&str]) {
    let out = Command::new("ip").args(args).output().expect("run ip");
    assert!(
        out.status.success(),
        "ip {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

impl Lan {
    fn build() -> Lan {
        let stamp = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let mut lan = Lan {
            prefix: format!("rclan{}x{stamp:x}", std::process::id()),
            made: Vec::new(),
        };
        let switch = lan.add_ns("sw");
        ip(&["-n", &switch, "link", "add", "br0", "type", "bridge"]);
        // Flood multicast to every port, as a plain switch does.
        ip(&[
            "-n",
            &switch,
            "link",
            "set",
            "br0",
            "type",
            "bridge",
            "mcast_snooping",
            "0",
        ]);
        ip(&["-n", &switch, "link", "set", "br0", "up"]);
        for (host, addr) in [("srv", SERVER), ("c1", ALICE), ("c2", BOB)] {
            let ns = lan.add_ns(host);
            let port = format!("v{host}");
            ip(&[
                "-n", &ns, "link", "add", "eth0", "type", "veth", "peer", "name", &port, "netns",
                &switch,
            ]);
            ip(&["-n", &switch, "link", "set", &port, "master", "br0"]);
            ip(&["-n", &switch, "link", "set", &port, "up"]);
            ip(&[
                "-n",
                &ns,
                "addr",
                "add",
                &format!("{addr}/24"),
                "dev",
                "eth0",
            ]);
            ip(&["-n", &ns, "link", "set", "eth0", "up"]);
            ip(&["-n", &ns, "link", "set", "lo", "up"]);
        }
        // Bob's host routes multicast to its LAN, so his client can leave
        // the interface to the system's choice.
        ip(&[
            "-n",
            &lan.ns("c2"),
            "route",
            "add",
            "224.0.0.0/4",
            "dev",
            "eth0",
        ]);
        lan
    }

    fn ns(&self, host: &str) -> String {
        format!("{}-{host}", self.prefix)
    }

    fn add_ns(&mut self, host: &str) -> String {
        let name = self.ns(host);
        ip(&["netns", "add", &name]);
        self.made.push(name.clone());
        name
    }
}

impl Drop for Lan {
    fn drop(&mut self) {
        for ns in self.made.iter().rev() {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
    }
}

#[test]
fn chat_across_a_lan_of_namespaces() {
    if !require(is_root(), "building network namespaces needs root")
        || !require(have("ip"), "the ip command (iproute2) is not installed")
        || !require_sandbox()
    {
        return;
    }
    // Declared first, dropped last: after every process in it has ended.
    let lan = Lan::build();
    let server = ServerProcess::start_with(
        &["ip", "netns", "exec", &lan.ns("srv")],
        &["--bind", SERVER, "--port", "5577"],
    );
    let to_server = format!("{SERVER}:5577");

    let alice_ns = lan.ns("c1");
    let mut alice = ClientProcess::start_with(
        "alice",
        &["ip", "netns", "exec", &alice_ns],
        &["--server", &to_server, "--iface", ALICE],
    );
    let bob_ns = lan.ns("c2");
    let mut bob = ClientProcess::start_with(
        "bob",
        &["ip", "netns", "exec", &bob_ns],
        &["--server", &to_server],
    );

    alice.run(
        "connect",
        &format!("Connected to the directory server at {to_server}"),
    );
    eventually("the server to log alice's host", || {
        server.logged(&format!("{ALICE}:")) > 0
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
        server.logged(&format!("{BOB}:")) > 0,
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
}
