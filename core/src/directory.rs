//! The chat room directory: a pure data structure and its invariants.
//!
//! Invariants, held after every call:
//! - rooms are sorted by name, compared ignoring ASCII case;
//! - no two rooms look the same: no two names are the [`same_name`]
//!   (ignoring case and look-alike characters: Unicode case folding, then
//!   the UTS #39 confusable skeleton) or [`look_alike`] as written (the
//!   skeleton, case kept). This implies no two names are equal ignoring
//!   ASCII case, so the order above is strict;
//! - no two rooms share an address/port pair. A room made by `makeroom`
//!   ([`Directory::insert_new`]) also keeps clear of the port after each
//!   room's on the same group, which that room reserves (see
//!   `core/src/alloc.rs`); rooms loaded from a state file written before
//!   that rule ([`Directory::insert`]) are kept as they are;
//! - there are at most [`MAX_ROOMS`] rooms.
//!
//! Each room keeps its [`Owner`] and, if it is private, its [`Privacy`]
//! (salt and verifier: 33 bytes a room as `Option<Privacy>`).

use core::cmp::Ordering;
use core::fmt;
use core::net::IpAddr;

use crate::error::ErrorCode;
use crate::limits::MAX_ROOMS;
use crate::owner::Owner;
use crate::text::{look_alike, name_hashes, same_name};
use crate::wire::Privacy;
pub use crate::wire::Room;

/// Why the directory refused a change.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum DirectoryError {
    /// A room of that name, or one that looks the same
    /// ([`same_name`](crate::same_name), [`look_alike`](crate::look_alike)),
    /// exists: here it is.
    NameTaken(Room),
    /// This room already uses the address/port pair.
    AddressInUse(Room),
    /// The port, or the one after it, is one this room (on the same group)
    /// uses or reserves: each room reserves its port + 1.
    PortReserved(Room),
    /// `makeroom <name>`: the server's pool has no free group and port.
    PoolFull,
    /// The directory holds [`MAX_ROOMS`] rooms.
    Full,
    /// No room has the name given.
    NoSuchRoom,
}

impl DirectoryError {
    /// The wire error code for this error.
    pub fn code(&self) -> ErrorCode {
        match self {
            DirectoryError::NameTaken(_) => ErrorCode::NameTaken,
            DirectoryError::AddressInUse(_) | DirectoryError::PortReserved(_) => {
                ErrorCode::AddressInUse
            }
            DirectoryError::PoolFull => ErrorCode::Full,
            DirectoryError::Full => ErrorCode::Full,
            DirectoryError::NoSuchRoom => ErrorCode::NoSuchRoom,
        }
    }
}

impl fmt::Display for DirectoryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DirectoryError::NameTaken(room) => write!(
                f,
                "a room named '{}' exists already; pick another name",
                room.name
            ),
            DirectoryError::AddressInUse(room) => write!(
                f,
                "{}:{} is already used by room '{}'; pick another address or port",
                room.group, room.port, room.name
            ),
            DirectoryError::PortReserved(room) => write!(
                f,
                "room '{}' uses {} ports {} and {} (a room reserves the port after its own); \
                 pick another address, or a port at least 2 away from {}",
                room.name,
                room.group,
                room.port,
                room.port.saturating_add(1),
                room.port
            ),
            DirectoryError::PoolFull => f.write_str(
                "no free group/port in the pool; delete a room, give an address and port \
                 yourself, or ask the server's operator to widen --group-pool or --port-range",
            ),
            DirectoryError::Full => write!(
                f,
                "the directory is full ({MAX_ROOMS} rooms); delete a room first"
            ),
            DirectoryError::NoSuchRoom => {
                f.write_str("no room has that name; 'getdir' lists the rooms")
            }
        }
    }
}

/// Compares two names the way the directory orders and matches them:
/// byte-wise, ignoring ASCII case.
pub(crate) fn cmp_names(a: &str, b: &str) -> Ordering {
    // A plain loop: the iterator form (`map(to_ascii_lowercase).cmp`) cost
    // a quarter of the server's time in a `getdir` benchmark.
    let (a, b) = (a.as_bytes(), b.as_bytes());
    for (x, y) in a.iter().zip(b) {
        let (x, y) = (x.to_ascii_lowercase(), y.to_ascii_lowercase());
        if x != y {
            return x.cmp(&y);
        }
    }
    a.len().cmp(&b.len())
}

/// The room directory: every room, sorted by name.
#[derive(Clone, Debug, Default)]
pub struct Directory {
    rooms: heapless::Vec<Room, MAX_ROOMS>,
    /// `name_hashes` of each room's name, same index as `rooms`: a name is
    /// checked against every room by comparing hashes, and the keys
    /// themselves only on a match (32 KiB for 4096 rooms).
    keys: heapless::Vec<(u64, u64), MAX_ROOMS>,
    /// Who may delete each room, same index as `rooms`.
    owners: heapless::Vec<Owner, MAX_ROOMS>,
    /// Each private room's salt and verifier, same index as `rooms`;
    /// `None` for an open room.
    privacy: heapless::Vec<Option<Privacy>, MAX_ROOMS>,
}

impl Directory {
    /// An empty directory.
    pub const fn new() -> Self {
        Self {
            rooms: heapless::Vec::new(),
            keys: heapless::Vec::new(),
            owners: heapless::Vec::new(),
            privacy: heapless::Vec::new(),
        }
    }

    /// How many rooms there are.
    pub fn len(&self) -> usize {
        self.rooms.len()
    }

    /// Whether there are no rooms.
    pub fn is_empty(&self) -> bool {
        self.rooms.is_empty()
    }

    /// Every room, sorted by name ignoring ASCII case.
    pub fn rooms(&self) -> &[Room] {
        &self.rooms
    }

    fn position(&self, name: &str) -> Result<usize, usize> {
        self.rooms
            .binary_search_by(|room| cmp_names(&room.name, name))
    }

    /// Where the room is whose name is the [`same_name`] as `name`, or else
    /// one whose name looks like it ([`look_alike`]).
    fn find_same(&self, name: &str) -> Option<usize> {
        let (folded, skeleton) = name_hashes(name);
        let rooms = || self.keys.iter().zip(&self.rooms);
        rooms()
            .position(|(k, room)| k.0 == folded && same_name(&room.name, name))
            .or_else(|| {
                rooms().position(|(k, room)| k.1 == skeleton && look_alike(&room.name, name))
            })
    }

    /// The room called `name`, or the one whose name is the same ignoring
    /// case and look-alike characters ([`same_name`](crate::same_name)), or
    /// else the one it looks like as written ([`look_alike`](crate::look_alike)).
    pub fn get(&self, name: &str) -> Option<&Room> {
        self.find_same(name).map(|i| &self.rooms[i])
    }

    /// The first room whose name sorts after `name` (ignoring ASCII case), or
    /// the first room when `name` is `None`. A listing walks the directory
    /// with this, so it stays correct while rooms come and go.
    pub fn next_after(&self, name: Option<&str>) -> Option<&Room> {
        let index = match name {
            None => 0,
            Some(name) => match self.position(name) {
                Ok(i) => i + 1,
                Err(i) => i,
            },
        };
        self.rooms.get(index)
    }

    /// Like [`next_after`](Self::next_after), for a walk through the
    /// directory: `hint` is the index the previous call returned plus one.
    /// When the room there is still `name`, the next one is found in O(1)
    /// instead of a binary search; when rooms came or went meanwhile, the
    /// search runs as before. Returns the room and its index.
    pub fn next_after_hinted(&self, name: Option<&str>, hint: usize) -> Option<(usize, &Room)> {
        let index = match name {
            None => 0,
            Some(name)
                if hint > 0
                    && self
                        .rooms
                        .get(hint - 1)
                        .is_some_and(|r| r.name == name || r.name.eq_ignore_ascii_case(name)) =>
            {
                hint
            }
            Some(name) => match self.position(name) {
                Ok(i) => i + 1,
                Err(i) => i,
            },
        };
        self.rooms.get(index).map(|room| (index, room))
    }

    /// Who may delete each room, in the order of [`rooms`](Self::rooms).
    pub fn owners(&self) -> &[Owner] {
        &self.owners
    }

    /// The room [`get`](Self::get) finds for `name`, with its owner.
    pub fn get_owned(&self, name: &str) -> Option<(&Room, &Owner)> {
        self.find_same(name)
            .map(|i| (&self.rooms[i], &self.owners[i]))
    }

    /// Each room's salt and verifier if it is private, in the order of
    /// [`rooms`](Self::rooms).
    pub fn privacy(&self) -> &[Option<Privacy>] {
        &self.privacy
    }

    /// The room [`get`](Self::get) finds for `name`, with its salt and
    /// verifier if it is private (what `getroom` answers).
    pub fn get_with_privacy(&self, name: &str) -> Option<(&Room, Option<&Privacy>)> {
        self.find_same(name)
            .map(|i| (&self.rooms[i], self.privacy[i].as_ref()))
    }

    /// How many rooms were made from `addr` (see [`Owner::maker_addr`]).
    pub fn count_made_from(&self, addr: IpAddr) -> usize {
        self.owners
            .iter()
            .filter(|o| o.maker_addr == Some(addr))
            .count()
    }

    /// Adds `room` without an owner (anyone may delete it); see
    /// [`insert_owned`](Self::insert_owned).
    pub fn insert(&mut self, room: Room) -> Result<(), DirectoryError> {
        self.insert_owned(room, Owner::default())
    }

    /// Adds the open room `room`, owned by `owner`; see
    /// [`insert_private`](Self::insert_private).
    pub fn insert_owned(&mut self, room: Room, owner: Owner) -> Result<(), DirectoryError> {
        self.insert_private(room, owner, None)
    }

    /// Adds `room`, owned by `owner`, private if `privacy` is given.
    /// Refused when its name or its address/port pair is taken, or the
    /// directory is full; the directory is then unchanged.
    pub fn insert_private(
        &mut self,
        room: Room,
        owner: Owner,
        privacy: Option<Privacy>,
    ) -> Result<(), DirectoryError> {
        if let Some(i) = self.find_same(&room.name) {
            return Err(DirectoryError::NameTaken(self.rooms[i].clone()));
        }
        let at = match self.position(&room.name) {
            // Names equal ignoring ASCII case are the same name: found above.
            Ok(i) => return Err(DirectoryError::NameTaken(self.rooms[i].clone())),
            Err(at) => at,
        };
        if let Some(holder) = self
            .rooms
            .iter()
            .find(|r| r.group == room.group && r.port == room.port)
        {
            return Err(DirectoryError::AddressInUse(holder.clone()));
        }
        let key = name_hashes(&room.name);
        self.rooms
            .insert(at, room)
            .map_err(|_| DirectoryError::Full)?;
        // `keys`, `owners` and `privacy` have the capacity of `rooms`, so
        // these cannot fail.
        let _ = self.keys.insert(at, key);
        let _ = self.owners.insert(at, owner);
        let _ = self.privacy.insert(at, privacy);
        Ok(())
    }

    /// Adds `room` as `makeroom` makes it: like
    /// [`insert_owned`](Self::insert_owned), and refused also when its port
    /// or port + 1 is one another room on the same group uses or reserves
    /// ([`check_new`](Self::check_new)).
    pub fn insert_new(&mut self, room: Room, owner: Owner) -> Result<(), DirectoryError> {
        self.insert_new_private(room, owner, None)
    }

    /// Like [`insert_new`](Self::insert_new), private if `privacy` is given.
    pub fn insert_new_private(
        &mut self,
        room: Room,
        owner: Owner,
        privacy: Option<Privacy>,
    ) -> Result<(), DirectoryError> {
        self.check_new(&room)?;
        self.insert_private(room, owner, privacy)
    }

    /// Whether [`insert_new`](Self::insert_new) would take `room`, without
    /// adding it: the name is free, no room on the same group has a port
    /// within 1 of `room.port`, and there is room for one more.
    pub fn check_new(&self, room: &Room) -> Result<(), DirectoryError> {
        if let Some(holder) = self.get(&room.name) {
            return Err(DirectoryError::NameTaken(holder.clone()));
        }
        if let Some(holder) = self.endpoint_holder(room) {
            return Err(if holder.port == room.port {
                DirectoryError::AddressInUse(holder.clone())
            } else {
                DirectoryError::PortReserved(holder.clone())
            });
        }
        if self.len() >= MAX_ROOMS {
            return Err(DirectoryError::Full);
        }
        Ok(())
    }

    /// The room whose endpoints (its port and port + 1, on its group) touch
    /// `room`'s, if any: the same group and a port within 1. The one on the
    /// very same port first.
    fn endpoint_holder(&self, room: &Room) -> Option<&Room> {
        let near = |r: &&Room| r.group == room.group && r.port.abs_diff(room.port) <= 1;
        let mut found = None;
        for r in self.rooms.iter().filter(near) {
            if r.port == room.port {
                return Some(r);
            }
            found = Some(r);
        }
        found
    }

    /// Removes the room called `name` (or whose name looks the same, as
    /// [`get`](Self::get) finds it) and returns it.
    pub fn remove(&mut self, name: &str) -> Result<Room, DirectoryError> {
        self.remove_owned(name).map(|(room, _)| room)
    }

    /// Removes the room called `name`, as [`remove`](Self::remove) does, and
    /// returns it with its owner.
    pub fn remove_owned(&mut self, name: &str) -> Result<(Room, Owner), DirectoryError> {
        self.remove_private(name)
            .map(|(room, owner, _)| (room, owner))
    }

    /// Removes the room called `name`, as [`remove`](Self::remove) does, and
    /// returns it with its owner and its salt and verifier if private.
    pub fn remove_private(
        &mut self,
        name: &str,
    ) -> Result<(Room, Owner, Option<Privacy>), DirectoryError> {
        let at = self.find_same(name).ok_or(DirectoryError::NoSuchRoom)?;
        self.keys.remove(at);
        let owner = self.owners.remove(at);
        let privacy = self.privacy.remove(at);
        Ok((self.rooms.remove(at), owner, privacy))
    }
}

#[cfg(test)]
mod tests;
