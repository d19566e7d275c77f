//! The directory on disk (`roomcast server --state PATH`).
//!
//! The file is a snapshot, replaced whole and atomically: the new contents go
//! to a fresh temporary file in the same folder, `.NAME.XXXXXX.roomcast-tmp`
//! (made with `O_EXCL` by the `tempfile` crate, so a link planted in the
//! folder is never followed), which gets the permissions of the file it
//! replaces (0600 for a new one), is fsynced, and renamed over `PATH`; then
//! the folder is fsynced. A crash at
//! any point leaves either the old file or the new one, never a mix. The
//! server stores the directory once per event-loop turn in which it changed,
//! and only then sends the `OK`s of that turn's changes, so an acknowledged
//! change is always on disk.
//!
//! If `PATH` is a symbolic link, it is followed once, at start: the server
//! reads and replaces the file the link points to, in that file's folder,
//! and the link stays as it is.
//!
//! One server at a time: the server holds an exclusive lock (`flock`) on
//! `PATH.lock` for its whole life and writes its PID there, so a second
//! server on the same file refuses to start and says which process holds it.
//! The kernel drops the lock when the process dies, however it dies, so a
//! lock file left by a crash is no obstacle.
//!
//! The above is Unix. On Windows (see `crate::platform`) the lock is
//! `LockFileEx`, a link at `PATH.lock` or at `PATH` after the start is
//! opened as itself and refused, and new files take their folder's access
//! control list.
//!
//! Format (UTF-8 text, one item per line, LF-terminated), version 3:
//!
//! ```text
//! roomcast-state 3
//! <name> <address> <port> <owner> [private <salt> <verifier>]
//!                                   one line per room, as `getdir` lists
//!                                   them, then the SHA-256 of its owner
//!                                   token (64 hex digits), or `-` for a
//!                                   room without an owner; a private room
//!                                   ends with the word `private`, its salt
//!                                   and its passphrase verifier (22
//!                                   base64url characters each, as
//!                                   `getroom` answers them)
//! end <number of rooms>
//! ```
//!
//! Only the hash of a token is stored: someone who reads the file cannot
//! delete a room with what they read (a 128-bit random token cannot be
//! found from its hash). A private room's salt and verifier are public by
//! design (`getroom` hands them to anyone); the passphrase and the room's
//! key are never known to the server. The server writes version 3 and
//! reads versions 2 (room lines without `private ...`: every room open)
//! and 1 (`roomcast-state 1`, room lines without the owner either): those
//! rooms have no owner, and anyone may delete them, as anyone could when
//! they were made.
//!
//! The `end` line proves the file is whole. Anything else is corruption, and
//! the server refuses to start rather than lose the directory. Only a
//! regular file of at most [`MAX_STATE_FILE`] bytes is read.

use std::ffi::OsString;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufWriter, ErrorKind, Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use roomcast_core::limits::{MAX_ROOM_LINE, MAX_ROOMS};
use roomcast_core::privacy::{KEY_TEXT, Salt, Verifier};
use roomcast_core::{
    Directory, LineBuf, Owner, Privacy, TokenHash, encode_room_line, parse_room_line,
};

use crate::log::log;
use crate::platform::{self, OpenOptionsExt, TempBuilderExt};

/// The first line of a state file of the version written.
const HEADER: &str = "roomcast-state 3";

/// The first line of a state file of version 2, still read: rooms with
/// owners, all open.
const HEADER_V2: &str = "roomcast-state 2";

/// The first line of a state file of version 1, still read: rooms without
/// owners.
const HEADER_V1: &str = "roomcast-state 1";

/// The word before a private room's salt and verifier on its line.
const PRIVATE: &str = "private";

/// What a version-2 room line adds to a `getdir` line: a space and the
/// owner token's SHA-256 in hex (or `-`).
const OWNER_FIELD: usize = 1 + 64;

/// What a version-3 line of a private room adds after the owner: ` private
/// <salt> <verifier>`.
const PRIVACY_FIELD: usize = 1 + PRIVATE.len() + 1 + KEY_TEXT + 1 + KEY_TEXT;

/// The largest state file the server reads, in bytes: the header line,
/// [`MAX_ROOMS`] room lines of the longest kind ([`MAX_ROOM_LINE`], the
/// [`OWNER_FIELD`] and the [`PRIVACY_FIELD`]), and the end line. A bigger
/// file cannot be a state file, and is refused before it is read. (A
/// version-1 or 2 file is smaller.)
pub const MAX_STATE_FILE: u64 = (HEADER.len()
    + 1
    + MAX_ROOMS * (MAX_ROOM_LINE + OWNER_FIELD + PRIVACY_FIELD)
    + "end ".len()
    + decimal_digits(MAX_ROOMS)
    + 1) as u64;

/// How many symbolic links in a row are followed to find the state file
/// (the kernel's own limit for a path).
const MAX_LINK_HOPS: usize = 40;

/// The temporary file of a save is `.NAME.` + this many random letters +
/// [`TMP_SUFFIX`], beside the state file `NAME`.
const TMP_RANDOM: usize = 6;

/// The end of a temporary file's name: distinctive, since files of that
/// shape are removed at start as leftovers of a crashed save.
const TMP_SUFFIX: &str = ".roomcast-tmp";

/// The longest lock file read for the holder's PID (a PID is at most 20
/// digits and a newline).
const MAX_LOCK_FILE: u64 = 32;

/// How many times the lock file is read for the holder's PID when it is
/// empty (the holder has locked it but not yet written), and how long apart.
const PID_READ_TRIES: u32 = 10;
const PID_READ_PAUSE: Duration = Duration::from_millis(20);

/// The number of decimal digits of `n`.
const fn decimal_digits(mut n: usize) -> usize {
    let mut digits = 1;
    while n >= 10 {
        n /= 10;
        digits += 1;
    }
    digits
}

/// A state file: where the directory lives between runs, locked for this
/// process while the value lives.
#[derive(Debug)]
pub struct StateFile {
    /// The file read and replaced (`--state` with links followed).
    path: PathBuf,
    /// The folder it is in, where temporary files are made.
    folder: PathBuf,
    /// The start of a temporary file's name: `.NAME.`.
    tmp_prefix: OsString,
    /// `PATH.lock`, locked (exclusive `flock`) until this value drops.
    _lock: File,
}

impl StateFile {
    /// Prepares the state file `given` for this server: follows a link,
    /// checks that the folder exists and takes new files, refuses anything
    /// but a regular file, and takes the lock (which says which process
    /// holds it if another does). Every refusal is a message for people.
    pub fn open(given: PathBuf) -> Result<StateFile, String> {
        let shown = given.display();
        let path =
            follow_links(&given).map_err(|e| format!("cannot use the state file {shown}: {e}"))?;
        if path != given {
            log!(
                Info,
                "the state file {shown} is a link to {}: the server replaces that file and \
                 keeps the link",
                path.display()
            );
        }
        let shown = path.display();
        let Some(name) = path.file_name() else {
            return Err(format!(
                "cannot use the state file {shown}: --state must name a file"
            ));
        };
        let folder = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let folder_shown = folder.display();
        match fs::metadata(&folder) {
            Ok(m) if m.is_dir() => {}
            Ok(_) => {
                return Err(format!(
                    "cannot use the state file {shown}: {folder_shown} is not a folder"
                ));
            }
            Err(e) if e.kind() == ErrorKind::NotFound => {
                return Err(format!(
                    "cannot use the state file {shown}: its folder {folder_shown} does not \
                     exist; create it first"
                ));
            }
            Err(e) => {
                return Err(format!(
                    "cannot use the state file {shown}: cannot reach its folder \
                     {folder_shown}: {e}"
                ));
            }
        }
        match fs::symlink_metadata(&path) {
            Ok(m) if !m.is_file() => return Err(not_regular(&path, &m)),
            Ok(_) => {}
            Err(e) if e.kind() == ErrorKind::NotFound => {}
            Err(e) => return Err(format!("cannot read the state file {shown}: {e}")),
        }
        let lock = lock(&path)?;
        let mut tmp_prefix = OsString::from(".");
        tmp_prefix.push(name);
        tmp_prefix.push(".");
        let state = StateFile {
            folder,
            tmp_prefix,
            _lock: lock,
            path,
        };
        // Found now, not at the first change: a folder that takes no new
        // file (read-only, not ours, a read-only file system).
        state.temp_file().map_err(|e| {
            format!(
                "cannot use the state file {}: cannot create files in its folder {} ({e}), \
                 so no change could be saved",
                state.path.display(),
                state.folder.display()
            )
        })?;
        state.remove_leftovers();
        Ok(state)
    }

    /// The file's path (links followed), for messages.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Reads the directory into `into` (which must be empty) and says
    /// whether there was a file. A missing file leaves `into` empty; an
    /// unreadable, oversized, not regular or corrupt one is an error that
    /// says where and why.
    ///
    /// (The directory is filled in place: it is large, and copies of it on
    /// the stack are best avoided.)
    pub fn load(&self, into: &mut Directory) -> Result<bool, String> {
        let shown = self.path.display();
        let cannot_read = |e: io::Error| format!("cannot read the state file {shown}: {e}");
        // Nonblocking, so that a FIFO put there after the start's checks
        // cannot hang the open; not following a link put there since.
        let file = match OpenOptions::new().read(true).no_follow().open(&self.path) {
            Ok(file) => file,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(cannot_read(e)),
        };
        let meta = file.metadata().map_err(cannot_read)?;
        if !meta.is_file() {
            return Err(not_regular(&self.path, &meta));
        }
        let too_big = |len: u64| {
            format!(
                "the state file {shown} is {len} bytes, but a directory of {MAX_ROOMS} rooms \
                 takes at most {MAX_STATE_FILE} bytes: it is not a roomcast state file. The \
                 server will not start with it: move it away or give another --state"
            )
        };
        if meta.len() > MAX_STATE_FILE {
            return Err(too_big(meta.len()));
        }
        let mut text = Vec::with_capacity(meta.len() as usize);
        // Bounded even if the file grows while it is read.
        file.take(MAX_STATE_FILE + 1)
            .read_to_end(&mut text)
            .map_err(cannot_read)?;
        if text.len() as u64 > MAX_STATE_FILE {
            return Err(too_big(text.len() as u64));
        }
        if text.is_empty() {
            // Made empty on purpose (`install -m 0640 /dev/null PATH`, to
            // choose its permissions): no rooms yet, kept as they are.
            return Ok(false);
        }
        parse_state(&text, into).map(|()| true).map_err(|why| {
            format!(
                "the state file {shown} is damaged ({why}). The server will not start \
                     with it, so no room is lost: repair or move the file away, then start again"
            )
        })
    }

    /// Stores `directory`, durably, replacing what was there.
    pub fn save(&self, directory: &Directory) -> io::Result<()> {
        // The file being replaced says what permissions (and, where the
        // server may set them, owner and group) the new one gets.
        let old = fs::symlink_metadata(&self.path)
            .ok()
            .filter(|m| m.is_file());
        let mut tmp = self.temp_file()?;
        platform::copy_access(tmp.as_file(), old.as_ref())?;
        let mut out = BufWriter::new(tmp.as_file_mut());
        writeln!(out, "{HEADER}")?;
        let mut line = LineBuf::new();
        let rooms = directory.rooms().iter().zip(directory.owners());
        for ((room, owner), privacy) in rooms.zip(directory.privacy()) {
            line.clear();
            // A room line is always far below the line limit.
            let _ = encode_room_line(room, &mut line);
            out.write_all(line.trim_end_matches('\n').as_bytes())?;
            match owner.token {
                Some(hash) => write!(out, " {}", hash.to_hex())?,
                None => write!(out, " -")?,
            }
            match privacy {
                Some(p) => writeln!(out, " {PRIVATE} {} {}", p.salt, p.verifier)?,
                None => writeln!(out)?,
            }
        }
        writeln!(out, "end {}", directory.len())?;
        out.flush()?;
        drop(out);
        tmp.as_file().sync_all()?;
        // rename(2): replaces PATH itself, never a file a link there points to.
        tmp.persist(&self.path).map_err(|e| e.error)?;
        // The rename itself is durable only once the folder is synced.
        platform::sync_folder(&self.folder)
    }

    /// A new, empty temporary file beside the state file, made exclusively
    /// (never through an existing name or link), mode 0600 at most; it is
    /// removed when dropped unless persisted.
    fn temp_file(&self) -> io::Result<tempfile::NamedTempFile> {
        tempfile::Builder::new()
            .prefix(&self.tmp_prefix)
            .suffix(TMP_SUFFIX)
            .rand_bytes(TMP_RANDOM)
            .private()
            .tempfile_in(&self.folder)
    }

    /// Removes temporary files a crash in the middle of a save left behind
    /// (only names of exactly that shape; the lock says no other server is
    /// saving).
    fn remove_leftovers(&self) {
        let Ok(entries) = fs::read_dir(&self.folder) else {
            return;
        };
        let prefix = self.tmp_prefix.as_encoded_bytes();
        for entry in entries.flatten() {
            let name = entry.file_name();
            let name = name.as_encoded_bytes();
            let ours = name.len() == prefix.len() + TMP_RANDOM + TMP_SUFFIX.len()
                && name.starts_with(prefix)
                && name.ends_with(TMP_SUFFIX.as_bytes());
            if ours && entry.file_type().is_ok_and(|t| t.is_file()) {
                let _ = fs::remove_file(entry.path());
            }
        }
    }
}

/// `path` with symbolic links followed (at most [`MAX_LINK_HOPS`]); a link
/// to a missing file gives that file's path.
fn follow_links(path: &Path) -> Result<PathBuf, String> {
    let mut path = path.to_path_buf();
    for _ in 0..MAX_LINK_HOPS {
        match fs::symlink_metadata(&path) {
            Ok(m) if m.file_type().is_symlink() => {
                let target = fs::read_link(&path).map_err(|e| e.to_string())?;
                // A relative link is relative to the link's own folder.
                path = match path.parent() {
                    Some(folder) => folder.join(target),
                    None => target,
                };
            }
            _ => return Ok(path),
        }
    }
    Err(format!(
        "more than {MAX_LINK_HOPS} symbolic links in a row (a loop?)"
    ))
}

/// Why `path` is not read: it is not a regular file.
fn not_regular(path: &Path, meta: &fs::Metadata) -> String {
    let t = meta.file_type();
    let kind = if t.is_dir() {
        "a folder"
    } else if let Some(special) = platform::special_kind(&t) {
        special
    } else if t.is_symlink() {
        "a symbolic link"
    } else {
        "not a file"
    };
    format!(
        "the state file {} is not a regular file (it is {kind}); give --state the path of a \
         file (it is made at the first change if missing)",
        path.display()
    )
}

/// Takes the exclusive lock on `PATH.lock` and writes this process's PID
/// there; if another process holds it, says which.
fn lock(path: &Path) -> Result<File, String> {
    let mut lock_path = path.as_os_str().to_owned();
    lock_path.push(".lock");
    let lock_path = PathBuf::from(lock_path);
    let shown = lock_path.display();
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .private()
        .no_follow()
        .open(&lock_path)
        .map_err(|e| {
            let hint = if platform::is_refused_link(&e) {
                "it is a symbolic link, which is not followed: move it away"
            } else {
                "the server must be able to create and write files in that folder"
            };
            format!(
                "cannot use the state file {}: cannot open its lock file {shown} ({e}); {hint}",
                path.display()
            )
        })?;
    let meta = file
        .metadata()
        .map_err(|e| format!("cannot read the lock file {shown}: {e}"))?;
    if !meta.is_file() {
        return Err(format!(
            "the lock file {shown} is not a regular file: move it away"
        ));
    }
    match platform::try_lock(&file) {
        Ok(true) => {}
        Ok(false) => {
            let holder = match read_holder(&mut file) {
                Some(pid) => format!("PID {pid}"),
                None => "its PID is not written yet".to_owned(),
            };
            return Err(format!(
                "the state file {} is in use by another server ({holder}, from {shown}); \
                 stop that one first, or give this one another --state",
                path.display()
            ));
        }
        Err(e) => {
            return Err(format!("cannot lock {shown}: {e}"));
        }
    }
    let pid = format!("{}\n", std::process::id());
    file.set_len(0)
        .and_then(|()| (&file).write_all(pid.as_bytes()))
        .map_err(|e| format!("cannot write the lock file {shown}: {e}"))?;
    Ok(file)
}

/// The PID the lock holder wrote, if it has written it yet.
fn read_holder(file: &mut File) -> Option<u32> {
    use std::io::{Seek, SeekFrom};
    for _ in 0..PID_READ_TRIES {
        let mut text = String::new();
        let read = file.seek(SeekFrom::Start(0)).and_then(|_| {
            Read::by_ref(file)
                .take(MAX_LOCK_FILE)
                .read_to_string(&mut text)
        });
        if let (Ok(_), Ok(pid)) = (read, text.trim().parse()) {
            return Some(pid);
        }
        std::thread::sleep(PID_READ_PAUSE);
    }
    None
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
    let version = match lines.next() {
        Some((_, line)) if line == HEADER.as_bytes() => 3,
        Some((_, line)) if line == HEADER_V2.as_bytes() => 2,
        Some((_, line)) if line == HEADER_V1.as_bytes() => 1,
        _ => {
            return Err(format!(
                "line 1 is not '{HEADER}' (or '{HEADER_V2}', '{HEADER_V1}')"
            ));
        }
    };
    let with_owners = version >= 2;
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
        let (line, privacy) = if version >= 3 {
            split_privacy(line, number)?
        } else {
            (line, None)
        };
        let (line, owner) = if with_owners {
            let Some(at) = line.iter().rposition(|&b| b == b' ') else {
                return Err(format!("line {number}: the room's owner is missing"));
            };
            let token = match &line[at + 1..] {
                b"-" => None,
                hex => Some(
                    std::str::from_utf8(hex)
                        .ok()
                        .and_then(TokenHash::from_hex)
                        .ok_or_else(|| {
                            format!("line {number}: the owner is not 64 hex digits or '-'")
                        })?,
                ),
            };
            let owner = Owner {
                token,
                ..Owner::default()
            };
            (&line[..at], owner)
        } else {
            (line, Owner::default())
        };
        let room = parse_room_line(line).map_err(|e| format!("line {number}: {e}"))?;
        directory
            .insert_private(room, owner, privacy)
            .map_err(|e| format!("line {number}: {e}"))?;
    }
    Err("the end line is missing: the file was cut short".into())
}

/// Splits a version-3 room line into the rest and, for a private room, its
/// salt and verifier: a room line is `NAME ADDRESS PORT OWNER` (4 words,
/// one space apart), then `private SALT VERIFIER` for a private room. A
/// line of 4 words or fewer is returned whole (the caller names what is
/// missing); past the owner, each error names the real problem: a word
/// that is not `private`, a private room without its salt and verifier, a
/// word too many, a salt or verifier that is not the canonical base64url
/// of 16 bytes.
fn split_privacy(line: &[u8], number: usize) -> Result<(&[u8], Option<Privacy>), String> {
    // Quoted short and escaped: the file may hold anything.
    let text = |bytes: &[u8]| {
        String::from_utf8_lossy(&bytes[..bytes.len().min(40)])
            .escape_debug()
            .to_string()
    };
    let words: Vec<&[u8]> = line.split(|&b| b == b' ').collect();
    if words.len() <= 4 {
        return Ok((line, None));
    }
    if words.iter().any(|w| w.is_empty()) {
        return Err(format!(
            "line {number}: two spaces in a row (or a space at an end): the words of a \
             room line are one space apart"
        ));
    }
    let form = "a room line is 'NAME ADDRESS PORT OWNER', then 'private SALT VERIFIER' \
                for a private room";
    if words[4] != PRIVATE.as_bytes() {
        return Err(format!(
            "line {number}: unexpected word '{}' after the owner ({form})",
            text(words[4])
        ));
    }
    if words.len() < 7 {
        return Err(format!(
            "line {number}: a private room needs 'private SALT VERIFIER' after the owner"
        ));
    }
    if let Some(extra) = words.get(7) {
        return Err(format!(
            "line {number}: unexpected word '{}' after the verifier ({form})",
            text(extra)
        ));
    }
    let (salt, verifier) = (words[5], words[6]);
    // 22 base64url characters that Salt::parse refuses have non-zero pad
    // bits: not the canonical text of 16 bytes.
    let why = |bytes: &[u8]| {
        if bytes.len() == KEY_TEXT
            && bytes
                .iter()
                .all(|&b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            "is not the canonical base64url of 16 bytes".to_owned()
        } else {
            format!("is not {KEY_TEXT} base64url characters")
        }
    };
    let salt = std::str::from_utf8(salt)
        .ok()
        .and_then(Salt::parse)
        .ok_or_else(|| {
            format!(
                "line {number}: the private room's salt '{}' {}",
                text(salt),
                why(salt)
            )
        })?;
    let verifier = std::str::from_utf8(verifier)
        .ok()
        .and_then(Verifier::parse)
        .ok_or_else(|| {
            format!(
                "line {number}: the private room's verifier '{}' {}",
                text(verifier),
                why(verifier)
            )
        })?;
    // The owner ends where the fifth word begins.
    let owner_end = words[..4].iter().map(|w| w.len() + 1).sum::<usize>() - 1;
    Ok((&line[..owner_end], Some(Privacy { salt, verifier })))
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
            group: std::net::Ipv4Addr::new(239, 0, 0, last).into(),
            port,
        }
    }

    /// The names in the state file's folder, sorted.
    fn folder_names(state: &StateFile) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(&state.folder)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn round_trips_a_directory() {
        let state = StateFile::open(temp_path("round")).unwrap();
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
        // An owned room: its token's hash is stored, not the token, nor
        // who made it from where (that is for this run only).
        let hash = TokenHash::of("some-owner-token-1234");
        let owner = Owner {
            token: Some(hash),
            maker: Some(roomcast_core::ConnId(7)),
            maker_addr: Some([10, 0, 0, 1].into()),
        };
        dir.insert_owned(room("owned", 4, 5000), owner).unwrap();
        // A private room: its salt and verifier are stored as getroom
        // shows them.
        let privacy = Privacy {
            salt: Salt([1; 16]),
            verifier: Verifier([2; 16]),
        };
        dir.insert_private(room("secret", 5, 5000), owner, Some(privacy))
            .unwrap();
        state.save(&dir).unwrap();
        let text = fs::read_to_string(state.path()).unwrap();
        assert!(text.starts_with("roomcast-state 3\n"), "{text}");
        assert!(
            text.contains(&format!(
                "secret 239.0.0.5 5000 {} private AQEBAQEBAQEBAQEBAQEBAQ AgICAgICAgICAgICAgICAg\n",
                hash.to_hex()
            )),
            "{text}"
        );
        assert!(text.contains(&format!("owned 239.0.0.4 5000 {}\n", hash.to_hex())));
        assert!(text.contains("lobby 239.0.0.1 5000 -\n"), "{text}");
        assert!(!text.contains("some-owner-token"));
        assert!(state.load(&mut loaded).unwrap());
        assert_eq!(loaded.rooms(), dir.rooms());
        let stored: Vec<_> = dir.owners().iter().map(|o| o.token).collect();
        let read: Vec<_> = loaded.owners().iter().map(|o| o.token).collect();
        assert_eq!(read, stored);
        assert_eq!(loaded.privacy(), dir.privacy());
        assert_eq!(loaded.get_with_privacy("SECRET").unwrap().1, Some(&privacy));
        assert_eq!(loaded.get_with_privacy("lobby").unwrap().1, None);
        assert_eq!(loaded.get_owned("owned").unwrap().1.maker, None);
        // Saving again replaces the file.
        dir.remove("lobby").unwrap();
        state.save(&dir).unwrap();
        let mut again = Box::new(Directory::new());
        state.load(&mut again).unwrap();
        assert_eq!(again.rooms(), dir.rooms());
        // No temporary file is left: only the file and its lock.
        assert_eq!(folder_names(&state), ["rooms.state", "rooms.state.lock"]);
        assert_eq!(
            fs::read_to_string(state.path.with_extension("state.lock")).unwrap(),
            format!("{}\n", std::process::id())
        );
    }

    #[test]
    fn reads_a_version_1_file_as_rooms_without_owners() {
        let state = StateFile::open(temp_path("v1")).unwrap();
        fs::write(
            state.path(),
            "roomcast-state 1\nlobby 239.0.0.1 5000\nend 239.0.0.2 5000\nend 2\n",
        )
        .unwrap();
        let mut loaded = Box::new(Directory::new());
        assert!(state.load(&mut loaded).unwrap());
        assert_eq!(
            loaded.rooms(),
            [room("end", 2, 5000), room("lobby", 1, 5000)]
        );
        assert!(loaded.owners().iter().all(|o| !o.is_owned()));
        // Written back as version 3.
        state.save(&loaded).unwrap();
        assert_eq!(
            fs::read_to_string(state.path()).unwrap(),
            "roomcast-state 3\nend 239.0.0.2 5000 -\nlobby 239.0.0.1 5000 -\nend 2\n"
        );
    }

    #[test]
    fn reads_a_version_2_file_as_open_rooms_with_owners() {
        let state = StateFile::open(temp_path("v2")).unwrap();
        let hash = TokenHash::of("some-owner-token-1234").to_hex();
        // A room named `private` is a room like any other.
        let v2 = format!(
            "roomcast-state 2\nlobby 239.0.0.1 5000 {hash}\nprivate 239.0.0.2 5000 -\nend 2\n"
        );
        fs::write(state.path(), &v2).unwrap();
        let mut loaded = Box::new(Directory::new());
        assert!(state.load(&mut loaded).unwrap());
        assert_eq!(
            loaded.rooms(),
            [room("lobby", 1, 5000), room("private", 2, 5000)]
        );
        assert!(loaded.owners()[0].is_owned());
        assert_eq!(loaded.privacy(), [None, None]);
        state.save(&loaded).unwrap();
        assert_eq!(
            fs::read_to_string(state.path()).unwrap(),
            v2.replace("roomcast-state 2", "roomcast-state 3")
        );
        // In version 2 `private ...` is no field: such a line is damaged.
        let salt = "AQEBAQEBAQEBAQEBAQEBAQ";
        let bad = format!("roomcast-state 2\nx 239.0.0.1 5000 - private {salt} {salt}\nend 1\n");
        fs::write(state.path(), bad).unwrap();
        let err = state.load(&mut Box::new(Directory::new())).unwrap_err();
        assert!(err.contains("line 2"), "{err}");
    }

    #[test]
    fn a_damaged_private_room_line_names_the_real_problem() {
        // The attack review's lines: each was "the owner is not 64 hex
        // digits or '-'" or "not 22 base64url characters" before.
        let owner = "ab".repeat(32);
        let salt = "nh7C22ArFOdPsfAMd5owVw";
        let cases = [
            (
                format!("sec 239.255.184.255 44541 {owner} private {salt}"),
                "line 2: a private room needs 'private SALT VERIFIER' after the owner",
            ),
            (
                format!("sec 239.255.184.255 44541 {owner} private {salt} {salt} extra"),
                "line 2: unexpected word 'extra' after the verifier",
            ),
            (
                format!("sec 239.255.184.255 44541 {owner} PRIVATE {salt} {salt}"),
                "line 2: unexpected word 'PRIVATE' after the owner",
            ),
            (
                format!("sec 239.255.184.255 44541 {owner} open"),
                "line 2: unexpected word 'open' after the owner",
            ),
            (
                format!("sec 239.255.184.255 44541 {owner}  private {salt} {salt}"),
                "line 2: two spaces in a row",
            ),
            (
                format!("sec 239.255.184.255 44541 {owner} private nh7C22ArFOdPsfAMd5owVx {salt}"),
                "salt 'nh7C22ArFOdPsfAMd5owVx' is not the canonical base64url of 16 bytes",
            ),
            (
                format!("sec 239.255.184.255 44541 {owner} private {salt} nh7C22ArFOdPsfAMd5owV+"),
                "verifier 'nh7C22ArFOdPsfAMd5owV+' is not 22 base64url characters",
            ),
        ];
        for (i, (room_line, why)) in cases.iter().enumerate() {
            let path = temp_path(&format!("private{i}"));
            fs::write(&path, format!("roomcast-state 3\n{room_line}\nend 1\n")).unwrap();
            let state = StateFile::open(path).unwrap();
            let err = state.load(&mut Box::new(Directory::new())).unwrap_err();
            assert!(err.contains(why), "case {i}: {err}");
            assert!(!err.contains("the owner is not"), "case {i}: {err}");
        }
        // And the good line loads.
        let path = temp_path("private-good");
        let good = format!("sec 239.255.184.255 44541 {owner} private {salt} {salt}");
        fs::write(&path, format!("roomcast-state 3\n{good}\nend 1\n")).unwrap();
        let mut dir = Box::new(Directory::new());
        StateFile::open(path).unwrap().load(&mut dir).unwrap();
        assert!(dir.get_with_privacy("sec").unwrap().1.is_some());
    }

    #[test]
    fn refuses_damaged_files_and_says_where() {
        let cases: [(&[u8], &str); 16] = [
            (b"roomcast-state 2", "complete line"),
            // Version 3: `private`, then a salt and a verifier, each 22
            // base64url characters.
            (
                b"roomcast-state 3\nx 239.0.0.1 5000 - private AQEBAQEBAQEBAQEBAQEBAQ short\nend 1\n",
                "line 2: the private room's verifier 'short' is not 22 base64url",
            ),
            (
                b"roomcast-state 3\nx 239.0.0.1 5000 - private AQEBAQEBAQEBAQEBAQEBA+ AQEBAQEBAQEBAQEBAQEBAQ\nend 1\n",
                "line 2: the private room's salt 'AQEBAQEBAQEBAQEBAQEBA+' is not 22",
            ),
            (
                b"roomcast-state 3\nx 239.0.0.1 5000 - private\nend 1\n",
                "line 2: a private room needs 'private SALT VERIFIER' after the owner",
            ),
            (
                b"roomcast-state 3\nx 239.0.0.1 5000 - PRIVATE AQEBAQEBAQEBAQEBAQEBAQ AQEBAQEBAQEBAQEBAQEBAQ\nend 1\n",
                "line 2: unexpected word 'PRIVATE' after the owner",
            ),
            (
                b"roomcast-state 3\nx private AQEBAQEBAQEBAQEBAQEBAQ AQEBAQEBAQEBAQEBAQEBAQ\nend 1\n",
                "line 2",
            ),
            (b"roomcast-state 4\nend 0\n", "line 1"),
            (
                b"roomcast-state 1\nlobby 239.0.0.1 5000\n",
                "end line is missing",
            ),
            (b"roomcast-state 1\nlobby 239.0.0.1 5000\nend 2\n", "line 3"),
            // Version 2: the owner field must be there, and be a hash or -.
            (b"roomcast-state 2\nlobby 239.0.0.1 5000\nend 1\n", "line 2"),
            (
                b"roomcast-state 2\nlobby 239.0.0.1 5000 abc\nend 1\n",
                "not 64 hex digits",
            ),
            (b"roomcast-state 2\nlobby\nend 1\n", "owner is missing"),
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
            let path = temp_path(&format!("bad{i}"));
            fs::write(&path, bytes).unwrap();
            let state = StateFile::open(path).unwrap();
            let err = state.load(&mut Box::new(Directory::new())).unwrap_err();
            assert!(err.contains(why), "case {i}: {err}");
            assert!(err.contains("will not start"), "case {i}: {err}");
            // The damaged file is left as it was.
            assert_eq!(fs::read(&state.path).unwrap(), bytes);
        }
    }

    #[test]
    #[cfg(unix)]
    fn an_empty_file_is_a_directory_with_no_rooms_and_keeps_its_mode() {
        use std::os::unix::fs::PermissionsExt;
        let path = temp_path("empty");
        fs::write(&path, b"").unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o640)).unwrap();
        let state = StateFile::open(path.clone()).unwrap();
        let mut loaded = Box::new(Directory::new());
        assert!(!state.load(&mut loaded).unwrap());
        assert!(loaded.is_empty());
        let mut dir = Box::new(Directory::new());
        dir.insert(room("lobby", 1, 5000)).unwrap();
        state.save(&dir).unwrap();
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o640, "the mode chosen beforehand is kept");
    }

    #[test]
    fn a_folder_in_place_of_the_file_is_refused() {
        let path = temp_path("folder");
        fs::create_dir_all(&path).unwrap(); // a folder where the file should be
        let err = StateFile::open(path).unwrap_err();
        assert!(err.contains("not a regular file (it is a folder)"), "{err}");
    }

    #[test]
    fn the_size_bound_is_the_largest_directory() {
        // "roomcast-state 3\n" + 4096 lines of 79 + 65 + 54 bytes (the
        // room with an IPv6 group, a space and 64 hex digits of owner,
        // " private", a space, the salt, a space, the verifier) +
        // "end 4096\n".
        assert_eq!(MAX_STATE_FILE, 17 + 4096 * (79 + 65 + 54) + 9);
        // The largest directory there is: every room with the longest
        // name, address and port. Its file is exactly at the bound.
        let path = temp_path("largest");
        let state = StateFile::open(path.clone()).unwrap();
        let mut dir = Box::new(Directory::new());
        for i in 0..MAX_ROOMS {
            let name = format!(
                "{}{i:04}",
                "a".repeat(roomcast_core::limits::MAX_ROOM_NAME - 4)
            );
            // The longest address: an IPv6 one of eight 4-digit groups.
            let group = format!("ff15:1111:1111:1111:1111:1111:1111:{:04x}", 0x1000 + i)
                .parse()
                .unwrap();
            let owner = Owner {
                token: Some(TokenHash::of(&name)),
                ..Owner::default()
            };
            // Every room private.
            let privacy = Privacy {
                salt: Salt([i as u8; 16]),
                verifier: Verifier([!(i as u8); 16]),
            };
            dir.insert_private(
                roomcast_core::Room {
                    name: name.as_str().try_into().unwrap(),
                    group,
                    port: 10000,
                },
                owner,
                Some(privacy),
            )
            .unwrap();
        }
        state.save(&dir).unwrap();
        assert_eq!(fs::metadata(&path).unwrap().len(), MAX_STATE_FILE);
        let mut loaded = Box::new(Directory::new());
        assert!(state.load(&mut loaded).unwrap());
        assert_eq!(loaded.len(), MAX_ROOMS);
        assert_eq!(loaded.privacy(), dir.privacy());
        // One byte more is refused before it is read.
        let mut bytes = fs::read(&path).unwrap();
        bytes.insert(0, b'x');
        fs::write(&path, &bytes).unwrap();
        let err = state.load(&mut Box::new(Directory::new())).unwrap_err();
        assert!(
            err.contains(&format!("is {} bytes", MAX_STATE_FILE + 1)),
            "{err}"
        );
        assert!(
            err.contains(&format!("at most {MAX_STATE_FILE} bytes")),
            "{err}"
        );
    }

    #[test]
    fn one_state_file_is_held_once() {
        let path = temp_path("locked");
        let first = StateFile::open(path.clone()).unwrap();
        // flock is per open file: a second open, even here, is refused.
        let err = StateFile::open(path.clone()).unwrap_err();
        assert!(err.contains("in use by another server"), "{err}");
        assert!(
            err.contains(&format!("PID {}", std::process::id())),
            "{err}"
        );
        drop(first);
        StateFile::open(path).unwrap();
    }

    #[test]
    fn leftovers_of_a_crashed_save_are_removed_and_nothing_else() {
        let path = temp_path("leftovers");
        let folder = path.parent().unwrap();
        for name in [
            ".rooms.state.AbC123.roomcast-tmp",
            ".rooms.state.x.roomcast-tmp",
            ".rooms.state.backup.tmp",
        ] {
            fs::write(folder.join(name), b"").unwrap();
        }
        let state = StateFile::open(path).unwrap();
        assert_eq!(
            folder_names(&state),
            [
                ".rooms.state.backup.tmp",
                ".rooms.state.x.roomcast-tmp",
                "rooms.state.lock"
            ]
        );
    }

    // Links need privileges on Windows, and are refused another way there.
    #[cfg(unix)]
    #[test]
    fn a_link_planted_at_the_lock_file_is_not_followed() {
        let path = temp_path("lock-link");
        let folder = path.parent().unwrap();
        let victim = folder.join("victim");
        fs::write(&victim, b"precious\n").unwrap();
        std::os::unix::fs::symlink(&victim, folder.join("rooms.state.lock")).unwrap();
        let err = StateFile::open(path).unwrap_err();
        assert!(err.contains("cannot open its lock file"), "{err}");
        assert!(err.contains("is a symbolic link"), "{err}");
        assert_eq!(fs::read(&victim).unwrap(), b"precious\n");
    }

    // Links need privileges on Windows, and are refused another way there.
    #[cfg(unix)]
    #[test]
    fn a_loop_of_links_is_refused() {
        let path = temp_path("loop");
        let other = path.with_file_name("other");
        std::os::unix::fs::symlink(&other, &path).unwrap();
        std::os::unix::fs::symlink(&path, &other).unwrap();
        let err = StateFile::open(path).unwrap_err();
        assert!(err.contains("more than 40 symbolic links"), "{err}");
    }
}
