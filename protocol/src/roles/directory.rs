//! The server's prekey directory (SPEC.md §15.2): one bundle per name, each one-time prekey handed
//! out at most once. It holds public keys only — the server never has e2e key material.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use super::durable::DirectoryEntry;
use crate::e2e::E2eError;
use crate::e2e::bundle::validate_upload;
use crate::wire::{
    FetchedBundle, IdentityPublic, Name, OneTimePrekeyPublic, SignedPrekeyPublic, UploadedBundle,
};

/// What the server stores for one name.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Stored {
    identity: IdentityPublic,
    signed_prekey: SignedPrekeyPublic,
    one_time: VecDeque<OneTimePrekeyPublic>,
    /// Who took one of these one-time prekeys since the owner's last upload: each requester gets
    /// at most one per upload (SPEC.md §15.2), so one client cannot drain them. At most
    /// `MAX_ONE_TIME_PREKEYS` names, one per key handed out.
    takers: BTreeSet<Name>,
}

/// All published bundles.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Directory {
    bundles: BTreeMap<Name, Stored>,
}

impl Directory {
    /// Validates and stores an upload for `name`; returns how many one-time prekeys are now held.
    ///
    /// Same identity as stored: the signed prekey is replaced (rotation) and the one-time prekeys are
    /// appended (replenishment). New or different identity: the upload replaces the record.
    ///
    /// # Errors
    /// [`E2eError::Bundle`] per SPEC.md §10.3; the directory is then unchanged.
    pub fn upload(&mut self, name: &Name, upload: &UploadedBundle) -> Result<usize, E2eError> {
        let same_identity = self.bundles.get(name).filter(|s| s.identity == *upload.identity());
        // Under the same identity, every prekey id still stored (signed and one-time) is taken.
        let stored_ids: Vec<u32> = same_identity
            .map(|s| {
                core::iter::once(s.signed_prekey.id)
                    .chain(s.one_time.iter().map(|k| k.id))
                    .collect()
            })
            .unwrap_or_default();
        let stored_count = same_identity.map_or(0, |s| s.one_time.len());
        validate_upload(upload, stored_ids, stored_count)?;
        let mut one_time = same_identity.map(|s| s.one_time.clone()).unwrap_or_default();
        one_time.extend(upload.one_time_prekeys().iter().copied());
        let count = one_time.len();
        self.bundles.insert(
            name.clone(),
            Stored {
                identity: *upload.identity(),
                signed_prekey: *upload.signed_prekey(),
                one_time,
                takers: BTreeSet::new(),
            },
        );
        Ok(count)
    }

    /// What [`Self::fetch_for`] would hand `by` for `name`, changing nothing: the bundle, and
    /// whether it takes a one-time prekey.
    #[must_use]
    pub fn peek_for(&self, name: &Name, by: &Name) -> Option<(FetchedBundle, bool)> {
        let stored = self.bundles.get(name)?;
        let one_time_prekey =
            stored.one_time.front().copied().filter(|_| !stored.takers.contains(by));
        let bundle = FetchedBundle {
            identity: stored.identity,
            signed_prekey: stored.signed_prekey,
            one_time_prekey,
        };
        Some((bundle, one_time_prekey.is_some()))
    }

    /// `name`'s bundle as fetched by `by` (SPEC.md §15.2): with the oldest one-time prekey, which
    /// is deleted — unless `by` already took one since `name`'s last upload, which then gets the
    /// bundle without one.
    pub fn fetch_for(&mut self, name: &Name, by: &Name) -> Option<FetchedBundle> {
        let (bundle, takes_one_time) = self.peek_for(name, by)?;
        if takes_one_time {
            self.hand_out_one_time(name, by);
        }
        Some(bundle)
    }

    /// Deletes `name`'s oldest one-time prekey, the one [`Self::peek_for`] showed `by`, and notes
    /// that `by` took one since `name`'s last upload.
    pub fn hand_out_one_time(&mut self, name: &Name, by: &Name) {
        if let Some(stored) = self.bundles.get_mut(name) {
            if !crate::flaws::on(crate::flaws::Flaw::ServeOneTimePrekeyTwice) {
                stored.one_time.pop_front();
            } // seeded flaw hook
            stored.takers.insert(by.clone());
        }
    }

    /// `name`'s entry as a store keeps it (SPEC.md §15.2), if `name` published a bundle.
    #[must_use]
    pub fn entry(&self, name: &Name) -> Option<DirectoryEntry> {
        self.bundles.get(name).map(|stored| DirectoryEntry {
            identity: stored.identity,
            signed_prekey: stored.signed_prekey,
            one_time: stored.one_time.iter().copied().collect(),
            takers: stored.takers.iter().cloned().collect(),
        })
    }

    /// Puts back an entry a store kept. It is not validated again: it was when it was uploaded.
    pub fn restore_entry(&mut self, name: Name, entry: DirectoryEntry) {
        let DirectoryEntry { identity, signed_prekey, one_time, takers } = entry;
        let stored = Stored {
            identity,
            signed_prekey,
            one_time: one_time.into(),
            takers: takers.into_iter().collect(),
        };
        self.bundles.insert(name, stored);
    }

    /// Whether `name` has published a bundle.
    #[must_use]
    pub fn has_bundle(&self, name: &Name) -> bool {
        self.bundles.contains_key(name)
    }

    /// `name`'s bundle with its oldest one-time prekey, which is deleted: handed out at most once.
    /// No per-requester limit: what a malicious server's own fetch does (see
    /// [`crate::roles::Server::take_bundle`]).
    pub fn fetch(&mut self, name: &Name) -> Option<FetchedBundle> {
        let stored = self.bundles.get_mut(name)?;
        Some(FetchedBundle {
            identity: stored.identity,
            signed_prekey: stored.signed_prekey,
            one_time_prekey: stored.one_time.pop_front(),
        })
    }

    /// How many one-time prekeys are held for `name`.
    #[must_use]
    pub fn one_time_count(&self, name: &Name) -> usize {
        self.bundles.get(name).map_or(0, |s| s.one_time.len())
    }
}

#[cfg(test)]
mod tests {
    use rand_chacha::ChaCha20Rng;
    use rand_core::SeedableRng;

    use super::*;
    use crate::e2e::peers::Peers;

    fn name(s: &str) -> Name {
        Name::new(s).unwrap()
    }

    /// The ids of the one-time prekeys held for `name`, oldest first.
    fn held_ids(directory: &Directory, name: &Name) -> Vec<u32> {
        directory.entry(name).map(|e| e.one_time.iter().map(|k| k.id).collect()).unwrap_or_default()
    }

    /// The ids of the one-time prekeys `upload` carries, in order.
    fn uploaded_ids(upload: &UploadedBundle) -> Vec<u32> {
        upload.one_time_prekeys().iter().map(|k| k.id).collect()
    }

    /// SPEC.md §15.2: an upload under the stored identity replaces the signed prekey and appends
    /// the one-time prekeys; one under another identity replaces the bundle, dropping the old
    /// one-time prekeys and who took them.
    #[test]
    fn an_upload_appends_under_the_stored_identity_and_replaces_under_another() {
        let mut rng = ChaCha20Rng::seed_from_u64(1);
        let (alice, bob) = (name("alice"), name("bob"));
        let mut peers = Peers::generate(&mut rng);
        let mut directory = Directory::default();
        let first = peers.prepare_upload().unwrap();
        assert_eq!(directory.upload(&alice, &first), Ok(10));
        directory.hand_out_one_time(&alice, &bob);
        peers.replenish(&mut rng, 3).unwrap();
        peers.rotate_signed_prekey(&mut rng).unwrap();
        let upload = peers.prepare_upload().unwrap();
        assert_eq!(directory.upload(&alice, &upload), Ok(12));
        let entry = directory.entry(&alice).unwrap();
        assert_eq!(entry.signed_prekey, *upload.signed_prekey());
        assert_eq!(
            held_ids(&directory, &alice),
            [&uploaded_ids(&first)[1..], &uploaded_ids(&upload)].concat()
        );
        assert_eq!(entry.takers, [], "an upload lets every requester take one again");

        let other = Peers::generate(&mut rng).prepare_upload().unwrap();
        assert_eq!(directory.upload(&alice, &other), Ok(10));
        assert_eq!(directory.entry(&alice).unwrap().identity, *other.identity());
        assert_eq!(held_ids(&directory, &alice), uploaded_ids(&other));
    }

    /// SPEC.md §15.2: a fetch hands out the oldest one-time prekey and deletes it; the same
    /// requester gets none again until the owner's next upload, another requester gets the next.
    /// Peeking shows the same and changes nothing.
    #[test]
    fn each_requester_takes_at_most_one_one_time_prekey_per_upload() {
        let mut rng = ChaCha20Rng::seed_from_u64(2);
        let (alice, bob, carol) = (name("alice"), name("bob"), name("carol"));
        let mut peers = Peers::generate(&mut rng);
        let mut directory = Directory::default();
        assert_eq!(directory.fetch_for(&alice, &bob), None);
        assert!(!directory.has_bundle(&alice));
        let upload = peers.prepare_upload().unwrap();
        let ids = uploaded_ids(&upload);
        directory.upload(&alice, &upload).unwrap();
        assert!(directory.has_bundle(&alice));

        let before = directory.clone();
        let (peeked, takes) = directory.peek_for(&alice, &bob).unwrap();
        assert!(takes);
        assert_eq!(directory, before, "peeking changes nothing");
        let fetched = directory.fetch_for(&alice, &bob).unwrap();
        assert_eq!(fetched, peeked);
        assert_eq!(fetched.identity, peers.identity());
        assert_eq!(fetched.one_time_prekey.map(|k| k.id), Some(ids[0]));
        assert_eq!(directory.one_time_count(&alice), 9);
        assert_eq!(directory.entry(&alice).unwrap().takers, std::slice::from_ref(&bob));

        let again = directory.fetch_for(&alice, &bob).unwrap();
        assert_eq!((again.one_time_prekey, again.signed_prekey), (None, fetched.signed_prekey));
        assert_eq!(directory.peek_for(&alice, &bob).map(|(_, takes)| takes), Some(false));
        assert_eq!(directory.one_time_count(&alice), 9);
        let next = directory.fetch_for(&alice, &carol).unwrap().one_time_prekey;
        assert_eq!(next.map(|k| k.id), Some(ids[1]));

        peers.replenish(&mut rng, 1).unwrap();
        directory.upload(&alice, &peers.prepare_upload().unwrap()).unwrap();
        let after_upload = directory.fetch_for(&alice, &bob).unwrap().one_time_prekey;
        assert_eq!(after_upload.map(|k| k.id), Some(ids[2]));
    }
}
