//! The private rooms this client has made or entered, kept so that a directory
//! server that later calls one of them open (a forged directory announced
//! on the LAN, or a room deleted and made again open) is not believed: the
//! client refuses to enter such a room, and says why (SECURITY.md, the
//! downgrade).
//!
//! The file is `private-rooms` beside the tokens file (`tokens.rs`:
//! `$XDG_STATE_HOME/roomcast/`, else `~/.local/state/roomcast/`; folder
//! 0700, file 0600). One line per room, `<server> <room> <group> <port>`,
//! the server as the client named it; a later line for the same room
//! replaces an earlier one. It is rewritten whole (a temporary file renamed
//! over it) and keeps the newest [`MAX_PRIVATE_ROOMS`] rooms. A room is
//! matched by its name (on any server: a forged directory is another
//! server) or by its group and port (an open room on a private room's
//! address); to enter such a room open after all, its line is removed from
//! the file.

use std::fs;
use std::io::{self, Read as _, Write as _};
use std::net::IpAddr;
use std::path::PathBuf;

use roomcast_core::limits::{MAX_ROOM_NAME, MAX_SERVER_ADDR};
use roomcast_core::{Room, same_name};

use crate::platform;

/// The most private rooms remembered; the oldest go first.
pub const MAX_PRIVATE_ROOMS: usize = 1024;

/// The longest group address written (an IPv6 address).
const MAX_GROUP_TEXT: usize = 45;

/// The largest file read: [`MAX_PRIVATE_ROOMS`] lines of a server, a room
/// name, a group, a port and their separators.
const MAX_FILE: u64 =
    (MAX_PRIVATE_ROOMS * (MAX_SERVER_ADDR + 1 + MAX_ROOM_NAME + 1 + MAX_GROUP_TEXT + 1 + 6)) as u64;

/// One remembered room.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    pub server: String,
    pub room: String,
    pub group: IpAddr,
    pub port: u16,
}

/// The file of private rooms.
pub struct PrivateRooms {
    path: Option<PathBuf>,
}

impl PrivateRooms {
    /// The file beside the tokens file.
    pub fn new() -> Self {
        Self {
            path: super::tokens::default_path()
                .map(|tokens| tokens.with_file_name("private-rooms")),
        }
    }

    /// A file at `path` (tests).
    #[cfg(test)]
    pub fn at(path: PathBuf) -> Self {
        Self { path: Some(path) }
    }

    /// Where the file is, if anywhere (said in the refusals).
    pub fn path(&self) -> Option<&PathBuf> {
        self.path.as_ref()
    }

    /// Every entry, oldest first; nothing if the file is missing or
    /// unreadable (lines that are not entries are skipped).
    fn read(&self) -> Vec<Entry> {
        let Some(path) = &self.path else {
            return Vec::new();
        };
        let Ok(file) = fs::File::open(path) else {
            return Vec::new();
        };
        let mut text = String::new();
        if file.take(MAX_FILE).read_to_string(&mut text).is_err() {
            return Vec::new();
        }
        text.lines()
            .filter_map(|line| {
                let mut words = line.split(' ');
                let entry = Entry {
                    server: words.next()?.to_string(),
                    room: words.next()?.to_string(),
                    group: words.next()?.parse().ok()?,
                    port: words.next()?.parse().ok()?,
                };
                words.next().is_none().then_some(entry)
            })
            .collect()
    }

    /// The remembered private room that `room` (about to be entered open)
    /// is: the same name, or the same group and port.
    pub fn matching(&self, room: &Room) -> Option<Entry> {
        self.read().into_iter().rev().find(|e| {
            same_name(&e.room, room.name.as_str()) || (e.group == room.group && e.port == room.port)
        })
    }

    /// Remembers `room`, entered as private from `server`.
    pub fn remember(&self, server: &str, room: &Room) -> Result<(), String> {
        let Some(path) = &self.path else {
            return Err("neither XDG_STATE_HOME nor HOME is set".into());
        };
        let mut entries = self.read();
        entries.retain(|e| !(e.server == server && same_name(&e.room, room.name.as_str())));
        entries.push(Entry {
            server: server.to_string(),
            room: room.name.to_string(),
            group: room.group,
            port: room.port,
        });
        let keep_from = entries.len().saturating_sub(MAX_PRIVATE_ROOMS);
        let write = || -> io::Result<()> {
            let dir = path.parent().unwrap_or(path);
            platform::create_private_dir(dir)?;
            // tempfile makes it 0600 on Unix, in the same folder.
            let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
            for e in &entries[keep_from..] {
                writeln!(tmp, "{} {} {} {}", e.server, e.room, e.group, e.port)?;
            }
            tmp.as_file().sync_all()?;
            tmp.persist(path).map_err(|e| e.error)?;
            Ok(())
        };
        write().map_err(|e| format!("{}: {e}", path.display()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn room(name: &str, group: [u8; 4], port: u16) -> Room {
        Room {
            name: name.try_into().unwrap(),
            group: IpAddr::from(group),
            port,
        }
    }

    #[test]
    fn rooms_are_matched_by_name_or_address_and_the_newest_are_kept() {
        let dir = tempfile::tempdir().unwrap();
        let rooms = PrivateRooms::at(dir.path().join("st").join("private-rooms"));
        assert_eq!(rooms.matching(&room("sec", [239, 1, 1, 1], 5000)), None);
        rooms
            .remember("srv:5577", &room("sec", [239, 1, 1, 1], 5000))
            .unwrap();
        // By name (any case, any server), by address, not otherwise.
        assert!(rooms.matching(&room("SEC", [239, 9, 9, 9], 6000)).is_some());
        assert!(
            rooms
                .matching(&room("other", [239, 1, 1, 1], 5000))
                .is_some()
        );
        assert_eq!(rooms.matching(&room("other", [239, 1, 1, 1], 5002)), None);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = |p: &std::path::Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode(&dir.path().join("st")), 0o700);
            assert_eq!(mode(rooms.path().unwrap()), 0o600);
        }
        // Bounded: the oldest go first, at the edge.
        for i in 0..MAX_PRIVATE_ROOMS {
            let port = 10_000 + 2 * u16::try_from(i).unwrap();
            rooms
                .remember("srv:5577", &room(&format!("r{i}"), [239, 2, 2, 2], port))
                .unwrap();
        }
        assert_eq!(rooms.read().len(), MAX_PRIVATE_ROOMS);
        assert_eq!(rooms.matching(&room("sec", [239, 7, 7, 7], 1)), None);
        assert!(rooms.matching(&room("r0", [239, 7, 7, 7], 1)).is_some());
    }
}
