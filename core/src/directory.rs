//! The chat room directory: a pure data structure and its invariants.
//!
//! Invariants, held after every call:
//! - rooms are sorted by name, compared ignoring ASCII case;
//! - no two rooms have the same name ignoring ASCII case;
//! - no two rooms share an address/port pair;
//! - there are at most [`MAX_ROOMS`] rooms.

use core::cmp::Ordering;
use core::fmt;

use crate::error::ErrorCode;
use crate::limits::MAX_ROOMS;
pub use crate::wire::Room;

/// Why the directory refused a change.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum DirectoryError {
    /// A room of that name (ignoring ASCII case) exists: here it is.
    NameTaken(Room),
    /// This room already uses the address/port pair.
    AddressInUse(Room),
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
            DirectoryError::AddressInUse(_) => ErrorCode::AddressInUse,
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
}

impl Directory {
    /// An empty directory.
    pub const fn new() -> Self {
        Self {
            rooms: heapless::Vec::new(),
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

    /// The room called `name`, ignoring ASCII case.
    pub fn get(&self, name: &str) -> Option<&Room> {
        self.position(name).ok().map(|i| &self.rooms[i])
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

    /// Adds `room`. Refused when its name or its address/port pair is taken,
    /// or the directory is full; the directory is then unchanged.
    pub fn insert(&mut self, room: Room) -> Result<(), DirectoryError> {
        let at = match self.position(&room.name) {
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
        self.rooms
            .insert(at, room)
            .map_err(|_| DirectoryError::Full)
    }

    /// Removes the room called `name` (ignoring ASCII case) and returns it.
    pub fn remove(&mut self, name: &str) -> Result<Room, DirectoryError> {
        let at = self
            .position(name)
            .map_err(|_| DirectoryError::NoSuchRoom)?;
        Ok(self.rooms.remove(at))
    }
}

#[cfg(test)]
mod tests;
