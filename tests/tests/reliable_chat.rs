//! The room protocol on real sockets: clients of the real binary on a LAN
//! of network namespaces (`roomcast_tests::lan::Lan`), with a lossy network
//! made by nftables rules inside each receiving host, and a plain client (a
//! raw UDP socket speaking `Name: text`) beside them.

mod client_common;

use std::net::{Ipv4Addr, SocketAddrV4, UdpSocket};
use std::process::Command;
use std::time::{Duration, Instant};

use client_common::{ClientProcess, eventually};
use roomcast_tests::lan::{Host, Lan};
use roomcast_tests::{ServerProcess, netns};

/// Lines Ann's script pipes into the room at once in the lossy test: a
/// member sends at most `SEND_RATE` (10) messages a second, so they take a
/// minute to go out; the others wait in her client's send queue, and her
/// client holds the rest of its input meanwhile.
const ANN_LINES: usize = 600;

/// Lines each of the others pipes at once, at the same time.
const OTHER_LINES: usize = 60;

/// How long a whole run may take to deliver everything: Ann's lines at the
/// sender's pace (60 s), and time to repair the last ones.
const DELIVERY_WAIT: Duration = Duration::from_secs(120);

/// Drops one datagram in ten to the room's two ports, at `host`'s input.
fn lossy(host: &Host, port: u16) {
    let ports = format!("{{ {}, {} }}", port, port + 1);
    for rule in [
        "add table inet loss".to_string(),
        "add chain inet loss in { type filter hook input priority 0; }".to_string(),
        format!("add rule inet loss in udp dport {ports} numgen random mod 10 0 counter drop"),
    ] {
        let out = host
            .command("nft")
            .args(rule.split(' '))
            .output()
            .expect("run nft (install nftables)");
        assert!(
            out.status.success(),
            "nft {rule}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// How many datagrams the loss rule of `host` dropped.
fn dropped(host: &Host) -> u64 {
    let out = host
        .command("nft")
        .args(["list", "chain", "inet", "loss", "in"])
        .output()
        .expect("run nft");
    let text = String::from_utf8_lossy(&out.stdout);
    text.split("packets ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no counter in: {text}"))
}

/// Starts a server on `lan`'s host `srv` with room `name` on `group`:`port`,
/// made by a short-lived client; the address clients use.
fn server_with_room(lan: &Lan, name: &str, group: Ipv4Addr, port: u16) -> (ServerProcess, String) {
    let srv = lan.host("srv");
    let addr = srv.v4.to_string();
    let server = ServerProcess::start_with(&srv.exec(), &["--bind", &addr, "--port", "5577"]);
    let to_server = format!("{addr}:5577");
    let mut maker = ClientProcess::start_with("maker", &srv.exec(), &["--server", &to_server]);
    maker.run("connect", "Connected");
    maker.run(
        &format!("makeroom {name} {group} {port}"),
        &format!("Room {name} created"),
    );
    maker.send("quit");
    assert_eq!(maker.wait_exit(), Some(0));
    (server, to_server)
}

fn client(lan: &Lan, name: &str, to_server: &str) -> ClientProcess {
    let host = lan.host(name);
    let iface = host.v4.to_string();
    ClientProcess::start_with(
        name,
        &host.exec(),
        &["--server", to_server, "--iface", &iface, "--name", name],
    )
}

/// Waits until `c` has printed a line containing `needle` (in any order
/// with others).
fn printed(c: &ClientProcess, needle: &str) {
    eventually(&format!("{needle:?}"), || {
        c.stdout.all().iter().any(|l| l.contains(needle))
    });
}

/// The texts of `sender`'s messages in `lines`, in order (`Sender: text`).
fn texts_from(lines: &[String], sender: &str) -> Vec<String> {
    let prefix = format!("{sender}: ");
    lines
        .iter()
        .filter_map(|l| l.find(&prefix).map(|i| l[i + prefix.len()..].to_string()))
        .filter(|t| t.starts_with("m "))
        .collect()
}

#[test]
fn every_message_arrives_once_and_in_order_over_a_lossy_lan() {
    netns::isolated(|| {
        let lan = Lan::build(&["srv", "Ann", "Bob", "Cat", "Dan"]);
        let (group, port) = (Ipv4Addr::new(239, 77, 3, 1), 47301);
        let (_server, to_server) = server_with_room(&lan, "lossy", group, port);
        let names = ["Ann", "Bob", "Cat", "Dan"];
        let mut clients: Vec<ClientProcess> =
            names.iter().map(|n| client(&lan, n, &to_server)).collect();
        for name in names {
            lossy(lan.host(name), port);
        }
        for c in &mut clients {
            c.run("chat lossy", "Entering chat room lossy");
        }
        // Everyone hears of everyone (heartbeats are repeated, so loss only
        // delays this).
        for (i, c) in clients.iter_mut().enumerate() {
            for (j, other) in names.iter().enumerate() {
                if i != j {
                    printed(c, &format!("{other} joined"));
                }
            }
        }
        // Each pipes its whole block at once (no pacing by the test), Ann
        // the most, and Ann's input then ends: her client quits once her
        // lines are out.
        let count = |name: &str| {
            if name == "Ann" {
                ANN_LINES
            } else {
                OTHER_LINES
            }
        };
        let expected = |name: &str| -> Vec<String> {
            (0..count(name))
                .map(|k| format!("m {name} {k:04}"))
                .collect()
        };
        for (c, name) in clients.iter_mut().zip(names) {
            let block: String = expected(name).iter().map(|l| format!("{l}\n")).collect();
            c.send_bytes(block.as_bytes());
        }
        clients[0].close_stdin();
        let deadline = Instant::now() + DELIVERY_WAIT;
        for (i, c) in clients.iter().enumerate() {
            for (j, sender) in names.iter().enumerate() {
                if i == j {
                    continue;
                }
                loop {
                    let got = texts_from(&c.stdout.all(), sender);
                    if got.len() >= count(sender) {
                        assert_eq!(
                            got,
                            expected(sender),
                            "{} got {sender}'s messages wrong",
                            names[i]
                        );
                        break;
                    }
                    assert!(
                        Instant::now() < deadline,
                        "{} got {} of {sender}'s {} messages; it printed:\n{}",
                        names[i],
                        got.len(),
                        count(sender),
                        c.stdout.all().join("\n")
                    );
                    std::thread::sleep(Duration::from_millis(100));
                }
            }
            let all = c.stdout.all();
            assert!(
                !all.iter()
                    .any(|l| l.contains("could not be recovered") || l.contains("not sent")),
                "{} reported a loss:\n{}",
                names[i],
                all.join("\n")
            );
        }
        // Ann's client said it would quit once her lines were out, and did.
        printed(&clients[0], "of your lines are still going out");
        assert_eq!(clients[0].wait_exit(), Some(0));
        // The network did lose datagrams (about one in ten) all along.
        for name in names {
            let n = dropped(lan.host(name));
            assert!(n > 50, "only {n} datagrams dropped at {name}");
        }
        // Nothing more turns up later (no duplicate after the last one), and
        // no one is shown its own messages coming back.
        std::thread::sleep(Duration::from_millis(500));
        for (i, c) in clients.iter().enumerate() {
            for (j, sender) in names.iter().enumerate() {
                let expected = if i == j { 0 } else { count(sender) };
                assert_eq!(texts_from(&c.stdout.all(), sender).len(), expected);
            }
        }
        for c in &mut clients[1..] {
            c.send("/leave");
            c.expect("You left chat room lossy");
        }
    });
}

/// A raw UDP socket in `host`, member of the room's group on its plain port.
fn plain_socket(host: &Host, group: Ipv4Addr, port: u16) -> UdpSocket {
    let iface = host.v4;
    host.within(move || {
        let socket = socket2::Socket::new(
            socket2::Domain::IPV4,
            socket2::Type::DGRAM,
            Some(socket2::Protocol::UDP),
        )
        .unwrap();
        socket.set_reuse_address(true).unwrap();
        socket.bind(&SocketAddrV4::new(group, port).into()).unwrap();
        socket.join_multicast_v4(&group, &iface).unwrap();
        socket.set_multicast_if_v4(&iface).unwrap();
        socket
            .set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        socket.into()
    })
}

/// Everything `socket` receives for `wait`.
fn receive_all(socket: &UdpSocket, wait: Duration) -> Vec<Vec<u8>> {
    let deadline = Instant::now() + wait;
    let mut got = Vec::new();
    let mut buf = [0u8; 2048];
    while Instant::now() < deadline {
        if let Ok((n, _)) = socket.recv_from(&mut buf) {
            got.push(buf[..n].to_vec());
        }
    }
    got
}

#[test]
fn plain_clients_history_who_and_a_killed_member() {
    netns::isolated(|| {
        let lan = Lan::build(&["srv", "Ann", "Bob", "Cat", "Dan"]);
        let (group, port) = (Ipv4Addr::new(239, 77, 3, 2), 47311);
        let (_server, to_server) = server_with_room(&lan, "mixed", group, port);
        let dan = plain_socket(lan.host("Dan"), group, port);
        let mut ann = client(&lan, "Ann", &to_server);
        let mut bob = client(&lan, "Bob", &to_server);
        ann.run("chat mixed", "Entering chat room mixed");
        bob.run("chat mixed", "Entering chat room mixed");
        printed(&ann, "Bob joined");
        printed(&bob, "Ann joined");

        // Roomcast messages reach the plain client once each, byte for byte.
        ann.send("hello from Ann");
        bob.expect("Ann: hello from Ann");
        bob.send("hello from Bob");
        ann.expect("Bob: hello from Bob");
        let got = receive_all(&dan, Duration::from_millis(800));
        assert_eq!(
            got,
            [
                b"Ann: hello from Ann".to_vec(),
                b"Bob: hello from Bob".to_vec()
            ],
            "the plain client got {:?}",
            got.iter()
                .map(|d| String::from_utf8_lossy(d).into_owned())
                .collect::<Vec<_>>()
        );

        // The plain client is heard, once, and listed.
        dan.send_to(b"Dan: plain hello", SocketAddrV4::new(group, port))
            .unwrap();
        ann.expect("Dan: plain hello");
        bob.expect("Dan: plain hello");
        ann.send("/who");
        ann.expect("In room mixed (3 here)");
        ann.expect("Ann (you)");
        let who: Vec<String> = {
            eventually("the member list", || {
                ann.stdout
                    .all()
                    .iter()
                    .any(|l| l.contains("Dan (plain client)"))
            });
            ann.stdout.all()
        };
        let bob_addr = lan.host("Bob").v4.to_string();
        assert!(
            who.iter()
                .any(|l| l.trim_start().starts_with("Bob ") && l.contains(&bob_addr)),
            "{}",
            who.join("\n")
        );
        let dan_addr = lan.host("Dan").v4.to_string();
        assert!(
            who.iter()
                .any(|l| l.contains("Dan (plain client)") && l.contains(&dan_addr)),
            "{}",
            who.join("\n")
        );

        // A late joiner gets what was said, as history (what is older than
        // AGE_SLACK, 2 s, when it enters).
        std::thread::sleep(Duration::from_millis(2500));
        let mut cat = client(&lan, "Cat", &to_server);
        cat.run("chat mixed", "Entering chat room mixed");
        printed(&cat, "] Ann: hello from Ann");
        let all = cat.stdout.all();
        let line = all
            .iter()
            .find(|l| l.contains("Ann: hello from Ann"))
            .unwrap();
        assert!(line.contains("[history "), "{line:?}");
        eventually("Cat to get Bob's message as history", || {
            cat.stdout
                .all()
                .iter()
                .any(|l| l.contains("[history ") && l.contains("Bob: hello from Bob"))
        });
        assert_eq!(
            cat.stdout
                .all()
                .iter()
                .filter(|l| l.contains("Ann: hello from Ann"))
                .count(),
            1
        );

        // Bob is killed: the others learn it once he has been silent long
        // enough.
        let status = Command::new("kill")
            .args(["-KILL", &bob.pid().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        let deadline = Instant::now() + Duration::from_secs(25);
        while !ann
            .stdout
            .all()
            .iter()
            .any(|l| l.contains("Bob left (not heard from for 15 s)"))
        {
            assert!(
                Instant::now() < deadline,
                "Ann was not told Bob left:\n{}",
                ann.stdout.all().join("\n")
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        ann.send("/leave");
        ann.expect("You left chat room mixed");
        printed(&cat, "Ann left");
    });
}
