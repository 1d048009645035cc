//! (M) the third registered user, `mallory` (spec/MODEL.md §3): a client of the honest server with
//! real keys of its own, registered and driven through the crate's own `Client` like Alice and
//! Bob. It sends Alice and Bob what that client builds — messages of its own, and the message
//! Alice sent it, relayed unchanged — and registers clients of its own under their names.
//! The network and the server are honest.

use std::collections::VecDeque;

use e2e_protocol::Error;
use e2e_protocol::e2e::peers::Peers;
use e2e_protocol::roles::{Client, ClientEvent, LinkId};
use e2e_protocol::seal_log;
use e2e_protocol::suite::PrivateKey;
use e2e_protocol::wire::{Body, Envelope, Message, Name};

use super::{Action, E2eModel, SetUp};
use crate::config::Variant;
use crate::world::{FORGED_BODY, Frame, Party, Who, World, body, honest_body, text};

/// M's registered name.
pub const MALLORY: &str = "mallory";

/// The server's link number for M's connection (N's registrations use link 3).
pub const MALLORY_LINK: LinkId = LinkId(4);

/// What Alice says to M in the set-up: not an honest message of the run.
pub const GREETING: &str = "hi mallory";

/// The attacker's RNG stream (`world::rng`), which M's client and the honest server draw from.
const ATTACKER: usize = 2;

/// A message sent to M in the set-up, as M's channel delivered it to M.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Received {
    /// Its sender.
    pub from: Who,
    /// Hop: the body. e2e: the envelope, exactly as the server relayed it.
    pub content: Content,
}

/// What a [`Received`] message carries.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Content {
    /// A hop body.
    Hop(Body),
    /// An e2e envelope.
    E2e(Envelope),
}

/// Registers M with the server (and, in e2e, publishes its bundle), then Alice sends M
/// [`GREETING`]. Returns M's client and the greeting as M received it.
///
/// The crate's `Client` does not hand out the envelope of a message it receives, but M's own
/// code would read it off its channel. The server relays an envelope unchanged (SPEC.md §15.2),
/// so the model takes the greeting as its sender handed it to the server, opened on a copy of
/// the server: the bytes M's channel delivered.
pub(super) fn set_up(
    variant: Variant,
    roles: &mut SetUp<'_>,
    r: &mut rand_chacha::ChaCha20Rng,
) -> Result<(Client, Vec<Received>), Error> {
    let name = Name::new(MALLORY)?;
    let key = PrivateKey::generate(r);
    let server_key = roles.server.public_key();
    let mut mallory = if variant.is_e2e() {
        Client::with_e2e(name.clone(), key, server_key, Peers::generate(r))
    } else {
        Client::new(name.clone(), key, server_key)
    };
    let first_sent = roles.log.sent.len();
    let init = mallory.connect(r)?;
    roles.log.seals.record(Party::Attacker, seal_log::drain());
    pump_with(roles, &mut mallory, MALLORY_LINK, init, r)?;
    if variant.is_e2e() {
        let upload = mallory.upload_bundle()?;
        roles.log.seals.record(Party::Attacker, seal_log::drain());
        pump_with(roles, &mut mallory, MALLORY_LINK, upload, r)?;
    }
    // Alice greets M; Bob does not, so that M has no session with him yet: it fetches his bundle
    // (taking one of his one-time prekeys) when it first writes to him, at a step of its choosing.
    for w in [Who::Alice] {
        let greeting = Body::new(GREETING.as_bytes().to_vec())?;
        let client = &mut roles.clients[w.index()];
        let sent = if variant.is_e2e() {
            client.send_e2e(&name, greeting, r)?.transmit
        } else {
            vec![client.send(&name, greeting)?.1]
        };
        roles.log.seals.record(Party::Client(w), seal_log::drain());
        for frame in sent {
            pump_with(roles, &mut mallory, w.link(), frame, r)?;
        }
    }
    let received = roles.log.sent[first_sent..]
        .iter()
        .filter_map(|(from, message)| {
            let content = match message {
                Message::Send { to, body, .. } if to.as_str() == MALLORY => {
                    Content::Hop(body.clone())
                }
                Message::E2eSend { to, envelope, .. } if to.as_str() == MALLORY => {
                    Content::E2e(envelope.clone())
                }
                _ => return None,
            };
            Some(Received { from: *from, content })
        })
        .collect();
    Ok((mallory, received))
}

/// [`SetUp::pump`] with M's client on its link.
fn pump_with(
    roles: &mut SetUp<'_>,
    mallory: &mut Client,
    link: LinkId,
    frame: Vec<u8>,
    r: &mut rand_chacha::ChaCha20Rng,
) -> Result<(), Error> {
    let mut with_m = SetUp {
        server: &mut *roles.server,
        clients: &mut *roles.clients,
        mallory: Some(mallory),
        log: &mut *roles.log,
    };
    with_m.pump(link, frame, r)
}

impl E2eModel {
    /// M's actions, each spending one injection: a message of its own to Alice or Bob, a relay of
    /// the message it received to either, and a registration under Alice's or Bob's name with a
    /// key of its own ([`Action::Impersonate`], N's code: M is any user of the server).
    pub(super) fn mallory_actions(&self, actions: &mut Vec<Action>) {
        for w in Who::BOTH {
            actions.push(Action::MSend(w));
            actions.extend((0..self.inbox.len()).map(|i| Action::MRelay(i, w)));
            actions.push(Action::Impersonate(w));
        }
    }

    /// (M) M's client sends [`FORGED_BODY`] to `to`, as its own message.
    pub(super) fn mallory_send(&self, s: &mut World, to: Who) -> Option<()> {
        Self::spend(s)?;
        let content = body(FORGED_BODY)?;
        let draw = self.next_draw(s, ATTACKER);
        let client = s.know.mallory.as_mut()?;
        let frames = if self.variant.is_e2e() {
            let out = self.steps.send_e2e(client, &to.name(), content, draw)?;
            s.draws[ATTACKER] = s.draws[ATTACKER].wrapping_add(1);
            out.transmit
        } else {
            vec![self.steps.send_hop(client, &to.name(), content)?]
        };
        Self::sealed(s, Party::Attacker);
        self.mallory_pump(s, frames)
    }

    /// (M) M's client sends received message `index` to `to` unchanged: hop the body, e2e the
    /// envelope (`Client::submit_e2e`), which claims the identity of the client that sealed it
    /// (a prekey message carries it).
    pub(super) fn mallory_relay(&self, s: &mut World, index: usize, to: Who) -> Option<()> {
        let content = self.inbox.get(index)?.content.clone();
        Self::spend(s)?;
        let client = s.know.mallory.as_mut()?;
        let frame = match content {
            Content::Hop(b) => self.steps.send_hop(client, &to.name(), b)?,
            Content::E2e(envelope) => self.steps.submit_e2e(client, &to.name(), envelope)?,
        };
        Self::sealed(s, Party::Attacker);
        self.mallory_pump(s, vec![frame])
    }

    /// Hands M's frames to the honest server, and the server's answers on M's link to M's
    /// client, until none is left; what the server sends Alice and Bob joins their queues as
    /// injected frames. M's part happens within one step: M chooses when it sends, and handling
    /// its answers at once only lets it know more sooner (it need not use what it knows).
    fn mallory_pump(&self, s: &mut World, frames: Vec<Vec<u8>>) -> Option<()> {
        let mut queue = VecDeque::from(frames);
        let from_m = Frame::injected(vec![], None);
        while let Some(bytes) = queue.pop_front() {
            let draw = self.draw(s, ATTACKER);
            let Some((mut out, _)) = self.steps.serve(&mut s.server, MALLORY_LINK, &bytes, draw)
            else {
                Self::unsealed();
                s.ghost.forgery_rejected = true;
                continue;
            };
            Self::sealed(s, Party::Server);
            let (to_m, others): (Vec<_>, Vec<_>) =
                out.transmit.into_iter().partition(|(l, _)| *l == MALLORY_LINK);
            out.transmit = others;
            self.route(s, None, &from_m, out);
            for (_, frame) in to_m {
                let draw = self.next_draw(s, ATTACKER);
                let client = s.know.mallory.as_mut()?;
                let Some((reply, _)) = self.steps.handle(client, &frame, draw) else {
                    Self::unsealed();
                    continue;
                };
                s.draws[ATTACKER] = s.draws[ATTACKER].wrapping_add(1);
                Self::sealed(s, Party::Attacker);
                for event in &reply.events {
                    if let ClientEvent::Received { body, .. } = event {
                        Self::learn(s, &text(body), false);
                    }
                }
                queue.extend(reply.transmit);
            }
        }
        Some(())
    }
}

/// (M) `delivery`: M cannot keep an honest message from its recipient. Against M nothing drops a
/// frame, so once nothing is in flight, both clients are online (a message for a client that is
/// offline waits in its mailbox) and every honest message is sent, each must have been accepted
/// by its recipient as from its sender.
pub(super) fn delivery(model: &E2eModel, s: &World) -> bool {
    let quiet = s.net.is_empty()
        && Who::BOTH.into_iter().all(|w| {
            s.ghost.sent[w.index()] == model.messages(w) && s.clients[w.index()].is_connected()
        });
    !quiet
        || Who::BOTH.into_iter().all(|w| {
            (1..=s.ghost.sent[w.index()]).all(|k| {
                s.ghost
                    .accepted
                    .iter()
                    .any(|a| a.by == w.peer() && a.from == w.label() && a.body == honest_body(w, k))
            })
        })
}

/// Sometimes (M): Alice or Bob accepts a message from M, as from M (M is a working user).
pub(super) fn accepted(_: &E2eModel, s: &World) -> bool {
    s.ghost.accepted.iter().any(|a| a.from == MALLORY)
}
