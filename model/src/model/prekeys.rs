//! A one-time-prekey store that runs low (spec/MODEL.md §2–§4; SPEC.md §10.2, §15.2–§15.3).
//!
//! With `--prekeys-low`, in e2e, the set-up leaves each client whose bundle it publishes with `PREKEYS_LOW_WATER + 1`
//! one-time prekeys at the server: other users ("fans", registered clients of the crate) each
//! fetched its bundle once, taking one key each (one per requester, SPEC.md §15.2), and went
//! away. So the first fetch of the run that takes one of its keys leaves the server low, and the
//! honest server seals `PrekeysLow` to the owner; the owner's client answers with an upload of
//! new one-time prekeys (the top-up), an ordinary frame of the run that the network attacker may
//! drop and the malicious server may withhold.
//!
//! Two ways the top-up goes wrong are explored besides (spec/MODEL.md §3–§4). The malicious
//! server sends a `PrekeysLow` of its own (`ForgeLow`), at any time, and the client tops up on
//! its word; and the network attacker closes a link with the top-up in flight, so that the
//! upload is lost. Either is a trigger of `recovery`: the conversation must still get through.

use e2e_protocol::Error;
use e2e_protocol::e2e::PREKEYS_LOW_WATER;
use e2e_protocol::e2e::peers::Peers;
use e2e_protocol::roles::{Client, ClientEvent, LinkId, Server};
use e2e_protocol::seal_log;
use e2e_protocol::suite::PrivateKey;
use e2e_protocol::wire::{Body, Codec, Message, Name};

use super::{Action, E2eModel};
use crate::world::{Frame, Who, World};

/// The first link number of the set-up's fans (clients use 1 and 2, N's registrations 3, M 4,
/// the compromise oracle 11 and 12).
const FAN_LINKS: u64 = 20;

/// How many one-time prekeys the set-up leaves each published client at the server: one more
/// than `PREKEYS_LOW_WATER`, so that the first fetch of the run that takes one sends `PrekeysLow`.
pub const LEFT: usize = PREKEYS_LOW_WATER + 1;

/// Other users take one-time prekeys of every client whose bundle `server` holds, one each,
/// until [`LEFT`] are left for each (spec/MODEL.md §2). Each fan is the crate's `Client`: it
/// registers, asks for the bundles (`Client::send_e2e`, whose first frame is the request), and
/// leaves with the answers unread. The fans' channels are theirs alone; their seals and the
/// server's on their links are not logged.
pub(super) fn drain(server: &mut Server, r: &mut rand_chacha::ChaCha20Rng) -> Result<(), Error> {
    let owners: Vec<Name> = Who::BOTH
        .map(Who::name)
        .into_iter()
        .filter(|name| server.one_time_prekeys(name) > LEFT)
        .collect();
    let mut fan_number = 0;
    while owners.iter().any(|name| server.one_time_prekeys(name) > LEFT) {
        let link = LinkId(FAN_LINKS + fan_number);
        let name = Name::new(&format!("fan{fan_number}"))?;
        let key = PrivateKey::generate(r);
        let mut fan = Client::with_e2e(name, key, server.public_key(), Peers::generate(r));
        let mut to_server = vec![fan.connect(r)?];
        while !to_server.is_empty() {
            let out = server.handle(link, &to_server.remove(0), r)?;
            for (_, frame) in out.transmit.into_iter().filter(|(l, _)| *l == link) {
                to_server.extend(fan.handle(&frame, r)?.transmit);
            }
        }
        let above: Vec<&Name> =
            owners.iter().filter(|name| server.one_time_prekeys(name) > LEFT).collect();
        for owner in above {
            let request = fan.send_e2e(owner, Body::new(b"hi".to_vec())?, r)?;
            for frame in request.transmit {
                // The answer goes to the fan, which has left: nothing reaches Alice or Bob.
                server.handle(link, &frame, r)?;
            }
        }
        server.close_link(link);
        fan_number += 1;
    }
    let _fans = seal_log::drain();
    Ok(())
}

impl E2eModel {
    /// (S, e2e, `--prekeys-low`) a forged `PrekeysLow` to each connected client, while the budget
    /// lasts.
    pub(super) fn forge_low_actions(&self, s: &World, actions: &mut Vec<Action>) {
        if !self.bounds.prekeys_low || !self.variant.is_e2e() || !self.server_attacker() {
            return;
        }
        for w in Who::BOTH {
            if s.clients[w.index()].is_connected() {
                actions.push(Action::ForgeLow(w));
            }
        }
    }

    /// (S) seals `PrekeysLow` to `w` of its own accord: no fetch took a key, or not this many.
    /// The count is what the server really holds for `w`; a client makes
    /// `min(ONE_TIME_PREKEYS_PER_UPLOAD, MAX_ONE_TIME_PREKEYS − n)` keys (SPEC.md §15.3), the same
    /// batch for every `n` up to 90, so within the model's stores (at most a few dozen keys)
    /// every lie about the count is this one (spec/MODEL.md §3).
    pub(super) fn forge_low(&self, s: &mut World, w: Who) -> Option<()> {
        let held = s.server.one_time_prekeys(&w.name());
        let notice = Message::PrekeysLow { one_time_prekeys: u16::try_from(held).ok()? };
        Self::spend(s)?;
        let bytes = self.steps.seal(&mut s.server, w.link(), &notice)?;
        s.net.to_client[w.index()].push(Frame::injected(bytes, None));
        Some(())
    }

    /// (ghost) `w` handled a frame with `events`, `injected` if the attacker made it: whether it
    /// answered `PrekeysLow` with a top-up — on a notice the attacker forged, if `injected` —
    /// and whether the server stored a top-up of its.
    pub(super) fn note_top_up(s: &mut World, w: Who, injected: bool, events: &[ClientEvent]) {
        for event in events {
            match event {
                ClientEvent::PrekeysReplenished { .. } => {
                    s.ghost.replenished[w.index()] = true;
                    if injected {
                        s.ghost.forged_notices = s.ghost.forged_notices.saturating_add(1);
                    }
                }
                ClientEvent::BundleStored { .. } if s.ghost.replenished[w.index()] => {
                    s.ghost.topped_up = true;
                    s.ghost.topped_up_again |= s.ghost.top_up_lost[w.index()];
                }
                _ => {}
            }
        }
    }
}

/// Sometimes: a client answered `PrekeysLow` with new one-time prekeys, and the server stored
/// them (the client heard `BundleStored` after its top-up).
pub(super) fn topped_up(_: &E2eModel, s: &World) -> bool {
    s.ghost.topped_up
}

/// Whether `frames`, in flight to the server on `w`'s link, are all top-ups: uploads that keep
/// the identity and signed prekey `server` stores for `w` and add one-time prekeys, opened in
/// order on a copy of `server` (its channel's nonces move with each). Losing only these costs
/// the directory nothing it holds: its signed prekey stays, and so do the one-time prekeys it
/// has left (spec/MODEL.md §4).
pub(super) fn only_top_ups(server: &Server, w: Who, frames: &[Frame]) -> bool {
    let mut opener = server.clone();
    let Some(stored) = server.clone().take_bundle(&w.name()) else { return false };
    frames.iter().all(|frame| {
        let Ok((_, plaintext)) = opener.open_transport(w.link(), &frame.bytes) else {
            return false;
        };
        matches!(
            Message::decode(&plaintext),
            Ok(Message::UploadBundle { bundle })
                if *bundle.identity() == stored.identity
                    && *bundle.signed_prekey() == stored.signed_prekey
                    && !bundle.one_time_prekeys().is_empty()
        )
    })
}

/// Sometimes: `recovery` judged a state after a client topped up on a `PrekeysLow` the
/// malicious server forged, and the conversation got through.
pub(super) fn recovered_after_forged_notice(model: &E2eModel, s: &World) -> bool {
    s.ghost.forged_notices > 0 && super::recovery::recovered_from(model, s)
}

/// Sometimes: `recovery` judged a state after a top-up was lost with its link, and the
/// conversation got through.
pub(super) fn recovered_after_lost_top_up(model: &E2eModel, s: &World) -> bool {
    s.ghost.top_up_lost.contains(&true) && super::recovery::recovered_from(model, s)
}

/// Sometimes: a client whose top-up was lost topped up again — on the `PrekeysLow` the server
/// sends when the client's next link is confirmed (SPEC.md §5.1 step 5) — and the server stored
/// it.
pub(super) fn topped_up_again(_: &E2eModel, s: &World) -> bool {
    s.ghost.topped_up_again
}
