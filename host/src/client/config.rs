//! The client's config file: settings people repeat, in TOML.
//!
//! Looked for at `$XDG_CONFIG_HOME/roomcast/client.toml`, else
//! `~/.config/roomcast/client.toml` (or wherever `--config PATH` says).
//! Each setting is overridden by its command-line option. A missing file
//! at the usual place is no error; a missing `--config` file, a file that
//! is not TOML, or an unknown setting is, with the file and line named.
//!
//! ```toml
//! server = "chat.lan:5577"
//! name = "Ann"
//! iface = "192.168.1.20"
//! color = "auto"          # auto, always or never
//! time-format = "%H:%M"   # strftime-like; "" or "none" hides the time
//! log-dir = "~/roomcast-logs"
//! ```

use std::path::{Path, PathBuf};

use serde::Deserialize;

/// When colours are used.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum ColorChoice {
    /// In a terminal, unless NO_COLOR is set (to anything but "").
    Auto,
    /// Always, even when piped or with NO_COLOR.
    Always,
    /// Never.
    Never,
}

/// What a config file may hold.
#[derive(Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct FileConfig {
    pub server: Option<String>,
    pub name: Option<String>,
    pub iface: Option<super::net::Iface>,
    pub color: Option<ColorChoice>,
    pub time_format: Option<String>,
    pub log_dir: Option<PathBuf>,
    /// The file these came from, if any.
    #[serde(skip)]
    pub path: Option<PathBuf>,
}

impl FileConfig {
    /// Names a setting of this file, for an error about its value.
    pub fn describe(&self, key: &str, value: &str) -> String {
        let file = self
            .path
            .as_ref()
            .map_or_else(String::new, |p| format!(" {}", p.display()));
        format!("config file{file}: {key} = {value:?}")
    }
}

/// Where the config file is looked for when `--config` is not given.
pub fn default_path() -> Option<PathBuf> {
    let xdg = std::env::var_os("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .filter(|p| p.is_absolute());
    let base = xdg.or_else(|| {
        std::env::var_os("HOME")
            .map(PathBuf::from)
            .filter(|p| p.is_absolute())
            .map(|home| home.join(".config"))
    })?;
    Some(base.join("roomcast").join("client.toml"))
}

/// The `--help` text that says where the file is looked for.
pub fn help_text() -> String {
    let here = default_path().map_or_else(
        || "neither XDG_CONFIG_HOME nor HOME is set here".to_string(),
        |p| format!("here: {}", p.display()),
    );
    format!(
        "Config file: settings you repeat can live in $XDG_CONFIG_HOME/roomcast/client.toml, \
         else ~/.config/roomcast/client.toml ({here}), or the file --config names. It is TOML \
         with any of: server = \"HOST[:PORT]\", name = \"NAME\", iface = \"ADDR\", \
         color = \"auto|always|never\", time-format = \"%H:%M\", log-dir = \"DIR\". \
         A command-line option overrides its setting."
    )
}

/// The longest config file read: a few settings need far less.
pub const MAX_CONFIG_FILE: u64 = 64 * 1024;

/// Reads `path` if it is a regular file of at most [`MAX_CONFIG_FILE`]
/// bytes of UTF-8; a FIFO or device is refused before it is opened, so it
/// can neither hang the start nor fill memory.
fn read_bounded(path: &Path) -> std::io::Result<String> {
    use std::io::{Error, ErrorKind, Read};
    let meta = std::fs::metadata(path)?;
    if !meta.is_file() {
        return Err(Error::new(
            ErrorKind::InvalidInput,
            "it is not a regular file (a folder, a FIFO or a device?)",
        ));
    }
    let mut text = String::new();
    std::fs::File::open(path)?
        .take(MAX_CONFIG_FILE + 1)
        .read_to_string(&mut text)?;
    if text.len() as u64 > MAX_CONFIG_FILE {
        return Err(Error::new(
            ErrorKind::InvalidData,
            format!("it is longer than {MAX_CONFIG_FILE} bytes"),
        ));
    }
    Ok(text)
}

/// Reads the config file: `explicit` (from `--config`) must exist; the
/// default one may be missing.
pub fn load(explicit: Option<&Path>) -> Result<FileConfig, String> {
    let (path, must_exist) = match explicit {
        Some(path) => (path.to_path_buf(), true),
        None => match default_path() {
            Some(path) => (path, false),
            None => return Ok(FileConfig::default()),
        },
    };
    let text = match read_bounded(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !must_exist => {
            return Ok(FileConfig::default());
        }
        Err(e) => {
            return Err(format!(
                "cannot read the config file {}: {e}",
                path.display()
            ));
        }
    };
    let mut config = parse(&text).map_err(|e| format!("config file {}: {e}", path.display()))?;
    config.path = Some(path);
    Ok(config)
}

/// Parses a config file's text; the error names the line.
pub fn parse(text: &str) -> Result<FileConfig, String> {
    let mut config: FileConfig = toml::from_str(text).map_err(|e| {
        let line = e
            .span()
            .map(|span| text[..span.start.min(text.len())].matches('\n').count() + 1);
        let message = e.message().trim_end().to_string();
        match line {
            Some(line) => format!("line {line}: {message}"),
            None => message,
        }
    })?;
    if let Some(dir) = &config.log_dir {
        config.log_dir = Some(expand_home(dir));
    }
    Ok(config)
}

/// `~/x` as `$HOME/x`: a config file is not seen by a shell, and neither
/// is `--log-dir=~/x` (shells expand `~` only at the start of a word).
pub fn expand_home(path: &Path) -> PathBuf {
    match (path.strip_prefix("~"), std::env::var_os("HOME")) {
        (Ok(rest), Some(home)) => PathBuf::from(home).join(rest),
        _ => path.to_path_buf(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[cfg(unix)]
    fn only_a_regular_file_of_bounded_size_is_read() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo.toml");
        let made = std::process::Command::new("mkfifo").arg(&fifo).status();
        assert!(made.is_ok_and(|s| s.success()), "mkfifo");
        for path in [fifo.as_path(), Path::new("/dev/zero"), dir.path()] {
            let err = load(Some(path)).unwrap_err();
            assert!(err.contains("not a regular file"), "{err}");
        }
        let big = dir.path().join("big.toml");
        std::fs::write(&big, "# x\n".repeat(20_000)).unwrap();
        let err = load(Some(&big)).unwrap_err();
        assert!(err.contains("longer than 65536 bytes"), "{err}");
        let edge = dir.path().join("edge.toml");
        let line = "# padding to the edge\n";
        let mut text = line.repeat(MAX_CONFIG_FILE as usize / line.len());
        text.push_str(&"#".repeat(MAX_CONFIG_FILE as usize - text.len()));
        std::fs::write(&edge, &text).unwrap();
        assert!(
            load(Some(&edge)).is_ok(),
            "a file of exactly the bound is read"
        );
    }

    #[test]
    fn every_setting_is_read() {
        let config = parse(
            "server = \"chat.lan:6000\"\nname = \"Ann\"\niface = \"10.0.0.2\"\n\
             color = \"never\"\ntime-format = \"%H:%M:%S\"\nlog-dir = \"/tmp/logs\"\n",
        )
        .unwrap();
        assert_eq!(
            config,
            FileConfig {
                server: Some("chat.lan:6000".into()),
                name: Some("Ann".into()),
                iface: Some(super::super::net::Iface::Addr([10, 0, 0, 2].into())),
                color: Some(ColorChoice::Never),
                time_format: Some("%H:%M:%S".into()),
                log_dir: Some("/tmp/logs".into()),
                path: None,
            }
        );
        assert_eq!(parse("").unwrap(), FileConfig::default());
    }

    #[test]
    fn a_log_folder_may_start_at_home() {
        let config = parse("log-dir = \"~/chat-logs\"").unwrap();
        match std::env::var_os("HOME") {
            Some(home) => assert_eq!(config.log_dir, Some(PathBuf::from(home).join("chat-logs"))),
            None => assert_eq!(config.log_dir, Some(PathBuf::from("~/chat-logs"))),
        }
        let config = parse("log-dir = \"/var/~x\"").unwrap();
        assert_eq!(config.log_dir, Some(PathBuf::from("/var/~x")));
    }

    #[test]
    fn errors_name_the_line() {
        let e = parse("name = \"Ann\"\ncolour = \"never\"\n").unwrap_err();
        assert!(e.starts_with("line 2: unknown field `colour`"), "{e}");
        let e = parse("name = \"Ann\"\n\ncolor = \"sometimes\"\n").unwrap_err();
        assert!(e.starts_with("line 3: "), "{e}");
        assert!(e.contains("sometimes") || e.contains("variant"), "{e}");
        let e = parse("iface = \"eth\\u0001\"").unwrap_err();
        assert!(e.starts_with("line 1: "), "{e}");
        let e = parse("name = \"Ann\nserver = 1").unwrap_err();
        assert!(e.starts_with("line 1: "), "{e}");
    }

    #[test]
    fn a_missing_explicit_file_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope.toml");
        let e = load(Some(&missing)).unwrap_err();
        assert!(e.contains("nope.toml"), "{e}");
        std::fs::write(&missing, "ttl = 3\n").unwrap();
        let e = load(Some(&missing)).unwrap_err();
        assert!(e.contains("nope.toml: line 1: unknown field `ttl`"), "{e}");
    }
}
