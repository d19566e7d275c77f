//! Sockets of the chat client: a nonblocking TCP connect, and a room's
//! multicast sockets (receiving sockets that get the room's group and its
//! plain port, or its control port, only; one sending socket with the
//! multicast interface, TTL and loopback set, for both ports).

use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpStream, UdpSocket};

use roomcast_core::ConnectFailure;
use socket2::{Domain, Protocol, Socket, Type};

use crate::platform::{self, McastIface, McastReceiver};

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

/// The network interface to chat on (`--iface`): a name (`eth0`) or an
/// address of the interface (IPv4 or IPv6).
#[derive(Clone, Debug, PartialEq, Eq, serde::Deserialize)]
#[serde(try_from = "String")]
pub enum Iface {
    /// An interface name.
    Name(String),
    /// An address of the interface.
    Addr(IpAddr),
}

impl std::str::FromStr for Iface {
    type Err = String;

    fn from_str(text: &str) -> Result<Iface, String> {
        if let Ok(addr) = text.parse::<IpAddr>() {
            return Ok(Iface::Addr(addr));
        }
        // Interface names are short (IFNAMSIZ is 16 on Linux; Windows
        // friendly names are longer) and printable.
        if text.is_empty() || text.len() > 256 || text.chars().any(char::is_control) {
            return Err(format!(
                "'{}' is not an interface name or address; try eth0 or 192.168.1.20",
                text.escape_debug()
            ));
        }
        Ok(Iface::Name(text.to_owned()))
    }
}

impl TryFrom<String> for Iface {
    type Error = String;

    fn try_from(text: String) -> Result<Iface, String> {
        text.parse()
    }
}

impl std::fmt::Display for Iface {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Iface::Name(name) => f.write_str(name),
            Iface::Addr(addr) => write!(f, "{addr}"),
        }
    }
}

/// How `iface` is named to join `group`: an IPv4 group needs an IPv4
/// address of the interface, an IPv6 group its index. An IPv4 address given
/// for an IPv4 group is used as it is (the system refuses it if no
/// interface has it); anything else is looked up among the interfaces.
pub fn resolve_iface(iface: Option<&Iface>, group: IpAddr) -> io::Result<McastIface> {
    let Some(iface) = iface else {
        return Ok(McastIface::ANY);
    };
    if let (Iface::Addr(IpAddr::V4(v4)), IpAddr::V4(_)) = (iface, group) {
        return Ok(McastIface { v4: *v4, index: 0 });
    }
    let found = platform::interfaces()?.into_iter().find(|i| match iface {
        Iface::Name(name) => i.name == *name,
        Iface::Addr(addr) => i.addrs.contains(addr),
    });
    let Some(found) = found else {
        let what = match iface {
            Iface::Name(name) => format!("no interface is named '{}'", name.escape_debug()),
            Iface::Addr(addr) => format!("no interface has the address {addr}"),
        };
        return Err(io::Error::new(io::ErrorKind::NotFound, what));
    };
    let v4 = found.addrs.iter().find_map(|a| match a {
        IpAddr::V4(v4) => Some(*v4),
        IpAddr::V6(_) => None,
    });
    match group {
        IpAddr::V4(_) => match v4 {
            Some(v4) => Ok(McastIface { v4, index: 0 }),
            None => Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!("interface {} has no IPv4 address", found.name),
            )),
        },
        IpAddr::V6(_) => Ok(McastIface {
            v4: Ipv4Addr::UNSPECIFIED,
            index: found.index,
        }),
    }
}

/// The interfaces that carry multicast, as a person reads them:
/// `eth0 (192.168.1.20, fe80::1), wlan0 (10.0.0.5)`; or why there are none.
pub fn multicast_interfaces() -> String {
    match platform::interfaces() {
        Ok(all) => {
            let list: Vec<String> = all
                .iter()
                .filter(|i| i.multicast)
                .map(|i| {
                    let addrs: Vec<String> = i.addrs.iter().map(IpAddr::to_string).collect();
                    format!("{} ({})", i.name, addrs.join(", "))
                })
                .collect();
            if list.is_empty() {
                "this host has no interface that carries multicast".to_owned()
            } else {
                format!(
                    "interfaces that carry multicast: {}; pick one with --iface NAME",
                    list.join(", ")
                )
            }
        }
        Err(e) => format!("the interfaces could not be listed: {e}"),
    }
}

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
    group: IpAddr,
    iface: McastIface,
    dest: SocketAddr,
    control_dest: Option<SocketAddr>,
}

impl Group {
    /// Joins `group` (IPv4 or IPv6) on `iface` (`None`: the system's
    /// choice) and prepares to send to it with `ttl` (hop limit for IPv6).
    ///
    /// The receiving socket shares the port, so several clients on one
    /// host share the room, and gets only this group's datagrams, never
    /// those of a room on another group with the same port (how each
    /// system is made to do that: [`McastReceiver`]). Loopback is on:
    /// other clients on this host hear us.
    pub fn join(group: IpAddr, port: u16, iface: Option<&Iface>, ttl: u32) -> io::Result<Group> {
        let iface = resolve_iface(iface, group)?;
        let recv = McastReceiver::join(group, port, iface, CHAT_RECV_BUFFER)?;
        let control_port = roomcast_core::chat::control_port(port);
        let control = match control_port {
            Some(cport) => match McastReceiver::join(group, cport, iface, CHAT_RECV_BUFFER) {
                Ok(control) => Some(control),
                Err(e) => {
                    recv.leave(group, iface);
                    return Err(io::Error::new(
                        e.kind(),
                        format!("the room's control port {cport}: {e}"),
                    ));
                }
            },
            None => None,
        };
        let send = match group {
            IpAddr::V4(_) => {
                let send = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP))?;
                if !iface.v4.is_unspecified() {
                    send.set_multicast_if_v4(&iface.v4)?;
                }
                send.set_multicast_ttl_v4(ttl)?;
                send.set_multicast_loop_v4(true)?;
                send
            }
            IpAddr::V6(_) => {
                let send = Socket::new(Domain::IPV6, Type::DGRAM, Some(Protocol::UDP))?;
                if iface.index != 0 {
                    send.set_multicast_if_v6(iface.index)?;
                }
                send.set_multicast_hops_v6(ttl)?;
                send.set_multicast_loop_v6(true)?;
                send
            }
        };
        send.set_nonblocking(true)?;
        Ok(Group {
            recv,
            control,
            send: send.into(),
            group,
            iface,
            dest: SocketAddr::new(group, port),
            control_dest: control_port.map(|p| SocketAddr::new(group, p)),
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
