//! `cargo bench`: every protocol path, the primitives it is built from, and the summary table of
//! path ÷ floor (README "Benchmarks"). One binary, so that the floor is measured in the same run.
//!
//! `cargo bench -- e2e/` runs part of it; the summary then shows the paths measured by this run
//! whose primitives were measured too (`cargo bench -- 'primitives|e2e/'`).

// A bench fixture that fails is a broken bench, not a result: it stops with a message.
#![allow(clippy::panic, clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod attack;
mod channel;
mod codec;
mod e2e;
mod fixtures;
mod floor;
mod primitives;
mod relay;

use std::time::{Duration, SystemTime};

use criterion::Criterion;

fn main() {
    let started = SystemTime::now();
    let dir = floor::criterion_dir();
    let mut c = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .sample_size(50)
        .output_directory(&dir)
        .configure_from_args();
    let [first, middle, last] = primitives::GROUPS;
    primitives::bench(&mut c, first);
    channel::bench(&mut c);
    e2e::bench(&mut c);
    attack::bench(&mut c);
    primitives::bench(&mut c, middle);
    relay::bench(&mut c);
    codec::bench(&mut c);
    primitives::bench(&mut c, last);
    c.final_summary();
    floor::report(&dir, started);
}
