//! Fixed-size secret byte strings.

use core::fmt;
use subtle::ConstantTimeEq;
use zeroize::{Zeroize, ZeroizeOnDrop};

/// `N` secret bytes.
///
/// * zeroized when dropped ([`ZeroizeOnDrop`]);
/// * [`Debug`] prints `[redacted]`, never the bytes; there is no `Display` and no `Serialize`;
/// * `==` is constant time ([`subtle::ConstantTimeEq`]);
/// * [`Hash`] is implemented so that protocol states can be deduplicated by a model checker
///   (an in-process hash table, never an output): it feeds the bytes to the caller's hasher.
///
/// The bytes are reachable only through [`Secret::expose`], which is greppable on purpose.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct Secret<const N: usize>([u8; N]);

impl<const N: usize> Secret<N> {
    /// Wraps `bytes`. The caller's copy is not zeroized by this call.
    #[must_use]
    pub const fn new(bytes: [u8; N]) -> Self {
        Self(bytes)
    }

    /// Borrows the secret bytes. Every use is a place where a secret leaves its wrapper.
    #[must_use]
    pub const fn expose(&self) -> &[u8; N] {
        &self.0
    }
}

impl<const N: usize> fmt::Debug for Secret<N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl<const N: usize> PartialEq for Secret<N> {
    fn eq(&self, other: &Self) -> bool {
        self.0.ct_eq(&other.0).into()
    }
}

impl<const N: usize> Eq for Secret<N> {}

impl<const N: usize> core::hash::Hash for Secret<N> {
    fn hash<H: core::hash::Hasher>(&self, state: &mut H) {
        self.0.hash(state);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_is_redacted() {
        let s = Secret::new([0x41u8; 32]);
        let shown = format!("{s:?} {:?}", Some(&s));
        assert!(!shown.contains("41") && !shown.contains("65"), "{shown}");
        assert_eq!(format!("{s:?}"), "[redacted]");
    }

    #[test]
    fn equality_compares_every_byte() {
        let a = Secret::new([7u8; 32]);
        let mut other = [7u8; 32];
        assert_eq!(a, Secret::new(other));
        other[31] ^= 1;
        assert_ne!(a, Secret::new(other));
    }

    /// The model checker deduplicates states by hash: a `Hash` that ignored the bytes would merge
    /// states that differ only in a key, and so explore fewer states than there are.
    #[test]
    fn hash_is_the_hash_of_the_bytes() {
        use core::hash::{BuildHasher, Hash as _};
        let hasher = std::hash::RandomState::new();
        let hash = |s: &Secret<32>| hasher.hash_one(s);
        let bytes = |b: &[u8; 32]| {
            let mut h = hasher.build_hasher();
            b.hash(&mut h);
            core::hash::Hasher::finish(&h)
        };
        let (a, b) = ([7u8; 32], [8u8; 32]);
        assert_eq!(hash(&Secret::new(a)), bytes(&a));
        assert_eq!(hash(&Secret::new(a)), hash(&Secret::new(a)));
        assert_ne!(hash(&Secret::new(a)), hash(&Secret::new(b)));
    }

    #[test]
    fn zeroize_clears_the_bytes() {
        let mut s = Secret::new([0xAAu8; 16]);
        s.zeroize();
        assert_eq!(s.expose(), &[0u8; 16]);
    }
}
