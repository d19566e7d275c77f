//! `roomcast bench reliable`: the room protocol (reliable chat) on real
//! sockets on loopback, members in one process.
//!
//! Each member is a thread with the client's sockets (a receiver on the
//! room's plain port and one on its control port, both with the client's
//! 1 MiB receive buffer, and one sending socket) and a
//! [`roomcast_core::chat::Session`], driven as the client drives it: a
//! level-triggered `polling` loop that takes at most 32 datagrams per turn,
//! runs the session's timers when due and sends what it puts out. Member 0
//! sends `--count` messages as fast as its session takes them (or at
//! `--rate`); the others count what their sessions deliver: every message
//! exactly once and in order, loss notices, and the delay from the
//! message's first transmission by the sender (not from its handing to the
//! session: a message may wait in the send queue first) to its delivery;
//! all threads share a clock.
//!
//! Loss: `--drop PCT` drops that share of the datagrams each receiving
//! member reads, independently per member (as an nftables rule at each
//! receiver's input would); an nftables rule in the namespace (`numgen
//! random mod 10 0 drop`) drops a datagram for every member at once, and
//! works too. With `--drop`, a message whose first transmission a member
//! dropped counts as repaired there, and its delay is reported apart.
//!
//! `--quiet SECS` runs the members without messages instead, and reports
//! the bytes each sends per second (heartbeats).
//!
//! `--private` runs a private room: every member's session seals its
//! frames (XChaCha20-Poly1305, [`roomcast_core::chat::Sealing`]) under one
//! key and sends no plain copy, as the client does in a private room. The
//! key is a fixed benchmark key (no Argon2id: `roomcast bench argon2`
//! measures that); each member's sealer is its own. The sender's first
//! transmissions are then timed when the session counts them sent (it
//! cannot read its sealed frames), and with `--drop` the delay of repaired
//! messages is not told apart.
//!
//! As `roomcast bench chat`, it refuses to run where any network interface
//! other than loopback exists (run it inside `tools/sandbox`), sends with
//! TTL 1 on a loopback address, to a group in 239.0.0.0/8.

use std::collections::BTreeSet;
use std::io::{self, ErrorKind};
use std::net::{Ipv4Addr, SocketAddrV4, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

use polling::{Event as Interest, Events, PollMode, Poller};
use roomcast_core::chat::frame::{FLAG_REPAIR, Frame, decode};
use roomcast_core::chat::{Channel, Event, MemberId, Sealing, Session};
use roomcast_core::privacy::{RoomKeys, RoomSecret, SECRET_BYTES};

use super::hist::Histogram;
use super::{Json, human_ns, parse_seconds};
use crate::bench::chat::{client_recv_socket, client_send_socket, only_loopback};

/// The client's receive buffer on each chat socket (host/src/client/net.rs).
const RECV_BUFFER: usize = 1 << 20;

/// The most datagrams a member takes per socket per turn, as the client.
const DATAGRAMS_PER_TURN: usize = 32;

/// The longest a member's loop sleeps, so that it sees the stop flag.
const MAX_WAIT: Duration = Duration::from_millis(20);

/// Options of `roomcast bench reliable`.
#[derive(Debug, clap::Args)]
pub struct ReliableArgs {
    /// The multicast group (in 239.0.0.0/8).
    #[arg(long, default_value = "239.255.77.2")]
    group: Ipv4Addr,

    /// The room's (plain) port; the control port is the next one.
    #[arg(long, default_value_t = 47600)]
    port: u16,

    /// The multicast interface's address; a loopback address.
    #[arg(long, default_value = "127.0.0.1")]
    iface: Ipv4Addr,

    /// Receiving members (besides the sender).
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u32).range(1..=16))]
    receivers: u32,

    /// Messages the sender sends.
    #[arg(long, default_value_t = 20_000)]
    count: u64,

    /// Bytes of each message's text (padded).
    #[arg(long, default_value_t = 40, value_parser = clap::value_parser!(u16).range(32..=1000))]
    size: u16,

    /// Offered rate, messages per second; 0: as fast as the sender's session
    /// takes them.
    #[arg(long, default_value_t = 0)]
    rate: u32,

    /// The sender session's pace, messages per second (and its burst): the
    /// protocol's default is SEND_RATE; 0 keeps it.
    #[arg(long, default_value_t = 0)]
    pace: u32,

    /// Drop this percentage of the datagrams each receiving member reads,
    /// independently per member.
    #[arg(long, default_value_t = 0.0)]
    drop: f64,

    /// Give up waiting for delivery after this many seconds.
    #[arg(long, default_value = "120", value_parser = parse_seconds)]
    timeout: Duration,

    /// Instead of messages: run quiet members for this many seconds and
    /// report the bytes each sends per second.
    #[arg(long, value_parser = parse_seconds)]
    quiet: Option<Duration>,

    /// A private room: frames sealed under a benchmark key, no plain copies.
    #[arg(long)]
    private: bool,

    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
}

/// What one member saw.
#[derive(Default)]
struct Tally {
    delivered: u64,
    duplicates: u64,
    out_of_order: u64,
    lost: u64,
    dropped: u64,
    hist: Histogram,
    repaired: Histogram,
    naks: u64,
    repairs: u64,
    heartbeats: u64,
    heartbeat_bytes: u64,
    bytes_sent: u64,
    /// Bytes on the wire of the first message beyond its text (the frame
    /// and the plain copy), sender only.
    overhead: Option<(usize, usize)>,
}

/// splitmix64, for the per-member drop decision.
struct Rng(u64);

impl Rng {
    fn unit(&mut self) -> f64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        ((z ^ (z >> 31)) >> 11) as f64 / (1u64 << 53) as f64
    }
}

struct Member {
    index: usize,
    session: Box<Session>,
    plain: UdpSocket,
    control: UdpSocket,
    send: UdpSocket,
    dest_plain: SocketAddrV4,
    dest_control: SocketAddrV4,
    base: Instant,
    drop: f64,
    rng: Rng,
    tally: Tally,
    /// Per receiver: messages whose first transmission it dropped.
    missed: BTreeSet<u64>,
    seen: BTreeSet<u64>,
    next: u64,
    /// When each message was first transmitted (ns since `base`, 0: not
    /// yet), written by the sender.
    sent_at: Arc<Vec<AtomicU64>>,
    /// A private room's session: its frames are sealed.
    private: bool,
    /// Messages the sender's session had sent at the last drain (private).
    counted: u64,
    /// The text's size, for the bytes beyond it (private).
    size: usize,
}

impl Member {
    fn now(&self) -> roomcast_core::Instant {
        roomcast_core::Instant::from_micros(self.base.elapsed().as_micros() as u64)
    }

    /// Sends what the session put out and takes its events.
    fn drain(&mut self) -> io::Result<()> {
        // A private session's frames are sealed: the messages it sent since
        // the last drain go out in this one.
        let fresh = if self.private && self.index == 0 {
            let sent = self.session.stats().messages_sent;
            let at = self.base.elapsed().as_nanos() as u64;
            for seq in self.counted..sent {
                if let Some(a) = self.sent_at.get(seq as usize) {
                    a.store(at, Ordering::SeqCst);
                }
            }
            let fresh = self.counted == 0 && sent > 0;
            self.counted = sent;
            fresh
        } else {
            false
        };
        let mut first = fresh;
        while let Some(t) = self.session.poll_transmit() {
            // The first message's sealed frame: the first control datagram
            // after it was sent (no heartbeat is queued before it).
            if first && t.channel == Channel::Control && self.tally.overhead.is_none() {
                self.tally.overhead = Some((t.data.len().saturating_sub(self.size), 0));
                first = false;
            }
            let dest = match t.channel {
                Channel::Plain => self.dest_plain,
                Channel::Control => self.dest_control,
            };
            if self.index == 0
                && t.channel == Channel::Control
                && let Ok((_, Frame::Data(d))) = decode(&t.data)
                && d.flags & FLAG_REPAIR == 0
            {
                if let Some(at) = self.sent_at.get((d.seq as usize).wrapping_sub(1)) {
                    at.store(self.base.elapsed().as_nanos() as u64, Ordering::SeqCst);
                }
                let plain = self.tally.overhead.map_or(0, |o| o.1);
                self.tally.overhead = Some((t.data.len() - d.text.len(), plain));
            }
            if self.index == 0 && t.channel == Channel::Plain {
                let head = t
                    .data
                    .windows(2)
                    .position(|w| w == b": ")
                    .map_or(0, |p| p + 2);
                let frame = self.tally.overhead.map_or(0, |o| o.0);
                self.tally.overhead = Some((frame, head));
            }
            match self.send.send_to(&t.data, dest) {
                Ok(_) => {}
                // As the client: a frame that does not go out is repaired.
                Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                Err(e) => return Err(e),
            }
        }
        while let Some(e) = self.session.poll_event() {
            match e {
                Event::Message { text, .. } => {
                    let now = self.base.elapsed().as_nanos() as u64;
                    let mut words = text.split(' ');
                    let seq: u64 = words.next().and_then(|w| w.parse().ok()).unwrap_or(0);
                    let ts: u64 = words.next().and_then(|w| w.parse().ok()).unwrap_or(0);
                    let first = self
                        .sent_at
                        .get(seq as usize)
                        .map_or(0, |a| a.load(Ordering::SeqCst));
                    let ts = if first > 0 { first } else { ts };
                    if !self.seen.insert(seq) {
                        self.tally.duplicates += 1;
                        continue;
                    }
                    if seq != self.next {
                        self.tally.out_of_order += 1;
                    }
                    self.next = seq + 1;
                    self.tally.delivered += 1;
                    let delay = now.saturating_sub(ts);
                    self.tally.hist.record(delay);
                    if self.missed.remove(&seq) {
                        self.tally.repaired.record(delay);
                    }
                }
                Event::Lost { count, .. } => self.tally.lost += u64::from(count),
                _ => {}
            }
        }
        Ok(())
    }

    /// Reads what waits on one socket, dropping a share.
    fn read(&mut self, channel: Channel, buf: &mut [u8]) -> io::Result<()> {
        for _ in 0..DATAGRAMS_PER_TURN {
            let socket = match channel {
                Channel::Plain => &self.plain,
                Channel::Control => &self.control,
            };
            let (n, from) = match socket.recv_from(buf) {
                Ok(x) => x,
                Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            let data = &buf[..n];
            if self.index != 0 && self.drop > 0.0 && self.rng.unit() * 100.0 < self.drop {
                self.tally.dropped += 1;
                if channel == Channel::Control
                    && let Ok((_, Frame::Data(d))) = decode(data)
                    && d.flags & FLAG_REPAIR == 0
                {
                    self.missed.insert(u64::from(d.seq) - 1);
                }
                continue;
            }
            let now = self.now();
            self.session.handle_datagram(now, from, channel, data);
            self.drain()?;
        }
        Ok(())
    }
}

/// Runs the benchmark.
pub fn run(args: ReliableArgs) -> Result<(), String> {
    only_loopback()?;
    if !args.iface.is_loopback() || args.group.octets()[0] != 239 {
        return Err(format!(
            "--iface {} must be a loopback address and --group {} in 239.0.0.0/8",
            args.iface, args.group
        ));
    }
    let members = args.receivers as usize + 1;
    let count = if args.quiet.is_some() { 0 } else { args.count };
    let base = Instant::now();
    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicU64::new(0));
    let ready = Arc::new(Barrier::new(members + 1));
    let control_port = args
        .port
        .checked_add(1)
        .ok_or("--port must leave room for the control port")?;
    let sent_at: Arc<Vec<AtomicU64>> = Arc::new((0..count).map(|_| AtomicU64::new(0)).collect());
    // A private room's key: a fixed benchmark key (nothing here is secret);
    // the wall clock makes each run's sealers new.
    let keys = RoomKeys::derive(&RoomSecret([0x42; SECRET_BYTES]));
    let wall_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    let mut handles = Vec::new();
    for index in 0..members {
        let open = |port| {
            client_recv_socket(args.group, port, args.iface).and_then(|s| {
                socket2::SockRef::from(&s).set_recv_buffer_size(RECV_BUFFER)?;
                Ok(s)
            })
        };
        let plain = open(args.port).map_err(|e| format!("member {index}: {e}"))?;
        let control = open(control_port).map_err(|e| format!("member {index}: {e}"))?;
        let send = client_send_socket(args.iface).map_err(|e| format!("member {index}: {e}"))?;
        let name = format!("m{index}");
        let now = roomcast_core::Instant::from_micros(base.elapsed().as_micros() as u64);
        let id = MemberId(0x5EED_0000 + index as u64);
        let made = if args.private {
            let mut sealer = [0u8; 16];
            sealer[..8].copy_from_slice(&(index as u64 + 1).to_be_bytes());
            sealer[8..].copy_from_slice(&wall_ms.to_be_bytes());
            let sealing = Sealing::new(&keys.frame, sealer, now, wall_ms);
            Session::new_private(now, id, &name, index as u64 + 1, sealing)
        } else {
            Session::new(now, id, &name, index as u64 + 1)
        };
        let mut session = Box::new(made.map_err(|e| e.to_string())?);
        if args.pace > 0 {
            session.set_pace(args.pace, args.pace);
        }
        let mut member = Member {
            index,
            session,
            plain,
            control,
            send,
            dest_plain: SocketAddrV4::new(args.group, args.port),
            dest_control: SocketAddrV4::new(args.group, control_port),
            base,
            drop: args.drop,
            rng: Rng(0xD209 + index as u64),
            tally: Tally::default(),
            missed: BTreeSet::new(),
            seen: BTreeSet::new(),
            next: 0,
            sent_at: sent_at.clone(),
            private: args.private,
            counted: 0,
            size: args.size as usize,
        };
        let (stop, done, ready) = (stop.clone(), done.clone(), ready.clone());
        let (size, rate) = (args.size as usize, args.rate);
        handles.push(
            thread::Builder::new()
                .name(format!("member-{index}"))
                .spawn(move || -> io::Result<Tally> {
                    ready.wait();
                    member_loop(&mut member, count, size, rate, &stop, &done)?;
                    let st = member.session.stats();
                    let t = &mut member.tally;
                    t.naks = st.naks_sent;
                    t.repairs = st.repairs_sent;
                    t.heartbeats = st.heartbeats_sent;
                    t.heartbeat_bytes = st.heartbeat_bytes;
                    t.bytes_sent = st.bytes_sent;
                    Ok(member.tally)
                })
                .map_err(|e| format!("cannot start a member thread: {e}"))?,
        );
    }
    ready.wait();
    let start = Instant::now();
    let limit = args.quiet.unwrap_or(args.timeout);
    while start.elapsed() < limit {
        if args.quiet.is_none() && done.load(Ordering::SeqCst) >= args.receivers.into() {
            break;
        }
        thread::sleep(Duration::from_millis(5));
    }
    let elapsed = start.elapsed();
    stop.store(true, Ordering::SeqCst);
    let mut tallies = Vec::new();
    for h in handles {
        tallies.push(
            h.join()
                .map_err(|_| "a member thread panicked".to_string())?
                .map_err(|e| format!("a member failed: {e}"))?,
        );
    }
    report(&args, &tallies, elapsed, count);
    Ok(())
}

fn member_loop(
    m: &mut Member,
    count: u64,
    size: usize,
    rate: u32,
    stop: &AtomicBool,
    done: &AtomicU64,
) -> io::Result<()> {
    let poller = Poller::new()?;
    // SAFETY: deleted below, before the sockets drop.
    unsafe {
        poller.add_with_mode(&m.plain, Interest::readable(0), PollMode::Level)?;
        poller.add_with_mode(&m.control, Interest::readable(1), PollMode::Level)?;
    }
    let mut events = Events::new();
    let mut buf = vec![0u8; 2048];
    let mut sent = 0u64;
    let mut finished = false;
    let start = Instant::now();
    let result = loop {
        if stop.load(Ordering::SeqCst) {
            break Ok(());
        }
        // The sender: as many as the session takes (and the rate allows).
        if m.index == 0 {
            let due = if rate == 0 {
                count
            } else {
                ((start.elapsed().as_secs_f64() * f64::from(rate)) as u64 + 1).min(count)
            };
            while sent < due && m.session.can_send() {
                let ts = m.base.elapsed().as_nanos() as u64;
                let mut text = format!("{sent} {ts} ");
                while text.len() < size {
                    text.push('x');
                }
                let now = m.now();
                if m.session.handle_send(now, &text).is_err() {
                    break;
                }
                sent += 1;
                m.drain()?;
            }
        } else if !finished && count > 0 && m.tally.delivered + m.tally.lost >= count {
            finished = true;
            done.fetch_add(1, Ordering::SeqCst);
        }
        let now = m.now();
        if m.session.poll_timeout().is_some_and(|at| at <= now) {
            m.session.handle_timeout(now);
            m.drain()?;
        }
        let wait = m.session.poll_timeout().map_or(MAX_WAIT, |at| {
            Duration::from_micros(at.as_micros().saturating_sub(m.now().as_micros()))
        });
        let wait = if m.index == 0 && rate > 0 && sent < count {
            wait.min(Duration::from_micros(100))
        } else {
            wait.min(MAX_WAIT)
        };
        events.clear();
        match poller.wait(&mut events, Some(wait)) {
            Ok(_) => {}
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => break Err(e),
        }
        let keys: Vec<usize> = events.iter().map(|e| e.key).collect();
        let mut outcome = Ok(());
        for key in keys {
            let channel = if key == 0 {
                Channel::Plain
            } else {
                Channel::Control
            };
            outcome = m.read(channel, &mut buf);
            if outcome.is_err() {
                break;
            }
        }
        if let Err(e) = outcome {
            break Err(e);
        }
    };
    let _ = poller.delete(&m.plain);
    let _ = poller.delete(&m.control);
    result
}

fn report(args: &ReliableArgs, tallies: &[Tally], elapsed: Duration, count: u64) {
    let receivers = &tallies[1..];
    let sender = &tallies[0];
    let secs = elapsed.as_secs_f64().max(1e-9);
    let (frame_extra, plain_extra) = sender.overhead.unwrap_or((0, 0));
    if let Some(quiet) = args.quiet {
        let per_member: Vec<f64> = tallies
            .iter()
            .map(|t| t.bytes_sent as f64 / quiet.as_secs_f64())
            .collect();
        let mean = per_member.iter().sum::<f64>() / per_member.len() as f64;
        let hb: u64 = tallies.iter().map(|t| t.heartbeats).sum();
        let hb_bytes: u64 = tallies.iter().map(|t| t.heartbeat_bytes).sum();
        if args.json {
            let j = Json::default()
                .str("mode", "reliable-quiet")
                .int("members", tallies.len() as u64)
                .num("seconds", quiet.as_secs_f64())
                .num("bytes_per_member_per_s", mean)
                .int("heartbeats", hb)
                .num("heartbeat_bytes_mean", hb_bytes as f64 / hb.max(1) as f64);
            println!("{}", j.finish());
        } else {
            println!(
                "roomcast bench reliable --quiet: {} members for {:.0} s: {:.1} bytes/s sent per \
                 member ({hb} heartbeats, {:.0} bytes each)",
                tallies.len(),
                quiet.as_secs_f64(),
                mean,
                hb_bytes as f64 / hb.max(1) as f64
            );
        }
        return;
    }
    let delivered: u64 = receivers.iter().map(|t| t.delivered).sum();
    let expected = count * receivers.len() as u64;
    let lost: u64 = receivers.iter().map(|t| t.lost).sum();
    let dups: u64 = receivers.iter().map(|t| t.duplicates).sum();
    let ooo: u64 = receivers.iter().map(|t| t.out_of_order).sum();
    let dropped: u64 = receivers.iter().map(|t| t.dropped).sum();
    let naks: u64 = tallies.iter().map(|t| t.naks).sum();
    let repairs: u64 = tallies.iter().map(|t| t.repairs).sum();
    let mut hist = Histogram::new();
    let mut repaired = Histogram::new();
    for t in receivers {
        hist.merge(&t.hist);
        repaired.merge(&t.repaired);
    }
    let rate = delivered as f64 / receivers.len() as f64 / secs;
    if args.json {
        let j = Json::default()
            .str("mode", "reliable")
            .str("room", if args.private { "private" } else { "open" })
            .int("receivers", receivers.len() as u64)
            .int("count", count)
            .int("size", args.size.into())
            .num("drop_pct", args.drop)
            .int("pace", args.pace.into())
            .int("offered_rate", args.rate.into())
            .num("seconds", secs)
            .num("delivered_per_s", rate.round())
            .int("delivered", delivered)
            .int("expected", expected)
            .int("reported_lost", lost)
            .int("duplicates", dups)
            .int("out_of_order", ooo)
            .int("dropped", dropped)
            .int("naks", naks)
            .int("repairs", repairs)
            .int("repaired", repaired.total())
            .num("p50_us", hist.quantile(0.5) as f64 / 1e3)
            .num("p99_us", hist.quantile(0.99) as f64 / 1e3)
            .num("repaired_p50_us", repaired.quantile(0.5) as f64 / 1e3)
            .num("repaired_p99_us", repaired.quantile(0.99) as f64 / 1e3)
            .int("frame_bytes_beyond_text", frame_extra as u64)
            .int("plain_bytes_beyond_text", plain_extra as u64);
        println!("{}", j.finish());
    } else {
        println!(
            "roomcast bench reliable: {} room, 1 sender, {} receivers, {count} messages of {} \
             bytes, drop {} %, pace {}",
            if args.private { "private" } else { "open" },
            receivers.len(),
            args.size,
            args.drop,
            if args.pace == 0 {
                "SEND_RATE".to_string()
            } else {
                format!("{}/s", args.pace)
            }
        );
        println!(
            "  delivered {delivered} of {expected} in {secs:.2} s ({rate:.0} messages/s per \
             receiver); reported lost {lost}; duplicates {dups}; out of order {ooo}"
        );
        println!(
            "  dropped {dropped} datagrams; requests {naks}, repairs {repairs}; delay p50 {} \
             p99 {}; repaired messages {} p50 {} p99 {} max {}",
            human_ns(hist.quantile(0.5)),
            human_ns(hist.quantile(0.99)),
            repaired.total(),
            human_ns(repaired.quantile(0.5)),
            human_ns(repaired.quantile(0.99)),
            human_ns(repaired.quantile(1.0)),
        );
        println!(
            "  bytes beyond the text: {frame_extra} in the frame, {plain_extra} in the plain copy"
        );
    }
}
