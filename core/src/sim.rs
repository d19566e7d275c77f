//! Deterministic networks for tests: real machines, virtual time (test and
//! `_sim` feature only; not part of the public API).
//!
//! Two harnesses live here: this module's pair harness ([`Net`]: clients
//! and the directory server over TCP and multicast), and [`room`], the
//! seeded simulator of the room protocol (many chat sessions over a lossy
//! multicast LAN).
//!
//! [`Net`] runs the real [`Client`] machines against the real [`Server`]
//! machine in memory. Nothing reads a clock: time is a virtual [`Instant`]
//! that starts at zero and moves only from event to event. Events wait in
//! one queue ordered by (time, sequence number), so ties keep the order in
//! which they were made and a run is the same on every machine.
//!
//! - **TCP** is a pair of ordered byte pipes per connection. Each write is
//!   cut at points drawn from the seeded generator into segments that
//!   arrive one [`LINK_DELAY`] later, in order. A receiver that takes only
//!   part of what arrived (its buffer is full) is offered the rest again
//!   after its next step, as a socket buffer would.
//! - **Multicast** fans each datagram out to every member of its group and
//!   port, the sender included (loopback), one [`LINK_DELAY`] later.
//! - **Hosts** are modelled as `host/` drives the machines: outputs drained
//!   after every input, what the host learns meanwhile (a join done or
//!   failed) handed back once the drain is over, and the user's lines held
//!   until the client is ready for them (or acts on them at once).
//! - **A hostile server** ([`Net::add_hostile_server`]) is a scripted peer
//!   for what the real server never does (trickled rows, garbage): the test
//!   writes its bytes with [`Net::hostile_send`].
//!
//! After every event the harness checks that no machine asks for a
//! deadline in the past, and that a timeout moves the deadline on (a
//! machine that did neither would spin a host's event loop). A failed check
//! panics with the seed and the trace of the run.
//!
//! It is shaped to grow into the chat protocol's simulator: more clients
//! are just more nodes, and the multicast medium is where loss,
//! duplication, reordering and partitions will go.

use std::boxed::Box;
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::string::String;
use std::vec::Vec;
use std::{format, vec};

mod rng;
pub mod room;
mod server;

use core::net::IpAddr;
use core::time::Duration;

use crate::chat::Channel;
use crate::client::{Client, ClientConfig, ConnectFailure, Output};
use crate::directory::Directory;
use crate::server::ServerConfig;
use crate::time::Instant;

/// Where client `c`'s datagrams come from: its own address (every client
/// is on a host of its own, sending from one socket).
pub fn client_addr(c: usize) -> core::net::SocketAddr {
    let host = u8::try_from(c % 250).unwrap_or(0) + 1;
    core::net::SocketAddr::new(core::net::Ipv4Addr::new(10, 0, 0, host).into(), 40_000)
}

/// How long a segment or a datagram takes to arrive.
pub const LINK_DELAY: Duration = Duration::from_millis(1);

/// The most events one run may take: a run that does not settle is a bug
/// in a machine (or the harness), not a reason to hang the test suite.
pub const MAX_EVENTS: usize = 1_000_000;

pub use self::rng::Rng;
pub use self::server::{HostileServer, ServerNode};

/// What the user does.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Input {
    Line(Vec<u8>),
    LeaveChat,
    Interrupt,
    End,
}

/// One client and its host.
pub struct ClientNode {
    pub client: Box<Client>,
    /// Every output, with the time it was carried out.
    pub log: Vec<(Instant, Output)>,
    /// The user's input not yet handed over.
    typed: VecDeque<Input>,
    /// The open (or opening) directory connection: a pipe index.
    pipe: Option<usize>,
    /// The group joined, if any.
    group: Option<(IpAddr, u16)>,
    /// `Some(detail)`: joins fail with this error.
    pub join_error: Option<String>,
    /// Joins are held: the host reports them only when the test says so
    /// ([`Net::report_joined`]).
    pub hold_joins: bool,
    /// Reports to hand over once the drain is over.
    deferred: Vec<Report>,
    /// The passphrase the host gives for private rooms; `None`: the user
    /// cancels at the passphrase prompt.
    pub passphrase: Option<Vec<u8>>,
}

#[derive(Clone, Debug)]
enum Report {
    Joined,
    JoinFailed(String),
    ConnectFailed(ConnectFailure),
    /// The host's answer to `Output::DeriveKey`: a secret, or cancelled.
    RoomSecret(Option<(crate::privacy::RoomSecret, [u8; 16])>),
}

/// The simulated host's stand-in for Argon2id (which the `no_std` core
/// does not have): SHA-256 of the passphrase and the salt. The same
/// passphrase and salt give the same secret, as Argon2id would.
pub fn sim_room_secret(
    passphrase: &[u8],
    salt: &crate::privacy::Salt,
) -> crate::privacy::RoomSecret {
    use sha2::Digest as _;
    let mut hash = sha2::Sha256::new();
    hash.update(b"roomcast sim room secret");
    hash.update(salt.0);
    hash.update(passphrase);
    crate::privacy::RoomSecret(hash.finalize().into())
}

/// The wall clock of the simulated hosts at `Instant::ZERO` (Unix ms):
/// they all agree.
pub const SIM_WALL_MS: u64 = 1_800_000_000_000;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Peer {
    Real(u64),
    Hostile,
}

/// One TCP connection between client `client` and a server.
struct Pipe {
    peer: Peer,
    /// Arrived at the client, not yet taken by it.
    at_client: Vec<u8>,
    /// Arrived at the server, not yet taken by it.
    at_server: Vec<u8>,
    /// When the last segment each way arrives (segments keep their order).
    last_to_client: Instant,
    last_to_server: Instant,
    client_open: bool,
    server_open: bool,
    /// The server's FIN arrived; the client is told once it took the bytes.
    fin_at_client: bool,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Ev {
    Connected {
        client: usize,
        hostile: bool,
    },
    Refused {
        client: usize,
    },
    ToServer {
        pipe: usize,
        bytes: Vec<u8>,
    },
    ToClient {
        pipe: usize,
        bytes: Vec<u8>,
    },
    FinToServer {
        pipe: usize,
    },
    FinToClient {
        pipe: usize,
    },
    Datagram {
        to: usize,
        /// The sending client.
        from: usize,
        group: (IpAddr, u16),
        channel: Channel,
        bytes: Vec<u8>,
    },
    Timer,
}

/// The simulated network; see the module docs.
pub struct Net {
    seed: u64,
    rng: Rng,
    now: Instant,
    seq: u64,
    queue: BTreeMap<(Instant, u64), Ev>,
    /// Where a timer event is queued, so each deadline is queued once.
    timers: BTreeSet<Instant>,
    server_addr: Option<String>,
    pub server: Option<Box<ServerNode>>,
    hostile_addr: Option<String>,
    pub hostile: HostileServer,
    pub clients: Vec<ClientNode>,
    pipes: Vec<Pipe>,
    /// The largest segment a write is cut into (at least 1).
    pub max_segment: usize,
    trace: Vec<String>,
    events: usize,
}

impl Net {
    /// An empty network; `seed` decides every random choice.
    pub fn new(seed: u64) -> Self {
        Self {
            seed,
            rng: Rng::new(seed),
            now: Instant::ZERO,
            seq: 0,
            queue: BTreeMap::new(),
            timers: BTreeSet::new(),
            server_addr: None,
            server: None,
            hostile_addr: None,
            hostile: HostileServer::default(),
            clients: Vec::new(),
            pipes: Vec::new(),
            max_segment: 64,
            trace: Vec::new(),
            events: 0,
        }
    }

    /// The virtual time now.
    pub fn now(&self) -> Instant {
        self.now
    }

    /// Starts the real directory server, reached as `addr` (`HOST:PORT`).
    pub fn add_server(&mut self, addr: &str, config: ServerConfig, directory: Directory) {
        self.server_addr = Some(addr.into());
        self.server = Some(Box::new(ServerNode::new(config, directory)));
    }

    /// Puts a scripted, hostile server at `addr`.
    pub fn add_hostile_server(&mut self, addr: &str) {
        self.hostile_addr = Some(addr.into());
    }

    /// Starts a client now; returns its index.
    pub fn add_client(&mut self, config: ClientConfig) -> usize {
        let client = Box::new(Client::new(config, self.now));
        self.clients.push(ClientNode {
            client,
            log: Vec::new(),
            typed: VecDeque::new(),
            pipe: None,
            group: None,
            join_error: None,
            hold_joins: false,
            deferred: Vec::new(),
            passphrase: None,
        });
        self.settle();
        self.clients.len() - 1
    }

    /// The user of client `c` types `line` (handed over as the host would).
    pub fn type_line(&mut self, c: usize, line: &str) {
        self.input(c, Input::Line(line.as_bytes().to_vec()));
    }

    /// The user of client `c` does `input`.
    pub fn input(&mut self, c: usize, input: Input) {
        self.trace(format!("client {c} input {input:?}"));
        self.clients[c].typed.push_back(input);
        self.settle();
    }

    /// The scripted server writes `bytes` to its latest connection.
    pub fn hostile_send(&mut self, bytes: &[u8]) {
        let pipe = self
            .hostile
            .pipe
            .expect("no connection to the hostile server");
        self.write_to_client(pipe, bytes);
    }

    /// The scripted server closes its latest connection.
    pub fn hostile_close(&mut self) {
        let pipe = self
            .hostile
            .pipe
            .expect("no connection to the hostile server");
        self.close_server_side(pipe);
    }

    /// The server loses every connection at once (it crashed, say): each
    /// client sees its connection close.
    pub fn server_closes_all(&mut self) {
        let pipes: Vec<usize> = (0..self.pipes.len())
            .filter(|&i| matches!(self.pipes[i].peer, Peer::Real(_)) && self.pipes[i].server_open)
            .collect();
        for pipe in pipes {
            if let Peer::Real(id) = self.pipes[pipe].peer {
                self.server_mut().close(id);
            }
            self.close_server_side(pipe);
        }
        self.settle();
    }

    /// Takes client `c`'s machine out of the network, for tests of what it
    /// does alone from there on.
    pub fn into_client(mut self, c: usize) -> Client {
        *self.clients.swap_remove(c).client
    }

    /// How many outputs client `c` has had: a mark for [`Net::since`].
    pub fn mark(&self, c: usize) -> usize {
        self.clients[c].log.len()
    }

    /// Client `c`'s outputs after `mark`.
    pub fn since(&self, c: usize, mark: usize) -> Vec<Output> {
        self.clients[c].log[mark..]
            .iter()
            .map(|(_, o)| o.clone())
            .collect()
    }

    /// The host of client `c` reports the join it held (see
    /// [`ClientNode::hold_joins`]).
    pub fn report_joined(&mut self, c: usize) {
        self.clients[c].deferred.push(Report::Joined);
        self.settle();
    }

    /// How many of client `c`'s inputs wait to be handed over.
    pub fn typed_ahead(&self, c: usize) -> usize {
        self.clients[c].typed.len()
    }

    /// The client machine `c`.
    pub fn client(&self, c: usize) -> &Client {
        &self.clients[c].client
    }

    /// Runs until the network is quiet: every event but the timers is
    /// done, and the timers due before the last of them.
    pub fn run_until_idle(&mut self) {
        while self.queue.values().any(|e| *e != Ev::Timer) {
            self.step();
        }
    }

    /// Runs every event up to `now + d`, timers included; time then is
    /// `now + d`.
    pub fn advance(&mut self, d: Duration) {
        let until = self.now + d;
        while self.queue.keys().next().is_some_and(|&(at, _)| at <= until) {
            self.step();
        }
        self.now = until;
        self.settle();
    }

    /// Runs until `done` holds, at most `limit` of virtual time; panics
    /// (with the trace) if it never does.
    pub fn run_until(&mut self, limit: Duration, mut done: impl FnMut(&Net) -> bool) {
        let until = self.now + limit;
        while !done(self) {
            match self.queue.keys().next() {
                Some(&(at, _)) if at <= until => self.step(),
                _ => self.fail("the condition never held"),
            }
        }
    }

    /// Takes the earliest event and carries it out.
    pub fn step(&mut self) {
        let Some(((at, _), ev)) = self.queue.pop_first() else {
            return;
        };
        self.events += 1;
        if self.events > MAX_EVENTS {
            self.fail("too many events: the run does not settle");
        }
        assert!(at >= self.now, "an event in the past");
        self.now = at;
        match ev {
            Ev::Timer => {
                self.timers.remove(&at);
                self.fire_timers();
            }
            Ev::Connected { client, hostile } => self.connected(client, hostile),
            Ev::Refused { client } => {
                self.clients[client]
                    .deferred
                    .push(Report::ConnectFailed(ConnectFailure::Refused));
            }
            Ev::ToServer { pipe, bytes } => {
                if self.pipes[pipe].server_open {
                    match self.pipes[pipe].peer {
                        Peer::Hostile => self.hostile.received.extend(bytes),
                        Peer::Real(_) => self.pipes[pipe].at_server.extend(bytes),
                    }
                }
            }
            Ev::ToClient { pipe, bytes } => {
                if self.pipes[pipe].client_open {
                    self.pipes[pipe].at_client.extend(bytes);
                }
            }
            Ev::FinToServer { pipe } => {
                if let Peer::Real(id) = self.pipes[pipe].peer
                    && self.pipes[pipe].server_open
                {
                    self.pipes[pipe].server_open = false;
                    self.server_mut().close(id);
                }
            }
            Ev::FinToClient { pipe } => {
                if self.pipes[pipe].client_open {
                    self.pipes[pipe].fin_at_client = true;
                }
            }
            Ev::Datagram {
                to,
                from,
                group,
                channel,
                bytes,
            } => {
                if self.clients[to].group == Some(group) {
                    self.clients[to].client.handle_datagram_from(
                        self.now,
                        channel,
                        client_addr(from),
                        &bytes,
                    );
                }
            }
        }
        self.settle();
    }

    // ---- internals ----

    fn server_mut(&mut self) -> &mut ServerNode {
        self.server.as_mut().expect("no server")
    }

    fn schedule(&mut self, at: Instant, ev: Ev) {
        self.seq += 1;
        self.queue.insert((at, self.seq), ev);
    }

    fn trace(&mut self, line: String) {
        let line = format!("{:>12} us  {line}", self.now.as_micros());
        self.trace.push(line);
    }

    /// Panics with the seed and the trace.
    #[track_caller]
    pub fn fail(&self, why: &str) -> ! {
        let start = self.trace.len().saturating_sub(60);
        panic!(
            "{why} (seed {}, at {} us)\n{}",
            self.seed,
            self.now.as_micros(),
            self.trace[start..].join("\n")
        );
    }

    fn connected(&mut self, c: usize, hostile: bool) {
        let now = self.now;
        let peer = if hostile {
            Peer::Hostile
        } else {
            Peer::Real(self.server_mut().accept(now))
        };
        let pipe = self.pipes.len();
        self.pipes.push(Pipe {
            peer,
            at_client: Vec::new(),
            at_server: Vec::new(),
            last_to_client: now,
            last_to_server: now,
            client_open: true,
            server_open: true,
            fin_at_client: false,
        });
        if hostile {
            self.hostile.pipe = Some(pipe);
        }
        self.clients[c].pipe = Some(pipe);
        self.trace(format!("client {c} connected ({peer:?})"));
        self.clients[c].client.handle_connected(now);
    }

    /// Cuts `bytes` into segments at seeded points.
    fn segments(&mut self, bytes: &[u8]) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        let mut rest = bytes;
        while !rest.is_empty() {
            let max = self.max_segment.max(1) as u64;
            let n = (1 + self.rng.below(max)) as usize;
            let (head, tail) = rest.split_at(n.min(rest.len()));
            out.push(head.to_vec());
            rest = tail;
        }
        out
    }

    fn write_to_client(&mut self, pipe: usize, bytes: &[u8]) {
        for seg in self.segments(bytes) {
            let at = (self.now + LINK_DELAY).max(self.pipes[pipe].last_to_client);
            self.pipes[pipe].last_to_client = at;
            self.schedule(at, Ev::ToClient { pipe, bytes: seg });
        }
    }

    fn write_to_server(&mut self, pipe: usize, bytes: &[u8]) {
        for seg in self.segments(bytes) {
            let at = (self.now + LINK_DELAY).max(self.pipes[pipe].last_to_server);
            self.pipes[pipe].last_to_server = at;
            self.schedule(at, Ev::ToServer { pipe, bytes: seg });
        }
    }

    fn close_server_side(&mut self, pipe: usize) {
        if !self.pipes[pipe].server_open {
            return;
        }
        self.pipes[pipe].server_open = false;
        let at = (self.now + LINK_DELAY).max(self.pipes[pipe].last_to_client);
        self.schedule(at, Ev::FinToClient { pipe });
    }

    fn fire_timers(&mut self) {
        let now = self.now;
        for c in 0..self.clients.len() {
            if self.clients[c]
                .client
                .poll_timeout()
                .is_some_and(|at| at <= now)
            {
                self.clients[c].client.handle_timeout(now);
                if let Some(next) = self.clients[c].client.poll_timeout()
                    && next <= now
                {
                    self.fail(&format!("client {c}: a timeout did not move its deadline"));
                }
            }
        }
        if let Some(server) = &mut self.server
            && server.poll_timeout().is_some_and(|at| at <= now)
        {
            server.handle_timeout(now);
        }
    }

    /// Drains every machine and hands over what is waiting, until nothing
    /// moves; then queues the timers and checks the deadlines.
    fn settle(&mut self) {
        loop {
            let mut moved = false;
            for c in 0..self.clients.len() {
                moved |= self.pump_client(c);
            }
            moved |= self.pump_server();
            if !moved {
                break;
            }
        }
        self.check_and_arm();
    }

    /// One round for client `c`; true if anything happened.
    fn pump_client(&mut self, c: usize) -> bool {
        let now = self.now;
        let mut moved = false;
        // Drain, carrying outputs out.
        while let Some(output) = self.clients[c].client.poll_output() {
            moved = true;
            self.carry_out(c, &output);
            self.clients[c].log.push((now, output));
        }
        // What the host learned meanwhile.
        for report in core::mem::take(&mut self.clients[c].deferred) {
            moved = true;
            let client = &mut self.clients[c].client;
            match report {
                Report::Joined => client.handle_joined(now),
                Report::JoinFailed(detail) => client.handle_join_failed(now, &detail),
                Report::ConnectFailed(why) => client.handle_connect_failed(now, why),
                Report::RoomSecret(Some(secret)) => {
                    let wall = SIM_WALL_MS + now.as_micros() / 1000;
                    client.handle_room_secret(now, wall, Ok(secret));
                }
                Report::RoomSecret(None) => {
                    client.handle_room_secret(now, 0, Err(crate::client::KeyFailure::Cancelled));
                }
            }
        }
        // Bytes from the server, as far as the client takes them.
        if let Some(pipe) = self.clients[c].pipe {
            let p = &mut self.pipes[pipe];
            if !p.at_client.is_empty() {
                let n = self.clients[c]
                    .client
                    .handle_server_bytes(now, &p.at_client);
                if n > 0 {
                    p.at_client.drain(..n);
                    moved = true;
                }
            } else if p.fin_at_client {
                p.fin_at_client = false;
                p.client_open = false;
                self.clients[c].pipe = None;
                self.clients[c].client.handle_server_closed(now);
                moved = true;
            }
        }
        // The user's input, as the host hands it over.
        let node = &mut self.clients[c];
        if let Some(input) = node.typed.front() {
            let now_ok = node.client.ready_for_input()
                || match input {
                    Input::Line(line) => node.client.acts_at_once(line),
                    Input::LeaveChat | Input::Interrupt | Input::End => true,
                };
            if now_ok && let Some(input) = node.typed.pop_front() {
                moved = true;
                match input {
                    Input::Line(line) => node.client.handle_user_line(now, &line),
                    Input::LeaveChat => node.client.handle_leave_chat(now),
                    Input::Interrupt => node.client.handle_interrupt(now),
                    Input::End => node.client.handle_end_of_input(now),
                }
            }
        }
        moved
    }

    fn carry_out(&mut self, c: usize, output: &Output) {
        match output {
            Output::Connect { server } => {
                self.trace(format!("client {c} connects to {server}"));
                let now = self.now;
                if self.server_addr.as_deref() == Some(server.as_str()) {
                    self.schedule(
                        now + LINK_DELAY + LINK_DELAY,
                        Ev::Connected {
                            client: c,
                            hostile: false,
                        },
                    );
                } else if self.hostile_addr.as_deref() == Some(server.as_str()) {
                    self.schedule(
                        now + LINK_DELAY + LINK_DELAY,
                        Ev::Connected {
                            client: c,
                            hostile: true,
                        },
                    );
                } else {
                    self.schedule(now + LINK_DELAY, Ev::Refused { client: c });
                }
            }
            Output::SendLine(line) => {
                if let Some(pipe) = self.clients[c].pipe {
                    self.write_to_server(pipe, line.as_bytes());
                }
            }
            Output::Close => {
                // Also abandons a connection still being opened.
                self.queue.retain(|_, e| {
                    !matches!(e, Ev::Connected { client, .. } | Ev::Refused { client } if *client == c)
                });
                if let Some(pipe) = self.clients[c].pipe.take() {
                    let p = &mut self.pipes[pipe];
                    p.client_open = false;
                    p.at_client.clear();
                    p.fin_at_client = false;
                    let at = (self.now + LINK_DELAY).max(p.last_to_server);
                    self.schedule(at, Ev::FinToServer { pipe });
                }
            }
            Output::JoinGroup { group, port } => {
                let node = &mut self.clients[c];
                match &node.join_error {
                    Some(detail) => node.deferred.push(Report::JoinFailed(detail.clone())),
                    None => {
                        node.group = Some((*group, *port));
                        if !node.hold_joins {
                            node.deferred.push(Report::Joined);
                        }
                    }
                }
            }
            Output::LeaveGroup => self.clients[c].group = None,
            Output::SendDatagram(_) | Output::SendControl(_) => {
                let (channel, payload): (Channel, &[u8]) = match output {
                    Output::SendControl(p) => (Channel::Control, p),
                    Output::SendDatagram(p) => (Channel::Plain, p),
                    _ => return,
                };
                let Some(group) = self.clients[c].group else {
                    return;
                };
                let at = self.now + LINK_DELAY;
                let members: Vec<usize> = (0..self.clients.len())
                    .filter(|&i| self.clients[i].group == Some(group))
                    .collect();
                for to in members {
                    let bytes = payload.to_vec();
                    self.schedule(
                        at,
                        Ev::Datagram {
                            to,
                            from: c,
                            group,
                            channel,
                            bytes,
                        },
                    );
                }
            }
            Output::DeriveKey { salt, .. } => {
                let sealer: [u8; 16] = {
                    let (a, b) = (self.rng.next_u64(), self.rng.next_u64());
                    let mut bytes = [0u8; 16];
                    bytes[..8].copy_from_slice(&a.to_be_bytes());
                    bytes[8..].copy_from_slice(&b.to_be_bytes());
                    bytes
                };
                let node = &mut self.clients[c];
                let secret = node
                    .passphrase
                    .as_ref()
                    .map(|p| (sim_room_secret(p, salt), sealer));
                node.deferred.push(Report::RoomSecret(secret));
            }
            Output::Show(_)
            | Output::Sent(_)
            | Output::Prompt(_)
            | Output::Exit
            | Output::OwnerToken { .. }
            | Output::PrivateRoom { .. } => {}
        }
    }

    /// One round for the server: feed each connection, send what it has,
    /// close what is finished. True if anything happened.
    fn pump_server(&mut self) -> bool {
        let now = self.now;
        let Some(server) = &mut self.server else {
            return false;
        };
        let mut moved = false;
        let mut writes = Vec::new();
        let mut finished = Vec::new();
        for id in server.conn_ids() {
            let Some(pipe) = self
                .pipes
                .iter()
                .position(|p| p.peer == Peer::Real(id) && p.server_open)
            else {
                continue;
            };
            let p = &mut self.pipes[pipe];
            if !p.at_server.is_empty() {
                let n = server.receive(now, id, &p.at_server);
                if n > 0 {
                    p.at_server.drain(..n);
                    moved = true;
                }
            }
            let bytes = server.transmit(now, id);
            if !bytes.is_empty() {
                moved = true;
                writes.push((pipe, bytes));
            }
            if server.is_finished(id) {
                server.close(id);
                finished.push(pipe);
                moved = true;
            }
        }
        for (pipe, bytes) in writes {
            self.write_to_client(pipe, &bytes);
        }
        for pipe in finished {
            self.close_server_side(pipe);
        }
        moved
    }

    /// Checks that no machine asks for a deadline in the past, and queues
    /// a timer event for each deadline.
    fn check_and_arm(&mut self) {
        let now = self.now;
        let mut deadlines = vec![];
        for (c, node) in self.clients.iter().enumerate() {
            if let Some(at) = node.client.poll_timeout() {
                deadlines.push((format!("client {c}"), at));
            }
        }
        if let Some(at) = self.server.as_ref().and_then(|s| s.poll_timeout()) {
            deadlines.push(("the server".into(), at));
        }
        for (who, at) in deadlines {
            if at < now {
                self.fail(&format!(
                    "{who} asks for a deadline in the past ({} us)",
                    at.as_micros()
                ));
            }
            if self.timers.insert(at) {
                self.schedule(at, Ev::Timer);
            }
        }
    }
}
