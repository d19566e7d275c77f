//! The simulation as tests: a deterministic sweep of seeds (CI), random
//! seeds through proptest, and the benchmark figures (ignored).
//!
//! - `cargo test -p roomcast-core --lib sim::` runs [`SIM_SEEDS`] seeds;
//! - `SIM_SEEDS=5000 cargo test --release -p roomcast-core --lib sim::` runs
//!   more;
//! - `SEED=n cargo test -p roomcast-core --lib sim::tests::swarm -- --nocapture`
//!   replays one seed and prints its counters.

use std::env;
use std::println;
use std::vec;

use proptest::prelude::*;

use super::{Churn, Scenario, Sim, run_seed};

/// Seeds the default run checks.
const SIM_SEEDS: u64 = 60;

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
    for seed in 0..n {
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
        blackout: vec![(0, 2)],
        fault_end: 3_000_000,
        end: 80_000_000,
    };
    let r = Sim::new(sc).run().expect("a clean run");
    assert_eq!(r.delivered, 2);
    assert_eq!(
        r.reported_lost, 2,
        "each of n1 and n2 reports the second lost"
    );
}
