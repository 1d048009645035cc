//! The transport phase (Noise spec rev 34, §5, after `Split()`): one [`CipherState`] per direction.

use crate::suite::HASH_LEN;

use super::cipher_state::CipherState;
use super::{ChannelError, MAX_NOISE_MESSAGE_LEN, TRANSPORT_OVERHEAD};

/// An established channel: a sending and a receiving `CipherState` (§5.2 `Split()`: the initiator
/// sends with the first key, the responder with the second) and the handshake hash.
///
/// Transport messages carry no associated data (§5: zero-length `ad`) and no explicit
/// nonce: both sides count, so messages in each direction must arrive in order, each once.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub struct Transport {
    send: CipherState,
    recv: CipherState,
    handshake_hash: [u8; HASH_LEN],
}

impl Transport {
    /// Builds the transport from the `Split()` outputs, already assigned to directions.
    pub(super) const fn new(
        send: CipherState,
        recv: CipherState,
        handshake_hash: [u8; HASH_LEN],
    ) -> Self {
        Self { send, recv, handshake_hash }
    }

    /// Encrypts one transport message: `EncryptWithAd(zerolen, plaintext)` (§5.1) under the sending
    /// key. The result is `plaintext.len() + 16` bytes.
    ///
    /// # Errors
    /// [`ChannelError::MessageTooLong`] if the message would exceed [`MAX_NOISE_MESSAGE_LEN`]
    /// (plaintext over 65519 bytes); [`ChannelError::NonceExhausted`] after `2^64 − 1` messages.
    /// Either way nothing changes.
    pub fn write(&mut self, plaintext: &[u8]) -> Result<Vec<u8>, ChannelError> {
        if plaintext.len() > MAX_NOISE_MESSAGE_LEN - TRANSPORT_OVERHEAD {
            return Err(ChannelError::MessageTooLong);
        }
        self.send.encrypt_with_ad(&[], plaintext)
    }

    /// Whether [`Self::write`] would accept a plaintext of `len` bytes now: lets a caller finish
    /// everything else that can fail before it commits to something it cannot undo.
    ///
    /// # Errors
    /// What [`Self::write`] would return.
    pub const fn check_write(&self, len: usize) -> Result<(), ChannelError> {
        if len > MAX_NOISE_MESSAGE_LEN - TRANSPORT_OVERHEAD {
            return Err(ChannelError::MessageTooLong);
        }
        self.send.check_next()
    }

    /// Whether `count` messages of up to `len` bytes each can be written one after the other now.
    ///
    /// # Errors
    /// What the first refused [`Self::write`] would return.
    pub const fn check_writes(&self, len: usize, count: u64) -> Result<(), ChannelError> {
        if len > MAX_NOISE_MESSAGE_LEN - TRANSPORT_OVERHEAD {
            return Err(ChannelError::MessageTooLong);
        }
        self.send.check_room(count)
    }

    /// [`Self::write`] in place: encrypts `buffer[start..]` and appends the tag, so that a caller
    /// can build a whole frame in one buffer (the role's link header goes before `start`).
    ///
    /// # Errors
    /// As [`Self::write`]; `buffer` and the transport are then unchanged.
    pub fn write_in_place(
        &mut self,
        buffer: &mut Vec<u8>,
        start: usize,
    ) -> Result<(), ChannelError> {
        if buffer.len().saturating_sub(start) > MAX_NOISE_MESSAGE_LEN - TRANSPORT_OVERHEAD {
            return Err(ChannelError::MessageTooLong);
        }
        self.send.encrypt_in_place(&[], buffer, start)
    }

    /// Decrypts the next transport message: `DecryptWithAd(zerolen, ciphertext)` (§5.1) under the
    /// receiving key.
    ///
    /// Transactional: the receive counter advances only on success, so a replayed, reordered,
    /// forged or truncated message is an error that leaves the transport exactly as it was, and the
    /// genuine next message still decrypts.
    ///
    /// # Errors
    /// [`ChannelError::MessageTooLong`] over [`MAX_NOISE_MESSAGE_LEN`] bytes;
    /// [`ChannelError::MessageTooShort`] under [`TRANSPORT_OVERHEAD`] bytes;
    /// [`ChannelError::NonceExhausted`] after `2^64 − 1` messages; `Crypto(AeadOpen)` if the tag
    /// does not verify.
    pub fn read(&mut self, ciphertext: &[u8]) -> Result<Vec<u8>, ChannelError> {
        check_read_len(ciphertext.len())?;
        self.recv.decrypt_with_ad(&[], ciphertext)
    }

    /// [`Self::read`] in place: decrypts `buffer[start..]` and cuts the tag off, so that a caller
    /// that owns the received bytes (a stream reader's buffer, reused from frame to frame) opens
    /// them without allocating; with [`Self::write_in_place`], a message goes both ways in one
    /// buffer.
    ///
    /// # Errors
    /// As [`Self::read`], for `buffer[start..]`; `buffer` and the transport are then exactly as
    /// they were.
    pub fn read_in_place(
        &mut self,
        buffer: &mut Vec<u8>,
        start: usize,
    ) -> Result<(), ChannelError> {
        check_read_len(buffer.len().saturating_sub(start))?;
        self.recv.decrypt_in_place(&[], buffer, start)
    }

    /// [`Self::read`] into a buffer the caller gives: `ciphertext` is only read, and `out`
    /// becomes the plaintext, written over what it held (no zeroing first when it is long
    /// enough, no backup of the ciphertext on any backend). A role reads a frame into a buffer of
    /// its pool this way, so that the plaintext lands where it stays — a relayed body, the message
    /// it acts on — and a refused frame is left as it arrived.
    ///
    /// # Errors
    /// As [`Self::read`]; the transport and `ciphertext` are then as they were, and `out` is
    /// left empty.
    pub fn read_into(&mut self, ciphertext: &[u8], out: &mut Vec<u8>) -> Result<(), ChannelError> {
        check_read_len(ciphertext.len()).inspect_err(|_| out.clear())?;
        self.recv.decrypt_into(&[], ciphertext, out)
    }

    /// Noise `SetNonce(n)` (§5.1) on the sending `CipherState`, forward only: skips the sending
    /// counter to `n` and returns `true`, or returns `false` and changes nothing if `n` is below
    /// the current counter (that would reuse a nonce). Skipping is harmless — the peer's receive
    /// counter must be skipped likewise or the next message does not open — and is how a test or
    /// a vector (SPEC.md §17.2, `channel.json`) reaches the reserved counter `2^64 − 1` (§4.4)
    /// without `2^64` messages.
    #[must_use]
    pub const fn advance_send_nonce(&mut self, n: u64) -> bool {
        self.send.advance_nonce_to(n)
    }

    /// As [`Self::advance_send_nonce`], on the receiving `CipherState`.
    #[must_use]
    pub const fn advance_receive_nonce(&mut self, n: u64) -> bool {
        self.recv.advance_nonce_to(n)
    }

    /// The handshake hash `h` at `Split()` (§5.2 `GetHandshakeHash()`, §11.2): equal on both sides,
    /// unique to this handshake; usable for channel binding. Not secret.
    #[must_use]
    pub const fn handshake_hash(&self) -> &[u8; HASH_LEN] {
        &self.handshake_hash
    }
}

/// The length checks of a transport message of `len` bytes, before the counter and the tag
/// (SPEC.md §4.4).
///
/// # Errors
/// [`ChannelError::MessageTooLong`] over [`MAX_NOISE_MESSAGE_LEN`] bytes,
/// [`ChannelError::MessageTooShort`] under [`TRANSPORT_OVERHEAD`].
const fn check_read_len(len: usize) -> Result<(), ChannelError> {
    if len > MAX_NOISE_MESSAGE_LEN {
        return Err(ChannelError::MessageTooLong);
    }
    if len < TRANSPORT_OVERHEAD {
        return Err(ChannelError::MessageTooShort);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::channel::testing::handshake;
    use crate::suite::CryptoError;

    const AEAD_OPEN: ChannelError = ChannelError::Crypto(CryptoError::AeadOpen);

    /// `bad` must fail with `expected` and leave `t` equal to what it was; then `good` decrypts.
    fn rejects_then_accepts(
        t: &mut Transport,
        bad: &[u8],
        expected: ChannelError,
        good: &[u8],
        want: &[u8],
    ) {
        let before = t.clone();
        assert_eq!(t.read(bad), Err(expected));
        assert_eq!(*t, before);
        assert_eq!(t.read(good).unwrap(), want);
    }

    #[test]
    fn both_directions_in_order() {
        let (mut i, mut r) = handshake(100);
        for n in 0..20u8 {
            let m = vec![n; usize::from(n) * 7];
            assert_eq!(r.read(&i.write(&m).unwrap()).unwrap(), m);
            assert_eq!(i.read(&r.write(&m).unwrap()).unwrap(), m);
        }
    }

    #[test]
    fn directions_use_different_keys() {
        let (mut i, mut r) = handshake(101);
        let from_i = i.write(b"same").unwrap();
        let from_r = r.write(b"same").unwrap();
        assert_ne!(from_i, from_r);
        // A message reflected back to its sender does not decrypt.
        assert_eq!(i.read(&from_i), Err(AEAD_OPEN));
    }

    #[test]
    fn replayed_frame() {
        let (mut i, mut r) = handshake(102);
        let first = i.write(b"first").unwrap();
        let second = i.write(b"second").unwrap();
        assert_eq!(r.read(&first).unwrap(), b"first");
        rejects_then_accepts(&mut r, &first, AEAD_OPEN, &second, b"second");
    }

    #[test]
    fn forged_frame() {
        let (mut i, mut r) = handshake(103);
        let genuine = i.write(b"genuine").unwrap();
        for pos in [0, 3, genuine.len() - 16, genuine.len() - 1] {
            let mut forged = genuine.clone();
            forged[pos] ^= 0x40;
            let before = r.clone();
            assert_eq!(r.read(&forged), Err(AEAD_OPEN));
            assert_eq!(r, before);
        }
        let mut appended = genuine.clone();
        appended.push(0);
        rejects_then_accepts(&mut r, &appended, AEAD_OPEN, &genuine, b"genuine");
    }

    #[test]
    fn truncated_frame() {
        let (mut i, mut r) = handshake(104);
        let genuine = i.write(b"genuine").unwrap();
        for len in [0, 1, 15] {
            let before = r.clone();
            assert_eq!(r.read(&genuine[..len]), Err(ChannelError::MessageTooShort));
            assert_eq!(r, before);
        }
        // At least a tag long, but cut: the tag does not verify.
        rejects_then_accepts(
            &mut r,
            &genuine[..genuine.len() - 1],
            AEAD_OPEN,
            &genuine,
            b"genuine",
        );
    }

    #[test]
    fn reordered_frame() {
        let (mut i, mut r) = handshake(105);
        let first = i.write(b"1").unwrap();
        let second = i.write(b"2").unwrap();
        rejects_then_accepts(&mut r, &second, AEAD_OPEN, &first, b"1");
        assert_eq!(r.read(&second).unwrap(), b"2");
    }

    #[test]
    fn empty_plaintext_is_a_bare_tag() {
        let (mut i, mut r) = handshake(106);
        let ct = i.write(b"").unwrap();
        assert_eq!(ct.len(), TRANSPORT_OVERHEAD);
        assert_eq!(r.read(&ct).unwrap(), b"");
    }

    #[test]
    fn size_limits() {
        let (mut i, mut r) = handshake(107);
        let max = MAX_NOISE_MESSAGE_LEN - TRANSPORT_OVERHEAD;
        let before = i.clone();
        assert_eq!(i.write(&vec![0; max + 1]), Err(ChannelError::MessageTooLong));
        assert_eq!(i, before);
        let ct = i.write(&vec![1; max]).unwrap();
        assert_eq!(ct.len(), MAX_NOISE_MESSAGE_LEN);
        let mut too_long = ct.clone();
        too_long.push(0);
        rejects_then_accepts(&mut r, &too_long, ChannelError::MessageTooLong, &ct, &vec![1; max]);
    }

    #[test]
    fn nonce_advances_forward_only() {
        let (mut i, mut r) = handshake(109);
        assert!(i.advance_send_nonce(7));
        assert!(r.advance_receive_nonce(7));
        assert_eq!(r.read(&i.write(b"at seven").unwrap()).unwrap(), b"at seven");
        let (i_before, r_before) = (i.clone(), r.clone());
        assert!(!i.advance_send_nonce(3));
        assert!(!r.advance_receive_nonce(3));
        assert_eq!((&i, &r), (&i_before, &r_before));
        // To the counter it already has: allowed (nothing is reused), and nothing changes.
        assert!(i.advance_send_nonce(8));
        assert!(r.advance_receive_nonce(8));
        assert_eq!((&i, &r), (&i_before, &r_before));
        assert!(i.advance_send_nonce(u64::MAX));
        assert_eq!(i.write(b"none left"), Err(ChannelError::NonceExhausted));
    }

    /// `check_write` and `check_writes` say what `write` will do: near the reserved counter
    /// `2^64 − 1`, exactly the writes that still get a nonce pass.
    #[test]
    fn write_checks_agree_with_write_at_the_nonce_limit() {
        let (mut i, _) = handshake(110);
        assert!(i.advance_send_nonce(u64::MAX - 2));
        assert_eq!(i.check_writes(4, 2), Ok(()));
        assert_eq!(i.check_writes(4, 3), Err(ChannelError::NonceExhausted));
        for _ in 0..2 {
            assert_eq!(i.check_write(4), Ok(()));
            i.write(b"four").unwrap();
        }
        assert_eq!(i.check_write(4), Err(ChannelError::NonceExhausted));
        assert_eq!(i.check_writes(4, 1), Err(ChannelError::NonceExhausted));
        assert_eq!(i.write(b"four"), Err(ChannelError::NonceExhausted));
    }

    /// At the length limit too: a plaintext of `65535 − 16` bytes fits one message, one byte more
    /// does not, whether checked first or written in place (after a header, as a role writes it).
    #[test]
    fn write_checks_agree_with_write_at_the_length_limit() {
        let (mut i, mut r) = handshake(111);
        let max = MAX_NOISE_MESSAGE_LEN - TRANSPORT_OVERHEAD;
        assert_eq!((i.check_write(max), i.check_writes(max, 2)), (Ok(()), Ok(())));
        let too_long = Err(ChannelError::MessageTooLong);
        assert_eq!((i.check_write(max + 1), i.check_writes(max + 1, 1)), (too_long, too_long));

        let mut frame = vec![7; 3 + max + 1];
        let (i_before, frame_before) = (i.clone(), frame.clone());
        assert_eq!(i.write_in_place(&mut frame, 3), too_long);
        assert_eq!((&i, &frame), (&i_before, &frame_before));
        frame.pop();
        assert_eq!(i.write_in_place(&mut frame, 3), Ok(()));
        assert_eq!(frame.len(), 3 + MAX_NOISE_MESSAGE_LEN);
        assert_eq!(r.read(&frame[3..]).unwrap(), vec![7; max]);
    }

    /// In place, a message goes both ways in one buffer (after a prefix the role's header
    /// takes), and every refusal of `read` is refused alike, leaving the transport and the buffer
    /// exactly as they were.
    #[test]
    fn read_in_place_reads_what_read_reads_and_refuses_what_it_refuses() {
        let (mut i, mut r) = handshake(112);
        let mut buffer = b"hdr".to_vec();
        buffer.extend_from_slice(b"in place");
        i.write_in_place(&mut buffer, 3).unwrap();
        let genuine = buffer.clone();
        let mut forged = genuine.clone();
        forged[4] ^= 1;
        let max = MAX_NOISE_MESSAGE_LEN;
        for (mut bad, expected) in [
            (forged, AEAD_OPEN),
            (genuine[..3 + 15].to_vec(), ChannelError::MessageTooShort),
            (genuine[..2].to_vec(), ChannelError::MessageTooShort),
            ([&genuine[..3], &vec![0; max + 1][..]].concat(), ChannelError::MessageTooLong),
        ] {
            let (before, bytes) = (r.clone(), bad.clone());
            assert_eq!(r.read_in_place(&mut bad, 3), Err(expected));
            assert_eq!((&r, &bad), (&before, &bytes));
        }
        assert_eq!(r.read_in_place(&mut buffer, 3), Ok(()));
        assert_eq!(buffer, b"hdrin place");
        // Replayed: the counter moved on.
        let mut replayed = genuine.clone();
        assert_eq!(r.read_in_place(&mut replayed, 3), Err(AEAD_OPEN));
        assert_eq!(replayed, genuine);
        // The next message, written by `write`, reads in place too.
        let mut next = i.write(b"next").unwrap();
        assert_eq!(r.read_in_place(&mut next, 0), Ok(()));
        assert_eq!(next, b"next");
    }

    #[test]
    fn nonce_exhaustion() {
        let (mut i, mut r) = handshake(108);
        i.send.set_nonce(u64::MAX - 1);
        r.recv.set_nonce(u64::MAX - 1);

        let last = i.write(b"last").unwrap();
        assert_eq!(r.read(&last).unwrap(), b"last");

        let (i_before, r_before) = (i.clone(), r.clone());
        assert_eq!(i.write(b"one more"), Err(ChannelError::NonceExhausted));
        assert_eq!(r.read(&last), Err(ChannelError::NonceExhausted));
        assert_eq!((&i, &r), (&i_before, &r_before));

        // The other direction is independent and still works.
        assert_eq!(i.read(&r.write(b"reverse").unwrap()).unwrap(), b"reverse");
    }
}
