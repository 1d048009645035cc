//! `spec/vectors/COVERAGE.md`: which vector cases exercise each check SPEC.md requires.
//!
//! Two tables, both generated from the vector files themselves, so they cannot drift from them:
//!
//! * **error classes** (SPEC.md §7.1): for every class, the cases whose expected `error` (of the
//!   case, or of one of its steps) is that class — found by reading the files, not listed by hand;
//! * **rules**: one row per MUST check of the sections the vectors cover, with the cases that
//!   exercise it. The mapping is written by hand in [`RULES`]; generation checks that every case it
//!   names exists, and that the case's expected `error` is the class the rule names, if it names one.
//!
//! A rule or class with no case fails generation — unless it carries a [`Status::Exempt`] reason
//! (nothing an implementation can observe: an error this reference raises only at its own API) or a
//! [`Status::Gap`] naming what is still missing. Gaps are printed in their own section of
//! COVERAGE.md, so the file says plainly what an implementation can still get wrong unnoticed.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde_json::Value;

use super::VectorError;

/// Whether a rule or class must have cases.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// It must have at least one case.
    Required,
    /// Not observable by another implementation; the reason is printed.
    Exempt(&'static str),
    /// Not exercised yet: what is missing, printed under "Gaps".
    Gap(&'static str),
}

/// One check SPEC.md requires, and the cases that exercise it.
#[derive(Debug, Clone, Copy)]
pub struct Rule {
    /// The section, as `§3.4`.
    pub section: &'static str,
    /// The rule in a few words.
    pub rule: &'static str,
    /// Cases, as `file#id` with the file's stem (`wire#link-empty`, `hop_transcript#hop-seed-1/step-33`);
    /// `file#id error` also requires the case (or one of its steps) to expect that error class.
    pub cases: &'static [&'static str],
    /// Whether it must have cases.
    pub status: Status,
}

const fn rule(section: &'static str, rule: &'static str, cases: &'static [&'static str]) -> Rule {
    Rule { section, rule, cases, status: Status::Required }
}

/// The SPEC.md §7.1 classes, as the vectors write them, with their status when no case can show them.
pub const CLASSES: &[(&str, Status)] = &[
    ("Wire.Truncated", Status::Required),
    ("Wire.Oversized", Status::Required),
    ("Wire.UnknownVersion", Status::Required),
    ("Wire.UnknownType", Status::Required),
    ("Wire.BadLength", Status::Required),
    ("Wire.TrailingBytes", Status::Required),
    ("Wire.InvalidValue", Status::Required),
    ("Channel.Crypto.AeadOpen", Status::Required),
    ("Channel.Crypto.NonContributory", Status::Required),
    ("Channel.MessageTooShort", Status::Required),
    ("Channel.MessageTooLong", Status::Required),
    ("Channel.NonceExhausted", Status::Required),
    ("Protocol.Unexpected", Status::Required),
    ("Protocol.WrongName", Status::Required),
    ("Protocol.Replayed", Status::Required),
    ("Protocol.OutOfWindow", Status::Required),
    ("E2e.Bundle.BadSigningKey", Status::Required),
    ("E2e.Bundle.LowOrderKey", Status::Required),
    ("E2e.Bundle.BadSignature", Status::Required),
    ("E2e.Bundle.TooManyPrekeys", Status::Required),
    ("E2e.Bundle.DuplicatePrekeyId", Status::Required),
    ("E2e.IdentityMismatch", Status::Required),
    ("E2e.UnknownPrekey", Status::Required),
    ("E2e.ReplayedPrekeyMessage", Status::Required),
    ("E2e.NoSession", Status::Required),
    ("E2e.NoBundle", Status::Required),
    ("E2e.Ratchet.NoSession", Status::Required),
    ("E2e.Ratchet.TooFarAhead", Status::Required),
    ("E2e.Ratchet.Replayed", Status::Required),
    ("E2e.Ratchet.DecryptFailed", Status::Required),
    ("E2e.Ratchet.ChainExhausted", Status::Required),
    (
        "E2e.Ratchet.WorkExceeded",
        Status::Exempt(
            "never reported: it stops a later session's attempt, and the first attempt's error is \
             what the client reports (SPEC.md §12.5)",
        ),
    ),
    ("E2e.Ratchet.Crypto.NonContributory", Status::Required),
    ("E2e.Crypto.NonContributory", Status::Required),
    ("E2e.TooManyPeers", Status::Required),
    ("E2e.PrekeyIdsExhausted", Status::Required),
    ("E2e.SafetyNumberMismatch", Status::Required),
    (
        "Misuse.NotConnected",
        Status::Exempt("a call of the reference's API while offline; nothing crosses a link"),
    ),
    (
        "Misuse.AlreadyConnected",
        Status::Exempt("a call of the reference's API while connected; nothing crosses a link"),
    ),
    (
        "Misuse.UnknownLink",
        Status::Exempt("a driver naming a link the server does not have; nothing crosses a link"),
    ),
    ("Misuse.IdsExhausted", Status::Required),
    (
        "Misuse.NoE2eIdentity",
        Status::Exempt("an e2e call on a hop-only client of the reference's API"),
    ),
    ("Misuse.PendingFull", Status::Required),
    ("Misuse.SendToSelf", Status::Required),
    (
        "Misuse.SignedPrekeyNotStored",
        Status::Exempt(
            "a rotation the reference's API refuses before the server stored the current signed \
             prekey; nothing crosses a link (e2e_roles: a_rotation_waits_until_the_server_stored_…)",
        ),
    ),
];

/// The MUST checks of SPEC.md that the vectors are to exercise, section by section.
pub const RULES: &[Rule] = &[
    // §2.1
    rule(
        "§2.1",
        "an all-zero DH output fails NonContributory (handshake es and ee)",
        &[
            "channel#message1-low-order-ephemeral Channel.Crypto.NonContributory",
            "channel#message2-low-order-ephemeral Channel.Crypto.NonContributory",
            "channel#initiator-knows-low-order-responder-static Channel.Crypto.NonContributory",
        ],
    ),
    rule(
        "§2.1",
        "an all-zero DH output fails NonContributory (handshake ss: a low-order static key in message 1)",
        &["channel#message1-low-order-static Channel.Crypto.NonContributory"],
    ),
    rule(
        "§2.1",
        "an all-zero DH output fails NonContributory (X3DH, ratchet step)",
        &[
            "key_schedule#x3dh-respond-low-order-base-key E2e.Crypto.NonContributory",
            "key_schedule#kdf-rk-low-order-peer-key E2e.Ratchet.Crypto.NonContributory",
        ],
    ),
    // §2.2
    rule(
        "§2.2",
        "the channel nonce is four zero bytes then the counter little-endian",
        &[
            "key_schedule#channel-nonce-0",
            "key_schedule#channel-nonce-256",
            "key_schedule#channel-nonce-18446744073709551614",
        ],
    ),
    // §3.4
    rule(
        "§3.4",
        "1: input longer than the family's maximum frame is Oversized",
        &[
            "wire#link-input-oversized Wire.Oversized",
            "wire#message-input-oversized Wire.Oversized",
        ],
    ),
    rule(
        "§3.4",
        "2: an empty input is Truncated, a version other than 0x01 UnknownVersion",
        &[
            "wire#link-empty Wire.Truncated",
            "wire#message-empty Wire.Truncated",
            "wire#link-unknown-version-0 Wire.UnknownVersion",
            "wire#link-unknown-version-2 Wire.UnknownVersion",
            "wire#link-unknown-version-alone Wire.UnknownVersion",
            "wire#message-unknown-version Wire.UnknownVersion",
        ],
    ),
    rule(
        "§3.4",
        "3: a missing type is Truncated; the other family's codes and unassigned codes are UnknownType",
        &[
            "wire#link-version-only Wire.Truncated",
            "wire#link-unknown-type Wire.UnknownType",
            "wire#link-message-type Wire.UnknownType",
            "wire#message-link-type Wire.UnknownType",
            "wire#message-reserved-type Wire.UnknownType",
            "wire#message-unassigned-type Wire.UnknownType",
        ],
    ),
    rule(
        "§3.4",
        "4: a short header is Truncated; a declared length beyond the maximum is Oversized",
        &[
            "wire#link-short-header Wire.Truncated",
            "wire#link-declared-oversized Wire.Oversized",
            "wire#link-declared-max-u32 Wire.Oversized",
            "wire#message-declared-oversized Wire.Oversized",
        ],
    ),
    rule(
        "§3.4",
        "5: fewer bytes than the header declares are Truncated, more are TrailingBytes",
        &[
            "wire#link-body-truncated Wire.Truncated",
            "wire#link-trailing-bytes Wire.TrailingBytes",
            "wire#message-frame-trailing Wire.TrailingBytes",
        ],
    ),
    rule(
        "§3.4",
        "6: a length prefix out of bounds is BadLength, before the bytes it announces",
        &[
            "wire#message-register-empty-name Wire.BadLength",
            "wire#message-register-name-33 Wire.BadLength",
            "wire#message-send-body-16385 Wire.BadLength",
            "wire#message-upload-1001-prekeys Wire.BadLength",
            "wire#message-e2e-send-empty-envelope Wire.BadLength",
            "wire#message-e2e-send-envelope-16641 Wire.BadLength",
        ],
    ),
    rule(
        "§3.4, §15.1",
        "6: the envelope length of E2eDeliver is checked as that of E2eSend (BadLength)",
        &[
            "wire#message-e2e-deliver-empty-envelope Wire.BadLength",
            "wire#message-e2e-deliver-envelope-16641 Wire.BadLength",
        ],
    ),
    rule(
        "§3.4",
        "6: a link-frame body below its minimum is BadLength",
        &[
            "wire#link-transport-too-short Wire.BadLength",
            "wire#link-handshake-init-too-short Wire.BadLength",
            "wire#link-handshake-resp-too-short Wire.BadLength",
        ],
    ),
    rule(
        "§3.4",
        "6: a field that runs past the end of the body is Truncated",
        &[
            "wire#message-register-name-truncated Wire.Truncated",
            "wire#message-send-truncated-id Wire.Truncated",
            "wire#message-send-body-truncated Wire.Truncated",
            "wire#message-refused-empty Wire.Truncated",
            "wire#message-bundle-stored-short Wire.Truncated",
            "wire#message-upload-missing-prekey Wire.Truncated",
            "wire#message-upload-cut-identity Wire.Truncated",
            "wire#message-bundle-missing-opk Wire.Truncated",
        ],
    ),
    rule(
        "§3.4",
        "6: a value outside its domain (name byte, enum code) is InvalidValue",
        &[
            "wire#message-register-upper-case Wire.InvalidValue",
            "wire#message-register-space Wire.InvalidValue",
            "wire#message-register-non-ascii Wire.InvalidValue",
            "wire#message-refused-unknown-reason Wire.InvalidValue",
            "wire#message-refused-reason-zero Wire.InvalidValue",
            "wire#message-ack-unknown-status Wire.InvalidValue",
            "wire#message-reject-unknown-reason Wire.InvalidValue",
            "wire#message-bundle-refused-unknown Wire.InvalidValue",
            "wire#message-bundle-has-opk-2 Wire.InvalidValue",
        ],
    ),
    rule(
        "§3.4",
        "6: a field's bytes are taken before its value is checked (a cut Name with a bad byte is Truncated)",
        &["wire#message-register-name-cut-and-invalid Wire.Truncated"],
    ),
    rule(
        "§3.4",
        "7: bytes after the last field are TrailingBytes",
        &[
            "wire#message-ready-trailing Wire.TrailingBytes",
            "wire#message-register-trailing Wire.TrailingBytes",
            "wire#message-bundle-has-opk-0-with-key Wire.TrailingBytes",
        ],
    ),
    rule(
        "§3.4",
        "canonical: every valid frame re-encodes to its bytes",
        &[
            "wire#link-handshake-init-minimum",
            "wire#link-transport-maximum",
            "wire#message-send-spec-example",
            "wire#message-send-max-name-max-id",
            "wire#message-upload-bundle-1000-prekeys",
            "wire#message-bundle-without-one-time-prekey",
            "wire#message-e2e-send-max-envelope",
        ],
    ),
    // §4.3–§4.4
    rule(
        "§4.3",
        "a Noise message shorter than its fixed part is MessageTooShort, before any DH",
        &[
            "channel#message1-truncated Channel.MessageTooShort",
            "channel#message2-truncated Channel.MessageTooShort",
        ],
    ),
    rule(
        "§4.3",
        "a Noise message longer than 65535 bytes is MessageTooLong, before any DH or AEAD",
        &[
            "channel#message1-too-long Channel.MessageTooLong",
            "channel#transport-too-long Channel.MessageTooLong",
        ],
    ),
    rule(
        "§4.3",
        "an AEAD failure in a handshake message is Crypto(AeadOpen) and changes nothing",
        &[
            "channel#message1-tampered-static Channel.Crypto.AeadOpen",
            "channel#message1-tampered-payload Channel.Crypto.AeadOpen",
            "channel#message1-truncated-payload Channel.Crypto.AeadOpen",
            "channel#message2-tampered-payload Channel.Crypto.AeadOpen",
            "channel#message2-tampered-ephemeral Channel.Crypto.AeadOpen",
            "channel#wrong-prologue Channel.Crypto.AeadOpen",
        ],
    ),
    rule(
        "§4.3",
        "h hashes an ephemeral key as received, including the bit X25519 ignores",
        &["channel#message1-tampered-ephemeral-high-bit Channel.Crypto.AeadOpen"],
    ),
    rule(
        "§4.3, §4.4",
        "a replayed handshake message is refused by the state that already read it",
        &[
            "channel#handshake-message2-replayed Channel.Crypto.AeadOpen",
            "channel#handshake-message1-replayed Channel.Crypto.AeadOpen",
        ],
    ),
    rule(
        "§4.4",
        "counters are implicit: a replayed, reordered, tampered, truncated or reflected transport \
         message fails and the counter does not move",
        &[
            "channel#transport-replayed Channel.Crypto.AeadOpen",
            "channel#transport-reordered Channel.Crypto.AeadOpen",
            "channel#transport-tampered Channel.Crypto.AeadOpen",
            "channel#transport-truncated",
            "channel#transport-reflected Channel.Crypto.AeadOpen",
            "hop_transcript#hop-seed-1/step-28 Channel.Crypto.AeadOpen",
            "hop_transcript#hop-seed-1/step-29 Channel.Crypto.AeadOpen",
        ],
    ),
    rule(
        "§4.4",
        "the counter 2^64 − 1 is reserved: send and receive fail NonceExhausted",
        &["channel#transport-nonce-exhausted Channel.NonceExhausted"],
    ),
    // §5.1
    rule(
        "§5.1",
        "Welcome, then Ready; the registration binds name → key",
        &[
            "hop_transcript#hop-seed-1/step-02",
            "hop_transcript#hop-seed-1/step-03",
            "e2e_transcript#e2e-seed-1/step-06",
        ],
    ),
    rule(
        "§5.1",
        "a payload that is a message but not Register: Refused{NotARegistration}",
        &["hop_transcript#hop-seed-1/step-248", "hop_transcript#hop-seed-1/step-249"],
    ),
    rule(
        "§5.1",
        "a name bound to another key: Refused{NameTaken}",
        &["hop_transcript#hop-seed-1/step-246", "hop_transcript#hop-seed-1/step-247"],
    ),
    rule(
        "§5.1",
        "a key bound to another name: Refused{KeyInUse}",
        &["hop_transcript#hop-seed-1/step-250", "hop_transcript#hop-seed-1/step-251"],
    ),
    rule(
        "§5.1",
        "key confirmation: an unconfirmed link receives nothing and drains no mailbox",
        &[
            "hop_transcript#hop-seed-1/step-264",
            "hop_transcript#hop-seed-1/step-265",
            "hop_transcript#hop-seed-1/step-267",
            "hop_transcript#hop-seed-1/step-271",
        ],
    ),
    rule(
        "§5.1",
        "key confirmation: an unconfirmed link displaces no confirmed link",
        &[
            "hop_transcript#hop-confirmation-seed-3/step-07",
            "hop_transcript#hop-confirmation-seed-3/step-08",
            "hop_transcript#hop-confirmation-seed-3/step-10",
            "hop_transcript#hop-confirmation-seed-3/step-11",
            "hop_transcript#hop-confirmation-seed-3/step-19",
        ],
    ),
    rule(
        "§5.1",
        "the client accepts Welcome only for its own name (WrongName)",
        &["hop_transcript#hop-seed-1/step-263 Protocol.WrongName"],
    ),
    rule(
        "§5.1, §5.4",
        "at Ready the mailbox is delivered in order, then emptied",
        &["hop_transcript#hop-seed-1/step-27", "e2e_transcript#e2e-seed-1/step-33"],
    ),
    // §5.2
    rule(
        "§5.2",
        "a message to a confirmed link is sealed as Deliver, then Ack{Relayed}",
        &["hop_transcript#hop-seed-1/step-08", "hop_transcript#hop-seed-1/step-09"],
    ),
    rule(
        "§5.2",
        "a message to an offline name is queued, then Ack{Queued}",
        &["hop_transcript#hop-seed-1/step-23", "e2e_transcript#e2e-seed-1/step-29"],
    ),
    rule(
        "§5.2",
        "a message to a name never registered: Reject{UnknownRecipient}",
        &["hop_transcript#hop-seed-1/step-39"],
    ),
    rule(
        "§5.2, §5.5",
        "a message the content policy denies (DenyWord, ASCII case-insensitive): Reject{Policy}, nothing relayed",
        &["hop_transcript#hop-policy-seed-2/step-11", "hop_transcript#hop-policy-seed-2/step-13"],
    ),
    rule(
        "§5.2",
        "a HandshakeInit on a link that has a channel is Unexpected and changes nothing",
        &["hop_transcript#hop-seed-1/step-37 Protocol.Unexpected"],
    ),
    rule(
        "§5.2",
        "a frame other than HandshakeInit on a link without a channel is Unexpected",
        &["hop_transcript#hop-seed-1/step-258 Protocol.Unexpected"],
    ),
    // §5.3
    rule(
        "§5.3",
        "a hop recipient accepts each (from, id) once: Replayed",
        &["hop_transcript#hop-seed-1/step-33 Protocol.Replayed"],
    ),
    rule(
        "§5.3",
        "id 0 and an id 64 or more behind the highest are OutOfWindow; 63 behind and unseen is accepted",
        &[
            "hop_transcript#hop-seed-1/step-240 Protocol.OutOfWindow",
            "hop_transcript#hop-seed-1/step-242 Protocol.OutOfWindow",
            "hop_transcript#hop-seed-1/step-243 Protocol.OutOfWindow",
            "hop_transcript#hop-seed-1/step-244",
        ],
    ),
    rule(
        "§5.2, §5.3",
        "hop: from is the name the server vouches for; a new sender gets a fresh window",
        &["hop_transcript#hop-seed-1/step-245"],
    ),
    rule(
        "§5.3",
        "an e2e recipient does not check ids: the ratchet refuses a re-delivery under any id",
        &[
            "e2e_transcript#e2e-seed-1/step-34 E2e.Ratchet.Replayed",
            "e2e_transcript#e2e-seed-1/step-35 E2e.Ratchet.Replayed",
        ],
    ),
    rule(
        "§5.3, §18",
        "ids count 1, 2, 3, … across a restart; after 2^64 − 1 a send is refused (IdsExhausted)",
        &[
            "hop_transcript#hop-seed-1/call-01",
            "hop_transcript#hop-seed-1/step-275",
            "hop_transcript#hop-seed-1/call-02 Misuse.IdsExhausted",
        ],
    ),
    rule(
        "§10.2, §18",
        "prekey ids never wrap: after id 2^32 − 1 no prekey is made (PrekeyIdsExhausted)",
        &[
            "e2e_transcript#e2e-seed-1/call-04",
            "e2e_transcript#e2e-seed-1/call-05 E2e.PrekeyIdsExhausted",
        ],
    ),
    rule(
        "§5.3",
        "a window for one more than MAX_PEERS senders evicts the least recently accepted",
        &[
            "hop_transcript#hop-seed-1/step-532",
            "hop_transcript#hop-seed-1/step-533 Protocol.Replayed",
            "hop_transcript#hop-seed-1/step-534",
        ],
    ),
    // §5.4
    rule(
        "§5.4, §8",
        "a mailbox holds MAILBOX_CAPACITY messages; the next is refused MailboxFull; all 64 arrive in order",
        &[
            "hop_transcript#hop-seed-1/step-167",
            "hop_transcript#hop-seed-1/step-169",
            "hop_transcript#hop-seed-1/step-173",
            "hop_transcript#hop-seed-1/step-236",
        ],
    ),
    rule(
        "§5.4",
        "all mailboxes hold MAX_QUEUED_BYTES (49 + len(content) per message); beyond it Reject{ServerFull}; sent messages free their bytes",
        &[
            "hop_transcript#hop-queue-bound-seed-4/step-10",
            "hop_transcript#hop-queue-bound-seed-4/step-12",
            "hop_transcript#hop-queue-bound-seed-4/step-17",
            "hop_transcript#hop-queue-bound-seed-4/step-19",
        ],
    ),
    // §10.3
    rule(
        "§10.3",
        "1: IK_sig canonical and not of small order, else BadSigningKey",
        &[
            "bundles#upload-bad-signing-key-0 E2e.Bundle.BadSigningKey",
            "bundles#upload-bad-signing-key-9 E2e.Bundle.BadSigningKey",
            "bundles#fetch-bad-signing-key-0 E2e.Bundle.BadSigningKey",
            "key_schedule#x3dh-respond-small-order-signing-key E2e.Bundle.BadSigningKey",
        ],
    ),
    rule(
        "§10.3",
        "2: IK_dh, SPK and every OPK not of small order, else LowOrderKey (all seven encodings)",
        &[
            "bundles#upload-low-order-identity-0 E2e.Bundle.LowOrderKey",
            "bundles#upload-low-order-identity-6 E2e.Bundle.LowOrderKey",
            "bundles#upload-low-order-signed-prekey-3 E2e.Bundle.LowOrderKey",
            "bundles#upload-low-order-one-time-prekey-5 E2e.Bundle.LowOrderKey",
            "bundles#fetch-low-order-signed-prekey-0 E2e.Bundle.LowOrderKey",
            "bundles#fetch-low-order-one-time-prekey-2 E2e.Bundle.LowOrderKey",
            "key_schedule#x3dh-respond-low-order-identity E2e.Bundle.LowOrderKey",
        ],
    ),
    rule(
        "§10.3",
        "2: a fetched bundle with a low-order IK_dh is LowOrderKey",
        &[
            "bundles#fetch-low-order-identity-0 E2e.Bundle.LowOrderKey",
            "bundles#fetch-low-order-identity-6 E2e.Bundle.LowOrderKey",
        ],
    ),
    rule(
        "§10.3",
        "3: spk_sig verifies strictly (canonical S, R not of small order, cofactorless)",
        &[
            "bundles#upload-bad-signature-s-plus-order E2e.Bundle.BadSignature",
            "bundles#upload-bad-signature-small-order-r E2e.Bundle.BadSignature",
            "bundles#upload-bad-signature-zero E2e.Bundle.BadSignature",
            "bundles#upload-bad-signing-key-verifying-signature-0 E2e.Bundle.BadSigningKey",
            "bundles#fetch-bad-signature-other-identity-dh E2e.Bundle.BadSignature",
        ],
    ),
    rule(
        "§10.3",
        "4: at most MAX_ONE_TIME_PREKEYS in an upload and with those stored, else TooManyPrekeys",
        &[
            "bundles#upload-too-many-prekeys E2e.Bundle.TooManyPrekeys",
            "bundles#upload-too-many-with-stored E2e.Bundle.TooManyPrekeys",
            "bundles#upload-exactly-100-with-stored",
            "bundles#upload-valid-100",
        ],
    ),
    rule(
        "§10.3, §15.2",
        "4: after an identity change the stored prekeys do not count",
        &["bundles#upload-valid-100-after-identity-change"],
    ),
    rule(
        "§10.3",
        "5: one-time ids distinct among themselves, from spk_id and from stored ids, else DuplicatePrekeyId",
        &[
            "bundles#upload-duplicate-within E2e.Bundle.DuplicatePrekeyId",
            "bundles#upload-duplicate-signed-prekey-id E2e.Bundle.DuplicatePrekeyId",
            "bundles#upload-duplicate-stored-one-time E2e.Bundle.DuplicatePrekeyId",
            "bundles#upload-duplicate-stored-signed E2e.Bundle.DuplicatePrekeyId",
        ],
    ),
    rule(
        "§10.3",
        "5: the uploaded spk_id is not compared with stored one-time ids",
        &["bundles#upload-valid-spk-id-equals-stored-one-time-id"],
    ),
    rule(
        "§10.3",
        "the first failing step wins",
        &[
            "bundles#upload-first-failure-wins-1",
            "bundles#upload-first-failure-wins-2",
            "bundles#upload-first-failure-wins-3",
            "bundles#upload-first-failure-wins-4",
        ],
    ),
    // §11.1
    rule(
        "§11.1",
        "X3DH: SK and AD from the four (or three) DHs",
        &["key_schedule#x3dh-with-one-time-prekey", "key_schedule#x3dh-without-one-time-prekey"],
    ),
    rule(
        "§11.1, §14.2",
        "a fetched bundle is validated, then compared with a pin: IdentityMismatch",
        &[
            "bundles#fetch-identity-mismatch E2e.IdentityMismatch",
            "bundles#fetch-bad-signature-before-pin E2e.Bundle.BadSignature",
            "bundles#fetch-valid-pinned",
        ],
    ),
    // §11.2
    rule(
        "§11.2",
        "the claimed identity is validated before any prekey or DH: BadSigningKey, LowOrderKey, BadSignature",
        &[
            "key_schedule#x3dh-respond-small-order-signing-key E2e.Bundle.BadSigningKey",
            "key_schedule#x3dh-respond-low-order-identity E2e.Bundle.LowOrderKey",
            "key_schedule#x3dh-respond-mixed-identity E2e.Bundle.BadSignature",
        ],
    ),
    rule(
        "§11.2",
        "the signed prekey, then the one-time prekey, is looked up: UnknownPrekey",
        &[
            "key_schedule#x3dh-respond-unknown-signed-prekey E2e.UnknownPrekey",
            "key_schedule#x3dh-respond-unknown-one-time-prekey E2e.UnknownPrekey",
        ],
    ),
    rule(
        "§11.2, §14.2",
        "a prekey message claiming a pinned name with another identity: IdentityMismatch",
        &["e2e_transcript#e2e-seed-1/step-59 E2e.IdentityMismatch"],
    ),
    // §11.3
    rule(
        "§11.3",
        "a replayed prekey message of a kept session is refused by its ratchet",
        &["e2e_transcript#e2e-seed-1/step-37 E2e.Ratchet.DecryptFailed"],
    ),
    rule(
        "§11.3",
        "a prekey message whose base key was retired: ReplayedPrekeyMessage",
        &["e2e_transcript#e2e-identity-seed-4/step-32 E2e.ReplayedPrekeyMessage"],
    ),
    rule(
        "§11.3",
        "MAX_ARCHIVED_SESSIONS: a fifth replacement with the same identity retires the oldest archived session",
        &[
            "e2e_transcript#e2e-archive-seed-9/call-01",
            "e2e_transcript#e2e-archive-seed-9/step-25",
            "e2e_transcript#e2e-archive-seed-9/step-51 E2e.Ratchet.Replayed",
            "e2e_transcript#e2e-archive-seed-9/step-58",
            "e2e_transcript#e2e-archive-seed-9/step-60 E2e.ReplayedPrekeyMessage",
            "e2e_transcript#e2e-archive-seed-9/step-61 E2e.Ratchet.Replayed",
        ],
    ),
    rule(
        "§11.3",
        "a message of an archived session opens and makes it current (simultaneous initiation converges)",
        &[
            "e2e_transcript#e2e-simultaneous-seed-5/step-17",
            "e2e_transcript#e2e-simultaneous-seed-5/step-19",
            "e2e_transcript#e2e-simultaneous-seed-5/step-22",
            "e2e_transcript#e2e-simultaneous-seed-5/step-24",
        ],
    ),
    rule(
        "§11.3",
        "one identity per peer: a new identity deletes the old sessions (IdentityChanged)",
        &[
            "e2e_transcript#e2e-identity-seed-4/call-01",
            "e2e_transcript#e2e-identity-seed-4/step-30",
            "e2e_transcript#e2e-identity-seed-4/step-32 E2e.ReplayedPrekeyMessage",
            "e2e_transcript#e2e-identity-seed-4/step-33 E2e.Ratchet.DecryptFailed",
        ],
    ),
    rule(
        "§11.3",
        "MAX_PEERS: the least recently active peer is evicted; TooManyPeers when all are spared",
        &[
            "e2e_transcript#e2e-peers-seed-6/step-1040",
            "e2e_transcript#e2e-peers-seed-6/step-1041",
            "e2e_transcript#e2e-peers-seed-6/step-1044 E2e.TooManyPeers",
            "e2e_transcript#e2e-peers-seed-6/step-1046 E2e.NoSession",
        ],
    ),
    // §12.3–§12.5
    rule(
        "§12.1–§12.3",
        "KDF_RK, KDF_CK, message keys, the first message",
        &[
            "key_schedule#kdf-rk",
            "key_schedule#kdf-ck",
            "key_schedule#message-keys",
            "key_schedule#ratchet-first-message",
        ],
    ),
    rule(
        "§12.3",
        "a responder cannot send before it has heard (NoSession)",
        &["key_schedule#ratchet-responder-sends-first E2e.Ratchet.NoSession"],
    ),
    rule(
        "§12.4",
        "skipped keys are stored and used once; n < Nr is Replayed; a gap beyond MAX_SKIP is TooFarAhead; \
         a failed open leaves the state unchanged",
        &[
            "key_schedule#ratchet-receive-skip-replay-tamper E2e.Ratchet.TooFarAhead",
            "key_schedule#ratchet-receive-skip-replay-tamper E2e.Ratchet.Replayed",
            "key_schedule#ratchet-receive-skip-replay-tamper E2e.Ratchet.DecryptFailed",
        ],
    ),
    rule(
        "§12.4",
        "the two \"missing chain\" paths fail DecryptFailed",
        &[
            "key_schedule#ratchet-initiator-receives-before-sending E2e.Ratchet.DecryptFailed",
            "key_schedule#ratchet-initiator-receives-on-signed-prekey E2e.Ratchet.DecryptFailed",
        ],
    ),
    rule(
        "§12.4",
        "n = 2^32 − 1 past SKIP fails ChainExhausted",
        &["key_schedule#ratchet-receive-chain-exhausted E2e.Ratchet.ChainExhausted"],
    ),
    rule(
        "§12.4",
        "a header that turns the ratchet with pn more than MAX_SKIP past Nr: TooFarAhead, before any DH",
        &["key_schedule#ratchet-receive-bad-ratchet-keys E2e.Ratchet.TooFarAhead"],
    ),
    rule(
        "§12.4",
        "a low-order ratchet key in a received header fails NonContributory, and nothing changes",
        &["key_schedule#ratchet-receive-bad-ratchet-keys E2e.Ratchet.Crypto.NonContributory"],
    ),
    rule(
        "§12.5",
        "every message key is deleted after use: a second delivery fails",
        &[
            "e2e_transcript#e2e-seed-1/step-35 E2e.Ratchet.Replayed",
            "e2e_transcript#e2e-seed-1/step-36 E2e.Ratchet.DecryptFailed",
        ],
    ),
    rule(
        "§12.5",
        "MAX_SKIPPED_KEYS: the oldest stored key is evicted first",
        &["key_schedule#ratchet-receive-skipped-key-eviction E2e.Ratchet.Replayed"],
    ),
    // §13
    rule(
        "§13",
        "envelope parsing: kind, fields in order, then the header; ct at least 16 bytes",
        &[
            "wire#envelope-empty Wire.Truncated",
            "wire#envelope-unknown-kind Wire.InvalidValue",
            "wire#envelope-kind-zero Wire.InvalidValue",
            "wire#envelope-ratchet-short-ciphertext Wire.BadLength",
            "wire#envelope-ratchet-no-ciphertext Wire.BadLength",
            "wire#envelope-ratchet-cut-header Wire.Truncated",
            "wire#envelope-prekey-has-opk-2 Wire.InvalidValue",
            "wire#envelope-prekey-cut Wire.Truncated",
            "wire#envelope-prekey-cut-in-id-sig Wire.Truncated",
        ],
    ),
    rule(
        "§13",
        "an envelope longer than MAX_ENVELOPE_LEN is BadLength, before anything else",
        &["wire#envelope-over-maximum Wire.BadLength"],
    ),
    // §14
    rule(
        "§14.1",
        "the safety number of two identities",
        &["key_schedule#safety-number-rfc-keys", "key_schedule#safety-number-x3dh-identities"],
    ),
    rule(
        "§14.2",
        "verification with a wrong number fails SafetyNumberMismatch and pins nothing; the right one pins",
        &[
            "e2e_transcript#e2e-seed-1/call-01 E2e.SafetyNumberMismatch",
            "e2e_transcript#e2e-seed-1/call-02",
            "e2e_transcript#e2e-seed-1/step-57",
        ],
    ),
    rule(
        "§14.2",
        "pinning deletes every session with another identity (and retires its base key)",
        &[
            "e2e_transcript#e2e-identity-seed-4/call-03",
            "e2e_transcript#e2e-identity-seed-4/step-43",
            "e2e_transcript#e2e-identity-seed-4/step-45",
        ],
    ),
    rule(
        "§11.3, §14.2",
        "for a pinned name, a prekey message under another identity is refused before rules 1–3",
        &["e2e_transcript#e2e-identity-seed-4/step-42 E2e.IdentityMismatch"],
    ),
    // §15.2
    rule(
        "§15.2",
        "an upload is validated; same IK appends and rotates; a new IK replaces",
        &[
            "bundles#upload-valid",
            "bundles#upload-valid-replenish",
            "bundles#upload-valid-rotate",
            "bundles#upload-valid-identity-change",
        ],
    ),
    rule(
        "§15.2",
        "a fetch hands out the oldest one-time prekey",
        &["e2e_transcript#e2e-seed-1/step-12"],
    ),
    rule(
        "§15.2, §15.3",
        "a fetch for a name with no bundle is answered NoBundle; the waiting message is discarded unencrypted",
        &["e2e_transcript#e2e-seed-1/step-54", "e2e_transcript#e2e-seed-1/step-55"],
    ),
    rule(
        "§15.2",
        "one one-time prekey per requester per upload; PrekeysLow at PREKEYS_LOW_WATER",
        &[
            "e2e_transcript#e2e-prekeys-seed-2/step-47",
            "e2e_transcript#e2e-identity-seed-4/step-28",
            "e2e_transcript#e2e-prekeys-seed-2/step-36",
            "e2e_transcript#e2e-prekeys-seed-2/step-37",
            "e2e_transcript#e2e-prekeys-seed-2/step-38",
        ],
    ),
    // §15.3
    rule(
        "§15.3",
        "an unsolicited Bundle or NoBundle is Unexpected, before the bundle is validated",
        &[
            "e2e_transcript#e2e-seed-1/step-47 Protocol.Unexpected",
            "e2e_transcript#e2e-seed-1/step-48 Protocol.Unexpected",
        ],
    ),
    rule(
        "§15.3",
        "an e2e client refuses a hop Deliver (Unexpected)",
        &["e2e_transcript#e2e-seed-1/step-46 Protocol.Unexpected"],
    ),
    rule(
        "§11.1, §11.3",
        "e2e: a relabelled from finds no session (NoSession), or no prekey (UnknownPrekey); the session survives",
        &[
            "e2e_transcript#e2e-seed-1/step-49 E2e.NoSession",
            "e2e_transcript#e2e-seed-1/step-50 E2e.UnknownPrekey",
            "e2e_transcript#e2e-seed-1/step-52",
        ],
    ),
    rule(
        "§15.3",
        "no e2e message to oneself (SendToSelf), refused before anything is sent",
        &["e2e_transcript#e2e-seed-1/call-03 Misuse.SendToSelf"],
    ),
    rule(
        "§15.3",
        "MAX_PENDING messages wait for a bundle; the next is PendingFull",
        &[
            "e2e_transcript#e2e-seed-1/step-68",
            "e2e_transcript#e2e-seed-1/call-20",
            "e2e_transcript#e2e-seed-1/call-21 Misuse.PendingFull",
        ],
    ),
    rule(
        "§15.3",
        "a refused bundle discards the waiting messages (SendFailed)",
        &[
            "e2e_transcript#e2e-seed-1/step-64 E2e.Bundle.BadSigningKey",
            "e2e_transcript#e2e-seed-1/step-55 E2e.NoBundle",
        ],
    ),
    // §8
    rule(
        "§8",
        "MAX_FRAME_LEN, MAX_NAME_LEN, MAX_BODY_LEN, MAX_ENCODED_PREKEYS, MAX_ENVELOPE_LEN at and past the bound",
        &[
            "wire#link-transport-maximum",
            "wire#link-declared-oversized Wire.Oversized",
            "wire#message-send-max-name-max-id",
            "wire#message-register-name-33 Wire.BadLength",
            "wire#message-send-max-body",
            "wire#message-send-body-16385 Wire.BadLength",
            "wire#message-upload-bundle-1000-prekeys",
            "wire#message-upload-1001-prekeys Wire.BadLength",
            "wire#message-e2e-send-max-envelope",
            "wire#message-e2e-send-envelope-16641 Wire.BadLength",
        ],
    ),
    rule(
        "§8",
        "MAX_SKIP at and past the bound",
        &["key_schedule#ratchet-receive-skip-replay-tamper E2e.Ratchet.TooFarAhead"],
    ),
    rule(
        "§5.1, §8",
        "MAX_ACCOUNTS: a new name beyond it is Refused{ServerFull}; a bound name is welcomed again",
        &[
            "hop_transcript#hop-accounts-seed-5/step-05",
            "hop_transcript#hop-accounts-seed-5/step-07",
            "hop_transcript#hop-accounts-seed-5/step-09",
        ],
    ),
    rule(
        "§10.2, §8",
        "MAX_HELD_ONE_TIME_PREKEYS: one more drops the oldest; a prekey message naming it fails UnknownPrekey",
        &[
            "e2e_transcript#e2e-held-prekeys-seed-7/step-14",
            "e2e_transcript#e2e-held-prekeys-seed-7/step-15",
            "e2e_transcript#e2e-held-prekeys-seed-7/step-18",
            "e2e_transcript#e2e-held-prekeys-seed-7/step-20 E2e.UnknownPrekey",
        ],
    ),
    rule(
        "§11.3, §8",
        "RETIRED_BASE_KEYS: the 17th retired base key drops the oldest; a replay of its session is a new session again",
        &[
            "e2e_transcript#e2e-retired-seed-8/step-150",
            "e2e_transcript#e2e-retired-seed-8/step-152 E2e.UnknownPrekey",
            "e2e_transcript#e2e-retired-seed-8/step-153 E2e.ReplayedPrekeyMessage",
        ],
    ),
    rule(
        "§12.5, §8",
        "MAX_SKIPPED_KEYS_PER_CLIENT: at the bound nothing is evicted; one key more evicts the oldest key \
         of the oldest archived session; its message fails, a kept key's opens",
        &[
            "e2e_transcript#e2e-skipped-keys-seed-10/call-01",
            "e2e_transcript#e2e-skipped-keys-seed-10/step-17",
            "e2e_transcript#e2e-skipped-keys-seed-10/step-62",
            "e2e_transcript#e2e-skipped-keys-seed-10/step-73",
            "e2e_transcript#e2e-skipped-keys-seed-10/step-76 E2e.Ratchet.Replayed",
            "e2e_transcript#e2e-skipped-keys-seed-10/step-79",
            "e2e_transcript#e2e-skipped-keys-seed-10/step-82",
        ],
    ),
    rule(
        "§12.5, §11.3",
        "MAX_SKIPPED_KEYS_PER_CLIENT across peers: the least recently active peer's keys are evicted \
         first; a message sent is activity, and the message that crosses the bound counts before the \
         eviction; the evicted message fails, the other peer's oldest key still opens",
        &[
            "e2e_transcript#e2e-skipped-peers-seed-11/step-72",
            "e2e_transcript#e2e-skipped-peers-seed-11/step-76",
            "e2e_transcript#e2e-skipped-peers-seed-11/step-79 E2e.Ratchet.Replayed",
            "e2e_transcript#e2e-skipped-peers-seed-11/step-82",
            "e2e_transcript#e2e-skipped-peers-seed-11/step-85",
        ],
    ),
];

/// Every case of the vector files, by `stem#id`, with every error class it (or a step of it) expects.
fn index(files: &[(&str, &Value)]) -> BTreeMap<String, Vec<String>> {
    let mut out = BTreeMap::new();
    for (file, value) in files {
        let stem = file.trim_end_matches(".json");
        let cases = value["cases"].as_array().into_iter().flatten().chain(
            value["runs"]
                .as_array()
                .into_iter()
                .flatten()
                .flat_map(|run| run["cases"].as_array().into_iter().flatten()),
        );
        for case in cases {
            let Some(id) = case["id"].as_str() else { continue };
            let mut errors = Vec::new();
            collect_errors(case, &mut errors);
            out.insert(format!("{stem}#{id}"), errors);
        }
    }
    out
}

/// Every `error` string in `value`, its steps and deliveries included.
fn collect_errors(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (key, v) in map {
                match (key.as_str(), v) {
                    ("error", Value::String(e)) => {
                        if !out.contains(e) {
                            out.push(e.clone());
                        }
                    }
                    _ => collect_errors(v, out),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|v| collect_errors(v, out)),
        _ => {}
    }
}

fn status_error(what: &str) -> VectorError {
    VectorError::Malformed { field: format!("COVERAGE: {what}") }
}

/// Renders COVERAGE.md from the generated vector files (`(file name, parsed JSON)`).
///
/// # Errors
/// A rule names a case that does not exist or does not expect the named error; a rule or class
/// with [`Status::Required`] has no case; a class the files use is not in [`CLASSES`].
pub fn render(files: &[(&str, &Value)]) -> Result<String, VectorError> {
    let cases = index(files);
    let mut out = String::new();
    let mut gaps = Vec::new();
    let total: usize = cases.len();
    out.push_str(
        "# Vector coverage\n\n\
         Generated by `e2e-ref vectors generate` from the files of this directory and the rule table \
         in `protocol/ref/src/vectors/coverage.rs`; `cargo test` fails if it is not current. A case is \
         named `file#id` (transcript steps `file#run/step-NN`); an error after a case is the class it \
         expects (SPEC.md §7.1), checked at generation.\n\n",
    );
    let _ = writeln!(out, "{total} cases in {} files.\n", files.len());

    // Error classes, found in the files.
    out.push_str("## Error classes (SPEC.md §7.1)\n\n| class | cases |\n|---|---|\n");
    let mut used: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (id, errors) in &cases {
        for e in errors {
            used.entry(e.as_str()).or_default().push(id.as_str());
        }
    }
    for class in used.keys() {
        if !CLASSES.iter().any(|(c, _)| c == class) {
            return Err(status_error(&format!("class {class} is not in CLASSES")));
        }
    }
    for (class, status) in CLASSES {
        let ids = used.get(class).cloned().unwrap_or_default();
        let cell = match (ids.is_empty(), status) {
            (false, _) => cases_cell(&ids),
            (true, Status::Required) => {
                return Err(status_error(&format!("class {class} has no case")));
            }
            (true, Status::Exempt(why)) => format!("— exempt: {why}"),
            (true, Status::Gap(missing)) => {
                gaps.push(format!("{class} (§7.1): {missing}"));
                "**gap**".to_owned()
            }
        };
        let _ = writeln!(out, "| `{class}` | {cell} |");
    }

    // Rules, mapped by hand and checked here.
    out.push_str("\n## Rules\n\n| section | rule | cases |\n|---|---|---|\n");
    for r in RULES {
        let mut shown = Vec::new();
        for reference in r.cases {
            let (id, expected) =
                reference.split_once(' ').map_or((*reference, None), |(i, e)| (i, Some(e)));
            let Some(errors) = cases.get(id) else {
                return Err(status_error(&format!("{}: no case {id}", r.section)));
            };
            if let Some(e) = expected {
                if !errors.iter().any(|x| x == e) {
                    return Err(status_error(&format!(
                        "{}: {id} expects {errors:?}, not {e}",
                        r.section
                    )));
                }
                shown.push(format!("`{id}` ({e})"));
            } else {
                shown.push(format!("`{id}`"));
            }
        }
        let cell = match (shown.is_empty(), r.status) {
            (false, Status::Required) => shown.join(", "),
            (true, Status::Required) => {
                return Err(status_error(&format!("{} \"{}\" has no case", r.section, r.rule)));
            }
            (true, Status::Exempt(why)) => format!("— exempt: {why}"),
            (true, Status::Gap(missing)) => {
                gaps.push(format!("{}: {} — {missing}", r.section, r.rule));
                "**gap**".to_owned()
            }
            (false, _) => {
                return Err(status_error(&format!(
                    "{} \"{}\" has cases: drop its gap or exemption",
                    r.section, r.rule
                )));
            }
        };
        let _ = writeln!(out, "| {} | {} | {cell} |", r.section, r.rule);
    }

    let _ = writeln!(out, "\n## Gaps\n");
    if gaps.is_empty() {
        out.push_str("None: every class and rule above has a case.\n");
    } else {
        let _ = writeln!(
            out,
            "{} classes and rules have no case yet; an implementation can get these wrong and still \
             pass every vector:\n",
            gaps.len()
        );
        for g in &gaps {
            let _ = writeln!(out, "- {g}");
        }
    }
    Ok(out)
}

fn cases_cell(ids: &[&str]) -> String {
    const SHOWN: usize = 4;
    let mut cell =
        ids.iter().take(SHOWN).map(|id| format!("`{id}`")).collect::<Vec<_>>().join(", ");
    if ids.len() > SHOWN {
        let _ = write!(cell, " and {} more", ids.len() - SHOWN);
    }
    cell
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn file() -> Value {
        json!({"cases": [
            {"id": "a", "result": "invalid", "error": "Wire.Truncated"},
            {"id": "b", "result": "valid", "steps": [{"error": "Wire.BadLength"}]},
        ]})
    }

    #[test]
    fn errors_of_steps_count() {
        let f = file();
        let index = index(&[("wire.json", &f)]);
        assert_eq!(index["wire#a"], vec!["Wire.Truncated"]);
        assert_eq!(index["wire#b"], vec!["Wire.BadLength"]);
    }

    #[test]
    fn a_required_class_without_case_fails() {
        // The toy file has neither Oversized nor most other required classes.
        let f = file();
        let err = render(&[("wire.json", &f)]).unwrap_err().to_string();
        assert!(err.contains("has no case"), "{err}");
    }

    #[test]
    fn every_rule_reference_is_well_formed() {
        for r in RULES {
            for reference in r.cases {
                let id = reference.split(' ').next().unwrap_or("");
                assert!(id.contains('#'), "{}: {reference}", r.section);
                assert!(reference.split(' ').count() <= 2, "{}: {reference}", r.section);
            }
            match r.status {
                Status::Required => assert!(!r.cases.is_empty(), "{} {}", r.section, r.rule),
                Status::Gap(_) | Status::Exempt(_) => assert!(r.cases.is_empty()),
            }
        }
    }
}
