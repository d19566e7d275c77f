//! Log lines for people: a UTC time, a level, and a message, on stdout.

use std::fmt;
use std::io::Write as _;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::SystemTime;

/// How much to log; each level includes the ones above it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, clap::ValueEnum)]
pub enum Level {
    /// Only failures.
    Error,
    /// Failures and warnings (a peer timed out, descriptors ran out).
    Warn,
    /// Also start and stop, each connection, and each command (the default).
    Info,
}

static MAX_LEVEL: AtomicU8 = AtomicU8::new(Level::Info as u8);

/// Logs only lines at `level` or above from now on.
pub fn set_level(level: Level) {
    MAX_LEVEL.store(level as u8, Ordering::Relaxed);
}

/// Whether a line at `level` would be printed.
pub fn enabled(level: Level) -> bool {
    level as u8 <= MAX_LEVEL.load(Ordering::Relaxed)
}

/// Prints one log line if `level` is enabled. Use the [`log!`] macro.
pub fn write(level: Level, args: fmt::Arguments<'_>) {
    if !enabled(level) {
        return;
    }
    let tag = match level {
        Level::Error => "error",
        Level::Warn => "warn ",
        Level::Info => "info ",
    };
    let time = humantime::format_rfc3339_seconds(SystemTime::now());
    // A closed stdout must not take the server down: the line is dropped.
    let _ = writeln!(std::io::stdout().lock(), "{time} {tag} {args}");
}

/// `log!(Info, "client {peer} connected")`
macro_rules! log {
    ($level:ident, $($arg:tt)*) => {
        $crate::log::write($crate::log::Level::$level, format_args!($($arg)*))
    };
}
pub(crate) use log;
