//! Disconnection, reconnection and a server restart (spec/MODEL.md §3): a client's link closes
//! (`Close`), the client connects again on a fresh channel (`Connect`, the crate's Noise IK
//! handshake through its `Client`), messages for it wait in its mailbox meanwhile and reach it
//! after its `Ready`; the server restarts (`Restart`) from its durable state (`Server::snapshot`,
//! `Server::restore`: bindings, mailboxes, bundles), and every channel is gone. The server is
//! honest in these cells; each close or restart counts against the bound `--outages`, and where
//! the attacker holds the wire (N, and C in hop) it is the attacker's act and spends its budget
//! too.

use e2e_protocol::roles::Server;

use super::{Action, E2eModel};
use crate::world::{Dest, Who, World};

impl E2eModel {
    /// Whether outages are explored in this cell: the server is honest (the malicious server
    /// closes and forgets what it likes anyway) and the bound allows one more.
    fn outage_allowed(&self, s: &World) -> bool {
        !self.server_attacker()
            && s.life.outages < self.bounds.outages
            && (!self.lossy() || s.know.budget > 0)
    }

    /// Counts one outage (and, where the attacker holds the wire, spends its budget).
    fn count_outage(&self, s: &mut World) -> Option<()> {
        if self.lossy() {
            Self::spend(s)?;
        }
        s.life.outages += 1;
        Some(())
    }

    /// Whether the network of this cell loses what is in flight when a connection ends: where
    /// the attacker holds the wire (it could drop those frames anyway). Elsewhere (M, P: the
    /// network is honest) a link closes, and the server restarts, only with nothing in flight on
    /// it, so nothing is lost.
    fn lossy(&self) -> bool {
        self.attacker.holds_the_wire()
    }

    /// The outages enabled in `s`, and a reconnection for each client that is offline.
    pub(super) fn outage_actions(&self, s: &World, actions: &mut Vec<Action>) {
        for w in Who::BOTH {
            if !s.life.connecting[w.index()] && self.reconnect_allowed(s, w) {
                actions.push(Action::Connect(w));
            }
        }
        if !self.outage_allowed(s) {
            return;
        }
        for w in Who::BOTH {
            let idle = Self::idle(s, w);
            if s.clients[w.index()].is_connected() && (self.lossy() || idle) {
                actions.push(Action::Close(w));
            }
        }
        if self.lossy() || Who::BOTH.into_iter().all(|w| Self::idle(s, w)) {
            actions.push(Action::Restart);
        }
    }

    /// Whether `w`'s client may connect after the links of its that a refusal closed: at most
    /// `--budget` times. Every such refusal is the attacker's doing — an injected frame, or an
    /// honest one its drop put out of step — but drops are free, so without this bound a run could
    /// drop, refuse and reconnect for ever, each time on fresh draws (spec/MODEL.md §4).
    pub(super) fn reconnect_allowed(&self, s: &World, w: Who) -> bool {
        s.life.refused_closes[w.index()] <= self.bounds.budget
    }

    /// Whether nothing is in flight on `w`'s link.
    fn idle(s: &World, w: Who) -> bool {
        s.net.to_server[w.index()].is_empty() && s.net.to_client[w.index()].is_empty()
    }

    /// `w`'s connection ends: the server forgets the link, the client its channel, and the frames
    /// in flight on it are lost (a drop: `recovery` is not judged after it).
    pub(super) fn close(&self, s: &mut World, w: Who) -> Option<()> {
        if !self.outage_allowed(s) || !s.clients[w.index()].is_connected() {
            return None;
        }
        self.count_outage(s)?;
        s.life.closed = true;
        let before = s.server.clone();
        s.server.make_mut().close_link(w.link());
        s.clients[w.index()].make_mut().disconnect();
        s.life.connecting[w.index()] = false;
        Self::lose(s, w, &before);
        Some(())
    }

    /// The server restarts from its durable state: bindings, mailboxes and bundles survive
    /// (`Server::restore` of its `snapshot`), every channel is gone, and every client is offline.
    pub(super) fn restart(&self, s: &mut World) -> Option<()> {
        if !self.outage_allowed(s) {
            return None;
        }
        let restored = Server::new(self.server_key.clone()).restore(s.server.snapshot()).ok()?;
        self.count_outage(s)?;
        s.life.restarted = true;
        let before = std::mem::replace(&mut s.server, crate::world::Shared::new(restored));
        for w in Who::BOTH {
            s.clients[w.index()].make_mut().disconnect();
            s.life.connecting[w.index()] = false;
            Self::lose(s, w, &before);
        }
        if let Some(mallory) = s.know.mallory.as_mut() {
            mallory.make_mut().disconnect();
        }
        Some(())
    }

    /// The honest server refused a frame on `w`'s link: if the link is not confirmed, its driver
    /// closes it (SPEC.md §7.2), and, if it was the connection of `w`'s client, the client is
    /// offline and the frames in flight on it are lost (spec/MODEL.md §4). Not an outage: it
    /// spends no budget, and the frames it loses are the refused frame's doing, not a drop, so
    /// `recovery` still judges what follows. The client connects again (`Connect`), in the run as
    /// in a completion, at most `--budget` times in a run ([`Self::reconnect_allowed`]).
    pub(super) fn close_unconfirmed(s: &mut World, w: Who) {
        if s.server.link_of(&w.name()) == Some(w.link()) {
            return;
        }
        s.server.make_mut().close_link(w.link());
        Self::close_displaced(s, w);
    }

    /// The server forgot `w`'s link — it refused a frame on it before confirming it, or a newer
    /// connection of `w`'s name displaced it (`ServerOutputs::close`, SPEC.md §5.1) — and its
    /// driver closes it. If it was the connection of `w`'s client, the client is offline, the
    /// frames in flight on it are lost, and an upload sent on it will be sent again; as for
    /// [`Self::close_unconfirmed`], not an outage, and `w` connects again under the same bound
    /// ([`Self::reconnect_allowed`]). A link `w`'s client is not on (an attacker's replay on it
    /// while the client is offline) takes nothing of the client's with it.
    pub(super) fn close_displaced(s: &mut World, w: Who) {
        if s.life.connecting[w.index()] {
            s.clients[w.index()].make_mut().disconnect();
            s.life.connecting[w.index()] = false;
            s.life.refused_closes[w.index()] = s.life.refused_closes[w.index()].saturating_add(1);
            if s.life.uploaded_here[w.index()] {
                s.life.uploaded[w.index()] = false;
                s.life.uploaded_here[w.index()] = false;
            }
            for dest in [Dest::Server(w), Dest::Client(w)] {
                s.net.queue(dest).clear();
            }
        }
    }

    /// The frames in flight on `w`'s link are lost with it. A loss is interference (`recovery`
    /// is not judged after it), but for a loss of top-ups alone (`before` is the server that
    /// held the link): they cost the directory nothing it holds, and `recovery` is judged after
    /// them (spec/MODEL.md §4).
    fn lose(s: &mut World, w: Who, before: &Server) {
        let top_ups = super::prekeys::only_top_ups(before, w, &s.net.to_server[w.index()]);
        for dest in [Dest::Server(w), Dest::Client(w)] {
            let queue = s.net.queue(dest);
            if queue.is_empty() {
                continue;
            }
            queue.clear();
            if top_ups && dest == Dest::Server(w) {
                // The ghost forgets the lost top-up: a later `BundleStored` is another's.
                s.ghost.top_up_lost[w.index()] = true;
                s.ghost.replenished[w.index()] = false;
            } else {
                s.ghost.interfered = true;
            }
        }
    }
}

/// Sometimes: a client accepted an honest message from its peer after a link of the run closed
/// and its client connected again.
pub(super) fn delivered_after_reconnect(_: &E2eModel, s: &World) -> bool {
    s.ghost.after_outage[0]
}

/// Sometimes: a client accepted an honest message after the server restarted.
pub(super) fn delivered_after_restart(_: &E2eModel, s: &World) -> bool {
    s.ghost.after_outage[1]
}
