//! ChaCha20-Poly1305 (RFC 8439).

use super::{CryptoError, Secret};

/// AEAD key length.
pub const AEAD_KEY_LEN: usize = 32;
/// AEAD nonce length. Every nonce in this protocol is derived, never random (see SPEC.md).
pub const AEAD_NONCE_LEN: usize = 12;
/// AEAD tag length; a ciphertext is always exactly this much longer than its plaintext.
pub const AEAD_TAG_LEN: usize = 16;

/// A ChaCha20-Poly1305 key.
pub type AeadKey = Secret<AEAD_KEY_LEN>;

impl AeadKey {
    /// Encrypts `plaintext`, returning `ciphertext || tag` (`plaintext.len() + 16` bytes).
    #[must_use]
    pub fn seal(&self, nonce: &[u8; AEAD_NONCE_LEN], ad: &[u8], plaintext: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(plaintext.len() + AEAD_TAG_LEN);
        out.extend_from_slice(plaintext);
        self.seal_in_place(nonce, ad, &mut out, 0);
        out
    }

    /// Encrypts `buffer[start..]` in place and appends the tag, so that a caller can build a whole
    /// frame (header, ciphertext, tag) in one buffer. Reserve 16 bytes beyond the plaintext to
    /// append the tag without reallocating.
    ///
    /// ChaCha20-Poly1305 refuses only inputs over 2^38 bytes, which no frame can reach
    /// (`wire::MAX_FRAME_LEN`); the function stays total anyway: on that refusal it truncates
    /// `buffer` to `start`, a ciphertext the receiver rejects as truncated. A `start` past the end
    /// encrypts nothing and appends the tag of the empty plaintext.
    pub fn seal_in_place(
        &self,
        nonce: &[u8; AEAD_NONCE_LEN],
        ad: &[u8],
        buffer: &mut Vec<u8>,
        start: usize,
    ) {
        let start = start.min(buffer.len());
        match super::backend::active::aead_seal(self.expose(), nonce, ad, &mut buffer[start..]) {
            Some(tag) => buffer.extend_from_slice(&tag),
            None => buffer.truncate(start),
        }
    }

    /// Decrypts and authenticates `ciphertext || tag`.
    ///
    /// # Errors
    /// [`CryptoError::AeadTruncated`] if `sealed` is shorter than a tag, [`CryptoError::AeadOpen`]
    /// if authentication fails. No plaintext is released unless the tag verifies.
    pub fn open(
        &self,
        nonce: &[u8; AEAD_NONCE_LEN],
        ad: &[u8],
        sealed: &[u8],
    ) -> Result<Vec<u8>, CryptoError> {
        // Out of place: the plaintext goes to a fresh buffer, so no backend has to keep a copy of
        // the ciphertext to restore (`sealed` is only read).
        let (body, tag) = split_tag(sealed)?;
        super::backend::active::aead_open_to_vec(self.expose(), nonce, ad, body, &tag)
    }

    /// [`Self::open`] in place: `buffer[start..]` is `ciphertext || tag`; on success it becomes the
    /// plaintext (the tag is cut off). On error `buffer` is exactly as it was (a caller can try
    /// another key on it): each backend keeps that promise its own way (`backend::dalek::aead_open`
    /// verifies before it decrypts, `backend::aws_lc::aead_open` restores the ciphertext), and the
    /// Wycheproof tests check it for every case on both.
    ///
    /// # Errors
    /// As [`Self::open`], for `buffer[start..]`.
    pub fn open_in_place(
        &self,
        nonce: &[u8; AEAD_NONCE_LEN],
        ad: &[u8],
        buffer: &mut Vec<u8>,
        start: usize,
    ) -> Result<(), CryptoError> {
        let sealed = buffer.get_mut(start..).ok_or(CryptoError::AeadTruncated)?;
        let (body_len, tag) = split_tag(sealed).map(|(body, tag)| (body.len(), tag))?;
        let (body, _) = sealed.split_at_mut(body_len);
        super::backend::active::aead_open(self.expose(), nonce, ad, body, &tag)?;
        buffer.truncate(start + body_len);
        Ok(())
    }
}

/// `ciphertext || tag` split into the ciphertext and the tag.
///
/// # Errors
/// [`CryptoError::AeadTruncated`] if `sealed` is shorter than a tag.
fn split_tag(sealed: &[u8]) -> Result<(&[u8], [u8; AEAD_TAG_LEN]), CryptoError> {
    let body_len = sealed.len().checked_sub(AEAD_TAG_LEN).ok_or(CryptoError::AeadTruncated)?;
    let (body, tag) = sealed.split_at(body_len);
    let tag = <[u8; AEAD_TAG_LEN]>::try_from(tag).map_err(|_| CryptoError::AeadTruncated)?;
    Ok((body, tag))
}
