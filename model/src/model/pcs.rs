//! (P) post-compromise security (spec/MODEL.md §3–§5): at a point of its choosing the attacker
//! copies one client's whole state — the crate's own `Client`, channel and ratchets included —
//! and from then on stays passive: the copy is handed every frame the network delivers to the
//! victim, in order, and whatever it accepts is what the attacker reads.
//!
//! The ghost decides when a round trip with fresh DH has passed, from the ratchet keys the
//! envelopes carry in the clear (SPEC.md §13): the victim draws a new ratchet key only when it
//! seals the first message of a sending chain, and puts it in that message's header (SPEC.md
//! §12.3), so a key in a header of a message the victim sealed after the copy is one the copy
//! holds exactly when it was in a header of a message sealed before it. A hop message carries
//! no key: every message the victim seals after the copy counts, and the round trip refreshes
//! nothing.

use e2e_protocol::e2e::envelope::EnvelopeBody;
use e2e_protocol::roles::ClientEvent;
use e2e_protocol::suite::PublicKey;
use e2e_protocol::wire::{Codec, Message};

use super::E2eModel;
use crate::world::{Frame, Pcs, Who, World, honest_body, text};

/// The attacker's RNG stream, which the copy draws from: a compromise copies the victim's state,
/// not the randomness the victim draws later.
const ATTACKER: usize = 2;

/// The ratchet public key in the header of the envelope `message` carries, if it is an
/// `E2eSend`.
pub(super) fn ratchet_key(message: &Message) -> Option<PublicKey> {
    let Message::E2eSend { envelope, .. } = message else { return None };
    match EnvelopeBody::decode(envelope.as_bytes()).ok()? {
        EnvelopeBody::Prekey { message, .. } | EnvelopeBody::Ratchet(message) => {
            Some(message.header.dh)
        }
    }
}

impl E2eModel {
    /// (P) copies `victim`'s whole client; the victim's messages sealed so far are those it sent
    /// minus those still waiting for a bundle.
    pub(super) fn copy_state(&self, s: &mut World, victim: Who) -> Option<()> {
        if s.ghost.pcs.is_some() {
            return None;
        }
        let waiting = &s.ghost.waiting[victim.index()];
        let sealed_before =
            (1..=s.ghost.sent[victim.index()]).filter(|k| !waiting.contains(k)).collect();
        s.know.copy = Some(s.clients[victim.index()].clone());
        s.ghost.pcs = Some(Pcs::new(victim, sealed_before));
        Some(())
    }

    /// (P, ghost) `frame`, an honest message of `w`'s, is about to reach the server: files the
    /// ratchet key it carries. Before the copy, and for a message sealed before it, the key is
    /// one a copy holds; a message of the victim sealed after the copy is *fresh* when its key is
    /// not one of those (hop: always). The key is read on a copy of the server, which is thrown
    /// away: the server and the attacker learn nothing from it.
    pub(super) fn note_sealed(&self, s: &mut World, w: Who, frame: &Frame) {
        let Some((from, seq)) = frame.tag.filter(|(from, _)| *from == w) else { return };
        let key = if self.variant.is_e2e() {
            let mut server = s.server.clone();
            let plaintext = self.steps.open(&mut server, w.link(), &frame.bytes);
            plaintext.and_then(|p| ratchet_key(&Message::decode(&p).ok()?))
        } else {
            None
        };
        let before =
            s.ghost.pcs.as_ref().is_none_or(|p| p.victim != from || p.sealed_before.contains(&seq));
        if before {
            if let Some(key) = key {
                s.ghost.ratchet_keys[from.index()].insert(key);
            }
            return;
        }
        let fresh = match key {
            // A hop message carries no key: nothing it could refresh is old.
            None if !self.variant.is_e2e() => true,
            Some(key) => !s.ghost.ratchet_keys[from.index()].contains(&key),
            // An e2e message whose key cannot be read counts as not fresh (never as healing).
            None => false,
        };
        if let Some(pcs) = s.ghost.pcs.as_mut()
            && fresh
        {
            pcs.fresh.insert(seq);
        }
    }

    /// (P) `w` was delivered `frame` and accepted `received` (sender, body) from it: the ghost
    /// notes a fresh message of the victim reaching its peer, and a message sent after that
    /// reaching the victim; then, if `w` is the victim, the copy is handed the same frame. What
    /// the copy accepts it reads. The copy transmits nothing, so its seals are forgotten.
    pub(super) fn copy_delivery(
        &self,
        s: &mut World,
        w: Who,
        frame: &Frame,
        received: &[(String, String)],
    ) {
        let sent = s.ghost.sent;
        let Some(pcs) = s.ghost.pcs.as_mut() else { return };
        let (victim, peer) = (pcs.victim, pcs.victim.peer());
        if w == peer
            && pcs.healed_after.is_none()
            && frame.tag.is_some_and(|(from, seq)| from == victim && pcs.fresh.contains(&seq))
            && !received.is_empty()
        {
            pcs.healed_after = Some(sent[peer.index()]);
        }
        if w != victim {
            return;
        }
        let delivered = (1..=sent[peer.index()])
            .filter(|k| pcs.protects(*k))
            .any(|k| received.iter().any(|(_, r)| *r == honest_body(peer, k)));
        pcs.protected_delivered |= delivered;
        let draw = self.next_draw(s, ATTACKER);
        let Some(copy) = s.know.copy.as_mut() else { return };
        let out = self.steps.handle(copy, &frame.bytes, draw);
        Self::unsealed();
        let Some((out, _)) = out else { return };
        s.draws[ATTACKER] = s.draws[ATTACKER].wrapping_add(1);
        let read: Vec<u8> = out
            .events
            .iter()
            .filter_map(|e| match e {
                ClientEvent::Received { from, body, .. } if from.as_str() == peer.label() => {
                    let body = text(body);
                    (1..=sent[peer.index()]).find(|k| honest_body(peer, *k) == body)
                }
                _ => None,
            })
            .collect();
        if let Some(pcs) = s.ghost.pcs.as_mut() {
            pcs.read.extend(read);
        }
    }
}

/// `post-compromise-security`: the copy reads no message the victim's peer sent after it had
/// accepted a message the victim sealed under a ratchet key drawn after the copy.
pub(super) fn post_compromise(_: &E2eModel, s: &World) -> bool {
    s.ghost.pcs.as_ref().is_none_or(|p| p.read.iter().all(|k| !p.protects(*k)))
}

/// Sometimes (P): the copy reads a message (before the round trip: the attacker is not vacuous).
pub(super) fn copy_reads(_: &E2eModel, s: &World) -> bool {
    s.ghost.pcs.as_ref().is_some_and(|p| !p.read.is_empty())
}

/// Sometimes (P): the victim accepts a message its peer sent after the round trip, so the
/// property above was checked on a message that exists.
pub(super) fn healed(_: &E2eModel, s: &World) -> bool {
    s.ghost.pcs.as_ref().is_some_and(|p| p.protected_delivered)
}
