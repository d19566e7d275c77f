//! `roomcast bench`: load generators that measure roomcast (and, with the
//! same code, redis-server) on this machine.
//!
//! - `roomcast bench [OPTIONS]`: many TCP connections drive a directory
//!   server with `ping`, `getdir` or `makeroom`/`deleteroom` (or a redis
//!   server with inline `PING`) from a nonblocking `polling` event loop, and
//!   report requests per second and latency percentiles; `--idle` holds
//!   connections open instead and reports the server's memory per connection.
//! - `roomcast bench chat`: one sender and receivers of roomcast chat
//!   datagrams over multicast on loopback, at paced rates, ramped up until
//!   loss begins.
//! - `roomcast bench raw`: the same with bare datagrams and minimal sockets,
//!   which gives the machine's own limit.
//! - `roomcast bench reliable`: the room protocol's sessions on real sockets
//!   (one sender, receiving members), with a share of datagrams dropped at
//!   each receiver if asked: delivery rate, loss, repair delay, and the
//!   bytes of a quiet member (`--quiet`).
//! - `roomcast bench seal`: what sealing costs per message, through the room
//!   protocol's session, in a private room beside an open one (no sockets).
//! - `roomcast bench argon2`: the key derivation a client runs before it
//!   enters a private room (Argon2id), its time and peak memory.
//!
//! Every target must be on this machine (a loopback address) unless
//! `--allow-remote` says otherwise, and the multicast modes refuse to run
//! where any network interface but loopback exists: run them inside
//! `tools/sandbox`. Each run is bounded in time and stops by itself.

mod chat;
mod hist;
mod load;
mod reliable;
mod seal;

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::time::Duration;

/// Options of `roomcast bench`.
#[derive(Debug, clap::Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct BenchArgs {
    #[command(subcommand)]
    mode: Option<Mode>,

    #[command(flatten)]
    load: load::LoadArgs,
}

#[derive(Debug, clap::Subcommand)]
enum Mode {
    /// Chat over multicast on loopback: one sender of roomcast chat
    /// datagrams, receivers with the client's socket setup; finds the
    /// highest rate received without loss. Run inside tools/sandbox.
    Chat(chat::ChatArgs),
    /// The machine's limit: the same ramp with bare datagrams and minimal
    /// sockets (no roomcast framing). Run inside tools/sandbox.
    Raw(chat::ChatArgs),
    /// Reliable chat on real sockets: members running the room protocol
    /// on loopback, one sending; delivery, loss notices, repair delay.
    /// Run inside tools/sandbox.
    Reliable(reliable::ReliableArgs),
    /// What a private room costs per message: the room protocol's session
    /// sending and receiving, sealed beside open, in one process (no
    /// sockets).
    Seal(seal::SealArgs),
    /// What entering a private room costs: the Argon2id key derivation
    /// with the shipped parameters, its time and peak memory.
    Argon2(seal::Argon2Args),
}

/// Runs the benchmark the arguments ask for.
pub fn run(args: BenchArgs) -> Result<(), String> {
    match args.mode {
        None => load::run(args.load),
        Some(Mode::Chat(chat)) => chat::run(chat, chat::Flavor::Roomcast),
        Some(Mode::Raw(chat)) => chat::run(chat, chat::Flavor::Raw),
        Some(Mode::Reliable(args)) => reliable::run(args),
        Some(Mode::Seal(seal)) => seal::run_seal(seal),
        Some(Mode::Argon2(argon2)) => seal::run_argon2(argon2),
    }
}

/// Parses a number of seconds (`1`, `0.5`) into a duration.
fn parse_seconds(text: &str) -> Result<Duration, String> {
    let secs: f64 = text
        .parse()
        .map_err(|_| format!("{text:?} is not a number of seconds"))?;
    if !secs.is_finite() || !(0.0..=86_400.0).contains(&secs) {
        return Err(format!("{text:?}: give 0 to 86400 seconds"));
    }
    Ok(Duration::from_secs_f64(secs))
}

/// Refuses a target that is not on this machine unless allowed.
fn check_target(addr: SocketAddr, allow_remote: bool) -> Result<(), String> {
    if addr.ip().is_loopback() || allow_remote {
        Ok(())
    } else {
        Err(format!(
            "{addr} is not a loopback address; a load test sends a flood of traffic, so \
             it targets this machine only unless you add --allow-remote"
        ))
    }
}

/// Raises the soft open-file limit so `wanted` descriptors fit.
fn raise_fd_limit(wanted: u64) -> Result<(), String> {
    let got = rlimit::increase_nofile_limit(wanted)
        .map_err(|e| format!("cannot raise the open-file limit: {e}"))?;
    if got < wanted {
        return Err(format!(
            "the open-file limit is {got}, below the {wanted} this run needs; raise the hard \
             limit (ulimit -Hn, as root) or ask for fewer connections"
        ));
    }
    Ok(())
}

/// The resident set size of process `pid`, in KiB (VmRSS in
/// /proc/PID/status).
fn rss_kib(pid: u32) -> Result<u64, String> {
    let path = format!("/proc/{pid}/status");
    let status = std::fs::read_to_string(&path).map_err(|e| format!("cannot read {path}: {e}"))?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .ok_or_else(|| format!("no VmRSS line in {path}"))
}

/// Nanoseconds as a short human reading: `850 ns`, `12.3 µs`, `4.56 ms`.
fn human_ns(ns: u64) -> String {
    let ns = ns as f64;
    if ns < 1e3 {
        format!("{ns:.0} ns")
    } else if ns < 1e6 {
        format!("{:.1} µs", ns / 1e3)
    } else if ns < 1e9 {
        format!("{:.2} ms", ns / 1e6)
    } else {
        format!("{:.2} s", ns / 1e9)
    }
}

/// A flat JSON object, written by hand (the reports hold only numbers,
/// short strings and nulls).
#[derive(Default)]
struct Json(String);

impl Json {
    fn sep(&mut self) {
        self.0.push(if self.0.is_empty() { '{' } else { ',' });
    }

    fn str(mut self, key: &str, value: &str) -> Self {
        self.sep();
        let _ = write!(self.0, "\"{key}\":\"");
        for c in value.chars() {
            match c {
                '"' => self.0.push_str("\\\""),
                '\\' => self.0.push_str("\\\\"),
                c if (c as u32) < 0x20 => {
                    let _ = write!(self.0, "\\u{:04x}", c as u32);
                }
                c => self.0.push(c),
            }
        }
        self.0.push('"');
        self
    }

    fn num(mut self, key: &str, value: impl Into<f64>) -> Self {
        self.sep();
        let value = value.into();
        if value.is_finite() {
            if value.fract() == 0.0 && value.abs() < 1e15 {
                let _ = write!(self.0, "\"{key}\":{value:.0}");
            } else {
                let _ = write!(self.0, "\"{key}\":{value:.3}");
            }
        } else {
            let _ = write!(self.0, "\"{key}\":null");
        }
        self
    }

    fn int(mut self, key: &str, value: u64) -> Self {
        self.sep();
        let _ = write!(self.0, "\"{key}\":{value}");
        self
    }

    fn opt(self, key: &str, value: Option<u64>) -> Self {
        match value {
            Some(v) => self.int(key, v),
            None => self.null(key),
        }
    }

    fn null(mut self, key: &str) -> Self {
        self.sep();
        let _ = write!(self.0, "\"{key}\":null");
        self
    }

    fn finish(mut self) -> String {
        if self.0.is_empty() {
            self.0.push('{');
        }
        self.0.push('}');
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_is_flat_and_escaped() {
        let j = Json::default()
            .str("a", "x\"y\n")
            .int("b", 3)
            .num("c", 1.5)
            .num("d", 2.0)
            .opt("e", None)
            .finish();
        assert_eq!(j, r#"{"a":"x\"y\u000a","b":3,"c":1.500,"d":2,"e":null}"#);
        assert_eq!(Json::default().finish(), "{}");
    }

    #[test]
    fn seconds_parse() {
        assert_eq!(parse_seconds("0.5"), Ok(Duration::from_millis(500)));
        assert!(parse_seconds("-1").is_err());
        assert!(parse_seconds("x").is_err());
    }

    #[test]
    fn remote_targets_need_consent() {
        assert!(check_target("127.0.0.1:1".parse().unwrap(), false).is_ok());
        assert!(check_target("[::1]:1".parse().unwrap(), false).is_ok());
        assert!(check_target("10.0.0.1:1".parse().unwrap(), false).is_err());
        assert!(check_target("10.0.0.1:1".parse().unwrap(), true).is_ok());
    }
}
