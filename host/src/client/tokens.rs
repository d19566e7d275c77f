//! The owner tokens `makeroom` answered, kept so that `deleteroom` from
//! this account sends them by itself.
//!
//! The file is `$XDG_STATE_HOME/roomcast/tokens`, else
//! `~/.local/state/roomcast/tokens`: its folder is made private to the user
//! (0700) and the file too (0600). One line per room,
//! `<server> <room> <token>`, the server as the client named it
//! (`HOST:PORT`); a later line for the same server and room wins. It is
//! rewritten whole (a temporary file renamed over it) and keeps the newest
//! [`MAX_TOKENS`] rooms.

use std::fs;
use std::io::{self, Read as _, Write as _};
use std::path::PathBuf;

use roomcast_core::limits::{MAX_ROOM_NAME, MAX_SERVER_ADDR, MAX_TOKEN};
use roomcast_core::{is_valid_token, same_name};

use crate::platform;

/// The most rooms whose tokens are kept; the oldest go first.
pub const MAX_TOKENS: usize = 4096;

/// The largest tokens file read: [`MAX_TOKENS`] lines of a server address,
/// a room name, a token and their separators.
const MAX_TOKENS_FILE: u64 =
    (MAX_TOKENS * (MAX_SERVER_ADDR + 1 + MAX_ROOM_NAME + 1 + MAX_TOKEN + 1)) as u64;

/// Where the tokens file is, if `XDG_STATE_HOME` or `HOME` says.
pub fn default_path() -> Option<PathBuf> {
    let xdg = std::env::var_os("XDG_STATE_HOME")
        .map(PathBuf::from)
        .filter(|p| p.is_absolute());
    let base = xdg.or_else(|| {
        std::env::var_os("HOME")
            .map(PathBuf::from)
            .filter(|p| p.is_absolute())
            .map(|home| home.join(".local").join("state"))
    })?;
    Some(base.join("roomcast").join("tokens"))
}

/// The tokens file.
pub struct Tokens {
    path: Option<PathBuf>,
}

impl Tokens {
    /// The file at its [`default_path`].
    pub fn new() -> Self {
        Self {
            path: default_path(),
        }
    }

    /// Where the file is, if anywhere.
    #[cfg(test)]
    pub fn path(&self) -> Option<&PathBuf> {
        self.path.as_ref()
    }

    /// Every entry, oldest first; nothing if the file is missing or
    /// unreadable (lines that are not entries are skipped).
    fn read(&self) -> Vec<(String, String, String)> {
        let Some(path) = &self.path else {
            return Vec::new();
        };
        let mut text = String::new();
        let Ok(file) = fs::File::open(path) else {
            return Vec::new();
        };
        if file
            .take(MAX_TOKENS_FILE)
            .read_to_string(&mut text)
            .is_err()
        {
            return Vec::new();
        }
        text.lines()
            .filter_map(|line| {
                let mut words = line.split(' ');
                let (server, room, token) = (words.next()?, words.next()?, words.next()?);
                (words.next().is_none() && is_valid_token(token))
                    .then(|| (server.to_string(), room.to_string(), token.to_string()))
            })
            .collect()
    }

    /// The token kept for `room` (matched as the server matches names) on
    /// `server`, the newest if several.
    pub fn find(&self, server: &str, room: &str) -> Option<String> {
        self.read()
            .into_iter()
            .rev()
            .find(|(s, r, _)| s == server && same_name(r, room))
            .map(|(_, _, token)| token)
    }

    /// Keeps `token` for `room` on `server`.
    pub fn remember(&self, server: &str, room: &str, token: &str) -> Result<(), String> {
        let Some(path) = &self.path else {
            return Err("neither XDG_STATE_HOME nor HOME is set".into());
        };
        let mut entries = self.read();
        entries.retain(|(s, r, _)| !(s == server && same_name(r, room)));
        entries.push((server.into(), room.into(), token.into()));
        let keep_from = entries.len().saturating_sub(MAX_TOKENS);
        let write = || -> io::Result<()> {
            let dir = path.parent().unwrap_or(path);
            platform::create_private_dir(dir)?;
            // tempfile makes it 0600 on Unix, in the same folder.
            let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
            for (s, r, t) in &entries[keep_from..] {
                writeln!(tmp, "{s} {r} {t}")?;
            }
            tmp.as_file().sync_all()?;
            tmp.persist(path).map_err(|e| e.error)?;
            Ok(())
        };
        write().map_err(|e| format!("{}: {e}", path.display()))
    }
}

/// `deleteroom <name>` typed without a token, completed with the token kept
/// for that room on `server`; `None` when the line is something else or no
/// token is kept.
pub fn complete_deleteroom(line: &str, server: &str, tokens: &Tokens) -> Option<String> {
    let mut words = line.split_whitespace();
    let verb = words.next()?;
    let name = words.next()?;
    if !verb.eq_ignore_ascii_case("deleteroom") || words.next().is_some() {
        return None;
    }
    let token = tokens.find(server, name)?;
    Some(format!("{verb} {name} {token}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store(dir: &std::path::Path) -> Tokens {
        Tokens {
            path: Some(dir.join("state").join("roomcast").join("tokens")),
        }
    }

    #[test]
    fn tokens_are_kept_per_server_and_room_in_a_private_file() {
        let dir = tempfile::tempdir().unwrap();
        let tokens = store(dir.path());
        assert_eq!(tokens.find("a:5577", "lobby"), None);
        tokens
            .remember("a:5577", "lobby", "AAAAAAAAAAAAAAAAAAAAAA")
            .unwrap();
        tokens
            .remember("b:5577", "lobby", "BBBBBBBBBBBBBBBBBBBBBB")
            .unwrap();
        tokens
            .remember("a:5577", "Lobby", "CCCCCCCCCCCCCCCCCCCCCC")
            .unwrap();
        assert_eq!(
            tokens.find("a:5577", "LOBBY").as_deref(),
            Some("CCCCCCCCCCCCCCCCCCCCCC")
        );
        assert_eq!(
            tokens.find("b:5577", "lobby").as_deref(),
            Some("BBBBBBBBBBBBBBBBBBBBBB")
        );
        assert_eq!(tokens.find("a:5577", "attic"), None);
        let text = fs::read_to_string(tokens.path().unwrap()).unwrap();
        assert_eq!(text.lines().count(), 2, "{text}");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let path = tokens.path().unwrap();
            let file = fs::metadata(path).unwrap().permissions().mode() & 0o777;
            let folder = fs::metadata(path.parent().unwrap())
                .unwrap()
                .permissions()
                .mode()
                & 0o777;
            assert_eq!((file, folder), (0o600, 0o700));
        }
    }

    #[test]
    fn deleteroom_without_a_token_is_completed() {
        let dir = tempfile::tempdir().unwrap();
        let tokens = store(dir.path());
        tokens
            .remember("a:1", "lobby", "AAAAAAAAAAAAAAAAAAAAAA")
            .unwrap();
        assert_eq!(
            complete_deleteroom("  DeleteRoom Lobby ", "a:1", &tokens).as_deref(),
            Some("DeleteRoom Lobby AAAAAAAAAAAAAAAAAAAAAA")
        );
        // Given a token, another room, another server, another command: as typed.
        assert_eq!(
            complete_deleteroom("deleteroom lobby XXXXXXXXXXXXXXXXXXXX", "a:1", &tokens),
            None
        );
        assert_eq!(
            complete_deleteroom("deleteroom attic", "a:1", &tokens),
            None
        );
        assert_eq!(
            complete_deleteroom("deleteroom lobby", "b:1", &tokens),
            None
        );
        assert_eq!(complete_deleteroom("getdir lobby", "a:1", &tokens), None);
    }

    #[test]
    fn the_newest_max_tokens_are_kept() {
        let dir = tempfile::tempdir().unwrap();
        let tokens = store(dir.path());
        let path = tokens.path().unwrap().clone();
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        let lines: String = (0..MAX_TOKENS)
            .map(|i| format!("s:1 r{i} AAAAAAAAAAAAAAAAAAAAAA\n"))
            .collect();
        fs::write(&path, lines).unwrap();
        tokens
            .remember("s:1", "new", "BBBBBBBBBBBBBBBBBBBBBB")
            .unwrap();
        let text = fs::read_to_string(&path).unwrap();
        assert_eq!(text.lines().count(), MAX_TOKENS);
        assert_eq!(tokens.find("s:1", "r0"), None, "the oldest went");
        assert!(tokens.find("s:1", "r1").is_some());
        assert!(tokens.find("s:1", "new").is_some());
    }
}
