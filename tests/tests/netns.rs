//! The harness's own isolation: `netns::isolated` gives a test a namespace
//! with only loopback, where multicast loops back and nothing else is seen,
//! and `lan::Lan` gives hosts that reach each other by unicast and
//! multicast, over IPv4 and IPv6.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6, UdpSocket};
use std::time::Duration;

use roomcast_tests::lan::Lan;
use roomcast_tests::{WAIT, netns};
use socket2::{Domain, Protocol, Socket, Type};

fn our_namespace() -> std::path::PathBuf {
    std::fs::read_link("/proc/thread-self/ns/net").expect("read our namespace")
}

/// A UDP socket bound to `port` on every address, receiving with a timeout.
fn receiver(domain: Domain, port: u16) -> UdpSocket {
    let socket = Socket::new(domain, Type::DGRAM, Some(Protocol::UDP)).unwrap();
    socket.set_reuse_address(true).unwrap();
    if domain == Domain::IPV6 {
        socket.set_only_v6(true).unwrap();
    }
    let any: SocketAddr = if domain == Domain::IPV6 {
        SocketAddrV6::new(Ipv6Addr::UNSPECIFIED, port, 0, 0).into()
    } else {
        SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, port).into()
    };
    socket.bind(&any.into()).unwrap();
    socket.set_read_timeout(Some(WAIT)).unwrap();
    socket.into()
}

fn receive(socket: &UdpSocket) -> Vec<u8> {
    let mut buf = [0; 64];
    let n = socket.recv(&mut buf).expect("a datagram");
    buf[..n].to_vec()
}

#[test]
fn isolated_has_only_loopback_and_multicast_loops_back_on_it() {
    let outside = our_namespace();
    netns::isolated(|| {
        assert_ne!(our_namespace(), outside, "still in the machine's namespace");
        assert_eq!(netns::interfaces(), ["lo"]);
        // Threads started here are inside too.
        let inside = our_namespace();
        let theirs = std::thread::spawn(our_namespace).join().unwrap();
        assert_eq!(theirs, inside);

        let group = Ipv4Addr::new(239, 77, 250, 1);
        let rx = receiver(Domain::IPV4, 47950);
        rx.join_multicast_v4(&group, &Ipv4Addr::LOCALHOST).unwrap();
        let tx = UdpSocket::bind("127.0.0.1:0").unwrap();
        tx.set_multicast_ttl_v4(1).unwrap();
        // No interface named: 224.0.0.0/4 is routed on lo.
        tx.send_to(b"looped", SocketAddrV4::new(group, 47950))
            .unwrap();
        assert_eq!(receive(&rx), b"looped");

        // IPv6 works on loopback.
        let out = netns::ip(&["-6", "addr", "show", "dev", "lo"]);
        assert!(String::from_utf8_lossy(&out.stdout).contains("::1/128"));
        let rx6 = UdpSocket::bind("[::1]:0").unwrap();
        UdpSocket::bind("[::1]:0")
            .unwrap()
            .send_to(b"six", rx6.local_addr().unwrap())
            .unwrap();
        rx6.set_read_timeout(Some(WAIT)).unwrap();
        assert_eq!(receive(&rx6), b"six");
    });
}

#[test]
fn a_lan_carries_unicast_and_multicast_over_ipv4_and_ipv6() {
    netns::isolated(|| {
        let lan = Lan::build(&["a", "b"]);
        let (a, b) = (lan.host("a"), lan.host("b"));
        assert_eq!(a.v4, Ipv4Addr::new(198, 18, 0, 1));
        assert_eq!(b.v6, "fd00:18::2".parse::<Ipv6Addr>().unwrap());
        // The hosts see lo and eth0, and the test's namespace is unchanged.
        let links = String::from_utf8_lossy(&a.ip(&["-o", "link", "show"]).stdout).into_owned();
        let names: Vec<&str> = links
            .lines()
            .filter_map(|l| l.split(':').nth(1))
            .map(|n| n.trim().split('@').next().unwrap())
            .collect();
        assert_eq!(names, ["lo", "eth0"], "{links}");
        assert_eq!(netns::interfaces(), ["lo"]);

        let group4 = Ipv4Addr::new(239, 77, 250, 2);
        let group6: Ipv6Addr = "ff15::7701".parse().unwrap();
        let (rx4, rx6, rx_unicast) = b.within(|| {
            let eth0 = if_index("eth0");
            let rx4 = receiver(Domain::IPV4, 47951);
            rx4.join_multicast_v4(&group4, &b.v4).unwrap();
            let rx6 = receiver(Domain::IPV6, 47952);
            rx6.join_multicast_v6(&group6, eth0).unwrap();
            let unicast = UdpSocket::bind(SocketAddrV6::new(b.v6, 47953, 0, 0)).unwrap();
            unicast
                .set_read_timeout(Some(Duration::from_secs(10)))
                .unwrap();
            (rx4, rx6, unicast)
        });
        a.within(|| {
            let tx4 = UdpSocket::bind(SocketAddrV4::new(a.v4, 0)).unwrap();
            tx4.send_to(b"v4 multicast", SocketAddrV4::new(group4, 47951))
                .unwrap();
            let tx6 = UdpSocket::bind(SocketAddrV6::new(a.v6, 0, 0, 0)).unwrap();
            socket2::SockRef::from(&tx6)
                .set_multicast_if_v6(if_index("eth0"))
                .unwrap();
            tx6.send_to(b"v6 multicast", SocketAddrV6::new(group6, 47952, 0, 0))
                .unwrap();
            tx6.send_to(b"v6 unicast", SocketAddrV6::new(b.v6, 47953, 0, 0))
                .unwrap();
        });
        assert_eq!(receive(&rx4), b"v4 multicast");
        assert_eq!(receive(&rx6), b"v6 multicast");
        assert_eq!(receive(&rx_unicast), b"v6 unicast");
    });
}

/// The index of interface `name` in the calling thread's namespace.
fn if_index(name: &str) -> u32 {
    let index = std::fs::read_to_string("/proc/thread-self/net/if_inet6")
        .expect("read if_inet6")
        .lines()
        .find(|l| l.split_whitespace().last() == Some(name))
        .and_then(|l| l.split_whitespace().nth(1))
        .map(|hex| u32::from_str_radix(hex, 16).expect("hex index"));
    index.unwrap_or_else(|| panic!("no interface {name} with IPv6"))
}
