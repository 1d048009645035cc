//! A signed prekey substituted under the real identity (spec/MODEL.md §3, §4; flaw (e) of §6):
//! the malicious server answers a fetch with the peer's real identity and a signed prekey of its
//! own (`Reply::OwnSignedPrekey`), whose signature cannot verify under the peer's `IK_sig`. A
//! client must refuse it (SPEC.md §10.3 step 3). One that does not starts a session that `DH2 =
//! DH(EK_A, IK_B)` still keeps from S — until `IK_B` is compromised: then the attacker holds
//! both `ik_B` and the signed prekey's private key, and reads the session. So the compromise
//! oracle (§5) also pairs each compromised identity with every prekey store the attacker made,
//! and `signed-prekey-binding` says that pairing opens no honest message.

use e2e_protocol::e2e::E2eError;
use e2e_protocol::e2e::identity::IdentityKeyPair;
use e2e_protocol::e2e::peers::Peers;
use e2e_protocol::e2e::prekeys::PrekeyStore;
use e2e_protocol::roles::ClientEvent;
use e2e_protocol::wire::{BundleRefusal, Envelope};

use super::E2eModel;
use crate::world::{Who, World, text};

/// A new identity and prekey store, drawn as `Peers::generate` draws them (identity, then
/// prekeys: the same keys from the same stream), with the identity and the store kept apart: the
/// compromise oracle pairs them with other keys.
pub(super) fn generate(r: &mut rand_chacha::ChaCha20Rng) -> (Peers, IdentityKeyPair, PrekeyStore) {
    let identity = IdentityKeyPair::generate(r);
    let prekeys = PrekeyStore::generate(&identity, r);
    (Peers::new(identity.clone(), prekeys.clone()), identity, prekeys)
}

impl E2eModel {
    /// What `victim`'s compromised identity opens among `envelopes` (sender, envelope), paired
    /// with each prekey store the attacker made (its impostors'), tried in order with the crate's
    /// `Peers` — what a holder of `ik_victim` and of its own prekeys computes, nothing more. Only
    /// a session started on one of the attacker's signed prekeys under the victim's identity
    /// opens: anything else needs `DH1` or `DH3` with the victim's own signed prekey.
    pub(super) fn open_with_own_prekeys(
        &self,
        victim: Who,
        envelopes: &[(Who, Envelope)],
    ) -> Vec<String> {
        let Some(identity) = self.identities.get(victim.index()) else { return Vec::new() };
        let mut bodies = Vec::new();
        for prekeys in &self.own_prekeys {
            let mut paired = Peers::new(identity.clone(), prekeys.clone());
            for (from, envelope) in envelopes {
                if let Ok(opened) = paired.decrypt(&victim.name(), &from.name(), envelope) {
                    bodies.push(text(&opened.body));
                }
            }
        }
        bodies
    }

    /// (ghost) `body` opened only with a compromised identity paired with the attacker's own
    /// prekeys: a leak unless the attacker had it already.
    pub(super) fn learn_through_own_prekeys(s: &mut World, body: String) {
        if s.ghost.sent_bodies().contains(&body) && !s.know.learned.contains(&body) {
            s.ghost.own_prekey_leak.insert(body);
        }
    }

    /// (ghost) a client gave messages up because a bundle's signed prekey signature did not
    /// verify: the substitution was refused.
    pub(super) fn note_substitution_refused(s: &mut World, events: &[ClientEvent]) {
        s.ghost.substitution_refused |= events.iter().any(|e| {
            matches!(
                e,
                ClientEvent::SendFailed {
                    error: E2eError::Bundle(BundleRefusal::BadSignature),
                    ..
                }
            )
        });
    }
}

/// Always (C, e2e): no honest body opens under a compromised identity paired with prekeys of the
/// attacker's own — a session starts only on a signed prekey its peer's identity signed.
pub(super) fn binding(_: &E2eModel, s: &World) -> bool {
    s.ghost.own_prekey_leak.is_empty()
}

/// Sometimes (S, C, set-up attacked, e2e): a client refused a bundle whose signed prekey its
/// identity did not sign.
pub(super) fn refused(_: &E2eModel, s: &World) -> bool {
    s.ghost.substitution_refused
}
