//! Interoperability of our `Noise_IK_25519_ChaChaPoly_SHA256` with an independent implementation,
//! `snow`: our initiator ↔ snow responder and snow initiator ↔ our responder, with our prologue,
//! non-empty handshake payloads, equal handshake hashes, and 100 transport messages each way.

use e2e_protocol::channel::{
    Initiator, MAX_NOISE_MESSAGE_LEN, PROLOGUE, PROTOCOL_NAME, Responder, TRANSPORT_OVERHEAD,
    Transport,
};
use e2e_protocol::suite::PrivateKey;
use rand_chacha::ChaCha20Rng;
use rand_core::{Rng, SeedableRng};

type TestResult = Result<(), Box<dyn std::error::Error>>;

/// Transport messages sent in each direction per handshake.
const TRANSPORT_MESSAGES: usize = 100;

fn snow_builder<'a>() -> Result<snow::Builder<'a>, snow::Error> {
    Ok(snow::Builder::new(PROTOCOL_NAME.parse()?))
}

/// Message `index`'s payload: empty for 0, the maximum for 1, else 0 ..= 1500 bytes; random bytes.
fn random_payload(rng: &mut ChaCha20Rng, index: usize) -> Vec<u8> {
    let len = match index {
        0 => 0,
        1 => MAX_NOISE_MESSAGE_LEN - TRANSPORT_OVERHEAD,
        _ => rng.next_u32() as usize % 1501,
    };
    let mut payload = vec![0u8; len];
    rng.fill_bytes(&mut payload);
    payload
}

/// [`TRANSPORT_MESSAGES`] messages each way, interleaved, between our transport and snow's.
fn exchange(
    rng: &mut ChaCha20Rng,
    ours: &mut Transport,
    theirs: &mut snow::TransportState,
) -> TestResult {
    let mut buf = vec![0u8; MAX_NOISE_MESSAGE_LEN];
    for i in 0..TRANSPORT_MESSAGES {
        let to_snow = random_payload(rng, i);
        let ct = ours.write(&to_snow)?;
        assert_eq!(ct.len(), to_snow.len() + TRANSPORT_OVERHEAD);
        let n = theirs.read_message(&ct, &mut buf)?;
        assert_eq!(&buf[..n], &to_snow[..], "message {i} to snow");

        let from_snow = random_payload(rng, i);
        let n = theirs.write_message(&from_snow, &mut buf)?;
        assert_eq!(ours.read(&buf[..n])?, from_snow, "message {i} from snow");
    }
    Ok(())
}

#[test]
fn our_initiator_with_snow_responder() -> TestResult {
    for seed in 0..4 {
        let mut rng = ChaCha20Rng::seed_from_u64(seed);
        let initiator_static = PrivateKey::generate(&mut rng);
        let responder_static = PrivateKey::generate(&mut rng);
        let mut buf = vec![0u8; MAX_NOISE_MESSAGE_LEN];

        let mut snow_responder = snow_builder()?
            .local_private_key(responder_static.expose())?
            .prologue(PROLOGUE)?
            .build_responder()?;

        let initiator =
            Initiator::new(PROLOGUE, initiator_static.clone(), responder_static.public_key());
        let (awaiting, m1) = initiator.write_message_1_with_rng(&mut rng, b"client hello")?;
        let n = snow_responder.read_message(&m1, &mut buf)?;
        assert_eq!(&buf[..n], b"client hello");
        assert_eq!(
            snow_responder.get_remote_static(),
            Some(&initiator_static.public_key().as_bytes()[..])
        );

        let n = snow_responder.write_message(b"server hello", &mut buf)?;
        let (mut ours, payload) = awaiting.read_message_2(&buf[..n])?;
        assert_eq!(payload, b"server hello");

        assert!(snow_responder.is_handshake_finished());
        assert_eq!(ours.handshake_hash().as_slice(), snow_responder.get_handshake_hash());
        let mut theirs = snow_responder.into_transport_mode()?;
        exchange(&mut rng, &mut ours, &mut theirs)?;
    }
    Ok(())
}

#[test]
fn snow_initiator_with_our_responder() -> TestResult {
    for seed in 100..104 {
        let mut rng = ChaCha20Rng::seed_from_u64(seed);
        let initiator_static = PrivateKey::generate(&mut rng);
        let responder_static = PrivateKey::generate(&mut rng);
        let mut buf = vec![0u8; MAX_NOISE_MESSAGE_LEN];

        let mut snow_initiator = snow_builder()?
            .local_private_key(initiator_static.expose())?
            .remote_public_key(responder_static.public_key().as_bytes())?
            .prologue(PROLOGUE)?
            .build_initiator()?;

        let responder = Responder::new(PROLOGUE, responder_static);
        let n = snow_initiator.write_message(b"client hello", &mut buf)?;
        let received = responder.read_message_1(&buf[..n])?;
        assert_eq!(received.payload(), b"client hello");
        assert_eq!(received.remote_static(), initiator_static.public_key());

        let (mut ours, m2) = received.write_message_2_with_rng(&mut rng, b"server hello")?;
        let n = snow_initiator.read_message(&m2, &mut buf)?;
        assert_eq!(&buf[..n], b"server hello");

        assert!(snow_initiator.is_handshake_finished());
        assert_eq!(ours.handshake_hash().as_slice(), snow_initiator.get_handshake_hash());
        let mut theirs = snow_initiator.into_transport_mode()?;
        exchange(&mut rng, &mut ours, &mut theirs)?;
    }
    Ok(())
}

/// Prologues must match: snow with a different prologue cannot complete a handshake with us.
#[test]
fn prologue_mismatch_with_snow_fails() -> TestResult {
    let mut rng = ChaCha20Rng::seed_from_u64(7);
    let initiator_static = PrivateKey::generate(&mut rng);
    let responder_static = PrivateKey::generate(&mut rng);
    let mut buf = vec![0u8; 1024];
    let mut snow_initiator = snow_builder()?
        .local_private_key(initiator_static.expose())?
        .remote_public_key(responder_static.public_key().as_bytes())?
        .prologue(b"e2e-ref/channel/v0")?
        .build_initiator()?;
    let n = snow_initiator.write_message(b"", &mut buf)?;
    let responder = Responder::new(PROLOGUE, responder_static);
    assert!(responder.read_message_1(&buf[..n]).is_err());
    Ok(())
}
