//! The relay's adversarial modes for the interop scenarios (`e2e-ref serve --adversary MODE`):
//! what a malicious operator of the real relay can do, using the same keys and the same state
//! machines as the honest relay — nothing a real server could not.
//!
//! * `bad-bundle` — answers every `FetchBundle` for another client with that client's real
//!   bundle, its signed prekey's signature corrupted (one bit). A client must refuse it (SPEC.md
//!   §10.3) and send nothing.
//! * `mitm=A,B` — substitutes bundles between A and B and relays between two sessions of its own,
//!   reading everything: [`Mitm`], the man in the middle of `e2e-ref run e2e --mitm`. Safety
//!   numbers then differ (SPEC.md §14).
//!
//! Everything else the relay does honestly. The substitutions are not durable: a restart forgets
//! the forged sessions (a malicious server keeps no honest store).

use e2e_protocol::error::Error;
use e2e_protocol::roles::{LinkId, Server, ServerOutputs};
use e2e_protocol::suite::Signature;
use e2e_protocol::wire::{Codec, LinkFrame, LinkKind, Message, Name};
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

use crate::mitm::{Intercepted, Mitm};

/// A malicious relay mode.
#[derive(Debug, Clone)]
pub enum Adversary {
    /// Corrupts the signature of every bundle it hands out.
    BadBundle,
    /// Substitutes bundles between two clients and reads their messages.
    Mitm(Box<Mitm>),
}

impl Adversary {
    /// Parses `bad-bundle` or `mitm=A,B`; the forged keys of `mitm` come from `seed` (the relay's
    /// `--seed`, for reproducible tests) or else from the operating system.
    ///
    /// # Errors
    /// An unknown mode, a bad name, or the operating system's RNG failed.
    pub fn parse(mode: &str, seed: Option<u64>) -> Result<Self, String> {
        if mode == "bad-bundle" {
            return Ok(Self::BadBundle);
        }
        let Some(pair) = mode.strip_prefix("mitm=") else {
            return Err(format!("--adversary: unknown mode {mode:?} (bad-bundle | mitm=A,B)"));
        };
        let (a, b) = pair.split_once(',').ok_or("--adversary mitm=A,B")?;
        let a = Name::new(a).map_err(|e| format!("--adversary: {e}"))?;
        let b = Name::new(b).map_err(|e| format!("--adversary: {e}"))?;
        let mut rng = match seed {
            Some(seed) => ChaCha20Rng::seed_from_u64(seed),
            None => {
                let mut bytes = [0u8; 32];
                getrandom::fill(&mut bytes).map_err(|_| "the operating system's RNG failed")?;
                ChaCha20Rng::from_seed(bytes)
            }
        };
        let mitm = Mitm::new(&a, &b, &mut rng).map_err(|e| format!("--adversary: {e:?}"))?;
        Ok(Self::Mitm(Box::new(mitm)))
    }

    /// In place of [`Server::handle`]: handshakes honestly; a transport frame opened with the
    /// server's own channel keys, then rewritten, answered, or processed honestly.
    ///
    /// # Errors
    /// As [`Server::handle`].
    pub fn handle(
        &mut self,
        server: &mut Server,
        link: LinkId,
        frame: &[u8],
        rng: &mut ChaCha20Rng,
    ) -> Result<ServerOutputs, Error> {
        let (kind, _) = LinkFrame::parse(frame)?;
        if kind != LinkKind::Transport {
            return server.handle(link, frame, rng);
        }
        let (from, plaintext) = server.open_transport(link, frame)?;
        let reply = match self {
            Self::BadBundle => match Message::decode(&plaintext) {
                Ok(Message::FetchBundle { name }) if name != from => {
                    server.take_bundle(&name).map(|mut bundle| {
                        let mut signature = *bundle.signed_prekey.signature.as_bytes();
                        signature[0] ^= 1;
                        bundle.signed_prekey.signature = Signature::from_bytes(signature);
                        Message::Bundle { name, bundle }
                    })
                }
                _ => None,
            },
            Self::Mitm(mitm) => match mitm.intercept(server, &from, &plaintext, rng)? {
                Intercepted::PassThrough => None,
                Intercepted::Rewritten { plaintext, .. } => {
                    return Ok(server.process(link, plaintext));
                }
                Intercepted::Reply { message, .. } => Some(message),
            },
        };
        match reply {
            Some(message) => {
                let frame = server.seal_transport(link, &message)?;
                Ok(ServerOutputs { transmit: vec![(link, frame)], ..Default::default() })
            }
            None => Ok(server.process(link, plaintext)),
        }
    }
}
