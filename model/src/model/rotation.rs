//! Signed-prekey rotation (spec/MODEL.md §3–§4): at a step of its choosing a client makes a new
//! signed prekey and publishes it (`Client::rotate_signed_prekey`, whose upload is an ordinary
//! frame of the run), keeping the previous one (SPEC.md §10.2). A prekey message built on the
//! bundle fetched before the rotation must still open; one built on a signed prekey rotated away
//! twice must be refused. Each rotation counts against `--rotations`.
//!
//! The ghost learns which signed prekey a prekey message names from the envelope's prekey
//! header, which travels in the clear inside the channel (SPEC.md §13), read as the frame reaches
//! the server — on a copy of the honest server, thrown away, or by the malicious server, which
//! opens it anyway — and which signed prekeys a client rotated away from the client's own
//! `Client::signed_prekey_id` before each rotation.

use e2e_protocol::Error;
use e2e_protocol::e2e::E2eError;
use e2e_protocol::e2e::envelope::EnvelopeBody;
use e2e_protocol::roles::ClientEvent;
use e2e_protocol::wire::{Codec, Message};

use super::{Action, E2eModel};
use crate::config::Variant;
use crate::world::{Dest, Frame, Tag, Who, World};

/// The signed prekey id the prekey message in `message` names, if it is an `E2eSend` of one.
fn named_signed_prekey(message: &Message) -> Option<u32> {
    let Message::E2eSend { envelope, .. } = message else { return None };
    match EnvelopeBody::decode(envelope.as_bytes()).ok()? {
        EnvelopeBody::Prekey { prekey, .. } => Some(prekey.signed_prekey_id),
        EnvelopeBody::Ratchet(_) => None,
    }
}

impl E2eModel {
    /// Whether rotations are steps of this cell's runs: in `e2e-unverified`, the variant whose
    /// runs fetch bundles (in `e2e-verified` both sessions exist before the run, spec/MODEL.md
    /// §2, so no bundle a rotation changes is fetched), within the bound.
    pub(super) const fn rotations_explored(&self) -> bool {
        matches!(self.variant, Variant::E2eUnverified) && self.bounds.rotations > 0
    }

    /// `Rotate(w)` for each client that may rotate now: connected, its bundle published, and
    /// rotations left.
    pub(super) fn rotation_actions(&self, s: &World, actions: &mut Vec<Action>) {
        if !self.rotations_explored() || s.life.rotations >= self.bounds.rotations {
            return;
        }
        for w in Who::BOTH {
            if s.clients[w.index()].is_connected() && s.life.uploaded[w.index()] {
                actions.push(Action::Rotate(w));
            }
        }
    }

    /// `w` rotates its signed prekey and sends the upload that publishes the new one.
    pub(super) fn rotate(&self, s: &mut World, w: Who) -> Option<()> {
        if !self.rotations_explored() || s.life.rotations >= self.bounds.rotations {
            return None;
        }
        let old = s.clients[w.index()].signed_prekey_id()?;
        let draw = self.next_draw(s, w.index());
        let frame = self.steps.rotate(&mut s.clients[w.index()], draw)?;
        s.draws[w.index()] = s.draws[w.index()].wrapping_add(1);
        s.life.rotations += 1;
        s.ghost.rotation.retired[w.index()].push(old);
        self.push(s, Dest::Server(w), Frame::honest(frame, None));
        Some(())
    }

    /// (ghost) `message`, honest message `tag` of its sender, reached the server: files the
    /// signed prekey it names if it is a prekey message.
    pub(super) fn note_prekey(&self, s: &mut World, message: &Message, tag: Option<Tag>) {
        if !self.rotations_explored() {
            return;
        }
        if let Some(tag) = tag
            && let Some(id) = named_signed_prekey(message)
        {
            s.ghost.rotation.names.insert(tag, id);
        }
    }

    /// (ghost) `frame`, on `w`'s link, is about to reach the honest server: reads it on a copy of
    /// the server, thrown away, and files what [`Self::note_prekey`] files.
    pub(super) fn note_prekey_frame(&self, s: &mut World, w: Who, frame: &Frame) {
        if !self.rotations_explored() || frame.tag.is_none_or(|(from, _)| from != w) {
            return;
        }
        let mut server = s.server.clone();
        let message = self
            .steps
            .open(&mut server, w.link(), &frame.bytes)
            .and_then(|p| Message::decode(&p).ok());
        if let Some(message) = message {
            self.note_prekey(s, &message, frame.tag);
        }
    }

    /// (ghost) `w` handled `frame`, with `events`: whether a session started from a rotated-away
    /// signed prekey, and whether retention was kept.
    pub(super) fn note_prekey_delivery(
        s: &mut World,
        w: Who,
        frame: &Frame,
        events: &[ClientEvent],
    ) {
        let Some(tag) = frame.tag.filter(|(from, _)| *from == w.peer()) else { return };
        let Some(&id) = s.ghost.rotation.names.get(&tag) else { return };
        let retired = &s.ghost.rotation.retired[w.index()];
        let Some(at) = retired.iter().position(|r| *r == id) else { return };
        // The last one rotated away is the previous signed prekey, kept; the others are deleted.
        let kept = at + 1 == retired.len();
        let started = events.iter().any(|e| matches!(e, ClientEvent::SessionStarted { .. }));
        let accepted = events.iter().any(|e| matches!(e, ClientEvent::Received { .. }));
        let unknown = events.iter().any(|e| {
            matches!(e, ClientEvent::Dropped { error: Error::E2e(E2eError::UnknownPrekey { id: u }) } if *u == id)
        });
        let r = &mut s.ghost.rotation;
        r.from_previous |= started && accepted && kept;
        r.past_retention_accepted |= started && accepted && !kept;
        r.past_retention_refused |= unknown && !kept;
    }
}

/// Always: no session starts from a signed prekey its responder rotated away twice (SPEC.md
/// §10.2 keeps exactly one previous signed prekey).
pub(super) fn retention(_: &E2eModel, s: &World) -> bool {
    !s.ghost.rotation.past_retention_accepted
}

/// Sometimes: a session started from the responder's previous signed prekey — the bundle was
/// fetched before the rotation — and its first message was accepted.
pub(super) fn delivered_from_previous(_: &E2eModel, s: &World) -> bool {
    s.ghost.rotation.from_previous
}

/// Sometimes: an honest prekey message naming a signed prekey rotated away twice was refused
/// (`UnknownPrekey` with its id: SPEC.md §10.2).
pub(super) fn refused_past_retention(_: &E2eModel, s: &World) -> bool {
    s.ghost.rotation.past_retention_refused
}
