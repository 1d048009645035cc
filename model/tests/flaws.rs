//! The seeded-flaw catalog: every flaw of `e2e_protocol::flaws` is caught, and the unflawed protocol
//! passes the same check. A flaw the model catches is checked on its cell (a property that holds on
//! the unflawed protocol is violated); a flaw outside the model's reach (spec/MODEL.md §6 says why)
//! is checked by the direct test of this file that its hook breaks. Flaws the model now reaches
//! keep their direct test too (`direct`), run on its own.
//! Flaws are process-wide switches, so the tests of this file take one lock and run one at a time.

#[cfg(test)]
mod tests {
    use e2e_model::report;
    use e2e_model::{Attacker, Bounds, E2eModel, Variant};
    use e2e_protocol::channel::{Initiator, PROLOGUE, Responder, Transport};
    use e2e_protocol::e2e::bundle::verify_fetched;
    use e2e_protocol::e2e::peers::Peers;
    use e2e_protocol::e2e::safety_number::SafetyNumber;
    use e2e_protocol::flaws::{self, Flaw};
    use e2e_protocol::roles::{Client, LinkId, Server, ServerEvent};
    use e2e_protocol::suite::{PrivateKey, PublicKey};
    use e2e_protocol::wire::{Body, Codec, FetchedBundle, Message, Name};
    use rand_chacha::ChaCha20Rng;
    use rand_core::SeedableRng;

    const SMALL: Bounds = Bounds { bob_messages: 0, ..Bounds::DEFAULT };
    /// Two messages and two injections: a withheld envelope re-delivered late, then again.
    const LATE: Bounds =
        Bounds { alice_messages: 2, bob_messages: 0, budget: 2, ..Bounds::DEFAULT };

    /// How a flaw is caught: on a model cell, or by a direct test of the layer (`true` = the check
    /// the flaw disables held).
    enum Catch {
        Model(Variant, Attacker, Bounds),
        Test(fn() -> bool),
    }

    /// Where each flaw shows (the cheapest model cell that catches it, or the direct test).
    fn target(flaw: Flaw) -> Catch {
        match flaw {
            Flaw::IgnorePin
            | Flaw::SkipPinOnReceive
            | Flaw::RatchetNoAdvance
            | Flaw::AcceptHopInE2e => Catch::Model(Variant::E2eVerified, Attacker::Server, SMALL),
            Flaw::KeepOneTimePrekey => {
                Catch::Model(Variant::E2eVerified, Attacker::Compromise, SMALL)
            }
            Flaw::SkipReplayWindow | Flaw::AcceptTrailingBytes => {
                Catch::Model(Variant::Hop, Attacker::Server, SMALL)
            }
            Flaw::SkipNameBinding | Flaw::ChannelNonceStuck => {
                Catch::Model(Variant::Hop, Attacker::Network, SMALL)
            }
            Flaw::KeepSkippedKeys => Catch::Model(Variant::E2eVerified, Attacker::Server, LATE),
            Flaw::SafetyNumberOneIdentity => {
                Catch::Model(Variant::E2eVerified, Attacker::Server, SMALL)
            }
            // M fetches Bob's bundle before Alice: both get one one-time prekey, and the message
            // Bob reads second finds it deleted (`delivery`).
            Flaw::ServeOneTimePrekeyTwice => {
                Catch::Model(Variant::E2eUnverified, Attacker::Malicious, SMALL)
            }
            // S answers Alice's fetch with Bob's real identity and its own signed prekey; she
            // starts a session on it, and compromise of Bob's identity, paired with S's prekey,
            // opens a1 (`signed-prekey-binding`).
            Flaw::SkipSignedPrekeySignature => {
                Catch::Model(Variant::E2eUnverified, Attacker::Compromise, SMALL)
            }
            Flaw::AcceptLowOrderPoint => Catch::Test(small_order_responder_key_refused),
            other => panic!("no target for {other:?}"),
        }
    }

    /// The direct test of each flaw's layer, where there is one (whether or not the model also
    /// reaches the flaw).
    fn direct(flaw: Flaw) -> Option<fn() -> bool> {
        match flaw {
            Flaw::AcceptLowOrderPoint => Some(small_order_responder_key_refused),
            Flaw::ChannelNonceStuck => Some(channel_frames_are_unique_and_read_once),
            Flaw::AcceptTrailingBytes => Some(trailing_bytes_refused),
            Flaw::ServeOneTimePrekeyTwice => Some(one_time_prekey_handed_out_once),
            Flaw::SkipSignedPrekeySignature => Some(substituted_signed_prekey_refused),
            Flaw::KeepSkippedKeys => Some(late_message_accepted_once),
            Flaw::SafetyNumberOneIdentity => Some(safety_number_shows_key_substitution),
            _ => None,
        }
    }

    fn rng(seed: u64) -> ChaCha20Rng {
        ChaCha20Rng::seed_from_u64(seed)
    }

    fn name(s: &str) -> Name {
        Name::new(s).expect("name")
    }

    /// Suite: X25519 with a small-order point is `NonContributory`, so an initiator refuses to
    /// encrypt its static key to a small-order responder key (`es` would be all zero: anyone could
    /// read the static key and the payload).
    fn small_order_responder_key_refused() -> bool {
        let mut r = rng(11);
        let direct = PrivateKey::generate(&mut r).diffie_hellman(&PublicKey::from_bytes([0; 32]));
        let initiator =
            Initiator::new(PROLOGUE, PrivateKey::generate(&mut r), PublicKey::from_bytes([0; 32]));
        let handshake = initiator.write_message_1(PrivateKey::generate(&mut r), b"register");
        direct.is_err() && handshake.is_err()
    }

    /// A completed channel: the initiator's and the responder's transports.
    fn channel(seed: u64) -> (Transport, Transport) {
        let mut r = rng(seed);
        let server = PrivateKey::generate(&mut r);
        let initiator = Initiator::new(PROLOGUE, PrivateKey::generate(&mut r), server.public_key());
        let (awaiting, m1) =
            initiator.write_message_1(PrivateKey::generate(&mut r), b"").expect("message 1");
        let received = Responder::new(PROLOGUE, server).read_message_1(&m1).expect("read 1");
        let (responder, m2) =
            received.write_message_2(PrivateKey::generate(&mut r), b"").expect("message 2");
        let (initiator, _) = awaiting.read_message_2(&m2).expect("read 2");
        (initiator, responder)
    }

    /// Channel: two frames of one plaintext differ (a new nonce each), and a frame opens once.
    fn channel_frames_are_unique_and_read_once() -> bool {
        let (mut alice, mut server) = channel(12);
        let first = alice.write(b"same").expect("write");
        let second = alice.write(b"same").expect("write");
        let opened = server.read(&first).is_ok();
        let replayed = server.read(&first).is_ok();
        first != second && opened && !replayed
    }

    /// Wire: a message whose declared length covers one byte after its last field is refused.
    fn trailing_bytes_refused() -> bool {
        let mut bytes = Message::FetchBundle { name: name("bob") }.encode();
        let declared = u32::from_be_bytes([bytes[2], bytes[3], bytes[4], bytes[5]]);
        assert_eq!(usize::try_from(declared).ok(), Some(bytes.len() - 6), "header layout");
        bytes.push(0);
        bytes[2..6].copy_from_slice(&(declared + 1).to_be_bytes());
        Message::decode(&bytes).is_err()
    }

    /// Delivers every frame between the server and the clients until none is left; returns the
    /// server's events. `clients[i]` is on link `i + 1`.
    fn pump(
        server: &mut Server,
        clients: &mut [Client],
        from: usize,
        frames: Vec<Vec<u8>>,
        r: &mut ChaCha20Rng,
    ) -> Vec<ServerEvent> {
        let mut events = Vec::new();
        let mut queue: Vec<(usize, Vec<u8>)> = frames.into_iter().map(|f| (from, f)).collect();
        while !queue.is_empty() {
            let (i, frame) = queue.remove(0);
            let link = LinkId(i as u64 + 1);
            let out = server.handle(link, &frame, r).expect("server");
            events.extend(out.events);
            for (to, bytes) in out.transmit {
                let j = usize::try_from(to.0 - 1).expect("link");
                let answer = clients[j].handle(&bytes, r).expect("client");
                queue.extend(answer.transmit.into_iter().map(|f| (j, f)));
            }
        }
        events
    }

    /// Server directory: Bob publishes; Alice and Carol each fetch his bundle; each gets another
    /// one-time prekey.
    fn one_time_prekey_handed_out_once() -> bool {
        let mut r = rng(13);
        let mut server = Server::new(PrivateKey::generate(&mut r));
        let names = ["alice", "bob", "carol"];
        let mut clients: Vec<Client> = names
            .iter()
            .map(|n| {
                let key = PrivateKey::generate(&mut r);
                Client::with_e2e(name(n), key, server.public_key(), Peers::generate(&mut r))
            })
            .collect();
        for i in 0..clients.len() {
            let init = clients[i].connect(&mut r).expect("connect");
            pump(&mut server, &mut clients, i, vec![init], &mut r);
        }
        let upload = clients[1].upload_bundle().expect("upload");
        pump(&mut server, &mut clients, 1, vec![upload], &mut r);
        let mut handed_out = Vec::new();
        for i in [0, 2] {
            let body = Body::new(b"hi".to_vec()).expect("body");
            let out = clients[i].send_e2e(&name("bob"), body, &mut r).expect("send");
            for event in pump(&mut server, &mut clients, i, out.transmit, &mut r) {
                if let ServerEvent::BundleFetched { one_time_prekey, .. } = event {
                    handed_out.push(one_time_prekey.expect("a one-time prekey was left"));
                }
            }
        }
        assert_eq!(handed_out.len(), 2, "both fetched");
        handed_out[0] != handed_out[1]
    }

    /// Bob's published bundle, as the server hands it out.
    fn fetched(bob: &mut Peers) -> FetchedBundle {
        let upload = bob.prepare_upload().expect("upload");
        FetchedBundle {
            identity: *upload.identity(),
            signed_prekey: *upload.signed_prekey(),
            one_time_prekey: upload.one_time_prekeys().first().copied(),
        }
    }

    /// X3DH: a bundle with Bob's real (even verified) identity but a signed prekey the server
    /// substituted, under Bob's old signature, is refused.
    fn substituted_signed_prekey_refused() -> bool {
        let mut r = rng(14);
        let mut bob = Peers::generate(&mut r);
        let mut bundle = fetched(&mut bob);
        bundle.signed_prekey.key = PrivateKey::generate(&mut r).public_key();
        verify_fetched(&name("bob"), &bundle, Some(&bob.identity())).is_err()
    }

    /// Ratchet: after a round trip, Alice sends m1 and m2; Bob receives m2, then m1 (from its
    /// skipped key), and refuses m1 replayed.
    fn late_message_accepted_once() -> bool {
        let mut r = rng(15);
        let (a, b) = (name("alice"), name("bob"));
        let mut alice = Peers::generate(&mut r);
        let mut bob = Peers::generate(&mut r);
        let bundle = fetched(&mut bob);
        alice.start_session(&a, &b, &bundle, &mut r).expect("start");
        let text = |s: &str| Body::new(s.as_bytes().to_vec()).expect("body");
        let first = alice.encrypt(&b, &text("a0"), &mut r).expect("a0");
        bob.decrypt(&b, &a, &first).expect("bob reads a0");
        let reply = bob.encrypt(&a, &text("b0"), &mut r).expect("b0");
        alice.decrypt(&a, &b, &reply).expect("alice reads b0");
        let m1 = alice.encrypt(&b, &text("a1"), &mut r).expect("a1");
        let m2 = alice.encrypt(&b, &text("a2"), &mut r).expect("a2");
        bob.decrypt(&b, &a, &m2).expect("bob reads a2");
        bob.decrypt(&b, &a, &m1).expect("bob reads a1 late");
        bob.decrypt(&b, &a, &m1).is_err()
    }

    /// Safety numbers: Alice's number with Bob's real identity differs from the one she would see
    /// with a key the server substituted for Bob's.
    fn safety_number_shows_key_substitution() -> bool {
        let mut r = rng(16);
        let (a, b) = (name("alice"), name("bob"));
        let alice = Peers::generate(&mut r).identity();
        let bob = Peers::generate(&mut r).identity();
        let forged = Peers::generate(&mut r).identity();
        SafetyNumber::new((&alice, &a), (&bob, &b))
            != SafetyNumber::new((&alice, &a), (&forged, &b))
    }

    /// Serializes the tests of this binary: each switches process-wide flaws on and off.
    static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

    fn assert_caught(catalog: &[Flaw]) {
        let _serial = SERIAL.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        for &flaw in catalog {
            match target(flaw) {
                Catch::Model(variant, attacker, bounds) => {
                    flaws::activate(&[]);
                    let clean = report::check(variant, attacker, bounds, 2, false).expect("setup");
                    assert!(
                        report::as_expected(std::slice::from_ref(&clean)),
                        "{variant} vs {attacker} unflawed"
                    );
                    assert!(!report::caught(&[clean]));
                    flaws::activate(&[flaw]);
                    let flawed = report::check(variant, attacker, bounds, 2, false).expect("setup");
                    flaws::activate(&[]);
                    assert!(report::caught(&[flawed]), "flaw {} not caught", flaw.name());
                }
                Catch::Test(holds) => assert_test_catches(flaw, holds),
            }
        }
    }

    fn assert_test_catches(flaw: Flaw, holds: fn() -> bool) {
        flaws::activate(&[]);
        assert!(holds(), "{}: the check fails unflawed", flaw.name());
        flaws::activate(&[flaw]);
        let caught = !holds();
        flaws::activate(&[]);
        assert!(caught, "flaw {} not caught by its test", flaw.name());
    }

    /// Each layer's direct test catches its flaw without the model (`keep-skipped-keys` through
    /// `Peers` alone, for example), also where the model reaches the flaw.
    #[test]
    fn direct_tests_catch_their_flaws() {
        let _serial = SERIAL.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let tested: Vec<(Flaw, fn() -> bool)> =
            Flaw::ALL.into_iter().filter_map(|f| direct(f).map(|t| (f, t))).collect();
        assert_eq!(tested.len(), 7, "{:?}", tested.iter().map(|(f, _)| f).collect::<Vec<_>>());
        for (flaw, holds) in tested {
            assert_test_catches(flaw, holds);
        }
    }

    /// The users' comparison of safety numbers in `e2e-verified`'s set-up pins both identities,
    /// and fails (nothing pinned) when the numbers ignore the peer's identity: each user then
    /// sees a number made of their own identity only, which differs from the other's.
    #[test]
    fn safety_numbers_compared_in_set_up_pin_only_when_equal() {
        let _serial = SERIAL.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let model = |flaw: &[Flaw]| {
            flaws::activate(flaw);
            let m = E2eModel::new(Variant::E2eVerified, Attacker::Server, SMALL).expect("setup");
            flaws::activate(&[]);
            m
        };
        assert!(model(&[]).verified);
        assert!(!model(&[Flaw::SafetyNumberOneIdentity]).verified);
        assert!(
            !E2eModel::new(Variant::E2eUnverified, Attacker::Server, SMALL).expect("s").verified
        );
    }

    /// The flaws caught on a hop cell or by a direct test only: fast enough for `cargo test` in
    /// debug.
    #[test]
    fn hop_and_layer_flaws_are_caught() {
        let fast: Vec<Flaw> = Flaw::ALL
            .into_iter()
            .filter(|&f| match target(f) {
                Catch::Model(variant, _, _) => variant == Variant::Hop,
                Catch::Test(_) => true,
            })
            .collect();
        // Four on hop cells (replay window, name binding, channel nonce, trailing bytes) and one
        // by a direct test only (small-order points).
        assert_eq!(fast.len(), 5, "{fast:?}");
        assert_caught(&fast);
    }

    /// The server-directory flaw, caught against the third client M (spec/MODEL.md §6 (d)): its
    /// cell is small enough for `cargo test` in debug.
    #[test]
    fn serving_a_one_time_prekey_twice_is_caught_against_m() {
        assert_caught(&[Flaw::ServeOneTimePrekeyTwice]);
    }

    /// The whole catalog; slow in debug: `cargo test --release -p e2e-model -- --include-ignored`.
    #[test]
    #[ignore = "slow in debug builds; run with --release -- --include-ignored"]
    fn every_seeded_flaw_is_caught_and_the_unflawed_protocol_passes() {
        assert!(Flaw::ALL.len() >= 12);
        assert_caught(&Flaw::ALL);
    }
}
