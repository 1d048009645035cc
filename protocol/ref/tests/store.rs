//! The relay's store (SPEC.md §9.2): the durable server's change stream, applied to the redb
//! store after every call, loads back as exactly the server's state; a restored server is the same
//! server; a commit lands whole or not at all.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
use common::TempDir;

use e2e_protocol::e2e::peers::Peers;
use e2e_protocol::roles::{
    Client, DirectoryEntry, DurableChange, LinkId, Server, ServerOutputs, Snapshot,
};
use e2e_protocol::suite::PrivateKey;
use e2e_protocol::wire::{Body, Name, OneTimePrekeyPublic};
use e2e_ref::serve::Store;
use e2e_ref::serve::store::{RedbStore, decode_entry, encode_entry};
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

fn name(s: &str) -> Name {
    Name::new(s).unwrap()
}

/// The server and its clients in one process, with every call's changes committed to a store and
/// the store checked against the server after each.
struct World {
    server: Server,
    store: RedbStore,
    rng: ChaCha20Rng,
    clients: Vec<(Client, LinkId)>,
    changes: usize,
}

impl World {
    fn new(dir: &TempDir) -> Self {
        let mut rng = ChaCha20Rng::seed_from_u64(7);
        let server = Server::new(PrivateKey::generate(&mut rng)).durable();
        Self { server, store: RedbStore::open(&dir.0).unwrap(), rng, clients: vec![], changes: 0 }
    }

    fn add(&mut self, who: &str) -> usize {
        let key = PrivateKey::generate(&mut self.rng);
        let peers = Peers::generate(&mut self.rng);
        let client = Client::with_e2e(name(who), key, self.server.public_key(), peers);
        self.clients.push((client, LinkId(0)));
        self.clients.len() - 1
    }

    /// Commits what a call changed, checks the store, and settles every delivery at once (as if
    /// written), committing and checking that too.
    fn commit(&mut self, out: &ServerOutputs) {
        self.changes += out.changes.len();
        self.store.commit(&out.changes).unwrap();
        self.check();
        for delivery in &out.delivered {
            let removed = self.server.settle(delivery);
            self.changes += removed.len();
            self.store.commit(&removed).unwrap();
            self.check();
        }
    }

    fn check(&self) {
        assert_eq!(sorted(self.store.load().unwrap()), sorted(self.server.snapshot()));
    }

    /// Delivers frames from client `c` to the server, and the server's answers to their clients,
    /// until nothing is in flight.
    fn deliver_from(&mut self, c: usize, frames: Vec<Vec<u8>>) {
        let mut queue: Vec<(Option<usize>, Vec<u8>)> =
            frames.into_iter().map(|f| (Some(c), f)).collect();
        while !queue.is_empty() {
            let (from, frame) = queue.remove(0);
            match from {
                Some(c) => {
                    let link = self.clients[c].1;
                    let out = self.server.handle(link, &frame, &mut self.rng).unwrap();
                    self.commit(&out);
                    for (link, frame) in out.transmit {
                        let to = self.clients.iter().position(|(_, l)| *l == link).unwrap();
                        queue.push((None, [to.to_be_bytes().as_slice(), &frame].concat()));
                    }
                }
                None => {
                    let (to, frame) = frame.split_at(8);
                    let to = usize::from_be_bytes(to.try_into().unwrap());
                    let out = self.clients[to].0.handle(frame, &mut self.rng).unwrap();
                    queue.extend(out.transmit.into_iter().map(|f| (Some(to), f)));
                }
            }
        }
    }

    fn connect(&mut self, c: usize, link: u64) {
        self.clients[c].1 = LinkId(link);
        let init = self.clients[c].0.connect(&mut self.rng).unwrap();
        self.deliver_from(c, vec![init]);
    }

    fn disconnect(&mut self, c: usize) {
        self.server.close_link(self.clients[c].1);
        self.clients[c].0.disconnect();
        self.clients[c].1 = LinkId(u64::MAX - c as u64);
    }
}

fn sorted(mut s: Snapshot) -> Snapshot {
    s.accounts.sort_by(|a, b| a.0.cmp(&b.0));
    s.mailboxes.sort_by(|a, b| a.name.cmp(&b.name));
    s.directory.sort_by(|a, b| a.0.cmp(&b.0));
    s
}

#[test]
fn the_change_stream_is_the_state_and_restores_the_same_server() {
    let dir = TempDir::new("stream");
    let mut w = World::new(&dir);
    let (alice, bob) = (w.add("alice"), w.add("bob"));
    w.connect(alice, 1);
    w.connect(bob, 2);
    for c in [alice, bob] {
        let upload = w.clients[c].0.upload_bundle().unwrap();
        w.deliver_from(c, vec![upload]);
    }
    // Hop, relayed and queued; then Bob comes back and his mailbox is delivered and settled.
    let (_, hi) =
        w.clients[alice].0.send(&name("bob"), Body::new(b"hi".to_vec()).unwrap()).unwrap();
    w.deliver_from(alice, vec![hi]);
    w.disconnect(bob);
    for text in ["one", "two"] {
        let body = Body::new(text.as_bytes().to_vec()).unwrap();
        let (_, frame) = w.clients[alice].0.send(&name("bob"), body).unwrap();
        w.deliver_from(alice, vec![frame]);
    }
    assert_eq!(w.server.queued(&name("bob")), 2);
    // e2e while Bob is away: a fetch takes one of his one-time prekeys, the envelope is queued.
    let body = Body::new(b"sealed".to_vec()).unwrap();
    let mut rng = ChaCha20Rng::seed_from_u64(9);
    let out = w.clients[alice].0.send_e2e(&name("bob"), body, &mut rng).unwrap();
    w.deliver_from(alice, out.transmit);
    assert_eq!(w.server.queued(&name("bob")), 3);

    // What the store holds now restores a server with the same durable state.
    let restored = Server::new(PrivateKey::generate(&mut ChaCha20Rng::seed_from_u64(7)))
        .restore(w.store.load().unwrap())
        .unwrap();
    assert_eq!(sorted(restored.snapshot()), sorted(w.server.snapshot()));
    assert_eq!(restored.queued(&name("bob")), 3);
    assert_eq!(restored.one_time_prekeys(&name("bob")), w.server.one_time_prekeys(&name("bob")));

    w.connect(bob, 3);
    assert_eq!(w.server.queued(&name("bob")), 0, "settled once written");
    assert!(w.changes >= 8, "bindings, uploads, a fetch, three queued, a removal");
}

#[test]
fn a_commit_lands_whole_or_not_at_all() {
    let dir = TempDir::new("atomic");
    let store = RedbStore::open(&dir.0).unwrap();
    let mut rng = ChaCha20Rng::seed_from_u64(3);
    let key = PrivateKey::generate(&mut rng).public_key();
    let peers = Peers::generate(&mut rng);
    let identity = peers.identity();
    let good = store.commit(&[DurableChange::Bound { name: name("alice"), key }]);
    assert!(good.is_ok());
    // The second change cannot be encoded (more one-time prekeys than any upload carries): the
    // first, a binding, must not land either.
    let spk = bundle_entry(&peers).signed_prekey;
    let too_many = DirectoryEntry {
        identity,
        signed_prekey: spk,
        one_time: vec![OneTimePrekeyPublic { id: 1, key }; 1001],
        takers: vec![],
    };
    let key2 = PrivateKey::generate(&mut rng).public_key();
    let failed = store.commit(&[
        DurableChange::Bound { name: name("bob"), key: key2 },
        DurableChange::Directory { name: name("bob"), entry: too_many },
    ]);
    assert!(failed.is_err());
    let loaded = store.load().unwrap();
    assert_eq!(loaded.accounts, vec![(name("alice"), key)]);
    assert!(loaded.directory.is_empty());
    // Reopening the file finds the same.
    drop(store);
    assert_eq!(RedbStore::open(&dir.0).unwrap().load().unwrap(), loaded);
}

#[test]
fn a_directory_entry_round_trips_and_bad_bytes_are_refused() {
    let mut rng = ChaCha20Rng::seed_from_u64(4);
    let peers = Peers::generate(&mut rng);
    let mut entry = bundle_entry(&peers);
    entry.takers = vec![name("carol"), name("dave")];
    let bytes = encode_entry(&entry).unwrap();
    assert_eq!(decode_entry(&bytes).unwrap(), entry);
    assert!(decode_entry(&bytes[..bytes.len() - 1]).is_err());
    assert!(decode_entry(&[bytes.as_slice(), &[0]].concat()).is_err());
    assert!(decode_entry(&[]).is_err());
}

#[test]
fn the_static_key_is_made_once_and_kept() {
    let dir = TempDir::new("key");
    let first = {
        let store = RedbStore::open(&dir.0).unwrap();
        store.static_key(|| PrivateKey::generate(&mut ChaCha20Rng::seed_from_u64(5))).unwrap()
    };
    let store = RedbStore::open(&dir.0).unwrap();
    let again = store.static_key(|| PrivateKey::generate(&mut ChaCha20Rng::seed_from_u64(6)));
    assert_eq!(again.unwrap().public_key(), first.public_key());
}

/// The store holds the static key, so only its owner may read it (SPEC.md §2.3): the directory is
/// 0700 and the file 0600, also when they existed with wider modes before.
#[cfg(unix)]
#[test]
fn the_store_is_readable_by_its_owner_only() {
    use std::os::unix::fs::PermissionsExt;
    let dir = TempDir::new("mode");
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    std::fs::set_permissions(&dir.0, std::fs::Permissions::from_mode(0o755)).unwrap();
    drop(RedbStore::open(&dir.0).unwrap());
    let file = std::fs::read_dir(&dir.0).unwrap().next().unwrap().unwrap().path();
    assert_eq!((mode(&dir.0), mode(&file)), (0o700, 0o600));
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
    drop(RedbStore::open(&dir.0).unwrap());
    assert_eq!(mode(&file), 0o600);
}

/// The directory entry a server stores for a fresh client's first upload.
fn bundle_entry(peers: &Peers) -> DirectoryEntry {
    let mut rng = ChaCha20Rng::seed_from_u64(8);
    let mut server = Server::new(PrivateKey::generate(&mut rng)).durable();
    let mut client = Client::with_e2e(
        name("owner"),
        PrivateKey::generate(&mut rng),
        server.public_key(),
        peers.clone(),
    );
    let init = client.connect(&mut rng).unwrap();
    let out = server.handle(LinkId(1), &init, &mut rng).unwrap();
    let ready = client.handle(&out.transmit[0].1, &mut rng).unwrap().transmit;
    server.handle(LinkId(1), &ready[0], &mut rng).unwrap();
    let upload = client.upload_bundle().unwrap();
    let out = server.handle(LinkId(1), &upload, &mut rng).unwrap();
    match out.changes.as_slice() {
        [DurableChange::Directory { entry, .. }] => entry.clone(),
        other => panic!("one directory change expected, got {other:?}"),
    }
}

/// A mailbox delivered twice — its first delivery never settled, as after a crash — is accepted
/// once: the hop copy by the replay window, the e2e copy by the ratchet (SPEC.md §5.4).
#[test]
fn a_mailbox_sent_again_is_accepted_once() {
    let dir = TempDir::new("twice");
    let mut w = World::new(&dir);
    let (alice, bob) = (w.add("alice"), w.add("bob"));
    // Carol speaks hop only (an e2e client refuses hop `Deliver`, §15.3).
    let key = PrivateKey::generate(&mut w.rng);
    w.clients.push((Client::new(name("carol"), key, w.server.public_key()), LinkId(0)));
    let carol = w.clients.len() - 1;
    w.connect(alice, 1);
    for (c, link) in [(bob, 2), (carol, 3)] {
        w.connect(c, link);
    }
    let upload = w.clients[bob].0.upload_bundle().unwrap();
    w.deliver_from(bob, vec![upload]);
    w.disconnect(bob);
    w.disconnect(carol);
    let body = Body::new(b"hop once".to_vec()).unwrap();
    let (_, frame) = w.clients[alice].0.send(&name("carol"), body).unwrap();
    w.deliver_from(alice, vec![frame]);
    let mut rng = ChaCha20Rng::seed_from_u64(10);
    let body = Body::new(b"e2e once".to_vec()).unwrap();
    let out = w.clients[alice].0.send_e2e(&name("bob"), body, &mut rng).unwrap();
    w.deliver_from(alice, out.transmit);
    // Each connects twice; the first delivery is never settled (written, then the server
    // crashed), so the second sends the same mailbox again.
    for (c, text) in [(bob, b"e2e once".as_slice()), (carol, b"hop once".as_slice())] {
        let mut received = Vec::new();
        for link in [10, 11] {
            let link = LinkId(link + 10 * c as u64);
            w.clients[c].1 = link;
            let init = w.clients[c].0.connect(&mut w.rng).unwrap();
            let out = w.server.handle(link, &init, &mut w.rng).unwrap();
            let ready = w.clients[c].0.handle(&out.transmit[0].1, &mut w.rng).unwrap().transmit;
            let out = w.server.handle(link, &ready[0], &mut w.rng).unwrap();
            assert_eq!(out.delivered.len(), 1, "the mailbox is sent, and held until settled");
            for (_, frame) in &out.transmit {
                let got = w.clients[c].0.handle(frame, &mut w.rng).unwrap();
                received.extend(got.events.into_iter().filter_map(|e| match e {
                    e2e_protocol::roles::ClientEvent::Received { body, .. } => Some(body),
                    _ => None,
                }));
            }
            w.disconnect(c);
        }
        let texts: Vec<&[u8]> = received.iter().map(Body::as_bytes).collect();
        assert_eq!(texts, vec![text], "accepted once");
        assert_eq!(w.server.queued(w.clients[c].0.name()), 1, "never settled, still held");
    }
}

/// A store holding what no server writes is refused at restore, not served from.
#[test]
fn a_snapshot_no_server_could_write_is_refused() {
    use e2e_protocol::roles::{SnapshotError, StoredMailbox};
    let mut rng = ChaCha20Rng::seed_from_u64(12);
    let fresh = |rng: &mut ChaCha20Rng| Server::new(PrivateKey::generate(rng));
    let key = PrivateKey::generate(&mut rng).public_key();
    let two_names = Snapshot {
        accounts: vec![(name("alice"), key), (name("bob"), key)],
        ..Snapshot::default()
    };
    assert!(matches!(fresh(&mut rng).restore(two_names), Err(SnapshotError::DuplicateBinding(_))));
    let unbound = Snapshot {
        mailboxes: vec![StoredMailbox { name: name("carol"), head: 0, messages: vec![] }],
        ..Snapshot::default()
    };
    assert!(matches!(fresh(&mut rng).restore(unbound), Err(SnapshotError::Unbound(_))));
    let not_a_delivery = Snapshot {
        accounts: vec![(name("alice"), key)],
        mailboxes: vec![StoredMailbox {
            name: name("alice"),
            head: 0,
            messages: vec![e2e_protocol::wire::Message::Ready],
        }],
        ..Snapshot::default()
    };
    assert!(matches!(fresh(&mut rng).restore(not_a_delivery), Err(SnapshotError::BadMailbox(_))));
    let too_many = Snapshot { accounts: vec![(name("alice"), key)], ..Snapshot::default() };
    let limits = e2e_protocol::roles::ServerLimits { max_accounts: 0, ..Default::default() };
    let small = fresh(&mut rng).with_limits(limits);
    assert!(matches!(small.restore(too_many), Err(SnapshotError::OverLimit)));
}
