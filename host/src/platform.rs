//! What differs between the systems roomcast runs on: Linux (tested end to
//! end), macOS and Windows (built and linted in CI, not run). One function
//! or type per difference, so that a caller reads the same everywhere and
//! a Linux-only call cannot slip into the rest of the host.
//!
//! - The server's listening socket: [`allow_quick_rebind`].
//! - Multicast reception: only the room's own datagrams reach the client,
//!   by the means each system offers ([`share_port`],
//!   [`only_own_memberships`], [`multicast_bind_addr`], [`McastReceiver`]).
//! - Network interfaces and whether they carry multicast: [`interfaces`].
//! - Stopping the server on Ctrl-C (and SIGTERM on Unix): [`StopSignals`].
//! - The state file: opening without following links, private permissions,
//!   the lock ([`try_lock`]), syncing the folder.
//! - Typing a passphrase without echo: [`NoEcho`].

use std::fs::{File, FileType, Metadata, OpenOptions};
use std::io::{self, Read};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;

use socket2::Socket;

// ---- The server's listening socket ----

/// Lets a restarted server listen on its port at once, while connections
/// of the previous one wait out TIME_WAIT.
///
/// Unix: SO_REUSEADDR, which still refuses a second listener on the port.
/// Windows: nothing. There SO_REUSEADDR would let a second socket bind a
/// port another is listening on (two servers sharing one port), and
/// TIME_WAIT connections do not keep a new listener from binding anyway.
pub fn allow_quick_rebind(socket: &Socket) -> io::Result<()> {
    #[cfg(unix)]
    {
        socket.set_reuse_address(true)
    }
    #[cfg(windows)]
    {
        let _ = socket;
        Ok(())
    }
}

// ---- Multicast sockets ----

/// Lets several sockets of this host bind the same port, so that several
/// clients on one host can be in one room.
///
/// Unix: SO_REUSEADDR and SO_REUSEPORT (BSDs and macOS need the latter for
/// two sockets bound to one address and port). Windows has no SO_REUSEPORT;
/// there SO_REUSEADDR alone shares the port, and every socket bound to it
/// gets its own copy of each multicast datagram.
pub fn share_port(socket: &Socket) -> io::Result<()> {
    socket.set_reuse_address(true)?;
    #[cfg(unix)]
    socket.set_reuse_port(true)?;
    Ok(())
}

/// Makes a receiving socket get only the groups it joined itself.
///
/// Linux delivers to a socket the datagrams of every group any socket of
/// the host joined, if its bound address and port match, unless
/// `IP_MULTICAST_ALL` (`IPV6_MULTICAST_ALL` for IPv6) is off. Elsewhere the
/// option does not exist and the same result is reached another way: see
/// [`multicast_bind_addr`] (macOS and other BSDs) and [`McastReceiver`]
/// (Windows).
pub fn only_own_memberships(socket: &Socket, ipv6: bool) -> io::Result<()> {
    #[cfg(target_os = "linux")]
    if ipv6 {
        socket.set_multicast_all_v6(false)?;
    } else {
        socket.set_multicast_all_v4(false)?;
    }
    #[cfg(not(target_os = "linux"))]
    let _ = (socket, ipv6);
    Ok(())
}

/// The address a room's receiving socket binds.
///
/// Unix: the group's own address, so that a datagram for another group on
/// the same port does not match the socket (Linux and the BSDs, macOS
/// among them, deliver a multicast datagram only to sockets bound to its
/// destination or to the wildcard; IPv6 alike). Windows refuses to bind a
/// multicast address (WSAEADDRNOTAVAIL), so there the socket binds the
/// wildcard address and [`McastReceiver`] filters by destination.
pub fn multicast_bind_addr(group: IpAddr, port: u16) -> SocketAddr {
    #[cfg(unix)]
    {
        SocketAddr::new(group, port)
    }
    #[cfg(windows)]
    {
        let any = match group {
            IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            IpAddr::V6(_) => IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED),
        };
        SocketAddr::new(any, port)
    }
}

/// What [`McastReceiver::recv_from`] returns for a datagram it dropped
/// because it was sent to another group (Windows only): the error kind
/// `Interrupted`, which callers already treat as "nothing here, read
/// again", so one such datagram costs one read of the caller's budget.
#[cfg(windows)]
fn other_group() -> io::Error {
    io::Error::new(io::ErrorKind::Interrupted, "a datagram for another group")
}

/// The interface a group is joined on, as each family names it: an IPv4
/// group by an address of the interface (unspecified: the system's
/// choice), an IPv6 group by the interface's index (0: the system's
/// choice).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct McastIface {
    /// For IPv4 groups.
    pub v4: Ipv4Addr,
    /// For IPv6 groups.
    pub index: u32,
}

impl McastIface {
    /// The system's choice.
    pub const ANY: McastIface = McastIface {
        v4: Ipv4Addr::UNSPECIFIED,
        index: 0,
    };
}

/// The receiving socket of a room: bound (see [`multicast_bind_addr`]),
/// member of the group, nonblocking.
///
/// On Unix it is a plain UDP socket; the bound address filters. On Windows
/// the socket binds the wildcard address and joins only this one group
/// (each room has its own socket). Windows is reported (by tsduck's
/// developers, who tried it) to deliver to a socket only the groups that
/// socket joined, but Microsoft documents delivery by port only, so the
/// destination of every datagram is also checked (`IP_PKTINFO` or
/// `IPV6_PKTINFO`, through the `socket-pktinfo` crate, which reads it with
/// `WSARecvMsg`), and one sent to another group is dropped, whatever the
/// system's behaviour.
pub struct McastReceiver {
    #[cfg(unix)]
    socket: std::net::UdpSocket,
    #[cfg(windows)]
    socket: socket_pktinfo::PktInfoUdpSocket,
    #[cfg(windows)]
    group: IpAddr,
}

impl McastReceiver {
    /// Binds, joins `group` (IPv4 or IPv6) on `iface`, asks for a receive
    /// buffer of `recv_buffer` bytes (best effort: the system may grant
    /// less) and turns nonblocking.
    pub fn join(
        group: IpAddr,
        port: u16,
        iface: McastIface,
        recv_buffer: usize,
    ) -> io::Result<McastReceiver> {
        #[cfg(unix)]
        {
            use socket2::{Domain, Protocol, Type};
            let domain = if group.is_ipv6() {
                Domain::IPV6
            } else {
                Domain::IPV4
            };
            let socket = Socket::new(domain, Type::DGRAM, Some(Protocol::UDP))?;
            share_port(&socket)?;
            only_own_memberships(&socket, group.is_ipv6())?;
            let _ = socket.set_recv_buffer_size(recv_buffer);
            socket.bind(&multicast_bind_addr(group, port).into())?;
            match group {
                IpAddr::V4(g) => socket.join_multicast_v4(&g, &iface.v4)?,
                IpAddr::V6(g) => socket.join_multicast_v6(&g, iface.index)?,
            }
            socket.set_nonblocking(true)?;
            Ok(McastReceiver {
                socket: socket.into(),
            })
        }
        #[cfg(windows)]
        {
            let domain = if group.is_ipv6() {
                socket2::Domain::IPV6
            } else {
                socket2::Domain::IPV4
            };
            let socket = socket_pktinfo::PktInfoUdpSocket::new(domain)?;
            socket.set_reuse_address(true)?;
            // The wrapper does not expose the buffer size; a duplicate of
            // the handle is the same socket, and closing it leaves ours open.
            if let Ok(dup) = socket.try_clone_std() {
                let _ = socket2::SockRef::from(&dup).set_recv_buffer_size(recv_buffer);
                if group.is_ipv6() {
                    let _ = socket2::SockRef::from(&dup).set_only_v6(true);
                }
            }
            socket.bind(&multicast_bind_addr(group, port).into())?;
            match group {
                IpAddr::V4(g) => socket.join_multicast_v4(&g, &iface.v4)?,
                IpAddr::V6(g) => socket.join_multicast_v6(&g, iface.index)?,
            }
            socket.set_nonblocking(true)?;
            Ok(McastReceiver { socket, group })
        }
    }

    /// Takes one datagram: its length in `buf` and its sender. An error of
    /// kind `Interrupted` means nothing was for us: read again.
    pub fn recv_from(&self, buf: &mut [u8]) -> io::Result<(usize, std::net::SocketAddr)> {
        #[cfg(unix)]
        {
            self.socket.recv_from(buf)
        }
        #[cfg(windows)]
        {
            let (n, info) = self.socket.recv(buf)?;
            if info.addr_dst != self.group {
                return Err(other_group());
            }
            Ok((n, info.addr_src))
        }
    }

    /// Leaves `group` on `iface` (best effort: closing the socket leaves
    /// it anyway).
    pub fn leave(&self, group: IpAddr, iface: McastIface) {
        let _ = match group {
            IpAddr::V4(g) => self.socket.leave_multicast_v4(&g, &iface.v4),
            IpAddr::V6(g) => self.socket.leave_multicast_v6(&g, iface.index),
        };
    }
}

// ---- Network interfaces ----

/// An interface of this host: its name, index and addresses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NetInterface {
    /// Its name (`eth0`; on Windows the adapter's friendly name).
    pub name: String,
    /// Its index (0 if the system gave none).
    pub index: u32,
    /// Its addresses, IPv4 first.
    pub addrs: Vec<IpAddr>,
    /// Whether it is up and (where the system says) supports multicast.
    pub multicast: bool,
}

/// The interfaces of this host with their addresses (through the
/// `if-addrs` crate, which reads them with `getifaddrs` on Unix and
/// `GetAdaptersAddresses` on Windows).
///
/// Whether an interface supports multicast: Linux says it in the
/// interface's flags (`IFF_MULTICAST`, read from
/// `/sys/class/net/NAME/flags`; loopback has it off); elsewhere every
/// interface that is up and not point-to-point is taken to.
pub fn interfaces() -> io::Result<Vec<NetInterface>> {
    let mut out: Vec<NetInterface> = Vec::new();
    for iface in if_addrs::get_if_addrs()? {
        let addr = iface.ip();
        if let Some(known) = out.iter_mut().find(|i| i.name == iface.name) {
            known.addrs.push(addr);
            continue;
        }
        let multicast = iface.is_oper_up() && !iface.is_p2p() && supports_multicast(&iface);
        out.push(NetInterface {
            name: iface.name.clone(),
            index: iface.index.unwrap_or(0),
            addrs: vec![addr],
            multicast,
        });
    }
    for iface in &mut out {
        iface.addrs.sort_by_key(|a| a.is_ipv6());
    }
    Ok(out)
}

fn supports_multicast(iface: &if_addrs::Interface) -> bool {
    #[cfg(target_os = "linux")]
    {
        /// `IFF_MULTICAST` in `<linux/if.h>`.
        const IFF_MULTICAST: u32 = 0x1000;
        let flags = std::fs::read_to_string(format!("/sys/class/net/{}/flags", iface.name));
        match flags
            .ok()
            .and_then(|f| u32::from_str_radix(f.trim().trim_start_matches("0x"), 16).ok())
        {
            Some(flags) => flags & IFF_MULTICAST != 0,
            None => !iface.is_loopback(),
        }
    }
    #[cfg(not(target_os = "linux"))]
    {
        !iface.is_loopback()
    }
}

#[cfg(unix)]
impl std::os::fd::AsRawFd for McastReceiver {
    fn as_raw_fd(&self) -> std::os::fd::RawFd {
        self.socket.as_raw_fd()
    }
}

#[cfg(unix)]
impl std::os::fd::AsFd for McastReceiver {
    fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.socket.as_fd()
    }
}

#[cfg(windows)]
impl std::os::windows::io::AsRawSocket for McastReceiver {
    fn as_raw_socket(&self) -> std::os::windows::io::RawSocket {
        self.socket.as_raw_socket()
    }
}

#[cfg(windows)]
impl std::os::windows::io::AsSocket for McastReceiver {
    fn as_socket(&self) -> std::os::windows::io::BorrowedSocket<'_> {
        use std::os::windows::io::AsRawSocket;
        // SAFETY: the socket is owned by `self` and stays open for as long
        // as the borrow, which cannot outlive `self`.
        unsafe { std::os::windows::io::BorrowedSocket::borrow_raw(self.socket.as_raw_socket()) }
    }
}

// ---- Stopping the server ----

/// Turns a request to stop (SIGINT or SIGTERM on Unix; Ctrl-C or
/// Ctrl-Break in the console on Windows) into a readable socket, so that
/// the server's event loop sees it as one more event. Read it (`read` on
/// `&StopSignals`) to clear it.
///
/// Unix: signal-hook's self-pipe, a Unix socket pair written by the signal
/// handler. Windows has no signals and no socket pairs: a console control
/// handler (`SetConsoleCtrlHandler`) sends one datagram over a pair of UDP
/// sockets on the loopback address, connected to each other, so that no
/// other sender is heard.
pub struct StopSignals {
    #[cfg(unix)]
    reader: std::os::unix::net::UnixStream,
    #[cfg(windows)]
    reader: std::net::UdpSocket,
}

impl StopSignals {
    /// Installs the handlers. Call it once per process.
    pub fn new() -> io::Result<StopSignals> {
        #[cfg(unix)]
        {
            let (reader, writer) = std::os::unix::net::UnixStream::pair()?;
            reader.set_nonblocking(true)?;
            writer.set_nonblocking(true)?;
            for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
                signal_hook::low_level::pipe::register(signal, writer.try_clone()?)?;
            }
            Ok(StopSignals { reader })
        }
        #[cfg(windows)]
        {
            windows_console::stop_signals()
        }
    }
}

impl Read for &StopSignals {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        #[cfg(unix)]
        {
            (&self.reader).read(buf)
        }
        #[cfg(windows)]
        {
            self.reader.recv(buf)
        }
    }
}

#[cfg(unix)]
impl std::os::fd::AsRawFd for StopSignals {
    fn as_raw_fd(&self) -> std::os::fd::RawFd {
        self.reader.as_raw_fd()
    }
}

#[cfg(unix)]
impl std::os::fd::AsFd for StopSignals {
    fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.reader.as_fd()
    }
}

#[cfg(windows)]
impl std::os::windows::io::AsRawSocket for StopSignals {
    fn as_raw_socket(&self) -> std::os::windows::io::RawSocket {
        self.reader.as_raw_socket()
    }
}

#[cfg(windows)]
impl std::os::windows::io::AsSocket for StopSignals {
    fn as_socket(&self) -> std::os::windows::io::BorrowedSocket<'_> {
        self.reader.as_socket()
    }
}

#[cfg(windows)]
mod windows_console {
    use std::io;
    use std::net::{Ipv4Addr, UdpSocket};
    use std::sync::OnceLock;

    use windows_sys::Win32::Foundation::{FALSE, TRUE};
    use windows_sys::Win32::System::Console::{
        CTRL_BREAK_EVENT, CTRL_C_EVENT, SetConsoleCtrlHandler,
    };
    use windows_sys::core::BOOL;

    use super::StopSignals;

    /// The sending end, for the handler (which the system calls on a
    /// thread of its own).
    static WRITER: OnceLock<UdpSocket> = OnceLock::new();

    /// Ctrl-C and Ctrl-Break ask the server to stop; any other event
    /// (closing the console, logging off, shutting down) gets the
    /// system's default, which ends the process.
    unsafe extern "system" fn handler(event: u32) -> BOOL {
        if event != CTRL_C_EVENT && event != CTRL_BREAK_EVENT {
            return FALSE;
        }
        if let Some(writer) = WRITER.get() {
            let _ = writer.send(&[1]);
        }
        TRUE
    }

    pub(super) fn stop_signals() -> io::Result<StopSignals> {
        let reader = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0))?;
        let writer = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0))?;
        reader.connect(writer.local_addr()?)?;
        writer.connect(reader.local_addr()?)?;
        reader.set_nonblocking(true)?;
        writer.set_nonblocking(true)?;
        WRITER
            .set(writer)
            .map_err(|_| io::Error::other("the stop handler is already installed"))?;
        // SAFETY: `handler` is a plain function that only reads a static.
        if unsafe { SetConsoleCtrlHandler(Some(handler), TRUE) } == FALSE {
            return Err(io::Error::last_os_error());
        }
        Ok(StopSignals { reader })
    }
}

// ---- Limits ----

/// The soft limit on open files, where the system has one (Unix).
pub fn open_file_limit() -> Option<u64> {
    #[cfg(unix)]
    {
        rlimit::getrlimit(rlimit::Resource::NOFILE)
            .ok()
            .map(|(soft, _)| soft)
    }
    #[cfg(not(unix))]
    {
        None
    }
}

// ---- The state file ----

/// The permissions of a new state file and of its lock file on Unix: the
/// owner reads and writes, nobody else. (Windows: such files take the
/// access control list of their folder, as any new file there.)
#[cfg(unix)]
const PRIVATE_MODE: u32 = 0o600;

/// Options of an open for the state file and its lock file.
pub trait OpenOptionsExt {
    /// Opens without following a symbolic link at the last step of the
    /// path, and (Unix) without blocking, so that a FIFO put there cannot
    /// hang the open.
    ///
    /// Unix: `O_NOFOLLOW | O_NONBLOCK` (a link gives `ELOOP`, see
    /// [`is_refused_link`]). Windows: `FILE_FLAG_OPEN_REPARSE_POINT`, which
    /// opens a link itself rather than its target; its metadata then says
    /// it is not a regular file, and the callers refuse it.
    fn no_follow(&mut self) -> &mut Self;

    /// A file created by this open is private: Unix mode 0600 (before the
    /// umask); on Windows it takes its folder's access control list.
    fn private(&mut self) -> &mut Self;
}

impl OpenOptionsExt for OpenOptions {
    fn no_follow(&mut self) -> &mut Self {
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            self.custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        }
        #[cfg(windows)]
        {
            use std::os::windows::fs::OpenOptionsExt;
            self.custom_flags(windows_sys::Win32::Storage::FileSystem::FILE_FLAG_OPEN_REPARSE_POINT)
        }
    }

    fn private(&mut self) -> &mut Self {
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            self.mode(PRIVATE_MODE)
        }
        #[cfg(windows)]
        self
    }
}

/// Whether an open with [`OpenOptionsExt::no_follow`] failed because the
/// path is a link.
pub fn is_refused_link(error: &io::Error) -> bool {
    #[cfg(unix)]
    {
        error.raw_os_error() == Some(libc::ELOOP)
    }
    // Windows opens the link itself: the caller sees it is not a file.
    #[cfg(windows)]
    {
        let _ = error;
        false
    }
}

/// A temporary file made by this builder is private: Unix mode 0600
/// (before the umask); on Windows it takes its folder's access control list.
pub trait TempBuilderExt {
    fn private(&mut self) -> &mut Self;
}

impl TempBuilderExt for tempfile::Builder<'_, '_> {
    fn private(&mut self) -> &mut Self {
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            self.permissions(std::fs::Permissions::from_mode(PRIVATE_MODE))
        }
        #[cfg(windows)]
        self
    }
}

/// Gives `file`, which will replace the file `old` describes (`None`: a
/// new file), the same access.
///
/// Unix: the owner and group (best effort: only root may give a file away,
/// and a user only to groups it is in) and exactly the permission bits
/// (0600 for a new file; the umask cut the mode given at creation).
/// Windows: nothing to do; the file already has its folder's access control
/// list, as the old one had.
pub fn copy_access(file: &File, old: Option<&Metadata>) -> io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::{MetadataExt, PermissionsExt, fchown};
        if let Some(old) = old {
            let _ = fchown(file, Some(old.uid()), Some(old.gid()))
                .or_else(|_| fchown(file, None, Some(old.gid())));
        }
        let mode = old.map_or(PRIVATE_MODE, |m| m.permissions().mode() & 0o777);
        file.set_permissions(std::fs::Permissions::from_mode(mode))
    }
    #[cfg(windows)]
    {
        let _ = (file, old);
        Ok(())
    }
}

/// Makes a rename in `folder` durable.
///
/// Unix: fsync of the folder. Windows cannot open a folder as a file; NTFS
/// journals the rename itself (`MoveFileEx`, which `tempfile` uses).
pub fn sync_folder(folder: &Path) -> io::Result<()> {
    #[cfg(unix)]
    {
        File::open(folder)?.sync_all()
    }
    #[cfg(windows)]
    {
        let _ = folder;
        Ok(())
    }
}

/// Takes an exclusive lock on `file` without waiting: `Ok(false)` if
/// another process holds it. The system drops it when the file is closed
/// or the process dies, however it dies.
///
/// Unix: `flock`. Windows: `LockFileEx` on one byte far past the end of
/// the file ([`WINDOWS_LOCK_OFFSET`]): Windows locks are mandatory, and a
/// lock on the PID itself would keep a second server from reading who
/// holds the file. (`File::try_lock` needs Rust 1.89; the workspace's
/// `rust-version` is older.)
pub fn try_lock(file: &File) -> io::Result<bool> {
    #[cfg(unix)]
    {
        use rustix::fs::{FlockOperation, flock};
        match flock(file, FlockOperation::NonBlockingLockExclusive) {
            Ok(()) => Ok(true),
            Err(rustix::io::Errno::WOULDBLOCK) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }
    #[cfg(windows)]
    {
        use std::os::windows::io::AsRawHandle;
        use windows_sys::Win32::Foundation::{ERROR_LOCK_VIOLATION, FALSE};
        use windows_sys::Win32::Storage::FileSystem::{
            LOCKFILE_EXCLUSIVE_LOCK, LOCKFILE_FAIL_IMMEDIATELY, LockFileEx,
        };
        use windows_sys::Win32::System::IO::OVERLAPPED;
        let mut at = OVERLAPPED::default();
        at.Anonymous.Anonymous.Offset = WINDOWS_LOCK_OFFSET as u32;
        at.Anonymous.Anonymous.OffsetHigh = (WINDOWS_LOCK_OFFSET >> 32) as u32;
        // SAFETY: the handle is open for the call; `at` lives through it
        // and the handle is not overlapped, so the call completes at once.
        let locked = unsafe {
            LockFileEx(
                file.as_raw_handle(),
                LOCKFILE_EXCLUSIVE_LOCK | LOCKFILE_FAIL_IMMEDIATELY,
                0,
                1,
                0,
                &mut at,
            )
        };
        if locked != FALSE {
            return Ok(true);
        }
        let error = io::Error::last_os_error();
        if error.raw_os_error() == Some(ERROR_LOCK_VIOLATION as i32) {
            return Ok(false);
        }
        Err(error)
    }
}

/// Where the Windows lock byte is: far past anything written to a lock
/// file (a PID and a newline), below the largest offset.
#[cfg(windows)]
const WINDOWS_LOCK_OFFSET: u64 = 1 << 62;

/// What a special file is, for messages: a FIFO, a device, a socket
/// (Unix); `None` for anything else.
pub fn special_kind(file_type: &FileType) -> Option<&'static str> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        if file_type.is_fifo() {
            Some("a FIFO")
        } else if file_type.is_char_device() || file_type.is_block_device() {
            Some("a device")
        } else if file_type.is_socket() {
            Some("a socket")
        } else {
            None
        }
    }
    #[cfg(windows)]
    {
        let _ = file_type;
        None
    }
}

/// The permission bits of a file that holds a secret, if others than its
/// owner may read or write it (any group or other bit set); `None` when it
/// is private. Windows has no such bits: its files are private to their
/// folder's access list, and this says `None`.
pub fn secret_file_too_open(meta: &Metadata) -> Option<u32> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = meta.permissions().mode() & 0o777;
        (mode & 0o077 != 0).then_some(mode)
    }
    #[cfg(windows)]
    {
        let _ = meta;
        None
    }
}

/// Creates `dir` and its parents, the last one readable by its owner only
/// (0700 on Unix), and makes an existing `dir` so.
pub fn create_private_dir(dir: &Path) -> io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::{DirBuilderExt as _, PermissionsExt as _};
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)?;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
    }
    #[cfg(windows)]
    {
        std::fs::create_dir_all(dir)
    }
}

// ---- Typing a passphrase ----

/// The terminal modes a [`NoEcho`] replaced, while it is active: the
/// client's signal thread ([`client_signals`]) puts them back before the
/// process dies of a signal, so that a client killed at the passphrase
/// prompt never leaves the terminal without echo.
#[cfg(unix)]
static SAVED_TERMINAL: std::sync::Mutex<Option<rustix::termios::Termios>> =
    std::sync::Mutex::new(None);

/// Puts back the terminal modes a [`NoEcho`] replaced, if one is active;
/// true if it was.
#[cfg(unix)]
fn restore_saved_terminal() -> bool {
    use std::os::fd::AsFd as _;
    let saved = SAVED_TERMINAL.lock().unwrap_or_else(|e| e.into_inner());
    match &*saved {
        Some(modes) => {
            let _ = rustix::termios::tcsetattr(
                io::stdin().as_fd(),
                rustix::termios::OptionalActions::Now,
                modes,
            );
            true
        }
        None => false,
    }
}

/// The client's signals. SIGTERM, SIGHUP and SIGQUIT (and a SIGINT that
/// comes while a [`NoEcho`] is active: sent by `kill`, since Ctrl-C is then
/// a byte) restore the terminal, then end the process as they would have.
/// Any other SIGINT (Ctrl-C with the terminal in its usual mode, say while
/// a room's key is derived) is handed to the client: one `()` on the
/// channel, and `wake` is called; the client then calls [`die_of_sigint`]
/// if it does not take it. Windows: nothing is installed (the channel
/// stays empty).
pub fn client_signals(
    wake: impl Fn() + Send + 'static,
) -> io::Result<std::sync::mpsc::Receiver<()>> {
    let (tx, rx) = std::sync::mpsc::channel();
    #[cfg(unix)]
    {
        use signal_hook::consts::{SIGHUP, SIGINT, SIGQUIT, SIGTERM};
        let mut signals = signal_hook::iterator::Signals::new([SIGINT, SIGTERM, SIGHUP, SIGQUIT])?;
        std::thread::Builder::new()
            .name("signals".into())
            .spawn(move || {
                for signal in signals.forever() {
                    if restore_saved_terminal() || signal != SIGINT {
                        let _ = signal_hook::low_level::emulate_default_handler(signal);
                        continue;
                    }
                    if tx.send(()).is_err() {
                        let _ = signal_hook::low_level::emulate_default_handler(signal);
                    }
                    wake();
                }
            })?;
    }
    #[cfg(windows)]
    {
        let _ = (tx, wake);
    }
    Ok(rx)
}

/// Ends the process as SIGINT does by default (a SIGINT the client did not
/// take: see [`client_signals`]).
pub fn die_of_sigint() {
    #[cfg(unix)]
    {
        let _ = signal_hook::low_level::emulate_default_handler(signal_hook::consts::SIGINT);
    }
}

/// The terminal on standard input set up to read a passphrase: no echo,
/// bytes as they are typed (so Ctrl-C and Ctrl-D arrive as bytes that
/// cancel, rather than a signal that would kill the client with echo
/// still off), restored when dropped.
///
/// Unix: termios with `ECHO`, `ICANON`, `ISIG` and `IEXTEN` off, `VMIN` 1;
/// bytes are read from the descriptor itself. Windows: the console's
/// `ENABLE_ECHO_INPUT`, `ENABLE_LINE_INPUT` and `ENABLE_PROCESSED_INPUT`
/// off (Ctrl-C then arrives as byte 3, Enter as CR); bytes come through
/// std's stdin, which turns the console's UTF-16 into UTF-8. (Built, not
/// run, on Windows, as the rest of the host there.)
pub struct NoEcho {
    #[cfg(unix)]
    saved: rustix::termios::Termios,
    #[cfg(windows)]
    saved: u32,
}

impl NoEcho {
    /// Turns echo off on standard input, which must be a terminal.
    pub fn start() -> io::Result<NoEcho> {
        #[cfg(unix)]
        {
            use rustix::termios::{LocalModes, OptionalActions, SpecialCodeIndex};
            use std::os::fd::AsFd as _;
            let stdin = io::stdin();
            let saved = rustix::termios::tcgetattr(stdin.as_fd())?;
            let mut quiet = saved.clone();
            quiet.local_modes &=
                !(LocalModes::ECHO | LocalModes::ICANON | LocalModes::ISIG | LocalModes::IEXTEN);
            quiet.special_codes[SpecialCodeIndex::VMIN] = 1;
            quiet.special_codes[SpecialCodeIndex::VTIME] = 0;
            *SAVED_TERMINAL.lock().unwrap_or_else(|e| e.into_inner()) = Some(saved.clone());
            if let Err(e) = rustix::termios::tcsetattr(stdin.as_fd(), OptionalActions::Now, &quiet)
            {
                *SAVED_TERMINAL.lock().unwrap_or_else(|e| e.into_inner()) = None;
                return Err(e.into());
            }
            Ok(NoEcho { saved })
        }
        #[cfg(windows)]
        {
            use std::os::windows::io::AsRawHandle as _;
            use windows_sys::Win32::System::Console::{
                ENABLE_ECHO_INPUT, ENABLE_LINE_INPUT, ENABLE_PROCESSED_INPUT, GetConsoleMode,
                SetConsoleMode,
            };
            let handle = io::stdin().as_raw_handle();
            let mut saved = 0;
            // SAFETY: `handle` is this process's standard input, open for
            // its whole life; `saved` outlives the call.
            if unsafe { GetConsoleMode(handle, &mut saved) } == 0 {
                return Err(io::Error::last_os_error());
            }
            let quiet = saved & !(ENABLE_ECHO_INPUT | ENABLE_LINE_INPUT | ENABLE_PROCESSED_INPUT);
            // SAFETY: as above.
            if unsafe { SetConsoleMode(handle, quiet) } == 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(NoEcho { saved })
        }
    }

    /// The next byte typed; `None` at the end of input.
    pub fn read_byte(&self) -> io::Result<Option<u8>> {
        #[cfg(unix)]
        {
            use std::os::fd::AsFd as _;
            let mut byte = [0u8; 1];
            loop {
                // Straight from the descriptor: std's buffered stdin (and
                // rustyline, which reads the descriptor too) must not keep
                // any of the passphrase.
                match rustix::io::read(io::stdin().as_fd(), &mut byte) {
                    Ok(0) => return Ok(None),
                    Ok(_) => return Ok(Some(byte[0])),
                    Err(rustix::io::Errno::INTR) => continue,
                    Err(e) => return Err(e.into()),
                }
            }
        }
        #[cfg(windows)]
        {
            let mut byte = [0u8; 1];
            loop {
                match io::stdin().read(&mut byte) {
                    Ok(0) => return Ok(None),
                    Ok(_) => return Ok(Some(byte[0])),
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => return Err(e),
                }
            }
        }
    }
}

impl Drop for NoEcho {
    fn drop(&mut self) {
        #[cfg(unix)]
        {
            use std::os::fd::AsFd as _;
            *SAVED_TERMINAL.lock().unwrap_or_else(|e| e.into_inner()) = None;
            let _ = rustix::termios::tcsetattr(
                io::stdin().as_fd(),
                rustix::termios::OptionalActions::Now,
                &self.saved,
            );
        }
        #[cfg(windows)]
        {
            use std::os::windows::io::AsRawHandle as _;
            // SAFETY: as in `start`.
            let _ = unsafe {
                windows_sys::Win32::System::Console::SetConsoleMode(
                    io::stdin().as_raw_handle(),
                    self.saved,
                )
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_file(name: &str) -> std::path::PathBuf {
        std::env::temp_dir().join(format!("roomcast-platform-{}-{name}", std::process::id()))
    }

    /// A second open of a locked file cannot take the lock while the
    /// first holds it, and can once the first is closed.
    #[test]
    fn the_lock_is_exclusive_and_dropped_with_the_file() {
        let path = temp_file("lock");
        let open = || {
            OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .private()
                .no_follow()
                .open(&path)
                .unwrap()
        };
        let first = open();
        assert!(try_lock(&first).unwrap());
        let second = open();
        assert!(!try_lock(&second).unwrap());
        drop(first);
        assert!(try_lock(&second).unwrap());
        drop(second);
        let _ = std::fs::remove_file(&path);
    }

    /// The lock leaves the file's contents readable to others (the PID of
    /// the holder is read by a server that finds the lock taken). `flock`
    /// is advisory; Windows locks are mandatory, which is why the lock is
    /// taken on a byte past the PID there.
    #[test]
    fn a_locked_file_can_still_be_read() {
        use std::io::Write;
        let path = temp_file("read");
        let mut holder = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .private()
            .open(&path)
            .unwrap();
        assert!(try_lock(&holder).unwrap());
        holder.write_all(b"1234\n").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"1234\n");
        drop(holder);
        let _ = std::fs::remove_file(&path);
    }

    /// A link at the last step of the path is not followed.
    #[cfg(unix)]
    #[test]
    fn no_follow_refuses_a_link() {
        let target = temp_file("target");
        let link = temp_file("link");
        std::fs::write(&target, b"x").unwrap();
        let _ = std::fs::remove_file(&link);
        std::os::unix::fs::symlink(&target, &link).unwrap();
        let err = OpenOptions::new()
            .read(true)
            .no_follow()
            .open(&link)
            .unwrap_err();
        assert!(is_refused_link(&err), "{err}");
        let _ = std::fs::remove_file(&link);
        let _ = std::fs::remove_file(&target);
    }

    #[cfg(unix)]
    #[test]
    fn a_new_private_file_is_for_its_owner_only() {
        use std::os::unix::fs::PermissionsExt;
        let path = temp_file("private");
        let _ = std::fs::remove_file(&path);
        let file = OpenOptions::new()
            .write(true)
            .create(true)
            .private()
            .open(&path)
            .unwrap();
        copy_access(&file, None).unwrap();
        let mode = file.metadata().unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let _ = std::fs::remove_file(&path);
    }
}
