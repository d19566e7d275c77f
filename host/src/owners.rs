//! The server's side of room ownership: its random seed and the operator's
//! admin token.

use std::io::Read as _;
use std::path::Path;

use roomcast_core::{TokenHash, is_valid_token, limits};

use crate::platform;

/// 32 bytes from the operating system's random source, to seed the core's
/// generator of owner tokens.
pub fn random_seed() -> Result<[u8; 32], String> {
    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed)
        .map_err(|e| format!("cannot read random bytes from the system for owner tokens: {e}"))?;
    Ok(seed)
}

/// The longest admin token file read: a token line and some slack.
const MAX_ADMIN_FILE: u64 = 4096;

/// Reads the operator's admin token from `path` (its first line, without
/// the line end) and returns its hash. Refused, with a message saying what
/// to do, when the file cannot be read, is open to others (any group or
/// other permission bit), or its first line is not a token.
pub fn read_admin_token(path: &Path) -> Result<TokenHash, String> {
    let shown = path.display();
    let file = std::fs::File::open(path)
        .map_err(|e| format!("cannot read the admin token file {shown}: {e}"))?;
    let meta = file
        .metadata()
        .map_err(|e| format!("cannot read the admin token file {shown}: {e}"))?;
    if !meta.is_file() {
        return Err(format!(
            "the admin token file {shown} is not a regular file"
        ));
    }
    if let Some(mode) = platform::secret_file_too_open(&meta) {
        return Err(format!(
            "the admin token file {shown} may be read by others (mode {mode:03o}); \
             make it private: chmod 600 {shown}"
        ));
    }
    let mut text = String::new();
    file.take(MAX_ADMIN_FILE)
        .read_to_string(&mut text)
        .map_err(|e| format!("cannot read the admin token file {shown}: {e}"))?;
    let line = text.lines().next().unwrap_or("").trim_end_matches('\r');
    if !is_valid_token(line) {
        return Err(format!(
            "the first line of the admin token file {shown} is not a token: use {}-{} \
             printable characters without spaces (for example the output of \
             'openssl rand -base64 32')",
            limits::MIN_TOKEN,
            limits::MAX_TOKEN
        ));
    }
    Ok(TokenHash::of(line))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, text: &str, mode: u32) -> std::path::PathBuf {
        let path = dir.join("admin");
        std::fs::write(&path, text).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        }
        #[cfg(not(unix))]
        let _ = mode;
        path
    }

    #[test]
    fn a_private_file_with_a_token_line_is_read() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(dir.path(), "operator-token-0123\r\nignored\n", 0o600);
        assert_eq!(
            read_admin_token(&path),
            Ok(TokenHash::of("operator-token-0123"))
        );
    }

    #[test]
    fn bad_files_are_refused_with_what_to_do() {
        let dir = tempfile::tempdir().unwrap();
        let short = write(dir.path(), "too-short\n", 0o600);
        let e = read_admin_token(&short).unwrap_err();
        assert!(e.contains("is not a token"), "{e}");
        let missing = read_admin_token(&dir.path().join("none")).unwrap_err();
        assert!(
            missing.contains("cannot read the admin token file"),
            "{missing}"
        );
        #[cfg(unix)]
        for mode in [0o640, 0o604, 0o620] {
            let open = write(dir.path(), "operator-token-0123\n", mode);
            let e = read_admin_token(&open).unwrap_err();
            assert!(e.contains("may be read by others"), "{mode:o}: {e}");
            assert!(e.contains("chmod 600"), "{e}");
        }
    }
}
