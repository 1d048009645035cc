//! The reference test vectors of `spec/vectors/` (SPEC.md §17): generated deterministically from
//! fixed keys and seeds, and verified by re-deriving every case with this crate.
//!
//! | file                  | module              | what                                                   |
//! |-----------------------|---------------------|--------------------------------------------------------|
//! | `key_schedule.json`   | [`key_schedule`]    | Noise steps and split, X3DH, `KDF_RK`, `KDF_CK`, message keys, nonces, safety numbers |
//! | `wire.json`           | [`wire`]            | frames and envelopes, valid and invalid, with error classes |
//! | `channel.json`        | [`channel`]         | whole Noise IK handshakes and transport messages       |
//! | `bundles.json`        | [`bundles`]         | prekey bundles on upload and fetch, valid and invalid  |
//! | `hop_transcript.json` | [`hop_transcript`]  | a whole hop run: every frame, key and plaintext        |
//! | `e2e_transcript.json` | [`e2e_transcript`]  | a whole e2e run, with replayed and tampered envelopes  |
//! | `COVERAGE.md`         | [`coverage`]        | which cases exercise each SPEC.md rule and error class |
//!
//! Every file is `{"version", "file", "description", …}` with its cases, each carrying an `id`, a
//! `comment` and its expectation (`"result": "valid"` or `"invalid"` with the SPEC.md §7.1 class in
//! `"error"`). Byte strings are lower-case hex. Output is deterministic: no clock, no hash-map
//! iteration order (objects keep insertion order), fixed keys and seeds.

pub mod bundles;
pub mod channel;
pub mod coverage;
pub mod e2e_transcript;
pub mod hop_transcript;
pub mod key_schedule;
mod noise_trace;
mod run;
pub mod util;
pub mod wire;

use std::path::{Path, PathBuf};

use serde_json::Value;

/// The format version every vector file carries in `"version"`.
pub const VECTORS_VERSION: u64 = 1;

/// Why generating or verifying vectors failed (as opposed to a case that did not pass).
#[derive(Debug)]
#[non_exhaustive]
pub enum VectorError {
    /// Reading or writing a file.
    Io {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        error: std::io::Error,
    },
    /// A file is not JSON, or could not be serialized.
    Json(serde_json::Error),
    /// The protocol code failed where the generator expected it to succeed.
    Protocol(e2e_protocol::Error),
    /// A run's script asked for a restart the runner cannot make, or an edited state file did not
    /// restore.
    Run(crate::runner::RunError),
    /// A field is missing or has the wrong type.
    Malformed {
        /// The field.
        field: String,
    },
    /// A re-derived value differs from the one in the file (or two derivations disagree).
    Mismatch {
        /// What was compared.
        field: String,
        /// What the file (or the first derivation) says.
        expected: String,
        /// What was derived.
        got: String,
    },
}

impl VectorError {
    /// A missing or ill-typed `field`.
    #[must_use]
    pub fn malformed(field: &str) -> Self {
        Self::Malformed { field: field.to_owned() }
    }

    /// `field` is `expected` in the file but was derived as `got`.
    #[must_use]
    pub fn mismatch(
        field: &str,
        expected: &impl core::fmt::Display,
        got: &impl core::fmt::Display,
    ) -> Self {
        Self::Mismatch {
            field: field.to_owned(),
            expected: expected.to_string(),
            got: got.to_string(),
        }
    }
}

impl core::fmt::Display for VectorError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::Io { path, error } => write!(f, "{}: {error}", path.display()),
            Self::Json(e) => write!(f, "JSON: {e}"),
            Self::Protocol(e) => write!(f, "protocol: {e}"),
            Self::Run(e) => write!(f, "run: {e}"),
            Self::Malformed { field } => write!(f, "missing or malformed field {field:?}"),
            Self::Mismatch { field, expected, got } => {
                write!(f, "{field}: expected {expected}, derived {got}")
            }
        }
    }
}

impl std::error::Error for VectorError {}

impl From<e2e_protocol::Error> for VectorError {
    fn from(e: e2e_protocol::Error) -> Self {
        Self::Protocol(e)
    }
}

impl From<crate::runner::RunError> for VectorError {
    fn from(e: crate::runner::RunError) -> Self {
        match e {
            crate::runner::RunError::Role(e) => Self::Protocol(e),
            other => Self::Run(other),
        }
    }
}

impl From<e2e_protocol::wire::WireError> for VectorError {
    fn from(e: e2e_protocol::wire::WireError) -> Self {
        Self::Protocol(e.into())
    }
}

impl From<e2e_protocol::e2e::E2eError> for VectorError {
    fn from(e: e2e_protocol::e2e::E2eError) -> Self {
        Self::Protocol(e.into())
    }
}

impl From<e2e_protocol::channel::ChannelError> for VectorError {
    fn from(e: e2e_protocol::channel::ChannelError) -> Self {
        Self::Protocol(e.into())
    }
}

impl From<e2e_protocol::suite::CryptoError> for VectorError {
    fn from(e: e2e_protocol::suite::CryptoError) -> Self {
        Self::Protocol(e.into())
    }
}

impl From<serde_json::Error> for VectorError {
    fn from(e: serde_json::Error) -> Self {
        Self::Json(e)
    }
}

/// One case's verdict.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaseResult {
    /// The case's `id`.
    pub id: String,
    /// Why it failed, or `None` if it passed.
    pub failure: Option<String>,
}

impl CaseResult {
    /// The verdict for `id` from a check's result.
    #[must_use]
    pub fn from_check(id: &str, check: Result<(), VectorError>) -> Self {
        Self { id: id.to_owned(), failure: check.err().map(|e| e.to_string()) }
    }
}

/// A file kind: its name, its generator and its verifier.
#[derive(Debug, Clone, Copy)]
pub struct FileKind {
    /// The file name, e.g. `wire.json`.
    pub file: &'static str,
    /// Builds the file's JSON.
    pub generate: fn() -> Result<Value, VectorError>,
    /// Re-derives every case of a parsed file.
    pub verify: fn(&Value) -> Vec<CaseResult>,
}

/// Every vector file, in the order they are written and verified.
pub const FILES: [FileKind; 6] = [
    FileKind {
        file: "key_schedule.json",
        generate: key_schedule::generate,
        verify: key_schedule::verify,
    },
    FileKind { file: "wire.json", generate: wire::generate, verify: wire::verify },
    FileKind { file: "channel.json", generate: channel::generate, verify: channel::verify },
    FileKind { file: "bundles.json", generate: bundles::generate, verify: bundles::verify },
    FileKind {
        file: "hop_transcript.json",
        generate: hop_transcript::generate,
        verify: hop_transcript::verify,
    },
    FileKind {
        file: "e2e_transcript.json",
        generate: e2e_transcript::generate,
        verify: e2e_transcript::verify,
    },
];

/// The common head of every file: version, file name, description.
#[must_use]
pub fn file_head(file: &str, description: &str) -> serde_json::Map<String, Value> {
    let mut head = serde_json::Map::new();
    head.insert("version".to_owned(), VECTORS_VERSION.into());
    head.insert("file".to_owned(), file.into());
    head.insert("description".to_owned(), description.into());
    head
}

/// The text of one generated file: pretty JSON with a final newline.
///
/// # Errors
/// As the file's generator.
pub fn render(kind: &FileKind) -> Result<String, VectorError> {
    let value = (kind.generate)()?;
    Ok(serde_json::to_string_pretty(&value)? + "\n")
}

/// The name of the coverage table written beside the vector files.
pub const COVERAGE_FILE: &str = "COVERAGE.md";

/// Writes every vector file into `dir` (created if needed), then [`COVERAGE_FILE`] from them;
/// returns the paths written.
///
/// # Errors
/// A generator's error, a rule of [`coverage::RULES`] that the files do not satisfy, or an I/O error.
pub fn generate_into(dir: &Path) -> Result<Vec<PathBuf>, VectorError> {
    std::fs::create_dir_all(dir)
        .map_err(|error| VectorError::Io { path: dir.to_owned(), error })?;
    let mut values = Vec::new();
    for kind in &FILES {
        values.push((kind.file, (kind.generate)()?));
    }
    let borrowed: Vec<(&str, &Value)> = values.iter().map(|(f, v)| (*f, v)).collect();
    let coverage = coverage::render(&borrowed)?;
    let mut written = Vec::new();
    for (file, value) in &values {
        let text = serde_json::to_string_pretty(value)? + "\n";
        let path = dir.join(file);
        std::fs::write(&path, text)
            .map_err(|error| VectorError::Io { path: path.clone(), error })?;
        written.push(path);
    }
    let path = dir.join(COVERAGE_FILE);
    std::fs::write(&path, coverage)
        .map_err(|error| VectorError::Io { path: path.clone(), error })?;
    written.push(path);
    Ok(written)
}

/// What verifying one file found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileReport {
    /// The file name.
    pub file: &'static str,
    /// Every case's verdict, in file order.
    pub cases: Vec<CaseResult>,
}

impl FileReport {
    /// Cases that passed.
    #[must_use]
    pub fn passed(&self) -> usize {
        self.cases.iter().filter(|c| c.failure.is_none()).count()
    }

    /// Cases that failed.
    #[must_use]
    pub fn failed(&self) -> usize {
        self.cases.len() - self.passed()
    }
}

/// Verifies every vector file in `dir`: a file that is missing or not JSON counts as one failed case.
#[must_use]
pub fn verify_dir(dir: &Path) -> Vec<FileReport> {
    FILES
        .iter()
        .map(|kind| {
            let path = dir.join(kind.file);
            let parsed = std::fs::read_to_string(&path)
                .map_err(|error| VectorError::Io { path: path.clone(), error })
                .and_then(|text| serde_json::from_str::<Value>(&text).map_err(VectorError::from));
            let cases = match parsed {
                Ok(value) => match check_head(&value, kind.file) {
                    Ok(()) => (kind.verify)(&value),
                    Err(e) => vec![CaseResult::from_check("(file)", Err(e))],
                },
                Err(e) => vec![CaseResult::from_check("(file)", Err(e))],
            };
            FileReport { file: kind.file, cases }
        })
        .collect()
}

fn check_head(value: &Value, file: &str) -> Result<(), VectorError> {
    if value["version"].as_u64() != Some(VECTORS_VERSION) {
        return Err(VectorError::mismatch("version", &VECTORS_VERSION, &value["version"]));
    }
    let name = file.trim_end_matches(".json");
    if value["file"].as_str() != Some(name) {
        return Err(VectorError::mismatch("file", &name, &value["file"]));
    }
    Ok(())
}

/// Verifies a flat `"cases"` array with `check`, one verdict per case.
pub(crate) fn verify_cases(
    file: &Value,
    check: impl Fn(&Value) -> Result<(), VectorError>,
) -> Vec<CaseResult> {
    let Some(cases) = file["cases"].as_array() else {
        return vec![CaseResult::from_check("(file)", Err(VectorError::malformed("cases")))];
    };
    cases
        .iter()
        .enumerate()
        .map(|(i, case)| {
            let id = case["id"].as_str().map_or_else(|| format!("(case {i})"), str::to_owned);
            CaseResult::from_check(&id, check(case))
        })
        .collect()
}
