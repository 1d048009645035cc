//! Fixtures shared by the channel's unit tests.

use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

use super::{Initiator, PROLOGUE, Responder, Transport};
use crate::suite::PrivateKey;

/// Initiator static/ephemeral and responder static/ephemeral keys, drawn from a seeded RNG.
pub(crate) struct Keys {
    pub(crate) is: PrivateKey,
    pub(crate) ie: PrivateKey,
    pub(crate) rs: PrivateKey,
    pub(crate) re: PrivateKey,
}

impl Keys {
    pub(crate) fn new(seed: u64) -> Self {
        let mut rng = ChaCha20Rng::seed_from_u64(seed);
        Self {
            is: PrivateKey::generate(&mut rng),
            ie: PrivateKey::generate(&mut rng),
            rs: PrivateKey::generate(&mut rng),
            re: PrivateKey::generate(&mut rng),
        }
    }

    pub(crate) fn initiator(&self) -> Initiator {
        Initiator::new(PROLOGUE, self.is.clone(), self.rs.public_key())
    }

    pub(crate) fn responder(&self) -> Responder {
        Responder::new(PROLOGUE, self.rs.clone())
    }
}

/// A completed handshake with [`PROLOGUE`]: `(initiator transport, responder transport)`.
pub(crate) fn handshake(seed: u64) -> (Transport, Transport) {
    let k = Keys::new(seed);
    let mut rng = ChaCha20Rng::seed_from_u64(seed ^ 0x5eed);
    let (awaiting, m1) = k.initiator().write_message_1_with_rng(&mut rng, b"m1").unwrap();
    let received = k.responder().read_message_1(&m1).unwrap();
    let (responder, m2) = received.write_message_2_with_rng(&mut rng, b"m2").unwrap();
    let (initiator, payload) = awaiting.read_message_2(&m2).unwrap();
    assert_eq!(payload, b"m2");
    (initiator, responder)
}
