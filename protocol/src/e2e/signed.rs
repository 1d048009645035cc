//! What each Ed25519 signature of the protocol covers (SPEC.md §10.1, §10.2): the one place those
//! messages are built, for the signer ([`super::identity::IdentityKeyPair`]) and for every verifier
//! ([`super::bundle`]). Its own module, so that identities, prekeys and bundle validation all depend
//! on it and not on each other.

use crate::suite::{DH_LEN, PublicKey};

/// The domain-separation label of a signed prekey's signature: the 24 ASCII bytes shown, no
/// terminator (SPEC.md §10.2).
pub const SIGNED_PREKEY_LABEL: &[u8; 24] = b"e2e-ref/signed-prekey/v1";

/// Length of the message a signed prekey's signature covers: label, `IK_dh`, `BE32(id)`, `SPK`.
pub const SIGNED_PREKEY_MESSAGE_LEN: usize = SIGNED_PREKEY_LABEL.len() + DH_LEN + 4 + DH_LEN;

/// The message a signed prekey's signature covers (SPEC.md §10.2):
/// `"e2e-ref/signed-prekey/v1" || IK_dh || BE32(id) || key`.
///
/// Binding `IK_dh` ties the X25519 half of the identity to the Ed25519 half that signs. This is the
/// only place the message is built; signing and verification both call it.
#[must_use]
pub fn signed_prekey_message(
    identity_dh: &PublicKey,
    id: u32,
    key: &PublicKey,
) -> [u8; SIGNED_PREKEY_MESSAGE_LEN] {
    let mut message = [0u8; SIGNED_PREKEY_MESSAGE_LEN];
    let (label, rest) = message.split_at_mut(SIGNED_PREKEY_LABEL.len());
    let (ik, rest) = rest.split_at_mut(DH_LEN);
    let (id_bytes, spk) = rest.split_at_mut(4);
    label.copy_from_slice(SIGNED_PREKEY_LABEL);
    ik.copy_from_slice(identity_dh.as_bytes());
    id_bytes.copy_from_slice(&id.to_be_bytes());
    spk.copy_from_slice(key.as_bytes());
    message
}

/// The label of the identity binding signature `id_sig` (SPEC.md §10.1): the 19 ASCII bytes shown.
pub const IDENTITY_BINDING_LABEL: &[u8; 19] = b"e2e-ref/identity/v1";

/// Length of the message `id_sig` covers: the label and `IK_dh`.
pub const IDENTITY_BINDING_MESSAGE_LEN: usize = IDENTITY_BINDING_LABEL.len() + 32;

/// The message `id_sig` covers: `"e2e-ref/identity/v1" || IK_dh` (SPEC.md §10.1).
#[must_use]
pub fn identity_binding_message(dh: &PublicKey) -> [u8; IDENTITY_BINDING_MESSAGE_LEN] {
    let mut message = [0u8; IDENTITY_BINDING_MESSAGE_LEN];
    let (label, key) = message.split_at_mut(IDENTITY_BINDING_LABEL.len());
    label.copy_from_slice(IDENTITY_BINDING_LABEL);
    key.copy_from_slice(dh.as_bytes());
    message
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signed_prekey_message_layout() {
        let ik = PublicKey::from_bytes([0xAA; 32]);
        let spk = PublicKey::from_bytes([0xBB; 32]);
        let m = signed_prekey_message(&ik, 0x0102_0304, &spk);
        assert_eq!(m.len(), 92);
        assert_eq!(&m[..24], b"e2e-ref/signed-prekey/v1");
        assert_eq!(&m[24..56], &[0xAA; 32]);
        assert_eq!(&m[56..60], &[1, 2, 3, 4]);
        assert_eq!(&m[60..], &[0xBB; 32]);
    }

    #[test]
    fn identity_binding_message_layout() {
        let dh = PublicKey::from_bytes([0xab; 32]);
        let m = identity_binding_message(&dh);
        assert_eq!(m.len(), 19 + 32);
        assert_eq!(&m[..19], b"e2e-ref/identity/v1");
        assert_eq!(m[19..], [0xab; 32]);
    }
}
