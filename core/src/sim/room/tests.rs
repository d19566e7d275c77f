//! The simulation as tests: a deterministic sweep of seeds (CI), random
//! seeds through proptest, and the benchmark figures (ignored).
//!
//! - `cargo test -p roomcast-core --lib sim::room::` runs [`SIM_SEEDS`] seeds;
//! - `SIM_SEEDS=5000 cargo test --release -p roomcast-core --lib sim::room::` runs
//!   more;
//! - `SEED=n cargo test -p roomcast-core --lib sim::room::tests::swarm -- --nocapture`
//!   replays one seed and prints its counters.

use std::env;
use std::println;
use std::vec;
use std::vec::Vec;

use proptest::prelude::*;

use super::{Churn, SEC, Scenario, Sim, run_seed};

/// Seeds the default run checks (about 10 s in a debug build).
const SIM_SEEDS: u64 = 100;

/// Seeds that once found a bug (or that a mutation of the session fails),
/// always run: a plain copy before any frame of its member (223), a plain
/// copy duplicated by the network (553), an unrecoverable message of a
/// vanished sender that must be reported lost (245).
const REGRESSION_SEEDS: [u64; 3] = [223, 553, 245];

fn env_u64(name: &str) -> Option<u64> {
    env::var(name).ok().and_then(|v| v.parse().ok())
}

#[test]
fn swarm() {
    if let Some(seed) = env_u64("SEED") {
        println!("seed {seed}: {:#?}", Scenario::from_seed(seed));
        match run_seed(seed) {
            Ok(report) => println!("{report:#?}"),
            Err(f) => panic!("{f}"),
        }
        return;
    }
    let n = env_u64("SIM_SEEDS").unwrap_or(SIM_SEEDS);
    for seed in REGRESSION_SEEDS.into_iter().chain(0..n) {
        if let Err(f) = run_seed(seed) {
            panic!("{f}");
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 8, failure_persistence: None, ..ProptestConfig::default() })]
    #[test]
    fn swarm_random_seeds(seed in any::<u64>()) {
        if let Err(f) = run_seed(seed) {
            panic!("{f}");
        }
    }
}

/// Seeds of each burst test in the default run; `BURST_SEEDS=n` runs more,
/// `SEED=n` replays one.
const BURST_SEEDS: u64 = 2;

/// Messages member 0 sends at once in the burst tests.
const BURST: usize = 1000;

/// One member pastes [`BURST`] lines at once into a room of 4 with `loss`
/// (and bursts of loss): every other member gets every one, once, in
/// order, and nothing is reported lost.
fn burst_case(name: &str, loss: f64, bursty: bool) {
    let seeds: Vec<u64> = match env_u64("SEED") {
        Some(seed) => vec![seed],
        None => (0..env_u64("BURST_SEEDS").unwrap_or(BURST_SEEDS)).collect(),
    };
    for seed in seeds {
        let sc = Scenario::burst(seed, 4, BURST, loss, bursty);
        let r = Sim::new(sc).run().unwrap_or_else(|f| {
            panic!(
                "{f}replay this one: SEED={seed} cargo test -p roomcast-core --lib \
                 sim::room::tests::{name} -- --nocapture"
            )
        });
        let fail = |what: &str| {
            panic!(
                "seed {seed}: {what}: {} sent, {} delivered, {} reported lost, {} receiver \
                 losses, {} requests, {} repairs\nreplay: SEED={seed} cargo test -p roomcast-core \
                 --lib sim::room::tests::{name} -- --nocapture",
                r.messages, r.delivered, r.reported_lost, r.receiver_losses, r.naks, r.repairs
            )
        };
        if r.messages != BURST as u64 {
            fail("not every line was sent");
        }
        if r.reported_lost != 0 {
            fail("a loss was reported");
        }
        if r.delivered != 3 * BURST as u64 {
            fail("not every member got every message");
        }
        if r.receiver_losses < BURST as u64 / 10 {
            fail("the network hardly lost anything");
        }
        if env_u64("SEED").is_some() {
            println!("{r:#?}");
        }
    }
}

#[test]
fn burst_under_independent_loss() {
    burst_case("burst_under_independent_loss", 0.1, false);
}

#[test]
fn burst_under_bursty_loss() {
    burst_case("burst_under_bursty_loss", 0.1, true);
}

#[test]
fn same_seed_same_run() {
    let a = run_seed(7).map_err(|f| f.what);
    let b = run_seed(7).map_err(|f| f.what);
    assert_eq!(a, b);
}

#[test]
fn lossless_room_needs_no_repair() {
    let mut sc = Scenario::bench(1, 5, 40, 0.0);
    sc.faults.jitter_us = 0;
    let r = Sim::new(sc).run().expect("a clean run");
    assert_eq!(r.messages, 40);
    assert_eq!(r.delivered, 40 * 4);
    assert_eq!((r.naks, r.repairs, r.reported_lost), (0, 0, 0));
}

#[test]
fn unrecoverable_message_is_reported_lost() {
    // n0 sends two messages; every copy of the second is lost, and n0
    // vanishes after its heartbeat told the others about it.
    let sc = Scenario {
        seed: 3,
        joins: vec![0; 3],
        churn: vec![(2_000_000 + 260_000, 0, Churn::Vanish)],
        messages: vec![(1_000_000, 0, 5), (2_000_000, 0, 5)],
        faults: super::Faults::none(),
        partitions: vec![],
        plain: vec![false; 3],
        blackout: vec![(0, 2)],
        fault_end: 3_000_000,
        end: 80_000_000,
        private: None,
    };
    let r = Sim::new(sc).run().expect("a clean run");
    assert_eq!(r.delivered, 2);
    assert_eq!(
        r.reported_lost, 2,
        "each of n1 and n2 reports the second lost"
    );
}

/// The simulation figures of BENCHMARKS.md:
/// `cargo test --release -p roomcast-core --lib sim::room::tests::bench -- --ignored --nocapture`
#[test]
#[ignore = "a benchmark: prints figures, run by hand"]
fn bench() {
    fn pct(v: &mut [u64], p: f64) -> f64 {
        v.sort_unstable();
        if v.is_empty() {
            return 0.0;
        }
        let i = ((v.len() - 1) as f64 * p).round() as usize;
        v[i] as f64 / 1000.0
    }
    let (n, count) = (50, 400);
    for loss in [0.01, 0.1, 0.2] {
        let mut total = super::Report::default();
        for seed in 0..3 {
            let r = Sim::new(Scenario::bench(seed, n, count, loss))
                .run()
                .unwrap_or_else(|f| panic!("{f}"));
            total.messages += r.messages;
            total.receiver_losses += r.receiver_losses;
            total.messages_lost_somewhere += r.messages_lost_somewhere;
            total.naks += r.naks;
            total.repairs += r.repairs;
            total.delivered += r.delivered;
            total.reported_lost += r.reported_lost;
            total.repair_delays.extend(r.repair_delays);
            total.direct_delays.extend(r.direct_delays);
            total.data_frame_bytes += r.data_frame_bytes;
            total.data_text_bytes += r.data_text_bytes;
        }
        let t = &mut total;
        let lost = t.messages_lost_somewhere.max(1) as f64;
        println!(
            "{n} members, {:.0} % loss, {} messages (3 seeds): {} receiver losses, \
             {} messages lost somewhere; requests {} ({:.2} per message lost somewhere, \
             {:.2} per receiver loss); repairs {} ({:.2} / {:.2}); delivered {} of {}, \
             reported lost {}; delay ms direct p50 {:.1} p99 {:.1}, repaired p50 {:.1} \
             p99 {:.1} max {:.1}",
            loss * 100.0,
            t.messages,
            t.receiver_losses,
            t.messages_lost_somewhere,
            t.naks,
            t.naks as f64 / lost,
            t.naks as f64 / t.receiver_losses.max(1) as f64,
            t.repairs,
            t.repairs as f64 / lost,
            t.repairs as f64 / t.receiver_losses.max(1) as f64,
            t.delivered,
            t.messages * (n as u64 - 1),
            t.reported_lost,
            pct(&mut t.direct_delays, 0.5),
            pct(&mut t.direct_delays, 0.99),
            pct(&mut t.repair_delays, 0.5),
            pct(&mut t.repair_delays, 0.99),
            pct(&mut t.repair_delays, 1.0),
        );
        println!(
            "  bytes per message: data frame {:.1} over the text, plain copy 2 + name",
            (t.data_frame_bytes - t.data_text_bytes) as f64 / t.messages as f64
        );
    }
    // Quiet members: nobody speaks for 120 s.
    for (n, spoke) in [(2, 0), (50, 0), (50, 50)] {
        let mut sc = Scenario::bench(9, n, spoke, 0.0);
        // Everybody speaks once in the first 2 s, then silence.
        for (k, m) in sc.messages.iter_mut().enumerate() {
            *m = (1_000_000, k % n, 40);
        }
        sc.end = 122 * SEC;
        sc.fault_end = 0;
        let r = Sim::new(sc).run().unwrap_or_else(|f| panic!("{f}"));
        println!(
            "quiet room of {n} ({spoke} spoke once at 1 s): {:.1} heartbeat bytes/s per member \
             ({:.2} heartbeats/s, {:.0} bytes each)",
            r.heartbeat_bytes as f64 / n as f64 / 122.0,
            r.heartbeats as f64 / n as f64 / 122.0,
            r.heartbeat_bytes as f64 / r.heartbeats.max(1) as f64,
        );
    }
}

#[test]
fn plain_clients_and_roomcast_members_hear_each_other() {
    let mut sc = Scenario::bench(4, 4, 30, 0.0);
    sc.faults.jitter_us = 0;
    sc.plain[3] = true;
    let r = Sim::new(sc.clone()).run().unwrap_or_else(|f| panic!("{f}"));
    let from_plain = sc.messages.iter().filter(|m| m.1 == 3).count() as u64;
    assert!(from_plain > 0);
    assert_eq!(r.plain_sent, from_plain);
    assert_eq!(
        r.plain_shown,
        3 * from_plain,
        "each of 3 members shows each once"
    );
    assert_eq!(
        r.plain_copies_received, r.messages,
        "one plain copy per message"
    );
    assert_eq!(r.delivered, 2 * r.messages, "reliable among the 3 members");
}

#[test]
fn a_late_joiner_gets_the_history_of_a_member_who_left() {
    // n0 says three things and leaves; n2 comes in later and learns of
    // them from n1's heartbeat digest, and n1 serves them as history.
    let sc = Scenario {
        seed: 5,
        joins: vec![0, 0, 10 * SEC],
        churn: vec![(3 * SEC, 0, Churn::Leave)],
        messages: vec![(SEC, 0, 5), (SEC + 1, 0, 5), (2 * SEC, 0, 5)],
        faults: super::Faults::none(),
        partitions: vec![],
        plain: vec![false; 3],
        blackout: vec![],
        fault_end: 0,
        end: 40 * SEC,
        private: None,
    };
    let r = Sim::new(sc).run().unwrap_or_else(|f| panic!("{f}"));
    assert_eq!(r.delivered, 3, "n1 got them live");
    assert_eq!(r.history, 3, "n2 got them as history");
    assert_eq!(r.reported_lost, 0);
}

#[test]
fn private_rooms_keep_every_invariant_and_refuse_replays() {
    // A share of the swarm's seeds is private; of those, most have an
    // attacker re-sending captured datagrams.
    let private: Vec<u64> = (0..40)
        .filter(|&s| Scenario::from_seed(s).private.is_some())
        .collect();
    assert!(private.len() >= 5, "{private:?}");
    let mut refused = 0;
    for &seed in &private {
        let r = run_seed(seed).unwrap_or_else(|f| panic!("{f}"));
        assert!(
            r.delivered + r.history > 0 || r.messages == 0,
            "seed {seed}"
        );
        refused += r.replays_refused;
    }
    assert!(refused > 0, "replays were sent and refused");
    // A private seed replays exactly, attacker included.
    let seed = private[0];
    assert_eq!(
        run_seed(seed).map_err(|f| f.what),
        run_seed(seed).map_err(|f| f.what)
    );
}

#[test]
fn a_private_room_does_not_show_plain_clients() {
    let mut sc = Scenario::bench(4, 4, 30, 0.0);
    sc.faults.jitter_us = 0;
    sc.plain[3] = true;
    sc.private = Some(super::Private {
        clock_ms: vec![-50_000, 0, 50_000, 0],
        replays: (0..50).map(|k| 3 * SEC + k * SEC).collect(),
    });
    let r = Sim::new(sc.clone()).run().unwrap_or_else(|f| panic!("{f}"));
    let from_plain = sc.messages.iter().filter(|m| m.1 == 3).count() as u64;
    assert!(from_plain > 0);
    assert_eq!(r.plain_shown, 0);
    assert_eq!(r.plain_refused, 3 * from_plain, "each member refuses each");
    assert_eq!(r.plain_copies_received, 0, "no plain copies");
    assert_eq!(r.delivered, 2 * r.messages, "reliable among the 3 members");
    assert!(r.replays_sent > 0);
    assert_eq!(
        r.replays_refused + r.stale,
        r.replays_sent,
        "every replay of a lossless run was seen before: refused"
    );
}
