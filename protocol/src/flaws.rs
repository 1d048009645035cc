//! **Deliberately seeded security flaws, for the model checker only.**
//!
//! Each [`Flaw`] names one check of the protocol; the one-line hook at that check asks
//! [`on`] whether to skip it. Without the `insecure-seeded-flaws` cargo feature [`on`] is a
//! `const fn` that returns `false`, so every hook is `if false` and the protocol behaves exactly as
//! without this module. With the feature, a flaw is active only after `activate` (process-wide),
//! which only `e2e-check --flaw NAME` and the model crate's flaw tests call.
//!
//! The package `e2e-protocol` has no such feature, so nothing can turn it on in the real crate.
//! Only `e2e-protocol-flawed` (`model/flawed/Cargo.toml`), a second, unpublished package built from
//! this same source, declares it, on by default, and only the model crate depends on it (renamed
//! to `e2e_protocol`). The split is deliberate: Cargo unifies one package's features across a
//! workspace build, so when the model enabled the feature on `e2e-protocol` itself, every
//! `cargo build --workspace` compiled the flaw hooks into the `e2e-ref` binary too. `e2e-ref` also
//! refuses to compile against a build with the flaws ([`COMPILED`]), and `.ci/run` checks with
//! `nm` that the release `e2e-ref` has no flaw switch while `e2e-check` has one. Never depend on
//! `e2e-protocol-flawed` from anything that talks to a real peer.

/// Whether this build of the crate contains the seeded flaws (the `insecure-seeded-flaws` feature:
/// only in the package `e2e-protocol-flawed`). Always `false` in `e2e-protocol`.
pub const COMPILED: bool = cfg!(feature = "insecure-seeded-flaws");

/// A seeded flaw: which check it disables.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum Flaw {
    /// `Peers::pin` does nothing: verifying a safety number has no effect (SPEC.md §14.2).
    IgnorePin,
    /// `Peers::decrypt` skips the verified-identity check on an incoming prekey message.
    SkipPinOnReceive,
    /// The responder keeps a one-time prekey after using it (SPEC.md §11.2), which forward secrecy
    /// relies on deleting.
    KeepOneTimePrekey,
    /// A successful ratchet decryption is not committed: every message key stays usable, so a
    /// replayed envelope decrypts again (SPEC.md §12.4).
    RatchetNoAdvance,
    /// The client's message-id replay window accepts every id (SPEC.md §5.3).
    SkipReplayWindow,
    /// The server lets any static key register under a name already bound to another (SPEC.md §5.1).
    SkipNameBinding,
    /// A client with an e2e identity accepts hop `Deliver` as it did before the security review:
    /// a malicious server makes it show any text "from" a verified peer (SPEC.md §15.3).
    AcceptHopInE2e,
    /// Suite: X25519 with a small-order public key yields the all-zero shared secret instead of
    /// [`crate::suite::CryptoError::NonContributory`] (SPEC.md §2.1): the contributory check skipped.
    AcceptLowOrderPoint,
    /// Channel: the `CipherState` nonce counter never advances (SPEC.md §4.4), so every frame of a
    /// channel direction is sealed under nonce 0, and the receiver accepts each old frame again.
    ChannelNonceStuck,
    /// Wire: a decoded frame may carry bytes after its last field (SPEC.md §3.4): the declared length
    /// is trusted and what it does not account for is ignored, so one message has many encodings.
    AcceptTrailingBytes,
    /// Server directory: a fetched one-time prekey is not deleted (SPEC.md §15.2), so it is handed
    /// out again to the next requester.
    ServeOneTimePrekeyTwice,
    /// X3DH: the signature on a bundle's signed prekey is not verified (SPEC.md §10.3 step 3).
    SkipSignedPrekeySignature,
    /// Ratchet: a skipped message key is not deleted after it opened its message (SPEC.md §12.5),
    /// so a late message, once received, is accepted again every time it is replayed.
    KeepSkippedKeys,
    /// Safety numbers: the number is computed from one identity only (SPEC.md §14.1): the peer's
    /// fingerprint is taken over the local identity, so a substituted peer key leaves it unchanged.
    SafetyNumberOneIdentity,
}

impl Flaw {
    /// Every flaw, in catalog order.
    pub const ALL: [Self; 14] = [
        Self::IgnorePin,
        Self::SkipPinOnReceive,
        Self::KeepOneTimePrekey,
        Self::RatchetNoAdvance,
        Self::SkipReplayWindow,
        Self::SkipNameBinding,
        Self::AcceptHopInE2e,
        Self::AcceptLowOrderPoint,
        Self::ChannelNonceStuck,
        Self::AcceptTrailingBytes,
        Self::ServeOneTimePrekeyTwice,
        Self::SkipSignedPrekeySignature,
        Self::KeepSkippedKeys,
        Self::SafetyNumberOneIdentity,
    ];

    /// The flaw's command-line name.
    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            Self::IgnorePin => "ignore-pin",
            Self::SkipPinOnReceive => "skip-pin-on-receive",
            Self::KeepOneTimePrekey => "keep-one-time-prekey",
            Self::RatchetNoAdvance => "ratchet-no-advance",
            Self::SkipReplayWindow => "skip-replay-window",
            Self::SkipNameBinding => "skip-name-binding",
            Self::AcceptHopInE2e => "accept-hop-in-e2e",
            Self::AcceptLowOrderPoint => "accept-low-order-point",
            Self::ChannelNonceStuck => "channel-nonce-stuck",
            Self::AcceptTrailingBytes => "accept-trailing-bytes",
            Self::ServeOneTimePrekeyTwice => "serve-one-time-prekey-twice",
            Self::SkipSignedPrekeySignature => "skip-signed-prekey-signature",
            Self::KeepSkippedKeys => "keep-skipped-keys",
            Self::SafetyNumberOneIdentity => "safety-number-one-identity",
        }
    }

    /// What the flaw breaks, in one line.
    #[must_use]
    pub const fn description(self) -> &'static str {
        match self {
            Self::IgnorePin => {
                "verify_peer has no effect: a verified peer's key can be substituted"
            }
            Self::SkipPinOnReceive => {
                "a prekey message from an unverified identity starts a session"
            }
            Self::KeepOneTimePrekey => "used one-time prekeys are never deleted",
            Self::RatchetNoAdvance => {
                "the receiving ratchet never commits: message keys are reused"
            }
            Self::SkipReplayWindow => "the client accepts a message id it has already accepted",
            Self::SkipNameBinding => "the server binds a registered name to any new static key",
            Self::AcceptHopInE2e => "an e2e client accepts a hop Deliver the server forged",
            Self::AcceptLowOrderPoint => {
                "X25519 with a small-order point gives an all-zero secret instead of an error"
            }
            Self::ChannelNonceStuck => "the channel seals every frame under nonce 0",
            Self::AcceptTrailingBytes => "a frame decodes with bytes left after its last field",
            Self::ServeOneTimePrekeyTwice => "the server hands out a one-time prekey twice",
            Self::SkipSignedPrekeySignature => "a bundle's signed-prekey signature is not verified",
            Self::KeepSkippedKeys => "a skipped message key opens its message again and again",
            Self::SafetyNumberOneIdentity => {
                "the safety number ignores the peer's identity: key substitution goes unseen"
            }
        }
    }

    /// The flaw called `name`.
    #[must_use]
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|f| f.name() == name)
    }

    #[cfg(feature = "insecure-seeded-flaws")]
    const fn bit(self) -> u32 {
        1 << (self as u32)
    }
}

#[cfg(feature = "insecure-seeded-flaws")]
static ACTIVE: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);

/// Whether `flaw` is active. Always `false` without the `insecure-seeded-flaws` feature.
#[cfg(not(feature = "insecure-seeded-flaws"))]
#[must_use]
#[inline(always)]
pub const fn on(flaw: Flaw) -> bool {
    let _ = flaw;
    false
}

/// Whether `flaw` is active.
#[cfg(feature = "insecure-seeded-flaws")]
#[must_use]
pub fn on(flaw: Flaw) -> bool {
    ACTIVE.load(std::sync::atomic::Ordering::Relaxed) & flaw.bit() != 0
}

/// Makes exactly `flaws` active, process-wide (none: the protocol as specified).
#[cfg(feature = "insecure-seeded-flaws")]
pub fn activate(flaws: &[Flaw]) {
    let bits = flaws.iter().fold(0, |acc, f| acc | f.bit());
    ACTIVE.store(bits, std::sync::atomic::Ordering::SeqCst);
}
