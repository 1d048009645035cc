//! A one-time-prekey store that runs low (spec/MODEL.md §2–§4; SPEC.md §10.2, §15.2–§15.3).
//!
//! With `--prekeys-low`, in e2e, the set-up leaves each client whose bundle it publishes with `PREKEYS_LOW_WATER + 1`
//! one-time prekeys at the server: other users ("fans", registered clients of the crate) each
//! fetched its bundle once, taking one key each (one per requester, SPEC.md §15.2), and went
//! away. So the first fetch of the run that takes one of its keys leaves the server low, and the
//! honest server seals `PrekeysLow` to the owner; the owner's client answers with an upload of
//! new one-time prekeys (the top-up), an ordinary frame of the run that the network attacker may
//! drop and the malicious server may withhold.

use e2e_protocol::Error;
use e2e_protocol::e2e::PREKEYS_LOW_WATER;
use e2e_protocol::e2e::peers::Peers;
use e2e_protocol::roles::{Client, ClientEvent, LinkId, Server};
use e2e_protocol::seal_log;
use e2e_protocol::suite::PrivateKey;
use e2e_protocol::wire::{Body, Name};

use super::E2eModel;
use crate::world::{Who, World};

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
    /// (ghost) `w` handled a frame with `events`: whether it answered `PrekeysLow` with a top-up,
    /// and whether the server stored a top-up of its.
    pub(super) fn note_top_up(s: &mut World, w: Who, events: &[ClientEvent]) {
        for event in events {
            match event {
                ClientEvent::PrekeysReplenished { .. } => s.ghost.replenished[w.index()] = true,
                ClientEvent::BundleStored { .. } if s.ghost.replenished[w.index()] => {
                    s.ghost.topped_up = true;
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
