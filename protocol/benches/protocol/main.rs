//! `cargo bench`: every protocol path, the primitives it is built from, and the summary table of
//! path ÷ floor (README "Benchmarks"). One binary, so that the floor is measured in the same run.
//!
//! `cargo bench -- e2e/` runs part of it; the summary then shows the paths measured by this run
//! whose primitives were measured too (`cargo bench -- 'primitives|e2e/'`).
//!
//! `cargo bench --features backend-aws-lc` runs the paths on the aws-lc backend, measures both
//! backends' primitives, and prices the paths at the aws-lc floor; its criterion output and
//! summary go to a directory of their own (`floor::criterion_dir`). `scripts/bench-backends`
//! runs both builds and prints both summaries.

// A bench fixture that fails is a broken bench, not a result: it stops with a message.
#![allow(clippy::panic, clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod attack;
mod channel;
mod codec;
mod e2e;
mod fixtures;
mod floor;
mod primitives;
#[cfg(feature = "backend-aws-lc")]
mod primitives_aws_lc;
mod relay;

use std::time::{Duration, SystemTime};

use criterion::Criterion;

fn main() {
    // `scripts/count-instructions`: the summary from instruction counts it wrote, no benches run.
    if let Some(counts) = std::env::var_os("BENCH_INSTRUCTIONS") {
        floor::report_instructions(std::path::Path::new(&counts));
        return;
    }
    let started = SystemTime::now();
    let dir = floor::criterion_dir();
    let mut c = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .sample_size(50)
        .output_directory(&dir)
        .configure_from_args();
    // `BENCH_GROUP=relay`: only that group is set up and run (`scripts/count-instructions`, which
    // runs one bench per process under valgrind, where the other groups' fixtures — sessions,
    // handshakes, 256 peers — would cost more than the bench itself).
    let only = std::env::var("BENCH_GROUP").ok();
    let wanted = |group: &str| only.as_deref().is_none_or(|only| only == group);
    // Both backends' primitives in every run of a `backend-aws-lc` build, so the summary compares
    // them; the paths run on the backend compiled in, and are priced at its floor.
    let primitives = |c: &mut Criterion, at: usize| {
        if wanted(primitives::GROUPS[at]) {
            primitives::bench(c, primitives::GROUPS[at]);
        }
        #[cfg(feature = "backend-aws-lc")]
        if wanted(primitives_aws_lc::GROUPS[at]) {
            primitives_aws_lc::bench(c, primitives_aws_lc::GROUPS[at]);
        }
    };
    primitives(&mut c, 0);
    #[cfg(feature = "backend-aws-lc")]
    if wanted(primitives_aws_lc::ALTERNATIVES) {
        primitives_aws_lc::bench_alternatives(&mut c);
    }
    let group = |c: &mut Criterion, name: &str, bench: fn(&mut Criterion)| {
        if wanted(name) {
            bench(c);
        }
    };
    group(&mut c, channel::GROUP, channel::bench);
    group(&mut c, e2e::GROUP, e2e::bench);
    group(&mut c, attack::GROUP, attack::bench);
    primitives(&mut c, 1);
    group(&mut c, relay::GROUP, relay::bench);
    group(&mut c, codec::GROUP, codec::bench);
    primitives(&mut c, 2);
    c.final_summary();
    floor::report(&dir, started);
    // For `scripts/count-instructions`, which divides what callgrind counted by this.
    if std::env::var_os("BENCH_REPORT_RUNS").is_some() {
        eprintln!("measured runs: {}", fixtures::measured_runs());
    }
}
