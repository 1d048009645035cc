//! `bundles.json`: prekey bundles on upload (the server's check, SPEC.md §10.3 steps 1–5 and §15.2)
//! and on fetch (the client's check, steps 1–3 and the pin of §11.1), valid and invalid.

use serde_json::Value;

use super::util::{
    Ident, compare_json, fixed_key, hex, hex_array, object, outcome_fields, str_field,
};
use super::wire::{fetched_from, fetched_json, message_json, upload_from, upload_json};
use super::{CaseResult, VectorError, file_head, verify_cases};
use e2e_protocol::e2e::bundle::verify_fetched;
use e2e_protocol::e2e::identity::IdentityKeyPair;
use e2e_protocol::e2e::signed::signed_prekey_message;
use e2e_protocol::error::Error;
use e2e_protocol::roles::Directory;
use e2e_protocol::suite::{PublicKey, Signature, SigningKey, VerifyingKey};
use e2e_protocol::wire::{
    Codec, FetchedBundle, IdentityPublic, Message, Name, OneTimePrekeyPublic, SignedPrekeyPublic,
    UploadedBundle,
};

const DESCRIPTION: &str = "Prekey bundles with their outcomes (SPEC.md §10.3, §11.1, §15.2). \
`direction: upload` is the server's check of an UploadBundle from `name`: if `stored` is not null, the \
server first accepted that upload from the same name, then receives `upload`; the reply is BundleStored \
(with the number of one-time prekeys now held) or BundleRefused, and the error class is E2e.Bundle.<reason>. \
`direction: fetch` is the client's check of a Bundle for `name`, against the identity it `pinned` (verified), \
if any. `signed_message` is the 92-byte message spk_sig covers. Bundle fields are as in wire.json; byte \
strings are hex.";

fn name(s: &str) -> Result<Name, VectorError> {
    Ok(Name::new(s)?)
}

fn opks(label: &str, ids: impl IntoIterator<Item = u32>) -> Vec<OneTimePrekeyPublic> {
    ids.into_iter()
        .map(|id| OneTimePrekeyPublic {
            id,
            key: fixed_key(&format!("bundles/{label}/opk/{id}")).public_key(),
        })
        .collect()
}

fn with_key(
    mut list: Vec<OneTimePrekeyPublic>,
    index: usize,
    key: PublicKey,
) -> Vec<OneTimePrekeyPublic> {
    if let Some(opk) = list.get_mut(index) {
        opk.key = key;
    }
    list
}

fn with_id(mut list: Vec<OneTimePrekeyPublic>, index: usize, id: u32) -> Vec<OneTimePrekeyPublic> {
    if let Some(opk) = list.get_mut(index) {
        opk.id = id;
    }
    list
}

fn signed_message(identity: &IdentityPublic, spk: &SignedPrekeyPublic) -> Value {
    hex(signed_prekey_message(&identity.dh, spk.id, &spk.key)).into()
}

/// An upload case: the server's directory accepts `stored` (if any), then receives `upload`.
fn upload_case(
    id: &str,
    comment: &str,
    stored: Option<&UploadedBundle>,
    upload: &UploadedBundle,
) -> Result<Value, VectorError> {
    let owner = name("bob")?;
    let mut directory = Directory::default();
    if let Some(stored) = stored {
        directory.upload(&owner, stored)?;
    }
    let outcome = directory.upload(&owner, upload).map_err(Error::from);
    let reply = match &outcome {
        Ok(count) => {
            Message::BundleStored { one_time_prekeys: u16::try_from(*count).unwrap_or(u16::MAX) }
        }
        Err(Error::E2e(e2e_protocol::e2e::E2eError::Bundle(reason))) => {
            Message::BundleRefused { reason: *reason }
        }
        Err(e) => return Err(VectorError::Protocol(e.clone())),
    };
    let (result, error) = outcome_fields(&outcome);
    let mut case = vec![("id", id.into()), ("comment", comment.into()), ("result", result.into())];
    if let Some(error) = error {
        case.push(("error", error.into()));
    }
    case.extend([
        ("direction", "upload".into()),
        ("name", owner.as_str().into()),
        ("stored", stored.map_or(Value::Null, |s| object(upload_json(s)))),
        ("upload", object(upload_json(upload))),
        ("signed_message", signed_message(upload.identity(), upload.signed_prekey())),
        ("message", hex(Message::UploadBundle { bundle: upload.clone() }.encode()).into()),
        ("reply", message_json(&reply)),
        ("reply_hex", hex(reply.encode()).into()),
    ]);
    Ok(object(case))
}

/// A fetch case: the client checks `bundle` for `name`, pinned to `pinned` if set.
fn fetch_case(
    id: &str,
    comment: &str,
    bundle: &FetchedBundle,
    pinned: Option<&IdentityPublic>,
) -> Result<Value, VectorError> {
    let owner = name("bob")?;
    let outcome = verify_fetched(&owner, bundle, pinned).map_err(Error::from);
    let (result, error) = outcome_fields(&outcome);
    let mut case = vec![("id", id.into()), ("comment", comment.into()), ("result", result.into())];
    if let Some(error) = error {
        case.push(("error", error.into()));
    }
    case.extend([
        ("direction", "fetch".into()),
        ("name", owner.as_str().into()),
        ("pinned", pinned.map_or(Value::Null, |p| hex(p.to_bytes()).into())),
        ("bundle", object(fetched_json(bundle))),
        ("signed_message", signed_message(&bundle.identity, &bundle.signed_prekey)),
        ("message", hex(Message::Bundle { name: owner, bundle: *bundle }.encode()).into()),
    ]);
    Ok(object(case))
}

/// X25519 public keys of small order (SPEC.md §2.1, §10.3 step 2), with what they are.
fn low_order_x25519() -> Vec<(&'static str, PublicKey)> {
    let from_hex = |s: &str| {
        let mut b = [0u8; 32];
        let _ = hex::decode_to_slice(s, &mut b);
        PublicKey::from_bytes(b)
    };
    vec![
        ("u = 0", from_hex("0000000000000000000000000000000000000000000000000000000000000000")),
        ("u = 1", from_hex("0100000000000000000000000000000000000000000000000000000000000000")),
        (
            "a point of order 8",
            from_hex("e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800"),
        ),
        (
            "u = p - 1 (order 2)",
            from_hex("ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f"),
        ),
        (
            "u = p, a non-canonical 0",
            from_hex("edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f"),
        ),
        (
            "u = p + 1, a non-canonical 1",
            from_hex("eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f"),
        ),
        (
            "u = 0 with the ignored top bit set",
            from_hex("0000000000000000000000000000000000000000000000000000000000000080"),
        ),
    ]
}

/// Ed25519 public keys step 1 of SPEC.md §10.3 refuses.
fn bad_signing_keys() -> Vec<(&'static str, &'static str)> {
    vec![
        (
            "the identity point (0, 1), order 1",
            "0100000000000000000000000000000000000000000000000000000000000000",
        ),
        ("(0, -1), order 2", "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f"),
        (
            "y = 0, a point of order 4",
            "0000000000000000000000000000000000000000000000000000000000000000",
        ),
        (
            "y = 0 with the sign bit set, order 4",
            "0000000000000000000000000000000000000000000000000000000000000080",
        ),
        ("a point of order 8", "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a"),
        (
            "another point of order 8",
            "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05",
        ),
        (
            "y = p + 1, a non-canonical encoding of the identity",
            "eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
        ),
        (
            "y = p + 3, a non-canonical encoding of a point of large order (y = 3)",
            "f0ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
        ),
        (
            "y = p + 3 with the sign bit set",
            "f0ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff",
        ),
        (
            "y = 2, not on the curve",
            "0200000000000000000000000000000000000000000000000000000000000000",
        ),
    ]
}

/// `S + ℓ` in the signature's second half: the same equation, a non-canonical `S`.
fn add_group_order(signature: &Signature) -> Signature {
    // ℓ = 2^252 + 27742317777372353535851937790883648493, little-endian.
    const L: [u8; 32] = [
        0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9, 0xde,
        0x14, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10,
    ];
    let mut bytes = *signature.as_bytes();
    let mut carry = 0u16;
    for (i, l) in L.iter().enumerate() {
        let sum = u16::from(bytes[32 + i]) + u16::from(*l) + carry;
        bytes[32 + i] = sum.to_le_bytes()[0];
        carry = sum >> 8;
    }
    Signature::from_bytes(bytes)
}

fn identity_with_sign(identity: &IdentityPublic, hex_key: &str) -> IdentityPublic {
    let mut b = [0u8; 32];
    let _ = hex::decode_to_slice(hex_key, &mut b);
    IdentityPublic { sign: VerifyingKey::from_bytes(b), ..*identity }
}

/// Builds `bundles.json`.
///
/// # Errors
/// A protocol error where the generator expects success.
#[allow(clippy::too_many_lines)]
pub fn generate() -> Result<Value, VectorError> {
    let bob: IdentityKeyPair = Ident::fixed("bundles/bob").pair();
    let ik = bob.public();
    let spk = bob.sign_prekey(1, fixed_key("bundles/bob/spk/1").public_key());
    let batch = opks("bob", 2..=11);
    let up = |identity: IdentityPublic, spk: SignedPrekeyPublic, list: Vec<OneTimePrekeyPublic>| {
        UploadedBundle::new(identity, spk, list).map_err(VectorError::from)
    };
    let honest = up(ik, spk, batch.clone())?;
    let mut cases = vec![upload_case(
        "upload-valid",
        "Bob's first upload: signed prekey 1, one-time prekeys 2..=11.",
        None,
        &honest,
    )?];
    cases.push(upload_case(
        "upload-valid-no-one-time-prekeys",
        "An upload with no one-time prekeys.",
        None,
        &up(ik, spk, Vec::new())?,
    )?);
    cases.push(upload_case(
        "upload-valid-100",
        "Exactly MAX_ONE_TIME_PREKEYS = 100 one-time prekeys.",
        None,
        &up(ik, spk, opks("bob", 2..=101))?,
    )?);
    cases.push(upload_case(
        "upload-valid-replenish",
        "Replenishment: the same IK and signed prekey again, with new one-time prekeys 12..=14; the server now holds 13.",
        Some(&honest),
        &up(ik, spk, opks("bob", 12..=14))?,
    )?);
    let spk20 = bob.sign_prekey(20, fixed_key("bundles/bob/spk/20").public_key());
    cases.push(upload_case(
        "upload-valid-rotate",
        "Rotation: the same IK with signed prekey 20 and no one-time prekeys; the 10 stored ones stay.",
        Some(&honest),
        &up(ik, spk20, Vec::new())?,
    )?);
    let other = Ident::fixed("bundles/bob-new-device").pair();
    let other_spk = other.sign_prekey(1, fixed_key("bundles/bob-new-device/spk/1").public_key());
    cases.push(upload_case(
        "upload-valid-identity-change",
        "An upload under another IK replaces the stored bundle: the old one-time prekeys are dropped, so ids 2..=11 \
         may be reused and only the 10 new ones are held.",
        Some(&honest),
        &up(other.public(), other_spk, opks("bob-new-device", 2..=11))?,
    )?);

    for (i, (what, key)) in bad_signing_keys().into_iter().enumerate() {
        let identity = identity_with_sign(&ik, key);
        cases.push(upload_case(
            &format!("upload-bad-signing-key-{i}"),
            &format!("IK_sig is {what} (step 1)."),
            None,
            &up(identity, spk, batch.clone())?,
        )?);
    }
    // R = the identity point, S = 0: [S]B = R + [k]A holds for every message when A is the identity,
    // so a verifier that skips the key checks of step 1 (OpenSSL's Ed25519, as used by Python's
    // `cryptography`) accepts this signature. SPEC.md refuses the key first.
    let mut forged = [0u8; 64];
    forged[0] = 1;
    let forged = SignedPrekeyPublic { signature: Signature::from_bytes(forged), ..spk };
    for (i, (what, key)) in [
        ("the identity point", "0100000000000000000000000000000000000000000000000000000000000000"),
        (
            "y = p + 1, the identity non-canonically",
            "eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
        ),
    ]
    .into_iter()
    .enumerate()
    {
        cases.push(upload_case(
            &format!("upload-bad-signing-key-verifying-signature-{i}"),
            &format!(
                "IK_sig is {what} and spk_sig is (R = identity, S = 0), which satisfies the verification equation \
                 for any message: a verifier without the key checks of step 1 accepts it (OpenSSL's Ed25519 \
                 does); step 1 refuses the key."
            ),
            None,
            &up(identity_with_sign(&ik, key), forged, batch.clone())?,
        )?);
        cases.push(fetch_case(
            &format!("fetch-bad-signing-key-verifying-signature-{i}"),
            &format!("A fetched bundle whose IK_sig is {what}, with the signature (R = identity, S = 0) that verifies under it."),
            &FetchedBundle { identity: identity_with_sign(&ik, key), signed_prekey: forged, one_time_prekey: None },
            None,
        )?);
    }
    for (i, (what, point)) in low_order_x25519().into_iter().enumerate() {
        let identity = IdentityPublic { dh: point, ..ik };
        // Signed over the low-order IK_dh, so only step 2 can refuse it.
        let signer = SigningKey::from_seed(Ident::fixed("bundles/bob").isk);
        let resigned = SignedPrekeyPublic {
            signature: signer.sign(&signed_prekey_message(&point, spk.id, &spk.key)),
            ..spk
        };
        cases.push(upload_case(
            &format!("upload-low-order-identity-{i}"),
            &format!("IK_dh is {what} (step 2)."),
            None,
            &up(identity, resigned, batch.clone())?,
        )?);
        let low_spk = bob.sign_prekey(1, point);
        cases.push(fetch_case(
            &format!("fetch-low-order-identity-{i}"),
            &format!("A fetched bundle whose IK_dh is {what}, correctly signed over it (step 2)."),
            &FetchedBundle { identity, signed_prekey: resigned, one_time_prekey: None },
            None,
        )?);
        cases.push(upload_case(
            &format!("upload-low-order-signed-prekey-{i}"),
            &format!("SPK is {what}, correctly signed (step 2)."),
            None,
            &up(ik, low_spk, batch.clone())?,
        )?);
        cases.push(upload_case(
            &format!("upload-low-order-one-time-prekey-{i}"),
            &format!("The last one-time prekey is {what} (step 2)."),
            None,
            &up(ik, spk, with_key(batch.clone(), 9, point))?,
        )?);
    }

    let mut flipped = *spk.signature.as_bytes();
    flipped[0] ^= 0x01;
    let by_other =
        SigningKey::from_seed([7u8; 32]).sign(&signed_prekey_message(&ik.dh, spk.id, &spk.key));
    let mut small_r = [0u8; 64];
    small_r[0] = 1;
    let bad_sigs: Vec<(&str, &str, IdentityPublic, SignedPrekeyPublic)> = vec![
        (
            "flipped",
            "A bit of spk_sig's R flipped.",
            ik,
            SignedPrekeyPublic { signature: Signature::from_bytes(flipped), ..spk },
        ),
        (
            "spk-id",
            "spk_id changed to 2 after signing: the id is signed.",
            ik,
            SignedPrekeyPublic { id: 2, ..spk },
        ),
        (
            "spk-key",
            "SPK replaced after signing.",
            ik,
            SignedPrekeyPublic { key: fixed_key("bundles/bob/spk/other").public_key(), ..spk },
        ),
        (
            "other-signer",
            "Signed by another Ed25519 key.",
            ik,
            SignedPrekeyPublic { signature: by_other, ..spk },
        ),
        (
            "other-identity-dh",
            "Presented with another X25519 identity key: IK_dh is part of the signed message (SPEC.md §10.2).",
            IdentityPublic { dh: fixed_key("bundles/other-ik-dh").public_key(), ..ik },
            spk,
        ),
        (
            "s-plus-order",
            "S replaced by S + ℓ: the same equation holds, but S is not canonical (strict verification).",
            ik,
            SignedPrekeyPublic { signature: add_group_order(&spk.signature), ..spk },
        ),
        (
            "small-order-r",
            "R is the identity point and S = 0.",
            ik,
            SignedPrekeyPublic { signature: Signature::from_bytes(small_r), ..spk },
        ),
        (
            "zero",
            "An all-zero signature.",
            ik,
            SignedPrekeyPublic { signature: Signature::from_bytes([0u8; 64]), ..spk },
        ),
    ];
    for (tag, comment, identity, bad) in &bad_sigs {
        cases.push(upload_case(
            &format!("upload-bad-signature-{tag}"),
            &format!("{comment} (step 3)"),
            None,
            &up(*identity, *bad, batch.clone())?,
        )?);
    }

    cases.push(upload_case(
        "upload-too-many-prekeys",
        "101 one-time prekeys in one upload (step 4).",
        None,
        &up(ik, spk, opks("bob", 2..=102))?,
    )?);
    let stored95 = up(ik, spk, opks("bob", 2..=96))?;
    cases.push(upload_case(
        "upload-too-many-with-stored",
        "95 stored under the same IK plus 6 uploaded is 101 (step 4).",
        Some(&stored95),
        &up(ik, spk, opks("bob", 97..=102))?,
    )?);
    cases.push(upload_case(
        "upload-exactly-100-with-stored",
        "95 stored plus 5 uploaded is exactly 100.",
        Some(&stored95),
        &up(ik, spk, opks("bob", 97..=101))?,
    )?);
    // Step 4 counts what the server stores under the *same* IK only: after an identity change the
    // old one-time prekeys are dropped, so they do not count (SPEC.md §10.3, §15.2).
    cases.push(upload_case(
        "upload-valid-100-after-identity-change",
        "95 stored under Bob's old IK, then 100 uploaded under a new IK: valid, since stored prekeys of \
         another IK do not count towards step 4 (they are dropped).",
        Some(&stored95),
        &up(other.public(), other_spk, opks("bob-new-device", 2..=101))?,
    )?);
    // Step 5 compares the uploaded one-time ids with every stored id, but not the uploaded spk_id:
    // a rotation may give the new signed prekey an id a stored one-time prekey has.
    let spk5 = bob.sign_prekey(5, fixed_key("bundles/bob/spk/5").public_key());
    cases.push(upload_case(
        "upload-valid-spk-id-equals-stored-one-time-id",
        "A rotation to signed prekey id 5 while one-time prekey 5 is stored (ids 2..=11): valid, the \
         uploaded spk_id is not compared with stored ids (step 5).",
        Some(&honest),
        &up(ik, spk5, opks("bob", 12..=13))?,
    )?);
    cases.push(upload_case(
        "upload-duplicate-within",
        "One-time prekey id 5 twice in the upload (step 5).",
        None,
        &up(ik, spk, with_id(batch.clone(), 9, 5))?,
    )?);
    cases.push(upload_case(
        "upload-duplicate-signed-prekey-id",
        "A one-time prekey with id 1, the uploaded spk_id (step 5).",
        None,
        &up(ik, spk, with_id(batch.clone(), 0, 1))?,
    )?);
    cases.push(upload_case(
        "upload-duplicate-stored-one-time",
        "Replenishment with one-time prekey id 11, which the server still stores under the same IK (step 5).",
        Some(&honest),
        &up(ik, spk, opks("bob", 11..=13))?,
    )?);
    cases.push(upload_case(
        "upload-duplicate-stored-signed",
        "A rotation to signed prekey 20 carrying a one-time prekey with id 1, the stored signed prekey's id (step 5).",
        Some(&honest),
        &up(ik, spk20, opks("bob", 1..=1))?,
    )?);
    let bad_everything = IdentityPublic {
        dh: PublicKey::from_bytes([0u8; 32]),
        ..identity_with_sign(
            &ik,
            "0100000000000000000000000000000000000000000000000000000000000000",
        )
    };
    cases.push(upload_case(
        "upload-first-failure-wins-1",
        "A small-order IK_sig, a low-order IK_dh and a bad signature: step 1 is reported.",
        None,
        &up(bad_everything, bad_sigs[0].3, batch.clone())?,
    )?);
    cases.push(upload_case(
        "upload-first-failure-wins-2",
        "A low-order one-time prekey and a bad signature: step 2 is reported.",
        None,
        &up(ik, bad_sigs[0].3, with_key(batch.clone(), 0, PublicKey::from_bytes([0u8; 32])))?,
    )?);
    cases.push(upload_case(
        "upload-first-failure-wins-3",
        "A bad signature, 101 one-time prekeys and a duplicate id: step 3 is reported.",
        None,
        &up(ik, bad_sigs[0].3, with_id(opks("bob", 2..=102), 5, 2))?,
    )?);
    cases.push(upload_case(
        "upload-first-failure-wins-4",
        "101 one-time prekeys with a duplicate id: step 4 is reported.",
        None,
        &up(ik, spk, with_id(opks("bob", 2..=102), 5, 2))?,
    )?);

    // Fetch.
    let fetched =
        FetchedBundle { identity: ik, signed_prekey: spk, one_time_prekey: batch.first().copied() };
    cases.push(fetch_case("fetch-valid", "Bob's bundle with one-time prekey 2.", &fetched, None)?);
    cases.push(fetch_case(
        "fetch-valid-no-one-time-prekey",
        "Bob's bundle without a one-time prekey.",
        &FetchedBundle { one_time_prekey: None, ..fetched },
        None,
    )?);
    cases.push(fetch_case(
        "fetch-valid-pinned",
        "Bob's bundle, and the identity the client verified for bob is Bob's.",
        &fetched,
        Some(&ik),
    )?);
    cases.push(fetch_case(
        "fetch-identity-mismatch",
        "A valid bundle whose IK is not the one verified for bob: a server substituting keys (SPEC.md §14.2).",
        &FetchedBundle { identity: other.public(), signed_prekey: other_spk, ..fetched },
        Some(&ik),
    )?);
    cases.push(fetch_case(
        "fetch-bad-signature-before-pin",
        "A bad signature under a pin that also differs: steps 1–3 come before the pin check.",
        &FetchedBundle { signed_prekey: bad_sigs[0].3, ..fetched },
        Some(&other.public()),
    )?);
    for (tag, comment, identity, bad) in &bad_sigs {
        cases.push(fetch_case(
            &format!("fetch-bad-signature-{tag}"),
            comment,
            &FetchedBundle { identity: *identity, signed_prekey: *bad, ..fetched },
            None,
        )?);
    }
    for (i, (what, key)) in bad_signing_keys().into_iter().enumerate().take(3) {
        cases.push(fetch_case(
            &format!("fetch-bad-signing-key-{i}"),
            &format!("IK_sig is {what}."),
            &FetchedBundle { identity: identity_with_sign(&ik, key), ..fetched },
            None,
        )?);
    }
    for (i, (what, point)) in low_order_x25519().into_iter().enumerate().take(3) {
        cases.push(fetch_case(
            &format!("fetch-low-order-one-time-prekey-{i}"),
            &format!("The one-time prekey is {what}."),
            &FetchedBundle {
                one_time_prekey: Some(OneTimePrekeyPublic { id: 2, key: point }),
                ..fetched
            },
            None,
        )?);
        cases.push(fetch_case(
            &format!("fetch-low-order-signed-prekey-{i}"),
            &format!("The signed prekey is {what}, correctly signed."),
            &FetchedBundle { signed_prekey: bob.sign_prekey(1, point), ..fetched },
            None,
        )?);
    }

    let mut file = file_head("bundles", DESCRIPTION);
    file.insert("cases".to_owned(), Value::Array(cases));
    Ok(Value::Object(file))
}

/// Re-checks every case of `bundles.json`.
#[must_use]
pub fn verify(file: &Value) -> Vec<CaseResult> {
    verify_cases(file, |case| {
        let id = str_field(case, "id")?;
        let comment = str_field(case, "comment")?;
        let got = match str_field(case, "direction")? {
            "upload" => {
                let stored = match &case["stored"] {
                    Value::Null => None,
                    s => Some(upload_from(s)?),
                };
                upload_case(id, comment, stored.as_ref(), &upload_from(&case["upload"])?)?
            }
            "fetch" => {
                let pinned = match &case["pinned"] {
                    Value::Null => None,
                    _ => {
                        let b: [u8; 64] = hex_array(case, "pinned")?;
                        Some(fetched_from(&serde_json::json!({
                            "IK": hex(b), "spk_id": 0, "spk": hex([0u8; 32]), "spk_sig": hex([0u8; 64]),
                            "one_time_prekey": null
                        }))?.identity)
                    }
                };
                fetch_case(id, comment, &fetched_from(&case["bundle"])?, pinned.as_ref())?
            }
            _ => return Err(VectorError::malformed("direction")),
        };
        compare_json(id, case, &got)
    })
}
