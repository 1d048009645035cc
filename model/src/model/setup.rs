//! The set-up under attack (spec/MODEL.md §2–§3): against the attackers that hold the wire, in
//! `hop` and `e2e-unverified`, the run starts with Bob offline (with `--set-ups 2`, Alice too),
//! their names bound on an earlier connection, and each such client's handshake (`Connect`), key
//! confirmation (`Ready`) and bundle upload are steps of the run, interleaved with every step of
//! the attacker. The
//! malicious server may answer a bundle request with `NoBundle`, with the real bundle without
//! its one-time prekey, with an old bundle (the signed prekey a rotation replaced), or with the
//! real identity and a signed prekey of its own; a user whose client gave a message up for want
//! of a bundle sends it again, once.

use e2e_protocol::wire::{Codec, FetchedBundle, Message, UploadedBundle};

use super::E2eModel;
use crate::config::{Attacker, Bounds, Variant};
use crate::world::{Dest, Frame, Who, World};

/// How the malicious server answers a bundle request itself (spec/MODEL.md §3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Reply {
    /// `NoBundle`: as if the peer had published none.
    NoBundle,
    /// The peer's real bundle without a one-time prekey, as when they have run out.
    WithoutOneTime,
    /// The peer's bundle with the signed prekey its last rotation replaced, which S kept from the
    /// upload that published it (and the one-time prekey the directory would hand out now).
    OldSignedPrekey,
    /// The peer's real identity with the signed prekey (and next one-time prekey) of S's
    /// impostor of the peer: keys S made, whose signature — by the impostor's identity, over the
    /// impostor's `IK_dh` — cannot verify under the peer's `IK_sig` (SPEC.md §10.3 step 3).
    OwnSignedPrekey,
}

impl Reply {
    /// Every answer.
    pub const ALL: [Self; 4] =
        [Self::NoBundle, Self::WithoutOneTime, Self::OldSignedPrekey, Self::OwnSignedPrekey];
}

/// Whether the set-up is explored under attack in this cell: against N, S and C, whose attacker
/// holds the wire, except in `e2e-verified`, whose users compare safety numbers on sessions the
/// set-up starts, before the conversation (spec/MODEL.md §2); and only if `bounds` explore at
/// least one client's set-up. M and P leave the network honest.
#[must_use]
pub const fn attacked(variant: Variant, attacker: Attacker, bounds: Bounds) -> bool {
    attacker.holds_the_wire() && !matches!(variant, Variant::E2eVerified) && bounds.set_ups > 0
}

/// Whether `w`'s set-up is a step of the run, given that the set-up is attacked: Bob's with
/// `set_ups` 1, both with 2.
#[must_use]
pub const fn explored(w: Who, bounds: Bounds) -> bool {
    bounds.set_ups >= 2 || (bounds.set_ups == 1 && matches!(w, Who::Bob))
}

impl E2eModel {
    /// `w`'s client starts its handshake (`Client::connect`): `HandshakeInit` to the server.
    pub(super) fn connect(&self, s: &mut World, w: Who) -> Option<()> {
        if s.life.connecting[w.index()] || !self.reconnect_allowed(s, w) {
            return None;
        }
        let draw = self.next_draw(s, w.index());
        let frame = self.steps.connect(&mut s.clients[w.index()], draw)?;
        s.draws[w.index()] = s.draws[w.index()].wrapping_add(1);
        s.life.connecting[w.index()] = true;
        s.life.uploaded_here[w.index()] = false;
        self.push(s, Dest::Server(w), Frame::honest(frame, None));
        Some(())
    }

    /// `w`'s client reported `Connected`: in e2e its driver publishes its bundle now if it has not
    /// yet (the upload goes out behind `Ready`).
    pub(super) fn on_connected(&self, s: &mut World, w: Who) {
        if !self.variant.is_e2e() || s.life.uploaded[w.index()] {
            return;
        }
        if let Some(frame) = self.steps.upload(&mut s.clients[w.index()]) {
            s.life.uploaded[w.index()] = true;
            s.life.uploaded_here[w.index()] = true;
            self.push(s, Dest::Server(w), Frame::honest(frame, None));
        }
    }

    /// `w`'s client gave up `discarded` waiting messages (`SendFailed`): its user sends them
    /// again, once per client — the ghost counts them as not sent, so `Send(w)` is enabled again.
    /// They were never sealed, so no property has seen them.
    pub(super) fn retry(s: &mut World, w: Who, discarded: usize) {
        if s.ghost.retried[w.index()] || discarded == 0 {
            return;
        }
        let sent = &mut s.ghost.sent[w.index()];
        *sent = sent.saturating_sub(u8::try_from(discarded).unwrap_or(u8::MAX));
        s.ghost.retried[w.index()] = true;
    }

    /// (S) answers the bundle request at the head of `w`'s link itself, with `reply`; `None` if
    /// the head is no bundle request. The request is opened first (the channel advances).
    pub(super) fn answer(&self, s: &mut World, w: Who, reply: Reply) -> Option<()> {
        let frame = s.net.to_server[w.index()].first()?.clone();
        let mut server = s.server.clone();
        let plaintext = self.steps.open(&mut server, w.link(), &frame.bytes)?;
        let Ok(Message::FetchBundle { name }) = Message::decode(&plaintext) else { return None };
        let answer = match reply {
            Reply::NoBundle => Message::NoBundle { name },
            Reply::WithoutOneTime => {
                // Read on a copy: the one-time prekey stays in the directory.
                let mut bundle = server.clone().make_mut().take_bundle(&name)?;
                bundle.one_time_prekey.take()?;
                Message::Bundle { name, bundle }
            }
            Reply::OldSignedPrekey => {
                let owner = Who::from_name(name.as_str())?;
                let old = s.know.old_signed_prekeys[owner.index()]?;
                let mut bundle = server.clone().make_mut().take_bundle(&name)?;
                bundle.signed_prekey = old;
                Message::Bundle { name, bundle }
            }
            Reply::OwnSignedPrekey => {
                let owner = Who::from_name(name.as_str())?;
                let identity = server.clone().make_mut().take_bundle(&name)?.identity;
                let impostors = s.know.impostors.make_mut();
                let impostor = impostors.iter_mut().find(|i| i.impersonates == owner)?;
                let bundle = FetchedBundle { identity, ..super::fetched_bundle(impostor) };
                Message::Bundle { name, bundle }
            }
        };
        Self::spend(s)?;
        s.net.to_server[w.index()].remove(0);
        s.server = server;
        let bytes = self.steps.seal(&mut s.server, w.link(), &answer)?;
        s.net.to_client[w.index()].push(Frame::injected(bytes, None));
        Some(())
    }

    /// (S) `from`'s upload `bundle` is about to reach the directory: if it replaces the signed
    /// prekey stored now (a rotation), S keeps the one it replaces, read on a copy.
    pub(super) fn keep_old_signed_prekey(&self, s: &mut World, from: Who, bundle: &UploadedBundle) {
        if !self.set_up_attacked {
            return;
        }
        let stored = s.server.clone().make_mut().take_bundle(&from.name());
        if let Some(stored) = stored
            && stored.identity == *bundle.identity()
            && stored.signed_prekey != *bundle.signed_prekey()
        {
            s.know.old_signed_prekeys[from.index()] = Some(stored.signed_prekey);
        }
    }

    /// Whether a client's first registration is a step of the run (`--first-registration`), so
    /// that the network attacker's `Impersonate` races it in e2e too: its client registers the
    /// name with a key of its own and sends a hop forgery, which an e2e client refuses
    /// (spec/MODEL.md §2–§3).
    pub(super) const fn registration_raced(&self) -> bool {
        self.set_up_attacked && self.bounds.first_registration
    }

    /// Whether `w` is connected and, in e2e, has sent its bundle: its part of the set-up is done.
    pub(super) fn set_up_done(&self, s: &World, w: Who) -> bool {
        s.clients[w.index()].is_connected()
            && (!self.variant.is_e2e() || s.life.uploaded[w.index()])
    }
}

/// Sometimes: a user sent a message again after its client gave it up for want of a bundle, and
/// the peer accepted a message from it.
pub(super) fn delivered_after_retry(_: &E2eModel, s: &World) -> bool {
    Who::BOTH.into_iter().any(|w| s.ghost.retried[w.index()] && s.ghost.delivered(w.peer()))
}

/// Sometimes: a session started from a bundle without a one-time prekey, and messages went both
/// ways.
pub(super) fn both_ways_without_one_time(_: &E2eModel, s: &World) -> bool {
    s.ghost.without_one_time && s.ghost.delivered(Who::Alice) && s.ghost.delivered(Who::Bob)
}

/// Sometimes: a role refused an injected frame during the set-up, and messages went both ways.
pub(super) fn both_ways_after_set_up_refusal(_: &E2eModel, s: &World) -> bool {
    s.ghost.refused_in_set_up && s.ghost.delivered(Who::Alice) && s.ghost.delivered(Who::Bob)
}
