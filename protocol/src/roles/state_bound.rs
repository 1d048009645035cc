//! How large a client's state file can be (SPEC.md §18.1): the sum of every part at the bound §8
//! gives it. It lives with the roles, which know every part, so that the state codec
//! (`crate::state`) depends only on the suite and the wire codec, and the e2e layer that uses it
//! stays above it.

use crate::e2e::x3dh::MAX_AD_LEN;
use crate::e2e::{
    MAX_ARCHIVED_SESSIONS, MAX_HELD_ONE_TIME_PREKEYS, MAX_PEERS, MAX_PENDING, MAX_PINNED,
    MAX_SKIPPED_KEYS_PER_CLIENT, RETIRED_BASE_KEYS,
};
use crate::state::{STATE_CHECKSUM_LEN, STATE_HEADER_LEN};
use crate::suite::{DH_LEN, HASH_LEN};
use crate::wire::{IdentityPublic, MAX_BODY_LEN, MAX_NAME_LEN};

/// An encoded `Name`, at most.
const NAME: usize = 1 + MAX_NAME_LEN;
/// An optional 32-byte value: flag and value.
const OPTION_32: usize = 1 + DH_LEN;
/// A ratchet's fixed part and its `AD`, without skipped keys: `RK`, `DHs`, `DHr`, `CKs`, `CKr`,
/// `Ns`, `Nr`, `PN`, `AD`, the skipped-key count.
const SESSION: usize = HASH_LEN + 4 * OPTION_32 + 3 * 4 + 1 + MAX_AD_LEN + 2;
/// One skipped key: `DHr`, `n`, `MK`.
const SKIPPED_KEY: usize = DH_LEN + 4 + HASH_LEN;
/// A session with one peer, without skipped keys: identity, base key, prekey ids, ratchet.
const PEER_SESSION: usize = IdentityPublic::LEN + DH_LEN + 1 + 4 + 1 + 4 + SESSION;
/// One peer's sessions: activity, current, archived, retired base keys.
const PEER_SESSIONS: usize = 8
    + 1
    + PEER_SESSION
    + 1
    + MAX_ARCHIVED_SESSIONS * PEER_SESSION
    + 1
    + RETIRED_BASE_KEYS * DH_LEN;
/// The prekey store: id counter, upload watermark, current and previous signed prekeys, one-time
/// prekeys.
const PREKEYS: usize = 8 + 4 + (4 + DH_LEN) + 1 + (4 + DH_LEN) + 2 + MAX_HELD_ONE_TIME_PREKEYS * 36;
/// The whole e2e state.
const PEERS: usize = 2 * DH_LEN
    + PREKEYS
    + 8
    + 2
    + MAX_PEERS * (NAME + PEER_SESSIONS)
    + MAX_SKIPPED_KEYS_PER_CLIENT * SKIPPED_KEY
    + 2
    + MAX_PINNED * (NAME + IdentityPublic::LEN)
    + 2
    + MAX_PEERS * (NAME + 1 + MAX_PENDING * (2 + MAX_BODY_LEN));
/// The hop replay windows: clock, count, and per sender its name, highest id, bitmap, activity.
const REPLAY_WINDOWS: usize = 8 + 2 + MAX_PEERS * (NAME + 8 + 8 + 8);

/// The longest body any reachable client state encodes to: the sum of every part at its bound
/// (about 68 MB, nearly all of it the messages that may wait for bundles: `MAX_PENDING` bodies
/// of `MAX_BODY_LEN` bytes for each of `MAX_PEERS` peers). A larger declared length is
/// [`StateError::Oversized`](crate::state::StateError::Oversized) before anything is read or hashed.
pub const MAX_STATE_BODY_LEN: usize = NAME + 2 * DH_LEN + 8 + REPLAY_WINDOWS + 1 + PEERS;

/// The longest state file: header, the longest body, checksum.
pub const MAX_STATE_LEN: usize = STATE_HEADER_LEN + MAX_STATE_BODY_LEN + STATE_CHECKSUM_LEN;

const _: () = assert!(MAX_STATE_BODY_LEN <= u32::MAX as usize);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_limits_are_what_the_spec_says() {
        assert_eq!(SKIPPED_KEY, 68);
        // The pending bodies dominate: 256 peers × 16 messages × (2 + 16384) bytes.
        let pending = MAX_PEERS * MAX_PENDING * (2 + MAX_BODY_LEN);
        assert!(MAX_STATE_BODY_LEN > pending && MAX_STATE_BODY_LEN < pending + 3_000_000);
        // The numbers SPEC.md §18.1 states.
        assert_eq!((SESSION, PEER_SESSION, PEER_SESSIONS, PREKEYS), (373, 479, 2918, 7287));
        assert_eq!(MAX_STATE_BODY_LEN, 68_546_617);
        assert_eq!(MAX_STATE_LEN, 68_546_674);
    }
}
