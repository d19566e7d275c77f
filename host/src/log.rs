//! Log lines for people: a UTC time, a level, and a message, on stdout.
//!
//! Serving never waits for the log. A line is formatted where it happens and
//! handed to a thread of its own that writes stdout, through a queue of
//! [`LOG_QUEUE`] lines; the caller only tries to queue it. When stdout is not
//! being read (a full pipe, a terminal paused with Ctrl-S), the queue fills
//! and further lines are dropped and counted, and once the log catches up it
//! says so before the next line: `[N log lines dropped: output was not being
//! read]`. A write error (EPIPE from a closed pipe, say) loses that line and
//! nothing else: it is never a panic.

use std::fmt;
use std::io::{self, Write};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::thread;
use std::time::{Duration, Instant, SystemTime};

/// How many log lines wait for stdout at most. A line is at most a few
/// hundred bytes (names and words in it are bounded), so the queue holds
/// well under a megabyte; past it, lines are dropped and counted.
pub const LOG_QUEUE: usize = 1024;

/// How long the process waits at exit for the log to be written. A stdout
/// nobody reads must not keep a stopped server from exiting; what is still
/// queued then is lost.
pub const LOG_FLUSH_TIMEOUT: Duration = Duration::from_secs(1);

/// How often [`finish`] tries again to queue its request while the queue is
/// full.
const FLUSH_RETRY: Duration = Duration::from_millis(10);

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

/// Queues one log line if `level` is enabled. Use the [`log!`] macro.
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
    if let Some(logger) = stdout_logger() {
        logger.line(format!("{time} {tag} {args}\n"));
    }
}

/// Queues a line as it is, whatever the log level: no time, no level (the
/// server's `listening on port` and `stopped` lines, which people and
/// scripts wait for).
pub fn plain(args: fmt::Arguments<'_>) {
    if let Some(logger) = stdout_logger() {
        logger.line(format!("{args}\n"));
    }
}

/// Waits until what was logged so far is written, at most
/// [`LOG_FLUSH_TIMEOUT`]. Call it before the process exits.
pub fn finish() {
    if let Some(Some(logger)) = STDOUT.get() {
        logger.flush(LOG_FLUSH_TIMEOUT);
    }
}

/// `log!(Info, "client {peer} connected")`
macro_rules! log {
    ($level:ident, $($arg:tt)*) => {
        $crate::log::write($crate::log::Level::$level, format_args!($($arg)*))
    };
}
pub(crate) use log;

/// The logger of stdout, started at the first line; `None` if its thread
/// could not be started (then lines are lost, not written in the way).
static STDOUT: OnceLock<Option<Logger>> = OnceLock::new();

fn stdout_logger() -> Option<&'static Logger> {
    STDOUT
        .get_or_init(|| Logger::start(LOG_QUEUE, io::stdout).ok())
        .as_ref()
}

/// What the writing thread is handed.
enum Entry {
    /// A line (with its LF), after `dropped_before` lines that were dropped.
    Line { dropped_before: u64, text: String },
    /// Say on `done` once everything before is written (after saying how
    /// many lines were dropped just before).
    Flush {
        dropped_before: u64,
        done: SyncSender<()>,
    },
}

/// A bounded queue of lines and the thread that writes them.
struct Logger {
    queue: SyncSender<Entry>,
    /// Lines dropped since the last one queued.
    dropped: AtomicU64,
}

impl Logger {
    /// Starts the thread that writes to the output `open` gives (opened on
    /// that thread), behind a queue of `capacity` lines.
    fn start<W: Write>(
        capacity: usize,
        open: impl FnOnce() -> W + Send + 'static,
    ) -> io::Result<Logger> {
        let (queue, entries) = sync_channel(capacity);
        thread::Builder::new()
            .name("log".into())
            .spawn(move || write_entries(entries, open()))?;
        Ok(Logger {
            queue,
            dropped: AtomicU64::new(0),
        })
    }

    /// Queues `text` if there is room; otherwise counts it as dropped.
    /// Never waits.
    fn line(&self, text: String) {
        let dropped_before = self.dropped.swap(0, Ordering::Relaxed);
        let entry = Entry::Line {
            dropped_before,
            text,
        };
        if self.queue.try_send(entry).is_err() {
            self.dropped
                .fetch_add(dropped_before + 1, Ordering::Relaxed);
        }
    }

    /// Waits until everything queued so far is written, at most `timeout`;
    /// says whether it was.
    fn flush(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let (done, written) = sync_channel(1);
        let mut entry = Entry::Flush {
            dropped_before: self.dropped.swap(0, Ordering::Relaxed),
            done,
        };
        loop {
            match self.queue.try_send(entry) {
                Ok(()) => break,
                Err(TrySendError::Full(back)) if Instant::now() < deadline => {
                    entry = back;
                    thread::sleep(FLUSH_RETRY);
                }
                Err(_) => return false,
            }
        }
        let left = deadline.saturating_duration_since(Instant::now());
        written.recv_timeout(left).is_ok()
    }
}

/// The writing thread: writes each entry; errors lose the line only.
fn write_entries(entries: Receiver<Entry>, mut out: impl Write) {
    let dropped_notice = |out: &mut dyn Write, n: u64| {
        if n > 0 {
            let _ = writeln!(out, "[{n} log lines dropped: output was not being read]");
        }
    };
    for entry in entries {
        match entry {
            Entry::Line {
                dropped_before,
                text,
            } => {
                dropped_notice(&mut out, dropped_before);
                let _ = out.write_all(text.as_bytes());
                let _ = out.flush();
            }
            Entry::Flush {
                dropped_before,
                done,
            } => {
                dropped_notice(&mut out, dropped_before);
                let _ = out.flush();
                let _ = done.send(());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Condvar, Mutex};

    /// An output that takes nothing while it is closed, like a pipe nobody
    /// reads, and records what it was given.
    #[derive(Clone, Default)]
    struct Gate(Arc<(Mutex<GateState>, Condvar)>);

    #[derive(Default)]
    struct GateState {
        open: bool,
        /// A write is waiting for the gate.
        waiting: bool,
        written: Vec<u8>,
    }

    impl Write for Gate {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            let (state, changed) = &*self.0;
            let mut state = state.lock().unwrap();
            state.waiting = true;
            changed.notify_all();
            while !state.open {
                state = changed.wait(state).unwrap();
            }
            state.waiting = false;
            state.written.extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    impl Gate {
        fn wait_until_writing(&self) {
            let (state, changed) = &*self.0;
            let mut state = state.lock().unwrap();
            while !state.waiting {
                state = changed.wait(state).unwrap();
            }
        }
        fn open(&self) {
            let (state, changed) = &*self.0;
            state.lock().unwrap().open = true;
            changed.notify_all();
        }
        fn text(&self) -> String {
            String::from_utf8(self.0.0.lock().unwrap().written.clone()).unwrap()
        }
    }

    #[test]
    fn a_stuck_output_drops_and_counts_and_never_waits() {
        let gate = Gate::default();
        let out = gate.clone();
        let logger = Logger::start(4, move || out).unwrap();
        logger.line("0\n".into());
        // The writer holds line 0 and waits: 4 more fill the queue, and the
        // 3 after them are dropped (without waiting).
        gate.wait_until_writing();
        for i in 1..=7 {
            logger.line(format!("{i}\n"));
        }
        gate.open();
        // The log catches up (the flush waits for room in the queue), says
        // what it dropped, and goes on.
        assert!(logger.flush(Duration::from_secs(10)));
        logger.line("8\n".into());
        assert!(logger.flush(Duration::from_secs(10)));
        assert_eq!(
            gate.text(),
            "0\n1\n2\n3\n4\n[3 log lines dropped: output was not being read]\n8\n"
        );
    }

    #[test]
    fn drops_at_the_end_are_counted_at_the_flush() {
        let gate = Gate::default();
        let out = gate.clone();
        let logger = Logger::start(1, move || out).unwrap();
        logger.line("a\n".into());
        gate.wait_until_writing();
        for line in ["b\n", "c\n", "d\n"] {
            logger.line(line.into());
        }
        gate.open();
        assert!(logger.flush(Duration::from_secs(10)));
        assert_eq!(
            gate.text(),
            "a\nb\n[2 log lines dropped: output was not being read]\n"
        );
    }

    #[test]
    fn a_stuck_output_bounds_the_flush() {
        let gate = Gate::default();
        let out = gate.clone();
        let logger = Logger::start(1, move || out).unwrap();
        logger.line("a\n".into());
        gate.wait_until_writing();
        logger.line("b\n".into());
        // The queue stays full: the flush gives up at its timeout.
        assert!(!logger.flush(Duration::from_millis(50)));
    }

    /// An output that fails every write, like a pipe whose reader is gone.
    struct Broken;

    impl Write for Broken {
        fn write(&mut self, _: &[u8]) -> io::Result<usize> {
            Err(io::ErrorKind::BrokenPipe.into())
        }
        fn flush(&mut self) -> io::Result<()> {
            Err(io::ErrorKind::BrokenPipe.into())
        }
    }

    #[test]
    fn a_broken_output_loses_lines_and_nothing_else() {
        let logger = Logger::start(4, || Broken).unwrap();
        for i in 0..100 {
            logger.line(format!("{i}\n"));
        }
        assert!(logger.flush(Duration::from_secs(10)));
        logger.line("after\n".into());
        assert!(logger.flush(Duration::from_secs(10)));
    }
}
