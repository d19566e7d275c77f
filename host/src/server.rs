//! The directory server host: one `polling` event loop that drives the
//! sans-IO [`roomcast_core::Server`] over real TCP sockets.
//!
//! Every socket is nonblocking and registered level-triggered, so interest
//! changes only when a connection's needs change (not a re-arm per event).
//! A connection that stalls costs only its own fixed buffers: the core stops
//! taking its input when its replies back up, and its timers close it.

use std::io::{self, ErrorKind, Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::time::{Duration, Instant as StdInstant};

use polling::{Event as Interest, Events, PollMode, Poller};
use roomcast_core::{
    Connection, Directory, ErrorCode, Event, Instant, PROTOCOL_VERSION, Server, ServerConfig,
    Timeout, limits,
};
use socket2::{Domain, Protocol, Socket, Type};

use crate::DEFAULT_PORT;
use crate::discovery::{Announcement, SERVICE_TYPE};
use crate::log::{self, Level, log};
use crate::platform::{self, StopSignals};
use crate::state::StateFile;

/// The most clients served at once unless `--max-connections` says
/// otherwise. One more gets `ERR busy` and is closed.
pub const DEFAULT_MAX_CONNECTIONS: u32 = 10_000;

/// The listen backlog: connections the kernel queues before we accept.
const LISTEN_BACKLOG: i32 = 1024;

/// How often the loop checks connection timers. A timeout fires at most this
/// late.
const TIMER_TICK: Duration = Duration::from_millis(250);

/// How long to stop accepting after the process ran out of file descriptors,
/// so a full descriptor table is not a busy loop.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// The most bytes read from one connection per readiness event, so one busy
/// peer cannot starve the others.
const READ_BUDGET: usize = 64 * 1024;

/// The most bytes written to one connection per readiness event. A peer
/// with a deep socket buffer (and a long listing to fill it) would otherwise
/// hold the loop for as long as it takes to fill megabytes.
const WRITE_BUDGET: usize = 64 * 1024;

/// How long to wait before trying again after the directory could not be
/// saved (disk full, say). Replies to changes wait meanwhile.
const SAVE_RETRY: Duration = Duration::from_secs(1);

/// Descriptors the process needs besides one per connection: stdio, the
/// listener, the poller, the signal pipe, the state file, and spare.
const SPARE_DESCRIPTORS: u64 = 32;

/// The most connections accepted per readiness event of the listener.
const ACCEPT_BUDGET: usize = 256;

/// Poller keys 0 and 1 are the listener and the signal pipe; connection `i`
/// has key `i + FIRST_CONN_KEY`.
const LISTENER_KEY: usize = 0;
const SIGNAL_KEY: usize = 1;
const FIRST_CONN_KEY: usize = 2;

/// Options of `roomcast server`.
#[derive(Debug, clap::Args)]
pub struct ServerArgs {
    /// The TCP port to listen on (the CRDP); 0 picks a free one.
    #[arg(long, short, default_value_t = DEFAULT_PORT)]
    port: u16,

    /// The address to listen on: 0.0.0.0 for every interface, 127.0.0.1 for
    /// this machine only.
    #[arg(long, short, default_value_t = IpAddr::V4(Ipv4Addr::UNSPECIFIED))]
    bind: IpAddr,

    /// The most clients served at once; one more gets `ERR busy`.
    #[arg(long, default_value_t = DEFAULT_MAX_CONNECTIONS,
          value_parser = clap::value_parser!(u32).range(1..))]
    max_connections: u32,

    /// How much to log: `info` logs every connection and command, `warn`
    /// only trouble, `error` only failures.
    #[arg(long, value_enum, default_value_t = Level::Info)]
    log_level: Level,

    /// Keep the directory in this file, so rooms survive a restart. A change
    /// is acknowledged only once it is on disk. Without it, rooms live in
    /// memory only.
    #[arg(long, value_name = "PATH")]
    state: Option<PathBuf>,

    /// Close a connection that sends part of a line and then nothing for
    /// this long (e.g. 30s, 500ms).
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration,
          default_value = "30s")]
    partial_line_timeout: Duration,

    /// Close a connection that sends nothing for this long; `ping` keeps it
    /// open.
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration,
          default_value = "10m")]
    idle_timeout: Duration,

    /// Drop a connection that leaves its replies unread this long.
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration,
          default_value = "30s")]
    send_timeout: Duration,

    /// Do not announce the server on the LAN over mDNS (DNS-SD service
    /// `_crdp._tcp`), which lets clients find it without --server.
    #[arg(long)]
    no_announce: bool,
}

/// Runs the server until Ctrl-C or SIGTERM.
pub fn run(args: ServerArgs) -> Result<(), String> {
    log::set_level(args.log_level);
    let mut config = ServerConfig::default();
    config.partial_line_timeout = args.partial_line_timeout;
    config.idle_timeout = args.idle_timeout;
    config.send_timeout = args.send_timeout;
    config.durable_replies = args.state.is_some();
    let state = args.state.map(StateFile::open).transpose()?;
    let mut directory = Box::new(Directory::new());
    if let Some(state) = &state {
        let path = state.path().display();
        if state.load(&mut directory)? {
            log!(Info, "loaded {} rooms from {path}", directory.len());
        } else {
            log!(Info, "no state file at {path} yet: starting with no rooms");
        }
    }
    let server = Box::new(Server::with_directory(config, *directory));
    raise_descriptor_limit(args.max_connections);
    let addr = SocketAddr::new(args.bind, args.port);
    let listener = listen(addr).map_err(|e| {
        format!("cannot listen on {addr}: {e}; is another server using that port? Try --port")
    })?;
    let port = listener
        .local_addr()
        .map_err(|e| format!("cannot read the listening address: {e}"))?
        .port();
    let mut host = Host::new(listener, server, state, args.max_connections as usize)
        .map_err(|e| format!("cannot set up the event loop: {e}"))?;
    // Printed whatever the log level: people and scripts wait for it.
    log::plain(format_args!(
        "Chat Room Directory Server listening on port {port}..."
    ));
    let announcement = if args.no_announce {
        None
    } else {
        announce(port, args.bind)
    };
    host.run()
        .map_err(|e| format!("the event loop failed: {e}"))?;
    // Withdrawn before the last line, so a client that reads it no longer
    // finds this server.
    drop(announcement);
    log!(Info, "stopped: closed {} connections", host.closed_at_stop);
    log::plain(format_args!("Chat Room Directory Server stopped."));
    Ok(())
}

/// Announces the server over mDNS; a failure is logged, not fatal: the
/// directory works without it, clients then need --server.
fn announce(port: u16, bind: IpAddr) -> Option<Announcement> {
    match Announcement::start(port, bind, PROTOCOL_VERSION) {
        Ok(announcement) => {
            log!(
                Info,
                "announced on the LAN as {} ({SERVICE_TYPE})",
                announcement.instance
            );
            Some(announcement)
        }
        Err(e) => {
            log!(Warn, "{e}; clients will need --server to find this one");
            None
        }
    }
}

fn listen(addr: SocketAddr) -> io::Result<TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    platform::allow_quick_rebind(&socket)?;
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(LISTEN_BACKLOG)?;
    Ok(socket.into())
}

/// One accepted client.
struct Peer {
    stream: TcpStream,
    addr: SocketAddr,
    conn: Connection,
    /// What the poller watches for now.
    interest: Interest,
    /// The peer sent EOF: answer what it sent, then close.
    read_closed: bool,
    /// Listed in `Host::holding` (its replies wait for the disk).
    in_holding: bool,
}

/// Why a connection is being closed, for the log.
enum Close {
    /// The peer closed, or said `bye`, or a timer closed it.
    Orderly,
    /// The socket failed.
    Failed(io::Error),
}

struct Host {
    poller: Poller,
    listener: TcpListener,
    signals: StopSignals,
    server: Box<Server>,
    state: Option<StateFile>,
    /// Connections whose replies wait for the directory to be stored.
    holding: Vec<usize>,
    /// After a failed save, when to try again.
    retry_save_at: Option<StdInstant>,
    peers: Vec<Option<Peer>>,
    free: Vec<usize>,
    live: usize,
    max_connections: usize,
    start: StdInstant,
    accept_paused_until: Option<StdInstant>,
    closed_at_stop: usize,
}

impl Host {
    fn new(
        listener: TcpListener,
        server: Box<Server>,
        state: Option<StateFile>,
        max_connections: usize,
    ) -> io::Result<Host> {
        let poller = Poller::new()?;
        let signals = StopSignals::new()?;
        // SAFETY: both are deleted from the poller before they drop (in `run`).
        unsafe {
            poller.add_with_mode(&listener, Interest::readable(LISTENER_KEY), PollMode::Level)?;
            poller.add_with_mode(&signals, Interest::readable(SIGNAL_KEY), PollMode::Level)?;
        }
        Ok(Host {
            poller,
            listener,
            signals,
            server,
            state,
            holding: Vec::new(),
            retry_save_at: None,
            peers: Vec::new(),
            free: Vec::new(),
            live: 0,
            max_connections,
            start: StdInstant::now(),
            accept_paused_until: None,
            closed_at_stop: 0,
        })
    }

    fn now(&self) -> Instant {
        let micros = self.start.elapsed().as_micros();
        Instant::from_micros(u64::try_from(micros).unwrap_or(u64::MAX))
    }

    fn run(&mut self) -> io::Result<()> {
        let mut events = Events::new();
        let mut next_tick = StdInstant::now() + TIMER_TICK;
        loop {
            events.clear();
            let wait = self
                .next_wake(next_tick)
                .saturating_duration_since(StdInstant::now());
            match self.poller.wait(&mut events, Some(wait)) {
                Ok(_) => {}
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
            for event in events.iter() {
                match event.key {
                    LISTENER_KEY => self.accept_ready()?,
                    SIGNAL_KEY => {
                        let mut buf = [0u8; 16];
                        let _ = (&self.signals).read(&mut buf);
                        log!(Info, "signal received: stopping");
                        self.shutdown();
                        return Ok(());
                    }
                    // Writing is attempted after every event, readable or not.
                    key => self.peer_ready(key - FIRST_CONN_KEY, event.readable),
                }
            }
            let now = StdInstant::now();
            if self.accept_paused_until.is_some_and(|until| now >= until) {
                self.accept_paused_until = None;
                self.poller.modify_with_mode(
                    &self.listener,
                    Interest::readable(LISTENER_KEY),
                    PollMode::Level,
                )?;
            }
            if now >= next_tick {
                next_tick = now + TIMER_TICK;
                self.tick();
            }
            self.persist(now);
        }
    }

    /// When the loop must wake up even if no socket is ready: the next timer
    /// tick, the end of an accept pause, or now if changes wait to be saved
    /// (releasing held replies can let pipelined commands make more).
    fn next_wake(&self, next_tick: StdInstant) -> StdInstant {
        let mut wake = next_tick;
        if let Some(until) = self.accept_paused_until {
            wake = wake.min(until);
        }
        if self.server.poll_persist().is_some() {
            wake = wake.min(self.retry_save_at.unwrap_or_else(StdInstant::now));
        }
        wake
    }

    /// Stores the directory if this turn changed it, then releases the
    /// replies that waited for that. One write and one fsync for the turn.
    fn persist(&mut self, now: StdInstant) {
        let Some(changes) = self.server.poll_persist() else {
            return;
        };
        if self.retry_save_at.is_some_and(|at| now < at) {
            return;
        }
        let Some(state) = &self.state else {
            // Without a state file the core never holds replies.
            return;
        };
        if let Err(e) = state.save(self.server.directory()) {
            log!(
                Error,
                "cannot save the directory to {}: {e}; the changes' replies wait, \
                 retrying in {SAVE_RETRY:?}",
                state.path().display()
            );
            self.retry_save_at = Some(now + SAVE_RETRY);
            return;
        }
        self.retry_save_at = None;
        self.server.handle_persisted(changes);
        let core_now = self.now();
        for index in std::mem::take(&mut self.holding) {
            if let Some(Some(peer)) = self.peers.get_mut(index) {
                peer.in_holding = false;
                peer.conn.handle_durable(core_now, &mut self.server);
            }
            self.after_input(index);
        }
    }

    /// Stop accepting, close every connection.
    fn shutdown(&mut self) {
        let _ = self.poller.delete(&self.listener);
        let _ = self.poller.delete(&self.signals);
        for index in 0..self.peers.len() {
            if self.peers[index].is_some() {
                self.close(index, Close::Orderly);
                self.closed_at_stop += 1;
            }
        }
    }

    /// Runs the connection timers that are due.
    fn tick(&mut self) {
        let core_now = self.now();
        for index in 0..self.peers.len() {
            let due = match &self.peers[index] {
                Some(peer) => peer
                    .conn
                    .poll_timeout(&self.server)
                    .is_some_and(|at| at <= core_now),
                None => false,
            };
            if due {
                if let Some(peer) = &mut self.peers[index] {
                    peer.conn.handle_timeout(core_now, &mut self.server);
                }
                self.after_input(index);
            }
        }
    }

    fn accept_ready(&mut self) -> io::Result<()> {
        for _ in 0..ACCEPT_BUDGET {
            match self.listener.accept() {
                Ok((stream, addr)) => self.admit(stream, addr),
                Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) if is_out_of_descriptors(&e) => {
                    log!(
                        Warn,
                        "out of file descriptors ({e}); not accepting for {ACCEPT_BACKOFF:?}"
                    );
                    self.poller.modify_with_mode(
                        &self.listener,
                        Interest::none(LISTENER_KEY),
                        PollMode::Level,
                    )?;
                    self.accept_paused_until = Some(StdInstant::now() + ACCEPT_BACKOFF);
                    return Ok(());
                }
                // A connection that died in the backlog, and the like: log it
                // and keep serving.
                Err(e) => log!(Warn, "accept failed: {e}"),
            }
        }
        Ok(())
    }

    fn admit(&mut self, stream: TcpStream, addr: SocketAddr) {
        if self.live >= self.max_connections {
            refuse_busy(stream, addr, self.max_connections);
            return;
        }
        if let Err(e) = stream
            .set_nonblocking(true)
            .and_then(|()| stream.set_nodelay(true))
        {
            log!(Warn, "client {addr}: cannot set up the socket: {e}");
            return;
        }
        let index = self.free.pop().unwrap_or_else(|| {
            self.peers.push(None);
            self.peers.len() - 1
        });
        let key = index + FIRST_CONN_KEY;
        let interest = Interest::all(key);
        // SAFETY: the stream is deleted from the poller in `close` before it
        // drops; nothing else drops a peer.
        if let Err(e) = unsafe {
            self.poller
                .add_with_mode(&stream, interest, PollMode::Level)
        } {
            log!(Warn, "client {addr}: cannot watch the socket: {e}");
            self.free.push(index);
            return;
        }
        self.live += 1;
        log!(Info, "client {addr} connected ({} connected)", self.live);
        self.peers[index] = Some(Peer {
            stream,
            addr,
            conn: Connection::new(self.now()),
            interest,
            read_closed: false,
            in_holding: false,
        });
        self.after_input(index);
    }

    fn peer_ready(&mut self, index: usize, readable: bool) {
        let now = self.now();
        let Some(Some(peer)) = self.peers.get_mut(index) else {
            return;
        };
        if readable && !peer.read_closed {
            let mut buf = [0u8; limits::CONN_RECV_BUF];
            let mut budget = READ_BUDGET;
            while budget > 0 {
                let room = peer.conn.recv_capacity().min(buf.len());
                if room == 0 {
                    break;
                }
                match peer.stream.read(&mut buf[..room]) {
                    Ok(0) => {
                        peer.read_closed = true;
                        break;
                    }
                    Ok(n) => {
                        budget = budget.saturating_sub(n);
                        peer.conn.handle_bytes(now, &mut self.server, &buf[..n]);
                        drain_events(&mut self.server, peer.addr);
                        if n < room {
                            // The socket is drained; reading again would only
                            // say so (level-triggered: more data, or EOF,
                            // is reported by the next wait).
                            break;
                        }
                    }
                    Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == ErrorKind::Interrupted => {}
                    Err(e) => {
                        self.close(index, Close::Failed(e));
                        return;
                    }
                }
            }
        }
        self.after_input(index);
    }

    /// After anything happened to a peer: log its events, send what it has,
    /// close it if it is done, and watch for what it needs next.
    fn after_input(&mut self, index: usize) {
        let now = self.now();
        let Some(Some(peer)) = self.peers.get_mut(index) else {
            return;
        };
        drain_events(&mut self.server, peer.addr);
        if let Err(e) = flush(peer, now, &mut self.server) {
            self.close(index, Close::Failed(e));
            return;
        }
        let pending = !peer.conn.poll_transmit().is_empty();
        if peer.conn.is_finished() {
            // Aborted (its held replies, if any, are dropped) or done.
            self.close(index, Close::Orderly);
            return;
        } else if peer.conn.is_holding() {
            if !peer.in_holding {
                peer.in_holding = true;
                self.holding.push(index);
            }
        } else if peer.read_closed && !pending {
            self.close(index, Close::Orderly);
            return;
        }
        let key = index + FIRST_CONN_KEY;
        let wanted = Interest::new(
            key,
            !peer.read_closed && peer.conn.recv_capacity() > 0,
            pending,
        );
        if (wanted.readable, wanted.writable) != (peer.interest.readable, peer.interest.writable) {
            if let Err(e) = self
                .poller
                .modify_with_mode(&peer.stream, wanted, PollMode::Level)
            {
                self.close(index, Close::Failed(e));
                return;
            }
            peer.interest = wanted;
        }
    }

    fn close(&mut self, index: usize, why: Close) {
        let Some(peer) = self.peers.get_mut(index).and_then(Option::take) else {
            return;
        };
        let _ = self.poller.delete(&peer.stream);
        self.live -= 1;
        self.free.push(index);
        match why {
            Close::Orderly => log!(
                Info,
                "client {} connection closed ({} connected)",
                peer.addr,
                self.live
            ),
            Close::Failed(e) => log!(
                Info,
                "client {} connection closed: {e} ({} connected)",
                peer.addr,
                self.live
            ),
        }
    }
}

/// Writes the peer's pending output until the socket is full or this turn's
/// [`WRITE_BUDGET`] is spent (the poller then reports it writable again).
fn flush(peer: &mut Peer, now: Instant, server: &mut Server) -> io::Result<()> {
    let mut budget = WRITE_BUDGET;
    while budget > 0 {
        let pending = peer.conn.poll_transmit();
        if pending.is_empty() {
            return Ok(());
        }
        match peer.stream.write(pending) {
            Ok(0) => return Err(ErrorKind::WriteZero.into()),
            Ok(n) => {
                budget = budget.saturating_sub(n);
                peer.conn.handle_sent(now, server, n);
                drain_events(server, peer.addr);
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok(()),
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Logs what the core reported about the peer at `addr`.
fn drain_events(server: &mut Server, addr: SocketAddr) {
    while let Some(event) = server.poll_event() {
        match event {
            Event::Answered {
                command,
                room,
                error,
            } => {
                if !log::enabled(Level::Info) {
                    continue;
                }
                let verb = command.map_or("(bad line)", |c| c.verb());
                let room = room.as_deref().map(|r| format!(" {r}")).unwrap_or_default();
                match error {
                    None => log!(Info, "client {addr}: {verb}{room}: OK"),
                    Some(code) => log!(Info, "client {addr}: {verb}{room}: ERR {code}"),
                }
            }
            Event::TimedOut(which) => {
                let why = match which {
                    Timeout::PartialLine => "sent half a line and stopped",
                    Timeout::Idle => "was idle too long",
                    Timeout::Send => "stopped reading its replies",
                };
                log!(Warn, "client {addr} {why}: closing");
            }
            Event::Dropped(n) => log!(Warn, "{n} log events were dropped"),
            _ => {}
        }
    }
}

/// Tells a client over the connection limit why it is turned away.
fn refuse_busy(mut stream: TcpStream, addr: SocketAddr, max: usize) {
    let code = ErrorCode::Busy;
    let line =
        format!("ERR {code} the server is serving its limit of {max} clients; try again later\n");
    // Best effort on a fresh socket: the kernel buffer takes one short line.
    let _ = stream.set_nonblocking(true);
    let _ = stream.write(line.as_bytes());
    log!(
        Warn,
        "client {addr} refused: {max} clients connected already"
    );
}

/// Raises the soft limit on open files towards what `max_connections`
/// needs, as far as the hard limit allows, and warns if that is not enough.
fn raise_descriptor_limit(max_connections: u32) {
    let wanted = u64::from(max_connections) + SPARE_DESCRIPTORS;
    match rlimit::increase_nofile_limit(wanted) {
        Ok(got) if got < wanted => log!(
            Warn,
            "the open-file limit is {got}, below the {wanted} that {max_connections} clients \
             need; raise it (ulimit -n) or lower --max-connections"
        ),
        Ok(_) => {}
        Err(e) => log!(Warn, "cannot raise the open-file limit: {e}"),
    }
}

fn is_out_of_descriptors(e: &io::Error) -> bool {
    // EMFILE (24) and ENFILE (23) on Linux; ENOBUFS/ENOMEM also mean "not now".
    matches!(e.raw_os_error(), Some(23 | 24 | 105 | 12))
}
