//! Sockets of the chat client: a nonblocking TCP connect, and a room's
//! multicast sockets (receiving sockets that get the room's group and its
//! plain port, or its control port, only; one sending socket with the
//! multicast interface, TTL and loopback set, for both ports).

use std::io;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, TcpStream, UdpSocket};

use roomcast_core::ConnectFailure;
use socket2::{Domain, Protocol, Socket, Type};

use crate::platform::McastReceiver;

/// Starts a nonblocking TCP connect to `addr`. The socket turns writable
/// when the attempt ends; then call [`finish_connect`].
pub fn start_connect(addr: SocketAddr) -> io::Result<Socket> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_nonblocking(true)?;
    socket.set_tcp_nodelay(true)?;
    match socket.connect(&addr.into()) {
        Ok(()) => Ok(socket),
        Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => Ok(socket),
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(socket),
        Err(e) => Err(e),
    }
}

/// Whether the connect started by [`start_connect`] worked; the stream if so.
pub fn finish_connect(socket: Socket) -> io::Result<TcpStream> {
    if let Some(error) = socket.take_error()? {
        return Err(error);
    }
    socket.peer_addr()?;
    Ok(socket.into())
}

/// What a failed connect means for the user.
pub fn connect_failure(error: &io::Error) -> ConnectFailure {
    match error.kind() {
        io::ErrorKind::ConnectionRefused => ConnectFailure::Refused,
        io::ErrorKind::TimedOut => ConnectFailure::TimedOut,
        io::ErrorKind::NetworkUnreachable | io::ErrorKind::HostUnreachable => {
            ConnectFailure::Unreachable
        }
        _ => ConnectFailure::Other,
    }
}

/// The receive buffer asked for on a chat socket. A burst of messages waits
/// here while the client is busy (drawing the screen, say); the kernel's
/// default (about 200 KiB) lost messages in the chat benchmark at rates the
/// sender could reach, 1 MiB lost none (BENCHMARKS.md). The kernel may
/// grant less (net.core.rmem_max); that is not an error.
const CHAT_RECV_BUFFER: usize = 1 << 20;

/// A joined chat room: where its datagrams arrive and how ours leave.
pub struct Group {
    /// Bound to the group's port (and, where that filters, its address),
    /// member of the group; register it with the poller, read it with
    /// [`Group::recv_from`].
    pub recv: McastReceiver,
    /// The same on the room's control port (the room protocol's frames),
    /// if the room has one (port 65535 has none).
    pub control: Option<McastReceiver>,
    send: UdpSocket,
    group: Ipv4Addr,
    iface: Ipv4Addr,
    dest: SocketAddrV4,
    control_dest: Option<SocketAddrV4>,
}

impl Group {
    /// Joins `group` on `iface` (`None`: the system's choice) and prepares
    /// to send to it with `ttl`.
    ///
    /// The receiving socket shares the port, so several clients on one
    /// host share the room, and gets only this group's datagrams, never
    /// those of a room on another group with the same port (how each
    /// system is made to do that: [`McastReceiver`]). Loopback is on:
    /// other clients on this host hear us.
    pub fn join(
        group: Ipv4Addr,
        port: u16,
        iface: Option<Ipv4Addr>,
        ttl: u32,
    ) -> io::Result<Group> {
        let iface_addr = iface.unwrap_or(Ipv4Addr::UNSPECIFIED);
        let recv = McastReceiver::join(group, port, iface_addr, CHAT_RECV_BUFFER)?;
        let control_port = roomcast_core::chat::control_port(port);
        let control = match control_port {
            Some(cport) => match McastReceiver::join(group, cport, iface_addr, CHAT_RECV_BUFFER) {
                Ok(control) => Some(control),
                Err(e) => {
                    recv.leave(group, iface_addr);
                    return Err(io::Error::new(
                        e.kind(),
                        format!("the room's control port {cport}: {e}"),
                    ));
                }
            },
            None => None,
        };

        let send = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP))?;
        if let Some(iface) = iface {
            send.set_multicast_if_v4(&iface)?;
        }
        send.set_multicast_ttl_v4(ttl)?;
        send.set_multicast_loop_v4(true)?;
        send.set_nonblocking(true)?;
        Ok(Group {
            recv,
            control,
            send: send.into(),
            group,
            iface: iface_addr,
            dest: SocketAddrV4::new(group, port),
            control_dest: control_port.map(|p| SocketAddrV4::new(group, p)),
        })
    }

    /// Sends one chat datagram to the room (its plain port).
    pub fn send(&self, payload: &[u8]) -> io::Result<()> {
        self.send.send_to(payload, self.dest).map(|_| ())
    }

    /// Sends one room-protocol frame to the room's control port, from the
    /// same socket as [`Group::send`]: receivers tell a member's plain
    /// copies by that one source address.
    pub fn send_control(&self, payload: &[u8]) -> io::Result<()> {
        match self.control_dest {
            Some(dest) => self.send.send_to(payload, dest).map(|_| ()),
            None => Ok(()),
        }
    }

    /// Takes one datagram of the room's control port, as
    /// [`Group::recv_from`]; `WouldBlock` if the room has none.
    pub fn recv_control(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        match &self.control {
            Some(control) => control.recv_from(buf),
            None => Err(io::ErrorKind::WouldBlock.into()),
        }
    }

    /// Takes one datagram of the room: its length in `buf` and its
    /// sender. An error of kind `Interrupted` means a datagram was not for
    /// this room (dropped): read again.
    pub fn recv_from(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        self.recv.recv_from(buf)
    }

    /// Leaves the group; the sockets close when this is dropped.
    pub fn leave(self) {
        self.recv.leave(self.group, self.iface);
        if let Some(control) = &self.control {
            control.leave(self.group, self.iface);
        }
    }
}
