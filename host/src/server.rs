//! The directory server host: one `polling` event loop that drives the
//! sans-IO [`roomcast_core::Server`] over real TCP sockets.
//!
//! Every socket is nonblocking and registered level-triggered, so interest
//! changes only when a connection's needs change (not a re-arm per event).
//! A connection that stalls costs only its own fixed buffers: the core stops
//! taking its input when its replies back up, and its timers close it.
//!
//! The loop sleeps until the next socket event or the earliest deadline:
//! every connection's [`Connection::poll_timeout`] is kept in an ordered set,
//! so finding and firing the due timers costs O(log n) each, not a scan.
//!
//! A connection the server ends in order (after `bye`, or after a timeout
//! and its `ERR timeout`) closes lingering: once every reply is sent, the
//! server shuts down its writing side and reads and discards what the
//! client still sends, for at most [`LINGER_TIMEOUT`], so that closing never
//! resets the connection while replies are still on their way.

use std::collections::hash_map::Entry;
use std::collections::{BTreeSet, HashMap};
use std::io::{self, ErrorKind, Read, Write};
use std::net::{IpAddr, Ipv4Addr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::time::{Duration, Instant as StdInstant};

use polling::{Event as Interest, Events, PollMode, Poller};
use roomcast_core::{
    AddressPool, Allocator, ConnId, Connection, Directory, ErrorCode, Event, GroupPrefix, Instant,
    PROTOCOL_VERSION, PortRange, Server, ServerConfig, Timeout, busy_reply,
    connections_quota_reply, limits,
};
use socket2::{Domain, Protocol, Socket, Type};

use crate::DEFAULT_PORT;
use crate::discovery::{Announcement, SERVICE_TYPE};
use crate::log::{self, Level, log};
use crate::owners;
use crate::platform::{self, StopSignals};
use crate::state::StateFile;

/// The most clients served at once unless `--max-connections` says
/// otherwise. One more gets `ERR busy` and is closed.
pub const DEFAULT_MAX_CONNECTIONS: u32 = 10_000;

/// The listen backlog: connections the kernel queues before we accept.
const LISTEN_BACKLOG: i32 = 1024;

/// How long a connection closed in order reads and discards what the client
/// still sends, after its last reply went out and its writing side was shut
/// down, before it is closed whatever happens. Closing with unread input
/// would reset the connection and could destroy replies the client has not
/// read yet; this bounds what a client that never closes can cost.
const LINGER_TIMEOUT: Duration = Duration::from_secs(2);

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
/// saved (disk full, say). The changes wait meanwhile, for at most
/// `--persist-timeout`; then they are undone and answered `ERR unavailable`.
const SAVE_RETRY: Duration = Duration::from_secs(1);

/// Descriptors the process keeps for itself besides one per connection:
/// stdio (3), the listener, the poller and its notifier and timer (3), the
/// signal pipe and its writers (3), the state file's lock, a save's temporary file and
/// folder (3), one accepted only to be refused `ERR busy`, and spare for
/// the logger and the libraries. The connection cap is lowered so these
/// always stay free: a save never fails for want of a descriptor.
const SPARE_DESCRIPTORS: u64 = 24;

/// The most bytes of the signal pipe read per wake-up (each signal writes
/// one byte; one is enough to stop).
const SIGNAL_READ: usize = 16;

/// Connection ids are `serial << CONN_SERIAL_SHIFT | slot`: the slot finds
/// the peer, the serial tells a new connection in a reused slot from the
/// one before it.
const CONN_SERIAL_SHIFT: u32 = 32;

/// The most connections accepted per readiness event of the listener.
const ACCEPT_BUDGET: usize = 256;

/// Poller keys 0 and 1 are the listener and the signal pipe; connection `i`
/// has key `i + FIRST_CONN_KEY`.
const LISTENER_KEY: usize = 0;
const SIGNAL_KEY: usize = 1;
const FIRST_CONN_KEY: usize = 2;

/// Refusals that repeat are logged in summary: the first refusal of a
/// connection over a quota (`ERR quota`), and the first connection turned
/// away (`quota connections`, `busy`), each get a line; the ones after are
/// counted and logged as one line with their count at most once per this
/// (when the next comes after it), and a connection's count left over is
/// logged when it closes. So a client flooding refused commands costs the
/// log a few lines, not one per command.
const REFUSAL_LOG_INTERVAL: Duration = Duration::from_secs(10);

/// Refusals of one kind not logged yet (see [`REFUSAL_LOG_INTERVAL`]).
#[derive(Debug, Default)]
struct Refusals {
    /// Refused since the last line about them.
    pending: u64,
    /// When the last line about them was logged.
    logged: Option<StdInstant>,
}

/// What to log for a refusal (see [`Refusals::note`]).
#[derive(Debug, PartialEq, Eq)]
enum RefusalLog {
    /// The first one: log it as itself.
    First,
    /// Log this many refusals (this one included) in one line.
    Summary(u64),
    /// Count it, log nothing now.
    Quiet,
}

impl Refusals {
    /// One more refusal at `now`.
    fn note(&mut self, now: StdInstant) -> RefusalLog {
        let Some(logged) = self.logged else {
            self.logged = Some(now);
            return RefusalLog::First;
        };
        self.pending = self.pending.saturating_add(1);
        if now.saturating_duration_since(logged) < REFUSAL_LOG_INTERVAL {
            return RefusalLog::Quiet;
        }
        self.logged = Some(now);
        RefusalLog::Summary(std::mem::take(&mut self.pending))
    }

    /// The refusals not logged yet; none are left.
    fn take_pending(&mut self) -> u64 {
        std::mem::take(&mut self.pending)
    }
}

/// Options of `roomcast server`.
#[derive(Debug, clap::Args)]
pub struct ServerArgs {
    /// The TCP port to listen on (the CRDP); 0 picks a free one.
    #[arg(long, short, default_value_t = DEFAULT_PORT)]
    port: u16,

    /// The address to listen on: 0.0.0.0 for every interface (IPv4), `::`
    /// for every interface over IPv6 and IPv4 both (dual-stack), 127.0.0.1
    /// for this machine only.
    #[arg(long, short, default_value_t = IpAddr::V4(Ipv4Addr::UNSPECIFIED))]
    bind: IpAddr,

    /// Where `makeroom <name>` (no address given) picks a room's group: a
    /// block of IPv4 groups inside 239.0.0.0/8 or IPv6 groups inside
    /// ff14::/16, ff15::/16 or ff18::/16. Give it up to 8 times for several
    /// blocks (they must not overlap). Default: 239.255.0.0/16, the
    /// organisation-local scope of RFC 2365.
    #[arg(long, value_name = "CIDR", value_parser = parse_group_pool)]
    group_pool: Vec<GroupPrefix>,

    /// The ports `makeroom <name>` picks from, both ends included. A room
    /// also reserves the port after its own, so both lie in the range.
    #[arg(long, value_name = "FIRST-LAST", value_parser = parse_port_range,
          default_value = "40000-49999")]
    port_range: PortRange,

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

    /// With --state: a change that cannot be stored within this long (the
    /// disk is full or gone) is undone and answered `ERR unavailable`.
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration,
          default_value = "5s")]
    persist_timeout: Duration,

    /// A file holding the operator's admin token (its first line, 16-64
    /// printable characters): `deleteroom <name> <admin token>` deletes any
    /// room. The file must be private to its owner (no group or other
    /// permission bits), or the server refuses to start.
    #[arg(long, value_name = "PATH")]
    admin_token_file: Option<PathBuf>,

    /// The most rooms that may exist at once made from one client address;
    /// one more `makeroom` gets `ERR quota rooms`.
    #[arg(long, value_name = "N", default_value_t = limits::MAX_ROOMS_PER_CLIENT)]
    max_rooms_per_client: usize,

    /// The most connections one client address may hold open at once; one
    /// more gets `ERR quota connections` and is closed.
    #[arg(long, value_name = "N", default_value_t = limits::MAX_CONNECTIONS_PER_CLIENT,
          value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..))]
    max_connections_per_client: usize,

    /// How many commands a second a connection may send on average; a line
    /// over it is answered `ERR quota rate` and not run. 0: no limit.
    #[arg(long, value_name = "N", default_value_t = limits::COMMANDS_PER_SECOND)]
    commands_per_second: u32,

    /// How many commands a connection may send at once (after a quiet
    /// time) before --commands-per-second holds it back.
    #[arg(long, value_name = "N", default_value_t = limits::COMMAND_BURST,
          value_parser = clap::value_parser!(u32).range(1..))]
    command_burst: u32,
}

/// Runs the server until Ctrl-C or SIGTERM.
pub fn run(args: ServerArgs) -> Result<(), String> {
    log::set_level(args.log_level);
    let mut config = ServerConfig::default();
    config.partial_line_timeout = args.partial_line_timeout;
    config.idle_timeout = args.idle_timeout;
    config.send_timeout = args.send_timeout;
    config.persist_timeout = args.persist_timeout;
    config.durable_replies = args.state.is_some();
    config.max_rooms_per_client = args.max_rooms_per_client;
    config.commands_per_second = args.commands_per_second;
    config.command_burst = args.command_burst;
    let admin = args
        .admin_token_file
        .as_deref()
        .map(owners::read_admin_token)
        .transpose()?;
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
    let pool = address_pool(&args.group_pool, args.port_range)?;
    let pool_text = pool.to_string();
    let mut server = Box::new(Server::with_directory(config, *directory));
    // Separate draws: what allocations show says nothing of the tokens.
    let draw = owners::random_seed()?;
    let mut allocation_seed = [0; 8];
    allocation_seed.copy_from_slice(&draw[..8]);
    server.set_allocator(Allocator::new(pool, u64::from_le_bytes(allocation_seed)));
    server.seed_random(owners::random_seed()?);
    if let Some(admin) = admin {
        server.set_admin_token(admin);
        log!(Info, "the admin token may delete any room");
    }
    let max_connections = connection_cap(args.max_connections)?;
    let addr = SocketAddr::new(args.bind, args.port);
    let listener = listen(addr).map_err(|e| {
        format!("cannot listen on {addr}: {e}; is another server using that port? Try --port")
    })?;
    let port = listener
        .local_addr()
        .map_err(|e| format!("cannot read the listening address: {e}"))?
        .port();
    let mut host = Host::new(listener, server, state, max_connections)
        .map(|mut host| {
            host.max_per_client = args.max_connections_per_client;
            host
        })
        .map_err(|e| format!("cannot set up the event loop: {e}"))?;
    // Printed whatever the log level: people and scripts wait for it.
    log::plain(format_args!(
        "Chat Room Directory Server listening on port {port}..."
    ));
    log!(Info, "makeroom without an address picks from {pool_text}");
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
    let turned_away = host.turned_away.take_pending();
    if turned_away > 0 {
        log!(
            Warn,
            "{turned_away} more connections were turned away (busy or quota) before the stop"
        );
    }
    log!(Info, "stopped: closed {} connections", host.closed_at_stop);
    log::plain(format_args!("Chat Room Directory Server stopped."));
    Ok(())
}

fn parse_group_pool(text: &str) -> Result<GroupPrefix, String> {
    GroupPrefix::parse(text).map_err(|e| e.to_string())
}

fn parse_port_range(text: &str) -> Result<PortRange, String> {
    PortRange::parse(text).map_err(|e| e.to_string())
}

/// The pool of `--group-pool` (the default block when none is given) and
/// `--port-range`.
fn address_pool(groups: &[GroupPrefix], ports: PortRange) -> Result<AddressPool, String> {
    if groups.is_empty() {
        let default = AddressPool::default();
        return AddressPool::new(default.groups(), ports).map_err(|e| e.to_string());
    }
    AddressPool::new(groups, ports).map_err(|e| format!("--group-pool: {e}"))
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
    if addr.is_ipv6() && addr.ip().is_unspecified() {
        // `::` serves IPv4 clients too (as ::ffff:a.b.c.d), whatever the
        // system's default (Linux: net.ipv6.bindv6only; Windows: v6 only).
        socket.set_only_v6(false)?;
    }
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
    /// Closed in order and lingering until then: writing is shut down,
    /// input is read and dropped.
    linger_until: Option<Instant>,
    /// This peer's entry in `Host::timers`, if any.
    timer: Option<Instant>,
    /// Listed in `Host::waiting` (its next reply waits for the disk).
    in_waiting: bool,
    /// Its commands refused over a quota, for the log.
    quota_refused: Refusals,
}

impl Peer {
    /// When this peer must be looked at again whatever its socket does.
    fn deadline(&self) -> Option<Instant> {
        match self.linger_until {
            Some(at) => Some(at),
            None => self.conn.poll_timeout(),
        }
    }
}

/// Why a connection is being closed, for the log.
enum Close {
    /// The peer closed, or said `bye`, or a timer closed it.
    Orderly,
    /// The socket failed, or the peer reset it.
    Failed(io::Error),
}

struct Host {
    poller: Poller,
    listener: TcpListener,
    signals: StopSignals,
    server: Box<Server>,
    state: Option<StateFile>,
    /// Connections whose next reply waits for changes to be stored.
    waiting: Vec<usize>,
    /// After a failed save, when to try again.
    retry_save_at: Option<StdInstant>,
    peers: Vec<Option<Peer>>,
    free: Vec<usize>,
    /// Every peer's next deadline, earliest first, with its slot.
    timers: BTreeSet<(Instant, usize)>,
    /// Counts connections, for their ids.
    serial: u64,
    live: usize,
    max_connections: usize,
    /// Open connections per client address, for
    /// `--max-connections-per-client`; an address leaves when its last
    /// connection closes.
    per_client: HashMap<IpAddr, usize>,
    max_per_client: usize,
    start: StdInstant,
    accept_paused_until: Option<StdInstant>,
    closed_at_stop: usize,
    /// Connections turned away (`busy`, `quota connections`), for the log.
    turned_away: Refusals,
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
            waiting: Vec::new(),
            retry_save_at: None,
            peers: Vec::new(),
            free: Vec::new(),
            timers: BTreeSet::new(),
            serial: 0,
            live: 0,
            max_connections,
            per_client: HashMap::new(),
            max_per_client: limits::MAX_CONNECTIONS_PER_CLIENT,
            start: StdInstant::now(),
            accept_paused_until: None,
            closed_at_stop: 0,
            turned_away: Refusals::default(),
        })
    }

    fn now(&self) -> Instant {
        let micros = self.start.elapsed().as_micros();
        Instant::from_micros(u64::try_from(micros).unwrap_or(u64::MAX))
    }

    /// The wall-clock instant of a core instant.
    fn std_instant(&self, at: Instant) -> StdInstant {
        self.start + Duration::from_micros(at.as_micros())
    }

    fn run(&mut self) -> io::Result<()> {
        let mut events = Events::new();
        loop {
            events.clear();
            let wait = self
                .next_wake()
                .map(|at| at.saturating_duration_since(StdInstant::now()));
            if let Err(e) = self.poller.wait(&mut events, wait) {
                if e.kind() == ErrorKind::Interrupted {
                    continue;
                }
                return Err(e);
            }
            for event in events.iter() {
                match event.key {
                    LISTENER_KEY => self.accept_ready()?,
                    SIGNAL_KEY => {
                        let mut buf = [0u8; SIGNAL_READ];
                        let _ = (&self.signals).read(&mut buf);
                        log!(Info, "signal received: stopping");
                        self.shutdown();
                        return Ok(());
                    }
                    key => self.peer_ready(key - FIRST_CONN_KEY, event),
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
            // Store first: a change made this turn gets its save attempt
            // before its persist timeout is checked (even at 0 s).
            self.persist(now);
            self.fire_timers();
        }
    }

    /// When the loop must wake up even if no socket is ready: the earliest
    /// connection deadline, the server's (a change due to be undone), the
    /// end of an accept pause, or now if changes wait to be saved.
    fn next_wake(&self) -> Option<StdInstant> {
        let core = [
            self.timers.first().map(|&(at, _)| at),
            self.server.poll_timeout(),
        ];
        let mut wake = core
            .into_iter()
            .flatten()
            .min()
            .map(|at| self.std_instant(at));
        let mut earliest = |at: StdInstant| wake = Some(wake.map_or(at, |w| w.min(at)));
        if let Some(until) = self.accept_paused_until {
            earliest(until);
        }
        if self.server.poll_persist().is_some() {
            earliest(self.retry_save_at.unwrap_or_else(StdInstant::now));
        }
        wake
    }

    /// Runs the timers that are due: each costs O(log n) to find.
    fn fire_timers(&mut self) {
        let core_now = self.now();
        let mut due = Vec::new();
        while let Some(&(at, index)) = self.timers.first() {
            if at > core_now {
                break;
            }
            self.timers.pop_first();
            due.push(index);
        }
        for index in due {
            let Some(Some(peer)) = self.peers.get_mut(index) else {
                continue;
            };
            peer.timer = None;
            if peer.linger_until.is_some() {
                // The client kept sending (or never closed): enough. What
                // it sent last is dropped first: unread input at the close
                // would make it a reset.
                let why = match discard_input(&mut peer.stream) {
                    Discarded::Failed(e) => Close::Failed(e),
                    _ => Close::Orderly,
                };
                self.close(index, why);
                continue;
            }
            peer.conn.handle_timeout(core_now, &mut self.server);
            self.after_input(index);
        }
        if self.server.poll_timeout().is_some_and(|at| at <= core_now) {
            self.server.handle_timeout(core_now);
            self.drain_events();
            self.hand_out_outcomes();
        }
    }

    /// Stores the directory if this turn changed it, then answers the
    /// changes that waited for that. One write and one fsync for the turn.
    fn persist(&mut self, now: StdInstant) {
        let Some(version) = self.server.poll_persist() else {
            return;
        };
        if self.retry_save_at.is_some_and(|at| now < at) {
            return;
        }
        let Some(state) = &self.state else {
            // Without a state file the core never stages changes.
            return;
        };
        let before = file_stamp(state.path());
        if let Err(e) = state.save(self.server.staged()) {
            log!(
                Error,
                "cannot save the directory to {}: {e}; retrying in {}; changes not \
                 stored within {} are undone and answered ERR unavailable",
                state.path().display(),
                humantime::format_duration(SAVE_RETRY),
                humantime::format_duration(self.server.config().persist_timeout),
            );
            // A save replaces the file last (a rename): if the file is as it
            // was, the failure came before, and once every waiting change is
            // undone there is nothing left to store (no retry for ever on a
            // full disk). If it may have changed, the undo is stored too.
            let untouched = file_stamp(state.path()) == before;
            self.server.handle_persist_failed(untouched);
            self.retry_save_at = Some(now + SAVE_RETRY);
            return;
        }
        self.retry_save_at = None;
        let core_now = self.now();
        self.server.handle_persisted(core_now, version);
        self.hand_out_outcomes();
    }

    /// Gives each stored or undone change to its connection, then lets the
    /// other waiting connections try their next command again.
    fn hand_out_outcomes(&mut self) {
        let core_now = self.now();
        let mut any = false;
        while let Some(resolved) = self.server.poll_resolved() {
            any = true;
            let Some(index) = self.slot_of(resolved.conn) else {
                // Closed meanwhile.
                continue;
            };
            if let Some(Some(peer)) = self.peers.get_mut(index) {
                peer.conn
                    .handle_resolved(core_now, &mut self.server, resolved);
            }
            self.after_input(index);
        }
        if !any {
            return;
        }
        for index in std::mem::take(&mut self.waiting) {
            if let Some(Some(peer)) = self.peers.get_mut(index) {
                peer.in_waiting = false;
                peer.conn.handle_wake(core_now, &mut self.server);
            }
            self.after_input(index);
        }
    }

    /// The slot of the live connection `id`, if it is still open.
    fn slot_of(&self, id: ConnId) -> Option<usize> {
        let index = usize::try_from(id.0 & u64::from(u32::MAX)).ok()?;
        match self.peers.get(index) {
            Some(Some(peer)) if peer.conn.id() == id => Some(index),
            _ => None,
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

    fn accept_ready(&mut self) -> io::Result<()> {
        for _ in 0..ACCEPT_BUDGET {
            match self.listener.accept() {
                Ok((stream, addr)) => {
                    // An IPv4 client of a dual-stack listener is logged as
                    // 192.0.2.1, not ::ffff:192.0.2.1.
                    let addr = SocketAddr::new(addr.ip().to_canonical(), addr.port());
                    self.admit(stream, addr)
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
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
            let log = self.turned_away.note(StdInstant::now());
            refuse_busy(stream, addr, self.max_connections, log);
            return;
        }
        let from_addr = self.per_client.get(&addr.ip()).copied().unwrap_or(0);
        if from_addr >= self.max_per_client {
            let log = self.turned_away.note(StdInstant::now());
            refuse_quota(stream, addr, self.max_per_client, log);
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
        self.serial += 1;
        let id = ConnId(self.serial << CONN_SERIAL_SHIFT | index as u64);
        self.live += 1;
        *self.per_client.entry(addr.ip()).or_insert(0) += 1;
        log!(Info, "client {addr} connected ({} connected)", self.live);
        let conn = Connection::with_peer(self.now(), id, self.server.config(), addr.ip());
        self.peers[index] = Some(Peer {
            stream,
            addr,
            conn,
            interest,
            read_closed: false,
            linger_until: None,
            timer: None,
            in_waiting: false,
            quota_refused: Refusals::default(),
        });
        self.after_input(index);
    }

    fn peer_ready(&mut self, index: usize, event: Interest) {
        let now = self.now();
        let Some(Some(peer)) = self.peers.get_mut(index) else {
            return;
        };
        // A lingering peer only has its input read and dropped, whatever
        // the event: a hang-up is also reported once both sides have shut
        // writing down (our FIN, then the client's half-close) while the
        // client's last lines are still unread, and closing before they are
        // read would reset the replies it has yet to read.
        if peer.linger_until.is_some() {
            let hung_up = event.is_err() == Some(true) || event.is_interrupt();
            self.drain_lingering(index, hung_up);
            return;
        }
        // A reset (or both directions shut): nothing can be sent or read any
        // more, whatever the connection still waits for. Closed at once, so
        // the level-triggered event is not reported again and again.
        if event.is_err() == Some(true) || event.is_interrupt() {
            let error = match peer.stream.take_error() {
                Ok(Some(e)) => e,
                Ok(None) => io::Error::from(ErrorKind::ConnectionReset),
                Err(e) => e,
            };
            self.close(index, Close::Failed(error));
            return;
        }
        if event.readable && !peer.read_closed {
            self.read_input(index, now);
        }
        self.after_input(index);
    }

    /// Reads what the peer sent, as much as its connection takes, within
    /// [`READ_BUDGET`].
    fn read_input(&mut self, index: usize, now: Instant) {
        let mut buf = [0u8; limits::CONN_RECV_BUF];
        let mut budget = READ_BUDGET;
        while budget > 0 {
            let Some(Some(peer)) = self.peers.get_mut(index) else {
                return;
            };
            let room = peer.conn.recv_capacity().min(buf.len());
            if room == 0 {
                return;
            }
            match peer.stream.read(&mut buf[..room]) {
                Ok(0) => {
                    peer.read_closed = true;
                    return;
                }
                Ok(n) => {
                    budget = budget.saturating_sub(n);
                    peer.conn.handle_bytes(now, &mut self.server, &buf[..n]);
                    self.drain_events();
                    if n < room {
                        // The socket is drained; reading again would only
                        // say so (level-triggered: more data, or EOF, is
                        // reported by the next wait).
                        return;
                    }
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => {
                    self.close(index, Close::Failed(e));
                    return;
                }
            }
        }
    }

    /// Reads and drops what a lingering peer still sends, within
    /// [`READ_BUDGET`]; closes it at its EOF or on an error, or, after a
    /// hang-up, once nothing is left to read (the hang-up would otherwise
    /// be reported again and again). The budget spent, the level-triggered
    /// poller reports what is left.
    fn drain_lingering(&mut self, index: usize, hung_up: bool) {
        let Some(Some(peer)) = self.peers.get_mut(index) else {
            return;
        };
        match discard_input(&mut peer.stream) {
            Discarded::Eof => self.close(index, Close::Orderly),
            Discarded::Failed(e) => self.close(index, Close::Failed(e)),
            Discarded::Empty if hung_up => self.close(index, Close::Orderly),
            Discarded::Empty | Discarded::Budget => {}
        }
    }

    /// Logs what the core reported, naming the client each event is about.
    /// A command refused over a quota is logged the first time, then in
    /// summary (see [`REFUSAL_LOG_INTERVAL`]).
    fn drain_events(&mut self) {
        while let Some(event) = self.server.poll_event() {
            let index = event.conn().and_then(|id| self.slot_of(id));
            let peer = index.and_then(|index| self.peers[index].as_mut());
            let addr = peer.as_ref().map(|peer| peer.addr);
            if let (
                Some(peer),
                Event::Answered {
                    error: Some(ErrorCode::Quota),
                    ..
                },
            ) = (peer, &event)
            {
                match peer.quota_refused.note(StdInstant::now()) {
                    RefusalLog::First => log_event(&event, addr),
                    RefusalLog::Summary(n) => log!(
                        Info,
                        "client {}: {n} more commands refused over a quota \
                         (ERR quota) in the last {} s or so",
                        peer.addr,
                        REFUSAL_LOG_INTERVAL.as_secs()
                    ),
                    RefusalLog::Quiet => {}
                }
                continue;
            }
            log_event(&event, addr);
        }
    }

    /// After anything happened to a peer: log its events, send what it has,
    /// close it if it is done, and watch for what it needs next.
    fn after_input(&mut self, index: usize) {
        let now = self.now();
        self.drain_events();
        let Some(Some(peer)) = self.peers.get_mut(index) else {
            return;
        };
        if peer.linger_until.is_none() {
            let flushed = flush(peer, now, &mut self.server);
            self.drain_events();
            if let Err(e) = flushed {
                self.close(index, Close::Failed(e));
                return;
            }
        }
        let Some(Some(peer)) = self.peers.get_mut(index) else {
            return;
        };
        let pending = !peer.conn.poll_transmit().is_empty();
        // A lingering peer only has its input read and dropped.
        let serving = peer.linger_until.is_none();
        if serving && peer.conn.is_finished() {
            if peer.conn.is_aborted() || peer.read_closed {
                // Dropped for not reading, or the peer is done sending:
                // nothing to wait for.
                self.close(index, Close::Orderly);
                return;
            }
            // Every reply is out: say so with a FIN, and keep reading so
            // that the close does not reset what the peer has yet to read.
            if let Err(e) = peer.stream.shutdown(Shutdown::Write) {
                self.close(index, Close::Failed(e));
                return;
            }
            peer.linger_until = Some(now + LINGER_TIMEOUT);
        } else if serving && peer.conn.is_waiting() {
            if !peer.in_waiting {
                peer.in_waiting = true;
                self.waiting.push(index);
            }
        } else if serving && peer.read_closed && !pending {
            self.close(index, Close::Orderly);
            return;
        }
        let lingering = peer.linger_until.is_some();
        let key = index + FIRST_CONN_KEY;
        let wanted = Interest::new(
            key,
            lingering || (!peer.read_closed && peer.conn.recv_capacity() > 0),
            !lingering && pending,
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
        let deadline = peer.deadline();
        if deadline != peer.timer {
            if let Some(old) = peer.timer.take() {
                self.timers.remove(&(old, index));
            }
            if let Some(at) = deadline {
                self.timers.insert((at, index));
            }
            peer.timer = deadline;
        }
    }

    fn close(&mut self, index: usize, why: Close) {
        let Some(mut peer) = self.peers.get_mut(index).and_then(Option::take) else {
            return;
        };
        let refused = peer.quota_refused.take_pending();
        if refused > 0 {
            log!(
                Info,
                "client {}: {refused} more commands refused over a quota (ERR quota) \
                 before it closed",
                peer.addr
            );
        }
        let _ = self.poller.delete(&peer.stream);
        if let Some(at) = peer.timer {
            self.timers.remove(&(at, index));
        }
        self.live -= 1;
        if let Entry::Occupied(mut from_addr) = self.per_client.entry(peer.addr.ip()) {
            *from_addr.get_mut() -= 1;
            if *from_addr.get() == 0 {
                from_addr.remove();
            }
        }
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
                "client {} connection closed ({} connected): {e}",
                peer.addr,
                self.live
            ),
        }
    }
}

/// What tells one version of the state file from another: its length
/// and when it was last written (a save writes a new file and renames it
/// over the old one). `None` if there is none (or it cannot be read).
fn file_stamp(path: &std::path::Path) -> Option<(u64, std::time::SystemTime)> {
    let meta = std::fs::symlink_metadata(path).ok()?;
    Some((meta.len(), meta.modified().ok()?))
}

/// What [`discard_input`] found.
enum Discarded {
    /// The peer's EOF: nothing more will come.
    Eof,
    /// Nothing left to read for now.
    Empty,
    /// [`READ_BUDGET`] spent with input left.
    Budget,
    /// Reading failed (a reset).
    Failed(io::Error),
}

/// Reads and drops the peer's input, at most [`READ_BUDGET`] bytes.
fn discard_input(stream: &mut TcpStream) -> Discarded {
    let mut sink = [0u8; limits::CONN_RECV_BUF];
    let mut budget = READ_BUDGET;
    while budget > 0 {
        match stream.read(&mut sink) {
            Ok(0) => return Discarded::Eof,
            Ok(n) => budget = budget.saturating_sub(n),
            Err(e) if e.kind() == ErrorKind::WouldBlock => return Discarded::Empty,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) => return Discarded::Failed(e),
        }
    }
    Discarded::Budget
}

/// Writes the peer's pending output until the socket is full or this turn's
/// [`WRITE_BUDGET`] is spent (the poller then reports it writable again).
/// The caller drains the server's events afterwards.
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
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok(()),
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Logs one event from the core; `addr` is the client it is about.
fn log_event(event: &Event, addr: Option<SocketAddr>) {
    let client = match addr {
        Some(addr) => format!("client {addr}"),
        None => "a closed client".to_owned(),
    };
    match event {
        Event::Answered {
            command,
            room,
            error,
            ..
        } => {
            if !log::enabled(Level::Info) {
                return;
            }
            let verb = command.map_or("(bad line)", |c| c.verb());
            let room = room.as_deref().map(|r| format!(" {r}")).unwrap_or_default();
            match error {
                None => log!(Info, "{client}: {verb}{room}: OK"),
                Some(code) => log!(Info, "{client}: {verb}{room}: ERR {code}"),
            }
        }
        Event::TimedOut { timeout, .. } => {
            let why = match timeout {
                Timeout::PartialLine => "sent half a line and stopped",
                Timeout::Idle => "was idle too long",
                Timeout::Send => "stopped reading its replies",
            };
            log!(Warn, "{client} {why}: closing");
        }
        Event::Undone(n) => log!(
            Error,
            "{n} changes could not be stored in time: undone, answered ERR unavailable"
        ),
        Event::Dropped(n) => log!(Warn, "{n} log events were dropped"),
        other => log!(Info, "{client}: {other:?}"),
    }
}

/// Tells a client over the connection limit why it is turned away.
/// Logged in summary (see [`REFUSAL_LOG_INTERVAL`]): `log` says what.
fn refuse_busy(mut stream: TcpStream, addr: SocketAddr, max: usize, log: RefusalLog) {
    let line = busy_reply(max);
    // Best effort on a fresh socket: the kernel buffer takes one short line.
    let _ = stream.set_nonblocking(true);
    let _ = stream.write(line.as_bytes());
    match log {
        RefusalLog::First => log!(
            Warn,
            "client {addr} refused: {max} clients connected already"
        ),
        RefusalLog::Summary(n) => log_turned_away(n),
        RefusalLog::Quiet => {}
    }
}

/// Logged in summary (see [`REFUSAL_LOG_INTERVAL`]): `log` says what.
fn refuse_quota(mut stream: TcpStream, addr: SocketAddr, max: usize, log: RefusalLog) {
    let line = connections_quota_reply(max);
    // Best effort on a fresh socket: the kernel buffer takes one short line.
    let _ = stream.set_nonblocking(true);
    let _ = stream.write(line.as_bytes());
    match log {
        RefusalLog::First => log!(
            Warn,
            "client {addr} refused: its address holds {max} connections already"
        ),
        RefusalLog::Summary(n) => log_turned_away(n),
        RefusalLog::Quiet => {}
    }
}

fn log_turned_away(n: u64) {
    log!(
        Warn,
        "{n} more connections were turned away (busy, or their address over its \
         connection quota) in the last {} s or so",
        REFUSAL_LOG_INTERVAL.as_secs()
    );
}

/// How many clients may be served at once: `max_connections`, or fewer if
/// the open-file limit cannot hold that many besides the
/// [`SPARE_DESCRIPTORS`] (the soft limit is raised as far as the hard limit
/// allows first). Said in the log when lowered.
fn connection_cap(max_connections: u32) -> Result<usize, String> {
    let wanted = u64::from(max_connections) + SPARE_DESCRIPTORS;
    let got = match rlimit::increase_nofile_limit(wanted) {
        Ok(got) => got,
        Err(e) => {
            log!(Warn, "cannot raise the open-file limit: {e}");
            platform::open_file_limit().unwrap_or(wanted)
        }
    };
    if got >= wanted {
        return Ok(max_connections as usize);
    }
    let cap = got.saturating_sub(SPARE_DESCRIPTORS);
    if cap == 0 {
        return Err(format!(
            "the open-file limit is {got}, too low to serve anyone: the server keeps \
             {SPARE_DESCRIPTORS} descriptors for itself. Raise it (ulimit -n)"
        ));
    }
    log!(
        Warn,
        "the open-file limit is {got}: serving at most {cap} clients at once, not \
         {max_connections}, so that {SPARE_DESCRIPTORS} descriptors stay free for the \
         server itself; raise the limit (ulimit -n) to serve more"
    );
    Ok(usize::try_from(cap).unwrap_or(usize::MAX))
}

/// Whether `accept` failed for want of descriptors or memory: "not now".
fn is_out_of_descriptors(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_log_the_first_then_one_summary_per_interval_at_its_edge() {
        let start = StdInstant::now();
        let mut r = Refusals::default();
        assert_eq!(r.note(start), RefusalLog::First);
        assert_eq!(r.note(start), RefusalLog::Quiet);
        let edge = start + REFUSAL_LOG_INTERVAL;
        assert_eq!(r.note(edge - Duration::from_millis(1)), RefusalLog::Quiet);
        assert_eq!(r.note(edge), RefusalLog::Summary(3));
        assert_eq!(r.note(edge), RefusalLog::Quiet);
        assert_eq!(r.take_pending(), 1);
        assert_eq!(r.take_pending(), 0);
        assert_eq!(r.note(edge + REFUSAL_LOG_INTERVAL), RefusalLog::Summary(1));
    }
}
