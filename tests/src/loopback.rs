//! Multicast on loopback for tests that watch or forge a room's traffic, as
//! any host on the LAN could. Use inside [`crate::netns::isolated`].

use std::net::{Ipv4Addr, SocketAddrV4, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use socket2::{Domain, Protocol, Socket, Type};

/// A member of `group`:`port` on loopback, keeping the datagrams it
/// receives that `keep` accepts (a thread takes them as they come, until
/// the capture is dropped).
pub struct Capture {
    kept: Arc<Mutex<Vec<Vec<u8>>>>,
    stop: Arc<AtomicBool>,
}

impl Capture {
    /// Joins `group` on loopback and starts keeping what `keep` accepts.
    pub fn start(group: Ipv4Addr, port: u16, keep: fn(&[u8]) -> bool) -> Capture {
        let socket = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP)).unwrap();
        socket.set_reuse_address(true).unwrap();
        socket.set_reuse_port(true).unwrap();
        socket.set_multicast_all_v4(false).unwrap();
        let _ = socket.set_recv_buffer_size(4 << 20);
        socket.bind(&SocketAddrV4::new(group, port).into()).unwrap();
        socket
            .join_multicast_v4(&group, &Ipv4Addr::LOCALHOST)
            .unwrap();
        socket
            .set_read_timeout(Some(Duration::from_millis(50)))
            .unwrap();
        let socket: UdpSocket = socket.into();
        let kept = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (sink, done) = (kept.clone(), stop.clone());
        thread::spawn(move || {
            let mut buf = vec![0; 65536];
            while !done.load(Ordering::SeqCst) {
                if let Ok(n) = socket.recv(&mut buf)
                    && keep(&buf[..n])
                {
                    sink.lock().unwrap().push(buf[..n].to_vec());
                }
            }
        });
        Capture { kept, stop }
    }

    /// Every datagram kept so far, in order of arrival.
    pub fn datagrams(&self) -> Vec<Vec<u8>> {
        self.kept.lock().unwrap().clone()
    }

    /// Waits up to `within` for a datagram equal to `wanted`.
    pub fn receive(&self, wanted: &[u8], within: Duration) -> bool {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if self.kept.lock().unwrap().iter().any(|d| d == wanted) {
                return true;
            }
            thread::sleep(Duration::from_millis(5));
        }
        false
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

/// Keeps every datagram (for [`Capture::start`]).
pub fn everything(_: &[u8]) -> bool {
    true
}

/// A socket that sends to groups on loopback with TTL 1.
pub fn sender() -> UdpSocket {
    let socket = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP)).unwrap();
    socket.set_multicast_if_v4(&Ipv4Addr::LOCALHOST).unwrap();
    socket.set_multicast_ttl_v4(1).unwrap();
    socket.set_multicast_loop_v4(true).unwrap();
    socket.into()
}
