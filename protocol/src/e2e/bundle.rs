//! Bundle validation (SPEC.md §10.3), shared by the server (every upload) and the client (every
//! fetched bundle). Neither trusts the other to have done it.
//!
//! The steps, in this order; the first failure wins and is reported as
//! [`E2eError::Bundle`] with the [`BundleRefusal`] code the server sends (§15.1):
//!
//! | step | check                                                                | refusal            |
//! |------|----------------------------------------------------------------------|--------------------|
//! | 1    | `IK_sig` is a valid Ed25519 point encoding, not of small order        | `BadSigningKey`     |
//! | 2    | `IK_dh`, `SPK` and every `OPK` are not of small order (§2.1)          | `LowOrderKey`       |
//! | 3    | `spk_sig` verifies under `IK_sig`, strict RFC 8032                    | `BadSignature`      |
//! | 4    | upload only: ≤ [`MAX_ONE_TIME_PREKEYS`] one-time prekeys, upload + stored | `TooManyPrekeys` |
//! | 5    | upload only: one-time ids distinct from each other, `spk_id`, stored ids | `DuplicatePrekeyId` |
//!
//! A fetched bundle then passes the pin check (§11.1, §14.2): if the client has verified an
//! identity for that name and the bundle carries another, [`E2eError::IdentityMismatch`]. The pin is
//! compared *after* steps 1–3, as §11.1 orders it ("She validates it … If she has marked an identity
//! as verified … and `IK_B` differs"): a malformed bundle is reported as malformed whatever identity
//! it claims, and either way nothing is sent.
//!
//! A fetched bundle that passes is wrapped in a [`VerifiedBundle`], a proof token: only
//! [`verify_fetched`] builds one, and the handshake ([`super::x3dh::initiate`]) requires one, so a
//! session cannot start from an unchecked bundle.

use std::collections::BTreeSet;

use crate::suite::{PublicKey, Signature};
use crate::wire::{
    BundleRefusal, FetchedBundle, IdentityPublic, Name, OneTimePrekeyPublic, SignedPrekeyPublic,
    UploadedBundle,
};

use super::signed::{identity_binding_message, signed_prekey_message};
use super::{E2eError, MAX_ONE_TIME_PREKEYS};

const fn refuse(reason: BundleRefusal) -> E2eError {
    E2eError::Bundle(reason)
}

/// Steps 1–3 of SPEC.md §10.3, common to uploads and fetched bundles. `IK_sig` is decoded once, in
/// step 1, and step 3 verifies with that decoded key: one decoding and one strict verification.
fn check_keys_and_signature<'a>(
    identity: &IdentityPublic,
    signed_prekey: &SignedPrekeyPublic,
    one_time_keys: impl IntoIterator<Item = &'a PublicKey>,
) -> Result<(), E2eError> {
    // Step 1: the signing key is canonical and decodes to a point that is not of small order.
    let signing_key = identity.sign.decode().map_err(|_| refuse(BundleRefusal::BadSigningKey))?;

    // Step 2: no X25519 key of the bundle has small order (a DH with it would be all zero).
    let low_order = identity.dh.is_low_order()
        || signed_prekey.key.is_low_order()
        || one_time_keys.into_iter().any(PublicKey::is_low_order);
    if low_order {
        return Err(refuse(BundleRefusal::LowOrderKey));
    }

    // Step 3: strict verification of the signed prekey's signature, under the key of step 1.
    if crate::flaws::on(crate::flaws::Flaw::SkipSignedPrekeySignature) {
        return Ok(());
    } // seeded flaw hook
    let message = signed_prekey_message(&identity.dh, signed_prekey.id, &signed_prekey.key);
    signing_key
        .verify_strict(&message, &signed_prekey.signature)
        .map_err(|_| refuse(BundleRefusal::BadSignature))
}

/// The responder's check of the identity a prekey message claims (SPEC.md §11.2): §10.3 steps 1
/// and 2 applied to `IK_A` (`BadSigningKey`, `LowOrderKey`), then `id_sig` verified under `IK_A_sig`
/// with the strict rules of step 3 (`BadSignature`). Without it a prekey message could claim an
/// identity whose signing half is small-order, or belongs to somebody else. As for a bundle,
/// `IK_A_sig` is decoded once and `id_sig` verified once.
///
/// # Errors
/// [`E2eError::Bundle`] with the first failing check's [`BundleRefusal`].
pub fn verify_initiator(identity: &IdentityPublic, signature: &Signature) -> Result<(), E2eError> {
    let signing_key = identity.sign.decode().map_err(|_| refuse(BundleRefusal::BadSigningKey))?;
    if identity.dh.is_low_order() {
        return Err(refuse(BundleRefusal::LowOrderKey));
    }
    let message = identity_binding_message(&identity.dh);
    signing_key.verify_strict(&message, signature).map_err(|_| refuse(BundleRefusal::BadSignature))
}

/// The server's check of an `UploadBundle` (SPEC.md §10.3 steps 1–5, §15.2).
///
/// `stored_ids` and `stored_count` describe what the server *keeps* for this client if it accepts
/// the upload, that is what it already stores **under the same `IK`** (an upload with a different
/// `IK` replaces the old bundle and drops its one-time prekeys, §15.2, so then pass nothing and 0):
///
/// * `stored_ids`: every prekey id the server still stores for this identity — its signed
///   prekey's id and its remaining one-time prekeys' ids. The uploaded one-time prekey ids must
///   differ from all of them (step 5). The uploaded `spk_id` itself is not compared with them: a
///   replenishment re-sends the stored signed prekey, with its stored id.
/// * `stored_count`: how many one-time prekeys the server stores; with the upload's, at most
///   [`MAX_ONE_TIME_PREKEYS`] (step 4).
///
/// # Errors
/// [`E2eError::Bundle`] with the first failing step's [`BundleRefusal`].
pub fn validate_upload(
    upload: &UploadedBundle,
    stored_ids: impl IntoIterator<Item = u32>,
    stored_count: usize,
) -> Result<(), E2eError> {
    let one_time = upload.one_time_prekeys();
    check_keys_and_signature(
        upload.identity(),
        upload.signed_prekey(),
        one_time.iter().map(|opk| &opk.key),
    )?;

    // Step 4: the upload and what stays stored, together.
    if one_time.len().saturating_add(stored_count) > MAX_ONE_TIME_PREKEYS {
        return Err(refuse(BundleRefusal::TooManyPrekeys));
    }

    // Step 5: one-time ids distinct from each other, from spk_id, and from the stored ids.
    let mut ids = BTreeSet::new();
    for opk in one_time {
        if !ids.insert(opk.id) || opk.id == upload.signed_prekey().id {
            return Err(refuse(BundleRefusal::DuplicatePrekeyId));
        }
    }
    if stored_ids.into_iter().any(|id| ids.contains(&id)) {
        return Err(refuse(BundleRefusal::DuplicatePrekeyId));
    }
    Ok(())
}

/// A fetched bundle that passed [`verify_fetched`]: SPEC.md §10.3 steps 1–3 and the pin check of
/// §11.1. A proof token — it has no public constructor — required by [`super::x3dh::initiate`].
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub struct VerifiedBundle {
    name: Name,
    bundle: FetchedBundle,
}

impl VerifiedBundle {
    /// The name the bundle was fetched for (and, if pinned, checked against).
    #[must_use]
    pub const fn name(&self) -> &Name {
        &self.name
    }

    /// The owner's identity `IK_B`.
    #[must_use]
    pub const fn identity(&self) -> &IdentityPublic {
        &self.bundle.identity
    }

    /// The signed prekey `(spk_id, SPK_B, spk_sig)`, whose signature verified under `IK_B`.
    #[must_use]
    pub const fn signed_prekey(&self) -> &SignedPrekeyPublic {
        &self.bundle.signed_prekey
    }

    /// The one-time prekey `(opk_id, OPK_B)`, if the server had one left.
    #[must_use]
    pub const fn one_time_prekey(&self) -> Option<&OneTimePrekeyPublic> {
        self.bundle.one_time_prekey.as_ref()
    }
}

/// The client's check of a `Bundle` from the server for `name` (SPEC.md §10.3 steps 1–3, then
/// §11.1's pin check against `pinned`, the identity the user verified for `name`, if any).
///
/// # Errors
/// [`E2eError::Bundle`] with the first failing step's [`BundleRefusal`]; then, for a well-formed
/// bundle, [`E2eError::IdentityMismatch`] if `pinned` is set and differs from the bundle's `IK`.
pub fn verify_fetched(
    name: &Name,
    bundle: &FetchedBundle,
    pinned: Option<&IdentityPublic>,
) -> Result<VerifiedBundle, E2eError> {
    check_keys_and_signature(
        &bundle.identity,
        &bundle.signed_prekey,
        bundle.one_time_prekey.as_ref().map(|opk| &opk.key),
    )?;
    if pinned.is_some_and(|pin| *pin != bundle.identity) {
        return Err(E2eError::IdentityMismatch { name: name.clone() });
    }
    Ok(VerifiedBundle { name: name.clone(), bundle: *bundle })
}

#[cfg(test)]
mod tests {
    use rand_chacha::ChaCha20Rng;
    use rand_core::SeedableRng;

    use super::*;
    use crate::e2e::identity::IdentityKeyPair;
    use crate::e2e::prekeys::PrekeyStore;
    use crate::suite::{CryptoError, PrivateKey, Signature, SigningKey, VerifyingKey};

    /// Small-order X25519 points (RFC 7748 §6.1; the Curve25519 low-order list of
    /// <https://cr.yp.to/ecdh.html#validate>): u = 0, u = 1, and a point of order 8.
    fn low_order_points() -> [PublicKey; 3] {
        let mut one = [0u8; 32];
        one[0] = 1;
        let mut order_8 = [0u8; 32];
        hex::decode_to_slice(
            "e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800",
            &mut order_8,
        )
        .unwrap();
        [[0u8; 32], one, order_8].map(PublicKey::from_bytes)
    }

    /// The Ed25519 identity point `(0, 1)`: a valid encoding of a point of small order.
    fn small_order_ed25519() -> VerifyingKey {
        let mut b = [0u8; 32];
        b[0] = 1;
        VerifyingKey::from_bytes(b)
    }

    /// An encoding that decodes to no point: `y = 2` is not on the curve, because
    /// `x² = (y² − 1)/(d·y² + 1)` is not a square mod `2^255 − 19`.
    fn invalid_ed25519() -> VerifyingKey {
        let mut b = [0u8; 32];
        b[0] = 2;
        let key = VerifyingKey::from_bytes(b);
        assert_eq!(key.check(), Err(CryptoError::BadSigningKey));
        key
    }

    /// A non-canonical encoding: `y = p + 3` (`f0`, `ff` × 30, `7f`), refused by §10.3 step 1
    /// whether or not a lax decoder would reduce it.
    fn non_canonical_ed25519() -> VerifyingKey {
        let mut b = [0xffu8; 32];
        b[0] = 0xf0;
        b[31] = 0x7f;
        VerifyingKey::from_bytes(b)
    }

    struct Fixture {
        identity: IdentityKeyPair,
        store: PrekeyStore,
        upload: UploadedBundle,
    }

    fn fixture(seed: u64) -> Fixture {
        let mut rng = ChaCha20Rng::seed_from_u64(seed);
        let identity = IdentityKeyPair::generate(&mut rng);
        let mut store = PrekeyStore::generate(&identity, &mut rng);
        let upload = store.prepare_upload(&identity).unwrap();
        Fixture { identity, store, upload }
    }

    fn upload_with(
        identity: IdentityPublic,
        spk: SignedPrekeyPublic,
        opks: Vec<OneTimePrekeyPublic>,
    ) -> UploadedBundle {
        UploadedBundle::new(identity, spk, opks).unwrap()
    }

    fn opks(first_id: u32, n: usize, seed: u8) -> Vec<OneTimePrekeyPublic> {
        (0..n)
            .map(|i| OneTimePrekeyPublic {
                id: first_id + u32::try_from(i).unwrap(),
                key: PrivateKey::from_bytes(
                    [seed.wrapping_add(u8::try_from(i % 251).unwrap()); 32],
                )
                .public_key(),
            })
            .collect()
    }

    fn fetched(f: &Fixture) -> FetchedBundle {
        FetchedBundle {
            identity: *f.upload.identity(),
            signed_prekey: *f.upload.signed_prekey(),
            one_time_prekey: f.upload.one_time_prekeys().first().copied(),
        }
    }

    fn name(s: &str) -> Name {
        Name::new(s).unwrap()
    }

    fn refused(reason: BundleRefusal) -> Result<(), E2eError> {
        Err(E2eError::Bundle(reason))
    }

    /// Runs a fetched bundle through `verify_fetched` with no pin, keeping only the verdict.
    fn verify(bundle: &FetchedBundle) -> Result<(), E2eError> {
        verify_fetched(&name("bob"), bundle, None).map(|_| ())
    }

    #[test]
    fn honest_upload_and_fetch_pass() {
        let f = fixture(1);
        assert_eq!(validate_upload(&f.upload, [], 0), Ok(()));
        let bundle = fetched(&f);
        let verified = verify_fetched(&name("bob"), &bundle, Some(&f.identity.public())).unwrap();
        assert_eq!(verified.name(), &name("bob"));
        assert_eq!(verified.identity(), &f.identity.public());
        assert_eq!(verified.signed_prekey(), &f.store.current_signed_prekey());
        assert_eq!(verified.one_time_prekey(), bundle.one_time_prekey.as_ref());
        let without = FetchedBundle { one_time_prekey: None, ..bundle };
        assert_eq!(verify_fetched(&name("bob"), &without, None).unwrap().one_time_prekey(), None);
    }

    #[test]
    fn step_1_bad_signing_key() {
        let f = fixture(2);
        for sign in [invalid_ed25519(), small_order_ed25519(), non_canonical_ed25519()] {
            let identity = IdentityPublic { sign, ..*f.upload.identity() };
            let up = upload_with(identity, *f.upload.signed_prekey(), Vec::new());
            assert_eq!(validate_upload(&up, [], 0), refused(BundleRefusal::BadSigningKey));
            let bundle = FetchedBundle { identity, ..fetched(&f) };
            assert_eq!(verify(&bundle), refused(BundleRefusal::BadSigningKey));
        }
    }

    #[test]
    fn step_2_low_order_identity_signed_or_one_time_key() {
        let f = fixture(3);
        let spk = *f.upload.signed_prekey();
        for point in low_order_points() {
            assert!(point.is_low_order());
            // IK_dh
            let identity = IdentityPublic { dh: point, ..*f.upload.identity() };
            let up = upload_with(identity, spk, f.upload.one_time_prekeys().to_vec());
            assert_eq!(validate_upload(&up, [], 0), refused(BundleRefusal::LowOrderKey));
            let bundle = FetchedBundle { identity, ..fetched(&f) };
            assert_eq!(verify(&bundle), refused(BundleRefusal::LowOrderKey));

            // SPK (signed correctly, so only the order is wrong)
            let bad_spk = f.identity.sign_prekey(spk.id, point);
            let up = upload_with(*f.upload.identity(), bad_spk, Vec::new());
            assert_eq!(validate_upload(&up, [], 0), refused(BundleRefusal::LowOrderKey));
            let bundle = FetchedBundle { signed_prekey: bad_spk, ..fetched(&f) };
            assert_eq!(verify(&bundle), refused(BundleRefusal::LowOrderKey));

            // The last OPK of an upload, and the OPK of a fetched bundle
            let mut list = f.upload.one_time_prekeys().to_vec();
            list.last_mut().unwrap().key = point;
            let up = upload_with(*f.upload.identity(), spk, list);
            assert_eq!(validate_upload(&up, [], 0), refused(BundleRefusal::LowOrderKey));
            let bundle = FetchedBundle {
                one_time_prekey: Some(OneTimePrekeyPublic { id: 2, key: point }),
                ..fetched(&f)
            };
            assert_eq!(verify(&bundle), refused(BundleRefusal::LowOrderKey));
        }
    }

    #[test]
    fn step_3_bad_signature() {
        let f = fixture(4);
        let spk = *f.upload.signed_prekey();
        let mut flipped_sig = *spk.signature.as_bytes();
        flipped_sig[10] ^= 0x01;
        let mut flipped_key = *spk.key.as_bytes();
        flipped_key[5] ^= 0x80;
        let flipped_key = PublicKey::from_bytes(flipped_key);
        assert!(!flipped_key.is_low_order());
        let other = SigningKey::from_seed([9u8; 32]);
        let by_other =
            other.sign(&signed_prekey_message(&f.identity.public().dh, spk.id, &spk.key));
        // The right signing key, but over another identity's IK_dh (the binding of §10.2).
        let other_dh = PrivateKey::from_bytes([8u8; 32]).public_key();
        let cases = [
            (
                "bit flipped in spk_sig",
                SignedPrekeyPublic { signature: Signature::from_bytes(flipped_sig), ..spk },
            ),
            ("bit flipped in SPK", SignedPrekeyPublic { key: flipped_key, ..spk }),
            ("spk_id changed", SignedPrekeyPublic { id: spk.id ^ 0x0100, ..spk }),
            ("signed by another key", SignedPrekeyPublic { signature: by_other, ..spk }),
        ];
        for (what, bad) in cases {
            let up = upload_with(*f.upload.identity(), bad, Vec::new());
            assert_eq!(validate_upload(&up, [], 0), refused(BundleRefusal::BadSignature), "{what}");
            let bundle = FetchedBundle { signed_prekey: bad, ..fetched(&f) };
            assert_eq!(verify(&bundle), refused(BundleRefusal::BadSignature), "{what}");
        }
        // IK_dh is signed too: the same signature presented with another X25519 identity key fails.
        let identity = IdentityPublic { dh: other_dh, ..*f.upload.identity() };
        let bundle = FetchedBundle { identity, ..fetched(&f) };
        assert_eq!(verify(&bundle), refused(BundleRefusal::BadSignature));
    }

    #[test]
    fn step_4_too_many_prekeys() {
        let f = fixture(5);
        let id = *f.upload.identity();
        let spk = *f.upload.signed_prekey();
        let at_limit = upload_with(id, spk, opks(100, 100, 1));
        assert_eq!(validate_upload(&at_limit, [], 0), Ok(()));
        let over = upload_with(id, spk, opks(100, 101, 1));
        assert_eq!(validate_upload(&over, [], 0), refused(BundleRefusal::TooManyPrekeys));

        // 60 stored + 41 uploaded = 101; 60 + 40 = 100 is fine.
        let stored: Vec<u32> = (1000..1060).collect();
        let up = upload_with(id, spk, opks(100, 41, 1));
        assert_eq!(
            validate_upload(&up, stored.iter().copied(), 60),
            refused(BundleRefusal::TooManyPrekeys)
        );
        let up = upload_with(id, spk, opks(100, 40, 1));
        assert_eq!(validate_upload(&up, stored.iter().copied(), 60), Ok(()));
        assert_eq!(validate_upload(&up, [], usize::MAX), refused(BundleRefusal::TooManyPrekeys));
    }

    #[test]
    fn step_5_duplicate_prekey_id() {
        let f = fixture(6);
        let id = *f.upload.identity();
        let spk = *f.upload.signed_prekey();

        let mut within = opks(100, 5, 1);
        within[4].id = 102;
        let up = upload_with(id, spk, within);
        assert_eq!(validate_upload(&up, [], 0), refused(BundleRefusal::DuplicatePrekeyId));

        let mut vs_spk = opks(100, 5, 1);
        vs_spk[2].id = spk.id;
        let up = upload_with(id, spk, vs_spk);
        assert_eq!(validate_upload(&up, [], 0), refused(BundleRefusal::DuplicatePrekeyId));

        let up = upload_with(id, spk, opks(100, 5, 1));
        assert_eq!(validate_upload(&up, [7, 104, 9], 2), refused(BundleRefusal::DuplicatePrekeyId));
        // A stored signed prekey id counts as stored.
        assert_eq!(validate_upload(&up, [100], 0), refused(BundleRefusal::DuplicatePrekeyId));
        // The uploaded spk_id may equal a stored id: a replenishment re-sends the stored spk.
        assert_eq!(validate_upload(&up, [spk.id, 7], 1), Ok(()));
    }

    #[test]
    fn identity_mismatch_against_the_pin() {
        let f = fixture(7);
        let other = fixture(8).identity.public();
        let bundle = fetched(&f);
        assert_eq!(
            verify_fetched(&name("bob"), &bundle, Some(&other)),
            Err(E2eError::IdentityMismatch { name: name("bob") })
        );
        // A pin that differs in one byte of either half is a different identity.
        let mut sign = *f.identity.public().sign.as_bytes();
        sign[31] ^= 1;
        let near = IdentityPublic { sign: VerifyingKey::from_bytes(sign), ..f.identity.public() };
        assert!(matches!(
            verify_fetched(&name("bob"), &bundle, Some(&near)),
            Err(E2eError::IdentityMismatch { .. })
        ));
        assert!(verify_fetched(&name("bob"), &bundle, Some(&f.identity.public())).is_ok());
    }

    #[test]
    fn initiator_identity_steps_and_their_order() {
        let f = fixture(11);
        let ik = f.identity.public();
        let id_sig = f.identity.binding_signature();
        assert_eq!(verify_initiator(&ik, &id_sig), Ok(()));
        let [zero, ..] = low_order_points();
        let mut flipped = *id_sig.as_bytes();
        flipped[40] ^= 0x04;
        let flipped = Signature::from_bytes(flipped);

        // Step 1 first, whatever IK_A_dh and id_sig are.
        for sign in [invalid_ed25519(), small_order_ed25519(), non_canonical_ed25519()] {
            for dh in [ik.dh, zero] {
                for sig in [id_sig, flipped] {
                    assert_eq!(
                        verify_initiator(&IdentityPublic { sign, dh }, &sig),
                        refused(BundleRefusal::BadSigningKey)
                    );
                }
            }
        }
        // Then step 2 on IK_A_dh, before id_sig.
        for dh in low_order_points() {
            let identity = IdentityPublic { dh, ..ik };
            assert_eq!(verify_initiator(&identity, &flipped), refused(BundleRefusal::LowOrderKey));
        }
        // Then id_sig: tampered, another identity's, or over another IK_dh.
        let other = fixture(12).identity;
        let mixed = IdentityPublic { dh: other.public().dh, ..ik };
        for (identity, sig) in [(ik, flipped), (ik, other.binding_signature()), (mixed, id_sig)] {
            assert_eq!(verify_initiator(&identity, &sig), refused(BundleRefusal::BadSignature));
        }
        // R = the identity point, S = 0 (accepted by lax verifiers under a small-order key) under a
        // good key.
        let mut lax = [0u8; 64];
        lax[0] = 1;
        let lax = Signature::from_bytes(lax);
        assert_eq!(verify_initiator(&ik, &lax), refused(BundleRefusal::BadSignature));
    }

    #[test]
    fn first_failure_wins() {
        let f = fixture(9);
        let good_id = *f.upload.identity();
        let spk = *f.upload.signed_prekey();
        let [zero, ..] = low_order_points();
        let bad_sig = SignedPrekeyPublic { signature: Signature::from_bytes([0u8; 64]), ..spk };
        let mut dup_and_many = opks(100, 101, 1);
        dup_and_many[1].id = 100;

        // Step 1 before step 2, 3 and the pin.
        let bad_everything = IdentityPublic { sign: small_order_ed25519(), dh: zero };
        let up = upload_with(bad_everything, bad_sig, dup_and_many.clone());
        assert_eq!(validate_upload(&up, [], 0), refused(BundleRefusal::BadSigningKey));
        let b = FetchedBundle { identity: bad_everything, signed_prekey: bad_sig, ..fetched(&f) };
        assert_eq!(
            verify_fetched(&name("bob"), &b, Some(&good_id)),
            Err(E2eError::Bundle(BundleRefusal::BadSigningKey))
        );

        // Step 2 before step 3 and 4, 5.
        let low_dh = IdentityPublic { dh: zero, ..good_id };
        let up = upload_with(low_dh, bad_sig, dup_and_many.clone());
        assert_eq!(validate_upload(&up, [], 0), refused(BundleRefusal::LowOrderKey));
        let mut low_opk = dup_and_many.clone();
        low_opk[50].key = zero;
        let up = upload_with(good_id, bad_sig, low_opk);
        assert_eq!(validate_upload(&up, [], 0), refused(BundleRefusal::LowOrderKey));

        // Step 3 before 4, 5; and before the pin check.
        let up = upload_with(good_id, bad_sig, dup_and_many.clone());
        assert_eq!(validate_upload(&up, [], 0), refused(BundleRefusal::BadSignature));
        let other = fixture(10).identity.public();
        let b = FetchedBundle { signed_prekey: bad_sig, ..fetched(&f) };
        assert_eq!(
            verify_fetched(&name("bob"), &b, Some(&other)),
            Err(E2eError::Bundle(BundleRefusal::BadSignature))
        );

        // Step 4 before step 5.
        let up = upload_with(good_id, spk, dup_and_many);
        assert_eq!(validate_upload(&up, [], 0), refused(BundleRefusal::TooManyPrekeys));
        let up = upload_with(good_id, spk, opks(100, 10, 1));
        assert_eq!(validate_upload(&up, [100], 91), refused(BundleRefusal::TooManyPrekeys));
        assert_eq!(validate_upload(&up, [100], 90), refused(BundleRefusal::DuplicatePrekeyId));
    }
}
