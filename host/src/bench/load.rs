//! The request load generator: many nonblocking TCP connections driven by
//! one `polling` event loop per thread, each keeping `--pipeline` requests
//! in flight.
//!
//! A request counts only once its whole reply has arrived (for `getdir`,
//! through the `.` line), and only if it completed inside the measured
//! window; its latency runs from the moment it was written to the socket to
//! the moment its last byte was read.

use std::collections::VecDeque;
use std::fmt::Write as _;
use std::io::{self, ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

use polling::{Event as Interest, Events, PollMode, Poller};
use socket2::{Domain, Protocol as SockProtocol, Socket, Type};

use super::hist::Histogram;
use super::{Json, check_target, human_ns, parse_seconds, raise_fd_limit, rss_kib};

/// The most bytes read from a socket in one call.
const READ_CHUNK: usize = 64 * 1024;

/// Descriptors kept beyond one per connection (poller, stdio, spare).
const SPARE_FDS: u64 = 64;

/// How long to wait for the replies in flight when the time is up.
const DRAIN: Duration = Duration::from_secs(2);

/// How long the event loop sleeps at most, so deadlines are checked.
const MAX_WAIT: Duration = Duration::from_millis(50);

/// Options of the load generator (`roomcast bench` without a mode).
#[derive(Debug, clap::Args)]
pub struct LoadArgs {
    /// The server to load, HOST:PORT.
    #[arg(long, default_value = "127.0.0.1:5577")]
    server: String,

    /// Allow a server that is not on this machine (a loopback address).
    #[arg(long)]
    allow_remote: bool,

    /// The wire protocol: `crdp` (roomcast's directory protocol) or `redis`
    /// (inline `PING`, answered `+PONG`; only the `ping` mix).
    #[arg(long, value_enum, default_value_t = Protocol::Crdp)]
    protocol: Protocol,

    /// How many connections to open.
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    conns: u32,

    /// Requests each connection keeps in flight (1: wait for each reply).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=4096))]
    pipeline: u32,

    /// Seconds measured.
    #[arg(long, default_value = "5", value_parser = parse_seconds)]
    duration: Duration,

    /// Seconds of load before the measured ones, not counted.
    #[arg(long, default_value = "1", value_parser = parse_seconds)]
    warmup: Duration,

    /// The requests, a comma-separated list sent in turn on each connection:
    /// `ping`, `getdir`, `rooms` (a `makeroom` then a `deleteroom` of a room
    /// of the connection's own; two requests).
    #[arg(long, value_enum, value_delimiter = ',', default_value = "ping")]
    mix: Vec<MixItem>,

    /// Before the run, add this many rooms to the directory (for `getdir`);
    /// they are deleted again after it.
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u32).range(0..=4096))]
    rooms: u32,

    /// Event-loop threads, each with its own share of the connections.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=64))]
    threads: u32,

    /// How many connects may be in progress at once (the server's listen
    /// backlog must take them).
    #[arg(long, default_value_t = 256, value_parser = clap::value_parser!(u32).range(1..))]
    connect_burst: u32,

    /// Give up on connections not set up within this many seconds.
    #[arg(long, default_value = "30", value_parser = parse_seconds)]
    connect_timeout: Duration,

    /// Idle mode: open the connections (each does one ping), hold them for
    /// `--hold` seconds without traffic, and report the server's memory.
    #[arg(long)]
    idle: bool,

    /// Idle mode: seconds to hold the connections.
    #[arg(long, default_value = "5", value_parser = parse_seconds)]
    hold: Duration,

    /// The server's process id: to report its CPU time per request (from
    /// /proc/PID/stat), and in idle mode its resident memory (VmRSS in
    /// /proc/PID/status) before and while holding.
    #[arg(long)]
    server_pid: Option<u32>,

    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
}

/// Which protocol the generator speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Protocol {
    /// roomcast's Chat Room Directory Protocol.
    Crdp,
    /// redis inline commands (`PING`).
    Redis,
}

impl Protocol {
    fn name(self) -> &'static str {
        match self {
            Protocol::Crdp => "crdp",
            Protocol::Redis => "redis",
        }
    }
}

/// One entry of `--mix`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum MixItem {
    /// `ping`.
    Ping,
    /// `getdir`.
    Getdir,
    /// `makeroom` then `deleteroom`.
    Rooms,
}

impl MixItem {
    fn name(self) -> &'static str {
        match self {
            MixItem::Ping => "ping",
            MixItem::Getdir => "getdir",
            MixItem::Rooms => "rooms",
        }
    }
}

/// One request on the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Op {
    Ping,
    GetDir,
    MakeRoom,
    DeleteRoom,
}

impl Op {
    const ALL: [Op; 4] = [Op::Ping, Op::GetDir, Op::MakeRoom, Op::DeleteRoom];

    fn index(self) -> usize {
        self as usize
    }

    fn name(self) -> &'static str {
        match self {
            Op::Ping => "ping",
            Op::GetDir => "getdir",
            Op::MakeRoom => "makeroom",
            Op::DeleteRoom => "deleteroom",
        }
    }
}

/// What the threads share: the plan of the run.
struct Plan {
    addr: SocketAddr,
    protocol: Protocol,
    ops: Vec<Op>,
    pipeline: usize,
    warmup: Duration,
    duration: Duration,
    connect_burst: usize,
    connect_timeout: Duration,
    idle: bool,
}

/// What one thread counted.
#[derive(Default)]
struct Stats {
    requests: u64,
    errors: u64,
    per_op: [u64; 4],
    hist: Histogram,
    connected: u64,
    conn_errors: u64,
    first_error: Option<String>,
    listing_rooms: Option<u64>,
}

impl Stats {
    fn merge(&mut self, other: Stats) {
        self.requests += other.requests;
        self.errors += other.errors;
        for (a, b) in self.per_op.iter_mut().zip(other.per_op) {
            *a += b;
        }
        self.hist.merge(&other.hist);
        self.connected += other.connected;
        self.conn_errors += other.conn_errors;
        if self.first_error.is_none() {
            self.first_error = other.first_error;
        }
        self.listing_rooms = self.listing_rooms.or(other.listing_rooms);
    }

    fn note_error(&mut self, what: impl FnOnce() -> String) {
        if self.first_error.is_none() {
            self.first_error = Some(what());
        }
    }
}

/// Runs the load generator.
pub fn run(args: LoadArgs) -> Result<(), String> {
    let addr = args
        .server
        .to_socket_addrs()
        .map_err(|e| format!("cannot resolve {}: {e}", args.server))?
        .next()
        .ok_or_else(|| format!("{} resolves to no address", args.server))?;
    check_target(addr, args.allow_remote)?;
    let mut ops = Vec::new();
    for item in &args.mix {
        match (args.protocol, item) {
            (_, MixItem::Ping) => ops.push(Op::Ping),
            (Protocol::Crdp, MixItem::Getdir) => ops.push(Op::GetDir),
            (Protocol::Crdp, MixItem::Rooms) => ops.extend([Op::MakeRoom, Op::DeleteRoom]),
            (Protocol::Redis, other) => {
                return Err(format!(
                    "--protocol redis speaks only the ping mix, not {}",
                    other.name()
                ));
            }
        }
    }
    if args.rooms > 0 && args.protocol == Protocol::Redis {
        return Err("--rooms needs --protocol crdp".into());
    }
    raise_fd_limit(u64::from(args.conns) + SPARE_FDS)?;
    let threads = args.threads.min(args.conns) as usize;
    let plan = Arc::new(Plan {
        addr,
        protocol: args.protocol,
        ops,
        pipeline: args.pipeline as usize,
        warmup: args.warmup,
        duration: args.duration,
        connect_burst: (args.connect_burst as usize).div_ceil(threads),
        connect_timeout: args.connect_timeout,
        idle: args.idle,
    });

    let prefilled = if args.rooms > 0 {
        prefill(addr, args.rooms)?
    } else {
        Vec::new()
    };
    let rss_before = args.server_pid.map(rss_kib).transpose()?;

    // Every thread connects, then waits at the barrier until all are set
    // up; the main thread joins the barrier too (idle mode measures there).
    let ready = Arc::new(Barrier::new(threads + 1));
    let release = Arc::new(Barrier::new(threads + 1));
    let mut handles = Vec::new();
    let mut first = 0usize;
    for t in 0..threads {
        let share = args.conns as usize / threads + usize::from(t < args.conns as usize % threads);
        let plan = Arc::clone(&plan);
        let ready = Arc::clone(&ready);
        let release = Arc::clone(&release);
        let first_index = first;
        first += share;
        handles.push(
            thread::Builder::new()
                .name(format!("bench-{t}"))
                .spawn(move || Worker::new(plan, first_index, share)?.run(&ready, &release))
                .map_err(|e| format!("cannot start a thread: {e}"))?,
        );
    }
    ready.wait();
    let mut idle_report = None;
    if args.idle {
        // Let the server settle, then sample its memory while holding.
        let settle = Duration::from_secs(1).min(args.hold);
        thread::sleep(settle);
        let held = args.server_pid.map(rss_kib).transpose()?;
        thread::sleep(args.hold - settle);
        let end = args.server_pid.map(rss_kib).transpose()?;
        idle_report = Some((held, end));
    }
    release.wait();
    // While the threads run: how much CPU the server (and this process)
    // spend in the measured window.
    let mut cpu = None;
    if !args.idle {
        thread::sleep(args.warmup);
        let start = (
            args.server_pid.map(cpu_ticks),
            cpu_ticks(std::process::id()),
        );
        thread::sleep(args.duration);
        let end = (
            args.server_pid.map(cpu_ticks),
            cpu_ticks(std::process::id()),
        );
        cpu = Some((start, end));
    }
    let mut stats = Stats::default();
    for handle in handles {
        let thread_stats = handle
            .join()
            .map_err(|_| "a benchmark thread panicked".to_string())??;
        stats.merge(thread_stats);
    }
    if args.rooms > 0 {
        unfill(addr, &prefilled)?;
    }

    match idle_report {
        Some((held, end)) => report_idle(&args, &stats, rss_before, held, end),
        None => {
            // CPU seconds per request, from clock ticks (1/100 s).
            let per_request =
                |a: Option<Result<u64, String>>, b: Option<Result<u64, String>>| match (a, b) {
                    (Some(Ok(a)), Some(Ok(b))) if stats.requests > 0 => {
                        Some(b.saturating_sub(a) as f64 / TICKS_PER_SEC / stats.requests as f64)
                    }
                    _ => None,
                };
            let cpu = cpu.map(|((s0, b0), (s1, b1))| {
                let busy = match (&s0, &s1) {
                    (Some(Ok(a)), Some(Ok(b))) => Some(
                        b.saturating_sub(*a) as f64 / TICKS_PER_SEC / args.duration.as_secs_f64(),
                    ),
                    _ => None,
                };
                Cpu {
                    server_per_request: per_request(s0, s1),
                    server_busy: busy,
                    bench_per_request: per_request(Some(b0), Some(b1)),
                }
            });
            report_load(&args, &stats, cpu.as_ref());
        }
    }
    Ok(())
}

/// Clock ticks per second in /proc/PID/stat (USER_HZ, 100 on Linux).
const TICKS_PER_SEC: f64 = 100.0;

/// CPU time used so far by process `pid` and all its threads, user and
/// system, in clock ticks (fields 14 and 15 of /proc/PID/stat).
fn cpu_ticks(pid: u32) -> Result<u64, String> {
    let path = format!("/proc/{pid}/stat");
    let stat = std::fs::read_to_string(&path).map_err(|e| format!("cannot read {path}: {e}"))?;
    // The command name (field 2) may hold spaces; it ends at the last ')'.
    let rest = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest)
        .ok_or_else(|| format!("{path}: no ')'"))?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // `rest` starts at field 3, so fields 14 and 15 are at 11 and 12.
    let field = |i: usize| -> Result<u64, String> {
        fields
            .get(i)
            .and_then(|f| f.parse().ok())
            .ok_or_else(|| format!("{path}: field {} missing", i + 3))
    };
    Ok(field(11)? + field(12)?)
}

/// CPU spent in the measured window.
struct Cpu {
    /// Server CPU seconds per request (with `--server-pid`).
    server_per_request: Option<f64>,
    /// Server CPU seconds per second: 1.0 is one core busy all the time.
    server_busy: Option<f64>,
    /// This process's CPU seconds per request.
    bench_per_request: Option<f64>,
}

fn report_load(args: &LoadArgs, stats: &Stats, cpu: Option<&Cpu>) {
    let secs = args.duration.as_secs_f64();
    let rps = if secs > 0.0 {
        stats.requests as f64 / secs
    } else {
        0.0
    };
    let h = &stats.hist;
    let mix: Vec<&str> = args.mix.iter().map(|m| m.name()).collect();
    let mix = mix.join(",");
    if args.json {
        let mut j = Json::default()
            .str("mode", "load")
            .str("protocol", args.protocol.name())
            .str("mix", &mix)
            .str("server", &args.server)
            .int("conns", args.conns.into())
            .int("connected", stats.connected)
            .int("pipeline", args.pipeline.into())
            .int("threads", args.threads.into())
            .num("duration_s", secs)
            .num("warmup_s", args.warmup.as_secs_f64())
            .int("requests", stats.requests)
            .int("errors", stats.errors)
            .int("conn_errors", stats.conn_errors)
            .num("rps", rps.round())
            .num("p50_us", h.quantile(0.5) as f64 / 1e3)
            .num("p99_us", h.quantile(0.99) as f64 / 1e3)
            .num("p999_us", h.quantile(0.999) as f64 / 1e3)
            .num("max_us", h.max() as f64 / 1e3)
            .opt("listing_rooms", stats.listing_rooms);
        let us = |v: Option<f64>| v.map_or(f64::NAN, |v| v * 1e6);
        j = j
            .num(
                "server_cpu_us_per_req",
                us(cpu.and_then(|c| c.server_per_request)),
            )
            .num(
                "server_busy",
                cpu.and_then(|c| c.server_busy).unwrap_or(f64::NAN),
            )
            .num(
                "bench_cpu_us_per_req",
                us(cpu.and_then(|c| c.bench_per_request)),
            );
        for op in Op::ALL {
            if stats.per_op[op.index()] > 0 {
                j = j.int(&format!("{}_requests", op.name()), stats.per_op[op.index()]);
            }
        }
        match &stats.first_error {
            Some(e) => j = j.str("first_error", e),
            None => j = j.null("first_error"),
        }
        println!("{}", j.finish());
        return;
    }
    let mut out = String::new();
    let _ = writeln!(
        out,
        "roomcast bench: {} {mix} against {}: {} connections ({} set up), pipeline {}, \
         {} thread(s), {secs:.1} s measured after {:.1} s warm-up",
        args.protocol.name(),
        args.server,
        args.conns,
        stats.connected,
        args.pipeline,
        args.threads,
        args.warmup.as_secs_f64()
    );
    let _ = writeln!(out, "  requests  {} ({rps:.0} per second)", stats.requests);
    for op in Op::ALL {
        let n = stats.per_op[op.index()];
        if n > 0 && n != stats.requests {
            let _ = writeln!(out, "    {:<10} {n}", op.name());
        }
    }
    if let Some(rooms) = stats.listing_rooms {
        let _ = writeln!(out, "  getdir listed {rooms} rooms");
    }
    let _ = writeln!(
        out,
        "  latency   p50 {}, p99 {}, p99.9 {}, max {}",
        human_ns(h.quantile(0.5)),
        human_ns(h.quantile(0.99)),
        human_ns(h.quantile(0.999)),
        human_ns(h.max())
    );
    if let Some(c) = cpu {
        let mut line = String::from("  CPU       ");
        if let (Some(per), Some(busy)) = (c.server_per_request, c.server_busy) {
            let _ = write!(
                line,
                "server {:.2} µs per request ({:.0} % of a core), ",
                per * 1e6,
                busy * 100.0
            );
        }
        if let Some(per) = c.bench_per_request {
            let _ = write!(line, "this generator {:.2} µs per request", per * 1e6);
        }
        let _ = writeln!(out, "{line}");
    }
    let _ = writeln!(
        out,
        "  errors    {} replies, {} connections",
        stats.errors, stats.conn_errors
    );
    if let Some(e) = &stats.first_error {
        let _ = writeln!(out, "  first error: {e}");
    }
    print!("{out}");
}

fn report_idle(
    args: &LoadArgs,
    stats: &Stats,
    before: Option<u64>,
    held: Option<u64>,
    end: Option<u64>,
) {
    let per_conn = match (before, end) {
        (Some(b), Some(e)) if stats.connected > 0 => {
            Some(e.saturating_sub(b) * 1024 / stats.connected)
        }
        _ => None,
    };
    if args.json {
        let mut j = Json::default()
            .str("mode", "idle")
            .str("protocol", args.protocol.name())
            .str("server", &args.server)
            .int("conns", args.conns.into())
            .int("connected", stats.connected)
            .int("conn_errors", stats.conn_errors)
            .num("hold_s", args.hold.as_secs_f64())
            .opt("rss_before_kib", before)
            .opt("rss_held_kib", held)
            .opt("rss_end_kib", end)
            .opt("bytes_per_conn", per_conn);
        match &stats.first_error {
            Some(e) => j = j.str("first_error", e),
            None => j = j.null("first_error"),
        }
        println!("{}", j.finish());
        return;
    }
    println!(
        "roomcast bench --idle: {} connections to {} ({}) set up, {} failed, held {:.1} s",
        stats.connected,
        args.server,
        args.protocol.name(),
        stats.conn_errors,
        args.hold.as_secs_f64()
    );
    match (before, held, end, per_conn) {
        (Some(b), Some(h), Some(e), Some(p)) => println!(
            "  server RSS {b} KiB before, {h} KiB after 1 s, {e} KiB at the end: \
             {p} bytes per connection"
        ),
        _ => println!("  (give --server-pid PID to read the server's memory)"),
    }
    if let Some(e) = &stats.first_error {
        println!("  first error: {e}");
    }
}

/// Adds rooms `benchroom0000`... on one blocking connection, pipelined;
/// returns the `makeroom` replies (with the owner tokens).
fn prefill(addr: SocketAddr, rooms: u32) -> Result<Vec<String>, String> {
    let lines = (0..rooms).map(|i| {
        format!(
            "makeroom benchroom{i:04} 239.1.{}.{} 5000\n",
            i / 256,
            i % 256
        )
    });
    let replies = blocking_batch(addr, lines)?;
    if replies.len() < rooms as usize {
        return Err("the server closed the connection while rooms were being added".into());
    }
    Ok(replies)
}

/// Deletes the rooms [`prefill`] added (from another connection: with the
/// owner token each `makeroom` answered).
fn unfill(addr: SocketAddr, made: &[String]) -> Result<(), String> {
    let lines = made.iter().enumerate().filter_map(|(i, reply)| {
        let (_, token) = reply.trim_end().rsplit_once(" token=")?;
        Some(format!("deleteroom benchroom{i:04} {token}\n"))
    });
    blocking_batch(addr, lines).map(|_| ())
}

/// Sends CRDP lines (single-line replies) in batches of 64 and returns the
/// replies, in order (fewer if the server closed the connection).
fn blocking_batch(
    addr: SocketAddr,
    lines: impl Iterator<Item = String>,
) -> Result<Vec<String>, String> {
    use std::io::{BufRead, BufReader};
    let fail = |e: io::Error| format!("setting up rooms on {addr}: {e}");
    let stream = TcpStream::connect_timeout(&addr, Duration::from_secs(10)).map_err(fail)?;
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .map_err(fail)?;
    let mut writer = stream.try_clone().map_err(fail)?;
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    reader.read_line(&mut line).map_err(fail)?;
    if !line.starts_with("OK") {
        return Err(format!(
            "{addr} greeted with {line:?}: not a roomcast server?"
        ));
    }
    let mut replies = Vec::new();
    let lines: Vec<String> = lines.collect();
    for chunk in lines.chunks(64) {
        writer.write_all(chunk.concat().as_bytes()).map_err(fail)?;
        for _ in chunk {
            line.clear();
            if reader.read_line(&mut line).map_err(fail)? == 0 {
                return Ok(replies);
            }
            replies.push(line.clone());
        }
    }
    let _ = writer.write_all(b"bye\n");
    Ok(replies)
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// The connect is in progress.
    Connecting,
    /// Waiting for the CRDP greeting.
    Greeting,
    /// Waiting for the reply to the set-up ping (idle mode).
    Handshake,
    /// Set up, waiting for the start.
    Ready,
    /// Sending requests.
    Running,
    /// Closed or failed.
    Dead,
}

/// One connection of the generator.
struct Conn {
    socket: Option<Socket>,
    phase: Phase,
    /// The tail of the last read that held no complete line yet.
    partial: Vec<u8>,
    /// Requests not yet taken by the socket.
    out: Vec<u8>,
    /// Requests sent, oldest first, with when they were queued (ns since
    /// the worker's base).
    inflight: VecDeque<(Op, u64)>,
    /// Inside a `getdir` listing: lines until `.` belong to it.
    in_listing: bool,
    next_op: usize,
    room_seq: u32,
    /// The connection's number across all threads.
    global: usize,
    interest: (bool, bool),
}

/// The outcome of one complete reply line.
enum LineResult {
    /// Not the end of a reply.
    More,
    /// The reply to the oldest request is complete.
    Done { ok: bool },
    /// The line makes no sense here: close the connection.
    Bad,
}

/// One thread's event loop and its connections.
struct Worker {
    plan: Arc<Plan>,
    poller: Poller,
    conns: Vec<Conn>,
    stats: Stats,
    base: Instant,
    /// Measured window, in ns since `base`.
    window: (u64, u64),
    buf: Vec<u8>,
}

impl Worker {
    fn new(plan: Arc<Plan>, first_index: usize, count: usize) -> Result<Worker, String> {
        let poller = Poller::new().map_err(|e| format!("cannot create a poller: {e}"))?;
        let conns = (0..count)
            .map(|i| Conn {
                socket: None,
                phase: Phase::Dead,
                partial: Vec::new(),
                out: Vec::new(),
                inflight: VecDeque::new(),
                in_listing: false,
                next_op: 0,
                room_seq: 0,
                global: first_index + i,
                interest: (false, false),
            })
            .collect();
        Ok(Worker {
            plan,
            poller,
            conns,
            stats: Stats::default(),
            base: Instant::now(),
            window: (u64::MAX, u64::MAX),
            buf: vec![0; READ_CHUNK],
        })
    }

    fn now_ns(&self) -> u64 {
        self.base.elapsed().as_nanos() as u64
    }

    fn run(mut self, ready: &Barrier, release: &Barrier) -> Result<Stats, String> {
        let outcome = self.connect_all();
        // Always meet the others at the barriers, even after a failure.
        ready.wait();
        if let Err(e) = outcome {
            release.wait();
            self.close_all();
            return Err(e);
        }
        if self.plan.idle {
            release.wait();
            self.close_all();
            return Ok(self.stats);
        }
        release.wait();
        let outcome = self.drive();
        self.close_all();
        outcome.map(|()| self.stats)
    }

    /// Opens every connection, at most `connect_burst` at a time, and waits
    /// until each is set up (or failed).
    fn connect_all(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + self.plan.connect_timeout;
        let mut next = 0;
        let mut pending = 0usize;
        let mut events = Events::with_capacity(std::num::NonZeroUsize::new(1024).unwrap());
        loop {
            while next < self.conns.len() && pending < self.plan.connect_burst {
                if self.start_connect(next) {
                    pending += 1;
                }
                next += 1;
            }
            if pending == 0 && next == self.conns.len() {
                return Ok(());
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                let stuck = self
                    .conns
                    .iter()
                    .filter(|c| {
                        matches!(
                            c.phase,
                            Phase::Connecting | Phase::Greeting | Phase::Handshake
                        )
                    })
                    .count();
                self.stats.conn_errors += stuck as u64;
                self.stats
                    .note_error(|| format!("{stuck} connections not set up in time"));
                for i in 0..self.conns.len() {
                    if matches!(
                        self.conns[i].phase,
                        Phase::Connecting | Phase::Greeting | Phase::Handshake
                    ) {
                        self.kill(i);
                    }
                }
                return Ok(());
            }
            events.clear();
            self.wait(&mut events, left.min(MAX_WAIT))?;
            for event in events.iter() {
                let i = event.key;
                let before = self.conns[i].phase;
                self.on_event(i, event.readable, event.writable);
                let after = self.conns[i].phase;
                let was_pending = matches!(
                    before,
                    Phase::Connecting | Phase::Greeting | Phase::Handshake
                );
                let is_pending = matches!(
                    after,
                    Phase::Connecting | Phase::Greeting | Phase::Handshake
                );
                if was_pending && !is_pending {
                    pending -= 1;
                }
            }
        }
    }

    fn wait(&self, events: &mut Events, timeout: Duration) -> Result<(), String> {
        match self.poller.wait(events, Some(timeout)) {
            Ok(_) => Ok(()),
            Err(e) if e.kind() == ErrorKind::Interrupted => Ok(()),
            Err(e) => Err(format!("the poller failed: {e}")),
        }
    }

    /// Starts connect `i`; false if it failed at once.
    fn start_connect(&mut self, i: usize) -> bool {
        let addr = self.plan.addr;
        let socket = (|| {
            let socket = Socket::new(
                Domain::for_address(addr),
                Type::STREAM,
                Some(SockProtocol::TCP),
            )?;
            socket.set_nonblocking(true)?;
            socket.set_tcp_nodelay(true)?;
            match socket.connect(&addr.into()) {
                Ok(()) => {}
                Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => {}
                Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                Err(e) => return Err(e),
            }
            Ok(socket)
        })();
        let socket = match socket {
            Ok(socket) => socket,
            Err(e) => {
                self.stats.conn_errors += 1;
                self.stats.note_error(|| format!("connect to {addr}: {e}"));
                return false;
            }
        };
        // SAFETY: the socket is deleted from the poller in `kill` before it
        // drops, and `kill` is the only place a socket is dropped.
        let added = unsafe {
            self.poller
                .add_with_mode(&socket, Interest::writable(i), PollMode::Level)
        };
        if let Err(e) = added {
            self.stats.conn_errors += 1;
            self.stats
                .note_error(|| format!("cannot watch a socket: {e}"));
            return false;
        }
        let conn = &mut self.conns[i];
        conn.socket = Some(socket);
        conn.phase = Phase::Connecting;
        conn.interest = (false, true);
        true
    }

    /// Runs the warm-up and the measured window.
    fn drive(&mut self) -> Result<(), String> {
        let start = self.now_ns();
        let warmup = self.plan.warmup.as_nanos() as u64;
        let duration = self.plan.duration.as_nanos() as u64;
        self.window = (start + warmup, start + warmup + duration);
        for i in 0..self.conns.len() {
            if self.conns[i].phase == Phase::Ready {
                self.conns[i].phase = Phase::Running;
                let now = self.now_ns();
                for _ in 0..self.plan.pipeline {
                    self.queue_request(i, now);
                }
                self.flush(i);
            }
        }
        let mut events = Events::with_capacity(std::num::NonZeroUsize::new(1024).unwrap());
        // After the window, wait (a little) for what is in flight, so that a
        // `makeroom` whose `deleteroom` was still to come leaves no room.
        let drain_end = self.window.1 + DRAIN.as_nanos() as u64;
        loop {
            let now = self.now_ns();
            if now >= self.window.1
                && (now >= drain_end || self.conns.iter().all(|c| c.inflight.is_empty()))
            {
                return Ok(());
            }
            let deadline = if now < self.window.1 {
                self.window.1
            } else {
                drain_end
            };
            let left = Duration::from_nanos(deadline - now);
            events.clear();
            self.wait(&mut events, left.min(MAX_WAIT))?;
            for event in events.iter() {
                self.on_event(event.key, event.readable, event.writable);
            }
        }
    }

    fn close_all(&mut self) {
        for i in 0..self.conns.len() {
            self.kill(i);
        }
    }

    /// Closes connection `i` (no error counted).
    fn kill(&mut self, i: usize) {
        let conn = &mut self.conns[i];
        if let Some(socket) = conn.socket.take() {
            let _ = self.poller.delete(&socket);
        }
        conn.phase = Phase::Dead;
        conn.inflight.clear();
    }

    /// Connection `i` failed: count it and close it.
    fn fail(&mut self, i: usize, why: impl FnOnce() -> String) {
        let phase = self.conns[i].phase;
        if phase != Phase::Dead {
            self.stats.conn_errors += 1;
            self.stats.note_error(why);
        }
        self.kill(i);
    }

    fn on_event(&mut self, i: usize, readable: bool, writable: bool) {
        if self.conns[i].phase == Phase::Connecting {
            if !(readable || writable) {
                return;
            }
            let socket = self.conns[i].socket.as_ref().expect("a connecting socket");
            let result = match socket.take_error() {
                Ok(Some(e)) | Err(e) => Err(e),
                Ok(None) => socket.peer_addr().map(|_| ()),
            };
            if let Err(e) = result {
                let addr = self.plan.addr;
                self.fail(i, || format!("connect to {addr}: {e}"));
                return;
            }
            match self.plan.protocol {
                Protocol::Crdp => self.conns[i].phase = Phase::Greeting,
                Protocol::Redis if self.plan.idle => {
                    self.conns[i].phase = Phase::Handshake;
                    let now = self.now_ns();
                    self.queue_request(i, now);
                }
                Protocol::Redis => {
                    self.conns[i].phase = Phase::Ready;
                    self.stats.connected += 1;
                }
            }
            self.flush(i);
            return;
        }
        if readable {
            self.read(i);
        }
        if writable && self.conns[i].socket.is_some() {
            self.flush(i);
        }
    }

    /// Reads what connection `i` has, handles every complete line, and
    /// sends the requests that follow.
    fn read(&mut self, i: usize) {
        loop {
            let Some(socket) = self.conns[i].socket.as_mut() else {
                return;
            };
            let n = match socket.read(&mut self.buf) {
                Ok(0) => {
                    let phase = self.conns[i].phase;
                    self.fail(i, || format!("the server closed a connection ({phase:?})"));
                    return;
                }
                Ok(n) => n,
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => {
                    self.fail(i, || format!("reading: {e}"));
                    return;
                }
            };
            let now = self.now_ns();
            let data = std::mem::take(&mut self.buf);
            let alive = if self.conns[i].partial.is_empty() {
                self.handle_data(i, now, &data[..n])
            } else {
                let mut joined = std::mem::take(&mut self.conns[i].partial);
                joined.extend_from_slice(&data[..n]);
                let alive = self.handle_data(i, now, &joined);
                joined.clear();
                if self.conns[i].partial.is_empty() {
                    // Keep the allocation for the next partial line.
                    self.conns[i].partial = joined;
                }
                alive
            };
            self.buf = data;
            if !alive {
                return;
            }
            // A short read drained the socket; level-triggered polling
            // says so again if more arrives. This saves a read that
            // would only return EAGAIN.
            if n < READ_CHUNK {
                break;
            }
        }
        self.flush(i);
    }

    /// Handles `data` (read from connection `i`); keeps an incomplete last
    /// line in `partial`. False if the connection was closed.
    fn handle_data(&mut self, i: usize, now: u64, data: &[u8]) -> bool {
        let mut rest = data;
        while let Some(end) = rest.iter().position(|&b| b == b'\n') {
            let mut line = &rest[..end];
            rest = &rest[end + 1..];
            if let [head @ .., b'\r'] = line {
                line = head;
            }
            if !self.handle_line(i, now, line) {
                return false;
            }
        }
        if !rest.is_empty() {
            let partial = &mut self.conns[i].partial;
            partial.extend_from_slice(rest);
            if partial.len() > 1 << 20 {
                self.fail(i, || "a reply line longer than 1 MiB".into());
                return false;
            }
        }
        true
    }

    /// Handles one line from connection `i`. False if it was closed.
    fn handle_line(&mut self, i: usize, now: u64, line: &[u8]) -> bool {
        let conn = &mut self.conns[i];
        match conn.phase {
            Phase::Greeting => {
                if !line.starts_with(b"OK") {
                    let text = String::from_utf8_lossy(line).into_owned();
                    self.fail(i, || format!("greeting {text:?}"));
                    return false;
                }
                if self.plan.idle {
                    conn.phase = Phase::Handshake;
                    self.queue_request(i, now);
                } else {
                    conn.phase = Phase::Ready;
                    self.stats.connected += 1;
                }
                return true;
            }
            Phase::Handshake | Phase::Running => {}
            Phase::Connecting | Phase::Ready | Phase::Dead => {
                let text = String::from_utf8_lossy(line).into_owned();
                self.fail(i, || format!("unexpected line {text:?}"));
                return false;
            }
        }
        let Some(&(op, sent)) = conn.inflight.front() else {
            let text = String::from_utf8_lossy(line).into_owned();
            self.fail(i, || format!("a reply to no request: {text:?}"));
            return false;
        };
        let result = match self.plan.protocol {
            Protocol::Redis => match line.first() {
                Some(b'+') => LineResult::Done { ok: true },
                Some(b'-') => LineResult::Done { ok: false },
                _ => LineResult::Bad,
            },
            Protocol::Crdp if conn.in_listing => {
                if line == b"." {
                    conn.in_listing = false;
                    LineResult::Done { ok: true }
                } else {
                    LineResult::More
                }
            }
            Protocol::Crdp => {
                if line.starts_with(b"OK") {
                    if op == Op::GetDir {
                        conn.in_listing = true;
                        self.stats.listing_rooms = std::str::from_utf8(&line[2..])
                            .ok()
                            .and_then(|s| s.split_whitespace().next())
                            .and_then(|n| n.parse().ok());
                        LineResult::More
                    } else {
                        LineResult::Done { ok: true }
                    }
                } else if line.starts_with(b"ERR") {
                    LineResult::Done { ok: false }
                } else {
                    LineResult::Bad
                }
            }
        };
        match result {
            LineResult::More => true,
            LineResult::Bad => {
                let text = String::from_utf8_lossy(line).into_owned();
                self.fail(i, || format!("a reply that makes no sense: {text:?}"));
                false
            }
            LineResult::Done { ok } => {
                conn.inflight.pop_front();
                if conn.phase == Phase::Handshake {
                    conn.phase = Phase::Ready;
                    self.stats.connected += 1;
                    if !ok {
                        self.stats.conn_errors += 1;
                        let text = String::from_utf8_lossy(line).into_owned();
                        self.stats
                            .note_error(|| format!("the set-up ping got {text:?}"));
                    }
                    return true;
                }
                if now >= self.window.0 && now < self.window.1 {
                    if ok {
                        self.stats.requests += 1;
                        self.stats.per_op[op.index()] += 1;
                        self.stats.hist.record(now.saturating_sub(sent));
                    } else {
                        self.stats.errors += 1;
                        let text = String::from_utf8_lossy(line).into_owned();
                        self.stats
                            .note_error(|| format!("{} got {text:?}", op.name()));
                    }
                }
                let next = self.plan.ops[conn.next_op % self.plan.ops.len()];
                if now < self.window.1 || next == Op::DeleteRoom {
                    self.queue_request(i, now);
                }
                true
            }
        }
    }

    /// Appends the connection's next request to its output.
    fn queue_request(&mut self, i: usize, now: u64) {
        let plan = &self.plan;
        let conn = &mut self.conns[i];
        let op = if conn.phase == Phase::Handshake {
            Op::Ping
        } else {
            let op = plan.ops[conn.next_op % plan.ops.len()];
            conn.next_op += 1;
            op
        };
        match (plan.protocol, op) {
            (Protocol::Redis, _) => conn.out.extend_from_slice(b"PING\r\n"),
            (Protocol::Crdp, Op::Ping) => conn.out.extend_from_slice(b"ping\n"),
            (Protocol::Crdp, Op::GetDir) => conn.out.extend_from_slice(b"getdir\n"),
            (Protocol::Crdp, Op::MakeRoom) => {
                // Each connection has its own group address, and each of its
                // rooms a port of its own, so no two rooms ever clash.
                let g = conn.global;
                let seq = conn.room_seq;
                let _ = writeln!(
                    ByteWriter(&mut conn.out),
                    "makeroom b{g}r{seq} 239.{}.{}.{} {}",
                    (g >> 16) & 0xff,
                    (g >> 8) & 0xff,
                    g & 0xff,
                    1024 + seq % 60_000
                );
            }
            (Protocol::Crdp, Op::DeleteRoom) => {
                let g = conn.global;
                let seq = conn.room_seq;
                conn.room_seq = conn.room_seq.wrapping_add(1);
                let _ = writeln!(ByteWriter(&mut conn.out), "deleteroom b{g}r{seq}");
            }
        }
        conn.inflight.push_back((op, now));
    }

    /// Writes what connection `i` has queued, and watches for writability
    /// only while something is left.
    fn flush(&mut self, i: usize) {
        let conn = &mut self.conns[i];
        let Some(socket) = conn.socket.as_mut() else {
            return;
        };
        let mut written = 0;
        let mut failure = None;
        while written < conn.out.len() {
            match socket.write(&conn.out[written..]) {
                Ok(0) => {
                    failure = Some(io::Error::from(ErrorKind::WriteZero));
                    break;
                }
                Ok(n) => written += n,
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => {
                    failure = Some(e);
                    break;
                }
            }
        }
        conn.out.drain(..written);
        if let Some(e) = failure {
            self.fail(i, || format!("writing: {e}"));
            return;
        }
        let wanted = (true, !conn.out.is_empty());
        if wanted != conn.interest {
            let interest = Interest::new(i, wanted.0, wanted.1);
            let socket = conn.socket.as_ref().expect("checked above");
            if let Err(e) = self
                .poller
                .modify_with_mode(socket, interest, PollMode::Level)
            {
                self.fail(i, || format!("cannot watch a socket: {e}"));
                return;
            }
            self.conns[i].interest = wanted;
        }
    }
}

/// `fmt::Write` into a byte vector.
struct ByteWriter<'a>(&'a mut Vec<u8>);

impl std::fmt::Write for ByteWriter<'_> {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        self.0.extend_from_slice(s.as_bytes());
        Ok(())
    }
}
