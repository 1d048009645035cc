//! The handshake (SPEC.md §11): an X3DH-style key agreement from a verified prekey bundle.
//!
//! ```text
//! Alice (initiator, initiate)                 Bob (responder, respond)
//! DH1 = DH(ik_A, SPK_B)                       DH1 = DH(spk_B, IK_A_dh)
//! DH2 = DH(ek_A, IK_B_dh)                     DH2 = DH(ik_B,  EK_A)
//! DH3 = DH(ek_A, SPK_B)                       DH3 = DH(spk_B, EK_A)
//! DH4 = DH(ek_A, OPK_B)   [if an OPK]         DH4 = DH(opk_B, EK_A)   [if an opk_id]
//!
//! SK = HKDF(salt = 0^32, ikm = 0xFF^32 || DH1 || DH2 || DH3 [|| DH4], info = "e2e-ref/x3dh/v1", L = 32)
//! AD = IK_A (64) || IK_B (64)                 the initiator's identity first, in both directions
//! ```
//!
//! Every DH is checked for contributory behaviour (§2.1): an all-zero output is
//! [`E2eError::Crypto`]`(`[`CryptoError::NonContributory`](crate::suite::CryptoError)`)` and is
//! never fed to the KDF. The DH outputs and the KDF input are zeroized when the function returns;
//! the initiator's ephemeral private key is consumed and dropped (zeroized) inside [`initiate`].
//!
//! The result seeds the Double Ratchet (§12.2): the initiator with `SK`, `AD` and `SPK_B` as the
//! peer's first ratchet key; the responder with `SK`, `AD` and `(spk_B, SPK_B)` as its own first
//! ratchet key pair. [`respond`] does not touch the prekey store: the caller deletes the one-time
//! prekey only once the first ratchet message has decrypted (§11.2).

use zeroize::Zeroizing;

use crate::suite::{DH_LEN, PrivateKey, PublicKey, Secret, SharedSecret, Signature, hkdf_sha256};
use crate::wire::{IdentityPublic, Name};

use super::E2eError;
use super::bundle::VerifiedBundle;
use super::identity::IdentityKeyPair;
use super::prekeys::PrekeyStore;

/// HKDF `info` for `SK`: the 15 ASCII bytes shown (SPEC.md §11.1).
pub const X3DH_INFO: &[u8; 15] = b"e2e-ref/x3dh/v1";

/// HKDF salt for `SK`: 32 zero bytes (SPEC.md §11.1).
pub const X3DH_SALT: [u8; 32] = [0u8; 32];

/// X3DH's domain-separation prefix `F` for X25519 (Signal's X3DH specification §2.2): 32 bytes of
/// `0xFF` before the DH outputs (SPEC.md §11.1).
pub const X3DH_PREFIX: [u8; DH_LEN] = [0xFF; DH_LEN];

/// Length of the shared secret `SK` (the `L` of SPEC.md §11.1).
pub const SK_LEN: usize = 32;

/// Length of the identity part of the associated data, `IK_A || IK_B`; the names follow it.
pub const AD_IDENTITIES_LEN: usize = 2 * IdentityPublic::LEN;

/// Longest associated data [`associated_data`] makes: both identities and two names of at most
/// [`crate::wire::MAX_NAME_LEN`] bytes, each with its length byte. The ratchet builds `AD || header`
/// for every message in a stack buffer of this size (plus the header).
pub const MAX_AD_LEN: usize = AD_IDENTITIES_LEN + 2 * (1 + crate::wire::MAX_NAME_LEN);

/// Longest HKDF input: the prefix and four DH outputs.
const MAX_IKM_LEN: usize = DH_LEN * 5;

/// The handshake fields of a prekey message (SPEC.md §11.2, §13): who the initiator is, its base
/// key, and which of the responder's prekeys it used. Public data.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct PrekeyHeader {
    /// The initiator's identity `IK_A`.
    pub identity: IdentityPublic,
    /// `id_sig`: `IK_A_sig`'s signature over `IK_A_dh` (SPEC.md §10.1), which the responder
    /// verifies before anything else, so that the identity it shows and pins is one whole identity.
    pub identity_signature: Signature,
    /// The initiator's ephemeral public key `EK_A`, the session's base key (§11.3).
    pub base_key: PublicKey,
    /// The id of the responder's signed prekey used (`spk_id`).
    pub signed_prekey_id: u32,
    /// The id of the responder's one-time prekey used (`opk_id`), if the bundle carried one.
    pub one_time_prekey_id: Option<u32>,
}

/// The initiator's result (SPEC.md §11.1).
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub struct Initiated {
    shared_secret: Secret<SK_LEN>,
    ad: Vec<u8>,
    their_ratchet_key: PublicKey,
    header: PrekeyHeader,
}

impl Initiated {
    /// `SK`, the ratchet's first root key.
    #[must_use]
    pub const fn shared_secret(&self) -> &Secret<SK_LEN> {
        &self.shared_secret
    }

    /// `AD = IK_A || IK_B || Name(A) || Name(B)` (ours first).
    #[must_use]
    pub fn ad(&self) -> &[u8] {
        &self.ad
    }

    /// `SPK_B`, the responder's first ratchet key (`DHr` of §12.2).
    #[must_use]
    pub const fn their_ratchet_key(&self) -> PublicKey {
        self.their_ratchet_key
    }

    /// What every prekey message of this session carries (§11.3, §13).
    #[must_use]
    pub const fn header(&self) -> PrekeyHeader {
        self.header
    }
}

/// The responder's result (SPEC.md §11.2).
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub struct Responded {
    shared_secret: Secret<SK_LEN>,
    ad: Vec<u8>,
    ratchet_key: PrivateKey,
}

impl Responded {
    /// `SK`, the ratchet's first root key.
    #[must_use]
    pub const fn shared_secret(&self) -> &Secret<SK_LEN> {
        &self.shared_secret
    }

    /// `AD = IK_A || IK_B || Name(A) || Name(B)` (the initiator's first).
    #[must_use]
    pub fn ad(&self) -> &[u8] {
        &self.ad
    }

    /// `spk_B` (a copy of the signed prekey named by the header), the responder's first ratchet
    /// key pair (`DHs` of §12.2).
    #[must_use]
    pub const fn ratchet_key(&self) -> &PrivateKey {
        &self.ratchet_key
    }
}

/// `AD = IK_A || IK_B || Name(A) || Name(B)`, each name encoded as on the wire (`len: u8 || bytes`,
/// SPEC.md §3.3), the initiator's first. The names are the ones the server vouches for; binding them
/// means a server that relabels an envelope's sender (or recipient) makes it fail to open.
#[must_use]
pub fn associated_data(
    (initiator, initiator_name): (&IdentityPublic, &Name),
    (responder, responder_name): (&IdentityPublic, &Name),
) -> Vec<u8> {
    let mut ad = Vec::with_capacity(MAX_AD_LEN);
    ad.extend_from_slice(&initiator.to_bytes());
    ad.extend_from_slice(&responder.to_bytes());
    initiator_name.encode(&mut ad);
    responder_name.encode(&mut ad);
    ad
}

/// `SK = HKDF(0^32, 0xFF^32 || DH1 || DH2 || DH3 [|| DH4], "e2e-ref/x3dh/v1", 32)`.
fn derive_sk(
    dh1: &SharedSecret,
    dh2: &SharedSecret,
    dh3: &SharedSecret,
    dh4: Option<&SharedSecret>,
) -> Result<Secret<SK_LEN>, E2eError> {
    // Allocated once at its final size, so no reallocation leaves a copy behind; zeroized on drop.
    let mut ikm = Zeroizing::new(Vec::with_capacity(MAX_IKM_LEN));
    ikm.extend_from_slice(&X3DH_PREFIX);
    for dh in [Some(dh1), Some(dh2), Some(dh3), dh4].into_iter().flatten() {
        ikm.extend_from_slice(dh.expose());
    }
    let mut sk = Zeroizing::new([0u8; SK_LEN]);
    hkdf_sha256(Some(&X3DH_SALT), &ikm, X3DH_INFO, sk.as_mut_slice())?;
    Ok(Secret::new(*sk))
}

/// Alice's side (SPEC.md §11.1): the key agreement with a bundle that passed
/// [`super::bundle::verify_fetched`] (steps 1–3 and the pin check).
///
/// `ephemeral` is `(ek_A, EK_A)`, drawn by the caller from its RNG (§2.4); it is consumed and erased
/// here. Its public key becomes the session's base key ([`PrekeyHeader::base_key`]).
///
/// # Errors
/// [`E2eError::Crypto`]`(NonContributory)` if a DH output is all zero. Unreachable with a verified
/// bundle: a clamped X25519 scalar is `2^254 + 8k` (`k < 2^251`), a multiple of the cofactor but
/// never of the prime order ℓ ≈ 2^252, so an output is zero only for a low-order point, and
/// [`super::bundle::verify_fetched`] refuses those (§10.3 step 2). The check stays because §2.1
/// requires it of every DH.
pub fn initiate(
    ours: &IdentityKeyPair,
    our_name: &Name,
    bundle: &VerifiedBundle,
    ephemeral: PrivateKey,
) -> Result<Initiated, E2eError> {
    let spk = bundle.signed_prekey();
    let opk = bundle.one_time_prekey();

    let dh1 = ours.dh().diffie_hellman(&spk.key)?;
    let dh2 = ephemeral.diffie_hellman(&bundle.identity().dh)?;
    let dh3 = ephemeral.diffie_hellman(&spk.key)?;
    let dh4 = opk.map(|opk| ephemeral.diffie_hellman(&opk.key)).transpose()?;
    let shared_secret = derive_sk(&dh1, &dh2, &dh3, dh4.as_ref())?;

    let identity = ours.public();
    Ok(Initiated {
        shared_secret,
        ad: associated_data((&identity, our_name), (bundle.identity(), bundle.name())),
        their_ratchet_key: spk.key,
        header: PrekeyHeader {
            identity,
            identity_signature: ours.binding_signature(),
            base_key: ephemeral.public_key(),
            signed_prekey_id: spk.id,
            one_time_prekey_id: opk.map(|opk| opk.id),
        },
    })
}

/// Bob's side (SPEC.md §11.2): the same `SK` and `AD` from the prekey message's header and his
/// private keys. Reads `store`, never changes it.
///
/// # Errors
/// In this order: [`E2eError::Bundle`] if `IK_A` is not one whole, valid identity
/// ([`super::bundle::verify_initiator`]: `BadSigningKey`, `LowOrderKey`, `BadSignature`);
/// [`E2eError::UnknownPrekey`] with the signed prekey id if it is neither the
/// current nor the previous signed prekey, then with the one-time prekey id if that is not held;
/// [`E2eError::Crypto`]`(NonContributory)` if a DH output is all zero (`IK_A_dh` or `EK_A` of
/// small order).
pub fn respond(
    ours: &IdentityKeyPair,
    our_name: &Name,
    from: &Name,
    store: &PrekeyStore,
    header: &PrekeyHeader,
) -> Result<Responded, E2eError> {
    super::bundle::verify_initiator(&header.identity, &header.identity_signature)?;
    let spk = store
        .signed_prekey(header.signed_prekey_id)
        .ok_or(E2eError::UnknownPrekey { id: header.signed_prekey_id })?;
    let opk = header
        .one_time_prekey_id
        .map(|id| store.one_time_prekey(id).ok_or(E2eError::UnknownPrekey { id }))
        .transpose()?;

    let dh1 = spk.diffie_hellman(&header.identity.dh)?;
    let dh2 = ours.dh().diffie_hellman(&header.base_key)?;
    let dh3 = spk.diffie_hellman(&header.base_key)?;
    let dh4 = opk.map(|opk| opk.diffie_hellman(&header.base_key)).transpose()?;
    let shared_secret = derive_sk(&dh1, &dh2, &dh3, dh4.as_ref())?;

    Ok(Responded {
        shared_secret,
        ad: associated_data((&header.identity, from), (&ours.public(), our_name)),
        ratchet_key: spk.clone(),
    })
}

#[cfg(test)]
mod tests {
    use rand_chacha::ChaCha20Rng;
    use rand_core::SeedableRng;

    use super::*;
    use crate::e2e::bundle::verify_fetched;
    use crate::suite::{CryptoError, hmac_sha256};
    use crate::wire::{FetchedBundle, Name};

    fn name(s: &str) -> Name {
        Name::new(s).unwrap()
    }

    struct Bob {
        identity: IdentityKeyPair,
        store: PrekeyStore,
        bundle: FetchedBundle,
    }

    fn bob(seed: u64) -> Bob {
        let mut rng = ChaCha20Rng::seed_from_u64(seed);
        let identity = IdentityKeyPair::generate(&mut rng);
        let mut store = PrekeyStore::generate(&identity, &mut rng);
        let upload = store.prepare_upload(&identity).unwrap();
        let bundle = FetchedBundle {
            identity: *upload.identity(),
            signed_prekey: *upload.signed_prekey(),
            one_time_prekey: upload.one_time_prekeys().first().copied(),
        };
        Bob { identity, store, bundle }
    }

    fn verified(bundle: &FetchedBundle) -> VerifiedBundle {
        verify_fetched(&Name::new("bob").unwrap(), bundle, None).unwrap()
    }

    fn alice(seed: u64) -> IdentityKeyPair {
        IdentityKeyPair::generate(&mut ChaCha20Rng::seed_from_u64(seed))
    }

    fn ephemeral(seed: u8) -> PrivateKey {
        PrivateKey::from_bytes([seed; 32])
    }

    fn with_and_without_opk(b: &Bob) -> [FetchedBundle; 2] {
        [b.bundle, FetchedBundle { one_time_prekey: None, ..b.bundle }]
    }

    #[test]
    fn both_sides_agree_with_and_without_a_one_time_prekey() {
        let (a, b) = (alice(1), bob(2));
        for bundle in with_and_without_opk(&b) {
            let init = initiate(&a, &name("alice"), &verified(&bundle), ephemeral(3)).unwrap();
            let header = init.header();
            assert_eq!(header.identity, a.public());
            assert_eq!(header.base_key, ephemeral(3).public_key());
            assert_eq!(header.signed_prekey_id, 1);
            assert_eq!(header.one_time_prekey_id, bundle.one_time_prekey.map(|o| o.id));
            assert_eq!(init.their_ratchet_key(), bundle.signed_prekey.key);

            let resp =
                respond(&b.identity, &name("bob"), &name("alice"), &b.store, &header).unwrap();
            assert_eq!(resp.shared_secret(), init.shared_secret());
            assert_eq!(resp.ad(), init.ad());
            assert_eq!(&init.ad()[..64], &a.public().to_bytes(), "initiator first");
            assert_eq!(&init.ad()[64..128], &b.identity.public().to_bytes());
            assert_eq!(&init.ad()[128..], b"\x05alice\x03bob", "then both names, initiator first");
            assert_eq!(resp.ratchet_key(), b.store.signed_prekey(1).unwrap());
            assert_eq!(resp.ratchet_key().public_key(), init.their_ratchet_key());
        }
    }

    #[test]
    fn longest_names_give_the_longest_associated_data() {
        let (a, b) = (alice(1), bob(2));
        let longest = name(&"n".repeat(crate::wire::MAX_NAME_LEN));
        let ad = associated_data((&a.public(), &longest), (&b.identity.public(), &longest));
        assert_eq!(ad.len(), MAX_AD_LEN);
        assert_eq!(MAX_AD_LEN, 64 + 64 + 2 * (1 + 32));
    }

    #[test]
    fn one_time_prekey_changes_sk() {
        let (a, b) = (alice(1), bob(2));
        let [with, without] = with_and_without_opk(&b);
        let sk_with = initiate(&a, &name("alice"), &verified(&with), ephemeral(3)).unwrap();
        let sk_without = initiate(&a, &name("alice"), &verified(&without), ephemeral(3)).unwrap();
        assert_ne!(sk_with.shared_secret(), sk_without.shared_secret());
        assert_eq!(sk_with.ad(), sk_without.ad());
    }

    /// SK recomputed from the SPEC text with the suite's HMAC (HKDF = extract then expand, one block).
    #[test]
    fn sk_is_hkdf_over_the_spec_input() {
        let (a, b) = (alice(1), bob(2));
        let ek = ephemeral(3);
        let bundle = b.bundle;
        let init = initiate(&a, &name("alice"), &verified(&bundle), ek.clone()).unwrap();

        let mut ikm = vec![0xFF; 32];
        ikm.extend_from_slice(a.dh().diffie_hellman(&bundle.signed_prekey.key).unwrap().expose());
        ikm.extend_from_slice(ek.diffie_hellman(&bundle.identity.dh).unwrap().expose());
        ikm.extend_from_slice(ek.diffie_hellman(&bundle.signed_prekey.key).unwrap().expose());
        ikm.extend_from_slice(
            ek.diffie_hellman(&bundle.one_time_prekey.unwrap().key).unwrap().expose(),
        );
        assert_eq!(ikm.len(), 160);
        let prk = hmac_sha256(&[0u8; 32], &[&ikm]);
        let okm = hmac_sha256(&prk, &[b"e2e-ref/x3dh/v1", &[0x01]]);
        assert_eq!(init.shared_secret().expose(), &okm);
    }

    #[test]
    fn any_different_key_gives_a_different_sk() {
        let (a, b) = (alice(1), bob(2));
        let base = initiate(&a, &name("alice"), &verified(&b.bundle), ephemeral(3)).unwrap();
        let resp =
            respond(&b.identity, &name("bob"), &name("alice"), &b.store, &base.header()).unwrap();
        assert_eq!(resp.shared_secret(), base.shared_secret());

        // Another initiator identity, another ephemeral.
        let other_a =
            initiate(&alice(9), &name("alice"), &verified(&b.bundle), ephemeral(3)).unwrap();
        assert_ne!(other_a.shared_secret(), base.shared_secret());
        assert_ne!(other_a.ad(), base.ad());
        let other_ek = initiate(&a, &name("alice"), &verified(&b.bundle), ephemeral(4)).unwrap();
        assert_ne!(other_ek.shared_secret(), base.shared_secret());

        // Another responder (other IK, SPK, OPK), the same ids.
        let other_b = bob(10);
        let to_other =
            initiate(&a, &name("alice"), &verified(&other_b.bundle), ephemeral(3)).unwrap();
        assert_ne!(to_other.shared_secret(), base.shared_secret());
        assert_ne!(to_other.ad(), base.ad());

        // Bob answering with the wrong keys does not find Alice's SK: another OPK, another identity,
        // or a header whose claimed identity or base key was changed in transit.
        let header = base.header();
        let other_opk = PrekeyHeader { one_time_prekey_id: Some(3), ..header };
        assert_ne!(
            respond(&b.identity, &name("bob"), &name("alice"), &b.store, &other_opk)
                .unwrap()
                .shared_secret(),
            base.shared_secret()
        );
        let wrong_bob =
            respond(&other_b.identity, &name("bob"), &name("alice"), &b.store, &header).unwrap();
        assert_ne!(wrong_bob.shared_secret(), base.shared_secret());
        assert_ne!(wrong_bob.ad(), base.ad());
        let other = alice(9);
        let claimed = PrekeyHeader {
            identity: other.public(),
            identity_signature: other.binding_signature(),
            ..header
        };
        let r = respond(&b.identity, &name("bob"), &name("alice"), &b.store, &claimed).unwrap();
        assert_ne!(r.shared_secret(), base.shared_secret());
        assert_ne!(r.ad(), base.ad());
        // One half of IK_A replaced by another identity's, with Alice's id_sig: the signature no
        // longer covers the claimed identity, and Bob computes nothing (SPEC.md §11.2).
        for mixed in [
            IdentityPublic { sign: other.public().sign, ..header.identity },
            IdentityPublic { dh: other.public().dh, ..header.identity },
        ] {
            let h = PrekeyHeader { identity: mixed, ..header };
            assert_eq!(
                respond(&b.identity, &name("bob"), &name("alice"), &b.store, &h),
                Err(E2eError::Bundle(crate::wire::BundleRefusal::BadSignature))
            );
        }
        let base_key = PrekeyHeader { base_key: ephemeral(5).public_key(), ..header };
        assert_ne!(
            respond(&b.identity, &name("bob"), &name("alice"), &b.store, &base_key)
                .unwrap()
                .shared_secret(),
            base.shared_secret()
        );
    }

    #[test]
    fn unknown_signed_or_one_time_prekey() {
        let (a, b) = (alice(1), bob(2));
        let header =
            initiate(&a, &name("alice"), &verified(&b.bundle), ephemeral(3)).unwrap().header();
        let bad_spk = PrekeyHeader { signed_prekey_id: 2, ..header }; // 2 is a one-time prekey
        assert_eq!(
            respond(&b.identity, &name("bob"), &name("alice"), &b.store, &bad_spk),
            Err(E2eError::UnknownPrekey { id: 2 })
        );
        let bad_opk = PrekeyHeader { one_time_prekey_id: Some(1), ..header }; // 1 is the spk
        assert_eq!(
            respond(&b.identity, &name("bob"), &name("alice"), &b.store, &bad_opk),
            Err(E2eError::UnknownPrekey { id: 1 })
        );
        let both = PrekeyHeader { signed_prekey_id: 77, one_time_prekey_id: Some(78), ..header };
        assert_eq!(
            respond(&b.identity, &name("bob"), &name("alice"), &b.store, &both),
            Err(E2eError::UnknownPrekey { id: 77 }),
            "the signed prekey is looked up first"
        );

        // After the one-time prekey is deleted, the same prekey message is refused.
        let mut store = b.store.clone();
        store.remove_one_time(header.one_time_prekey_id.unwrap());
        assert_eq!(
            respond(&b.identity, &name("bob"), &name("alice"), &store, &header),
            Err(E2eError::UnknownPrekey { id: header.one_time_prekey_id.unwrap() })
        );
    }

    #[test]
    fn respond_does_not_touch_the_store() {
        let (a, b) = (alice(1), bob(2));
        let header =
            initiate(&a, &name("alice"), &verified(&b.bundle), ephemeral(3)).unwrap().header();
        let before = b.store.clone();
        respond(&b.identity, &name("bob"), &name("alice"), &b.store, &header).unwrap();
        assert_eq!(b.store, before);
        assert!(b.store.one_time_prekey(header.one_time_prekey_id.unwrap()).is_some());
    }

    #[test]
    fn non_contributory_dh_is_refused() {
        let (a, b) = (alice(1), bob(2));
        let header =
            initiate(&a, &name("alice"), &verified(&b.bundle), ephemeral(3)).unwrap().header();
        let mut one = [0u8; 32];
        one[0] = 1;
        for low in [[0u8; 32], one].map(PublicKey::from_bytes) {
            for h in [
                PrekeyHeader { base_key: low, ..header },
                PrekeyHeader { base_key: low, one_time_prekey_id: None, ..header },
            ] {
                assert_eq!(
                    respond(&b.identity, &name("bob"), &name("alice"), &b.store, &h),
                    Err(E2eError::Crypto(CryptoError::NonContributory))
                );
            }
            // A low-order IK_A_dh never reaches DH1: the identity check refuses it first.
            let h =
                PrekeyHeader { identity: IdentityPublic { dh: low, ..header.identity }, ..header };
            assert_eq!(
                respond(&b.identity, &name("bob"), &name("alice"), &b.store, &h),
                Err(E2eError::Bundle(crate::wire::BundleRefusal::LowOrderKey))
            );
        }
        // On the initiator's side a verified bundle has no low-order key, and no private key makes
        // the output zero (clamping sets bit 254): even the all-zero "ephemeral" works.
        assert!(initiate(&a, &name("alice"), &verified(&b.bundle), ephemeral(0)).is_ok());
    }

    #[test]
    fn previous_signed_prekey_still_answers_after_rotation() {
        let (a, mut b) = (alice(1), bob(2));
        let mut rng = ChaCha20Rng::seed_from_u64(99);
        let init = initiate(&a, &name("alice"), &verified(&b.bundle), ephemeral(3)).unwrap();
        assert_eq!(init.header().signed_prekey_id, 1);

        let new_id = b.store.rotate_signed(&b.identity, &mut rng).unwrap();
        let resp =
            respond(&b.identity, &name("bob"), &name("alice"), &b.store, &init.header()).unwrap();
        assert_eq!(resp.shared_secret(), init.shared_secret());
        assert_eq!(resp.ratchet_key().public_key(), init.their_ratchet_key());

        // A session on the new signed prekey works too.
        let mut store = b.store.clone();
        let upload = store.prepare_upload(&b.identity).unwrap();
        assert_eq!(upload.signed_prekey().id, new_id);
        let fresh = FetchedBundle { signed_prekey: *upload.signed_prekey(), ..b.bundle };
        let init2 = initiate(&a, &name("alice"), &verified(&fresh), ephemeral(4)).unwrap();
        let resp2 =
            respond(&b.identity, &name("bob"), &name("alice"), &b.store, &init2.header()).unwrap();
        assert_eq!(resp2.shared_secret(), init2.shared_secret());

        // A second rotation deletes signed prekey 1.
        b.store.rotate_signed(&b.identity, &mut rng).unwrap();
        assert_eq!(
            respond(&b.identity, &name("bob"), &name("alice"), &b.store, &init.header()),
            Err(E2eError::UnknownPrekey { id: 1 })
        );
    }

    #[test]
    fn results_do_not_print_secrets() {
        let (a, b) = (alice(1), bob(2));
        let init = initiate(&a, &name("alice"), &verified(&b.bundle), ephemeral(3)).unwrap();
        let resp =
            respond(&b.identity, &name("bob"), &name("alice"), &b.store, &init.header()).unwrap();
        let sk = hex::encode(init.shared_secret().expose());
        let spk = hex::encode(resp.ratchet_key().expose());
        for shown in [format!("{init:?}"), format!("{resp:?}")] {
            assert!(!shown.contains(&sk) && !shown.contains(&spk), "{shown}");
        }
    }
}
