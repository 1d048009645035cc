//! The floor of each protocol path — the primitive operations SPEC.md says it must do, each priced
//! at its median from this run (the lowest of three measurements: first, middle, last) — and the
//! summary table: path, median, floor, ratio, target.
//!
//! Counting conventions (stated in the README with the table):
//! * `keygen` draws a key pair (one fixed-base X25519), `dh` is one X25519 with the contributory
//!   check, `verify` decodes an Ed25519 key and verifies strictly, `hkdf` is HKDF-SHA-256 to 64
//!   bytes (3 HMACs: every HKDF of the protocol has that shape, or is shorter), `kdf_ck` is
//!   `KDF_CK` (one HMAC-SHA-256 key setup, two MACs: before 2026-12-07 the floors priced it as
//!   two HMACs with a key setup each, work the ratchet does not do), `hash` one SHA-256 of 64
//!   bytes (a MixHash).
//! * `aead(n)` is one ChaCha20-Poly1305 seal plus one open of `n` bytes with no associated data,
//!   under keys already set up: interpolated linearly between the measured 64 B, 1 KiB and 16 KiB;
//!   64 B for anything shorter (ChaCha20 works in 64-byte blocks). `aead_key` is setting up one
//!   key (on aws-lc, AWS-LC's key object built and freed): a channel key is set up once for all
//!   its messages (`suite::KeptAeadKey`), a ratchet message key once for its one message, on
//!   each side. `ad(178)` is the ratchet's associated data (`AD || header`, SPEC §12.3) through
//!   one seal and one open: `aead_seal_open_ad/64 − aead_seal_open/64`. The Noise handshake's
//!   associated data (`h`, 32 bytes per AEAD) is not counted: conservative.

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use super::attack::{FORGED_CT, SESSIONS};
use super::e2e::OUT_OF_ORDER;
use super::fixtures::{RATCHET_AD_LEN, SIZES};
use super::primitives::GROUPS;
#[cfg(feature = "backend-aws-lc")]
use super::primitives_aws_lc::{ALTERNATIVES, GROUPS as AWS_LC_GROUPS};

/// The backend this bench binary's paths run on.
pub const BACKEND: &str = if cfg!(feature = "backend-aws-lc") { "aws-lc" } else { "dalek" };

/// The groups that measure the primitives the active backend implements (X25519 and the AEAD);
/// the others (SHA-2, HMAC, HKDF, Ed25519) are the same crates in both and measured in [`GROUPS`].
#[cfg(feature = "backend-aws-lc")]
const BACKEND_GROUPS: [&str; 3] = AWS_LC_GROUPS;
#[cfg(not(feature = "backend-aws-lc"))]
const BACKEND_GROUPS: [&str; 3] = GROUPS;
use super::relay::channel_plaintexts;

/// Where criterion writes its estimates: `$CRITERION_HOME`, else `criterion/` in the target
/// directory this bench binary was built in (`target/release/deps/…` → `target/`); a
/// `backend-aws-lc` build writes into its subdirectory `backend-aws-lc/`, so that the two
/// backends' paths (same bench ids) and summaries never overwrite or compare with each other.
pub fn criterion_dir() -> PathBuf {
    let base = std::env::var_os("CRITERION_HOME").map(PathBuf::from).unwrap_or_else(|| {
        let target = std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from).or_else(|| {
            let exe = std::env::current_exe().ok()?;
            exe.ancestors().nth(3).map(Path::to_path_buf)
        });
        target.unwrap_or_else(|| PathBuf::from("target")).join("criterion")
    });
    if cfg!(feature = "backend-aws-lc") { base.join("backend-aws-lc") } else { base }
}

/// A primitive operation, named by its bench id in the `primitives` group.
#[derive(Clone, Copy)]
enum Op {
    Keygen,
    Dh,
    Verify,
    Hkdf,
    /// `KDF_CK`: one HMAC key setup and two MACs.
    KdfCk,
    Hash,
    /// One seal and one open of this many bytes, key objects already set up.
    Aead(usize),
    /// Setting up one AEAD key (on aws-lc, building AWS-LC's key object and freeing it): a
    /// ratchet message key pays it on each side, a channel key once for all its messages.
    AeadKey,
    /// The ratchet's associated data (`AD || header`, [`RATCHET_AD_LEN`] bytes) authenticated by
    /// one seal and one open.
    Ad,
}

impl Op {
    fn label(self) -> String {
        match self {
            Self::Keygen => "keygen".into(),
            Self::Dh => "dh".into(),
            Self::Verify => "verify".into(),
            Self::Hkdf => "hkdf".into(),
            Self::KdfCk => "kdf_ck".into(),
            Self::Hash => "hash".into(),
            Self::Aead(n) => format!("aead({n})"),
            Self::AeadKey => "aead_key".into(),
            Self::Ad => format!("ad({RATCHET_AD_LEN})"),
        }
    }
}

/// What each bench cost per iteration, from one of two sources.
enum Medians {
    /// Criterion's medians, in nanoseconds, of the benches this process measured (written under
    /// `dir` since `since`).
    Criterion { dir: PathBuf, since: SystemTime },
    /// Instructions per iteration, counted by callgrind (`scripts/count-instructions`), by bench
    /// id: independent of the machine's load, so a change shows even on a busy machine.
    Instructions(HashMap<String, f64>),
}

impl Medians {
    /// The cost of `id` (`group/function[/parameter]`), if this run measured it.
    fn get(&self, id: &str) -> Option<f64> {
        match self {
            Self::Criterion { dir, since } => {
                let path = dir.join(id).join("new").join("estimates.json");
                let fresh = fs::metadata(&path).and_then(|m| m.modified()).ok()? >= *since;
                if !fresh {
                    return None;
                }
                let estimates: serde_json::Value =
                    serde_json::from_slice(&fs::read(&path).ok()?).ok()?;
                estimates["median"]["point_estimate"].as_f64()
            }
            Self::Instructions(counts) => counts.get(id).copied(),
        }
    }

    /// A cost as the tables show it.
    fn show(&self, cost: f64) -> String {
        match self {
            Self::Criterion { .. } => time(cost),
            Self::Instructions(_) => instructions(cost),
        }
    }

    /// The throughput column: only a time has one.
    fn rate(&self, cost: f64, bytes: Option<usize>) -> String {
        match self {
            Self::Criterion { .. } => rate(cost, bytes),
            Self::Instructions(_) => "—".into(),
        }
    }

    /// A primitive's medians, one per measurement in `groups` (`None` where not measured).
    fn primitive_medians(&self, groups: [&str; 3], id: &str) -> [Option<f64>; 3] {
        groups.map(|group| self.get(&format!("{group}/{id}")))
    }

    /// The lowest of a primitive's medians in this run.
    fn primitive(&self, groups: [&str; 3], id: &str) -> Option<f64> {
        self.primitive_medians(groups, id).into_iter().flatten().reduce(f64::min)
    }

    /// An operation's price on the active backend.
    fn op(&self, op: Op) -> Option<f64> {
        let shared = |id: &str| self.primitive(GROUPS, id);
        let fixed = |id: &str| self.primitive(BACKEND_GROUPS, id);
        match op {
            Op::Keygen => fixed("x25519_keygen"),
            Op::Dh => fixed("x25519_dh"),
            Op::Verify => shared("ed25519_verify"),
            Op::Hkdf => shared("hkdf_sha256"),
            Op::KdfCk => shared("kdf_ck"),
            Op::Hash => shared("sha256_64"),
            Op::Aead(n) => {
                let points: Vec<(f64, f64)> = SIZES
                    .iter()
                    .filter_map(|&s| Some((s as f64, fixed(&format!("aead_seal_open/{s}"))?)))
                    .collect();
                // Interpolation needs every measured size up to the first at or above `n`.
                let needed = SIZES.iter().position(|&s| s >= n).unwrap_or(SIZES.len() - 1);
                let complete =
                    SIZES[..=needed].iter().all(|&s| points.iter().any(|p| p.0 == s as f64));
                complete.then(|| interpolate(&points, n as f64))
            }
            Op::AeadKey => fixed("aead_key"),
            // Measured as the difference of two medians, which noise can make negative.
            Op::Ad => Some((fixed("aead_seal_open_ad/64")? - fixed("aead_seal_open/64")?).max(0.0)),
        }
    }
}

/// Piecewise-linear through `points` (sorted by x), flat below the first, extended past the last.
fn interpolate(points: &[(f64, f64)], x: f64) -> f64 {
    match points {
        [] => f64::NAN,
        [(_, y)] => *y,
        _ => {
            let last = &points[points.len() - 2..];
            let segment = points.windows(2).find(|w| x <= w[1].0).unwrap_or(last);
            let ((x0, y0), (x1, y1)) = (segment[0], segment[1]);
            if x <= x0 { y0 } else { y0 + (y1 - y0) * (x - x0) / (x1 - x0) }
        }
    }
}

/// A protocol path: its bench id, the operations SPEC.md requires of it, its bytes, its target.
struct Path_ {
    id: String,
    ops: Vec<(usize, Op)>,
    bytes: Option<usize>,
    target: f64,
    spec: &'static str,
}

const HANDSHAKE: f64 = 1.15;
const MESSAGE: f64 = 1.30;

fn paths() -> Vec<Path_> {
    use Op::{Ad, Aead, AeadKey, Dh, Hash, Hkdf, KdfCk, Keygen, Verify};
    // One ratchet message's AEAD: a seal and an open of `n` bytes, each under a message key set
    // up for it, with `AD || header` as associated data (SPEC §12.3).
    let ratchet_aead = |n: usize| [(1, Aead(n)), (2, AeadKey), (1, Ad)];
    let mut paths = vec![Path_ {
        id: "channel/handshake".into(),
        // Per side: MixHash of the prologue, rs, both ephemerals and the three ciphertexts (the
        // static key and two payloads) it writes or reads (7); MixKey for es, ss, ee, se (4 HKDF)
        // and Split (1); 4 DH; one ephemeral. Seals and opens: the static key (32 B) and two empty
        // payloads, each under its own key (6 key setups), and the 2 transport keys of Split,
        // set up once for all transport messages (4). (The associated data `h` of those three,
        // 32 bytes each, is not counted; nor is the key that MixKey(ee) makes and MixKey(se)
        // replaces unused, which the channel sets up too.)
        ops: vec![(2, Keygen), (8, Dh), (10, Hkdf), (14, Hash), (3, Aead(32)), (10, AeadKey)],
        bytes: None,
        target: HANDSHAKE,
        spec: "§4.2-4.3",
    }];
    for size in SIZES {
        paths.push(Path_ {
            id: format!("channel/transport/{size}"),
            ops: vec![(1, Aead(size))],
            bytes: Some(size),
            target: MESSAGE,
            spec: "§4.4",
        });
    }
    paths.push(Path_ {
        id: "e2e/session_setup".into(),
        // Alice: verify the bundle (one signature, spk_sig), an ephemeral and DH1-4, SK (an HKDF
        // to 32 bytes, priced as the 64-byte one: 0.1% of this floor); her first send turns
        // the ratchet (a key, a DH, KDF_RK), KDF_CK, message keys. Bob: verify the identity the
        // prekey message claims (one signature, id_sig, §11.2), DH1-4, SK, the same ratchet
        // step (a DH, KDF_RK), KDF_CK, message keys. One 64-byte message sealed and opened.
        ops: [(2, Verify), (2, Keygen), (10, Dh), (6, Hkdf), (2, KdfCk)]
            .into_iter()
            .chain(ratchet_aead(64))
            .collect(),
        bytes: None,
        target: HANDSHAKE,
        spec: "§10.3, §11, §12",
    });
    for size in SIZES {
        paths.push(Path_ {
            id: format!("e2e/symmetric/{size}"),
            // Each side: KDF_CK and the message keys (1 HKDF).
            ops: [(2, KdfCk), (2, Hkdf)].into_iter().chain(ratchet_aead(size)).collect(),
            bytes: Some(size),
            target: MESSAGE,
            spec: "§12.3-12.4",
        });
        paths.push(Path_ {
            id: format!("e2e/alternating/{size}"),
            // Plus the DH ratchet: the sender draws a key; each side one DH and KDF_RK.
            ops: [(1, Keygen), (2, Dh), (4, Hkdf), (2, KdfCk)]
                .into_iter()
                .chain(ratchet_aead(size))
                .collect(),
            bytes: Some(size),
            target: MESSAGE,
            spec: "§12.3-12.4",
        });
    }
    paths.push(Path_ {
        id: "attack/forged_envelope_worst_case".into(),
        // SPEC §12.5's bound for one envelope: in each of the 5 sessions of the peer a ratchet DH,
        // KDF_RK and an AEAD open of the 48-byte ciphertext; 2000 KDF_CK steps (2 HMAC each) over
        // all of them; each open under a key set up for it, with `AD || header`. (The floor
        // prices a seal and an open; the bench only opens: conservative.)
        ops: vec![
            (SESSIONS, Dh),
            (SESSIONS, Hkdf),
            (2000, KdfCk),
            (SESSIONS, Aead(FORGED_CT)),
            (SESSIONS, AeadKey),
            (SESSIONS, Ad),
        ],
        bytes: None,
        target: 2.0,
        spec: "§12.5",
    });
    paths.push(Path_ {
        id: "e2e/out_of_order_100".into(),
        ops: [(2, KdfCk), (2, Hkdf)]
            .into_iter()
            .chain(ratchet_aead(64))
            .map(|(n, op)| (n * OUT_OF_ORDER, op))
            .collect(),
        bytes: Some(64 * OUT_OF_ORDER),
        target: MESSAGE,
        spec: "§12.4-12.5",
    });
    for size in SIZES {
        for e2e in [false, true] {
            // Three channel messages: Alice → server, server → Bob, and the Ack; sizes as sent,
            // under the channels' kept keys.
            let mut ops: Vec<(usize, Op)> =
                channel_plaintexts(e2e, size).iter().map(|&n| (1, Aead(n))).collect();
            if e2e {
                ops.extend([(2, KdfCk), (2, Hkdf)]);
                ops.extend(ratchet_aead(size));
            }
            paths.push(Path_ {
                id: format!("relay/{}/{size}", if e2e { "e2e" } else { "hop" }),
                ops,
                bytes: Some(size),
                target: MESSAGE,
                spec: if e2e { "§4.4, §12, §15" } else { "§4.4, §5.2" },
            });
        }
    }
    paths
}

fn time(ns: f64) -> String {
    match ns {
        ns if ns >= 1e6 => format!("{:.2} ms", ns / 1e6),
        ns if ns >= 1e3 => format!("{:.2} µs", ns / 1e3),
        ns => format!("{ns:.0} ns"),
    }
}

fn instructions(count: f64) -> String {
    match count {
        c if c >= 1e6 => format!("{:.2} M instr", c / 1e6),
        c if c >= 1e4 => format!("{:.1} k instr", c / 1e3),
        c => format!("{c:.0} instr"),
    }
}

fn rate(ns: f64, bytes: Option<usize>) -> String {
    let ops = 1e9 / ns;
    match bytes {
        Some(b) => format!("{ops:.0} op/s, {:.1} MB/s", b as f64 * ops / 1e6),
        None => format!("{ops:.0} op/s"),
    }
}

/// Prints the summary of what this process measured (and writes it next to criterion's output).
pub fn report(dir: &Path, since: SystemTime) {
    let medians = Medians::Criterion { dir: dir.to_path_buf(), since };
    summarize(&medians, &dir.join("floor-summary.md"));
}

/// The same summary in instructions per iteration, from `counts` (lines `bench-id<TAB>count`,
/// written by `scripts/count-instructions`); written next to it as `*.md`.
pub fn report_instructions(counts: &Path) {
    let text = match fs::read_to_string(counts) {
        Ok(text) => text,
        Err(error) => panic!("cannot read {}: {error}", counts.display()),
    };
    let parsed = text.lines().filter_map(|line| {
        let (id, count) = line.split_once('\t')?;
        Some((id.to_owned(), count.trim().parse::<f64>().ok()?))
    });
    let medians = Medians::Instructions(parsed.collect());
    summarize(&medians, &counts.with_extension("md"));
}

/// Prints the summary table of `medians` and writes it to `file`.
fn summarize(medians: &Medians, file: &Path) {
    let mut table = String::from(
        "| path | SPEC | median | throughput | floor: primitive operations | floor | ratio | target |\n\
         |---|---|---|---|---|---|---|---|\n",
    );
    let mut rows = 0;
    let mut missed = Vec::new();
    for path in paths() {
        let Some(median) = medians.get(&path.id) else { continue };
        let ops: Vec<String> =
            path.ops.iter().map(|(n, op)| format!("{n} {}", op.label())).collect();
        let floor: Option<f64> =
            path.ops.iter().map(|&(n, op)| Some(n as f64 * medians.op(op)?)).sum();
        let (floor_text, ratio_text) = match floor {
            Some(floor) => {
                let ratio = median / floor;
                if ratio > path.target {
                    missed.push(format!("{} ({ratio:.2}× > {:.2}×)", path.id, path.target));
                }
                (medians.show(floor), format!("{ratio:.2}×"))
            }
            None => ("primitives not measured in this run".into(), "—".into()),
        };
        table.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} | {} | ≤ {:.2}× |\n",
            path.id,
            path.spec,
            medians.show(median),
            medians.rate(median, path.bytes),
            ops.join(" + "),
            floor_text,
            ratio_text,
            path.target,
        ));
        rows += 1;
    }
    let primitives = [
        "x25519_keygen",
        "x25519_dh",
        "ed25519_verify",
        "hkdf_sha256",
        "hmac_sha256",
        "kdf_ck",
        "sha256_64",
        "aead_key",
        "aead_seal_open/64",
        "aead_seal_open/1024",
        "aead_seal_open/16384",
        "aead_seal_open_ad/64",
    ];
    // What each backend implements itself; the rest is shared (measured in `GROUPS` only).
    let own = |id: &str| id.starts_with("x25519") || id.starts_with("aead");
    let backends: &[(&str, [&str; 3])] = &[
        ("dalek", GROUPS),
        #[cfg(feature = "backend-aws-lc")]
        ("aws-lc", AWS_LC_GROUPS),
    ];
    let mut floor_table = String::from(
        "| primitive | backend | median, first | middle | last | floor uses |\n\
         |---|---|---|---|---|---|\n",
    );
    let mut drift: Option<f64> = None;
    for id in primitives {
        for &(backend, groups) in backends {
            if backend != "dalek" && !own(id) {
                continue;
            }
            let measured = medians.primitive_medians(groups, id);
            let Some(floor) = medians.primitive(groups, id) else { continue };
            let present: Vec<f64> = measured.into_iter().flatten().collect();
            if present.len() > 1 {
                let high = present.iter().copied().fold(floor, f64::max);
                drift = Some(drift.unwrap_or(0.0).max((high - floor) / floor));
            }
            let show = |m: &Option<f64>| m.map_or_else(|| "—".to_owned(), |m| medians.show(m));
            let columns: Vec<String> = measured.iter().map(show).collect();
            let used = if own(id) && backend != BACKEND {
                "not this floor".into()
            } else {
                medians.show(floor)
            };
            let backend = if own(id) { backend } else { "both" };
            floor_table
                .push_str(&format!("| {id} | {backend} | {} | {used} |\n", columns.join(" | ")));
        }
    }
    #[cfg(feature = "backend-aws-lc")]
    {
        let mut alternatives = String::new();
        for id in
            ["x25519_dh_key_per_call", "ed25519_verify", "hkdf_sha256", "hmac_sha256", "sha256_64"]
        {
            if let Some(m) = medians.get(&format!("{ALTERNATIVES}/{id}")) {
                alternatives.push_str(&format!("| {id} | {} |\n", medians.show(m)));
            }
        }
        if !alternatives.is_empty() {
            floor_table.push_str(&format!(
                "\naws-lc-rs alternatives, measured once, used by neither backend:\n\n\
                 | primitive | median |\n|---|---|\n{alternatives}"
            ));
        }
    }
    if rows == 0 {
        println!("\nfloor summary: no protocol path was measured in this run");
        return;
    }
    let verdict = if missed.is_empty() {
        "every measured path is within its target".to_string()
    } else {
        format!("over target: {}", missed.join(", "))
    };
    let steadiness = match (medians, drift) {
        (Medians::Instructions(_), _) => "Instructions per iteration, counted by callgrind (the \
            primitives once each): the same on a busy machine as on a quiet one."
            .to_owned(),
        (_, None) => "The primitives were measured once in this run.".to_owned(),
        (_, Some(drift)) => format!(
            "The primitives' medians moved by up to {:.0}% within the run{}",
            drift * 100.0,
            if drift > 0.10 {
                ": the machine was not steady, so ratios are approximate (run again on a quiet \
                 machine)."
            } else {
                "."
            }
        ),
    };
    let summary = format!(
        "Backend: {BACKEND}: the paths ran on it and are priced at its floor.\n\n\
         {floor_table}\n{steadiness}\n\n{table}\n{verdict}\n"
    );
    println!("\n## Floor summary\n\n{summary}");
    let written = file.parent().map_or(Ok(()), fs::create_dir_all);
    if written.and_then(|()| fs::write(file, &summary)).is_ok() {
        println!("(written to {})", file.display());
    }
}
