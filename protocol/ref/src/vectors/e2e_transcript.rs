//! `e2e_transcript.json`: whole e2e runs of Alice, the server and Bob (and Carol, in a run
//! whose script names her) from a seed (SPEC.md §10–§15):
//! every frame, every channel key, the X3DH handshake, every ratchet chain and message key, every
//! plaintext; then a malicious server's replayed and tampered envelopes and a network attacker's
//! replayed frame, with their expected rejections.

use serde_json::Value;

use super::hop_transcript::verify_transcript;
use super::run::{RunSpec, run};
use super::util::{fixed_bytes, fixed_key};
use super::{CaseResult, VectorError, file_head};
use crate::runner::{Party, Protocol, Step, default_script};
use e2e_protocol::e2e::envelope::{EnvelopeBody, RatchetMessage};
use e2e_protocol::e2e::identity::IdentityKeyPair;
use e2e_protocol::e2e::ratchet::{Header, MAX_SKIP, MAX_SKIPPED_KEYS};
use e2e_protocol::e2e::x3dh::PrekeyHeader;
use e2e_protocol::e2e::{
    MAX_ARCHIVED_SESSIONS, MAX_HELD_ONE_TIME_PREKEYS, MAX_ONE_TIME_PREKEYS, MAX_PEERS, MAX_PENDING,
    MAX_SKIPPED_KEYS_PER_CLIENT, ONE_TIME_PREKEYS_PER_UPLOAD, RETIRED_BASE_KEYS,
};
use e2e_protocol::suite::{PublicKey, Signature, SigningKey, VerifyingKey};
use e2e_protocol::wire::{
    Body, Envelope, FetchedBundle, IdentityPublic, Message, MessageId, Name, SignedPrekeyPublic,
};

const DESCRIPTION: &str = "A whole e2e run (SPEC.md §10–§15, §9): the default script of `e2e-ref run \
e2e` (seed 1) — both clients connect and publish bundles; Alice fetches Bob's bundle and sends a prekey \
message; Bob answers (the DH ratchet turns); Alice encrypts a message she submits only after the next \
one, so Bob receives two messages out of order; Bob answers; Bob goes offline and a message waits in his \
mailbox — then attacks. Cases are frames, as in hop_transcript.json; E2eSend and E2eDeliver cases add \
`e2e`: the parsed envelope, the index of its ratchet chain, the chain key and message key for its n, the \
AEAD key, nonce and associated data (AD || header), and the plaintext. `x3dh` gives Bob's view of the \
handshake (the DH outputs, SK and AD); `ratchet_chains` every DH ratchet step in order of creation (the \
owner's new ratchet key, the peer key it meets, dh_out, the root key before and after, the chain's first \
chain key). The frames of the script equal those `e2e-ref run e2e --json` prints.";

fn name(s: &str) -> Result<Name, VectorError> {
    Ok(Name::new(s)?)
}

/// A bundle for a `Bundle` nobody asked for: its content does not matter, since an unsolicited
/// `Bundle` is refused before it is validated (SPEC.md §15.3).
fn stale_bundle() -> FetchedBundle {
    FetchedBundle {
        identity: IdentityPublic {
            dh: PublicKey::from_bytes([9; 32]),
            sign: VerifyingKey::from_bytes([0x5a; 32]),
        },
        signed_prekey: SignedPrekeyPublic {
            id: 1,
            key: PublicKey::from_bytes([9; 32]),
            signature: Signature::from_bytes([0; 64]),
        },
        one_time_prekey: None,
    }
}

/// A prekey message claiming to come from a pinned peer under an identity the server made up: a
/// valid identity (its `id_sig` verifies), so only the pin can refuse it (SPEC.md §11.2, §14.2).
/// Its other fields do not matter: the pin is checked before any prekey or DH.
fn impostor_prekey_message() -> Result<Envelope, VectorError> {
    let identity = IdentityKeyPair::from_parts(
        fixed_key("e2e-transcript/impostor/ik"),
        SigningKey::from_seed(fixed_bytes("e2e-transcript/impostor/isk")),
    );
    let body = EnvelopeBody::Prekey {
        prekey: PrekeyHeader {
            identity: identity.public(),
            identity_signature: identity.binding_signature(),
            base_key: fixed_key("e2e-transcript/impostor/base-key").public_key(),
            signed_prekey_id: 1,
            one_time_prekey_id: None,
        },
        message: RatchetMessage {
            header: Header {
                dh: fixed_key("e2e-transcript/impostor/ratchet-key").public_key(),
                pn: 0,
                n: 0,
            },
            ciphertext: vec![0; 16],
        },
    };
    Ok(Envelope::new(body.encode())?)
}

/// A run with the usual start — both clients connect and publish their bundles — and then
/// `attacks`, on a server with §8's bounds and no content policy.
fn both_connected(
    id: &'static str,
    comment: &'static str,
    seed: u64,
    attacks: Vec<Step>,
) -> RunSpec {
    let (a, b) = (Party::Alice, Party::Bob);
    RunSpec {
        id,
        comment,
        seed,
        script: vec![Step::Connect(a), Step::Connect(b), Step::Upload(a), Step::Upload(b)],
        attacks,
        deny_word: None,
        server_limits: None,
    }
}

/// The run of SPEC.md §15.2's limits on one-time prekeys: Alice's connection keeps dying before
/// the answer to her `FetchBundle` arrives, so the server hands out one of Bob's one-time prekeys
/// per request — one per upload of Bob's, since she is the same requester.
fn prekeys_run() -> RunSpec {
    let (a, b) = (Party::Alice, Party::Bob);
    let lost_fetch = |then: Step| [Step::LoseNextFetchAnswer { party: a }, then];
    let mut attacks = Vec::new();
    attacks.extend(lost_fetch(Step::Send { from: a, text: "hello bob".to_owned() }));
    for _ in 0..4 {
        attacks.push(Step::Upload(b));
        attacks.extend(lost_fetch(Step::Connect(a)));
    }
    attacks.extend(lost_fetch(Step::Connect(a)));
    attacks.extend([
        Step::Connect(a),
        Step::Send { from: b, text: "hello alice".to_owned() },
        Step::Send { from: a, text: "at last".to_owned() },
    ]);
    both_connected(
        "e2e-prekeys-seed-2",
        "One-time prekeys at the server (SPEC.md §15.2). Both connect and publish bundles (Bob's \
         holds one-time prekeys 2..=11). Alice writes to Bob and asks for his bundle, but her connection \
         dies before the answer arrives: the server has handed out (and deleted) one-time prekey 2, which \
         is lost. Bob publishes his bundle again (nothing new in it: an upload all the same), Alice \
         reconnects and asks again (SPEC.md §15.3), and loses the answer again; four times over, so \
         one-time prekeys 2..=5 are gone. The fifth request takes prekey 6 and leaves 5, \
         PREKEYS_LOW_WATER: the server tells Bob (PrekeysLow 5, after the Bundle it sealed for Alice), \
         and Bob makes 10 more and uploads them (BundleStored 15). Alice's sixth request takes prekey 7 \
         (an upload of Bob's came between), and is lost too. Her seventh comes from a requester who \
         already took one of Bob's one-time prekeys since his last upload: the Bundle has none, and \
         Alice's session with Bob starts without one (no DH4, SPEC.md §11.3). Bob reads her message and \
         answers; she reads the answer and writes again.",
        2,
        attacks,
    )
}

/// The run of SPEC.md §11.3's one identity per peer and retired base keys: Alice starts again
/// with a new identity, and Bob's sessions with her old one are deleted.
fn identity_run() -> RunSpec {
    let (a, b) = (Party::Alice, Party::Bob);
    both_connected(
        "e2e-identity-seed-4",
        "One identity per peer (SPEC.md §11.3). Both connect and publish bundles; Alice starts a \
         session with Bob (prekey message, her id 1), he answers, she writes again (id 2). Then Alice \
         starts again from her account with a new e2e identity (a new installation: same name, channel \
         static key and message counter, new identity and prekeys, no sessions; call new_identity), \
         reconnects and publishes her new bundle (the server replaces the old one: a new IK), and \
         writes to Bob (id 3): she fetches his bundle — without a one-time prekey, since alice already \
         took one since Bob's last upload (§15.2) — and sends a prekey message under her new identity. \
         Bob accepts it: a new session whose identity differs from his sessions with alice, which are \
         deleted first, their base key retired (event IdentityChanged). So when the server delivers \
         Alice's first prekey message (id 1) again, under a new id, no session has its base key and \
         the base key is retired: ReplayedPrekeyMessage; her old ratchet message (id 2) again finds only \
         the new session, which does not open it (DecryptFailed). Bob answers under the new session and \
         Alice reads it. Then Alice starts again once more (a third identity) and publishes it, and Bob's \
         user, who compared it with Alice in person, pins it (call verify_peer, SPEC.md §14.2): Bob's \
         session with the second identity is deleted and its base key retired. The server delivers \
         that session's prekey message (id 3) again: it claims an identity other than the pinned one \
         and is refused before anything else (IdentityMismatch). Bob writes to alice: with no session \
         left, he asks for her bundle, which carries the pinned identity, starts a session and sends \
         a prekey message, which Alice reads; she answers.",
        4,
        vec![
            Step::Send { from: a, text: "hello bob".to_owned() },
            Step::Send { from: b, text: "hello alice".to_owned() },
            Step::Send { from: a, text: "how are you?".to_owned() },
            Step::Disconnect(a),
            Step::NewIdentity { party: a },
            Step::Connect(a),
            Step::Upload(a),
            Step::Send { from: a, text: "new phone, same alice".to_owned() },
            Step::ServerReplaysDelivery { to: b, id: 1, new_id: Some(100) },
            Step::ServerReplaysDelivery { to: b, id: 2, new_id: Some(101) },
            Step::Send { from: b, text: "welcome back".to_owned() },
            // Pinning deletes the sessions with another identity (SPEC.md §14.2).
            Step::Disconnect(a),
            Step::NewIdentity { party: a },
            Step::Connect(a),
            Step::Upload(a),
            Step::VerifyPeer { party: b, peer: a },
            Step::ServerReplaysDelivery { to: b, id: 3, new_id: Some(102) },
            Step::Send { from: b, text: "is this really you?".to_owned() },
            Step::Send { from: a, text: "it is".to_owned() },
        ],
    )
}

/// The run of SPEC.md §11.3's archived sessions: Alice and Bob start sessions with each other at
/// the same time and converge.
fn simultaneous_run() -> RunSpec {
    let (a, b) = (Party::Alice, Party::Bob);
    both_connected(
        "e2e-simultaneous-seed-5",
        "Simultaneous initiation (SPEC.md §11.3). Both connect and publish bundles; Alice and Bob \
         each write to the other before either message is delivered: both ask for the other's bundle, \
         both start a session and send a prekey message. Each accepts the other's prekey message as a \
         new session, which becomes current, and archives the session it initiated. Alice's next \
         message goes out in her current session (the one Bob initiated); at Bob it fails in his current \
         session (Alice's) and opens in the archived one, which becomes current again (a message of an \
         archived session opens and makes it current). Bob's answer goes out in that session, and Alice \
         reads it: both now use the session Bob initiated.",
        5,
        vec![
            Step::SendAtOnce { alice: "hi bob".to_owned(), bob: "hi alice".to_owned() },
            Step::Send { from: a, text: "we both wrote first".to_owned() },
            Step::Send { from: b, text: "and we agree now".to_owned() },
            Step::Send { from: a, text: "good".to_owned() },
        ],
    )
}

/// A valid bundle the server makes up for a name nobody registered: an identity and signed prekey
/// of its own (fixed keys), no one-time prekey. It passes validation (SPEC.md §10.3), so a client
/// that asked for the name's bundle starts a session with it (§11.1).
fn made_up_bundle() -> FetchedBundle {
    let identity = IdentityKeyPair::from_parts(
        fixed_key("e2e-transcript/made-up/ik"),
        SigningKey::from_seed(fixed_bytes("e2e-transcript/made-up/isk")),
    );
    let signed_prekey =
        identity.sign_prekey(1, fixed_key("e2e-transcript/made-up/spk").public_key());
    FetchedBundle { identity: identity.public(), signed_prekey, one_time_prekey: None }
}

/// The run of SPEC.md §11.3's bound on peers: the server makes up names and bundles until Alice
/// keeps sessions with `MAX_PEERS` names, then one more evicts her least recently active peer, and
/// when every peer is spared the next session is refused.
fn peers_run() -> Result<RunSpec, VectorError> {
    let (a, b) = (Party::Alice, Party::Bob);
    let mut attacks = vec![
        Step::Send { from: a, text: "hello bob".to_owned() },
        Step::Send { from: b, text: "hello alice".to_owned() },
    ];
    // Alice holds a session with bob; names 1..=MAX_PEERS + 1 of the crowd follow.
    for i in 1..=MAX_PEERS + 1 {
        let to = name(&format!("crowd{i:03}"))?;
        attacks.push(Step::ServerAnswersNextFetch {
            from: a,
            answer: Some(Message::Bundle { name: to.clone(), bundle: made_up_bundle() }),
        });
        attacks.push(Step::SendTo { from: a, to, text: "hi".to_owned() });
    }
    attacks.push(Step::Send { from: b, text: "still there?".to_owned() });
    Ok(RunSpec {
        id: "e2e-peers-seed-6",
        comment: "MAX_PEERS (SPEC.md §11.3). Both connect and publish bundles; Alice starts a session with \
         Bob, who answers: she has heard back, so bob is a peer she may evict. Then Alice writes to \
         crowd001, crowd002, …, names nobody registered: the server answers each FetchBundle with a \
         bundle it made up (one identity of its own, valid, without one-time prekey), Alice starts a \
         session and sends a prekey message, which the server refuses (UnknownRecipient). After \
         crowd255 she keeps sessions with MAX_PEERS = 256 names; the session with crowd256 evicts the \
         least recently active peer that is not spared — bob, since every crowd name is an initiated \
         session that has not been answered — and the session with crowd257 finds every peer spared: \
         TooManyPeers, and the waiting message is discarded (send_failed). Bob then writes to Alice in \
         his session: she has none with bob any more (NoSession).",
        seed: 6,
        script: vec![Step::Connect(a), Step::Connect(b), Step::Upload(a), Step::Upload(b)],
        attacks,
        deny_word: None,
        server_limits: None,
    })
}

/// The run of SPEC.md §10.2's bound on held one-time prekeys: Bob makes more than
/// `MAX_HELD_ONE_TIME_PREKEYS`, drops his oldest, and the server still hands one of them out.
fn held_prekeys_run() -> RunSpec {
    let (a, b) = (Party::Alice, Party::Bob);
    // Bob holds 10 one-time prekeys (2..=11); these make him hold MAX_HELD_ONE_TIME_PREKEYS + 1.
    let first = MAX_ONE_TIME_PREKEYS - ONE_TIME_PREKEYS_PER_UPLOAD;
    let second = MAX_HELD_ONE_TIME_PREKEYS - MAX_ONE_TIME_PREKEYS;
    both_connected(
        "e2e-held-prekeys-seed-7",
        "MAX_HELD_ONE_TIME_PREKEYS (SPEC.md §10.2). Both connect and publish bundles (Bob's one-time \
         prekeys 2..=11). Bob makes 90 more and uploads them: the server stores 100, MAX_ONE_TIME_PREKEYS \
         (BundleStored 100). He makes 100 more, 102..=201, and holds 200, MAX_HELD_ONE_TIME_PREKEYS; the \
         server, full, refuses the upload (BundleRefused TooManyPrekeys) and still holds 2..=101. He \
         makes one more, 202: he now holds one too many and drops his oldest, prekey 2 (the upload of 202 \
         is refused too). Alice writes to Bob: the server hands her prekey 2, the oldest it stores, and \
         Bob cannot open her prekey message (UnknownPrekey, nothing changes); nor her next one, which \
         repeats the prekey header since she has not heard back. Bob writes to Alice: he has no session \
         with her, fetches her bundle and starts one, which she accepts as a new session (her own, \
         unanswered, is archived); her answer goes out in Bob's session, and he reads it.",
        7,
        vec![
            Step::Replenish { party: b, count: first },
            Step::Replenish { party: b, count: second },
            Step::Replenish { party: b, count: 1 },
            Step::Send { from: a, text: "hello bob".to_owned() },
            Step::Send { from: a, text: "are you there?".to_owned() },
            Step::Send { from: b, text: "hello alice".to_owned() },
            Step::Send { from: a, text: "there you are".to_owned() },
        ],
    )
}

/// The run of SPEC.md §11.3's bound on retired base keys: Alice starts again with a new identity
/// `RETIRED_BASE_KEYS + 1` times, and each time Bob deletes his session with her previous identity
/// and retires its base key, so the first session's base key leaves his list.
fn retired_run() -> RunSpec {
    let (a, b) = (Party::Alice, Party::Bob);
    let mut attacks = vec![Step::Send { from: a, text: "hello bob".to_owned() }];
    for _ in 0..=RETIRED_BASE_KEYS {
        attacks.extend([
            Step::Disconnect(a),
            Step::NewIdentity { party: a },
            Step::Connect(a),
            Step::Send { from: a, text: "new phone, same alice".to_owned() },
        ]);
    }
    // Each of Alice's ids 1..=RETIRED_BASE_KEYS + 2 started a session at Bob.
    attacks.extend([
        Step::ServerReplaysDelivery { to: b, id: 1, new_id: Some(100) },
        Step::ServerReplaysDelivery { to: b, id: 2, new_id: Some(101) },
        Step::Send { from: b, text: "which phone is it now?".to_owned() },
    ]);
    both_connected(
        "e2e-retired-seed-8",
        "RETIRED_BASE_KEYS (SPEC.md §11.3). Both connect and publish bundles; Alice writes to Bob \
         (her id 1, a prekey message with Bob's one-time prekey 2). Then, 17 times over, Alice starts \
         again with a new identity (call new_identity), reconnects and writes to Bob (ids 2..=18): each \
         time she fetches his bundle (without a one-time prekey: alice took one since his last upload, \
         §15.2) and sends a prekey message under her new identity, and Bob deletes his session with her \
         previous identity, retiring its base key (IdentityChanged). After the 17th, Bob has retired \
         17 base keys and keeps the last 16: the first session's has left the list. The server delivers \
         Alice's first prekey message (id 1) again, under a new id: no session and no retired base key \
         matches, so it would start a new session, but the one-time prekey it names was deleted at its \
         first use (UnknownPrekey, nothing changes). Her second (id 2), whose base key is the oldest \
         still retired, is refused as a replay (ReplayedPrekeyMessage). Bob then answers in his \
         current session, and Alice, under her 18th identity, reads it.",
        8,
        attacks,
    )
}

/// The run of SPEC.md §11.3's bound on archived sessions: Alice loses her sessions but keeps her
/// identity, five times over, and each of her new sessions replaces Bob's current one, until the
/// oldest leaves his archive.
fn archive_run() -> RunSpec {
    let (a, b) = (Party::Alice, Party::Bob);
    let restart = |text: &str| {
        restart_without_sessions(a)
            .into_iter()
            .chain([Step::Send { from: a, text: text.to_owned() }])
    };
    let mut attacks = vec![
        Step::Send { from: a, text: "hello bob".to_owned() },
        Step::Send { from: b, text: "hello alice".to_owned() },
    ];
    // Sessions 2..=MAX_ARCHIVED_SESSIONS + 1 fill Bob's archive with the ones before them.
    for _ in 1..=MAX_ARCHIVED_SESSIONS {
        attacks.extend(restart("lost my chats, same alice"));
    }
    attacks.push(Step::ServerReplaysDelivery { to: b, id: 1, new_id: Some(100) });
    // One replacement more retires session 1, and session 2 is the oldest kept.
    attacks.extend(restart("lost them again"));
    attacks.extend([
        Step::ServerReplaysDelivery { to: b, id: 1, new_id: Some(101) },
        Step::ServerReplaysDelivery { to: b, id: 2, new_id: Some(102) },
        Step::Send { from: b, text: "which chat is this?".to_owned() },
    ]);
    both_connected(
        "e2e-archive-seed-9",
        "MAX_ARCHIVED_SESSIONS (SPEC.md §11.3). Both connect and publish bundles; Alice writes to \
         Bob (her id 1, a prekey message: session 1) and he answers. Then Alice restarts from her state \
         file without her sessions (call restore_state, peers = none: she keeps her identity and \
         prekeys, SPEC.md §17.2), reconnects and writes to Bob (id 2): with no session she fetches his \
         bundle (without a one-time prekey: alice took one since his last upload, §15.2) and sends a \
         prekey message with a new base key under the same identity. Bob takes it as a new session \
         (§11.3 rule 3), which becomes current, and archives session 1. Three times more (ids 3, 4, \
         5): Bob keeps session 5 and archives 4, 3, 2, 1 — MAX_ARCHIVED_SESSIONS = 4. The server \
         delivers Alice's first prekey message (id 1) again, under a new id: its base key is session \
         1's, which Bob still keeps (rule 1), and the session refuses the used key (Replayed). Alice \
         loses her sessions a fifth time and writes (id 6): session 6 is current, 5, 4, 3, 2 are \
         archived, and session 1, the oldest archived, is retired (its base key joins the retired \
         list). The same prekey message again now finds no session, and its retired base key makes \
         it a replay (ReplayedPrekeyMessage); Alice's second prekey message (id 2), of session 2, the \
         oldest still archived, is still routed to its session, which refuses the used key \
         (Replayed). Bob answers in session 6 and Alice reads it.",
        9,
        attacks,
    )
}

/// Gaps of `MAX_SKIP` that fill one session's skipped-key store at the recipient.
const GAPS_PER_SESSION: u32 = 2;
const _: () = assert!((GAPS_PER_SESSION * MAX_SKIP) as usize == MAX_SKIPPED_KEYS);

/// `party`, offline, restarts from its state file without its sessions (SPEC.md §17.2), and
/// reconnects.
fn restart_without_sessions(party: Party) -> [Step; 3] {
    [Step::Disconnect(party), Step::RestoreWithoutSessions { party }, Step::Connect(party)]
}

/// `sender`'s steps that make its peer store `MAX_SKIPPED_KEYS` skipped keys in each of
/// `sessions` new sessions: per session — after a restart without sessions, but for the first —
/// a message, then [`GAPS_PER_SESSION`] times `MAX_SKIP` held messages and a message after them.
/// `sender`'s held messages `1 + (k − 1) · 2 · MAX_SKIP ..` are its `k`-th session's.
fn skipped_key_sessions(sender: Party, sessions: u32) -> Vec<Step> {
    let send = |text: &str| Step::Send { from: sender, text: text.to_owned() };
    let mut steps = Vec::new();
    for session in 1..=sessions {
        if session > 1 {
            steps.extend(restart_without_sessions(sender));
        }
        steps.push(send(&format!("session {session}")));
        for _ in 0..GAPS_PER_SESSION {
            steps.push(Step::Hold { from: sender, count: MAX_SKIP });
            steps.push(send("after a gap"));
        }
    }
    steps
}

/// The run of SPEC.md §12.5's bound on a client's skipped keys: Alice leaves gaps of `MAX_SKIP`
/// in her sending chains — messages she encrypts and holds — until Bob stores
/// `MAX_SKIPPED_KEYS_PER_CLIENT` keys over five of her sessions, and one key more evicts the
/// oldest key of his oldest archived session with her.
fn skipped_keys_run() -> RunSpec {
    let a = Party::Alice;
    let send = |text: &str| Step::Send { from: a, text: text.to_owned() };
    // Four full sessions fill the client.
    const SESSIONS: u32 = 4;
    const _: () =
        assert!((SESSIONS * GAPS_PER_SESSION * MAX_SKIP) as usize == MAX_SKIPPED_KEYS_PER_CLIENT);
    let mut attacks = skipped_key_sessions(a, SESSIONS);
    // At the bound; one gap of one more key, in a fifth session, crosses it.
    // Held messages are numbered over the run: session k's first is (k - 1) · GAPS_PER_SESSION · MAX_SKIP + 1.
    let (held_1, held_2) = (1, GAPS_PER_SESSION * MAX_SKIP + 1);
    attacks.extend(restart_without_sessions(a));
    attacks.extend([
        send("session 5"),
        Step::Hold { from: a, count: 1 },
        send("one more"),
        Step::SubmitHeld { from: a, number: held_1 },
        Step::SubmitHeld { from: a, number: held_1 + 1 },
        Step::SubmitHeld { from: a, number: held_2 },
    ]);
    both_connected(
        "e2e-skipped-keys-seed-10",
        "MAX_SKIPPED_KEYS_PER_CLIENT (SPEC.md §12.5). Both connect and publish bundles; Alice writes \
         to Bob (session 1, n = 0), then encrypts 1000 messages (MAX_SKIP) and holds them (call \
         seal_e2e: held 1..=1000, n = 1..=1000), and writes again (n = 1001): Bob skips the gap and \
         stores 1000 keys. Again: held 1001..=2000 and a message at n = 2002, and Bob stores 2000 \
         keys for session 1 (MAX_SKIPPED_KEYS: none evicted). Alice restarts without her sessions \
         (call restore_state, peers = none), reconnects and does the same in a new session, which \
         replaces Bob's current one (SPEC.md §11.3); sessions 2, 3 and 4 (held 2001..=8000). Bob now \
         stores 8000 keys over four sessions with alice: MAX_SKIPPED_KEYS_PER_CLIENT, at the bound, \
         nothing evicted. In a fifth session Alice holds one message (held 8001, n = 1) and writes at \
         n = 2: Bob stores one key more, 8001, and evicts one — from the least recently active peer \
         (alice, his only one), her oldest archived session (session 1), its oldest key (held 1's). \
         Alice then sends held 1: no session of Bob's opens it, and the error is the current \
         session's (§11.3); held 2, whose key was kept, opens in session 1, which becomes current; \
         held 2001, of session 2, opens too.",
        10,
        attacks,
    )
}

/// The run of SPEC.md §12.5's order across peers: Bob stores skipped keys of Alice's sessions and
/// of Carol's, up to `MAX_SKIPPED_KEYS_PER_CLIENT`; Bob writes to Carol, who is then his most
/// recently active peer, and one key more from Alice evicts Carol's oldest key, since Alice's
/// message counts as her activity first.
fn skipped_peers_run() -> Result<RunSpec, VectorError> {
    let (a, b, c) = (Party::Alice, Party::Bob, Party::Carol);
    let send = |p: Party, text: &str| Step::Send { from: p, text: text.to_owned() };
    // Two full sessions of each sender fill the client.
    const SESSIONS: u32 = 2;
    const _: () = assert!(
        (2 * SESSIONS * GAPS_PER_SESSION * MAX_SKIP) as usize == MAX_SKIPPED_KEYS_PER_CLIENT
    );
    let mut attacks = skipped_key_sessions(a, SESSIONS);
    attacks.extend(skipped_key_sessions(c, SESSIONS));
    // At the bound; Alice starts a third session, Bob writes to Carol, and one key more from Alice
    // crosses the bound. Held messages are numbered per sender over the run.
    attacks.extend(restart_without_sessions(a));
    attacks.extend([
        send(a, "session 3"),
        Step::Hold { from: a, count: 1 },
        Step::SendTo { from: b, to: name("carol")?, text: "hello carol".to_owned() },
        send(a, "one more"),
        Step::SubmitHeld { from: c, number: 1 },
        Step::SubmitHeld { from: c, number: 2 },
        Step::SubmitHeld { from: a, number: 1 },
    ]);
    Ok(RunSpec {
        id: "e2e-skipped-peers-seed-11",
        comment: "MAX_SKIPPED_KEYS_PER_CLIENT across peers (SPEC.md §12.5): the least recently active \
         peer's keys go first. Three clients: alice, bob and carol (a third client, who writes to bob; \
         SPEC.md §17.2) connect, and Alice and Bob publish bundles. Alice writes to Bob (her session 1 \
         at Bob, n = 0), encrypts 1000 messages and holds them (call seal_e2e: held 1..=1000) and \
         writes again (n = 1001): Bob skips the gap and stores 1000 keys; again (held 1001..=2000): \
         2000 keys, MAX_SKIPPED_KEYS. She restarts without her sessions (call restore_state, peers = \
         none), reconnects and does the same in session 2 (held 2001..=4000), which replaces Bob's \
         current one. Then Carol does the same: her sessions 1 and 2 at Bob (her held 1..=4000). Bob \
         stores 8000 keys, MAX_SKIPPED_KEYS_PER_CLIENT: at the bound, nothing evicted. Alice restarts \
         again and writes in a third session (n = 0; a session start and a message: Alice is Bob's \
         most recently active peer) and holds one message (her held 4001, n = 1). Bob writes to Carol \
         in his current session with her, and she reads it: a message Bob sends is activity too \
         (SPEC.md §11.3), so Carol is now his most recently active peer. Alice writes at n = 2: Bob \
         stores one key more, 8001. The message is Alice's activity, and counts before the eviction: \
         Carol is the least recently active peer, and her oldest archived session's oldest key goes \
         (her held 1's) — had Alice's message counted only after the eviction, Alice's would have. \
         Carol then sends her held 1: its base key routes it to her session 1 (SPEC.md §11.3 rule 1), \
         which has no key for it (E2e.Ratchet.Replayed); her held 2, whose key was kept, opens; and \
         Alice's held 1, the oldest key of the other peer, opens too — an implementation that evicts \
         the most recently active peer's keys first, or the oldest keys of the client whoever their \
         peer, refuses it.",
        seed: 11,
        script: vec![
            Step::Connect(a),
            Step::Connect(b),
            Step::Connect(c),
            Step::Upload(a),
            Step::Upload(b),
        ],
        attacks,
        deny_word: None,
        server_limits: None,
    })
}

fn runs() -> Result<Vec<RunSpec>, VectorError> {
    let (a, b) = (Party::Alice, Party::Bob);
    let carol = name("carol")?;
    Ok(vec![
        RunSpec {
            id: "e2e-seed-1",
            comment: "The default e2e conversation, then: the server delivers Alice's last envelope (id 4) to Bob again \
         under a new id and under its own id (e2e ids are not checked, SPEC.md §5.3: the ratchet refuses \
         a used key, Replayed, either way); it replays the late message of the previous chain (id 3) and the first prekey \
         message (id 1) under new ids (their keys are gone: the old chain's ratchet step with a stale key \
         does not open them); a network attacker replays the last frame Bob received (the channel refuses \
         it); Alice sends a message of which the server first delivers a copy with a flipped byte (refused, \
         nothing changes) and then the genuine envelope (accepted); Bob answers, turning the ratchet again. \
         Then the server tries what remains: a hop Deliver to Bob claiming to be from alice (an e2e client \
         accepts no hop message: Unexpected); a NoBundle and a Bundle for bob to Alice, who asked for none \
         (Unexpected, before the bundle is even validated); Alice's last envelope (id 5) relabelled as \
         from carol (Bob has no session with carol: NoSession); her first prekey message (id 1) relabelled \
         as from carol (it would start a session with carol, but the one-time prekey it names was deleted \
         at its first use: UnknownPrekey); then Alice writes again and Bob reads it: nothing broke the session. Last, Alice writes to carol, \
         whom nobody registered: she asks for carol's bundle, the server answers NoBundle, and the waiting \
         message is discarded unencrypted (SendFailed, SPEC.md §15.3). Then three client calls, which cross \
         no link (cases call-NN, after the frame step they follow): Alice's user enters a wrong safety \
         number for bob (SafetyNumberMismatch, nothing pinned), then the right one (bob's identity is \
         pinned); Alice tries an e2e message to herself (SendToSelf, nothing sent); and Alice writes to Bob \
         again, under the pin. Last, the server forges a prekey message to Alice from bob under an identity \
         of its own, valid in itself (its id_sig verifies): Alice has pinned bob, so it is refused \
         (IdentityMismatch, before any prekey or DH, nothing changes); Bob then writes to Alice, who reads it. \
         Then the server answers Alice's request for carol's bundle with a bundle of its own that fails \
         validation: the frame is accepted, the bundle refused, and the waiting message discarded \
         (send_failed). Last, the server withholds its answer to her next request for carol's bundle: \
         Alice's next 15 messages to carol wait with the first (calls that cross no link), 16 in all \
         (MAX_PENDING), and the 17th is refused (PendingFull). Bob restarts from his \
         state file with his next prekey id set to 2^32 (every id assigned; SPEC.md §18, call \
         restore_state), reconnects, and cannot make another one-time prekey (PrekeyIdsExhausted, nothing \
         sent).",
            seed: 1,
            script: default_script(Protocol::E2e),
            attacks: vec![
                Step::ServerReplaysDelivery { to: b, id: 4, new_id: Some(100) },
                Step::ServerReplaysDelivery { to: b, id: 4, new_id: None },
                Step::ServerReplaysDelivery { to: b, id: 3, new_id: Some(101) },
                Step::ServerReplaysDelivery { to: b, id: 1, new_id: Some(102) },
                Step::ReplayLastFrame { to: b },
                Step::ServerTampersNextEnvelope { from: a, text: "one more thing".to_owned() },
                Step::Send { from: b, text: "got it".to_owned() },
                // What the server can still try at an e2e client (SPEC.md §15.3, §11.1).
                Step::ServerForges {
                    to: b,
                    message: Message::Deliver {
                        id: MessageId(6),
                        from: name("alice")?,
                        body: Body::new(b"pay carol".to_vec())?,
                    },
                },
                Step::ServerForges { to: a, message: Message::NoBundle { name: name("bob")? } },
                Step::ServerForges {
                    to: a,
                    message: Message::Bundle { name: name("bob")?, bundle: stale_bundle() },
                },
                Step::ServerRelabelsDelivery { to: b, id: 5, as_from: name("carol")? },
                Step::ServerRelabelsDelivery { to: b, id: 1, as_from: name("carol")? },
                Step::Send { from: a, text: "still here".to_owned() },
                Step::SendTo { from: a, to: name("carol")?, text: "anyone there?".to_owned() },
                // Calls that cross no link (SPEC.md §14.2, §15.3).
                Step::VerifySafetyNumber { party: a, peer: b, wrong: true },
                Step::VerifySafetyNumber { party: a, peer: b, wrong: false },
                Step::SendTo { from: a, to: name("alice")?, text: "note to self".to_owned() },
                Step::Send { from: a, text: "verified".to_owned() },
                // Under the pin, a prekey message from bob with another identity (SPEC.md §11.2, §14.2).
                Step::ServerForges {
                    to: a,
                    message: Message::E2eDeliver {
                        id: MessageId(7),
                        from: name("bob")?,
                        envelope: impostor_prekey_message()?,
                    },
                },
                Step::Send { from: b, text: "still me".to_owned() },
                // A bundle the client asked for and refuses (SPEC.md §15.3): SendFailed.
                Step::ServerAnswersNextFetch {
                    from: a,
                    answer: Some(Message::Bundle { name: name("carol")?, bundle: stale_bundle() }),
                },
                Step::SendTo {
                    from: a,
                    to: name("carol")?,
                    text: "carol, is that you?".to_owned(),
                },
                // MAX_PENDING messages wait for one bundle; the next is refused (SPEC.md §15.3).
                Step::ServerAnswersNextFetch { from: a, answer: None },
                // The end of the prekey id space (SPEC.md §10.2), reached through a restored state.
                Step::Disconnect(b),
                Step::RestoreWithNextPrekeyId { party: b, next_id: 1 << 32 },
                Step::Connect(b),
                Step::Replenish { party: b, count: 1 },
            ]
            .into_iter()
            .chain((1..=MAX_PENDING + 1).map(|i| Step::SendTo {
                from: a,
                to: carol.clone(),
                text: format!("waiting {i}"),
            }))
            .collect(),
            deny_word: None,
            server_limits: None,
        },
        prekeys_run(),
        identity_run(),
        simultaneous_run(),
        peers_run()?,
        held_prekeys_run(),
        retired_run(),
        archive_run(),
        skipped_keys_run(),
        skipped_peers_run()?,
    ])
}

/// Builds `e2e_transcript.json`.
///
/// # Errors
/// A run that fails (a role refused a frame the script made, or a model key does not open a real
/// frame): a bug, reported as [`VectorError`].
pub fn generate() -> Result<Value, VectorError> {
    let mut out = Vec::new();
    for spec in runs()? {
        out.push(run(Protocol::E2e, &spec)?);
    }
    let mut file = file_head("e2e_transcript", DESCRIPTION);
    file.insert("runs".to_owned(), Value::Array(out));
    Ok(Value::Object(file))
}

/// Re-runs every run of `e2e_transcript.json` and compares it case by case.
#[must_use]
pub fn verify(file: &Value) -> Vec<CaseResult> {
    match runs() {
        Ok(runs) => verify_transcript(file, Protocol::E2e, &runs),
        Err(e) => vec![CaseResult::from_check("(runs)", Err(e))],
    }
}
