//! A newer connection of a name displaces its older link (SPEC.md §5.1: the server keeps one
//! unconfirmed link per name, and a name's newest confirmed connection wins), and the server says
//! so in `ServerOutputs::close`. The relay closes such a link at once; so does the model's driver
//! (spec/MODEL.md §4): the displaced client is offline at that step, its frames in flight are
//! lost, and it connects again — not only when its next frame is refused on a link the server no
//! longer has.

mod common;

#[cfg(test)]
mod tests {
    use super::common::step;
    use e2e_model::world::{Dest, Who, World};
    use e2e_model::{Action, Attacker, Bounds, E2eModel, Variant};
    use e2e_protocol::wire::{Codec, LinkFrame, LinkKind};
    use stateright::Model;

    /// The index, among the frames the network attacker observed, of a `HandshakeInit` Bob sent.
    fn bobs_handshake(s: &World) -> usize {
        s.know
            .observed
            .iter()
            .position(|(dest, frame)| {
                *dest == Dest::Server(Who::Bob)
                    && LinkFrame::decode(&frame.bytes)
                        .is_ok_and(|f| f.kind() == LinkKind::HandshakeInit)
            })
            .expect("N observed Bob's handshake")
    }

    /// Asserts that `w`'s link is gone at the server and that its client is offline at once, with
    /// nothing left in flight on its link, and free to connect again.
    fn assert_displaced(model: &E2eModel, s: &World, w: Who) {
        assert_eq!(s.server.link_of(&w.name()), None);
        assert!(!s.life.connecting[w.index()], "{w:?}'s driver closed its link");
        assert!(!s.clients[w.index()].is_connected());
        assert!(s.net.to_client[w.index()].is_empty(), "the server's Welcome went with the link");
        assert!(s.net.to_server[w.index()].is_empty());
        assert_eq!(s.life.refused_closes[w.index()], 1, "it counts as the driver's close");
        let mut enabled = Vec::new();
        model.actions(s, &mut enabled);
        assert!(enabled.contains(&Action::Connect(w)), "{w:?} may connect again");
    }

    /// hop vs N: Bob is connecting (his link unconfirmed, the server's `Welcome` on its way to
    /// him) when N replays his `HandshakeInit` on Alice's link, which an outage left free. The
    /// server registers `bob` there and closes Bob's own link; Bob is offline at once, connects
    /// again — which in turn displaces the replay's link — and is confirmed.
    #[test]
    fn a_replayed_handshake_displaces_the_older_link_and_its_client_connects_again() {
        let (alice, bob) = (Who::Alice, Who::Bob);
        let bounds = Bounds { budget: 2, ..Bounds::DEFAULT };
        let model = E2eModel::new(Variant::Hop, Attacker::Network, bounds).expect("setup");
        let mut s = model.init_states().remove(0);
        s = step(&model, &s, Action::Connect(bob));
        s = step(&model, &s, Action::Serve(bob));
        assert!(s.life.connecting[bob.index()]);
        assert_eq!(s.net.to_client[bob.index()].len(), 1, "the server's Welcome");
        s = step(&model, &s, Action::Close(alice));
        s = step(&model, &s, Action::Replay(bobs_handshake(&s), alice));
        // The replay registers `bob` on Alice's link: the server closes Bob's unconfirmed one.
        s = step(&model, &s, Action::Serve(alice));
        assert_displaced(&model, &s, bob);
        // Bob connects again; his handshake displaces the replay's link, whose client (Alice,
        // offline since the outage) loses nothing.
        s = step(&model, &s, Action::Connect(bob));
        s = step(&model, &s, Action::Serve(bob));
        assert!(!s.life.connecting[alice.index()]);
        s = step(&model, &s, Action::Deliver(bob));
        assert!(s.clients[bob.index()].is_connected());
        s = step(&model, &s, Action::Serve(bob));
        assert_eq!(s.server.link_of(&bob.name()), Some(bob.link()), "Ready confirmed the link");
    }

    /// e2e-unverified vs N, `--first-registration`: N's own client registers `bob` while Bob's
    /// first registration waits for his `Ready`. The server keeps N's link (the newest) and closes
    /// Bob's; Bob is offline at once. (He connects again and is refused: N bound the name first,
    /// SPEC.md §16.3 — the trade-off spec/MODEL.md §2 describes.)
    #[test]
    fn the_attackers_registration_displaces_the_unconfirmed_link() {
        let bob = Who::Bob;
        let bounds = Bounds { first_registration: true, ..Bounds::DEFAULT };
        let model =
            E2eModel::new(Variant::E2eUnverified, Attacker::Network, bounds).expect("setup");
        let mut s = model.init_states().remove(0);
        s = step(&model, &s, Action::Connect(bob));
        s = step(&model, &s, Action::Serve(bob));
        s = step(&model, &s, Action::Impersonate(bob));
        assert_displaced(&model, &s, bob);
    }
}
