//! The runner's observer: it sees every draw and every delivery of a run, exactly as the transcript
//! records them, and observing changes nothing. The attack steps' refusals are checked in depth by the
//! transcript vectors (tests/vectors.rs); here, only that an impossible one fails the run.

use e2e_protocol::e2e::E2eError;
use e2e_protocol::error::MisuseError;
use e2e_protocol::hop::AllowAll;
use e2e_protocol::roles::ServerLimits;
use e2e_protocol::wire::Name;
use e2e_ref::{
    Delivery, Draw, Event, Observer, Party, Protocol, Purpose, RunConfig, RunError, Step,
    default_script, run, run_observed,
};

#[derive(Default)]
struct Seen {
    draws: Vec<(usize, Purpose)>,
    events: Vec<Event>,
    dropped: usize,
}

impl Observer for Seen {
    fn drew(&mut self, draw: &Draw<'_>) {
        assert_eq!(draw.bytes.len(), 32, "every draw is a key");
        self.draws.push((draw.index, draw.purpose.clone()));
    }

    fn delivered(&mut self, delivery: &Delivery<'_>) {
        assert_eq!(delivery.event.frame_hex, hex::encode(delivery.frame));
        assert_eq!(delivery.event.error.is_some(), delivery.outcome.is_err());
        if delivery.outcome.is_ok_and(|h| h.dropped().is_some()) {
            self.dropped += 1;
        }
        self.events.push(delivery.event.clone());
    }
}

fn config(protocol: Protocol, mitm: bool, script: Vec<Step>) -> RunConfig<AllowAll> {
    let limits = ServerLimits::default();
    RunConfig { protocol, seed: 5, script, policy: AllowAll, mitm, verified: false, limits }
}

#[test]
fn the_observer_sees_the_transcript_and_changes_nothing() {
    for (protocol, mitm) in [(Protocol::Hop, false), (Protocol::E2e, false), (Protocol::E2e, true)]
    {
        let config = config(protocol, mitm, default_script(protocol));
        let mut seen = Seen::default();
        let observed = run_observed(&config, &mut seen).unwrap();
        assert_eq!(observed, run(&config).unwrap(), "{protocol:?} mitm={mitm}");
        assert_eq!(seen.events, observed.events);
        let indices: Vec<usize> = seen.draws.iter().map(|(i, _)| *i).collect();
        assert_eq!(indices, (0..seen.draws.len()).collect::<Vec<_>>());
        let statics: Vec<Purpose> = seen.draws.iter().take(3).map(|(_, p)| p.clone()).collect();
        assert_eq!(statics, [Party::Server, Party::Alice, Party::Bob].map(Purpose::ChannelStatic));
        let mitm_keys = seen.draws.iter().filter(|(_, p)| *p == Purpose::ManInTheMiddle).count();
        assert_eq!(mitm_keys > 0, mitm);
        assert_eq!(seen.dropped, 0, "an honest run drops nothing");
    }
}

/// Carol takes part only in a run whose script names her, and draws after everything Alice and Bob
/// drew at the start: a run without her draws exactly what it would if she did not exist. She
/// writes to Bob.
#[test]
fn carol_draws_after_alice_and_bob_only_in_a_run_that_names_her_and_writes_to_bob() {
    let (a, b, c) = (Party::Alice, Party::Bob, Party::Carol);
    for (protocol, initial) in [(Protocol::Hop, 3), (Protocol::E2e, 3 + 2 * 13)] {
        let draws = |script: Vec<Step>| {
            let mut seen = Seen::default();
            let transcript = run_observed(&config(protocol, false, script), &mut seen).unwrap();
            (seen.draws.into_iter().map(|(_, p)| p).collect::<Vec<_>>(), transcript)
        };
        let (without, _) = draws(vec![Step::Connect(a), Step::Connect(b)]);
        let mut script = vec![Step::Connect(a), Step::Connect(b), Step::Connect(c)];
        if protocol == Protocol::E2e {
            script.push(Step::Upload(b));
        }
        script.push(Step::Send { from: c, text: "hi bob".to_owned() });
        let (with, transcript) = draws(script);
        assert_eq!(with[..initial], without[..initial], "{protocol:?}");
        assert_eq!(with[initial], Purpose::ChannelStatic(c));
        let carol_identity = with
            .iter()
            .filter(|p| {
                matches!(
                    p,
                    Purpose::IdentityKey(Party::Carol)
                        | Purpose::IdentitySeed(Party::Carol)
                        | Purpose::SignedPrekey { party: Party::Carol, .. }
                        | Purpose::OneTimePrekey { party: Party::Carol, .. }
                )
            })
            .count();
        let expected = if protocol == Protocol::E2e { 13 } else { 0 };
        assert_eq!(carol_identity, expected, "{protocol:?}");
        if protocol == Protocol::E2e {
            assert_eq!(with[initial + 1], Purpose::IdentityKey(c));
        }
        assert!(!without.iter().any(|p| p.to_string().starts_with("carol")), "{protocol:?}");
        assert_eq!(transcript.summary.delivered, ["hi bob"], "{protocol:?}");
    }
}

#[test]
fn attack_steps_are_refused_by_their_receivers_and_impossible_ones_fail_the_run() {
    let (a, b) = (Party::Alice, Party::Bob);
    let mut script = default_script(Protocol::Hop);
    script.extend([
        Step::ReplayLastFrame { to: a },
        Step::TamperNextFrame { from: a, text: "one more thing".to_owned() },
        Step::ServerReplaysDelivery { to: b, id: 4, new_id: None },
    ]);
    let mut seen = Seen::default();
    let transcript =
        run_observed(&config(Protocol::Hop, false, script.clone()), &mut seen).unwrap();
    let refused = transcript.events.iter().filter(|e| e.error.is_some()).count();
    assert_eq!((refused, seen.dropped), (2, 1), "replayed and tampered frames, replayed Deliver");
    assert!(
        seen.events.last().is_some_and(|e| e.note.as_deref().is_some_and(|n| n.contains("#4")))
    );

    let never = |step: Step, protocol: Protocol| {
        let mut script = default_script(protocol);
        script.push(step);
        run(&config(protocol, false, script)).unwrap_err()
    };
    let not_connected = RunError::from(MisuseError::NotConnected);
    let replay = Step::ServerReplaysDelivery { to: b, id: 99, new_id: None };
    assert_eq!(never(replay, Protocol::Hop), not_connected);
    let tamper = Step::ServerTampersNextEnvelope { from: a, text: "x".to_owned() };
    assert_eq!(never(tamper, Protocol::Hop), MisuseError::NoE2eIdentity.into());
    // A safety number is read off a session: without one there is nothing to enter.
    let verify = Step::VerifySafetyNumber { party: a, peer: b, wrong: false };
    let early = vec![Step::Connect(a), Step::Connect(b), verify.clone()];
    let no_session = E2eError::NoSession { name: Name::new("bob").unwrap() };
    assert_eq!(
        run(&config(Protocol::E2e, false, early)).unwrap_err(),
        RunError::Role(no_session.into())
    );
    assert_eq!(never(verify, Protocol::Hop), MisuseError::NoE2eIdentity.into());
    // A restart that would move a counter back is the script's error, not a connection's.
    let back = Step::RestoreWithLastId { party: b, last_id: 0 };
    let mut script = default_script(Protocol::Hop);
    script.extend([Step::Disconnect(b), back]);
    assert_eq!(
        run(&config(Protocol::Hop, false, script)).unwrap_err(),
        RunError::BadRestart("last_id below the client's own")
    );
    // Sessions to drop need an e2e client, and one that is offline (a restart, SPEC.md §17.2).
    let forget = Step::RestoreWithoutSessions { party: b };
    let mut script = default_script(Protocol::Hop);
    script.extend([Step::Disconnect(b), forget.clone()]);
    assert_eq!(
        run(&config(Protocol::Hop, false, script)).unwrap_err(),
        RunError::BadRestart("sessions of a client without e2e state")
    );
    assert_eq!(never(forget, Protocol::E2e), RunError::BadRestart("the client is not offline"));
    // Held messages are e2e, and only a held one can be submitted, once.
    assert_eq!(
        never(Step::Hold { from: a, count: 1 }, Protocol::Hop),
        MisuseError::NoE2eIdentity.into()
    );
    assert_eq!(never(Step::SubmitHeld { from: a, number: 1 }, Protocol::E2e), not_connected);
    let mut script = default_script(Protocol::E2e);
    script.extend([
        Step::Hold { from: a, count: 2 },
        Step::SubmitHeld { from: a, number: 2 },
        Step::SubmitHeld { from: a, number: 1 },
    ]);
    let transcript = run(&config(Protocol::E2e, false, script.clone())).unwrap();
    assert!(transcript.events.iter().all(|e| e.error.is_none()), "a gap of one, then its message");
    script.push(Step::SubmitHeld { from: a, number: 2 });
    assert_eq!(run(&config(Protocol::E2e, false, script)).unwrap_err(), not_connected);
    // Nothing held at all: number 0 is none either.
    assert_eq!(never(Step::SubmitHeld { from: a, number: 0 }, Protocol::E2e), not_connected);
}

/// An observer that does not narrate safety numbers.
struct Quiet;

impl Observer for Quiet {
    fn narrates_safety_numbers(&self) -> bool {
        false
    }
}

#[test]
fn an_observer_may_spare_the_account_its_safety_numbers_and_nothing_else_changes() {
    for mitm in [false, true] {
        let config = config(Protocol::E2e, mitm, default_script(Protocol::E2e));
        let told = run(&config).unwrap();
        let quiet = run_observed(&config, &mut Quiet).unwrap();
        assert_eq!(quiet.summary, told.summary, "the summary's numbers are computed either way");
        assert_eq!(quiet.events.len(), told.events.len());
        let mut spared = 0;
        for (q, t) in quiet.events.iter().zip(&told.events) {
            let (Some(q_read), Some(t_read)) = (&q.read, &t.read) else {
                assert_eq!(q, t);
                continue;
            };
            if q_read == t_read {
                assert_eq!(q, t);
                continue;
            }
            // The one difference: "…started (…); safety number D D …" against "…started (…)".
            let (started, rest) = t_read.split_once("; safety number ").unwrap();
            assert!(started.contains(" started ("), "{t_read}");
            assert_eq!(q_read, &format!("{started}{}", &rest[71..]), "12 groups of 5 digits");
            spared += 1;
        }
        assert_eq!(spared, 2, "mitm={mitm}: both sides start one session");
    }
}
