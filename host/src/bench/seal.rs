//! What a private room costs: `roomcast bench seal` and `roomcast bench
//! argon2`.
//!
//! `roomcast bench seal` measures, in one process and without sockets, the
//! time per message of the room protocol's real [`Session`] in an open room
//! and in a private one, side by side: a sender's `handle_send` and the
//! draining of `poll_transmit` (an open room: a DATA frame and its plain
//! `Name: text` copy; a private one: the frame sealed with
//! XChaCha20-Poly1305, and no plain copy), then a receiver's
//! `handle_datagram` of each datagram and the draining of `poll_event` (an
//! open room: the frame decoded, the plain copy recognised and dropped; a
//! private one: opened, checked for freshness and replay, decoded). Each
//! case runs several times, alternating open and private, and the median
//! and minimum are reported with the ratio of the medians. The AEAD alone
//! (`Sealing::seal` and `Sealing::open` of the same frames) is measured
//! beside it. The clock given to the sessions is virtual (10 µs per
//! message), so no timer fires and nothing but the messages is measured;
//! the sender's pace (`SEND_RATE`) is lifted with `Session::set_pace`, so
//! each message goes through the send queue and out at once.
//!
//! Wall-clock figures on a shared machine are noisy; instruction counts
//! are not: `--only open|private` runs one kind, and the work is in two
//! functions, `send_batch` and `receive_batch`, which valgrind's callgrind
//! can count alone (`--toggle-collect`; BENCHMARKS.md shows the command).
//!
//! `roomcast bench argon2` times the key derivation a client runs before
//! it enters a private room (`passphrase::derive`: Argon2id with the
//! shipped parameters, then the HKDF of the frame key and verifier) and
//! reads the process's peak resident memory (`VmHWM`) before and after.

use std::hint::black_box;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::time::{Duration, Instant as WallInstant};

use roomcast_core::Instant;
use roomcast_core::chat::{
    Event, MemberId, SEAL_OVERHEAD, Sealing, Session, Transmit,
    frame::{Data, encode_data},
};
use roomcast_core::privacy::{
    ARGON2_ITERATIONS, ARGON2_LANES, ARGON2_MEMORY_KIB, RoomKeys, RoomSecret, SECRET_BYTES, Salt,
};

use super::Json;
use crate::client::passphrase;

/// Messages between two readings of the clock: enough that reading it is
/// negligible, few enough that a batch of datagrams stays in the cache.
const BATCH: usize = 250;

/// The virtual time between two messages (100,000 messages per second, far
/// from any timer: heartbeats are due 250 ms after the last message).
const STEP_US: u64 = 10;

/// The sessions' pace of new messages (and burst): far above the virtual
/// rate, so that each message goes out as it is handed over (the
/// protocol's own pace, `SEND_RATE`, would hold them in the send queue).
const PACE: u32 = 1_000_000;

/// The wall clock both sessions start from (Unix ms): sealed-at times are
/// then equal to the receiver's clock, as on a LAN with synchronised
/// clocks.
const WALL_MS: u64 = 1_800_000_000_000;

/// The sender's address, for both of its ports (one socket, as the client).
const SENDER: SocketAddr = SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 40_000));

/// Which kind of room.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Kind {
    /// An open room: frames and plain copies.
    Open,
    /// A private room: sealed frames only.
    Private,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Open => "open",
            Kind::Private => "private",
        }
    }
}

/// Options of `roomcast bench seal`.
#[derive(Debug, clap::Args)]
pub struct SealArgs {
    /// Messages sent and received per run of each case.
    #[arg(long, default_value_t = 20_000, value_parser = clap::value_parser!(u32).range(1..=10_000_000))]
    messages: u32,

    /// Runs of each case (open and private alternate); the median and the
    /// minimum are reported.
    #[arg(long, default_value_t = 7, value_parser = clap::value_parser!(u32).range(1..=1000))]
    runs: u32,

    /// Message text sizes in bytes, comma-separated (1 to 1000, the
    /// protocol's longest message).
    #[arg(long, value_delimiter = ',', default_value = "60,1000")]
    sizes: Vec<usize>,

    /// The sender's name length in bytes (1 to 32).
    #[arg(long, default_value_t = 8)]
    name_len: usize,

    /// Only this kind of room (for counting instructions under callgrind).
    #[arg(long, value_enum)]
    only: Option<Kind>,

    /// Print one JSON object per message size instead of a table.
    #[arg(long)]
    json: bool,
}

/// Options of `roomcast bench argon2`.
#[derive(Debug, clap::Args)]
pub struct Argon2Args {
    /// Derivations to time.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..=100))]
    runs: u32,

    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
}

/// Nanoseconds per message of one run of one case.
#[derive(Clone, Copy, Debug, Default)]
struct Run {
    send_ns: f64,
    receive_ns: f64,
}

/// What one run of one kind sent, for the byte counts.
#[derive(Clone, Copy, Debug, Default)]
struct Wire {
    datagrams: u64,
    bytes: u64,
}

/// Runs `roomcast bench seal`.
pub fn run_seal(args: SealArgs) -> Result<(), String> {
    if !(1..=32).contains(&args.name_len) {
        return Err(format!("--name-len {}: give 1 to 32 bytes", args.name_len));
    }
    if let Some(bad) = args.sizes.iter().find(|&&s| !(1..=1000).contains(&s)) {
        return Err(format!("--sizes: {bad} is not 1 to 1000 bytes"));
    }
    let name: String = "abcdefghijklmnopqrstuvwxyzABCDEF"[..args.name_len].to_string();
    let kinds: Vec<Kind> = match args.only {
        Some(k) => vec![k],
        None => vec![Kind::Open, Kind::Private],
    };
    if !args.json {
        println!(
            "roomcast bench seal: {} messages per run, {} runs, name of {} bytes; ns per message, \
             median (min)",
            args.messages, args.runs, args.name_len
        );
    }
    for &size in &args.sizes {
        let text = text_of(size);
        let mut runs: Vec<Vec<Run>> = vec![Vec::new(); kinds.len()];
        let mut wire = vec![Wire::default(); kinds.len()];
        for _ in 0..args.runs {
            for (k, &kind) in kinds.iter().enumerate() {
                let (run, w) = one_run(kind, &name, &text, args.messages)?;
                runs[k].push(run);
                wire[k] = w;
            }
        }
        let (seal_ns, open_ns) = aead_alone(&name, &text, args.messages, args.runs)?;
        report(&args, size, &kinds, &runs, &wire, seal_ns, open_ns);
    }
    Ok(())
}

/// A text of `size` bytes, like typed chat.
fn text_of(size: usize) -> String {
    const WORDS: &str = "the quick brown fox jumps over the lazy dog and ";
    WORDS.chars().cycle().take(size).collect()
}

/// The frame key both ends use (the Argon2id output is not needed here).
fn frame_keys() -> RoomKeys {
    RoomKeys::derive(&RoomSecret([7; SECRET_BYTES]))
}

/// A session of `kind` at `now`.
fn session(kind: Kind, id: u64, name: &str, now: Instant) -> Result<Box<Session>, String> {
    let made = match kind {
        Kind::Open => Session::new(now, MemberId(id), name, id),
        Kind::Private => {
            let mut sealer = [0; 16];
            sealer[..8].copy_from_slice(&id.to_be_bytes());
            let sealing = Sealing::new(&frame_keys().frame, sealer, now, WALL_MS);
            Session::new_private(now, MemberId(id), name, id, sealing)
        }
    };
    let mut s = made
        .map(Box::new)
        .map_err(|e| format!("cannot make a session: {e:?}"))?;
    // Lift the sender's pace (SEND_RATE): every message goes out at once.
    s.set_pace(PACE, PACE);
    Ok(s)
}

/// One run: `messages` messages from a sender session to a receiver
/// session, timed per batch on each side.
fn one_run(kind: Kind, name: &str, text: &str, messages: u32) -> Result<(Run, Wire), String> {
    let start = Instant::from_micros(1_000_000);
    let mut sender = session(kind, 0x1111_2222_3333_4444, name, start)?;
    let mut receiver = session(kind, 0x5555_6666_7777_8888, "receiver", start)?;
    let mut out: Vec<Transmit> = Vec::with_capacity(2 * BATCH);
    let mut send = Duration::ZERO;
    let mut receive = Duration::ZERO;
    let mut delivered = 0u64;
    let mut wire = Wire::default();
    let mut now = start;
    let mut left = messages as usize;
    while left > 0 {
        let n = left.min(BATCH);
        left -= n;
        out.clear();
        let t0 = WallInstant::now();
        now = send_batch(&mut sender, now, text, n, &mut out)?;
        let t1 = WallInstant::now();
        delivered += receive_batch(&mut receiver, now, &out);
        let t2 = WallInstant::now();
        send += t1 - t0;
        receive += t2 - t1;
        wire.datagrams += out.len() as u64;
        wire.bytes += out.iter().map(|t| t.data.len() as u64).sum::<u64>();
    }
    if delivered != u64::from(messages) {
        return Err(format!(
            "{} room: {delivered} of {messages} messages delivered (stats {:?})",
            kind.name(),
            receiver.stats()
        ));
    }
    let per = |d: Duration| d.as_nanos() as f64 / f64::from(messages);
    Ok((
        Run {
            send_ns: per(send),
            receive_ns: per(receive),
        },
        wire,
    ))
}

/// Sends `n` messages, each at its own virtual time from `now` on, and
/// keeps every datagram in `out`. Returns the time after the last.
#[inline(never)]
fn send_batch(
    sender: &mut Session,
    mut now: Instant,
    text: &str,
    n: usize,
    out: &mut Vec<Transmit>,
) -> Result<Instant, String> {
    for _ in 0..n {
        now = Instant::from_micros(now.as_micros() + STEP_US);
        sender
            .handle_send(now, text)
            .map_err(|e| format!("handle_send: {e:?}"))?;
        while let Some(t) = sender.poll_transmit() {
            out.push(t);
        }
    }
    Ok(now)
}

/// Hands the datagrams in `out` to the receiver at `now` and drains its
/// events after each. Returns how many messages were delivered.
#[inline(never)]
fn receive_batch(receiver: &mut Session, now: Instant, out: &[Transmit]) -> u64 {
    let mut delivered = 0;
    for t in out {
        receiver.handle_datagram(now, SENDER, t.channel, &t.data);
        while let Some(e) = receiver.poll_event() {
            if matches!(
                e,
                Event::Message {
                    already_shown: false,
                    ..
                }
            ) {
                delivered += 1;
            }
            black_box(e);
        }
    }
    delivered
}

/// The AEAD alone: `Sealing::seal` and `Sealing::open` of the DATA frames
/// of `messages` messages, median ns per message over `runs` runs.
fn aead_alone(name: &str, text: &str, messages: u32, runs: u32) -> Result<(f64, f64), String> {
    let keys = frame_keys();
    let start = Instant::from_micros(1_000_000);
    let frame = encode_data(
        MemberId(1),
        &Data {
            flags: 0,
            origin: MemberId(1),
            seq: 1,
            age_ms: 0,
            name,
            text,
        },
    )
    .ok_or("cannot encode a DATA frame")?;
    let mut seal_runs = Vec::new();
    let mut open_runs = Vec::new();
    let mut sealed = Vec::with_capacity(BATCH);
    let mut buf = [0u8; roomcast_core::chat::MAX_SEALED];
    for _ in 0..runs {
        let mut sealing = Sealing::new(&keys.frame, [1; 16], start, WALL_MS);
        let mut opening = Sealing::new(&keys.frame, [2; 16], start, WALL_MS);
        let (mut seal_t, mut open_t) = (Duration::ZERO, Duration::ZERO);
        let mut left = messages as usize;
        while left > 0 {
            let n = left.min(BATCH);
            left -= n;
            sealed.clear();
            let t0 = WallInstant::now();
            for _ in 0..n {
                sealed.push(sealing.seal(start, &frame).ok_or("seal failed")?);
            }
            let t1 = WallInstant::now();
            for d in &sealed {
                let inner = opening
                    .open(start, d, &mut buf)
                    .map_err(|e| format!("open failed: {e:?}"))?;
                black_box(inner);
            }
            let t2 = WallInstant::now();
            seal_t += t1 - t0;
            open_t += t2 - t1;
        }
        seal_runs.push(seal_t.as_nanos() as f64 / f64::from(messages));
        open_runs.push(open_t.as_nanos() as f64 / f64::from(messages));
    }
    Ok((median(&mut seal_runs), median(&mut open_runs)))
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n == 0 {
        f64::NAN
    } else if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

fn min(v: &[f64]) -> f64 {
    v.iter().copied().fold(f64::INFINITY, f64::min)
}

/// Prints one message size's results.
fn report(
    args: &SealArgs,
    size: usize,
    kinds: &[Kind],
    runs: &[Vec<Run>],
    wire: &[Wire],
    seal_ns: f64,
    open_ns: f64,
) {
    struct Row {
        kind: Kind,
        send: (f64, f64),
        receive: (f64, f64),
        total: (f64, f64),
        datagrams: f64,
        bytes: f64,
    }
    let messages = f64::from(args.messages);
    let rows: Vec<Row> = kinds
        .iter()
        .zip(runs)
        .zip(wire)
        .map(|((&kind, r), w)| {
            let mut send: Vec<f64> = r.iter().map(|r| r.send_ns).collect();
            let mut receive: Vec<f64> = r.iter().map(|r| r.receive_ns).collect();
            let mut total: Vec<f64> = r.iter().map(|r| r.send_ns + r.receive_ns).collect();
            Row {
                kind,
                send: (median(&mut send), min(&send)),
                receive: (median(&mut receive), min(&receive)),
                total: (median(&mut total), min(&total)),
                datagrams: w.datagrams as f64 / messages,
                bytes: w.bytes as f64 / messages,
            }
        })
        .collect();
    let find = |k: Kind| rows.iter().find(|r| r.kind == k);
    let ratio = |f: fn(&Row) -> f64| match (find(Kind::Open), find(Kind::Private)) {
        (Some(o), Some(p)) => f(p) / f(o),
        _ => f64::NAN,
    };
    let send_ratio = ratio(|r| r.send.0);
    let receive_ratio = ratio(|r| r.receive.0);
    let total_ratio = ratio(|r| r.total.0);
    if args.json {
        let mut j = Json::default()
            .str("bench", "seal")
            .int("text_bytes", size as u64)
            .int("name_bytes", args.name_len as u64)
            .int("messages", u64::from(args.messages))
            .int("runs", u64::from(args.runs));
        for r in &rows {
            let k = r.kind.name();
            j = j
                .num(&format!("{k}_send_ns"), r.send.0)
                .num(&format!("{k}_send_min_ns"), r.send.1)
                .num(&format!("{k}_receive_ns"), r.receive.0)
                .num(&format!("{k}_receive_min_ns"), r.receive.1)
                .num(&format!("{k}_total_ns"), r.total.0)
                .num(&format!("{k}_datagrams"), r.datagrams)
                .num(&format!("{k}_bytes"), r.bytes);
        }
        let j = j
            .num("send_ratio", send_ratio)
            .num("receive_ratio", receive_ratio)
            .num("total_ratio", total_ratio)
            .num("seal_alone_ns", seal_ns)
            .num("open_alone_ns", open_ns)
            .int("seal_overhead_bytes", SEAL_OVERHEAD as u64);
        println!("{}", j.finish());
        return;
    }
    println!();
    println!("text of {size} bytes:");
    println!(
        "  {:<8} {:>18} {:>18} {:>18} {:>10} {:>13}",
        "room", "send", "receive", "send+receive", "datagrams", "bytes on wire"
    );
    for r in &rows {
        let cell = |(med, min): (f64, f64)| format!("{med:.0} ({min:.0})");
        println!(
            "  {:<8} {:>18} {:>18} {:>18} {:>10.0} {:>13.0}",
            r.kind.name(),
            cell(r.send),
            cell(r.receive),
            cell(r.total),
            r.datagrams,
            r.bytes
        );
    }
    if send_ratio.is_finite() {
        println!(
            "  private / open (medians): send ×{send_ratio:.2}, receive ×{receive_ratio:.2}, \
             send+receive ×{total_ratio:.2}"
        );
    }
    println!(
        "  the AEAD alone (median): seal {seal_ns:.0} ns, open {open_ns:.0} ns; sealing adds \
         {SEAL_OVERHEAD} bytes to a frame"
    );
}

/// Runs `roomcast bench argon2`.
pub fn run_argon2(args: Argon2Args) -> Result<(), String> {
    let hwm_before = peak_rss_kib();
    let passphrase = b"correct horse battery staple";
    let salt = Salt([0x5a; 16]);
    let mut times = Vec::new();
    let mut first = None;
    for _ in 0..args.runs {
        let t0 = WallInstant::now();
        let secret = passphrase::derive(passphrase, &salt)?;
        let keys = RoomKeys::derive(&secret);
        let took = t0.elapsed();
        // The same passphrase and salt give the same verifier every time.
        let verifier = keys.verifier.to_text();
        match &first {
            None => first = Some(verifier),
            Some(v) if *v != verifier => {
                return Err("two derivations of one passphrase differ".into());
            }
            Some(_) => {}
        }
        times.push(took.as_secs_f64() * 1e3);
    }
    let hwm_after = peak_rss_kib();
    let min_ms = min(&times);
    let max_ms = times.iter().copied().fold(0.0, f64::max);
    let median_ms = median(&mut times);
    if args.json {
        let j = Json::default()
            .str("bench", "argon2")
            .int("memory_kib", u64::from(ARGON2_MEMORY_KIB))
            .int("iterations", u64::from(ARGON2_ITERATIONS))
            .int("lanes", u64::from(ARGON2_LANES))
            .int("runs", u64::from(args.runs))
            .num("min_ms", min_ms)
            .num("median_ms", median_ms)
            .num("max_ms", max_ms)
            .opt("peak_rss_before_kib", hwm_before)
            .opt("peak_rss_after_kib", hwm_after);
        println!("{}", j.finish());
        return Ok(());
    }
    println!(
        "Argon2id, m = {ARGON2_MEMORY_KIB} KiB, t = {ARGON2_ITERATIONS}, p = {ARGON2_LANES}, then \
         HKDF (what a client runs before it enters a private room), {} runs:",
        args.runs
    );
    println!("  min {min_ms:.1} ms, median {median_ms:.1} ms, max {max_ms:.1} ms");
    if let (Some(b), Some(a)) = (hwm_before, hwm_after) {
        println!("  peak resident memory: {b} KiB before, {a} KiB after (VmHWM)");
    }
    Ok(())
}

/// This process's peak resident set size in KiB (`VmHWM`), where the
/// system tells it (Linux).
fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_kinds_deliver_every_message() {
        for kind in [Kind::Open, Kind::Private] {
            let (_, wire) = one_run(kind, "abcdefgh", &text_of(60), 600).unwrap();
            let per = wire.bytes as f64 / 600.0;
            match kind {
                // A DATA frame (31 + name + text) and a plain copy
                // (name + 2 + text).
                Kind::Open => {
                    assert_eq!(wire.datagrams, 1200);
                    assert_eq!(per, (31 + 8 + 60 + 8 + 2 + 60) as f64);
                }
                // The frame sealed, nothing else.
                Kind::Private => {
                    assert_eq!(wire.datagrams, 600);
                    assert_eq!(per, (31 + 8 + 60 + SEAL_OVERHEAD) as f64);
                }
            }
        }
    }

    #[test]
    fn texts_have_their_size() {
        assert_eq!(text_of(60).len(), 60);
        assert_eq!(text_of(1000).len(), 1000);
    }

    #[test]
    fn medians() {
        assert_eq!(median(&mut [3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&mut [4.0, 1.0, 2.0, 3.0]), 2.5);
        assert!(median(&mut []).is_nan());
    }
}
