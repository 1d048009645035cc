//! The wire codec (`e2e_protocol::wire`) tested from outside the crate.
//!
//! * Properties over generated values: every valid [`Message`] and [`LinkFrame`] round-trips, and
//!   every byte string that decodes — arbitrary, or a mutation of a valid encoding — is the one
//!   canonical encoding of what it decodes to; decoding never panics; [`frame_len`] agrees with
//!   [`Codec::decode`].
//! * One named test per malformed-frame class ([`WireError`] variant), per family where the class
//!   applies, asserting the exact variant and its fields; and one per bounded or coded field of the
//!   e2e messages (`one_time_prekeys`, `has_opk`, `bundle_refusal`, `envelope`).
//! * Byte-exact known answers, written by hand from the format in SPEC.md §3.3 and §15.1, never by
//!   calling `encode`.
//!
//! Type codes and layouts appear here as literals taken from SPEC.md §3 and §15.1 and the doc
//! comments, not from the crate, so that a change of code in the crate is caught here. The message
//! family is the hop messages `0x10`–`0x23` and the e2e messages `0x30`–`0x38`; `0x39`–`0x3f` are
//! reserved, hence unknown message types like any other unassigned code. The wire layer does not
//! parse an envelope's inner format (SPEC.md §13) nor validate keys or signatures (§10.3), so keys,
//! signatures and envelopes are arbitrary bytes here.

#![cfg(test)]

use std::fmt::Debug;

use e2e_protocol::suite::{PublicKey, Signature, VerifyingKey};
use e2e_protocol::wire::{
    AckStatus, Body, BundleRefusal, Codec, Envelope, FetchedBundle, HANDSHAKE_INIT_MIN_LEN,
    HANDSHAKE_RESP_MIN_LEN, HEADER_LEN, IdentityPublic, LinkFrame, LinkKind, MAX_BODY_LEN,
    MAX_ENCODED_PREKEYS, MAX_ENVELOPE_LEN, MAX_FRAME_LEN, MAX_LINK_BODY_LEN, MAX_MESSAGE_LEN,
    MAX_NAME_LEN, Message, MessageId, Name, OneTimePrekeyPublic, RefusalReason, RejectReason,
    SignedPrekeyPublic, TRANSPORT_MIN_LEN, UploadedBundle, VERSION, WireError, frame_len,
};
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::{Index, select};
use proptest::test_runner::TestCaseError;

// ---------------------------------------------------------------------------------------------
// The format, restated from SPEC.md and the doc comments
// ---------------------------------------------------------------------------------------------

/// The message family, SPEC.md §3.3 and §15.1: every assigned code with its name. The single source
/// of the message codes in this file.
const MESSAGES: [(u8, &str); 17] = [
    (0x10, "Register"),
    (0x11, "Welcome"),
    (0x12, "Refused"),
    (0x13, "Ready"),
    (0x20, "Send"),
    (0x21, "Deliver"),
    (0x22, "Ack"),
    (0x23, "Reject"),
    (0x30, "UploadBundle"),
    (0x31, "BundleStored"),
    (0x32, "BundleRefused"),
    (0x33, "FetchBundle"),
    (0x34, "Bundle"),
    (0x35, "NoBundle"),
    (0x36, "E2eSend"),
    (0x37, "E2eDeliver"),
    (0x38, "PrekeysLow"),
];
/// The codes of [`MESSAGES`].
const MESSAGE_TYPES: [u8; MESSAGES.len()] = {
    let mut codes = [0; MESSAGES.len()];
    let mut i = 0;
    while i < MESSAGES.len() {
        codes[i] = MESSAGES[i].0;
        i += 1;
    }
    codes
};
/// `HandshakeInit`, `HandshakeResp`, `Transport`.
const LINK_TYPES: [u8; 3] = [0x01, 0x02, 0x03];
/// Every assigned code of either family: [`LINK_TYPES`] then [`MESSAGE_TYPES`].
const ALL_TYPES: [u8; LINK_TYPES.len() + MESSAGE_TYPES.len()] = {
    let mut all = [0; LINK_TYPES.len() + MESSAGE_TYPES.len()];
    let mut i = 0;
    while i < LINK_TYPES.len() {
        all[i] = LINK_TYPES[i];
        i += 1;
    }
    let mut j = 0;
    while j < MESSAGE_TYPES.len() {
        all[i + j] = MESSAGE_TYPES[j];
        j += 1;
    }
    all
};
/// The name alphabet: `a-z`, `0-9`, `-`, `_`, `.`.
const NAME_ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789-_.";
/// An encoded identity `IK = IK_dh || IK_sig` (SPEC.md §10.1).
const IK_LEN: usize = 32 + 32;
/// An encoded signed prekey: `spk_id: u32`, `SPK`, `spk_sig` (SPEC.md §15.1).
const SPK_LEN: usize = 4 + 32 + 64;
/// An encoded one-time prekey: `opk_id: u32`, `OPK` (SPEC.md §15.1).
const OPK_LEN: usize = 4 + 32;
/// An `UploadBundle` body without one-time prekeys: `IK`, signed prekey, `count`.
const UPLOAD_FIXED_LEN: usize = IK_LEN + SPK_LEN + 2;

/// A frame family, with the type codes this file expects it to know.
trait Family: Codec + Clone + PartialEq + Debug {
    const TYPES: &'static [u8];
}

impl Family for Message {
    const TYPES: &'static [u8] = &MESSAGE_TYPES;
}

impl Family for LinkFrame {
    const TYPES: &'static [u8] = &LINK_TYPES;
}

/// Largest frame (header included) of family `C`.
fn max_frame<C: Codec>() -> usize {
    HEADER_LEN + C::MAX_FRAME_BODY_LEN
}

/// A frame with an explicit declared body length, which need not match `body`.
fn frame_declaring(version: u8, frame_type: u8, declared: u32, body: &[u8]) -> Vec<u8> {
    let mut out = vec![version, frame_type];
    out.extend_from_slice(&declared.to_be_bytes());
    out.extend_from_slice(body);
    out
}

/// A frame whose header declares exactly `body`.
fn frame(frame_type: u8, body: &[u8]) -> Vec<u8> {
    let declared = u32::try_from(body.len()).expect("test bodies fit in u32");
    frame_declaring(VERSION, frame_type, declared, body)
}

/// Hex with any whitespace in it, so known answers can be laid out field by field.
fn unhex(s: &str) -> Vec<u8> {
    let compact: String = s.split_whitespace().collect();
    hex::decode(compact).expect("valid hex in a test literal")
}

/// `n` pseudo-random bytes from `seed` (SplitMix64): large bodies without generating and shrinking
/// tens of thousands of individual byte values.
fn filled(n: usize, seed: u64) -> Vec<u8> {
    let mut state = seed;
    let mut out = Vec::with_capacity(n + 8);
    while out.len() < n {
        state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        out.extend_from_slice(&(z ^ (z >> 31)).to_be_bytes());
    }
    out.truncate(n);
    out
}

fn name(s: &str) -> Name {
    Name::new(s).expect("valid test name")
}

fn body(b: &[u8]) -> Body {
    Body::new(b.to_vec()).expect("valid test body")
}

fn envelope(b: &[u8]) -> Envelope {
    Envelope::new(b.to_vec()).expect("valid test envelope")
}

/// `N` consecutive byte values from `start` (wrapping): keys whose byte order shows in a dump.
fn seq<const N: usize>(start: u8) -> [u8; N] {
    std::array::from_fn(|i| start.wrapping_add(u8::try_from(i % 256).expect("below 256")))
}

fn identity(dh: [u8; 32], sign: [u8; 32]) -> IdentityPublic {
    IdentityPublic { dh: PublicKey::from_bytes(dh), sign: VerifyingKey::from_bytes(sign) }
}

fn signed_prekey(id: u32, key: [u8; 32], signature: [u8; 64]) -> SignedPrekeyPublic {
    SignedPrekeyPublic {
        id,
        key: PublicKey::from_bytes(key),
        signature: Signature::from_bytes(signature),
    }
}

fn one_time_prekey(id: u32, key: [u8; 32]) -> OneTimePrekeyPublic {
    OneTimePrekeyPublic { id, key: PublicKey::from_bytes(key) }
}

/// `n` one-time prekeys with consecutive ids from `first` (wrapping) and pseudo-random keys.
fn one_time_prekeys(first: u32, n: usize, seed: u64) -> Vec<OneTimePrekeyPublic> {
    filled(n * 32, seed)
        .chunks_exact(32)
        .enumerate()
        .map(|(i, key)| {
            let id = first.wrapping_add(u32::try_from(i).expect("small batch"));
            one_time_prekey(id, key.try_into().expect("32-byte chunk"))
        })
        .collect()
}

/// An identity and a signed prekey, for the tests that need any valid ones.
fn sample_identity() -> IdentityPublic {
    identity([0x11; 32], [0x22; 32])
}

fn sample_signed_prekey() -> SignedPrekeyPublic {
    signed_prekey(1, [0x33; 32], [0x44; 64])
}

fn uploaded(opks: Vec<OneTimePrekeyPublic>) -> UploadedBundle {
    UploadedBundle::new(sample_identity(), sample_signed_prekey(), opks).expect("within bounds")
}

// Raw e2e fields, built by hand from SPEC.md §15.1, for the tests that corrupt one of them.

/// A `Name` field.
fn name_field(name: &[u8]) -> Vec<u8> {
    [&[u8::try_from(name.len()).expect("short")][..], name].concat()
}

/// `IK`, then the signed prekey `(spk_id = 1, SPK, spk_sig)`: the start of an `UploadBundle` body,
/// and of a `Bundle` body after its name. (The bytes of [`sample_identity`] and
/// [`sample_signed_prekey`].)
fn ik_and_spk_fields() -> Vec<u8> {
    [&[0x11; 32][..], &[0x22; 32], &[0, 0, 0, 1], &[0x33; 32], &[0x44; 64]].concat()
}

/// One-time prekey `(id, 0x55 × 32)`.
fn opk_field(id: u32) -> Vec<u8> {
    [&id.to_be_bytes()[..], &[0x55; 32]].concat()
}

/// An `UploadBundle` body declaring `count` one-time prekeys and holding `held` of them (ids from 2).
fn upload_fields(count: u16, held: usize) -> Vec<u8> {
    let mut out = ik_and_spk_fields();
    out.extend_from_slice(&count.to_be_bytes());
    for id in (2..).take(held) {
        out.extend_from_slice(&opk_field(id));
    }
    out
}

/// An envelope field: `len: u16` then `held` bytes.
fn envelope_field(len: u16, held: usize) -> Vec<u8> {
    [&len.to_be_bytes()[..], &vec![0xe7; held]].concat()
}

/// Proptest settings: `cases` cases, and no regression files written into the source tree (a
/// failure prints its minimal input and seed instead).
fn config(cases: u32) -> ProptestConfig {
    ProptestConfig { failure_persistence: None, ..ProptestConfig::with_cases(cases) }
}

// ---------------------------------------------------------------------------------------------
// Strategies
// ---------------------------------------------------------------------------------------------

fn arb_name() -> impl Strategy<Value = Name> {
    prop_oneof![
        6 => "[a-z0-9._-]{1,32}",
        1 => "[a-z0-9._-]",
        1 => "[a-z0-9._-]{32}",
    ]
    .prop_map(|s: String| Name::new(&s).expect("generated from the name alphabet"))
}

/// 0 to `MAX_BODY_LEN` bytes, mostly small, sometimes anywhere in the range, sometimes the maximum.
fn arb_body() -> impl Strategy<Value = Body> {
    prop_oneof![
        12 => vec(any::<u8>(), 0..=64),
        3 => (0..=MAX_BODY_LEN, any::<u64>()).prop_map(|(n, seed)| filled(n, seed)),
        1 => any::<u64>().prop_map(|seed| filled(MAX_BODY_LEN, seed)),
    ]
    .prop_map(|b| Body::new(b).expect("generated within MAX_BODY_LEN"))
}

fn arb_id() -> impl Strategy<Value = MessageId> {
    prop_oneof![
        1 => Just(0),
        1 => Just(1),
        1 => Just(u64::MAX),
        6 => any::<u64>(),
    ]
    .prop_map(MessageId)
}

fn arb_refusal() -> impl Strategy<Value = RefusalReason> {
    prop_oneof![
        Just(RefusalReason::NameTaken),
        Just(RefusalReason::NotARegistration),
        Just(RefusalReason::KeyInUse),
        Just(RefusalReason::ServerFull),
    ]
}

fn arb_ack_status() -> impl Strategy<Value = AckStatus> {
    prop_oneof![Just(AckStatus::Relayed), Just(AckStatus::Queued)]
}

fn arb_reject_reason() -> impl Strategy<Value = RejectReason> {
    prop_oneof![
        Just(RejectReason::Policy),
        Just(RejectReason::MailboxFull),
        Just(RejectReason::UnknownRecipient),
        Just(RejectReason::ServerFull),
    ]
}

fn arb_bundle_refusal() -> impl Strategy<Value = BundleRefusal> {
    prop_oneof![
        Just(BundleRefusal::BadSigningKey),
        Just(BundleRefusal::LowOrderKey),
        Just(BundleRefusal::BadSignature),
        Just(BundleRefusal::TooManyPrekeys),
        Just(BundleRefusal::DuplicatePrekeyId),
    ]
}

/// 32 arbitrary bytes, sometimes all zero or all ones: the codec does not validate keys.
fn arb_bytes32() -> impl Strategy<Value = [u8; 32]> {
    prop_oneof![1 => Just([0; 32]), 1 => Just([0xff; 32]), 8 => any::<[u8; 32]>()]
}

/// 64 arbitrary bytes (a signature), sometimes all zero or all ones.
fn arb_bytes64() -> impl Strategy<Value = [u8; 64]> {
    prop_oneof![1 => Just([0; 64]), 1 => Just([0xff; 64]), 8 => any::<[u8; 64]>()]
}

/// A prekey id: any `u32`, with the edges.
fn arb_prekey_id() -> impl Strategy<Value = u32> {
    prop_oneof![1 => Just(0), 1 => Just(1), 1 => Just(u32::MAX), 6 => any::<u32>()]
}

fn arb_identity() -> impl Strategy<Value = IdentityPublic> {
    (arb_bytes32(), arb_bytes32()).prop_map(|(dh, sign)| identity(dh, sign))
}

fn arb_signed_prekey() -> impl Strategy<Value = SignedPrekeyPublic> {
    (arb_prekey_id(), arb_bytes32(), arb_bytes64())
        .prop_map(|(id, key, signature)| signed_prekey(id, key, signature))
}

fn arb_one_time_prekey() -> impl Strategy<Value = OneTimePrekeyPublic> {
    (arb_prekey_id(), arb_bytes32()).prop_map(|(id, key)| one_time_prekey(id, key))
}

/// 0 to `MAX_ENCODED_PREKEYS` one-time prekeys: mostly a handful, sometimes up to 20, sometimes
/// anywhere in the range (ids then consecutive from a random start), sometimes the maximum.
fn arb_one_time_prekeys() -> impl Strategy<Value = Vec<OneTimePrekeyPublic>> {
    prop_oneof![
        8 => vec(arb_one_time_prekey(), 0..=3),
        4 => vec(arb_one_time_prekey(), 0..=20),
        2 => (0..=MAX_ENCODED_PREKEYS, any::<u32>(), any::<u64>())
            .prop_map(|(n, first, seed)| one_time_prekeys(first, n, seed)),
        1 => any::<u64>().prop_map(|seed| one_time_prekeys(2, MAX_ENCODED_PREKEYS, seed)),
    ]
}

fn arb_uploaded_bundle() -> impl Strategy<Value = UploadedBundle> {
    (arb_identity(), arb_signed_prekey(), arb_one_time_prekeys()).prop_map(
        |(identity, signed_prekey, opks)| {
            UploadedBundle::new(identity, signed_prekey, opks)
                .expect("generated within MAX_ENCODED_PREKEYS")
        },
    )
}

fn arb_fetched_bundle() -> impl Strategy<Value = FetchedBundle> {
    (arb_identity(), arb_signed_prekey(), proptest::option::of(arb_one_time_prekey())).prop_map(
        |(identity, signed_prekey, one_time_prekey)| FetchedBundle {
            identity,
            signed_prekey,
            one_time_prekey,
        },
    )
}

/// 1 to `MAX_ENVELOPE_LEN` bytes, mostly small, sometimes anywhere in the range, sometimes the
/// maximum.
fn arb_envelope() -> impl Strategy<Value = Envelope> {
    prop_oneof![
        12 => vec(any::<u8>(), 1..=64),
        3 => (1..=MAX_ENVELOPE_LEN, any::<u64>()).prop_map(|(n, seed)| filled(n, seed)),
        1 => any::<u64>().prop_map(|seed| filled(MAX_ENVELOPE_LEN, seed)),
    ]
    .prop_map(|b| Envelope::new(b).expect("generated within 1..=MAX_ENVELOPE_LEN"))
}

fn arb_prekey_count() -> impl Strategy<Value = u16> {
    prop_oneof![1 => Just(0), 1 => Just(u16::MAX), 2 => 0u16..=100, 4 => any::<u16>()]
}

/// Every `Message` variant with arbitrary valid fields.
fn arb_message() -> impl Strategy<Value = Message> {
    prop_oneof![
        arb_name().prop_map(|name| Message::Register { name }),
        arb_name().prop_map(|name| Message::Welcome { name }),
        arb_refusal().prop_map(|reason| Message::Refused { reason }),
        Just(Message::Ready),
        (arb_id(), arb_name(), arb_body()).prop_map(|(id, to, body)| Message::Send {
            id,
            to,
            body
        }),
        (arb_id(), arb_name(), arb_body()).prop_map(|(id, from, body)| Message::Deliver {
            id,
            from,
            body
        }),
        (arb_id(), arb_ack_status()).prop_map(|(id, status)| Message::Ack { id, status }),
        (arb_id(), arb_reject_reason()).prop_map(|(id, reason)| Message::Reject { id, reason }),
        arb_uploaded_bundle().prop_map(|bundle| Message::UploadBundle { bundle }),
        arb_prekey_count().prop_map(|one_time_prekeys| Message::BundleStored { one_time_prekeys }),
        arb_prekey_count().prop_map(|one_time_prekeys| Message::PrekeysLow { one_time_prekeys }),
        arb_bundle_refusal().prop_map(|reason| Message::BundleRefused { reason }),
        arb_name().prop_map(|name| Message::FetchBundle { name }),
        (arb_name(), arb_fetched_bundle())
            .prop_map(|(name, bundle)| Message::Bundle { name, bundle }),
        arb_name().prop_map(|name| Message::NoBundle { name }),
        (arb_id(), arb_name(), arb_envelope()).prop_map(|(id, to, envelope)| Message::E2eSend {
            id,
            to,
            envelope
        }),
        (arb_id(), arb_name(), arb_envelope())
            .prop_map(|(id, from, envelope)| Message::E2eDeliver { id, from, envelope }),
    ]
}

type LinkCtor = fn(Vec<u8>) -> Result<LinkFrame, WireError>;

/// Every `LinkFrame` variant: a Noise message from the variant's minimum to a few KB, sometimes
/// exactly `MAX_LINK_BODY_LEN`.
fn arb_link_frame() -> impl Strategy<Value = LinkFrame> {
    let kind: BoxedStrategy<(usize, LinkCtor)> = prop_oneof![
        Just((HANDSHAKE_INIT_MIN_LEN, LinkFrame::handshake_init as LinkCtor)),
        Just((HANDSHAKE_RESP_MIN_LEN, LinkFrame::handshake_resp as LinkCtor)),
        Just((TRANSPORT_MIN_LEN, LinkFrame::transport as LinkCtor)),
    ]
    .boxed();
    kind.prop_flat_map(|(min, ctor)| {
        prop_oneof![
            12 => vec(any::<u8>(), min..=min + 64),
            6 => (min..=4096usize, any::<u64>()).prop_map(|(n, seed)| filled(n, seed)),
            1 => any::<u64>().prop_map(|seed| filled(MAX_LINK_BODY_LEN, seed)),
        ]
        .prop_map(move |noise| ctor(noise).expect("generated within the variant's bounds"))
    })
}

/// A message id.
fn id_piece() -> BoxedStrategy<Vec<u8>> {
    any::<u64>().prop_map(|id| id.to_be_bytes().to_vec()).boxed()
}

/// A name field: its length prefix usually right, its bytes mostly from the alphabet.
fn name_piece() -> BoxedStrategy<Vec<u8>> {
    let len = prop_oneof![3 => Just(None), 1 => (0u8..=40).prop_map(Some)];
    let name_byte = prop_oneof![16 => select(NAME_ALPHABET), 1 => any::<u8>()];
    (len, vec(name_byte, 0..=34))
        .prop_map(|(len, name)| {
            let true_len = u8::try_from(name.len()).expect("short");
            [&[len.unwrap_or(true_len)][..], &name].concat()
        })
        .boxed()
}

/// A body field: its length prefix usually right.
fn body_piece() -> BoxedStrategy<Vec<u8>> {
    let len = prop_oneof![3 => Just(None), 1 => any::<u16>().prop_map(Some)];
    (len, vec(any::<u8>(), 0..=8))
        .prop_map(|(len, content)| {
            let true_len = u16::try_from(content.len()).expect("short");
            [&len.unwrap_or(true_len).to_be_bytes()[..], &content].concat()
        })
        .boxed()
}

/// An enum code, valid or not (the largest valid code is `0x05`, a `BundleRefusal`).
fn code_piece() -> BoxedStrategy<Vec<u8>> {
    (0u8..=6).prop_map(|code| vec![code]).boxed()
}

/// Exactly `n` arbitrary bytes: a `u16` or `u32` field, a key, a signature.
fn fixed_piece(n: usize) -> BoxedStrategy<Vec<u8>> {
    vec(any::<u8>(), n).boxed()
}

/// `IK` and a signed prekey: 164 arbitrary bytes.
fn ik_and_spk_piece() -> BoxedStrategy<Vec<u8>> {
    fixed_piece(IK_LEN + SPK_LEN)
}

/// A one-time prekey count and the prekeys: the count usually right, otherwise any, near the bound,
/// or one off.
fn prekeys_piece() -> BoxedStrategy<Vec<u8>> {
    let count = prop_oneof![
        6 => Just(None),
        1 => any::<u16>().prop_map(Some),
        1 => (995u16..=1005).prop_map(Some),
        1 => (0u16..=5).prop_map(Some),
    ];
    (count, vec(fixed_piece(OPK_LEN), 0..=4))
        .prop_map(|(count, opks)| {
            let true_count = u16::try_from(opks.len()).expect("short");
            [&count.unwrap_or(true_count).to_be_bytes()[..], &opks.concat()].concat()
        })
        .boxed()
}

/// `has_opk` and what follows it: usually `0x00` alone or `0x01` and a prekey, sometimes any flag
/// followed by anything up to a prekey's length.
fn has_opk_piece() -> BoxedStrategy<Vec<u8>> {
    prop_oneof![
        3 => Just(vec![0x00]),
        3 => fixed_piece(OPK_LEN).prop_map(|opk| [&[0x01][..], &opk].concat()),
        2 => (any::<u8>(), prop_oneof![Just(0), Just(OPK_LEN), 0..=OPK_LEN])
            .prop_map(|(flag, n)| [&[flag][..], &vec![0x55; n]].concat()),
    ]
    .boxed()
}

/// An envelope field: its length prefix usually right (so an empty one is the bad length 0),
/// sometimes any.
fn envelope_piece() -> BoxedStrategy<Vec<u8>> {
    let len = prop_oneof![3 => Just(None), 1 => any::<u16>().prop_map(Some)];
    (len, vec(any::<u8>(), 0..=8))
        .prop_map(|(len, content)| {
            let true_len = u16::try_from(content.len()).expect("short");
            [&len.unwrap_or(true_len).to_be_bytes()[..], &content].concat()
        })
        .boxed()
}

/// Opaque bytes, long enough to pass a link frame's minimum now and then.
fn noise_piece() -> BoxedStrategy<Vec<u8>> {
    vec(any::<u8>(), 0..=100).boxed()
}

/// A body for type `t`: usually the fields its type calls for (each usually right), otherwise a
/// random sequence of pieces.
fn arb_body_for(t: u8) -> BoxedStrategy<Vec<u8>> {
    let template: Vec<BoxedStrategy<Vec<u8>>> = match t {
        0x10 | 0x11 => vec![name_piece()],
        0x12 => vec![code_piece()],
        0x13 => vec![],
        0x20 | 0x21 => vec![id_piece(), name_piece(), body_piece()],
        0x22 | 0x23 => vec![id_piece(), code_piece()],
        0x30 => vec![ik_and_spk_piece(), prekeys_piece()],
        0x31 | 0x38 => vec![fixed_piece(2)],
        0x32 => vec![code_piece()],
        0x33 | 0x35 => vec![name_piece()],
        0x34 => vec![name_piece(), ik_and_spk_piece(), has_opk_piece()],
        0x36 | 0x37 => vec![id_piece(), name_piece(), envelope_piece()],
        _ => vec![noise_piece()],
    };
    let piece = prop_oneof![
        id_piece(),
        name_piece(),
        body_piece(),
        code_piece(),
        noise_piece(),
        fixed_piece(OPK_LEN),
        prekeys_piece(),
        has_opk_piece(),
        envelope_piece(),
    ];
    prop_oneof![
        3 => template.prop_map(|pieces| pieces.concat()),
        1 => vec(piece, 0..=4).prop_map(|pieces| pieces.concat()),
    ]
    .boxed()
}

/// Byte strings shaped like frames: mostly a well-formed-looking header (usually version 1, usually
/// an assigned type of either family, usually the true body length) over a body built from the
/// grammar of its type, so that a good share decode and the rest fail in every way; sometimes pure
/// noise.
fn arb_frame_like() -> impl Strategy<Value = Vec<u8>> {
    let version = prop_oneof![12 => Just(VERSION), 1 => any::<u8>()];
    let frame_type = prop_oneof![8 => select(&ALL_TYPES[..]), 1 => any::<u8>()];
    let declared = prop_oneof![
        8 => Just(None),
        1 => (0u32..=128).prop_map(Some),
        1 => any::<u32>().prop_map(Some),
    ];
    let shaped = (version, frame_type.prop_flat_map(|t| (Just(t), arb_body_for(t))), declared)
        .prop_map(|(version, (frame_type, body), declared)| {
            let true_len = u32::try_from(body.len()).expect("small");
            frame_declaring(version, frame_type, declared.unwrap_or(true_len), &body)
        });
    prop_oneof![1 => vec(any::<u8>(), 0..=24), 8 => shaped]
}

/// One change to a valid encoding.
#[derive(Clone, Debug)]
enum Mutation {
    /// XOR one byte with a non-zero mask.
    FlipByte { at: Index, mask: u8 },
    /// Keep a proper prefix.
    Truncate { keep: Index },
    /// Append bytes.
    Extend { extra: Vec<u8> },
    /// Overwrite the declared body length.
    SetBodyLen { declared: u32 },
    /// Move the declared body length by a small non-zero amount.
    ShiftBodyLen { delta: i64 },
    /// Insert one byte (anywhere, including at the end).
    InsertByte { at: Index, byte: u8 },
    /// Remove one byte.
    RemoveByte { at: Index },
    /// Replace up to 4 body bytes by up to 4 others and declare the new body length: the header stays
    /// consistent with the input, so only the body's own structure can refuse the result.
    SpliceBody { at: Index, remove: usize, insert: Vec<u8> },
}

fn arb_mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        4 => (any::<Index>(), 1u8..=255).prop_map(|(at, mask)| Mutation::FlipByte { at, mask }),
        2 => any::<Index>().prop_map(|keep| Mutation::Truncate { keep }),
        2 => vec(any::<u8>(), 1..=16).prop_map(|extra| Mutation::Extend { extra }),
        1 => prop_oneof![any::<u32>(), 0u32..=70_000]
            .prop_map(|declared| Mutation::SetBodyLen { declared }),
        2 => prop_oneof![-64i64..=-1, 1i64..=64].prop_map(|delta| Mutation::ShiftBodyLen { delta }),
        1 => (any::<Index>(), any::<u8>()).prop_map(|(at, byte)| Mutation::InsertByte { at, byte }),
        1 => any::<Index>().prop_map(|at| Mutation::RemoveByte { at }),
        3 => (any::<Index>(), 0usize..=4, vec(any::<u8>(), 0..=4))
            .prop_map(|(at, remove, insert)| Mutation::SpliceBody { at, remove, insert }),
    ]
}

/// What decoding a mutated encoding must give.
#[derive(Debug, PartialEq)]
enum Expect {
    /// Exactly this error.
    Error(WireError),
    /// The original value (the mutation changed nothing).
    Original,
    /// Anything, as long as the input-independent properties hold.
    Anything,
}

/// Applies `m` to the valid encoding `bytes` of a `C`, and predicts the outcome where the format
/// fixes it.
fn mutate<C: Family>(bytes: &[u8], m: &Mutation) -> (Vec<u8>, Expect) {
    let len = bytes.len();
    let body_len = len - HEADER_LEN;
    // The outcome of setting the declared body length to `declared` on an unchanged input.
    let with_declared = |declared: u64| -> (Vec<u8>, Expect) {
        let declared = u32::try_from(declared).unwrap_or(u32::MAX);
        let mut out = bytes.to_vec();
        out[2..HEADER_LEN].copy_from_slice(&declared.to_be_bytes());
        let declared = usize::try_from(declared).expect("u32 fits usize");
        let expect = if declared > C::MAX_FRAME_BODY_LEN {
            Expect::Error(WireError::Oversized {
                len: HEADER_LEN + declared,
                max: HEADER_LEN + C::MAX_FRAME_BODY_LEN,
            })
        } else if declared > body_len {
            Expect::Error(WireError::Truncated)
        } else if declared < body_len {
            Expect::Error(WireError::TrailingBytes { extra: body_len - declared })
        } else {
            Expect::Original
        };
        (out, expect)
    };
    match m {
        Mutation::FlipByte { at, mask } => {
            let at = at.index(len);
            let mut out = bytes.to_vec();
            out[at] ^= mask;
            let expect = match at {
                0 => Expect::Error(WireError::UnknownVersion(out[0])),
                1 if !C::TYPES.contains(&out[1]) => Expect::Error(WireError::UnknownType(out[1])),
                2..HEADER_LEN => {
                    let declared = u32::from_be_bytes([out[2], out[3], out[4], out[5]]);
                    return with_declared(u64::from(declared));
                }
                _ => Expect::Anything,
            };
            (out, expect)
        }
        Mutation::Truncate { keep } => {
            (bytes[..keep.index(len)].to_vec(), Expect::Error(WireError::Truncated))
        }
        Mutation::Extend { extra } => {
            let mut out = bytes.to_vec();
            out.extend_from_slice(extra);
            let expect = if out.len() > max_frame::<C>() {
                WireError::Oversized { len: out.len(), max: max_frame::<C>() }
            } else {
                WireError::TrailingBytes { extra: extra.len() }
            };
            (out, Expect::Error(expect))
        }
        Mutation::SetBodyLen { declared } => with_declared(u64::from(*declared)),
        Mutation::ShiftBodyLen { delta } => {
            let body_len = i64::try_from(body_len).expect("small");
            with_declared(u64::try_from((body_len + delta).max(0)).expect("non-negative"))
        }
        Mutation::InsertByte { at, byte } => {
            let at = at.index(len + 1);
            let mut out = bytes.to_vec();
            out.insert(at, *byte);
            // In the body, the header still declares the old length: one byte too many.
            let expect = if at < HEADER_LEN {
                Expect::Anything
            } else if out.len() > max_frame::<C>() {
                Expect::Error(WireError::Oversized { len: out.len(), max: max_frame::<C>() })
            } else {
                Expect::Error(WireError::TrailingBytes { extra: 1 })
            };
            (out, expect)
        }
        Mutation::RemoveByte { at } => {
            let at = at.index(len);
            let mut out = bytes.to_vec();
            out.remove(at);
            // In the body, the header still declares the old length: one byte short.
            let expect = if at < HEADER_LEN {
                Expect::Anything
            } else {
                Expect::Error(WireError::Truncated)
            };
            (out, expect)
        }
        Mutation::SpliceBody { at, remove, insert } => {
            let at = HEADER_LEN + at.index(body_len + 1);
            let mut out = bytes.to_vec();
            out.splice(at..(at + remove).min(len), insert.iter().copied());
            let new_body_len = u32::try_from(out.len() - HEADER_LEN).expect("small");
            out[2..HEADER_LEN].copy_from_slice(&new_body_len.to_be_bytes());
            let expect = if out.len() > max_frame::<C>() {
                Expect::Error(WireError::Oversized { len: out.len(), max: max_frame::<C>() })
            } else if out == bytes {
                Expect::Original
            } else {
                Expect::Anything
            };
            (out, expect)
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Property checks, generic over the family
// ---------------------------------------------------------------------------------------------

/// `decode(encode(x)) == Ok(x)`, and the header of `encode(x)` is as specified.
fn check_round_trip<C: Family>(value: &C) -> Result<(), TestCaseError> {
    let bytes = value.encode();
    prop_assert!(bytes.len() >= HEADER_LEN);
    prop_assert!(
        bytes.len() <= max_frame::<C>(),
        "encoding of {:?} exceeds the family maximum",
        value
    );
    prop_assert_eq!(bytes[0], VERSION);
    prop_assert_eq!(bytes[1], value.frame_type());
    prop_assert!(C::TYPES.contains(&bytes[1]));
    let declared = u32::from_be_bytes([bytes[2], bytes[3], bytes[4], bytes[5]]);
    prop_assert_eq!(usize::try_from(declared).ok(), Some(bytes.len() - HEADER_LEN));
    prop_assert_eq!(C::decode(&bytes), Ok(value.clone()));
    Ok(())
}

/// What must hold for any input whatever: decoding returns (no panic); an accepted input is the
/// canonical encoding of its value; and `frame_len` agrees with `decode` — on the header errors, and
/// on the frame length (which must be the whole input for the input to decode).
fn check_any_input<C: Family>(bytes: &[u8]) -> Result<Result<C, WireError>, TestCaseError> {
    let decoded = C::decode(bytes);
    if let Ok(value) = &decoded {
        prop_assert_eq!(
            &value.encode()[..],
            bytes,
            "accepted a non-canonical encoding of {:?}",
            value
        );
    }
    if bytes.len() > max_frame::<C>() {
        prop_assert_eq!(
            decoded.clone(),
            Err(WireError::Oversized { len: bytes.len(), max: max_frame::<C>() })
        );
        return Ok(decoded);
    }
    match frame_len::<C>(bytes) {
        Ok(None) => {
            prop_assert!(bytes.len() < HEADER_LEN, "frame_len gave None on a full header");
            prop_assert!(decoded.is_err(), "decoded a frame shorter than a header");
        }
        Ok(Some(n)) => {
            prop_assert!(
                bytes.len() >= HEADER_LEN,
                "frame_len gave a length before the header was in"
            );
            prop_assert!(n >= HEADER_LEN && n <= max_frame::<C>());
            if n > bytes.len() {
                prop_assert_eq!(decoded.clone(), Err(WireError::Truncated));
            } else if n < bytes.len() {
                prop_assert_eq!(
                    decoded.clone(),
                    Err(WireError::TrailingBytes { extra: bytes.len() - n })
                );
            }
        }
        Err(e) => {
            prop_assert!(
                bytes.len() >= HEADER_LEN,
                "frame_len gave an error before the header was in"
            );
            prop_assert!(
                matches!(
                    e,
                    WireError::UnknownVersion(_)
                        | WireError::UnknownType(_)
                        | WireError::Oversized { .. }
                ),
                "frame_len may only report header errors, got {:?}",
                e
            );
            prop_assert_eq!(decoded.clone(), Err(e));
        }
    }
    Ok(decoded)
}

/// [`check_any_input`], when the decoded value is not needed.
fn check_input<C: Family>(bytes: &[u8]) -> Result<(), TestCaseError> {
    check_any_input::<C>(bytes).map(drop)
}

/// `frame_len` on a stream holding the valid encoding `bytes`, possibly followed by more: `None`
/// for fewer than `HEADER_LEN` bytes, the full frame length for any longer prefix.
fn check_frame_len_on_prefixes<C: Family>(
    bytes: &[u8],
    cut: Index,
    next: &[u8],
) -> Result<(), TestCaseError> {
    let len = bytes.len();
    for p in 0..HEADER_LEN {
        prop_assert_eq!(frame_len::<C>(&bytes[..p]), Ok(None), "prefix of {} bytes", p);
    }
    let every = (HEADER_LEN..=len).take(32);
    let sampled = HEADER_LEN + cut.index(len - HEADER_LEN + 1);
    for p in every.chain([sampled, len]) {
        prop_assert_eq!(frame_len::<C>(&bytes[..p]), Ok(Some(len)), "prefix of {} bytes", p);
    }
    let mut stream = bytes.to_vec();
    stream.extend_from_slice(next);
    prop_assert_eq!(
        frame_len::<C>(&stream),
        Ok(Some(len)),
        "frame followed by {} more bytes",
        next.len()
    );
    Ok(())
}

fn check_mutation<C: Family>(value: &C, m: &Mutation) -> Result<(), TestCaseError> {
    let original = value.encode();
    let (mutated, expect) = mutate::<C>(&original, m);
    let decoded = check_any_input::<C>(&mutated)?;
    match expect {
        Expect::Error(e) => prop_assert_eq!(decoded, Err(e)),
        Expect::Original => prop_assert_eq!(decoded, Ok(value.clone())),
        Expect::Anything => {}
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Properties
// ---------------------------------------------------------------------------------------------

proptest! {
    #![proptest_config(config(2000))]

    #[test]
    fn prop_message_round_trips(msg in arb_message()) {
        check_round_trip(&msg)?;
    }

    /// `decode_owned` (the receive path's decoder, which keeps a body or envelope in the buffer it is
    /// given) agrees with `decode` on every message and on every mutation of one: same value, same
    /// error.
    #[test]
    fn prop_decode_owned_agrees_with_decode(
        msg in arb_message(),
        m in arb_mutation(),
    ) {
        let bytes = msg.encode();
        prop_assert_eq!(Message::decode_owned(bytes.clone()), Ok(msg));
        let (mutated, _) = mutate::<Message>(&bytes, &m);
        prop_assert_eq!(Message::decode_owned(mutated.clone()), Message::decode(&mutated));
    }

    #[test]
    fn prop_link_frame_round_trips(frame in arb_link_frame()) {
        check_round_trip(&frame)?;
    }

    #[test]
    fn prop_arbitrary_bytes_decode_canonically(bytes in arb_frame_like()) {
        check_input::<Message>(&bytes)?;
        check_input::<LinkFrame>(&bytes)?;
    }

    #[test]
    fn prop_mutated_message_decodes_canonically(
        msg in arb_message(),
        mutations in vec(arb_mutation(), 1..=3),
    ) {
        // Each mutation alone, then all of them applied in turn (only the first is predicted).
        for m in &mutations {
            check_mutation(&msg, m)?;
        }
        let mut bytes = msg.encode();
        for m in &mutations {
            if bytes.len() < HEADER_LEN {
                break;
            }
            bytes = mutate::<Message>(&bytes, m).0;
            check_input::<Message>(&bytes)?;
        }
    }

    #[test]
    fn prop_mutated_link_frame_decodes_canonically(
        frame in arb_link_frame(),
        mutations in vec(arb_mutation(), 1..=3),
    ) {
        for m in &mutations {
            check_mutation(&frame, m)?;
        }
        let mut bytes = frame.encode();
        for m in &mutations {
            if bytes.len() < HEADER_LEN {
                break;
            }
            bytes = mutate::<LinkFrame>(&bytes, m).0;
            check_input::<LinkFrame>(&bytes)?;
        }
    }

    #[test]
    fn prop_frame_len_agrees_with_decode_on_messages(
        msg in arb_message(),
        cut in any::<Index>(),
        next in vec(any::<u8>(), 0..=16),
    ) {
        check_frame_len_on_prefixes::<Message>(&msg.encode(), cut, &next)?;
    }

    #[test]
    fn prop_frame_len_agrees_with_decode_on_link_frames(
        frame in arb_link_frame(),
        cut in any::<Index>(),
        next in vec(any::<u8>(), 0..=16),
    ) {
        check_frame_len_on_prefixes::<LinkFrame>(&frame.encode(), cut, &next)?;
    }

    #[test]
    fn prop_name_new_accepts_exactly_the_alphabet(s in prop_oneof![
        "[a-z0-9._-]{0,40}",
        "[a-zA-Z0-9 ._/-]{0,40}",
        any::<String>(),
    ]) {
        let in_alphabet = s.bytes().all(|b| NAME_ALPHABET.contains(&b));
        let expected = if s.is_empty() || s.len() > MAX_NAME_LEN {
            Err(WireError::BadLength { field: "name", len: s.len() })
        } else if !in_alphabet {
            Err(WireError::InvalidValue { field: "name" })
        } else {
            Ok(s.clone())
        };
        prop_assert_eq!(Name::new(&s).map(|n| n.as_str().to_owned()), expected);
    }
}

// ---------------------------------------------------------------------------------------------
// Known answers, by hand from the format
// ---------------------------------------------------------------------------------------------

/// Asserts that `value` encodes to `hex` and `hex` decodes to `value`.
fn known_answer<C: Family>(value: &C, hex: &str) {
    let bytes = unhex(hex);
    assert_eq!(hex::encode(value.encode()), hex::encode(&bytes), "encoding of {value:?}");
    assert_eq!(C::decode(&bytes), Ok(value.clone()), "decoding of {hex}");
    assert_eq!(frame_len::<C>(&bytes), Ok(Some(bytes.len())));
}

/// `Send` body: id (8) + name length (1) + "bob" (3) + body length (2) + "hi" (2) = 16 = 0x10.
const SEND_BOB_HI: &str = "01 20 00000010  0000000000000001  03 626f62  0002 6869";

#[test]
fn kat_message_send() {
    let msg = Message::Send { id: MessageId(1), to: name("bob"), body: body(b"hi") };
    known_answer(&msg, SEND_BOB_HI);
}

#[test]
fn kat_message_deliver() {
    // Body: 8 + 1 + 5 ("alice") + 2 + 0 = 16. An empty body is its length prefix alone.
    let msg = Message::Deliver {
        id: MessageId(0x0102_0304_0506_0708),
        from: name("alice"),
        body: body(b""),
    };
    known_answer(&msg, "01 21 00000010  0102030405060708  05 616c696365  0000");
}

#[test]
fn kat_message_register_and_welcome() {
    // Body: name length (1) + "alice" (5) = 6.
    known_answer(&Message::Register { name: name("alice") }, "01 10 00000006  05 616c696365");
    // Body: 1 + 32 = 33 = 0x21, the longest name.
    known_answer(
        &Message::Welcome { name: name("a.b-c_d0123456789abcdefghijklmno") },
        "01 11 00000021  20 612e622d635f64303132333435363738396162636465666768696a6b6c6d6e6f",
    );
}

#[test]
fn kat_message_refused() {
    known_answer(&Message::Refused { reason: RefusalReason::NameTaken }, "01 12 00000001 01");
    known_answer(
        &Message::Refused { reason: RefusalReason::NotARegistration },
        "01 12 00000001 02",
    );
    known_answer(&Message::Refused { reason: RefusalReason::KeyInUse }, "01 12 00000001 03");
    known_answer(&Message::Refused { reason: RefusalReason::ServerFull }, "01 12 00000001 04");
}

#[test]
fn kat_message_ack() {
    // Body: id (8) + status (1) = 9.
    known_answer(
        &Message::Ack { id: MessageId(1), status: AckStatus::Relayed },
        "01 22 00000009  0000000000000001 01",
    );
    known_answer(
        &Message::Ack { id: MessageId(0x0102_0304_0506_0708), status: AckStatus::Queued },
        "01 22 00000009  0102030405060708 02",
    );
}

#[test]
fn kat_message_reject() {
    known_answer(
        &Message::Reject { id: MessageId(0), reason: RejectReason::Policy },
        "01 23 00000009  0000000000000000 01",
    );
    known_answer(
        &Message::Reject { id: MessageId(u64::MAX), reason: RejectReason::MailboxFull },
        "01 23 00000009  ffffffffffffffff 02",
    );
    known_answer(
        &Message::Reject { id: MessageId(7), reason: RejectReason::UnknownRecipient },
        "01 23 00000009  0000000000000007 03",
    );
    known_answer(
        &Message::Reject { id: MessageId(8), reason: RejectReason::ServerFull },
        "01 23 00000009  0000000000000008 04",
    );
}

#[test]
fn kat_message_ready() {
    // No fields: the header alone, declaring an empty body.
    known_answer(&Message::Ready, "01 13 00000000");
}

// The keys of the e2e known answers are consecutive byte values, so that a field written in the
// wrong place or order shows: IK_dh = 00..1f, IK_sig = 20..3f, SPK = 40..5f, spk_sig = 60..9f,
// OPK = a0..bf, a second OPK = c0..df.
const HEX_IK: &str = "
    000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f
    202122232425262728292a2b2c2d2e2f303132333435363738393a3b3c3d3e3f";
const HEX_SPK: &str = "404142434445464748494a4b4c4d4e4f505152535455565758595a5b5c5d5e5f";
const HEX_SPK_SIG: &str = "
    606162636465666768696a6b6c6d6e6f707172737475767778797a7b7c7d7e7f
    808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9f";
const HEX_OPK: &str = "a0a1a2a3a4a5a6a7a8a9aaabacadaeafb0b1b2b3b4b5b6b7b8b9babbbcbdbebf";
const HEX_OPK2: &str = "c0c1c2c3c4c5c6c7c8c9cacbcccdcecfd0d1d2d3d4d5d6d7d8d9dadbdcdddedf";

fn kat_identity() -> IdentityPublic {
    identity(seq(0x00), seq(0x20))
}

fn kat_signed_prekey(id: u32) -> SignedPrekeyPublic {
    signed_prekey(id, seq(0x40), seq(0x60))
}

#[test]
fn kat_identity_encoding() {
    // IK = IK_dh || IK_sig (SPEC.md §10.1).
    assert_eq!(IdentityPublic::LEN, 64);
    assert_eq!(hex::encode(kat_identity().to_bytes()), hex::encode(unhex(HEX_IK)));
}

#[test]
fn kat_message_upload_bundle() {
    // Body: IK (64) + spk_id (4) + SPK (32) + spk_sig (64) + count (2) = 166 = 0xa6.
    let empty = UploadedBundle::new(kat_identity(), kat_signed_prekey(1), Vec::new())
        .expect("no one-time prekeys");
    known_answer(
        &Message::UploadBundle { bundle: empty },
        &format!("01 30 000000a6  {HEX_IK}  00000001 {HEX_SPK} {HEX_SPK_SIG}  0000"),
    );
    // Two one-time prekeys: 166 + 2 × (opk_id (4) + OPK (32)) = 238 = 0xee, in upload order.
    let opks = vec![one_time_prekey(0x0a0b_0c0d, seq(0xc0)), one_time_prekey(2, seq(0xa0))];
    let two = UploadedBundle::new(kat_identity(), kat_signed_prekey(0xffff_fffe), opks)
        .expect("two one-time prekeys");
    known_answer(
        &Message::UploadBundle { bundle: two },
        &format!(
            "01 30 000000ee  {HEX_IK}  fffffffe {HEX_SPK} {HEX_SPK_SIG}  0002
             0a0b0c0d {HEX_OPK2}  00000002 {HEX_OPK}"
        ),
    );
}

#[test]
fn kat_message_upload_bundle_at_the_prekey_bound() {
    // MAX_ENCODED_PREKEYS = 1000 = 0x03e8 one-time prekeys: body 166 + 36 000 = 36 166 = 0x8d46.
    let opks = (1..=1000).map(|id| one_time_prekey(id, [0x5a; 32])).collect();
    let bundle =
        UploadedBundle::new(kat_identity(), kat_signed_prekey(1), opks).expect("the maximum");
    let prekeys: String = (1..=1000u32).map(|id| format!("{id:08x}{}", "5a".repeat(32))).collect();
    known_answer(
        &Message::UploadBundle { bundle },
        &format!("01 30 00008d46  {HEX_IK}  00000001 {HEX_SPK} {HEX_SPK_SIG}  03e8 {prekeys}"),
    );
}

#[test]
fn kat_message_bundle_stored() {
    // Body: one_time_prekeys (u16) = 2.
    known_answer(&Message::BundleStored { one_time_prekeys: 10 }, "01 31 00000002 000a");
    known_answer(&Message::BundleStored { one_time_prekeys: 0 }, "01 31 00000002 0000");
    known_answer(&Message::BundleStored { one_time_prekeys: 0x0102 }, "01 31 00000002 0102");
    known_answer(&Message::BundleStored { one_time_prekeys: u16::MAX }, "01 31 00000002 ffff");
}

#[test]
fn kat_message_prekeys_low() {
    known_answer(&Message::PrekeysLow { one_time_prekeys: 5 }, "01 38 00000002 0005");
    known_answer(&Message::PrekeysLow { one_time_prekeys: 0 }, "01 38 00000002 0000");
}

#[test]
fn kat_message_bundle_refused() {
    let cases = [
        (BundleRefusal::BadSigningKey, "01 32 00000001 01"),
        (BundleRefusal::LowOrderKey, "01 32 00000001 02"),
        (BundleRefusal::BadSignature, "01 32 00000001 03"),
        (BundleRefusal::TooManyPrekeys, "01 32 00000001 04"),
        (BundleRefusal::DuplicatePrekeyId, "01 32 00000001 05"),
    ];
    for (reason, hex) in cases {
        known_answer(&Message::BundleRefused { reason }, hex);
    }
}

#[test]
fn kat_message_fetch_bundle_and_no_bundle() {
    // Body: name length (1) + "bob" (3) = 4; name length (1) + "alice" (5) = 6.
    known_answer(&Message::FetchBundle { name: name("bob") }, "01 33 00000004  03 626f62");
    known_answer(&Message::NoBundle { name: name("alice") }, "01 35 00000006  05 616c696365");
}

#[test]
fn kat_message_bundle_without_one_time_prekey() {
    // Body: name (1 + 3) + IK (64) + spk_id (4) + SPK (32) + spk_sig (64) + has_opk (1) = 169 = 0xa9.
    let msg = Message::Bundle {
        name: name("bob"),
        bundle: FetchedBundle {
            identity: kat_identity(),
            signed_prekey: kat_signed_prekey(1),
            one_time_prekey: None,
        },
    };
    known_answer(
        &msg,
        &format!("01 34 000000a9  03 626f62  {HEX_IK}  00000001 {HEX_SPK} {HEX_SPK_SIG}  00"),
    );
}

#[test]
fn kat_message_bundle_with_one_time_prekey() {
    // Body: name (1 + 5) + 64 + 4 + 32 + 64 + has_opk (1) + opk_id (4) + OPK (32) = 207 = 0xcf.
    let msg = Message::Bundle {
        name: name("alice"),
        bundle: FetchedBundle {
            identity: kat_identity(),
            signed_prekey: kat_signed_prekey(0x0102_0304),
            one_time_prekey: Some(one_time_prekey(12, seq(0xa0))),
        },
    };
    known_answer(
        &msg,
        &format!(
            "01 34 000000cf  05 616c696365  {HEX_IK}  01020304 {HEX_SPK} {HEX_SPK_SIG}
             01  0000000c {HEX_OPK}"
        ),
    );
}

#[test]
fn kat_message_e2e_send() {
    // Body: id (8) + name (1 + 3) + envelope length (2) + envelope (5) = 19 = 0x13.
    let msg = Message::E2eSend {
        id: MessageId(1),
        to: name("bob"),
        envelope: envelope(&[1, 2, 3, 4, 5]),
    };
    known_answer(&msg, "01 36 00000013  0000000000000001  03 626f62  0005 0102030405");
}

#[test]
fn kat_message_e2e_deliver() {
    // The shortest envelope, one byte. Body: 8 + (1 + 5) + 2 + 1 = 17 = 0x11.
    let msg = Message::E2eDeliver {
        id: MessageId(0x0102_0304_0506_0708),
        from: name("alice"),
        envelope: envelope(&[0xff]),
    };
    known_answer(&msg, "01 37 00000011  0102030405060708  05 616c696365  0001 ff");
}

#[test]
fn kat_message_e2e_send_longest_envelope() {
    // MAX_ENVELOPE_LEN = 16640 = 0x4100 bytes. Body: 8 + (1 + 1) + 2 + 16640 = 16652 = 0x410c.
    let msg = Message::E2eSend {
        id: MessageId(7),
        to: name("a"),
        envelope: envelope(&[0xee; MAX_ENVELOPE_LEN]),
    };
    known_answer(
        &msg,
        &format!("01 36 0000410c  0000000000000007  01 61  4100 {}", "ee".repeat(16_640)),
    );
}

#[test]
fn kat_link_transport() {
    // The shortest transport frame: a bare 16-byte tag. No inner length prefix.
    let noise: Vec<u8> = (0x00..0x10).collect();
    let frame = LinkFrame::transport(noise).expect("16 bytes is the minimum");
    known_answer(&frame, "01 03 00000010  000102030405060708090a0b0c0d0e0f");
}

#[test]
fn kat_link_handshakes() {
    let resp = LinkFrame::handshake_resp(vec![0xaa; 48]).expect("48 bytes is the minimum");
    known_answer(&resp, &format!("01 02 00000030 {}", "aa".repeat(48)));
    let init = LinkFrame::handshake_init(vec![0x5c; 96]).expect("96 bytes is the minimum");
    known_answer(&init, &format!("01 01 00000060 {}", "5c".repeat(96)));
    // The largest link frame: declared length 0x0000ffff.
    let max = LinkFrame::transport(vec![0x11; MAX_LINK_BODY_LEN]).expect("the maximum");
    known_answer(&max, &format!("01 03 0000ffff {}", "11".repeat(MAX_LINK_BODY_LEN)));
}

// ---------------------------------------------------------------------------------------------
// Limits
// ---------------------------------------------------------------------------------------------

#[test]
fn limits_are_the_documented_values_and_consistent() {
    assert_eq!(HEADER_LEN, 6);
    assert_eq!(VERSION, 0x01);
    assert_eq!(MAX_NAME_LEN, 32);
    assert_eq!(MAX_BODY_LEN, 16 * 1024);
    assert_eq!(MAX_LINK_BODY_LEN, 65_535);
    assert_eq!(MAX_FRAME_LEN, HEADER_LEN + MAX_LINK_BODY_LEN);
    assert_eq!((HANDSHAKE_INIT_MIN_LEN, HANDSHAKE_RESP_MIN_LEN, TRANSPORT_MIN_LEN), (96, 48, 16));
    // A whole message frame plus the AEAD tag fills at most one transport frame.
    assert_eq!(HEADER_LEN + MAX_MESSAGE_LEN + 16, MAX_LINK_BODY_LEN);
    assert_eq!(<Message as Codec>::MAX_FRAME_BODY_LEN, MAX_MESSAGE_LEN);
    assert_eq!(<LinkFrame as Codec>::MAX_FRAME_BODY_LEN, MAX_LINK_BODY_LEN);
    // The e2e field bounds (SPEC.md §13, and the codec's own prekey bound).
    assert_eq!(MAX_ENVELOPE_LEN, 16_640);
    assert_eq!(MAX_ENVELOPE_LEN, MAX_BODY_LEN + 256);
    assert_eq!(MAX_ENCODED_PREKEYS, 1000);
    assert_eq!(IdentityPublic::LEN, IK_LEN);
}

#[test]
fn largest_message_round_trips_and_fits_one_transport_frame() {
    for msg in [
        Message::Send {
            id: MessageId(u64::MAX),
            to: name(&"z".repeat(MAX_NAME_LEN)),
            body: body(&[0xff; MAX_BODY_LEN]),
        },
        Message::Deliver {
            id: MessageId(u64::MAX),
            from: name(&"9".repeat(MAX_NAME_LEN)),
            body: body(&[0; MAX_BODY_LEN]),
        },
    ] {
        let bytes = msg.encode();
        assert_eq!(bytes.len(), HEADER_LEN + 8 + 1 + MAX_NAME_LEN + 2 + MAX_BODY_LEN);
        assert!(bytes.len() <= HEADER_LEN + MAX_MESSAGE_LEN);
        assert_eq!(Message::decode(&bytes), Ok(msg));
        // Sealed (+16 tag), it is a valid transport frame.
        assert!(LinkFrame::transport(vec![0; bytes.len() + 16]).is_ok());
    }
}

#[test]
fn largest_e2e_messages_round_trip_and_fit_one_transport_frame() {
    let upload = Message::UploadBundle {
        bundle: uploaded(one_time_prekeys(u32::MAX - 999, MAX_ENCODED_PREKEYS, 11)),
    };
    let longest = name(&"x".repeat(MAX_NAME_LEN));
    let send = Message::E2eSend {
        id: MessageId(u64::MAX),
        to: longest.clone(),
        envelope: envelope(&filled(MAX_ENVELOPE_LEN, 1)),
    };
    let deliver = Message::E2eDeliver {
        id: MessageId(u64::MAX),
        from: longest,
        envelope: envelope(&[0; MAX_ENVELOPE_LEN]),
    };
    let cases = [
        (upload, UPLOAD_FIXED_LEN + MAX_ENCODED_PREKEYS * OPK_LEN),
        (send, 8 + 1 + MAX_NAME_LEN + 2 + MAX_ENVELOPE_LEN),
        (deliver, 8 + 1 + MAX_NAME_LEN + 2 + MAX_ENVELOPE_LEN),
    ];
    for (msg, body_len) in cases {
        let bytes = msg.encode();
        assert_eq!(bytes.len(), HEADER_LEN + body_len, "{}", msg.type_name());
        assert!(bytes.len() <= HEADER_LEN + MAX_MESSAGE_LEN);
        assert_eq!(Message::decode(&bytes), Ok(msg));
        assert!(LinkFrame::transport(vec![0; bytes.len() + 16]).is_ok());
    }
}

#[test]
fn link_frames_at_each_bound_round_trip() {
    let ctors: [(usize, LinkCtor); 3] = [
        (HANDSHAKE_INIT_MIN_LEN, LinkFrame::handshake_init),
        (HANDSHAKE_RESP_MIN_LEN, LinkFrame::handshake_resp),
        (TRANSPORT_MIN_LEN, LinkFrame::transport),
    ];
    for (min, ctor) in ctors {
        for len in [min, min + 1, MAX_LINK_BODY_LEN - 1, MAX_LINK_BODY_LEN] {
            let frame = ctor(filled(len, len as u64)).expect("within bounds");
            assert_eq!(frame.noise().len(), len);
            let bytes = frame.encode();
            assert_eq!(bytes.len(), HEADER_LEN + len);
            assert_eq!(LinkFrame::decode(&bytes), Ok(frame));
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Constructors refuse out-of-bound values
// ---------------------------------------------------------------------------------------------

#[test]
fn name_new_refuses_out_of_bounds() {
    assert_eq!(Name::new(""), Err(WireError::BadLength { field: "name", len: 0 }));
    assert_eq!(Name::new(&"a".repeat(33)), Err(WireError::BadLength { field: "name", len: 33 }));
    assert_eq!(Name::new(&"a".repeat(32)).map(|n| n.as_str().len()), Ok(32));
    assert_eq!(Name::new("a").map(|n| n.as_str().to_owned()), Ok("a".to_owned()));
    // Length is in bytes, not characters: 16 two-byte characters are 32 bytes, refused for their value.
    assert_eq!(Name::new(&"é".repeat(16)), Err(WireError::InvalidValue { field: "name" }));
    assert_eq!(Name::new(&"é".repeat(17)), Err(WireError::BadLength { field: "name", len: 34 }));
    for bad in ["Alice", "bo b", " bob", "bob\n", "a/b", "a+b", "é", "a\0", "ａ"] {
        assert_eq!(Name::new(bad), Err(WireError::InvalidValue { field: "name" }), "{bad:?}");
    }
    for b in 0u8..0x80 {
        let s = char::from(b).to_string();
        assert_eq!(Name::new(&s).is_ok(), NAME_ALPHABET.contains(&b), "byte {b:#04x}");
    }
}

#[test]
fn body_new_refuses_out_of_bounds() {
    assert_eq!(Body::new(Vec::new()).map(|b| b.as_bytes().len()), Ok(0));
    assert_eq!(Body::new(vec![7; MAX_BODY_LEN]).map(|b| b.as_bytes().len()), Ok(MAX_BODY_LEN));
    assert_eq!(
        Body::new(vec![7; MAX_BODY_LEN + 1]),
        Err(WireError::BadLength { field: "body", len: MAX_BODY_LEN + 1 })
    );
    assert_eq!(
        Body::new(vec![7; usize::from(u16::MAX) + 1]),
        Err(WireError::BadLength { field: "body", len: usize::from(u16::MAX) + 1 })
    );
}

#[test]
fn uploaded_bundle_new_refuses_out_of_bounds() {
    for n in [0, 1, 20, MAX_ENCODED_PREKEYS] {
        let opks = one_time_prekeys(2, n, 3);
        let bundle = UploadedBundle::new(sample_identity(), sample_signed_prekey(), opks.clone())
            .expect("within MAX_ENCODED_PREKEYS");
        assert_eq!(bundle.identity(), &sample_identity());
        assert_eq!(bundle.signed_prekey(), &sample_signed_prekey());
        assert_eq!(bundle.one_time_prekeys(), &opks[..], "{n} prekeys, in upload order");
    }
    for n in [MAX_ENCODED_PREKEYS + 1, usize::from(u16::MAX) + 1] {
        assert_eq!(
            UploadedBundle::new(
                sample_identity(),
                sample_signed_prekey(),
                one_time_prekeys(2, n, 3)
            ),
            Err(WireError::BadLength { field: "one_time_prekeys", len: n }),
            "{n} prekeys"
        );
    }
}

#[test]
fn envelope_new_refuses_out_of_bounds() {
    assert_eq!(Envelope::new(Vec::new()), Err(WireError::BadLength { field: "envelope", len: 0 }));
    for len in [1, 2, MAX_ENVELOPE_LEN - 1, MAX_ENVELOPE_LEN] {
        let bytes = filled(len, 5);
        assert_eq!(Envelope::new(bytes.clone()).map(|e| e.as_bytes().to_vec()), Ok(bytes));
    }
    for len in [MAX_ENVELOPE_LEN + 1, usize::from(u16::MAX), usize::from(u16::MAX) + 1] {
        assert_eq!(
            Envelope::new(vec![7; len]),
            Err(WireError::BadLength { field: "envelope", len }),
            "{len} bytes"
        );
    }
}

/// Every envelope length there is, 1 to `MAX_ENVELOPE_LEN`, as the opaque field of `E2eSend` and
/// `E2eDeliver`: each encodes to its header, id, name and length prefix followed by the envelope
/// untouched, and `decode` and `decode_owned` give the message back. (The fuzz target
/// `wire_decode` checked this for every input up to its 4,096-byte `-max_len`, at 41 % of its
/// instructions a run; here every length is checked once.)
#[test]
fn every_envelope_length_round_trips_in_a_relay_message() {
    let content = filled(MAX_ENVELOPE_LEN, 0xe2e);
    for len in 1..=MAX_ENVELOPE_LEN {
        let envelope = envelope(&content[..len]);
        // Before the envelope: header (6), id (8), name (1 + 3 or 5), envelope length (2).
        for (message, head) in [
            (
                Message::E2eSend { id: MessageId(7), to: name("bob"), envelope: envelope.clone() },
                20,
            ),
            (Message::E2eDeliver { id: MessageId(u64::MAX), from: name("alice"), envelope }, 22),
        ] {
            let bytes = message.encode();
            assert_eq!(bytes.len(), head + len, "{len}-byte envelope");
            assert_eq!(&bytes[head..], &content[..len], "{len}-byte envelope not last, intact");
            assert_eq!(Message::decode(&bytes).as_ref(), Ok(&message), "{len}-byte envelope");
            assert_eq!(Message::decode_owned(bytes), Ok(message), "{len}-byte envelope, owned");
        }
    }
}

#[test]
fn link_constructors_refuse_out_of_bounds() {
    let ctors: [(&str, usize, LinkCtor); 3] = [
        ("handshake_init", HANDSHAKE_INIT_MIN_LEN, LinkFrame::handshake_init),
        ("handshake_resp", HANDSHAKE_RESP_MIN_LEN, LinkFrame::handshake_resp),
        ("transport", TRANSPORT_MIN_LEN, LinkFrame::transport),
    ];
    for (field, min, ctor) in ctors {
        assert_eq!(ctor(Vec::new()), Err(WireError::BadLength { field, len: 0 }));
        assert_eq!(ctor(vec![0; min - 1]), Err(WireError::BadLength { field, len: min - 1 }));
        assert!(ctor(vec![0; min]).is_ok(), "{field} at its minimum");
        assert!(ctor(vec![0; MAX_LINK_BODY_LEN]).is_ok(), "{field} at the maximum");
        assert_eq!(
            ctor(vec![0; MAX_LINK_BODY_LEN + 1]),
            Err(WireError::Oversized { len: MAX_FRAME_LEN + 1, max: MAX_FRAME_LEN })
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Malformed frames: one test per error class and family
// ---------------------------------------------------------------------------------------------

/// Valid encodings of every message variant, for the tests that corrupt one part of a frame.
fn sample_messages() -> Vec<Message> {
    vec![
        Message::Register { name: name("alice") },
        Message::Welcome { name: name("alice") },
        Message::Refused { reason: RefusalReason::NameTaken },
        Message::Ready,
        Message::Send { id: MessageId(1), to: name("bob"), body: body(b"hi") },
        Message::Deliver { id: MessageId(2), from: name("alice"), body: body(b"") },
        Message::Ack { id: MessageId(3), status: AckStatus::Queued },
        Message::Reject { id: MessageId(4), reason: RejectReason::UnknownRecipient },
        Message::UploadBundle { bundle: uploaded(one_time_prekeys(2, 2, 7)) },
        Message::BundleStored { one_time_prekeys: 10 },
        Message::PrekeysLow { one_time_prekeys: 5 },
        Message::BundleRefused { reason: BundleRefusal::BadSignature },
        Message::FetchBundle { name: name("bob") },
        Message::Bundle {
            name: name("bob"),
            bundle: FetchedBundle {
                identity: sample_identity(),
                signed_prekey: sample_signed_prekey(),
                one_time_prekey: Some(one_time_prekey(2, [0x55; 32])),
            },
        },
        Message::NoBundle { name: name("carol") },
        Message::E2eSend { id: MessageId(5), to: name("bob"), envelope: envelope(&[2; 60]) },
        Message::E2eDeliver { id: MessageId(6), from: name("alice"), envelope: envelope(&[1]) },
    ]
}

fn sample_link_frames() -> Vec<LinkFrame> {
    vec![
        LinkFrame::handshake_init(vec![1; HANDSHAKE_INIT_MIN_LEN]).expect("minimum"),
        LinkFrame::handshake_resp(vec![2; HANDSHAKE_RESP_MIN_LEN + 3]).expect("in bounds"),
        LinkFrame::transport(vec![3; 100]).expect("in bounds"),
    ]
}

#[test]
fn malformed_truncated_message() {
    assert_eq!(Message::decode(&[]), Err(WireError::Truncated), "empty input");
    for msg in sample_messages() {
        let bytes = msg.encode();
        // Every proper prefix: the header cut (1..6 bytes), or the body cut (6..len bytes).
        for cut in 0..bytes.len() {
            assert_eq!(
                Message::decode(&bytes[..cut]),
                Err(WireError::Truncated),
                "{msg:?} cut to {cut}"
            );
        }
    }
    // A field cut inside the body: the header declares exactly the bytes present, but a field runs
    // past their end.
    let id = [0, 0, 0, 0, 0, 0, 0, 1];
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("register without its name length", frame(0x10, &[])),
        ("register name promising 5 bytes, holding 3", frame(0x11, &[5, b'b', b'o', b'b'])),
        ("refused without its reason", frame(0x12, &[])),
        ("ack with a 5-byte id", frame(0x22, &id[..5])),
        ("ack without its status", frame(0x22, &id)),
        ("reject without its reason", frame(0x23, &id)),
        ("send without its name", frame(0x20, &id)),
        ("send with half a body length", frame(0x20, &[&id[..], &[3], b"bob", &[0]].concat())),
        (
            "send body promising 3 bytes, holding 2",
            frame(0x20, &[&id[..], &[3], b"bob", &[0, 3], b"hi"].concat()),
        ),
        (
            "deliver name promising 32 bytes, holding 3",
            frame(0x21, &[&id[..], &[32], b"bob"].concat()),
        ),
        ("upload bundle cut inside IK", frame(0x30, &[0x11; IK_LEN - 1])),
        ("upload bundle cut inside spk_sig", frame(0x30, &ik_and_spk_fields()[..IK_LEN + 99])),
        ("upload bundle without its count", frame(0x30, &ik_and_spk_fields())),
        (
            "upload bundle with half a count",
            frame(0x30, &[&ik_and_spk_fields()[..], &[0]].concat()),
        ),
        ("upload bundle with its last prekey cut", {
            let mut fields = upload_fields(2, 2);
            fields.pop();
            frame(0x30, &fields)
        }),
        ("bundle stored without its count", frame(0x31, &[])),
        ("bundle stored with half a count", frame(0x31, &[0])),
        ("bundle refused without its reason", frame(0x32, &[])),
        ("fetch bundle without its name", frame(0x33, &[])),
        ("no bundle name promising 5 bytes, holding 4", frame(0x35, &[5, b'a', b'l', b'i', b'c'])),
        (
            "bundle without its has_opk",
            frame(0x34, &[&name_field(b"bob")[..], &ik_and_spk_fields()].concat()),
        ),
        (
            "bundle with has_opk 1 and no prekey",
            frame(0x34, &[&name_field(b"bob")[..], &ik_and_spk_fields(), &[1]].concat()),
        ),
        (
            "bundle with has_opk 1 and a prekey cut to 35 bytes",
            frame(
                0x34,
                &[
                    &name_field(b"bob")[..],
                    &ik_and_spk_fields(),
                    &[1],
                    &opk_field(2)[..OPK_LEN - 1],
                ]
                .concat(),
            ),
        ),
        ("bundle without its IK", frame(0x34, &name_field(b"bob"))),
        ("e2e send without its envelope", frame(0x36, &[&id[..], &name_field(b"bob")].concat())),
        (
            "e2e send with half an envelope length",
            frame(0x36, &[&id[..], &name_field(b"bob"), &[0]].concat()),
        ),
        (
            "e2e deliver envelope promising 5 bytes, holding 4",
            frame(0x37, &[&id[..], &name_field(b"bob"), &envelope_field(5, 4)].concat()),
        ),
        (
            "e2e deliver envelope promising MAX_ENVELOPE_LEN bytes, holding none",
            frame(0x37, &[&id[..], &name_field(b"bob"), &envelope_field(0x4100, 0)].concat()),
        ),
    ];
    for (what, bytes) in cases {
        assert_eq!(Message::decode(&bytes), Err(WireError::Truncated), "{what}");
    }
}

/// A count that promises more one-time prekeys than the body holds runs past its end.
#[test]
fn malformed_truncated_one_time_prekeys() {
    for (count, held) in [(1, 0), (2, 1), (3, 2), (20, 19), (1000, 0), (1000, 999)] {
        assert_eq!(
            Message::decode(&frame(0x30, &upload_fields(count, held))),
            Err(WireError::Truncated),
            "count {count}, {held} prekeys"
        );
    }
    // A whole number of bytes, but not of prekeys: the count is right, the last one is short.
    for cut in 1..OPK_LEN {
        let fields = upload_fields(3, 3);
        assert_eq!(
            Message::decode(&frame(0x30, &fields[..fields.len() - cut])),
            Err(WireError::Truncated),
            "last prekey cut by {cut} bytes"
        );
    }
}

#[test]
fn malformed_truncated_link() {
    assert_eq!(LinkFrame::decode(&[]), Err(WireError::Truncated), "empty input");
    for frame in sample_link_frames() {
        let bytes = frame.encode();
        for cut in 0..bytes.len() {
            assert_eq!(
                LinkFrame::decode(&bytes[..cut]),
                Err(WireError::Truncated),
                "{frame:?} cut to {cut}"
            );
        }
    }
    // A link body has no fields of its own (the frame's length delimits the Noise message), so a
    // body that is complete but short is `BadLength`, not `Truncated`: see `malformed_bad_length_link`.
}

#[test]
fn malformed_oversized_message() {
    let max_body = MAX_MESSAGE_LEN;
    let max = HEADER_LEN + max_body;
    // Input longer than the largest frame, whatever it holds: rejected before anything is parsed.
    let huge = frame(0x20, &vec![0; max_body + 1]);
    assert_eq!(huge.len(), max + 1);
    assert_eq!(Message::decode(&huge), Err(WireError::Oversized { len: max + 1, max }));
    assert_eq!(
        Message::decode(&vec![0xff; max + 1]),
        Err(WireError::Oversized { len: max + 1, max })
    );
    // A declared body length above the maximum, whatever follows; frame_len sees it from the header.
    for declared in [max_body + 1, 0x0001_0000, usize::try_from(u32::MAX).expect("fits")] {
        let header = frame_declaring(VERSION, 0x20, u32::try_from(declared).expect("fits"), &[]);
        let expected = WireError::Oversized { len: HEADER_LEN + declared, max };
        assert_eq!(Message::decode(&header), Err(expected), "declared {declared}");
        assert_eq!(frame_len::<Message>(&header), Err(expected));
        let mut with_body = header.clone();
        with_body.extend_from_slice(&[0; 64]);
        assert_eq!(
            Message::decode(&with_body),
            Err(expected),
            "declared {declared}, 64 bytes follow"
        );
    }
    // At the boundary it is not oversized: the maximum declared with nothing behind it is cut short,
    // and an input of exactly the maximum size is parsed (here it fails on its padding).
    let at_max = frame_declaring(VERSION, 0x20, u32::try_from(max_body).expect("fits"), &[]);
    assert_eq!(frame_len::<Message>(&at_max), Ok(Some(max)));
    assert_eq!(Message::decode(&at_max), Err(WireError::Truncated));
    let mut exactly_max = [&[0, 0, 0, 0, 0, 0, 0, 1][..], &[1, b'a'], &[0, 0]].concat();
    exactly_max.resize(max_body, 0);
    assert_eq!(
        Message::decode(&frame(0x20, &exactly_max)),
        Err(WireError::TrailingBytes { extra: max_body - 12 })
    );
}

#[test]
fn malformed_oversized_link() {
    let max = MAX_FRAME_LEN;
    let huge = frame(0x03, &vec![0; MAX_LINK_BODY_LEN + 1]);
    assert_eq!(huge.len(), max + 1);
    assert_eq!(LinkFrame::decode(&huge), Err(WireError::Oversized { len: max + 1, max }));
    assert_eq!(
        LinkFrame::decode(&vec![0; max + 100]),
        Err(WireError::Oversized { len: max + 100, max })
    );
    for declared in [MAX_LINK_BODY_LEN + 1, usize::try_from(u32::MAX).expect("fits")] {
        let header = frame_declaring(VERSION, 0x03, u32::try_from(declared).expect("fits"), &[]);
        let expected = WireError::Oversized { len: HEADER_LEN + declared, max };
        assert_eq!(LinkFrame::decode(&header), Err(expected), "declared {declared}");
        assert_eq!(frame_len::<LinkFrame>(&header), Err(expected));
        let mut with_body = header.clone();
        with_body.extend_from_slice(&[0; 64]);
        assert_eq!(
            LinkFrame::decode(&with_body),
            Err(expected),
            "declared {declared}, 64 bytes follow"
        );
    }
    // Exactly the maximum frame decodes.
    let at_max = frame(0x03, &vec![0; MAX_LINK_BODY_LEN]);
    assert_eq!(at_max.len(), max);
    assert!(LinkFrame::decode(&at_max).is_ok());
}

/// Every valid sample frame of family `C`, with its version byte replaced by `v`, fails with
/// `UnknownVersion(v)`; so do a lone version byte and a header otherwise wrong in every field (the
/// version is checked first).
fn check_unknown_version<C: Family>(samples: &[C]) {
    for v in [0x00, 0x02, 0xff] {
        for sample in samples {
            let mut bytes = sample.encode();
            bytes[0] = v;
            assert_eq!(C::decode(&bytes), Err(WireError::UnknownVersion(v)), "{sample:?}");
            assert_eq!(frame_len::<C>(&bytes), Err(WireError::UnknownVersion(v)));
        }
        assert_eq!(C::decode(&[v]), Err(WireError::UnknownVersion(v)), "lone version byte");
        let all_wrong = frame_declaring(v, 0xee, u32::MAX, &[]);
        assert_eq!(C::decode(&all_wrong), Err(WireError::UnknownVersion(v)));
        assert_eq!(frame_len::<C>(&all_wrong), Err(WireError::UnknownVersion(v)));
    }
}

#[test]
fn malformed_unknown_version_message() {
    check_unknown_version(&sample_messages());
}

#[test]
fn malformed_unknown_version_link() {
    check_unknown_version(&sample_link_frames());
}

/// Every type byte outside the family's set fails with `UnknownType` (even with an oversized
/// declared length: the type is checked first), and every code inside it does not.
fn check_unknown_type<C: Family>() {
    for t in 0..=u8::MAX {
        let empty = frame(t, &[]);
        let oversized = frame_declaring(VERSION, t, u32::MAX, &[]);
        if C::TYPES.contains(&t) {
            assert_ne!(C::decode(&empty), Err(WireError::UnknownType(t)), "{t:#04x} is assigned");
            assert_eq!(frame_len::<C>(&empty), Ok(Some(HEADER_LEN)));
        } else {
            assert_eq!(C::decode(&empty), Err(WireError::UnknownType(t)), "type {t:#04x}");
            assert_eq!(C::decode(&oversized), Err(WireError::UnknownType(t)), "type {t:#04x}");
            assert_eq!(frame_len::<C>(&empty), Err(WireError::UnknownType(t)));
        }
    }
}

#[test]
fn malformed_unknown_type_message() {
    check_unknown_type::<Message>();
    // The reserved e2e codes 0x39..=0x3f are unknown, even over a body another e2e message would
    // accept.
    let e2e_send_body = [&[0; 8][..], &name_field(b"bob"), &envelope_field(1, 1)].concat();
    assert!(Message::decode(&frame(0x36, &e2e_send_body)).is_ok());
    for t in 0x39..=0x3f {
        assert_eq!(Message::decode(&frame(t, &e2e_send_body)), Err(WireError::UnknownType(t)));
    }
    // A valid link frame fed to the message decoder.
    for frame in sample_link_frames() {
        let code = frame.encode()[1];
        assert_eq!(Message::decode(&frame.encode()), Err(WireError::UnknownType(code)));
    }
}

/// The crate's codes and names are SPEC.md's table ([`MESSAGES`]), and [`sample_messages`] holds
/// every message type.
#[test]
fn message_codes_and_names_are_the_spec_table() {
    let samples = sample_messages();
    let mut codes: Vec<u8> = samples.iter().map(Codec::frame_type).collect();
    codes.sort_unstable();
    codes.dedup();
    assert_eq!(codes, MESSAGE_TYPES, "sample_messages holds every message type once or more");
    for msg in &samples {
        let spec_name = MESSAGES.iter().find(|(code, _)| *code == msg.frame_type()).map(|e| e.1);
        assert_eq!(spec_name, Some(msg.type_name()), "{msg:?}");
        assert_eq!(msg.encode()[1], msg.frame_type());
    }
}

#[test]
fn malformed_unknown_type_link() {
    check_unknown_type::<LinkFrame>();
    // A valid message fed to the link decoder.
    for msg in sample_messages() {
        let code = msg.encode()[1];
        assert_eq!(LinkFrame::decode(&msg.encode()), Err(WireError::UnknownType(code)));
    }
}

#[test]
fn malformed_bad_length_message() {
    let id = [0, 0, 0, 0, 0, 0, 0, 9];
    let name_of = |len: u8| -> Vec<u8> { [&[len][..], &vec![b'a'; usize::from(len)]].concat() };
    // A name length prefix of 0, 33 or 255, with that many valid name bytes behind it, in every
    // message that carries a name.
    for len in [0u8, 33, 255] {
        let expected = Err(WireError::BadLength { field: "name", len: usize::from(len) });
        let field = name_of(len);
        assert_eq!(Message::decode(&frame(0x10, &field)), expected, "register, name length {len}");
        assert_eq!(Message::decode(&frame(0x11, &field)), expected, "welcome, name length {len}");
        for t in [0x20, 0x21] {
            let bytes = frame(t, &[&id[..], &field, &[0, 0]].concat());
            assert_eq!(Message::decode(&bytes), expected, "type {t:#04x}, name length {len}");
        }
        for t in [0x33, 0x35] {
            assert_eq!(Message::decode(&frame(t, &field)), expected, "type {t:#04x}, length {len}");
        }
        let bundle = frame(0x34, &[&field[..], &ik_and_spk_fields(), &[0]].concat());
        assert_eq!(Message::decode(&bundle), expected, "bundle, name length {len}");
        for t in [0x36, 0x37] {
            let bytes = frame(t, &[&id[..], &field, &envelope_field(1, 1)].concat());
            assert_eq!(Message::decode(&bytes), expected, "type {t:#04x}, name length {len}");
        }
    }
    // The length is checked before the name is read: a bad length with nothing behind it.
    assert_eq!(
        Message::decode(&frame(0x10, &[33])),
        Err(WireError::BadLength { field: "name", len: 33 })
    );
    // A body length prefix above MAX_BODY_LEN, with that many bytes behind it.
    // (A u16 prefix of 65 535 with its bytes would overflow the message maximum, so that one is tested
    // with the bytes behind it cut to what fits.)
    for len in [MAX_BODY_LEN + 1, usize::from(u16::MAX)] {
        let prefix = u16::try_from(len).expect("fits u16").to_be_bytes();
        let fits = len.min(MAX_MESSAGE_LEN - 8 - 4 - 2);
        for t in [0x20, 0x21] {
            let bytes = frame(t, &[&id[..], &name_of(3), &prefix, &vec![0; fits]].concat());
            assert_eq!(
                Message::decode(&bytes),
                Err(WireError::BadLength { field: "body", len }),
                "type {t:#04x}"
            );
            // ... or with nothing behind it.
            let bare = frame(t, &[&id[..], &name_of(3), &prefix].concat());
            assert_eq!(Message::decode(&bare), Err(WireError::BadLength { field: "body", len }));
        }
    }
    // The boundaries themselves are accepted.
    assert!(Message::decode(&frame(0x10, &name_of(1))).is_ok());
    assert!(Message::decode(&frame(0x10, &name_of(32))).is_ok());
    let max_prefix = u16::try_from(MAX_BODY_LEN).expect("fits u16").to_be_bytes();
    let at_max =
        frame(0x20, &[&id[..], &name_of(32), &max_prefix, &vec![0; MAX_BODY_LEN]].concat());
    assert!(Message::decode(&at_max).is_ok());
}

/// An envelope length prefix of 0 or above `MAX_ENVELOPE_LEN` is `BadLength`, checked as soon as it
/// is read: with the bytes it announces behind it (as many as fit in a message), or with none.
#[test]
fn malformed_bad_length_envelope() {
    let id = [0, 0, 0, 0, 0, 0, 0, 9];
    let head = [&id[..], &name_field(b"bob")].concat();
    for t in [0x36, 0x37] {
        for len in [0, MAX_ENVELOPE_LEN + 1, usize::from(u16::MAX)] {
            let expected = Err(WireError::BadLength { field: "envelope", len });
            let prefix = u16::try_from(len).expect("fits u16");
            let fits = len.min(MAX_MESSAGE_LEN - head.len() - 2);
            for held in [fits, 1, 0] {
                let bytes = frame(t, &[&head[..], &envelope_field(prefix, held)].concat());
                assert_eq!(Message::decode(&bytes), expected, "type {t:#04x}, {len}, {held} held");
            }
        }
        // The boundaries themselves are accepted.
        for len in [1, MAX_ENVELOPE_LEN] {
            let prefix = u16::try_from(len).expect("fits u16");
            let decoded =
                Message::decode(&frame(t, &[&head[..], &envelope_field(prefix, len)].concat()));
            let envelope = match decoded {
                Ok(Message::E2eSend { envelope, .. } | Message::E2eDeliver { envelope, .. }) => {
                    envelope
                }
                other => panic!("type {t:#04x}, envelope of {len} bytes: {other:?}"),
            };
            assert_eq!(envelope.as_bytes(), &vec![0xe7; len][..]);
        }
    }
}

/// A one-time prekey count above `MAX_ENCODED_PREKEYS` is `BadLength`, checked as soon as it is
/// read (SPEC.md §3.4 step 6), before the prekeys it announces: with all of them behind it (as many
/// as fit in a message), with one, or with none.
///
/// Note: SPEC.md §15.1 says `count` "is bounded by the frame only", which would accept counts up to
/// 1815 whose prekeys fit; the codec bounds it by `MAX_ENCODED_PREKEYS` (1000), as its documentation
/// says. This test follows the codec; the SPEC sentence needs the bound.
#[test]
fn malformed_bad_length_one_time_prekeys() {
    let fit_in_a_message = (MAX_MESSAGE_LEN - UPLOAD_FIXED_LEN) / OPK_LEN;
    assert_eq!(fit_in_a_message, 1815);
    for count in [1001u16, 1815, 1816, u16::MAX] {
        let expected =
            Err(WireError::BadLength { field: "one_time_prekeys", len: usize::from(count) });
        for held in [usize::from(count).min(fit_in_a_message), 1, 0] {
            let bytes = frame(0x30, &upload_fields(count, held));
            assert_eq!(Message::decode(&bytes), expected, "count {count}, {held} prekeys");
        }
    }
    // The boundary: MAX_ENCODED_PREKEYS with their bytes is accepted.
    match Message::decode(&frame(0x30, &upload_fields(1000, 1000))) {
        Ok(Message::UploadBundle { bundle }) => {
            assert_eq!(bundle.one_time_prekeys().len(), MAX_ENCODED_PREKEYS);
            assert_eq!(bundle.one_time_prekeys()[999], one_time_prekey(1001, [0x55; 32]));
        }
        other => panic!("1000 prekeys: {other:?}"),
    }
}

#[test]
fn malformed_bad_length_link() {
    let cases = [
        (0x01, "handshake_init", HANDSHAKE_INIT_MIN_LEN),
        (0x02, "handshake_resp", HANDSHAKE_RESP_MIN_LEN),
        (0x03, "transport", TRANSPORT_MIN_LEN),
    ];
    for (t, field, min) in cases {
        for len in [0, 1, min - 1] {
            let bytes = frame(t, &vec![0x42; len]);
            assert_eq!(
                LinkFrame::decode(&bytes),
                Err(WireError::BadLength { field, len }),
                "{field}, {len} bytes"
            );
        }
        assert!(LinkFrame::decode(&frame(t, &vec![0x42; min])).is_ok(), "{field} at its minimum");
    }
    // The minimum of one variant is below the minimum of another.
    assert_eq!(
        LinkFrame::decode(&frame(0x01, &[0; HANDSHAKE_RESP_MIN_LEN])),
        Err(WireError::BadLength { field: "handshake_init", len: HANDSHAKE_RESP_MIN_LEN })
    );
}

#[test]
fn malformed_trailing_bytes_message() {
    // Bytes after the frame.
    for msg in sample_messages() {
        for extra in [1, 7] {
            let mut bytes = msg.encode();
            bytes.extend(std::iter::repeat_n(0x01, extra));
            assert_eq!(
                Message::decode(&bytes),
                Err(WireError::TrailingBytes { extra }),
                "{msg:?} + {extra}"
            );
        }
    }
    // Two frames back to back are not one frame.
    let two = [unhex(SEND_BOB_HI), unhex(SEND_BOB_HI)].concat();
    assert_eq!(Message::decode(&two), Err(WireError::TrailingBytes { extra: 22 }));
    // A declared body longer than its fields: the header covers the extra bytes.
    let id = [0, 0, 0, 0, 0, 0, 0, 1];
    let cases: Vec<(&str, Vec<u8>, usize)> = vec![
        ("register", frame(0x10, &[3, b'b', b'o', b'b', 0]), 1),
        ("welcome", frame(0x11, &[1, b'a', b'a', b'a']), 2),
        ("refused", frame(0x12, &[1, 1]), 1),
        ("send", frame(0x20, &[&id[..], &[3], b"bob", &[0, 2], b"hi", &[0; 3]].concat()), 3),
        ("deliver", frame(0x21, &[&id[..], &[3], b"bob", &[0, 0], &[0]].concat()), 1),
        ("ack", frame(0x22, &[&id[..], &[1, 0, 0, 0]].concat()), 3),
        ("reject", frame(0x23, &[&id[..], &[3, 3]].concat()), 1),
        ("ready", frame(0x13, &[0]), 1),
        ("upload bundle: count 0, one prekey", frame(0x30, &upload_fields(0, 1)), OPK_LEN),
        ("upload bundle: count 1, three prekeys", frame(0x30, &upload_fields(1, 3)), 2 * OPK_LEN),
        ("bundle stored", frame(0x31, &[0, 1, 0]), 1),
        ("bundle refused", frame(0x32, &[5, 5]), 1),
        ("fetch bundle", frame(0x33, &[3, b'b', b'o', b'b', b'!', b'!']), 2),
        (
            "bundle: has_opk 0 followed by a prekey",
            frame(
                0x34,
                &[&name_field(b"bob")[..], &ik_and_spk_fields(), &[0], &opk_field(2)].concat(),
            ),
            OPK_LEN,
        ),
        (
            "bundle: has_opk 1, a prekey and a byte",
            frame(
                0x34,
                &[&name_field(b"bob")[..], &ik_and_spk_fields(), &[1], &opk_field(2), &[1]]
                    .concat(),
            ),
            1,
        ),
        ("no bundle", frame(0x35, &[1, b'a', 0, 0]), 2),
        (
            "e2e send",
            frame(0x36, &[&id[..], &name_field(b"bob"), &envelope_field(2, 3)].concat()),
            1,
        ),
        (
            "e2e deliver",
            frame(0x37, &[&id[..], &name_field(b"bob"), &envelope_field(1, 5)].concat()),
            4,
        ),
    ];
    for (what, bytes, extra) in cases {
        assert_eq!(Message::decode(&bytes), Err(WireError::TrailingBytes { extra }), "{what}");
    }
}

#[test]
fn malformed_trailing_bytes_link() {
    for frame in sample_link_frames() {
        for extra in [1, 16] {
            let mut bytes = frame.encode();
            bytes.extend(std::iter::repeat_n(0, extra));
            assert_eq!(
                LinkFrame::decode(&bytes),
                Err(WireError::TrailingBytes { extra }),
                "{frame:?} + {extra}"
            );
        }
    }
    let t = LinkFrame::transport(vec![9; 20]).expect("in bounds").encode();
    assert_eq!(
        LinkFrame::decode(&[t.clone(), t].concat()),
        Err(WireError::TrailingBytes { extra: 26 })
    );
    // A link body has no fields, so "declared body longer than its fields" cannot arise: the frame
    // length is the Noise message length.
}

#[test]
fn malformed_invalid_value_name() {
    let expected = Err(WireError::InvalidValue { field: "name" });
    let id = [0, 0, 0, 0, 0, 0, 0, 1];
    let name_field = |bytes: &[u8]| -> Vec<u8> {
        [&[u8::try_from(bytes.len()).expect("short")][..], bytes].concat()
    };
    let bad_names: [&[u8]; 7] = [
        b"Bob",      // upper case
        b"bo b",     // space
        b"bob\xff",  // not UTF-8
        b"\xc3\xa9", // UTF-8 "é": outside the alphabet
        b"\xc3",     // a cut UTF-8 sequence
        b"a/b",      // punctuation outside the alphabet
        b"bob\0",    // NUL
    ];
    for bad in bad_names {
        let field = name_field(bad);
        assert_eq!(Message::decode(&frame(0x10, &field)), expected, "register {bad:?}");
        assert_eq!(Message::decode(&frame(0x11, &field)), expected, "welcome {bad:?}");
        assert_eq!(
            Message::decode(&frame(0x20, &[&id[..], &field, &[0, 0]].concat())),
            expected,
            "send {bad:?}"
        );
        assert_eq!(
            Message::decode(&frame(0x21, &[&id[..], &field, &[0, 0]].concat())),
            expected,
            "deliver {bad:?}"
        );
        for t in [0x33, 0x35] {
            assert_eq!(Message::decode(&frame(t, &field)), expected, "type {t:#04x} {bad:?}");
        }
        assert_eq!(
            Message::decode(&frame(0x34, &[&field[..], &ik_and_spk_fields(), &[0]].concat())),
            expected,
            "bundle {bad:?}"
        );
        for t in [0x36, 0x37] {
            let bytes = frame(t, &[&id[..], &field, &envelope_field(1, 1)].concat());
            assert_eq!(Message::decode(&bytes), expected, "type {t:#04x} {bad:?}");
        }
    }
    // Every single byte: accepted exactly when it is in the alphabet.
    for b in 0..=u8::MAX {
        let decoded = Message::decode(&frame(0x10, &[1, b]));
        if NAME_ALPHABET.contains(&b) {
            assert!(decoded.is_ok(), "byte {b:#04x}");
        } else {
            assert_eq!(decoded, expected, "byte {b:#04x}");
        }
    }
}

#[test]
fn malformed_invalid_value_codes() {
    let id = [0, 0, 0, 0, 0, 0, 0, 5];
    for code in 0..=u8::MAX {
        let refused = Message::decode(&frame(0x12, &[code]));
        let ack = Message::decode(&frame(0x22, &[&id[..], &[code]].concat()));
        let reject = Message::decode(&frame(0x23, &[&id[..], &[code]].concat()));
        let refusal_reason = match code {
            0x01 => Ok(Message::Refused { reason: RefusalReason::NameTaken }),
            0x02 => Ok(Message::Refused { reason: RefusalReason::NotARegistration }),
            0x03 => Ok(Message::Refused { reason: RefusalReason::KeyInUse }),
            0x04 => Ok(Message::Refused { reason: RefusalReason::ServerFull }),
            _ => Err(WireError::InvalidValue { field: "refusal_reason" }),
        };
        let ack_status = match code {
            0x01 => Ok(Message::Ack { id: MessageId(5), status: AckStatus::Relayed }),
            0x02 => Ok(Message::Ack { id: MessageId(5), status: AckStatus::Queued }),
            _ => Err(WireError::InvalidValue { field: "ack_status" }),
        };
        let reject_reason = match code {
            0x01 => Ok(Message::Reject { id: MessageId(5), reason: RejectReason::Policy }),
            0x02 => Ok(Message::Reject { id: MessageId(5), reason: RejectReason::MailboxFull }),
            0x03 => {
                Ok(Message::Reject { id: MessageId(5), reason: RejectReason::UnknownRecipient })
            }
            0x04 => Ok(Message::Reject { id: MessageId(5), reason: RejectReason::ServerFull }),
            _ => Err(WireError::InvalidValue { field: "reject_reason" }),
        };
        assert_eq!(refused, refusal_reason, "refusal reason {code:#04x}");
        assert_eq!(ack, ack_status, "ack status {code:#04x}");
        assert_eq!(reject, reject_reason, "reject reason {code:#04x}");
    }
}

#[test]
fn malformed_invalid_value_bundle_refusal() {
    for code in 0..=u8::MAX {
        let expected = match code {
            0x01 => Ok(BundleRefusal::BadSigningKey),
            0x02 => Ok(BundleRefusal::LowOrderKey),
            0x03 => Ok(BundleRefusal::BadSignature),
            0x04 => Ok(BundleRefusal::TooManyPrekeys),
            0x05 => Ok(BundleRefusal::DuplicatePrekeyId),
            _ => Err(WireError::InvalidValue { field: "bundle_refusal" }),
        };
        assert_eq!(
            Message::decode(&frame(0x32, &[code])),
            expected.map(|reason| Message::BundleRefused { reason }),
            "bundle refusal {code:#04x}"
        );
        if let Ok(reason) = expected {
            assert_eq!(reason.code(), code);
        }
    }
    // The code is checked before what follows it.
    assert_eq!(
        Message::decode(&frame(0x32, &[0x06, 0x01])),
        Err(WireError::InvalidValue { field: "bundle_refusal" })
    );
}

/// `has_opk` is `0x00` (no one-time prekey follows) or `0x01` (one follows); any other value is
/// `InvalidValue`, whether a prekey's bytes follow or not.
#[test]
fn malformed_invalid_value_has_opk() {
    let head = [&name_field(b"bob")[..], &ik_and_spk_fields()].concat();
    let bundle = |one_time_prekey| {
        Ok(Message::Bundle {
            name: name("bob"),
            bundle: FetchedBundle {
                identity: sample_identity(),
                signed_prekey: sample_signed_prekey(),
                one_time_prekey,
            },
        })
    };
    for flag in 0..=u8::MAX {
        let bare = Message::decode(&frame(0x34, &[&head[..], &[flag]].concat()));
        let with_opk = Message::decode(&frame(0x34, &[&head[..], &[flag], &opk_field(9)].concat()));
        match flag {
            0x00 => {
                assert_eq!(bare, bundle(None));
                assert_eq!(with_opk, Err(WireError::TrailingBytes { extra: OPK_LEN }));
            }
            0x01 => {
                assert_eq!(bare, Err(WireError::Truncated));
                assert_eq!(with_opk, bundle(Some(one_time_prekey(9, [0x55; 32]))));
            }
            _ => {
                let expected = Err(WireError::InvalidValue { field: "has_opk" });
                assert_eq!(bare, expected, "has_opk {flag:#04x}");
                assert_eq!(with_opk, expected, "has_opk {flag:#04x} and a prekey");
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Order of checks
// ---------------------------------------------------------------------------------------------

/// The order of SPEC.md §3.4: input size, version, type, declared length against the maximum,
/// declared length against the input, the body's fields, what is left over inside the body. Each
/// input below is wrong in two places and must report the earlier one.
#[test]
fn decode_reports_the_first_failing_check() {
    let max = HEADER_LEN + MAX_MESSAGE_LEN;
    // Size before version.
    let mut big = vec![0x02; max + 1];
    big[1] = 0xee;
    assert_eq!(Message::decode(&big), Err(WireError::Oversized { len: max + 1, max }));
    // Version before type, type before declared length.
    assert_eq!(
        Message::decode(&frame_declaring(0x02, 0xee, u32::MAX, &[])),
        Err(WireError::UnknownVersion(0x02))
    );
    assert_eq!(
        Message::decode(&frame_declaring(VERSION, 0xee, u32::MAX, &[])),
        Err(WireError::UnknownType(0xee))
    );
    // Declared length against the maximum before against the input.
    assert_eq!(
        Message::decode(&frame_declaring(VERSION, 0x10, u32::MAX, &[1, b'a'])),
        Err(WireError::Oversized {
            len: HEADER_LEN + usize::try_from(u32::MAX).expect("fits"),
            max: HEADER_LEN + MAX_MESSAGE_LEN
        })
    );
    // Declared length against the input (too short) before the fields: the bad name is not reached.
    assert_eq!(
        Message::decode(&frame_declaring(VERSION, 0x10, 3, &[33, b'A'])),
        Err(WireError::Truncated)
    );
    // Declared length against the input (too long) before the fields: SPEC.md §3.4 step 5 makes
    // bytes after the frame `TrailingBytes` before any field is read (step 6).
    let mut bad_name_then_extra = frame(0x10, &[1, b'A']);
    bad_name_then_extra.push(0);
    assert_eq!(Message::decode(&bad_name_then_extra), Err(WireError::TrailingBytes { extra: 1 }));
    // Fields in order: the first bad field is reported.
    let bytes = frame(0x20, &[&[0; 8][..], &[0], &[0xff, 0xff]].concat());
    assert_eq!(Message::decode(&bytes), Err(WireError::BadLength { field: "name", len: 0 }));
    // A bad field before leftover bytes inside the body.
    assert_eq!(
        Message::decode(&frame(0x12, &[9, 9])),
        Err(WireError::InvalidValue { field: "refusal_reason" })
    );
    // e2e fields in order: the name before has_opk, the name before the envelope length, the prekey
    // count before the prekeys (it is refused with none of them present).
    let bad_name_bad_flag = [&name_field(b"Bob")[..], &ik_and_spk_fields(), &[2]].concat();
    assert_eq!(
        Message::decode(&frame(0x34, &bad_name_bad_flag)),
        Err(WireError::InvalidValue { field: "name" })
    );
    let bad_name_bad_envelope = [&[0; 8][..], &[0], &envelope_field(0, 0)].concat();
    assert_eq!(
        Message::decode(&frame(0x36, &bad_name_bad_envelope)),
        Err(WireError::BadLength { field: "name", len: 0 })
    );
    assert_eq!(
        Message::decode(&frame(0x30, &upload_fields(1001, 0))),
        Err(WireError::BadLength { field: "one_time_prekeys", len: 1001 })
    );
    // A bad envelope length before leftover bytes in the body.
    let bad_envelope_then_extra =
        [&[0; 8][..], &name_field(b"bob"), &envelope_field(0, 5)].concat();
    assert_eq!(
        Message::decode(&frame(0x37, &bad_envelope_then_extra)),
        Err(WireError::BadLength { field: "envelope", len: 0 })
    );
}

#[test]
fn frame_len_waits_for_a_full_header() {
    // Fewer than HEADER_LEN bytes: no answer yet, even when the first byte is already wrong.
    for bytes in [&[][..], &[0x01], &[0x02], &[0x01, 0xee], &[0x01, 0x03, 0xff, 0xff, 0xff]] {
        assert_eq!(frame_len::<LinkFrame>(bytes), Ok(None), "{bytes:02x?}");
        assert_eq!(frame_len::<Message>(bytes), Ok(None), "{bytes:02x?}");
    }
    // A full header: the total frame length, before any of the body is in.
    assert_eq!(
        frame_len::<LinkFrame>(&[0x01, 0x03, 0x00, 0x00, 0xff, 0xff]),
        Ok(Some(MAX_FRAME_LEN))
    );
    assert_eq!(frame_len::<Message>(&[0x01, 0x22, 0x00, 0x00, 0x00, 0x09]), Ok(Some(15)));
    assert_eq!(frame_len::<LinkFrame>(&[0x01, 0x03, 0x00, 0x00, 0x00, 0x00]), Ok(Some(HEADER_LEN)));
}

// ---------------------------------------------------------------------------------------------
// What errors and envelopes print (cargo-mutants survivors of the wire module)
// ---------------------------------------------------------------------------------------------

/// Every `WireError` says what failed and with which value: a log line is all an operator has.
#[test]
fn wire_errors_print_what_failed() {
    let cases = [
        (WireError::Truncated, "truncated frame"),
        (
            WireError::Oversized { len: 70_000, max: 65_549 },
            "oversized frame: 70000 bytes, maximum 65549",
        ),
        (WireError::UnknownVersion(2), "unknown version 0x02"),
        (WireError::UnknownType(0x7f), "unknown frame type 0x7f"),
        (WireError::BadLength { field: "name", len: 0 }, "bad length 0 for name"),
        (WireError::TrailingBytes { extra: 3 }, "3 trailing bytes"),
        (WireError::InvalidValue { field: "status" }, "invalid value for status"),
    ];
    for (error, text) in cases {
        assert_eq!(error.to_string(), text);
    }
}

/// An envelope prints its length, not its bytes, and gives its bytes back unchanged.
#[test]
fn envelope_prints_its_length_and_gives_its_bytes_back() {
    let bytes = vec![0xa5, 0x00, 0x5a];
    let envelope = Envelope::new(bytes.clone()).expect("a valid envelope");
    assert_eq!(format!("{envelope:?}"), "Envelope(3 bytes)");
    assert_eq!(envelope.as_bytes(), bytes.as_slice());
    assert_eq!(envelope.into_bytes(), bytes);
}

/// Link frames name their type as SPEC.md §3.2 does (the roles' `Unexpected` errors carry it).
#[test]
fn link_frames_name_their_type_as_the_spec_does() {
    let frames = [
        (LinkFrame::handshake_init(vec![0; HANDSHAKE_INIT_MIN_LEN]), "HandshakeInit"),
        (LinkFrame::handshake_resp(vec![0; HANDSHAKE_RESP_MIN_LEN]), "HandshakeResp"),
        (LinkFrame::transport(vec![0; TRANSPORT_MIN_LEN]), "Transport"),
    ];
    for (frame, name) in frames {
        let frame = frame.expect("a frame of its kind's shortest length");
        assert_eq!((frame.type_name(), frame.kind().name()), (name, name));
    }
    assert_eq!(LinkKind::Transport.name(), "Transport");
}

/// A name compares, orders, hashes and prints as its text (a `BTreeMap` or `HashMap` of names
/// must find what a map of the strings would).
#[test]
fn names_compare_order_hash_and_print_as_their_text() {
    use std::hash::{BuildHasher, RandomState};
    let (alice, bob) = (Name::new("alice").expect("name"), Name::new("bob").expect("name"));
    assert_eq!(alice, Name::new("alice").expect("name"));
    assert_ne!(alice, bob);
    assert_eq!(alice.partial_cmp(&bob), Some(core::cmp::Ordering::Less));
    assert_eq!(bob.partial_cmp(&alice), Some(core::cmp::Ordering::Greater));
    let hasher = RandomState::new();
    assert_eq!(hasher.hash_one(&alice), hasher.hash_one("alice"));
    assert_ne!(hasher.hash_one(&alice), hasher.hash_one(&bob));
    assert_eq!((format!("{alice}"), format!("{alice:?}")), ("alice".into(), "\"alice\"".into()));
}

/// A body prints as text when it is UTF-8, else as hex; a message id as `#n`.
#[test]
fn bodies_and_message_ids_print_readably() {
    let text = Body::new(b"hi".to_vec()).expect("body");
    let binary = Body::new(vec![0xff, 0x00]).expect("body");
    assert_eq!((format!("{text:?}"), format!("{binary:?}")), ("\"hi\"".into(), "0xff00".into()));
    assert_eq!(MessageId(7).to_string(), "#7");
}
