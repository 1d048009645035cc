//! Noise `CipherState` (spec rev 34, §5.1): an optional AEAD key `k` and a 64-bit nonce counter `n`.

use crate::suite::{AEAD_NONCE_LEN, AeadKey, CryptoError, KeptAeadKey};

use super::ChannelError;

/// `CipherState` (§5.1). The key is kept with the backend's key object for it
/// ([`KeptAeadKey`]): a transport key serves up to `2^64 − 1` messages.
///
/// `n = 2^64 − 1` is reserved: once `n` reaches it, [`Self::encrypt_with_ad`] and
/// [`Self::decrypt_with_ad`] return [`ChannelError::NonceExhausted`] and change nothing. So at most
/// `2^64 − 1` messages are sent under one key, nonces `0 ..= 2^64 − 2`.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub(crate) struct CipherState {
    k: Option<KeptAeadKey>,
    n: u64,
}

impl CipherState {
    /// `InitializeKey(empty)`: no key; encryption is the identity (§5.1).
    pub(crate) const fn empty() -> Self {
        Self { k: None, n: 0 }
    }

    /// `InitializeKey(key)`: `k = key`, `n = 0` (§5.1).
    pub(crate) fn new(key: AeadKey) -> Self {
        Self { k: Some(KeptAeadKey::new(key)), n: 0 }
    }

    /// The `ChaChaPoly` nonce encoding (§12.3): 32 bits of zeros followed by the little-endian 64-bit `n`.
    const fn nonce(n: u64) -> [u8; AEAD_NONCE_LEN] {
        let mut nonce = [0u8; AEAD_NONCE_LEN];
        let (_, counter) = nonce.split_at_mut(4);
        counter.copy_from_slice(&n.to_le_bytes());
        nonce
    }

    /// `EncryptWithAd(ad, plaintext)` (§5.1): with a key, `ENCRYPT(k, n++, ad, plaintext)`; without,
    /// `plaintext` unchanged.
    ///
    /// # Errors
    /// [`ChannelError::NonceExhausted`] if `n = 2^64 − 1`; nothing changes.
    pub(crate) fn encrypt_with_ad(
        &mut self,
        ad: &[u8],
        plaintext: &[u8],
    ) -> Result<Vec<u8>, ChannelError> {
        let sealed = self.with_key(|k, nonce| Ok(k.seal(nonce, ad, plaintext)))?;
        Ok(sealed.unwrap_or_else(|| plaintext.to_vec()))
    }

    /// `EncryptWithAd(ad, buffer[start..])` in place, the tag appended to `buffer`; see
    /// [`Self::encrypt_with_ad`]. Without a key, `buffer` is unchanged.
    ///
    /// # Errors
    /// [`ChannelError::NonceExhausted`] if `n = 2^64 − 1`; nothing changes.
    pub(crate) fn encrypt_in_place(
        &mut self,
        ad: &[u8],
        buffer: &mut Vec<u8>,
        start: usize,
    ) -> Result<(), ChannelError> {
        self.with_key(|k, nonce| {
            k.seal_in_place(nonce, ad, buffer, start);
            Ok(())
        })?;
        Ok(())
    }

    /// `DecryptWithAd(ad, ciphertext)` (§5.1): with a key, `DECRYPT(k, n++, ad, ciphertext)`;
    /// without, `ciphertext` unchanged.
    ///
    /// Transactional, as §5.1 requires: `n` advances only when the tag verifies.
    ///
    /// # Errors
    /// [`ChannelError::NonceExhausted`] if `n = 2^64 − 1`; [`ChannelError::Crypto`] if the AEAD
    /// fails. Either way nothing changes.
    pub(crate) fn decrypt_with_ad(
        &mut self,
        ad: &[u8],
        ciphertext: &[u8],
    ) -> Result<Vec<u8>, ChannelError> {
        let opened = self.with_key(|k, nonce| k.open(nonce, ad, ciphertext))?;
        Ok(opened.unwrap_or_else(|| ciphertext.to_vec()))
    }

    /// `DecryptWithAd(ad, ciphertext)` into `out`, which becomes the plaintext (see
    /// `KeptAeadKey::open_into`); `ciphertext` is only read. Without a key, `out` becomes a copy of
    /// `ciphertext`.
    ///
    /// # Errors
    /// As [`Self::decrypt_with_ad`]; nothing changes but `out`, which is left empty.
    pub(crate) fn decrypt_into(
        &mut self,
        ad: &[u8],
        ciphertext: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<(), ChannelError> {
        let opened = self.with_key(|k, nonce| k.open_into(nonce, ad, ciphertext, out));
        match opened {
            Ok(Some(())) => Ok(()),
            Ok(None) => {
                out.clear();
                out.extend_from_slice(ciphertext);
                Ok(())
            }
            Err(error) => {
                out.clear();
                Err(error)
            }
        }
    }

    /// `DecryptWithAd(ad, buffer[start..])` in place, the tag cut off; see
    /// [`Self::decrypt_with_ad`]. Without a key, `buffer` is unchanged. On error `buffer` is
    /// exactly as it was.
    ///
    /// # Errors
    /// As [`Self::decrypt_with_ad`]; nothing changes.
    pub(crate) fn decrypt_in_place(
        &mut self,
        ad: &[u8],
        buffer: &mut Vec<u8>,
        start: usize,
    ) -> Result<(), ChannelError> {
        self.with_key(|k, nonce| k.open_in_place(nonce, ad, buffer, start))?;
        Ok(())
    }

    /// One key operation, the rule the four above share (§5.1): without a key, `None` and nothing
    /// happens; with one, `op` runs under nonce `n` and `n` advances only if it succeeds, so an
    /// exhausted counter or a failed operation changes nothing.
    ///
    /// # Errors
    /// [`ChannelError::NonceExhausted`] if `n = 2^64 − 1` (`op` does not run); `op`'s error.
    fn with_key<T>(
        &mut self,
        op: impl FnOnce(&KeptAeadKey, &[u8; AEAD_NONCE_LEN]) -> Result<T, CryptoError>,
    ) -> Result<Option<T>, ChannelError> {
        let Some(k) = &self.k else {
            return Ok(None);
        };
        let next = self.next_n()?;
        let done = op(k, &Self::nonce(self.n))?;
        self.advance(next);
        Ok(Some(done))
    }

    /// `n ← next` after a key operation.
    fn advance(&mut self, next: u64) {
        if crate::flaws::on(crate::flaws::Flaw::ChannelNonceStuck) {
            return;
        } // seeded flaw hook
        self.n = next;
    }

    /// Whether a key operation can happen now: [`ChannelError::NonceExhausted`] if not.
    pub(crate) const fn check_next(&self) -> Result<(), ChannelError> {
        match self.next_n() {
            Ok(_) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Whether `count` more key operations can happen: [`ChannelError::NonceExhausted`] if the
    /// reserved nonce `2^64 − 1` would be reached first.
    pub(crate) const fn check_room(&self, count: u64) -> Result<(), ChannelError> {
        // The nonces used are n .. n + count − 1, each at most 2^64 − 2: n + count ≤ 2^64 − 1.
        if self.n.checked_add(count).is_some() { Ok(()) } else { Err(ChannelError::NonceExhausted) }
    }

    /// `n + 1`, or [`ChannelError::NonceExhausted`] if `n` is the reserved `2^64 − 1`.
    const fn next_n(&self) -> Result<u64, ChannelError> {
        if self.n == u64::MAX {
            return Err(ChannelError::NonceExhausted);
        }
        Ok(self.n + 1)
    }

    /// Sets `n`, to test the exhaustion boundary without `2^64` operations. (`SetNonce`, §5.1, is
    /// otherwise unused by this channel.)
    #[cfg(test)]
    pub(crate) const fn set_nonce(&mut self, n: u64) {
        self.n = n;
    }

    /// `SetNonce(n)` (§5.1), forward only: `n` becomes the counter if it is not below the current
    /// one, and `true` is returned; otherwise nothing changes and `false` is returned. Moving the
    /// counter back would reuse a nonce, so it is refused; moving it forward only skips nonces.
    pub(crate) const fn advance_nonce_to(&mut self, n: u64) -> bool {
        if n < self.n {
            return false;
        }
        self.n = n;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::suite::CryptoError;

    fn keyed() -> CipherState {
        CipherState::new(AeadKey::new([0x42; 32]))
    }

    #[test]
    fn nonce_is_four_zero_bytes_then_little_endian_counter() {
        assert_eq!(CipherState::nonce(0x0102_0304_0506_0708), [0, 0, 0, 0, 8, 7, 6, 5, 4, 3, 2, 1]);
    }

    #[test]
    fn encrypt_uses_the_counter_as_nonce_then_increments() {
        let mut c = keyed();
        c.set_nonce(5);
        let ct = c.encrypt_with_ad(b"ad", b"hello").unwrap();
        let expected =
            AeadKey::new([0x42; 32]).seal(&[0, 0, 0, 0, 5, 0, 0, 0, 0, 0, 0, 0], b"ad", b"hello");
        assert_eq!(ct, expected);
        assert_eq!(c.n, 6);
    }

    #[test]
    fn empty_key_is_the_identity_and_keeps_n() {
        let mut c = CipherState::empty();
        assert_eq!(c.encrypt_with_ad(b"ad", b"abc").unwrap(), b"abc");
        assert_eq!(c.decrypt_with_ad(b"ad", b"abc").unwrap(), b"abc");
        assert_eq!(c, CipherState::empty());
    }

    #[test]
    fn round_trip_and_failed_decrypt_is_transactional() {
        let (mut tx, mut rx) = (keyed(), keyed());
        let ct0 = tx.encrypt_with_ad(b"ad", b"zero").unwrap();
        let ct1 = tx.encrypt_with_ad(b"ad", b"one").unwrap();

        let before = rx.clone();
        // Out of order (wrong nonce), wrong ad, flipped bit, truncated: all fail, n stays 0.
        assert_eq!(
            rx.decrypt_with_ad(b"ad", &ct1),
            Err(ChannelError::Crypto(CryptoError::AeadOpen))
        );
        assert_eq!(
            rx.decrypt_with_ad(b"xx", &ct0),
            Err(ChannelError::Crypto(CryptoError::AeadOpen))
        );
        let mut flipped = ct0.clone();
        flipped[0] ^= 1;
        assert_eq!(
            rx.decrypt_with_ad(b"ad", &flipped),
            Err(ChannelError::Crypto(CryptoError::AeadOpen))
        );
        assert_eq!(
            rx.decrypt_with_ad(b"ad", &ct0[..15]),
            Err(ChannelError::Crypto(CryptoError::AeadTruncated))
        );
        assert_eq!(rx, before);

        assert_eq!(rx.decrypt_with_ad(b"ad", &ct0).unwrap(), b"zero");
        assert_eq!(rx.decrypt_with_ad(b"ad", &ct1).unwrap(), b"one");
        assert_eq!(rx.n, 2);
    }

    #[test]
    fn nonce_exhaustion_at_the_reserved_value() {
        let (mut tx, mut rx) = (keyed(), keyed());
        tx.set_nonce(u64::MAX - 1);
        rx.set_nonce(u64::MAX - 1);

        // n = 2^64 − 2 is the last usable nonce.
        let ct = tx.encrypt_with_ad(b"", b"last").unwrap();
        assert_eq!(rx.decrypt_with_ad(b"", &ct).unwrap(), b"last");
        assert_eq!((tx.n, rx.n), (u64::MAX, u64::MAX));

        let (tx_before, rx_before) = (tx.clone(), rx.clone());
        assert_eq!(tx.encrypt_with_ad(b"", b"more"), Err(ChannelError::NonceExhausted));
        assert_eq!(rx.decrypt_with_ad(b"", &ct), Err(ChannelError::NonceExhausted));
        assert_eq!((tx, rx), (tx_before, rx_before));
    }
}
