//! `hop_transcript.json`: whole hop runs of Alice, the server and Bob (and Carol, in a run
//! whose script names her) from a seed (SPEC.md §5, §9):
//! every frame on every link, every RNG draw, every channel key and nonce, every plaintext message;
//! then a network attacker's replayed and tampered frames and a server's replayed delivery, with their
//! expected rejections.

use serde_json::Value;

use super::run::{RunSpec, run, verify_run};
use super::{CaseResult, VectorError, file_head};
use crate::runner::{Party, Protocol, Step, default_script};
use e2e_protocol::e2e::MAX_PEERS;
use e2e_protocol::roles::{MAILBOX_CAPACITY, MAX_ACCOUNTS, MAX_QUEUED_BYTES, ServerLimits};
use e2e_protocol::wire::{Body, Message, MessageId, Name};

const DESCRIPTION: &str = "A whole hop run (SPEC.md §5, §9): the default script of `e2e-ref run hop` \
(seed 1) — both clients connect, talk both ways, Bob goes offline and a message waits in his mailbox — \
then attacks. Each case is one frame crossing one link, in order: its bytes, the link, for handshake \
frames the payload, for transport frames the direction, key, counter, nonce, plaintext and decoded \
message, and the receiver's verdict (`result`, and `error` with the SPEC.md §7.1 class when it refused \
the frame). `rng_draws` lists every 32-byte value drawn from the seeded RNG, in order, with what it \
became; `links` the handshake hash and Split() keys of each channel (k1 carries the client's frames). \
The frames of the script equal those `e2e-ref run hop --json` prints.";

fn alice() -> Result<Name, VectorError> {
    Ok(Name::new("alice")?)
}

/// The runs of the file.
fn runs() -> Result<Vec<RunSpec>, VectorError> {
    let (a, b) = (Party::Alice, Party::Bob);
    Ok(vec![
        RunSpec {
            id: "hop-seed-1",
            comment: "The default hop conversation, then: a network attacker replays the last frame Alice received \
         (it does not open: the counter moved on); Alice sends one more message (her id 5) of which the attacker first \
         delivers a copy with one bit flipped (refused), then the genuine frame; the server seals that \
         Deliver to Bob a second time under the same id (Bob's replay window refuses it); Bob answers. Then the \
         server's refusals as behaviour: a network attacker delivers Alice's HandshakeInit again on her \
         open link (the server refuses a handshake on a link with a channel: Unexpected, nothing changes); \
         Alice sends to carol, whom nobody registered (Reject UnknownRecipient); Bob goes offline and Alice \
         sends him 65 messages: 64 are queued (Ack Queued), the 65th does not fit his mailbox (Reject \
         MailboxFull); Bob reconnects, receives the 64 in order, and answers. Last, the server, which can \
         forge anything in hop, shows what Bob's replay window does (SPEC.md §5.3): a Deliver from alice \
         with id 0 (OutOfWindow); one with id 2^64 - 1 (accepted: the window moves there, and alice's \
         real ids are silenced — the hop trade-off of §16.1); id 5 again (OutOfWindow); id 2^64 - 65 (64 \
         behind: OutOfWindow); id 2^64 - 64 (63 behind, not seen: accepted); and id 5 relabelled as from \
         carol (a sender Bob has no window for: accepted — the server vouches for the name). Then \
         registrations the server refuses (SPEC.md §5.1), each on a new link with Bob's static key: \
         Register alice (a name bound to another key: Refused NameTaken), Ready (a message that is not a \
         registration: Refused NotARegistration), Register mallory (Bob's key is bound to bob: Refused \
         KeyInUse); Bob connects normally, as bob, and writes to Alice, who reads it; a network attacker \
         sends a copy of that transport frame as the first frame of a new link (no channel there: \
         Unexpected), and Bob reconnects. Last, the server answers \
         Alice's reconnection with Welcome mallory: she refuses it (WrongName) and stays offline. A network \
         attacker replays her HandshakeInit on a new link: the server answers Welcome (which the attacker \
         cannot read) and the link stays unconfirmed, so Bob's next message to alice is not sent there but \
         queued (Ack Queued); when Alice really connects, the attacker's link closes and she receives it \
         from her mailbox at Ready. Bob restarts from his state file \
         with the last id he used set to 2^64 - 2 (SPEC.md §18; call restore_state), reconnects, sends a \
         message with id 2^64 - 1, and cannot send another (IdsExhausted, nothing sent). Then the \
         server shows Bob's bound on replay windows (MAX_PEERS = 256, SPEC.md §5.3): Delivers from 255 new \
         senders, each accepted with a fresh window, so Bob holds 257 senders' worth and evicts the least \
         recently accepted, alice's; carol's window is kept (her id 5 again: Replayed), while alice's id \
         2^64 - 1, accepted before, is accepted again under a fresh window.",
            seed: 1,
            script: default_script(Protocol::Hop),
            attacks: vec![
                Step::ReplayLastFrame { to: a },
                Step::TamperNextFrame { from: a, text: "one more thing".to_owned() },
                Step::ServerReplaysDelivery { to: b, id: 5, new_id: None },
                Step::Send { from: b, text: "got it".to_owned() },
                // The server's refusals as behaviour (SPEC.md §5.1, §5.2, §5.4).
                Step::ReplayHandshakeInit { of: a },
                Step::SendTo { from: a, to: Name::new("carol")?, text: "anyone there?".to_owned() },
                Step::Disconnect(b),
            ]
            .into_iter()
            .chain(
                (1..=MAILBOX_CAPACITY + 1)
                    .map(|i| Step::Send { from: a, text: format!("queued {i}") }),
            )
            .chain([
                Step::Connect(b),
                Step::Send { from: b, text: "all 64 arrived".to_owned() },
                // Bob's window for alice now holds ids up to 70; the server forges ids outside it.
                Step::ServerForges {
                    to: b,
                    message: Message::Deliver {
                        id: MessageId(0),
                        from: alice()?,
                        body: Body::new(b"id zero".to_vec())?,
                    },
                },
                Step::ServerForges {
                    to: b,
                    message: Message::Deliver {
                        id: MessageId(u64::MAX),
                        from: alice()?,
                        body: Body::new(b"far ahead".to_vec())?,
                    },
                },
                Step::ServerReplaysDelivery { to: b, id: 5, new_id: None },
                Step::ServerReplaysDelivery { to: b, id: 5, new_id: Some(u64::MAX - 64) },
                Step::ServerReplaysDelivery { to: b, id: 5, new_id: Some(u64::MAX - 63) },
                Step::ServerRelabelsDelivery { to: b, id: 5, as_from: Name::new("carol")? },
                // Registrations the server refuses (SPEC.md §5.1), by Bob's software misbehaving.
                Step::Disconnect(b),
                Step::RegisterWith { party: b, payload: Message::Register { name: alice()? } },
                Step::RegisterWith { party: b, payload: Message::Ready },
                Step::RegisterWith {
                    party: b,
                    payload: Message::Register { name: Name::new("mallory")? },
                },
                Step::Connect(b),
                Step::Send { from: b, text: "back as bob".to_owned() },
                // A transport frame as the first frame of a link (SPEC.md §5.2).
                Step::Disconnect(b),
                Step::ReplayOnNewLink { of: b },
                Step::Connect(b),
                // A server that welcomes Alice under another name (SPEC.md §5.1 step 4).
                Step::Disconnect(a),
                Step::ServerWelcomesAs { to: a, name: Name::new("mallory")? },
                Step::Connect(a),
                // Key confirmation (SPEC.md §5.1): a replayed HandshakeInit gets an unconfirmed link.
                Step::Disconnect(a),
                Step::ReplayHandshakeOnNewLink { of: a },
                Step::Send { from: b, text: "are you there, alice?".to_owned() },
                Step::Connect(a),
                // The end of the id space (SPEC.md §5.3), reached through a restored state (§18).
                Step::Disconnect(b),
                Step::RestoreWithLastId { party: b, last_id: u64::MAX - 1 },
                Step::Connect(b),
                Step::SendTo { from: b, to: alice()?, text: "the last id".to_owned() },
                Step::SendTo { from: b, to: alice()?, text: "one too many".to_owned() },
            ])
            // Bob keeps windows for alice and carol; 255 more senders fill MAX_PEERS and the 256th
            // new window evicts the least recently accepted one, alice's (SPEC.md §5.3).
            .chain(
                (1..MAX_PEERS)
                    .map(|i| {
                        Ok(Step::ServerForges {
                            to: b,
                            message: Message::Deliver {
                                id: MessageId(1),
                                from: Name::new(&format!("sender-{i:03}"))?,
                                body: Body::new(b"hello".to_vec())?,
                            },
                        })
                    })
                    .collect::<Result<Vec<_>, VectorError>>()?,
            )
            .chain([
                // carol's window is still kept: her id 5 again is a replay.
                Step::ServerForges {
                    to: b,
                    message: Message::Deliver {
                        id: MessageId(5),
                        from: Name::new("carol")?,
                        body: Body::new(b"one more thing".to_vec())?,
                    },
                },
                // alice's was evicted: an id Bob accepted from her is accepted again.
                Step::ServerForges {
                    to: b,
                    message: Message::Deliver {
                        id: MessageId(u64::MAX),
                        from: alice()?,
                        body: Body::new(b"far ahead".to_vec())?,
                    },
                },
            ])
            .collect(),
            deny_word: None,
            server_limits: None,
        },
        RunSpec {
            id: "hop-policy-seed-2",
            comment: "A server with the content policy DenyWord(swordfish) (SPEC.md §5.5): both connect; Alice's \
         first message passes; her second contains the word, in another case (\"SwordFish\": the match is \
         ASCII case-insensitive), and is refused with Reject Policy — only Alice learns it, Bob sees \
         nothing; her third passes.",
            seed: 2,
            script: vec![Step::Connect(a), Step::Connect(b)],
            attacks: vec![
                Step::Send { from: a, text: "is the vault open?".to_owned() },
                Step::Send { from: a, text: "the password is SwordFish".to_owned() },
                Step::Send { from: a, text: "never mind".to_owned() },
            ],
            deny_word: Some("swordfish"),
            server_limits: None,
        },
        RunSpec {
            id: "hop-confirmation-seed-3",
            comment: "Key confirmation with the client online (SPEC.md §5.1): both connect; a network attacker \
         replays Alice's HandshakeInit on a new link while Alice is connected. The server answers Welcome \
         there (the attacker cannot read it) and the new link stays unconfirmed: it displaces nothing, \
         so Bob's next message to alice is sealed on Alice's confirmed link (Ack Relayed) and she reads \
         it, and she answers on it. Alice then reconnects: the attacker's link is closed first, and Bob's \
         next message reaches her new link.",
            seed: 3,
            script: vec![Step::Connect(a), Step::Connect(b)],
            attacks: vec![
                Step::ReplayHandshakeOnNewLink { of: a },
                Step::Send { from: b, text: "are you still there, alice?".to_owned() },
                Step::Send { from: a, text: "still here".to_owned() },
                Step::Disconnect(a),
                Step::Connect(a),
                Step::Send { from: b, text: "and now?".to_owned() },
            ],
            deny_word: None,
            server_limits: None,
        },
        RunSpec {
            id: "hop-queue-bound-seed-4",
            comment: "MAX_QUEUED_BYTES (SPEC.md §5.4) on a server whose mailboxes hold 104 bytes in all \
         (`server_limits`): each queued message counts 49 + 3 bytes. Both connect; Bob goes offline; \
         Alice's \"one\" and \"two\" are queued (Ack Queued), which fills the server to its bound exactly; \
         \"six\" would exceed it (Reject ServerFull, refused to its sender, never dropped silently). Bob \
         reconnects and receives the two in order, which empties the mailboxes; he goes offline again \
         and Alice's \"ten\" is queued in the room they left, then delivered when he connects.",
            seed: 4,
            script: vec![Step::Connect(a), Step::Connect(b)],
            attacks: vec![
                Step::Disconnect(b),
                Step::Send { from: a, text: "one".to_owned() },
                Step::Send { from: a, text: "two".to_owned() },
                Step::Send { from: a, text: "six".to_owned() },
                Step::Connect(b),
                Step::Disconnect(b),
                Step::Send { from: a, text: "ten".to_owned() },
                Step::Connect(b),
            ],
            deny_word: None,
            server_limits: Some(ServerLimits {
                max_accounts: MAX_ACCOUNTS,
                max_queued_bytes: 2 * (e2e_protocol::roles::QUEUED_OVERHEAD + 3),
            }),
        },
        RunSpec {
            id: "hop-accounts-seed-5",
            comment: "MAX_ACCOUNTS (SPEC.md §5.1) on a server that binds one name (`server_limits`): Alice \
         connects and is bound; Bob's registration finds the server full (Refused ServerFull) and he \
         stays offline, bound to nothing, so Alice's message to him is refused (Reject UnknownRecipient). \
         Alice reconnects: her name is bound already, so the full server welcomes her again.",
            seed: 5,
            script: vec![Step::Connect(a), Step::Connect(b)],
            attacks: vec![
                Step::Send { from: a, text: "anyone there?".to_owned() },
                Step::Disconnect(a),
                Step::Connect(a),
            ],
            deny_word: None,
            server_limits: Some(ServerLimits {
                max_accounts: 1,
                max_queued_bytes: MAX_QUEUED_BYTES,
            }),
        },
    ])
}

/// Builds `hop_transcript.json`.
///
/// # Errors
/// A run that fails (a role refused a frame the script made, or a model key does not open a real
/// frame): a bug, reported as [`VectorError`].
pub fn generate() -> Result<Value, VectorError> {
    let mut out = Vec::new();
    for spec in runs()? {
        out.push(run(Protocol::Hop, &spec)?);
    }
    let mut file = file_head("hop_transcript", DESCRIPTION);
    file.insert("runs".to_owned(), Value::Array(out));
    Ok(Value::Object(file))
}

/// Re-runs every run of `hop_transcript.json` and compares it case by case.
#[must_use]
pub fn verify(file: &Value) -> Vec<CaseResult> {
    match runs() {
        Ok(runs) => verify_transcript(file, Protocol::Hop, &runs),
        Err(e) => vec![CaseResult::from_check("(runs)", Err(e))],
    }
}

/// Shared by both transcript files: re-runs each run and compares.
pub(crate) fn verify_transcript(
    file: &Value,
    protocol: Protocol,
    runs: &[RunSpec],
) -> Vec<CaseResult> {
    let Some(file_runs) = file["runs"].as_array() else {
        return vec![CaseResult::from_check("(file)", Err(VectorError::malformed("runs")))];
    };
    let mut results = Vec::new();
    for file_run in file_runs {
        let id = file_run["id"].as_str().unwrap_or("");
        let Some(spec) = runs.iter().find(|r| r.id == id) else {
            results.push(CaseResult::from_check(id, Err(VectorError::malformed("unknown run id"))));
            continue;
        };
        match run(protocol, spec) {
            Ok(fresh) => results.extend(verify_run(file_run, &fresh)),
            Err(e) => results.push(CaseResult::from_check(id, Err(e))),
        }
    }
    results
}
