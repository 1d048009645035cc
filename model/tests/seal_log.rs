//! The ghost seal log of the model's build of the protocol crate (spec/MODEL.md §4): every AEAD
//! seal is recorded once, as the fingerprint of its key and its nonce (not what it sealed), and
//! draining empties it.

#[cfg(test)]
mod tests {
    use e2e_protocol::seal_log::{self, Drained};
    use e2e_protocol::suite::{AEAD_KEY_LEN, AEAD_NONCE_LEN, AeadKey};

    #[test]
    fn every_seal_is_recorded_once_and_drained() {
        let _ = seal_log::drain();
        let key = AeadKey::new([7; AEAD_KEY_LEN]);
        let other = AeadKey::new([8; AEAD_KEY_LEN]);
        let nonce = [1; AEAD_NONCE_LEN];
        let _ = key.seal(&nonce, b"ad", b"one");
        let _ = key.seal(&nonce, b"ad", b"two");
        let _ = key.seal(&nonce, b"a", b"dtwo");
        let _ = other.seal(&nonce, b"ad", b"one");
        let drained = seal_log::drain();
        assert!(!drained.overflowed);
        let [one, two, shifted, elsewhere] = drained.seals[..] else { panic!("{drained:?}") };
        // Three seals under one pair are three records of it, whatever each sealed: a pair may
        // seal once (spec/MODEL.md §4, `nonce-unique`).
        assert_eq!(one, two);
        assert_eq!(two, shifted);
        assert_ne!(one.key, elsewhere.key);
        assert_eq!(one.nonce, elsewhere.nonce);
        assert_eq!(seal_log::drain(), Drained::default());
    }

    #[test]
    fn opening_records_nothing() {
        let key = AeadKey::new([9; AEAD_KEY_LEN]);
        let nonce = [2; AEAD_NONCE_LEN];
        let sealed = key.seal(&nonce, b"", b"text");
        let _ = seal_log::drain();
        assert_eq!(key.open(&nonce, b"", &sealed).as_deref(), Ok(&b"text"[..]));
        assert!(seal_log::drain().seals.is_empty());
    }
}
