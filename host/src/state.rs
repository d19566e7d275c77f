//! The directory on disk (`roomcast server --state PATH`).
//!
//! The file is a snapshot, replaced whole and atomically: the new contents go
//! to `PATH.tmp`, which is fsynced, renamed over `PATH`, and then the folder
//! is fsynced. A crash at any point leaves either the old file or the new
//! one, never a mix. The server stores the directory once per event-loop
//! turn in which it changed, and only then sends the `OK`s of that turn's
//! changes, so an acknowledged change is always on disk.
//!
//! Format (UTF-8 text, one item per line, LF-terminated):
//!
//! ```text
//! roomcast-state 1
//! <name> <address> <port>      one line per room, as `getdir` lists them
//! end <number of rooms>
//! ```
//!
//! The `end` line proves the file is whole. Anything else is corruption, and
//! the server refuses to start rather than lose the directory.

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufWriter, ErrorKind, Write};
use std::path::{Path, PathBuf};

use roomcast_core::{Directory, LineBuf, encode_room_line, parse_room_line};

/// The first line of a state file of this version.
const HEADER: &str = "roomcast-state 1";

/// A state file: where the directory lives between runs.
#[derive(Debug)]
pub struct StateFile {
    path: PathBuf,
    tmp: PathBuf,
}

impl StateFile {
    /// The state file at `path` (not yet read or written).
    pub fn new(path: PathBuf) -> StateFile {
        let mut tmp = path.clone().into_os_string();
        tmp.push(".tmp");
        StateFile {
            path,
            tmp: tmp.into(),
        }
    }

    /// The file's path, for messages.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Reads the directory into `into` (which must be empty) and says
    /// whether there was a file. A missing file leaves `into` empty; an
    /// unreadable or corrupt one is an error that says where and why.
    ///
    /// (The directory is filled in place: it is large, and copies of it on
    /// the stack are best avoided.)
    pub fn load(&self, into: &mut Directory) -> Result<bool, String> {
        let shown = self.path.display();
        let text = match fs::read(&self.path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(format!("cannot read the state file {shown}: {e}")),
        };
        parse_state(&text, into).map(|()| true).map_err(|why| {
            format!(
                "the state file {shown} is damaged ({why}). The server will not start \
                     with it, so no room is lost: repair or move the file away, then start again"
            )
        })
    }

    /// Stores `directory`, durably, replacing what was there.
    pub fn save(&self, directory: &Directory) -> io::Result<()> {
        let file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&self.tmp)?;
        let mut out = BufWriter::new(file);
        writeln!(out, "{HEADER}")?;
        let mut line = LineBuf::new();
        for room in directory.rooms() {
            line.clear();
            // A room line is always far below the line limit.
            let _ = encode_room_line(room, &mut line);
            out.write_all(line.as_bytes())?;
        }
        writeln!(out, "end {}", directory.len())?;
        let file = out.into_inner().map_err(|e| e.into_error())?;
        file.sync_all()?;
        drop(file);
        fs::rename(&self.tmp, &self.path)?;
        // The rename itself is durable only once the folder is synced.
        let folder = match self.path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        File::open(folder)?.sync_all()
    }
}

/// Parses a whole state file; the error says which line is wrong and how.
fn parse_state(bytes: &[u8], directory: &mut Directory) -> Result<(), String> {
    let Some(body) = bytes.strip_suffix(b"\n") else {
        return Err("it does not end with a complete line".into());
    };
    let mut lines = body
        .split(|&b| b == b'\n')
        .enumerate()
        .map(|(i, l)| (i + 1, l));
    match lines.next() {
        Some((_, line)) if line == HEADER.as_bytes() => {}
        _ => return Err(format!("line 1 is not '{HEADER}'")),
    }
    for (number, line) in lines {
        // `end <count>` has two words; a room line, even for a room named
        // `end`, has three.
        if let Some(count) = line
            .strip_prefix(b"end ")
            .filter(|rest| !rest.contains(&b' '))
        {
            let count = std::str::from_utf8(count)
                .ok()
                .and_then(|c| c.parse::<usize>().ok());
            if count != Some(directory.len()) {
                return Err(format!(
                    "line {number}: the end line does not match the {} rooms read",
                    directory.len()
                ));
            }
            if number != body.split(|&b| b == b'\n').count() {
                return Err(format!("line {number}: there are lines after the end line"));
            }
            return Ok(());
        }
        let room = parse_room_line(line).map_err(|e| format!("line {number}: {e}"))?;
        directory
            .insert(room)
            .map_err(|e| format!("line {number}: {e}"))?;
    }
    Err("the end line is missing: the file was cut short".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_path(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("roomcast-state-{}-{name}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        dir.join("rooms.state")
    }

    fn room(name: &str, last: u8, port: u16) -> roomcast_core::Room {
        roomcast_core::Room {
            name: name.try_into().unwrap(),
            group: std::net::Ipv4Addr::new(239, 0, 0, last),
            port,
        }
    }

    #[test]
    fn round_trips_a_directory() {
        let state = StateFile::new(temp_path("round"));
        let mut loaded = Box::new(Directory::new());
        assert!(
            !state.load(&mut loaded).unwrap(),
            "missing file: no directory"
        );
        assert!(loaded.is_empty());
        let mut dir = Box::new(Directory::new());
        dir.insert(room("lobby", 1, 5000)).unwrap();
        dir.insert(room("Attic", 2, 5000)).unwrap();
        // A room named like the end marker is still a room.
        dir.insert(room("end", 3, 5000)).unwrap();
        state.save(&dir).unwrap();
        assert!(state.load(&mut loaded).unwrap());
        assert_eq!(loaded.rooms(), dir.rooms());
        // Saving again replaces the file.
        dir.remove("lobby").unwrap();
        state.save(&dir).unwrap();
        let mut again = Box::new(Directory::new());
        state.load(&mut again).unwrap();
        assert_eq!(again.rooms(), dir.rooms());
        assert!(!state.tmp.exists());
    }

    #[test]
    fn refuses_damaged_files_and_says_where() {
        let cases: [(&[u8], &str); 8] = [
            (b"", "complete line"),
            (
                b"roomcast-state 1\nlobby 239.0.0.1 5000\n",
                "end line is missing",
            ),
            (b"roomcast-state 1\nlobby 239.0.0.1 5000\nend 2\n", "line 3"),
            (b"roomcast-state 2\nend 0\n", "line 1"),
            (b"roomcast-state 1\nlobby 10.0.0.1 5000\nend 1\n", "line 2"),
            (
                b"roomcast-state 1\na 239.0.0.1 5000\nA 239.0.0.2 5000\nend 2\n",
                "line 3",
            ),
            (
                b"roomcast-state 1\nend 0\nx 239.0.0.1 5000\n",
                "after the end line",
            ),
            (
                b"roomcast-state 1\nlobby 239.0.0.1 5000\nend 1",
                "complete line",
            ),
        ];
        for (i, (bytes, why)) in cases.into_iter().enumerate() {
            let state = StateFile::new(temp_path(&format!("bad{i}")));
            fs::write(&state.path, bytes).unwrap();
            let err = state.load(&mut Box::new(Directory::new())).unwrap_err();
            assert!(err.contains(why), "case {i}: {err}");
            assert!(err.contains("will not start"), "case {i}: {err}");
            // The damaged file is left as it was.
            assert_eq!(fs::read(&state.path).unwrap(), bytes);
        }
    }

    #[test]
    fn an_unreadable_file_is_an_error_not_an_empty_directory() {
        let path = temp_path("unreadable");
        fs::create_dir_all(&path).unwrap(); // a folder where the file should be
        let err = StateFile::new(path)
            .load(&mut Box::new(Directory::new()))
            .unwrap_err();
        assert!(err.contains("cannot read the state file"), "{err}");
    }
}
