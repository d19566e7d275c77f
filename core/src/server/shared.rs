//! What every connection shares: the directory as clients see it, the
//! changes staged for the disk, and the event queue.

use core::net::IpAddr;

use crate::alloc::{AddressPool, Allocator};
use crate::directory::{Directory, DirectoryError};
use crate::limits::{EVENT_QUEUE, MAX_PENDING_CHANGES, MAX_ROOMS};
use crate::owner::{Owner, Token, TokenHash, TokenSource};
use crate::privacy::Salt;
use crate::time::Instant;
use crate::wire::{Command, CommandKind, Privacy, Room};

use super::quota::Refusal;
use super::{ConnId, Event, Resolved, ServerConfig};

/// A change to the directory, with the room as stored, its owner, and its
/// salt and verifier if it is private.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Change {
    /// A room made, with the token its maker is told (only its hash is in
    /// `Owner`).
    Made(Room, Owner, Option<Privacy>, Token),
    Deleted(Room, Owner, Option<Privacy>),
}

impl Change {
    pub(super) fn room(&self) -> &Room {
        match self {
            Change::Made(room, ..) | Change::Deleted(room, ..) => room,
        }
    }

    pub(super) fn kind(&self) -> CommandKind {
        match self {
            Change::Made(..) => CommandKind::MakeRoom,
            Change::Deleted(..) => CommandKind::DeleteRoom,
        }
    }

    fn apply(&self, directory: &mut Directory) {
        // Staged changes never clash (a clashing command waits), so these
        // cannot fail; if one did, the directory would stay as it is.
        let _ = match self {
            Change::Made(room, owner, privacy, _) => {
                directory.insert_private(room.clone(), *owner, *privacy)
            }
            Change::Deleted(room, ..) => directory.remove(&room.name).map(drop),
        };
    }

    fn undo(&self, directory: &mut Directory) {
        let _ = match self {
            Change::Made(room, ..) => directory.remove(&room.name).map(drop),
            Change::Deleted(room, owner, privacy) => {
                directory.insert_private(room.clone(), *owner, *privacy)
            }
        };
    }
}

/// A staged change waiting to be stored.
#[derive(Clone, Debug)]
struct Pending {
    seq: u64,
    conn: ConnId,
    made_at: Instant,
    change: Change,
}

/// What [`Server::stage`] did with a command.
pub(super) enum Staging {
    /// Answered now: the change made (with the room as stored), none for
    /// a query, or the refusal.
    Done(Result<Option<Change>, Refusal>),
    /// Staged: the answer comes with its [`Resolved`].
    Held(u64, Change),
    /// Its answer depends on changes still waiting: try again later.
    Wait,
}

/// What every connection shares: the directory and the event queue.
#[derive(Debug)]
pub struct Server {
    config: ServerConfig,
    /// What clients see: every change in it is stored.
    directory: Directory,
    /// `directory` plus the pending changes: what the host stores.
    staged: Directory,
    pending: heapless::Deque<Pending, MAX_PENDING_CHANGES>,
    resolved: heapless::Deque<Resolved, MAX_PENDING_CHANGES>,
    events: heapless::Deque<Event, EVENT_QUEUE>,
    dropped_events: u64,
    /// Counts every change to `staged` (a change made or undone).
    version: u64,
    /// The version the host last stored.
    stored: u64,
    /// A save that failed may have replaced the stored file anyway (the
    /// host said so): what is on disk may differ from `directory` until
    /// the next successful store.
    disk_unsure: bool,
    /// The latest `now` passed in.
    now: Instant,
    /// Picks the group and port of `makeroom <name>`.
    allocator: Allocator,
    /// Where owner tokens come from.
    tokens: TokenSource,
    /// The hash of the operator's admin token, if one was set.
    admin: Option<TokenHash>,
}

impl Server {
    /// A server with an empty directory.
    pub fn new(config: ServerConfig) -> Self {
        Self::with_directory(config, Directory::new())
    }

    /// A server that starts with `directory` (loaded from disk, say).
    pub fn with_directory(config: ServerConfig, directory: Directory) -> Self {
        Self {
            config,
            staged: directory.clone(),
            directory,
            pending: heapless::Deque::new(),
            resolved: heapless::Deque::new(),
            events: heapless::Deque::new(),
            dropped_events: 0,
            version: 0,
            stored: 0,
            disk_unsure: false,
            now: Instant::ZERO,
            allocator: Allocator::default(),
            tokens: TokenSource::unseeded(),
            admin: None,
        }
    }

    /// Sets where `makeroom <name>` takes its group and port from (by
    /// default [`AddressPool::default`], seed 0): the host gives a seed from
    /// the system's randomness.
    pub fn set_allocator(&mut self, allocator: Allocator) {
        self.allocator = allocator;
    }

    /// The pool `makeroom <name>` allocates from.
    pub fn address_pool(&self) -> &AddressPool {
        self.allocator.pool()
    }

    /// Seeds the generator of owner tokens with 32 bytes from the operating
    /// system's random source. A host must call this before serving: until
    /// then the tokens follow a fixed sequence (tests may rely on it).
    pub fn seed_random(&mut self, seed: [u8; 32]) {
        self.tokens.reseed(seed);
    }

    /// Whether [`seed_random`](Self::seed_random) was called.
    pub fn is_seeded(&self) -> bool {
        self.tokens.is_seeded()
    }

    /// A fresh salt for `salt`, from the same seeded generator as the
    /// owner tokens.
    pub(super) fn mint_salt(&mut self) -> Salt {
        self.tokens.mint_salt()
    }

    /// Sets the operator's admin token (its hash is kept): `deleteroom
    /// <name> <admin token>` deletes any room.
    pub fn set_admin_token(&mut self, hash: TokenHash) {
        self.admin = Some(hash);
    }

    /// The configuration the server was made with (copy it into each
    /// [`Connection::new`](super::Connection::new)).
    pub fn config(&self) -> &ServerConfig {
        &self.config
    }

    /// The directory as clients see it: every change in it is stored.
    pub fn directory(&self) -> &Directory {
        &self.directory
    }

    /// The directory to store: [`directory`](Self::directory) plus every
    /// change waiting to be stored.
    pub fn staged(&self) -> &Directory {
        &self.staged
    }

    /// The version the host must store [`staged`](Self::staged) for, if it
    /// changed since the last store. Ask once per event-loop turn, after
    /// handling every event of the turn, so one write covers them all.
    /// Once every waiting change was undone, `staged` is the stored
    /// directory again and there is nothing to store (unless a failed save
    /// may have changed the file: see
    /// [`handle_persist_failed`](Self::handle_persist_failed)).
    #[must_use]
    pub fn poll_persist(&self) -> Option<u64> {
        (self.version > self.stored).then_some(self.version)
    }

    /// The host stored [`staged`](Self::staged) as it was at `version` (the
    /// value [`poll_persist`](Self::poll_persist) returned). The changes in
    /// it become visible; drain [`poll_resolved`](Self::poll_resolved).
    pub fn handle_persisted(&mut self, now: Instant, version: u64) {
        self.clock(now);
        let version = version.min(self.version);
        self.stored = self.stored.max(version);
        // Saves are whole files: this one replaced whatever a failed one
        // may have left.
        self.disk_unsure = false;
        while self.pending.front().is_some_and(|p| p.seq <= version) {
            let Some(pending) = self.pending.pop_front() else {
                break;
            };
            pending.change.apply(&mut self.directory);
            self.resolve(pending, true);
        }
    }

    /// The host could not store [`staged`](Self::staged). `file_untouched`:
    /// the failure left the stored file as it was (it came before the file
    /// was replaced). When it may not have, an undo that brings `staged`
    /// back to the stored directory must still be stored, to be sure the
    /// undone changes are not on disk.
    pub fn handle_persist_failed(&mut self, file_untouched: bool) {
        if !file_untouched {
            self.disk_unsure = true;
        }
    }

    /// When [`handle_timeout`](Self::handle_timeout) must be called next:
    /// when the oldest waiting change is due to be undone. Never before the
    /// latest `now` passed in.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.pending
            .front()
            .map(|p| (p.made_at + self.config.persist_timeout).max(self.now))
    }

    /// Time passed: changes not stored within
    /// [`persist_timeout`](ServerConfig::persist_timeout) are undone (and
    /// the undoing must be stored in turn: see
    /// [`poll_persist`](Self::poll_persist)). A spurious call is a no-op.
    pub fn handle_timeout(&mut self, now: Instant) {
        let now = self.clock(now);
        let timeout = self.config.persist_timeout;
        let mut undone = 0;
        while self
            .pending
            .front()
            .is_some_and(|p| p.made_at + timeout <= now)
        {
            let Some(pending) = self.pending.pop_front() else {
                break;
            };
            pending.change.undo(&mut self.staged);
            self.version += 1;
            self.resolve(pending, false);
            undone += 1;
        }
        if undone > 0 {
            self.emit(Event::Undone(undone));
            // Every waiting change undone: `staged` is what is stored, so
            // there is nothing to save (and no save to retry for ever while
            // the disk is full).
            if self.pending.is_empty() && !self.disk_unsure {
                self.stored = self.version;
            }
        }
    }

    /// The next change that was stored or undone, if any. Drain it after
    /// [`handle_persisted`](Self::handle_persisted) and
    /// [`handle_timeout`](Self::handle_timeout).
    #[must_use]
    pub fn poll_resolved(&mut self) -> Option<Resolved> {
        self.resolved.pop_front()
    }

    /// The next log event, if any. Drain until `None` after every call into
    /// the server or a connection.
    #[must_use]
    pub fn poll_event(&mut self) -> Option<Event> {
        // The queue holds the oldest events; the ones dropped came after.
        if let Some(event) = self.events.pop_front() {
            return Some(event);
        }
        (self.dropped_events > 0).then(|| Event::Dropped(core::mem::take(&mut self.dropped_events)))
    }

    fn clock(&mut self, now: Instant) -> Instant {
        self.now = self.now.max(now);
        self.now
    }

    pub(super) fn emit(&mut self, event: Event) {
        if self.events.push_back(event).is_err() {
            self.dropped_events += 1;
        }
    }

    fn resolve(&mut self, pending: Pending, stored: bool) {
        // Room is kept: a change is staged only while
        // `pending + resolved < MAX_PENDING_CHANGES`.
        let _ = self.resolved.push_back(Resolved {
            conn: pending.conn,
            seq: pending.seq,
            stored,
        });
    }

    /// Runs one command against the directory (see [`Staging`]).
    pub(super) fn stage(
        &mut self,
        now: Instant,
        conn: ConnId,
        peer: Option<IpAddr>,
        command: &Command,
    ) -> Staging {
        let now = self.clock(now);
        let durable = self.config.durable_replies;
        if durable
            && matches!(
                command,
                Command::MakeRoom(_)
                    | Command::AllocRoom(_)
                    | Command::MakePrivate(..)
                    | Command::AllocPrivate(..)
                    | Command::DeleteRoom(..)
            )
            && self.pending.len() + self.resolved.len() >= MAX_PENDING_CHANGES
        {
            return Staging::Wait;
        }
        // With nothing pending, `staged` is `directory` and every answer is
        // final. Otherwise an answer is final only if it is the same with
        // and without the pending changes (so with any of them undone).
        let settled = self.pending.is_empty();
        let allocated;
        let command = match command {
            Command::AllocRoom(name) | Command::AllocPrivate(name, _) => {
                let rooms = [self.directory.rooms(), self.staged.rooms()];
                match self.allocator.allocate(rooms) {
                    Some((group, port)) => {
                        let room = Room {
                            name: name.clone(),
                            group,
                            port,
                        };
                        allocated = match command {
                            Command::AllocPrivate(_, privacy) => {
                                Command::MakePrivate(room, *privacy)
                            }
                            _ => Command::MakeRoom(room),
                        };
                        &allocated
                    }
                    // A pending change undone could free a slot.
                    None if !settled => return Staging::Wait,
                    None => {
                        return Staging::Done(Err(Refusal::Directory(
                            match self.directory.get(name) {
                                Some(holder) => DirectoryError::NameTaken(holder.clone()),
                                None => DirectoryError::PoolFull,
                            },
                        )));
                    }
                }
            }
            other => other,
        };
        let change = match command {
            Command::MakeRoom(room) | Command::MakePrivate(room, _) => {
                let privacy = match command {
                    Command::MakePrivate(_, privacy) => Some(*privacy),
                    _ => None,
                };
                if let Some(addr) = peer {
                    let limit = self.config.max_rooms_per_client;
                    let over_staged = self.staged.count_made_from(addr) >= limit;
                    let over_seen = self.directory.count_made_from(addr) >= limit;
                    match (over_staged, over_seen) {
                        (true, true) => return Staging::Done(Err(Refusal::Rooms(limit))),
                        (false, false) => {}
                        // Depends on changes still waiting.
                        _ => return Staging::Wait,
                    }
                }
                let token = self.tokens.mint();
                let owner = Owner {
                    token: Some(TokenHash::of(&token)),
                    maker: Some(conn),
                    maker_addr: peer,
                };
                let staged = self.staged.insert_new_private(room.clone(), owner, privacy);
                if !settled {
                    let now_seen = check_insert(&self.directory, room);
                    let pending_made = self
                        .pending
                        .iter()
                        .filter(|p| matches!(p.change, Change::Made(..)))
                        .count();
                    let same = match (&staged, &now_seen) {
                        // Room enough even if every pending room is made.
                        (Ok(()), Ok(())) => self.directory.len() + pending_made < MAX_ROOMS,
                        // Full could change if a pending delete is undone.
                        (Err(a), Err(b)) => a == b && *a != DirectoryError::Full,
                        _ => false,
                    };
                    if !same {
                        if staged.is_ok() {
                            let _ = self.staged.remove(&room.name);
                        }
                        return Staging::Wait;
                    }
                }
                match staged {
                    Ok(()) => Change::Made(room.clone(), owner, privacy, token),
                    Err(refusal) => return Staging::Done(Err(Refusal::Directory(refusal))),
                }
            }
            Command::DeleteRoom(name, token) => {
                if !settled && self.staged.get_owned(name) != self.directory.get_owned(name) {
                    return Staging::Wait;
                }
                if let Some((room, owner)) = self.staged.get_owned(name)
                    && !self.may_delete(conn, owner, token.as_deref())
                {
                    return Staging::Done(Err(Refusal::Denied(room.name.clone())));
                }
                match self.staged.remove_private(name) {
                    Ok((room, owner, privacy)) => Change::Deleted(room, owner, privacy),
                    Err(refusal) => return Staging::Done(Err(Refusal::Directory(refusal))),
                }
            }
            // Answered from what clients see (a room still waiting to be
            // stored is not there yet, as in `getdir`).
            Command::GetRoom(name) => {
                return Staging::Done(match self.directory.get(name) {
                    Some(_) => Ok(None),
                    None => Err(Refusal::Directory(DirectoryError::NoSuchRoom)),
                });
            }
            Command::GetDir
            | Command::GetDirFull
            | Command::Salt
            | Command::Ping
            | Command::Help
            | Command::Bye
            | Command::AllocRoom(_)
            | Command::AllocPrivate(..) => {
                return Staging::Done(Ok(None));
            }
        };
        self.version += 1;
        if !durable {
            change.apply(&mut self.directory);
            self.stored = self.version;
            return Staging::Done(Ok(Some(change)));
        }
        let seq = self.version;
        // Room was checked above.
        let _ = self.pending.push_back(Pending {
            seq,
            conn,
            made_at: now,
            change: change.clone(),
        });
        Staging::Held(seq, change)
    }
}

impl Server {
    /// Whether `conn`, showing `token` if any, may delete a room owned by
    /// `owner`: its maker, anyone with its token or the admin token, and
    /// anyone at all for a room without an owner (made before owners).
    fn may_delete(&self, conn: ConnId, owner: &Owner, token: Option<&str>) -> bool {
        let Some(hash) = owner.token else {
            return true;
        };
        if owner.maker == Some(conn) {
            return true;
        }
        let Some(token) = token else {
            return false;
        };
        // Both compared, in constant time, whatever the first says.
        let by_owner = hash.matches(token);
        let by_admin = self.admin.is_some_and(|admin| admin.matches(token));
        by_owner | by_admin
    }
}

/// Whether `directory.insert_new(room)` would succeed, without inserting it.
fn check_insert(directory: &Directory, room: &Room) -> Result<(), DirectoryError> {
    directory.check_new(room)
}
