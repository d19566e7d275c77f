//! A private room's passphrase: where it comes from, the checks it must
//! pass, and the secret Argon2id makes of it with the room's salt.
//!
//! The first source that applies is used (restic's and borg's convention):
//!
//! 1. `--passphrase-file PATH`: the file's bytes, with one trailing line
//!    ending (`\n` or `\r\n`) removed; a regular file of at most
//!    [`MAX_PASSPHRASE`] bytes plus that line ending;
//! 2. the [`ENV_VAR`] environment variable;
//! 3. typed at the terminal without echo (see `terminal.rs`).
//!
//! With none of them (stdin or stdout not a terminal), entering or making a
//! private room fails with a message that names the first two.
//!
//! A passphrase is held in [`Passphrase`] (zeroed when dropped) and never
//! leaves the host: the core gets only the Argon2id output
//! ([`RoomSecret`]), itself zeroed when dropped.

use std::io::Read as _;
use std::path::Path;

use argon2::{Algorithm, Argon2, Params, Version};
use roomcast_core::privacy::{
    ARGON2_ITERATIONS, ARGON2_LANES, ARGON2_MEMORY_KIB, MAX_PASSPHRASE, MIN_PASSPHRASE, RoomSecret,
    SECRET_BYTES, Salt,
};
use zeroize::Zeroizing;

/// The environment variable that holds a passphrase for scripts.
pub const ENV_VAR: &str = "ROOMCAST_PASSPHRASE";

/// The most bytes read from a passphrase file: the longest passphrase and
/// a `\r\n`. One more byte read means the file is too long.
const MAX_FILE: usize = MAX_PASSPHRASE + 2;

/// A passphrase's bytes, zeroed when dropped.
pub type Passphrase = Zeroizing<Vec<u8>>;

/// Where the passphrase comes from this time.
pub enum Source<'a> {
    /// `--passphrase-file PATH`.
    File(&'a Path),
    /// The [`ENV_VAR`] environment variable, with its value.
    Env(Passphrase),
    /// Typed at the terminal.
    Terminal,
}

/// The name of the source that applies, if it is not the terminal: the
/// option or the variable, as the user gave it.
pub fn source_name(file: Option<&Path>) -> Option<&'static str> {
    match source(file) {
        Source::File(_) => Some("--passphrase-file"),
        Source::Env(_) => Some(ENV_VAR),
        Source::Terminal => None,
    }
}

/// The source that applies: the file if one was given, else the
/// environment variable if it is set, else the terminal.
pub fn source(file: Option<&Path>) -> Source<'_> {
    if let Some(path) = file {
        return Source::File(path);
    }
    match std::env::var_os(ENV_VAR) {
        Some(value) => Source::Env(Zeroizing::new(os_bytes(value))),
        None => Source::Terminal,
    }
}

/// The bytes of an environment variable's value (on Windows, its UTF-8;
/// a value that is not Unicode gives bytes that fail the room's check
/// rather than a panic).
fn os_bytes(value: std::ffi::OsString) -> Vec<u8> {
    #[cfg(unix)]
    {
        use std::os::unix::ffi::OsStringExt as _;
        value.into_vec()
    }
    #[cfg(not(unix))]
    {
        value
            .into_string()
            .map(String::into_bytes)
            .unwrap_or_default()
    }
}

/// What the user is told when no passphrase can be had: stdin or stdout
/// is not a terminal, and neither other source is given.
pub fn no_source() -> String {
    format!(
        "the room is private and its passphrase cannot be typed here (not a terminal): \
         give it with --passphrase-file PATH or the {ENV_VAR} environment variable"
    )
}

/// Reads a passphrase from the regular file `path`: at most
/// [`MAX_PASSPHRASE`] bytes after one trailing `\n` or `\r\n` is removed.
/// A FIFO or device is refused before it is opened, so it can neither hang
/// the client nor fill its memory.
pub fn read_file(path: &Path) -> Result<Passphrase, String> {
    let shown = path.display();
    let cannot = |e: std::io::Error| format!("cannot read the passphrase file {shown}: {e}");
    // Opened first, then checked (fstat of the file opened): a path
    // swapped for a FIFO between a check and the open cannot hang the
    // client. O_NONBLOCK makes opening a FIFO return at once; on a regular
    // file it changes nothing.
    let mut options = std::fs::OpenOptions::new();
    options.read(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.custom_flags(rustix::fs::OFlags::NONBLOCK.bits() as i32);
    }
    let file = options.open(path).map_err(cannot)?;
    let meta = file.metadata().map_err(cannot)?;
    if !meta.is_file() {
        return Err(format!(
            "the passphrase file {shown} is not a regular file (a folder, a FIFO or a device?)"
        ));
    }
    // Room for every byte read, so the buffer never moves (and never leaves
    // a copy of the passphrase behind).
    let mut bytes = Zeroizing::new(Vec::with_capacity(MAX_FILE + 1));
    file.take(MAX_FILE as u64 + 1)
        .read_to_end(&mut bytes)
        .map_err(cannot)?;
    if bytes.len() > MAX_FILE {
        return Err(format!(
            "the passphrase file {shown} is too long: a passphrase has at most \
             {MAX_PASSPHRASE} bytes (plus one line ending)"
        ));
    }
    strip_line_ending(&mut bytes);
    Ok(bytes)
}

/// Removes one trailing `\n` or `\r\n`.
fn strip_line_ending(bytes: &mut Vec<u8>) {
    if bytes.last() == Some(&b'\n') {
        bytes.pop();
        if bytes.last() == Some(&b'\r') {
            bytes.pop();
        }
    }
}

/// Checks a passphrase against the limits: not empty, at most
/// [`MAX_PASSPHRASE`] bytes, and when `making` a room at least
/// [`MIN_PASSPHRASE`]. `from` says where it came from, for the message
/// ("typed", "in ROOMCAST_PASSPHRASE", ...).
pub fn check(passphrase: &[u8], making: bool, from: &str) -> Result<(), String> {
    if passphrase.is_empty() {
        return Err(format!("the passphrase {from} is empty"));
    }
    if passphrase.len() > MAX_PASSPHRASE {
        return Err(format!(
            "the passphrase {from} is too long: at most {MAX_PASSPHRASE} bytes"
        ));
    }
    if making && passphrase.len() < MIN_PASSPHRASE {
        return Err(format!(
            "the passphrase {from} is too short: a new private room needs at least \
             {MIN_PASSPHRASE} bytes (a few words are easier to remember and harder to guess)"
        ));
    }
    Ok(())
}

/// Reads a passphrase typed without echo, byte by byte from `next` (the
/// terminal set up by `platform::NoEcho`, in which keys arrive as bytes):
///
/// - Enter (CR or LF) ends it;
/// - Backspace (DEL or Ctrl-H) removes the last character, Ctrl-U all;
/// - Ctrl-C, Ctrl-D, Ctrl-] and the end of input cancel: `Ok(None)`;
/// - escape sequences (arrow keys) and other control bytes are ignored.
///
/// At most [`MAX_PASSPHRASE`] + 1 bytes are kept (one too many, so that
/// [`check`] refuses it as too long); the rest is read and dropped.
pub fn edit_typed(
    mut next: impl FnMut() -> std::io::Result<Option<u8>>,
) -> std::io::Result<Option<Passphrase>> {
    const CTRL_C: u8 = 0x03;
    const CTRL_D: u8 = 0x04;
    const CTRL_H: u8 = 0x08;
    const CTRL_U: u8 = 0x15;
    const ESC: u8 = 0x1b;
    const CTRL_BRACKET: u8 = 0x1d;
    const DEL: u8 = 0x7f;
    #[derive(PartialEq)]
    enum State {
        Text,
        /// After ESC.
        Escape,
        /// Inside `ESC [` or `ESC O`, up to its final byte.
        Sequence,
    }
    // Room for every byte kept, so the buffer never moves (and never
    // leaves a copy of the passphrase behind).
    let mut typed = Zeroizing::new(Vec::with_capacity(MAX_PASSPHRASE + 1));
    let mut state = State::Text;
    loop {
        let Some(byte) = next()? else {
            return Ok(None);
        };
        match state {
            State::Escape => {
                state = if byte == b'[' || byte == b'O' {
                    State::Sequence
                } else {
                    State::Text
                };
                continue;
            }
            State::Sequence => {
                if (0x40..=0x7e).contains(&byte) {
                    state = State::Text;
                }
                continue;
            }
            State::Text => {}
        }
        match byte {
            b'\r' | b'\n' => return Ok(Some(typed)),
            CTRL_C | CTRL_D | CTRL_BRACKET => return Ok(None),
            DEL | CTRL_H => {
                // The last character: its continuation bytes, then its lead.
                while typed.last().is_some_and(|b| b & 0xC0 == 0x80) {
                    typed.pop();
                }
                typed.pop();
            }
            CTRL_U => typed.clear(),
            ESC => state = State::Escape,
            // TAB is kept, as a file or the variable keeps it.
            b if b < 0x20 && b != b'\t' => {}
            b => {
                if typed.len() <= MAX_PASSPHRASE {
                    typed.push(b);
                }
            }
        }
    }
}

/// Argon2id (version 0x13) of `passphrase` with the room's `salt`, with
/// the parameters of [`roomcast_core::privacy`]: [`ARGON2_MEMORY_KIB`] KiB,
/// [`ARGON2_ITERATIONS`] passes, [`ARGON2_LANES`] lanes, [`SECRET_BYTES`]
/// out. Takes 0.1-1 s and 64 MiB: run it off the event loop.
pub fn derive(passphrase: &[u8], salt: &Salt) -> Result<RoomSecret, String> {
    let params = Params::new(
        ARGON2_MEMORY_KIB,
        ARGON2_ITERATIONS,
        ARGON2_LANES,
        Some(SECRET_BYTES),
    )
    .map_err(|e| format!("cannot derive the room key: {e}"))?;
    let argon2 = Argon2::new(Algorithm::Argon2id, Version::V0x13, params);
    let mut secret = RoomSecret([0; SECRET_BYTES]);
    argon2
        .hash_password_into(passphrase, &salt.0, &mut secret.0)
        .map_err(|e| format!("cannot derive the room key: {e}"))?;
    Ok(secret)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file_with(dir: &Path, bytes: &[u8]) -> std::path::PathBuf {
        let path = dir.join("pass");
        std::fs::write(&path, bytes).unwrap();
        path
    }

    #[test]
    fn one_trailing_line_ending_is_removed() {
        let dir = tempfile::tempdir().unwrap();
        for (content, want) in [
            (&b"correct horse\n"[..], &b"correct horse"[..]),
            (b"correct horse\r\n", b"correct horse"),
            (b"correct horse", b"correct horse"),
            (b"two endings\n\n", b"two endings\n"),
            (b" spaces kept \n", b" spaces kept "),
            (b"\n", b""),
        ] {
            let path = file_with(dir.path(), content);
            assert_eq!(&read_file(&path).unwrap()[..], want, "{content:?}");
        }
    }

    #[test]
    fn a_file_holds_at_most_the_longest_passphrase_and_a_line_ending() {
        let dir = tempfile::tempdir().unwrap();
        let mut longest = vec![b'a'; MAX_PASSPHRASE];
        longest.extend_from_slice(b"\r\n");
        let path = file_with(dir.path(), &longest);
        let read = read_file(&path).unwrap();
        assert_eq!(read.len(), MAX_PASSPHRASE);
        check(&read, true, "in the file").unwrap();

        let mut over = vec![b'a'; MAX_PASSPHRASE + 1];
        over.push(b'\n');
        let path = file_with(dir.path(), &over);
        let read = read_file(&path).unwrap();
        let err = check(&read, false, "in the file").unwrap_err();
        assert!(err.contains("too long"), "{err}");

        let path = file_with(dir.path(), &vec![b'a'; MAX_FILE + 1]);
        let err = read_file(&path).unwrap_err();
        assert!(err.contains("too long"), "{err}");
    }

    #[test]
    fn only_a_regular_file_is_read() {
        let dir = tempfile::tempdir().unwrap();
        let err = read_file(dir.path()).unwrap_err();
        assert!(err.contains("not a regular file"), "{err}");
        let err = read_file(&dir.path().join("missing")).unwrap_err();
        assert!(err.contains("cannot read the passphrase file"), "{err}");
        #[cfg(unix)]
        {
            let fifo = dir.path().join("fifo");
            let made = std::process::Command::new("mkfifo").arg(&fifo).status();
            assert!(made.is_ok_and(|s| s.success()), "mkfifo failed");
            let err = read_file(&fifo).unwrap_err();
            assert!(err.contains("not a regular file"), "{err}");
        }
    }

    #[test]
    fn limits_at_their_edges() {
        let short = vec![b'x'; MIN_PASSPHRASE - 1];
        let min = vec![b'x'; MIN_PASSPHRASE];
        let max = vec![b'x'; MAX_PASSPHRASE];
        let over = vec![b'x'; MAX_PASSPHRASE + 1];
        assert!(check(b"", false, "typed").unwrap_err().contains("empty"));
        assert!(check(b"", true, "typed").unwrap_err().contains("empty"));
        // Entering a room made elsewhere: any length the maker chose.
        check(&short, false, "typed").unwrap();
        let err = check(&short, true, "typed").unwrap_err();
        assert!(
            err.contains("too short") && err.contains("8 bytes"),
            "{err}"
        );
        check(&min, true, "typed").unwrap();
        check(&max, true, "typed").unwrap();
        let err = check(&over, false, "typed").unwrap_err();
        assert!(err.contains("too long") && err.contains("1024"), "{err}");
    }

    fn typed(keys: &[u8]) -> Option<Vec<u8>> {
        let mut keys = keys.iter().copied();
        edit_typed(|| Ok(keys.next())).unwrap().map(|p| p.to_vec())
    }

    #[test]
    fn typing_a_passphrase() {
        assert_eq!(typed(b"secret words\r").unwrap(), b"secret words");
        assert_eq!(typed(b"secret\n").unwrap(), b"secret");
        // Backspace removes a whole character, Ctrl-U everything.
        assert_eq!(typed(b"ab\x7fc\r").unwrap(), b"ac");
        assert_eq!(typed("caf\u{e9}\x7fe\r".as_bytes()).unwrap(), b"cafe");
        assert_eq!(typed(b"\x7f\x08x\r").unwrap(), b"x");
        assert_eq!(typed(b"wrong\x15right\r").unwrap(), b"right");
        // Arrow keys and other control bytes are not part of it.
        assert_eq!(typed(b"a\x1b[Db\x1bOCc\x01\r").unwrap(), b"abc");
        assert_eq!(typed(b"\r").unwrap(), b"");
        // TAB is kept, as a file or ROOMCAST_PASSPHRASE keeps it.
        assert_eq!(typed(b"a\tb\r").unwrap(), b"a\tb");
        // Ctrl-C, Ctrl-D, Ctrl-] and the end of input cancel.
        assert_eq!(typed(b"abc\x03def\r"), None);
        assert_eq!(typed(b"abc\x04"), None);
        assert_eq!(typed(b"abc\x1d"), None);
        assert_eq!(typed(b"abc"), None);
    }

    #[test]
    fn a_typed_passphrase_past_the_limit_is_kept_one_byte_too_long() {
        let mut keys = vec![b'k'; MAX_PASSPHRASE + 100];
        keys.push(b'\r');
        let got = typed(&keys).unwrap();
        assert_eq!(got.len(), MAX_PASSPHRASE + 1);
        assert!(check(&got, false, "typed").is_err());
        let mut keys = vec![b'k'; MAX_PASSPHRASE];
        keys.push(b'\r');
        check(&typed(&keys).unwrap(), true, "typed").unwrap();
    }

    /// A fixed vector, computed once with these parameters: a change of
    /// parameter, version or variant would make every room unreadable, and
    /// fails here first.
    #[test]
    fn argon2id_of_a_known_passphrase_and_salt() {
        let salt = Salt(core::array::from_fn(|i| i as u8));
        let secret = derive(b"correct horse battery staple", &salt).unwrap();
        assert_eq!(hex(&secret.0), FIXED_SECRET);
        // Another salt, another secret.
        let other = derive(b"correct horse battery staple", &Salt([7; 16])).unwrap();
        assert_ne!(other.0, secret.0);
    }

    const FIXED_SECRET: &str = "853b272a44db1421c02962669a55eb0994f3cab385ed1c4c79253eee19bab49e";

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }
}
