//! The real server as a node of the simulated network, and a scripted
//! hostile one.

use std::collections::BTreeMap;
use std::vec::Vec;

use crate::directory::Directory;
use crate::server::{ConnId, Connection, Event, Server, ServerConfig};
use crate::time::Instant;

/// The one place the harness uses the server's API: accept, feed bytes,
/// take what it transmits, its timers, and the drain rule. Kept small so
/// that a change of that API changes only this type.
pub struct ServerNode {
    server: Server,
    conns: BTreeMap<u64, Connection>,
    next_id: u64,
    /// Every event the server reported, in order.
    pub events: Vec<Event>,
}

impl ServerNode {
    pub(super) fn new(config: ServerConfig, directory: Directory) -> Self {
        Self {
            server: Server::with_directory(config, directory),
            conns: BTreeMap::new(),
            next_id: 0,
            events: Vec::new(),
        }
    }

    /// The greeting the real server sends a new connection.
    pub fn greeting() -> Vec<u8> {
        Connection::new(Instant::ZERO, ConnId(0), &ServerConfig::default())
            .poll_transmit()
            .to_vec()
    }

    pub(super) fn accept(&mut self, now: Instant) -> u64 {
        self.next_id += 1;
        let conn = Connection::new(now, ConnId(self.next_id), self.server.config());
        self.conns.insert(self.next_id, conn);
        self.next_id
    }

    /// Feeds bytes to connection `id`; returns how many it took.
    pub(super) fn receive(&mut self, now: Instant, id: u64, data: &[u8]) -> usize {
        let Some(conn) = self.conns.get_mut(&id) else {
            return data.len();
        };
        let n = conn.handle_bytes(now, &mut self.server, data);
        self.drain_events();
        n
    }

    /// Takes what connection `id` wants to send (all of it: the pipe has
    /// no limit) and tells the connection it went out.
    pub(super) fn transmit(&mut self, now: Instant, id: u64) -> Vec<u8> {
        let Some(conn) = self.conns.get_mut(&id) else {
            return Vec::new();
        };
        let bytes = conn.poll_transmit().to_vec();
        if !bytes.is_empty() {
            conn.handle_sent(now, &mut self.server, bytes.len());
        }
        self.drain_events();
        self.persist(now);
        bytes
    }

    /// Stores the directory when asked (instantly: the disk never fails
    /// here) and releases the replies that waited for it.
    pub(super) fn persist(&mut self, now: Instant) {
        if let Some(version) = self.server.poll_persist() {
            self.server.handle_persisted(now, version);
            self.resolve(now);
        }
    }

    /// Hands each stored or undone change to its connection and wakes the
    /// others that wait, as the host's loop does.
    fn resolve(&mut self, now: Instant) {
        while let Some(resolved) = self.server.poll_resolved() {
            if let Some(conn) = self.conns.get_mut(&resolved.conn.0) {
                conn.handle_resolved(now, &mut self.server, resolved);
            }
        }
        for conn in self.conns.values_mut() {
            if conn.is_waiting() {
                conn.handle_wake(now, &mut self.server);
            }
        }
        self.drain_events();
    }

    pub(super) fn is_finished(&self, id: u64) -> bool {
        self.conns.get(&id).is_none_or(Connection::is_finished)
    }

    /// The peer closed (or the connection was finished): forget it.
    pub(super) fn close(&mut self, id: u64) {
        self.conns.remove(&id);
    }

    pub(super) fn poll_timeout(&self) -> Option<Instant> {
        self.conns
            .values()
            .filter_map(Connection::poll_timeout)
            .chain(self.server.poll_timeout())
            .min()
    }

    pub(super) fn handle_timeout(&mut self, now: Instant) {
        for conn in self.conns.values_mut() {
            conn.handle_timeout(now, &mut self.server);
        }
        if self.server.poll_timeout().is_some_and(|at| at <= now) {
            self.server.handle_timeout(now);
            self.resolve(now);
        }
        self.drain_events();
    }

    pub(super) fn conn_ids(&self) -> Vec<u64> {
        self.conns.keys().copied().collect()
    }

    fn drain_events(&mut self) {
        while let Some(event) = self.server.poll_event() {
            self.events.push(event);
        }
    }

    /// The directory as the server holds it.
    pub fn directory(&self) -> &Directory {
        self.server.directory()
    }
}

/// A scripted peer in the place of a directory server, for behaviour the
/// real server never shows. It accepts every connection; the test writes
/// its bytes with [`Net::hostile_send`].
#[derive(Debug, Default)]
pub struct HostileServer {
    /// Everything the client sent it, over every connection.
    pub received: Vec<u8>,
    /// The connection the test's bytes go to: the latest.
    pub(super) pipe: Option<usize>,
}
