//! The chat benchmark: one sender and a few receivers of multicast
//! datagrams on loopback, in one process, at paced rates.
//!
//! `roomcast bench chat` sends roomcast chat datagrams (`Name: text`, the
//! client's format) from a socket set up as the client sets up its sending
//! socket, to receivers set up as the client sets up its receiving socket
//! (bound to the group with SO_REUSEADDR and SO_REUSEPORT, `multicast_all`
//! off, nonblocking, driven by a level-triggered `polling` loop that takes
//! at most 32 datagrams per turn, as the client's loop does). What it does
//! not include is the client's terminal: showing 10,000 lines a second is
//! the terminal's business, not the network's. `roomcast bench raw` is the
//! same ramp with bare 24-byte headers, minimal sockets and blocking
//! receives: the machine's own limit.
//!
//! Each step sends at one rate for a while; a step is loss-free when every
//! receiver got every datagram. The ramp doubles the rate until loss
//! begins, then bisects. Latency runs from the send timestamp in the
//! payload to the receive, on one clock (the threads share an `Instant`).
//!
//! Multicast must never leave the machine: this refuses to run where any
//! network interface other than loopback exists (run it inside
//! `tools/sandbox`), sends with TTL 1 on the loopback interface only,
//! and uses only groups in 239.0.0.0/8 (administratively scoped).

use std::io::{self, ErrorKind};
use std::net::{Ipv4Addr, SocketAddrV4, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

use polling::{Event as Interest, Events, PollMode, Poller};
use socket2::{Domain, Protocol, Socket, Type};

use super::hist::Histogram;
use super::{Json, human_ns, parse_seconds};
use crate::platform;

/// The multicast TTL: datagrams never pass a router.
const TTL: u32 = 1;

/// How long receivers keep listening after the last send.
const GRACE: Duration = Duration::from_millis(200);

/// The sender sleeps this long when it is ahead of its schedule; what falls
/// due meanwhile goes out together.
const PACE_SLEEP: Duration = Duration::from_micros(100);

/// The most datagrams a receiver takes per turn of its event loop: the
/// client's own `DATAGRAMS_PER_TURN` (host/src/client.rs).
const DATAGRAMS_PER_TURN: usize = 32;

/// Which datagrams and sockets to use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flavor {
    /// roomcast chat datagrams and the client's socket setup.
    Roomcast,
    /// Bare datagrams and minimal sockets: the machine's limit.
    Raw,
}

impl Flavor {
    fn name(self) -> &'static str {
        match self {
            Flavor::Roomcast => "chat",
            Flavor::Raw => "raw",
        }
    }
}

/// Options of `roomcast bench chat` and `roomcast bench raw`.
#[derive(Debug, clap::Args)]
pub struct ChatArgs {
    /// The multicast group (in 239.0.0.0/8).
    #[arg(long, default_value = "239.255.77.1")]
    group: Ipv4Addr,

    /// The first UDP port; each step uses the next one, so no datagram of
    /// one step reaches another.
    #[arg(long, default_value_t = 47000)]
    port: u16,

    /// The multicast interface's address; a loopback address.
    #[arg(long, default_value = "127.0.0.1")]
    iface: Ipv4Addr,

    /// How many receivers (default: 2 for chat, 1 for raw: a pair).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=16))]
    receivers: Option<u32>,

    /// Bytes per datagram (the chat format pads its text to this).
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u16).range(32..=1200))]
    size: u16,

    /// The fixed rate, in messages per second, checked for loss first.
    #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(u32).range(1..))]
    rate: u32,

    /// Seconds the fixed rate runs.
    #[arg(long, default_value = "3", value_parser = parse_seconds)]
    duration: Duration,

    /// Skip the ramp: run the fixed rate only.
    #[arg(long)]
    no_ramp: bool,

    /// The ramp's first rate, doubled each step until loss begins.
    #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(u32).range(1..))]
    start_rate: u32,

    /// The ramp stops here even without loss.
    #[arg(long, default_value_t = 4_000_000, value_parser = clap::value_parser!(u32).range(1..))]
    max_rate: u32,

    /// Seconds each ramp step runs.
    #[arg(long, default_value = "1", value_parser = parse_seconds)]
    step: Duration,

    /// Bisection steps between the last loss-free and the first lossy rate.
    #[arg(long, default_value_t = 4)]
    bisect: u32,

    /// Set SO_RCVBUF on the receivers to this many bytes (the kernel
    /// doubles it, capped by net.core.rmem_max). Default: leave it as the
    /// client does (net.core.rmem_default).
    #[arg(long)]
    rcvbuf: Option<usize>,

    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
}

/// What one step measured.
struct Step {
    target: u32,
    sent: u64,
    /// The rate the sender achieved, messages per second.
    achieved: f64,
    send_errors: u64,
    /// Per receiver: unique datagrams of this step received.
    received: Vec<u64>,
    duplicates: u64,
    /// Datagrams the kernel dropped because a receive buffer was full
    /// (UDP RcvbufErrors in /proc/net/snmp, this network namespace), if
    /// readable.
    rcvbuf_drops: Option<u64>,
    hist: Histogram,
}

impl Step {
    fn lost(&self) -> u64 {
        self.received
            .iter()
            .map(|&r| self.sent.saturating_sub(r))
            .sum()
    }

    fn loss_free(&self) -> bool {
        self.sent > 0 && self.send_errors == 0 && self.lost() == 0
    }

    /// The sender kept up with the schedule (within 5 %).
    fn kept_pace(&self) -> bool {
        self.achieved >= 0.95 * f64::from(self.target)
    }
}

/// Runs the fixed-rate check and the ramp.
pub fn run(args: ChatArgs, flavor: Flavor) -> Result<(), String> {
    only_loopback()?;
    if !args.iface.is_loopback() {
        return Err(format!(
            "--iface {} is not a loopback address: benchmark multicast stays on this machine",
            args.iface
        ));
    }
    if args.group.octets()[0] != 239 {
        return Err(format!(
            "--group {} is not in 239.0.0.0/8 (administratively scoped)",
            args.group
        ));
    }
    let receivers = args.receivers.unwrap_or(match flavor {
        Flavor::Roomcast => 2,
        Flavor::Raw => 1,
    }) as usize;
    let base = Instant::now();
    let mut port = args.port;
    let mut next_port = || {
        let p = port;
        port = port.wrapping_add(1).max(1024);
        p
    };
    let setup = Setup {
        flavor,
        group: args.group,
        iface: args.iface,
        receivers,
        size: args.size as usize,
        rcvbuf: args.rcvbuf,
        base,
    };

    let fixed = setup.step(next_port(), args.rate, args.duration)?;
    if !args.json {
        print_header(&args, flavor, receivers);
        print_step("fixed", &fixed);
    }

    let mut steps = Vec::new();
    let mut best: Option<Step> = None;
    let mut sender_bound = false;
    if !args.no_ramp {
        let mut rate = args.start_rate;
        let mut bad: Option<u32> = None;
        loop {
            let step = setup.step_with_retry(&mut next_port, rate, args.step)?;
            let clean = step.loss_free();
            let paced = step.kept_pace();
            if !args.json {
                print_step("ramp", &step);
            }
            steps.push(summary(&step));
            if clean {
                if best.as_ref().is_none_or(|b| step.achieved > b.achieved) {
                    best = Some(step);
                }
                if !paced {
                    // The sender cannot go faster: that is the limit.
                    sender_bound = true;
                    break;
                }
            } else {
                bad = Some(rate);
                break;
            }
            if rate >= args.max_rate {
                break;
            }
            rate = rate.saturating_mul(2).min(args.max_rate);
        }
        if let Some(mut hi) = bad {
            let mut lo = best.as_ref().map_or(0, |b| b.target);
            for _ in 0..args.bisect {
                let mid = lo + (hi - lo) / 2;
                if mid <= lo || hi - lo < hi / 50 {
                    break;
                }
                let step = setup.step_with_retry(&mut next_port, mid, args.step)?;
                if !args.json {
                    print_step("bisect", &step);
                }
                steps.push(summary(&step));
                if step.loss_free() {
                    lo = mid;
                    if best.as_ref().is_none_or(|b| step.achieved > b.achieved) {
                        best = Some(step);
                    }
                } else {
                    hi = mid;
                }
            }
        }
    }

    if args.json {
        let mut j = Json::default()
            .str("mode", flavor.name())
            .int("receivers", receivers as u64)
            .int("size", args.size.into())
            .opt("rcvbuf", args.rcvbuf.map(|b| b as u64))
            .int("fixed_rate", args.rate.into())
            .int("fixed_sent", fixed.sent)
            .num("fixed_achieved", fixed.achieved.round())
            .int("fixed_lost", fixed.lost())
            .opt("fixed_rcvbuf_drops", fixed.rcvbuf_drops)
            .int("fixed_send_errors", fixed.send_errors)
            .num("fixed_p50_us", fixed.hist.quantile(0.5) as f64 / 1e3)
            .num("fixed_p99_us", fixed.hist.quantile(0.99) as f64 / 1e3);
        match &best {
            Some(b) => {
                j = j
                    .num("max_lossless_rate", b.achieved.round())
                    .num("max_p50_us", b.hist.quantile(0.5) as f64 / 1e3)
                    .num("max_p99_us", b.hist.quantile(0.99) as f64 / 1e3);
            }
            None => {
                j = j
                    .null("max_lossless_rate")
                    .null("max_p50_us")
                    .null("max_p99_us");
            }
        }
        j = j
            .int("sender_bound", u64::from(sender_bound))
            .str("steps", &steps.join(" "));
        println!("{}", j.finish());
    } else if !args.no_ramp {
        match &best {
            Some(b) => println!(
                "highest loss-free rate: {:.0} messages/s{} (p50 {}, p99 {})",
                b.achieved,
                if sender_bound {
                    " (the sender's own limit: no loss yet)"
                } else {
                    ""
                },
                human_ns(b.hist.quantile(0.5)),
                human_ns(b.hist.quantile(0.99))
            ),
            None => println!("highest loss-free rate: none (loss at the first step)"),
        }
    }
    Ok(())
}

fn print_header(args: &ChatArgs, flavor: Flavor, receivers: usize) {
    println!(
        "roomcast bench {}: group {} via {}, TTL {TTL}, 1 sender, {receivers} receiver(s), \
         {}-byte datagrams",
        flavor.name(),
        args.group,
        args.iface,
        args.size
    );
}

fn print_step(what: &str, s: &Step) {
    println!(
        "  {what:<6} target {:>8}/s sent {:>8} at {:>9.0}/s  lost {:>7} (buffer full: {})  \
         dup {}  send errors {}  p50 {}  p99 {}",
        s.target,
        s.sent,
        s.achieved,
        s.lost(),
        s.rcvbuf_drops.map_or("?".to_string(), |d| d.to_string()),
        s.duplicates,
        s.send_errors,
        human_ns(s.hist.quantile(0.5)),
        human_ns(s.hist.quantile(0.99))
    );
}

fn summary(s: &Step) -> String {
    format!(
        "{}:{:.0}:{}",
        s.target,
        s.achieved,
        if s.loss_free() {
            "ok".to_string()
        } else {
            format!("lost{}", s.lost())
        }
    )
}

/// Refuses to run unless loopback is the only network interface (as in
/// `tools/sandbox`).
pub(super) fn only_loopback() -> Result<(), String> {
    let dev = std::fs::read_to_string("/proc/net/dev")
        .map_err(|e| format!("cannot read /proc/net/dev to check the network: {e}"))?;
    let others: Vec<&str> = dev
        .lines()
        .skip(2)
        .filter_map(|l| l.split(':').next())
        .map(str::trim)
        .filter(|name| *name != "lo")
        .collect();
    if others.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "this network has interfaces besides loopback ({}); multicast benchmarks run only \
             inside a private network namespace: tools/sandbox roomcast bench ...",
            others.join(", ")
        ))
    }
}

/// The UDP `RcvbufErrors` counter of /proc/net/snmp: datagrams dropped
/// because a socket's receive buffer was full.
fn udp_rcvbuf_errors() -> Option<u64> {
    let snmp = std::fs::read_to_string("/proc/net/snmp").ok()?;
    let mut udp = snmp.lines().filter(|l| l.starts_with("Udp:"));
    let names = udp.next()?;
    let values = udp.next()?;
    let at = names.split_whitespace().position(|n| n == "RcvbufErrors")?;
    values.split_whitespace().nth(at)?.parse().ok()
}

/// What every step shares.
struct Setup {
    flavor: Flavor,
    group: Ipv4Addr,
    iface: Ipv4Addr,
    receivers: usize,
    size: usize,
    rcvbuf: Option<usize>,
    base: Instant,
}

impl Setup {
    /// Runs a step; if it lost datagrams, runs it once more (on a fresh
    /// port) and keeps the better of the two, so one scheduling hiccup on a
    /// busy machine does not end the ramp.
    fn step_with_retry(
        &self,
        next_port: &mut impl FnMut() -> u16,
        rate: u32,
        duration: Duration,
    ) -> Result<Step, String> {
        let first = self.step(next_port(), rate, duration)?;
        if first.loss_free() {
            return Ok(first);
        }
        let second = self.step(next_port(), rate, duration)?;
        Ok(if second.loss_free() { second } else { first })
    }

    /// Sends at `rate` for `duration` to receivers on `port`.
    fn step(&self, port: u16, rate: u32, duration: Duration) -> Result<Step, String> {
        let total = (f64::from(rate) * duration.as_secs_f64()).round().max(1.0) as u64;
        let stop = Arc::new(AtomicBool::new(false));
        let ready = Arc::new(Barrier::new(self.receivers + 1));
        let mut handles = Vec::new();
        for r in 0..self.receivers {
            let socket = match self.flavor {
                Flavor::Roomcast => client_recv_socket(self.group, port, self.iface),
                Flavor::Raw => raw_recv_socket(self.group, port, self.iface),
            }
            .and_then(|socket| {
                if let Some(bytes) = self.rcvbuf {
                    socket2::SockRef::from(&socket).set_recv_buffer_size(bytes)?;
                }
                Ok(socket)
            })
            .map_err(|e| format!("receiver {r}: cannot join {}:{port}: {e}", self.group))?;
            let stop = Arc::clone(&stop);
            let ready = Arc::clone(&ready);
            let flavor = self.flavor;
            let base = self.base;
            handles.push(
                thread::Builder::new()
                    .name(format!("recv-{r}"))
                    .spawn(move || {
                        let mut rx = Receiver::new(total, base, port);
                        ready.wait();
                        match flavor {
                            Flavor::Roomcast => rx.run_polling(socket, &stop),
                            Flavor::Raw => rx.run_blocking(socket, &stop),
                        }
                        .map(|()| rx)
                    })
                    .map_err(|e| format!("cannot start a receiver thread: {e}"))?,
            );
        }
        let sender = match self.flavor {
            Flavor::Roomcast => client_send_socket(self.iface),
            Flavor::Raw => raw_send_socket(self.iface),
        }
        .map_err(|e| format!("cannot set up the sending socket: {e}"));
        ready.wait();
        let drops_before = udp_rcvbuf_errors();
        let outcome = sender.and_then(|sender| {
            self.send_paced(
                &sender,
                SocketAddrV4::new(self.group, port),
                port,
                rate,
                total,
            )
        });
        thread::sleep(GRACE);
        stop.store(true, Ordering::SeqCst);
        let mut received = Vec::new();
        let mut duplicates = 0;
        let mut hist = Histogram::new();
        for handle in handles {
            let rx = handle
                .join()
                .map_err(|_| "a receiver thread panicked".to_string())?
                .map_err(|e| format!("a receiver failed: {e}"))?;
            received.push(rx.unique);
            duplicates += rx.duplicates;
            hist.merge(&rx.hist);
        }
        let rcvbuf_drops = match (drops_before, udp_rcvbuf_errors()) {
            (Some(a), Some(b)) => Some(b.saturating_sub(a)),
            _ => None,
        };
        let (sent, elapsed, send_errors) = outcome?;
        Ok(Step {
            target: rate,
            sent,
            achieved: sent as f64 / elapsed.as_secs_f64().max(1e-9),
            send_errors,
            received,
            duplicates,
            rcvbuf_drops,
            hist,
        })
    }

    /// Sends `total` datagrams at `rate` per second; returns how many went
    /// out, how long it took, and how many sends failed.
    fn send_paced(
        &self,
        socket: &UdpSocket,
        dest: SocketAddrV4,
        run: u16,
        rate: u32,
        total: u64,
    ) -> Result<(u64, Duration, u64), String> {
        let mut payload = Vec::with_capacity(self.size);
        let start = Instant::now();
        let mut sent = 0u64;
        let mut errors = 0u64;
        let per_ns = f64::from(rate) / 1e9;
        while sent < total {
            let elapsed = start.elapsed();
            let due = ((elapsed.as_nanos() as f64 * per_ns) as u64 + 1).min(total);
            if sent >= due {
                thread::sleep(PACE_SLEEP);
                continue;
            }
            while sent < due {
                let ts = self.base.elapsed().as_nanos() as u64;
                self.encode(&mut payload, run, sent, ts);
                match socket.send_to(&payload, dest) {
                    Ok(_) => sent += 1,
                    Err(e) if e.kind() == ErrorKind::WouldBlock => {
                        // The socket's send buffer is full: as the client
                        // would, count it as not sent, and move on.
                        errors += 1;
                        sent += 1;
                    }
                    Err(e) if e.kind() == ErrorKind::Interrupted => {}
                    Err(e) => return Err(format!("sending to {dest}: {e}")),
                }
            }
        }
        Ok((sent, start.elapsed(), errors))
    }

    /// Writes datagram `seq` of step `run`, sent at `ts` (ns since base).
    fn encode(&self, out: &mut Vec<u8>, run: u16, seq: u64, ts: u64) {
        out.clear();
        match self.flavor {
            Flavor::Roomcast => {
                // `Name: text`, as the client sends it.
                use std::io::Write as _;
                let _ = write!(out, "bench: {run} {seq} {ts} ");
            }
            Flavor::Raw => {
                out.extend_from_slice(&u64::from(run).to_le_bytes());
                out.extend_from_slice(&seq.to_le_bytes());
                out.extend_from_slice(&ts.to_le_bytes());
            }
        }
        let pad = if self.flavor == Flavor::Roomcast {
            b'x'
        } else {
            0
        };
        out.resize(self.size.max(out.len()), pad);
    }
}

/// One receiver's tally.
struct Receiver {
    seen: Vec<u64>,
    total: u64,
    unique: u64,
    duplicates: u64,
    hist: Histogram,
    base: Instant,
    run: u16,
}

impl Receiver {
    fn new(total: u64, base: Instant, run: u16) -> Self {
        Receiver {
            seen: vec![0; total.div_ceil(64) as usize],
            total,
            unique: 0,
            duplicates: 0,
            hist: Histogram::new(),
            base,
            run,
        }
    }

    fn take(&mut self, data: &[u8], flavor: Flavor) {
        let now = self.base.elapsed().as_nanos() as u64;
        let Some((run, seq, ts)) = decode(data, flavor) else {
            return;
        };
        if run != u64::from(self.run) || seq >= self.total {
            return;
        }
        let (word, bit) = ((seq / 64) as usize, seq % 64);
        if self.seen[word] & (1 << bit) != 0 {
            self.duplicates += 1;
            return;
        }
        self.seen[word] |= 1 << bit;
        self.unique += 1;
        self.hist.record(now.saturating_sub(ts));
    }

    /// The client's way: nonblocking socket, level-triggered `polling`,
    /// receive until `WouldBlock`.
    fn run_polling(&mut self, socket: UdpSocket, stop: &AtomicBool) -> io::Result<()> {
        let poller = Poller::new()?;
        // SAFETY: deleted below, before the socket drops.
        unsafe { poller.add_with_mode(&socket, Interest::readable(0), PollMode::Level)? };
        let mut events = Events::new();
        let mut buf = [0u8; 2048];
        let result = loop {
            if stop.load(Ordering::SeqCst) {
                break Ok(());
            }
            events.clear();
            match poller.wait(&mut events, Some(Duration::from_millis(20))) {
                Ok(_) => {}
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => break Err(e),
            }
            if events.is_empty() {
                continue;
            }
            // As the client does: at most DATAGRAMS_PER_TURN, then back to
            // the poller (which reports the socket still readable at once).
            let mut outcome = Ok(());
            for _ in 0..DATAGRAMS_PER_TURN {
                match socket.recv_from(&mut buf) {
                    Ok((n, _from)) => self.take(&buf[..n], Flavor::Roomcast),
                    Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == ErrorKind::Interrupted => {}
                    Err(e) => {
                        outcome = Err(e);
                        break;
                    }
                }
            }
            if let Err(e) = outcome {
                break Err(e);
            }
        };
        let _ = poller.delete(&socket);
        result
    }

    /// The minimal way: a blocking receive with a short timeout.
    fn run_blocking(&mut self, socket: UdpSocket, stop: &AtomicBool) -> io::Result<()> {
        socket.set_read_timeout(Some(Duration::from_millis(20)))?;
        let mut buf = [0u8; 2048];
        loop {
            match socket.recv(&mut buf) {
                Ok(n) => self.take(&buf[..n], Flavor::Raw),
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                    if stop.load(Ordering::SeqCst) {
                        return Ok(());
                    }
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }
}

/// Reads (run, seq, timestamp) back from a datagram.
fn decode(data: &[u8], flavor: Flavor) -> Option<(u64, u64, u64)> {
    match flavor {
        Flavor::Roomcast => {
            let text = std::str::from_utf8(data).ok()?;
            let (_name, body) = text.split_once(": ")?;
            let mut words = body.split(' ');
            let run = words.next()?.parse().ok()?;
            let seq = words.next()?.parse().ok()?;
            let ts = words.next()?.parse().ok()?;
            Some((run, seq, ts))
        }
        Flavor::Raw => {
            let word = |i: usize| {
                data.get(i * 8..i * 8 + 8)
                    .map(|b| u64::from_le_bytes(b.try_into().expect("8 bytes")))
            };
            Some((word(0)?, word(1)?, word(2)?))
        }
    }
}

// ---- Sockets ----
//
// The client's sockets (host/src/client/net.rs, `Group::join`, and
// host/src/platform.rs, `McastReceiver::join`): the receiving socket
// shares the port, gets only its own memberships, binds the group's own
// address and port (Windows: the port only), joins on the interface and is
// nonblocking; the sending socket sets the multicast interface, the TTL and
// loopback on, and is nonblocking. The client's socket is not a plain
// `UdpSocket` on every system, so its setup is repeated here option for
// option; on Windows this receiver does not drop another group's
// datagrams, which the benchmark, alone on its group, does not need.

pub(super) fn client_recv_socket(
    group: Ipv4Addr,
    port: u16,
    iface: Ipv4Addr,
) -> io::Result<UdpSocket> {
    let socket = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP))?;
    platform::share_port(&socket)?;
    platform::only_own_memberships(&socket, false)?;
    socket.bind(&platform::multicast_bind_addr(group.into(), port).into())?;
    socket.join_multicast_v4(&group, &iface)?;
    socket.set_nonblocking(true)?;
    Ok(socket.into())
}

pub(super) fn client_send_socket(iface: Ipv4Addr) -> io::Result<UdpSocket> {
    let socket = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP))?;
    socket.set_multicast_if_v4(&iface)?;
    socket.set_multicast_ttl_v4(TTL)?;
    socket.set_multicast_loop_v4(true)?;
    socket.set_nonblocking(true)?;
    Ok(socket.into())
}

/// A bare receiver: bound to the port on any address, joined, blocking.
fn raw_recv_socket(group: Ipv4Addr, port: u16, iface: Ipv4Addr) -> io::Result<UdpSocket> {
    let socket = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP))?;
    socket.set_reuse_address(true)?;
    socket.bind(&SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, port).into())?;
    socket.join_multicast_v4(&group, &iface)?;
    Ok(socket.into())
}

/// A bare sender: blocking, with only what safety needs (interface, TTL).
fn raw_send_socket(iface: Ipv4Addr) -> io::Result<UdpSocket> {
    let socket = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP))?;
    socket.set_multicast_if_v4(&iface)?;
    socket.set_multicast_ttl_v4(TTL)?;
    Ok(socket.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn datagrams_round_trip() {
        for flavor in [Flavor::Roomcast, Flavor::Raw] {
            let setup = Setup {
                flavor,
                group: Ipv4Addr::new(239, 1, 1, 1),
                iface: Ipv4Addr::LOCALHOST,
                receivers: 1,
                size: 64,
                rcvbuf: None,
                base: Instant::now(),
            };
            let mut out = Vec::new();
            setup.encode(&mut out, 47001, 12345, 987_654_321);
            assert_eq!(out.len(), 64);
            assert_eq!(decode(&out, flavor), Some((47001, 12345, 987_654_321)));
        }
    }

    #[test]
    fn receivers_count_unique_datagrams() {
        let setup = Setup {
            flavor: Flavor::Roomcast,
            group: Ipv4Addr::new(239, 1, 1, 1),
            iface: Ipv4Addr::LOCALHOST,
            receivers: 1,
            size: 40,
            rcvbuf: None,
            base: Instant::now(),
        };
        let mut rx = Receiver::new(100, setup.base, 7);
        let mut out = Vec::new();
        for seq in [0, 1, 1, 99, 100] {
            setup.encode(&mut out, 7, seq, 0);
            rx.take(&out, Flavor::Roomcast);
        }
        setup.encode(&mut out, 8, 2, 0);
        rx.take(&out, Flavor::Roomcast);
        assert_eq!((rx.unique, rx.duplicates), (3, 1));
    }
}
