//! Helpers shared by the vector modules: fixed keys, an RNG that replays given bytes, hex and
//! JSON access, and the mapping from the crate's errors to SPEC.md §7.1 class names.

use core::convert::Infallible;

use rand_core::{TryCryptoRng, TryRng};
use serde_json::Value;

use super::VectorError;
use e2e_protocol::channel::ChannelError;
use e2e_protocol::e2e::E2eError;
use e2e_protocol::e2e::ratchet::RatchetError;
use e2e_protocol::error::{Error, MisuseError, ProtocolError};
use e2e_protocol::suite::{CryptoError, PrivateKey, sha256};
use e2e_protocol::wire::{BundleRefusal, WireError};

/// A fixed 32-byte value for test vectors: `SHA-256("e2e-ref/vectors/" || label)`. The vectors list
/// the bytes themselves; the label only documents where they came from.
#[must_use]
pub fn fixed_bytes(label: &str) -> [u8; 32] {
    sha256(&[b"e2e-ref/vectors/", label.as_bytes()])
}

/// An X25519 private key from [`fixed_bytes`].
#[must_use]
pub fn fixed_key(label: &str) -> PrivateKey {
    PrivateKey::from_bytes(fixed_bytes(label))
}

/// Lower-case hex.
#[must_use]
pub fn hex(bytes: impl AsRef<[u8]>) -> String {
    hex::encode(bytes)
}

/// An "RNG" that hands out the given byte strings, one per `fill_bytes`, then zeros: it feeds fixed
/// keys to code that draws them (for example `PrekeyStore::generate`). For test vectors only.
#[derive(Debug, Clone)]
pub struct ReplayRng {
    chunks: std::collections::VecDeque<Vec<u8>>,
}

impl ReplayRng {
    /// Replays `chunks` in order.
    #[must_use]
    pub fn new(chunks: impl IntoIterator<Item = Vec<u8>>) -> Self {
        Self { chunks: chunks.into_iter().collect() }
    }

    /// How many chunks are left.
    #[must_use]
    pub fn remaining(&self) -> usize {
        self.chunks.len()
    }
}

impl TryRng for ReplayRng {
    type Error = Infallible;

    fn try_next_u32(&mut self) -> Result<u32, Infallible> {
        let mut b = [0u8; 4];
        self.try_fill_bytes(&mut b)?;
        Ok(u32::from_le_bytes(b))
    }

    fn try_next_u64(&mut self) -> Result<u64, Infallible> {
        let mut b = [0u8; 8];
        self.try_fill_bytes(&mut b)?;
        Ok(u64::from_le_bytes(b))
    }

    fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), Infallible> {
        dst.fill(0);
        if let Some(chunk) = self.chunks.pop_front() {
            let n = chunk.len().min(dst.len());
            dst[..n].copy_from_slice(&chunk[..n]);
        }
        Ok(())
    }
}

impl TryCryptoRng for ReplayRng {}

/// The SPEC.md §7.1 class of an error, as the vectors write it: `Class.Variant[.Detail]`, for example
/// `Wire.Truncated`, `Channel.Crypto.AeadOpen`, `E2e.Bundle.BadSignature`, `E2e.Ratchet.Replayed`.
#[must_use]
pub fn error_class(error: &Error) -> String {
    match error {
        Error::Wire(e) => format!("Wire.{}", wire_class(e)),
        Error::Channel(e) => format!("Channel.{}", channel_class(e)),
        Error::Protocol(e) => format!("Protocol.{}", protocol_class(e)),
        Error::E2e(e) => format!("E2e.{}", e2e_class(e)),
        Error::Misuse(e) => format!("Misuse.{}", misuse_class(*e)),
        // The library's error enums are `#[non_exhaustive]`: a variant newer than this mapping
        // shows as "Unclassified" in generated vectors, which the committed-vector test then flags.
        _ => "Unclassified".to_owned(),
    }
}

/// The variant name of a [`WireError`].
#[must_use]
pub const fn wire_class(e: &WireError) -> &'static str {
    match e {
        WireError::Truncated => "Truncated",
        WireError::Oversized { .. } => "Oversized",
        WireError::UnknownVersion(_) => "UnknownVersion",
        WireError::UnknownType(_) => "UnknownType",
        WireError::BadLength { .. } => "BadLength",
        WireError::TrailingBytes { .. } => "TrailingBytes",
        WireError::InvalidValue { .. } => "InvalidValue",
        // The library's error enums are `#[non_exhaustive]`: a variant newer than this mapping
        // shows as "Unclassified" in generated vectors, which the committed-vector test then flags.
        _ => "Unclassified",
    }
}

const fn crypto_class(e: CryptoError) -> &'static str {
    match e {
        CryptoError::NonContributory => "NonContributory",
        CryptoError::AeadOpen => "AeadOpen",
        CryptoError::AeadTruncated => "AeadTruncated",
        CryptoError::KdfOutputTooLong => "KdfOutputTooLong",
        CryptoError::BadSignature => "BadSignature",
        CryptoError::BadSigningKey => "BadSigningKey",
        // The library's error enums are `#[non_exhaustive]`: a variant newer than this mapping
        // shows as "Unclassified" in generated vectors, which the committed-vector test then flags.
        _ => "Unclassified",
    }
}

fn channel_class(e: &ChannelError) -> String {
    match e {
        ChannelError::Crypto(c) => format!("Crypto.{}", crypto_class(*c)),
        ChannelError::MessageTooShort => "MessageTooShort".to_owned(),
        ChannelError::MessageTooLong => "MessageTooLong".to_owned(),
        ChannelError::NonceExhausted => "NonceExhausted".to_owned(),
        // The library's error enums are `#[non_exhaustive]`: a variant newer than this mapping
        // shows as "Unclassified" in generated vectors, which the committed-vector test then flags.
        _ => "Unclassified".to_owned(),
    }
}

const fn protocol_class(e: &ProtocolError) -> &'static str {
    match e {
        ProtocolError::Unexpected { .. } => "Unexpected",
        ProtocolError::WrongName => "WrongName",
        ProtocolError::Replayed { .. } => "Replayed",
        ProtocolError::OutOfWindow { .. } => "OutOfWindow",
        // The library's error enums are `#[non_exhaustive]`: a variant newer than this mapping
        // shows as "Unclassified" in generated vectors, which the committed-vector test then flags.
        _ => "Unclassified",
    }
}

/// The name of a bundle refusal (SPEC.md §15.1).
#[must_use]
pub const fn refusal_name(r: BundleRefusal) -> &'static str {
    match r {
        BundleRefusal::BadSigningKey => "BadSigningKey",
        BundleRefusal::LowOrderKey => "LowOrderKey",
        BundleRefusal::BadSignature => "BadSignature",
        BundleRefusal::TooManyPrekeys => "TooManyPrekeys",
        BundleRefusal::DuplicatePrekeyId => "DuplicatePrekeyId",
    }
}

fn e2e_class(e: &E2eError) -> String {
    match e {
        E2eError::Bundle(r) => format!("Bundle.{}", refusal_name(*r)),
        E2eError::IdentityMismatch { .. } => "IdentityMismatch".to_owned(),
        E2eError::UnknownPrekey { .. } => "UnknownPrekey".to_owned(),
        E2eError::ReplayedPrekeyMessage => "ReplayedPrekeyMessage".to_owned(),
        E2eError::NoSession { .. } => "NoSession".to_owned(),
        E2eError::NoBundle { .. } => "NoBundle".to_owned(),
        E2eError::Ratchet(r) => format!("Ratchet.{}", ratchet_class(r)),
        E2eError::Crypto(c) => format!("Crypto.{}", crypto_class(*c)),
        E2eError::TooManyPeers => "TooManyPeers".to_owned(),
        E2eError::SafetyNumberMismatch { .. } => "SafetyNumberMismatch".to_owned(),
        E2eError::PrekeyIdsExhausted => "PrekeyIdsExhausted".to_owned(),
        // The library's error enums are `#[non_exhaustive]`: a variant newer than this mapping
        // shows as "Unclassified" in generated vectors, which the committed-vector test then flags.
        _ => "Unclassified".to_owned(),
    }
}

fn ratchet_class(e: &RatchetError) -> String {
    match e {
        RatchetError::NoSession => "NoSession".to_owned(),
        RatchetError::TooFarAhead { .. } => "TooFarAhead".to_owned(),
        RatchetError::Replayed => "Replayed".to_owned(),
        RatchetError::DecryptFailed => "DecryptFailed".to_owned(),
        RatchetError::ChainExhausted => "ChainExhausted".to_owned(),
        RatchetError::WorkExceeded => "WorkExceeded".to_owned(),
        RatchetError::Crypto(c) => format!("Crypto.{}", crypto_class(*c)),
        // The library's error enums are `#[non_exhaustive]`: a variant newer than this mapping
        // shows as "Unclassified" in generated vectors, which the committed-vector test then flags.
        _ => "Unclassified".to_owned(),
    }
}

const fn misuse_class(e: MisuseError) -> &'static str {
    match e {
        MisuseError::NotConnected => "NotConnected",
        MisuseError::AlreadyConnected => "AlreadyConnected",
        MisuseError::UnknownLink => "UnknownLink",
        MisuseError::IdsExhausted => "IdsExhausted",
        MisuseError::NoE2eIdentity => "NoE2eIdentity",
        MisuseError::PendingFull => "PendingFull",
        MisuseError::SendToSelf => "SendToSelf",
        MisuseError::SignedPrekeyNotStored => "SignedPrekeyNotStored",
        // The library's error enums are `#[non_exhaustive]`: a variant newer than this mapping
        // shows as "Unclassified" in generated vectors, which the committed-vector test then flags.
        _ => "Unclassified",
    }
}

/// `value[key]` as a string.
///
/// # Errors
/// [`VectorError::Malformed`] if missing or not a string.
pub fn str_field<'a>(value: &'a Value, key: &str) -> Result<&'a str, VectorError> {
    value[key].as_str().ok_or_else(|| VectorError::malformed(key))
}

/// `value[key]` as an unsigned integer.
///
/// # Errors
/// [`VectorError::Malformed`] if missing or not an unsigned integer.
pub fn u64_field(value: &Value, key: &str) -> Result<u64, VectorError> {
    value[key].as_u64().ok_or_else(|| VectorError::malformed(key))
}

/// `value[key]` as a `u32`.
///
/// # Errors
/// [`VectorError::Malformed`] if missing or out of range.
pub fn u32_field(value: &Value, key: &str) -> Result<u32, VectorError> {
    u32::try_from(u64_field(value, key)?).map_err(|_| VectorError::malformed(key))
}

/// `value[key]` as hex-decoded bytes.
///
/// # Errors
/// [`VectorError::Malformed`] if missing or not hex.
pub fn hex_field(value: &Value, key: &str) -> Result<Vec<u8>, VectorError> {
    hex::decode(str_field(value, key)?).map_err(|_| VectorError::malformed(key))
}

/// `value[key]` as exactly `N` hex-decoded bytes.
///
/// # Errors
/// [`VectorError::Malformed`] if missing, not hex, or of another length.
pub fn hex_array<const N: usize>(value: &Value, key: &str) -> Result<[u8; N], VectorError> {
    hex_field(value, key)?.try_into().map_err(|_| VectorError::malformed(key))
}

/// `value[key]` as an array.
///
/// # Errors
/// [`VectorError::Malformed`] if missing or not an array.
pub fn array_field<'a>(value: &'a Value, key: &str) -> Result<&'a Vec<Value>, VectorError> {
    value[key].as_array().ok_or_else(|| VectorError::malformed(key))
}

/// Checks that `got` equals the case's `key` field, naming the field if not.
///
/// # Errors
/// [`VectorError::Mismatch`] naming `key`.
pub fn expect_eq(case: &Value, key: &str, got: &Value) -> Result<(), VectorError> {
    if &case[key] == got { Ok(()) } else { Err(VectorError::mismatch(key, &case[key], got)) }
}

/// Checks the expectation of a case against what happened: `"result": "valid"` needs `Ok`, and
/// `"invalid"` needs an error of the class in `"error"`.
///
/// # Errors
/// [`VectorError::Mismatch`] describing the disagreement.
pub fn expect_outcome<T>(case: &Value, outcome: &Result<T, Error>) -> Result<(), VectorError> {
    let got = match outcome {
        Ok(_) => Value::Null,
        Err(e) => Value::String(error_class(e)),
    };
    let want = match str_field(case, "result")? {
        "valid" => Value::Null,
        _ => case["error"].clone(),
    };
    if want == got { Ok(()) } else { Err(VectorError::mismatch("error", &want, &got)) }
}

/// `"result"` and `"error"` for an outcome: `("valid", None)` or `("invalid", Some(class))`.
#[must_use]
pub fn outcome_fields<T>(outcome: &Result<T, Error>) -> (&'static str, Option<String>) {
    match outcome {
        Ok(_) => ("valid", None),
        Err(e) => ("invalid", Some(error_class(e))),
    }
}

/// Compares a re-derived JSON value with the file's, naming the first path where they differ.
///
/// # Errors
/// [`VectorError::Mismatch`] at the first difference.
pub fn compare_json(path: &str, expected: &Value, got: &Value) -> Result<(), VectorError> {
    match (expected, got) {
        (Value::Object(a), Value::Object(b)) => {
            for (key, value) in a {
                compare_json(&format!("{path}.{key}"), value, b.get(key).unwrap_or(&Value::Null))?;
            }
            match b.keys().find(|k| !a.contains_key(*k)) {
                Some(key) => {
                    Err(VectorError::mismatch(&format!("{path}.{key}"), &"(absent)", &b[key]))
                }
                None => Ok(()),
            }
        }
        (Value::Array(a), Value::Array(b)) => {
            if a.len() != b.len() {
                return Err(VectorError::mismatch(&format!("{path}.length"), &a.len(), &b.len()));
            }
            for (i, (x, y)) in a.iter().zip(b).enumerate() {
                compare_json(&format!("{path}[{i}]"), x, y)?;
            }
            Ok(())
        }
        _ if expected == got => Ok(()),
        _ => Err(VectorError::mismatch(path, expected, got)),
    }
}

/// Builds a JSON object from `(key, value)` pairs, in order.
#[must_use]
pub fn object(pairs: Vec<(&str, Value)>) -> Value {
    Value::Object(pairs.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())
}

/// A fixed e2e identity: the X25519 private key `ik` and the Ed25519 seed `isk` (SPEC.md §10.1).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ident {
    /// `ik`.
    pub ik: [u8; 32],
    /// `isk`, the Ed25519 seed.
    pub isk: [u8; 32],
}

impl Ident {
    /// From [`fixed_bytes`] of `label/ik` and `label/isk`.
    #[must_use]
    pub fn fixed(label: &str) -> Self {
        Self { ik: fixed_bytes(&format!("{label}/ik")), isk: fixed_bytes(&format!("{label}/isk")) }
    }

    /// The key pair.
    #[must_use]
    pub fn pair(&self) -> e2e_protocol::e2e::identity::IdentityKeyPair {
        e2e_protocol::e2e::identity::IdentityKeyPair::from_parts(
            PrivateKey::from_bytes(self.ik),
            e2e_protocol::suite::SigningKey::from_seed(self.isk),
        )
    }

    /// `{"ik", "isk", "IK"}`.
    #[must_use]
    pub fn json(&self) -> Value {
        object(vec![
            ("ik", hex(self.ik).into()),
            ("isk", hex(self.isk).into()),
            ("IK", hex(self.pair().public().to_bytes()).into()),
        ])
    }

    /// The inverse of [`Ident::json`] (the public part is re-derived, not read).
    ///
    /// # Errors
    /// [`VectorError::Malformed`].
    pub fn from_json(v: &Value) -> Result<Self, VectorError> {
        Ok(Self { ik: hex_array(v, "ik")?, isk: hex_array(v, "isk")? })
    }
}

/// `{"private", "public"}` of an X25519 key.
#[must_use]
pub fn key_json(key: &PrivateKey) -> Value {
    object(vec![
        ("private", hex(key.expose()).into()),
        ("public", hex(key.public_key().as_bytes()).into()),
    ])
}

/// The private key of a [`key_json`] object.
///
/// # Errors
/// [`VectorError::Malformed`].
pub fn key_from_json(v: &Value) -> Result<PrivateKey, VectorError> {
    Ok(PrivateKey::from_bytes(hex_array(v, "private")?))
}
