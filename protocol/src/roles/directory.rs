//! The server's prekey directory (SPEC.md §15.2): one bundle per name, each one-time prekey handed
//! out at most once. It holds public keys only — the server never has e2e key material.

use std::collections::{BTreeMap, VecDeque};

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
            },
        );
        Ok(count)
    }

    /// `name`'s bundle with its oldest one-time prekey, which is deleted: handed out at most once.
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
