//! The chat log (`--log-dir DIR`): each room's messages appended to
//! `DIR/ROOM/YYYY-MM-DD.log`, one file per room and local day, the way IRC
//! clients keep logs.
//!
//! Lines are `HH:MM:SS <Ann> text`, `HH:MM:SS * Ann waves` for an action,
//! and `HH:MM:SS text` for a datagram without a sender; one's own messages
//! are logged too. Text from the network goes through the same
//! neutralisation as the screen (the core's `Message` display), so no
//! control character is ever written raw. The folders are made `0700` and
//! the files `0600` (owner only), whatever the umask; existing ones keep
//! their permissions. A symbolic link in place of a day's file is not
//! followed (the write fails and says so).
//!
//! A room name may hold any printable character; [`file_name`] makes it a
//! safe single path component.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use jiff::Zoned;

use super::style::{clean, parse};
use crate::platform::OpenOptionsExt as _;

/// The mode of a folder the chat log makes (Unix; on Windows a folder takes
/// its parent's access control list): the owner only.
#[cfg(unix)]
const PRIVATE_FOLDER_MODE: u32 = 0o700;

/// A room name as one safe path component: letters and digits of any
/// script, `-` and `_` are kept, and `.` except as the first character;
/// every other character (`/`, `\`, `%`, `:`, controls, invisible
/// formatting characters) is written as `%XX` for each byte of its UTF-8.
/// So the name is never empty, `.` or `..`, never hidden, holds no
/// separator, and two room names never share a file.
pub fn file_name(room: &str) -> String {
    let mut out = String::new();
    for (i, c) in room.chars().enumerate() {
        let keep = c.is_alphanumeric() && !c.is_control() && !is_format(c)
            || c == '-'
            || c == '_'
            || (c == '.' && i > 0);
        if keep {
            out.push(c);
        } else {
            let mut buf = [0; 4];
            for b in c.encode_utf8(&mut buf).bytes() {
                out.push_str(&format!("%{b:02X}"));
            }
        }
    }
    if out.is_empty() {
        out.push('%');
    }
    out
}

/// Invisible formatting characters (no letter is one, but be sure).
fn is_format(c: char) -> bool {
    matches!(c, '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2060}'..='\u{206F}' | '\u{FEFF}')
}

/// The log line for a chat payload received (or sent) at `now`, LF ended.
pub fn line(now: &Zoned, payload: &[u8], truncated: bool) -> String {
    let time = now.strftime("%H:%M:%S");
    let parsed = parse(payload);
    let text = clean(parsed.text, truncated);
    match parsed.sender {
        None => format!("{time} {text}\n"),
        Some(sender) if parsed.action => {
            let sep = if text.is_empty() { "" } else { " " };
            format!("{time} * {}{sep}{text}\n", clean(sender, false))
        }
        Some(sender) => format!("{time} <{}> {text}\n", clean(sender, false)),
    }
}

/// Appends chat messages to the log files under one folder.
pub struct ChatLog {
    dir: PathBuf,
    /// The file open now, and its path.
    open: Option<(PathBuf, File)>,
    /// An error was reported already (reported once; logging goes on
    /// trying).
    reported: bool,
}

impl ChatLog {
    pub fn new(dir: PathBuf) -> ChatLog {
        ChatLog {
            dir,
            open: None,
            reported: false,
        }
    }

    /// Logs `payload` for `room`. An error comes back the first time
    /// only, worded for the user; the message is then lost to the log,
    /// not to the screen.
    pub fn write(
        &mut self,
        room: &str,
        now: &Zoned,
        payload: &[u8],
        truncated: bool,
    ) -> Option<String> {
        let path = self
            .dir
            .join(file_name(room))
            .join(format!("{}.log", now.strftime("%Y-%m-%d")));
        let result = self.append(&path, line(now, payload, truncated).as_bytes());
        match result {
            Ok(()) => None,
            Err(e) if !self.reported => {
                self.reported = true;
                Some(format!(
                    "Cannot write the chat log {}: {e}. Chatting goes on; messages that \
                     cannot be logged are only shown.",
                    clean(path.as_os_str().as_encoded_bytes(), false)
                ))
            }
            Err(_) => None,
        }
    }

    fn append(&mut self, path: &Path, line: &[u8]) -> io::Result<()> {
        if self.open.as_ref().is_none_or(|(p, _)| p != path) {
            self.open = None;
            if let Some(folder) = path.parent() {
                let mut builder = fs::DirBuilder::new();
                builder.recursive(true);
                #[cfg(unix)]
                std::os::unix::fs::DirBuilderExt::mode(&mut builder, PRIVATE_FOLDER_MODE);
                builder.create(folder)?;
                // The room's folder is ours to make: a link planted in its
                // place is not followed (the log folder itself may be one).
                if fs::symlink_metadata(folder)?.file_type().is_symlink() {
                    return Err(io::Error::other(format!(
                        "{} is a symbolic link, not a folder this client made; remove it",
                        folder.display()
                    )));
                }
            }
            let file = OpenOptions::new()
                .append(true)
                .create(true)
                .private()
                // A link planted in place of a day's file is not followed.
                .no_follow()
                .open(path)?;
            self.open = Some((path.to_path_buf(), file));
        }
        let Some((_, file)) = &mut self.open else {
            return Ok(());
        };
        let result = file.write_all(line);
        if result.is_err() {
            self.open = None;
        }
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn room_names_become_safe_file_names() {
        assert_eq!(file_name("lobby"), "lobby");
        assert_eq!(file_name("Café-2.0_x"), "Café-2.0_x");
        assert_eq!(file_name("日本語"), "日本語");
        assert_eq!(file_name(".."), "%2E.");
        assert_eq!(file_name("."), "%2E");
        assert_eq!(file_name("a/b"), "a%2Fb");
        assert_eq!(file_name("../etc"), "%2E.%2Fetc");
        assert_eq!(file_name("a\\b%"), "a%5Cb%25");
        assert_eq!(file_name("x\u{202E}y"), "x%E2%80%AEy");
        assert_eq!(file_name("a\x1bb"), "a%1Bb");
        assert_eq!(file_name(""), "%");
        // Distinct names, distinct files: `%` itself is escaped.
        assert_ne!(file_name("a%2Fb"), file_name("a/b"));
    }

    #[test]
    fn log_lines_are_neutralised() {
        let now: Zoned = "2026-11-27T09:05:07[UTC]".parse().unwrap();
        assert_eq!(line(&now, b"Ann: hi", false), "09:05:07 <Ann> hi\n");
        assert_eq!(
            line(&now, b"Ann: /me waves", false),
            "09:05:07 * Ann waves\n"
        );
        assert_eq!(line(&now, b"no sender", false), "09:05:07 no sender\n");
        let evil = line(&now, b"E\x1bve: \x1b[2J\r\nx\xe2\x80\xae\xff", true);
        assert_eq!(
            evil,
            "09:05:07 <E^[ve> ^[[2J^M^Jx<U+202E>\u{FFFD} [cut: too long]\n"
        );
    }

    #[test]
    #[cfg(unix)]
    fn files_are_private_and_errors_said_once() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let mut log = ChatLog::new(dir.path().join("logs"));
        let now: Zoned = "2026-11-27T09:05:07[UTC]".parse().unwrap();
        assert_eq!(log.write("a/b", &now, b"Ann: hi", false), None);
        assert_eq!(log.write("a/b", &now, b"Bob: yo", false), None);
        let file = dir.path().join("logs/a%2Fb/2026-11-27.log");
        let text = fs::read_to_string(&file).unwrap();
        assert_eq!(text, "09:05:07 <Ann> hi\n09:05:07 <Bob> yo\n");
        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&file), 0o600);
        assert_eq!(mode(file.parent().unwrap()), 0o700);

        // A link in place of the day's file is not followed.
        let target = dir.path().join("target");
        fs::write(&target, "").unwrap();
        fs::create_dir(dir.path().join("logs/lobby")).unwrap();
        std::os::unix::fs::symlink(&target, dir.path().join("logs/lobby/2026-11-27.log")).unwrap();
        assert!(log.write("lobby", &now, b"Ann: hi", false).is_some());
        assert_eq!(fs::read_to_string(&target).unwrap(), "");

        // Nor a link planted in place of a room's folder.
        let elsewhere = dir.path().join("elsewhere");
        fs::create_dir(&elsewhere).unwrap();
        std::os::unix::fs::symlink(&elsewhere, dir.path().join("logs/attic")).unwrap();
        let mut fresh = ChatLog::new(dir.path().join("logs"));
        let error = fresh.write("attic", &now, b"Ann: hi", false).unwrap();
        assert!(error.contains("is a symbolic link"), "{error}");
        assert_eq!(fs::read_dir(&elsewhere).unwrap().count(), 0);

        // A folder that cannot be made: said once, then quiet.
        fs::write(dir.path().join("plain"), "").unwrap();
        let mut log = ChatLog::new(dir.path().join("plain"));
        let error = log.write("lobby", &now, b"Ann: hi", false).unwrap();
        assert!(error.starts_with("Cannot write the chat log "), "{error}");
        assert_eq!(log.write("lobby", &now, b"Ann: hi", false), None);
    }
}
