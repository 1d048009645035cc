//! Writes the seed corpus, `fuzz/corpus/<target>/seed-*`, from `e2e_protocol::fuzzing::seeds`.
//!
//! Run from anywhere: `cargo run --manifest-path fuzz/Cargo.toml --example gen_corpus`. Old `seed-*`
//! files are replaced; every other corpus file (crashes kept as regressions) is left alone. Each seed
//! is run through its target first: a seed that fails is reported, and nothing is written.

use std::fs;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::PathBuf;
use std::process::ExitCode;

use e2e_protocol::fuzzing::{TARGETS, seeds::seeds};

fn main() -> std::io::Result<ExitCode> {
    let seeds = seeds();
    let mut failed = false;
    for seed in &seeds {
        let Some((_, run)) = TARGETS.iter().find(|(name, _)| *name == seed.target) else {
            continue;
        };
        if catch_unwind(AssertUnwindSafe(|| run(&seed.bytes))).is_err() {
            eprintln!("seed {}/{} fails its target", seed.target, seed.name);
            failed = true;
        }
    }
    if failed {
        return Ok(ExitCode::FAILURE);
    }
    let corpus = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("corpus");
    for (target, _) in TARGETS {
        let dir = corpus.join(target);
        fs::create_dir_all(&dir)?;
        for entry in fs::read_dir(&dir)? {
            let path = entry?.path();
            if path.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with("seed-")) {
                fs::remove_file(path)?;
            }
        }
    }
    for seed in &seeds {
        fs::write(corpus.join(seed.target).join(&seed.name), &seed.bytes)?;
    }
    println!("wrote {} seeds under {}", seeds.len(), corpus.display());
    Ok(ExitCode::SUCCESS)
}
