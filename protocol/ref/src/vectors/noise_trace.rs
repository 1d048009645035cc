//! A step-by-step model of the channel's Noise IK handshake (SPEC.md §4), written from the Noise
//! specification with the suite's primitives, recording every `MixHash`, `MixKey`, `EncryptAndHash`
//! and the `Split()`. The channel module keeps its symmetric state private; the generator uses this
//! model to print the key schedule, and checks it against the channel's real messages byte for byte.

use serde_json::{Value, json};

use super::util::hex;
use e2e_protocol::channel::PROTOCOL_NAME;
use e2e_protocol::suite::{AeadKey, CryptoError, HASH_LEN, PrivateKey, hmac_sha256, sha256};

/// Noise's `HKDF(ck, ikm, 2)` (SPEC.md §4.1): `(output1, output2)`.
#[must_use]
pub fn noise_hkdf2(ck: &[u8; HASH_LEN], ikm: &[u8]) -> ([u8; HASH_LEN], [u8; HASH_LEN]) {
    let temp = hmac_sha256(ck, &[ikm]);
    let o1 = hmac_sha256(&temp, &[&[0x01]]);
    let o2 = hmac_sha256(&temp, &[&o1, &[0x02]]);
    (o1, o2)
}

/// The channel's AEAD nonce for counter `n` (SPEC.md §2.2): four zero bytes, then `LE64(n)`.
#[must_use]
pub fn channel_nonce(n: u64) -> [u8; 12] {
    let mut nonce = [0u8; 12];
    nonce[4..].copy_from_slice(&n.to_le_bytes());
    nonce
}

/// Noise `SymmetricState` with a trace of every operation.
struct Sym {
    ck: [u8; HASH_LEN],
    h: [u8; HASH_LEN],
    k: Option<[u8; HASH_LEN]>,
    n: u64,
    steps: Vec<Value>,
}

impl Sym {
    fn new() -> Self {
        let mut h = [0u8; HASH_LEN];
        h.copy_from_slice(PROTOCOL_NAME.as_bytes());
        let steps = vec![json!({
            "op": "InitializeSymmetric",
            "input": hex(PROTOCOL_NAME),
            "h": hex(h),
            "ck": hex(h),
        })];
        Self { ck: h, h, k: None, n: 0, steps }
    }

    fn mix_hash(&mut self, what: &str, data: &[u8]) {
        self.h = sha256(&[&self.h, data]);
        self.steps
            .push(json!({"op": "MixHash", "what": what, "input": hex(data), "h": hex(self.h)}));
    }

    fn mix_key(&mut self, what: &str, ikm: &[u8]) {
        let (ck, k) = noise_hkdf2(&self.ck, ikm);
        self.ck = ck;
        self.k = Some(k);
        self.n = 0;
        self.steps.push(
            json!({"op": "MixKey", "what": what, "input": hex(ikm), "ck": hex(ck), "k": hex(k)}),
        );
    }

    fn encrypt_and_hash(&mut self, what: &str, plaintext: &[u8]) -> Vec<u8> {
        // Every EncryptAndHash of IK comes after a MixKey, so `k` is always set here; without a key
        // Noise's EncryptAndHash is the identity.
        let (ciphertext, nonce) = match self.k {
            Some(k) => {
                let nonce = channel_nonce(self.n);
                self.n += 1;
                (AeadKey::new(k).seal(&nonce, &self.h, plaintext), hex(nonce))
            }
            None => (plaintext.to_vec(), String::new()),
        };
        let h_before = self.h;
        self.h = sha256(&[&self.h, &ciphertext]);
        self.steps.push(json!({
            "op": "EncryptAndHash",
            "what": what,
            "ad": hex(h_before),
            "nonce": nonce,
            "plaintext": hex(plaintext),
            "ciphertext": hex(&ciphertext),
            "h": hex(self.h),
        }));
        ciphertext
    }
}

/// Everything a fixed IK handshake derives.
pub struct HandshakeTrace {
    /// Every operation, in order, as JSON objects.
    pub steps: Vec<Value>,
    /// Noise message 1.
    pub message1: Vec<u8>,
    /// Noise message 2.
    pub message2: Vec<u8>,
    /// The DH outputs `es`, `ss`, `ee`, `se`.
    pub dh: [(&'static str, [u8; 32]); 4],
    /// The final handshake hash.
    pub handshake_hash: [u8; HASH_LEN],
    /// `Split()`: the initiator-to-responder key.
    pub k1: [u8; HASH_LEN],
    /// `Split()`: the responder-to-initiator key.
    pub k2: [u8; HASH_LEN],
}

impl HandshakeTrace {
    /// The transport key for a direction: `true` for initiator → responder.
    #[must_use]
    pub const fn key(&self, from_initiator: bool) -> &[u8; HASH_LEN] {
        if from_initiator { &self.k1 } else { &self.k2 }
    }
}

/// The four keys of a handshake and its prologue and payloads.
pub struct HandshakeInputs<'a> {
    /// The prologue.
    pub prologue: &'a [u8],
    /// Initiator static `s`.
    pub is: &'a PrivateKey,
    /// Initiator ephemeral `e`.
    pub ie: &'a PrivateKey,
    /// Responder static `s`.
    pub rs: &'a PrivateKey,
    /// Responder ephemeral `e`.
    pub re: &'a PrivateKey,
    /// Message 1 payload.
    pub payload1: &'a [u8],
    /// Message 2 payload.
    pub payload2: &'a [u8],
}

/// Runs the whole handshake of SPEC.md §4 with both sides' keys.
///
/// # Errors
/// [`CryptoError::NonContributory`] if a DH is all zero.
pub fn trace(i: &HandshakeInputs<'_>) -> Result<HandshakeTrace, CryptoError> {
    let mut s = Sym::new();
    s.mix_hash("prologue", i.prologue);
    s.mix_hash("responder static (pre-message <- s)", i.rs.public_key().as_bytes());

    let mut message1 = i.ie.public_key().as_bytes().to_vec();
    s.mix_hash("e (initiator ephemeral)", i.ie.public_key().as_bytes());
    let es = *i.ie.diffie_hellman(&i.rs.public_key())?.expose();
    s.mix_key("es = DH(e_i, s_r)", &es);
    message1.extend(s.encrypt_and_hash("s (initiator static)", i.is.public_key().as_bytes()));
    let ss = *i.is.diffie_hellman(&i.rs.public_key())?.expose();
    s.mix_key("ss = DH(s_i, s_r)", &ss);
    message1.extend(s.encrypt_and_hash("payload 1", i.payload1));

    let mut message2 = i.re.public_key().as_bytes().to_vec();
    s.mix_hash("e (responder ephemeral)", i.re.public_key().as_bytes());
    let ee = *i.re.diffie_hellman(&i.ie.public_key())?.expose();
    s.mix_key("ee = DH(e_r, e_i)", &ee);
    let se = *i.re.diffie_hellman(&i.is.public_key())?.expose();
    s.mix_key("se = DH(e_r, s_i)", &se);
    message2.extend(s.encrypt_and_hash("payload 2", i.payload2));

    let (k1, k2) = noise_hkdf2(&s.ck, &[]);
    s.steps.push(json!({
        "op": "Split",
        "input": "",
        "k1 (initiator to responder)": hex(k1),
        "k2 (responder to initiator)": hex(k2),
    }));
    Ok(HandshakeTrace {
        steps: s.steps,
        message1,
        message2,
        dh: [("es", es), ("ss", ss), ("ee", ee), ("se", se)],
        handshake_hash: s.h,
        k1,
        k2,
    })
}

/// A message 1 whose encrypted static key is `static_key` — any 32 bytes, which no initiator
/// holding a private key could send if they are a point of small order — followed by a 16-byte
/// stand-in for the payload's tag. The prefix is exactly what an honest initiator with ephemeral
/// `ie` writes up to `EncryptAndHash(s)`; a responder that checks `ss` refuses it there, before the
/// payload (SPEC.md §2.1, §4.3).
///
/// # Errors
/// [`CryptoError::NonContributory`] if `es` is all zero.
pub fn message1_with_static(
    prologue: &[u8],
    ie: &PrivateKey,
    rs: &e2e_protocol::suite::PublicKey,
    static_key: &[u8; 32],
) -> Result<Vec<u8>, CryptoError> {
    let mut s = Sym::new();
    s.mix_hash("prologue", prologue);
    s.mix_hash("responder static (pre-message <- s)", rs.as_bytes());
    let mut message1 = ie.public_key().as_bytes().to_vec();
    s.mix_hash("e (initiator ephemeral)", ie.public_key().as_bytes());
    let es = *ie.diffie_hellman(rs)?.expose();
    s.mix_key("es = DH(e_i, s_r)", &es);
    message1.extend(s.encrypt_and_hash("s (initiator static)", static_key));
    message1.extend([0u8; 16]);
    Ok(message1)
}

/// Seals one transport message under `key` with counter `n` (SPEC.md §4.4).
#[must_use]
pub fn transport_seal(key: &[u8; HASH_LEN], n: u64, plaintext: &[u8]) -> Vec<u8> {
    AeadKey::new(*key).seal(&channel_nonce(n), &[], plaintext)
}

/// Opens one transport message under `key` with counter `n`.
///
/// # Errors
/// [`CryptoError::AeadOpen`] / [`CryptoError::AeadTruncated`].
pub fn transport_open(
    key: &[u8; HASH_LEN],
    n: u64,
    ciphertext: &[u8],
) -> Result<Vec<u8>, CryptoError> {
    AeadKey::new(*key).open(&channel_nonce(n), &[], ciphertext)
}
