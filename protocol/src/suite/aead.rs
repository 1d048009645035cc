//! ChaCha20-Poly1305 (RFC 8439).

use core::fmt;
use std::sync::Arc;

use super::backend::{Active, Backend};
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
        sealed_copy(plaintext, |buffer| self.seal_in_place(nonce, ad, buffer, 0))
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
        seal_into(buffer, start, |body| Active::aead_seal(self.expose(), nonce, ad, body));
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
        Active::aead_open_to_vec(self.expose(), nonce, ad, body, &tag)
    }

    /// [`Self::open`] in place: `buffer[start..]` is `ciphertext || tag`; on success it becomes the
    /// plaintext (the tag is cut off). On error `buffer` is exactly as it was (a caller can try
    /// another key on it): each backend keeps that promise its own way (the dalek backend verifies
    /// before it decrypts, the aws-lc one restores the ciphertext), and the Wycheproof tests check
    /// it for every case on both.
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
        open_into(buffer, start, |body, tag| Active::aead_open(self.expose(), nonce, ad, body, tag))
    }
}

/// A ChaCha20-Poly1305 key that serves many messages — a Noise `CipherState`'s key
/// (channel/cipher_state.rs) — with the backend's key object for it, built once here rather than
/// on every seal and open ([`AeadKey`] builds one per call, which suits the ratchet's message keys:
/// each is used once). On the aws-lc backend that object is AWS-LC's allocated, set-up key, about
/// a quarter of a 64-byte seal and open when built per call; on the default backend it is nothing.
///
/// Same bytes, same errors as [`AeadKey`] under the same key. The object is a function of the key
/// and takes no part in `==` or `Hash` (two kept keys are equal exactly when their bytes are).
///
/// Clones share the key and its object (an [`Arc`]): a role works on a copy of its channel for
/// every frame it seals or opens, and commits the copy only on success, so that a clone costs a
/// reference count rather than a copy of the key and, when the copy is dropped, its erasure. The
/// key is erased, and AWS-LC's object released (which erases AWS-LC's copy), when the last clone
/// is dropped.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct KeptAeadKey(Arc<Kept>);

/// What the clones of a [`KeptAeadKey`] share.
#[derive(PartialEq, Eq, Hash)]
struct Kept {
    key: AeadKey,
    object: <Active as Backend>::AeadObject,
}

impl KeptAeadKey {
    /// Keeps `key`, with the backend's key object for it.
    #[must_use]
    pub fn new(key: AeadKey) -> Self {
        Self(Arc::new(Kept { object: Active::aead_object(key.expose()), key }))
    }

    /// [`AeadKey::seal`] under this key.
    #[must_use]
    pub fn seal(&self, nonce: &[u8; AEAD_NONCE_LEN], ad: &[u8], plaintext: &[u8]) -> Vec<u8> {
        sealed_copy(plaintext, |buffer| self.seal_in_place(nonce, ad, buffer, 0))
    }

    /// [`AeadKey::seal_in_place`] under this key.
    pub fn seal_in_place(
        &self,
        nonce: &[u8; AEAD_NONCE_LEN],
        ad: &[u8],
        buffer: &mut Vec<u8>,
        start: usize,
    ) {
        let Kept { key, object } = &*self.0;
        seal_into(buffer, start, |body| {
            Active::aead_seal_with(object, key.expose(), nonce, ad, body)
        });
    }

    /// [`AeadKey::open`] under this key.
    ///
    /// # Errors
    /// As [`AeadKey::open`].
    pub fn open(
        &self,
        nonce: &[u8; AEAD_NONCE_LEN],
        ad: &[u8],
        sealed: &[u8],
    ) -> Result<Vec<u8>, CryptoError> {
        let (body, tag) = split_tag(sealed)?;
        let Kept { key, object } = &*self.0;
        Active::aead_open_to_vec_with(object, key.expose(), nonce, ad, body, &tag)
    }

    /// [`AeadKey::open`] into a buffer the caller gives: `sealed` (`ciphertext || tag`) is only
    /// read, and `out` becomes the plaintext. `out` is cut or grown to the plaintext's length, so
    /// that the bytes it holds already are written over, not zeroed first: a caller that passes
    /// a buffer at least that long (a pool's, which held an earlier frame) prepares nothing. No
    /// backend copies the ciphertext for it — where [`Self::open_in_place`] on aws-lc backs the
    /// ciphertext up to restore it on a refused tag (AWS-LC erases what it decrypted), here a
    /// refusal has only `out` to erase.
    ///
    /// # Errors
    /// As [`AeadKey::open`]; `sealed` is untouched and `out` is left empty (its room kept).
    pub fn open_into(
        &self,
        nonce: &[u8; AEAD_NONCE_LEN],
        ad: &[u8],
        sealed: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<(), CryptoError> {
        let (ciphertext, tag) = split_tag(sealed).inspect_err(|_| out.clear())?;
        out.resize(ciphertext.len(), 0);
        let Kept { key, object } = &*self.0;
        Active::aead_open_into_with(object, key.expose(), nonce, ad, ciphertext, &tag, out)
            .inspect_err(|_| out.clear())
    }

    /// [`AeadKey::open_in_place`] under this key: on error `buffer` is exactly as it was.
    ///
    /// # Errors
    /// As [`AeadKey::open_in_place`].
    pub fn open_in_place(
        &self,
        nonce: &[u8; AEAD_NONCE_LEN],
        ad: &[u8],
        buffer: &mut Vec<u8>,
        start: usize,
    ) -> Result<(), CryptoError> {
        let Kept { key, object } = &*self.0;
        open_into(buffer, start, |body, tag| {
            Active::aead_open_with(object, key.expose(), nonce, ad, body, tag)
        })
    }
}

impl fmt::Debug for KeptAeadKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("KeptAeadKey([redacted])")
    }
}

/// `plaintext` copied into a buffer with room for the tag, then sealed by `seal_in_place`.
fn sealed_copy(plaintext: &[u8], seal_in_place: impl FnOnce(&mut Vec<u8>)) -> Vec<u8> {
    let mut out = Vec::with_capacity(plaintext.len() + AEAD_TAG_LEN);
    out.extend_from_slice(plaintext);
    seal_in_place(&mut out);
    out
}

/// Encrypts `buffer[start..]` in place with `seal`, which returns the tag, and appends the tag;
/// if `seal` refuses, truncates `buffer` to `start` (see [`AeadKey::seal_in_place`]).
fn seal_into(
    buffer: &mut Vec<u8>,
    start: usize,
    seal: impl FnOnce(&mut [u8]) -> Option<[u8; AEAD_TAG_LEN]>,
) {
    let start = start.min(buffer.len());
    match seal(&mut buffer[start..]) {
        Some(tag) => buffer.extend_from_slice(&tag),
        None => buffer.truncate(start),
    }
}

/// Opens `buffer[start..]`, `ciphertext || tag`, in place with `open`, which gets the ciphertext
/// and the tag and leaves the ciphertext as it was on error; on success cuts the tag off (see
/// [`AeadKey::open_in_place`]).
fn open_into(
    buffer: &mut Vec<u8>,
    start: usize,
    open: impl FnOnce(&mut [u8], &[u8; AEAD_TAG_LEN]) -> Result<(), CryptoError>,
) -> Result<(), CryptoError> {
    let sealed = buffer.get_mut(start..).ok_or(CryptoError::AeadTruncated)?;
    let (body_len, tag) = split_tag(sealed).map(|(body, tag)| (body.len(), tag))?;
    let (body, _) = sealed.split_at_mut(body_len);
    open(body, &tag)?;
    buffer.truncate(start + body_len);
    Ok(())
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

#[cfg(test)]
mod tests {
    use super::*;

    const NONCE: [u8; AEAD_NONCE_LEN] = [3; AEAD_NONCE_LEN];

    #[test]
    fn a_kept_key_seals_and_opens_as_the_key_does() {
        let key = AeadKey::new([7; AEAD_KEY_LEN]);
        let kept = KeptAeadKey::new(key.clone());
        for len in [0, 1, 64, 1000] {
            let plaintext = vec![0x5a; len];
            let sealed = key.seal(&NONCE, b"ad", &plaintext);
            assert_eq!(kept.seal(&NONCE, b"ad", &plaintext), sealed);
            let mut framed = b"header".to_vec();
            framed.extend_from_slice(&plaintext);
            kept.seal_in_place(&NONCE, b"ad", &mut framed, 6);
            assert_eq!(framed[6..], sealed[..]);
            assert_eq!(kept.open(&NONCE, b"ad", &sealed), Ok(plaintext.clone()));
            // Into a buffer shorter, and one longer, than the plaintext.
            for held in [0, len + 5] {
                let mut out = vec![0xee; held];
                assert_eq!(kept.open_into(&NONCE, b"ad", &sealed, &mut out), Ok(()));
                assert_eq!(out, plaintext);
            }
            let mut buffer = framed.clone();
            assert_eq!(kept.open_in_place(&NONCE, b"ad", &mut buffer, 6), Ok(()));
            assert_eq!((&buffer[..6], &buffer[6..]), (&b"header"[..], &plaintext[..]));
        }
    }

    #[test]
    fn a_kept_key_refuses_what_the_key_refuses() {
        let key = AeadKey::new([7; AEAD_KEY_LEN]);
        let kept = KeptAeadKey::new(key.clone());
        let sealed = key.seal(&NONCE, b"ad", b"message");
        let mut tampered = sealed.clone();
        tampered[0] ^= 1;
        for (nonce, ad, input) in [
            (NONCE, &b"ad"[..], &tampered[..]),
            (NONCE, b"xx", &sealed[..]),
            ([4; AEAD_NONCE_LEN], b"ad", &sealed[..]),
            (NONCE, b"ad", &sealed[..AEAD_TAG_LEN - 1]),
        ] {
            assert!(kept.open(&nonce, ad, input).is_err());
            assert_eq!(kept.open(&nonce, ad, input), key.open(&nonce, ad, input));
            // In place, the refused ciphertext stays as it was (after a prefix `start` skips).
            let mut buffer = [b"xy", input].concat();
            let refused = kept.open_in_place(&nonce, ad, &mut buffer, 2);
            assert_eq!(refused, key.open(&nonce, ad, input).map(|_| ()));
            assert_eq!(buffer, [b"xy", input].concat());
            // Into another buffer: refused alike, nothing left in it.
            let mut out = vec![0xee; 40];
            assert_eq!(kept.open_into(&nonce, ad, input, &mut out), refused);
            assert_eq!((out.len(), out.capacity() >= 40), (0, true));
        }
        let mut buffer = sealed.clone();
        let past_the_end = kept.open_in_place(&NONCE, b"ad", &mut buffer, sealed.len() + 1);
        assert_eq!((past_the_end, buffer), (Err(CryptoError::AeadTruncated), sealed.clone()));
        assert_eq!(kept.open(&NONCE, b"ad", &sealed[..3]), Err(CryptoError::AeadTruncated));
        let other = KeptAeadKey::new(AeadKey::new([8; AEAD_KEY_LEN]));
        assert_eq!(other.open(&NONCE, b"ad", &sealed), Err(CryptoError::AeadOpen));
    }

    #[test]
    fn a_kept_key_is_equal_by_its_bytes_and_prints_nothing_of_them() {
        let kept = KeptAeadKey::new(AeadKey::new([7; AEAD_KEY_LEN]));
        assert_eq!(kept, KeptAeadKey::new(AeadKey::new([7; AEAD_KEY_LEN])));
        assert_ne!(kept, KeptAeadKey::new(AeadKey::new([8; AEAD_KEY_LEN])));
        assert_eq!(format!("{kept:?}"), "KeptAeadKey([redacted])");
    }
}
