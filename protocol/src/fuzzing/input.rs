//! Decoding fuzzer input into operations ([`arbitrary`]), and the inverse encoding the seed corpus is
//! written with.
//!
//! The encoding mirrors `arbitrary` 1.x exactly for the types used here: integers are little-endian
//! (zero-padded when the input runs out), `bool` is the low bit of a byte, a derived enum's variant
//! `k` of `n` is a `u32` `x` with `(x · n) >> 32 = k`, a derived struct is its fields in order, an
//! array is its elements. Byte strings use [`Bytes`] (a `u16` length) and [`SmallBytes`] (a `u8`
//! length), whose decoding is written here. [`decode_all`] and the seed tests check that every seed
//! decodes back to the operations it was encoded from, so a change in `arbitrary` cannot silently
//! turn the corpus into noise.

use arbitrary::{Arbitrary, Unstructured};

use crate::wire::Name;

use super::must;

/// Writes a value so that `arbitrary` decodes it back.
pub trait Encode {
    /// Appends the encoding of `self`.
    fn encode(&self, out: &mut Vec<u8>);
}

/// Encodes variant `index` of an enum with `count` variants, as the derive macro decodes it.
pub fn variant(out: &mut Vec<u8>, index: u32, count: u32) {
    // The smallest x with (x * count) >> 32 == index.
    let x = (u64::from(index) << 32).div_ceil(u64::from(count));
    out.extend_from_slice(&u32::try_from(x).unwrap_or(u32::MAX).to_le_bytes());
}

macro_rules! encode_int {
    ($($ty:ty),*) => {$(
        impl Encode for $ty {
            fn encode(&self, out: &mut Vec<u8>) {
                out.extend_from_slice(&self.to_le_bytes());
            }
        }
    )*};
}
encode_int!(u8, u16, u32, u64);

impl Encode for bool {
    fn encode(&self, out: &mut Vec<u8>) {
        out.push(u8::from(*self));
    }
}

impl Encode for () {
    fn encode(&self, _: &mut Vec<u8>) {}
}

impl<const N: usize> Encode for [u8; N] {
    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(self);
    }
}

impl<T: Encode> Encode for Option<T> {
    fn encode(&self, out: &mut Vec<u8>) {
        match self {
            None => false.encode(out),
            Some(value) => {
                true.encode(out);
                value.encode(out);
            }
        }
    }
}

/// Up to 65 535 arbitrary bytes: a `u16` length, then that many bytes (fewer if the input ends).
#[derive(Clone, PartialEq, Eq, Debug, Default)]
pub struct Bytes(pub Vec<u8>);

impl<'a> Arbitrary<'a> for Bytes {
    fn arbitrary(u: &mut Unstructured<'a>) -> arbitrary::Result<Self> {
        let len = usize::from(u16::arbitrary(u)?).min(u.len());
        Ok(Self(u.bytes(len)?.to_vec()))
    }
}

impl Encode for Bytes {
    fn encode(&self, out: &mut Vec<u8>) {
        u16::try_from(self.0.len()).unwrap_or(u16::MAX).encode(out);
        out.extend_from_slice(&self.0);
    }
}

/// Up to 255 arbitrary bytes: a `u8` length, then that many bytes (fewer if the input ends).
#[derive(Clone, PartialEq, Eq, Debug, Default)]
pub struct SmallBytes(pub Vec<u8>);

impl<'a> Arbitrary<'a> for SmallBytes {
    fn arbitrary(u: &mut Unstructured<'a>) -> arbitrary::Result<Self> {
        let len = usize::from(u8::arbitrary(u)?).min(u.len());
        Ok(Self(u.bytes(len)?.to_vec()))
    }
}

impl Encode for SmallBytes {
    fn encode(&self, out: &mut Vec<u8>) {
        u8::try_from(self.0.len()).unwrap_or(u8::MAX).encode(out);
        out.extend_from_slice(&self.0);
    }
}

/// A name from a small fixed set, so that operations meet each other.
#[derive(Arbitrary, Clone, Copy, PartialEq, Eq, Debug)]
pub enum NameChoice {
    /// `alice`.
    Alice,
    /// `bob`.
    Bob,
    /// `carol`, whom nobody registers.
    Carol,
    /// A name of the maximum length, 32 bytes.
    Longest,
}

impl NameChoice {
    /// The name.
    pub fn name(self) -> Name {
        name(match self {
            Self::Alice => "alice",
            Self::Bob => "bob",
            Self::Carol => "carol",
            Self::Longest => "abcdefghijklmnopqrstuvwxyz-_.012",
        })
    }
}

impl Encode for NameChoice {
    fn encode(&self, out: &mut Vec<u8>) {
        variant(out, *self as u32, 4);
    }
}

/// A valid name (the harness uses only valid literals).
pub fn name(text: &str) -> Name {
    must(Name::new(text), "harness name")
}

/// How to damage a genuine byte string.
#[derive(Arbitrary, Clone, PartialEq, Eq, Debug)]
pub enum Mutation {
    /// Leave it as it is.
    None,
    /// XOR the byte at `pos` (modulo the length) with `xor` (0 is taken as 1, so it always changes).
    Flip {
        /// Position, reduced modulo the length.
        pos: u16,
        /// The XOR mask.
        xor: u8,
    },
    /// Keep the first `len` bytes (modulo the length).
    Truncate {
        /// The new length, reduced modulo the original length.
        len: u16,
    },
    /// Append bytes.
    Append(SmallBytes),
    /// Overwrite bytes starting at `pos` (modulo the length), growing the string if needed.
    Overwrite {
        /// Position, reduced modulo the length.
        pos: u16,
        /// The bytes written there.
        bytes: SmallBytes,
    },
    /// Replace it entirely.
    Replace(Bytes),
}

impl Mutation {
    /// Applies the mutation to a copy of `genuine`.
    pub fn apply(&self, genuine: &[u8]) -> Vec<u8> {
        let mut out = genuine.to_vec();
        let at = |pos: u16| usize::from(pos).checked_rem(genuine.len()).unwrap_or(0);
        match self {
            Self::None => {}
            Self::Flip { pos, xor } => {
                let pos = at(*pos);
                if let Some(byte) = out.get_mut(pos) {
                    *byte ^= (*xor).max(1);
                }
            }
            Self::Truncate { len } => out.truncate(at(*len)),
            Self::Append(bytes) => out.extend_from_slice(&bytes.0),
            Self::Overwrite { pos, bytes } => {
                let pos = at(*pos);
                for (i, byte) in bytes.0.iter().enumerate() {
                    match out.get_mut(pos + i) {
                        Some(slot) => *slot = *byte,
                        None => out.push(*byte),
                    }
                }
            }
            Self::Replace(bytes) => out.clone_from(&bytes.0),
        }
        out
    }
}

impl Encode for Mutation {
    fn encode(&self, out: &mut Vec<u8>) {
        match self {
            Self::None => variant(out, 0, 6),
            Self::Flip { pos, xor } => {
                variant(out, 1, 6);
                pos.encode(out);
                xor.encode(out);
            }
            Self::Truncate { len } => {
                variant(out, 2, 6);
                len.encode(out);
            }
            Self::Append(bytes) => {
                variant(out, 3, 6);
                bytes.encode(out);
            }
            Self::Overwrite { pos, bytes } => {
                variant(out, 4, 6);
                pos.encode(out);
                bytes.encode(out);
            }
            Self::Replace(bytes) => {
                variant(out, 5, 6);
                bytes.encode(out);
            }
        }
    }
}

/// Most operations one input runs: bounds the work per input, and keeps every gap the protocol
/// must tolerate (message keys skipped, ids out of order) far inside its limits.
pub const MAX_OPS: usize = 128;

/// Decodes operations from `data` until it runs out (or [`MAX_OPS`]).
pub fn decode_ops<'a, T: Arbitrary<'a>>(u: &mut Unstructured<'a>) -> Vec<T> {
    let mut ops = Vec::new();
    while !u.is_empty() && ops.len() < MAX_OPS {
        match T::arbitrary(u) {
            Ok(op) => ops.push(op),
            Err(_) => break,
        }
    }
    ops
}

/// Decodes a header value and the operations after it, as the entry points do.
pub fn decode_all<'a, H: Arbitrary<'a>, T: Arbitrary<'a>>(data: &'a [u8]) -> Option<(H, Vec<T>)> {
    let mut u = Unstructured::new(data);
    let head = H::arbitrary(&mut u).ok()?;
    Some((head, decode_ops(&mut u)))
}

/// Encodes a header value and operations, the inverse of [`decode_all`].
pub fn encode_all<H: Encode, T: Encode>(head: &H, ops: &[T]) -> Vec<u8> {
    let mut out = Vec::new();
    head.encode(&mut out);
    for op in ops {
        op.encode(&mut out);
    }
    out
}
